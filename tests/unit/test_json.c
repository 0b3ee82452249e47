/*
 * test_json.c - the wire encoding (zc_json_dumps: compact, ordered, Go's
 * shortest number form, Go's string escapes) and the field helpers
 * zc_json_string / zc_json_value / zc_json_money as a handler uses them.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "testutil.h"

/*
 * ck_assert records a check point per call (a write to the runner), which
 * dominates a long loop; REQUIRE only speaks on failure.
 */
#define REQUIRE(cond, ...)                                                     \
	do {                                                                   \
		if (!(cond))                                                   \
			ck_abort_msg(__VA_ARGS__);                             \
	} while (0)

/* dumps(v) == want; v is consumed. */
static void
expect_dump(json_t *v, const char *want)
{
	char *s;

	ck_assert_ptr_nonnull(v);
	s = zc_json_dumps(v);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, want);
	free(s);
	json_decref(v);
}

static void
expect_real(double x, const char *want)
{
	json_t *v = json_real(x);
	char *s;

	ck_assert_ptr_nonnull(v);
	s = zc_json_dumps(v);
	ck_assert_ptr_nonnull(s);
	ck_assert_msg(strcmp(s, want) == 0, "%.17g printed as %s, want %s", x,
		      s, want);
	free(s);
	json_decref(v);
}

/* ---- numbers ---- */

START_TEST(test_reals_go_form)
{
	double a = 0.1, b = 0.2;

	expect_real(0.3, "0.3");
	expect_real(0.1, "0.1");
	expect_real(a + b, "0.30000000000000004");
	expect_real(100.0, "100");
	expect_real(100.5, "100.5");
	expect_real(-100.5, "-100.5");
	expect_real(1.0, "1");
	expect_real(-1.0, "-1");
	expect_real(123456789.25, "123456789.25");
	expect_real(0.000001, "0.000001");
	expect_real(0.0000012, "0.0000012");
	expect_real(1e-7, "1e-07");
	expect_real(2.5e-7, "2.5e-07");
	expect_real(-1e-7, "-1e-07");
	/* beyond int64 the exponent form, so jansson reads it back (Go would
	 * write 100000000000000000000, which jansson rejects) */
	expect_real(1e20, "1e+20");
	expect_real(9.3e18, "9.3e+18");
	expect_real(9e18, "9000000000000000000");
	expect_real(123456789012345678901.0, "1.2345678901234568e+20");
	expect_real(1e21, "1e+21");
	expect_real(1.5e21, "1.5e+21");
	expect_real(1e100, "1e+100");
	expect_real(1e-100, "1e-100");
	expect_real(1.0 / 3.0, "0.3333333333333333");
	expect_real(100.0 / 3.0, "33.333333333333336");
	expect_real(1.0000000000000002, "1.0000000000000002");
	expect_real(1.7976931348623157e308, "1.7976931348623157e+308");
	expect_real(2.2250738585072014e-308, "2.2250738585072014e-308");
	expect_real(9007199254740993.0, "9007199254740992");
}
END_TEST

START_TEST(test_zero_and_negative_zero)
{
	expect_real(0.0, "0");
	/* Go's encoding/json prints negative zero as -0. */
	expect_real(-0.0, "-0");
}
END_TEST

/* Subnormals have fewer significant bits; Go still prints the shortest
 * decimal that reads back ("5e-324"). */
START_TEST(test_subnormal_shortest)
{
	expect_real(5e-324, "5e-324");
	expect_real(1e-310, "1e-310");
}
END_TEST

/* Significant digits in s (mantissa only). */
static int
sig_digits(const char *s)
{
	int n = 0, leading = 1, trailing_zeros = 0;

	for (; *s != '\0' && *s != 'e'; s++) {
		if (*s < '0' || *s > '9')
			continue;
		if (leading && *s == '0')
			continue;
		leading = 0;
		n++;
		trailing_zeros = *s == '0' ? trailing_zeros + 1 : 0;
	}
	return n - trailing_zeros;
}

/* Fewest significant digits that read back as x. */
static int
shortest_digits(double x)
{
	char e[40];
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec - 1, x);
		if (strtod(e, NULL) == x)
			break;
	}
	return prec;
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Any normal double prints in a form that reads back exactly and has no
 * more significant digits than needed; and fixed vs exponent notation
 * follows Go's cut-offs (1e-6 <= |x| < 1e21 is fixed).
 */
START_TEST(test_reals_roundtrip_property)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int i;

	for (i = 0; i < 150000; i++) {
		uint64_t bits = xorshift(&seed);
		double x, ax;
		json_t *v;
		char *s;

		/* Mix raw bit patterns with "money-like" decimals and with
		 * up to six decimals either side of 1e9 (json.c's fast path
		 * takes those below it). */
		if (i % 3 == 2) {
			static const double p10[] = {1,   10,  100, 1e3,
						     1e4, 1e5, 1e6};
			x = (double)(int64_t)(bits % 2000000000000001ULL -
					      1000000000000000ULL) /
			    p10[(bits >> 58) % 7];
		} else if (i % 2 == 0) {
			memcpy(&x, &bits, sizeof(x));
		} else {
			x = (double)(int64_t)(bits % 2000000001ULL) / 100.0 -
			    10000000.0;
		}
		if (!isnormal(x))
			continue;
		ax = fabs(x);
		v = json_real(x);
		s = zc_json_dumps(v);
		REQUIRE(s != NULL, "dumps failed");
		REQUIRE(strtod(s, NULL) == x, "%.17g printed as %s", x, s);
		REQUIRE(sig_digits(s) == shortest_digits(x),
			"%.17g printed as %s: %d digits, shortest is %d", x, s,
			sig_digits(s), shortest_digits(x));
		if (ax >= 1e-6 && ax < 9223372036854775808.0)
			REQUIRE(strchr(s, 'e') == NULL,
				"%.17g printed as %s, want fixed", x, s);
		else
			REQUIRE(strstr(s, "e-") != NULL ||
					strstr(s, "e+") != NULL,
				"%.17g printed as %s, want exponent", x, s);
		free(s);
		json_decref(v);
	}
}
END_TEST

START_TEST(test_integers)
{
	expect_dump(json_integer(0), "0");
	expect_dump(json_integer(-1), "-1");
	expect_dump(json_integer(100), "100");
	expect_dump(json_integer(INT64_MAX), "9223372036854775807");
	expect_dump(json_integer(INT64_MIN), "-9223372036854775808");
	/* Integers stay integers: no ".0", no exponent. */
	expect_dump(json_integer(1000000000000000000LL), "1000000000000000000");
}
END_TEST

/* ---- structure ---- */

START_TEST(test_compact_and_ordered)
{
	json_t *o = json_object();

	json_object_set_new(o, "zeta", json_integer(1));
	json_object_set_new(o, "alpha", json_string("a"));
	json_object_set_new(o, "mid", json_true());
	json_object_set_new(o, "beta", json_false());
	json_object_set_new(o, "nil", json_null());
	expect_dump(o,
		    "{\"zeta\":1,\"alpha\":\"a\",\"mid\":true,\"beta\":false,"
		    "\"nil\":null}");

	/* Text parsed in one order is written back in that order. */
	o = json_loads("{ \"b\" : 1 ,\n \"a\" : [ 1 , 2 ] , \"c\" : { } }", 0,
		       NULL);
	expect_dump(o, "{\"b\":1,\"a\":[1,2],\"c\":{}}");
}
END_TEST

START_TEST(test_nested)
{
	json_t *v =
		json_pack("{s:[i, f, {s:n, s:[]}], s:{s:{s:{s:f}}}, s:[[]]}",
			  "a", 1, 2.5, "b", "c", "d", "e", "f", "g", 0.3, "h");

	expect_dump(v, "{\"a\":[1,2.5,{\"b\":null,\"c\":[]}],"
		       "\"d\":{\"e\":{\"f\":{\"g\":0.3}}},\"h\":[[]]}");
	expect_dump(json_array(), "[]");
	expect_dump(json_object(), "{}");
	/* Scalars at the top level (JSON_DECODE_ANY peers send them). */
	expect_dump(json_string("x"), "\"x\"");
	expect_dump(json_null(), "null");
	expect_dump(json_true(), "true");
	ck_assert_ptr_null(zc_json_dumps(NULL));
}
END_TEST

/* ---- strings ---- */

START_TEST(test_string_escapes)
{
	expect_dump(json_string("say \"hi\""), "\"say \\\"hi\\\"\"");
	expect_dump(json_string("C:\\dir\\f"), "\"C:\\\\dir\\\\f\"");
	expect_dump(json_string("a\nb\rc\td"), "\"a\\nb\\rc\\td\"");
	expect_dump(json_string("\x01\x1f"), "\"\\u0001\\u001f\"");
	expect_dump(json_string("x\x7fy"), "\"x\x7fy\""); /* DEL is legal */
	expect_dump(json_stringn("a\0b", 3), "\"a\\u0000b\"");
	/* "/" and non-ASCII pass through unescaped, as in Go. */
	expect_dump(json_string("a/b caf\xc3\xa9 \xe2\x82\xac"),
		    "\"a/b caf\xc3\xa9 \xe2\x82\xac\"");
	/* Unlike Go's default, <, > and & are not HTML-escaped (docs/api.md). */
	expect_dump(json_string("<a href=\"x\">&</a>"),
		    "\"<a href=\\\"x\\\">&</a>\"");
	/* U+2028 and U+2029 are escaped (they end a line in JavaScript). */
	expect_dump(json_string("a\xe2\x80\xa8"
				"b\xe2\x80\xa9"
				"c"),
		    "\"a\\u2028b\\u2029c\"");
	/* U+202A, a neighbour, is not. */
	expect_dump(json_string("\xe2\x80\xaa"), "\"\xe2\x80\xaa\"");
	/* A 2028 sequence at the very end of the string. */
	expect_dump(json_string("\xe2\x80\xa8"), "\"\\u2028\"");
	expect_dump(json_string(""), "\"\"");
}
END_TEST

START_TEST(test_key_escapes)
{
	json_t *o = json_object();

	json_object_set_new(o, "k\"e\\y\n", json_integer(1));
	expect_dump(o, "{\"k\\\"e\\\\y\\n\":1}");
}
END_TEST

/* The encoding read back by jansson is the same value. */
START_TEST(test_dump_parses_back)
{
	json_t *v = json_pack("{s:s, s:[f, f, I], s:s}", "s",
			      "\"\\\n\x01\xe2\x80\xa8", "n", 0.1 + 0.2, 1e-7,
			      (json_int_t)INT64_MIN, "u", "caf\xc3\xa9");
	json_t *back;
	char *s = zc_json_dumps(v);

	ck_assert_ptr_nonnull(s);
	back = json_loads(s, 0, NULL);
	ck_assert_ptr_nonnull(back);
	ck_assert(json_equal(v, back));
	free(s);
	json_decref(back);
	json_decref(v);
}
END_TEST

/* ---- through a handler: the wire form and the field helpers ---- */

static int
h_wire(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_json(
		res, 200,
		json_pack("{s:f, s:f, s:i}", "a", 0.3, "b", 100.0, "c", 7));
}

static int
h_string(zc_req *req, zc_res *res, void *arg)
{
	const char *name;
	json_t *in;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_string(in, "name", &name, res) != 0)
		return 0;
	return zc_res_jsonf(res, 200, "{s:s}", "name", name);
}

static int
h_value(zc_req *req, zc_res *res, void *arg)
{
	json_t *in, *v;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_value(in, "v", &v, res) != 0)
		return 0;
	return zc_res_jsonf(res, 200, "{s:O}", "v", v);
}

static int
h_money(zc_req *req, zc_res *res, void *arg)
{
	json_t *in;
	int64_t cents = 12345;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_money(in, "amount", &cents, res) != 0)
		return 0;
	return zc_res_jsonf(res, 200, "{s:I}", "cents", (json_int_t)cents);
}

/* The helpers given no object at all (a handler that skipped the check). */
static int
h_null_obj(zc_req *req, zc_res *res, void *arg)
{
	const char *s = "unchanged";

	(void)req;
	(void)arg;
	if (zc_json_string(NULL, "name", &s, res) != ZC_ERR_INVALID)
		return -1;
	if (strcmp(s, "unchanged") != 0)
		return -1;
	return 0;
}

static int
setup_helpers(zc_app *app)
{
	if (zc_route(app, "GET", "/wire", h_wire, NULL) ||
	    zc_route(app, "POST", "/string", h_string, NULL) ||
	    zc_route(app, "POST", "/value", h_value, NULL) ||
	    zc_route(app, "POST", "/money", h_money, NULL) ||
	    zc_route(app, "POST", "/null", h_null_obj, NULL))
		return -1;
	return 0;
}

static zc_res *
post(zc_app *app, const char *path, const char *body)
{
	zc_res *res = zc_test_request(app, "POST", path, NULL, body);

	ck_assert_ptr_nonnull(res);
	return res;
}

/* status, and the body is exactly want (plus the trailing newline). */
static void
expect_body(zc_app *app, const char *path, const char *body, int status,
	    const char *want)
{
	zc_res *res = post(app, path, body);
	char *got = body_copy(res);
	size_t n = strlen(want);

	ck_assert_msg(zc_res_get_status(res) == status,
		      "POST %s %s -> %d %s, want %d", path, body,
		      zc_res_get_status(res), got, status);
	ck_assert_msg(strncmp(got, want, n) == 0 && got[n] == '\n' &&
			      got[n + 1] == '\0',
		      "POST %s %s -> %s, want %s", path, body, got, want);
	free(got);
	zc_res_free(res);
}

/* A 400 whose JSON error mentions mention. */
static void
expect_400(zc_app *app, const char *path, const char *body, const char *mention)
{
	zc_res *res = post(app, path, body);
	char *got = body_copy(res);
	json_t *v, *e;

	ck_assert_msg(zc_res_get_status(res) == 400, "POST %s %s -> %d %s",
		      path, body, zc_res_get_status(res), got);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	v = json_loads(got, 0, NULL);
	ck_assert_msg(v != NULL, "400 body is not JSON: %s", got);
	e = json_object_get(v, "error");
	ck_assert(json_is_string(e));
	ck_assert_msg(strstr(json_string_value(e), mention) != NULL,
		      "POST %s %s: error \"%s\" does not mention \"%s\"", path,
		      body, json_string_value(e), mention);
	json_decref(v);
	free(got);
	zc_res_free(res);
}

START_TEST(test_wire_form)
{
	zc_app *app = zc_test_app(setup_helpers);
	zc_res *res;
	char *body;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/wire", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	/* Go's json.Encoder form: compact, then one newline. */
	body = body_copy(res);
	ck_assert_str_eq(body, "{\"a\":0.3,\"b\":100,\"c\":7}\n");
	free(body);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

START_TEST(test_json_string_helper)
{
	zc_app *app = zc_test_app(setup_helpers);

	ck_assert_ptr_nonnull(app);
	expect_body(app, "/string", "{\"name\":\"ann\"}", 200,
		    "{\"name\":\"ann\"}");
	expect_body(app, "/string", "{\"name\":\"\"}", 200, "{\"name\":\"\"}");
	expect_400(app, "/string", "{}", "name");
	expect_400(app, "/string", "{\"other\":\"x\"}", "missing");
	expect_400(app, "/string", "{\"name\":42}", "name");
	expect_400(app, "/string", "{\"name\":null}", "string");
	expect_400(app, "/string", "{\"name\":[\"a\"]}", "string");
	expect_400(app, "/string", "{\"name\":{}}", "string");
	/* Not an object. */
	expect_400(app, "/string", "[\"name\"]", "object");
	expect_400(app, "/string", "\"name\"", "object");
	expect_400(app, "/string", "3", "object");
	expect_400(app, "/string", "null", "object");
	zc_app_free(app);
}
END_TEST

START_TEST(test_json_value_helper)
{
	zc_app *app = zc_test_app(setup_helpers);

	ck_assert_ptr_nonnull(app);
	/* Any present value, null included. */
	expect_body(app, "/value", "{\"v\":null}", 200, "{\"v\":null}");
	expect_body(app, "/value", "{\"v\":{\"x\":[1,0.5]}}", 200,
		    "{\"v\":{\"x\":[1,0.5]}}");
	expect_body(app, "/value", "{\"v\":\"s\"}", 200, "{\"v\":\"s\"}");
	expect_400(app, "/value", "{\"w\":1}", "\"v\"");
	expect_400(app, "/value", "[1]", "object");
	zc_app_free(app);
}
END_TEST

START_TEST(test_json_money_helper)
{
	zc_app *app = zc_test_app(setup_helpers);

	ck_assert_ptr_nonnull(app);
	expect_body(app, "/money", "{\"amount\":1.25}", 200, "{\"cents\":125}");
	expect_body(app, "/money", "{\"amount\":7}", 200, "{\"cents\":700}");
	expect_body(app, "/money", "{\"amount\":-0.05}", 200, "{\"cents\":-5}");
	expect_body(app, "/money", "{\"amount\":0.1}", 200, "{\"cents\":10}");
	expect_400(app, "/money", "{}", "amount");
	expect_400(app, "/money", "{\"amount\":\"1.25\"}", "number");
	expect_400(app, "/money", "{\"amount\":null}", "number");
	expect_400(app, "/money", "{\"amount\":true}", "number");
	expect_400(app, "/money", "{\"amount\":0.125}", "amount");
	expect_400(app, "/money", "{\"amount\":1e16}", "amount");
	expect_400(app, "/money", "7", "object");
	zc_app_free(app);
}
END_TEST

START_TEST(test_helpers_null_object)
{
	zc_app *app = zc_test_app(setup_helpers);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "POST", "/null", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 400);
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

/* ---- zc__json_vpackf: json_pack's format straight to text ---- */

static char *
ours(const char *fmt, ...)
{
	va_list ap;
	size_t len;
	char *s;

	va_start(ap, fmt);
	s = zc__json_vpackf(fmt, ap, &len);
	va_end(ap);
	if (s != NULL)
		ck_assert_uint_eq(len, strlen(s));
	return s;
}

static char *
theirs(const char *fmt, ...)
{
	json_error_t e;
	va_list ap;
	json_t *v;
	char *s;

	va_start(ap, fmt);
	v = json_vpack_ex(&e, 0, fmt, ap);
	va_end(ap);
	if (v == NULL)
		return NULL;
	s = zc__json_dump(v, NULL);
	json_decref(v);
	return s;
}

/* The same text both ways (arguments are evaluated once for each). */
#define SAME(...)                                                              \
	do {                                                                   \
		char *a_ = ours(__VA_ARGS__), *b_ = theirs(__VA_ARGS__);       \
		ck_assert_msg(a_ != NULL, "fell back: %s", #__VA_ARGS__);      \
		ck_assert_ptr_nonnull(b_);                                     \
		ck_assert_str_eq(a_, b_);                                      \
		free(a_);                                                      \
		free(b_);                                                      \
	} while (0)

/* Left to jansson: the writer declines, whatever jansson then says. */
#define DECLINED(...)                                                          \
	ck_assert_msg(ours(__VA_ARGS__) == NULL, "not declined: %s",           \
		      #__VA_ARGS__)

START_TEST(test_packf_matches_jansson)
{
	char blob[] = {'a', '"', 'b', '\\', '\n', '\x01', 'c'};
	json_t *nested;

	SAME("{s:s, s:s}", "status", "logged", "timestamp",
	     "2026-11-27T20:22:43.123456789Z");
	SAME("{s:s, s:o, s:s}", "status", "updated", "new_balance",
	     zc_money_json_new(10050), "account", "ACC-001");
	SAME("{s:s, s:{s:s, s:o, s:o}}", "action", "balance_update", "details",
	     "account", "A", "amount", zc_money_json_new(-5), "new_balance",
	     zc_money_json_new(100000));
	SAME("[i, I, b, b, n, f, f, f]", -7, (json_int_t)9007199254740993LL, 1,
	     0, 100.5, 0.1, 1e300);
	SAME("{s:s?, s:o?, s:O?}", "a", NULL, "b", NULL, "c", NULL);
	nested = json_pack("[i,{s:s}]", 1, "x", "y");
	SAME("{s:O}", "k", nested); /* 'O' is not stolen */
	json_decref(nested);
	SAME("{s:s#, s:s%}", "n", "abcdef", 3, "m", blob, sizeof(blob));
	SAME("s", "top \"level\" \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	SAME("{s:[], s:{}, s:[[],{}]}", "a", "b", "c");
	SAME("{s#:i}", "key\"with\\escapes", 5, 1);
	SAME(" { s : i , s : [ i , i ] } ", "x", 1, "y", 2, 3);
	SAME("{s:f, s:f, s:f}", "small", 1e-7, "neg", -0.0, "big", 1e21);
	/* what jansson does otherwise (an error, a replaced key, ...) */
	DECLINED("{s:s}", "a", (const char *)NULL);
	DECLINED("{s:s}", "a", "\xff\xfe");
	DECLINED("{s:s}", "a", "\xc0\x80");     /* overlong NUL */
	DECLINED("{s:s}", "a", "\xed\xa0\x80"); /* surrogate */
	DECLINED("{s:i, s:i}", "a", 1, "a", 2);
	DECLINED("{s:s+}", "a", "b", "c");
	DECLINED("{s:s*}", "a", (const char *)NULL);
	DECLINED("{s:O}", "a", (json_t *)NULL);
	DECLINED("{s:f}", "a", NAN);
	DECLINED("{s:x}", "a");
	DECLINED("{}x");
	DECLINED("{s:s#}", "a", "a\0b", 3);
}
END_TEST

/* 'o' is stolen, as json_pack steals it; 'O' is not. */
START_TEST(test_packf_ownership)
{
	json_t *v = json_string("x"), *w = json_string("y");
	char *s;

	json_incref(v);
	s = ours("{s:o, s:O}", "a", v, "b", w);
	ck_assert_str_eq(s, "{\"a\":\"x\",\"b\":\"y\"}");
	free(s);
	ck_assert_int_eq((int)v->refcount, 1);
	ck_assert_int_eq((int)w->refcount, 1);
	json_decref(v);
	json_decref(w);
}
END_TEST

/* zc_res_jsonf answers the same either way, and still refuses what
 * jansson refuses. */
START_TEST(test_res_jsonf_paths)
{
	zc_res *res = calloc(1, sizeof(*res));

	ck_assert_int_eq(zc_res_jsonf(res, 201, "{s:s, s:i}", "a", "b", "n", 3),
			 ZC_OK);
	ck_assert_int_eq(res->status, 201);
	ck_assert_str_eq(res->body, "{\"a\":\"b\",\"n\":3}\n");
	ck_assert_str_eq(res->content_type, "application/json");
	/* a repeated key: jansson's answer, the last value in first place */
	ck_assert_int_eq(zc_res_jsonf(res, 200, "{s:i, s:i, s:i}", "a", 1, "b",
				      2, "a", 3),
			 ZC_OK);
	ck_assert_str_eq(res->body, "{\"a\":3,\"b\":2}\n");
	ck_assert_int_eq(
		zc_res_jsonf(res, 200, "{s:s}", "a", (const char *)NULL),
		ZC_ERR_INVALID);
	zc_res_free(res);
}
END_TEST

static Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("encode");

	tcase_add_test(tc, test_reals_go_form);
	tcase_add_test(tc, test_zero_and_negative_zero);
	tcase_add_test(tc, test_subnormal_shortest);
	tcase_add_test(tc, test_reals_roundtrip_property);
	tcase_add_test(tc, test_integers);
	tcase_add_test(tc, test_compact_and_ordered);
	tcase_add_test(tc, test_nested);
	tcase_add_test(tc, test_string_escapes);
	tcase_add_test(tc, test_key_escapes);
	tcase_add_test(tc, test_dump_parses_back);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_wire_form);
	tcase_add_test(tc, test_json_string_helper);
	tcase_add_test(tc, test_json_value_helper);
	tcase_add_test(tc, test_json_money_helper);
	tcase_add_test(tc, test_helpers_null_object);
	tcase_add_test(tc, test_packf_matches_jansson);
	tcase_add_test(tc, test_packf_ownership);
	tcase_add_test(tc, test_res_jsonf_paths);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(json_suite());
}
