/*
 * clock.c - the two clocks the runtime uses: a monotonic one for deadlines
 * and durations (immune to NTP steps), and wall time for timestamps.
 */
#include "core.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

long long
zc__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Every log line and most answers carry a timestamp; gmtime_r and strftime
 * cost more than the rest of a line, and the calendar part changes once a
 * second, so each thread keeps the last one it formatted.
 */
void
zc__utc_seconds(time_t t, char *out)
{
	static _Thread_local time_t last = (time_t)-1;
	static _Thread_local char text[20];
	struct tm tm;

	if (t != last) {
		gmtime_r(&t, &tm);
		if (strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm) !=
		    19)
			memcpy(text, "0000-00-00T00:00:00", 19);
		last = t;
	}
	memcpy(out, text, 19);
}

char *
zc_timestamp(char *buf, size_t size)
{
	struct timespec ts;
	char tmp[32];
	long frac;
	size_t n = 19;
	int i, digits = 9;

	if (size == 0)
		return buf;
	clock_gettime(CLOCK_REALTIME, &ts);
	zc__utc_seconds(ts.tv_sec, tmp);
	/* Go's RFC3339Nano drops trailing zeros of the fraction. */
	frac = ts.tv_nsec;
	while (digits > 0 && frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	if (digits > 0) {
		tmp[n++] = '.';
		for (i = digits - 1; i >= 0; i--) {
			tmp[n + (size_t)i] = (char)('0' + frac % 10);
			frac /= 10;
		}
		n += (size_t)digits;
	}
	tmp[n++] = 'Z';
	if (n >= size)
		n = size - 1; /* cut, as snprintf would */
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return buf;
}
