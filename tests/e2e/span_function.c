/*
 * span_function.c - a test function for the e2e tracing tests
 * (test_tracing.py builds it against the build's libzenithc.a): a handler
 * that adds detail to its spans through zenith.h's tracing calls.
 *
 *   POST /work   sets an attribute and an event on the request's span,
 *                opens "compute" (attributes, an event, an error), opens
 *                "inner" inside it and ends "compute" (which ends "inner"
 *                too), calls downstream /log inside "outer-call", and
 *                leaves "left-open" open for the runtime to end; answers
 *                200 {"traced":<bool>,"status":<downstream status>}
 */
#include <zenith.h>

static int
work(zc_req *req, zc_res *res, void *arg)
{
	zc_span *server = zc_req_span(req), *compute, *inner, *outer;
	zc_call *call;
	zc_err err;
	int status = 0;

	(void)arg;
	zc_span_set_str(server, "app.user", "ada");
	zc_span_event(server, "validated");

	compute = zc_span_start(req, "compute");
	zc_span_set_int(compute, "app.items", 3);
	zc_span_set_double(compute, "app.ratio", 0.5);
	zc_span_set_bool(compute, "app.cached", true);
	zc_span_event(compute, "cache miss");
	inner = zc_span_start(req, "inner");
	zc_span_error(inner, "inner failed: %d", 42);
	/* ends inner as well; ending it again is ignored */
	zc_span_end(compute);
	zc_span_end(inner);
	zc_span_end(server); /* not the handler's to end: ignored */

	outer = zc_span_start(req, "outer-call");
	call = zc_call_new(req, "downstream", "POST", "/log");
	err = zc_call_jsonf(call, "{s:s, s:{s:s}}", "action", "span", "details",
			    "account", "ACC-SPAN");
	if (err == ZC_OK)
		err = zc_call_header(call, "Idempotency-Key", "span-test");
	if (err == ZC_OK)
		err = zc_call_perform(call);
	status = zc_call_status(call);
	zc_call_free(call);
	zc_span_end(outer);

	(void)zc_span_start(req, "left-open");
	return zc_res_jsonf(res, 200, "{s:b, s:i}", "traced", server != NULL,
			    "status", status);
}

int
zc_function_setup(zc_app *app)
{
	return zc_route(app, "POST", "/work", work, NULL);
}
