/*
 * test_transaction.c - ZC_ROUTE_TRANSACTIONAL routes through
 * zc_test_request, on the in-process store (memory:, the test default) and
 * on a SQLite file: the handler's writes commit on 2xx and roll back on
 * any other answer or a failed handler; zc_req_tx is NULL elsewhere;
 * schemas apply once; zc_store_run; idempotent and transactional
 * together; a bad ZC_STORE_URL stops the app.
 */
#include <pthread.h>

#include "zenith.h"
#include "testutil.h"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS accounts (account TEXT PRIMARY KEY,"
	" cents BIGINT NOT NULL);";

static int fail_after_write;  /* answer 422 after writing */
static int crash_after_write; /* return -1 after writing */
static int runs;

static int
h_add(zc_req *req, zc_res *res, void *arg)
{
	zc_tx *tx = zc_req_tx(req);
	const char *acct = zc_req_param(req, "a");
	zc_rows *rows = NULL;
	int64_t cents = 0;
	zc_err err;

	(void)arg;
	runs++;
	ck_assert_ptr_nonnull(tx);
	err = zc_tx_query(tx, &rows,
			  "INSERT INTO accounts (account, cents) VALUES ($1, "
			  "$2) ON CONFLICT (account) DO UPDATE SET cents = "
			  "accounts.cents + excluded.cents RETURNING cents",
			  "sI", acct, (int64_t)150);
	if (err != ZC_OK)
		return -1;
	ck_assert_uint_eq(zc_rows_count(rows), 1);
	ck_assert_int_eq(zc_rows_int64(rows, 0, 0, &cents), ZC_OK);
	zc_rows_free(rows);
	if (fail_after_write)
		return zc_res_error(res, 422, "refused after writing");
	if (crash_after_write)
		return -1;
	return zc_res_jsonf(res, 200, "{s:I}", "cents", (json_int_t)cents);
}

static int
h_get(zc_req *req, zc_res *res, void *arg)
{
	zc_tx *tx = zc_req_tx(req);
	zc_rows *rows = NULL;
	int64_t cents;

	(void)arg;
	if (zc_tx_query(tx, &rows,
			"SELECT cents FROM accounts WHERE account = $1", "s",
			zc_req_param(req, "a")) != ZC_OK)
		return -1;
	if (zc_rows_count(rows) == 0) {
		zc_rows_free(rows);
		return zc_res_error(res, 404, "no such account");
	}
	ck_assert_int_eq(zc_rows_int64(rows, 0, 0, &cents), ZC_OK);
	zc_rows_free(rows);
	return zc_res_jsonf(res, 200, "{s:I}", "cents", (json_int_t)cents);
}

static int
h_plain(zc_req *req, zc_res *res, void *arg)
{
	(void)arg;
	ck_assert_ptr_null(zc_req_tx(req));
	return zc_res_jsonf(res, 200, "{s:b}", "tx", 0);
}

static int
setup(zc_app *app)
{
	zc_route_opts tx = {.flags = ZC_ROUTE_TRANSACTIONAL};
	zc_route_opts both = {.flags = ZC_ROUTE_TRANSACTIONAL |
				       ZC_ROUTE_IDEMPOTENT};

	if (zc_store_schema(app, "test", 1, schema) != ZC_OK ||
	    zc_route_with(app, "POST", "/add/{a}", h_add, NULL, &tx) != ZC_OK ||
	    zc_route_with(app, "POST", "/once/{a}", h_add, NULL, &both) !=
		    ZC_OK ||
	    zc_route_with(app, "GET", "/get/{a}", h_get, NULL, &tx) != ZC_OK ||
	    zc_route(app, "GET", "/plain", h_plain, NULL) != ZC_OK)
		return -1;
	return 0;
}

static int64_t
balance(zc_app *app, const char *acct)
{
	char path[64];
	zc_res *res;
	json_t *j;
	int64_t v;

	snprintf(path, sizeof(path), "/get/%s", acct);
	res = zc_test_request(app, "GET", path, NULL, NULL);
	if (zc_res_get_status(res) == 404) {
		zc_res_free(res);
		return -1;
	}
	ck_assert_int_eq(zc_res_get_status(res), 200);
	j = body_json(res);
	v = json_integer_value(json_object_get(j, "cents"));
	json_decref(j);
	zc_res_free(res);
	return v;
}

static int
status_of(zc_app *app, const char *method, const char *path,
	  const char *const *headers)
{
	zc_res *res = zc_test_request(app, method, path, headers, "{}");
	int st = zc_res_get_status(res);

	zc_res_free(res);
	return st;
}

static void
commit_and_rollback(void)
{
	zc_app *app = open_app(setup);

	fail_after_write = crash_after_write = 0;
	ck_assert_int_eq(balance(app, "A"), -1);
	ck_assert_int_eq(status_of(app, "POST", "/add/A", NULL), 200);
	ck_assert_int_eq(status_of(app, "POST", "/add/A", NULL), 200);
	ck_assert_int_eq(balance(app, "A"), 300);
	/* a 4xx answer rolls back what the handler wrote */
	fail_after_write = 1;
	ck_assert_int_eq(status_of(app, "POST", "/add/A", NULL), 422);
	ck_assert_int_eq(balance(app, "A"), 300);
	fail_after_write = 0;
	/* a failed handler: 500, rolled back */
	crash_after_write = 1;
	ck_assert_int_eq(status_of(app, "POST", "/add/A", NULL), 500);
	ck_assert_int_eq(balance(app, "A"), 300);
	crash_after_write = 0;
	/* no transaction on other routes */
	ck_assert_int_eq(status_of(app, "GET", "/plain", NULL), 200);
	zc_app_free(app);
}

START_TEST(memory_commits_on_2xx_only)
{
	unsetenv("ZC_STORE_URL");
	commit_and_rollback();
}
END_TEST

START_TEST(sqlite_commits_on_2xx_only_and_keeps_state)
{
	char dir[] = "/tmp/zc-test-tx-XXXXXX", url[128];
	zc_app *app;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(url, sizeof(url), "sqlite:%s/t.db", dir);
	setenv("ZC_STORE_URL", url, 1);
	commit_and_rollback();
	/* a new app on the same file sees what the first committed */
	app = open_app(setup);
	ck_assert_int_eq(balance(app, "A"), 300);
	zc_app_free(app);
	unsetenv("ZC_STORE_URL");
	snprintf(url, sizeof(url), "rm -rf %s", dir);
	ck_assert_int_eq(system(url), 0);
}
END_TEST

START_TEST(idempotent_and_transactional)
{
	const char *const key[] = {"Idempotency-Key: K-1", NULL};
	zc_app *app;
	zc_res *a, *b;

	unsetenv("ZC_STORE_URL");
	app = open_app(setup);
	runs = 0;
	a = zc_test_request(app, "POST", "/once/B", key, "{}");
	b = zc_test_request(app, "POST", "/once/B", key, "{}");
	ck_assert_int_eq(zc_res_get_status(a), 200);
	ck_assert_int_eq(zc_res_get_status(b), 200);
	ck_assert_str_eq(zc_res_get_body(a, NULL), zc_res_get_body(b, NULL));
	ck_assert_str_eq(zc_res_get_header(b, "Idempotent-Replayed"), "true");
	ck_assert_int_eq(runs, 1);
	ck_assert_int_eq(balance(app, "B"), 150);
	zc_res_free(a);
	zc_res_free(b);
	zc_app_free(app);
}
END_TEST

struct counter {
	int calls;
};

static int
bump(zc_tx *tx, void *arg)
{
	struct counter *c = arg;

	c->calls++;
	return zc_tx_exec(tx,
			  "INSERT INTO accounts (account, cents) VALUES ($1, "
			  "$2) ON CONFLICT (account) DO UPDATE SET cents = "
			  "accounts.cents + excluded.cents",
			  "si", "R", 7) == ZC_OK
		       ? 0
		       : -1;
}

static int
refuse(zc_tx *tx, void *arg)
{
	(void)arg;
	(void)zc_tx_exec(tx,
			 "INSERT INTO accounts (account, cents) VALUES ('X', "
			 "1)",
			 "");
	return 1; /* roll back */
}

static zc_app *store_run_app;

static int
init_with_store_run(void *arg)
{
	struct counter *c = arg;

	return zc_store_run(store_run_app, bump, c) == ZC_OK ? 0 : -1;
}

static struct counter init_counter;

static int
setup_init(zc_app *app)
{
	store_run_app = app;
	zc_on_init(app, init_with_store_run, &init_counter);
	return setup(app);
}

START_TEST(store_run_commits_or_rolls_back)
{
	zc_app *app;

	unsetenv("ZC_STORE_URL");
	init_counter.calls = 0;
	app = open_app(setup_init);
	ck_assert_int_eq(init_counter.calls, 1);
	ck_assert_int_eq(balance(app, "R"), 7);
	ck_assert_int_eq(zc_store_run(app, refuse, NULL), ZC_ERR_STORE);
	ck_assert_int_eq(balance(app, "X"), -1);
	zc_app_free(app);
}
END_TEST

static int
setup_no_store(zc_app *app)
{
	return zc_route(app, "GET", "/plain", h_plain, NULL);
}

START_TEST(store_run_without_a_store_is_refused)
{
	zc_app *app = open_app(setup_no_store);

	ck_assert_int_eq(zc_store_run(app, refuse, NULL), ZC_ERR_INVALID);
	zc_app_free(app);
}
END_TEST

START_TEST(bad_store_url_stops_the_app)
{
	struct capture c;
	zc_app *app;
	char *log;

	setenv("ZC_STORE_URL", "mysql://db/x", 1);
	capture_start(&c);
	app = zc_test_app(setup);
	log = capture_end(&c);
	unsetenv("ZC_STORE_URL");
	ck_assert_ptr_null(app);
	ck_assert_ptr_nonnull(strstr(log, "ZC_STORE_URL"));
	free(log);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("transaction");
	TCase *tc = tcase_create("routes");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, memory_commits_on_2xx_only);
	tcase_add_test(tc, sqlite_commits_on_2xx_only_and_keeps_state);
	tcase_add_test(tc, idempotent_and_transactional);
	tcase_add_test(tc, store_run_commits_or_rolls_back);
	tcase_add_test(tc, store_run_without_a_store_is_refused);
	tcase_add_test(tc, bad_store_url_stops_the_app);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
