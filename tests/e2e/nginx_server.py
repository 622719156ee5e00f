"""A throwaway nginx WebDAV server for the remote export cache (test_cache.py, bench/run case 7):
127.0.0.1 only, an ephemeral port, config, logs, pid and temp files all under one directory,
stopped by the pid it was started with."""
import os
import shutil
import socket
import subprocess
import time

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(proc, port, seconds):
    """Whether 127.0.0.1:port accepts connections before proc exits or `seconds` pass."""
    deadline = time.time() + seconds
    while proc.poll() is None and time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


class Nginx:
    """nginx serving a WebDAV root on 127.0.0.1: PUT creates files (the Bazel HTTP cache layout
    needs nothing else), /broken/ answers 500. Config, logs, pid and temp files stay in `base`."""

    def __init__(self, base):
        self.base = base
        self.root = os.path.join(base, "root")
        for d in ("root", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(base, d))
            os.chmod(os.path.join(base, d), 0o777)  # a root-started nginx writes as its worker user
        os.chmod(base, 0o755)
        self.port = free_port()
        conf = os.path.join(base, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {base}/access.log;
  client_body_temp_path {base}/body;
  proxy_temp_path {base}/proxy;
  fastcgi_temp_path {base}/fastcgi;
  uwsgi_temp_path {base}/uwsgi;
  scgi_temp_path {base}/scgi;
  client_max_body_size 0;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.root};
    location /cache/ {{ dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r; }}
    location /broken/ {{ return 500; }}
  }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", base, "-c", conf, "-e", os.path.join(base, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not listening(self.proc, self.port, 15):
            self.stop()
            raise RuntimeError("nginx did not start: " + self.proc.stderr.read().decode(errors="replace"))

    def url(self, prefix="cache"):
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def stored(self, kind):
        """Names under cache/<kind> (ac or cas) on the server."""
        d = os.path.join(self.root, "cache", kind)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def cas_files(self):
        """The files on the server's disk holding the cas/ objects."""
        return [os.path.join(self.root, "cache", "cas", n) for n in self.stored("cas")]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # by the pid we started, never by name
            self.proc.wait(timeout=15)
        self.proc.stderr.close()
