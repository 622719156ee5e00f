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
