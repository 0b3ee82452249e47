/*
 * server.c - the libmicrohttpd side: the event loops (one daemon per loop,
 * or a single listening daemon), each request's body gathered under its
 * limit, handed to zc__dispatch, and the response given to MHD uncopied.
 */
#include "server_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * When the drain deadline forces an exit with handlers still running, the
 * server stays alive until the process ends; keeping it reachable here says
 * so to LeakSanitizer.
 */
static struct zc_server *running;

/*
 * Requests answered whose connection has not finished sending yet: still
 * in app->inflight (the drain waits for the bytes to leave), but no longer
 * being served, so the in-flight gauge leaves them out.  Without it a
 * client that had its answer could scrape and see its own request still in
 * flight.
 */
static atomic_long answered_unsent;

static enum MHD_Result
queue(struct MHD_Connection *conn, zc_app *app, zc_req *req, zc_res *res)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t i;

	long long ns = zc__now_ns() - req->start_ns;

	/*
	 * The handler's lines, the access line and the metrics, all before
	 * the answer goes: a client that has its answer finds it logged and
	 * counted (a scrape right after it included it).
	 */
	req->status = res->status;
	atomic_fetch_add(&answered_unsent, 1);
	zc__metrics_request(req->route_id, req->ctx.method, res->status, ns);
	/* the status is final: the server span ends with the answer */
	zc__server_span_end(req, res->status);
	zc__log_release(req, res->status, ns);
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
	if (atomic_load(&app->state) == ZC_DRAINING || req->close_after)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, (unsigned)res->status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * A handler on a fiber of its loop.  One that does not wait returns
 * within zc__task_start and is answered in line, as it always was; one
 * that waits (an outbound call, a backoff) has its connection suspended,
 * and is answered, and its connection resumed, when it returns.
 */
struct run {
	struct zc_task task; /* first: the task is the run */
	struct run *prev, *next; /* the loop's waiting runs (w->waiting) */
	struct MHD_Connection *conn;
	zc_app *app;
	zc_req *req;
	struct zc_worker *w;
	zc_res res;
};

static void
run_handler(struct zc_task *t)
{
	struct run *r = (struct run *)t;

	zc__dispatch(r->app, r->req, &r->res);
}

static void
run_done(struct zc_task *t)
{
	struct run *r = (struct run *)t;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->w->waiting = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	/* MHD takes a response for a suspended connection at any time */
	if (queue(r->conn, r->app, r->req, &r->res) != MHD_YES)
		r->req->unqueued = true; /* closed when MHD calls again */
	zc__res_release(&r->res);
	MHD_resume_connection(r->conn);
	r->w->run_mhd = true; /* MHD_run on this turn: see loop_turn */
	free(r);
}

static enum MHD_Result
respond(struct MHD_Connection *conn, zc_app *app, zc_req *req)
{
	struct zc_loop *loop = zc__loop_current();
	struct run *r;
	zc_res res;
	enum MHD_Result ret;

	zc__log_hold();
	if (loop != NULL && (r = malloc(sizeof(*r))) != NULL) {
		r->conn = conn;
		r->app = app;
		r->req = req;
		r->w = zc__loop_worker();
		zc__res_init(&r->res);
		r->task.fn = run_handler;
		r->task.done = run_done;
		r->task.owner = req;
		switch (zc__task_start(loop, &r->task)) {
		case 1:
			ret = queue(conn, app, req, &r->res);
			zc__res_release(&r->res);
			free(r);
			return ret;
		case 0:
			/* kept where the server can reach it (and LeakSanitizer
			 * at an exit past the drain deadline) */
			r->prev = NULL;
			r->next = r->w->waiting;
			if (r->next != NULL)
				r->next->prev = r;
			r->w->waiting = r;
			MHD_suspend_connection(conn);
			return MHD_YES;
		default:
			free(r); /* no fiber: in line, on the loop's stack */
			break;
		}
	}
	zc__res_init(&res);
	zc__dispatch(app, req, &res);
	ret = queue(conn, app, req, &res);
	zc__res_release(&res);
	return ret;
}

struct framing {
	int content_lengths;
	const char *first_cl;
	bool cl_differ;
	const char *te;
};

static enum MHD_Result
count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
	      const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->content_lengths++ == 0)
			f->first_cl = value;
		else if (strcmp(f->first_cl, value) != 0)
			f->cl_differ = true;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->te = value;
	}
	return MHD_YES;
}

/*
 * Request framing that a proxy in front could read differently (RFC 9112
 * 6.1, 6.3): two different Content-Lengths are refused (400); a transfer
 * coding other than chunked is not implemented (501); Content-Length
 * together with Transfer-Encoding is served by the chunked framing, and
 * the connection is closed after the answer so nothing pipelined behind it
 * is ever read.  Returns true when req now holds an early answer.
 */
static bool
framing_checks(struct MHD_Connection *conn, zc_req *req)
{
	struct framing f = {0};

	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
	if (f.cl_differ) {
		req->early_status = 400;
		req->early_msg = "conflicting Content-Length headers";
		return true;
	}
	if (f.te != NULL) {
		if (strcasecmp(f.te, "chunked") != 0) {
			req->early_status = 501;
			req->early_msg = "unsupported Transfer-Encoding (only "
					 "chunked is implemented)";
			return true;
		}
		if (f.content_lengths > 0)
			req->close_after = true;
	}
	return false;
}

/*
 * libmicrohttpd's unescaping, except that a %00 (which would end the path
 * at a C NUL and could make "/update%00.json" reach "/update") turns the
 * whole string into "\x01", which zc__dispatch answers with a 400.
 */
size_t
zc__unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	size_t i, o = 0;

	(void)cls;
	(void)conn;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '%' && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], '\0'};
			char c = (char)strtol(hex, NULL, 16);
			if (c == '\0') {
				s[0] = '\x01';
				s[1] = '\0';
				return 1;
			}
			s[o++] = c;
			i += 2;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

/* The watchdog's record of conn, or NULL when it could not track it. */
static struct zc_track *
track_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

/* Counts the loop's connections and has the watchdog track each. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	      enum MHD_ConnectionNotificationCode toe)
{
	struct zc_worker *w = cls;
	const union MHD_ConnectionInfo *ci;

	if (w != NULL)
		atomic_fetch_add(&w->conns,
				 toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn,
					     MHD_CONNECTION_INFO_CONNECTION_FD);
		*socket_context =
			zc__track_open(ci != NULL ? ci->connect_fd : -1);
		return;
	}
	zc__track_close(*socket_context);
	*socket_context = NULL;
	/*
	 * MHD puts its listening socket back in its epoll set (it left it at
	 * the connection limit) only when it runs again: run it again now,
	 * or a connection waiting in the backlog waits for the next event.
	 */
	if (w != NULL && w->loop != NULL)
		w->run_mhd = true;
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

	if (req == NULL) {
		struct zc_track *track = track_of(conn);
		const char *cl, *ua;

		req = malloc(sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		zc__req_init(req, app, method, url);
		req->conn = conn;
		req->version = version;
		*con_cls = req;
		zc__track_request(track);
		ua = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_USER_AGENT);
		req->ctx.probe =
			ua != NULL && strncmp(ua, "kube-probe/", 11) == 0;
		/* Beyond ZC_MAX_INFLIGHT: an immediate 503, no queueing.
		 * Probes and metrics still answer. */
		if (atomic_fetch_add(&app->inflight, 1) >=
			    app->cfg.max_inflight &&
		    app->cfg.max_inflight > 0 && !exempt(app, url)) {
			req->shed = true;
			zc__metrics_shed();
			return respond(conn, app, req);
		}
		if (framing_checks(conn, req))
			return respond(conn, app, req);
		/* Refuse an announced oversized body before reading it. */
		cl = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > app->cfg.max_body) {
			req->too_large = true;
			return respond(conn, app, req);
		}
		zc__track_body(track, req);
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
				req->ctx.method, req->ctx.path,
				app->cfg.body_timeout_ms);
			return MHD_NO;
		}
		if (req->too_large) {
			req->discarded += n;
			if (req->discarded >
			    4 * app->cfg.max_body + (1 << 20)) {
				zc_warn("%s %s: body far over the %zu-byte "
					"limit; closing the connection",
					req->ctx.method, req->ctx.path,
					app->cfg.max_body);
				return MHD_NO;
			}
			return MHD_YES;
		}
		atomic_store(&req->activity_ns, zc__now_ns());
		if (zc__req_append_body(req, upload_data, n) != 0)
			return MHD_NO;
		return MHD_YES;
	}
	zc__track_body_done(track_of(conn), req);
	if (req->status != 0)
		return req->unqueued ? MHD_NO : MHD_YES;
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
	struct zc_track *track;

	if (req == NULL)
		return;
	track = track_of(conn);
	/* answered (or abandoned): no longer in flight */
	zc__track_body_done(track, req);
	atomic_fetch_sub(&app->inflight, 1);
	if (req->status != 0)
		atomic_fetch_sub(&answered_unsent, 1);
	/* an answered request was logged and counted in queue() */
	if (req->status == 0)
		zc_warn("%s %s: connection ended before a response (%s)",
			req->ctx.method, req->ctx.path,
			toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
				? "timeout"
				: "client went away");
	/* the next request's headers are timed from now */
	zc__track_idle(track);
	/* a span still open (no answer was queued): ended, not leaked */
	zc__server_span_end(req, req->status);
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

/*
 * A daemon with the runtime's options, counting its connections in w.
 * MHD listens itself (addr, or every interface when NULL) unless
 * extra_flags has MHD_USE_NO_LISTEN_SOCKET: one of the acceptor's loops.
 * conn_limit 0: MHD's default.
 */
/*
 * Do the loops drive their daemons (libmicrohttpd in external epoll mode,
 * handlers on fibers)?  Not with a thread per connection or ZC_POLL,
 * where MHD runs its own threads and handlers block them as before.
 */
static bool
external(const zc_config *cfg)
{
	return !cfg->thread_per_connection && getenv("ZC_POLL") == NULL;
}

static struct MHD_Daemon *
start(zc_app *app, unsigned extra_flags, const struct sockaddr *addr,
      struct zc_worker *w, unsigned conn_limit)
{
	const zc_config *cfg = &app->cfg;
	unsigned flags = MHD_USE_ITC | MHD_USE_ERROR_LOG | extra_flags;
	struct MHD_OptionItem ops[12];
	int n = 0;

	/* thread per connection uses poll(); the loops use epoll */
	if (cfg->thread_per_connection)
		flags |= MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else if (!external(cfg))
		flags |= MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	else
		flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
					   cfg->idle_timeout_s, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
					   (intptr_t)cfg->max_header, NULL};
	if (conn_limit > 0)
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
						   conn_limit, NULL};
	if (!(extra_flags & MHD_USE_NO_LISTEN_SOCKET))
		ops[n++] = (struct MHD_OptionItem){
			MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK,
					   (intptr_t)zc__unescape, NULL};
	if (addr != NULL)
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0,
						   (void *)addr};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	/* The logger goes first so MHD reports option errors through it. */
	return MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL,
				on_request, app, MHD_OPTION_EXTERNAL_LOGGER,
				mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED,
				on_completed, app, MHD_OPTION_NOTIFY_CONNECTION,
				on_connection, w, MHD_OPTION_ARRAY, ops,
				MHD_OPTION_END);
}

/*
 * The address to serve on: ZC_LISTEN_ADDRESS, or every interface (IPv6
 * and IPv4 when the host has IPv6, IPv4 otherwise: *dual says which to
 * try first).  0, or -1 with err set for an address that does not parse.
 */
static int
listen_addr(const zc_config *cfg, struct sockaddr_storage *ss, bool *dual,
	    char *err, size_t errsize)
{
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	*dual = false;
	if (cfg->listen_address == NULL) {
		*dual = true;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_any;
		a6->sin6_port = htons((uint16_t)cfg->port);
		return 0;
	}
	if (inet_pton(AF_INET, cfg->listen_address, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)cfg->port);
		return 0;
	}
	if (inet_pton(AF_INET6, cfg->listen_address, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)cfg->port);
		return 0;
	}
	snprintf(err, errsize,
		 "invalid ZC_LISTEN_ADDRESS=\"%.64s\": expected an IPv4 or "
		 "IPv6 address",
		 cfg->listen_address);
	return -1;
}

/* cfg->threads event loops fed by one acceptor; false with err set. */
static bool
start_balanced(struct zc_server *srv, char *err, size_t errsize)
{
	const zc_config *cfg = &srv->app->cfg;
	struct sockaddr_storage ss;
	unsigned total, i, n = (unsigned)cfg->threads;
	bool dual;

	if (listen_addr(cfg, &ss, &dual, err, errsize) != 0)
		return false;
	if (zc__acceptor_listen(srv, &ss, dual, err, errsize) != 0)
		return false;
	/* the total limit split as MHD splits it over its own pool */
	total = cfg->max_connections > 0 ? cfg->max_connections
					 : FD_SETSIZE - 4;
	if (n > total)
		n = total; /* no loop without a connection to serve */
	srv->limit = total;
	srv->workers = calloc(n, sizeof(*srv->workers));
	if (srv->workers == NULL) {
		snprintf(err, errsize, "out of memory");
		return false;
	}
	for (i = 0; i < n; i++) {
		unsigned limit = total / n + (i < total % n ? 1 : 0);

		atomic_init(&srv->workers[i].conns, 0);
		srv->workers[i].daemon =
			start(srv->app, MHD_USE_NO_LISTEN_SOCKET, NULL,
			      &srv->workers[i], limit);
		if (srv->workers[i].daemon == NULL) {
			snprintf(err, errsize,
				 "cannot start event loop %u of %u", i + 1, n);
			return false;
		}
		srv->nworkers = i + 1;
		srv->workers[i].srv = srv;
		if (external(cfg) &&
		    !zc__loop_start(&srv->workers[i], err, errsize))
			return false;
	}
	return zc__acceptor_start(srv, err, errsize);
}

static void
free_server(struct zc_server *srv)
{
	unsigned i;

	zc__acceptor_stop(srv);
	for (i = 0; i < srv->nworkers; i++) {
		zc__loop_end(&srv->workers[i]);
		MHD_stop_daemon(srv->workers[i].daemon);
	}
	free(srv->workers);
	if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->listen_fd != MHD_INVALID_SOCKET)
		close(srv->listen_fd);
	free(srv);
}

static bool
start_single(struct zc_server *srv, char *err, size_t errsize)
{
	zc_app *app = srv->app;
	struct sockaddr_storage ss;
	struct zc_worker *w;
	struct MHD_Daemon *d;
	unsigned limit = app->cfg.max_connections;
	bool dual;

	if (listen_addr(&app->cfg, &ss, &dual, err, errsize) != 0)
		return false;
	if ((w = srv->workers = calloc(1, sizeof(*w))) == NULL) {
		snprintf(err, errsize, "out of memory");
		return false;
	}
	atomic_init(&w->conns, 0);
	if (dual) {
		/* All interfaces, IPv6 and IPv4; IPv4 alone without IPv6. */
		d = start(app, MHD_USE_DUAL_STACK, NULL, w, limit);
		if (d == NULL)
			d = start(app, 0, NULL, w, limit);
	} else {
		d = start(app, ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0,
			  (const struct sockaddr *)&ss, w, limit);
	}
	if (d == NULL) {
		snprintf(err, errsize,
			 "cannot listen on port %d (in use, or not "
			 "permitted)",
			 app->cfg.port);
		return false;
	}
	w->daemon = d;
	w->srv = srv;
	srv->nworkers = 1;
	return !external(&app->cfg) || zc__loop_start(w, err, errsize);
}

/*
 * Threading mode, chosen by measurement (BENCHMARKS.md): an epoll event
 * loop per thread.  Handlers run on the loop thread that read the request,
 * so there is no hand-off between threads on the hot path; the acceptor
 * touches a connection once, when it arrives.
 */
struct zc_server *
zc__server_start(zc_app *app, char *err, size_t errsize)
{
	struct zc_server *srv = calloc(1, sizeof(*srv));
	bool ok;

	if (srv == NULL) {
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	srv->app = app;
	srv->lfd = -1;
	srv->listen_fd = MHD_INVALID_SOCKET;
	if (app->cfg.threads > 1 && !app->cfg.thread_per_connection)
		ok = start_balanced(srv, err, errsize);
	else
		ok = start_single(srv, err, errsize);
	if (!ok) {
		free_server(srv);
		return NULL;
	}
	running = srv;
	zc__metrics_provider(zc__server_metrics, srv);
	zc__watchdog_start(&srv->watchdog, app->cfg.idle_timeout_s);
	return srv;
}

/* Registered while the server runs; scrapes run on its own threads. */
void
zc__server_metrics(struct zc_buf *o, void *arg)
{
	struct zc_server *srv = arg;
	size_t i;

	zc__buf_printf(o,
		       "# HELP zc_http_requests_in_flight Requests being "
		       "served.\n# TYPE zc_http_requests_in_flight gauge\n"
		       "zc_http_requests_in_flight %ld\n",
		       (long)(atomic_load(&srv->app->inflight) -
			      atomic_load(&answered_unsent)));
	zc__buf_printf(o, "# HELP zc_http_connections_open Client connections "
			  "open, by event loop.\n# TYPE "
			  "zc_http_connections_open gauge\n");
	for (i = 0; i < srv->nworkers; i++)
		zc__buf_printf(o, "zc_http_connections_open{loop=\"%zu\"} %d\n",
			       i, atomic_load(&srv->workers[i].conns));
	zc__loop_metrics(o);
}

void
zc__server_quiesce(struct zc_server *srv)
{
	if (srv->acceptor_running) {
		/* no loop holds the socket: it closes once the acceptor ends */
		zc__acceptor_stop(srv);
		close(srv->lfd);
		srv->lfd = -1;
		return;
	}
	/*
	 * MHD hands the listening socket back; worker threads may still
	 * hold it in their epoll sets, so it is shut down now (new
	 * connections are refused) and closed only after MHD has stopped.
	 */
	srv->listen_fd = zc__loop_quiesce(&srv->workers[0]);
	if (srv->listen_fd != MHD_INVALID_SOCKET)
		shutdown(srv->listen_fd, SHUT_RDWR);
}

void
zc__server_stop(struct zc_server *srv)
{
	zc__watchdog_stop(&srv->watchdog);
	running = NULL;
	free_server(srv); /* its threads have stopped: no scrape runs now */
	zc__metrics_provider_remove(zc__server_metrics, srv);
}
