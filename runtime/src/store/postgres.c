/*
 * postgres.c - the PostgreSQL backend (postgres://, postgresql://), libpq
 * loaded with dlopen on first use.  One connection per thread; READ
 * COMMITTED transactions; parameters and results in text format; errors
 * sorted by SQLSTATE into "re-run it", "reconnect" and "failed".
 */
#include "backend.h"

#include <dlfcn.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The libpq functions used here, resolved by load_once(). */
static struct {
	PGconn *(*connectdb_params)(const char *const *, const char *const *,
				    int);
	ConnStatusType (*status)(const PGconn *);
	char *(*error_message)(const PGconn *);
	void (*finish)(PGconn *);
	PGresult *(*exec)(PGconn *, const char *);
	PGresult *(*exec_params)(PGconn *, const char *, int, const Oid *,
				 const char *const *, const int *, const int *,
				 int);
	ExecStatusType (*result_status)(const PGresult *);
	char *(*result_error_field)(const PGresult *, int);
	void (*clear)(PGresult *);
	int (*ntuples)(const PGresult *);
	int (*nfields)(const PGresult *);
	char *(*getvalue)(const PGresult *, int, int);
	int (*getisnull)(const PGresult *, int, int);
	int (*getlength)(const PGresult *, int, int);
	char *(*cmd_tuples)(PGresult *);
	char *(*cmd_status)(PGresult *);
	PGTransactionStatusType (*transaction_status)(const PGconn *);
	PQnoticeProcessor (*set_notice_processor)(PGconn *, PQnoticeProcessor,
						  void *);
	int (*isthreadsafe)(void);
	PQconninfoOption *(*conninfo_parse)(const char *, char **);
	void (*conninfo_free)(PQconninfoOption *);
	void (*freemem)(void *);
} pq;

/* Type OIDs for integer parameters; text ones are left to the server to
 * infer from where they stand (0). */
#define INT4OID 23
#define INT8OID 20

/* pg_advisory_xact_lock key that serialises schema changes across
 * replicas: "zc_schem" as a big-endian int64. */
#define SCHEMA_LOCK "SELECT pg_advisory_xact_lock(8818997444515226989)"

struct pg_conn {
	struct zc_conn base;
	PGconn *pg;
};

static pthread_once_t load_once_ctl = PTHREAD_ONCE_INIT;
static int load_rc = -1;

static void
load_once(void)
{
	void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		zc_error("store: cannot load libpq.so.5 (install libpq5): %s",
			 dlerror());
		return;
	}
#define LOAD(field, sym)                                                       \
	if ((*(void **)&pq.field = dlsym(h, sym)) == NULL) {                   \
		zc_error("store: libpq.so.5 lacks %s", sym);                   \
		return;                                                        \
	}
	LOAD(connectdb_params, "PQconnectdbParams");
	LOAD(status, "PQstatus");
	LOAD(error_message, "PQerrorMessage");
	LOAD(finish, "PQfinish");
	LOAD(exec, "PQexec");
	LOAD(exec_params, "PQexecParams");
	LOAD(result_status, "PQresultStatus");
	LOAD(result_error_field, "PQresultErrorField");
	LOAD(clear, "PQclear");
	LOAD(ntuples, "PQntuples");
	LOAD(nfields, "PQnfields");
	LOAD(getvalue, "PQgetvalue");
	LOAD(getisnull, "PQgetisnull");
	LOAD(getlength, "PQgetlength");
	LOAD(cmd_tuples, "PQcmdTuples");
	LOAD(cmd_status, "PQcmdStatus");
	LOAD(transaction_status, "PQtransactionStatus");
	LOAD(set_notice_processor, "PQsetNoticeProcessor");
	LOAD(isthreadsafe, "PQisthreadsafe");
	LOAD(conninfo_parse, "PQconninfoParse");
	LOAD(conninfo_free, "PQconninfoFree");
	LOAD(freemem, "PQfreemem");
#undef LOAD
	if (pq.isthreadsafe() == 0) {
		zc_error("store: libpq was built without thread support");
		return;
	}
	load_rc = 0;
}

static int
pg_load(void)
{
	if (pthread_once(&load_once_ctl, load_once) != 0)
		return -1;
	return load_rc;
}

/* libpq's multi-line messages as one log line. */
static void one_line(char *out, size_t size, const char *msg);

/*
 * The URL as libpq reads it, without connecting: an unknown option or a
 * malformed URI is a start-up error naming ZC_STORE_URL rather than a
 * function that can never connect.  Loads libpq (the function will need
 * it anyway).
 */
int
zc__pg_check_url(const char *url, const char *shown, char *err, size_t errsize)
{
	PQconninfoOption *opts;
	char *msg = NULL, line[256];

	if (pg_load() != 0) {
		snprintf(err, errsize,
			 "ZC_STORE_URL=%s: libpq.so.5 cannot be loaded "
			 "(install libpq5)",
			 shown);
		return -1;
	}
	if ((opts = pq.conninfo_parse(url, &msg)) == NULL) {
		one_line(line, sizeof(line),
			 msg != NULL ? msg : "out of memory");
		snprintf(err, errsize, "ZC_STORE_URL=%s: %s", shown, line);
		if (msg != NULL)
			pq.freemem(msg);
		return -1;
	}
	pq.conninfo_free(opts);
	return 0;
}

static void
one_line(char *out, size_t size, const char *msg)
{
	size_t i, j = 0;

	for (i = 0; msg != NULL && msg[i] != '\0' && j + 1 < size; i++) {
		if (msg[i] == '\n' || msg[i] == '\r' || msg[i] == '\t') {
			if (j > 0 && out[j - 1] != ' ' && msg[i + 1] != '\0')
				out[j++] = ' ';
			continue;
		}
		out[j++] = msg[i];
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
}

/* NOTICEs ("relation already exists, skipping") would go to stderr. */
static void
notice(void *arg, const char *message)
{
	char line[512];

	(void)arg;
	one_line(line, sizeof(line), message);
	zc_debug("store: postgres says: %s", line);
}

static void
pg_close(struct zc_conn *base)
{
	struct pg_conn *c = (struct pg_conn *)base;

	if (c == NULL)
		return;
	if (c->pg != NULL)
		pq.finish(c->pg);
	free(c);
}

static struct zc_conn *
pg_open(const struct zc_store_url *u)
{
	/*
	 * Defaults first, the URL (expanded from dbname) last, so whatever
	 * the URL sets wins.  Keepalives: Linux waits two hours before
	 * probing an idle connection; a dead server is found in about a
	 * minute instead.  PGCONNECT_TIMEOUT, when set, beats our default.
	 */
	const char *kw[] = {"fallback_application_name",
			    "keepalives",
			    "keepalives_idle",
			    "keepalives_interval",
			    "keepalives_count",
			    "tcp_user_timeout",
			    "connect_timeout",
			    "dbname",
			    NULL};
	const char *val[] = {u->appname, "1", "30",      "10", "3",
			     "30000",    "5", u->target, NULL};
	struct pg_conn *c = calloc(1, sizeof(*c));
	char msg[512];

	if (c == NULL)
		return NULL;
	c->base.be = &zc__postgres_backend;
	if (getenv("PGCONNECT_TIMEOUT") != NULL) {
		kw[6] = "dbname";
		val[6] = u->target;
		kw[7] = val[7] = NULL;
	}
	c->pg = pq.connectdb_params(kw, val, 1);
	if (c->pg == NULL || pq.status(c->pg) != CONNECTION_OK) {
		one_line(msg, sizeof(msg),
			 c->pg != NULL ? pq.error_message(c->pg)
				       : "out of memory");
		zc_error("store: cannot connect to %s: %s", u->display, msg);
		pg_close(&c->base);
		return NULL;
	}
	pq.set_notice_processor(c->pg, notice, NULL);
	return &c->base;
}

/*
 * What a failed command means.  Lost races (40001 serialization, 40P01
 * deadlock) are re-run.  A lost connection (CONNECTION_BAD, which carries
 * no SQLSTATE; 08xxx; 57P0x shutdown; 53300 too many connections) is
 * reopened before the next transaction, and when it happened during
 * COMMIT nobody knows whether it committed.  Anything else failed as
 * written.  Logged without parameter values: data exceptions (class 22)
 * quote the offending value in their message, so only their code is.
 */
static zc_err
classify(struct pg_conn *c, PGresult *r, const char *what, const char *sql,
	 bool *unknown)
{
	const char *st =
		r != NULL ? pq.result_error_field(r, PG_DIAG_SQLSTATE) : NULL;
	const char *prim =
		r != NULL ? pq.result_error_field(r, PG_DIAG_MESSAGE_PRIMARY)
			  : NULL;
	const char *cons =
		r != NULL ? pq.result_error_field(r, PG_DIAG_CONSTRAINT_NAME)
			  : NULL;
	char msg[512], ex[128];

	zc__sql_excerpt(ex, sizeof(ex), sql != NULL ? sql : what);
	if (pq.status(c->pg) == CONNECTION_BAD || st == NULL ||
	    strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0 ||
	    strcmp(st, "53300") == 0) {
		c->base.broken = true;
		if (unknown != NULL)
			*unknown = true; /* COMMIT was sent; did it arrive? */
		one_line(msg, sizeof(msg),
			 prim != NULL ? prim : pq.error_message(c->pg));
		zc_error(
			"store: postgres connection failed during %s%s: %s%s%s",
			what, unknown != NULL ? " (outcome unknown)" : "", msg,
			st != NULL ? " SQLSTATE " : "", st != NULL ? st : "");
		return ZC_ERR_STORE;
	}
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0) {
		zc_debug("store: %s lost a race (SQLSTATE %s): \"%s\"", what,
			 st, ex);
		return ZC_ERR_CONFLICT;
	}
	if (strncmp(st, "22", 2) == 0)
		snprintf(msg, sizeof(msg), "data exception");
	else
		one_line(msg, sizeof(msg), prim != NULL ? prim : "error");
	zc_error("store: postgres %s failed: %s (SQLSTATE %s%s%s) in \"%s\"",
		 what, msg, st, cons != NULL ? ", constraint " : "",
		 cons != NULL ? cons : "", ex);
	return ZC_ERR_STORE;
}

/* A command with no parameters and no rows wanted. */
static zc_err
simple(struct pg_conn *c, const char *sql, const char *what)
{
	PGresult *r = pq.exec(c->pg, sql);
	ExecStatusType s = r != NULL ? pq.result_status(r) : PGRES_FATAL_ERROR;
	zc_err err = ZC_OK;

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		err = classify(c, r, what, sql, NULL);
	pq.clear(r);
	return err;
}

static zc_err
pg_begin(struct zc_conn *base, bool lock_schema)
{
	struct pg_conn *c = (struct pg_conn *)base;
	zc_err err;

	/* a transaction left open by a failed path: end it first */
	if (pq.transaction_status(c->pg) != PQTRANS_IDLE)
		(void)simple(c, "ROLLBACK", "ROLLBACK");
	if ((err = simple(c, "BEGIN", "BEGIN")) != ZC_OK)
		return err;
	if (lock_schema &&
	    (err = simple(c, SCHEMA_LOCK, "schema lock")) != ZC_OK) {
		(void)simple(c, "ROLLBACK", "ROLLBACK");
		return err;
	}
	return ZC_OK;
}

static void
pg_rollback(struct zc_conn *base)
{
	struct pg_conn *c = (struct pg_conn *)base;

	if (pq.status(c->pg) == CONNECTION_BAD) {
		c->base.broken = true;
		return; /* the server rolled it back when we went */
	}
	(void)simple(c, "ROLLBACK", "ROLLBACK");
}

static zc_err
pg_commit(struct zc_conn *base, bool *unknown)
{
	struct pg_conn *c = (struct pg_conn *)base;
	PGresult *r = pq.exec(c->pg, "COMMIT");
	ExecStatusType s = r != NULL ? pq.result_status(r) : PGRES_FATAL_ERROR;
	zc_err err = ZC_OK;

	*unknown = false;
	if (s != PGRES_COMMAND_OK) {
		err = classify(c, r, "COMMIT", NULL, unknown);
	} else if (strcmp(pq.cmd_status(r), "COMMIT") != 0) {
		/* COMMIT of a failed transaction answers ROLLBACK */
		zc_error("store: postgres rolled the transaction back at "
			 "COMMIT");
		err = ZC_ERR_STORE;
	}
	pq.clear(r);
	if (err != ZC_OK && !c->base.broken &&
	    pq.transaction_status(c->pg) != PQTRANS_IDLE)
		(void)simple(c, "ROLLBACK", "ROLLBACK");
	return err;
}

static zc_err
pg_exec(struct zc_conn *base, const char *sql, const struct zc_param *pv, int n,
	zc_rows **rows, long long *changes)
{
	struct pg_conn *c = (struct pg_conn *)base;
	const char *values[ZC_STORE_MAX_PARAMS];
	Oid types[ZC_STORE_MAX_PARAMS];
	ExecStatusType s;
	zc_rows *out = NULL;
	zc_err err = ZC_OK;
	PGresult *r;
	int i, j, nr, nf;

	for (i = 0; i < n; i++) {
		values[i] = pv[i].type == 's' ? pv[i].s : pv[i].text;
		types[i] = pv[i].type == 's'   ? 0
			   : pv[i].type == 'i' ? INT4OID
					       : INT8OID;
	}
	r = pq.exec_params(c->pg, sql, n, types, values, NULL, NULL, 0);
	s = r != NULL ? pq.result_status(r) : PGRES_FATAL_ERROR;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		if (s == PGRES_EMPTY_QUERY) {
			zc_error("store: empty statement");
			err = ZC_ERR_STORE;
		} else {
			err = classify(c, r, "statement", sql, NULL);
		}
		pq.clear(r);
		return err;
	}
	nr = pq.ntuples(r);
	nf = pq.nfields(r);
	if (rows != NULL) {
		if ((out = zc__rows_new((size_t)nf)) == NULL)
			err = ZC_ERR_NOMEM;
		for (i = 0; err == ZC_OK && i < nr; i++)
			for (j = 0; err == ZC_OK && j < nf; j++)
				if (zc__rows_push(
					    out,
					    pq.getisnull(r, i, j)
						    ? NULL
						    : pq.getvalue(r, i, j),
					    (size_t)pq.getlength(r, i, j)) != 0)
					err = ZC_ERR_NOMEM;
	}
	/* PQcmdTuples counts a SELECT's rows too; "changes" means writes */
	*changes = strncmp(pq.cmd_status(r), "SELECT", 6) == 0
			   ? 0
			   : strtoll(pq.cmd_tuples(r), NULL, 10);
	pq.clear(r);
	if (err != ZC_OK) {
		zc_rows_free(out);
		return err;
	}
	if (rows != NULL)
		*rows = out;
	return ZC_OK;
}

static zc_err
pg_script(struct zc_conn *base, const char *sql)
{
	/* PQexec runs several statements; a failure stops at it */
	return simple((struct pg_conn *)base, sql, "schema script");
}

static zc_err
pg_ping(struct zc_conn *base)
{
	return simple((struct pg_conn *)base, "SELECT 1", "ping");
}

const struct zc_backend zc__postgres_backend = {
	.name = "postgres",
	.load = pg_load,
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.exec = pg_exec,
	.script = pg_script,
	.ping = pg_ping,
};
