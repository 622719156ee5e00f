"""The compatibility matrix (issue 5): every example package validates --strict,
runs in ONNX Runtime with the torch model's outputs, and text packages give the
torch model's answers through a transformers.js pipeline."""
import json
import os
import subprocess
import unittest

from common import EXAMPLES, NODE, RUNTIME_DIR, SOURCES, load_json, run

PACKAGES = ["text-classification", "token-classification", "question-answering", "feature-extraction", "fill-mask",
            "image-classification", "object-detection", "text-classification-prebuilt"]


def node(script, *args):
    p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, script), *args], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def reference(name):
    return load_json(os.path.join(SOURCES, "_reference", name + ".json"))


class Matrix(unittest.TestCase):
    def test_every_package_validates_strict_with_the_onnxruntime_check(self):
        for name in PACKAGES:
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "onnxruntime", "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                report = json.loads(p.stdout)
                self.assertTrue(report["ok"])
                self.assertEqual(report["task"], reference(name)["task"])
                checks = {c["id"]: c["status"] for c in report["checks"]}
                self.assertEqual(checks["runtime.onnxruntime"], "pass")
                self.assertEqual(checks["onnx.checker"], "pass")

    def test_onnxruntime_outputs_equal_torch_outputs(self):
        for name in PACKAGES:
            with self.subTest(name):
                ref_path = os.path.join(SOURCES, "_reference", name + ".json")
                out = node("ort_check.mjs", os.path.join(EXAMPLES, name), "--inputs", ref_path)["outputs"]
                ref = reference(name)["outputs"]
                self.assertEqual(set(out), set(ref))
                for k, v in ref.items():
                    self.assertEqual(out[k]["shape"], v["shape"], k)
                    worst = max(abs(a - b) for a, b in zip(out[k]["data"], v["data"]))
                    self.assertLess(worst, 1e-4, k)

    def test_transformers_js_pipelines_give_the_torch_models_answers(self):
        cases = {
            "text-classification": ([], lambda r, ref: self.assertEqual(r["label"], ref["label"])),
            "text-classification-prebuilt": ([], lambda r, ref: self.assertEqual(r["label"], ref["label"])),
            "token-classification": ([], lambda r, ref: self.assertEqual([t["entity"] for t in r["tokens"]], ref["labels"])),
            "question-answering": (["--context"], lambda r, ref: self.assertEqual(r["answer"], ref["best_span"]["answer"])),
            "fill-mask": ([], lambda r, ref: self.assertEqual(r["token_str"], ref["token"])),
            "feature-extraction": ([], lambda r, ref: [self.assertAlmostEqual(a, b, delta=1e-4) for a, b in zip(r["first"], ref["first"])]),
        }
        for name, (extra, check) in cases.items():
            with self.subTest(name):
                ref = reference(name)["pipeline"]
                task = reference(name)["task"]
                args = [os.path.join(EXAMPLES, name), "--task", task, "--text", ref.get("question", ref.get("text"))]
                if extra:
                    args += ["--context", ref["context"]]
                result = node("tjs_pipeline.mjs", *args)
                self.assertEqual(result["runtime"], "transformers.js")
                check(result["result"], ref)

    def test_validate_runs_transformers_js_and_auto_says_which_runtime(self):
        p = run("validate", os.path.join(EXAMPLES, "fill-mask"), "--strict", "--runtime", "transformers-js", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(checks["runtime.transformers-js"]["status"], "pass")
        p = run("validate", os.path.join(EXAMPLES, "image-classification"), "--runtime", "auto")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("runtime check: onnxruntime (auto)", p.stderr)

    def test_optimum_runtime_reports_that_it_is_not_installed(self):
        p = run("validate", os.path.join(EXAMPLES, "text-classification"), "--runtime", "optimum", "--json",
                env={"MODELEXPORT_PYTHON": "/usr/bin/python3"})
        self.assertEqual(p.returncode, 7, p.stdout)
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(checks["runtime.optimum"]["status"], "fail")
        self.assertIn("optimum is not installed", checks["runtime.optimum"]["message"])


if __name__ == "__main__":
    unittest.main()
