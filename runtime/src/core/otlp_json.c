/*
 * otlp_json.c - finished spans as OTLP/JSON (hex ids, integer enums,
 * int64 as decimal strings, lowerCamelCase keys) and as the console
 * exporter's one readable JSON line per span.  Printed directly rather
 * than built as jansson trees: an export is on the exporter's thread, but
 * it shares two CPUs with the requests.  Invalid UTF-8 becomes U+FFFD.
 */
#include "core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE_NAME "zenith-c"

/* ---- JSON ---- */

struct jb {
	char *p; /* NULL once an allocation failed */
	size_t len, cap;
};

static void
jb_put(struct jb *b, const char *s, size_t n)
{
	if (b->p == NULL)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap * 2 + n + 1;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			free(b->p);
			b->p = NULL;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
jb_lit(struct jb *b, const char *s)
{
	jb_put(b, s, strlen(s));
}

/* A JSON string: quoted, escaped, invalid UTF-8 as U+FFFD. */
static void
jb_str(struct jb *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p), i = 0, run, k;
	char esc[8];

	jb_put(b, "\"", 1);
	while (i < n) {
		for (run = i; run < n && p[run] >= 0x20 && p[run] < 0x80 &&
			      p[run] != '"' && p[run] != '\\';
		     run++)
			;
		jb_put(b, (const char *)p + i, run - i);
		if ((i = run) >= n)
			break;
		if (p[i] >= 0x80) {
			if ((k = zc__utf8_seq(p + i, n - i)) > 0)
				jb_put(b, (const char *)p + i, k);
			else
				jb_put(b, "\\ufffd", 6), k = 1;
			i += k;
			continue;
		}
		switch (p[i]) {
		case '"':
			jb_put(b, "\\\"", 2);
			break;
		case '\\':
			jb_put(b, "\\\\", 2);
			break;
		case '\n':
			jb_put(b, "\\n", 2);
			break;
		case '\r':
			jb_put(b, "\\r", 2);
			break;
		case '\t':
			jb_put(b, "\\t", 2);
			break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
			jb_put(b, esc, 6);
		}
		i++;
	}
	jb_put(b, "\"", 1);
}

static void
jb_hex(struct jb *b, const uint8_t *d, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char out[2 * 16 + 2];
	size_t i;

	out[0] = '"';
	for (i = 0; i < n; i++) {
		out[1 + 2 * i] = hex[d[i] >> 4];
		out[2 + 2 * i] = hex[d[i] & 15];
	}
	out[1 + 2 * n] = '"';
	jb_put(b, out, 2 * n + 2);
}

/* One integer in a printf format (a literal, so the compiler checks it). */
#define jb_fmt(b, fmt, v)                                                      \
	do {                                                                   \
		char t_[64];                                                   \
		int n_ = snprintf(t_, sizeof(t_), fmt, (long long)(v));        \
		jb_put(b, t_, n_ > 0 ? (size_t)n_ : 0);                        \
	} while (0)

/* A double as JSON: NaN and the infinities as proto3 JSON's strings. */
static void
jb_double(struct jb *b, double d)
{
	char t[40];

	if (isnan(d))
		jb_lit(b, "\"NaN\"");
	else if (isinf(d))
		jb_lit(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else {
		snprintf(t, sizeof(t), "%.17g", d);
		jb_lit(b, t);
	}
}

static void
jb_anyvalue(struct jb *b, const struct zc_attr *a)
{
	switch (a->type) {
	case ZC_ATTR_STR:
		jb_lit(b, "{\"stringValue\":");
		jb_str(b, a->v.s);
		break;
	case ZC_ATTR_BOOL:
		jb_lit(b,
		       a->v.b ? "{\"boolValue\":true" : "{\"boolValue\":false");
		break;
	case ZC_ATTR_INT:
		/* int64 is a decimal string in OTLP/JSON */
		jb_fmt(b, "{\"intValue\":\"%lld\"", (long long)a->v.i);
		break;
	case ZC_ATTR_DOUBLE:
		jb_lit(b, "{\"doubleValue\":");
		jb_double(b, a->v.d);
		break;
	}
	jb_lit(b, "}");
}

static void
jb_attrs(struct jb *b, const struct zc_attr *attrs, int n)
{
	int i;

	jb_lit(b, "\"attributes\":[");
	for (i = 0; i < n; i++) {
		jb_lit(b, i > 0 ? ",{\"key\":" : "{\"key\":");
		jb_str(b, attrs[i].key);
		jb_lit(b, ",\"value\":");
		jb_anyvalue(b, &attrs[i]);
		jb_lit(b, "}");
	}
	jb_lit(b, "]");
}

static void
jb_span(struct jb *b, const struct zc_span *s)
{
	int i;

	jb_lit(b, "{\"traceId\":");
	jb_hex(b, s->ctx.trace_id, 16);
	jb_lit(b, ",\"spanId\":");
	jb_hex(b, s->ctx.span_id, 8);
	if (s->has_parent) {
		jb_lit(b, ",\"parentSpanId\":");
		jb_hex(b, s->parent_id, 8);
	}
	jb_fmt(b, ",\"flags\":%lld",
	       (long long)zc__otlp_flags(s->ctx.flags,
					 s->has_parent && s->parent_remote));
	jb_lit(b, ",\"name\":");
	jb_str(b, s->name);
	jb_fmt(b, ",\"kind\":%lld", (long long)s->kind);
	jb_fmt(b, ",\"startTimeUnixNano\":\"%lld\"", s->start_ns);
	jb_fmt(b, ",\"endTimeUnixNano\":\"%lld\",", s->end_ns);
	jb_attrs(b, s->attrs, s->nattrs);
	if (s->dropped_attrs > 0)
		jb_fmt(b, ",\"droppedAttributesCount\":%lld", s->dropped_attrs);
	if (s->nevents > 0) {
		jb_lit(b, ",\"events\":[");
		for (i = 0; i < s->nevents; i++) {
			jb_fmt(b,
			       i > 0 ? ",{\"timeUnixNano\":\"%lld\""
				     : "{\"timeUnixNano\":\"%lld\"",
			       s->events[i].time_ns);
			jb_lit(b, ",\"name\":");
			jb_str(b, s->events[i].name);
			jb_lit(b, ",");
			jb_attrs(b, s->events[i].attrs, s->events[i].nattrs);
			jb_lit(b, "}");
		}
		jb_lit(b, "]");
	}
	if (s->dropped_events > 0)
		jb_fmt(b, ",\"droppedEventsCount\":%lld", s->dropped_events);
	if (s->nlinks > 0) {
		jb_lit(b, ",\"links\":[");
		for (i = 0; i < s->nlinks; i++) {
			jb_lit(b, i > 0 ? ",{\"traceId\":" : "{\"traceId\":");
			jb_hex(b, s->links[i].trace_id, 16);
			jb_lit(b, ",\"spanId\":");
			jb_hex(b, s->links[i].span_id, 8);
			jb_fmt(b, ",\"flags\":%lld}",
			       (long long)zc__otlp_flags(s->links[i].flags,
							 s->links[i].remote));
		}
		jb_lit(b, "]");
	}
	if (s->dropped_links > 0)
		jb_fmt(b, ",\"droppedLinksCount\":%lld", s->dropped_links);
	if (s->status != ZC_STATUS_UNSET || s->status_message != NULL) {
		jb_fmt(b, ",\"status\":{\"code\":%lld", (long long)s->status);
		if (s->status_message != NULL) {
			jb_lit(b, ",\"message\":");
			jb_str(b, s->status_message);
		}
		jb_lit(b, "}");
	}
	jb_lit(b, "}");
}

char *
zc__otlp_json(const struct zc_otel *o, const struct zc_span *list, size_t *len)
{
	struct jb b = {malloc(4096), 0, 4096};
	const struct zc_span *s;
	size_t i;

	jb_lit(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	for (i = 0; i < o->nresource; i++) {
		jb_lit(&b, i > 0 ? ",{\"key\":" : "{\"key\":");
		jb_str(&b, o->resource[i].key);
		jb_lit(&b, ",\"value\":{\"stringValue\":");
		jb_str(&b, o->resource[i].value);
		jb_lit(&b, "}}");
	}
	jb_lit(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"" SCOPE_NAME
		   "\",\"version\":\"" ZC_VERSION "\"},\"spans\":[");
	for (s = list; s != NULL; s = s->next) {
		if (s != list)
			jb_lit(&b, ",");
		jb_span(&b, s);
	}
	jb_lit(&b, "]}]}]}");
	*len = b.len;
	return b.p;
}

/* ---- the console exporter's line ---- */

static const char *
kind_name(enum zc_span_kind k)
{
	switch (k) {
	case ZC_SPAN_SERVER:
		return "SERVER";
	case ZC_SPAN_CLIENT:
		return "CLIENT";
	case ZC_SPAN_PRODUCER:
		return "PRODUCER";
	case ZC_SPAN_CONSUMER:
		return "CONSUMER";
	default:
		return "INTERNAL";
	}
}

/* RFC 3339 UTC with nanoseconds, quoted. */
static void
jb_time(struct jb *b, long long ns)
{
	char t[48];

	t[0] = '"';
	zc__utc_seconds((time_t)(ns / 1000000000LL), t + 1);
	snprintf(t + 20, sizeof(t) - 20, ".%09lldZ\"", ns % 1000000000LL);
	jb_lit(b, t);
}

/* Attributes as one JSON object of plain values, for people and jq. */
static void
jb_attr_object(struct jb *b, const struct zc_attr *attrs, int n)
{
	int i;

	jb_lit(b, "{");
	for (i = 0; i < n; i++) {
		if (i > 0)
			jb_lit(b, ",");
		jb_str(b, attrs[i].key);
		jb_lit(b, ":");
		switch (attrs[i].type) {
		case ZC_ATTR_STR:
			jb_str(b, attrs[i].v.s);
			break;
		case ZC_ATTR_BOOL:
			jb_lit(b, attrs[i].v.b ? "true" : "false");
			break;
		case ZC_ATTR_INT:
			jb_fmt(b, "%lld", (long long)attrs[i].v.i);
			break;
		case ZC_ATTR_DOUBLE:
			jb_double(b, attrs[i].v.d);
			break;
		}
	}
	jb_lit(b, "}");
}

/*
 * {"name","traceId","spanId","parentSpanId" (not on a root),"kind" (by
 * name),"start" (RFC 3339),"durationMs","status" ("UNSET", "OK",
 * "ERROR"),"statusMessage" (when there is one),"attributes" {key: value},
 * "events" and "links" (when there are any),"resource" (without the
 * constant telemetry.sdk.* attributes)}: docs/operations.md, "Tracing".
 */
char *
zc__otlp_console(const struct zc_otel *o, const struct zc_span *s, size_t *len)
{
	static const char *const status[] = {"UNSET", "OK", "ERROR"};
	struct jb b = {malloc(1024), 0, 1024};
	char dur[48];
	size_t i;
	int k;

	jb_lit(&b, "{\"name\":");
	jb_str(&b, s->name);
	jb_lit(&b, ",\"traceId\":");
	jb_hex(&b, s->ctx.trace_id, 16);
	jb_lit(&b, ",\"spanId\":");
	jb_hex(&b, s->ctx.span_id, 8);
	if (s->has_parent) {
		jb_lit(&b, ",\"parentSpanId\":");
		jb_hex(&b, s->parent_id, 8);
	}
	jb_lit(&b, ",\"kind\":\"");
	jb_lit(&b, kind_name(s->kind));
	jb_lit(&b, "\",\"start\":");
	jb_time(&b, s->start_ns);
	snprintf(dur, sizeof(dur), ",\"durationMs\":%.3f",
		 (double)(s->end_ns - s->start_ns) / 1e6);
	jb_lit(&b, dur);
	jb_lit(&b, ",\"status\":\"");
	jb_lit(&b, status[s->status <= ZC_STATUS_ERROR ? s->status : 0]);
	jb_lit(&b, "\"");
	if (s->status_message != NULL) {
		jb_lit(&b, ",\"statusMessage\":");
		jb_str(&b, s->status_message);
	}
	jb_lit(&b, ",\"attributes\":");
	jb_attr_object(&b, s->attrs, s->nattrs);
	if (s->nevents > 0) {
		jb_lit(&b, ",\"events\":[");
		for (k = 0; k < s->nevents; k++) {
			jb_lit(&b, k > 0 ? ",{\"name\":" : "{\"name\":");
			jb_str(&b, s->events[k].name);
			jb_lit(&b, ",\"time\":");
			jb_time(&b, s->events[k].time_ns);
			if (s->events[k].nattrs > 0) {
				jb_lit(&b, ",\"attributes\":");
				jb_attr_object(&b, s->events[k].attrs,
					       s->events[k].nattrs);
			}
			jb_lit(&b, "}");
		}
		jb_lit(&b, "]");
	}
	if (s->nlinks > 0) {
		jb_lit(&b, ",\"links\":[");
		for (k = 0; k < s->nlinks; k++) {
			jb_lit(&b, k > 0 ? ",{\"traceId\":" : "{\"traceId\":");
			jb_hex(&b, s->links[k].trace_id, 16);
			jb_lit(&b, ",\"spanId\":");
			jb_hex(&b, s->links[k].span_id, 8);
			jb_lit(&b, "}");
		}
		jb_lit(&b, "]");
	}
	jb_lit(&b, ",\"resource\":{");
	for (i = 0, k = 0; i < o->nresource; i++) {
		if (strncmp(o->resource[i].key, "telemetry.sdk.", 14) == 0)
			continue;
		if (k++ > 0)
			jb_lit(&b, ",");
		jb_str(&b, o->resource[i].key);
		jb_lit(&b, ":");
		jb_str(&b, o->resource[i].value);
	}
	jb_lit(&b, "}}\n");
	*len = b.len;
	return b.p;
}
