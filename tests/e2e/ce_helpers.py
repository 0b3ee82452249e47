"""
ce_helpers.py - helpers for the CloudEvents end-to-end tests
(test_events.py): a raw HTTP receiver that keeps every request's bytes as
they arrived (for byte-for-byte header checks), building C test functions
against the build's libzenithc.a, and CloudEvents request helpers.
Python 3 standard library only.
"""
import os
import socket
import subprocess
import threading
import time

from harness import CONFIG, request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class RawReceiver:
    """A loopback HTTP/1.1 sink (K_SINK stand-in).  Every request is kept
    as {"head": bytes (request line and headers, CRLFs included),
    "lines": [bytes header lines], "body": bytes}.  Answers come from
    statuses (one per request, then 202); keep-alive is honoured."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.thread.start()
        return self

    def _accept(self):
        self.sock.settimeout(0.05)
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        buf = b""
        c.settimeout(10)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, rest = buf.split(b"\r\n\r\n", 1)
                lines = head.split(b"\r\n")
                n = 0
                for line in lines[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v.strip())
                while len(rest) < n:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    rest += chunk
                body, buf = rest[:n], rest[n:]
                with self.cond:
                    i = len(self.requests)
                    self.requests.append({"head": head + b"\r\n",
                                          "lines": lines, "body": body})
                    status = (self.statuses[i] if i < len(self.statuses)
                              else 202)
                    self.cond.notify_all()
                c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n"
                          % status)
        except OSError:
            return
        finally:
            c.close()

    def wait(self, n, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.requests) >= n,
                                      timeout)

    def release(self):
        pass

    def stop(self):
        self.stopped = True
        try:
            self.sock.close()
        except OSError:
            pass


def header(req, name):
    """A header's raw value (bytes) in a RawReceiver request, or None;
    the name compared without regard to case."""
    want = name.lower().encode()
    for line in req["lines"][1:]:
        k, _, v = line.partition(b":")
        if k.lower() == want:
            return v.strip()
    return None


_BUILT = {}


def build_c(test, name, sources, extra_cflags=(), extra_libs=()):
    """Build sources (paths) into a binary called name against this
    build's libzenithc.a, with the build's sanitizer if any; once per
    build and name.  Returns the binary's path."""
    build = CONFIG["build"]
    key = (build, name)
    if key in _BUILT:
        return _BUILT[key]
    lib = os.path.join(build, "lib", "libzenithc.a")
    if not os.path.exists(lib):
        test.fail("no %s to build %s against" % (lib, name))
    with open(lib, "rb") as f:
        data = f.read()
    san = (["-fsanitize=thread"] if b"__tsan_" in data else
           ["-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined"] if b"__asan_" in data else [])

    def pkg(flag, pkgs, fallback):
        try:
            out = subprocess.run(["pkg-config", flag] + pkgs, check=True,
                                 capture_output=True, text=True).stdout
            return out.split()
        except (OSError, subprocess.CalledProcessError):
            return fallback
    deps = ["libmicrohttpd", "jansson", "libcurl"]
    outdir = os.path.join(CONFIG["tmpdir"], "ce-build")
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, name)
    cmd = ([os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O1",
            "-g", "-pthread", "-Wall", "-Wextra", "-Werror"] + san +
           ["-I", os.path.join(ROOT, "runtime", "include")] +
           pkg("--cflags", deps, []) + list(extra_cflags) +
           ["-o", out] + list(sources) + [lib] + list(extra_libs) +
           pkg("--libs", deps, ["-lmicrohttpd", "-ljansson", "-lcurl"]) +
           ["-ldl", "-lm"])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        test.fail("cannot build %s:\n%s\n%s" % (name, " ".join(cmd),
                                                r.stderr[-3000:]))
    _BUILT[key] = out
    return out


def binary_event(port, path, ce, data=b"", content_type="application/json",
                 extra=None, **kw):
    """POST a binary-mode event: ce maps attribute -> header value (sent
    as given, so the caller chooses the encoding)."""
    headers = {"ce-%s" % k: v for k, v in ce.items()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    headers.update(extra or {})
    return request(port, "POST", path, data, headers=headers, **kw)


def structured_event(port, path, event, extra=None, **kw):
    import json
    headers = {"Content-Type": "application/cloudevents+json"}
    headers.update(extra or {})
    return request(port, "POST", path,
                   json.dumps(event, separators=(",", ":")).encode(),
                   headers=headers, **kw)


def poll_file(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        time.sleep(0.01)
    return False
