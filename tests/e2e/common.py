"""Shared helpers for the end-to-end tests: they drive the built `modelexport`
on real files (fixtures made by tests/fixtures/make_models.py with torch) and
check what lands on disk. Paths come from the environment meson sets."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

TOOL = os.environ["MODELEXPORT"]
EXAMPLES = os.environ["MODELEXPORT_EXAMPLES"]          # build/examples: sources/ and one package per example
SOURCES = os.path.join(EXAMPLES, "sources")
RUNTIME_DIR = os.environ["MODELEXPORT_RUNTIME_DIR"]    # tools/runtime with node_modules
NODE = os.environ.get("MODELEXPORT_NODE", "node")
REPO = os.environ["MODELEXPORT_SOURCE_ROOT"]

# Documented exit codes (docs/cli.md, include/modelexport/error.hpp).
EXIT = {"ok": 0, "internal": 1, "usage": 2, "model_not_found": 3, "config_missing": 4, "invalid_input": 5,
        "export_failed": 6, "validation_failed": 7, "io_error": 8, "package_modified": 9, "runtime_unavailable": 10,
        "reference_mismatch": 11, "variant_inaccurate": 12}


def run(*args, env=None, timeout=600, check=None):
    """Runs modelexport with args; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, env=full_env, timeout=timeout)
    if check is not None and p.returncode != check:
        raise AssertionError(f"modelexport {' '.join(map(str, args))}: exit {p.returncode}, expected {check}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def node(script, *args, timeout=600):
    """Runs a tools/runtime script with Node.js; returns its one JSON line, or fails with its stderr."""
    p = subprocess.run([NODE, os.path.join(RUNTIME_DIR, script), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def install_tree(prefix):
    """`meson install --destdir` of the build into a new temporary directory: (destdir, installed tool,
    DESTDIR + prefix)."""
    import glob
    dest = tempfile.mkdtemp(prefix=prefix)
    subprocess.run(["meson", "install", "-C", os.environ["MODELEXPORT_BUILD_ROOT"], "--destdir", dest, "--no-rebuild", "--quiet"],
                   check=True, capture_output=True)
    tools = glob.glob(os.path.join(dest, "**", "bin", "modelexport"), recursive=True)
    assert len(tools) == 1, tools
    return dest, tools[0], os.path.dirname(os.path.dirname(tools[0]))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hashes(root):
    """{relative path: sha256} of every file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = sha256(p)
    return out


def tree_snapshot(root, skip=()):
    """A comparable picture of everything under root, links not followed and special
    files never opened: {relative path: (kind, mode, size, sha256 | link target, nlink)}.
    Names in `skip` (relative to root, and what is below them) are left out. Equal
    snapshots before and after a command mean it wrote, moved and deleted nothing there."""
    import stat as st_mod
    out = {}
    skip = {os.path.normpath(s) for s in skip}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_dir, d)) not in skip]
        for name in dirs + files:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel in skip:
                continue
            p = os.path.join(dirpath, name)
            s = os.lstat(p)
            if st_mod.S_ISLNK(s.st_mode):
                content = os.readlink(p)
            elif st_mod.S_ISREG(s.st_mode):
                content = sha256(p)
            else:
                content = None
            out[rel] = (st_mod.S_IFMT(s.st_mode), st_mod.S_IMODE(s.st_mode), s.st_size if st_mod.S_ISREG(s.st_mode) else 0,
                        content, s.st_nlink if not st_mod.S_ISDIR(s.st_mode) else 0)
    return out


# Runtime outputs (ONNX Runtime, Optimum, transformers.js) against torch's: docs/compatibility.md's 1e-4.
TOLERANCE = 1e-4


def assert_outputs_close(test, got, expected, what, tolerance=TOLERANCE):
    """The one output comparison of the suite: `got` and `expected` map output names to
    {"shape", "data"} (ort_check.mjs, optimum_check.py and the fixtures' references write that);
    the same names, the same shapes, and every value within `tolerance`."""
    test.assertEqual(set(got), set(expected), what)
    for name, ref in expected.items():
        test.assertEqual(got[name]["shape"], ref["shape"], f"{what}: {name}")
        test.assertEqual(len(got[name]["data"]), len(ref["data"]), f"{what}: {name}")
        worst = max((abs(a - b) for a, b in zip(got[name]["data"], ref["data"])), default=0.0)
        test.assertLess(worst, tolerance, f"{what}: {name} differs by {worst}")


def load_json(path):
    with open(path) as f:
        return json.load(f)


class TempDirTest(unittest.TestCase):
    """A test with a fresh temporary directory self.tmp."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="modelexport-e2e-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def copy_source(self, name, dest=None):
        """A private copy of an example source, safe to modify."""
        dest = dest or self.path(name)
        shutil.copytree(os.path.join(SOURCES, name), dest)
        return dest

    def assertFailsWith(self, proc, code, *fragments):
        self.assertEqual(proc.returncode, EXIT[code], f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        lines = [l for l in proc.stderr.splitlines() if l.startswith("modelexport: error: ")]
        self.assertEqual(len(lines), 1, proc.stderr)
        for f in fragments:
            self.assertIn(f, lines[0])
