/*
 * loops.c - the server's event loops: a thread per loop that drives its
 * libmicrohttpd daemon in external epoll mode (MHD's epoll set in the
 * loop's, MHD_run when it is ready and when MHD_get_timeout says) and
 * runs the handlers on fibers (server.c), and the hand-over of new
 * connections and of quiescing to the loop's thread, which alone calls
 * into its daemon.
 */
#include "server_internal.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

/* The loop this thread drives, when it is a loop thread. */
static _Thread_local struct zc_worker *my_worker;

struct zc_worker *
zc__loop_worker(void)
{
	return my_worker;
}

static void
mhd_run(struct zc_worker *w)
{
	MHD_UNSIGNED_LONG_LONG ms;

	w->run_mhd = false;
	(void)MHD_run(w->daemon);
	if (MHD_get_timeout(w->daemon, &ms) == MHD_YES)
		zc__timer_arm(w->loop, &w->mhd_timer,
			      zc__now_ns() + (long long)ms * 1000000LL);
	else
		zc__timer_cancel(w->loop, &w->mhd_timer);
}

static void
on_mhd_ready(struct zc_watch *watch, uint32_t events)
{
	(void)events;
	mhd_run((struct zc_worker *)((char *)watch -
				     offsetof(struct zc_worker, mhd_watch)));
}

static void
on_mhd_timer(struct zc_timer *t)
{
	mhd_run((struct zc_worker *)((char *)t -
				     offsetof(struct zc_worker, mhd_timer)));
}

/* Before the loop waits: connections resumed, added or closed this turn
 * are served now (MHD_resume_connection's rule for external polling). */
static void
loop_turn(void *arg)
{
	struct zc_worker *w = arg;
	int i;

	for (i = 0; i < 8 && w->run_mhd; i++)
		mhd_run(w);
}

static void *
loop_thread(void *arg)
{
	struct zc_worker *w = arg;

	pthread_setname_np(pthread_self(), "zc-loop");
	my_worker = w;
	mhd_run(w);
	zc__loop_run(w->loop);
	my_worker = NULL;
	return NULL;
}

/* The loop of w and its thread; false with err set. */
bool
zc__loop_start(struct zc_worker *w, char *err, size_t errsize)
{
	const union MHD_DaemonInfo *di =
		MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD);

	if (di == NULL || (w->loop = zc__loop_new()) == NULL) {
		snprintf(err, errsize, "cannot create an event loop");
		return false;
	}
	w->mhd_watch.cb = on_mhd_ready;
	w->mhd_timer.cb = on_mhd_timer;
	zc__loop_on_turn(w->loop, loop_turn, w);
	if (zc__loop_watch(w->loop, &w->mhd_watch, di->epoll_fd, EPOLLIN) !=
		    0 ||
	    pthread_create(&w->thread, NULL, loop_thread, w) != 0) {
		snprintf(err, errsize, "cannot start an event loop thread");
		zc__loop_free(w->loop);
		w->loop = NULL;
		return false;
	}
	w->thread_running = true;
	return true;
}

/* Stop w's loop; its thread frees it (and what calls out made of it). */
void
zc__loop_end(struct zc_worker *w)
{
	if (w->thread_running) {
		zc__loop_stop(w->loop);
		pthread_join(w->thread, NULL);
		w->thread_running = false;
	}
	if (w->loop != NULL) {
		zc__loop_free(w->loop);
		w->loop = NULL;
	}
}

/* fn(w) on w's loop thread, waited for. */
struct on_loop {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	struct zc_worker *w;
	MHD_socket fd;
};

static void
quiesce_on_loop(void *arg)
{
	struct on_loop *c = arg;

	c->fd = MHD_quiesce_daemon(c->w->daemon);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

int
zc__loop_quiesce(struct zc_worker *w)
{
	struct on_loop c = {.mu = PTHREAD_MUTEX_INITIALIZER,
			    .cv = PTHREAD_COND_INITIALIZER,
			    .w = w,
			    .fd = MHD_INVALID_SOCKET};

	if (!w->thread_running || zc__loop_post(w->loop, quiesce_on_loop, &c))
		return MHD_quiesce_daemon(w->daemon);
	pthread_mutex_lock(&c.mu);
	while (!c.done)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
	return c.fd;
}

/* A new connection on its way to a loop. */
struct handed {
	struct zc_worker *w;
	int fd;
	socklen_t len;
	struct sockaddr_storage ss;
};

/* On the loop's thread, which alone touches its daemon. */
static void
add_on_loop(void *arg)
{
	struct handed *h = arg;

	/* on failure MHD has closed fd and said why */
	(void)MHD_add_connection(h->w->daemon, h->fd,
				 (const struct sockaddr *)&h->ss, h->len);
	h->w->run_mhd = true;
	free(h);
}

bool
zc__loop_hand_over(struct zc_worker *w, int fd,
		   const struct sockaddr_storage *ss, socklen_t len)
{
	struct handed *h;

	if (w->loop == NULL)
		return MHD_add_connection(w->daemon, fd,
					  (const struct sockaddr *)ss,
					  len) == MHD_YES;
	if ((h = malloc(sizeof(*h))) != NULL) {
		h->w = w;
		h->fd = fd;
		h->len = len;
		memcpy(&h->ss, ss, sizeof(*ss));
	}
	if (h == NULL || zc__loop_post(w->loop, add_on_loop, h) != 0) {
		free(h);
		close(fd);
		zc_warn("accept: out of memory; connection closed");
		return false;
	}
	return true;
}
