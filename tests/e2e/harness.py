"""
harness.py - process management, HTTP helpers and fake downstream services
for the Zenith C end-to-end suite.  Python 3 standard library only.

Every process started here is recorded and killed by kill_all() (called by
the per-test cleanup and by run.py's finally), so nothing outlives the run.
"""
import http.client
import itertools
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
from decimal import Decimal

FUNCTIONS = ("audit-logger", "balance-manager", "transaction-processor")

# Filled in by run.py before the tests are loaded.
CONFIG = {
    "build": "build",
    "slow": 1.0,
    "tmpdir": None,
}

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def T(seconds):
    """A timeout scaled by the --slow factor (sanitizer builds)."""
    return seconds * CONFIG["slow"]


def binary_in(build, name):
    return os.path.join(build, "bin", name)


def binary(name):
    return binary_in(CONFIG["build"], name)


def free_port():
    """A loopback port that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def dead_url():
    """A URL on a loopback port nobody listens on (connection refused)."""
    return "http://127.0.0.1:%d" % free_port()


def poll(predicate, timeout, interval=0.01):
    """Call predicate until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def fmt_cents(cents):
    """Cents as a person writes the amount: 30 -> 0.3, 10050 -> 100.5."""
    sign = "-" if cents < 0 else ""
    a = abs(cents)
    s = "%d.%02d" % (a // 100, a % 100)
    s = s.rstrip("0").rstrip(".")
    return sign + s


def to_cents(text):
    d = Decimal(text) * 100
    assert d == d.to_integral_value(), text
    return int(d)


def raw_number(body, key):
    """The raw text of a top-level number field, e.g. '0.3', or None."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    m = re.search(r'"%s":(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)' % re.escape(key),
                  body)
    return m.group(1) if m else None


def is_compact_json(text):
    """True when text has no whitespace outside strings (one trailing
    newline, as Go's json.Encoder writes, is allowed)."""
    if text.endswith("\n"):
        text = text[:-1]
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in " \t\r\n":
            return False
    return True


# ---------------------------------------------------------------------------
# HTTP client helpers
# ---------------------------------------------------------------------------
class Resp:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage or dict (lower)
        self.body = body
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def header(self, name):
        if isinstance(self.headers, dict):
            return self.headers.get(name.lower())
        return self.headers.get(name)

    def json(self):
        return json.loads(self.text, parse_float=Decimal)

    def __repr__(self):
        body = self.text
        if len(body) > 300:
            body = body[:300] + "..."
        return "<HTTP %d %r after %.3fs>" % (self.status, body, self.elapsed)


def encode_body(body):
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def request(port, method, path, body=None, headers=None, timeout=None,
            conn=None):
    """One HTTP request to 127.0.0.1:port.  With conn, reuse that
    http.client connection (keep-alive); otherwise open and close one."""
    data = encode_body(body)
    hdrs = {}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    if headers:
        hdrs.update(headers)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port,
                                          timeout=timeout or T(10))
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Resp(r.status, r.reason, r.headers, payload,
                    time.monotonic() - t0)
    finally:
        if own:
            conn.close()


def connect_refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


def _recv_until(sock, buf, pred):
    while not pred(buf):
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed after %d bytes: %r" %
                           (len(buf), bytes(buf[:200])))
        buf += chunk
    return buf


def read_raw_response(sock, buf=b"", head=False):
    """Read one HTTP/1.x response from sock.  Returns (Resp, leftover)."""
    t0 = time.monotonic()
    while True:
        buf = _recv_until(sock, buf, lambda b: b"\r\n\r\n" in b)
        head_block, rest = buf.split(b"\r\n\r\n", 1)
        lines = head_block.decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError("bad status line %r" % lines[0])
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        hdrs = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                k = k.strip().lower()
                v = v.strip()
                hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        if 100 <= status < 200:
            buf = rest
            continue
        break
    if head or status in (204, 304):
        return Resp(status, reason, hdrs, b"", time.monotonic() - t0), rest
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        body = b""
        while True:
            rest = _recv_until(sock, rest, lambda b: b"\r\n" in b)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                rest = _recv_until(sock, rest, lambda b: b"\r\n" in b)
                # skip trailers (assume none)
                rest = rest.split(b"\r\n", 1)[1]
                break
            rest = _recv_until(sock, rest, lambda b: len(b) >= size + 2)
            body += rest[:size]
            rest = rest[size + 2:]
        return Resp(status, reason, hdrs, body, time.monotonic() - t0), rest
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        rest = _recv_until(sock, rest, lambda b: len(b) >= n)
        return (Resp(status, reason, hdrs, rest[:n], time.monotonic() - t0),
                rest[n:])
    # read until EOF
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Resp(status, reason, hdrs, rest, time.monotonic() - t0), b""


def send_large(port, method, path, body, extra_headers=(), timeout=None,
               chunked=False):
    """Send a request whose body the server may refuse to read: the body is
    written from a helper thread (errors ignored) while this thread reads the
    response, so an early 413 followed by a close is still seen."""
    timeout = timeout or T(10)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    head = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port,
            "Content-Type: application/json"]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    else:
        head.append("Content-Length: %d" % len(body))
    head.extend(extra_headers)
    wire_head = ("\r\n".join(head) + "\r\n\r\n").encode()
    send_err = []

    def sender():
        try:
            sock.sendall(wire_head)
            step = 16384
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                if chunked:
                    piece = b"%x\r\n%s\r\n" % (len(piece), piece)
                sock.sendall(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError as e:
            send_err.append(e)

    th = threading.Thread(target=sender, daemon=True)
    th.start()
    try:
        resp, _ = read_raw_response(sock)
        return resp
    finally:
        try:
            sock.close()
        except OSError:
            pass
        th.join(timeout)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------
_ALL_PROCS = []
_ALL_LOCK = threading.Lock()

# OTEL_*: a developer's tracing settings must not turn tracing on in tests
_SCRUB_PREFIXES = ("ZC_", "OTEL_")
_SCRUB_NAMES = ("PORT", "LOG_LEVEL", "K_SERVICE", "POD_NAMESPACE",
                "AUDIT_LOGGER_URL", "BALANCE_MANAGER_URL",
                "TRANSACTION_PROCESSOR_URL",
                # event mode (docs/events.md) is switched on by these
                "K_SINK", "K_CE_OVERRIDES", "EVENT_MODE")


def base_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES}
    env["LOG_LEVEL"] = "info"
    return env


_STORES = itertools.count()


class Proc:
    """One function binary, its stderr/stdout in files under logdir."""

    def __init__(self, name, port, env, logdir, tag=None):
        self.name = name
        self.port = port
        self.tag = tag or name
        if "ZC_STORE_URL" not in env:
            # A process of its own starts with no state, as the tests
            # assume: a fresh SQLite file unless the test names a store
            # (a test that restarts a process on its state passes it).
            env = dict(env)
            env["ZC_STORE_URL"] = "sqlite:%s" % os.path.join(
                logdir, "%s.%d.%d.db" % (self.tag, port, next(_STORES)))
        self.env = env
        self.err_path = os.path.join(logdir, "%s.%d.stderr" % (self.tag, port))
        self.out_path = os.path.join(logdir, "%s.%d.stdout" % (self.tag, port))
        self.popen = None
        self.returncode = None
        self.killed = False
        self.start_time = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def start(self):
        path = binary(self.name)
        with open(self.err_path, "wb") as err, open(self.out_path, "wb") as out:
            self.start_time = time.monotonic()
            self.popen = subprocess.Popen(
                [path], env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, start_new_session=True, close_fds=True)
        with _ALL_LOCK:
            _ALL_PROCS.append(self)
        return self

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def wait(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            self.returncode = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def signal(self, sig):
        if self.alive():
            os.kill(self.popen.pid, sig)

    def wait_ready(self, timeout=None):
        timeout = timeout or T(10)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(
                    "%s exited with code %s before becoming ready\n%s" %
                    (self.tag, self.popen.returncode, self.tail()))
            try:
                r = request(self.port, "GET", "/health/readiness",
                            timeout=T(1))
                if r.status == 200:
                    return self
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.01)
        raise AssertionError("%s not ready on port %d after %.1fs (last: %r)\n%s"
                             % (self.tag, self.port, timeout, last, self.tail()))

    def stop(self, grace=None):
        """SIGTERM, then SIGKILL after grace seconds.  Returns the exit code
        and records whether SIGKILL was needed."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                os.kill(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace if grace is not None else T(5))
            except subprocess.TimeoutExpired:
                self.killed = True
                try:
                    os.kill(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait()
        self.returncode = self.popen.returncode
        with _ALL_LOCK:
            if self in _ALL_PROCS:
                _ALL_PROCS.remove(self)
        return self.returncode

    def stderr_text(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=30):
        lines = self.stderr_text().splitlines()[-n:]
        out = ["---- %s (pid %s, port %d) stderr tail: %s" %
               (self.tag, self.pid, self.port, self.err_path)]
        out.extend("  | " + line for line in lines)
        so = self.stdout_text().splitlines()[-10:]
        if so:
            out.append("---- %s stdout tail" % self.tag)
            out.extend("  | " + line for line in so)
        return "\n".join(out)

    def sanitizer_report(self):
        text = self.stderr_text()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                start = text.rfind("\n", 0, max(0, i - 200)) + 1
                return text[start:i + 2500]
        return None

    def wait_for_stderr(self, predicate, timeout=None):
        """Poll stderr until predicate(text) is true; returns the text."""
        timeout = timeout or T(3)
        return poll(lambda: (predicate(self.stderr_text()) and
                             self.stderr_text()), timeout, 0.02)


def kill_all():
    """Stop every recorded process (SIGTERM, then SIGKILL)."""
    with _ALL_LOCK:
        procs = list(_ALL_PROCS)
    for p in procs:
        if p.alive():
            try:
                os.kill(p.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 3
    for p in procs:
        if p.popen is None:
            continue
        try:
            p.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.popen.wait()
    with _ALL_LOCK:
        for p in procs:
            if p in _ALL_PROCS:
                _ALL_PROCS.remove(p)


# ---------------------------------------------------------------------------
# Fake downstream service
# ---------------------------------------------------------------------------
class FakeService:
    """A loopback HTTP/1.1 server that records requests and answers after an
    optional delay.  responder(method, path, body) -> (status, headers, body)
    or the string "close" to drop the connection without a reply."""

    def __init__(self, delay=0.0, responder=None):
        self.delay = delay
        self.responder = responder or (lambda m, p, b: (
            200, {"Content-Type": "application/json"},
            b'{"status":"logged","timestamp":"2025-01-15T10:30:00Z"}'))
        self.requests = []
        self.cond = threading.Condition()
        self.release_event = threading.Event()
        self.server = None
        self.thread = None
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *args):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with fake.cond:
                    fake.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": dict(self.headers.items()), "body": body,
                        "time": time.monotonic()})
                    fake.cond.notify_all()
                if fake.delay:
                    fake.release_event.wait(fake.delay)
                out = fake.responder(self.command, self.path, body)
                if out == "close":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                status, headers, payload = out
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True

        self._server_cls = Server
        self._handler_cls = Handler

    def start(self):
        self.server = self._server_cls(("127.0.0.1", 0), self._handler_cls)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def wait_requests(self, n, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.requests) >= n,
                                      timeout)

    def release(self):
        """Wake every request sleeping in the delay."""
        self.release_event.set()

    def stop(self):
        self.release()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def json_reply(obj, status=200):
    return (status, {"Content-Type": "application/json"},
            json.dumps(obj, separators=(",", ":")).encode())


# ---------------------------------------------------------------------------
# Base test case
# ---------------------------------------------------------------------------
class E2ETestCase(unittest.TestCase):
    """Starts processes and fakes for one test and always stops them; fails
    the test if a sanitizer wrote a report to any process's stderr."""

    def setUp(self):
        self.procs = []
        self.fakes = []
        self.logdir = os.path.join(CONFIG["tmpdir"], self.id().split(".", 1)[-1])
        os.makedirs(self.logdir, exist_ok=True)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for f in self.fakes:
            f.release()
        killed = []
        for p in self.procs:
            p.stop()
            if p.killed:
                killed.append(p.tag)
        for f in self.fakes:
            f.stop()
        reports = []
        for p in self.procs:
            rep = p.sanitizer_report()
            if rep:
                reports.append("%s (%s):\n%s" % (p.tag, p.err_path, rep))
        if reports:
            self.fail("sanitizer report(s):\n" + "\n".join(reports))
        if killed:
            self.fail("process(es) %s needed SIGKILL: no exit within %.1fs "
                      "of SIGTERM" % (", ".join(killed), T(5)))

    # -- process helpers -------------------------------------------------
    def spawn(self, name, env=None, port=None, tag=None, wait=True):
        """Start binary name.  Unwired downstream URLs point at a refused
        port so nothing ever tries DNS."""
        port = port or free_port()
        e = base_env()
        e["PORT"] = str(port)
        e["AUDIT_LOGGER_URL"] = dead_url()
        e["BALANCE_MANAGER_URL"] = dead_url()
        if env:
            for k, v in env.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = str(v)
        p = Proc(name, port, e, self.logdir, tag=tag)
        if not os.path.exists(binary(name)):
            raise unittest.SkipTest("binary %s not built" % binary(name))
        p.start()
        self.procs.append(p)
        if wait:
            p.wait_ready()
        return p

    def chain(self, audit_env=None, balance_env=None, txn_env=None):
        """The whole chain wired together; returns (audit, balance, txn)."""
        audit = self.spawn("audit-logger", audit_env)
        benv = {"AUDIT_LOGGER_URL": audit.url}
        benv.update(balance_env or {})
        balance = self.spawn("balance-manager", benv)
        tenv = {"BALANCE_MANAGER_URL": balance.url,
                "AUDIT_LOGGER_URL": audit.url}
        tenv.update(txn_env or {})
        txn = self.spawn("transaction-processor", tenv)
        return audit, balance, txn

    def fake(self, delay=0.0, responder=None):
        f = FakeService(delay, responder).start()
        self.fakes.append(f)
        return f

    def tails(self):
        return "\n".join(p.tail() for p in self.procs)

    # -- assertions ------------------------------------------------------
    def assertStatus(self, resp, expected, msg=""):
        exp = expected if isinstance(expected, (tuple, list, set)) else (expected,)
        if resp.status not in exp:
            self.fail("expected status %s, got %r %s" %
                      ("/".join(map(str, exp)), resp, msg))

    def assertJsonContentType(self, resp):
        ct = resp.header("Content-Type") or ""
        self.assertTrue(ct.lower().startswith("application/json"),
                        "Content-Type %r is not application/json (%r)" %
                        (ct, resp))

    def assertJsonError(self, resp, expected, msg=""):
        """Status in expected and a JSON object body with an "error" string."""
        self.assertStatus(resp, expected, msg)
        self.assertJsonContentType(resp)
        try:
            doc = resp.json()
        except ValueError:
            self.fail("error body is not JSON: %r %s" % (resp, msg))
        self.assertIsInstance(doc, dict, "%r %s" % (resp, msg))
        self.assertIsInstance(doc.get("error"), str, "%r %s" % (resp, msg))
        self.assertTrue(doc["error"], "empty error message %r" % resp)
        return doc

    def assertCompactJson(self, resp, keys):
        """Compact JSON object whose keys are exactly keys, in that order."""
        self.assertJsonContentType(resp)
        self.assertTrue(is_compact_json(resp.text),
                        "body is not compact JSON: %r" % resp.text)
        doc = resp.json()
        self.assertIsInstance(doc, dict)
        self.assertEqual(list(doc.keys()), list(keys),
                         "key order in %r" % resp.text)
        return doc

    def assertTimestamp(self, value):
        import datetime
        self.assertIsInstance(value, str)
        self.assertRegex(value, RFC3339)
        v = value.replace("z", "Z").replace("t", "T")
        ts = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - ts).total_seconds()), 300,
                        "timestamp %s is not now" % value)

    def assertExactMoney(self, resp, key, cents):
        raw = raw_number(resp.body, key)
        self.assertEqual(raw, fmt_cents(cents),
                         "raw %s in %r" % (key, resp.text))
