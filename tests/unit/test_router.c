/*
 * test_router.c - zc_route's validation of methods and patterns, and
 * matching as a client sees it through zc_test_request: exact paths,
 * {param} capture, literal-beats-param, 404/405/OPTIONS/HEAD, query and
 * headers.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zenith.h"

#include "testutil.h"

static int
h_ok(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)res;
	(void)arg;
	return 0;
}

/* Echo the route label (arg) and the request as the handler sees it. */
static int
h_echo(zc_req *req, zc_res *res, void *arg)
{
	return zc_res_jsonf(
		res, 200, "{s:s, s:s, s:s, s:s?, s:s?, s:s?}", "route",
		(const char *)arg, "method", zc_req_method(req), "path",
		zc_req_path(req), "id", zc_req_param(req, "id"), "tx",
		zc_req_param(req, "tx"), "name", zc_req_param(req, "name"));
}

/* Query values by key; absent ones come back as null. */
static int
h_query(zc_req *req, zc_res *res, void *arg)
{
	(void)arg;
	return zc_res_jsonf(res, 200, "{s:s?, s:s?, s:s?, s:s?, s:s?}", "x",
			    zc_req_query(req, "x"), "y", zc_req_query(req, "y"),
			    "flag", zc_req_query(req, "flag"), "empty",
			    zc_req_query(req, "empty"), "missing",
			    zc_req_query(req, "missing"));
}

static int
h_headers(zc_req *req, zc_res *res, void *arg)
{
	(void)arg;
	return zc_res_jsonf(res, 200, "{s:s?, s:s?, s:s?, s:s?, s:s?}", "lower",
			    zc_req_header(req, "x-request-id"), "upper",
			    zc_req_header(req, "X-REQUEST-ID"), "mixed",
			    zc_req_header(req, "X-Request-Id"), "ctype",
			    zc_req_header(req, "Content-Type"), "missing",
			    zc_req_header(req, "X-Missing"));
}

/* ---- helpers ---- */

/* Status of method target on app, and (if want_route) the route label. */
static void
expect_route(zc_app *app, const char *method, const char *target,
	     const char *want_route)
{
	zc_res *res = zc_test_request(app, method, target, NULL, NULL);
	json_t *v;

	ck_assert_ptr_nonnull(res);
	ck_assert_msg(zc_res_get_status(res) == 200, "%s %s -> %d, want 200",
		      method, target, zc_res_get_status(res));
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "route")),
			 want_route);
	json_decref(v);
	zc_res_free(res);
}

static void
expect_status(zc_app *app, const char *method, const char *target, int status)
{
	zc_res *res = zc_test_request(app, method, target, NULL, NULL);

	ck_assert_ptr_nonnull(res);
	ck_assert_msg(zc_res_get_status(res) == status, "%s %s -> %d, want %d",
		      method, target, zc_res_get_status(res), status);
	if (status == 404 || status == 405)
		expect_json_error(res, status);
	zc_res_free(res);
}

/* ---- validation ---- */

static int
setup_bad_methods(zc_app *app)
{
	static const char *const bad[] = {
		"",        "get",
		"Get",     "GE T",
		"GET\r\n", "PO-ST",
		"G1",      "ABCDEFGHIJKLMNOP", /* 16 characters: too long */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(zc_route(app, bad[i], "/x", h_ok, NULL) ==
				      ZC_ERR_INVALID,
			      "method \"%s\" accepted", bad[i]);
	ck_assert_int_eq(zc_route(app, NULL, "/x", h_ok, NULL), ZC_ERR_INVALID);
	/* 15 characters is still a method. */
	ck_assert_int_eq(zc_route(app, "ABCDEFGHIJKLMNO", "/x", h_ok, NULL),
			 ZC_OK);
	ck_assert_int_eq(zc_route(app, "PROPFIND", "/x", h_ok, NULL), ZC_OK);
	return 0;
}

START_TEST(test_bad_method)
{
	zc_app *app = zc_test_app(setup_bad_methods);

	ck_assert_ptr_nonnull(app);
	zc_app_free(app);
}
END_TEST

static int
setup_bad_patterns(zc_app *app)
{
	static const char *const bad[] = {
		"",        "x",          "log",    "/a?b",   "/a#b",   "/a b",
		"/a\tb",   "/a\r\nb",    "//",     "/a//b",  "//a",    "/{}",
		"/{",      "/}",         "/{id",   "/id}",   "/a{id}", "/{id}x",
		"/x{id}y", "/{i{d}",     "/{i}d}", "/{a-b}", "/{a b}", "/{a.b}",
		"/{{id}}", "/a/{id}/{}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(zc_route(app, "GET", bad[i], h_ok, NULL) ==
				      ZC_ERR_INVALID,
			      "pattern \"%s\" accepted", bad[i]);
	ck_assert_int_eq(zc_route(app, "GET", NULL, h_ok, NULL),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_route(app, "GET", "/ok", NULL, NULL),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_route(NULL, "GET", "/ok", h_ok, NULL),
			 ZC_ERR_INVALID);

	/* What is valid: */
	ck_assert_int_eq(zc_route(app, "GET", "/", h_ok, NULL), ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/a/", h_ok, NULL), ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/{Id_9}", h_ok, NULL), ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/a-b.c~d/{x}/e", h_ok, NULL),
			 ZC_OK);
	return 0;
}

START_TEST(test_bad_pattern)
{
	zc_app *app = zc_test_app(setup_bad_patterns);

	ck_assert_ptr_nonnull(app);
	zc_app_free(app);
}
END_TEST

static int
setup_param_limits(zc_app *app)
{
	char pat[512];
	int i, n;

	/* ZC_MAX_PARAMS (8) parameters is the limit ... */
	n = 0;
	for (i = 0; i < 8; i++)
		n += snprintf(pat + n, sizeof(pat) - (size_t)n, "/{p%d}", i);
	ck_assert_int_eq(zc_route(app, "GET", pat, h_ok, NULL), ZC_OK);
	/* ... and nine is one too many. */
	n = 0;
	for (i = 0; i < 9; i++)
		n += snprintf(pat + n, sizeof(pat) - (size_t)n, "/{p%d}", i);
	ck_assert_int_eq(zc_route(app, "POST", pat, h_ok, NULL),
			 ZC_ERR_INVALID);

	/* 32 segments fit; 33 do not. */
	n = 0;
	for (i = 0; i < 32; i++)
		n += snprintf(pat + n, sizeof(pat) - (size_t)n, "/s");
	ck_assert_int_eq(zc_route(app, "GET", pat, h_echo, "deep"), ZC_OK);
	snprintf(pat + n, sizeof(pat) - (size_t)n, "/s");
	ck_assert_int_eq(zc_route(app, "PUT", pat, h_ok, NULL), ZC_ERR_INVALID);
	return 0;
}

START_TEST(test_param_and_segment_limits)
{
	char target[512];
	zc_app *app = zc_test_app(setup_param_limits);
	int i, n = 0;

	ck_assert_ptr_nonnull(app);
	for (i = 0; i < 32; i++)
		n += snprintf(target + n, sizeof(target) - (size_t)n, "/s");
	expect_route(app, "GET", target, "deep");
	/* A request path with more segments than any route can have. */
	snprintf(target + n, sizeof(target) - (size_t)n, "/s");
	expect_status(app, "GET", target, 404);
	for (i = 0; i < 100; i++)
		n += snprintf(target + n, sizeof(target) - (size_t)n, "/s");
	expect_status(app, "GET", target, 404);
	zc_app_free(app);
}
END_TEST

static int
setup_duplicates(zc_app *app)
{
	ck_assert_int_eq(zc_route(app, "GET", "/a", h_ok, NULL), ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/a", h_ok, NULL),
			 ZC_ERR_INVALID);
	/* Another method on the same path is not a duplicate. */
	ck_assert_int_eq(zc_route(app, "POST", "/a", h_ok, NULL), ZC_OK);
	/* "/a/" is a different path from "/a". */
	ck_assert_int_eq(zc_route(app, "GET", "/a/", h_ok, NULL), ZC_OK);

	ck_assert_int_eq(zc_route(app, "GET", "/u/{id}", h_ok, NULL), ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/u/{id}", h_ok, NULL),
			 ZC_ERR_INVALID);
	/* Same shape, different parameter name: still ambiguous. */
	ck_assert_int_eq(zc_route(app, "GET", "/u/{name}", h_ok, NULL),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_route(app, "GET", "/u/{a}/t/{b}", h_ok, NULL),
			 ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/u/{x}/t/{y}", h_ok, NULL),
			 ZC_ERR_INVALID);
	/* A literal where the other has a parameter is a different shape. */
	ck_assert_int_eq(zc_route(app, "GET", "/u/me", h_ok, NULL), ZC_OK);
	ck_assert_int_eq(zc_route(app, "GET", "/u/{a}/t/last", h_ok, NULL),
			 ZC_OK);
	ck_assert_int_eq(zc_route(app, "DELETE", "/u/{name}", h_ok, NULL),
			 ZC_OK);
	return 0;
}

START_TEST(test_duplicates)
{
	zc_app *app = zc_test_app(setup_duplicates);

	ck_assert_ptr_nonnull(app);
	zc_app_free(app);
}
END_TEST

/* ---- matching ---- */

static int
setup_api(zc_app *app)
{
	if (zc_route(app, "GET", "/", h_echo, "root") ||
	    zc_route(app, "GET", "/accounts/{id}", h_echo, "account") ||
	    zc_route(app, "GET", "/accounts/me", h_echo, "me") ||
	    zc_route(app, "DELETE", "/accounts/{id}", h_echo, "delete") ||
	    zc_route(app, "POST", "/accounts", h_echo, "create") ||
	    zc_route(app, "GET", "/accounts/{id}/tx/{tx}", h_echo, "tx") ||
	    zc_route(app, "GET", "/accounts/{id}/tx/latest", h_echo,
		     "latest") ||
	    zc_route(app, "GET", "/slash/", h_echo, "slash") ||
	    zc_route(app, "GET", "/noslash", h_echo, "noslash") ||
	    zc_route(app, "POST", "/log", h_echo, "log") ||
	    zc_route(app, "GET", "/q", h_query, NULL) ||
	    zc_route(app, "GET", "/h", h_headers, NULL))
		return -1;
	return 0;
}

START_TEST(test_exact_and_params)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;
	json_t *v;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/accounts/42/tx/7", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "route")), "tx");
	ck_assert_str_eq(json_string_value(json_object_get(v, "method")),
			 "GET");
	ck_assert_str_eq(json_string_value(json_object_get(v, "path")),
			 "/accounts/42/tx/7");
	ck_assert_str_eq(json_string_value(json_object_get(v, "id")), "42");
	ck_assert_str_eq(json_string_value(json_object_get(v, "tx")), "7");
	/* A name the route does not have. */
	ck_assert(json_is_null(json_object_get(v, "name")));
	json_decref(v);
	zc_res_free(res);

	expect_route(app, "POST", "/accounts", "create");
	expect_route(app, "DELETE", "/accounts/9", "delete");
	expect_route(app, "POST", "/log", "log");
	expect_status(app, "GET", "/accounts/42/tx", 404);
	expect_status(app, "GET", "/acc", 404);
	expect_status(app, "GET", "/Accounts/42", 404); /* case-sensitive */
	zc_app_free(app);
}
END_TEST

START_TEST(test_param_values)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;
	json_t *v;

	ck_assert_ptr_nonnull(app);
	/* Parameters take the whole segment, dots and all. */
	res = zc_test_request(app, "GET", "/accounts/a.b-c_d~e:f@g", NULL,
			      NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "id")),
			 "a.b-c_d~e:f@g");
	json_decref(v);
	zc_res_free(res);
	/* A parameter is never empty. */
	expect_status(app, "GET", "/accounts/", 404);
	expect_status(app, "GET", "/accounts//tx/1", 404);
	zc_app_free(app);
}
END_TEST

START_TEST(test_literal_beats_param)
{
	zc_app *app = zc_test_app(setup_api);

	ck_assert_ptr_nonnull(app);
	/* /accounts/me was registered after /accounts/{id}: order does not
	 * matter, the literal wins. */
	expect_route(app, "GET", "/accounts/me", "me");
	expect_route(app, "GET", "/accounts/mee", "account");
	expect_route(app, "GET", "/accounts/42/tx/latest", "latest");
	expect_route(app, "GET", "/accounts/42/tx/first", "tx");
	/* DELETE has only the param route: "me" is just a value there. */
	expect_route(app, "DELETE", "/accounts/me", "delete");
	zc_app_free(app);
}
END_TEST

START_TEST(test_404_json)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/nowhere", NULL, NULL);
	expect_json_error(res, 404);
	ck_assert_ptr_null(zc_res_get_header(res, "Allow"));
	zc_res_free(res);
	/* Any method on an unknown path is a 404, not a 405. */
	res = zc_test_request(app, "PATCH", "/nowhere", NULL, NULL);
	expect_json_error(res, 404);
	zc_res_free(res);
	res = zc_test_request(app, "OPTIONS", "/nowhere", NULL, NULL);
	expect_json_error(res, 404);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_405_allow)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "PUT", "/accounts/42", NULL, NULL);
	expect_json_error(res, 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"),
			 "GET, HEAD, DELETE, OPTIONS");
	/* Headers are looked up case-insensitively. */
	ck_assert_str_eq(zc_res_get_header(res, "allow"),
			 "GET, HEAD, DELETE, OPTIONS");
	zc_res_free(res);

	/* POST-only: no HEAD in Allow, and HEAD itself is refused. */
	res = zc_test_request(app, "GET", "/log", NULL, NULL);
	expect_json_error(res, 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	res = zc_test_request(app, "HEAD", "/log", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);

	/* /accounts/me: GET from two routes, listed once. */
	res = zc_test_request(app, "POST", "/accounts/me", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"),
			 "GET, HEAD, DELETE, OPTIONS");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_options)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;
	size_t len;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "OPTIONS", "/accounts/42", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"),
			 "GET, HEAD, DELETE, OPTIONS");
	zc_res_get_body(res, &len);
	ck_assert_uint_eq(len, 0);
	zc_res_free(res);

	res = zc_test_request(app, "OPTIONS", "/log", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_head_on_get)
{
	zc_app *app = zc_test_app(setup_api);

	ck_assert_ptr_nonnull(app);
	expect_route(app, "HEAD", "/accounts/42", "account");
	expect_route(app, "HEAD", "/accounts/me", "me");
	expect_route(app, "HEAD", "/", "root");
	zc_app_free(app);
}
END_TEST

static int
h_head(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	zc_res_status(res, 200);
	return zc_res_header(res, "X-Route", "head");
}

static int
setup_explicit_head(zc_app *app)
{
	if (zc_route(app, "GET", "/r", h_echo, "get") ||
	    zc_route(app, "HEAD", "/r", h_head, NULL))
		return -1;
	return 0;
}

START_TEST(test_explicit_head_beats_get)
{
	zc_app *app = zc_test_app(setup_explicit_head);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "HEAD", "/r", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "X-Route"), "head");
	zc_res_free(res);
	expect_route(app, "GET", "/r", "get");
	res = zc_test_request(app, "PUT", "/r", NULL, NULL);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "GET, HEAD, OPTIONS");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_trailing_slash)
{
	zc_app *app = zc_test_app(setup_api);

	ck_assert_ptr_nonnull(app);
	expect_route(app, "GET", "/slash/", "slash");
	expect_status(app, "GET", "/slash", 404);
	expect_route(app, "GET", "/noslash", "noslash");
	expect_status(app, "GET", "/noslash/", 404);
	expect_status(app, "GET", "/accounts/42/", 404);
	expect_status(app, "POST", "/accounts/", 404);
	zc_app_free(app);
}
END_TEST

static int
setup_no_root(zc_app *app)
{
	return zc_route(app, "GET", "/x", h_echo, "x");
}

START_TEST(test_root)
{
	zc_app *app = zc_test_app(setup_api);

	ck_assert_ptr_nonnull(app);
	expect_route(app, "GET", "/", "root");
	expect_route(app, "GET", "/?a=b", "root");
	zc_app_free(app);

	app = zc_test_app(setup_no_root);
	ck_assert_ptr_nonnull(app);
	expect_status(app, "GET", "/", 404);
	expect_route(app, "GET", "/x", "x");
	zc_app_free(app);
}
END_TEST

START_TEST(test_query)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;
	json_t *v;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/q?x=1&y=two&x=3&flag&empty=", NULL,
			      NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	/* The first value of a repeated key. */
	ck_assert_str_eq(json_string_value(json_object_get(v, "x")), "1");
	ck_assert_str_eq(json_string_value(json_object_get(v, "y")), "two");
	ck_assert_str_eq(json_string_value(json_object_get(v, "flag")), "");
	ck_assert_str_eq(json_string_value(json_object_get(v, "empty")), "");
	ck_assert(json_is_null(json_object_get(v, "missing")));
	json_decref(v);
	zc_res_free(res);

	/* No query at all, and the query is not part of the path. */
	res = zc_test_request(app, "GET", "/q", NULL, NULL);
	v = body_json(res);
	ck_assert(json_is_null(json_object_get(v, "x")));
	json_decref(v);
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/accounts/7?id=9", NULL, NULL);
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "id")), "7");
	ck_assert_str_eq(json_string_value(json_object_get(v, "path")),
			 "/accounts/7");
	json_decref(v);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

/*
 * zc_test_request decodes the target as libmicrohttpd decodes a real
 * request's: %XX in the path and query, '+' as a space in the query.
 */
START_TEST(test_target_decoded_like_server)
{
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;
	json_t *v;

	ck_assert_ptr_nonnull(app);
	expect_status(app, "POST", "/lo%67", 200);
	res = zc_test_request(app, "GET", "/accounts/a%20b", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "id")), "a b");
	json_decref(v);
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/q?x=a%20b&y=c+d", NULL, NULL);
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "x")), "a b");
	ck_assert_str_eq(json_string_value(json_object_get(v, "y")), "c d");
	json_decref(v);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_headers_case_insensitive)
{
	static const char *const hdrs[] = {
		"x-request-id: abc-123",
		"Content-Type:application/json",
		NULL,
	};
	zc_app *app = zc_test_app(setup_api);
	zc_res *res;
	json_t *v;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/h", hdrs, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "lower")),
			 "abc-123");
	ck_assert_str_eq(json_string_value(json_object_get(v, "upper")),
			 "abc-123");
	ck_assert_str_eq(json_string_value(json_object_get(v, "mixed")),
			 "abc-123");
	ck_assert_str_eq(json_string_value(json_object_get(v, "ctype")),
			 "application/json");
	ck_assert(json_is_null(json_object_get(v, "missing")));
	json_decref(v);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

static Suite *
router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("register");

	tcase_add_test(tc, test_bad_method);
	tcase_add_test(tc, test_bad_pattern);
	tcase_add_test(tc, test_param_and_segment_limits);
	tcase_add_test(tc, test_duplicates);
	suite_add_tcase(s, tc);

	tc = tcase_create("match");
	tcase_add_test(tc, test_exact_and_params);
	tcase_add_test(tc, test_param_values);
	tcase_add_test(tc, test_literal_beats_param);
	tcase_add_test(tc, test_404_json);
	tcase_add_test(tc, test_405_allow);
	tcase_add_test(tc, test_options);
	tcase_add_test(tc, test_head_on_get);
	tcase_add_test(tc, test_explicit_head_beats_get);
	tcase_add_test(tc, test_trailing_slash);
	tcase_add_test(tc, test_root);
	tcase_add_test(tc, test_query);
	tcase_add_test(tc, test_headers_case_insensitive);
	tcase_add_test(tc, test_target_decoded_like_server);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(router_suite());
}
