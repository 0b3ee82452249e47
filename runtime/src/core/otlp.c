/*
 * otlp.c - finished spans as an OTLP protobuf ExportTraceServiceRequest
 * (encoded by hand: the field numbers are opentelemetry-proto's), and
 * reading partial_success out of the collector's reply.  The JSON forms
 * are in otlp_json.c.
 *
 * Every string is sent as valid UTF-8: collectors reject a whole request
 * whose protobuf string field is not, and a request path or User-Agent
 * can hold any bytes.  Invalid bytes become U+FFFD.
 */
#include "core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE_NAME "zenith-c"

/* ---- UTF-8 (zc__utf8_seq is json.c's) ---- */

/* Bytes s takes once each invalid byte is U+FFFD (3 bytes); *clean
 * says whether it needs no change. */
static size_t
utf8_clean_len(const char *s, size_t n, bool *clean)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, out = 0, k;

	*clean = true;
	while (i < n) {
		/* ASCII, the common case, eight bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			if ((w & 0x8080808080808080ULL) != 0)
				break;
			i += 8;
			out += 8;
		}
		if (i >= n)
			break;
		if (p[i] < 0x80) {
			i++;
			out++;
		} else if ((k = zc__utf8_seq(p + i, n - i)) > 0) {
			i += k;
			out += k;
		} else {
			i++;
			out += 3;
			*clean = false;
		}
	}
	return out;
}

/* ---- protobuf ---- */

/*
 * Output: p NULL only counts, so one function both sizes and writes a
 * message and the two can never disagree.  The counting pass records each
 * nested message's length in sizes[], in the order the writing pass meets
 * them (pre-order), so every byte is visited twice in all rather than once
 * per level of nesting (a span attribute sits six levels deep).
 */
struct pb {
	uint8_t *p;
	size_t len;
	size_t *sizes;
	size_t nsizes, cap, next;
	bool nomem;
};

static void
pb_put(struct pb *b, const void *d, size_t n)
{
	if (b->p != NULL && n > 0)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void
pb_varint(struct pb *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;

	do {
		t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
	pb_put(b, t, n);
}

static void
pb_tag(struct pb *b, unsigned field, unsigned wire)
{
	pb_varint(b, (uint64_t)field << 3 | wire);
}

static void
pb_fixed64(struct pb *b, unsigned field, uint64_t v)
{
	uint8_t t[8];
	int i;

	for (i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (8 * i)); /* little-endian */
	pb_tag(b, field, 1);
	pb_put(b, t, 8);
}

static void
pb_fixed32(struct pb *b, unsigned field, uint32_t v)
{
	uint8_t t[4];
	int i;

	for (i = 0; i < 4; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	pb_tag(b, field, 5);
	pb_put(b, t, 4);
}

static void
pb_uint(struct pb *b, unsigned field, uint64_t v)
{
	pb_tag(b, field, 0);
	pb_varint(b, v);
}

static void
pb_bytes(struct pb *b, unsigned field, const void *d, size_t n)
{
	pb_tag(b, field, 2);
	pb_varint(b, n);
	pb_put(b, d, n);
}

static void
pb_str(struct pb *b, unsigned field, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0, i, k;
	bool clean;
	size_t out = utf8_clean_len(s, n, &clean);
	const unsigned char *p = (const unsigned char *)s;

	if (clean) {
		pb_bytes(b, field, s, n);
		return;
	}
	pb_tag(b, field, 2);
	pb_varint(b, out);
	for (i = 0; i < n; i += k) {
		if ((k = zc__utf8_seq(p + i, n - i)) > 0) {
			pb_put(b, p + i, k);
		} else {
			pb_put(b, "\xef\xbf\xbd", 3);
			k = 1;
		}
	}
}

/* A nested message: its length (from the counting pass) then itself. */
typedef void (*pb_msg)(struct pb *b, const void *arg);

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
}

static void
pb_message(struct pb *b, unsigned field, pb_msg fn, const void *arg)
{
	size_t slot, start, inner;

	if (b->p != NULL) {
		inner = b->next < b->nsizes ? b->sizes[b->next++] : 0;
		pb_tag(b, field, 2);
		pb_varint(b, inner);
		fn(b, arg);
		return;
	}
	if (b->nsizes == b->cap) {
		size_t ncap = b->cap == 0 ? 64 : b->cap * 2;
		size_t *ns = realloc(b->sizes, ncap * sizeof(*ns));
		if (ns == NULL) {
			b->nomem = true;
			return;
		}
		b->sizes = ns;
		b->cap = ncap;
	}
	slot = b->nsizes++; /* before the children's: pre-order */
	start = b->len;
	fn(b, arg);
	inner = b->len - start;
	b->sizes[slot] = inner;
	b->len += varint_len((uint64_t)field << 3 | 2) + varint_len(inner);
}

/* AnyValue: a oneof, so even a zero or empty value is written. */
static void
pb_anyvalue(struct pb *b, const void *arg)
{
	const struct zc_attr *a = arg;
	uint64_t bits;

	switch (a->type) {
	case ZC_ATTR_STR:
		pb_str(b, 1, a->v.s);
		break;
	case ZC_ATTR_BOOL:
		pb_uint(b, 2, a->v.b ? 1 : 0);
		break;
	case ZC_ATTR_INT:
		pb_uint(b, 3, (uint64_t)a->v.i); /* negative: 10 bytes */
		break;
	case ZC_ATTR_DOUBLE:
		memcpy(&bits, &a->v.d, 8);
		pb_fixed64(b, 4, bits);
		break;
	}
}

static void
pb_keyvalue(struct pb *b, const void *arg)
{
	const struct zc_attr *a = arg;

	pb_str(b, 1, a->key);
	pb_message(b, 2, pb_anyvalue, a);
}

static void
pb_attrs(struct pb *b, unsigned field, const struct zc_attr *attrs, int n)
{
	int i;

	for (i = 0; i < n; i++)
		pb_message(b, field, pb_keyvalue, &attrs[i]);
}

static void
pb_resource(struct pb *b, const void *arg)
{
	const struct zc_otel *o = arg;
	struct zc_attr a;
	size_t i;

	for (i = 0; i < o->nresource; i++) {
		a.key = o->resource[i].key;
		a.type = ZC_ATTR_STR;
		a.v.s = o->resource[i].value;
		pb_message(b, 1, pb_keyvalue, &a);
	}
}

static void
pb_scope(struct pb *b, const void *arg)
{
	(void)arg;
	pb_str(b, 1, SCOPE_NAME);
	pb_str(b, 2, ZC_VERSION);
}

static void
pb_event(struct pb *b, const void *arg)
{
	const struct zc_span_event *e = arg;

	pb_fixed64(b, 1, (uint64_t)e->time_ns);
	pb_str(b, 2, e->name);
	pb_attrs(b, 3, e->attrs, e->nattrs);
}

/*
 * Bit 8 "whether the parent is remote is known" is set for root spans
 * too, as the Go SDK does: a root's parent is known not to be remote.
 */
uint32_t
zc__otlp_flags(uint8_t w3c, bool remote)
{
	return (uint32_t)w3c | 0x100u | (remote ? 0x200u : 0);
}

static void
pb_link(struct pb *b, const void *arg)
{
	const struct zc_span_ctx *l = arg;

	pb_bytes(b, 1, l->trace_id, 16);
	pb_bytes(b, 2, l->span_id, 8);
	pb_fixed32(b, 6, zc__otlp_flags(l->flags, l->remote));
}

static void
pb_status(struct pb *b, const void *arg)
{
	const struct zc_span *s = arg;

	if (s->status_message != NULL && s->status_message[0] != '\0')
		pb_str(b, 2, s->status_message);
	if (s->status != ZC_STATUS_UNSET)
		pb_uint(b, 3, (uint64_t)s->status);
}

static void
pb_span(struct pb *b, const void *arg)
{
	const struct zc_span *s = arg;
	int i;

	pb_bytes(b, 1, s->ctx.trace_id, 16);
	pb_bytes(b, 2, s->ctx.span_id, 8);
	if (s->has_parent)
		pb_bytes(b, 4, s->parent_id, 8);
	pb_str(b, 5, s->name);
	pb_uint(b, 6, (uint64_t)s->kind);
	pb_fixed64(b, 7, (uint64_t)s->start_ns);
	pb_fixed64(b, 8, (uint64_t)s->end_ns);
	pb_attrs(b, 9, s->attrs, s->nattrs);
	if (s->dropped_attrs > 0)
		pb_uint(b, 10, (uint64_t)s->dropped_attrs);
	for (i = 0; i < s->nevents; i++)
		pb_message(b, 11, pb_event, &s->events[i]);
	if (s->dropped_events > 0)
		pb_uint(b, 12, (uint64_t)s->dropped_events);
	for (i = 0; i < s->nlinks; i++)
		pb_message(b, 13, pb_link, &s->links[i]);
	if (s->dropped_links > 0)
		pb_uint(b, 14, (uint64_t)s->dropped_links);
	if (s->status != ZC_STATUS_UNSET || s->status_message != NULL)
		pb_message(b, 15, pb_status, s);
	pb_fixed32(b, 16,
		   zc__otlp_flags(s->ctx.flags,
				  s->has_parent && s->parent_remote));
}

struct batch {
	const struct zc_otel *o;
	const struct zc_span *list;
};

static void
pb_scope_spans(struct pb *b, const void *arg)
{
	const struct batch *t = arg;
	const struct zc_span *s;

	pb_message(b, 1, pb_scope, NULL);
	for (s = t->list; s != NULL; s = s->next)
		pb_message(b, 2, pb_span, s);
}

static void
pb_resource_spans(struct pb *b, const void *arg)
{
	const struct batch *t = arg;

	pb_message(b, 1, pb_resource, t->o);
	pb_message(b, 2, pb_scope_spans, t);
}

static void
pb_request(struct pb *b, const void *arg)
{
	pb_message(b, 1, pb_resource_spans, arg);
}

char *
zc__otlp_protobuf(const struct zc_otel *o, const struct zc_span *list,
		  size_t *len)
{
	struct batch t = {o, list};
	struct pb b = {0};
	size_t total;

	pb_request(&b, &t);
	total = b.len;
	if (b.nomem || (b.p = malloc(total > 0 ? total : 1)) == NULL) {
		free(b.sizes);
		return NULL;
	}
	b.len = 0;
	pb_request(&b, &t);
	free(b.sizes);
	*len = b.len; /* == total: the same code counted it */
	return (char *)b.p;
}

/* ---- the collector's reply ---- */

/* Read a varint at *p (< end); false when truncated. */
static bool
rd_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*p < end && shift < 64) {
		uint8_t c = *(*p)++;
		*v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0)
			return true;
		shift += 7;
	}
	return false;
}

/* Skip a field of wire type wire; false when malformed. */
static bool
rd_skip(const uint8_t **p, const uint8_t *end, unsigned wire)
{
	uint64_t v;

	switch (wire) {
	case 0:
		return rd_varint(p, end, &v);
	case 1:
		if (end - *p < 8)
			return false;
		*p += 8;
		return true;
	case 2:
		if (!rd_varint(p, end, &v) || v > (uint64_t)(end - *p))
			return false;
		*p += v;
		return true;
	case 5:
		if (end - *p < 4)
			return false;
		*p += 4;
		return true;
	default:
		return false;
	}
}

static long long
rejected_protobuf(const uint8_t *p, const uint8_t *end, char *msg,
		  size_t msgsize)
{
	uint64_t key, v, rejected = 0;

	while (p < end) {
		if (!rd_varint(&p, end, &key))
			return 0;
		if (key == (1 << 3 | 2)) { /* partial_success */
			const uint8_t *q, *qend;
			if (!rd_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return 0;
			q = p;
			qend = p + v;
			p = qend;
			while (q < qend) {
				if (!rd_varint(&q, qend, &key))
					return 0;
				if (key == (1 << 3 | 0)) {
					if (!rd_varint(&q, qend, &rejected))
						return 0;
				} else if (key == (2 << 3 | 2)) {
					if (!rd_varint(&q, qend, &v) ||
					    v > (uint64_t)(qend - q))
						return 0;
					if (msgsize > 0)
						snprintf(
							msg, msgsize, "%.*s",
							(int)(v < msgsize
								      ? v
								      : msgsize -
										1),
							(const char *)q);
					q += v;
				} else if (!rd_skip(&q, qend,
						    (unsigned)(key & 7))) {
					return 0;
				}
			}
		} else if (!rd_skip(&p, end, (unsigned)(key & 7))) {
			return 0;
		}
	}
	return rejected > (uint64_t)INT64_MAX ? INT64_MAX : (long long)rejected;
}

static long long
rejected_json(const char *body, size_t len, char *msg, size_t msgsize)
{
	json_t *root, *ps, *r, *m;
	long long n = 0;

	root = json_loadb(body, len, 0, NULL);
	if (root == NULL)
		return 0;
	ps = json_object_get(root, "partialSuccess");
	if (json_is_object(ps)) {
		r = json_object_get(ps, "rejectedSpans");
		/* int64: a decimal string, numbers also accepted */
		if (json_is_integer(r))
			n = json_integer_value(r);
		else if (json_is_string(r))
			n = strtoll(json_string_value(r), NULL, 10);
		m = json_object_get(ps, "errorMessage");
		if (json_is_string(m) && msgsize > 0)
			snprintf(msg, msgsize, "%s", json_string_value(m));
	}
	json_decref(root);
	return n > 0 ? n : 0;
}

long long
zc__otlp_rejected(int protocol, const char *body, size_t len, char *msg,
		  size_t msgsize)
{
	if (msgsize > 0)
		msg[0] = '\0';
	if (body == NULL || len == 0)
		return 0;
	if (protocol == ZC_OTLP_JSON)
		return rejected_json(body, len, msg, msgsize);
	return rejected_protobuf((const uint8_t *)body,
				 (const uint8_t *)body + len, msg, msgsize);
}
