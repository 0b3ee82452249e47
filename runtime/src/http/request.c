/*
 * request.c - what a handler can read from a request.  A request comes
 * either from a libmicrohttpd connection (headers and query are looked up in
 * MHD's own tables, no copies) or from zc_test_request (our own tables).
 */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
zc__req_init(zc_req *req, zc_app *app, const char *method, const char *path)
{
	memset(req, 0, sizeof(*req));
	req->app = app;
	req->ctx.method = method;
	req->ctx.path = path;
	req->start_ns = zc__now_ns();
	req->deadline_ns =
		req->start_ns + app->cfg.handler_timeout_ms * 1000000LL;
}

void
zc__req_release(zc_req *req)
{
	size_t i;

	for (i = 0; i < req->nheaders; i++) {
		free(req->headers[i].name);
		free(req->headers[i].value);
	}
	free(req->headers);
	free(req->query);
	free(req->query_copy);
	free(req->body);
	free(req->path_copy);
	if (req->json != NULL)
		json_decref(req->json);
	memset(req, 0, sizeof(*req));
}

int
zc__req_append_body(zc_req *req, const char *data, size_t len)
{
	size_t limit = req->app->cfg.max_body;

	if (req->too_large)
		return 0;
	if (req->body_len + len > limit) {
		req->too_large = true;
		return 0;
	}
	if (req->body_len + len + 1 > req->body_cap) {
		size_t cap = req->body_cap ? req->body_cap : 1024;
		char *nb;
		while (cap < req->body_len + len + 1)
			cap *= 2;
		nb = realloc(req->body, cap);
		if (nb == NULL)
			return -1;
		req->body = nb;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, len);
	req->body_len += len;
	req->body[req->body_len] = '\0';
	return 0;
}

const char *
zc_req_method(const zc_req *req)
{
	return req->ctx.method;
}

const char *
zc_req_path(const zc_req *req)
{
	return req->ctx.path;
}

const char *
zc_req_param(const zc_req *req, const char *name)
{
	int i;

	for (i = 0; i < req->nparams; i++)
		if (strcmp(req->param_names[i], name) == 0)
			return req->param_values[i];
	return NULL;
}

const char *
zc_req_query(const zc_req *req, const char *key)
{
	size_t i;

	if (req->conn != NULL)
		return MHD_lookup_connection_value(req->conn,
						   MHD_GET_ARGUMENT_KIND, key);
	for (i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].name, key) == 0)
			return req->query[i].value;
	return NULL;
}

const char *
zc_req_header(const zc_req *req, const char *name)
{
	size_t i;

	if (req->conn != NULL)
		return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
						   name);
	for (i = 0; i < req->nheaders; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

const char *
zc_req_body(const zc_req *req, size_t *len)
{
	if (len != NULL)
		*len = req->body_len;
	return req->body != NULL ? req->body : "";
}

json_t *
zc_req_json(zc_req *req, zc_res *res)
{
	json_error_t e;

	if (req->json != NULL)
		return req->json;
	if (req->body_len == 0) {
		zc_res_error(res, 400, "request body is empty: expected JSON");
		return NULL;
	}
	/*
	 * Duplicate keys are rejected: {"amount":1,"amount":1000} has no
	 * single meaning, and guessing wrong moves money.
	 */
	req->json = json_loadb(req->body, req->body_len,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (req->json == NULL) {
		zc_res_error(res, 400, "invalid JSON at line %d column %d: %s",
			     e.line, e.column, e.text);
		return NULL;
	}
	return req->json;
}

long
zc_req_remaining_ms(const zc_req *req)
{
	long long left;

	if (req == NULL)
		return 0;
	left = req->deadline_ns - zc__now_ns();
	return left <= 0 ? 0 : (long)(left / 1000000LL);
}

void
zc__req_trace_begin(zc_req *req)
{
	zc__trace_start(&req->ctx.trace, zc_req_header(req, "traceparent"));
}

const char *
zc_req_trace_id(const zc_req *req)
{
	return req != NULL ? req->ctx.trace.trace_id : NULL;
}

struct header_walk {
	int (*fn)(const char *, const char *, void *);
	void *arg;
	int rc;
};

static enum MHD_Result
walk_one(void *cls, enum MHD_ValueKind kind, const char *name,
	 const char *value)
{
	struct header_walk *w = cls;

	(void)kind;
	w->rc = w->fn(name, value != NULL ? value : "", w->arg);
	return w->rc == 0 ? MHD_YES : MHD_NO;
}

int
zc__req_headers(const zc_req *req,
		int (*fn)(const char *name, const char *value, void *arg),
		void *arg)
{
	struct header_walk w = {fn, arg, 0};
	size_t i;

	if (req->conn != NULL) {
		MHD_get_connection_values(req->conn, MHD_HEADER_KIND, walk_one,
					  &w);
		return w.rc;
	}
	for (i = 0; i < req->nheaders; i++)
		if ((w.rc = fn(req->headers[i].name, req->headers[i].value,
			       arg)) != 0)
			return w.rc;
	return 0;
}

bool
zc__req_peer(const zc_req *req, char *addr, size_t size, int *port)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	if (req->conn == NULL ||
	    (ci = MHD_get_connection_info(
		     req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) == NULL ||
	    (sa = ci->client_addr) == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		*port = ntohs(in->sin_port);
		return inet_ntop(AF_INET, &in->sin_addr, addr,
				 (socklen_t)size) != NULL;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		*port = ntohs(in6->sin6_port);
		/* a dual-stack socket's IPv4 peer: its IPv4 address */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12],
					 addr, (socklen_t)size) != NULL;
		return inet_ntop(AF_INET6, &in6->sin6_addr, addr,
				 (socklen_t)size) != NULL;
	}
	return false;
}

struct query_walk {
	char *out;
	size_t size, len;
};

static void
query_add(struct query_walk *w, const char *k, const char *v)
{
	int n = snprintf(w->out + w->len, w->size - w->len, "%s%s%s%s",
			 w->len > 0 ? "&" : "", k, v != NULL ? "=" : "",
			 v != NULL ? v : "");

	if (n > 0)
		w->len += (size_t)n < w->size - w->len ? (size_t)n
						       : w->size - w->len - 1;
}

static enum MHD_Result
query_one(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
	(void)kind;
	query_add(cls, k, v);
	return MHD_YES;
}

bool
zc__req_query_string(const zc_req *req, char *out, size_t size)
{
	struct query_walk w = {out, size, 0};
	size_t i;

	if (size == 0)
		return false;
	out[0] = '\0';
	if (req->conn != NULL)
		MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND,
					  query_one, &w);
	else
		for (i = 0; i < req->nquery; i++)
			query_add(&w, req->query[i].name, req->query[i].value);
	return w.len > 0;
}
