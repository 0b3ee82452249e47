/*
 * test_function.c - Check tests for function.c.  zc_test_app() builds the
 * app from zc_function_setup() and zc_test_request() runs one request
 * through the same event parsing, routing and error handling as the
 * server, with no socket.  This file has its own main(), so the library's
 * is not used.
 */
#include <check.h>
#include <stdio.h>
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

/*
 * A binary-mode event (attributes in ce-* headers, the data in the body),
 * as `func invoke` sends one to a "cloudevent" function: knative/func
 * @c18d604, pkg/functions/invoke.go, the defaults on lines 19-25 (source
 * /boson/fn, type boson.fn, content type application/json, data
 * {"message":"Hello World"}, a uuid id: NewInvokeMessage, line 44) and
 * sendEvent, lines 167-191 (the CloudEvents Go SDK's client, whose default
 * encoding is binary mode; it sends no "Prefer: reply").  Go's HTTP client
 * adds User-Agent and Accept-Encoding.
 */
static zc_res *
deliver(const char *type, const char *ctype, const char *body)
{
	char type_header[128], ctype_header[128];
	const char *headers[] = {
		"User-Agent: Go-http-client/1.1",
		"Ce-Id: 5f4b1c43-1a7e-4d6b-9d7a-0c1e2f3a4b5c",
		"Ce-Source: /boson/fn",
		"Ce-Specversion: 1.0",
		type_header,
		ctype_header,
		"Accept-Encoding: gzip",
		NULL,
	};
	zc_res *res;

	snprintf(type_header, sizeof(type_header), "Ce-Type: %s", type);
	snprintf(ctype_header, sizeof(ctype_header), "Content-Type: %s", ctype);
	res = zc_test_request(app, "POST", "/", headers, body);
	ck_assert_ptr_nonnull(res);
	return res;
}

/* A reply event in binary mode, with the given data. */
static void
expect_reply(zc_res *res, const char *ctype, const char *data)
{
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "ce-type"),
			 "function.response");
	ck_assert_str_eq(zc_res_get_header(res, "ce-specversion"), "1.0");
	ck_assert_ptr_nonnull(zc_res_get_header(res, "ce-id"));
	ck_assert_ptr_nonnull(zc_res_get_header(res, "ce-source"));
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"), ctype);
	ck_assert_str_eq(zc_res_get_body(res, NULL), data);
}

START_TEST(func_invoke_default_event)
{
	zc_res *res = deliver("boson.fn", "application/json",
			      "{\"message\":\"Hello World\"}");

	expect_reply(res, "application/json", "{\"message\":\"Hello World\"}");
	zc_res_free(res);
}
END_TEST

/* A Broker delivers in binary or structured mode and asks for the reply. */
START_TEST(structured_mode_from_a_broker)
{
	static const char *const headers[] = {
		"Content-Type: application/cloudevents+json", "Prefer: reply",
		NULL};
	zc_res *res = zc_test_request(
		app, "POST", "/", headers,
		"{\"specversion\":\"1.0\",\"id\":\"7\",\"source\":\"/s\","
		"\"type\":\"com.example.order\","
		"\"datacontenttype\":\"application/json\","
		"\"data\":{\"order\":42}}");

	ck_assert_ptr_nonnull(res);
	expect_reply(res, "application/json", "{\"order\":42}");
	zc_res_free(res);
}
END_TEST

START_TEST(other_data_echoed_with_its_content_type)
{
	zc_res *res = deliver("com.example.note", "text/plain", "hi");

	expect_reply(res, "text/plain", "hi");
	zc_res_free(res);
}
END_TEST

/* Checked by the runtime before the handler runs; a Broker does not
 * retry a 400. */
START_TEST(bad_json_data_is_400)
{
	zc_res *res = deliver("boson.fn", "application/json", "{nope");

	ck_assert_int_eq(zc_res_get_status(res), 400);
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"error\":\"data is not the JSON its Content-Type "
			 "declares\",\"attribute\":\"data\"}\n");
	zc_res_free(res);
}
END_TEST

START_TEST(malformed_event_is_400_naming_the_attribute)
{
	static const char *const headers[] = {"ce-specversion: 1.0",
					      "ce-source: /s",
					      "ce-type: boson.fn", NULL};
	zc_res *res = zc_test_request(app, "POST", "/", headers, NULL);

	ck_assert_int_eq(zc_res_get_status(res), 400);
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"error\":\"missing required attribute id\","
			 "\"attribute\":\"id\"}\n");
	zc_res_free(res);
}
END_TEST

/* Our own reply coming back through a Broker: accepted, not answered. */
START_TEST(own_reply_type_accepted_without_reply)
{
	zc_res *res = deliver("function.response", "application/json",
			      "{\"message\":\"Hello World\"}");

	ck_assert_int_eq(zc_res_get_status(res), 202);
	ck_assert_ptr_null(zc_res_get_header(res, "ce-type"));
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
	tcase_add_test(tc, func_invoke_default_event);
	tcase_add_test(tc, structured_mode_from_a_broker);
	tcase_add_test(tc, other_data_echoed_with_its_content_type);
	tcase_add_test(tc, bad_json_data_is_400);
	tcase_add_test(tc, malformed_event_is_400_naming_the_attribute);
	tcase_add_test(tc, own_reply_type_accepted_without_reply);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
