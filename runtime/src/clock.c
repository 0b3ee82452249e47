/*
 * clock.c - the two clocks the runtime uses: a monotonic one for deadlines
 * and durations (immune to NTP steps), and wall time for timestamps.
 */
#include "internal.h"

#include <stdio.h>
#include <time.h>

long long
zc__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

char *
zc_timestamp(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;
	char frac[16];
	int len;

	if (size == 0)
		return buf;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	/* Go's RFC3339Nano drops trailing zeros of the fraction. */
	len = snprintf(frac, sizeof(frac), ".%09ld", ts.tv_nsec);
	while (len > 1 && frac[len - 1] == '0')
		frac[--len] = '\0';
	if (len == 1)
		frac[0] = '\0';
	snprintf(buf + n, size - n, "%sZ", frac);
	return buf;
}
