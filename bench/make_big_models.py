#!/usr/bin/python3
"""Make the large models the benchmarks of modelexport run on.

Usage:  /usr/bin/python3 bench/make_big_models.py OUTDIR [--only NAME ...] [--force]

Writes, in Hugging Face layout (config.json, model.onnx, tokenizer files):

  OUTDIR/fixtures/       tests/fixtures/make_models.py's "text-classification-prebuilt"
                         (the source of the tokenizer files; its onnx/model.onnx is the
                         tiny model the consumer-project benchmark declares 50 times)
  OUTDIR/bert-base/      BERT-base (hidden 768, 12 layers, 12 heads, intermediate 3072,
                         vocab 30522; ~110 M parameters) as BertForSequenceClassification,
                         built from the modeling source of make_models.py and exported
                         with torch.onnx.export (opset 14, scope-named nodes): ~440 MB
  OUTDIR/bert-base-external/  the same BERT-base graph with every initializer moved to
                         model.onnx_data (model.onnx is then ~0.2 MB): separates parsing
                         the weights from working on the graph in the timings
  OUTDIR/big-external/   a > 2 GiB feature-extraction graph (Gather embedding, attention
                         mask Mul, a stack of 4096x4096 MatMul/Add/Relu layers) stored as
                         ONNX external data: a small model.onnx plus model.onnx_data,
                         written with onnx.helper and numpy one tensor at a time

Everything is seeded. A model is regenerated only when its files are missing or
differ (size, mtime) from what OUTDIR/.stamps/<name>.json recorded when it was
made; --force regenerates anyway.  Needs torch, onnx and numpy (Debian's
/usr/bin/python3 has them).
"""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MAKE_MODELS = os.path.join(REPO, "tests", "fixtures", "make_models.py")

STAMP_VERSION = 1
FIXTURE = "text-classification-prebuilt"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]

# BERT-base, as bert-base-uncased's config.json has it.
BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}

# The external-data model: 8192 x 4096 embedding (128 MiB) + 33 layers of a
# 4096 x 4096 weight (64 MiB) and bias: 2240.5 MiB = 2.19 GiB of float32.
BIG_HIDDEN = 4096
BIG_VOCAB = 8192
BIG_LAYERS = 33
BIG_MIN_DATA_BYTES = int(2.1 * 2**30)
ALIGN = 4096  # offsets of external tensors, page aligned (mmap-friendly)


def log(message):
    print("make_big_models: " + message, flush=True)


# --------------------------------------------------------------------------
# Stamps: "the files exist and look right"
# --------------------------------------------------------------------------

def stamp_path(outdir, name):
    return os.path.join(outdir, ".stamps", name + ".json")


def file_facts(directory, names):
    facts = {}
    for n in names:
        st = os.stat(os.path.join(directory, n))
        facts[n] = [st.st_size, st.st_mtime_ns]
    return facts


def is_current(outdir, name, names):
    try:
        with open(stamp_path(outdir, name), encoding="utf-8") as f:
            stamp = json.load(f)
        return (stamp.get("version") == STAMP_VERSION and
                stamp.get("files") == file_facts(os.path.join(outdir, name), names))
    except (OSError, ValueError):
        return False


def write_stamp(outdir, name, names, extra=None):
    os.makedirs(os.path.join(outdir, ".stamps"), exist_ok=True)
    stamp = {"version": STAMP_VERSION, "files": file_facts(os.path.join(outdir, name), names)}
    stamp.update(extra or {})
    with open(stamp_path(outdir, name), "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=2, sort_keys=True)
        f.write("\n")


def write_json(path, value):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


# --------------------------------------------------------------------------
# fixtures: the tiny prebuilt model and its tokenizer files
# --------------------------------------------------------------------------

FIXTURE_FILES = ["config.json", "onnx/model.onnx"] + TOKENIZER_FILES


def make_fixture(outdir, force):
    name = "fixtures"
    if not force and is_current(outdir, name, [os.path.join(FIXTURE, f) for f in FIXTURE_FILES]):
        log("fixtures: up to date")
        return
    log("fixtures: running tests/fixtures/make_models.py --only " + FIXTURE)
    directory = os.path.join(outdir, name)
    fresh_dir(directory)
    subprocess.run([sys.executable, MAKE_MODELS, directory, "--only", FIXTURE], check=True)
    write_stamp(outdir, name, [os.path.join(FIXTURE, f) for f in FIXTURE_FILES])


def copy_tokenizer(outdir, directory):
    for f in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(outdir, "fixtures", FIXTURE, f), os.path.join(directory, f))


# --------------------------------------------------------------------------
# bert-base: torch.onnx.export of make_models.py's BertForSequenceClassification
# --------------------------------------------------------------------------

BERT_FILES = ["model.onnx", "config.json"] + TOKENIZER_FILES


def load_make_models():
    spec = importlib.util.spec_from_file_location("make_models", MAKE_MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_bert_base(outdir, force):
    name = "bert-base"
    if not force and is_current(outdir, name, BERT_FILES):
        log("bert-base: up to date")
        return
    import warnings

    import torch

    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    started = time.monotonic()
    mm = load_make_models()
    modeling = mm.load_modeling()  # the fixture's plain-torch BERT, transformers' names

    config = mm.bert_config("BertForSequenceClassification", ["NEGATIVE", "POSITIVE"])
    config.update(BERT_BASE)
    config["_name_or_path"] = "modelexport-bench/bert-base"

    torch.manual_seed(0)
    model = modeling.BertForSequenceClassification(config).eval()
    parameters = sum(p.numel() for p in model.parameters())
    log("bert-base: %.1f M parameters, exporting with torch %s" % (parameters / 1e6, torch.__version__))

    directory = os.path.join(outdir, name)
    fresh_dir(directory)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, config["vocab_size"], (1, 8), generator=generator, dtype=torch.int64)
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "token_type_ids": torch.zeros_like(input_ids),
    }
    partial = os.path.join(directory, "model.onnx.partial")
    with torch.no_grad():
        # The fixture's own prebuilt export: opset 14, input_ids/attention_mask/
        # token_type_ids -> logits, dynamic batch and sequence axes.
        mm.export_prebuilt(model, inputs, partial)
    os.replace(partial, os.path.join(directory, "model.onnx"))
    del model

    write_json(os.path.join(directory, "config.json"), config)
    copy_tokenizer(outdir, directory)
    size = os.path.getsize(os.path.join(directory, "model.onnx"))
    write_stamp(outdir, name, BERT_FILES, {"parameters": parameters})
    log("bert-base: model.onnx %.1f MB in %.0f s" % (size / 1e6, time.monotonic() - started))


def make_bert_base_external(outdir, force):
    name = "bert-base-external"
    if not force and is_current(outdir, name, BIG_FILES):
        log("bert-base-external: up to date")
        return
    import onnx

    if not is_current(outdir, "bert-base", BERT_FILES):
        make_bert_base(outdir, False)
    started = time.monotonic()
    source = os.path.join(outdir, "bert-base")
    directory = os.path.join(outdir, name)
    fresh_dir(directory)
    model = onnx.load(os.path.join(source, "model.onnx"))
    partial = os.path.join(directory, "model.onnx.partial")
    onnx.save_model(model, partial, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx_data", size_threshold=1024)
    del model
    os.replace(partial, os.path.join(directory, "model.onnx"))
    for f in ["config.json"] + TOKENIZER_FILES:
        shutil.copyfile(os.path.join(source, f), os.path.join(directory, f))
    write_stamp(outdir, name, BIG_FILES)
    log("bert-base-external: model.onnx %d bytes in %.0f s"
        % (os.path.getsize(os.path.join(directory, "model.onnx")), time.monotonic() - started))


# --------------------------------------------------------------------------
# big-external: > 2 GiB of weights in model.onnx_data
# --------------------------------------------------------------------------

BIG_FILES = ["model.onnx", "model.onnx_data", "config.json"] + TOKENIZER_FILES


def big_config():
    return {
        "_name_or_path": "modelexport-bench/big-external",
        "architectures": ["BertModel"],
        "hidden_act": "relu",
        "hidden_size": BIG_HIDDEN,
        "intermediate_size": BIG_HIDDEN,
        "model_type": "bert",
        "num_attention_heads": 32,
        "num_hidden_layers": BIG_LAYERS,
        "max_position_embeddings": 512,
        "pad_token_id": 0,
        "torch_dtype": "float32",
        "type_vocab_size": 2,
        "vocab_size": BIG_VOCAB,
    }


class ExternalWriter:
    """Appends tensors to the data file and returns external TensorProtos."""

    def __init__(self, path, location):
        self.file = open(path, "wb")
        self.location = location
        self.offset = 0

    def add(self, name, array):
        import onnx

        pad = (-self.offset) % ALIGN
        if pad:
            self.file.write(b"\0" * pad)
            self.offset += pad
        data = array.tobytes()
        self.file.write(data)
        tensor = onnx.TensorProto()
        tensor.name = name
        tensor.data_type = onnx.TensorProto.FLOAT
        tensor.dims.extend(array.shape)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", str(self.offset)), ("length", str(len(data)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.offset += len(data)
        return tensor

    def close(self):
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def make_big_external(outdir, force):
    name = "big-external"
    if not force and is_current(outdir, name, BIG_FILES):
        log("big-external: up to date")
        return
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    started = time.monotonic()
    directory = os.path.join(outdir, name)
    fresh_dir(directory)
    data_partial = os.path.join(directory, "model.onnx_data.partial")
    writer = ExternalWriter(data_partial, "model.onnx_data")
    rng = np.random.default_rng(0)
    scale = np.float32(1.0 / np.sqrt(BIG_HIDDEN))

    initializers, nodes = [], []
    initializers.append(writer.add("embeddings.word_embeddings.weight",
                                   rng.standard_normal((BIG_VOCAB, BIG_HIDDEN), dtype=np.float32)))
    initializers.append(helper.make_tensor("/embeddings/Constant_output_0", TensorProto.INT64, [1], [-1]))
    nodes += [
        helper.make_node("Gather", ["embeddings.word_embeddings.weight", "input_ids"],
                         ["/embeddings/word_embeddings/Gather_output_0"],
                         name="/embeddings/word_embeddings/Gather", axis=0),
        helper.make_node("Cast", ["attention_mask"], ["/embeddings/Cast_output_0"],
                         name="/embeddings/Cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["/embeddings/Cast_output_0", "/embeddings/Constant_output_0"],
                         ["/embeddings/Unsqueeze_output_0"], name="/embeddings/Unsqueeze"),
        helper.make_node("Mul", ["/embeddings/word_embeddings/Gather_output_0", "/embeddings/Unsqueeze_output_0"],
                         ["/embeddings/Mul_output_0"], name="/embeddings/Mul"),
    ]
    hidden = "/embeddings/Mul_output_0"
    for i in range(BIG_LAYERS):
        prefix = "encoder.layer.%d.dense." % i
        scope = "/encoder/layer.%d" % i
        weight = rng.standard_normal((BIG_HIDDEN, BIG_HIDDEN), dtype=np.float32)
        weight *= scale
        initializers.append(writer.add(prefix + "weight", weight))
        del weight
        initializers.append(writer.add(prefix + "bias", np.zeros(BIG_HIDDEN, dtype=np.float32)))
        last = i == BIG_LAYERS - 1
        nodes += [
            helper.make_node("MatMul", [hidden, prefix + "weight"], [scope + "/dense/MatMul_output_0"],
                             name=scope + "/dense/MatMul"),
            helper.make_node("Add", [prefix + "bias", scope + "/dense/MatMul_output_0"],
                             [scope + "/dense/Add_output_0"], name=scope + "/dense/Add"),
            helper.make_node("Relu", [scope + "/dense/Add_output_0"],
                             ["last_hidden_state" if last else scope + "/activation/Relu_output_0"],
                             name=scope + "/activation/Relu"),
        ]
        hidden = scope + "/activation/Relu_output_0"
    writer.close()
    data_bytes = writer.offset

    axes = ["batch_size", "sequence_length"]
    graph = helper.make_graph(
        nodes, "main_graph",
        inputs=[helper.make_tensor_value_info("input_ids", TensorProto.INT64, axes),
                helper.make_tensor_value_info("attention_mask", TensorProto.INT64, axes)],
        outputs=[helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, axes + [BIG_HIDDEN])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="modelexport-bench", producer_version="1")
    model_partial = os.path.join(directory, "model.onnx.partial")
    with open(model_partial, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(data_partial, os.path.join(directory, "model.onnx_data"))
    os.replace(model_partial, os.path.join(directory, "model.onnx"))
    # By path: the checker then also resolves the external data.
    onnx.checker.check_model(os.path.join(directory, "model.onnx"))

    write_json(os.path.join(directory, "config.json"), big_config())
    copy_tokenizer(outdir, directory)
    if data_bytes < BIG_MIN_DATA_BYTES:
        raise RuntimeError("model.onnx_data has only %d bytes" % data_bytes)
    write_stamp(outdir, name, BIG_FILES, {"data_bytes": data_bytes})
    log("big-external: model.onnx %d bytes, model.onnx_data %.2f GiB in %.0f s"
        % (os.path.getsize(os.path.join(directory, "model.onnx")), data_bytes / 2**30, time.monotonic() - started))


MODELS = {"bert-base": make_bert_base, "bert-base-external": make_bert_base_external,
          "big-external": make_big_external}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_big_models.py", description=__doc__.split("\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--only", nargs="+", action="extend", choices=sorted(MODELS), metavar="NAME")
    parser.add_argument("--force", action="store_true", help="regenerate even when up to date")
    options = parser.parse_args(argv)
    os.makedirs(options.outdir, exist_ok=True)
    make_fixture(options.outdir, options.force)
    for name in options.only or list(MODELS):
        MODELS[name](options.outdir, options.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
