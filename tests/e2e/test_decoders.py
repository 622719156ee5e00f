"""Decoder-only language models with a KV cache (issue 13).

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

from common import EXAMPLES, EXIT, load_json, node, run
from test_optimum import HAVE_HF, PYTHON, needs_hf, optimum, python_json

DECODER_SOURCES = os.path.join(EXAMPLES, "decoder-sources")
DECODERS = {"hf-gpt2": "gpt2", "hf-llama": "llama"}
TOLERANCE = 1e-4
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
                self.assertEqual(meta["model"]["task"], "text-generation")
                self.assertEqual(meta["model"]["optimum_class"], "ORTModelForCausalLM")

    def test_bare_model_of_an_encoder_is_feature_extraction(self):
        meta = load_json(os.path.join(EXAMPLES, "hf-feature-extraction", "export_metadata.json"))
        self.assertEqual((meta["model"]["class"], meta["model"]["task"]), ("BertModel", "feature-extraction"))

    def test_bare_model_of_other_families_asks_for_task(self):
        for cls, model_type in (("CLIPModel", "clip"), ("GPT2Model", "gpt2"), ("MysteryModel", "mystery")):
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
        config.update(architectures=["CLIPModel"], model_type="clip")
        with open(os.path.join(pkg, "config.json"), "w") as f:
            json.dump(config, f)
        p = run("validate", pkg, "--json", "--runtime", "none")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["task.known"]
        self.assertIn("CLIPModel", check["message"])
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
        p = run("validate", os.path.join(EXAMPLES, "hf-fill-mask"), "--task", "text-generation", "--json", "--runtime", "none")
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
print(json.dumps({"tied": model.lm_head.weight is model.transformer.wte.weight, "unique": unique,
                  "stored": stored, "file": len(m.SerializeToString()),
                  "graph": len(m.SerializeToString()) - stored}))
'''
        sizes = python_json(code, os.path.join(DECODER_SOURCES, "gpt2"), os.path.join(EXAMPLES, "hf-gpt2", "model.onnx"))
        self.assertTrue(sizes["tied"])
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

    def assert_close(self, got, expected, what):
        self.assertEqual(got["shape"], expected["shape"], what)
        worst = max(abs(a - b) for a, b in zip(got["data"], expected["data"]))
        self.assertLess(worst, TOLERANCE, f"{what} differs by {worst}")

    def test_onnxruntime_prompt_and_cached_step_equal_torch(self):
        for pkg in DECODERS:
            with self.subTest(pkg):
                ref = reference(pkg)
                out = node("ort_check.mjs", os.path.join(EXAMPLES, pkg), "--text", ref["prompt"])
                self.assertEqual(out["decoder"]["prompt_ids"], ref["prompt_ids"])
                self.assertEqual(out["decoder"]["step_id"], ref["step"]["input_id"])
                self.assertLess(out["decoder"]["cache_max_diff"], TOLERANCE)
                self.assert_close(out["outputs"]["prompt_logits"], ref["prompt_logits"], pkg + " prompt (empty cache)")
                self.assert_close(out["outputs"]["step_logits"], ref["step"]["logits"], pkg + " cached step")

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
                    self.assert_close(a["outputs"][name], b["outputs"][name], f"{pkg} {name} vs optimum-cli")


if __name__ == "__main__":
    unittest.main()
