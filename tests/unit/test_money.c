/*
 * test_money.c - exact money: JSON numbers in, integer cents out, and back
 * to the text a person (and the seed's Go) writes.  The property test ties
 * the three together: json_new -> wire text -> from_json is the identity,
 * and the wire text is zc_money_format's.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zenith.h"

#include "testutil.h"

#define SENTINEL INT64_C(-4242424242)

/*
 * ck_assert records a check point per call (a write to the runner), which
 * dominates a 100000-iteration loop; REQUIRE only speaks on failure.
 */
#define REQUIRE(cond, ...)                                                     \
	do {                                                                   \
		if (!(cond))                                                   \
			ck_abort_msg(__VA_ARGS__);                             \
	} while (0)

/* Parse text as the wire would (any JSON value, jansson's number types). */
static json_t *
parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);

	ck_assert_msg(v != NULL, "cannot parse %s: %s", text, e.text);
	return v;
}

static void
expect_cents(const char *text, int64_t want)
{
	json_t *v = parse(text);
	int64_t c = SENTINEL;
	zc_err err = zc_money_from_json(v, &c);

	ck_assert_msg(err == ZC_OK, "%s rejected (%s)", text, zc_strerror(err));
	ck_assert_msg(c == want, "%s -> %lld cents, want %lld", text,
		      (long long)c, (long long)want);
	json_decref(v);
}

static void
expect_rejected(const char *text)
{
	json_t *v = parse(text);
	int64_t c = SENTINEL;

	ck_assert_msg(zc_money_from_json(v, &c) == ZC_ERR_INVALID,
		      "%s accepted as %lld cents", text, (long long)c);
	/* A rejected amount leaves the output alone. */
	ck_assert(c == SENTINEL);
	json_decref(v);
}

START_TEST(test_integers)
{
	expect_cents("0", 0);
	expect_cents("1", 100);
	expect_cents("-7", -700);
	expect_cents("100", 10000);
	/* The largest whole amounts within ZC_MONEY_MAX. */
	expect_cents("9999999999999", INT64_C(999999999999900));
	expect_cents("-9999999999999", -INT64_C(999999999999900));
	expect_rejected("10000000000000");
	expect_rejected("-10000000000000");
	expect_rejected("9223372036854775807");
	expect_rejected("-9223372036854775808");
}
END_TEST

START_TEST(test_reals_up_to_two_decimals)
{
	expect_cents("1.0", 100);
	expect_cents("100.0", 10000);
	expect_cents("1.5", 150);
	expect_cents("1.25", 125);
	expect_cents("0.1", 10);
	expect_cents("0.2", 20);
	expect_cents("0.3", 30);
	expect_cents("0.01", 1);
	expect_cents("0.29", 29);
	expect_cents("1.1", 110);
	expect_cents("19.99", 1999);
	expect_cents("100.5", 10050);
	expect_cents("123456789.25", 12345678925);
	/* Exponent forms are numbers like any other. */
	expect_cents("1e2", 10000);
	expect_cents("1.5e1", 1500);
	expect_cents("2.5e-1", 25);
	expect_cents("1e-2", 1);
	expect_cents("1E+1", 1000);
}
END_TEST

START_TEST(test_more_than_two_decimals)
{
	expect_rejected("0.125");
	expect_rejected("0.001");
	expect_rejected("1.005");
	expect_rejected("0.015");
	expect_rejected("10.001");
	expect_rejected("-0.125");
	expect_rejected("0.30000000000000004");
	expect_rejected("1e-3");
	expect_rejected("99.999");
}
END_TEST

START_TEST(test_range_boundaries)
{
	/* ZC_MONEY_MAX is 9,999,999,999,999.99. */
	expect_cents("9999999999999.99", ZC_MONEY_MAX);
	expect_cents("-9999999999999.99", -ZC_MONEY_MAX);
	expect_cents("9999999999999.98", ZC_MONEY_MAX - 1);
	expect_cents("9999999999999.9", ZC_MONEY_MAX - 9);
	expect_rejected("10000000000000.0");
	expect_rejected("-10000000000000.0");
	expect_rejected("10000000000000.01");
	expect_rejected("1e16");
	expect_rejected("-1e16");
	expect_rejected("1e15");
	expect_rejected("1e300");
	expect_rejected("-1e300");
}
END_TEST

START_TEST(test_negative)
{
	expect_cents("-0.05", -5);
	expect_cents("-0.5", -50);
	expect_cents("-1.5", -150);
	expect_cents("-100", -10000);
	expect_cents("-0.01", -1);
	/* Negative zero is zero. */
	expect_cents("-0.0", 0);
	expect_cents("-0", 0);
	expect_cents("0.0", 0);
}
END_TEST

START_TEST(test_not_numbers)
{
	int64_t c = SENTINEL;

	expect_rejected("\"1.00\"");
	expect_rejected("\"100\"");
	expect_rejected("null");
	expect_rejected("true");
	expect_rejected("false");
	expect_rejected("[1]");
	expect_rejected("{\"amount\":1}");
	ck_assert_int_eq(zc_money_from_json(NULL, &c), ZC_ERR_INVALID);
	ck_assert(c == SENTINEL);
}
END_TEST

/* dumps(zc_money_json_new(cents)) == want */
static void
expect_json_text(int64_t cents, const char *want)
{
	json_t *v = zc_money_json_new(cents);
	char *s;

	ck_assert_msg(v != NULL, "json_new(%lld) failed", (long long)cents);
	s = zc_json_dumps(v);
	ck_assert_ptr_nonnull(s);
	ck_assert_msg(strcmp(s, want) == 0, "%lld cents printed as %s, want %s",
		      (long long)cents, s, want);
	free(s);
	json_decref(v);
}

START_TEST(test_json_new_prints)
{
	expect_json_text(30, "0.3");
	expect_json_text(10050, "100.5");
	expect_json_text(10000, "100");
	expect_json_text(-5, "-0.05");
	expect_json_text(0, "0");
	expect_json_text(1, "0.01");
	expect_json_text(99, "0.99");
	expect_json_text(-10000, "-100");
	expect_json_text(12345678925, "123456789.25");
	expect_json_text(ZC_MONEY_MAX, "9999999999999.99");
	expect_json_text(-ZC_MONEY_MAX, "-9999999999999.99");
	expect_json_text(ZC_MONEY_MAX - 99, "9999999999999");
}
END_TEST

START_TEST(test_json_new_range)
{
	ck_assert_ptr_null(zc_money_json_new(ZC_MONEY_MAX + 1));
	ck_assert_ptr_null(zc_money_json_new(-ZC_MONEY_MAX - 1));
	ck_assert_ptr_null(zc_money_json_new(INT64_MAX));
	ck_assert_ptr_null(zc_money_json_new(INT64_MIN));
}
END_TEST

static void
expect_format(int64_t cents, const char *want)
{
	char buf[24];

	memset(buf, 'X', sizeof(buf));
	ck_assert_ptr_eq(zc_money_format(cents, buf, sizeof(buf)), buf);
	ck_assert_msg(strcmp(buf, want) == 0,
		      "%lld cents formatted as %s, "
		      "want %s",
		      (long long)cents, buf, want);
}

START_TEST(test_format)
{
	char small[4];

	expect_format(30, "0.3");
	expect_format(10050, "100.5");
	expect_format(10000, "100");
	expect_format(-5, "-0.05");
	expect_format(5, "0.05");
	expect_format(0, "0");
	expect_format(-100, "-1");
	expect_format(-150, "-1.5");
	expect_format(-199, "-1.99");
	expect_format(ZC_MONEY_MAX, "9999999999999.99");
	/* The whole int64 range fits in the documented 24 bytes. */
	expect_format(INT64_MAX, "92233720368547758.07");
	expect_format(INT64_MIN, "-92233720368547758.08");

	/* A small buffer truncates but stays a string. */
	memset(small, 'X', sizeof(small));
	zc_money_format(10050, small, sizeof(small));
	ck_assert_str_eq(small, "100");
	/* size 0: nothing written. */
	small[0] = 'Z';
	ck_assert_ptr_eq(zc_money_format(10050, small, 0), small);
	ck_assert_int_eq(small[0], 'Z');
}
END_TEST

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A cent value in [-ZC_MONEY_MAX, ZC_MONEY_MAX], biased so small amounts,
 * whole amounts and the range ends all get their share. */
static int64_t
random_cents(uint64_t *seed, int i)
{
	uint64_t r = xorshift(seed);
	int64_t c;

	switch (i % 4) {
	case 0: /* anywhere in range */
		c = (int64_t)(r % (2 * (uint64_t)ZC_MONEY_MAX + 1)) -
		    ZC_MONEY_MAX;
		break;
	case 1: /* everyday amounts */
		c = (int64_t)(r % 2000001) - 1000000;
		break;
	case 2: /* near the ends of the range */
		c = ZC_MONEY_MAX - (int64_t)(r % 100000);
		if (r & 1)
			c = -c;
		break;
	default: /* whole amounts, and one decimal */
		c = ((int64_t)(r % 20000001) - 10000000) * ((r & 1) ? 100 : 10);
		break;
	}
	return c;
}

START_TEST(test_roundtrip_property)
{
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	int i;

	for (i = 0; i < 100000; i++) {
		int64_t c = random_cents(&seed, i), back = SENTINEL;
		char want[24], *text;
		json_t *v, *parsed;

		v = zc_money_json_new(c);
		REQUIRE(v != NULL, "json_new(%lld)", (long long)c);
		text = zc_json_dumps(v);
		REQUIRE(text != NULL, "dumps failed");
		zc_money_format(c, want, sizeof(want));
		REQUIRE(strcmp(text, want) == 0,
			"%lld cents: wire \"%s\", format \"%s\"", (long long)c,
			text, want);
		parsed = json_loads(text, JSON_DECODE_ANY, NULL);
		REQUIRE(parsed != NULL, "wire text %s does not parse", text);
		REQUIRE(zc_money_from_json(parsed, &back) == ZC_OK,
			"%s (from %lld) rejected", text, (long long)c);
		REQUIRE(back == c, "%lld -> %s -> %lld", (long long)c, text,
			(long long)back);
		/* The value itself (no text in between) reads back too. */
		back = SENTINEL;
		REQUIRE(zc_money_from_json(v, &back) == ZC_OK && back == c,
			"%lld: value reads back as %lld", (long long)c,
			(long long)back);
		json_decref(parsed);
		json_decref(v);
		free(text);
	}
}
END_TEST

/* Any third decimal digit that is not zero is refused, at any magnitude. */
START_TEST(test_three_decimals_property)
{
	uint64_t seed = 0xdeadbeefcafef00dULL;
	int i;

	for (i = 0; i < 20000; i++) {
		uint64_t r = xorshift(&seed);
		/* mills with a non-zero last digit, up to 1e11 (9 digits
		 * before the point: a double still tells .xx1 from .xx0) */
		int64_t mills = (int64_t)(r % 100000000000ULL);
		char text[40];
		json_t *v;
		int64_t c = SENTINEL;

		if (mills % 10 == 0)
			mills++;
		snprintf(text, sizeof(text), "%s%lld.%03lld",
			 (r >> 63) ? "-" : "", (long long)(mills / 1000),
			 (long long)(mills % 1000));
		v = json_loads(text, JSON_DECODE_ANY, NULL);
		REQUIRE(v != NULL, "cannot parse %s", text);
		REQUIRE(zc_money_from_json(v, &c) == ZC_ERR_INVALID,
			"%s accepted as %lld cents", text, (long long)c);
		json_decref(v);
	}
}
END_TEST

static Suite *
money_suite(void)
{
	Suite *s = suite_create("money");
	TCase *tc = tcase_create("from_json");

	tcase_add_test(tc, test_integers);
	tcase_add_test(tc, test_reals_up_to_two_decimals);
	tcase_add_test(tc, test_more_than_two_decimals);
	tcase_add_test(tc, test_range_boundaries);
	tcase_add_test(tc, test_negative);
	tcase_add_test(tc, test_not_numbers);
	suite_add_tcase(s, tc);

	tc = tcase_create("to_json");
	tcase_add_test(tc, test_json_new_prints);
	tcase_add_test(tc, test_json_new_range);
	tcase_add_test(tc, test_format);
	suite_add_tcase(s, tc);

	tc = tcase_create("property");
	tcase_add_test(tc, test_roundtrip_property);
	tcase_add_test(tc, test_three_decimals_property);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(money_suite());
}
