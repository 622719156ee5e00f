"""User experience: progress and colours, the export report, hierarchy
pictures, and the self-contained single-file model."""
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import onnx

from common import EXAMPLES, NODE, RUNTIME_DIR, SOURCES, TOOL, TempDirTest, load_json, run, tree_hashes

ESC = "\x1b["


def on_terminal(*args, env=None):
    """Runs modelexport under a pseudo-terminal (util-linux `script`); returns what the terminal showed."""
    cmd = " ".join([TOOL, *map(str, args)])
    full = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    full.update(env or {})
    # Bytes, not text mode: universal newlines would turn the live line's "\r" into "\n".
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, env=full, timeout=300)
    return p.returncode, p.stdout.decode()


class Progress(TempDirTest):
    def export_args(self, out):
        return ["export", os.path.join(SOURCES, "text-classification"), self.path(out), "--model", "modeling.py:build"]

    def test_terminal_shows_live_steps_in_colour(self):
        code, screen = on_terminal(*self.export_args("pkg"), env={"TERM": "xterm"})
        self.assertEqual(code, 0, screen)
        self.assertIn("running the torch exporter", screen)
        for step in ("resolve", "export", "project", "copy", "commit"):
            self.assertRegex(screen, rf"{re.escape(ESC)}1m{step}{re.escape(ESC)}0m {re.escape(ESC)}32mdone{re.escape(ESC)}0m in [0-9.]+ s")
        self.assertIn("\r" + ESC + "K", screen)  # the live line is redrawn in place

    def test_no_color_keeps_progress_but_drops_colours(self):
        code, screen = on_terminal(*self.export_args("pkg"), env={"TERM": "xterm", "NO_COLOR": "1"})
        self.assertEqual(code, 0, screen)
        self.assertIn("export done in", screen)
        self.assertNotRegex(screen, r"\x1b\[[0-9;]*m")

    def test_quiet_on_a_terminal_prints_only_errors(self):
        code, screen = on_terminal("-q", *self.export_args("pkg"), env={"TERM": "xterm"})
        self.assertEqual((code, screen), (0, ""))
        code, screen = on_terminal("-q", "export", self.path("nowhere"), self.path("pkg2"), env={"TERM": "xterm"})
        self.assertEqual(code, 3)
        self.assertIn("error:", screen)
        self.assertIn(self.path("nowhere"), screen)

    def test_not_a_terminal_is_silent_unless_verbose(self):
        p = run(*self.export_args("a"))
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertEqual(p.stdout.strip(), self.path("a"))
        p = run("--verbose", *self.export_args("b"))
        self.assertEqual(p.returncode, 0)
        self.assertIn("modelexport: export done in", p.stderr)
        self.assertIn("  | htp: exporting to ONNX (opset 14)", p.stderr)  # the exporter's own output, streamed
        self.assertNotIn(ESC, p.stderr)


class SideOutputs(TempDirTest):
    """--depfile and --report are written before the package is swapped in: a failure to write
    them fails the export with no new package, and never replaces the export's own error."""

    SRC = os.path.join(SOURCES, "image-classification")

    def export(self, out, *extra, **kw):
        return run("export", self.SRC, out, "--model", "modeling.py:build", *extra, **kw)

    def test_an_unwritable_depfile_fails_the_export_and_keeps_the_previous_package(self):
        out = self.path("pkg")
        self.export(out, check=0)
        before = tree_hashes(out)
        p = self.export(out, "--embed-hierarchy", "--depfile", self.path("no-such-dir", "pkg.d"))
        self.assertEqual(p.returncode, 8, p.stderr)
        self.assertIn("pkg.d", p.stderr)
        self.assertEqual(tree_hashes(out), before)  # the embedded-tags package was not committed

    def test_an_unwritable_report_fails_the_export_with_no_package(self):
        out = self.path("pkg")
        p = self.export(out, "--report", self.path("no-such-dir", "report.json"))
        self.assertEqual(p.returncode, 8, p.stderr)
        self.assertIn("report.json", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_a_report_problem_never_replaces_the_exports_own_error(self):
        src = self.path("src")
        os.makedirs(src)  # no config.json: exit 4
        p = run("export", src, self.path("pkg"), "--report", self.path("no-such-dir", "report.json"))
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("config.json", p.stderr)

    def test_a_depfile_inside_the_package_arrives_with_it(self):
        out = self.path("pkg")
        depfile = os.path.join(out, "pkg.d")
        self.export(out, "--depfile", depfile, check=0)
        with open(depfile) as f:
            self.assertIn("config.json", f.read())
        self.export(out, "--depfile", depfile, "--embed-hierarchy", check=0)
        self.assertTrue(os.path.isfile(depfile))


class Report(TempDirTest):
    def test_report_has_step_timings_sizes_and_result(self):
        out = self.path("pkg")
        run("export", os.path.join(SOURCES, "image-classification"), out, "--model", "modeling.py:build", "--validate",
            "--report", self.path("ok.json"), check=0)
        report = load_json(self.path("ok.json"))
        self.assertEqual(report["result"], "ok")
        self.assertEqual(set(report["steps_seconds"]), {"resolve", "export", "project", "copy", "validate", "commit"})
        self.assertTrue(all(v >= 0 for v in report["steps_seconds"].values()))
        if not report["cache"]["result"].startswith("hit"):  # the exporter ran: its phases inside "export"
            self.assertLessEqual({"start", "load", "torch.onnx.export"}, set(report["exporter_seconds"]))
            self.assertLessEqual(sum(report["exporter_seconds"].values()), report["steps_seconds"]["export"])
        sizes = report["sizes"]
        self.assertEqual(sizes["model"], os.path.getsize(os.path.join(out, "model.onnx")))
        self.assertEqual(sizes["configs"], sum(os.path.getsize(os.path.join(out, f)) for f in ("config.json", "preprocessor_config.json")))
        self.assertAlmostEqual(sizes["overhead_percent"], 100.0 * (sizes["configs"] + sizes["metadata"]) / sizes["model"])
        self.assertEqual(report["version"], run("--version").stdout.split()[1])
        self.assertFalse(os.path.exists(os.path.join(out, "ok.json")))

    def test_failed_export_reports_the_reason_and_a_jq_one_liner_summarises_reports(self):
        os.makedirs(self.path("reports"))
        run("export", os.path.join(SOURCES, "image-classification"), self.path("a"), "--model", "modeling.py:build",
            "--report", self.path("reports", "a.json"), check=0)
        p = run("export", self.path("missing"), self.path("b"), "--report", self.path("reports", "b.json"))
        self.assertEqual(p.returncode, 3)
        failed = load_json(self.path("reports", "b.json"))
        self.assertEqual((failed["result"], failed["exit_code"]), ("failed", 3))
        self.assertIn("no such directory", failed["failure"])
        # The one-liner of docs/cli.md.
        q = subprocess.run("jq -s '{exports: length, ok: map(select(.result == \"ok\")) | length, "
                           "failed: map(select(.result != \"ok\") | .failure), "
                           "model_bytes: map(.sizes.model // 0) | add, "
                           "cache_hit_rate: (map(select((.cache.result // \"disabled\") != \"disabled\")) as $c | "
                           "if ($c | length) == 0 then null else ($c | map(select(.cache.result | startswith(\"hit\"))) | length) / ($c | length) end)}' "
                           + self.path("reports") + "/*.json",
                           shell=True, capture_output=True, text=True, check=True)
        summary = json.loads(q.stdout)
        self.assertEqual((summary["exports"], summary["ok"]), (2, 1))
        self.assertEqual(summary["model_bytes"], os.path.getsize(self.path("a", "model.onnx")))
        self.assertIsNone(summary["cache_hit_rate"])  # the suite runs without the cache (MODELEXPORT_NO_CACHE)


class SideOutputs(TempDirTest):
    """--depfile and --report are written before the package is swapped in (docs/design.md §11):
    a side output that cannot be written never leaves a new package behind an error exit, and a
    report that cannot be written never changes which error a failing export reports."""

    SOURCE = os.path.join(SOURCES, "text-classification-prebuilt")

    def test_unwritable_depfile_fails_before_the_first_package_exists(self):
        out = self.path("pkg")
        p = run("export", self.SOURCE, out, "--depfile", self.path("no", "such", "dir", "pkg.d"))
        self.assertFailsWith(p, "io_error", "pkg.d")
        self.assertFalse(os.path.exists(out))

    def test_unwritable_depfile_keeps_the_previous_package(self):
        out = self.path("pkg")
        run("export", self.SOURCE, out, check=0)
        before = tree_hashes(out)
        src = self.copy_source("text-classification-prebuilt", self.path("src"))
        with open(os.path.join(src, "config.json")) as f:
            config = json.load(f)
        config["id2label"] = {"0": "no", "1": "yes"}  # a different package
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(config, f)
        os.mkdir(self.path("d-is-a-dir.d"))
        p = run("export", src, out, "--depfile", self.path("d-is-a-dir.d"))
        self.assertFailsWith(p, "io_error", "d-is-a-dir.d")
        self.assertEqual(tree_hashes(out), before)

    def test_depfile_in_the_package_directory_arrives_with_the_package(self):
        out = self.path("pkg")
        depfile = os.path.join(out, "pkg-package.d")
        run("export", self.SOURCE, out, "--depfile", depfile, check=0)
        with open(depfile) as f:
            self.assertTrue(f.read().startswith(os.path.join(out, "model.onnx") + ":"))
        run("export", self.SOURCE, out, "--depfile", depfile, check=0)  # carried across the swap
        self.assertTrue(os.path.isfile(depfile))

    def test_unwritable_report_fails_before_the_package_exists(self):
        out = self.path("pkg")
        p = run("export", self.SOURCE, out, "--report", self.path("no", "such", "dir", "r.json"))
        self.assertFailsWith(p, "io_error", "r.json")
        self.assertFalse(os.path.exists(out))

    def test_unwritable_report_does_not_hide_the_exports_own_error(self):
        p = run("export", self.path("missing"), self.path("pkg"), "--report", self.path("no", "such", "dir", "r.json"))
        self.assertFailsWith(p, "model_not_found", "missing")
        src = self.copy_source("text-classification-prebuilt", self.path("src"))
        os.remove(os.path.join(src, "config.json"))
        p = run("export", src, self.path("pkg"), "--report", self.path("no", "such", "dir", "r.json"))
        self.assertFailsWith(p, "config_missing", "config.json")
        self.assertFalse(os.path.exists(self.path("pkg")))


class Pictures(TempDirTest):
    def test_dot_renders_with_graphviz(self):
        dot = run("inspect", os.path.join(EXAMPLES, "text-classification"), "--format", "dot", check=0).stdout
        svg = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, check=True).stdout
        root = ET.fromstring(svg)
        texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
        self.assertIn("BertLayer.1", texts)
        self.assertIn("BertForSequenceClassification", texts)
        meta = load_json(os.path.join(EXAMPLES, "text-classification", "export_metadata.json"))
        self.assertIn(f"{meta['statistics']['node_count']} nodes", texts)

    def test_graphml_has_one_node_per_module_level_and_tree_edges(self):
        xml = run("inspect", os.path.join(EXAMPLES, "image-classification"), "--format", "graphml", check=0).stdout
        g = ET.fromstring(xml).find("{http://graphml.graphdrawing.org/xmlns}graph")
        nodes = g.findall("{http://graphml.graphdrawing.org/xmlns}node")
        edges = g.findall("{http://graphml.graphdrawing.org/xmlns}edge")
        self.assertEqual(len(edges), len(nodes) - 1)  # a tree
        self.assertIn("/ViTForImageClassification/ViTModel/ViTEncoder/ViTLayer.0", [n.get("id") for n in nodes])


class SingleFile(TempDirTest):
    def test_pack_and_unpack_round_trip_byte_for_byte(self):
        pkg = self.path("pkg")
        shutil.copytree(os.path.join(EXAMPLES, "text-classification"), pkg)
        # A binary tokenizer file (not UTF-8) must survive too.
        with open(os.path.join(pkg, "spiece.model"), "wb") as f:
            f.write(bytes(range(256)) * 3)
        run("pack", pkg, "--output", self.path("single.onnx"), check=0)
        model = onnx.load(self.path("single.onnx"))
        onnx.checker.check_model(model, full_check=True)
        keys = [p.key for p in model.metadata_props]
        self.assertIn("modelexport.file:config.json", keys)
        self.assertEqual(keys[-1], "modelexport.pack")
        # The packed file runs in ONNX Runtime as it is.
        os.makedirs(self.path("runnable"))
        shutil.copy(self.path("single.onnx"), self.path("runnable", "model.onnx"))
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(pkg, f), self.path("runnable", f))
        p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, "ort_check.mjs"), self.path("runnable")], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        run("unpack", self.path("single.onnx"), self.path("restored"), check=0)
        self.assertEqual(tree_hashes(self.path("restored")), tree_hashes(pkg))
        self.assertEqual(run("validate", self.path("restored"), "--strict").returncode, 0)

    def test_unpack_refuses_a_model_that_was_not_packed(self):
        p = run("unpack", os.path.join(EXAMPLES, "text-classification", "model.onnx"), self.path("out"))
        self.assertEqual(p.returncode, 5)
        self.assertIn("is not a packed model", p.stderr)
        self.assertFalse(os.path.exists(self.path("out")))
