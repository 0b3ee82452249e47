/*
 * gate.c - the store's write gate for SQLite (a file or memory:).
 *
 * SQLite lets one writer in at a time, and BEGIN IMMEDIATE waits for the
 * lock in its busy handler, a sleep that holds the whole thread.  On an
 * event loop that thread is every connection of the loop: two handlers
 * waiting on a transaction that calls out in line (balance-manager with
 * AUDIT_MODE=sync) would stop both loops, probes and 503s included.  So
 * this process's transactions take turns here first, in arrival order: a
 * handler on a fiber waits by giving its loop back, a thread of its own
 * (the outbox relay, a delivery thread) on a condition variable.  Past
 * ZC_STORE_BUSY_MS the wait ends with ZC_ERR_STORE, as BEGIN's would.
 * BEGIN IMMEDIATE then only waits for other processes on the same file.
 * PostgreSQL has row locks and a connection per thread: no gate (store.c
 * decides).
 */
#include "backend.h"

#include <stddef.h>

struct gate_waiter {
	struct gate_waiter *next;
	struct zc_task *task; /* NULL: a thread's own stack, on cond */
	struct zc_loop *loop;
	struct zc_timer timer; /* the deadline, on the task's loop */
	pthread_cond_t cond;
	bool granted;   /* the gate is now this waiter's */
	bool delivered; /* the wake posted to its loop has run */
};

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static bool gate_held;
static struct gate_waiter *gate_head, **gate_tail = &gate_head;
static atomic_ulong gate_waits;

unsigned long
zc__store_gate_waits(void)
{
	return atomic_load(&gate_waits);
}

/* Runs on the waiter's loop: the posted hand-over. */
static void
gate_deliver(void *arg)
{
	struct gate_waiter *w = arg;

	w->delivered = true;
	zc__task_wake(w->task);
}

static void
gate_deadline(struct zc_timer *t)
{
	struct gate_waiter *w =
		(struct gate_waiter *)((char *)t -
				       offsetof(struct gate_waiter, timer));

	zc__task_wake(w->task);
}

/* Take w out of the queue (gate_mu held). */
static void
gate_unlink(struct gate_waiter *w)
{
	struct gate_waiter **pp;

	for (pp = &gate_head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			if (gate_tail == &w->next)
				gate_tail = pp;
			return;
		}
}

zc_err
zc__store_gate_enter(void)
{
	struct gate_waiter w = {0};
	long long deadline;
	bool ok;

	pthread_mutex_lock(&gate_mu);
	if (!gate_held) {
		gate_held = true;
		pthread_mutex_unlock(&gate_mu);
		return ZC_OK;
	}
	atomic_fetch_add(&gate_waits, 1);
	deadline = zc__now_ns() + ZC_STORE_BUSY_MS * 1000000LL;
	w.task = zc__task_current();
	*gate_tail = &w;
	gate_tail = &w.next;
	if (w.task != NULL) {
		w.loop = w.task->loop;
		pthread_mutex_unlock(&gate_mu);
		zc__log_flush();
		w.timer.cb = gate_deadline;
		zc__timer_arm(w.loop, &w.timer, deadline);
		for (;;) {
			zc__task_wait();
			pthread_mutex_lock(&gate_mu);
			if (w.granted || zc__now_ns() >= deadline)
				break;
			pthread_mutex_unlock(&gate_mu);
		}
		ok = w.granted;
		if (!ok)
			gate_unlink(&w);
		pthread_mutex_unlock(&gate_mu);
		zc__timer_cancel(w.loop, &w.timer);
		/* the hand-over names w: it must have run before w goes */
		while (ok && !w.delivered)
			zc__task_wait();
	} else {
		struct timespec ts = {(time_t)(deadline / 1000000000LL),
				      (long)(deadline % 1000000000LL)};

		zc__cond_init_monotonic(&w.cond); /* deadline is monotonic */
		while (!w.granted &&
		       pthread_cond_timedwait(&w.cond, &gate_mu, &ts) == 0)
			;
		ok = w.granted;
		if (!ok)
			gate_unlink(&w);
		pthread_mutex_unlock(&gate_mu);
		pthread_cond_destroy(&w.cond);
	}
	if (!ok)
		zc_error("store: busy for %d ms (other transactions of this "
			 "process held it)",
			 ZC_STORE_BUSY_MS);
	return ok ? ZC_OK : ZC_ERR_STORE;
}

void
zc__store_gate_leave(void)
{
	struct gate_waiter *w;

	pthread_mutex_lock(&gate_mu);
	if ((w = gate_head) == NULL) {
		gate_held = false;
	} else {
		/* handed over: the gate stays held, now by w */
		if ((gate_head = w->next) == NULL)
			gate_tail = &gate_head;
		w->granted = true;
		if (w->task == NULL)
			pthread_cond_signal(&w->cond);
		else if (zc__loop_post(w->loop, gate_deliver, w) != 0)
			w->delivered = true; /* out of memory: its deadline
						timer wakes it */
	}
	pthread_mutex_unlock(&gate_mu);
}
