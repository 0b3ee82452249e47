/*
 * testing.c - zc_test_request: a handler test with no socket.  The request
 * is built from strings and goes through the same zc__dispatch as the
 * server's, so status codes, limits and error bodies are the real ones.
 */
#include "app.h"

#include <stdlib.h>
#include <string.h>

static int
add_kv(struct zc_kv **arr, size_t *n, const char *name, size_t nlen,
       const char *value)
{
	struct zc_kv *na = realloc(*arr, (*n + 1) * sizeof(**arr));

	if (na == NULL)
		return -1;
	*arr = na;
	na[*n].name = strndup(name, nlen);
	na[*n].value = strdup(value);
	if (na[*n].name == NULL || na[*n].value == NULL) {
		free(na[*n].name);
		free(na[*n].value);
		return -1;
	}
	(*n)++;
	return 0;
}

/* Split "a=1&b=2" into the query table, decoded the way libmicrohttpd
 * decodes a real request's ('+' is a space, %XX a byte). */
static int
parse_query(zc_req *req, const char *q)
{
	char *p, *save = NULL, *tok;

	req->query_copy = strdup(q);
	if (req->query_copy == NULL)
		return -1;
	for (p = req->query_copy; *p; p++)
		if (*p == '+')
			*p = ' ';
	for (tok = strtok_r(req->query_copy, "&", &save); tok != NULL;
	     tok = strtok_r(NULL, "&", &save)) {
		struct zc_kv *nq;
		p = strchr(tok, '=');
		nq = realloc(req->query, (req->nquery + 1) * sizeof(*nq));
		if (nq == NULL)
			return -1;
		req->query = nq;
		if (p != NULL)
			*p++ = '\0';
		zc__unescape(NULL, NULL, tok);
		if (p != NULL)
			zc__unescape(NULL, NULL, p);
		nq[req->nquery].name = tok;
		nq[req->nquery].value = p != NULL ? p : "";
		req->nquery++;
	}
	return 0;
}

zc_res *
zc_test_request(zc_app *app, const char *method, const char *target,
		const char *const *headers, const char *body)
{
	zc_res *res;
	zc_req req;
	char *path;
	const char *q;
	size_t i;
	int bad = 0;

	if (app == NULL || method == NULL || target == NULL)
		return NULL;
	res = malloc(sizeof(*res));
	q = strchr(target, '?');
	path = q != NULL ? strndup(target, (size_t)(q - target))
			 : strdup(target);
	if (res == NULL || path == NULL) {
		free(res);
		free(path);
		return NULL;
	}
	/* the server sees the path percent-decoded; so does the test */
	zc__unescape(NULL, NULL, path);
	zc__res_init(res);
	zc__req_init(&req, app, method, path);
	if (q != NULL && parse_query(&req, q + 1) != 0)
		bad = 1;
	for (i = 0; !bad && headers != NULL && headers[i] != NULL; i++) {
		const char *colon = strchr(headers[i], ':');
		const char *v;
		if (colon == NULL)
			continue;
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (add_kv(&req.headers, &req.nheaders, headers[i],
			   (size_t)(colon - headers[i]), v) != 0)
			bad = 1;
	}
	if (!bad && body != NULL &&
	    zc__req_append_body(&req, body, strlen(body)) != 0)
		bad = 1;
	if (bad) {
		zc__req_release(&req);
		free(path);
		free(res);
		return NULL;
	}
	atomic_fetch_add(&app->inflight, 1);
	zc__dispatch(app, &req, res);
	atomic_fetch_sub(&app->inflight, 1);
	zc__req_release(&req);
	free(path);
	return res;
}
