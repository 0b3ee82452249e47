/*
 * test_breaker.c - the internal circuit breaker (breaker.c) against
 * sony/gobreaker's semantics: closed -> open after N consecutive failures,
 * open fails fast for open_ms, then half-open admits exactly `probes`
 * calls; one failure re-opens, `probes` successes close; results from an
 * older generation are ignored; failures_to_open 0 turns it off.
 */
#include <check.h>
#include <stdlib.h>

#include "internal.h"

#include "testutil.h"

#define OPEN_MS 60

static struct zc_breaker b;

/* allow; on success report the result at once. */
static zc_err
call(bool success)
{
	unsigned gen = 0;
	long ra = 0;
	zc_err err = zc__breaker_allow(&b, &gen, &ra);

	if (err == ZC_OK)
		zc__breaker_done(&b, gen, success);
	return err;
}

static void
fail_n(int n)
{
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(call(false), ZC_OK);
}

/* Drive a breaker with failures=3, probes=2 into half-open. */
static void
to_half_open(void)
{
	fail_n(3);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
	sleep_ms(OPEN_MS + 15);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
}

static void
setup(void)
{
	zc__breaker_init(&b, 3, OPEN_MS, 2);
}

static void
teardown(void)
{
	pthread_mutex_destroy(&b.mu);
}

START_TEST(test_starts_closed)
{
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	ck_assert_str_eq(zc__breaker_state_name(ZC_BREAKER_CLOSED), "closed");
	ck_assert_str_eq(zc__breaker_state_name(ZC_BREAKER_OPEN), "open");
	ck_assert_str_eq(zc__breaker_state_name(ZC_BREAKER_HALF_OPEN),
			 "half-open");
}
END_TEST

START_TEST(test_closed_below_threshold)
{
	fail_n(2);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	/* still admitting */
	ck_assert_int_eq(call(true), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_opens_at_n_consecutive)
{
	fail_n(2);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	fail_n(1);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
}
END_TEST

START_TEST(test_success_resets_count)
{
	fail_n(2);
	ck_assert_int_eq(call(true), ZC_OK);
	fail_n(2);
	/* 4 failures, but never 3 in a row */
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	fail_n(1);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
}
END_TEST

START_TEST(test_open_fails_fast_with_retry_after)
{
	unsigned gen = 12345;
	long ra = 0;

	fail_n(3);
	ck_assert_int_eq(zc__breaker_allow(&b, &gen, &ra), ZC_ERR_BREAKER_OPEN);
	ck_assert_msg(ra > 0 && ra <= OPEN_MS + 1, "retry_after %ld", ra);
	/* NULL retry_after is allowed */
	ck_assert_int_eq(zc__breaker_allow(&b, &gen, NULL),
			 ZC_ERR_BREAKER_OPEN);
	/* the wait shrinks as the open period runs out */
	sleep_ms(30);
	ck_assert_int_eq(zc__breaker_allow(&b, &gen, &ra), ZC_ERR_BREAKER_OPEN);
	ck_assert_msg(ra > 0 && ra <= OPEN_MS - 25, "retry_after %ld", ra);
}
END_TEST

START_TEST(test_half_open_admits_exactly_probes)
{
	unsigned g1 = 0, g2 = 0, g3 = 0;
	long ra = 0;

	to_half_open();
	ck_assert_int_eq(zc__breaker_allow(&b, &g1, &ra), ZC_OK);
	ck_assert_int_eq(zc__breaker_allow(&b, &g2, &ra), ZC_OK);
	ck_assert_int_eq(g1, g2);
	/* gobreaker's ErrTooManyRequests */
	ck_assert_int_eq(zc__breaker_allow(&b, &g3, &ra), ZC_ERR_BREAKER_OPEN);
	ck_assert_int_gt(ra, 0);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	/* one probe succeeded: not yet closed, and still no more room */
	zc__breaker_done(&b, g1, true);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	ck_assert_int_eq(zc__breaker_allow(&b, &g3, &ra), ZC_ERR_BREAKER_OPEN);
	zc__breaker_done(&b, g2, true);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	ck_assert_int_eq(zc__breaker_allow(&b, &g3, &ra), ZC_OK);
	zc__breaker_done(&b, g3, true);
}
END_TEST

START_TEST(test_half_open_failure_reopens)
{
	unsigned g1 = 0, g2 = 0;
	long ra = 0;

	to_half_open();
	ck_assert_int_eq(zc__breaker_allow(&b, &g1, &ra), ZC_OK);
	ck_assert_int_eq(zc__breaker_allow(&b, &g2, &ra), ZC_OK);
	zc__breaker_done(&b, g1, true);
	zc__breaker_done(&b, g2, false);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
	ck_assert_int_eq(zc__breaker_allow(&b, &g1, &ra), ZC_ERR_BREAKER_OPEN);
	ck_assert_msg(ra > OPEN_MS / 2 && ra <= OPEN_MS + 1,
		      "re-opened for a full period: retry_after %ld", ra);
	/* a single failure is enough, even with failures_to_open 3 */
	sleep_ms(OPEN_MS + 15);
	ck_assert_int_eq(call(false), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
}
END_TEST

START_TEST(test_probes_successes_close)
{
	to_half_open();
	ck_assert_int_eq(call(true), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	ck_assert_int_eq(call(true), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	/* closed afresh: the count starts from zero */
	fail_n(2);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	fail_n(1);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
}
END_TEST

START_TEST(test_stale_generation_ignored)
{
	unsigned old1 = 0, old2 = 0, old3 = 0;
	long ra = 0;

	/* three calls start while closed ... */
	ck_assert_int_eq(zc__breaker_allow(&b, &old1, &ra), ZC_OK);
	ck_assert_int_eq(zc__breaker_allow(&b, &old2, &ra), ZC_OK);
	ck_assert_int_eq(zc__breaker_allow(&b, &old3, &ra), ZC_OK);
	/* ... others trip the breaker meanwhile */
	fail_n(3);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
	/* an old success does not close it */
	zc__breaker_done(&b, old1, true);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);

	sleep_ms(OPEN_MS + 15);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	/* an old failure does not re-open the half-open breaker ... */
	zc__breaker_done(&b, old2, false);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	/* ... nor does an old success count as a probe */
	zc__breaker_done(&b, old3, true);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	ck_assert_int_eq(call(true), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_HALF_OPEN);
	ck_assert_int_eq(call(true), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_stale_probe_after_close_ignored)
{
	unsigned g1 = 0, g2 = 0, g3 = 0;
	long ra = 0;

	/* closed -> open -> half-open -> closed, with one old call left */
	ck_assert_int_eq(zc__breaker_allow(&b, &g1, &ra), ZC_OK);
	to_half_open();
	ck_assert_int_eq(zc__breaker_allow(&b, &g2, &ra), ZC_OK);
	ck_assert_int_eq(zc__breaker_allow(&b, &g3, &ra), ZC_OK);
	zc__breaker_done(&b, g2, true);
	zc__breaker_done(&b, g3, true);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	/* the call from before the trip fails now: not counted */
	zc__breaker_done(&b, g1, false);
	fail_n(2);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
}
END_TEST

START_TEST(test_disabled)
{
	unsigned gen;
	long ra = 0;

	pthread_mutex_destroy(&b.mu);
	zc__breaker_init(&b, 0, OPEN_MS, 2);
	fail_n(1000);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
	ck_assert_int_eq(zc__breaker_allow(&b, &gen, &ra), ZC_OK);
	ck_assert_int_eq(ra, 0);
}
END_TEST

START_TEST(test_zero_probes_means_one)
{
	unsigned g1 = 0, g2 = 0;
	long ra = 0;

	/* gobreaker: MaxRequests 0 -> 1 */
	pthread_mutex_destroy(&b.mu);
	zc__breaker_init(&b, 1, OPEN_MS, 0);
	fail_n(1);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_OPEN);
	sleep_ms(OPEN_MS + 15);
	ck_assert_int_eq(zc__breaker_allow(&b, &g1, &ra), ZC_OK);
	ck_assert_int_eq(zc__breaker_allow(&b, &g2, &ra), ZC_ERR_BREAKER_OPEN);
	zc__breaker_done(&b, g1, true);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
}
END_TEST

/* Many threads at once: the state stays consistent (and TSan-clean). */
#define THREADS 8
#define ROUNDS  2000

static void *
hammer(void *arg)
{
	unsigned gen;
	long ra;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		if (zc__breaker_allow(&b, &gen, &ra) == ZC_OK)
			zc__breaker_done(&b, gen,
					 ((i + (int)(long)arg) % 3) != 0);
	}
	return NULL;
}

START_TEST(test_concurrent_use)
{
	pthread_t t[THREADS];
	int i, s;

	for (i = 0; i < THREADS; i++)
		ck_assert_int_eq(
			pthread_create(&t[i], NULL, hammer, (void *)(long)i),
			0);
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	s = zc__breaker_state(&b);
	ck_assert(s == ZC_BREAKER_CLOSED || s == ZC_BREAKER_OPEN ||
		  s == ZC_BREAKER_HALF_OPEN);
	/* and it still recovers the normal way */
	sleep_ms(OPEN_MS + 15);
	for (i = 0; i < 2 && zc__breaker_state(&b) != ZC_BREAKER_CLOSED; i++)
		ck_assert_int_eq(call(true), ZC_OK);
	ck_assert_int_eq(zc__breaker_state(&b), ZC_BREAKER_CLOSED);
}
END_TEST

static Suite *
breaker_suite(void)
{
	Suite *s = suite_create("breaker");
	TCase *tc = tcase_create("gobreaker");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_starts_closed);
	tcase_add_test(tc, test_closed_below_threshold);
	tcase_add_test(tc, test_opens_at_n_consecutive);
	tcase_add_test(tc, test_success_resets_count);
	tcase_add_test(tc, test_open_fails_fast_with_retry_after);
	tcase_add_test(tc, test_half_open_admits_exactly_probes);
	tcase_add_test(tc, test_half_open_failure_reopens);
	tcase_add_test(tc, test_probes_successes_close);
	tcase_add_test(tc, test_stale_generation_ignored);
	tcase_add_test(tc, test_stale_probe_after_close_ignored);
	tcase_add_test(tc, test_disabled);
	tcase_add_test(tc, test_zero_probes_means_one);
	tcase_add_test(tc, test_concurrent_use);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(breaker_suite());
}
