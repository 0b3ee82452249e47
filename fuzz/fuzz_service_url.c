/*
 * fuzz_service_url.c - service name -> base URL (zc_service_url).  The
 * input gives the name, POD_NAMESPACE, the <NAME>_URL override and
 * DAPR_HTTP_PORT (lines 1-4; an empty line leaves the variable unset) and
 * the buffer size (line 5, a number); the result is compared with a
 * reference reading of the documented rules, into a buffer of exactly that
 * size (ASan sees any write past it).
 */
#include "fuzz_common.h"

#include <ctype.h>

static bool
label(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static bool
port_ok(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return false;
	v = strtol(s, &end, 10);
	return *end == '\0' && v > 0 && v < 65536;
}

/* The documented resolution; returns the error and the URL in out. */
static zc_err
reference(const char *name, const char *ns, const char *url, const char *dapr,
	  char *out, size_t outsz)
{
	size_t len;

	if (!label(name))
		return ZC_ERR_INVALID;
	if (url != NULL) {
		len = strlen(url);
		while (len > 0 && url[len - 1] == '/')
			len--;
		if (len > 0) {
			snprintf(out, outsz, "%.*s", (int)len, url);
			return ZC_OK;
		}
	}
	if (port_ok(dapr)) {
		snprintf(out, outsz,
			 "http://127.0.0.1:%s/v1.0/invoke/%s/method", dapr,
			 name);
		return ZC_OK;
	}
	if (ns == NULL || *ns == '\0')
		ns = "default";
	else if (!label(ns))
		return ZC_ERR_INVALID;
	snprintf(out, outsz, "http://%s.%s.svc.cluster.local", name, ns);
	return ZC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t n = size, bufsz, i;
	char *name, *ns, *url, *dapr, *szs, env[128], *buf, *expect;
	zc_err got, want;

	name = fz_line(&p, &n);
	ns = fz_line(&p, &n);
	url = fz_line(&p, &n);
	dapr = fz_line(&p, &n);
	szs = fz_line(&p, &n);
	bufsz = szs[0] ? (size_t)strtoul(szs, NULL, 10) % 8192 : 256;
	if (bufsz == 0)
		bufsz = 1;

	unsetenv("DAPR_HTTP_PORT");
	unsetenv("POD_NAMESPACE");
	if (ns[0])
		setenv("POD_NAMESPACE", ns, 1);
	if (dapr[0])
		setenv("DAPR_HTTP_PORT", dapr, 1);
	env[0] = '\0';
	if (label(name)) {
		for (i = 0; name[i]; i++)
			env[i] = name[i] == '-' ? '_' : (char)toupper(name[i]);
		memcpy(env + i, "_URL", 5);
		if (url[0])
			setenv(env, url, 1);
		else
			unsetenv(env);
	}

	expect = malloc(16384);
	buf = malloc(bufsz);
	if (expect == NULL || buf == NULL)
		abort();
	want = reference(name, ns[0] ? ns : NULL, url[0] ? url : NULL,
			 dapr[0] ? dapr : NULL, expect, 16384);
	got = zc_service_url(name, buf, bufsz);
	if (want == ZC_OK && strlen(expect) >= bufsz)
		want = ZC_ERR_TOO_LARGE;
	FZ_CHECK(got == want, "zc_service_url(\"%s\", size %zu) = %d, want %d",
		 name, bufsz, got, want);
	if (got == ZC_OK) {
		FZ_CHECK(strlen(buf) < bufsz);
		FZ_CHECK(strcmp(buf, expect) == 0, "\"%s\" vs \"%s\"", buf,
			 expect);
	} else {
		FZ_CHECK(buf[0] == '\0', "error %d left \"%.*s\"", got,
			 (int)bufsz, buf);
	}
	/* NULL and empty arguments */
	FZ_CHECK(zc_service_url(NULL, buf, bufsz) == ZC_ERR_INVALID);
	FZ_CHECK(zc_service_url(name, NULL, 16) == ZC_ERR_INVALID);
	FZ_CHECK(zc_service_url(name, buf, 0) == ZC_ERR_INVALID);

	if (env[0])
		unsetenv(env);
	free(buf);
	free(expect);
	free(name);
	free(ns);
	free(url);
	free(dapr);
	free(szs);
	return 0;
}
