/*
 * test_function.c - Check tests for function.c.  zc_test_app() builds the
 * app from zc_function_setup() and zc_test_request() runs one request
 * through the same routing and error handling as the server, with no
 * socket.  This file has its own main(), so the library's is not used.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zenith.h>

static zc_app *app;

static void
setup(void)
{
	app = zc_test_app(zc_function_setup);
	ck_assert_ptr_nonnull(app);
}

static void
teardown(void)
{
	zc_app_free(app);
}

/* Run one request and check its status and exact body. */
static void
expect(const char *method, const char *target, const char *body, int status,
       const char *answer)
{
	static const char *const json[] = {"Content-Type: application/json",
					   NULL};
	zc_res *res = zc_test_request(app, method, target,
				      body != NULL ? json : NULL, body);

	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(zc_res_get_status(res), status);
	ck_assert_str_eq(zc_res_get_body(res, NULL), answer);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	zc_res_free(res);
}

/*
 * The requests `func invoke` sends to an "http" function, built as func
 * builds them (knative/func @c18d604, pkg/functions/invoke.go: the
 * defaults on lines 19-25, DefaultInvokeData `{"message":"Hello World"}`
 * and Content-Type application/json; sendHttp, lines 274-279: the method
 * (POST, or GET with --request-type GET, body and all) on the route, which
 * is "http://localhost:<port>/" (pkg/functions/instances.go line 63); Go's
 * client adds the User-Agent and Accept-Encoding below).  Any status above
 * 299 is a failed invoke (invoke.go line 287).
 */
static const char *const func_invoke_headers[] = {
	"User-Agent: Go-http-client/1.1",
	"Content-Length: 25",
	"Content-Type: application/json",
	"Accept-Encoding: gzip",
	NULL,
};
#define FUNC_INVOKE_DATA "{\"message\":\"Hello World\"}"

static void
expect_invoke(const char *method)
{
	zc_res *res = zc_test_request(app, method, "/", func_invoke_headers,
				      FUNC_INVOKE_DATA);

	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_body(res, NULL), FUNC_INVOKE_DATA "\n");
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	zc_res_free(res);
}

START_TEST(func_invoke_post)
{
	expect_invoke("POST");
}
END_TEST

START_TEST(func_invoke_get)
{
	expect_invoke("GET");
}
END_TEST

START_TEST(root_get_without_body)
{
	expect("GET", "/", NULL, 200, "{\"message\":\"OK\"}\n");
}
END_TEST

START_TEST(root_post_not_json)
{
	zc_res *res = zc_test_request(app, "POST", "/", NULL, "hi");

	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(zc_res_get_status(res), 400);
	ck_assert_ptr_nonnull(
		strstr(zc_res_get_body(res, NULL), "\"invalid JSON"));
	zc_res_free(res);
}
END_TEST

START_TEST(hello_default)
{
	expect("GET", "/hello", NULL, 200, "{\"message\":\"Hello, world!\"}\n");
}
END_TEST

START_TEST(hello_name)
{
	expect("GET", "/hello?name=Ada", NULL, 200,
	       "{\"message\":\"Hello, Ada!\"}\n");
}
END_TEST

START_TEST(hello_name_decoded)
{
	/* '+' and %XX are decoded, as the server decodes them */
	expect("GET", "/hello?name=Ada+Lovelace%21", NULL, 200,
	       "{\"message\":\"Hello, Ada Lovelace!!\"}\n");
}
END_TEST

START_TEST(hello_name_too_long)
{
	char target[128];

	memset(target, 0, sizeof(target));
	strcpy(target, "/hello?name=");
	memset(target + strlen(target), 'x', 65);
	expect("GET", target, NULL, 400,
	       "{\"error\":\"name must be at most 64 bytes\"}\n");
}
END_TEST

START_TEST(echo_message)
{
	expect("POST", "/echo", "{\"message\":\"hi\"}", 200,
	       "{\"echo\":\"hi\",\"bytes\":2}\n");
}
END_TEST

START_TEST(echo_missing_field)
{
	expect("POST", "/echo", "{}", 400,
	       "{\"error\":\"missing field \\\"message\\\"\"}\n");
}
END_TEST

START_TEST(echo_wrong_type)
{
	expect("POST", "/echo", "{\"message\":1}", 400,
	       "{\"error\":\"field \\\"message\\\" must be a string\"}\n");
}
END_TEST

START_TEST(echo_not_json)
{
	zc_res *res = zc_test_request(app, "POST", "/echo", NULL, "hi");

	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(zc_res_get_status(res), 400);
	ck_assert_ptr_nonnull(
		strstr(zc_res_get_body(res, NULL), "\"invalid JSON"));
	zc_res_free(res);
}
END_TEST

START_TEST(wrong_method_and_unknown_path)
{
	zc_res *res = zc_test_request(app, "GET", "/echo", NULL, NULL);

	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(zc_res_get_status(res), 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	expect("GET", "/nope", NULL, 404,
	       "{\"error\":\"no route for GET /nope\"}\n");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("function");
	TCase *tc = tcase_create("handlers");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, func_invoke_post);
	tcase_add_test(tc, func_invoke_get);
	tcase_add_test(tc, root_get_without_body);
	tcase_add_test(tc, root_post_not_json);
	tcase_add_test(tc, hello_default);
	tcase_add_test(tc, hello_name);
	tcase_add_test(tc, hello_name_decoded);
	tcase_add_test(tc, hello_name_too_long);
	tcase_add_test(tc, echo_message);
	tcase_add_test(tc, echo_missing_field);
	tcase_add_test(tc, echo_wrong_type);
	tcase_add_test(tc, echo_not_json);
	tcase_add_test(tc, wrong_method_and_unknown_path);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
