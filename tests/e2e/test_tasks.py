"""share/tasks.json against Optimum's own task knowledge (optimum-onnx's TasksManager in the pinned
environment), so the two cannot drift apart: every task the table names for the htp exporter is one
optimum-onnx exports, the table's outputs are Optimum's, every model type the table infers a task
for is one optimum-onnx exports for that task, and for every (model type, task) pair optimum-onnx
exports, the inputs and dynamic axes of Optimum's OnnxConfig are the row's (the differences known
today are listed with their reason, so a new one fails)."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from common import REPO, run

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")

OPTIMUM_VIEW = r'''
import json
from optimum.exporters.tasks import TasksManager
from optimum.exporters.onnx.base import OnnxConfig
import optimum.exporters.onnx.model_configs  # registers the configurations
supported = {}
for model_type, exporters in TasksManager._SUPPORTED_MODEL_TYPE.items():
    for task in exporters.get("onnx", {}):
        supported.setdefault(task, []).append(model_type)
outputs = {task: list(axes) for task, axes in OnnxConfig._TASK_TO_COMMON_OUTPUTS.items()}
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
# (task, model type, class): the head class transformers' Auto class for the task loads for each model type
# Optimum exports the task for, as config.json's `architectures` names it.
import transformers
from transformers import AutoConfig
from transformers.utils import logging
logging.set_verbosity_error()
heads = []
for task, loaders in TasksManager._TRANSFORMERS_TASKS_TO_MODEL_LOADERS.items():
    for loader in loaders if isinstance(loaders, tuple) else (loaders,):
        auto = getattr(transformers, loader, None)
        for model_type, names in (getattr(getattr(auto, "_model_mapping", None), "_model_mapping", None) or {}).items():
            registered = TasksManager._SUPPORTED_MODEL_TYPE.get(model_type) or \
                TasksManager._SUPPORTED_MODEL_TYPE.get(model_type.replace("_", "-")) or {}
            if task in registered.get("onnx", {}):
                try:  # the default config's encoder-decoder flag picks the row, as config.json's does
                    flag = AutoConfig.for_model(model_type).to_dict().get("is_encoder_decoder") is True
                except Exception:
                    flag = False
                heads.append((task, model_type, names[0] if isinstance(names, (list, tuple)) else names, flag))
print(json.dumps({"supported": supported, "outputs": outputs, "model_types": sorted(CONFIG_MAPPING_NAMES),
                  "heads": heads}))
'''

# Per row and supported model type, the inputs and outputs (with their axes) of Optimum's OnnxConfig
# built from the model type's default config, as optimum-cli builds it (text-generation-with-past feeds
# its cache: use_past_in_inputs). argv: the table, then Optimum's name of each row as JSON.
SIGNATURE_VIEW = r'''
import json, sys, warnings
warnings.filterwarnings("ignore")
from transformers import CONFIG_MAPPING, AutoConfig
from transformers.utils import logging
logging.set_verbosity_error()
from optimum.exporters.tasks import TasksManager
import optimum.exporters.onnx.model_configs  # registers the configurations
table = json.load(open(sys.argv[1]))
rows, names = table["tasks"], json.loads(sys.argv[2])
# Model types a not_exported entry refuses the task for (text-to-audio's several-model layouts): no row judges them.
refused = {(entry["name"], t.replace("_", "-")) for entry in table["not_exported"] for t in entry.get("model_types", [])}
view = {}
for row in rows:
    task = names.get(row["name"], row["name"])
    for model_type, exporters in TasksManager._SUPPORTED_MODEL_TYPE.items():
        if task not in exporters.get("onnx", {}) or (row["name"], model_type.replace("_", "-")) in refused:
            continue
        key = next((k for k in (model_type, model_type.replace("-", "_")) if k in CONFIG_MAPPING), model_type)
        try:  # an Optimum-only name (siglip-text) or a composite (encoder-decoder) has no default config to build
            model_config = AutoConfig.for_model(key)
        except (TypeError, ValueError):
            continue
        extra = {"use_past_in_inputs": True} if task == "text-generation-with-past" else {}
        config = exporters["onnx"][task](model_config, int_dtype="int64", float_dtype="fp32", **extra)
        axes = lambda named: {name: {str(axis): label for axis, label in a.items()} for name, a in named.items()}
        view.setdefault(row["name"], {})[model_type] = {"inputs": axes(config.inputs), "outputs": axes(config.outputs)}
print(json.dumps(view))
'''

# Optimum's task -> the table's tasks a head class of it may name: Optimum's image-segmentation is the table's
# semantic-segmentation (an alias) for the *ForSemanticSegmentation heads.
SAME_TASK = {"image-segmentation": {"semantic-segmentation"}}

# Our names for Optimum's tasks where they differ (none today: every row is named as Optimum names the task).
OPTIMUM_NAME = {}
# Model types the project's own exporters take beyond optimum-onnx (docs/compatibility.md's matrix says so).
BEYOND_OPTIMUM = {("text2text-generation", "umt5"), ("text2text-generation-with-past", "umt5")}
CACHE_PREFIXES = ("past_key_values.", "present.")
SEQ2SEQ_TEXT = ["bart", "bigbird_pegasus", "blenderbot", "blenderbot-small", "longt5", "m2m_100", "marian", "mbart", "mt5",
                "pegasus", "t5", "trocr"]

# (row, model types, the input/output names whose presence or axes differ from the row): the
# differences known today, each with its reason. A pair not listed must agree name for name and axis
# for axis; a listed one must still differ (else the entry goes).
KNOWN_DIFFERENCES = [
    # Optimum's per-model-type inputs the rows do not know yet.
    ("text-classification", ["longformer"], ["global_attention_mask"]),
    ("token-classification", ["longformer"], ["global_attention_mask"]),
    ("question-answering", ["longformer"], ["global_attention_mask"]),
    ("multiple-choice", ["longformer"], ["global_attention_mask"]),
    ("fill-mask", ["longformer"], ["global_attention_mask"]),
    ("feature-extraction", ["longformer"], ["global_attention_mask"]),
    ("text-classification", ["markuplm"], ["xpath_subs_seq", "xpath_tags_seq"]),
    ("token-classification", ["markuplm"], ["xpath_subs_seq", "xpath_tags_seq"]),
    ("question-answering", ["markuplm"], ["xpath_subs_seq", "xpath_tags_seq"]),
    ("feature-extraction", ["markuplm"], ["xpath_subs_seq", "xpath_tags_seq"]),
    ("fill-mask", ["layoutlm"], ["bbox"]),
    ("feature-extraction", ["decision_transformer"], ["actions", "returns_to_go", "states", "timesteps"]),
    # Three tokens per step: Optimum names the axis sequence_length, the steps' name, and ONNX Runtime's optimiser
    # then fails the file; the row (and the exporter) give it a name of its own.
    ("reinforcement-learning", ["decision_transformer"], ["last_hidden_state"]),
    ("feature-extraction", ["sam"], ["image_embeddings", "image_positional_embeddings", "input_labels", "input_points"]),
    ("feature-extraction", ["patchtsmixer", "patchtst"], ["last_hidden_state", "past_values"]),
    ("feature-extraction", ["visual_bert"], ["last_hidden_state", "visual_embeds"]),
    # Optimum keeps some image sides, channels or output axes static where the row names them (or the reverse).
    ("token-classification", ["layoutlmv3"], ["pixel_values"]),
    ("feature-extraction", ["colpali", "layoutlmv3"], ["pixel_values"]),
    ("image-classification", ["mobilenet_v1", "mobilenet_v2"], ["pixel_values"]),
    ("feature-extraction", ["mobilenet_v1", "mobilenet_v2"], ["last_hidden_state", "pixel_values"]),
    ("object-detection", ["d_fine", "rt_detr", "rt_detr_v2"], ["pixel_values"]),
    ("zero-shot-image-classification", ["chinese_clip", "clip", "metaclip_2"], ["pixel_values"]),
    ("image-classification", ["efficientnet"], ["logits"]),
    ("semantic-segmentation", ["dpt", "segformer"], ["logits"]),
    ("fill-mask", ["perceiver"], ["logits"]),
    ("image-to-image", ["swin2sr"], ["reconstruction"]),
    ("zero-shot-object-detection", ["owlv2", "owlvit"], ["logits", "pred_boxes", "text_embeds"]),
    ("feature-extraction", ["beit", "clip_vision_model", "convnext", "convnextv2", "cvt", "data2vec-vision", "deit", "detr",
                            "dinov2", "donut-swin", "dpt", "efficientnet", "glpn", "hiera", "levit", "maskformer", "mobilevit",
                            "poolformer", "pvt", "regnet", "resnet", "segformer", "siglip_vision_model", "swin", "swin2sr",
                            "swinv2", "table-transformer", "vit", "vit_mae", "vit_msn", "yolos"], ["last_hidden_state"]),
    ("feature-extraction", ["chinese_clip", "clip", "groupvit", "metaclip_2", "owlv2", "owlvit"], ["attention_mask", "input_ids"]),
    ("feature-extraction", ["siglip"], ["input_ids", "pixel_values"]),
    # Optimum's $ctc_frames is the model type's own convolution formula, which the exporter computes.
    ("automatic-speech-recognition", ["data2vec-audio", "hubert", "sew", "sew-d", "unispeech", "unispeech-sat", "wav2vec2",
                                      "wav2vec2-conformer", "wavlm"], ["logits"]),
    # Spectrogram inputs (input_features, AST's input_values [batch, frames, bins]) beside the waveform rows.
    ("audio-classification", ["whisper"], ["input_features", "input_values"]),
    ("audio-classification", ["audio-spectrogram-transformer"], ["input_values"]),
    ("feature-extraction", ["audio-spectrogram-transformer"], ["input_values"]),
    ("feature-extraction", ["mctct"], ["input_features"]),
    ("automatic-speech-recognition", ["mctct"], ["input_features", "input_values", "logits"]),
    ("image-classification", ["imagegpt", "perceiver"], ["attention_mask", "input_ids", "pixel_values"]),
    # Encoder-decoders: Optimum's single OnnxConfig is the whole seq2seq model, which the project exports as
    # several files (its own seq2seq rows), or refuses (feature-extraction-with-past).
    ("automatic-speech-recognition", ["speech_to_text"], ["attention_mask", "decoder_input_ids", "input_features", "input_values", "logits"]),
    ("automatic-speech-recognition", ["moonshine"], ["attention_mask", "decoder_input_ids", "input_values", "logits"]),
    ("automatic-speech-recognition", ["whisper"], ["decoder_input_ids", "input_features", "input_values", "logits"]),
    ("feature-extraction", ["speech_to_text"], ["attention_mask", "decoder_input_ids", "input_features", "last_hidden_state"]),
    ("feature-extraction", ["moonshine"], ["attention_mask", "decoder_input_ids", "input_values", "last_hidden_state"]),
    ("feature-extraction", ["whisper"], ["decoder_input_ids", "last_hidden_state"]),
    ("feature-extraction", SEQ2SEQ_TEXT, ["attention_mask", "decoder_input_ids", "input_ids", "last_hidden_state"]),
    ("feature-extraction-with-past", SEQ2SEQ_TEXT, ["attention_mask", "decoder_input_ids", "input_ids", "last_hidden_state"]),
    ("feature-extraction-with-past", ["speech_to_text", "whisper"],
     ["attention_mask", "decoder_input_ids", "input_features", "input_ids", "last_hidden_state"]),
    ("feature-extraction-with-past", ["moonshine"], ["attention_mask", "decoder_input_ids", "input_ids", "input_values", "last_hidden_state"]),
]


def known_differences():
    """{(row, model type): the names known to differ}."""
    return {(row, model_type): set(names) for row, model_types, names in KNOWN_DIFFERENCES for model_type in model_types}


def differences(row, optimum):
    """The input/output names where Optimum's OnnxConfig (`optimum`: its inputs and outputs with axes) and the
    row disagree: an input the row does not know, a required input Optimum does not feed, or other axes."""
    known = set(row["inputs"] + row["optional_inputs"])
    cache = lambda name: name.startswith(CACHE_PREFIXES)
    names = {n for n in optimum["inputs"] if n not in known and not (cache(n) and row["with_past"])}
    names |= {n for n in row["inputs"] if n not in optimum["inputs"]}
    for name, axes in list(optimum["inputs"].items()) + list(optimum["outputs"].items()):
        if not cache(name) and name in row["dynamic_axes"] and row["dynamic_axes"][name] != axes:
            names.add(name)
    return names


def normal(model_type):
    """Optimum spells some model types with '-' where config.json has '_' (m2m_100 / m2m-100)."""
    return model_type.replace("_", "-")


@unittest.skipUnless(PYTHON, "MODELEXPORT_PYTHON (the pinned environment) is not set")
class OptimumAgreement(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = subprocess.run([PYTHON, "-c", OPTIMUM_VIEW], capture_output=True, text=True, timeout=600, check=True)
        cls.optimum = json.loads(p.stdout.strip().splitlines()[-1])
        table = os.path.join(REPO, "share", "tasks.json")
        with open(table, encoding="utf-8") as f:
            document = json.load(f)
        cls.rows, cls.model_types = document["tasks"], document["model_types"]["names"]
        p = subprocess.run([PYTHON, "-c", SIGNATURE_VIEW, table, json.dumps(OPTIMUM_NAME)], capture_output=True,
                           text=True, timeout=600, check=True)
        cls.signatures = json.loads(p.stdout.strip().splitlines()[-1])

    def optimum_task(self, row):
        return OPTIMUM_NAME.get(row["name"], row["name"])

    def test_the_known_model_types_are_the_pinned_transformers(self):
        # validate warns on any other model_type (config.model_type_known): the list must be transformers' own.
        self.assertEqual(sorted(self.model_types), self.optimum["model_types"])

    def test_a_task_optimum_exports_is_never_refused_for_its_head_class(self):
        """For every head class transformers loads for a task Optimum exports (XLMWithLMHeadModel for fill-mask,
        XLMForQuestionAnsweringSimple), `--task` with that task is accepted for a config.json naming it (`plan`
        resolves the task as export does), and inference from a head class gives that task or none (then --task
        names it), never another."""
        tmp = tempfile.mkdtemp(prefix="modelexport-heads-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        names = {name for row in self.rows for name in [row["name"]] + row["aliases"]}
        checked = 0
        for task, model_type, head, encoder_decoder in self.optimum["heads"]:
            if task not in names:
                continue  # a task the table names otherwise
            config = os.path.join(tmp, "config.json")
            with open(config, "w") as f:
                json.dump({"model_type": model_type, "architectures": [head], "is_encoder_decoder": encoder_decoder}, f)
            with self.subTest(task=task, head=head):
                checked += 1
                p = run("plan", tmp, "--task", task)
                if "is not exported by modelexport for this model_type" in p.stderr:
                    continue
                self.assertEqual(p.returncode, 0, p.stderr)
                if task.startswith("feature-extraction"):
                    continue  # AutoModel's bare model: inferred as feature-extraction only where the table says
                p = run("plan", tmp)
                if p.returncode == 0:
                    inferred = json.loads(p.stdout)["task"]
                    self.assertIn(inferred, {task, task + "-with-past"} | SAME_TASK.get(task, set()))
                else:
                    self.assertIn("cannot infer the task", p.stderr)
        self.assertGreater(checked, 200)

    def test_every_task_is_one_optimum_exports(self):
        for row in self.rows:
            with self.subTest(row["name"]):
                self.assertIn(self.optimum_task(row), self.optimum["supported"])

    def test_every_task_not_exported_is_one_optimum_exports_and_no_row(self):
        """An entry for every model type has no row; one for some model types (text-to-audio's several-model
        layouts) names model types Optimum exports the task for, and its row takes the task's others."""
        with open(os.path.join(REPO, "share", "tasks.json"), encoding="utf-8") as f:
            refused = json.load(f)["not_exported"]
        names = {name for row in self.rows for name in [row["name"]] + row["aliases"]}
        for entry in refused:
            with self.subTest(entry["name"]):
                self.assertIn(entry["name"], self.optimum["supported"])
                shared = ({entry["name"]} | set(entry["aliases"])) & names
                if not entry.get("model_types"):
                    self.assertFalse(shared)
                    continue
                self.assertEqual(shared, {entry["name"]} | set(entry["aliases"]))
                supported = set(map(normal, self.optimum["supported"][entry["name"]]))
                self.assertLessEqual(set(map(normal, entry["model_types"])), supported)
                self.assertTrue(supported - set(map(normal, entry["model_types"])), "the row serves no model type")

    def test_every_task_optimum_exports_is_a_row_or_refused_with_its_reason(self):
        """A task optimum-onnx exports that the table neither exports nor refuses would be an
        "unknown task" usage error, which tells a user nothing about why."""
        with open(os.path.join(REPO, "share", "tasks.json"), encoding="utf-8") as f:
            refused = {entry["name"] for entry in json.load(f)["not_exported"]}
        known = {name for row in self.rows for name in [self.optimum_task(row)] + row["aliases"]} | refused
        self.assertEqual(sorted(set(self.optimum["supported"]) - known), [])

    def test_the_outputs_are_optimums(self):
        for row in self.rows:
            if row.get("encoder_decoder") or row["with_past"]:  # an encoder-decoder row's outputs are its encoder's
                continue
            with self.subTest(row["name"]):
                # A with-past task's common outputs are its base task's (the presents are added per model).
                common = self.optimum["outputs"].get(row["name"].removesuffix("-with-past"))
                if common is None and self.signatures.get(row["name"]):
                    continue  # only its model types' configurations name outputs (reinforcement-learning's), held below
                self.assertIsNotNone(common, "Optimum names no common outputs for " + row["name"])
                self.assertEqual(row["outputs"], [o for o in common if o in row["outputs"] + row["optional_outputs"]])
                self.assertTrue(set(row["outputs"]) <= set(common))

    def test_inferred_model_types_export_that_task_in_optimum(self):
        for row in self.rows:
            for rule in row["model_type_suffixes"]:
                for model_type in rule["model_types"]:
                    if (row["name"], model_type) in BEYOND_OPTIMUM:
                        continue
                    with self.subTest(task=row["name"], model_type=model_type):
                        self.assertIn(normal(model_type), map(normal, self.optimum["supported"][self.optimum_task(row)]))

    def test_inputs_and_axes_are_optimums_for_every_model_type(self):
        known = known_differences()
        checked = set()
        for row in self.rows:
            if row.get("encoder_decoder"):  # inputs and outputs are the encoder's: Optimum's config is the whole model
                continue
            for model_type, optimum in self.signatures.get(row["name"], {}).items():
                checked.add((row["name"], model_type))
                with self.subTest(task=row["name"], model_type=model_type):
                    self.assertEqual(differences(row, optimum), known.get((row["name"], model_type), set()), optimum)
        self.assertEqual(set(known) - checked, set(), "known differences of pairs Optimum no longer exports")


if __name__ == "__main__":
    unittest.main()
