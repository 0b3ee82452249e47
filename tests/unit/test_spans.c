/*
 * test_spans.c - the spans of a request (http/tracing.c) and of its
 * outbound calls (outbound/client.c), in process: the server span and the
 * flags its sampling decision gives the trace, the handler's own spans
 * (zc_span_start/zc_span_end), a client span per attempt whose id is the
 * traceparent that attempt sent, and nothing at all when tracing is off or
 * the request is a probe.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "fake_http.h"

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define PID "00f067aa0ba902b7"

/* ---- a downstream: 503 for the first `fail_first` requests, then 200 ---- */

static struct fake_http fake;
static atomic_int fail_first;

static int
answer(struct fake_http *f, struct fh_conn *c)
{
	fh_record(f, c);
	if (atomic_fetch_sub(&fail_first, 1) > 0)
		return fh_reply(c->fd, 503, "Unavailable", "", "{}", 2, false);
	return fh_reply(c->fd, 200, "OK", "", "{}", 2, false);
}

/* ---- the app ---- */

/* what the handler saw */
static char seen_span_id[17], seen_flags[3];
static bool seen_span;
static zc_span *seen_server;

static void
note(zc_req *req)
{
	const struct zc_reqctx *c = zc__reqctx(req);

	snprintf(seen_span_id, sizeof(seen_span_id), "%s", c->trace.span_id);
	snprintf(seen_flags, sizeof(seen_flags), "%s", c->trace.flags);
	seen_server = zc_req_span(req);
	seen_span = seen_server != NULL;
}

/* One GET to t-spans (retried on 503). */
static int
h_call(zc_req *req, zc_res *res, void *arg)
{
	zc_call *call;
	zc_err err;

	(void)arg;
	note(req);
	call = zc_call_new(req, "t-spans", "GET", "/down");
	err = zc_call_perform(call);
	zc_call_free(call);
	zc_res_status(res, err == ZC_OK ? 200 : 502);
	return 0;
}

static int
h_user(zc_req *req, zc_res *res, void *arg)
{
	zc_span *a, *b, *c;

	(void)arg;
	note(req);
	a = zc_span_start(req, "a");
	b = zc_span_start(req, "b");
	ck_assert_ptr_eq(zc_req_span(req), b);
	zc_span_set_str(b, "k", "v");
	zc_span_end(a); /* ends b too */
	ck_assert_ptr_eq(zc_req_span(req), seen_server);
	zc_span_end(a);           /* again: ignored */
	zc_span_end(seen_server); /* the runtime's: ignored */
	ck_assert_ptr_eq(zc_req_span(req), seen_server);
	c = zc_span_start(req, "left-open");
	zc_span_error(c, "bad %d", 7);
	zc_res_status(res, 500); /* 5xx: the server span is an error */
	return 0;
}

static int
setup(zc_app *app)
{
	if (zc_route(app, "GET", "/call", h_call, NULL) != ZC_OK ||
	    zc_route(app, "GET", "/user/{id}", h_user, NULL) != ZC_OK)
		return -1;
	return 0;
}

static zc_app *app;

static void
tracing(int sampler, double ratio)
{
	struct zc_otel o;

	memset(&o, 0, sizeof(o));
	o.sampler = sampler;
	o.ratio = ratio;
	o.max_queue = 256;
	o.max_batch = 256;
	zc__tracing_enable(&o);
}

static void
up(void)
{
	atomic_store(&fail_first, 0);
	fh_start(&fake, answer);
	set_service_port("t-spans", fake.port);
	setenv("T_SPANS_BACKOFF_MS", "1", 1);
	app = open_app(setup);
	seen_span = false;
}

static void
down(void)
{
	zc__tracing_disable();
	zc_app_free(app);
	app = NULL;
	fh_stop(&fake);
	unsetenv("T_SPANS_URL");
	unsetenv("T_SPANS_BACKOFF_MS");
}

static int
get(const char *path, const char *traceparent)
{
	char h[128];
	const char *headers[] = {h, NULL};
	zc_res *res;
	int status;

	snprintf(h, sizeof(h), "traceparent: %s", traceparent);
	res = zc_test_request(app, "GET", path,
			      traceparent != NULL ? headers : NULL, NULL);
	ck_assert_ptr_nonnull(res);
	status = zc_res_get_status(res);
	zc_res_free(res);
	return status;
}

/* ---- the spans recorded ---- */

#define MAXS 32
static struct zc_span *spans[MAXS];
static int nspans;

static void
take(void)
{
	struct zc_span *l, *next;

	nspans = 0;
	zc__span_take(&l, 1000, zc__now_ns());
	for (; l != NULL; l = next) {
		next = l->next;
		ck_assert_int_lt(nspans, MAXS);
		spans[nspans++] = l;
	}
}

static void
release(void)
{
	int i;

	for (i = 0; i < nspans; i++)
		zc__span_free(spans[i]);
	nspans = 0;
}

static struct zc_span *
named(const char *name)
{
	int i;

	for (i = 0; i < nspans; i++)
		if (strcmp(spans[i]->name, name) == 0)
			return spans[i];
	ck_abort_msg("no span %s", name);
	return NULL;
}

static const struct zc_attr *
attr(const struct zc_span *s, const char *key)
{
	int i;

	for (i = 0; i < s->nattrs; i++)
		if (strcmp(s->attrs[i].key, key) == 0)
			return &s->attrs[i];
	return NULL;
}

static const char *
str(const struct zc_span *s, const char *key)
{
	const struct zc_attr *a = attr(s, key);

	ck_assert_msg(a != NULL && a->type == ZC_ATTR_STR, "%s of %s", key,
		      s->name);
	return a->v.s;
}

static int64_t
num(const struct zc_span *s, const char *key)
{
	const struct zc_attr *a = attr(s, key);

	ck_assert_msg(a != NULL && a->type == ZC_ATTR_INT, "%s of %s", key,
		      s->name);
	return a->v.i;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static bool
child_of(const struct zc_span *c, const struct zc_span *p)
{
	return c->has_parent && memcmp(c->parent_id, p->ctx.span_id, 8) == 0 &&
	       memcmp(c->ctx.trace_id, p->ctx.trace_id, 16) == 0;
}

/* ---- tests ---- */

START_TEST(server_span_continues_the_caller)
{
	struct zc_span *s, *c;
	char id[33], tp[128];

	tracing(ZC_SAMPLE_PARENT_ON, 1.0);
	ck_assert_int_eq(get("/call", "00-" TID "-" PID "-01"), 200);
	take();
	ck_assert_int_eq(nspans, 2);
	s = named("GET /call");
	c = named("GET");
	ck_assert_int_eq(s->kind, ZC_SPAN_SERVER);
	hex(s->ctx.trace_id, 16, id);
	ck_assert_str_eq(id, TID);
	hex(s->parent_id, 8, id);
	ck_assert_str_eq(id, PID);
	ck_assert(s->parent_remote);
	/* the span id the log lines and events already use */
	hex(s->ctx.span_id, 8, id);
	ck_assert_str_eq(id, seen_span_id);
	ck_assert_str_eq(seen_flags, "01");
	ck_assert_str_eq(str(s, "http.request.method"), "GET");
	ck_assert_str_eq(str(s, "http.route"), "/call");
	ck_assert_str_eq(str(s, "url.path"), "/call");
	ck_assert_str_eq(str(s, "url.scheme"), "http");
	ck_assert_int_eq(num(s, "http.response.status_code"), 200);
	ck_assert_int_eq(s->status, ZC_STATUS_UNSET);
	ck_assert_ptr_null(attr(s, "error.type"));
	/* the client span: its child, its id on the wire */
	ck_assert_int_eq(c->kind, ZC_SPAN_CLIENT);
	ck_assert(child_of(c, s));
	ck_assert(!c->parent_remote);
	ck_assert_int_eq(num(c, "http.response.status_code"), 200);
	ck_assert_int_eq(num(c, "server.port"), fake.port);
	ck_assert_str_eq(str(c, "server.address"), "127.0.0.1");
	hex(c->ctx.span_id, 8, id);
	fh_rec_header(&fake, 0, "traceparent", tp, sizeof(tp));
	ck_assert_int_eq(strlen(tp), 55);
	ck_assert(strncmp(tp + 3, TID, 32) == 0);
	ck_assert(strncmp(tp + 36, id, 16) == 0);
	ck_assert_str_eq(tp + 53, "01");
	ck_assert(s->start_ns <= c->start_ns && c->end_ns <= s->end_ns);
	release();
}
END_TEST

START_TEST(each_attempt_its_span_and_traceparent)
{
	struct zc_span *s, *a[3];
	char id[17], tp[128];
	int i, n = 0;

	tracing(ZC_SAMPLE_ALWAYS_ON, 1.0);
	atomic_store(&fail_first, 2);
	ck_assert_int_eq(get("/call", NULL), 200);
	take();
	s = named("GET /call");
	ck_assert(!s->has_parent); /* a root in the request's trace */
	for (i = 0; i < nspans; i++)
		if (spans[i]->kind == ZC_SPAN_CLIENT)
			a[n++] = spans[i];
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(atomic_load(&fake.requests), 3);
	for (i = 0; i < 3; i++) {
		ck_assert(child_of(a[i], s));
		hex(a[i]->ctx.span_id, 8, id);
		fh_rec_header(&fake, i, "traceparent", tp, sizeof(tp));
		ck_assert_msg(strncmp(tp + 36, id, 16) == 0, "attempt %d: %s",
			      i, tp);
		if (i == 0)
			ck_assert_ptr_null(
				attr(a[i], "http.request.resend_count"));
		else
			ck_assert_int_eq(num(a[i], "http.request.resend_count"),
					 i);
		ck_assert_int_eq(a[i]->status,
				 i < 2 ? ZC_STATUS_ERROR : ZC_STATUS_UNSET);
		if (i < 2)
			ck_assert_str_eq(str(a[i], "error.type"), "503");
	}
	release();
}
END_TEST

START_TEST(unsampled_caller_records_nothing_and_says_so)
{
	char tp[128];

	tracing(ZC_SAMPLE_PARENT_ON, 1.0);
	ck_assert_int_eq(get("/call", "00-" TID "-" PID "-00"), 200);
	ck_assert(!seen_span);
	ck_assert_str_eq(seen_flags, "00");
	take();
	ck_assert_int_eq(nspans, 0);
	fh_rec_header(&fake, 0, "traceparent", tp, sizeof(tp));
	ck_assert(strncmp(tp + 3, TID, 32) == 0);
	ck_assert_str_eq(tp + 53, "00");
}
END_TEST

START_TEST(ratio_decides_and_the_flags_follow)
{
	char tp[128];

	/* traceidratio is not parent-based: a sampled caller is overruled */
	tracing(ZC_SAMPLE_RATIO, 0.0);
	ck_assert_int_eq(get("/call", "00-" TID "-" PID "-01"), 200);
	ck_assert(!seen_span);
	ck_assert_str_eq(seen_flags, "00");
	fh_rec_header(&fake, 0, "traceparent", tp, sizeof(tp));
	ck_assert_str_eq(tp + 53, "00");
	take();
	ck_assert_int_eq(nspans, 0);
	zc__tracing_disable();
	/* and parentbased_always_off samples a root never */
	tracing(ZC_SAMPLE_PARENT_OFF, 1.0);
	ck_assert_int_eq(get("/call", NULL), 200);
	ck_assert(!seen_span);
	take();
	ck_assert_int_eq(nspans, 0);
}
END_TEST

START_TEST(handler_spans_nest_and_end)
{
	struct zc_span *s, *a, *b, *c;

	tracing(ZC_SAMPLE_ALWAYS_ON, 1.0);
	ck_assert_int_eq(get("/user/7", NULL), 500);
	take();
	ck_assert_int_eq(nspans, 4);
	s = named("GET /user/{id}");
	a = named("a");
	b = named("b");
	c = named("left-open");
	ck_assert(child_of(a, s) && child_of(b, a) && child_of(c, s));
	ck_assert_int_eq(a->kind, ZC_SPAN_INTERNAL);
	ck_assert_str_eq(str(b, "k"), "v");
	ck_assert(b->end_ns <= a->end_ns);
	ck_assert(c->end_ns <= s->end_ns);
	ck_assert_int_eq(c->status, ZC_STATUS_ERROR);
	ck_assert_str_eq(c->status_message, "bad 7");
	ck_assert_str_eq(str(s, "url.path"), "/user/7");
	ck_assert_int_eq(s->status, ZC_STATUS_ERROR);
	ck_assert_str_eq(str(s, "error.type"), "500");
	release();
}
END_TEST

START_TEST(probes_metrics_make_no_span_404_does)
{
	struct zc_span *s;

	tracing(ZC_SAMPLE_ALWAYS_ON, 1.0);
	ck_assert_int_eq(get("/health/readiness", NULL), 200);
	ck_assert_int_eq(get("/health/liveness", NULL), 200);
	ck_assert_int_eq(get("/metrics", NULL), 200);
	take();
	ck_assert_int_eq(nspans, 0);
	ck_assert_int_eq(get("/nope?x=1", NULL), 404);
	take();
	ck_assert_int_eq(nspans, 1);
	s = spans[0];
	ck_assert_str_eq(s->name, "GET");
	ck_assert_ptr_null(attr(s, "http.route"));
	ck_assert_str_eq(str(s, "url.query"), "x=1");
	ck_assert_int_eq(s->status, ZC_STATUS_UNSET);
	release();
}
END_TEST

START_TEST(unknown_method_is_other)
{
	zc_res *res;
	struct zc_span *s;

	tracing(ZC_SAMPLE_ALWAYS_ON, 1.0);
	res = zc_test_request(app, "FROB", "/call", NULL, NULL);
	zc_res_free(res);
	take();
	ck_assert_int_eq(nspans, 1);
	s = spans[0];
	ck_assert_str_eq(s->name, "HTTP"); /* 405: no route matched */
	ck_assert_str_eq(str(s, "http.request.method"), "_OTHER");
	ck_assert_str_eq(str(s, "http.request.method_original"), "FROB");
	release();
}
END_TEST

START_TEST(off_is_null_everywhere)
{
	char tp[128];

	ck_assert(!zc__tracing_on());
	ck_assert_int_eq(get("/user/1", "00-" TID "-" PID "-01"), 500);
	ck_assert(!seen_span);
	ck_assert_str_eq(seen_flags, "01");
	ck_assert_int_eq(get("/call", "00-" TID "-" PID "-01"), 200);
	fh_rec_header(&fake, 0, "traceparent", tp, sizeof(tp));
	/* as before: a new parent id of its own, the caller's flags */
	ck_assert(strncmp(tp + 36, PID, 16) != 0);
	ck_assert_str_eq(tp + 53, "01");
	ck_assert_ptr_null(zc_req_span(NULL));
	ck_assert_ptr_null(zc_span_start(NULL, "x"));
	zc_span_end(NULL);
	zc_span_set_str(NULL, "k", "v");
	zc_span_event(NULL, "e");
	zc_span_error(NULL, "e");
	take();
	ck_assert_int_eq(nspans, 0);
}
END_TEST

static Suite *
spans_suite(void)
{
	Suite *s = suite_create("spans");
	TCase *tc = tcase_create("spans");

	tcase_add_checked_fixture(tc, up, down);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, server_span_continues_the_caller);
	tcase_add_test(tc, each_attempt_its_span_and_traceparent);
	tcase_add_test(tc, unsampled_caller_records_nothing_and_says_so);
	tcase_add_test(tc, ratio_decides_and_the_flags_follow);
	tcase_add_test(tc, handler_spans_nest_and_end);
	tcase_add_test(tc, probes_metrics_make_no_span_404_does);
	tcase_add_test(tc, unknown_method_is_other);
	tcase_add_test(tc, off_is_null_everywhere);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_client_suite(spans_suite());
}
