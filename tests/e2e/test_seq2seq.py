"""Encoder-decoder packages: T5-style text-to-text and Whisper-style speech-to-text in
Optimum's and transformers.js' multi-file layout.

Seq2Seq runs the exporter script alone (tests/fixtures/make_seq2seq_models.py's fixtures,
tools/htp_seq2seq.py into a temporary directory; CliSeq2Seq, UnseenSeq2Seq, Pix2Struct and Examples go
through `modelexport export`): the source's config, tokenizer, processor and generation files are copied
beside the ONNX files, and the directory is proven in real clients:
- Optimum's ORTModelForSeq2SeqLM / ORTModelForSpeechSeq2Seq .from_pretrained(dir).generate(), with
  the merged decoder and with decoder_model + decoder_with_past_model, gives transformers' greedy ids;
- transformers.js' text2text-generation and automatic-speech-recognition pipelines give the same ids
  and text, from the Hub layout (onnx/, its default) and from a flat directory (subfolder "");
- ONNX Runtime: the encoder output, the first step's logits and one cached step equal torch within
  1e-4, on both branches of the merged decoder; the cached branch equals a full recompute;
- the names, order and axes of every file equal what optimum-cli writes for the same source;
- the merged decoder stores every weight once; the module tables cover every node of every file.

The package layout used (configs at the root, ONNX files under onnx/) is the Hub layout, which both
clients load by default: transformers.js reads <dir>/onnx/encoder_model.onnx and
decoder_model_merged.onnx, Optimum finds the ONNX files in the subfolder on its own.

The harness runs under Debian's python3; torch, transformers, Optimum and onnxruntime run in the
exporter's interpreter (MODELEXPORT_PYTHON, the pinned environment), as in test_decoders.py.
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from common import EXAMPLES, EXIT, NODE, REPO, RUNTIME_DIR, load_json, node, run, sha256, tree_hashes
from test_optimum import PYTHON, needs_hf

TOLERANCE = 1e-4
FIXTURES = os.path.join(REPO, "tests", "fixtures", "make_seq2seq_models.py")
UNSEEN_FIXTURES = os.path.join(REPO, "tests", "fixtures", "make_unseen_seq2seq.py")
PIX2STRUCT_FIXTURE = os.path.join(REPO, "tests", "fixtures", "make_pix2struct.py")
EXPORTER = os.path.join(REPO, "tools", "htp_seq2seq.py")
CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seq2seq_clients.py")
MODELS = {"t5": "text2text-generation-with-past", "whisper": "automatic-speech-recognition-with-past"}
# transformers.js' pipeline of each (tjs_seq2seq.mjs takes its name).
PIPELINE = {"t5": "text2text-generation", "whisper": "automatic-speech-recognition"}
OPTIMUM_TASK = {"t5": "text2text-generation-with-past", "whisper": "automatic-speech-recognition-with-past"}
ONNX_FILES = ["encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx", "decoder_model_merged.onnx"]
# What a package holds besides the ONNX files (those the source has).
CONFIG_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "spiece.model",
                "preprocessor_config.json"]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")


def pinned(*args, timeout=900, env=None):
    p = subprocess.run([PYTHON, *map(str, args)], capture_output=True, text=True, env=env or ENV, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({p.returncode}): {p.stderr[-3000:]}")
    return p


def optimum_cli_export(source, task, output):
    """optimum-cli's export of `source` for `task` into `output` (the pinned environment's optimum-cli)."""
    cli = os.path.join(os.path.dirname(PYTHON), "optimum-cli")
    p = subprocess.run([cli, "export", "onnx", "--model", source, "--task", task, output], capture_output=True, text=True,
                       env=ENV, timeout=900)
    if p.returncode != 0:
        raise AssertionError(f"optimum-cli export of {source} failed: {p.stderr[-3000:]}")


def clients(*args, env=None):
    return json.loads(pinned(CLIENTS, *args, env=env).stdout.strip().splitlines()[-1])


def new_ids(sequence, ref):
    """An Optimum generate() answer less its decoder prompt (Whisper's generate() already drops it)."""
    prompt = ref["decoder_prompt_ids"]
    return sequence[len(prompt):] if sequence[:len(prompt)] == prompt else sequence


class FixtureSources:
    """The fixtures' temporary directory (cls.tmp, cls.sources) and transformers' reference answers."""

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def reference(self, name):
        return load_json(os.path.join(self.sources, "_reference", name + ".json"))


@needs_hf
class Seq2Seq(FixtureSources, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-seq2seq-")
        cls.sources = os.path.join(cls.tmp, "sources")
        pinned(FIXTURES, cls.sources)
        cls.packages, cls.tables = {}, {}
        for name, task in MODELS.items():
            out = os.path.join(cls.tmp, "export-" + name)
            tables = os.path.join(cls.tmp, name + ".modules.json")
            pinned(EXPORTER, "--source", os.path.join(cls.sources, name), "--task", task,
                   "--output-dir", out, "--modules", tables)
            cls.tables[name] = load_json(tables)
            pkg = os.path.join(cls.tmp, "pkg-" + name)
            os.makedirs(os.path.join(pkg, "onnx"))
            for f in ONNX_FILES:
                shutil.copy(os.path.join(out, f), os.path.join(pkg, "onnx", f))
            for f in CONFIG_FILES:
                if os.path.isfile(os.path.join(cls.sources, name, f)):
                    shutil.copy(os.path.join(cls.sources, name, f), os.path.join(pkg, f))
            cls.packages[name] = pkg

    # --- the exporter's output --------------------------------------------------------------

    def test_files_and_module_tables(self):
        for name, task in MODELS.items():
            with self.subTest(name):
                tables = self.tables[name]
                self.assertEqual(tables["format"], 2)
                self.assertEqual([e["file"] for e in tables["files"]], ONNX_FILES)
                info = clients("inspect", os.path.join(self.packages[name], "onnx"))["files"]
                for entry in tables["files"]:
                    self.assertEqual(entry["format"], 1)
                    self.assertEqual(entry["task"], task)
                    self.assertEqual(entry["root_class"], tables["root_class"])
                    graph = info[entry["file"]]
                    self.assertEqual(entry["inputs"], [i[0] for i in graph["inputs"]], entry["file"])
                    self.assertEqual(entry["outputs"], [o[0] for o in graph["outputs"]], entry["file"])
                    ran = {m["path"] for m in entry["modules"] if m["order"] is not None}
                    # Every node named in a module scope names a module that ran in that file's graph
                    # (or one of its ancestors did): the C++ projection tags 100% from these tables.
                    for node_name in graph["nodes"]:
                        parts = node_name.strip("/").split("/")[:-1] if node_name.startswith("/") else []
                        scope = ".".join(parts)
                        while scope and scope not in ran:
                            scope = scope.rpartition(".")[0]
                        if parts:
                            self.assertTrue(scope, f"{entry['file']}: node {node_name} has no traced module")
                encoder, decoder = tables["files"][0], tables["files"][1]
                enc_ran = {m["path"] for m in encoder["modules"] if m["order"] is not None}
                dec_ran = {m["path"] for m in decoder["modules"] if m["order"] is not None}
                self.assertTrue(enc_ran and all(p == "" or ".decoder" not in "." + p for p in enc_ran), enc_ran)
                self.assertIn("lm_head" if name == "t5" else "proj_out", dec_ran)
                self.assertFalse({p for p in dec_ran if p.startswith(("encoder.", "model.encoder."))})
                self.assertEqual(tables["files"][3]["branches"],
                                 {"then": "decoder_with_past_model.onnx", "else": "decoder_model.onnx"})

    def test_merged_decoder_stores_each_weight_once(self):
        for name in MODELS:
            with self.subTest(name):
                report = clients("inspect", os.path.join(self.packages[name], "onnx"))
                files, unique = report["files"], report["unique_weight_bytes"]
                merged, plain, past = (files[f] for f in ONNX_FILES[3:0:-1])
                self.assertEqual(merged["main_nodes"], ["If"])
                self.assertEqual(merged["weight_bytes"], unique)
                graphs = (plain["size"] - plain["weight_bytes"]) + (past["size"] - past["weight_bytes"])
                self.assertLess(merged["size"], 1.2 * graphs + unique, files)
                self.assertLess(merged["size"], plain["size"] + past["size"] - (plain["weight_bytes"] + past["weight_bytes"] - unique) / 2)

    def test_no_weights_is_an_error_not_random_weights(self):
        src = os.path.join(self.tmp, "no-weights")
        shutil.copytree(os.path.join(self.sources, "t5"), src)
        os.remove(os.path.join(src, "model.safetensors"))
        p = subprocess.run([PYTHON, EXPORTER, "--source", src, "--task", "text2text-generation",
                            "--output-dir", os.path.join(self.tmp, "no-weights-out"),
                            "--modules", os.path.join(self.tmp, "no-weights.json")],
                           capture_output=True, text=True, env=ENV, timeout=600)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("htp_seq2seq: error: ", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "no-weights.json")))

    def test_beside_optimum_cli(self):
        cli = os.path.join(os.path.dirname(PYTHON), "optimum-cli")
        for name in MODELS:
            with self.subTest(name):
                theirs = os.path.join(self.tmp, "optimum-cli-" + name)
                p = subprocess.run([cli, "export", "onnx", "--model", os.path.join(self.sources, name),
                                    "--task", OPTIMUM_TASK[name], theirs],
                                   capture_output=True, text=True, env=ENV, timeout=900)
                self.assertEqual(p.returncode, 0, p.stderr[-3000:])
                self.assertEqual({f for f in os.listdir(theirs) if f.endswith(".onnx")}, set(ONNX_FILES))
                ours = clients("inspect", os.path.join(self.packages[name], "onnx"))["files"]
                other = clients("inspect", theirs)["files"]
                for f in ONNX_FILES:
                    self.assertEqual(ours[f]["inputs"], other[f]["inputs"], f)
                    self.assertEqual(ours[f]["outputs"], other[f]["outputs"], f)
                # Their files in the same ONNX Runtime checks: the same torch answers.
                report = clients("ort", theirs, theirs, os.path.join(self.sources, name),
                                 os.path.join(self.sources, "_reference", name + ".json"))
                self.assertLess(report["encoder"], TOLERANCE)
                self.assertEqual(report["greedy"], self.reference(name)["generated_ids"])

    # --- real clients -----------------------------------------------------------------------

    def test_onnxruntime_equals_torch(self):
        for name in MODELS:
            with self.subTest(name):
                ref = self.reference(name)
                pkg = self.packages[name]
                r = clients("ort", pkg, os.path.join(pkg, "onnx"), os.path.join(self.sources, name),
                            os.path.join(self.sources, "_reference", name + ".json"))
                self.assertLess(r["encoder"], TOLERANCE, r)
                if name == "whisper":
                    self.assertLess(r["features"], 1e-5, r)
                for key in ("decoder_model", "merged"):
                    self.assertLess(r["first"][key], TOLERANCE, r)
                for key in ("decoder_with_past_model", "merged", "merged_vs_recompute"):
                    self.assertLess(r["step"][key], TOLERANCE, r)
                self.assertTrue(r["step"]["encoder_cache_kept"])
                self.assertEqual(r["step"]["decoder_cache_length"], len(ref["decoder_prompt_ids"]) + 1)
                self.assertEqual(r["greedy"], ref["generated_ids"])
                self.assertEqual(r["inputs"][-1], "use_cache_branch")

    def test_optimum_generate_gives_transformers_greedy_ids(self):
        for name in MODELS:
            for merged in (True, False):
                with self.subTest(name=name, merged=merged):
                    ref = self.reference(name)
                    self.assertGreaterEqual(len(ref["generated_ids"]), 8)
                    env = dict(ENV, SEQ2SEQ_REFERENCE=os.path.join(self.sources, "_reference", name + ".json"))
                    out = clients("optimum", self.packages[name], *([] if merged else ["--no-merged"]), env=env)
                    self.assertEqual(out["merged"], merged)
                    decoder = "onnx/decoder_model_merged.onnx" if merged else "onnx/decoder_model.onnx"
                    self.assertEqual(out["files"], sorted([decoder, "onnx/encoder_model.onnx"]))
                    self.assertEqual(new_ids(out["sequence"], ref), ref["generated_ids"])
                    self.assertEqual(out["text"], ref["generated_text"])

    def test_transformers_js_pipelines_give_transformers_greedy_ids(self):
        for name, task in MODELS.items():
            ref = self.reference(name)
            n = len(ref["generated_ids"])
            flat = os.path.join(self.tmp, "flat-" + name)
            if not os.path.isdir(flat):
                shutil.copytree(self.packages[name], flat)
                for f in ONNX_FILES:
                    os.rename(os.path.join(flat, "onnx", f), os.path.join(flat, f))
                os.rmdir(os.path.join(flat, "onnx"))
            for pkg, subfolder in ((self.packages[name], []), (flat, ["--subfolder", ""])):
                with self.subTest(name=name, layout="flat" if subfolder else "hub"):
                    answer = node("tjs_seq2seq.mjs", pkg, "--task", PIPELINE[name], "--max-new-tokens", n, *subfolder)
                    out = answer["result"]
                    self.assertEqual(out["sequence"], ref["decoder_prompt_ids"] + ref["generated_ids"])
                    if name == "t5":
                        self.assertEqual(out["input_ids"], ref["input_ids"])
                        self.assertEqual(out["generated_text"], ref["generated_text"])
                    else:
                        features = answer["processed"]
                        self.assertEqual(features["input_features_shape"], ref["input_features_shape"])
                        worst = max(abs(a - b) for a, b in zip(features["input_features_head"], ref["input_features_head"]))
                        self.assertLess(worst, 1e-4)
                        self.assertEqual(out["text"], ref["generated_text"])


@needs_hf
class CliSeq2Seq(FixtureSources, unittest.TestCase):
    """`modelexport export SRC OUT` of both fixtures through the C++ pipeline, no --task: the task is
    inferred from architectures + model_type, the four ONNX files land flat at the package root
    (the product's layout, like model.onnx), every file is projected and recorded, and the
    package works in Optimum and transformers.js (subfolder '')."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-cli-seq2seq-")
        cls.sources = os.path.join(cls.tmp, "sources")
        pinned(FIXTURES, cls.sources)
        cls.packages = {}
        for name in MODELS:
            out = os.path.join(cls.tmp, "pkg-" + name)
            run("export", os.path.join(cls.sources, name), out, check=EXIT["ok"], timeout=900)
            cls.packages[name] = out

    def test_task_inferred_and_every_file_recorded(self):
        expected = {"t5": ("text2text-generation-with-past", "ORTModelForSeq2SeqLM"),
                    "whisper": ("automatic-speech-recognition-with-past", "ORTModelForSpeechSeq2Seq")}
        for name, pkg in self.packages.items():
            with self.subTest(name=name):
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertEqual((meta["model"]["task"], meta["model"]["optimum_class"]), expected[name])
                self.assertFalse(os.path.exists(os.path.join(pkg, "model.onnx")))
                self.assertEqual(sorted(meta["models"]), sorted(ONNX_FILES))
                for f in ONNX_FILES:
                    self.assertEqual(meta["files"][f]["sha256"], sha256(os.path.join(pkg, f)))
                    self.assertEqual(meta["files"][f]["role"], "model")
                    section = meta["models"][f]
                    self.assertEqual(section["statistics"]["coverage"], 100.0)
                    self.assertEqual(section["statistics"]["tagged_nodes"], section["statistics"]["node_count"])
                    self.assertTrue(section["signature"]["inputs"])
                merged = meta["models"]["decoder_model_merged.onnx"]
                names = [i["name"] for i in merged["signature"]["inputs"]]
                self.assertIn("use_cache_branch", names)
                # The merged file's nodes are its If's branches: far more than the one If node.
                self.assertGreater(merged["statistics"]["node_count"],
                                   meta["models"]["decoder_model.onnx"]["statistics"]["node_count"])
                self.assertEqual(meta["signature"], meta["models"]["encoder_model.onnx"]["signature"])

    def test_export_cache_stores_every_file_and_a_hit_is_byte_identical(self):
        """The four ONNX files and a module table per file are one cache entry (docs/design.md §10):
        a second export of the same source into another directory is a local hit, a tokenizer
        edit is a hit with the new tokenizer, and each package equals a --no-cache export's, every
        file (export_metadata.json included)."""
        src = os.path.join(self.tmp, "cache-source-t5")
        shutil.copytree(os.path.join(self.sources, "t5"), src)
        cache_dir = os.path.join(self.tmp, "export-cache")
        env = {"MODELEXPORT_NO_CACHE": "0", "MODELEXPORT_CACHE_DIR": cache_dir, "MODELEXPORT_REMOTE_CACHE": ""}

        def export(name, *extra):
            out, report = os.path.join(self.tmp, name), os.path.join(self.tmp, name + ".report.json")
            run("export", src, out, "--report", report, *extra, env=env, check=EXIT["ok"], timeout=900)
            return load_json(report)["cache"], tree_hashes(out)

        first, miss = export("cache-a")
        self.assertEqual(first["result"], "miss")
        second, hit = export("cache-b")
        self.assertEqual((second["result"], second["key"]), ("hit-local", first["key"]))
        self.assertEqual(hit, miss)
        self.assertLessEqual(set(ONNX_FILES) | {"export_metadata.json"}, set(miss))
        entry = load_json(os.path.join(cache_dir, "ac", first["key"]))
        self.assertEqual(sorted(f["path"] for f in entry["files"]), sorted(ONNX_FILES))
        self.assertEqual([f["file"] for f in entry["table"]["files"]], ONNX_FILES)
        off, without_cache = export("cache-off", "--no-cache")
        self.assertEqual((off["result"], without_cache), ("disabled", miss))

        tokenizer = next(f for f in ("tokenizer.json", "tokenizer_config.json") if os.path.exists(os.path.join(src, f)))
        with open(os.path.join(src, tokenizer), "a") as f:
            f.write(" ")
        edited, after_edit = export("cache-c")
        self.assertEqual((edited["result"], edited["key"]), ("hit-local", first["key"]))
        self.assertNotEqual(after_edit[tokenizer], miss[tokenizer])
        self.assertEqual(export("cache-off-edited", "--no-cache")[1], after_edit)
        run("verify", os.path.join(self.tmp, "cache-c"), check=EXIT["ok"])
        run("cache", "wait", env=env, check=EXIT["ok"])  # no background store outlives the test's directory

    def test_validate_strict_and_verify(self):
        for name, pkg in self.packages.items():
            with self.subTest(name=name):
                p = run("validate", "--strict", pkg, check=EXIT["ok"])
                self.assertIn("ok    signature.encoder_decoder", p.stdout)
                self.assertEqual(p.stdout.count("ok    onnx.checker"), len(ONNX_FILES))
                run("verify", pkg, check=EXIT["ok"])
                run("validate", "--strict", "--task", MODELS[name], pkg, check=EXIT["ok"])  # Optimum's task name

    def test_a_decoder_with_the_wrong_layer_count_fails_validate(self):
        broken = os.path.join(self.tmp, "broken-t5")
        shutil.copytree(self.packages["t5"], broken)
        config = load_json(os.path.join(broken, "config.json"))
        config["num_decoder_layers"] = config.get("num_decoder_layers") or config["num_layers"]
        config["num_decoder_layers"] += 1
        with open(os.path.join(broken, "config.json"), "w") as f:
            json.dump(config, f)
        p = run("validate", broken, check=EXIT["validation_failed"])
        self.assertIn("signature.encoder_decoder", p.stdout + p.stderr)
        self.assertIn("config.json states", p.stdout + p.stderr)
        os.remove(os.path.join(broken, "decoder_model_merged.onnx"))
        p = run("validate", broken, check=EXIT["validation_failed"])
        self.assertIn("missing required file(s) decoder_model_merged.onnx", p.stdout + p.stderr)

    def test_inspect_prints_a_tree_per_file(self):
        pkg = self.packages["whisper"]
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        text = run("inspect", pkg, check=EXIT["ok"]).stdout
        for f in ONNX_FILES:
            self.assertIn("model: " + os.path.join(pkg, f), text)
        self.assertEqual(text.count("hierarchy:"), len(ONNX_FILES))
        # One file alone: its own tree, from its models.<file> section (the merged file's If branches).
        merged = run("inspect", os.path.join(pkg, "decoder_model_merged.onnx"), "--format", "json", check=EXIT["ok"]).stdout
        counts = json.loads(merged)["hierarchy"]
        root = meta["model"]["class"]
        self.assertEqual(counts["/" + root], meta["models"]["decoder_model_merged.onnx"]["statistics"]["node_count"])
        p = run("inspect", pkg, "--format", "json", check=EXIT["usage"])
        self.assertIn("holds several ONNX models", p.stderr)

    def test_pack_and_embed_refuse_several_models_in_one_line(self):
        # Decision (docs/cli.md "Single-file models"): one ONNX file cannot carry an encoder-decoder's four.
        pkg = self.packages["t5"]
        out = os.path.join(self.tmp, "packed-t5.onnx")
        for args in (("pack", pkg, "--output", out), ("embed", pkg, "--output", out + ".S", "--header", out + ".hpp")):
            with self.subTest(command=args[0]):
                p = run(*args, check=EXIT["invalid_input"])
                self.assertEqual(p.stderr.strip().splitlines()[0],
                                 f"modelexport: error: {pkg}: holds several ONNX models (encoder_model.onnx, decoder_model.onnx, "
                                 f"decoder_with_past_model.onnx, decoder_model_merged.onnx); {args[0]} takes a single-file "
                                 "package (model.onnx)")
                self.assertFalse(os.path.exists(out) or os.path.exists(out + ".hpp") or os.path.exists(out + ".S"))

    def test_bindings_have_a_namespace_per_file_that_compiles(self):
        # A real compile of the generated header; the program prints what it holds, which must be
        # each ONNX file's own inputs and outputs (read with onnx) and the metadata's file hashes.
        namespaces = [f[:-len(".onnx")] for f in ONNX_FILES]
        for name, pkg in self.packages.items():
            with self.subTest(name=name):
                header = os.path.join(self.tmp, name + "_model.hpp")
                run("bindings", pkg, "--header", header, "--namespace", name, check=EXIT["ok"])
                dump = "".join(
                    f"    for (const auto& t : {name}::{ns}::inputs) std::printf(\"%s in %s\\n\", s({name}::{ns}::file), s(t.name));\n"
                    f"    for (const auto& t : {name}::{ns}::outputs) std::printf(\"%s out %s\\n\", s({name}::{ns}::file), s(t.name));\n"
                    for ns in namespaces)
                program = os.path.join(self.tmp, name + "_bindings.cpp")
                with open(program, "w") as f:
                    f.write(f'#include "{name}_model.hpp"\n#include <cstdio>\n#include <iterator>\n#include <string>\n'
                            "static const char* s(std::string_view v) { static std::string keep[64]; static int i; "
                            "return (keep[i++ % 64] = std::string(v)).c_str(); }\n"
                            f"static_assert({name}::task == \"{load_json(os.path.join(pkg, 'export_metadata.json'))['model']['task']}\");\n"
                            f"static_assert(std::size({name}::models) == 4 && {name}::models[3] == \"decoder_model_merged.onnx\");\n"
                            f"static_assert({name}::decoder_model_merged::inputs[std::size({name}::decoder_model_merged::inputs) - 1].name"
                            " == \"use_cache_branch\");\n"
                            "int main() {\n" + dump +
                            f"    for (const auto& f : {name}::files) std::printf(\"hash %s %s\\n\", s(f.name), s(f.sha256));\n}}\n")
                exe = os.path.join(self.tmp, name + "_bindings")
                subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-I", self.tmp, program, "-o", exe],
                               check=True, capture_output=True, text=True)
                lines = subprocess.run([exe], check=True, capture_output=True, text=True).stdout.splitlines()
                graphs = clients("inspect", pkg)["files"]
                expected = [f"{f} {kind} {v[0]}" for f in ONNX_FILES for kind in ("in", "out")
                            for v in graphs[f]["inputs" if kind == "in" else "outputs"]]
                self.assertEqual([l for l in lines if not l.startswith("hash ")], expected)
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertEqual(sorted(l.split()[1:] for l in lines if l.startswith("hash ")),
                                 sorted([f, e["sha256"]] for f, e in meta["files"].items()))

    def test_embed_hierarchy_tags_the_merged_decoders_branches(self):
        # --embed-hierarchy reaches the nodes inside the If's then/else branches; every file still
        # passes onnx.checker, loads in ONNX Runtime and generates the same greedy ids.
        name = "t5"
        pkg = os.path.join(self.tmp, "pkg-t5-embedded")
        run("export", os.path.join(self.sources, name), pkg, "--embed-hierarchy", check=EXIT["ok"], timeout=900)
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        self.assertTrue(meta["export_context"]["embed_hierarchy"])
        report = clients("tags", pkg)["files"]
        self.assertEqual(sorted(report), sorted(ONNX_FILES))
        for f in ONNX_FILES:
            with self.subTest(file=f):
                self.assertEqual(report[f]["checker"], "ok")
                self.assertTrue(report[f]["ort_loads"])
                self.assertEqual(report[f]["untagged"], 0)
                expected = {}
                for tag in meta["models"][f]["nodes"].values():
                    expected[tag] = expected.get(tag, 0) + 1
                self.assertEqual(report[f]["tags"], expected)
                self.assertEqual(meta["files"][f]["sha256"], sha256(os.path.join(pkg, f)))
        merged = report["decoder_model_merged.onnx"]
        self.assertEqual(merged["tagged_in_subgraphs"], sum(merged["tags"].values()) - 1)  # all but the If itself
        self.assertGreater(merged["tagged_in_subgraphs"], 100)
        r = clients("ort", pkg, pkg, os.path.join(self.sources, name), os.path.join(self.sources, "_reference", name + ".json"))
        self.assertEqual(r["greedy"], self.reference(name)["generated_ids"])
        self.assertLess(r["step"]["merged_vs_recompute"], TOLERANCE)
        run("validate", "--strict", pkg, check=EXIT["ok"])
        run("verify", pkg, check=EXIT["ok"])

    def test_optimum_generate_gives_transformers_greedy_ids(self):
        for name in MODELS:
            with self.subTest(name=name):
                ref = self.reference(name)
                env = dict(ENV, SEQ2SEQ_REFERENCE=os.path.join(self.sources, "_reference", name + ".json"))
                out = clients("optimum", self.packages[name], env=env)
                self.assertEqual(out["files"], ["decoder_model_merged.onnx", "encoder_model.onnx"])
                self.assertEqual(new_ids(out["sequence"], ref), ref["generated_ids"])

    def test_transformers_js_gives_transformers_greedy_ids(self):
        for name, task in MODELS.items():
            with self.subTest(name=name):
                ref = self.reference(name)
                out = node("tjs_seq2seq.mjs", self.packages[name], "--task", PIPELINE[name], "--max-new-tokens",
                           len(ref["generated_ids"]), "--subfolder", "")["result"]
                self.assertEqual(out["sequence"], ref["decoder_prompt_ids"] + ref["generated_ids"])


@needs_hf
class UnseenSeq2Seq(unittest.TestCase):
    """Encoder-decoder families no other fixture uses, built at test time
    (tests/fixtures/make_unseen_seq2seq.py: T5 v1.1 / Flan-style gated-gelu with an untied head and
    d_kv * heads != d_model, MT5, BART, MarianMTModel, M2M100, mBART, a distil-Whisper with fewer decoder than
    encoder layers): `modelexport export SRC OUT` with no --task infers the task, validate --strict
    passes (the cache shapes against each family's config keys), and Optimum's .generate() and
    transformers.js' pipelines give transformers' own greedy ids. One export per source, shared."""

    TASKS = {"t5v11": "text2text-generation-with-past", "mt5": "text2text-generation-with-past",
             "bart": "text2text-generation-with-past", "marian": "text2text-generation-with-past",
             "m2m100": "text2text-generation-with-past", "mbart": "text2text-generation-with-past",
             "whisper-distil": "automatic-speech-recognition-with-past"}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-unseen-seq2seq-")
        cls.sources = os.path.join(cls.tmp, "sources")
        pinned(UNSEEN_FIXTURES, cls.sources)
        cls.packages = {name: os.path.join(cls.tmp, "pkg-" + name) for name in cls.TASKS}
        cls.theirs = {name: os.path.join(cls.tmp, "optimum-cli-" + name) for name in cls.TASKS}

        def ours(name):
            run("export", os.path.join(cls.sources, name), cls.packages[name], "--no-cache", check=EXIT["ok"], timeout=900)

        def optimum_cli(name):
            optimum_cli_export(os.path.join(cls.sources, name), cls.TASKS[name], cls.theirs[name])

        # The exports mostly wait for Python imports: three at a time roughly halves the wall time.
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            jobs = [pool.submit(ours, n) for n in cls.TASKS] + [pool.submit(optimum_cli, n) for n in cls.TASKS]
            for job in jobs:
                job.result()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def reference_path(self, name):
        return os.path.join(self.sources, "_reference", name + ".json")

    def test_task_inferred_and_valid_strict(self):
        for name, pkg in self.packages.items():
            with self.subTest(name):
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertEqual(meta["model"]["task"], self.TASKS[name])
                self.assertEqual(meta["model"]["class"], load_json(self.reference_path(name))["architecture"])
                self.assertEqual(sorted(meta["models"]), sorted(ONNX_FILES))
                p = run("validate", "--strict", pkg)
                self.assertEqual(p.returncode, EXIT["ok"], p.stdout + p.stderr)
                self.assertIn("ok    signature.encoder_decoder", p.stdout)

    def test_marian_head_is_scoped_to_its_model_type(self):
        """MarianMTModel names no task suffix: it is text2text-generation for model_type marian only;
        under another model_type the task is not guessed (exit 5, the hint names --task)."""
        other = os.path.join(self.tmp, "marian-as-bart")
        os.makedirs(other, exist_ok=True)
        config = load_json(os.path.join(self.sources, "marian", "config.json"))
        with open(os.path.join(other, "config.json"), "w") as f:
            json.dump(dict(config, model_type="bart"), f)
        p = run("plan", other, check=EXIT["invalid_input"])
        self.assertIn("cannot infer the task", p.stderr)
        self.assertIn("hint: pass --task", p.stderr)

    def test_optimum_generate_gives_transformers_greedy_ids(self):
        pairs = [a for name in self.packages for a in (self.packages[name], self.reference_path(name))]
        answers = clients("optimum-each", *pairs)
        for name, pkg in self.packages.items():
            with self.subTest(name):
                ref = load_json(self.reference_path(name))
                self.assertGreaterEqual(len(ref["generated_ids"]), 8)
                out = answers[pkg]
                self.assertNotIn("error", out)
                self.assertEqual(out["files"], ["decoder_model_merged.onnx", "encoder_model.onnx"])
                self.assertEqual(new_ids(out["sequence"], ref), ref["generated_ids"])

    def test_transformers_js_gives_transformers_greedy_ids(self):
        for name, pkg in self.packages.items():
            with self.subTest(name):
                ref = load_json(self.reference_path(name))
                task = "automatic-speech-recognition" if "input_features_shape" in ref else "text2text-generation"
                args = ["--text", ref["text"]] if task == "text2text-generation" else []
                out = node("tjs_seq2seq.mjs", pkg, "--task", task, "--max-new-tokens", len(ref["generated_ids"]),
                           "--subfolder", "", *args)["result"]
                self.assertEqual(out["sequence"], ref["decoder_prompt_ids"] + ref["generated_ids"])
                if task == "text2text-generation":
                    self.assertEqual(out["input_ids"], ref["input_ids"])

    def test_beside_optimum_cli(self):
        """optimum-cli's export of the same source: the same files, input and output names and axes
        (but the head_dim axis docs/cli.md documents for d_kv * heads != d_model), and the same outputs
        within 1e-4 in ONNX Runtime (encoder, first step, one cached step, both decoders)."""
        for name, pkg in self.packages.items():
            with self.subTest(name):
                theirs = self.theirs[name]
                self.assertEqual({f for f in os.listdir(theirs) if f.endswith(".onnx")}, set(ONNX_FILES))
                ours, other = clients("inspect", pkg)["files"], clients("inspect", theirs)["files"]
                for f in ONNX_FILES:
                    loose = {n for n, _, dims in ours[f]["inputs"] if len(dims) == 4 and dims[3] == "head_dim"}

                    def axes(values):
                        return [[n, t, dims[:3] if n in loose else dims] for n, t, dims in values]
                    self.assertEqual(axes(ours[f]["inputs"]), axes(other[f]["inputs"]), f)
                    self.assertEqual(ours[f]["outputs"], other[f]["outputs"], f)
                report = clients("versus", pkg, theirs, os.path.join(self.sources, name), self.reference_path(name))
                for key, worst in report.items():
                    self.assertLess(worst, TOLERANCE, (key, report))


@needs_hf
class Pix2Struct(unittest.TestCase):
    """Pix2Struct, built at test time (tests/fixtures/make_pix2struct.py: a tiny genuine
    Pix2StructForConditionalGeneration with its Pix2StructProcessor): its encoder takes flattened_patches and
    their attention_mask instead of pixel_values (image-to-text's input_alternatives), and Optimum's
    ORTModelForVision2Seq, the task row's class, loads the package as ORTModelForPix2Struct.
    `modelexport export SRC OUT` with no --task exports the four files through Optimum's own Pix2Struct
    configuration: optimum-cli's names, axes and outputs; a passed reference check; valid --strict with Optimum;
    transformers' greedy ids from ORTModelForPix2Struct.generate(); and transformers.js 4.3.1, which has no
    Pix2Struct, refuses it as it refuses optimum-cli's package."""

    TASK = "image-to-text-with-past"
    # What the package holds beside the ONNX files: the source's own bytes.
    COPIED = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
              "tokenizer_config.json", "special_tokens_map.json"]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-pix2struct-")
        sources = os.path.join(cls.tmp, "sources")
        pinned(PIX2STRUCT_FIXTURE, sources)
        cls.source = os.path.join(sources, "pix2struct")
        cls.reference = os.path.join(sources, "_reference", "pix2struct.json")
        cls.pkg, cls.theirs = os.path.join(cls.tmp, "pkg"), os.path.join(cls.tmp, "optimum-cli")
        cls.export = run("export", cls.source, cls.pkg, "--no-cache", timeout=900)
        optimum_cli_export(cls.source, cls.TASK, cls.theirs)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_export_infers_the_task_and_records_a_passed_reference_check(self):
        self.assertEqual(self.export.returncode, EXIT["ok"], self.export.stderr)
        meta = load_json(os.path.join(self.pkg, "export_metadata.json"))
        self.assertEqual((meta["model"]["task"], meta["model"]["optimum_class"], meta["model"]["class"]),
                         (self.TASK, "ORTModelForVision2Seq", "Pix2StructForConditionalGeneration"))
        self.assertEqual(sorted(meta["models"]), sorted(ONNX_FILES))
        check = meta["reference_check"]
        self.assertEqual(check["status"], "passed", check)
        self.assertLess(check["max_abs_diff"], TOLERANCE)
        self.assertEqual([step["step"] for step in check["steps"]],
                         ["encoder", "decoder", "decoder with past", "merged decoder, first step", "merged decoder, cached"])
        self.assertEqual(sorted(check["steps"][0]["inputs"]), ["attention_mask", "flattened_patches"])

    def test_processor_and_tokenizer_are_the_sources(self):
        for name in self.COPIED:
            with self.subTest(name):
                self.assertEqual(sha256(os.path.join(self.pkg, name)), sha256(os.path.join(self.source, name)))

    def test_valid_strict_with_optimum(self):
        p = run("validate", "--strict", "--runtime", "optimum", "--json", self.pkg)
        self.assertEqual(p.returncode, EXIT["ok"], p.stdout + p.stderr)
        report = json.loads(p.stdout)
        checks = {c["id"]: c for c in report["checks"]}
        self.assertEqual(checks["runtime.optimum"]["status"], "pass", checks["runtime.optimum"])
        self.assertIn("sequences", checks["runtime.optimum"]["message"])
        self.assertIn("loaded by ORTModelForVision2Seq as ORTModelForPix2Struct", checks["runtime.optimum"]["message"])
        self.assertEqual(checks["signature.encoder_decoder"]["status"], "pass", checks["signature.encoder_decoder"])

    def test_a_config_contradicting_the_decoders_fails_validate(self):
        """The cross-file contract reads Pix2Struct's text_config: a layer count the decoders do not have fails."""
        broken = os.path.join(self.tmp, "broken")
        shutil.copytree(self.pkg, broken)
        config = load_json(os.path.join(broken, "config.json"))
        config["text_config"]["num_layers"] += 1
        with open(os.path.join(broken, "config.json"), "w") as f:
            json.dump(config, f)
        p = run("validate", broken, check=EXIT["validation_failed"])
        self.assertIn("decoder_model.onnx: 2 decoder layers (present.{i}.decoder.key) but config.json states 3", p.stdout)

    def test_optimum_generate_gives_transformers_greedy_ids(self):
        ref = load_json(self.reference)
        out = clients("optimum-each", self.pkg, self.reference)[self.pkg]
        self.assertNotIn("error", out)
        self.assertEqual(out["class"], "ORTModelForPix2Struct")
        self.assertEqual(out["files"], ["decoder_model_merged.onnx", "encoder_model.onnx"])
        self.assertEqual(out["sequence"][1:], ref["generated_ids"])  # less the decoder start

    def test_beside_optimum_cli(self):
        """optimum-cli's export of the same source: the same files, input and output names, types and axes,
        and every output within 1e-4 on the same inputs (sweep.py's comparison: Optimum's dummy inputs)."""
        self.assertEqual({f for f in os.listdir(self.theirs) if f.endswith(".onnx")}, set(ONNX_FILES))
        ours, other = clients("inspect", self.pkg)["files"], clients("inspect", self.theirs)["files"]
        for f in ONNX_FILES:
            with self.subTest(f):
                self.assertEqual(ours[f]["inputs"], other[f]["inputs"])
                self.assertEqual(ours[f]["outputs"], other[f]["outputs"])
        compare = ("import json, sys; sys.path.insert(0, %r); import sweep; print(json.dumps(sweep.compare(*sys.argv[1:])))"
                   % os.path.dirname(os.path.abspath(__file__)))
        diffs, problems = json.loads(pinned("-c", compare, self.pkg, self.theirs, self.source, self.TASK).stdout.splitlines()[-1])
        self.assertEqual(problems, [])
        self.assertEqual(sorted(diffs), sorted(ONNX_FILES))
        for f, worst in diffs.items():
            self.assertLess(worst, TOLERANCE, f)

    def test_transformers_js_refuses_it_as_it_refuses_optimum_clis(self):
        """transformers.js 4.3.1 has no Pix2Struct: validate fails its runtime check with transformers.js' own
        message, and transformers.js' pipeline fails optimum-cli's package the same way. (The pipeline loads the
        model and the processor at once: whichever refuses first names it, "Unsupported model type: pix2struct"
        or "Unknown image_processor_type: 'Pix2StructImageProcessor'".)"""
        p = run("validate", "--runtime", "transformers-js", "--json", self.pkg, timeout=600)
        self.assertEqual(p.returncode, EXIT["validation_failed"], p.stdout + p.stderr)
        check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["runtime.transformers-js"]
        self.assertEqual(check["status"], "fail", check)
        self.assertIn("pix2struct", check["message"].lower(), check)
        # optimum-cli's package: the pipeline itself (validate stops at its ONNX checks, which optimum-cli's
        # ReduceMean nodes fail).
        p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "tjs_seq2seq.mjs"), self.theirs, "--task", "image-to-text",
                            "--subfolder", ""], capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 1, p.stderr[-3000:])
        self.assertIn("pix2struct", p.stderr.strip().splitlines()[-1].lower(), p.stderr[-3000:])


@needs_hf
class Examples(unittest.TestCase):
    """The main job's packages examples/hf-t5 and examples/hf-whisper (exported by the Meson template
    from the fixtures generated at build time, validated --strict there): transformers.js loads them
    by its default file names (encoder_model.onnx + decoder_model_merged.onnx, subfolder '' since
    the files sit at the package root) and, like Optimum, gives torch's greedy ids, which the
    fixture recorded in seq2seq-sources/_reference/<name>.json."""

    EXAMPLE = {"t5": "hf-t5", "whisper": "hf-whisper"}

    def package(self, name):
        return os.path.join(EXAMPLES, self.EXAMPLE[name])

    def reference(self, name):
        return load_json(os.path.join(EXAMPLES, "seq2seq-sources", "_reference", name + ".json"))

    def test_the_examples_are_the_four_file_packages_and_verify(self):
        for name in MODELS:
            with self.subTest(name=name):
                pkg = self.package(name)
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertEqual(sorted(meta["models"]), sorted(ONNX_FILES))
                self.assertTrue(load_json(os.path.join(EXAMPLES, self.EXAMPLE[name] + ".validation.json"))["ok"])
                run("verify", pkg, "--ignore", self.EXAMPLE[name] + "-package.d", check=EXIT["ok"])

    def test_transformers_js_gives_torchs_greedy_ids(self):
        for name, task in MODELS.items():
            with self.subTest(name=name):
                ref = self.reference(name)
                out = node("tjs_seq2seq.mjs", self.package(name), "--task", PIPELINE[name], "--max-new-tokens",
                           len(ref["generated_ids"]), "--subfolder", "")["result"]
                self.assertEqual(out["sequence"], ref["decoder_prompt_ids"] + ref["generated_ids"])
                self.assertEqual(out["text" if name == "whisper" else "generated_text"], ref["generated_text"])
        # What it loads is the merged decoder by name: without it the pipeline cannot start.
        pkg = os.path.join(tempfile.mkdtemp(prefix="modelexport-seq2seq-example-"), "t5")
        try:
            shutil.copytree(self.package("t5"), pkg)
            os.remove(os.path.join(pkg, "decoder_model_merged.onnx"))
            p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "tjs_seq2seq.mjs"), pkg, "--task", PIPELINE["t5"], "--subfolder", ""],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn("decoder_model_merged.onnx", p.stderr)
        finally:
            shutil.rmtree(os.path.dirname(pkg), ignore_errors=True)

    def test_optimum_generate_gives_torchs_greedy_ids(self):
        for name in MODELS:
            with self.subTest(name=name):
                ref = self.reference(name)
                env = dict(ENV, SEQ2SEQ_REFERENCE=os.path.join(EXAMPLES, "seq2seq-sources", "_reference", name + ".json"))
                out = clients("optimum", self.package(name), env=env)
                self.assertEqual(out["files"], ["decoder_model_merged.onnx", "encoder_model.onnx"])
                sequence = out["sequence"]
                if sequence[:len(ref["decoder_prompt_ids"])] == ref["decoder_prompt_ids"]:  # Whisper's generate() drops its prompt
                    sequence = sequence[len(ref["decoder_prompt_ids"]):]
                self.assertEqual(sequence, ref["generated_ids"])


if __name__ == "__main__":
    unittest.main()
