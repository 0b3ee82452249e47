/*
 * json.c - compact JSON encoding that matches Go's encoding/json on the wire
 * (the seed's contract): no spaces, object keys in insertion order, numbers
 * in their shortest round-trip form without a trailing ".0" (Go prints 100,
 * 100.5 and 0.3, where jansson's dumper prints 100.0 and
 * 0.29999999999999999).  Encoding only: the field helpers that answer
 * 400 are in http/fields.c.
 */
#include "core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	/* +2: room for the NUL and for the newline zc_res_json appends */
	if (b->len + n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;
		char *np;
		while (cap < b->len + n + 2)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
put_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;
	char esc[8];

	put(b, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *rep = NULL;
		size_t replen = 2;

		switch (c) {
		case '"':
			rep = "\\\"";
			break;
		case '\\':
			rep = "\\\\";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\t':
			rep = "\\t";
			break;
		default:
			if (c < 0x20) {
				esc[0] = '\\';
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				rep = esc;
				replen = 6;
			} else if (c == 0xE2 && i + 2 < n &&
				   (unsigned char)s[i + 1] == 0x80 &&
				   ((unsigned char)s[i + 2] & 0xFE) == 0xA8) {
				/* U+2028/U+2029 break JavaScript; Go escapes
				 * them, so do we. */
				memcpy(esc,
				       (unsigned char)s[i + 2] == 0xA8
					       ? "\\u2028"
					       : "\\u2029",
				       6);
				rep = esc;
				replen = 6;
				put(b, s + start, i - start);
				put(b, rep, replen);
				i += 2;
				start = i + 1;
				continue;
			}
		}
		if (rep != NULL) {
			put(b, s + start, i - start);
			put(b, rep, replen);
			start = i + 1;
		}
	}
	put(b, s + start, n - start);
	put(b, "\"", 1);
}

/*
 * The common case without printf or strtod: a value with at most six
 * decimals (every amount of money) whose digits m / 10^k give back v.
 * Division of two exact doubles is correctly rounded, so m / 10^k == v
 * means the decimal reads back as v; the first (smallest) k is the
 * shortest form, and below 1e9 a 10^-6 step is wider than v's ulp, so no
 * other m of that k could also read back.  Other values return false.
 */
static bool
put_real_short(struct buf *b, double v)
{
	static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
	char out[32], *p = out + sizeof(out);
	unsigned long long m, ip, fp;
	double a = fabs(v), r;
	int k, i;

	if (!(a >= 1e-4 && a < 1e9))
		return false;
	for (k = 0; k <= 6; k++) {
		r = nearbyint(a * p10[k]);
		if (r / p10[k] == a)
			break;
	}
	if (k > 6)
		return false;
	m = (unsigned long long)r;
	ip = m / (unsigned long long)p10[k];
	fp = m % (unsigned long long)p10[k];
	if (k > 0) {
		for (i = 0; i < k; i++) {
			*--p = (char)('0' + fp % 10);
			fp /= 10;
		}
		*--p = '.';
	}
	do {
		*--p = (char)('0' + ip % 10);
		ip /= 10;
	} while (ip > 0);
	if (signbit(v))
		*--p = '-';
	put(b, p, (size_t)(out + sizeof(out) - p));
	return true;
}

/* Go's strconv.FormatFloat(v, 'f' or 'e', -1, 64) as encoding/json uses it. */
static void
put_real(struct buf *b, double v)
{
	char e[40], out[64], digits[24];
	int prec, exp = 0, nd = 0, i, o = 0;
	const char *p;

	if (isfinite(v) && put_real_short(b, v))
		return;
	if (!isfinite(v)) {
		put(b, "null", 4);
		return;
	}
	if (v == 0) {
		put(b, signbit(v) ? "-0" : "0", signbit(v) ? 2 : 1);
		return;
	}
	/*
	 * The shortest digit count that reads back equal.  A normal double
	 * needs at least 15 (DBL_DIG) unless trailing zeros, trimmed below,
	 * make it shorter; subnormals carry less precision, so search all.
	 */
	for (prec = isnormal(v) ? 15 : 1; prec <= 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	/* e = "-d.ddde+XX": collect digits without trailing zeros. */
	p = e;
	if (*p == '-') {
		out[o++] = '-';
		p++;
	}
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	if (*p == 'e')
		exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	/*
	 * Go: fixed notation for 1e-6 <= |v| < 1e21, else exponent.  One
	 * departure: a value beyond int64 would print as a digit string that
	 * jansson (and so every Zenith C function) reads as an integer and
	 * rejects, so from 2^63 up the exponent form is used.
	 */
	if (exp >= -6 && exp < 21 && fabs(v) < 9223372036854775808.0) {
		if (exp < 0) {
			out[o++] = '0';
			out[o++] = '.';
			for (i = 0; i < -exp - 1; i++)
				out[o++] = '0';
			for (i = 0; i < nd; i++)
				out[o++] = digits[i];
		} else {
			for (i = 0; i <= exp; i++)
				out[o++] = i < nd ? digits[i] : '0';
			if (nd > exp + 1) {
				out[o++] = '.';
				for (i = exp + 1; i < nd; i++)
					out[o++] = digits[i];
			}
		}
	} else {
		out[o++] = digits[0];
		if (nd > 1) {
			out[o++] = '.';
			for (i = 1; i < nd; i++)
				out[o++] = digits[i];
		}
		o += snprintf(out + o, sizeof(out) - (size_t)o, "e%c%02d",
			      exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	}
	put(b, out, (size_t)o);
}

static void
put_value(struct buf *b, const json_t *v)
{
	char num[32];
	int n;

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *item;
		int first = 1;

		put(b, "{", 1);
		json_object_foreach ((json_t *)v, key, item) {
			if (!first)
				put(b, ",", 1);
			first = 0;
			put_string(b, key, strlen(key));
			put(b, ":", 1);
			put_value(b, item);
		}
		put(b, "}", 1);
		break;
	}
	case JSON_ARRAY: {
		size_t i;

		put(b, "[", 1);
		for (i = 0; i < json_array_size(v); i++) {
			if (i)
				put(b, ",", 1);
			put_value(b, json_array_get(v, i));
		}
		put(b, "]", 1);
		break;
	}
	case JSON_STRING:
		put_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			     json_integer_value(v));
		put(b, num, (size_t)n);
		break;
	case JSON_REAL:
		put_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		put(b, "true", 4);
		break;
	case JSON_FALSE:
		put(b, "false", 5);
		break;
	case JSON_NULL:
		put(b, "null", 4);
		break;
	}
}

/*
 * The length of the UTF-8 sequence at s (n bytes left): 1 to 4, or 0 when
 * it is not valid UTF-8 (overlong, a surrogate, past U+10FFFF, cut short).
 * The OTLP encoders use it too.
 */
size_t
zc__utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned c = s[0];
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, past U+10FFFF */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* Is s[0..n) UTF-8 without NUL (what json_pack accepts as a string)? */
static bool
utf8_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if (p[i] == 0 || (k = zc__utf8_seq(p + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

#define PACK_DEPTH  16
#define PACK_KEYS   32
#define PACK_STOLEN 16

struct pack {
	struct buf b;
	const char *f;
	va_list *ap;
	json_t *stolen[PACK_STOLEN]; /* 'o' values, released on success */
	int nstolen;
};

static void
pack_skip(struct pack *pk)
{
	while (*pk->f == ' ' || *pk->f == '\t' || *pk->f == '\n' ||
	       *pk->f == ':' || *pk->f == ',')
		pk->f++;
}

/* An 's', 's#' or 's%' string at pk->f (just past the 's'). */
static bool
pack_string(struct pack *pk, const char **s, size_t *n, bool *null_ok)
{
	*s = va_arg(*pk->ap, const char *);
	if (*pk->f == '#') {
		pk->f++;
		*n = (size_t)va_arg(*pk->ap, int);
	} else if (*pk->f == '%') {
		pk->f++;
		*n = va_arg(*pk->ap, size_t);
	} else {
		*n = *s != NULL ? strlen(*s) : 0;
	}
	*null_ok = false;
	if (*pk->f == '?') {
		pk->f++;
		*null_ok = true;
	}
	if (*pk->f == '+' || *pk->f == '*')
		return false; /* concatenation, optional members: jansson */
	if (*s == NULL)
		return *null_ok;
	return utf8_ok(*s, *n);
}

static bool pack_value(struct pack *pk, int depth);

static bool
pack_object(struct pack *pk, int depth)
{
	const char *keys[PACK_KEYS];
	size_t klen[PACK_KEYS];
	int nkeys = 0, i;

	put(&pk->b, "{", 1);
	for (;;) {
		const char *k;
		size_t n;
		bool null_ok;

		pack_skip(pk);
		if (*pk->f == '}') {
			pk->f++;
			put(&pk->b, "}", 1);
			return true;
		}
		if (*pk->f != 's' || nkeys == PACK_KEYS)
			return false;
		pk->f++;
		if (!pack_string(pk, &k, &n, &null_ok) || k == NULL || null_ok)
			return false;
		/* a repeated key replaces its value in jansson */
		for (i = 0; i < nkeys; i++)
			if (klen[i] == n && memcmp(keys[i], k, n) == 0)
				return false;
		keys[nkeys] = k;
		klen[nkeys++] = n;
		if (nkeys > 1)
			put(&pk->b, ",", 1);
		put_string(&pk->b, k, n);
		put(&pk->b, ":", 1);
		pack_skip(pk);
		if (!pack_value(pk, depth + 1))
			return false;
	}
}

static bool
pack_value(struct pack *pk, int depth)
{
	char num[32];
	const char *s;
	size_t n;
	bool null_ok, first;
	json_t *o;
	double d;
	int len;

	char c;

	if (depth > PACK_DEPTH)
		return false;
	pack_skip(pk);
	switch ((c = *pk->f++)) {
	case '{':
		return pack_object(pk, depth);
	case '[':
		put(&pk->b, "[", 1);
		for (first = true;; first = false) {
			pack_skip(pk);
			if (*pk->f == ']') {
				pk->f++;
				put(&pk->b, "]", 1);
				return true;
			}
			if (!first)
				put(&pk->b, ",", 1);
			if (!pack_value(pk, depth + 1))
				return false;
		}
	case 's':
		if (!pack_string(pk, &s, &n, &null_ok))
			return false;
		if (s == NULL)
			put(&pk->b, "null", 4);
		else
			put_string(&pk->b, s, n);
		return true;
	case 'n':
		put(&pk->b, "null", 4);
		return true;
	case 'b':
		if (va_arg(*pk->ap, int))
			put(&pk->b, "true", 4);
		else
			put(&pk->b, "false", 5);
		return true;
	case 'i':
		len = snprintf(num, sizeof(num), "%d", va_arg(*pk->ap, int));
		put(&pk->b, num, (size_t)len);
		return true;
	case 'I':
		len = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			       va_arg(*pk->ap, json_int_t));
		put(&pk->b, num, (size_t)len);
		return true;
	case 'f':
		d = va_arg(*pk->ap, double);
		if (!isfinite(d))
			return false; /* jansson's error to report */
		put_real(&pk->b, d);
		return true;
	case 'o':
	case 'O':
		o = va_arg(*pk->ap, json_t *);
		null_ok = *pk->f == '?';
		if (null_ok)
			pk->f++;
		if (*pk->f == '*')
			return false;
		if (o == NULL) {
			if (!null_ok)
				return false;
			put(&pk->b, "null", 4);
			return true;
		}
		if (c == 'o') {
			if (pk->nstolen == PACK_STOLEN)
				return false;
			pk->stolen[pk->nstolen++] = o;
		}
		put_value(&pk->b, o);
		return true;
	default:
		return false;
	}
}

/*
 * json_pack's format written straight to compact text, with no tree built
 * and freed on the way: what zc_res_jsonf and zc_call_jsonf run for every
 * answer and call.  Returns NULL for anything it does not do exactly as
 * jansson would (a NULL string, invalid UTF-8, a repeated key, 's+', '*',
 * a format error, no memory); the caller then runs json_vpack_ex on a copy
 * of the arguments, so results, errors and ownership are jansson's.  On
 * success the 'o' values are released, as json_pack steals them.
 */
char *
zc__json_vpackf(const char *fmt, va_list ap, size_t *len)
{
	struct pack pk;
	va_list aq;
	int i;

	memset(&pk, 0, sizeof(pk));
	va_copy(aq, ap);
	pk.f = fmt;
	pk.ap = &aq;
	if (!pack_value(&pk, 0) || (pack_skip(&pk), *pk.f != '\0') ||
	    pk.b.oom || pk.b.p == NULL) {
		va_end(aq);
		free(pk.b.p);
		return NULL;
	}
	va_end(aq);
	for (i = 0; i < pk.nstolen; i++)
		json_decref(pk.stolen[i]);
	*len = pk.b.len;
	return pk.b.p;
}

char *
zc__json_dump(const json_t *value, size_t *len)
{
	struct buf b = {0};

	if (value == NULL)
		return NULL;
	put_value(&b, value);
	if (b.oom || b.p == NULL) {
		free(b.p);
		return NULL;
	}
	if (len != NULL)
		*len = b.len;
	return b.p;
}

char *
zc_json_dumps(const json_t *value)
{
	return zc__json_dump(value, NULL);
}
