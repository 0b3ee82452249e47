/*
 * test_outbox.c - the transactional outbox on SQLite (a temporary file)
 * and PostgreSQL ($ZC_TEST_PG_URL, which scripts/run-unit.sh starts):
 * zc_call_send_async and zc_event_send in a transactional handler write a
 * row only when the transaction commits; the relay delivers it after the
 * commit with the row's Idempotency-Key and trace context, again after a
 * failure with the same key, once per row when two relays race, after
 * the lease of a relay that died, and marks a permanent refusal 'dead';
 * the drain leaves what it could not deliver in the store, not logged as
 * undelivered.  With memory:, a call waits in memory for the commit.
 *
 * Without ZC_TEST_PG_URL the PostgreSQL cases fail saying how to run
 * them, unless ZC_TEST_NO_PG=1 (then they are skipped, with a notice).
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#include "fake_http.h"

enum { B_SQLITE, B_POSTGRES };

static char dir[64];
static char url[512];
static struct fake_http fake;
static atomic_int fail_first; /* answer status_fail to requests below */
static atomic_int status_fail;
static zc_app *app;

static int
answer(struct fake_http *f, struct fh_conn *c)
{
	int n;

	if (fh_delay(f, c) != 0)
		return -1;
	n = fh_record(f, c);
	if (n < atomic_load(&fail_first))
		return fh_reply(c->fd, atomic_load(&status_fail), "No", "",
				"{}", 2, false);
	return fh_reply(c->fd, 200, "OK", "", "{}", 2, false);
}

/* Configure backend b in the environment; false when skipped. */
static bool
use(int b, const char *test)
{
	const char *u = getenv("ZC_TEST_PG_URL");
	const char *no = getenv("ZC_TEST_NO_PG");

	snprintf(dir, sizeof(dir), "/tmp/zc-outbox-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	if (b == B_SQLITE) {
		snprintf(url, sizeof(url), "sqlite:%s/ob.db", dir);
	} else if (u != NULL && *u != '\0') {
		snprintf(url, sizeof(url), "%s", u);
	} else if (no != NULL && strcmp(no, "1") == 0) {
		printf("test_outbox: SKIPPED %s on PostgreSQL "
		       "(ZC_TEST_NO_PG=1)\n",
		       test);
		return false;
	} else {
		ck_abort_msg("ZC_TEST_PG_URL is not set.  Run "
			     "scripts/run-unit.sh BUILD (it starts a private "
			     "PostgreSQL); ZC_TEST_NO_PG=1 skips the "
			     "PostgreSQL cases.");
	}
	setenv("ZC_STORE_URL", url, 1);
	atomic_store(&fail_first, 0);
	atomic_store(&status_fail, 503);
	fh_start(&fake, answer);
	set_service_port("ob-target", fake.port);
	return true;
}

static void
done(void)
{
	char cmd[128];

	zc_app_free(app);
	app = NULL;
	fh_stop(&fake);
	unsetenv("ZC_STORE_URL");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_outbox: could not remove %s\n", dir);
}

/* ---- the store, read and written directly ---- */

struct q {
	const char *sql;
	int64_t v;
};

static int
q_fn(zc_tx *tx, void *arg)
{
	struct q *q = arg;
	zc_rows *rows = NULL;

	q->v = -1;
	if (zc_tx_query(tx, &rows, q->sql, "") != ZC_OK)
		return -1;
	if (zc_rows_count(rows) > 0)
		ck_assert_int_eq(zc_rows_int64(rows, 0, 0, &q->v), ZC_OK);
	zc_rows_free(rows);
	return 0;
}

static int64_t
q_int(const char *sql)
{
	struct q q = {sql, -1};
	int rc = 0;

	ck_assert_int_eq(zc__store_run(q_fn, &q, &rc), ZC_OK);
	ck_assert_int_eq(rc, 0);
	return q.v;
}

static int
x_fn(zc_tx *tx, void *arg)
{
	return zc_tx_exec(tx, arg, "") == ZC_OK ? 0 : -1;
}

static void
x_sql(const char *sql)
{
	int rc = 0;

	ck_assert_int_eq(zc__store_run(x_fn, (void *)sql, &rc), ZC_OK);
	ck_assert_int_eq(rc, 0);
}

/* ---- the function under test ---- */

static const char schema[] = "CREATE TABLE IF NOT EXISTS ob_things ("
			     " id TEXT PRIMARY KEY);";
static atomic_int sent_err;

/* POST /send?what=call|event|both&fail=1&n=N: writes a row of its own,
 * sends, and answers 200 (or 422 with fail=1). */
static int
h_send(zc_req *req, zc_res *res, void *arg)
{
	const char *what = zc_req_query(req, "what");
	const char *fail = zc_req_query(req, "fail");
	const char *n = zc_req_query(req, "n");
	char id[33], sink[64];
	zc_call *call;
	zc_event *ev;
	zc_err err = ZC_OK;

	(void)arg;
	ck_assert_int_eq(zc_tx_exec(zc_req_tx(req),
				    "INSERT INTO ob_things (id) VALUES ($1)",
				    "s", zc_random_id(id, sizeof(id))),
			 ZC_OK);
	if (what == NULL || strcmp(what, "event") != 0) {
		call = zc_call_new(req, "ob-target", "POST", "/hook");
		ck_assert_ptr_nonnull(call);
		zc_call_jsonf(call, "{s:s}", "n", n != NULL ? n : "0");
		if (zc_req_header(req, "X-Key") != NULL)
			zc_call_header(call, "Idempotency-Key",
				       zc_req_header(req, "X-Key"));
		zc_call_header(call, "X-Custom", "kept");
		if ((err = zc_call_send_async(call)) != ZC_OK)
			zc_call_free(call);
	}
	if (err == ZC_OK && what != NULL &&
	    (strcmp(what, "event") == 0 || strcmp(what, "both") == 0)) {
		static const char bin[] = "\xff\xfe\x00\x01 bytes";
		ev = zc_event_new("com.example.ob");
		ck_assert_ptr_nonnull(ev);
		zc_event_set(ev, "id", n != NULL ? n : "e0");
		zc_event_set_data(ev, "application/octet-stream", bin,
				  sizeof(bin) - 1);
		snprintf(sink, sizeof(sink), "http://127.0.0.1:%d/events",
			 fake.port);
		err = zc_event_send(req, sink, ev);
		zc_event_free(ev);
	}
	atomic_store(&sent_err, err);
	if (fail != NULL)
		return zc_res_error(res, 422, "refused after sending");
	return zc_res_jsonf(res, 200, "{s:s}", "status", "sent");
}

static int
setup(zc_app *a)
{
	zc_route_opts tx = {.flags = ZC_ROUTE_TRANSACTIONAL};

	if (zc_store_schema(a, "ob-test", 1, schema) != ZC_OK ||
	    zc_service(a, "ob-target", NULL) != ZC_OK)
		return -1;
	return zc_route_with(a, "POST", "/send", h_send, NULL, &tx);
}

static int
post(const char *target, const char *const *headers)
{
	zc_res *res = zc_test_request(app, "POST", target, headers, "{}");
	int st;

	ck_assert_ptr_nonnull(res);
	st = zc_res_get_status(res);
	zc_res_free(res);
	return st;
}

/* The app, its relay stopped (the test runs passes itself) and the
 * runtime's tables empty. */
static void
open_quiet(void)
{
	app = open_app(setup);
	ck_assert(zc__relay_running());
	zc__relay_drain(zc__now_ns());
	x_sql("DELETE FROM zc_outbox");
	x_sql("DELETE FROM zc_idem");
	x_sql("DELETE FROM ob_things");
}

static void
wait_requests(int n, long ms)
{
	long long t0 = now_ms();

	while (atomic_load(&fake.requests) < n && now_ms() - t0 < ms)
		poll(NULL, 0, 5);
}

/* Every claim-able row due now (the relay's backoff skipped). */
static void
all_due_now(void)
{
	x_sql("UPDATE zc_outbox SET next_attempt_at = 0 WHERE state = "
	      "'pending' AND lease_owner IS NULL");
}

/* ---- tests ---- */

START_TEST(rows_only_on_commit)
{
	if (!use(_i, "rows_only_on_commit"))
		return;
	open_quiet();
	/* rolled back (422): neither its row nor its call */
	ck_assert_int_eq(post("/send?fail=1", NULL), 422);
	ck_assert_int_eq(atomic_load(&sent_err), ZC_OK);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	ck_assert_int_eq(q_int("SELECT count(*) FROM ob_things"), 0);
	/* committed: one row, not yet delivered (the relay is stopped) */
	ck_assert_int_eq(post("/send?n=1", NULL), 200);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 1);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox WHERE kind = "
			       "'call' AND target = 'ob-target' AND path = "
			       "'/hook' AND idempotency_key = id AND "
			       "traceparent IS NOT NULL"),
			 1);
	ck_assert_int_eq(atomic_load(&fake.requests), 0);
	/* a pass delivers it, and the row goes */
	ck_assert_int_eq(zc__relay_pass("test-relay", 8, 30000), 1);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	done();
}
END_TEST

START_TEST(delivered_after_commit_by_the_relay)
{
	char key[128], tp[128], custom[64], req[FH_REC_SIZE];
	const char *const hdrs[] = {"X-Key: caller-key-1",
				    "traceparent: 00-0af7651916cd43dd8448eb21"
				    "1c80319c-b7ad6b7169203331-01",
				    NULL};
	long long t0;

	if (!use(_i, "delivered_after_commit_by_the_relay"))
		return;
	app = open_app(setup);
	x_sql("DELETE FROM zc_outbox");
	t0 = now_ms();
	ck_assert_int_eq(post("/send?n=7", hdrs), 200);
	/* woken by the commit, not by its poll (1 s) */
	wait_requests(1, 5000);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	ck_assert_int_lt(now_ms() - t0, 900);
	fh_rec_header(&fake, 0, "Idempotency-Key", key, sizeof(key));
	fh_rec_header(&fake, 0, "traceparent", tp, sizeof(tp));
	fh_rec_header(&fake, 0, "X-Custom", custom, sizeof(custom));
	fh_rec_copy(&fake, 0, req, sizeof(req));
	ck_assert_str_eq(key, "caller-key-1");
	/* the trace of the request that sent it, a span of its own */
	ck_assert_ptr_nonnull(
		strstr(tp, "00-0af7651916cd43dd8448eb211c80319c-"));
	ck_assert_str_eq(custom, "kept");
	ck_assert_ptr_nonnull(strstr(req, "POST /hook HTTP/1.1"));
	ck_assert_ptr_nonnull(strstr(req, "{\"n\":\"7\"}"));
	/* the row goes once delivered */
	t0 = now_ms();
	while (q_int("SELECT count(*) FROM zc_outbox") != 0 &&
	       now_ms() - t0 < 3000)
		sleep_ms(10);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	/* what /metrics says of it */
	{
		zc_res *m = zc_test_request(app, "GET", "/metrics", NULL, NULL);
		char *text = body_copy(m);
		ck_assert_ptr_nonnull(strstr(text, "\nzc_outbox_depth 0\n"));
		ck_assert_ptr_nonnull(
			strstr(text, "\nzc_outbox_oldest_age_seconds 0"));
		ck_assert_ptr_nonnull(strstr(
			text,
			"zc_outbox_deliveries_total{outcome=\"delivered\"} "
			"1\n"));
		ck_assert_ptr_nonnull(
			strstr(text, "\nzc_outbox_claimed_rows_total 1\n"));
		free(text);
		zc_res_free(m);
	}
	done();
}
END_TEST

START_TEST(retried_with_the_same_key)
{
	char k0[128], k1[128], k2[128];

	if (!use(_i, "retried_with_the_same_key"))
		return;
	setenv("OB_TARGET_RETRIES", "0", 1);
	open_quiet();
	atomic_store(&fail_first, 2);
	ck_assert_int_eq(post("/send?n=1", NULL), 200);
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 1);
	ck_assert_int_eq(q_int("SELECT attempts FROM zc_outbox"), 1);
	/* the failure is kept and the row waits (1-60 s backoff) */
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox WHERE "
			       "last_error = 'HTTP 503' AND lease_owner IS "
			       "NULL"),
			 1);
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 0);
	all_due_now();
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 1);
	all_due_now();
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 1);
	ck_assert_int_eq(atomic_load(&fake.requests), 3);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	fh_rec_header(&fake, 0, "Idempotency-Key", k0, sizeof(k0));
	fh_rec_header(&fake, 1, "Idempotency-Key", k1, sizeof(k1));
	fh_rec_header(&fake, 2, "Idempotency-Key", k2, sizeof(k2));
	ck_assert_uint_eq(strlen(k0), 32); /* the row's id */
	ck_assert_str_eq(k0, k1);
	ck_assert_str_eq(k1, k2);
	unsetenv("OB_TARGET_RETRIES");
	done();
}
END_TEST

/* Two relays on connections of their own, racing over the same rows. */
struct racer {
	const char *owner;
	int claimed;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	int n, idle = 0;

	while (idle < 3) {
		n = zc__relay_pass(r->owner, 3, 30000);
		ck_assert_int_ge(n, 0);
		r->claimed += n;
		idle = n == 0 ? idle + 1 : 0;
	}
	return NULL;
}

START_TEST(two_relays_deliver_each_row_once)
{
	struct racer a = {"relay-a", 0}, b = {"relay-b", 0};
	pthread_t ta, tb;
	char key[128], seen[40][128];
	int i, j, n = 40;

	if (!use(_i, "two_relays_deliver_each_row_once"))
		return;
	open_quiet();
	for (i = 0; i < n; i++)
		ck_assert_int_eq(post("/send", NULL), 200);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), n);
	atomic_store(&fake.delay_ms, 5);
	pthread_create(&ta, NULL, race, &a);
	pthread_create(&tb, NULL, race, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	ck_assert_int_eq(a.claimed + b.claimed, n);
	ck_assert_int_gt(a.claimed, 0);
	ck_assert_int_gt(b.claimed, 0);
	ck_assert_int_eq(atomic_load(&fake.requests), n);
	for (i = 0; i < n; i++) {
		fh_rec_header(&fake, i, "Idempotency-Key", key, sizeof(key));
		for (j = 0; j < i; j++)
			ck_assert_str_ne(seen[j], key);
		snprintf(seen[i], sizeof(seen[i]), "%s", key);
	}
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	done();
}
END_TEST

START_TEST(lease_of_a_dead_relay_is_taken_over)
{
	struct zc_outbox_row *rows;
	size_t n;

	if (!use(_i, "lease_of_a_dead_relay_is_taken_over"))
		return;
	open_quiet();
	ck_assert_int_eq(post("/send", NULL), 200);
	/* a relay claims it for 300 ms and dies: never delivers */
	ck_assert_int_eq(zc__outbox_claim("dead-relay", 300, 8, &rows, &n),
			 ZC_OK);
	ck_assert_uint_eq(n, 1);
	zc__outbox_rows_free(rows, n);
	/* its lease holds ... */
	ck_assert_int_eq(zc__relay_pass("live-relay", 8, 30000), 0);
	ck_assert_int_eq(atomic_load(&fake.requests), 0);
	/* ... until it ends */
	sleep_ms(400);
	ck_assert_int_eq(zc__relay_pass("live-relay", 8, 30000), 1);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	done();
}
END_TEST

START_TEST(permanent_refusal_is_dead_and_logged)
{
	struct capture c;
	char *log;

	if (!use(_i, "permanent_refusal_is_dead_and_logged"))
		return;
	open_quiet();
	atomic_store(&fail_first, 100);
	atomic_store(&status_fail, 400);
	ck_assert_int_eq(post("/send?n=9", NULL), 200);
	capture_start(&c);
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 1);
	log = capture_end(&c);
	ck_assert_ptr_nonnull(strstr(log, "[UNDELIVERED] {"));
	ck_assert_ptr_nonnull(strstr(log, "\\\"n\\\":\\\"9\\\""));
	free(log);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox WHERE state = "
			       "'dead' AND last_error = 'HTTP 400'"),
			 1);
	/* not claimed again */
	all_due_now();
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 0);
	done();
}
END_TEST

START_TEST(drain_leaves_rows_in_the_store)
{
	struct capture c;
	char *log;

	if (!use(_i, "drain_leaves_rows_in_the_store"))
		return;
	setenv("ZC_DRAIN_TIMEOUT_MS", "1500", 1);
	setenv("OB_TARGET_BREAKER_FAILURES", "0", 1);
	open_quiet();
	set_service_port("ob-target", closed_port());
	ck_assert_int_eq(post("/send?n=1", NULL), 200);
	ck_assert_int_eq(post("/send?n=2", NULL), 200);
	ck_assert_int_eq(zc__relay_start(NULL, 0), 0);
	capture_start(&c);
	zc_app_free(app); /* the drain, as on SIGTERM */
	app = NULL;
	log = capture_end(&c);
	ck_assert_ptr_null(strstr(log, "[UNDELIVERED]"));
	ck_assert_ptr_nonnull(strstr(log, "2 row(s) left in the store"));
	free(log);
	/* the next process finds them, given back, and delivers them */
	set_service_port("ob-target", fake.port);
	app = open_app(setup);
	zc__relay_drain(zc__now_ns());
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox WHERE "
			       "lease_owner IS NULL"),
			 2);
	all_due_now();
	ck_assert_int_eq(zc__relay_pass("next", 8, 30000), 2);
	ck_assert_int_eq(atomic_load(&fake.requests), 2);
	unsetenv("ZC_DRAIN_TIMEOUT_MS");
	unsetenv("OB_TARGET_BREAKER_FAILURES");
	done();
}
END_TEST

START_TEST(event_send_in_a_transaction_goes_to_the_outbox)
{
	char req[FH_REC_SIZE], id[64];
	const char *body;

	if (!use(_i, "event_send_in_a_transaction_goes_to_the_outbox"))
		return;
	open_quiet();
	/* rolled back: nothing goes */
	ck_assert_int_eq(post("/send?what=event&n=ev-1&fail=1", NULL), 422);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox"), 0);
	ck_assert_int_eq(post("/send?what=event&n=ev-2", NULL), 200);
	ck_assert_int_eq(atomic_load(&sent_err), ZC_OK);
	ck_assert_int_eq(atomic_load(&fake.requests), 0); /* not in line */
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_outbox WHERE kind = "
			       "'event' AND idempotency_key IS NULL"),
			 1);
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 1);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	fh_rec_copy(&fake, 0, req, sizeof(req));
	fh_rec_header(&fake, 0, "ce-id", id, sizeof(id));
	ck_assert_ptr_nonnull(strstr(req, "POST /events HTTP/1.1"));
	ck_assert_str_eq(id, "ev-2");
	/* binary data, kept as base64 in the row, delivered as it was */
	pthread_mutex_lock(&fake.mu);
	body = fh_rec_body(&fake.recs[0]);
	ck_assert_int_eq(memcmp(body, "\xff\xfe", 2), 0);
	ck_assert_int_eq(body[2], 0);
	ck_assert_int_eq(memcmp(body + 3, "\x01 bytes", 7), 0);
	pthread_mutex_unlock(&fake.mu);
	done();
}
END_TEST

START_TEST(sqlite_claims_of_a_dead_process_are_given_back)
{
	char host[64], owner[128], sql[512];
	pid_t pid;

	if (!use(B_SQLITE, "sqlite_claims_of_a_dead_process"))
		return;
	open_quiet();
	ck_assert_int_eq(post("/send", NULL), 200);
	/* a process of this host that has ended holds it for an hour */
	if ((pid = fork()) == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	snprintf(owner, sizeof(owner), "%s/%ld/deadbeef", host, (long)pid);
	snprintf(sql, sizeof(sql),
		 "UPDATE zc_outbox SET lease_owner = '%s', next_attempt_at = "
		 "%lld",
		 owner, zc__store_now_ms() + 3600000LL);
	x_sql(sql);
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 0);
	ck_assert_int_eq(zc__outbox_release_dead_local(), ZC_OK);
	ck_assert_int_eq(zc__relay_pass("r", 8, 30000), 1);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	done();
}
END_TEST

/* memory: no outbox; a call waits in memory for the commit. */
START_TEST(memory_sends_only_after_commit)
{
	char req[FH_REC_SIZE];
	long long t0;

	unsetenv("ZC_STORE_URL");
	fh_start(&fake, answer);
	set_service_port("ob-target", fake.port);
	app = open_app(setup);
	ck_assert(!zc__relay_running());
	ck_assert_int_eq(post("/send?n=1&fail=1", NULL), 422);
	ck_assert_int_eq(post("/send?n=2", NULL), 200);
	wait_requests(1, 3000);
	t0 = now_ms();
	while (now_ms() - t0 < 200)
		sleep_ms(10);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	fh_rec_copy(&fake, 0, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "{\"n\":\"2\"}"));
	zc_app_free(app);
	app = NULL;
	fh_stop(&fake);
}
END_TEST

START_TEST(bad_relay_settings_stop_the_app)
{
	struct capture c;
	zc_app *a;
	char *log;

	if (!use(B_SQLITE, "bad_relay_settings"))
		return;
	setenv("ZC_OUTBOX_LEASE_MS", "soon", 1);
	capture_start(&c);
	a = zc_test_app(setup);
	log = capture_end(&c);
	unsetenv("ZC_OUTBOX_LEASE_MS");
	ck_assert_ptr_null(a);
	ck_assert_ptr_nonnull(strstr(log, "ZC_OUTBOX_LEASE_MS"));
	free(log);
	done();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("outbox");
	TCase *tc = tcase_create("outbox");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, rows_only_on_commit, B_SQLITE, B_POSTGRES + 1);
	tcase_add_loop_test(tc, delivered_after_commit_by_the_relay, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, retried_with_the_same_key, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, two_relays_deliver_each_row_once, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, lease_of_a_dead_relay_is_taken_over, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, permanent_refusal_is_dead_and_logged, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, drain_leaves_rows_in_the_store, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, event_send_in_a_transaction_goes_to_the_outbox,
			    B_SQLITE, B_POSTGRES + 1);
	tcase_add_test(tc, sqlite_claims_of_a_dead_process_are_given_back);
	tcase_add_test(tc, memory_sends_only_after_commit);
	tcase_add_test(tc, bad_relay_settings_stop_the_app);
	suite_add_tcase(s, tc);
	return run_client_suite(s);
}
