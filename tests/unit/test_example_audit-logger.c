/*
 * test_example_audit-logger.c - the audit-logger example's handler in
 * process: its answer keeps the seed's wire contract ({"status":"logged",
 * "timestamp":<RFC 3339 nano>}), and bad input is a JSON 400.
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zenith.h"

#include "testutil.h"

static zc_app *app;

static void
app_up(void)
{
	app = open_app(zc_function_setup);
}

static void
app_down(void)
{
	zc_app_free(app);
	app = NULL;
}

static zc_res *
post_log(const char *body)
{
	static const char *const hdrs[] = {"Content-Type: application/json",
					   NULL};
	zc_res *res = zc_test_request(app, "POST", "/log", hdrs, body);

	ck_assert_ptr_nonnull(res);
	return res;
}

/* "2026-11-27T20:22:43.123456789Z": Go's time.Time JSON form, in UTC. */
static void
check_timestamp(const char *ts)
{
	regex_t re;
	struct tm tm;
	time_t t, now = time(NULL);
	const char *rest;

	ck_assert_int_eq(
		regcomp(&re,
			"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
			"(\\.[0-9]{1,9})?Z$",
			REG_EXTENDED | REG_NOSUB),
		0);
	ck_assert_msg(regexec(&re, ts, 0, NULL, 0) == 0,
		      "timestamp \"%s\" is not RFC 3339 UTC", ts);
	regfree(&re);
	/* Go drops trailing zeros of the fraction. */
	if (strchr(ts, '.') != NULL)
		ck_assert_msg(ts[strlen(ts) - 2] != '0',
			      "timestamp \"%s\" has a trailing zero", ts);
	memset(&tm, 0, sizeof(tm));
	rest = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	ck_assert_ptr_nonnull(rest);
	t = timegm(&tm);
	ck_assert_msg(t >= now - 5 && t <= now + 5,
		      "timestamp \"%s\" is not now", ts);
}

START_TEST(test_logged)
{
	zc_res *res = post_log("{\"action\":\"login\",\"details\":"
			       "{\"user\":\"alice\",\"ip\":\"10.0.0.1\"}}");
	const char *key;
	json_t *v, *item;
	char *text;
	int i = 0;

	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	v = body_json(res);
	/* Exactly status then timestamp, as the seed's struct wrote them. */
	json_object_foreach (v, key, item) {
		ck_assert_str_eq(key, i == 0 ? "status" : "timestamp");
		i++;
	}
	ck_assert_int_eq(i, 2);
	ck_assert_str_eq(json_string_value(json_object_get(v, "status")),
			 "logged");
	check_timestamp(json_string_value(json_object_get(v, "timestamp")));
	json_decref(v);

	text = body_copy(res);
	ck_assert_msg(strncmp(text, "{\"status\":\"logged\",\"timestamp\":\"",
			      31) == 0,
		      "body %s", text);
	ck_assert_msg(strcmp(text + strlen(text) - 3, "\"}\n") == 0, "body %s",
		      text);
	free(text);
	zc_res_free(res);
}
END_TEST

START_TEST(test_logged_variants)
{
	static const char *const ok[] = {
		/* the balance-manager's own record */
		"{\"action\":\"balance_update\",\"details\":{\"account\":"
		"\"alice\",\"amount\":0.1,\"new_balance\":0.3}}",
		/* empty details, unicode, unknown fields ignored */
		"{\"action\":\"x\",\"details\":{}}",
		"{\"action\":\"caf\xc3\xa9\",\"details\":{\"n\":[1,{\"d\":"
		"null}]}}",
		"{\"details\":{\"a\":1},\"action\":\"reordered\",\"extra\":1}",
		"{\"action\":\"\",\"details\":{}}",
		NULL,
	};
	int i;

	for (i = 0; ok[i] != NULL; i++) {
		zc_res *res = post_log(ok[i]);

		ck_assert_msg(zc_res_get_status(res) == 200, "%s -> %d", ok[i],
			      zc_res_get_status(res));
		zc_res_free(res);
	}
}
END_TEST

static void
expect_400(const char *body)
{
	zc_res *res = post_log(body);
	json_t *v;

	ck_assert_msg(zc_res_get_status(res) == 400, "%s -> %d, want 400",
		      body ? body : "(no body)", zc_res_get_status(res));
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	v = body_json(res);
	ck_assert(json_is_string(json_object_get(v, "error")));
	json_decref(v);
	zc_res_free(res);
}

START_TEST(test_bad_input)
{
	/* missing action */
	expect_400("{\"details\":{\"a\":1}}");
	/* non-string action */
	expect_400("{\"action\":42,\"details\":{}}");
	expect_400("{\"action\":null,\"details\":{}}");
	expect_400("{\"action\":[\"a\"],\"details\":{}}");
	expect_400("{\"action\":{},\"details\":{}}");
	/* missing details */
	expect_400("{\"action\":\"login\"}");
	/* bad JSON */
	expect_400("{\"action\":\"login\",\"details\":");
	expect_400("{\"action\":\"a\",\"action\":\"b\",\"details\":{}}");
	expect_400("not json");
	expect_400("");
	expect_400(NULL);
	/* not an object */
	expect_400("[\"login\"]");
	expect_400("\"login\"");
}
END_TEST

START_TEST(test_routes)
{
	zc_res *res = zc_test_request(app, "GET", "/log", NULL, NULL);

	ck_assert_int_eq(zc_res_get_status(res), 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	res = zc_test_request(app, "POST", "/logs", NULL, "{}");
	ck_assert_int_eq(zc_res_get_status(res), 404);
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
}
END_TEST

/*
 * The action is client text written into the log.  A newline in it must
 * not start a second, forged log line.
 */
START_TEST(test_action_cannot_forge_log_lines)
{
	struct capture cap;
	zc_res *res;
	int lines = 0;
	char *buf, *p;

	capture_start(&cap);
	res = post_log(
		"{\"action\":\"x\\n2026-01-01T00:00:00.000Z INFO  "
		"audit-logger: [AUDIT] Action: forged\",\"details\":{}}");
	buf = capture_end(&cap);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);

	ck_assert_int_gt(strlen(buf), 0);
	for (p = buf; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	ck_assert_msg(lines == 1, "one audit event wrote %d log lines:\n%s",
		      lines, buf);
	free(buf);
}
END_TEST

static Suite *
audit_suite(void)
{
	Suite *s = suite_create("example audit-logger");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, app_up, app_down);
	tcase_add_test(tc, test_logged);
	tcase_add_test(tc, test_logged_variants);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_routes);
	tcase_add_test(tc, test_action_cannot_forge_log_lines);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(audit_suite());
}
