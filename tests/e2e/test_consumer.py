"""The Meson plugin from a consumer's side (issues 6, 17): tests/consumer uses
modelexport only as a subproject, declares two local models, three Hub-id
models (by their source alone) and one local model in the hub layout (its
onnx/model.onnx declared by the template's nested onnx/ target), consumes their
files, and ninja rebuilds exactly what an edit or a moved Hub ref touches."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from common import EXAMPLES, REPO, SOURCES, TOOL, sha256, tree_hashes
from test_plan import COMMITS, make_hub_cache

# The consumer builds as a user's would: no SOURCE_DATE_EPOCH (packages must be reproducible
# without it) and the shared export cache on, in a directory of this test's own.
CACHE_DIR = None


def consumer_env(env=None):
    full = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "MODELEXPORT_NO_CACHE")}
    full["MODELEXPORT_CACHE_DIR"] = CACHE_DIR
    full.update(env or {})
    return full


def sh(*cmd, cwd=None, env=None):
    full = consumer_env(env)
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full, timeout=1200)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def consumer_dirs(cls, project):
    """cls.tmp (also holding the export cache), cls.root: a copy of tests/<project> with modelexport
    as subprojects/modelexport (a symlink to this checkout), as a user's project would have it, and
    cls.build_dir."""
    global CACHE_DIR
    cls.tmp = tempfile.mkdtemp(prefix=f"modelexport-{project}-")
    CACHE_DIR = os.path.join(cls.tmp, "export-cache")
    cls.root = os.path.join(cls.tmp, "consumer")
    cls.build_dir = os.path.join(cls.tmp, "build")
    shutil.copytree(os.path.join(REPO, "tests", project), cls.root, symlinks=True)
    os.makedirs(os.path.join(cls.root, "subprojects"))
    os.symlink(REPO, os.path.join(cls.root, "subprojects", "modelexport"))


def add_sources(root):
    """tests/consumer's model sources in its tree."""
    shutil.copytree(os.path.join(SOURCES, "text-classification"), os.path.join(root, "sources", "bert"))
    shutil.copytree(os.path.join(SOURCES, "text-classification"), os.path.join(root, "sources", "bert-hub"))
    shutil.copytree(os.path.join(SOURCES, "image-classification"), os.path.join(root, "sources", "vit"))
    make_hub_cache(hub_cache(root))


def hub_cache(root):
    """The consumer's Hugging Face cache: beside the project, fixed at configure time."""
    return os.path.join(os.path.dirname(root), "hub")


def setup(root, build_dir):
    """meson setup's output."""
    return sh("meson", "setup", build_dir, root, "--wrap-mode=nodownload", "-Dmodelexport:hf_hub_cache=" + hub_cache(root))


def build(root, build_dir, env=None):
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        setup(root, build_dir)
    return sh("ninja", "-C", build_dir, env=env)


def declared(build_dir, name):
    """The outputs the template declared for <name> (meson introspect), in order, as paths relative
    to the package: its <name>-files target's, the export's (export_metadata.json), then a hub
    package's onnx/ files (its <name>-onnx target)."""
    targets = json.loads(sh("meson", "introspect", "--targets", build_dir))
    pkg = os.path.join(build_dir, "models", name)
    return [os.path.relpath(f, pkg) for suffix in ("-files", "-package", "-onnx") for t in targets if t["name"] == name + suffix
            for f in t["filename"]]


def planned(source, *args, cache):
    return json.loads(sh(TOOL, "plan", source, "--hf-hub-cache", cache, *args))["files"]


def package_files(build_dir, name):
    return sorted(f for f in os.listdir(os.path.join(build_dir, "models", name)) if not f.endswith(".d") and not f.endswith(".hpp"))


def ran(ninja_output):
    """The descriptions of the edges ninja ran, e.g. 'Generating models/bert/bert-package with a custom command'."""
    return [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] (.*)$", ninja_output, re.M)]


def exports(ninja_output):
    """The packages whose export ran, e.g. ['bert']."""
    return [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] Generating models/([^/]+)/\1-package with", ninja_output, re.M)]


def package_steps(name):
    """The edges of package <name> itself: the export, its files target (verify) and its bindings."""
    return [f"Generating models/{name}/{name}-{t} with a custom command" for t in ("package", "files", "bindings")]


def cache_manifests():
    """{key: mtime_ns} of the export cache's action entries, once the builds' background stores are done."""
    sh(TOOL, "cache", "wait")
    ac = os.path.join(CACHE_DIR, "ac")
    return {k: os.stat(os.path.join(ac, k)).st_mtime_ns for k in os.listdir(ac)} if os.path.isdir(ac) else {}


def package_trees(build_dir):
    return {name: {k: v for k, v in tree_hashes(os.path.join(build_dir, "models", name)).items() if not k.endswith(".d")}
            for name in ("bert", "vit")}


class Consumer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        consumer_dirs(cls, "consumer")
        add_sources(cls.root)
        cls.setup_output = setup(cls.root, cls.build_dir)
        cls.first_build = build(cls.root, cls.build_dir)

    @classmethod
    def tearDownClass(cls):
        sh(TOOL, "cache", "wait")  # the builds' background stores write into cls.tmp
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_1_consumer_builds_and_its_tests_pass(self):
        out = sh("meson", "test", "-C", self.build_dir, "--print-errorlogs")
        for name in ("validate bert", "validate vit", "read bert package", "bindings match packages", "embedded model hash",
                     "validate bert-hub", "verify bert-hub"):
            self.assertRegex(out, rf"{re.escape(name)}\s+OK")
        self.assertIn("Fail:               0", out)
        pkg = os.path.join(self.build_dir, "models", "bert")
        self.assertEqual(sorted(f for f in os.listdir(pkg) if not f.endswith(".d") and not f.endswith(".hpp")),
                         sorted(["model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json", "vocab.txt", "export_metadata.json"]))
        with open(os.path.join(self.build_dir, "models", "bert", "bert_model.hpp")) as f:
            header = f.read()
        self.assertRegex(header, r'inline constexpr std::string_view id2label\[\] = \{\s*"NEGATIVE",\s*"POSITIVE"\};')

    def test_1_setup_prints_no_warning(self):
        # modelexport's own dependency lookups (ONNX through CMake, protobuf) are quiet.
        self.assertNotIn("WARNING", self.setup_output)

    def test_2_nothing_changed_rebuilds_nothing(self):
        self.assertIn("ninja: no work to do.", build(self.root, self.build_dir))

    def test_3_editing_one_tokenizer_rebuilds_that_package_and_its_consumers_only(self):
        path = os.path.join(self.root, "sources", "bert", "tokenizer.json")
        with open(path, "a") as f:
            f.write("\n")  # same JSON, different bytes
        steps = ran(build(self.root, self.build_dir))
        self.assertIn("Generating models/bert/bert-package with a custom command", steps)
        self.assertFalse([s for s in steps if "vit" in s], steps)
        self.assertFalse([s for s in steps if "bert-config-copy" in s or "bert-model-copy" in s or "embedded" in s], steps)
        # New hashes, the same names and shapes: only the code using bert_model_files.hpp recompiles.
        self.assertTrue([s for s in steps if s.startswith("Compiling") and "check_bindings.cpp" in s], steps)
        self.assertFalse([s for s in steps if s.startswith("Compiling") and "signature.cpp" in s], steps)
        self.assertIn("ninja: no work to do.", build(self.root, self.build_dir))
        # A regeneration (Meson then runs `ninja -t restat`, recording model.onnx's kept, older mtime)
        # exports nothing: no input changed.
        os.utime(os.path.join(self.root, "meson.build"))
        out = build(self.root, self.build_dir)
        self.assertIn("Regenerating build files.", out)
        self.assertEqual(exports(out), [])
        self.assertFalse([s for s in ran(out) if s.startswith(("Compiling", "Linking")) or "copy" in s], ran(out))
        self.assertIn("ninja: no work to do.", build(self.root, self.build_dir))

    def test_4_touching_a_source_reexports_but_unchanged_outputs_stop_the_rebuild(self):
        os.utime(os.path.join(self.root, "sources", "vit", "preprocessor_config.json"))
        steps = ran(build(self.root, self.build_dir))
        self.assertEqual(sorted(steps), sorted(package_steps("vit")))

    def test_5_editing_the_model_code_reexports_through_the_depfile(self):
        with open(os.path.join(self.root, "sources", "vit", "modeling.py"), "a") as f:
            f.write("\n# a comment changes no weights\n")
        steps = ran(build(self.root, self.build_dir))
        self.assertEqual(sorted(steps), sorted(package_steps("vit")))

    def test_6_a_second_build_directory_reuses_the_exports_and_gives_byte_identical_packages(self):
        # Every torch export of the first build left one manifest in the export cache; a second
        # build directory hits each of them (a hit touches its manifest, LRU) and stores none.
        manifests = cache_manifests()
        self.assertTrue(manifests, "the first build stored no export in the cache")
        time.sleep(1.1)  # mtimes with a coarse clock still move
        other = os.path.join(self.tmp, "build2")
        build(self.root, other)
        after = cache_manifests()
        self.assertEqual(sorted(after), sorted(manifests))
        touched = [k for k in manifests if after[k] > manifests[k]]
        self.assertGreaterEqual(len(touched), 2, "bert's and vit's torch exports were not reused from the cache")
        self.assertEqual(package_trees(self.build_dir), package_trees(other))

    def test_7_declared_files_must_match_what_the_source_has(self):
        # A new optional file appears after configuration: the tool refuses instead of writing undeclared outputs.
        extra = os.path.join(self.root, "sources", "bert", "generation_config.json")
        with open(extra, "w") as f:
            f.write('{"max_length": 20}\n')
        try:
            p = subprocess.run(["ninja", "-C", self.build_dir], capture_output=True, text=True, env=consumer_env())
            # Meson notices nothing (fs checks run at configure time), so the export must fail clearly...
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("produced but not declared: generation_config.json", p.stdout + p.stderr)
            self.assertIn("hint: if the source changed since the build was configured, reconfigure", p.stdout + p.stderr)
            # ...until the project is reconfigured, which declares the new file.
            sh("meson", "setup", "--reconfigure", self.build_dir, self.root, "--wrap-mode=nodownload")
            build(self.root, self.build_dir)
            self.assertTrue(os.path.exists(os.path.join(self.build_dir, "models", "bert", "generation_config.json")))
        finally:
            os.remove(extra)
            sh("meson", "setup", "--reconfigure", self.build_dir, self.root, "--wrap-mode=nodownload")

    def test_9_plan_template_and_export_agree_for_local_and_hub_sources(self):
        cache = hub_cache(self.root)
        build(self.root, self.build_dir)  # after test_7's reconfigure, bert is re-exported without its extra file
        cases = {"bert": (os.path.join(self.root, "sources", "bert"), "--model", "modeling.py:build"),
                 "tiny": ("acme/tiny-bert",), "tiny-v2": ("acme/tiny-bert@v2",),
                 "tiny-commit": ("acme/tiny-bert@" + COMMITS["v2"],)}
        for name, (source, *args) in cases.items():
            with self.subTest(name):
                files = planned(source, *args, cache=cache)
                self.assertEqual(declared(self.build_dir, name), files)
                self.assertEqual(package_files(self.build_dir, name), sorted(files))
        self.assertIn("special_tokens_map.json", package_files(self.build_dir, "tiny"))
        self.assertNotIn("special_tokens_map.json", package_files(self.build_dir, "tiny-v2"))

    def test_c_a_hub_layout_package_declares_and_consumes_onnx_model_onnx(self):
        build(self.root, self.build_dir)
        source = os.path.join(self.root, "sources", "bert-hub")
        files = planned(source, "--model", "modeling.py:build", "--layout", "hub", cache=hub_cache(self.root))
        self.assertEqual(files[0], "onnx/model.onnx")
        # The root files are the export's outputs, onnx/model.onnx the nested onnx/ target's: together plan's list.
        self.assertEqual(sorted(declared(self.build_dir, "bert-hub")), sorted(files))
        pkg = os.path.join(self.build_dir, "models", "bert-hub")
        self.assertEqual(sorted(k for k in tree_hashes(pkg) if not k.endswith(".d")), sorted(files))
        copy = os.path.join(self.build_dir, "hub-onnx-copy.onnx")
        self.assertEqual(sha256(copy), sha256(os.path.join(pkg, "onnx", "model.onnx")))
        # The depfile's target is the export's first declared output.
        self.assertIn("ninja: no work to do.", build(self.root, self.build_dir))
        # The model deleted: the onnx/ target fails the build naming it, instead of handing on nothing.
        os.remove(os.path.join(pkg, "onnx", "model.onnx"))
        try:
            p = subprocess.run(["ninja", "-C", self.build_dir, "hub-onnx-copy.onnx"], capture_output=True, text=True, env=consumer_env())
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("onnx/model.onnx", p.stdout + p.stderr)
        finally:
            os.utime(os.path.join(source, "config.json"))  # re-export
            build(self.root, self.build_dir)
        self.assertEqual(sha256(copy), sha256(os.path.join(pkg, "onnx", "model.onnx")))

    def test_a_moved_hub_ref_reconfigures_and_rebuilds_exactly_its_package(self):
        repo = os.path.join(hub_cache(self.root), "models--acme--tiny-bert")
        old = os.path.join(repo, "snapshots", COMMITS["main"])
        new_commit = "3" * 40
        new = os.path.join(repo, "snapshots", new_commit)
        # The same relative blob links (onnx/ included), without one file.
        shutil.copytree(old, new, symlinks=True, ignore=shutil.ignore_patterns("special_tokens_map.json"))
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(new_commit)
        try:
            # Only that package is exported again: the regeneration's `ninja -t restat` leaves the others clean.
            self.assertEqual(exports(build(self.root, self.build_dir)), ["tiny"])
            self.assertEqual(declared(self.build_dir, "tiny"), planned("acme/tiny-bert", cache=hub_cache(self.root)))
            self.assertNotIn("special_tokens_map.json", package_files(self.build_dir, "tiny"))
            with open(os.path.join(self.build_dir, "models", "tiny", "export_metadata.json")) as f:
                self.assertEqual(json.load(f)["source"]["commit"], new_commit)
            self.assertIn("ninja: no work to do.", build(self.root, self.build_dir))
        finally:
            with open(os.path.join(repo, "refs", "main"), "w") as f:
                f.write(COMMITS["main"])
            build(self.root, self.build_dir)

    def test_b_an_added_file_fails_verify_and_a_wrong_task_fails_the_build(self):
        pkg = os.path.join(self.build_dir, "models", "bert")
        added = os.path.join(pkg, "onnx", "model.onnx")  # transformers.js would load this one first
        os.makedirs(os.path.dirname(added))
        shutil.copy(os.path.join(pkg, "model.onnx"), added)
        try:
            p = subprocess.run(["meson", "test", "-C", self.build_dir, "--no-rebuild", "verify bert"],
                               capture_output=True, text=True, env=consumer_env())
            self.assertNotEqual(p.returncode, 0, p.stdout)
            with open(os.path.join(self.build_dir, "meson-logs", "testlog.txt")) as f:
                self.assertIn("onnx/model.onnx", f.read())
        finally:
            shutil.rmtree(os.path.dirname(added))
        self.assertIn("verify bert", sh("meson", "test", "-C", self.build_dir, "--no-rebuild", "verify bert"))

        project = os.path.join(self.root, "meson.build")
        with open(project) as f:
            original = f.read()
        wrong = original.replace("  'tiny': {'source': 'acme/tiny-bert'},",
                                 "  'tiny': {'source': 'acme/tiny-bert'},\n  'wrong': {'source': meson.current_source_dir() / 'sources' / 'bert', "
                                 "'model': 'modeling.py:build', 'task': 'image-classification'},")
        self.assertNotEqual(wrong, original)
        model_dir = os.path.join(self.root, "models", "wrong")
        os.makedirs(model_dir)
        os.symlink(os.readlink(os.path.join(self.root, "models", "bert", "meson.build")), os.path.join(model_dir, "meson.build"))
        try:
            with open(project, "w") as f:
                f.write(wrong)
            p = subprocess.run(["ninja", "-C", self.build_dir], capture_output=True, text=True, env=consumer_env())
            self.assertNotEqual(p.returncode, 0)
            self.assertRegex(p.stdout + p.stderr, r"image-classification.*BertForSequenceClassification|BertForSequenceClassification.*image-classification")
            self.assertFalse(os.path.exists(os.path.join(self.build_dir, "models", "wrong", "model.onnx")))
        finally:
            with open(project, "w") as f:
                f.write(original)
            shutil.rmtree(model_dir)
            build(self.root, self.build_dir)

    def test_the_build_uses_the_cache_fixed_at_configure_time(self):
        # Another HF_HUB_CACHE when ninja runs changes nothing: the export is told --hf-hub-cache.
        config = os.path.realpath(os.path.join(hub_cache(self.root), "models--acme--tiny-bert", "snapshots", COMMITS["v2"], "config.json"))
        os.utime(config)
        steps = ran(build(self.root, self.build_dir, env={"HF_HUB_CACHE": os.path.join(self.tmp, "no-such-cache"), "HF_HOME": ""}))
        self.assertIn("Generating models/tiny-v2/tiny-v2-package with a custom command", steps)

    def test_8_meson_install_puts_the_package_under_datadir_models(self):
        dest = os.path.join(self.tmp, "dest")
        sh("meson", "install", "-C", self.build_dir, "--destdir", dest, "--no-rebuild", "--quiet")
        everything = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
        installed = [p for p in everything if "/share/models/bert/" in p]
        # The consumer's own package and nothing of the modelexport subproject (headers, tool, .pc).
        self.assertEqual(sorted(everything), sorted(installed))
        self.assertEqual(sorted(os.path.basename(p) for p in installed),
                         sorted(["model.onnx", "config.json", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json", "vocab.txt", "export_metadata.json"]))
        for path in installed:
            self.assertEqual(sha256(path), sha256(os.path.join(self.build_dir, "models", "bert", os.path.basename(path))))


class Seq2SeqConsumer(unittest.TestCase):
    """tests/seq2seq_consumer: an encoder-decoder package (the T5 example's source) in a consumer
    build. The template declares the four ONNX files and everything else the package holds (the
    same list as `modelexport plan`), a later target consumes decoder_model_merged.onnx alone and
    is rebuilt exactly when an edited input changes that file; the bindings header compiles with a
    namespace per file. ModelExport.cmake declares the same outputs through plan."""

    ONNX = ["encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx", "decoder_model_merged.onnx"]

    @classmethod
    def setUpClass(cls):
        consumer_dirs(cls, "seq2seq_consumer")
        cls.source = os.path.join(cls.root, "sources", "t5")
        shutil.copytree(os.path.join(EXAMPLES, "seq2seq-sources", "t5"), cls.source)
        sh("meson", "setup", cls.build_dir, cls.root, "--wrap-mode=nodownload")
        sh("ninja", "-C", cls.build_dir)

    @classmethod
    def tearDownClass(cls):
        sh(TOOL, "cache", "wait")  # the builds' background stores write into cls.tmp
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def package(self, name=""):
        return os.path.join(self.build_dir, "models", "t5", name)

    def test_1_every_file_is_declared_as_plan_lists_it(self):
        files = json.loads(sh(TOOL, "plan", self.source))["files"]
        self.assertEqual(files[:4], self.ONNX)
        self.assertEqual(declared(self.build_dir, "t5"), files)
        self.assertEqual(package_files(self.build_dir, "t5"), sorted(files))
        self.assertEqual(sha256(os.path.join(self.build_dir, "t5-merged-copy.onnx")), sha256(self.package("decoder_model_merged.onnx")))
        out = sh("meson", "test", "-C", self.build_dir, "--print-errorlogs")
        for name in ("t5 bindings", "verify t5", "validate t5"):
            self.assertRegex(out, rf"{re.escape(name)}\s+OK")
        self.assertIn("ninja: no work to do.", sh("ninja", "-C", self.build_dir))

    def test_2_an_edited_weight_rebuilds_the_merged_decoder_and_its_consumer(self):
        before = sha256(self.package("decoder_model_merged.onnx"))
        # A decoder weight changes: the package is re-exported and the merged decoder's bytes change.
        weights = os.path.join(self.source, "model.safetensors")
        subprocess.run([os.environ["MODELEXPORT_PYTHON"], "-c",
                        "import sys; from safetensors.numpy import load_file, save_file; w = load_file(sys.argv[1]); "
                        "k = 'decoder.final_layer_norm.weight'; w[k] = w[k] * 1.5; save_file(w, sys.argv[1], metadata={'format': 'pt'})",
                        weights], check=True, timeout=300)
        steps = ran(sh("ninja", "-C", self.build_dir))
        self.assertIn("Generating models/t5/t5-package with a custom command", steps)
        self.assertTrue([s for s in steps if "t5-merged-copy" in s], steps)
        after = sha256(self.package("decoder_model_merged.onnx"))
        self.assertNotEqual(after, before)
        self.assertEqual(sha256(os.path.join(self.build_dir, "t5-merged-copy.onnx")), after)
        self.assertIn("ninja: no work to do.", sh("ninja", "-C", self.build_dir))

    def test_3_an_edited_tokenizer_reexports_but_leaves_the_merged_decoders_consumer(self):
        with open(os.path.join(self.source, "tokenizer.json"), "a") as f:
            f.write("\n")  # same JSON, other bytes: the ONNX files keep their bytes (restat)
        steps = ran(sh("ninja", "-C", self.build_dir))
        self.assertIn("Generating models/t5/t5-package with a custom command", steps)
        self.assertFalse([s for s in steps if "t5-merged-copy" in s], steps)

    def test_4_the_cmake_module_declares_the_same_files(self):
        src, build = os.path.join(self.tmp, "cmake-src"), os.path.join(self.tmp, "cmake-build")
        os.makedirs(src)
        with open(os.path.join(src, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.20)\nproject(seq2seq_cmake NONE)\n"
                    f"list(APPEND CMAKE_MODULE_PATH \"{os.path.join(REPO, 'modules', 'cmake')}\")\ninclude(ModelExport)\n"
                    f"modelexport_add_package(t5 SOURCE \"{self.source}\")\n"
                    "modelexport_add_bindings(t5 HEADER \"${CMAKE_CURRENT_BINARY_DIR}/t5_model.hpp\" NAMESPACE t5)\n"
                    "add_custom_target(merged_copy ALL COMMAND ${CMAKE_COMMAND} -E copy \"${t5_PACKAGE_DIR}/decoder_model_merged.onnx\" m.onnx "
                    "DEPENDS \"${t5_PACKAGE_DIR}/decoder_model_merged.onnx\")\n")
        sh("cmake", "-S", src, "-B", build, "-G", "Ninja", f"-DMODELEXPORT_EXECUTABLE={TOOL}")
        with open(os.path.join(build, "build.ninja")) as f:
            ninja = f.read()
        # The one edge writing the package (CUSTOM_COMMAND): its outputs, as ninja names them.
        [export] = [l for l in ninja.splitlines() if l.startswith("build ") and "t5/export_metadata.json" in l.split(": ")[0]]
        outputs = set(export.split(": ")[0].split()[1:])
        for name in json.loads(sh(TOOL, "plan", self.source))["files"]:
            self.assertTrue({"t5/" + name, os.path.join(build, "t5", name)} & outputs, (name, outputs))
        self.assertNotIn("t5/model.onnx", ninja)


if __name__ == "__main__":
    unittest.main()
