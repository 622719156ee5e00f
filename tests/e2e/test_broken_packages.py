"""Broken packages fail validation with the right check id."""
import json
import os
import shutil
import time

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


    def test_an_image_size_past_the_generated_inputs_bound_fails_quickly_with_the_reason(self):
        # The configs size the runtime checks' generated image: a broken or hostile size is the package's
        # failure with its reason, not 300 GB of pixels (the check's timeout would end it only after minutes).
        pkg = self.package("hf-image-classification")
        path = os.path.join(pkg, "preprocessor_config.json")
        with open(path) as f:
            pre = json.load(f)
        pre["size"] = {"height": 100000, "width": 100000}
        with open(path, "w") as f:
            json.dump(pre, f)
        for runtime, message in (("onnxruntime", 'input "pixel_values" would be generated as [1, 3, 100000, 100000]'),
                                 ("optimum", "the package's configs size the generated image 100000 x 100000")):
            with self.subTest(runtime):
                started = time.monotonic()
                code, failed = self.failed_checks(pkg, "--runtime", runtime)
                self.assertLess(time.monotonic() - started, 120)
                self.assertEqual(code, 7)
                self.assertIn(message, failed["runtime." + runtime])


class TokenizerIds(TempDirTest):
    """tokenizer.ids: every id a package's tokenizer and configs can feed the model is below the
    rows of the embedding its graph gathers the ids from (a warning, so --strict fails)."""

    def package(self, name):
        if not os.path.isdir(os.path.join(EXAMPLES, name)):
            self.skipTest(f"no example package {name} (transformers not installed for the build)")
        dest = self.path(name)
        shutil.copytree(os.path.join(EXAMPLES, name), dest)
        return dest

    def report(self, pkg, *args):
        p = run("validate", pkg, "--json", *args)
        self.assertIn(p.returncode, (0, 7), p.stderr)
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        return p.returncode, checks["tokenizer.ids"]

    def vocab_size(self, pkg):
        with open(os.path.join(pkg, "config.json"), encoding="utf-8") as f:
            return json.load(f)["vocab_size"]

    def edit_json(self, path, change):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        change(doc)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)

    def assert_strict_fails(self, pkg, message):
        code, check = self.report(pkg)
        self.assertEqual((code, check["status"], check["severity"]), (0, "fail", "warning"), check)
        code, check = self.report(pkg, "--strict")
        self.assertEqual(code, 7)
        self.assertEqual(check["message"], message)
        p = run("validate", pkg, "--strict")
        self.assertEqual(p.returncode, 7)
        self.assertIn(message, p.stdout + p.stderr)

    def test_the_examples_pass(self):
        for name, files in (("hf-text-classification", "model.onnx"),
                            ("hf-t5", "encoder_model.onnx 112 rows, decoder_model.onnx 112 rows, "
                                      "decoder_with_past_model.onnx 112 rows, decoder_model_merged.onnx 112 rows")):
            with self.subTest(name=name):
                pkg = os.path.join(EXAMPLES, name)
                if not os.path.isdir(pkg):
                    self.skipTest(f"no example package {name}")
                code, check = self.report(pkg, "--strict")
                self.assertEqual((code, check["status"]), (0, "pass"), check)
                self.assertIn(files, check["message"])

    def test_one_extra_wordpiece_fails(self):
        pkg = self.package("hf-text-classification")
        rows = self.vocab_size(pkg)
        self.edit_json(os.path.join(pkg, "tokenizer.json"), lambda t: t["model"]["vocab"].update({"xyz": rows}))
        self.assert_strict_fails(pkg, f"{pkg}/tokenizer.json: token 'xyz' has id {rows} but the model's embedding "
                                      f"(model.onnx, Gather of input_ids) has {rows} rows")

    def test_one_extra_unigram_piece_fails_the_encoder_decoder(self):
        # The T5 example as it was: its Unigram list held one piece twice, 113 ids for 112 rows.
        pkg = self.package("hf-t5")
        rows = self.vocab_size(pkg)
        self.edit_json(os.path.join(pkg, "tokenizer.json"), lambda t: t["model"]["vocab"].append(["\u2581xyz", -5.0]))
        self.assert_strict_fails(pkg, f"{pkg}/tokenizer.json: token '\u2581xyz' has id {rows} but the model's embedding "
                                      f"(encoder_model.onnx, Gather of input_ids) has {rows} rows")

    def test_a_special_id_out_of_range_in_generation_config_fails(self):
        pkg = self.package("hf-t5")
        rows = self.vocab_size(pkg)
        self.edit_json(os.path.join(pkg, "generation_config.json"), lambda g: g.update(eos_token_id=[1, rows + 5]))
        self.assert_strict_fails(pkg, f"{pkg}/generation_config.json: eos_token_id is {rows + 5} but the model's embedding "
                                      f"(encoder_model.onnx, Gather of input_ids) has {rows} rows")

    def test_vocab_txt_without_tokenizer_json_is_counted_by_lines(self):
        pkg = self.package("text-classification")
        rows = self.vocab_size(pkg)
        os.remove(os.path.join(pkg, "tokenizer.json"))
        with open(os.path.join(pkg, "vocab.txt"), "a", encoding="utf-8") as f:
            f.write("xyz\n")
        self.assert_strict_fails(pkg, f"{pkg}/vocab.txt: token 'xyz' has id {rows} but the model's embedding "
                                      f"(model.onnx, Gather of input_ids) has {rows} rows")

    def test_a_broken_tokenizer_json_fails_naming_it(self):
        pkg = self.package("text-classification")
        self.edit_json(os.path.join(pkg, "tokenizer.json"), lambda t: t["model"]["vocab"].update({"xyz": "one"}))
        self.assert_strict_fails(pkg, f"{pkg}/tokenizer.json: model.vocab entry 'xyz' is not an integer id")
