/*
 * records.c - idempotency records in the store (table zc_idem), so a key
 * is applied once across replicas and restarts: checked and written in a
 * transactional handler's own transaction, or claimed and finished in two
 * short ones around any other handler.  Also what the store's users share:
 * which store is in use, this replica's id, times, and text that a TEXT
 * column can hold.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Expired records are deleted at most this often, per process. */
#define SWEEP_EVERY_MS 60000LL

bool
zc__store_durable(void)
{
	int k = zc__store_kind();

	return k == ZC_STORE_SQLITE || k == ZC_STORE_POSTGRES;
}

static pthread_once_t replica_once = PTHREAD_ONCE_INIT;
static char replica[128];

static void
make_replica_id(void)
{
	char host[64], rnd[9];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, "/")] = '\0';
	snprintf(replica, sizeof(replica), "%s/%ld/%s", host, (long)getpid(),
		 zc_random_id(rnd, sizeof(rnd)));
}

const char *
zc__store_replica_id(void)
{
	pthread_once(&replica_once, make_replica_id);
	return replica;
}

long long
zc__store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------
 * Text a TEXT column holds: UTF-8 (PostgreSQL refuses anything else in a
 * UTF8 database), no NUL (parameters are C strings); base64 otherwise
 * ------------------------------------------------------------------- */
bool
zc__store_text_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k, len;
	uint32_t cp;

	while (i < n) {
		if (p[i] == 0)
			return false;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			len = 2;
			cp = p[i] & 0x1f;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			len = 3;
			cp = p[i] & 0x0f;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			len = 4;
			cp = p[i] & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += len;
	}
	return true;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
zc__store_b64_encode(const void *data, size_t n)
{
	const unsigned char *p = data;
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;
	uint32_t v;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	if (i < n) {
		v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		*o++ = b64[v >> 18];
		*o++ = b64[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

int
zc__store_b64_decode(const char *s, char **outp, size_t *len)
{
	size_t n = strlen(s), i, o = 0;
	uint32_t v = 0;
	int bits = 0;
	char *out;
	const char *c;

	if ((out = malloc(n / 4 * 3 + 3)) == NULL)
		return -1;
	for (i = 0; i < n && s[i] != '='; i++) {
		if ((c = strchr(b64, s[i])) == NULL) {
			free(out);
			return -1;
		}
		v = (v << 6) | (uint32_t)(c - b64);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*outp = out;
	*len = o;
	return 0;
}

/* ---------------------------------------------------------------------
 * Content types: answers hold a static string; the store keeps its text
 * ------------------------------------------------------------------- */
const char zc__ctype_stored_event[] = "application/cloudevents+json";

static const char *const known_ctypes[] = {
	zc__ctype_stored_event,
	"application/json",
	"text/plain; charset=utf-8",
	"text/plain; version=0.0.4; charset=utf-8",
};

/* Others (none today) interned once, for the process's life. */
#define MAX_INTERNED 32
static pthread_mutex_t intern_mu = PTHREAD_MUTEX_INITIALIZER;
static char *interned[MAX_INTERNED];

const char *
zc__store_ctype(const char *text)
{
	const char *found = "application/octet-stream";
	size_t i;

	if (text == NULL)
		return NULL;
	for (i = 0; i < sizeof(known_ctypes) / sizeof(known_ctypes[0]); i++)
		if (strcmp(text, known_ctypes[i]) == 0)
			return known_ctypes[i];
	pthread_mutex_lock(&intern_mu);
	for (i = 0; i < MAX_INTERNED; i++) {
		if (interned[i] == NULL) {
			if ((interned[i] = strdup(text)) != NULL)
				found = interned[i];
			break;
		}
		if (strcmp(interned[i], text) == 0) {
			found = interned[i];
			break;
		}
	}
	pthread_mutex_unlock(&intern_mu);
	return found;
}

/* ---------------------------------------------------------------------
 * A record's key
 * ------------------------------------------------------------------- */
/* s itself, or "x:" and its hex when a TEXT column cannot hold it. */
static const char *
safe_text(const char *s, char **own)
{
	size_t n = strlen(s), i;
	char *h;

	*own = NULL;
	if (zc__store_text_ok(s, n))
		return s;
	if ((h = malloc(2 * n + 3)) == NULL)
		return NULL;
	memcpy(h, "x:", 2);
	for (i = 0; i < n; i++)
		snprintf(h + 2 + 2 * i, 3, "%02x", (unsigned char)s[i]);
	*own = h;
	return h;
}

zc_err
zc__rec_init(struct zc_rec *r, const char *scope, const char *key,
	     const void *payload, size_t len, long ttl_s, long long lease_ms)
{
	size_t sl = strlen(scope), kl = strlen(key);
	char *full;

	memset(r, 0, sizeof(*r));
	snprintf(r->fp, sizeof(r->fp), "%016llx%016llx",
		 (unsigned long long)zc__fnv1a(payload != NULL ? payload : "",
					       len, ZC__FNV_OFFSET),
		 (unsigned long long)zc__mix_hash(
			 payload != NULL ? payload : "", len));
	if ((full = malloc(sl + kl + 2)) == NULL)
		return ZC_ERR_NOMEM;
	memcpy(full, scope, sl);
	full[sl] = '\n';
	memcpy(full + sl + 1, key, kl + 1);
	r->lock_id = (int64_t)zc__fnv1a(full, sl + kl + 1, ZC__FNV_OFFSET);
	free(full);
	r->scope = safe_text(scope, &r->own_scope);
	r->key = safe_text(key, &r->own_key);
	r->ttl_s = ttl_s > 0 ? ttl_s : 3600;
	r->lease_ms = lease_ms > 0 ? lease_ms : 60000;
	if (r->scope == NULL || r->key == NULL) {
		zc__rec_release(r);
		return ZC_ERR_NOMEM;
	}
	return ZC_OK;
}

void
zc__rec_release(struct zc_rec *r)
{
	free(r->own_scope);
	free(r->own_key);
	r->own_scope = r->own_key = NULL;
}

/* ---------------------------------------------------------------------
 * Reading and writing records
 * ------------------------------------------------------------------- */
#define REC_COLUMNS                                                            \
	"state, fingerprint, locked_until, status, content_type, body, "       \
	"created_at"

/* An answer as the columns keep it: the body as is when it is text,
 * else base64 with "base64," before the content type. */
struct stored {
	char *ctype, *body; /* malloc'd, or NULL */
	const char *ctype_text, *body_text;
};

static int
to_stored(const struct zc_answer *a, struct stored *s)
{
	const char *ct = a->ctype != NULL ? a->ctype : "";
	size_t n;

	memset(s, 0, sizeof(*s));
	s->ctype_text = a->ctype;
	s->body_text = a->len > 0 ? a->body : NULL;
	if (a->len == 0 || zc__store_text_ok(a->body, a->len))
		return 0;
	n = strlen(ct) + 8;
	if ((s->body = zc__store_b64_encode(a->body, a->len)) == NULL ||
	    (s->ctype = malloc(n)) == NULL) {
		free(s->body);
		return -1;
	}
	snprintf(s->ctype, n, "base64,%s", ct);
	s->ctype_text = s->ctype;
	s->body_text = s->body;
	return 0;
}

static void
stored_free(struct stored *s)
{
	free(s->ctype);
	free(s->body);
}

/* The answer in row 0 (columns 3..5) into *a.  -1: no memory or bad. */
static int
from_row(const zc_rows *rows, struct zc_answer *a)
{
	const char *ct = zc_rows_text(rows, 0, 4);
	const char *body = zc_rows_text(rows, 0, 5);
	int64_t st = 0;
	size_t n;

	memset(a, 0, sizeof(*a));
	if (zc_rows_int64(rows, 0, 3, &st) != ZC_OK)
		return -1;
	a->status = (int)st;
	if (ct != NULL && strncmp(ct, "base64,", 7) == 0) {
		if (body == NULL ||
		    zc__store_b64_decode(body, &a->body, &a->len) != 0)
			return -1;
		ct += 7;
		a->ctype = *ct != '\0' ? zc__store_ctype(ct) : NULL;
		if (a->len == 0) {
			free(a->body);
			a->body = NULL;
		}
		return 0;
	}
	a->ctype = zc__store_ctype(ct);
	if (body != NULL && (n = strlen(body)) > 0) {
		if ((a->body = strdup(body)) == NULL)
			return -1;
		a->len = n;
	}
	return 0;
}

/* What a record found in rows means for a request now (no rows: none).
 * *expired: the row is there but no longer counts (taken over). */
static int
decide(const struct zc_rec *r, const zc_rows *rows, long long now,
       struct zc_answer *replay, bool *expired)
{
	const char *state, *fp;
	int64_t created = 0, until = 0;

	*expired = false;
	if (zc_rows_count(rows) == 0)
		return ZC_IDEM_PROCEED;
	state = zc_rows_text(rows, 0, 0);
	fp = zc_rows_text(rows, 0, 1);
	(void)zc_rows_int64(rows, 0, 6, &created);
	if (state == NULL || fp == NULL)
		return ZC_IDEM_UNAVAILABLE;
	if (created < now - (long long)r->ttl_s * 1000) {
		*expired = true; /* past its TTL: as if gone */
		return ZC_IDEM_PROCEED;
	}
	if (strcmp(fp, r->fp) != 0)
		return ZC_IDEM_MISMATCH;
	if (strcmp(state, "done") != 0) {
		(void)zc_rows_int64(rows, 0, 2, &until);
		if (until > now)
			return ZC_IDEM_CONFLICT;
		*expired = true; /* its replica died: take it over */
		return ZC_IDEM_PROCEED;
	}
	if (from_row(rows, replay) != 0) {
		free(replay->body);
		replay->body = NULL;
		zc_warn("idempotency: the stored answer for a key cannot be "
			"read back; answering 409");
		return ZC_IDEM_CONFLICT;
	}
	return ZC_IDEM_REPLAY;
}

static zc_err
read_record(zc_tx *tx, const struct zc_rec *r, zc_rows **rows)
{
	return zc_tx_query(tx, rows,
			   "SELECT " REC_COLUMNS " FROM zc_idem WHERE scope = "
			   "$1 AND idem_key = $2",
			   "ss", r->scope, r->key);
}

int
zc__rec_check(zc_tx *tx, const struct zc_rec *r, struct zc_answer *replay)
{
	zc_rows *rows = NULL;
	const char *got;
	bool expired;
	int rc;

	if (zc__store_kind() == ZC_STORE_POSTGRES) {
		/* held to the end of this transaction: a duplicate anywhere
		 * finds it taken and answers 409 at once */
		if (zc_tx_query(tx, &rows,
				"SELECT pg_try_advisory_xact_lock($1)", "I",
				r->lock_id) != ZC_OK)
			return ZC_IDEM_UNAVAILABLE;
		got = zc_rows_text(rows, 0, 0);
		rc = got != NULL && strcmp(got, "t") == 0;
		zc_rows_free(rows);
		rows = NULL;
		if (!rc)
			return ZC_IDEM_CONFLICT;
	}
	if (read_record(tx, r, &rows) != ZC_OK)
		return ZC_IDEM_UNAVAILABLE;
	rc = decide(r, rows, zc__store_now_ms(), replay, &expired);
	zc_rows_free(rows);
	return rc;
}

static const char upsert_done[] =
	"INSERT INTO zc_idem (scope, idem_key, fingerprint, state, owner, "
	"locked_until, status, content_type, body, created_at) VALUES ($1, "
	"$2, $3, 'done', NULL, NULL, $4, $5, $6, $7) ON CONFLICT (scope, "
	"idem_key) DO ";

static zc_err
write_done(zc_tx *tx, const struct zc_rec *r, const struct zc_answer *ans,
	   bool replace)
{
	struct stored s;
	char sql[512];
	zc_err err;

	if (to_stored(ans, &s) != 0)
		return ZC_ERR_NOMEM;
	snprintf(sql, sizeof(sql), "%s%s", upsert_done,
		 replace ? "UPDATE SET fingerprint = excluded.fingerprint, "
			   "state = 'done', owner = NULL, locked_until = "
			   "NULL, status = excluded.status, content_type = "
			   "excluded.content_type, body = excluded.body, "
			   "created_at = excluded.created_at"
			 : "NOTHING");
	err = zc_tx_exec(tx, sql, "sssissI", r->scope, r->key, r->fp,
			 ans->status, s.ctype_text, s.body_text,
			 (int64_t)zc__store_now_ms());
	stored_free(&s);
	return err;
}

zc_err
zc__rec_put(zc_tx *tx, const struct zc_rec *r, const struct zc_answer *ans)
{
	if (ans->status >= 500)
		return ZC_OK; /* never kept: a retry runs again */
	return write_done(tx, r, ans, true);
}

struct rec_job {
	const struct zc_rec *r;
	const struct zc_answer *ans;
	struct zc_answer *replay;
	int outcome;
	long long changes;
};

static int
store_fn(zc_tx *tx, void *arg)
{
	struct rec_job *j = arg;

	return write_done(tx, j->r, j->ans, false) == ZC_OK ? 0 : -1;
}

zc_err
zc__rec_store(const struct zc_rec *r, const struct zc_answer *ans)
{
	struct rec_job j = {r, ans, NULL, 0, 0};
	int rc = 0;
	zc_err err;

	if (ans->status >= 500)
		return ZC_OK;
	if ((err = zc__store_run(store_fn, &j, &rc)) != ZC_OK)
		return err;
	return rc == 0 ? ZC_OK : ZC_ERR_STORE;
}

/* The first phase: read the key, and claim it when it is free. */
static int
claim_fn(zc_tx *tx, void *arg)
{
	struct rec_job *j = arg;
	const struct zc_rec *r = j->r;
	long long now = zc__store_now_ms();
	zc_rows *rows = NULL;
	bool expired;
	zc_err err;

	j->outcome = ZC_IDEM_UNAVAILABLE;
	free(j->replay->body); /* a re-run's: from nothing again */
	memset(j->replay, 0, sizeof(*j->replay));
	if (read_record(tx, r, &rows) != ZC_OK)
		return -1;
	j->outcome = decide(r, rows, now, j->replay, &expired);
	zc_rows_free(rows);
	if (j->outcome != ZC_IDEM_PROCEED)
		return 0; /* read only: nothing to keep */
	if (!expired)
		err = zc_tx_exec(tx,
				 "INSERT INTO zc_idem (scope, idem_key, "
				 "fingerprint, state, owner, locked_until, "
				 "created_at) VALUES ($1, $2, $3, 'running', "
				 "$4, $5, $6) ON CONFLICT (scope, idem_key) "
				 "DO NOTHING",
				 "ssssII", r->scope, r->key, r->fp,
				 zc__store_replica_id(),
				 (int64_t)(now + r->lease_ms), (int64_t)now);
	else
		/* only if it is still what we saw: two replicas taking over
		 * the same key cannot both win */
		err = zc_tx_exec(
			tx,
			"UPDATE zc_idem SET fingerprint = $3, state = "
			"'running', owner = $4, locked_until = $5, status = "
			"NULL, content_type = NULL, body = NULL, created_at = "
			"$6 WHERE scope = $1 AND idem_key = $2 AND "
			"((state = 'running' AND locked_until <= $6) OR "
			"created_at < $7)",
			"ssssIII", r->scope, r->key, r->fp,
			zc__store_replica_id(), (int64_t)(now + r->lease_ms),
			(int64_t)now, (int64_t)(now - r->ttl_s * 1000LL));
	if (err != ZC_OK) {
		j->outcome = ZC_IDEM_UNAVAILABLE;
		return -1;
	}
	/* someone claimed it between our read and our write */
	if (zc_tx_changes(tx) == 0)
		j->outcome = ZC_IDEM_CONFLICT;
	return 0;
}

int
zc__rec_claim(const struct zc_rec *r, struct zc_answer *replay)
{
	struct rec_job j = {r, NULL, replay, ZC_IDEM_UNAVAILABLE, 0};
	int rc = 0;

	memset(replay, 0, sizeof(*replay));
	zc__rec_sweep(r->ttl_s);
	if (zc__store_run(claim_fn, &j, &rc) != ZC_OK || rc != 0) {
		if (j.outcome == ZC_IDEM_REPLAY) {
			free(replay->body);
			replay->body = NULL;
		}
		return ZC_IDEM_UNAVAILABLE;
	}
	return j.outcome;
}

static int
finish_fn(zc_tx *tx, void *arg)
{
	struct rec_job *j = arg;
	const struct zc_rec *r = j->r;
	struct stored s;
	zc_err err;

	if (j->ans == NULL || j->ans->status >= 500) {
		err = zc_tx_exec(tx,
				 "DELETE FROM zc_idem WHERE scope = $1 AND "
				 "idem_key = $2 AND state = 'running' AND "
				 "owner = $3",
				 "sss", r->scope, r->key,
				 zc__store_replica_id());
	} else {
		if (to_stored(j->ans, &s) != 0)
			return -1;
		err = zc_tx_exec(tx,
				 "UPDATE zc_idem SET state = 'done', owner = "
				 "NULL, locked_until = NULL, status = $4, "
				 "content_type = $5, body = $6 WHERE scope = "
				 "$1 AND idem_key = $2 AND state = 'running' "
				 "AND owner = $3",
				 "sssiss", r->scope, r->key,
				 zc__store_replica_id(), j->ans->status,
				 s.ctype_text, s.body_text);
		stored_free(&s);
	}
	j->changes = zc_tx_changes(tx);
	return err == ZC_OK ? 0 : -1;
}

zc_err
zc__rec_finish(const struct zc_rec *r, const struct zc_answer *ans)
{
	struct rec_job j = {r, ans, NULL, 0, 0};
	int rc = 0;
	zc_err err;

	if ((err = zc__store_run(finish_fn, &j, &rc)) != ZC_OK)
		return err;
	if (rc != 0)
		return ZC_ERR_STORE;
	if (j.changes == 0 && ans != NULL && ans->status < 500)
		zc_warn("idempotency: the claim on a key expired while its "
			"handler ran (another replica may have taken it "
			"over); its answer was not kept");
	return ZC_OK;
}

/* ---------------------------------------------------------------------
 * The TTL
 * ------------------------------------------------------------------- */
static _Atomic long long last_sweep_ms;

static int
sweep_fn(zc_tx *tx, void *arg)
{
	long long *cutoff = arg;

	/* running claims too: past the TTL their replica is long gone */
	return zc_tx_exec(tx, "DELETE FROM zc_idem WHERE created_at < $1", "I",
			  (int64_t)*cutoff) == ZC_OK
		       ? 0
		       : -1;
}

void
zc__rec_sweep(long ttl_s)
{
	long long now = zc__store_now_ms(), last = atomic_load(&last_sweep_ms);
	long long cutoff = now - (long long)ttl_s * 1000;
	zc_err err;
	int rc = 0;

	if (now - last < SWEEP_EVERY_MS ||
	    !atomic_compare_exchange_strong(&last_sweep_ms, &last, now))
		return;
	err = zc__store_run(sweep_fn, &cutoff, &rc);
	if (err != ZC_OK || rc != 0)
		zc_debug("idempotency: the sweep of expired records failed; "
			 "next one in a minute");
}
