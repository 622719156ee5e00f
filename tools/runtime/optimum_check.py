"""Runtime check through Optimum: ORTModelFor<Task>.from_pretrained(PKG) and one inference.

Usage: optimum_check.py PKGDIR ORT_CLASS [--inputs FILE.json] [--text "sentence"] [--generate N] [--no-cache]

Prints one JSON line on stdout:
  {"runtime": "optimum", "version": ..., "onnxruntime": ..., "class": ORT_CLASS, "loaded_class": what it loaded,
   "outputs": {name: {"shape": [...]}},                      (generated inputs)
   "outputs": {name: {"shape": [...], "data": [flat]}},      (with --inputs)
   "latency_ms": median of 5 runs after the first, "peak_rss_mb": the process's peak RSS}

Encoder-decoders (ORTModelForSeq2SeqLM, ORTModelForSpeechSeq2Seq, ORTModelForVision2Seq): the inference is
a greedy generate() of 4 new tokens from the sentence, a generated waveform or image; "outputs" is {"sequences"}.

Inputs: --inputs FILE.json feeds exactly the tensors of
{"inputs": {name: {"dtype": "int64"|"float32", "shape": [...], "data": [flat]}}} (ort_check.mjs's
format); otherwise they are generated from the names the loaded model takes: a sentence through
the package's own tokenizer, pixel_values of the processor's size, a waveform (with a mask of ones
where the graph takes one), a waveform's input_features through the package's feature extractor, or a
time series (past_values of config.json's context_length and num_input_channels), or a Decision Transformer's
trajectory (states, actions, returns_to_go, timesteps, attention_mask: ort_check.mjs's).

--generate N (ORTModelForCausalLM): greedy generate() of exactly N new tokens from the tokenized
--text; adds "generate": {"prompt_ids": [...], "generated_ids": [...]} to the line.
--no-cache: the package's decoder has no KV cache (Optimum's text-generation, text2text-generation): loaded
with use_cache=False.

Multiple-choice models (text inputs with three axes, [batch, num_choices, sequence]) get the
sentence paired with each choice, padded to one length.

Exit 0 on success; 1 with "optimum_check: error: <Optimum's own message>" as the last stderr line
when loading or running the package fails; 2 on a usage error; 3 with "optimum_check: unavailable:
<why>" when the runtime cannot start: a library it needs (onnxruntime, optimum, transformers, torch,
...) is missing or fails to import, or the task table cannot be read. modelexport reports 3 as an
unavailable runtime, never as a failed package. Offline: HF_HUB_OFFLINE is set before anything is
imported. The task table is MODELEXPORT_TASKS when set (modelexport sets it), else where an
install or the source tree keeps it.
"""
import argparse
import inspect
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
# numpy's f2py (scipy imports it; transformers imports scipy) fails on a SOURCE_DATE_EPOCH that is set but
# not a number (htp_exporter.py says the same): a runtime that cannot import must not fail a package.
if not os.environ.get("SOURCE_DATE_EPOCH", "0").strip().isdigit():
    del os.environ["SOURCE_DATE_EPOCH"]

DEFAULT_TEXT = "the movie was great and i loved it"
# Optimum's encoder-decoder classes (share/tasks.json rows with encoder_decoder): checked by generating.
SEQ2SEQ_CLASSES = ("ORTModelForSeq2SeqLM", "ORTModelForSpeechSeq2Seq", "ORTModelForVision2Seq")
SEQ2SEQ_NEW_TOKENS = 4
# Multiple-choice endings paired with the sentence (ort_check.mjs feeds the same ones).
CHOICES = ("it was good", "it was bad", "it was long", "it was short")
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3


class Unavailable(Exception):
    """The runtime could not start: nothing was learnt about the package."""


def first_line(text):
    """The first non-empty line of a message: what a one-line report quotes."""
    return next((line for line in str(text).splitlines() if line.strip()), str(text))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="optimum_check.py")
    parser.add_argument("pkg")
    parser.add_argument("ort_class")
    parser.add_argument("--inputs", help="JSON file with the exact input tensors")
    parser.add_argument("--text", default=DEFAULT_TEXT)
    parser.add_argument("--generate", type=int, metavar="N", help="greedy generate() of N new tokens")
    parser.add_argument("--no-cache", action="store_true", help="a decoder without its KV cache")
    parser.add_argument("--file-name", metavar="FILE", help="the package's ONNX file to load (a variant), as a user "
                        "loads one: from_pretrained's file_name= and, under a hub layout, subfolder=")
    options = parser.parse_args(argv)
    try:
        result = run(options, start(options.ort_class))
    except Unavailable as e:
        print(f"optimum_check: unavailable: {first_line(e)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ImportError as e:  # a module the environment lacks, wherever it was first needed
        print(f"optimum_check: unavailable: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except Exception as e:  # report the runtime's own message, whatever it raised
        import traceback
        traceback.print_exc()
        print(f"optimum_check: error: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result))
    return 0


def start(ort_class):
    """Imports the runtime and returns the ORTModel class: any failure here is the environment's."""
    try:
        import warnings
        warnings.filterwarnings("ignore")
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import optimum.onnxruntime as ort_models
        cls = getattr(ort_models, ort_class, None)
    except Exception as e:  # a missing module or a broken installation
        raise Unavailable(f"cannot import the runtime: {type(e).__name__}: {first_line(e)}") from e
    if cls is None:
        from importlib.metadata import version
        raise Unavailable(f"optimum {version('optimum')} has no {ort_class}")
    return cls


def load_options(options):
    """from_pretrained's keywords beyond the package: no cache for a decoder exported without one, and
    the file to load when it is not the one Optimum's glob prefers."""
    kwargs = {"use_cache": False} if options.no_cache else {}
    if options.file_name:
        folder, kwargs["file_name"] = os.path.split(options.file_name)
        if folder:
            kwargs["subfolder"] = folder
    return kwargs


def run(options, cls):
    import onnxruntime
    from importlib.metadata import version

    model = cls.from_pretrained(options.pkg, local_files_only=True, **load_options(options))
    if options.ort_class in SEQ2SEQ_CLASSES and not options.inputs:
        # An encoder-decoder's forward needs decoder ids a caller would have to invent: its one
        # inference is what it is for, a short greedy generate() (encoder, then the merged decoder
        # on both of its If branches: the first step without cache, the next ones with it).
        inputs = seq2seq_inputs(options.pkg, options.ort_class, options.text)
        outputs, latency_ms = timed_runs(lambda: {"sequences": model.generate(**inputs, do_sample=False, num_beams=1,
                                                                              max_new_tokens=SEQ2SEQ_NEW_TOKENS)})
    else:
        inputs = read_inputs(options.inputs) if options.inputs else generated_inputs(options.pkg, model, options.text)
        outputs, latency_ms = timed_runs(lambda: model(**inputs))
    result = {
        "runtime": "optimum",
        "version": version("optimum"),
        "onnxruntime": onnxruntime.__version__,
        "class": options.ort_class,
        # The class from_pretrained gave: a model type's own where Optimum has one (ORTModelForPix2Struct).
        "loaded_class": type(model).__name__,
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


# The configs size the generated image: a broken or hostile size must fail the check with its reason, not
# exhaust the machine (the bound of ort_check.mjs's generated inputs: 64 Mi values).
MAX_GENERATED_VALUES = 64 * 1024 * 1024


def image_size(pkg):
    """(height, width) by share/tasks.json's one image_size rule (docs/design.md §5.3), within the bound."""
    height, width = configured_image_size(pkg)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0
            and 3 * height * width <= MAX_GENERATED_VALUES):
        raise ValueError("the package's configs size the generated image %r x %r: not positive sizes within %d values"
                         % (height, width, MAX_GENERATED_VALUES))
    return height, width


def configured_image_size(pkg):
    """(height, width) as the configs give them."""
    rule = task_table()["image_size"]
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


def task_table():
    """The task table: MODELEXPORT_TASKS (modelexport names the one it uses), else installed one
    level up (share/modelexport/), else the source tree's ../../share/."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = ([os.environ["MODELEXPORT_TASKS"]] if os.environ.get("MODELEXPORT_TASKS") else
                  [os.path.join(here, os.pardir, "tasks.json"), os.path.join(here, os.pardir, os.pardir, "share", "tasks.json")])
    for path in candidates:
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
    raise Unavailable("tasks.json not found (looked at %s); set MODELEXPORT_TASKS to modelexport's "
                      "share/modelexport/tasks.json" % ", ".join(candidates))


TEXT_INPUTS = {"input_ids", "attention_mask", "token_type_ids"}


def choice_count(model, names):
    """How many choices a multiple-choice graph takes ([batch, num_choices, sequence] text inputs), or 0."""
    for graph_input in model.session.get_inputs():
        # Only the text inputs: a fused decoder cache (GPT-BigCode's key_value) has three axes too.
        if graph_input.name in names & TEXT_INPUTS and len(graph_input.shape) == 3:
            fixed = graph_input.shape[1]
            count = fixed if isinstance(fixed, int) and fixed > 0 else 2
            if count > len(CHOICES):
                raise ValueError(f"the graph fixes {count} choices; at most {len(CHOICES)} can be generated (use --inputs)")
            return count
    return 0


def generated_inputs(pkg, model, text):
    import torch
    names = set(getattr(model, "input_names", {}) or {})
    if "pixel_values" in names:
        return image_inputs(pkg)
    if "past_values" in names:  # a time series [1, context_length, channels], as ort_check.mjs makes it
        config = json.load(open(os.path.join(pkg, "config.json"), encoding="utf-8"))
        count = config["context_length"] * config["num_input_channels"]
        series = [math.sin(i) for i in range(count)]
        return {"past_values": torch.tensor(series, dtype=torch.float32).reshape(1, config["context_length"], config["num_input_channels"])}
    if "states" in names:  # a Decision Transformer's trajectory, as ort_check.mjs makes it
        return trajectory_inputs(pkg, model)
    if "input_values" in names:
        samples = [math.sin(i * 0.05) for i in range(12345)]
        inputs = {"input_values": torch.tensor([samples], dtype=torch.float32)}
        if "attention_mask" in names:  # an encoder that takes one (Moonshine's)
            inputs["attention_mask"] = torch.ones((1, len(samples)), dtype=torch.int64)
        return inputs
    if "input_features" in names:  # a speech encoder's features, from the package's feature extractor
        return {k: v for k, v in seq2seq_inputs(pkg, "ORTModelForSpeechSeq2Seq", text).items() if k in names}
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(pkg, local_files_only=True)
    choices = choice_count(model, names)
    if choices:
        encoded = tokenizer([text] * choices, list(CHOICES[:choices]), padding=True, return_tensors="pt")
        encoded = {k: v.unsqueeze(0) for k, v in encoded.items()}
    else:
        encoded = tokenizer(text, return_tensors="pt")
    if "position_ids" in names and "position_ids" not in encoded:
        # A decoder's feature extraction takes positions (optimum-cli exports them); tokenizers do not give them.
        ids = encoded["input_ids"]
        encoded["position_ids"] = torch.arange(ids.shape[-1], dtype=torch.int64).expand(ids.shape).contiguous()
    return {k: v for k, v in encoded.items() if k in names or not names}


# Steps of a generated trajectory (ort_check.mjs's TRAJECTORY_STEPS).
TRAJECTORY_STEPS = 20


def trajectory_inputs(pkg, model):
    """states, actions and returns_to_go of sin values, timesteps 0..steps-1 and a mask of ones, each in the
    dtype the graph declares; steps within config.json's max_ep_len and a third of its n_positions."""
    import torch
    config = json.load(open(os.path.join(pkg, "config.json"), encoding="utf-8"))
    steps = min(TRAJECTORY_STEPS, config.get("max_ep_len", TRAJECTORY_STEPS), config.get("n_positions", 3 * TRAJECTORY_STEPS) // 3)
    types = {i.name: i.type for i in model.session.get_inputs()}
    dtype = lambda name: torch.float32 if types.get(name) == "tensor(float)" else torch.int64  # noqa: E731

    def series(width):
        return torch.tensor([math.sin(i) for i in range(steps * width)], dtype=torch.float32).reshape(1, steps, width)

    inputs = {"states": series(config["state_dim"]), "actions": series(config["act_dim"]), "returns_to_go": series(1),
              "timesteps": torch.arange(steps, dtype=dtype("timesteps")).reshape(1, steps),
              "attention_mask": torch.ones((1, steps), dtype=dtype("attention_mask"))}
    return {name: value for name, value in inputs.items() if name in types}


def image_inputs(pkg, every=False):
    """pixel_values of a generated image through the package's image processor, at its size; with `every`,
    all the processor gives (Pix2Struct's: flattened_patches and their attention_mask)."""
    import torch
    from transformers import AutoImageProcessor
    from PIL import Image
    processor = AutoImageProcessor.from_pretrained(pkg, local_files_only=True)
    height, width = image_size(pkg)
    if "boxes" in inspect.signature(processor.preprocess).parameters:
        # A top-down pose processor (VitPose) crops a box per person with scipy, which the runtime does not
        # need: the crop's tensor, filled as ort_check.mjs fills pixel_values, is what reaches the model.
        count = 3 * height * width
        return {"pixel_values": torch.sin(torch.arange(count, dtype=torch.float64)).float().reshape(1, 3, height, width)}
    pixels = bytes((x * 7 + y * 13) % 256 for y in range(height) for x in range(width) for _ in range(3))
    image = Image.frombytes("RGB", (width, height), pixels)
    encoded = processor(images=image, return_tensors="pt")
    return dict(encoded) if every else {"pixel_values": encoded["pixel_values"]}


def seq2seq_inputs(pkg, ort_class, text):
    """The encoder's inputs: the sentence through the package's tokenizer, a one-second waveform through
    its feature extractor (preprocessor_config.json), or an image through its image processor."""
    if ort_class == "ORTModelForVision2Seq":  # which loads a Pix2Struct package as ORTModelForPix2Struct
        return image_inputs(pkg, every=True)
    if ort_class == "ORTModelForSeq2SeqLM":
        from transformers import AutoTokenizer
        return dict(AutoTokenizer.from_pretrained(pkg, local_files_only=True)(text, return_tensors="pt"))
    from transformers import AutoFeatureExtractor
    extractor = AutoFeatureExtractor.from_pretrained(pkg, local_files_only=True)
    samples = [math.sin(i * 0.05) for i in range(extractor.sampling_rate)]
    # What the extractor gives: log-mel input_features (Whisper; Speech2Text with its mask) or the
    # waveform as input_values (Moonshine).
    return dict(extractor(samples, sampling_rate=extractor.sampling_rate, return_tensors="pt"))


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
