/*
 * sqlite.c - the SQLite backend (sqlite:PATH and memory:), libsqlite3
 * loaded with dlopen on first use.  One connection per thread, opened
 * NOMUTEX; every transaction is BEGIN IMMEDIATE, so writers queue on the
 * busy timeout instead of failing later with SQLITE_BUSY_SNAPSHOT.
 */
#include "backend.h"

#include <dlfcn.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The libsqlite3 functions used here, resolved by load_once(). */
static struct {
	int (*open_v2)(const char *, sqlite3 **, int, const char *);
	int (*close_v2)(sqlite3 *);
	int (*exec)(sqlite3 *, const char *,
		    int (*)(void *, int, char **, char **), void *, char **);
	const char *(*errmsg)(sqlite3 *);
	int (*extended_errcode)(sqlite3 *);
	int (*extended_result_codes)(sqlite3 *, int);
	int (*busy_timeout)(sqlite3 *, int);
	int (*prepare_v3)(sqlite3 *, const char *, int, unsigned int,
			  sqlite3_stmt **, const char **);
	int (*step)(sqlite3_stmt *);
	int (*reset)(sqlite3_stmt *);
	int (*clear_bindings)(sqlite3_stmt *);
	int (*finalize)(sqlite3_stmt *);
	int (*bind_text)(sqlite3_stmt *, int, const char *, int,
			 void (*)(void *));
	int (*bind_int64)(sqlite3_stmt *, int, sqlite3_int64);
	int (*bind_null)(sqlite3_stmt *, int);
	int (*bind_parameter_count)(sqlite3_stmt *);
	const char *(*bind_parameter_name)(sqlite3_stmt *, int);
	int (*column_count)(sqlite3_stmt *);
	const unsigned char *(*column_text)(sqlite3_stmt *, int);
	int (*column_bytes)(sqlite3_stmt *, int);
	int (*column_type)(sqlite3_stmt *, int);
	int (*changes)(sqlite3 *);
	int (*total_changes)(sqlite3 *);
	int (*get_autocommit)(sqlite3 *);
	int (*threadsafe)(void);
	int (*file_control)(sqlite3 *, const char *, int, void *);
} sq;

/* Statements kept prepared per connection: handlers run the same few on
 * every request, and preparing costs about as much as running. */
#define CACHE_SIZE 32

struct cached {
	char *sql; /* NULL: free slot */
	uint64_t hash;
	unsigned long used; /* LRU clock */
	sqlite3_stmt *stmt;
	int map[ZC_STORE_MAX_PARAMS]; /* $N -> bind index, 0 when unused */
};

struct sq_conn {
	struct zc_conn base;
	sqlite3 *db;
	bool memory;
	unsigned long clock;
	struct cached cache[CACHE_SIZE];
};

static pthread_once_t load_once_ctl = PTHREAD_ONCE_INIT;
static int load_rc = -1;

static void
load_once(void)
{
	void *h = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		zc_error("store: cannot load libsqlite3.so.0 (install "
			 "libsqlite3-0): %s",
			 dlerror());
		return;
	}
#define LOAD(field, sym)                                                       \
	if ((*(void **)&sq.field = dlsym(h, sym)) == NULL) {                   \
		zc_error("store: libsqlite3.so.0 lacks %s", sym);              \
		return;                                                        \
	}
	LOAD(open_v2, "sqlite3_open_v2");
	LOAD(close_v2, "sqlite3_close_v2");
	LOAD(exec, "sqlite3_exec");
	LOAD(errmsg, "sqlite3_errmsg");
	LOAD(extended_errcode, "sqlite3_extended_errcode");
	LOAD(extended_result_codes, "sqlite3_extended_result_codes");
	LOAD(busy_timeout, "sqlite3_busy_timeout");
	LOAD(prepare_v3, "sqlite3_prepare_v3");
	LOAD(step, "sqlite3_step");
	LOAD(reset, "sqlite3_reset");
	LOAD(clear_bindings, "sqlite3_clear_bindings");
	LOAD(finalize, "sqlite3_finalize");
	LOAD(bind_text, "sqlite3_bind_text");
	LOAD(bind_int64, "sqlite3_bind_int64");
	LOAD(bind_null, "sqlite3_bind_null");
	LOAD(bind_parameter_count, "sqlite3_bind_parameter_count");
	LOAD(bind_parameter_name, "sqlite3_bind_parameter_name");
	LOAD(column_count, "sqlite3_column_count");
	LOAD(column_text, "sqlite3_column_text");
	LOAD(column_bytes, "sqlite3_column_bytes");
	LOAD(column_type, "sqlite3_column_type");
	LOAD(changes, "sqlite3_changes");
	LOAD(total_changes, "sqlite3_total_changes");
	LOAD(get_autocommit, "sqlite3_get_autocommit");
	LOAD(threadsafe, "sqlite3_threadsafe");
	LOAD(file_control, "sqlite3_file_control");
#undef LOAD
	if (sq.threadsafe() == 0) {
		zc_error("store: libsqlite3 was built without thread support");
		return;
	}
	load_rc = 0;
}

static int
sq_load(void)
{
	if (pthread_once(&load_once_ctl, load_once) != 0)
		return -1;
	return load_rc;
}

/*
 * What a failure means.  A full disk, an I/O error, a corrupt or moved
 * file: the connection is suspect, so it is reopened next time (which also
 * re-applies the schema to a recreated file).  BUSY or LOCKED inside a
 * transaction: a lost race, worth re-running.
 */
static zc_err
fail(struct sq_conn *c, int rc, const char *what, const char *sql)
{
	int prim = rc & 0xff;
	char ex[128];

	zc__sql_excerpt(ex, sizeof(ex), sql != NULL ? sql : "");
	zc_error("store: sqlite %s failed: %s (code %d)%s%s%s", what,
		 c->db != NULL ? sq.errmsg(c->db) : "?", rc,
		 sql != NULL ? " in \"" : "", sql != NULL ? ex : "",
		 sql != NULL ? "\"" : "");
	switch (prim) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return ZC_ERR_CONFLICT;
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_NOMEM:
		c->base.broken = true;
		return ZC_ERR_STORE;
	default:
		return ZC_ERR_STORE;
	}
}

static zc_err
run_simple(struct sq_conn *c, const char *sql)
{
	int rc = sq.exec(c->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? ZC_OK : fail(c, rc, "statement", sql);
}

static void
sq_close(struct zc_conn *base)
{
	struct sq_conn *c = (struct sq_conn *)base;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < CACHE_SIZE; i++)
		if (c->cache[i].sql != NULL) {
			sq.finalize(c->cache[i].stmt);
			free(c->cache[i].sql);
		}
	if (c->db != NULL)
		sq.close_v2(c->db);
	free(c);
}

static int
journal_mode(void *arg, int n, char **values, char **names)
{
	(void)names;
	if (n > 0 && values[0] != NULL)
		snprintf(arg, 16, "%s", values[0]);
	return 0;
}

/*
 * Switching a new file to WAL needs a lock SQLite will not wait for in
 * the busy handler, so processes opening it together retry here, within
 * the busy timeout.  A file system without shared memory for the -shm
 * file keeps the old journal: correct, slower; say so.
 */
static zc_err
set_wal(struct sq_conn *c, const char *display)
{
	struct timespec pause = {0, 10 * 1000000L};
	char mode[16] = "";
	int rc, waited;

	for (waited = 0;; waited += 10) {
		rc = sq.exec(c->db, "PRAGMA journal_mode=WAL", journal_mode,
			     mode, NULL);
		if (((rc & 0xff) != SQLITE_BUSY &&
		     (rc & 0xff) != SQLITE_LOCKED) ||
		    waited >= ZC_STORE_BUSY_MS)
			break;
		nanosleep(&pause, NULL);
	}
	if (rc != SQLITE_OK)
		return fail(c, rc, "statement", "PRAGMA journal_mode=WAL");
	if (strcmp(mode, "wal") != 0)
		zc_warn("store: %s cannot use WAL (journal mode %s): is it on "
			"a network file system?",
			display, mode);
	return ZC_OK;
}

static struct zc_conn *
sq_open(const struct zc_store_url *u)
{
	struct sq_conn *c = calloc(1, sizeof(*c));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX;
	int rc;

	if (c == NULL)
		return NULL;
	c->base.be = &zc__sqlite_backend;
	c->memory = u->kind == ZC_STORE_MEMORY;
	if (c->memory)
		flags |= SQLITE_OPEN_URI;
	rc = sq.open_v2(u->target, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		zc_error("store: cannot open %s: %s (its directory must be "
			 "writable: a writable /tmp or volume, or set "
			 "ZC_STORE_URL)",
			 u->display,
			 c->db != NULL ? sq.errmsg(c->db) : "out of memory");
		sq_close(&c->base);
		return NULL;
	}
	sq.extended_result_codes(c->db, 1);
	sq.busy_timeout(c->db, ZC_STORE_BUSY_MS);
	if (c->memory) {
		/* memdb stops at 1 GiB by default (SQLITE_FULL); memory: is
		 * bounded by the process's memory, as documented */
		sqlite3_int64 limit = (sqlite3_int64)1 << 62;

		(void)sq.file_control(c->db, "main", SQLITE_FCNTL_SIZE_LIMIT,
				      &limit);
	}
	/*
	 * WAL: readers never block the writer; NORMAL: a commit survives the
	 * process being killed (not a power cut), which is what a pod's
	 * /tmp or emptyDir can promise anyway.  Both are no-ops in memory.
	 */
	if ((!c->memory &&
	     (set_wal(c, u->display) != ZC_OK ||
	      run_simple(c, "PRAGMA synchronous=NORMAL") != ZC_OK)) ||
	    run_simple(c, "PRAGMA foreign_keys=ON") != ZC_OK) {
		zc_error("store: cannot set up %s", u->display);
		sq_close(&c->base);
		return NULL;
	}
	return &c->base;
}

static zc_err
sq_begin(struct zc_conn *base, bool lock_schema)
{
	struct sq_conn *c = (struct sq_conn *)base;
	int rc, moved = 0;
	zc_err err;

	/* BEGIN IMMEDIATE already excludes every other writer.  memory: is
	 * one memdb database per process, shared by its connections: it
	 * locks like a file (store.c's gate queues this process's writers
	 * first), so a reader meets SQLITE_BUSY and the busy handler. */
	(void)lock_schema;
	/*
	 * A file deleted or replaced under us would take our writes into
	 * an unlinked inode, lost at close: reopen it (and so apply the
	 * schema again) instead.  One stat(2) per transaction.
	 */
	if (!c->memory &&
	    (sq.file_control(c->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) !=
		     SQLITE_OK ||
	     moved)) {
		zc_warn("store: the database file was deleted or replaced; "
			"opening it again");
		c->base.broken = true;
		return ZC_ERR_STORE;
	}
	rc = sq.exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return ZC_OK;
	/* BUSY here means the busy timeout passed: the store is stuck, not
	 * a race a re-run would win. */
	err = fail(c, rc, "BEGIN IMMEDIATE", NULL);
	return err == ZC_ERR_CONFLICT ? ZC_ERR_STORE : err;
}

static void
sq_rollback(struct zc_conn *base)
{
	struct sq_conn *c = (struct sq_conn *)base;

	/* Some errors (a full disk, I/O) already rolled it back. */
	if (!sq.get_autocommit(c->db))
		(void)sq.exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static zc_err
sq_commit(struct zc_conn *base, bool *unknown)
{
	struct sq_conn *c = (struct sq_conn *)base;
	int rc = sq.exec(c->db, "COMMIT", NULL, NULL, NULL);
	zc_err err;

	*unknown = false;
	if (rc == SQLITE_OK)
		return ZC_OK;
	/* A failed COMMIT leaves the transaction open: undo it. */
	err = fail(c, rc, "COMMIT", NULL);
	sq_rollback(base);
	return err;
}

/* The cached statement for sql, prepared when missing; NULL on failure
 * (*err set). */
static struct cached *
statement(struct sq_conn *c, const char *sql, int nparams, zc_err *err)
{
	uint64_t h = zc__fnv1a(sql, strlen(sql), 1469598103934665603ULL);
	struct cached *e, *victim = &c->cache[0];
	const char *tail;
	sqlite3_stmt *st = NULL;
	int rc, i, count;

	for (i = 0; i < CACHE_SIZE; i++) {
		e = &c->cache[i];
		if (e->sql != NULL && e->hash == h &&
		    strcmp(e->sql, sql) == 0) {
			e->used = ++c->clock;
			return e;
		}
		if (e->sql == NULL ||
		    (victim->sql != NULL && e->used < victim->used))
			victim = e;
	}
	rc = sq.prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			   &tail);
	if (rc != SQLITE_OK) {
		*err = fail(c, rc, "prepare", sql);
		return NULL;
	}
	if (st == NULL) {
		zc_error("store: empty statement");
		*err = ZC_ERR_STORE;
		return NULL;
	}
	/* one statement per call, as PostgreSQL's PQexecParams wants */
	tail += strspn(tail, " \t\r\n;");
	if (*tail != '\0') {
		char ex[128];
		zc__sql_excerpt(ex, sizeof(ex), sql);
		zc_error("store: more than one statement in \"%s\"", ex);
		sq.finalize(st);
		*err = ZC_ERR_STORE;
		return NULL;
	}
	if (victim->sql != NULL) {
		sq.finalize(victim->stmt);
		free(victim->sql);
		victim->sql = NULL;
	}
	memset(victim->map, 0, sizeof(victim->map));
	/*
	 * SQLite reads "$1" as a parameter named "$1", numbered by first
	 * appearance ("... $2 ... $1" makes $2 index 1), so map each name
	 * to its index here, once.
	 */
	count = sq.bind_parameter_count(st);
	for (i = 1; i <= count; i++) {
		const char *name = sq.bind_parameter_name(st, i);
		char *end = NULL;
		long n = name != NULL && name[0] == '$'
				 ? strtol(name + 1, &end, 10)
				 : 0;
		if (n < 1 || n > nparams || *end != '\0') {
			char ex[128];
			zc__sql_excerpt(ex, sizeof(ex), sql);
			zc_error("store: parameter %s in \"%s\": write $1, "
				 "$2, ... (one types letter each)",
				 name != NULL ? name : "?", ex);
			sq.finalize(st);
			*err = ZC_ERR_INVALID;
			return NULL;
		}
		victim->map[n - 1] = i;
	}
	if ((victim->sql = strdup(sql)) == NULL) {
		sq.finalize(st);
		*err = ZC_ERR_NOMEM;
		return NULL;
	}
	victim->hash = h;
	victim->stmt = st;
	victim->used = ++c->clock;
	return victim;
}

static zc_err
bind(struct sq_conn *c, struct cached *e, const struct zc_param *pv, int n)
{
	int i, rc, idx;

	for (i = 0; i < n; i++) {
		if ((idx = e->map[i]) == 0)
			continue; /* $i appears nowhere: nothing to bind */
		if (pv[i].type != 's')
			rc = sq.bind_int64(e->stmt, idx, pv[i].i);
		else if (pv[i].s == NULL)
			rc = sq.bind_null(e->stmt, idx);
		else
			/* STATIC: the value outlives the step; unbound below */
			rc = sq.bind_text(e->stmt, idx, pv[i].s, -1,
					  SQLITE_STATIC);
		if (rc != SQLITE_OK)
			return fail(c, rc, "bind", e->sql);
	}
	return ZC_OK;
}

static zc_err
sq_exec(struct zc_conn *base, const char *sql, const struct zc_param *pv, int n,
	zc_rows **rows, long long *changes)
{
	struct sq_conn *c = (struct sq_conn *)base;
	struct cached *e;
	zc_rows *r = NULL;
	zc_err err = ZC_OK;
	int rc, ncols, i, before;

	if ((e = statement(c, sql, n, &err)) == NULL)
		return err;
	if ((err = bind(c, e, pv, n)) != ZC_OK)
		goto out;
	before = sq.total_changes(c->db);
	while ((rc = sq.step(e->stmt)) == SQLITE_ROW) {
		if (rows == NULL)
			continue;
		/* counted after the first step: a cached "SELECT *" is
		 * prepared again there when the table changed */
		ncols = sq.column_count(e->stmt);
		if (r == NULL && (r = zc__rows_new((size_t)ncols)) == NULL) {
			err = ZC_ERR_NOMEM;
			goto out;
		}
		for (i = 0; i < ncols; i++) {
			/* integers come out in decimal, as PostgreSQL's */
			const char *s =
				(const char *)sq.column_text(e->stmt, i);
			size_t len = (size_t)sq.column_bytes(e->stmt, i);
			if (sq.column_type(e->stmt, i) == SQLITE_NULL)
				s = NULL;
			else if (s == NULL)
				s = "", len = 0;
			if (zc__rows_push(r, s, len) != 0) {
				err = ZC_ERR_NOMEM;
				goto out;
			}
		}
	}
	if (rc != SQLITE_DONE) {
		err = fail(c, sq.reset(e->stmt), "statement", sql);
		goto out;
	}
	if (rows != NULL && r == NULL &&
	    (r = zc__rows_new((size_t)sq.column_count(e->stmt))) == NULL) {
		err = ZC_ERR_NOMEM;
		goto out;
	}
	/* sqlite3_changes keeps the last INSERT/UPDATE/DELETE's count even
	 * across a SELECT: report it only if this statement changed rows. */
	*changes = sq.total_changes(c->db) != before ? sq.changes(c->db) : 0;
out:
	sq.reset(e->stmt);
	sq.clear_bindings(e->stmt);
	if (err != ZC_OK) {
		zc_rows_free(r);
		return err;
	}
	if (rows != NULL)
		*rows = r;
	return ZC_OK;
}

static zc_err
sq_script(struct zc_conn *base, const char *sql)
{
	return run_simple((struct sq_conn *)base, sql);
}

static zc_err
sq_ping(struct zc_conn *base)
{
	return run_simple((struct sq_conn *)base, "SELECT 1");
}

const struct zc_backend zc__sqlite_backend = {
	.name = "sqlite",
	.load = sq_load,
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.exec = sq_exec,
	.script = sq_script,
	.ping = sq_ping,
};
