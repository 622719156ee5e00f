"""`modelexport plan` lists what an export writes (local, Hub id on main, at a tag, at a
commit); a --task that contradicts the model's head is refused; verify reports every added entry;
exporting into the source (or the source into the output) is refused; the CLI summary in docs/cli.md
says what each subcommand's --help says."""
import hashlib
import json
import os
import re
import shutil
import subprocess

from common import EXAMPLES, EXIT, REPO, SOURCES, TOOL, TempDirTest, load_json, run

PREBUILT = os.path.join(SOURCES, "text-classification-prebuilt")
COMMITS = {"main": "1" * 40, "v2": "2" * 40}


def make_hub_cache(cache, src=PREBUILT, commits=COMMITS, drop_in_v2=("special_tokens_map.json",)):
    """A huggingface_hub cache tree for acme/tiny-bert: refs/<rev> -> snapshots/<commit>/ links
    into ../../blobs/ (onnx/model.onnx too, as Hub ONNX repositories have it). The v2 snapshot
    lacks `drop_in_v2`, so the revisions' file lists differ."""
    repo = os.path.join(cache, "models--acme--tiny-bert")
    names = sorted(os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs)
    for rev, commit in commits.items():
        snap = os.path.join(repo, "snapshots", commit)
        for name in names:
            if rev == "v2" and name in drop_in_v2:
                continue
            with open(os.path.join(src, name), "rb") as f:
                data = f.read()
            blob = hashlib.sha256(data).hexdigest()
            os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
            with open(os.path.join(repo, "blobs", blob), "wb") as f:
                f.write(data)
            link = os.path.join(snap, name)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(os.path.relpath(os.path.join(repo, "blobs", blob), os.path.dirname(link)), link)
        os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
        with open(os.path.join(repo, "refs", rev), "w") as f:
            f.write(commit)
    return repo


def plan(*args, **kw):
    p = run("plan", *args, **kw)
    if p.returncode != 0:
        raise AssertionError(f"plan {args}: exit {p.returncode}: {p.stderr}")
    return json.loads(p.stdout)


def package_listing(out):
    return sorted(os.listdir(out))


class Plan(TempDirTest):
    def test_plan_lists_exactly_what_the_export_writes(self):
        cache = self.path("hub")
        make_hub_cache(cache)
        cases = [("local", PREBUILT, None, "local", ""),
                 ("hub main", "acme/tiny-bert", COMMITS["main"], "hub_cache", "main"),
                 ("hub tag", "acme/tiny-bert@v2", COMMITS["v2"], "hub_cache", "v2"),
                 ("hub commit", "acme/tiny-bert@" + COMMITS["v2"], COMMITS["v2"], "hub_cache", COMMITS["v2"])]
        for label, spec, commit, kind, revision in cases:
            with self.subTest(label):
                p = plan(spec, "--hf-hub-cache", cache, env={"HF_HUB_CACHE": self.path("elsewhere")})
                self.assertEqual(p["source"]["kind"], kind)
                self.assertEqual(p["source"]["revision"], revision)
                self.assertEqual(p["strategy"], "prebuilt")
                self.assertEqual(p["task"], "text-classification")
                if commit:
                    self.assertEqual(p["source"]["commit"], commit)
                    self.assertTrue(p["source"]["dir"].endswith("snapshots/" + commit))
                self.assertEqual(p["files"][:2], ["model.onnx", "config.json"])
                self.assertEqual(p["files"][-1], "export_metadata.json")
                self.assertIn(os.path.join(p["source"]["dir"], "config.json") if kind == "local" else p["source"]["dir"], p["read"])
                out = self.path("pkg-" + label.replace(" ", "-"))
                run("export", spec, out, "--hf-hub-cache", cache, "--expect", ",".join(p["files"]),
                    env={"HF_HUB_CACHE": self.path("elsewhere")}, check=0)
                self.assertEqual(package_listing(out), sorted(p["files"]))
        self.assertNotIn("special_tokens_map.json", plan("acme/tiny-bert@v2", "--hf-hub-cache", cache)["files"])

    def test_plan_takes_the_cache_from_the_environment_by_default(self):
        cache = self.path("hub")
        make_hub_cache(cache)
        self.assertEqual(plan("acme/tiny-bert", env={"HF_HUB_CACHE": cache})["source"]["commit"], COMMITS["main"])
        p = run("plan", "acme/tiny-bert", env={"HF_HUB_CACHE": self.path("nothing-here")})
        self.assertEqual(p.returncode, EXIT["model_not_found"], p.stderr)

    def test_the_templates_onnx_files_are_plans(self):
        # tools/plan_onnx_files.py is the Meson template's configure-time stand-in for plan's ONNX
        # files: an encoder-decoder's four (task from architectures, a name or an alias), two without the
        # cache (Optimum's automatic-speech-recognition of a Whisper config), model.onnx for everything else.
        script = os.path.join(REPO, "tools", "plan_onnx_files.py")
        seq2seq = os.path.join(EXAMPLES, "seq2seq-sources")
        cases = [(os.path.join(seq2seq, "t5"), ""), (os.path.join(seq2seq, "t5"), "text2text-generation"),
                 (os.path.join(seq2seq, "t5"), "text2text-generation-with-past"),
                 (os.path.join(seq2seq, "whisper"), ""), (os.path.join(seq2seq, "whisper"), "automatic-speech-recognition"),
                 (os.path.join(seq2seq, "whisper"), "automatic-speech-recognition-with-past"),
                 (os.path.join(seq2seq, "whisper"), "speech2seq-lm"), (os.path.join(SOURCES, "text-classification"), ""),
                 (os.path.join(SOURCES, "text-classification"), "text-classification")]
        for source, task in cases:
            with self.subTest(source=os.path.basename(source), task=task):
                files = json.loads(run("plan", source, *(["--task", task] if task else []), check=EXIT["ok"]).stdout)["files"]
                planned = [f for f in files if f.endswith(".onnx")]
                out = subprocess.run(["python3", script, os.path.join(source, "config.json"), task],
                                     capture_output=True, text=True, check=True).stdout.split()
                self.assertEqual(out, planned)
                # Optimum's text2text-generation and (Whisper's) automatic-speech-recognition have no cache: the
                # encoder and decoder_model.onnx.
                no_cache = task in ("text2text-generation", "automatic-speech-recognition")
                self.assertEqual(len(planned), 1 if "text-classification" in source else 2 if no_cache else 4)

    def test_model_onnx_data_follows_the_strategy(self):
        src = self.copy_source("text-classification-prebuilt")
        open(os.path.join(src, "model.onnx_data"), "wb").close()  # not beside the model it takes: not copied
        self.assertNotIn("model.onnx_data", plan(src)["files"])
        open(os.path.join(src, "onnx", "model.onnx_data"), "wb").close()
        self.assertIn("model.onnx_data", plan(src)["files"])
        self.assertNotIn("model.onnx_data", plan(src, "--strategy", "htp")["files"])
        self.assertEqual(plan(src, "--model", "modeling.py:build")["strategy"], "htp")

    def test_plan_errors_as_the_export_does(self):
        src = self.copy_source("text-classification-prebuilt")
        os.remove(os.path.join(src, "config.json"))
        self.assertEqual(run("plan", src).returncode, EXIT["config_missing"])
        self.assertEqual(run("plan", "acme/x@../../refs").returncode, EXIT["invalid_input"])


class TaskCheck(TempDirTest):
    def test_a_task_contradicting_the_head_is_refused(self):
        src = os.path.join(SOURCES, "question-answering")
        out = self.path("pkg")
        p = run("export", src, out, "--model", "modeling.py:build", "--task", "image-classification")
        self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
        self.assertRegex(p.stderr, r"config\.json: \"architectures\" names \w+ForQuestionAnswering \(task question-answering\), "
                                   r"which contradicts --task image-classification")
        self.assertFalse(os.path.exists(out))
        self.assertEqual(run("plan", src, "--task", "image-classification").returncode, EXIT["usage"])

    def test_the_heads_own_task_and_optimums_synonym_are_accepted(self):
        self.assertEqual(plan(os.path.join(SOURCES, "question-answering"), "--task", "question-answering")["task"], "question-answering")
        src = self.copy_source("image-classification")
        cfg = load_json(os.path.join(src, "config.json"))
        cfg["architectures"] = ["SegformerForSemanticSegmentation"]
        with open(os.path.join(src, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.assertEqual(plan(src, "--task", "image-segmentation")["task"], "semantic-segmentation")

    def test_a_backbone_accepts_any_task(self):
        src = os.path.join(SOURCES, "feature-extraction")
        self.assertEqual(plan(src, "--task", "fill-mask", "--model", "modeling.py:build")["task"], "fill-mask")

    def test_validate_checks_the_recorded_task(self):
        pkg = self.path("pkg")
        shutil.copytree(os.path.join(os.path.dirname(SOURCES), "text-classification"), pkg)
        for f in os.listdir(pkg):
            if f.endswith(".d") or f.endswith(".hpp"):
                os.remove(os.path.join(pkg, f))
        p = run("validate", pkg, "--json")
        checks = {c["id"]: c for c in json.loads(p.stdout)["checks"]}
        self.assertEqual(checks["task.recorded"]["status"], "pass")
        meta_path = os.path.join(pkg, "export_metadata.json")
        meta = load_json(meta_path)
        for task, why in (("image-classification", "names BertForSequenceClassification"), ("telepathy", "not a known task")):
            with self.subTest(task):
                meta["model"]["task"] = task
                with open(meta_path, "w") as f:
                    json.dump(meta, f)
                p = run("validate", pkg, "--json")
                self.assertEqual(p.returncode, EXIT["validation_failed"])
                check = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["task.recorded"]
                self.assertEqual(check["status"], "fail")
                self.assertIn(why, check["message"])
        # A backbone config: only the graph can contradict the recorded task.
        cfg = load_json(os.path.join(pkg, "config.json"))
        cfg["architectures"] = ["BertModel"]
        with open(os.path.join(pkg, "config.json"), "w") as f:
            json.dump(cfg, f)
        meta["model"]["task"] = "question-answering"
        with open(meta_path, "w") as f:
            json.dump(meta, f)
        check = {c["id"]: c for c in json.loads(run("validate", pkg, "--json").stdout)["checks"]}["task.recorded"]
        self.assertEqual(check["status"], "fail")
        self.assertIn("lacks the signature ORTModelForQuestionAnswering needs", check["message"])


class VerifyAdded(TempDirTest):
    def test_every_added_entry_is_reported_recursively(self):
        pkg = self.path("pkg")
        run("export", PREBUILT, pkg, check=0)
        self.assertEqual(run("verify", pkg).returncode, 0)
        os.makedirs(os.path.join(pkg, "onnx"))
        shutil.copy(os.path.join(pkg, "model.onnx"), os.path.join(pkg, "onnx", "model.onnx"))
        shutil.copy(os.path.join(pkg, "model.onnx"), os.path.join(pkg, "model_quantized.onnx"))
        os.makedirs(os.path.join(pkg, "empty"))
        os.symlink("config.json", os.path.join(pkg, "link.json"))
        p = run("verify", pkg, "--json")
        self.assertEqual(p.returncode, EXIT["package_modified"])
        added = sorted(x["file"] for x in json.loads(p.stdout)["problems"] if x["problem"] == "added")
        self.assertEqual(added, ["empty/", "link.json", "model_quantized.onnx", "onnx/model.onnx"])

    def test_kept_build_files_are_ignored_only_when_named(self):
        pkg = self.path("pkg")
        dep = self.path("pkg", "pkg-package.d")
        run("export", PREBUILT, pkg, "--depfile", dep, "--keep", "pkg_model.hpp", check=0)
        open(os.path.join(pkg, "pkg_model.hpp"), "w").close()
        p = run("verify", pkg, "--json")
        self.assertEqual(sorted(x["file"] for x in json.loads(p.stdout)["problems"]), ["pkg-package.d", "pkg_model.hpp"])
        run("verify", pkg, "--ignore", "pkg-package.d", "--ignore", "pkg_model.hpp", check=0)


class SourceAndOutput(TempDirTest):
    def test_output_inside_the_source_and_source_inside_the_output_are_refused(self):
        src = self.copy_source("text-classification-prebuilt")
        p = run("export", src, os.path.join(src, "pkg"))
        self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
        self.assertIn("is inside the model source", p.stderr)
        outer = self.path("outer")
        inner = self.copy_source("text-classification-prebuilt", os.path.join(outer, "src"))
        before = sorted(os.listdir(inner))
        p = run("export", inner, outer)
        self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
        self.assertIn("is inside the output directory", p.stderr)
        self.assertEqual(sorted(os.listdir(inner)), before)
        self.assertEqual(sorted(os.listdir(outer)), ["src"])


def documented_cli_block():
    """The fenced block under '# The CLI' in docs/cli.md, as {subcommand: set of options}."""
    with open(os.path.join(REPO, "docs", "cli.md")) as f:
        text = f.read()
    block = re.search(r"^# The CLI\n\n```\n(.*?)\n```", text, re.S | re.M).group(1)
    usage = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"modelexport (\w+) ", line)
        if m:
            current = m.group(1)
            usage.setdefault(current, set())
        line = line.split("#")[0]
        if current:
            usage[current] |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b", line))
    return usage


def help_options(sub):
    out = subprocess.run([TOOL, sub, "--help"], capture_output=True, text=True).stdout
    opts = set(re.findall(r"^\s+(?:-\w,)?(--[a-z][a-z0-9-]*)", out, re.M))
    return opts - {"--help"}


def subcommands():
    out = subprocess.run([TOOL, "--help"], capture_output=True, text=True).stdout
    section = re.split(r"(?i)subcommands:\n", out)[1].split("\n\n")[0]
    return {m.group(1) for m in re.finditer(r"^\s+(\w+)\s", section, re.M)}


class CliReference(TempDirTest):
    def test_the_documented_cli_block_lists_every_subcommand_and_option_of_help(self):
        usage = documented_cli_block()
        self.assertEqual(set(usage), subcommands())
        for sub, documented in usage.items():
            with self.subTest(sub):
                self.assertEqual(documented - {"-q", "-v", "--quiet", "--verbose"}, help_options(sub))
