/*
 * ids.c - ids and hashes for functions: random ids from the runtime's
 * per-thread generator, stable ids derived from what caused them (the
 * same in every replica, so a redelivery derives the same id), and the
 * FNV-1a hash the runtime's own tables use.
 */
#include "core.h"

#include <stdio.h>
#include <string.h>

#define FNV_PRIME  1099511628211ULL

uint64_t
zc__fnv1a(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;

	while (n--)
		h = (h ^ *s++) * FNV_PRIME;
	return h;
}

uint64_t
zc_hash64(const void *data, size_t len)
{
	return zc__fnv1a(data != NULL ? data : "", data != NULL ? len : 0,
			 ZC__FNV_OFFSET);
}

/* A second, independent 64-bit hash, so a fingerprint is 128 bits. */
uint64_t
zc__mix_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return h;
}

char *
zc_random_id(char *buf, size_t size)
{
	char hex[33];

	if (buf == NULL || size == 0)
		return buf;
	zc__hex64(hex, zc__rand64());
	zc__hex64(hex + 16, zc__rand64());
	if (size > sizeof(hex))
		size = sizeof(hex);
	memcpy(buf, hex, size - 1);
	buf[size - 1] = '\0';
	return buf;
}

zc_err
zc_stable_id(char *buf, size_t size, const char *prefix, const char *a,
	     const char *b)
{
	size_t pl = prefix != NULL ? strlen(prefix) : 0;
	size_t al, bl;
	uint64_t h1, h2;
	char sep = '\n';

	if (buf == NULL || a == NULL)
		return ZC_ERR_INVALID;
	if (size < pl + 33)
		return ZC_ERR_TOO_LARGE;
	al = strlen(a);
	bl = b != NULL ? strlen(b) : 0;
	/* a and b kept apart, so ("ab", "c") and ("a", "bc") differ */
	h1 = zc__fnv1a(a, al, ZC__FNV_OFFSET);
	h1 = zc__fnv1a(&sep, 1, h1);
	h1 = zc__fnv1a(b != NULL ? b : "", bl, h1);
	h2 = zc__mix_hash(a, al) ^
	     (zc__mix_hash(b != NULL ? b : "", bl) * 0x9E3779B97F4A7C15ULL);
	memcpy(buf, prefix != NULL ? prefix : "", pl);
	zc__hex64(buf + pl, h1);
	zc__hex64(buf + pl + 16, h2);
	return ZC_OK;
}
