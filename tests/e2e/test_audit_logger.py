"""audit-logger: POST /log contract and its [AUDIT] log line."""
import json

from harness import E2ETestCase, T, request


class AuditLoggerTest(E2ETestCase):

    def test_log_returns_logged_and_timestamp(self):
        a = self.spawn("audit-logger")
        r = request(a.port, "POST", "/log",
                    {"action": "balance_update",
                     "details": {"account": "ACC-001", "amount": 100.5}})
        self.assertStatus(r, 200)
        doc = self.assertCompactJson(r, ["status", "timestamp"])
        self.assertEqual(doc["status"], "logged")
        self.assertTimestamp(doc["timestamp"])

    def test_log_line_has_action_and_details_json(self):
        a = self.spawn("audit-logger")
        details = '{"account":"ACC-LOG-7","amount":100.5,"new_balance":200}'
        body = '{"action":"e2e_action_42","details":%s}' % details
        r = request(a.port, "POST", "/log", body)
        self.assertStatus(r, 200)

        def has_line(text):
            return any("[AUDIT]" in line and "e2e_action_42" in line and
                       details in line for line in text.splitlines())
        text = a.wait_for_stderr(has_line)
        self.assertTrue(text, "no [AUDIT] line with action and compact "
                        "details %s in stderr:\n%s" % (details, a.tail()))

    def test_log_line_escapes_details(self):
        a = self.spawn("audit-logger")
        details = {"memo": 'say "hi"\\ and\nbye', "u": "caf\u00e9"}
        r = request(a.port, "POST", "/log",
                    {"action": "escape_check", "details": details})
        self.assertStatus(r, 200)
        text = a.wait_for_stderr(lambda t: "escape_check" in t)
        self.assertTrue(text, a.tail())
        line = next(l for l in text.splitlines() if "escape_check" in l)
        i = line.find("{", line.find("escape_check"))
        self.assertGreaterEqual(i, 0, line)
        doc, _ = json.JSONDecoder().raw_decode(line[i:])
        self.assertEqual(doc, details, line)

    def test_log_message_cannot_forge_lines(self):
        """zenith.h: "one line per message".  A newline inside the action
        must not start a new, forged log line."""
        a = self.spawn("audit-logger")
        forged = "FORGED [AUDIT] Action: admin_grant"
        r = request(a.port, "POST", "/log",
                    {"action": "inject\n" + forged, "details": {"x": 1}})
        self.assertIn(r.status, (200, 400), r)
        if r.status == 200:
            a.wait_for_stderr(lambda t: "inject" in t)
        lines = a.stderr_text().splitlines()
        bad = [l for l in lines if l.startswith("FORGED")]
        self.assertEqual(bad, [], "request data started its own log line")

    def test_log_accepts_any_details_value(self):
        a = self.spawn("audit-logger")
        values = [{"nested": {"a": [1, 2, {"b": None}]}}, [1, "two", 3.5],
                  "a string", 42, -0.25, True, None, {}, []]
        for i, v in enumerate(values):
            with self.subTest(details=v):
                r = request(a.port, "POST", "/log",
                            {"action": "any_%d" % i, "details": v})
                self.assertStatus(r, 200)
                doc = self.assertCompactJson(r, ["status", "timestamp"])
                self.assertEqual(doc["status"], "logged")
        text = a.wait_for_stderr(
            lambda t: "any_%d" % (len(values) - 1) in t)
        self.assertIn('"a string"', text or a.stderr_text())
        self.assertIn('[1,"two",3.5]', text or a.stderr_text())

    def test_log_rejects_bad_json(self):
        a = self.spawn("audit-logger")
        for body in ['{"action":', "", "not json", '{"action":"x",}']:
            with self.subTest(body=body):
                r = request(a.port, "POST", "/log", body)
                self.assertJsonError(r, 400)

    def test_log_with_query_string_routes(self):
        a = self.spawn("audit-logger")
        r = request(a.port, "POST", "/log?source=e2e",
                    {"action": "q", "details": {}})
        self.assertStatus(r, 200)
        self.assertEqual(json.loads(r.text)["status"], "logged")

    def test_log_without_content_type(self):
        # The seed's Go ignores Content-Type; so must we.
        a = self.spawn("audit-logger")
        r = request(a.port, "POST", "/log",
                    b'{"action":"noct","details":{"x":1}}',
                    headers={"Content-Type": "text/plain"},
                    timeout=T(5))
        self.assertStatus(r, 200)
