/*
 * test_dapr.c - the Dapr parts that need no sidecar: the handler's result
 * put in Dapr's terms (SUCCESS / RETRY / DROP), the token comparison, the
 * GET /dapr/subscribe list, deliveries through zc_test_request (Dapr's
 * envelope, malformed events, dedup, APP_API_TOKEN), the readiness gate,
 * when the sidecar poller logs, and where a publish goes.  The sidecar
 * itself is played by tests/e2e/fake_dapr.py (test_dapr.py).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

static const char *const ce_json[] = {
	"Content-Type: application/cloudevents+json", NULL};

static int runs;

/* The event's data says what to answer: {"answer": <status>} or
 * {"fail": true}; anything else is accepted (202). */
static int
on_order(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	json_t *d = zc_event_json(ev);
	json_t *a = json_object_get(d, "answer");

	(void)req;
	(void)arg;
	runs++;
	ck_assert_str_eq(zc_event_attr(ev, "topic"), "orders");
	ck_assert_str_eq(zc_event_attr(ev, "pubsubname"), "pubsub");
	if (json_is_true(json_object_get(d, "fail")))
		return -1;
	if (json_is_integer(a))
		return zc_res_error(res, (int)json_integer_value(a),
				    "answered as asked");
	return 0;
}

static int
setup_subs(zc_app *app)
{
	zc_route_opts once = {.flags = ZC_ROUTE_IDEMPOTENT};

	if (zc_dapr_subscribe(app, "pubsub", "orders", "/orders", on_order,
			      NULL, &once) != ZC_OK)
		return -1;
	/* a second topic on the same path and handler: one route */
	if (zc_dapr_subscribe(app, "pubsub", "orders-eu", "/orders", on_order,
			      NULL, &once) != ZC_OK)
		return -1;
	return zc_dapr_subscribe(app, "other", "audit.v1", "/audit", on_order,
				 NULL, NULL);
}

/* Dapr's envelope around data, as the sidecar delivers it. */
static char *
envelope(const char *id, const char *data)
{
	char *s;

	ck_assert_int_gt(
		asprintf(&s,
			 "{\"specversion\":\"1.0\",\"id\":\"%s\","
			 "\"source\":\"checkout\",\"type\":"
			 "\"com.dapr.event.sent\",\"datacontenttype\":"
			 "\"application/json\",\"data\":%s,\"topic\":"
			 "\"orders\",\"pubsubname\":\"pubsub\",\"traceid\":"
			 "\"00-4bf92f3577b34da6a3ce929d0e0e4736-"
			 "00f067aa0ba902b7-01\",\"traceparent\":"
			 "\"00-4bf92f3577b34da6a3ce929d0e0e4736-"
			 "00f067aa0ba902b7-01\",\"tracestate\":\"\","
			 "\"time\":\"2026-01-02T03:04:05Z\"}",
			 id, data),
		0);
	return s;
}

/* POST body to path; the answer must be 200 {"status":want}. */
static void
deliver_expect(zc_app *app, const char *path, const char *body,
	       const char *const *headers, const char *want)
{
	zc_res *res = zc_test_request(app, "POST", path, headers, body);
	char expect[64], *got;

	ck_assert_ptr_nonnull(res);
	got = body_copy(res);
	/* the runtime ends JSON bodies with a newline, as Go's encoder */
	snprintf(expect, sizeof(expect), "{\"status\":\"%s\"}\n", want);
	ck_assert_msg(zc_res_get_status(res) == 200, "status %d: %s",
		      zc_res_get_status(res), got);
	ck_assert_str_eq(got, expect);
	free(got);
	zc_res_free(res);
}

/* ---- the pure parts ---- */
START_TEST(outcome_table)
{
	static const struct {
		int rc, status, want;
	} t[] = {
		{0, 0, ZC_DAPR_SUCCESS},   {0, 200, ZC_DAPR_SUCCESS},
		{0, 202, ZC_DAPR_SUCCESS}, {0, 204, ZC_DAPR_SUCCESS},
		{-1, 0, ZC_DAPR_RETRY},    {1, 200, ZC_DAPR_RETRY},
		{0, 500, ZC_DAPR_RETRY},   {0, 503, ZC_DAPR_RETRY},
		{0, 504, ZC_DAPR_RETRY},   {0, 408, ZC_DAPR_RETRY},
		{0, 409, ZC_DAPR_RETRY},   {0, 429, ZC_DAPR_RETRY},
		{0, 400, ZC_DAPR_DROP},    {0, 404, ZC_DAPR_DROP},
		{0, 415, ZC_DAPR_DROP},    {0, 422, ZC_DAPR_DROP},
		{0, 302, ZC_DAPR_DROP},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(zc__dapr_outcome(t[i].rc, t[i].status) ==
				      t[i].want,
			      "rc %d status %d", t[i].rc, t[i].status);
	ck_assert_str_eq(zc__dapr_outcome_name(ZC_DAPR_SUCCESS), "SUCCESS");
	ck_assert_str_eq(zc__dapr_outcome_name(ZC_DAPR_RETRY), "RETRY");
	ck_assert_str_eq(zc__dapr_outcome_name(ZC_DAPR_DROP), "DROP");
}
END_TEST

START_TEST(token_compare)
{
	ck_assert(zc__dapr_token_ok("s3cret", "s3cret"));
	ck_assert(!zc__dapr_token_ok("s3cret", "s3cre"));
	ck_assert(!zc__dapr_token_ok("s3cret", "s3cret!"));
	ck_assert(!zc__dapr_token_ok("s3cret", "S3cret"));
	ck_assert(!zc__dapr_token_ok("s3cret", ""));
	ck_assert(!zc__dapr_token_ok("s3cret", NULL));
	ck_assert(!zc__dapr_token_ok(NULL, "x"));
}
END_TEST

START_TEST(wait_notes)
{
	struct zc__dapr_wait w = {60000, 60000, false};

	ck_assert_int_eq(zc__dapr_wait_note(&w, 0), ZC_DAPR_NOTE_NONE);
	ck_assert_int_eq(zc__dapr_wait_note(&w, 59999), ZC_DAPR_NOTE_NONE);
	ck_assert_int_eq(zc__dapr_wait_note(&w, 60100), ZC_DAPR_NOTE_TIMEOUT);
	/* then one reminder a minute, not one per poll */
	ck_assert_int_eq(zc__dapr_wait_note(&w, 60350), ZC_DAPR_NOTE_NONE);
	ck_assert_int_eq(zc__dapr_wait_note(&w, 120000), ZC_DAPR_NOTE_NONE);
	ck_assert_int_eq(zc__dapr_wait_note(&w, 120100), ZC_DAPR_NOTE_REMIND);
	ck_assert_int_eq(zc__dapr_wait_note(&w, 150000), ZC_DAPR_NOTE_NONE);
	ck_assert_int_eq(zc__dapr_wait_note(&w, 180200), ZC_DAPR_NOTE_REMIND);
	/* DAPR_HEALTH_TIMEOUT=0: the error after the first failed poll */
	w = (struct zc__dapr_wait){0, 0, false};
	ck_assert_int_eq(zc__dapr_wait_note(&w, 3), ZC_DAPR_NOTE_TIMEOUT);
}
END_TEST

START_TEST(publish_url)
{
	char url[256], tname[64];

	unsetenv("DAPR_HTTP_PORT");
	ck_assert_int_eq(zc__dapr_publish_url("pubsub/orders", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_ERR_INVALID);
	setenv("DAPR_HTTP_PORT", "3500", 1);
	ck_assert_int_eq(zc__dapr_publish_url("pubsub/orders", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_OK);
	ck_assert_str_eq(url,
			 "http://127.0.0.1:3500/v1.0/publish/pubsub/orders");
	ck_assert_str_eq(tname, "dapr_publish");
	/* the topic is one segment, escaped */
	ck_assert_int_eq(zc__dapr_publish_url("my-pubsub/a b/c?", url,
					      sizeof(url), tname,
					      sizeof(tname)),
			 ZC_OK);
	ck_assert_str_eq(
		url,
		"http://127.0.0.1:3500/v1.0/publish/my-pubsub/a%20b%2Fc%3F");
	ck_assert_int_eq(zc__dapr_publish_url("pubsub", url, sizeof(url), tname,
					      sizeof(tname)),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__dapr_publish_url("/orders", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__dapr_publish_url("pubsub/", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__dapr_publish_url("pub sub/x", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__dapr_publish_url("pubsub/a\nb", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc__dapr_publish_url("pubsub/orders", url, 20, tname,
					      sizeof(tname)),
			 ZC_ERR_TOO_LARGE);
	setenv("DAPR_HTTP_PORT", "70000", 1);
	ck_assert_int_eq(zc__dapr_publish_url("pubsub/orders", url, sizeof(url),
					      tname, sizeof(tname)),
			 ZC_ERR_INVALID);
	unsetenv("DAPR_HTTP_PORT");
}
END_TEST

/* ---- subscriptions through zc_test_request ---- */
START_TEST(subscribe_list)
{
	zc_app *app = open_app(setup_subs);
	zc_res *res =
		zc_test_request(app, "GET", "/dapr/subscribe", NULL, NULL);
	char *body = body_copy(res);

	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	ck_assert_str_eq(
		body,
		"[{\"pubsubname\":\"pubsub\",\"topic\":\"orders\",\"route\":"
		"\"/orders\"},{\"pubsubname\":\"pubsub\",\"topic\":"
		"\"orders-eu\",\"route\":\"/orders\"},{\"pubsubname\":"
		"\"other\",\"topic\":\"audit.v1\",\"route\":\"/audit\"}]\n");
	free(body);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(delivery_outcomes)
{
	zc_app *app = open_app(setup_subs);
	char *ev;

	runs = 0;
	ev = envelope("e-1", "{\"item\":1}");
	deliver_expect(app, "/orders", ev, ce_json, "SUCCESS");
	ck_assert_int_eq(runs, 1);
	/* the same source + id again: deduped, still SUCCESS */
	deliver_expect(app, "/orders", ev, ce_json, "SUCCESS");
	ck_assert_int_eq(runs, 1);
	free(ev);

	ev = envelope("e-2", "{\"answer\":503}");
	deliver_expect(app, "/orders", ev, ce_json, "RETRY");
	/* a 5xx is not stored: the redelivery runs again */
	deliver_expect(app, "/orders", ev, ce_json, "RETRY");
	ck_assert_int_eq(runs, 3);
	free(ev);

	ev = envelope("e-3", "{\"answer\":429}");
	deliver_expect(app, "/orders", ev, ce_json, "RETRY");
	free(ev);
	ev = envelope("e-4", "{\"fail\":true}");
	deliver_expect(app, "/orders", ev, ce_json, "RETRY");
	free(ev);
	ev = envelope("e-5", "{\"answer\":400}");
	deliver_expect(app, "/orders", ev, ce_json, "DROP");
	free(ev);
	ev = envelope("e-6", "{\"answer\":404}");
	deliver_expect(app, "/orders", ev, ce_json, "DROP");
	free(ev);
	ck_assert_int_eq(runs, 7);

	/* malformed: not JSON, no id, not an event at all: DROP, not 400
	 * (which Dapr would redeliver for ever) */
	deliver_expect(app, "/orders", "{not json", ce_json, "DROP");
	deliver_expect(app, "/orders",
		       "{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":"
		       "\"t\",\"topic\":\"orders\"}",
		       ce_json, "DROP");
	deliver_expect(
		app, "/orders", "{\"item\":1}",
		(const char *const[]){"Content-Type: application/json", NULL},
		"DROP");
	ck_assert_int_eq(runs, 7);
	zc_app_free(app);
}
END_TEST

START_TEST(malformed_drop_is_logged)
{
	zc_app *app = open_app(setup_subs);
	struct capture c;
	char *log;

	capture_start(&c);
	deliver_expect(app, "/orders",
		       "{\"specversion\":\"1.0\",\"id\":\"x-1\",\"type\":\"t\","
		       "\"topic\":\"orders\",\"pubsubname\":\"pubsub\"}",
		       ce_json, "DROP");
	log = capture_end(&c);
	ck_assert_msg(strstr(log, "event x-1, topic orders of pubsub") != NULL,
		      "%s", log);
	ck_assert_msg(strstr(log, "HTTP 400") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "source") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "DROP: not redelivered") != NULL, "%s", log);
	free(log);
	zc_app_free(app);
}
END_TEST

START_TEST(app_api_token)
{
	const char *const good[] = {
		"Content-Type: application/cloudevents+json",
		"dapr-api-token: t0k3n", NULL};
	const char *const bad[] = {"Content-Type: application/cloudevents+json",
				   "dapr-api-token: t0k3m", NULL};
	const char *const good_get[] = {"dapr-api-token: t0k3n", NULL};
	zc_app *app;
	zc_res *res;
	char *ev = envelope("tok-1", "{}");

	setenv("APP_API_TOKEN", "t0k3n", 1);
	app = open_app(setup_subs);
	unsetenv("APP_API_TOKEN");
	runs = 0;
	res = zc_test_request(app, "GET", "/dapr/subscribe", NULL, NULL);
	expect_json_error(res, 401);
	zc_res_free(res);
	res = zc_test_request(app, "GET", "/dapr/subscribe", good_get, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	res = zc_test_request(app, "POST", "/orders", ce_json, ev);
	expect_json_error(res, 401);
	zc_res_free(res);
	res = zc_test_request(app, "POST", "/orders", bad, ev);
	expect_json_error(res, 401);
	zc_res_free(res);
	ck_assert_int_eq(runs, 0);
	deliver_expect(app, "/orders", ev, good, "SUCCESS");
	ck_assert_int_eq(runs, 1);
	/* the health probes are not the sidecar's: never checked */
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	free(ev);
	zc_app_free(app);
}
END_TEST

static int
on_plain(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	(void)req;
	(void)ev;
	(void)res;
	(void)arg;
	return 0;
}

static zc_err bad_results[6];

static int
setup_bad(zc_app *app)
{
	zc_route_opts replying = {.flags = ZC_ROUTE_REPLYING};

	bad_results[0] = zc_dapr_subscribe(app, "pubsub", "t", "/x", on_plain,
					   NULL, &replying);
	bad_results[1] = zc_dapr_subscribe(app, "pubsub", "t", "/x/{id}",
					   on_plain, NULL, NULL);
	bad_results[2] = zc_dapr_subscribe(app, "pub/sub", "t", "/x", on_plain,
					   NULL, NULL);
	ck_assert_int_eq(zc_event_route(app, "/ce", on_plain, NULL, NULL),
			 ZC_OK);
	/* an ordinary event route's path answers Knative's way */
	bad_results[3] = zc_dapr_subscribe(app, "pubsub", "t", "/ce", on_plain,
					   NULL, NULL);
	ck_assert_int_eq(zc_dapr_subscribe(app, "pubsub", "t", "/ok", on_plain,
					   NULL, NULL),
			 ZC_OK);
	bad_results[4] = zc_dapr_subscribe(app, "pubsub", "t", "/ok2", on_plain,
					   NULL, NULL);
	/* and a Dapr path is not an ordinary event route */
	bad_results[5] = zc_event_route(app, "/ok", on_plain, NULL,
					&(zc_route_opts){.event_type = "x"});
	return 0;
}

START_TEST(subscribe_refuses)
{
	zc_app *app = open_app(setup_bad);
	int i;

	for (i = 0; i < 6; i++)
		ck_assert_msg(bad_results[i] == ZC_ERR_INVALID, "case %d: %d",
			      i, bad_results[i]);
	zc_app_free(app);
}
END_TEST

/* ---- the readiness gate ---- */
START_TEST(readiness_gate)
{
	zc_app *app = open_app(setup_nothing);
	zc_res *res;
	char *body;

	ck_assert_int_eq(zc__ready_gate("test", "waiting for the test"), 0);
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	body = body_copy(res);
	ck_assert_int_eq(zc_res_get_status(res), 503);
	ck_assert_str_eq(body, "{\"status\":\"waiting for the test\"}\n");
	free(body);
	zc_res_free(res);
	/* liveness is not readiness */
	res = zc_test_request(app, "GET", "/health/liveness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	ck_assert_int_eq(zc__ready_gate("test", NULL), 0);
	res = zc_test_request(app, "GET", "/health/readiness", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
	ck_assert_ptr_null(zc__ready_gate_reason());
	/* opening a gate nobody closed is fine; eight at most */
	ck_assert_int_eq(zc__ready_gate("never", NULL), 0);
	{
		static const char *const names[] = {"a", "b", "c", "d",
						    "e", "f", "g", "h"};
		int i;
		for (i = 0; i < 8; i++)
			ck_assert_int_eq(zc__ready_gate(names[i], "r"), 0);
		ck_assert_int_eq(zc__ready_gate("i", "r"), -1);
		for (i = 0; i < 8; i++)
			ck_assert_int_eq(zc__ready_gate(names[i], NULL), 0);
	}
	ck_assert_ptr_null(zc__ready_gate_reason());
	zc_app_free(app);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dapr");
	TCase *pure = tcase_create("pure");
	TCase *subs = tcase_create("subscriptions");
	TCase *ready = tcase_create("readiness");

	tcase_add_test(pure, outcome_table);
	tcase_add_test(pure, token_compare);
	tcase_add_test(pure, wait_notes);
	tcase_add_test(pure, publish_url);
	tcase_add_test(subs, subscribe_list);
	tcase_add_test(subs, delivery_outcomes);
	tcase_add_test(subs, malformed_drop_is_logged);
	tcase_add_test(subs, app_api_token);
	tcase_add_test(subs, subscribe_refuses);
	tcase_add_test(ready, readiness_gate);
	suite_add_tcase(s, pure);
	suite_add_tcase(s, subs);
	suite_add_tcase(s, ready);
	return run_suite(s);
}
