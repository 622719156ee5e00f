"""`validate --runtime` tells the truth: it runs every runtime on the packages it is for, and a
runtime that cannot start is "unavailable", never a failed package.

- Seq2Seq: transformers.js runs the main job's T5 (text2text-generation) and Whisper
  (automatic-speech-recognition) packages through validate, with generate().
- MultipleChoice: a genuine BertForMultipleChoice, made at test time, takes [batch, num_choices,
  sequence] ids; Optimum and ONNX Runtime feed it paired sentences and give transformers' logits.
- Unavailable: no node, a runtime folder without node_modules, a Python without optimum, a Python
  module that fails to import: under `auto` a skip with the reason (exit 0), under an explicit
  `--runtime X` exit 10 with the first meaningful error line, never "INVALID", never exit 7.
- InstalledCopy: the MODELEXPORT_RUNTIME_DIR procedure of docs/meson.md, from a `meson install` tree.
"""
import json
import os
import shutil
import subprocess
import unittest

from common import EXAMPLES, EXIT, NODE, RUNTIME_DIR, TempDirTest, install_tree, run

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")
# A good package every runtime checks quickly.
GOOD = os.path.join(EXAMPLES, "hf-text-classification")


def runtime_check(proc):
    """The runtime check of a `validate --json` run."""
    checks = [c for c in json.loads(proc.stdout)["checks"] if c["id"].startswith("runtime")]
    assert len(checks) == 1, proc.stdout
    return checks[0]


class Seq2Seq(unittest.TestCase):
    """transformers.js loads an encoder-decoder as encoder_model.onnx + decoder_model_merged.onnx and
    generates: validate runs tjs_seq2seq.mjs for these tasks (tjs_pipeline.mjs fed them nothing)."""

    def test_t5_and_whisper_generate_in_transformers_js(self):
        for name, field in (("hf-t5", "generated_text"), ("hf-whisper", "text")):
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "transformers-js", "--json", timeout=600)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                check = runtime_check(p)
                self.assertEqual((check["id"], check["status"]), ("runtime.transformers-js", "pass"), check)
                self.assertIn(f'"{field}"', check["message"])
                self.assertIn('"sequence"', check["message"])

    def test_pipeline_script_refuses_an_encoder_decoder_task(self):
        p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "tjs_pipeline.mjs"), os.path.join(EXAMPLES, "hf-t5"),
                            "--task", "text2text-generation"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn('unsupported task "text2text-generation"', p.stderr)


MULTIPLE_CHOICE_SOURCE = r"""
import json, os, sys
sys.path.insert(0, os.path.join(sys.argv[2], "tests", "fixtures"))
import torch, transformers
import make_hf_models, make_models
out = sys.argv[1]
config = transformers.BertConfig(vocab_size=len(make_models.VOCAB), hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=37, max_position_embeddings=64,
                                 initializer_range=0.5)
config.architectures = ["BertForMultipleChoice"]
torch.manual_seed(3)
model = transformers.BertForMultipleChoice(config).eval()
model.save_pretrained(out)
make_hf_models.save_tokenizer(out)
# transformers' logits for what the runtime checks feed: the sentence paired with two endings.
tokenizer = transformers.AutoTokenizer.from_pretrained(out)
enc = tokenizer(["the movie was great and i loved it"] * 2, ["it was good", "it was bad"], padding=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits
print(json.dumps({"logits": logits.reshape(-1).tolist()}))
"""


@unittest.skipUnless(PYTHON, "MODELEXPORT_PYTHON (transformers, optimum) is not set")
class MultipleChoice(TempDirTest):
    """A correct multiple-choice package passes the Optimum and ONNX Runtime checks, which feed
    [1, num_choices, sequence] ids and get transformers' logits."""

    def setUp(self):
        super().setUp()
        src = self.path("src")
        p = subprocess.run([PYTHON, "-c", MULTIPLE_CHOICE_SOURCE, src, os.environ["MODELEXPORT_SOURCE_ROOT"]], capture_output=True,
                           text=True, timeout=600, env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.expected = json.loads(p.stdout.strip().splitlines()[-1])["logits"]
        self.pkg = self.path("pkg")
        run("export", src, self.pkg, "--task", "multiple-choice", "--no-cache", check=0, timeout=900)

    def test_optimum_and_onnxruntime_run_it(self):
        for runtime in ("optimum", "onnxruntime"):
            with self.subTest(runtime):
                p = run("validate", self.pkg, "--strict", "--runtime", runtime, "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                check = runtime_check(p)
                self.assertEqual(check["status"], "pass", check)
                self.assertIn("logits[1,2]", check["message"])
        # ONNX Runtime's logits for the paired inputs are transformers' own.
        p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "ort_check.mjs"), self.pkg], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(out["inputs"]["input_ids"][:2], [1, 2])
        got = out["outputs"]["logits"]["data"]
        self.assertEqual(len(got), 2)
        self.assertLess(max(abs(a - b) for a, b in zip(got, self.expected)), 1e-4, (got, self.expected))


class Unavailable(TempDirTest):
    """A runtime that cannot start: a skip with its reason under auto, exit 10 when named."""

    def assertUnavailable(self, args, runtime, *fragments, env=None):
        """`validate GOOD --runtime <runtime> args` exits 10 naming the reason; under auto it is a skip and the package is valid."""
        p = run("validate", GOOD, "--strict", "--runtime", runtime, *args, env=env)
        self.assertEqual(p.returncode, EXIT["runtime_unavailable"], p.stdout + p.stderr)
        self.assertNotIn("INVALID", p.stdout)
        self.assertRegex(p.stdout, rf"n/a +runtime\.{runtime}: {runtime} unavailable: ")
        self.assertIn("not checked in its runtime", p.stdout)
        errors = [l for l in p.stderr.splitlines() if l.startswith("modelexport: error: ")]
        self.assertEqual(len(errors), 1, p.stderr)
        for f in fragments:
            self.assertIn(f, errors[0])
        self.assertNotIn("    at ", p.stdout + p.stderr)  # no stack trace
        return errors[0]

    def assertAutoSkips(self, args, env=None):
        p = run("validate", GOOD, "--strict", "--runtime", "auto", "--json", *args, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        check = runtime_check(p)
        self.assertEqual(check["status"], "skip", check)
        return check["message"]

    def runtime_copy(self):
        """The runtime scripts without their npm packages."""
        copy = self.path("runtime")
        shutil.copytree(RUNTIME_DIR, copy, ignore=shutil.ignore_patterns("node_modules"))
        return copy

    def broken_python(self, module):
        """The pinned interpreter, with `module` shadowed by one whose import raises."""
        shadow = self.path("shadow-" + module)
        os.makedirs(os.path.join(shadow, module))
        with open(os.path.join(shadow, module, "__init__.py"), "w") as f:
            f.write("raise RuntimeError('this build of %s is broken')\n" % module)
        wrapper = self.path("python-" + module)
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nPYTHONPATH={shadow} exec {PYTHON} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        return wrapper

    def test_a_check_past_validate_timeout_fails_saying_so(self):
        # Optimum's check imports torch and transformers: seconds, never within one.
        p = run("validate", GOOD, "--runtime", "optimum", "--timeout", "1")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"runtime\.optimum: .*: optimum failed \(timed out after 1 s\)\n")
        p = run("validate", GOOD, "--timeout", "0")
        self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
        self.assertIn("--timeout: '0' is not a positive number of seconds", p.stderr)

    def test_no_node(self):
        missing = self.path("no-such-node")
        self.assertUnavailable(["--node", missing], "onnxruntime", f"{missing} not found")
        self.assertUnavailable(["--node", missing], "transformers-js", f"{missing} not found")
        why = self.assertAutoSkips(["--node", missing, "--python", self.path("no-such-python")])
        self.assertIn(f"onnxruntime: {missing} not found", why)

    def test_runtime_dir_without_node_modules(self):
        env = {"MODELEXPORT_RUNTIME_DIR": self.runtime_copy()}
        line = self.assertUnavailable([], "onnxruntime", "cannot load onnxruntime-node: Cannot find package 'onnxruntime-node'",
                                      "npm ci --ignore-scripts", env=env)
        self.assertIn("(exit status 3)", line)
        self.assertUnavailable([], "transformers-js", "cannot load @huggingface/transformers", env=env)
        why = self.assertAutoSkips(["--python", self.path("no-such-python")], env=env)
        self.assertIn("cannot load onnxruntime-node", why)

    def test_python_without_optimum(self):
        # Debian's python3 has torch but neither onnxruntime nor optimum.
        self.assertUnavailable(["--python", "/usr/bin/python3"], "optimum", "No module named")
        why = self.assertAutoSkips(["--python", "/usr/bin/python3", "--node", self.path("no-such-node")])
        self.assertIn("optimum: cannot import the runtime: ModuleNotFoundError", why)

    @unittest.skipUnless(PYTHON, "MODELEXPORT_PYTHON is not set")
    def test_python_module_that_fails_to_import(self):
        for module in ("onnxruntime", "optimum"):
            with self.subTest(module):
                self.assertUnavailable(["--python", self.broken_python(module)], "optimum",
                                       f"RuntimeError: this build of {module} is broken")

    def test_a_failing_package_is_still_invalid(self):
        # The other side of the line: a runtime that runs and fails on the package is exit 7.
        pkg = self.path("pkg")
        shutil.copytree(GOOD, pkg)
        with open(os.path.join(pkg, "tokenizer.json"), "w") as f:
            f.write("{}")
        p = run("validate", pkg, "--runtime", "onnxruntime")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"FAIL +runtime\.onnxruntime: .*onnxruntime failed \(exit status 1\): ")
        self.assertNotIn("    at ", p.stdout)


class InstalledCopy(unittest.TestCase):
    """The procedure of docs/meson.md: copy an installed share/modelexport/runtime somewhere writable, run
    `npm ci --ignore-scripts` in the copy and set MODELEXPORT_RUNTIME_DIR to it. The copy has no
    tasks.json beside it: the installed tool tells the scripts where its own is."""

    @classmethod
    def setUpClass(cls):
        cls.dest, cls.tool, root = install_tree("modelexport-runtime-install-")
        cls.installed = os.path.join(root, "share", "modelexport", "runtime")
        cls.copy = os.path.join(cls.dest, "my-runtime")
        shutil.copytree(cls.installed, cls.copy)
        # --offline: the tests use npm's cache (scripts/bootstrap filled it), never the network.
        subprocess.run(["npm", "ci", "--ignore-scripts", "--offline", "--no-audit", "--no-fund"], cwd=cls.copy, check=True,
                       capture_output=True, timeout=600)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def validate(self, pkg, runtime):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELEXPORT")}
        env["MODELEXPORT_RUNTIME_DIR"] = self.copy
        return subprocess.run([self.tool, "validate", pkg, "--strict", "--runtime", runtime], capture_output=True, text=True,
                              env=env, timeout=600)

    def test_every_runtime_script_is_installed(self):
        for name in ("cli.mjs", "tasks.mjs", "ort_check.mjs", "tjs_pipeline.mjs", "tjs_seq2seq.mjs", "optimum_check.py"):
            self.assertTrue(os.path.isfile(os.path.join(self.installed, name)), name)

    def test_the_copy_checks_packages(self):
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.copy), "tasks.json")))
        for pkg, runtime in ((GOOD, "onnxruntime"), (os.path.join(EXAMPLES, "hf-image-classification"), "onnxruntime"),
                             (GOOD, "transformers-js"), (os.path.join(EXAMPLES, "hf-whisper"), "transformers-js")):
            with self.subTest(f"{os.path.basename(pkg)} {runtime}"):
                p = self.validate(pkg, runtime)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertRegex(p.stdout, rf"ok +runtime\.{runtime}: loaded and ran one inference")


if __name__ == "__main__":
    unittest.main()
