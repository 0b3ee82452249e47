/*
 * fake_http.h - a controllable HTTP/1.1 server on 127.0.0.1, in the test's
 * own process, for tests of outbound calls: the downstream a client, an
 * async worker or an example handler talks to.
 *
 * One thread accepts; each connection gets a thread that reads requests
 * (head and Content-Length body, keep-alive) and hands each to the test's
 * answer function, which replies (fh_reply, fh_send_all), misbehaves
 * (fh_reset, fh_wait_quiet, a partial reply) and says whether the
 * connection stays.  What every test wants is here:
 *
 *   counters      accepts (connections), arrived (requests read whole),
 *                 requests (requests recorded)
 *   records       fh_record keeps a request (up to FH_REC_SIZE - 1
 *                 bytes of head and body), when it was recorded and its
 *                 Idempotency-Key; fh_rec_copy, fh_rec_header, fh_rec_time
 *                 read them under the lock
 *   delay_ms      an answer may wait first (fh_delay), ending early if
 *                 the client goes away or the fake stops
 *   canned        fh_start_canned: each connection gets one whole raw
 *                 response (the first may get another) and is closed; no
 *                 response: it is held, silent, until the client leaves
 *
 * A test keeps a struct fake_http (static, or on its stack) and calls
 * fh_start(&f, answer) or fh_start_canned, then fh_stop (safe twice).
 * Counters and records are safe to read after fh_stop, or atomically /
 * under f.mu before.  closed_port and set_service_port point a service at
 * the fake, or at nothing.
 *
 * Everything is static inline, like testutil.h (which this includes).
 */
#ifndef ZC_FAKE_HTTP_H
#define ZC_FAKE_HTTP_H

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define FH_MAX_CONNS 64
#define FH_MAX_RECS  64
#define FH_REC_SIZE  8192
#define FH_BUF_SIZE  65536

struct fake_http;

/* One connection, and the request at the start of buf. */
struct fh_conn {
	struct fake_http *f;
	int slot, fd;
	size_t len;                /* bytes in buf */
	size_t head_len, body_len; /* of the current request */
	char buf[FH_BUF_SIZE];     /* NUL after the received bytes */
};

/*
 * Answers the request at c->buf (c->head_len + c->body_len bytes).
 * Returns 0 to keep the connection for the next request, -1 to close it.
 */
typedef int (*fh_answer_fn)(struct fake_http *f, struct fh_conn *c);

struct fh_rec {
	long long t_ns;        /* now_ns() when recorded */
	size_t head_len;       /* the body starts at req + head_len */
	char key[128];         /* Idempotency-Key, or "" */
	char req[FH_REC_SIZE]; /* head and body, NUL-terminated */
};

/* About 530 KB, nearly all records: static, or on a test's stack. */
struct fake_http {
	int lfd, port;
	pthread_t accept_thr;
	atomic_bool stop;
	pthread_mutex_t mu;
	int fds[FH_MAX_CONNS];
	pthread_t thr[FH_MAX_CONNS];
	int nconns;
	fh_answer_fn answer;
	const char *first_reply, *reply; /* fh_start_canned's */
	atomic_int accepts;              /* connections accepted */
	atomic_int arrived;  /* requests read whole, answered or not */
	atomic_int requests; /* requests recorded (fh_record) */
	atomic_int delay_ms; /* fh_delay's wait */
	struct fh_rec recs[FH_MAX_RECS]; /* the first requests recorded */
};

/* ---- sending ---- */

static inline int
fh_send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * A JSON reply: status, reason, extra header lines (each ending "\r\n"),
 * and len bytes of body, which no_body leaves out (an answer to HEAD
 * keeps its Content-Length).  Head and body go in one send: two small
 * writes would meet Nagle and the client's delayed ACK, 40 ms a reply.
 */
static inline int
fh_reply(int fd, int status, const char *reason, const char *extra,
	 const char *body, size_t len, bool no_body)
{
	size_t cap = 256 + strlen(reason) + strlen(extra) + len;
	char *buf = malloc(cap);
	int n, rc;

	if (buf == NULL)
		return -1;
	n = snprintf(buf, cap,
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n%s\r\n",
		     status, reason, len, extra);
	if (n < 0 || (size_t)n + len >= cap) {
		free(buf);
		return -1;
	}
	if (!no_body) {
		memcpy(buf + n, body, len);
		n += (int)len;
	}
	rc = fh_send_all(fd, buf, (size_t)n);
	free(buf);
	return rc;
}

/* Makes the close that follows an RST instead of a FIN; returns -1 (close
 * the connection). */
static inline int
fh_reset(struct fh_conn *c)
{
	struct linger lg = {1, 0};

	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	return -1;
}

/* ---- waiting ---- */

/* Waits ms (-1: for ever) on a connection: 0 when the time is up, -1 when
 * the client sent or closed first, or the fake stopped. */
static inline int
fh_wait_quiet(struct fake_http *f, int fd, long ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	long long end = now_ns() + ms * 1000000LL;

	while (!atomic_load(&f->stop)) {
		long left = (long)((end - now_ns()) / 1000000LL);

		if (ms >= 0 && left <= 0)
			return 0;
		if (poll(&p, 1, ms >= 0 && left < 20 ? (int)left : 20) != 0)
			return -1;
	}
	return -1;
}

/* Waits f->delay_ms, if set: fh_wait_quiet's answer. */
static inline int
fh_delay(struct fake_http *f, struct fh_conn *c)
{
	int ms = atomic_load(&f->delay_ms);

	return ms > 0 ? fh_wait_quiet(f, c->fd, ms) : 0;
}

/* ---- reading and recording ---- */

/*
 * Reads one request (head and Content-Length body) to the start of c->buf
 * and sets c->head_len and c->body_len.  -1 when the client closed, or sent
 * more than the buffer holds.
 */
static inline int
fh_read_request(struct fh_conn *c)
{
	const char *end, *cl;
	ssize_t n;

	c->body_len = 0;
	for (;;) {
		c->buf[c->len] = '\0';
		if ((end = strstr(c->buf, "\r\n\r\n")) != NULL)
			break;
		if (c->len >= sizeof(c->buf) - 1)
			return -1;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
			 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
	c->head_len = (size_t)(end - c->buf) + 4;
	cl = strcasestr(c->buf, "\r\nContent-Length:");
	if (cl != NULL && cl < end)
		c->body_len = strtoul(cl + 17, NULL, 10);
	if (c->head_len + c->body_len >= sizeof(c->buf))
		return -1;
	while (c->len < c->head_len + c->body_len) {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
			 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
	c->buf[c->len] = '\0';
	return 0;
}

/* The values of header name in the head of req, joined by "|"; "" when
 * there is none. */
static inline void
fh_header(const char *req, const char *name, char *out, size_t size)
{
	const char *p, *end, *v, *e;
	char pat[64];
	size_t o = 0, n;

	out[0] = '\0';
	snprintf(pat, sizeof(pat), "\r\n%s:", name);
	end = strstr(req, "\r\n\r\n");
	if (end == NULL)
		end = req + strlen(req);
	for (p = strcasestr(req, pat); p != NULL && p < end;
	     p = strcasestr(p + 2, pat)) {
		v = p + strlen(pat);
		while (*v == ' ')
			v++;
		e = strstr(v, "\r\n");
		n = e != NULL ? (size_t)(e - v) : strlen(v);
		if (o > 0 && o + 1 < size)
			out[o++] = '|';
		if (o + n >= size)
			n = size - o - 1;
		memcpy(out + o, v, n);
		o += n;
		out[o] = '\0';
	}
}

/* Records the request at c (numbered from 0, the number returned): its
 * time, its Idempotency-Key, and its text, as far as they fit. */
static inline int
fh_record(struct fake_http *f, const struct fh_conn *c)
{
	size_t used = c->head_len + c->body_len, k;
	struct fh_rec *r;
	int n;

	pthread_mutex_lock(&f->mu);
	n = atomic_fetch_add(&f->requests, 1);
	if (n < FH_MAX_RECS) {
		r = &f->recs[n];
		k = used < sizeof(r->req) - 1 ? used : sizeof(r->req) - 1;
		r->t_ns = now_ns();
		memcpy(r->req, c->buf, k);
		r->req[k] = '\0';
		r->head_len = c->head_len < k ? c->head_len : k;
		fh_header(r->req, "Idempotency-Key", r->key, sizeof(r->key));
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* A recorded request's body (a pointer into the record). */
static inline const char *
fh_rec_body(const struct fh_rec *r)
{
	return r->req + r->head_len;
}

/* A copy of recorded request i, cut to size. */
static inline void
fh_rec_copy(struct fake_http *f, int i, char *out, size_t size)
{
	size_t n;

	pthread_mutex_lock(&f->mu);
	n = strlen(f->recs[i].req);
	if (n >= size)
		n = size - 1;
	memcpy(out, f->recs[i].req, n);
	out[n] = '\0';
	pthread_mutex_unlock(&f->mu);
}

/* Header name's values in recorded request i, joined by "|", or "". */
static inline void
fh_rec_header(struct fake_http *f, int i, const char *name, char *out,
	      size_t size)
{
	pthread_mutex_lock(&f->mu);
	fh_header(f->recs[i].req, name, out, size);
	pthread_mutex_unlock(&f->mu);
}

/* When request i was recorded (now_ns). */
static inline long long
fh_rec_time(struct fake_http *f, int i)
{
	long long t;

	pthread_mutex_lock(&f->mu);
	t = f->recs[i].t_ns;
	pthread_mutex_unlock(&f->mu);
	return t;
}

/* ---- the canned answer ---- */

/*
 * Records the request, waits delay_ms, then sends first_reply (to the first
 * request) or reply, whole, and closes.  With no reply, holds the
 * connection without a word until the client leaves or the fake stops.
 */
static inline int
fh_answer_canned(struct fake_http *f, struct fh_conn *c)
{
	int n = fh_record(f, c);
	const char *reply;

	if (fh_delay(f, c) != 0)
		return -1;
	reply = n == 0 && f->first_reply != NULL ? f->first_reply : f->reply;
	if (reply != NULL)
		fh_send_all(c->fd, reply, strlen(reply));
	else
		fh_wait_quiet(f, c->fd, -1);
	return -1;
}

/* ---- the server ---- */

static inline void *
fh_conn_main(void *arg)
{
	struct fh_conn *c = arg;
	struct fake_http *f = c->f;
	size_t used;

	while (fh_read_request(c) == 0) {
		atomic_fetch_add(&f->arrived, 1);
		if (f->answer(f, c) != 0)
			break;
		used = c->head_len + c->body_len;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
	/* Close under the lock, so fh_stop never shuts down a reused fd. */
	pthread_mutex_lock(&f->mu);
	f->fds[c->slot] = -1;
	close(c->fd);
	pthread_mutex_unlock(&f->mu);
	free(c);
	return NULL;
}

static inline void *
fh_accept_main(void *arg)
{
	struct fake_http *f = arg;
	struct pollfd pfd = {f->lfd, POLLIN, 0};
	struct fh_conn *c;
	int fd;

	while (!atomic_load(&f->stop)) {
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if ((fd = accept(f->lfd, NULL, NULL)) < 0)
			continue;
		atomic_fetch_add(&f->accepts, 1);
		pthread_mutex_lock(&f->mu);
		if (f->nconns == FH_MAX_CONNS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			pthread_mutex_unlock(&f->mu);
			close(fd);
			continue;
		}
		c->f = f;
		c->fd = fd;
		c->slot = f->nconns;
		f->fds[c->slot] = fd;
		if (pthread_create(&f->thr[c->slot], NULL, fh_conn_main, c) !=
		    0) {
			f->fds[c->slot] = -1;
			close(fd);
			free(c);
		} else {
			f->nconns++;
		}
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

/* A listening socket on 127.0.0.1 and a port the kernel chose. */
static inline int
listen_loopback(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A loopback port nothing listens on: bound once, then closed. */
static inline int
closed_port(void)
{
	int port, fd = listen_loopback(&port);

	close(fd);
	return port;
}

/* Points service name at 127.0.0.1:port: <NAME>_URL, the name in upper
 * case with '-' as '_'. */
static inline void
set_service_port(const char *name, int port)
{
	char var[128], url[64];
	size_t i;

	for (i = 0; name[i] != '\0' && i < sizeof(var) - 5; i++)
		var[i] = name[i] == '-' ? '_'
					: (char)toupper((unsigned char)name[i]);
	snprintf(var + i, sizeof(var) - i, "_URL");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	setenv(var, url, 1);
}

/* Starts f, with its fields already set, listening and accepting. */
static inline void
fh_run(struct fake_http *f)
{
	pthread_mutex_init(&f->mu, NULL);
	f->lfd = listen_loopback(&f->port);
	ck_assert_int_eq(
		pthread_create(&f->accept_thr, NULL, fh_accept_main, f), 0);
}

/* A fresh fake whose requests answer() answers. */
static inline void
fh_start(struct fake_http *f, fh_answer_fn answer)
{
	memset(f, 0, sizeof(*f));
	f->answer = answer;
	fh_run(f);
}

/* A fresh fake with canned replies (fh_answer_canned); first_reply may be
 * NULL (reply for all), reply too (hold every connection). */
static inline void
fh_start_canned(struct fake_http *f, const char *first_reply, const char *reply)
{
	memset(f, 0, sizeof(*f));
	f->answer = fh_answer_canned;
	f->first_reply = first_reply;
	f->reply = reply;
	fh_run(f);
}

/* Stops accepting, ends every connection and waits for its thread.  A
 * second call does nothing. */
static inline void
fh_stop(struct fake_http *f)
{
	int i, n;

	if (atomic_exchange(&f->stop, true))
		return;
	pthread_join(f->accept_thr, NULL);
	close(f->lfd);
	pthread_mutex_lock(&f->mu);
	n = f->nconns;
	for (i = 0; i < n; i++)
		if (f->fds[i] >= 0)
			shutdown(f->fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&f->mu);
	for (i = 0; i < n; i++)
		pthread_join(f->thr[i], NULL);
	pthread_mutex_destroy(&f->mu);
}

#endif /* ZC_FAKE_HTTP_H */
