/*
 * loop.c - the event loop of a server thread (loop.h): epoll for the
 * descriptors of libmicrohttpd and libcurl, a heap of timers, a queue
 * other threads post work to, and the tasks (handlers on fibers) that
 * wait on them.
 *
 * A task's turn is timed: a handler that holds its loop longer than
 * ZC_LOOP_BLOCK_WARN_MS without waiting (a sleep, a file, a lock, a store
 * transaction: what the runtime cannot suspend) delays every other
 * connection of the loop, and is counted and reported.
 */
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_EVENTS 64

struct posted {
	struct posted *next;
	void (*fn)(void *arg);
	void *arg;
};

struct hook {
	struct hook *next;
	void (*fn)(void *arg);
	void *arg;
};

struct zc_loop {
	int epfd;
	struct zc_watch wake; /* an eventfd: posts and stop */
	atomic_bool stopping;
	pthread_mutex_t mu; /* guards the posted queue */
	struct posted *post_head, **post_tail;
	struct zc_timer **heap;
	size_t nheap, capheap;
	struct zc_task *ready_head, **ready_tail;
	void (*turn)(void *arg);
	void *turn_arg;
	/* the batch epoll_wait returned, while it is dispatched */
	struct epoll_event *batch;
	int batch_next, batch_n;
	struct hook *close_hooks;
};

static _Thread_local struct zc_loop *cur_loop;
static _Thread_local struct zc_task *cur_task;

/* What the loops were held for, over all loops. */
static atomic_ulong blocked_total;
static _Atomic unsigned long long blocked_us;
static _Atomic long long warned_ns;

long
zc__loop_block_warn_ms(void)
{
	static _Atomic long cached = -1;
	long v = atomic_load_explicit(&cached, memory_order_relaxed);
	char err[256];

	if (v >= 0)
		return v;
	/* a bad value was reported by the configuration check at start */
	if (zc__env_long("ZC_LOOP_BLOCK_WARN_MS", 0, 3600000, &v, err,
			 sizeof(err)) != 0)
		v = 100;
	atomic_store_explicit(&cached, v, memory_order_relaxed);
	return v;
}

/* ---- timers: a binary min-heap on at_ns ---- */

static void
heap_set(struct zc_loop *l, size_t i, struct zc_timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void
heap_up(struct zc_loop *l, size_t i)
{
	struct zc_timer *t = l->heap[i];

	while (i > 0 && l->heap[(i - 1) / 2]->at_ns > t->at_ns) {
		heap_set(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(l, i, t);
}

static void
heap_down(struct zc_loop *l, size_t i)
{
	struct zc_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap &&
		    l->heap[c + 1]->at_ns < l->heap[c]->at_ns)
			c++;
		if (l->heap[c]->at_ns >= t->at_ns)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

void
zc__timer_cancel(struct zc_loop *l, struct zc_timer *t)
{
	struct zc_timer *m;
	size_t i;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	t->slot = 0;
	if (--l->nheap == i)
		return;
	m = l->heap[l->nheap];
	heap_set(l, i, m);
	heap_up(l, i);
	heap_down(l, m->slot - 1);
}

void
zc__timer_arm(struct zc_loop *l, struct zc_timer *t, long long at_ns)
{
	zc__timer_cancel(l, t);
	if (l->nheap == l->capheap) {
		size_t cap = l->capheap ? 2 * l->capheap : 64;
		struct zc_timer **h = realloc(l->heap, cap * sizeof(*h));

		if (h == NULL) {
			/* a sleep then ends at once; a call at its timeout */
			zc_error("event loop: out of memory for a timer");
			return;
		}
		l->heap = h;
		l->capheap = cap;
	}
	t->at_ns = at_ns;
	heap_set(l, l->nheap++, t);
	heap_up(l, l->nheap - 1);
}

static void
run_timers(struct zc_loop *l)
{
	long long now = zc__now_ns();

	while (l->nheap > 0 && l->heap[0]->at_ns <= now) {
		struct zc_timer *t = l->heap[0];

		zc__timer_cancel(l, t);
		t->cb(t);
	}
}

/* ---- descriptors ---- */

int
zc__loop_watch(struct zc_loop *l, struct zc_watch *w, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	int op = w->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (w->added && w->fd != fd) {
		zc__loop_unwatch(l, w);
		op = EPOLL_CTL_ADD;
	}
	if (epoll_ctl(l->epfd, op, fd, &ev) != 0)
		return -1;
	w->fd = fd;
	w->added = true;
	return 0;
}

void
zc__loop_unwatch(struct zc_loop *l, struct zc_watch *w)
{
	int i;

	if (!w->added)
		return;
	/* the descriptor may be closed already: then epoll dropped it */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->added = false;
	/*
	 * An event for it may still wait in the batch being dispatched (an
	 * earlier callback of the batch had curl drop the socket): w may be
	 * freed once this returns, so that event goes.
	 */
	for (i = l->batch_next; i < l->batch_n; i++)
		if (l->batch[i].data.ptr == w)
			l->batch[i].data.ptr = NULL;
}

/* ---- posts from other threads ---- */

static void
on_wake(struct zc_watch *w, uint32_t events)
{
	struct zc_loop *l =
		(struct zc_loop *)((char *)w - offsetof(struct zc_loop, wake));
	struct posted *p, *next;
	uint64_t n;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		zc_debug("event loop: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&l->mu);
	p = l->post_head;
	l->post_head = NULL;
	l->post_tail = &l->post_head;
	pthread_mutex_unlock(&l->mu);
	for (; p != NULL; p = next) {
		next = p->next;
		p->fn(p->arg);
		free(p);
	}
}

static void
kick(struct zc_loop *l)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so the loop is awake anyway */
	if (write(l->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		zc_error("event loop: eventfd: %s", strerror(errno));
}

int
zc__loop_post(struct zc_loop *l, void (*fn)(void *arg), void *arg)
{
	struct posted *p = malloc(sizeof(*p));

	if (p == NULL)
		return -1;
	p->next = NULL;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&l->mu);
	*l->post_tail = p;
	l->post_tail = &p->next;
	pthread_mutex_unlock(&l->mu);
	kick(l);
	return 0;
}

void
zc__loop_stop(struct zc_loop *l)
{
	atomic_store(&l->stopping, true);
	kick(l);
}

/* ---- the loop ---- */

struct zc_loop *
zc__loop_new(void)
{
	struct zc_loop *l = calloc(1, sizeof(*l));
	int fd;

	if (l == NULL)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd < 0 || fd < 0) {
		if (l->epfd >= 0)
			close(l->epfd);
		if (fd >= 0)
			close(fd);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->mu, NULL);
	l->post_tail = &l->post_head;
	l->ready_tail = &l->ready_head;
	atomic_init(&l->stopping, false);
	l->wake.cb = on_wake;
	if (zc__loop_watch(l, &l->wake, fd, EPOLLIN) != 0) {
		close(fd);
		close(l->epfd);
		pthread_mutex_destroy(&l->mu);
		free(l);
		return NULL;
	}
	return l;
}

void
zc__loop_on_turn(struct zc_loop *l, void (*fn)(void *arg), void *arg)
{
	l->turn = fn;
	l->turn_arg = arg;
}

int
zc__loop_at_close(struct zc_loop *l, void (*fn)(void *arg), void *arg)
{
	struct hook *h = malloc(sizeof(*h)), **pp;

	if (h == NULL)
		return -1;
	h->next = NULL;
	h->fn = fn;
	h->arg = arg;
	for (pp = &l->close_hooks; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = h;
	return 0;
}

struct zc_loop *
zc__loop_current(void)
{
	return cur_loop;
}

static void resume(struct zc_task *t);

static void
run_ready(struct zc_loop *l)
{
	struct zc_task *t;

	while ((t = l->ready_head) != NULL) {
		l->ready_head = t->next;
		if (l->ready_head == NULL)
			l->ready_tail = &l->ready_head;
		t->queued = false;
		resume(t);
	}
}

static int
wait_ms(struct zc_loop *l)
{
	long long d;

	if (l->ready_head != NULL || atomic_load(&l->stopping))
		return 0;
	if (l->nheap == 0)
		return -1;
	d = l->heap[0]->at_ns - zc__now_ns();
	if (d <= 0)
		return 0;
	/* rounded up: waking early only turns the loop again */
	d = (d + 999999) / 1000000;
	return d > 60000 ? 60000 : (int)d;
}

void
zc__loop_run(struct zc_loop *l)
{
	struct epoll_event evs[MAX_EVENTS];
	int n, i;

	cur_loop = l;
	while (!atomic_load(&l->stopping)) {
		run_ready(l);
		if (l->turn != NULL)
			l->turn(l->turn_arg);
		n = epoll_wait(l->epfd, evs, MAX_EVENTS, wait_ms(l));
		if (n < 0 && errno != EINTR) {
			zc_error("event loop: epoll_wait: %s", strerror(errno));
			break;
		}
		l->batch = evs;
		l->batch_n = n;
		for (i = 0; i < n; i++) {
			struct zc_watch *w = evs[i].data.ptr;

			l->batch_next = i + 1;
			if (w != NULL)
				w->cb(w, evs[i].events);
		}
		l->batch_n = 0;
		run_timers(l);
	}
	cur_loop = NULL;
}

void
zc__loop_free(struct zc_loop *l)
{
	struct posted *p, *pn;
	struct hook *h, *hn;

	if (l == NULL)
		return;
	cur_loop = l; /* the hooks may unwatch their descriptors */
	for (h = l->close_hooks; h != NULL; h = hn) {
		hn = h->next;
		h->fn(h->arg);
		free(h);
	}
	/* posted after its last turn (a connection: MHD closes it) */
	for (p = l->post_head; p != NULL; p = pn) {
		pn = p->next;
		p->fn(p->arg);
		free(p);
	}
	cur_loop = NULL;
	close(l->wake.fd);
	close(l->epfd);
	pthread_mutex_destroy(&l->mu);
	free(l->heap);
	free(l);
}

/* ---- tasks ---- */

static void
task_main(void *arg)
{
	struct zc_task *t = arg;

	t->fn(t);
}

/* A turn that held the loop too long: counted, and said once a second. */
static void
note_turn(const zc_req *req, long long start_ns)
{
	long long now = zc__now_ns(), held = now - start_ns;
	long limit = zc__loop_block_warn_ms();
	const struct zc_reqctx *ctx;

	if (limit <= 0 || held < (long long)limit * 1000000LL)
		return;
	atomic_fetch_add(&blocked_total, 1);
	atomic_fetch_add(&blocked_us, (unsigned long long)(held / 1000));
	if (now - atomic_load(&warned_ns) < 1000000000LL)
		return;
	atomic_store(&warned_ns, now);
	ctx = req != NULL ? zc__reqctx(req) : NULL;
	zc_warn("%s%s%s held its event loop for %lld ms without yielding "
		"(over ZC_LOOP_BLOCK_WARN_MS=%ld): a wait the runtime cannot "
		"suspend (sleep, file, lock, a store transaction); every "
		"other connection of the loop waited",
		ctx != NULL ? ctx->method : "a handler", ctx != NULL ? " " : "",
		ctx != NULL ? ctx->path : "", held / 1000000LL, limit);
}

/* Run t until it waits or returns; true when it returned. */
static bool
step(struct zc_task *t)
{
	struct zc_task *outer = cur_task;
	long long start = zc__now_ns();
	bool done;

	cur_task = t;
	done = zc__fiber_resume(t->fiber);
	note_turn(t->owner, start);
	cur_task = outer;
	if (done) {
		zc__fiber_free(t->fiber);
		t->fiber = NULL;
	}
	return done;
}

static void
resume(struct zc_task *t)
{
	if (step(t) && t->done != NULL)
		t->done(t);
}

int
zc__task_start(struct zc_loop *l, struct zc_task *t)
{
	t->loop = l;
	t->next = NULL;
	t->queued = t->waiting = t->woken = t->waited = false;
	t->sleep.slot = 0;
	t->fiber = zc__fiber_new(task_main, t, 0);
	if (t->fiber == NULL)
		return -1;
	return step(t) ? 1 : 0;
}

struct zc_task *
zc__task_current(void)
{
	return cur_task;
}

void
zc__task_wait(void)
{
	struct zc_task *t = cur_task;

	if (t == NULL)
		return;
	if (t->woken) {
		t->woken = false;
		return;
	}
	t->waiting = true;
	t->waited = true;
	/* what is per request in thread-locals leaves with it */
	t->req = zc__current();
	t->log_on = zc__log_detach();
	zc__set_current(NULL);
	zc__fiber_yield();
	zc__set_current(t->req);
	zc__log_attach(t->log_on);
}

void
zc__task_wake(struct zc_task *t)
{
	struct zc_loop *l = t->loop;

	if (!t->waiting) {
		t->woken = true;
		return;
	}
	t->waiting = false;
	if (t->queued)
		return;
	t->queued = true;
	t->next = NULL;
	*l->ready_tail = t;
	l->ready_tail = &t->next;
}

static void
on_sleep(struct zc_timer *tm)
{
	struct zc_task *t = (struct zc_task *)((char *)tm -
					       offsetof(struct zc_task, sleep));

	zc__task_wake(t);
}

void
zc__task_sleep_ms(long ms)
{
	struct zc_task *t = cur_task;
	long long until = zc__now_ns() + (long long)ms * 1000000LL;

	if (t == NULL)
		return;
	t->sleep.cb = on_sleep;
	zc__timer_arm(t->loop, &t->sleep, until);
	while (t->sleep.slot != 0)
		zc__task_wait();
}

void
zc__loop_metrics(struct zc_buf *o)
{
	zc__buf_printf(
		o,
		"# HELP zc_loop_blocked_total Handler turns that held their "
		"event loop longer than ZC_LOOP_BLOCK_WARN_MS without "
		"yielding.\n# TYPE zc_loop_blocked_total counter\n"
		"zc_loop_blocked_total %lu\n"
		"# HELP zc_loop_blocked_seconds_total Time event loops were "
		"held by those turns.\n# TYPE zc_loop_blocked_seconds_total "
		"counter\nzc_loop_blocked_seconds_total %.6f\n",
		atomic_load(&blocked_total),
		(double)atomic_load(&blocked_us) / 1e6);
}
