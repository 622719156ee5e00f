"""The CLI contract: help with an example for every subcommand, version, usage errors (exit 2)."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from common import EXAMPLES, EXIT, REPO, SOURCES, TOOL, install_tree, run
from test_cmake_consumer import consumer_tree


class Cli(unittest.TestCase):
    def test_every_subcommand_has_help_with_an_example(self):
        for sub in ("export", "validate", "inspect", "verify"):
            with self.subTest(sub):
                p = run(sub, "--help")
                self.assertEqual(p.returncode, 0)
                self.assertIn("Example:", p.stdout)
                self.assertIn(f"modelexport {sub} ", p.stdout)

    def test_version_matches_the_project(self):
        with open(f"{REPO}/meson.build") as f:
            version = re.search(r"version: '([^']+)'", f.read()).group(1)
        self.assertEqual(run("--version").stdout.strip(), f"modelexport {version}")

    def test_usage_errors_exit_2_with_one_line(self):
        for args in ([], ["export"], ["export", "a", "b", "--strategy", "magic"], ["frobnicate"]):
            with self.subTest(args):
                p = run(*args)
                self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
                self.assertTrue(p.stderr.startswith("modelexport: error: "), p.stderr)

    def test_cache_wait_timeout_names_what_it_takes(self):
        for bad in ("-1", "nan", "1e999"):
            with self.subTest(bad):
                p = run("cache", "wait", "--timeout", bad)
                self.assertEqual(p.returncode, EXIT["usage"], p.stderr)
                self.assertIn("'%s' is not a number of seconds" % bad, p.stderr)

    def test_cache_wait_with_a_huge_timeout_waits_for_the_store(self):
        # 12 digits of seconds overflowed the clock: the wait ended at once, saying the store still ran.
        cache = tempfile.mkdtemp(prefix="modelexport-wait-")
        try:
            os.makedirs(os.path.join(cache, "pending"))
            holder = subprocess.Popen(["flock", "-x", os.path.join(cache, "pending", "a" * 64), "sleep", "3"])
            time.sleep(0.5)
            started = time.monotonic()
            p = run("cache", "wait", "--timeout", "930000000000", env={"MODELEXPORT_CACHE_DIR": cache})
            self.assertEqual((p.returncode, p.stderr), (EXIT["ok"], ""))
            self.assertGreater(time.monotonic() - started, 1.5)
            holder.wait(timeout=30)
        finally:
            shutil.rmtree(cache, ignore_errors=True)

    def test_inspect_takes_a_bare_file_name_in_the_current_directory(self):
        tmp = tempfile.mkdtemp(prefix="modelexport-cli-")
        try:
            shutil.copy(os.path.join(EXAMPLES, "hf-text-classification", "model.onnx"), tmp)
            p = subprocess.run([TOOL, "inspect", "model.onnx"], cwd=tmp,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, EXIT["ok"], p.stderr)
            self.assertIn("model: model.onnx", p.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_unknown_runtime_and_task_are_usage_errors(self):
        p = run("validate", REPO, "--runtime", "tensorflow")
        self.assertEqual(p.returncode, EXIT["usage"])
        self.assertIn("unknown runtime 'tensorflow'", p.stderr)


class Sources(unittest.TestCase):
    """The C++ sources keep the style of .clang-format (scripts/bootstrap installs clang-format)."""

    def sources(self):
        found = []
        for top in ("include", "tools", "tests", "examples", "modules"):
            for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, top)):
                dirnames[:] = [d for d in dirnames if d not in ("node_modules", "subprojects")]
                found += [os.path.join(dirpath, f) for f in filenames if f.endswith((".hpp", ".cpp", ".h"))]
        return sorted(found)

    def test_cpp_sources_follow_clang_format(self):
        files = self.sources()
        self.assertGreater(len(files), 90)  # the walk sees the headers, the tool and the tests
        p = subprocess.run(["clang-format", "--dry-run", "--Werror", *files], capture_output=True, text=True,
                           cwd=REPO, timeout=300)
        self.assertEqual(p.returncode, 0, "not formatted (run clang-format -i on them):\n" + p.stderr[-4000:])

    def test_the_check_sees_a_misformatted_file(self):
        with tempfile.TemporaryDirectory() as d:
            shutil.copy(os.path.join(REPO, ".clang-format"), d)
            bad = os.path.join(d, "bad.hpp")
            with open(bad, "w") as f:
                f.write("inline int  twice(int x){return 2*x;}\n")
            p = subprocess.run(["clang-format", "--dry-run", "--Werror", bad], capture_output=True, text=True,
                               cwd=d, timeout=60)
            self.assertNotEqual(p.returncode, 0)


class Install(unittest.TestCase):
    """meson install puts headers, tool, exporter, runtime scripts, a pkg-config file and a CMake
    package config in place; an installed tool uses its own exporter, and programs and CMake
    projects build against the installed tree alone."""

    @classmethod
    def setUpClass(cls):
        cls.dest, cls.tool, cls.root = install_tree("modelexport-install-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def sh(self, *cmd, env=None):
        """Runs cmd in env (the whole environment; default: this one) and returns its stdout."""
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        self.assertEqual(p.returncode, 0, f"{' '.join(cmd)}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p.stdout

    def test_installed_tree_works(self):
        root = self.root
        for rel in ("include/modelexport/export.hpp", "include/modelexport/package/files.def", "include/modelexport/version.hpp",
                    "share/modelexport/htp_exporter.py", "share/modelexport/htp_weights.py", "share/modelexport/htp_decoder.py", "share/modelexport/htp_seq2seq.py", "share/modelexport/runtime/ort_check.mjs",
                    "share/modelexport/modules/meson/package/meson.build", "share/modelexport/modules/cmake/ModelExport.cmake",
                    "share/modelexport/export_metadata.schema.json", "share/modelexport/tasks.json",
                    "include/modelexport/tasks_table.hpp"):
            self.assertTrue(os.path.isfile(os.path.join(root, rel)), rel)
        for rel in ("include/modelexport/meson.build", "include/modelexport/version.hpp.in",
                    "share/modelexport/modules/cmake/modelexportConfig.cmake.in"):
            self.assertFalse(os.path.exists(os.path.join(root, rel)), rel)
        # The installed tool runs the installed exporter, not the source tree's (on a copy of the tree:
        # the other tests use the installed exporter as it is).
        tree = os.path.join(tempfile.mkdtemp(prefix="modelexport-install-copy-"), "prefix")
        self.addCleanup(shutil.rmtree, os.path.dirname(tree), ignore_errors=True)
        shutil.copytree(root, tree, symlinks=True)
        installed = os.path.join(tree, "share/modelexport/htp_exporter.py")
        with open(installed) as f:
            code = f.read()
        with open(installed, "w") as f:
            f.write("print('installed exporter ran')\n" + code.replace("from __future__ import annotations\n", ""))
        env = {k: v for k, v in os.environ.items() if k != "MODELEXPORT_EXPORTER"}
        p = subprocess.run([os.path.join(tree, "bin", "modelexport"), "-v", "export", os.path.join(SOURCES, "image-classification"),
                            os.path.join(os.path.dirname(tree), "pkg"), "--model", "modeling.py:build"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("installed exporter ran", p.stderr)

    def test_pkg_config_compiles_and_links_a_program(self):
        pcs = glob.glob(os.path.join(self.root, "lib*", "**", "pkgconfig", "modelexport.pc"), recursive=True)
        self.assertEqual(len(pcs), 1)
        # The sysroot puts the .pc's own -I paths into DESTDIR (system ones stay filtered out).
        env = {**os.environ, "PKG_CONFIG_PATH": os.path.dirname(pcs[0]), "PKG_CONFIG_SYSROOT_DIR": self.dest}
        version = self.sh("pkg-config", "--modversion", "modelexport", env=env).strip()
        with open(os.path.join(REPO, "meson.build")) as f:
            self.assertEqual(version, re.search(r"version: '([^']+)'", f.read()).group(1))
        flags = self.sh("pkg-config", "--cflags", "--libs", "modelexport", env=env).split()
        self.assertIn(f"-I{self.root}/include", flags)
        exe = os.path.join(self.dest, "signature")
        self.sh("c++", "-std=c++17", os.path.join(REPO, "tests", "install_consumer", "signature.cpp"), "-o", exe, *flags)
        out = self.sh(exe, os.path.join(EXAMPLES, "text-classification", "model.onnx"), "text-classification")
        self.assertRegex(out, rf"^{re.escape(version)} ORTModelForSequenceClassification input_ids attention_mask")

    def test_public_headers_stay_light(self):
        """What a translation unit pays for each public header of the installed tree: the options stay
        under 300 headers, fwd.hpp is alone, and only the export itself sees Boost.Process (the
        validator and the plan never see Boost.Process or curl); compiled, only its own unit does."""
        pcs = glob.glob(os.path.join(self.root, "lib*", "**", "pkgconfig", "modelexport.pc"), recursive=True)
        env = {**os.environ, "PKG_CONFIG_PATH": os.path.dirname(pcs[0]), "PKG_CONFIG_SYSROOT_DIR": self.dest}
        cflags = self.sh("pkg-config", "--cflags", "modelexport", env=env).split()

        def seen(header, *defines):
            tu = os.path.join(self.dest, header.replace("/", "_") + ".cpp")
            with open(tu, "w") as f:
                f.write(f"#include <modelexport/{header}>\n")
            p = subprocess.run(["c++", "-std=c++17", "-fsyntax-only", "-H", *defines, tu, *cflags], capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])  # each public header compiles on its own
            return [line.split(" ", 1)[1] for line in p.stderr.splitlines() if re.match(r"^\.+ ", line)]

        self.assertEqual([os.path.basename(h) for h in seen("fwd.hpp")], ["fwd.hpp"])  # itself, nothing more
        self.assertLessEqual(len(seen("export_options.hpp")), 300)
        for header in ("validator.hpp", "plan.hpp", "tasks.hpp", "export_options.hpp"):
            heavy = [h for h in seen(header) if "boost/process" in h or "/curl/" in h]
            self.assertEqual(heavy, [], header)
        self.assertTrue(any("boost/process" in h for h in seen("export.hpp")))  # the measure sees what it should
        # Compiled mode (detail/linkage.hpp): the pipeline's callers see no Boost.Process; its one unit does.
        compiled = "-DMODELEXPORT_COMPILED_LIB"
        for header in ("export.hpp", "export/build_edge.hpp", "validate/runtime.hpp"):
            self.assertEqual([h for h in seen(header, compiled) if "boost/process" in h], [], header)
        self.assertTrue(any("boost/process" in h for h in seen("detail/process.hpp", compiled, "-DMODELEXPORT_UNIT_PROCESS=1")))

    def test_cmake_find_package_builds_against_the_target_and_exports_with_the_installed_tool(self):
        src, build = consumer_tree(self, "install_consumer")
        # Nothing points at the build tree: no MODELEXPORT_* overrides, no modelexport on PATH.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELEXPORT")}
        env["SOURCE_DATE_EPOCH"] = "1700000000"
        env["PATH"] = "/usr/bin:/bin"
        self.sh("cmake", "-S", src, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={self.root}", env=env)
        self.sh("ninja", "-C", build, env=env)
        tests = self.sh("ctest", "--test-dir", build, "--output-on-failure", env=env)
        self.assertIn("100% tests passed, 0 tests failed out of 3", tests)
        for name in ("bert_validate", "bert_verify", "signature_bert"):
            self.assertRegex(tests, name + r" \.+\s+Passed")
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            self.assertIn(f"modelexport_DIR:PATH={self.root}/lib", f.read())
        self.assertTrue(os.path.isfile(os.path.join(build, "bert", "export_metadata.json")))
        # The package came from the installed tool: the command line ninja ran names it.
        self.assertIn(self.tool, self.sh("ninja", "-C", build, "-t", "commands", env=env))


if __name__ == "__main__":
    unittest.main()
