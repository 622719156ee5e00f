"""Audio classification, CTC speech recognition, ResNet and transformers.js for every task.

The packages hf-audio-classification (Wav2Vec2ForSequenceClassification), hf-ctc (Wav2Vec2ForCTC)
and hf-resnet (ResNetForImageClassification) are exported from genuine transformers models
(tests/fixtures/make_hf_models.py). Each runs in ONNX Runtime and Optimum with torch's outputs at two
input sizes (audio: the export's one second and 12345 samples; ResNet: its 32x32 crop and 40x48), has
optimum-cli's input/output names and axes, and every package of the matrix gives torch's answer
through a transformers.js pipeline. audio-classification and ctc are the plain-torch mirrors of the
two Wav2Vec2 heads (tests/fixtures/make_models.py, factory path, model.safetensors). The CTC heads are
initialised so that the per-frame argmax ids differ from frame to frame with clear margins, so
comparing ids compares something. UnseenAudioSource makes a source no fixture has at test time.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from common import EXAMPLES, REPO, SOURCES, assert_outputs_close, load_json, node, run
from test_optimum import HF_SOURCES, PYTHON, needs_hf, optimum, python_json

sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
sys.path.insert(0, os.path.join(REPO, "tools"))
import htp_weights  # noqa: E402
import make_models  # noqa: E402

PACKAGES = {"hf-audio-classification": ("audio-classification", "ORTModelForAudioClassification"),
            "hf-ctc": ("automatic-speech-recognition", "ORTModelForCTC"),
            "hf-resnet": ("image-classification", "ORTModelForImageClassification")}


# The plain-torch mirrors (factory path) and the genuine package of the same head.
MIRRORS = {"audio-classification": "hf-audio-classification", "ctc": "hf-ctc"}


def reference_path(name):
    """The torch reference of a package: hf-<name> from hf-sources, the mirrors from sources."""
    if name.startswith("hf-"):
        return os.path.join(HF_SOURCES, "_reference", name[3:] + ".json")
    return os.path.join(SOURCES, "_reference", name + ".json")


def reference(name):
    return load_json(reference_path(name))


def reference_sizes(test, name):
    """(label, reference file) for the export's input size and for the other size."""
    tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(reference(name)["other_size"], tmp)
    tmp.close()
    test.addCleanup(os.unlink, tmp.name)
    return [("export size", reference_path(name)), ("other size", tmp.name)]


def frame_ids(logits):
    """Per-frame argmax ids of CTC logits {"shape": [1, frames, vocab], "data"}."""
    frames, width = logits["shape"][1:]
    rows = [logits["data"][f * width:(f + 1) * width] for f in range(frames)]
    return [row.index(max(row)) for row in rows]


def assert_runs_like_torch(test, pkg, name, cls=None):
    """ONNX Runtime (and Optimum's cls) give torch's outputs within 1e-4 at both input sizes; for
    CTC, torch's per-frame argmax ids, which are not one id repeated."""
    for size, path in reference_sizes(test, name):
        with test.subTest(name=name, size=size):
            expected = load_json(path)["outputs"]
            got = node("ort_check.mjs", pkg, "--inputs", path)["outputs"]
            assert_outputs_close(test, got, expected, f"{name} {size}")
            if cls:
                assert_outputs_close(test, optimum(pkg, cls, "--inputs", path)["outputs"], expected, f"{name} {size} optimum")
            if reference(name)["task"] == "automatic-speech-recognition":
                ids = frame_ids(expected["logits"])
                test.assertGreaterEqual(len(set(ids)), 3, f"{name} {size}: torch's ids are nearly constant: {ids}")
                test.assertEqual(frame_ids(got["logits"]), ids, f"{name} {size}")


@needs_hf
class AudioPackages(unittest.TestCase):
    def test_validate_strict_infers_the_task_and_runs_onnxruntime(self):
        for name, (task, cls) in PACKAGES.items():
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "onnxruntime", "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                report = json.loads(p.stdout)
                self.assertEqual((report["task"], report["optimum_class"]), (task, cls))
                checks = {c["id"]: c["status"] for c in report["checks"]}
                self.assertEqual(checks["runtime.onnxruntime"], "pass")
                if name != "hf-resnet":
                    self.assertEqual(checks["preprocessing.feature_extractor"], "pass")
                if name != "hf-ctc":
                    self.assertEqual(checks["labels.width"], "pass")

    def test_onnxruntime_and_optimum_equal_torch_at_two_input_sizes(self):
        for name, (_, cls) in PACKAGES.items():
            assert_runs_like_torch(self, os.path.join(EXAMPLES, name), name, cls)

    def test_validate_with_optimum(self):
        for name in PACKAGES:
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "optimum")
                self.assertEqual(p.returncode, 0, p.stderr)

    def test_resnet_batch_norm_is_folded(self):
        code = ("import collections, json, sys, onnx; m = onnx.load(sys.argv[1]); "
                "print(json.dumps(collections.Counter(n.op_type for n in m.graph.node)))")
        ops = python_json(code, os.path.join(EXAMPLES, "hf-resnet", "model.onnx"))
        self.assertNotIn("BatchNormalization", ops)
        self.assertIn("Conv", ops)

    def test_a_feature_extractor_without_sampling_rate_is_a_warning(self):
        tmp = tempfile.mkdtemp(prefix="modelexport-audio-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        pkg = os.path.join(tmp, "pkg")
        shutil.copytree(os.path.join(EXAMPLES, "hf-audio-classification"), pkg)
        pre = load_json(os.path.join(pkg, "preprocessor_config.json"))
        del pre["sampling_rate"]
        with open(os.path.join(pkg, "preprocessor_config.json"), "w") as f:
            json.dump(pre, f)
        self.assertEqual(run("validate", pkg).returncode, 0)
        p = run("validate", pkg, "--strict", "--json")
        self.assertEqual(p.returncode, 7, p.stdout)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["preprocessing.feature_extractor"]
        self.assertEqual(check["severity"], "warning")
        self.assertIn("preprocessor_config.json: no positive integer \"sampling_rate\"", check["message"])


class AudioMirror(unittest.TestCase):
    """The plain-torch Wav2Vec2 classifier and CTC head (factory path, no transformers; model.safetensors)
    export to the genuine models' signature, files and module paths and give their torch outputs in ONNX
    Runtime at two lengths; the genuine CTC model's weights, in either key style, load into the mirror."""

    def test_mirror_outputs_equal_torch_at_two_lengths(self):
        for name in MIRRORS:
            assert_runs_like_torch(self, os.path.join(EXAMPLES, name), name)

    def test_on_debian_torch_without_transformers(self):
        """model.safetensors beside modeling.py; Debian's torch 1.13 (no transformers, no safetensors
        package) exports the same signature and torch's outputs."""
        tmp = tempfile.mkdtemp(prefix="modelexport-audio-torch113-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        for name in MIRRORS:
            with self.subTest(name):
                self.assertEqual(sorted(f for f in os.listdir(os.path.join(SOURCES, name)) if f.startswith("model")),
                                 ["model.safetensors", "modeling.py"])
                pkg = os.path.join(tmp, name)
                factory = "modeling.py:Wav2Vec2ForCTC" if name == "ctc" else "modeling.py:build"
                run("export", os.path.join(SOURCES, name), pkg, "--model", factory, "--python", "/usr/bin/python3", check=0)
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertTrue(meta["export_context"]["torch_version"].startswith("1.13"), meta["export_context"])
                self.assertEqual(meta["signature"], load_json(os.path.join(EXAMPLES, name, "export_metadata.json"))["signature"])
                assert_runs_like_torch(self, pkg, name)

    @needs_hf
    def test_optimum_loads_the_mirrors(self):
        for name, genuine in MIRRORS.items():
            with self.subTest(name):
                cls = PACKAGES[genuine][1]
                out = optimum(os.path.join(EXAMPLES, name), cls, "--inputs", reference_path(name))
                assert_outputs_close(self, out["outputs"], reference(name)["outputs"], f"{name} optimum")

    @needs_hf
    def test_same_signature_files_and_module_paths_as_the_genuine_model(self):
        for name, genuine_name in MIRRORS.items():
            with self.subTest(name):
                mirror = load_json(os.path.join(EXAMPLES, name, "export_metadata.json"))
                genuine = load_json(os.path.join(EXAMPLES, genuine_name, "export_metadata.json"))
                self.assertEqual(mirror["signature"], genuine["signature"])
                self.assertEqual(mirror["model"]["class"], genuine["model"]["class"])
                self.assertEqual(mirror["model"]["task"], genuine["model"]["task"])
                self.assertEqual(sorted(mirror["files"]), sorted(genuine["files"]))
                # Including the weight norm's parametrization modules of the positional convolution.
                self.assertEqual(set(mirror["modules"]), set(genuine["modules"]))
                self.assertEqual(mirror["statistics"]["coverage"], 100.0)

    @needs_hf
    def test_the_genuine_weights_load_into_the_mirror(self):
        """hf-sources/ctc (transformers' save_pretrained) plus the mirror's modeling.py, factory = the
        class: torch's outputs of the genuine model, with transformers' key names
        (parametrizations.weight.original0/1) and with the older weight_g/weight_v of many Hub checkpoints."""
        tmp = tempfile.mkdtemp(prefix="modelexport-ctc-weights-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        state, _ = htp_weights.read_state_dict(os.path.join(HF_SOURCES, "ctc"))
        legacy = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
                  for k, v in state.items()}
        self.assertNotEqual(set(legacy), set(state))
        for keys, weights in (("transformers", None), ("weight_g/weight_v", legacy)):
            with self.subTest(keys):
                src = os.path.join(tmp, keys.replace("/", "-"))
                shutil.copytree(os.path.join(HF_SOURCES, "ctc"), src)
                shutil.copy(os.path.join(SOURCES, "ctc", "modeling.py"), src)
                if weights is not None:
                    make_models.write_safetensors(os.path.join(src, "model.safetensors"), weights)
                pkg = os.path.join(tmp, "pkg-" + os.path.basename(src))
                run("export", src, pkg, "--model", "modeling.py:Wav2Vec2ForCTC", check=0)
                assert_runs_like_torch(self, pkg, "hf-ctc")


@needs_hf
class AudioBesideOptimumCli(unittest.TestCase):
    """The same input/output names and axes as optimum-cli, including the CTC frame axis formula."""

    def test_same_signature_as_optimum_cli(self):
        tmp = tempfile.mkdtemp(prefix="modelexport-audio-cli-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        cli = os.path.join(os.path.dirname(PYTHON), "optimum-cli")
        for name, (task, _) in PACKAGES.items():
            with self.subTest(name):
                out = os.path.join(tmp, name)
                p = subprocess.run([cli, "export", "onnx", "--model", os.path.join(HF_SOURCES, name[3:]), "--task", task,
                                    out], capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"),
                                   timeout=900)
                self.assertEqual(p.returncode, 0, p.stderr[-3000:])
                ours = json.loads(run("inspect", os.path.join(EXAMPLES, name, "model.onnx"), "--json", check=0).stdout)
                theirs = json.loads(run("inspect", os.path.join(out, "model.onnx"), "--json", check=0).stdout)
                self.assertEqual(ours["signature"], theirs["signature"])
                # optimum-cli re-saves the tokenizer through the slow Wav2Vec2CTCTokenizer, which writes no
                # tokenizer.json; modelexport copies the source's, which transformers.js needs.
                extra = {"export_metadata.json", "tokenizer.json"} if name == "hf-ctc" else {"export_metadata.json"}
                self.assertEqual(set(os.listdir(os.path.join(EXAMPLES, name))) - extra, set(os.listdir(out)))


# Torch's answer for the pixel_values a transformers.js processor produced: the top label, or (detection)
# every query whose best class is a real one, the rule of transformers.js's post-processing, with boxes
# relative to the image (the pipeline's percentage mode; its pixel boxes are truncated to integers).
TORCH_VISION = r'''
import json, sys, torch, transformers
src, task, path = sys.argv[1:4]
doc = json.load(open(path))
pixels = doc["processed"]["pixel_values"]
pixels = torch.tensor(pixels["data"], dtype=torch.float32).reshape(pixels["dims"])
auto = transformers.AutoModelForImageClassification if task == "image-classification" else transformers.AutoModelForObjectDetection
model = auto.from_pretrained(src, local_files_only=True).eval()
with torch.no_grad():
    out = model(pixel_values=pixels)
labels = model.config.id2label
if task == "image-classification":
    print(json.dumps({"label": labels[int(out.logits[0].argmax())]}))
    sys.exit(0)
found = []
for logit, box in zip(out.logits[0], out.pred_boxes[0]):
    best = int(logit.argmax())
    if best == logit.shape[-1] - 1:
        continue
    cx, cy, w, h = box.tolist()
    found.append({"label": labels[best], "score": float(logit.softmax(-1)[best]),
                  "box": [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]})
print(json.dumps({"detections": found}))
'''


@needs_hf
class TransformersJsEveryTask(unittest.TestCase):
    """transformers.js pipelines on the vision and audio packages give torch's answers."""

    def tjs(self, name, task, *extra):
        out = node("tjs_pipeline.mjs", os.path.join(EXAMPLES, name), "--task", task, *extra)
        self.assertEqual(out["runtime"], "transformers.js")
        return dict(out["result"], processed=out.get("processed"))

    def torch_vision(self, name, task, result):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(result, f)
            f.flush()
            source = os.path.join(HF_SOURCES, name[3:]) if name.startswith("hf-") else None
            return python_json(TORCH_VISION, source, task, f.name)

    def test_image_classification(self):
        for name in ["hf-image-classification", "hf-resnet"]:
            for image in ["64x48", "30x50"]:
                with self.subTest(name=name, image=image):
                    result = self.tjs(name, "image-classification", "--image", image)
                    self.assertEqual(result["label"], self.torch_vision(name, "image-classification", result)["label"])

    def test_object_detection_threshold_zero(self):
        result = self.tjs("hf-object-detection", "object-detection")
        expected = self.torch_vision("hf-object-detection", "object-detection", result)["detections"]
        got = result["detections"]
        self.assertGreater(len(got), 0)
        self.assertEqual([d["label"] for d in got], [d["label"] for d in expected])
        for a, b in zip(got, expected):
            self.assertAlmostEqual(a["score"], b["score"], delta=1e-4)
            box = [a["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")]
            for x, y in zip(box, b["box"]):
                self.assertAlmostEqual(x, y, delta=1e-4)

    def test_audio_classification_label_and_score(self):
        for name in ["hf-audio-classification", "audio-classification"]:
            with self.subTest(name):
                ref = reference(name)["pipeline"]
                result = self.tjs(name, "audio-classification", "--samples", str(ref["samples"]))
                self.assertEqual(result["label"], ref["label"])
                self.assertAlmostEqual(result["score"], ref["score"], delta=1e-4)
                self.assertEqual(result["processed"]["input_values"]["dims"], [1, ref["samples"]])

    def test_ctc_frame_ids_and_text(self):
        # transformers' Wav2Vec2CTCTokenizer.decode collapses repeated ids before it drops the blank
        # (<pad>), so "h <pad> h" is "hh"; transformers.js (like the tokenizers library's decode of
        # tokenizer.json) drops special tokens first, so the same ids read "h". The pipeline's text is
        # therefore transformers' decoding of the ids without their blanks.
        code = ("import json, sys, transformers; t = transformers.Wav2Vec2CTCTokenizer.from_pretrained(sys.argv[1]); "
                "ids = json.loads(sys.argv[2]); print(json.dumps(t.decode([i for i in ids if i != t.pad_token_id]).strip()))")
        for name, source in [("hf-ctc", os.path.join(HF_SOURCES, "ctc")), ("ctc", os.path.join(SOURCES, "ctc"))]:
            with self.subTest(name):
                ref = reference(name)["pipeline"]
                # Several letters, the blank and the word delimiter: not one id repeated.
                self.assertGreaterEqual(len(set(ref["ids"])), 3, ref["ids"])
                result = self.tjs(name, "automatic-speech-recognition", "--samples", str(ref["samples"]))
                self.assertEqual(result["ids"], ref["ids"])
                text_without_blanks = python_json(code, source, json.dumps(ref["ids"]))
                self.assertGreater(len(set(text_without_blanks) - {" "}), 3, text_without_blanks)
                self.assertEqual(result["text"], text_without_blanks)

    def test_validate_runs_transformers_js_for_every_task(self):
        for name in ["hf-image-classification", "hf-object-detection", "hf-audio-classification", "hf-ctc", "hf-resnet",
                     "audio-classification", "ctc"]:
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "transformers-js", "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                checks = {c["id"]: c["status"] for c in json.loads(p.stdout)["checks"]}
                self.assertEqual(checks["runtime.transformers-js"], "pass")


# A source no fixture or example has: WavLM (relative position buckets, a layer-normed convolution
# stack, stable layer norm), 8 kHz, four labels, saved with save_pretrained (model.safetensors) by
# transformers; the first seed whose top label is clear at every clip length. Also writes torch's
# logits for noise of each length (ort_check.mjs --inputs files).
UNSEEN_SOURCE = r'''
import json, os, sys, torch, transformers
src, refs, lengths = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3].split(",")]
transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
labels = ["up", "down", "left", "right"]
extractor = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=8000, padding_value=0.0,
                                                  do_normalize=True, return_attention_mask=True)
config = transformers.WavLMConfig(
    hidden_size=12, num_hidden_layers=2, num_attention_heads=3, intermediate_size=20, hidden_act="gelu",
    conv_dim=[6, 6], conv_stride=[4, 3], conv_kernel=[8, 3], conv_bias=True, feat_extract_norm="layer",
    do_stable_layer_norm=True, num_conv_pos_embeddings=6, num_conv_pos_embedding_groups=3, num_buckets=16,
    max_bucket_distance=40, classifier_proj_size=5, initializer_range=0.5, mask_time_prob=0.0,
    id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
    architectures=["WavLMForSequenceClassification"])
tones = [extractor(torch.sin(torch.arange(n, dtype=torch.float64) * 0.05).float().numpy(), sampling_rate=8000,
                   return_tensors="pt")["input_values"] for n in lengths]
for seed in range(100):
    torch.manual_seed(seed)
    model = transformers.WavLMForSequenceClassification(config).eval()
    with torch.no_grad():
        tops = [model(input_values=v).logits[0].topk(2).values for v in tones]
    if min(float(t[0] - t[1]) for t in tops) > 1e-2:
        break
model.save_pretrained(src, safe_serialization=True)
extractor.save_pretrained(src)
entry = lambda t: {"shape": list(t.shape), "data": t.flatten().tolist()}
generator = torch.Generator().manual_seed(2)
for n in lengths:
    values = torch.randn((1, n), generator=generator)
    with torch.no_grad():
        logits = model(input_values=values).logits
    with open(os.path.join(refs, "noise-%d.json" % n), "w") as f:
        json.dump({"inputs": {"input_values": dict(entry(values), dtype="float32")}, "outputs": {"logits": entry(logits)}}, f)
print(json.dumps({"seed": seed}))
'''

# Torch's top label and score for the input_values a transformers.js audio processor prepared.
TORCH_AUDIO = r'''
import json, sys, torch, transformers
src, path = sys.argv[1:3]
values = json.load(open(path))["processed"]["input_values"]
values = torch.tensor(values["data"], dtype=torch.float32).reshape(values["dims"])
model = transformers.AutoModelForAudioClassification.from_pretrained(src, local_files_only=True).eval()
with torch.no_grad():
    probabilities = model(input_values=values).logits[0].softmax(-1)
best = int(probabilities.argmax())
print(json.dumps({"label": model.config.id2label[best], "score": float(probabilities[best])}))
'''


@needs_hf
class UnseenAudioSource(unittest.TestCase):
    """A Wav2Vec2-style source the tests never saw (Hugging Face names,
    model.safetensors, made at test time) exports with its task inferred, validates --strict, and
    classifies clips of lengths other than the export's dummy length in transformers.js as torch does."""

    LENGTHS = (5555, 12345)   # the dummy length is one second at the extractor's 8 kHz

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-unseen-audio-")
        cls.src = os.path.join(cls.tmp, "wavlm-keyword-spotter")
        cls.pkg = os.path.join(cls.tmp, "pkg")
        python_json(UNSEEN_SOURCE, cls.src, cls.tmp, ",".join(map(str, cls.LENGTHS)))
        cls.export = run("export", cls.src, cls.pkg)   # no --task, no --model

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exports_with_the_task_inferred_and_validates_strict(self):
        self.assertEqual(sorted(os.listdir(self.src)), ["config.json", "model.safetensors", "preprocessor_config.json"])
        self.assertEqual(self.export.returncode, 0, self.export.stderr)
        meta = load_json(os.path.join(self.pkg, "export_metadata.json"))
        self.assertEqual((meta["model"]["class"], meta["model"]["task"], meta["model"]["optimum_class"]),
                         ("WavLMForSequenceClassification", "audio-classification", "ORTModelForAudioClassification"))
        self.assertEqual(meta["signature"]["inputs"][0]["shape"], ["batch_size", "sequence_length"])
        self.assertEqual(meta["statistics"]["coverage"], 100.0)
        for runtime in ("onnxruntime", "transformers-js"):
            with self.subTest(runtime):
                p = run("validate", self.pkg, "--strict", "--runtime", runtime, "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                checks = {c["id"]: c["status"] for c in json.loads(p.stdout)["checks"]}
                self.assertEqual(checks["runtime." + runtime], "pass")
                self.assertEqual(checks["preprocessing.feature_extractor"], "pass")

    def test_transformers_js_classifies_clips_of_any_length_as_torch_does(self):
        self.assertEqual(self.export.returncode, 0, self.export.stderr)
        for samples in self.LENGTHS:
            with self.subTest(samples=samples):
                out = node("tjs_pipeline.mjs", self.pkg, "--task", "audio-classification", "--samples", samples)
                self.assertEqual(out["processed"]["input_values"]["dims"], [1, samples])
                with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                    json.dump(out, f)
                    f.flush()
                    expected = python_json(TORCH_AUDIO, self.src, f.name)
                self.assertEqual(out["result"]["label"], expected["label"])
                self.assertAlmostEqual(out["result"]["score"], expected["score"], delta=1e-4)

    def test_onnxruntime_logits_equal_torch_at_two_lengths(self):
        self.assertEqual(self.export.returncode, 0, self.export.stderr)
        for samples in self.LENGTHS:
            with self.subTest(samples=samples):
                path = os.path.join(self.tmp, "noise-%d.json" % samples)
                got = node("ort_check.mjs", self.pkg, "--inputs", path)["outputs"]
                assert_outputs_close(self, got, load_json(path)["outputs"], f"{samples} samples")


if __name__ == "__main__":
    unittest.main()
