/*
 * fuzz_trace.c - header parsing: traceparent (zc__trace_parse, compared
 * with a reference reading of W3C Trace Context as the runtime documents
 * it) and Idempotency-Key handling on a ZC_ROUTE_IDEMPOTENT route.
 *
 * Input: line 1 is a traceparent value, line 2 an Idempotency-Key value,
 * the rest a body.  Both go to a request as headers; the handler must see
 * the inbound trace id exactly when the traceparent is valid; a valid key
 * runs the handler once, a repeat is replayed byte for byte, another body
 * with the same key is a 422; an invalid key is a 400 and runs nothing.
 */
#include "fuzz_common.h"

static bool
lchex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool
id_ok(const char *s, size_t n)
{
	bool nz = false;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!lchex(s[i]))
			return false;
		nz |= s[i] != '0';
	}
	return nz;
}

/* version-traceid-parentid-flags; 00 is exactly 55 chars; ff invalid; a
 * later version may carry more after a '-'. */
static bool
ref_traceparent(const char *tp)
{
	size_t n = strlen(tp);

	if (n < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
		return false;
	if (!lchex(tp[0]) || !lchex(tp[1]) || !lchex(tp[53]) || !lchex(tp[54]))
		return false;
	if (tp[0] == 'f' && tp[1] == 'f')
		return false;
	if (tp[0] == '0' && tp[1] == '0' && n != 55)
		return false;
	if (n > 55 && tp[55] != '-')
		return false;
	return id_ok(tp + 3, 32) && id_ok(tp + 36, 16);
}

/* 1-255 printable ASCII (no '"'), optionally inside one pair of quotes */
static bool
ref_key(const char *k)
{
	size_t n = strlen(k), i;

	if (n >= 2 && k[0] == '"' && k[n - 1] == '"') {
		k++;
		n -= 2;
	}
	if (n == 0 || n > 255)
		return false;
	for (i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e || k[i] == '"')
			return false;
	return true;
}

static const char *
skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static int calls;
static char seen_trace[64];

static int
handler(zc_req *req, zc_res *res, void *arg)
{
	(void)arg;
	calls++;
	snprintf(seen_trace, sizeof(seen_trace), "%s", zc_req_trace_id(req));
	return zc_res_jsonf(res, 200, "{s:i}", "n", calls) == ZC_OK ? 0 : -1;
}

static int
setup(zc_app *app)
{
	return zc_route_with(app, "POST", "/k", handler, NULL,
			     &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) ==
			       ZC_OK
		       ? 0
		       : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env_defaults();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t n = size;
	char *tp, *key, *body, *other, *h_tp, *h_key;
	const char *hdrs[3];
	struct zc_trace t;
	bool tp_ok, key_ok, parsed;
	zc_app *app;
	zc_res *r1, *r2, *r3;
	size_t i;

	tp = fz_line(&p, &n);
	key = fz_line(&p, &n);
	body = fz_strndup(p, n);

	/* the parser alone */
	memset(&t, 0x55, sizeof(t));
	parsed = zc__trace_parse(tp, &t);
	FZ_CHECK(parsed == ref_traceparent(tp), "parse(\"%s\") = %d", tp,
		 parsed);
	if (parsed) {
		FZ_CHECK(strlen(t.trace_id) == 32 &&
			 memcmp(t.trace_id, tp + 3, 32) == 0);
		FZ_CHECK(strlen(t.parent_id) == 16 &&
			 memcmp(t.parent_id, tp + 36, 16) == 0);
		FZ_CHECK(strlen(t.flags) == 2 &&
			 memcmp(t.flags, tp + 53, 2) == 0);
	}
	FZ_CHECK(!zc__trace_parse(NULL, &t));

	/* through a request */
	h_tp = malloc(strlen(tp) + 16);
	h_key = malloc(strlen(key) + 20);
	other = malloc(strlen(body) + 2);
	if (h_tp == NULL || h_key == NULL || other == NULL)
		abort();
	sprintf(h_tp, "traceparent: %s", tp);
	sprintf(h_key, "Idempotency-Key: %s", key);
	sprintf(other, "%sx", body);
	hdrs[0] = h_tp;
	hdrs[1] = h_key;
	hdrs[2] = NULL;
	tp_ok = ref_traceparent(skip_ws(tp));
	key_ok = ref_key(skip_ws(key));

	app = zc_test_app(setup);
	FZ_CHECK(app != NULL);
	calls = 0;
	seen_trace[0] = '\0';
	r1 = zc_test_request(app, "POST", "/k", hdrs, body);
	fz_check_response(r1);
	if (!key_ok) {
		FZ_CHECK(r1->status == 400 && calls == 0,
			 "key \"%s\": %d, %d calls", key, r1->status, calls);
	} else {
		FZ_CHECK(r1->status == 200 && calls == 1,
			 "key \"%s\": %d, %d calls", key, r1->status, calls);
		FZ_CHECK(strlen(seen_trace) == 32);
		for (i = 0; i < 32; i++)
			FZ_CHECK(lchex(seen_trace[i]), "trace id %s",
				 seen_trace);
		if (tp_ok)
			FZ_CHECK(memcmp(seen_trace, skip_ws(tp) + 3, 32) == 0,
				 "inbound trace id lost: %s vs %s", seen_trace,
				 tp);
		r2 = zc_test_request(app, "POST", "/k", hdrs, body);
		fz_check_response(r2);
		FZ_CHECK(r2->status == 200 && calls == 1 &&
				 zc_res_get_header(r2, "Idempotent-Replayed") !=
					 NULL &&
				 r2->len == r1->len &&
				 memcmp(r2->body, r1->body, r1->len) == 0,
			 "repeat of key \"%s\": %d, %d calls", key, r2->status,
			 calls);
		r3 = zc_test_request(app, "POST", "/k", hdrs, other);
		fz_check_response(r3);
		FZ_CHECK(r3->status == 422 && calls == 1,
			 "other body, key \"%s\": %d", key, r3->status);
		zc_res_free(r2);
		zc_res_free(r3);
	}
	zc_res_free(r1);
	zc_app_free(app);
	free(h_tp);
	free(h_key);
	free(other);
	free(tp);
	free(key);
	free(body);
	return 0;
}
