"""
helpers.py - what the pack tests share: the runtime installed once into a
temporary prefix (from the build directory run.py is given), running a
function binary on a free loopback port, and the requests `func invoke`
sends.
"""
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

from funcpack import ROOT

BUILD = os.environ.get("ZC_PACK_BUILD", os.path.join(ROOT, "build"))
_PREFIX = None
_TMP = tempfile.mkdtemp(prefix="zc-pack-")


def tmpdir(name):
    d = os.path.join(_TMP, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


def cleanup():
    shutil.rmtree(_TMP, ignore_errors=True)


def prefix():
    """`make install` of the runtime into a private prefix, once."""
    global _PREFIX
    if _PREFIX is None:
        p = os.path.join(_TMP, "prefix")
        subprocess.run(["make", "-C", ROOT, "--no-print-directory", "-s",
                        "install", "BUILD=" + BUILD, "PREFIX=" + p,
                        "DESTDIR="], check=True, capture_output=True,
                       timeout=600)
        _PREFIX = p
    return _PREFIX


def pkg_env(**extra):
    env = dict(os.environ, **extra)
    env["PKG_CONFIG_PATH"] = os.path.join(prefix(), "lib", "pkgconfig")
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Running:
    """A function binary serving on a free loopback port; stopped with
    SIGTERM by its PID."""

    def __init__(self, argv, env=None, cwd=None):
        self.port = free_port()
        e = dict(env or os.environ, PORT=str(self.port),
                 ZC_LISTEN_ADDRESS="127.0.0.1")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, env=e, cwd=cwd,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.request("GET", "/health/readiness")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError("%s did not become ready:\n%s" %
                             (argv[0], self.stderr()))

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, \
                r.read().decode()
        finally:
            c.close()

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


# The requests `func invoke` sends, from knative/func @c18d604,
# pkg/functions/invoke.go: DefaultInvokeData (line 24) and
# DefaultInvokeContentType (line 22); sendHttp (lines 274-279): the method
# (POST by default, GET with --request-type GET), the data as the body and
# Content-Type, on the instance's route "http://localhost:<port>/"
# (pkg/functions/instances.go line 63); a status above 299 fails (line
# 287).  Go's net/http adds User-Agent and Accept-Encoding.
INVOKE_DATA = '{"message":"Hello World"}'
HTTP_INVOKE_HEADERS = {
    "User-Agent": "Go-http-client/1.1",
    "Content-Type": "application/json",
    "Accept-Encoding": "gzip",
}


def event_invoke_headers():
    """sendEvent (invoke.go lines 167-191): NewInvokeMessage's id (a uuid,
    line 44), source /boson/fn and type boson.fn (lines 20-21), the data as
    application/json, sent by the CloudEvents Go SDK client, whose default
    encoding is binary mode (ce-* headers, data as the body; sdk-go
    v2/binding/write.go); no Prefer: reply."""
    return {
        "User-Agent": "Go-http-client/1.1",
        "Ce-Id": str(uuid.uuid4()),
        "Ce-Source": "/boson/fn",
        "Ce-Specversion": "1.0",
        "Ce-Type": "boson.fn",
        "Content-Type": "application/json",
        "Accept-Encoding": "gzip",
    }
