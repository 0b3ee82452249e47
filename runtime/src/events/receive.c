/*
 * receive.c - events coming in: event routes on ordinary POST paths,
 * each event (binary, structured or batch mode) dispatched by type to its
 * handler, the answer or reply event, and dedup on source + id for
 * idempotent routes (the store's records, or this process's table, through
 * http/transaction.c, which also runs transactional routes).  A stored
 * reply event is kept in structured form under zc__ctype_stored_event.
 */
#include "events.h"

#include <ctype.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char media_structured[] = "application/cloudevents+json";
static const char media_batch[] = "application/cloudevents-batch+json";

/* ---------------------------------------------------------------------
 * The registry: event paths and the routes on each
 * ------------------------------------------------------------------- */
struct ev_sub {
	char *type; /* NULL: every type */
	zc_event_handler handler;
	void *arg;
	bool replying;
	bool idempotent;
	bool transactional; /* the handler runs in a store transaction */
};

struct ev_path {
	char *path;
	char *scope;      /* idempotency scope: "event <path>" */
	zc_handler front; /* the route's handler: on_event_request, or
			     Dapr's, which maps its answer */
	struct ev_sub *subs;
	size_t nsubs;
};

struct ev_registry {
	struct ev_path **paths;
	size_t n;
};

void
zc__events_free(zc_app *app)
{
	struct ev_registry *r;
	size_t i, j;

	if (app == NULL || (r = app->events) == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		struct ev_path *p = r->paths[i];
		for (j = 0; j < p->nsubs; j++)
			free(p->subs[j].type);
		free(p->subs);
		free(p->path);
		free(p->scope);
		free(p);
	}
	free(r->paths);
	free(r);
	app->events = NULL;
}

/* ---------------------------------------------------------------------
 * One event: its route, dedup, the handler and the answer
 * ------------------------------------------------------------------- */
/* Did the sender ask for a reply?  Prefer: reply (RFC 7240 list). */
static bool
prefers_reply(const zc_req *req)
{
	const char *p = zc_req_header(req, "Prefer");

	while (p != NULL && *p != '\0') {
		size_t n;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		n = strcspn(p, ",;= \t");
		if (n == 5 && strncasecmp(p, "reply", 5) == 0)
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* The route for ev's type: an exact type first, else a catch-all. */
static const struct ev_sub *
pick(const struct ev_path *p, const char *type)
{
	const struct ev_sub *any = NULL;
	size_t i;

	for (i = 0; i < p->nsubs; i++) {
		if (p->subs[i].type == NULL) {
			if (any == NULL)
				any = &p->subs[i];
		} else if (strcmp(p->subs[i].type, type) == 0) {
			return &p->subs[i];
		}
	}
	return any;
}

/* What identifies an event's content for duplicate detection: a
 * redelivery may differ in time or extensions, not in type or data. */
/*
 * The content type as a fingerprint compares it: by meaning, so that one
 * event redelivered in the other content mode is the same event.  The
 * media type only (parameters such as charset dropped), lower-case, and
 * absent meaning application/json when the data is JSON (CloudEvents'
 * JSON format: data without datacontenttype is JSON).
 */
static void
media_type_key(const char *ct, bool json_data, char *out, size_t size)
{
	size_t n = 0;
	const char *end;

	if (ct == NULL || *ct == '\0') {
		snprintf(out, size, "%s", json_data ? "application/json" : "");
		return;
	}
	while (*ct == ' ' || *ct == '\t')
		ct++;
	end = ct + strcspn(ct, ";");
	while (end > ct && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (; ct < end && n + 1 < size; ct++)
		out[n++] = (char)tolower((unsigned char)*ct);
	out[n] = '\0';
}

static char *
fingerprint(const zc_event *ev, size_t *len)
{
	const char *type = zc_event_type(ev);
	const char *raw = zc_event_datacontenttype(ev);
	char *dump = NULL, *buf, ct[128];
	const char *d = ev->data != NULL ? ev->data : "";
	size_t dl = ev->data != NULL ? ev->len : 0, tl, cl;

	if (ev->json != NULL) {
		/* the same JSON in binary and structured mode */
		if ((dump = zc__json_dump(ev->json, &dl)) == NULL)
			return NULL;
		d = dump;
	}
	media_type_key(raw, ev->json != NULL, ct, sizeof(ct));
	tl = strlen(type);
	cl = strlen(ct);
	if ((buf = malloc(tl + cl + dl + 3)) != NULL) {
		memcpy(buf, type, tl);
		buf[tl] = '\n';
		memcpy(buf + tl + 1, ct, cl);
		buf[tl + 1 + cl] = '\n';
		memcpy(buf + tl + cl + 2, d, dl);
		*len = tl + cl + 2 + dl;
	}
	free(dump);
	return buf;
}

/* Move the answer in from into to (to's old content is released). */
static void
res_move(zc_res *to, zc_res *from)
{
	zc__res_release(to);
	*to = *from;
	zc__res_init(from);
}

/* Did the handler answer with an event?  zc_res_event always writes
 * ce-specversion, and a handler writing it by hand means the same. */
static bool
res_is_event(const zc_res *res)
{
	return zc_res_get_header(res, "ce-specversion") != NULL;
}

/*
 * From what the handler left in scratch to the answer: a reply event goes
 * out only when asked for (Knative: a reply without Prefer: reply is just
 * an acknowledgement); nothing set is 202.
 */
static void
finish_answer(zc_res *out, zc_res *scratch, const zc_event *ev, bool want_reply)
{
	if (res_is_event(scratch) && !want_reply) {
		zc_debug("reply event to %s %s dropped: the request did not "
			 "ask for one (Prefer: reply)",
			 zc_event_type(ev), zc_event_id(ev));
		zc__res_release(scratch);
		zc__res_release(out);
		zc__res_init(out);
		zc_res_status(out, 202);
		return;
	}
	if (scratch->status == 0 && scratch->body == NULL)
		zc_res_status(scratch, 202);
	res_move(out, scratch);
}

/* One event's handler, as zc__guarded_run calls it. */
struct ev_run {
	const zc_event *ev;
	const struct ev_sub *sub;
};

static int
ev_run(zc_req *req, zc_res *res, void *arg)
{
	struct ev_run *r = arg;

	return r->sub->handler(req, r->ev, res, r->sub->arg);
}

/* What an idempotent route keeps: a reply event in structured form (the
 * buffer in *hold), else the answer with its status (nothing set: 202). */
static int
ev_keep(const zc_res *scratch, struct zc_answer *ans, char **hold, void *arg)
{
	zc_event *reply;
	json_t *j;
	size_t len;

	(void)arg;
	*hold = NULL;
	if (!res_is_event(scratch)) {
		ans->status = scratch->status != 0    ? scratch->status
			      : scratch->body != NULL ? 200
						      : 202;
		ans->ctype = scratch->content_type;
		ans->body = scratch->body;
		ans->len = scratch->len;
		return 0;
	}
	reply = zc__ce_event_from_res(scratch);
	j = reply != NULL ? zc__ce_event_to_json(reply) : NULL;
	*hold = j != NULL ? zc__json_dump(j, &len) : NULL;
	json_decref(j);
	zc_event_free(reply);
	if (*hold == NULL)
		return -1; /* not kept: a retry runs again */
	ans->status = 200;
	ans->ctype = zc__ctype_stored_event;
	ans->body = *hold;
	ans->len = len;
	return 0;
}

/* A stored answer given again; a stored reply is re-sent in binary mode. */
static void
idem_replay(zc_res *out, zc_res *stored, const zc_event *ev, bool want_reply)
{
	zc_event *reply = NULL;
	json_t *j;

	zc_info("event %s from %s already processed: not run again",
		zc_event_id(ev), zc_event_source(ev));
	if (stored->content_type != zc__ctype_stored_event) {
		res_move(out, stored);
		return;
	}
	zc__res_release(out);
	zc__res_init(out);
	if (want_reply) {
		struct zc__ce_err e;
		j = json_loadb(stored->body, stored->len, 0, NULL);
		reply = j != NULL ? zc__ce_event_from_json(j, &e) : NULL;
		json_decref(j);
	}
	if (reply == NULL || zc_res_event(out, reply) != ZC_OK)
		zc_res_status(out, 202);
	zc_event_free(reply);
	zc__res_release(stored);
}

static int on_event_request(zc_req *req, zc_res *res, void *arg);

/*
 * The CONSUMER "process" span of one event pushed to us: a child of the
 * request's span, linked to the context the event was created in (its
 * traceparent extension), current while its handler runs.
 */
static struct zc_span *
consumer_span(zc_req *req, const struct ev_path *p, const zc_event *ev)
{
	struct zc_span_ctx created = {0};
	struct zc_trace t;
	struct zc_span *s;
	const char *v;

	if (req->ctx.span == NULL)
		return NULL;
	if ((v = zc_event_attr(ev, "traceparent")) != NULL &&
	    zc__trace_parse(v, &t))
		zc__span_ctx_from_hex(&created, t.trace_id, t.parent_id,
				      t.flags, true);
	s = zc__req_span_push(req, ZC_SPAN_CONSUMER, "process",
			      zc__span_ctx_valid(&created) ? &created : NULL);
	if (s == NULL)
		return NULL;
	zc__span_attr_str(s, "messaging.system",
			  p->front == on_event_request ? "knative" : "dapr");
	zc__span_attr_str(s, "messaging.operation.name", "process");
	zc__span_attr_str(s, "messaging.operation.type", "process");
	zc__span_attr_str(s, "messaging.message.id", zc_event_id(ev));
	zc__span_attr_str(s, "cloudevents.event_id", zc_event_id(ev));
	zc__span_attr_str(s, "cloudevents.event_source", zc_event_source(ev));
	zc__span_attr_str(s, "cloudevents.event_type", zc_event_type(ev));
	if ((v = zc_event_attr(ev, "specversion")) != NULL)
		zc__span_attr_str(s, "cloudevents.event_spec_version", v);
	if ((v = zc_event_attr(ev, "subject")) != NULL)
		zc__span_attr_str(s, "cloudevents.event_subject", v);
	return s;
}

static void
consumer_span_end(zc_req *req, struct zc_span *s, int rc, int status)
{
	char code[16];

	if (s == NULL)
		return;
	if (rc != 0 || status >= 500) {
		snprintf(code, sizeof(code), "%d", rc != 0 ? 500 : status);
		zc__span_attr_str(s, "error.type", code);
		zc__span_status(s, ZC_STATUS_ERROR, NULL);
	}
	zc__req_span_pop(req, s);
}

/*
 * Run the route for one event into out.  Returns the handler's non-zero
 * result (out untouched), else 0 with out holding the answer.
 */
static int
deliver(zc_req *req, const struct ev_path *p, const zc_event *ev, zc_res *out,
	bool prefer_reply)
{
	const struct ev_sub *sub = pick(p, zc_event_type(ev));
	struct ev_run run = {ev, sub};
	struct zc_guard g = {.run = ev_run, .keep = ev_keep, .arg = &run};
	zc_res scratch;
	struct zc_span *span;
	char *fp = NULL, *key = NULL;
	size_t fplen, sl, il;
	bool want;
	int rc;

	if (sub == NULL) {
		zc_info("no event route on %s for type %s (event %s): "
			"accepted, not handled",
			p->path, zc_event_type(ev), zc_event_id(ev));
		zc_res_status(out, 202);
		return 0;
	}
	want = prefer_reply || sub->replying;
	g.transactional = sub->transactional;
	zc__res_init(&scratch);
	if (sub->idempotent && req->app->idem != NULL) {
		/* Knative: duplicates are detected on source + id */
		sl = strlen(zc_event_source(ev));
		il = strlen(zc_event_id(ev));
		key = malloc(sl + il + 2);
		fp = fingerprint(ev, &fplen);
		if (key != NULL && fp != NULL) {
			memcpy(key, zc_event_source(ev), sl);
			key[sl] = '\n';
			memcpy(key + sl + 1, zc_event_id(ev), il + 1);
			g.scope = p->scope;
			g.key = key;
			g.payload = fp;
			g.len = fplen;
		}
	}
	span = consumer_span(req, p, ev);
	rc = zc__guarded_run(req, &scratch, &g);
	consumer_span_end(req, span, g.rc, scratch.status);
	free(key);
	free(fp);
	switch (rc) {
	case ZC_IDEM_REPLAY:
		idem_replay(out, &scratch, ev, want);
		return 0;
	case ZC_IDEM_CONFLICT:
		zc_res_error(out, 409,
			     "an event with this source and id is still being "
			     "processed");
		zc_res_header(out, "Retry-After", "1");
		return 0;
	case ZC_IDEM_MISMATCH:
		zc_res_error(out, 422,
			     "an event with this source and id was processed "
			     "with another type or data");
		return 0;
	}
	if (g.rc != 0) {
		zc__res_release(&scratch);
		return g.rc;
	}
	finish_answer(out, &scratch, ev, want);
	return 0;
}

/* ---------------------------------------------------------------------
 * Requests: one event, or a batch
 * ------------------------------------------------------------------- */
static int
answer_error(zc_res *res, const struct zc__ce_err *e, long index)
{
	json_t *o;

	if (e->status == 0)
		return -1; /* out of memory: a 500 the sender retries */
	o = json_pack("{s:s}", "error", e->msg);
	if (o == NULL)
		return -1;
	if (e->attr[0] != '\0')
		json_object_set_new(o, "attribute", json_string(e->attr));
	if (index >= 0)
		json_object_set_new(o, "index", json_integer(index));
	return zc_res_json(res, e->status, o) == ZC_OK ? 0 : -1;
}

/* The "error" string of a JSON error body, if it has one. */
static const char *
error_text(const zc_res *r, json_t **holder)
{
	json_t *j;

	*holder = NULL;
	if (r->body == NULL || r->len == 0)
		return NULL;
	j = json_loadb(r->body, r->len, 0, NULL);
	*holder = j;
	return json_string_value(json_object_get(j, "error"));
}

/*
 * Batch mode: every event is checked before any handler runs (one
 * malformed event refuses the batch with 400); then each event is handled
 * in order.  All accepted: 202.  Otherwise the first failure's status,
 * with {"error":..., "results":[{"id","status"[,"error"]},...]}, so a
 * retried batch (5xx) is visible per event.  Replies are not sent.
 */
static int
handle_batch(zc_req *req, zc_res *res, const struct ev_path *p)
{
	json_t *arr, *results = NULL, *item, *holder;
	zc_event **evs = NULL;
	struct zc__ce_err e;
	size_t i, n = 0;
	int rc = 0, first = 0, st;
	long first_index = -1;
	char retry_after[32] = "";

	if (req->body_len == 0) {
		zc__ce_fail(&e, 400, NULL, "empty body: expected a JSON array");
		return answer_error(res, &e, -1);
	}
	arr = json_loadb(req->body, req->body_len,
			 JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (arr == NULL || !json_is_array(arr)) {
		json_decref(arr);
		zc__ce_fail(&e, 400, NULL,
			    "a batch must be a JSON array of events");
		return answer_error(res, &e, -1);
	}
	n = json_array_size(arr);
	if (n > 0 && (evs = calloc(n, sizeof(*evs))) == NULL) {
		json_decref(arr);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((evs[i] = zc__ce_event_from_json(json_array_get(arr, i),
						     &e)) == NULL) {
			char msg[sizeof(e.msg)];
			snprintf(msg, sizeof(msg), "%s", e.msg);
			snprintf(e.msg, sizeof(e.msg), "event %zu: %.200s", i,
				 msg);
			rc = answer_error(res, &e, (long)i);
			goto done;
		}
	}
	if ((results = json_array()) == NULL) {
		rc = -1;
		goto done;
	}
	for (i = 0; i < n; i++) {
		zc_res one;
		const char *err;

		zc__res_init(&one);
		if (deliver(req, p, evs[i], &one, false) != 0) {
			zc_error("event handler on %s failed for event %s "
				 "(%s)",
				 p->path, zc_event_id(evs[i]),
				 zc_event_type(evs[i]));
			zc__res_release(&one);
			zc_res_error(&one, 500, "internal error");
		}
		st = one.status;
		item = json_pack("{s:s, s:i}", "id", zc_event_id(evs[i]),
				 "status", st);
		if (st < 200 || st > 299) {
			err = error_text(&one, &holder);
			if (item != NULL && err != NULL)
				json_object_set_new(item, "error",
						    json_string(err));
			json_decref(holder);
			if (first == 0) {
				const char *ra =
					zc_res_get_header(&one, "Retry-After");
				first = st;
				first_index = (long)i;
				if (ra != NULL)
					snprintf(retry_after,
						 sizeof(retry_after), "%s", ra);
			}
		}
		zc__res_release(&one);
		if (item == NULL || json_array_append_new(results, item) != 0) {
			rc = -1;
			goto done;
		}
	}
	if (first == 0) {
		zc_res_status(res, 202);
	} else {
		char msg[96];
		json_t *o;

		snprintf(msg, sizeof(msg),
			 "event %ld of the batch failed with HTTP %d",
			 first_index, first);
		o = json_pack("{s:s, s:O}", "error", msg, "results", results);
		if (o == NULL) {
			rc = -1;
			goto done;
		}
		if (zc_res_json(res, first, o) != ZC_OK)
			rc = -1;
		if (retry_after[0] != '\0')
			zc_res_header(res, "Retry-After", retry_after);
	}
done:
	for (i = 0; i < n && evs != NULL; i++)
		zc_event_free(evs[i]);
	free(evs);
	json_decref(results);
	json_decref(arr);
	return rc;
}

/* The handler zc_route runs for every POST to an event path. */
static int
on_event_request(zc_req *req, zc_res *res, void *arg)
{
	const struct ev_path *p = arg;
	const char *ct = zc_req_header(req, "Content-Type");
	struct zc__ce_err e;
	zc_event *ev = NULL;
	json_t *j;
	char media[128];
	int rc;

	zc__ce_media_type(ct, media, sizeof(media));
	if (strncmp(media, "application/cloudevents-batch", 29) == 0) {
		if (strcmp(media, media_batch) != 0) {
			zc__ce_fail(&e, 415, NULL,
				    "unsupported batch format: expected %s",
				    media_batch);
			return answer_error(res, &e, -1);
		}
		return handle_batch(req, res, p);
	}
	if (strncmp(media, "application/cloudevents", 23) == 0) {
		if (strcmp(media, media_structured) != 0) {
			zc__ce_fail(&e, 415, NULL,
				    "unsupported event format: expected %s",
				    media_structured);
			return answer_error(res, &e, -1);
		}
		if (req->body_len == 0) {
			zc__ce_fail(&e, 400, NULL,
				    "empty body: expected a JSON event");
			return answer_error(res, &e, -1);
		}
		j = json_loadb(req->body, req->body_len,
			       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
		if (j == NULL) {
			zc__ce_fail(&e, 400, NULL,
				    "the structured event is not valid JSON");
			return answer_error(res, &e, -1);
		}
		ev = zc__ce_event_from_json(j, &e);
		json_decref(j);
	} else {
		ev = zc__ce_event_from_binary(req, &e);
	}
	if (ev == NULL)
		return answer_error(res, &e, -1);
	rc = deliver(req, p, ev, res, prefers_reply(req));
	zc_event_free(ev);
	return rc;
}

int
zc__event_receive(zc_req *req, zc_res *res, void *path)
{
	return on_event_request(req, res, path);
}

/* ---------------------------------------------------------------------
 * Registering event routes
 * ------------------------------------------------------------------- */
zc_err
zc_event_route(zc_app *app, const char *path, zc_event_handler handler,
	       void *arg, const zc_route_opts *opts)
{
	return zc__event_route_front(app, path, handler, arg, opts,
				     on_event_request);
}

zc_err
zc__event_route_front(zc_app *app, const char *path, zc_event_handler handler,
		      void *arg, const zc_route_opts *opts, zc_handler front)
{
	const char *type = opts != NULL ? opts->event_type : NULL;
	unsigned flags = opts != NULL ? opts->flags : 0;
	bool idempotent = (flags & ZC_ROUTE_IDEMPOTENT) != 0;
	bool replying = (flags & ZC_ROUTE_REPLYING) != 0;
	bool transactional = (flags & ZC_ROUTE_TRANSACTIONAL) != 0;
	struct ev_registry *r;
	struct ev_path *p = NULL;
	struct ev_sub *ns;
	size_t i;
	zc_err err;

	if (app == NULL || path == NULL || handler == NULL ||
	    (type != NULL &&
	     (*type == '\0' ||
	      zc__ce_check_text(type, strlen(type)) != ZC_CE_TEXT_OK))) {
		zc_error("zc_event_route: invalid path, type or handler");
		return ZC_ERR_INVALID;
	}
	if ((r = app->events) == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return ZC_ERR_NOMEM;
		app->events = r;
	}
	if (idempotent && app->idem == NULL) {
		app->idem = zc__idem_new(app->cfg.idem_max_keys,
					 app->cfg.idem_ttl_s);
		if (app->idem == NULL)
			return ZC_ERR_NOMEM;
	}
	for (i = 0; i < r->n; i++)
		if (strcmp(r->paths[i]->path, path) == 0)
			p = r->paths[i];
	if (p == NULL) {
		struct ev_path **np;
		size_t sl = strlen(path);

		np = realloc(r->paths, (r->n + 1) * sizeof(*np));
		if (np == NULL)
			return ZC_ERR_NOMEM;
		r->paths = np;
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return ZC_ERR_NOMEM;
		p->path = strdup(path);
		p->scope = malloc(sl + 7);
		if (p->path == NULL || p->scope == NULL) {
			free(p->path);
			free(p->scope);
			free(p);
			return ZC_ERR_NOMEM;
		}
		memcpy(p->scope, "event ", 6);
		memcpy(p->scope + 6, path, sl + 1);
		p->front = front;
		/* an ordinary route: OPTIONS, 405 and Allow come with it */
		if ((err = zc_route(app, "POST", path, front, p)) != ZC_OK) {
			free(p->path);
			free(p->scope);
			free(p);
			return err;
		}
		r->paths[r->n++] = p;
	} else if (p->front != front) {
		/* one path answers one way: Knative's statuses or Dapr's */
		zc_error("zc_event_route: %s is already a %s event route", path,
			 p->front == on_event_request ? "CloudEvents" : "Dapr");
		return ZC_ERR_INVALID;
	}
	for (i = 0; i < p->nsubs; i++) {
		const char *t = p->subs[i].type;
		if ((t == NULL && type == NULL) ||
		    (t != NULL && type != NULL && strcmp(t, type) == 0)) {
			zc_error("zc_event_route: %s already has a route for "
				 "%s events",
				 path, type != NULL ? type : "all");
			return ZC_ERR_INVALID;
		}
	}
	ns = realloc(p->subs, (p->nsubs + 1) * sizeof(*ns));
	if (ns == NULL)
		return ZC_ERR_NOMEM;
	p->subs = ns;
	memset(&ns[p->nsubs], 0, sizeof(*ns));
	if (type != NULL && (ns[p->nsubs].type = strdup(type)) == NULL)
		return ZC_ERR_NOMEM;
	ns[p->nsubs].handler = handler;
	ns[p->nsubs].arg = arg;
	ns[p->nsubs].replying = replying;
	ns[p->nsubs].idempotent = idempotent;
	ns[p->nsubs].transactional = transactional;
	if (transactional)
		app->uses_store = true;
	p->nsubs++;
	return ZC_OK;
}
