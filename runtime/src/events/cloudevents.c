/*
 * cloudevents.c - CloudEvents 1.0 over HTTP for Knative Eventing: events
 * received on ordinary POST routes (binary, structured and batch modes),
 * dispatched by type; reply events; and events sent in binary mode to
 * K_SINK, a URL or a broker, through the outbound client (retries,
 * breaker, deadline, trace headers).  Header values are percent-encoded
 * going out and decoded exactly once coming in (HTTP binding 3.1.3.2).
 */
#include "events.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* Longest attribute name accepted (the spec says SHOULD NOT exceed 20). */
#define CE_NAME_MAX 64
/* More attributes than this in one event is abuse, not an event. */
#define CE_MAX_ATTRS 256

static const char media_structured[] = "application/cloudevents+json";
static const char media_batch[] = "application/cloudevents-batch+json";
/*
 * The content type under which an idempotent event route stores a reply
 * event (in structured form): replay recognises it by this pointer.
 */
static const char stored_reply_ctype[] = "application/cloudevents+json";

/* Attributes typed String by the spec; never overridden by K_CE_OVERRIDES. */
static const char *const spec_attrs[] = {
	"specversion", "id",      "source", "type", "datacontenttype",
	"dataschema",  "subject", "time",   "data", NULL,
};

struct zc_event {
	struct zc_kv *attrs; /* name -> decoded value, in arrival order */
	size_t nattrs, cap;
	char *data; /* NULL when the event has no data */
	size_t len;
	json_t *json; /* data parsed, when it is JSON */
};

/* Why an event was refused: status, the attribute named, a message. */
struct ce_err {
	int status; /* 0: out of memory */
	char attr[CE_NAME_MAX + 1];
	char msg[256];
};

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------- */
static int fail(struct ce_err *e, int status, const char *attr, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

static int
fail(struct ce_err *e, int status, const char *attr, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	snprintf(e->attr, sizeof(e->attr), "%s", attr != NULL ? attr : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int
nomem(struct ce_err *e)
{
	e->status = 0;
	e->attr[0] = '\0';
	snprintf(e->msg, sizeof(e->msg), "out of memory");
	return -1;
}

static bool
is_spec_attr(const char *name)
{
	size_t i;

	for (i = 0; spec_attrs[i] != NULL; i++)
		if (strcmp(spec_attrs[i], name) == 0)
			return true;
	return false;
}

/* Lower-case a-z0-9, 1 to CE_NAME_MAX characters. */
static bool
valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > CE_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

enum { TEXT_OK = 0, TEXT_BAD_UTF8, TEXT_CONTROL };

/*
 * Strict UTF-8 (no overlong forms such as C0 A0, no surrogates, nothing
 * past U+10FFFF) without the control characters CloudEvents strings must
 * not hold: U+0000-001F and U+007F-009F.
 */
static int
check_text(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0, k, j;
	unsigned cp, min;

	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return TEXT_CONTROL;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return TEXT_BAD_UTF8;
		}
		for (j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return TEXT_BAD_UTF8;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return TEXT_BAD_UTF8;
		if (cp <= 0x9f)
			return TEXT_CONTROL; /* C1 controls U+0080-009F */
		i += k + 1;
	}
	return TEXT_OK;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A ce-* header value: first undo RFC 7230 quoted-string escaping (older
 * senders), then exactly one percent-decoding pass ("%2541" is "%41").
 * NEW string, or NULL with *why: 1 bad escape, 2 bad UTF-8 or control
 * character, 3 out of memory.
 */
static char *
header_decode(const char *v, int *why)
{
	size_t n = strlen(v), i, o = 0;
	char *tmp, *out;
	int hi, lo;

	tmp = malloc(n + 1);
	out = malloc(n + 1);
	if (tmp == NULL || out == NULL) {
		free(tmp);
		free(out);
		*why = 3;
		return NULL;
	}
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		for (i = 1; i < n - 1; i++) {
			if (v[i] == '\\' && i + 1 < n - 1)
				i++;
			tmp[o++] = v[i];
		}
	} else {
		memcpy(tmp, v, n);
		o = n;
	}
	n = o;
	o = 0;
	for (i = 0; i < n; i++) {
		if (tmp[i] != '%') {
			out[o++] = tmp[i];
			continue;
		}
		if (i + 2 >= n)
			goto bad_escape; /* fewer than two characters left */
		hi = hexval(tmp[i + 1]);
		lo = hexval(tmp[i + 2]);
		if (hi < 0 || lo < 0)
			goto bad_escape;
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	free(tmp);
	if (check_text(out, o) != TEXT_OK) {
		free(out);
		*why = 2;
		return NULL;
	}
	return out;
bad_escape:
	free(tmp);
	free(out);
	*why = 1;
	return NULL;
}

/* Percent-encode for a header: space, '"', '%' and anything outside
 * printable ASCII become %XX (upper-case hex).  NEW string or NULL. */
static char *
header_encode(const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(v), i, o = 0;
	char *out = malloc(3 * n + 1);

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '%') {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

/* The media type of a Content-Type value, lower-cased, parameters cut. */
static void
media_type(const char *ct, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	if (ct == NULL)
		return;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	while (*ct != '\0' && *ct != ';' && n + 1 < size) {
		char c = *ct++;
		buf[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* application/json, text/json, any +json type: data is a JSON value. */
static bool
is_json_type(const char *ct)
{
	char m[128];

	media_type(ct, m, sizeof(m));
	return strcmp(m, "application/json") == 0 || ends_with(m, "/json") ||
	       ends_with(m, "+json");
}

static bool
is_text_type(const char *ct)
{
	char m[128];

	media_type(ct, m, sizeof(m));
	return strncmp(m, "text/", 5) == 0 || ends_with(m, "+xml") ||
	       strcmp(m, "application/xml") == 0;
}

/* RFC 3339 date-time: 2026-11-27T20:22:43(.123)?(Z|+01:00); 't'/'z' too. */
static bool
valid_time(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i;

	for (i = 0; shape[i] != '\0'; i++) {
		char c = s[i];
		if (shape[i] == 'd'   ? !(c >= '0' && c <= '9')
		    : shape[i] == 'T' ? !(c == 'T' || c == 't')
				      : c != shape[i])
			return false;
	}
	s += i;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
		return true;
	return (*s == '+' || *s == '-') && s[1] >= '0' && s[1] <= '9' &&
	       s[2] >= '0' && s[2] <= '9' && s[3] == ':' && s[4] >= '0' &&
	       s[4] <= '9' && s[5] >= '0' && s[5] <= '9' && s[6] == '\0';
}

/* ---------------------------------------------------------------------
 * Base64 (RFC 4648, standard alphabet; padding optional on input)
 * ------------------------------------------------------------------- */
static char *
b64_encode(const unsigned char *p, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = tbl[p[i] >> 2];
		*o++ = tbl[(p[i] & 3) << 4 | p[i + 1] >> 4];
		*o++ = tbl[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
		*o++ = tbl[p[i + 2] & 63];
	}
	if (i < n) {
		*o++ = tbl[p[i] >> 2];
		if (i + 1 < n) {
			*o++ = tbl[(p[i] & 3) << 4 | p[i + 1] >> 4];
			*o++ = tbl[(p[i + 1] & 15) << 2];
		} else {
			*o++ = tbl[(p[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode into a NEW buffer (NUL-terminated for convenience); -1 when s
 * is not base64, -2 when out of memory. */
static int
b64_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	size_t i, o = 0, pad = 0;
	unsigned acc = 0;
	int bits = 0, v;
	char *buf;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0))
		return -1;
	if ((buf = malloc(n / 4 * 3 + 3)) == NULL)
		return -2;
	for (i = 0; i < n; i++) {
		if ((v = b64_value(s[i])) < 0) {
			free(buf);
			return -1;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
}

/* ---------------------------------------------------------------------
 * Events: attributes and data
 * ------------------------------------------------------------------- */
static ssize_t
attr_index(const zc_event *ev, const char *name)
{
	size_t i;

	for (i = 0; i < ev->nattrs; i++)
		if (strcmp(ev->attrs[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static void
attr_remove(zc_event *ev, const char *name)
{
	ssize_t i = attr_index(ev, name);

	if (i < 0)
		return;
	free(ev->attrs[i].name);
	free(ev->attrs[i].value);
	memmove(&ev->attrs[i], &ev->attrs[i + 1],
		(ev->nattrs - (size_t)i - 1) * sizeof(*ev->attrs));
	ev->nattrs--;
}

/* Set name to value (copied), in place when it exists, else appended. */
static zc_err
attr_put(zc_event *ev, const char *name, const char *value)
{
	ssize_t i = attr_index(ev, name);
	char *v = strdup(value), *nm;

	if (v == NULL)
		return ZC_ERR_NOMEM;
	if (i >= 0) {
		free(ev->attrs[i].value);
		ev->attrs[i].value = v;
		return ZC_OK;
	}
	if (ev->nattrs >= CE_MAX_ATTRS) {
		free(v);
		return ZC_ERR_INVALID;
	}
	if (ev->nattrs == ev->cap) {
		size_t cap = ev->cap ? ev->cap * 2 : 8;
		struct zc_kv *na = realloc(ev->attrs, cap * sizeof(*na));
		if (na == NULL) {
			free(v);
			return ZC_ERR_NOMEM;
		}
		ev->attrs = na;
		ev->cap = cap;
	}
	if ((nm = strdup(name)) == NULL) {
		free(v);
		return ZC_ERR_NOMEM;
	}
	ev->attrs[ev->nattrs].name = nm;
	ev->attrs[ev->nattrs].value = v;
	ev->nattrs++;
	return ZC_OK;
}

static void
data_clear(zc_event *ev)
{
	free(ev->data);
	ev->data = NULL;
	ev->len = 0;
	if (ev->json != NULL)
		json_decref(ev->json);
	ev->json = NULL;
}

/* Take data (a malloc'd buffer with room for a NUL at [len]). */
static void
data_take(zc_event *ev, char *data, size_t len)
{
	data_clear(ev);
	ev->data = data;
	ev->len = len;
	ev->data[len] = '\0';
}

static zc_err
data_copy(zc_event *ev, const void *data, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return ZC_ERR_NOMEM;
	if (len > 0)
		memcpy(copy, data, len);
	data_take(ev, copy, len);
	return ZC_OK;
}

static zc_event *
event_alloc(void)
{
	return calloc(1, sizeof(zc_event));
}

void
zc_event_free(zc_event *ev)
{
	size_t i;

	if (ev == NULL)
		return;
	for (i = 0; i < ev->nattrs; i++) {
		free(ev->attrs[i].name);
		free(ev->attrs[i].value);
	}
	free(ev->attrs);
	data_clear(ev);
	free(ev);
}

static zc_event *
event_copy(const zc_event *ev)
{
	zc_event *c = event_alloc();
	size_t i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < ev->nattrs; i++)
		if (attr_put(c, ev->attrs[i].name, ev->attrs[i].value) != ZC_OK)
			goto fail;
	if (ev->data != NULL && data_copy(c, ev->data, ev->len) != ZC_OK)
		goto fail;
	if (ev->json != NULL)
		c->json = json_incref(ev->json);
	return c;
fail:
	zc_event_free(c);
	return NULL;
}

/* ---- public accessors ---- */
const char *
zc_event_attr(const zc_event *ev, const char *name)
{
	ssize_t i;

	if (ev == NULL || name == NULL)
		return NULL;
	i = attr_index(ev, name);
	return i >= 0 ? ev->attrs[i].value : NULL;
}

const char *
zc_event_id(const zc_event *ev)
{
	return zc_event_attr(ev, "id");
}

const char *
zc_event_source(const zc_event *ev)
{
	return zc_event_attr(ev, "source");
}

const char *
zc_event_type(const zc_event *ev)
{
	return zc_event_attr(ev, "type");
}

const char *
zc_event_subject(const zc_event *ev)
{
	return zc_event_attr(ev, "subject");
}

const char *
zc_event_time(const zc_event *ev)
{
	return zc_event_attr(ev, "time");
}

const char *
zc_event_datacontenttype(const zc_event *ev)
{
	return zc_event_attr(ev, "datacontenttype");
}

size_t
zc_event_attr_count(const zc_event *ev)
{
	return ev != NULL ? ev->nattrs : 0;
}

const char *
zc_event_attr_at(const zc_event *ev, size_t i, const char **value)
{
	if (ev == NULL || i >= ev->nattrs) {
		if (value != NULL)
			*value = NULL;
		return NULL;
	}
	if (value != NULL)
		*value = ev->attrs[i].value;
	return ev->attrs[i].name;
}

const char *
zc_event_data(const zc_event *ev, size_t *len)
{
	if (len != NULL)
		*len = ev != NULL && ev->data != NULL ? ev->len : 0;
	return ev != NULL && ev->data != NULL ? ev->data : "";
}

json_t *
zc_event_json(const zc_event *ev)
{
	return ev != NULL ? ev->json : NULL;
}

/* ---- building ---- */
zc_event *
zc_event_new(const char *type)
{
	zc_event *ev;

	if (type == NULL || *type == '\0' ||
	    check_text(type, strlen(type)) != TEXT_OK)
		return NULL;
	if ((ev = event_alloc()) == NULL)
		return NULL;
	if (attr_put(ev, "specversion", "1.0") != ZC_OK ||
	    attr_put(ev, "type", type) != ZC_OK) {
		zc_event_free(ev);
		return NULL;
	}
	return ev;
}

zc_err
zc_event_set(zc_event *ev, const char *attr, const char *value)
{
	if (ev == NULL || attr == NULL || !valid_name(attr, strlen(attr)) ||
	    strcmp(attr, "data") == 0)
		return ZC_ERR_INVALID;
	if (value == NULL || *value == '\0') {
		if (strcmp(attr, "specversion") == 0 ||
		    strcmp(attr, "type") == 0)
			return ZC_ERR_INVALID;
		attr_remove(ev, attr);
		return ZC_OK;
	}
	if (check_text(value, strlen(value)) != TEXT_OK)
		return ZC_ERR_INVALID;
	if (strcmp(attr, "specversion") == 0 && strcmp(value, "1.0") != 0)
		return ZC_ERR_INVALID;
	if (strcmp(attr, "time") == 0 && !valid_time(value))
		return ZC_ERR_INVALID;
	return attr_put(ev, attr, value);
}

zc_err
zc_event_set_json(zc_event *ev, json_t *data)
{
	size_t len;
	char *s;
	zc_err err;

	if (ev == NULL || data == NULL) {
		if (data != NULL)
			json_decref(data);
		return ZC_ERR_INVALID;
	}
	if ((s = zc__json_dump(data, &len)) == NULL) {
		json_decref(data);
		return ZC_ERR_NOMEM;
	}
	if ((err = attr_put(ev, "datacontenttype", "application/json")) !=
	    ZC_OK) {
		free(s);
		json_decref(data);
		return err;
	}
	data_take(ev, s, len);
	ev->json = data;
	return ZC_OK;
}

zc_err
zc_event_set_data(zc_event *ev, const char *content_type, const void *data,
		  size_t len)
{
	json_t *json = NULL;
	zc_err err;

	if (ev == NULL || (data == NULL && len > 0))
		return ZC_ERR_INVALID;
	if (content_type != NULL && *content_type != '\0') {
		if (check_text(content_type, strlen(content_type)) != TEXT_OK)
			return ZC_ERR_INVALID;
		/* data declared JSON must be JSON, or zc_event_json lies */
		if (is_json_type(content_type) && len > 0 &&
		    (json = json_loadb(data, len, JSON_DECODE_ANY, NULL)) ==
			    NULL)
			return ZC_ERR_INVALID;
		err = attr_put(ev, "datacontenttype", content_type);
	} else {
		attr_remove(ev, "datacontenttype");
		err = ZC_OK;
	}
	if (err == ZC_OK)
		err = data_copy(ev, data != NULL ? data : "", len);
	if (err != ZC_OK) {
		if (json != NULL)
			json_decref(json);
		return err;
	}
	ev->json = json;
	return ZC_OK;
}

/* ---------------------------------------------------------------------
 * Structured form: an event as a JSON object, and back
 * ------------------------------------------------------------------- */
static json_t *
event_to_json(const zc_event *ev)
{
	const char *ct = zc_event_datacontenttype(ev);
	json_t *o = json_object();
	size_t i;
	char *b64;

	if (o == NULL)
		return NULL;
	for (i = 0; i < ev->nattrs; i++)
		if (json_object_set_new(o, ev->attrs[i].name,
					json_string(ev->attrs[i].value)) != 0)
			goto fail;
	if (ev->data == NULL)
		return o;
	if (ev->json != NULL && (ct == NULL || is_json_type(ct))) {
		if (json_object_set(o, "data", ev->json) != 0)
			goto fail;
	} else if (ct != NULL && is_text_type(ct) &&
		   check_text(ev->data, ev->len) != TEXT_BAD_UTF8 &&
		   memchr(ev->data, '\0', ev->len) == NULL) {
		if (json_object_set_new(o, "data",
					json_stringn(ev->data, ev->len)) != 0)
			goto fail;
	} else {
		if ((b64 = b64_encode((const unsigned char *)ev->data,
				      ev->len)) == NULL)
			goto fail;
		if (json_object_set_new(o, "data_base64", json_string(b64)) !=
		    0) {
			free(b64);
			goto fail;
		}
		free(b64);
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* Required attributes present and valid; optional ones well-formed. */
static int
check_attrs(const zc_event *ev, struct ce_err *e)
{
	static const char *const required[] = {"id", "source", "type"};
	static const char *const nonempty[] = {"subject", "dataschema",
					       "datacontenttype"};
	const char *v;
	size_t i;

	v = zc_event_attr(ev, "specversion");
	if (v == NULL)
		return fail(e, 400, "specversion",
			    "missing required attribute specversion");
	if (strcmp(v, "1.0") != 0)
		return fail(e, 400, "specversion",
			    "unsupported specversion: expected 1.0");
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		v = zc_event_attr(ev, required[i]);
		if (v == NULL)
			return fail(e, 400, required[i],
				    "missing required attribute %s",
				    required[i]);
		if (*v == '\0')
			return fail(e, 400, required[i],
				    "attribute %s must not be empty",
				    required[i]);
	}
	for (i = 0; i < sizeof(nonempty) / sizeof(nonempty[0]); i++) {
		v = zc_event_attr(ev, nonempty[i]);
		if (v != NULL && *v == '\0')
			return fail(e, 400, nonempty[i],
				    "attribute %s must not be empty",
				    nonempty[i]);
	}
	v = zc_event_attr(ev, "time");
	if (v != NULL && !valid_time(v))
		return fail(e, 400, "time",
			    "attribute time is not an RFC 3339 timestamp");
	return 0;
}

/* A JSON attribute value as the string the event keeps. */
static int
json_attr_string(const char *name, json_t *v, char *num, size_t numsz,
		 const char **out, struct ce_err *e)
{
	bool spec = is_spec_attr(name);

	if (json_is_string(v)) {
		*out = json_string_value(v);
		switch (check_text(*out, json_string_length(v))) {
		case TEXT_OK:
			return 0;
		case TEXT_CONTROL:
			return fail(e, 400, name,
				    "attribute %s contains a control character",
				    name);
		default:
			return fail(e, 400, name,
				    "attribute %s is not valid UTF-8", name);
		}
	}
	if (spec)
		return fail(e, 400, name, "attribute %s must be a string",
			    name);
	if (json_is_integer(v)) {
		snprintf(num, numsz, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		*out = num;
		return 0;
	}
	if (json_is_boolean(v)) {
		*out = json_is_true(v) ? "true" : "false";
		return 0;
	}
	return fail(e, 400, name,
		    "attribute %s must be a string, an integer or a boolean",
		    name);
}

/* Attach data (a JSON value) or data_base64 to ev by its content type. */
static int
json_attach_data(zc_event *ev, json_t *data, json_t *b64, struct ce_err *e)
{
	const char *ct = zc_event_datacontenttype(ev);
	char *bytes;
	size_t len;
	int rc;

	if (b64 != NULL) {
		rc = b64_decode(json_string_value(b64), json_string_length(b64),
				&bytes, &len);
		if (rc == -2)
			return nomem(e);
		if (rc != 0)
			return fail(e, 400, "data_base64",
				    "attribute data_base64 is not base64");
		data_take(ev, bytes, len);
		if (ct != NULL && is_json_type(ct) && len > 0) {
			ev->json = json_loadb(
				bytes, len,
				JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
			if (ev->json == NULL)
				return fail(e, 400, "data_base64",
					    "data_base64 is not the JSON its "
					    "datacontenttype declares");
		}
		return 0;
	}
	if (data == NULL)
		return 0;
	if ((ct == NULL || is_json_type(ct)) || !json_is_string(data)) {
		/* the JSON value itself (JSON format 3.1); a non-string for a
		 * non-JSON type is kept as its JSON text, leniently */
		if ((bytes = zc__json_dump(data, &len)) == NULL)
			return nomem(e);
		data_take(ev, bytes, len);
		if (ct == NULL || is_json_type(ct))
			ev->json = json_incref(data);
		return 0;
	}
	if (data_copy(ev, json_string_value(data), json_string_length(data)) !=
	    ZC_OK)
		return nomem(e);
	return 0;
}

/* One event in the JSON format (structured mode, or a batch member). */
static zc_event *
event_from_json(json_t *obj, struct ce_err *e)
{
	json_t *v, *data = NULL, *b64 = NULL;
	const char *key, *s = NULL;
	char num[32];
	zc_event *ev;
	zc_err err;

	if (!json_is_object(obj)) {
		fail(e, 400, NULL, "a structured event must be a JSON object");
		return NULL;
	}
	if ((ev = event_alloc()) == NULL) {
		nomem(e);
		return NULL;
	}
	json_object_foreach (obj, key, v) {
		if (json_is_null(v))
			continue; /* null is absent (JSON format 2.4) */
		if (strcmp(key, "data") == 0) {
			data = v;
			continue;
		}
		if (strcmp(key, "data_base64") == 0) {
			if (!json_is_string(v)) {
				fail(e, 400, "data_base64",
				     "attribute data_base64 must be a string");
				goto fail;
			}
			b64 = v;
			continue;
		}
		if (!valid_name(key, strlen(key))) {
			fail(e, 400, strlen(key) <= CE_NAME_MAX ? key : NULL,
			     "invalid attribute name: names are a-z and 0-9 "
			     "only");
			goto fail;
		}
		if (json_attr_string(key, v, num, sizeof(num), &s, e) != 0)
			goto fail;
		if ((err = attr_put(ev, key, s)) != ZC_OK) {
			if (err == ZC_ERR_NOMEM)
				nomem(e);
			else
				fail(e, 400, NULL, "too many attributes");
			goto fail;
		}
	}
	if (data != NULL && b64 != NULL) {
		fail(e, 400, "data_base64",
		     "data and data_base64 are mutually exclusive");
		goto fail;
	}
	if (check_attrs(ev, e) != 0 || json_attach_data(ev, data, b64, e) != 0)
		goto fail;
	return ev;
fail:
	zc_event_free(ev);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Binary mode: ce-* headers and the body
 * ------------------------------------------------------------------- */
struct header_scan {
	zc_event *ev;
	struct ce_err *e;
	bool failed;
	bool ce_dct; /* a ce-datacontenttype header was seen */
};

static bool
scan_header(struct header_scan *hs, const char *name, const char *value)
{
	char attr[CE_NAME_MAX + 1], *decoded;
	size_t n, i;
	int why = 0;
	zc_err err;

	if (name == NULL || strncasecmp(name, "ce-", 3) != 0)
		return true;
	name += 3;
	n = strlen(name);
	if (n == 0 || n > CE_NAME_MAX) {
		fail(hs->e, 400, NULL, "invalid attribute header ce-%.*s",
		     n > CE_NAME_MAX ? 0 : (int)n, name);
		goto bad;
	}
	for (i = 0; i < n; i++)
		attr[i] = (name[i] >= 'A' && name[i] <= 'Z')
				  ? (char)(name[i] - 'A' + 'a')
				  : name[i];
	attr[n] = '\0';
	if (!valid_name(attr, n)) {
		fail(hs->e, 400, NULL,
		     "invalid attribute header: names are a-z and 0-9 only");
		goto bad;
	}
	if (strcmp(attr, "data") == 0) {
		fail(hs->e, 400, "data",
		     "data travels in the body in binary mode, not in ce-data");
		goto bad;
	}
	if (zc_event_attr(hs->ev, attr) != NULL) {
		fail(hs->e, 400, attr, "attribute %s given twice", attr);
		goto bad;
	}
	if ((decoded = header_decode(value != NULL ? value : "", &why)) ==
	    NULL) {
		if (why == 3)
			nomem(hs->e);
		else if (why == 1)
			fail(hs->e, 400, attr,
			     "attribute %s: invalid percent-encoding", attr);
		else
			fail(hs->e, 400, attr,
			     "attribute %s is not valid UTF-8 or holds a "
			     "control character",
			     attr);
		goto bad;
	}
	err = attr_put(hs->ev, attr, decoded);
	free(decoded);
	if (err != ZC_OK) {
		if (err == ZC_ERR_NOMEM)
			nomem(hs->e);
		else
			fail(hs->e, 400, NULL, "too many attributes");
		goto bad;
	}
	if (strcmp(attr, "datacontenttype") == 0)
		hs->ce_dct = true;
	return true;
bad:
	hs->failed = true;
	return false;
}

static int
scan_one(const char *key, const char *value, void *cls)
{
	return scan_header(cls, key, value) ? 0 : 1;
}

static zc_event *
event_from_binary(zc_req *req, struct ce_err *e)
{
	struct header_scan hs = {0};
	const char *ct = zc_req_header(req, "Content-Type");

	if ((hs.ev = event_alloc()) == NULL) {
		nomem(e);
		return NULL;
	}
	hs.e = e;
	zc__req_headers(req, scan_one, &hs);
	if (hs.failed)
		goto fail;
	if (ct != NULL && *ct != '\0') {
		if (hs.ce_dct) {
			fail(e, 400, "datacontenttype",
			     "datacontenttype is the Content-Type in binary "
			     "mode: ce-datacontenttype must not be sent too");
			goto fail;
		}
		if (check_text(ct, strlen(ct)) != TEXT_OK) {
			fail(e, 400, "datacontenttype",
			     "Content-Type holds a control character");
			goto fail;
		}
		if (attr_put(hs.ev, "datacontenttype", ct) != ZC_OK) {
			nomem(e);
			goto fail;
		}
	}
	if (check_attrs(hs.ev, e) != 0)
		goto fail;
	if (req->body_len > 0) {
		if (data_copy(hs.ev, req->body, req->body_len) != ZC_OK) {
			nomem(e);
			goto fail;
		}
		ct = zc_event_datacontenttype(hs.ev);
		if (ct != NULL && is_json_type(ct)) {
			hs.ev->json = json_loadb(
				req->body, req->body_len,
				JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
			if (hs.ev->json == NULL) {
				fail(e, 400, "data",
				     "data is not the JSON its Content-Type "
				     "declares");
				goto fail;
			}
		}
	}
	return hs.ev;
fail:
	zc_event_free(hs.ev);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Writing events out: binary-mode headers, ids, overrides
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
		err = attr_put(ev, "specversion", "1.0");
	if (err == ZC_OK && zc_event_id(ev) == NULL) {
		new_uuid(id);
		err = attr_put(ev, "id", id);
	}
	if (err == ZC_OK && zc_event_source(ev) == NULL)
		err = attr_put(ev, "source", default_source(ctx));
	if (err == ZC_OK && zc_event_time(ev) == NULL)
		err = attr_put(ev, "time", zc_timestamp(ts, sizeof(ts)));
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
		if (!valid_name(key, strlen(key)) || is_spec_attr(key)) {
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
		if (*s == '\0' || check_text(s, strlen(s)) != TEXT_OK)
			warn_overrides("a value is empty or holds a control "
				       "character");
		else
			err = attr_put(ev, key, s);
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
add_trace(zc_event *ev, const zc_req *ctx)
{
	char tp[64];
	const char *ts;
	zc_err err;

	if (zc_event_attr(ev, "traceparent") != NULL || ctx == NULL ||
	    ctx->ctx.trace.trace_id[0] == '\0')
		return ZC_OK;
	if (ctx->ctx.trace.inbound) {
		snprintf(tp, sizeof(tp), "%s",
			 zc_req_header(ctx, "traceparent"));
	} else {
		snprintf(tp, sizeof(tp), "00-%s-%s-%s", ctx->ctx.trace.trace_id,
			 ctx->ctx.trace.span_id, ctx->ctx.trace.flags);
	}
	if ((err = attr_put(ev, "traceparent", tp)) != ZC_OK)
		return err;
	ts = ctx->ctx.trace.inbound ? zc_req_header(ctx, "tracestate") : NULL;
	if (ts != NULL && *ts != '\0' &&
	    zc_event_attr(ev, "tracestate") == NULL &&
	    check_text(ts, strlen(ts)) == TEXT_OK)
		return attr_put(ev, "tracestate", ts);
	return ZC_OK;
}

/* The Content-Type binary mode sends, or NULL for an event without data. */
static const char *
binary_ctype(const zc_event *ev)
{
	const char *ct = zc_event_datacontenttype(ev);

	if (ct != NULL)
		return ct;
	/* JSON format 3.1: say application/json explicitly */
	return ev->json != NULL ? "application/json" : NULL;
}

/*
 * Call add(name, value) for each binary-mode header of ev, in a fixed
 * order: ce-specversion, ce-id, ce-source, ce-type, then the others as
 * stored; values percent-encoded; datacontenttype is the Content-Type.
 */
typedef zc_err (*header_fn)(void *arg, const char *name, const char *value);

static zc_err
each_header(const zc_event *ev, header_fn add, void *arg)
{
	static const char *const first[] = {"specversion", "id", "source",
					    "type"};
	char name[CE_NAME_MAX + 4], *enc;
	size_t i, j, k;
	zc_err err = ZC_OK;

	for (k = 0; k < 2 && err == ZC_OK; k++) {
		for (i = 0; i < ev->nattrs && err == ZC_OK; i++) {
			const char *an = ev->attrs[i].name;
			bool is_first = false;

			for (j = 0; j < 4; j++)
				if (strcmp(an, first[j]) == 0)
					is_first = true;
			if (strcmp(an, "datacontenttype") == 0 ||
			    is_first != (k == 0))
				continue;
			if ((enc = header_encode(ev->attrs[i].value)) == NULL)
				return ZC_ERR_NOMEM;
			snprintf(name, sizeof(name), "ce-%s", an);
			err = add(arg, name, enc);
			free(enc);
		}
	}
	return err;
}

/* Put the four required headers first, in the spec's order. */
static void
order_first(zc_event *ev)
{
	static const char *const first[] = {"specversion", "id", "source",
					    "type"};
	size_t j, pos = 0;
	ssize_t i;

	for (j = 0; j < 4; j++) {
		struct zc_kv kv;
		if ((i = attr_index(ev, first[j])) < 0)
			continue;
		kv = ev->attrs[i];
		memmove(&ev->attrs[pos + 1], &ev->attrs[pos],
			((size_t)i - pos) * sizeof(kv));
		ev->attrs[pos++] = kv;
	}
}

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
	if ((out = event_copy(ev)) == NULL)
		return ZC_ERR_NOMEM;
	if ((err = fill_defaults(out, zc__current())) != ZC_OK)
		goto done;
	order_first(out);
	zc__res_reset(res);
	if ((err = each_header(out, res_add, res)) != ZC_OK)
		goto done;
	ct = binary_ctype(out);
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

/* Did the handler answer with an event?  zc_res_event always writes
 * ce-specversion, and a handler writing it by hand means the same. */
static bool
res_is_event(const zc_res *res)
{
	return zc_res_get_header(res, "ce-specversion") != NULL;
}

/* Read a binary-mode reply back from res (for storing it). */
static zc_event *
event_from_res(const zc_res *res)
{
	zc_event *ev = event_alloc();
	const char *ct = zc_res_get_header(res, "Content-Type");
	size_t i;
	int why;

	if (ev == NULL)
		return NULL;
	for (i = 0; i < res->nheaders; i++) {
		char *v;
		const char *n = res->headers[i].name;
		char attr[CE_NAME_MAX + 1];
		size_t k, len;

		if (strncasecmp(n, "ce-", 3) != 0)
			continue;
		len = strlen(n + 3);
		if (len == 0 || len > CE_NAME_MAX)
			continue;
		for (k = 0; k <= len; k++)
			attr[k] = (char)((n[3 + k] >= 'A' && n[3 + k] <= 'Z')
						 ? n[3 + k] - 'A' + 'a'
						 : n[3 + k]);
		if ((v = header_decode(res->headers[i].value, &why)) == NULL)
			continue;
		if (attr_put(ev, attr, v) != ZC_OK) {
			free(v);
			goto fail;
		}
		free(v);
	}
	if (ct != NULL && attr_put(ev, "datacontenttype", ct) != ZC_OK)
		goto fail;
	if (res->len > 0) {
		if (data_copy(ev, res->body, res->len) != ZC_OK)
			goto fail;
		if (ct != NULL && is_json_type(ct))
			ev->json = json_loadb(res->body, res->len,
					      JSON_DECODE_ANY, NULL);
	}
	return ev;
fail:
	zc_event_free(ev);
	return NULL;
}

/* ---------------------------------------------------------------------
 * Sending
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

zc_err
zc_event_send(zc_req *inbound, const char *target, const zc_event *ev)
{
	char url[2048], tname[64];
	zc_req *ctx = inbound != NULL ? inbound : zc__current();
	const char *ct;
	zc_event *out = NULL;
	zc_call *call = NULL;
	zc_err err;
	int status;

	if (ev == NULL)
		return ZC_ERR_INVALID;
	if ((err = resolve(target, url, sizeof(url), tname, sizeof(tname))) !=
	    ZC_OK)
		return err;
	if ((out = event_copy(ev)) == NULL)
		return ZC_ERR_NOMEM;
	err = fill_defaults(out, ctx);
	if (err == ZC_OK)
		err = apply_overrides(out);
	if (err == ZC_OK)
		err = add_trace(out, ctx);
	if (err != ZC_OK)
		goto done;
	order_first(out);
	if ((call = zc__call_new_url(inbound, tname, url, "POST")) == NULL) {
		err = ZC_ERR_NOMEM;
		goto done;
	}
	/* receivers dedupe on source + id, so a repeat is safe */
	zc__call_set_repeatable(call);
	if ((err = each_header(out, call_add, call)) != ZC_OK)
		goto done;
	ct = binary_ctype(out);
	if ((out->data != NULL || ct != NULL) &&
	    (err = zc__call_body(call, ct, out->data != NULL ? out->data : "",
				 out->len)) != ZC_OK)
		goto done;
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
	zc_call_free(call);
	zc_event_free(out);
	return err;
}

/* ---------------------------------------------------------------------
 * Receiving: routes, dispatch by type, answers
 * ------------------------------------------------------------------- */
struct ev_sub {
	char *type; /* NULL: every type */
	zc_event_handler handler;
	void *arg;
	bool replying;
	bool idempotent;
};

struct ev_path {
	char *path;
	char *scope; /* idempotency scope: "event <path>" */
	struct ev_sub *subs;
	size_t nsubs;
};

struct ev_registry {
	struct ev_path **paths;
	size_t n;
};

void
zc__events_free(zc_app *app)
{
	struct ev_registry *r;
	size_t i, j;

	if (app == NULL || (r = app->events) == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		struct ev_path *p = r->paths[i];
		for (j = 0; j < p->nsubs; j++)
			free(p->subs[j].type);
		free(p->subs);
		free(p->path);
		free(p->scope);
		free(p);
	}
	free(r->paths);
	free(r);
	app->events = NULL;
}

/* Did the sender ask for a reply?  Prefer: reply (RFC 7240 list). */
static bool
prefers_reply(const zc_req *req)
{
	const char *p = zc_req_header(req, "Prefer");

	while (p != NULL && *p != '\0') {
		size_t n;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		n = strcspn(p, ",;= \t");
		if (n == 5 && strncasecmp(p, "reply", 5) == 0)
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* The route for ev's type: an exact type first, else a catch-all. */
static const struct ev_sub *
pick(const struct ev_path *p, const char *type)
{
	const struct ev_sub *any = NULL;
	size_t i;

	for (i = 0; i < p->nsubs; i++) {
		if (p->subs[i].type == NULL) {
			if (any == NULL)
				any = &p->subs[i];
		} else if (strcmp(p->subs[i].type, type) == 0) {
			return &p->subs[i];
		}
	}
	return any;
}

/* What identifies an event's content for duplicate detection: a
 * redelivery may differ in time or extensions, not in type or data. */
static char *
fingerprint(const zc_event *ev, size_t *len)
{
	const char *type = zc_event_type(ev);
	const char *ct = zc_event_datacontenttype(ev);
	char *dump = NULL, *buf;
	const char *d = ev->data != NULL ? ev->data : "";
	size_t dl = ev->data != NULL ? ev->len : 0, tl, cl;

	if (ev->json != NULL) {
		/* the same JSON in binary and structured mode */
		if ((dump = zc__json_dump(ev->json, &dl)) == NULL)
			return NULL;
		d = dump;
	}
	ct = ct != NULL ? ct : "";
	tl = strlen(type);
	cl = strlen(ct);
	if ((buf = malloc(tl + cl + dl + 3)) != NULL) {
		memcpy(buf, type, tl);
		buf[tl] = '\n';
		memcpy(buf + tl + 1, ct, cl);
		buf[tl + 1 + cl] = '\n';
		memcpy(buf + tl + cl + 2, d, dl);
		*len = tl + cl + 2 + dl;
	}
	free(dump);
	return buf;
}

/* Move the answer in from into to (to's old content is released). */
static void
res_move(zc_res *to, zc_res *from)
{
	zc__res_release(to);
	*to = *from;
	zc__res_init(from);
}

/*
 * From what the handler left in scratch to the answer: a reply event goes
 * out only when asked for (Knative: a reply without Prefer: reply is just
 * an acknowledgement); nothing set is 202.
 */
static void
finish_answer(zc_res *out, zc_res *scratch, const zc_event *ev, bool want_reply)
{
	if (res_is_event(scratch) && !want_reply) {
		zc_debug("reply event to %s %s dropped: the request did not "
			 "ask for one (Prefer: reply)",
			 zc_event_type(ev), zc_event_id(ev));
		zc__res_release(scratch);
		zc__res_release(out);
		zc__res_init(out);
		zc_res_status(out, 202);
		return;
	}
	if (scratch->status == 0 && scratch->body == NULL)
		zc_res_status(scratch, 202);
	res_move(out, scratch);
}

/* What an idempotent route stores: a reply event in structured form. */
static void
idem_store(struct zc_idem *t, const struct zc_idem_ticket *ticket,
	   const zc_res *scratch)
{
	struct zc_answer ans;
	zc_res stored;
	zc_event *reply;
	json_t *j;
	size_t len;

	if (!res_is_event(scratch)) {
		zc__res_init(&stored);
		stored.status = scratch->status != 0    ? scratch->status
				: scratch->body != NULL ? 200
							: 202;
		stored.body = scratch->body;
		stored.len = scratch->len;
		stored.content_type = scratch->content_type;
		ans = zc__res_answer(&stored);
		zc__idem_finish(t, ticket, &ans);
		return;
	}
	reply = event_from_res(scratch);
	j = reply != NULL ? event_to_json(reply) : NULL;
	zc__res_init(&stored);
	stored.body = j != NULL ? zc__json_dump(j, &len) : NULL;
	if (stored.body == NULL) {
		zc__idem_finish_failed(t, ticket); /* a retry runs again */
	} else {
		stored.status = 200;
		stored.len = len;
		stored.content_type = stored_reply_ctype;
		ans = zc__res_answer(&stored);
		zc__idem_finish(t, ticket, &ans);
	}
	free(stored.body);
	json_decref(j);
	zc_event_free(reply);
}

/* A stored answer given again; a stored reply is re-sent in binary mode. */
static void
idem_replay(zc_res *out, zc_res *stored, const zc_event *ev, bool want_reply)
{
	zc_event *reply = NULL;
	json_t *j;

	zc_info("event %s from %s already processed: not run again",
		zc_event_id(ev), zc_event_source(ev));
	if (stored->content_type != stored_reply_ctype) {
		res_move(out, stored);
		return;
	}
	zc__res_release(out);
	zc__res_init(out);
	if (want_reply) {
		struct ce_err e;
		j = json_loadb(stored->body, stored->len, 0, NULL);
		reply = j != NULL ? event_from_json(j, &e) : NULL;
		json_decref(j);
	}
	if (reply == NULL || zc_res_event(out, reply) != ZC_OK)
		zc_res_status(out, 202);
	zc_event_free(reply);
	zc__res_release(stored);
}

/*
 * Run the route for one event into out.  Returns the handler's non-zero
 * result (out untouched), else 0 with out holding the answer.
 */
static int
deliver(zc_req *req, const struct ev_path *p, const zc_event *ev, zc_res *out,
	bool prefer_reply)
{
	const struct ev_sub *sub = pick(p, zc_event_type(ev));
	struct zc_idem *idem = req->app->idem;
	struct zc_idem_ticket ticket;
	struct zc_answer replay;
	zc_res scratch;
	bool tracked = false, want;
	char *fp, *key;
	size_t fplen, sl, il;
	int rc;

	if (sub == NULL) {
		zc_info("no event route on %s for type %s (event %s): "
			"accepted, not handled",
			p->path, zc_event_type(ev), zc_event_id(ev));
		zc_res_status(out, 202);
		return 0;
	}
	want = prefer_reply || sub->replying;
	zc__res_init(&scratch);
	if (sub->idempotent && idem != NULL) {
		/* Knative: duplicates are detected on source + id */
		sl = strlen(zc_event_source(ev));
		il = strlen(zc_event_id(ev));
		key = malloc(sl + il + 2);
		fp = fingerprint(ev, &fplen);
		rc = ZC_IDEM_PROCEED_UNTRACKED;
		if (key != NULL && fp != NULL) {
			memcpy(key, zc_event_source(ev), sl);
			key[sl] = '\n';
			memcpy(key + sl + 1, zc_event_id(ev), il + 1);
			rc = zc__idem_begin(idem, p->scope, key, fp, fplen,
					    &replay, &ticket);
		}
		free(key);
		free(fp);
		switch (rc) {
		case ZC_IDEM_REPLAY:
			zc__res_from_answer(&scratch, &replay);
			idem_replay(out, &scratch, ev, want);
			return 0;
		case ZC_IDEM_CONFLICT:
			zc_res_error(out, 409,
				     "an event with this source and id is "
				     "still being processed");
			zc_res_header(out, "Retry-After", "1");
			return 0;
		case ZC_IDEM_MISMATCH:
			zc_res_error(out, 422,
				     "an event with this source and id was "
				     "processed with another type or data");
			return 0;
		}
		tracked = rc == ZC_IDEM_PROCEED;
	}
	rc = sub->handler(req, ev, &scratch, sub->arg);
	if (rc != 0) {
		if (tracked)
			zc__idem_finish_failed(idem, &ticket);
		zc__res_release(&scratch);
		return rc;
	}
	if (tracked)
		idem_store(idem, &ticket, &scratch);
	finish_answer(out, &scratch, ev, want);
	return 0;
}

static int
answer_error(zc_res *res, const struct ce_err *e, long index)
{
	json_t *o;

	if (e->status == 0)
		return -1; /* out of memory: a 500 the sender retries */
	o = json_pack("{s:s}", "error", e->msg);
	if (o == NULL)
		return -1;
	if (e->attr[0] != '\0')
		json_object_set_new(o, "attribute", json_string(e->attr));
	if (index >= 0)
		json_object_set_new(o, "index", json_integer(index));
	return zc_res_json(res, e->status, o) == ZC_OK ? 0 : -1;
}

/* The "error" string of a JSON error body, if it has one. */
static const char *
error_text(const zc_res *r, json_t **holder)
{
	json_t *j;

	*holder = NULL;
	if (r->body == NULL || r->len == 0)
		return NULL;
	j = json_loadb(r->body, r->len, 0, NULL);
	*holder = j;
	return json_string_value(json_object_get(j, "error"));
}

/*
 * Batch mode: every event is checked before any handler runs (one
 * malformed event refuses the batch with 400); then each event is handled
 * in order.  All accepted: 202.  Otherwise the first failure's status,
 * with {"error":..., "results":[{"id","status"[,"error"]},...]}, so a
 * retried batch (5xx) is visible per event.  Replies are not sent.
 */
static int
handle_batch(zc_req *req, zc_res *res, const struct ev_path *p)
{
	json_t *arr, *results = NULL, *item, *holder;
	zc_event **evs = NULL;
	struct ce_err e;
	size_t i, n = 0;
	int rc = 0, first = 0, st;
	long first_index = -1;
	char retry_after[32] = "";

	if (req->body_len == 0) {
		fail(&e, 400, NULL, "empty body: expected a JSON array");
		return answer_error(res, &e, -1);
	}
	arr = json_loadb(req->body, req->body_len,
			 JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (arr == NULL || !json_is_array(arr)) {
		json_decref(arr);
		fail(&e, 400, NULL, "a batch must be a JSON array of events");
		return answer_error(res, &e, -1);
	}
	n = json_array_size(arr);
	if (n > 0 && (evs = calloc(n, sizeof(*evs))) == NULL) {
		json_decref(arr);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((evs[i] = event_from_json(json_array_get(arr, i), &e)) ==
		    NULL) {
			char msg[sizeof(e.msg)];
			snprintf(msg, sizeof(msg), "%s", e.msg);
			snprintf(e.msg, sizeof(e.msg), "event %zu: %.200s", i,
				 msg);
			rc = answer_error(res, &e, (long)i);
			goto done;
		}
	}
	if ((results = json_array()) == NULL) {
		rc = -1;
		goto done;
	}
	for (i = 0; i < n; i++) {
		zc_res one;
		const char *err;

		zc__res_init(&one);
		if (deliver(req, p, evs[i], &one, false) != 0) {
			zc_error("event handler on %s failed for event %s "
				 "(%s)",
				 p->path, zc_event_id(evs[i]),
				 zc_event_type(evs[i]));
			zc__res_release(&one);
			zc_res_error(&one, 500, "internal error");
		}
		st = one.status;
		item = json_pack("{s:s, s:i}", "id", zc_event_id(evs[i]),
				 "status", st);
		if (st < 200 || st > 299) {
			err = error_text(&one, &holder);
			if (item != NULL && err != NULL)
				json_object_set_new(item, "error",
						    json_string(err));
			json_decref(holder);
			if (first == 0) {
				const char *ra =
					zc_res_get_header(&one, "Retry-After");
				first = st;
				first_index = (long)i;
				if (ra != NULL)
					snprintf(retry_after,
						 sizeof(retry_after), "%s", ra);
			}
		}
		zc__res_release(&one);
		if (item == NULL || json_array_append_new(results, item) != 0) {
			rc = -1;
			goto done;
		}
	}
	if (first == 0) {
		zc_res_status(res, 202);
	} else {
		char msg[96];
		json_t *o;

		snprintf(msg, sizeof(msg),
			 "event %ld of the batch failed with HTTP %d",
			 first_index, first);
		o = json_pack("{s:s, s:O}", "error", msg, "results", results);
		if (o == NULL) {
			rc = -1;
			goto done;
		}
		if (zc_res_json(res, first, o) != ZC_OK)
			rc = -1;
		if (retry_after[0] != '\0')
			zc_res_header(res, "Retry-After", retry_after);
	}
done:
	for (i = 0; i < n && evs != NULL; i++)
		zc_event_free(evs[i]);
	free(evs);
	json_decref(results);
	json_decref(arr);
	return rc;
}

/* The handler zc_route runs for every POST to an event path. */
static int
on_event_request(zc_req *req, zc_res *res, void *arg)
{
	const struct ev_path *p = arg;
	const char *ct = zc_req_header(req, "Content-Type");
	struct ce_err e;
	zc_event *ev = NULL;
	json_t *j;
	char media[128];
	int rc;

	media_type(ct, media, sizeof(media));
	if (strncmp(media, "application/cloudevents-batch", 29) == 0) {
		if (strcmp(media, media_batch) != 0) {
			fail(&e, 415, NULL,
			     "unsupported batch format: expected %s",
			     media_batch);
			return answer_error(res, &e, -1);
		}
		return handle_batch(req, res, p);
	}
	if (strncmp(media, "application/cloudevents", 23) == 0) {
		if (strcmp(media, media_structured) != 0) {
			fail(&e, 415, NULL,
			     "unsupported event format: expected %s",
			     media_structured);
			return answer_error(res, &e, -1);
		}
		if (req->body_len == 0) {
			fail(&e, 400, NULL,
			     "empty body: expected a JSON event");
			return answer_error(res, &e, -1);
		}
		j = json_loadb(req->body, req->body_len,
			       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
		if (j == NULL) {
			fail(&e, 400, NULL,
			     "the structured event is not valid JSON");
			return answer_error(res, &e, -1);
		}
		ev = event_from_json(j, &e);
		json_decref(j);
	} else {
		ev = event_from_binary(req, &e);
	}
	if (ev == NULL)
		return answer_error(res, &e, -1);
	rc = deliver(req, p, ev, res, prefers_reply(req));
	zc_event_free(ev);
	return rc;
}

zc_err
zc_event_route(zc_app *app, const char *path, zc_event_handler handler,
	       void *arg, const zc_route_opts *opts)
{
	const char *type = opts != NULL ? opts->event_type : NULL;
	unsigned flags = opts != NULL ? opts->flags : 0;
	bool idempotent = (flags & ZC_ROUTE_IDEMPOTENT) != 0;
	bool replying = (flags & ZC_ROUTE_REPLYING) != 0;
	struct ev_registry *r;
	struct ev_path *p = NULL;
	struct ev_sub *ns;
	size_t i;
	zc_err err;

	if (app == NULL || path == NULL || handler == NULL ||
	    (type != NULL &&
	     (*type == '\0' || check_text(type, strlen(type)) != TEXT_OK))) {
		zc_error("zc_event_route: invalid path, type or handler");
		return ZC_ERR_INVALID;
	}
	if ((r = app->events) == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return ZC_ERR_NOMEM;
		app->events = r;
	}
	if (idempotent && app->idem == NULL) {
		app->idem = zc__idem_new(app->cfg.idem_max_keys,
					 app->cfg.idem_ttl_s);
		if (app->idem == NULL)
			return ZC_ERR_NOMEM;
	}
	for (i = 0; i < r->n; i++)
		if (strcmp(r->paths[i]->path, path) == 0)
			p = r->paths[i];
	if (p == NULL) {
		struct ev_path **np;
		size_t sl = strlen(path);

		np = realloc(r->paths, (r->n + 1) * sizeof(*np));
		if (np == NULL)
			return ZC_ERR_NOMEM;
		r->paths = np;
		if ((p = calloc(1, sizeof(*p))) == NULL)
			return ZC_ERR_NOMEM;
		p->path = strdup(path);
		p->scope = malloc(sl + 7);
		if (p->path == NULL || p->scope == NULL) {
			free(p->path);
			free(p->scope);
			free(p);
			return ZC_ERR_NOMEM;
		}
		memcpy(p->scope, "event ", 6);
		memcpy(p->scope + 6, path, sl + 1);
		/* an ordinary route: OPTIONS, 405 and Allow come with it */
		if ((err = zc_route(app, "POST", path, on_event_request, p)) !=
		    ZC_OK) {
			free(p->path);
			free(p->scope);
			free(p);
			return err;
		}
		r->paths[r->n++] = p;
	}
	for (i = 0; i < p->nsubs; i++) {
		const char *t = p->subs[i].type;
		if ((t == NULL && type == NULL) ||
		    (t != NULL && type != NULL && strcmp(t, type) == 0)) {
			zc_error("zc_event_route: %s already has a route for "
				 "%s events",
				 path, type != NULL ? type : "all");
			return ZC_ERR_INVALID;
		}
	}
	ns = realloc(p->subs, (p->nsubs + 1) * sizeof(*ns));
	if (ns == NULL)
		return ZC_ERR_NOMEM;
	p->subs = ns;
	memset(&ns[p->nsubs], 0, sizeof(*ns));
	if (type != NULL && (ns[p->nsubs].type = strdup(type)) == NULL)
		return ZC_ERR_NOMEM;
	ns[p->nsubs].handler = handler;
	ns[p->nsubs].arg = arg;
	ns[p->nsubs].replying = replying;
	ns[p->nsubs].idempotent = idempotent;
	p->nsubs++;
	return ZC_OK;
}

const char *
zc_event_sink(void)
{
	const char *sink = getenv("K_SINK");

	return sink != NULL && *sink != '\0' ? sink : NULL;
}
