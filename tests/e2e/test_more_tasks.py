"""Tasks exported through Optimum's own configurations that the examples do not cover:
feature-extraction-with-past (GPT-2, Llama), keypoint-detection (VitPose), time-series-forecasting
(PatchTST, PatchTSMixer), reinforcement-learning (Decision Transformer) and text-to-audio (VITS, MusicGen).

Each source is a tiny genuine transformers model built at test time (tests/fixtures/make_task_models.py:
seeded, save_pretrained, with its tokenizer or image processor). modelexport exports it with --task (Optimum
infers none of these from a local directory either), its reference check against torch passes, `validate
--strict` passes with every real runtime (transformers.js says when it has no pipeline for the task), and
beside `optimum-cli export onnx` of the same source it has the same files, the same inputs and output names,
and outputs within 1e-4 on the same generated inputs.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from common import EXIT, NODE, REPO, RUNTIME_DIR, assert_outputs_close, load_json, node, run
from test_optimum import PYTHON, needs_hf

RUNTIMES = ["onnxruntime", "optimum", "transformers-js"]


class TaskBesideOptimumCli:
    """One task's tests (mixed into a TestCase per task): its sources, exported by modelexport and optimum-cli
    once per class."""
    TASK = None
    MODELS = ()
    # The transformers.js pipeline exists for the task (else validate skips that runtime and says why).
    TRANSFORMERS_JS = True
    # optimum-cli's own check of its file fails (it keeps the file and exits non-zero).
    OPTIMUM_CLI_VALIDATION_FAILS = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-more-tasks-")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        p = subprocess.run([PYTHON, os.path.join(REPO, "tests", "fixtures", "make_task_models.py"), cls.tmp, *cls.MODELS],
                           capture_output=True, text=True, timeout=600, env=env)
        if p.returncode != 0:
            raise AssertionError(p.stderr[-3000:])
        cli = os.path.join(os.path.dirname(PYTHON), "optimum-cli")
        cls.ours, cls.theirs = {}, {}
        for name in cls.MODELS:
            src = os.path.join(cls.tmp, name)
            cls.ours[name] = os.path.join(cls.tmp, "ours-" + name)
            p = run("export", src, cls.ours[name], "--task", cls.TASK, "--no-cache", timeout=900)
            if p.returncode != 0:
                raise AssertionError(f"modelexport export {name}: {p.stderr[-3000:]}")
            cls.theirs[name] = os.path.join(cls.tmp, "optimum-" + name)
            p = subprocess.run([cli, "export", "onnx", "--model", src, "--task", cls.TASK, cls.theirs[name]],
                               capture_output=True, text=True, env=env, timeout=900)
            cls.optimum_cli_stderr = p.stderr
            saved = (cls.OPTIMUM_CLI_VALIDATION_FAILS and "validate_model_outputs" in p.stderr
                     and os.path.isfile(os.path.join(cls.theirs[name], "model.onnx")))
            if p.returncode != 0 and not saved:
                raise AssertionError(f"optimum-cli {name}: {p.stderr[-3000:]}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_reference_check_passed_on_every_output(self):
        for name, pkg in self.ours.items():
            with self.subTest(name):
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertEqual(meta["model"]["task"], self.TASK)
                check = meta["reference_check"]
                self.assertEqual(check["status"], "passed", check)
                compared = {o["output"] for step in check["steps"] for o in step["outputs"]}
                self.assertEqual(compared, {o["name"] for o in meta["signature"]["outputs"]})

    def test_valid_strict_with_every_runtime(self):
        for name, pkg in self.ours.items():
            for runtime in RUNTIMES:
                with self.subTest(name=name, runtime=runtime):
                    p = run("validate", pkg, "--task", self.TASK, "--strict", "--runtime", runtime, "--json")
                    self.assertEqual(p.returncode, EXIT["ok"], p.stdout + p.stderr)
                    check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["runtime." + runtime]
                    if runtime == "transformers-js" and not self.TRANSFORMERS_JS:
                        self.assertEqual(check["status"], "skip", check)
                        self.assertIn("no transformers.js pipeline check for task " + self.TASK, check["message"])
                    else:
                        self.assertEqual(check["status"], "pass", check)

    def test_beside_optimum_cli(self):
        for name in self.MODELS:
            with self.subTest(name):
                ours, theirs = self.ours[name], self.theirs[name]
                self.assertEqual(set(os.listdir(ours)) - {"export_metadata.json"}, set(os.listdir(theirs)))
                # Names, order, types and shapes: static sizes where optimum-cli's export fixes them.
                self.assertEqual(signature(ours), signature(theirs))
                # Generated from the graph's input names: the same tensors for both packages.
                ours_out = node("ort_check.mjs", ours)["outputs"]
                theirs_out = node("ort_check.mjs", theirs)["outputs"]
                assert_outputs_close(self, ours_out, theirs_out, f"{name} vs optimum-cli")


def signature(pkg, name="model.onnx"):
    return json.loads(run("inspect", os.path.join(pkg, name), "--json", check=0).stdout)["signature"]


@needs_hf
class FeatureExtractionWithPast(TaskBesideOptimumCli, unittest.TestCase):
    """The base decoder with its presents as outputs and no past inputs, as optimum-cli exports it. An
    encoder-decoder's is its four files (the sweep compares T5's with optimum-cli's); a config that claims
    to be one without an encoder-decoder's geometry fails naming what it lacks."""
    TASK = "feature-extraction-with-past"
    MODELS = ("gpt2", "llama")

    def test_signature_is_optimums(self):
        sig = signature(self.ours["llama"])
        self.assertEqual([(i["name"], i["shape"]) for i in sig["inputs"]],
                         [(n, ["batch_size", "sequence_length"]) for n in ("input_ids", "attention_mask", "position_ids")])
        self.assertEqual(sig["outputs"][0]["shape"], ["batch_size", "sequence_length", 32])
        # Two layers, two key/value heads (make_task_models.py's Llama); the head dim is what the trace leaves,
        # as in optimum-cli's package (test_beside_optimum_cli).
        presents = [(o["name"], o["shape"][:3]) for o in sig["outputs"][1:]]
        self.assertEqual(presents, [(f"present.{i}.{kv}", ["batch_size", 2, "past_sequence_length + sequence_length"])
                                    for i in range(2) for kv in ("key", "value")])

    def test_a_decoder_claiming_to_be_an_encoder_decoder_fails_with_the_reason(self):
        src = os.path.join(self.tmp, "t5")
        shutil.copytree(os.path.join(self.tmp, "gpt2"), src)
        config = load_json(os.path.join(src, "config.json"))
        config["is_encoder_decoder"] = True
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f)
        out = os.path.join(self.tmp, "out-t5")
        p = run("export", src, out, "--task", self.TASK, "--no-cache")
        self.assertNotEqual(p.returncode, EXIT["ok"])
        self.assertIn("cannot tell the decoder cache shape", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(out))


@needs_hf
class KeypointDetection(TaskBesideOptimumCli, unittest.TestCase):
    """VitPose's heatmaps (Optimum's only keypoint-detection model type); transformers.js 4.3.1 has no
    keypoint-detection pipeline."""
    TASK = "keypoint-detection"
    MODELS = ("vitpose",)
    TRANSFORMERS_JS = False


@needs_hf
class TimeSeriesForecasting(TaskBesideOptimumCli, unittest.TestCase):
    """PatchTST and PatchTSMixer forecasts from past_values; no preprocessor, no transformers.js pipeline."""
    TASK = "time-series-forecasting"
    MODELS = ("patchtst", "patchtsmixer")
    TRANSFORMERS_JS = False


@needs_hf
class ReinforcementLearning(TaskBesideOptimumCli, unittest.TestCase):
    """Decision Transformer's predictions from a trajectory (states, actions, returns, timesteps); no transformers.js
    pipeline. Its last_hidden_state holds three tokens per step, and optimum-cli's package calls that axis
    sequence_length, the steps' name: ONNX Runtime's optimiser takes the two for one size, so that package fails
    in ONNX Runtime and in Optimum, with its own Reshape error. modelexport gives the axis a name of its own; the
    two files compute the same numbers where optimum-cli's runs at all, as written."""
    TASK = "reinforcement-learning"
    MODELS = ("decision_transformer",)
    TRANSFORMERS_JS = False
    OPTIMUM_CLI_VALIDATION_FAILS = True

    def test_beside_optimum_cli(self):
        ours, theirs = self.ours["decision_transformer"], self.theirs["decision_transformer"]
        self.assertEqual(set(os.listdir(ours)) - {"export_metadata.json"}, set(os.listdir(theirs)))
        mine, optimums = signature(ours), signature(theirs)
        self.assertEqual(mine["inputs"], optimums["inputs"])
        hidden = [o for o in mine["outputs"] if o["name"] == "last_hidden_state"][0]
        self.assertEqual(hidden["shape"], ["batch_size", "last_hidden_state_axis_1", 32])
        for o in optimums["outputs"]:
            if o["name"] == "last_hidden_state":
                self.assertEqual(o["shape"][1], "sequence_length")
                o["shape"][1] = "last_hidden_state_axis_1"
        self.assertEqual(mine["outputs"], optimums["outputs"])
        # optimum-cli's file as written (no graph optimisation, where it runs) against modelexport's as a client runs it.
        script = """
import json, sys, numpy as np, onnxruntime as ort
ours, theirs = sys.argv[1:]
rng = np.random.default_rng(0)
feeds = {"states": rng.standard_normal((2, 7, 11), dtype=np.float32), "actions": rng.standard_normal((2, 7, 3), dtype=np.float32),
         "returns_to_go": rng.standard_normal((2, 7, 1), dtype=np.float32), "timesteps": np.arange(14).reshape(2, 7)}
def run(path, level):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    types = {i.name: i.type for i in session.get_inputs()}
    mask = np.ones((2, 7), np.float32 if types["attention_mask"] == "tensor(float)" else np.int64)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, dict(feeds, attention_mask=mask))))
a = run(ours + "/model.onnx", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
b = run(theirs + "/model.onnx", ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
print(json.dumps({k: [list(a[k].shape), float(np.max(np.abs(a[k] - b[k])))] for k in a}))
"""
        p = subprocess.run([PYTHON, "-c", script, ours, theirs], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        compared = json.loads(p.stdout)
        self.assertEqual(compared["last_hidden_state"][0], [2, 21, 32])
        for name, (shape, diff) in compared.items():
            self.assertLessEqual(diff, 1e-4, name)

    def test_a_task_without_a_class_names_optimums_tasks_for_the_model_type(self):
        """Optimum registers decision_transformer as config.json spells it (most types with '-')."""
        out = os.path.join(self.tmp, "out-text-to-audio")
        p = run("export", os.path.join(self.tmp, "decision_transformer"), out, "--task", "text-to-audio", "--no-cache")
        self.assertEqual(p.returncode, EXIT["export_failed"], p.stderr)
        self.assertIn("model type decision_transformer has no AutoModelForTextToWaveform", p.stderr)
        self.assertIn("Optimum exports it for: feature-extraction, reinforcement-learning", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_optimum_clis_package_fails_in_its_own_clients_and_in_the_reference_check(self):
        theirs = self.theirs["decision_transformer"]
        # optimum-cli's own validation says so first, and keeps the file.
        self.assertIn("cannot be reshaped to the requested shape", self.optimum_cli_stderr)
        for runtime in ("onnxruntime", "optimum"):
            with self.subTest(runtime):
                p = run("validate", theirs, "--task", self.TASK, "--runtime", runtime, "--json")
                self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
                check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["runtime." + runtime]
                self.assertEqual(check["status"], "fail", check)
                self.assertIn("cannot be reshaped to the requested shape", check["message"])
        src = os.path.join(self.tmp, "decision_transformer")
        p = run("validate", theirs, "--task", self.TASK, "--runtime", "none", "--reference", src, timeout=600)
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        self.assertIn("FAIL  reference: ", p.stdout)
        self.assertIn("output 'last_hidden_state' axis 1 is declared 'sequence_length'", p.stdout)


# Runs both packages' model.onnx with their random draws held (htp_reference.held_copy, as the reference check and
# sweep.py hold them) on the same ids, twice as drawn; prints the held difference and whether the draws vary.
HELD_COMPARISON = """
import json, os, sys, numpy as np, onnxruntime as ort
sys.path.insert(0, os.path.join(sys.argv[3], "tools"))
import htp_reference
def session(path, hold):
    open_session = lambda p: ort.InferenceSession(p, providers=["CPUExecutionProvider"])
    return htp_reference.held_session(path, [], open_session) if hold else open_session(path)
ids = np.array([[3, 17, 5, 9, 22, 4, 8], [6, 2, 30, 11, 7, 1, 1]], dtype=np.int64)
feeds = {"input_ids": ids, "attention_mask": (ids != 1).astype(np.int64)}
out = {}
for side, pkg in (("ours", sys.argv[1]), ("theirs", sys.argv[2])):
    s = session(os.path.join(pkg, "model.onnx"), True)
    out[side] = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
drawn = session(os.path.join(sys.argv[1], "model.onnx"), False)
first, second = (drawn.run(["waveform"], feeds)[0] for _ in range(2))
print(json.dumps({"diff": {k: float(np.max(np.abs(out["ours"][k] - out["theirs"][k]))) for k in out["ours"]},
                  "shapes": {k: list(v.shape) for k, v in out["ours"].items()},
                  "draws_vary": first.shape != second.shape or bool(np.any(first != second))}))
"""


@needs_hf
class TextToAudio(TaskBesideOptimumCli, unittest.TestCase):
    """VITS's waveform from text, inferred from VitsModel as Optimum infers it. Its graph draws noise at run time
    (two RandomNormalLike nodes: the waveform's values and, through the durations, its length), so the reference
    check, and the comparison with optimum-cli's package, hold every draw at its mean on both sides; the package
    itself keeps the draws, as optimum-cli's does."""
    TASK = "text-to-audio"
    MODELS = ("vits",)
    OPTIMUM_CLI_VALIDATION_FAILS = True  # its check compares two different draws of the noise

    def test_optimum_clis_own_validation_cannot_hold_the_noise(self):
        self.assertIn("Output shapes do not match between reference model and ONNX exported model", self.optimum_cli_stderr)

    def test_the_check_held_the_draws(self):
        notes = load_json(os.path.join(self.ours["vits"], "export_metadata.json"))["reference_check"]["notes"]
        self.assertIn("the model draws random numbers (2 RandomNormalLike): both sides ran with every draw held at its mean",
                      notes)

    def test_beside_optimum_cli(self):
        ours, theirs = self.ours["vits"], self.theirs["vits"]
        self.assertEqual(set(os.listdir(ours)) - {"export_metadata.json"}, set(os.listdir(theirs)))
        self.assertEqual(signature(ours), signature(theirs))
        p = subprocess.run([PYTHON, "-c", HELD_COMPARISON, ours, theirs, REPO], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        compared = json.loads(p.stdout)
        self.assertEqual(set(compared["diff"]), {"waveform", "spectrogram"})
        for name, diff in compared["diff"].items():
            self.assertLessEqual(diff, 1e-4, name)
        self.assertTrue(compared["draws_vary"], "the package's noise is gone")

    def test_inferred_without_task_and_text_to_speech_is_its_alias(self):
        src = os.path.join(self.tmp, "vits")
        for extra in ([], ["--task", "text-to-speech"]):
            with self.subTest(extra=extra):
                out = os.path.join(self.tmp, "alias-%d" % len(extra))
                p = run("export", src, out, "--no-cache", "--no-reference-check", *extra, timeout=900)
                self.assertEqual(p.returncode, EXIT["ok"], p.stderr)
                self.assertEqual(load_json(os.path.join(out, "export_metadata.json"))["model"]["task"], self.TASK)


MUSICGEN_COMPARISON = """
import json, sys
sys.path.insert(0, sys.argv[4])
import sweep
diffs, problems = sweep.compare(sys.argv[1], sys.argv[2], sys.argv[3], "text-to-audio")
print(json.dumps({"diffs": diffs, "problems": problems}))
"""


@needs_hf
class MusicgenTextToAudio(TaskBesideOptimumCli, unittest.TestCase):
    """MusicGen's text-to-audio, inferred from MusicgenForConditionalGeneration as Optimum infers it: Optimum's own
    parts (text_encoder, encodec_decode, decoder_model, decoder_with_past_model, build_delay_pattern_mask; its
    configurations, dummy inputs and patchers), each traced with the hierarchy hooks, and the two decoders merged
    into decoder_model_merged.onnx, which transformers.js reads and optimum-cli does not write (its merge runs only
    for a -with-past task, and MusicGen has none)."""
    TASK = "text-to-audio"
    MODELS = ("musicgen",)
    FILES = {"text_encoder.onnx", "encodec_decode.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx",
             "decoder_model_merged.onnx", "build_delay_pattern_mask.onnx"}

    def test_reference_check_passed_on_every_output(self):
        meta = load_json(os.path.join(self.ours["musicgen"], "export_metadata.json"))
        self.assertEqual(meta["model"]["task"], self.TASK)
        check = meta["reference_check"]
        self.assertEqual(check["status"], "passed", check)
        self.assertEqual([step["step"] for step in check["steps"]],
                         ["text encoder", "encodec decode", "decoder", "decoder with past", "build delay pattern mask",
                          "merged decoder, first step", "merged decoder, cached"])
        for step in check["steps"]:
            self.assertTrue(step["outputs"] and all(o["passed"] for o in step["outputs"]), step)
        # The decoder's logits are batch x codebooks rows, which Optimum's configuration calls batch_size, the
        # mask's: the axis gets a name of its own, as in a one-file export.
        logits = next(o for o in signature(self.ours["musicgen"], "decoder_model_merged.onnx")["outputs"]
                      if o["name"] == "logits")
        self.assertEqual(logits["shape"][0], "logits_axis_0")

    def test_beside_optimum_cli(self):
        ours, theirs = self.ours["musicgen"], self.theirs["musicgen"]
        onnx = lambda d: {f for f in os.listdir(d) if f.endswith(".onnx")}  # noqa: E731
        self.assertEqual(onnx(ours), self.FILES)
        self.assertEqual(onnx(theirs), self.FILES - {"decoder_model_merged.onnx"})
        p = subprocess.run([PYTHON, "-c", MUSICGEN_COMPARISON, ours, theirs, os.path.join(self.tmp, "musicgen"),
                            os.path.dirname(os.path.abspath(__file__))], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        compared = json.loads(p.stdout)
        self.assertEqual(compared["problems"], [])
        self.assertEqual(set(compared["diffs"]), self.FILES - {"decoder_model_merged.onnx"})
        for name, diff in compared["diffs"].items():
            self.assertLessEqual(diff, 1e-4, name)

    def test_transformers_js_generates_audio_from_ours_only(self):
        """transformers.js' MusicgenForConditionalGeneration reads the merged decoder: it generates a waveform
        from modelexport's package and cannot load optimum-cli's."""
        for pkg, works in ((self.ours["musicgen"], True), (self.theirs["musicgen"], False)):
            with self.subTest(pkg):
                p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "tjs_seq2seq.mjs"), pkg, "--task",
                                    self.TASK, "--subfolder", ""], capture_output=True, text=True, timeout=600)
                if works:
                    self.assertEqual(p.returncode, 0, p.stderr[-3000:])
                    shape = json.loads(p.stdout)["result"]["audio_shape"]
                    self.assertEqual(shape[:2], [1, 1])
                    self.assertGreater(shape[2], 0)
                else:
                    self.assertNotEqual(p.returncode, 0)
                    self.assertIn("decoder_model_merged.onnx", p.stderr)

    def test_variants_of_every_file(self):
        """--variants q8,ort: a quantized file and an ORT-format model of each of the six, as transformers.js's
        dtype option names them; verify and validate --strict hold the package."""
        out = os.path.join(self.tmp, "variants")
        p = run("export", os.path.join(self.tmp, "musicgen"), out, "--no-cache", "--no-reference-check",
                "--variants", "q8,ort", timeout=900)
        self.assertEqual(p.returncode, EXIT["ok"], p.stderr)
        for name in self.FILES:
            stem = name[:-len(".onnx")]
            self.assertTrue(os.path.isfile(os.path.join(out, stem + "_quantized.onnx")), stem)
            self.assertTrue(os.path.isfile(os.path.join(out, stem + ".ort")), stem)
        self.assertEqual(run("verify", out).returncode, EXIT["ok"])
        p = run("validate", out, "--strict", "--runtime", "none")
        self.assertEqual(p.returncode, EXIT["ok"], p.stdout + p.stderr)

    def test_inferred_without_task(self):
        out = os.path.join(self.tmp, "inferred")
        p = run("export", os.path.join(self.tmp, "musicgen"), out, "--no-cache", "--no-reference-check", timeout=900)
        self.assertEqual(p.returncode, EXIT["ok"], p.stderr)
        self.assertEqual(load_json(os.path.join(out, "export_metadata.json"))["model"]["task"], self.TASK)


class RefusedTasks(unittest.TestCase):
    """Optimum's tasks modelexport does not export: a --task naming one (or its alias) is a usage error giving the
    reason, in export and in validate, and nothing is written."""

    def test_usage_error_names_the_reason(self):
        tmp = tempfile.mkdtemp(prefix="modelexport-refused-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        src = os.path.join(tmp, "speecht5")
        os.mkdir(src)
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump({"model_type": "speecht5", "is_encoder_decoder": True, "architectures": ["SpeechT5ForTextToSpeech"]}, f)
        for task, reason in (("text-to-audio", "decoder_postnet_and_vocoder"), ("text-to-speech", "decoder_postnet_and_vocoder")):
            with self.subTest(task):
                out = os.path.join(tmp, "out-" + task)
                p = run("export", src, out, "--task", task)
                self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
                self.assertIn(f"task '{task}' is not exported by modelexport", p.stderr)
                self.assertIn(reason, p.stderr)
                self.assertFalse(os.path.exists(out))
                p = run("validate", src, "--task", task, "--runtime", "none", "--json")
                check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["task.known"]
                self.assertEqual(check["status"], "fail")
                self.assertIn(reason, check["message"])

    @needs_hf
    def test_a_task_the_model_type_has_no_class_for_names_the_tasks_it_has(self):
        """A multimodal checkpoint (Gemma 3: text and vision configs) passes the modality check for an image
        task, but transformers has no AutoModelForImageClassification for it: one line naming config.json,
        the class and the tasks Optimum exports for the model type, not transformers' traceback."""
        tmp = tempfile.mkdtemp(prefix="modelexport-noclass-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        src, out = os.path.join(tmp, "gemma3"), os.path.join(tmp, "out")
        subprocess.run([PYTHON, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import sweep;"
                        "sweep.build_source('gemma3', 'text-generation-with-past', sys.argv[2])",
                        os.path.dirname(os.path.abspath(__file__)), src], check=True, capture_output=True, timeout=600)
        p = run("export", src, out, "--task", "image-classification", "--no-cache", timeout=600)
        self.assertEqual(p.returncode, EXIT["export_failed"], p.stderr)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn(os.path.join(src, "config.json") + ": model type gemma3 has no AutoModelForImageClassification",
                      p.stderr)
        self.assertIn("Optimum exports it for: feature-extraction", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
