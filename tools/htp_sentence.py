"""sentence-transformers checkpoints exported with their pooling (export --library sentence-transformers).

A sentence-transformers checkpoint is a transformers model plus a recipe: modules.json lists the
modules after it (Pooling, Dense, Normalize), each with its folder. optimum-cli exports such a
checkpoint, with ``--library sentence_transformers``, as one graph of the whole pipeline: the token
embeddings and the ``sentence_embedding`` the recipe computes. A C++ client then reads the embedding
directly instead of re-implementing the pooling.

The model is sentence-transformers' own ``SentenceTransformer`` (its modules compute what the
checkpoint's users get in Python), traced through Optimum's configuration for it. Two choices differ
from optimum-cli:

- Its transformer is the one the weights gate loaded (htp_exporter.load_transformers_model), not a
  second load by sentence-transformers that would accept missing tensors.
- The token embeddings are named ``last_hidden_state``, not ``token_embeddings``: the tensor is the
  same (sentence-transformers' Transformer module returns the model's last hidden state), and it is
  the one name Optimum's ORTModelForFeatureExtraction reads (it fails on optimum-cli's package) and
  transformers.js's feature-extraction pipeline reads first.
"""

import json
import os

from htp_weights import is_within

LIBRARIES = ("transformers", "sentence-transformers")
MODULES_FILE = "modules.json"
TOKEN_OUTPUT = "last_hidden_state"
# The modules whose computation Optimum's configuration traces and whose files hold no code.
# sentence-transformers imports the class modules.json names; only its own package's classes of these
# names are taken ("sentence_transformers.models.Pooling" in older checkpoints, the class's module path
# in newer ones), anything else is refused before it is imported.
MODULE_NAMES = ("Transformer", "Pooling", "Dense", "Normalize")
PACKAGE = "sentence_transformers."
SAFE_WEIGHTS = "model.safetensors"
MAX_MODULES_BYTES = 1 << 20  # a module list of a few entries; anything near this is not one


class RecipeError(Exception):
    """modules.json or a module folder that this export cannot take: the message names the file."""


def read_modules(source_dir):
    """modules.json's entries [(type name, folder)] after checking what sentence-transformers would import
    and read: known module types only, folders inside the source, the transformer first and at the root."""
    path = os.path.join(source_dir, MODULES_FILE)
    if not os.path.lexists(path):
        raise RecipeError("%s: missing: --library sentence-transformers needs the checkpoint's module list" % path)
    if not os.path.isfile(path) or os.path.getsize(path) > MAX_MODULES_BYTES:
        raise RecipeError("%s: not a regular file of at most %d bytes" % (path, MAX_MODULES_BYTES))
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)
    except (OSError, ValueError) as error:
        raise RecipeError("%s: not readable JSON (%s)" % (path, error))
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise RecipeError("%s: not a list of module objects" % path)
    modules = []
    for entry in entries:
        kind, folder = entry.get("type"), entry.get("path", "")
        name = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else None
        if not (isinstance(kind, str) and kind.startswith(PACKAGE) and name in MODULE_NAMES):
            raise RecipeError("%s: module type %r is not one this export traces (sentence-transformers' %s)"
                              % (path, kind, ", ".join(MODULE_NAMES)))
        if not isinstance(folder, str) or os.path.isabs(folder) or ".." in folder.replace("\\", "/").split("/"):
            raise RecipeError("%s: module folder %r must be a relative path inside the source" % (path, folder))
        if not is_within(os.path.realpath(os.path.join(source_dir, folder)), os.path.realpath(source_dir)):
            raise RecipeError("%s: module folder %r leads outside the source" % (path, folder))
        modules.append((name, folder))
    if modules[0] != ("Transformer", ""):
        raise RecipeError("%s: the first module must be the Transformer at the source's root (it is %s at %r)"
                          % (path, modules[0][0], modules[0][1]))
    for kind, folder in modules[1:]:
        if kind == "Transformer":
            raise RecipeError("%s: a second Transformer module (%r)" % (path, folder))
        if kind == "Dense" and not os.path.isfile(os.path.join(source_dir, folder, SAFE_WEIGHTS)):
            raise RecipeError("%s: has no %s (only safetensors weights are read; a pickle is never loaded)"
                              % (os.path.join(source_dir, folder), SAFE_WEIGHTS))
    return modules


def pipeline_for(model, source_dir):
    """sentence-transformers' SentenceTransformer of the source, its transformer replaced by `model`
    (the gated load), with the attributes Optimum's configuration lookup reads."""
    read_modules(source_dir)
    from sentence_transformers import SentenceTransformer
    from optimum.exporters.tasks import TasksManager
    try:
        pipeline = SentenceTransformer(source_dir, device="cpu", local_files_only=True, trust_remote_code=False)
    except Exception as error:  # a module's config it cannot take (1_Pooling/config.json, 2_Dense/...): its words
        said = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RecipeError("%s: sentence-transformers cannot load the pipeline it lists: %s"
                          % (os.path.join(source_dir, MODULES_FILE), said[:300]))
    transformer = pipeline[0]
    # sentence-transformers 5 keeps the model as `model` (auto_model is a read-only alias) and calls its forward
    # method itself; earlier ones keep it as `auto_model` and call the module.
    if "model" in transformer._modules:
        transformer.model = model
        forward_through_call(model)
    else:
        transformer.auto_model = model
    if transformer.auto_model is not model:
        raise RecipeError("%s: sentence-transformers %s keeps its transformer where this export cannot replace it"
                          % (os.path.join(source_dir, MODULES_FILE), type(transformer).__name__))
    pipeline.eval()
    TasksManager.standardize_model_attributes(pipeline, library_name="sentence_transformers")
    return pipeline


def pooling_modes(module):
    """A Pooling module's modes ("mean", "cls", ...): its pooling_mode (a name or several) in
    sentence-transformers 5, its "+"-joined mode string before."""
    mode = getattr(module, "pooling_mode", None)
    if mode is None:
        mode = module.get_pooling_mode_str()
    return [str(m) for m in mode] if isinstance(mode, (list, tuple)) else str(mode).split("+")


def forward_through_call(model):
    """Make a direct call of `model.forward` go through torch's __call__ once. Without it no hook sees the
    model run and the trace gives its operators no scope of their own ("/0/encoder/..." for the module
    0.model.encoder), so the hierarchy loses its level and most tags."""
    own_forward = model.forward
    inside = []

    def forward(*args, **kwargs):
        if inside:  # __call__'s own call of forward
            return own_forward(*args, **kwargs)
        inside.append(True)
        try:
            return model(*args, **kwargs)
        finally:
            inside.pop()
    model.forward = forward


def recipe(pipeline):
    """What the graph's sentence_embedding computes, for export_metadata.json (export/sentence_pipeline.hpp): the
    modules after the transformer, the pooling modes, and the embedding's width."""
    steps = []
    for module in list(pipeline)[1:]:
        step = {"module": type(module).__name__}
        if step["module"] == "Pooling":
            step["modes"] = pooling_modes(module)
        steps.append(step)
    return {"library": "sentence-transformers", "modules": steps,
            "dimension": int(pipeline.get_sentence_embedding_dimension())}
