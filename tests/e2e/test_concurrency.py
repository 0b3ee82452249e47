"""Concurrency: 8 threads x 50 transactions over 4 accounts through the whole
chain; every balance must be the exact decimal sum."""
import http.client
import json
import threading

from harness import E2ETestCase, T, raw_number, request, to_cents

THREADS = 8
PER_THREAD = 50
ACCOUNTS = ["CONC-A", "CONC-B", "CONC-C", "CONC-D"]
AMOUNTS = ["0.01", "1.10", "2.35", "0.07", "19.99", "-3.30", "0.5", "100"]


class ConcurrencyTest(E2ETestCase):

    def test_concurrent_transactions_exact_balances(self):
        audit, bal, tp = self.chain()
        plan = []  # per thread: list of (account, amount)
        for t in range(THREADS):
            plan.append([(ACCOUNTS[(t + i) % len(ACCOUNTS)],
                          AMOUNTS[(t * 3 + i) % len(AMOUNTS)])
                         for i in range(PER_THREAD)])
        expected = {a: 0 for a in ACCOUNTS}
        for steps in plan:
            for acc, amt in steps:
                expected[acc] += to_cents(amt)

        results = [[] for _ in range(THREADS)]
        errors = []
        start = threading.Barrier(THREADS)

        def worker(t):
            conn = http.client.HTTPConnection("127.0.0.1", tp.port,
                                              timeout=T(10))
            try:
                start.wait(T(10))
                for acc, amt in plan[t]:
                    body = '{"account":"%s","amount":%s}' % (acc, amt)
                    try:
                        r = request(tp.port, "POST", "/transaction", body,
                                    conn=conn)
                    except Exception as e:  # noqa: BLE001 - reported below
                        errors.append("%s %s: %r" % (acc, amt, e))
                        conn.close()
                        continue
                    results[t].append(r)
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True)
                   for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(T(60))
        self.assertFalse(any(th.is_alive() for th in threads),
                         "workers still running")
        self.assertEqual(errors, [], "transport errors")
        flat = [r for rs in results for r in rs]
        self.assertEqual(len(flat), THREADS * PER_THREAD)
        bad = [r for r in flat if r.status != 200]
        self.assertEqual(bad, [], "%d non-200 answers" % len(bad))

        ids = [json.loads(r.text)["transaction_id"] for r in flat]
        self.assertEqual(len(set(ids)), len(ids), "duplicate transaction ids")
        for r in flat:
            raw = raw_number(r.body, "balance")
            self.assertRegex(raw or "", r"^-?\d+(\.\d{1,2})?$",
                             "balance not a 2-decimal amount: %r" % r.text)

        for acc in ACCOUNTS:
            r = request(bal.port, "POST", "/update",
                        '{"account":"%s","amount":0}' % acc)
            self.assertStatus(r, 200)
            self.assertExactMoney(r, "new_balance", expected[acc])

        # every update reached the audit log (allow an async audit call to
        # land: poll)
        want = THREADS * PER_THREAD

        def count(text):
            return sum(1 for l in text.splitlines()
                       if "[AUDIT]" in l and "CONC-" in l) >= want
        self.assertTrue(audit.wait_for_stderr(count, T(5)),
                        "audit-logger logged fewer than %d updates" % want)
