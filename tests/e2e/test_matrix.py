"""The compatibility matrix: every example package validates --strict,
runs in ONNX Runtime with the torch model's outputs, and text packages give the
torch model's answers through a transformers.js pipeline."""
import json
import os
import unittest

from common import EXAMPLES, SOURCES, assert_outputs_close, load_json, node, run

PACKAGES = ["text-classification", "token-classification", "question-answering", "feature-extraction", "fill-mask",
            "image-classification", "object-detection", "text-classification-prebuilt"]


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
                assert_outputs_close(self, out, reference(name)["outputs"], name)

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

    def test_embedded_hierarchy_changes_no_output(self):
        import shutil
        import tempfile
        tmp = tempfile.mkdtemp(prefix="modelexport-embed-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        src = os.path.join(SOURCES, "token-classification")
        ref_path = os.path.join(SOURCES, "_reference", "token-classification.json")
        outputs = []
        for flags in ([], ["--embed-hierarchy"]):
            pkg = os.path.join(tmp, "embedded" if flags else "plain")
            run("export", src, pkg, "--model", "modeling.py:build", *flags, check=0)
            outputs.append(node("ort_check.mjs", pkg, "--inputs", ref_path)["outputs"])
        self.assertEqual(outputs[0], outputs[1])

    def test_a_runtime_failure_is_reported_with_the_runtimes_own_error(self):
        import shutil
        import tempfile
        tmp = tempfile.mkdtemp(prefix="modelexport-broken-runtime-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        pkg = os.path.join(tmp, "pkg")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        # A tokenizer whose ids exceed the embedding table: the graph is valid, running it is not.
        tok = load_json(os.path.join(pkg, "tokenizer.json"))
        tok["model"]["vocab"] = {k: v + 100000 if k not in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]") else v
                                 for k, v in tok["model"]["vocab"].items()}
        with open(os.path.join(pkg, "tokenizer.json"), "w") as f:
            json.dump(tok, f)
        p = run("validate", pkg, "--runtime", "onnxruntime", "--json")
        self.assertEqual(p.returncode, 7, p.stdout)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["runtime.onnxruntime"]
        self.assertEqual(check["status"], "fail")
        self.assertIn("Gather", check["message"])
        self.assertIn("out of", check["message"])

    def test_validate_runs_transformers_js_and_auto_says_which_runtime(self):
        p = run("validate", os.path.join(EXAMPLES, "fill-mask"), "--strict", "--runtime", "transformers-js", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(checks["runtime.transformers-js"]["status"], "pass")
        p = run("validate", os.path.join(EXAMPLES, "image-classification"), "--runtime", "auto")
        self.assertEqual(p.returncode, 0, p.stderr)
        # auto prefers Optimum where it is installed (test_optimum), else ONNX Runtime.
        self.assertRegex(p.stderr, r"runtime check: (optimum|onnxruntime) \(auto\)")

    def test_runtime_checks_report_latency_and_peak_memory(self):
        import tempfile
        for runtime in ("onnxruntime", "transformers-js"):
            with self.subTest(runtime), tempfile.TemporaryDirectory() as tmp:
                report = os.path.join(tmp, "report.json")
                p = run("validate", os.path.join(EXAMPLES, "text-classification"), "--runtime", runtime, "--json",
                        "--report", report)
                self.assertEqual(p.returncode, 0, p.stderr)
                check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["runtime." + runtime]
                self.assertGreater(check["latency_ms"], 0)
                self.assertLess(check["latency_ms"], 10_000)
                self.assertGreater(check["peak_rss_mb"], 10)  # a Node.js process with a runtime loaded
                self.assertIn("median latency", check["message"])
                self.assertEqual(load_json(report), json.loads(p.stdout))

    def test_optimum_runtime_reports_that_it_is_not_installed(self):
        p = run("validate", os.path.join(EXAMPLES, "text-classification"), "--runtime", "optimum", "--json",
                env={"MODELEXPORT_PYTHON": "/usr/bin/python3"})
        self.assertEqual(p.returncode, 10, p.stdout)  # runtime_unavailable: the package is not at fault
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(checks["runtime.optimum"]["status"], "unavailable")
        self.assertIn("No module named", checks["runtime.optimum"]["message"])


if __name__ == "__main__":
    unittest.main()
