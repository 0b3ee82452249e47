/*
 * server.c - the libmicrohttpd side: an epoll event loop on a pool of
 * threads, each request's body gathered under its limit, handed to
 * zc__dispatch, and the response given to MHD without a copy.
 *
 * Threading mode, chosen by measurement (BENCHMARKS.md): epoll with an
 * internal thread pool.  Handlers run on the pool thread that read the
 * request, so there is no hand-off between threads on the hot path.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <malloc.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct zc_server {
	struct MHD_Daemon *daemon;
	zc_app *app;
	pthread_t watchdog;
	bool watchdog_running;
	atomic_bool stopping;
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

	long long ns = zc__now_ns() - req->start_ns;

	/*
	 * The handler's lines, the access line and the metrics, all before
	 * the answer goes: a client that has its answer finds it logged and
	 * counted (a scrape right after it included it).
	 */
	req->status = res->status;
	zc__metrics_request(req->route_id, req->method, res->status, ns);
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

static enum MHD_Result
respond(struct MHD_Connection *conn, zc_app *app, zc_req *req)
{
	zc_res res;
	enum MHD_Result ret;

	zc__log_hold();
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

/*
 * Requests still waiting for their body, so that shutdown can tell a slow
 * upload (worth waiting for) from a client that went away mid-body without
 * libmicrohttpd noticing (not worth holding SIGTERM for).  Striped lists
 * keep the locks uncontended on the request path.
 */
#define RECV_STRIPES 16
static struct {
	pthread_mutex_t mu;
	zc_req *head;
} receiving[RECV_STRIPES];
static pthread_once_t recv_once = PTHREAD_ONCE_INIT;

static void
recv_init(void)
{
	int i;

	for (i = 0; i < RECV_STRIPES; i++)
		pthread_mutex_init(&receiving[i].mu, NULL);
}

static unsigned
stripe(const zc_req *req)
{
	return (unsigned)(((uintptr_t)req >> 6) % RECV_STRIPES);
}

static void
recv_add(zc_req *req)
{
	unsigned i = stripe(req);

	atomic_store(&req->activity_ns, zc__now_ns());
	pthread_mutex_lock(&receiving[i].mu);
	req->recv_prev = NULL;
	req->recv_next = receiving[i].head;
	if (req->recv_next != NULL)
		req->recv_next->recv_prev = req;
	receiving[i].head = req;
	req->receiving = true;
	pthread_mutex_unlock(&receiving[i].mu);
}

static void
recv_remove(zc_req *req)
{
	unsigned i = stripe(req);

	if (!req->receiving)
		return;
	pthread_mutex_lock(&receiving[i].mu);
	if (req->recv_prev != NULL)
		req->recv_prev->recv_next = req->recv_next;
	else
		receiving[i].head = req->recv_next;
	if (req->recv_next != NULL)
		req->recv_next->recv_prev = req->recv_prev;
	req->receiving = false;
	pthread_mutex_unlock(&receiving[i].mu);
}

/* Has the peer closed (FIN or RST)?  A peek, so MHD's stream is untouched. */
static bool
peer_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	char c;
	ssize_t n;

	if (ci == NULL)
		return false;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			  errno != EINTR);
}

long
zc__server_stalled(long long quiet_ns)
{
	long long now = zc__now_ns();
	long n = 0;
	zc_req *r;
	int i;

	pthread_once(&recv_once, recv_init);
	for (i = 0; i < RECV_STRIPES; i++) {
		pthread_mutex_lock(&receiving[i].mu);
		for (r = receiving[i].head; r != NULL; r = r->recv_next)
			if (now - atomic_load(&r->activity_ns) > quiet_ns ||
			    (r->conn != NULL && peer_gone(r->conn)))
				n++;
		pthread_mutex_unlock(&receiving[i].mu);
	}
	return n;
}

/*
 * Connection watchdog.  libmicrohttpd's only clock is an idle timeout that
 * every byte resets, so a client trickling its headers a byte at a time
 * (slowloris) holds a connection for as long as it likes, and a client that
 * half-closes mid-body may not be noticed.  Every connection is tracked from
 * accept; twice a second a thread shuts down the socket of any connection
 * whose request headers have not all arrived within the idle timeout (from
 * accept, or from the end of its previous request), or whose client has
 * gone while its body was still due.  shutdown(2) only makes MHD's next
 * read fail, so MHD itself closes and frees the connection.
 */
struct conn_track {
	struct conn_track *prev, *next;
	struct MHD_Connection *conn;
	_Atomic long long since_ns;
	atomic_bool in_request;
	atomic_bool cut;
};

static struct {
	pthread_mutex_t mu;
	struct conn_track *head;
} conns[RECV_STRIPES];

static void
conns_init(void)
{
	int i;

	for (i = 0; i < RECV_STRIPES; i++)
		pthread_mutex_init(&conns[i].mu, NULL);
}

static pthread_once_t conns_once = PTHREAD_ONCE_INIT;

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	      enum MHD_ConnectionNotificationCode toe)
{
	struct conn_track *t;
	unsigned i;

	(void)cls;
	pthread_once(&conns_once, conns_init);
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		t = calloc(1, sizeof(*t));
		*socket_context = t;
		if (t == NULL)
			return;
		t->conn = conn;
		atomic_store(&t->since_ns, zc__now_ns());
		i = (unsigned)(((uintptr_t)t >> 6) % RECV_STRIPES);
		pthread_mutex_lock(&conns[i].mu);
		t->next = conns[i].head;
		if (t->next != NULL)
			t->next->prev = t;
		conns[i].head = t;
		pthread_mutex_unlock(&conns[i].mu);
		return;
	}
	t = *socket_context;
	if (t == NULL)
		return;
	i = (unsigned)(((uintptr_t)t >> 6) % RECV_STRIPES);
	pthread_mutex_lock(&conns[i].mu);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		conns[i].head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&conns[i].mu);
	free(t);
	*socket_context = NULL;
}

static struct conn_track *
track_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

static void
cut(struct conn_track *t, const char *why)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
		t->conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (ci == NULL || atomic_exchange(&t->cut, true))
		return;
	shutdown(ci->connect_fd, SHUT_RDWR);
	zc_warn("closing a connection: %s", why);
}

static void *
watchdog(void *arg)
{
	struct zc_server *srv = arg;
	long long limit =
		(long long)srv->app->cfg.idle_timeout_s * 1000000000LL;
	struct timespec tick = {0, 100 * 1000000L};
	struct conn_track *t;
	unsigned ticks = 0;
	zc_req *r;
	int i;

	for (; !atomic_load(&srv->stopping); nanosleep(&tick, NULL)) {
		long long now = zc__now_ns();

		/* lines held by a handler that blocks where we cannot see */
		zc__log_sweep();
		/*
		 * Every 5 s, hand back to the kernel the free pages glibc's
		 * per-thread arenas keep: requests allocate on one thread and
		 * free on another (idempotency entries, async calls), and the
		 * arenas' free memory otherwise stays resident.  It takes
		 * 50-130 us; balance-manager under the benchmark's load stays
		 * at 18.7 MiB instead of growing past 21 (BENCHMARKS.md).
		 */
		if (ticks % 50 == 49)
			malloc_trim(0);
		if (ticks++ % 5 != 0)
			continue; /* connections: twice a second */

		for (i = 0; i < RECV_STRIPES; i++) {
			pthread_mutex_lock(&conns[i].mu);
			for (t = conns[i].head; t != NULL; t = t->next)
				if (!atomic_load(&t->in_request) &&
				    now - atomic_load(&t->since_ns) > limit)
					cut(t, "request headers not complete "
					       "within the idle timeout");
			pthread_mutex_unlock(&conns[i].mu);
			pthread_mutex_lock(&receiving[i].mu);
			for (r = receiving[i].head; r != NULL; r = r->recv_next)
				if (r->conn != NULL && peer_gone(r->conn) &&
				    (t = track_of(r->conn)) != NULL)
					cut(t, "client left before sending its "
					       "whole body");
			pthread_mutex_unlock(&receiving[i].mu);
		}
	}
	return NULL;
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
		struct conn_track *track;
		const char *cl, *ua;

		req = malloc(sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		zc__req_init(req, app, method, url);
		req->conn = conn;
		*con_cls = req;
		if ((track = track_of(conn)) != NULL)
			atomic_store(&track->in_request, true);
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
		if (framing_checks(conn, req))
			return respond(conn, app, req);
		/* Refuse an announced oversized body before reading it. */
		cl = MHD_lookup_connection_value(
			conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && strtoull(cl, NULL, 10) > app->cfg.max_body) {
			req->too_large = true;
			return respond(conn, app, req);
		}
		pthread_once(&recv_once, recv_init);
		recv_add(req);
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
			if (req->discarded >
			    4 * app->cfg.max_body + (1 << 20)) {
				zc_warn("%s %s: body far over the %zu-byte "
					"limit; closing the connection",
					req->method, req->path,
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
	recv_remove(req);
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

	if (req == NULL)
		return;
	/* answered (or abandoned): no longer in flight */
	recv_remove(req);
	atomic_fetch_sub(&app->inflight, 1);
	/* an answered request was logged and counted in queue() */
	if (req->status == 0)
		zc_warn("%s %s: connection ended before a response (%s)",
			req->method, req->path,
			toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED
				? "timeout"
				: "client went away");
	{
		/* the next request's headers are timed from now */
		struct conn_track *t = track_of(conn);
		if (t != NULL) {
			atomic_store(&t->since_ns, zc__now_ns());
			atomic_store(&t->in_request, false);
		}
	}
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
	struct MHD_OptionItem ops[12];
	int n = 0;

	/* thread per connection uses poll(); the pool uses epoll */
	if (cfg->thread_per_connection)
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else
		flags |= getenv("ZC_POLL") ? MHD_USE_POLL : MHD_USE_EPOLL;
	if (cfg->threads > 1 && !cfg->thread_per_connection)
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
						   cfg->threads, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
					   cfg->idle_timeout_s, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
					   (intptr_t)cfg->max_header, NULL};
	if (cfg->max_connections > 0)
		ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
						   cfg->max_connections, NULL};
	ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTENING_ADDRESS_REUSE,
					   1, NULL};
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
				on_connection, NULL, MHD_OPTION_ARRAY, ops,
				MHD_OPTION_END);
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
		if (inet_pton(AF_INET, app->cfg.listen_address, &a4.sin_addr) ==
		    1) {
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
			snprintf(
				err, errsize,
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
	pthread_once(&recv_once, recv_init);
	pthread_once(&conns_once, conns_init);
	atomic_init(&srv->stopping, false);
	srv->watchdog_running =
		pthread_create(&srv->watchdog, NULL, watchdog, srv) == 0;
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
	atomic_store(&srv->stopping, true);
	if (srv->watchdog_running)
		pthread_join(srv->watchdog, NULL);
	MHD_stop_daemon(srv->daemon);
	if (srv->listen_fd != MHD_INVALID_SOCKET)
		close(srv->listen_fd);
	running = NULL;
	free(srv);
}
