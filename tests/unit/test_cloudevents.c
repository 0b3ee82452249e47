/*
 * test_cloudevents.c - receiving CloudEvents through zc_test_request: binary
 * mode (ce-* headers, percent-decoding), structured mode (data,
 * data_base64), batch mode, every 400/415 path, routing by type, replies
 * with and without Prefer: reply, duplicate detection on idempotent event
 * routes, and the event builder.  Sending is in test_ce_emit.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zenith.h"

/* What the last handler call saw (copied: the event is borrowed). */
#define MAX_SEEN 16
static struct seen {
	char attrs[32][2][256];
	int nattrs;
	char data[1024];
	size_t len;
	char json[1024]; /* compact dump of zc_event_json, "" when NULL */
	char route[32];
} seen[MAX_SEEN];
static int calls;

enum behaviour {
	B_ACCEPT,     /* sets nothing: 202 */
	B_REPLY,      /* replies with a com.example.reply event */
	B_FAIL_503,   /* answers 503 for events whose subject is "fail" */
	B_RETURN_ERR, /* returns -1 */
	B_STATUS_200, /* sets 200 with a JSON body */
};

struct route_arg {
	const char *name;
	enum behaviour b;
};

static void
record(const zc_event *ev, const char *route)
{
	struct seen *s;
	size_t i, n;
	const char *name, *value, *d;
	json_t *j;
	char *dump;

	if (calls >= MAX_SEEN) {
		calls++;
		return;
	}
	s = &seen[calls++];
	memset(s, 0, sizeof(*s));
	snprintf(s->route, sizeof(s->route), "%s", route);
	n = zc_event_attr_count(ev);
	for (i = 0; i < n && i < 32; i++) {
		name = zc_event_attr_at(ev, i, &value);
		snprintf(s->attrs[i][0], 256, "%s", name);
		snprintf(s->attrs[i][1], 256, "%s", value);
	}
	s->nattrs = (int)i;
	ck_assert_ptr_null(zc_event_attr_at(ev, n, &value));
	ck_assert_ptr_null(value);
	d = zc_event_data(ev, &s->len);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_lt(s->len, sizeof(s->data));
	memcpy(s->data, d, s->len);
	j = zc_event_json(ev);
	if (j != NULL) {
		dump = zc_json_dumps(j);
		snprintf(s->json, sizeof(s->json), "%s", dump);
		free(dump);
	}
}

/* The value of attribute name in a recorded call, or NULL. */
static const char *
seen_attr(int call, const char *name)
{
	int i;

	for (i = 0; i < seen[call].nattrs; i++)
		if (strcmp(seen[call].attrs[i][0], name) == 0)
			return seen[call].attrs[i][1];
	return NULL;
}

static int
on_event(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	const struct route_arg *ra = arg;
	zc_event *reply;
	const char *subject = zc_event_subject(ev);

	ck_assert_ptr_nonnull(req);
	ck_assert_str_eq(zc_event_attr(ev, "specversion"), "1.0");
	record(ev, ra->name);
	switch (ra->b) {
	case B_ACCEPT:
		return 0;
	case B_REPLY:
		reply = zc_event_new("com.example.reply");
		ck_assert_ptr_nonnull(reply);
		ck_assert_int_eq(
			zc_event_set(reply, "subject", "Euro € \"q\" 100%"),
			ZC_OK);
		ck_assert_int_eq(
			zc_event_set_json(reply, json_pack("{s:s}", "got",
							   zc_event_id(ev))),
			ZC_OK);
		ck_assert_int_eq(zc_res_event(res, reply), ZC_OK);
		zc_event_free(reply);
		return 0;
	case B_FAIL_503:
		if (subject != NULL && strcmp(subject, "fail") == 0) {
			zc_res_header(res, "Retry-After", "7");
			return zc_res_error(res, 503, "store unavailable");
		}
		return 0;
	case B_RETURN_ERR:
		return -1;
	case B_STATUS_200:
		return zc_res_jsonf(res, 200, "{s:s}", "status", "done");
	}
	return -1;
}

static struct route_arg any_accept = {"any", B_ACCEPT};
static struct route_arg created_accept = {"created", B_ACCEPT};
static struct route_arg reply_route = {"reply", B_REPLY};
static struct route_arg fail_route = {"fail", B_FAIL_503};
static struct route_arg err_route = {"err", B_RETURN_ERR};
static struct route_arg status_route = {"status", B_STATUS_200};
static struct route_arg once_route = {"once", B_ACCEPT};
static struct route_arg once_reply_route = {"oncereply", B_REPLY};

static int
h_http(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_jsonf(res, 200, "{s:s}", "http", "yes");
}

/* The app under test: one path of each kind. */
static int
setup_app(zc_app *app)
{
	if (zc_event_route(app, "/", on_event, &any_accept, NULL) ||
	    zc_event_route(
		    app, "/", on_event, &created_accept,
		    &(zc_route_opts){.event_type = "com.example.created"}) ||
	    zc_event_route(
		    app, "/", on_event, &reply_route,
		    &(zc_route_opts){.event_type = "com.example.replyme"}) ||
	    zc_event_route(
		    app, "/", on_event, &fail_route,
		    &(zc_route_opts){.event_type = "com.example.fails"}) ||
	    zc_event_route(app, "/", on_event, &err_route,
			   &(zc_route_opts){.event_type = "com.example.err"}) ||
	    zc_event_route(
		    app, "/", on_event, &status_route,
		    &(zc_route_opts){.event_type = "com.example.status"}) ||
	    zc_event_route(app, "/replying", on_event, &reply_route,
			   &(zc_route_opts){.flags = ZC_ROUTE_REPLYING}) ||
	    zc_event_route(
		    app, "/typed", on_event, &created_accept,
		    &(zc_route_opts){.event_type = "com.example.only"}) ||
	    zc_event_route(
		    app, "/once", on_event, &once_route,
		    &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT,
				     .event_type = "com.example.once"}) ||
	    zc_event_route(
		    app, "/once", on_event, &once_reply_route,
		    &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT,
				     .event_type = "com.example.oncereply"}) ||
	    zc_route(app, "GET", "/", h_http, NULL))
		return -1;
	return 0;
}

static zc_app *app;

static void
setup(void)
{
	unsetenv("K_SERVICE");
	calls = 0;
	memset(seen, 0, sizeof(seen));
	app = zc_test_app(setup_app);
	ck_assert_ptr_nonnull(app);
}

static void
teardown(void)
{
	zc_app_free(app);
	app = NULL;
}

/* ---- request helpers ---- */
#define BIN_HEADERS(...)                                                       \
	((const char *const[]){"ce-specversion: 1.0", "ce-id: A-1",            \
			       "ce-source: /unit/test", __VA_ARGS__, NULL})

static zc_res *
post(const char *path, const char *const *headers, const char *body)
{
	zc_res *res = zc_test_request(app, "POST", path, headers, body);

	ck_assert_ptr_nonnull(res);
	return res;
}

static zc_res *
structured(const char *path, const char *body)
{
	static const char *const h[] = {
		"Content-Type: application/cloudevents+json; charset=UTF-8",
		NULL};

	return post(path, h, body);
}

static zc_res *
batch(const char *body)
{
	static const char *const h[] = {
		"Content-Type: application/cloudevents-batch+json", NULL};

	return post("/", h, body);
}

static json_t *
body_json(const zc_res *res)
{
	size_t len;
	const char *b = zc_res_get_body(res, &len);
	json_t *j = json_loadb(b, len, 0, NULL);

	ck_assert_msg(j != NULL, "body is not JSON: %.*s", (int)len, b);
	return j;
}

/* A 4xx JSON error naming attr (NULL: no attribute field). */
static void
expect_error(zc_res *res, int status, const char *attr)
{
	json_t *j;
	const char *a;

	ck_assert_msg(zc_res_get_status(res) == status,
		      "expected %d, got %d: %s", status, zc_res_get_status(res),
		      zc_res_get_body(res, NULL));
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	j = body_json(res);
	ck_assert(json_is_string(json_object_get(j, "error")));
	a = json_string_value(json_object_get(j, "attribute"));
	if (attr == NULL)
		ck_assert_ptr_null(a);
	else
		ck_assert_msg(a != NULL && strcmp(a, attr) == 0,
			      "attribute %s expected in %s", attr,
			      zc_res_get_body(res, NULL));
	json_decref(j);
	zc_res_free(res);
}

static void
expect_accepted(zc_res *res)
{
	size_t len;

	ck_assert_msg(zc_res_get_status(res) == 202, "got %d: %s",
		      zc_res_get_status(res), zc_res_get_body(res, NULL));
	zc_res_get_body(res, &len);
	ck_assert_uint_eq(len, 0);
	zc_res_free(res);
}

/* ---- binary mode ---- */
START_TEST(binary_attributes_and_json_data)
{
	zc_res *res = post("/",
			   BIN_HEADERS("ce-type: com.example.created",
				       "ce-subject: ACC-1",
				       "ce-time: 2026-11-27T20:22:43.5Z",
				       "Content-Type: application/json"),
			   "{\"account\":\"ACC-1\",\"amount\":100.50}");

	expect_accepted(res);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(seen[0].route, "created");
	ck_assert_str_eq(seen_attr(0, "id"), "A-1");
	ck_assert_str_eq(seen_attr(0, "source"), "/unit/test");
	ck_assert_str_eq(seen_attr(0, "type"), "com.example.created");
	ck_assert_str_eq(seen_attr(0, "subject"), "ACC-1");
	ck_assert_str_eq(seen_attr(0, "time"), "2026-11-27T20:22:43.5Z");
	ck_assert_str_eq(seen_attr(0, "datacontenttype"), "application/json");
	ck_assert_str_eq(seen[0].data,
			 "{\"account\":\"ACC-1\",\"amount\":100.50}");
	ck_assert_uint_eq(seen[0].len, strlen(seen[0].data));
	ck_assert_str_eq(seen[0].json,
			 "{\"account\":\"ACC-1\",\"amount\":100.5}");
}
END_TEST

START_TEST(binary_header_names_case_insensitive)
{
	static const char *const h[] = {"CE-SpecVersion: 1.0", "Ce-Id: 7",
					"CE-SOURCE: s",        "ce-Type: t.u",
					"Ce-MyExt: v",         NULL};

	expect_accepted(post("/", h, NULL));
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(seen[0].route, "any");
	ck_assert_str_eq(seen_attr(0, "id"), "7");
	ck_assert_str_eq(seen_attr(0, "myext"), "v");
	/* no body, no Content-Type: no data */
	ck_assert_uint_eq(seen[0].len, 0);
	ck_assert_ptr_null(seen_attr(0, "datacontenttype"));
	ck_assert_str_eq(seen[0].json, "");
}
END_TEST

START_TEST(binary_extensions_and_percent_decoding)
{
	zc_res *res =
		post("/",
		     BIN_HEADERS("ce-type: com.example.any",
				 "ce-traceparent: "
				 "00-4bf92f3577b34da6a3ce929d0e0e4736-"
				 "00f067aa0ba902b7-01",
				 "ce-euro: Euro%20%E2%82%AC%20%F0%9F%98%80",
				 "ce-lower: %e2%82%ac%2a",
				 "ce-needless: %41%42C", "ce-onepass: %2541",
				 "ce-quoted: \"a\\\"b%20c\"", "ce-plus: a+b",
				 "Content-Type: text/plain; charset=utf-8"),
		     "hello");

	expect_accepted(res);
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(
		seen_attr(0, "traceparent"),
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
	ck_assert_str_eq(seen_attr(0, "euro"), "Euro € 😀");
	ck_assert_str_eq(seen_attr(0, "lower"), "€*");
	ck_assert_str_eq(seen_attr(0, "needless"), "ABC");
	ck_assert_str_eq(seen_attr(0, "onepass"), "%41"); /* exactly one pass */
	ck_assert_str_eq(seen_attr(0, "quoted"), "a\"b c");
	ck_assert_str_eq(seen_attr(0, "plus"), "a+b");
	ck_assert_str_eq(seen_attr(0, "datacontenttype"),
			 "text/plain; charset=utf-8");
	ck_assert_str_eq(seen[0].data, "hello");
	ck_assert_str_eq(seen[0].json, ""); /* not JSON */
}
END_TEST

START_TEST(binary_structured_suffix_json_is_parsed)
{
	expect_accepted(
		post("/",
		     BIN_HEADERS("ce-type: x",
				 "Content-Type: application/vnd.x+json"),
		     "[1,2]"));
	ck_assert_str_eq(seen[0].json, "[1,2]");
}
END_TEST

START_TEST(binary_missing_required_attributes)
{
	static const char *const no_id[] = {"ce-specversion: 1.0",
					    "ce-source: s", "ce-type: t", NULL};
	static const char *const no_source[] = {"ce-specversion: 1.0",
						"ce-id: 1", "ce-type: t", NULL};
	static const char *const no_type[] = {"ce-specversion: 1.0", "ce-id: 1",
					      "ce-source: s", NULL};
	static const char *const no_sv[] = {"ce-id: 1", "ce-source: s",
					    "ce-type: t", NULL};
	static const char *const sv03[] = {"ce-specversion: 0.3", "ce-id: 1",
					   "ce-source: s", "ce-type: t", NULL};
	static const char *const empty_id[] = {"ce-specversion: 1.0",
					       "ce-id: ", "ce-source: s",
					       "ce-type: t", NULL};
	static const char *const json_only[] = {
		"Content-Type: application/json", NULL};

	expect_error(post("/", no_id, NULL), 400, "id");
	expect_error(post("/", no_source, NULL), 400, "source");
	expect_error(post("/", no_type, NULL), 400, "type");
	expect_error(post("/", no_sv, NULL), 400, "specversion");
	expect_error(post("/", sv03, NULL), 400, "specversion");
	expect_error(post("/", empty_id, NULL), 400, "id");
	/* a plain JSON POST is not an event */
	expect_error(post("/", json_only, "{}"), 400, "specversion");
	ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(binary_invalid_values)
{
	/* overlong encoding of a space: invalid UTF-8, must be rejected */
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %C0%A0"), NULL),
		     400, "x");
	expect_error(
		post("/", BIN_HEADERS("ce-type: t", "ce-x: %ED%A0%80"), NULL),
		400, "x"); /* a surrogate */
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %E2%82"), NULL),
		     400, "x"); /* truncated sequence */
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %0A"), NULL),
		     400, "x"); /* control character */
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %00"), NULL),
		     400, "x");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %C2%85"), NULL),
		     400, "x"); /* C1 control */
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: 100%"), NULL),
		     400, "x");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %4"), NULL),
		     400, "x");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-x: %G1"), NULL),
		     400, "x");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-time: yesterday"),
			  NULL),
		     400, "time");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-subject: "), NULL),
		     400, "subject");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-my_ext: 1"), NULL),
		     400, NULL);
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-: 1"), NULL), 400,
		     NULL);
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-data: 1"), NULL),
		     400, "data");
	expect_error(post("/", BIN_HEADERS("ce-type: t", "ce-Type: u"), NULL),
		     400, "type"); /* given twice */
	expect_error(
		post("/",
		     BIN_HEADERS("ce-type: t", "ce-datacontenttype: text/plain",
				 "Content-Type: text/plain"),
		     "x"),
		400, "datacontenttype");
	expect_error(post("/",
			  BIN_HEADERS("ce-type: t",
				      "Content-Type: application/json"),
			  "{\"a\":"),
		     400, "data");
	expect_error(post("/",
			  BIN_HEADERS("ce-type: t",
				      "Content-Type: application/json"),
			  "{\"a\":1,\"a\":2}"),
		     400, "data"); /* duplicate keys have no one meaning */
	ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(binary_ce_datacontenttype_alone)
{
	/* without a Content-Type, ce-datacontenttype is accepted */
	expect_accepted(
		post("/",
		     BIN_HEADERS("ce-type: t",
				 "ce-datacontenttype: application/json"),
		     "{\"k\":true}"));
	ck_assert_str_eq(seen_attr(0, "datacontenttype"), "application/json");
	ck_assert_str_eq(seen[0].json, "{\"k\":true}");
}
END_TEST

/* ---- structured mode ---- */
START_TEST(structured_json_data_and_extensions)
{
	expect_accepted(structured(
		"/", "{\"specversion\":\"1.0\",\"id\":\"S-1\",\"source\":\"s\","
		     "\"type\":\"com.example.created\",\"subject\":null,"
		     "\"time\":\"2026-01-02T03:04:05+01:00\",\"count\":42,"
		     "\"flag\":true,\"neg\":-7,"
		     "\"data\":{\"b\":[1,\"x\"],\"a\":0.1}}"));
	ck_assert_int_eq(calls, 1);
	ck_assert_str_eq(seen[0].route, "created");
	ck_assert_str_eq(seen_attr(0, "id"), "S-1");
	ck_assert_ptr_null(seen_attr(0, "subject")); /* null is absent */
	ck_assert_str_eq(seen_attr(0, "count"), "42");
	ck_assert_str_eq(seen_attr(0, "flag"), "true");
	ck_assert_str_eq(seen_attr(0, "neg"), "-7");
	/* no datacontenttype: the data is JSON (the attribute stays absent) */
	ck_assert_ptr_null(seen_attr(0, "datacontenttype"));
	ck_assert_str_eq(seen[0].json, "{\"b\":[1,\"x\"],\"a\":0.1}");
	ck_assert_str_eq(seen[0].data, "{\"b\":[1,\"x\"],\"a\":0.1}");
}
END_TEST

START_TEST(structured_string_data)
{
	expect_accepted(structured(
		"/", "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
		     "\"type\":\"t\",\"datacontenttype\":\"text/plain\","
		     "\"data\":\"h\\u00e9llo\"}"));
	ck_assert_str_eq(seen[0].data, "h\xc3\xa9llo");
	ck_assert_str_eq(seen[0].json, "");
	/* a JSON string for JSON data is the JSON value "hi" */
	expect_accepted(structured(
		"/", "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"s\","
		     "\"type\":\"t\",\"data\":\"hi\"}"));
	ck_assert_str_eq(seen[1].data, "\"hi\"");
	ck_assert_str_eq(seen[1].json, "\"hi\"");
}
END_TEST

START_TEST(structured_data_base64)
{
	/* "AAEC/w==" is 00 01 02 ff */
	expect_accepted(structured(
		"/",
		"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
		"\"type\":\"t\",\"datacontenttype\":"
		"\"application/octet-stream\",\"data_base64\":\"AAEC/w==\"}"));
	ck_assert_uint_eq(seen[0].len, 4);
	ck_assert(memcmp(seen[0].data, "\x00\x01\x02\xff", 4) == 0);
	ck_assert_str_eq(seen[0].json, "");
	/* unpadded, and JSON declared: parsed */
	expect_accepted(structured(
		"/", "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"s\","
		     "\"type\":\"t\",\"datacontenttype\":\"application/json\","
		     "\"data_base64\":\"eyJhIjoxfQ\"}"));
	ck_assert_str_eq(seen[1].data, "{\"a\":1}");
	ck_assert_str_eq(seen[1].json, "{\"a\":1}");
	/* data_base64 null is absent */
	expect_accepted(structured(
		"/", "{\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"s\","
		     "\"type\":\"t\",\"data_base64\":null}"));
	ck_assert_uint_eq(seen[2].len, 0);
}
END_TEST

START_TEST(structured_content_type_forms)
{
	static const char *const upper[] = {
		"Content-Type: Application/CloudEvents+JSON", NULL};
	static const char *const xml[] = {
		"Content-Type: application/cloudevents+xml", NULL};
	static const char *const bare[] = {
		"Content-Type: application/cloudevents", NULL};
	static const char *const batch_xml[] = {
		"Content-Type: application/cloudevents-batch+protobuf", NULL};
	const char *ev =
		"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"s\","
		"\"type\":\"t\"}";

	expect_accepted(post("/", upper, ev));
	/* a format other than JSON for the mode: 415 */
	expect_error(post("/", xml, ev), 415, NULL);
	expect_error(post("/", bare, ev), 415, NULL);
	expect_error(post("/", batch_xml, "[]"), 415, NULL);
	ck_assert_int_eq(calls, 1);
}
END_TEST

START_TEST(structured_invalid_events)
{
	const char *base =
		"\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"";
	char b[512];

	expect_error(structured("/", ""), 400, NULL);
	expect_error(structured("/", "{\"specversion\":"), 400, NULL);
	expect_error(structured("/", "[1]"), 400, NULL);
	expect_error(structured("/", "\"x\""), 400, NULL);
	expect_error(structured("/", "{\"specversion\":\"1.0\",\"id\":\"1\","
				     "\"type\":\"t\"}"),
		     400, "source");
	expect_error(structured("/", "{\"specversion\":\"1.0\",\"id\":\"1\","
				     "\"source\":\"s\"}"),
		     400, "type");
	expect_error(structured("/", "{\"id\":\"1\",\"source\":\"s\","
				     "\"type\":\"t\"}"),
		     400, "specversion");
	expect_error(structured("/", "{\"specversion\":\"0.3\",\"id\":\"1\","
				     "\"source\":\"s\",\"type\":\"t\"}"),
		     400, "specversion");
	expect_error(structured("/", "{\"specversion\":1.0,\"id\":\"1\","
				     "\"source\":\"s\",\"type\":\"t\"}"),
		     400, "specversion");
	snprintf(b, sizeof(b), "{%s,\"id\":7}", base);
	expect_error(structured("/", b), 400, "id");
	snprintf(b, sizeof(b), "{%s,\"id\":\"\"}", base);
	expect_error(structured("/", b), 400, "id");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"ext\":{\"a\":1}}", base);
	expect_error(structured("/", b), 400, "ext");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"ext\":1.5}", base);
	expect_error(structured("/", b), 400, "ext");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"Ext\":\"a\"}", base);
	expect_error(structured("/", b), 400, "Ext");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"ext\":\"a\\nb\"}", base);
	expect_error(structured("/", b), 400, "ext");
	snprintf(b, sizeof(b),
		 "{%s,\"id\":\"1\",\"data\":1,\"data_base64\":\"AA==\"}", base);
	expect_error(structured("/", b), 400, "data_base64");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"data_base64\":\"A$==\"}",
		 base);
	expect_error(structured("/", b), 400, "data_base64");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"data_base64\":\"A\"}", base);
	expect_error(structured("/", b), 400, "data_base64");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"data_base64\":5}", base);
	expect_error(structured("/", b), 400, "data_base64");
	snprintf(b, sizeof(b),
		 "{%s,\"id\":\"1\",\"datacontenttype\":\"application/json\","
		 "\"data_base64\":\"bm90IGpzb24=\"}",
		 base);
	expect_error(structured("/", b), 400, "data_base64");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"time\":\"2026-13\"}", base);
	expect_error(structured("/", b), 400, "time");
	snprintf(b, sizeof(b), "{%s,\"id\":\"1\",\"id\":\"2\"}", base);
	expect_error(structured("/", b), 400, NULL); /* duplicate key */
	ck_assert_int_eq(calls, 0);
}
END_TEST

/* ---- batch mode ---- */
START_TEST(batch_calls_the_handler_once_per_event)
{
	expect_accepted(batch(
		"[{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"s\","
		"\"type\":\"com.example.created\",\"data\":{\"n\":1}},"
		"{\"specversion\":\"1.0\",\"id\":\"b2\",\"source\":\"s\","
		"\"type\":\"other\",\"datacontenttype\":\"text/plain\","
		"\"data\":\"two\"},"
		"{\"specversion\":\"1.0\",\"id\":\"b3\",\"source\":\"s\","
		"\"type\":\"com.example.created\"}]"));
	ck_assert_int_eq(calls, 3);
	ck_assert_str_eq(seen_attr(0, "id"), "b1");
	ck_assert_str_eq(seen[0].route, "created");
	ck_assert_str_eq(seen[0].json, "{\"n\":1}");
	ck_assert_str_eq(seen_attr(1, "id"), "b2");
	ck_assert_str_eq(seen[1].route, "any");
	ck_assert_str_eq(seen[1].data, "two");
	ck_assert_str_eq(seen_attr(2, "id"), "b3");
	/* the empty batch is a batch */
	expect_accepted(batch("[]"));
	ck_assert_int_eq(calls, 3);
}
END_TEST

START_TEST(batch_invalid_event_refuses_the_batch)
{
	zc_res *res = batch(
		"[{\"specversion\":\"1.0\",\"id\":\"b1\",\"source\":\"s\","
		"\"type\":\"t\"},"
		"{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"}]");
	json_t *j = body_json(res);

	ck_assert_int_eq(json_integer_value(json_object_get(j, "index")), 1);
	json_decref(j);
	expect_error(res, 400, "id");
	ck_assert_int_eq(calls, 0); /* nothing ran */
	expect_error(batch("{\"specversion\":\"1.0\"}"), 400, NULL);
	expect_error(batch("[1]"), 400, NULL);
	expect_error(batch("[{}"), 400, NULL);
	expect_error(batch(""), 400, NULL);
}
END_TEST

START_TEST(batch_failure_reports_per_event_results)
{
	zc_res *res = batch(
		"[{\"specversion\":\"1.0\",\"id\":\"f1\",\"source\":\"s\","
		"\"type\":\"com.example.fails\",\"subject\":\"ok\"},"
		"{\"specversion\":\"1.0\",\"id\":\"f2\",\"source\":\"s\","
		"\"type\":\"com.example.fails\",\"subject\":\"fail\"},"
		"{\"specversion\":\"1.0\",\"id\":\"f3\",\"source\":\"s\","
		"\"type\":\"com.example.err\"},"
		"{\"specversion\":\"1.0\",\"id\":\"f4\",\"source\":\"s\","
		"\"type\":\"com.example.replyme\"}]");
	json_t *j, *r;

	ck_assert_int_eq(zc_res_get_status(res), 503);
	ck_assert_str_eq(zc_res_get_header(res, "Retry-After"), "7");
	ck_assert_int_eq(calls, 4); /* every event was handled */
	j = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
			 "event 1 of the batch failed with HTTP 503");
	r = json_object_get(j, "results");
	ck_assert_uint_eq(json_array_size(r), 4);
	ck_assert_str_eq(
		json_string_value(json_object_get(json_array_get(r, 0), "id")),
		"f1");
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(r, 0), "status")),
			 202);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(r, 1), "status")),
			 503);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 1),
							   "error")),
			 "store unavailable");
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(r, 2), "status")),
			 500);
	/* replies are not sent in batch mode: accepted */
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(r, 3), "status")),
			 202);
	json_decref(j);
	zc_res_free(res);
}
END_TEST

/* ---- routing ---- */
START_TEST(routing_by_type_and_path)
{
	static const char *const get_h[] = {NULL};
	zc_res *res;

	expect_accepted(
		post("/", BIN_HEADERS("ce-type: com.example.created"), NULL));
	expect_accepted(
		post("/", BIN_HEADERS("ce-type: something.else"), NULL));
	ck_assert_str_eq(seen[0].route, "created");
	ck_assert_str_eq(seen[1].route, "any");
	/* a path whose only route takes one type: others are 202, unhandled */
	expect_accepted(post("/typed", BIN_HEADERS("ce-type: not.mine"), NULL));
	ck_assert_int_eq(calls, 2);
	expect_accepted(
		post("/typed", BIN_HEADERS("ce-type: com.example.only"), NULL));
	ck_assert_int_eq(calls, 3);
	/* the data plane may probe with OPTIONS: Allow lists POST */
	res = zc_test_request(app, "OPTIONS", "/typed", get_h, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 204);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/typed", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 405);
	zc_res_free(res);
	/* an HTTP route and an event route on one path */
	res = zc_test_request(app, "GET", "/", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_body(res, NULL), "{\"http\":\"yes\"}\n");
	zc_res_free(res);
	res = zc_test_request(app, "OPTIONS", "/", NULL, NULL);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"),
			 "POST, GET, HEAD, OPTIONS");
	zc_res_free(res);
	res = post("/nope", BIN_HEADERS("ce-type: t"), NULL);
	ck_assert_int_eq(zc_res_get_status(res), 404);
	zc_res_free(res);
}
END_TEST

static int
setup_dup_type(zc_app *a)
{
	ck_assert_int_eq(zc_event_route(a, "/e", on_event, &any_accept,
					&(zc_route_opts){.event_type = "t"}),
			 ZC_OK);
	ck_assert_int_eq(zc_event_route(a, "/e", on_event, &any_accept,
					&(zc_route_opts){.event_type = "t"}),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_route(a, "/e", on_event, &any_accept, NULL),
			 ZC_OK);
	ck_assert_int_eq(zc_event_route(a, "/e", on_event, &any_accept, NULL),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_route(a, "/e", on_event, &any_accept,
					&(zc_route_opts){.event_type = ""}),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_route(a, "/e", NULL, NULL,
					&(zc_route_opts){.event_type = "u"}),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_route(a, "no-slash", on_event, NULL,
					&(zc_route_opts){.event_type = "u"}),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_route(NULL, "/", on_event, NULL,
					&(zc_route_opts){.event_type = "u"}),
			 ZC_ERR_INVALID);
	/* a POST route the author registered on the path collides */
	ck_assert_int_eq(zc_route(a, "POST", "/http", h_http, NULL), ZC_OK);
	ck_assert_int_eq(zc_event_route(a, "/http", on_event, NULL,
					&(zc_route_opts){.event_type = "u"}),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(
		zc_event_route(a, "/p/{id}", on_event, &any_accept, NULL),
		ZC_OK);
	return 0;
}

START_TEST(route_registration_errors)
{
	zc_app *a = zc_test_app(setup_dup_type);
	zc_res *res;

	ck_assert_ptr_nonnull(a);
	res = zc_test_request(a, "POST", "/p/42", BIN_HEADERS("ce-type: t"),
			      NULL);
	ck_assert_int_eq(zc_res_get_status(res), 202);
	zc_res_free(res);
	zc_app_free(a);
}
END_TEST

static int
setup_health_collision(zc_app *a)
{
	return zc_event_route(a, "/health/readiness", on_event, NULL, NULL);
}

START_TEST(route_on_health_path_stops_setup)
{
	zc_app *a = zc_test_app(setup_health_collision);

	ck_assert_ptr_null(a);
}
END_TEST

/* ---- answers: replies, failures ---- */
static void
check_reply(zc_res *res, const char *got_id)
{
	size_t len;
	const char *id = zc_res_get_header(res, "ce-id");
	const char *body = zc_res_get_body(res, &len);
	char want[64];

	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "ce-specversion"), "1.0");
	ck_assert_str_eq(zc_res_get_header(res, "ce-type"),
			 "com.example.reply");
	ck_assert_str_eq(zc_res_get_header(res, "ce-source"), "function");
	ck_assert_str_eq(zc_res_get_header(res, "ce-subject"),
			 "Euro%20%E2%82%AC%20%22q%22%20100%25");
	ck_assert_ptr_nonnull(id);
	ck_assert_uint_eq(strlen(id), 36); /* a UUID */
	ck_assert_int_eq(id[14], '4');
	ck_assert_ptr_nonnull(zc_res_get_header(res, "ce-time"));
	ck_assert_ptr_null(zc_res_get_header(res, "ce-datacontenttype"));
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	snprintf(want, sizeof(want), "{\"got\":\"%s\"}", got_id);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert(memcmp(body, want, len) == 0);
}

START_TEST(reply_dropped_without_prefer)
{
	expect_accepted(
		post("/", BIN_HEADERS("ce-type: com.example.replyme"), NULL));
	ck_assert_int_eq(calls, 1);
}
END_TEST

START_TEST(reply_sent_with_prefer_reply)
{
	zc_res *res = post("/",
			   BIN_HEADERS("ce-type: com.example.replyme",
				       "Prefer: respond-async, Reply"),
			   NULL);

	check_reply(res, "A-1");
	zc_res_free(res);
	/* structured in, binary reply out */
	{
		static const char *const h[] = {
			"Content-Type: application/cloudevents+json",
			"Prefer: reply", NULL};
		res = post("/", h,
			   "{\"specversion\":\"1.0\",\"id\":\"S-9\",\"source\":"
			   "\"s\",\"type\":\"com.example.replyme\"}");
		check_reply(res, "S-9");
		zc_res_free(res);
	}
	/* "Prefer: reply-later" is not reply */
	expect_accepted(post(
		"/",
		BIN_HEADERS("ce-type: com.example.replyme", "Prefer: replyx"),
		NULL));
}
END_TEST

START_TEST(replying_route_replies_unasked)
{
	zc_res *res =
		post("/replying", BIN_HEADERS("ce-type: any.thing"), NULL);

	check_reply(res, "A-1");
	zc_res_free(res);
}
END_TEST

START_TEST(prefer_reply_without_a_reply_is_202)
{
	expect_accepted(post(
		"/",
		BIN_HEADERS("ce-type: com.example.created", "Prefer: reply"),
		NULL));
}
END_TEST

START_TEST(handler_status_and_failures)
{
	zc_res *res;

	expect_error(post("/",
			  BIN_HEADERS("ce-type: com.example.fails",
				      "ce-subject: fail"),
			  NULL),
		     503, NULL);
	res = post("/", BIN_HEADERS("ce-type: com.example.err"), NULL);
	ck_assert_int_eq(zc_res_get_status(res), 500);
	ck_assert_str_eq(zc_res_get_body(res, NULL),
			 "{\"error\":\"internal error\"}\n");
	zc_res_free(res);
	res = post("/", BIN_HEADERS("ce-type: com.example.status"), NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_body(res, NULL), "{\"status\":\"done\"}\n");
	zc_res_free(res);
}
END_TEST

/* ---- idempotent event routes ---- */
START_TEST(idempotent_route_runs_once_per_source_and_id)
{
	zc_res *res;
	static const char *const other_source[] = {
		"ce-specversion: 1.0", "ce-id: A-1", "ce-source: /elsewhere",
		"ce-type: com.example.once", NULL};
	static const char *const h[] = {
		"Content-Type: application/cloudevents+json", NULL};

	expect_accepted(post("/once",
			     BIN_HEADERS("ce-type: com.example.once",
					 "ce-time: 2026-01-01T00:00:00Z",
					 "Content-Type: application/json"),
			     "{\"n\": 1}"));
	ck_assert_int_eq(calls, 1);
	/* redelivered: other time, structured mode, same JSON data */
	res = post(
		"/once", h,
		"{\"specversion\":\"1.0\",\"id\":\"A-1\",\"source\":"
		"\"/unit/test\",\"type\":\"com.example.once\","
		"\"time\":\"2026-01-01T00:00:09Z\","
		"\"datacontenttype\":\"application/json\",\"data\":{\"n\":1}}");
	expect_accepted(res);
	ck_assert_int_eq(calls, 1);
	/* another source, same id: another event */
	expect_accepted(post("/once", other_source, NULL));
	ck_assert_int_eq(calls, 2);
	/* same source and id, other data: 422, not run */
	expect_error(post("/once",
			  BIN_HEADERS("ce-type: com.example.once",
				      "Content-Type: application/json"),
			  "{\"n\":2}"),
		     422, NULL);
	ck_assert_int_eq(calls, 2);
}
END_TEST

/*
 * A redelivery in the other content mode is the same event: the content
 * type compares by meaning (absent = JSON for JSON data; parameters such
 * as charset ignored; case ignored), not as text.  Found with the
 * official CloudEvents SDK, which sends structured events without
 * datacontenttype.
 */
START_TEST(idempotent_route_compares_content_types_by_meaning)
{
	static const char *const h[] = {
		"Content-Type: application/cloudevents+json", NULL};

	/* binary, Content-Type with a charset */
	expect_accepted(post("/once",
			     BIN_HEADERS("ce-type: com.example.once",
					 "Content-Type: application/json; "
					 "charset=utf-8"),
			     "{\"n\":1}"));
	ck_assert_int_eq(calls, 1);
	/* structured, no datacontenttype: JSON by the spec */
	expect_accepted(post("/once", h,
			     "{\"specversion\":\"1.0\",\"id\":\"A-1\","
			     "\"source\":\"/unit/test\",\"type\":"
			     "\"com.example.once\",\"data\":{\"n\":1}}"));
	ck_assert_int_eq(calls, 1);
	/* structured, upper case and a parameter */
	expect_accepted(post("/once", h,
			     "{\"specversion\":\"1.0\",\"id\":\"A-1\","
			     "\"source\":\"/unit/test\",\"type\":"
			     "\"com.example.once\",\"datacontenttype\":"
			     "\"Application/JSON ; charset=UTF-8\","
			     "\"data\":{\"n\":1}}"));
	ck_assert_int_eq(calls, 1);
	/* another media type is another event: 422 */
	expect_error(post("/once",
			  BIN_HEADERS("ce-type: com.example.once",
				      "Content-Type: text/plain"),
			  "{\"n\":1}"),
		     422, NULL);
	ck_assert_int_eq(calls, 1);
}
END_TEST

START_TEST(idempotent_route_replays_a_stored_reply)
{
	zc_res *res;
	char id[64];

	res = post(
		"/once",
		BIN_HEADERS("ce-type: com.example.oncereply", "Prefer: reply"),
		NULL);
	check_reply(res, "A-1");
	snprintf(id, sizeof(id), "%s", zc_res_get_header(res, "ce-id"));
	zc_res_free(res);
	/* the duplicate gets the same reply event, the handler not run */
	res = post(
		"/once",
		BIN_HEADERS("ce-type: com.example.oncereply", "Prefer: reply"),
		NULL);
	check_reply(res, "A-1");
	ck_assert_str_eq(zc_res_get_header(res, "ce-id"), id);
	zc_res_free(res);
	ck_assert_int_eq(calls, 1);
	/* without Prefer: reply the duplicate is just accepted */
	expect_accepted(post(
		"/once", BIN_HEADERS("ce-type: com.example.oncereply"), NULL));
	ck_assert_int_eq(calls, 1);
}
END_TEST

/* ---- the builder ---- */
START_TEST(builder)
{
	zc_event *ev = zc_event_new("com.example.built");
	const char *name, *value;
	size_t len;

	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_null(zc_event_new(NULL));
	ck_assert_ptr_null(zc_event_new(""));
	ck_assert_ptr_null(zc_event_new("a\nb"));
	ck_assert_str_eq(zc_event_type(ev), "com.example.built");
	ck_assert_str_eq(zc_event_attr(ev, "specversion"), "1.0");
	ck_assert_ptr_null(zc_event_id(ev));
	ck_assert_int_eq(zc_event_set(ev, "id", "X-1"), ZC_OK);
	ck_assert_int_eq(zc_event_set(ev, "source", "/src"), ZC_OK);
	ck_assert_int_eq(zc_event_set(ev, "subject", "sub"), ZC_OK);
	ck_assert_int_eq(zc_event_set(ev, "time", "2026-11-27T20:22:43Z"),
			 ZC_OK);
	ck_assert_int_eq(zc_event_set(ev, "myext", "v"), ZC_OK);
	ck_assert_int_eq(zc_event_set(ev, "myext", "w"), ZC_OK); /* replaces */
	ck_assert_str_eq(zc_event_id(ev), "X-1");
	ck_assert_str_eq(zc_event_source(ev), "/src");
	ck_assert_str_eq(zc_event_subject(ev), "sub");
	ck_assert_str_eq(zc_event_time(ev), "2026-11-27T20:22:43Z");
	ck_assert_str_eq(zc_event_attr(ev, "myext"), "w");
	ck_assert_uint_eq(zc_event_attr_count(ev), 7);
	name = zc_event_attr_at(ev, 0, &value);
	ck_assert_str_eq(name, "specversion");
	ck_assert_str_eq(value, "1.0");
	/* invalid */
	ck_assert_int_eq(zc_event_set(ev, "My", "v"), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "my_ext", "v"), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "data", "v"), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "specversion", "0.3"),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "time", "noon"), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "x", "a\x01"), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "x", "\xc0\xa0"), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set(ev, "type", NULL), ZC_ERR_INVALID);
	/* NULL or "" removes */
	ck_assert_int_eq(zc_event_set(ev, "subject", NULL), ZC_OK);
	ck_assert_ptr_null(zc_event_subject(ev));
	ck_assert_int_eq(zc_event_set(ev, "myext", ""), ZC_OK);
	ck_assert_ptr_null(zc_event_attr(ev, "myext"));
	/* data */
	zc_event_data(ev, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(zc_event_json(ev));
	ck_assert_int_eq(zc_event_set_json(ev, json_pack("{s:f}", "a", 0.3)),
			 ZC_OK);
	ck_assert_str_eq(zc_event_datacontenttype(ev), "application/json");
	ck_assert_str_eq(zc_event_data(ev, &len), "{\"a\":0.3}");
	ck_assert_ptr_nonnull(zc_event_json(ev));
	ck_assert_int_eq(zc_event_set_json(ev, NULL), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set_data(ev, "text/plain", "hi", 2), ZC_OK);
	ck_assert_str_eq(zc_event_datacontenttype(ev), "text/plain");
	ck_assert_ptr_null(zc_event_json(ev));
	ck_assert_str_eq(zc_event_data(ev, &len), "hi");
	ck_assert_int_eq(zc_event_set_data(ev, "application/json", "{", 1),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_event_set_data(ev, "application/json", "[1]", 3),
			 ZC_OK);
	ck_assert(json_is_array(zc_event_json(ev)));
	ck_assert_int_eq(zc_event_set_data(ev, NULL, "\x00\x01", 2), ZC_OK);
	ck_assert_ptr_null(zc_event_datacontenttype(ev));
	zc_event_data(ev, &len);
	ck_assert_uint_eq(len, 2);
	zc_event_free(ev);
	zc_event_free(NULL);
	/* accessors are NULL-safe */
	ck_assert_ptr_null(zc_event_id(NULL));
	ck_assert_uint_eq(zc_event_attr_count(NULL), 0);
}
END_TEST

/* A reply's header encoding, decoded by the receiver: the round trip. */
static char round_seen[128];

static int
on_round_reply(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	zc_event *r = zc_event_new("round.trip");

	(void)req;
	(void)ev;
	(void)arg;
	zc_event_set(r, "ext", "Euro € 😀 \"quoted\" 100% a+b");
	zc_res_event(res, r);
	zc_event_free(r);
	return 0;
}

static int
on_round_seen(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	(void)req;
	(void)res;
	(void)arg;
	snprintf(round_seen, sizeof(round_seen), "%s",
		 zc_event_attr(ev, "ext"));
	return 0;
}

static int
setup_round(zc_app *a)
{
	return zc_event_route(a, "/reply", on_round_reply, NULL,
			      &(zc_route_opts){.flags = ZC_ROUTE_REPLYING}) ||
	       zc_event_route(a, "/seen", on_round_seen, NULL, NULL);
}

START_TEST(percent_encoding_round_trip)
{
	zc_app *a = zc_test_app(setup_round);
	zc_res *res;
	char hdr[256];
	const char *h[6];

	ck_assert_ptr_nonnull(a);
	res = zc_test_request(a, "POST", "/reply", BIN_HEADERS("ce-type: t"),
			      NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(
		zc_res_get_header(res, "ce-ext"),
		"Euro%20%E2%82%AC%20%F0%9F%98%80%20%22quoted%22%20100%25"
		"%20a+b");
	snprintf(hdr, sizeof(hdr), "ce-ext: %s",
		 zc_res_get_header(res, "ce-ext"));
	zc_res_free(res);
	h[0] = "ce-specversion: 1.0";
	h[1] = "ce-id: 1";
	h[2] = "ce-source: s";
	h[3] = "ce-type: t";
	h[4] = hdr;
	h[5] = NULL;
	res = zc_test_request(a, "POST", "/seen", h, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 202);
	zc_res_free(res);
	ck_assert_str_eq(round_seen, "Euro € 😀 \"quoted\" 100% a+b");
	zc_app_free(a);
}
END_TEST

START_TEST(reply_needs_a_type_and_fills_the_rest)
{
	zc_res *res = zc_test_request(app, "GET", "/", NULL, NULL);
	zc_event *ev = zc_event_new("t");

	/* zc_res_event on a plain response: same encoding, any status reset */
	ck_assert_int_eq(zc_event_set(ev, "id", "keep"), ZC_OK);
	ck_assert_int_eq(zc_event_set(ev, "source", "/mine"), ZC_OK);
	ck_assert_int_eq(zc_res_event(res, ev), ZC_OK);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "ce-id"), "keep");
	ck_assert_str_eq(zc_res_get_header(res, "ce-source"), "/mine");
	ck_assert_ptr_null(zc_res_get_header(res, "Content-Type"));
	ck_assert_int_eq(zc_res_event(res, NULL), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_res_event(NULL, ev), ZC_ERR_INVALID);
	zc_event_free(ev);
	zc_res_free(res);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cloudevents");
	TCase *tc = tcase_create("receive");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, binary_attributes_and_json_data);
	tcase_add_test(tc, binary_header_names_case_insensitive);
	tcase_add_test(tc, binary_extensions_and_percent_decoding);
	tcase_add_test(tc, binary_structured_suffix_json_is_parsed);
	tcase_add_test(tc, binary_missing_required_attributes);
	tcase_add_test(tc, binary_invalid_values);
	tcase_add_test(tc, binary_ce_datacontenttype_alone);
	tcase_add_test(tc, structured_json_data_and_extensions);
	tcase_add_test(tc, structured_string_data);
	tcase_add_test(tc, structured_data_base64);
	tcase_add_test(tc, structured_content_type_forms);
	tcase_add_test(tc, structured_invalid_events);
	tcase_add_test(tc, batch_calls_the_handler_once_per_event);
	tcase_add_test(tc, batch_invalid_event_refuses_the_batch);
	tcase_add_test(tc, batch_failure_reports_per_event_results);
	tcase_add_test(tc, routing_by_type_and_path);
	tcase_add_test(tc, route_registration_errors);
	tcase_add_test(tc, route_on_health_path_stops_setup);
	tcase_add_test(tc, reply_dropped_without_prefer);
	tcase_add_test(tc, reply_sent_with_prefer_reply);
	tcase_add_test(tc, replying_route_replies_unasked);
	tcase_add_test(tc, prefer_reply_without_a_reply_is_202);
	tcase_add_test(tc, handler_status_and_failures);
	tcase_add_test(tc, idempotent_route_runs_once_per_source_and_id);
	tcase_add_test(tc, idempotent_route_compares_content_types_by_meaning);
	tcase_add_test(tc, idempotent_route_replays_a_stored_reply);
	tcase_add_test(tc, builder);
	tcase_add_test(tc, percent_encoding_round_trip);
	tcase_add_test(tc, reply_needs_a_type_and_fills_the_rest);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
