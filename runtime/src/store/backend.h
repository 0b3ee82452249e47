/*
 * backend.h - what the store's engine (store.c, schema.c, rows.c) and its
 * two backends (sqlite.c, postgres.c) share, and nothing else includes:
 * the parsed ZC_STORE_URL, a connection, a transaction, bound parameters
 * and the operations each backend provides behind one table.
 */
#ifndef ZC_STORE_BACKEND_H
#define ZC_STORE_BACKEND_H

#include "store.h"

/* Most parameters one statement may bind ($1..$64). */
#define ZC_STORE_MAX_PARAMS 64

/* One bound parameter: 's' text (s NULL: SQL NULL), 'i' or 'I' integer. */
struct zc_param {
	char type;
	const char *s;
	int64_t i;
	char text[24]; /* i in decimal, for PostgreSQL's text format */
};

struct zc_conn;

/*
 * A transaction: lives in its thread's connection, so beginning one
 * allocates nothing.  Used by one thread only, from begin to commit or
 * rollback.
 */
struct zc_tx {
	struct zc_conn *conn;
	bool active;
	bool aborted;  /* a statement failed: later ones fail, commit undoes */
	bool conflict; /* ... and the failure was a lost race: re-run it */
	bool gated;    /* it holds store.c's write gate (SQLite) */
	long long changes;
	long long start_ns;
};

/*
 * A connection: each backend's own struct begins with this.  Owned by one
 * thread (its thread-local slot) and listed in store.c's registry so the
 * app can close every one at drain.
 */
struct zc_conn {
	const struct zc_backend *be;
	struct zc_conn *prev, *next; /* the registry */
	unsigned gen;                /* the configuration it was opened for */
	bool broken;                 /* reopen before the next transaction */
	struct zc_tx tx;
};

/*
 * A backend.  Every function but load and open takes a connection of its
 * own kind.  On failure they log one line and return ZC_ERR_STORE, or
 * ZC_ERR_CONFLICT for a lost race (PostgreSQL 40001, 40P01; SQLite BUSY
 * inside a transaction), and set c->broken when the connection itself
 * failed.  Error text never carries a parameter's value.
 */
struct zc_backend {
	const char *name; /* "sqlite", "postgres" */
	/* dlopen the library, once per process; 0 or -1 (logged). */
	int (*load)(void);
	struct zc_conn *(*open)(const struct zc_store_url *url);
	void (*close)(struct zc_conn *c);
	/* BEGIN IMMEDIATE / BEGIN; lock_schema also serialises schema
	 * changes across replicas (PostgreSQL: an advisory lock). */
	zc_err (*begin)(struct zc_conn *c, bool lock_schema);
	/* *unknown: the commit may or may not have happened. */
	zc_err (*commit)(struct zc_conn *c, bool *unknown);
	void (*rollback)(struct zc_conn *c);
	/* One statement; rows NULL: discard what it returns. */
	zc_err (*exec)(struct zc_conn *c, const char *sql,
		       const struct zc_param *params, int nparams,
		       zc_rows **rows, long long *changes);
	/* Several statements, no parameters (schema DDL). */
	zc_err (*script)(struct zc_conn *c, const char *sql);
	/* A round trip outside any transaction (readiness). */
	zc_err (*ping)(struct zc_conn *c);
};

extern const struct zc_backend zc__sqlite_backend;
/* libpq's own parse of url, no connection (postgres.c): -1 with a line
 * naming ZC_STORE_URL (shown: the URL with its password masked). */
int zc__pg_check_url(const char *url, const char *shown, char *err,
		     size_t errsize);
extern const struct zc_backend zc__postgres_backend;

/* ---- rows.c: results, built by the backends ---- */
/* An empty result of ncols columns; NULL when out of memory. */
zc_rows *zc__rows_new(size_t ncols);
/* Append the next cell (row by row); s NULL is SQL NULL.  -1: no memory. */
int zc__rows_push(zc_rows *r, const char *s, size_t len);
/* The highest $N in sql outside literals, quoted names and comments; 0
 * when none, -1 for $0 or a number over ZC_STORE_MAX_PARAMS. */
int zc__sql_max_param(const char *sql);

/* ---- schema.c ---- */
/* Bring the store's schemas up to date on c, in one transaction, unless
 * that was done since the last invalidate; c has no transaction open. */
zc_err zc__schema_ensure(struct zc_conn *c);
/* A connection broke: the store may have been recreated, check again. */
void zc__schema_invalidate(void);
/* Forget the function's schemas (zc__store_shutdown). */
void zc__schema_reset(void);

/* ---- store.c: shared helpers ---- */
/* The SQL for logs: at most 120 bytes, on one line. */
void zc__sql_excerpt(char *out, size_t size, const char *sql);
/* Milliseconds SQLite waits for the write lock. */
#define ZC_STORE_BUSY_MS 5000

/* gate.c: this process's SQLite transactions take turns (see there).
 * enter: ZC_OK, or ZC_ERR_STORE after ZC_STORE_BUSY_MS; on a fiber the
 * wait yields the loop.  leave: hand the gate to the next in line. */
zc_err zc__store_gate_enter(void);
void zc__store_gate_leave(void);
unsigned long zc__store_gate_waits(void);

#endif /* ZC_STORE_BACKEND_H */
