/*
 * call.h - private to outbound/: the layout of a call and what call.c
 * (building it), client.c (performing it) and curl.c (libcurl) ask of
 * each other.  Only curl.c sees libcurl's own header.
 */
#ifndef ZC_CALL_H
#define ZC_CALL_H

#include "outbound.h"

#include <string.h>

/*
 * A base URL from <NAME>_URL can be long (a Dapr invoke prefix), but a
 * service URL longer than this is a configuration mistake.
 */
#define ZC_URL_MAX 2048

/* Longest method name kept, NUL included ("OPTIONS" needs 8). */
#define ZC_METHOD_MAX 16

/* libcurl's CURL_ERROR_SIZE; curl.c checks that it still is. */
#define ZC_CALL_ERRBUF 256

/* A request header line, "Name: value" ("Name;" for an empty value). */
struct zc_hdr {
	struct zc_hdr *next;
	char line[];
};

struct curl_slist; /* libcurl's header list: opaque outside curl.c */

struct zc_call {
	zc_req *inbound; /* for the deadline; NULL once queued async */
	struct zc_target *target;
	struct zc_hdr *propagated; /* trace headers, copied at new */
	/* tracing on: the span each attempt's client span is a child of
	 * (copied at new: an async call outlives its request); all zeros
	 * when the call has no trace, and then no span */
	struct zc_span_ctx trace_parent;
	/* the traceparent of the attempt on the wire, replacing the
	 * propagated one: the attempt's client span ("" when none) */
	char attempt_tp[56];
	bool keyed; /* carries an Idempotency-Key */
	int attempts;
	long retry_after_ms;
	/*
	 * Set when the call is handed to the async queue: the queue's drain
	 * deadline (0 until it drains), read while the call runs.  NULL for
	 * a call performed in line.
	 */
	_Atomic long long *drain_ns;
	bool may_resend; /* set by perform: a repeat cannot apply twice */
	/* set by perform: its attempts run on the loop's curl multi and its
	 * waits yield the loop (a handler on a fiber, outside a store
	 * transaction) */
	bool on_loop;
	int sends;       /* sends of the current attempt */
	bool resend_refused;
	/*
	 * The first error from zc_call_new/json/header.  perform returns it
	 * without sending, so a handler that ignored a setter's result never
	 * sends a half-built request (say, without its body or auth header).
	 */
	zc_err setup_err;
	char method[ZC_METHOD_MAX];
	char *url;
	char *body;
	size_t body_len;
	bool has_body;
	struct zc_hdr *headers; /* the caller's */
	bool user_accept;
	bool user_ctype;
	long timeout_ms;
	long connect_ms;
	size_t max_reply;

	/* reply; valid after perform returned ZC_OK or ZC_ERR_HTTP */
	int status;
	char *reply;
	size_t reply_len, reply_cap;
	bool reply_too_large;
	bool reply_nomem;
	json_t *reply_json;
	bool reply_parsed;
	char errbuf[ZC_CALL_ERRBUF];
};

static inline bool
zc__method_has_body(const char *m)
{
	return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	       strcmp(m, "PATCH") == 0;
}

/* ---- call.c ---- */
/* Drop the reply (and the status) of an earlier attempt. */
void zc__call_reply_clear(zc_call *call);
/* The header list one perform sends: our defaults, the caller's, the
 * trace headers the caller did not set, Dapr's token.  NULL on ENOMEM. */
struct curl_slist *zc__call_wire_headers(const zc_call *call);

/* ---- curl.c ---- */
/*
 * An easy handle for call's attempts: from the loop's pool when the call
 * runs on the loop (call->on_loop, which this may clear when the loop
 * has no curl multi), else this thread's own, made on first use.  NULL
 * when libcurl is missing or out of memory.  (libcurl's CURL is void.)
 * zc__curl_handle_done gives it back after the last attempt.
 */
void *zc__curl_handle(zc_call *call);
void zc__curl_handle_done(zc_call *call, void *curl);
/* Append a copy of line to *l; -1 when out of memory (*l unchanged). */
int zc__curl_list_append(struct curl_slist **l, const char *line);
void zc__curl_list_free(struct curl_slist *l);
/*
 * One request on the wire with that handle, into call's reply
 * (which the caller has cleared): ZC_OK, ZC_ERR_HTTP for a status of 400
 * or more, or the transport's error, after which what reply came is
 * partial and the caller clears it.  On the loop the task waits for it,
 * and the loop serves other connections meanwhile.
 */
zc_err zc__curl_attempt(zc_call *call, void *curl, struct curl_slist *hdrs,
			long total_ms, long connect_ms);

#endif /* ZC_CALL_H */
