/*
 * event.c - the CloudEvents event model: attributes and data, the rules
 * for attribute names and string values, the public accessors and
 * builders, and the check that a decoded event is a valid one.
 */
#include "events.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* More attributes than this in one event is abuse, not an event. */
#define CE_MAX_ATTRS 256

/* Attributes typed String by the spec; never overridden by K_CE_OVERRIDES. */
static const char *const spec_attrs[] = {
	"specversion", "id",      "source", "type", "datacontenttype",
	"dataschema",  "subject", "time",   "data", NULL,
};

/* ---------------------------------------------------------------------
 * Refusals, and the rules for names, values and content types
 * ------------------------------------------------------------------- */
int
zc__ce_fail(struct zc__ce_err *e, int status, const char *attr, const char *fmt,
	    ...)
{
	va_list ap;

	e->status = status;
	snprintf(e->attr, sizeof(e->attr), "%s", attr != NULL ? attr : "");
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int
zc__ce_nomem(struct zc__ce_err *e)
{
	e->status = 0;
	e->attr[0] = '\0';
	snprintf(e->msg, sizeof(e->msg), "out of memory");
	return -1;
}

bool
zc__ce_is_spec_attr(const char *name)
{
	size_t i;

	for (i = 0; spec_attrs[i] != NULL; i++)
		if (strcmp(spec_attrs[i], name) == 0)
			return true;
	return false;
}

/* Lower-case a-z0-9, 1 to ZC_CE_NAME_MAX characters. */
bool
zc__ce_valid_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > ZC_CE_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/*
 * Strict UTF-8 (no overlong forms such as C0 A0, no surrogates, nothing
 * past U+10FFFF) without the control characters CloudEvents strings must
 * not hold: U+0000-001F and U+007F-009F.
 */
int
zc__ce_check_text(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0, k, j;
	unsigned cp, min;

	while (i < n) {
		unsigned c = s[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return ZC_CE_TEXT_CONTROL;
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
			return ZC_CE_TEXT_BAD_UTF8;
		}
		for (j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return ZC_CE_TEXT_BAD_UTF8;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return ZC_CE_TEXT_BAD_UTF8;
		if (cp <= 0x9f)
			return ZC_CE_TEXT_CONTROL; /* C1 controls U+0080-009F */
		i += k + 1;
	}
	return ZC_CE_TEXT_OK;
}

/* The media type of a Content-Type value, lower-cased, parameters cut. */
void
zc__ce_media_type(const char *ct, char *buf, size_t size)
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
bool
zc__ce_is_json_type(const char *ct)
{
	char m[128];

	zc__ce_media_type(ct, m, sizeof(m));
	return strcmp(m, "application/json") == 0 || ends_with(m, "/json") ||
	       ends_with(m, "+json");
}

bool
zc__ce_is_text_type(const char *ct)
{
	char m[128];

	zc__ce_media_type(ct, m, sizeof(m));
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
 * Events: attributes and data
 * ------------------------------------------------------------------- */
ssize_t
zc__ce_attr_index(const zc_event *ev, const char *name)
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
	ssize_t i = zc__ce_attr_index(ev, name);

	if (i < 0)
		return;
	free(ev->attrs[i].name);
	free(ev->attrs[i].value);
	memmove(&ev->attrs[i], &ev->attrs[i + 1],
		(ev->nattrs - (size_t)i - 1) * sizeof(*ev->attrs));
	ev->nattrs--;
}

/* Set name to value (copied), in place when it exists, else appended. */
zc_err
zc__ce_attr_put(zc_event *ev, const char *name, const char *value)
{
	ssize_t i = zc__ce_attr_index(ev, name);
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
void
zc__ce_data_take(zc_event *ev, char *data, size_t len)
{
	data_clear(ev);
	ev->data = data;
	ev->len = len;
	ev->data[len] = '\0';
}

zc_err
zc__ce_data_copy(zc_event *ev, const void *data, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return ZC_ERR_NOMEM;
	if (len > 0)
		memcpy(copy, data, len);
	zc__ce_data_take(ev, copy, len);
	return ZC_OK;
}

zc_event *
zc__ce_event_alloc(void)
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

zc_event *
zc__ce_event_copy(const zc_event *ev)
{
	zc_event *c = zc__ce_event_alloc();
	size_t i;

	if (c == NULL)
		return NULL;
	for (i = 0; i < ev->nattrs; i++)
		if (zc__ce_attr_put(c, ev->attrs[i].name, ev->attrs[i].value) !=
		    ZC_OK)
			goto fail;
	if (ev->data != NULL && zc__ce_data_copy(c, ev->data, ev->len) != ZC_OK)
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
	i = zc__ce_attr_index(ev, name);
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
	    zc__ce_check_text(type, strlen(type)) != ZC_CE_TEXT_OK)
		return NULL;
	if ((ev = zc__ce_event_alloc()) == NULL)
		return NULL;
	if (zc__ce_attr_put(ev, "specversion", "1.0") != ZC_OK ||
	    zc__ce_attr_put(ev, "type", type) != ZC_OK) {
		zc_event_free(ev);
		return NULL;
	}
	return ev;
}

zc_err
zc_event_set(zc_event *ev, const char *attr, const char *value)
{
	if (ev == NULL || attr == NULL ||
	    !zc__ce_valid_name(attr, strlen(attr)) || strcmp(attr, "data") == 0)
		return ZC_ERR_INVALID;
	if (value == NULL || *value == '\0') {
		if (strcmp(attr, "specversion") == 0 ||
		    strcmp(attr, "type") == 0)
			return ZC_ERR_INVALID;
		attr_remove(ev, attr);
		return ZC_OK;
	}
	if (zc__ce_check_text(value, strlen(value)) != ZC_CE_TEXT_OK)
		return ZC_ERR_INVALID;
	if (strcmp(attr, "specversion") == 0 && strcmp(value, "1.0") != 0)
		return ZC_ERR_INVALID;
	if (strcmp(attr, "time") == 0 && !valid_time(value))
		return ZC_ERR_INVALID;
	return zc__ce_attr_put(ev, attr, value);
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
	if ((err = zc__ce_attr_put(ev, "datacontenttype",
				   "application/json")) != ZC_OK) {
		free(s);
		json_decref(data);
		return err;
	}
	zc__ce_data_take(ev, s, len);
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
		if (zc__ce_check_text(content_type, strlen(content_type)) !=
		    ZC_CE_TEXT_OK)
			return ZC_ERR_INVALID;
		/* data declared JSON must be JSON, or zc_event_json lies */
		if (zc__ce_is_json_type(content_type) && len > 0 &&
		    (json = json_loadb(data, len, JSON_DECODE_ANY, NULL)) ==
			    NULL)
			return ZC_ERR_INVALID;
		err = zc__ce_attr_put(ev, "datacontenttype", content_type);
	} else {
		attr_remove(ev, "datacontenttype");
		err = ZC_OK;
	}
	if (err == ZC_OK)
		err = zc__ce_data_copy(ev, data != NULL ? data : "", len);
	if (err != ZC_OK) {
		if (json != NULL)
			json_decref(json);
		return err;
	}
	ev->json = json;
	return ZC_OK;
}

/* ---------------------------------------------------------------------
 * Validating a decoded event
 * ------------------------------------------------------------------- */
/* Required attributes present and valid; optional ones well-formed. */
int
zc__ce_check_attrs(const zc_event *ev, struct zc__ce_err *e)
{
	static const char *const required[] = {"id", "source", "type"};
	static const char *const nonempty[] = {"subject", "dataschema",
					       "datacontenttype"};
	const char *v;
	size_t i;

	v = zc_event_attr(ev, "specversion");
	if (v == NULL)
		return zc__ce_fail(e, 400, "specversion",
				   "missing required attribute specversion");
	if (strcmp(v, "1.0") != 0)
		return zc__ce_fail(e, 400, "specversion",
				   "unsupported specversion: expected 1.0");
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
		v = zc_event_attr(ev, required[i]);
		if (v == NULL)
			return zc__ce_fail(e, 400, required[i],
					   "missing required attribute %s",
					   required[i]);
		if (*v == '\0')
			return zc__ce_fail(e, 400, required[i],
					   "attribute %s must not be empty",
					   required[i]);
	}
	for (i = 0; i < sizeof(nonempty) / sizeof(nonempty[0]); i++) {
		v = zc_event_attr(ev, nonempty[i]);
		if (v != NULL && *v == '\0')
			return zc__ce_fail(e, 400, nonempty[i],
					   "attribute %s must not be empty",
					   nonempty[i]);
	}
	v = zc_event_attr(ev, "time");
	if (v != NULL && !valid_time(v))
		return zc__ce_fail(
			e, 400, "time",
			"attribute time is not an RFC 3339 timestamp");
	return 0;
}
