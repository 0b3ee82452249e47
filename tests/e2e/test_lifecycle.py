"""Process lifecycle: bad configuration, a busy port, and SIGTERM/SIGINT with
idle, keep-alive and in-flight requests."""
import http.client
import json
import signal
import socket
import threading
import time

from harness import (E2ETestCase, T, connect_refused, free_port, poll,
                     request)


def background(fn):
    """Run fn() in a thread; returns (thread, box) where box gets 'value' or
    'error'."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # reported by the test
            box["error"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, box


class LifecycleTest(E2ETestCase):

    def assertExitsNonZero(self, p, what):
        rc = p.wait(T(3))
        self.assertIsNotNone(rc, "%s: still running after %.1fs" % (what, T(3)))
        self.assertNotEqual(rc, 0, "%s: exit code 0" % what)
        return p.stderr_text()

    def test_invalid_port_exits_nonzero(self):
        for value in ("abc", "70000", "0", "-1", "80x", "99999999999999999999"):
            with self.subTest(PORT=value):
                p = self.spawn("audit-logger", {"PORT": value},
                               port=free_port(), wait=False)
                err = self.assertExitsNonZero(p, "PORT=%s" % value)
                self.assertIn("PORT", err, "stderr does not name PORT")

    def test_invalid_runtime_setting_exits_nonzero(self):
        for var, value in (("ZC_MAX_BODY_BYTES", "lots"),
                           ("ZC_HANDLER_TIMEOUT_MS", "-5")):
            with self.subTest(var=var):
                p = self.spawn("balance-manager", {var: value}, wait=False)
                err = self.assertExitsNonZero(p, "%s=%s" % (var, value))
                self.assertIn(var, err)

    def test_port_in_use_exits_nonzero(self):
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            blocker.bind(("0.0.0.0", 0))
            blocker.listen(1)
            port = blocker.getsockname()[1]
            p = self.spawn("audit-logger", port=port, wait=False)
            err = self.assertExitsNonZero(p, "port %d in use" % port)
            self.assertTrue(err.strip(), "no message on stderr")
        finally:
            blocker.close()

    def test_sigterm_idle_exits_zero_promptly(self):
        for name in ("audit-logger", "balance-manager", "transaction-processor"):
            with self.subTest(function=name):
                p = self.spawn(name)
                t0 = time.monotonic()
                p.signal(signal.SIGTERM)
                rc = p.wait(T(3))
                took = time.monotonic() - t0
                self.assertEqual(rc, 0, "exit code after SIGTERM")
                self.assertLess(took, T(1.0), "idle SIGTERM took %.2fs" % took)

    def test_sigint_idle_exits_zero(self):
        p = self.spawn("audit-logger")
        p.signal(signal.SIGINT)
        self.assertEqual(p.wait(T(3)), 0)

    def test_sigterm_with_idle_keepalive_connection(self):
        p = self.spawn("audit-logger")
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=T(5))
        try:
            r = request(p.port, "POST", "/log", {"action": "ka", "details": 1},
                        conn=conn)
            self.assertEqual(r.status, 200)
            t0 = time.monotonic()
            p.signal(signal.SIGTERM)
            rc = p.wait(T(3))
            took = time.monotonic() - t0
        finally:
            conn.close()
        self.assertEqual(rc, 0)
        self.assertLess(took, T(1.0),
                        "an idle keep-alive connection held shutdown %.2fs"
                        % took)

    def test_sigterm_drains_inflight_update(self):
        """balance-manager -> slow audit-logger (1.5 s); SIGTERM while the
        /update is in flight."""
        fake = self.fake(delay=1.5)
        bm = self.spawn("balance-manager", {"AUDIT_LOGGER_URL": fake.url})
        th, box = background(lambda: request(
            bm.port, "POST", "/update", {"account": "ACC-TERM", "amount": 2.5},
            timeout=T(15)))
        self.assertTrue(fake.wait_requests(1, T(5)),
                        "balance-manager never called the fake audit-logger")
        t0 = time.monotonic()
        bm.signal(signal.SIGTERM)
        refused = poll(lambda: connect_refused(bm.port), T(1.0))
        refused_after = time.monotonic() - t0
        th.join(T(15))
        self.assertNotIn("error", box, "in-flight request failed: %r"
                         % box.get("error"))
        self.assertIn("value", box, "in-flight request did not finish")
        r = box["value"]
        self.assertEqual(r.status, 200, r)
        doc = json.loads(r.text)
        self.assertEqual(doc["status"], "updated")
        self.assertEqual(doc["account"], "ACC-TERM")
        self.assertIn('"new_balance":2.5,', r.text)
        rc = bm.wait(T(5))
        self.assertEqual(rc, 0, "exit code after draining")
        self.assertTrue(refused, "new connections still accepted %.2fs after "
                        "SIGTERM" % refused_after)

    def test_sigterm_drains_inflight_transaction(self):
        """transaction-processor -> slow balance-manager (1.5 s)."""
        def responder(method, path, body):
            return (200, {"Content-Type": "application/json"},
                    b'{"status":"updated","new_balance":5,"account":"ACC-T2"}')
        fake = self.fake(delay=1.5, responder=responder)
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        th, box = background(lambda: request(
            tp.port, "POST", "/transaction",
            {"account": "ACC-T2", "amount": 5}, timeout=T(15)))
        self.assertTrue(fake.wait_requests(1, T(5)))
        t_sig = time.monotonic()
        tp.signal(signal.SIGTERM)
        refused = poll(lambda: connect_refused(tp.port), T(1.0))
        still_running = tp.alive()
        th.join(T(15))
        self.assertNotIn("error", box, "in-flight request failed: %r"
                         % box.get("error"))
        r = box["value"]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.text)["status"], "success")
        self.assertIn('"balance":5,', r.text)
        rc = tp.wait(T(5))
        self.assertEqual(rc, 0)
        self.assertTrue(refused, "listener still open after SIGTERM")
        self.assertTrue(still_running, "exited before the in-flight request "
                        "finished")
        self.assertLess(time.monotonic() - t_sig, T(1.5) + T(3))

    def test_drain_deadline_bounds_shutdown(self):
        """With ZC_DRAIN_TIMEOUT_MS=300 a request stuck for 5 s does not hold
        the process: it exits within about the deadline."""
        fake = self.fake(delay=5)
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url,
                         "ZC_DRAIN_TIMEOUT_MS": 300})
        th, box = background(lambda: request(
            tp.port, "POST", "/transaction",
            {"account": "ACC-DD", "amount": 1}, timeout=T(15)))
        self.assertTrue(fake.wait_requests(1, T(5)))
        t0 = time.monotonic()
        tp.signal(signal.SIGTERM)
        rc = tp.wait(T(3))
        took = time.monotonic() - t0
        self.assertIsNotNone(rc, "still running %.1fs after SIGTERM with a "
                             "300 ms drain deadline" % T(3))
        self.assertLess(took, T(1.5))
        fake.release()
        th.join(T(5))
