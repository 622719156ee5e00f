#!/usr/bin/env python3
"""Export an encoder-decoder model (T5-style text-to-text, Whisper-style speech-to-text)
to Optimum's multi-file ONNX layout, with the module hierarchy of every file.

Usage:
  htp_seq2seq.py --source DIR --task text2text-generation[-with-past]|automatic-speech-recognition|text-to-audio|...
                 --output-dir DIR --modules FILE.json [--opset N] [--source-boundary DIR]

(text-to-audio is MusicGen's, exported through Optimum's parts only: text_encoder.onnx, encodec_decode.onnx,
the three decoders below and build_delay_pattern_mask.onnx; see "Optimum's parts".)

Writes into --output-dir, with Optimum's seq2seq names and axes (what
``optimum-cli export onnx --task text2text-generation-with-past`` /
``automatic-speech-recognition-with-past`` writes for the same model):

  encoder_model.onnx            input_ids, attention_mask [batch_size, encoder_sequence_length]   (text)
                                input_features [batch_size, num_mel_bins, frames]                  (speech)
                                -> last_hidden_state
  decoder_model.onnx            [encoder_attention_mask,] input_ids, encoder_hidden_states
                                -> logits, present.{i}.decoder.key/value, present.{i}.encoder.key/value
  decoder_with_past_model.onnx  [encoder_attention_mask,] input_ids, past_key_values.{i}.decoder/encoder.key/value
                                -> logits [batch_size, "1", vocab], present.{i}.decoder.key/value
  decoder_model_merged.onnx     the union of both decoders' inputs + use_cache_branch (bool [1])
                                -> decoder_model.onnx's outputs; one If node whose then_branch is the
                                decoder with past and else_branch the decoder without; every weight
                                stored once in the main graph (see merge_decoders)

--task text2text-generation and automatic-speech-recognition (Optimum's tasks without the cache) write the
first two only, the decoder's outputs being its logits alone, as optimum-cli writes them for those tasks.
--task feature-extraction-with-past writes all four of the base model (T5Model, ...), the decoder returning
last_hidden_state where the others return logits.

Inputs are in the order of the model's forward signature (attention_mask -> encoder_attention_mask,
decoder_input_ids -> input_ids, encoder_outputs -> encoder_hidden_states, then the cache), as
optimum-cli orders them. Whisper's encoder is static in its frames ([batch_size, 80, 3000] ->
[batch_size, 1500, d_model]), as optimum-cli exports it (the model itself refuses other lengths).

Every graph is traced from the whole model (T5ForConditionalGeneration, ...) with its forward
patched on the instance, never from a wrapper or a sub-module, so every ONNX node name carries the
module path from the model's root ("/encoder/block.0/layer.0/SelfAttention/q/MatMul",
"/model/decoder/layers.1/encoder_attn/k_proj/MatMul", "/lm_head/MatMul"): the same projection
(docs/design.md §4) tags every file. torch.onnx.export runs with dynamo=False (the TorchScript
exporter is the one whose node names carry scopes).

The module table (--modules) is JSON, format 2:

  {"format": 2, "task": T, "root_class": C, "parameters": N, "torch_version": V,
   "onnx_exporter": "torch.onnx.export (TorchScript)",
   "files": [ENTRY, ...]}                       # in the order listed above

and every ENTRY is a complete format-1 table, exactly what htp_exporter.py writes for one
model.onnx (so the C++ reader of one table reads each entry unchanged), plus "file":

  {"file": "encoder_model.onnx", "format": 1, "task": T, "root_class": C, "parameters": N,
   "inputs": [...], "outputs": [...], "torch_version": V, "onnx_exporter": E,
   "modules": [{"path": "encoder.block.0", "class": "T5Block", "torch_module": false,
                "order": 3 | null}, ...]}

"modules" lists every module of named_modules() (same list in every entry); "order" is the
module's first call while tracing THAT file's graph, null when the graph does not run it (the
encoder file never runs the decoder). The merged file's entry also has
  "branches": {"then": "decoder_with_past_model.onnx", "else": "decoder_model.onnx"},
  "order" being the first call in either decoder; its nodes live in the If node's two subgraphs
  (the main graph holds the If node only, named "/If_use_cache_branch", root scope).

Weights are read by htp_weights.py (model.safetensors or its index, else pytorch_model.bin with
weights_only=True), never random: the model is built from config.json and every key is checked.
Exit codes as htp_exporter.py: 0, 1 export failure, 2 usage error, 3 transformers missing.
"""

import argparse
import collections
import contextlib
import hashlib
import inspect
import os
import sys

sys.dont_write_bytecode = True

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import htp_decoder  # noqa: E402  (traceable_masks, _cache_object, _flat_cache)
import htp_reference  # noqa: E402
import htp_tasks  # noqa: E402
from htp_decoder import first_positive_int  # noqa: E402
from htp_exporter import (DEFAULT_OPSET, MAX_OPSET, ONNX_EXPORTER, MissingTransformers, UsageError, log, read_json,  # noqa: E402
                          at_needed_opset, recorded_modules, run_export, torchscript_exporter_arguments, trace_modules,
                          traced_outputs, write_module_table)
from htp_weights import WeightsError, load_weights, weight_files  # noqa: E402

class Seq2SeqTask(collections.namedtuple("Seq2SeqTask", "modality auto_class cached head parts_only", defaults=(False,))):
    """An exporter task: its inputs ("text", "speech", or None: speech when config.json has mel bins), the
    transformers Auto class, whether the decoder reads and returns its cache, what it returns besides, and
    whether only Optimum's parts describe it (MusicGen's text-to-audio: no T5-like tracing of this file's own)."""

    def modality_for(self, config):
        return self.modality or ("speech" if "num_mel_bins" in config or "input_feat_per_channel" in config else "text")


def by_parts(config, modality, task):
    """Whether the model is exported through Optimum's parts (below) rather than this file's own tracing of
    T5-, BART- and Whisper-like models: a task only the parts describe, a vision encoder, Speech2Text's encoder
    ([batch, frames, features] with a mask, not Whisper's layout), or a config.json without the decoder
    geometry the own tracing reads."""
    if task.parts_only or modality == "vision" or "input_feat_per_channel" in config:
        return True
    try:
        geometry(config)
    except Seq2SeqError:
        return True
    return False


TASKS = {
    "text2text-generation-with-past": Seq2SeqTask("text", "AutoModelForSeq2SeqLM", True, "logits"),
    "text2text-generation": Seq2SeqTask("text", "AutoModelForSeq2SeqLM", False, "logits"),
    "automatic-speech-recognition-with-past": Seq2SeqTask("speech", "AutoModelForSpeechSeq2Seq", True, "logits"),
    "automatic-speech-recognition": Seq2SeqTask("speech", "AutoModelForSpeechSeq2Seq", False, "logits"),
    "feature-extraction-with-past": Seq2SeqTask(None, "AutoModel", True, "last_hidden_state"),
    "image-to-text-with-past": Seq2SeqTask("vision", "AutoModelForVision2Seq", True, "logits"),
    "image-to-text": Seq2SeqTask("vision", "AutoModelForVision2Seq", False, "logits"),
    "text-to-audio": Seq2SeqTask("text", "AutoModelForTextToWaveform", True, "logits", parts_only=True),
}
ENCODER = "encoder_model.onnx"
DECODER = "decoder_model.onnx"
DECODER_WITH_PAST = "decoder_with_past_model.onnx"
MERGED = "decoder_model_merged.onnx"
USE_CACHE_BRANCH = "use_cache_branch"
IF_NODE = "/If_use_cache_branch"

# Dummy sizes for tracing. Lengths above 1 everywhere, so no size-1 axis is baked into a Reshape;
# the exported axes are symbolic and the tests run other lengths.
BATCH = 1
ENCODER_LENGTH = 8       # text encoder tokens
DECODER_LENGTH = 3       # decoder tokens, no past
STEP_LENGTH = 2          # decoder tokens with past
PAST_LENGTH = 3          # past decoder tokens
SEED = 0

# Forward parameter -> ONNX input name (Optimum's seq2seq decoder names).
DECODER_RENAMES = {"attention_mask": "encoder_attention_mask", "decoder_input_ids": "input_ids",
                   "encoder_outputs": "encoder_hidden_states", "past_key_values": "past_key_values"}
# Initializers kept inside each branch (Optimum's rule): scalars and 1-D int32/int64 tensors
# (shapes, axes); ONNX Runtime's optimizer folds them per branch.
SMALL_INT_TYPES = (6, 7)


class Seq2SeqError(Exception):
    """The model or config.json does not fit the encoder-decoder signature."""


# --------------------------------------------------------------------------
# Geometry, names and axes
# --------------------------------------------------------------------------

def geometry(config):
    """(decoder layers, decoder heads, head dim, d_model) from config.json (T5's and Whisper's keys)."""
    layers = first_positive_int(config, "num_decoder_layers", "decoder_layers", "num_layers")
    heads = first_positive_int(config, "num_heads", "decoder_attention_heads", "num_attention_heads")
    d_model = first_positive_int(config, "d_model", "hidden_size")
    head_dim = first_positive_int(config, "d_kv", "head_dim") or (d_model // heads if d_model and heads else None)
    if not (layers and heads and head_dim and d_model):
        raise Seq2SeqError("config.json: cannot tell the decoder cache shape (needs num_decoder_layers/"
                           "decoder_layers, num_heads/decoder_attention_heads and d_model)")
    return layers, heads, head_dim, d_model


def cache_names(prefix, layers, parts=("decoder", "encoder")):
    """prefix.{i}.decoder.key, .decoder.value, .encoder.key, .encoder.value, layer-major."""
    return ["%s.%d.%s.%s" % (prefix, i, part, kind) for i in range(layers) for part in parts
            for kind in ("key", "value")]


def decoder_input_names(model, layers, with_past, modality):
    """Decoder inputs in forward-signature order, as optimum-cli orders them."""
    order = [p.name for p in inspect.signature(model.forward).parameters.values()]
    wanted = ["decoder_input_ids", "encoder_outputs", "past_key_values"]
    if modality == "text":
        wanted.append("attention_mask")
    missing = [n for n in wanted if n not in order]
    if missing:
        raise Seq2SeqError("%s.forward does not accept %s" % (type(model).__name__, ", ".join(missing)))
    names = []
    for parameter in sorted(wanted, key=order.index):
        if parameter == "past_key_values":
            if with_past:
                names += cache_names("past_key_values", layers)
        elif parameter == "encoder_outputs" and with_past:
            continue  # the cross-attention keys come from the cache
        else:
            names.append(DECODER_RENAMES[parameter])
    return names


def decoder_output_names(layers, with_past, cached=True, head="logits"):
    """The logits (or `head`), then the presents (none when the package has no cache: `cached` false)."""
    if not cached:
        return [head]
    return [head] + cache_names("present", layers, ("decoder",) if with_past else ("decoder", "encoder"))


def encoder_names(modality):
    inputs = {"text": ["input_ids", "attention_mask"], "vision": ["pixel_values"]}.get(modality, ["input_features"])
    return inputs, ["last_hidden_state"]


def encoder_axes(modality, inputs, outputs):
    if modality == "speech":  # optimum-cli: static mel bins and frames
        return {name: {0: "batch_size"} for name in inputs + outputs}
    return {name: {0: "batch_size", 1: "encoder_sequence_length"} for name in inputs + outputs}


def decoder_axes(inputs, outputs, with_past, config):
    """Optimum's axes (OnnxSeq2SeqConfigWithPast): the with-past logits' step axis is named "1".

    One addition, from config.json: when the head dim is not d_model / heads (T5 v1.1 and Flan-T5
    small: d_kv 64, 6 heads, d_model 512), the past inputs' head-dim axis is named "head_dim"
    instead of fixed. Optimum (optimum-onnx 0.1.0, ORTDecoderForSeq2Seq) feeds the merged
    decoder's first step empty past tensors shaped [batch, heads, 0, d_model // heads], which
    ONNX Runtime refuses against a fixed dim (optimum-cli's own export of such a model fails so);
    the first step's branch never reads them, and the cached steps get the real presents.
    """
    _, heads, head_dim, d_model = geometry(config)
    loose_head_dim = d_model // heads != head_dim
    axes = {}
    for name in inputs + outputs:
        if name in ("encoder_attention_mask", "encoder_hidden_states") or ".encoder." in name:
            axes[name] = {0: "batch_size", (2 if "." in name else 1): "encoder_sequence_length"}
        elif name == "input_ids":
            axes[name] = {0: "batch_size", 1: "decoder_sequence_length"}
        elif name.startswith("past_key_values."):
            axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length"}
        elif name.startswith("present."):
            axes[name] = {0: "batch_size", 2: "past_decoder_sequence_length + decoder_sequence_length"}
        elif name in ("logits", "last_hidden_state"):
            axes[name] = {0: "batch_size", 1: "1" if with_past else "decoder_sequence_length"}
        if loose_head_dim and name.startswith("past_key_values."):
            axes[name][3] = "head_dim"
    return axes


# --------------------------------------------------------------------------
# Dummy inputs
# --------------------------------------------------------------------------

def ids(vocab, shape, offset):
    count = 1
    for dim in shape:
        count *= dim
    return ((offset + 7 * torch.arange(count, dtype=torch.int64)) % max(vocab, 1)).reshape(shape)


def dummy_encoder_inputs(config, modality):
    if modality == "text":
        shape = (BATCH, ENCODER_LENGTH)
        return {"input_ids": ids(int(config.get("vocab_size", 2)), shape, 1),
                "attention_mask": torch.ones(shape, dtype=torch.int64)}
    generator = torch.Generator().manual_seed(SEED)
    bins = int(config.get("num_mel_bins", 80))
    frames = 2 * int(config.get("max_source_positions", 1500))  # conv2 has stride 2
    return {"input_features": torch.randn((BATCH, bins, frames), generator=generator)}


def dummy_decoder_inputs(config, names, encoder_hidden, with_past):
    layers, heads, head_dim, _ = geometry(config)
    vocab = int(config.get("vocab_size", 2))
    encoder_length = encoder_hidden.shape[1]
    generator = torch.Generator().manual_seed(SEED)
    length = STEP_LENGTH if with_past else DECODER_LENGTH
    tensors = {
        "input_ids": ids(vocab, (BATCH, length), 3),
        "encoder_hidden_states": encoder_hidden,
        "encoder_attention_mask": torch.ones((BATCH, encoder_length), dtype=torch.int64),
    }
    for name in cache_names("past_key_values", layers):
        past = encoder_length if ".encoder." in name else PAST_LENGTH
        tensors[name] = torch.randn((BATCH, heads, past, head_dim), generator=generator)
    return {name: tensors[name] for name in names}


# --------------------------------------------------------------------------
# Forwards patched on the instance (the node scopes stay the model's module paths)
# --------------------------------------------------------------------------

def encoder_forward(model, modality, names):
    """The root's forward runs the encoder through its parents (model.model.encoder for Whisper),
    so the traced scopes are the encoder's full path ("/model/encoder/conv1/Conv"); calling the
    encoder from the root directly would name it by its last component only."""
    encoder = model.get_encoder()
    path = next(name for name, module in model.named_modules() if module is encoder)
    parts = path.split(".")
    chain = [model]
    for part in parts:
        chain.append(getattr(chain[-1], part))

    def forward_encoder(*tensors):
        given = dict(zip(names, tensors))
        return (chain[1](**given, return_dict=True).last_hidden_state,)
    return forward_encoder, chain[1:]


@contextlib.contextmanager
def passing_through(chain):
    """Every module of `chain` but the last forwards its call to the next one (patched on the
    instance: Whisper's model.model runs only its encoder); restored on exit."""
    patched = []
    try:
        for module, target in zip(chain, chain[1:]):
            module.forward = (lambda t: (lambda **kwargs: t(**kwargs)))(target)
            patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward


def _encoder_decoder_cache(flat, layers):
    """transformers' EncoderDecoderCache holding the flat past (per layer: self k, v, cross k, v)."""
    from transformers.cache_utils import EncoderDecoderCache
    self_pairs = [(flat[4 * i], flat[4 * i + 1]) for i in range(layers)]
    cross_pairs = [(flat[4 * i + 2], flat[4 * i + 3]) for i in range(layers)]
    return EncoderDecoderCache(htp_decoder._cache_object(self_pairs), htp_decoder._cache_object(cross_pairs))


def decoder_forward(forward, names, layers, d_model, with_past, cached=True, head="logits"):
    """forward(*tensors in `names` order) -> (logits, present...), cache flattened layer-major; the
    logits alone when the package has no cache (`cached` false); `head` for logits (a base model's
    last_hidden_state)."""
    past_names = cache_names("past_key_values", layers)

    def forward_decoder(*tensors):
        given = dict(zip(names, tensors))
        # use_cache even without a cache to return: the graph then keeps the logits only, and transformers'
        # cacheless mask path (torch.diff over positions) is not traced.
        kwargs = {"decoder_input_ids": given["input_ids"], "use_cache": True, "return_dict": True}
        if "encoder_attention_mask" in given:
            kwargs["attention_mask"] = given["encoder_attention_mask"]
        if with_past:
            flat = [given[n] for n in past_names]
            kwargs["past_key_values"] = _encoder_decoder_cache(flat, layers)
            # The decoder layers run cross-attention only when they are given encoder states; with
            # a filled cache they read its keys and use the states' shape at most. A zero tensor
            # shaped from the cached encoder keys stands in (no graph input, as in optimum-cli).
            cross = flat[2]
            hidden = torch.zeros(cross.shape[0], cross.shape[2], d_model, dtype=cross.dtype)
            kwargs["encoder_outputs"] = (hidden,)
        else:
            kwargs["encoder_outputs"] = (given["encoder_hidden_states"],)
        outputs = forward(**kwargs)
        if not cached:
            return (getattr(outputs, head),)
        cache = outputs.past_key_values
        self_flat = htp_decoder._flat_cache(cache.self_attention_cache)
        present = []
        if with_past:
            present = self_flat
        else:
            cross_flat = htp_decoder._flat_cache(cache.cross_attention_cache)
            for i in range(layers):
                present += self_flat[2 * i:2 * i + 2] + cross_flat[2 * i:2 * i + 2]
        return (getattr(outputs, head), *present)
    return forward_decoder


@contextlib.contextmanager
def traceable_empty_caches():
    """An empty cache layer starts as a zero-length slice of its first keys, not torch.tensor([]).

    transformers' DynamicLayer starts from a 1-D empty tensor and concatenates the first keys to
    it; eager torch accepts that, but the traced Concat joins a 1-D constant with a 4-D tensor,
    which ONNX rejects. A [batch, heads, 0, head_dim] slice of the keys keeps every axis dynamic.
    Restored on exit.
    """
    from transformers.cache_utils import DynamicLayer
    saved = DynamicLayer.lazy_initialization

    def lazy_initialization(self, key_states):
        self.dtype, self.device = key_states.dtype, key_states.device
        self.keys = key_states[:, :, :0]
        self.values = key_states[:, :, :0]
        self.is_initialized = True
    DynamicLayer.lazy_initialization = lazy_initialization
    try:
        yield
    finally:
        DynamicLayer.lazy_initialization = saved


# --------------------------------------------------------------------------
# Export of one graph
# --------------------------------------------------------------------------

def export_graph(model, forward, names, outputs, args, axes, path, opset, raise_opset=False):
    """Trace `forward` patched on `model` (hooks record first calls), then export it. Returns modules."""
    model.forward = forward
    try:
        with htp_decoder.traceable_masks(), traceable_empty_caches():
            modules, produced = trace_modules(model, args)
            if len(produced) != len(outputs):
                raise Seq2SeqError("%s: the graph returns %d outputs, expected %d (%s)"
                                   % (os.path.basename(path), len(produced), len(outputs), ", ".join(outputs)))
            at_needed_opset(lambda version: torch.onnx.export(
                model, args, path, input_names=names, output_names=outputs, dynamic_axes=axes, opset_version=version,
                do_constant_folding=True, **torchscript_exporter_arguments()), opset, raise_opset)
    finally:
        del model.forward  # the class's forward again
    fix_static_output_dims(path, dict(zip(outputs, produced)), axes)
    return modules


def fix_static_output_dims(path, produced, axes):
    """Declare the model's constant output dims (heads, head dim, vocabulary) as numbers.

    torch's shape inference loses them through the Concat of an empty cache with the first keys
    and names them "Concat<output>_dim_1"; optimum-cli's files declare the numbers. Every axis
    not in `axes` is a constant of the model, so the traced size is its value. The file is
    rewritten only when a dim changes.
    """
    import onnx
    model = onnx.load(path)
    changed = False
    for output in model.graph.output:
        traced = produced[output.name].shape
        dims = output.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis in axes.get(output.name, {}):
                continue
            if not dim.HasField("dim_value") or dim.dim_value != traced[axis]:
                dim.dim_value = int(traced[axis])  # clears dim_param (oneof)
                changed = True
    if changed:
        onnx.save(model, path)


# --------------------------------------------------------------------------
# The merged decoder
# --------------------------------------------------------------------------

def _tensor_key(tensor):
    from onnx import numpy_helper
    array = numpy_helper.to_array(tensor)
    return (tensor.data_type, tuple(tensor.dims), hashlib.sha256(array.tobytes()).hexdigest())


def _is_small(tensor):
    return len(tensor.dims) == 0 or (len(tensor.dims) == 1 and tensor.data_type in SMALL_INT_TYPES)


def _rename_inputs(graph, renames):
    """Rename node inputs (and inputs of nested subgraphs) of a branch."""
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name in renames:
                node.input[j] = renames[name]
        for attribute in node.attribute:
            if attribute.HasField("g"):
                _rename_inputs(attribute.g, renames)
            for sub in attribute.graphs:
                _rename_inputs(sub, renames)


def merge_decoders(decoder_path, with_past_path, merged_path, parameter_names):
    """decoder_model_merged.onnx: If(use_cache_branch, then=with past, else=without), weights once.

    Done here, with the onnx package, rather than in C++: the merge needs every initializer's
    bytes (equal tensors are found by content, and torch names a folded weight differently in
    each file), which the C++ side deliberately never reads (its light reader seeks over them),
    and Debian's ONNX 1.12 C++ API has no graph composition; the exporter holds the model anyway
    and its output (all four files) is what the export cache stores.

    Rules (as Optimum's merge_decoders, so clients that know Optimum's files know these):
    - every initializer but scalars and 1-D int32/int64 goes to the main graph, once per distinct
      content (data type, dims, bytes); a name that is a parameter path is kept, else the first
      name seen, made unique with "_merged_N" when two different tensors share it;
    - small initializers stay in their branch;
    - the with-past branch gets the encoder cache outputs the decoder without past has
      (present.{i}.encoder.*), as Identity of the past inputs: both branches return the same
      outputs, in the decoder's order, with its types and axes;
    - inputs: the decoder's, then the with-past decoder's others, then use_cache_branch (bool [1]).
    """
    import onnx
    decoder = onnx.load(decoder_path)
    with_past = onnx.load(with_past_path)
    if [(o.domain, o.version) for o in decoder.opset_import] != [(o.domain, o.version) for o in with_past.opset_import]:
        raise Seq2SeqError("the two decoders have different opsets")
    models = (decoder, with_past)

    # Group big initializers by content.
    groups = {}
    for index, model in enumerate(models):
        for tensor in model.graph.initializer:
            if not _is_small(tensor):
                groups.setdefault(_tensor_key(tensor), []).append((index, tensor))
    renames = ({}, {})
    shared, taken = [], set()
    for members in groups.values():
        names = [t.name for _, t in members]
        preferred = [n for n in names if n in parameter_names] or names
        name = preferred[0]
        suffix = 0
        while name in taken:
            name = "%s_merged_%d" % (preferred[0], suffix)
            suffix += 1
        taken.add(name)
        tensor = onnx.TensorProto()
        tensor.CopyFrom(members[0][1])
        tensor.name = name
        shared.append(tensor)
        for index, member in members:
            if member.name != name:
                renames[index][member.name] = name
    for index, model in enumerate(models):
        _rename_inputs(model.graph, renames[index])

    # The with-past branch returns the decoder's outputs, in its order.
    past_outputs = {o.name for o in with_past.graph.output}
    for output in decoder.graph.output:
        if output.name not in past_outputs:
            if not output.name.startswith("present.") or ".encoder." not in output.name:
                raise Seq2SeqError("decoder output %s has no counterpart with past" % output.name)
            source = output.name.replace("present.", "past_key_values.", 1)
            with_past.graph.node.append(onnx.helper.make_node(
                "Identity", [source], [output.name], name="/Identity_%s" % output.name))  # root scope
    del with_past.graph.output[:]
    with_past.graph.output.extend(decoder.graph.output)

    def branch(model, name):
        return onnx.helper.make_graph(nodes=model.graph.node, name=name, inputs=[], outputs=model.graph.output,
                                      initializer=[t for t in model.graph.initializer if _is_small(t)])

    inputs, seen = [], set()
    for model in models:
        for value in model.graph.input:
            if value.name not in seen:
                seen.add(value.name)
                inputs.append(value)
    inputs.append(onnx.helper.make_tensor_value_info(USE_CACHE_BRANCH, onnx.TensorProto.BOOL, [1]))
    node = onnx.helper.make_node("If", [USE_CACHE_BRANCH], [o.name for o in decoder.graph.output], name=IF_NODE,
                                 then_branch=branch(with_past, "with_past"), else_branch=branch(decoder, "no_past"))
    graph = onnx.helper.make_graph([node], "merged", inputs, list(decoder.graph.output), initializer=shared)
    merged = onnx.helper.make_model(graph, opset_imports=list(decoder.opset_import),
                                    producer_name=decoder.producer_name, producer_version=decoder.producer_version)
    merged.ir_version = decoder.ir_version
    onnx.checker.check_model(merged)
    onnx.save(merged, merged_path)
    return len(shared), sum(len(v) - 1 for v in groups.values())


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def load_model(source_dir, task, config, boundary):
    try:
        import transformers
    except ImportError as error:
        raise MissingTransformers(str(error))
    weight_files(source_dir, boundary)  # vet every weights file first (clear errors)
    auto = getattr(transformers, TASKS[task].auto_class)
    model_config = transformers.AutoConfig.from_pretrained(source_dir, local_files_only=True)
    try:
        model = auto.from_config(model_config)
    except ValueError as error:  # transformers has no such head for this model type: the task does not fit it
        if "Unrecognized configuration class" not in str(error):
            raise
        raise UsageError("--task %s: transformers' %s has no model for config.json's model_type %r"
                         % (task, TASKS[task].auto_class, model_config.model_type))
    model.tie_weights()
    load_weights(model, source_dir, boundary)
    if not getattr(model.config, "is_encoder_decoder", False):
        raise Seq2SeqError("%s is not an encoder-decoder model (config.json is_encoder_decoder)"
                           % type(model).__name__)
    return model.eval()


def table(name, task, model, inputs, outputs, modules):
    entry = {
        "file": name,
        "format": 1,
        "task": task,
        "root_class": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "inputs": inputs,
        "outputs": outputs,
        "torch_version": torch.__version__,
        "onnx_exporter": ONNX_EXPORTER,
        "modules": modules,
    }
    return entry


def merged_modules(first, second):
    """First call in either decoder, in the no-past decoder's numbering, then the with-past one's."""
    base = {m["path"]: m["order"] for m in first}
    offset = 1 + max([o for o in base.values() if o is not None] or [-1])
    out = []
    for record in second:
        order = base.get(record["path"])
        if order is None and record["order"] is not None:
            order = offset + record["order"]
        out.append(dict(record, order=order))
    return out


def reference_check(model, config, modality, source, directory, options, cached=True, head="logits"):
    """The reference check (htp_reference.py) of the files clients run: the encoder, then the merged
    decoder's two branches, its first step with an empty cache and a cached step fed with the first
    step's presents (ONNX Runtime's own to ONNX Runtime, torch's cache to torch), on a batch of 2 and
    lengths other than the trace's. The decoder takes torch's encoder states on both sides. Without a
    cache (`cached` false) the decoder is decoder_model.onnx, run once. `head` is the decoder output compared
    besides the cache (logits, or a base model's last_hidden_state)."""
    if options.no_reference_check:
        return {"status": "skipped", "reason": "--no-reference-check"}
    atol, origin = htp_reference.tolerance(options.atol, model, options.task, source)
    notes = []
    try:
        encoder_session = htp_reference.onnx_session(os.path.join(directory, ENCODER))
    except htp_reference.NotRun as reason:
        return {"status": "not_run", "reason": str(reason)}
    batch = 2
    if modality == "text":
        tokens = htp_reference.text_ids(source, model, batch, ENCODER_LENGTH, notes)
        if tokens is not None:
            input_ids, mask = tokens
        else:
            notes.append("no tokenizer in the source: generated ids")
            rows = htp_reference.embedding_rows(model) or int(config.get("vocab_size", 2))
            input_ids = ids(rows, (batch, ENCODER_LENGTH + 3), 5)
            mask = torch.ones_like(input_ids)
            mask[1, -2:] = 0
        encoder_inputs = {"input_ids": input_ids, "attention_mask": mask}
    else:
        features = dummy_encoder_inputs(config, modality)["input_features"]
        generator = torch.Generator().manual_seed(SEED + 1)
        encoder_inputs = {"input_features": torch.randn((batch,) + tuple(features.shape[1:]), generator=generator)}
    with torch.no_grad():
        hidden = model.get_encoder()(**encoder_inputs, return_dict=True).last_hidden_state
    produced = htp_reference.run_onnx(encoder_session, encoder_inputs)
    steps = [htp_reference.step_record("encoder", encoder_inputs, {"last_hidden_state": hidden}, produced, atol)]

    layers, heads, head_dim, _ = geometry(config)
    start = config.get("decoder_start_token_id")
    start = int(start) if isinstance(start, int) else 0
    vocab = int(config.get("vocab_size", 2))
    first = torch.tensor([[start, (start + 7) % vocab]] * batch, dtype=torch.int64)
    decoder_session = htp_reference.onnx_session(os.path.join(directory, MERGED if cached else DECODER))
    # Both decoders get torch's encoder states: each file is judged on its own error, not the encoder's
    # carried through it.
    feeds = {"input_ids": first, "encoder_hidden_states": hidden}
    if "attention_mask" in encoder_inputs:
        feeds["encoder_attention_mask"] = encoder_inputs["attention_mask"]
    if cached:
        feeds[USE_CACHE_BRANCH] = torch.tensor([False])
        for name in cache_names("past_key_values", layers):
            feeds[name] = torch.zeros((batch, heads, 0, head_dim))
    kwargs = {"encoder_outputs": (hidden,), "use_cache": cached, "return_dict": True}
    if "attention_mask" in encoder_inputs:
        kwargs["attention_mask"] = encoder_inputs["attention_mask"]
    with torch.no_grad():
        expected = model(decoder_input_ids=first, **kwargs)
    produced = htp_reference.run_onnx(decoder_session, feeds)
    steps.append(htp_reference.step_record("decoder", feeds, {head: getattr(expected, head)}, {head: produced[head]}, atol))
    if not cached:
        return htp_reference.judge(steps, atol, origin, notes, log)

    # The next token: the greedy one where there are logits, else a fixed one (a base model has no vocabulary head).
    chosen = (expected.logits[:, -1, :].argmax(dim=-1, keepdim=True) if head == "logits"
              else torch.full((batch, 1), (start + 3) % vocab, dtype=torch.int64))
    feeds = dict(feeds, input_ids=chosen, **{USE_CACHE_BRANCH: torch.tensor([True])})
    for past, present in zip(cache_names("past_key_values", layers), cache_names("present", layers)):
        feeds[past] = torch.from_numpy(produced[present])
    with torch.no_grad():
        expected = model(decoder_input_ids=chosen, past_key_values=expected.past_key_values, **kwargs)
    produced = htp_reference.run_onnx(decoder_session, feeds)
    steps.append(htp_reference.step_record("cached decoder", feeds, {head: getattr(expected, head)},
                                           {head: produced[head]}, atol))
    return htp_reference.judge(steps, atol, origin, notes, log)


def merged_decoder(model, options, path, decoder_tables):
    """Writes decoder_model_merged.onnx from the two decoders; its module table entry."""
    log("merging into %s" % MERGED)
    parameter_names = {n for n, _ in model.named_parameters()}
    stored, shared = merge_decoders(path(DECODER), path(DECODER_WITH_PAST), path(MERGED), parameter_names)
    log("%d weights stored once (%d shared by both decoders)" % (stored, shared))
    no_past, past = decoder_tables
    merged_inputs = no_past["inputs"] + [n for n in past["inputs"] if n not in no_past["inputs"]] + [USE_CACHE_BRANCH]
    entry = table(MERGED, options.task, model, merged_inputs, no_past["outputs"],
                  merged_modules(no_past["modules"], past["modules"]))
    entry["branches"] = {"then": DECODER_WITH_PAST, "else": DECODER}
    return entry


# --------------------------------------------------------------------------
# Optimum's parts (by_parts)
# --------------------------------------------------------------------------
#
# A vision encoder-decoder's decoder is any causal LM given cross-attention (GPT-2, TrOCR, BERT, ...);
# its cache and inputs are that decoder's own, which Optimum's configuration of the pair knows
# (EncoderDecoderBaseOnnxConfig takes the decoder's configuration); Speech2Text's encoder takes a mask.
# So these models are exported part by part as optimum-cli exports them: its submodels, their
# configurations' names, axes, dummy inputs and patchers, each part traced with the hierarchy hooks, the
# two decoders merged by this file's merge.

class PartSpec:
    """One part (encoder, decoder, decoder with past) of Optimum's export of the model."""

    def __init__(self, name, model, onnx_config):
        import htp_optimum
        self.name, self.model = name, model
        self.signature = htp_optimum.Signature(model, onnx_config)
        self.inputs, self.outputs, self.axes = self.signature.inputs, self.signature.outputs, self.signature.axes

    def export(self, path, opset, raise_opset=False):
        """Writes the part's ONNX file; its module records. Output axes are named as the one-file export names
        them (Signature.fix_static_axes, then name_own_axes: MusicGen's logits are batch x codebooks rows,
        which its configuration calls batch_size)."""
        with htp_decoder.traceable_masks(), self.signature.patched(), recorded_modules(self.model) as modules, \
                traced_outputs(self.model) as traced:
            at_needed_opset(lambda version: torch.onnx.export(
                self.model, (self.signature.dummy,), path, input_names=self.inputs, output_names=self.outputs,
                dynamic_axes=self.axes, opset_version=version, do_constant_folding=True,
                **torchscript_exporter_arguments()), opset, raise_opset)
        self.signature.fix_static_axes(path)
        self.signature.name_own_axes(path, traced[0] if traced else {})
        return modules

    def reference_case(self):
        """Fresh inputs (batch 3 and other lengths than the trace's, seeded) and torch's outputs for them,
        the inputs as the ONNX file takes them. The lengths are longer than a convolution's reflect padding
        (EnCodec's decoder, traced on the branch for inputs longer than its padding). A file whose
        configuration declares an input's length static (MusicGen's build_delay_pattern_mask) gets the
        trace's lengths with the new batch."""
        shapes = {"batch_size": 3, "sequence_length": 9, "past_sequence_length": 4}
        inputs = self.signature.inputs_for(seed=1, **shapes)
        if not self.keeps_static_axes(inputs):
            inputs = self.signature.inputs_for(seed=1, batch_size=3)
        with torch.no_grad(), self.signature.patched():
            expected = self.signature.named_outputs(self.model(**inputs))
        return self.signature.onnx_feeds(inputs, self.inputs), expected

    def keeps_static_axes(self, inputs):
        """Whether `inputs` have the traced sizes along every axis the configuration does not declare dynamic
        (a collection's tensors, the cache's, have every axis declared)."""
        traced = dict(self.signature.tensor_inputs(self.signature.dummy))
        for name, value in self.signature.tensor_inputs(inputs):
            before = traced.get(name)
            if before is None or value.dim() != before.dim():
                continue
            dynamic = self.axes.get(name, {})
            if any(value.shape[axis] != before.shape[axis] for axis in range(before.dim()) if axis not in dynamic):
                return False
        return True


def encoder_inputs_of(task, config):
    """The encoder inputs the task's row describes (share/tasks.json): its first input in any of its forms
    (input_alternatives: Moonshine's raw waveform, Pix2Struct's flattened_patches), and the others it may
    take. What the row's Optimum class feeds, so an encoder taking anything else is refused."""
    row = htp_tasks.task_for(task, config)
    main = row["inputs"][0]
    return [main] + row.get("input_alternatives", {}).get(main, []), set(row["inputs"][1:] + row["optional_inputs"])


def parts_of(model, task, source):
    """{file name: PartSpec} of optimum-cli's export of `model` for `task`, in export order."""
    import htp_optimum
    if not callable(getattr(model, "get_encoder", None)):  # a decoder whose config.json claims is_encoder_decoder
        raise Seq2SeqError("config.json: cannot tell the decoder cache shape: it says is_encoder_decoder, but %s "
                           "has no encoder" % type(model).__name__)
    try:
        parts = htp_optimum.submodels(model, task, source)
    except htp_optimum.Unavailable as reason:
        raise Seq2SeqError(str(reason))
    return {name + ".onnx": PartSpec(name + ".onnx", *part) for name, part in parts.items()}


def empty_past(feeds_with_past):
    """The merged decoder's first step: every past input of the cached step with no positions."""
    return {name: torch.zeros(tuple(value.shape[:2]) + (0,) + tuple(value.shape[3:]), dtype=value.dtype)
            for name, value in feeds_with_past.items() if name.startswith("past_key_values.")}


def parts_reference_check(parts, directory, atol, origin):
    """Each part's file against torch on fresh inputs, its outputs of the shapes it declares
    (htp_reference.check_declared_shapes); the merged decoder's two branches on the same inputs as the
    decoders they were made of."""
    notes = []
    steps = []
    cases = {}
    try:
        for name, part in parts.items():
            feeds, expected = part.reference_case()
            cases[name] = (feeds, expected)
            session = htp_reference.onnx_session(os.path.join(directory, name))
            produced = htp_reference.run_onnx(session, feeds)
            htp_reference.check_declared_shapes(session, feeds, produced)
            label = os.path.splitext(name)[0].replace("_model", "").replace("_", " ")
            steps.append(htp_reference.step_record(label, feeds, expected, produced, atol))
        if DECODER_WITH_PAST in parts:
            session = htp_reference.onnx_session(os.path.join(directory, MERGED))
            for name, branch in ((DECODER, False), (DECODER_WITH_PAST, True)):
                feeds, expected = cases[name]
                feeds = dict(feeds, **{USE_CACHE_BRANCH: torch.tensor([branch])})
                if not branch:
                    feeds.update(empty_past(cases[DECODER_WITH_PAST][0]))
                produced = htp_reference.run_onnx(session, feeds)
                steps.append(htp_reference.step_record("merged decoder, %s" % ("cached" if branch else "first step"),
                                                       feeds, expected, produced, atol))
    except htp_reference.NotRun as reason:
        return {"status": "not_run", "reason": str(reason)}
    return htp_reference.judge(steps, atol, origin, notes, log)


def export_parts(options, model, config):
    """The export through Optimum's parts; the module table's description."""
    parts = parts_of(model, options.task, options.source)
    takes = next(iter(parts.values())).inputs  # the primary file's: the encoder's
    main, others = encoder_inputs_of(options.task, config)
    if takes[:1] not in ([name] for name in main) or not set(takes[1:]) <= others:
        raise Seq2SeqError("%s's encoder takes %s, not %s: task %s's Optimum class does not feed it"
                           % (type(model).__name__, ", ".join(takes), " or ".join(main), options.task))
    path = lambda name: os.path.join(options.output_dir, name)  # noqa: E731
    if options.check_only:
        return {"reference_check": check_parts(parts, options, model)}
    entries = {}
    for name, part in parts.items():
        log("exporting %s" % name)
        modules = part.export(path(name), options.opset, options.raise_opset)
        entries[name] = table(name, options.task, part.model, part.inputs, part.outputs, modules)
    if DECODER_WITH_PAST in parts:
        entries[MERGED] = merged_decoder(model, options, path, (entries[DECODER], entries[DECODER_WITH_PAST]))
    return {"task": options.task, "root_class": type(model).__name__, "parameters": int(sum(p.numel() for p in model.parameters())),
            "signature": {"source": "optimum"}, "reference_check": check_parts(parts, options, model),
            "files": list(entries.values())}


def check_parts(parts, options, model):
    """The parts' reference check record, with Optimum's tolerance for the pair where it is larger."""
    if options.no_reference_check:
        return {"status": "skipped", "reason": "--no-reference-check"}
    import htp_optimum
    atol, origin = htp_reference.tolerance(options.atol, model, options.task, options.source,
                                           htp_optimum.atol(next(iter(parts.values())).signature.config, options.task))
    return parts_reference_check(parts, options.output_dir, atol, origin)


def export(options):
    if options.task not in TASKS:
        raise UsageError("unknown task '%s' (known: %s)" % (options.task, ", ".join(sorted(TASKS))))
    task = TASKS[options.task]
    source = options.source
    if not os.path.isdir(source):
        raise UsageError("source directory not found: %s" % source)
    os.makedirs(options.output_dir, exist_ok=True)
    config = read_json(os.path.join(source, "config.json"))
    if not isinstance(config, dict):
        raise Seq2SeqError("config.json is not a JSON object")
    modality, cached, head = task.modality_for(config), task.cached, task.head

    log("loading model")
    model = load_model(source, options.task, config, options.source_boundary or source)
    if by_parts(config, modality, task):
        description = export_parts(options, model, config)
        write_module_table(options.modules, dict(description, format=2, torch_version=torch.__version__,
                                                 onnx_exporter=ONNX_EXPORTER))
        return
    if options.check_only:  # validate --reference: the existing files against this source
        write_module_table(options.modules, {"format": 2, "reference_check": reference_check(
            model, config, modality, source, options.output_dir, options, cached, head)})
        return
    path = lambda name: os.path.join(options.output_dir, name)  # noqa: E731
    entries = []
    layers = geometry(config)[0]

    log("exporting %s" % ENCODER)
    names, outputs = encoder_names(modality)
    encoder_inputs = dummy_encoder_inputs(config, modality)
    args = tuple(encoder_inputs[n] for n in names)
    forward, chain = encoder_forward(model, modality, names)
    with passing_through(chain):
        modules = export_graph(model, forward, names, outputs, args, encoder_axes(modality, names, outputs),
                               path(ENCODER), options.opset, options.raise_opset)
    entries.append(table(ENCODER, options.task, model, names, outputs, modules))
    with torch.no_grad():
        encoder_hidden = model.get_encoder()(**encoder_inputs).last_hidden_state

    decoder_tables = []
    for name, with_past in ((DECODER, False), (DECODER_WITH_PAST, True))[:2 if cached else 1]:
        log("exporting %s" % name)
        names = decoder_input_names(model, layers, with_past, modality)
        outputs = decoder_output_names(layers, with_past, cached, head)
        tensors = dummy_decoder_inputs(config, names, encoder_hidden, with_past)
        args = tuple(tensors[n] for n in names)
        forward = decoder_forward(model.forward, names, layers, geometry(config)[3], with_past, cached, head)
        modules = export_graph(model, forward, names, outputs, args, decoder_axes(names, outputs, with_past, config), path(name),
                               options.opset, options.raise_opset)
        decoder_tables.append(table(name, options.task, model, names, outputs, modules))
    entries += decoder_tables
    if cached:
        entries.append(merged_decoder(model, options, path, decoder_tables))

    description = {
        "format": 2,
        "task": options.task,
        "root_class": type(model).__name__,
        "parameters": entries[0]["parameters"],
        "signature": {"source": "task table"},
        "reference_check": reference_check(model, config, modality, source, options.output_dir, options, cached, head),
        "torch_version": torch.__version__,
        "onnx_exporter": ONNX_EXPORTER,
        "files": entries,
    }
    write_module_table(options.modules, description)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="htp_seq2seq.py",
                                     description="Export an encoder-decoder model to Optimum's multi-file ONNX layout.")
    parser.add_argument("--source", required=True, help="model directory (config.json, weights, ...)")
    parser.add_argument("--task", required=True, help=", ".join(TASKS))
    parser.add_argument("--output-dir", required=True, help="directory for the four ONNX files")
    parser.add_argument("--modules", required=True, help="module tables JSON to write (format 2)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %d)" % DEFAULT_OPSET)
    parser.add_argument("--raise-opset", action="store_true",
                        help="export at a newer opset (up to %d) when an operator of the model needs it" % MAX_OPSET)
    parser.add_argument("--source-boundary", help="folder that links in the source may point into")
    parser.add_argument("--atol", type=float, default=None,
                        help="reference check tolerance (default %g)" % htp_reference.DEFAULT_ATOL)
    parser.add_argument("--no-reference-check", action="store_true",
                        help="do not compare the ONNX files' outputs with torch's (recorded as skipped)")
    parser.add_argument("--check-only", action="store_true",
                        help="export nothing: compare the ONNX files in --output-dir with the source's torch model")
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_args(argv)
    try:
        from transformers.utils import logging
        logging.set_verbosity_error()
    except ImportError:
        pass
    return run_export("htp_seq2seq", export, options, (WeightsError, Seq2SeqError))


if __name__ == "__main__":
    sys.exit(main())
