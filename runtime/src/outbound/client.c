/*
 * client.c - performing an outbound call: the deadline it inherits, its
 * attempts through the target's bulkhead and circuit breaker, retries with
 * backoff, and reading the reply.
 */
#include "call.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Could a repeat of this call apply twice?  Then it is never retried. */
static bool
repeatable(const zc_call *call)
{
	static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE",
					   "OPTIONS"};
	size_t i;

	if (call->keyed)
		return true; /* the server dedupes on the key */
	for (i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		if (strcmp(call->method, safe[i]) == 0)
			return true;
	return false;
}

/* Is this outcome worth another attempt? */
static bool
transient(const zc_call *call, zc_err err)
{
	switch (err) {
	case ZC_ERR_REFUSED:
	case ZC_ERR_DNS:
	case ZC_ERR_TRANSPORT:
	case ZC_ERR_TIMEOUT:
		return true;
	case ZC_ERR_HTTP:
		return call->status == 429 || call->status == 502 ||
		       call->status == 503 || call->status == 504 ||
		       (call->status == 409 && call->keyed);
	default:
		return false;
	}
}

/* Transport failures and 5xx say the target is unwell; 4xx does not. */
static bool
breaker_failure(const zc_call *call, zc_err err)
{
	if (err == ZC_OK)
		return false;
	if (err == ZC_ERR_HTTP)
		return call->status >= 500;
	return err == ZC_ERR_REFUSED || err == ZC_ERR_DNS ||
	       err == ZC_ERR_TRANSPORT || err == ZC_ERR_TIMEOUT ||
	       err == ZC_ERR_DEADLINE;
}

/* Exponential backoff with jitter: 50-100% of base * 2^n, capped. */
static long
backoff_ms(const zc_policy *p, int attempt)
{
	long d = p->backoff_ms > 0 ? p->backoff_ms : 1;
	int i;

	for (i = 1; i < attempt && d < p->backoff_max_ms; i++)
		d *= 2;
	if (d > p->backoff_max_ms)
		d = p->backoff_max_ms;
	return d / 2 + (long)(zc__rand64() % (uint64_t)(d / 2 + 1));
}

/* A backoff: a timer of the loop for a call on it, else a sleep. */
static void
sleep_ms(const zc_call *call, long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	if (call->on_loop) {
		zc__task_sleep_ms(ms);
		return;
	}
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* One request on the wire, starting from no reply. */
static zc_err
attempt(zc_call *call, void *curl, struct curl_slist *hdrs, long total,
	long connect)
{
	zc_err err;

	zc__call_reply_clear(call);
	err = zc__curl_attempt(call, curl, hdrs, total, connect);
	/* A partial reply is not a reply: status 0, no body. */
	if (err != ZC_OK && err != ZC_ERR_HTTP)
		zc__call_reply_clear(call);
	return err;
}

/* One attempt through the bulkhead and the breaker. */
static zc_err
guarded_attempt(zc_call *call, void *curl, struct curl_slist *hdrs, long total,
		long connect)
{
	struct zc_target *t = call->target;
	unsigned generation = 0;
	zc_err err;

	if (t->policy.max_concurrent > 0 &&
	    atomic_fetch_add(&t->inflight, 1) >= t->policy.max_concurrent) {
		atomic_fetch_sub(&t->inflight, 1);
		atomic_fetch_add(&t->outcomes[ZC_ERR_BULKHEAD_FULL], 1);
		return ZC_ERR_BULKHEAD_FULL;
	}
	err = zc__breaker_allow(&t->breaker, &generation,
				&call->retry_after_ms);
	if (err != ZC_OK) {
		long ra = call->retry_after_ms;
		/* no stale status from an earlier try */
		zc__call_reply_clear(call);
		call->retry_after_ms = ra;
	} else {
		call->attempts++;
		call->retry_after_ms = 0;
		err = attempt(call, curl, hdrs, total, connect);
		zc__breaker_done(&t->breaker, generation,
				 !breaker_failure(call, err));
	}
	if (t->policy.max_concurrent > 0)
		atomic_fetch_sub(&t->inflight, 1);
	if (err >= 0 && err < ZC_OUTCOMES)
		atomic_fetch_add(&t->outcomes[err], 1);
	return err;
}

/* ---- client spans: one per attempt ---- */

/* error.type for an attempt that got no status. */
static const char *
error_class(zc_err err)
{
	switch (err) {
	case ZC_ERR_NOMEM:
		return "out_of_memory";
	case ZC_ERR_DNS:
		return "name_resolution";
	case ZC_ERR_REFUSED:
		return "connection_refused";
	case ZC_ERR_TIMEOUT:
		return "timeout";
	case ZC_ERR_TRANSPORT:
		return "transport";
	case ZC_ERR_TOO_LARGE:
		return "reply_too_large";
	case ZC_ERR_BREAKER_OPEN:
		return "breaker_open";
	case ZC_ERR_BULKHEAD_FULL:
		return "bulkhead_full";
	case ZC_ERR_DEADLINE:
		return "deadline_exceeded";
	default:
		return "_OTHER";
	}
}

/* url without userinfo into out; host and port into the span. */
static void
url_attrs(struct zc_span *s, const char *url)
{
	char out[ZC_URL_MAX], host[256];
	const char *h, *end, *at = NULL, *p;
	long port;
	size_t n, i;
	bool https = strncmp(url, "https://", 8) == 0;

	h = strstr(url, "://");
	if (h == NULL) {
		zc__span_attr_str(s, "url.full", url);
		return;
	}
	h += 3;
	end = h + strcspn(h, "/?#");
	for (p = h; p < end; p++)
		if (*p == '@')
			at = p + 1;
	if (at != NULL) {
		/* credentials never leave in a span */
		snprintf(out, sizeof(out), "%.*s%s", (int)(h - url), url, at);
		zc__span_attr_str(s, "url.full", out);
		h = at;
	} else {
		zc__span_attr_str(s, "url.full", url);
	}
	port = https ? 443 : 80;
	if (*h == '[') {
		p = memchr(h, ']', (size_t)(end - h));
		n = p != NULL ? (size_t)(p - h - 1) : 0;
		i = 1;
		p = p != NULL && p + 1 < end && p[1] == ':' ? p + 1 : NULL;
	} else {
		p = memchr(h, ':', (size_t)(end - h));
		n = (size_t)((p != NULL ? p : end) - h);
		i = 0;
	}
	if (p != NULL)
		port = strtol(p + 1, NULL, 10);
	if (n > 0 && n < sizeof(host)) {
		memcpy(host, h + i, n);
		host[n] = '\0';
		zc__span_attr_str(s, "server.address", host);
	}
	zc__span_attr_int(s, "server.port", port);
}

/* The client span of one attempt (resend: attempts before it), or NULL
 * when the call is not traced; its traceparent goes on the wire. */
static struct zc_span *
attempt_span(zc_call *call, int resend)
{
	const char *m;
	struct zc_span *s;

	call->attempt_tp[0] = '\0';
	if (!zc__tracing_on() || !zc__span_ctx_valid(&call->trace_parent))
		return NULL;
	m = zc__known_method(call->method);
	s = zc__span_start(ZC_SPAN_CLIENT, m != NULL ? m : "HTTP",
			   &call->trace_parent, NULL, 0);
	if (s == NULL)
		return NULL;
	zc__span_ctx_traceparent(&s->ctx, call->attempt_tp);
	if (m != NULL) {
		zc__span_attr_str(s, "http.request.method", m);
	} else {
		zc__span_attr_str(s, "http.request.method", "_OTHER");
		zc__span_attr_str(s, "http.request.method_original",
				  call->method);
	}
	url_attrs(s, call->url != NULL ? call->url : "");
	if (resend > 0)
		zc__span_attr_int(s, "http.request.resend_count", resend);
	return s;
}

static void
attempt_span_end(struct zc_span *s, const zc_call *call, zc_err err)
{
	char code[16];

	if (s == NULL)
		return;
	if (call->status > 0)
		zc__span_attr_int(s, "http.response.status_code", call->status);
	if (call->status >= 400) {
		snprintf(code, sizeof(code), "%d", call->status);
		zc__span_attr_str(s, "error.type", code);
		zc__span_status(s, ZC_STATUS_ERROR, NULL);
	} else if (err != ZC_OK && err != ZC_ERR_HTTP) {
		zc__span_attr_str(s, "error.type", error_class(err));
		zc__span_status(s, ZC_STATUS_ERROR, zc_strerror(err));
	}
	zc__span_end(s, 0);
}

zc_err
zc_call_perform(zc_call *call)
{
	struct curl_slist *hdrs;
	long long now, end, drain;
	long total, connect, left, wait;
	bool clamped = false;
	struct zc_span *span;
	int tries = 0;
	void *curl;
	zc_err err;

	if (call == NULL)
		return ZC_ERR_INVALID;
	zc__call_reply_clear(call);
	call->attempts = 0;
	call->retry_after_ms = 0;
	if (call->setup_err != ZC_OK)
		return call->setup_err;

	total = call->timeout_ms;
	if (call->inbound != NULL) {
		/*
		 * Our caller stops waiting at its deadline; work past it is
		 * wasted, and with nothing left we do not send at all.
		 */
		left = zc_req_remaining_ms(call->inbound);
		if (left <= 0)
			return ZC_ERR_DEADLINE;
		if (left < total) {
			total = left;
			clamped = true;
		}
	}
	/* a queued call during shutdown: the drain deadline bounds it */
	if (call->drain_ns != NULL &&
	    (drain = atomic_load_explicit(call->drain_ns,
					  memory_order_relaxed)) != 0) {
		left = (long)((drain - zc__now_ns()) / 1000000LL);
		if (left <= 0)
			return ZC_ERR_DEADLINE;
		if (left < total) {
			total = left;
			clamped = true;
		}
	}
	end = zc__now_ns() + (long long)total * 1000000LL;

	/*
	 * A handler on its loop's fiber waits without holding the thread,
	 * unless it is inside a store transaction: the transaction lives on
	 * the thread's connection, which another handler must not use
	 * meanwhile, so that wait blocks the loop as it always did.
	 */
	call->on_loop = zc__task_current() != NULL && !zc__store_busy();
	if ((curl = zc__curl_handle(call)) == NULL)
		return ZC_ERR_NOMEM;
	hdrs = NULL; /* built for the first attempt */
	/* libcurl may send again on a new connection: see curl.c on_prereq */
	call->may_resend = repeatable(call);

	for (;;) {
		now = zc__now_ns();
		left = (long)((end - now) / 1000000LL);
		if (left <= 0) {
			err = ZC_ERR_TIMEOUT;
			break;
		}
		connect = call->connect_ms < left ? call->connect_ms : left;
		/* a traced attempt carries its own span's traceparent */
		if ((span = attempt_span(call, tries++)) != NULL ||
		    hdrs == NULL) {
			zc__curl_list_free(hdrs);
			if ((hdrs = zc__call_wire_headers(call)) == NULL) {
				attempt_span_end(span, call, ZC_ERR_NOMEM);
				err = ZC_ERR_NOMEM;
				break;
			}
		}
		err = guarded_attempt(call, curl, hdrs, left, connect);
		attempt_span_end(span, call, err);
		if (err == ZC_OK || !transient(call, err) ||
		    !call->may_resend ||
		    call->attempts > call->target->policy.retries)
			break;
		wait = backoff_ms(&call->target->policy, call->attempts);
		if (call->retry_after_ms > wait)
			wait = call->retry_after_ms;
		if (zc__now_ns() + (long long)wait * 1000000LL >= end)
			break; /* no time left for another attempt */
		if (err == ZC_ERR_HTTP)
			zc_info("retrying %s %s in %ld ms (attempt %d: HTTP "
				"%d)",
				call->method, call->url, wait, call->attempts,
				call->status);
		else
			zc_info("retrying %s %s in %ld ms (attempt %d: %s)",
				call->method, call->url, wait, call->attempts,
				zc_strerror(err));
		zc__log_flush(); /* held lines do not wait out the backoff */
		sleep_ms(call, wait);
	}
	zc__curl_list_free(hdrs);
	zc__curl_handle_done(call, curl);

	/*
	 * Time ran out because the inbound request's deadline did, not the
	 * call's own timeout: report that, so no caller retries it.
	 */
	if (err == ZC_ERR_TIMEOUT && clamped && zc__now_ns() >= end - 1000000LL)
		err = ZC_ERR_DEADLINE;
	return err;
}

int
zc_call_attempts(const zc_call *call)
{
	return call != NULL ? call->attempts : 0;
}

long
zc_call_retry_after_ms(const zc_call *call)
{
	return call != NULL ? call->retry_after_ms : 0;
}

int
zc_call_status(const zc_call *call)
{
	return call != NULL ? call->status : 0;
}

const char *
zc_call_reply(const zc_call *call, size_t *len)
{
	if (len != NULL)
		*len = 0;
	if (call == NULL || call->status == 0)
		return NULL;
	if (len != NULL)
		*len = call->reply_len;
	/* An empty body is "" rather than NULL, so callers can print it. */
	return call->reply != NULL ? call->reply : "";
}

json_t *
zc_call_reply_json(zc_call *call)
{
	json_error_t jerr;

	if (call == NULL || call->status == 0)
		return NULL;
	if (!call->reply_parsed) {
		call->reply_parsed = true;
		if (call->reply_len > 0)
			call->reply_json =
				json_loadb(call->reply, call->reply_len,
					   JSON_DECODE_ANY, &jerr);
	}
	return call->reply_json;
}

zc_err
zc_res_call_error(zc_res *res, const zc_call *call, zc_err err)
{
	char ra[24];
	long ms = zc_call_retry_after_ms(call);
	const char *target = call != NULL && call->target != NULL
				     ? call->target->name
				     : "downstream";

	if (ms > 0 && (err == ZC_ERR_BREAKER_OPEN || err == ZC_ERR_HTTP ||
		       err == ZC_ERR_BULKHEAD_FULL)) {
		snprintf(ra, sizeof(ra), "%ld", (ms + 999) / 1000);
		zc_res_header(res, "Retry-After", ra);
	} else if (err == ZC_ERR_BULKHEAD_FULL) {
		zc_res_header(res, "Retry-After", "1");
	}
	if (err == ZC_ERR_HTTP)
		return zc_res_error(res, zc_err_http_status(err),
				    "%s failed: HTTP %d", target,
				    zc_call_status(call));
	return zc_res_error(res, zc_err_http_status(err), "%s unavailable: %s",
			    target, zc_strerror(err));
}
