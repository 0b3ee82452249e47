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

long long
zc__wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * pthread_timedjoin_np takes a wall-clock time; the runtime's deadlines
 * are monotonic.  The wall time deadline_ns + extra_ns (monotonic) stands
 * for, now (a past deadline: now).
 */
void
zc__wall_deadline(long long deadline_ns, long long extra_ns,
		  struct timespec *ts)
{
	long long t = deadline_ns - zc__now_ns() + extra_ns;

	clock_gettime(CLOCK_REALTIME, ts);
	if (t < 0)
		t = 0;
	ts->tv_sec += (time_t)(t / 1000000000LL);
	ts->tv_nsec += (long)(t % 1000000000LL);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* A condition variable whose timed waits use the monotonic clock, immune
 * to NTP steps, like every deadline of the runtime. */
void
zc__cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
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
