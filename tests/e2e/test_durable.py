"""Durable state (the "durable state" issue): the chain's state lives in the
store named by ZC_STORE_URL (PostgreSQL shared by replicas, a SQLite file,
or memory), survives kill -9 and restarts, is applied exactly once per
Idempotency-Key on any replica, and the audit call goes through the
store's outbox.  PostgreSQL is a private instance per test class
(pgfixture.py, tests/pg/pg.sh), each function with its own database;
replicas sit behind a round-robin proxy (rrproxy.py) standing in for a
Kubernetes Service.

The first two classes test the test tools themselves (rrproxy, pgfixture).
Load sizes are scaled down by the --slow factor under sanitizer builds.
Run just these with:  python3 tests/e2e/run.py --build build -k test_durable
"""
import collections
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rrproxy
from faultproxy import FaultProxy
from harness import (CONFIG, E2ETestCase, Proc, Resp, T, base_env,
                     connect_refused, dead_url, fmt_cents, free_port,
                     json_reply, raw_number, request, to_cents)
from pgfixture import PgError, PgServer, psql, psql_value
from rrproxy import RRProxy

# Statuses a client retries with the same key and body: the request may
# or may not have been applied, and the key makes a repeat safe.
RETRY_STATUSES = (409, 429, 500, 502, 503, 504)


def scaled(plain, floor):
    """A load size: plain on the plain build, divided by the slow factor
    (3 ASan, 4 TSan) on sanitizer builds, never below floor."""
    return max(floor, int(plain / CONFIG["slow"]))


def body_of(account, cents):
    return '{"account":%s,"amount":%s}' % (json.dumps(account),
                                           fmt_cents(cents))


def update(port, account, cents, key=None, **kw):
    hdrs = {"Idempotency-Key": key} if key is not None else None
    return request(port, "POST", "/update", body_of(account, cents),
                   headers=hdrs, **kw)


def transaction(port, account, cents, key=None, **kw):
    hdrs = {"Idempotency-Key": key} if key is not None else None
    return request(port, "POST", "/transaction", body_of(account, cents),
                   headers=hdrs, **kw)


def get_account(port, account, **kw):
    return request(port, "GET", "/accounts/" +
                   urllib.parse.quote(account, safe=""), **kw)


def distinct_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def replayed(resp):
    return (resp.header("Idempotent-Replayed") or "").lower() == "true"


class Sender:
    """POSTs keyed requests to one port until each gets a 200, from any
    number of client threads, sharing an outcome histogram.

    A request is retried with the same key and body on a transport error or
    a RETRY_STATUSES answer, not on another 4xx.  Bounded twice: by the
    load's deadline, and by `stall`: a key still without a 200 after that
    long aborts the whole load (every thread stops at its next attempt),
    so a broken implementation fails in about `stall` seconds instead of
    running to the deadline."""

    def __init__(self, port, path, deadline, stall):
        self.port = port
        self.path = path
        self.deadline = deadline
        self.stall = stall
        self.lock = threading.Lock()
        self.hist = collections.Counter()
        self.abort = threading.Event()
        self.stalled = None  # (key, last answer) that aborted the load

    def send(self, box, key, body):
        """box[0] holds the calling thread's keep-alive connection.
        Returns (last Resp or exception, attempts)."""
        attempts = 0
        give_up = min(self.deadline, time.monotonic() + self.stall)
        while True:
            attempts += 1
            try:
                if box[0] is None:
                    box[0] = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=T(30))
                r = request(self.port, "POST", self.path, body,
                            headers={"Idempotency-Key": key}, conn=box[0])
                outcome = r.status
            except (OSError, http.client.HTTPException) as e:
                if box[0] is not None:
                    box[0].close()
                    box[0] = None
                r, outcome = e, e.__class__.__name__
            with self.lock:
                self.hist[outcome] += 1
            if isinstance(r, Resp):
                if r.status == 200:
                    return r, attempts
                if r.status not in RETRY_STATUSES:
                    return r, attempts
            if self.abort.is_set():
                return r, attempts
            if time.monotonic() >= give_up:
                if time.monotonic() < self.deadline:
                    with self.lock:
                        if self.stalled is None:
                            self.stalled = (key, r)
                    self.abort.set()
                return r, attempts
            time.sleep(min(0.2, 0.005 * attempts))

    def why(self):
        """What stopped the load early, for a failure message."""
        if self.stalled is None:
            return ""
        return (" (load aborted: key %s had no 200 after %.0fs, last %r)" %
                (self.stalled[0], self.stall, self.stalled[1]))


def sqlite_ro(path, sql, timeout=5.0):
    """Rows of sql on the SQLite file at path, opened read-only."""
    con = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(path),
                          uri=True, timeout=timeout)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def state_lines(text):
    return [l for l in text.splitlines() if "state" in l.lower()]


# ---------------------------------------------------------------------------
# Test-case bases
# ---------------------------------------------------------------------------
class DurableCase(E2ETestCase):
    """E2ETestCase plus kill -9 and restart of a replica on its port.  A
    killed process leaves self.procs (its log stays on disk, under its own
    tag) and is still checked for sanitizer reports at the end."""

    def setUp(self):
        super().setUp()
        self.dead = []
        self.proc_lock = threading.Lock()
        self.addCleanup(self._check_dead)

    def _check_dead(self):
        reports = []
        for p in self.dead:
            rep = p.sanitizer_report()
            if rep:
                reports.append("%s (%s):\n%s" % (p.tag, p.err_path, rep))
        if reports:
            self.fail("sanitizer report(s) from killed processes:\n" +
                      "\n".join(reports))

    def kill9(self, p):
        """SIGKILL p and reap it.  Returns False (and kills nothing) when
        p had already exited by itself."""
        if not p.alive():
            return False
        os.kill(p.pid, signal.SIGKILL)
        p.popen.wait(T(10))
        p.stop()  # reaped: only takes it off the harness's list
        with self.proc_lock:
            if p in self.procs:
                self.procs.remove(p)
            self.dead.append(p)
        return True

    def restart(self, old, tag, ready_timeout=None):
        """A new process with old's binary, environment and port."""
        p = Proc(old.name, old.port, dict(old.env), self.logdir, tag=tag)
        p.start()
        with self.proc_lock:
            self.procs.append(p)
        p.wait_ready(ready_timeout or T(20))
        return p

    def spawn_unset_store(self, name, env=None, tag=None):
        """As spawn, but with ZC_STORE_URL really unset: the harness gives
        every other process a fresh SQLite file of its own."""
        port = free_port()
        e = base_env()
        e.update(PORT=str(port), AUDIT_LOGGER_URL=dead_url(),
                 BALANCE_MANAGER_URL=dead_url())
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        e.pop("ZC_STORE_URL", None)
        p = Proc(name, port, e, self.logdir, tag=tag)
        p.env = e  # undo the harness's default store
        p.start()
        with self.proc_lock:
            self.procs.append(p)
        p.wait_ready()
        return p

    def rr(self, upstreams):
        px = RRProxy(upstreams, timeout=T(60)).start()
        self.fakes.append(px)  # stopped by the harness cleanup
        return px

    def fake_audit(self):
        """A stand-in audit-logger answering 200 {"status":"logged",...}."""
        return self.fake()

    def assertBalanceIs(self, port, account, cents, msg=""):
        r = get_account(port, account)
        self.assertStatus(r, 200, "GET /accounts/%s %s" % (account, msg))
        doc = r.json()
        self.assertEqual(doc.get("account"), account, r)
        self.assertEqual(raw_number(r.body, "balance"), fmt_cents(cents),
                         "balance of %s on port %d: %r %s" %
                         (account, port, r, msg))
        return r

    def assertRetryAfter(self, resp, what):
        ra = resp.header("Retry-After")
        self.assertTrue(ra, "%s: no Retry-After header in %r" % (what, resp))
        self.assertRegex(ra.strip(), r"^\d+$",
                         "%s: Retry-After %r is not delay-seconds" %
                         (what, ra))


class PgCase(DurableCase):
    """One private PostgreSQL per class, stopped after the class even when
    its setUpClass or a test fails."""

    pg = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = PgServer(os.path.join(CONFIG["tmpdir"], cls.__name__),
                          tag=cls.__name__)
        cls.addClassCleanup(cls.pg.stop)
        cls.pg.start()

    def new_db(self, prefix):
        """A fresh database; returns its URL."""
        return self.pg.create_database("%s_%s" %
                                       (prefix, uuid.uuid4().hex[:8]))

    def assertTables(self, url, tables, who):
        """The function created its tables in this database (tells a store
        that is not used at all apart from a wrong answer)."""
        rows = psql(url, "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()")
        have = sorted(r[0] for r in rows)
        missing = [t for t in tables if t not in have]
        if missing:
            self.fail("%s: table(s) %s missing from %s (it has %s): "
                      "ZC_STORE_URL not used?" %
                      (who, ", ".join(missing), url, have or "none"))

    def wait_outbox_empty(self, url, timeout):
        """Poll SELECT count(*) FROM zc_outbox until 0; returns seconds
        taken, fails with what is left."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        while True:
            try:
                last = int(psql_value(url, "SELECT count(*) FROM zc_outbox"))
            except PgError as e:
                last = str(e)
            if last == 0:
                return time.monotonic() - t0
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        try:
            sample = psql(url, "SELECT state, count(*), max(attempts), "
                          "max(last_error) FROM zc_outbox GROUP BY state")
        except PgError as e:
            sample = str(e)
        self.fail("outbox not drained after %.0fs: count %r; by state "
                  "(state, rows, max attempts, an error): %r" %
                  (timeout, last, sample))


# ---------------------------------------------------------------------------
# The test tools themselves
# ---------------------------------------------------------------------------
class _Upstream:
    """A tiny HTTP/1.1 upstream on a chosen port.  mode: "ok" answers
    200 {"who", "n", "key", "body"}; "close" reads the request and closes
    without a reply (died mid-request); "oneshot" answers, then closes the
    connection without saying so (a kept-alive connection gone stale)."""

    def __init__(self, name, port=0, mode="ok"):
        self.name = name
        self.port = port
        self.mode = mode
        self.count = 0
        self.closed = threading.Event()
        self.socks = set()
        self.lock = threading.Lock()
        self.server = None
        up = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with up.lock:
                    up.socks.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with up.lock:
                        up.socks.discard(self.connection)
                    up.closed.set()

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with up.lock:
                    up.count += 1
                    count = up.count
                if up.mode == "close":
                    self.close_connection = True
                    return
                out = json.dumps({"who": up.name, "n": count,
                                  "key": self.headers.get("Idempotency-Key"),
                                  "body": body.decode()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                if up.mode == "oneshot":
                    self.wfile.flush()
                    self.close_connection = True
                    try:  # the FIN leaves now, before finish() says so
                        self.connection.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

            do_GET = do_POST = _handle

        self.handler = Handler

    def start(self):
        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a client gone mid-answer (stop(), a proxy's 502)
        self.server = Server(("127.0.0.1", self.port), self.handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self):
        """Like a process dying: stop listening, close every connection."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server = None
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        pass


class RoundRobinProxyTest(E2ETestCase):
    """rrproxy.py: round-robin, a refused upstream skipped, a stale
    kept-alive connection replaced, a mid-request death answered 502 and
    not sent elsewhere, the control API."""

    def upstream(self, name, port=0, mode="ok"):
        u = _Upstream(name, port, mode).start()
        self.fakes.append(u)
        return u

    def proxy(self, ups):
        px = RRProxy(ups).start()
        self.fakes.append(px)
        return px

    def get(self, px, conn=None, path="/x"):
        return request(px.port, "GET", path, conn=conn)

    def test_round_robin_forwards_body_and_headers(self):
        ups = [self.upstream("u%d" % i) for i in range(3)]
        px = self.proxy([u.port for u in ups])
        conn = http.client.HTTPConnection("127.0.0.1", px.port, timeout=T(5))
        self.addCleanup(conn.close)
        whos = collections.Counter()
        for i in range(9):
            r = request(px.port, "POST", "/update", {"i": i},
                        headers={"Idempotency-Key": "k-%d" % i}, conn=conn)
            self.assertStatus(r, 200)
            doc = r.json()
            self.assertEqual(doc["key"], "k-%d" % i)
            self.assertEqual(json.loads(doc["body"]), {"i": i})
            whos[doc["who"]] += 1
        self.assertEqual(whos, {"u0": 3, "u1": 3, "u2": 3})
        st = px.stats()
        self.assertEqual(st["connections"], 1, "client keep-alive not kept")
        self.assertEqual((st["requests"], st["forwarded"], st["refused"],
                          st["bad_gateway"]), (9, 9, 0, 0), st)

    def test_control_api_sets_upstreams(self):
        u0, u1 = self.upstream("u0"), self.upstream("u1")
        px = self.proxy([u0.port])
        status, doc = rrproxy.control(
            px.control_url, "POST", "",
            {"upstreams": ["127.0.0.1:%d" % u1.port]})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["upstreams"], ["127.0.0.1:%d" % u1.port])
        for _ in range(3):
            self.assertEqual(self.get(px).json()["who"], "u1")
        status, st = rrproxy.control(px.control_url, "GET")
        self.assertEqual(st["by_upstream"], {"127.0.0.1:%d" % u1.port: 3})
        # the proxy port answers the control routes too
        r = request(px.port, "POST", "/__rr",
                    {"upstreams": [u0.port, "http://127.0.0.1:%d" % u1.port]})
        self.assertStatus(r, 200)
        self.assertEqual(len(px.upstreams()), 2)
        r = request(px.port, "POST", "/__rr", {"upstreams": ["nonsense"]})
        self.assertStatus(r, 400)
        status, _ = rrproxy.control(px.control_url, "POST", "/reset")
        self.assertEqual(px.stats()["requests"], 0)

    def test_refused_upstream_is_skipped_and_comes_back(self):
        ups = [self.upstream("u%d" % i) for i in range(3)]
        px = self.proxy([u.port for u in ups])
        conn = http.client.HTTPConnection("127.0.0.1", px.port, timeout=T(5))
        self.addCleanup(conn.close)
        for _ in range(3):  # one kept-alive connection to each upstream
            self.assertStatus(self.get(px, conn), 200)
        port1 = ups[1].port
        ups[1].stop()  # "killed": refuses, its connections closed
        self.assertTrue(connect_refused(port1))
        whos = collections.Counter()
        for _ in range(12):
            r = self.get(px, conn)
            self.assertStatus(r, 200, "a live upstream could take it")
            whos[r.json()["who"]] += 1
        self.assertEqual(sorted(whos), ["u0", "u2"])
        self.assertEqual(sum(whos.values()), 12)
        st = px.stats()
        self.assertGreaterEqual(st["refused"], 4, st)
        self.assertEqual(st["bad_gateway"], 0, st)
        # restarted on the same port: it gets its turn again
        back = self.upstream("u1-again", port1)
        whos = collections.Counter(self.get(px, conn).json()["who"]
                                   for _ in range(6))
        self.assertEqual(whos["u1-again"], 2, whos)
        self.assertEqual(back.count, 2)

    def test_stale_keepalive_connection_is_replaced(self):
        u = self.upstream("u", mode="oneshot")
        px = self.proxy([u.port])
        conn = http.client.HTTPConnection("127.0.0.1", px.port, timeout=T(5))
        self.addCleanup(conn.close)
        for i in range(4):
            u.closed.clear()
            self.assertStatus(self.get(px, conn), 200, "request %d" % i)
            self.assertTrue(u.closed.wait(T(5)))
        self.assertEqual(px.stats()["bad_gateway"], 0)

    def test_mid_request_death_is_502_and_not_resent(self):
        bad, good = self.upstream("bad", mode="close"), self.upstream("good")
        px = self.proxy([bad.port, good.port])
        r = request(px.port, "POST", "/update", {"a": 1})
        self.assertJsonError(r, 502)
        self.assertIn("mid-request", r.json()["error"])
        self.assertEqual(bad.count, 1)
        self.assertEqual(good.count, 0, "a sent request was sent again")
        r = request(px.port, "POST", "/update", {"a": 2})
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["who"], "good")
        self.assertEqual(px.stats()["bad_gateway"], 1)

    def test_no_upstream_is_502(self):
        px = self.proxy([free_port(), free_port()])
        r = self.get(px)
        self.assertJsonError(r, 502)
        self.assertIn("no upstream", r.json()["error"])
        px.set_upstreams([])
        self.assertJsonError(self.get(px), 502)
        self.assertEqual(px.stats()["no_upstream"], 2)

    def test_concurrent_clients_while_an_upstream_dies(self):
        ups = [self.upstream("u%d" % i) for i in range(3)]
        px = self.proxy([u.port for u in ups])
        bad = []
        lock = threading.Lock()
        go = threading.Barrier(8)

        def client():
            c = http.client.HTTPConnection("127.0.0.1", px.port,
                                           timeout=T(5))
            try:
                go.wait(T(5))
                for _ in range(60):
                    try:
                        r = self.get(px, c)
                        st = r.status
                    except (OSError, http.client.HTTPException) as e:
                        st = repr(e)
                    if st != 200:
                        with lock:
                            bad.append(st)
            finally:
                c.close()
        ths = [threading.Thread(target=client, daemon=True)
               for _ in range(8)]
        for t in ths:
            t.start()
        self.assertTrue(poll_until(lambda: px.stats()["requests"] >= 100,
                                   T(10)))
        ups[2].stop()
        for t in ths:
            t.join(T(30))
        self.assertFalse(any(t.is_alive() for t in ths))
        # only requests caught in the killed upstream may fail, with a 502
        self.assertTrue(all(s == 502 for s in bad), bad[:5])
        self.assertLessEqual(len(bad), 8, bad)
        self.assertEqual(px.stats()["requests"], 480)


def pid_running(pid):
    """True while pid runs (a zombie waiting to be reaped does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def poll_until(pred, timeout, interval=0.01):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


class PgFixtureTest(E2ETestCase):
    """pgfixture.py over tests/pg/pg.sh: start, databases, psql rows,
    pause/resume on the same port, stop removes everything."""

    def test_start_databases_psql_pause_resume_stop(self):
        pg = PgServer(self.logdir, tag="fixture")
        self.addCleanup(pg.stop)
        pg.start()
        self.assertRegex(pg.url, r"^postgresql://postgres@127\.0\.0\.1:\d+/"
                         r"postgres\?connect_timeout=\d+$")
        a = pg.create_database("fixture_a")
        b = pg.create_database("fixture_b")
        self.assertTrue(a.endswith(":%d/fixture_a?connect_timeout=5" %
                                   pg.port), a)
        self.assertEqual(psql(a, "SELECT current_database()"),
                         [["fixture_a"]])
        pg.psql(a, "CREATE TABLE t(k TEXT PRIMARY KEY, v BIGINT);"
                "INSERT INTO t VALUES ('a|b', 1), ('', 2), "
                "('x\ny', NULL), (E'tab\\there', -9000000000000)")
        self.assertEqual(
            pg.psql(a, "SELECT k, v FROM t ORDER BY v NULLS LAST"),
            [["tab\there", "-9000000000000"], ["a|b", "1"], ["", "2"],
             ["x\ny", None]])
        self.assertEqual(pg.psql(a, "SELECT 1 WHERE false"), [])
        self.assertEqual(pg.value(b, "SELECT to_regclass('t')::text"), None,
                         "databases are separate")
        with self.assertRaises(PgError):
            pg.psql(a, "SELECT * FROM no_such_table")
        with self.assertRaises(ValueError):
            pg.create_database("bad name; DROP")

        port, pid = pg.port, pg.pid()
        self.assertTrue(pid and pid_running(pid))
        pg.pause()
        self.assertTrue(connect_refused(port), "paused but port %d open" %
                        port)
        with self.assertRaises(PgError):
            psql(a, "SELECT 1", timeout=T(10))
        pg.resume()
        self.assertEqual(pg.port, port)
        self.assertEqual(pg.value(a, "SELECT count(*) FROM t"), "4")
        new_pid = pg.pid()
        base = pg.base
        pg.stop()
        self.assertFalse(os.path.exists(base), "pg.sh stop left %s" % base)
        self.assertTrue(connect_refused(port))
        self.assertTrue(poll_until(lambda: not pid_running(new_pid), T(5)),
                        "postmaster %d still running" % new_pid)
        self.assertTrue(os.path.exists(os.path.join(
            self.logdir, "fixture.postgres.log")), "server log not kept")
        pg.stop()  # idempotent


# ---------------------------------------------------------------------------
# a. The bank: replicas, kills and faults, money exact to the cent
# ---------------------------------------------------------------------------
class BankTest(PgCase):

    def test_money_exact_through_kills_and_faults(self):
        """3 balance-manager replicas on one PostgreSQL database behind a
        round-robin proxy, 2 audit-logger replicas on another, ~20% faults
        in front of balance-manager for the first half, one
        transaction-processor.  Keyed transactions from 8 threads, each
        retried until 200, while a replica is SIGKILLed and restarted
        every 1-2 s (an audit-logger replica every third time).  Then:
        balances (GET on every replica, and the accounts table) equal the
        sums of the transactions to the cent; entries holds exactly one row
        per transaction id; the outbox drains; audit_log holds exactly one
        row per update, key audit-<transaction id>; a re-sent key gets the
        same transaction id and balance."""
        n = scaled(2000, 200)
        threads = 8
        accounts = ["BANK-%02d" % i for i in range(10)]
        rng = random.Random(20251202)
        run = uuid.uuid4().hex[:8]
        jobs = [("bank-%s-%05d" % (run, i), rng.choice(accounts),
                 rng.randint(-5000, 20000)) for i in range(n)]

        bm_db = self.new_db("bank_bm")
        au_db = self.new_db("bank_audit")
        au_ports = distinct_ports(2)
        bm_ports = distinct_ports(3)
        while set(au_ports) & set(bm_ports):
            bm_ports = distinct_ports(3)
        au_rr = self.rr(au_ports)
        # started together, as a scale-from-zero would: the schema is
        # created once however many replicas reach the empty database
        audits = [self.spawn("audit-logger", {"ZC_STORE_URL": au_db},
                             port=p, tag="audit%d" % i, wait=False)
                  for i, p in enumerate(au_ports)]
        # A killed replica's outbox claims are taken over after the lease
        # (30 s by default): shorter, so the outbox drains in seconds.
        bm_env = {"ZC_STORE_URL": bm_db, "AUDIT_LOGGER_URL": au_rr.url,
                  "AUDIT_LOGGER_BREAKER_FAILURES": 0,
                  "ZC_OUTBOX_LEASE_MS": int(max(3.0, T(2.0)) * 1000)}
        bms = [self.spawn("balance-manager", bm_env, port=p,
                          tag="bm%d" % i, wait=False)
               for i, p in enumerate(bm_ports)]
        for p in audits + bms:
            p.wait_ready(T(20))
        bm_rr = self.rr(bm_ports)
        fp = FaultProxy(bm_rr.url).start()
        self.fakes.append(fp)
        tp = self.spawn("transaction-processor", {
            "BALANCE_MANAGER_URL": fp.url, "BALANCE_MANAGER_RETRIES": 3,
            "BALANCE_MANAGER_BREAKER_FAILURES": 0,
            "ZC_CLIENT_BACKOFF_MS": 5, "ZC_CLIENT_BACKOFF_MAX_MS": 50})

        lock = threading.Lock()
        results = [None] * n
        state = {"next": 1, "acked": 0, "resent": 0}
        resend_bad = []
        t0 = time.monotonic()
        sender = Sender(tp.port, "/transaction", t0 + T(75), T(35))

        # one transaction first: the store must be the one in use
        key, acc, cents = jobs[0]
        results[0] = sender.send([None], key, body_of(acc, cents))
        self.assertStatus(results[0][0], 200, "first transaction")
        state["acked"] = 1
        self.assertTables(bm_db, ["accounts", "entries", "zc_outbox"],
                          "balance-manager")
        fp.set_mode("mix", fraction=0.2, seed=4242,
                    faults=["fail_before", "fail_after", "reset"])

        min_kills = 3

        def gate_open(i):
            """Job i may start: at least k kills are done once a quarter
            of the jobs per k are under way (however fast the load), or
            the killer has stopped."""
            need = min(min_kills, i * 4 // n)
            return (kills["balance-manager"] >= need or
                    not kth.is_alive() or sender.abort.is_set())

        def worker():
            box = [None]
            try:
                while not sender.abort.is_set():
                    with lock:
                        i = state["next"]
                        state["next"] += 1
                    if i >= n:
                        return
                    while not gate_open(i):
                        time.sleep(0.01)
                    key, acc, cents = jobs[i]
                    body = body_of(acc, cents)
                    r, att = sender.send(box, key, body)
                    results[i] = (r, att)
                    if not (isinstance(r, Resp) and r.status == 200):
                        continue
                    with lock:
                        state["acked"] += 1
                        if state["acked"] == n // 2:
                            fp.set_mode("pass")
                    if i % 10 == 0:  # the same key again: same answer
                        r2, _ = sender.send(box, key, body)
                        with lock:
                            state["resent"] += 1
                        if not (isinstance(r2, Resp) and r2.status == 200):
                            resend_bad.append((key, "no 200", r2))
                        elif (r2.json()["transaction_id"] !=
                              r.json()["transaction_id"] or
                              raw_number(r2.body, "balance") !=
                              raw_number(r.body, "balance")):
                            resend_bad.append((key, r.text, r2.text))
            finally:
                if box[0] is not None:
                    box[0].close()

        kills = {"balance-manager": 0, "audit-logger": 0}
        killer_errors = []
        stop_killer = threading.Event()

        def killer():
            krng = random.Random(77)
            step = max(1, n // 8)
            next_at = time.monotonic() + krng.uniform(1.0, 2.0)
            next_progress = step
            cycle = 0
            try:
                while not stop_killer.is_set():
                    with lock:
                        progress = state["acked"]
                    # every 1-2 s, and at least every n/8 transactions
                    if time.monotonic() < next_at and \
                            progress < next_progress:
                        stop_killer.wait(0.02)
                        continue
                    next_progress = progress + step
                    cycle += 1
                    groups = [("balance-manager", "bm", bms)]
                    if cycle % 3 == 0:
                        groups.append(("audit-logger", "audit", audits))
                    for group, short, replicas in groups:
                        idx = krng.randrange(len(replicas))
                        old = replicas[idx]
                        if not self.kill9(old):
                            killer_errors.append(
                                "%s exited by itself (code %s) before it "
                                "was killed\n%s" %
                                (old.tag, old.popen.returncode, old.tail()))
                            return
                        kills[group] += 1
                        stop_killer.wait(krng.uniform(0.0, 0.3))  # down
                        replicas[idx] = self.restart(
                            old, "%s%d.r%d" % (short, idx, kills[group]))
                    next_at = time.monotonic() + krng.uniform(1.0, 2.0)
            except Exception:  # noqa: BLE001 - reported by the test
                killer_errors.append(traceback.format_exc())

        kth = threading.Thread(target=killer, daemon=True)
        kth.start()
        ths = [threading.Thread(target=worker, daemon=True)
               for _ in range(threads)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(max(0.0, sender.deadline - time.monotonic()) + T(35))
        load_s = time.monotonic() - t0
        stop_killer.set()
        kth.join(T(40))
        fp.set_mode("pass")
        self.assertFalse(any(t.is_alive() for t in ths),
                         "client threads still running")
        self.assertFalse(kth.is_alive(), "killer still restarting")
        self.assertEqual(killer_errors, [], "killer thread failed")

        unacked = [(jobs[i][0], results[i]) for i in range(n)
                   if results[i] is None or not isinstance(
                       results[i][0], Resp) or results[i][0].status != 200]
        self.assertEqual(unacked[:3], [], "%d of %d transactions got no 200 "
                         "within %.0fs (outcomes: %s)%s" %
                         (len(unacked), n, load_s, dict(sender.hist),
                          sender.why()))
        self.assertEqual(resend_bad[:3], [], "a re-sent key got another "
                         "answer (%d of %d)" % (len(resend_bad),
                                                state["resent"]))

        tid = {}  # key -> transaction id
        expected = collections.Counter()
        for (key, acc, cents), (r, _) in zip(jobs, results):
            tid[key] = r.json()["transaction_id"]
            expected[acc] += cents
        self.assertEqual(len(set(tid.values())), n,
                         "two keys got the same transaction id")

        for p in bms + audits:
            self.assertTrue(p.alive(), "%s died\n%s" % (p.tag, p.tail()))
            p.wait_ready(T(20))

        # balances: every replica, and the table
        for p in bms:
            for acc in accounts:
                self.assertBalanceIs(p.port, acc, expected[acc], p.tag)
        got = {a: int(c) for a, c in
               psql(bm_db, "SELECT account, cents FROM accounts")}
        self.assertEqual(got, dict(expected), "accounts table")

        # entries: one row per transaction id and nothing else
        want = {tid[k]: (acc, cents) for k, acc, cents in jobs}
        have = {k: (a, int(c)) for k, a, c in
                psql(bm_db, "SELECT key, account, cents FROM entries")}
        self.assertEqual(int(psql_value(bm_db,
                                        "SELECT count(*) FROM entries")),
                         len(have))
        self.assertEqual(sorted(set(want) - set(have))[:5], [],
                         "applied transactions missing from entries")
        self.assertEqual(sorted(set(have) - set(want))[:5], [],
                         "entries rows for no acknowledged transaction")
        wrong = [(k, want[k], have[k]) for k in want
                 if k in have and have[k] != want[k]]
        self.assertEqual(wrong[:5], [], "entries with the wrong amount")

        st, rs = fp.stats(), bm_rr.stats()
        retries = sum(sender.hist.values()) - sender.hist[200]
        sys.stderr.write(
            "\n[BankTest] %d transactions (%d keys re-sent) over %d accounts "
            "in %.1fs with %d client threads; client retries %d (answers "
            "%s); kills: balance-manager %d, audit-logger %d; faults "
            "injected %d of %d calls %s; balance-manager rrproxy: %d "
            "refused connects skipped, %d 502 mid-request\n" %
            (n, state["resent"], len(accounts), load_s, threads, retries,
             dict(sender.hist), kills["balance-manager"],
             kills["audit-logger"],
             st["faults"], st["requests"], st["by_fault"], rs["refused"],
             rs["bad_gateway"]))
        self.assertGreaterEqual(kills["balance-manager"], min_kills, kills)
        self.assertGreaterEqual(kills["audit-logger"], 1, kills)
        self.assertGreater(st["faults"], 0, st)

        # the outbox drains: every audit delivered, once
        drain_s = self.wait_outbox_empty(bm_db, T(45))
        sys.stderr.write("[BankTest] outbox drained %.1fs after the load\n"
                         % drain_s)
        # audit_log: exactly one row per update
        audit_rows = psql(au_db, "SELECT key, action, details FROM audit_log")
        akeys = collections.Counter(r[0] for r in audit_rows)
        awant = {"audit-" + t: want[t] for t in want}
        self.assertEqual(sorted(set(awant) - set(akeys))[:5], [],
                         "updates without an audit_log row (%d of %d)" %
                         (len(set(awant) - set(akeys)), n))
        self.assertEqual(sorted(set(akeys) - set(awant))[:5], [],
                         "audit_log rows for no update")
        self.assertEqual(len(audit_rows), n)
        for key, action, details in audit_rows:
            self.assertEqual(action, "balance_update", key)
            d = json.loads(details, parse_float=Decimal)
            self.assertEqual((d.get("account"),
                              to_cents(str(d.get("amount")))),
                             awant[key], "audit details of %s: %s" %
                             (key, details))


# ---------------------------------------------------------------------------
# b. SQLite: kill -9 mid-run, the file stays whole
# ---------------------------------------------------------------------------
class SqliteKillTest(DurableCase):

    def test_kill9_mid_run_applies_each_key_once(self):
        """balance-manager on sqlite:<tmp>/bm.db (audit-logger on its own
        file): keyed updates from 4 threads, balance-manager SIGKILLed 5
        times mid-run and restarted on the same file and port, each update
        retried until answered.  Then balances equal sums, each key is
        applied once, each audit recorded once, both files in WAL mode and
        PRAGMA integrity_check ok."""
        n = scaled(600, 150)
        n_kills = 5
        accounts = ["SQ-%d" % i for i in range(5)]
        rng = random.Random(99)
        run = uuid.uuid4().hex[:8]
        jobs = [("sq-%s-%04d" % (run, i), rng.choice(accounts),
                 rng.randint(-3000, 9000)) for i in range(n)]
        bm_db = os.path.join(self.logdir, "bm.db")
        au_db = os.path.join(self.logdir, "audit.db")
        audit = self.spawn("audit-logger", {"ZC_STORE_URL": "sqlite:" + au_db})
        bm = self.spawn("balance-manager", {
            "ZC_STORE_URL": "sqlite:" + bm_db, "AUDIT_LOGGER_URL": audit.url,
            "AUDIT_LOGGER_BREAKER_FAILURES": 0}, tag="bm")
        current = [bm]
        port = bm.port  # every restart takes the same port

        lock = threading.Lock()
        results = [None] * n
        state = {"next": 0, "acked": 0}
        t0 = time.monotonic()
        sender = Sender(port, "/update", t0 + T(50), T(35))

        def worker():
            box = [None]
            try:
                while not sender.abort.is_set():
                    with lock:
                        i = state["next"]
                        state["next"] += 1
                    if i >= n:
                        return
                    key, acc, cents = jobs[i]
                    results[i] = sender.send(box, key, body_of(acc, cents))
                    with lock:
                        state["acked"] += 1
            finally:
                if box[0] is not None:
                    box[0].close()

        killer_errors = []
        kills = [0]

        def killer():
            try:
                for k in range(1, n_kills + 1):
                    # kill when k/(n_kills+1) of the updates are answered,
                    # so every kill lands mid-run whatever the speed
                    while True:
                        with lock:
                            if state["acked"] >= k * n // (n_kills + 1):
                                break
                        if sender.abort.is_set() or \
                                time.monotonic() >= sender.deadline:
                            return
                        time.sleep(0.005)
                    old = current[0]
                    if not self.kill9(old):
                        killer_errors.append("%s exited by itself (code %s)"
                                             "\n%s" % (old.tag,
                                                       old.popen.returncode,
                                                       old.tail()))
                        return
                    kills[0] += 1
                    current[0] = self.restart(old, "bm.r%d" % k)
            except Exception:  # noqa: BLE001 - reported by the test
                killer_errors.append(traceback.format_exc())

        kth = threading.Thread(target=killer, daemon=True)
        kth.start()
        ths = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(max(0.0, sender.deadline - time.monotonic()) + T(35))
        kth.join(T(30))
        load_s = time.monotonic() - t0
        self.assertFalse(any(t.is_alive() for t in ths + [kth]))
        self.assertEqual(killer_errors, [])
        bad = [(jobs[i][0], r) for i, r in enumerate(results)
               if r is None or not isinstance(r[0], Resp) or
               r[0].status != 200]
        self.assertEqual(bad[:3], [], "%d of %d updates got no 200 (%s)%s" %
                         (len(bad), n, dict(sender.hist), sender.why()))
        self.assertEqual(kills[0], n_kills)

        self.assertTrue(os.path.exists(bm_db), "no SQLite file at %s: "
                        "ZC_STORE_URL not used?" % bm_db)
        expected = collections.Counter()
        for _, acc, cents in jobs:
            expected[acc] += cents
        bm = current[0]
        self.assertTrue(bm.alive(), bm.tail())
        for acc in accounts:
            self.assertBalanceIs(bm.port, acc, expected[acc])
        # a few keys again: replayed, not applied
        for key, acc, cents in jobs[:5]:
            r = update(bm.port, acc, cents, key=key)
            self.assertStatus(r, 200)
            self.assertTrue(replayed(r), "not a replay: %r" % r)

        # the outbox drains (read while balance-manager runs: WAL readers
        # do not block the writer)
        def outbox_left():
            try:
                return sqlite_ro(bm_db, "SELECT count(*) FROM zc_outbox")[0][0]
            except sqlite3.Error as e:
                return str(e)
        left = poll_value(outbox_left, lambda v: v == 0, T(45))
        drain_msg = None
        if left != 0:
            try:
                detail = sqlite_ro(bm_db, "SELECT state, count(*), "
                                   "max(attempts), max(last_error) FROM "
                                   "zc_outbox GROUP BY state")
            except sqlite3.Error as e:
                detail = str(e)
            drain_msg = ("zc_outbox not drained after %.0fs: %r; by state "
                         "(state, rows, max attempts, an error): %r" %
                         (T(45), left, detail))
        self.assertEqual(bm.stop(), 0)
        self.assertEqual(audit.stop(), 0)

        # the files, with nothing running
        for path in (bm_db, au_db):
            self.assertEqual(sqlite_ro(path, "PRAGMA integrity_check"),
                             [("ok",)], path)
            self.assertEqual(sqlite_ro(path, "PRAGMA journal_mode"),
                             [("wal",)], path)
        got = dict(sqlite_ro(bm_db, "SELECT account, cents FROM accounts"))
        self.assertEqual(got, dict(expected), "accounts")
        entries = sqlite_ro(bm_db, "SELECT key, account, cents FROM entries")
        self.assertEqual(len(entries), n, "one entry per key")
        self.assertEqual({k: (a, c) for k, a, c in entries},
                         {k: (a, c) for k, a, c in jobs})
        if drain_msg:
            self.fail(drain_msg)
        self.assertEqual(sqlite_ro(bm_db, "SELECT count(*) FROM zc_outbox"),
                         [(0,)])
        arows = sqlite_ro(au_db, "SELECT key, action, details FROM audit_log")
        self.assertEqual(sorted(r[0] for r in arows),
                         sorted("audit-" + k for k, _, _ in jobs),
                         "one audit_log row per update")
        sys.stderr.write(
            "\n[SqliteKillTest] %d updates in %.1fs, %d kill -9, client "
            "outcomes %s\n" % (n, load_s, kills[0], dict(sender.hist)))


def poll_value(fn, ok, timeout, interval=0.05):
    """Call fn until ok(value) or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if ok(v) or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------
# c. A restart keeps the state
# ---------------------------------------------------------------------------
class RestartKeepsState(DurableCase):

    def check_restart(self, env, where):
        """Update, SIGTERM, start again: the balance is still there and a
        retried key is replayed.  where: a path the startup log's state
        line must name."""
        fake = self.fake_audit()
        env = dict(env, AUDIT_LOGGER_URL=fake.url)
        def start(tag):
            if env.get("ZC_STORE_URL") is None:
                return self.spawn_unset_store("balance-manager", env, tag)
            return self.spawn("balance-manager", env, tag=tag)
        bm = start("bm")
        r1 = update(bm.port, "RKS-1", 1234, key="rks-1")
        self.assertStatus(r1, 200)
        self.assertExactMoney(r1, "new_balance", 1234)
        self.assertBalanceIs(bm.port, "RKS-1", 1234)
        lines = state_lines(bm.stderr_text())
        self.assertTrue([l for l in lines if where in l],
                        "no start-up line saying the state is in %s: %r" %
                        (where, lines))
        self.assertEqual(bm.stop(), 0, "exit code after SIGTERM")

        bm2 = start("bm.2")
        self.assertBalanceIs(bm2.port, "RKS-1", 1234, "after the restart")
        r2 = update(bm2.port, "RKS-1", 1234, key="rks-1")
        self.assertStatus(r2, 200)
        self.assertTrue(replayed(r2), "retried key applied again after the "
                        "restart: %r" % r2)
        self.assertEqual(r2.body, r1.body)
        self.assertBalanceIs(bm2.port, "RKS-1", 1234, "after the replay")
        r3 = update(bm2.port, "RKS-1", -34, key="rks-2")
        self.assertStatus(r3, 200)
        self.assertFalse(replayed(r3))
        self.assertExactMoney(r3, "new_balance", 1200)
        self.assertBalanceIs(bm2.port, "RKS-1", 1200)
        r = get_account(bm2.port, "RKS-NOBODY")
        self.assertJsonError(r, 404, "unknown account")
        self.assertEqual(bm2.stop(), 0)

    def test_default_store_under_tmpdir(self):
        tmp = os.path.join(self.logdir, "tmpdir")
        os.makedirs(tmp)
        self.check_restart({"ZC_STORE_URL": None, "TMPDIR": tmp}, tmp)
        files = os.listdir(tmp)
        self.assertTrue([f for f in files if "balance-manager" in f],
                        "no file named for the function in $TMPDIR: %r" %
                        files)

    def test_sqlite_path(self):
        path = os.path.join(self.logdir, "state", "bm.db")
        os.makedirs(os.path.dirname(path))
        self.check_restart({"ZC_STORE_URL": "sqlite:" + path}, path)
        self.assertTrue(os.path.exists(path))
        self.assertEqual(sqlite_ro(path, "PRAGMA integrity_check"),
                         [("ok",)])


# ---------------------------------------------------------------------------
# d. The database goes away and comes back
# ---------------------------------------------------------------------------
class StoreDownTest(PgCase):

    def test_database_down_is_503_then_recovers_without_restart(self):
        """PostgreSQL paused under a running balance-manager: /update and
        GET /accounts answer 503 + Retry-After + JSON error, readiness 503,
        the process stays up.  Resumed: readiness 200 within a few seconds,
        updates succeed, and the update that got 503 was not applied (its
        retry applies it, once)."""
        db = self.new_db("down_bm")
        fake = self.fake_audit()
        bm = self.spawn("balance-manager", {"ZC_STORE_URL": db,
                                            "AUDIT_LOGGER_URL": fake.url})
        pid = bm.pid
        self.assertStatus(update(bm.port, "DOWN-1", 1000, key="down-k1"), 200)
        self.assertTables(db, ["accounts", "entries"], "balance-manager")

        self.pg.pause()
        try:
            t0 = time.monotonic()
            r = update(bm.port, "DOWN-1", 500, key="down-k2", timeout=T(20))
            took = time.monotonic() - t0
            self.assertJsonError(r, 503, "update with the database down")
            self.assertRetryAfter(r, "update with the database down")
            self.assertLess(took, T(10), "the 503 took %.1fs" % took)
            r = get_account(bm.port, "DOWN-1", timeout=T(20))
            self.assertJsonError(r, 503, "GET /accounts with the database "
                                 "down")
            self.assertRetryAfter(r, "GET /accounts, database down")
            last = poll_value(lambda: readiness(bm.port),
                              lambda s: s == 503, T(10))
            self.assertEqual(last, 503, "readiness with the database down")
            r = request(bm.port, "GET", "/health/liveness")
            self.assertStatus(r, 200, "liveness: a restart would not help")
            self.assertTrue(bm.alive(), "exited with the database down\n" +
                            bm.tail())
        finally:
            if self.pg.paused:
                self.pg.resume()

        t0 = time.monotonic()
        last = poll_value(lambda: readiness(bm.port), lambda s: s == 200,
                          T(15))
        self.assertEqual(last, 200, "readiness %.1fs after the database "
                         "came back" % (time.monotonic() - t0))
        back_s = time.monotonic() - t0
        self.assertLess(back_s, T(10))
        self.assertEqual(bm.pid, pid)
        self.assertTrue(bm.alive())

        r = update(bm.port, "DOWN-1", 1, key="down-k3")
        self.assertStatus(r, 200, "first update after the database is back")
        self.assertExactMoney(r, "new_balance", 1001)
        self.assertBalanceIs(bm.port, "DOWN-1", 1001)
        rows = psql(db, "SELECT key, cents FROM entries ORDER BY key")
        self.assertEqual(rows, [["down-k1", "1000"], ["down-k3", "1"]],
                         "the update answered 503 was applied (or another "
                         "was lost)")
        self.assertEqual(psql(db, "SELECT cents FROM accounts WHERE "
                              "account = 'DOWN-1'"), [["1001"]])
        # the key that got a 503 was not recorded: its retry applies it
        r = update(bm.port, "DOWN-1", 500, key="down-k2")
        self.assertStatus(r, 200)
        self.assertFalse(replayed(r), "a 503 was stored as the answer")
        self.assertExactMoney(r, "new_balance", 1501)
        self.assertEqual(psql(db, "SELECT sum(cents)::text, "
                              "(SELECT cents FROM accounts "
                              "WHERE account = 'DOWN-1')::text "
                              "FROM entries WHERE account = 'DOWN-1'"),
                         [["1501", "1501"]])
        sys.stderr.write("\n[StoreDownTest] readiness back %.2fs after "
                         "PostgreSQL resumed\n" % back_s)


# ---------------------------------------------------------------------------
# e. One key, two replicas, at the same time
# ---------------------------------------------------------------------------
class SameKeyTwoReplicas(PgCase):

    def test_concurrent_duplicates_apply_once(self):
        """Two balance-manager replicas on one database; for each of 20
        keys, 8 requests with that key and body (4 per replica) released
        together: every answer is the 200 (first or replayed, one body) or
        409 with Retry-After; the money moves once; entries has one row
        per key; a later retry is a replay."""
        db = self.new_db("samekey_bm")
        fake = self.fake_audit()
        env = {"ZC_STORE_URL": db, "AUDIT_LOGGER_URL": fake.url}
        reps = [self.spawn("balance-manager", env, tag="bm%d" % i,
                           wait=False) for i in range(2)]
        for p in reps:
            p.wait_ready(T(20))
        n_keys, per_key = 20, 8
        accounts = ["SK-A", "SK-B", "SK-C"]
        rng = random.Random(5)
        run = uuid.uuid4().hex[:8]
        keys = [("sk-%s-%02d" % (run, k), accounts[k % 3],
                 rng.randint(-2000, 9000)) for k in range(n_keys)]
        statuses = collections.Counter()
        firsts = {}

        for key, acc, cents in keys:
            barrier = threading.Barrier(per_key)
            out = [None] * per_key

            def one(j):
                c = http.client.HTTPConnection(
                    "127.0.0.1", reps[j % 2].port, timeout=T(20))
                try:
                    c.connect()
                    barrier.wait(T(10))
                    out[j] = update(reps[j % 2].port, acc, cents, key=key,
                                    conn=c)
                except Exception as e:  # noqa: BLE001 - checked below
                    out[j] = e
                finally:
                    c.close()
            ths = [threading.Thread(target=one, args=(j,), daemon=True)
                   for j in range(per_key)]
            for t in ths:
                t.start()
            for t in ths:
                t.join(T(30))
            self.assertFalse(any(t.is_alive() for t in ths))
            oks = []
            for j, r in enumerate(out):
                self.assertIsInstance(r, Resp, "key %s request %d: %r" %
                                      (key, j, r))
                statuses[r.status] += 1
                if r.status == 200:
                    oks.append(r)
                elif r.status == 409:
                    self.assertJsonError(r, 409)
                    self.assertRetryAfter(r, "409 for a key in flight")
                else:
                    self.fail("key %s: %r (only 200 or 409 expected)" %
                              (key, r))
            self.assertTrue(oks, "key %s: no request got 200" % key)
            self.assertEqual({r.body for r in oks}, {oks[0].body},
                             "key %s: different 200 bodies" % key)
            self.assertLessEqual(sum(1 for r in oks if not replayed(r)), 1,
                                 "key %s: two fresh 200s" % key)
            firsts[key] = oks[0]

        expected = collections.Counter()
        for key, acc, cents in keys:
            expected[acc] += cents
            for p in reps:  # a later retry, on either replica: a replay
                r = update(p.port, acc, cents, key=key)
                self.assertStatus(r, 200)
                self.assertTrue(replayed(r), r)
                self.assertEqual(r.body, firsts[key].body)
        for p in reps:
            for acc in accounts:
                self.assertBalanceIs(p.port, acc, expected[acc], p.tag)
        rows = psql(db, "SELECT key, count(*) FROM entries GROUP BY key")
        self.assertEqual(sorted((k, int(c)) for k, c in rows),
                         sorted((k, 1) for k, _, _ in keys))
        sys.stderr.write("\n[SameKeyTwoReplicas] %d keys x %d requests: "
                         "statuses %s\n" % (n_keys, per_key, dict(statuses)))


# ---------------------------------------------------------------------------
# f. Bad and unreachable store URLs
# ---------------------------------------------------------------------------
class BadStoreUrl(DurableCase):

    def test_malformed_url_exits_nonzero_naming_the_variable(self):
        cases = [("balance-manager", "mysql://x"),
                 ("balance-manager", "sqlite:"),
                 ("balance-manager", "postgres://%zz@127.0.0.1/db"),
                 ("balance-manager",
                  "postgresql://127.0.0.1:5432/db?no_such_option=1"),
                 ("audit-logger", "mysql://x"),
                 ("balance-manager", "mysql://zc:s3cret-pw@db/x")]
        for name, url in cases:
            with self.subTest(function=name, url=url):
                p = self.spawn(name, {"ZC_STORE_URL": url}, wait=False)
                rc = p.wait(T(3))
                if rc is None:
                    p.stop()  # not left running for the next case
                self.assertIsNotNone(rc, "%s still running %.0fs after "
                                     "start with ZC_STORE_URL=%s\n%s" %
                                     (name, T(3), url, p.tail()))
                self.assertNotEqual(rc, 0, p.tail())
                self.assertGreater(rc, 0, "killed by a signal\n" + p.tail())
                self.assertIn("ZC_STORE_URL", p.stderr_text(), p.tail())
                self.assertNotIn("s3cret-pw", p.stderr_text(),
                                 "the password was logged")

    def test_unreachable_database_stays_up_and_answers_503(self):
        port = free_port()
        url = ("postgresql://zc:s3cret-pw@127.0.0.1:%d/bm?connect_timeout=2"
               % port)
        bm = self.spawn("balance-manager", {"ZC_STORE_URL": url},
                        wait=False)
        last = poll_value(
            lambda: readiness(bm.port), lambda s: s == 503 or not bm.alive(),
            T(10))
        self.assertTrue(bm.alive(), "exited with an unreachable database\n"
                        + bm.tail())
        self.assertEqual(last, 503, "readiness")
        r = update(bm.port, "UNREACH", 100, key="unreach-1", timeout=T(15))
        self.assertJsonError(r, 503)
        self.assertRetryAfter(r, "update, database unreachable")
        self.assertEqual(readiness(bm.port), 503)
        self.assertTrue(bm.alive())
        text = bm.stderr_text()
        self.assertNotIn("s3cret-pw", text, "the password was logged")
        lines = [l for l in state_lines(text) if "127.0.0.1:%d" % port in l]
        self.assertTrue(lines, "no start-up line saying where the state "
                        "lives (the masked URL)\n" + bm.tail())


def readiness(port):
    try:
        return request(port, "GET", "/health/readiness", timeout=T(2)).status
    except (OSError, http.client.HTTPException):
        return None


# ---------------------------------------------------------------------------
# g. A function without state loads no database library
# ---------------------------------------------------------------------------
class StatelessLoadsNothing(DurableCase):

    def test_transaction_processor_maps_no_store_library(self):
        def fake_bm(method, path, body):
            acc = json.loads(body).get("account", "?")
            return json_reply({"status": "updated", "new_balance": 1.5,
                               "account": acc})
        fake = self.fake(responder=fake_bm)
        for label, extra in (("unset", {}),
                             ("sqlite", {"ZC_STORE_URL": "sqlite:%s"})):
            with self.subTest(store=label):
                tmp = os.path.join(self.logdir, "tmp-" + label)
                os.makedirs(tmp)
                env = {"BALANCE_MANAGER_URL": fake.url, "TMPDIR": tmp,
                       "ZC_STORE_URL": None}
                for k, v in extra.items():
                    env[k] = v % os.path.join(tmp, "tp.db")
                if "ZC_STORE_URL" in extra:
                    tp = self.spawn("transaction-processor", env,
                                    tag="tp-" + label)
                else:
                    tp = self.spawn_unset_store("transaction-processor",
                                                env, "tp-" + label)
                r = transaction(tp.port, "SL-1", 150, key="sl-" + label)
                self.assertStatus(r, 200)
                with open("/proc/%d/maps" % tp.pid) as f:
                    maps = f.read()
                libs = sorted({l.split()[-1] for l in maps.splitlines()
                               if "libsqlite3" in l or "libpq" in l})
                self.assertEqual(libs, [], "transaction-processor mapped "
                                 "store libraries")
                self.assertEqual(os.listdir(tmp), [],
                                 "transaction-processor created files")
                self.assertEqual(tp.stop(), 0)


# ---------------------------------------------------------------------------
# h. transaction-processor honours Idempotency-Key
# ---------------------------------------------------------------------------
class TransactionIdempotencyKey(DurableCase):

    def test_same_key_same_transaction_on_any_replica(self):
        """Two transaction-processor replicas (stateless) in front of one
        balance-manager: the same Idempotency-Key, sent to each, gets the
        same transaction_id and balance and moves the money once; without
        a key every request is a new transaction."""
        audit = self.spawn("audit-logger", {
            "ZC_STORE_URL": "sqlite:" + os.path.join(self.logdir, "a.db")})
        bm = self.spawn("balance-manager", {
            "ZC_STORE_URL": "sqlite:" + os.path.join(self.logdir, "bm.db"),
            "AUDIT_LOGGER_URL": audit.url})
        tps = [self.spawn("transaction-processor",
                          {"BALANCE_MANAGER_URL": bm.url}, tag="tp%d" % i)
               for i in range(2)]
        r1 = transaction(tps[0].port, "TIK-1", 1234, key="tik-key-1")
        self.assertStatus(r1, 200)
        self.assertExactMoney(r1, "balance", 1234)
        for tp in tps:
            r = transaction(tp.port, "TIK-1", 1234, key="tik-key-1")
            self.assertStatus(r, 200, tp.tag)
            self.assertEqual(r.json()["transaction_id"],
                             r1.json()["transaction_id"], tp.tag)
            self.assertExactMoney(r, "balance", 1234)
        self.assertBalanceIs(bm.port, "TIK-1", 1234, "moved once")

        r2 = transaction(tps[1].port, "TIK-1", 100, key="tik-key-2")
        self.assertStatus(r2, 200)
        self.assertNotEqual(r2.json()["transaction_id"],
                            r1.json()["transaction_id"])
        self.assertExactMoney(r2, "balance", 1334)

        ids = set()
        for tp in tps:
            r = transaction(tp.port, "TIK-1", 1)
            self.assertStatus(r, 200)
            ids.add(r.json()["transaction_id"])
        self.assertEqual(len(ids), 2, "no key: two transactions")
        self.assertNotIn(r1.json()["transaction_id"], ids)
        self.assertBalanceIs(bm.port, "TIK-1", 1336)
