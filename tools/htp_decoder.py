"""Decoder-only language models with their KV cache, for htp_exporter.py.

The package is Optimum's ``text-generation-with-past`` in one ``model.onnx``
(docs/design.md §5): the cache is a graph input and output,

  inputs   input_ids [batch_size, sequence_length]
           attention_mask [batch_size, past_sequence_length + sequence_length]
           position_ids [batch_size, sequence_length]       (when forward takes it)
           past_key_values.{i}.key / .value [batch_size, kv_heads, past_sequence_length, head_dim]
  outputs  logits [batch_size, sequence_length, vocab]
           present.{i}.key / .value [batch_size, kv_heads, past_sequence_length + sequence_length, head_dim]

or, for the configs the task table's ``cache.fused`` lists (GPT-BigCode with multi_query), one
``past_key_values.{i}.key_value`` [batch_size, past_sequence_length, 2 * head_dim] per layer and its
``present.{i}.key_value``, key then value on the last axis (``CacheForm``): transformers.js reads a
multi_query config's cache only in that form, and Optimum reads it too.

In the order of the model's forward signature (the cache at ``past_key_values``'
slot), as optimum-cli writes it. transformers.js builds the empty first cache
from these axis names, so they are exact.

transformers >= 4.48 passes the cache as a ``DynamicCache`` object, which
torch.onnx.export cannot take as an input. The forward is patched on the
instance (not wrapped in another module: the ONNX node scopes must stay the
model's module paths, docs/design.md §4) to take flat tensors, build the cache
from them, and return flat tensors. Which cache a model takes is read from its forward
(``takes_cache_object``): plain-torch models (``--model FILE:FACTORY``) with transformers'
legacy tuple cache get the tuple.
"""

import contextlib
import inspect
import io
import os
import sys

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


def first_positive_int(config, *keys):
    """The first of `keys` that config.json sets to a positive integer (families name the same size differently)."""
    for key in keys:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return None


def cache_geometry(config):
    """(layers, kv_heads, head_dim) from config.json, with GPT-2's and Llama's key names.

    A boolean `multi_query` decides the key/value heads (1, else one per attention head) over
    `num_key_value_heads`: GPT-BigCode's attention reads only the flag, and its config can save
    a stale `num_key_value_heads` (computed from the default n_head before n_head was set)."""
    # num_layers, attention_heads: XGLM; n_layers, n_heads: MPT; num_heads: GPT-Neo (their config.json keys)
    # decoder_layers, decoder_attention_heads: the decoder half of an encoder-decoder family as a causal LM (BartForCausalLM)
    layers = first_positive_int(config, "num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")
    heads = first_positive_int(config, "num_attention_heads", "n_head", "num_heads", "n_heads", "attention_heads",
                               "decoder_attention_heads")
    if isinstance(config.get("multi_query"), bool) and not config.get("new_decoder_architecture"):
        kv_heads = 1 if config["multi_query"] else heads
    else:
        kv_heads = first_positive_int(config, "num_key_value_heads", "num_kv_heads") or heads
    hidden = first_positive_int(config, "hidden_size", "n_embd", "d_model")
    head_dim = first_positive_int(config, "head_dim") or (hidden // heads if hidden and heads else None)
    if not (layers and kv_heads and head_dim):
        raise DecoderError("config.json: cannot tell the cache shape (needs num_hidden_layers/n_layer/num_layers/n_layers, "
                           "num_attention_heads/n_head/num_heads/n_heads/attention_heads and hidden_size/n_embd/d_model)")
    return layers, kv_heads, head_dim


class CacheForm:
    """How config.json's cache crosses the graph boundary: per layer a key and a value
    [batch, kv_heads, length, head_dim], or, when the task table's cache.fused names the config,
    one tensor [batch, length, 2 * head_dim] holding the single head's key then value (transformers'
    GPT-BigCode cache before 4.54, what transformers.js reads for multi_query)."""

    def __init__(self, config):
        self.layers, self.kv_heads, self.head_dim = cache_geometry(config)
        self.fused = htp_tasks.fused_cache(config, TASK["cache"])
        self.kinds = (self.fused["suffix"],) if self.fused else ("key", "value")

    def names(self, prefix):
        """prefix.{i}.key, prefix.{i}.value (or prefix.{i}.key_value) for every layer, layer-major."""
        return ["%s.%d.%s" % (prefix, i, kind) for i in range(self.layers) for kind in self.kinds]

    def axes(self, direction):
        """The table's axes of a cache tensor; direction "input_axes" or "output_axes"."""
        return htp_tasks.axes((self.fused or TASK["cache"])[direction])

    def dummy(self, generator, past, batch=DUMMY_BATCH):
        shape = ((batch, past, 2 * self.head_dim) if self.fused
                 else (batch, self.kv_heads, past, self.head_dim))
        return torch.randn(shape, generator=generator)

    def pairs(self, flat):
        """Graph tensors (names order) -> [(key, value)] per layer, [batch, heads, length, head_dim]."""
        if self.fused:
            return [(t[..., :self.head_dim].unsqueeze(1), t[..., self.head_dim:].unsqueeze(1)) for t in flat]
        return _pairs(flat)

    def legacy(self, flat):
        """Graph tensors -> transformers' legacy tuple cache: ((key, value), ...) per layer, or, fused,
        the one tensor per layer transformers' GPT-BigCode took before 4.54."""
        return tuple(flat) if self.fused else tuple(self.pairs(flat))

    def flat(self, cache):
        """A returned cache -> graph tensors in names order. A legacy tuple of one tensor per layer is
        already fused (transformers' GPT-BigCode before 4.54)."""
        if self.fused and isinstance(cache, (tuple, list)) and all(torch.is_tensor(t) for t in cache):
            return list(cache)
        flat = _flat_cache(cache)
        if not self.fused:
            return flat
        pairs = _pairs(flat)
        if any(key.dim() != 4 or key.shape[1] != 1 for key, _ in pairs):
            raise DecoderError("config.json asks for a fused key_value cache (one key/value head), but the forward "
                               "returned keys shaped %s" % (list(pairs[0][0].shape) if pairs else "[]"))
        return [torch.cat((key.squeeze(1), value.squeeze(1)), dim=-1) for key, value in pairs]


def _pairs(flat):
    """[key0, value0, key1, value1, ...] -> [(key0, value0), (key1, value1), ...]."""
    return list(zip(flat[0::2], flat[1::2]))


def _forward_order(model):
    signature = inspect.signature(model.forward)
    return [p.name for p in signature.parameters.values()]


def input_names(model, form, optimum_inputs=None):
    """Graph inputs in forward-signature order, the cache (a CacheForm) expanded at its slot. An optional
    input (position_ids) is left out where Optimum's configuration for the model (`optimum_inputs`) does."""
    order = _forward_order(model)
    for needed in TASK["inputs"] + [PAST]:
        if needed not in order:
            raise DecoderError("%s.forward does not accept %s" % (type(model).__name__, needed))
    optional = [name for name in TASK["export_optional_inputs"] if optimum_inputs is None or name in optimum_inputs]
    wanted = set(TASK["inputs"] + optional + [PAST])
    names = []
    for name in order:
        if name == PAST:
            names += form.names(PAST)
        elif name in wanted:
            names.append(name)
    return names


def output_names(form):
    return list(TASK["outputs"]) + form.names(PRESENT)


def dynamic_axes(inputs, outputs, form):
    """Optimum's axis names (optimum's OnnxConfigWithPast.add_past_key_values and TextDecoderOnnxConfig),
    as the task table writes them."""
    axes = {}
    for name in inputs:
        axes[name] = form.axes("input_axes") if name.startswith(PAST + ".") else htp_tasks.axes(TASK["dynamic_axes"][name])
    for name in outputs:
        axes[name] = form.axes("output_axes") if name.startswith(PRESENT + ".") else htp_tasks.axes(TASK["dynamic_axes"][name])
    return axes


def dummy_inputs(config, names, past=DUMMY_PAST, sequence=DUMMY_SEQUENCE, batch=DUMMY_BATCH, ids=None):
    """Deterministic inputs: ids (1 + 7k) % vocab (or `ids`), a full mask, positions after the past,
    a standard-normal cache from a generator seeded with 0."""
    form = CacheForm(config)
    vocab = max(int(config.get("vocab_size", 2)), 1)
    generator = torch.Generator().manual_seed(0)
    shape = (batch, sequence)
    tensors = {
        "input_ids": ids if ids is not None else ((1 + 7 * torch.arange(batch * sequence)) % vocab).reshape(shape),
        "attention_mask": torch.ones((batch, past + sequence), dtype=torch.int64),
        "position_ids": torch.arange(past, past + sequence, dtype=torch.int64).expand(shape).contiguous(),
    }
    for name in form.names(PAST):
        tensors[name] = form.dummy(generator, past, batch)
    return {name: tensors[name] for name in names}


def _cache_object(pairs):
    """transformers' DynamicCache holding `pairs`.

    Each layer is filled directly rather than through DynamicLayer.update, which
    starts from an empty 1-D tensor and concatenates: traced, that is a Concat of
    a 1-D constant with a 4-D input, which ONNX rejects. Filled directly, the
    update inside attention concatenates past (possibly zero-length) and new keys.
    """
    from transformers.cache_utils import DynamicCache, DynamicLayer
    cache = DynamicCache()
    cache.layers = []
    for key, value in pairs:
        layer = DynamicLayer()
        layer.dtype, layer.device = key.dtype, key.device
        layer.keys, layer.values = key, value
        layer.is_initialized = True
        cache.layers.append(layer)
    return cache


def _parameters(forward):
    return inspect.signature(forward).parameters


def takes_cache_object(forward):
    """Whether `forward` wants a transformers Cache object rather than the legacy tuple cache.

    Read from the forward itself, so any model is handled the same way: a `past_key_values`
    annotated with a Cache class (transformers >= 4.36 annotates `Optional[Cache]`), or a
    forward bound to a transformers class that does not annotate it, takes a Cache object;
    anything else (a plain torch module, a user factory's model) gets
    `((key, value), ...)` per layer, as transformers' legacy cache was. What the forward
    returns is read the same way whichever it takes (`_split_outputs`).
    """
    annotation = _parameters(forward)[PAST].annotation
    text = annotation if isinstance(annotation, str) else repr(annotation)
    if "Cache" in text:
        return True
    owner = getattr(forward, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("transformers.")


def _flat_cache(cache):
    """A returned cache as flat tensors: a Cache object (.layers, or .to_legacy_cache()),
    or legacy ((key, value), ...) pairs."""
    if hasattr(cache, "layers"):
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]
    if hasattr(cache, "to_legacy_cache"):
        cache = cache.to_legacy_cache()
    if not isinstance(cache, (tuple, list)) or not all(isinstance(pair, (tuple, list)) for pair in cache):
        raise DecoderError("the forward returned a cache of type %s; expected a transformers Cache or "
                           "((key, value), ...) per layer" % type(cache).__name__)
    return [t for pair in cache for t in pair[:2]]


def _split_outputs(outputs):
    """(logits, present cache) from what a causal LM's forward returns: a ModelOutput or dict with
    `logits` and `past_key_values`, or a tuple (logits, past_key_values, ...)."""
    if isinstance(outputs, dict) or hasattr(outputs, "logits"):
        get = outputs.get if isinstance(outputs, dict) else lambda key: getattr(outputs, key, None)
        logits, present = get("logits"), get(PAST)
    elif isinstance(outputs, (tuple, list)) and len(outputs) >= 2:
        logits, present = outputs[0], outputs[1]
    else:
        raise DecoderError("the forward returned %s; a causal LM with use_cache must return (logits, "
                           "past_key_values) or an output with .logits and .past_key_values"
                           % type(outputs).__name__)
    if present is None:
        raise DecoderError("the forward returned no past_key_values (does it honour use_cache=True?)")
    return logits, present


def flat_forward(forward, names, form):
    """forward(*tensors in `names` order) -> (logits, present.0.key, ...), patched on the instance.

    The cache goes in as the forward wants it (`takes_cache_object`; a legacy tuple forward with a
    fused cache gets one tensor per layer, as transformers' GPT-BigCode took it); `use_cache` and
    `return_dict` are passed only when the forward accepts them."""
    past_names = form.names(PAST)
    parameters = _parameters(forward)
    open_kwargs = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    extra = {key: True for key in ("use_cache", "return_dict") if key in parameters or open_kwargs}
    cache_object = takes_cache_object(forward)

    def forward_with_flat_cache(*tensors):
        given = dict(zip(names, tensors))
        flat = [given.pop(n) for n in past_names]
        kwargs = dict(given, **extra)
        kwargs[PAST] = _cache_object(form.pairs(flat)) if cache_object else form.legacy(flat)
        logits, present = _split_outputs(forward(**kwargs))
        present = form.flat(present)
        if len(present) != len(past_names):
            raise DecoderError("the forward returned a cache of %d tensors; config.json's %d layers need %d"
                               % (len(present), form.layers, len(past_names)))
        return (logits, *present)
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
    nothing changes, and when no transformers code is loaded (a plain-torch factory's
    model) transformers is not imported at all: its masks cannot run, and importing it
    costs seconds.
    """
    if "transformers" not in sys.modules:
        yield
        return
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


# Field numbers of onnx.proto3 that share_transposed_copies reads on the wire.
MODEL_GRAPH, GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_OUTPUT, TENSOR_RAW_DATA = 7, 1, 5, 12, 9


def _varint(buffer, pos):
    value = shift = 0
    while True:
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def output_shapes(path):
    """{output: [dim, ...]} of the ONNX file's graph outputs, read off the wire without parsing its
    weights: a dim is its int size, its symbolic name, or None when the file states neither (and
    the list is None when the output has no shape)."""
    import mmap
    import onnx
    shapes = {}
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        buffer = memoryview(mapped)
        try:
            for _, _, graph_start, graph_end in (f for f in _fields(buffer, 0, len(buffer)) if f[0] == MODEL_GRAPH):
                for number, _, start, end in _fields(buffer, graph_start, graph_end):
                    if number == GRAPH_OUTPUT:
                        info = onnx.ValueInfoProto.FromString(bytes(buffer[start:end]))
                        tensor = info.type.tensor_type
                        shapes[info.name] = ([d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param")
                                              else None for d in tensor.shape.dim] if tensor.HasField("shape") else None)
        finally:
            buffer.release()
    return shapes


def _fields(buffer, start, end):
    """(number, field start, value start, value end) of each protobuf field in buffer[start:end]:
    the message's structure only, so that a field (a 300 MB initializer) is found without being
    parsed or copied. The protobuf runtime has no public way to do that."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buffer, pos)
        wire = key & 7
        if wire == 0:
            value_start, pos = pos, _varint(buffer, pos)[1]
        elif wire in (1, 5):
            value_start, pos = pos, pos + (8 if wire == 1 else 4)
        elif wire == 2:
            length, value_start = _varint(buffer, pos)
            pos = value_start + length
        else:
            raise DecoderError("unexpected protobuf wire type %d in the exported model" % wire)
        if pos > end:
            raise DecoderError("the exported model ends inside a protobuf field")
        yield key >> 3, field_start, value_start, pos


def share_transposed_copies(serialized, onnx_path, parameter_names, log, written=False):
    """Writes `serialized` (torch.onnx.export's ModelProto bytes) to `onnx_path`, storing a tied
    weight once: an initializer that is the transpose of a parameter is replaced by a Transpose
    node reading that parameter.

    A tied lm_head (GPT-2's lm_head.weight is transformer.wte.weight) runs as
    MatMul(hidden, weight.T); torch's constant folding stores weight.T as a second
    initializer (it dedupes equal initializers, not transposed ones), which would
    double the embedding's bytes in the package. The Transpose node is named in the
    consumer's scope ("/lm_head/Transpose_tied_0"), so the hierarchy tags it like the
    MatMul (docs/design.md §4). Needs the onnx package; without it the bytes are written
    as they are, with a note.

    The bytes are edited on the wire, not parsed and re-serialised (which copies every
    weight twice): the graph's fields are located, each initializer's header (everything
    but raw_data) is parsed by onnx, only a pair whose shapes and types could match is
    compared (as arrays over the buffer, or read from torch's per-tensor external file
    above 2 GiB, which is then deleted), and the file is written once, as the kept byte
    ranges with the new nodes first in the graph: the bytes onnx.save would write for the
    edited model. `serialized` is bytes, a memoryview or an mmap; `written` says it already is
    the content of `onnx_path` (a mapped file), which is then rewritten only when a copy is shared.
    """
    buffer = memoryview(serialized)
    try:
        import numpy
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        log("onnx not importable: tied weights may be stored twice")
        return 0 if written else _write_pieces(onnx_path, [buffer])
    base = os.path.dirname(os.path.abspath(onnx_path))
    graphs = [f for f in _fields(buffer, 0, len(buffer)) if f[0] == MODEL_GRAPH]
    if len(graphs) != 1:
        log("the exported model has %d graph fields: tied weights left as exported" % len(graphs))
        return 0 if written else _write_pieces(onnx_path, [buffer])
    _, graph_field, graph_start, graph_end = graphs[0]

    consumers, initializers = {}, []
    for number, field_start, start, end in _fields(buffer, graph_start, graph_end):
        if number == GRAPH_NODE:
            node = onnx.NodeProto.FromString(bytes(buffer[start:end]))
            for name in node.input:
                consumers.setdefault(name, node)
        elif number == GRAPH_INITIALIZER:
            header, raw = bytearray(), None
            for tensor_field, tensor_field_start, value_start, value_end in _fields(buffer, start, end):
                if tensor_field == TENSOR_RAW_DATA:
                    raw = (value_start, value_end)
                else:
                    header += buffer[tensor_field_start:value_end]
            initializers.append((onnx.TensorProto.FromString(bytes(header)), raw, (field_start, end)))

    def external_file(tensor):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return None
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        return location if location and os.path.basename(location) == location else None

    def array(tensor, raw, span):
        dtype = (helper.tensor_dtype_to_np_dtype(tensor.data_type) if hasattr(helper, "tensor_dtype_to_np_dtype")
                 else onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[tensor.data_type])  # onnx < 1.13 (Debian 12's)
        if raw is not None:
            return numpy.frombuffer(buffer[raw[0]:raw[1]], dtype=dtype).reshape(tensor.dims)
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            count = int(numpy.prod(tensor.dims))
            return numpy.fromfile(os.path.join(base, info["location"]), dtype=dtype, count=count,
                                  offset=int(info.get("offset", 0))).reshape(tensor.dims)
        return numpy_helper.to_array(onnx.TensorProto.FromString(bytes(buffer[span[0]:span[1]])))

    parameters = [i for i in initializers if i[0].name in parameter_names and len(i[0].dims) == 2]
    shared, removed_spans, removed_files, new_nodes = [], [], [], []
    for tensor, raw, span in initializers:
        if tensor.name in parameter_names or len(tensor.dims) != 2 or tensor.name not in consumers:
            continue
        matches = [p for p in parameters
                   if p[0].data_type == tensor.data_type and list(p[0].dims) == list(reversed(tensor.dims))]
        if not matches:
            continue
        copy = array(tensor, raw, span)
        original = next((p[0].name for p in matches if _is_transpose(array(*p), copy)), None)
        if original is None:
            continue
        scope = consumers[tensor.name].name.rpartition("/")[0]
        node = helper.make_node("Transpose", [original], [tensor.name], perm=[1, 0],
                                name="%s/Transpose_tied_%d" % (scope, len(shared)))
        new_nodes.insert(0, node)  # each goes first, as graph.node.insert(0, node) would put it
        removed_spans.append(span)
        if external_file(tensor):
            removed_files.append(external_file(tensor))
        shared.append((tensor.name, original))
    if not shared:
        return 0 if written else _write_pieces(onnx_path, [buffer])

    nodes = b"".join(_encode_varint(GRAPH_NODE << 3 | 2) + _encode_varint(n.ByteSize()) + n.SerializeToString()
                     for n in new_nodes)
    kept, pos = [], graph_start
    for start, end in removed_spans:  # in file order: initializers were walked in order
        kept.append(buffer[pos:start])
        pos = end
    kept.append(buffer[pos:graph_end])
    graph_length = len(nodes) + sum(len(piece) for piece in kept)
    _write_pieces(onnx_path, [buffer[:graph_field], _encode_varint(MODEL_GRAPH << 3 | 2) + _encode_varint(graph_length),
                              nodes] + kept + [buffer[graph_end:]])
    still_used = {external_file(t) for t, _, span in initializers if span not in removed_spans}
    for name in removed_files:
        if name not in still_used and os.path.isfile(os.path.join(base, name)):
            os.remove(os.path.join(base, name))
    log("tied weights stored once: %s" % ", ".join("%s = %s.T" % pair for pair in shared))
    return len(shared)


class CapturedBytes(io.BytesIO):
    """A file-like target for torch.onnx.export that keeps the bytes objects written to it
    instead of copying them (torch writes its serialised ModelProto in one write)."""

    def __init__(self):
        super().__init__()
        self.chunks = []

    def write(self, data):
        self.chunks.append(data)
        return len(data)

    def value(self):
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


def _is_transpose(matrix, other, tile=256):
    """Whether `other` is matrix.T, compared tile by tile: a tile of each fits in the cache,
    where a whole strided transpose misses it on nearly every element (5x slower on GPT-2's
    embedding)."""
    import numpy
    for row in range(0, other.shape[0], tile):
        for column in range(0, other.shape[1], tile):
            if not numpy.array_equal(matrix[column:column + tile, row:row + tile].T,
                                     other[row:row + tile, column:column + tile]):
                return False
    return True


def _write_pieces(path, pieces):
    """Writes the byte ranges `pieces` to `path`, replacing it by a rename (it may be the
    file the pieces are mapped from)."""
    partial = path + ".partial"
    with open(partial, "wb") as handle:
        for piece in pieces:
            handle.write(piece)
    os.replace(partial, path)
    return 0
