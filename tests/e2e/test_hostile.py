"""Hostile input against the running chain (issue 6): malformed, truncated,
huge and deeply nested JSON, invalid UTF-8, duplicate keys, amounts that are
not money, wrong content types, header floods, oversized headers, strange
request lines, methods and paths, lying lengths, chunked bodies that lie,
pipelining, slowloris clients and clients that vanish mid-body.

Every case asserts the exact status (and whether the body is the runtime's
JSON or libmicrohttpd's own HTML), then - in a cleanup that every test runs -
that all three functions still answer /health/liveness, that the victim
account's balance read through the chain is unchanged, that every trace id
logged is well formed, and that no sanitizer wrote a report.

Most cases share one chain (started once per class, restarted if a case
killed it); slowloris and disconnect cases get their own balance-manager
with short timeouts.  Raw sockets throughout (hostile_net.py).

Behaviour that is pinned rather than ideal is marked PINNED.  Cases marked
FOUND failed on the runtime as it was when the suite was written (35891b1)
and pass since the fixes made for them; the comment says what went wrong.
"""
import json
import os
import re
import socket
import time
import uuid

import harness
from harness import E2ETestCase, T, fmt_cents, raw_number, request, send_large
from hostile_net import (EOF, RESET, Trickler, build, exchange, post_json,
                         send_and_close)

BM, TP, AL = "balance-manager", "transaction-processor", "audit-logger"
VICTIM = "HOSTILE-VICTIM"
SEED_CENTS = 10000  # 100.00, put there through the chain at start
MIB = 1 << 20

HTML_MARK = b"<html>"
TRACE_ID = re.compile(r"trace_id=(\S+)")


def money_body(amount_text, account=VICTIM):
    """{"account":...,"amount":<amount_text verbatim>} as bytes."""
    if isinstance(amount_text, str):
        amount_text = amount_text.encode()
    acc = account if isinstance(account, bytes) else \
        json.dumps(account).encode()
    return b'{"account":' + acc + b',"amount":' + amount_text + b'}'


def fresh_key():
    return "hostile-" + uuid.uuid4().hex


# ---------------------------------------------------------------------------
# The shared chain
# ---------------------------------------------------------------------------
class Chain:
    """audit-logger <- balance-manager <- transaction-processor, wired
    together, with VICTIM seeded to SEED_CENTS through the chain's entry."""

    def __init__(self, logdir, generation):
        self.logdir = logdir
        self.procs = {}
        tag = "hostile%d" % generation

        def spawn(name, env):
            port = harness.free_port()
            e = harness.base_env()
            # A short idle timeout: connections the tests leave half-open
            # are gone before the chain is stopped at the end.
            e.update({"PORT": str(port), "ZC_LISTEN_ADDRESS": "127.0.0.1",
                      "ZC_IDLE_TIMEOUT_S": "3",
                      "AUDIT_LOGGER_URL": harness.dead_url(),
                      "BALANCE_MANAGER_URL": harness.dead_url()})
            e.update(env)
            p = harness.Proc(name, port, e, logdir, tag="%s-%s" % (tag, name))
            p.start()
            self.procs[name] = p
            return p

        audit = spawn(AL, {})
        audit.wait_ready()
        bal = spawn(BM, {"AUDIT_LOGGER_URL": audit.url})
        bal.wait_ready()
        txn = spawn(TP, {"BALANCE_MANAGER_URL": bal.url,
                         "AUDIT_LOGGER_URL": audit.url})
        txn.wait_ready()
        r = request(txn.port, "POST", "/transaction",
                    {"account": VICTIM, "amount": SEED_CENTS // 100})
        if r.status != 200:
            raise AssertionError("seeding %s through the chain: %r\n%s" %
                                 (VICTIM, r, self.tails()))

    def port(self, name):
        return self.procs[name].port

    dirty = False  # a case changed the victim's balance: start afresh

    def healthy(self):
        return not self.dirty and all(
            p.alive() and p.sanitizer_report() is None
            for p in self.procs.values())

    def tails(self):
        return "\n".join(p.tail() for p in self.procs.values())

    def stop(self):
        for p in self.procs.values():
            p.stop()
        return {n: p for n, p in self.procs.items() if p.killed}


class HostileCase(E2ETestCase):
    """Base: checks survival after every test.  Subclasses using the shared
    chain set uses_chain; others register their own balance-manager with
    self.guard(proc)."""

    uses_chain = False
    _chain = None
    _generation = 0
    _retired = []  # earlier chains, for the sanitizer check at the end

    @classmethod
    def setUpClass(cls):
        cls._chain = None
        cls._retired = []

    @classmethod
    def tearDownClass(cls):
        chains = list(cls._retired)
        if cls._chain is not None:
            chains.append(cls._chain)
        cls._chain = None
        problems = []
        for ch in chains:
            killed = ch.stop()
            if killed:
                problems.append("needed SIGKILL after SIGTERM: %s" %
                                ", ".join(killed))
            for name, p in ch.procs.items():
                rep = p.sanitizer_report()
                if rep:
                    problems.append("%s (%s):\n%s" % (name, p.err_path, rep))
        if problems:
            raise AssertionError("shared hostile chain at exit:\n" +
                                 "\n".join(problems))

    def setUp(self):
        super().setUp()
        self.guarded = []   # (proc, expected victim cents or None)
        if self.uses_chain:
            cls = type(self)
            if cls._chain is None or not cls._chain.healthy():
                if cls._chain is not None:
                    cls._retired.append(cls._chain)
                HostileCase._generation += 1
                logdir = os.path.join(harness.CONFIG["tmpdir"], "hostile-chain")
                os.makedirs(logdir, exist_ok=True)
                cls._chain = Chain(logdir, HostileCase._generation)
            self.chain = cls._chain
            self.expected_cents = SEED_CENTS
        # Runs before E2ETestCase._cleanup (cleanups are LIFO).
        self.addCleanup(self._survives)

    # -- ports ------------------------------------------------------------
    @property
    def bm(self):
        return self.chain.port(BM)

    @property
    def tp(self):
        return self.chain.port(TP)

    @property
    def al(self):
        return self.chain.port(AL)

    def guard(self, proc, victim_cents=None):
        """Check proc's survival (and its victim balance) after the test."""
        self.guarded.append((proc, victim_cents))

    def _cleanup(self):
        try:
            super()._cleanup()
        finally:
            # run.py prints test.procs' logs for a failed test: show the
            # shared chain's too (added only now, so it is not stopped)
            if self.uses_chain:
                self.procs.extend(self.chain.procs.values())

    # -- survival ---------------------------------------------------------
    def _survives(self):
        if self.uses_chain:
            for name, p in self.chain.procs.items():
                self._alive(p, name)
            # the balance, read through the whole chain with amount 0
            r = request(self.tp, "POST", "/transaction",
                        {"account": VICTIM, "amount": 0}, timeout=T(10))
            if r.status != 200 or raw_number(r.body, "balance") != \
                    fmt_cents(self.expected_cents):
                self.chain.dirty = True
            self.assertEqual(r.status, 200, "reading the balance through "
                             "the chain: %r\n%s" % (r, self.chain.tails()))
            self.assertEqual(raw_number(r.body, "balance"),
                             fmt_cents(self.expected_cents),
                             "victim balance changed: %r" % r)
            for name, p in self.chain.procs.items():
                self._clean(p, name)
        for p, cents in self.guarded:
            self._alive(p, p.tag)
            if cents is not None:
                r = request(p.port, "POST", "/update",
                            {"account": VICTIM, "amount": 0},
                            headers={"Idempotency-Key": fresh_key()})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(raw_number(r.body, "new_balance"),
                                 fmt_cents(cents),
                                 "victim balance changed: %r" % r)
            self._clean(p, p.tag)

    def _alive(self, p, name):
        self.assertTrue(p.alive(), "%s died (exit %s)\n%s" %
                        (name, p.popen.poll(), p.tail()))
        r = request(p.port, "GET", "/health/liveness", timeout=T(5))
        self.assertEqual(r.status, 200, "%s liveness: %r" % (name, r))
        self.assertEqual(r.json(), {"status": "alive"})

    def _clean(self, p, name):
        rep = p.sanitizer_report()
        self.assertIsNone(rep, "%s: sanitizer report:\n%s" % (name, rep))
        for tid in TRACE_ID.findall(p.stderr_text()):
            self.assertRegex(tid, r"^[0-9a-f]{32}$",
                             "%s logged a malformed trace id" % name)

    # -- assertions on one exchange ---------------------------------------
    def assertJsonAnswer(self, ex, status, contains=None):
        """Exactly one response with this status and a runtime JSON error
        (or, for 2xx, a JSON object)."""
        r = ex.resp
        self.assertIsNotNone(r, "no response: %r" % ex)
        self.assertEqual(r.status, status, "%r" % ex)
        if status == 204:
            self.assertEqual(r.body, b"")
            return None
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        doc = json.loads(r.body)
        self.assertIsInstance(doc, dict, r)
        if status >= 400:
            self.assertIsInstance(doc.get("error"), str, r)
        if contains is not None:
            self.assertIn(contains, r.text, r)
        return doc

    def assertHtmlAnswer(self, ex, status, contains=None):
        """libmicrohttpd's own answer: this status, an HTML body, no
        Content-Type, and the connection closed."""
        r = ex.resp
        self.assertIsNotNone(r, "no response: %r" % ex)
        self.assertEqual(r.status, status, "%r" % ex)
        self.assertIsNone(r.header("Content-Type"), r)
        self.assertIn(HTML_MARK, r.body + ex.leftover, r)
        self.assertEqual((r.header("Connection") or "").lower(), "close", r)
        if contains is not None:
            self.assertIn(contains, r.body + ex.leftover, r)
        self.assertIn(ex.end, (EOF, RESET), "connection left open: %r" % ex)

    def assertNoAnswer(self, ex):
        """Closed without a response."""
        self.assertEqual(ex.responses, [], "%r" % ex)
        self.assertIn(ex.end, (EOF, RESET), "%r" % ex)

    def assertVictimBalance(self, ex, cents=None):
        """A 200 from /update that left the victim at its balance."""
        doc = self.assertJsonAnswer(ex, 200)
        self.assertEqual(doc["account"], VICTIM)
        self.assertEqual(raw_number(ex.resp.body, "new_balance"),
                         fmt_cents(self.expected_cents if cents is None
                                   else cents), ex.resp)


# ---------------------------------------------------------------------------
# Table-driven cases against the shared chain
# ---------------------------------------------------------------------------
# kind: "json" (runtime JSON answer), "html" (libmicrohttpd's HTML answer,
# then close), "none" (closed without an answer), "victim" (200 from
# /update leaving the victim's balance as it was).
def case(name, target, data, status, kind="json", contains=None,
         half_close=False, why=""):
    return dict(name=name, target=target, data=data, status=status,
                kind=kind, contains=contains, half_close=half_close, why=why)


AMT_ERR = "must have at most two decimals"
# An over-limit body: 1 MiB of account name.
BIG_ACCOUNT = b"A" * MIB

CASES = [
    # -- malformed and truncated JSON ------------------------------------
    case("malformed_trailing_comma", BM,
         post_json("/update", b'{"account":"HOSTILE-VICTIM","amount":1,}'),
         400, contains="invalid JSON"),
    case("malformed_single_quotes", TP,
         post_json("/transaction", b"{'account':'HOSTILE-VICTIM','amount':1}"),
         400, contains="invalid JSON"),
    case("truncated_json", BM,
         post_json("/update", b'{"account":"HOSTILE-VICTIM","amount":1'),
         400, contains="expected near end of file"),
    case("truncated_json_via_chain", TP,
         post_json("/transaction", b'{"account":"HOSTILE-VICTIM","am'),
         400, contains="invalid JSON"),
    case("two_documents", BM,
         post_json("/update", money_body("1") + money_body("1")),
         400, contains="end of file expected"),
    case("utf8_bom_before_json", BM,
         post_json("/update", b"\xef\xbb\xbf" + money_body("1")), 400,
         contains="invalid JSON"),
    # -- deep nesting: jansson's depth limit (2048), not the C stack ------
    case("nested_arrays_100000", BM, post_json("/update", b"[" * 100000),
         400, contains="maximum parsing depth"),
    case("nested_objects_100000", TP,
         post_json("/transaction", b'{"a":' * 100000), 400,
         contains="maximum parsing depth"),
    case("nested_in_amount", BM,
         post_json("/update", b'{"account":"HOSTILE-VICTIM","amount":' +
                   b"[" * 50000), 400, contains="maximum parsing depth"),
    # -- invalid UTF-8 and bad escapes in strings -------------------------
    case("invalid_utf8_in_account", BM,
         post_json("/update", money_body("1", b'"\xff\xfeVICTIM"')), 400,
         contains="unable to decode byte 0xff"),
    case("overlong_utf8_in_account", TP,
         post_json("/transaction", money_body("1", b'"\xc0\xaeVICTIM"')), 400,
         contains="unable to decode byte 0xc0"),
    case("lone_surrogate_escape", BM,
         post_json("/update", money_body("1", b'"\\ud800"')), 400,
         contains="invalid Unicode"),
    case("nul_escape_in_account", BM,
         post_json("/update", money_body("1", b'"HOSTILE-VICTIM\\u0000x"')),
         400, contains="JSON_ALLOW_NUL"),
    # -- duplicate keys ---------------------------------------------------
    case("duplicate_amount_key", BM,
         post_json("/update",
                   b'{"account":"HOSTILE-VICTIM","amount":1,"amount":1000}'),
         400, contains="duplicate object key"),
    case("duplicate_account_key_via_chain", TP,
         post_json("/transaction",
                   b'{"account":"X","account":"HOSTILE-VICTIM","amount":1}'),
         400, contains="duplicate object key"),
    # -- amounts that are not money ---------------------------------------
    case("amount_nan", BM, post_json("/update", money_body("NaN")), 400,
         contains="invalid token"),
    case("amount_infinity", TP, post_json("/transaction",
                                          money_body("Infinity")), 400,
         contains="invalid token"),
    case("amount_minus_infinity", BM,
         post_json("/update", money_body("-Infinity")), 400,
         contains="invalid token"),
    case("amount_1e309", BM, post_json("/update", money_body("1e309")), 400,
         contains="real number overflow"),
    case("amount_minus_1e309", TP,
         post_json("/transaction", money_body("-1e309")), 400,
         contains="real number overflow"),
    # -0.0 is 0 cents: accepted, balance unchanged (PINNED, decided).
    case("amount_negative_zero", BM, post_json("/update", money_body("-0.0")),
         200, kind="victim"),
    case("amount_negative_zero_via_chain", TP,
         post_json("/transaction", money_body("-0")), 200, kind="json",
         contains='"balance":100,'),
    case("amount_three_decimals_0_001", BM,
         post_json("/update", money_body("0.001")), 400, contains=AMT_ERR),
    case("amount_three_decimals_1_005", TP,
         post_json("/transaction", money_body("1.005")), 400,
         contains=AMT_ERR),
    case("amount_many_decimals", BM,
         post_json("/update", money_body("0.1000000000000000055511151231257827")),
         200, kind="victim_plus_10"),
    case("amount_1e17", BM, post_json("/update", money_body("1e17")), 400,
         contains=AMT_ERR),
    case("amount_int64_cents_max_plus_one", BM,
         post_json("/update", money_body("92233720368547758.08")), 400,
         contains=AMT_ERR),
    case("amount_int64_overflow_integer", TP,
         post_json("/transaction", money_body("9223372036854775808")), 400,
         contains="too big integer"),
    case("amount_just_over_money_max", BM,
         post_json("/update", money_body("10000000000000")), 400,
         contains=AMT_ERR),
    # PINNED: 1e-400 underflows to 0.0 in jansson, so it is 0 cents.
    case("amount_underflow_1e-400", BM,
         post_json("/update", money_body("1e-400")), 200, kind="victim"),
    case("amount_leading_plus", BM, post_json("/update", money_body("+1")),
         400, contains="invalid token"),
    case("amount_hex", BM, post_json("/update", money_body("0x10")), 400,
         contains="invalid JSON"),
    case("amount_as_string", TP, post_json("/transaction",
                                           money_body('"100"')), 400,
         contains='field \\"amount\\" must be a number'),
    # -- strings of a megabyte --------------------------------------------
    # (the 1 MiB account itself: test_account_of_a_mebibyte_413 below)
    case("account_just_under_body_limit", BM,
         post_json("/update", money_body("1", b'"' + b"A" * (MIB - 40) +
                                         b'"')), 400,
         contains="must be 1 to 128 bytes"),
    # -- wrong content types: PINNED, the JSON routes do not check it -----
    case("content_type_text_plain", BM,
         post_json("/update", money_body("0"), content_type="text/plain"),
         200, kind="victim"),
    case("content_type_form", BM,
         post_json("/update", money_body("0"),
                   content_type="application/x-www-form-urlencoded"),
         200, kind="victim"),
    case("content_type_multipart_garbage", BM,
         post_json("/update", money_body("0"),
                   content_type="multipart/form-data; boundary=\x01\x02"),
         200, kind="victim"),
    case("content_type_missing", BM,
         post_json("/update", money_body("0"), content_type=None),
         200, kind="victim"),
    case("content_type_not_json_at_log", AL,
         post_json("/log", b'{"action":"ct","details":1}',
                   content_type="image/png"), 200, contains='"logged"'),
    # -- header floods and oversized headers ------------------------------
    case("header_flood_300", BM,
         build("POST", "/update", [("X-Flood-%d" % i, "v") for i in range(300)]
               + [("Content-Type", "application/json")], money_body("0")),
         200, kind="victim"),
    case("header_flood_1000_431", BM,
         build("POST", "/update", [("X-Flood-%d" % i, "v")
                                   for i in range(1000)], money_body("1")),
         431, kind="html", contains=b"Request too big"),
    case("oversized_header_40k_431", TP,
         build("POST", "/transaction", [("X-Big", "a" * 40960)],
               money_body("1")), 431, kind="html"),
    case("header_12k_accepted", BM,
         build("POST", "/update", [("Cookie", "c=" + "a" * 12000)],
               money_body("0")), 200, kind="victim"),
    # PINNED: ZC_MAX_HEADER_BYTES (32 KiB) is libmicrohttpd's whole
    # per-connection pool; with a body to read, one header of ~16 KiB
    # already does not fit.
    case("header_20k_with_body_431", BM,
         build("POST", "/update", [("Cookie", "c=" + "a" * 20000)],
               money_body("1")), 431, kind="html"),
    case("oversized_request_line_40k_414", BM,
         build("GET", "/" + "a" * 40960), 414, kind="html"),
    case("nul_byte_in_header_value", BM,
         build("POST", "/update", [(b"X-Nul", b"a\x00b")], money_body("0")),
         200, kind="victim"),
    case("header_without_colon", BM,
         build("POST", "/update", [(b"NoColonHere", b"")], money_body("1"))
         .replace(b"NoColonHere: ", b"NoColonHere"),
         400, kind="html", contains=b"syntactically incorrect"),
    # -- paths ------------------------------------------------------------
    case("path_dotdot_passwd", BM, build("GET", "/../../etc/passwd"), 404),
    case("path_dotdot_to_update", BM,
         post_json("/x/../update", money_body("1")), 404,
         contains="no route for POST /x/../update"),
    case("path_encoded_dotdot", TP,
         post_json("/%2e%2e/transaction", money_body("1")), 404),
    case("path_double_slash", BM, post_json("//update", money_body("1")), 404),
    # FOUND: %00 decodes to a NUL that cut the path in C, so
    # "/update%00.json" reached /update and moved money.  A NUL in the
    # decoded path is refused as a malformed target.
    case("path_pct00_suffix", BM, post_json("/update%00.json",
                                            money_body("1")), 400,
         why="FOUND: NUL in the decoded path"),
    case("path_pct00_via_chain", TP, post_json("/transaction%00",
                                               money_body("1")), 400,
         why="FOUND: NUL in the decoded path"),
    case("path_overlong_utf8_dot", BM,
         post_json("/%C0%AE%C0%AE/update", money_body("1")), 404),
    case("path_10k", BM, build("GET", "/" + "p" * 10240), 404),
    case("path_100_segments", TP,
         post_json("/" + "a/" * 100 + "transaction", money_body("1")), 404),
    case("absolute_form_target", BM,
         post_json("http://127.0.0.1/update", money_body("1")), 400,
         contains="request target must be an absolute path"),
    case("asterisk_target_get", BM, build("GET", "*"), 400,
         contains="request target must be an absolute path"),
    case("asterisk_target_options", BM, build("OPTIONS", "*"), 204),
    # -- methods ----------------------------------------------------------
    case("lowercase_post", BM,
         build("post", "/update", [("Content-Type", "application/json")],
               money_body("1")), 405, contains="allowed: POST, OPTIONS"),
    case("lowercase_get_health", AL, build("get", "/health/liveness"), 405),
    case("unknown_method", TP, build("FROB", "/transaction", (),
                                     money_body("1")), 405),
    case("method_with_control_char", BM,
         build(b"PO\x01ST", "/update", (), money_body("1")), 405),
    case("method_1000_chars", BM, build("P" * 1000, "/update"), 405),
    case("connect_method", BM, build("CONNECT", "127.0.0.1:443"), 400,
         contains="request target must be an absolute path"),
    case("trace_method", BM, build("TRACE", "/update"), 405),
    case("trace_method_health", AL, build("TRACE", "/health/liveness"), 405,
         contains="allowed: GET, HEAD, OPTIONS"),
    # -- request lines and versions ---------------------------------------
    case("http10_without_host", BM,
         build("GET", "/health/liveness", version="HTTP/1.0", host=False,
               close=False), 200, contains='"alive"'),
    # PINNED: RFC 9112 says 400 for HTTP/1.1 without Host; MHD accepts it.
    case("http11_without_host", BM,
         build("GET", "/health/liveness", host=False), 200),
    case("http09_request_line", BM, b"GET /health/liveness\r\n\r\n", 400,
         kind="html", contains=b"syntactically incorrect"),
    case("http2_version", BM, build("GET", "/health/liveness",
                                    version="HTTP/2.0"), 505, kind="html"),
    case("http2_prior_knowledge_preface", TP,
         b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, kind="html"),
    case("garbage_request_line", BM, b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
         None, kind="none"),
    case("request_line_extra_token", BM,
         b"GET /health/liveness HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400,
         kind="html"),
    # -- Content-Length and Transfer-Encoding that lie or conflict --------
    # PINNED: libmicrohttpd 0.9.75 answers these with its status line and
    # headers written twice (the body is misframed); the status is right.
    case("content_length_not_a_number", BM,
         build("POST", "/update", [("Content-Length", "abc")],
               money_body("1"), length=False), 400, kind="html"),
    case("content_length_negative", BM,
         build("POST", "/update", [("Content-Length", "-1")],
               money_body("1"), length=False), 400, kind="html"),
    case("content_length_beyond_size_t", TP,
         build("POST", "/transaction",
               [("Content-Length", "99999999999999999999999")],
               money_body("1"), length=False), 413, kind="html"),
    case("chunked_invalid_hex", BM,
         build("POST", "/update", [("Transfer-Encoding", "chunked")],
               b"zz\r\n" + money_body("1") + b"\r\n0\r\n\r\n", length=False),
         400, kind="html", contains=b"chunked encoding"),
    case("chunked_negative_size", BM,
         build("POST", "/update", [("Transfer-Encoding", "chunked")],
               b"-1a\r\n" + money_body("1") + b"\r\n0\r\n\r\n",
               length=False), 400, kind="html"),
    case("chunked_size_smaller_than_data", BM,
         build("POST", "/update", [("Transfer-Encoding", "chunked")],
               b"5\r\n" + money_body("1") + b"\r\n0\r\n\r\n", length=False),
         400, kind="html"),
    case("chunked_size_beyond_64_bits", TP,
         build("POST", "/transaction", [("Transfer-Encoding", "chunked")],
               b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n", length=False),
         413, kind="html"),
    case("chunked_one_byte_chunks", BM,
         build("POST", "/update", [("Transfer-Encoding", "chunked")],
               b"".join(b"1\r\n%c\r\n" % c for c in money_body("0")) +
               b"0\r\n\r\n", length=False), 200, kind="victim"),
    case("chunked_extension_and_trailer", BM,
         build("POST", "/update", [("Transfer-Encoding", "chunked")],
               b"%x;ext=\"v\"\r\n" % len(money_body("0")) + money_body("0") +
               b"\r\n0\r\nX-Trailer: t\r\n\r\n", length=False),
         200, kind="victim"),
    # FOUND: a transfer coding the server does not implement is a 501
    # (RFC 9112 6.1); the request used to be held without an answer until
    # the idle timeout (MHD waited for the body's end at connection close).
    case("transfer_encoding_gzip_501", BM,
         build("POST", "/update", [("Transfer-Encoding", "gzip")],
               money_body("1"), length=False), 501,
         why="FOUND: unknown transfer coding"),
    # -- Idempotency-Key --------------------------------------------------
    case("idempotency_key_300_chars", BM,
         post_json("/update", money_body("1"),
                   [("Idempotency-Key", "k" * 300)]), 400,
         contains="invalid Idempotency-Key"),
    case("idempotency_key_control_char", BM,
         post_json("/update", money_body("1"),
                   [(b"Idempotency-Key", b"abc\x01def")]), 400,
         contains="invalid Idempotency-Key"),
    case("idempotency_key_del_and_high_bytes", AL,
         post_json("/log", b'{"action":"k","details":1}',
                   [(b"Idempotency-Key", b"abc\x7f\xff")]), 400,
         contains="invalid Idempotency-Key"),
    case("idempotency_key_empty_quoted", BM,
         post_json("/update", money_body("1"),
                   [("Idempotency-Key", '""')]), 400,
         contains="invalid Idempotency-Key"),
    # -- traceparent garbage: ignored, a new trace is started -------------
    case("traceparent_binary_garbage", BM,
         post_json("/update", money_body("0"),
                   [(b"traceparent", b"\x01\x02\xfe-zz-" + b"9" * 60),
                    (b"tracestate", b"\x7f=\x01"), (b"b3", b"-" * 100)]),
         200, kind="victim"),
    case("traceparent_5000_chars", BM,
         post_json("/update", money_body("0"),
                   [("traceparent", "00-" + "a" * 5000)]), 200,
         kind="victim"),
    case("traceparent_version_ff_and_zero_ids", TP,
         post_json("/transaction", money_body("0"),
                   [("traceparent", "ff-" + "0" * 32 + "-" + "0" * 16 +
                     "-01"),
                    ("x-request-id", "r" * 4000)]), 200,
         contains='"status":"success"'),
]


def _make_case_test(c):
    def test(self):
        ex = exchange(self.chain.port(c["target"]), c["data"],
                      half_close=c["half_close"], timeout=T(3))
        kind = c["kind"]
        if kind == "json":
            self.assertJsonAnswer(ex, c["status"], c["contains"])
        elif kind == "html":
            self.assertHtmlAnswer(ex, c["status"], c["contains"])
        elif kind == "none":
            self.assertNoAnswer(ex)
        elif kind == "victim":
            self.assertVictimBalance(ex)
        elif kind == "victim_plus_10":
            # 0.1000000000000000055511151231257827 is the double 0.1: the
            # text is gone once parsed, so it is 10 cents (PINNED).
            self.assertVictimBalance(ex, self.expected_cents + 10)
            self.expected_cents += 10
            r = request(self.bm, "POST", "/update",
                        {"account": VICTIM, "amount": -0.1},
                        headers={"Idempotency-Key": fresh_key()})
            self.assertEqual(r.status, 200, r)
            self.expected_cents -= 10
        else:
            raise AssertionError("unknown kind " + kind)
    test.__name__ = "test_" + c["name"]
    test.__doc__ = "%s -> %s %s%s" % (c["name"], c["status"], c["kind"],
                                      (" (%s)" % c["why"]) if c["why"] else "")
    return test


class HostileRequestTest(HostileCase):
    """One hostile request per test against the shared chain."""
    uses_chain = True


for _c in CASES:
    assert not hasattr(HostileRequestTest, "test_" + _c["name"]), _c["name"]
    setattr(HostileRequestTest, "test_" + _c["name"], _make_case_test(_c))


# ---------------------------------------------------------------------------
# Cases that need more than one request/response, on the shared chain
# ---------------------------------------------------------------------------
class HostileConnectionTest(HostileCase):
    uses_chain = True

    def test_body_over_limit_413(self):
        body = money_body("1")[:-1] + b',"pad":"' + b"x" * MIB + b'"}'
        r = send_large(self.bm, "POST", "/update", body)
        self.assertEqual(r.status, 413, r)
        self.assertIn("request body exceeds the limit of 1048576 bytes",
                      r.text)

    def test_body_over_limit_chunked_via_chain_413(self):
        body = money_body("1")[:-1] + b',"pad":"' + b"x" * (2 * MIB) + b'"}'
        r = send_large(self.tp, "POST", "/transaction", body, chunked=True,
                       timeout=T(15))
        self.assertEqual(r.status, 413, r)
        self.assertEqual(r.header("Content-Type"), "application/json")

    def test_account_of_a_mebibyte_413(self):
        # PINNED: a 1 MiB string cannot fit in a 1 MiB body: 413, not 400.
        r = send_large(self.bm, "POST", "/update",
                       money_body("1", b'"' + BIG_ACCOUNT + b'"'))
        self.assertEqual(r.status, 413, r)

    def test_expect_100_continue_oversized_413_without_body(self):
        data = build("POST", "/update",
                     [("Content-Type", "application/json"),
                      ("Expect", "100-continue"),
                      ("Content-Length", str(4 * MIB))], length=False)
        ex = exchange(self.bm, data)
        self.assertJsonAnswer(ex, 413, "exceeds the limit")
        self.assertEqual(ex.end, EOF, ex)

    def test_audit_details_nested_2000_deep(self):
        # Within jansson's depth limit: accepted, and zc_json_dumps (which
        # recurses) writes it to the log.  PINNED: 200.
        details = b"[" * 2000 + b"]" * 2000
        ex = exchange(self.al, post_json(
            "/log", b'{"action":"deep","details":' + details + b'}'))
        self.assertJsonAnswer(ex, 200, '"logged"')

    def test_pipelined_requests_answered_in_order(self):
        good = money_body("0")
        data = b"".join([
            build("GET", "/health/liveness", close=False),
            post_json("/update", b"{bad json", close=False),
            post_json("/update", good, [("Idempotency-Key", fresh_key())],
                      close=False),
            build("GET", "/nope", close=False),
            build("OPTIONS", "/update", close=False),
            post_json("/update", money_body("0.001"), close=False),
            build("DELETE", "/update", close=True),
        ])
        ex = exchange(self.bm, data, n=7)
        got = [r.status for r in ex.responses]
        self.assertEqual(got, [200, 400, 200, 404, 204, 400, 405], ex)
        self.assertEqual(raw_number(ex.responses[2].body, "new_balance"),
                         fmt_cents(SEED_CENTS))
        self.assertIn(b"no route for GET /nope", ex.responses[3].body)
        self.assertEqual(ex.end, EOF)

    def test_pipelined_fifty_in_one_write(self):
        data = b"".join(build("GET", "/p%02d" % i, close=(i == 49))
                        for i in range(50))
        ex = exchange(self.tp, data, n=50)
        self.assertEqual(len(ex.responses), 50, ex)
        for i, r in enumerate(ex.responses):
            self.assertEqual(r.status, 404)
            self.assertIn(b"no route for GET /p%02d\"" % i, r.body,
                          "response %d out of order" % i)

    def test_pipelined_after_413_connection_closed(self):
        data = (build("POST", "/update", [("Content-Length", str(2 * MIB))],
                      length=False, close=False) +
                post_json("/update", money_body("1")))
        ex = exchange(self.bm, data, n=2)
        self.assertEqual([r.status for r in ex.responses], [413], ex)
        self.assertEqual(ex.end, EOF)

    def test_chunked_size_larger_than_data_then_close(self):
        data = build("POST", "/update", [("Transfer-Encoding", "chunked")],
                     b"100\r\n" + money_body("1"), length=False)
        send_and_close(self.bm, data, pause=0.05)

    def test_chunked_missing_final_chunk_then_close(self):
        b = money_body("1")
        data = build("POST", "/update", [("Transfer-Encoding", "chunked")],
                     b"%x\r\n%s\r\n" % (len(b), b), length=False)
        send_and_close(self.bm, data, pause=0.05)

    def test_content_length_larger_than_body_then_close(self):
        b = money_body("1")
        data = build("POST", "/update", [("Content-Length", "%d" % (len(b) + 50))],
                     b, length=False)
        send_and_close(self.tp, data, pause=0.05)

    def test_duplicate_content_length_is_not_smuggled(self):
        # FOUND: two different Content-Length values are an invalid
        # framing: 400 and close (RFC 9112 6.3).  MHD took the first and
        # read the rest as a second request, so a proxy that honours the
        # other one could smuggle a request past it: here one that moves
        # the victim's money.
        smuggled = post_json("/update", money_body("1"), close=False)
        first = money_body("0")
        data = build("POST", "/update",
                     [("Content-Type", "application/json"),
                      ("Content-Length", str(len(first))),
                      ("Content-Length", str(len(first) + len(smuggled)))],
                     first + smuggled, length=False, close=False)
        ex = exchange(self.bm, data, n=2, timeout=T(2))
        self.assertEqual([r.status for r in ex.responses], [400], ex)

    def test_content_length_and_chunked_closes_connection(self):
        # Transfer-Encoding wins over Content-Length (PINNED: 200), and the
        # server MUST close the connection afterwards (RFC 9112 6.1), so a
        # request pipelined behind it is never read.  FOUND: the second
        # request used to be answered too.
        b = money_body("0")
        data = build("POST", "/update",
                     [("Content-Type", "application/json"),
                      ("Content-Length", "3"),
                      ("Transfer-Encoding", "chunked")],
                     b"%x\r\n%s\r\n0\r\n\r\n" % (len(b), b), length=False,
                     close=False) + build("GET", "/health/liveness")
        ex = exchange(self.bm, data, n=2, timeout=T(2))
        self.assertTrue(ex.responses, ex)
        self.assertEqual(ex.responses[0].status, 200, ex)
        self.assertEqual(raw_number(ex.responses[0].body, "new_balance"),
                         fmt_cents(SEED_CENTS))
        self.assertEqual(len(ex.responses), 1,
                         "a request after CL+TE was read: %r" % ex)
        self.assertEqual(ex.end, EOF, ex)

    def test_garbage_then_valid_on_other_connections(self):
        # A burst of mixed junk on many connections at once, then the
        # service answers normally.
        junk = [b"\x00" * 64, b"GET\r\n\r\n", b"\r\n" * 100,
                b"POST /update HTTP/1.1\r\nContent-Length: 5\r\n\r\n\xff\xfe",
                b"GET /%%%%%% HTTP/1.1\r\n\r\n", b"\xff" * 1000]
        socks = []
        for i in range(30):
            s = socket.create_connection(("127.0.0.1", self.bm), timeout=T(5))
            try:
                s.sendall(junk[i % len(junk)])
            except OSError:
                pass
            socks.append(s)
        r = request(self.bm, "POST", "/update",
                    {"account": VICTIM, "amount": 0})
        self.assertEqual(r.status, 200, r)
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# Slow and vanishing clients: their own balance-manager, short timeouts
# ---------------------------------------------------------------------------
class HostileSlowClientTest(HostileCase):

    def spawn_bm(self, env=None):
        e = {"ZC_IDLE_TIMEOUT_S": "2", "ZC_LISTEN_ADDRESS": "127.0.0.1"}
        e.update(env or {})
        p = self.spawn(BM, e)
        r = request(p.port, "POST", "/update",
                    {"account": VICTIM, "amount": SEED_CENTS // 100})
        self.assertEqual(r.status, 200, r)
        self.guard(p, SEED_CENTS)
        return p

    def served_quickly(self, p):
        t0 = time.monotonic()
        r = request(p.port, "POST", "/update", {"account": VICTIM,
                                                "amount": 0},
                    headers={"Idempotency-Key": fresh_key()}, timeout=T(2))
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, T(1))

    def assertInflightSettles(self, p):
        """The in-flight gauge (GET /metrics; the scrape itself counts 1)
        comes back to 1: requests of clients that left are not counted."""
        def gauge():
            r = request(p.port, "GET", "/metrics", timeout=T(2))
            if r.status == 404:
                return None
            m = re.search(r"^zc_http_requests_in_flight (\d+)$", r.text,
                          re.M)
            self.assertIsNotNone(m, "no in-flight gauge in /metrics")
            return int(m.group(1))
        deadline = time.monotonic() + T(3)
        n = gauge()
        while n is not None and n != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
            n = gauge()
        if n is None:   # no /metrics (an older runtime): give MHD a moment
            time.sleep(1)
            return
        self.assertEqual(n, 1, "in-flight count stuck at %d (1 is the "
                         "scrape itself)" % n)

    def assertSigtermPrompt(self, p):
        t0 = time.monotonic()
        rc = p.stop(grace=T(3))
        self.assertFalse(p.killed, "no exit within %.1fs of SIGTERM: a "
                         "request is still counted in flight\n%s" %
                         (T(3), p.tail()))
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, T(2))
        # (the in-flight count itself is checked by assertInflightSettles
        # before: the "draining (N in flight" line may still count the
        # last scrape, whose completion races with the client's read)

    def test_slowloris_silent_after_partial_headers(self):
        # Part of the headers, then nothing: closed by the idle timeout
        # (2 s), no answer, while others are served.
        p = self.spawn_bm()
        s = socket.create_connection(("127.0.0.1", p.port), timeout=T(6))
        try:
            t0 = time.monotonic()
            s.sendall(b"POST /update HTTP/1.1\r\nHost: x\r\nX-Half: ")
            self.served_quickly(p)
            data = s.recv(65536)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertEqual(data, b"")
        self.assertGreater(elapsed, 1.0)
        self.assertLess(elapsed, 2 + T(2))

    def test_slowloris_trickled_headers(self):
        # Headers one byte per 100 ms, forever.  Others are served all the
        # while; the server must close the connection in the end.
        # FOUND: must be closed within 3 x ZC_IDLE_TIMEOUT_S; each byte used
        # to reset libmicrohttpd's idle timer, so only the 32 KiB header
        # limit (an hour at this rate) would have ended it.
        p = self.spawn_bm()
        head = b"POST /update HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100000
        tr = Trickler(p.port, head, 0.1).start()
        try:
            deadline = time.monotonic() + T(6)
            while time.monotonic() < deadline and tr.closed_at is None:
                self.served_quickly(p)
                time.sleep(0.3)
            closed = tr.closed_at
        finally:
            tr.stop()
        self.assertIsNotNone(closed, "slowloris connection still open "
                             "after %.1fs (%d bytes trickled)" %
                             (T(6), tr.sent))
        self.assertNotIn(b"HTTP/1.1 200", tr.received)

    def test_slow_body_cut_by_body_timeout(self):
        # Headers at once, the body one byte per 100 ms: the body timeout
        # (1 s here) closes the connection, no answer, nothing applied.
        p = self.spawn_bm({"ZC_BODY_TIMEOUT_MS": "1000"})
        body = money_body("1") + b" " * 200
        head = build("POST", "/update", [("Content-Type", "application/json")],
                     body, close=False)[:-len(body)]
        tr = Trickler(p.port, body, 0.1, prefix=head).start()
        try:
            self.served_quickly(p)
            closed = tr.wait_closed(T(4))
        finally:
            tr.stop()
        self.assertIsNotNone(closed, "slow body not cut off")
        self.assertLess(closed - tr.started, 1.0 + T(2))
        self.assertEqual(tr.received, b"")
        self.assertInflightSettles(p)
        self.assertSigtermPrompt(p)
        self.guarded.clear()  # stopped on purpose

    def _vanish(self, p, pause, half_close=False):
        partial = [
            build("POST", "/update", [("Content-Length", "1000")],
                  b'{"account":"HOSTILE-VICTIM","am', length=False),
            build("POST", "/update", [("Transfer-Encoding", "chunked")],
                  b"100\r\n" + money_body("1"), length=False),
            build("POST", "/update", [("Transfer-Encoding", "chunked")],
                  b"1a\r\n" + money_body("1")[:26] + b"\r\n", length=False),
            build("POST", "/update", [("Content-Length", "50")], b"",
                  length=False),
        ]
        for i in range(12):
            data = partial[i % len(partial)]
            s = socket.create_connection(("127.0.0.1", p.port), timeout=T(5))
            try:
                s.sendall(data)
                if half_close:
                    s.shutdown(socket.SHUT_WR)
                if pause:
                    time.sleep(pause)
            finally:
                s.close()
        self.served_quickly(p)
        r = request(p.port, "GET", "/health/readiness")
        self.assertEqual(r.status, 200, r)
        self.assertInflightSettles(p)

    def test_disconnect_mid_body_after_a_pause(self):
        p = self.spawn_bm({"ZC_IDLE_TIMEOUT_S": "15"})
        self._vanish(p, pause=0.05)
        self._survives()
        self.guarded.clear()
        self.assertSigtermPrompt(p)

    def test_disconnect_mid_body_immediately(self):
        # FOUND: as above.  When the FIN arrived with the last bytes, the
        # epoll pool never saw it: the request stayed "in flight" until the
        # idle timeout (15 s by default) and SIGTERM waited for it.
        p = self.spawn_bm({"ZC_IDLE_TIMEOUT_S": "15"})
        self._vanish(p, pause=0)
        self._survives()
        self.guarded.clear()
        self.assertSigtermPrompt(p)

    def test_half_close_mid_body_is_closed_by_server(self):
        # The client finishes sending (FIN) before the body is complete:
        # the request can never complete, so no answer, and the server
        # closes the connection.  FOUND: the epoll loop missed a FIN that
        # arrived with the last bytes and held the request (counted in
        # flight) until the idle timeout.  One thread made it happen every
        # time; with a pool it was a race.
        p = self.spawn_bm({"ZC_IDLE_TIMEOUT_S": "4", "ZC_THREADS": "1"})
        body = money_body("1")
        for data in (
                build("POST", "/update", [("Content-Length", "1000")],
                      body[:20], length=False),
                build("POST", "/update", [("Content-Length", "%d" %
                                           (len(body) + 50))],
                      body, length=False),
                build("POST", "/update", [("Transfer-Encoding", "chunked")],
                      b"100\r\n" + body, length=False),
                build("POST", "/update", [("Transfer-Encoding", "chunked")],
                      b"%x\r\n%s\r\n" % (len(body), body), length=False)):
            ex = exchange(p.port, data, half_close=True, timeout=T(1))
            self.assertNoAnswer(ex)
        self.assertInflightSettles(p)
        self.assertSigtermPrompt(p)
        self.guarded.clear()
