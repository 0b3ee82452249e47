#!/usr/bin/env python3
"""
rrproxy.py - a round-robin HTTP/1.1 reverse proxy over several upstreams,
standing in for a Kubernetes Service in front of a function's replicas
(Python 3 standard library only; one thread per client connection).

    client -> RRProxy -> replica 1 | replica 2 | replica 3

  - Keep-alive to clients; each client connection keeps at most one
    connection to each upstream (so the pool is bounded by the clients).
  - Request n goes to upstream n mod k.  An upstream that refuses the
    connection (a killed replica) is skipped and the next one tried, so a
    dead replica costs no failed request while a live one can take it.
  - A kept-alive upstream connection the upstream has closed meanwhile
    (the replica died or restarted) is noticed before it is used and
    replaced by a fresh one.
  - A request already sent to an upstream that then fails (died
    mid-request, reset, timeout) is NOT sent elsewhere: the caller gets
    502 {"error": ...} and retries if it may (only it knows whether the
    request can apply twice).  No upstream accepting the connection: 502.

Control, on the proxy port and always on control_port:
  POST /__rr          {"upstreams": [port | "host:port" | "http://h:p"]}
  GET  /__rr          stats: requests, forwarded, by_upstream, refused
                      (connects refused and skipped), bad_gateway (sent,
                      then failed), no_upstream, connections, upstreams
  POST /__rr/reset    clear the stats

Stand-alone:  python3 rrproxy.py --upstream 127.0.0.1:8081 \
                  --upstream 127.0.0.1:8082 [--port 0] [--control-port 0]
"""
import argparse
import http.client
import json
import select
import socket
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # run as a script: no __pycache__ here

from faultproxy import (HOP_BY_HOP, _Closed, _Conn,  # noqa: E402
                        _response_bytes)

CONTROL_PREFIX = "/__rr"


def parse_upstream(u):
    """(host, port) from a port number, "host:port" or "http://host:port"."""
    if isinstance(u, int):
        return ("127.0.0.1", u)
    if isinstance(u, (tuple, list)) and len(u) == 2:
        return (str(u[0]), int(u[1]))
    if isinstance(u, str):
        s = u.strip()
        if s.isdigit():
            return ("127.0.0.1", int(s))
        if "://" not in s:
            s = "http://" + s
        p = urllib.parse.urlsplit(s)
        if p.scheme == "http" and p.hostname and p.port:
            return (p.hostname, p.port)
    raise ValueError("bad upstream %r (a port, host:port or "
                     "http://host:port)" % (u,))


def _name(hp):
    return "%s:%d" % hp


class _Client(_Conn):
    """A client connection and its connections to the upstreams."""

    def __init__(self, sock, addr, control_only):
        super().__init__(sock, addr, control_only)
        self.ups = {}  # (host, port) -> http.client.HTTPConnection

    def read_request(self):
        """As _Conn's, answering "Expect: 100-continue" first (libcurl
        sends it for larger bodies and would wait a second for it)."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 64 * 1024:
                raise _Closed()
            self._fill()
        head = self.buf.split(b"\r\n\r\n", 1)[0].lower()
        if b"\r\nexpect: 100-continue" in head:
            self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        return super().read_request()

    def drop(self, hp):
        u = self.ups.pop(hp, None)
        if u is not None:
            try:
                u.close()
            except OSError:
                pass

    def close(self, rst=False):
        for hp in list(self.ups):
            self.drop(hp)
        super().close(rst)


def _stale(u):
    """True when a kept-alive upstream connection cannot be used: the
    upstream closed it (EOF or reset) or sent something unasked."""
    if u.sock is None:
        return True
    try:
        r, _, _ = select.select([u.sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(r)


class RRProxy:
    """Round-robin reverse proxy; see the module doc."""

    def __init__(self, upstreams=(), port=0, control_port=0,
                 host="127.0.0.1", connect_timeout=2.0, timeout=60.0,
                 max_clients=1024):
        self.host = host
        self.port = port
        self.control_port = control_port
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_clients = max_clients
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._listener = None
        self._control_listener = None
        self._threads = []
        self._conns = set()
        self._upstreams = [parse_upstream(u) for u in upstreams]
        self._next = 0
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
        with self.lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        return t

    def stop(self):
        """Stop listening, drop every connection, wait briefly for the
        threads (idempotent)."""
        self.stopping.set()
        with self.lock:
            listeners = [self._listener, self._control_listener]
            self._listener = self._control_listener = None
            conns = list(self._conns)
            threads = list(self._threads)
        for s in listeners:
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for c in conns:
            c.close()
        deadline = time.monotonic() + 2
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def release(self):
        """FakeService-compatible no-op for the harness cleanup."""

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    @property
    def control_url(self):
        return "http://%s:%d" % (self.host, self.control_port)

    # -- configuration and stats -------------------------------------------
    def set_upstreams(self, upstreams):
        ups = [parse_upstream(u) for u in upstreams]
        with self.lock:
            self._upstreams = ups
        return [_name(hp) for hp in ups]

    def upstreams(self):
        with self.lock:
            return [_name(hp) for hp in self._upstreams]

    def _reset_stats(self):
        self._stats = {"requests": 0, "forwarded": 0, "refused": 0,
                       "bad_gateway": 0, "no_upstream": 0,
                       "connections": 0, "by_upstream": {}}

    def reset(self):
        with self.lock:
            self._reset_stats()

    def stats(self):
        with self.lock:
            s = dict(self._stats)
            s["by_upstream"] = dict(self._stats["by_upstream"])
            s["upstreams"] = [_name(hp) for hp in self._upstreams]
            return s

    def _count(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self._stats[k] += v

    def _order(self):
        """The upstreams to try for the next request, round-robin first."""
        with self.lock:
            ups = list(self._upstreams)
            self._stats["requests"] += 1
            if not ups:
                return []
            i = self._next % len(ups)
            self._next += 1
        return ups[i:] + ups[:i]

    # -- serving -----------------------------------------------------------
    def _accept_loop(self, listener, control_only):
        while not self.stopping.is_set():
            try:
                sock, addr = listener.accept()
            except OSError:
                return  # closed by stop()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Client(sock, addr, control_only)
            with self.lock:
                if self.stopping.is_set():
                    conn.close()
                    return
                if len(self._conns) >= self.max_clients:
                    conn.close(rst=True)  # bounded: shed the excess
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
                        b'{"error":"control port: only /__rr"}'))
                else:
                    self._proxy(conn, method, target, headers, body,
                                want_close)
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
                if "upstreams" in doc:
                    self.set_upstreams(doc["upstreams"])
                out = {"ok": True, "upstreams": self.upstreams()}
            elif path == CONTROL_PREFIX and method == "GET":
                out = self.stats()
            elif path == CONTROL_PREFIX + "/reset" and method == "POST":
                self.reset()
                out = {"ok": True}
            else:
                status, out = 404, {"error": "no control route %s %s" %
                                    (method, path)}
        except (ValueError, TypeError) as e:
            status, out = 400, {"error": str(e)}
        conn.send(_response_bytes(
            status, [("Content-Type", "application/json")],
            json.dumps(out, separators=(",", ":")).encode(),
            keep_alive=not want_close))

    def _connect(self, conn, hp):
        """A usable connection to upstream hp: the kept-alive one, or a new
        one.  None when the upstream refuses (or cannot be reached): the
        request was not sent, the next upstream may take it."""
        u = conn.ups.get(hp)
        if u is not None and _stale(u):
            conn.drop(hp)
            u = None
        if u is not None:
            return u
        try:
            sock = socket.create_connection(hp, timeout=self.connect_timeout)
        except OSError:
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        u = http.client.HTTPConnection(hp[0], hp[1], timeout=self.timeout)
        u.sock = sock
        conn.ups[hp] = u
        return u

    def _proxy(self, conn, method, target, headers, body, want_close):
        keep = not want_close
        order = self._order()
        # the body is already read: no 100-continue handshake upstream
        out_headers = [(k, v) for k, v in headers
                       if k.lower() not in HOP_BY_HOP and
                       k.lower() != "expect"]
        for hp in order:
            u = self._connect(conn, hp)
            if u is None:
                self._count(refused=1)
                continue
            try:
                u.putrequest(method, target, skip_host=True,
                             skip_accept_encoding=True)
                for k, v in out_headers:
                    u.putheader(k, v)
                u.putheader("Host", _name(hp))
                if body or method in ("POST", "PUT", "PATCH"):
                    u.putheader("Content-Length", str(len(body)))
                u.endheaders(body if body else None)
                with self.lock:
                    self._stats["forwarded"] += 1
                    by = self._stats["by_upstream"]
                    by[_name(hp)] = by.get(_name(hp), 0) + 1
                r = u.getresponse()
                payload = r.read()
            except (OSError, http.client.HTTPException) as e:
                conn.drop(hp)
                self._count(bad_gateway=1)
                self._reply_error(conn, "upstream %s failed mid-request: %s"
                                  % (_name(hp), e.__class__.__name__), keep)
                return
            rh = [(k, v) for k, v in r.getheaders()
                  if k.lower() not in HOP_BY_HOP]
            if r.will_close:
                conn.drop(hp)
            data = _response_bytes(r.status, rh, payload, keep)
            if method == "HEAD":
                cl = r.getheader("Content-Length")
                if cl is not None:
                    data = data.replace(b"Content-Length: 0\r\n",
                                        b"Content-Length: %s\r\n" %
                                        cl.encode(), 1)
            conn.send(data)
            return
        self._count(no_upstream=1)
        self._reply_error(conn, "no upstream accepted the connection (%s)" %
                          ", ".join(_name(hp) for hp in order), keep)

    @staticmethod
    def _reply_error(conn, msg, keep):
        conn.send(_response_bytes(
            502, [("Content-Type", "application/json")],
            json.dumps({"error": "rrproxy: " + msg}).encode(), keep))


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
    ap.add_argument("--upstream", action="append", default=[],
                    help="host:port (repeatable)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    args = ap.parse_args(argv)
    p = RRProxy(args.upstream, args.port, args.control_port).start()
    print("rrproxy: listening on %s -> %s, control %s" %
          (p.url, ", ".join(p.upstreams()) or "(none)", p.control_url))
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
