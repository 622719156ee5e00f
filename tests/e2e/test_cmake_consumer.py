"""The optional CMake module (modules/cmake/ModelExport.cmake), configured by a real CMake consumer."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from common import REPO, SOURCES, TOOL, sha256
from test_plan import COMMITS, make_hub_cache


def sh(*cmd, env=None):
    env = env or dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
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
    make_hub_cache(os.path.join(tmp, "hub"))
    return src, build


class CMakeConsumer(unittest.TestCase):
    def test_package_bindings_and_exact_rebuilds(self):
        src, build = consumer_tree(self, "cmake_consumer")
        hub = os.path.join(os.path.dirname(src), "hub")
        sh("cmake", "-S", src, "-B", build, "-G", "Ninja", f"-DMODELEXPORT_EXECUTABLE={TOOL}",
           f"-DMODELEXPORT_MODULE_DIR={os.path.join(REPO, 'modules', 'cmake')}", f"-DMODELEXPORT_HF_HUB_CACHE={hub}")
        sh("ninja", "-C", build)
        self.assertEqual(sh(os.path.join(build, "labels")).split(), ["NEGATIVE", "POSITIVE"])
        self.assertEqual(sorted(os.listdir(os.path.join(build, "bert"))),
                         sorted(["model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "vocab.txt", "export_metadata.json", "bert-package.d"]))
        # LAYOUT hub: the same files, the model under onnx/, consumed there by a later command.
        hub_pkg = os.path.join(build, "bert_hub")
        self.assertEqual(sorted(os.path.relpath(os.path.join(d, f), hub_pkg) for d, _, fs in os.walk(hub_pkg) for f in fs),
                         sorted(["onnx/model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json", "vocab.txt", "export_metadata.json", "bert_hub-package.d"]))
        with open(os.path.join(build, "hub-onnx-copy.onnx"), "rb") as a, open(os.path.join(hub_pkg, "onnx", "model.onnx"), "rb") as b:
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
        # New hashes only: labels.cpp, which includes bert_model.hpp alone, is not recompiled.
        self.assertTrue([s for s in steps if "bert_model.hpp" in s], steps)
        self.assertFalse([s for s in steps if "labels.cpp" in s], steps)
        with open(os.path.join(build, "generated", "bert_model_files.hpp")) as f:
            self.assertIn(sha256(os.path.join(src, "sources", "bert", "vocab.txt")), f.read())
        self.assertIn("ninja: no work to do.", sh("ninja", "-C", build))

        # INSTALL / INSTALL_DIR: the package files (no depfile), the hub layout's onnx/ kept.
        dest = os.path.join(os.path.dirname(build), "dest")
        sh("cmake", "--install", build, "--prefix", dest)
        installed = sorted(os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs)
        files = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "export_metadata.json"]
        self.assertEqual(installed, sorted([f"share/models/bert/{f}" for f in files + ["model.onnx"]] +
                                           [f"share/hub-models/bert/{f}" for f in files + ["onnx/model.onnx"]]))
        self.assertEqual(sha256(os.path.join(dest, "share/hub-models/bert/onnx/model.onnx")), sha256(os.path.join(hub_pkg, "onnx", "model.onnx")))

        # The Hub cache is the one fixed at configure time: a moved ref makes ninja rerun CMake and
        # re-export, with no HF_HUB_CACHE (nor HOME's default cache) in ninja's environment.
        repo = os.path.join(hub, "models--acme--tiny-bert")
        new_commit = "3" * 40
        shutil.copytree(os.path.join(repo, "snapshots", COMMITS["main"]), os.path.join(repo, "snapshots", new_commit), symlinks=True,
                        ignore=shutil.ignore_patterns("special_tokens_map.json"))
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(new_commit)
        bare = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "XDG_CACHE_HOME"}
        bare.update(HOME=os.path.join(os.path.dirname(build), "no-home"), SOURCE_DATE_EPOCH="1700000000")
        steps = re.findall(r"^\[\d+/\d+\] (.*)$", sh("ninja", "-C", build, env=bare), re.M)
        self.assertTrue([s for s in steps if "Re-running CMake" in s], steps)
        self.assertIn("Exporting model package tiny", steps)
        self.assertNotIn("special_tokens_map.json", os.listdir(os.path.join(build, "tiny")))
        with open(os.path.join(build, "tiny", "export_metadata.json")) as f:
            self.assertEqual(json.load(f)["source"]["commit"], new_commit)
        self.assertIn("ninja: no work to do.", sh("ninja", "-C", build, env=bare))


if __name__ == "__main__":
    unittest.main()
