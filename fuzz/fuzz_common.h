/*
 * fuzz_common.h - shared helpers for the libFuzzer harnesses in fuzz/.
 *
 * Inputs that describe a request use one text layout, so seeds are easy to
 * write and mutations stay meaningful:
 *
 *     METHOD\n TARGET\n Name: value\n ... \n \n BODY
 *
 * (a missing part takes a default: GET, "/", no headers, no body).  The
 * strings handed to the runtime are NUL-terminated copies; a NUL inside
 * the input cuts a part short, as it would in the C API.
 *
 * A broken invariant calls FZ_FAIL, which prints what was seen and aborts,
 * so libFuzzer records the input as a crash.  A check that a reported, not
 * yet fixed runtime bug breaks can be guarded by fz_known("name"): it is
 * skipped when ZC_FUZZ_SKIP_KNOWN lists that name (or is "all"), for long
 * `make fuzz` runs that should look for new bugs; regression replays
 * (`make test-fuzz-regress`) never skip it.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_FAIL(...)                                                           \
	do {                                                                   \
		fprintf(stderr, "FUZZ INVARIANT BROKEN at %s:%d: ", __FILE__,  \
			__LINE__);                                             \
		fprintf(stderr, __VA_ARGS__);                                  \
		fprintf(stderr, "\n");                                         \
		abort();                                                       \
	} while (0)

#define FZ_CHECK(cond, ...)                                                    \
	do {                                                                   \
		if (!(cond))                                                   \
			FZ_FAIL("!(" #cond ") " __VA_ARGS__);                  \
	} while (0)

/* A known, reported bug: skip its check when ZC_FUZZ_SKIP_KNOWN names it. */
static inline bool
fz_known(const char *name)
{
	const char *s = getenv("ZC_FUZZ_SKIP_KNOWN");
	size_t n = strlen(name);

	if (s == NULL || *s == '\0')
		return false;
	if (strcmp(s, "all") == 0)
		return true;
	while (*s) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == n && strncmp(s, name, n) == 0)
			return true;
		if (e == NULL)
			break;
		s = e + 1;
	}
	return false;
}

/* A NUL-terminated copy of p[0..n), cut at the first NUL. */
static inline char *
fz_strndup(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Take the next line (without its '\n', and without a '\r' before it). */
static inline char *
fz_line(const uint8_t **p, size_t *n)
{
	const uint8_t *nl = memchr(*p, '\n', *n);
	size_t len = nl ? (size_t)(nl - *p) : *n;
	char *s = fz_strndup(*p, len);
	size_t l = strlen(s);

	if (l > 0 && s[l - 1] == '\r')
		s[l - 1] = '\0';
	*p += nl ? len + 1 : len;
	*n -= nl ? len + 1 : len;
	return s;
}

#define FZ_MAX_HEADERS 64

struct fz_request {
	char *method;
	char *target;
	char *headers[FZ_MAX_HEADERS + 1]; /* NULL-terminated */
	int nheaders;
	char *body; /* NULL when the input has no body part */
};

static inline void
fz_request_parse(struct fz_request *r, const uint8_t *p, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->method = n ? fz_line(&p, &n) : strdup("GET");
	r->target = n ? fz_line(&p, &n) : strdup("/");
	while (n > 0) {
		char *h = fz_line(&p, &n);
		if (h[0] == '\0') {
			free(h);
			r->body = fz_strndup(p, n);
			break;
		}
		if (r->nheaders < FZ_MAX_HEADERS)
			r->headers[r->nheaders++] = h;
		else
			free(h);
	}
	if (r->method == NULL || r->target == NULL)
		abort();
}

static inline void
fz_request_free(struct fz_request *r)
{
	int i;

	free(r->method);
	free(r->target);
	for (i = 0; i < r->nheaders; i++)
		free(r->headers[i]);
	free(r->body);
}

/* Checks every response must pass, whatever the request was. */
static inline void
fz_check_response(const zc_res *res)
{
	size_t i, len;
	const char *body, *ct;

	FZ_CHECK(res != NULL, "zc_test_request returned NULL");
	FZ_CHECK(res->status >= 100 && res->status <= 599, "status %d",
		 res->status);
	body = zc_res_get_body(res, &len);
	FZ_CHECK(body != NULL);
	for (i = 0; i < res->nheaders; i++) {
		const char *nm = res->headers[i].name, *v = res->headers[i].value;
		FZ_CHECK(nm != NULL && v != NULL);
		FZ_CHECK(strpbrk(nm, "\r\n") == NULL && strpbrk(v, "\r\n") == NULL,
			 "CR/LF in response header %s", nm);
	}
	ct = zc_res_get_header(res, "Content-Type");
	/* JSON the runtime wrote: its own bodies, structured events */
	if (ct != NULL && len > 0 &&
	    (strncmp(ct, "application/json", 16) == 0 ||
	     strncmp(ct, "application/cloudevents", 23) == 0)) {
		json_error_t e;
		json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &e);
		FZ_CHECK(v != NULL, "runtime answered invalid JSON (%s): %.*s",
			 e.text, (int)(len > 300 ? 300 : len), body);
		if (res->status >= 400 && json_is_object(v) &&
		    json_object_get(v, "error") != NULL)
			FZ_CHECK(json_is_string(json_object_get(v, "error")));
		json_decref(v);
	}
	if (res->status == 204 || res->status == 304)
		FZ_CHECK(len == 0, "%d with a body", res->status);
}

/* Quiet, fast, local: no DNS, no waiting on downstreams. */
static inline void
fz_env_defaults(void)
{
	setenv("LOG_LEVEL", "error", 0);
	setenv("AUDIT_LOGGER_URL", "http://127.0.0.1:1", 1);
	setenv("AUDIT_MODE", "sync", 1);
	setenv("AUDIT_LOGGER_RETRIES", "0", 1);
	setenv("AUDIT_LOGGER_BREAKER_FAILURES", "1", 1);
	setenv("AUDIT_LOGGER_BREAKER_OPEN_MS", "3600000", 1);
	setenv("AUDIT_LOGGER_CONNECT_TIMEOUT_MS", "200", 1);
	setenv("AUDIT_LOGGER_TIMEOUT_MS", "500", 1);
	unsetenv("K_SINK");
	unsetenv("EVENT_MODE");
	unsetenv("DAPR_HTTP_PORT");
}

#endif /* FUZZ_COMMON_H */
