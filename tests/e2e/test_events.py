"""CloudEvents end to end: the event-driven chain (transaction-processor ->
balance-manager -> audit-logger, each K_SINK pointing at the next) with a
redelivered event; the emitter's request checked byte for byte at a local
receiver; and a conformance-style check written from the Functions
Framework conformance suite's documented behaviour (a binary-mode event
written out by the function and compared; 10 concurrent one-second
invocations in under two seconds)."""
import json
import os
import re
import subprocess
import threading
import time

import ce_helpers
from ce_helpers import (RawReceiver, binary_event, build_c, header,
                        poll_file, structured_event)
from harness import E2ETestCase, T, free_port, poll, request

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = "00-%s-00f067aa0ba902b7-01" % TRACE_ID
UUID_RE = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                     rb"-[0-9a-f]{12}$")
TIME_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")

# The project's own fixture, in the shape of the conformance suite's
# firebase-auth input (values are ours).
CONF_EVENT = {
    "id": "5e9e2e2b-7c2c-4f0e-9a51-0c1d2e3f4a5b",
    "source": "//auth.example.com/projects/zenith-demo",
    "type": "com.example.auth.user.v1.created",
    "subject": "users/ZqJ1xg7Y0LQ2mDk5t",
    "time": "2026-03-04T05:06:07.890Z",
}
CONF_DATA = {"email": "ada@example.com", "displayName": "Ada",
             "metadata": {"createTime": "2026-03-04T05:06:07.890Z"},
             "providerData": [{"providerId": "password", "uid": "ada"}],
             "uid": "ZqJ1xg7Y0LQ2mDk5t"}


def audit_lines(proc, needle=""):
    return [line for line in proc.stderr_text().splitlines()
            if "[AUDIT] " in line and needle in line]


class EventsTest(E2ETestCase):

    # -- fixtures ----------------------------------------------------------
    def receiver(self, statuses=()):
        r = RawReceiver(statuses).start()
        self.fakes.append(r)  # cleanup: release() then stop()
        return r

    def ce_function(self, env=None):
        path = build_c(self, "ce-function",
                       [os.path.join(ce_helpers.HERE, "ce_function.c")])
        out = os.path.join(self.logdir, "function_output.json")
        e = {"OUTPUT_FILE": out}
        e.update(env or {})
        return self.spawn(path, e, tag="ce-function"), out

    def event_chain(self):
        audit = self.spawn("audit-logger", {"EVENT_MODE": 1})
        bal = self.spawn("balance-manager",
                         {"EVENT_MODE": 1, "K_SINK": audit.url + "/"})
        # event mode switched on by K_SINK alone
        txn = self.spawn("transaction-processor",
                         {"K_SINK": bal.url + "/"})
        return audit, bal, txn

    def balance(self, bal, account):
        r = request(bal.port, "POST", "/update",
                    {"account": account, "amount": 0})
        self.assertStatus(r, 200)
        return r.json()["new_balance"]

    # -- the chain ---------------------------------------------------------
    def test_event_chain_with_redelivery(self):
        audit, bal, txn = self.event_chain()
        r = request(txn.port, "POST", "/transaction",
                    '{"account":"ACC-EV-1","amount":100.50}',
                    headers={"traceparent": TRACEPARENT})
        self.assertStatus(r, 202)
        doc = self.assertCompactJson(r, ["status", "transaction_id"])
        self.assertEqual(doc["status"], "accepted")
        tx = doc["transaction_id"]
        lines = poll(lambda: audit_lines(audit, tx), T(3))
        self.assertEqual(len(lines), 1, audit.tail())
        self.assertIn('Details: {"account":"ACC-EV-1","amount":100.5,'
                      '"new_balance":100.5,"transaction_id":"%s"}' % tx,
                      lines[0])
        # one trace through the three functions
        self.assertIn("trace_id=%s" % TRACE_ID, lines[0])
        self.assertEqual(str(self.balance(bal, "ACC-EV-1")), "100.5")

        # The broker redelivers the same event (same source + id), in
        # binary and then structured mode: nothing changes.
        data = json.dumps({"account": "ACC-EV-1", "amount": 100.5,
                           "transaction_id": tx}).encode()
        ce = {"specversion": "1.0", "id": tx,
              "source": "transaction-processor",
              "type": "com.example.transaction.created"}
        r = binary_event(bal.port, "/", ce, data)
        self.assertStatus(r, 202)
        r = structured_event(bal.port, "/", dict(ce, data=json.loads(data),
                                                 datacontenttype=
                                                 "application/json"))
        self.assertStatus(r, 202)
        self.assertIn("already processed", bal.stderr_text())
        self.assertEqual(str(self.balance(bal, "ACC-EV-1")), "100.5")
        # the balance event goes out after the commit: wait for its line
        self.assertEqual(len(poll(lambda: audit_lines(audit, tx), T(3))), 1)

        # the same id from another source is another event
        r = binary_event(bal.port, "/", dict(ce, source="/elsewhere"), data)
        self.assertStatus(r, 202)
        self.assertEqual(str(self.balance(bal, "ACC-EV-1")), "201")
        # a second transaction moves the balance once more
        r = request(txn.port, "POST", "/transaction",
                    '{"account":"ACC-EV-1","amount":-1}')
        self.assertStatus(r, 202)
        self.assertEqual(str(self.balance(bal, "ACC-EV-1")), "200")
        # each balance event goes out after its commit: wait for all three
        poll(lambda: len(audit_lines(audit, "ACC-EV-1")) >= 3, T(3))
        self.assertEqual(len(audit_lines(audit, "ACC-EV-1")), 3)

    def test_event_mode_refuses_bad_events_and_keeps_http(self):
        audit, bal, txn = self.event_chain()
        # a malformed event: 400 naming the attribute (not retried)
        r = binary_event(bal.port, "/", {"specversion": "1.0", "id": "x",
                                         "type": "com.example.transaction."
                                                 "created"}, b"{}")
        doc = self.assertJsonError(r, 400)
        self.assertEqual(doc["attribute"], "source")
        # bad data: 400 naming the field
        r = binary_event(bal.port, "/", {"specversion": "1.0", "id": "y",
                                         "source": "s",
                                         "type": "com.example.transaction."
                                                 "created"},
                         b'{"account":"A","amount":0.001}')
        self.assertJsonError(r, 400)
        # a non-JSON event format: 415
        r = request(bal.port, "POST", "/", b"<event/>",
                    headers={"Content-Type":
                             "application/cloudevents+xml"})
        self.assertJsonError(r, 415)
        # the data plane's OPTIONS probe lists POST
        r = request(audit.port, "OPTIONS", "/")
        self.assertIn("POST", r.header("Allow") or "")
        # transaction-processor validates before publishing
        r = request(txn.port, "POST", "/transaction",
                    '{"account":"","amount":1}')
        self.assertJsonError(r, 400)
        self.assertEqual(audit_lines(audit), [])
        # the HTTP routes still answer as before
        r = request(audit.port, "POST", "/log",
                    {"action": "a", "details": {}})
        self.assertStatus(r, 200)
        r = request(bal.port, "POST", "/update",
                    {"account": "H", "amount": 1})
        self.assertStatus(r, 200)

    def test_event_mode_configuration_errors(self):
        for name, env in (("transaction-processor", {"EVENT_MODE": 1,
                                                     "K_SINK": None}),
                          ("balance-manager", {"EVENT_MODE": "maybe"})):
            with self.subTest(function=name):
                p = self.spawn(name, env, wait=False)
                self.assertEqual(p.wait(T(5)), 1, p.tail())

    # -- the emitter -------------------------------------------------------
    def test_emitter_request_byte_for_byte(self):
        rx = self.receiver()
        txn = self.spawn("transaction-processor", {
            "K_SINK": rx.url + "/sink",
            "K_CE_OVERRIDES": '{"extensions":{"extra":"this is an extra '
                              'attribute","additional":42,'
                              '"type":"not.mine"}}'})
        r = request(txn.port, "POST", "/transaction",
                    '{"account":"ACC 001 \u00fc","amount":100.50}'.encode(),
                    headers={"traceparent": TRACEPARENT,
                             "tracestate": "zc=1"})
        self.assertStatus(r, 202)
        tx = r.json()["transaction_id"].encode()
        self.assertTrue(rx.wait(1, T(2)))
        req = rx.requests[0]
        self.assertEqual(req["lines"][0], b"POST /sink HTTP/1.1")
        expected = [
            b"ce-specversion: 1.0",
            b"ce-id: " + tx,
            b"ce-source: transaction-processor",
            b"ce-type: com.example.transaction.created",
            b"ce-subject: ACC%20001%20%C3%BC",
            b"ce-extra: this%20is%20an%20extra%20attribute",
            b"ce-additional: 42",
            b"ce-traceparent: " + TRACEPARENT.encode(),
            b"ce-tracestate: zc=1",
            b"Content-Type: application/json",
        ]
        for line in expected:
            self.assertIn(line, req["lines"], req["head"])
        ce_lines = [l for l in req["lines"] if l.lower().startswith(b"ce-")]
        # the four required first, in order; nothing else but ce-time
        self.assertEqual(ce_lines[:4], expected[:4])
        self.assertEqual(sorted(ce_lines),
                         sorted(expected[:9] +
                                [b"ce-time: " + header(req, "ce-time")]))
        self.assertRegex(header(req, "ce-time"), TIME_RE)
        self.assertIsNone(header(req, "ce-datacontenttype"))
        # the HTTP traceparent: same trace, this call's own parent-id
        tp = header(req, "traceparent")
        self.assertTrue(tp.startswith(b"00-" + TRACE_ID.encode() + b"-"))
        self.assertNotEqual(tp, TRACEPARENT.encode())
        self.assertEqual(req["body"],
                         b'{"account":"ACC 001 \xc3\xbc","amount":100.5,'
                         b'"transaction_id":"' + tx + b'"}')

    def test_emitter_retries_then_reports(self):
        # 503 then 202: delivered on the retry, with the same event
        rx = self.receiver([503])
        txn = self.spawn("transaction-processor",
                         {"K_SINK": rx.url, "ZC_CLIENT_BACKOFF_MS": 5})
        r = request(txn.port, "POST", "/transaction",
                    '{"account":"A","amount":1}')
        self.assertStatus(r, 202)
        self.assertEqual(len(rx.requests), 2)
        self.assertEqual(rx.requests[0]["head"], rx.requests[1]["head"])
        self.assertEqual(rx.requests[0]["body"], rx.requests[1]["body"])
        # 400: not retried; the client is told the sink refused it
        rx2 = self.receiver([400])
        txn2 = self.spawn("transaction-processor", {"K_SINK": rx2.url})
        r = request(txn2.port, "POST", "/transaction",
                    '{"account":"A","amount":1}')
        self.assertJsonError(r, 502)
        self.assertEqual(len(rx2.requests), 1)
        # nobody listening: 503/502 after the retries, never a hang
        txn3 = self.spawn("transaction-processor",
                          {"K_SINK": "http://127.0.0.1:%d/" % free_port(),
                           "ZC_CLIENT_BACKOFF_MS": 5})
        r = request(txn3.port, "POST", "/transaction",
                    '{"account":"A","amount":1}')
        self.assertJsonError(r, (502, 503, 504))

    # -- conformance-style checks ----------------------------------------
    def test_conformance_binary_event_written_out(self):
        fn, out = self.ce_function()
        headers = {"ce-%s" % k: v for k, v in CONF_EVENT.items()}
        headers["ce-specversion"] = "1.0"
        r = request(fn.port, "POST", "/", json.dumps(CONF_DATA).encode(),
                    headers=dict(headers, **{
                        "Content-Type": "application/json"}))
        self.assertStatus(r, (200, 201, 202, 204))
        self.assertTrue(poll_file(out, T(2)))
        with open(out) as f:
            got = json.load(f)
        for k, v in CONF_EVENT.items():
            self.assertEqual(got.get(k), v, k)
        self.assertEqual(got.get("datacontenttype"), "application/json")
        self.assertIsInstance(got.get("data"), dict)  # a JSON object
        self.assertEqual(got["data"], CONF_DATA)

    def test_extensions_and_encoding_through_the_server(self):
        fn, out = self.ce_function()
        ce = {"specversion": "1.0", "id": "enc-1", "source": "/s",
              "type": "t", "traceparent": TRACEPARENT,
              "euro": "Euro%20%E2%82%AC%20%F0%9F%98%80",
              "lower": "%e2%82%ac", "onepass": "%2541",
              "Knativeerrorcode": "500"}
        r = binary_event(fn.port, "/", ce, b"hello", "text/plain")
        self.assertStatus(r, 202)
        self.assertTrue(poll_file(out, T(2)))
        with open(out, encoding="utf-8") as f:
            got = json.load(f)
        self.assertEqual(got["traceparent"], TRACEPARENT)
        self.assertEqual(got["euro"], "Euro \u20ac \U0001F600")
        self.assertEqual(got["lower"], "\u20ac")
        self.assertEqual(got["onepass"], "%41")
        self.assertEqual(got["knativeerrorcode"], "500")
        self.assertEqual(got["data"], "hello")
        # invalid UTF-8 (an overlong space): 400 naming the attribute
        r = binary_event(fn.port, "/", dict(ce, id="enc-2",
                                            euro="%C0%A0"), b"x",
                         "text/plain")
        self.assertEqual(self.assertJsonError(r, 400)["attribute"], "euro")
        # structured and batch modes over the wire
        os.unlink(out)
        r = structured_event(fn.port, "/", {
            "specversion": "1.0", "id": "st-1", "source": "/s", "type": "t",
            "datacontenttype": "application/octet-stream",
            "data_base64": "AAEC"})
        self.assertStatus(r, 202)
        self.assertTrue(poll_file(out, T(2)))
        r = request(fn.port, "POST", "/", json.dumps([
            {"specversion": "1.0", "id": "b-%d" % i, "source": "/s",
             "type": "t", "data": {"i": i}} for i in range(3)]).encode(),
            headers={"Content-Type": "application/cloudevents-batch+json"})
        self.assertStatus(r, 202)
        with open(out) as f:
            self.assertEqual(json.load(f)["id"], "b-2")  # in order

    def test_replies_over_the_wire(self):
        fn, _ = self.ce_function()
        ce = {"specversion": "1.0", "id": "r-1", "source": "/s",
              "type": "com.example.ask", "subject": "caf%C3%A9"}
        # a replying route answers with its event unasked
        r = binary_event(fn.port, "/reply", ce, b'{"q":1}')
        self.assertStatus(r, 200)
        self.assertEqual(r.header("ce-type"), "com.example.echo")
        self.assertEqual(r.header("ce-specversion"), "1.0")
        self.assertEqual(r.header("ce-subject"), "re:%20caf%C3%A9")
        self.assertEqual(r.header("ce-seenid"), "r-1")
        self.assertEqual(r.header("ce-source"), "ce-function")
        self.assertRegex(r.header("ce-id").encode(), UUID_RE)
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.body, b'{"q":1}')
        # an ordinary route: only with Prefer: reply
        r = binary_event(fn.port, "/maybe", ce, b'{"q":1}')
        self.assertStatus(r, 202)
        self.assertEqual(r.body, b"")
        self.assertIsNone(r.header("ce-type"))
        r = binary_event(fn.port, "/maybe", ce, b'{"q":1}',
                         extra={"Prefer": "reply"})
        self.assertStatus(r, 200)
        self.assertEqual(r.header("ce-type"), "com.example.echo")
        # an HTTP route lives in the same function
        r = request(fn.port, "GET", "/hello")
        self.assertStatus(r, 200)

    def test_conformance_concurrency(self):
        # A thread per connection: the epoll pool may accept a burst of
        # new connections on one thread, which then runs their 1 s
        # handlers one after the other (docs/events.md, "Concurrency").
        fn, _ = self.ce_function({"CE_SLEEP_MS": 1000,
                                  "ZC_THREAD_MODE": "connection"})
        headers = {"ce-%s" % k: v for k, v in CONF_EVENT.items()}
        headers.update({"ce-specversion": "1.0",
                        "Content-Type": "application/json"})
        body = json.dumps(CONF_DATA).encode()
        r = request(fn.port, "POST", "/", body, headers=headers)
        self.assertStatus(r, 202)
        single = r.elapsed
        self.assertGreaterEqual(single, 1.0)
        results = [None] * 10

        def one(i):
            try:
                results[i] = request(fn.port, "POST", "/", body,
                                     headers=headers, timeout=T(10))
            except Exception as e:  # noqa: BLE001 - reported below
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(10)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(T(10))
        total = time.monotonic() - t0
        for r in results:
            self.assertFalse(isinstance(r, Exception) or r is None, r)
            self.assertStatus(r, 202)
        self.assertLess(total, 2.0, "10 concurrent 1 s events took %.2fs"
                        % total)
        self.assertLessEqual(total, 2 * single)

    # -- the starter template ---------------------------------------------
    def test_cloudevents_template_test_passes(self):
        tdir = os.path.join(ce_helpers.ROOT, "templates", "c", "cloudevents")

        def pkg(*args):
            try:
                return subprocess.run(["pkg-config"] + list(args),
                                      check=True, capture_output=True,
                                      text=True).stdout.split()
            except (OSError, subprocess.CalledProcessError):
                return []
        path = build_c(self, "cloudevents-template-test",
                       [os.path.join(tdir, "test_function.c"),
                        os.path.join(tdir, "function.c")],
                       extra_cflags=pkg("--cflags", "check"),
                       extra_libs=pkg("--libs", "check") or ["-lcheck"])
        r = subprocess.run([path], capture_output=True, text=True,
                           timeout=T(60), cwd=self.logdir,
                           env=dict(os.environ, CK_FORK="no"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        self.assertIn("100%: Checks: 6, Failures: 0, Errors: 0", r.stdout)
        for marker in ("ERROR: AddressSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            self.assertNotIn(marker, r.stderr)

