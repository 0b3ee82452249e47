/*
 * test_example_balance-manager.c - the balance-manager example in process:
 * exact cents on the wire (0.1 + 0.2 answers 0.3), input validation, the
 * range limit, the audit record it sends (in line with AUDIT_MODE=sync,
 * through the runtime's async queue by default), that a dead audit-logger
 * does not fail an update and loses no record, and that concurrent updates
 * lose nothing.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zenith.h"

#include "fake_http.h"

/* ---- the app ---- */

static zc_app *app;

static void
app_up(void)
{
	/*
	 * No audit-logger: every audit call is refused at once on loopback
	 * (zc_test_app does not apply ZC_CLIENT_*, and no timeout is needed).
	 */
	set_service_port("audit-logger", closed_port());
	app = open_app(zc_function_setup);
}

static void
app_down(void)
{
	zc_app_free(app);
	app = NULL;
	unsetenv("AUDIT_LOGGER_URL");
	unsetenv("AUDIT_MODE");
}

/* A new app that reads the environment as it is now. */
static void
app_reopen(void)
{
	reopen_app(&app, zc_function_setup);
}

/* Lines of text that contain needle. */
static int
count_lines(const char *text, const char *needle)
{
	const char *p = text, *nl;
	int n = 0;

	for (; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL)
			nl = p + strlen(p);
		if (memmem(p, (size_t)(nl - p), needle, strlen(needle)) != NULL)
			n++;
		if (*nl == '\0')
			break;
	}
	return n;
}

static zc_res *
update_raw(const char *body)
{
	zc_res *res = zc_test_request(app, "POST", "/update", NULL, body);

	ck_assert_ptr_nonnull(res);
	return res;
}

/* POST /update {"account": account, "amount": <amount text>}: the status,
 * and the body (without its newline) into out. */
static int
update(const char *account, const char *amount, char *out, size_t outsz)
{
	char body[512];
	zc_res *res;
	size_t len;
	const char *b;
	int status;

	snprintf(body, sizeof(body), "{\"account\":\"%s\",\"amount\":%s}",
		 account, amount);
	res = update_raw(body);
	status = zc_res_get_status(res);
	b = zc_res_get_body(res, &len);
	if (out != NULL) {
		if (len > 0 && b[len - 1] == '\n')
			len--;
		snprintf(out, outsz, "%.*s", (int)len, b);
	}
	zc_res_free(res);
	return status;
}

static void
expect_update(const char *account, const char *amount, const char *new_balance)
{
	char got[512], want[512];

	snprintf(want, sizeof(want),
		 "{\"status\":\"updated\",\"new_balance\":%s,"
		 "\"account\":\"%s\"}",
		 new_balance, account);
	ck_assert_msg(update(account, amount, got, sizeof(got)) == 200,
		      "%s %s -> %s", account, amount, got);
	ck_assert_str_eq(got, want);
}

static void
expect_status(const char *body, int status)
{
	zc_res *res = update_raw(body);
	size_t len;
	const char *b = zc_res_get_body(res, &len);
	json_t *v;

	ck_assert_msg(zc_res_get_status(res) == status,
		      "%s -> %d %.*s, want %d", body ? body : "(no body)",
		      zc_res_get_status(res), (int)len, b, status);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	v = json_loadb(b, len, 0, NULL);
	ck_assert_msg(v != NULL && json_is_string(json_object_get(v, "error")),
		      "error body %.*s", (int)len, b);
	json_decref(v);
	zc_res_free(res);
}

/* ---- tests ---- */

START_TEST(test_exact_cents)
{
	expect_update("alice", "0.1", "0.1");
	expect_update("alice", "0.2", "0.3");
	expect_update("alice", "100.2", "100.5");
	expect_update("alice", "-0.5", "100");
	expect_update("alice", "-100.05", "-0.05");
	expect_update("alice", "0.05", "0");
	/* Ten dimes are a dollar, exactly. */
	expect_update("bob", "0.1", "0.1");
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(update("bob", "0.1", NULL, 0), 200);
	expect_update("bob", "0.1", "1");
	/* Integers and exponent forms are amounts too. */
	expect_update("carol", "7", "7");
	expect_update("carol", "2.5e-1", "7.25");
}
END_TEST

START_TEST(test_account_validation)
{
	char acct[200], body[300];

	expect_status("{\"account\":\"\",\"amount\":1}", 400);
	expect_status("{\"amount\":1}", 400);
	expect_status("{\"account\":5,\"amount\":1}", 400);
	expect_status("{\"account\":null,\"amount\":1}", 400);

	/* 128 bytes is the limit ... */
	memset(acct, 'a', 128);
	acct[128] = '\0';
	expect_update(acct, "1", "1");
	/* ... 129 is over it. */
	memset(acct, 'b', 129);
	acct[129] = '\0';
	snprintf(body, sizeof(body), "{\"account\":\"%s\",\"amount\":1}", acct);
	expect_status(body, 400);
	/* Bytes, not characters: 64 two-byte characters fit, 65 do not. */
	acct[0] = '\0';
	for (int i = 0; i < 64; i++)
		strcat(acct, "\xc3\xa9");
	expect_update(acct, "1", "1");
	strcat(acct, "\xc3\xa9");
	snprintf(body, sizeof(body), "{\"account\":\"%s\",\"amount\":1}", acct);
	expect_status(body, 400);
}
END_TEST

START_TEST(test_amount_validation)
{
	expect_status("{\"account\":\"a\"}", 400);
	expect_status("{\"account\":\"a\",\"amount\":\"1.00\"}", 400);
	expect_status("{\"account\":\"a\",\"amount\":null}", 400);
	expect_status("{\"account\":\"a\",\"amount\":true}", 400);
	expect_status("{\"account\":\"a\",\"amount\":0.125}", 400);
	expect_status("{\"account\":\"a\",\"amount\":0.001}", 400);
	expect_status("{\"account\":\"a\",\"amount\":1e16}", 400);
	expect_status("{\"account\":\"a\",\"amount\":10000000000000}", 400);
	expect_status("{\"account\":\"a\",\"amount\":1,\"amount\":1000}", 400);
	expect_status("{\"account\":\"a\",\"amount\":", 400);
	expect_status("[]", 400);
	expect_status(NULL, 400);
	/* None of those touched the balance. */
	expect_update("a", "0", "0");
}
END_TEST

START_TEST(test_range_overflow_422)
{
	expect_update("big", "9999999999999.99", "9999999999999.99");
	expect_status("{\"account\":\"big\",\"amount\":0.01}", 422);
	/* The refused update left the balance alone. */
	expect_update("big", "-0.01", "9999999999999.98");
	expect_update("big", "0.01", "9999999999999.99");

	expect_update("debt", "-9999999999999.99", "-9999999999999.99");
	expect_status("{\"account\":\"debt\",\"amount\":-0.01}", 422);
	expect_status("{\"account\":\"debt\",\"amount\":-9999999999999.99}",
		      422);
	expect_update("debt", "9999999999999.99", "0");
}
END_TEST

START_TEST(test_audit_down_update_succeeds_fast)
{
	long long t0 = now_ms();

	expect_update("dave", "12.34", "12.34");
	ck_assert_msg(now_ms() - t0 < 1000, "update took %lld ms",
		      now_ms() - t0);
}
END_TEST

/* With an audit-logger there (a canned fake_http), the record it gets is
 * the seed's. */
static const char audit_ok[] = "HTTP/1.1 200 OK\r\n"
			       "Content-Type: application/json\r\n"
			       "Content-Length: 2\r\n"
			       "Connection: close\r\n\r\n{}";

/* A fake audit-logger that answers audit_ok, and AUDIT_LOGGER_URL names. */
static void
start_audit_logger(struct fake_http *f)
{
	fh_start_canned(f, NULL, audit_ok);
	set_service_port("audit-logger", f->port);
}

static void
expect_audit_request(struct fake_http *f)
{
	const char *req = f->recs[0].req, *body;

	ck_assert_int_eq(atomic_load(&f->accepts), 1);
	ck_assert_msg(strncmp(req, "POST /log HTTP/1.1\r\n", 20) == 0,
		      "request: %s", req);
	ck_assert_ptr_nonnull(
		strcasestr(req, "\r\nContent-Type: application/json\r\n"));
	body = strstr(req, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body + 4,
			 "{\"action\":\"balance_update\",\"details\":{"
			 "\"account\":\"erin\",\"amount\":0.3,"
			 "\"new_balance\":0.3}}");
}

START_TEST(test_audit_record_sent_sync)
{
	struct fake_http f;

	setenv("AUDIT_MODE", "sync", 1);
	start_audit_logger(&f);
	app_reopen();

	expect_update("erin", "0.3", "0.3");
	/* in line: the audit-logger had it before the update answered */
	ck_assert_int_eq(atomic_load(&f.arrived), 1);
	fh_stop(&f);
	expect_audit_request(&f);
}
END_TEST

START_TEST(test_audit_record_sent_async)
{
	struct fake_http f;
	long long t0;

	/* the default mode; an audit-logger that takes 800 ms to answer */
	unsetenv("AUDIT_MODE");
	start_audit_logger(&f);
	atomic_store(&f.delay_ms, 800);
	app_reopen();

	t0 = now_ms();
	expect_update("erin", "0.3", "0.3");
	/* the update did not wait for the audit call */
	ck_assert_msg(now_ms() - t0 < 600, "update took %lld ms",
		      now_ms() - t0);
	/* the record arrives shortly after */
	while (atomic_load(&f.arrived) == 0 && now_ms() - t0 < 3000)
		poll(NULL, 0, 5);
	ck_assert_int_eq(atomic_load(&f.arrived), 1);
	/* zc_app_free waits for the delivery in flight */
	zc_app_free(app);
	app = NULL;
	fh_stop(&f);
	expect_audit_request(&f);
}
END_TEST

/*
 * The audit call carries a key derived from the update's, so it may be
 * retried and audit-logger records it once; a replayed update sends no
 * second audit.
 */
START_TEST(test_audit_key_from_update_key)
{
	static const char *const hdr[] = {"Idempotency-Key: tx-9", NULL};
	static const char body[] = "{\"account\":\"erin\",\"amount\":0.3}";
	struct capture cap;
	struct fake_http f;
	zc_res *res;
	char *text;

	setenv("AUDIT_MODE", "sync", 1);
	start_audit_logger(&f);
	app_reopen();
	res = zc_test_request(app, "POST", "/update", hdr, body);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	fh_stop(&f);
	expect_audit_request(&f);
	ck_assert_msg(strstr(f.recs[0].req,
			     "\r\nIdempotency-Key: audit-tx-9\r\n") != NULL,
		      "request: %s", f.recs[0].req);

	/* the retry of the update: replayed, and no audit call at all (the
	 * audit-logger is gone now, so one would be logged undelivered) */
	set_service_port("audit-logger", closed_port());
	capture_start(&cap);
	res = zc_test_request(app, "POST", "/update", hdr, body);
	text = capture_end(&cap);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Idempotent-Replayed"), "true");
	zc_res_free(res);
	ck_assert_msg(strstr(text, "UNDELIVERED") == NULL, "log: %s", text);
	free(text);
	expect_update("erin", "0", "0.3");
}
END_TEST

START_TEST(test_bad_audit_mode_fails_init)
{
	zc_app *a;

	setenv("AUDIT_MODE", "sometimes", 1);
	a = zc_test_app(zc_function_setup);
	ck_assert_ptr_null(a);
}
END_TEST

/*
 * An undelivered audit record is logged so it can be replayed: it must be
 * valid JSON on one line, whatever the account name holds.
 */
static const char odd_account[] = "q\\\"uote\\\\ and\\nnewline";
static const char odd_decoded[] = "q\"uote\\ and\nnewline";

/* The JSON value that follows tag in text (exactly one such line). */
static json_t *
record_after(const char *text, const char *tag)
{
	const char *rec;
	json_error_t e;
	json_t *v;

	ck_assert_msg(count_lines(text, tag) == 1, "want one %s line in:\n%s",
		      tag, text);
	rec = strstr(text, tag);
	rec += strlen(tag);
	v = json_loads(rec, JSON_DISABLE_EOF_CHECK, &e);
	ck_assert_msg(v != NULL, "record is not JSON (%s): %s", e.text, rec);
	return v;
}

static void
expect_odd_details(json_t *record)
{
	json_t *d = json_object_get(record, "details");
	char *amount;

	ck_assert_str_eq(json_string_value(json_object_get(record, "action")),
			 "balance_update");
	ck_assert_str_eq(json_string_value(json_object_get(d, "account")),
			 odd_decoded);
	amount = zc_json_dumps(json_object_get(d, "amount"));
	ck_assert_ptr_nonnull(amount);
	ck_assert_str_eq(amount, "1.5");
	free(amount);
	ck_assert(json_equal(json_object_get(d, "amount"),
			     json_object_get(d, "new_balance")));
}

static void
odd_update(void)
{
	char body[256];
	zc_res *res;

	snprintf(body, sizeof(body), "{\"account\":\"%s\",\"amount\":1.5}",
		 odd_account);
	res = update_raw(body);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
}

START_TEST(test_undelivered_record_is_json_sync)
{
	struct capture cap;
	json_t *v;
	char *text;

	setenv("AUDIT_MODE", "sync", 1);
	app_reopen();
	capture_start(&cap);
	odd_update();
	text = capture_end(&cap);
	v = record_after(text, "[AUDIT-UNDELIVERED] ");
	expect_odd_details(v);
	json_decref(v);
	free(text);
}
END_TEST

START_TEST(test_undelivered_record_is_json_async)
{
	struct capture cap;
	json_t *v, *rec;
	char *text, want_url[64];
	const char *url, *body;

	/* audit-logger down (the fixture's closed port), async mode */
	unsetenv("AUDIT_MODE");
	app_reopen();
	capture_start(&cap);
	odd_update();
	/* drains the queue: whatever is not delivered is logged by now */
	zc_app_free(app);
	app = NULL;
	text = capture_end(&cap);
	rec = record_after(text, "[UNDELIVERED] ");
	ck_assert_str_eq(json_string_value(json_object_get(rec, "method")),
			 "POST");
	url = json_string_value(json_object_get(rec, "url"));
	snprintf(want_url, sizeof(want_url), "%s/log",
		 getenv("AUDIT_LOGGER_URL"));
	ck_assert_str_eq(url, want_url);
	ck_assert(json_is_array(json_object_get(rec, "headers")));
	/* replayable as it was: with its Idempotency-Key */
	{
		json_t *h;
		size_t i;
		bool keyed = false;

		json_array_foreach (json_object_get(rec, "headers"), i, h)
			keyed |= strncmp(json_string_value(h),
					 "Idempotency-Key: audit-", 23) == 0;
		ck_assert_msg(keyed, "no Idempotency-Key in %s", text);
	}
	body = json_string_value(json_object_get(rec, "body"));
	ck_assert_ptr_nonnull(body);
	v = json_loads(body, 0, NULL);
	ck_assert_msg(v != NULL, "body is not JSON: %s", body);
	expect_odd_details(v);
	json_decref(v);
	json_decref(rec);
	free(text);
}
END_TEST

/* ---- concurrency ---- */

#define THREADS  8
#define UPDATES  2000
#define ACCOUNTS 4

static const char *const accounts[ACCOUNTS] = {"acct-0", "acct-1", "acct-2",
					       "acct-3"};
static atomic_int ok_count, bad_count;

static void *
hammer(void *arg)
{
	int t = (int)(long)arg, i;
	char body[128];

	for (i = 0; i < UPDATES; i++) {
		zc_res *res;

		snprintf(body, sizeof(body),
			 "{\"account\":\"%s\",\"amount\":0.01}",
			 accounts[(t + i) % ACCOUNTS]);
		res = zc_test_request(app, "POST", "/update", NULL, body);
		if (res != NULL && zc_res_get_status(res) == 200)
			atomic_fetch_add(&ok_count, 1);
		else
			atomic_fetch_add(&bad_count, 1);
		zc_res_free(res);
	}
	return NULL;
}

START_TEST(test_concurrent_updates_exact)
{
	pthread_t th[THREADS];
	struct capture cap;
	char want[64], *text;
	int i;

	atomic_store(&ok_count, 0);
	atomic_store(&bad_count, 0);
	/* Two log lines per update would drown the test output. */
	capture_start(&cap);
	for (i = 0; i < THREADS; i++)
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, hammer, (void *)(long)i),
			0);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	/* 8 x 2000 / 4 = 4000 cents each: exactly 40. */
	snprintf(want, sizeof(want), "%d", THREADS * UPDATES / ACCOUNTS / 100);
	for (i = 0; i < ACCOUNTS; i++)
		expect_update(accounts[i], "0", want);
	/* audit-logger is down: every update's record is in the log, as
	 * [UNDELIVERED] from the queue or [AUDIT-UNDELIVERED] in line when
	 * the queue was full - none lost, none doubled */
	zc_app_free(app);
	app = NULL;
	text = capture_end(&cap);

	ck_assert_int_eq(atomic_load(&bad_count), 0);
	ck_assert_int_eq(atomic_load(&ok_count), THREADS * UPDATES);
	ck_assert_int_eq(count_lines(text, "UNDELIVERED] "),
			 THREADS * UPDATES + ACCOUNTS);
	free(text);
}
END_TEST

static Suite *
balance_suite(void)
{
	Suite *s = suite_create("example balance-manager");
	TCase *tc = tcase_create("update");

	tcase_add_checked_fixture(tc, app_up, app_down);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_exact_cents);
	tcase_add_test(tc, test_account_validation);
	tcase_add_test(tc, test_amount_validation);
	tcase_add_test(tc, test_range_overflow_422);
	tcase_add_test(tc, test_audit_down_update_succeeds_fast);
	tcase_add_test(tc, test_audit_record_sent_sync);
	tcase_add_test(tc, test_audit_record_sent_async);
	tcase_add_test(tc, test_audit_key_from_update_key);
	tcase_add_test(tc, test_bad_audit_mode_fails_init);
	tcase_add_test(tc, test_undelivered_record_is_json_sync);
	tcase_add_test(tc, test_undelivered_record_is_json_async);
	tcase_add_test(tc, test_concurrent_updates_exact);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(balance_suite());
}
