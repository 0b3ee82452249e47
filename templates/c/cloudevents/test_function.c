/*
 * test_function.c - Check tests for function.c.  zc_test_app() builds the
 * app from zc_function_setup() and zc_test_request() runs one request
 * through the same event parsing, routing and error handling as the
 * server, with no socket.  This file has its own main(), so the library's
 * is not used.
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

/* A binary-mode event, as a Broker delivers it: attributes in ce-*
 * headers, the data in the body. */
static zc_res *
deliver(const char *type, const char *body, int prefer_reply)
{
	char type_header[128];
	const char *headers[] = {
		"ce-specversion: 1.0",
		"ce-id: 42",
		"ce-source: /my/test",
		type_header,
		"Content-Type: application/json",
		prefer_reply ? "Prefer: reply" : NULL,
		NULL,
	};
	zc_res *res;

	strcpy(type_header, "ce-type: ");
	strcat(type_header, type);
	res = zc_test_request(app, "POST", "/", headers, body);
	ck_assert_ptr_nonnull(res);
	return res;
}

START_TEST(greeting_replied_when_asked)
{
	zc_res *res = deliver("com.example.greeting.requested",
			      "{\"name\":\"Ada\"}", 1);

	ck_assert_int_eq(zc_res_get_status(res), 200);
	/* the reply is an event in binary mode */
	ck_assert_str_eq(zc_res_get_header(res, "ce-type"),
			 "com.example.greeting.created");
	ck_assert_str_eq(zc_res_get_header(res, "ce-specversion"), "1.0");
	ck_assert_ptr_nonnull(zc_res_get_header(res, "ce-id"));
	ck_assert_ptr_nonnull(zc_res_get_header(res, "ce-source"));
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"message\":\"Hello, Ada!\"}");
	zc_res_free(res);
}
END_TEST

START_TEST(greeting_accepted_when_no_reply_asked)
{
	zc_res *res = deliver("com.example.greeting.requested",
			      "{\"name\":\"Ada\"}", 0);

	ck_assert_int_eq(zc_res_get_status(res), 202);
	ck_assert_ptr_null(zc_res_get_header(res, "ce-type"));
	zc_res_free(res);
}
END_TEST

START_TEST(structured_mode)
{
	static const char *const headers[] = {
		"Content-Type: application/cloudevents+json", "Prefer: reply",
		NULL};
	zc_res *res = zc_test_request(
		app, "POST", "/", headers,
		"{\"specversion\":\"1.0\",\"id\":\"7\",\"source\":\"/s\","
		"\"type\":\"com.example.greeting.requested\","
		"\"data\":{\"name\":\"Grace\"}}");

	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"message\":\"Hello, Grace!\"}");
	zc_res_free(res);
}
END_TEST

START_TEST(bad_data_is_400)
{
	zc_res *res = deliver("com.example.greeting.requested", "{}", 1);

	ck_assert_int_eq(zc_res_get_status(res), 400);
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"error\":\"missing field \\\"name\\\"\"}\n");
	zc_res_free(res);
}
END_TEST

START_TEST(malformed_event_is_400_naming_the_attribute)
{
	static const char *const headers[] = {
		"ce-specversion: 1.0", "ce-source: /s",
		"ce-type: com.example.greeting.requested", NULL};
	zc_res *res = zc_test_request(app, "POST", "/", headers, NULL);

	ck_assert_int_eq(zc_res_get_status(res), 400);
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"error\":\"missing required attribute id\","
			 "\"attribute\":\"id\"}\n");
	zc_res_free(res);
}
END_TEST

START_TEST(other_types_accepted_unhandled)
{
	zc_res *res = deliver("com.example.other", "{}", 1);

	ck_assert_int_eq(zc_res_get_status(res), 202);
	zc_res_free(res);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("function");
	TCase *tc = tcase_create("events");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, greeting_replied_when_asked);
	tcase_add_test(tc, greeting_accepted_when_no_reply_asked);
	tcase_add_test(tc, structured_mode);
	tcase_add_test(tc, bad_data_is_400);
	tcase_add_test(tc, malformed_event_is_400_naming_the_attribute);
	tcase_add_test(tc, other_types_accepted_unhandled);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
