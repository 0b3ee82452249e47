/*
 * trace.c - W3C trace context: parsed from `traceparent` (or started when
 * absent or invalid), given a span id of its own, and handed to every
 * outbound call with a fresh parent-id, so one grep for a trace id follows
 * a transaction through every function.  Also the runtime's fast random
 * numbers (ids are random, not secret) and the request this thread serves.
 */
#include "core.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t rng_state[2];
static _Thread_local zc_req *current_req;

static uint64_t
splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* xoroshiro128+, seeded per thread from getrandom. */
uint64_t
zc__rand64(void)
{
	uint64_t s0 = rng_state[0], s1 = rng_state[1], r;

	if ((s0 | s1) == 0) {
		uint64_t seed;
		if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
			seed = (uint64_t)zc__now_ns() ^
			       (uint64_t)(uintptr_t)&seed;
		rng_state[0] = s0 = splitmix(&seed);
		rng_state[1] = s1 = splitmix(&seed);
	}
	r = s0 + s1;
	s1 ^= s0;
	rng_state[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
	rng_state[1] = (s1 << 37) | (s1 >> 27);
	return r;
}

void
zc__hex64(char *out, uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[16] = '\0';
}

/* lower-case hex of exactly n chars, not all zeros */
static bool
valid_id(const char *s, size_t n)
{
	bool nonzero = false;
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		if (c != '0')
			nonzero = true;
	}
	return nonzero;
}

static bool
is_hex2(const char *s)
{
	return ((s[0] >= '0' && s[0] <= '9') || (s[0] >= 'a' && s[0] <= 'f')) &&
	       ((s[1] >= '0' && s[1] <= '9') || (s[1] >= 'a' && s[1] <= 'f'));
}

bool
zc__trace_parse(const char *tp, struct zc_trace *t)
{
	size_t n;

	if (tp == NULL)
		return false;
	n = strlen(tp);
	/* version 00 is exactly 55 chars; a later version may be longer */
	if (n < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
	    !is_hex2(tp) || !is_hex2(tp + 53))
		return false;
	if (tp[0] == 'f' && tp[1] == 'f')
		return false;
	if (tp[0] == '0' && tp[1] == '0' && n != 55)
		return false;
	if (n > 55 && tp[55] != '-')
		return false;
	if (!valid_id(tp + 3, 32) || !valid_id(tp + 36, 16))
		return false;
	memcpy(t->trace_id, tp + 3, 32);
	t->trace_id[32] = '\0';
	memcpy(t->parent_id, tp + 36, 16);
	t->parent_id[16] = '\0';
	memcpy(t->flags, tp + 53, 2);
	t->flags[2] = '\0';
	return true;
}

void
zc__trace_start(struct zc_trace *t, const char *traceparent)
{
	if (!zc__trace_parse(traceparent, t)) {
		uint64_t hi = zc__rand64(), lo = zc__rand64();
		zc__hex64(t->trace_id, hi);
		zc__hex64(t->trace_id + 16, lo);
		t->parent_id[0] = '\0';
		/* sampled: we create the trace, so the decision is ours */
		memcpy(t->flags, "01", 3);
		t->inbound = false;
	} else {
		t->inbound = true;
	}
	zc__hex64(t->span_id, zc__rand64() | 1);
}

void
zc__trace_child(const struct zc_trace *t, char *out, size_t size)
{
	char span[17];

	zc__hex64(span, zc__rand64() | 1);
	snprintf(out, size, "00-%s-%s-%s", t->trace_id, span, t->flags);
}

void
zc__set_current(zc_req *req)
{
	current_req = req;
}

zc_req *
zc__current(void)
{
	return current_req;
}
