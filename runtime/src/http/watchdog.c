/*
 * watchdog.c - the slow-client watchdog: every connection tracked from
 * accept, with the request on it still receiving its body, and a thread
 * that cuts the ones libmicrohttpd's idle timeout would let linger.
 */
#include "server_internal.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/*
 * libmicrohttpd's only clock is an idle timeout that every byte resets, so
 * a client trickling its headers a byte at a time (slowloris) holds a
 * connection for as long as it likes, and a client that half-closes
 * mid-body may not be noticed.  Twice a second the watchdog shuts down the
 * socket of any connection whose request headers have not all arrived
 * within the idle timeout (from accept, or from the end of its previous
 * request), or whose client has gone while its body was still due.
 * shutdown(2) only makes MHD's next read fail, so MHD itself closes and
 * frees the connection.
 *
 * The requests still waiting for their body also let shutdown tell a slow
 * upload (worth waiting for) from a client that went away mid-body without
 * libmicrohttpd noticing (not worth holding SIGTERM for).
 *
 * The socket is kept here, taken when MHD announces the connection, so
 * that only server.c need talk to libmicrohttpd.  Striped lists keep the
 * locks uncontended on the request path.
 */
struct zc_track {
	struct zc_track *prev, *next;
	int fd; /* the connection's socket, -1 if MHD did not say */
	_Atomic long long since_ns;
	atomic_bool in_request;
	atomic_bool cut;
	zc_req *receiving; /* the request waiting for its body, or NULL */
};

#define STRIPES 16
static struct {
	pthread_mutex_t mu;
	struct zc_track *head;
} conns[STRIPES];
static pthread_once_t conns_once = PTHREAD_ONCE_INIT;

static void
conns_init(void)
{
	int i;

	for (i = 0; i < STRIPES; i++)
		pthread_mutex_init(&conns[i].mu, NULL);
}

static unsigned
stripe(const struct zc_track *t)
{
	return (unsigned)(((uintptr_t)t >> 6) % STRIPES);
}

struct zc_track *
zc__track_open(int fd)
{
	struct zc_track *t;
	unsigned i;

	pthread_once(&conns_once, conns_init);
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->fd = fd;
	atomic_store(&t->since_ns, zc__now_ns());
	i = stripe(t);
	pthread_mutex_lock(&conns[i].mu);
	t->next = conns[i].head;
	if (t->next != NULL)
		t->next->prev = t;
	conns[i].head = t;
	pthread_mutex_unlock(&conns[i].mu);
	return t;
}

void
zc__track_close(struct zc_track *t)
{
	unsigned i;

	if (t == NULL)
		return;
	i = stripe(t);
	pthread_mutex_lock(&conns[i].mu);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		conns[i].head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&conns[i].mu);
	free(t);
}

/*
 * The loop thread that serves the connection writes in_request and
 * since_ns without the lock; the watchdog reads them under it.
 */
void
zc__track_request(struct zc_track *t)
{
	if (t != NULL)
		atomic_store(&t->in_request, true);
}

void
zc__track_idle(struct zc_track *t)
{
	if (t == NULL)
		return;
	atomic_store(&t->since_ns, zc__now_ns());
	atomic_store(&t->in_request, false);
}

void
zc__track_body(struct zc_track *t, zc_req *req)
{
	unsigned i;

	if (t == NULL)
		return;
	i = stripe(t);
	atomic_store(&req->activity_ns, zc__now_ns());
	pthread_mutex_lock(&conns[i].mu);
	t->receiving = req;
	req->receiving = true;
	pthread_mutex_unlock(&conns[i].mu);
}

void
zc__track_body_done(struct zc_track *t, zc_req *req)
{
	unsigned i;

	/* req->receiving is only written by this thread: no lock to read */
	if (t == NULL || !req->receiving)
		return;
	i = stripe(t);
	pthread_mutex_lock(&conns[i].mu);
	t->receiving = NULL;
	req->receiving = false;
	pthread_mutex_unlock(&conns[i].mu);
}

/* Has the peer closed (FIN or RST)?  A peek, so MHD's stream is untouched. */
static bool
peer_gone(const struct zc_track *t)
{
	char c;
	ssize_t n;

	if (t->fd < 0)
		return false;
	n = recv(t->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			  errno != EINTR);
}

/* Is t's request waiting for a body that has not come for quiet_ns, or
 * that its client will never send?  Under t's stripe lock. */
static bool
stalled(const struct zc_track *t, long long now, long long quiet_ns)
{
	if (t->receiving == NULL)
		return false;
	return now - atomic_load(&t->receiving->activity_ns) > quiet_ns ||
	       peer_gone(t);
}

long
zc__server_stalled(long long quiet_ns)
{
	long long now = zc__now_ns();
	struct zc_track *t;
	long n = 0;
	int i;

	pthread_once(&conns_once, conns_init);
	for (i = 0; i < STRIPES; i++) {
		pthread_mutex_lock(&conns[i].mu);
		for (t = conns[i].head; t != NULL; t = t->next)
			if (stalled(t, now, quiet_ns))
				n++;
		pthread_mutex_unlock(&conns[i].mu);
	}
	return n;
}

static void
cut(struct zc_track *t, const char *why)
{
	if (t->fd < 0 || atomic_exchange(&t->cut, true))
		return;
	shutdown(t->fd, SHUT_RDWR);
	zc_warn("closing a connection: %s", why);
}

static void *
watchdog(void *arg)
{
	struct zc_watchdog *wd = arg;
	struct timespec tick = {0, 100 * 1000000L};
	struct zc_track *t;
	unsigned ticks = 0;
	int i;

	pthread_setname_np(pthread_self(), "zc-watchdog");
	for (; !atomic_load(&wd->stopping); nanosleep(&tick, NULL)) {
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

		for (i = 0; i < STRIPES; i++) {
			pthread_mutex_lock(&conns[i].mu);
			for (t = conns[i].head; t != NULL; t = t->next) {
				if (!atomic_load(&t->in_request) &&
				    now - atomic_load(&t->since_ns) >
					    wd->idle_ns)
					cut(t, "request headers not complete "
					       "within the idle timeout");
				if (t->receiving != NULL && peer_gone(t))
					cut(t, "client left before sending its "
					       "whole body");
			}
			pthread_mutex_unlock(&conns[i].mu);
		}
	}
	return NULL;
}

void
zc__watchdog_start(struct zc_watchdog *wd, unsigned idle_timeout_s)
{
	pthread_once(&conns_once, conns_init);
	wd->idle_ns = (long long)idle_timeout_s * 1000000000LL;
	atomic_init(&wd->stopping, false);
	/* without it the server still serves, only less guarded */
	wd->running = pthread_create(&wd->thread, NULL, watchdog, wd) == 0;
}

void
zc__watchdog_stop(struct zc_watchdog *wd)
{
	atomic_store(&wd->stopping, true);
	if (wd->running)
		pthread_join(wd->thread, NULL);
	wd->running = false;
}
