"""The package layouts (and the hub form of encoder-decoders): `export --layout flat|hub`.

`hub` puts every ONNX file and its external data under onnx/, as Hub ONNX repositories do; the
other files stay at the root. Proven on real files in real runtimes, for an encoder task (the
text-classification mirror), a decoder with past (genuine GPT-2) and a seq2seq model (genuine T5):
- the C++ validator with --runtime onnxruntime (and optimum / transformers-js for the encoder);
- Optimum's ORTModelFor*.from_pretrained(pkg) with no options: optimum-onnx globs `**/*.onnx` and
  takes onnx/model.onnx (onnx/encoder_model.onnx + onnx/decoder_model_merged.onnx) by itself;
- transformers.js' pipeline(task, pkg) with no file options: its default subfolder is 'onnx'.
The flat layout's own tests (test_decoders, test_seq2seq, test_matrix) keep proving the default.

LayoutRules: the export cache ignores the layout (a hub export after a flat one is a hit and
byte-identical to an uncached hub export), pack/unpack/bindings/inspect/verify read both layouts, a
package with the same model at the root and under onnx/ is an error naming both, re-exports switch
layouts in place, and plan lists the files where the export writes them.
"""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from common import EXAMPLES, EXIT, REPO, SOURCES, load_json, node, run, sha256, tree_hashes
from test_decoders import DECODER_SOURCES, reference as decoder_reference
from test_optimum import needs_hf, optimum
from test_seq2seq import ENV, FIXTURES, ONNX_FILES, clients, pinned

ROOT_FILES = ["config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
              "export_metadata.json"]


def files_of(pkg):
    return sorted(tree_hashes(pkg))


class HubPackages:
    """cls.tmp with hub exports: the encoder mirror, genuine GPT-2 and (when asked) genuine T5."""

    with_t5 = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-layout-")
        cls.encoder = os.path.join(cls.tmp, "hub-text-classification")
        run("export", os.path.join(SOURCES, "text-classification"), cls.encoder, "--model", "modeling.py:build",
            "--layout", "hub", check=EXIT["ok"])
        cls.decoder = os.path.join(cls.tmp, "hub-gpt2")
        run("export", os.path.join(DECODER_SOURCES, "gpt2"), cls.decoder, "--layout", "hub", check=EXIT["ok"], timeout=900)
        if cls.with_t5:
            cls.sources = os.path.join(cls.tmp, "seq2seq-sources")
            pinned(FIXTURES, cls.sources)
            cls.t5 = os.path.join(cls.tmp, "hub-t5")
            run("export", os.path.join(cls.sources, "t5"), cls.t5, "--layout", "hub", check=EXIT["ok"], timeout=900)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)


@needs_hf
class HubLayout(HubPackages, unittest.TestCase):
    with_t5 = True

    def test_onnx_files_under_onnx_the_rest_at_the_root_and_recorded(self):
        cases = {self.encoder: ["onnx/model.onnx"], self.decoder: ["onnx/model.onnx"],
                 self.t5: ["onnx/" + f for f in ONNX_FILES]}
        for pkg, onnx_files in cases.items():
            with self.subTest(pkg=os.path.basename(pkg)):
                files = files_of(pkg)
                self.assertEqual(sorted(f for f in files if "/" in f), sorted(onnx_files))
                self.assertFalse([f for f in files if f.endswith(".onnx") and "/" not in f])
                meta = load_json(os.path.join(pkg, "export_metadata.json"))
                self.assertEqual(meta["layout"], {"name": "hub", "onnx_files": onnx_files})
                self.assertEqual(sorted(meta["files"]), sorted(f for f in files if f != "export_metadata.json"))
                for f in onnx_files:
                    self.assertEqual(meta["files"][f]["sha256"], sha256(os.path.join(pkg, f)))
                    self.assertEqual(meta["files"][f]["role"], "model")
                run("verify", pkg, check=EXIT["ok"])
        # Sections of a multi-file package stay keyed by file name; layout.onnx_files has their paths.
        self.assertEqual(sorted(load_json(os.path.join(self.t5, "export_metadata.json"))["models"]), sorted(ONNX_FILES))

    def test_validate_strict_with_onnxruntime(self):
        for pkg in (self.encoder, self.decoder, self.t5):
            with self.subTest(pkg=os.path.basename(pkg)):
                p = run("validate", "--strict", "--runtime", "onnxruntime", pkg, check=EXIT["ok"])
                self.assertIn("ok    package.layout: hub", p.stdout)
                self.assertIn("ok    runtime.onnxruntime: loaded and ran one inference", p.stdout)
        p = run("validate", "--strict", "--runtime", "onnxruntime", self.t5, check=EXIT["ok"])
        self.assertIn("ok    signature.encoder_decoder", p.stdout)
        self.assertEqual(p.stdout.count("ok    onnx.checker"), len(ONNX_FILES))
        for runtime in ("optimum", "transformers-js"):
            with self.subTest(runtime=runtime):
                p = run("validate", "--strict", "--runtime", runtime, self.encoder, check=EXIT["ok"])
                self.assertIn(f"ok    runtime.{runtime}", p.stdout)

    def test_optimum_from_pretrained_with_no_options(self):
        # Encoder: the same logits as the flat example package of the same source.
        hub = optimum(self.encoder, "ORTModelForSequenceClassification")
        flat = optimum(os.path.join(EXAMPLES, "text-classification"), "ORTModelForSequenceClassification")
        self.assertEqual(hub["model_file"], "onnx/model.onnx")
        self.assertEqual(flat["model_file"], "model.onnx")
        self.assertEqual(hub["outputs"], flat["outputs"])
        # Decoder: generate() gives transformers' greedy ids.
        ref = decoder_reference("hf-gpt2")
        out = optimum(self.decoder, "ORTModelForCausalLM", "--text", ref["prompt"], "--generate", str(len(ref["generated_ids"])))
        self.assertEqual(out["model_file"], "onnx/model.onnx")
        self.assertEqual(out["generate"]["generated_ids"], ref["generated_ids"])
        # Seq2seq: ORTModelForSeq2SeqLM finds onnx/encoder_model.onnx and onnx/decoder_model_merged.onnx.
        env = dict(ENV, SEQ2SEQ_REFERENCE=os.path.join(self.sources, "_reference", "t5.json"))
        out = clients("optimum", self.t5, "t5", env=env)
        self.assertEqual(out["files"], ["onnx/decoder_model_merged.onnx", "onnx/encoder_model.onnx"])
        ref = load_json(os.path.join(self.sources, "_reference", "t5.json"))
        self.assertEqual(out["sequence"], ref["decoder_prompt_ids"] + ref["generated_ids"])  # generate() keeps T5's start id

    def test_transformers_js_pipeline_with_no_file_options(self):
        hub = node("tjs_pipeline.mjs", self.encoder, "--task", "text-classification", "--layout", "hub")["result"]
        flat = node("tjs_pipeline.mjs", os.path.join(EXAMPLES, "text-classification"), "--task", "text-classification")["result"]
        self.assertEqual(hub, flat)
        ref = decoder_reference("hf-gpt2")
        out = node("tjs_pipeline.mjs", self.decoder, "--task", "text-generation", "--layout", "hub", "--text", ref["prompt"],
                   "--max-new-tokens", len(ref["generated_ids"]))["result"]
        self.assertEqual(out["generated_ids"], ref["generated_ids"])
        ref = load_json(os.path.join(self.sources, "_reference", "t5.json"))
        out = node("tjs_seq2seq.mjs", self.t5, "--task", "text2text-generation", "--max-new-tokens", len(ref["generated_ids"]))  # no --subfolder
        self.assertEqual(out["result"]["sequence"], ref["decoder_prompt_ids"] + ref["generated_ids"])


class LayoutRules(unittest.TestCase):
    """Without the pinned Python: the text-classification mirror exports on Debian's torch too."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="modelexport-layout-rules-")
        cls.source = os.path.join(SOURCES, "text-classification")
        cls.hub = os.path.join(cls.tmp, "hub")
        run("export", cls.source, cls.hub, "--model", "modeling.py:build", "--layout", "hub", check=EXIT["ok"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def copy(self, name):
        dest = self.path(name)
        shutil.copytree(self.hub, dest)
        self.addCleanup(shutil.rmtree, dest, ignore_errors=True)
        return dest

    def test_the_cache_ignores_the_layout(self):
        cache = self.path("cache")
        env = {"MODELEXPORT_NO_CACHE": "", "MODELEXPORT_CACHE_DIR": cache}
        results = {}
        for name, args in (("flat", []), ("hub-cached", ["--layout", "hub"]), ("hub-uncached", ["--layout", "hub", "--no-cache"])):
            report = self.path(name + ".report.json")
            run("export", self.source, self.path(name), "--model", "modeling.py:build", "--report", report, *args,
                env=env, check=EXIT["ok"])
            results[name] = load_json(report)["cache"]
        self.assertEqual(results["flat"]["result"], "miss")
        self.assertEqual(results["hub-cached"]["result"], "hit-local")
        self.assertEqual(results["hub-cached"]["key"], results["flat"]["key"])
        self.assertEqual(results["hub-uncached"]["result"], "disabled")
        self.assertEqual(tree_hashes(self.path("hub-cached")), tree_hashes(self.path("hub-uncached")))
        flat, hub = tree_hashes(self.path("flat")), tree_hashes(self.path("hub-cached"))
        self.assertEqual(flat["model.onnx"], hub["onnx/model.onnx"])
        run("cache", "wait", env=env, check=EXIT["ok"])  # the miss's background store is done before the directory goes

    def test_every_strategy_and_embed_hierarchy(self):
        # prebuilt from a hub package (onnx/model.onnx), command, and htp with tags embedded.
        cases = {"prebuilt": [self.hub, "--strategy", "prebuilt"],
                 "command": [self.source, "--strategy", "command", "--command",
                             f"cp {os.path.join(self.hub, 'onnx', 'model.onnx')} {{output}}/model.onnx"],
                 "embedded": [self.source, "--model", "modeling.py:build", "--embed-hierarchy"]}
        for name, (source, *args) in cases.items():
            with self.subTest(name):
                out = self.path("strategy-" + name)
                run("export", source, out, "--layout", "hub", *args, check=EXIT["ok"])
                self.assertIn("onnx/model.onnx", files_of(out))
                self.assertNotIn("model.onnx", files_of(out))
                run("validate", "--strict", "--runtime", "onnxruntime", out, check=EXIT["ok"])
                run("verify", out, check=EXIT["ok"])
                if name != "embedded":
                    self.assertEqual(sha256(os.path.join(out, "onnx", "model.onnx")), sha256(os.path.join(self.hub, "onnx", "model.onnx")))

    def test_reexports_switch_layouts_in_place(self):
        out = self.path("switch")
        for layout, model in (("flat", "model.onnx"), ("hub", "onnx/model.onnx"), ("flat", "model.onnx")):
            run("export", self.source, out, "--model", "modeling.py:build", "--layout", layout, check=EXIT["ok"])
            self.assertIn(model, files_of(out))
            self.assertEqual(len([f for f in files_of(out) if f.endswith(".onnx")]), 1)
            run("verify", out, check=EXIT["ok"])

    def test_the_same_model_at_the_root_and_under_onnx_is_an_error_naming_both(self):
        pkg = self.copy("both")
        shutil.copy(os.path.join(pkg, "onnx", "model.onnx"), os.path.join(pkg, "model.onnx"))
        both = (os.path.join(pkg, "model.onnx"), os.path.join(pkg, "onnx", "model.onnx"))
        p = run("validate", pkg, check=EXIT["validation_failed"])
        [line] = [l for l in p.stdout.splitlines() if "package.layout" in l]
        for path in both:
            self.assertIn(path, line)
        for args in (("inspect", pkg), ("pack", pkg, "--output", self.path("both.onnx")),
                     ("bindings", pkg, "--header", self.path("both.hpp")), ("embed", pkg, "--output", self.path("both.S"),
                                                                           "--header", self.path("both_data.hpp"))):
            with self.subTest(args[0]):
                p = run(*args, check=EXIT["invalid_input"])
                lines = p.stderr.strip().splitlines()
                self.assertTrue(lines[0].startswith(f"modelexport: error: {pkg}: holds model.onnx both at the root"), lines[0])
                for path in both:
                    self.assertIn(path, lines[0])
                self.assertFalse([f for f in os.listdir(self.tmp) if f.startswith("both.") or f.startswith("both_")])
        # verify reports the stray copy as added (the metadata lists onnx/model.onnx only).
        p = run("verify", pkg, check=EXIT["package_modified"])
        self.assertIn("model.onnx", p.stdout + p.stderr)

    def test_a_package_without_metadata_is_read_where_its_files_are(self):
        pkg = self.copy("no-metadata")
        os.remove(os.path.join(pkg, "export_metadata.json"))
        p = run("validate", "--strict", "--task", "text-classification", pkg, check=EXIT["ok"])
        self.assertIn("ok    package.layout: hub", p.stdout)
        self.assertIn("model: " + os.path.join(pkg, "onnx", "model.onnx"), run("inspect", pkg, check=EXIT["ok"]).stdout)

    def test_inspect_bindings_embed_pack_and_unpack_read_the_hub_layout(self):
        model = os.path.join(self.hub, "onnx", "model.onnx")
        text = run("inspect", self.hub, check=EXIT["ok"]).stdout
        self.assertIn("model: " + model, text)
        self.assertIn("task: text-classification", run("inspect", model, check=EXIT["ok"]).stdout)  # the file alone finds its package
        header = self.path("hub_model.hpp")
        run("bindings", self.hub, "--header", header, "--namespace", "hub", check=EXIT["ok"])
        with open(header) as f:
            self.assertIn('"onnx/model.onnx"', f.read())
        run("embed", self.hub, "--output", self.path("hub_data.S"), "--header", self.path("hub_data.hpp"), check=EXIT["ok"])
        with open(self.path("hub_data.hpp")) as f:
            self.assertIn(sha256(model), f.read())
        packed = self.path("hub-packed.onnx")
        run("pack", self.hub, "--output", packed, check=EXIT["ok"])
        out = self.path("hub-unpacked")
        run("unpack", packed, out, check=EXIT["ok"])
        self.assertEqual(tree_hashes(out), tree_hashes(self.hub))
        run("verify", out, check=EXIT["ok"])

    def test_plan_lists_files_at_their_layout_paths(self):
        flat = json.loads(run("plan", self.source, "--model", "modeling.py:build", check=EXIT["ok"]).stdout)
        hub = json.loads(run("plan", self.source, "--model", "modeling.py:build", "--layout", "hub", check=EXIT["ok"]).stdout)
        self.assertEqual((flat["layout"], hub["layout"]), ("flat", "hub"))
        self.assertEqual(hub["files"], ["onnx/" + f if f.endswith(".onnx") else f for f in flat["files"]])
        self.assertEqual(sorted(hub["files"]), files_of(self.hub))
        for args in (("plan", self.source, "--layout", "onnx"), ("export", self.source, self.path("bad"), "--layout", "onnx")):
            with self.subTest(args[0]):
                p = run(*args, check=EXIT["usage"])
                self.assertIn("--layout", p.stderr.splitlines()[0])
                self.assertFalse(os.path.exists(self.path("bad")))

    def test_expect_and_depfile_use_layout_paths(self):
        out, depfile = self.path("declared"), self.path("declared.d")
        expect = ",".join(sorted(files_of(self.hub)))
        run("export", self.source, out, "--model", "modeling.py:build", "--layout", "hub", "--expect", expect,
            "--depfile", depfile, check=EXIT["ok"])
        with open(depfile) as f:
            self.assertTrue(f.read().startswith(os.path.join(out, sorted(files_of(self.hub))[0]) + ":"))
        p = run("export", self.source, out, "--model", "modeling.py:build", "--layout", "hub",
                "--expect", expect.replace("onnx/model.onnx", "model.onnx"), check=EXIT["usage"])
        self.assertIn("declared but not produced: model.onnx", p.stderr)
        self.assertIn("produced but not declared: onnx/model.onnx", p.stderr)


if __name__ == "__main__":
    unittest.main()
