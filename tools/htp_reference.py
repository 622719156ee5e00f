"""The reference check: an exported ONNX model computes what the torch model it came from computes.

optimum-cli compares its ONNX outputs with the PyTorch model after every export; so does every htp
export.  The inputs differ from the trace's dummy in the dynamic axes (another batch, another
sequence length or audio length), and text inputs are real token ids from the source's tokenizer on
sentences with its special tokens, padded, so the attention mask has zeros.  ONNX Runtime (the
exporter's interpreter's ``onnxruntime``) runs the file; torch runs the same forward the export
traced.  An output passes when every element is within ``atol + rtol * |torch|`` (numpy.allclose's
rule with Optimum's rtol of 1e-5); the largest absolute difference is recorded either way.

Decoders run two steps: the prompt with an empty cache, then one cached step fed with the step's
own presents (torch's to torch, ONNX Runtime's to the ONNX model), so the second step's logits
check the cache too.

The result goes into the module table as "reference_check" and from there into
export_metadata.json; a failure is ``ReferenceMismatch`` (the exporter's exit status 4).
"""

import json
import math
import os
import sys

import torch

DEFAULT_ATOL = 1e-4
RTOL = 1e-5

# Sentences for real token ids: different lengths, punctuation, digits, case, a non-ASCII letter.
SENTENCES = [
    "Hello world! This is a test.",
    "The quick brown fox jumps over 13 lazy dogs, and then it rests under the old oak tree.",
    "Zurich's caf\u00e9 opens at 9.",
    "A fourth sentence, short.",
    "Numbers like 2024 and 3.14 appear here too.",
    "Last one.",
]


class HeldRandomness:
    """A model that draws random numbers in its forward (VITS's noise, hence its waveform's length) computes
    nothing a check can hold on either side. Inside `with HELD:` torch's draws are held at their mean (zeros
    from randn and rand, `mean` from normal, `low` from uniform_), and `calls` counts them; the ONNX file's
    RandomNormal/RandomUniform(Like) nodes are held the same way in a copy for the check (`held_copy`). What
    is checked is everything the draws feed; their scale is a constant of the graph."""

    NAMES = ("randn", "randn_like", "rand", "rand_like", "normal")

    def __init__(self):
        self.calls = 0
        self._saved = None
        self._depth = 0

    def __enter__(self):
        self._depth += 1
        if self._depth > 1:
            return self
        saved = {name: getattr(torch, name) for name in self.NAMES}
        saved.update({"Tensor.normal_": torch.Tensor.normal_, "Tensor.uniform_": torch.Tensor.uniform_})
        self._saved = saved

        def counted(function):
            def held(*args, **kwargs):
                self.calls += 1
                return function(*args, **kwargs)
            return held

        def normal(mean, std=1.0, *args, **kwargs):
            if torch.is_tensor(mean):
                return mean + torch.zeros_like(std) if torch.is_tensor(std) else mean.clone()
            if torch.is_tensor(std):
                return torch.full_like(std, float(mean))
            return torch.full(kwargs.get("size", args[0] if args else ()), float(mean))

        torch.randn = counted(lambda *size, **kw: torch.zeros(*size, **{k: v for k, v in kw.items() if k != "generator"}))
        torch.rand = counted(lambda *size, **kw: torch.zeros(*size, **{k: v for k, v in kw.items() if k != "generator"}))
        torch.randn_like = counted(lambda t, **kw: torch.zeros_like(t, **kw))
        torch.rand_like = counted(lambda t, **kw: torch.zeros_like(t, **kw))
        torch.normal = counted(normal)
        torch.Tensor.normal_ = counted(lambda t, mean=0.0, std=1.0, **kw: t.fill_(mean))
        torch.Tensor.uniform_ = counted(lambda t, a=0.0, b=1.0, **kw: t.fill_(a))
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth:
            return False
        for name, function in self._saved.items():
            if name.startswith("Tensor."):
                setattr(torch.Tensor, name.split(".", 1)[1], function)
            else:
                setattr(torch, name, function)
        return False


# The one instance the check's torch runs go through: its count tells whether the file needs a held copy.
HELD = HeldRandomness()

# ONNX's random draws the check holds, with the attribute that is their value at the mean (0 by default).
HELD_NODES = {"RandomNormal": "mean", "RandomNormalLike": "mean", "RandomUniform": "low", "RandomUniformLike": "low"}
UNHELD_NODES = ("Bernoulli", "Multinomial")


def held_copy(path, notes):
    """A copy of the ONNX file beside it (its external data resolves the same) whose random draws give their
    mean: a RandomNormal(Like)/RandomUniform(Like) node becomes a constant of its shape. Returns the copy's
    path, or None when the file draws nothing. The caller removes the copy."""
    import onnx
    from onnx import helper
    model = onnx.load(path, load_external_data=False)
    held = []

    def hold(graph):
        nodes = []
        for node in graph.node:
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else list(attribute.graphs)):
                    hold(sub)
            if node.op_type in UNHELD_NODES:
                raise ReferenceMismatch("the model draws from %s at run time (node %r): no check can hold its outputs"
                                        % (node.op_type, node.name))
            if node.op_type not in HELD_NODES:
                nodes.append(node)
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            value = float(attrs.get(HELD_NODES[node.op_type], 0.0))
            dtype = attrs.get("dtype", onnx.TensorProto.FLOAT)
            filled = helper.make_tensor("value", dtype, [1], [value])
            held.append(node.op_type)
            shape = node.output[0] + "/held_shape"
            if node.op_type.endswith("Like"):  # the shape of its input
                nodes.append(helper.make_node("Shape", [node.input[0]], [shape], name=shape))
            else:  # the shape its attribute gives
                size = helper.make_tensor("shape", onnx.TensorProto.INT64, [len(attrs["shape"])], list(attrs["shape"]))
                nodes.append(helper.make_node("Constant", [], [shape], name=shape, value=size))
            nodes.append(helper.make_node("ConstantOfShape", [shape], list(node.output), name=node.name + "/held", value=filled))
        del graph.node[:]
        graph.node.extend(nodes)

    hold(model.graph)
    if not held:
        return None
    copy = os.path.join(os.path.dirname(os.path.abspath(path)), ".held-random." + os.path.basename(path))
    onnx.save(model, copy)
    notes.append("the model draws random numbers (%s): both sides ran with every draw held at its mean"
                 % ", ".join("%d %s" % (held.count(op), op) for op in sorted(set(held))))
    return copy


def held_session(path, notes, open_session):
    """`open_session(path)` of the file with its random draws held (`held_copy`), or of the file itself when
    it draws nothing; the copy is removed once the session holds the graph."""
    held = held_copy(path, notes)
    try:
        return open_session(held or path)
    finally:
        if held:
            os.remove(held)


class ReferenceMismatch(Exception):
    """An output of the ONNX model is not within the tolerance of torch's."""


class NotRun(Exception):
    """The check cannot run here (no onnxruntime, ...): the reason is recorded, the export goes on."""


def onnx_session(path, as_written=True):
    """An ONNX Runtime CPU session for the file. `as_written`: the graph as the file has it, for the
    reference check; otherwise with the basic optimisations and prepacked weights, for sessions that run
    many times (a variant's greedy decoding)."""
    try:
        import onnxruntime
    except ImportError as error:
        raise NotRun("onnxruntime is not importable by the exporter's interpreter (%s)" % error)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    if as_written:
        # The check is about what the file computes, and its few runs do not repay ONNX Runtime's
        # rewrites: graph optimisations (even the basic level's constant folding) and MLAS's repacking of
        # every MatMul weight into its GEMM layout made a GPT-2-small file's check cost 1.7 s inside an
        # export here, 1.1 s without them. (Optimum's validation keeps the basic level for CUDA's sake,
        # its comment says; this check runs on the CPU.)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.add_session_config_entry("session.disable_prepacking", "1")
    else:
        # The basic level (constant folding, redundant nodes), as Optimum's own validation: the full
        # level's fusions and layout passes cost seconds on a large graph.
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


NUMPY_OF_ONNX = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
                 "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(bool)": "bool",
                 "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def run_onnx(session, inputs):
    """ONNX Runtime's outputs {name: numpy array} for the graph's inputs taken from `inputs`.

    A `token_type_ids` the torch forward was not given is fed as zeros, as Optimum and
    transformers.js feed it: a package with one the model does not take (GPT-2's classifiers, whose
    forward adds an embedding for it) then fails the comparison, as it fails in those clients."""
    feeds = {}
    for arg in session.get_inputs():
        if arg.name == "token_type_ids" and arg.name not in inputs and "input_ids" in inputs:
            inputs = dict(inputs, token_type_ids=torch.zeros_like(inputs["input_ids"]))
        if arg.name not in inputs:
            raise ReferenceMismatch("the ONNX model takes an input %r that the torch forward was not given" % arg.name)
        value = inputs[arg.name]
        array = value.detach().cpu().numpy() if torch.is_tensor(value) else value
        dtype = NUMPY_OF_ONNX.get(arg.type)
        feeds[arg.name] = array.astype(dtype) if dtype and str(array.dtype) != dtype else array
    names = [o.name for o in session.get_outputs()]
    try:
        produced = dict(zip(names, session.run(names, feeds)))
    except Exception as error:  # onnxruntime's own failure class is not importable by name across versions
        if "ONNXRuntimeError" not in str(error) and type(error).__module__.split(".")[0] != "onnxruntime":
            raise
        # torch ran these inputs; a graph that cannot keeps a size of the trace (a Reshape, an expand)
        # and fails in every client fed other sizes.
        raise ReferenceMismatch("ONNX Runtime cannot run the model on inputs torch runs (%s): %s"
                                % (", ".join("%s %s" % (n, list(a.shape)) for n, a in feeds.items()),
                                   str(error).splitlines()[0][:300]))
    return produced


def check_declared_shapes(session, inputs, produced):
    """Every output of a one-file model has the shape the file declares. A symbolic dim names one size
    wherever it appears: ONNX Runtime's optimiser takes two tensors whose dims share a name to be equally
    long (the file as written runs, an optimising client's session fails), so an output axis named after
    an input's axis but sized otherwise (Decision Transformer's 3 x steps called sequence_length) is a
    defect, as is a fixed size the output does not have. (An encoder-decoder's merged decoder is not held
    to it: its first step's past inputs are empty placeholders named as the cache they stand for.)"""
    sizes = {}
    for arg in session.get_inputs():
        if arg.name not in inputs:
            continue
        for dim, size in zip(arg.shape or [], inputs[arg.name].shape):
            if isinstance(dim, str):
                sizes.setdefault(dim, (size, "input %r" % arg.name))
    for arg in session.get_outputs():
        actual = produced[arg.name].shape
        for axis, (dim, size) in enumerate(zip(arg.shape or [], actual)):
            if isinstance(dim, int) and dim > 0 and dim != size:
                raise ReferenceMismatch("output %r axis %d is declared of size %d but ONNX Runtime computes %d"
                                        % (arg.name, axis, dim, size))
            if isinstance(dim, str):
                bound, where = sizes.setdefault(dim, (size, "output %r" % arg.name))
                if bound != size:
                    raise ReferenceMismatch(
                        "output %r axis %d is declared %r, which %s makes %d, but ONNX Runtime computes %d: an "
                        "optimising client takes the two for one size and fails" % (arg.name, axis, dim, where, bound, size))


def as_numpy(value):
    return value.detach().float().cpu().numpy() if value.is_floating_point() else value.detach().cpu().numpy()


def compare_outputs(expected, produced, atol, step):
    """One record per ONNX output that torch also gave: its max abs diff and whether it passes."""
    import numpy
    records = []
    for name, actual in produced.items():
        if name not in expected or not torch.is_tensor(expected[name]):
            continue
        want = as_numpy(expected[name])
        if tuple(want.shape) != tuple(actual.shape):
            raise ReferenceMismatch("%soutput %r has shape %s in ONNX Runtime but %s in torch"
                                    % (step, name, list(actual.shape), list(want.shape)))
        got = actual.astype(want.dtype) if actual.dtype != want.dtype else actual
        if want.dtype.kind in "fc":
            diff = float(numpy.nanmax(numpy.abs(got - want))) if want.size else 0.0
            passed = bool(numpy.allclose(got, want, atol=atol, rtol=RTOL, equal_nan=True))
            if math.isnan(diff):
                diff = float("inf")
        else:
            diff = float(numpy.max(numpy.abs(got.astype("int64") - want.astype("int64")))) if want.size else 0.0
            passed = diff == 0
        records.append({"output": name, "max_abs_diff": diff, "passed": passed, "shape": list(want.shape)})
    if not records:
        raise ReferenceMismatch("%sno output of the ONNX model (%s) is one torch returns (%s)"
                                % (step, ", ".join(produced), ", ".join(expected)))
    return records


def shapes(inputs):
    return {name: list(value.shape) for name, value in inputs.items() if torch.is_tensor(value)}


def step_record(name, inputs, expected, produced, atol):
    outputs = compare_outputs(expected, produced, atol, "%s: " % name if name else "")
    return {"step": name, "inputs": shapes(inputs), "outputs": outputs}


# An output ONNX Runtime misses by no more than this many times torch's own float32-to-float64 spread
# (plus atol) is judged by that spread: each side can sit on either side of the float64 value.
SPREAD_FACTOR = 2


def allow_torch_spread(step, expected, float64_outputs, atol, notes):
    """Where an output fails, asks torch's own float64 run whether float32 determines that output at
    all on these inputs. A top-k over near-equal scores (a DETR-like query selection on untrained
    weights) picks other queries at another precision, so torch's float32 misses its own float64 run
    by as much as ONNX Runtime misses torch. A difference within SPREAD_FACTOR times that spread (plus
    atol) is the model's, not the export's: the output passes, its spread recorded and noted."""
    import numpy
    failing = [out for out in step["outputs"] if not out["passed"]]
    if not failing:
        return
    try:
        wide = float64_outputs()
    except Exception as error:  # a model that cannot run in float64 keeps its verdict
        notes.append("torch's float64 run, which would tell a precision-unstable output, failed: %s"
                     % str(error).splitlines()[0][:200] if str(error) else type(error).__name__)
        return
    for out in failing:
        name = out["output"]
        if name not in wide or not torch.is_tensor(wide[name]) or not wide[name].is_floating_point():
            continue
        spread = float(numpy.nanmax(numpy.abs(as_numpy(expected[name]) - as_numpy(wide[name])))) if wide[name].numel() else 0.0
        out["torch_float64_spread"] = spread
        if out["max_abs_diff"] <= SPREAD_FACTOR * spread + atol:
            out["passed"] = True
            notes.append("output %r: torch's float32 run differs from its own float64 run by %.3g on these inputs, "
                         "so float32 does not determine it; ONNX Runtime's difference %.3g is within %d times that"
                         % (name, spread, out["max_abs_diff"], SPREAD_FACTOR))


def judge(steps, atol, tolerance_origin, notes, log):
    """The check's record, with the largest difference of any output at any step (logged when the
    check passed); raises ReferenceMismatch naming the worst failing output."""
    worst = max((out["max_abs_diff"] for step in steps for out in step["outputs"]), default=0.0)
    record = {"status": "passed", "atol": atol, "rtol": RTOL, "atol_origin": tolerance_origin,
              "max_abs_diff": worst, "steps": steps, "notes": notes}
    failing = [(step["step"], out) for step in steps for out in step["outputs"] if not out["passed"]]
    if failing:
        step, out = max(failing, key=lambda item: item[1]["max_abs_diff"])
        raise ReferenceMismatch("output %r%s differs from torch by %.3g (allowed %.3g + %.0e * |torch|)%s"
                                % (out["output"], " at the %s step" % step if step else "", out["max_abs_diff"],
                                   atol, RTOL, "; %d more output(s) fail" % (len(failing) - 1) if len(failing) > 1 else ""))
    log("reference check passed: max abs diff %.3g (atol %.3g)" % (worst, atol))
    return record


def tolerance(requested, model, task, source_dir, optimum_atol=None):
    """(atol, where it came from): --atol, else the default, or Optimum's ATOL_FOR_VALIDATION for the
    model type and task when that is larger (Optimum knows which architectures run noisier)."""
    if requested:
        return requested, "--atol"
    if optimum_atol is None:
        import htp_optimum
        try:
            optimum_atol = htp_optimum.atol(htp_optimum.export_config(model, task, source_dir), task)
        except Exception:  # no configuration for it: the default alone
            optimum_atol = None
    if optimum_atol and optimum_atol > DEFAULT_ATOL:
        return optimum_atol, "optimum's ATOL_FOR_VALIDATION for this model type"
    return DEFAULT_ATOL, "default"


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------

class FileTokenizer:
    """tokenizer.json through the tokenizers library, with the two things token_ids asks of a transformers
    tokenizer: ids with the special tokens (its post-processor adds them, as transformers' fast tokenizer
    does) and the pad id. For a model that did not import transformers (a --model factory): importing it for
    the tokenizer alone takes seconds. Any of the source's own ids serve the check: both sides get the same."""

    def __init__(self, source_dir):
        import tokenizers
        self.tokenizer = tokenizers.Tokenizer.from_file(os.path.join(source_dir, "tokenizer.json"))
        self.pad_token_id = None
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            try:
                with open(os.path.join(source_dir, name), encoding="utf-8") as handle:
                    pad = json.load(handle).get("pad_token")
            except (OSError, ValueError, AttributeError):
                continue
            pad = pad.get("content") if isinstance(pad, dict) else pad
            if isinstance(pad, str) and self.tokenizer.token_to_id(pad) is not None:
                self.pad_token_id = self.tokenizer.token_to_id(pad)
                break

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}


def load_tokenizer(source_dir):
    """The source's tokenizer through transformers, or None (no tokenizer files, no transformers). Where
    transformers is not imported yet and the source has a tokenizer.json, that file through tokenizers."""
    if "transformers" not in sys.modules and os.path.isfile(os.path.join(source_dir, "tokenizer.json")):
        try:
            return FileTokenizer(source_dir)
        except Exception:  # not a file tokenizers reads: transformers may still load the source's tokenizer
            pass
    try:
        import transformers
        from transformers.utils import logging
        logging.set_verbosity_error()
        return transformers.AutoTokenizer.from_pretrained(source_dir, local_files_only=True)
    except Exception:  # no tokenizer: the generator's ids stand in, and the record says so
        return None


# config.json keys that bound a sequence (learned position embeddings); the smallest present counts.
POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_target_positions")


def position_limit(config):
    """The longest sequence the model's position embeddings take (a config dict or object), less 2 for
    the offset some families add (RoBERTa's padding index, BART's learned offset); None when unbounded."""
    get = config.get if isinstance(config, dict) else (lambda key: getattr(config, key, None))
    limits = [get(key) for key in POSITION_KEYS]
    limits = [value for value in limits if isinstance(value, int) and not isinstance(value, bool) and value > 0]
    return max(min(limits) - 2, 2) if limits else None


def token_ids(tokenizer, count, avoid_length, rows, notes, pad=True, limit=None):
    """input_ids and attention_mask [count, length] of `count` sentences with the tokenizer's special tokens.

    `length` differs from `avoid_length` (the trace's). Ids at or past the embedding's `rows` are
    folded into range (noted: validate reports the tokenizer), so torch can run at all. Without
    padding (decoders: no masked rows), every sentence is cut to the shortest one's length.
    """
    sentences = [SENTENCES[i % len(SENTENCES)] for i in range(count)]
    encoded = [tokenizer(s, add_special_tokens=True)["input_ids"] for s in sentences]
    encoded = [ids for ids in encoded if ids] or [[0]]
    while len(encoded) < count:
        encoded.append(encoded[len(encoded) % max(len(encoded), 1)])
    if pad:
        length = max(len(ids) for ids in encoded)
    else:
        length = min(len(ids) for ids in encoded)
    if limit and length > limit:
        length = limit
    if length == avoid_length:
        length += 1 if pad and (not limit or length < limit) else -1
    length = max(length, 1)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((count, length), int(pad_id), dtype=torch.int64)
    mask = torch.zeros((count, length), dtype=torch.int64)
    for row, sentence_ids in enumerate(encoded):
        if not pad and len(sentence_ids) < length:  # repeat to fill: still the tokenizer's ids
            sentence_ids = (sentence_ids * (length // len(sentence_ids) + 1))
        if len(sentence_ids) > length:  # cut inside, keeping the closing special token (EOS, [SEP])
            sentence_ids = sentence_ids[:length - 1] + sentence_ids[-1:] if length > 1 else sentence_ids[:1]
        ids[row, :len(sentence_ids)] = torch.tensor(sentence_ids, dtype=torch.int64)
        mask[row, :len(sentence_ids)] = 1
    if rows and int(ids.max()) >= rows:
        notes.append("the tokenizer gives ids up to %d but the embedding has %d rows; ids folded into range "
                     "(validate reports the tokenizer)" % (int(ids.max()), rows))
        ids = ids % rows
    return ids, mask


def embedding_rows(model):
    """Rows of the input embedding (what token ids must stay below), or None."""
    try:
        embeddings = model.get_input_embeddings()
        return int(embeddings.weight.shape[0]) if embeddings is not None else None
    except Exception:  # a model without the transformers API
        return None


def text_ids(source_dir, model, count, avoid_length, notes):
    """The source tokenizer's padded (ids, mask) for `count` sentences, or None without a tokenizer."""
    tokenizer = load_tokenizer(source_dir)
    if tokenizer is None:
        return None
    return token_ids(tokenizer, count, avoid_length, embedding_rows(model), notes,
                     limit=position_limit(getattr(model, "config", {})))


def with_text_ids(inputs, tokens, model, notes):
    """`inputs` with input_ids/attention_mask replaced by `tokens` (text_ids' result, same shape
    rules), or by random ids when the source has no tokenizer (`tokens` None)."""
    if "input_ids" not in inputs:
        return inputs
    shape = list(inputs["input_ids"].shape)
    if tokens is None:
        # Fresh ids, not the trace's formula: a graph frozen on the dummy's values must see others.
        notes.append("no tokenizer in the source: random ids")
        rows = embedding_rows(model) or int(inputs["input_ids"].max()) + 1
        generator = torch.Generator().manual_seed(1)
        return dict(inputs, input_ids=torch.randint(0, max(rows, 1), shape, generator=generator, dtype=torch.int64))
    ids, mask = tokens
    if ids.shape[-1] != shape[-1]:
        raise RuntimeError("the tokenizer's length %d differs from the generated inputs' %d" % (ids.shape[-1], shape[-1]))
    out = dict(inputs)
    out["input_ids"] = ids.reshape(shape)
    if "attention_mask" in out and list(out["attention_mask"].shape) == shape:
        out["attention_mask"] = mask.reshape(shape)
    return out
