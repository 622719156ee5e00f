"""Variants of an exported package's ONNX files, made with ONNX Runtime's own tools and measured
against the fp32 files they come from (docs/variants.md).

    htp_variants.py --dir STAGE --files model.onnx [...] --variants q8,fp16,ort --report OUT.json
                    [--source DIR --task T [--model FILE.py:FACTORY] [--source-boundary DIR]]
                    [--tolerance [VARIANT:]MEASURE=VALUE ...]
    htp_variants.py --list-files --files model.onnx [...] --variants q8,fp16,ort
                    (prints the file names, one a line: the Meson template's declared outputs;
                     it needs the standard library only)

Names and files are transformers.js's (`DEFAULT_DTYPE_SUFFIX_MAPPING`): each ONNX file NAME.onnx
gets NAME_quantized.onnx (q8), NAME_int8.onnx, NAME_uint8.onnx, NAME_fp16.onnx, NAME_q4.onnx,
NAME_q4f16.onnx; `ort` gives NAME.ort and one required_operators.config for all files, as
`python -m onnxruntime.tools.convert_onnx_models_to_ort` writes them. The 8-bit and 4-bit choices
are those of transformers.js's conversion script (scripts/quantize.py), so a package's files are
the ones that script would have put on the Hub.

Accuracy: the reference check's inputs (htp_reference.py, built by the exporter's own spec from
the source) go through the fp32 file and the variant; the measures and their bounds are below.
A variant past a bound is exit status 4; the report (JSON) names every figure either way.
"""

import argparse
import concurrent.futures
import heapq
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

OUT_OF_BOUNDS_STATUS = 4

# variant name -> file name suffix (before ".onnx"), as transformers.js maps its dtypes.
SUFFIXES = {"q8": "_quantized", "int8": "_int8", "uint8": "_uint8", "fp16": "_fp16", "q4": "_q4", "q4f16": "_q4f16"}
ORT = "ort"
ORT_OPERATORS = "required_operators.config"
KNOWN = tuple(SUFFIXES) + (ORT,)

# The bounds a variant must meet, per measure and precision class (docs/variants.md explains them).
#   cosine: the smallest cosine similarity between fp32's and the variant's sequence vectors (each
#           float output of an encoder mean-pooled over its unmasked tokens, as embeddings are read).
#   argmax: the share of positions whose argmax over a logits output agrees (classifiers, heads).
#   greedy: how far the variant's greedy continuation follows fp32's: the length of the common
#           prefix of GREEDY_TOKENS new ids, as a share of GREEDY_TOKENS, averaged over the prompts
#           (decoders; once the ids differ, later positions compare different texts).
#   max_abs_diff: always recorded; no bound unless one is given (logits scale with the model).
BOUNDS = {
    "fp16": {"cosine": 0.999, "argmax": 1.0, "greedy": 0.75},
    "8bit": {"cosine": 0.9, "argmax": 0.9, "greedy": 0.5},
    "4bit": {"cosine": 0.85, "argmax": 0.8, "greedy": 0.25},
}
PRECISION = {"fp16": "fp16", "q8": "8bit", "int8": "8bit", "uint8": "8bit", "q4": "4bit", "q4f16": "4bit"}
MEASURES = ("cosine", "argmax", "greedy", "max_abs_diff")
GREEDY_TOKENS = 8

# transformers.js's script: 8-bit weights are unsigned when the graph has one of these operators
# (onnxruntime-web has no ConvInteger for signed weights), signed otherwise (faster on most CPUs).
QUINT8_OPS = ("Conv", "GroupQueryAttention", "MultiHeadAttention")
Q4_BLOCK_SIZE = 32
TWO_GIB = 2 ** 31

TAG_KEY = "hierarchy_tag"


class UsageError(Exception):
    pass


class OutOfBounds(Exception):
    """A variant's measure is past its bound."""


def log(message):
    print("htp_variants: %s" % message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

def parse_variants(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in KNOWN:
            raise UsageError("unknown variant '%s'; known: %s" % (name, ", ".join(KNOWN)))
    if len(set(names)) != len(names):
        raise UsageError("variant listed twice in '%s'" % text)
    return names


def parse_tolerances(items, variants):
    """{variant: {measure: bound}} for every requested ONNX variant: the defaults, then the overrides."""
    bounds = {v: dict(BOUNDS[PRECISION[v]]) for v in variants if v in PRECISION}
    for item in items:
        for part in (p.strip() for p in item.split(",") if p.strip()):
            target, _, rest = part.rpartition(":")
            measure, sep, value = rest.partition("=")
            if not sep or measure not in MEASURES:
                raise UsageError("tolerance '%s' must be [VARIANT:]MEASURE=VALUE with MEASURE one of %s"
                                 % (part, ", ".join(MEASURES)))
            try:
                number = float(value)
            except ValueError:
                raise UsageError("tolerance '%s': '%s' is not a number" % (part, value))
            # A share (cosine, argmax agreement, greedy prefix) lies in [0, 1], a difference is >= 0; nan and inf
            # bound nothing (and JSON cannot carry them to the export).
            if not math.isfinite(number) or number < 0 or (measure != "max_abs_diff" and number > 1):
                raise UsageError("tolerance '%s': %s must be a finite number %s" % (
                    part, measure, ">= 0" if measure == "max_abs_diff" else "from 0 to 1"))
            if target and target not in bounds:
                raise UsageError("tolerance '%s' names the variant '%s', which is not requested" % (part, target))
            for name in ([target] if target else list(bounds)):
                bounds[name][measure] = number
    return bounds


# --------------------------------------------------------------------------
# Making the files
# --------------------------------------------------------------------------

def has_external_data(path):
    import onnx
    from onnx.external_data_helper import uses_external_data
    model = onnx.load(path, load_external_data=False)
    return any(uses_external_data(t) for t in model.graph.initializer)


def save(model, path, external):
    """The model at `path`; its tensors in one NAME.onnx_data beside it when the fp32 file had
    external data or the variant would pass protobuf's 2 GiB."""
    import onnx
    data = os.path.basename(path) + "_data"
    if external or model.ByteSize() >= TWO_GIB:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data, size_threshold=1024)
    else:
        onnx.save_model(model, path)


def operators(graph):
    return {node.op_type for node in all_nodes(graph)}


def graphs_of(graph):
    """The graph and every subgraph inside it, depth first."""
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from graphs_of(sub)


def gemm_as_matmul(model):
    """Each Gemm with a constant weight becomes MatMul (+ Add of its bias). ONNX Runtime's dynamic
    quantization (IntegerOpsRegistry) and MatMulNBitsQuantizer take MatMul, not Gemm: the linear layers
    of a model that exports them as Gemm (GPT-2's Conv1D, torch's addmm) would stay fp32 in a file
    named as quantized. The MatMul keeps the Gemm's name and tags, so the quantized nodes' tags carry."""
    import numpy
    from onnx import helper, numpy_helper
    transposed = {}
    for graph in graphs_of(model.graph):
        weights = {t.name: t for t in graph.initializer}
        nodes = []
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if (node.op_type != "Gemm" or len(node.input) < 2 or node.input[1] not in weights or attrs.get("transA", 0)
                    or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
                nodes.append(node)
                continue
            weight = node.input[1]
            if attrs.get("transB", 0):
                if weight not in transposed:
                    transposed[weight] = weight + "_transposed"
                    array = numpy.ascontiguousarray(numpy_helper.to_array(weights[weight]).T)
                    graph.initializer.append(numpy_helper.from_array(array, transposed[weight]))
                weight = transposed[weight]
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
            product = node.output[0] + "_matmul" if bias else node.output[0]
            rewritten = [helper.make_node("MatMul", [node.input[0], weight], [product], name=node.name)]
            if bias:
                rewritten.append(helper.make_node("Add", [product, bias], [node.output[0]], name=node.name + "_bias"))
            for new in rewritten:
                new.metadata_props.extend(node.metadata_props)
            nodes.extend(rewritten)
        del graph.node[:]
        graph.node.extend(nodes)
    used = {name for graph in graphs_of(model.graph) for node in graph.node for name in node.input}
    for graph in graphs_of(model.graph):
        for tensor in [t for t in graph.initializer if t.name in transposed and t.name not in used]:
            graph.initializer.remove(tensor)
    return model


def make_8bit(source, target, variant, external):
    """Dynamic quantization with the operator set and options of transformers.js's script."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry
    model = gemm_as_matmul(onnx.load(source))
    if variant == "q8":
        weight = QuantType.QUInt8 if operators(model.graph) & set(QUINT8_OPS) else QuantType.QInt8
    else:
        weight = QuantType.QInt8 if variant == "int8" else QuantType.QUInt8
    with tempfile.TemporaryDirectory(dir=os.path.dirname(target)) as scratch:
        raw = os.path.join(scratch, "quantized.onnx")
        quantize_dynamic(model, raw, op_types_to_quantize=sorted(IntegerOpsRegistry), per_channel=False,
                         reduce_range=False, weight_type=weight, use_external_data_format=external,
                         extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})
        return onnx.load(raw)


def make_fp16(model):
    """ONNX Runtime's float16 conversion; inputs and outputs stay fp32, as transformers.js feeds them.
    The converter appends the casts it adds: every graph's nodes are sorted again (transformers.js's
    script slims the model for the same reason). A merged decoder does not come here (merge_converted)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    converted = convert_float_to_float16(model, keep_io_types=True,
                                         disable_shape_infer=model.ByteSize() >= onnx.checker.MAXIMUM_PROTOBUF)
    sort_nodes(converted.graph)
    return converted


def subgraphs(node):
    import onnx
    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        for graph in attribute.graphs:
            yield graph


def defined_in(graph):
    """The names a graph itself defines: its inputs, initializers and node outputs."""
    return ({v.name for v in graph.input} | {t.name for t in graph.initializer}
            | {t.values.name for t in graph.sparse_initializer} | {o for n in graph.node for o in n.output if o})


def sort_nodes(graph):
    """Orders each graph's nodes so that every value is defined before it is read, counting the names a
    node's subgraphs read from this scope as its inputs; the original order breaks ties."""
    produced = {o: index for index, n in enumerate(graph.node) for o in n.output if o}

    def reads(node):
        names = {i for i in node.input if i}
        for sub in subgraphs(node):
            inner = defined_in(sub)
            for inner_node in sub.node:
                names |= {i for i in reads(inner_node) if i not in inner}
        return names

    needs = [{produced[i] for i in reads(n) if i in produced and produced[i] != index}
             for index, n in enumerate(graph.node)]
    waiting = [len(n) for n in needs]
    readers = {}
    for index, producers in enumerate(needs):
        for producer in producers:
            readers.setdefault(producer, []).append(index)
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for reader in readers.get(index, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) < len(graph.node):
        raise RuntimeError("the fp16 conversion left a cycle in graph %s" % graph.name)
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)
    for node in graph.node:
        for sub in subgraphs(node):
            sort_nodes(sub)


def make_q4(model):
    """MatMulNBits blocks of 32, symmetric, as transformers.js's script makes q4."""
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as error:
        raise UsageError("q4 and q4f16 need onnxruntime's MatMulNBitsQuantizer, which cannot be imported "
                         "here (%s)" % error)
    quantizer = MatMulNBitsQuantizer(model, block_size=Q4_BLOCK_SIZE, is_symmetric=True)
    quantizer.process()
    return quantizer.model.model


def convert(model, variant):
    """The q4, fp16 or q4f16 form of an in-memory model."""
    if variant in ("q4", "q4f16"):
        model = make_q4(gemm_as_matmul(model))
    if variant in ("fp16", "q4f16"):
        model = make_fp16(model)
    return model


# A merged decoder and the two decoders it is made of (its If's branches).
MERGED_FROM = {"decoder_model_merged.onnx": ("decoder_model.onnx", "decoder_with_past_model.onnx")}


def merge_converted(parts, variant):
    """The fp16 conversion renames the outputs of an If's branches that share the graph's output names
    (Optimum's merged decoders do), leaving branches that return nothing: the two decoders are
    converted instead and merged again as the exporter merged them (htp_seq2seq.merge_decoders)."""
    import onnx
    import htp_seq2seq
    with tempfile.TemporaryDirectory(prefix="modelexport-merge-") as scratch:
        made = []
        for part in parts:
            made.append(os.path.join(scratch, os.path.basename(part)))
            save(convert(onnx.load(part), variant), made[-1], has_external_data(part))
        merged = os.path.join(scratch, "merged.onnx")
        htp_seq2seq.merge_decoders(made[0], made[1], merged, set())
        return onnx.load(merged)


def make_onnx_variant(directory, name, variant):
    """Writes the variant of `name` into `directory`; its file name."""
    import onnx
    log("making %s of %s" % (variant, name))
    source = os.path.join(directory, name)
    target = os.path.join(directory, variant_file(name, variant))
    external = has_external_data(source)
    parts = [os.path.join(directory, part) for part in MERGED_FROM.get(name, ())]
    if variant in ("q8", "int8", "uint8"):
        model = make_8bit(source, target, variant, external)
    elif variant in ("fp16", "q4f16") and parts and all(os.path.isfile(part) for part in parts):
        model = merge_converted(parts, variant)
    else:
        model = convert(onnx.load(source), variant)
    carried = carry_tags(onnx.load(source, load_external_data=False), model)
    save(model, target, external)
    onnx.checker.check_model(target)
    return os.path.basename(target), carried


# personality(2)'s flag that turns address-space randomisation off for a process and what it executes.
ADDR_NO_RANDOMIZE = 0x0040000


def fixed_addresses():
    """A preexec function giving the child fixed addresses. ONNX Runtime's converter writes maps it keys by
    pointer in their hash order, so under randomised addresses each run writes other bytes. With fixed ones,
    a fixed environment and Python's string hashing seeded, the same model at a path of the same length
    gives the same .ort file (the paths' lengths move the heap). None where personality(2) is not there
    (then the file is correct, only not byte-reproducible)."""
    import ctypes
    try:
        personality = ctypes.CDLL(None, use_errno=True).personality
    except (OSError, AttributeError):
        return None
    personality.argtypes, personality.restype = [ctypes.c_ulong], ctypes.c_int

    def apply():  # in the child, between fork and exec: a call of a function resolved above, nothing else
        current = personality(0xFFFFFFFF)
        if current != -1:
            personality(current | ADDR_NO_RANDOMIZE)
    return apply


def make_ort(directory, names):
    """convert_onnx_models_to_ort on copies of the fp32 files (it converts every .onnx it finds):
    NAME.ort each and one required_operators.config, the same bytes for the same model."""
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        inputs, outputs = os.path.join(scratch, "in"), os.path.join(scratch, "out")
        os.mkdir(inputs)
        for name in names:
            os.link(os.path.join(directory, name), os.path.join(inputs, name))
            data = name + "_data"  # model.onnx_data: where gathering puts external data
            if os.path.exists(os.path.join(directory, data)):
                os.link(os.path.join(directory, data), os.path.join(inputs, data))
        # Relative paths: the converter's allocations, hence its output, do not depend on where the package is.
        done = subprocess.run([sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", "in",
                               "--output_dir", "out", "--optimization_style", "Fixed"], cwd=scratch,
                              env={"PATH": os.defpath, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=fixed_addresses())
        if done.returncode != 0:
            last = [line for line in done.stdout.splitlines() if line.strip()][-1:] or ["no output"]
            raise RuntimeError("convert_onnx_models_to_ort failed: %s" % last[0])
        made = []
        for name in names:
            ort = os.path.splitext(name)[0] + ".ort"
            os.replace(os.path.join(outputs, ort), os.path.join(directory, ort))
            made.append(ort)
        with open(os.path.join(outputs, ORT_OPERATORS), encoding="utf-8") as handle:
            config = handle.read()
        # Its header names the files it was made from by their absolute scratch paths: the package's names instead.
        config = "".join("# - %s\n" % os.path.basename(line[4:].rstrip("\n")) if line.startswith("# - ") else line
                         for line in config.splitlines(True))
        with open(os.path.join(directory, ORT_OPERATORS), "w", encoding="utf-8") as handle:
            handle.write(config)
    return made


def variant_file(name, variant):
    stem = os.path.splitext(name)[0]
    return stem + ".ort" if variant == ORT else stem + SUFFIXES[variant] + ".onnx"


# --------------------------------------------------------------------------
# Hierarchy tags
# --------------------------------------------------------------------------

def all_nodes(graph):
    """Every node of the graph and of its subgraphs."""
    for each in graphs_of(graph):
        yield from each.node


def tag_of(node):
    for entry in node.metadata_props:
        if entry.key == TAG_KEY:
            return entry.value
    return None


def carry_tags(original, variant):
    """Gives every variant node without a tag the tag of the fp32 node it replaces: the node of the
    same name, else the one whose name its own extends (the quantizers name their nodes after the
    node they rewrite: `.../MatMul_quant`, `.../MatMul_output_cast0`). {tagged, nodes} of the variant."""
    tags = {node.name: tag_of(node) for node in all_nodes(original.graph) if node.name and tag_of(node)}
    if not tags:
        return {"tagged": 0, "nodes": sum(1 for _ in all_nodes(variant.graph))}
    tagged = total = 0
    for node in all_nodes(variant.graph):
        total += 1
        if tag_of(node) is None:
            tag = tags.get(node.name)
            cut = node.name
            while tag is None and "_" in cut:
                cut = cut.rsplit("_", 1)[0]
                tag = tags.get(cut)
            if tag is not None:
                node.metadata_props.add(key=TAG_KEY, value=tag)
        tagged += tag_of(node) is not None
    return {"tagged": tagged, "nodes": total}


# --------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------

class Reference:
    """The reference check's inputs for the source, from the exporter's own spec."""

    def __init__(self, options):
        import htp_exporter
        import htp_reference
        import torch
        self.reference, self.torch = htp_reference, torch
        config = htp_exporter.read_json(os.path.join(options.source, "config.json"))
        boundary = options.source_boundary or options.source
        if options.model:
            model = htp_exporter.load_user_model(options.source, options.model, config, boundary)
        else:
            model, _ = htp_exporter.load_transformers_model(options.source, options.task, boundary)
        model.eval()
        self.spec, _ = htp_exporter.export_spec(options.task, model, config, options.source)
        self.decoder = isinstance(self.spec, htp_exporter.DecoderSpec)
        self.notes = []
        self.inputs, _ = self.spec.reference_case(self.notes)  # the reference check's inputs

    def session(self, path):
        return self.reference.onnx_session(path, as_written=False)

    def outputs(self, session):
        return self.reference.run_onnx(session, self.inputs)

    def greedy(self, session):
        """GREEDY_TOKENS new ids per prompt row, each step fed the session's own presents."""
        torch = self.torch
        inputs, chosen = self.inputs, []
        for _ in range(GREEDY_TOKENS):
            produced = self.reference.run_onnx(session, inputs)
            ids = torch.from_numpy(produced["logits"][:, -1, :]).argmax(dim=-1)
            chosen.append(ids)
            inputs = self.spec.next_step(inputs, {k: torch.from_numpy(v) for k, v in produced.items()}, ids)
        return torch.stack(chosen, dim=1).numpy()

    def mask(self):
        mask = self.inputs.get("attention_mask")
        return mask.numpy().astype(bool) if mask is not None else None


def float_outputs(outputs):
    return {name: value for name, value in outputs.items() if value.dtype.kind == "f"}


def max_abs_diff(expected, produced):
    import numpy
    worst = 0.0
    for name, want in float_outputs(expected).items():
        got = produced[name].astype(want.dtype)
        if want.size:
            diff = float(numpy.nanmax(numpy.abs(got - want)))
            worst = max(worst, diff if diff == diff else float("inf"))
    return worst


def positions(value, mask):
    """The output's vectors [N, last axis], only where the attention mask (when its shape fits) is 1."""
    vectors = value.reshape(-1, value.shape[-1])
    if mask is not None and tuple(mask.shape) == tuple(value.shape[:-1]):
        vectors = vectors[mask.reshape(-1)]
    return vectors


def pooled(value, mask):
    """One vector per sequence, as an embedding's reader takes it: a [batch, tokens, width] output averaged
    over each sequence's unmasked tokens (mean pooling, sentence-transformers' and transformers.js's), any
    other output row by row."""
    import numpy
    if value.ndim == 3 and mask is not None and tuple(mask.shape) == tuple(value.shape[:2]):
        weights = mask[..., None].astype(value.dtype)
        return (value * weights).sum(axis=1) / numpy.maximum(weights.sum(axis=1), 1)
    return value.reshape(-1, value.shape[-1])


def smallest_cosine(expected, produced, vectors):
    """The smallest cosine similarity between fp32's and the variant's vectors of any float output."""
    import numpy
    worst = 1.0
    for name, want in float_outputs(expected).items():
        if want.ndim < 2:
            continue
        a, b = vectors(want).astype("float64"), vectors(produced[name].astype(want.dtype)).astype("float64")
        norms = numpy.linalg.norm(a, axis=-1) * numpy.linalg.norm(b, axis=-1)
        values = numpy.where(norms > 0, (a * b).sum(axis=-1) / numpy.maximum(norms, 1e-30), 1.0)
        if values.size:
            worst = min(worst, float(values.min()))
    return worst


def argmax_agreement(expected, produced, mask):
    agree = total = 0
    for name, want in float_outputs(expected).items():
        if "logits" not in name:
            continue
        a = positions(want, mask).argmax(axis=-1)
        b = positions(produced[name], mask).argmax(axis=-1)
        agree += int((a == b).sum())
        total += int(a.size)
    return agree / total if total else 1.0


def common_prefix_share(want, got):
    shares = []
    for a, b in zip(want.tolist(), got.tolist()):
        same = 0
        while same < len(a) and a[same] == b[same]:
            same += 1
        shares.append(same / len(a))
    return float(sum(shares) / len(shares)) if shares else 1.0


def fp32_side(reference, path):
    """What the fp32 file gives on the reference inputs: its outputs, and a decoder's greedy ids."""
    session = reference.session(path)
    fp32 = {"outputs": reference.outputs(session)}
    if reference.decoder:
        fp32["greedy"] = reference.greedy(session)
    return fp32


def measure(reference, fp32, variant_path):
    """The variant file's figures against the fp32 side (fp32_side) on the reference inputs."""
    session = reference.session(variant_path)
    expected, produced = fp32["outputs"], reference.outputs(session)
    figures = {"max_abs_diff": max_abs_diff(expected, produced)}
    if reference.decoder:
        want, got = fp32["greedy"], reference.greedy(session)
        figures["greedy"] = common_prefix_share(want, got)
        figures["greedy_ids"] = {"fp32": want.tolist(), "variant": got.tolist()}
    elif any("logits" in name for name in float_outputs(expected)):
        figures["argmax"] = argmax_agreement(expected, produced, reference.mask())
    else:
        mask = reference.mask()
        figures["cosine"] = smallest_cosine(expected, produced, lambda value: pooled(value, mask))
        # Recorded, not bounded: single tokens (the separators most) move further than the sequences they make up.
        figures["token_cosine"] = smallest_cosine(expected, produced, lambda value: positions(value, mask))
    return figures


def judge(figures, bounds):
    """The measures past their bounds, as one line each ('' when all hold)."""
    failing = []
    for name, value in figures.items():
        bound = bounds.get(name)
        if bound is None or not isinstance(value, float):
            continue
        worse = value > bound if name == "max_abs_diff" else value < bound
        if worse:
            failing.append("%s %.4g %s the bound %.4g" % (name, value, "above" if name == "max_abs_diff" else "below", bound))
    return failing


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="htp_variants.py", description=__doc__.splitlines()[0])
    parser.add_argument("--list-files", action="store_true", help="print the files the variants would be, make nothing")
    parser.add_argument("--dir", help="directory holding the fp32 ONNX files; variants are written there")
    parser.add_argument("--files", required=True, nargs="+", help="the fp32 ONNX files (names in --dir)")
    parser.add_argument("--variants", required=True, help="comma-separated: " + ", ".join(KNOWN))
    parser.add_argument("--report", help="JSON file to write the variants' files and figures to")
    parser.add_argument("--source", help="model source: the reference inputs are built from it")
    parser.add_argument("--task", help="the export's task")
    parser.add_argument("--model", help="FILE.py:FACTORY, as the exporter took it")
    parser.add_argument("--source-boundary", help="folder that links in the source may point into")
    parser.add_argument("--tolerance", action="append", default=[],
                        help="[VARIANT:]MEASURE=VALUE (measures: %s); repeatable, comma-separated" % ", ".join(MEASURES))
    options = parser.parse_args(argv)
    if not options.list_files and (not options.dir or not options.report):
        parser.error("--dir and --report are required (unless --list-files)")
    return options


def listed_files(names, variants):
    """Every file `variants` make of the ONNX files `names`, as the export writes them."""
    out = []
    for variant in variants:
        out += [variant_file(name, variant) for name in names]
        if variant == ORT:
            out.append(ORT_OPERATORS)
    return out


def make_onnx_variants(directory, names, variants):
    """Every ONNX variant of every file: {(name, variant): (file name, carried tags)}."""
    return {(name, variant): make_onnx_variant(directory, name, variant) for variant in variants for name in names}


def onnx_variants_beside(directory, names, variants, build_reference):
    """Makes the ONNX variants in a forked child while this process builds the reference inputs
    (`build_reference()`, returned with the variants; None without it). The quantizer and the torch import and model
    load each keep one core busy for seconds; in turn they cost their sum. The child is forked before
    torch is imported here (forking a process whose torch threads run is unsafe), and an error in it
    is raised here. One core, or nothing to measure: in turn, in this process."""
    def in_turn():
        made = make_onnx_variants(directory, names, variants)
        return made, build_reference() if build_reference else None

    # In turn: one usable core; or a model in external data (over 2 GiB), where the quantizer's copy
    # and the fp32 session side by side could exhaust memory that each alone fits in.
    if (build_reference is None or len(os.sched_getaffinity(0)) < 2
            or any(os.path.exists(os.path.join(directory, name + "_data")) for name in names)):
        return in_turn()
    try:
        child = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    except (OSError, NotImplementedError):  # no POSIX semaphores here (no /dev/shm)
        return in_turn()
    with child:
        pending = child.submit(make_onnx_variants, directory, names, variants)
        try:
            reference = build_reference()
        except BaseException:
            pending.cancel()
            raise  # this process's error, not the child's
        try:
            made = pending.result()  # joined on every path: no child outlives the step
        except concurrent.futures.process.BrokenProcessPool:
            raise RuntimeError("the process making the variants %s of %s died (killed: out of memory?)"
                               % (",".join(variants), ", ".join(names)))
    return made, reference


def reference_for(options, names):
    """The reference inputs, or the reason the figures cannot be measured."""
    if len(names) > 1:
        return None, "an encoder-decoder package: its variants are not measured yet"
    if not options.source or not options.task:
        return None, "no --source and --task: nothing to build reference inputs from"
    try:
        return Reference(options), None
    except Exception as error:  # no loadable torch model (prebuilt without weights, ...): say why
        return None, "the source's model cannot be loaded to build the reference inputs (%s)" % relocatable(str(error), options)


def relocatable(text, options):
    """`text` with the source's and the package's paths named, not spelled: the reason is recorded in
    export_metadata.json, which never holds an absolute path (a package is relocatable)."""
    for path, name in ((options.dir, "the package"), (options.source, "the source")):
        for spelled in {os.path.realpath(path), os.path.abspath(path), path}:
            text = text.replace(spelled + os.sep, name + os.sep).replace(spelled, name)
    return text


def run(options):
    variants = parse_variants(options.variants)
    bounds = parse_tolerances(options.tolerance, variants)
    names = list(options.files)
    for name in names:
        if os.sep in name or not name.endswith(".onnx") or not os.path.isfile(os.path.join(options.dir, name)):
            raise UsageError("%s is not an ONNX file in %s" % (name, options.dir))
    onnx_variants = [variant for variant in variants if variant != ORT]

    def reference_and_fp32():
        # The fp32 side of every measure, made while the child quantizes (reference_for measures one file).
        reference, reason = reference_for(options, names)
        return reference, reason, fp32_side(reference, os.path.join(options.dir, names[0])) if reference else None

    made_onnx, measured = onnx_variants_beside(options.dir, names, onnx_variants,
                                               reference_and_fp32 if onnx_variants else None)
    reference, reason, fp32 = measured or (None, None, None)
    report = {"format": 1, "variants": []}
    failures = []
    for variant in variants:
        entry = {"name": variant, "files": []}
        if variant == ORT:
            log("converting to ORT format")
            made = make_ort(options.dir, names)
            entry["files"] = [{"file": f, "of": n, "bytes": os.path.getsize(os.path.join(options.dir, f))}
                              for f, n in zip(made, names)]
            entry["operators_file"] = ORT_OPERATORS
            report["variants"].append(entry)
            continue
        entry["bounds"] = bounds[variant]
        for name in names:
            made, tags = made_onnx[(name, variant)]
            path = os.path.join(options.dir, made)
            record = {"file": made, "of": name, "bytes": os.path.getsize(path), "hierarchy_tags": tags}
            data = made + "_data"
            if os.path.exists(os.path.join(options.dir, data)):
                record["data_file"] = data
                record["bytes"] += os.path.getsize(os.path.join(options.dir, data))
            if reference is None:
                record["accuracy"] = {"status": "not_measured", "reason": reason}
            else:
                figures = measure(reference, fp32, path)
                failing = judge(figures, bounds[variant])
                record["accuracy"] = {"status": "failed" if failing else "passed", **figures}
                if failing:
                    failures.append("%s (%s): %s" % (made, variant, "; ".join(failing)))
                shown = ", ".join("%s %.4g" % (k, v) for k, v in figures.items() if isinstance(v, float))
                log("%s: %s" % (made, shown))
            entry["files"].append(record)
        report["variants"].append(entry)
    if reference is not None and reference.notes:
        report["notes"] = reference.notes
    with open(options.report, "w", encoding="utf-8") as handle:
        json.dump(report, handle, sort_keys=True, indent=2)
        handle.write("\n")
    if failures:
        raise OutOfBounds("%s%s" % (failures[0], "; %d more" % (len(failures) - 1) if len(failures) > 1 else ""))


def main(argv=None):
    options = parse_args(argv)
    import logging
    import warnings
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process, once per file
    try:
        if options.list_files:
            print("\n".join(listed_files(options.files, parse_variants(options.variants))))
            return 0
        run(options)
    except UsageError as error:
        print("htp_variants: error: %s" % error, file=sys.stderr)
        return 2
    except OutOfBounds as error:
        print("htp_variants: error: variant past its accuracy bound: %s" % error, file=sys.stderr)
        return OUT_OF_BOUNDS_STATUS
    except Exception as error:  # a tool's failure: its message, with the traceback above it
        import traceback
        traceback.print_exc(file=sys.stderr)
        print("htp_variants: error: %s" % (error or type(error).__name__), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
