#!/usr/bin/env python3
"""The Python clients of test_seq2seq.py, run under the pinned environment (MODELEXPORT_PYTHON):
ONNX Runtime on the package's four files, and Optimum's ORTModelFor*.generate().

Usage:
  seq2seq_clients.py ort PKG ONNXDIR SOURCE REFERENCE.json
  seq2seq_clients.py optimum PKG [--no-merged]      (SEQ2SEQ_REFERENCE names the reference)
  seq2seq_clients.py optimum-each PKG REFERENCE [PKG REFERENCE ...]   (merged; {PKG: answer or error})
  seq2seq_clients.py inspect ONNXDIR
  seq2seq_clients.py versus PKG OTHERPKG SOURCE REFERENCE.json   (largest differences between the two)
  seq2seq_clients.py tags ONNXDIR

`inspect` reports per ONNX file its inputs and outputs ([name, elem type, dims] with dims as
numbers or names), its node names (the If node's subgraphs included), the file size and the
bytes of its initializers; plus "unique_weight_bytes": the decoders' initializer bytes counted
once per distinct content (data type, dims, bytes).

Prints one JSON line. `ort` feeds the reference's input (T5: its input_ids; Whisper: the log-mel
features transformers' WhisperFeatureExtractor makes from SOURCE's preprocessor_config.json for
the reference waveform) and reports, against the torch reference made by
tests/fixtures/make_seq2seq_models.py:
  encoder      largest difference of last_hidden_state
  first        largest difference of the first step's logits, for decoder_model.onnx and for
               decoder_model_merged.onnx with use_cache_branch = false (empty past inputs)
  step         one cached step (the first generated id): decoder_with_past_model.onnx and the
               merged decoder with use_cache_branch = true, fed the presents of the first step,
               against torch's full recompute of prompt + id; and against ONNX Runtime's own full
               recompute (decoder_model.onnx on prompt + id)
  greedy       NEW greedy ids, ONNX Runtime alone (merged decoder, cache fed back)
"""
import json
import os
import sys
import warnings

import numpy

warnings.filterwarnings("ignore")


def load_json(path):
    with open(path) as f:
        return json.load(f)


def waveform(samples):
    return numpy.sin(0.05 * numpy.arange(samples, dtype=numpy.float64)).astype(numpy.float32)


def worst(got, expected):
    got = numpy.asarray(got, dtype=numpy.float64)
    expected = numpy.asarray(expected["data"], dtype=numpy.float64).reshape(expected["shape"])
    if got.shape != expected.shape:
        return {"shape": list(got.shape), "expected": list(expected.shape)}
    return float(numpy.max(numpy.abs(got - expected)))


def encoder_feed(kind, source, ref):
    if kind == "text":
        ids = numpy.array([ref["input_ids"]], dtype=numpy.int64)
        return {"input_ids": ids, "attention_mask": numpy.ones_like(ids)}
    from transformers import WhisperFeatureExtractor
    extractor = WhisperFeatureExtractor.from_pretrained(source)
    features = extractor(waveform(ref["samples"]), sampling_rate=ref["sampling_rate"], return_tensors="np")
    return {"input_features": features["input_features"].astype(numpy.float32)}


def ort(pkg, onnx_dir, source, reference):
    import onnxruntime
    ref = load_json(reference)
    kind = "text" if ref["task"] == "text2text-generation" else "speech"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = {name: onnxruntime.InferenceSession(os.path.join(onnx_dir, name + ".onnx"), options,
                                                   providers=["CPUExecutionProvider"])
                for name in ("encoder_model", "decoder_model", "decoder_with_past_model", "decoder_model_merged")}
    enc_in = encoder_feed(kind, source, ref)
    hidden = sessions["encoder_model"].run(None, enc_in)[0]
    report = {}
    if kind == "text":
        report["encoder"] = worst(hidden, ref["last_hidden_state"])
    else:
        report["encoder"] = worst(hidden[:, :16], ref["last_hidden_state_head"])
        report["features"] = float(numpy.max(numpy.abs(enc_in["input_features"][0, :, :8].reshape(-1)
                                                       - numpy.array(ref["input_features_head"]))))

    merged = sessions["decoder_model_merged"]
    names = [i.name for i in merged.get_inputs()]
    past_inputs = [i for i in merged.get_inputs() if i.name.startswith("past_key_values.")]
    heads, head_dim = past_inputs[0].shape[1], past_inputs[0].shape[3]

    def decoder_feed(session, ids, past=None):
        feed = {"input_ids": numpy.array([ids], dtype=numpy.int64)}
        wanted = {i.name for i in session.get_inputs()}
        if "encoder_hidden_states" in wanted:
            feed["encoder_hidden_states"] = hidden
        if "encoder_attention_mask" in wanted:
            feed["encoder_attention_mask"] = enc_in["attention_mask"]
        for i in session.get_inputs():
            if i.name.startswith("past_key_values."):
                if past is not None:
                    feed[i.name] = past[i.name.replace("past_key_values.", "present.")]
                else:  # an empty cache, as Optimum and transformers.js feed the first step
                    feed[i.name] = numpy.zeros((1, heads, 0, head_dim), dtype=numpy.float32)
        if "use_cache_branch" in wanted:
            feed["use_cache_branch"] = numpy.array([past is not None])
        return feed

    def run(session, feed):
        out = session.run(None, feed)
        return dict(zip([o.name for o in session.get_outputs()], out))

    prompt = ref["decoder_prompt_ids"]
    step_id = ref["step"]["input_id"]
    plain = run(sessions["decoder_model"], decoder_feed(sessions["decoder_model"], prompt))
    merged_first = run(merged, decoder_feed(merged, prompt))
    report["first"] = {"decoder_model": worst(plain["logits"][:, -1:], ref["first_logits"]),
                       "merged": worst(merged_first["logits"][:, -1:], ref["first_logits"])}
    with_past = run(sessions["decoder_with_past_model"], decoder_feed(sessions["decoder_with_past_model"], [step_id], plain))
    merged_step = run(merged, decoder_feed(merged, [step_id], merged_first))
    recompute = run(sessions["decoder_model"], decoder_feed(sessions["decoder_model"], prompt + [step_id]))
    report["step"] = {
        "decoder_with_past_model": worst(with_past["logits"], ref["step"]["logits"]),
        "merged": worst(merged_step["logits"], ref["step"]["logits"]),
        "merged_vs_recompute": float(numpy.max(numpy.abs(merged_step["logits"] - recompute["logits"][:, -1:]))),
        # the cached branch returns the cross-attention cache it was given
        "encoder_cache_kept": all(numpy.array_equal(merged_step[n], merged_first[n])
                                  for n in merged_step if ".encoder." in n),
        "decoder_cache_length": int(merged_step["present.0.decoder.key"].shape[2]),
    }
    ids, state = list(prompt), None
    for _ in range(len(ref["generated_ids"])):
        out = run(merged, decoder_feed(merged, ids if state is None else ids[-1:], state))
        ids.append(int(numpy.argmax(out["logits"][0, -1])))
        # The cross-attention cache of the first step is kept, as Optimum and transformers.js keep
        # it (optimum-cli's cached branch returns empty ones; ours returns the same tensors).
        state = {n: (state[n] if state is not None and ".encoder." in n else v) for n, v in out.items()}
    report["greedy"] = ids[len(prompt):]
    report["inputs"] = names
    return report


def text_tokenizer(pkg):
    """AutoTokenizer, else the package's tokenizer.json as it is (a class with no fast version,
    such as MarianTokenizer, needs sentencepiece files a tokenizer.json-only package lacks)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    try:
        return AutoTokenizer.from_pretrained(pkg, local_files_only=True)
    except (ImportError, OSError, TypeError, ValueError):
        return PreTrainedTokenizerFast.from_pretrained(pkg, local_files_only=True)


def optimum(pkg, merged):
    """ORTModelForSeq2SeqLM / ORTModelForSpeechSeq2Seq / ORTModelForVision2Seq (by the reference's task)
    .generate(); "class" is the class from_pretrained returned (Pix2Struct's own for a Pix2Struct package)."""
    import torch
    from transformers import AutoProcessor
    from optimum.onnxruntime import ORTModelForSeq2SeqLM, ORTModelForSpeechSeq2Seq, ORTModelForVision2Seq
    reference = os.environ["SEQ2SEQ_REFERENCE"]
    ref = load_json(reference)
    text, image = ref["task"] == "text2text-generation", ref["task"].startswith("image-to-text")
    cls = ORTModelForSeq2SeqLM if text else ORTModelForVision2Seq if image else ORTModelForSpeechSeq2Seq
    model = cls.from_pretrained(pkg, local_files_only=True, use_merged=merged)
    files = sorted(os.path.relpath(p, pkg) for p in (str(model.encoder.path), str(model.decoder.path)))
    n = len(ref["generated_ids"])
    with torch.no_grad():
        if image:  # the reference's image through the package's processor, as the source's was
            from PIL import Image
            processor = AutoProcessor.from_pretrained(pkg, local_files_only=True)
            encoded = processor(images=Image.open(os.path.join(os.path.dirname(reference), ref["image"])),
                                return_tensors="pt")
            out = model.generate(**encoded, max_new_tokens=n, do_sample=False, num_beams=1)
            text = processor.batch_decode(out, skip_special_tokens=True)[0]
        elif text:
            tokenizer = text_tokenizer(pkg)
            encoded = tokenizer(ref["text"], return_tensors="pt")
            out = model.generate(**encoded, max_new_tokens=n, do_sample=False, num_beams=1)
            text = tokenizer.decode(out[0], skip_special_tokens=True)
        else:
            processor = AutoProcessor.from_pretrained(pkg, local_files_only=True)
            features = processor(waveform(ref["samples"]), sampling_rate=ref["sampling_rate"],
                                 return_tensors="pt").input_features
            out = model.generate(input_features=features, max_new_tokens=n, do_sample=False, num_beams=1,
                                 language="en", task="transcribe")
            text = processor.batch_decode(out, skip_special_tokens=True)[0]
    return {"class": type(model).__name__, "files": files, "merged": bool(model.decoder.is_merged),
            "sequence": out[0].tolist(), "text": text}


def versus(ours, theirs, source, reference):
    """Two packages' files on the same inputs in ONNX Runtime: the largest difference of the
    encoder's output, the first step's logits and presents (decoder_model.onnx), one cached step's
    logits (decoder_with_past_model.onnx) and both merged branches' logits."""
    import onnxruntime
    ref = load_json(reference)
    kind = "text" if ref["task"] == "text2text-generation" else "speech"
    enc_in = encoder_feed(kind, source, ref)
    prompt, step_id = ref["decoder_prompt_ids"], ref["step"]["input_id"]
    answers = []
    for directory in (ours, theirs):
        def session(name):
            return onnxruntime.InferenceSession(os.path.join(directory, name + ".onnx"), providers=["CPUExecutionProvider"])

        def run(sess, ids, hidden, past=None, branch=None):
            feed = {"input_ids": numpy.array([ids], dtype=numpy.int64)}
            for i in sess.get_inputs():
                if i.name == "encoder_hidden_states":
                    feed[i.name] = hidden
                elif i.name == "encoder_attention_mask":
                    feed[i.name] = enc_in["attention_mask"]
                elif i.name.startswith("past_key_values."):
                    feed[i.name] = past[i.name.replace("past_key_values.", "present.")]
                elif i.name == "use_cache_branch":
                    feed[i.name] = numpy.array([branch])
            return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))

        hidden = session("encoder_model").run(None, enc_in)[0]
        first = run(session("decoder_model"), prompt, hidden)
        step = run(session("decoder_with_past_model"), [step_id], hidden, first)
        merged = session("decoder_model_merged")
        empty = {n: v[:, :, :0] for n, v in first.items() if n.startswith("present.")}
        merged_first = run(merged, prompt, hidden, empty, False)
        merged_step = run(merged, [step_id], hidden, merged_first, True)
        answers.append({"encoder": hidden, "first": first["logits"], "presents": [first[n] for n in sorted(empty)],
                        "step": step["logits"], "merged_first": merged_first["logits"], "merged_step": merged_step["logits"]})
    a, b = answers

    def biggest(x, y):
        return float(numpy.max(numpy.abs(x - y)))
    report = {key: biggest(a[key], b[key]) for key in a if key != "presents"}
    report["presents"] = max(biggest(x, y) for x, y in zip(a["presents"], b["presents"]))
    return report


def inspect(onnx_dir):
    import hashlib
    import onnx
    from onnx import numpy_helper

    def dims(value):
        return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]

    def nodes(graph):
        for node in graph.node:
            yield node.name
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    yield from nodes(attribute.g)

    def tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    yield from tensors(attribute.g)

    files, unique = {}, {}
    for name in sorted(os.listdir(onnx_dir)):
        if not name.endswith(".onnx"):
            continue
        path = os.path.join(onnx_dir, name)
        model = onnx.load(path)
        weights = 0
        for tensor in tensors(model.graph):
            data = numpy_helper.to_array(tensor).tobytes()
            weights += len(data)
            if name.startswith("decoder_model.") or name.startswith("decoder_with_past"):
                unique[(tensor.data_type, tuple(tensor.dims), hashlib.sha256(data).hexdigest())] = len(data)
        files[name] = {
            "inputs": [[v.name, v.type.tensor_type.elem_type, dims(v)] for v in model.graph.input],
            "outputs": [[v.name, v.type.tensor_type.elem_type, dims(v)] for v in model.graph.output],
            "nodes": list(nodes(model.graph)),
            "main_nodes": [n.op_type for n in model.graph.node],
            "size": os.path.getsize(path),
            "weight_bytes": weights,
        }
    return {"files": files, "unique_weight_bytes": sum(unique.values())}


def tags(onnx_dir):
    """Per ONNX file: onnx.checker's verdict, whether ONNX Runtime loads it, and the `hierarchy_tag`
    entries of NodeProto.metadata_props (--embed-hierarchy) of every node, If branches included."""
    import collections
    import onnx
    import onnxruntime

    def nodes(graph, depth=0):
        for node in graph.node:
            yield node, depth
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    yield from nodes(sub, depth + 1)

    files = {}
    for name in sorted(os.listdir(onnx_dir)):
        if not name.endswith(".onnx"):
            continue
        path = os.path.join(onnx_dir, name)
        try:
            onnx.checker.check_model(path)
            checker = "ok"
        except Exception as e:  # the verdict is the report
            checker = str(e)
        onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        counts, untagged, in_branches = collections.Counter(), 0, 0
        for node, depth in nodes(onnx.load(path).graph):
            found = [p.value for p in node.metadata_props if p.key == "hierarchy_tag"]
            if len(found) != 1:
                untagged += 1
                continue
            counts[found[0]] += 1
            in_branches += depth > 0
        files[name] = {"checker": checker, "ort_loads": True, "tags": counts, "untagged": untagged,
                       "tagged_in_subgraphs": in_branches}
    return {"files": files}


def main(argv):
    if argv[0] == "inspect":
        result = inspect(argv[1])
    elif argv[0] == "tags":
        result = tags(argv[1])
    elif argv[0] == "ort":
        result = ort(*argv[1:5])
    elif argv[0] == "optimum":
        result = optimum(argv[1], "--no-merged" not in argv[2:])
    elif argv[0] == "versus":
        result = versus(*argv[1:5])
    elif argv[0] == "optimum-each":  # PKG REFERENCE pairs in one process (one import of torch)
        result = {}
        for pkg, reference in zip(argv[1::2], argv[2::2]):
            os.environ["SEQ2SEQ_REFERENCE"] = reference
            try:
                result[pkg] = optimum(pkg, True)
            except Exception as error:  # noqa: BLE001  (reported per package; the test names it)
                result[pkg] = {"error": "%s: %s" % (type(error).__name__, str(error)[-1500:])}
    else:
        raise SystemExit("usage: seq2seq_clients.py ort PKG ONNXDIR SOURCE REF | optimum PKG [--no-merged] | "
                         "optimum-each PKG REF ... | inspect ONNXDIR | versus PKG OTHERPKG SOURCE REF | tags ONNXDIR")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
