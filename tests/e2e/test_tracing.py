"""OpenTelemetry traces end to end (issue 14): the chain run with tracing on,
exporting to a receiver (tests/otlp/receiver.js) that decodes with
OpenTelemetry's own generated protobuf code, not ours.  One trace id across
the three functions, the parent/child links between them, the HTTP and
messaging semantic conventions, the sampling rules and the flags a request
passes on, handler spans, CloudEvents and outbox spans, the console
exporter, and a collector that is down, slow or answering 503 costing the
chain nothing."""
import json
import os
import shutil
import signal
import subprocess
import time

import ce_helpers
from harness import (CONFIG, E2ETestCase, T, dead_url, free_port, poll,
                     request)
from test_observability import metric, parse_metrics, rss_kib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OTLP_DIR = os.path.join(ROOT, "tests", "otlp")
DECODER = os.path.join(OTLP_DIR, "node_modules", "@opentelemetry",
                       "otlp-transformer", "build", "src", "generated",
                       "root.js")

INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
UNSET, OK, ERROR = 0, 1, 2
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"

_DEPS = {}


def otlp_deps(test):
    """node and the pinned decoder (tests/otlp/package-lock.json): `make
    test-e2e` installs them; a run of this file alone installs them once."""
    if "ok" in _DEPS:
        return
    if shutil.which("node") is None:
        test.fail("node is not installed: `make deps` installs nodejs")
    if not os.path.exists(DECODER):
        r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit",
                            "--no-fund"], cwd=OTLP_DIR, capture_output=True,
                           text=True)
        if r.returncode != 0 or not os.path.exists(DECODER):
            test.fail("npm ci in tests/otlp failed:\n%s" % r.stderr[-2000:])
    _DEPS["ok"] = True


class Receiver:
    """tests/otlp/receiver.js as a process of the test, stopped by PID."""

    def __init__(self, logdir, mode="ok", delay_ms=0):
        self.out = os.path.join(logdir, "spans.%d.jsonl" % free_port())
        self.err_path = self.out + ".stderr"
        self.args = ["--out", self.out, "--mode", mode,
                     "--delay-ms", str(delay_ms)]
        self.popen = None
        self.port = None

    def start(self):
        with open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                ["node", os.path.join(OTLP_DIR, "receiver.js")] + self.args,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, close_fds=True)
        line = self.popen.stdout.readline()
        if not line:
            self.stop()
            raise AssertionError("receiver did not start: %s" %
                                 open(self.err_path).read()[-2000:])
        self.port = json.loads(line)["port"]
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def spans(self):
        return request(self.port, "GET", "/spans").json()

    def stats(self):
        return request(self.port, "GET", "/stats").json()

    def mode(self, mode, delay_ms=0):
        r = request(self.port, "POST", "/mode",
                    {"mode": mode, "delay_ms": delay_ms})
        assert r.status == 200, r

    def reset(self):
        request(self.port, "POST", "/reset", {})

    def wait(self, predicate, timeout=None):
        """Poll the spans until predicate(spans) is true; the spans."""
        got = poll(lambda: predicate(self.spans()), timeout or T(10), 0.05)
        return self.spans() if got else None

    def release(self):
        pass

    def stop(self):
        if self.popen is None or self.popen.poll() is not None:
            return
        os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(T(5))
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self.popen.stdout.close()


def dump(spans, indent=None):
    """Spans as text for a failure message (the harness reads numbers as
    Decimal)."""
    return json.dumps(spans, indent=indent, default=str)


def pick(spans, **want):
    """Spans whose fields (service, name, kind, traceId, parentSpanId...)
    equal want's."""
    return [s for s in spans
            if all(s.get(k) == v for k, v in want.items())]


def traceparent(trace, span, flags):
    return "00-%s-%s-%s" % (trace, span, flags)


class TracingTest(E2ETestCase):

    # -- fixtures ----------------------------------------------------------
    def receiver(self, mode="ok", delay_ms=0):
        otlp_deps(self)
        r = Receiver(self.logdir, mode, delay_ms)
        self.fakes.append(r)  # cleanup: release() then stop()
        return r.start()

    @staticmethod
    def otel(endpoint, **extra):
        e = {"OTEL_TRACES_EXPORTER": "otlp",
             "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
             "OTEL_BSP_SCHEDULE_DELAY": "100",
             # the outbox relay delivers at once, polls often
             "ZC_OUTBOX_POLL_MS": "50"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def traced_chain(self, endpoint, **extra):
        env = self.otel(endpoint, **extra)
        return self.chain(dict(env), dict(env), dict(env))

    def transaction(self, txn, account="TR-1", amount=1, headers=None):
        r = request(txn.port, "POST", "/transaction",
                    {"account": account, "amount": amount}, headers=headers)
        self.assertStatus(r, 200, self.tails())
        return r

    def chain_spans(self, rec, trace=None):
        """The spans of one /transaction through the chain (outbox audit
        included), once all six are in."""
        def done(spans):
            ss = [s for s in spans if trace is None or s["traceId"] == trace]
            return (pick(ss, service="audit-logger", kind=SERVER) and
                    pick(ss, service="balance-manager", kind=PRODUCER) and
                    pick(ss, service="balance-manager", kind=SERVER) and
                    pick(ss, service="transaction-processor", kind=SERVER))
        spans = rec.wait(done)
        self.assertIsNotNone(spans, "spans missing: %s\n%s" %
                             (dump(rec.spans(), indent=1)[-4000:],
                              self.tails()))
        return [s for s in spans if trace is None or s["traceId"] == trace]

    def one(self, spans, **want):
        got = pick(spans, **want)
        self.assertEqual(len(got), 1, "%r in %s" %
                         (want, dump(spans, indent=1)[-6000:]))
        return got[0]

    # -- the chain ---------------------------------------------------------
    def test_chain_is_one_trace_with_linked_spans(self):
        rec = self.receiver()
        audit, bal, txn = self.traced_chain(rec.url)
        self.transaction(txn)
        spans = self.chain_spans(rec)
        self.assertEqual(len({s["traceId"] for s in spans}), 1,
                         dump(spans, indent=1))
        for s in spans:
            self.assertEqual(s["resource"]["service.name"], s["service"])
            self.assertEqual(len(s["traceId"]), 32)
            self.assertEqual(len(s["spanId"]), 16)
            self.assertEqual(s["flags"] & 0xff, 1, s)  # sampled
            self.assertLessEqual(int(s["startTimeUnixNano"]),
                                 int(s["endTimeUnixNano"]))

        ts = self.one(spans, service="transaction-processor", kind=SERVER)
        tc = self.one(spans, service="transaction-processor", kind=CLIENT)
        bs = self.one(spans, service="balance-manager", kind=SERVER)
        bp = self.one(spans, service="balance-manager", kind=PRODUCER)
        bc = self.one(spans, service="balance-manager", kind=CLIENT)
        aus = self.one(spans, service="audit-logger", kind=SERVER)

        # the root: no traceparent came in
        self.assertEqual(ts["parentSpanId"], "")
        self.assertEqual(ts["name"], "POST /transaction")
        self.assertEqual(ts["status"]["code"], UNSET)
        a = ts["attributes"]
        self.assertEqual(a["http.request.method"], "POST")
        self.assertEqual(a["url.path"], "/transaction")
        self.assertEqual(a["url.scheme"], "http")
        self.assertEqual(a["http.route"], "/transaction")
        self.assertEqual(a["http.response.status_code"], 200)
        self.assertEqual(a["server.address"], "127.0.0.1")
        self.assertEqual(a["server.port"], txn.port)
        self.assertEqual(a["client.address"], "127.0.0.1")
        self.assertEqual(a["network.peer.address"], "127.0.0.1")
        self.assertIsInstance(a["network.peer.port"], int)
        self.assertEqual(a["network.protocol.version"], "1.1")
        self.assertNotIn("error.type", a)
        self.assertLessEqual(int(ts["startTimeUnixNano"]),
                             int(tc["startTimeUnixNano"]))
        self.assertGreaterEqual(int(ts["endTimeUnixNano"]),
                                int(tc["endTimeUnixNano"]))

        # transaction-processor's client span, child of its server span
        self.assertEqual(tc["parentSpanId"], ts["spanId"])
        self.assertEqual(tc["name"], "POST")
        self.assertEqual(tc["status"]["code"], UNSET)
        a = tc["attributes"]
        self.assertEqual(a["http.request.method"], "POST")
        self.assertEqual(a["server.address"], "127.0.0.1")
        self.assertEqual(a["server.port"], bal.port)
        self.assertEqual(a["url.full"], bal.url + "/update")
        self.assertEqual(a["http.response.status_code"], 200)
        self.assertNotIn("http.request.resend_count", a)

        # balance-manager's server span is the child of that client span
        self.assertEqual(bs["parentSpanId"], tc["spanId"])
        self.assertEqual(bs["name"], "POST /update")
        self.assertEqual(bs["flags"] & 0x300, 0x300, "remote parent")
        self.assertEqual(ts["flags"] & 0x300, 0x100, "local root")

        # the audit goes through the outbox: a relay span in the same
        # trace, the child of the transaction that queued it and linked
        # to it, with the delivery's client span under it
        self.assertEqual(bp["name"], "send audit-logger")
        self.assertEqual(bp["parentSpanId"], bs["spanId"])
        self.assertEqual([(l["traceId"], l["spanId"]) for l in bp["links"]],
                         [(bs["traceId"], bs["spanId"])])
        a = bp["attributes"]
        self.assertEqual(a["messaging.operation.name"], "send")
        self.assertEqual(a["messaging.destination.name"], "audit-logger")
        self.assertEqual(a["zenith.outbox.kind"], "call")
        self.assertEqual(a["zenith.outbox.attempt"], 1)
        self.assertTrue(a["messaging.message.id"])
        self.assertEqual(bc["parentSpanId"], bp["spanId"])
        self.assertEqual(bc["attributes"]["url.full"], audit.url + "/log")
        self.assertEqual(aus["parentSpanId"], bc["spanId"])
        self.assertEqual(aus["name"], "POST /log")
        self.assertEqual(aus["attributes"]["http.response.status_code"], 200)

    def test_incoming_traceparent_is_the_parent(self):
        rec = self.receiver()
        audit, bal, txn = self.traced_chain(rec.url)
        self.transaction(txn, headers={
            "traceparent": traceparent(CALLER_TRACE, CALLER_SPAN, "01"),
            "User-Agent": "tracing-test/1.0",
            "X-Forwarded-For": "203.0.113.7, 10.0.0.1",
            "X-Forwarded-Host": "bank.example.com:8443"})
        spans = self.chain_spans(rec, CALLER_TRACE)
        ts = self.one(spans, service="transaction-processor", kind=SERVER)
        self.assertEqual(ts["parentSpanId"], CALLER_SPAN)
        self.assertEqual(ts["flags"], 0x301)
        a = ts["attributes"]
        self.assertEqual(a["user_agent.original"], "tracing-test/1.0")
        self.assertEqual(a["client.address"], "203.0.113.7")
        self.assertEqual(a["server.address"], "bank.example.com")
        self.assertEqual(a["server.port"], 8443)
        self.assertEqual(a["network.peer.address"], "127.0.0.1")

    def test_status_by_the_conventions(self):
        """4xx: server span unset, client span ERROR; 5xx: ERROR with
        error.type; a refused connection: error.type on each attempt,
        resend_count from the second, and each attempt's traceparent
        names its own span."""
        rec = self.receiver()
        codes = iter([503, 422, 500])
        fake = self.fake(responder=lambda m, p, b: (
            next(codes, 200), {"Content-Type": "application/json"},
            b'{"error":"no"}'))
        txn = self.spawn("transaction-processor", dict(
            self.otel(rec.url), BALANCE_MANAGER_URL=fake.url))

        r = request(txn.port, "POST", "/transaction", {"account": 1})
        self.assertStatus(r, 400)
        # first call: 503 (retried: the call has an Idempotency-Key), 422
        r1 = request(txn.port, "POST", "/transaction",
                     {"account": "S-1", "amount": 1})
        r2 = request(txn.port, "POST", "/transaction",
                     {"account": "S-2", "amount": 1})
        self.assertGreaterEqual(r2.status, 500)

        def enough(spans):
            return len(pick(spans, kind=SERVER)) >= 3 and \
                len(pick(spans, kind=CLIENT)) >= 3
        spans = rec.wait(enough)
        self.assertIsNotNone(spans, dump(rec.spans(), indent=1))

        s400 = [s for s in pick(spans, kind=SERVER)
                if s["attributes"]["http.response.status_code"] == 400][0]
        self.assertEqual(s400["status"]["code"], UNSET)
        self.assertNotIn("error.type", s400["attributes"])
        self.assertEqual(s400["name"], "POST /transaction")

        clients = sorted(pick(spans, kind=CLIENT),
                         key=lambda s: int(s["startTimeUnixNano"]))
        c503, c422, c500 = clients[:3]
        self.assertEqual(c503["attributes"]["http.response.status_code"],
                         503)
        self.assertEqual(c503["attributes"]["error.type"], "503")
        self.assertEqual(c503["status"]["code"], ERROR)
        self.assertNotIn("http.request.resend_count", c503["attributes"])
        self.assertEqual(c422["attributes"]["error.type"], "422")
        self.assertEqual(c422["status"]["code"], ERROR)
        self.assertEqual(c422["attributes"]["http.request.resend_count"], 1)
        self.assertEqual(c422["parentSpanId"], c503["parentSpanId"])
        self.assertEqual(c500["attributes"]["error.type"], "500")
        # each attempt carried its own span's id
        sent = [q["headers"].get("traceparent") for q in fake.requests[:3]]
        self.assertEqual(sent, [traceparent(c["traceId"], c["spanId"], "01")
                                for c in (c503, c422, c500)])
        # the server spans: a 4xx passed on is unset, a 5xx is ERROR
        servers = {s["spanId"]: s for s in pick(spans, kind=SERVER)}
        s1 = servers[c422["parentSpanId"]]
        self.assertEqual(r1.status, 422)
        self.assertEqual(s1["attributes"]["http.response.status_code"], 422)
        self.assertEqual(s1["status"]["code"], UNSET)
        s5 = servers[c500["parentSpanId"]]
        self.assertEqual(s5["attributes"]["http.response.status_code"],
                         r2.status)
        self.assertEqual(s5["status"]["code"], ERROR)
        self.assertEqual(s5["attributes"]["error.type"], str(r2.status))

    def test_transport_error_class_and_resends(self):
        rec = self.receiver()
        txn = self.spawn("transaction-processor", dict(
            self.otel(rec.url), BALANCE_MANAGER_URL=dead_url(),
            ZC_CLIENT_RETRIES=2, ZC_CLIENT_BACKOFF_MS=10))
        r = request(txn.port, "POST", "/transaction",
                    {"account": "X-1", "amount": 1})
        self.assertGreaterEqual(r.status, 500)
        spans = rec.wait(lambda ss: pick(ss, kind=SERVER))
        server = self.one(spans, kind=SERVER)
        clients = sorted(pick(spans, kind=CLIENT),
                         key=lambda s: int(s["startTimeUnixNano"]))
        self.assertGreaterEqual(len(clients), 2, dump(spans))
        for i, c in enumerate(clients):
            self.assertEqual(c["parentSpanId"], server["spanId"])
            self.assertEqual(c["attributes"]["error.type"],
                             "connection_refused")
            self.assertEqual(c["status"]["code"], ERROR)
            self.assertNotIn("http.response.status_code", c["attributes"])
            if i == 0:
                self.assertNotIn("http.request.resend_count",
                                 c["attributes"])
            else:
                self.assertEqual(
                    c["attributes"]["http.request.resend_count"], i)
        self.assertEqual(len({c["spanId"] for c in clients}), len(clients))

    def test_probes_and_metrics_make_no_spans(self):
        rec = self.receiver()
        audit = self.spawn("audit-logger", self.otel(rec.url))
        for path in ("/health/readiness", "/health/liveness", "/metrics"):
            for _ in range(3):
                self.assertStatus(request(audit.port, "GET", path), 200)
        request(audit.port, "GET", "/marker")  # 404: a span
        spans = rec.wait(lambda ss: pick(ss, kind=SERVER))
        time.sleep(0.3)
        spans = rec.spans()
        self.assertEqual([s["attributes"]["url.path"] for s in spans],
                         ["/marker"])
        marker = spans[0]
        self.assertEqual(marker["name"], "GET")  # no route matched
        self.assertNotIn("http.route", marker["attributes"])
        self.assertEqual(marker["status"]["code"], UNSET)
        s = parse_metrics(request(audit.port, "GET", "/metrics").text)
        self.assertGreaterEqual(metric(s, "zc_otel_spans_exported_total"), 1)

    # -- sampling ------------------------------------------------------------
    def capture_flags(self, env, headers=None, n=1):
        """transaction-processor with env calling a fake balance-manager:
        the traceparents it sent."""
        fake = self.fake(responder=lambda m, p, b: (
            200, {"Content-Type": "application/json"},
            b'{"status":"success","new_balance":1.0}'))
        txn = self.spawn("transaction-processor",
                         dict(env, BALANCE_MANAGER_URL=fake.url))
        for i in range(n):
            self.transaction(txn, "F-%d" % i, headers=headers)
        self.assertTrue(fake.wait_requests(n, T(5)))
        return [q["headers"]["traceparent"] for q in fake.requests]

    def test_ratio_zero_exports_nothing_and_says_so(self):
        rec = self.receiver()
        env = self.otel(rec.url, OTEL_TRACES_SAMPLER="traceidratio",
                        OTEL_TRACES_SAMPLER_ARG="0")
        sent = self.capture_flags(env, n=5)
        self.assertTrue(all(tp.endswith("-00") for tp in sent), sent)
        # even a caller that sampled: traceidratio is not parent-based
        sent = self.capture_flags(env, headers={"traceparent": traceparent(
            CALLER_TRACE, CALLER_SPAN, "01")})
        self.assertTrue(sent[-1].startswith("00-" + CALLER_TRACE))
        self.assertTrue(sent[-1].endswith("-00"), sent)
        time.sleep(0.5)
        self.assertEqual(rec.spans(), [])
        self.assertEqual(rec.stats()["requests"], 0)

    def test_ratio_one_exports_everything(self):
        rec = self.receiver()
        audit, bal, txn = self.traced_chain(
            rec.url, OTEL_TRACES_SAMPLER="traceidratio",
            OTEL_TRACES_SAMPLER_ARG="1.0")
        for i in range(5):
            self.transaction(txn, "R-%d" % i)

        kinds = [("transaction-processor", SERVER),
                 ("transaction-processor", CLIENT),
                 ("balance-manager", SERVER), ("balance-manager", PRODUCER),
                 ("balance-manager", CLIENT), ("audit-logger", SERVER)]

        def all_in(spans):
            return all(len(pick(spans, service=svc, kind=k)) >= 5
                       for svc, k in kinds)
        spans = rec.wait(all_in)
        self.assertIsNotNone(spans, dump(rec.spans())[-3000:])
        traces = {s["traceId"] for s in
                  pick(spans, service="transaction-processor", kind=SERVER)}
        self.assertEqual(len(traces), 5)
        for t in traces:
            got = sorted((s["service"], s["kind"]) for s in spans
                         if s["traceId"] == t)
            self.assertEqual(got, sorted(kinds))

    def test_parent_based_follows_the_caller(self):
        rec = self.receiver()
        env = self.otel(rec.url)  # parentbased_always_on, the default
        unsampled = traceparent(CALLER_TRACE, CALLER_SPAN, "00")
        sent = self.capture_flags(env, headers={"traceparent": unsampled})
        self.assertEqual(sent[0][:36], "00-%s-" % CALLER_TRACE)
        self.assertTrue(sent[0].endswith("-00"), sent)
        time.sleep(0.5)
        self.assertEqual(rec.spans(), [])

        other = "0af7651916cd43dd8448eb211c80319c"
        sent = self.capture_flags(env, headers={
            "traceparent": traceparent(other, CALLER_SPAN, "01")})
        self.assertTrue(sent[-1].endswith("-01"), sent)
        spans = rec.wait(lambda ss: pick(ss, kind=CLIENT))
        server = self.one(spans, kind=SERVER)
        client = self.one(spans, kind=CLIENT)
        self.assertEqual(server["traceId"], other)
        self.assertEqual(server["parentSpanId"], CALLER_SPAN)
        self.assertEqual(sent[-1], traceparent(other, client["spanId"], "01"))

    def test_parent_based_off_samples_only_a_sampled_caller(self):
        rec = self.receiver()
        env = self.otel(rec.url,
                        OTEL_TRACES_SAMPLER="parentbased_always_off")
        sent = self.capture_flags(env, n=2)  # roots: not sampled
        self.assertTrue(all(tp.endswith("-00") for tp in sent), sent)
        sent = self.capture_flags(env, headers={"traceparent": traceparent(
            CALLER_TRACE, CALLER_SPAN, "01")})
        self.assertTrue(sent[-1].endswith("-01"), sent)
        spans = rec.wait(lambda ss: pick(ss, kind=CLIENT))
        self.assertEqual({s["traceId"] for s in spans}, {CALLER_TRACE})

    def test_tracing_off_propagates_as_before(self):
        sent = self.capture_flags({}, headers={"traceparent": traceparent(
            CALLER_TRACE, CALLER_SPAN, "00")})
        self.assertTrue(sent[0].startswith("00-%s-" % CALLER_TRACE))
        self.assertTrue(sent[0].endswith("-00"))
        self.assertNotIn(CALLER_SPAN, sent[0])

    # -- protocols and exporters -------------------------------------------
    def test_http_json_and_gzip_decode(self):
        rec = self.receiver()
        audit = self.spawn("audit-logger", self.otel(
            rec.url, OTEL_EXPORTER_OTLP_PROTOCOL="http/json"))
        bal = self.spawn("balance-manager", self.otel(
            rec.url, OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
            AUDIT_LOGGER_URL=audit.url))
        r = request(audit.port, "POST", "/log?via=json",
                    {"action": "t", "details": {}},
                    headers={"Idempotency-Key": "json-1"})
        self.assertStatus(r, (200, 201))
        request(bal.port, "GET", "/accounts/ACC-1")
        spans = rec.wait(lambda ss: len(pick(ss, kind=SERVER)) >= 2)
        self.assertIsNotNone(spans, rec.stats())
        st = rec.stats()
        self.assertEqual(st["errors"], [])
        self.assertIn("application/json", st["content_types"])
        self.assertIn("application/x-protobuf", st["content_types"])
        self.assertIn("gzip", st["encodings"])
        j = self.one(spans, service="audit-logger", kind=SERVER)
        self.assertEqual(j["contentType"], "application/json")
        self.assertEqual(j["name"], "POST /log")
        self.assertEqual(j["attributes"]["url.query"], "via=json")
        g = self.one(spans, service="balance-manager", kind=SERVER)
        self.assertEqual(g["encoding"], "gzip")
        self.assertEqual(g["name"], "GET /accounts/{account}")
        self.assertEqual(g["attributes"]["http.route"],
                         "/accounts/{account}")
        self.assertEqual(g["attributes"]["url.path"], "/accounts/ACC-1")

    def test_console_exporter_prints_json_lines(self):
        audit = self.spawn("audit-logger", {"OTEL_TRACES_EXPORTER": "console",
                                            "OTEL_BSP_SCHEDULE_DELAY": "50"})
        r = request(audit.port, "POST", "/log", {"action": "c",
                                                 "details": {}},
                    headers={"traceparent": traceparent(
                        CALLER_TRACE, CALLER_SPAN, "01")})
        self.assertStatus(r, (200, 201))

        def line():
            for ln in audit.stderr_text().splitlines():
                if ln.startswith("{") and CALLER_TRACE in ln:
                    try:
                        doc = json.loads(ln)
                    except ValueError:
                        continue
                    if doc.get("traceId") == CALLER_TRACE:
                        return doc
            return None
        doc = poll(line, T(5), 0.05)
        self.assertIsNotNone(doc, audit.tail())
        self.assertEqual(doc["name"], "POST /log")
        self.assertEqual(doc.get("parentSpanId"), CALLER_SPAN)

    # -- spans of a handler's own ------------------------------------------
    def test_handler_spans(self):
        rec = self.receiver()
        audit = self.spawn("audit-logger", self.otel(rec.url))
        path = ce_helpers.build_c(self, "span-function", [
            os.path.join(ce_helpers.HERE, "span_function.c")])
        fn = self.spawn(path, dict(self.otel(rec.url),
                                   DOWNSTREAM_URL=audit.url),
                        tag="span-function")
        r = request(fn.port, "POST", "/work", {})
        self.assertStatus(r, 200, fn.tail())
        self.assertEqual(r.json(), {"traced": True, "status": 200})
        spans = rec.wait(lambda ss: pick(ss, service="audit-logger") and
                         pick(ss, service="span-function", kind=SERVER))
        self.assertIsNotNone(spans, dump(rec.spans()))
        mine = [s for s in spans if s["service"] == "span-function"]
        server = self.one(mine, kind=SERVER)
        self.assertEqual(server["name"], "POST /work")
        self.assertEqual(server["attributes"]["app.user"], "ada")
        self.assertEqual([e["name"] for e in server["events"]],
                         ["validated"])
        compute = self.one(mine, name="compute")
        inner = self.one(mine, name="inner")
        outer = self.one(mine, name="outer-call")
        left = self.one(mine, name="left-open")
        client = self.one(mine, kind=CLIENT)
        for s in (compute, outer, left):
            self.assertEqual(s["kind"], INTERNAL)
            self.assertEqual(s["parentSpanId"], server["spanId"])
        self.assertEqual(inner["parentSpanId"], compute["spanId"])
        self.assertEqual(client["parentSpanId"], outer["spanId"])
        a = compute["attributes"]
        self.assertEqual((a["app.items"], a["app.ratio"], a["app.cached"]),
                         (3, 0.5, True))
        self.assertEqual([e["name"] for e in compute["events"]],
                         ["cache miss"])
        self.assertEqual(inner["status"],
                         {"code": ERROR, "message": "inner failed: 42"})
        self.assertLessEqual(int(inner["endTimeUnixNano"]),
                             int(compute["endTimeUnixNano"]))
        self.assertLessEqual(int(left["endTimeUnixNano"]),
                             int(server["endTimeUnixNano"]))
        down = self.one(spans, service="audit-logger", kind=SERVER)
        self.assertEqual(down["parentSpanId"], client["spanId"])
        self.assertEqual(down["traceId"], server["traceId"])

    # -- CloudEvents ---------------------------------------------------------
    def test_cloudevents_producer_and_consumer_spans(self):
        rec = self.receiver()
        env = self.otel(rec.url)
        audit = self.spawn("audit-logger", dict(env, EVENT_MODE=1))
        bal = self.spawn("balance-manager", dict(env, EVENT_MODE=1,
                                                 K_SINK=audit.url + "/"))
        txn = self.spawn("transaction-processor",
                         dict(env, K_SINK=bal.url + "/"))
        r = request(txn.port, "POST", "/transaction",
                    {"account": "CE-1", "amount": 2})
        self.assertStatus(r, (200, 202), self.tails())

        def done(spans):
            return (len(pick(spans, kind=CONSUMER)) >= 2 and
                    len(pick(spans, kind=SERVER)) >= 3 and
                    len(pick(spans, kind=PRODUCER)) >= 3)
        spans = rec.wait(done)
        self.assertIsNotNone(spans, dump(rec.spans(), indent=1)[-5000:]
                             + self.tails())
        self.assertEqual(len({s["traceId"] for s in spans}), 1)
        ts = self.one(spans, service="transaction-processor", kind=SERVER)
        prod = self.one(spans, service="transaction-processor",
                        kind=PRODUCER)
        tc = self.one(spans, service="transaction-processor", kind=CLIENT)
        self.assertEqual(prod["parentSpanId"], ts["spanId"])
        self.assertTrue(prod["name"].startswith("send"), prod["name"])
        a = prod["attributes"]
        self.assertEqual(a["messaging.operation.name"], "send")
        self.assertEqual(a["messaging.operation.type"], "send")
        self.assertTrue(a["cloudevents.event_id"])
        self.assertEqual(a["messaging.message.id"], a["cloudevents.event_id"])
        self.assertTrue(a["cloudevents.event_source"])
        self.assertTrue(a["cloudevents.event_type"])
        self.assertEqual(a["cloudevents.event_spec_version"], "1.0")
        self.assertEqual(tc["parentSpanId"], prod["spanId"])

        bs = self.one(spans, service="balance-manager", kind=SERVER)
        self.assertEqual(bs["parentSpanId"], tc["spanId"])
        cons = self.one(spans, service="balance-manager", kind=CONSUMER)
        self.assertEqual(cons["name"], "process")
        self.assertEqual(cons["parentSpanId"], bs["spanId"])
        # linked to the context the event was created in: the producer
        self.assertEqual([(l["traceId"], l["spanId"]) for l in cons["links"]],
                         [(prod["traceId"], prod["spanId"])])
        a = cons["attributes"]
        self.assertEqual(a["messaging.operation.type"], "process")
        self.assertEqual(a["cloudevents.event_id"],
                         prod["attributes"]["cloudevents.event_id"])
        # balance-manager's own event waits in its outbox: "create", then
        # the relay's "send"; audit-logger's consumer links to the creation
        create = self.one(spans, service="balance-manager", kind=PRODUCER,
                          parentSpanId=cons["spanId"])
        self.assertTrue(create["name"].startswith("create"), create["name"])
        acons = self.one(spans, service="audit-logger", kind=CONSUMER)
        self.assertEqual([l["spanId"] for l in acons["links"]],
                         [create["spanId"]])

    # -- a collector that fails --------------------------------------------
    def collector_fault(self, endpoint, rec=None):
        # a collector that fails holds the exit up to the drain deadline
        # (the final flush): kept short here
        extra = dict(OTEL_EXPORTER_OTLP_TIMEOUT=300, ZC_DRAIN_TIMEOUT_MS=1500,
                     OTEL_BSP_MAX_QUEUE_SIZE=256,
                     OTEL_BSP_MAX_EXPORT_BATCH_SIZE=64)
        audit, bal, txn = self.traced_chain(endpoint, **extra)
        for i in range(40):
            self.transaction(txn, "W-%d" % (i % 4))
        base = {p.tag: rss_kib(p.pid) for p in (audit, bal, txn)}
        t0 = time.monotonic()
        n = 300
        for i in range(n):
            self.transaction(txn, "W-%d" % (i % 4))
        elapsed = time.monotonic() - t0
        grown = {p.tag: rss_kib(p.pid) - base[p.tag]
                 for p in (audit, bal, txn)}
        build = os.path.basename(CONFIG["build"].rstrip("/"))
        if "asan" in build or "tsan" in build:
            grown = {}  # shadow memory and quarantine grow by design
        for tag, kib in grown.items():
            self.assertLess(kib, 16 * 1024, "%s grew %d KiB (%r)" %
                            (tag, kib, grown))
        return elapsed, n, parse_metrics(
            request(txn.port, "GET", "/metrics").text)

    def test_collector_down_costs_nothing(self):
        _, _, s = self.collector_fault(dead_url())
        # nothing can be exported: what the queue cannot hold is dropped
        # and counted
        self.assertEqual(metric(s, "zc_otel_spans_exported_total"), 0)
        self.assertGreater(metric(s, "zc_otel_spans_dropped_total"), 0)

    def test_collector_answering_503_costs_nothing(self):
        rec = self.receiver(mode="503")
        self.collector_fault(rec.url, rec)
        self.assertGreater(rec.stats()["rejected"], 0)

    def test_slow_collector_costs_nothing(self):
        rec = self.receiver(mode="slow", delay_ms=2000)
        elapsed, n, _ = self.collector_fault(rec.url, rec)
        # no request waited for an export
        self.assertLess(elapsed / n, 0.2, "%.3fs a transaction" % (elapsed / n))
