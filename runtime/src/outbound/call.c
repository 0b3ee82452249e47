/*
 * call.c - building an outbound call: one constructor for a named function
 * or a URL, the setters (body, headers, timeouts), the trace headers it
 * carries, the header list it sends, its record for the log, and freeing it.
 */
#include "call.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Built-in defaults; zc__client_set_defaults() overrides them at start-up. */
#define ZC_CLIENT_TIMEOUT_MS 5000L
#define ZC_CLIENT_CONNECT_MS 2000L
#define ZC_CLIENT_MAX_REPLY  ((size_t)8 * 1024 * 1024)

/*
 * Written only by zc__client_set_defaults() before worker threads start,
 * so plain variables are enough: pthread_create orders the write before
 * every read.
 */
static long default_timeout_ms = ZC_CLIENT_TIMEOUT_MS;
static long default_connect_ms = ZC_CLIENT_CONNECT_MS;
static size_t default_max_reply = ZC_CLIENT_MAX_REPLY;

void
zc__client_set_defaults(long timeout_ms, long connect_ms, size_t max_reply)
{
	zc_policy p;

	/* Non-positive means "not configured": keep the built-in default. */
	zc_policy_default(&p);
	if (timeout_ms > 0)
		default_timeout_ms = p.timeout_ms = timeout_ms;
	if (connect_ms > 0)
		default_connect_ms = p.connect_timeout_ms = connect_ms;
	if (max_reply > 0)
		default_max_reply = max_reply;
	zc__policy_set_global(&p);
}

/* An upper-case token, which is what zenith.h promises callers pass. */
static bool
valid_method(const char *m)
{
	size_t i;

	for (i = 0; m[i] != '\0'; i++) {
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	}
	return i > 0 && i < ZC_METHOD_MAX;
}

/*
 * Spaces and control characters would be rejected by curl's URL parser or,
 * worse, split the request line; catch them here as ZC_ERR_INVALID.
 */
static bool
valid_path(const char *p)
{
	if (p[0] != '/')
		return false;
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* RFC 9110 token characters, so a name can never inject a second header. */
static bool
valid_header_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
			return false;
	}
	return true;
}

static bool
valid_header_value(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\r' || *s == '\n')
			return false;
	}
	return true;
}

/* An absolute http(s) URL (an emitter's) that cannot split the request. */
static bool
valid_url(const char *url)
{
	return (strncmp(url, "http://", 7) == 0 ||
		strncmp(url, "https://", 8) == 0) &&
	       strlen(url) < ZC_URL_MAX && valid_header_value(url);
}

/* Record the first setup failure; later ones are consequences of it. */
static zc_err
setup_fail(zc_call *call, zc_err err)
{
	if (call->setup_err == ZC_OK)
		call->setup_err = err;
	return err;
}

/* Append "Name: value" ("Name;" when value is empty) to *l. */
static int
hdr_add(struct zc_hdr **l, const char *name, const char *value)
{
	struct zc_hdr *h;
	size_t nlen = strlen(name), vlen = strlen(value);

	if ((h = malloc(sizeof(*h) + nlen + vlen + 3)) == NULL)
		return -1;
	h->next = NULL;
	memcpy(h->line, name, nlen);
	if (vlen == 0) {
		/* curl reads "Name:" as "remove Name"; "Name;" sends it empty. */
		memcpy(h->line + nlen, ";", 2);
	} else {
		memcpy(h->line + nlen, ": ", 2);
		memcpy(h->line + nlen + 2, value, vlen + 1);
	}
	while (*l != NULL)
		l = &(*l)->next;
	*l = h;
	return 0;
}

static void
hdr_free(struct zc_hdr *l)
{
	struct zc_hdr *next;

	for (; l != NULL; l = next) {
		next = l->next;
		free(l);
	}
}

/* A value we pass on for someone else: never empty, long or multi-line. */
static bool
forwardable(const char *value)
{
	return value != NULL && *value != '\0' && strlen(value) <= 900 &&
	       valid_header_value(value);
}

/*
 * The trace context this call carries, copied now: an async call outlives
 * its inbound request.  W3C traceparent gets a new parent-id (this call is
 * a new span of the same trace); tracestate, B3 and x-request-id go on
 * unchanged (B3 shares span ids between client and server sides).
 */
static int
propagate(zc_call *call, zc_req *inbound)
{
	static const char *const verbatim[] = {
		"b3",           "x-b3-traceid",
		"x-b3-spanid",  "x-b3-parentspanid",
		"x-b3-sampled", "x-b3-flags",
		"x-request-id",
	};
	const char *v;
	char tp[64];
	size_t i;

	if (inbound == NULL)
		inbound = zc__current();
	if (inbound == NULL || inbound->ctx.trace.trace_id[0] == '\0')
		return 0;
	/* tracing on: the current span's context, whose flags say what was
	 * sampled; each attempt then sends its own client span's */
	if (zc__tracing_on())
		zc__req_span_ctx(inbound, &call->trace_parent);
	if (zc__tracing_on() && zc__span_ctx_valid(&call->trace_parent))
		zc__span_ctx_traceparent(&call->trace_parent, tp);
	else
		zc__trace_child(&inbound->ctx.trace, tp, sizeof(tp));
	if (hdr_add(&call->propagated, "traceparent", tp) != 0)
		return -1;
	/* tracestate belongs to the traceparent it came with */
	if (inbound->ctx.trace.inbound &&
	    forwardable(v = zc_req_header(inbound, "tracestate")) &&
	    hdr_add(&call->propagated, "tracestate", v) != 0)
		return -1;
	for (i = 0; i < sizeof(verbatim) / sizeof(verbatim[0]); i++)
		if (forwardable(v = zc_req_header(inbound, verbatim[i])) &&
		    hdr_add(&call->propagated, verbatim[i], v) != 0)
			return -1;
	return 0;
}

/*
 * The one constructor, for named functions and URLs alike.  The caller has
 * worked out where the call goes: base (then path) when err is ZC_OK, and
 * mode, how name was reached, for its target if this call creates it.
 * name keys the target: its policy, breaker and bulkhead.  NULL only for
 * ENOMEM, so bad arguments are kept and reported by perform, where the
 * handler checks anyway.
 */
static zc_call *
call_new(zc_req *inbound, const char *method, const char *name, int mode,
	 zc_err err, const char *base, const char *path)
{
	zc_call *call;
	size_t blen, plen;

	if ((call = calloc(1, sizeof(*call))) == NULL)
		return NULL;
	call->inbound = inbound;
	call->timeout_ms = default_timeout_ms;
	call->connect_ms = default_connect_ms;
	call->max_reply = default_max_reply;
	if (zc__client_global_init() != 0) {
		call->setup_err = ZC_ERR_INVALID; /* libcurl missing */
		return call;
	}
	if (propagate(call, inbound) != 0) {
		zc_call_free(call);
		return NULL;
	}
	if (method == NULL || !valid_method(method)) {
		call->setup_err = ZC_ERR_INVALID;
		return call;
	}
	memcpy(call->method, method, strlen(method) + 1);
	if (err != ZC_OK) {
		call->setup_err = err;
		return call;
	}
	if ((call->target = zc__target_use(name, mode)) == NULL) {
		zc_call_free(call);
		return NULL;
	}
	call->timeout_ms = call->target->policy.timeout_ms;
	call->connect_ms = call->target->policy.connect_timeout_ms;

	blen = strlen(base);
	plen = strlen(path);
	if ((call->url = malloc(blen + plen + 1)) == NULL) {
		zc_call_free(call);
		return NULL;
	}
	memcpy(call->url, base, blen);
	memcpy(call->url + blen, path, plen + 1);
	return call;
}

zc_call *
zc_call_new(zc_req *inbound, const char *service, const char *method,
	    const char *path)
{
	char base[ZC_URL_MAX];
	int mode = ZC_MODE_KNATIVE;
	zc_err err = ZC_ERR_INVALID;

	/*
	 * Resolved here and only here, once per call: a changed <NAME>_URL
	 * applies to the next call, while the target (made by the first call
	 * or zc_service) keeps the mode it was made with, as its policy does.
	 */
	if (path != NULL && valid_path(path))
		err = zc__service_resolve(service, base, sizeof(base), &mode);
	return call_new(inbound, method, service, mode, err, base, path);
}

/*
 * A call to an absolute URL (K_SINK, a broker ingress) rather than a
 * function name; target_name keys its policy, breaker and bulkhead
 * ("k_sink", the broker's name).  The URL is explicit, as a <NAME>_URL
 * is: never Dapr's, so no sidecar token goes to it.  Same ownership as
 * zc_call_new.
 */
zc_call *
zc__call_new_url(zc_req *inbound, const char *target_name, const char *url,
		 const char *method)
{
	zc_err err = ZC_OK;

	if (url == NULL || !valid_url(url))
		err = ZC_ERR_INVALID;
	return call_new(inbound, method, target_name, ZC_MODE_ENV, err, url,
			"");
}

zc_err
zc_call_json(zc_call *call, const json_t *body)
{
	char *s;
	size_t len;

	if (call == NULL)
		return ZC_ERR_INVALID;
	if (body == NULL)
		return setup_fail(call, ZC_ERR_INVALID);
	/* Serialise now: the caller may change or free body right after. */
	if ((s = zc__json_dump(body, &len)) == NULL)
		return setup_fail(call, ZC_ERR_NOMEM);
	free(call->body);
	call->body = s;
	call->body_len = len;
	call->has_body = true;
	return ZC_OK;
}

zc_err
zc_call_jsonf(zc_call *call, const char *fmt, ...)
{
	json_error_t e;
	json_t *v;
	va_list ap;
	zc_err err;
	char *text;
	size_t len;

	va_start(ap, fmt);
	text = zc__json_vpackf(fmt, ap, &len);
	if (text != NULL) {
		va_end(ap);
		err = zc__call_body(call, NULL, text, len);
		free(text);
		return err;
	}
	v = json_vpack_ex(&e, 0, fmt, ap);
	va_end(ap);
	if (v == NULL) {
		zc_error("zc_call_jsonf(\"%s\"): %s", fmt, e.text);
		/* mark the call failed, so perform never sends it bodiless */
		zc_call_json(call, NULL);
		return ZC_ERR_INVALID;
	}
	err = zc_call_json(call, v);
	json_decref(v);
	return err;
}

/* Body bytes with a content type of the caller's (binary-mode events). */
zc_err
zc__call_body(zc_call *call, const char *content_type, const void *data,
	      size_t len)
{
	char *copy;

	if (call == NULL)
		return ZC_ERR_INVALID;
	copy = malloc(len + 1);
	if (copy == NULL)
		return setup_fail(call, ZC_ERR_NOMEM);
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	free(call->body);
	call->body = copy;
	call->body_len = len;
	call->has_body = true;
	if (content_type != NULL)
		return zc_call_header(call, "Content-Type", content_type);
	return ZC_OK;
}

zc_err
zc_call_header(zc_call *call, const char *name, const char *value)
{
	if (call == NULL)
		return ZC_ERR_INVALID;
	if (name == NULL || value == NULL || !valid_header_name(name) ||
	    !valid_header_value(value))
		return setup_fail(call, ZC_ERR_INVALID);
	if (hdr_add(&call->headers, name, value) != 0)
		return setup_fail(call, ZC_ERR_NOMEM);
	if (strcasecmp(name, "Idempotency-Key") == 0)
		call->keyed = true;
	if (strcasecmp(name, "Accept") == 0)
		call->user_accept = true;
	else if (strcasecmp(name, "Content-Type") == 0)
		call->user_ctype = true;
	return ZC_OK;
}

void
zc__call_trace(zc_call *call, const struct zc_span_ctx *parent)
{
	struct zc_hdr *h;
	char tp[56];

	if (call == NULL || parent == NULL || !zc__tracing_on() ||
	    !zc__span_ctx_valid(parent))
		return;
	call->trace_parent = *parent;
	zc__span_ctx_traceparent(parent, tp);
	for (h = call->propagated; h != NULL; h = h->next)
		if (strncasecmp(h->line, "traceparent:", 12) == 0) {
			/* same length: "traceparent: " + 55 */
			if (strlen(h->line) == 12 + 1 + 55)
				memcpy(h->line + 13, tp, 56);
			return;
		}
	if (hdr_add(&call->propagated, "traceparent", tp) != 0)
		call->setup_err = call->setup_err != ZC_OK ? call->setup_err
							   : ZC_ERR_NOMEM;
}

/* The receiver dedupes (CloudEvents: on source + id), so a repeat is safe. */
void
zc__call_set_repeatable(zc_call *call)
{
	if (call != NULL)
		call->keyed = true;
}

void
zc_call_timeout_ms(zc_call *call, long total_ms)
{
	if (call == NULL)
		return;
	call->timeout_ms = total_ms > 0 ? total_ms
			   : call->target != NULL
				   ? call->target->policy.timeout_ms
				   : default_timeout_ms;
}

void
zc_call_connect_timeout_ms(zc_call *call, long connect_ms)
{
	if (call == NULL)
		return;
	call->connect_ms = connect_ms > 0 ? connect_ms
			   : call->target != NULL
				   ? call->target->policy.connect_timeout_ms
				   : default_connect_ms;
}

/* Did the caller set the header named in line ("Name: value")? */
static bool
caller_set(const zc_call *call, const char *line)
{
	const struct zc_hdr *h;
	size_t n = strcspn(line, ":");

	for (h = call->headers; h != NULL; h = h->next)
		if (strncasecmp(h->line, line, n) == 0 &&
		    (h->line[n] == ':' || h->line[n] == ';'))
			return true;
	return false;
}

/* A caller's Accept or Content-Type replaces ours rather than doubling it. */
struct curl_slist *
zc__call_wire_headers(const zc_call *call)
{
	struct curl_slist *l = NULL;
	const struct zc_hdr *h;
	const char *defaults[4], *token;
	char line[1024];
	size_t i, n = 0;

	if (!call->user_accept)
		defaults[n++] = "Accept: application/json";
	if (!call->user_ctype) {
		if (call->has_body)
			defaults[n++] = "Content-Type: application/json";
		else if (zc__method_has_body(call->method))
			/* curl would label an empty POST as a form. */
			defaults[n++] = "Content-Type:";
	}
	/*
	 * curl sends "Expect: 100-continue" for bodies over 1 MiB and waits
	 * up to a second for a 100 most servers never send.  (Only then: every
	 * header in the list costs curl a scan per header it writes.)
	 */
	if (call->body_len >= 1024 * 1024)
		defaults[n++] = "Expect:";

	for (i = 0; i < n; i++)
		if (zc__curl_list_append(&l, defaults[i]) != 0)
			goto fail;
	for (h = call->headers; h != NULL; h = h->next)
		if (zc__curl_list_append(&l, h->line) != 0)
			goto fail;
	for (h = call->propagated; h != NULL; h = h->next) {
		const char *hl = h->line;
		if (caller_set(call, hl))
			continue; /* the handler's own value wins */
		if (call->attempt_tp[0] != '\0' &&
		    strncasecmp(hl, "traceparent:", 12) == 0) {
			/* attempt_tp: 55 characters and a NUL */
			memcpy(line, "traceparent: ", 13);
			memcpy(line + 13, call->attempt_tp, 56);
			hl = line;
		}
		if (zc__curl_list_append(&l, hl) != 0)
			goto fail;
	}
	if (call->target != NULL && call->target->mode == ZC_MODE_DAPR &&
	    forwardable(token = getenv("DAPR_API_TOKEN"))) {
		snprintf(line, sizeof(line), "dapr-api-token: %s", token);
		if (zc__curl_list_append(&l, line) != 0)
			goto fail;
	}
	return l;
fail:
	zc__curl_list_free(l);
	return NULL;
}

void
zc__call_reply_clear(zc_call *call)
{
	free(call->reply);
	call->reply = NULL;
	call->reply_len = call->reply_cap = 0;
	call->reply_too_large = false;
	call->reply_nomem = false;
	json_decref(call->reply_json);
	call->reply_json = NULL;
	call->reply_parsed = false;
	call->status = 0;
	call->errbuf[0] = '\0';
}

const char *
zc_call_url(const zc_call *call)
{
	/* Safe to hand straight to a "%s" in a log line. */
	if (call == NULL || call->url == NULL)
		return "";
	return call->url;
}

zc_err
zc__call_setup_err(const zc_call *call)
{
	return call->setup_err;
}

void
zc__call_detach(zc_call *call, _Atomic long long *drain_ns)
{
	/* The inbound request ends before the queued call runs. */
	call->inbound = NULL;
	call->drain_ns = drain_ns;
}

/* A complete, replayable record of the call, as one line of JSON. */
char *
zc__call_record(const zc_call *call)
{
	const struct zc_hdr *h;
	json_t *rec, *hdrs;
	char *out;

	hdrs = json_array();
	for (h = call->headers; h != NULL && hdrs != NULL; h = h->next)
		json_array_append_new(hdrs, json_string(h->line));
	for (h = call->propagated; h != NULL && hdrs != NULL; h = h->next)
		json_array_append_new(hdrs, json_string(h->line));
	rec = json_pack("{s:s, s:s, s:o, s:s%}", "method", call->method, "url",
			call->url != NULL ? call->url : "", "headers",
			hdrs != NULL ? hdrs : json_array(), "body",
			call->body != NULL ? call->body : "",
			call->body != NULL ? call->body_len : (size_t)0);
	if (rec == NULL)
		return NULL;
	out = zc_json_dumps(rec);
	json_decref(rec);
	return out;
}

void
zc_call_free(zc_call *call)
{
	if (call == NULL)
		return;
	zc__call_reply_clear(call);
	hdr_free(call->headers);
	hdr_free(call->propagated);
	free(call->body);
	free(call->url);
	free(call);
}
