"""sentence-transformers checkpoints keep their recipe: a tiny genuine BertModel saved at test time with
the files sentence-transformers writes beside it (modules.json, config_sentence_transformers.json,
sentence_bert_config.json, 1_Pooling/config.json, a Normalize module) exports to a package holding the
root recipe files byte for byte, hashed as role "recipe" and verified like every other file; and
transformers.js's feature-extraction pipeline with that recipe's pooling gives the embeddings the
recipe computes in torch (mean over the attention mask, then L2 normalisation) within 1e-5; validate
checks the recipe's max_seq_length against the model's position embedding."""
import json
import os
import shutil
import subprocess
import unittest

from common import EXIT, TempDirTest, load_json, node, run, sha256
from test_optimum import HF_SOURCES, PYTHON, needs_hf

RECIPE = ["modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"]
SENTENCE = "A sentence embedding is the mean of its token embeddings, normalised."
TOKENIZER = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]

# The tokenizer fixture's BertModel configuration, built anew with its own seed and saved as
# save_pretrained writes it.
BUILD = r'''
import sys, torch, transformers
out, config_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(7)
config = transformers.BertConfig.from_pretrained(config_dir)
transformers.BertModel(config, add_pooling_layer=False).eval().save_pretrained(out)
'''

REFERENCE = r'''
import json, os, sys, torch, transformers
src, text = sys.argv[1], sys.argv[2]
tok = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
model = transformers.AutoModel.from_pretrained(src, local_files_only=True).eval()
enc = tok(text, return_tensors="pt")
with torch.no_grad():
    tokens = model(**enc).last_hidden_state
mask = enc["attention_mask"].unsqueeze(-1).to(tokens.dtype)
mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
print(json.dumps(torch.nn.functional.normalize(mean, p=2, dim=1).flatten().tolist()))
'''


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def make_source(dest):
    """The checkpoint as sentence-transformers' save() lays it out: the transformer's files at the root,
    then one folder per module that has a configuration (Normalize has none)."""
    p = subprocess.run([PYTHON, "-c", BUILD, dest, os.path.join(HF_SOURCES, "feature-extraction")], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise AssertionError(p.stderr[-3000:])
    for name in TOKENIZER:
        shutil.copy(os.path.join(HF_SOURCES, "feature-extraction", name), dest)
    write_json(os.path.join(dest, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    write_json(os.path.join(dest, "config_sentence_transformers.json"),
               {"__version__": {"sentence_transformers": "3.0.1", "transformers": "4.57.6", "pytorch": "2.9.1"},
                "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    write_json(os.path.join(dest, "sentence_bert_config.json"), {"max_seq_length": 64, "do_lower_case": False})
    write_json(os.path.join(dest, "1_Pooling", "config.json"), {
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    os.makedirs(os.path.join(dest, "2_Normalize"))


@needs_hf
class SentenceTransformersRecipe(TempDirTest):
    def setUp(self):
        super().setUp()
        self.src = self.path("src")
        make_source(self.src)
        self.pkg = self.path("pkg")
        p = run("export", self.src, self.pkg)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_the_recipe_files_are_kept_hashed_and_verified(self):
        meta = load_json(os.path.join(self.pkg, "export_metadata.json"))
        for name in RECIPE:
            with self.subTest(name):
                self.assertEqual(sha256(os.path.join(self.pkg, name)), sha256(os.path.join(self.src, name)))
                self.assertEqual(meta["files"][name]["role"], "recipe")
                self.assertEqual(meta["files"][name]["sha256"], sha256(os.path.join(self.src, name)))
        self.assertTrue(set(RECIPE) <= set(json.loads(run("plan", self.src, check=0).stdout)["files"]))
        self.assertEqual(run("validate", self.pkg, "--strict").returncode, 0)
        self.assertEqual(run("verify", self.pkg).returncode, 0)
        with open(os.path.join(self.pkg, "sentence_bert_config.json"), "w") as f:
            f.write('{"max_seq_length": 512, "do_lower_case": false}')
        p = run("verify", self.pkg)
        self.assertEqual(p.returncode, EXIT["package_modified"], p.stdout + p.stderr)
        self.assertIn("sentence_bert_config.json", p.stdout + p.stderr)

    def test_validate_checks_the_recipes_length_against_the_position_embedding(self):
        check = self.recipe_check(self.pkg)
        self.assertEqual((check["status"], check["message"]), ("pass", "max_seq_length 64 fits max_position_embeddings 512"))
        # A recipe asking for more tokens than the model has positions: long inputs would fail.
        write_json(os.path.join(self.src, "sentence_bert_config.json"), {"max_seq_length": 1000, "do_lower_case": False})
        long_pkg = self.path("long")
        self.assertEqual(run("export", self.src, long_pkg).returncode, 0)
        check = self.recipe_check(long_pkg)
        self.assertEqual((check["status"], check["severity"]), ("fail", "warning"))
        self.assertIn("sentence_bert_config.json: max_seq_length 1000 exceeds config.json's max_position_embeddings 512",
                      check["message"])
        p = run("validate", long_pkg, "--strict")
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)

    def recipe_check(self, pkg):
        report = json.loads(run("validate", pkg, "--json", check=0).stdout)
        (check,) = [c for c in report["checks"] if c["id"] == "recipe.max_seq_length"]
        return check

    def test_transformers_js_with_the_recipes_pooling_gives_the_recipes_embedding(self):
        with open(os.path.join(self.src, "1_Pooling", "config.json")) as f:
            self.assertTrue(json.load(f)["pooling_mode_mean_tokens"])
        with open(os.path.join(self.pkg, "modules.json")) as f:
            normalize = any(m["type"].endswith(".Normalize") for m in json.load(f))
        self.assertTrue(normalize)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        p = subprocess.run([PYTHON, "-c", REFERENCE, self.src, SENTENCE], capture_output=True, text=True, env=env, timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        expected = json.loads(p.stdout.strip().splitlines()[-1])
        result = node("tjs_pipeline.mjs", self.pkg, "--task", "feature-extraction", "--text", SENTENCE,
                      "--pooling", "mean", "--normalize")["result"]
        self.assertEqual(result["dims"], [1, 32])
        self.assertEqual(len(result["data"]), len(expected))
        worst = max(abs(a - b) for a, b in zip(result["data"], expected))
        self.assertLess(worst, 1e-5)
        self.assertAlmostEqual(sum(v * v for v in result["data"]), 1.0, places=5)


# A checkpoint as sentence-transformers itself saves one: the tokenizer fixture's BertModel, then mean
# pooling, a Dense projection (its own safetensors weights) and normalisation.
BUILD_PIPELINE = r'''
import sys, torch, transformers
from sentence_transformers import SentenceTransformer, models
out, bert_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(11)
word = models.Transformer(bert_dir, max_seq_length=64)
pooling = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
dense = models.Dense(word.get_embedding_dimension(), 16, activation_function=torch.nn.Tanh())
SentenceTransformer(modules=[word, pooling, dense, models.Normalize()], device="cpu").save(out)
'''

# sentence-transformers' own embeddings of the source, and the tokenizer's inputs they came from.
ENCODE = r'''
import json, sys, torch
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[1], device="cpu", local_files_only=True)
texts = sys.argv[2:]
features = model.tokenize(texts)
with torch.no_grad():
    embeddings = model.encode(texts, convert_to_tensor=True)
entry = lambda t, dt: {"dtype": dt, "shape": list(t.shape), "data": t.flatten().tolist()}
print(json.dumps({"inputs": {k: entry(features[k], "int64") for k in ("input_ids", "attention_mask")},
                  "sentence_embedding": entry(embeddings, "float32")}))
'''
TEXTS = [SENTENCE, "Short one.", "[CLS] and [SEP] are special tokens of BERT's tokenizer."]


@needs_hf
class SentenceEmbedding(TempDirTest):
    """export --library sentence-transformers: the checkpoint's whole pipeline in one graph, its
    sentence_embedding equal to sentence-transformers' encode() in every client."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.root = tempfile.mkdtemp(prefix="modelexport-st-")
        cls.bert = bert = os.path.join(cls.root, "bert")
        make_source(bert)
        cls.src = os.path.join(cls.root, "src")
        p = subprocess.run([PYTHON, "-c", BUILD_PIPELINE, cls.src, bert], capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise AssertionError(p.stderr[-3000:])
        cls.pkg = os.path.join(cls.root, "pkg")
        cls.export = run("export", cls.src, cls.pkg, "--library", "sentence-transformers", "--no-cache")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        p = subprocess.run([PYTHON, "-c", ENCODE, cls.src, *TEXTS], capture_output=True, text=True, env=env, timeout=600)
        if p.returncode != 0:
            raise AssertionError(p.stderr[-3000:])
        cls.expected = json.loads(p.stdout.strip().splitlines()[-1])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def test_the_graph_computes_the_pipeline_and_records_it(self):
        self.assertEqual(self.export.returncode, 0, self.export.stderr)
        meta = load_json(os.path.join(self.pkg, "export_metadata.json"))
        self.assertEqual([o["name"] for o in meta["signature"]["outputs"]], ["last_hidden_state", "sentence_embedding"])
        self.assertEqual(meta["model"]["sentence_transformers"],
                         {"library": "sentence-transformers", "dimension": 16,
                          "modules": [{"module": "Pooling", "modes": ["mean"]}, {"module": "Dense"}, {"module": "Normalize"}]})
        self.assertEqual(meta["reference_check"]["status"], "passed")
        # The transformer's modules are hierarchy levels as in any export (sentence-transformers 5 calls its
        # forward directly, past the hooks and the trace's scopes).
        self.assertGreater(meta["statistics"]["direct_matches"], 0.9 * meta["statistics"]["node_count"])
        self.assertIn("/SentenceTransformer/Transformer.0/BertModel/BertEmbeddings", meta["nodes"].values())
        self.assertIn("sentence_embedding", [o["output"] for o in meta["reference_check"]["steps"][0]["outputs"]])
        # The module folders are the export's inputs: editing the pooling is another export.
        key = run("cache", "key", self.src, "--library", "sentence-transformers", check=0).stdout
        self.assertNotEqual(key, run("cache", "key", self.src, check=0).stdout)
        pooled = self.path("pooled")
        shutil.copytree(self.src, pooled)
        with open(os.path.join(pooled, "1_Pooling", "config.json")) as f:
            pooling = json.load(f)
        pooling.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
        with open(os.path.join(pooled, "1_Pooling", "config.json"), "w") as f:
            json.dump(pooling, f)
        self.assertNotEqual(run("cache", "key", pooled, "--library", "sentence-transformers", check=0).stdout, key)

    def test_a_checkpoint_of_earlier_sentence_transformers_exports_too(self):
        # make_source's layout: sentence_transformers.models.* types and the pooling_mode_* flags of 1_Pooling.
        pkg = self.path("earlier")
        p = run("export", self.bert, pkg, "--library", "sentence-transformers", "--no-cache")
        self.assertEqual(p.returncode, 0, p.stderr)
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        self.assertEqual(meta["model"]["sentence_transformers"]["modules"],
                         [{"module": "Pooling", "modes": ["mean"]}, {"module": "Normalize"}])
        self.assertEqual(meta["signature"]["outputs"][1]["name"], "sentence_embedding")
        self.assertEqual(run("validate", pkg, "--strict", "--runtime", "none").returncode, 0)

    def test_onnxruntime_gives_sentence_transformers_embeddings(self):
        inputs = self.path("inputs.json")
        with open(inputs, "w") as f:
            json.dump({"inputs": self.expected["inputs"]}, f)
        out = node("ort_check.mjs", self.pkg, "--inputs", inputs)["outputs"]
        want = self.expected["sentence_embedding"]
        self.assertEqual(out["sentence_embedding"]["shape"], want["shape"])
        worst = max(abs(a - b) for a, b in zip(out["sentence_embedding"]["data"], want["data"]))
        self.assertLess(worst, 1e-5)

    def test_every_client_loads_it_and_validate_checks_the_recipe(self):
        for runtime in ("onnxruntime", "transformers-js", "optimum"):
            with self.subTest(runtime):
                p = run("validate", self.pkg, "--strict", "--runtime", runtime)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        report = json.loads(run("validate", self.pkg, "--json", check=0).stdout)
        (check,) = [c for c in report["checks"] if c["id"] == "recipe.pooling"]
        self.assertEqual((check["status"], check["message"]), ("pass", "Pooling, Dense, Normalize (mean), 16 wide"))
        # A recipe that no longer says what the graph computes (Normalize dropped from modules.json).
        edited = self.edited_copy(self.pkg, "edited", lambda modules: [m for m in modules if not m["type"].endswith("Normalize")])
        p = run("validate", edited)
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        self.assertIn("modules.json: lists Pooling, Dense after the transformer, but sentence_embedding computes "
                      "Pooling, Dense, Normalize", p.stdout + p.stderr)

    def edited_copy(self, folder, name, change):
        """A copy of `folder` whose modules.json is change(its list); None removes the file."""
        copy = self.path(name)
        shutil.copytree(folder, copy)
        path = os.path.join(copy, "modules.json")
        modules = change(load_json(path))
        os.remove(path)
        if modules is not None:
            with open(path, "w") as f:
                json.dump(modules, f)
        return copy

    def test_refusals_name_the_file_and_leave_nothing(self):
        def module_1(**fields):
            return lambda modules: [modules[0], dict(modules[1], **fields)] + modules[2:]
        hostile = self.edited_copy(self.src, "hostile", module_1(type="os.system"))
        bare = self.edited_copy(self.src, "bare", lambda modules: None)
        escaping = self.edited_copy(self.src, "escaping", module_1(path="../bert"))
        fifo = self.edited_copy(self.src, "fifo", lambda modules: None)
        os.mkfifo(os.path.join(fifo, "modules.json"))
        pooling = self.edited_copy(self.src, "pooling", lambda modules: modules)
        with open(os.path.join(pooling, "1_Pooling", "config.json"), "w") as f:
            json.dump({"embedding_dimension": 32, "pooling_mode": "nonsense"}, f)
        cases = [(hostile, [], "module type 'os.system' is not one this export traces"),
                 (bare, [], "modules.json: missing"),
                 (escaping, [], "module folder '../bert' must be a relative path inside the source"),
                 (fifo, [], "modules.json: not a regular file"),
                 (pooling, [], "modules.json: sentence-transformers cannot load the pipeline it lists: Invalid pooling mode"),
                 (self.src, ["--task", "fill-mask"], "--task feature-extraction")]
        for src, extra, message in cases:
            with self.subTest(message):
                out = self.path("out-" + os.path.basename(src) + str(len(extra)))
                p = run("export", src, out, "--library", "sentence-transformers", "--no-cache", *extra)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(message, p.stderr)
                self.assertNotIn("Traceback", p.stderr)
                self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    unittest.main()
