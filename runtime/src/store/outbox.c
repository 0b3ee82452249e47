/*
 * outbox.c - the transactional outbox (table zc_outbox): calls and events
 * written in a handler's transaction, so they exist if and only if it
 * commits; claimed by a relay as leases, delivered, deleted.  Also the
 * transaction a handler on this thread runs in, what waits for its end,
 * and the relay's wake-up after a commit that wrote rows.
 */
#include "store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The first line of the headers column when the body is base64: a name
 * no header can have (':' is not a token character). */
#define B64_MARK     ":zc-body-base64"
#define B64_MARK_LEN (sizeof(B64_MARK) - 1)

/* ---------------------------------------------------------------------
 * The current transaction of this thread, and what waits for its end
 * ------------------------------------------------------------------- */
struct deferred {
	struct deferred *next;
	void *item;
	void (*run)(void *);
	void (*drop)(void *);
};

static _Thread_local zc_tx *cur_tx;
static _Thread_local bool cur_wrote;
static _Thread_local struct deferred *cur_head, **cur_tail;

static void
drop_deferred(void)
{
	struct deferred *d, *next;

	for (d = cur_head; d != NULL; d = next) {
		next = d->next;
		d->drop(d->item);
		free(d);
	}
	cur_head = NULL;
	cur_tail = &cur_head;
}

void
zc__store_tx_enter(zc_tx *tx)
{
	/* a re-run after a conflict: the last run's sends are void */
	drop_deferred();
	cur_wrote = false;
	cur_tx = tx;
}

void
zc__store_tx_leave(void)
{
	cur_tx = NULL;
}

zc_tx *
zc__store_current_tx(void)
{
	return cur_tx;
}

bool
zc__store_busy(void)
{
	return cur_tx != NULL || zc__store_thread_in_tx();
}

int
zc__store_tx_defer(void *item, void (*run)(void *), void (*drop)(void *))
{
	struct deferred *d;

	if (cur_tx == NULL || (d = malloc(sizeof(*d))) == NULL)
		return -1;
	d->next = NULL;
	d->item = item;
	d->run = run;
	d->drop = drop;
	if (cur_head == NULL)
		cur_tail = &cur_head;
	*cur_tail = d;
	cur_tail = &d->next;
	return 0;
}

void
zc__store_tx_after(bool committed)
{
	struct deferred *d, *next;

	cur_tx = NULL;
	if (!committed) {
		drop_deferred();
		cur_wrote = false;
		return;
	}
	d = cur_head;
	cur_head = NULL;
	cur_tail = &cur_head;
	for (; d != NULL; d = next) {
		next = d->next;
		d->run(d->item);
		free(d);
	}
	if (cur_wrote)
		zc__outbox_wake();
	cur_wrote = false;
}

/* ---------------------------------------------------------------------
 * Waking the relay
 * ------------------------------------------------------------------- */
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv;
static unsigned long wake_seq;

static void
wake_init(void)
{
	zc__cond_init_monotonic(&wake_cv);
}

void
zc__outbox_wake(void)
{
	pthread_once(&wake_once, wake_init);
	pthread_mutex_lock(&wake_mu);
	wake_seq++;
	pthread_cond_broadcast(&wake_cv);
	pthread_mutex_unlock(&wake_mu);
}

void
zc__outbox_wait(unsigned long *seen, long timeout_ms)
{
	struct timespec dl;

	pthread_once(&wake_once, wake_init);
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wake_mu);
	while (wake_seq == *seen)
		if (pthread_cond_timedwait(&wake_cv, &wake_mu, &dl) ==
		    ETIMEDOUT)
			break;
	*seen = wake_seq;
	pthread_mutex_unlock(&wake_mu);
}

/* ---------------------------------------------------------------------
 * Writing a row
 * ------------------------------------------------------------------- */
zc_err
zc__outbox_insert(zc_tx *tx, struct zc_outbox_row *row)
{
	const char *body = row->body, *headers = row->headers;
	char id[33], *b64 = NULL, *marked = NULL;
	long long now = zc__store_now_ms();
	size_t hl;
	zc_err err;

	if (row->id == NULL || *row->id == '\0') {
		zc_random_id(id, sizeof(id));
		free(row->id);
		if ((row->id = strdup(id)) == NULL)
			return ZC_ERR_NOMEM;
	}
	if (row->created_at == 0)
		row->created_at = now;
	if (row->next_attempt_at == 0)
		row->next_attempt_at = row->created_at;
	if (body != NULL && !zc__store_text_ok(body, row->body_len)) {
		hl = headers != NULL ? strlen(headers) : 0;
		if ((b64 = zc__store_b64_encode(body, row->body_len)) == NULL ||
		    (marked = malloc(B64_MARK_LEN + hl + 2)) == NULL) {
			free(b64);
			return ZC_ERR_NOMEM;
		}
		memcpy(marked, B64_MARK, B64_MARK_LEN);
		marked[B64_MARK_LEN] = '\n';
		memcpy(marked + B64_MARK_LEN + 1,
		       headers != NULL ? headers : "", hl + 1);
		body = b64;
		headers = marked;
	}
	err = zc_tx_exec(tx,
			 "INSERT INTO zc_outbox (id, created_at, "
			 "next_attempt_at, attempts, state, kind, target, "
			 "method, path, headers, body, idempotency_key, "
			 "traceparent, tracestate) VALUES ($1, $2, $3, 0, "
			 "'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12)",
			 "sIIsssssssss", row->id, (int64_t)row->created_at,
			 (int64_t)row->next_attempt_at, row->kind, row->target,
			 row->method, row->path, headers, body, row->idem_key,
			 row->traceparent, row->tracestate);
	free(b64);
	free(marked);
	if (err == ZC_OK && tx == cur_tx)
		cur_wrote = true;
	return err;
}

/* ---------------------------------------------------------------------
 * Claiming rows
 * ------------------------------------------------------------------- */
static const char claim_pg[] =
	"WITH c AS (SELECT id FROM zc_outbox WHERE state = 'pending' AND "
	"next_attempt_at <= $3 ORDER BY next_attempt_at LIMIT $4 FOR UPDATE "
	"SKIP LOCKED) ";
static const char claim_sqlite[] =
	"WITH c AS (SELECT id FROM zc_outbox WHERE state = 'pending' AND "
	"next_attempt_at <= $3 ORDER BY next_attempt_at LIMIT $4) ";
static const char claim_update[] =
	"UPDATE zc_outbox SET next_attempt_at = $1, lease_owner = $2, "
	"attempts = attempts + 1 WHERE id IN (SELECT id FROM c) RETURNING id, "
	"kind, target, method, path, headers, body, idempotency_key, "
	"traceparent, tracestate, attempts, created_at, next_attempt_at";

struct claim_job {
	const char *owner;
	long long lease_ms;
	int max;
	zc_rows *rows;
};

static int
claim_fn(zc_tx *tx, void *arg)
{
	struct claim_job *j = arg;
	long long now = zc__store_now_ms();
	char sql[1024];

	zc_rows_free(j->rows); /* a re-run's */
	j->rows = NULL;
	snprintf(sql, sizeof(sql), "%s%s",
		 zc__store_kind() == ZC_STORE_POSTGRES ? claim_pg
						       : claim_sqlite,
		 claim_update);
	return zc_tx_query(tx, &j->rows, sql, "IsIi",
			   (int64_t)(now + j->lease_ms), j->owner, (int64_t)now,
			   j->max) == ZC_OK
		       ? 0
		       : -1;
}

static char *
dup_col(const zc_rows *rows, size_t i, int col, bool *nomem)
{
	const char *s = zc_rows_text(rows, i, col);
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*nomem = true;
	return d;
}

/* Row i of the claim's result into *o; -1 when out of memory or its body
 * cannot be decoded. */
static int
read_row(const zc_rows *rows, size_t i, struct zc_outbox_row *o)
{
	bool nomem = false;
	int64_t v = 0;
	char *body;
	size_t len;

	memset(o, 0, sizeof(*o));
	o->id = dup_col(rows, i, 0, &nomem);
	o->kind = dup_col(rows, i, 1, &nomem);
	o->target = dup_col(rows, i, 2, &nomem);
	o->method = dup_col(rows, i, 3, &nomem);
	o->path = dup_col(rows, i, 4, &nomem);
	o->headers = dup_col(rows, i, 5, &nomem);
	o->body = dup_col(rows, i, 6, &nomem);
	o->idem_key = dup_col(rows, i, 7, &nomem);
	o->traceparent = dup_col(rows, i, 8, &nomem);
	o->tracestate = dup_col(rows, i, 9, &nomem);
	if (zc_rows_int64(rows, i, 10, &v) == ZC_OK)
		o->attempts = (int)v;
	if (zc_rows_int64(rows, i, 11, &v) == ZC_OK)
		o->created_at = v;
	if (zc_rows_int64(rows, i, 12, &v) == ZC_OK)
		o->next_attempt_at = v;
	if (nomem || o->id == NULL)
		return -1;
	o->body_len = o->body != NULL ? strlen(o->body) : 0;
	if (o->headers != NULL &&
	    strncmp(o->headers, B64_MARK, B64_MARK_LEN) == 0 &&
	    (o->headers[B64_MARK_LEN] == '\n' ||
	     o->headers[B64_MARK_LEN] == '\0')) {
		char *rest = o->headers + B64_MARK_LEN;
		if (*rest == '\n')
			rest++;
		memmove(o->headers, rest, strlen(rest) + 1);
		if (o->body == NULL ||
		    zc__store_b64_decode(o->body, &body, &len) != 0)
			return -1;
		free(o->body);
		o->body = body;
		o->body_len = len;
	}
	return 0;
}

static void
row_free(struct zc_outbox_row *o)
{
	free(o->id);
	free(o->kind);
	free(o->target);
	free(o->method);
	free(o->path);
	free(o->headers);
	free(o->body);
	free(o->idem_key);
	free(o->traceparent);
	free(o->tracestate);
	free(o->last_error);
}

void
zc__outbox_rows_free(struct zc_outbox_row *rows, size_t n)
{
	size_t i;

	for (i = 0; rows != NULL && i < n; i++)
		row_free(&rows[i]);
	free(rows);
}

zc_err
zc__outbox_claim(const char *owner, long long lease_ms, int max,
		 struct zc_outbox_row **out, size_t *n)
{
	struct claim_job j = {owner, lease_ms, max > 0 ? max : 1, NULL};
	struct zc_outbox_row *rows;
	size_t i, k = 0, count;
	zc_err err;
	int rc = 0;

	*out = NULL;
	*n = 0;
	err = zc__store_run(claim_fn, &j, &rc);
	if (err == ZC_OK && rc != 0)
		err = ZC_ERR_STORE;
	if (err != ZC_OK) {
		zc_rows_free(j.rows);
		return err;
	}
	count = zc_rows_count(j.rows);
	if (count == 0) {
		zc_rows_free(j.rows);
		return ZC_OK;
	}
	if ((rows = calloc(count, sizeof(*rows))) == NULL) {
		/* claimed, not delivered: due again after the lease */
		zc_rows_free(j.rows);
		return ZC_ERR_NOMEM;
	}
	for (i = 0; i < count; i++) {
		if (read_row(j.rows, i, &rows[k]) != 0) {
			zc_error("outbox: row %s cannot be read back; it is "
				 "due again after its lease",
				 zc_rows_text(j.rows, i, 0) != NULL
					 ? zc_rows_text(j.rows, i, 0)
					 : "?");
			row_free(&rows[k]);
			memset(&rows[k], 0, sizeof(rows[k]));
			continue;
		}
		k++;
	}
	zc_rows_free(j.rows);
	*out = rows;
	*n = k;
	return ZC_OK;
}

/* ---------------------------------------------------------------------
 * A row's outcome
 * ------------------------------------------------------------------- */
struct stmt_job {
	const char *sql, *types;
	const char *s[4];
	int64_t i[2];
	long long changes;
};

/* One statement with the parameters types names (the few used here). */
static int
stmt_fn(zc_tx *tx, void *arg)
{
	struct stmt_job *j = arg;
	zc_err err;

	if (strcmp(j->types, "sIss") == 0)
		err = zc_tx_exec(tx, j->sql, j->types, j->s[0], j->i[0],
				 j->s[1], j->s[2]);
	else if (strcmp(j->types, "sss") == 0)
		err = zc_tx_exec(tx, j->sql, j->types, j->s[0], j->s[1],
				 j->s[2]);
	else if (strcmp(j->types, "sI") == 0)
		err = zc_tx_exec(tx, j->sql, j->types, j->s[0], j->i[0]);
	else
		err = ZC_ERR_INVALID;
	j->changes = zc_tx_changes(tx);
	return err == ZC_OK ? 0 : -1;
}

static zc_err
run_stmt(struct stmt_job *j)
{
	zc_err err;
	int rc = 0;

	if ((err = zc__store_run(stmt_fn, j, &rc)) != ZC_OK)
		return err;
	return rc == 0 ? ZC_OK : ZC_ERR_STORE;
}

/* DELETE ... WHERE id IN ($1..$8): eight at a time, NULL for none. */
static int
done_fn(zc_tx *tx, void *arg)
{
	const char *const *id = arg;

	return zc_tx_exec(tx,
			  "DELETE FROM zc_outbox WHERE id IN ($1, $2, $3, $4, "
			  "$5, $6, $7, $8)",
			  "ssssssss", id[0], id[1], id[2], id[3], id[4], id[5],
			  id[6], id[7]) == ZC_OK
		       ? 0
		       : -1;
}

zc_err
zc__outbox_done(const char *const *ids, size_t n)
{
	const char *chunk[8];
	size_t i, k;
	zc_err err;
	int rc;

	for (i = 0; i < n; i += 8) {
		for (k = 0; k < 8; k++)
			chunk[k] = i + k < n ? ids[i + k] : NULL;
		rc = 0;
		if ((err = zc__store_run(done_fn, chunk, &rc)) != ZC_OK)
			return err;
		if (rc != 0)
			return ZC_ERR_STORE;
	}
	return ZC_OK;
}

zc_err
zc__outbox_retry(const char *id, const char *owner, long long next_ms,
		 const char *error)
{
	struct stmt_job j = {
		.sql = "UPDATE zc_outbox SET next_attempt_at = $2, last_error "
		       "= $3, lease_owner = NULL WHERE id = $1 AND "
		       "lease_owner = $4",
		.types = "sIss",
		.s = {id, error, owner},
		.i = {next_ms}};

	return run_stmt(&j);
}

zc_err
zc__outbox_dead(const char *id, const char *owner, const char *error)
{
	struct stmt_job j = {
		.sql = "UPDATE zc_outbox SET state = 'dead', last_error = $2, "
		       "lease_owner = NULL WHERE id = $1 AND lease_owner = $3",
		.types = "sss",
		.s = {id, error, owner}};

	return run_stmt(&j);
}

zc_err
zc__outbox_release(const char *owner)
{
	struct stmt_job j = {
		.sql = "UPDATE zc_outbox SET next_attempt_at = $2, "
		       "lease_owner = NULL WHERE lease_owner = $1 AND state = "
		       "'pending'",
		.types = "sI",
		.s = {owner},
		.i = {zc__store_now_ms()}};
	zc_err err = run_stmt(&j);

	if (err == ZC_OK && j.changes > 0)
		zc_info("outbox: %lld claimed row(s) given back for any "
			"replica to deliver",
			j.changes);
	return err;
}

/* owner ("host/pid/random") is a process of this host that has ended. */
static bool
dead_local(const char *owner, const char *me)
{
	const char *slash = strchr(owner, '/'), *mine = strchr(me, '/');
	long pid;
	char *end;

	if (slash == NULL || mine == NULL || slash - owner != mine - me ||
	    strncmp(owner, me, (size_t)(slash - owner)) != 0 ||
	    strcmp(owner, me) == 0)
		return false;
	pid = strtol(slash + 1, &end, 10);
	if (end == slash + 1 || *end != '/' || pid <= 0)
		return false;
	/* our own pid: an earlier process in this container */
	if (pid == (long)getpid())
		return true;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int
owners_fn(zc_tx *tx, void *arg)
{
	zc_rows **rows = arg;

	zc_rows_free(*rows);
	*rows = NULL;
	return zc_tx_query(tx, rows,
			   "SELECT DISTINCT lease_owner FROM zc_outbox WHERE "
			   "state = 'pending' AND lease_owner IS NOT NULL",
			   "") == ZC_OK
		       ? 0
		       : -1;
}

zc_err
zc__outbox_release_dead_local(void)
{
	const char *me = zc__store_replica_id(), *owner;
	zc_rows *rows = NULL;
	zc_err err;
	size_t i;
	int rc = 0;

	err = zc__store_run(owners_fn, &rows, &rc);
	if (err == ZC_OK && rc != 0)
		err = ZC_ERR_STORE;
	for (i = 0; err == ZC_OK && i < zc_rows_count(rows); i++)
		if ((owner = zc_rows_text(rows, i, 0)) != NULL &&
		    dead_local(owner, me))
			err = zc__outbox_release(owner);
	zc_rows_free(rows);
	return err;
}

/* ---------------------------------------------------------------------
 * Depth
 * ------------------------------------------------------------------- */
static int
stats_fn(zc_tx *tx, void *arg)
{
	zc_rows **rows = arg;

	zc_rows_free(*rows);
	*rows = NULL;
	return zc_tx_query(tx, rows,
			   "SELECT state, count(*), min(created_at) FROM "
			   "zc_outbox GROUP BY state",
			   "") == ZC_OK
		       ? 0
		       : -1;
}

zc_err
zc__outbox_stats(long long *pending, long long *dead, long long *oldest_ms)
{
	zc_rows *rows = NULL;
	const char *state;
	int64_t n, t;
	zc_err err;
	size_t i;
	int rc = 0;

	*pending = *dead = *oldest_ms = 0;
	err = zc__store_run(stats_fn, &rows, &rc);
	if (err == ZC_OK && rc != 0)
		err = ZC_ERR_STORE;
	for (i = 0; err == ZC_OK && i < zc_rows_count(rows); i++) {
		if ((state = zc_rows_text(rows, i, 0)) == NULL ||
		    zc_rows_int64(rows, i, 1, &n) != ZC_OK)
			continue;
		if (strcmp(state, "pending") == 0) {
			*pending = n;
			if (zc_rows_int64(rows, i, 2, &t) == ZC_OK)
				*oldest_ms = t;
		} else if (strcmp(state, "dead") == 0) {
			*dead = n;
		}
	}
	zc_rows_free(rows);
	return err;
}
