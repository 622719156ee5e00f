"""Audio classification, CTC speech recognition, ResNet and transformers.js for every task (issue 14).

The packages hf-audio-classification (Wav2Vec2ForSequenceClassification), hf-ctc (Wav2Vec2ForCTC)
and hf-resnet (ResNetForImageClassification) are exported from genuine transformers models
(tests/fixtures/make_hf_models.py). Each runs in ONNX Runtime and Optimum with torch's outputs at two
input sizes (audio: the export's one second and 12345 samples; ResNet: its 32x32 crop and 40x48), has
optimum-cli's input/output names and axes, and every package of the matrix gives torch's answer
through a transformers.js pipeline.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from common import EXAMPLES, SOURCES, load_json, node, run
from test_optimum import HF_SOURCES, PYTHON, Close, needs_hf, optimum, python_json

PACKAGES = {"hf-audio-classification": ("audio-classification", "ORTModelForAudioClassification"),
            "hf-ctc": ("automatic-speech-recognition", "ORTModelForCTC"),
            "hf-resnet": ("image-classification", "ORTModelForImageClassification")}


def reference(name):
    return load_json(os.path.join(HF_SOURCES, "_reference", name[3:] + ".json"))


def reference_sizes(name):
    """(label, reference file) for the export's input size and for the other size."""
    path = os.path.join(HF_SOURCES, "_reference", name[3:] + ".json")
    tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(reference(name)["other_size"], tmp)
    tmp.close()
    return [("export size", path), ("other size", tmp.name)]


@needs_hf
class AudioPackages(unittest.TestCase, Close):
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
            for size, path in reference_sizes(name):
                with self.subTest(name=name, size=size):
                    self.addCleanup(lambda p=path: p.startswith(HF_SOURCES) or os.unlink(p))
                    expected = load_json(path)["outputs"]
                    pkg = os.path.join(EXAMPLES, name)
                    self.assert_outputs_close(node("ort_check.mjs", pkg, "--inputs", path)["outputs"], expected, name)
                    self.assert_outputs_close(optimum(pkg, cls, "--inputs", path)["outputs"], expected, name)

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


class AudioMirror(unittest.TestCase, Close):
    """The plain-torch Wav2Vec2 classifier (modeling.py:build, no transformers) exports to the genuine
    model's signature and module paths and gives its torch outputs in ONNX Runtime at two lengths."""

    def test_mirror_outputs_equal_torch_at_two_lengths(self):
        pkg = os.path.join(EXAMPLES, "audio-classification")
        ref_path = os.path.join(SOURCES, "_reference", "audio-classification.json")
        self.assert_outputs_close(node("ort_check.mjs", pkg, "--inputs", ref_path)["outputs"],
                                  load_json(ref_path)["outputs"], "export length")
        self.assertEqual(node("ort_check.mjs", pkg)["inputs"]["input_values"], [1, 12345])

    @needs_hf
    def test_optimum_loads_the_mirror(self):
        ref_path = os.path.join(SOURCES, "_reference", "audio-classification.json")
        out = optimum(os.path.join(EXAMPLES, "audio-classification"), "ORTModelForAudioClassification", "--inputs", ref_path)
        self.assert_outputs_close(out["outputs"], load_json(ref_path)["outputs"], "optimum")

    @needs_hf
    def test_same_signature_and_module_paths_as_the_genuine_model(self):
        mirror = load_json(os.path.join(EXAMPLES, "audio-classification", "export_metadata.json"))
        genuine = load_json(os.path.join(EXAMPLES, "hf-audio-classification", "export_metadata.json"))
        self.assertEqual(mirror["signature"], genuine["signature"])
        self.assertEqual(mirror["model"]["class"], genuine["model"]["class"])
        # transformers' weight norm on the positional convolution adds parametrization modules.
        extra = {p for p in genuine["modules"] if ".parametrizations" in p}
        self.assertEqual(set(mirror["modules"]), set(genuine["modules"]) - extra)
        self.assertEqual(mirror["statistics"]["coverage"], 100.0)


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

    def test_audio_classification_label(self):
        ref = reference("hf-audio-classification")["pipeline"]
        result = self.tjs("hf-audio-classification", "audio-classification", "--samples", str(ref["samples"]))
        self.assertEqual(result["label"], ref["label"])
        self.assertEqual(result["processed"]["input_values"]["dims"], [1, ref["samples"]])

    def test_ctc_frame_ids_and_text(self):
        ref = reference("hf-ctc")["pipeline"]
        result = self.tjs("hf-ctc", "automatic-speech-recognition", "--samples", str(ref["samples"]))
        self.assertEqual(result["ids"], ref["ids"])
        # transformers' own CTC decoding of the same ids gives the pipeline's text.
        code = ("import json, sys, transformers; t = transformers.Wav2Vec2CTCTokenizer.from_pretrained(sys.argv[1]); "
                "print(json.dumps(t.decode(json.loads(sys.argv[2])).strip()))")
        self.assertEqual(result["text"], python_json(code, os.path.join(HF_SOURCES, "ctc"), json.dumps(ref["ids"])))

    def test_validate_runs_transformers_js_for_every_task(self):
        for name in ["hf-image-classification", "hf-object-detection", "hf-audio-classification", "hf-ctc", "hf-resnet"]:
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "transformers-js", "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                checks = {c["id"]: c["status"] for c in json.loads(p.stdout)["checks"]}
                self.assertEqual(checks["runtime.transformers-js"], "pass")


if __name__ == "__main__":
    unittest.main()
