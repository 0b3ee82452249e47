/*
 * server.c - the libmicrohttpd side: an epoll event loop on a pool of
 * threads, each request's body gathered under its limit, handed to
 * zc__dispatch, and the response given to MHD without a copy.
 *
 * Threading mode, chosen by measurement (docs/performance.md): epoll with an
 * internal thread pool.  Handlers run on the pool thread that read the
 * request, so there is no hand-off between threads on the hot path.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct zc_server {
	struct MHD_Daemon *daemon;
	zc_app *app;
	MHD_socket listen_fd; /* after quiesce: closed only once MHD stops */
};

/*
 * When the drain deadline forces an exit with handlers still running, the
 * server stays alive until the process ends; keeping it reachable here says
 * so to LeakSanitizer.
 */
static struct zc_server *volatile running;

static enum MHD_Result
queue(struct MHD_Connection *conn, zc_app *app, zc_req *req, zc_res *res)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t i;

	r = MHD_create_response_from_buffer(res->len, res->body,
					    MHD_RESPMEM_MUST_FREE);
	if (r == NULL)
		return MHD_NO;
	res->body = NULL; /* MHD frees it */
	if (res->content_type != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					res->content_type);
	for (i = 0; i < res->nheaders; i++)
		MHD_add_response_header(r, res->headers[i].name,
					res->headers[i].value);
	if (atomic_load(&app->state) == ZC_DRAINING)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	req->status = res->status;
	ret = MHD_queue_response(conn, (unsigned)res->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
respond(struct MHD_Connection *conn, zc_app *app, zc_req *req)
{
	zc_res res;
	enum MHD_Result ret;

	zc__res_init(&res);
	zc__dispatch(app, req, &res);
	ret = queue(conn, app, req, &res);
	zc__res_release(&res);
	return ret;
}

/* Health and metrics answer even when the function is saturated. */
static bool
exempt(const zc_app *app, const char *path)
{
	return strcmp(path, app->cfg.readiness_path) == 0 ||
	       strcmp(path, app->cfg.liveness_path) == 0 ||
	       (app->cfg.metrics_path != NULL &&
		strcmp(path, app->cfg.metrics_path) == 0);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url,
	   const char *method, const char *version, const char *upload_data,
	   size_t *upload_data_size, void **con_cls)
{
	zc_app *app = cls;
	zc_req *req = *con_cls;

	(void)version;
	if (req == NULL) {
		const char *cl, *ua;

		req = malloc(sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		zc__req_init(req, app, method, url);
		req->conn = conn;
		req->started = true;
		*con_cls = req;
		ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_USER_AGENT);
		req->probe = ua != NULL && strncmp(ua, "kube-probe/", 11) == 0;
		/* Beyond ZC_MAX_INFLIGHT: an immediate 503, no queueing.
		 * Probes and metrics still answer. */
		if (atomic_fetch_add(&app->inflight, 1) >=
			    app->cfg.max_inflight &&
		    app->cfg.max_inflight > 0 && !exempt(app, url)) {
			req->shed = true;
			zc__metrics_shed();
			return respond(conn, app, req);
		}
		/* Refuse an announced oversized body before reading it. */
		cl = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > app->cfg.max_body) {
			req->too_large = true;
			return respond(conn, app, req);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (req->status != 0)
			return MHD_YES; /* already answered; discard */
		/*
		 * libmicrohttpd accepts a response only before the body or
		 * after all of it, so a body that turns out too large
		 * (chunked, no Content-Length) is read and dropped, and the
		 * 413 goes out at its end.  Past a hard cap, or a client too
		 * slow to finish within ZC_BODY_TIMEOUT_MS, no answer can be
		 * given: the connection is closed and the reason logged.
		 */
		if (zc__now_ns() - req->start_ns >
		    app->cfg.body_timeout_ms * 1000000LL) {
			zc_warn("%s %s: body not received within %ld ms; "
				"closing the connection",
				req->method, req->path,
				app->cfg.body_timeout_ms);
			return MHD_NO;
		}
		if (req->too_large) {
			req->discarded += n;
			if (req->discarded > 4 * app->cfg.max_body + (1 << 20)) {
				zc_warn("%s %s: body far over the %zu-byte "
					"limit; closing the connection",
					req->method, req->path,
					app->cfg.max_body);
				return MHD_NO;
			}
			return MHD_YES;
		}
		if (zc__req_append_body(req, upload_data, n) != 0)
			return MHD_NO;
		return MHD_YES;
	}
	if (req->status != 0)
		return MHD_YES;
	/* The handler's deadline starts when the whole request is in. */
	req->deadline_ns =
		zc__now_ns() + app->cfg.handler_timeout_ms * 1000000LL;
	return respond(conn, app, req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	zc_app *app = cls;
	zc_req *req = *con_cls;
	long long ns;
	double ms;

	(void)conn;
	if (req == NULL)
		return;
	ns = zc__now_ns() - req->start_ns;
	ms = (double)ns / 1e6;
	if (req->status != 0) {
		zc__metrics_request(req->route_id, req->method, req->status,
				    ns);
		/* kube-probe every few seconds would drown the access log */
		if (!req->probe)
			zc__log_access(req, req->status, ms);
	} else
		zc_warn("%s %s: connection ended before a response (%s)",
			req->method, req->path,
			toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
				? "timeout"
				: "client went away");
	atomic_fetch_sub(&app->inflight, 1);
	zc__req_release(req);
	free(req);
	*con_cls = NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	zc_warn("libmicrohttpd: %s", msg);
}

static struct MHD_Daemon *
start(zc_app *app, unsigned extra_flags, const struct sockaddr *addr)
{
	const zc_config *cfg = &app->cfg;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG | extra_flags;
	struct MHD_OptionItem ops[10];
	int n = 0;

	/* thread per connection uses poll(); the pool uses epoll */
	if (cfg->thread_per_connection)
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else
		flags |= MHD_USE_EPOLL;
	if (cfg->threads > 1 && !cfg->thread_per_connection)
		ops[n++] = (struct MHD_OptionItem){
			MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
					   cfg->idle_timeout_s, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
					   (intptr_t)cfg->max_header, NULL};
	if (cfg->max_connections > 0)
		ops[n++] = (struct MHD_OptionItem){
			MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
			NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTENING_ADDRESS_REUSE,
					   1, NULL};
	if (addr != NULL)
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0,
						   (void *)addr};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	/* The logger goes first so MHD reports option errors through it. */
	return MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, on_request, app,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
		MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
}

struct zc_server *
zc__server_start(zc_app *app, char *err, size_t errsize)
{
	struct zc_server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	srv->app = app;
	srv->listen_fd = MHD_INVALID_SOCKET;
	if (app->cfg.listen_address != NULL) {
		struct sockaddr_in6 a6;
		struct sockaddr_in a4;

		memset(&a4, 0, sizeof(a4));
		memset(&a6, 0, sizeof(a6));
		if (inet_pton(AF_INET, app->cfg.listen_address,
			      &a4.sin_addr) == 1) {
			a4.sin_family = AF_INET;
			a4.sin_port = htons((uint16_t)app->cfg.port);
			srv->daemon =
				start(app, 0, (const struct sockaddr *)&a4);
		} else if (inet_pton(AF_INET6, app->cfg.listen_address,
				     &a6.sin6_addr) == 1) {
			a6.sin6_family = AF_INET6;
			a6.sin6_port = htons((uint16_t)app->cfg.port);
			srv->daemon = start(app, MHD_USE_IPv6,
					    (const struct sockaddr *)&a6);
		} else {
			snprintf(err, errsize,
				 "invalid ZC_LISTEN_ADDRESS=\"%.64s\": expected "
				 "an IPv4 or IPv6 address",
				 app->cfg.listen_address);
			free(srv);
			return NULL;
		}
	} else {
		/* All interfaces, IPv6 and IPv4; IPv4 alone without IPv6. */
		srv->daemon = start(app, MHD_USE_DUAL_STACK, NULL);
		if (srv->daemon == NULL)
			srv->daemon = start(app, 0, NULL);
	}
	if (srv->daemon == NULL) {
		snprintf(err, errsize,
			 "cannot listen on port %d (in use, or not "
			 "permitted)",
			 app->cfg.port);
		free(srv);
		return NULL;
	}
	running = srv;
	return srv;
}

void
zc__server_quiesce(struct zc_server *srv)
{
	/*
	 * MHD hands the listening socket back; worker threads may still
	 * hold it in their epoll sets, so it is shut down now (new
	 * connections are refused) and closed only after MHD has stopped.
	 */
	srv->listen_fd = MHD_quiesce_daemon(srv->daemon);
	if (srv->listen_fd != MHD_INVALID_SOCKET)
		shutdown(srv->listen_fd, SHUT_RDWR);
}

void
zc__server_stop(struct zc_server *srv)
{
	MHD_stop_daemon(srv->daemon);
	if (srv->listen_fd != MHD_INVALID_SOCKET)
		close(srv->listen_fd);
	running = NULL;
	free(srv);
}
