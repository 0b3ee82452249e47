"""The trace exporter on the wire (issue 14; runtime/src/outbound/export.c):
audit-logger with tracing on, exporting to a scripted OTLP/HTTP collector
stub run by the test.  What each request carries (path, Content-Type,
User-Agent, OTEL_EXPORTER_OTLP_HEADERS, gzip), the OTLP retry rules (503
retried after Retry-After, 400 never), a collector that is down (drop
counts, one warning, requests unaffected), one that is slow (requests
unaffected), the flush on SIGTERM, and no exporter thread at all when no
OTEL_* variable is set.  The spans' content is test_tracing.py's, with a
decoder nobody here wrote; this file reads just enough protobuf to count
spans and names."""
import gzip
import http.server
import os
import signal
import threading
import time

from harness import E2ETestCase, T, dead_url, free_port, poll, request
from test_observability import metric, parse_metrics

LOG_BODY = {"action": "balance_update",
            "details": {"account": "ACC-001", "amount": 1}}


# ---- a tiny protobuf reader: just enough of ExportTraceServiceRequest ----

def _varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def fields(b):
    """[(field, wire, value)] of one message; the whole of it must parse."""
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = _varint(b, i)
        elif w == 1:
            v, i = b[i:i + 8], i + 8
        elif w == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif w == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise AssertionError("wire type %d" % w)
        out.append((f, w, v))
    if i != len(b):
        raise AssertionError("message overruns its length")
    return out


def spans_of(body):
    """[(name, trace id hex)] of an ExportTraceServiceRequest, and its
    service.name."""
    spans, service = [], None
    for f, _, rs in fields(body):
        assert f == 1
        for g, _, v in fields(rs):
            if g == 1:  # resource
                for _, _, kv in fields(v):
                    kv = dict((a, c) for a, _, c in fields(kv))
                    if kv[1] == b"service.name":
                        service = dict((a, c) for a, _, c in
                                       fields(kv[2]))[1].decode()
            elif g == 2:  # scope spans
                for h, _, s in fields(v):
                    if h == 2:
                        d = dict((a, c) for a, _, c in fields(s))
                        spans.append((d[5].decode(), d[1].hex()))
    return spans, service


# ---- the collector stub ----

class Collector:
    """OTLP/HTTP on loopback: records each POST (headers, body, time) and
    answers from a script: a list of (status, extra headers, delay s),
    then 200 with an empty ExportTraceServiceResponse."""

    def __init__(self, script=None):
        self.script = list(script or [])
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.requests.append({
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in
                                    self.headers.items()},
                        "body": body,
                        "t": time.monotonic()})
                    status, extra, delay = (outer.script.pop(0)
                                            if outer.script else
                                            (200, {}, 0))
                if delay:
                    outer.release.wait(delay)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def count(self):
        with self.lock:
            return len(self.requests)

    def wait(self, n, timeout):
        return poll(lambda: self.count() >= n, timeout, 0.02)

    def body(self, i):
        r = self.requests[i]
        if r["headers"].get("content-encoding") == "gzip":
            return gzip.decompress(r["body"])
        return r["body"]

    def all_spans(self):
        out = []
        with self.lock:
            for i in range(len(self.requests)):
                out.extend(spans_of(self.body(i))[0])
        return out

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class ExportTest(E2ETestCase):

    def collector(self, script=None):
        c = Collector(script)
        self.addCleanup(c.stop)
        return c

    def traced(self, collector_url, **env):
        e = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector_url,
             "OTEL_TRACES_EXPORTER": "otlp",
             "OTEL_SERVICE_NAME": "audit-logger-e2e",
             "OTEL_BSP_SCHEDULE_DELAY": "100"}
        e.update(env)
        return self.spawn("audit-logger", e)

    def log(self, p, n=1):
        for _ in range(n):
            r = request(p.port, "POST", "/log", LOG_BODY)
            self.assertEqual(r.status, 200, p.tail())

    def metrics(self, p):
        return parse_metrics(request(p.port, "GET", "/metrics").text)

    def test_request_headers_and_body(self):
        c = self.collector()
        p = self.traced(c.url + "/base/",
                        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20t,"
                                                   "x-tenant=a%2Cb")
        self.log(p, 3)
        self.assertTrue(c.wait(1, T(5)), p.tail())
        r = c.requests[0]
        self.assertEqual(r["path"], "/base/v1/traces")
        h = r["headers"]
        self.assertEqual(h["content-type"], "application/x-protobuf")
        self.assertTrue(h["user-agent"].startswith("OTel-OTLP-Exporter-C/"),
                        h["user-agent"])
        self.assertEqual(h["authorization"], "Bearer t")
        self.assertEqual(h["x-tenant"], "a,b")
        self.assertNotIn("content-encoding", h)
        poll(lambda: len(c.all_spans()) >= 3, T(3))
        spans = c.all_spans()
        self.assertEqual([n for n, _ in spans], ["POST /log"] * 3)
        self.assertEqual(spans_of(c.body(0))[1], "audit-logger-e2e")
        s = self.metrics(p)
        self.assertEqual(metric(s, "zc_otel_spans_exported_total"), 3)
        self.assertEqual(metric(s, "zc_otel_export_requests_total",
                                result="success"), c.count())
        self.assertEqual(metric(s, "zc_otel_spans_dropped_total"), 0)
        self.assertIn("tracing: OTLP to %s/base/v1/traces" % c.url,
                      p.stderr_text())

    def test_gzip(self):
        c = self.collector()
        p = self.traced(c.url, OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
        self.log(p, 2)
        self.assertTrue(c.wait(1, T(5)), p.tail())
        r = c.requests[0]
        self.assertEqual(r["headers"]["content-encoding"], "gzip")
        self.assertEqual(r["body"][:2], b"\x1f\x8b")
        raw = gzip.decompress(r["body"])
        self.assertEqual(raw[0], 0x0a)
        self.assertGreaterEqual(len(spans_of(raw)[0]), 1)

    def test_json_protocol(self):
        c = self.collector()
        p = self.traced(c.url, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json")
        self.log(p)
        self.assertTrue(c.wait(1, T(5)), p.tail())
        import json
        self.assertEqual(c.requests[0]["headers"]["content-type"],
                         "application/json")
        doc = json.loads(c.requests[0]["body"])
        span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        self.assertEqual(span["name"], "POST /log")
        self.assertEqual(span["kind"], 2)
        self.assertEqual(len(span["traceId"]), 32)

    def test_503_retried_after_retry_after(self):
        c = self.collector([(503, {"Retry-After": "1"}, 0)])
        p = self.traced(c.url)
        self.log(p)
        self.assertTrue(c.wait(2, T(6)), p.tail())
        gap = c.requests[1]["t"] - c.requests[0]["t"]
        self.assertGreaterEqual(gap, 0.9)
        self.assertEqual(c.requests[0]["body"], c.requests[1]["body"])
        s = self.metrics(p)
        self.assertEqual(metric(s, "zc_otel_export_requests_total",
                                result="retryable"), 1)
        self.assertEqual(metric(s, "zc_otel_spans_exported_total"), 1)

    def test_400_not_retried(self):
        c = self.collector([(400, {}, 0)])
        p = self.traced(c.url)
        self.log(p)
        self.assertTrue(c.wait(1, T(5)), p.tail())
        time.sleep(T(1.5))
        self.assertEqual(c.count(), 1)
        s = self.metrics(p)
        self.assertEqual(metric(s, "zc_otel_spans_dropped_total",
                                reason="export_failed"), 1)
        self.assertIn("HTTP 400, not retried", p.stderr_text())

    def test_collector_down_costs_requests_nothing(self):
        p = self.traced(dead_url(), OTEL_BSP_MAX_QUEUE_SIZE="20",
                        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="5",
                        OTEL_BSP_EXPORT_TIMEOUT="500")
        t0 = time.monotonic()
        self.log(p, 60)
        per = (time.monotonic() - t0) / 60
        self.assertLess(per, T(0.05))
        poll(lambda: metric(self.metrics(p), "zc_otel_spans_dropped_total")
             >= 40, T(5))
        s = self.metrics(p)
        dropped = metric(s, "zc_otel_spans_dropped_total")
        self.assertGreaterEqual(dropped, 40)
        self.assertEqual(metric(s, "zc_otel_spans_exported_total"), 0)
        self.assertLessEqual(metric(s, "zc_otel_queue_spans"), 20)
        self.assertGreater(metric(s, "zc_otel_export_requests_total",
                                  result="transport_error"), 0)
        # one warning for the streak, not one per batch
        self.assertEqual(p.stderr_text().count("trace export to"), 1,
                         p.tail())
        self.assertEqual(p.stop(), 0)

    def test_slow_collector_costs_requests_nothing(self):
        c = self.collector([(200, {}, 5)] * 3)
        p = self.traced(c.url, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2")
        self.log(p, 2)
        self.assertTrue(c.wait(1, T(5)))
        t0 = time.monotonic()
        self.log(p, 30)  # while an export hangs
        self.assertLess(time.monotonic() - t0, T(1.5))
        c.release.set()

    def test_sigterm_flushes_queued_spans(self):
        c = self.collector()
        p = self.traced(c.url, OTEL_BSP_SCHEDULE_DELAY="60000")
        self.log(p, 4)
        time.sleep(0.3)
        self.assertEqual(c.count(), 0)  # waiting for the schedule
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait(T(5)), 0)
        self.assertEqual(len(c.all_spans()), 4, p.tail())

    def test_sigterm_with_collector_down_exits_in_time(self):
        # the default 20 s drain: an unreachable collector is not retried
        # while shutting down, so the exit does not wait for the deadline
        p = self.traced(dead_url(), OTEL_BSP_SCHEDULE_DELAY="60000")
        self.log(p, 3)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait(T(5)), 0)
        self.assertLess(time.monotonic() - t0, T(2))
        self.assertIn("not retried while shutting down", p.stderr_text())

    def test_no_variables_no_thread(self):
        p = self.spawn("audit-logger")
        self.log(p)
        comms = []
        for tid in os.listdir("/proc/%d/task" % p.pid):
            try:
                with open("/proc/%d/task/%s/comm" % (p.pid, tid)) as f:
                    comms.append(f.read().strip())
            except OSError:
                pass
        self.assertNotIn("zc-otel", comms)
        self.assertNotIn("zc_otel_", request(p.port, "GET", "/metrics").text)
        self.assertNotIn("tracing:", p.stderr_text())

    def test_exporter_thread_named(self):
        c = self.collector()
        p = self.traced(c.url)
        comms = []
        for tid in os.listdir("/proc/%d/task" % p.pid):
            with open("/proc/%d/task/%s/comm" % (p.pid, tid)) as f:
                comms.append(f.read().strip())
        self.assertIn("zc-otel", comms)

    def test_bad_values_warn_and_run(self):
        c = self.collector()
        p = self.traced(c.url, OTEL_BSP_SCHEDULE_DELAY="soon",
                        OTEL_TRACES_SAMPLER="sometimes",
                        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                        OTEL_RESOURCE_ATTRIBUTES="a=%zz")
        err = p.stderr_text()
        for var in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    "OTEL_RESOURCE_ATTRIBUTES"):
            self.assertIn(var, err)
        self.log(p)
        self.assertTrue(c.wait(1, T(10)), p.tail())  # 5 s default delay
