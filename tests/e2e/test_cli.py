"""The CLI contract: help with an example for every subcommand, version, usage errors (exit 2)."""
import re
import unittest

from common import EXIT, REPO, run


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

    def test_unknown_runtime_and_task_are_usage_errors(self):
        p = run("validate", REPO, "--runtime", "tensorflow")
        self.assertEqual(p.returncode, EXIT["usage"])
        self.assertIn("unknown runtime 'tensorflow'", p.stderr)


if __name__ == "__main__":
    unittest.main()


class Install(unittest.TestCase):
    """meson install puts headers, tool, exporter, runtime scripts and a pkg-config file in place,
    and an installed tool uses its own exporter."""

    def test_installed_tree_works(self):
        import glob
        import os
        import shutil
        import subprocess
        import tempfile
        from common import SOURCES
        dest = tempfile.mkdtemp(prefix="modelexport-install-")
        self.addCleanup(shutil.rmtree, dest, ignore_errors=True)
        subprocess.run(["meson", "install", "-C", os.environ["MODELEXPORT_BUILD_ROOT"], "--destdir", dest, "--no-rebuild",
                        "--quiet"], check=True, capture_output=True)
        prefix = glob.glob(os.path.join(dest, "**", "bin", "modelexport"), recursive=True)
        self.assertEqual(len(prefix), 1)
        root = os.path.dirname(os.path.dirname(prefix[0]))
        for rel in ("include/modelexport/export.hpp", "include/modelexport/package_files.def",
                    "share/modelexport/htp_exporter.py", "share/modelexport/htp_weights.py", "share/modelexport/runtime/ort_check.mjs",
                    "share/modelexport/modules/meson/package/meson.build", "share/modelexport/export_metadata.schema.json"):
            self.assertTrue(os.path.isfile(os.path.join(root, rel)), rel)
        pc = glob.glob(os.path.join(root, "lib*", "**", "pkgconfig", "modelexport.pc"), recursive=True)
        self.assertEqual(len(pc), 1)
        text = open(pc[0]).read()
        self.assertIn("Requires: protobuf, nlohmann_json, libcrypto", text)
        self.assertIn("-lonnx", text)
        # The installed tool runs the installed exporter, not the source tree's.
        installed = os.path.join(root, "share/modelexport/htp_exporter.py")
        with open(installed) as f:
            code = f.read()
        with open(installed, "w") as f:
            f.write("print('installed exporter ran')\n" + code.replace("from __future__ import annotations\n", ""))
        env = {k: v for k, v in os.environ.items() if k != "MODELEXPORT_EXPORTER"}
        p = subprocess.run([prefix[0], "-v", "export", os.path.join(SOURCES, "image-classification"),
                            os.path.join(dest, "pkg"), "--model", "modeling.py:build"], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("installed exporter ran", p.stderr)
