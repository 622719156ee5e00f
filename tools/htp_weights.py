"""Read a Hugging Face weights folder into a state dict, without running code.

Layouts, in order of preference (the first one present is used):

1. ``model.safetensors``
2. ``model.safetensors.index.json`` and the shards its ``weight_map`` names
3. ``pytorch_model.bin`` (``torch.load(..., weights_only=True)``)
4. ``pytorch_model.bin.index.json`` and its shards

safetensors files are read with the ``safetensors`` package when it is
importable, else by the reader below, which validates the header before
trusting any offset in it.  Pickle files only ever go through
``torch.load(weights_only=True)``, which refuses anything but tensors and
plain containers, so no code from a model file runs (SPEC section 11).

Every file is checked before it is opened: it must be a regular file whose
real path stays inside the source's boundary (the source directory itself,
or the Hugging Face cache repository folder for Hub snapshots, whose files
are links into ``../../blobs``).  Shard names in an index must be relative
and free of ``..``.

Every problem raises ``WeightsError(path, problem)``; its text is
``"<path>: <problem>"``, one line.
"""

import json
import math
import mmap
import os
import stat
import struct
import sys

import torch

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
# Preference order; see the module docstring.
LAYOUTS = (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX)

# A real header is a few hundred bytes per tensor; anything near this bound
# is a lie, and we must not allocate what a lying length asks for.
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_INDEX_BYTES = 64 * 1024 * 1024
# How many key names an error message quotes before "and N more".
KEYS_SHOWN = 5

# safetensors dtype -> (torch dtype, bytes per element).
DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}


class WeightsError(Exception):
    """A weights file is missing, unsafe or unusable."""

    def __init__(self, path, problem):
        super().__init__("%s: %s" % (path, problem))
        self.path = path
        self.problem = problem


# --------------------------------------------------------------------------
# Finding and vetting files
# --------------------------------------------------------------------------

def is_within(real, folder):
    return os.path.commonpath([real, folder]) == folder


def vetted(path, boundary):
    """The real path of `path`, refusing links out of `boundary` and special files.

    Checked before opening, so a FIFO cannot block us and a link cannot make
    us read a file the user did not put in the source.
    """
    real = os.path.realpath(path)
    if not is_within(real, os.path.realpath(boundary)):
        raise WeightsError(path, "links outside %s (to %s); refusing to read it" % (boundary, real))
    try:
        mode = os.stat(real).st_mode
    except OSError as error:
        raise WeightsError(path, "cannot be read (%s)" % error.strerror)
    if not stat.S_ISREG(mode):
        raise WeightsError(path, "is not a regular file")
    return real


def find_weights(source_dir):
    """Path of the preferred weights file of the source, or None.

    A name that exists in any form (a broken link, a directory) counts as
    present, so that it is refused later rather than silently skipped for a
    lower-preference layout.
    """
    for name in LAYOUTS:
        path = os.path.join(source_dir, name)
        if os.path.lexists(path):
            return path
    return None


def require_weights(source_dir):
    path = find_weights(source_dir)
    if path is None:
        raise WeightsError(source_dir, "no weights file (looked for %s)" % ", ".join(LAYOUTS))
    return path


def strict_json(data, path, what):
    """Parsed JSON; duplicate keys are an error (a lying header could hide a tensor)."""
    def no_duplicates(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise WeightsError(path, "%s has duplicate key %r" % (what, key))
            result[key] = value
        return result
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        raise WeightsError(path, "%s is not valid JSON (%s)" % (what, error))


def shard_paths(index_path, boundary):
    """{tensor name: (shard path as named, vetted real path)} from an index's weight_map."""
    size = os.path.getsize(vetted(index_path, boundary))
    if size > MAX_INDEX_BYTES:
        raise WeightsError(index_path, "is %d bytes, more than the %d byte limit" % (size, MAX_INDEX_BYTES))
    with open(index_path, "rb") as handle:
        index = strict_json(handle.read(), index_path, "the index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(index_path, "has no \"weight_map\" object naming the shards")
    folder = os.path.dirname(index_path)
    shards = {}
    for tensor, name in weight_map.items():
        if name not in shards:
            path = os.path.join(folder, checked_shard_name(name, index_path))
            shards[name] = (path, vetted(path, boundary))
    return {tensor: shards[name] for tensor, name in weight_map.items()}


def checked_shard_name(name, index_path):
    if not isinstance(name, str) or not name or "\0" in name:
        raise WeightsError(index_path, "names a shard %r that is not a file name" % (name,))
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in parts:
        raise WeightsError(index_path, "names shard %r; only relative names without '..' are allowed" % name)
    return name


def weight_files(source_dir, boundary=None):
    """Vetted paths of every file holding the source's tensors (first layout present)."""
    boundary = boundary or source_dir
    path = require_weights(source_dir)
    if path.endswith(".index.json"):
        return sorted({real for _, real in shard_paths(path, boundary).values()})
    return [vetted(path, boundary)]


def check_headers(source_dir, boundary=None):
    """Every safetensors file of the source passes the header, offset and dtype checks, whoever reads
    it next (transformers' from_pretrained on the AutoModel path)."""
    path = require_weights(source_dir)
    if os.path.basename(path) not in (SAFETENSORS, SAFETENSORS_INDEX):
        return
    shown_of = {real: shard for shard, real in shard_paths(path, boundary or source_dir).values()} \
        if path.endswith(".index.json") else {vetted(path, boundary or source_dir): path}
    for real, shown in sorted(shown_of.items()):
        with open(real, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            header, data_start = read_header(handle, shown, size)
            tensor_entries(header, shown, size - data_start)


# --------------------------------------------------------------------------
# Reading tensors
# --------------------------------------------------------------------------

def read_state_dict(source_dir, boundary=None):
    """(state dict, {key: file it came from}) of the source's preferred layout."""
    boundary = boundary or source_dir
    path = require_weights(source_dir)
    # The layout decides the format, never the real file name: Hub snapshots
    # link to blobs named by their hash.
    safetensors = os.path.basename(path) in (SAFETENSORS, SAFETENSORS_INDEX)
    if not path.endswith(".index.json"):
        return read_file(path, vetted(path, boundary), safetensors)
    wanted = shard_paths(path, boundary)
    state, origin = {}, {}
    for shard, real in sorted(set(wanted.values())):
        tensors, _ = read_file(shard, real, safetensors)
        for key, tensor in tensors.items():
            if key in state:
                raise WeightsError(shard, "tensor %r is also in %s" % (key, origin[key]))
            state[key] = tensor
            origin[key] = shard
    for key, (shard, _) in wanted.items():
        if origin.get(key) != shard:
            raise WeightsError(path, "names %r in %s, which does not hold it" % (key, shard))
    return state, origin


def read_file(shown, real, safetensors):
    """Tensors of one safetensors or pickle file, and where each came from; errors name `shown`."""
    if safetensors:
        tensors = read_safetensors(shown, real)
    else:
        tensors = read_pickled_tensors(shown, real)
    return tensors, {key: shown for key in tensors}


def read_pickled_tensors(shown, real):
    try:
        state = torch.load(real, map_location="cpu", weights_only=True)
    except Exception as error:  # refusals are UnpicklingError; damage gives anything
        # torch prefixes refusals with advice to drop weights_only: keep only the reason.
        reason = str(error).rpartition("WeightsUnpickler error:")[2].strip() or type(error).__name__
        reason = reason.splitlines()[0][:300]
        raise WeightsError(shown, "torch.load(weights_only=True) cannot read it (%s)" % reason)
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise WeightsError(shown, "does not hold a dict of named tensors")
    return state


def read_safetensors(shown, real):
    """Tensors of a safetensors file, by the package when importable.

    The header is always validated here first, so both paths refuse the same
    files with the same messages (the package, for one, lets a duplicate
    tensor name through).
    """
    try:
        import safetensors.torch
    except ImportError:
        return read_safetensors_by_hand(shown, real)
    with open(real, "rb") as handle:
        header, data_start = read_header(handle, shown, os.fstat(handle.fileno()).st_size)
        tensor_entries(header, shown, os.fstat(handle.fileno()).st_size - data_start)
    try:
        return safetensors.torch.load_file(real, device="cpu")
    except Exception as error:  # SafetensorError and friends
        raise WeightsError(shown, "not a valid safetensors file (%s)" % error)


def read_safetensors_by_hand(shown, real):
    """Tensors of a safetensors file: u64 header length, JSON header, raw data.

    The data is memory-mapped copy-on-write: tensors share the file's pages
    (no copy of the whole file in Python), yet writing to one can never
    change the file.
    """
    if sys.byteorder != "little":
        raise WeightsError(shown, "reading safetensors on a big-endian host needs the safetensors package")
    with open(real, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        header, data_start = read_header(handle, shown, size)
        entries = tensor_entries(header, shown, size - data_start)
        if not entries:
            return {}
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    return {name: tensor_at(mapped, data_start, entry) for name, entry in entries.items()}


def read_header(handle, shown, size):
    """(header dict, offset of the data area) after checking the length is sane."""
    if size < 8:
        raise WeightsError(shown, "is %d bytes, too short for a safetensors header" % size)
    (length,) = struct.unpack("<Q", handle.read(8))
    if length > MAX_HEADER_BYTES:
        raise WeightsError(shown, "header length %d is more than the %d byte limit" % (length, MAX_HEADER_BYTES))
    if 8 + length > size:
        raise WeightsError(shown, "header length %d runs past the end of the file (%d bytes)" % (length, size))
    header = strict_json(handle.read(length), shown, "the safetensors header")
    if not isinstance(header, dict):
        raise WeightsError(shown, "the safetensors header is not a JSON object")
    return header, 8 + length


def tensor_entries(header, shown, data_size):
    """{name: (dtype, shape, begin, end)}, every field checked against the data area."""
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict):
                raise WeightsError(shown, "__metadata__ is not a JSON object")
            continue
        entries[name] = tensor_entry(name, entry, shown, data_size)
    return entries


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def tensor_entry(name, entry, shown, data_size):
    if not isinstance(entry, dict):
        raise WeightsError(shown, "tensor %r: header entry is not a JSON object" % name)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise WeightsError(shown, "tensor %r: unknown dtype %r (known: %s)" % (name, dtype, ", ".join(DTYPES)))
    if not isinstance(shape, list) or not all(is_count(d) for d in shape):
        raise WeightsError(shown, "tensor %r: shape %r is not a list of sizes" % (name, shape))
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(is_count(o) for o in offsets):
        raise WeightsError(shown, "tensor %r: data_offsets %r is not [begin, end]" % (name, offsets))
    begin, end = offsets
    if not begin <= end <= data_size:
        raise WeightsError(shown, "tensor %r: data_offsets [%d, %d] lie outside the %d byte data area"
                           % (name, begin, end, data_size))
    needed = math.prod(shape) * DTYPES[dtype][1]
    if end - begin != needed:
        raise WeightsError(shown, "tensor %r: holds %d bytes but %s %s needs %d"
                           % (name, end - begin, dtype, shape, needed))
    return dtype, shape, begin, end


def tensor_at(mapped, data_start, entry):
    dtype, shape, begin, end = entry
    torch_dtype, item_size = DTYPES[dtype]
    count = (end - begin) // item_size
    if count == 0:
        return torch.empty(shape, dtype=torch_dtype)
    offset = data_start + begin
    # BOOL bytes other than 0/1 are undefined as torch.bool: normalise them.
    read_dtype = torch.uint8 if dtype == "BOOL" else torch_dtype
    if offset % item_size:
        # Unaligned data (legal in the format, unusual in practice): copy this
        # one tensor rather than hand kernels a misaligned pointer.
        tensor = torch.frombuffer(bytearray(mapped[offset:data_start + end]), dtype=read_dtype)
    else:
        tensor = torch.frombuffer(mapped, dtype=read_dtype, count=count, offset=offset)
    if dtype == "BOOL":
        tensor = tensor != 0
    return tensor.reshape(shape)


# --------------------------------------------------------------------------
# Loading into a model
# --------------------------------------------------------------------------

def load_weights(model, source_dir, boundary=None):
    """Read the source's weights and load them into `model`, checking every key."""
    state, origin = read_state_dict(source_dir, boundary)
    check_shapes(model, state, origin)
    result = model.load_state_dict(state, strict=False)
    shown = require_weights(source_dir)
    if result.unexpected_keys:
        raise WeightsError(shown, "%s not in the model: %s" % (count_of(result.unexpected_keys, "tensor"),
                                                                  some(result.unexpected_keys)))
    missing = [key for key in untied_missing_keys(model, result.missing_keys) if key not in never_saved(model)]
    if missing:
        raise WeightsError(shown, "%s of the model missing: %s" % (count_of(missing, "tensor"), some(missing)))


def check_shapes(model, state, origin):
    """load_state_dict would raise a multi-line error; name the file and key instead."""
    expected = model.state_dict()
    for key, tensor in state.items():
        if key in expected and tuple(expected[key].shape) != tuple(tensor.shape):
            raise WeightsError(origin[key], "tensor %r has shape %s, the model needs %s"
                               % (key, list(tensor.shape), list(expected[key].shape)))


def never_saved(model):
    """Keys the model's class leaves out of every checkpoint it writes (transformers'
    _keys_to_ignore_on_save: Marian's sinusoidal position tables, which the class
    computes when it is built): a checkpoint cannot hold them, so they are not missing."""
    return set(getattr(model, "_keys_to_ignore_on_save", None) or ())


def untied_missing_keys(model, missing_keys):
    """Missing keys, less those whose parameter is tied to one that was loaded.

    Hugging Face checkpoints omit tied copies (lm_head.weight when
    tie_word_embeddings holds); the module graph tells us which they are:
    the same Parameter object reachable under two names.
    """
    missing = set(missing_keys)
    names_of = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for name, parameter in module.named_parameters(recurse=False):
            names_of.setdefault(id(parameter), []).append(prefix + "." + name if prefix else name)
    loaded_aliases = set()
    for names in names_of.values():
        if any(name not in missing for name in names):
            loaded_aliases.update(names)
    return [key for key in missing_keys if key not in loaded_aliases]


def check_loading_info(model, info, source_dir, task, used_parameters):
    """transformers' loading report of from_pretrained, held to the rule of load_weights: every
    parameter and persistent buffer that reaches the exported outputs comes from the source.

    Exempt, as transformers itself treats them: tied copies and the keys its classes declare
    ignorable (already left out of `info`), and
    - missing keys whose tensors do not reach the outputs the task exports (`used_parameters`
      decides: a pooler a feature-extraction export never runs);
    - unexpected keys of a head the task does not use, when the checkpoint holds a model with a head
      and a bare <X>Model is exported (transformers strips the base model's prefix and drops the rest).
    A head the task needs but the checkpoint lacks is refused by name.
    """
    shown = require_weights(source_dir)
    missing = [key for key in info.get("missing_keys", []) if key not in never_saved(model)]
    unused = [key for key in missing if not used_parameters(key)]
    missing = [key for key in missing if key not in unused]
    if missing:
        prefix = getattr(model, "base_model_prefix", "") or ""
        body = [key for key in missing if prefix and key.startswith(prefix + ".")]
        head = [key for key in missing if key not in body]
        if head and not body:
            raise WeightsError(shown, "holds no weights for the %s head of %s (%s missing: %s): the checkpoint "
                               "is not trained for %s; export it as feature-extraction, or use a checkpoint with "
                               "that head" % (task, type(model).__name__, count_of(head, "tensor"), some(head), task))
        raise WeightsError(shown, "%s of %s missing: %s" % (count_of(missing, "tensor"), type(model).__name__,
                                                            some(missing)))
    unexpected = list(info.get("unexpected_keys", []))
    if unexpected and not dropped_head(model, unexpected, checkpoint_keys(source_dir)):
        raise WeightsError(shown, "%s not in %s: %s" % (count_of(unexpected, "tensor"), type(model).__name__,
                                                        some(unexpected)))
    mismatched = info.get("mismatched_keys", [])
    if mismatched:
        key = mismatched[0][0] if isinstance(mismatched[0], (tuple, list)) else mismatched[0]
        raise WeightsError(shown, "tensor %r has another shape than %s needs" % (key, type(model).__name__))
    return unused


def dropped_head(model, unexpected, keys):
    """True when `unexpected` is the head of a checkpoint with a head loaded into its bare base model:
    the model is its own base, the checkpoint's other tensors carry the base model's prefix, and none
    of the unexpected ones do."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    if not prefix or getattr(model, "base_model", model) is not model or keys is None:
        return False
    prefixed = any(key.startswith(prefix + ".") for key in keys)
    return prefixed and not any(key.startswith(prefix + ".") for key in unexpected)


def checkpoint_keys(source_dir):
    """The tensor names of the source's weights without reading their data (None when unknown)."""
    path = find_weights(source_dir)
    try:
        if path.endswith(".index.json"):
            with open(path, "rb") as handle:
                return set(json.loads(handle.read()).get("weight_map", {}))
        if os.path.basename(path) == SAFETENSORS:
            with open(path, "rb") as handle:
                header, _ = read_header(handle, path, os.fstat(handle.fileno()).st_size)
            return {key for key in header if key != "__metadata__"}
        return set(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    except Exception:  # already vetted; a key list we cannot read only loses the exemption
        return None


def count_of(items, noun):
    return "%d %s%s" % (len(items), noun, "" if len(items) == 1 else "s")


def some(keys):
    keys = sorted(keys)
    text = ", ".join(keys[:KEYS_SHOWN])
    if len(keys) > KEYS_SHOWN:
        text += " and %d more" % (len(keys) - KEYS_SHOWN)
    return text
