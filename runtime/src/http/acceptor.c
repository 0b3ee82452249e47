/*
 * acceptor.c - the acceptor thread of the balanced mode: it opens the
 * listening socket itself and hands each new connection to the event loop
 * with the fewest open connections (server_internal.h says why).
 */
#include "server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A listening socket on ss (dual: IPv4 too), or -1 with errno set. */
static int
open_listener(const struct sockaddr_storage *ss, bool dual)
{
	int one = 1, zero = 0, fd, e;
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/*
	 * SO_REUSEADDR only: a restart binds at once despite TIME_WAIT, and
	 * a second process on the port fails instead of sharing it.
	 */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (dual)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
				 sizeof(zero));
	if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
zc__acceptor_listen(struct zc_server *srv, struct sockaddr_storage *ss,
		    bool dual, char *err, size_t errsize)
{
	int port = srv->app->cfg.port;

	srv->lfd = open_listener(ss, dual);
	if (srv->lfd < 0 && dual && errno == EAFNOSUPPORT) {
		/* no IPv6 on this host: every IPv4 interface */
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

		memset(ss, 0, sizeof(*ss));
		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
		a4->sin_port = htons((uint16_t)port);
		srv->lfd = open_listener(ss, false);
	}
	if (srv->lfd < 0) {
		snprintf(err, errsize, "cannot listen on port %d: %s", port,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/* Accept errors that say nothing about the listener: go on at once. */
static bool
accept_transient(int e)
{
	return e == EINTR || e == ECONNABORTED || e == EPROTO || e == EAGAIN ||
	       e == EWOULDBLOCK || e == ENETDOWN || e == ENOPROTOOPT ||
	       e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
	       e == EOPNOTSUPP || e == ENETUNREACH;
}

static unsigned
open_total(struct zc_server *srv)
{
	unsigned i;
	int n = 0;

	for (i = 0; i < srv->nworkers; i++)
		n += atomic_load(&srv->workers[i].conns);
	return n > 0 ? (unsigned)n : 0;
}

static void *
acceptor(void *arg)
{
	struct zc_server *srv = arg;
	long long warned_ns = 0;

	pthread_setname_np(pthread_self(), "zc-accept");
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct zc_worker *w;
		unsigned i, k, best, before;
		int fd, e, least;

		/*
		 * At the limit, the next connection waits in the listen
		 * backlog until one closes, as with MHD's own listener
		 * (accepting it would only have MHD close it).
		 */
		while (open_total(srv) >= srv->limit &&
		       !atomic_load(&srv->quiescing))
			usleep(1000);
		fd = accept4(srv->lfd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			e = errno;
			if (atomic_load(&srv->quiescing))
				break;
			if (accept_transient(e))
				continue;
			/*
			 * Out of descriptors or memory: the connection waits
			 * in the backlog; say so once a second, retry soon.
			 */
			if (zc__now_ns() - warned_ns > 1000000000LL) {
				warned_ns = zc__now_ns();
				zc_warn("accept: %s (retrying)", strerror(e));
			}
			usleep(10000);
			continue;
		}
		before = open_total(srv);
		/* fewest open connections, round-robin among equals */
		best = srv->next % srv->nworkers;
		least = atomic_load(&srv->workers[best].conns);
		for (i = 1; i < srv->nworkers && least > 0; i++) {
			int c;

			k = (srv->next + i) % srv->nworkers;
			c = atomic_load(&srv->workers[k].conns);
			if (c < least) {
				least = c;
				best = k;
			}
		}
		srv->next = best + 1;
		w = &srv->workers[best];
		if (zc__loop_hand_over(w, fd, &ss, len) &&
		    before + 1 >= srv->limit) {
			/*
			 * Near the limit, wait (10 ms at most) for the loop to
			 * count it, so the check above sees it: otherwise
			 * the next accept could pass the limit and MHD would
			 * close that connection instead of leaving it queued.
			 */
			long long until = zc__now_ns() + 10000000LL;

			while (open_total(srv) < before + 1 &&
			       zc__now_ns() < until)
				usleep(100);
		}
	}
	return NULL;
}

bool
zc__acceptor_start(struct zc_server *srv, char *err, size_t errsize)
{
	atomic_init(&srv->quiescing, false);
	if (pthread_create(&srv->acceptor, NULL, acceptor, srv) != 0) {
		snprintf(err, errsize, "cannot start the acceptor thread");
		return false;
	}
	srv->acceptor_running = true;
	return true;
}

/* shutdown(2) wakes the blocked accept4, which then sees quiescing. */
void
zc__acceptor_stop(struct zc_server *srv)
{
	if (!srv->acceptor_running)
		return;
	atomic_store(&srv->quiescing, true);
	shutdown(srv->lfd, SHUT_RDWR);
	pthread_join(srv->acceptor, NULL);
	srv->acceptor_running = false;
}
