#!/usr/bin/env python3
"""Remote hit vs local hit of the genuine BERT-base (bench/run case 6/7's, in $BENCH_DIR) in
interleaved pairs, against an nginx WebDAV server on 127.0.0.1 (tests/e2e/nginx_server.py).

Usage: bench/remote_vs_local.py MODELEXPORT PYTHON PAIRS

One miss on "machine 1" stores and uploads; "machine 2" exports once so that it remembers the
weights' hashes; then each pair empties machine 2's store (a remote hit) and re-exports on
machine 1 (a local hit), alternating the order. Prints each side's times, the remote hits'
cache.steps and the median of the pairs' ratios."""
import json, os, shutil, statistics, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from nginx_server import Nginx
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from nginx_server import Nginx  # noqa: E402

BENCH = os.environ.get("BENCH_DIR", "/tmp/modelexport-bench")


def main(tool, python, pairs):
    work = os.path.join(BENCH, "work", "remote-vs-local")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    os.chmod(work, 0o755)  # nginx's worker user must reach its root
    src, out = os.path.join(work, "src"), os.path.join(work, "out")
    shutil.copytree(os.path.join(BENCH, "bert-base-genuine"), src)
    server = Nginx(os.path.join(work, "nginx"))

    def export(machine):
        shutil.rmtree(out, ignore_errors=True)
        report = os.path.join(work, "report.json")
        env = dict(os.environ, MODELEXPORT_NO_CACHE="0", MODELEXPORT_CACHE_DIR=os.path.join(work, machine),
                   MODELEXPORT_REMOTE_CACHE=server.url())
        started = time.perf_counter()
        subprocess.run([tool, "export", src, out, "--python", python, "--quiet", "--report", report], env=env, check=True)
        seconds = time.perf_counter() - started
        # The store and upload go on after the command (design §10): done before the next export.
        subprocess.run([tool, "cache", "wait", "--quiet"], env=env, check=True)
        with open(report, encoding="utf-8") as f:
            return seconds, json.load(f)["cache"]

    try:
        export("machine1")  # the miss: stores and uploads
        export("machine2")  # machine 2 remembers the weights' hashes from now on
        remote, local = [], []
        for i in range(pairs):
            for sub in ("ac", "cas"):
                shutil.rmtree(os.path.join(work, "machine2", sub), ignore_errors=True)
            order = [("machine2", remote), ("machine1", local)]
            for machine, runs in order if i % 2 == 0 else order[::-1]:
                runs.append(export(machine))
        assert all(c["result"] == "hit-remote" for _, c in remote) and all(c["result"] == "hit-local" for _, c in local)
        print("remote hits:", [round(s, 2) for s, _ in remote], "cache.steps:", [c["steps"] for _, c in remote])
        print("local hits:", [round(s, 2) for s, _ in local])
        print("median remote/local pair ratio %.2f; median remote %.2f s, local %.2f s" % (
            statistics.median(r[0] / l[0] for r, l in zip(remote, local)), statistics.median(s for s, _ in remote),
            statistics.median(s for s, _ in local)))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
