"""
fake_dapr.py - a Dapr sidecar on loopback for the end-to-end tests (the
real daprd is not packaged here), written from Dapr's documented HTTP
behaviour (dapr/docs v1.14; ../shared/reference/platform-fit.md section 6).
Python 3 standard library only.

  GET  /v1.0/healthz/outbound   204; the statuses in `health` first (500:
                                not up yet); start() late for a sidecar
                                that comes after the app
  GET  /v1.0/healthz            204 once the subscriptions were read
  POST /v1.0/publish/<pubsub>/<topic>
                                recorded in `publishes`; 401 for a wrong
                                dapr-api-token (api_token set), 404 for a
                                pub/sub not in `pubsubs`, else the next of
                                `publish_script` (403, 500, 503, ...), else
                                204 and the envelope goes to the broker

The app side: load_subscriptions() reads the app's GET /dapr/subscribe
once, as daprd does at its start.  Deliveries POST the envelope to the
subscribed route (Content-Type application/cloudevents+json, traceparent
header, dapr-api-token when app_token is set) and read the reply by
Dapr's table: 2xx with no JSON, no "status" or "SUCCESS": success; 2xx
with "RETRY" or an unknown status: retry; 2xx with "DROP": drop; 404:
drop; anything else: retry.  A retry is redelivered after retry_delay, up
to max_attempts.  Every attempt is kept in `deliveries`.

A Broker shared by several FakeDapr instances is the pub/sub component
between their apps: what one publishes reaches every app subscribed.
"""
import http.client
import http.server
import json
import os
import socket
import threading
import time
import urllib.parse
import uuid

from harness import T, free_port


def interpret(status, body):
    """Dapr's reading of an app's answer to a delivery."""
    if 200 <= status <= 299:
        try:
            doc = json.loads(body)
        except ValueError:
            return "success"
        if not isinstance(doc, dict) or "status" not in doc:
            return "success"
        s = doc["status"]
        if s in ("SUCCESS", ""):
            return "success"
        if s == "DROP":
            return "drop"
        return "retry"  # RETRY, or a status Dapr does not know
    if status == 404:
        return "drop"
    return "retry"


class Broker:
    """The pub/sub component: every published envelope is offered to every
    sidecar, which delivers it if its app subscribed."""

    def __init__(self):
        self.sidecars = []
        self.lock = threading.Lock()

    def publish(self, pubsub, topic, envelope):
        with self.lock:
            sidecars = list(self.sidecars)
        for sc in sidecars:
            sc.offer(pubsub, topic, envelope)


def _span_id():
    return os.urandom(8).hex()


class FakeDapr:
    def __init__(self, app_port=None, port=None, broker=None, health=(),
                 api_token=None, app_token=None, pubsubs=None,
                 max_attempts=4, retry_delay=0.05, app_id="app"):
        self.port = port or free_port()
        self.app_port = app_port
        self.app_id = app_id
        self.broker = broker or Broker()
        with self.broker.lock:
            self.broker.sidecars.append(self)
        self.health = list(health)
        self.api_token = api_token
        self.app_token = app_token
        self.pubsubs = pubsubs
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.publish_script = []
        self.publishes = []
        self.deliveries = []
        self.health_polls = 0
        self.subscriptions = None
        self.cond = threading.Condition()
        self.server = None
        self.stopped = False
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *args):
                pass

            def _answer(self, status, doc=None):
                body = b"" if doc is None else json.dumps(doc).encode()
                self.send_response(status)
                if doc is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1.0/healthz/outbound":
                    with fake.cond:
                        fake.health_polls += 1
                        st = fake.health.pop(0) if fake.health else 204
                        fake.cond.notify_all()
                    self._answer(st, None if st == 204 else
                                 {"errorCode": "ERR_HEALTH_NOT_READY",
                                  "message": "dapr is not ready"})
                elif self.path == "/v1.0/healthz":
                    self._answer(204 if fake.subscriptions is not None
                                 else 500)
                else:
                    self._answer(404, {"errorCode": "ERR_NOT_FOUND"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = self.path.split("?", 1)[0].split("/", 4)
                if len(parts) != 5 or parts[1:3] != ["v1.0", "publish"]:
                    self._answer(404, {"errorCode": "ERR_NOT_FOUND"})
                    return
                pubsub = urllib.parse.unquote(parts[3])
                topic = urllib.parse.unquote(parts[4])
                rec = {"pubsub": pubsub, "topic": topic, "path": self.path,
                       "headers": {k.lower(): v for k, v in
                                   self.headers.items()},
                       "body": body, "time": time.monotonic()}
                if (fake.api_token is not None and
                        self.headers.get("dapr-api-token") !=
                        fake.api_token):
                    st, doc = 401, {"error": "invalid api token"}
                elif fake.pubsubs is not None and pubsub not in fake.pubsubs:
                    st, doc = 404, {"errorCode": "ERR_PUBSUB_NOT_FOUND",
                                    "message": "pubsub %s not found" %
                                    pubsub}
                else:
                    with fake.cond:
                        st = (fake.publish_script.pop(0)
                              if fake.publish_script else 204)
                    doc = None if st == 204 else {
                        "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
                        "message": "scripted %d" % st}
                rec["status"] = st
                with fake.cond:
                    fake.publishes.append(rec)
                    fake.cond.notify_all()
                self._answer(st, doc)
                if st == 204:
                    env = fake.envelope(pubsub, topic, body,
                                        rec["headers"].get("content-type"))
                    fake.broker.publish(pubsub, topic, env)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True

        self._server_cls = Server
        self._handler_cls = Handler

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        self.server = self._server_cls(("127.0.0.1", self.port),
                                       self._handler_cls)
        threading.Thread(target=self.server.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def release(self):
        pass  # E2ETestCase cleanup calls it on every fake

    def stop(self):
        self.stopped = True
        with self.broker.lock:
            if self in self.broker.sidecars:
                self.broker.sidecars.remove(self)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- the app channel ---------------------------------------------------
    def _app_request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.app_port,
                                          timeout=T(10))
        hdrs = dict(headers or {})
        if self.app_token is not None:
            hdrs["dapr-api-token"] = self.app_token
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def wait_app_port(self, timeout=None):
        deadline = time.monotonic() + (timeout or T(10))
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.app_port),
                                         timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.01)
        return False

    def load_subscriptions(self):
        """GET /dapr/subscribe, once, as daprd does at its start.  Returns
        (status, raw body); the list is kept when it is one."""
        self.wait_app_port()
        st, body = self._app_request("GET", "/dapr/subscribe")
        if st == 200:
            self.subscriptions = json.loads(body)
        return st, body

    # -- delivery ----------------------------------------------------------
    def envelope(self, pubsub, topic, body, ctype):
        """The envelope Dapr delivers for a publish: a CloudEvent body is
        kept (its id, source, data) with Dapr's fields added; anything
        else is wrapped in a com.dapr.event.sent event."""
        ctype = (ctype or "text/plain").split(";")[0].strip().lower()
        if ctype == "application/cloudevents+json":
            env = json.loads(body)
        else:
            env = {"specversion": "1.0", "id": str(uuid.uuid4()),
                   "source": self.app_id, "type": "com.dapr.event.sent",
                   "datacontenttype": ctype}
            if ctype == "application/json":
                env["data"] = json.loads(body)
            else:
                env["data"] = body.decode("utf-8", "replace")
        tp = env.get("traceparent") or ""
        parts = tp.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            # the sidecar's own span in the caller's trace
            tp = "00-%s-%s-%s" % (parts[1], _span_id(), parts[3])
        else:
            tp = "00-%s-%s-01" % (os.urandom(16).hex(), _span_id())
        env.update({"pubsubname": pubsub, "topic": topic, "traceid": tp,
                    "traceparent": tp,
                    "tracestate": env.get("tracestate", "")})
        return env

    def route_for(self, pubsub, topic):
        for s in self.subscriptions or ():
            if s.get("pubsubname") == pubsub and s.get("topic") == topic:
                return s.get("route")
        return None

    def offer(self, pubsub, topic, envelope):
        route = self.route_for(pubsub, topic)
        if route is not None:
            threading.Thread(target=self.deliver,
                             args=(route, json.dumps(envelope).encode()),
                             daemon=True).start()

    def publish_external(self, pubsub, topic, data, **attrs):
        """Another app publishes data (JSON) to topic: the envelope goes to
        every subscribed app.  Returns the envelope."""
        env = self.envelope(pubsub, topic, json.dumps(data).encode(),
                            "application/json")
        env.update(attrs)
        self.broker.publish(pubsub, topic, env)
        return env

    def deliver(self, route, body, headers=None):
        """Deliver body (bytes) to route as Dapr does, redelivering on
        retry.  Returns the list of outcomes."""
        outcomes = []
        try:
            tp = json.loads(body).get("traceparent")
        except (ValueError, AttributeError):
            tp = None
        hdrs = {"Content-Type": "application/cloudevents+json"}
        if tp:
            hdrs["traceparent"] = tp
        hdrs.update(headers or {})
        for attempt in range(1, self.max_attempts + 1):
            if self.stopped:
                break
            try:
                st, reply = self._app_request("POST", route, body, hdrs)
            except OSError:
                st, reply = 0, b""
            outcome = interpret(st, reply) if st else "retry"
            with self.cond:
                self.deliveries.append({
                    "route": route, "body": body, "status": st,
                    "reply": reply, "outcome": outcome, "attempt": attempt})
                self.cond.notify_all()
            outcomes.append(outcome)
            if outcome != "retry":
                break
            time.sleep(self.retry_delay)
        return outcomes

    # -- waiting -----------------------------------------------------------
    def wait_for(self, predicate, timeout=None):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self),
                                      timeout or T(5))
