/*
 * test_trace.c - W3C trace context: zc__trace_parse against the spec's
 * valid and invalid forms, and propagation from an inbound request (via
 * zc_test_app) to the calls its handler makes, synchronous and async:
 * same trace id, a new parent-id per call, flags kept, tracestate only
 * with a valid traceparent, B3 and x-request-id verbatim.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "fake_http.h"

#define TID        "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID        "00f067aa0ba902b7"
#define TP_SAMPLED "00-" TID "-" PID "-01"

/* ---- a recording fake downstream: 200 {} to all, /slow after 300 ms ---- */

static struct fake_http fake;

/* Requests are recorded as they are answered: /slow after its wait. */
static int
answer(struct fake_http *f, struct fh_conn *c)
{
	if (strncmp(strchr(c->buf, ' ') + 1, "/slow", 5) == 0 &&
	    fh_wait_quiet(f, c->fd, 300) != 0)
		return -1;
	fh_record(f, c);
	return fh_reply(c->fd, 200, "OK", "", "{}", 2, false);
}

static void
fake_start(void)
{
	fh_start(&fake, answer);
	set_service_port("t-down", fake.port);
}

static void
fake_stop(void)
{
	fh_stop(&fake);
	unsetenv("T_DOWN_URL");
}

/* Header name's values in recorded request i, joined by "|", or "". */
static void
rec_header(int i, const char *name, char *out, size_t size)
{
	fh_rec_header(&fake, i, name, out, size);
}

/* ---- the app: handlers that call t-down ---- */

static atomic_llong handler_done_ns;

/* Two calls to t-down, then {"trace_id": ...}. */
static int
h_two(zc_req *req, zc_res *res, void *arg)
{
	zc_call *call;
	int i;

	(void)arg;
	zc_info("two calls coming");
	for (i = 0; i < 2; i++) {
		/* the second call names no inbound: the runtime knows it */
		call = zc_call_new(i == 0 ? req : NULL, "t-down", "GET", "/a");
		if (call == NULL || zc_call_perform(call) != ZC_OK) {
			zc_call_free(call);
			return zc_res_error(res, 502, "t-down failed");
		}
		zc_call_free(call);
	}
	return zc_res_jsonf(res, 200, "{s:s}", "trace_id",
			    zc_req_trace_id(req));
}

/* A slow async call first (one worker), then the traced one, which the
 * worker sends well after this handler returned. */
static int
h_async(zc_req *req, zc_res *res, void *arg)
{
	static const char *const paths[] = {"/slow", "/later"};
	zc_call *call;
	int i;

	(void)arg;
	for (i = 0; i < 2; i++) {
		call = zc_call_new(req, "t-down", "POST", paths[i]);
		if (call == NULL ||
		    zc_call_jsonf(call, "{s:i}", "i", i) != ZC_OK ||
		    zc_call_send_async(call) != ZC_OK) {
			zc_call_free(call);
			return zc_res_error(res, 500, "queue");
		}
	}
	zc_res_jsonf(res, 200, "{s:s}", "trace_id", zc_req_trace_id(req));
	atomic_store(&handler_done_ns, now_ns());
	return 0;
}

/* The handler's own x-request-id and traceparent headers. */
static int
h_own(zc_req *req, zc_res *res, void *arg)
{
	zc_call *call = zc_call_new(req, "t-down", "GET", "/own");

	(void)arg;
	zc_call_header(call, "X-Request-Id", "mine");
	if (zc_call_perform(call) != ZC_OK) {
		zc_call_free(call);
		return zc_res_error(res, 502, "t-down failed");
	}
	zc_call_free(call);
	zc_res_status(res, 204);
	return 0;
}

static int
setup(zc_app *app)
{
	if (zc_route(app, "GET", "/two", h_two, NULL) != ZC_OK ||
	    zc_route(app, "GET", "/async", h_async, NULL) != ZC_OK ||
	    zc_route(app, "GET", "/own", h_own, NULL) != ZC_OK)
		return -1;
	return 0;
}

static zc_app *app;

static void
up(void)
{
	fake_start();
	setenv("ZC_ASYNC_WORKERS", "1", 1);
	app = open_app(setup);
}

static void
down(void)
{
	zc_app_free(app);
	app = NULL;
	fake_stop();
	unsetenv("ZC_ASYNC_WORKERS");
}

/* GET path with headers; the trace id the handler saw. */
static void
request(const char *path, const char *const *headers, char *trace_id)
{
	zc_res *res = zc_test_request(app, "GET", path, headers, NULL);
	json_t *v;
	size_t len;
	const char *b;

	ck_assert_ptr_nonnull(res);
	b = zc_res_get_body(res, &len);
	ck_assert_msg(zc_res_get_status(res) / 100 == 2, "%s -> %d %.*s", path,
		      zc_res_get_status(res), (int)len, b);
	if (trace_id != NULL) {
		v = json_loadb(b, len, 0, NULL);
		ck_assert_ptr_nonnull(v);
		snprintf(trace_id, 33, "%s",
			 json_string_value(json_object_get(v, "trace_id")));
		json_decref(v);
	}
	zc_res_free(res);
}

/* Parse recorded request i's traceparent, which must be valid v00. */
static void
outbound_tp(int i, struct zc_trace *t)
{
	char tp[256];

	rec_header(i, "traceparent", tp, sizeof(tp));
	ck_assert_msg(strlen(tp) == 55 && strncmp(tp, "00-", 3) == 0,
		      "request %d traceparent \"%s\"", i, tp);
	ck_assert_msg(zc__trace_parse(tp, t), "invalid traceparent %s", tp);
}

/* ---- zc__trace_parse ---- */

START_TEST(test_parse_valid)
{
	struct zc_trace t;

	memset(&t, 0, sizeof(t));
	ck_assert(zc__trace_parse(TP_SAMPLED, &t));
	ck_assert_str_eq(t.trace_id, TID);
	ck_assert_str_eq(t.parent_id, PID);
	ck_assert_str_eq(t.flags, "01");
	ck_assert(zc__trace_parse("00-" TID "-" PID "-00", &t));
	ck_assert_str_eq(t.flags, "00");
	/* a later version: the 00 fields are read, the rest ignored */
	ck_assert(zc__trace_parse("cc-" TID "-" PID "-01-what-the-future-"
				  "holds",
				  &t));
	ck_assert_str_eq(t.trace_id, TID);
	ck_assert_str_eq(t.parent_id, PID);
	ck_assert_str_eq(t.flags, "01");
	ck_assert(zc__trace_parse("01-" TID "-" PID "-09", &t));
	ck_assert_str_eq(t.flags, "09");
	/* ids need not be mostly non-zero, just not all zero */
	ck_assert(zc__trace_parse(
		"00-00000000000000000000000000000001-0000000000000001-01", &t));
}
END_TEST

START_TEST(test_parse_invalid)
{
	static const char *const bad[] = {
		"",
		"00",
		/* all-zero trace id, all-zero parent id */
		"00-00000000000000000000000000000000-" PID "-01",
		"00-" TID "-0000000000000000-01",
		/* upper-case hex anywhere */
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",
		"00-" TID "-00F067AA0BA902B7-01",
		"00-" TID "-" PID "-0A",
		"0A-" TID "-" PID "-01",
		/* version ff is forbidden */
		"ff-" TID "-" PID "-01",
		/* wrong lengths */
		"00-" TID "-" PID "-1",
		"00-" TID "-" PID "-010",
		"00-4bf92f3577b34da6a3ce929d0e0e473-" PID "-01",
		"00-" TID "-00f067aa0ba902b-01",
		"00-" TID "a-" PID "-01",
		/* version 00 has nothing after the flags */
		"00-" TID "-" PID "-01-extra",
		/* a later version: extra fields need a '-' */
		"cc-" TID "-" PID "-01.what",
		"cc-" TID "-" PID "-01what",
		/* delimiters, non-hex */
		"00_" TID "_" PID "_01",
		"00-" TID "-" PID "+01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-" PID "-01",
		"00-" TID "-00f067aa0ba902bz-01",
		"0g-" TID "-" PID "-01",
		" 00-" TID "-" PID "-01",
		NULL,
	};
	struct zc_trace t;
	int i;

	ck_assert(!zc__trace_parse(NULL, &t));
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(!zc__trace_parse(bad[i], &t),
			      "accepted invalid \"%s\"", bad[i]);
}
END_TEST

/* ---- propagation ---- */

START_TEST(test_same_trace_new_parent_per_call)
{
	static const char *const h[] = {
		"traceparent: " TP_SAMPLED,
		"tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", NULL};
	struct zc_trace a, b;
	char seen[33], ts[256];
	int i;

	request("/two", h, seen);
	ck_assert_str_eq(seen, TID);
	ck_assert_int_eq(atomic_load(&fake.requests), 2);
	outbound_tp(0, &a);
	outbound_tp(1, &b);
	ck_assert_str_eq(a.trace_id, TID);
	ck_assert_str_eq(b.trace_id, TID);
	ck_assert_str_ne(a.parent_id, PID);
	ck_assert_str_ne(b.parent_id, PID);
	ck_assert_str_ne(a.parent_id, b.parent_id);
	ck_assert_str_eq(a.flags, "01");
	ck_assert_str_eq(b.flags, "01");
	for (i = 0; i < 2; i++) {
		rec_header(i, "tracestate", ts, sizeof(ts));
		ck_assert_str_eq(ts, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
		/* one traceparent, not two */
		rec_header(i, "traceparent", ts, sizeof(ts));
		ck_assert_ptr_null(strchr(ts, '|'));
	}
}
END_TEST

START_TEST(test_parent_differs_across_requests)
{
	static const char *const h[] = {"traceparent: " TP_SAMPLED, NULL};
	struct zc_trace t[4];
	int i, j;

	request("/two", h, NULL);
	request("/two", h, NULL);
	for (i = 0; i < 4; i++) {
		outbound_tp(i, &t[i]);
		ck_assert_str_eq(t[i].trace_id, TID);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(t[i].parent_id, t[j].parent_id);
	}
}
END_TEST

START_TEST(test_flags_kept)
{
	static const char *const h[] = {"traceparent: 00-" TID "-" PID "-00",
					NULL};
	struct zc_trace t;

	/* not sampled upstream: stays not sampled */
	request("/two", h, NULL);
	outbound_tp(0, &t);
	ck_assert_str_eq(t.trace_id, TID);
	ck_assert_str_eq(t.flags, "00");
}
END_TEST

START_TEST(test_future_version_downgraded)
{
	static const char *const h[] = {"traceparent: cc-" TID "-" PID
					"-01-future",
					"tracestate: k=v", NULL};
	struct zc_trace t;
	char ts[64];

	request("/two", h, NULL);
	outbound_tp(0, &t);
	ck_assert_str_eq(t.trace_id, TID);
	ck_assert_str_eq(t.flags, "01");
	rec_header(0, "tracestate", ts, sizeof(ts));
	ck_assert_str_eq(ts, "k=v");
}
END_TEST

START_TEST(test_new_trace_when_absent)
{
	struct zc_trace a, b;
	char seen[33], ts[64];

	request("/two", NULL, seen);
	ck_assert_int_eq(strlen(seen), 32);
	outbound_tp(0, &a);
	outbound_tp(1, &b);
	/* the trace the runtime started is the one zc_req_trace_id gives */
	ck_assert_str_eq(a.trace_id, seen);
	ck_assert_str_eq(b.trace_id, seen);
	ck_assert_str_ne(a.parent_id, b.parent_id);
	ck_assert_str_eq(a.flags, "01");
	rec_header(0, "tracestate", ts, sizeof(ts));
	ck_assert_str_eq(ts, "");
}
END_TEST

START_TEST(test_tracestate_needs_valid_traceparent)
{
	static const char *const bad_tp[] = {
		"traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",
		"tracestate: congo=t61rcWkgMzE", NULL};
	static const char *const no_tp[] = {"tracestate: congo=t61rcWkgMzE",
					    NULL};
	struct zc_trace t;
	char seen[33], ts[64];

	/* an invalid traceparent restarts the trace; its tracestate goes */
	request("/two", bad_tp, seen);
	outbound_tp(0, &t);
	ck_assert_str_eq(t.trace_id, seen);
	ck_assert_str_ne(t.trace_id, TID);
	rec_header(0, "tracestate", ts, sizeof(ts));
	ck_assert_str_eq(ts, "");
	/* a tracestate alone is discarded */
	request("/two", no_tp, seen);
	outbound_tp(2, &t);
	ck_assert_str_eq(t.trace_id, seen);
	rec_header(2, "tracestate", ts, sizeof(ts));
	ck_assert_str_eq(ts, "");
}
END_TEST

static const char *const b3_headers[] = {
	"b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-"
	"05e3ac9a4f6e3b90",
	"X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7",
	"X-B3-SpanId: e457b5a2e4d86bd1",
	"X-B3-ParentSpanId: 05e3ac9a4f6e3b90",
	"X-B3-Sampled: 1",
	"X-B3-Flags: 1",
	"X-Request-Id: 4d9a1c2e-7b3f-4c1a-9e2d-0f5b6a7c8d9e",
	NULL,
};

static void
expect_b3_forwarded(int i)
{
	static const char *const want[][2] = {
		{"b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-"
		       "05e3ac9a4f6e3b90"},
		{"x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"},
		{"x-b3-spanid", "e457b5a2e4d86bd1"},
		{"x-b3-parentspanid", "05e3ac9a4f6e3b90"},
		{"x-b3-sampled", "1"},
		{"x-b3-flags", "1"},
		{"x-request-id", "4d9a1c2e-7b3f-4c1a-9e2d-0f5b6a7c8d9e"},
	};
	char v[256];
	size_t k;

	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		rec_header(i, want[k][0], v, sizeof(v));
		ck_assert_msg(strcmp(v, want[k][1]) == 0,
			      "request %d %s: \"%s\", want \"%s\"", i,
			      want[k][0], v, want[k][1]);
	}
}

START_TEST(test_b3_and_request_id_verbatim)
{
	/* without a traceparent: B3 is forwarded as it came */
	request("/two", b3_headers, NULL);
	expect_b3_forwarded(0);
	expect_b3_forwarded(1);
}
END_TEST

START_TEST(test_b3_with_traceparent)
{
	const char *h[10];
	struct zc_trace t;
	int i;

	for (i = 0; b3_headers[i] != NULL; i++)
		h[i] = b3_headers[i];
	h[i++] = "traceparent: " TP_SAMPLED;
	h[i] = NULL;
	request("/two", h, NULL);
	expect_b3_forwarded(0);
	outbound_tp(0, &t);
	ck_assert_str_eq(t.trace_id, TID);
}
END_TEST

START_TEST(test_nothing_to_forward)
{
	char v[64];

	request("/two", NULL, NULL);
	rec_header(0, "b3", v, sizeof(v));
	ck_assert_str_eq(v, "");
	rec_header(0, "x-b3-traceid", v, sizeof(v));
	ck_assert_str_eq(v, "");
	rec_header(0, "x-request-id", v, sizeof(v));
	ck_assert_str_eq(v, "");
}
END_TEST

/* A header the handler sets itself replaces the propagated one. */
START_TEST(test_handler_header_not_doubled)
{
	static const char *const h[] = {"X-Request-Id: theirs", NULL};
	char v[64];

	request("/own", h, NULL);
	rec_header(0, "x-request-id", v, sizeof(v));
	ck_assert_msg(strcmp(v, "mine") == 0,
		      "x-request-id sent as \"%s\" (values joined by |)", v);
}
END_TEST

START_TEST(test_log_lines_carry_trace_id)
{
	static const char *const h[] = {"traceparent: " TP_SAMPLED, NULL};
	struct capture cap;
	char *buf, *line;

	capture_start(&cap);
	request("/two", h, NULL);
	buf = capture_end(&cap);
	ck_assert_int_gt(strlen(buf), 0);
	line = strstr(buf, "two calls coming");
	ck_assert_msg(line != NULL, "log: %s", buf);
	*strchr(line, '\n') = '\0';
	ck_assert_msg(strstr(line, " trace_id=" TID) != NULL &&
			      strlen(strstr(line, " trace_id=")) == 42,
		      "line: %s", line);
	free(buf);
}
END_TEST

START_TEST(test_async_call_keeps_trace_context)
{
	static const char *const h[] = {"traceparent: " TP_SAMPLED,
					"tracestate: rojo=1",
					"x-request-id: req-77", NULL};
	struct zc_trace a, b;
	char v[64], line[64];
	long long t0 = now_ns();
	int later;

	request("/async", h, NULL);
	while (atomic_load(&fake.requests) < 2 && now_ns() - t0 < 3000000000LL)
		poll(NULL, 0, 5);
	ck_assert_int_eq(atomic_load(&fake.requests), 2);
	/* which one was /later (the slow one answers last, but is
	 * recorded after its delay) */
	pthread_mutex_lock(&fake.mu);
	later = strncmp(fake.recs[0].req, "POST /later ", 12) == 0 ? 0 : 1;
	snprintf(line, sizeof(line), "%.12s", fake.recs[later].req);
	pthread_mutex_unlock(&fake.mu);
	ck_assert_str_eq(line, "POST /later ");
	/* sent after the handler had returned (and its request was freed) */
	ck_assert(fh_rec_time(&fake, later) > atomic_load(&handler_done_ns));

	outbound_tp(later, &a);
	outbound_tp(1 - later, &b);
	ck_assert_str_eq(a.trace_id, TID);
	ck_assert_str_eq(b.trace_id, TID);
	ck_assert_str_ne(a.parent_id, PID);
	ck_assert_str_ne(a.parent_id, b.parent_id);
	rec_header(later, "tracestate", v, sizeof(v));
	ck_assert_str_eq(v, "rojo=1");
	rec_header(later, "x-request-id", v, sizeof(v));
	ck_assert_str_eq(v, "req-77");
}
END_TEST

static Suite *
trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *parse = tcase_create("parse");
	TCase *prop = tcase_create("propagation");

	tcase_add_test(parse, test_parse_valid);
	tcase_add_test(parse, test_parse_invalid);
	suite_add_tcase(s, parse);

	tcase_add_checked_fixture(prop, up, down);
	tcase_set_timeout(prop, 10);
	tcase_add_test(prop, test_same_trace_new_parent_per_call);
	tcase_add_test(prop, test_parent_differs_across_requests);
	tcase_add_test(prop, test_flags_kept);
	tcase_add_test(prop, test_future_version_downgraded);
	tcase_add_test(prop, test_new_trace_when_absent);
	tcase_add_test(prop, test_tracestate_needs_valid_traceparent);
	tcase_add_test(prop, test_b3_and_request_id_verbatim);
	tcase_add_test(prop, test_b3_with_traceparent);
	tcase_add_test(prop, test_nothing_to_forward);
	tcase_add_test(prop, test_handler_header_not_doubled);
	tcase_add_test(prop, test_log_lines_carry_trace_id);
	tcase_add_test(prop, test_async_call_keeps_trace_context);
	suite_add_tcase(s, prop);
	return s;
}

int
main(void)
{
	return run_client_suite(trace_suite());
}
