/*
 * loop.h - an event loop per server thread (epoll, timers, a queue other
 * threads post to) and the tasks it runs on fibers: a handler that waits
 * (an outbound call, a retry's backoff) yields its thread to the loop,
 * which serves other connections until the wait is over.  Included by
 * core.h.
 *
 * Everything here except zc__loop_post, zc__loop_stop and
 * zc__loop_metrics is called on the loop's own thread.
 */
#ifndef ZC_LOOP_H
#define ZC_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct zc_loop;
struct zc_buf;

/* A file descriptor the loop polls; cb gets the epoll events. */
struct zc_watch {
	void (*cb)(struct zc_watch *w, uint32_t events);
	int fd;
	bool added;
};

/* A one-shot timer: cb runs on the loop's stack at or after at_ns. */
struct zc_timer {
	void (*cb)(struct zc_timer *t);
	long long at_ns;
	size_t slot; /* 1 + its place in the loop's heap; 0 when not armed */
};

/*
 * A task: fn on a fiber of the loop.  When fn returns without having
 * waited, zc__task_start says so and done is never called (the fast
 * path: a handler that does not wait costs a stack switch, nothing
 * more); otherwise done runs on the loop's stack once fn has returned.
 * The per-request state that lives in thread-locals (the request the log
 * lines name, the log lines held for its access line) follows the task
 * across its waits.
 */
struct zc_task {
	void (*fn)(struct zc_task *t);
	void (*done)(struct zc_task *t);
	struct zc_fiber *fiber;
	struct zc_loop *loop;
	struct zc_task *next; /* in the loop's ready queue */
	bool queued;
	bool waiting;        /* in zc__task_wait */
	bool woken;          /* a wake came while it was not waiting */
	bool waited;         /* it has waited at least once */
	const zc_req *owner; /* the request it serves (warnings name it) */
	void *req;           /* zc__current() while it waits */
	bool log_on;         /* its log lines were held while it waits */
	struct zc_timer sleep;
};

/* A loop for the calling thread to run; NULL when out of resources. */
struct zc_loop *zc__loop_new(void);
/* Free a loop that has stopped, on its thread or once that has ended:
 * what was posted to it runs, then its close hooks. */
void zc__loop_free(struct zc_loop *l);
/* Run l on this thread until zc__loop_stop; it is zc__loop_current()
 * meanwhile. */
void zc__loop_run(struct zc_loop *l);
/* From any thread: make zc__loop_run return (soon). */
void zc__loop_stop(struct zc_loop *l);
/* From any thread: run fn(arg) on the loop's thread, in order.  0, or
 * -1 when out of memory. */
int zc__loop_post(struct zc_loop *l, void (*fn)(void *arg), void *arg);
/* The loop this thread runs, or NULL (the main thread, delivery
 * threads, the relay, tests). */
struct zc_loop *zc__loop_current(void);
/* Called once per turn of the loop, before it waits. */
void zc__loop_on_turn(struct zc_loop *l, void (*fn)(void *arg), void *arg);
/* Called when the loop is freed, on its thread (in the order added). */
int zc__loop_at_close(struct zc_loop *l, void (*fn)(void *arg), void *arg);

/* Poll fd for events (EPOLLIN, EPOLLOUT), or change what is polled. */
int zc__loop_watch(struct zc_loop *l, struct zc_watch *w, int fd,
		   uint32_t events);
void zc__loop_unwatch(struct zc_loop *l, struct zc_watch *w);
void zc__timer_arm(struct zc_loop *l, struct zc_timer *t, long long at_ns);
void zc__timer_cancel(struct zc_loop *l, struct zc_timer *t);

/*
 * Start t->fn on a fiber of l.  1: it returned without waiting; 0: it
 * waits, and t->done will run; -1: no fiber (out of memory), nothing ran
 * (the caller runs its work in line).
 */
int zc__task_start(struct zc_loop *l, struct zc_task *t);
/* The task this thread runs now, or NULL on a thread's own stack. */
struct zc_task *zc__task_current(void);
/* From inside a task: give the thread back to the loop until
 * zc__task_wake(t); a wake that came before makes it return at once.
 * Callers wait in a loop on their own condition. */
void zc__task_wait(void);
/* Resume t from the loop (on the loop's thread). */
void zc__task_wake(struct zc_task *t);
/* From inside a task: wait ms milliseconds on a timer of the loop. */
void zc__task_sleep_ms(long ms);

/* The loop-block threshold (ZC_LOOP_BLOCK_WARN_MS, read once; 0: off). */
long zc__loop_block_warn_ms(void);
/* zc_loop_blocked_total and the time loops were held, for /metrics. */
void zc__loop_metrics(struct zc_buf *o);

#endif /* ZC_LOOP_H */
