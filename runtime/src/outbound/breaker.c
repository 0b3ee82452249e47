/*
 * breaker.c - a circuit breaker per downstream target with sony/gobreaker
 * semantics: closed -> open after N consecutive failures; open fails calls
 * at once for a timeout; then half-open admits M probes, where one failure
 * re-opens and M successes close.  Results from an older generation (a call
 * that started before the last state change) are ignored, as in gobreaker.
 */
#include "outbound.h"

#include <string.h>

void
zc__breaker_init(struct zc_breaker *b, unsigned failures, long open_ms,
		 unsigned probes)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	b->failures_to_open = failures;
	b->open_ns = (long long)open_ms * 1000000LL;
	b->probes = probes > 0 ? probes : 1;
	b->state = ZC_BREAKER_CLOSED;
}

static void
set_state(struct zc_breaker *b, int state, long long now)
{
	b->state = state;
	b->generation++;
	b->requests = b->successes = b->consecutive_failures = 0;
	b->expiry_ns = state == ZC_BREAKER_OPEN ? now + b->open_ns : 0;
}

/* Open moves to half-open lazily, on the first look after its expiry. */
static void
refresh(struct zc_breaker *b, long long now)
{
	if (b->state == ZC_BREAKER_OPEN && now >= b->expiry_ns)
		set_state(b, ZC_BREAKER_HALF_OPEN, now);
}

zc_err
zc__breaker_allow(struct zc_breaker *b, unsigned *generation,
		  long *retry_after_ms)
{
	long long now = zc__now_ns();
	zc_err err = ZC_OK;

	if (b->failures_to_open == 0)
		return ZC_OK; /* breaker disabled */
	pthread_mutex_lock(&b->mu);
	refresh(b, now);
	if (b->state == ZC_BREAKER_OPEN) {
		err = ZC_ERR_BREAKER_OPEN;
		if (retry_after_ms != NULL)
			*retry_after_ms =
				(long)((b->expiry_ns - now) / 1000000LL) + 1;
	} else if (b->state == ZC_BREAKER_HALF_OPEN &&
		   b->requests >= b->probes) {
		/* gobreaker's ErrTooManyRequests: probes are in flight */
		err = ZC_ERR_BREAKER_OPEN;
		if (retry_after_ms != NULL)
			*retry_after_ms = 1000;
	} else {
		b->requests++;
		*generation = b->generation;
	}
	pthread_mutex_unlock(&b->mu);
	return err;
}

void
zc__breaker_done(struct zc_breaker *b, unsigned generation, bool success)
{
	long long now = zc__now_ns();

	if (b->failures_to_open == 0)
		return;
	pthread_mutex_lock(&b->mu);
	refresh(b, now);
	if (generation != b->generation) {
		pthread_mutex_unlock(&b->mu);
		return; /* a result from before the last state change */
	}
	if (success) {
		b->consecutive_failures = 0;
		b->successes++;
		if (b->state == ZC_BREAKER_HALF_OPEN &&
		    b->successes >= b->probes)
			set_state(b, ZC_BREAKER_CLOSED, now);
	} else {
		b->successes = 0;
		b->consecutive_failures++;
		if (b->state == ZC_BREAKER_HALF_OPEN ||
		    b->consecutive_failures >= b->failures_to_open)
			set_state(b, ZC_BREAKER_OPEN, now);
	}
	pthread_mutex_unlock(&b->mu);
}

int
zc__breaker_state(struct zc_breaker *b)
{
	int s;

	pthread_mutex_lock(&b->mu);
	refresh(b, zc__now_ns());
	s = b->state;
	pthread_mutex_unlock(&b->mu);
	return s;
}

const char *
zc__breaker_state_name(int state)
{
	switch (state) {
	case ZC_BREAKER_OPEN:
		return "open";
	case ZC_BREAKER_HALF_OPEN:
		return "half-open";
	default:
		return "closed";
	}
}
