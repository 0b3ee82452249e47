/*
 * codec.c - CloudEvents on the wire: binary mode (ce-* headers and the
 * body) and the JSON format (structured mode, batch members, stored
 * replies).  Header values are percent-encoded going out and decoded
 * exactly once coming in (HTTP binding 3.1.3.2).
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* ---------------------------------------------------------------------
 * Header values: percent-encoding
 * ------------------------------------------------------------------- */
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
	if (zc__ce_check_text(out, o) != ZC_CE_TEXT_OK) {
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
 * Structured form: an event as a JSON object, and back
 * ------------------------------------------------------------------- */
json_t *
zc__ce_event_to_json(const zc_event *ev)
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
	if (ev->json != NULL && (ct == NULL || zc__ce_is_json_type(ct))) {
		if (json_object_set(o, "data", ev->json) != 0)
			goto fail;
	} else if (ct != NULL && zc__ce_is_text_type(ct) &&
		   zc__ce_check_text(ev->data, ev->len) !=
			   ZC_CE_TEXT_BAD_UTF8 &&
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

static int
json_attr_string(const char *name, json_t *v, char *num, size_t numsz,
		 const char **out, struct zc__ce_err *e)
{
	bool spec = zc__ce_is_spec_attr(name);

	if (json_is_string(v)) {
		*out = json_string_value(v);
		switch (zc__ce_check_text(*out, json_string_length(v))) {
		case ZC_CE_TEXT_OK:
			return 0;
		case ZC_CE_TEXT_CONTROL:
			return zc__ce_fail(
				e, 400, name,
				"attribute %s contains a control character",
				name);
		default:
			return zc__ce_fail(e, 400, name,
					   "attribute %s is not valid UTF-8",
					   name);
		}
	}
	if (spec)
		return zc__ce_fail(e, 400, name,
				   "attribute %s must be a string", name);
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
	return zc__ce_fail(
		e, 400, name,
		"attribute %s must be a string, an integer or a boolean", name);
}

/* Attach data (a JSON value) or data_base64 to ev by its content type. */
static int
json_attach_data(zc_event *ev, json_t *data, json_t *b64, struct zc__ce_err *e)
{
	const char *ct = zc_event_datacontenttype(ev);
	char *bytes;
	size_t len;
	int rc;

	if (b64 != NULL) {
		rc = b64_decode(json_string_value(b64), json_string_length(b64),
				&bytes, &len);
		if (rc == -2)
			return zc__ce_nomem(e);
		if (rc != 0)
			return zc__ce_fail(
				e, 400, "data_base64",
				"attribute data_base64 is not base64");
		zc__ce_data_take(ev, bytes, len);
		if (ct != NULL && zc__ce_is_json_type(ct) && len > 0) {
			ev->json = json_loadb(
				bytes, len,
				JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
			if (ev->json == NULL)
				return zc__ce_fail(
					e, 400, "data_base64",
					"data_base64 is not the JSON its "
					"datacontenttype declares");
		}
		return 0;
	}
	if (data == NULL)
		return 0;
	if ((ct == NULL || zc__ce_is_json_type(ct)) || !json_is_string(data)) {
		/* the JSON value itself (JSON format 3.1); a non-string for a
		 * non-JSON type is kept as its JSON text, leniently */
		if ((bytes = zc__json_dump(data, &len)) == NULL)
			return zc__ce_nomem(e);
		zc__ce_data_take(ev, bytes, len);
		if (ct == NULL || zc__ce_is_json_type(ct))
			ev->json = json_incref(data);
		return 0;
	}
	if (zc__ce_data_copy(ev, json_string_value(data),
			     json_string_length(data)) != ZC_OK)
		return zc__ce_nomem(e);
	return 0;
}

/* One event in the JSON format (structured mode, or a batch member). */
zc_event *
zc__ce_event_from_json(json_t *obj, struct zc__ce_err *e)
{
	json_t *v, *data = NULL, *b64 = NULL;
	const char *key, *s = NULL;
	char num[32];
	zc_event *ev;
	zc_err err;

	if (!json_is_object(obj)) {
		zc__ce_fail(e, 400, NULL,
			    "a structured event must be a JSON object");
		return NULL;
	}
	if ((ev = zc__ce_event_alloc()) == NULL) {
		zc__ce_nomem(e);
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
				zc__ce_fail(e, 400, "data_base64",
					    "attribute data_base64 must be a "
					    "string");
				goto fail;
			}
			b64 = v;
			continue;
		}
		if (!zc__ce_valid_name(key, strlen(key))) {
			zc__ce_fail(
				e, 400,
				strlen(key) <= ZC_CE_NAME_MAX ? key : NULL,
				"invalid attribute name: names are a-z and 0-9 "
				"only");
			goto fail;
		}
		if (json_attr_string(key, v, num, sizeof(num), &s, e) != 0)
			goto fail;
		if ((err = zc__ce_attr_put(ev, key, s)) != ZC_OK) {
			if (err == ZC_ERR_NOMEM)
				zc__ce_nomem(e);
			else
				zc__ce_fail(e, 400, NULL,
					    "too many attributes");
			goto fail;
		}
	}
	if (data != NULL && b64 != NULL) {
		zc__ce_fail(e, 400, "data_base64",
			    "data and data_base64 are mutually exclusive");
		goto fail;
	}
	if (zc__ce_check_attrs(ev, e) != 0 ||
	    json_attach_data(ev, data, b64, e) != 0)
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
	struct zc__ce_err *e;
	bool failed;
	bool ce_dct; /* a ce-datacontenttype header was seen */
};

static bool
scan_header(struct header_scan *hs, const char *name, const char *value)
{
	char attr[ZC_CE_NAME_MAX + 1], *decoded;
	size_t n, i;
	int why = 0;
	zc_err err;

	if (name == NULL || strncasecmp(name, "ce-", 3) != 0)
		return true;
	name += 3;
	n = strlen(name);
	if (n == 0 || n > ZC_CE_NAME_MAX) {
		zc__ce_fail(hs->e, 400, NULL,
			    "invalid attribute header ce-%.*s",
			    n > ZC_CE_NAME_MAX ? 0 : (int)n, name);
		goto bad;
	}
	for (i = 0; i < n; i++)
		attr[i] = (name[i] >= 'A' && name[i] <= 'Z')
				  ? (char)(name[i] - 'A' + 'a')
				  : name[i];
	attr[n] = '\0';
	if (!zc__ce_valid_name(attr, n)) {
		zc__ce_fail(
			hs->e, 400, NULL,
			"invalid attribute header: names are a-z and 0-9 only");
		goto bad;
	}
	if (strcmp(attr, "data") == 0) {
		zc__ce_fail(hs->e, 400, "data",
			    "data travels in the body in binary mode, not in "
			    "ce-data");
		goto bad;
	}
	if (zc_event_attr(hs->ev, attr) != NULL) {
		zc__ce_fail(hs->e, 400, attr, "attribute %s given twice", attr);
		goto bad;
	}
	if ((decoded = header_decode(value != NULL ? value : "", &why)) ==
	    NULL) {
		if (why == 3)
			zc__ce_nomem(hs->e);
		else if (why == 1)
			zc__ce_fail(hs->e, 400, attr,
				    "attribute %s: invalid percent-encoding",
				    attr);
		else
			zc__ce_fail(
				hs->e, 400, attr,
				"attribute %s is not valid UTF-8 or holds a "
				"control character",
				attr);
		goto bad;
	}
	err = zc__ce_attr_put(hs->ev, attr, decoded);
	free(decoded);
	if (err != ZC_OK) {
		if (err == ZC_ERR_NOMEM)
			zc__ce_nomem(hs->e);
		else
			zc__ce_fail(hs->e, 400, NULL, "too many attributes");
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

zc_event *
zc__ce_event_from_binary(zc_req *req, struct zc__ce_err *e)
{
	struct header_scan hs = {0};
	const char *ct = zc_req_header(req, "Content-Type");

	if ((hs.ev = zc__ce_event_alloc()) == NULL) {
		zc__ce_nomem(e);
		return NULL;
	}
	hs.e = e;
	zc__req_headers(req, scan_one, &hs);
	if (hs.failed)
		goto fail;
	if (ct != NULL && *ct != '\0') {
		if (hs.ce_dct) {
			zc__ce_fail(
				e, 400, "datacontenttype",
				"datacontenttype is the Content-Type in binary "
				"mode: ce-datacontenttype must not be sent "
				"too");
			goto fail;
		}
		if (zc__ce_check_text(ct, strlen(ct)) != ZC_CE_TEXT_OK) {
			zc__ce_fail(e, 400, "datacontenttype",
				    "Content-Type holds a control character");
			goto fail;
		}
		if (zc__ce_attr_put(hs.ev, "datacontenttype", ct) != ZC_OK) {
			zc__ce_nomem(e);
			goto fail;
		}
	}
	if (zc__ce_check_attrs(hs.ev, e) != 0)
		goto fail;
	if (req->body_len > 0) {
		if (zc__ce_data_copy(hs.ev, req->body, req->body_len) !=
		    ZC_OK) {
			zc__ce_nomem(e);
			goto fail;
		}
		ct = zc_event_datacontenttype(hs.ev);
		if (ct != NULL && zc__ce_is_json_type(ct)) {
			hs.ev->json = json_loadb(
				req->body, req->body_len,
				JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
			if (hs.ev->json == NULL) {
				zc__ce_fail(
					e, 400, "data",
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
 * Binary mode out: headers in the spec's order; a reply read back
 * ------------------------------------------------------------------- */
/* The Content-Type binary mode sends, or NULL for an event without data. */
const char *
zc__ce_binary_ctype(const zc_event *ev)
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
typedef zc_err (*zc__ce_header_fn)(void *arg, const char *name,
				   const char *value);

zc_err
zc__ce_each_header(const zc_event *ev, zc__ce_header_fn add, void *arg)
{
	static const char *const first[] = {"specversion", "id", "source",
					    "type"};
	char name[ZC_CE_NAME_MAX + 4], *enc;
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
void
zc__ce_order_first(zc_event *ev)
{
	static const char *const first[] = {"specversion", "id", "source",
					    "type"};
	size_t j, pos = 0;
	ssize_t i;

	for (j = 0; j < 4; j++) {
		struct zc_kv kv;
		if ((i = zc__ce_attr_index(ev, first[j])) < 0)
			continue;
		kv = ev->attrs[i];
		memmove(&ev->attrs[pos + 1], &ev->attrs[pos],
			((size_t)i - pos) * sizeof(kv));
		ev->attrs[pos++] = kv;
	}
}

zc_event *
zc__ce_event_from_res(const zc_res *res)
{
	zc_event *ev = zc__ce_event_alloc();
	const char *ct = zc_res_get_header(res, "Content-Type");
	size_t i;
	int why;

	if (ev == NULL)
		return NULL;
	for (i = 0; i < res->nheaders; i++) {
		char *v;
		const char *n = res->headers[i].name;
		char attr[ZC_CE_NAME_MAX + 1];
		size_t k, len;

		if (strncasecmp(n, "ce-", 3) != 0)
			continue;
		len = strlen(n + 3);
		if (len == 0 || len > ZC_CE_NAME_MAX)
			continue;
		for (k = 0; k <= len; k++)
			attr[k] = (char)((n[3 + k] >= 'A' && n[3 + k] <= 'Z')
						 ? n[3 + k] - 'A' + 'a'
						 : n[3 + k]);
		if ((v = header_decode(res->headers[i].value, &why)) == NULL)
			continue;
		if (zc__ce_attr_put(ev, attr, v) != ZC_OK) {
			free(v);
			goto fail;
		}
		free(v);
	}
	if (ct != NULL && zc__ce_attr_put(ev, "datacontenttype", ct) != ZC_OK)
		goto fail;
	if (res->len > 0) {
		if (zc__ce_data_copy(ev, res->body, res->len) != ZC_OK)
			goto fail;
		if (ct != NULL && zc__ce_is_json_type(ct))
			ev->json = json_loadb(res->body, res->len,
					      JSON_DECODE_ANY, NULL);
	}
	return ev;
fail:
	zc_event_free(ev);
	return NULL;
}
