"""Signatures and dummy inputs from Optimum's own export configurations.

optimum-onnx keeps, per model type and task, an ``OnnxConfig``: the input and output names and
their order, the dynamic axes, the dummy-input generators, and the model patcher that makes the
forward traceable.  Where transformers and optimum-onnx are importable
and a configuration exists, the htp exporter takes all of that from it, so a package has the
signature optimum-cli gives the same model (GPT-2's classifiers without ``token_type_ids``,
LayoutLM with ``bbox``, CLIP with both towers).  Elsewhere (Debian's torch, a ``--model``
factory, a model type optimum-onnx does not know) the project's own task table applies, and
the module table says which of the two was used ("signature").

Decoders with their KV cache and encoder-decoder models keep their own exporters
(htp_decoder.py, htp_seq2seq.py): their cache forms are what the clients read today. A decoder still
takes its input names and its model patcher from Optimum's with-past configuration where there is one.
"""

import contextlib
import inspect
import pathlib
from itertools import chain

# Our task names that Optimum spells otherwise.
OPTIMUM_TASK = {}


class Unavailable(Exception):
    """No Optimum configuration for this model and task: the reason, for the report."""


class Refused(Exception):
    """The export cannot be done as optimum-cli would do it, and optimum-cli refuses it too."""


def load_tasks_manager():
    """TasksManager with optimum-onnx's configurations registered, or Unavailable."""
    try:
        from optimum.exporters.tasks import TasksManager
        import optimum.exporters.onnx.model_configs  # noqa: F401  (registers the ONNX configs)
    except ImportError as error:
        raise Unavailable("optimum-onnx is not importable (%s)" % error)
    return TasksManager


def export_config(model, task, source_dir, library="transformers", **options):
    """Optimum's OnnxConfig for `model` (a transformers PreTrainedModel, or what `library` makes) and `task`
    (`options`: the configuration's own, use_past_in_inputs)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if not model_type:  # before the import of Optimum's tables, which takes seconds
        raise Unavailable("the model has no config.model_type")
    manager = load_tasks_manager()
    optimum_task = OPTIMUM_TASK.get(task, task)
    try:
        constructor = manager.get_exporter_config_constructor(
            exporter="onnx", model=model, task=optimum_task, library_name=library)
    except (KeyError, ValueError) as error:
        raise Unavailable("optimum-onnx has no export configuration for model type %r and task %r (%s)"
                          % (model_type, optimum_task, str(error).splitlines()[0] if str(error) else type(error).__name__))
    return constructor(model.config, int_dtype="int64", float_dtype="fp32", preprocessors=preprocessors(source_dir), **options)


def submodels(model, task, source_dir):
    """{part name: (module, OnnxConfig)} of optimum-cli's several-file export of `model` for `task`, in its
    order, from Optimum's own dispatcher (an encoder-decoder's encoder and decoders; MusicGen's text encoder,
    EnCodec decoder, decoders and delay-pattern builder), or Unavailable."""
    load_tasks_manager()
    from optimum.exporters.onnx.utils import _get_submodels_and_onnx_configs
    optimum_task = OPTIMUM_TASK.get(task, task)
    try:
        _, parts = _get_submodels_and_onnx_configs(
            model=model, task=optimum_task, monolith=False, custom_onnx_configs={}, custom_architecture=False,
            _variant="default", library_name="transformers", preprocessors=preprocessors(source_dir))
    except (KeyError, ValueError) as error:  # no configuration, or one that refuses this config.json
        raise Unavailable("optimum-onnx cannot export model type %r for task %r: %s"
                          % (model.config.model_type, optimum_task, str(error).splitlines()[0] if str(error) else type(error).__name__))
    return parts


def preprocessors(source_dir):
    """The source's tokenizer/processors as optimum-cli loads them: some configurations read static
    shapes (an image size) from them."""
    try:
        from optimum.utils.save_utils import maybe_load_preprocessors
        from transformers.utils import logging
        logging.set_verbosity_error()
        return maybe_load_preprocessors(source_dir)
    except Exception:  # no preprocessor in the source: the configuration's defaults
        return None


def decoder_config(model, source_dir):
    """Optimum's text-generation-with-past configuration of `model` with its cache as inputs, or None where
    optimum-onnx is not importable or has none for the model type (the task table's rules apply then)."""
    try:
        onnx_config = export_config(model, "text-generation-with-past", source_dir, use_past_in_inputs=True)
    except Unavailable:
        return None
    return onnx_config


def decoder_inputs(onnx_config):
    """The input names optimum-cli's text-generation-with-past export takes (position_ids or not: Llama's
    configuration lists it, Gemma's does not), or None without a configuration."""
    return set(onnx_config.inputs) if onnx_config is not None else None


@contextlib.contextmanager
def model_patches(model, onnx_config):
    """Optimum's model patcher for the configuration (its traceable replacements: Qwen3-MoE's experts,
    Cohere's rotary embedding, masks without vmap, ...) around the block, the model's forward left to
    the caller to wrap; nothing without a configuration."""
    if onnx_config is None:
        yield
        return
    try:
        with onnx_config.patch_model_for_export(model, model_kwargs=model_kwargs_for(model)):
            yield
    finally:
        model.__dict__.pop("forward", None)  # the patcher's exit leaves the class's forward as an instance attribute


def set_pad_token_id(model, task, source_dir):
    """What optimum-cli does for text-classification: a model that finds each row's last token by the
    pad id needs one; config.json's, else the tokenizer's, else the export is refused."""
    if task != "text-classification" or getattr(model.config, "pad_token_id", None) is not None:
        return
    try:
        from transformers import AutoTokenizer
        pad = AutoTokenizer.from_pretrained(source_dir, local_files_only=True).pad_token_id
    except Exception:  # no tokenizer in the source
        pad = None
    if pad is None:
        raise Refused("config.json has no pad_token_id and the source has no tokenizer with a pad "
                                  "token; %s finds each row's last token by it (optimum-cli refuses too): "
                                  "set pad_token_id in config.json" % type(model).__name__)
    model.config.pad_token_id = pad


def supported_tasks(model_type):
    """The tasks optimum-onnx exports for a model type (Optimum's names), or an empty set. Optimum registers
    most model types with '-' for config.json's '_' (unispeech-sat) and some as config.json spells them
    (decision_transformer, m2m_100): both spellings are asked."""
    try:
        manager = load_tasks_manager()
    except Exception:  # no optimum: nothing to offer
        return set()
    for spelling in dict.fromkeys((model_type, model_type.replace("_", "-"))):
        try:
            return set(manager.get_supported_tasks_for_model_type(spelling, "onnx", library_name="transformers"))
        except Exception:  # not registered under this spelling (or at all): nothing to offer
            continue
    return set()


def atol(onnx_config, task):
    """Optimum's validation tolerance for this configuration and task (a float or per-task dict)."""
    value = getattr(onnx_config, "ATOL_FOR_VALIDATION", None)
    if isinstance(value, dict):
        value = value.get(OPTIMUM_TASK.get(task, task))
    return float(value) if isinstance(value, (int, float)) else None


def model_kwargs_for(model):
    """What optimum's export_pytorch passes besides the inputs (logits_to_keep=0 keeps every position)."""
    parameters = inspect.signature(model.forward).parameters
    return {"logits_to_keep": 0} if "logits_to_keep" in parameters else {}


class Signature:
    """The inputs, outputs, axes and dummy inputs of one Optimum export, and its patcher."""

    def __init__(self, model, onnx_config, shapes=None, renamed=None):
        """`renamed`: {configuration's output name: the graph's}."""
        self.config = onnx_config
        self.renamed = dict(renamed or {})
        self.model = model
        self.model_kwargs = model_kwargs_for(model)
        model.config.return_dict = True
        for key, value in (onnx_config.values_override or {}).items():
            setattr(model.config, key, value)
        self.dummy = self.inputs_for(**(shapes or {}))
        with self.patched():
            ordered = onnx_config.ordered_inputs(model)
        # An input the generators made, alone or inside a collection ("past_key_values.0.key" of the
        # cache, "encoder_hidden_states" of encoder_outputs): the configuration may list others.
        self.torch_names = {onnx: torch for torch, onnx in (onnx_config.torch_to_onnx_input_map or {}).items()}
        self.inputs = [name for name in ordered if self.torch_names.get(name, name).split(".")[0] in self.dummy]
        outputs = {self.renamed.get(name, name): axes for name, axes in onnx_config.outputs.items()}
        self.outputs = list(outputs)
        self.axes = {name: dict(axes) for name, axes in chain(ordered.items(), outputs.items())
                     if name in self.inputs or name in self.outputs}

    def inputs_for(self, seed=0, **shapes):
        """Dummy inputs from the configuration's generators, for the given shapes (Optimum's defaults else).
        The generators draw from torch's global generator: seeded, so the same export gives the same
        inputs and the same recorded differences."""
        import torch
        from optimum.utils import DEFAULT_DUMMY_SHAPES
        torch.manual_seed(seed)
        # Every default shape, as optimum-cli passes them: some configurations read one they do not default
        # (RT-DETR's height and width).
        dummy = self.config.generate_dummy_inputs(framework="pt", **dict(DEFAULT_DUMMY_SHAPES, **shapes))
        return self.config.rename_ambiguous_inputs(dummy)

    def fix_static_axes(self, onnx_path):
        """Output axes the trace left symbolic although the configuration names them static (a hidden size
        behind a Reshape, a head dim behind rotary embeddings) get their size, as optimum-cli's export does
        it (OnnxConfig.fix_dynamic_axes: one run of the file, its outputs' sizes written into the graph)."""
        if not self._has_unnamed_symbolic_output(onnx_path):
            return  # nothing to fix: Optimum would create an ONNX Runtime session only to find that out
        import torch
        torch.manual_seed(0)  # its dummy inputs come from torch's global generator: the same export, the same run
        self.config.fix_dynamic_axes(pathlib.Path(onnx_path), device="cpu", dtype="fp32")

    def name_own_axes(self, onnx_path, traced):
        """An output axis the configuration names after an input's axis although the trace gave it another
        size (Decision Transformer's last_hidden_state: 3 x the steps, called sequence_length) gets a name of
        its own, `<output>_axis_<i>`, in the file and in `axes`: ONNX Runtime's optimiser takes dims of one
        name for one size, so the file as Optimum names it fails in every optimising client. Runs after
        fix_static_axes, whose test allows only the configuration's names. `traced`: the patched forward's
        outputs in the trace. Returns the renamed axes, "output.axis" -> new name."""
        import torch
        traced = {name: list(t.shape) for name, t in self.named_outputs(traced).items() if torch.is_tensor(t)}
        sizes = {}
        for name, value in self.tensor_inputs(self.dummy):
            for axis, label in self.axes.get(name, {}).items():
                sizes.setdefault(label, int(value.shape[int(axis)]))
        own = {}  # output -> {axis: its own name}
        for name in self.outputs:
            shape = traced.get(name)
            for axis, label in self.axes.get(name, {}).items():
                if shape is not None and int(axis) < len(shape) and sizes.get(label, shape[int(axis)]) != shape[int(axis)]:
                    self.axes[name][axis] = own.setdefault(name, {})[int(axis)] = "%s_axis_%s" % (name, axis)
        if own:
            import onnx
            model = onnx.load(str(onnx_path), load_external_data=False)
            for output in model.graph.output:
                for axis, label in own.get(output.name, {}).items():
                    output.type.tensor_type.shape.dim[axis].dim_param = label
            onnx.save(model, str(onnx_path))
        return {"%s.%d" % (name, axis): label for name, axes in own.items() for axis, label in axes.items()}

    def tensor_inputs(self, inputs):
        """(graph input name, tensor) of each graph input that `inputs` (the forward's, by torch name) holds as
        one tensor; the tensors inside a collection (the cache, encoder_outputs) are left out."""
        import torch
        for name in self.inputs:
            value = inputs.get(self.torch_names.get(name, name))
            if torch.is_tensor(value):
                yield name, value

    def _has_unnamed_symbolic_output(self, onnx_path):
        """Optimum's own test (an output dim that is symbolic but none of the configuration's axis names),
        on the file's declared output shapes; an output whose shape the file leaves open counts, so
        Optimum decides it."""
        import htp_decoder
        allowed = set(chain.from_iterable(axes.values() for axes in chain(self.config.inputs.values(),
                                                                         self.config.outputs.values())))
        for dims in htp_decoder.output_shapes(onnx_path).values():
            if dims is None or any(d is None or (isinstance(d, str) and d not in allowed) for d in dims):
                return True
        return False

    def onnx_feeds(self, inputs, input_names):
        """`inputs` (the forward's, collections nested) as the ONNX file's flat inputs, as Optimum's own
        validation feeds them (a merged decoder's use_cache_branch included)."""
        feeds = {}
        for name, value in self.config.generate_dummy_inputs_for_validation(dict(inputs), input_names).items():
            if isinstance(value, (list, tuple)):
                feeds.update(self.config.flatten_output_collection_property(name, value))
            elif isinstance(value, dict):
                feeds.update(value)
            else:
                feeds[name] = value
        return feeds

    @contextlib.contextmanager
    def patched(self):
        """The model's forward as Optimum exports it (its ModelPatcher): returns a dict of the outputs."""
        with self.config.patch_model_for_export(self.model, model_kwargs=self.model_kwargs):
            yield

    def named_outputs(self, outputs):
        """The patched forward's outputs under their ONNX names, nested collections flattened as Optimum does."""
        # The returned cache is the graph's "present" outputs ("past_key_values" names its inputs), as Optimum's
        # own validation renames it.
        mapping = {"past_key_values": "present", **(getattr(self.config, "torch_to_onnx_output_map", {}) or {}), **self.renamed}
        named = {}
        for name, value in dict(outputs).items():
            name = mapping.get(name, name)
            if isinstance(value, (list, tuple)):
                named.update(self.config.flatten_output_collection_property(name, value))
            else:
                named[name] = value
        return named
