"""balance-manager: POST /update contract, exact money, input validation and
its call to audit-logger."""
import json

from harness import E2ETestCase, T, json_reply, request, to_cents

KEYS = ["status", "new_balance", "account"]

# Bodies that must be refused with 400 and a JSON error.
BAD_BODIES = [
    ("three decimals", '{"account":"BAD-1","amount":0.001}'),
    ("three decimals 1.005", '{"account":"BAD-1","amount":1.005}'),
    ("out of range 1e16", '{"account":"BAD-1","amount":1e16}'),
    ("out of range -1e16", '{"account":"BAD-1","amount":-1e16}'),
    ("just over max", '{"account":"BAD-1","amount":10000000000000}'),
    ("amount is a string", '{"account":"BAD-1","amount":"10"}'),
    ("amount is null", '{"account":"BAD-1","amount":null}'),
    ("amount is bool", '{"account":"BAD-1","amount":true}'),
    ("amount is object", '{"account":"BAD-1","amount":{}}'),
    ("amount missing", '{"account":"BAD-1"}'),
    ("account missing", '{"amount":1}'),
    ("account is a number", '{"account":123,"amount":1}'),
    ("account is null", '{"account":null,"amount":1}'),
    ("body is an array", '[{"account":"BAD-1","amount":1}]'),
    ("body is a string", '"hello"'),
    ("body is a number", "42"),
    ("body is null", "null"),
    ("malformed JSON", '{"account":"BAD-1","amount":'),
    ("trailing garbage", '{"account":"BAD-1","amount":1}x'),
    ("empty body", ""),
]


def update(port, account, amount_text, **kw):
    body = '{"account":%s,"amount":%s}' % (json.dumps(account), amount_text)
    return request(port, "POST", "/update", body, **kw)


class BalanceManagerTest(E2ETestCase):

    def test_update_response_contract(self):
        b = self.spawn("balance-manager")
        r = update(b.port, "ACC-001", "100.50")
        self.assertStatus(r, 200)
        doc = self.assertCompactJson(r, KEYS)
        self.assertEqual(doc["status"], "updated")
        self.assertEqual(doc["account"], "ACC-001")
        self.assertExactMoney(r, "new_balance", 10050)

    def test_money_exact_point_one_plus_point_two(self):
        b = self.spawn("balance-manager")
        r1 = update(b.port, "ACC-SUM", "0.1")
        self.assertStatus(r1, 200)
        self.assertExactMoney(r1, "new_balance", 10)
        r2 = update(b.port, "ACC-SUM", "0.2")
        self.assertStatus(r2, 200)
        self.assertIn('"new_balance":0.3,', r2.text)

    def test_money_formats_like_a_person(self):
        b = self.spawn("balance-manager")
        cases = ["100.5", "100", "100.00", "2.35", "1.10", "0.01", "-0.5",
                 "19.99", "1234567.89", "0", "-0", "9999999999999.99",
                 "-9999999999999.99", "1e2", "2.5E1"]
        for i, amount in enumerate(cases):
            with self.subTest(amount=amount):
                r = update(b.port, "ACC-FMT-%d" % i, amount)
                self.assertStatus(r, 200)
                self.assertCompactJson(r, KEYS)
                self.assertExactMoney(r, "new_balance", to_cents(amount))

    def test_balances_accumulate_per_account(self):
        b = self.spawn("balance-manager")
        seq = [("ACC-A", "10.10"), ("ACC-B", "5"), ("ACC-A", "-0.10"),
               ("ACC-B", "0.05"), ("ACC-A", "2.35"), ("ACC-C", "0")]
        totals = {}
        for acc, amt in seq:
            totals[acc] = totals.get(acc, 0) + to_cents(amt)
            r = update(b.port, acc, amt)
            self.assertStatus(r, 200)
            self.assertEqual(r.json()["account"], acc)
            self.assertExactMoney(r, "new_balance", totals[acc])

    def test_account_name_round_trips(self):
        b = self.spawn("balance-manager")
        for acc in ["ACC-é-ü", "a b", 'q"uote', "back\\slash", "x" * 100]:
            with self.subTest(account=acc):
                r = update(b.port, acc, "1")
                self.assertStatus(r, 200)
                self.assertEqual(r.json()["account"], acc)

    def test_invalid_input_is_400_json(self):
        b = self.spawn("balance-manager")
        for name, body in BAD_BODIES:
            with self.subTest(case=name):
                r = request(b.port, "POST", "/update", body)
                self.assertJsonError(r, 400, name)
        # Nothing was applied to the account by the refused requests.
        r = update(b.port, "BAD-1", "0")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "new_balance", 0)

    def test_calls_audit_logger_with_balance_update(self):
        fake = self.fake()
        b = self.spawn("balance-manager", {"AUDIT_LOGGER_URL": fake.url})
        r = update(b.port, "ACC-AUD", "12.30")
        self.assertStatus(r, 200)
        self.assertTrue(fake.wait_requests(1, T(5)),
                        "balance-manager never called audit-logger")
        req = fake.requests[0]
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["path"].split("?")[0], "/log")
        doc = json.loads(req["body"])
        self.assertEqual(doc.get("action"), "balance_update")
        self.assertIsInstance(doc.get("details"), dict)
        self.assertEqual(doc["details"].get("account"), "ACC-AUD")

    def test_update_succeeds_when_audit_logger_down(self):
        b = self.spawn("balance-manager")  # AUDIT_LOGGER_URL: refused port
        r = update(b.port, "ACC-DOWN", "7.5")
        self.assertStatus(r, 200)
        self.assertEqual(r.json()["status"], "updated")
        self.assertExactMoney(r, "new_balance", 750)
        self.assertLess(r.elapsed, T(2), "update slowed by a dead audit-logger")
        r = update(b.port, "ACC-DOWN", "0.25")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "new_balance", 775)

    def test_update_succeeds_when_audit_logger_errors(self):
        fake = self.fake(responder=lambda m, p, body: json_reply(
            {"error": "boom"}, 500))
        b = self.spawn("balance-manager", {"AUDIT_LOGGER_URL": fake.url})
        r = update(b.port, "ACC-500", "1.01")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "new_balance", 101)

    def test_undelivered_audit_record_is_json(self):
        """When audit-logger is down the update still succeeds and the
        async audit call (AUDIT_MODE=async, the default) is logged by the
        runtime as a complete, replayable [UNDELIVERED] {json} record,
        whatever the account name holds.  With ZC_STORE_URL=memory: the
        audit goes through the in-process queue this test is about (with a
        durable store it goes to the outbox: test_durable.py)."""
        # audit-logger refused
        b = self.spawn("balance-manager", {"ZC_STORE_URL": "memory:"})
        acc = 'q"uote\\back'
        r = update(b.port, acc, "1")
        self.assertStatus(r, 200)
        tag = "[UNDELIVERED] "
        text = b.wait_for_stderr(lambda t: tag in t, T(5))
        self.assertTrue(text, "no %s record\n%s" % (tag, b.tail()))
        line = next(l for l in text.splitlines() if tag in l)
        payload = line.split(tag, 1)[1]
        try:
            rec, _ = json.JSONDecoder().raw_decode(payload)
            doc = json.loads(rec["body"])
        except (ValueError, KeyError, TypeError) as e:
            self.fail("%s record is not JSON with a JSON body (%s): %s" %
                      (tag, e, line))
        self.assertEqual(rec.get("method"), "POST", line)
        self.assertTrue(rec.get("url", "").endswith("/log"), line)
        self.assertIsInstance(rec.get("headers"), list, line)
        self.assertEqual(doc.get("action"), "balance_update", line)
        self.assertEqual(doc["details"]["account"], acc, line)
        self.assertEqual(doc["details"]["amount"], 1, line)
        self.assertEqual(doc["details"]["new_balance"], 1, line)

    def test_undelivered_audit_is_logged_in_sync_mode(self):
        """AUDIT_MODE=sync: the audit call is made in line; when it fails
        the update still succeeds and balance-manager logs the complete
        audit record as [AUDIT-UNDELIVERED] {json}."""
        b = self.spawn("balance-manager", {"AUDIT_MODE": "sync"})
        acc = 'q"uote\\back'
        r = update(b.port, acc, "1")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "new_balance", 100)
        tag = "[AUDIT-UNDELIVERED] "
        text = b.wait_for_stderr(lambda t: tag in t, T(5))
        self.assertTrue(text, "no %s line\n%s" % (tag, b.tail()))
        line = next(l for l in text.splitlines() if tag in l)
        try:
            doc, _ = json.JSONDecoder().raw_decode(line.split(tag, 1)[1])
        except ValueError as e:
            self.fail("%s record is not JSON (%s): %s" % (tag, e, line))
        self.assertEqual(doc.get("action"), "balance_update", line)
        self.assertEqual(doc["details"]["account"], acc, line)
        self.assertEqual(doc["details"]["amount"], 1, line)
        self.assertEqual(doc["details"]["new_balance"], 1, line)
        self.assertNotIn("[UNDELIVERED] ", text,
                         "sync mode went through the async queue")

    def test_update_through_real_audit_logger(self):
        audit, bal, _ = self.chain()
        r = update(bal.port, "ACC-REAL", "3.30")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "new_balance", 330)
        text = audit.wait_for_stderr(
            lambda t: any("[AUDIT]" in l and "balance_update" in l and
                          "ACC-REAL" in l for l in t.splitlines()))
        self.assertTrue(text, "audit-logger logged no balance_update for "
                        "ACC-REAL\n" + audit.tail())

