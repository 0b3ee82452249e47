/*
 * test_dispatch.c - what happens around a handler, through zc_test_request:
 * failures become a generic 500, silence a 204, bad JSON a 400, big bodies
 * a 413, late handlers a 504; health endpoints, hooks, response building,
 * and the configuration zc_test_app loads from the environment.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zenith.h"

#include "testutil.h"

static const char *const env_vars[] = {
	"PORT",
	"ZC_THREADS",
	"ZC_MAX_BODY_BYTES",
	"ZC_HANDLER_TIMEOUT_MS",
	"ZC_READINESS_PATH",
	"ZC_LIVENESS_PATH",
	NULL,
};

static void
clear_env(void)
{
	int i;

	for (i = 0; env_vars[i] != NULL; i++)
		unsetenv(env_vars[i]);
}

static int calls;
static int init_calls, shutdown_calls;
static void *init_arg_seen, *shutdown_arg_seen;

/* Each test starts with a clean environment and zeroed counters, also
 * when run with CK_FORK=no. */
static void
fresh(void)
{
	clear_env();
	calls = init_calls = shutdown_calls = 0;
	init_arg_seen = shutdown_arg_seen = NULL;
}

/* ---- helpers ---- */

/* The body is exactly want. */
static void
expect_body(const zc_res *res, const char *want)
{
	char *s = body_copy(res);

	ck_assert_str_eq(s, want);
	free(s);
}

/* ---- handlers ---- */

static int
h_fail(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	calls++;
	zc_res_header(res, "X-Secret", "db-password");
	zc_res_jsonf(res, 200, "{s:s}", "detail",
		     "connection to db-password@10.0.0.1 failed");
	return (int)(long)arg;
}

static int
h_nothing(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)res;
	(void)arg;
	calls++;
	return 0;
}

static int
h_status_only(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	zc_res_status(res, 202);
	/* Out of range: ignored. */
	zc_res_status(res, 99);
	zc_res_status(res, 600);
	return 0;
}

static int
h_header_only(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_header(res, "X-Only", "yes");
}

static int
h_json(zc_req *req, zc_res *res, void *arg)
{
	json_t *in, *again;

	(void)arg;
	calls++;
	in = zc_req_json(req, res);
	if (in == NULL)
		return 0;
	/* Parsed once, then the same borrowed value. */
	again = zc_req_json(req, res);
	if (again != in)
		return -1;
	return zc_res_jsonf(res, 200, "{s:b}", "ok", 1);
}

static int
h_echo_len(zc_req *req, zc_res *res, void *arg)
{
	size_t len;

	(void)arg;
	calls++;
	zc_req_body(req, &len);
	return zc_res_jsonf(res, 200, "{s:I}", "len", (json_int_t)len);
}

static long remaining_before = -1, remaining_after = -1;

static int
h_slow(zc_req *req, zc_res *res, void *arg)
{
	remaining_before = zc_req_remaining_ms(req);
	sleep_ms((long)arg);
	remaining_after = zc_req_remaining_ms(req);
	zc_res_header(res, "X-Late", "1");
	return zc_res_jsonf(res, 200, "{s:s}", "status", "done");
}

static int
setup_basic(zc_app *app)
{
	if (zc_route(app, "GET", "/fail", h_fail, (void *)-1L) ||
	    zc_route(app, "GET", "/fail7", h_fail, (void *)7L) ||
	    zc_route(app, "GET", "/nothing", h_nothing, NULL) ||
	    zc_route(app, "GET", "/status", h_status_only, NULL) ||
	    zc_route(app, "GET", "/header", h_header_only, NULL) ||
	    zc_route(app, "POST", "/json", h_json, NULL) ||
	    zc_route(app, "POST", "/echo", h_echo_len, NULL) ||
	    zc_route(app, "GET", "/slow", h_slow, (void *)120L) ||
	    zc_route(app, "GET", "/fast", h_slow, (void *)0L))
		return -1;
	return 0;
}

/* ---- handler outcomes ---- */

START_TEST(test_handler_failure_is_generic_500)
{
	zc_app *app = zc_test_app(setup_basic);
	zc_res *res;
	char *body;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/fail", NULL, NULL);
	expect_json_error(res, 500);
	/* Nothing the handler wrote reaches the client. */
	expect_body(res, "{\"error\":\"internal error\"}\n");
	ck_assert_ptr_null(zc_res_get_header(res, "X-Secret"));
	body = body_copy(res);
	ck_assert_ptr_null(strstr(body, "db-password"));
	free(body);
	zc_res_free(res);

	res = zc_test_request(app, "GET", "/fail7", NULL, NULL);
	expect_json_error(res, 500);
	expect_body(res, "{\"error\":\"internal error\"}\n");
	zc_res_free(res);
	ck_assert_int_eq(calls, 2);
	zc_app_free(app);
}
END_TEST

START_TEST(test_silent_handler_is_204)
{
	zc_app *app = zc_test_app(setup_basic);
	zc_res *res;
	size_t len = 99;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/nothing", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	zc_res_get_body(res, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(zc_res_get_header(res, "Content-Type"));
	zc_res_free(res);

	/* A status with no body is kept. */
	res = zc_test_request(app, "GET", "/status", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 202);
	zc_res_free(res);

	/* Headers alone are still "no content". */
	res = zc_test_request(app, "GET", "/header", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	ck_assert_str_eq(zc_res_get_header(res, "x-only"), "yes");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_req_json_errors)
{
	static const char *const bad[] = {
		"{",
		"",
		"{\"a\":1,\"a\":2}",
		"{\"amount\":1,\"x\":{},\"amount\":1000}",
		"{} trailing",
		"{'a':1}",
		"{\"a\":01}",
		"\"\xff\xfe\"",
		"nul",
		"{\"a\":NaN}",
		"   ",
		NULL,
	};
	zc_app *app = zc_test_app(setup_basic);
	zc_res *res;
	int i;

	ck_assert_ptr_nonnull(app);
	for (i = 0; bad[i] != NULL; i++) {
		res = zc_test_request(app, "POST", "/json", NULL, bad[i]);
		ck_assert_msg(zc_res_get_status(res) == 400,
			      "body \"%s\" -> %d, want 400", bad[i],
			      zc_res_get_status(res));
		expect_json_error(res, 400);
		zc_res_free(res);
	}
	/* No body at all. */
	res = zc_test_request(app, "POST", "/json", NULL, NULL);
	expect_json_error(res, 400);
	zc_res_free(res);

	res = zc_test_request(app, "POST", "/json", NULL,
			      "{\"a\":1,\"b\":{\"a\":2}}");
	ck_assert_int_eq(zc_res_get_status(res), 200);
	expect_body(res, "{\"ok\":true}\n");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_body_limit_413)
{
	zc_app *app;
	zc_res *res;

	setenv("ZC_MAX_BODY_BYTES", "16", 1);
	app = zc_test_app(setup_basic);
	ck_assert_ptr_nonnull(app);
	calls = 0;

	res = zc_test_request(app, "POST", "/echo", NULL, "0123456789abcdef");
	ck_assert_int_eq(zc_res_get_status(res), 200);
	expect_body(res, "{\"len\":16}\n");
	zc_res_free(res);

	res = zc_test_request(app, "POST", "/echo", NULL, "0123456789abcdefX");
	expect_json_error(res, 413);
	zc_res_free(res);
	res = zc_test_request(app, "POST", "/json", NULL,
			      "{\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}");
	expect_json_error(res, 413);
	zc_res_free(res);
	/* The handler never saw the oversized requests. */
	ck_assert_int_eq(calls, 1);
	zc_app_free(app);

	/* 0 means no body at all. */
	setenv("ZC_MAX_BODY_BYTES", "0", 1);
	app = zc_test_app(setup_basic);
	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "POST", "/echo", NULL, "x");
	expect_json_error(res, 413);
	zc_res_free(res);
	res = zc_test_request(app, "POST", "/echo", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	zc_app_free(app);
	clear_env();
}
END_TEST

START_TEST(test_handler_timeout_504)
{
	zc_app *app;
	zc_res *res;

	setenv("ZC_HANDLER_TIMEOUT_MS", "50", 1);
	app = zc_test_app(setup_basic);
	ck_assert_ptr_nonnull(app);

	res = zc_test_request(app, "GET", "/slow", NULL, NULL);
	expect_json_error(res, 504);
	/* The late answer is dropped whole, headers included. */
	ck_assert_ptr_null(zc_res_get_header(res, "X-Late"));
	zc_res_free(res);
	ck_assert_int_gt(remaining_before, 0);
	ck_assert_int_le(remaining_before, 50);
	ck_assert_int_eq(remaining_after, 0);

	res = zc_test_request(app, "GET", "/fast", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "X-Late"), "1");
	zc_res_free(res);
	zc_app_free(app);
	clear_env();
}
END_TEST

/* ---- health ---- */

START_TEST(test_health_endpoints)
{
	zc_app *app = zc_test_app(setup_basic);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	expect_body(res, "{\"status\":\"ready\"}\n");
	zc_res_free(res);

	res = zc_test_request(app, "GET", "/health/liveness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	expect_body(res, "{\"status\":\"alive\"}\n");
	zc_res_free(res);

	res = zc_test_request(app, "HEAD", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	res = zc_test_request(app, "HEAD", "/health/liveness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	/* Other methods on a probe path: 405, OPTIONS lists what is. */
	res = zc_test_request(app, "POST", "/health/readiness", NULL, "{}");
	expect_json_error(res, 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "GET, HEAD, OPTIONS");
	zc_res_free(res);
	res = zc_test_request(app, "OPTIONS", "/health/liveness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "GET, HEAD, OPTIONS");
	zc_res_free(res);
	/* Probes may carry a query string. */
	res = zc_test_request(app, "GET", "/health/readiness?probe=1", NULL,
			      NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

static int
setup_health_get(zc_app *app)
{
	return zc_route(app, "GET", "/health/readiness", h_nothing, NULL);
}

static int
setup_health_post(zc_app *app)
{
	return zc_route(app, "POST", "/health/liveness", h_nothing, NULL);
}

static int
setup_health_param(zc_app *app)
{
	return zc_route(app, "GET", "/health/{probe}", h_nothing, NULL);
}

START_TEST(test_health_collision_refused)
{
	zc_app *app;
	zc_res *res;

	ck_assert_ptr_null(zc_test_app(setup_health_get));
	ck_assert_ptr_null(zc_test_app(setup_health_post));

	/* A parameter route under /health is allowed; the probes still
	 * answer on their own paths. */
	app = zc_test_app(setup_health_param);
	ck_assert_ptr_nonnull(app);
	calls = 0;
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	expect_body(res, "{\"status\":\"ready\"}\n");
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/health/other", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	zc_res_free(res);
	ck_assert_int_eq(calls, 1);
	zc_app_free(app);
}
END_TEST

START_TEST(test_health_path_override)
{
	zc_app *app;
	zc_res *res;

	setenv("ZC_READINESS_PATH", "/ready", 1);
	setenv("ZC_LIVENESS_PATH", "/alive", 1);
	app = zc_test_app(setup_basic);
	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/ready", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	expect_body(res, "{\"status\":\"ready\"}\n");
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/alive", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	expect_body(res, "{\"status\":\"alive\"}\n");
	zc_res_free(res);
	/* The default paths are now ordinary (unknown) paths ... */
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	expect_json_error(res, 404);
	zc_res_free(res);
	zc_app_free(app);

	/* ... and free for a route. */
	app = zc_test_app(setup_health_get);
	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	zc_res_free(res);
	zc_app_free(app);

	/* Not an absolute path; or both probes on one path. */
	setenv("ZC_READINESS_PATH", "ready", 1);
	ck_assert_ptr_null(zc_test_app(setup_basic));
	setenv("ZC_READINESS_PATH", "/alive", 1);
	ck_assert_ptr_null(zc_test_app(setup_basic));
	clear_env();
}
END_TEST

/* ---- hooks ---- */

static int init_tag = 1, shutdown_tag = 2;

static int
init_ok(void *arg)
{
	init_calls++;
	init_arg_seen = arg;
	return 0;
}

static int
init_fail(void *arg)
{
	(void)arg;
	init_calls++;
	return -1;
}

static void
on_shutdown(void *arg)
{
	shutdown_calls++;
	shutdown_arg_seen = arg;
}

static int
setup_hooks_ok(zc_app *app)
{
	zc_on_init(app, init_ok, &init_tag);
	zc_on_shutdown(app, on_shutdown, &shutdown_tag);
	return zc_route(app, "GET", "/x", h_nothing, NULL);
}

static int
setup_hooks_fail(zc_app *app)
{
	zc_on_init(app, init_fail, NULL);
	zc_on_shutdown(app, on_shutdown, NULL);
	return 0;
}

static int
setup_fails(zc_app *app)
{
	zc_on_init(app, init_ok, NULL);
	zc_on_shutdown(app, on_shutdown, NULL);
	return 1;
}

START_TEST(test_init_and_shutdown_hooks)
{
	zc_app *app = zc_test_app(setup_hooks_ok);

	ck_assert_ptr_nonnull(app);
	ck_assert_int_eq(init_calls, 1);
	ck_assert_ptr_eq(init_arg_seen, &init_tag);
	ck_assert_int_eq(shutdown_calls, 0);
	zc_app_free(app);
	ck_assert_int_eq(shutdown_calls, 1);
	ck_assert_ptr_eq(shutdown_arg_seen, &shutdown_tag);
	zc_app_free(NULL);
}
END_TEST

START_TEST(test_init_failure)
{
	ck_assert_ptr_null(zc_test_app(setup_hooks_fail));
	ck_assert_int_eq(init_calls, 1);
	/* init did not complete, so there is nothing to shut down. */
	ck_assert_int_eq(shutdown_calls, 0);
}
END_TEST

START_TEST(test_setup_failure)
{
	ck_assert_ptr_null(zc_test_app(setup_fails));
	ck_assert_ptr_null(zc_test_app(NULL));
	ck_assert_int_eq(init_calls, 0);
	ck_assert_int_eq(shutdown_calls, 0);
}
END_TEST

/* ---- building responses ---- */

static int
h_headers(zc_req *req, zc_res *res, void *arg)
{
	json_t *out = json_array();

	(void)req;
	(void)arg;
#define TRY(n, v)                                                              \
	json_array_append_new(out, json_integer(zc_res_header(res, n, v)))
	TRY("X-Good", "fine value; with=stuff");
	TRY("X-Bad", "a\r\nSet-Cookie: evil=1");
	TRY("X-Bad", "a\nb");
	TRY("X-Bad", "a\rb");
	TRY("X-Bad\r\nInjected", "v");
	TRY("X-Bad\n", "v");
	TRY("X-Bad: v\r\nX", "v");
	TRY("X Bad", "v");
	TRY("", "v");
	TRY(NULL, "v");
	TRY("X-Bad", NULL);
	TRY("X-Empty", "");
#undef TRY
	return zc_res_json(res, 200, out);
}

static int
h_jsonf(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_jsonf(res, 201, "{s:s, s:f}", "status", "ok", "n", 0.3);
}

static int
h_text(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_text(res, 200, "hello\nworld");
}

static int
h_error(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_error(res, 409, "account %s is \"%s\" (%d)", "a1",
			    "locked", 42);
}

/* The later body replaces the earlier one, with its content type. */
static int
h_replace(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	zc_res_text(res, 200, "first");
	return zc_res_jsonf(res, 200, "{s:i}", "second", 2);
}

/* Misuse answers ZC_ERR_INVALID instead of crashing. */
static int
h_misuse(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	if (zc_res_jsonf(res, 200, "{s:s", "unterminated", "x") !=
	    ZC_ERR_INVALID)
		return -1;
	if (zc_res_json(res, 200, NULL) != ZC_ERR_INVALID)
		return -1;
	return zc_res_text(res, 200, NULL);
}

static int
setup_builders(zc_app *app)
{
	if (zc_route(app, "GET", "/headers", h_headers, NULL) ||
	    zc_route(app, "GET", "/jsonf", h_jsonf, NULL) ||
	    zc_route(app, "GET", "/text", h_text, NULL) ||
	    zc_route(app, "GET", "/error", h_error, NULL) ||
	    zc_route(app, "GET", "/replace", h_replace, NULL) ||
	    zc_route(app, "GET", "/misuse", h_misuse, NULL))
		return -1;
	return 0;
}

START_TEST(test_res_header_rejects_crlf)
{
	zc_app *app = zc_test_app(setup_builders);
	zc_res *res;
	json_t *v;
	size_t i;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/headers", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	ck_assert_int_eq(json_integer_value(json_array_get(v, 0)), ZC_OK);
	for (i = 1; i < json_array_size(v) - 1; i++)
		ck_assert_msg(json_integer_value(json_array_get(v, i)) ==
				      ZC_ERR_INVALID,
			      "bad header #%zu accepted", i);
	ck_assert_int_eq(json_integer_value(json_array_get(v, i)), ZC_OK);
	json_decref(v);
	ck_assert_str_eq(zc_res_get_header(res, "x-good"),
			 "fine value; with=stuff");
	ck_assert_str_eq(zc_res_get_header(res, "X-Empty"), "");
	ck_assert_ptr_null(zc_res_get_header(res, "X-Bad"));
	ck_assert_ptr_null(zc_res_get_header(res, "Set-Cookie"));
	ck_assert_ptr_null(zc_res_get_header(res, "Injected"));
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_content_types)
{
	zc_app *app = zc_test_app(setup_builders);
	zc_res *res;
	size_t len;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/jsonf", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 201);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	ck_assert_str_eq(zc_res_get_header(res, "content-type"),
			 "application/json");
	expect_body(res, "{\"status\":\"ok\",\"n\":0.3}\n");
	zc_res_free(res);

	res = zc_test_request(app, "GET", "/text", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "text/plain; charset=utf-8");
	zc_res_get_body(res, &len);
	ck_assert_uint_eq(len, 11);
	expect_body(res, "hello\nworld");
	zc_res_free(res);

	res = zc_test_request(app, "GET", "/error", NULL, NULL);
	expect_json_error(res, 409);
	expect_body(res, "{\"error\":\"account a1 is \\\"locked\\\" (42)\"}\n");
	zc_res_free(res);

	res = zc_test_request(app, "GET", "/replace", NULL, NULL);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	expect_body(res, "{\"second\":2}\n");
	zc_res_free(res);

	res = zc_test_request(app, "GET", "/misuse", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "text/plain; charset=utf-8");
	zc_res_get_body(res, &len);
	ck_assert_uint_eq(len, 0);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

/* ---- request targets ---- */

START_TEST(test_odd_targets)
{
	zc_app *app = zc_test_app(setup_basic);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "OPTIONS", "*", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	zc_res_free(res);
	res = zc_test_request(app, "GET", "nothing", NULL, NULL);
	expect_json_error(res, 400);
	zc_res_free(res);
	res = zc_test_request(app, "GET", "http://example.com/nothing", NULL,
			      NULL);
	expect_json_error(res, 400);
	zc_res_free(res);
	ck_assert_ptr_null(zc_test_request(NULL, "GET", "/", NULL, NULL));
	ck_assert_ptr_null(zc_test_request(app, NULL, "/", NULL, NULL));
	ck_assert_ptr_null(zc_test_request(app, "GET", NULL, NULL, NULL));
	zc_res_free(NULL);
	zc_app_free(app);
}
END_TEST

/* ---- configuration ---- */

static void
expect_bad_config(const char *name, const char *value)
{
	zc_app *app;

	setenv(name, value, 1);
	app = zc_test_app(setup_basic);
	ck_assert_msg(app == NULL, "%s=\"%s\" accepted", name, value);
	unsetenv(name);
}

static void
expect_good_config(const char *name, const char *value)
{
	zc_app *app;

	setenv(name, value, 1);
	app = zc_test_app(setup_basic);
	ck_assert_msg(app != NULL, "%s=\"%s\" refused", name, value);
	zc_app_free(app);
	unsetenv(name);
}

START_TEST(test_config_errors)
{
	expect_bad_config("PORT", "abc");
	expect_bad_config("PORT", "0");
	expect_bad_config("PORT", "70000");
	expect_bad_config("PORT", "65536");
	expect_bad_config("PORT", "-1");
	expect_bad_config("PORT", "80x");
	expect_bad_config("PORT", "8080 ");
	expect_bad_config("PORT", "99999999999999999999999");
	expect_bad_config("ZC_THREADS", "0");
	expect_bad_config("ZC_THREADS", "many");
	expect_bad_config("ZC_THREADS", "-4");
	expect_bad_config("ZC_MAX_BODY_BYTES", "-1");
	expect_bad_config("ZC_MAX_BODY_BYTES", "1MB");
	expect_bad_config("ZC_HANDLER_TIMEOUT_MS", "0");
	expect_bad_config("ZC_HANDLER_TIMEOUT_MS", "1.5");

	expect_good_config("PORT", "1");
	expect_good_config("PORT", "65535");
	expect_good_config("PORT", ""); /* empty: the default */
	expect_good_config("ZC_THREADS", "1");
	clear_env();
}
END_TEST

static Suite *
dispatch_suite(void)
{
	Suite *s = suite_create("dispatch");
	TCase *tc = tcase_create("handler");

	tcase_add_checked_fixture(tc, fresh, clear_env);
	tcase_add_test(tc, test_handler_failure_is_generic_500);
	tcase_add_test(tc, test_silent_handler_is_204);
	tcase_add_test(tc, test_req_json_errors);
	tcase_add_test(tc, test_body_limit_413);
	tcase_add_test(tc, test_handler_timeout_504);
	tcase_add_test(tc, test_odd_targets);
	suite_add_tcase(s, tc);

	tc = tcase_create("health");
	tcase_add_checked_fixture(tc, fresh, clear_env);
	tcase_add_test(tc, test_health_endpoints);
	tcase_add_test(tc, test_health_collision_refused);
	tcase_add_test(tc, test_health_path_override);
	suite_add_tcase(s, tc);

	tc = tcase_create("hooks");
	tcase_add_checked_fixture(tc, fresh, clear_env);
	tcase_add_test(tc, test_init_and_shutdown_hooks);
	tcase_add_test(tc, test_init_failure);
	tcase_add_test(tc, test_setup_failure);
	suite_add_tcase(s, tc);

	tc = tcase_create("response");
	tcase_add_checked_fixture(tc, fresh, clear_env);
	tcase_add_test(tc, test_res_header_rejects_crlf);
	tcase_add_test(tc, test_content_types);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, fresh, clear_env);
	tcase_add_test(tc, test_config_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(dispatch_suite());
}
