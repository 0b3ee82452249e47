/*
 * dispatch.c - from a complete request to a response: health endpoints,
 * limits, routing (404/405/OPTIONS), the handler, and what a failed or late
 * handler turns into.  The server and zc_test_request both come through
 * here, so a handler test sees exactly what a client would.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
health(zc_app *app, zc_req *req, zc_res *res, bool readiness)
{
	int state = atomic_load(&app->state);
	const char *gate;

	(void)req;
	if (!readiness) {
		zc_res_jsonf(res, 200, "{s:s}", "status", "alive");
		return;
	}
	if (state != ZC_READY)
		zc_res_jsonf(res, 503, "{s:s}", "status",
			     state == ZC_DRAINING ? "draining" : "starting");
	/* requests that need the store would get 503: send none here */
	else if (app->uses_store && !zc__store_ready())
		zc_res_jsonf(res, 503, "{s:s}", "status", "store unavailable");
	/* something the function waits for (the Dapr sidecar) is not there */
	else if ((gate = zc__ready_gate_reason()) != NULL)
		zc_res_jsonf(res, 503, "{s:s}", "status", gate);
	/* saturated: the probe itself is one of the requests in flight */
	else if (app->cfg.max_inflight > 0 &&
		 atomic_load(&app->inflight) - 1 >= app->cfg.max_inflight)
		zc_res_jsonf(res, 503, "{s:s}", "status", "saturated");
	else
		zc_res_jsonf(res, 200, "{s:s}", "status", "ready");
}

static void
metrics(zc_res *res)
{
	size_t len;
	char *text = zc__metrics_render(&len);

	if (text == NULL) {
		zc_res_error(res, 503, "out of memory");
		return;
	}
	zc__res_reset(res);
	res->body = text;
	res->len = len;
	res->status = 200;
	res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static bool
is_get_or_head(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static int guarded(zc_req *req, zc_res *res, const struct zc_route *route,
		   int *rc);
static void run_checks(zc_app *app, zc_req *req, zc_res *res,
		       const struct zc_route *route, int rc);

static void serve(zc_app *app, zc_req *req, zc_res *res);

void
zc__dispatch(zc_app *app, zc_req *req, zc_res *res)
{
	serve(app, req, res);
	if (req->ctx.server_span == NULL)
		return;
	/* spans a handler left open end with it */
	zc__req_spans_unwind(req);
	/* an in-process request has no connection to complete: its span
	 * ends with its answer */
	if (req->conn == NULL)
		zc__server_span_end(req, res->status);
}

static void
serve(zc_app *app, zc_req *req, zc_res *res)
{
	char *segs[ZC_MAX_SEGS];
	char allow[128];
	const struct zc_route *route;
	bool known;
	int nsegs, i, rc;
	size_t plen;

	zc__req_trace_begin(req);
	req->route_id = ZC_ROUTE_ID_NONE;
	if (app->cfg.metrics_path != NULL &&
	    strcmp(req->ctx.path, app->cfg.metrics_path) == 0 &&
	    is_get_or_head(req->ctx.method)) {
		req->route_id = ZC_ROUTE_ID_METRICS;
		metrics(res);
		return;
	}
	if (strcmp(req->ctx.path, app->cfg.readiness_path) == 0 ||
	    strcmp(req->ctx.path, app->cfg.liveness_path) == 0) {
		req->route_id = ZC_ROUTE_ID_HEALTH;
		if (is_get_or_head(req->ctx.method)) {
			health(app, req, res,
			       strcmp(req->ctx.path, app->cfg.readiness_path) ==
				       0);
		} else if (strcmp(req->ctx.method, "OPTIONS") == 0) {
			zc_res_status(res, 204);
			zc_res_header(res, "Allow", "GET, HEAD, OPTIONS");
		} else {
			zc_res_error(res, 405,
				     "method %s not allowed for %s; allowed: "
				     "GET, HEAD, OPTIONS",
				     req->ctx.method, req->ctx.path);
			zc_res_header(res, "Allow", "GET, HEAD, OPTIONS");
		}
		return;
	}
	/* probes and metrics above make no span; everything else does */
	zc__server_span_begin(req);
	if (req->ctx.path[0] == '\x01') {
		/* an encoded NUL (%00): C would cut the path there */
		zc_res_error(res, 400,
			     "request target contains an encoded NUL (%%00)");
		return;
	}
	if (req->early_status != 0) {
		zc_res_error(res, req->early_status, "%s", req->early_msg);
		return;
	}
	if (req->shed) {
		/* over ZC_MAX_INFLIGHT: refuse at once, queue nothing */
		zc_res_error(res, 503,
			     "over capacity: %ld requests in flight; retry "
			     "later",
			     app->cfg.max_inflight);
		zc_res_header(res, "Retry-After", "1");
		return;
	}
	if (req->too_large) {
		zc_res_error(res, 413,
			     "request body exceeds the limit of %zu bytes",
			     app->cfg.max_body);
		return;
	}
	if (req->ctx.path[0] != '/') {
		/* "OPTIONS *" and absolute-form targets */
		if (strcmp(req->ctx.method, "OPTIONS") == 0 &&
		    strcmp(req->ctx.path, "*") == 0) {
			zc_res_status(res, 204);
			return;
		}
		zc_res_error(res, 400,
			     "request target must be an absolute path");
		return;
	}
	plen = strlen(req->ctx.path);
	free(req->path_copy);
	req->path_copy = malloc(plen);
	if (req->path_copy == NULL) {
		zc_res_error(res, 503, "out of memory");
		return;
	}
	memcpy(req->path_copy, req->ctx.path + 1, plen); /* includes the NUL */
	nsegs = zc__split_path(req->path_copy, segs);
	route = nsegs < 0 ? NULL
			  : zc__router_match(app, req->ctx.method, segs, nsegs,
					     &known, allow, sizeof(allow));
	if (nsegs < 0)
		known = false;
	if (route == NULL) {
		if (!known) {
			zc_res_error(res, 404, "no route for %s %s",
				     req->ctx.method, req->ctx.path);
		} else if (strcmp(req->ctx.method, "OPTIONS") == 0) {
			zc_res_status(res, 204);
			zc_res_header(res, "Allow", allow);
		} else {
			zc_res_error(
				res, 405,
				"method %s not allowed for %s; allowed: %s",
				req->ctx.method, req->ctx.path, allow);
			zc_res_header(res, "Allow", allow);
		}
		return;
	}
	req->ctx.route = route->pattern;
	req->route_id = zc__metrics_route_id((size_t)(route - app->routes));
	req->nparams = 0;
	for (i = 0; i < route->nsegs; i++) {
		if (route->is_param[i]) {
			req->param_names[req->nparams] = route->segs[i];
			req->param_values[req->nparams] = segs[i];
			req->nparams++;
		}
	}
	/* runtime lines about this request carry its trace id too */
	zc__set_current(req);
	if (route->idempotent || route->transactional) {
		if (guarded(req, res, route, &rc) != 0) {
			zc__set_current(NULL);
			return; /* a replay, 409, 422 or 400: no handler ran */
		}
	} else {
		rc = route->handler(req, res, route->arg);
	}
	run_checks(app, req, res, route, rc);
	zc__set_current(NULL);
}

/* The handler, as zc__guarded_run calls it: an answer with no status
 * gets 200 or 204 now, so that is what a record keeps. */
static int
http_run(zc_req *req, zc_res *res, void *arg)
{
	const struct zc_route *route = arg;
	int rc = route->handler(req, res, route->arg);

	if (rc == 0 && res->status == 0)
		res->status = res->body != NULL ? 200 : 204;
	return rc;
}

/* An HTTP route keeps its answer as it is (body borrowed). */
static int
http_keep(const zc_res *res, struct zc_answer *ans, char **hold, void *arg)
{
	(void)arg;
	*hold = NULL;
	*ans = zc__res_answer(res);
	return 0;
}

/*
 * An Idempotency-Key is an sf-string ("...") by the draft, but plain tokens
 * are common (Stripe); both are accepted: printable ASCII, 1-255 chars.
 * Writes it into key; -1 with a 400 in res when it is malformed.
 */
static int
idempotency_key(zc_req *req, zc_res *res, char *key)
{
	const char *raw = zc_req_header(req, "Idempotency-Key");
	size_t n, i;

	key[0] = '\0';
	if (raw == NULL)
		return 0;
	n = strlen(raw);
	if (n >= 2 && raw[0] == '"' && raw[n - 1] == '"') {
		raw++;
		n -= 2;
	}
	for (i = 0; i < n; i++)
		if (raw[i] < 0x21 || raw[i] > 0x7e || raw[i] == '"')
			break;
	if (n == 0 || n > 255 || i < n) {
		zc_res_error(res, 400,
			     "invalid Idempotency-Key: expected 1 to 255 "
			     "printable ASCII characters");
		return -1;
	}
	memcpy(key, raw, n);
	key[n] = '\0';
	return 0;
}

/*
 * The handler of an idempotent or transactional route.  0: it ran (*rc
 * its result, or 0 with a 503 in res when the store failed); -1: res
 * holds the answer without it (a replay, 409, 422, 400).
 */
static int
guarded(zc_req *req, zc_res *res, const struct zc_route *route, int *rc)
{
	char key[256], scope[2048];
	struct zc_guard g = {.transactional = route->transactional,
			     .run = http_run,
			     .keep = http_keep,
			     .arg = (void *)route};

	*rc = 0;
	if (route->idempotent) {
		if (idempotency_key(req, res, key) != 0)
			return -1;
		/* per method and path: one key on /a/1 and /a/2 is two */
		snprintf(scope, sizeof(scope), "%s %s", route->method,
			 req->ctx.path);
		if (key[0] != '\0') {
			g.scope = scope;
			g.key = key;
			g.payload = req->body != NULL ? req->body : "";
			g.len = req->body_len;
		}
	}
	switch (zc__guarded_run(req, res, &g)) {
	case ZC_IDEM_REPLAY:
		zc_res_header(res, "Idempotent-Replayed", "true");
		zc_info("replayed the stored answer for Idempotency-Key %s",
			key);
		return -1;
	case ZC_IDEM_CONFLICT:
		zc_res_error(res, 409,
			     "a request with this Idempotency-Key is still "
			     "being processed");
		zc_res_header(res, "Retry-After", "1");
		return -1;
	case ZC_IDEM_MISMATCH:
		zc_res_error(res, 422,
			     "this Idempotency-Key was used with a different "
			     "payload");
		return -1;
	}
	*rc = g.rc;
	return 0;
}

static void
run_checks(zc_app *app, zc_req *req, zc_res *res, const struct zc_route *route,
	   int rc)
{
	if (rc != 0) {
		/* The handler logged the detail; the client gets no internals. */
		zc_error("handler for %s %s failed (returned %d)",
			 req->ctx.method, route->pattern, rc);
		zc__res_reset(res);
		zc_res_error(res, 500, "internal error");
	} else if (zc__now_ns() > req->deadline_ns) {
		/*
		 * C cannot pre-empt a handler; the deadline bounds its
		 * outbound calls, and a handler that still overran is
		 * answered as a timeout rather than late and as if on time.
		 */
		zc_warn("handler for %s %s overran its %ld ms deadline",
			req->ctx.method, route->pattern,
			app->cfg.handler_timeout_ms);
		zc__res_reset(res);
		zc_res_error(res, 504,
			     "handler exceeded its deadline of %ld ms",
			     app->cfg.handler_timeout_ms);
	} else if (res->status == 0) {
		res->status = res->body != NULL ? 200 : 204;
	}
}
