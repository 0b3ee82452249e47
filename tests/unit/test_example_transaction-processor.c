/*
 * test_example_transaction-processor.c - the chain's entry function in
 * process, against a fake balance-manager on loopback: bad input is a 400
 * without a downstream call; the downstream's success, client errors,
 * failures, garbage, silence and absence each map to the documented answer,
 * fast.
 */
#include <check.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "zenith.h"

#include "fake_http.h"

/* ---- a fake balance-manager on loopback ---- */

/*
 * fake_http.h's canned server: it serves connections one request each,
 * every one with reply (a whole HTTP response; NULL: never answer), and
 * keeps each request (f->recs[n].req) and its Idempotency-Key
 * (f->recs[n].key).  BALANCE_MANAGER_URL points at it.
 */
static void
start_balance_manager(struct fake_http *f, const char *reply)
{
	fh_start_canned(f, NULL, reply);
	set_service_port("balance-manager", f->port);
}

/* ---- helpers ---- */

static void
clear_env(void)
{
	unsetenv("BALANCE_MANAGER_URL");
	unsetenv("BALANCE_MANAGER_BREAKER_FAILURES");
	unsetenv("ZC_HANDLER_TIMEOUT_MS");
}

/* An app built after the environment is set, and one transaction. */
static zc_res *
transact(const char *body, long long *elapsed_ms)
{
	zc_app *app = open_app(zc_function_setup);
	long long t0;
	zc_res *res;

	t0 = now_ms();
	res = zc_test_request(app, "POST", "/transaction", NULL, body);
	if (elapsed_ms != NULL)
		*elapsed_ms = now_ms() - t0;
	ck_assert_ptr_nonnull(res);
	zc_app_free(app);
	return res;
}

static char *
http_reply(int status, const char *body)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 status, strlen(body), body);
	return buf;
}

/* ---- tests ---- */

START_TEST(test_bad_input_400)
{
	static const char *const bad[] = {
		"{",
		"",
		"[]",
		"{\"amount\":1}",
		"{\"account\":7,\"amount\":1}",
		"{\"account\":\"alice\"}",
		"{\"account\":\"alice\",\"amount\":\"1.00\"}",
		"{\"account\":\"alice\",\"amount\":0.001}",
		"{\"account\":\"alice\",\"amount\":1e16}",
		"{\"account\":\"alice\",\"amount\":1,\"amount\":2}",
		NULL,
	};
	struct fake_http f;
	int i;

	/* A balance-manager that would answer: none of these reach it. */
	start_balance_manager(&f, http_reply(200, "{\"status\":\"updated\","
						  "\"new_balance\":1,"
						  "\"account\":\"alice\"}"));
	for (i = 0; bad[i] != NULL; i++) {
		zc_res *res = transact(bad[i], NULL);

		ck_assert_msg(zc_res_get_status(res) == 400, "%s -> %d", bad[i],
			      zc_res_get_status(res));
		expect_error_mentions(res, 400, NULL);
		zc_res_free(res);
	}
	fh_stop(&f);
	ck_assert_int_eq(atomic_load(&f.requests), 0);
	clear_env();
}
END_TEST

START_TEST(test_balance_manager_down_502_fast)
{
	long long ms;
	zc_res *res;

	/* Refused on loopback at once: no timeout is involved. */
	set_service_port("balance-manager", closed_port());
	res = transact("{\"account\":\"alice\",\"amount\":10.5}", &ms);
	expect_error_mentions(res, 502, "balance-manager");
	ck_assert_msg(ms < 1000, "502 took %lld ms", ms);
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_success)
{
	struct fake_http f;
	zc_res *res;
	json_t *v;
	const char *key, *id, *idem, *body, *req;
	json_t *item;
	regex_t re;
	char *text, hdr[128];
	size_t len;
	int i = 0;
	static const char *const order[] = {"status", "transaction_id",
					    "balance", "timestamp"};

	start_balance_manager(&f, http_reply(200, "{\"status\":\"updated\","
						  "\"new_balance\":0.3,"
						  "\"account\":\"alice\"}"));
	res = transact("{\"account\":\"alice\",\"amount\":0.1}", NULL);
	fh_stop(&f);

	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	json_object_foreach (v, key, item) {
		ck_assert_int_lt(i, 4);
		ck_assert_str_eq(key, order[i]);
		i++;
	}
	ck_assert_int_eq(i, 4);
	ck_assert_str_eq(json_string_value(json_object_get(v, "status")),
			 "success");
	id = json_string_value(json_object_get(v, "transaction_id"));
	ck_assert_ptr_nonnull(id);
	ck_assert_int_eq(regcomp(&re, "^TXN-[0-9]+-[0-9a-f]{16}$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	ck_assert_msg(regexec(&re, id, 0, NULL, 0) == 0, "id %s", id);
	regfree(&re);
	/* The balance on the wire is exactly the text 0.3. */
	body = zc_res_get_body(res, &len);
	text = strndup(body, len);
	ck_assert_msg(strstr(text, ",\"balance\":0.3,") != NULL, "body %s",
		      text);
	free(text);

	/* What balance-manager received. */
	req = f.recs[0].req;
	ck_assert_int_eq(atomic_load(&f.requests), 1);
	ck_assert_msg(strncmp(req, "POST /update HTTP/1.1\r\n", 23) == 0,
		      "request: %s", req);
	ck_assert_ptr_nonnull(
		strcasestr(req, "\r\nContent-Type: application/json\r\n"));
	snprintf(hdr, sizeof(hdr), "\r\nIdempotency-Key: %s\r\n", id);
	idem = strcasestr(req, hdr);
	ck_assert_msg(idem != NULL, "no %s in %s", hdr + 2, req);
	body = strstr(req, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body + 4, "{\"account\":\"alice\",\"amount\":0.1}");
	json_decref(v);
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_unique_ids)
{
	static const char ok[] = "{\"status\":\"updated\",\"new_balance\":1,"
				 "\"account\":\"a\"}";
	char first[64];
	struct fake_http f;
	zc_res *res;
	json_t *v;

	start_balance_manager(&f, http_reply(200, ok));
	res = transact("{\"account\":\"a\",\"amount\":1}", NULL);
	fh_stop(&f);
	v = body_json(res);
	snprintf(first, sizeof(first), "%s",
		 json_string_value(json_object_get(v, "transaction_id")));
	json_decref(v);
	zc_res_free(res);

	start_balance_manager(&f, http_reply(200, ok));
	res = transact("{\"account\":\"a\",\"amount\":1}", NULL);
	fh_stop(&f);
	v = body_json(res);
	ck_assert_str_ne(
		first, json_string_value(json_object_get(v, "transaction_id")));
	json_decref(v);
	zc_res_free(res);
	clear_env();
}
END_TEST

/* A 4xx from balance-manager is the client's fault: passed through. */
START_TEST(test_downstream_4xx_passed_through)
{
	static const char err400[] =
		"{\"error\":\"field \\\"account\\\" must be 1 to 128 bytes\"}";
	static const char err422[] =
		"{\"error\":\"balance of a would leave the supported range\"}";
	struct fake_http f;
	zc_res *res;
	json_t *v;

	start_balance_manager(&f, http_reply(400, err400));
	res = transact("{\"account\":\"\",\"amount\":1}", NULL);
	fh_stop(&f);
	expect_error_mentions(res, 400, "account");
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "error")),
			 "field \"account\" must be 1 to 128 bytes");
	json_decref(v);
	zc_res_free(res);

	start_balance_manager(&f, http_reply(422, err422));
	res = transact("{\"account\":\"a\",\"amount\":9999999999999.99}", NULL);
	fh_stop(&f);
	expect_error_mentions(res, 422, "range");
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_downstream_failures_502)
{
	static const struct {
		const char *reply;
		int requests;
	} cases[] = {
		/* a server error: not the client's fault, not passed on, and
		 * not one of the statuses worth a retry (502/503/504/429) */
		{"HTTP/1.1 500 X\r\nContent-Type: application/json\r\n"
		 "Content-Length: 26\r\nConnection: close\r\n\r\n"
		 "{\"error\":\"internal error\"}",
		 1},
		/* a 4xx that is not JSON */
		{"HTTP/1.1 400 X\r\nContent-Type: text/plain\r\n"
		 "Content-Length: 11\r\nConnection: close\r\n\r\nbad request",
		 1},
		/* 200 with garbage */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 8\r\nConnection: close\r\n\r\nnot json",
		 1},
		/* 200 without new_balance */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 21\r\nConnection: close\r\n\r\n"
		 "{\"status\":\"updated\"}\n",
		 1},
		/* 200 with a balance that is not money */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 20\r\nConnection: close\r\n\r\n"
		 "{\"new_balance\":\"1\"}\n",
		 1},
		/*
		 * dies mid-reply, every time: a transport error, so the keyed
		 * update is retried (2 retries by default) with the same key;
		 * after the last attempt it is a 502.  (A one-shot fake made
		 * the retry wait on a listener nobody served until the 5 s
		 * call timeout: 504, correctly, for a silent downstream.)
		 */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 100\r\nConnection: close\r\n\r\n{\"new_bal",
		 3},
		/* not HTTP at all: a transport failure, retried like one */
		{"SSH-2.0-OpenSSH_9.2\r\n", 3},
	};
	size_t i;

	/* one target serves every case: keep its breaker out of the count */
	setenv("BALANCE_MANAGER_BREAKER_FAILURES", "0", 1);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake_http f;
		long long ms;
		zc_res *res;
		int n, k;

		start_balance_manager(&f, cases[i].reply);
		res = transact("{\"account\":\"a\",\"amount\":1}", &ms);
		fh_stop(&f);
		ck_assert_msg(zc_res_get_status(res) == 502,
			      "reply #%zu -> %d, want 502", i,
			      zc_res_get_status(res));
		expect_error_mentions(res, 502, "balance-manager");
		ck_assert_msg(ms < 1000, "reply #%zu took %lld ms", i, ms);
		n = atomic_load(&f.requests);
		ck_assert_msg(n == cases[i].requests,
			      "reply #%zu: %d requests, want %d", i, n,
			      cases[i].requests);
		for (k = 1; k < n; k++)
			ck_assert_str_eq(f.recs[k].key, f.recs[0].key);
		zc_res_free(res);
	}
	clear_env();
}
END_TEST

/*
 * Exactly-once through a fault: the update dies mid-reply once, the
 * runtime retries it with the same Idempotency-Key (the transaction id),
 * and the answer carries that id.
 */
START_TEST(test_update_retried_with_same_key)
{
	struct fake_http f;
	zc_res *res;
	json_t *v;
	const char *id;

	/* the first connection gets half a reply */
	fh_start_canned(&f,
			"HTTP/1.1 200 OK\r\nContent-Type: application/json"
			"\r\nContent-Length: 100\r\nConnection: close\r\n"
			"\r\n{\"new_bal",
			http_reply(200, "{\"status\":\"updated\","
					"\"new_balance\":2.5,"
					"\"account\":\"a\"}"));
	set_service_port("balance-manager", f.port);
	res = transact("{\"account\":\"a\",\"amount\":2.5}", NULL);
	fh_stop(&f);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	id = json_string_value(json_object_get(v, "transaction_id"));
	ck_assert_ptr_nonnull(id);
	ck_assert_int_eq(atomic_load(&f.requests), 2);
	ck_assert_str_eq(f.recs[0].key, id);
	ck_assert_str_eq(f.recs[1].key, id);
	json_decref(v);
	zc_res_free(res);
	clear_env();
}
END_TEST

/* A downstream that is down for good: retried, then 502 - fast. */
START_TEST(test_update_503_retried_then_502)
{
	struct fake_http f;
	long long ms;
	zc_res *res;

	start_balance_manager(&f, http_reply(503, "{\"error\":\"draining\"}"));
	res = transact("{\"account\":\"a\",\"amount\":1}", &ms);
	fh_stop(&f);
	expect_error_mentions(res, 502, "balance-manager");
	ck_assert_int_eq(atomic_load(&f.requests), 3);
	ck_assert_str_eq(f.recs[2].key, f.recs[0].key);
	ck_assert_msg(ms < 1000, "took %lld ms", ms);
	zc_res_free(res);
	clear_env();
}
END_TEST

/*
 * A balance-manager that accepts and never answers.  The inbound deadline
 * bounds the outbound call (zc_test_app leaves ZC_CLIENT_* alone, so the
 * call's own timeout is the built-in 5 s): the client gets a 504 at the
 * deadline, not after 5 s.
 */
START_TEST(test_downstream_silent_deadline_504)
{
	struct fake_http f;
	long long ms;
	zc_res *res;

	start_balance_manager(&f, NULL);
	setenv("ZC_HANDLER_TIMEOUT_MS", "300", 1);
	res = transact("{\"account\":\"a\",\"amount\":1}", &ms);
	fh_stop(&f);
	expect_error_mentions(res, 504, NULL);
	ck_assert_msg(ms >= 250 && ms < 1500,
		      "504 after %lld ms; ZC_HANDLER_TIMEOUT_MS=300", ms);
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_routes)
{
	zc_app *app = zc_test_app(zc_function_setup);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/transaction", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

static Suite *
tp_suite(void)
{
	Suite *s = suite_create("example transaction-processor");
	TCase *tc = tcase_create("transaction");

	tcase_add_checked_fixture(tc, clear_env, clear_env);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_bad_input_400);
	tcase_add_test(tc, test_balance_manager_down_502_fast);
	tcase_add_test(tc, test_success);
	tcase_add_test(tc, test_unique_ids);
	tcase_add_test(tc, test_downstream_4xx_passed_through);
	tcase_add_test(tc, test_downstream_failures_502);
	tcase_add_test(tc, test_update_retried_with_same_key);
	tcase_add_test(tc, test_update_503_retried_then_502);
	tcase_add_test(tc, test_downstream_silent_deadline_504);
	tcase_add_test(tc, test_routes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(tp_suite());
}
