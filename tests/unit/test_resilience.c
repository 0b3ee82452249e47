/*
 * test_resilience.c - zc_call_perform's retries, backoff, Retry-After,
 * method safety, circuit breaker, bulkhead, per-target policy and Dapr
 * discovery, against a real loopback server in this process whose
 * failures are scripted per request.  Each test uses its own target name
 * (<NAME>_URL points at the fake), so no breaker or policy leaks between
 * tests even without Check's fork.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#include "fake_http.h"

/* ---- the scripted fake downstream ---- */

enum action {
	A_OK,     /* 200 {"ok":true} */
	A_STATUS, /* fail_status, with Retry-After when retry_after >= 0 */
	A_RESET,  /* RST instead of a reply */
	A_HANG,   /* never answer; wait for the client to go away */
};

/* Every request is recorded as it arrives; fake.delay_ms delays answers. */
static struct fake_http fake;
static struct {
	/* script: requests numbered 0.. fail while n < fail_until (-1: all) */
	atomic_int fail_until;
	atomic_int fail_action;
	atomic_int fail_status;
	atomic_int retry_after; /* seconds; -1: no header */
	atomic_int active;      /* requests being answered */
} ctl;

static int
answer_scripted(struct fake_http *f, struct fh_conn *c, int n)
{
	static const char ok[] = "{\"ok\":true}";
	static const char err[] = "{\"error\":\"scripted\"}";
	char ra[64] = "";
	int until = atomic_load(&ctl.fail_until), act = A_OK;
	bool head_req = strncmp(c->buf, "HEAD ", 5) == 0;

	if (until < 0 || n < until)
		act = atomic_load(&ctl.fail_action);
	if (fh_delay(f, c) != 0)
		return -1;
	switch (act) {
	case A_OK:
		return fh_reply(c->fd, 200, "Scripted", "", ok, strlen(ok),
				head_req);
	case A_STATUS:
		if (atomic_load(&ctl.retry_after) >= 0)
			snprintf(ra, sizeof(ra), "Retry-After: %d\r\n",
				 atomic_load(&ctl.retry_after));
		return fh_reply(c->fd, atomic_load(&ctl.fail_status),
				"Scripted", ra, err, strlen(err), head_req);
	case A_RESET:
		return fh_reset(c);
	case A_HANG:
	default:
		fh_wait_quiet(f, c->fd, -1);
		return -1;
	}
}

static int
answer(struct fake_http *f, struct fh_conn *c)
{
	int n = fh_record(f, c), rc;

	atomic_fetch_add(&ctl.active, 1);
	rc = answer_scripted(f, c, n);
	atomic_fetch_sub(&ctl.active, 1);
	return rc;
}

static zc_app *app;

static void
fake_start(void)
{
	atomic_store(&ctl.fail_until, 0);
	atomic_store(&ctl.fail_action, A_OK);
	atomic_store(&ctl.fail_status, 0);
	atomic_store(&ctl.retry_after, -1);
	atomic_store(&ctl.active, 0);
	fh_start(&fake, answer);
	/* an app, for zc_service, with the configuration from env */
	app = open_app(setup_nothing);
}

/* Also when a test stopped it already. */
static void
fake_stop(void)
{
	fh_stop(&fake);
	zc_app_free(app);
	app = NULL;
}

/* Script: the first `until` requests (all when -1) do act. */
static void
script(int until, int act, int status)
{
	atomic_store(&ctl.fail_action, act);
	atomic_store(&ctl.fail_status, status);
	atomic_store(&ctl.fail_until, until);
}

/* Point target name at the fake: NAME_URL. */
static void
use_target(const char *name)
{
	set_service_port(name, fake.port);
}

/* ms between the arrivals of requests i - 1 and i */
static long
gap_ms(int i)
{
	return (long)((fh_rec_time(&fake, i) - fh_rec_time(&fake, i - 1)) /
		      1000000LL);
}

/* method path on target; *out keeps the call when non-NULL. */
static zc_err
do_call(const char *target, const char *method, const char *key, zc_call **out)
{
	zc_call *call = zc_call_new(NULL, target, method, "/r");
	zc_err err;

	ck_assert_ptr_nonnull(call);
	if (strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0)
		ck_assert_int_eq(zc_call_jsonf(call, "{s:i}", "n", 1), ZC_OK);
	if (key != NULL)
		ck_assert_int_eq(zc_call_header(call, "Idempotency-Key", key),
				 ZC_OK);
	err = zc_call_perform(call);
	if (out != NULL)
		*out = call;
	else
		zc_call_free(call);
	return err;
}

static int
requests(void)
{
	return atomic_load(&fake.requests);
}

static void
declare(const char *name, const zc_policy *p)
{
	ck_assert_int_eq(zc_service(app, name, p), ZC_OK);
}

/* A policy that retries fast, with the breaker off. */
static zc_policy
fast_policy(int retries)
{
	zc_policy p;

	zc_policy_default(&p);
	p.retries = retries;
	p.backoff_ms = 1;
	p.backoff_max_ms = 2;
	p.breaker_failures = 0;
	return p;
}

/* ---- retries ---- */

START_TEST(test_retry_until_success)
{
	zc_call *call;
	int k;

	use_target("r-until");
	declare("r-until", (zc_policy[]){fast_policy(2)});
	for (k = 0; k <= 2; k++) {
		atomic_store(&fake.requests, 0);
		script(k, A_STATUS, 503);
		ck_assert_int_eq(do_call("r-until", "GET", NULL, &call), ZC_OK);
		ck_assert_int_eq(zc_call_status(call), 200);
		ck_assert_int_eq(zc_call_attempts(call), k + 1);
		ck_assert_int_eq(requests(), k + 1);
		zc_call_free(call);
	}
}
END_TEST

START_TEST(test_retries_bounded)
{
	zc_call *call;

	/* built-in: 2 retries, so exactly 3 requests */
	use_target("r-bounded");
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-bounded", "GET", NULL, &call), ZC_ERR_HTTP);
	ck_assert_int_eq(zc_call_status(call), 503);
	ck_assert_int_eq(zc_call_attempts(call), 3);
	ck_assert_int_eq(requests(), 3);
	/* the last reply is kept */
	ck_assert_str_eq(zc_call_reply(call, NULL), "{\"error\":\"scripted\"}");
	zc_call_free(call);
}
END_TEST

START_TEST(test_retryable_statuses)
{
	static const int retried[] = {429, 502, 503, 504};
	static const int not_retried[] = {400, 401, 403, 404,
					  409, 422, 500, 501};
	char name[32];
	size_t i;

	for (i = 0; i < sizeof(retried) / sizeof(retried[0]); i++) {
		snprintf(name, sizeof(name), "r-st-%d", retried[i]);
		use_target(name);
		declare(name, (zc_policy[]){fast_policy(2)});
		atomic_store(&fake.requests, 0);
		script(-1, A_STATUS, retried[i]);
		ck_assert_int_eq(do_call(name, "GET", NULL, NULL), ZC_ERR_HTTP);
		ck_assert_msg(requests() == 3, "%d: %d requests", retried[i],
			      requests());
	}
	/* 4xx are the caller's; 500/501 are not transient */
	for (i = 0; i < sizeof(not_retried) / sizeof(not_retried[0]); i++) {
		snprintf(name, sizeof(name), "r-st-%d", not_retried[i]);
		use_target(name);
		declare(name, (zc_policy[]){fast_policy(2)});
		atomic_store(&fake.requests, 0);
		script(-1, A_STATUS, not_retried[i]);
		ck_assert_int_eq(do_call(name, "GET", NULL, NULL), ZC_ERR_HTTP);
		ck_assert_msg(requests() == 1, "%d: %d requests",
			      not_retried[i], requests());
	}
}
END_TEST

START_TEST(test_retry_on_transport_errors)
{
	zc_call *call;

	use_target("r-reset");
	script(2, A_RESET, 0);
	ck_assert_int_eq(do_call("r-reset", "GET", NULL, &call), ZC_OK);
	ck_assert_int_eq(zc_call_attempts(call), 3);
	ck_assert_int_eq(requests(), 3);
	zc_call_free(call);

	/* refused: retried too (attempts counted by the client) */
	set_service_port("r-refused", closed_port());
	ck_assert_int_eq(do_call("r-refused", "GET", NULL, &call),
			 ZC_ERR_REFUSED);
	ck_assert_int_eq(zc_call_attempts(call), 3);
	zc_call_free(call);
}
END_TEST

START_TEST(test_idempotent_methods_retried)
{
	static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE",
					      "OPTIONS"};
	char name[32];
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		snprintf(name, sizeof(name), "r-m-%zu", i);
		use_target(name);
		declare(name, (zc_policy[]){fast_policy(2)});
		atomic_store(&fake.requests, 0);
		script(-1, A_STATUS, 503);
		ck_assert_int_eq(do_call(name, methods[i], NULL, NULL),
				 ZC_ERR_HTTP);
		ck_assert_msg(requests() == 3, "%s: %d requests", methods[i],
			      requests());
	}
}
END_TEST

START_TEST(test_post_without_key_never_retried)
{
	zc_call *call;

	/* a reset, on a fresh connection (the first call of this thread) */
	use_target("r-post");
	script(-1, A_RESET, 0);
	ck_assert_int_eq(do_call("r-post", "POST", NULL, &call),
			 ZC_ERR_TRANSPORT);
	ck_assert_int_eq(zc_call_attempts(call), 1);
	zc_call_free(call);
	ck_assert_int_eq(requests(), 1);

	/* an answer that is retried for a GET */
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-post", "POST", NULL, &call), ZC_ERR_HTTP);
	ck_assert_int_eq(zc_call_attempts(call), 1);
	zc_call_free(call);
	ck_assert_int_eq(requests(), 2);

	/* PATCH is no safer */
	ck_assert_int_eq(do_call("r-post", "PATCH", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 3);

	/* nor a refused connection: the request may never have left, but a
	 * keyless POST is not repeated on a guess */
	set_service_port("r-post-refused", closed_port());
	ck_assert_int_eq(do_call("r-post-refused", "POST", NULL, &call),
			 ZC_ERR_REFUSED);
	ck_assert_int_eq(zc_call_attempts(call), 1);
	zc_call_free(call);
}
END_TEST

/*
 * The server got the POST on a kept-alive connection and then died
 * without a byte of reply (it may have applied it).  libcurl on its own
 * re-sends a request whose reused connection "died" before any reply
 * byte; for a keyless POST that is a second application.
 */
START_TEST(test_post_without_key_not_resent_on_reused_connection)
{
	zc_call *call;
	int n;

	use_target("r-post-reuse");
	script(0, A_OK, 0);
	ck_assert_int_eq(do_call("r-post-reuse", "POST", NULL, NULL), ZC_OK);
	ck_assert_int_eq(atomic_load(&fake.accepts), 1);
	/* the next POST goes out on that warm connection */
	script(-1, A_RESET, 0);
	ck_assert_int_eq(do_call("r-post-reuse", "POST", NULL, &call),
			 ZC_ERR_TRANSPORT);
	ck_assert_int_eq(zc_call_attempts(call), 1);
	zc_call_free(call);
	n = requests();
	fake_stop(); /* before a failed check ends the test without teardown */
	ck_assert_msg(n == 2, "one keyless POST reached the server %d times",
		      n - 1);
}
END_TEST

/* Every recorded request carries exactly this Idempotency-Key line. */
static void
expect_same_key(int n, const char *line)
{
	char head[2048];
	int i;

	for (i = 0; i < n; i++) {
		fh_rec_copy(&fake, i, head, sizeof(head));
		ck_assert_msg(strncmp(head, "POST /r HTTP/1.1\r\n", 18) == 0,
			      "request %d: %s", i, head);
		ck_assert_msg(strstr(head, line) != NULL,
			      "request %d lacks %s: %s", i, line, head);
		/* once, not doubled by the retry */
		ck_assert_ptr_null(
			strcasestr(strcasestr(head, "Idempotency-Key") + 1,
				   "Idempotency-Key"));
		ck_assert_str_eq(strstr(head, "\r\n\r\n") + 4, "{\"n\":1}");
	}
}

START_TEST(test_post_with_key_retried_same_key)
{
	zc_call *call;

	use_target("r-key");
	script(2, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-key", "POST", "TXN-42-abc", &call), ZC_OK);
	ck_assert_int_eq(zc_call_attempts(call), 3);
	zc_call_free(call);
	ck_assert_int_eq(requests(), 3);
	expect_same_key(3, "\r\nIdempotency-Key: TXN-42-abc\r\n");
}
END_TEST

START_TEST(test_post_with_key_retried_on_reset)
{
	/* the sf-string form, quotes and all, goes out unchanged */
	use_target("r-key-reset");
	script(2, A_RESET, 0);
	ck_assert_int_eq(
		do_call("r-key-reset", "POST", "\"8e03978e-40d5\"", NULL),
		ZC_OK);
	ck_assert_int_eq(requests(), 3);
	expect_same_key(3, "\r\nIdempotency-Key: \"8e03978e-40d5\"\r\n");
}
END_TEST

START_TEST(test_keyed_409_retried_422_not)
{
	/* 409 from an idempotent server: still in flight, come back */
	use_target("r-key-409");
	script(1, A_STATUS, 409);
	ck_assert_int_eq(do_call("r-key-409", "POST", "k1", NULL), ZC_OK);
	ck_assert_int_eq(requests(), 2);
	/* 422: same key, other payload - a bug, never retried */
	atomic_store(&fake.requests, 0);
	script(-1, A_STATUS, 422);
	ck_assert_int_eq(do_call("r-key-409", "POST", "k2", NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 1);
	/* a keyless 409 is an ordinary client error */
	atomic_store(&fake.requests, 0);
	script(-1, A_STATUS, 409);
	ck_assert_int_eq(do_call("r-key-409", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 1);
}
END_TEST

/* ---- backoff ---- */

/*
 * Lower bounds are what a test is about (the client waited); upper bounds
 * only catch gross errors, with room for sanitizers and a loaded machine.
 */
#define SLACK_MS 400

START_TEST(test_backoff_from_policy)
{
	zc_policy p;

	/* waits: [100,200] then [200,400] ms (the default 50 ms base would
	 * give at most 50 and 100) */
	zc_policy_default(&p);
	p.retries = 2;
	p.backoff_ms = 200;
	p.backoff_max_ms = 1000;
	p.breaker_failures = 0;
	use_target("r-backoff");
	declare("r-backoff", &p);
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-backoff", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 3);
	ck_assert_msg(gap_ms(1) >= 98 && gap_ms(1) <= 200 + SLACK_MS,
		      "first backoff %ld ms", gap_ms(1));
	ck_assert_msg(gap_ms(2) >= 198 && gap_ms(2) <= 400 + SLACK_MS,
		      "second backoff %ld ms", gap_ms(2));
}
END_TEST

START_TEST(test_backoff_capped)
{
	zc_policy p;
	int i;

	/* uncapped, the fourth wait would be 600-1200 ms */
	zc_policy_default(&p);
	p.retries = 4;
	p.backoff_ms = 150;
	p.backoff_max_ms = 150;
	p.breaker_failures = 0;
	use_target("r-cap");
	declare("r-cap", &p);
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-cap", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 5);
	for (i = 1; i < 5; i++)
		ck_assert_msg(gap_ms(i) >= 73 && gap_ms(i) < 450,
			      "backoff %d: %ld ms", i, gap_ms(i));
}
END_TEST

START_TEST(test_backoff_from_global_env)
{
	zc_app *app2;

	/* ZC_CLIENT_BACKOFF_MS is read with the rest of the configuration */
	setenv("ZC_CLIENT_BACKOFF_MS", "200", 1);
	setenv("ZC_CLIENT_RETRIES", "1", 1);
	app2 = zc_test_app(setup_nothing);
	ck_assert_ptr_nonnull(app2);
	use_target("r-genv");
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-genv", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 2);
	ck_assert_msg(gap_ms(1) >= 98 && gap_ms(1) <= 200 + SLACK_MS,
		      "backoff %ld ms", gap_ms(1));
	zc_app_free(app2);
	unsetenv("ZC_CLIENT_BACKOFF_MS");
	unsetenv("ZC_CLIENT_RETRIES");
}
END_TEST

START_TEST(test_retry_after_honoured)
{
	zc_call *call;

	use_target("r-ra");
	atomic_store(&ctl.retry_after, 1);
	script(1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-ra", "GET", NULL, &call), ZC_OK);
	ck_assert_int_eq(requests(), 2);
	ck_assert_msg(gap_ms(1) >= 950 && gap_ms(1) <= 1000 + SLACK_MS,
		      "Retry-After: 1 -> second attempt after %ld ms",
		      gap_ms(1));
	/* a success clears it */
	ck_assert_int_eq(zc_call_retry_after_ms(call), 0);
	zc_call_free(call);
}
END_TEST

START_TEST(test_retry_after_beyond_budget)
{
	zc_call *call;
	long t0, ms;

	/* Retry-After 2 s does not fit a 500 ms budget: give up at once */
	use_target("r-ra-long");
	atomic_store(&ctl.retry_after, 2);
	script(-1, A_STATUS, 503);
	call = zc_call_new(NULL, "r-ra-long", "GET", "/r");
	zc_call_timeout_ms(call, 500);
	t0 = now_ms();
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_HTTP);
	ms = now_ms() - t0;
	ck_assert_msg(ms < SLACK_MS, "took %ld ms", ms);
	ck_assert_int_eq(requests(), 1);
	ck_assert_int_eq(zc_call_status(call), 503);
	/* and the handler can pass the hint on */
	ck_assert_int_eq(zc_call_retry_after_ms(call), 2000);
	zc_call_free(call);
}
END_TEST

/* ---- circuit breaker ---- */

static int
breaker_state(const char *name)
{
	return zc__breaker_state(&zc__target_get(name)->breaker);
}

START_TEST(test_breaker_opens_fails_fast_recovers)
{
	zc_policy p = fast_policy(0);
	zc_res res;
	zc_call *call;
	long t0;
	int i;

	p.breaker_failures = 3;
	p.breaker_open_ms = 300;
	p.breaker_probes = 2;
	use_target("r-brk");
	declare("r-brk", &p);
	script(-1, A_STATUS, 503);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(do_call("r-brk", "GET", NULL, NULL),
				 ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 3);
	ck_assert_int_eq(breaker_state("r-brk"), ZC_BREAKER_OPEN);

	/* open: fails at once, the server sees nothing */
	t0 = now_ms();
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(do_call("r-brk", "GET", NULL, &call),
				 ZC_ERR_BREAKER_OPEN);
		ck_assert_int_eq(zc_call_attempts(call), 0);
		ck_assert_int_eq(zc_call_status(call), 0);
		ck_assert_msg(zc_call_retry_after_ms(call) > 0 &&
				      zc_call_retry_after_ms(call) <= 301,
			      "retry after %ld", zc_call_retry_after_ms(call));
		if (i == 0) {
			/* what a handler answers: 503 + Retry-After */
			zc__res_init(&res);
			zc_res_call_error(&res, call, ZC_ERR_BREAKER_OPEN);
			ck_assert_int_eq(zc_res_get_status(&res), 503);
			ck_assert_str_eq(zc_res_get_header(&res, "Retry-After"),
					 "1");
			ck_assert_ptr_nonnull(
				strstr(zc_res_get_body(&res, NULL), "r-brk"));
			zc__res_release(&res);
		}
		zc_call_free(call);
	}
	ck_assert_int_lt(now_ms() - t0, SLACK_MS);
	ck_assert_int_eq(requests(), 3);
	/* even a POST with a key is not sent */
	ck_assert_int_eq(do_call("r-brk", "POST", "k", NULL),
			 ZC_ERR_BREAKER_OPEN);
	ck_assert_int_eq(requests(), 3);

	/* the target is well again; after open_ms probes go through */
	script(0, A_OK, 0);
	sleep_ms(320);
	ck_assert_int_eq(breaker_state("r-brk"), ZC_BREAKER_HALF_OPEN);
	ck_assert_int_eq(do_call("r-brk", "GET", NULL, NULL), ZC_OK);
	ck_assert_int_eq(breaker_state("r-brk"), ZC_BREAKER_HALF_OPEN);
	ck_assert_int_eq(do_call("r-brk", "GET", NULL, NULL), ZC_OK);
	ck_assert_int_eq(breaker_state("r-brk"), ZC_BREAKER_CLOSED);
	ck_assert_int_eq(requests(), 5);
}
END_TEST

START_TEST(test_breaker_half_open_failure_reopens)
{
	zc_policy p = fast_policy(0);

	p.breaker_failures = 2;
	p.breaker_open_ms = 200;
	use_target("r-brk2");
	declare("r-brk2", &p);
	script(-1, A_STATUS, 502);
	do_call("r-brk2", "GET", NULL, NULL);
	do_call("r-brk2", "GET", NULL, NULL);
	ck_assert_int_eq(breaker_state("r-brk2"), ZC_BREAKER_OPEN);
	sleep_ms(220);
	/* one probe fails: open again, for a full period */
	ck_assert_int_eq(do_call("r-brk2", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(breaker_state("r-brk2"), ZC_BREAKER_OPEN);
	ck_assert_int_eq(requests(), 3);
	ck_assert_int_eq(do_call("r-brk2", "GET", NULL, NULL),
			 ZC_ERR_BREAKER_OPEN);
	ck_assert_int_eq(requests(), 3);
}
END_TEST

START_TEST(test_breaker_counts_attempts_not_calls)
{
	zc_policy p = fast_policy(5);
	zc_call *call;

	/* 5 retries allowed, but the breaker opens after 2 failed attempts
	 * and stops the retries of this very call */
	p.breaker_failures = 2;
	p.breaker_open_ms = 10000;
	use_target("r-brk3");
	declare("r-brk3", &p);
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-brk3", "GET", NULL, &call),
			 ZC_ERR_BREAKER_OPEN);
	ck_assert_int_eq(zc_call_attempts(call), 2);
	ck_assert_int_gt(zc_call_retry_after_ms(call), 0);
	zc_call_free(call);
	ck_assert_int_eq(requests(), 2);
}
END_TEST

START_TEST(test_breaker_ignores_4xx)
{
	zc_policy p = fast_policy(0);
	int i;

	p.breaker_failures = 2;
	use_target("r-brk4");
	declare("r-brk4", &p);
	script(-1, A_STATUS, 404);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(do_call("r-brk4", "GET", NULL, NULL),
				 ZC_ERR_HTTP);
	ck_assert_int_eq(breaker_state("r-brk4"), ZC_BREAKER_CLOSED);
	ck_assert_int_eq(requests(), 6);
}
END_TEST

/* ---- bulkhead ---- */

struct bg {
	const char *target;
	zc_err err;
};

static void *
bg_call(void *arg)
{
	struct bg *b = arg;
	zc_call *call = zc_call_new(NULL, b->target, "GET", "/slow");

	b->err = call != NULL ? zc_call_perform(call) : ZC_ERR_NOMEM;
	zc_call_free(call);
	return NULL;
}

static void
wait_active(int n)
{
	long t0 = now_ms();

	while (atomic_load(&ctl.active) < n && now_ms() - t0 < 3000)
		sleep_ms(2);
	ck_assert_int_ge(atomic_load(&ctl.active), n);
}

static void
check_bulkhead(const char *target)
{
	struct bg b = {target, ZC_ERR_INVALID};
	pthread_t t;
	zc_call *call;
	zc_res res;
	long t0, ms;

	atomic_store(&fake.delay_ms, 800);
	script(0, A_OK, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, bg_call, &b), 0);
	wait_active(1);
	t0 = now_ms();
	ck_assert_int_eq(do_call(target, "GET", NULL, &call),
			 ZC_ERR_BULKHEAD_FULL);
	ms = now_ms() - t0;
	/* at once: while the first call is still in the server */
	ck_assert_int_eq(atomic_load(&ctl.active), 1);
	ck_assert_msg(ms < SLACK_MS, "bulkhead refusal took %ld ms", ms);
	ck_assert_int_eq(zc_call_attempts(call), 0);
	zc__res_init(&res);
	zc_res_call_error(&res, call, ZC_ERR_BULKHEAD_FULL);
	ck_assert_int_eq(zc_res_get_status(&res), 503);
	ck_assert_ptr_nonnull(zc_res_get_header(&res, "Retry-After"));
	zc__res_release(&res);
	zc_call_free(call);
	ck_assert_int_eq(requests(), 1);
	pthread_join(t, NULL);
	ck_assert_int_eq(b.err, ZC_OK);
	/* the slot is free again */
	atomic_store(&fake.delay_ms, 0);
	ck_assert_int_eq(do_call(target, "GET", NULL, NULL), ZC_OK);
	ck_assert_int_eq(requests(), 2);
}

START_TEST(test_bulkhead_full_at_once)
{
	zc_policy p;

	zc_policy_default(&p);
	p.max_concurrent = 1;
	use_target("r-bulk");
	declare("r-bulk", &p);
	check_bulkhead("r-bulk");
}
END_TEST

START_TEST(test_bulkhead_from_target_env)
{
	use_target("r-bulk-env");
	setenv("R_BULK_ENV_MAX_CONCURRENT", "1", 1);
	check_bulkhead("r-bulk-env");
}
END_TEST

START_TEST(test_bulkhead_unbounded_by_default)
{
	struct bg b = {"r-bulk-none", ZC_ERR_INVALID};
	pthread_t t;

	use_target("r-bulk-none");
	atomic_store(&fake.delay_ms, 300);
	ck_assert_int_eq(pthread_create(&t, NULL, bg_call, &b), 0);
	wait_active(1);
	ck_assert_int_eq(do_call("r-bulk-none", "GET", NULL, NULL), ZC_OK);
	pthread_join(t, NULL);
	ck_assert_int_eq(b.err, ZC_OK);
	ck_assert_int_eq(requests(), 2);
}
END_TEST

/* ---- policy precedence ---- */

START_TEST(test_service_policy_honoured)
{
	zc_policy p = fast_policy(4), pt = fast_policy(3);
	zc_call *call;
	long t0, ms;

	use_target("r-svc");
	declare("r-svc", &p);
	/* declaring again keeps the first policy */
	declare("r-svc", (zc_policy[]){fast_policy(0)});
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-svc", "GET", NULL, &call), ZC_ERR_HTTP);
	ck_assert_int_eq(zc_call_attempts(call), 5);
	zc_call_free(call);
	ck_assert_int_eq(requests(), 5);

	/* the policy's timeout is the call's whole budget */
	pt.timeout_ms = 250;
	use_target("r-svc-t");
	declare("r-svc-t", &pt);
	script(-1, A_HANG, 0);
	t0 = now_ms();
	ck_assert_int_eq(do_call("r-svc-t", "GET", NULL, NULL), ZC_ERR_TIMEOUT);
	ms = now_ms() - t0;
	ck_assert_msg(ms >= 240 && ms <= 250 + SLACK_MS, "timeout after %ld ms",
		      ms);
}
END_TEST

START_TEST(test_target_env_overrides_code)
{
	zc_policy p = fast_policy(4);
	long t0, ms;

	use_target("r-env");
	setenv("R_ENV_RETRIES", "1", 1);
	declare("r-env", &p);
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-env", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 2);

	p.timeout_ms = 3000;
	use_target("r-env-t");
	setenv("R_ENV_T_TIMEOUT_MS", "200", 1);
	declare("r-env-t", &p);
	script(-1, A_HANG, 0);
	t0 = now_ms();
	ck_assert_int_eq(do_call("r-env-t", "GET", NULL, NULL), ZC_ERR_TIMEOUT);
	ms = now_ms() - t0;
	ck_assert_msg(ms >= 190 && ms <= 200 + SLACK_MS, "timeout after %ld ms",
		      ms);
}
END_TEST

START_TEST(test_target_env_without_service)
{
	/* no zc_service: env still applies on first use */
	use_target("r-env2");
	setenv("R_ENV2_RETRIES", "0", 1);
	setenv("R_ENV2_BREAKER_FAILURES", "1", 1);
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-env2", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 1);
	ck_assert_int_eq(do_call("r-env2", "GET", NULL, NULL),
			 ZC_ERR_BREAKER_OPEN);
	ck_assert_int_eq(requests(), 1);
}
END_TEST

START_TEST(test_target_env_invalid)
{
	/* a declared target with a bad value is refused at start-up */
	use_target("r-env3");
	setenv("R_ENV3_RETRIES", "two", 1);
	ck_assert_int_eq(
		zc_service(app, "r-env3", (zc_policy[]){fast_policy(1)}),
		ZC_ERR_INVALID);
	setenv("R_ENV3_RETRIES", "101", 1);
	ck_assert_int_eq(zc_service(app, "r-env3", NULL), ZC_ERR_INVALID);
	setenv("R_ENV3_TIMEOUT_MS", "0", 1);
	setenv("R_ENV3_RETRIES", "1", 1);
	ck_assert_int_eq(zc_service(app, "r-env3", NULL), ZC_ERR_INVALID);

	/* a target only used (never declared) ignores it: the default */
	use_target("r-env5");
	setenv("R_ENV5_RETRIES", "two", 1);
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-env5", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 3);
}
END_TEST

START_TEST(test_call_setter_overrides_env)
{
	zc_call *call;
	long t0, ms;

	use_target("r-env4");
	setenv("R_ENV4_TIMEOUT_MS", "3000", 1);
	script(-1, A_HANG, 0);
	call = zc_call_new(NULL, "r-env4", "GET", "/r");
	zc_call_timeout_ms(call, 150);
	t0 = now_ms();
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_TIMEOUT);
	ms = now_ms() - t0;
	ck_assert_msg(ms >= 140 && ms <= 150 + SLACK_MS, "timeout after %ld ms",
		      ms);
	zc_call_free(call);
}
END_TEST

/* ---- time budget ---- */

START_TEST(test_budget_with_hanging_server)
{
	zc_call *call;
	long t0, ms;

	use_target("r-budget");
	declare("r-budget", (zc_policy[]){fast_policy(5)});
	script(-1, A_HANG, 0);
	call = zc_call_new(NULL, "r-budget", "GET", "/r");
	zc_call_timeout_ms(call, 300);
	t0 = now_ms();
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_TIMEOUT);
	ms = now_ms() - t0;
	ck_assert_msg(ms >= 290 && ms <= 650, "returned after %ld ms", ms);
	zc_call_free(call);
}
END_TEST

START_TEST(test_budget_with_slow_failures)
{
	zc_call *call;
	long t0, ms;

	/* each attempt fails after 150 ms; 10 retries would take 1.5 s */
	use_target("r-budget2");
	declare("r-budget2", (zc_policy[]){fast_policy(10)});
	atomic_store(&fake.delay_ms, 150);
	script(-1, A_STATUS, 503);
	call = zc_call_new(NULL, "r-budget2", "GET", "/r");
	zc_call_timeout_ms(call, 400);
	t0 = now_ms();
	ck_assert_int_ne(zc_call_perform(call), ZC_OK);
	ms = now_ms() - t0;
	ck_assert_msg(ms <= 400 + SLACK_MS, "returned after %ld ms", ms);
	ck_assert_msg(zc_call_attempts(call) >= 2 &&
			      zc_call_attempts(call) <= 3,
		      "%d attempts", zc_call_attempts(call));
	zc_call_free(call);
}
END_TEST

/* ---- Dapr ---- */

static void
dapr_env(const char *token)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", fake.port);
	setenv("DAPR_HTTP_PORT", port, 1);
	if (token != NULL)
		setenv("DAPR_API_TOKEN", token, 1);
	else
		unsetenv("DAPR_API_TOKEN");
}

START_TEST(test_dapr_invoke_path_and_token)
{
	char head[2048], want[128];
	zc_call *call;

	dapr_env("s3cr3t");
	unsetenv("R_DAPR_URL");
	script(0, A_OK, 0);
	call = zc_call_new(NULL, "r-dapr", "GET", "/orders/7?x=1");
	ck_assert_int_eq(zc_call_perform(call), ZC_OK);
	snprintf(want, sizeof(want),
		 "http://127.0.0.1:%d/v1.0/invoke/r-dapr/method/orders/7?x=1",
		 fake.port);
	ck_assert_str_eq(zc_call_url(call), want);
	zc_call_free(call);
	fh_rec_copy(&fake, 0, head, sizeof(head));
	ck_assert_msg(strncmp(head,
			      "GET /v1.0/invoke/r-dapr/method/orders/7?x=1 "
			      "HTTP/1.1\r\n",
			      strlen("GET /v1.0/invoke/r-dapr/method/orders/7"
				     "?x=1 HTTP/1.1\r\n")) == 0,
		      "head: %s", head);
	ck_assert_ptr_nonnull(strstr(head, "\r\ndapr-api-token: s3cr3t\r\n"));
}
END_TEST

START_TEST(test_dapr_no_token_no_header)
{
	char head[2048];

	dapr_env(NULL);
	script(0, A_OK, 0);
	ck_assert_int_eq(do_call("r-dapr2", "GET", NULL, NULL), ZC_OK);
	fh_rec_copy(&fake, 0, head, sizeof(head));
	ck_assert_ptr_nonnull(strstr(head, "/v1.0/invoke/r-dapr2/method/r "));
	ck_assert_ptr_null(strcasestr(head, "dapr-api-token"));
}
END_TEST

START_TEST(test_dapr_no_retries_by_default)
{
	/* the sidecar retries; we do not multiply its attempts */
	dapr_env("t");
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-dapr3", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 1);
	ck_assert_int_eq(do_call("r-dapr3", "POST", "k", NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 2);
	/* zc_service(NULL policy) is the default too */
	declare("r-dapr4", NULL);
	ck_assert_int_eq(do_call("r-dapr4", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 3);
}
END_TEST

START_TEST(test_dapr_explicit_retries_kept)
{
	dapr_env("t");
	/* a policy in code, or the target's env, still sets retries */
	declare("r-dapr5", (zc_policy[]){fast_policy(2)});
	script(-1, A_STATUS, 503);
	ck_assert_int_eq(do_call("r-dapr5", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 3);
	atomic_store(&fake.requests, 0);
	setenv("R_DAPR6_RETRIES", "1", 1);
	ck_assert_int_eq(do_call("r-dapr6", "GET", NULL, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(requests(), 2);
}
END_TEST

START_TEST(test_env_url_beats_dapr_and_gets_no_token)
{
	char head[2048];
	zc_call *call;

	/* <NAME>_URL wins over the sidecar, and the token stays home */
	dapr_env("s3cr3t");
	setenv("DAPR_HTTP_PORT", "1", 1);
	use_target("r-dapr7");
	script(0, A_OK, 0);
	ck_assert_int_eq(do_call("r-dapr7", "GET", NULL, &call), ZC_OK);
	ck_assert_ptr_null(strstr(zc_call_url(call), "/v1.0/invoke/"));
	zc_call_free(call);
	fh_rec_copy(&fake, 0, head, sizeof(head));
	ck_assert_ptr_null(strcasestr(head, "dapr-api-token"));
	ck_assert_ptr_null(strcasestr(head, "s3cr3t"));
}
END_TEST

static Suite *
resilience_suite(void)
{
	Suite *s = suite_create("resilience");
	TCase *tc = tcase_create("scripted_downstream");

	tcase_add_checked_fixture(tc, fake_start, fake_stop);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_retry_until_success);
	tcase_add_test(tc, test_retries_bounded);
	tcase_add_test(tc, test_retryable_statuses);
	tcase_add_test(tc, test_retry_on_transport_errors);
	tcase_add_test(tc, test_idempotent_methods_retried);
	tcase_add_test(tc, test_post_without_key_never_retried);
	tcase_add_test(tc,
		       test_post_without_key_not_resent_on_reused_connection);
	tcase_add_test(tc, test_post_with_key_retried_same_key);
	tcase_add_test(tc, test_post_with_key_retried_on_reset);
	tcase_add_test(tc, test_keyed_409_retried_422_not);
	tcase_add_test(tc, test_backoff_from_policy);
	tcase_add_test(tc, test_backoff_capped);
	tcase_add_test(tc, test_backoff_from_global_env);
	tcase_add_test(tc, test_retry_after_honoured);
	tcase_add_test(tc, test_retry_after_beyond_budget);
	tcase_add_test(tc, test_breaker_opens_fails_fast_recovers);
	tcase_add_test(tc, test_breaker_half_open_failure_reopens);
	tcase_add_test(tc, test_breaker_counts_attempts_not_calls);
	tcase_add_test(tc, test_breaker_ignores_4xx);
	tcase_add_test(tc, test_bulkhead_full_at_once);
	tcase_add_test(tc, test_bulkhead_from_target_env);
	tcase_add_test(tc, test_bulkhead_unbounded_by_default);
	tcase_add_test(tc, test_service_policy_honoured);
	tcase_add_test(tc, test_target_env_overrides_code);
	tcase_add_test(tc, test_target_env_without_service);
	tcase_add_test(tc, test_target_env_invalid);
	tcase_add_test(tc, test_call_setter_overrides_env);
	tcase_add_test(tc, test_budget_with_hanging_server);
	tcase_add_test(tc, test_budget_with_slow_failures);
	tcase_add_test(tc, test_dapr_invoke_path_and_token);
	tcase_add_test(tc, test_dapr_no_token_no_header);
	tcase_add_test(tc, test_dapr_no_retries_by_default);
	tcase_add_test(tc, test_dapr_explicit_retries_kept);
	tcase_add_test(tc, test_env_url_beats_dapr_and_gets_no_token);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_client_suite(resilience_suite());
}
