"""Runtime check through Optimum: ORTModelFor<Task>.from_pretrained(PKG) and one inference.

Usage: optimum_check.py PKGDIR ORT_CLASS [--inputs FILE.json] [--text "sentence"] [--generate N]

Prints one JSON line on stdout:
  {"runtime": "optimum", "version": ..., "onnxruntime": ..., "class": ORT_CLASS,
   "outputs": {name: {"shape": [...]}},                      (generated inputs)
   "outputs": {name: {"shape": [...], "data": [flat]}},      (with --inputs)
   "latency_ms": median of 5 runs after the first, "peak_rss_mb": the process's peak RSS}

Inputs: --inputs FILE.json feeds exactly the tensors of
{"inputs": {name: {"dtype": "int64"|"float32", "shape": [...], "data": [flat]}}} (ort_check.mjs's
format); otherwise they are generated from the names the loaded model takes: a sentence through
the package's own tokenizer, pixel_values of the processor's size, or a waveform.

--generate N (ORTModelForCausalLM): greedy generate() of exactly N new tokens from the tokenized
--text; adds "generate": {"prompt_ids": [...], "generated_ids": [...]} to the line.

Exit 0 on success; 1 with "optimum_check: error: <Optimum's own message>" on stderr when loading
or running fails; 2 on a usage error. Offline: HF_HUB_OFFLINE is set before anything is imported.
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.dont_write_bytecode = True

DEFAULT_TEXT = "the movie was great and i loved it"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="optimum_check.py")
    parser.add_argument("pkg")
    parser.add_argument("ort_class")
    parser.add_argument("--inputs", help="JSON file with the exact input tensors")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--generate", type=int, metavar="N", help="greedy generate() of N new tokens")
    options = parser.parse_args(argv)
    try:
        result = run(options)
    except Exception as e:  # report the runtime's own message, whatever it raised
        print(f"optimum_check: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def run(options):
    import warnings
    warnings.filterwarnings("ignore")
    import onnxruntime
    import optimum.onnxruntime as ort_models
    from importlib.metadata import version

    cls = getattr(ort_models, options.ort_class)
    model = cls.from_pretrained(options.pkg, local_files_only=True)
    if options.inputs:
        inputs = read_inputs(options.inputs)
    else:
        inputs = generated_inputs(options.pkg, model, options.text)
    outputs, latency_ms = timed_runs(lambda: model(**inputs))
    result = {
        "runtime": "optimum",
        "version": version("optimum"),
        "onnxruntime": onnxruntime.__version__,
        "class": options.ort_class,
        # The ONNX file Optimum's glob chose (model.onnx, or onnx/model.onnx in a hub package).
        "model_file": os.path.relpath(str(model.path), options.pkg) if hasattr(model, "path") else None,
        "outputs": {name: describe(value, with_data=bool(options.inputs))
                    for name, value in named_outputs(outputs).items()},
        "latency_ms": latency_ms,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if options.generate:
        result["generate"] = greedy_generate(options.pkg, model, options.text, options.generate)
    return result


def greedy_generate(pkg, model, text, count):
    """Optimum's own generate(): greedy, exactly `count` new tokens."""
    from transformers import AutoTokenizer
    encoded = AutoTokenizer.from_pretrained(pkg, local_files_only=True)(text, return_tensors="pt")
    ids = model.generate(**encoded, do_sample=False, max_new_tokens=count, min_new_tokens=count)
    prompt = encoded["input_ids"][0].tolist()
    return {"prompt_ids": prompt, "generated_ids": ids[0, len(prompt):].tolist()}


def timed_runs(fn, runs=5):
    """fn() once for its result, then `runs` timed repeats: (result, median milliseconds)."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return result, statistics.median(times)


def read_inputs(path):
    import torch
    dtypes = {"int64": torch.int64, "int32": torch.int32, "float32": torch.float32, "bool": torch.bool}
    with open(path, encoding="utf-8") as handle:
        doc = json.load(handle)
    return {name: torch.tensor(spec["data"], dtype=dtypes[spec["dtype"]]).reshape(spec["shape"])
            for name, spec in doc["inputs"].items()}


def image_size(pkg):
    """(height, width) by share/tasks.json's one image_size rule (docs/design.md §5.3); the
    table is installed one level up (share/modelexport/), in the source tree at ../../share/."""
    here = os.path.dirname(os.path.abspath(__file__))
    for table_path in (os.path.join(here, os.pardir, "tasks.json"), os.path.join(here, os.pardir, os.pardir, "share", "tasks.json")):
        if os.path.isfile(table_path):
            break
    with open(table_path, encoding="utf-8") as handle:
        rule = json.load(handle)["image_size"]
    docs = {}
    for name in ("preprocessor_config.json", "config.json"):
        path = os.path.join(pkg, name)
        docs[name] = json.load(open(path, encoding="utf-8")) if os.path.isfile(path) else {}
    for source in rule["sources"]:
        doc = docs.get(source["file"], {})
        if source.get("when") and not doc.get(source["when"]):
            continue
        value = doc.get(source["key"])
        if isinstance(value, int) and not isinstance(value, bool):
            return value, value
        if isinstance(value, list) and len(value) == 2:
            return int(value[0]), int(value[1])
        if isinstance(value, dict) and "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if isinstance(value, dict) and "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    return rule["default"], rule["default"]


def generated_inputs(pkg, model, text):
    import torch
    names = set(getattr(model, "input_names", {}) or {})
    if "pixel_values" in names:
        from transformers import AutoImageProcessor
        from PIL import Image
        processor = AutoImageProcessor.from_pretrained(pkg, local_files_only=True)
        height, width = image_size(pkg)
        pixels = bytes((x * 7 + y * 13) % 256 for y in range(height) for x in range(width) for _ in range(3))
        image = Image.frombytes("RGB", (width, height), pixels)
        return {"pixel_values": processor(images=image, return_tensors="pt")["pixel_values"]}
    if "input_values" in names:
        samples = [math.sin(i * 0.05) for i in range(12345)]
        return {"input_values": torch.tensor([samples], dtype=torch.float32)}
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(pkg, local_files_only=True)
    encoded = tokenizer(text, return_tensors="pt")
    return {k: v for k, v in encoded.items() if k in names or not names}


def named_outputs(outputs):
    """{name: tensor} of a ModelOutput (ORTModelFor*) or a dict (ORTModelForCustomTasks)."""
    items = outputs.items() if hasattr(outputs, "items") else vars(outputs).items()
    return {name: value for name, value in items if hasattr(value, "shape")}


def describe(value, with_data):
    import numpy
    array = value.detach().cpu().numpy() if hasattr(value, "detach") else numpy.asarray(value)
    entry = {"shape": list(array.shape)}
    if with_data:
        entry["data"] = [None if not math.isfinite(float(x)) else float(x) for x in array.reshape(-1)]
    return entry


if __name__ == "__main__":
    sys.exit(main())
