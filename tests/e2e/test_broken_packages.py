"""Broken packages fail validation with the right check id (issue 5)."""
import json
import os
import shutil

import onnx
from onnx import TensorProto, helper, numpy_helper
import numpy as np

from common import EXAMPLES, TempDirTest, run


class BrokenPackages(TempDirTest):
    def package(self, name="text-classification"):
        dest = self.path("pkg")
        shutil.copytree(os.path.join(EXAMPLES, name), dest)
        return dest

    def failed_checks(self, pkg, *args):
        p = run("validate", pkg, "--json", *args)
        self.assertIn(p.returncode, (0, 7), p.stderr)
        report = json.loads(p.stdout)
        return p.returncode, {c["id"]: c["message"] for c in report["checks"] if c["status"] == "fail"}

    def test_config_missing(self):
        pkg = self.package()
        os.remove(os.path.join(pkg, "config.json"))
        code, failed = self.failed_checks(pkg)
        self.assertEqual(code, 7)
        self.assertIn("package.files", failed)
        self.assertIn("config.parse", failed)
        self.assertIn(os.path.join(pkg, "config.json"), failed["config.parse"])

    def test_wrong_output_names_for_the_task(self):
        pkg = self.package()
        code, failed = self.failed_checks(pkg, "--task", "question-answering")
        self.assertEqual(code, 7)
        self.assertIn("start_logits, end_logits", failed["signature.outputs"])

    def test_tokenizer_missing_is_a_warning_that_strict_fails(self):
        pkg = self.package()
        for f in ("tokenizer.json", "vocab.txt"):
            os.remove(os.path.join(pkg, f))
        code, failed = self.failed_checks(pkg)
        self.assertEqual(code, 0)
        self.assertIn("preprocessing.tokenizer", failed)
        code, failed = self.failed_checks(pkg, "--strict")
        self.assertEqual(code, 7)

    def test_truncated_onnx(self):
        pkg = self.package()
        path = os.path.join(pkg, "model.onnx")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 3])
        code, failed = self.failed_checks(pkg)
        self.assertEqual(code, 7)
        self.assertIn("not a valid ONNX model", failed["onnx.parse"])

    def test_external_data_pointing_outside(self):
        pkg = self.package("image-classification")
        model = onnx.load(os.path.join(pkg, "model.onnx"))
        big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        big.data_location = TensorProto.EXTERNAL
        del big.external_data[:]
        for k, v in (("location", "../weights.bin"), ("offset", "0"), ("length", str(len(big.raw_data)))):
            entry = big.external_data.add()
            entry.key, entry.value = k, v
        open(self.path("weights.bin"), "wb").write(big.raw_data)
        big.ClearField("raw_data")
        onnx.save(model, os.path.join(pkg, "model.onnx"))
        code, failed = self.failed_checks(pkg)
        self.assertEqual(code, 7)
        self.assertIn("points outside the package: ../weights.bin", failed["onnx.external_data"])

    def test_id2label_width_mismatch(self):
        pkg = self.package()
        cfg = json.load(open(os.path.join(pkg, "config.json")))
        cfg["id2label"]["2"] = "NEUTRAL"
        json.dump(cfg, open(os.path.join(pkg, "config.json"), "w"))
        code, failed = self.failed_checks(pkg, "--strict")
        self.assertEqual(code, 7)
        self.assertIn("id2label has 3 labels but logits has width 2", failed["labels.width"])

    def test_checker_failure(self):
        pkg = self.package("image-classification")
        model = onnx.load(os.path.join(pkg, "model.onnx"))
        model.graph.node[0].input[0] = "undefined_tensor"
        onnx.save(model, os.path.join(pkg, "model.onnx"))
        code, failed = self.failed_checks(pkg)
        self.assertEqual(code, 7)
        self.assertIn("onnx.checker", failed)

    def test_unknown_task(self):
        pkg = self.package()
        p = run("validate", pkg, "--task", "telepathy")
        self.assertEqual(p.returncode, 7)
        self.assertIn("unknown task 'telepathy'", p.stdout)
