/*
 * money.c - exact money in integer minor units (cents).  The seed kept
 * balances in float64, so 0.1 + 0.2 drifted; here every amount is checked to
 * have at most two decimals and is added as an integer.
 */
#include "core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

zc_err
zc_money_from_json(const json_t *value, int64_t *cents)
{
	char text[40];
	double x, scaled;
	long long c;

	if (json_is_integer(value)) {
		json_int_t i = json_integer_value(value);
		if (i > ZC_MONEY_MAX / 100 || i < -(ZC_MONEY_MAX / 100))
			return ZC_ERR_INVALID;
		*cents = (int64_t)i * 100;
		return ZC_OK;
	}
	if (!json_is_real(value))
		return ZC_ERR_INVALID;
	x = json_real_value(value);
	if (!isfinite(x))
		return ZC_ERR_INVALID;
	scaled = x * 100.0;
	if (fabs(scaled) > (double)ZC_MONEY_MAX)
		return ZC_ERR_INVALID;
	/*
	 * The JSON text is gone (jansson keeps the double), so "at most two
	 * decimals" is decided exactly by a round trip: the nearest cent
	 * value, printed as a two-decimal string, must parse back to the very
	 * same double.  0.125 -> 13 -> "0.13" != 0.125: rejected.
	 */
	c = llround(scaled);
	if (c > ZC_MONEY_MAX || c < -ZC_MONEY_MAX)
		return ZC_ERR_INVALID;
	zc_money_format(c, text, sizeof(text));
	if (strtod(text, NULL) != x)
		return ZC_ERR_INVALID;
	*cents = c;
	return ZC_OK;
}

char *
zc_money_format(int64_t cents, char *buf, size_t size)
{
	unsigned long long a;
	unsigned frac;

	if (size == 0)
		return buf;
	a = cents < 0 ? 0ULL - (unsigned long long)cents
		      : (unsigned long long)cents;
	frac = (unsigned)(a % 100);
	if (frac == 0)
		snprintf(buf, size, "%s%llu", cents < 0 ? "-" : "", a / 100);
	else if (frac % 10 == 0)
		snprintf(buf, size, "%s%llu.%u", cents < 0 ? "-" : "", a / 100,
			 frac / 10);
	else
		snprintf(buf, size, "%s%llu.%02u", cents < 0 ? "-" : "",
			 a / 100, frac);
	return buf;
}

json_t *
zc_money_json_new(int64_t cents)
{
	if (cents > ZC_MONEY_MAX || cents < -ZC_MONEY_MAX)
		return NULL;
	if (cents % 100 == 0)
		return json_integer((json_int_t)(cents / 100));
	/*
	 * cents is exact in a double (< 2^53) and the division is correctly
	 * rounded, so the double is the one nearest to the decimal and the
	 * shortest-form encoder in json.c prints the decimal itself.
	 */
	return json_real((double)cents / 100.0);
}
