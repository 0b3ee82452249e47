/*
 * dapr_pubsub.c - Dapr pub/sub: routes subscribed to topics (the sidecar
 * reads GET /dapr/subscribe once, at its start), each delivery taken
 * through the CloudEvents receiving path (receive.c: structured mode,
 * dedup on source + id, transactions) with the answer put in Dapr's
 * terms, SUCCESS, RETRY or DROP, APP_API_TOKEN checked on what the
 * sidecar sends, and zc_dapr_publish.
 *
 * Dapr retries every non-2xx answer but 404, so a delivery is always
 * answered 200 with the status Dapr reads: a malformed event says DROP
 * rather than 400, which Dapr would redeliver for ever.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dapr_sub {
	char *pubsub, *topic, *path, *type;
	zc_event_handler handler;
	void *arg;
	unsigned flags;
};

struct dapr_reg {
	struct dapr_sub *subs;
	size_t n;
	char *token; /* APP_API_TOKEN, or NULL: not checked */
};

void
zc__dapr_free(zc_app *app)
{
	struct dapr_reg *r;
	size_t i;

	if (app == NULL || (r = app->dapr) == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		free(r->subs[i].pubsub);
		free(r->subs[i].topic);
		free(r->subs[i].path);
		free(r->subs[i].type);
	}
	free(r->subs);
	free(r->token);
	free(r);
	app->dapr = NULL;
}

/* ---------------------------------------------------------------------
 * The pure parts: Dapr's answer, the token, the subscription list
 * ------------------------------------------------------------------- */
int
zc__dapr_outcome(int rc, int status)
{
	if (rc != 0)
		return ZC_DAPR_RETRY; /* the handler failed: maybe not next time */
	if (status == 0)
		status = 202;
	if (status >= 200 && status <= 299)
		return ZC_DAPR_SUCCESS;
	/* the broker's to retry, as Knative would: the handler's or the
	 * store's trouble (5xx), a timeout, an event still in progress */
	if (status >= 500 || status == 408 || status == 409 || status == 429)
		return ZC_DAPR_RETRY;
	/* the event's own fault (a malformed event, bad data): no
	 * redelivery changes it */
	return ZC_DAPR_DROP;
}

const char *
zc__dapr_outcome_name(int outcome)
{
	switch (outcome) {
	case ZC_DAPR_SUCCESS:
		return "SUCCESS";
	case ZC_DAPR_RETRY:
		return "RETRY";
	default:
		return "DROP";
	}
}

bool
zc__dapr_token_ok(const char *expected, const char *got)
{
	size_t n, m, i;
	unsigned char diff;

	if (expected == NULL || got == NULL)
		return false;
	n = strlen(expected);
	m = strlen(got);
	/* every byte of expected is compared, whatever got holds */
	diff = (unsigned char)(n != m);
	for (i = 0; i < n; i++)
		diff |= (unsigned char)(expected[i] ^ (i < m ? got[i] : 0));
	return diff == 0;
}

static json_t *
subscriptions_json(const zc_app *app)
{
	const struct dapr_reg *r = app != NULL ? app->dapr : NULL;
	json_t *arr = json_array(), *o;
	size_t i;

	for (i = 0; arr != NULL && r != NULL && i < r->n; i++) {
		o = json_pack("{s:s, s:s, s:s}", "pubsubname",
			      r->subs[i].pubsub, "topic", r->subs[i].topic,
			      "route", r->subs[i].path);
		if (o == NULL || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

char *
zc__dapr_subscriptions(const zc_app *app, size_t *len)
{
	json_t *arr = subscriptions_json(app);
	char *text = arr != NULL ? zc__json_dump(arr, len) : NULL;

	json_decref(arr);
	return text;
}

/* ---------------------------------------------------------------------
 * What the sidecar sends: the subscription list and deliveries
 * ------------------------------------------------------------------- */
/*
 * APP_API_TOKEN: the sidecar sends it as dapr-api-token.  Only the
 * routes the sidecar alone calls are checked; the function's other
 * routes serve other callers (Knative's data plane, other functions),
 * which never hold the sidecar's token.
 */
static bool
authorized(zc_req *req, zc_res *res)
{
	const struct dapr_reg *r = req->app->dapr;
	const char *got;

	if (r == NULL || r->token == NULL)
		return true;
	got = zc_req_header(req, "dapr-api-token");
	if (zc__dapr_token_ok(r->token, got))
		return true;
	zc_warn("refused %s %s: %s dapr-api-token (APP_API_TOKEN is set; the "
		"sidecar sends it when given the same token)",
		zc_req_method(req), zc_req_path(req),
		got == NULL ? "no" : "a wrong");
	zc_res_error(res, 401, "missing or wrong dapr-api-token");
	return false;
}

static int
on_subscribe(zc_req *req, zc_res *res, void *arg)
{
	json_t *arr;

	(void)arg;
	if (!authorized(req, res))
		return 0;
	if ((arr = subscriptions_json(req->app)) == NULL)
		return -1;
	return zc_res_json(res, 200, arr) == ZC_OK ? 0 : -1;
}

/* Why a delivery is not a SUCCESS, in one line naming the event. */
static void
log_outcome(zc_req *req, int rc, const zc_res *res, int outcome)
{
	json_t *ev = json_loadb(req->body != NULL ? req->body : "",
				req->body_len, 0, NULL);
	json_t *ans = NULL;
	const char *id = json_string_value(json_object_get(ev, "id"));
	const char *topic = json_string_value(json_object_get(ev, "topic"));
	const char *ps = json_string_value(json_object_get(ev, "pubsubname"));
	const char *why = NULL;
	char what[320];

	if (rc != 0) {
		snprintf(what, sizeof(what), "the handler failed (returned %d)",
			 rc);
	} else {
		if (res->body != NULL && res->len > 0)
			ans = json_loadb(res->body, res->len, 0, NULL);
		why = json_string_value(json_object_get(ans, "error"));
		snprintf(what, sizeof(what), "HTTP %d%s%.256s",
			 res->status != 0 ? res->status : 202,
			 why != NULL ? ": " : "", why != NULL ? why : "");
	}
	zc_warn("Dapr delivery to %s (event %s, topic %s of %s): %s; "
		"answered %s%s",
		zc_req_path(req), id != NULL ? id : "(unreadable)",
		topic != NULL ? topic : "?", ps != NULL ? ps : "?", what,
		zc__dapr_outcome_name(outcome),
		outcome == ZC_DAPR_DROP ? ": not redelivered"
					: ": the sidecar redelivers it");
	json_decref(ans);
	json_decref(ev);
}

/* The route of every subscription: the event route's work, then the
 * answer in Dapr's terms (always 200). */
static int
on_delivery(zc_req *req, zc_res *res, void *path)
{
	int rc, outcome;

	if (!authorized(req, res))
		return 0;
	rc = zc__event_receive(req, res, path);
	outcome = zc__dapr_outcome(rc, res->status);
	if (outcome != ZC_DAPR_SUCCESS)
		log_outcome(req, rc, res, outcome);
	zc__res_reset(res);
	return zc_res_jsonf(res, 200, "{s:s}", "status",
			    zc__dapr_outcome_name(outcome)) == ZC_OK
		       ? 0
		       : -1;
}

/* ---------------------------------------------------------------------
 * Registering subscriptions
 * ------------------------------------------------------------------- */
static bool
text_ok(const char *s, size_t max)
{
	size_t n = s != NULL ? strlen(s) : 0;

	return n > 0 && n <= max && zc__ce_check_text(s, n) == ZC_CE_TEXT_OK;
}

static bool
same_type(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	       (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A new registry: the subscription list's route, the token read. */
static zc_err
registry(zc_app *app, struct dapr_reg **out)
{
	const char *tok = getenv("APP_API_TOKEN");
	struct dapr_reg *r;
	zc_err err;

	if ((*out = app->dapr) != NULL)
		return ZC_OK;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return ZC_ERR_NOMEM;
	if (tok != NULL && *tok != '\0' && (r->token = strdup(tok)) == NULL) {
		free(r);
		return ZC_ERR_NOMEM;
	}
	if ((err = zc_route(app, "GET", "/dapr/subscribe", on_subscribe,
			    NULL)) != ZC_OK) {
		zc_error("zc_dapr_subscribe: GET /dapr/subscribe cannot be "
			 "routed (already a route?)");
		free(r->token);
		free(r);
		return err;
	}
	*out = app->dapr = r;
	return ZC_OK;
}

zc_err
zc_dapr_subscribe(zc_app *app, const char *pubsub, const char *topic,
		  const char *path, zc_event_handler handler, void *arg,
		  const zc_route_opts *opts)
{
	const char *type = opts != NULL ? opts->event_type : NULL;
	unsigned flags = opts != NULL ? opts->flags : 0;
	struct dapr_reg *r;
	struct dapr_sub *ns, *s;
	bool shared = false;
	size_t i;
	zc_err err;

	if (app == NULL || handler == NULL || !text_ok(pubsub, 253) ||
	    strchr(pubsub, '/') != NULL || !text_ok(topic, 512) ||
	    !text_ok(path, 1024) || path[0] != '/' ||
	    strchr(path, '{') != NULL || (flags & ZC_ROUTE_REPLYING) != 0) {
		zc_error("zc_dapr_subscribe: invalid pubsub, topic, path "
			 "(\"/...\", no {parameters}), handler or options "
			 "(no ZC_ROUTE_REPLYING: Dapr takes no reply events)");
		return ZC_ERR_INVALID;
	}
	if ((err = registry(app, &r)) != ZC_OK)
		return err;
	for (i = 0; i < r->n; i++) {
		s = &r->subs[i];
		if (strcmp(s->pubsub, pubsub) == 0 &&
		    strcmp(s->topic, topic) == 0) {
			zc_error("zc_dapr_subscribe: topic %s of %s is "
				 "already subscribed (to %s)",
				 topic, pubsub, s->path);
			return ZC_ERR_INVALID;
		}
		/* several topics, one handler on one path: one route */
		if (strcmp(s->path, path) == 0 && s->handler == handler &&
		    s->arg == arg && s->flags == flags &&
		    same_type(s->type, type))
			shared = true;
	}
	if (!shared &&
	    (err = zc__event_route_front(app, path, handler, arg, opts,
					 on_delivery)) != ZC_OK)
		return err;
	ns = realloc(r->subs, (r->n + 1) * sizeof(*ns));
	if (ns == NULL)
		return ZC_ERR_NOMEM;
	r->subs = ns;
	s = &ns[r->n];
	memset(s, 0, sizeof(*s));
	s->pubsub = strdup(pubsub);
	s->topic = strdup(topic);
	s->path = strdup(path);
	s->type = type != NULL ? strdup(type) : NULL;
	s->handler = handler;
	s->arg = arg;
	s->flags = flags;
	if (s->pubsub == NULL || s->topic == NULL || s->path == NULL ||
	    (type != NULL && s->type == NULL)) {
		free(s->pubsub);
		free(s->topic);
		free(s->path);
		free(s->type);
		return ZC_ERR_NOMEM;
	}
	r->n++;
	zc_info("Dapr: topic %s of pub/sub %s delivered to POST %s%s", topic,
		pubsub, path,
		r->token != NULL ? " (dapr-api-token checked)" : "");
	return ZC_OK;
}

/* ---------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------- */
zc_err
zc_dapr_publish(zc_req *inbound, const char *pubsub, const char *topic,
		const zc_event *ev)
{
	char target[1024];
	int n;

	if (pubsub == NULL || topic == NULL || ev == NULL ||
	    strchr(pubsub, '/') != NULL)
		return ZC_ERR_INVALID;
	n = snprintf(target, sizeof(target), "dapr:%s/%s", pubsub, topic);
	if (n < 0 || (size_t)n >= sizeof(target))
		return ZC_ERR_TOO_LARGE;
	return zc_event_send(inbound, target, ev);
}
