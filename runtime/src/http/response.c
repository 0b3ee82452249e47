/*
 * response.c - building a response.  The body is one malloc'd buffer that
 * the server hands to libmicrohttpd without a copy.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char ctype_json[] = "application/json";
static const char ctype_text[] = "text/plain; charset=utf-8";

void
zc__res_init(zc_res *res)
{
	memset(res, 0, sizeof(*res));
}

void
zc__res_reset(zc_res *res)
{
	size_t i;

	for (i = 0; i < res->nheaders; i++) {
		free(res->headers[i].name);
		free(res->headers[i].value);
	}
	res->nheaders = 0;
	free(res->body);
	res->body = NULL;
	res->len = 0;
	res->status = 0;
	res->content_type = NULL;
}

void
zc__res_release(zc_res *res)
{
	zc__res_reset(res);
	free(res->headers);
	res->headers = NULL;
	res->capheaders = 0;
}

void
zc_res_free(zc_res *res)
{
	if (res == NULL)
		return;
	zc__res_release(res);
	free(res);
}

void
zc_res_status(zc_res *res, int status)
{
	if (status >= 100 && status <= 599)
		res->status = status;
}

zc_err
zc_res_header(zc_res *res, const char *name, const char *value)
{
	struct zc_kv kv;

	if (name == NULL || value == NULL || *name == '\0' ||
	    strpbrk(name, "\r\n: \t") != NULL || strpbrk(value, "\r\n") != NULL)
		return ZC_ERR_INVALID;
	if (res->nheaders == res->capheaders) {
		size_t cap = res->capheaders ? res->capheaders * 2 : 4;
		struct zc_kv *nh = realloc(res->headers, cap * sizeof(*nh));
		if (nh == NULL)
			return ZC_ERR_NOMEM;
		res->headers = nh;
		res->capheaders = cap;
	}
	kv.name = strdup(name);
	kv.value = strdup(value);
	if (kv.name == NULL || kv.value == NULL) {
		free(kv.name);
		free(kv.value);
		return ZC_ERR_NOMEM;
	}
	res->headers[res->nheaders++] = kv;
	return ZC_OK;
}

static void
set_body(zc_res *res, int status, char *body, size_t len, const char *type)
{
	free(res->body);
	res->body = body;
	res->len = len;
	res->content_type = type;
	zc_res_status(res, status);
}

zc_err
zc_res_json(zc_res *res, int status, json_t *body)
{
	char *s;
	size_t len;

	if (body == NULL)
		return ZC_ERR_INVALID;
	s = zc__json_dump(body, &len);
	json_decref(body);
	if (s == NULL)
		return ZC_ERR_NOMEM;
	/* Go's json.Encoder ends every document with a newline; so do we.
	 * The dump buffer keeps room for it and the NUL. */
	s[len++] = '\n';
	s[len] = '\0';
	set_body(res, status, s, len, ctype_json);
	return ZC_OK;
}

zc_err
zc_res_jsonf(zc_res *res, int status, const char *fmt, ...)
{
	json_error_t e;
	json_t *v;
	va_list ap;
	char *s;
	size_t len;

	va_start(ap, fmt);
	s = zc__json_vpackf(fmt, ap, &len);
	if (s != NULL) {
		va_end(ap);
		/* as zc_res_json: a newline, Go's json.Encoder's; the pack
		 * buffer keeps room for it and the NUL */
		s[len++] = '\n';
		s[len] = '\0';
		set_body(res, status, s, len, ctype_json);
		return ZC_OK;
	}
	v = json_vpack_ex(&e, 0, fmt, ap);
	va_end(ap);
	if (v == NULL) {
		zc_error("zc_res_jsonf(\"%s\"): %s", fmt, e.text);
		return ZC_ERR_INVALID;
	}
	return zc_res_json(res, status, v);
}

zc_err
zc_res_text(zc_res *res, int status, const char *text)
{
	char *s = strdup(text != NULL ? text : "");

	if (s == NULL)
		return ZC_ERR_NOMEM;
	set_body(res, status, s, strlen(s), ctype_text);
	return ZC_OK;
}

zc_err
zc_res_error(zc_res *res, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *v, *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* json_string rejects invalid UTF-8 (a message quoting raw input). */
	s = json_string(msg);
	if (s == NULL)
		s = json_string("invalid request");
	v = json_pack("{s:o}", "error", s);
	if (v == NULL)
		return ZC_ERR_NOMEM;
	return zc_res_json(res, status, v);
}

int
zc_res_get_status(const zc_res *res)
{
	return res->status;
}

const char *
zc_res_get_body(const zc_res *res, size_t *len)
{
	if (len != NULL)
		*len = res->len;
	return res->body != NULL ? res->body : "";
}

const char *
zc_res_get_header(const zc_res *res, const char *name)
{
	size_t i;

	if (strcasecmp(name, "Content-Type") == 0 && res->content_type != NULL)
		return res->content_type;
	for (i = 0; i < res->nheaders; i++)
		if (strcasecmp(res->headers[i].name, name) == 0)
			return res->headers[i].value;
	return NULL;
}

void
zc__res_from_answer(zc_res *res, struct zc_answer *ans)
{
	zc__res_reset(res);
	res->status = ans->status;
	res->content_type = ans->ctype;
	res->body = ans->body;
	res->len = ans->len;
	ans->body = NULL;
}

struct zc_answer
zc__res_answer(const zc_res *res)
{
	struct zc_answer a = {res->status, res->content_type, res->body,
			      res->len};

	return a;
}
