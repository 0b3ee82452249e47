/*
 * schema.c - the tables the store holds: the runtime's own (schema "zc":
 * idempotency records and the outbox) and those the function declares,
 * each applied once per store, recorded by name and version in zc_schema,
 * under a lock so replicas starting together do not both run it.
 */
#include "backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Schema "zc", version 1.  Times are milliseconds since the epoch, given
 * by the runtime (now() and CURRENT_TIMESTAMP differ between backends).
 *
 * zc_idem - one row per idempotency key (and per CloudEvent source+id for
 * event dedup, scope "event:<route>"):
 *   scope         TEXT    method + route pattern the key belongs to
 *   idem_key      TEXT    the Idempotency-Key   (PRIMARY KEY scope, key)
 *   fingerprint   TEXT    hash of the request body: another body -> 422
 *   state         TEXT    'running' (claimed) or 'done' (answer stored)
 *   owner         TEXT    replica that claimed it, while running
 *   locked_until  BIGINT  a running claim past this is abandoned (its
 *                         replica died) and may be taken over; before
 *                         it, a repeat gets 409
 *   status        INTEGER the stored answer: status, content type, body
 *   content_type  TEXT        (replayed as is; 5xx answers are not kept)
 *   body          TEXT
 *   created_at    BIGINT  for the TTL sweep (index zc_idem_created)
 *
 * zc_outbox - calls and events to deliver after the transaction that
 * wrote them commits; claimed by one replica at a time:
 *   id               TEXT    PRIMARY KEY, made by the runtime; also the
 *                            receiver's dedup id
 *   created_at       BIGINT
 *   next_attempt_at  BIGINT  due time; a claim moves it to now + lease,
 *                            so the row of a replica that died while
 *                            delivering is due again after the lease
 *   lease_owner      TEXT    replica holding the current claim
 *   attempts         INTEGER deliveries tried
 *   state            TEXT    'pending' or 'dead' (gave up; kept to see)
 *   kind             TEXT    'call' or 'event'
 *   target           TEXT    target name (policy, breaker) or sink
 *   method, path     TEXT    HTTP method and URL or path
 *   headers          TEXT    "Name: value" lines
 *   body             TEXT
 *   idempotency_key  TEXT    sent with every attempt
 *   traceparent, tracestate TEXT  the trace of the request that wrote it
 *   last_error       TEXT    why the last attempt failed
 * Claiming: PostgreSQL "SELECT id FROM zc_outbox WHERE state = 'pending'
 * AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT n FOR UPDATE
 * SKIP LOCKED" then UPDATE next_attempt_at, lease_owner, attempts, in one
 * transaction; SQLite the same without FOR UPDATE (one writer at a time).
 */
static const char zc_ddl_v1[] =
	"CREATE TABLE IF NOT EXISTS zc_idem ("
	" scope TEXT NOT NULL,"
	" idem_key TEXT NOT NULL,"
	" fingerprint TEXT NOT NULL,"
	" state TEXT NOT NULL CHECK (state IN ('running', 'done')),"
	" owner TEXT,"
	" locked_until BIGINT,"
	" status INTEGER,"
	" content_type TEXT,"
	" body TEXT,"
	" created_at BIGINT NOT NULL,"
	" PRIMARY KEY (scope, idem_key));\n"
	"CREATE INDEX IF NOT EXISTS zc_idem_created ON zc_idem (created_at);\n"
	"CREATE TABLE IF NOT EXISTS zc_outbox ("
	" id TEXT PRIMARY KEY,"
	" created_at BIGINT NOT NULL,"
	" next_attempt_at BIGINT NOT NULL,"
	" lease_owner TEXT,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" state TEXT NOT NULL DEFAULT 'pending'"
	" CHECK (state IN ('pending', 'dead')),"
	" kind TEXT NOT NULL,"
	" target TEXT NOT NULL,"
	" method TEXT,"
	" path TEXT,"
	" headers TEXT,"
	" body TEXT,"
	" idempotency_key TEXT,"
	" traceparent TEXT,"
	" tracestate TEXT,"
	" last_error TEXT);\n"
	"CREATE INDEX IF NOT EXISTS zc_outbox_due"
	" ON zc_outbox (state, next_attempt_at);\n";

struct schema {
	char name[64];
	int version;
	char *ddl;
};

/* The runtime's schema first, then the function's, in declaration order.
 * mu also makes one thread of the process apply them at a time. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct schema *schemas;
static size_t nschemas, capschemas;
static atomic_bool applied;

zc_err
zc__store_schema_add(const char *name, int version, const char *ddl)
{
	struct schema *s;
	size_t i, len;

	len = name != NULL ? strlen(name) : 0;
	if (len == 0 || len >= sizeof(s->name) || version < 1 || ddl == NULL ||
	    *ddl == '\0') {
		zc_error("store: a schema needs a name (1-63 characters), a "
			 "version >= 1 and its DDL");
		return ZC_ERR_INVALID;
	}
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_' &&
		    name[i] != '-' && name[i] != '.') {
			zc_error("store: schema name \"%.63s\": use letters, "
				 "digits, '_', '-' and '.'",
				 name);
			return ZC_ERR_INVALID;
		}
	if (strcmp(name, "zc") == 0) {
		zc_error("store: schema name \"zc\" is the runtime's own");
		return ZC_ERR_INVALID;
	}
	pthread_mutex_lock(&mu);
	for (i = 0; i < nschemas; i++)
		if (strcmp(schemas[i].name, name) == 0) {
			pthread_mutex_unlock(&mu);
			zc_error("store: schema \"%s\" declared twice", name);
			return ZC_ERR_INVALID;
		}
	if (nschemas == capschemas) {
		size_t n = capschemas > 0 ? capschemas * 2 : 4;
		s = realloc(schemas, n * sizeof(*s));
		if (s == NULL) {
			pthread_mutex_unlock(&mu);
			return ZC_ERR_NOMEM;
		}
		schemas = s;
		capschemas = n;
	}
	s = &schemas[nschemas];
	if ((s->ddl = strdup(ddl)) == NULL) {
		pthread_mutex_unlock(&mu);
		return ZC_ERR_NOMEM;
	}
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->version = version;
	nschemas++;
	/* a connection opened before this must check again */
	atomic_store(&applied, false);
	pthread_mutex_unlock(&mu);
	return ZC_OK;
}

void
zc__schema_reset(void)
{
	size_t i;

	pthread_mutex_lock(&mu);
	for (i = 0; i < nschemas; i++)
		free(schemas[i].ddl);
	free(schemas);
	schemas = NULL;
	nschemas = capschemas = 0;
	atomic_store(&applied, false);
	pthread_mutex_unlock(&mu);
}

void
zc__schema_invalidate(void)
{
	atomic_store(&applied, false);
}

/* One schema, inside the locked transaction: run its DDL when the store
 * records an older version or none. */
static zc_err
apply_one(struct zc_conn *c, const char *name, int version, const char *ddl)
{
	struct zc_param p[2] = {{.type = 's', .s = name}, {.type = 'I'}};
	zc_rows *rows = NULL;
	long long changes;
	int64_t have = 0;
	zc_err err;

	err = c->be->exec(c, "SELECT version FROM zc_schema WHERE name = $1", p,
			  1, &rows, &changes);
	if (err != ZC_OK)
		return err;
	if (zc_rows_count(rows) > 0 &&
	    zc_rows_int64(rows, 0, 0, &have) != ZC_OK)
		have = 0;
	zc_rows_free(rows);
	if (have >= version) {
		if (have > version)
			zc_warn("store: schema \"%s\" is at version %lld, "
				"newer "
				"than this function's %d; leaving it",
				name, (long long)have, version);
		return ZC_OK;
	}
	zc_info("store: applying schema \"%s\" version %d (was %lld)", name,
		version, (long long)have);
	if ((err = c->be->script(c, ddl)) != ZC_OK) {
		zc_error("store: schema \"%s\" version %d failed; nothing of "
			 "it was applied",
			 name, version);
		return err;
	}
	p[1].i = version;
	snprintf(p[1].text, sizeof(p[1].text), "%d", version);
	return c->be->exec(c,
			   "INSERT INTO zc_schema (name, version) VALUES ($1, "
			   "$2) ON CONFLICT (name) DO UPDATE SET version = "
			   "excluded.version",
			   p, 2, NULL, &changes);
}

static zc_err
apply_all(struct zc_conn *c)
{
	bool unknown;
	zc_err err;
	size_t i;

	/* The lock comes first: PostgreSQL's CREATE TABLE IF NOT EXISTS is
	 * itself not safe against a concurrent one. */
	if ((err = c->be->begin(c, true)) != ZC_OK)
		return err;
	err = c->be->script(c, "CREATE TABLE IF NOT EXISTS zc_schema (name "
			       "TEXT PRIMARY KEY, version BIGINT NOT NULL)");
	if (err == ZC_OK)
		err = apply_one(c, "zc", 1, zc_ddl_v1);
	for (i = 0; err == ZC_OK && i < nschemas; i++)
		err = apply_one(c, schemas[i].name, schemas[i].version,
				schemas[i].ddl);
	if (err != ZC_OK) {
		c->be->rollback(c);
		return err;
	}
	return c->be->commit(c, &unknown);
}

zc_err
zc__schema_ensure(struct zc_conn *c)
{
	zc_err err = ZC_OK;
	int tries;

	if (atomic_load(&applied))
		return ZC_OK;
	pthread_mutex_lock(&mu);
	if (!atomic_load(&applied)) {
		/* a deadlock with a handler's transaction: try again */
		for (tries = 0; tries < 3; tries++)
			if ((err = apply_all(c)) != ZC_ERR_CONFLICT)
				break;
		if (err == ZC_OK)
			atomic_store(&applied, true);
	}
	pthread_mutex_unlock(&mu);
	return err;
}
