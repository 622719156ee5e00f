#!/usr/bin/env python3
"""Export a Hugging Face-style model to ONNX and record its module hierarchy.

The C++ ``modelexport`` tool runs this script as a child process.  It:

1. loads a model from a Hugging Face-layout directory (``--source``), either
   through ``transformers`` (``AutoModelFor*.from_pretrained``) or through a
   user factory given with ``--model FILE.py:FACTORY``;
2. builds deterministic dummy inputs for the task (see ``make_dummy_inputs``);
3. runs one forward pass with forward pre-hooks on every module, recording the
   order in which each module is first called;
4. exports the model with ``torch.onnx.export`` (node names keep the module
   scopes, e.g. ``/bert/encoder/layer.0/attention/self/query/MatMul``);
5. writes a JSON description of the modules (``--modules``).

Nothing else is written.  Progress goes to stdout, errors to stderr.

Weights come from the source's ``model.safetensors`` (or its sharded index),
else ``pytorch_model.bin`` (or its index), read by ``htp_weights.py`` beside
this script: never with a pickle that can run code, every key checked.  A
source without weights is an error unless ``--random-weights`` (tests only).

Exit codes: 0 success, 1 export/runtime failure (a weights problem prints
one line ``htp_exporter: error: <file>: <problem>`` and no traceback),
2 usage error (unknown task, bad ``--model`` value, missing source directory),
3 ``transformers`` missing when no ``--model`` is given.

``tests/fixtures/make_models.py`` imports this file to build exactly the same
dummy inputs, so keep ``make_dummy_inputs``/``forward_args`` importable
without side effects.
"""

import argparse
import contextlib
import functools
import importlib.util
import inspect
import json
import mmap
import os
import re
import sys
import threading
import time
import traceback
import warnings

# Never leave __pycache__ directories behind (in the source directory when
# importing the user's modeling file, or next to this script).
sys.dont_write_bytecode = True
# The phase timings' clock (PhaseClock) starts before torch's import, most of the start-up.
STARTED = time.perf_counter()
# numpy's f2py, which scipy imports and transformers imports scipy for its losses, reads SOURCE_DATE_EPOCH
# with int(): set but not a number (empty, as some build environments leave it), every transformers model
# fails to import. No exporter output depends on it (modelexport itself writes the timestamps).
if not os.environ.get("SOURCE_DATE_EPOCH", "0").strip().isdigit():
    del os.environ["SOURCE_DATE_EPOCH"]

import torch  # noqa: E402  (after dont_write_bytecode on purpose)

# htp_weights.py sits beside this script, wherever it is installed and
# whatever the caller's working directory.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from htp_weights import (SAFETENSORS, SAFETENSORS_INDEX, WeightsError, check_headers,  # noqa: E402
                         count_of, find_weights, load_weights, some, weight_files)
import htp_decoder  # noqa: E402
import htp_weights  # noqa: E402
import htp_optimum  # noqa: E402
import htp_reference  # noqa: E402
import htp_sentence  # noqa: E402
import htp_tasks  # noqa: E402

# Text dummy inputs: batch 1, sequence length 8.
TEXT_BATCH = 1
TEXT_SEQUENCE_LENGTH = 8
# Multiple-choice models need a choices axis: [batch, num_choices, sequence].
MULTIPLE_CHOICE_CHOICES = 2
# The size of each symbolic text axis in the dummy inputs.
TEXT_DUMMY_DIMS = {"batch_size": TEXT_BATCH, "num_choices": MULTIPLE_CHOICE_CHOICES,
                   "sequence_length": TEXT_SEQUENCE_LENGTH}
# Audio dummy input: one second of samples at the preprocessor's sampling_rate;
# this rate stands in only when the source has no preprocessor_config.json.
DEFAULT_SAMPLING_RATE = 16000
# The exit status of a failed reference check: modelexport maps it to its own exit code.
REFERENCE_MISMATCH_STATUS = 4
# The line that says the ONNX file is final (export/final_file.hpp), its name after it.
FINAL_FILE_LINE = "htp: final file: "
# The default opset. Not Optimum's (18 in every configuration of optimum-onnx 2.1): 14 is what every
# client was proven with, and the ONNX checker modelexport links (Debian 12's ONNX 1.12) knows opsets
# up to 17 only.
DEFAULT_OPSET = 14
# The newest opset the default is raised to when an operator of the model needs it (--raise-opset).
MAX_OPSET = 17
# Seed of the generator used for vision/audio dummy inputs.
DUMMY_SEED = 0

# The task table, read from share/tasks.json (htp_tasks.py).
TASK_TABLE, TASKS = htp_tasks.TASK_TABLE, htp_tasks.TASKS


class UsageError(Exception):
    """A problem with the command line (exit code 2)."""


class OperatorError(Exception):
    """torch's exporter has no ONNX form of an operator of the model at the opset (exit code 1, no traceback)."""


class MissingTransformers(Exception):
    """transformers is needed but not importable (exit code 3)."""


def log(message):
    print("htp: " + message, flush=True)


class PhaseClock:
    """Wall seconds of the exporter's phases, in order: logged as each ends (modelexport shows the
    exporter's lines with --verbose) and written to the module table's "phase_seconds", which
    modelexport copies into its --report, never into the package. "start" is the interpreter's
    imports up to main(), measured from the first line of this script."""

    def __init__(self):
        self.seconds = {"start": time.perf_counter() - STARTED}

    @contextlib.contextmanager
    def phase(self, name):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began
            log("%s took %.2f s" % (name, self.seconds[name]))


def read_json(path):
    with open(path, "r", encoding="utf-8") as handle:
        return json.load(handle)


# --------------------------------------------------------------------------
# Task description
# --------------------------------------------------------------------------

def task_entry(task):
    """The table entry of a task name or alias."""
    if task not in TASKS:
        raise UsageError("unknown task '%s' (known: %s)" % (task, ", ".join(sorted(TASKS))))
    return TASKS[task]


def task_modality(task):
    """text, vision or audio; "decoder" for a task with its KV cache (htp_decoder.py)."""
    entry = task_entry(task)
    return "decoder" if entry["with_past"] else entry["modality"]


def check_single_file(task, config, config_path):
    """feature-extraction-with-past is one model.onnx only for a decoder: optimum-cli writes an encoder-decoder's
    (T5, BART, Whisper) as encoder_model.onnx and three decoder files, which this exporter does not make, and one
    file of another signature would be a package no client reads as that task."""
    if task == "feature-extraction-with-past" and config.get("is_encoder_decoder") is True:
        raise UsageError("%s: --task feature-extraction-with-past of an encoder-decoder (%s) is several ONNX files in "
                         "optimum-cli (encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx, "
                         "decoder_model_merged.onnx); modelexport exports it for decoder-only models only"
                         % (config_path, config.get("model_type", "model_type unknown")))


def forward_parameters(model):
    """Parameters of model.forward in declaration order (no *args/**kwargs)."""
    signature = inspect.signature(model.forward)
    return [p for p in signature.parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def input_names_for(task, model):
    """Names of the ONNX inputs, in the order of the model's forward signature."""
    entry = task_entry(task)
    order = [p.name for p in forward_parameters(model)]
    # Optional inputs only when the model takes them (token_type_ids: BERT yes, DistilBERT no).
    wanted = list(entry["inputs"]) + [name for name in entry["export_optional_inputs"] if name in order]
    missing = [name for name in wanted if name not in order]
    if missing:
        raise RuntimeError("%s.forward does not accept %s" % (type(model).__name__,
                                                              ", ".join(missing)))
    return sorted(wanted, key=order.index)


def output_names_for(task):
    return list(task_entry(task)["outputs"])


def ctc_frames_axis(config):
    """Optimum's name for the frame axis of CTC logits: the conv stack's length formula.

    Each feature-extractor convolution maps a length L to (L - kernel) // stride + 1;
    Optimum (HubertOnnxConfig, Wav2Vec2's too) spells the composition out, e.g.
    "( ( sequence_length - 10 ) // 5 + 1 - 3 ) // 2 + 1", and transformers.js only
    needs the axis to be symbolic, so the same name keeps both packages identical.
    """
    axis = "sequence_length"
    for kernel, stride in zip(config.get("conv_kernel", []), config.get("conv_stride", [])):
        axis = "( %s - %d ) // %d + 1" % (axis, kernel, stride)
    return axis


# Axis names the table leaves to the exporter ("$name"): computed from config.json.
COMPUTED_AXES = {"$ctc_frames": ctc_frames_axis}


def dynamic_axes_for(task, input_names, output_names, config=None):
    """The table's symbolic axes of each exported input and output ({axis: name})."""
    table = task_entry(task)["dynamic_axes"]
    out = {}
    for name in list(input_names) + list(output_names):
        out[name] = {axis: COMPUTED_AXES[label](config or {}) if label.startswith("$") else label
                     for axis, label in htp_tasks.axes(table[name]).items()}
    return out


# --------------------------------------------------------------------------
# Dummy inputs
# --------------------------------------------------------------------------

def size_pair(value):
    """(height, width) from an int, a [height, width] list, {height, width} or {shortest_edge}; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return int(value["height"]), int(value["width"])
        if "shortest_edge" in value:
            return int(value["shortest_edge"]), int(value["shortest_edge"])
    return None


def image_size(source_dir, config):
    """(height, width) of the model's images: the task table's one rule (share/tasks.json
    "image_size"): the first of its sources that gives a size, else its default."""
    rule = TASK_TABLE["image_size"]
    documents = {"config.json": config}
    path = os.path.join(source_dir, "preprocessor_config.json")
    documents["preprocessor_config.json"] = read_json(path) if os.path.isfile(path) else {}
    for source in rule["sources"]:
        document = documents.get(source["file"]) or {}
        if "when" in source and not document.get(source["when"]):
            continue
        size = size_pair(document.get(source["key"]))
        if size:
            return size
    return rule["default"], rule["default"]


def audio_samples(source_dir):
    """Samples in one second of audio at the feature extractor's sampling_rate.

    Only a length for tracing: the export keeps the length axis symbolic, and
    the runtime checks feed other lengths.
    """
    path = os.path.join(source_dir, "preprocessor_config.json")
    rate = read_json(path).get("sampling_rate") if os.path.isfile(path) else None
    return int(rate) if isinstance(rate, int) and rate > 0 else DEFAULT_SAMPLING_RATE


def config_size(config, key, task):
    """A positive size config.json must give for the task's inputs."""
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RuntimeError("config.json: %s is %s; %s inputs are shaped by it (a positive integer)"
                           % (key, "missing" if value is None else repr(value), task))
    return value


def make_dummy_inputs(task, config, source_dir, input_names, batch=TEXT_BATCH, sequence=None):
    """Deterministic dummy inputs, as a dict name -> tensor.

    text:   input_ids[k] = (1 + 7 * k) % vocab_size for the flat index k over a
            [1, 8] tensor ([1, 2, 8] for multiple-choice); attention_mask all
            ones; token_type_ids all zeros; all int64.
    vision: pixel_values float32 [1, num_channels, H, W], uniform in [-1, 1)
            from torch.Generator seeded with 0 (H, W from image_size()).
    audio:  input_values float32 [1, audio_samples()], standard normal from
            torch.Generator seeded with 0.
    time_series: past_values float32 [1, context_length, num_input_channels], standard normal.
    trajectory: states, actions, returns_to_go float32 [1, 8, state_dim | act_dim | 1], standard
            normal; timesteps 0..7 and an attention_mask of ones, int64.
    `batch` and `sequence` (text) change the batch and sequence axes, and a batch other than 1
    gives audio 1234 more samples and a trajectory 3 more steps: the reference check's inputs.
    """
    modality = task_modality(task)
    generator = torch.Generator().manual_seed(DUMMY_SEED)
    tensors = {}
    if modality == "text":
        # The table's input_ids axes say the shape: [batch, sequence], or [batch, choices, sequence].
        axes = htp_tasks.axes(task_entry(task)["dynamic_axes"]["input_ids"])
        dims = dict(TEXT_DUMMY_DIMS, batch_size=batch, sequence_length=sequence or TEXT_SEQUENCE_LENGTH)
        shape = tuple(dims[axes[i]] for i in range(len(axes)))
        count = 1
        for dim in shape:
            count *= dim
        vocab_size = max(int(config.get("vocab_size", 2)), 1)
        ids = (1 + 7 * torch.arange(count, dtype=torch.int64)) % vocab_size
        tensors["input_ids"] = ids.reshape(shape)
        tensors["attention_mask"] = torch.ones(shape, dtype=torch.int64)
        tensors["token_type_ids"] = torch.zeros(shape, dtype=torch.int64)
    elif modality == "vision":
        height, width = image_size(source_dir, config)
        channels = int(config.get("num_channels", 3))
        pixels = torch.rand((batch, channels, height, width), generator=generator,
                            dtype=torch.float32)
        tensors["pixel_values"] = pixels * 2.0 - 1.0
    elif modality == "time_series":
        shape = (batch, config_size(config, "context_length", task), config_size(config, "num_input_channels", task))
        tensors["past_values"] = torch.randn(shape, generator=generator, dtype=torch.float32)
    elif modality == "trajectory":
        steps = TEXT_SEQUENCE_LENGTH + (0 if batch == TEXT_BATCH else 3)
        for name, width in (("states", config_size(config, "state_dim", task)),
                            ("actions", config_size(config, "act_dim", task)), ("returns_to_go", 1)):
            tensors[name] = torch.randn((batch, steps, width), generator=generator, dtype=torch.float32)
        tensors["timesteps"] = torch.arange(steps, dtype=torch.int64).expand(batch, steps).contiguous()
        tensors["attention_mask"] = torch.ones((batch, steps), dtype=torch.int64)
    else:
        samples = audio_samples(source_dir) + (0 if batch == TEXT_BATCH else 1234)
        tensors["input_values"] = torch.randn((batch, samples), generator=generator, dtype=torch.float32)
    return {name: tensors[name] for name in input_names}


def forward_args(model, inputs):
    """Arguments for model(*args) following the forward signature.

    Inputs are placed at their positional slot; parameters in between that we
    do not feed get their default (usually None, which torch.onnx.export drops).
    Inputs that can only be given by keyword go into a trailing dict, which
    torch.onnx.export treats as keyword arguments.
    """
    remaining = dict(inputs)
    args = []
    for parameter in forward_parameters(model):
        if not remaining:
            break
        if parameter.kind == inspect.Parameter.KEYWORD_ONLY:
            break
        if parameter.name in remaining:
            args.append(remaining.pop(parameter.name))
        elif parameter.default is not inspect.Parameter.empty:
            args.append(parameter.default)
        else:
            raise RuntimeError("forward parameter '%s' has no default and no dummy input"
                               % parameter.name)
    if remaining:
        args.append(remaining)
    return tuple(args)


def call_model(model, args):
    """model(*args), honouring a trailing keyword dict as forward_args builds it."""
    if args and isinstance(args[-1], dict):
        return model(*args[:-1], **args[-1])
    return model(*args)


# --------------------------------------------------------------------------
# Model loading
# --------------------------------------------------------------------------

def load_user_model(source_dir, spec, config, boundary=None, random_weights=False):
    """Build the model with FILE.py:FACTORY and load the source's weights into it.

    With random_weights, a source without any weights file keeps the
    factory's initial weights (tests only); a weights file present is always
    loaded and checked.
    """
    file_part, sep, factory_name = spec.rpartition(":")
    if not sep or not file_part or not factory_name:
        raise UsageError("--model must look like FILE.py:FACTORY, got '%s'" % spec)
    path = file_part if os.path.isabs(file_part) else os.path.join(source_dir, file_part)
    if not os.path.isfile(path):
        raise UsageError("model file not found: %s" % path)
    module_name = "htp_user_model"
    import_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(import_spec)
    sys.modules[module_name] = module
    # Let the file import its siblings.
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        import_spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UsageError("%s has no callable '%s'" % (path, factory_name))
    model = factory(config)
    if not isinstance(model, torch.nn.Module):
        raise RuntimeError("%s:%s returned %s, not a torch.nn.Module"
                           % (path, factory_name, type(model).__name__))
    if random_weights and find_weights(source_dir) is None:
        log("no weights file: keeping the factory's initial weights (--random-weights)")
    else:
        load_weights(model, source_dir, boundary)
    return model


def load_transformers_model(source_dir, task, boundary=None):
    """The task's AutoModel class from the source, and transformers' loading report (what the
    weights gate, check_loading_info, judges once the export's outputs are known)."""
    try:
        import transformers
        from transformers.utils import logging
    except ImportError as error:
        raise MissingTransformers(str(error))
    logging.set_verbosity_error()  # its missing-weights warning is ours to give, as an error
    # from_pretrained reads the files itself; vetting them first gives our
    # clear errors (no weights, links out of the source, a lying header) instead of its own.
    weight_files(source_dir, boundary)
    check_headers(source_dir, boundary)
    shown = find_weights(source_dir)
    auto_class = model_class(transformers, task, source_dir)
    try:
        return auto_class.from_pretrained(source_dir, local_files_only=True, output_loading_info=True,
                                          use_safetensors=os.path.basename(shown) in (SAFETENSORS, SAFETENSORS_INDEX))
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise UsageError(no_class_for_task(source_dir, task, auto_class.__name__))
    except RuntimeError as error:
        # A shape mismatch: transformers lists every tensor over many lines; name the first.
        lines = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        if lines:
            raise WeightsError(shown, lines[0].rstrip(".") + " (%d tensor(s) differ)" % len(lines))
        raise


def no_class_for_task(source_dir, task, auto_class):
    """Why the task's Auto class cannot load the source, with the tasks Optimum exports for its model type."""
    model_type = read_json(os.path.join(source_dir, "config.json")).get("model_type")
    offered = sorted(htp_optimum.supported_tasks(model_type)) if isinstance(model_type, str) else []
    return "%s: model type %s has no %s, the class --task %s loads%s" % (
        os.path.join(source_dir, "config.json"), model_type, auto_class, task,
        "; Optimum exports it for: " + ", ".join(offered) if offered else "")


def model_class(transformers, task, source_dir):
    """The class that loads the task's model: the table's Auto class, or, where no Auto class covers the
    task's heads (auto_class "architectures"), the class config.json's architectures names, as Optimum loads them."""
    name = task_entry(task)["auto_class"]
    if name != "architectures":
        return getattr(transformers, name)
    architectures = read_json(os.path.join(source_dir, "config.json")).get("architectures") or []
    found = getattr(transformers, architectures[0], None) if architectures and isinstance(architectures[0], str) else None
    if found is None:
        raise UsageError("%s: --task %s loads the class config.json's architectures names, and it names %s"
                         % (os.path.join(source_dir, "config.json"), task,
                            "no transformers class (%s)" % architectures[0] if architectures else "none"))
    return found


def check_loading_info(model, info, source_dir, task, spec):
    """The weights gate on the transformers path (htp_weights.check_loading_info): a missing tensor is
    exempt only when the exported outputs never use it, which a backward pass from them tells."""
    used = {}

    def used_parameters(key):
        if not used:
            used.update(parameters_reaching_outputs(model, spec))
        return used.get(key, True)
    return htp_weights.check_loading_info(model, info, source_dir, task, used_parameters)


def parameters_reaching_outputs(model, spec):
    """{parameter name: whether a gradient flows to it from the exported outputs} on the dummy inputs;
    buffers cannot be told apart this way and count as used."""
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        outputs = spec.run(spec.dummy)
        total = sum(value.float().sum() for value in outputs.values()
                    if torch.is_tensor(value) and value.is_floating_point() and value.requires_grad)
        if torch.is_tensor(total):
            total.backward()
    reached = {name: parameter.grad is not None for name, parameter in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return reached


# --------------------------------------------------------------------------
# Hierarchy tracing
# --------------------------------------------------------------------------

@contextlib.contextmanager
def recorded_modules(model):
    """Forward pre-hooks on every module while the block runs. Yields the module records
    (path, class, torch_module); each gets its first call's index as "order" (None when it
    never ran) when the block ends. Only a module's first call counts."""
    records = []
    first_call = {}
    handles = []

    def make_hook(path):
        def hook(module, inputs):
            if path not in first_call:
                first_call[path] = len(first_call)
        return hook

    for path, module in model.named_modules():
        records.append({
            "path": path,
            "class": type(module).__name__,
            "torch_module": type(module).__module__.startswith("torch.nn"),
        })
        handles.append(module.register_forward_pre_hook(make_hook(path)))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
        for record in records:
            record["order"] = first_call.get(record["path"])


@contextlib.contextmanager
def traced_outputs(model):
    """The model's outputs in the trace (a list holding the last call's) while the block runs: their sizes
    tell which of the configuration's output axes are not the input axes they are named after."""
    seen = []

    def hook(module, inputs, outputs):
        seen[:] = [outputs]

    handle = model.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def trace_modules(model, args):
    """Run one forward pass and record each module's first-call order."""
    with recorded_modules(model) as records, torch.no_grad():
        outputs = call_model(model, args)
    return records, outputs


# Models with fewer bytes of weights are exported into memory when a pass edits torch's bytes
# before they are written; torch's ModelProto must stay below protobuf's 2 GiB with the
# constants it folds (a tied lm_head's transposed copy), hence the margin.
IN_MEMORY_BYTES = 1 << 30


def weight_bytes(model):
    """Bytes of the model's parameters and buffers, each tensor once."""
    tensors = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


# The hierarchy comes from the node names of torch's TorchScript-based exporter,
# which carry the module scopes ("/encoder/layer.0/attention/..."). torch >= 2.9
# defaults to the dynamo-based exporter, whose names do not; torch 2.5+ takes
# dynamo=False to select the TorchScript one, older torch has only that one.
ONNX_EXPORTER = "torch.onnx.export (TorchScript)"


def torchscript_exporter_arguments():
    """Keyword arguments that make torch.onnx.export use the TorchScript exporter."""
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        return {"dynamo": False}
    return {}


def at_needed_opset(export, opset, raise_opset):
    """export(opset); where torch refuses an operator that a newer opset has ("Support for this operator
    was added in version 16") and raise_opset (no --opset was asked for), export(that opset) instead, up
    to MAX_OPSET, as optimum-cli's newer default would export it. Returns the opset used."""
    while True:
        try:
            export(opset)
            return opset
        except torch.onnx.errors.UnsupportedOperatorError as error:
            match = re.search(r"added in version (\d+)", str(error))
            needed = int(match.group(1)) if match else None
            operator = re.search(r"operator '([^']+)'", str(error))
            what = "torch cannot export the operator %s at opset %d" % (operator.group(1) if operator else "(unnamed)", opset)
            if needed and needed > MAX_OPSET:
                raise OperatorError("%s; ONNX has it from opset %d, above the %d modelexport's ONNX checker knows"
                                    % (what, needed, MAX_OPSET))
            if not needed or needed <= opset:
                raise OperatorError("%s: %s" % (what, str(error).splitlines()[0]))
            if not raise_opset:
                raise OperatorError("%s; ONNX has it from opset %d: pass --opset %d, or leave --opset out and the "
                                    "default is raised to it" % (what, needed, needed))
            log("%s; exporting at opset %d" % (what, needed))
            opset = needed


def named_outputs_forward(forward, keep):
    """forward returning a tuple of its first `keep` outputs.

    transformers models return ModelOutput objects; their to_tuple() order is
    Optimum's output order. Like Optimum, only the outputs the task names are
    exported (BertModel also returns pooler_output, for instance). The forward
    is patched on the instance rather than wrapped in another module, so that
    the ONNX node scopes stay exactly the model's module paths; functools.wraps
    keeps the signature that input_names_for reads.
    """
    @functools.wraps(forward)
    def forward_named_outputs(*args, **kwargs):
        outputs = forward(*args, **kwargs)
        if hasattr(outputs, "to_tuple"):
            outputs = outputs.to_tuple()
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        if keep is not None and len(outputs) < keep:
            raise RuntimeError("model returned %d outputs, the task needs %d" % (len(outputs), keep))
        return tuple(outputs[:keep]) if keep is not None else tuple(outputs)
    return forward_named_outputs


def with_torch_outputs(spec, inputs):
    """(inputs, torch's outputs for them through the spec's forward), random draws held (htp_reference.HELD)."""
    with torch.no_grad(), htp_reference.HELD:
        return inputs, spec.run(inputs)


class TableSpec:
    """The project's own rules (share/tasks.json) for a task without its cache: where transformers or
    optimum-onnx is not importable, for a --model factory, or a model type Optimum has no
    configuration for. The forward is patched on the instance to return the task's outputs."""

    source = "task table"

    def __init__(self, task, model, config, source_dir):
        self.task, self.model, self.config, self.source_dir = task, model, config, source_dir
        self.inputs = input_names_for(task, model)
        self.outputs = output_names_for(task)
        self.dummy = make_dummy_inputs(task, config, source_dir, self.inputs)
        self.args = forward_args(model, self.dummy)
        self.axes = dynamic_axes_for(task, self.inputs, self.outputs, config)

    @contextlib.contextmanager
    def patched(self):
        self.model.forward = named_outputs_forward(self.model.forward, len(self.outputs))
        try:
            yield
        finally:
            del self.model.forward

    def run(self, inputs):
        """torch's outputs {name: tensor} for `inputs`, through the forward the export traced."""
        with self.patched():
            return dict(zip(self.outputs, call_model(self.model, forward_args(self.model, inputs))))

    def reference_case(self, notes):
        """The reference check's inputs and torch's outputs for them."""
        return with_torch_outputs(self, self.reference_inputs(notes))

    def reference_inputs(self, notes):
        """Inputs for the reference check: batch 2 and, for text, the tokenizer's length."""
        length, tokens = None, None
        if "input_ids" in self.dummy:
            count = 2 * (MULTIPLE_CHOICE_CHOICES if self.dummy["input_ids"].dim() == 3 else 1)
            tokens = htp_reference.text_ids(self.source_dir, self.model, count, TEXT_SEQUENCE_LENGTH, notes)
            length = int(tokens[0].shape[-1]) if tokens else TEXT_SEQUENCE_LENGTH + 3
        inputs = make_dummy_inputs(self.task, self.config, self.source_dir, self.inputs, batch=2, sequence=length)
        return htp_reference.with_text_ids(inputs, tokens, self.model, notes)


class OptimumSpec:
    """Optimum's export configuration for the model type and task (htp_optimum.py)."""

    source = "optimum"

    def __init__(self, task, model, onnx_config, source_dir, renamed=None, base=None):
        self.task, self.model, self.source_dir = task, model, source_dir
        self.base = base if base is not None else model  # the transformers model: its embedding bounds the ids
        self.signature = htp_optimum.Signature(model, onnx_config, renamed=renamed)
        self.inputs, self.outputs, self.axes = self.signature.inputs, self.signature.outputs, self.signature.axes
        self.dummy = {name: self.signature.dummy[name] for name in self.inputs}
        self.args = (self.dummy,)

    def patched(self):
        return self.signature.patched()

    def run(self, inputs):
        with self.patched():
            return self.signature.named_outputs(self.model(**inputs))

    def reference_case(self, notes):
        """The reference check's inputs and torch's outputs for them: every dummy axis the trace had,
        one larger (a batch of 3 for Optimum's 2, ...); text takes the tokenizer's padded length. Where
        torch itself refuses the larger sizes (a fixed image size, say), only the batch grows."""
        trace = {name: list(t.shape) for name, t in self.dummy.items()}
        shapes = {"batch_size": self._size("batch_size", 2) + 1, "num_choices": self._size("num_choices", 4) - 1,
                  "audio_sequence_length": 16000 + 1234}
        tokens = None
        if "input_ids" in self.dummy:
            count = shapes["batch_size"] * (shapes["num_choices"] if self.dummy["input_ids"].dim() == 3 else 1)
            tokens = htp_reference.text_ids(self.source_dir, self.base, count, self.dummy["input_ids"].shape[-1], notes)
            shapes["sequence_length"] = int(tokens[0].shape[-1]) if tokens else self.dummy["input_ids"].shape[-1] + 3
        # Last resort: the generator's own ids, which its configuration shapes for the model (BART's
        # classifier needs one EOS per row, which a tokenizer without that post-processor never adds).
        attempts = ((shapes, True), ({"batch_size": shapes["batch_size"]}, True), ({"batch_size": shapes["batch_size"]}, False))
        for attempt, tokenized in attempts:
            inputs = {name: t for name, t in self.signature.inputs_for(seed=1, **attempt).items() if name in self.inputs}
            try:
                if tokenized:
                    inputs = htp_reference.with_text_ids(inputs, tokens, self.base, notes)
                case = with_torch_outputs(self, inputs)
            except Exception as error:  # torch refuses these inputs: keep the model's own sizes, then ids
                notes.append("torch refuses %s (%s); %s" % (shapes_text(inputs), describe(error).splitlines()[0][:200],
                                                            "only the batch differs from the trace" if tokenized
                                                            else "the generator's ids instead of the tokenizer's"))
                continue
            if all(list(inputs[name].shape) == trace[name] for name in inputs):
                notes.append("the reference inputs have the trace's shapes")
            return case
        return with_torch_outputs(self, inputs)  # torch refuses the batch alone too: its own error, as the check's

    def _size(self, axis_name, default):
        for name, axes in self.axes.items():
            if name in self.dummy:
                for index, label in axes.items():
                    if label == axis_name:
                        return int(self.dummy[name].shape[int(index)])
        return default


def decoder_side(model, config):
    """config.json's keys as the decoder reads them (cache sizes, vocabulary, positions). A multimodal
    checkpoint exported as a causal LM (Gemma 3, ...) keeps its text decoder's sizes in a sub-config,
    the one transformers' own `get_text_config(decoder=True)` returns; its values win over the top
    level's, whose model_type and architectures stay the checkpoint's."""
    own = getattr(model, "config", None)
    text = own.get_text_config(decoder=True) if hasattr(own, "get_text_config") else own
    if text is None or text is own:
        return config
    kept = ("model_type", "architectures")
    return {**config, **{k: v for k, v in text.to_dict().items() if v is not None and k not in kept}}


class DecoderSpec:
    """A decoder with its KV cache in one model.onnx (htp_decoder.py): flat tensors in and out."""

    source = "task table"

    def __init__(self, task, model, config, source_dir):
        config = decoder_side(model, config)
        self.task, self.model, self.config, self.source_dir = task, model, config, source_dir
        self.form = htp_decoder.CacheForm(config)
        self.optimum_config = htp_optimum.decoder_config(model, source_dir) if is_transformers_model(model) else None
        self.inputs = htp_decoder.input_names(model, self.form, htp_optimum.decoder_inputs(self.optimum_config))
        self.outputs = htp_decoder.output_names(self.form)
        self.dummy = htp_decoder.dummy_inputs(config, self.inputs)
        self.args = tuple(self.dummy[n] for n in self.inputs)
        self.axes = htp_decoder.dynamic_axes(self.inputs, self.outputs, self.form)

    @contextlib.contextmanager
    def patched(self):
        """The flat forward, around Optimum's patched one where it has a configuration for the model type
        (whose traceable replacements optimum-cli's export relies on: Qwen3-MoE's experts, Cohere's rotary)."""
        with htp_optimum.model_patches(self.model, self.optimum_config):
            self.model.forward = htp_decoder.flat_forward(self.model.forward, self.inputs, self.form)
            try:
                yield
            finally:
                self.model.__dict__.pop("forward", None)

    def run(self, inputs):
        with self.patched(), htp_decoder.traceable_masks():
            return dict(zip(self.outputs, self.model(*[inputs[n] for n in self.inputs])))

    def reference_case(self, notes):
        """The prompt's inputs and torch's outputs for them."""
        return with_torch_outputs(self, self.reference_inputs(notes))

    def reference_inputs(self, notes):
        """The prompt: batch 2, the tokenizer's ids cut to one length (no padding: no fully masked row),
        an empty cache."""
        rows = htp_reference.embedding_rows(self.model) or max(int(self.config.get("vocab_size", 2)), 1)
        tokenizer = htp_reference.load_tokenizer(self.source_dir)
        if tokenizer is None:
            notes.append("no tokenizer in the source: random ids")
            generator = torch.Generator().manual_seed(1)
            ids = torch.randint(0, rows, (2, htp_decoder.DUMMY_SEQUENCE + 3), generator=generator, dtype=torch.int64)
        else:
            ids, _ = htp_reference.token_ids(tokenizer, 2, htp_decoder.DUMMY_SEQUENCE, rows, notes, pad=False,
                                             limit=htp_reference.position_limit(self.config))
        return htp_decoder.dummy_inputs(self.config, self.inputs, past=0, sequence=ids.shape[-1], batch=2, ids=ids)

    def next_step(self, inputs, outputs, chosen):
        """The cached step after `inputs`: one token per row (`chosen`), the step's presents as the past."""
        batch, past = inputs["input_ids"].shape[0], inputs["attention_mask"].shape[-1]
        step = {"input_ids": chosen.reshape(batch, 1).to(torch.int64),
                "attention_mask": torch.ones((batch, past + 1), dtype=torch.int64),
                "position_ids": torch.full((batch, 1), past, dtype=torch.int64)}
        for name, present in zip(self.form.names(htp_decoder.PAST), self.form.names(htp_decoder.PRESENT)):
            step[name] = outputs[present]
        return {name: step[name] for name in self.inputs}


def shapes_text(inputs):
    return ", ".join("%s %s" % (name, list(t.shape)) for name, t in inputs.items())


def export_spec(task, model, config, source_dir):
    """The spec of the export: Optimum's configuration where it has one, else the project's rules."""
    if task_modality(task) == "decoder":
        return DecoderSpec(task, model, config, source_dir), None
    if not is_transformers_model(model):
        return TableSpec(task, model, config, source_dir), "a --model factory model: the task table's signature"
    try:
        onnx_config = htp_optimum.export_config(model, task, source_dir)
    except htp_optimum.Unavailable as reason:
        return TableSpec(task, model, config, source_dir), str(reason)
    htp_optimum.set_pad_token_id(model, task, source_dir)
    return OptimumSpec(task, model, onnx_config, source_dir), None


def sentence_spec(task, pipeline, base, source_dir):
    """The spec of a sentence-transformers pipeline: Optimum's configuration for it, the token embeddings
    under the name clients read (htp_sentence.py)."""
    try:
        onnx_config = htp_optimum.export_config(pipeline, task, source_dir, library="sentence_transformers")
    except htp_optimum.Unavailable as reason:
        raise htp_sentence.RecipeError(str(reason))
    return OptimumSpec(task, pipeline, onnx_config, source_dir, renamed={"token_embeddings": htp_sentence.TOKEN_OUTPUT},
                       base=base)


def is_transformers_model(model):
    """Whether `model` is a transformers PreTrainedModel, told from its classes: asking transformers would
    import its modeling code (seconds) for a --model factory's plain torch module that never needs it."""
    return any(cls.__name__ == "PreTrainedModel" and cls.__module__.startswith("transformers.")
               for cls in type(model).__mro__)


def float64_outputs(spec, inputs):
    """torch's outputs for `inputs` with the model and its float inputs in float64; the model is float32 again after."""
    spec.model.double()
    try:
        wide = {name: value.double() if torch.is_tensor(value) and value.is_floating_point() else value
                for name, value in inputs.items()}
        with torch.no_grad(), htp_reference.HELD:
            return spec.run(wide)
    finally:
        spec.model.float()


class TorchSide:
    """The torch half of the reference check: the inputs and torch's outputs for them (a decoder's
    cached step too). It needs no file, so a decoder's export computes it while the tied-weight pass
    writes model.onnx (`in_background`); an exception is raised where the result is taken."""

    def __init__(self, spec):
        self.spec = spec
        self._thread, self._result, self._error = None, None, None

    def in_background(self):
        self._thread = threading.Thread(target=self._compute, name="reference-torch-side", daemon=True)
        self._thread.start()
        return self

    def result(self):
        """(notes, inputs, expected, step): step is (chosen ids, torch's step inputs, its outputs) or None."""
        if self._thread is not None:
            self._thread.join()
        elif self._result is None and self._error is None:
            self._compute()
        if self._error is not None:
            raise self._error
        return self._result

    def _compute(self):
        try:
            spec, notes = self.spec, []
            inputs, expected = spec.reference_case(notes)
            step = None
            if isinstance(spec, DecoderSpec):
                # The cached step continues each side's own prompt: torch's presents to torch, ONNX
                # Runtime's to the ONNX model, both with the token torch chose.
                chosen = expected["logits"][:, -1, :].argmax(dim=-1)
                torch_step = spec.next_step(inputs, expected, chosen)
                with torch.no_grad(), htp_reference.HELD:
                    step = (chosen, torch_step, spec.run(torch_step))
            self._result = (notes, inputs, expected, step)
        except BaseException as error:  # raised again in the caller's thread, as if computed there
            self._error = error


def reference_check(spec, onnx_path, atol, atol_origin, torch_side=None):
    """Compare the exported file with torch on fresh inputs (htp_reference.py); the record."""
    notes, inputs, expected, step = (torch_side or TorchSide(spec)).result()
    if htp_reference.HELD.calls:  # torch drew random numbers: the file's draws are held too
        session = htp_reference.held_session(onnx_path, notes, htp_reference.onnx_session)
    else:
        session = htp_reference.onnx_session(onnx_path)
    if step is None:
        produced = htp_reference.run_onnx(session, inputs)
        htp_reference.check_declared_shapes(session, inputs, produced)
        steps = [htp_reference.step_record("", inputs, expected, produced, atol)]
        htp_reference.allow_torch_spread(steps[0], expected, lambda: float64_outputs(spec, inputs), atol, notes)
        return htp_reference.judge(steps, atol, atol_origin, notes, log)
    chosen, torch_step, expected_step = step
    produced = htp_reference.run_onnx(session, inputs)
    htp_reference.check_declared_shapes(session, inputs, produced)
    steps = [htp_reference.step_record("prompt", inputs, {"logits": expected["logits"]}, {"logits": produced["logits"]}, atol)]
    onnx_step = spec.next_step(inputs, {k: torch.from_numpy(v) for k, v in produced.items()}, chosen)
    produced = htp_reference.run_onnx(session, onnx_step)
    steps.append(htp_reference.step_record("cached", torch_step, {"logits": expected_step["logits"]},
                                           {"logits": produced["logits"]}, atol))
    return htp_reference.judge(steps, atol, atol_origin, notes, log)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="htp_exporter.py",
        description="Export a Hugging Face-style model to ONNX with its module hierarchy.")
    parser.add_argument("--source", required=True, help="model directory (config.json, ...)")
    parser.add_argument("--task", required=True, help="Optimum task name")
    parser.add_argument("--onnx", required=True, help="ONNX file to write (with --check-only: to compare)")
    parser.add_argument("--modules", required=True, help="module hierarchy JSON to write")
    parser.add_argument("--model", help="FILE.py:FACTORY building the model from config.json")
    parser.add_argument("--library", choices=htp_sentence.LIBRARIES, default="transformers",
                        help="sentence-transformers: the checkpoint's whole pipeline (modules.json), with its "
                             "sentence_embedding output (feature-extraction only)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %d)" % DEFAULT_OPSET)
    parser.add_argument("--raise-opset", action="store_true",
                        help="export at a newer opset (up to %d) when an operator of the model needs it" % MAX_OPSET)
    parser.add_argument("--atol", type=float, default=None,
                        help="reference check tolerance (default %g, or Optimum's larger one for the model type)"
                             % htp_reference.DEFAULT_ATOL)
    parser.add_argument("--no-reference-check", action="store_true",
                        help="do not compare the ONNX model's outputs with torch's (recorded as skipped)")
    parser.add_argument("--check-only", action="store_true",
                        help="export nothing: compare the existing --onnx file with the source's torch model and "
                             "write the record to --modules (modelexport validate --reference)")
    parser.add_argument("--source-boundary",
                        help="folder that links in the source may point into (default: --source; "
                             "modelexport passes the cache repository folder for Hub snapshots)")
    parser.add_argument("--random-weights", action="store_true",
                        help="for tests only: keep the factory's initial weights when the source "
                             "has no weights file (with --model)")
    return parser.parse_args(argv)


def export(options):
    clock = PhaseClock()
    task_modality(options.task)  # validate before any heavy work
    if options.library == "sentence-transformers":
        if options.task != "feature-extraction":
            raise UsageError("--library sentence-transformers exports the embedding pipeline: --task feature-extraction, "
                             "not %s" % options.task)
        if options.model:
            raise UsageError("--library sentence-transformers loads the checkpoint with transformers: no --model")
    source_dir = options.source
    if not os.path.isdir(source_dir):
        raise UsageError("source directory not found: %s" % source_dir)
    config = read_json(os.path.join(source_dir, "config.json"))
    if not isinstance(config, dict):
        raise RuntimeError("config.json is not a JSON object")
    check_single_file(options.task, config, os.path.join(source_dir, "config.json"))

    log("loading model")
    boundary = options.source_boundary or source_dir
    loading_info = None
    with clock.phase("load"):
        if options.model:
            model = load_user_model(source_dir, options.model, config, boundary, options.random_weights)
        else:
            if options.random_weights:
                raise UsageError("--random-weights needs --model FILE.py:FACTORY")
            model, loading_info = load_transformers_model(source_dir, options.task, boundary)
        model.eval()

    base = model
    if options.library == "sentence-transformers":
        model = htp_sentence.pipeline_for(base, source_dir)
        spec, table_reason = sentence_spec(options.task, model, base, source_dir), None
    else:
        spec, table_reason = export_spec(options.task, model, config, source_dir)
    if loading_info is not None:
        unused = check_loading_info(base, loading_info, source_dir, options.task, spec)
        if unused:
            log("%s the exported outputs never use: %s" % (count_of(unused, "missing tensor"), some(unused)))
    if options.check_only:  # prebuilt, command, validate --reference: an existing file against this source
        write_module_table(options.modules, {"format": 1, "reference_check": run_reference_check(spec, options)})
        return
    opset = options.opset
    input_names, output_names = spec.inputs, spec.outputs

    module_count = sum(1 for _ in model.named_modules())
    log("exporting to ONNX (opset %d), signature from %s, tracing %d modules" % (opset, spec.source, module_count))
    # A decoder's tied-weight pass edits torch's bytes before the one write (htp_decoder.py);
    # above IN_MEMORY_BYTES of weights torch needs a path (its per-tensor external data).
    decoder = isinstance(spec, DecoderSpec)
    target = options.onnx
    if decoder and weight_bytes(model) < IN_MEMORY_BYTES:
        target = htp_decoder.CapturedBytes()
    # The hierarchy is recorded during torch's own trace of the forward (the hooks only note
    # which module runs first; the graph is the same), rather than in a forward of its own.
    with htp_decoder.traceable_masks(), spec.patched(), recorded_modules(model) as modules, \
            traced_outputs(model) as traced, clock.phase("torch.onnx.export"):
        opset = at_needed_opset(lambda version: torch.onnx.export(
            model, spec.args, target,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=spec.axes,
            opset_version=version,
            do_constant_folding=True,
            **torchscript_exporter_arguments()), opset, options.raise_opset)
    torch_side = None
    if decoder:
        if not options.no_reference_check:
            torch_side = TorchSide(spec).in_background()
        with clock.phase("tied weights"):
            parameter_names = {n for n, _ in model.named_parameters()}
            if target is options.onnx:
                with open(options.onnx, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    htp_decoder.share_transposed_copies(mapped, options.onnx, parameter_names, log, written=True)
            else:
                htp_decoder.share_transposed_copies(target.value(), options.onnx, parameter_names, log)
    if isinstance(spec, OptimumSpec):
        with clock.phase("static axes"):
            spec.signature.fix_static_axes(options.onnx)
            renamed = spec.signature.name_own_axes(options.onnx, traced[0] if traced else {})
            if renamed:
                log("output axes named after an input's but sized otherwise in the trace, renamed: %s"
                    % ", ".join("%s -> %s" % item for item in sorted(renamed.items())))

    # From here the file is only read: modelexport hashes it and makes it durable meanwhile.
    print(FINAL_FILE_LINE + os.path.basename(options.onnx), flush=True)
    with clock.phase("reference check"):
        checked = run_reference_check(spec, options, torch_side)

    description = {
        "format": 1,
        "task": options.task,
        "root_class": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "inputs": input_names,
        "outputs": output_names,
        "opset": opset,
        "signature": {"source": spec.source, **({"reason": table_reason} if table_reason else {})},
        **({"sentence_transformers": htp_sentence.recipe(model)} if options.library == "sentence-transformers" else {}),
        "reference_check": checked,
        "torch_version": torch.__version__,
        "onnx_exporter": ONNX_EXPORTER,
        "modules": modules,
        "phase_seconds": clock.seconds,
    }
    write_module_table(options.modules, description)


def run_reference_check(spec, options, torch_side=None):
    """The reference check's record: run, skipped on request, or not run with the reason."""
    if options.no_reference_check:
        return {"status": "skipped", "reason": "--no-reference-check"}
    optimum_atol = htp_optimum.atol(spec.signature.config, spec.task) if isinstance(spec, OptimumSpec) else None
    atol, origin = htp_reference.tolerance(options.atol, spec.model, spec.task, spec.source_dir, optimum_atol)
    try:
        record = reference_check(spec, options.onnx, atol, origin, torch_side)
    except htp_reference.NotRun as reason:
        return {"status": "not_run", "reason": str(reason)}
    return record


def write_module_table(path, description):
    """The module table the C++ side reads (sorted keys: the same model gives the same bytes)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(description, handle, sort_keys=True, indent=2)
        handle.write("\n")
    log("done")


def describe(error):
    """The exception's message, or, when it has none (a bare assert inside torch's exporter), its
    type and the function that raised it: the one line modelexport shows must say something."""
    if str(error):
        return str(error)
    frames = traceback.extract_tb(error.__traceback__)
    where = " in %s (%s line %d)" % (frames[-1].name, os.path.basename(frames[-1].filename), frames[-1].lineno) if frames else ""
    return "%s%s, without a message" % (type(error).__name__, where)


def run_export(prog, export_function, options, expected_errors, missing_transformers_hint=""):
    """Runs an exporter and maps its failure to the documented exit code: 2 usage, 1 export
    failure (an expected, actionable one without a traceback), 3 transformers missing."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch's note on its TorchScript exporter, which is chosen
    try:
        export_function(options)
    except UsageError as error:
        print("%s: error: %s" % (prog, error), file=sys.stderr)
        return 2
    except expected_errors + (OperatorError,) as error:
        print("%s: error: %s" % (prog, error), file=sys.stderr)
        return 1
    except htp_reference.ReferenceMismatch as error:
        print("%s: error: reference check failed: %s" % (prog, error), file=sys.stderr)
        return REFERENCE_MISMATCH_STATUS
    except MissingTransformers:
        print("%s: error: transformers is not installed%s" % (prog, missing_transformers_hint), file=sys.stderr)
        return 3
    except Exception as error:  # report anything else with a traceback
        traceback.print_exc(file=sys.stderr)
        print("%s: error: %s" % (prog, describe(error)), file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    return run_export("htp_exporter", export, parse_args(argv),
                      (WeightsError, htp_decoder.DecoderError, htp_optimum.Refused, htp_sentence.RecipeError),
                      "; pass --model FILE.py:FACTORY")



if __name__ == "__main__":
    status = main()
    # Every file is written and closed: skip the interpreter's teardown of torch and the
    # model, which writes nothing and takes seconds for a large model (docs/design.md §3).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
