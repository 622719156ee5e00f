"""Decoder-only language models with a KV cache.

The main job exports hf-gpt2 and hf-llama (tests/fixtures/make_decoder_models.py: the real
transformers classes from tiny configs) as Optimum's text-generation-with-past in one model.onnx.
Here: task inference that does not guess, the cache signature and its validation, tied weights
stored once, and real clients (Optimum's ORTModelForCausalLM.generate(), transformers.js'
text-generation pipeline, ONNX Runtime) giving transformers' own greedy ids and logits, beside
optimum-cli's export of the same sources.

The harness runs under Debian's python3; transformers, Optimum and ONNX Runtime's Python live in
the exporter's interpreter (MODELEXPORT_PYTHON), run as a child process as test_optimum.py does.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import threading
import time

from common import EXAMPLES, EXIT, REPO, TOLERANCE, TOOL, assert_outputs_close, load_json, node, run, sha256
from test_optimum import HAVE_HF, PYTHON, needs_hf, optimum, python_json

DECODER_SOURCES = os.path.join(EXAMPLES, "decoder-sources")


def assert_logits_close(test, got, expected, what):
    assert_outputs_close(test, {"logits": got}, {"logits": expected}, what)
DECODERS = {"hf-gpt2": "gpt2", "hf-llama": "llama"}
# config.json of each fixture: layers, key/value heads, head dim (make_decoder_models.py).
GEOMETRY = {"hf-gpt2": (2, 4, 8), "hf-llama": (2, 2, 8)}


def reference(pkg):
    return load_json(os.path.join(DECODER_SOURCES, "_reference", DECODERS[pkg] + ".json"))


def expected_signature(pkg, position_ids_first):
    """Optimum's text-generation-with-past names, order (forward signature) and axes."""
    layers, heads, dim = GEOMETRY[pkg]
    past = [(f"past_key_values.{i}.{kv}", ["batch_size", heads, "past_sequence_length", dim])
            for i in range(layers) for kv in ("key", "value")]
    present = [(f"present.{i}.{kv}", ["batch_size", heads, "past_sequence_length + sequence_length", dim])
               for i in range(layers) for kv in ("key", "value")]
    ids = [("input_ids", ["batch_size", "sequence_length"])]
    mask = [("attention_mask", ["batch_size", "past_sequence_length + sequence_length"])]
    positions = [("position_ids", ["batch_size", "sequence_length"])]
    # GPT-2's forward takes past_key_values second; Llama's after position_ids.
    inputs = ids + mask + positions + past if position_ids_first else ids + past + mask + positions
    return inputs, [("logits", ["batch_size", "sequence_length", None])] + present


def signature_of(path):
    sig = json.loads(run("inspect", path, "--json", check=0).stdout)["signature"]
    return sig


def names_and_shapes(entries):
    return [(e["name"], e["shape"]) for e in entries]


class TaskInference(unittest.TestCase):
    """*LMHeadModel / *ForCausalLM mean text-generation; a bare <X>Model means feature-extraction only
    for an encoder family, anything else needs --task."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="modelexport-tasks-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def source(self, name, config):
        src = os.path.join(self.tmp, name)
        os.makedirs(src)
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f)
        return src

    def test_decoder_heads_are_text_generation(self):
        for pkg, cls in (("hf-gpt2", "GPT2LMHeadModel"), ("hf-llama", "LlamaForCausalLM")):
            with self.subTest(pkg):
                meta = load_json(os.path.join(EXAMPLES, pkg, "export_metadata.json"))
                self.assertEqual(meta["model"]["class"], cls)
                self.assertEqual(meta["model"]["task"], "text-generation-with-past")
                self.assertEqual(meta["model"]["optimum_class"], "ORTModelForCausalLM")

    def test_bare_model_of_an_encoder_is_feature_extraction(self):
        meta = load_json(os.path.join(EXAMPLES, "hf-feature-extraction", "export_metadata.json"))
        self.assertEqual((meta["model"]["class"], meta["model"]["task"]), ("BertModel", "feature-extraction"))

    def test_bare_model_of_other_families_asks_for_task(self):
        # (CLIPModel names zero-shot-image-classification, as Optimum infers it.)
        for cls, model_type in (("LlamaModel", "llama"), ("GPT2Model", "gpt2"), ("MysteryModel", "mystery")):
            with self.subTest(cls):
                src = self.source(cls, {"architectures": [cls], "model_type": model_type})
                p = run("export", src, os.path.join(self.tmp, "out-" + cls))
                self.assertEqual(p.returncode, EXIT["invalid_input"], p.stderr)
                self.assertIn('cannot infer the task from "architectures"', p.stderr)
                self.assertIn(cls, p.stderr)
                self.assertIn("--task", p.stderr)
                self.assertFalse(os.path.exists(os.path.join(self.tmp, "out-" + cls)))

    def test_validate_refuses_to_guess_too(self):
        pkg = os.path.join(self.tmp, "pkg")
        shutil.copytree(os.path.join(EXAMPLES, "hf-feature-extraction"), pkg)
        config = load_json(os.path.join(pkg, "config.json"))
        config.update(architectures=["GPT2Model"], model_type="gpt2")
        with open(os.path.join(pkg, "config.json"), "w") as f:
            json.dump(config, f)
        # The task the package was exported for (export_metadata.json) is no guess: validate checks it.
        p = run("validate", pkg, "--json", "--runtime", "none")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(json.loads(p.stdout)["task"], "feature-extraction")
        os.remove(os.path.join(pkg, "export_metadata.json"))  # a package made elsewhere: nothing says it
        p = run("validate", pkg, "--json", "--runtime", "none")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["task.known"]
        self.assertIn("GPT2Model", check["message"])
        self.assertIn("pass --task", check["message"])
        p = run("validate", pkg, "--task", "feature-extraction", "--runtime", "none")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class DecoderPackages(unittest.TestCase):
    """The cache signature (Optimum's names, order and axes), its validation, the hierarchy and
    tied weights stored once."""

    def test_signature_is_optimums_text_generation_with_past(self):
        for pkg, position_ids_first in (("hf-gpt2", False), ("hf-llama", True)):
            with self.subTest(pkg):
                sig = signature_of(os.path.join(EXAMPLES, pkg, "model.onnx"))
                inputs, outputs = expected_signature(pkg, position_ids_first)
                self.assertEqual(names_and_shapes(sig["inputs"]), [(n, s) for n, s in inputs])
                got = names_and_shapes(sig["outputs"])
                self.assertEqual([n for n, _ in got], [n for n, _ in outputs])
                self.assertEqual(got[0][1][:2], ["batch_size", "sequence_length"])
                self.assertEqual(got[1:], outputs[1:])

    def test_valid_strict_with_every_runtime_check(self):
        runtimes = ["onnxruntime", "transformers-js"] + (["optimum"] if HAVE_HF else [])
        for pkg in DECODERS:
            for runtime in runtimes:
                with self.subTest(pkg=pkg, runtime=runtime):
                    p = run("validate", os.path.join(EXAMPLES, pkg), "--strict", "--runtime", runtime, "--json")
                    self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                    checks = {c["id"]: c["status"] for c in json.loads(p.stdout)["checks"]}
                    for check in ("signature.cache", "generation.config", "runtime." + runtime):
                        self.assertEqual(checks[check], "pass", check)

    def broken(self, mutate):
        tmp = tempfile.mkdtemp(prefix="modelexport-decoder-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        pkg = os.path.join(tmp, "pkg")
        shutil.copytree(os.path.join(EXAMPLES, "hf-llama"), pkg)
        config = load_json(os.path.join(pkg, "config.json"))
        mutate(pkg, config)
        with open(os.path.join(pkg, "config.json"), "w") as f:
            json.dump(config, f)
        p = run("validate", pkg, "--json", "--runtime", "none")
        return p, {c["id"]: c for c in json.loads(p.stdout)["checks"]}

    def test_cache_that_disagrees_with_config_fails(self):
        cases = {
            "num_hidden_layers": (3, "cache for 2 layers, config.json says 3"),
            "num_key_value_heads": (4, "key/value heads is 2, expected 4"),
            "head_dim": (16, "head dim is 8, expected 16"),
        }
        for key, (value, words) in cases.items():
            with self.subTest(key):
                p, checks = self.broken(lambda pkg, c: c.update({key: value}))
                self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout)
                self.assertEqual(checks["signature.cache"]["status"], "fail")
                self.assertIn(words, checks["signature.cache"]["message"])

    def test_a_graph_without_cache_is_not_a_text_generation_package(self):
        p = run("validate", os.path.join(EXAMPLES, "hf-fill-mask"), "--task", "text-generation-with-past", "--json", "--runtime", "none")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["signature.cache"]
        self.assertEqual(check["status"], "fail")
        self.assertIn("no past_key_values.{i}.key/.value inputs", check["message"])

    def test_missing_generation_settings_is_a_warning(self):
        def strip(pkg, config):
            os.remove(os.path.join(pkg, "generation_config.json"))
            for key in ("bos_token_id", "eos_token_id"):
                config.pop(key, None)
        p, checks = self.broken(strip)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(checks["generation.config"]["status"], "fail")
        self.assertEqual(checks["generation.config"]["severity"], "warning")

    def test_llama_source_is_sharded_and_the_hierarchy_covers_every_node(self):
        self.assertTrue(os.path.isfile(os.path.join(DECODER_SOURCES, "llama", "model.safetensors.index.json")))
        for pkg in DECODERS:
            with self.subTest(pkg):
                meta = load_json(os.path.join(EXAMPLES, pkg, "export_metadata.json"))
                stats = meta["statistics"]
                self.assertEqual(stats["coverage"], 100.0)
                self.assertEqual(stats["tagged_nodes"], stats["node_count"])
                recorded = {p for p, m in meta["modules"].items() if m["execution_order"] is not None}
                self.assertIn("model.layers.1.self_attn" if pkg == "hf-llama" else "transformer.h.1.attn", recorded)

    @needs_hf
    def test_tied_lm_head_is_stored_once(self):
        code = r'''
import json, sys, onnx, transformers
src, path = sys.argv[1], sys.argv[2]
model = transformers.AutoModelForCausalLM.from_pretrained(src, local_files_only=True)
unique = sum(p.numel() * p.element_size() for p in model.parameters())  # tied parameters once
m = onnx.load(path)
stored = sum(len(t.raw_data) for t in m.graph.initializer)
# The pass edits torch's bytes on the wire: they must be what onnx.save of the edited model writes.
canonical = m.SerializeToString() == open(path, "rb").read()
print(json.dumps({"tied": model.lm_head.weight is model.transformer.wte.weight, "unique": unique,
                  "stored": stored, "file": len(m.SerializeToString()),
                  "graph": len(m.SerializeToString()) - stored, "canonical": canonical}))
'''
        sizes = python_json(code, os.path.join(DECODER_SOURCES, "gpt2"), os.path.join(EXAMPLES, "hf-gpt2", "model.onnx"))
        self.assertTrue(sizes["tied"])
        self.assertTrue(sizes["canonical"], "model.onnx is not the bytes onnx would serialise")
        self.assertLessEqual(sizes["stored"], 1.1 * sizes["unique"], sizes)
        self.assertLessEqual(sizes["file"], 1.1 * sizes["unique"] + sizes["graph"], sizes)


@needs_hf
class RealClients(unittest.TestCase):
    """Optimum's generate(), transformers.js' pipeline and ONNX Runtime give transformers' own greedy
    ids and logits; modelexport's package stands beside optimum-cli's."""

    def test_optimum_generate_gives_transformers_greedy_ids(self):
        for pkg in DECODERS:
            with self.subTest(pkg):
                ref = reference(pkg)
                n = len(ref["generated_ids"])
                self.assertGreaterEqual(n, 12)
                out = optimum(os.path.join(EXAMPLES, pkg), "ORTModelForCausalLM", "--text", ref["prompt"],
                              "--generate", str(n))["generate"]
                self.assertEqual(out["prompt_ids"], ref["prompt_ids"])
                self.assertEqual(out["generated_ids"], ref["generated_ids"])

    def test_transformers_js_pipeline_gives_transformers_greedy_ids(self):
        for pkg in DECODERS:
            with self.subTest(pkg):
                ref = reference(pkg)
                result = node("tjs_pipeline.mjs", os.path.join(EXAMPLES, pkg), "--task", "text-generation",
                              "--text", ref["prompt"], "--max-new-tokens", len(ref["generated_ids"]))["result"]
                self.assertEqual(result["prompt_ids"], ref["prompt_ids"])
                self.assertEqual(result["generated_ids"], ref["generated_ids"])
                self.assertTrue(result["generated_text"].startswith(ref["prompt"]))

    def test_onnxruntime_prompt_and_cached_step_equal_torch(self):
        for pkg in DECODERS:
            with self.subTest(pkg):
                ref = reference(pkg)
                out = node("ort_check.mjs", os.path.join(EXAMPLES, pkg), "--text", ref["prompt"])
                self.assertEqual(out["decoder"]["prompt_ids"], ref["prompt_ids"])
                self.assertEqual(out["decoder"]["step_id"], ref["step"]["input_id"])
                self.assertLess(out["decoder"]["cache_max_diff"], TOLERANCE)
                assert_logits_close(self, out["outputs"]["prompt_logits"], ref["prompt_logits"], pkg + " prompt (empty cache)")
                assert_logits_close(self, out["outputs"]["step_logits"], ref["step"]["logits"], pkg + " cached step")

    def test_beside_optimum_cli(self):
        cli = os.path.join(os.path.dirname(PYTHON), "optimum-cli")
        tmp = tempfile.mkdtemp(prefix="modelexport-optimum-cli-decoder-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        for pkg, src in DECODERS.items():
            with self.subTest(pkg):
                theirs = os.path.join(tmp, src)
                p = subprocess.run([cli, "export", "onnx", "--model", os.path.join(DECODER_SOURCES, src),
                                    "--task", "text-generation-with-past", theirs],
                                   capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=900)
                self.assertEqual(p.returncode, 0, p.stderr[-3000:])
                ours = os.path.join(EXAMPLES, pkg)
                self.assertEqual(set(os.listdir(ours)) - {"export_metadata.json"}, set(os.listdir(theirs)))
                self.assertEqual(signature_of(os.path.join(ours, "model.onnx")),
                                 signature_of(os.path.join(theirs, "model.onnx")))
                prompt = reference(pkg)["prompt"]
                a = node("ort_check.mjs", ours, "--text", prompt)
                b = node("ort_check.mjs", theirs, "--text", prompt)
                for name in ("prompt_logits", "step_logits"):
                    assert_logits_close(self, a["outputs"][name], b["outputs"][name], f"{pkg} {name} vs optimum-cli")


DEBIAN_PYTHON = "/usr/bin/python3"
MIRRORS = os.path.join(REPO, "tests", "fixtures", "decoder_mirrors.py")
# The greedy torch loop over a mirror, on Debian's torch with the source's own weights (htp_weights).
MIRROR_GREEDY = r'''
import json, sys, torch
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import decoder_mirrors, htp_weights
src, prompt_ids, new = sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
model = decoder_mirrors.build(json.load(open(src + "/config.json")))
htp_weights.load_weights(model, src)
ids, prompt, step = decoder_mirrors.greedy(model, prompt_ids, new)
entry = lambda t: {"shape": list(t.shape), "data": t.flatten().tolist()}
print(json.dumps({"generated_ids": ids, "prompt_logits": entry(prompt), "step_logits": entry(step)}))
'''


@needs_hf
class UnseenArchitectures(unittest.TestCase):
    """Decoder families no fixture uses (Qwen2, Mistral, GPT-NeoX, OPT, Phi-3, GPT-J, CodeGen, Qwen3, Granite,
    StableLM, GPT-Neo, MPT, GPT-BigCode with and without multi_query, Falcon with multi_query), built at test time
    with the GPT-2 fixture's byte-level BPE: each exports with its task inferred, validates
    --strict, and generates transformers' greedy ids in transformers.js (and in Optimum, except
    Phi-3 with grouped-query attention: optimum-onnx 0.1.0 builds its first-step cache with the
    attention head count and fails on optimum-cli's own export of it the same way)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-unseen-")
        src = os.path.join(cls.tmp, "src")
        p = subprocess.run([PYTHON, os.path.join(REPO, "tests", "fixtures", "make_unseen_decoders.py"),
                            os.path.join(DECODER_SOURCES, "gpt2"), src], capture_output=True, text=True, timeout=900,
                           env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
        if p.returncode != 0:
            raise AssertionError(p.stderr[-3000:])
        cls.references = json.loads(p.stdout.strip().splitlines()[-1])
        cls.src = src
        cls.packages = {}
        for name in cls.references:
            out = os.path.join(cls.tmp, "pkg-" + name)
            run("export", os.path.join(src, name), out, "--no-cache", check=0, timeout=900)
            cls.packages[name] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # Falcon with multi_query: transformers.js wants a fused cache for any multi_query config, Optimum reads
    # that form only for GPT-BigCode, so the package is Optimum's and validate warns (test_falcon_...).
    NOT_FOR_TRANSFORMERS_JS = {"falcon"}

    def test_task_inferred_and_valid_strict(self):
        for name, out in self.packages.items():
            if name in self.NOT_FOR_TRANSFORMERS_JS:
                continue
            with self.subTest(name):
                self.assertEqual(load_json(os.path.join(out, "export_metadata.json"))["model"]["task"], "text-generation-with-past")
                p = run("validate", out, "--strict", "--runtime", "onnxruntime")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_multi_query_cache_is_fused_as_transformers_js_reads_it(self):
        """GPT-BigCode with multi_query: one past_key_values.{i}.key_value [batch, past, 2 * head_dim] per layer
        (transformers.js builds its cache from those names for a multi_query config); without it, key and value."""
        def cache(name):
            sig = json.loads(run("inspect", self.packages[name], "--json").stdout)["signature"]
            return [(t["name"], t["shape"]) for t in sig["inputs"] if t["name"].startswith("past_key_values.")]
        head_dim = 64 // 4
        self.assertEqual(cache("gpt_bigcode"), [("past_key_values.%d.key_value" % i, ["batch_size", "past_sequence_length", 2 * head_dim])
                                                for i in range(2)])
        self.assertEqual(cache("gpt_bigcode_mha"), [("past_key_values.%d.%s" % (i, kind), ["batch_size", 4, "past_sequence_length", head_dim])
                                                    for i in range(2) for kind in ("key", "value")])

    def test_fused_cache_through_a_plain_torch_mirror_on_debian_torch(self):
        """The --model path with transformers' legacy fused cache (one [batch, past, 2 * head_dim] tensor per
        layer, tests/fixtures/decoder_mirrors.py GPTBigCodeForCausalLM) on torch 1.13 without transformers:
        the AutoModel package's signature, and transformers' greedy ids in ONNX Runtime."""
        out = os.path.join(self.tmp, "pkg-gpt_bigcode-mirror")
        run("export", os.path.join(self.src, "gpt_bigcode"), out, "--no-cache", "--python", DEBIAN_PYTHON,
            "--model", os.path.join(REPO, "tests", "fixtures", "decoder_mirrors.py") + ":build", check=0, timeout=900)
        signature = lambda pkg: json.loads(run("inspect", pkg, "--json").stdout)["signature"]
        self.assertEqual(signature(out), signature(self.packages["gpt_bigcode"]))
        p = run("validate", out, "--strict", "--runtime", "onnxruntime")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        ref = self.references["gpt_bigcode"]
        got = node("ort_check.mjs", out, "--text", ref["prompt"], "--generate", len(ref["generated_ids"]))["decoder"]
        self.assertEqual(got["generated_ids"], ref["generated_ids"])

    def test_falcon_multi_query_is_valid_for_optimum_and_warned_for_transformers_js(self):
        out = self.packages["falcon"]
        p = run("validate", out, "--runtime", "onnxruntime", "--json")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(checks["signature.cache"]["status"], "pass")
        self.assertEqual(checks["signature.transformers_js_cache"]["status"], "fail")
        self.assertIn("runs in Optimum and ONNX Runtime but not in transformers.js", checks["signature.transformers_js_cache"]["message"])
        strict = run("validate", out, "--strict", "--runtime", "none")
        self.assertEqual(strict.returncode, EXIT["validation_failed"], strict.stdout)
        # The warning is true: transformers.js looks for the fused names it cannot be given.
        with self.assertRaisesRegex(AssertionError, "Missing the following inputs: past_key_values.0.key"):
            node("tjs_pipeline.mjs", out, "--task", "text-generation", "--text", "hello world", "--max-new-tokens", 2)

    def test_transformers_js_generates_transformers_greedy_ids(self):
        for name, out in self.packages.items():
            if name in self.NOT_FOR_TRANSFORMERS_JS:
                continue
            with self.subTest(name):
                ref = self.references[name]
                result = node("tjs_pipeline.mjs", out, "--task", "text-generation", "--text", ref["prompt"],
                              "--max-new-tokens", len(ref["generated_ids"]))["result"]
                self.assertEqual(result["prompt_ids"], ref["prompt_ids"])
                self.assertEqual(result["generated_ids"], ref["generated_ids"])
                self.assertGreater(len(set(ref["generated_ids"])), 1)

    def test_optimum_generates_transformers_greedy_ids(self):
        for name, out in self.packages.items():
            if name == "phi3":
                continue  # see the class docstring: Optimum's own limitation
            with self.subTest(name):
                ref = self.references[name]
                got = optimum(out, "ORTModelForCausalLM", "--text", ref["prompt"], "--generate",
                              str(len(ref["generated_ids"])))["generate"]
                self.assertEqual(got["generated_ids"], ref["generated_ids"])


def debian_json(code, *args):
    p = subprocess.run([DEBIAN_PYTHON, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    if p.returncode != 0:
        raise AssertionError(f"{DEBIAN_PYTHON} -c ... failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


@unittest.skipUnless(os.path.isdir(DECODER_SOURCES), f"no {DECODER_SOURCES} (made with the pinned environment)")
class PlainTorchMirrors(unittest.TestCase):
    """Hugging Face-named plain-torch GPT2LMHeadModel and LlamaForCausalLM
    (tests/fixtures/decoder_mirrors.py: legacy tuple cache, transformers' forward signature) export
    through --model FILE.py:FACTORY on Debian's torch 1.13, without transformers, from the very
    sources of hf-gpt2 and hf-llama (one model.safetensors; Llama sharded): the same package
    signature as the AutoModel path, torch's logits in ONNX Runtime, and the mirror's greedy ids
    in ONNX Runtime and transformers.js."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-decoder-mirrors-")
        cls.packages, cls.torch = {}, {}
        for pkg, src in DECODERS.items():
            out = os.path.join(cls.tmp, src)
            run("export", os.path.join(DECODER_SOURCES, src), out, "--model", MIRRORS + ":build",
                "--python", DEBIAN_PYTHON, check=0)
            cls.packages[pkg] = out
            ref = reference(pkg)
            cls.torch[pkg] = debian_json(MIRROR_GREEDY, os.path.join(REPO, "tests", "fixtures"),
                                         os.path.join(REPO, "tools"), os.path.join(DECODER_SOURCES, src),
                                         json.dumps(ref["prompt_ids"]), len(ref["generated_ids"]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exported_by_debian_torch_without_transformers(self):
        p = subprocess.run([DEBIAN_PYTHON, "-c", "import transformers"], capture_output=True)
        self.assertNotEqual(p.returncode, 0, "Debian's python3 has transformers: the test would prove nothing")
        for pkg, out in self.packages.items():
            with self.subTest(pkg):
                meta = load_json(os.path.join(out, "export_metadata.json"))
                self.assertTrue(meta["export_context"]["torch_version"].startswith("1.13"), meta["export_context"])
                self.assertEqual(meta["statistics"]["coverage"], 100.0)

    def test_same_package_as_the_automodel_path(self):
        for pkg, out in self.packages.items():
            with self.subTest(pkg):
                mirror = load_json(os.path.join(out, "export_metadata.json"))
                genuine = load_json(os.path.join(EXAMPLES, pkg, "export_metadata.json"))
                # names, order, dtypes and axis names of every input and output
                self.assertEqual(mirror["signature"], genuine["signature"])
                self.assertEqual(signature_of(os.path.join(out, "model.onnx")),
                                 signature_of(os.path.join(EXAMPLES, pkg, "model.onnx")))
                for key in ("class", "task", "optimum_class", "parameters"):
                    self.assertEqual(mirror["model"][key], genuine["model"][key], key)
                self.assertEqual(sorted(mirror["files"]), sorted(genuine["files"]))
                # Module paths are transformers' own: every module the mirror runs, the genuine model runs.
                ran = lambda meta: {p for p, m in meta["modules"].items() if m["execution_order"] is not None}
                self.assertEqual(ran(mirror) - ran(genuine), set())
                self.assertIn("model.layers.1.self_attn.k_proj" if pkg == "hf-llama" else "transformer.h.1.attn.c_attn",
                              ran(mirror))

    def test_valid_strict_with_onnxruntime(self):
        for pkg, out in self.packages.items():
            with self.subTest(pkg):
                p = run("validate", out, "--strict", "--runtime", "onnxruntime", "--json")
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                checks = {c["id"]: c["status"] for c in json.loads(p.stdout)["checks"]}
                self.assertEqual(checks["signature.cache"], "pass")

    def test_onnxruntime_logits_and_greedy_ids_equal_the_torch_mirror(self):
        for pkg, out in self.packages.items():
            with self.subTest(pkg):
                ref, torch_out = reference(pkg), self.torch[pkg]
                n = len(torch_out["generated_ids"])
                self.assertGreaterEqual(n, 12)
                ort = node("ort_check.mjs", out, "--text", ref["prompt"], "--generate", n)
                self.assertEqual(ort["decoder"]["prompt_ids"], ref["prompt_ids"])
                assert_logits_close(self, ort["outputs"]["prompt_logits"], torch_out["prompt_logits"], pkg + " prompt")
                assert_logits_close(self, ort["outputs"]["step_logits"], torch_out["step_logits"], pkg + " cached step")
                self.assertEqual(ort["decoder"]["generated_ids"], torch_out["generated_ids"])
                # and the mirror is the genuine model: transformers' generate() gave the same ids
                self.assertEqual(torch_out["generated_ids"], ref["generated_ids"])

    @needs_hf
    def test_optimum_generate_gives_the_mirrors_greedy_ids(self):
        for pkg, out in self.packages.items():
            with self.subTest(pkg):
                ref, ids = reference(pkg), self.torch[pkg]["generated_ids"]
                got = optimum(out, "ORTModelForCausalLM", "--text", ref["prompt"], "--generate", str(len(ids)))["generate"]
                self.assertEqual(got["generated_ids"], ids)

    def test_transformers_js_pipeline_gives_the_mirrors_greedy_ids(self):
        for pkg, out in self.packages.items():
            with self.subTest(pkg):
                ref, ids = reference(pkg), self.torch[pkg]["generated_ids"]
                result = node("tjs_pipeline.mjs", out, "--task", "text-generation", "--text", ref["prompt"],
                              "--max-new-tokens", len(ids))["result"]
                self.assertEqual(result["prompt_ids"], ref["prompt_ids"])
                self.assertEqual(result["generated_ids"], ids)


def peak_rss_while(process):
    """The highest VmHWM of `process` itself (not its children), read every 10 ms until it exits."""
    peak = [0]

    def poll():
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                break
            time.sleep(0.01)
    thread = threading.Thread(target=poll)
    thread.start()
    return thread, peak


class LargeDecoder(unittest.TestCase):
    """A decoder whose export is over 2 GiB (tests/fixtures/make_big_decoder.py: the GPT-2
    mirror with a 2.15 GB position table, made cheaply as a sparse model.safetensors) goes through
    the real path — torch 1.13's exporter writes one external file per tensor — and the package
    holds one model.onnx_data, tracked and verified, gathered by streaming (modelexport's own peak
    memory is a small fraction of the model), with the tied embedding stored once; it validates
    with the ONNX Runtime check and gives the mirror's logits."""

    def test_export_over_2_gib_is_gathered_into_one_data_file(self):
        import onnx
        tmp = tempfile.mkdtemp(prefix="modelexport-big-decoder-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        src, pkg = os.path.join(tmp, "src"), os.path.join(tmp, "pkg")
        subprocess.run([DEBIAN_PYTHON, os.path.join(REPO, "tests", "fixtures", "make_big_decoder.py"), src],
                       check=True, capture_output=True, timeout=600)
        stored = os.path.getsize(os.path.join(src, "model.safetensors"))
        process = subprocess.Popen([TOOL, "export", src, pkg, "--model", MIRRORS + ":build", "--python", DEBIAN_PYTHON],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        thread, peak = peak_rss_while(process)
        try:  # inside Meson's 900 s, so that a hang fails here, with the export's output, and leaves no process
            out, err = process.communicate(timeout=840)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            self.fail("the export took over 840 s: " + err[-3000:])
        thread.join()
        self.assertEqual(process.returncode, 0, err)

        # one data file; none of torch's per-tensor files (named after the tensors) is left
        self.assertEqual(sorted(f for f in os.listdir(pkg) if f.startswith(("model", "transformer"))),
                         ["model.onnx", "model.onnx_data"])
        data = os.path.getsize(os.path.join(pkg, "model.onnx_data"))
        self.assertGreater(data, 2 ** 31)
        # the tied embedding once: the data is the source's unique parameters (plus 4 KiB alignment)
        self.assertLess(data, 1.01 * stored)
        locations = {e.value for t in onnx.load(os.path.join(pkg, "model.onnx"), load_external_data=False).graph.initializer
                     for e in t.external_data if e.key == "location"}
        self.assertEqual(locations, {"model.onnx_data"})
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        self.assertEqual(meta["files"]["model.onnx_data"]["size"], data)
        self.assertEqual(meta["files"]["model.onnx"]["sha256"], sha256(os.path.join(pkg, "model.onnx")))
        run("verify", pkg, check=0)
        # Streamed: modelexport itself (not the torch child) stays far below the model's size.
        self.assertGreater(peak[0], 0)
        self.assertLess(peak[0], 0.05 * data, f"modelexport peak RSS {peak[0]} bytes for {data} bytes of weights")

        p = run("validate", pkg, "--strict", "--runtime", "onnxruntime", "--json", timeout=900)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        ref = load_json(src + ".reference.json")
        ort = node("ort_check.mjs", pkg, "--text", ref["prompt"], "--generate", len(ref["generated_ids"]), timeout=900)
        self.assertEqual(ort["decoder"]["prompt_ids"], ref["prompt_ids"])
        self.assertEqual(ort["decoder"]["generated_ids"], ref["generated_ids"])
        names = ("prompt_logits", "step_logits")
        assert_outputs_close(self, {n: ort["outputs"][n] for n in names}, {n: ref[n] for n in names}, pkg)


if __name__ == "__main__":
    unittest.main()
