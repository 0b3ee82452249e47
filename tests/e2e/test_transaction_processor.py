"""transaction-processor: POST /transaction through the chain, and what it
answers when balance-manager is down, slow, broken or past the deadline."""
import http.client
import json

from harness import E2ETestCase, T, json_reply, request, to_cents

KEYS = ["status", "transaction_id", "balance", "timestamp"]


def txn(port, account, amount_text, **kw):
    body = '{"account":%s,"amount":%s}' % (json.dumps(account), amount_text)
    return request(port, "POST", "/transaction", body, **kw)


def fake_balance_manager(balance="42.5"):
    """A balance-manager stand-in answering a fixed new_balance."""
    def responder(method, path, body):
        try:
            acc = json.loads(body).get("account", "?")
        except ValueError:
            acc = "?"
        text = '{"status":"updated","new_balance":%s,"account":%s}' % (
            balance, json.dumps(acc))
        return 200, {"Content-Type": "application/json"}, text.encode()
    return responder


class TransactionProcessorTest(E2ETestCase):

    def test_transaction_through_the_chain(self):
        audit, bal, tp = self.chain()
        r = txn(tp.port, "ACC-001", "100.50")
        self.assertStatus(r, 200)
        doc = self.assertCompactJson(r, KEYS)
        self.assertEqual(doc["status"], "success")
        self.assertRegex(doc["transaction_id"], r"^TXN-\S+$")
        self.assertExactMoney(r, "balance", 10050)
        self.assertTimestamp(doc["timestamp"])
        r = txn(tp.port, "ACC-001", "0.25")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "balance", 10075)
        # balance-manager holds the same balance
        r = request(bal.port, "POST", "/update",
                    {"account": "ACC-001", "amount": 0})
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "new_balance", 10075)
        # and the audit-logger saw the updates
        text = audit.wait_for_stderr(
            lambda t: sum(1 for l in t.splitlines() if "[AUDIT]" in l and
                          "balance_update" in l and "ACC-001" in l) >= 2)
        self.assertTrue(text, "audit-logger did not log both balance updates"
                        "\n" + audit.tail())

    def test_exact_money_point_one_plus_point_two(self):
        _, _, tp = self.chain()
        self.assertStatus(txn(tp.port, "ACC-03", "0.1"), 200)
        r = txn(tp.port, "ACC-03", "0.2")
        self.assertStatus(r, 200)
        self.assertIn('"balance":0.3,', r.text)

    def test_transaction_ids_unique_within_one_second(self):
        _, _, tp = self.chain()
        conn = http.client.HTTPConnection("127.0.0.1", tp.port, timeout=T(10))
        ids = []
        try:
            for i in range(60):
                r = txn(tp.port, "ACC-ID", "0.01", conn=conn)
                self.assertStatus(r, 200)
                ids.append(r.json()["transaction_id"])
        finally:
            conn.close()
        self.assertEqual(len(set(ids)), len(ids),
                         "duplicate transaction ids: %r" % sorted(ids)[:10])
        for i in ids:
            self.assertTrue(i.startswith("TXN-"), i)

    def test_invalid_input_is_400_json(self):
        _, _, tp = self.chain()
        for name, body in [
                ("three decimals", '{"account":"X","amount":0.001}'),
                ("out of range", '{"account":"X","amount":1e16}'),
                ("amount string", '{"account":"X","amount":"1"}'),
                ("amount missing", '{"account":"X"}'),
                ("account missing", '{"amount":1}'),
                ("account number", '{"account":7,"amount":1}'),
                ("array body", "[]"),
                ("malformed", '{"account":'),
                ("empty", "")]:
            with self.subTest(case=name):
                r = request(tp.port, "POST", "/transaction", body)
                self.assertJsonError(r, 400, name)

    def test_balance_manager_down_fails_fast(self):
        tp = self.spawn("transaction-processor")  # BALANCE_MANAGER_URL refused
        r = txn(tp.port, "ACC-DOWN", "1")
        self.assertJsonError(r, (502, 503))
        self.assertLess(r.elapsed, T(1.0),
                        "refused downstream took %.2fs" % r.elapsed)

    def test_balance_manager_slow_bounded_by_client_timeout(self):
        fake = self.fake(delay=3, responder=fake_balance_manager())
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url,
                         "ZC_CLIENT_TIMEOUT_MS": 400})
        r = txn(tp.port, "ACC-SLOW", "1", timeout=T(10))
        self.assertJsonError(r, (504, 502))
        self.assertLess(r.elapsed, T(1.5),
                        "400 ms outbound timeout took %.2fs" % r.elapsed)
        self.assertGreaterEqual(r.elapsed, 0.3)

    def test_balance_manager_slow_bounded_by_default_timeout(self):
        """No settings: the runtime's default outbound timeout (5 s) ends
        the wait, well before the 30 s handler deadline."""
        fake = self.fake(delay=15, responder=fake_balance_manager())
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        r = txn(tp.port, "ACC-SLOW5", "1", timeout=T(20))
        self.assertJsonError(r, (504, 502))
        self.assertGreaterEqual(r.elapsed, 4.5)
        self.assertLess(r.elapsed, 5.0 + T(1.5),
                        "default outbound timeout took %.2fs" % r.elapsed)

    def test_handler_deadline_504(self):
        fake = self.fake(delay=2, responder=fake_balance_manager())
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url,
                         "ZC_HANDLER_TIMEOUT_MS": 300})
        r = txn(tp.port, "ACC-DL", "1", timeout=T(10))
        self.assertJsonError(r, (504, 502))
        self.assertLess(r.elapsed, T(1.0),
                        "300 ms handler deadline took %.2fs" % r.elapsed)
        # the process is still healthy afterwards
        self.assertStatus(request(tp.port, "GET", "/health/liveness"), 200)

    def test_balance_manager_garbage_reply_502(self):
        fake = self.fake(responder=lambda m, p, b: (
            200, {"Content-Type": "text/plain"}, b"this is not json"))
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        r = txn(tp.port, "ACC-GARBAGE", "1")
        self.assertJsonError(r, 502)

    def test_balance_manager_reply_without_balance_502(self):
        fake = self.fake(responder=lambda m, p, b: json_reply(
            {"status": "updated"}))
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        r = txn(tp.port, "ACC-NOBAL", "1")
        self.assertJsonError(r, 502)

    def test_balance_manager_drops_connection_502(self):
        fake = self.fake(responder=lambda m, p, b: "close")
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        r = txn(tp.port, "ACC-DROP", "1")
        self.assertJsonError(r, 502)
        self.assertLess(r.elapsed, T(2))

    def test_balance_manager_5xx_is_not_200(self):
        fake = self.fake(responder=lambda m, p, b: json_reply(
            {"error": "db down"}, 500))
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        r = txn(tp.port, "ACC-5XX", "1")
        self.assertJsonError(r, (502, 503))

    def test_sends_update_to_balance_manager(self):
        fake = self.fake(responder=fake_balance_manager("1.1"))
        tp = self.spawn("transaction-processor",
                        {"BALANCE_MANAGER_URL": fake.url})
        r = txn(tp.port, "ACC-FWD", "1.10")
        self.assertStatus(r, 200)
        self.assertExactMoney(r, "balance", to_cents("1.1"))
        self.assertTrue(fake.wait_requests(1, T(2)))
        req = fake.requests[0]
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["path"].split("?")[0], "/update")
        doc = json.loads(req["body"])
        self.assertEqual(doc["account"], "ACC-FWD")
        self.assertEqual(str(doc["amount"]), "1.1")
