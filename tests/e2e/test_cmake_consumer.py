"""The optional CMake module (modules/cmake/ModelExport.cmake), configured by a real CMake consumer."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from common import REPO, SOURCES, TOOL


def sh(*cmd):
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def consumer_tree(test, project):
    """A temporary copy of tests/<project> with the text-classification example as sources/bert,
    removed after the test; returns (source dir, build dir)."""
    tmp = tempfile.mkdtemp(prefix="modelexport-cmake-")
    test.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
    src, build = os.path.join(tmp, "src"), os.path.join(tmp, "build")
    shutil.copytree(os.path.join(REPO, "tests", project), src)
    shutil.copytree(os.path.join(SOURCES, "text-classification"), os.path.join(src, "sources", "bert"))
    return src, build


class CMakeConsumer(unittest.TestCase):
    def test_package_bindings_and_exact_rebuilds(self):
        src, build = consumer_tree(self, "cmake_consumer")
        sh("cmake", "-S", src, "-B", build, "-G", "Ninja", f"-DMODELEXPORT_EXECUTABLE={TOOL}",
           f"-DMODELEXPORT_MODULE_DIR={os.path.join(REPO, 'modules', 'cmake')}")
        sh("ninja", "-C", build)
        self.assertEqual(sh(os.path.join(build, "labels")).split(), ["NEGATIVE", "POSITIVE"])
        self.assertEqual(sorted(os.listdir(os.path.join(build, "bert"))),
                         sorted(["model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "vocab.txt", "export_metadata.json", "bert-package.d"]))
        # LAYOUT hub: the same files, the model under onnx/, consumed there by a later command.
        hub = os.path.join(build, "bert_hub")
        self.assertEqual(sorted(os.path.relpath(os.path.join(d, f), hub) for d, _, fs in os.walk(hub) for f in fs),
                         sorted(["onnx/model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json", "vocab.txt", "export_metadata.json", "bert_hub-package.d"]))
        with open(os.path.join(build, "hub-onnx-copy.onnx"), "rb") as a, open(os.path.join(hub, "onnx", "model.onnx"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertIn("ninja: no work to do.", sh("ninja", "-C", build))
        # The package's tests, as the Meson template registers them.
        tests = sh("ctest", "--test-dir", build, "--output-on-failure")
        self.assertRegex(tests, r"bert_validate \.+\s+Passed")
        self.assertRegex(tests, r"bert_verify \.+\s+Passed")
        self.assertRegex(tests, r"bert_hub_validate \.+\s+Passed")
        self.assertRegex(tests, r"bert_hub_verify \.+\s+Passed")
        quantized = os.path.join(build, "bert", "model_quantized.onnx")
        shutil.copy(os.path.join(build, "bert", "model.onnx"), quantized)
        p = subprocess.run(["ctest", "--test-dir", build, "-R", "bert_verify", "--output-on-failure"],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("model_quantized.onnx", p.stdout)
        os.remove(quantized)
        with open(os.path.join(src, "sources", "bert", "vocab.txt"), "a") as f:
            f.write("extra\n")
        out = sh("ninja", "-C", build)
        steps = re.findall(r"^\[\d+/\d+\] (.*)$", out, re.M)
        self.assertIn("Exporting model package bert", steps)
        self.assertIn("ninja: no work to do.", sh("ninja", "-C", build))


if __name__ == "__main__":
    unittest.main()
