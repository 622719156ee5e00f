"""Decoder-only language models with their KV cache, for htp_exporter.py (issue 13).

The package is Optimum's ``text-generation-with-past`` in one ``model.onnx``
(docs/design.md §5, SPEC §5 "Decoders"): the cache is a graph input and output,

  inputs   input_ids [batch_size, sequence_length]
           attention_mask [batch_size, past_sequence_length + sequence_length]
           position_ids [batch_size, sequence_length]       (when forward takes it)
           past_key_values.{i}.key / .value [batch_size, kv_heads, past_sequence_length, head_dim]
  outputs  logits [batch_size, sequence_length, vocab]
           present.{i}.key / .value [batch_size, kv_heads, past_sequence_length + sequence_length, head_dim]

in the order of the model's forward signature (the cache at ``past_key_values``'
slot), as optimum-cli writes it. transformers.js builds the empty first cache
from these axis names, so they are exact.

transformers >= 4.48 passes the cache as a ``DynamicCache`` object, which
torch.onnx.export cannot take as an input. The forward is patched on the
instance (not wrapped in another module: the ONNX node scopes must stay the
model's module paths, docs/design.md §4) to take flat tensors, build the cache
from them, and return flat tensors. Plain-torch models (``--model FILE:FACTORY``)
with transformers' legacy tuple cache get the tuple.
"""

import contextlib
import inspect

import torch

import htp_tasks

# The decoder row of the task table (share/tasks.json): its inputs, outputs, axes and cache names.
TASK = htp_tasks.decoder_entry()
PAST = TASK["cache"]["input_prefix"]
PRESENT = TASK["cache"]["output_prefix"]
# Dummy cache for tracing: a past of at least one step, so the traced graph
# concatenates real 4-D tensors (an empty past would trace a 1-D placeholder);
# the exported graph also runs with a zero-length past (checked by the tests).
DUMMY_BATCH = 1
DUMMY_SEQUENCE = 2
DUMMY_PAST = 3


class DecoderError(Exception):
    """The model or its config.json does not fit the decoder signature."""


def _first(config, *keys):
    for key in keys:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return None


def cache_geometry(config):
    """(layers, kv_heads, head_dim) from config.json, with GPT-2's and Llama's key names."""
    layers = _first(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(config, "num_attention_heads", "n_head")
    kv_heads = _first(config, "num_key_value_heads") or heads
    hidden = _first(config, "hidden_size", "n_embd", "d_model")
    head_dim = _first(config, "head_dim") or (hidden // heads if hidden and heads else None)
    if not (layers and kv_heads and head_dim):
        raise DecoderError("config.json: cannot tell the cache shape (needs num_hidden_layers/n_layer, "
                           "num_attention_heads/n_head and hidden_size/n_embd)")
    return layers, kv_heads, head_dim


def cache_names(prefix, layers):
    """prefix.{i}.key, prefix.{i}.value for every layer, layer-major."""
    return ["%s.%d.%s" % (prefix, i, kind) for i in range(layers) for kind in ("key", "value")]


def _forward_order(model):
    signature = inspect.signature(model.forward)
    return [p.name for p in signature.parameters.values()]


def input_names(model, layers):
    """Graph inputs in forward-signature order, the cache expanded at its slot."""
    order = _forward_order(model)
    for needed in TASK["inputs"] + [PAST]:
        if needed not in order:
            raise DecoderError("%s.forward does not accept %s" % (type(model).__name__, needed))
    wanted = set(TASK["inputs"] + TASK["export_optional_inputs"] + [PAST])
    names = []
    for name in order:
        if name == PAST:
            names += cache_names(PAST, layers)
        elif name in wanted:
            names.append(name)
    return names


def output_names(layers):
    return list(TASK["outputs"]) + cache_names(PRESENT, layers)


def dynamic_axes(inputs, outputs):
    """Optimum's axis names (optimum's OnnxConfigWithPast.add_past_key_values and TextDecoderOnnxConfig),
    as the task table writes them."""
    axes = {}
    for name in inputs:
        axes[name] = htp_tasks.axes(TASK["cache"]["input_axes"] if name.startswith(PAST + ".") else TASK["dynamic_axes"][name])
    for name in outputs:
        axes[name] = htp_tasks.axes(TASK["cache"]["output_axes"] if name.startswith(PRESENT + ".") else TASK["dynamic_axes"][name])
    return axes


def dummy_inputs(config, names, past=DUMMY_PAST, sequence=DUMMY_SEQUENCE):
    """Deterministic inputs: ids (1 + 7k) % vocab, a full mask, positions after the past,
    a standard-normal cache from a generator seeded with 0."""
    layers, kv_heads, head_dim = cache_geometry(config)
    vocab = max(int(config.get("vocab_size", 2)), 1)
    generator = torch.Generator().manual_seed(0)
    shape = (DUMMY_BATCH, sequence)
    tensors = {
        "input_ids": ((1 + 7 * torch.arange(DUMMY_BATCH * sequence)) % vocab).reshape(shape),
        "attention_mask": torch.ones((DUMMY_BATCH, past + sequence), dtype=torch.int64),
        "position_ids": torch.arange(past, past + sequence, dtype=torch.int64).expand(shape).contiguous(),
    }
    for name in cache_names(PAST, layers):
        tensors[name] = torch.randn((DUMMY_BATCH, kv_heads, past, head_dim), generator=generator)
    return {name: tensors[name] for name in names}


def _cache_object(pairs):
    """transformers' DynamicCache holding `pairs`, or None when transformers has none (legacy tuples).

    Each layer is filled directly rather than through DynamicLayer.update, which
    starts from an empty 1-D tensor and concatenates: traced, that is a Concat of
    a 1-D constant with a 4-D input, which ONNX rejects. Filled directly, the
    update inside attention concatenates past (possibly zero-length) and new keys.
    """
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:
        return None
    cache = DynamicCache()
    cache.layers = []
    for key, value in pairs:
        layer = DynamicLayer()
        layer.dtype, layer.device = key.dtype, key.device
        layer.keys, layer.values = key, value
        layer.is_initialized = True
        cache.layers.append(layer)
    return cache


def _flat_cache(cache):
    if hasattr(cache, "layers"):
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]
    if hasattr(cache, "to_legacy_cache"):
        cache = cache.to_legacy_cache()
    return [t for pair in cache for t in pair[:2]]


def flat_forward(forward, names, layers, transformers_model):
    """forward(*tensors in `names` order) -> (logits, present.0.key, ...), patched on the instance."""
    past_names = cache_names(PAST, layers)

    def forward_with_flat_cache(*tensors):
        given = dict(zip(names, tensors))
        flat = [given.pop(n) for n in past_names]
        pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(layers)]
        cache = _cache_object(pairs) if transformers_model else None
        kwargs = dict(given, use_cache=True)
        kwargs[PAST] = cache if cache is not None else tuple(pairs)
        if transformers_model:
            kwargs["return_dict"] = True
        outputs = forward(**kwargs)
        if isinstance(outputs, (tuple, list)):
            logits, present = outputs[0], outputs[1]
        else:
            logits, present = outputs.logits, outputs.past_key_values
        return (logits, *_flat_cache(present))
    return forward_with_flat_cache


def broadcast_mask(batch_size, cache_position, kv_length, kv_offset=0, mask_function=None,
                   attention_mask=None, **_):
    """transformers' boolean [batch, 1, query, kv] attention mask, built by broadcasting.

    Same contract as transformers.masking_utils.sdpa_mask, but the element-wise
    mask function (causal, sliding window: comparisons of indices) is applied to
    broadcast index tensors instead of under torch.vmap, so every size stays a
    traced value; the padding mask multiplies in afterwards as sdpa_mask does.
    It never returns None (no is_causal shortcut): a cached step has fewer
    queries than keys, so the exported graph needs the mask.
    """
    from transformers import masking_utils
    function = mask_function or masking_utils.causal_mask_function
    kv_index = torch.arange(kv_length, device=cache_position.device) + kv_offset
    batch_index = torch.arange(batch_size, device=cache_position.device)
    mask = function(batch_index[:, None, None, None], torch.zeros(1, 1, 1, 1, dtype=torch.int64),
                    cache_position[None, None, :, None], kv_index[None, None, None, :])
    mask = mask.expand(batch_size, 1, cache_position.shape[0], kv_length)
    padding = masking_utils.prepare_padding_mask(attention_mask, kv_length, kv_offset)
    if padding is not None:
        mask = mask & padding[:, None, None, :].bool()
    return mask


@contextlib.contextmanager
def traceable_masks():
    """Have transformers build attention masks with broadcast_mask while exporting.

    transformers >= 4.53 builds masks with torch.vmap (masking_utils.sdpa_mask), which
    TorchScript's tracer records with the dummy input's sizes baked in (a Reshape to
    the traced [2, 1] fails on any other length). Optimum's model patcher replaces
    it for the same reason. Restored on exit; without transformers' masking_utils
    nothing changes.
    """
    try:
        from transformers import masking_utils
    except ImportError:
        yield
        return
    registry = getattr(masking_utils, "ALL_MASK_ATTENTION_FUNCTIONS", None)
    if registry is None or not hasattr(masking_utils, "sdpa_mask"):
        yield
        return
    saved_sdpa, saved_registered = masking_utils.sdpa_mask, registry["sdpa"]
    masking_utils.sdpa_mask = broadcast_mask  # eager_mask calls the module's sdpa_mask
    registry.register("sdpa", broadcast_mask)
    try:
        yield
    finally:
        masking_utils.sdpa_mask = saved_sdpa
        registry.register("sdpa", saved_registered)


def share_transposed_copies(onnx_path, parameter_names, log):
    """Store a tied weight once: replace an initializer that is the transpose of a parameter
    by a Transpose node reading that parameter.

    A tied lm_head (GPT-2's lm_head.weight is transformer.wte.weight) runs as
    MatMul(hidden, weight.T); torch's constant folding stores weight.T as a second
    initializer (it dedupes equal initializers, not transposed ones), which would
    double the embedding's bytes in the package. The Transpose node is named in the
    consumer's scope ("/lm_head/Transpose_tied"), so the hierarchy tags it like the
    MatMul (docs/design.md §4). Needs the onnx package; skipped, with a note, without
    it or when the weights are external (> 2 GiB).
    """
    try:
        import numpy
        import onnx
        from onnx import numpy_helper
    except ImportError:
        log("onnx not importable: tied weights may be stored twice")
        return 0
    model = onnx.load(onnx_path)
    graph = model.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        log("external weights: transposed copies of tied weights are kept")
        return 0
    transposed = {}
    for tensor in graph.initializer:
        if tensor.name in parameter_names and len(tensor.dims) == 2:
            array = numpy_helper.to_array(tensor)
            transposed[(array.dtype.str, array.T.shape, numpy.ascontiguousarray(array.T).tobytes())] = tensor.name
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, node)
    shared = []
    for tensor in list(graph.initializer):
        if tensor.name in parameter_names or len(tensor.dims) != 2 or tensor.name not in consumers:
            continue
        array = numpy_helper.to_array(tensor)
        original = transposed.get((array.dtype.str, array.shape, array.tobytes()))
        if original is None:
            continue
        scope = consumers[tensor.name].name.rpartition("/")[0]
        node = onnx.helper.make_node("Transpose", [original], [tensor.name], perm=[1, 0],
                                     name="%s/Transpose_tied_%d" % (scope, len(shared)))
        graph.node.insert(0, node)
        graph.initializer.remove(tensor)
        shared.append((tensor.name, original))
    if shared:
        onnx.save(model, onnx_path)
        log("tied weights stored once: %s" % ", ".join("%s = %s.T" % pair for pair in shared))
    return len(shared)
