#!/usr/bin/env python3
"""
faultproxy.py - a controllable faulty downstream for the Zenith C end-to-end
suite: an HTTP/1.1 reverse proxy (keep-alive, one thread per connection,
Python 3 standard library only) placed between two functions, e.g.

    transaction-processor -> FaultProxy -> balance-manager

Modes (switch at run time with set_mode() or POST /__fault):

  pass          forward every request
  refuse        stop listening (connect: ECONNREFUSED) and drop every open
                connection; leaving the mode listens again on the same port
  close         accept, read the request, close without a reply
  hang          read the request, never answer and never forward (held
                until the caller gives up or the proxy stops)
  slow          wait delay_ms, then forward (not forwarded if the caller
                hung up meanwhile: recorded as "abandoned")
  fail_before   answer status (503) WITHOUT forwarding
  fail_after    forward, read the whole upstream answer, then answer status
                (502): the update was applied but the caller sees a failure
  reset         forward, send the upstream headers and half the body, then
                reset the connection (SO_LINGER 0 -> RST)
  invalid_json  answer 200 application/json with a body that is not JSON
                (forwarded first when forward=true)
  mix           each faulted request gets one fault drawn from faults
                (default fail_before, fail_after, reset)

Every mode takes fraction (0..1, default 1: the share of requests faulted,
the rest pass through), count (fault at most this many requests, then pass
through; default unlimited) and seed (for a reproducible draw).  fail_*
take status, body and retry_after (a Retry-After value); slow takes
delay_ms.

Control endpoint, on the proxy port (except in refuse mode) and always on
control_port:
  POST /__fault            {"mode": "...", ...}  -> {"ok": true, "mode": ...}
  GET  /__fault            stats: requests, faults (by kind), forwarded, ...
  GET  /__fault/requests   one record per proxied request
  POST /__fault/reset      clear stats and records (mode unchanged)
  POST /__fault/release    forward every request held by hang

Each record holds method, path, idempotency_key, traceparent, tracestate,
all headers, body, fault, forwarded, upstream_status, replayed (upstream
said Idempotent-Replayed: true), client_status (what the caller got, None
for no answer), t_start/t_end (time.monotonic()).

Stand-alone:  python3 faultproxy.py --upstream http://127.0.0.1:8081 \
                  [--port 0] [--control-port 0] [--mode pass]
"""
import argparse
import http.client
import json
import random
import select
import socket
import struct
import sys
import threading
import time
import urllib.parse

MODES = ("pass", "refuse", "close", "hang", "slow", "fail_before",
         "fail_after", "reset", "invalid_json", "mix")
MIX_DEFAULT = ("fail_before", "fail_after", "reset")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te",
              "trailer", "transfer-encoding", "upgrade", "content-length",
              "host"}
CONTROL_PREFIX = "/__fault"
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
INVALID_JSON = b'{"status":"updated","new_balance":12.3'  # truncated object


class _Closed(Exception):
    """The client went away (or sent something we cannot parse)."""


def _reason(status):
    return http.client.responses.get(status, "Status")


class _Conn:
    """One client connection: a socket and its read buffer."""

    def __init__(self, sock, addr, control_only):
        self.sock = sock
        self.addr = addr
        self.buf = b""
        self.control_only = control_only
        self.upstream = None  # http.client.HTTPConnection, kept alive

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            raise _Closed()
        self.buf += chunk

    def read_request(self):
        """(method, target, version, [(name, value)], body) or raises."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD:
                raise _Closed()
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        while lines and lines[0] == "":  # stray CRLF between requests
            lines.pop(0)
        if not lines:
            raise _Closed()
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Closed()
        method, target, version = parts
        headers = []
        for line in lines[1:]:
            if ":" not in line:
                raise _Closed()
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
        lower = {k.lower(): v for k, v in headers}
        if "chunked" in lower.get("transfer-encoding", "").lower():
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                while len(self.buf) < size + 2:
                    self._fill()
                if size == 0:
                    # trailers: skip to the empty line
                    while not self.buf.startswith(b"\r\n"):
                        while b"\r\n" not in self.buf:
                            self._fill()
                        self.buf = self.buf.split(b"\r\n", 1)[1]
                    self.buf = self.buf[2:]
                    break
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if len(body) > MAX_BODY:
                    raise _Closed()
        else:
            n = int(lower.get("content-length", "0") or "0")
            if n > MAX_BODY:
                raise _Closed()
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        return method, target, version, headers, body

    def send(self, data):
        self.sock.sendall(data)

    def peer_closed(self):
        """True when the client has hung up (EOF or error), without
        consuming data."""
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return False
            data = self.sock.recv(1, socket.MSG_PEEK)
            return data == b""
        except OSError:
            return True

    def close(self, rst=False):
        if self.upstream is not None:
            try:
                self.upstream.close()
            except OSError:
                pass
            self.upstream = None
        try:
            if rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            else:
                self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def _response_bytes(status, headers, body, keep_alive=True):
    out = ["HTTP/1.1 %d %s" % (status, _reason(status))]
    for k, v in headers:
        out.append("%s: %s" % (k, v))
    out.append("Content-Length: %d" % len(body))
    out.append("Connection: %s" % ("keep-alive" if keep_alive else "close"))
    return ("\r\n".join(out) + "\r\n\r\n").encode("iso-8859-1") + body


class FaultProxy:
    """A fault-injecting reverse proxy to one upstream base URL."""

    def __init__(self, upstream, port=0, control_port=0, host="127.0.0.1"):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("upstream must be http://host:port, got %r" %
                             upstream)
        self.upstream_host = u.hostname
        self.upstream_port = u.port or 80
        self.upstream_prefix = u.path.rstrip("/")
        self.host = host
        self.port = port
        self.control_port = control_port
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stopping = threading.Event()
        self.release_event = threading.Event()
        self._listener = None
        self._control_listener = None
        self._threads = []
        self._conns = set()
        self._config = {"mode": "pass"}
        self._rng = random.Random(0)
        self._faults_left = None
        self._reset_stats()

    # -- life cycle --------------------------------------------------------
    def start(self):
        self._listener = self._listen(self.port)
        self.port = self._listener.getsockname()[1]
        self._control_listener = self._listen(self.control_port)
        self.control_port = self._control_listener.getsockname()[1]
        self._spawn(self._accept_loop, self._listener, False)
        self._spawn(self._accept_loop, self._control_listener, True)
        return self

    def _listen(self, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, port))
        s.listen(256)
        return s

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def stop(self):
        """Stop listening, drop every connection (held requests are never
        forwarded), wait briefly for the threads."""
        self.stopping.set()
        self.release_event.set()
        with self.lock:
            listeners = [self._listener, self._control_listener]
            self._listener = self._control_listener = None
            conns = list(self._conns)
        for s in listeners:
            self._close_listener(s)
        for c in conns:
            c.close()
        deadline = time.monotonic() + 2
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def release(self):
        """FakeService-compatible no-op for the harness cleanup: held
        (hang) requests stay unanswered and are dropped by stop()."""

    @staticmethod
    def _close_listener(s):
        if s is None:
            return
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def control_url(self):
        return "http://%s:%d" % (self.host, self.control_port)

    # -- configuration -----------------------------------------------------
    def set_mode(self, mode, **params):
        """Switch mode; params as in the module doc.  Returns the config."""
        if mode not in MODES:
            raise ValueError("unknown mode %r (one of %s)" %
                             (mode, ", ".join(MODES)))
        cfg = {"mode": mode}
        cfg.update(params)
        frac = float(cfg.get("fraction", 1.0))
        if not 0.0 <= frac <= 1.0:
            raise ValueError("fraction must be within 0..1")
        for f in cfg.get("faults", ()):
            if f not in MODES or f in ("pass", "mix", "refuse"):
                raise ValueError("bad fault %r in faults" % f)
        with self.lock:
            old = self._config["mode"]
            self._config = cfg
            self._faults_left = cfg.get("count")
            if "seed" in cfg:
                self._rng = random.Random(cfg["seed"])
            self.release_event.clear()
            conns = list(self._conns) if mode == "refuse" else []
            listener = None
            if mode == "refuse" and old != "refuse":
                listener, self._listener = self._listener, None
            relisten = old == "refuse" and mode != "refuse"
        if listener is not None:
            self._close_listener(listener)
        for c in conns:
            if not c.control_only:
                c.close()
        if relisten and not self.stopping.is_set():
            s = self._listen(self.port)
            with self.lock:
                self._listener = s
            self._spawn(self._accept_loop, s, False)
        return dict(cfg)

    def config(self):
        with self.lock:
            return dict(self._config)

    def _reset_stats(self):
        self._stats = {"requests": 0, "faults": 0, "forwarded": 0,
                       "abandoned": 0, "upstream_errors": 0,
                       "connections": 0, "by_fault": {}}
        self._records = []

    def reset(self):
        with self.lock:
            self._reset_stats()

    def stats(self):
        with self.lock:
            s = dict(self._stats)
            s["by_fault"] = dict(self._stats["by_fault"])
            s["mode"] = self._config["mode"]
            return s

    def records(self):
        with self.lock:
            return [dict(r) for r in self._records]

    def wait_requests(self, n, timeout):
        """Wait until the proxy has seen n requests; True if it has."""
        with self.cond:
            return self.cond.wait_for(
                lambda: self._stats["requests"] >= n, timeout)

    def _choose(self):
        """The fault for the next request (None: pass through)."""
        with self.lock:
            cfg = self._config
            mode = cfg["mode"]
            if mode in ("pass", "refuse"):
                return None, cfg
            if self._faults_left is not None and self._faults_left <= 0:
                return None, cfg
            if self._rng.random() >= float(cfg.get("fraction", 1.0)):
                return None, cfg
            if self._faults_left is not None:
                self._faults_left -= 1
            if mode == "mix":
                faults = list(cfg.get("faults") or MIX_DEFAULT)
                return self._rng.choice(faults), cfg
            return mode, cfg

    # -- serving -----------------------------------------------------------
    def _accept_loop(self, listener, control_only):
        while not self.stopping.is_set():
            try:
                sock, addr = listener.accept()
            except OSError:
                return  # closed: stop() or refuse mode
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, addr, control_only)
            with self.lock:
                if self.stopping.is_set():
                    conn.close()
                    return
                if not control_only and self._config["mode"] == "refuse":
                    conn.close(rst=True)
                    continue
                self._conns.add(conn)
                self._stats["connections"] += 1
            self._spawn(self._serve, conn)

    def _serve(self, conn):
        try:
            while not self.stopping.is_set():
                try:
                    method, target, version, headers, body = \
                        conn.read_request()
                except (_Closed, ValueError):
                    return
                lower = {k.lower(): v for k, v in headers}
                want_close = ("close" in lower.get("connection", "").lower()
                              or version == "HTTP/1.0")
                if target.startswith(CONTROL_PREFIX):
                    self._control(conn, method, target, body, want_close)
                elif conn.control_only:
                    conn.send(_response_bytes(
                        404, [("Content-Type", "application/json")],
                        b'{"error":"control port: only /__fault"}'))
                else:
                    if not self._proxy(conn, method, target, headers, lower,
                                       body, want_close):
                        return
                if want_close:
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self._conns.discard(conn)
            conn.close()

    def _control(self, conn, method, target, body, want_close):
        path = target.split("?", 1)[0]
        status, out = 200, None
        try:
            if path == CONTROL_PREFIX and method == "POST":
                doc = json.loads(body or b"{}")
                mode = doc.pop("mode", None) or self.config()["mode"]
                out = {"ok": True, "config": self.set_mode(mode, **doc)}
            elif path == CONTROL_PREFIX and method == "GET":
                out = self.stats()
                out["config"] = self.config()
            elif path == CONTROL_PREFIX + "/requests" and method == "GET":
                out = []
                for r in self.records():
                    r["body"] = r["body"].decode("utf-8", "replace")
                    out.append(r)
            elif path == CONTROL_PREFIX + "/reset" and method == "POST":
                self.reset()
                out = {"ok": True}
            elif path == CONTROL_PREFIX + "/release" and method == "POST":
                self.release_event.set()
                out = {"ok": True}
            else:
                status, out = 404, {"error": "no control route %s %s" %
                                    (method, path)}
        except (ValueError, TypeError) as e:
            status, out = 400, {"error": str(e)}
        payload = json.dumps(out, separators=(",", ":")).encode()
        conn.send(_response_bytes(status,
                                  [("Content-Type", "application/json")],
                                  payload, keep_alive=not want_close))

    def _record(self, method, target, headers, lower, body):
        rec = {"method": method, "path": target,
               "idempotency_key": lower.get("idempotency-key"),
               "traceparent": lower.get("traceparent"),
               "tracestate": lower.get("tracestate"),
               "headers": dict(lower), "body": body, "fault": None,
               "forwarded": False, "upstream_status": None,
               "replayed": False, "client_status": None,
               "t_start": time.monotonic(), "t_end": None}
        with self.cond:
            rec["index"] = self._stats["requests"]
            self._stats["requests"] += 1
            self._records.append(rec)
            self.cond.notify_all()
        return rec

    def _count(self, rec, fault=None, **kw):
        with self.lock:
            if fault is not None:
                rec["fault"] = fault
                self._stats["faults"] += 1
                self._stats["by_fault"][fault] = \
                    self._stats["by_fault"].get(fault, 0) + 1
            for k, v in kw.items():
                self._stats[k] = self._stats.get(k, 0) + v

    def _finish(self, rec, client_status):
        with self.lock:
            rec["client_status"] = client_status
            rec["t_end"] = time.monotonic()

    def _forward(self, conn, rec, method, target, headers, body):
        """Send the request upstream on this connection's keep-alive
        upstream connection.  Returns (status, headers, body) or None."""
        out_headers = [(k, v) for k, v in headers
                       if k.lower() not in HOP_BY_HOP]
        out_headers.append(("Host", "%s:%d" % (self.upstream_host,
                                               self.upstream_port)))
        if body or method in ("POST", "PUT", "PATCH"):
            out_headers.append(("Content-Length", str(len(body))))
        try:
            if conn.upstream is None:
                conn.upstream = http.client.HTTPConnection(
                    self.upstream_host, self.upstream_port, timeout=60)
            u = conn.upstream
            u.putrequest(method, self.upstream_prefix + target,
                         skip_host=True, skip_accept_encoding=True)
            for k, v in out_headers:
                u.putheader(k, v)
            u.endheaders(body if body else None)
            with self.lock:
                rec["forwarded"] = True
                self._stats["forwarded"] += 1
            r = u.getresponse()
            payload = r.read()
            rh = [(k, v) for k, v in r.getheaders()
                  if k.lower() not in HOP_BY_HOP]
            if r.will_close:
                u.close()
                conn.upstream = None
        except (OSError, http.client.HTTPException):
            if conn.upstream is not None:
                conn.upstream.close()
                conn.upstream = None
            self._count(rec, upstream_errors=1)
            return None
        with self.lock:
            rec["upstream_status"] = r.status
            rec["replayed"] = (r.getheader("Idempotent-Replayed", "")
                               .lower() == "true")
        return r.status, rh, payload

    def _proxy(self, conn, method, target, headers, lower, body, want_close):
        """Serve one request.  Returns False when the connection is done."""
        rec = self._record(method, target, headers, lower, body)
        fault, cfg = self._choose()
        keep = not want_close

        if fault is None and cfg["mode"] == "refuse":
            # a request on a connection accepted just before the switch
            self._count(rec, "refuse")
            self._finish(rec, None)
            conn.close(rst=True)
            return False
        if fault == "close":
            self._count(rec, "close")
            self._finish(rec, None)
            return False  # _serve closes the socket
        if fault == "hang":
            self._count(rec, "hang")
            while not self.stopping.is_set():
                if self.release_event.wait(0.02):
                    break
                if conn.peer_closed():
                    self._finish(rec, None)
                    return False
            if self.stopping.is_set():
                self._finish(rec, None)
                return False
            fault = None  # released: forward it
        if fault == "slow":
            self._count(rec, "slow")
            end = time.monotonic() + float(cfg.get("delay_ms", 1000)) / 1000
            while time.monotonic() < end and not self.stopping.is_set():
                if conn.peer_closed():
                    # the caller gave up: do not apply it behind its back
                    self._count(rec, abandoned=1)
                    self._finish(rec, None)
                    return False
                time.sleep(min(0.005, max(0.0, end - time.monotonic())))
            if self.stopping.is_set() or conn.peer_closed():
                self._count(rec, abandoned=1)
                self._finish(rec, None)
                return False
            fault = None
        if fault == "fail_before":
            self._count(rec, "fail_before")
            status = int(cfg.get("status", 503))
            conn.send(self._fail_reply(cfg, status, "before forwarding",
                                       keep))
            self._finish(rec, status)
            return keep
        if fault == "invalid_json" and not cfg.get("forward"):
            self._count(rec, "invalid_json")
            conn.send(_response_bytes(
                200, [("Content-Type", "application/json")], INVALID_JSON,
                keep))
            self._finish(rec, 200)
            return keep

        up = self._forward(conn, rec, method, target, headers, body)
        if up is None:
            conn.send(_response_bytes(
                502, [("Content-Type", "application/json")],
                b'{"error":"faultproxy: upstream unreachable"}', keep))
            self._finish(rec, 502)
            return keep
        status, rh, payload = up

        if fault == "fail_after":
            self._count(rec, "fail_after")
            status = int(cfg.get("status", 502))
            conn.send(self._fail_reply(cfg, status, "after forwarding",
                                       keep))
            self._finish(rec, status)
            return keep
        if fault == "invalid_json":
            self._count(rec, "invalid_json")
            conn.send(_response_bytes(
                200, [("Content-Type", "application/json")], INVALID_JSON,
                keep))
            self._finish(rec, 200)
            return keep
        if fault == "reset":
            self._count(rec, "reset")
            data = _response_bytes(status, rh, payload, keep)
            head_len = data.index(b"\r\n\r\n") + 4
            cut = head_len + max(1, len(payload) // 2)
            conn.send(data[:cut])
            time.sleep(0.01)  # let the caller read the partial answer
            self._finish(rec, None)
            conn.close(rst=True)
            return False
        conn.send(_response_bytes(status, rh, payload, keep))
        self._finish(rec, status)
        return keep

    @staticmethod
    def _fail_reply(cfg, status, when, keep):
        hdrs = [("Content-Type", "application/json")]
        if cfg.get("retry_after") is not None:
            hdrs.append(("Retry-After", str(cfg["retry_after"])))
        body = cfg.get("body")
        if body is None:
            body = json.dumps({"error": "faultproxy: injected %d %s" %
                               (status, when)})
        if isinstance(body, str):
            body = body.encode()
        return _response_bytes(status, hdrs, body, keep)


# ---------------------------------------------------------------------------
# Control client (another process, or a test that only has the URL)
# ---------------------------------------------------------------------------
def control(control_url, method, path="", doc=None, timeout=5):
    u = urllib.parse.urlsplit(control_url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        body = json.dumps(doc).encode() if doc is not None else None
        c.request(method, CONTROL_PREFIX + path, body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--upstream", required=True, help="http://host:port")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--mode", default="pass", choices=MODES)
    ap.add_argument("--params", default="{}",
                    help='JSON mode parameters, e.g. \'{"fraction":0.3}\'')
    args = ap.parse_args(argv)
    p = FaultProxy(args.upstream, args.port, args.control_port).start()
    p.set_mode(args.mode, **json.loads(args.params))
    print("faultproxy: listening on %s -> http://%s:%d, control %s" %
          (p.url, p.upstream_host, p.upstream_port, p.control_url))
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
