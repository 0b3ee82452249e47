/*
 * test_store.c - the store engine against each backend: SQLite in a
 * temporary file, memory:, and PostgreSQL at $ZC_TEST_PG_URL (a private
 * server scripts/run-unit.sh starts with tests/pg/pg.sh).  ZC_STORE_URL
 * parsing, statements and parameters, transactions and their failures,
 * concurrent writers, conflicts re-run, schemas applied once by racing
 * processes, readiness across a PostgreSQL restart, lazy library loading,
 * and a SQLite commit surviving kill -9.
 *
 * Without ZC_TEST_PG_URL the PostgreSQL cases fail saying how to run them,
 * unless ZC_TEST_NO_PG=1 (then they are skipped, with a notice).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "store/backend.h"

#include "testutil.h"

enum { B_SQLITE, B_MEMORY, B_POSTGRES, NBACKENDS };

static char dir[64]; /* this test's temporary directory */
static char dbfile[128];

static void
up(void)
{
	snprintf(dir, sizeof(dir), "/tmp/zc-store-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbfile, sizeof(dbfile), "%s/t.db", dir);
}

static void
down(void)
{
	char cmd[128];

	zc__store_shutdown();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_store: could not remove %s\n", dir);
}

/* The PostgreSQL URL; NULL (after a notice) when ZC_TEST_NO_PG=1; fails
 * the test when neither is set. */
static const char *
pg_url(const char *test)
{
	const char *u = getenv("ZC_TEST_PG_URL");
	const char *no = getenv("ZC_TEST_NO_PG");

	if (u != NULL && *u != '\0')
		return u;
	if (no != NULL && strcmp(no, "1") == 0) {
		printf("test_store: SKIPPED %s on PostgreSQL "
		       "(ZC_TEST_NO_PG=1)\n",
		       test);
		return NULL;
	}
	ck_abort_msg("ZC_TEST_PG_URL is not set.  Run scripts/run-unit.sh "
		     "BUILD (it starts a private PostgreSQL), or: "
		     "url=$(tests/pg/pg.sh start /tmp/pg) && "
		     "ZC_TEST_PG_URL=$url ZC_TEST_PG_DIR=/tmp/pg "
		     "build/tests/test_store; tests/pg/pg.sh stop /tmp/pg.  "
		     "ZC_TEST_NO_PG=1 skips the PostgreSQL cases.");
	return NULL;
}

/* Configure backend b; false when its cases are skipped. */
static bool
use(int b, const char *test)
{
	char url[256], err[256];
	const char *u;

	switch (b) {
	case B_SQLITE:
		snprintf(url, sizeof(url), "sqlite:%s", dbfile);
		break;
	case B_MEMORY:
		snprintf(url, sizeof(url), "memory:");
		break;
	default:
		if ((u = pg_url(test)) == NULL)
			return false;
		snprintf(url, sizeof(url), "%s", u);
	}
	ck_assert_msg(zc__store_configure(url, "test-store", -1, err,
					  sizeof(err)) == 0,
		      "%s", err);
	return true;
}

/* ---- small helpers ---- */

static void
exec_ok(const char *sql)
{
	zc_tx *tx;

	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_msg(zc_tx_exec(tx, sql, "") == ZC_OK, "%s", sql);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
}

/* The integer in row 0, column 0 of sql's result. */
static int64_t
query_int(const char *sql)
{
	zc_rows *rows;
	int64_t v = -1;
	zc_tx *tx;

	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_msg(zc_tx_query(tx, &rows, sql, "") == ZC_OK, "%s", sql);
	ck_assert_uint_eq(zc_rows_count(rows), 1);
	ck_assert_int_eq(zc_rows_int64(rows, 0, 0, &v), ZC_OK);
	zc_rows_free(rows);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
	return v;
}

static bool
mapped(const char *lib)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	bool found = false;

	ck_assert_ptr_nonnull(f);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, lib) != NULL;
	fclose(f);
	return found;
}

/* The value of the metrics line starting with prefix (-1: none). */
static double
metric(const char *prefix)
{
	struct zc_buf m = {malloc(256), 0, 256};
	const char *at;
	double v = -1;

	zc__store_metrics(&m, NULL);
	ck_assert_ptr_nonnull(m.p);
	for (at = m.p; at != NULL && *at != '\0'; at = strchr(at, '\n') + 1) {
		if (strncmp(at, prefix, strlen(prefix)) == 0) {
			v = strtod(at + strlen(prefix), NULL);
			break;
		}
	}
	free(m.p);
	return v;
}

static int
noop(zc_tx *tx, void *arg)
{
	(void)tx;
	(void)arg;
	return 0;
}

/* ---- loading: first in the suite, before anything loaded a library ---- */

START_TEST(test_libraries_load_on_first_use)
{
	char err[256];

	ck_assert(!mapped("libsqlite3"));
	ck_assert(!mapped("libpq"));
	/* configuring SQLite, describing, metrics: nothing loaded yet */
	ck_assert_int_eq(zc__store_configure(NULL, "fn", -1, err, sizeof(err)),
			 0);
	zc__store_log_startup();
	ck_assert(!mapped("libsqlite3"));
	ck_assert(!mapped("libpq"));
	use(B_SQLITE, "loading");
	ck_assert(!mapped("libsqlite3"));
	ck_assert_int_eq(zc__store_run(noop, NULL, NULL), ZC_OK);
	ck_assert(mapped("libsqlite3"));
	ck_assert(!mapped("libpq"));
	ck_assert(!mapped("libpq"));
	/* configuring PostgreSQL loads libpq: its own parser checks the URL
	 * (an unknown option is a start-up error, not a silent failure) */
	ck_assert_int_eq(zc__store_configure("postgresql://u:pw@127.0.0.1:1/x",
					     "fn", -1, err, sizeof(err)),
			 0);
	ck_assert(mapped("libpq"));
	ck_assert_int_ne(zc__store_configure("postgresql://127.0.0.1:1/x?"
					     "no_such_option=1",
					     "fn", -1, err, sizeof(err)),
			 0);
	ck_assert_ptr_nonnull(strstr(err, "ZC_STORE_URL"));
	ck_assert_ptr_nonnull(strstr(err, "no_such_option"));
	if (!use(B_POSTGRES, "loading"))
		return;
	ck_assert_int_eq(zc__store_run(noop, NULL, NULL), ZC_OK);
}
END_TEST

/* ---- ZC_STORE_URL ---- */

static void
parse_ok(const char *url, int kind, bool ephemeral, const char *target,
	 const char *display)
{
	struct zc_store_url u;
	char err[256] = "";

	ck_assert_msg(zc__store_url_parse(url, "fn", &u, err, sizeof(err)) == 0,
		      "%s: %s", url, err);
	ck_assert_int_eq(u.kind, kind);
	ck_assert_msg(u.ephemeral == ephemeral, "%s ephemeral", url);
	if (target != NULL)
		ck_assert_str_eq(u.target, target);
	if (display != NULL)
		ck_assert_str_eq(u.display, display);
	zc__store_url_free(&u);
}

static void
parse_bad(const char *url, const char *mention)
{
	struct zc_store_url u;
	char err[256] = "";

	ck_assert_msg(zc__store_url_parse(url, "fn", &u, err, sizeof(err)) ==
			      -1,
		      "%s accepted", url);
	ck_assert_msg(strstr(err, "ZC_STORE_URL") != NULL, "%s", err);
	ck_assert_msg(strchr(err, '\n') == NULL, "%s", err);
	ck_assert_msg(strstr(err, "secret") == NULL, "password shown: %s", err);
	if (mention != NULL)
		ck_assert_msg(strstr(err, mention) != NULL, "%s: %s", url, err);
}

START_TEST(test_url_parsing)
{
	struct zc_store_url u;
	char err[256];

	parse_ok("postgres://app:secret@db:5432/x?sslmode=disable",
		 ZC_STORE_POSTGRES, false,
		 "postgres://app:secret@db:5432/x?sslmode=disable",
		 "postgres://app:***@db:5432/x?sslmode=disable");
	parse_ok("postgresql://db1:5432,db2:5433/x", ZC_STORE_POSTGRES, false,
		 NULL, "postgresql://db1:5432,db2:5433/x");
	parse_ok("postgresql:///x?host=/run/postgresql", ZC_STORE_POSTGRES,
		 false, NULL, NULL);
	parse_ok("postgresql://[::1]:5432/x", ZC_STORE_POSTGRES, false, NULL,
		 NULL);
	parse_ok("postgresql://u@h/x?password=secret&sslmode=require",
		 ZC_STORE_POSTGRES, false, NULL,
		 "postgresql://u@h/x?password=***&sslmode=require");
	parse_ok("postgresql://u:p%40ss@h/x", ZC_STORE_POSTGRES, false, NULL,
		 "postgresql://u:***@h/x");
	parse_ok("sqlite:/data/state.db", ZC_STORE_SQLITE, false,
		 "/data/state.db", "sqlite:/data/state.db");
	parse_ok("sqlite:/tmp/state.db", ZC_STORE_SQLITE, true, NULL, NULL);
	parse_ok("sqlite:///var/lib/f.db", ZC_STORE_SQLITE, false,
		 "/var/lib/f.db", NULL);
	parse_ok("sqlite:rel.db", ZC_STORE_SQLITE, false, "rel.db", NULL);
	parse_ok("memory:", ZC_STORE_MEMORY, true, NULL, "memory:");

	/* unset or empty: $TMPDIR/<name>.db, else /tmp */
	setenv("TMPDIR", "/scratch/", 1);
	parse_ok("", ZC_STORE_SQLITE, true, "/scratch/fn.db",
		 "sqlite:/scratch/fn.db");
	parse_ok("sqlite:/scratch/a.db", ZC_STORE_SQLITE, true, NULL, NULL);
	unsetenv("TMPDIR");
	parse_ok(NULL, ZC_STORE_SQLITE, true, "/tmp/fn.db", NULL);
	ck_assert_int_eq(
		zc__store_url_parse(NULL, "my fn/../x", &u, err, sizeof(err)),
		0);
	ck_assert_str_eq(u.target, "/tmp/my_fn_.._x.db");
	zc__store_url_free(&u);

	parse_bad("sqlite:", "path");
	parse_bad("sqlite://rel.db", NULL);
	parse_bad("memory:x", NULL);
	parse_bad("mysql://root:secret@h/db", "unknown");
	parse_bad("redis://h", "unknown");
	parse_bad("postgres", "unknown");
	parse_bad("postgres://u:secret@h:abc/db", "port");
	parse_bad("postgres://u:secret@h:99999/db", "port");
	parse_bad("postgresql://h:/db", "port");
	parse_bad("postgresql://h/db?sslmode", "key=value");
	parse_bad("postgresql://h/d b", "space");
	parse_bad("postgresql://h/%zz", "escape");
	parse_bad("postgresql://[::1/db", "IPv6");
}
END_TEST

START_TEST(test_describe)
{
	char where[256], warn[512], err[256];

	ck_assert_int_eq(
		zc__store_configure("postgresql://app:secret@db.internal/x",
				    "fn", -1, err, sizeof(err)),
		0);
	zc__store_describe(where, sizeof(where), warn, sizeof(warn));
	ck_assert_str_eq(where, "postgresql://app:***@db.internal/x");
	ck_assert_str_eq(warn, "");

	ck_assert_int_eq(
		zc__store_configure("memory:", "fn", -1, err, sizeof(err)), 0);
	zc__store_describe(where, sizeof(where), warn, sizeof(warn));
	ck_assert_str_eq(where, "memory:");
	ck_assert_ptr_nonnull(strstr(warn, "ZC_STORE_URL=postgresql://"));

	ck_assert_int_eq(zc__store_configure(NULL, "fn", -1, err, sizeof(err)),
			 0);
	zc__store_describe(where, sizeof(where), warn, sizeof(warn));
	ck_assert_str_eq(where, "sqlite:/tmp/fn.db");
	ck_assert_ptr_nonnull(strstr(warn, "ends with the pod"));

	setenv("ZC_STORE_RETRIES", "11", 1);
	ck_assert_int_eq(zc__store_configure_env("fn", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "ZC_STORE_RETRIES"));
	setenv("ZC_STORE_RETRIES", "2", 1);
	setenv("ZC_STORE_URL", "bogus:", 1);
	ck_assert_int_eq(zc__store_configure_env("fn", err, sizeof(err)), -1);
	unsetenv("ZC_STORE_URL");
	unsetenv("ZC_STORE_RETRIES");
}
END_TEST

START_TEST(test_max_param_scan)
{
	ck_assert_int_eq(zc__sql_max_param("SELECT 1"), 0);
	ck_assert_int_eq(zc__sql_max_param("SELECT $2, $1"), 2);
	ck_assert_int_eq(zc__sql_max_param("SELECT '$3', $1"), 1);
	ck_assert_int_eq(zc__sql_max_param("SELECT 'it''s $4', $1"), 1);
	ck_assert_int_eq(zc__sql_max_param("SELECT \"a$5\", a$6 FROM t "
					   "WHERE x = $1"),
			 1);
	ck_assert_int_eq(zc__sql_max_param("-- $9\nSELECT $1"), 1);
	ck_assert_int_eq(zc__sql_max_param("/* $9 /* $8 */ $7 */ SELECT $2"),
			 2);
	ck_assert_int_eq(zc__sql_max_param("SELECT $$ $7 $$, $q$ $6 $q$, $1"),
			 1);
	ck_assert_int_eq(zc__sql_max_param("SELECT $64"), 64);
	ck_assert_int_eq(zc__sql_max_param("SELECT $65"), -1);
	ck_assert_int_eq(zc__sql_max_param("SELECT $0"), -1);
}
END_TEST

/* ---- statements ---- */

START_TEST(test_exec_and_query)
{
	zc_rows *rows;
	int64_t v;
	zc_tx *tx;

	if (!use(_i, "exec_and_query"))
		return;
	exec_ok("DROP TABLE IF EXISTS st_t");
	exec_ok("CREATE TABLE st_t (id BIGINT PRIMARY KEY, name TEXT, "
		"n INTEGER)");
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx,
				    "INSERT INTO st_t (id, name, n) VALUES "
				    "($1, $2, $3)",
				    "Isi", (int64_t)1, "one", -7),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_changes(tx), 1);
	/* NULL text is SQL NULL */
	ck_assert_int_eq(zc_tx_exec(tx,
				    "INSERT INTO st_t (id, name, n) VALUES "
				    "($1, $2, $3)",
				    "Isi", (int64_t)2, (const char *)NULL, 0),
			 ZC_OK);
	/* $2 before $1 in the text */
	ck_assert_int_eq(zc_tx_exec(tx,
				    "INSERT INTO st_t (name, id) VALUES ($2, "
				    "$1)",
				    "Is", (int64_t)3, "three"),
			 ZC_OK);
	/* $1 twice */
	ck_assert_int_eq(zc_tx_exec(tx,
				    "INSERT INTO st_t (id, n, name) VALUES "
				    "($1, $1, $2)",
				    "Is", (int64_t)4, "four"),
			 ZC_OK);
	/* int64 extremes */
	ck_assert_int_eq(zc_tx_exec(tx,
				    "INSERT INTO st_t (id, name) VALUES ($1, "
				    "'max'), ($2, 'min')",
				    "II", INT64_MAX, INT64_MIN),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_changes(tx), 2);
	ck_assert_int_eq(zc_tx_query(tx, &rows,
				     "SELECT id, name, n FROM st_t ORDER BY "
				     "id",
				     ""),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_changes(tx), 0); /* a SELECT writes nothing */
	ck_assert_uint_eq(zc_rows_count(rows), 6);
	ck_assert_str_eq(zc_rows_text(rows, 0, 0), "-9223372036854775808");
	ck_assert_int_eq(zc_rows_int64(rows, 0, 0, &v), ZC_OK);
	ck_assert(v == INT64_MIN);
	ck_assert_str_eq(zc_rows_text(rows, 1, 1), "one");
	ck_assert_str_eq(zc_rows_text(rows, 1, 2), "-7");
	ck_assert_ptr_null(zc_rows_text(rows, 2, 1)); /* NULL */
	ck_assert_int_eq(zc_rows_int64(rows, 2, 1, &v), ZC_ERR_INVALID);
	ck_assert_str_eq(zc_rows_text(rows, 3, 1), "three");
	ck_assert_ptr_null(zc_rows_text(rows, 3, 2));
	ck_assert_str_eq(zc_rows_text(rows, 4, 2), "4");
	ck_assert_str_eq(zc_rows_text(rows, 5, 0), "9223372036854775807");
	ck_assert_int_eq(zc_rows_int64(rows, 5, 0, &v), ZC_OK);
	ck_assert(v == INT64_MAX);
	/* out of range, and text that is no integer */
	ck_assert_ptr_null(zc_rows_text(rows, 6, 0));
	ck_assert_ptr_null(zc_rows_text(rows, 0, 3));
	ck_assert_ptr_null(zc_rows_text(rows, 0, -1));
	ck_assert_int_eq(zc_rows_int64(rows, 1, 1, &v), ZC_ERR_INVALID);
	zc_rows_free(rows);

	/* parameters come back as they went, on both backends */
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT $1, $2, $3, $4", "siIs",
				     "x'y", INT32_MIN, INT64_MAX,
				     (const char *)NULL),
			 ZC_OK);
	ck_assert_uint_eq(zc_rows_count(rows), 1);
	ck_assert_str_eq(zc_rows_text(rows, 0, 0), "x'y");
	ck_assert_str_eq(zc_rows_text(rows, 0, 1), "-2147483648");
	ck_assert_str_eq(zc_rows_text(rows, 0, 2), "9223372036854775807");
	ck_assert_ptr_null(zc_rows_text(rows, 0, 3));
	zc_rows_free(rows);
	/* a literal "$1" is no parameter */
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT '$1', $1", "s", "p"),
			 ZC_OK);
	ck_assert_str_eq(zc_rows_text(rows, 0, 0), "$1");
	ck_assert_str_eq(zc_rows_text(rows, 0, 1), "p");
	zc_rows_free(rows);

	/* UPDATE ... RETURNING, DELETE, an empty result */
	ck_assert_int_eq(zc_tx_query(tx, &rows,
				     "UPDATE st_t SET n = n + $1 WHERE id IN "
				     "(1, 4) RETURNING n",
				     "i", 10),
			 ZC_OK);
	ck_assert_uint_eq(zc_rows_count(rows), 2);
	ck_assert_int_eq(zc_tx_changes(tx), 2);
	zc_rows_free(rows);
	ck_assert_int_eq(zc_tx_exec(tx, "DELETE FROM st_t WHERE n IS NULL", ""),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_changes(tx), 3); /* 3, max and min */
	ck_assert_int_eq(zc_tx_query(tx, &rows,
				     "SELECT id FROM st_t WHERE id = $1", "I",
				     (int64_t)42),
			 ZC_OK);
	ck_assert_uint_eq(zc_rows_count(rows), 0);
	zc_rows_free(rows);
	/* upsert */
	ck_assert_int_eq(zc_tx_exec(tx,
				    "INSERT INTO st_t (id, name) VALUES ($1, "
				    "$2) ON CONFLICT (id) DO UPDATE SET name "
				    "= excluded.name",
				    "Is", (int64_t)1, "uno"),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_query(tx, &rows,
				     "INSERT INTO st_t (id, name) VALUES ($1, "
				     "'x') ON CONFLICT (id) DO NOTHING "
				     "RETURNING id",
				     "I", (int64_t)1),
			 ZC_OK);
	ck_assert_uint_eq(zc_rows_count(rows), 0);
	zc_rows_free(rows);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
	ck_assert_int_eq(query_int("SELECT count(*) FROM st_t"), 3);
	ck_assert_int_eq(query_int("SELECT n FROM st_t WHERE name = 'uno'"), 3);
}
END_TEST

START_TEST(test_bad_types_abort)
{
	zc_rows *rows = (zc_rows *)1;
	zc_tx *tx;

	if (!use(_i, "bad_types"))
		return;
	ck_assert_int_eq(zc_tx_exec(NULL, "SELECT 1", ""), ZC_ERR_INVALID);
	/* each mistake is refused before it runs, and aborts the tx */
	static const struct {
		const char *sql, *types;
	} bad[] = {{"SELECT $1", ""},  {"SELECT $1", "ss"},
		   {"SELECT $1", "x"}, {"SELECT $2", "s"},
		   {"SELECT $0", ""},  {"SELECT $1, $3", "ss"},
		   {"SELECT ?", "s"},  {"SELECT :name", ""}};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
		zc_err e = zc_tx_exec(tx, bad[k].sql, bad[k].types, "a", "b");
		if (_i == B_POSTGRES && strcmp(bad[k].sql, "SELECT :name") == 0)
			ck_assert_int_eq(e, ZC_ERR_STORE); /* a syntax error */
		else
			ck_assert_msg(e == ZC_ERR_INVALID, "%s \"%s\": %d",
				      bad[k].sql, bad[k].types, e);
		ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT 1", ""),
				 ZC_ERR_STORE);
		ck_assert_ptr_null(rows);
		ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_ERR_STORE);
	}
	/* a finished transaction takes nothing more */
	ck_assert_int_eq(zc_tx_exec(tx, "SELECT 1", ""), ZC_ERR_INVALID);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_ERR_INVALID);
	/* more than one statement per call */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "SELECT 1; SELECT 2", ""),
			 ZC_ERR_STORE);
	zc__store_rollback(tx);
}
END_TEST

START_TEST(test_statement_cache)
{
	char sql[128];
	zc_rows *rows;
	zc_tx *tx;
	int round, k;

	if (!use(_i, "statement_cache"))
		return;
	exec_ok("DROP TABLE IF EXISTS st_c");
	exec_ok("CREATE TABLE st_c (id BIGINT PRIMARY KEY, v TEXT)");
	/* more texts than the cache holds, three times over: evictions and
	 * hits must all give the right answer */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	for (round = 0; round < 3; round++)
		for (k = 0; k < 50; k++) {
			snprintf(sql, sizeof(sql),
				 "SELECT $1 || '-%d', $2 + %d", k, k);
			ck_assert_int_eq(zc_tx_query(tx, &rows, sql, "sI", "r",
						     (int64_t)round),
					 ZC_OK);
			snprintf(sql, sizeof(sql), "r-%d", k);
			ck_assert_str_eq(zc_rows_text(rows, 0, 0), sql);
			ck_assert_int_eq(atoi(zc_rows_text(rows, 0, 1)),
					 round + k);
			zc_rows_free(rows);
		}
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
	/* a cached "SELECT *" follows a change of the table */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT * FROM st_c", ""),
			 ZC_OK);
	zc_rows_free(rows);
	ck_assert_int_eq(
		zc_tx_exec(tx, "ALTER TABLE st_c ADD COLUMN w TEXT", ""),
		ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_c VALUES ($1, $2, $3)",
				    "Iss", (int64_t)1, "a", "b"),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT * FROM st_c", ""),
			 ZC_OK);
	ck_assert_str_eq(zc_rows_text(rows, 0, 2), "b");
	zc_rows_free(rows);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
}
END_TEST

/* ---- transactions ---- */

static int
fail_after_insert(zc_tx *tx, void *arg)
{
	(void)arg;
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (10)", ""),
			 ZC_OK);
	return 7;
}

START_TEST(test_commit_rollback_abort)
{
	zc_tx *tx, *tx2;
	int rc = 0;

	if (!use(_i, "transactions"))
		return;
	exec_ok("DROP TABLE IF EXISTS st_x");
	exec_ok("CREATE TABLE st_x (id BIGINT PRIMARY KEY)");
	/* committed */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (1)", ""),
			 ZC_OK);
	ck_assert_int_eq(zc__store_begin(&tx2), ZC_ERR_INVALID); /* nested */
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
	/* rolled back */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (2)", ""),
			 ZC_OK);
	zc__store_rollback(tx);
	zc__store_rollback(tx); /* twice: nothing */
	/* a failed statement aborts: later ones fail at once, commit undoes
	 * what ran before it */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (3)", ""),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (1)", ""),
			 ZC_ERR_STORE); /* duplicate key */
	ck_assert(!zc__store_tx_conflict(tx));
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (4)", ""),
			 ZC_ERR_STORE);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_ERR_STORE);
	/* a syntax error, same */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSERT INTO st_x VALUES (5)", ""),
			 ZC_OK);
	ck_assert_int_eq(zc_tx_exec(tx, "INSRT INTO st_x VALUES (6)", ""),
			 ZC_ERR_STORE);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_ERR_STORE);
	/* the run helper: fn's failure rolls back and is handed back */
	ck_assert_int_eq(zc__store_run(fail_after_insert, NULL, &rc), ZC_OK);
	ck_assert_int_eq(rc, 7);
	ck_assert_int_eq(query_int("SELECT count(*) FROM st_x"), 1);
	ck_assert_int_eq(query_int("SELECT max(id) FROM st_x"), 1);
}
END_TEST

/* Simulated lost races: the retry helper re-runs, then gives up. */
static int
always_conflicts(zc_tx *tx, void *arg)
{
	atomic_fetch_add((atomic_int *)arg, 1);
	tx->conflict = tx->aborted = true;
	return 1;
}

START_TEST(test_retry_bounded)
{
	char err[256];
	atomic_int runs = 0;

	if (!use(_i, "retry_bounded"))
		return;
	ck_assert_int_eq(zc__store_run(always_conflicts, &runs, NULL),
			 ZC_ERR_CONFLICT);
	ck_assert_int_eq(atomic_load(&runs), 4); /* 1 + 3 retries */
	setenv("ZC_STORE_RETRIES", "1", 1);
	if (_i == B_SQLITE)
		setenv("ZC_STORE_URL", "sqlite:/tmp/zc-unused.db", 1);
	else
		setenv("ZC_STORE_URL", "memory:", 1);
	ck_assert_int_eq(zc__store_configure_env("fn", err, sizeof(err)), 0);
	unsetenv("ZC_STORE_RETRIES");
	unsetenv("ZC_STORE_URL");
	atomic_store(&runs, 0);
	ck_assert_int_eq(zc__store_run(always_conflicts, &runs, NULL),
			 ZC_ERR_CONFLICT);
	ck_assert_int_eq(atomic_load(&runs), 2);
	unlink("/tmp/zc-unused.db");
	unlink("/tmp/zc-unused.db-wal");
	unlink("/tmp/zc-unused.db-shm");
}
END_TEST

/* ---- concurrency ---- */

#define WRITERS    6
#define INCREMENTS 40

static int
increment(zc_tx *tx, void *arg)
{
	(void)arg;
	return zc_tx_exec(tx, "UPDATE st_n SET n = n + 1 WHERE id = 1", "") ==
			       ZC_OK
		       ? 0
		       : 1;
}

static void *
writer(void *arg)
{
	int k, rc;

	(void)arg;
	for (k = 0; k < INCREMENTS; k++) {
		ck_assert_int_eq(zc__store_run(increment, NULL, &rc), ZC_OK);
		ck_assert_int_eq(rc, 0);
	}
	return NULL;
}

START_TEST(test_concurrent_counter)
{
	pthread_t t[WRITERS];
	double committed;
	char want[128];
	int k;

	if (!use(_i, "concurrent_counter"))
		return;
	exec_ok("DROP TABLE IF EXISTS st_n");
	exec_ok("CREATE TABLE st_n (id BIGINT PRIMARY KEY, n BIGINT NOT "
		"NULL)");
	exec_ok("INSERT INTO st_n VALUES (1, 0)");
	ck_assert_int_eq(zc__store_connections(), 1);
	snprintf(want, sizeof(want),
		 "zc_store_transactions_total{backend=\"%s\",outcome="
		 "\"committed\"} ",
		 _i == B_POSTGRES ? "postgres" : "sqlite");
	committed = metric(want);
	for (k = 0; k < WRITERS; k++)
		ck_assert_int_eq(pthread_create(&t[k], NULL, writer, NULL), 0);
	for (k = 0; k < WRITERS; k++)
		pthread_join(t[k], NULL);
	ck_assert_int_eq(query_int("SELECT n FROM st_n WHERE id = 1"),
			 WRITERS * INCREMENTS);
	/* each writer's connection closed as its thread ended */
	ck_assert_int_eq(zc__store_connections(), 1);
	snprintf(want, sizeof(want),
		 "zc_store_transactions_total{backend=\"%s\",outcome="
		 "\"committed\"} ",
		 _i == B_POSTGRES ? "postgres" : "sqlite");
	ck_assert_double_eq(metric(want) - committed, WRITERS * INCREMENTS + 1);
	ck_assert_double_gt(
		metric("zc_store_transaction_duration_seconds_count "), 0);
	ck_assert_double_eq(metric("zc_store_connections "), 1);
	zc__store_close_all();
	ck_assert_int_eq(zc__store_connections(), 0);
	/* memory: state outlives close_all; a new connection reopens */
	ck_assert_int_eq(query_int("SELECT n FROM st_n WHERE id = 1"),
			 WRITERS * INCREMENTS);
}
END_TEST

/* PostgreSQL: real 40001 and 40P01, re-run by zc__store_run. */
struct racer {
	pthread_barrier_t *barrier;
	atomic_int attempts;
	int first, second; /* rows, for the deadlock */
	bool deadlock;
};

static int
race_body(zc_tx *tx, void *arg)
{
	struct racer *r = arg;
	int a = atomic_fetch_add(&r->attempts, 1);
	zc_rows *rows;

	if (!r->deadlock) {
		/* both take a snapshot, then both update: the second to get
		 * the row lock sees it changed since and fails with 40001 */
		if (zc_tx_exec(tx,
			       "SET TRANSACTION ISOLATION LEVEL REPEATABLE "
			       "READ",
			       "") != ZC_OK ||
		    zc_tx_query(tx, &rows, "SELECT n FROM st_r WHERE id = 1",
				"") != ZC_OK)
			return 1;
		zc_rows_free(rows);
		if (a == 0)
			pthread_barrier_wait(r->barrier);
		return zc_tx_exec(tx, "UPDATE st_r SET n = n + 1 WHERE id = 1",
				  "") == ZC_OK
			       ? 0
			       : 1;
	}
	/* rows locked in opposite orders: one of the two gets 40P01 */
	if (zc_tx_exec(tx, "SET LOCAL deadlock_timeout = '50ms'", "") !=
		    ZC_OK ||
	    zc_tx_exec(tx, "UPDATE st_r SET n = n + 1 WHERE id = $1", "i",
		       r->first) != ZC_OK)
		return 1;
	if (a == 0)
		pthread_barrier_wait(r->barrier);
	return zc_tx_exec(tx, "UPDATE st_r SET n = n + 1 WHERE id = $1", "i",
			  r->second) == ZC_OK
		       ? 0
		       : 1;
}

static void *
racer_thread(void *arg)
{
	int rc = -1;

	ck_assert_int_eq(zc__store_run(race_body, arg, &rc), ZC_OK);
	ck_assert_int_eq(rc, 0);
	return NULL;
}

START_TEST(test_pg_conflicts_rerun)
{
	double retries, conflicts;
	pthread_barrier_t b;
	struct racer r[2];
	pthread_t t[2];
	int round, k;

	if (!use(B_POSTGRES, "conflicts_rerun"))
		return;
	retries = metric("zc_store_retries_total ");
	conflicts = metric("zc_store_transactions_total{backend=\"postgres\","
			   "outcome=\"conflict\"} ");
	for (round = 0; round < 2; round++) {
		exec_ok("DROP TABLE IF EXISTS st_r");
		exec_ok("CREATE TABLE st_r (id BIGINT PRIMARY KEY, n BIGINT)");
		exec_ok("INSERT INTO st_r VALUES (1, 0), (2, 0)");
		pthread_barrier_init(&b, NULL, 2);
		for (k = 0; k < 2; k++) {
			r[k] = (struct racer){.barrier = &b,
					      .first = 1 + k,
					      .second = 2 - k,
					      .deadlock = round == 1};
			pthread_create(&t[k], NULL, racer_thread, &r[k]);
		}
		for (k = 0; k < 2; k++)
			pthread_join(t[k], NULL);
		pthread_barrier_destroy(&b);
		/* one of them ran twice, and every run counted once */
		ck_assert_int_eq(atomic_load(&r[0].attempts) +
					 atomic_load(&r[1].attempts),
				 3);
		if (round == 0) {
			ck_assert_int_eq(
				query_int("SELECT n FROM st_r WHERE id = 1"),
				2);
		} else {
			ck_assert_int_eq(
				query_int("SELECT n FROM st_r WHERE id = 1"),
				2);
			ck_assert_int_eq(
				query_int("SELECT n FROM st_r WHERE id = 2"),
				2);
		}
	}
	ck_assert_double_eq(metric("zc_store_retries_total ") - retries, 2);
	ck_assert_double_eq(metric("zc_store_transactions_total{backend="
				   "\"postgres\",outcome=\"conflict\"} ") -
				    conflicts,
			    2);
}
END_TEST

/* ---- schemas ---- */

static char ddl_v1[256], ddl_v2[256], sname[64], runs_table[64];

static void
schema_names(void)
{
	static int seq;

	/* unique per run and per test, as the PostgreSQL database is shared */
	seq++;
	snprintf(sname, sizeof(sname), "test-%ld-%d", (long)getpid(), seq);
	snprintf(runs_table, sizeof(runs_table), "st_runs_%ld_%d",
		 (long)getpid(), seq);
	snprintf(ddl_v1, sizeof(ddl_v1),
		 "CREATE TABLE IF NOT EXISTS %s (v TEXT);\n"
		 "INSERT INTO %s (v) VALUES ('v1');",
		 runs_table, runs_table);
	snprintf(ddl_v2, sizeof(ddl_v2), "INSERT INTO %s (v) VALUES ('v2');",
		 runs_table);
}

/* A child process: waits for the common start, then begins. */
static void
schema_child(int b, long long start_ms)
{
	char url[256], err[256];
	int code;

	if (b == B_POSTGRES)
		snprintf(url, sizeof(url), "%s", getenv("ZC_TEST_PG_URL"));
	else
		snprintf(url, sizeof(url), "sqlite:%s", dbfile);
	if (zc__store_configure(url, "racer", -1, err, sizeof(err)) != 0 ||
	    zc__store_schema_add(sname, 1, ddl_v1) != ZC_OK)
		_exit(3);
	while (now_ms() < start_ms)
		sleep_ms(1);
	code = zc__store_run(noop, NULL, NULL) == ZC_OK ? 0 : 4;
	_exit(code);
}

static int64_t
count_runs(const char *v)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE v = '%s'",
		 runs_table, v);
	return query_int(sql);
}

START_TEST(test_schema_once_across_processes)
{
	long long start;
	char sql[128];
	pid_t pid[4];
	int k, st;

	if (_i == B_MEMORY || !use(_i, "schema_once"))
		return;
	schema_names();
	zc__store_shutdown(); /* the children open first */
	start = now_ms() + 300;
	for (k = 0; k < 4; k++) {
		pid[k] = fork();
		ck_assert_int_ge(pid[k], 0);
		if (pid[k] == 0)
			schema_child(_i, start);
	}
	for (k = 0; k < 4; k++) {
		ck_assert_int_eq(waitpid(pid[k], &st, 0), pid[k]);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			      "child %d: status %d", k, st);
	}
	use(_i, "schema_once");
	ck_assert_int_eq(zc__store_schema_add(sname, 1, ddl_v1), ZC_OK);
	ck_assert_int_eq(count_runs("v1"), 1);
	snprintf(sql, sizeof(sql),
		 "SELECT version FROM zc_schema WHERE name = '%s'", sname);
	ck_assert_int_eq(query_int(sql), 1);
	/* the runtime's own tables are there */
	ck_assert_int_eq(query_int("SELECT version FROM zc_schema WHERE name "
				   "= 'zc'"),
			 1);
	exec_ok("INSERT INTO zc_outbox (id, created_at, next_attempt_at, kind, "
		"target) VALUES ('st-1', 1, 1, 'call', 't')");
	exec_ok("INSERT INTO zc_idem (scope, idem_key, fingerprint, state, "
		"created_at) VALUES ('s', 'st-1', 'f', 'running', 1)");
	ck_assert_int_eq(query_int("SELECT attempts FROM zc_outbox WHERE id "
				   "= 'st-1'"),
			 0);
	exec_ok("DELETE FROM zc_outbox WHERE id = 'st-1'");
	exec_ok("DELETE FROM zc_idem WHERE idem_key = 'st-1'");

	/* version 2 runs its ddl once more, and only once */
	zc__store_shutdown();
	use(_i, "schema_once");
	ck_assert_int_eq(zc__store_schema_add(sname, 2, ddl_v2), ZC_OK);
	ck_assert_int_eq(count_runs("v2"), 1);
	zc__store_shutdown();
	use(_i, "schema_once");
	ck_assert_int_eq(zc__store_schema_add(sname, 2, ddl_v2), ZC_OK);
	ck_assert_int_eq(count_runs("v2"), 1);
	ck_assert_int_eq(count_runs("v1"), 1);
	/* bad declarations */
	ck_assert_int_eq(zc__store_schema_add(sname, 2, ddl_v2),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__store_schema_add("zc", 2, "SELECT 1"),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__store_schema_add("x y", 1, "SELECT 1"),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__store_schema_add("x", 0, "SELECT 1"),
			 ZC_ERR_INVALID);
	snprintf(sql, sizeof(sql), "DROP TABLE %s", runs_table);
	exec_ok(sql);
}
END_TEST

static void *
schema_thread(void *arg)
{
	(void)arg;
	ck_assert_int_eq(zc__store_run(noop, NULL, NULL), ZC_OK);
	return NULL;
}

START_TEST(test_schema_once_across_threads)
{
	pthread_t t[4];
	char sql[128];
	int k;

	if (!use(_i, "schema_threads"))
		return;
	schema_names();
	ck_assert_int_eq(zc__store_schema_add(sname, 1, ddl_v1), ZC_OK);
	for (k = 0; k < 4; k++)
		pthread_create(&t[k], NULL, schema_thread, NULL);
	for (k = 0; k < 4; k++)
		pthread_join(t[k], NULL);
	ck_assert_int_eq(count_runs("v1"), 1);
	/* a DDL that fails: no transaction begins, nothing of it stays */
	zc__store_shutdown();
	use(_i, "schema_threads");
	ck_assert_int_eq(
		zc__store_schema_add("broken", 1,
				     "CREATE TABLE st_half (v TEXT);\n"
				     "CREATE TABLE nonsense nonsense;"),
		ZC_OK);
	ck_assert_int_eq(zc__store_run(noop, NULL, NULL), ZC_ERR_STORE);
	ck_assert(zc__store_ready() == false);
	zc__store_shutdown();
	use(_i, "schema_threads");
	ck_assert_int_eq(query_int("SELECT count(*) FROM zc_schema WHERE name "
				   "= 'broken'"),
			 0);
	snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", runs_table);
	exec_ok(sql);
}
END_TEST

/* SQLite: the file deleted under a running function is recreated, with
 * the schema applied again. */
START_TEST(test_sqlite_file_recreated)
{
	char path[160];
	zc_tx *tx;
	zc_err e;
	int k;

	use(B_SQLITE, "recreated");
	ck_assert_int_eq(zc__store_schema_add("app", 1,
					      "CREATE TABLE st_app (v "
					      "BIGINT)"),
			 ZC_OK);
	exec_ok("INSERT INTO st_app VALUES (1)");
	unlink(dbfile);
	snprintf(path, sizeof(path), "%s-wal", dbfile);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", dbfile);
	unlink(path);
	/* the first write may fail (the file moved); the next recovers */
	for (k = 0; k < 2; k++) {
		ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
		e = zc_tx_exec(tx, "INSERT INTO st_app VALUES (2)", "");
		if (e == ZC_OK && (e = zc__store_commit(tx, NULL)) == ZC_OK)
			break;
		if (e != ZC_OK)
			zc__store_rollback(tx);
	}
	ck_assert_int_eq(e, ZC_OK);
	ck_assert_int_eq(query_int("SELECT count(*) FROM st_app"), 1);
	ck_assert_int_eq(access(dbfile, F_OK), 0);
}
END_TEST

/* SQLite: a commit survives kill -9 right after it. */
START_TEST(test_sqlite_commit_survives_kill)
{
	pid_t pid;
	int st;

	use(B_SQLITE, "kill");
	exec_ok("CREATE TABLE st_k (v TEXT)");
	zc__store_shutdown();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		zc_tx *tx;
		use(B_SQLITE, "kill");
		if (zc__store_begin(&tx) != ZC_OK ||
		    zc_tx_exec(tx, "INSERT INTO st_k VALUES ($1)", "s",
			       "kept") != ZC_OK ||
		    zc__store_commit(tx, NULL) != ZC_OK)
			_exit(3);
		raise(SIGKILL);
		_exit(4);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d",
		      st);
	use(B_SQLITE, "kill");
	ck_assert_int_eq(query_int("SELECT count(*) FROM st_k WHERE v = "
				   "'kept'"),
			 1);
	{
		zc_rows *rows;
		zc_tx *tx;
		ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
		ck_assert_int_eq(
			zc_tx_query(tx, &rows, "PRAGMA integrity_check", ""),
			ZC_OK);
		ck_assert_str_eq(zc_rows_text(rows, 0, 0), "ok");
		zc_rows_free(rows);
		zc__store_rollback(tx);
	}
}
END_TEST

/* ---- readiness and reconnection ---- */

static bool
wait_ready(bool want, long ms)
{
	long long end = now_ms() + ms, t0;

	while (now_ms() < end) {
		t0 = now_ms();
		bool r = zc__store_ready();
		ck_assert_int_lt(now_ms() - t0, 400); /* never blocks long */
		if (r == want)
			return true;
		sleep_ms(100);
	}
	return false;
}

static int
pg_ctl(const char *verb)
{
	const char *dirp = getenv("ZC_TEST_PG_DIR");
	const char *sh = getenv("ZC_TEST_PG_SH");
	char cmd[512];

	ck_assert_msg(dirp != NULL && *dirp != '\0',
		      "ZC_TEST_PG_DIR (the tests/pg/pg.sh directory of "
		      "ZC_TEST_PG_URL's server) is not set: run "
		      "scripts/run-unit.sh, which sets both");
	snprintf(cmd, sizeof(cmd), "'%s' %s '%s' >&2",
		 sh != NULL ? sh : "tests/pg/pg.sh", verb, dirp);
	return system(cmd);
}

START_TEST(test_pg_ready_across_restart)
{
	long long t0;
	zc_tx *tx;

	if (!use(B_POSTGRES, "ready_restart"))
		return;
	ck_assert(wait_ready(true, 5000));
	exec_ok("DROP TABLE IF EXISTS st_p");
	exec_ok("CREATE TABLE st_p (v BIGINT)");
	ck_assert_int_eq(pg_ctl("pause"), 0);
	ck_assert(wait_ready(false, 10000));
	/* transactions fail fast, the function stays up */
	t0 = now_ms();
	ck_assert_int_eq(zc__store_begin(&tx), ZC_ERR_STORE);
	ck_assert_int_eq(zc__store_begin(&tx), ZC_ERR_STORE);
	ck_assert_int_lt(now_ms() - t0, 3000);
	ck_assert_int_eq(pg_ctl("resume"), 0);
	ck_assert(wait_ready(true, 20000));
	/* the main thread's connection recovers too, at once */
	exec_ok("INSERT INTO st_p VALUES (1)");
	ck_assert_int_eq(query_int("SELECT count(*) FROM st_p"), 1);
}
END_TEST

static int
terminate_other(zc_tx *tx, void *arg)
{
	return zc_tx_exec(tx, "SELECT pg_terminate_backend(CAST($1 AS INT))",
			  "s", (const char *)arg) == ZC_OK
		       ? 0
		       : 1;
}

static void *
killer_thread(void *arg)
{
	ck_assert_int_eq(zc__store_run(terminate_other, arg, NULL), ZC_OK);
	return NULL;
}

struct victim {
	pthread_barrier_t b1, b2;
	char pid[32];
	zc_err mid, commit, after;
};

static void *
victim_thread(void *arg)
{
	struct victim *v = arg;
	zc_rows *rows;
	zc_tx *tx;

	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT pg_backend_pid()", ""),
			 ZC_OK);
	snprintf(v->pid, sizeof(v->pid), "%s", zc_rows_text(rows, 0, 0));
	zc_rows_free(rows);
	pthread_barrier_wait(&v->b1); /* main kills our backend */
	pthread_barrier_wait(&v->b2);
	v->mid = zc_tx_exec(tx, "SELECT 1", "");
	v->commit = zc__store_commit(tx, NULL);
	v->after = zc__store_run(noop, NULL, NULL);
	return NULL;
}

START_TEST(test_pg_connection_killed)
{
	struct victim v;
	pthread_t t;
	zc_rows *rows;
	zc_tx *tx;
	char pid[32];

	if (!use(B_POSTGRES, "connection_killed"))
		return;
	/* mid-transaction: that transaction fails, the next one works */
	memset(&v, 0, sizeof(v));
	pthread_barrier_init(&v.b1, NULL, 2);
	pthread_barrier_init(&v.b2, NULL, 2);
	pthread_create(&t, NULL, victim_thread, &v);
	pthread_barrier_wait(&v.b1);
	ck_assert_int_eq(zc__store_run(terminate_other, v.pid, NULL), ZC_OK);
	pthread_barrier_wait(&v.b2);
	pthread_join(t, NULL);
	ck_assert_int_eq(v.mid, ZC_ERR_STORE);
	ck_assert_int_eq(v.commit, ZC_ERR_STORE);
	ck_assert_int_eq(v.after, ZC_OK);
	pthread_barrier_destroy(&v.b1);
	pthread_barrier_destroy(&v.b2);

	/* idle: killed between transactions, the next begin reconnects by
	 * itself and nothing fails */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT pg_backend_pid()", ""),
			 ZC_OK);
	snprintf(pid, sizeof(pid), "%s", zc_rows_text(rows, 0, 0));
	zc_rows_free(rows);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
	pthread_create(&t, NULL, killer_thread, pid);
	pthread_join(t, NULL);
	sleep_ms(200); /* the backend exits */
	ck_assert_int_eq(zc__store_begin(&tx), ZC_OK);
	ck_assert_int_eq(zc_tx_query(tx, &rows, "SELECT pg_backend_pid()", ""),
			 ZC_OK);
	ck_assert_str_ne(zc_rows_text(rows, 0, 0), pid);
	zc_rows_free(rows);
	ck_assert_int_eq(zc__store_commit(tx, NULL), ZC_OK);
}
END_TEST

START_TEST(test_unreachable_fails_fast)
{
	char err[256];
	long long t0;
	zc_tx *tx;

	/* nothing listens on port 1 */
	ck_assert_int_eq(zc__store_configure("postgresql://u:secret@127.0.0.1"
					     ":1/x?connect_timeout=2",
					     "fn", -1, err, sizeof(err)),
			 0);
	t0 = now_ms();
	ck_assert_int_eq(zc__store_begin(&tx), ZC_ERR_STORE);
	ck_assert_int_eq(zc__store_begin(&tx), ZC_ERR_STORE); /* paused */
	ck_assert_int_eq(zc__store_run(noop, NULL, NULL), ZC_ERR_STORE);
	ck_assert_int_lt(now_ms() - t0, 2000);
	ck_assert(!zc__store_ready());
	/* not configured: nothing to be unready about */
	zc__store_shutdown();
	ck_assert(zc__store_ready());
	ck_assert_int_eq(zc__store_begin(&tx), ZC_ERR_STORE);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("loading");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, test_libraries_load_on_first_use);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, up, down);
	tcase_add_test(tc, test_url_parsing);
	tcase_add_test(tc, test_describe);
	tcase_add_test(tc, test_max_param_scan);
	tcase_add_test(tc, test_unreachable_fails_fast);
	suite_add_tcase(s, tc);

	tc = tcase_create("backends");
	tcase_add_checked_fixture(tc, up, down);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_exec_and_query, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_bad_types_abort, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_statement_cache, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_commit_rollback_abort, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_retry_bounded, 0, B_POSTGRES);
	tcase_add_loop_test(tc, test_concurrent_counter, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_schema_once_across_processes, 0,
			    NBACKENDS);
	tcase_add_loop_test(tc, test_schema_once_across_threads, 0, NBACKENDS);
	tcase_add_test(tc, test_sqlite_file_recreated);
	tcase_add_test(tc, test_sqlite_commit_survives_kill);
	tcase_add_test(tc, test_pg_conflicts_rerun);
	tcase_add_test(tc, test_pg_connection_killed);
	tcase_add_test(tc, test_pg_ready_across_restart);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(store_suite());
}
