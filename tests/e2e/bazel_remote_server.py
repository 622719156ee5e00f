"""A throwaway bazel-remote for the remote export cache tests: installed by
scripts/install-bazel-remote (built from the Go module proxy), on 127.0.0.1 at an ephemeral
port, its storage under one directory, stopped by the pid it was started with."""
import os
import re
import subprocess

from nginx_server import free_port, listening

INSTALLER = os.path.join(os.environ["MODELEXPORT_SOURCE_ROOT"], "scripts", "install-bazel-remote")


def install():
    """(path of the binary, None), or (None, why it cannot be installed here)."""
    p = subprocess.run([INSTALLER], capture_output=True, text=True, timeout=900)
    if p.returncode == 0:
        return p.stdout.strip(), None
    return None, p.stderr.strip() or f"{INSTALLER} exited {p.returncode}"


class BazelRemote:
    """bazel-remote serving the Bazel HTTP cache at http://127.0.0.1:PORT/ (no prefix). Its ac/
    entries are modelexport's manifests, not Bazel ActionResults, hence --disable_http_ac_validation;
    uncompressed storage so `stored` can read the names on disk."""

    def __init__(self, binary, base):
        self.base = base
        self.root = os.path.join(base, "storage")
        os.makedirs(self.root)
        self.port = free_port()
        self.log = open(os.path.join(base, "bazel-remote.log"), "wb")
        self.proc = subprocess.Popen([binary, "--dir", self.root, "--max_size", "1", "--http_address", f"127.0.0.1:{self.port}",
                                      "--grpc_address", "none", "--disable_http_ac_validation", "--storage_mode", "uncompressed"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if not listening(self.proc, self.port, 30):
            self.stop()
            with open(os.path.join(base, "bazel-remote.log"), errors="replace") as f:
                raise RuntimeError("bazel-remote did not start: " + f.read()[-2000:])

    def url(self, prefix=""):
        return f"http://127.0.0.1:{self.port}" + (f"/{prefix}" if prefix else "")

    def files(self, kind):
        """The files on disk holding the <kind> (ac or cas) entries, as {path: their SHA-256 name}."""
        folder = {"cas": "cas.v2", "ac": "raw.v2"}[kind]
        out = {}
        for d, _, files in os.walk(os.path.join(self.root, folder)):
            for f in files:
                m = re.match(r"[0-9a-f]{64}", f)
                if m:
                    out[os.path.join(d, f)] = m.group(0)
        return out

    def cas_files(self):
        return sorted(self.files("cas"))

    def stored(self, kind):
        """The SHA-256 names stored under <kind> (ac or cas). bazel-remote keeps a CAS object as
        cas.v2/<2 hex>/<sha256>-<random>.v1 and, with AC validation off, an ac/ entry as
        raw.v2/<2 hex>/<sha256>-<random> (the name's 64 hex digits are what counts)."""
        return sorted(set(self.files(kind).values()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # by the pid we started, never by name
            self.proc.wait(timeout=15)
        self.log.close()
