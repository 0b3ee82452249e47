/*
 * memstore.c - what a single-row transaction costs an in-memory SQLite
 * database as it grows, for the two ways to share one between a process's
 * connections: the shared cache (mode=memory&cache=shared, what memory:
 * was) and the memdb VFS (what memory: is, store/url.c).
 *
 *   cc -std=c11 -O2 -o memstore bench/memstore.c -lsqlite3
 *   ./memstore 'file:m?mode=memory&cache=shared'   # us per insert, grows
 *   ./memstore 'file:/m?vfs=memdb'                  # flat
 *
 * Two connections take turns, as two loop threads do; each round inserts
 * 20,000 rows shaped like audit-logger's (a random TEXT key) and prints
 * microseconds per transaction.  Benchmark tool only.
 */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUNDS 30
#define PER_ROUND 20000

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	sqlite3 *db[2];
	char key[40];
	int i, r, j;

	if (argc != 2) {
		fprintf(stderr, "usage: memstore SQLITE_URI\n");
		return 2;
	}
	for (i = 0; i < 2; i++) {
		if (sqlite3_open_v2(argv[1], &db[i],
				    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
					    SQLITE_OPEN_URI |
					    SQLITE_OPEN_NOMUTEX,
				    NULL) != SQLITE_OK) {
			fprintf(stderr, "cannot open %s\n", argv[1]);
			return 1;
		}
		sqlite3_busy_timeout(db[i], 5000);
	}
	sqlite3_exec(db[0],
		     "CREATE TABLE a (key TEXT PRIMARY KEY, action TEXT, "
		     "details TEXT)",
		     NULL, NULL, NULL);
	for (r = 0; r < ROUNDS; r++) {
		double t0 = now_s();

		for (j = 0; j < PER_ROUND; j++) {
			sqlite3 *d = db[j % 2];
			sqlite3_stmt *s;

			sqlite3_exec(d, "BEGIN IMMEDIATE", NULL, NULL, NULL);
			sqlite3_prepare_v2(d,
					   "INSERT INTO a VALUES (?1, "
					   "'balance_update', "
					   "'{\"account\":\"acc-1\","
					   "\"amount\":\"10.50\"}')",
					   -1, &s, NULL);
			snprintf(key, sizeof(key), "%08x%08x%08x%08x", rand(),
				 rand(), rand(), rand());
			sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(s) != SQLITE_DONE) {
				fprintf(stderr, "insert: %s\n",
					sqlite3_errmsg(d));
				return 1;
			}
			sqlite3_finalize(s);
			sqlite3_exec(d, "COMMIT", NULL, NULL, NULL);
		}
		printf("rows %7d: %.1f us per transaction\n",
		       (r + 1) * PER_ROUND, (now_s() - t0) / PER_ROUND * 1e6);
		fflush(stdout);
	}
	return 0;
}
