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

#endif /* ZC_EVENTS_H */
