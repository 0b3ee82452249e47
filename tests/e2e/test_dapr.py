"""Dapr end to end, against fake_dapr.py's sidecar on loopback: readiness
held at 503 until a late sidecar answers (and one that never comes: a
clear line, no hang, a prompt SIGTERM), the GET /dapr/subscribe list,
deliveries and the SUCCESS / RETRY / DROP answers as the sidecar reads
them (redelivery on RETRY, malformed envelopes dropped, dedup),
APP_API_TOKEN, publishing (503 retried, 403/404 not, the token sent, our
own envelope passed on), and the financial chain's event mode over Dapr
pub/sub."""
import json
import os
import signal
import time

import ce_helpers
from ce_helpers import build_c
from fake_dapr import Broker, FakeDapr
from harness import E2ETestCase, T, free_port, poll, request

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = "00-%s-00f067aa0ba902b7-01" % TRACE_ID
WAITING = {"status": "waiting for the Dapr sidecar"}


def envelope(id_, data, **extra):
    env = {"specversion": "1.0", "id": id_, "source": "checkout",
           "type": "com.dapr.event.sent",
           "datacontenttype": "application/json", "data": data,
           "topic": "orders", "pubsubname": "pubsub",
           "traceid": TRACEPARENT, "traceparent": TRACEPARENT,
           "tracestate": "", "time": "2026-01-02T03:04:05Z"}
    env.update(extra)
    return json.dumps(env).encode()


def live(port):
    try:
        return request(port, "GET", "/health/liveness",
                       timeout=T(1)).status == 200
    except OSError:
        return False


def got_lines(proc, needle=""):
    return [line for line in proc.stderr_text().splitlines()
            if "[GOT] " in line and needle in line]


class DaprTest(E2ETestCase):

    # -- fixtures ----------------------------------------------------------
    def sidecar(self, app_port, start=True, **kw):
        sc = FakeDapr(app_port=app_port, **kw)
        if start:
            sc.start()
        self.fakes.append(sc)  # cleanup: release() then stop()
        return sc

    def function(self, sidecar_port, env=None, wait=True, port=None):
        path = build_c(self, "dapr-function",
                       [os.path.join(ce_helpers.HERE, "dapr_function.c")])
        e = {"DAPR_HTTP_PORT": sidecar_port, "APP_API_TOKEN": None,
             "DAPR_API_TOKEN": None, "DAPR_HEALTH_TIMEOUT": None}
        e.update(env or {})
        return self.spawn(path, e, port=port, tag="dapr-function",
                          wait=wait)

    def pair(self, env=None, **kw):
        """A running function and its healthy sidecar, subscriptions read."""
        port = free_port()
        sc = self.sidecar(port, **kw)
        fn = self.function(sc.port, env, port=port)
        st, body = sc.load_subscriptions()
        self.assertEqual(st, 200, body)
        return fn, sc

    def readiness(self, fn):
        return request(fn.port, "GET", "/health/readiness")

    # -- readiness ---------------------------------------------------------
    def test_readiness_waits_for_a_late_sidecar(self):
        port = free_port()
        sc = self.sidecar(port, start=False, health=[500, 500])
        fn = self.function(sc.port, port=port, wait=False)
        # listening first: liveness and the app's routes answer at once
        self.assertTrue(poll(lambda: live(fn.port), T(5)), fn.tail())
        # liveness answers while start-up finishes ("starting"); once the
        # function is up, readiness names the sidecar it waits for
        self.assertTrue(poll(lambda: self.readiness(fn).json() !=
                             {"status": "starting"}, T(5)), fn.tail())
        r = self.readiness(fn)
        self.assertStatus(r, 503)
        self.assertEqual(self.assertCompactJson(r, ["status"]), WAITING)
        self.assertTrue(fn.wait_for_stderr(
            lambda t: "waiting for the Dapr sidecar: GET http://127.0.0.1:"
                      "%d/v1.0/healthz/outbound" % sc.port in t),
            fn.tail())
        # the sidecar reads the subscriptions before the app is ready
        self.assertEqual(sc.load_subscriptions()[0], 200)
        time.sleep(0.6)
        self.assertStatus(self.readiness(fn), 503)
        # the sidecar comes, answering 500 twice before 204
        sc.start()
        self.assertTrue(poll(lambda: self.readiness(fn).status == 200,
                             T(5)), fn.tail())
        self.assertEqual(sc.health_polls, 3)
        self.assertIn("Dapr sidecar answered", fn.stderr_text())
        self.assertNotIn("not answering", fn.stderr_text())

    def test_sidecar_that_never_comes(self):
        fn = self.function(free_port(), {"DAPR_HEALTH_TIMEOUT": 1},
                           wait=False)
        text = fn.wait_for_stderr(lambda t: "not answering" in t, T(5))
        self.assertTrue(text, fn.tail())
        line = [ln for ln in text.splitlines() if "not answering" in ln][0]
        self.assertIn("ERROR", line)
        self.assertRegex(line, r"GET http://127\.0\.0\.1:\d+/v1\.0/healthz/"
                               r"outbound")
        for what in ("DAPR_HEALTH_TIMEOUT", "DAPR_HTTP_PORT",
                     "ZC_DAPR_WAIT=false", "dapr.io/enabled"):
            self.assertIn(what, line)
        # one line, not one per poll
        time.sleep(1.5)
        self.assertEqual(fn.stderr_text().count("not answering"), 1)
        self.assertEqual(self.readiness(fn).json(), WAITING)
        t0 = time.monotonic()
        fn.signal(signal.SIGTERM)
        self.assertEqual(fn.wait(T(3)), 0, fn.tail())
        self.assertLess(time.monotonic() - t0, T(1.5))

    def test_sigterm_with_a_poll_in_flight(self):
        hung = self.fake(delay=30)  # accepts, never answers in time
        fn = self.function(hung.port, wait=False)
        self.assertTrue(hung.wait_requests(1, T(5)))
        self.assertEqual(self.readiness(fn).status, 503)
        t0 = time.monotonic()
        fn.signal(signal.SIGTERM)
        self.assertEqual(fn.wait(T(3)), 0, fn.tail())
        self.assertLess(time.monotonic() - t0, T(1.0))

    def test_opt_out_and_bad_values(self):
        fn = self.function(free_port(), {"ZC_DAPR_WAIT": "false"})
        self.assertIn("ZC_DAPR_WAIT=false", fn.stderr_text())
        for env in ({"DAPR_HEALTH_TIMEOUT": "soon"},
                    {"ZC_DAPR_WAIT": "perhaps"}):
            with self.subTest(env=env):
                p = self.function(free_port(), env, wait=False)
                self.assertEqual(p.wait(T(5)), 2, p.tail())
                self.assertIn(list(env)[0], p.stderr_text())
        # no DAPR_HTTP_PORT: nothing waited for
        self.function(None)

    # -- subscriptions and delivery ------------------------------------------
    def test_subscribe_list_and_delivery(self):
        fn, sc = self.pair()
        st, raw = sc.load_subscriptions()
        self.assertEqual(raw.rstrip(b"\n"),
                         b'[{"pubsubname":"pubsub","topic":"orders",'
                         b'"route":"/orders"}]')
        env = sc.publish_external("pubsub", "orders", {"item": 1},
                                  traceparent=TRACEPARENT)
        self.assertTrue(sc.wait_for(lambda s: len(s.deliveries) == 1))
        d = sc.deliveries[0]
        self.assertEqual((d["route"], d["status"], d["outcome"]),
                         ("/orders", 200, "success"))
        self.assertEqual(d["reply"].rstrip(b"\n"), b'{"status":"SUCCESS"}')
        lines = poll(lambda: got_lines(fn, env["id"]), T(2))
        self.assertEqual(len(lines), 1, fn.tail())
        self.assertIn("topic=orders", lines[0])
        self.assertIn(TRACE_ID, lines[0])  # the sidecar's span, our trace
        # a topic nobody subscribed is not delivered
        sc.publish_external("pubsub", "other", {"item": 2})
        time.sleep(0.2)
        self.assertEqual(len(sc.deliveries), 1)

    def test_success_retry_drop(self):
        fn, sc = self.pair()
        cases = [
            ("ok-1", {"x": 1}, ["success"]),
            ("r-503", {"fail_times": 2}, ["retry", "retry", "success"]),
            ("r-fail", {"fail": True}, ["retry"] * 4),
            ("r-429", {"answer": 429}, ["retry"] * 4),
            ("d-400", {"answer": 400}, ["drop"]),
            ("d-404", {"answer": 404}, ["drop"]),
        ]
        for id_, data, want in cases:
            with self.subTest(event=id_):
                self.assertEqual(sc.deliver("/orders",
                                            envelope(id_, data)), want)
        # every answer was a 200 the sidecar reads: never a 4xx it would
        # retry for ever
        self.assertEqual({d["status"] for d in sc.deliveries}, {200})
        # the handler ran once for ok-1; a redelivery is deduped
        self.assertEqual(sc.deliver("/orders", envelope("ok-1", {"x": 1})),
                         ["success"])
        self.assertEqual(len(got_lines(fn, "ok-1 ")), 1)
        self.assertEqual(len(got_lines(fn, "r-503 ")), 3)
        text = fn.stderr_text()
        self.assertRegex(text, r"WARN .*event d-400, topic orders of "
                               r"pubsub\): HTTP 400: answered 400 as asked; "
                               r"answered DROP: not redelivered")
        self.assertRegex(text, r"event r-fail.*the handler failed.*RETRY")

    def test_malformed_envelopes_are_dropped(self):
        fn, sc = self.pair()
        bad = [
            b"{not json",
            b"[]",
            json.dumps({"specversion": "1.0", "source": "s", "type": "t",
                        "topic": "orders"}).encode(),  # no id
            json.dumps({"specversion": "0.3", "id": "v", "source": "s",
                        "type": "t"}).encode(),
            envelope("bad-ext", {}, **{"Bad-Name": "x"}),
        ]
        for body in bad:
            with self.subTest(body=body[:40]):
                self.assertEqual(sc.deliver("/orders", body), ["drop"])
        self.assertEqual(got_lines(fn), [])
        self.assertGreaterEqual(fn.stderr_text().count("answered DROP"), 5)

    def test_app_api_token(self):
        port = free_port()
        sc = self.sidecar(port)  # no token: refused
        fn = self.function(sc.port, {"APP_API_TOKEN": "s3cret"}, port=port)
        st, body = sc.load_subscriptions()
        self.assertEqual(st, 401, body)
        self.assertIn("dapr-api-token", json.loads(body)["error"])
        self.assertEqual(sc.deliver("/orders", envelope("t-1", {})),
                         ["retry"] * 4)
        self.assertIn("refused GET /dapr/subscribe: no dapr-api-token",
                      fn.stderr_text())
        self.assertEqual(got_lines(fn), [])
        sc.app_token = "s3cret-not"
        self.assertEqual(sc.load_subscriptions()[0], 401)
        self.assertIn("a wrong dapr-api-token", fn.stderr_text())
        sc.app_token = "s3cret"
        self.assertEqual(sc.load_subscriptions()[0], 200)
        self.assertEqual(sc.deliver("/orders", envelope("t-1", {})),
                         ["success"])
        self.assertEqual(len(got_lines(fn, "t-1 ")), 1)
        # the function's other routes are not the sidecar's: not checked
        r = request(fn.port, "POST", "/publish",
                    {"pubsub": "pubsub", "topic": "orders"})
        self.assertStatus(r, 200)

    # -- publishing --------------------------------------------------------
    def publish(self, fn, body, headers=None):
        r = request(fn.port, "POST", "/publish", body, headers=headers)
        self.assertStatus(r, 200)
        return r.json()["err"]

    def test_publish(self):
        fn, sc = self.pair({"DAPR_API_TOKEN": "api-t0k"},
                           api_token="api-t0k", pubsubs={"pubsub"})
        ok = "success"
        # 503 twice: retried by the client, the same event each time
        sc.publish_script = [503, 503]
        self.assertEqual(self.publish(fn, {"pubsub": "pubsub",
                                           "topic": "orders",
                                           "data": {"n": 1}},
                                      {"traceparent": TRACEPARENT}),
                         ok)
        self.assertEqual([p["status"] for p in sc.publishes],
                         [503, 503, 204])
        self.assertEqual(len({p["body"] for p in sc.publishes}), 1)
        p = sc.publishes[-1]
        self.assertEqual(p["path"], "/v1.0/publish/pubsub/orders")
        self.assertEqual(p["headers"]["content-type"],
                         "application/cloudevents+json")
        self.assertEqual(p["headers"]["dapr-api-token"], "api-t0k")
        ev = json.loads(p["body"])
        self.assertEqual(ev["specversion"], "1.0")
        self.assertEqual(ev["type"], "com.example.order")
        self.assertEqual(ev["source"], "dapr-function")
        self.assertEqual(ev["data"], {"n": 1})
        self.assertIn(TRACE_ID, ev["traceparent"])
        self.assertRegex(ev["time"], r"^\d{4}-\d\d-\d\dT")
        self.assertTrue(ev["id"])
        # the broker hands it to the subscriber (ourselves here)
        lines = poll(lambda: got_lines(fn, ev["id"]), T(3))
        self.assertEqual(len(lines), 1, fn.tail())
        self.assertIn(TRACE_ID, lines[0])

        # refusals are not retried
        n = len(sc.publishes)
        self.assertEqual(self.publish(fn, {"pubsub": "nope",
                                           "topic": "orders"}),
                         "downstream replied with an error status")
        sc.publish_script = [403]
        self.assertEqual(self.publish(fn, {"pubsub": "pubsub",
                                           "topic": "orders"}),
                         "downstream replied with an error status")
        sc.publish_script = [500]
        self.assertEqual(self.publish(fn, {"pubsub": "pubsub",
                                           "topic": "orders"}),
                         "downstream replied with an error status")
        self.assertEqual([p["status"] for p in sc.publishes[n:]],
                         [404, 403, 500])
        # zc_event_send with a dapr: target is the same publish
        self.assertEqual(self.publish(fn, {"target": "dapr:pubsub/orders",
                                           "data": {"n": 2}}), ok)
        self.assertEqual(sc.publishes[-1]["status"], 204)
        self.assertEqual(json.loads(sc.publishes[-1]["body"])["data"],
                         {"n": 2})

    def test_publish_without_a_sidecar_port(self):
        fn = self.function(None)
        self.assertEqual(self.publish(fn, {"pubsub": "pubsub",
                                           "topic": "orders"}),
                         "invalid argument or configuration")
        self.assertIn("DAPR_HTTP_PORT", fn.stderr_text())

    # -- the chain ---------------------------------------------------------
    def test_financial_chain_over_dapr_pubsub(self):
        broker = Broker()
        procs = {}
        sidecars = {}
        for name in ("audit-logger", "balance-manager",
                     "transaction-processor"):
            port = free_port()
            sc = self.sidecar(port, broker=broker, app_id=name,
                              pubsubs={"pubsub"})
            procs[name] = self.spawn(name, {
                "DAPR_HTTP_PORT": sc.port, "DAPR_PUBSUB": "pubsub",
                "DAPR_API_TOKEN": None, "APP_API_TOKEN": None},
                port=port)
            # transaction-processor subscribes to nothing: a 404
            self.assertEqual(sc.load_subscriptions()[0],
                             404 if name == "transaction-processor"
                             else 200)
            sidecars[name] = sc
        self.assertEqual(sidecars["balance-manager"].subscriptions,
                         [{"pubsubname": "pubsub", "topic": "transactions",
                           "route": "/events/transactions"}])
        self.assertEqual(sidecars["audit-logger"].subscriptions,
                         [{"pubsubname": "pubsub", "topic": "balances",
                           "route": "/events/balances"}])
        txn, bal = procs["transaction-processor"], procs["balance-manager"]
        audit = procs["audit-logger"]
        r = request(txn.port, "POST", "/transaction",
                    '{"account":"ACC-DAPR-1","amount":100.50}',
                    headers={"traceparent": TRACEPARENT})
        self.assertStatus(r, 202)
        tx = r.json()["transaction_id"]
        lines = poll(lambda: [ln for ln in audit.stderr_text().splitlines()
                              if "[AUDIT] " in ln and tx in ln], T(5))
        self.assertEqual(len(lines), 1, self.tails())
        self.assertIn('Details: {"account":"ACC-DAPR-1","amount":100.5,'
                      '"new_balance":100.5,"transaction_id":"%s"}' % tx,
                      lines[0])
        self.assertIn("trace_id=%s" % TRACE_ID, lines[0])
        r = request(bal.port, "GET", "/accounts/ACC-DAPR-1")
        self.assertEqual(r.text.rstrip("\n"),
                         '{"account":"ACC-DAPR-1","balance":100.5}')
        # the transaction event was published once, as our own envelope
        pubs = sidecars["transaction-processor"].publishes
        self.assertEqual([(p["topic"], p["status"]) for p in pubs],
                         [("transactions", 204)])
        self.assertEqual(json.loads(pubs[0]["body"])["id"], tx)
        # the broker redelivers the transaction: applied once
        sc = sidecars["balance-manager"]
        first = [d for d in sc.deliveries if d["outcome"] == "success"][0]
        self.assertEqual(sc.deliver("/events/transactions", first["body"]),
                         ["success"])
        r = request(bal.port, "GET", "/accounts/ACC-DAPR-1")
        self.assertIn('"balance":100.5}', r.text)
        time.sleep(0.3)
        self.assertEqual(len([ln for ln in audit.stderr_text().splitlines()
                              if "[AUDIT] " in ln and tx in ln]), 1)
        # bad data in a transaction event: DROP, the balance unchanged
        bad = json.dumps({"specversion": "1.0", "id": "bad-1",
                          "source": "x", "type":
                          "com.example.transaction.created",
                          "data": {"account": "ACC-DAPR-1",
                                   "amount": 0.001}}).encode()
        self.assertEqual(sc.deliver("/events/transactions", bad), ["drop"])
        self.assertIn('"balance":100.5}', request(
            bal.port, "GET", "/accounts/ACC-DAPR-1").text)

