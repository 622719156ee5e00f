#!/usr/bin/env python3
"""sweep.py: modelexport beside optimum-cli on tiny genuine transformers models, pair by pair.

Usage (under the pinned environment, scripts/python-env):
  sweep.py WORKDIR [--modelexport build/modelexport] [--pairs MODEL_TYPE:TASK ...]
           [--sample N] [--seed S] [--skip-task TASK ...] [--no-clients] [--validate] [--json FILE]
           [--coverage FILE.md]

For every (model_type, task) pair (given with --pairs, else a seeded random sample of N of the pairs
optimum-onnx's TasksManager supports) it
  1. builds a tiny genuine transformers model offline: AutoConfig.for_model(model_type) with its sizes
     shrunk consistently (hidden sizes, layers, heads, vocabulary, image and patch sizes), the class
     TasksManager loads for the task, save_pretrained, and a small WordLevel tokenizer, image
     processor or feature extractor where the task reads one;
  2. exports it with optimum-cli's own main_export (in this process: one interpreter start for all)
     and with `modelexport export SRC OUT --task TASK`;
  3. runs every ONNX file both packages share in ONNX Runtime on the same inputs (Optimum's dummy
     inputs for the model type and task) and records the largest difference;
  4. loads both packages in Optimum's ORTModel class for the task and, where the task has a
     transformers.js pipeline, in transformers.js; a client that loads optimum-cli's package must load
     modelexport's.
A pair "matches" when optimum-cli exports it, modelexport exports it, every output is within 1e-4 and
every client of optimum-cli's package loads modelexport's. Pairs optimum-cli cannot export are
skipped. One JSON line per pair goes to stdout as it finishes, a summary to stderr, and with --json the
whole list to FILE. Exit status 0 when every pair optimum-cli exports matches, 1 otherwise.

WORKDIR keeps src/, optimum/ and ours/ per pair, so a failing pair can be looked at afterwards; a
source that is already there is reused (delete WORKDIR to rebuild).
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import traceback

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RUNTIME_DIR = os.environ.get("MODELEXPORT_RUNTIME_DIR", os.path.join(REPO, "tools", "runtime"))
TASKS_FILE = os.path.join(REPO, "share", "tasks.json")
TOLERANCE = 1e-4
SEED = 0

# Sizes of the tiny models: every attention width is HEADS * HEAD_DIM, so any head count divides it.
HIDDEN, HEADS, KV_HEADS, LAYERS, INTERMEDIATE, VOCAB, POSITIONS = 32, 4, 2, 2, 37, 120, 128
IMAGE, PATCH = 32, 4

# Config attributes by the role of their value (transformers spells each role many ways).
WIDTH_KEYS = {"hidden_size", "d_model", "n_embd", "embed_dim", "dim", "word_embed_proj_dim", "projection_dim",
              "embedding_size", "text_embed_dim", "vision_embed_dim", "d_embed", "encoder_hidden_size",
              "output_hidden_size", "classifier_proj_size", "hidden_dim", "proj_codevector_dim",
              "codevector_dim", "xvector_output_dim", "tdnn_dim_last", "projection_size", "d_kv_total"}
LAYER_KEYS = {"num_hidden_layers", "n_layer", "num_layers", "encoder_layers", "decoder_layers", "n_layers",
              "num_encoder_layers", "num_decoder_layers", "decoder_num_layers"}
HEAD_KEYS = {"num_attention_heads", "n_head", "encoder_attention_heads", "decoder_attention_heads", "n_heads",
             "num_heads", "decoder_num_attention_heads"}
KV_HEAD_KEYS = {"num_key_value_heads", "multi_query_group_num", "num_kv_heads"}
INTERMEDIATE_KEYS = {"intermediate_size", "ffn_dim", "encoder_ffn_dim", "decoder_ffn_dim", "n_inner",
                     "hidden_dim_ffn", "decoder_intermediate_size", "ffn_hidden_size", "d_ff", "mlp_dim"}
VOCAB_KEYS = {"vocab_size"}
# (not max_source_positions: Whisper's feature extractor pads every input to twice that many frames)
POSITION_KEYS = {"max_position_embeddings", "n_positions", "max_target_positions",
                 "n_ctx", "max_seq_len", "seq_length"}
TOKEN_ID_KEYS = {"pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "sep_token_id",
                 "cls_token_id", "mask_token_id", "unk_token_id", "forced_bos_token_id", "forced_eos_token_id"}

# The tokenizer's words: special tokens first, so their ids are the small ids the configs name.
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]
WORDS = ("the movie was great and i loved it a film story good bad long short where does john live in paris "
         "he she they we you what who how why when this that is are be to of for with on at by from").split()


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def first_line(text):
    text = str(text)
    return next((line for line in text.splitlines() if line.strip()), text)[:400]


# ----------------------------------------------------------------------------------------- pairs

def tasks_manager():
    from optimum.exporters.tasks import TasksManager
    import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs)
    return TasksManager


def supported_pairs():
    """Every (model_type, task) optimum-onnx exports for transformers, sorted."""
    manager = tasks_manager()
    pairs = []
    for model_type, exporters in manager._SUPPORTED_MODEL_TYPE.items():
        for task in exporters.get("onnx", {}):
            pairs.append((model_type, task))
    return sorted(pairs)


def sample_pairs(count, seed, skip_tasks):
    pairs = [p for p in supported_pairs() if p[1] not in skip_tasks]
    return sorted(random.Random(seed).sample(pairs, min(count, len(pairs))))


# ------------------------------------------------------------------------------------ tiny model

# Model types made of two others (an encoder and a decoder): the pair a tiny one is built from.
COMPOSITES = {"vision-encoder-decoder": ("vit", "gpt2")}


def musicgen_config():
    """MusicGen's three configs made tiny together: a T5 text encoder, an EnCodec whose bandwidth gives it three
    codebooks, and a decoder over those codebooks whose pad and start id is its vocabulary size, as the real
    checkpoints have it (transformers' default, 2048, is past a tiny decoder's embedding)."""
    import transformers
    text = transformers.T5Config(vocab_size=VOCAB, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=2 * HIDDEN,
                                 num_layers=LAYERS, num_heads=HEADS)
    audio = transformers.EncodecConfig(target_bandwidths=[10.0], sampling_rate=8000, audio_channels=1, hidden_size=16,
                                       num_filters=4, num_residual_layers=1, upsampling_ratios=[4, 4], codebook_size=64,
                                       codebook_dim=16, compress=2, num_lstm_layers=1)
    codes = audio.codebook_size
    decoder = transformers.MusicgenDecoderConfig(
        vocab_size=codes, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, ffn_dim=2 * HIDDEN,
        num_codebooks=audio.num_quantizers, max_position_embeddings=POSITIONS, pad_token_id=codes, bos_token_id=codes)
    config = transformers.MusicgenConfig.from_sub_models_config(text, audio, decoder)
    config.decoder_start_token_id = config.pad_token_id = codes
    return config


# Model types whose configs transformers cannot make from defaults: their own tiny config.
OWN_CONFIGS = {"musicgen": musicgen_config}


def shrink(model_type):
    """The model type's default config with every size made tiny and kept consistent: the top-level
    sizes go through the config's own __init__ (which derives stage names, layer types, ...), nested
    configs and what __init__ does not derive are set afterwards."""
    import transformers
    if model_type in OWN_CONFIGS:
        return OWN_CONFIGS[model_type]()
    if model_type in COMPOSITES:  # a config of two configs, each made tiny on its own
        encoder, decoder = COMPOSITES[model_type]
        composite = transformers.models.auto.configuration_auto.CONFIG_MAPPING[model_type]
        return composite.from_encoder_decoder_configs(shrink(encoder), shrink(decoder))
    default = transformers.AutoConfig.for_model(model_type)
    overrides = {}
    for key, value in vars(default).items():
        if not key.startswith("_") and not isinstance(value, bool):
            new = shrunk_value(key, value, default)
            if new is not None:
                overrides[key] = new
    try:
        config = transformers.AutoConfig.for_model(model_type, **overrides)
    except Exception:  # an __init__ that refuses one of them: set them on the default instead
        config = default

    def walk(cfg):
        for key, value in list(vars(cfg).items()):
            if key.startswith("_") or isinstance(value, bool):
                continue
            if hasattr(value, "to_dict") and hasattr(value, "model_type"):  # a nested text/vision/audio config
                walk(value)
                continue
            if isinstance(value, dict) and key.endswith("config"):
                continue
            new = shrunk_value(key, value, cfg)
            if new is not None:
                try:
                    setattr(cfg, key, new)
                except AttributeError:  # a derived property (Falcon's head_dim)
                    pass
        for key, value in list(vars(cfg).items()):
            if isinstance(value, int) and not isinstance(value, bool) and (
                    key.endswith("head_dim") or key in ("kv_channels", "d_kv", "rotary_dim")):
                setattr(cfg, key, HIDDEN // HEADS)
            elif isinstance(value, int) and key.endswith("lora_rank"):
                setattr(cfg, key, 16)
        if isinstance(getattr(cfg, "qk_rope_head_dim", None), int) and isinstance(getattr(cfg, "qk_nope_head_dim", None), int):
            cfg.qk_rope_head_dim = cfg.qk_nope_head_dim = HIDDEN // HEADS // 2  # their sum is the query's head (DeepSeek)
            if hasattr(cfg, "qk_head_dim"):
                cfg.qk_head_dim = HIDDEN // HEADS
        layers = getattr(cfg, "num_hidden_layers", None)
        if isinstance(getattr(cfg, "layer_types", None), list) and isinstance(layers, int):
            cfg.layer_types = cfg.layer_types[:layers]
        indices = getattr(cfg, "backbone_out_indices", None)
        if isinstance(indices, list) and isinstance(layers, int):  # one hidden state per neck size (DPT)
            cfg.num_hidden_layers = len(indices)
            cfg.backbone_out_indices = list(range(len(indices)))
        for key in TOKEN_ID_KEYS:
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value >= VOCAB:
                setattr(cfg, key, SPECIALS.index("</s>") if "eos" in key else 1)
    walk(config)
    return config


def shrunk_value(key, value, cfg):
    if value is None and key in VOCAB_KEYS:  # a CTC head needs one (Wav2Vec2-Conformer's default has none)
        return VOCAB
    if isinstance(value, int):
        if key in WIDTH_KEYS:
            return HIDDEN
        if key in LAYER_KEYS:
            return min(value, LAYERS)
        if key in HEAD_KEYS:
            return min(value, HEADS)
        if key in KV_HEAD_KEYS:
            return min(value, KV_HEADS)
        if key in INTERMEDIATE_KEYS:
            return INTERMEDIATE
        if key in VOCAB_KEYS:
            return VOCAB
        if key in POSITION_KEYS:
            return min(value, POSITIONS) if value > 0 else value
        if key == "image_size":
            return IMAGE
        if key == "patch_size":
            return min(value, PATCH)
        if key in ("num_labels",):
            return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        if key in ("depths", "encoder_layers_per_stage"):
            return [1] * len(value)
        if key in ("hidden_sizes", "embed_dims", "embed_dim_per_stage", "dims", "neck_hidden_sizes"):
            return [16 * (i + 1) for i in range(len(value))]
        if key in ("num_heads", "num_attention_heads", "heads"):
            return [1] * len(value)
        if key == "image_size":
            return [IMAGE] * len(value)
        if key == "patch_size":
            return [PATCH] * len(value)
        if key in ("conv_dim",):
            return [HIDDEN] * len(value)
    return None


def model_class(model_type, task):
    manager = tasks_manager()
    task = manager.map_from_synonym(task)
    try:  # Optimum's spelling of the model type, else transformers' own (speech_to_text)
        return manager.get_model_class_for_task(task, model_type=model_type.replace("_", "-"), library="transformers")
    except ValueError:
        return manager.get_model_class_for_task(task, model_type=model_type, library="transformers")


def build_source(model_type, task, directory):
    """A tiny genuine model for the pair in `directory`, with what its task reads beside it."""
    import torch
    import transformers
    cls = model_class(model_type, task)
    config = shrink(model_type)
    torch.manual_seed(SEED)
    model = (cls.from_config(config) if cls.__name__.startswith("Auto") else cls(config)).eval()
    tmp = directory + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    save_preprocessors(model_type, model.config, tmp)
    os.replace(tmp, directory)
    return type(model).__name__


def save_preprocessors(model_type, config, directory):
    """A WordLevel tokenizer for any model with a vocabulary; the model type's own image processor or
    feature extractor with its defaults, sized to the tiny image."""
    from transformers.models.auto import feature_extraction_auto, image_processing_auto
    if any(getattr(getattr(config, part, None), "vocab_size", None) for part in ("text_config", "decoder")) or \
            getattr(config, "vocab_size", None):
        save_tokenizer(directory)
    if model_type in COMPOSITES:  # the encoder's processor
        model_type, config = COMPOSITES[model_type][0], config.encoder
    names = image_processing_auto.IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type)
    if names:
        name = next((n for n in (names if isinstance(names, tuple) else (names,)) if n), None)
        processor = getattr(__import__("transformers"), name, None) if name else None
        if processor is not None:
            instance = processor()
            size = image_size(config)
            if isinstance(getattr(instance, "size", None), dict):
                instance.size = ({"height": size, "width": size} if "height" in instance.size
                                 else {k: size for k in instance.size})
            if isinstance(getattr(instance, "crop_size", None), dict):
                instance.crop_size = {"height": size, "width": size}
            instance.save_pretrained(directory)
            return
    name = feature_extraction_auto.FEATURE_EXTRACTOR_MAPPING_NAMES.get(model_type)
    extractor = getattr(__import__("transformers"), name, None) if name else None
    if extractor is not None:
        kwargs = {}
        bins = getattr(config, "num_mel_bins", None)
        if bins and "feature_size" in extractor.__init__.__code__.co_varnames:
            kwargs["feature_size"] = bins
        extractor(**kwargs).save_pretrained(directory)


def image_size(config):
    for cfg in (config, getattr(config, "vision_config", None)):
        size = getattr(cfg, "image_size", None) if cfg is not None else None
        if isinstance(size, int):
            return size
        if isinstance(size, (list, tuple)) and size:
            return int(size[0])
    return IMAGE


def save_tokenizer(directory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", bos_token="<s>",
                                   eos_token="</s>", model_max_length=POSITIONS)
    fast.save_pretrained(directory)


# ---------------------------------------------------------------------------------------- export

def optimum_export(source, task, output):
    from optimum.exporters.onnx import main_export
    shutil.rmtree(output, ignore_errors=True)
    main_export(model_name_or_path=source, output=output, task=task, do_validation=False, local_files_only=True,
                library_name="transformers")


def our_export(tool, source, task, output):
    shutil.rmtree(output, ignore_errors=True)
    p = subprocess.run([tool, "export", source, output, "--task", task], capture_output=True, text=True,
                       timeout=1800, env=dict(os.environ, MODELEXPORT_NO_CACHE="1"))
    if p.returncode != 0:
        lines = [l for l in p.stderr.splitlines() if "error" in l.lower()] or p.stderr.splitlines() or ["(no output)"]
        raise RuntimeError("exit %d: %s" % (p.returncode, lines[-1][:600]))


# ------------------------------------------------------------------------------------- comparison

def onnx_files(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".onnx")) if os.path.isdir(directory) else []


def dummy_inputs(source, task):
    """Optimum's dummy inputs for the pair's main configuration (numpy, by input name)."""
    import transformers
    manager = tasks_manager()
    config = transformers.AutoConfig.from_pretrained(source)
    constructor = manager.get_exporter_config_constructor(exporter="onnx", model_type=config.model_type,
                                                          task=task, library_name="transformers")
    past = {"use_past": True, "use_past_in_inputs": True} if task.endswith("-with-past") else {}
    # The source's preprocessors, as main_export passes them: Pix2Struct's patch count is its processor's.
    from optimum.utils.save_utils import maybe_load_preprocessors
    onnx_config = constructor(config, int_dtype="int64", float_dtype="fp32",
                              preprocessors=maybe_load_preprocessors(source), **past)
    import torch
    torch.manual_seed(SEED)
    # The shapes main_export passes (RT-DETR's configuration reads the image height and width from them).
    from optimum.utils import DEFAULT_DUMMY_SHAPES
    dummy = onnx_config.generate_dummy_inputs(framework="pt", **DEFAULT_DUMMY_SHAPES)
    dummy = onnx_config.rename_ambiguous_inputs(dummy)
    out = {}
    for name, value in dummy.items():
        if isinstance(value, (list, tuple)):  # past key values: flattened as Optimum names them
            for i, layer in enumerate(value):
                for label, tensor in zip(("key", "value"), layer):
                    out["past_key_values.%d.%s" % (i, label)] = tensor.numpy()
        else:
            out[name] = value.numpy()
    return out


def part_inputs(source, task):
    """{file: numpy feeds} of a model Optimum exports part by part with a configuration per part and none of its
    own (MusicGen's, whose main configuration refuses to make inputs): each part's inputs as modelexport's
    reference check makes them from the part's configuration."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import htp_seq2seq
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    model = htp_seq2seq.load_model(source, task, config, source)
    return {name: {key: value.numpy() for key, value in part.reference_case()[0].items()}
            for name, part in htp_seq2seq.parts_of(model, task, source).items()}


def inputs_for(session, dummy, rng):
    """Feeds for one ONNX file: the dummy tensor where its name and rank fit, else one made from the
    graph's declared shape (symbolic axes get small sizes) and element type."""
    import numpy as np
    feeds = {}
    for arg in session.get_inputs():
        value = dummy.get(arg.name)
        if value is not None and value.ndim == len(arg.shape):
            feeds[arg.name] = value
            continue
        shape = [d if isinstance(d, int) else symbolic_size(d, dummy) for d in arg.shape]
        if "int64" in arg.type:
            feeds[arg.name] = (np.ones(shape, dtype=np.int64) if "mask" in arg.name
                               else rng.integers(0, 20, size=shape, dtype=np.int64))
        elif "bool" in arg.type:
            feeds[arg.name] = np.ones(shape, dtype=bool)
        else:
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
    # An encoder-decoder's dummy is the cached decoder step's (input_ids [batch, 1], the encoder's mask):
    # a file without a cache (the encoder) takes a mask as long as its own ids.
    ids, mask = feeds.get("input_ids"), feeds.get("attention_mask")
    if ids is not None and mask is not None and mask.shape != ids.shape and not any(n.startswith("past_key_values") for n in feeds):
        feeds["attention_mask"] = np.ones(ids.shape, dtype=mask.dtype)
    return feeds


def symbolic_size(name, dummy):
    name = str(name)
    if "batch" in name:
        ids = dummy.get("input_ids", dummy.get("pixel_values", dummy.get("input_values")))
        return int(ids.shape[0]) if ids is not None else 2
    if "encoder_sequence" in name:
        return 16
    if "past" in name:
        return 3
    if "sequence" in name:
        ids = dummy.get("input_ids")
        return int(ids.shape[1]) if ids is not None else 7
    return 2


def held_session(path, options):
    """An ONNX Runtime session of the file with its random draws held at their mean (VITS's noise), as
    modelexport's reference check holds them: two packages that draw noise compare only so."""
    import onnxruntime as ort
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import htp_reference
    return htp_reference.held_session(path, [], lambda p: ort.InferenceSession(p, options, providers=["CPUExecutionProvider"]))


def compare(ours, theirs, source, task):
    """{file: largest difference} over the ONNX files both packages hold; files only one holds."""
    import numpy as np
    import onnxruntime as ort
    try:
        dummy, per_file = dummy_inputs(source, task), {}
    except ValueError:
        with open(os.path.join(source, "config.json")) as f:
            if not (task_row(task, json.load(f)) or {}).get("encoder_decoder"):
                raise
        dummy, per_file = {}, part_inputs(source, task)
    diffs, problems = {}, []
    mine, other = set(onnx_files(ours)), set(onnx_files(theirs))
    # A file only modelexport writes is one more a client may read (MusicGen's merged decoder, which transformers.js
    # loads and optimum-cli does not merge); one it lacks is a client's failure.
    if other - mine:
        problems.append("files differ: optimum-cli %s, modelexport %s" % (sorted(other), sorted(mine)))
    for name in sorted(mine & other):
        a = held_session(os.path.join(ours, name), ort.SessionOptions())
        # optimum-cli's file as written: what it computes, even where ONNX Runtime's optimiser, trusting a shape
        # it declares wrongly, makes it fail (Decision Transformer's); its clients are judged apart.
        written = ort.SessionOptions()
        written.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        b = held_session(os.path.join(theirs, name), written)
        names_a, names_b = [i.name for i in a.get_inputs()], [i.name for i in b.get_inputs()]
        if sorted(names_a) != sorted(names_b):
            problems.append("%s inputs differ: optimum-cli %s, modelexport %s" % (name, names_b, names_a))
            continue
        feeds = inputs_for(b, per_file.get(name, dummy), np.random.default_rng(SEED))
        out_a = dict(zip([o.name for o in a.get_outputs()], a.run(None, feeds)))
        out_b = dict(zip([o.name for o in b.get_outputs()], b.run(None, feeds)))
        # Outputs torch left unnamed ("onnx::MatMul_294": an intermediate the trace exposed) differ in their
        # numbering from one export to another and no client reads them.
        out_a = {k: v for k, v in out_a.items() if not k.startswith("onnx::")}
        out_b = {k: v for k, v in out_b.items() if not k.startswith("onnx::")}
        if set(out_a) != set(out_b):
            problems.append("%s outputs differ: optimum-cli %s, modelexport %s" % (name, sorted(out_b), sorted(out_a)))
        worst = 0.0
        for key in set(out_a) & set(out_b):
            x, y = np.asarray(out_a[key]), np.asarray(out_b[key])
            if y.size == 0:  # a placeholder (a merged decoder's encoder cache on its cached branch): no values to hold
                continue
            if x.shape != y.shape:
                problems.append("%s %s shape %s, optimum-cli %s" % (name, key, x.shape, y.shape))
                continue
            if x.size:
                worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
        diffs[name] = worst
    return diffs, problems


def modality(input_names):
    """text, vision, audio or multimodal, by the kinds of input the graph takes."""
    kinds = set()
    for name in input_names:
        if name in ("input_ids", "inputs_embeds", "decoder_input_ids"):
            kinds.add("text")
        elif name in ("pixel_values", "pixel_mask", "flattened_patches"):  # Pix2Struct's image is patches
            kinds.add("vision")
        elif name in ("input_values", "input_features"):
            kinds.add("audio")
    return "multimodal" if len(kinds) > 1 else (kinds.pop() if kinds else "other")


def main_inputs(package):
    """The input names of a package's first model (model.onnx, else encoder_model.onnx, else the first)."""
    import onnx
    files = onnx_files(package)
    name = next((f for f in ("model.onnx", "encoder_model.onnx") if f in files), files[0] if files else None)
    if name is None:
        return []
    graph = onnx.load(os.path.join(package, name), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


# ------------------------------------------------------------------------------------- coverage

COVERAGE_HEADER = ["| Task | Input | Model types exported, validated and compared with optimum-cli |",
                   "|---|---|---|"]


def coverage_rows(records):
    """{(task, modality): sorted model types} of the pairs that matched (validated where asked)."""
    rows = {}
    for r in records:
        if r.get("verdict") == "match" and r.get("validate", "ok") == "ok":
            rows.setdefault((r["task"], r.get("modality", "other")), set()).add(r["model_type"])
    return {key: sorted(value) for key, value in rows.items()}


def coverage_lines(rows):
    return ["| %s | %s | %s |" % (task, kind, ", ".join(types)) for (task, kind), types in sorted(rows.items())]


def write_coverage(path, records):
    """Rewrites the table of `path` (the text above it stays) from the records' matched pairs."""
    with open(path) as f:
        lines = f.read().splitlines()
    intro = lines[:lines.index(COVERAGE_HEADER[0])] if COVERAGE_HEADER[0] in lines else lines + [""]
    with open(path, "w") as f:
        f.write("\n".join(intro + COVERAGE_HEADER + coverage_lines(coverage_rows(records))) + "\n")


# ---------------------------------------------------------------------------------------- clients

def task_row(task, config):
    """The table's row of a task for a config.json, as modelexport's exporters pick it (htp_tasks.task_for)."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import htp_tasks
    return htp_tasks.task_for(task, config)
    return None


def optimum_client(package, row):
    sys.path.insert(0, RUNTIME_DIR)
    import optimum_check
    ort_class = row["optimum_class"]
    # Optimum's text-generation and text2text-generation have no cache: their classes load them with
    # use_cache=False (as validate does).
    files = (row.get("encoder_decoder") or {}).get("files", [])
    cached = row["with_past"] or "decoder_with_past_model.onnx" in files
    options = argparse.Namespace(pkg=package, ort_class=ort_class, inputs=None, text=optimum_check.DEFAULT_TEXT,
                                 generate=None, no_cache=(ort_class == "ORTModelForCausalLM" or bool(files)) and not cached,
                                 file_name=None)
    try:
        optimum_check.run(options, optimum_check.start(ort_class))
        return "ok"
    except Exception as error:  # the client's own message
        return "fail: %s: %s" % (type(error).__name__, first_line(error))


def tjs_client(package, row, task):
    node = os.environ.get("MODELEXPORT_NODE", "node")
    pipeline = row.get("transformers_js_pipeline")
    if row.get("encoder_decoder"):
        args = [os.path.join(RUNTIME_DIR, "tjs_seq2seq.mjs"), package, "--task", pipeline, "--subfolder", ""]
    else:
        args = [os.path.join(RUNTIME_DIR, "tjs_pipeline.mjs"), package, "--task", row["name"], "--layout", "flat"]
    if row["name"] == "question-answering":
        args += ["--text", "where does john live ?", "--context", "john lives in paris"]
    if row["name"] == "fill-mask":
        args += ["--text", "the movie was [MASK] ."]
    p = subprocess.run([node, *args], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, MODELEXPORT_TASKS=TASKS_FILE))
    return "ok" if p.returncode == 0 else "fail: %s" % (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1][:300]


def clients(ours, theirs, task, config):
    """{client: {"optimum-cli": status, "modelexport": status}}; modelexport's is only tried where
    optimum-cli's loads."""
    row = task_row(task, config)
    result = {}
    if row is None:
        return {"task table": {"optimum-cli": "n/a", "modelexport": "no row for task %s" % task}}
    result["optimum"] = {"optimum-cli": optimum_client(theirs, row)}
    if row.get("transformers_js_pipeline"):
        result["transformers.js"] = {"optimum-cli": tjs_client(theirs, row, task)}
    for name, client in result.items():
        if client["optimum-cli"] != "ok":
            client["modelexport"] = "not tried"
        elif name == "optimum":
            client["modelexport"] = optimum_client(ours, row)
        else:
            client["modelexport"] = tjs_client(ours, row, task)
    return result


# ------------------------------------------------------------------------------------------- pair

def validate(tool, package, task=None):
    """`modelexport validate --strict` of a package (ONNX Runtime: the clients are checked apart); modelexport's
    own package is checked for the task its metadata records, optimum-cli's for `task`."""
    p = subprocess.run([tool, "validate", package, "--strict", "--runtime", "onnxruntime"] + (["--task", task] if task else []),
                       capture_output=True, text=True, timeout=600)
    if p.returncode == 0:
        return "ok"
    failed = [line for line in p.stdout.splitlines() if line.startswith("FAIL")]
    return "fail: exit %d: %s" % (p.returncode, (failed or p.stderr.strip().splitlines() or [""])[-1][:300])


def sweep_pair(model_type, task, work, tool, with_clients, with_validate=False):
    key = "%s--%s" % (model_type, task)
    src, theirs, ours = (os.path.join(work, part, key) for part in ("src", "optimum", "ours"))
    record = {"model_type": model_type, "task": task, "verdict": None}
    started = time.time()
    try:
        if not os.path.isdir(src):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            build_source(model_type, task, src)
        with open(os.path.join(src, "config.json")) as f:
            record["class"] = json.load(f).get("architectures", ["?"])[0]
    except Exception as error:
        record.update(verdict="skip", why="cannot build a tiny model: %s: %s" % (type(error).__name__, first_line(error)))
        return record
    timing = record["timing"] = {"build": round(time.time() - started, 1)}
    try:
        optimum_export(src, task, theirs)
        record["optimum"] = "ok"
        record["modality"] = modality(main_inputs(theirs))
    except Exception as error:
        record.update(optimum="fail: %s: %s" % (type(error).__name__, first_line(error)), verdict="skip",
                      why="optimum-cli cannot export it")
        return record
    try:
        timing["optimum"] = round(time.time() - started - sum(timing.values()), 1)
        our_export(tool, src, task, ours)
        timing["ours"] = round(time.time() - started - sum(timing.values()), 1)
        record["ours"] = "ok"
    except Exception as error:
        record.update(ours="fail: %s" % first_line(error), verdict="fail", why="modelexport export failed")
        return record
    try:
        diffs, problems = compare(ours, theirs, src, task)
    except Exception as error:
        diffs, problems = {}, ["comparison failed: %s: %s" % (type(error).__name__, first_line(error))]
        traceback.print_exc()
    record["max_diff"] = max(diffs.values(), default=None)
    record["diffs"] = diffs
    timing["compare"] = round(time.time() - started - sum(timing.values()), 1)
    if with_validate:
        record["validate"] = validate(tool, ours)
        if record["validate"] != "ok":
            # The bar is optimum-cli's package: where validate finds the same task's package of optimum-cli
            # unusable too (CLIP's feature-extraction, which ORTModelForFeatureExtraction cannot read), both fail.
            record["validate_optimum_cli"] = validate(tool, theirs, task)
            if record["validate_optimum_cli"] == "ok":
                problems.append("validate --strict: %s" % record["validate"])
    if with_clients:
        with open(os.path.join(src, "config.json")) as f:
            record["clients"] = clients(ours, theirs, task, json.load(f))
        timing["clients"] = round(time.time() - started - sum(timing.values()), 1)
        for name, client in record["clients"].items():
            if client.get("optimum-cli") == "ok" and client.get("modelexport") != "ok":
                problems.append("%s loads optimum-cli's package, not modelexport's: %s" % (name, client["modelexport"]))
    if record["max_diff"] is not None and record["max_diff"] > TOLERANCE:
        problems.append("outputs differ by %.3g" % record["max_diff"])
    if not diffs and not problems:
        problems.append("no ONNX file to compare")
    record["verdict"] = "fail" if problems else "match"
    if problems:
        record["why"] = "; ".join(problems)
    record["seconds"] = round(time.time() - started, 1)
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sweep.py", description=__doc__.split("\n")[0])
    parser.add_argument("work")
    parser.add_argument("--modelexport", default=os.path.join(REPO, "build", "modelexport"))
    parser.add_argument("--pairs", nargs="*", default=[], metavar="MODEL_TYPE:TASK")
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-task", action="append", default=[])
    parser.add_argument("--no-clients", action="store_true")
    parser.add_argument("--validate", action="store_true", help="also `modelexport validate --strict` each package")
    parser.add_argument("--json")
    parser.add_argument("--coverage", metavar="FILE.md", help="rewrite the coverage table of FILE.md from this run")
    options = parser.parse_args(argv)
    import warnings
    warnings.filterwarnings("ignore")
    from transformers.utils import logging
    logging.set_verbosity_error()
    pairs = [tuple(p.split(":", 1)) for p in options.pairs]
    if options.sample:
        pairs += sample_pairs(options.sample, options.seed, set(options.skip_task))
    os.makedirs(options.work, exist_ok=True)
    records = []
    for model_type, task in pairs:
        try:
            record = sweep_pair(model_type, task, os.path.abspath(options.work), options.modelexport,
                                not options.no_clients, options.validate)
        except Exception as error:  # the sweep goes on; the pair says why
            traceback.print_exc()
            record = {"model_type": model_type, "task": task, "verdict": "fail",
                      "why": "sweep error: %s: %s" % (type(error).__name__, first_line(error))}
        records.append(record)
        print(json.dumps(record), flush=True)
        if options.json:
            with open(options.json, "w") as f:
                json.dump(records, f, indent=1)
    if options.coverage:
        write_coverage(options.coverage, records)
    exported = [r for r in records if r.get("optimum") == "ok"]
    matched = [r for r in exported if r["verdict"] == "match"]
    log("sweep: %d pairs, optimum-cli exported %d, modelexport matched %d" % (len(records), len(exported), len(matched)))
    for r in records:
        if r["verdict"] != "match":
            log("  %-6s %s %s: %s" % (r["verdict"], r["model_type"], r["task"], r.get("why", "")))
    return 0 if len(matched) == len(exported) else 1


if __name__ == "__main__":
    sys.exit(main())
