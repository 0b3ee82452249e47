/*
 * test_fiber.c - user-space stacks: a fiber runs to its first yield,
 * resumes where it left off with its locals intact, interleaves with
 * others on one thread, keeps floating-point and callee-saved state,
 * reuses pooled stacks, runs deep enough for a handler's frames, and
 * works on several threads at once (the TSan build checks the last).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "internal.h"
#include "testutil.h"

struct counter {
	int steps;
	int yields;
	long sum;
};

static void
count(void *arg)
{
	struct counter *c = arg;
	volatile long local = 0; /* must survive each yield */
	int i;

	for (i = 0; i < c->yields; i++) {
		local += i;
		c->steps++;
		zc__fiber_yield();
	}
	c->sum = local;
}

START_TEST(runs_until_yield_then_resumes)
{
	struct counter c = {.yields = 3};
	struct zc_fiber *f = zc__fiber_new(count, &c, 0);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(c.steps, 0); /* not started by new */
	ck_assert(!zc__fiber_resume(f));
	ck_assert_int_eq(c.steps, 1);
	ck_assert(!zc__fiber_resume(f));
	ck_assert(!zc__fiber_resume(f));
	ck_assert_int_eq(c.steps, 3);
	ck_assert(zc__fiber_resume(f)); /* returns: done */
	ck_assert_int_eq(c.sum, 0 + 1 + 2);
	/* resuming a finished fiber does nothing and says done */
	ck_assert(zc__fiber_resume(f));
	zc__fiber_free(f);
	ck_assert_ptr_null(zc__fiber_current());
}
END_TEST

static void
who_am_i(void *arg)
{
	struct zc_fiber **seen = arg;

	*seen = zc__fiber_current();
}

START_TEST(current_is_the_running_fiber)
{
	struct zc_fiber *seen = NULL;
	struct zc_fiber *f = zc__fiber_new(who_am_i, &seen, 0);

	ck_assert_ptr_null(zc__fiber_current());
	zc__fiber_yield(); /* on the thread's own stack: a no-op */
	ck_assert(zc__fiber_resume(f));
	ck_assert_ptr_eq(seen, f);
	ck_assert_ptr_null(zc__fiber_current());
	zc__fiber_free(f);
}
END_TEST

START_TEST(many_interleave_on_one_thread)
{
	enum { N = 500, Y = 7 };
	static struct counter c[N];
	static struct zc_fiber *f[N];
	int i, round, live = N;

	for (i = 0; i < N; i++) {
		c[i] = (struct counter){.yields = Y};
		f[i] = zc__fiber_new(count, &c[i], 0);
		ck_assert_ptr_nonnull(f[i]);
	}
	/* round-robin, as a loop resumes whichever handler's wait ended */
	for (round = 0; live > 0; round++) {
		for (i = 0; i < N; i++) {
			if (f[i] != NULL && zc__fiber_resume(f[i])) {
				zc__fiber_free(f[i]);
				f[i] = NULL;
				live--;
			}
		}
		ck_assert_int_le(round, Y);
	}
	for (i = 0; i < N; i++) {
		ck_assert_int_eq(c[i].steps, Y);
		ck_assert_int_eq(c[i].sum, Y * (Y - 1) / 2);
	}
}
END_TEST

static void
float_work(void *arg)
{
	double *out = arg;
	double x = 1.5;
	int i;

	for (i = 0; i < 4; i++) {
		x = x * 1.25 + 0.5;
		zc__fiber_yield();
	}
	*out = x;
}

START_TEST(keeps_floating_point_state)
{
	double a = 0, b = 0, mine = 3.25, expect = 1.5;
	struct zc_fiber *fa = zc__fiber_new(float_work, &a, 0);
	struct zc_fiber *fb = zc__fiber_new(float_work, &b, 0);
	int i;

	for (i = 0; i < 4; i++)
		expect = expect * 1.25 + 0.5;
	while (!zc__fiber_resume(fa) | !zc__fiber_resume(fb))
		mine *= 1.0;
	ck_assert(a == expect);
	ck_assert(b == expect);
	ck_assert(mine == 3.25);
	zc__fiber_free(fa);
	zc__fiber_free(fb);
}
END_TEST

static long
recurse(int depth, volatile char *prev)
{
	volatile char frame[512];

	frame[0] = (char)depth;
	frame[511] = prev != NULL ? prev[0] : 0;
	if (depth == 0)
		return frame[0];
	return recurse(depth - 1, frame) + frame[511];
}

static void
deep(void *arg)
{
	long *out = arg;

	/* ~100 KiB of frames: more than a handler with jansson and a few
	 * 2 KiB buffers uses, within the 256 KiB default */
	*out = recurse(180, NULL);
}

START_TEST(deep_frames_fit_the_default_stack)
{
	long out = -1;
	struct zc_fiber *f = zc__fiber_new(deep, &out, 0);

	ck_assert(zc__fiber_resume(f));
	ck_assert_int_ge(out, 0);
	zc__fiber_free(f);
}
END_TEST

static void
nothing(void *arg)
{
	(void)arg;
}

START_TEST(stacks_are_reused)
{
	struct zc_fiber *f;
	int i;

	/* a hundred thousand short handlers: pooled stacks, no mmap per fiber (a
	 * leak here would show as ENOMEM long before the end) */
	for (i = 0; i < 100000; i++) {
		f = zc__fiber_new(nothing, NULL, 0);
		ck_assert_ptr_nonnull(f);
		ck_assert(zc__fiber_resume(f));
		zc__fiber_free(f);
	}
}
END_TEST

struct shared {
	pthread_mutex_t lock;
	long total;
};

struct thread_arg {
	struct shared *sh;
	int fibers;
};

static void
add_under_lock(void *arg)
{
	struct shared *sh = arg;
	int i;

	for (i = 0; i < 10; i++) {
		pthread_mutex_lock(&sh->lock);
		sh->total++;
		pthread_mutex_unlock(&sh->lock);
		zc__fiber_yield();
	}
}

static void *
run_thread(void *p)
{
	struct thread_arg *ta = p;
	struct zc_fiber *f[32];
	int i, live = ta->fibers;

	for (i = 0; i < ta->fibers; i++)
		f[i] = zc__fiber_new(add_under_lock, ta->sh, 0);
	while (live > 0)
		for (i = 0; i < ta->fibers; i++)
			if (f[i] != NULL && zc__fiber_resume(f[i])) {
				zc__fiber_free(f[i]);
				f[i] = NULL;
				live--;
			}
	return NULL;
}

/* The ABI's alignment: rsp = 8 mod 16 at every function's entry, which
 * aligned SSE spills (printf's of a double, memcpy of a stack array)
 * rely on; a misaligned fiber stack faults there. */
static void __attribute__((noinline)) aligned_frames(void *arg)
{
	_Alignas(16) volatile char buf[32];
	char out[64];

	buf[0] = 1;
	*(uintptr_t *)arg = (uintptr_t)buf % 16;
	snprintf(out, sizeof(out), "%.3f %.3f", 1.5, (double)buf[0]);
	ck_assert_str_eq(out, "1.500 1.000");
}

START_TEST(stack_is_abi_aligned)
{
	uintptr_t mis = 99;
	struct zc_fiber *f = zc__fiber_new(aligned_frames, &mis, 0);

	ck_assert_ptr_nonnull(f);
	ck_assert(zc__fiber_resume(f));
	ck_assert_uint_eq(mis, 0);
	zc__fiber_free(f);
}
END_TEST

START_TEST(threads_run_their_own_fibers)
{
	struct shared sh = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct thread_arg ta = {&sh, 32};
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, run_thread, &ta),
				 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(sh.total, 4 * 32 * 10);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("fiber");
	TCase *tc = tcase_create("fiber");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, runs_until_yield_then_resumes);
	tcase_add_test(tc, current_is_the_running_fiber);
	tcase_add_test(tc, many_interleave_on_one_thread);
	tcase_add_test(tc, keeps_floating_point_state);
	tcase_add_test(tc, deep_frames_fit_the_default_stack);
	tcase_add_test(tc, stacks_are_reused);
	tcase_add_test(tc, threads_run_their_own_fibers);
	tcase_add_test(tc, stack_is_abi_aligned);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
