/*
 * store.c - the store's engine: the configured backend, one connection per
 * thread (opened lazily, reopened after a failure, closed together at
 * drain), transactions and their re-runs after a conflict, readiness, and
 * the metrics.  What differs between SQLite and PostgreSQL is behind
 * struct zc_backend (sqlite.c, postgres.c).
 */
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_RETRIES 3
#define MAX_RETRIES     10
/* Readiness: one real check per second at most, waited for 200 ms. */
#define READY_EVERY_NS 1000000000LL
#define READY_WAIT_NS  200000000LL
/* After a failed connect, the next waits 100 ms, doubling to 2 s: a store
 * that is down costs each request a fast ZC_ERR_STORE, not a connect. */
#define REOPEN_MIN_NS 100000000LL
#define REOPEN_MAX_NS 2000000000LL

/*
 * The configuration.  Written by configure and shutdown only, before
 * threads use the store or after they stopped (pthread_create and join
 * order those writes before every read).
 */
static struct zc_store_url cfg;
static const struct zc_backend *be;
static bool configured;
static int retries = DEFAULT_RETRIES;

/* Every open connection, so close_all reaches other threads' ones.
 * close_all bumps reg_gen: a thread's slot from before is then stale. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct zc_conn *reg_head;
static atomic_uint reg_gen = 1;
static atomic_int nconns;

/* A thread's connection, and the generation it was opened in. */
struct slot {
	struct zc_conn *conn;
	unsigned gen;
};
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;
static pthread_key_t slot_key;
static bool slot_key_ok;

/* memory: the database lives while one connection is open: this one. */
static pthread_mutex_t anchor_mu = PTHREAD_MUTEX_INITIALIZER;
static struct zc_conn *anchor;

static atomic_llong reopen_at_ns;
static atomic_int open_failures;

/* The last known state: from a check or a transaction's outcome. */
static atomic_bool ready_ok;
static atomic_llong ready_ns; /* 0: never known */

/* The readiness checker thread. */
static pthread_mutex_t chk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t chk_cv = PTHREAD_COND_INITIALIZER;
static pthread_t chk_thread;
static bool chk_started, chk_stop, chk_want, chk_running;
static long long chk_since_ns;
static unsigned long chk_done;

/* Metrics. */
enum { O_COMMITTED, O_ROLLED_BACK, O_CONFLICT, O_FAILED, NOUTCOMES };
static const char *const outcome_names[NOUTCOMES] = {"committed", "rolled_back",
						     "conflict", "failed"};
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				0.05,   0.1,   0.25,   0.5,   1,    2.5};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))
static atomic_ulong outcomes[NOUTCOMES], retried;
static atomic_ulong hist[NBOUNDS], hist_count, hist_sum_us;

static void
note_ready(bool ok)
{
	long long now = zc__now_ns();

	/* at most every 100 ms from the transaction path: a shared line */
	if (atomic_load(&ready_ok) == ok &&
	    now - atomic_load(&ready_ns) < READY_EVERY_NS / 10)
		return;
	atomic_store(&ready_ok, ok);
	atomic_store(&ready_ns, now);
}

/* ---- connections ---- */

static void
close_conn(struct zc_conn *c)
{
	if (c->tx.active)
		zc_warn("store: closing a connection inside a transaction; "
			"it is rolled back");
	c->be->close(c);
	atomic_fetch_sub(&nconns, 1);
}

static void
unlink_conn(struct zc_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		reg_head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Takes the slot's connection out of the registry, unless close_all
 * already did, and closes it. */
static void
drop(struct slot *s)
{
	struct zc_conn *c = NULL;

	pthread_mutex_lock(&reg_mu);
	if (s->conn != NULL && s->gen == atomic_load(&reg_gen)) {
		c = s->conn;
		unlink_conn(c);
	}
	pthread_mutex_unlock(&reg_mu);
	s->conn = NULL;
	if (c != NULL)
		close_conn(c);
}

/* A thread that used the store ends: its connection goes with it. */
static void
slot_destroy(void *p)
{
	struct slot *s = p;

	drop(s);
	free(s);
}

static void
slot_key_init(void)
{
	slot_key_ok = pthread_key_create(&slot_key, slot_destroy) == 0;
}

static struct slot *
my_slot(void)
{
	struct slot *s;

	pthread_once(&slot_once, slot_key_init);
	if (!slot_key_ok)
		return NULL;
	if ((s = pthread_getspecific(slot_key)) != NULL)
		return s;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if (pthread_setspecific(slot_key, s) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

bool
zc__store_thread_in_tx(void)
{
	struct slot *s;

	pthread_once(&slot_once, slot_key_init);
	if (!slot_key_ok || (s = pthread_getspecific(slot_key)) == NULL)
		return false;
	return s->conn != NULL && s->gen == atomic_load(&reg_gen) &&
	       s->conn->tx.active;
}

static void
open_failed(void)
{
	int n = atomic_fetch_add(&open_failures, 1);
	long long wait = REOPEN_MIN_NS << (n < 5 ? n : 5);

	if (wait > REOPEN_MAX_NS)
		wait = REOPEN_MAX_NS;
	atomic_store(&reopen_at_ns, zc__now_ns() + wait);
	note_ready(false);
}

static bool
hold_anchor(void)
{
	bool ok;

	pthread_mutex_lock(&anchor_mu);
	if (anchor == NULL)
		anchor = be->open(&cfg);
	ok = anchor != NULL;
	pthread_mutex_unlock(&anchor_mu);
	return ok;
}

static void
release_anchor(void)
{
	pthread_mutex_lock(&anchor_mu);
	if (anchor != NULL)
		anchor->be->close(anchor);
	anchor = NULL;
	pthread_mutex_unlock(&anchor_mu);
}

/*
 * The calling thread's connection, opened when it has none or its last
 * one broke.  urgent: ignore the pause after a failed connect (the
 * readiness checker, which paces itself).
 */
static struct zc_conn *
thread_conn(bool urgent, zc_err *err)
{
	struct slot *s = my_slot();
	struct zc_conn *c;
	long long now;

	*err = ZC_ERR_STORE;
	if (s == NULL) {
		*err = ZC_ERR_NOMEM;
		return NULL;
	}
	if (s->conn != NULL && s->gen != atomic_load(&reg_gen))
		s->conn = NULL; /* closed by close_all */
	if (s->conn != NULL && !s->conn->broken)
		return s->conn;
	if (s->conn != NULL) {
		drop(s);
		/* the database may have been recreated meanwhile */
		zc__schema_invalidate();
	}
	now = zc__now_ns();
	if (!urgent && now < atomic_load(&reopen_at_ns)) {
		zc_debug("store: unreachable; next connect in %lld ms",
			 (atomic_load(&reopen_at_ns) - now) / 1000000);
		return NULL;
	}
	if (be->load() != 0 ||
	    (cfg.kind == ZC_STORE_MEMORY && !hold_anchor()) ||
	    (c = be->open(&cfg)) == NULL) {
		open_failed();
		return NULL;
	}
	atomic_store(&open_failures, 0);
	atomic_store(&reopen_at_ns, 0);
	pthread_mutex_lock(&reg_mu);
	c->gen = atomic_load(&reg_gen);
	c->next = reg_head;
	if (reg_head != NULL)
		reg_head->prev = c;
	reg_head = c;
	pthread_mutex_unlock(&reg_mu);
	s->conn = c;
	s->gen = c->gen;
	zc_debug("store: connection opened (%d open)",
		 atomic_fetch_add(&nconns, 1) + 1);
	return c;
}

int
zc__store_connections(void)
{
	return atomic_load(&nconns);
}

/* ---- transactions ---- */

static void
finish(zc_tx *tx, int outcome)
{
	long long ns = zc__now_ns() - tx->start_ns;
	double s = (double)ns / 1e9;
	size_t b;

	tx->active = false;
	if (tx->gated) {
		tx->gated = false;
		zc__store_gate_leave();
	}
	atomic_fetch_add(&outcomes[outcome], 1);
	for (b = 0; b < NBOUNDS && s > bounds[b]; b++)
		;
	if (b < NBOUNDS)
		atomic_fetch_add(&hist[b], 1);
	atomic_fetch_add(&hist_count, 1);
	atomic_fetch_add(&hist_sum_us, (unsigned long)(ns / 1000));
	if (tx->conn->broken)
		note_ready(false);
}

zc_err
zc__store_begin(zc_tx **txp)
{
	struct zc_conn *c = NULL;
	zc_err err = ZC_ERR_STORE;
	int attempt;
	bool gated;

	if (txp == NULL)
		return ZC_ERR_INVALID;
	*txp = NULL;
	if (!configured) {
		zc_error("store: no store configured (ZC_STORE_URL)");
		return ZC_ERR_STORE;
	}
	/* SQLite lets one writer in at a time: this process's transactions
	 * take turns in gate.c first, so the wait gives the loop back. */
	gated = cfg.kind == ZC_STORE_SQLITE || cfg.kind == ZC_STORE_MEMORY;
	for (attempt = 0; attempt < 2; attempt++) {
		if ((c = thread_conn(false, &err)) == NULL)
			break;
		if (c->tx.active) {
			zc_error("store: this thread already has a transaction "
				 "open; finish it first");
			return ZC_ERR_INVALID;
		}
		if (gated && (err = zc__store_gate_enter()) != ZC_OK)
			break;
		if ((err = zc__schema_ensure(c)) == ZC_OK &&
		    (err = be->begin(c, false)) == ZC_OK) {
			c->tx = (struct zc_tx){.conn = c,
					       .active = true,
					       .gated = gated,
					       .start_ns = zc__now_ns()};
			note_ready(true);
			*txp = &c->tx;
			return ZC_OK;
		}
		if (gated)
			zc__store_gate_leave();
		/*
		 * A connection that died while idle (the server restarted)
		 * shows here, before anything ran: one new connection is
		 * worth a try.  Anything else is final.
		 */
		if (!c->broken)
			break;
	}
	atomic_fetch_add(&outcomes[O_FAILED], 1);
	if (c == NULL || c->broken)
		note_ready(false);
	return err == ZC_ERR_CONFLICT ? ZC_ERR_STORE : err;
}

zc_err
zc__store_commit(zc_tx *tx, bool *unknown)
{
	struct zc_conn *c;
	bool unk = false;
	zc_err err;

	if (unknown != NULL)
		*unknown = false;
	if (tx == NULL || !tx->active)
		return ZC_ERR_INVALID;
	c = tx->conn;
	if (tx->aborted) {
		/* a statement failed: what ran before it must not stay */
		c->be->rollback(c);
		finish(tx, tx->conflict ? O_CONFLICT : O_FAILED);
		return tx->conflict ? ZC_ERR_CONFLICT : ZC_ERR_STORE;
	}
	err = c->be->commit(c, &unk);
	if (unknown != NULL)
		*unknown = unk;
	finish(tx, err == ZC_OK             ? O_COMMITTED
		   : err == ZC_ERR_CONFLICT ? O_CONFLICT
					    : O_FAILED);
	return err;
}

void
zc__store_rollback(zc_tx *tx)
{
	if (tx == NULL || !tx->active)
		return;
	tx->conn->be->rollback(tx->conn);
	finish(tx, tx->conflict  ? O_CONFLICT
		   : tx->aborted ? O_FAILED
				 : O_ROLLED_BACK);
}

bool
zc__store_tx_conflict(const zc_tx *tx)
{
	return tx != NULL && tx->conflict;
}

/* 1-2, 2-4, 4-8 ... ms, at random within each: re-runs of transactions
 * that collided should not collide again in step. */
static void
pause_before_rerun(int attempt)
{
	long long base = 2000000LL << (attempt < 6 ? attempt : 6);
	long long ns = base / 2 + (long long)(zc__rand64() %
					      (unsigned long long)(base / 2));
	struct timespec ts = {(time_t)(ns / 1000000000LL),
			      (long)(ns % 1000000000LL)};

	zc__log_flush();
	/* on a fiber the loop serves others meanwhile (no transaction is
	 * open here) */
	if (zc__task_current() != NULL) {
		zc__task_sleep_ms(ns < 1000000 ? 1 : (long)(ns / 1000000));
		return;
	}
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

zc_err
zc__store_run(int (*fn)(zc_tx *tx, void *arg), void *arg, int *fn_rc)
{
	zc_tx *tx;
	zc_err err;
	int attempt, rc;

	if (fn_rc != NULL)
		*fn_rc = 0;
	if (fn == NULL)
		return ZC_ERR_INVALID;
	for (attempt = 0;; attempt++) {
		if ((err = zc__store_begin(&tx)) != ZC_OK)
			return err;
		rc = fn(tx, arg);
		if (fn_rc != NULL)
			*fn_rc = rc;
		if (rc == 0 && !tx->conflict) {
			err = zc__store_commit(tx, NULL);
			if (err != ZC_ERR_CONFLICT)
				return err;
		} else {
			bool conflict = tx->conflict;
			zc__store_rollback(tx);
			if (!conflict)
				return ZC_OK; /* fn chose to roll back */
		}
		if (attempt >= retries) {
			zc_warn("store: transaction still conflicting after "
				"%d runs; giving up",
				attempt + 1);
			return ZC_ERR_CONFLICT;
		}
		atomic_fetch_add(&retried, 1);
		pause_before_rerun(attempt);
	}
}

/* ---- readiness ---- */

static bool
check_now(void)
{
	struct zc_conn *c;
	zc_err err;
	int attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		if ((c = thread_conn(true, &err)) == NULL)
			return false;
		/* ready means usable: schema applied, server answering */
		if (zc__schema_ensure(c) == ZC_OK && be->ping(c) == ZC_OK)
			return true;
		if (!c->broken)
			return false;
	}
	return false;
}

static void *
checker(void *arg)
{
	bool ok;

	(void)arg;
	pthread_mutex_lock(&chk_mu);
	for (;;) {
		while (!chk_want && !chk_stop)
			pthread_cond_wait(&chk_cv, &chk_mu);
		if (chk_stop)
			break;
		chk_want = false;
		chk_running = true;
		chk_since_ns = zc__now_ns();
		pthread_mutex_unlock(&chk_mu);
		ok = check_now();
		atomic_store(&ready_ok, ok);
		atomic_store(&ready_ns, zc__now_ns());
		pthread_mutex_lock(&chk_mu);
		chk_running = false;
		chk_done++;
		pthread_cond_broadcast(&chk_cv);
	}
	pthread_mutex_unlock(&chk_mu);
	return NULL;
}

bool
zc__store_ready(void)
{
	long long now = zc__now_ns(), last = atomic_load(&ready_ns);
	unsigned long done;
	struct timespec dl;
	bool ok;

	if (!configured)
		return true;
	if (last != 0 && now - last < READY_EVERY_NS)
		return atomic_load(&ready_ok);
	pthread_mutex_lock(&chk_mu);
	if (!chk_started) {
		chk_stop = false;
		if (pthread_create(&chk_thread, NULL, checker, NULL) != 0) {
			pthread_mutex_unlock(&chk_mu);
			zc_error("store: cannot start the readiness checker");
			return false;
		}
		chk_started = true;
	}
	if (!chk_running) {
		chk_want = true;
		pthread_cond_broadcast(&chk_cv);
	}
	/* Wait a little for the answer; a store that takes longer than
	 * that to answer SELECT 1 is not one to send traffic to. */
	done = chk_done;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_nsec += READY_WAIT_NS;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	while (chk_done == done && !chk_stop)
		if (pthread_cond_timedwait(&chk_cv, &chk_mu, &dl) == ETIMEDOUT)
			break;
	ok = atomic_load(&ready_ok);
	if (chk_done == done && chk_running &&
	    zc__now_ns() - chk_since_ns > READY_EVERY_NS)
		ok = false; /* a check hanging for over a second */
	pthread_mutex_unlock(&chk_mu);
	return ok;
}

static void
stop_checker(void)
{
	pthread_mutex_lock(&chk_mu);
	if (!chk_started) {
		pthread_mutex_unlock(&chk_mu);
		return;
	}
	chk_stop = true;
	pthread_cond_broadcast(&chk_cv);
	pthread_mutex_unlock(&chk_mu);
	pthread_join(chk_thread, NULL);
	pthread_mutex_lock(&chk_mu);
	chk_started = chk_stop = chk_want = chk_running = false;
	pthread_mutex_unlock(&chk_mu);
}

/* ---- configuration and lifetime ---- */

void
zc__store_close_all(void)
{
	struct zc_conn *c, *next;

	stop_checker(); /* its connection closes as its thread ends */
	pthread_mutex_lock(&reg_mu);
	c = reg_head;
	reg_head = NULL;
	atomic_fetch_add(&reg_gen, 1);
	pthread_mutex_unlock(&reg_mu);
	for (; c != NULL; c = next) {
		next = c->next;
		close_conn(c);
	}
}

int
zc__store_configure(const char *url, const char *name, int nretries, char *err,
		    size_t errsize)
{
	struct zc_store_url u;

	if (zc__store_url_parse(url, name, &u, err, errsize) != 0)
		return -1;
	if (u.kind == ZC_STORE_POSTGRES &&
	    zc__pg_check_url(u.target, u.display, err, errsize) != 0) {
		zc__store_url_free(&u);
		return -1;
	}
	zc__store_close_all();
	release_anchor();
	zc__store_url_free(&cfg);
	cfg = u;
	be = u.kind == ZC_STORE_POSTGRES ? &zc__postgres_backend
					 : &zc__sqlite_backend;
	retries = nretries < 0             ? DEFAULT_RETRIES
		  : nretries > MAX_RETRIES ? MAX_RETRIES
					   : nretries;
	configured = true;
	atomic_store(&open_failures, 0);
	atomic_store(&reopen_at_ns, 0);
	atomic_store(&ready_ns, 0);
	zc__schema_invalidate();
	return 0;
}

int
zc__store_configure_env(const char *name, char *err, size_t errsize)
{
	const char *s = getenv("ZC_STORE_RETRIES");
	long n = DEFAULT_RETRIES;
	char *end;

	if (s != NULL && *s != '\0') {
		errno = 0;
		n = strtol(s, &end, 10);
		if (errno != 0 || end == s || *end != '\0' || n < 0 ||
		    n > MAX_RETRIES) {
			snprintf(err, errsize,
				 "ZC_STORE_RETRIES=\"%.32s\": expected a whole "
				 "number from 0 to %d",
				 s, MAX_RETRIES);
			return -1;
		}
	}
	return zc__store_configure(getenv("ZC_STORE_URL"), name, (int)n, err,
				   errsize);
}

bool
zc__store_configured(void)
{
	return configured;
}

/* Set with the configuration, before threads use the store. */
int
zc__store_kind(void)
{
	return configured ? cfg.kind : ZC_STORE_NONE;
}

void
zc__store_shutdown(void)
{
	zc__store_close_all();
	release_anchor();
	zc__schema_reset();
	zc__store_url_free(&cfg);
	configured = false;
	be = NULL;
}

void
zc__store_describe(char *where, size_t wsize, char *warn, size_t warnsize)
{
	static const char keep[] =
		"set ZC_STORE_URL=postgresql://USER:PASSWORD@HOST:5432/DB "
		"to keep state and share it between replicas";

	warn[0] = '\0';
	if (!configured) {
		snprintf(where, wsize, "none");
		return;
	}
	snprintf(where, wsize, "%s", cfg.display);
	if (!cfg.ephemeral)
		return;
	if (cfg.kind == ZC_STORE_MEMORY)
		snprintf(warn, warnsize,
			 "store memory: keeps state in this process only: it "
			 "ends with the process and no other replica sees it; "
			 "%s",
			 keep);
	else
		snprintf(warn, warnsize,
			 "store %s is in a temporary directory: its state ends "
			 "with the pod (scale to zero, redeploy) and other "
			 "replicas do not see it; %s (or sqlite:PATH on a "
			 "persistent volume, one replica only)",
			 cfg.display, keep);
}

void
zc__store_log_startup(void)
{
	char where[512], warn[1024];

	zc__store_describe(where, sizeof(where), warn, sizeof(warn));
	zc_info("store: state in %s (re-run up to %d times on conflict)", where,
		retries);
	if (warn[0] != '\0')
		zc_warn("%s", warn);
}

/* ---- metrics ---- */

void
zc__store_metrics(struct zc_buf *o, void *arg)
{
	unsigned long cum = 0;
	size_t i;

	(void)arg;
	if (!configured)
		return;
	zc__buf_printf(o, "# HELP zc_store_transactions_total Store "
			  "transactions by outcome (conflict: lost a race, "
			  "re-run; failed: store error).\n"
			  "# TYPE zc_store_transactions_total counter\n");
	for (i = 0; i < NOUTCOMES; i++)
		zc__buf_printf(o,
			       "zc_store_transactions_total{backend=\"%s\","
			       "outcome=\"%s\"} %lu\n",
			       be->name, outcome_names[i],
			       atomic_load(&outcomes[i]));
	zc__buf_printf(o,
		       "# HELP zc_store_retries_total Transactions run again "
		       "after a conflict.\n# TYPE zc_store_retries_total "
		       "counter\nzc_store_retries_total %lu\n",
		       atomic_load(&retried));
	zc__buf_printf(o,
		       "# HELP zc_store_gate_waits_total Transactions that "
		       "waited for another of this process to end first "
		       "(SQLite: one writer at a time).\n# TYPE "
		       "zc_store_gate_waits_total counter\n"
		       "zc_store_gate_waits_total %lu\n",
		       zc__store_gate_waits());
	zc__buf_printf(o, "# HELP zc_store_transaction_duration_seconds From "
			  "begin to commit or rollback.\n# TYPE "
			  "zc_store_transaction_duration_seconds histogram\n");
	for (i = 0; i < NBOUNDS; i++) {
		cum += atomic_load(&hist[i]);
		zc__buf_printf(o,
			       "zc_store_transaction_duration_seconds_bucket{"
			       "le=\"%g\"} %lu\n",
			       bounds[i], cum);
	}
	zc__buf_printf(o,
		       "zc_store_transaction_duration_seconds_bucket{le=\"+"
		       "Inf\"} %lu\n"
		       "zc_store_transaction_duration_seconds_sum %.6f\n"
		       "zc_store_transaction_duration_seconds_count %lu\n",
		       atomic_load(&hist_count),
		       (double)atomic_load(&hist_sum_us) / 1e6,
		       atomic_load(&hist_count));
	zc__buf_printf(o,
		       "# HELP zc_store_connections Open store connections."
		       "\n# TYPE zc_store_connections gauge\n"
		       "zc_store_connections %d\n"
		       "# HELP zc_store_up 1 when the store answered its last "
		       "check or transaction.\n# TYPE zc_store_up gauge\n"
		       "zc_store_up %d\n",
		       atomic_load(&nconns), atomic_load(&ready_ok) ? 1 : 0);
}
