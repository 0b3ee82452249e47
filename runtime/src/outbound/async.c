/*
 * async.c - fire-and-forget calls that are never silently lost.  A
 * bounded queue feeds worker threads that perform each call with its
 * target's retries.  A full queue is the caller's answer
 * (ZC_ERR_QUEUE_FULL), not a drop.  On shutdown the queue is drained
 * within the drain deadline, and every call that could not be delivered is
 * written to the log as a complete [UNDELIVERED] record.  A call made in
 * a transactional handler waits for its transaction's commit: in the
 * store's outbox (relay.c) with SQLite or PostgreSQL, here with memory:.
 */
#include "outbound.h"

#include <stdatomic.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The drain deadline; 0 while not draining.  Every queued call is handed a
 * pointer to it, so attempts already running see it start (curl.c aborts
 * them at it).
 */
static _Atomic long long deadline_now;
static atomic_ulong rejected_total, undelivered_total;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t nonempty, idle;
	zc_call **ring;
	size_t cap, head, count;
	size_t reserved; /* slots held for calls waiting for a commit */
	int workers, started, busy;
	bool draining, stopping;
	pthread_t *threads;
} q = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.nonempty = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
	.cap = 1024,
	.workers = 2,
};

void
zc__async_configure(size_t queue_size, int workers)
{
	pthread_mutex_lock(&q.mu);
	if (q.ring == NULL) { /* settings apply before first use only */
		if (queue_size > 0)
			q.cap = queue_size;
		if (workers > 0)
			q.workers = workers;
	}
	pthread_mutex_unlock(&q.mu);
}

void
zc__async_stats(struct zc_async_stats *st)
{
	pthread_mutex_lock(&q.mu);
	st->depth = q.count;
	pthread_mutex_unlock(&q.mu);
	st->rejected = atomic_load(&rejected_total);
	st->undelivered = atomic_load(&undelivered_total);
}

static void
log_undelivered(zc_call *call, zc_err err)
{
	char *rec = zc__call_record(call);

	atomic_fetch_add(&undelivered_total, 1);

	zc_error("[UNDELIVERED] %s (%s, HTTP %d, %d attempts)",
		 rec != NULL ? rec : "(out of memory)", zc_strerror(err),
		 zc_call_status(call), zc_call_attempts(call));
	free(rec);
}

static void *
worker(void *arg)
{
	zc_call *call;
	zc_err err;

	(void)arg;
	pthread_setname_np(pthread_self(), "zc-async"); /* for top -H, tests */
	pthread_mutex_lock(&q.mu);
	for (;;) {
		while (q.count == 0 && !q.stopping)
			pthread_cond_wait(&q.nonempty, &q.mu);
		if (q.count == 0 && q.stopping)
			break;
		call = q.ring[q.head];
		q.head = (q.head + 1) % q.cap;
		q.count--;
		q.busy++;
		pthread_mutex_unlock(&q.mu);

		err = zc_call_perform(call);
		if (err != ZC_OK)
			log_undelivered(call, err);
		zc_call_free(call);

		pthread_mutex_lock(&q.mu);
		q.busy--;
		if (q.count == 0 && q.busy == 0)
			pthread_cond_broadcast(&q.idle);
	}
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

/* Start the workers on first use, so functions without async calls pay
 * nothing.  Called with q.mu held. */
static int
start_locked(void)
{
	int i;

	if (q.ring != NULL)
		return 0;
	q.ring = calloc(q.cap, sizeof(*q.ring));
	q.threads = calloc((size_t)q.workers, sizeof(*q.threads));
	if (q.ring == NULL || q.threads == NULL) {
		free(q.ring);
		free(q.threads);
		q.ring = NULL;
		q.threads = NULL;
		return -1;
	}
	for (i = 0; i < q.workers; i++)
		if (pthread_create(&q.threads[i], NULL, worker, NULL) == 0)
			q.started++;
	return q.started > 0 ? 0 : -1;
}

/* Room for one more call (one reserved: a slot held for it).  Called
 * with q.mu held; ZC_OK, or why not. */
static zc_err
room_locked(bool reserved)
{
	if (q.stopping)
		return ZC_ERR_QUEUE_FULL;
	if (start_locked() != 0)
		return ZC_ERR_NOMEM;
	if (!reserved && q.count + q.reserved >= q.cap) {
		atomic_fetch_add(&rejected_total, 1);
		return ZC_ERR_QUEUE_FULL;
	}
	return ZC_OK;
}

/* Hand call to the queue: ZC_OK (the queue owns it), or why not. */
static zc_err
enqueue(zc_call *call, bool reserved)
{
	zc_err err;

	pthread_mutex_lock(&q.mu);
	if (reserved)
		q.reserved--;
	if ((err = room_locked(reserved)) != ZC_OK) {
		pthread_mutex_unlock(&q.mu);
		return err;
	}
	zc__call_detach(call, &deadline_now);
	q.ring[(q.head + q.count) % q.cap] = call;
	q.count++;
	pthread_cond_signal(&q.nonempty);
	pthread_mutex_unlock(&q.mu);
	return ZC_OK;
}

/* A call made in a transaction that committed (memory: store): it goes
 * into the slot held for it. */
static void
send_committed(void *item)
{
	zc_call *call = item;
	zc_err err;

	if (enqueue(call, true) == ZC_OK)
		return;
	/* the queue closed meanwhile (SIGTERM): in line, not dropped */
	if ((err = zc_call_perform(call)) != ZC_OK)
		log_undelivered(call, err);
	zc_call_free(call);
}

static void
drop_rolled_back(void *item)
{
	pthread_mutex_lock(&q.mu);
	q.reserved--;
	pthread_mutex_unlock(&q.mu);
	zc_call_free(item);
}

zc_err
zc_call_send_async(zc_call *call)
{
	zc_tx *tx;
	zc_err err;

	if (call == NULL)
		return ZC_ERR_INVALID;
	if ((err = zc__call_setup_err(call)) != ZC_OK)
		return err;
	if ((tx = zc__store_current_tx()) == NULL)
		return enqueue(call, false);
	/*
	 * In a transactional handler the call is sent only if its
	 * transaction commits: a row of the store's outbox, which a relay
	 * delivers (surviving a crash), or with memory: a slot of the queue
	 * held now (a full queue says so now, as outside a transaction) and
	 * filled at the commit.
	 */
	if (zc__store_durable()) {
		if ((err = zc__relay_put(tx, call, "call")) == ZC_OK)
			zc_call_free(call);
		return err;
	}
	pthread_mutex_lock(&q.mu);
	if ((err = room_locked(false)) == ZC_OK)
		q.reserved++;
	pthread_mutex_unlock(&q.mu);
	if (err != ZC_OK)
		return err;
	if (zc__store_tx_defer(call, send_committed, drop_rolled_back) != 0) {
		pthread_mutex_lock(&q.mu);
		q.reserved--;
		pthread_mutex_unlock(&q.mu);
		return ZC_ERR_NOMEM;
	}
	return ZC_OK;
}

long
zc__async_drain(long long deadline_ns, bool reopen)
{
	struct timespec ts;
	long left = 0;
	zc_call *call;
	int i;

	pthread_mutex_lock(&q.mu);
	if (q.ring == NULL) {
		q.stopping = !reopen;
		pthread_mutex_unlock(&q.mu);
		return 0;
	}
	q.draining = true;
	atomic_store(&deadline_now, deadline_ns);
	if (q.count > 0 || q.busy > 0)
		zc_info("delivering %zu queued and %d in-flight async calls",
			q.count, q.busy);
	/* Wait for the queue to empty, up to the deadline. */
	while ((q.count > 0 || q.busy > 0) && zc__now_ns() < deadline_ns) {
		clock_gettime(CLOCK_REALTIME, &ts);
		/* condvar waits use the realtime clock: wait in slices */
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&q.idle, &q.mu, &ts);
	}
	/* Whatever is still queued is logged, complete, rather than lost. */
	while (q.count > 0) {
		call = q.ring[q.head];
		q.head = (q.head + 1) % q.cap;
		q.count--;
		log_undelivered(call, ZC_ERR_DEADLINE);
		zc_call_free(call);
		left++;
	}
	q.stopping = true;
	pthread_cond_broadcast(&q.nonempty);
	pthread_mutex_unlock(&q.mu);
	/*
	 * In-flight calls run with the drain deadline as their budget, so
	 * the workers finish (delivered, or logged) shortly after it.
	 */
	for (i = 0; i < q.started; i++)
		pthread_join(q.threads[i], NULL);
	q.started = 0; /* joined: never again */
	atomic_store(&deadline_now, 0);
	/*
	 * A served function stays closed: a handler still running past the
	 * deadline gets ZC_ERR_QUEUE_FULL and must deliver in line (nothing
	 * is queued that no worker would take).  Tests reopen for the next
	 * app in the same process.
	 */
	if (!reopen)
		return left;
	pthread_mutex_lock(&q.mu);
	free(q.ring);
	free(q.threads);
	q.ring = NULL;
	q.threads = NULL;
	q.head = q.count = 0;
	q.started = q.busy = 0;
	q.draining = q.stopping = false;
	pthread_mutex_unlock(&q.mu);
	return left;
}

void
zc__async_metrics(struct zc_buf *o, void *arg)
{
	struct zc_async_stats st;

	(void)arg;
	zc__async_stats(&st);
	zc__buf_printf(o,
		       "# HELP zc_async_queue_depth Calls waiting in the "
		       "async queue.\n# TYPE zc_async_queue_depth gauge\n"
		       "zc_async_queue_depth %lu\n"
		       "# HELP zc_async_rejected_total Async calls refused "
		       "because the queue was full.\n# TYPE "
		       "zc_async_rejected_total counter\n"
		       "zc_async_rejected_total %lu\n"
		       "# HELP zc_async_undelivered_total Async calls given "
		       "up on and logged as [UNDELIVERED].\n# TYPE "
		       "zc_async_undelivered_total counter\n"
		       "zc_async_undelivered_total %lu\n",
		       st.depth, st.rejected, st.undelivered);
}
