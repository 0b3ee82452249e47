"""Runtime behaviour shared by every function: routing errors, health
endpoints, HEAD/OPTIONS, keep-alive, the body limit and its threads."""
import http.client
import os
import socket
import time

from harness import (FUNCTIONS, E2ETestCase, T, poll, read_raw_response,
                     request, send_large)

ROUTES = {
    "audit-logger": "/log",
    "balance-manager": "/update",
    "transaction-processor": "/transaction",
}

VALID = {
    "audit-logger": b'{"action":"x","details":{"k":1}}',
    "balance-manager": b'{"account":"ACC-LIM","amount":1}',
}


def allow_methods(resp):
    value = resp.header("Allow") or ""
    return {m.strip().upper() for m in value.split(",") if m.strip()}


class RuntimeTest(E2ETestCase):

    def spawn_all(self, env=None):
        return [self.spawn(name, env) for name in FUNCTIONS]

    def test_health_endpoints(self):
        for p in self.spawn_all():
            for path in ("/health/liveness", "/health/readiness"):
                with self.subTest(function=p.name, path=path):
                    r = request(p.port, "GET", path)
                    self.assertStatus(r, 200)

    def test_unknown_path_404_json(self):
        for p in self.spawn_all():
            for method, path in (("GET", "/nope"), ("POST", "/nope"),
                                 ("GET", "/"), ("GET", "/favicon.ico"),
                                 ("POST", ROUTES[p.name] + "/extra")):
                with self.subTest(function=p.name, method=method, path=path):
                    r = request(p.port, method, path,
                                b"{}" if method == "POST" else None)
                    self.assertJsonError(r, 404)

    def test_wrong_method_405_with_allow(self):
        for p in self.spawn_all():
            route = ROUTES[p.name]
            for method in ("GET", "PUT", "DELETE"):
                with self.subTest(function=p.name, method=method):
                    r = request(p.port, method, route)
                    self.assertJsonError(r, 405)
                    self.assertIn("POST", allow_methods(r),
                                  "Allow header %r" % r.header("Allow"))

    def test_health_wrong_method_405_with_allow(self):
        a = self.spawn("audit-logger")
        for path in ("/health/liveness", "/health/readiness"):
            with self.subTest(path=path):
                r = request(a.port, "POST", path, b"{}")
                self.assertJsonError(r, 405)
                self.assertIn("GET", allow_methods(r))

    def test_options_lists_allowed_methods(self):
        a = self.spawn("audit-logger")
        r = request(a.port, "OPTIONS", "/log")
        self.assertStatus(r, (204, 200))
        self.assertIn("POST", allow_methods(r),
                      "Allow header %r" % r.header("Allow"))
        if r.status == 204:
            self.assertEqual(r.body, b"")

    def test_head_on_get_route_has_headers_no_body(self):
        a = self.spawn("audit-logger")
        get = request(a.port, "GET", "/health/liveness")
        self.assertStatus(get, 200)
        s = socket.create_connection(("127.0.0.1", a.port), timeout=T(5))
        try:
            s.sendall(b"HEAD /health/liveness HTTP/1.1\r\n"
                      b"Host: 127.0.0.1\r\n\r\n")
            head, rest = read_raw_response(s, head=True)
            self.assertEqual(head.status, 200)
            # A body after HEAD's headers would show up in front of the
            # next response on the same connection.
            s.sendall(b"GET /health/liveness HTTP/1.1\r\n"
                      b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
            nxt, _ = read_raw_response(s, rest)
        finally:
            s.close()
        self.assertEqual(nxt.status, 200,
                         "bytes after HEAD response: HEAD sent a body?")
        self.assertEqual(nxt.body, get.body)
        cl = head.header("Content-Length")
        if cl is not None:
            self.assertEqual(int(cl), len(get.body))

    def test_head_via_http_client(self):
        a = self.spawn("audit-logger")
        r = request(a.port, "HEAD", "/health/readiness")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, b"")

    def test_keep_alive_reuses_one_connection(self):
        a = self.spawn("audit-logger")
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=T(5))
        try:
            r = request(a.port, "GET", "/health/liveness", conn=conn)
            self.assertStatus(r, 200)
            local = conn.sock.getsockname()
            for i in range(6):
                if i % 2:
                    r = request(a.port, "GET", "/health/readiness", conn=conn)
                else:
                    r = request(a.port, "POST", "/log",
                                {"action": "ka", "details": i}, conn=conn)
                self.assertStatus(r, 200)
                self.assertIsNotNone(conn.sock, "server closed the connection")
                self.assertEqual(conn.sock.getsockname(), local,
                                 "request %d used a new connection" % i)
            # an error answer keeps the connection too
            r = request(a.port, "GET", "/nope", conn=conn)
            self.assertStatus(r, 404)
            r = request(a.port, "GET", "/health/liveness", conn=conn)
            self.assertStatus(r, 200)
            self.assertEqual(conn.sock.getsockname(), local)
        finally:
            conn.close()

    def test_body_over_configured_limit_413(self):
        a = self.spawn("audit-logger", {"ZC_MAX_BODY_BYTES": 1024})
        body = b'{"action":"big","details":"' + b"x" * 4096 + b'"}'
        r = send_large(a.port, "POST", "/log", body)
        self.assertJsonError(r, 413)
        # the server is fine afterwards
        self.assertStatus(request(a.port, "GET", "/health/liveness"), 200)

    def test_body_over_limit_via_http_client_413(self):
        a = self.spawn("balance-manager", {"ZC_MAX_BODY_BYTES": 1024})
        body = b'{"account":"' + b"A" * 4096 + b'","amount":1}'
        r = request(a.port, "POST", "/update", body)
        self.assertJsonError(r, 413)

    def test_chunked_body_over_limit_413(self):
        a = self.spawn("audit-logger", {"ZC_MAX_BODY_BYTES": 1024})
        body = b'{"action":"big","details":"' + b"y" * 4096 + b'"}'
        r = send_large(a.port, "POST", "/log", body, chunked=True)
        self.assertJsonError(r, 413)

    def test_body_at_limit_is_accepted(self):
        for name, valid in VALID.items():
            with self.subTest(function=name):
                p = self.spawn(name, {"ZC_MAX_BODY_BYTES": 1024})
                body = valid[:-1] + b" " * (1024 - len(valid)) + b"}"
                self.assertEqual(len(body), 1024)
                r = request(p.port, "POST", ROUTES[name], body)
                self.assertStatus(r, 200)
                r = request(p.port, "POST", ROUTES[name], body + b" ")
                self.assertJsonError(r, 413)

    def test_two_mib_body_at_default_limit_413(self):
        a = self.spawn("audit-logger")
        body = b'{"action":"huge","details":"' + b"z" * (2 << 20) + b'"}'
        r = send_large(a.port, "POST", "/log", body, timeout=T(15))
        self.assertJsonError(r, 413)
        self.assertStatus(request(a.port, "GET", "/health/readiness"), 200)

    def test_just_under_default_limit_is_accepted(self):
        a = self.spawn("audit-logger")
        pad = (1 << 20) - 64
        body = b'{"action":"near","details":"' + b"n" * pad + b'"}'
        self.assertLessEqual(len(body), 1 << 20)
        r = send_large(a.port, "POST", "/log", body, timeout=T(15))
        self.assertStatus(r, 200)


def thread_names(pid):
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except OSError:
            pass  # the thread ended
    return names


class ThreadsTest(E2ETestCase):
    """The threads a function runs, by name (top -H shows the same): an
    acceptor when there are several event loops, and fire-and-forget
    delivery threads, as many as server threads unless
    ZC_ASYNC_WORKERS says otherwise, started by the first async call."""

    def async_threads_after_update(self, env, want):
        """Thread names once want delivery threads are up (each names
        itself when it starts, a moment after pthread_create), and still
        want a little later: none more is coming."""
        audit = self.spawn("audit-logger")
        # memory: audits through the in-process queue and its delivery
        # threads (a durable store uses the outbox and its relays)
        e = {"AUDIT_LOGGER_URL": audit.url, "ZC_STORE_URL": "memory:"}
        e.update(env)
        bm = self.spawn("balance-manager", e)
        self.assertNotIn("zc-async", thread_names(bm.pid),
                         "delivery threads before any async call")
        r = request(bm.port, "POST", "/update",
                    {"account": "THR-1", "amount": 1})
        self.assertEqual(r.status, 200)
        got = []

        def started():
            got[:] = thread_names(bm.pid)
            return got.count("zc-async") >= want
        self.assertTrue(poll(started, T(3)), got)
        time.sleep(T(0.1))
        names = thread_names(bm.pid)
        self.assertEqual(names.count("zc-async"), want, names)
        return names

    def test_async_workers_default_to_server_threads(self):
        names = self.async_threads_after_update({"ZC_THREADS": "3"}, 3)
        self.assertEqual(names.count("zc-accept"), 1, names)

    def test_async_workers_setting_wins(self):
        self.async_threads_after_update(
            {"ZC_THREADS": "3", "ZC_ASYNC_WORKERS": "1"}, 1)

    def test_one_thread_no_acceptor(self):
        names = self.async_threads_after_update({"ZC_THREADS": "1"}, 1)
        self.assertEqual(names.count("zc-accept"), 0, names)
