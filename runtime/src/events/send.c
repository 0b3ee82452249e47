/*
 * send.c - events going out: sent in binary mode to K_SINK, a URL or a
 * broker through the outbound client (retries, breaker, deadline, trace
 * headers), in structured mode to a Dapr sidecar's publish API for a
 * "dapr:<pubsub>/<topic>" target (dapr.c says where), or, from a
 * transactional handler with a durable store, as a
 * row of the outbox delivered after the commit; or written into a
 * handler's response as its reply event.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Filling an event in: ids, source, overrides, trace
 * ------------------------------------------------------------------- */
/* A random UUID (version 4): ids need only be unique per source. */
static void
new_uuid(char out[37])
{
	unsigned char b[16];
	uint64_t a = zc__rand64(), c = zc__rand64();
	int i;

	for (i = 0; i < 8; i++) {
		b[i] = (unsigned char)(a >> (8 * i));
		b[8 + i] = (unsigned char)(c >> (8 * i));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x"
		 "%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* The function's identity: K_SERVICE, the app's name, or "zenith-c". */
static const char *
default_source(const zc_req *ctx)
{
	const char *svc = getenv("K_SERVICE");

	if (svc != NULL && *svc != '\0')
		return svc;
	if (ctx != NULL && ctx->app != NULL && ctx->app->name[0] != '\0')
		return ctx->app->name;
	return "zenith-c";
}

/* Fill what the caller left empty: specversion, id, source, time. */
static zc_err
fill_defaults(zc_event *ev, const zc_req *ctx)
{
	char id[37], ts[40];
	const char *t = zc_event_type(ev);
	zc_err err = ZC_OK;

	if (t == NULL || *t == '\0')
		return ZC_ERR_INVALID;
	if (zc_event_attr(ev, "specversion") == NULL)
		err = zc__ce_attr_put(ev, "specversion", "1.0");
	if (err == ZC_OK && zc_event_id(ev) == NULL) {
		new_uuid(id);
		err = zc__ce_attr_put(ev, "id", id);
	}
	if (err == ZC_OK && zc_event_source(ev) == NULL)
		err = zc__ce_attr_put(ev, "source", default_source(ctx));
	if (err == ZC_OK && zc_event_time(ev) == NULL)
		err = zc__ce_attr_put(ev, "time", zc_timestamp(ts, sizeof(ts)));
	return err;
}

static atomic_bool overrides_warned;

static void
warn_overrides(const char *why)
{
	if (!atomic_exchange(&overrides_warned, true))
		zc_warn("K_CE_OVERRIDES: %s; ignoring %s", why,
			"what cannot be applied");
}

/*
 * K_CE_OVERRIDES (SinkBinding): {"extensions":{"name":"value",...}} set
 * as extension attributes of every event sent, values as strings; the
 * spec's own attributes are never overridden.
 */
static zc_err
apply_overrides(zc_event *ev)
{
	const char *env = getenv("K_CE_OVERRIDES"), *key, *s;
	json_t *o, *ext, *v;
	char num[32], *dump;
	zc_err err = ZC_OK;

	if (env == NULL || *env == '\0')
		return ZC_OK;
	if ((o = json_loads(env, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		warn_overrides("not valid JSON");
		return ZC_OK;
	}
	ext = json_object_get(o, "extensions");
	if (!json_is_object(o) || (ext != NULL && !json_is_object(ext))) {
		warn_overrides("expected {\"extensions\":{...}}");
		json_decref(o);
		return ZC_OK;
	}
	json_object_foreach (ext, key, v) {
		dump = NULL;
		if (!zc__ce_valid_name(key, strlen(key)) ||
		    zc__ce_is_spec_attr(key)) {
			warn_overrides("an extension name is invalid or a "
				       "spec attribute");
			continue;
		}
		if (json_is_null(v))
			continue;
		if (json_is_string(v)) {
			s = json_string_value(v);
		} else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
			s = num;
		} else if (json_is_boolean(v)) {
			s = json_is_true(v) ? "true" : "false";
		} else {
			s = dump = zc__json_dump(v, NULL);
			if (s == NULL) {
				err = ZC_ERR_NOMEM;
				break;
			}
		}
		if (*s == '\0' ||
		    zc__ce_check_text(s, strlen(s)) != ZC_CE_TEXT_OK)
			warn_overrides("a value is empty or holds a control "
				       "character");
		else
			err = zc__ce_attr_put(ev, key, s);
		free(dump);
		if (err != ZC_OK)
			break;
	}
	json_decref(o);
	return err;
}

/*
 * The distributed-tracing extension carries the trace where this
 * transmission starts (extensions/distributed-tracing.md): the traceparent
 * the inbound request came with, else the request's own context.  One an
 * event already has (forwarded from elsewhere) is kept.
 */
static zc_err
add_trace(zc_event *ev, const zc_req *ctx, const struct zc_span_ctx *sc)
{
	char tp[64];
	const char *ts;
	zc_err err;

	if (zc_event_attr(ev, "traceparent") != NULL)
		return ZC_OK;
	/* tracing on: the producer span's context, or the request's with
	 * the sampling decision's flags */
	if (sc != NULL && zc__span_ctx_valid(sc)) {
		zc__span_ctx_traceparent(sc, tp);
		if ((err = zc__ce_attr_put(ev, "traceparent", tp)) != ZC_OK ||
		    ctx == NULL || !ctx->ctx.trace.inbound)
			return err;
		ts = zc_req_header(ctx, "tracestate");
		if (ts != NULL && *ts != '\0' &&
		    zc_event_attr(ev, "tracestate") == NULL &&
		    zc__ce_check_text(ts, strlen(ts)) == ZC_CE_TEXT_OK)
			return zc__ce_attr_put(ev, "tracestate", ts);
		return ZC_OK;
	}
	if (ctx == NULL || ctx->ctx.trace.trace_id[0] == '\0')
		return ZC_OK;
	if (ctx->ctx.trace.inbound) {
		snprintf(tp, sizeof(tp), "%s",
			 zc_req_header(ctx, "traceparent"));
	} else {
		snprintf(tp, sizeof(tp), "00-%s-%s-%s", ctx->ctx.trace.trace_id,
			 ctx->ctx.trace.span_id, ctx->ctx.trace.flags);
	}
	if ((err = zc__ce_attr_put(ev, "traceparent", tp)) != ZC_OK)
		return err;
	ts = ctx->ctx.trace.inbound ? zc_req_header(ctx, "tracestate") : NULL;
	if (ts != NULL && *ts != '\0' &&
	    zc_event_attr(ev, "tracestate") == NULL &&
	    zc__ce_check_text(ts, strlen(ts)) == ZC_CE_TEXT_OK)
		return zc__ce_attr_put(ev, "tracestate", ts);
	return ZC_OK;
}

/* ---------------------------------------------------------------------
 * A reply event in the response
 * ------------------------------------------------------------------- */
static zc_err
res_add(void *arg, const char *name, const char *value)
{
	return zc_res_header(arg, name, value);
}

zc_err
zc_res_event(zc_res *res, const zc_event *ev)
{
	zc_event *out;
	const char *ct;
	char *body = NULL;
	zc_err err;

	if (res == NULL || ev == NULL)
		return ZC_ERR_INVALID;
	if ((out = zc__ce_event_copy(ev)) == NULL)
		return ZC_ERR_NOMEM;
	if ((err = fill_defaults(out, zc__current())) != ZC_OK)
		goto done;
	zc__ce_order_first(out);
	zc__res_reset(res);
	if ((err = zc__ce_each_header(out, res_add, res)) != ZC_OK)
		goto done;
	ct = zc__ce_binary_ctype(out);
	if (ct != NULL &&
	    (err = zc_res_header(res, "Content-Type", ct)) != ZC_OK)
		goto done;
	if (out->data != NULL && out->len > 0) {
		if ((body = malloc(out->len + 1)) == NULL) {
			err = ZC_ERR_NOMEM;
			goto done;
		}
		memcpy(body, out->data, out->len);
		body[out->len] = '\0';
		res->body = body;
		res->len = out->len;
	}
	zc_res_status(res, 200);
done:
	if (err != ZC_OK)
		zc__res_reset(res);
	zc_event_free(out);
	return err;
}

/* ---------------------------------------------------------------------
 * Sending to a sink, a URL or a broker
 * ------------------------------------------------------------------- */
static zc_err
call_add(void *arg, const char *name, const char *value)
{
	return zc_call_header(arg, name, value);
}

static bool
valid_label(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/*
 * Where an event goes, and the name of the target whose policy, breaker
 * and bulkhead it shares.  The names hold '_', which no function name
 * can, so they never resolve through Dapr and never meet a function's
 * target; their env settings read K_SINK_RETRIES, BROKER_<NAME>_...,
 * EVENT_<HOST>_<PORT>_... (see docs/events.md).
 */
static zc_err
resolve(const char *target, char *url, size_t urlsz, char *tname, size_t tsize)
{
	const char *ns, *h, *end, *at = NULL;
	size_t i, n;

	if (target == NULL) {
		target = zc_event_sink();
		if (target == NULL) {
			zc_error("zc_event_send: no target and K_SINK is not "
				 "set");
			return ZC_ERR_INVALID;
		}
		snprintf(tname, tsize, "k_sink");
	} else if (strncmp(target, "http://", 7) == 0 ||
		   strncmp(target, "https://", 8) == 0) {
		h = strstr(target, "://") + 3;
		end = h + strcspn(h, "/?#");
		for (i = 0; h + i < end; i++)
			if (h[i] == '@')
				at = h + i + 1; /* after any userinfo */
		if (at != NULL)
			h = at;
		n = (size_t)snprintf(tname, tsize, "event_");
		for (; h < end && n + 1 < tsize; h++) {
			char c = *h;
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			tname[n++] = ((c >= 'a' && c <= 'z') ||
				      (c >= '0' && c <= '9'))
					     ? c
					     : '_';
		}
		tname[n] = '\0';
	} else {
		if (!valid_label(target)) {
			zc_error("zc_event_send: \"%.80s\" is neither an "
				 "http(s) URL nor a broker name",
				 target);
			return ZC_ERR_INVALID;
		}
		ns = getenv("POD_NAMESPACE");
		if (ns == NULL || *ns == '\0')
			ns = "default";
		else if (!valid_label(ns))
			return ZC_ERR_INVALID;
		if ((size_t)snprintf(url, urlsz,
				     "http://broker-ingress.knative-eventing"
				     ".svc.cluster.local/%s/%s",
				     ns, target) >= urlsz)
			return ZC_ERR_TOO_LARGE;
		snprintf(tname, tsize, "broker_%s", target);
		return ZC_OK;
	}
	if ((size_t)snprintf(url, urlsz, "%s", target) >= urlsz)
		return ZC_ERR_TOO_LARGE;
	return ZC_OK;
}

/*
 * Dapr's publish API passes an application/cloudevents+json body on as
 * it is, our own envelope with its id, source and trace; any other
 * content type would be wrapped in an envelope of the sidecar's.
 */
static zc_err
structured_body(zc_call *call, const zc_event *ev)
{
	json_t *j = zc__ce_event_to_json(ev);
	char *text;
	size_t len;
	zc_err err = ZC_ERR_NOMEM;

	if (j != NULL && (text = zc__json_dump(j, &len)) != NULL) {
		err = zc__call_body(call, "application/cloudevents+json", text,
				    len);
		free(text);
	}
	json_decref(j);
	return err;
}

/*
 * The PRODUCER span of an event: "send" to its destination, or "create"
 * when it waits in the outbox (the relay's span sends it), a child of the
 * request's current span (or a root, sent from no request).  NULL when
 * not traced.
 */
static struct zc_span *
producer_span(const zc_req *ctx, const char *to, bool dapr, bool outbox,
	      struct zc_span_ctx *parent)
{
	const char *op = outbox ? "create" : "send";
	const char *dest = NULL;
	struct zc_span *s;
	char name[160];

	memset(parent, 0, sizeof(*parent));
	if (!zc__tracing_on())
		return NULL;
	zc__req_span_ctx(ctx, parent);
	if (ctx != NULL && !zc__span_ctx_valid(parent))
		return NULL;
	/* a named destination (a broker, a Dapr topic); a URL is not one */
	if (dapr)
		dest = to + 5;
	else if (to != NULL && strncmp(to, "http://", 7) != 0 &&
		 strncmp(to, "https://", 8) != 0)
		dest = to;
	snprintf(name, sizeof(name), "%s%s%s", op, dest != NULL ? " " : "",
		 dest != NULL ? dest : "");
	s = zc__span_start(ZC_SPAN_PRODUCER, name,
			   zc__span_ctx_valid(parent) ? parent : NULL, NULL, 0);
	if (s == NULL)
		return NULL;
	zc__span_attr_str(s, "messaging.system", dapr ? "dapr" : "knative");
	zc__span_attr_str(s, "messaging.operation.name", op);
	zc__span_attr_str(s, "messaging.operation.type", op);
	if (dest != NULL)
		zc__span_attr_str(s, "messaging.destination.name", dest);
	return s;
}

static void
producer_span_end(struct zc_span *s, const zc_event *ev, zc_err err, int status)
{
	const char *v;
	char code[16];

	if (s == NULL)
		return;
	if ((v = zc_event_id(ev)) != NULL) {
		zc__span_attr_str(s, "messaging.message.id", v);
		zc__span_attr_str(s, "cloudevents.event_id", v);
	}
	if ((v = zc_event_source(ev)) != NULL)
		zc__span_attr_str(s, "cloudevents.event_source", v);
	if ((v = zc_event_type(ev)) != NULL)
		zc__span_attr_str(s, "cloudevents.event_type", v);
	if ((v = zc_event_attr(ev, "specversion")) != NULL)
		zc__span_attr_str(s, "cloudevents.event_spec_version", v);
	if ((v = zc_event_attr(ev, "subject")) != NULL)
		zc__span_attr_str(s, "cloudevents.event_subject", v);
	if (err != ZC_OK) {
		if (status > 0)
			snprintf(code, sizeof(code), "%d", status);
		zc__span_attr_str(s, "error.type",
				  status > 0 ? code : zc__outcome_name(err));
		zc__span_status(s, ZC_STATUS_ERROR, NULL);
	}
	zc__span_end(s, 0);
}

zc_err
zc_event_send(zc_req *inbound, const char *target, const zc_event *ev)
{
	char url[2048], tname[64];
	zc_req *ctx = inbound != NULL ? inbound : zc__current();
	/* a dapr: target, named here or as K_SINK: a configuration switch */
	const char *to = target != NULL ? target : zc_event_sink();
	bool dapr = to != NULL && strncmp(to, "dapr:", 5) == 0;
	const char *ct;
	zc_event *out = NULL;
	zc_call *call = NULL;
	zc_tx *tx = zc__store_current_tx();
	bool outbox = tx != NULL && zc__store_durable();
	struct zc_span_ctx parent;
	struct zc_span *span = NULL;
	zc_err err;
	int status = 0;

	if (ev == NULL)
		return ZC_ERR_INVALID;
	err = dapr ? zc__dapr_publish_url(to + 5, url, sizeof(url), tname,
					  sizeof(tname))
		   : resolve(target, url, sizeof(url), tname, sizeof(tname));
	if (err != ZC_OK)
		return err;
	if ((out = zc__ce_event_copy(ev)) == NULL)
		return ZC_ERR_NOMEM;
	span = producer_span(ctx, to, dapr, outbox, &parent);
	err = fill_defaults(out, ctx);
	if (err == ZC_OK)
		err = apply_overrides(out);
	if (err == ZC_OK)
		err = add_trace(out, ctx, span != NULL ? &span->ctx : &parent);
	if (err != ZC_OK)
		goto done;
	zc__ce_order_first(out);
	if ((call = zc__call_new_url(inbound, tname, url, "POST")) == NULL) {
		err = ZC_ERR_NOMEM;
		goto done;
	}
	/* receivers dedupe on source + id, so a repeat is safe */
	zc__call_set_repeatable(call);
	if (span != NULL)
		zc__call_trace(call, &span->ctx);
	if (dapr) {
		if ((err = structured_body(call, out)) != ZC_OK)
			goto done;
	} else {
		if ((err = zc__ce_each_header(out, call_add, call)) != ZC_OK)
			goto done;
		ct = zc__ce_binary_ctype(out);
		if ((out->data != NULL || ct != NULL) &&
		    (err = zc__call_body(call, ct,
					 out->data != NULL ? out->data : "",
					 out->len)) != ZC_OK)
			goto done;
	}
	/* a transactional handler's event waits for its commit: a row of
	 * the store's outbox, which the relay delivers (SQLite, PostgreSQL) */
	if (outbox) {
		if ((err = zc__relay_put(tx, call, "event")) == ZC_OK)
			zc_debug("event %s %s queued in the outbox for %s",
				 zc_event_type(out), zc_event_id(out), url);
		goto done;
	}
	err = zc_call_perform(call);
	status = zc_call_status(call);
	/* 3xx is not delivery (webhook spec 2.2); only 2xx is */
	if (err == ZC_OK && (status < 200 || status > 299))
		err = ZC_ERR_HTTP;
	if (err == ZC_OK)
		zc_debug("event %s %s sent to %s (HTTP %d, %d attempt(s))",
			 zc_event_type(out), zc_event_id(out), url, status,
			 zc_call_attempts(call));
	else
		zc_warn("event %s %s not delivered to %s: %s (HTTP %d, %d "
			"attempt(s))",
			zc_event_type(out), zc_event_id(out), url,
			zc_strerror(err), status, zc_call_attempts(call));
done:
	producer_span_end(span, out, err, status);
	zc_call_free(call);
	zc_event_free(out);
	return err;
}

const char *
zc_event_sink(void)
{
	const char *sink = getenv("K_SINK");

	return sink != NULL && *sink != '\0' ? sink : NULL;
}
