/*
 * test_idempotency.c - routes registered with zc_route_idempotent, in
 * process: a repeated Idempotency-Key with the same body replays the
 * stored answer without running the handler; another body is a 422; a
 * repeat while the first still runs is a 409 with Retry-After; 5xx answers
 * are not stored; keys are validated, scoped per method + path, bounded in number
 * (ZC_IDEMPOTENCY_MAX_KEYS) and in time (ZC_IDEMPOTENCY_TTL_S).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zenith.h"

#include "testutil.h"

static atomic_int runs;      /* handler runs, all routes */
static atomic_int fail_runs; /* runs of /flaky */

/* 201 {"run": n, "body": <request body>} */
static int
h_pay(zc_req *req, zc_res *res, void *arg)
{
	size_t len;
	const char *b = zc_req_body(req, &len);
	int n = atomic_fetch_add(&runs, 1) + 1;

	zc_res_header(res, "X-Run", "yes");
	return zc_res_jsonf(res, 201, "{s:i, s:s%, s:s}", "run", n, "body",
			    b != NULL ? b : "", len, "route",
			    (const char *)arg);
}

/* 503 on its first run, 200 after */
static int
h_flaky(zc_req *req, zc_res *res, void *arg)
{
	int n = atomic_fetch_add(&fail_runs, 1) + 1;

	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	if (n == 1)
		return zc_res_error(res, 503, "try again");
	return zc_res_jsonf(res, 200, "{s:i}", "run", n);
}

/* fails as a handler (500) on its first run */
static int
h_broken(zc_req *req, zc_res *res, void *arg)
{
	int n = atomic_fetch_add(&fail_runs, 1) + 1;

	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	if (n == 1)
		return -1;
	return zc_res_jsonf(res, 200, "{s:i}", "run", n);
}

/* a client error, which is stored like any other answer below 500 */
static int
h_reject(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	return zc_res_error(res, 400, "no, run %d", atomic_load(&runs));
}

/* blocks until released */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open, in_slow;

static int
h_slow(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	pthread_mutex_lock(&gate_mu);
	in_slow = true;
	pthread_cond_broadcast(&gate_cv);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	return zc_res_jsonf(res, 200, "{s:s}", "slow", "done");
}

/* sleeps past a 100 ms handler deadline, then answers 200 */
static int
h_late(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	sleep_ms(250);
	return zc_res_jsonf(res, 200, "{s:s}", "late", "but done");
}

/* /acct/{id}: answers with the id */
static int
h_acct(zc_req *req, zc_res *res, void *arg)
{
	(void)arg;
	atomic_fetch_add(&runs, 1);
	return zc_res_jsonf(res, 200, "{s:s}", "id", zc_req_param(req, "id"));
}

static int
setup(zc_app *app)
{
	if (zc_route_with(app, "POST", "/pay", h_pay, "pay",
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/pay2", h_pay, "pay2",
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "PUT", "/pay", h_pay, "put-pay",
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/flaky", h_flaky, NULL,
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/broken", h_broken, NULL,
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/reject", h_reject, NULL,
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/slow", h_slow, NULL,
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/acct/{id}", h_acct, NULL,
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/late", h_late, NULL,
			  &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK ||
	    zc_route(app, "POST", "/plain", h_pay, "plain") != ZC_OK)
		return -1;
	return 0;
}

static zc_app *app;

static void
up(void)
{
	atomic_store(&runs, 0);
	atomic_store(&fail_runs, 0);
	gate_open = in_slow = false;
	app = open_app(setup);
}

static void
down(void)
{
	zc_app_free(app);
	app = NULL;
	unsetenv("ZC_IDEMPOTENCY_MAX_KEYS");
	unsetenv("ZC_IDEMPOTENCY_TTL_S");
	unsetenv("ZC_HANDLER_TIMEOUT_MS");
}

static void
reopen(void)
{
	reopen_app(&app, setup);
}

/* POST (or method) path with an Idempotency-Key (NULL: none). */
static zc_res *
send_req(const char *method, const char *path, const char *key,
	 const char *body)
{
	char hdr[512];
	const char *h[] = {hdr, NULL};
	zc_res *res;

	if (key != NULL)
		snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", key);
	res = zc_test_request(app, method, path, key != NULL ? h : NULL, body);
	ck_assert_ptr_nonnull(res);
	return res;
}

static zc_res *
post(const char *path, const char *key, const char *body)
{
	return send_req("POST", path, key, body);
}

static int
status_of(zc_res *res)
{
	int s = zc_res_get_status(res);

	zc_res_free(res);
	return s;
}

static bool
replayed(const zc_res *res)
{
	const char *h = zc_res_get_header(res, "Idempotent-Replayed");

	return h != NULL && strcmp(h, "true") == 0;
}

/* The body's "error" must be a string; frees res, returns its status. */
static int
json_error_status(zc_res *res)
{
	size_t len;
	const char *b = zc_res_get_body(res, &len);
	json_t *v = json_loadb(b, len, 0, NULL);
	int s = zc_res_get_status(res);

	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	ck_assert_msg(v != NULL && json_is_string(json_object_get(v, "error")),
		      "error body: %.*s", (int)len, b);
	json_decref(v);
	zc_res_free(res);
	return s;
}

/* ---- tests ---- */

START_TEST(test_replay_same_key_same_body)
{
	zc_res *a, *b;
	size_t la, lb;
	const char *ba, *bb;

	a = post("/pay", "k-1", "{\"amount\":5}");
	ck_assert_int_eq(zc_res_get_status(a), 201);
	ck_assert(!replayed(a));
	b = post("/pay", "k-1", "{\"amount\":5}");
	ck_assert_int_eq(atomic_load(&runs), 1);
	ck_assert_int_eq(zc_res_get_status(b), 201);
	ck_assert(replayed(b));
	ba = zc_res_get_body(a, &la);
	bb = zc_res_get_body(b, &lb);
	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(ba, bb, la) == 0);
	ck_assert_str_eq(zc_res_get_header(b, "Content-Type"),
			 zc_res_get_header(a, "Content-Type"));
	zc_res_free(b);
	/* and again: still once */
	b = post("/pay", "k-1", "{\"amount\":5}");
	ck_assert(replayed(b));
	ck_assert_int_eq(atomic_load(&runs), 1);
	zc_res_free(b);
	zc_res_free(a);
	/* the header name is case-insensitive */
	{
		const char *h[] = {"idempotency-key: k-1", NULL};
		b = zc_test_request(app, "POST", "/pay", h, "{\"amount\":5}");
		ck_assert(replayed(b));
		zc_res_free(b);
	}
	ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

START_TEST(test_same_key_other_body_422)
{
	zc_res *r;

	ck_assert_int_eq(status_of(post("/pay", "k-2", "{\"amount\":5}")), 201);
	ck_assert_int_eq(
		json_error_status(post("/pay", "k-2", "{\"amount\":6}")), 422);
	/* whitespace counts: the payload is the bytes */
	ck_assert_int_eq(
		json_error_status(post("/pay", "k-2", "{\"amount\": 5}")), 422);
	ck_assert_int_eq(json_error_status(post("/pay", "k-2", NULL)), 422);
	ck_assert_int_eq(atomic_load(&runs), 1);
	/* the stored answer is intact */
	r = post("/pay", "k-2", "{\"amount\":5}");
	ck_assert(replayed(r));
	zc_res_free(r);
}
END_TEST

struct bg {
	const char *path, *key, *body;
	int status;
};

static void *
bg_post(void *arg)
{
	struct bg *b = arg;
	zc_res *res = zc_test_request(app, "POST", b->path,
				      (const char *[]){b->key, NULL}, b->body);

	b->status = res != NULL ? zc_res_get_status(res) : -1;
	zc_res_free(res);
	return NULL;
}

START_TEST(test_in_flight_duplicate_409)
{
	struct bg first = {"/slow", "Idempotency-Key: k-3", "{}", 0};
	pthread_t t;
	zc_res *r;

	ck_assert_int_eq(pthread_create(&t, NULL, bg_post, &first), 0);
	pthread_mutex_lock(&gate_mu);
	while (!in_slow)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);

	/* the first is still running */
	r = post("/slow", "k-3", "{}");
	ck_assert_int_eq(zc_res_get_status(r), 409);
	ck_assert_str_eq(zc_res_get_header(r, "Retry-After"), "1");
	ck_assert_int_eq(json_error_status(r), 409);
	ck_assert_int_eq(atomic_load(&runs), 1);

	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	pthread_join(t, NULL);
	ck_assert_int_eq(first.status, 200);

	/* finished: now the retry gets the stored answer */
	r = post("/slow", "k-3", "{}");
	ck_assert_int_eq(zc_res_get_status(r), 200);
	ck_assert(replayed(r));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

START_TEST(test_no_key_runs_every_time)
{
	int i;

	for (i = 0; i < 3; i++) {
		zc_res *r = post("/pay", NULL, "{\"amount\":5}");
		ck_assert_int_eq(zc_res_get_status(r), 201);
		ck_assert(!replayed(r));
		zc_res_free(r);
	}
	ck_assert_int_eq(atomic_load(&runs), 3);
	/* and an ordinary route ignores the header */
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(
			status_of(post("/plain", "k-4", "{\"amount\":5}")),
			201);
	ck_assert_int_eq(atomic_load(&runs), 5);
}
END_TEST

START_TEST(test_5xx_not_stored)
{
	zc_res *r;

	ck_assert_int_eq(status_of(post("/flaky", "k-5", "{}")), 503);
	/* the retry runs the handler again, and that answer is kept */
	r = post("/flaky", "k-5", "{}");
	ck_assert_int_eq(zc_res_get_status(r), 200);
	ck_assert(!replayed(r));
	zc_res_free(r);
	r = post("/flaky", "k-5", "{}");
	ck_assert_int_eq(zc_res_get_status(r), 200);
	ck_assert(replayed(r));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 2);
}
END_TEST

START_TEST(test_failed_handler_not_stored)
{
	ck_assert_int_eq(json_error_status(post("/broken", "k-6", "{}")), 500);
	ck_assert_int_eq(status_of(post("/broken", "k-6", "{}")), 200);
	ck_assert_int_eq(atomic_load(&runs), 2);
}
END_TEST

START_TEST(test_4xx_stored)
{
	zc_res *a = post("/reject", "k-7", "{}"), *b;
	size_t la, lb;
	const char *ba, *bb;

	b = post("/reject", "k-7", "{}");
	ck_assert_int_eq(zc_res_get_status(a), 400);
	ck_assert_int_eq(zc_res_get_status(b), 400);
	ck_assert(replayed(b));
	ba = zc_res_get_body(a, &la);
	bb = zc_res_get_body(b, &lb);
	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(ba, bb, la) == 0);
	ck_assert_int_eq(atomic_load(&runs), 1);
	zc_res_free(a);
	zc_res_free(b);
}
END_TEST

START_TEST(test_invalid_keys_400)
{
	char k255[256], k256[300];
	const char *bad[] = {"",    "\"\"", k256,          "a\x01z", "a\tz",
			     "a z", "a\"z", "caf\xc3\xa9", "\"",     NULL};
	int i;

	memset(k255, 'k', 255);
	k255[255] = '\0';
	memset(k256, 'k', 256);
	k256[256] = '\0';
	for (i = 0; bad[i] != NULL; i++) {
		zc_res *r = post("/pay", bad[i], "{}");
		ck_assert_msg(zc_res_get_status(r) == 400, "key \"%s\" -> %d",
			      bad[i], zc_res_get_status(r));
		ck_assert_int_eq(json_error_status(r), 400);
	}
	ck_assert_int_eq(atomic_load(&runs), 0);
	/* 255 printable characters is the longest key */
	ck_assert_int_eq(status_of(post("/pay", k255, "{}")), 201);
	/* the sf-string form may be 255 inside its quotes */
	snprintf(k256, sizeof(k256), "\"%s\"", k255);
	k256[1] = 'q';
	ck_assert_int_eq(status_of(post("/pay", k256, "{}")), 201);
	ck_assert_int_eq(atomic_load(&runs), 2);
}
END_TEST

START_TEST(test_quoted_key_equals_token)
{
	zc_res *r;

	/* the draft's sf-string "abc" and the bare token abc are one key */
	ck_assert_int_eq(status_of(post("/pay", "abc", "{}")), 201);
	r = post("/pay", "\"abc\"", "{}");
	ck_assert(replayed(r));
	zc_res_free(r);
	ck_assert_int_eq(status_of(post("/pay", "\"xyz\"", "{}")), 201);
	r = post("/pay", "xyz", "{}");
	ck_assert(replayed(r));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 2);
}
END_TEST

START_TEST(test_scope_per_route)
{
	zc_res *r;

	ck_assert_int_eq(status_of(post("/pay", "k-8", "{}")), 201);
	/* another pattern, another method: independent */
	r = post("/pay2", "k-8", "{}");
	ck_assert_int_eq(zc_res_get_status(r), 201);
	ck_assert(!replayed(r));
	ck_assert_ptr_nonnull(strstr(zc_res_get_body(r, NULL), "pay2"));
	zc_res_free(r);
	r = send_req("PUT", "/pay", "k-8", "{}");
	ck_assert(!replayed(r));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 3);
	/* each still replays its own */
	r = post("/pay2", "k-8", "{}");
	ck_assert(replayed(r));
	ck_assert_ptr_nonnull(strstr(zc_res_get_body(r, NULL), "pay2"));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 3);
}
END_TEST

/*
 * One pattern, two resources: the same key and body sent to /acct/a and
 * then /acct/b is not the same request, and /acct/b must never receive
 * /acct/a's stored answer (keys are scoped to method + path).
 */
START_TEST(test_scope_includes_path_params)
{
	zc_res *r;

	ck_assert_int_eq(status_of(post("/acct/a", "k-9", "{}")), 200);
	r = post("/acct/b", "k-9", "{}");
	ck_assert_msg(!replayed(r),
		      "/acct/b got /acct/a's stored answer: %d %s",
		      zc_res_get_status(r), zc_res_get_body(r, NULL));
	ck_assert_int_eq(zc_res_get_status(r), 200);
	ck_assert_ptr_nonnull(strstr(zc_res_get_body(r, NULL), "\"b\""));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 2);
	r = post("/acct/a", "k-9", "{}");
	ck_assert(replayed(r));
	ck_assert_ptr_nonnull(strstr(zc_res_get_body(r, NULL), "\"a\""));
	zc_res_free(r);
}
END_TEST

/*
 * A handler that overran its deadline did the work: the client got a 504,
 * but the answer is stored, and the retry gets it without a second run.
 */
START_TEST(test_overrun_answer_stored)
{
	zc_res *r;

	setenv("ZC_HANDLER_TIMEOUT_MS", "100", 1);
	reopen();
	ck_assert_int_eq(json_error_status(post("/late", "k-10", "{}")), 504);
	ck_assert_int_eq(atomic_load(&runs), 1);
	r = post("/late", "k-10", "{}");
	ck_assert_int_eq(zc_res_get_status(r), 200);
	ck_assert(replayed(r));
	ck_assert_ptr_nonnull(strstr(zc_res_get_body(r, NULL), "but done"));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

static void
expect_replayed(const char *key, bool want)
{
	zc_res *r = post("/pay", key, "{}");

	ck_assert_msg(replayed(r) == want, "%s %s", key,
		      want ? "not replayed" : "replayed");
	zc_res_free(r);
}

START_TEST(test_eviction_oldest_first)
{
	char key[16];
	int i;

	setenv("ZC_IDEMPOTENCY_MAX_KEYS", "3", 1);
	reopen();
	for (i = 1; i <= 3; i++) {
		snprintf(key, sizeof(key), "e-%d", i);
		ck_assert_int_eq(status_of(post("/pay", key, "{}")), 201);
	}
	/* at the limit, all three are remembered (a lookup adds nothing,
	 * so it must not push the oldest out) */
	expect_replayed("e-1", true);
	expect_replayed("e-2", true);
	expect_replayed("e-3", true);
	ck_assert_int_eq(atomic_load(&runs), 3);
	/* a fourth key makes room by forgetting the oldest */
	ck_assert_int_eq(status_of(post("/pay", "e-4", "{}")), 201);
	expect_replayed("e-4", true);
	expect_replayed("e-3", true);
	expect_replayed("e-2", true);
	ck_assert_int_eq(atomic_load(&runs), 4);
	expect_replayed("e-1", false);
	ck_assert_int_eq(atomic_load(&runs), 5);
}
END_TEST

START_TEST(test_ttl)
{
	zc_res *r;

	setenv("ZC_IDEMPOTENCY_TTL_S", "1", 1);
	reopen();
	ck_assert_int_eq(status_of(post("/pay", "t-1", "{}")), 201);
	r = post("/pay", "t-1", "{}");
	ck_assert(replayed(r));
	zc_res_free(r);
	sleep_ms(1100);
	r = post("/pay", "t-1", "{}");
	ck_assert(!replayed(r));
	zc_res_free(r);
	ck_assert_int_eq(atomic_load(&runs), 2);
	/* and the new answer is kept from now */
	r = post("/pay", "t-1", "{}");
	ck_assert(replayed(r));
	zc_res_free(r);
}
END_TEST

/* Many threads, one key: the handler runs exactly once. */
#define THREADS 8

static void *
dup_post(void *arg)
{
	int *status = arg;
	zc_res *res =
		zc_test_request(app, "POST", "/pay",
				(const char *[]){"Idempotency-Key: race", NULL},
				"{\"amount\":1}");

	*status = res != NULL ? zc_res_get_status(res) : -1;
	zc_res_free(res);
	return NULL;
}

START_TEST(test_concurrent_same_key_runs_once)
{
	pthread_t t[THREADS];
	int st[THREADS], i, ok = 0;

	for (i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, dup_post, &st[i]),
				 0);
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(st[i] == 201 || st[i] == 409, "status %d", st[i]);
		ok += st[i] == 201;
	}
	ck_assert_int_ge(ok, 1);
	ck_assert_int_eq(atomic_load(&runs), 1);
}
END_TEST

static Suite *
idem_suite(void)
{
	Suite *s = suite_create("idempotency");
	TCase *tc = tcase_create("routes");

	tcase_add_checked_fixture(tc, up, down);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_replay_same_key_same_body);
	tcase_add_test(tc, test_same_key_other_body_422);
	tcase_add_test(tc, test_in_flight_duplicate_409);
	tcase_add_test(tc, test_no_key_runs_every_time);
	tcase_add_test(tc, test_5xx_not_stored);
	tcase_add_test(tc, test_failed_handler_not_stored);
	tcase_add_test(tc, test_4xx_stored);
	tcase_add_test(tc, test_invalid_keys_400);
	tcase_add_test(tc, test_quoted_key_equals_token);
	tcase_add_test(tc, test_scope_per_route);
	tcase_add_test(tc, test_scope_includes_path_params);
	tcase_add_test(tc, test_overrun_answer_stored);
	tcase_add_test(tc, test_eviction_oldest_first);
	tcase_add_test(tc, test_ttl);
	tcase_add_test(tc, test_concurrent_same_key_runs_once);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(idem_suite());
}
