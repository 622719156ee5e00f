"""The export cache (docs/design.md §10): a local content-addressed store and a Bazel HTTP
remote cache, here a real nginx WebDAV server started by the test on 127.0.0.1. Every
failure of a cache must be a miss with a correct package, and a hit must produce the
package a miss produces, byte for byte."""
import hashlib
import http.server
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from common import EXIT, SOURCES, TempDirTest, load_json, run, tree_hashes
import bazel_remote_server
from nginx_server import Nginx

BUILD_ROOT = os.environ["MODELEXPORT_BUILD_ROOT"]


class CacheTest(TempDirTest):
    source_name = "text-classification"

    def setUp(self):
        super().setUp()
        # Build-dir temp space: nginx's files, not the user's /tmp or ~/.cache.
        self.work = tempfile.mkdtemp(prefix="cache-", dir=os.path.join(BUILD_ROOT, "tests"))
        os.chmod(self.work, 0o755)  # mkdtemp's 0700 would keep a root-started nginx's worker user out
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        self.src = self.path("src")
        shutil.copytree(os.path.join(SOURCES, self.source_name), self.src)
        self.addCleanup(self.wait_for_stores)

    def wait_for_stores(self):
        """Lets every background store of this test's caches end before the directories go."""
        for name in os.listdir(self.tmp):
            if os.path.isdir(self.path(name, "pending")):
                self.wait(name)

    def wait(self, local="local"):
        """`modelexport cache wait`: the background stores (and uploads) of that cache are done."""
        return run("cache", "wait", env=self.env(local), check=0).stdout

    def env(self, local="local", remote=None, **extra):
        e = {"MODELEXPORT_NO_CACHE": "0", "MODELEXPORT_CACHE_DIR": self.path(local), "MODELEXPORT_REMOTE_CACHE": remote or ""}
        e.update(extra)
        return e

    def export(self, out, env, *extra):
        """Exports self.src into out; returns the report's cache object."""
        report = self.path(out + ".report.json")
        run("--verbose", "export", self.src, self.path(out), "--model", "modeling.py:build", "--report", report, *extra,
            env=env, check=0)
        return load_json(report)["cache"]

    def reference(self):
        """The package without any cache, to compare hits and failures against."""
        if not hasattr(self, "_reference"):
            self.export("reference", self.env(), "--no-cache")
            self._reference = tree_hashes(self.path("reference"))
        return self._reference

    def assertSamePackage(self, out):
        self.assertEqual(tree_hashes(self.path(out)), self.reference(), out)


class LocalCache(CacheTest):
    def test_miss_then_local_hit_is_byte_identical(self):
        first = self.export("a", self.env())
        self.assertEqual(first["result"], "miss")
        self.assertRegex(first["key"], "^[0-9a-f]{64}$")
        # A fresh cache remembers no hash and no interpreter: the exporter ran while the key was computed.
        self.assertTrue(first["speculative"])
        # The store went on after the command returned; the next lookup waits for its entry.
        self.assertTrue(first["background"])
        self.assertTrue({"key", "lookup", "store"} <= set(first["steps"]), first)
        self.assertNotIn("commit", first["steps"])
        second = self.export("b", self.env())
        self.assertEqual((second["result"], second["key"]), ("hit-local", first["key"]))
        self.assertSamePackage("a")
        self.assertSamePackage("b")
        self.assertEqual(os.listdir(self.path("local", "ac")), [first["key"]])
        stats = run("cache", "stats", "--json", env=self.env(), check=0)
        self.assertIn('"entries": 1', stats.stdout)

    def test_background_store_holds_nothing_of_the_export_and_can_be_waited_for(self):
        key = self.export("a", self.env())["key"]
        # The package's lock and staging directory are gone although the store may still run:
        # the detached store closed every descriptor but its own.
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith(".a.")), [])
        self.assertRegex(self.wait(), r"^waited for [01] background stores?$")
        self.assertEqual(os.listdir(self.path("local", "ac")), [key])
        self.assertEqual(os.listdir(self.path("local", "pending")), [])
        self.assertEqual([n for n in os.listdir(self.path("local", "cas")) if n.startswith(".tmp-")], [])
        self.assertEqual(run("cache", "verify", env=self.env(), check=0).stdout, "1 objects (0 corrupt, removed), 1 exports (0 incomplete, removed)\n")

    def test_async_off_stores_inside_the_command(self):
        first = self.export("a", self.env(MODELEXPORT_CACHE_ASYNC="0"))
        self.assertEqual((first["result"], first["background"]), ("miss", False))
        self.assertTrue({"key", "lookup", "store", "commit"} <= set(first["steps"]), first)
        self.assertEqual(os.listdir(self.path("local", "ac")), [first["key"]])  # no wait: the entry is there
        self.assertFalse(os.path.exists(self.path("local", "pending")))
        self.assertEqual(self.export("b", self.env(MODELEXPORT_CACHE_ASYNC="0"))["result"], "hit-local")
        self.assertSamePackage("b")

    def test_tokenizer_edit_is_a_hit_with_the_new_tokenizer(self):
        self.export("a", self.env())
        tok = next(f for f in ("tokenizer.json", "vocab.txt") if os.path.exists(os.path.join(self.src, f)))
        with open(os.path.join(self.src, tok), "a") as f:
            f.write("\n" if tok == "vocab.txt" else " ")
        hit = self.export("b", self.env())
        self.assertEqual(hit["result"], "hit-local")
        self.assertSamePackage("b")  # the reference is made after the edit: same new tokenizer
        # The model code reaches the exporter: editing it is a miss.
        with open(os.path.join(self.src, "modeling.py"), "a") as f:
            f.write("\n# edited\n")
        self.assertEqual(self.export("c", self.env())["result"], "miss")

    def test_a_hit_stops_the_speculative_exporter(self):
        """With the source's hashes forgotten the key needs reading the files, so the exporter
        starts alongside; the hit stops its whole process group and leaves nothing behind."""
        pids = self.path("pids")
        wrapper = self.path("python-wrapper")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\necho $$ >> '{pids}'\nexec '{os.environ['MODELEXPORT_PYTHON']}' \"$@\"\n")
        os.chmod(wrapper, 0o755)
        self.assertEqual(self.export("a", self.env(), "--python", wrapper)["result"], "miss")
        for note in os.listdir(self.path("local", "probes")):
            if note.startswith("file-"):
                os.remove(self.path("local", "probes", note))
        hit = self.export("b", self.env(), "--python", wrapper)
        self.assertEqual((hit["result"], hit["speculative"]), ("hit-local", True))
        self.assertSamePackage("b")
        with open(pids) as f:
            for pid in map(int, f.read().split()):
                with self.assertRaises(ProcessLookupError, msg=f"process {pid} of the exporter outlived the export"):
                    os.kill(pid, 0)
        self.assertEqual(sorted(n for n in os.listdir(self.tmp) if n.startswith(".b.")), [])  # no staging directory or lock
        self.assertEqual([n for n in os.listdir(self.path("local", "cas")) if n.startswith(".tmp-")], [])

    def test_cache_key_prints_the_record_without_absolute_paths(self):
        first = self.export("a", self.env())
        p = run("cache", "key", self.src, "--model", "modeling.py:build", env=self.env(), check=0)
        self.assertIn("key " + first["key"], p.stdout)
        self.assertIn("source config.json", p.stdout)
        self.assertNotIn(self.tmp, p.stdout)
        self.assertNotIn("tokenizer", p.stdout)

    def test_concurrent_exports_of_one_key(self):
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: self.export(f"p{i}", self.env()), range(4)))
        self.assertEqual(len({r["key"] for r in results}), 1)
        for i in range(4):
            self.assertSamePackage(f"p{i}")
        p = run("cache", "verify", env=self.env(), check=0)
        self.assertIn("(0 corrupt, removed)", p.stdout)
        self.assertIn("(0 incomplete, removed)", p.stdout)

    def test_disabled_by_flag_and_for_prebuilt(self):
        self.assertEqual(self.export("a", self.env(), "--no-cache")["result"], "disabled")
        self.assertFalse(os.path.exists(self.path("local", "ac")))
        report = self.path("pre.json")
        run("export", os.path.join(SOURCES, "text-classification-prebuilt"), self.path("pre"), "--report", report,
            env=self.env(), check=0)
        self.assertEqual(load_json(report)["cache"]["result"], "disabled")

    def test_corrupt_local_object_is_a_miss_and_prune_bounds_the_size(self):
        key = self.export("a", self.env())["key"]
        self.wait()
        for name in os.listdir(self.path("local", "cas")):
            with open(self.path("local", "cas", name), "r+b") as f:
                f.write(b"X")
        self.assertEqual(self.export("b", self.env())["result"], "miss")
        self.assertSamePackage("b")
        self.assertEqual(self.export("c", self.env())["result"], "hit-local")  # the miss stored it again
        run("cache", "prune", "--max-size", "0", env=self.env(), check=0)
        self.assertEqual(self.export("d", self.env())["result"], "miss")
        self.assertTrue(key)

    def test_links_inside_the_cache_directory_are_refused_never_followed(self):
        outside = self.path("outside")
        os.makedirs(outside)
        victim = os.path.join(outside, "victim")
        with open(victim, "w") as f:
            f.write("not the cache's")
        os.utime(victim, (1_000_000_000, 1_000_000_000))
        untouched = lambda: (os.listdir(outside), os.stat(victim).st_mtime, open(victim).read()) == (
            ["victim"], 1_000_000_000, "not the cache's")
        for sub in ("cas", "ac", "probes", "pending"):
            local = "links-" + sub
            os.makedirs(self.path(local))
            os.symlink(outside, self.path(local, sub))
            for i in range(2):  # the second export would be a hit through the link, and hits touch objects
                r = self.export(f"{sub}{i}", self.env(local))
                self.wait(local)
                self.assertIn(r["result"], ("miss", "hit-local") if sub == "pending" else ("miss",), sub)
                self.assertSamePackage(f"{sub}{i}")
            for action in ("stats", "verify", "prune"):  # refused with one line naming the link, or nothing of it touched
                p = run("cache", action, env=self.env(local))
                self.assertIn(p.returncode, (0, EXIT["io_error"]), p.stderr)
                if p.returncode:
                    self.assertEqual(len(p.stderr.strip().splitlines()), 2 if "hint:" in p.stderr else 1, p.stderr)
                    self.assertIn(self.path(local, sub) + " is a symbolic link", p.stderr)
            self.assertTrue(untouched(), sub)
            run("cache", "clear", env=self.env(local), check=0)  # the remedy: the link itself goes
            self.assertFalse(os.path.islink(self.path(local, sub)), sub)
            self.assertTrue(untouched(), sub)

    def test_a_fifo_anywhere_in_the_cache_never_blocks(self):
        key = run("cache", "key", self.src, "--model", "modeling.py:build", env=self.env(), check=0).stdout.split()[-1]
        self.assertRegex(key, "^[0-9a-f]{64}$")
        for sub, name in (("ac", key), ("pending", key), ("cas", "0" * 64), ("probes", "file-" + "0" * 64 + ".json")):
            os.makedirs(self.path("local", sub), exist_ok=True)
            os.mkfifo(self.path("local", sub, name))
        os.mkfifo(self.path("local", "store.log"))
        start = time.monotonic()
        r = self.export("a", self.env(), "--timeout", "300")
        self.assertEqual((r["result"], r["key"]), ("miss", key))
        self.assertSamePackage("a")
        for action in ("stats", "wait", "verify", "prune"):  # the reports name a FIFO (exit 8); the others go on
            p = run("cache", action, env=self.env(), timeout=120)
            self.assertEqual(p.returncode, EXIT["io_error"] if action in ("stats", "verify") else 0, action + ": " + p.stderr)
            self.assertEqual("is a FIFO" in p.stderr, action in ("stats", "verify"), p.stderr)
        self.assertLess(time.monotonic() - start, 200)
        self.assertEqual(self.export("b", self.env())["result"], "hit-local")  # the store replaced the FIFO entry
        self.assertSamePackage("b")

    def test_an_entry_naming_files_no_strategy_produces_is_a_miss(self):
        key = self.export("a", self.env())["key"]
        self.wait()
        entry = self.path("local", "ac", key)
        manifest = load_json(entry)
        evil = b"#!/bin/sh\necho owned\n"
        digest = hashlib.sha256(evil).hexdigest()
        with open(self.path("local", "cas", digest), "wb") as f:
            f.write(evil)
        for name in ("evil.sh", "model.onnx_data", "tokenizer.json"):
            self.wait()  # the previous miss's background store rewrites the entry
            forged = dict(manifest, files=manifest["files"] + [{"path": name, "size": len(evil), "sha256": digest}])
            with open(entry, "w") as f:
                json.dump(forged, f)
            r = self.export("b-" + name, self.env())
            self.assertEqual(r["result"], "miss", name)
            self.assertSamePackage("b-" + name)
            self.assertFalse(os.path.exists(self.path("b-" + name, "evil.sh")))


class RemoteCache(CacheTest):
    """Against nginx's WebDAV (the layout under a URL prefix)."""

    def setUp(self):
        super().setUp()
        self.nginx = self.start_server()
        self.addCleanup(self.nginx.stop)

    def start_server(self):
        return Nginx(os.path.join(self.work, "nginx"))

    def test_an_empty_local_cache_hits_the_remote(self):
        first = self.export("a", self.env("machine1", self.nginx.url()))
        self.assertEqual(first["result"], "miss")
        self.wait("machine1")  # the upload ran after the export returned (as a CI job ends with `cache wait`)
        self.assertEqual(self.nginx.stored("ac"), [first["key"]])
        self.assertTrue(self.nginx.stored("cas"))
        second = self.export("b", self.env("machine2", self.nginx.url()))
        self.assertEqual((second["result"], second["key"]), ("hit-remote", first["key"]))
        # The remote hit wrote the model once, into the package; the local cache was filled from it afterwards.
        self.assertTrue(second["background"])
        self.assertEqual(self.export("c", self.env("machine2", self.nginx.url()))["result"], "hit-local")
        for out in "abc":
            self.assertSamePackage(out)

    def test_read_only_uploads_nothing(self):
        e = self.env("machine1", self.nginx.url(), MODELEXPORT_REMOTE_CACHE_READONLY="1")
        self.assertEqual(self.export("a", e)["result"], "miss")
        self.wait("machine1")
        self.assertEqual((self.nginx.stored("ac"), self.nginx.stored("cas")), ([], []))

    def test_corrupt_and_truncated_remote_objects_are_misses(self):
        self.export("a", self.env("machine1", self.nginx.url()))
        self.wait("machine1")
        objects = self.nginx.cas_files()
        self.assertTrue(objects, "nothing was uploaded")
        for i, damage in enumerate(("corrupt", "truncate")):
            for o in objects:
                with open(o, "r+b") as f:
                    if damage == "corrupt":
                        f.write(b"XXXX")
                    else:
                        f.truncate(max(0, os.path.getsize(o) // 2))
            r = self.export(f"b{i}", self.env(f"fresh{i}", self.nginx.url()))
            self.assertEqual(r["result"], "miss", damage)
            self.assertSamePackage(f"b{i}")


class RemoteCacheBazelRemote(RemoteCache):
    """The same against bazel-remote, the cache server Bazel teams run (at the server's root, no
    prefix), its objects damaged on its disk as nginx's are."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.binary, cls.missing = bazel_remote_server.install()

    def start_server(self):
        if not self.binary:
            self.skipTest(f"bazel-remote cannot be installed here: {self.missing}")
        return bazel_remote_server.BazelRemote(self.binary, os.path.join(self.work, "bazel-remote"))


class RemoteFailures(CacheTest):
    def check_miss(self, url, local="local", **extra):
        start = time.time()
        r = self.export(local + "-out", self.env(local, url, **extra))
        self.assertEqual(r["result"], "miss")
        self.assertSamePackage(local + "-out")
        return time.time() - start

    def test_server_error_500(self):
        nginx = Nginx(os.path.join(self.work, "nginx"))
        self.addCleanup(nginx.stop)
        self.check_miss(nginx.url("broken"))

    def test_stopped_server(self):
        nginx = Nginx(os.path.join(self.work, "nginx"))
        url = nginx.url()
        nginx.stop()
        self.check_miss(url)

    def test_stalled_server_times_out(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        held = []
        stop = threading.Event()

        def accept_and_say_nothing():
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    pass

        t = threading.Thread(target=accept_and_say_nothing, daemon=True)
        t.start()
        try:
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/cache"
            elapsed = self.check_miss(url, MODELEXPORT_REMOTE_CACHE_TIMEOUT="2")
            self.assertLess(elapsed, 120)
            self.assertTrue(held, "the client never connected")
        finally:
            stop.set()
            t.join()
            for c in held:
                c.close()
            listener.close()

    def test_dripping_server_is_a_miss_within_its_timeout(self):
        """A server that answers every GET at 2 bytes/s, or at 4 KiB/s (above the low-speed limit)
        for ever: the low-speed limit and the deadline cut it after MODELEXPORT_REMOTE_CACHE_TIMEOUT."""
        for rate in (2, 4096):
            with DrippingServer(rate) as server:
                elapsed = self.check_miss(server.url, f"local{rate}", MODELEXPORT_REMOTE_CACHE_TIMEOUT="2")
                self.assertLess(elapsed, 90, rate)
                self.assertTrue(server.requests, "the client never asked")

    def test_credentials_never_shown(self):
        """userinfo in any form (no scheme, an '@' or '/' in the password) appears nowhere: not in
        -v output, the report, the package, or `cache key`."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()  # nothing listens: every transfer fails, and its message names the URL
        for i, url in enumerate((f"user:s3cr3t-pw@127.0.0.1:{port}/cache", f"http://user:s3cr3t@pw@127.0.0.1:{port}/cache",
                                 f"http://user:s3cr3t/pw@127.0.0.1:{port}/cache", f"https://s3cr3t-token@127.0.0.1:{port}/cache")):
            out = f"p{i}"
            report = self.path(out + ".report.json")
            p = run("--verbose", "export", self.src, self.path(out), "--model", "modeling.py:build", "--report", report,
                    env=self.env(f"local{i}", url), check=0)
            self.wait(f"local{i}")
            key = run("cache", "key", self.src, "--model", "modeling.py:build", env=self.env(f"local{i}", url), check=0)
            written = [report, self.path(f"local{i}", "store.log")]
            written += [os.path.join(root, f) for root, _, files in os.walk(self.path(out)) for f in files if f.endswith(".json")]
            shown = p.stdout + p.stderr + key.stdout + key.stderr + "".join(map(text_of, written))
            self.assertIn("127.0.0.1", p.stdout + p.stderr, url)  # the failure was reported, with the URL
            self.assertNotIn("s3cr3t", shown, url)
            self.assertNotIn("pw@", shown, url)


def text_of(path):
    """A file's text ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class DrippingServer:
    """An HTTP server on 127.0.0.1 that sends a 200 with a large Content-Length at `rate` bytes per
    second and never finishes; 404 for HEAD, 201 for PUT. Bounded: every answer stops after 120 s
    or when the server is closed."""

    def __init__(self, rate):
        stop = self.stop = threading.Event()
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                until = time.monotonic() + 120
                try:
                    while not stop.is_set() and time.monotonic() < until:
                        self.wfile.write(b"x" * rate)
                        self.wfile.flush()
                        stop.wait(1)
                except OSError:
                    pass

            def do_HEAD(self):
                self.send_response(404)
                self.end_headers()

            def do_PUT(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(201)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cache"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


if __name__ == "__main__":
    unittest.main()
