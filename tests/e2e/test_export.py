"""End-to-end exports with the built tool on real torch fixtures (issues 2, 3, 4)."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

import onnx

from common import (EXIT, REPO, SOURCES, TOOL, TempDirTest, load_json, run, sha256, tree_hashes)

TEXT_FILES = {"model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.txt", "export_metadata.json"}
EXPORTER = os.path.join(REPO, "tools", "htp_exporter.py")


def export(source, out, *extra, **kw):
    return run("export", source, out, "--model", "modeling.py:build", *extra, **kw)


class HtpExport(TempDirTest):
    def test_text_package_holds_the_sources_bytes_and_hashes(self):
        src = os.path.join(SOURCES, "text-classification")
        out = self.path("pkg")
        export(src, out, check=0)
        self.assertEqual(set(os.listdir(out)), TEXT_FILES)
        meta = load_json(os.path.join(out, "export_metadata.json"))
        for name in TEXT_FILES - {"model.onnx", "export_metadata.json"}:
            with open(os.path.join(src, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        for name, entry in meta["files"].items():
            self.assertEqual(entry["sha256"], sha256(os.path.join(out, name)), name)
            self.assertEqual(entry["size"], os.path.getsize(os.path.join(out, name)))
            self.assertEqual(oct(os.stat(os.path.join(out, name)).st_mode & 0o777), "0o644")
        self.assertEqual(meta["model"]["task"], "text-classification")
        self.assertEqual(meta["model"]["optimum_class"], "ORTModelForSequenceClassification")
        self.assertEqual(meta["source"], {"kind": "local", "id": "text-classification"})
        self.assertEqual(meta["export_context"]["strategy"], "htp")

    def test_metadata_follows_its_json_schema_for_every_strategy(self):
        import jsonschema
        schema = load_json(os.path.join(REPO, "share", "export_metadata.schema.json"))
        export(os.path.join(SOURCES, "object-detection"), self.path("htp"), "--embed-hierarchy", check=0)
        run("export", os.path.join(SOURCES, "text-classification-prebuilt"), self.path("prebuilt"), check=0)
        for pkg in ("htp", "prebuilt"):
            jsonschema.validate(load_json(self.path(pkg, "export_metadata.json")), schema)

    def test_every_node_gets_a_hugging_face_style_tag(self):
        out = self.path("pkg")
        export(os.path.join(SOURCES, "text-classification"), out, check=0)
        meta = load_json(os.path.join(out, "export_metadata.json"))
        model = onnx.load(os.path.join(out, "model.onnx"))
        stats = meta["statistics"]
        self.assertEqual(stats["node_count"], len(model.graph.node))
        self.assertEqual(stats["tagged_nodes"], len(model.graph.node))
        self.assertEqual(stats["coverage"], 100.0)
        self.assertEqual(stats["direct_matches"] + stats["parent_matches"] + stats["neighbour_matches"] + stats["root_matches"],
                         stats["node_count"])
        self.assertTrue(all(t.startswith("/BertForSequenceClassification") for t in meta["nodes"].values()))
        self.assertEqual(meta["nodes"]["/bert/encoder/layer.1/attention/self/query/MatMul"],
                         "/BertForSequenceClassification/BertModel/BertEncoder/BertLayer.1/BertAttention/BertSelfAttention")
        self.assertEqual(meta["modules"]["bert.encoder.layer.0"]["traced_tag"],
                         "/BertForSequenceClassification/BertModel/BertEncoder/BertLayer.0")
        self.assertEqual(meta["modules"]["bert.encoder.layer.0"]["class_name"], "BertLayer")
        self.assertIsInstance(meta["modules"]["bert.encoder.layer.0"]["execution_order"], int)

    def test_vision_package_has_the_processor_and_vit_tags(self):
        out = self.path("pkg")
        export(os.path.join(SOURCES, "image-classification"), out, check=0)
        self.assertEqual(set(os.listdir(out)), {"model.onnx", "config.json", "preprocessor_config.json", "export_metadata.json"})
        meta = load_json(os.path.join(out, "export_metadata.json"))
        self.assertIn("/ViTForImageClassification/ViTModel/ViTEncoder/ViTLayer.1/ViTAttention/ViTSelfAttention",
                      meta["nodes"].values())
        self.assertEqual(meta["statistics"]["coverage"], 100.0)

    def test_without_embedding_model_onnx_is_exactly_what_the_exporter_wrote(self):
        src = os.path.join(SOURCES, "question-answering")
        out = self.path("pkg")
        export(src, out, check=0)
        # The exporter's own interpreter (MODELEXPORT_PYTHON): another torch writes other bytes.
        python = os.environ.get("MODELEXPORT_PYTHON") or sys.executable
        subprocess.run([python, EXPORTER, "--source", src, "--task", "question-answering", "--onnx",
                        self.path("direct.onnx"), "--modules", self.path("direct.json"), "--model", "modeling.py:build"],
                       check=True, capture_output=True)
        self.assertEqual(sha256(self.path("direct.onnx")), sha256(os.path.join(out, "model.onnx")))

    def test_embedded_tags_pass_the_checker_and_are_reported_by_inspect(self):
        out = self.path("pkg")
        export(os.path.join(SOURCES, "token-classification"), out, "--embed-hierarchy", check=0)
        model = onnx.load(os.path.join(out, "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        meta = load_json(os.path.join(out, "export_metadata.json"))
        self.assertTrue(meta["export_context"]["embed_hierarchy"])
        inspected = load_json_from(run("inspect", out, "--json", check=0).stdout)
        root = "/BertForTokenClassification"
        self.assertEqual(inspected["hierarchy"][root], len(model.graph.node))
        tree = run("inspect", out, check=0).stdout
        self.assertIn("task: token-classification (ORTModelForTokenClassification)", tree)
        self.assertRegex(tree, r"BertForTokenClassification \(\d+ nodes\)\n└── BertModel \(\d+ nodes\)")
        self.assertRegex(tree, r"\n        ├── BertLayer\.0 \(113 nodes\)\n        │   ├── BertAttention \(87 nodes\)\n")
        # The embedded tags, read back from the file, are the metadata's tags.
        self.assertEqual(inspected["hierarchy"][root + "/BertModel/BertEncoder/BertLayer.0"],
                         sum(1 for t in meta["nodes"].values() if t.startswith(root + "/BertModel/BertEncoder/BertLayer.0")))

    def test_two_exports_of_the_same_input_are_byte_identical(self):
        src = os.path.join(SOURCES, "text-classification")
        env = {"SOURCE_DATE_EPOCH": "1700000000"}
        export(src, self.path("a"), env=env, check=0)
        export(src, self.path("b"), env=env, check=0)
        self.assertEqual(tree_hashes(self.path("a")), tree_hashes(self.path("b")))
        meta = load_json(self.path("a", "export_metadata.json"))
        self.assertEqual(meta["export_context"]["timestamp"], "2023-11-14T22:13:20Z")
        for name in os.listdir(self.path("a")):
            with open(self.path("a", name), "rb") as f:
                self.assertNotIn(self.tmp.encode(), f.read(), name)

    def test_without_source_date_epoch_a_new_tool_and_fresh_mtimes_change_nothing(self):
        # Another build directory: a copy of the tool and of the exporter, and a copy of the source whose
        # files all have new mtimes (shutil.copy does not keep them), as a checkout on another machine would.
        tool, script = self.path("bin", "modelexport"), self.path("bin", "htp_exporter.py")
        os.makedirs(self.path("bin"))
        shutil.copy2(TOOL, tool)
        shutil.copy2(EXPORTER, script)
        for sibling in os.listdir(os.path.dirname(EXPORTER)):  # the modules beside it (every htp_*.py), as installed
            if sibling.startswith("htp_") and sibling.endswith(".py"):
                shutil.copy2(os.path.join(os.path.dirname(EXPORTER), sibling), self.path("bin", sibling))
        # and the task table they read, beside them as installed (share/modelexport/)
        shutil.copy2(os.path.join(REPO, "share", "tasks.json"), self.path("bin", "tasks.json"))
        src_a = os.path.join(SOURCES, "text-classification")
        src_b = shutil.copytree(src_a, self.path("elsewhere", "text-classification"), copy_function=shutil.copy)
        unset = {"SOURCE_DATE_EPOCH": ""}
        export(src_a, self.path("a"), "--exporter-script", script, env=unset, check=0)
        later = time.time() + 3600
        for p in (tool, script):
            os.utime(p, (later, later))
        p = subprocess.run([tool, "export", src_b, self.path("b"), "--model", "modeling.py:build", "--exporter-script", script],
                           capture_output=True, text=True, env={**os.environ, **unset})
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.path("a", "export_metadata.json"), "rb") as a, open(self.path("b", "export_metadata.json"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        context = load_json(self.path("a", "export_metadata.json"))["export_context"]
        self.assertEqual((context["timestamp"], context["timestamp_origin"]), ("1970-01-01T00:00:00Z", "fixed"))

    def test_source_date_epoch_must_be_plain_decimal_seconds(self):
        src = os.path.join(SOURCES, "text-classification-prebuilt")
        for value, says in (("17e8", "decimal digits"), (" 1700000000", "decimal digits"), ("-1", "decimal digits"),
                            ("1700000000x", "decimal digits"), ("99999999999999999999", "too large"),
                            ("253402300800", "too large")):
            with self.subTest(value):
                p = run("export", src, self.path("pkg"), env={"SOURCE_DATE_EPOCH": value})
                self.assertFailsWith(p, "usage", "SOURCE_DATE_EPOCH", says)
                self.assertFalse(os.path.exists(self.path("pkg")))
        p = run("export", src, self.path("pkg"), env={"SOURCE_DATE_EPOCH": "253402300799"}, check=0)
        self.assertEqual(load_json(self.path("pkg", "export_metadata.json"))["export_context"]["timestamp"], "9999-12-31T23:59:59Z")

    def test_prebuilt_onnx_keeps_its_bytes_and_gets_scope_tags(self):
        src = os.path.join(SOURCES, "text-classification-prebuilt")
        out = self.path("pkg")
        run("export", src, out, check=0)
        self.assertEqual(sha256(os.path.join(src, "onnx", "model.onnx")), sha256(os.path.join(out, "model.onnx")))
        meta = load_json(os.path.join(out, "export_metadata.json"))
        self.assertEqual(meta["export_context"]["strategy"], "prebuilt")
        self.assertEqual(meta["nodes"]["/bert/encoder/layer.0/attention/self/query/MatMul"],
                         "/BertForSequenceClassification/bert/encoder/layer.0/attention/self/query")
        self.assertEqual(meta["statistics"]["coverage"], 100.0)

    def test_command_strategy_runs_the_users_exporter(self):
        src = os.path.join(SOURCES, "text-classification-prebuilt")
        out = self.path("pkg")
        run("export", src, out, "--strategy", "command", "--command", "cp {source}/onnx/model.onnx {output}/model.onnx", check=0)
        meta = load_json(os.path.join(out, "export_metadata.json"))
        self.assertEqual(meta["export_context"]["strategy"], "command")
        self.assertEqual(sha256(os.path.join(src, "onnx", "model.onnx")), sha256(os.path.join(out, "model.onnx")))

    def test_package_files_are_0644_whatever_mode_the_exporter_gave_them(self):
        src = os.path.join(SOURCES, "text-classification-prebuilt")
        out = self.path("pkg")
        run("export", src, out, "--strategy", "command", "--command",
            "sh -c 'cp {source}/onnx/model.onnx {output}/model.onnx && chmod 600 {output}/model.onnx'", check=0)
        modes = {name: os.stat(os.path.join(out, name)).st_mode & 0o777 for name in os.listdir(out)}
        self.assertEqual(modes, dict.fromkeys(modes, 0o644))
        self.assertIn("model.onnx", modes)


def save_per_tensor(model_path, out_path):
    """Saves a model the way torch.onnx.export does above 2 GiB: one external file per tensor."""
    onnx.save_model(onnx.load(model_path), out_path, save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)


def ort_outputs(pkg):
    """ONNX Runtime (onnxruntime-node) on the package with its tokenizer's inputs."""
    from common import NODE, RUNTIME_DIR
    p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "ort_check.mjs"), pkg], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return load_json_from(p.stdout)["outputs"]


class PerTensorExternalData(TempDirTest):
    """Per-tensor external files (torch above 2 GiB, onnx's all_tensors_to_one_file=False) become one
    model.onnx_data that is tracked, hashed, verified and runs in ONNX Runtime like the original."""
    PREBUILT = os.path.join(SOURCES, "text-classification-prebuilt")
    REFERENCE = os.path.join(os.environ["MODELEXPORT_EXAMPLES"], "text-classification-prebuilt")

    def check_package(self, out, strategy):
        self.assertEqual(sorted(f for f in os.listdir(out) if f.startswith("model")), ["model.onnx", "model.onnx_data"])
        meta = load_json(os.path.join(out, "export_metadata.json"))
        self.assertEqual(meta["export_context"]["strategy"], strategy)
        self.assertEqual(meta["files"]["model.onnx_data"]["sha256"], sha256(os.path.join(out, "model.onnx_data")))
        self.assertEqual(meta["files"]["model.onnx"]["sha256"], sha256(os.path.join(out, "model.onnx")))
        locations = {e.value for t in onnx.load(os.path.join(out, "model.onnx"), load_external_data=False).graph.initializer
                     for e in t.external_data if e.key == "location"}
        self.assertEqual(locations, {"model.onnx_data"})
        run("verify", out, check=0)
        run("validate", out, "--strict", check=0)
        try:
            expected = ort_outputs(self.REFERENCE)
        except (AssertionError, FileNotFoundError) as e:
            self.skipTest(f"ONNX Runtime (onnxruntime-node) not usable here: {e}")
        self.assertEqual(ort_outputs(out), expected)

    def test_prebuilt_gathers_per_tensor_files(self):
        src = self.copy_source("text-classification-prebuilt")
        save_per_tensor(os.path.join(self.PREBUILT, "onnx", "model.onnx"), os.path.join(src, "onnx", "model.onnx"))
        self.assertGreater(len(os.listdir(os.path.join(src, "onnx"))), 10)
        before = tree_hashes(src)
        run("export", src, self.path("pkg"), check=0)
        self.assertEqual(tree_hashes(src), before, "gathering changed the source")
        self.check_package(self.path("pkg"), "prebuilt")

    def test_command_output_with_per_tensor_files_is_gathered(self):
        script = self.path("export.py")
        with open(script, "w") as f:
            f.write("import onnx, sys\n"
                    f"onnx.save_model(onnx.load({os.path.join(self.PREBUILT, 'onnx', 'model.onnx')!r}), sys.argv[1] + '/model.onnx', "
                    "save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)\n")
        run("export", self.PREBUILT, self.path("pkg"), "--strategy", "command", "--command", f"{sys.executable} {script} {{output}}",
            check=0)
        self.check_package(self.path("pkg"), "command")

    def test_htp_exporter_writing_per_tensor_files_is_gathered(self):
        # A stand-in for torch above 2 GiB: the exporter leaves one file per tensor beside model.onnx.
        script = self.path("exporter.py")
        with open(script, "w") as f:
            f.write("import argparse, json, onnx\nap = argparse.ArgumentParser()\n"
                    "for a in ('--source', '--task', '--onnx', '--modules', '--model', '--opset', '--source-boundary'): ap.add_argument(a)\n"
                    "a = ap.parse_args()\n"
                    f"onnx.save_model(onnx.load({os.path.join(self.PREBUILT, 'onnx', 'model.onnx')!r}), a.onnx, "
                    "save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)\n"
                    "json.dump({'modules': []}, open(a.modules, 'w'))\n")
        src = self.copy_source("text-classification")
        run("export", src, self.path("pkg"), "--model", "modeling.py:build", "--exporter-script", script, "--python", sys.executable,
            check=0)
        self.check_package(self.path("pkg"), "htp")


def load_json_from(text):
    import json
    return json.loads(text)


GRID_SAMPLE_MODEL = """
import torch
from torch import nn


class GridSampler(nn.Module):
    \"\"\"Reads each pixel through grid_sample, which ONNX has from opset 16 (RT-DETR's deformable attention).\"\"\"

    def __init__(self, config):
        super().__init__()
        self.classifier = nn.Linear(3, len(config["id2label"]))

    def forward(self, pixel_values):
        grid = torch.tanh(pixel_values[:, :2].permute(0, 2, 3, 1))
        sampled = nn.functional.grid_sample(pixel_values, grid, align_corners=False)
        return (self.classifier(sampled.mean(dim=(2, 3))),)


def build(config):
    return GridSampler(config)
"""


class OpsetRaise(TempDirTest):
    """Without --opset, the default is raised to the opset an operator of the model needs; --opset is exact."""

    def source(self):
        src = self.path("src")
        shutil.copytree(os.path.join(SOURCES, "image-classification"), src)
        for name in os.listdir(src):
            if name.endswith((".bin", ".safetensors")):
                os.remove(os.path.join(src, name))
        with open(os.path.join(src, "modeling.py"), "w") as f:
            f.write(GRID_SAMPLE_MODEL)
        import torch
        scope = {}
        exec(GRID_SAMPLE_MODEL, scope)
        torch.manual_seed(0)
        torch.save(scope["build"](load_json(os.path.join(src, "config.json"))).state_dict(), os.path.join(src, "pytorch_model.bin"))
        return src

    def test_the_default_rises_to_the_operators_opset(self):
        out = self.path("pkg")
        export(self.source(), out, check=0)
        model = onnx.load(os.path.join(out, "model.onnx"))
        self.assertEqual({o.version for o in model.opset_import if o.domain in ("", "ai.onnx")}, {16})
        self.assertIn("GridSample", {n.op_type for n in model.graph.node})

    def test_an_asked_opset_is_kept_and_the_error_names_the_operator_and_the_way_out(self):
        out = self.path("pkg")
        p = export(self.source(), out, "--opset", "14", check=EXIT["export_failed"])
        self.assertIn("grid_sampler at opset 14", p.stderr)
        self.assertIn("pass --opset 16", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(out))


class ExportFailures(TempDirTest):
    """Bad inputs: one line naming the file and the problem, the documented code, no package."""

    def fake_exporter(self, body):
        script = self.path("fake_exporter.py")
        with open(script, "w") as f:
            f.write("import sys, time\n" + body + "\n")
        return script

    def test_missing_config_is_exit_4_naming_the_source(self):
        src = self.copy_source("text-classification")
        os.remove(os.path.join(src, "config.json"))
        p = export(src, self.path("pkg"))
        self.assertFailsWith(p, "config_missing", src, "config.json required")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_unknown_model_is_exit_3(self):
        p = run("export", "nobody/no-such-model", self.path("pkg"), env={"HF_HUB_CACHE": self.path("cache")})
        self.assertFailsWith(p, "model_not_found", "nobody/no-such-model", self.path("cache", "models--nobody--no-such-model"))

    def test_malformed_config_is_exit_5(self):
        src = self.copy_source("text-classification")
        with open(os.path.join(src, "config.json"), "w") as f:
            f.write('{"model_type": "bert",')
        p = export(src, self.path("pkg"))
        self.assertFailsWith(p, "invalid_input", os.path.join(src, "config.json"), "invalid JSON")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_failing_exporter_reports_status_and_last_lines_and_keeps_the_old_package(self):
        src = os.path.join(SOURCES, "text-classification")
        out = self.path("pkg")
        export(src, out, check=0)
        before = tree_hashes(out)
        script = self.fake_exporter("print('RuntimeError: boom in forward', file=sys.stderr); sys.exit(3)")
        p = export(src, out, "--exporter-script", script)
        self.assertFailsWith(p, "export_failed", "exit status 3", "boom in forward")
        self.assertEqual(tree_hashes(out), before)
        self.assertEqual(sorted(os.listdir(self.tmp)), sorted(["pkg", "fake_exporter.py"]))  # no staging directory, no lock

    def test_hung_exporter_is_stopped_after_the_timeout(self):
        script = self.fake_exporter("time.sleep(600)")
        start = time.monotonic()
        p = export(os.path.join(SOURCES, "text-classification"), self.path("pkg"), "--exporter-script", script, "--timeout", "2")
        self.assertLess(time.monotonic() - start, 30)
        self.assertFailsWith(p, "export_failed", "timed out after 2 s")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_exporter_that_writes_no_onnx(self):
        script = self.fake_exporter("print('all good, honestly')")
        p = export(os.path.join(SOURCES, "text-classification"), self.path("pkg"), "--exporter-script", script)
        self.assertFailsWith(p, "export_failed", "wrote no ONNX model")

    def test_exporter_that_writes_garbage(self):
        script = self.fake_exporter(
            "import argparse\nap = argparse.ArgumentParser(); [ap.add_argument(a) for a in "
            "['--source','--task','--onnx','--modules','--model','--opset']]\n"
            "a = ap.parse_args()\nopen(a.onnx, 'wb').write(b'\\x08garbage' * 10)\n"
            "open(a.modules, 'w').write('{\"modules\": []}')\nprint('\\x00\\xff binary noise')")
        p = export(os.path.join(SOURCES, "text-classification"), self.path("pkg"), "--exporter-script", script)
        self.assertFailsWith(p, "invalid_input", "model.onnx", "not a valid ONNX model")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_output_inside_the_source_is_a_usage_error(self):
        src = self.copy_source("text-classification")
        p = export(src, os.path.join(src, "pkg"))
        self.assertFailsWith(p, "usage", "inside the model source")

    def test_output_that_is_a_file_is_an_io_error(self):
        open(self.path("pkg"), "w").close()
        p = export(os.path.join(SOURCES, "text-classification"), self.path("pkg"))
        self.assertFailsWith(p, "io_error", self.path("pkg"), "not a directory")

    def test_declared_outputs_must_match_and_quiet_keeps_the_hint(self):
        # --quiet is what the build templates pass: the error and its hint must still reach the build log.
        p = export(os.path.join(SOURCES, "image-classification"), self.path("pkg"), "--quiet",
                   "--expect", "model.onnx,config.json,tokenizer.json,vocab.txt,export_metadata.json")
        self.assertFailsWith(p, "usage", "the package does not match the declared outputs (declared but not produced: "
                             "tokenizer.json, vocab.txt; produced but not declared: preprocessor_config.json)")
        self.assertEqual(p.stdout, "")
        hints = [l for l in p.stderr.splitlines() if l.startswith("  hint: ")]
        self.assertEqual(hints, ["  hint: if the source changed since the build was configured, reconfigure (meson setup "
                                 "--reconfigure, or rerun cmake); if the model's 'files' list is explicit, remove tokenizer.json, "
                                 "vocab.txt and add preprocessor_config.json there"], p.stderr)
        self.assertFalse(os.path.exists(self.path("pkg")))


class Atomicity(TempDirTest):
    def test_kill_9_at_any_point_leaves_the_previous_package_or_none(self):
        src = os.path.join(SOURCES, "fill-mask")
        out = self.path("pkg")
        export(src, out, check=0)
        good = tree_hashes(out)
        for delay in (0.05, 0.3, 0.6, 0.9, 1.2):
            proc = subprocess.Popen([TOOL, "export", src, out, "--model", "modeling.py:build", "--embed-hierarchy"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            now = tree_hashes(out)
            # Either untouched, or the complete new package (embedded variant) if the kill came after the swap.
            if now != good:
                self.assertEqual(run("verify", out).returncode, 0, f"partial package after kill at {delay}s")
                good = now
        export(src, out, check=0)  # the next run cleans any staging directory left behind
        self.assertEqual(sorted(os.listdir(self.tmp)), ["pkg"])  # and removes its lock when done

    def test_two_concurrent_exports_give_one_complete_package(self):
        src = os.path.join(SOURCES, "text-classification")
        out = self.path("pkg")
        procs = [subprocess.Popen([TOOL, "export", src, out, "--model", "modeling.py:build"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
        self.assertEqual(run("verify", out).returncode, 0)
        self.assertEqual(set(os.listdir(out)), TEXT_FILES)


class Verify(TempDirTest):
    def test_verify_catches_a_one_byte_change_a_missing_and_an_added_file(self):
        out = self.path("pkg")
        export(os.path.join(SOURCES, "text-classification"), out, check=0)
        self.assertEqual(run("verify", out).returncode, 0)
        path = os.path.join(out, "tokenizer.json")
        data = bytearray(open(path, "rb").read())
        data[10] ^= 1
        open(path, "wb").write(bytes(data))
        p = run("verify", out)
        self.assertEqual(p.returncode, EXIT["package_modified"])
        self.assertIn(f"{path}: changed", p.stdout)
        os.remove(os.path.join(out, "vocab.txt"))
        open(os.path.join(out, "merges.txt"), "w").close()
        p = run("verify", out, "--json")
        problems = {(x["file"], x["problem"]) for x in load_json_from(p.stdout)["problems"]}
        self.assertEqual(problems, {("tokenizer.json", "changed"), ("vocab.txt", "missing"), ("merges.txt", "added")})


class HubCache(TempDirTest):
    """Hub ids resolved offline in a real huggingface_hub cache tree (refs, snapshots, blob links)."""

    def make_cache(self):
        cache = self.path("hub")
        repo = os.path.join(cache, "models--acme--tiny-bert")
        src = os.path.join(SOURCES, "text-classification")
        commits = {"main": "1" * 40, "v2": "2" * 40}
        for rev, commit in commits.items():
            snap = os.path.join(repo, "snapshots", commit)
            os.makedirs(snap)
            for name in sorted(os.listdir(src)):
                data = open(os.path.join(src, name), "rb").read()
                if rev == "v2" and name == "config.json":
                    data = data.replace(b'"NEGATIVE"', b'"BAD"')
                blob = hashlib.sha256(data).hexdigest()
                os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
                open(os.path.join(repo, "blobs", blob), "wb").write(data)
                os.symlink(os.path.join("..", "..", "blobs", blob), os.path.join(snap, name))
            os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
            open(os.path.join(repo, "refs", rev), "w").write(commit)
        return cache, repo, commits

    def test_export_by_branch_tag_and_commit_records_the_commit(self):
        cache, repo, commits = self.make_cache()
        env = {"HF_HUB_CACHE": cache}
        for spec, commit in (("acme/tiny-bert", commits["main"]), ("acme/tiny-bert@v2", commits["v2"]),
                             ("acme/tiny-bert@" + commits["v2"], commits["v2"])):
            with self.subTest(spec):
                out = self.path("pkg-" + commit[:1] + str(len(spec)))
                run("export", spec, out, "--model", "modeling.py:build", env=env, check=0)
                meta = load_json(os.path.join(out, "export_metadata.json"))
                self.assertEqual(meta["source"]["kind"], "hub_cache")
                self.assertEqual(meta["source"]["id"], "acme/tiny-bert")
                self.assertEqual(meta["source"]["commit"], commit)
                for name in os.listdir(out):
                    self.assertFalse(os.path.islink(os.path.join(out, name)))
                    self.assertEqual(os.stat(os.path.join(out, name)).st_nlink, 1, name)
                label = load_json(os.path.join(out, "config.json"))["id2label"]["0"]
                self.assertEqual(label, "BAD" if commit == commits["v2"] else "NEGATIVE")

    def test_hf_home_is_used_when_hf_hub_cache_is_not_set(self):
        cache, _, _ = self.make_cache()
        os.makedirs(self.path("home"))
        os.rename(cache, self.path("home", "hub"))
        env = {"HF_HOME": self.path("home"), "HF_HUB_CACHE": ""}
        run("export", "acme/tiny-bert", self.path("pkg"), "--model", "modeling.py:build", env=env, check=0)

    def test_a_blob_link_leaving_the_repository_is_refused(self):
        cache, repo, commits = self.make_cache()
        open(self.path("evil.json"), "w").write("{}")
        link = os.path.join(repo, "snapshots", commits["main"], "special_tokens_map.json")
        os.remove(link)
        os.symlink(self.path("evil.json"), link)
        p = run("export", "acme/tiny-bert", self.path("pkg"), "--model", "modeling.py:build", env={"HF_HUB_CACHE": cache})
        self.assertFailsWith(p, "invalid_input", "special_tokens_map.json", "refusing to read it")
        self.assertFalse(os.path.exists(self.path("pkg")))

    def test_invalid_ids_are_rejected(self):
        for spec in ("acme/../../etc", "acme/x@../../refs", "acme/x\x01"):
            with self.subTest(spec):
                p = run("export", spec, self.path("pkg"), env={"HF_HUB_CACHE": self.path("hub")})
                self.assertFailsWith(p, "invalid_input", "model id")


if __name__ == "__main__":
    unittest.main()
