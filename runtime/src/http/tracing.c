/*
 * tracing.c - the spans of a request: its server span (HTTP semantic
 * conventions), the chain of current spans a handler opens around its own
 * work (zc_span_start/zc_span_end) and that the runtime opens around event
 * delivery, and the context outbound work continues from.  With tracing
 * off every entry point is one relaxed load or a NULL check.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *
zc__known_method(const char *m)
{
	static const char *const known[] = {"GET",     "HEAD",   "POST",
					    "PUT",     "DELETE", "CONNECT",
					    "OPTIONS", "TRACE",  "PATCH"};
	size_t i;

	for (i = 0; m != NULL && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return NULL;
}

/* The first element of a comma-separated header, trimmed, into out. */
static const char *
first_of(const char *v, char *out, size_t size)
{
	size_t n;

	if (v == NULL)
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strcspn(v, ",");
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= size)
		return NULL;
	memcpy(out, v, n);
	out[n] = '\0';
	return out;
}

/* "host", "host:port", "[v6]" or "[v6]:port": the host into host (no
 * brackets), the port into *port (0: none). */
static bool
split_host(const char *v, char *host, size_t size, int *port)
{
	const char *p, *colon;
	size_t n;

	*port = 0;
	if (v[0] == '[') {
		p = strchr(v, ']');
		if (p == NULL)
			return false;
		n = (size_t)(p - v - 1);
		if (n == 0 || n >= size)
			return false;
		memcpy(host, v + 1, n);
		host[n] = '\0';
		colon = p[1] == ':' ? p + 1 : NULL;
	} else {
		colon = strchr(v, ':');
		n = colon != NULL ? (size_t)(colon - v) : strlen(v);
		if (n == 0 || n >= size)
			return false;
		memcpy(host, v, n);
		host[n] = '\0';
	}
	if (colon != NULL) {
		char *end;
		long l = strtol(colon + 1, &end, 10);
		if (*end == '\0' && l > 0 && l < 65536)
			*port = (int)l;
	}
	return true;
}

/* The attributes known when the request starts. */
static void
server_attrs(zc_req *req, struct zc_span *s, const char *method)
{
	char buf[512], host[256], addr[64];
	const char *v, *scheme = "http";
	int port;

	if (method != NULL) {
		zc__span_attr_str(s, "http.request.method", method);
	} else {
		zc__span_attr_str(s, "http.request.method", "_OTHER");
		zc__span_attr_str(s, "http.request.method_original",
				  req->ctx.method);
	}
	zc__span_attr_str(s, "url.path", req->ctx.path);
	if (first_of(zc_req_header(req, "X-Forwarded-Proto"), buf,
		     sizeof(buf)) != NULL &&
	    strcasecmp(buf, "https") == 0)
		scheme = "https";
	zc__span_attr_str(s, "url.scheme", scheme);
	if (zc__req_query_string(req, buf, sizeof(buf)))
		zc__span_attr_str(s, "url.query", buf);
	if ((v = first_of(zc_req_header(req, "X-Forwarded-Host"), buf,
			  sizeof(buf))) == NULL)
		v = zc_req_header(req, "Host");
	if (v != NULL && split_host(v, host, sizeof(host), &port)) {
		zc__span_attr_str(s, "server.address", host);
		zc__span_attr_int(s, "server.port",
				  port != 0                      ? port
				  : strcmp(scheme, "https") == 0 ? 443
								 : 80);
	}
	if (zc__req_peer(req, addr, sizeof(addr), &port)) {
		zc__span_attr_str(s, "network.peer.address", addr);
		zc__span_attr_int(s, "network.peer.port", port);
	} else {
		addr[0] = '\0';
	}
	if ((v = first_of(zc_req_header(req, "X-Forwarded-For"), buf,
			  sizeof(buf))) != NULL)
		zc__span_attr_str(s, "client.address", v);
	else if (addr[0] != '\0')
		zc__span_attr_str(s, "client.address", addr);
	zc__span_attr_str(s, "network.protocol.version",
			  req->version != NULL &&
					  strcmp(req->version, "HTTP/1.0") == 0
				  ? "1.0"
				  : "1.1");
	if ((v = zc_req_header(req, "User-Agent")) != NULL)
		zc__span_attr_str(s, "user_agent.original", v);
}

void
zc__server_span_begin(zc_req *req)
{
	static const char hex[] = "0123456789abcdef";
	struct zc_trace *t = &req->ctx.trace;
	struct zc_span_ctx parent, own;
	const char *method;
	struct zc_span *s;
	long long start;
	uint8_t f;

	if (!zc__tracing_on() || t->trace_id[0] == '\0')
		return;
	/* the caller's span, or (a trace we started) a root in our id */
	zc__span_ctx_from_hex(&parent, t->trace_id,
			      t->inbound ? t->parent_id : NULL, t->flags,
			      t->inbound);
	zc__span_ctx_from_hex(&own, t->trace_id, t->span_id, NULL, false);
	/* the request's start on the monotonic clock, as wall time */
	start = zc__wall_ns() - (zc__now_ns() - req->start_ns);
	method = zc__known_method(req->ctx.method);
	s = zc__span_start(ZC_SPAN_SERVER, method != NULL ? method : "HTTP",
			   &parent, own.span_id, start);
	/* what goes on (traceparent, event extension) says what we decided:
	 * a parent-based sampler downstream follows it */
	f = (uint8_t)((parent.flags & ~1u) | (s != NULL ? 1u : 0u));
	t->flags[0] = hex[f >> 4];
	t->flags[1] = hex[f & 15];
	t->flags[2] = '\0';
	if (s == NULL)
		return;
	s->ctx.flags = f;
	s->owner = req;
	req->ctx.span = req->ctx.server_span = s;
	server_attrs(req, s, method);
}

/* End the current spans from the innermost down to last (inclusive, or
 * the whole chain when last is NULL); what was under last is current. */
static void
end_down_to(zc_req *req, const struct zc_span *last)
{
	struct zc_span *c, *up = NULL;
	long long now = zc__wall_ns();
	bool done;

	for (c = req->ctx.span; c != NULL; c = up) {
		up = c->up;
		done = c == last;
		if (c == req->ctx.server_span)
			req->ctx.server_span = NULL;
		zc__span_end(c, now);
		if (done)
			break;
	}
	req->ctx.span = up;
}

void
zc__req_spans_unwind(zc_req *req)
{
	struct zc_span *c, *up;
	long long now;

	if (req->ctx.span == req->ctx.server_span)
		return;
	now = zc__wall_ns();
	for (c = req->ctx.span; c != NULL && c != req->ctx.server_span;
	     c = up) {
		up = c->up;
		zc__span_end(c, now);
	}
	req->ctx.span = req->ctx.server_span;
}

void
zc__server_span_end(zc_req *req, int status)
{
	struct zc_span *s = req->ctx.server_span;
	const char *method;
	char name[256], code[16];
	size_t m, r;

	if (s == NULL)
		return;
	zc__req_spans_unwind(req);
	method = zc__known_method(req->ctx.method);
	if (req->ctx.route != NULL) {
		/* "<method> <route>", cut to fit as snprintf would */
		if (method == NULL)
			method = "HTTP";
		m = strlen(method);
		r = strnlen(req->ctx.route, sizeof(name) - m - 2);
		memcpy(name, method, m);
		name[m] = ' ';
		memcpy(name + m + 1, req->ctx.route, r);
		name[m + 1 + r] = '\0';
		zc__span_set_name(s, name);
		zc__span_attr_str(s, "http.route", req->ctx.route);
	}
	if (status > 0) {
		zc__span_attr_int(s, "http.response.status_code", status);
		/* 4xx is the client's error, not the server's: unset */
		if (status >= 500) {
			snprintf(code, sizeof(code), "%d", status);
			zc__span_attr_str(s, "error.type", code);
			zc__span_status(s, ZC_STATUS_ERROR, NULL);
		}
	}
	end_down_to(req, s);
	req->ctx.span = NULL;
}

struct zc_span *
zc__req_span_push(zc_req *req, enum zc_span_kind kind, const char *name,
		  const struct zc_span_ctx *link)
{
	struct zc_span *s;

	if (req == NULL || req->ctx.span == NULL)
		return NULL;
	s = zc__span_start(kind, name, &req->ctx.span->ctx, NULL, 0);
	if (s == NULL)
		return NULL;
	if (link != NULL)
		zc__span_link(s, link);
	s->owner = req;
	s->up = req->ctx.span;
	req->ctx.span = s;
	return s;
}

/* Is s one of req's open spans?  Compared, never read, until found: a
 * span already ended may be gone. */
static bool
open_in(const zc_req *req, const struct zc_span *s)
{
	const struct zc_span *c;

	for (c = req->ctx.span; c != NULL; c = c->up)
		if (c == s)
			return true;
	return false;
}

void
zc__req_span_pop(zc_req *req, struct zc_span *s)
{
	if (req == NULL || s == NULL || !open_in(req, s))
		return;
	end_down_to(req, s);
}

void
zc__req_span_ctx(const zc_req *req, struct zc_span_ctx *out)
{
	const struct zc_trace *t;

	memset(out, 0, sizeof(*out));
	if (req == NULL || !zc__tracing_on())
		return;
	if (req->ctx.span != NULL) {
		*out = req->ctx.span->ctx;
		out->remote = false;
		return;
	}
	t = &req->ctx.trace;
	if (t->trace_id[0] != '\0')
		zc__span_ctx_from_hex(out, t->trace_id, t->span_id, t->flags,
				      false);
}

/* ---- the public calls ---- */

zc_span *
zc_req_span(zc_req *req)
{
	if (req == NULL)
		req = zc__current();
	return req != NULL ? req->ctx.span : NULL;
}

zc_span *
zc_span_start(zc_req *req, const char *name)
{
	struct zc_span *s;

	if (req == NULL)
		req = zc__current();
	s = zc__req_span_push(req, ZC_SPAN_INTERNAL, name, NULL);
	if (s != NULL)
		s->user = true;
	return s;
}

void
zc_span_end(zc_span *span)
{
	zc_req *req = zc__current();

	/* only an open span of the request this thread serves, and only
	 * one zc_span_start opened: the runtime's own are not the
	 * handler's to end */
	if (span == NULL || req == NULL || !open_in(req, span) || !span->user)
		return;
	end_down_to(req, span);
}
