/*
 * store.h - state that outlives one request: the idempotency records of
 * idempotent routes and the event-dedup records of idempotent event
 * routes (in this process, or in the durable store across replicas), the
 * durable store itself (ZC_STORE_URL) and its outbox.  Below the server:
 * it stores answers as plain values, not responses, and knows nothing of
 * HTTP.
 */
#ifndef ZC_STORE_H
#define ZC_STORE_H

#include "../core/core.h"

/* An answer as stored and replayed: status, content type, body. */
struct zc_answer {
	int status;
	const char *ctype; /* a static string */
	char *body;        /* NUL-terminated copy; NULL when len is 0 */
	size_t len;
};

/* ---- idempotency keys (idempotency.c) ---- */
enum {
	ZC_IDEM_PROCEED = 0,       /* first time: run, then finish */
	ZC_IDEM_PROCEED_UNTRACKED, /* out of memory: run untracked */
	ZC_IDEM_REPLAY,            /* *replay holds the stored answer */
	ZC_IDEM_CONFLICT,          /* same key still running: 409 */
	ZC_IDEM_MISMATCH,          /* same key, other payload: 422 */
	ZC_IDEM_UNAVAILABLE        /* durable records: the store failed */
};
struct zc_idem;
struct zc_idem_ticket {
	uint64_t hash, id;
};
struct zc_idem *zc__idem_new(size_t max_keys, long ttl_s);
void zc__idem_free(struct zc_idem *t);
/* On ZC_IDEM_REPLAY, *replay receives a copy the caller owns (free its
 * body). */
int zc__idem_begin(struct zc_idem *t, const char *scope, const char *key,
		   const char *body, size_t len, struct zc_answer *replay,
		   struct zc_idem_ticket *ticket);
/* Keep the answer (copied), or forget the key when it is a 5xx. */
void zc__idem_finish(struct zc_idem *t, const struct zc_idem_ticket *ticket,
		     const struct zc_answer *answer);
void zc__idem_finish_failed(struct zc_idem *t,
			    const struct zc_idem_ticket *ticket);

/*
 * ---- the durable store: ZC_STORE_URL (store.c, url.c, schema.c, rows.c,
 * sqlite.c, postgres.c) ----
 *
 * One store per process, chosen at start-up; zenith.h's zc_tx and zc_rows
 * are its public face.  libsqlite3 and libpq are loaded with dlopen on
 * first use, so a function that never touches the store loads neither.
 *
 * Connections: one per thread that uses the store, opened on the thread's
 * first transaction, kept for later ones and reopened after a failure;
 * plus one for the readiness checker when zc__store_ready is called.  So
 * PostgreSQL sees (threads using the store + 1) connections per replica:
 * budget replicas x that against max_connections (100 by default).
 *
 * The SQL both backends accept (statements with $1..$n, one per call):
 *   CREATE TABLE IF NOT EXISTS t (id BIGINT PRIMARY KEY, name TEXT NOT
 *     NULL UNIQUE, cents BIGINT NOT NULL CHECK (cents >= 0), ...);
 *     types INTEGER, BIGINT, TEXT; CREATE INDEX IF NOT EXISTS ...
 *   INSERT INTO t (a, b) VALUES ($1, $2)
 *     [ON CONFLICT (a) DO NOTHING | DO UPDATE SET b = excluded.b]
 *     [RETURNING ...]
 *   UPDATE t SET n = n + $1 WHERE id = $2 [RETURNING n]
 *   DELETE FROM t WHERE ... [RETURNING ...]
 *   SELECT ... FROM t WHERE ... ORDER BY ... LIMIT $n
 *   CAST($1 AS BIGINT) where a type must be forced (not $1::bigint)
 * What differs, and how to stay portable:
 *   - no SERIAL / AUTOINCREMENT / identity: use BIGINT or TEXT keys and
 *     make ids in C (zc_random_id, zc_stable_id);
 *   - no now() / CURRENT_TIMESTAMP: pass times as BIGINT milliseconds;
 *   - integer overflow: PostgreSQL fails (22003), SQLite silently turns
 *     the result into a REAL (zc_rows_int64 then refuses it): check cents
 *     arithmetic in C before the statement, and add CHECK constraints;
 *   - FOR UPDATE / SKIP LOCKED, advisory locks: PostgreSQL only (SQLite
 *     runs one writing transaction at a time, so it needs neither);
 *   - parameter types: PostgreSQL infers an 's' parameter's type from
 *     where it stands (WHERE id = $1 works for a BIGINT id), but not in
 *     "SELECT $1 + 1" (write CAST($1 AS BIGINT)); SQLite converts text
 *     only next to an INTEGER column.  Bind integers as 'i' or 'I';
 *   - BLOB/BYTEA differ: keep binary data as hex or base64 TEXT;
 *   - results are text on both: integers in decimal, NULL as NULL; a
 *     SQLite REAL prints as "%.15g", a PostgreSQL boolean as "t"/"f".
 * Isolation: PostgreSQL READ COMMITTED (each statement sees what others
 * committed before it; row locks make UPDATE ... SET n = n + 1 exact);
 * SQLite serialises writers with BEGIN IMMEDIATE, so every transaction,
 * reads included, runs alone.  Either may report ZC_ERR_CONFLICT, which
 * zc__store_run answers by re-running the whole transaction.
 */
enum zc_store_kind {
	ZC_STORE_NONE = 0,
	ZC_STORE_SQLITE,   /* sqlite:PATH, or ZC_STORE_URL unset */
	ZC_STORE_MEMORY,   /* memory: SQLite in memory, this process only */
	ZC_STORE_POSTGRES, /* postgres:// or postgresql:// */
};

/* ZC_STORE_URL parsed; nothing is connected. */
struct zc_store_url {
	int kind;
	char *target;  /* file path, memory: URI, or libpq URI as given */
	char *display; /* for logs: any password masked */
	char appname[64];
	bool ephemeral; /* state ends with the pod or the process */
};

/* Parse url (NULL or "": the default SQLite file $TMPDIR/<name>.db) for a
 * function called name.  On error writes one line naming ZC_STORE_URL into
 * err (no password in it) and returns -1.  Never connects. */
int zc__store_url_parse(const char *url, const char *name,
			struct zc_store_url *out, char *err, size_t errsize);
void zc__store_url_free(struct zc_store_url *u);
/* s with the password of a URL in it replaced by "***" (malloc'd; NULL
 * when out of memory). */
char *zc__store_url_mask(const char *s);

/* Make url the process's store; retries < 0 means the default (3).  Call
 * before threads use the store; it closes what an earlier configuration
 * opened.  -1 with one line in err for a bad url. */
int zc__store_configure(const char *url, const char *name, int retries,
			char *err, size_t errsize);
/* The same from ZC_STORE_URL and ZC_STORE_RETRIES (0..10). */
int zc__store_configure_env(const char *name, char *err, size_t errsize);
bool zc__store_configured(void);
/* Where state lives ("postgresql://app:***@db/x", "sqlite:/tmp/f.db"), and
 * for an ephemeral store a warning saying so and how to keep state; warn
 * receives "" otherwise. */
void zc__store_describe(char *where, size_t wsize, char *warn, size_t warnsize);
/* Both, as a start-up info line and a warning. */
void zc__store_log_startup(void);

/* Declare a schema: ddl (several statements, no parameters) runs once per
 * store when its recorded version is lower or absent.  Call in setup,
 * before the first transaction.  The runtime's own is "zc" (zc_idem,
 * zc_outbox; schema.c lists their columns). */
zc_err zc__store_schema_add(const char *name, int version, const char *ddl);

/*
 * A transaction on the calling thread's connection (opened, and the
 * schemas applied, when needed).  One at a time per thread: a second
 * begin before commit or rollback is ZC_ERR_INVALID.  ZC_ERR_STORE when
 * the store cannot be reached (logged; retried on a later begin).
 */
zc_err zc__store_begin(zc_tx **tx);
/* ZC_OK: committed.  ZC_ERR_CONFLICT: rolled back after a lost race,
 * re-run it.  ZC_ERR_STORE: rolled back, or, when *unknown is set (unknown
 * may be NULL), the connection died during COMMIT and it may have
 * committed.  tx is finished either way. */
zc_err zc__store_commit(zc_tx *tx, bool *unknown);
void zc__store_rollback(zc_tx *tx);
/* A statement of tx lost a race: the caller should re-run the whole
 * transaction rather than act on what the handler answered. */
bool zc__store_tx_conflict(const zc_tx *tx);
/*
 * Run fn in a transaction: commit when it returns 0, roll back otherwise;
 * on a conflict (in a statement or at commit) roll back and run it again,
 * at most ZC_STORE_RETRIES more times, after a short jittered pause.
 * ZC_OK: fn ran to a decision, *fn_rc (may be NULL) holds what it returned
 * (0: committed, else rolled back).  ZC_ERR_CONFLICT: still conflicting
 * after the retries.  ZC_ERR_STORE, ZC_ERR_INVALID: as begin and commit.
 */
zc_err zc__store_run(int (*fn)(zc_tx *tx, void *arg), void *arg, int *fn_rc);

/* Readiness: false while the store cannot be reached.  Never blocks for
 * long: at most one real check per second, on a thread of its own, waited
 * for at most 200 ms; transactions' outcomes count as checks.  true when
 * no store is configured. */
bool zc__store_ready(void);
/* Metrics provider: transactions by outcome, retries, latency, open
 * connections (zc__metrics_provider(zc__store_metrics, NULL)). */
void zc__store_metrics(struct zc_buf *out, void *arg);
/* Connections open now, all threads. */
int zc__store_connections(void);
/* Close every thread's connection and stop the readiness checker; only
 * when no handler runs (drain).  A later transaction opens a new one. */
void zc__store_close_all(void);
/* close_all, then forget the configuration, the function's schemas and
 * the memory: database (tests, exit). */
void zc__store_shutdown(void);

/* ---- the store in use, this replica, stored text (records.c) ---- */
/* The configured store's kind: ZC_STORE_* (ZC_STORE_NONE: none). */
int zc__store_kind(void);
/* A SQLite file or PostgreSQL: state that other replicas and the next
 * process see.  Idempotency records and the outbox live there; with
 * memory: (or no store) they stay in this process. */
bool zc__store_durable(void);
/* This process in the store: "host/pid/random", the owner of its claims
 * and leases.  A restarted process is a new owner. */
const char *zc__store_replica_id(void);
/* Milliseconds since the epoch: the times the runtime's tables hold. */
long long zc__store_now_ms(void);
/* s[0..n) fits a TEXT column as it is: valid UTF-8 without NUL. */
bool zc__store_text_ok(const char *s, size_t n);
/* Base64 of p[0..n) (malloc'd, NUL-terminated), or NULL (no memory). */
char *zc__store_b64_encode(const void *p, size_t n);
/* Decode s into a malloc'd buffer with a NUL after its *len bytes; -1
 * for bad input or no memory. */
int zc__store_b64_decode(const char *s, char **out, size_t *len);
/* The runtime's static string for a content type read back from the
 * store (answers keep their content type as a static string); NULL for
 * NULL. */
const char *zc__store_ctype(const char *text);
/* The content type under which an event route keeps a reply event (in
 * structured form): replays recognise it by this pointer. */
extern const char zc__ctype_stored_event[];

/*
 * ---- durable idempotency records: table zc_idem (records.c) ----
 *
 * The same rules as the in-process table above, kept in the store so
 * they hold across replicas and restarts.  A transactional route checks
 * and writes its record in the handler's own transaction (PostgreSQL:
 * pg_try_advisory_xact_lock on the key first, so a duplicate in flight
 * anywhere gets 409 at once; SQLite: BEGIN IMMEDIATE runs one writer at a
 * time).  Other routes claim the key in a short transaction (state
 * 'running', locked_until), run, and store the answer in a second one.
 * Answers of 5xx are never kept.
 */
struct zc_rec {
	const char *scope, *key;   /* as stored: text-safe */
	char fp[33];               /* payload fingerprint, hex */
	int64_t lock_id;           /* PostgreSQL advisory lock on the key */
	long ttl_s;                /* a record older than this is gone */
	long long lease_ms;        /* a claim's hold (two phases) */
	char *own_scope, *own_key; /* hex forms, when not text-safe */
};

/* Key the record: scope and key (copied when they need escaping), the
 * payload fingerprinted.  ZC_ERR_NOMEM. */
zc_err zc__rec_init(struct zc_rec *r, const char *scope, const char *key,
		    const void *payload, size_t len, long ttl_s,
		    long long lease_ms);
void zc__rec_release(struct zc_rec *r);
/* In the handler's transaction, before the handler: ZC_IDEM_PROCEED,
 * _REPLAY (*replay filled; free its body), _CONFLICT, _MISMATCH, or
 * _UNAVAILABLE when a statement failed (the transaction is aborted;
 * zc__store_tx_conflict says whether to re-run it). */
int zc__rec_check(zc_tx *tx, const struct zc_rec *r, struct zc_answer *replay);
/* In the same transaction, after a 2xx: the record, state 'done'. */
zc_err zc__rec_put(zc_tx *tx, const struct zc_rec *r,
		   const struct zc_answer *ans);
/* Keep an answer in a transaction of its own (a 4xx, whose handler's
 * writes rolled back); a record already there stays. */
zc_err zc__rec_store(const struct zc_rec *r, const struct zc_answer *ans);
/* Two phases, each its own transaction: claim the key (ZC_IDEM_*, as
 * check; PROCEED: this replica holds it until lease_ms from now) ... */
int zc__rec_claim(const struct zc_rec *r, struct zc_answer *replay);
/* ... then keep the answer, or free the key (ans NULL, or a 5xx). */
zc_err zc__rec_finish(const struct zc_rec *r, const struct zc_answer *ans);
/* Delete records older than ttl_s; at most once a minute per process,
 * in a transaction of its own (the caller has none open). */
void zc__rec_sweep(long ttl_s);

/*
 * ---- the outbox: table zc_outbox (outbox.c) ----
 *
 * Calls and events a transactional handler sends are rows written in its
 * transaction: they exist if and only if it commits.  A relay (outbound/
 * relay.c) claims due rows, one replica at a time per row (PostgreSQL:
 * FOR UPDATE SKIP LOCKED; SQLite: one writer), delivers them and deletes
 * them; a claim is a lease (next_attempt_at moved to now + lease), so the
 * rows of a replica that died are due again when it ends.
 */
struct zc_outbox_row {
	char *id, *kind, *target, *method, *path;
	char *headers; /* "Name: value" lines, '\n'-separated, or NULL */
	char *body;    /* NULL: no body; else body_len bytes and a NUL */
	size_t body_len;
	char *idem_key, *traceparent, *tracestate;
	char *last_error;
	long long created_at, next_attempt_at;
	int attempts;
};
/* Write row in tx (id and times filled when empty).  ZC_ERR_* as
 * zc_tx_exec. */
zc_err zc__outbox_insert(zc_tx *tx, struct zc_outbox_row *row);
/* Claim up to max due rows for owner, each until now + lease_ms, in a
 * transaction of its own: *rows (free with zc__outbox_rows_free). */
zc_err zc__outbox_claim(const char *owner, long long lease_ms, int max,
			struct zc_outbox_row **rows, size_t *n);
void zc__outbox_rows_free(struct zc_outbox_row *rows, size_t n);
/* Delivered: the rows go. */
zc_err zc__outbox_done(const char *const *ids, size_t n);
/* Failed for now: due again at next_ms, unless another owner holds it. */
zc_err zc__outbox_retry(const char *id, const char *owner, long long next_ms,
			const char *error);
/* Refused for good: state 'dead', kept for an operator. */
zc_err zc__outbox_dead(const char *id, const char *owner, const char *error);
/* Give back owner's claims: due now, for any replica. */
zc_err zc__outbox_release(const char *owner);
/* SQLite: give back the claims of processes of this host that died. */
zc_err zc__outbox_release_dead_local(void);
/* Rows pending and dead, and when the oldest pending one was written
 * (0: none). */
zc_err zc__outbox_stats(long long *pending, long long *dead,
			long long *oldest_ms);

/* The transaction a transactional handler on this thread runs in, set
 * by the runtime around the handler (NULL otherwise): where its calls
 * and events go. */
void zc__store_tx_enter(zc_tx *tx);
void zc__store_tx_leave(void);
zc_tx *zc__store_current_tx(void);
/* Is this thread inside a store transaction (a handler's, or one of
 * zc_store_run)?  Its connection is then this thread's until the end:
 * a handler must not yield its loop to another meanwhile. */
bool zc__store_busy(void);
/* Has this thread's connection a transaction open (store.c)? */
bool zc__store_thread_in_tx(void);
/* Hold item until the current transaction ends: run(item) if it
 * commits, drop(item) if not (memory: calls wait for the commit).  -1
 * when there is no current transaction or no memory. */
int zc__store_tx_defer(void *item, void (*run)(void *), void (*drop)(void *));
/* The transaction ended: run or drop what was deferred, and wake the
 * relay when committed rows were written. */
void zc__store_tx_after(bool committed);
/* The relay's wait: until rows may have been committed (a commit here
 * wrote some, or zc__outbox_wake) or timeout_ms; *seen is the wake
 * count last seen. */
void zc__outbox_wait(unsigned long *seen, long timeout_ms);
void zc__outbox_wake(void);

#endif /* ZC_STORE_H */
