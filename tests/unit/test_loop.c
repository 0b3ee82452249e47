/*
 * test_loop.c - the event loop a server thread runs: timers fire in
 * order and not when cancelled, other threads' posts run on the loop's
 * thread, a task that does not wait finishes in line, one that waits is
 * resumed by its wake and finishes through done with its request still
 * current, and a turn that holds the loop is counted.
 */
#include <pthread.h>
#include <sys/epoll.h>

#include "internal.h"
#include "testutil.h"

struct fired {
	struct zc_timer t;
	int *order;
	int *n;
	int id;
};

static void
on_fire(struct zc_timer *t)
{
	struct fired *f = (struct fired *)t;

	f->order[(*f->n)++] = f->id;
}

static void
stop_now(void *arg)
{
	zc__loop_stop(arg);
}

static void
on_stop_timer(struct zc_timer *t)
{
	(void)t;
	zc__loop_stop(zc__loop_current());
}

START_TEST(timers_fire_in_order)
{
	struct zc_loop *l = zc__loop_new();
	int order[4] = {0}, n = 0;
	struct fired a = {.t = {.cb = on_fire}, .order = order, .n = &n, .id = 1};
	struct fired b = {.t = {.cb = on_fire}, .order = order, .n = &n, .id = 2};
	struct fired c = {.t = {.cb = on_fire}, .order = order, .n = &n, .id = 3};
	struct zc_timer end = {.cb = on_stop_timer};
	long long now = zc__now_ns();

	ck_assert_ptr_nonnull(l);
	zc__timer_arm(l, &b.t, now + 20000000LL);
	zc__timer_arm(l, &a.t, now + 10000000LL);
	zc__timer_arm(l, &c.t, now + 30000000LL);
	zc__timer_cancel(l, &b.t);
	zc__timer_arm(l, &end, now + 50000000LL);
	zc__loop_run(l);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(order[0], 1);
	ck_assert_int_eq(order[1], 3);
	ck_assert(zc__now_ns() - now >= 50000000LL);
	zc__loop_free(l);
}
END_TEST

struct post_arg {
	struct zc_loop *l;
	pthread_t loop_thread;
	bool ran_on_loop;
};

static void
posted(void *arg)
{
	struct post_arg *p = arg;

	p->ran_on_loop = pthread_equal(pthread_self(), p->loop_thread) &&
			 zc__loop_current() == p->l;
	zc__loop_stop(p->l);
}

static void *
poster(void *arg)
{
	struct post_arg *p = arg;

	sleep_ms(20);
	ck_assert_int_eq(zc__loop_post(p->l, posted, p), 0);
	return NULL;
}

START_TEST(posts_run_on_the_loop_thread)
{
	struct post_arg p = {.l = zc__loop_new(), .loop_thread = pthread_self()};
	pthread_t t;

	ck_assert_ptr_nonnull(p.l);
	ck_assert_int_eq(pthread_create(&t, NULL, poster, &p), 0);
	zc__loop_run(p.l);
	pthread_join(t, NULL);
	ck_assert(p.ran_on_loop);
	ck_assert_ptr_null(zc__loop_current());
	zc__loop_free(p.l);
}
END_TEST

struct job {
	struct zc_task task;
	int phase;
	long sleep_ms;
	zc_req *seen_after;
	bool done_called;
	int done_phase;
};

static void
job_fn(struct zc_task *t)
{
	struct job *j = (struct job *)t;

	zc__set_current((zc_req *)j); /* any pointer: only compared */
	j->phase = 1;
	if (j->sleep_ms > 0)
		zc__task_sleep_ms(j->sleep_ms);
	j->seen_after = zc__current();
	zc__set_current(NULL);
	j->phase = 2;
}

static void
job_done(struct zc_task *t)
{
	struct job *j = (struct job *)t;

	j->done_called = true;
	j->done_phase = j->phase;
	zc__loop_stop(t->loop);
}

START_TEST(task_without_wait_finishes_in_line)
{
	struct zc_loop *l = zc__loop_new();
	struct job j = {.task = {.fn = job_fn, .done = job_done}};

	ck_assert_int_eq(zc__task_start(l, &j.task), 1);
	ck_assert_int_eq(j.phase, 2);
	ck_assert(!j.done_called);
	ck_assert_ptr_eq(j.seen_after, (zc_req *)&j);
	zc__loop_free(l);
}
END_TEST

START_TEST(task_that_waits_resumes_with_its_request)
{
	struct zc_loop *l = zc__loop_new();
	struct job j = {.task = {.fn = job_fn, .done = job_done},
			.sleep_ms = 20};
	long long t0 = zc__now_ns();

	ck_assert_int_eq(zc__task_start(l, &j.task), 0);
	ck_assert_int_eq(j.phase, 1);
	/* back on the loop's stack: the request is no longer current */
	ck_assert_ptr_null(zc__current());
	ck_assert_ptr_null(zc__task_current());
	zc__loop_run(l);
	ck_assert(j.done_called);
	ck_assert_int_eq(j.done_phase, 2);
	ck_assert_ptr_eq(j.seen_after, (zc_req *)&j);
	ck_assert(zc__now_ns() - t0 >= 20000000LL);
	zc__loop_free(l);
}
END_TEST

struct pw {
	struct zc_watch w;
	struct pw *other;
	struct zc_loop *l;
	int calls;
};

static void
on_readable(struct zc_watch *w, uint32_t ev)
{
	struct pw *p = (struct pw *)w;

	(void)ev;
	p->calls++;
	/* the other's event is in this batch too: it must not be called */
	zc__loop_unwatch(p->l, &p->other->w);
	zc__loop_unwatch(p->l, w);
	zc__loop_stop(p->l);
}

START_TEST(unwatched_in_a_batch_is_not_called)
{
	struct zc_loop *l = zc__loop_new();
	struct pw a = {.w.cb = on_readable, .l = l};
	struct pw b = {.w.cb = on_readable, .l = l};
	int pa[2], pb[2];

	a.other = &b;
	b.other = &a;
	ck_assert_int_eq(pipe(pa), 0);
	ck_assert_int_eq(pipe(pb), 0);
	ck_assert_int_eq(write(pa[1], "x", 1), 1);
	ck_assert_int_eq(write(pb[1], "x", 1), 1);
	ck_assert_int_eq(zc__loop_watch(l, &a.w, pa[0], EPOLLIN), 0);
	ck_assert_int_eq(zc__loop_watch(l, &b.w, pb[0], EPOLLIN), 0);
	zc__loop_run(l);
	ck_assert_int_eq(a.calls + b.calls, 1);
	zc__loop_free(l);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
}
END_TEST

static void
spin_fn(struct zc_task *t)
{
	long long until = zc__now_ns() + 30000000LL;

	(void)t;
	while (zc__now_ns() < until)
		;
}

START_TEST(a_turn_that_holds_the_loop_is_counted)
{
	struct zc_loop *l;
	struct zc_task t = {.fn = spin_fn};
	struct zc_buf b = {.p = malloc(64), .cap = 64};

	setenv("ZC_LOOP_BLOCK_WARN_MS", "10", 1);
	l = zc__loop_new();
	ck_assert_int_eq(zc__loop_block_warn_ms(), 10);
	ck_assert_int_eq(zc__task_start(l, &t), 1);
	zc__loop_metrics(&b);
	ck_assert_ptr_nonnull(b.p);
	ck_assert_ptr_nonnull(strstr(b.p, "zc_loop_blocked_total 1\n"));
	free(b.p);
	ck_assert_int_eq(zc__loop_post(l, stop_now, l), 0);
	zc__loop_run(l);
	zc__loop_free(l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("loop");

	tcase_add_test(tc, timers_fire_in_order);
	tcase_add_test(tc, posts_run_on_the_loop_thread);
	tcase_add_test(tc, task_without_wait_finishes_in_line);
	tcase_add_test(tc, task_that_waits_resumes_with_its_request);
	tcase_add_test(tc, a_turn_that_holds_the_loop_is_counted);
	tcase_add_test(tc, unwatched_in_a_batch_is_not_called);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
