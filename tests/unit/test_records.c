/*
 * test_records.c - idempotency records in the store (table zc_idem) on
 * SQLite (a temporary file) and PostgreSQL ($ZC_TEST_PG_URL, which
 * scripts/run-unit.sh starts): replay, 422 and the stored answer seen by
 * a new process; a transactional route's 4xx kept after its writes rolled
 * back, 5xx and failures not kept; a key in flight on another connection
 * (PostgreSQL: 409 at once from the advisory lock; SQLite: the second
 * writer waits and replays); the two phases of a route outside the store
 * (claim, 409, takeover of an expired claim, finish); the TTL and its
 * sweep; binary answers; event dedup with a stored reply event.
 *
 * Without ZC_TEST_PG_URL the PostgreSQL cases fail saying how to run
 * them, unless ZC_TEST_NO_PG=1 (then they are skipped, with a notice).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "testutil.h"

enum { B_SQLITE, B_POSTGRES };

static char dir[64];
static char url[512];
static char run_id[9]; /* keys of this run: PostgreSQL keeps earlier ones */
static zc_app *app;

static bool
use(int b, const char *test)
{
	const char *u = getenv("ZC_TEST_PG_URL");
	const char *no = getenv("ZC_TEST_NO_PG");

	snprintf(dir, sizeof(dir), "/tmp/zc-records-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	if (b == B_SQLITE) {
		snprintf(url, sizeof(url), "sqlite:%s/rec.db", dir);
	} else if (u != NULL && *u != '\0') {
		snprintf(url, sizeof(url), "%s", u);
	} else if (no != NULL && strcmp(no, "1") == 0) {
		printf("test_records: SKIPPED %s on PostgreSQL "
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
	zc_random_id(run_id, sizeof(run_id));
	return true;
}

static void
done(void)
{
	char cmd[128];

	zc_app_free(app);
	app = NULL;
	unsetenv("ZC_STORE_URL");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_records: could not remove %s\n", dir);
}

/* ---- the store, read directly ---- */

struct q {
	const char *sql;
	const char *arg;
	int64_t v;
};

static int
q_fn(zc_tx *tx, void *arg)
{
	struct q *q = arg;
	zc_rows *rows = NULL;
	zc_err err;

	q->v = -1;
	err = q->arg != NULL ? zc_tx_query(tx, &rows, q->sql, "s", q->arg)
			     : zc_tx_query(tx, &rows, q->sql, "");
	if (err != ZC_OK)
		return -1;
	if (zc_rows_count(rows) > 0)
		ck_assert_int_eq(zc_rows_int64(rows, 0, 0, &q->v), ZC_OK);
	zc_rows_free(rows);
	return 0;
}

/* The integer sql answers, with arg as $1 when not NULL. */
static int64_t
q_int(const char *sql, const char *arg)
{
	struct q q = {sql, arg, -1};
	int rc = 0;

	ck_assert_int_eq(zc__store_run(q_fn, &q, &rc), ZC_OK);
	ck_assert_int_eq(rc, 0);
	return q.v;
}

/* ---- the function under test ---- */

static const char schema[] = "CREATE TABLE IF NOT EXISTS rec_things ("
			     " id TEXT PRIMARY KEY, n BIGINT NOT NULL);";
static atomic_int runs;
static atomic_int answer_status; /* 0: 200 */
static atomic_int fail_handler;
static atomic_bool gate_on;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_entered;

/* Holds the handler until open_gate(), when the gate is on. */
static void
gate(void)
{
	if (!atomic_load(&gate_on))
		return;
	pthread_mutex_lock(&gate_mu);
	gate_entered = true;
	pthread_cond_broadcast(&gate_cv);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void
wait_entered(void)
{
	pthread_mutex_lock(&gate_mu);
	while (!gate_entered)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void
open_gate(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

/* POST /tx/{id} (transactional): a row id, then the answer chosen. */
static int
h_tx(zc_req *req, zc_res *res, void *arg)
{
	int st = atomic_load(&answer_status);
	char n[24];

	(void)arg;
	snprintf(n, sizeof(n), "%d", atomic_fetch_add(&runs, 1) + 1);
	gate();
	ck_assert_int_eq(zc_tx_exec(zc_req_tx(req),
				    "INSERT INTO rec_things (id, n) VALUES "
				    "($1, 1) ON CONFLICT (id) DO UPDATE SET n "
				    "= rec_things.n + 1",
				    "s", zc_req_param(req, "id")),
			 ZC_OK);
	if (atomic_load(&fail_handler))
		return -1;
	if (st != 0)
		return zc_res_error(res, st, "answer %d (run %s)", st, n);
	return zc_res_jsonf(res, 200, "{s:s, s:s}", "id",
			    zc_req_param(req, "id"), "run", n);
}

/* POST /plain (idempotent, its effect outside the store). */
static int
h_plain(zc_req *req, zc_res *res, void *arg)
{
	int st = atomic_load(&answer_status);
	char n[24];

	(void)req;
	(void)arg;
	snprintf(n, sizeof(n), "%d", atomic_fetch_add(&runs, 1) + 1);
	gate();
	if (atomic_load(&fail_handler))
		return -1;
	if (st != 0)
		return zc_res_error(res, st, "answer %d", st);
	return zc_res_jsonf(res, 200, "{s:s}", "run", n);
}

/* POST /bin: a body that is not UTF-8. */
static int
h_bin(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	return zc_res_text(res, 200, "\xff\xfe bytes \xc3\x28");
}

/* An event route: replies with an event. */
static int
h_event(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	zc_event *reply = zc_event_new("com.example.reply");

	(void)req;
	(void)arg;
	atomic_fetch_add(&runs, 1);
	zc_event_set(reply, "id", zc_event_id(ev));
	zc_event_set_json(reply,
			  json_pack("{s:i}", "runs", atomic_load(&runs)));
	zc_res_event(res, reply);
	zc_event_free(reply);
	return 0;
}

static int
setup(zc_app *a)
{
	zc_route_opts both = {.flags = ZC_ROUTE_IDEMPOTENT |
				       ZC_ROUTE_TRANSACTIONAL};
	zc_route_opts once = {.flags = ZC_ROUTE_IDEMPOTENT};

	if (zc_store_schema(a, "rec-test", 1, schema) != ZC_OK ||
	    zc_route_with(a, "POST", "/tx/{id}", h_tx, NULL, &both) != ZC_OK ||
	    zc_route_with(a, "POST", "/plain", h_plain, NULL, &once) != ZC_OK ||
	    zc_route_with(a, "POST", "/bin", h_bin, NULL, &once) != ZC_OK)
		return -1;
	return zc_event_route(a, "/events", h_event, NULL, &both);
}

static void
fresh(void)
{
	atomic_store(&runs, 0);
	atomic_store(&answer_status, 0);
	atomic_store(&fail_handler, 0);
	atomic_store(&gate_on, false);
	gate_open = gate_entered = false;
	app = open_app(setup);
}

/* A key of this run. */
static const char *
key(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s-%s", run_id, name);
	return buf;
}

static zc_res *
post(const char *path, const char *k, const char *body)
{
	char h[300];
	const char *hdrs[] = {h, NULL};
	zc_res *res;

	snprintf(h, sizeof(h), "Idempotency-Key: %s", k);
	res = zc_test_request(app, "POST", path, k != NULL ? hdrs : NULL, body);
	ck_assert_ptr_nonnull(res);
	return res;
}

static int
post_status(const char *path, const char *k, const char *body)
{
	zc_res *res = post(path, k, body);
	int st = zc_res_get_status(res);

	zc_res_free(res);
	return st;
}

static bool
replayed(const zc_res *res)
{
	const char *h = zc_res_get_header(res, "Idempotent-Replayed");

	return h != NULL && strcmp(h, "true") == 0;
}

/* ---- tests ---- */

START_TEST(replay_and_mismatch_across_processes)
{
	char k[64], path[96];
	zc_res *a, *b;

	if (!use(_i, "replay_and_mismatch_across_processes"))
		return;
	fresh();
	key(k, sizeof(k), "r1");
	snprintf(path, sizeof(path), "/tx/%s", k);
	a = post(path, k, "{\"x\":1}");
	ck_assert_int_eq(zc_res_get_status(a), 200);
	ck_assert(!replayed(a));
	b = post(path, k, "{\"x\":1}");
	ck_assert_int_eq(zc_res_get_status(b), 200);
	ck_assert(replayed(b));
	ck_assert_str_eq(zc_res_get_body(a, NULL), zc_res_get_body(b, NULL));
	ck_assert_str_eq(zc_res_get_header(b, "Content-Type"),
			 "application/json");
	zc_res_free(b);
	ck_assert_int_eq(post_status(path, k, "{\"x\":2}"), 422);
	ck_assert_int_eq(atomic_load(&runs), 1);
	ck_assert_int_eq(q_int("SELECT n FROM rec_things WHERE id = $1", k), 1);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1 AND state = 'done' AND status = 200",
			       k),
			 1);
	/* a new process (or another replica): its in-process table is
	 * empty; the store still answers */
	reopen_app(&app, setup);
	b = post(path, k, "{\"x\":1}");
	ck_assert_int_eq(zc_res_get_status(b), 200);
	ck_assert(replayed(b));
	ck_assert_str_eq(zc_res_get_body(a, NULL), zc_res_get_body(b, NULL));
	zc_res_free(b);
	ck_assert_int_eq(post_status(path, k, "{\"x\":2}"), 422);
	ck_assert_int_eq(atomic_load(&runs), 1);
	zc_res_free(a);
	/* the two-phase route too */
	key(k, sizeof(k), "p1");
	ck_assert_int_eq(post_status("/plain", k, "{}"), 200);
	reopen_app(&app, setup);
	a = post("/plain", k, "{}");
	ck_assert(replayed(a));
	ck_assert_ptr_nonnull(strstr(zc_res_get_body(a, NULL), "\"run\""));
	zc_res_free(a);
	ck_assert_int_eq(post_status("/plain", k, "[]"), 422);
	ck_assert_int_eq(atomic_load(&runs), 2);
	done();
}
END_TEST

START_TEST(refusal_kept_after_rollback_5xx_not)
{
	char k[64], path[96];
	zc_res *a, *b;

	if (!use(_i, "refusal_kept_after_rollback_5xx_not"))
		return;
	fresh();
	/* 4xx: the handler's write rolls back, the answer is kept */
	key(k, sizeof(k), "r4");
	snprintf(path, sizeof(path), "/tx/%s", k);
	atomic_store(&answer_status, 409);
	a = post(path, k, "{}");
	ck_assert_int_eq(zc_res_get_status(a), 409);
	ck_assert_int_eq(
		q_int("SELECT count(*) FROM rec_things WHERE id = $1", k), 0);
	ck_assert_int_eq(q_int("SELECT status FROM zc_idem WHERE idem_key = "
			       "$1",
			       k),
			 409);
	atomic_store(&answer_status, 0);
	b = post(path, k, "{}");
	ck_assert_int_eq(zc_res_get_status(b), 409);
	ck_assert(replayed(b));
	ck_assert_str_eq(zc_res_get_body(a, NULL), zc_res_get_body(b, NULL));
	zc_res_free(a);
	zc_res_free(b);
	ck_assert_int_eq(atomic_load(&runs), 1);
	/* 5xx: nothing kept, a retry runs again (and succeeds) */
	key(k, sizeof(k), "r5");
	snprintf(path, sizeof(path), "/tx/%s", k);
	atomic_store(&answer_status, 503);
	ck_assert_int_eq(post_status(path, k, "{}"), 503);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1",
			       k),
			 0);
	atomic_store(&answer_status, 0);
	ck_assert_int_eq(post_status(path, k, "{}"), 200);
	ck_assert_int_eq(atomic_load(&runs), 3);
	/* a failed handler: 500, nothing kept */
	key(k, sizeof(k), "rf");
	snprintf(path, sizeof(path), "/tx/%s", k);
	atomic_store(&fail_handler, 1);
	ck_assert_int_eq(post_status(path, k, "{}"), 500);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1",
			       k),
			 0);
	ck_assert_int_eq(
		q_int("SELECT count(*) FROM rec_things WHERE id = $1", k), 0);
	/* the same for the two phases */
	key(k, sizeof(k), "pf");
	ck_assert_int_eq(post_status("/plain", k, "{}"), 500);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1",
			       k),
			 0);
	atomic_store(&fail_handler, 0);
	atomic_store(&answer_status, 502);
	ck_assert_int_eq(post_status("/plain", k, "{}"), 502);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1",
			       k),
			 0);
	atomic_store(&answer_status, 404);
	ck_assert_int_eq(post_status("/plain", k, "{}"), 404);
	atomic_store(&answer_status, 0);
	ck_assert_int_eq(post_status("/plain", k, "{}"), 404);
	done();
}
END_TEST

/* A request on another thread of this process, answered into *out. */
struct other {
	const char *path, *key;
	int status;
	bool replayed;
};

static void *
other_main(void *arg)
{
	struct other *o = arg;
	zc_res *res = post(o->path, o->key, "{}");

	o->status = zc_res_get_status(res);
	o->replayed = replayed(res);
	zc_res_free(res);
	return NULL;
}

START_TEST(in_flight_duplicate_is_409)
{
	struct other first = {0}, dup = {0};
	char k[64], path[96];
	pthread_t t;

	if (!use(_i, "in_flight_duplicate_is_409"))
		return;
	fresh();
	key(k, sizeof(k), "f1");
	snprintf(path, sizeof(path), "/tx/%s", k);
	first.path = dup.path = path;
	first.key = dup.key = k;
	atomic_store(&gate_on, true);
	pthread_create(&t, NULL, other_main, &first);
	wait_entered();
	other_main(&dup); /* same process: the in-process mark */
	ck_assert_int_eq(dup.status, 409);
	open_gate();
	pthread_join(t, NULL);
	ck_assert_int_eq(first.status, 200);
	other_main(&dup);
	ck_assert_int_eq(dup.status, 200);
	ck_assert(dup.replayed);
	ck_assert_int_eq(atomic_load(&runs), 1);
	done();
}
END_TEST

/* Another replica: its own connection, its own transaction. */
struct replica {
	struct zc_rec *rec;
	atomic_int outcome;
	long long check_ms, total_ms;
};

static int
replica_fn(zc_tx *tx, void *arg)
{
	struct replica *r = arg;
	struct zc_answer replay = {0};
	long long t0 = now_ms();

	r->check_ms = -1;
	atomic_store(&r->outcome, zc__rec_check(tx, r->rec, &replay));
	r->check_ms = now_ms() - t0;
	free(replay.body);
	return 1; /* read only */
}

static void *
replica_main(void *arg)
{
	long long t0 = now_ms();
	struct replica *r = arg;

	ck_assert_int_eq(zc__store_run(replica_fn, r, NULL), ZC_OK);
	r->total_ms = now_ms() - t0;
	return NULL;
}

struct holder {
	struct zc_rec *rec;
	pthread_t other;
	struct replica *r;
};

/* The first replica: checks, lets the other check while it holds the
 * key, then keeps its answer and commits. */
static int
holder_fn(zc_tx *tx, void *arg)
{
	struct holder *h = arg;
	struct zc_answer replay = {0}, ans = {200, "application/json", "{}", 2};

	ck_assert_int_eq(zc__rec_check(tx, h->rec, &replay), ZC_IDEM_PROCEED);
	pthread_create(&h->other, NULL, replica_main, h->r);
	if (zc__store_kind() == ZC_STORE_POSTGRES) {
		/* it checks while this one holds the key */
		long long t0 = now_ms();
		while (atomic_load(&h->r->outcome) == -1 &&
		       now_ms() - t0 < 10000)
			sleep_ms(5);
	} else {
		sleep_ms(300); /* it waits for this one's commit */
	}
	ck_assert_int_eq(zc__rec_put(tx, h->rec, &ans), ZC_OK);
	return 0;
}

START_TEST(in_flight_on_another_connection)
{
	struct zc_rec rec;
	struct replica r = {&rec, -1, 0, 0};
	struct holder h = {&rec, 0, &r};
	char k[64];
	int rc = 0;

	if (!use(_i, "in_flight_on_another_connection"))
		return;
	fresh();
	key(k, sizeof(k), "c1");
	ck_assert_int_eq(zc__rec_init(&rec, "POST /x", k, "{}", 2, 3600, 5000),
			 ZC_OK);
	ck_assert_int_eq(zc__store_run(holder_fn, &h, &rc), ZC_OK);
	ck_assert_int_eq(rc, 0);
	pthread_join(h.other, NULL);
	if (_i == B_POSTGRES) {
		/* the advisory lock: 409 at once, while the first runs */
		ck_assert_int_eq(atomic_load(&r.outcome), ZC_IDEM_CONFLICT);
		ck_assert_int_lt(r.check_ms, 250);
	} else {
		/* one writer at a time: it waited, then found the answer */
		ck_assert_int_eq(atomic_load(&r.outcome), ZC_IDEM_REPLAY);
		ck_assert_int_ge(r.total_ms, 200);
	}
	zc__rec_release(&rec);
	done();
}
END_TEST

START_TEST(two_phases_claim_conflict_takeover)
{
	struct zc_answer replay = {0};
	struct zc_answer ans = {201, "application/json", "{\"a\":1}", 7};
	struct zc_rec rec, shortrec;
	char k[64], k2[64];

	if (!use(_i, "two_phases_claim_conflict_takeover"))
		return;
	fresh();
	key(k, sizeof(k), "t1");
	ck_assert_int_eq(zc__rec_init(&rec, "POST /y", k, "{}", 2, 3600, 60000),
			 ZC_OK);
	ck_assert_int_eq(zc__rec_claim(&rec, &replay), ZC_IDEM_PROCEED);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1 AND state = 'running' AND owner IS NOT "
			       "NULL",
			       k),
			 1);
	/* held: 409 (another payload: 422) */
	ck_assert_int_eq(zc__rec_claim(&rec, &replay), ZC_IDEM_CONFLICT);
	{
		struct zc_rec other;
		ck_assert_int_eq(zc__rec_init(&other, "POST /y", k, "[]", 2,
					      3600, 60000),
				 ZC_OK);
		ck_assert_int_eq(zc__rec_claim(&other, &replay),
				 ZC_IDEM_MISMATCH);
		zc__rec_release(&other);
	}
	ck_assert_int_eq(zc__rec_finish(&rec, &ans), ZC_OK);
	ck_assert_int_eq(zc__rec_claim(&rec, &replay), ZC_IDEM_REPLAY);
	ck_assert_int_eq(replay.status, 201);
	ck_assert_uint_eq(replay.len, 7);
	ck_assert_str_eq(replay.body, "{\"a\":1}");
	ck_assert_ptr_eq(replay.ctype, zc__store_ctype("application/json"));
	free(replay.body);
	replay.body = NULL;
	/* a claim whose replica died: taken over once its lease ends */
	key(k2, sizeof(k2), "t2");
	ck_assert_int_eq(
		zc__rec_init(&shortrec, "POST /y", k2, "{}", 2, 3600, 200),
		ZC_OK);
	ck_assert_int_eq(zc__rec_claim(&shortrec, &replay), ZC_IDEM_PROCEED);
	ck_assert_int_eq(zc__rec_claim(&shortrec, &replay), ZC_IDEM_CONFLICT);
	sleep_ms(300);
	ck_assert_int_eq(zc__rec_claim(&shortrec, &replay), ZC_IDEM_PROCEED);
	/* freed (a 5xx): the next claim runs */
	ck_assert_int_eq(zc__rec_finish(&shortrec, NULL), ZC_OK);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1",
			       k2),
			 0);
	ck_assert_int_eq(zc__rec_claim(&shortrec, &replay), ZC_IDEM_PROCEED);
	zc__rec_release(&rec);
	zc__rec_release(&shortrec);
	done();
}
END_TEST

START_TEST(ttl_expired_record_is_gone)
{
	struct zc_answer replay = {0};
	struct zc_rec rec;
	char k[64];
	struct q q = {"UPDATE zc_idem SET created_at = created_at - 120000 "
		      "WHERE idem_key = $1",
		      NULL, 0};
	int rc = 0;

	if (!use(_i, "ttl_expired_record_is_gone"))
		return;
	fresh();
	key(k, sizeof(k), "ttl");
	q.arg = k;
	ck_assert_int_eq(zc__rec_init(&rec, "POST /z", k, "{}", 2, 60, 60000),
			 ZC_OK);
	ck_assert_int_eq(zc__rec_claim(&rec, &replay), ZC_IDEM_PROCEED);
	ck_assert_int_eq(
		zc__rec_finish(&rec, &(struct zc_answer){200, NULL, NULL, 0}),
		ZC_OK);
	ck_assert_int_eq(zc__rec_claim(&rec, &replay), ZC_IDEM_REPLAY);
	free(replay.body);
	replay.body = NULL;
	/* two minutes old, the TTL one: as if gone, claimed again */
	ck_assert_int_eq(zc__store_run(q_fn, &q, &rc), ZC_OK);
	ck_assert_int_eq(zc__rec_claim(&rec, &replay), ZC_IDEM_PROCEED);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem WHERE idem_key "
			       "= $1 AND state = 'running'",
			       k),
			 1);
	zc__rec_release(&rec);
	done();
}
END_TEST

/* rows of this run, created ago_ms ago */
static void
old_record(const char *k, long long ago_ms)
{
	char sql[400];
	struct q q = {sql, k, 0};
	int rc = 0;

	snprintf(sql, sizeof(sql),
		 "INSERT INTO zc_idem (scope, idem_key, fingerprint, state, "
		 "status, created_at) VALUES ('POST /s', $1, 'f', 'done', 200, "
		 "%lld)",
		 zc__store_now_ms() - ago_ms);
	ck_assert_int_eq(zc__store_run(q_fn, &q, &rc), ZC_OK);
	ck_assert_int_eq(rc, 0);
}

START_TEST(sweep_at_most_once_a_minute)
{
	char old1[64], old2[64], young[64];
	const char *count = "SELECT count(*) FROM zc_idem WHERE idem_key = $1";

	if (!use(_i, "sweep_at_most_once_a_minute"))
		return;
	fresh();
	old_record(key(old1, sizeof(old1), "old1"), 7200000);
	old_record(key(young, sizeof(young), "young"), 1000);
	zc__rec_sweep(3600);
	ck_assert_int_eq(q_int(count, old1), 0);
	ck_assert_int_eq(q_int(count, young), 1);
	/* the next within a minute does nothing */
	old_record(key(old2, sizeof(old2), "old2"), 7200000);
	zc__rec_sweep(3600);
	ck_assert_int_eq(q_int(count, old2), 1);
	done();
}
END_TEST

START_TEST(binary_answer_and_stored_reply_event)
{
	const char *const ce[] = {"ce-specversion: 1.0",
				  "ce-type: com.example.in",
				  "ce-source: /test",
				  "ce-id: ev-1",
				  "Content-Type: application/json",
				  "Prefer: reply",
				  NULL};
	char k[64], cid[80];
	const char *ba, *bb;
	size_t la, lb;
	zc_res *a, *b;

	if (!use(_i, "binary_answer_and_stored_reply_event"))
		return;
	fresh();
	key(k, sizeof(k), "bin");
	a = post("/bin", k, "{}");
	b = post("/bin", k, "{}");
	ck_assert(replayed(b));
	ba = zc_res_get_body(a, &la);
	bb = zc_res_get_body(b, &lb);
	ck_assert_uint_eq(la, lb);
	ck_assert_uint_eq(la, 11);
	ck_assert_int_eq(memcmp(ba, bb, la), 0);
	ck_assert_str_eq(zc_res_get_header(b, "Content-Type"),
			 "text/plain; charset=utf-8");
	zc_res_free(a);
	zc_res_free(b);
	/* a reply event is kept and sent again, in binary mode */
	snprintf(cid, sizeof(cid), "ce-id: %s", k);
	{
		const char *hdrs[] = {ce[0], ce[1], ce[2], cid,
				      ce[4], ce[5], NULL};
		a = zc_test_request(app, "POST", "/events", hdrs, "{}");
		reopen_app(&app, setup);
		b = zc_test_request(app, "POST", "/events", hdrs, "{}");
	}
	ck_assert_int_eq(zc_res_get_status(a), 200);
	ck_assert_int_eq(zc_res_get_status(b), 200);
	ck_assert_str_eq(zc_res_get_header(b, "ce-type"), "com.example.reply");
	ck_assert_str_eq(zc_res_get_body(a, NULL), zc_res_get_body(b, NULL));
	ck_assert_int_eq(atomic_load(&runs), 1 + 1);
	zc_res_free(a);
	zc_res_free(b);
	ck_assert_ptr_eq(zc__store_ctype("application/cloudevents+json"),
			 zc__ctype_stored_event);
	done();
}
END_TEST

/* memory: the in-process table, no zc_idem rows. */
START_TEST(memory_keeps_keys_in_process)
{
	char path[64];

	unsetenv("ZC_STORE_URL");
	fresh();
	ck_assert(!zc__store_durable());
	snprintf(path, sizeof(path), "/tx/m1");
	ck_assert_int_eq(post_status(path, "m1", "{}"), 200);
	ck_assert_int_eq(post_status(path, "m1", "{}"), 200);
	ck_assert_int_eq(atomic_load(&runs), 1);
	ck_assert_int_eq(q_int("SELECT count(*) FROM zc_idem", NULL), 0);
	zc_app_free(app);
	app = NULL;
}
END_TEST

START_TEST(text_and_base64)
{
	char *s, *d;
	size_t n;

	ck_assert(zc__store_text_ok("plain ascii", 11));
	ck_assert(zc__store_text_ok("caf\xc3\xa9 \xe2\x82\xac", 9));
	ck_assert(!zc__store_text_ok("a\0b", 3));
	ck_assert(!zc__store_text_ok("\xff", 1));
	ck_assert(!zc__store_text_ok("\xc0\xaf", 2));     /* overlong */
	ck_assert(!zc__store_text_ok("\xed\xa0\x80", 3)); /* surrogate */
	ck_assert(!zc__store_text_ok("\xe2\x82", 2));     /* cut */
	s = zc__store_b64_encode("\x00\xff\x10zz", 5);
	ck_assert_str_eq(s, "AP8Qeno=");
	ck_assert_int_eq(zc__store_b64_decode(s, &d, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(memcmp(d, "\x00\xff\x10zz", 5), 0);
	free(s);
	free(d);
	ck_assert_int_eq(zc__store_b64_decode("a*b", &d, &n), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("records");
	TCase *tc = tcase_create("records");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, replay_and_mismatch_across_processes, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, refusal_kept_after_rollback_5xx_not, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, in_flight_duplicate_is_409, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, in_flight_on_another_connection, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, two_phases_claim_conflict_takeover, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, ttl_expired_record_is_gone, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, sweep_at_most_once_a_minute, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_loop_test(tc, binary_answer_and_stored_reply_event, B_SQLITE,
			    B_POSTGRES + 1);
	tcase_add_test(tc, memory_keeps_keys_in_process);
	tcase_add_test(tc, text_and_base64);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
