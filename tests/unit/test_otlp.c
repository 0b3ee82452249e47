/*
 * test_otlp.c - spans as OTLP (core/otlp.c, core/otlp_json.c) and the
 * exporter thread (outbound/export.c):
 *   protobuf  byte for byte against a request OpenTelemetry's own
 *             generated code encoded (otlp-transformer 0.209.0's
 *             root.js, from platform-fit.md's example), and every Span
 *             field read back by a small walker written here
 *   json      parsed by jansson: hex ids, integer enums, int64 strings
 *   console   one line jq can parse, kinds and status by name
 *   reply     partial_success in protobuf and JSON
 *   export    against a loopback collector (fake_http.h): headers, a
 *             503 retried after Retry-After, a 400 not retried, partial
 *             success, the flush at stop, a collector that is down
 */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "fake_http.h"

static const uint8_t TID[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
				0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
static const uint8_t SID[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
static const uint8_t PID[8] = {0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};

/* platform-fit.md section 2's example, flags 0x301 (sampled, remote
 * parent), scope version "0.2.0": encoded by otlp-transformer 0.209.0's
 * ExportTraceServiceRequest.encode (node, tests/otlp/node_modules). */
static const char GOLDEN[] =
	"0a83020a400a210a0c736572766963652e6e616d6512110a0f62616c616e63652d6d"
	"616e616765720a1b0a11736572766963652e6e616d65737061636512060a0464656d"
	"6f12be010a110a087a656e6974682d631205302e322e3012a8010a104bf92f3577b3"
	"4da6a3ce929d0e0e4736120800f067aa0ba902b72208a3ce929d0e0e47362a0c504f"
	"5354202f7570646174653002390000faed5172861841000937ee517286184a1d0a13"
	"687474702e726571756573742e6d6574686f6412060a04504f53544a170a0a687474"
	"702e726f75746512090a072f7570646174654a200a19687474702e726573706f6e73"
	"652e7374617475735f636f6465120318c801850101030000";

static struct zc_otel_kv res_kv[] = {
	{"service.name", "balance-manager"},
	{"service.namespace", "demo"},
};
static struct zc_otel cfg = {.resource = res_kv, .nresource = 2};

static void
recording_on(void)
{
	struct zc_otel o = {.sampler = ZC_SAMPLE_ALWAYS_ON,
			    .ratio = 1.0,
			    .max_queue = 2048,
			    .max_batch = 512};

	zc__tracing_enable(&o);
}

/* The example span: a server span under a remote parent. */
static struct zc_span *
example_span(void)
{
	struct zc_span_ctx parent;
	struct zc_span *s;

	memcpy(parent.trace_id, TID, 16);
	memcpy(parent.span_id, PID, 8);
	parent.flags = 1;
	parent.remote = true;
	s = zc__span_start(ZC_SPAN_SERVER, "POST /update", &parent, SID,
			   1767225600000000000LL);
	ck_assert_ptr_nonnull(s);
	zc__span_attr_str(s, "http.request.method", "POST");
	zc__span_attr_str(s, "http.route", "/update");
	zc__span_attr_int(s, "http.response.status_code", 200);
	s->end_ns = 1767225600004000000LL;
	return s;
}

static char *
to_hex(const char *p, size_t n)
{
	char *out = malloc(2 * n + 1);
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", (unsigned char)p[i]);
	out[2 * n] = '\0';
	return out;
}

/* ---- a protobuf walker, independent of otlp.c ---- */

struct fld {
	unsigned num, wire;
	uint64_t v; /* varint, fixed32, fixed64 */
	const uint8_t *p;
	size_t len; /* length-delimited */
};

static uint64_t
rd_var(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (*p < end) {
		uint8_t c = *(*p)++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
		shift += 7;
	}
	ck_abort_msg("truncated varint");
	return 0;
}

/* The fields of a message; the whole of it must parse. */
static int
walk(const uint8_t *p, size_t n, struct fld *out, int max)
{
	const uint8_t *end = p + n;
	int k = 0, i;

	while (p < end) {
		uint64_t key = rd_var(&p, end);
		ck_assert_int_lt(k, max);
		out[k].num = (unsigned)(key >> 3);
		out[k].wire = (unsigned)(key & 7);
		switch (out[k].wire) {
		case 0:
			out[k].v = rd_var(&p, end);
			break;
		case 1:
			ck_assert_int_ge(end - p, 8);
			for (out[k].v = 0, i = 7; i >= 0; i--)
				out[k].v = out[k].v << 8 | p[i];
			p += 8;
			break;
		case 2:
			out[k].len = (size_t)rd_var(&p, end);
			ck_assert_uint_le(out[k].len, (size_t)(end - p));
			out[k].p = p;
			p += out[k].len;
			break;
		case 5:
			ck_assert_int_ge(end - p, 4);
			out[k].v = (uint32_t)p[0] | (uint32_t)p[1] << 8 |
				   (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
			p += 4;
			break;
		default:
			ck_abort_msg("wire type %u", out[k].wire);
		}
		k++;
	}
	ck_assert(p == end);
	return k;
}

/* The idx'th field numbered num (asserting there is one). */
static const struct fld *
get(const struct fld *f, int n, unsigned num, int idx)
{
	int i;

	for (i = 0; i < n; i++)
		if (f[i].num == num && idx-- == 0)
			return &f[i];
	ck_abort_msg("no field %u", num);
	return NULL;
}

static int
count(const struct fld *f, int n, unsigned num)
{
	int i, c = 0;

	for (i = 0; i < n; i++)
		c += f[i].num == num;
	return c;
}

static bool
str_is(const struct fld *f, const char *s)
{
	return f->wire == 2 && f->len == strlen(s) &&
	       memcmp(f->p, s, f->len) == 0;
}

/* ---- protobuf ---- */

START_TEST(protobuf_matches_reference)
{
	struct zc_span *s;
	char *body, *hex, want[sizeof(GOLDEN)];
	size_t len;

	recording_on();
	s = example_span();
	body = zc__otlp_protobuf(&cfg, s, &len);
	ck_assert_ptr_nonnull(body);
	hex = to_hex(body, len);
	/* the reference says scope version 0.2.0; ours is ZC_VERSION */
	memcpy(want, GOLDEN, sizeof(GOLDEN));
	if (strlen(ZC_VERSION) == 5) {
		char v[11], *at = strstr(want, "302e322e30");
		ck_assert_ptr_nonnull(at);
		for (int i = 0; i < 5; i++)
			sprintf(v + 2 * i, "%02x", ZC_VERSION[i]);
		memcpy(at, v, 10);
		ck_assert_str_eq(hex, want);
	}
	/* the tags platform-fit.md lists: request 0a, resource_spans 0a,
	 * resource 0a, flags 85 01 */
	ck_assert_str_eq(strstr(hex, "850101030000"), "850101030000");
	free(hex);
	free(body);
	zc__span_free(s);
}
END_TEST

START_TEST(protobuf_every_field)
{
	struct zc_span *root, *child, *s;
	struct zc_span_ctx link;
	struct fld req[4], rs[4], scope_spans[8], sp[64], f[16], g[8], h[8];
	const struct fld *span;
	char *body;
	size_t len;
	int n, m, k;
	double d;

	recording_on();
	root = zc__span_start(ZC_SPAN_INTERNAL, "root \xff\xfe name", NULL,
			      NULL, 0);
	ck_assert_ptr_nonnull(root);
	child = example_span();
	zc__span_attr_int(child, "neg", -5);
	zc__span_attr_double(child, "ratio", 0.25);
	zc__span_attr_bool(child, "no", false);
	zc__span_attr_str(child, "empty", "");
	zc__span_event(child, "retrying");
	zc__span_event_attr_str(child, "why", "503");
	memcpy(link.trace_id, TID, 16);
	memcpy(link.span_id, PID, 8);
	link.flags = 1;
	link.remote = true;
	zc__span_link(child, &link);
	zc__span_status(child, ZC_STATUS_ERROR, "boom");
	child->dropped_attrs = 2;
	root->end_ns = root->start_ns + 1000;
	root->next = child;

	body = zc__otlp_protobuf(&cfg, root, &len);
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_eq((unsigned char)body[0], 0x0a);
	n = walk((const uint8_t *)body, len, req, 4);
	ck_assert_int_eq(n, 1);
	n = walk(req[0].p, req[0].len, rs, 4);
	ck_assert_int_eq(n, 2);
	/* resource: two KeyValues of string AnyValues */
	m = walk(get(rs, n, 1, 0)->p, get(rs, n, 1, 0)->len, f, 16);
	ck_assert_int_eq(m, 2);
	k = walk(f[0].p, f[0].len, g, 8);
	ck_assert(str_is(get(g, k, 1, 0), "service.name"));
	k = walk(get(g, k, 2, 0)->p, get(g, k, 2, 0)->len, h, 8);
	ck_assert(str_is(get(h, k, 1, 0), "balance-manager"));
	/* scope spans: scope + 2 spans */
	n = walk(get(rs, 2, 2, 0)->p, get(rs, 2, 2, 0)->len, scope_spans, 8);
	ck_assert_int_eq(count(scope_spans, n, 2), 2);
	m = walk(get(scope_spans, n, 1, 0)->p, get(scope_spans, n, 1, 0)->len,
		 f, 16);
	ck_assert(str_is(get(f, m, 1, 0), "zenith-c"));
	ck_assert(str_is(get(f, m, 2, 0), ZC_VERSION));

	/* the root: no parent, invalid UTF-8 replaced, flags 0x101 */
	span = get(scope_spans, n, 2, 0);
	m = walk(span->p, span->len, sp, 64);
	ck_assert_int_eq(count(sp, m, 4), 0);
	ck_assert(
		str_is(get(sp, m, 5, 0), "root \xef\xbf\xbd\xef\xbf\xbd name"));
	ck_assert_uint_eq(get(sp, m, 6, 0)->v, 1);
	ck_assert_uint_eq(get(sp, m, 16, 0)->wire, 5);
	ck_assert_uint_eq(get(sp, m, 16, 0)->v, 0x101);
	ck_assert_int_eq(count(sp, m, 15), 0); /* status unset */

	/* the child: every field */
	span = get(scope_spans, n, 2, 1);
	m = walk(span->p, span->len, sp, 64);
	ck_assert_uint_eq(get(sp, m, 1, 0)->len, 16);
	ck_assert_mem_eq(get(sp, m, 1, 0)->p, TID, 16);
	ck_assert_mem_eq(get(sp, m, 2, 0)->p, SID, 8);
	ck_assert_mem_eq(get(sp, m, 4, 0)->p, PID, 8);
	ck_assert_uint_eq(get(sp, m, 6, 0)->v, 2);
	ck_assert_uint_eq(get(sp, m, 7, 0)->wire, 1);
	ck_assert_uint_eq(get(sp, m, 7, 0)->v, 1767225600000000000ULL);
	ck_assert_uint_eq(get(sp, m, 8, 0)->v, 1767225600004000000ULL);
	ck_assert_int_eq(count(sp, m, 9), 7);
	/* attribute 3: neg = -5, a 10-byte varint */
	k = walk(get(sp, m, 9, 3)->p, get(sp, m, 9, 3)->len, g, 8);
	ck_assert(str_is(get(g, k, 1, 0), "neg"));
	k = walk(get(g, k, 2, 0)->p, get(g, k, 2, 0)->len, h, 8);
	ck_assert_uint_eq(h[0].num, 3);
	ck_assert_int_eq((int64_t)h[0].v, -5);
	/* ratio: double */
	k = walk(get(sp, m, 9, 4)->p, get(sp, m, 9, 4)->len, g, 8);
	k = walk(get(g, k, 2, 0)->p, get(g, k, 2, 0)->len, h, 8);
	ck_assert_uint_eq(h[0].num, 4);
	ck_assert_uint_eq(h[0].wire, 1);
	memcpy(&d, &h[0].v, 8);
	ck_assert(d == 0.25);
	/* no = false: the oneof is written even when zero */
	k = walk(get(sp, m, 9, 5)->p, get(sp, m, 9, 5)->len, g, 8);
	k = walk(get(g, k, 2, 0)->p, get(g, k, 2, 0)->len, h, 8);
	ck_assert_int_eq(k, 1);
	ck_assert_uint_eq(h[0].num, 2);
	ck_assert_uint_eq(h[0].v, 0);
	/* empty = "": written, length 0 */
	k = walk(get(sp, m, 9, 6)->p, get(sp, m, 9, 6)->len, g, 8);
	k = walk(get(g, k, 2, 0)->p, get(g, k, 2, 0)->len, h, 8);
	ck_assert_int_eq(k, 1);
	ck_assert_uint_eq(h[0].num, 1);
	ck_assert_uint_eq(h[0].len, 0);
	ck_assert_uint_eq(get(sp, m, 10, 0)->v, 2);
	/* the event */
	k = walk(get(sp, m, 11, 0)->p, get(sp, m, 11, 0)->len, g, 8);
	ck_assert_uint_eq(get(g, k, 1, 0)->wire, 1);
	ck_assert(str_is(get(g, k, 2, 0), "retrying"));
	ck_assert_int_eq(count(g, k, 3), 1);
	/* the link: ids and flags 0x301 */
	k = walk(get(sp, m, 13, 0)->p, get(sp, m, 13, 0)->len, g, 8);
	ck_assert_mem_eq(get(g, k, 1, 0)->p, TID, 16);
	ck_assert_mem_eq(get(g, k, 2, 0)->p, PID, 8);
	ck_assert_uint_eq(get(g, k, 6, 0)->v, 0x301);
	/* status: ERROR, "boom" */
	k = walk(get(sp, m, 15, 0)->p, get(sp, m, 15, 0)->len, g, 8);
	ck_assert_uint_eq(get(g, k, 3, 0)->v, 2);
	ck_assert(str_is(get(g, k, 2, 0), "boom"));
	ck_assert_uint_eq(get(sp, m, 16, 0)->v, 0x301);
	free(body);
	for (s = root; s != NULL; s = child) {
		child = s->next;
		zc__span_free(s);
	}
}
END_TEST

/* ---- JSON ---- */

static bool
is_hex(const char *s, size_t n)
{
	size_t i;

	if (s == NULL || strlen(s) != n)
		return false;
	for (i = 0; i < n; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

START_TEST(json_form)
{
	struct zc_span *s = NULL;
	json_t *root, *ss, *span, *attrs, *a;
	json_error_t e;
	char *body;
	size_t len, i;

	recording_on();
	s = example_span();
	zc__span_attr_str(s, "ctl", "a\"b\\c\n\x01 \xc3\xa9 \xff");
	zc__span_attr_double(s, "nan", 0.0 / 0.0);
	zc__span_event(s, "ev");
	zc__span_status(s, ZC_STATUS_ERROR, NULL);
	body = zc__otlp_json(&cfg, s, &len);
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_eq(strlen(body), len);
	root = json_loadb(body, len, 0, &e);
	ck_assert_msg(root != NULL, "%s: %s", e.text, body);
	ss = json_array_get(
		json_object_get(
			json_array_get(json_object_get(root, "resourceSpans"),
				       0),
			"scopeSpans"),
		0);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(ss, "scope"), "name")),
			 "zenith-c");
	span = json_array_get(json_object_get(ss, "spans"), 0);
	ck_assert_ptr_nonnull(span);
	ck_assert_str_eq(json_string_value(json_object_get(span, "traceId")),
			 "4bf92f3577b34da6a3ce929d0e0e4736");
	ck_assert(
		is_hex(json_string_value(json_object_get(span, "spanId")), 16));
	ck_assert_str_eq(
		json_string_value(json_object_get(span, "parentSpanId")),
		"a3ce929d0e0e4736");
	ck_assert_int_eq(json_integer_value(json_object_get(span, "kind")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(span, "flags")),
			 0x301);
	ck_assert_str_eq(
		json_string_value(json_object_get(span, "startTimeUnixNano")),
		"1767225600000000000");
	ck_assert_str_eq(
		json_string_value(json_object_get(span, "endTimeUnixNano")),
		"1767225600004000000");
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(span, "status"), "code")),
			 2);
	ck_assert(json_is_string(json_object_get(
		json_array_get(json_object_get(span, "events"), 0),
		"timeUnixNano")));
	attrs = json_object_get(span, "attributes");
	ck_assert_uint_eq(json_array_size(attrs), 5);
	json_array_foreach (attrs, i, a) {
		const char *k = json_string_value(json_object_get(a, "key"));
		json_t *v = json_object_get(a, "value");
		if (strcmp(k, "http.response.status_code") == 0)
			ck_assert_str_eq(json_string_value(json_object_get(
						 v, "intValue")),
					 "200");
		if (strcmp(k, "ctl") == 0)
			ck_assert_str_eq(json_string_value(json_object_get(
						 v, "stringValue")),
					 "a\"b\\c\n\x01 \xc3\xa9 \xef\xbf\xbd");
		if (strcmp(k, "nan") == 0)
			ck_assert_str_eq(json_string_value(json_object_get(
						 v, "doubleValue")),
					 "NaN");
	}
	json_decref(root);
	free(body);
	zc__span_free(s);
}
END_TEST

START_TEST(console_line)
{
	struct zc_otel_kv kv[] = {{"service.name", "audit-logger"},
				  {"service.namespace", "demo"},
				  {"telemetry.sdk.name", "zenith-c"}};
	struct zc_otel o = {.resource = kv, .nresource = 3};
	struct zc_span *s;
	json_t *line;
	json_error_t e;
	const char *start;
	char *text;
	size_t len;

	recording_on();
	s = example_span();
	zc__span_attr_bool(s, "ok", true);
	zc__span_event(s, "cache miss");
	zc__span_status(s, ZC_STATUS_ERROR, "downstream 503");
	text = zc__otlp_console(&o, s, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	ck_assert_int_eq(text[len - 1], '\n');
	ck_assert_ptr_eq(strchr(text, '\n'), text + len - 1);
	line = json_loadb(text, len, 0, &e);
	ck_assert_msg(line != NULL, "%s: %s", e.text, text);
	ck_assert_str_eq(json_string_value(json_object_get(line, "name")),
			 "POST /update");
	ck_assert_str_eq(json_string_value(json_object_get(line, "kind")),
			 "SERVER");
	ck_assert_str_eq(json_string_value(json_object_get(line, "status")),
			 "ERROR");
	ck_assert_str_eq(
		json_string_value(json_object_get(line, "statusMessage")),
		"downstream 503");
	start = json_string_value(json_object_get(line, "start"));
	ck_assert_str_eq(start, "2026-01-01T00:00:00.000000000Z");
	ck_assert(json_real_value(json_object_get(line, "durationMs")) == 4.0);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(line, "attributes"),
				 "http.response.status_code")),
			 200);
	ck_assert(json_is_true(
		json_object_get(json_object_get(line, "attributes"), "ok")));
	ck_assert_str_eq(
		json_string_value(json_object_get(
			json_array_get(json_object_get(line, "events"), 0),
			"name")),
		"cache miss");
	ck_assert_str_eq(
		json_string_value(json_object_get(
			json_object_get(line, "resource"), "service.name")),
		"audit-logger");
	ck_assert_ptr_null(json_object_get(json_object_get(line, "resource"),
					   "telemetry.sdk.name"));
	ck_assert_ptr_null(json_object_get(line, "links"));
	json_decref(line);
	free(text);
	zc__span_free(s);
}
END_TEST

/* ---- the collector's reply ---- */

START_TEST(rejected)
{
	/* an unknown field, then partial_success{rejected 3, "too old"} */
	static const char pb[] = "\x18\x07"
				 "\x0a\x0b\x08\x03\x12\x07too old";
	static const char pb_msg_only[] = "\x0a\x06\x12\x04warn";
	static const char J1[] = "{\"partialSuccess\":{\"rejectedSpans\":\"2\","
				 "\"errorMessage\":\"bad\"}}";
	static const char J2[] = "{\"partialSuccess\":{\"rejectedSpans\":5}}";
	char msg[64];

	ck_assert_int_eq(zc__otlp_rejected(ZC_OTLP_PROTOBUF, pb, sizeof(pb) - 1,
					   msg, sizeof(msg)),
			 3);
	ck_assert_str_eq(msg, "too old");
	ck_assert_int_eq(zc__otlp_rejected(ZC_OTLP_PROTOBUF, pb_msg_only,
					   sizeof(pb_msg_only) - 1, msg,
					   sizeof(msg)),
			 0);
	ck_assert_str_eq(msg, "warn");
	ck_assert_int_eq(
		zc__otlp_rejected(ZC_OTLP_PROTOBUF, "", 0, msg, sizeof(msg)),
		0);
	ck_assert_str_eq(msg, "");
	/* truncated: nothing */
	ck_assert_int_eq(
		zc__otlp_rejected(ZC_OTLP_PROTOBUF, pb, 6, msg, sizeof(msg)),
		0);
	ck_assert_int_eq(zc__otlp_rejected(ZC_OTLP_JSON, J1, strlen(J1), msg,
					   sizeof(msg)),
			 2);
	ck_assert_str_eq(msg, "bad");
	ck_assert_int_eq(zc__otlp_rejected(ZC_OTLP_JSON, J2, strlen(J2), msg,
					   sizeof(msg)),
			 5);
	ck_assert_int_eq(
		zc__otlp_rejected(ZC_OTLP_JSON, "{}", 2, msg, sizeof(msg)), 0);
	ck_assert_int_eq(zc__otlp_rejected(ZC_OTLP_JSON, "not json", 8, msg,
					   sizeof(msg)),
			 0);
}
END_TEST

/* ---- the exporter against a loopback collector ---- */

static struct fake_http fake;
/* what the collector answers, request by request (then 200) */
static const char *script[4];
static atomic_int answered;

static int
collector(struct fake_http *f, struct fh_conn *c)
{
	int i = atomic_fetch_add(&answered, 1);
	const char *how = i < 4 && script[i] != NULL ? script[i] : "200";

	fh_record(f, c);
	if (strncmp(how, "200 ", 4) == 0) /* 200 with a body */
		return fh_reply(c->fd, 200, "OK", "", how + 4, strlen(how + 4),
				false);
	if (strcmp(how, "200") == 0)
		return fh_reply(c->fd, 200, "OK", "", "{}", 2, false);
	if (strncmp(how, "503 ", 4) == 0) /* 503 and a Retry-After line */
		return fh_reply(c->fd, 503, "Unavailable", how + 4, "{}", 2,
				false);
	return fh_reply(c->fd, atoi(how), "No", "", "{}", 2, false);
}

static void
collector_start(void)
{
	char url[64];

	atomic_store(&answered, 0);
	fh_start(&fake, collector);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", fake.port);
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url, 1);
	setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1);
	setenv("OTEL_BSP_SCHEDULE_DELAY", "50", 1);
}

static void
collector_stop(void)
{
	zc__tracing_stop(zc__now_ns());
	fh_stop(&fake);
}

static void
make_spans(int n)
{
	int i;

	for (i = 0; i < n; i++) {
		struct zc_span *s =
			zc__span_start(ZC_SPAN_INTERNAL, "work", NULL, NULL, 0);
		ck_assert_ptr_nonnull(s);
		zc__span_end(s, 0);
	}
}

static bool
wait_requests(int n, long ms)
{
	long long end = now_ms() + ms;

	while (atomic_load(&fake.requests) < n && now_ms() < end)
		sleep_ms(5);
	return atomic_load(&fake.requests) >= n;
}

static char *
metrics(void)
{
	size_t len;

	return zc__metrics_render(&len);
}

static void
assert_metric(const char *line)
{
	char *m = metrics();

	ck_assert_msg(strstr(m, line) != NULL, "no \"%s\" in\n%s", line, m);
	free(m);
}

START_TEST(export_request)
{
	char buf[FH_REC_SIZE], v[256];
	json_t *body;
	const char *b;

	setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k%3D1,X-Empty=", 1);
	setenv("OTEL_SERVICE_NAME", "svc", 1);
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	ck_assert(zc__tracing_running());
	make_spans(3);
	ck_assert(wait_requests(1, 3000));
	fh_rec_copy(&fake, 0, buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, "POST /v1/traces HTTP/1.1\r\n", 26) == 0,
		      "%s", buf);
	fh_rec_header(&fake, 0, "Content-Type", v, sizeof(v));
	ck_assert_str_eq(v, "application/json");
	fh_rec_header(&fake, 0, "User-Agent", v, sizeof(v));
	ck_assert_str_eq(v, "OTel-OTLP-Exporter-C/" ZC_VERSION
			    " zenith-c/" ZC_VERSION);
	fh_rec_header(&fake, 0, "x-api-key", v, sizeof(v));
	ck_assert_str_eq(v, "k=1");
	ck_assert_ptr_nonnull(strstr(buf, "\r\nX-Empty:"));
	b = strstr(buf, "\r\n\r\n") + 4;
	body = json_loads(b, 0, NULL);
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_eq(
		json_array_size(json_object_get(
			json_array_get(
				json_object_get(
					json_array_get(
						json_object_get(
							body, "resourceSpans"),
						0),
					"scopeSpans"),
				0),
			"spans")),
		3);
	json_decref(body);
	sleep_ms(100);
	assert_metric("zc_otel_spans_exported_total 3\n");
	assert_metric("zc_otel_export_requests_total{result=\"success\"} 1\n");
	assert_metric("zc_otel_queue_spans 0\n");
}
END_TEST

START_TEST(export_retries_503)
{
	long long gap;

	script[0] = "503 Retry-After: 1\r\n";
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(2);
	ck_assert(wait_requests(2, 5000));
	gap = fh_rec_time(&fake, 1) - fh_rec_time(&fake, 0);
	ck_assert_msg(gap >= 900000000LL, "retried after %lld ns", gap);
	sleep_ms(100);
	assert_metric("zc_otel_spans_exported_total 2\n");
	assert_metric("zc_otel_export_requests_total{result=\"retryable\"} "
		      "1\n");
	assert_metric("zc_otel_export_requests_total{result=\"success\"} 1\n");
}
END_TEST

START_TEST(export_retry_after_date)
{
	char line[96];
	time_t t = time(NULL) + 2;
	struct tm tm;
	long long gap;

	gmtime_r(&t, &tm);
	strftime(line, sizeof(line),
		 "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	script[0] = NULL;
	{
		static char how[128];
		snprintf(how, sizeof(how), "503 %s", line);
		script[0] = how;
	}
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(1);
	ck_assert(wait_requests(2, 6000));
	gap = fh_rec_time(&fake, 1) - fh_rec_time(&fake, 0);
	ck_assert_msg(gap >= 900000000LL, "retried after %lld ns", gap);
}
END_TEST

START_TEST(export_400_not_retried)
{
	struct capture c;
	char *log;

	script[0] = "400";
	capture_start(&c);
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(2);
	ck_assert(wait_requests(1, 3000));
	sleep_ms(1500);
	log = capture_end(&c);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	ck_assert_ptr_nonnull(strstr(log, "HTTP 400, not retried"));
	free(log);
	assert_metric("zc_otel_spans_dropped_total{reason=\"export_failed\"} "
		      "2\n");
	assert_metric("zc_otel_export_requests_total{result=\"failed\"} 1\n");
}
END_TEST

START_TEST(export_partial_success)
{
	script[0] = "200 {\"partialSuccess\":{\"rejectedSpans\":\"1\","
		    "\"errorMessage\":\"one too old\"}}";
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(3);
	ck_assert(wait_requests(1, 3000));
	sleep_ms(300);
	ck_assert_int_eq(atomic_load(&fake.requests), 1); /* not retried */
	assert_metric("zc_otel_spans_exported_total 2\n");
	assert_metric("zc_otel_spans_dropped_total{reason=\"rejected\"} 1\n");
	assert_metric("zc_otel_export_requests_total{result=\"partial\"} 1\n");
}
END_TEST

START_TEST(export_flush_at_stop)
{
	long long t0;

	setenv("OTEL_BSP_SCHEDULE_DELAY", "60000", 1);
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(5);
	sleep_ms(200);
	ck_assert_int_eq(atomic_load(&fake.requests), 0);
	t0 = now_ms();
	zc__tracing_stop(zc__now_ns() + 3000000000LL);
	ck_assert_int_lt(now_ms() - t0, 1000);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	ck_assert(!zc__tracing_on());
	ck_assert(!zc__tracing_running());
	assert_metric("zc_otel_spans_exported_total 5\n");
}
END_TEST

START_TEST(export_collector_down)
{
	char url[64];
	struct capture c;
	char *log, *p;
	long long t0;
	int warns = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", closed_port());
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url, 1);
	setenv("OTEL_BSP_EXPORT_TIMEOUT", "3000", 1);
	setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10", 1);
	setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5", 1);
	capture_start(&c);
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(40);
	sleep_ms(1500);
	t0 = now_ms();
	zc__tracing_stop(zc__now_ns() + 500000000LL);
	ck_assert_int_lt(now_ms() - t0, 2500);
	log = capture_end(&c);
	for (p = log; (p = strstr(p, "trace export to")) != NULL; p++)
		warns++;
	ck_assert_msg(warns == 1, "%d warnings:\n%s", warns, log);
	free(log);
	{
		char *m = metrics();
		unsigned long long full = 0, failed = 0, shut = 0;
		sscanf(strstr(m, "reason=\"queue_full\"}"),
		       "reason=\"queue_full\"} %llu", &full);
		sscanf(strstr(m, "reason=\"export_failed\"}"),
		       "reason=\"export_failed\"} %llu", &failed);
		sscanf(strstr(m, "reason=\"shutdown\"}"),
		       "reason=\"shutdown\"} %llu", &shut);
		/* the first batch (5) is retried for 3 s: 10 more queue, and the
		 * rest are dropped at once */
		ck_assert_uint_ge(full, 25);
		ck_assert_uint_eq(full + failed + shut, 40);
		free(m);
	}
}
END_TEST

START_TEST(console_exporter)
{
	struct capture c;
	char *log, *line;
	json_t *j;

	unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	capture_start(&c);
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	make_spans(2);
	zc__tracing_stop(zc__now_ns() + 1000000000LL);
	log = capture_end(&c);
	line = strstr(log, "{\"name\":\"work\"");
	ck_assert_msg(line != NULL, "%s", log);
	*strchr(line, '\n') = '\0';
	j = json_loads(line, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")),
			 "INTERNAL");
	json_decref(j);
	free(log);
	assert_metric("zc_otel_spans_exported_total 2\n");
}
END_TEST

START_TEST(off_without_variables)
{
	unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
	ck_assert_int_eq(zc__tracing_start("fn"), 0);
	ck_assert(!zc__tracing_running());
	ck_assert(!zc__tracing_on());
	ck_assert_ptr_null(
		zc__span_start(ZC_SPAN_INTERNAL, "x", NULL, NULL, 0));
	zc__tracing_stop(zc__now_ns());
	{
		char *m = metrics();
		ck_assert_ptr_null(strstr(m, "zc_otel_"));
		free(m);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("otlp");
	TCase *tc;

	zc__log_init("test");
	tc = tcase_create("encode");
	tcase_add_test(tc, protobuf_matches_reference);
	tcase_add_test(tc, protobuf_every_field);
	tcase_add_test(tc, json_form);
	tcase_add_test(tc, console_line);
	tcase_add_test(tc, rejected);
	suite_add_tcase(s, tc);
	tc = tcase_create("export");
	tcase_set_timeout(tc, 20);
	tcase_add_checked_fixture(tc, collector_start, collector_stop);
	tcase_add_test(tc, export_request);
	tcase_add_test(tc, export_retries_503);
	tcase_add_test(tc, export_retry_after_date);
	tcase_add_test(tc, export_400_not_retried);
	tcase_add_test(tc, export_partial_success);
	tcase_add_test(tc, export_flush_at_stop);
	tcase_add_test(tc, export_collector_down);
	tcase_add_test(tc, console_exporter);
	tcase_add_test(tc, off_without_variables);
	suite_add_tcase(s, tc);
	return run_client_suite(s);
}
