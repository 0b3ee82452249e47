/*
 * events.h - CloudEvents 1.0 over HTTP: the event model (event.c), its
 * wire forms (codec.c), sending to a sink or broker (send.c), and
 * receiving on event routes with dedup (receive.c).  Above the server
 * (routes, requests), outbound calls (sending) and the store (dedup
 * records).
 */
#ifndef ZC_EVENTS_H
#define ZC_EVENTS_H

#include "../outbound/outbound.h"

#include <sys/types.h>

/* Free the app's event routes (app.c, when the app is freed). */
void zc__events_free(zc_app *app);

/* ---- the event model (event.c) ---- */
/* Longest attribute name accepted (the spec says SHOULD NOT exceed 20). */
#define ZC_CE_NAME_MAX 64

struct zc_event {
	struct zc_kv *attrs; /* name -> decoded value, in arrival order */
	size_t nattrs, cap;
	char *data; /* NULL when the event has no data */
	size_t len;
	json_t *json; /* data parsed, when it is JSON */
};

/* Why an event was refused: status, the attribute named, a message. */
struct zc__ce_err {
	int status; /* 0: out of memory */
	char attr[ZC_CE_NAME_MAX + 1];
	char msg[256];
};

/* Refuse with status, naming attr (NULL: none); returns -1. */
int zc__ce_fail(struct zc__ce_err *e, int status, const char *attr,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Refuse for want of memory (status 0: a 500); returns -1. */
int zc__ce_nomem(struct zc__ce_err *e);

/* One of the spec's own attributes (typed String, never overridden). */
bool zc__ce_is_spec_attr(const char *name);
/* An attribute name: lower-case a-z0-9, 1 to ZC_CE_NAME_MAX characters. */
bool zc__ce_valid_name(const char *s, size_t n);
/* What zc__ce_check_text finds in a string value. */
enum { ZC_CE_TEXT_OK = 0, ZC_CE_TEXT_BAD_UTF8, ZC_CE_TEXT_CONTROL };
/* Strict UTF-8 without the control characters strings must not hold. */
int zc__ce_check_text(const char *p, size_t n);
/* A Content-Type's media type, lower-cased, parameters cut, into buf. */
void zc__ce_media_type(const char *ct, char *buf, size_t size);
/* Data of this content type is a JSON value / is text. */
bool zc__ce_is_json_type(const char *ct);
bool zc__ce_is_text_type(const char *ct);

/* An empty event (no attributes, no data), or NULL. */
zc_event *zc__ce_event_alloc(void);
/* A deep copy (the parsed JSON shared), or NULL. */
zc_event *zc__ce_event_copy(const zc_event *ev);
/* The index of attribute name in ev->attrs, or -1. */
ssize_t zc__ce_attr_index(const zc_event *ev, const char *name);
/* Set name to a copy of value, unchecked: in place, else appended.
 * ZC_ERR_INVALID past the attribute limit. */
zc_err zc__ce_attr_put(zc_event *ev, const char *name, const char *value);
/* Take data, malloc'd with room for a NUL at [len], as ev's data. */
void zc__ce_data_take(zc_event *ev, char *data, size_t len);
/* Copy data in as ev's data (ev->json is cleared). */
zc_err zc__ce_data_copy(zc_event *ev, const void *data, size_t len);
/* A decoded event's attributes: required ones present, all well-formed. */
int zc__ce_check_attrs(const zc_event *ev, struct zc__ce_err *e);

/* ---- the wire forms (codec.c) ---- */
/* ev in the JSON format (structured mode), or NULL. */
json_t *zc__ce_event_to_json(const zc_event *ev);
/* One event in the JSON format (structured mode, a batch member). */
zc_event *zc__ce_event_from_json(json_t *obj, struct zc__ce_err *e);
/* The binary-mode event of req: ce-* headers and the body. */
zc_event *zc__ce_event_from_binary(zc_req *req, struct zc__ce_err *e);
/* A binary-mode reply read back from res (for storing it), or NULL. */
zc_event *zc__ce_event_from_res(const zc_res *res);
/* The Content-Type binary mode sends, or NULL for an event without data. */
const char *zc__ce_binary_ctype(const zc_event *ev);
/* Where zc__ce_each_header puts each header (a response, a call). */
typedef zc_err (*zc__ce_header_fn)(void *arg, const char *name,
				   const char *value);
/* Each binary-mode ce-* header of ev, percent-encoded, to add. */
zc_err zc__ce_each_header(const zc_event *ev, zc__ce_header_fn add, void *arg);
/* Put the four required attributes first, in the spec's order. */
void zc__ce_order_first(zc_event *ev);

/* ---- receiving (receive.c) ---- */
/* zc_event_route with front as the POST route's handler, given the
 * path's handle as its arg: Dapr's subscriptions, which answer in Dapr's
 * terms.  A path is either kind, never both (ZC_ERR_INVALID). */
zc_err zc__event_route_front(zc_app *app, const char *path,
			     zc_event_handler handler, void *arg,
			     const zc_route_opts *opts, zc_handler front);
/* What an event route does with req (path: the handle front was given):
 * decode, dedupe, run the handler; the answer in res, or the handler's
 * non-zero result. */
int zc__event_receive(zc_req *req, zc_res *res, void *path);

/* ---- the Dapr sidecar (dapr.c) ---- */
/* Read DAPR_HTTP_PORT, DAPR_HEALTH_TIMEOUT and ZC_DAPR_WAIT (before
 * setup; again for each in-process test app).  -1 with one line in err
 * for a bad value. */
int zc__dapr_configure(char *err, size_t errsize);
/* The sidecar's HTTP port ("3500"), or NULL without a valid
 * DAPR_HTTP_PORT. */
const char *zc__dapr_port(void);
/* Once the port is open: close the readiness gate and poll the sidecar's
 * outbound health on a thread of its own until it answers. */
void zc__dapr_start(void);
/* SIGTERM: stop the poller (a poll in flight is cut short), join it. */
void zc__dapr_stop(void);
/* "<pubsub>/<topic>" (a "dapr:" target) -> the sidecar's publish URL and
 * the target name its calls share.  ZC_ERR_INVALID (logged) for a
 * malformed spec or no DAPR_HTTP_PORT. */
zc_err zc__dapr_publish_url(const char *spec, char *url, size_t urlsz,
			    char *tname, size_t tsize);
/* What the poller logs after a failed poll: nothing, the one error at
 * DAPR_HEALTH_TIMEOUT, or a reminder every ZC_DAPR_REMIND_MS after it. */
#define ZC_DAPR_REMIND_MS 60000LL
enum { ZC_DAPR_NOTE_NONE = 0, ZC_DAPR_NOTE_TIMEOUT, ZC_DAPR_NOTE_REMIND };
struct zc__dapr_wait {
	long long timeout_ms;
	long long next_ms; /* when the next line is due (start: timeout) */
	bool timed_out;
};
int zc__dapr_wait_note(struct zc__dapr_wait *w, long long elapsed_ms);

/* ---- Dapr pub/sub (dapr_pubsub.c) ---- */
/* Free the app's subscriptions (app.c). */
void zc__dapr_free(zc_app *app);
/* Dapr's answer to a delivery for a handler's result: rc non-zero, or
 * the HTTP status it answered (0: none, taken as 202). */
enum { ZC_DAPR_SUCCESS = 0, ZC_DAPR_RETRY, ZC_DAPR_DROP };
int zc__dapr_outcome(int rc, int status);
const char *zc__dapr_outcome_name(int outcome);
/* got equals expected, in time that depends on expected's length only. */
bool zc__dapr_token_ok(const char *expected, const char *got);
/* The app's GET /dapr/subscribe answer (compact JSON, malloc'd), or
 * NULL. */
char *zc__dapr_subscriptions(const zc_app *app, size_t *len);

#endif /* ZC_EVENTS_H */
