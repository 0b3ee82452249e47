/*
 * discovery.c - turn a function's name into the base URL to call it at.
 * One call site, three environments, in this order:
 *   1. an explicit <NAME>_URL (local runs, tests, anything custom);
 *   2. the Dapr sidecar when DAPR_HTTP_PORT is set:
 *      http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/invoke/<name>/method
 *      (the caller's path follows; dapr-api-token is added by call.c);
 *   3. the Knative cluster-local address in this pod's namespace.
 */
#include "outbound.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 1123 label: the longest name Kubernetes accepts for a Service. */
#define ZC_LABEL_MAX 63

/*
 * Kubernetes Service names are DNS-1123 labels.  Checking here means a typo
 * fails fast with ZC_ERR_INVALID instead of becoming a DNS lookup, and the
 * name is safe to splice into both an env var name and a host name.
 */
static bool
valid_label(const char *s)
{
	size_t i, n;

	n = strlen(s);
	if (n == 0 || n > ZC_LABEL_MAX)
		return false;
	if (s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return true;
}

/* Copy src[0..len) into buf as a string, or report that it does not fit. */
static zc_err
put(char *buf, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return ZC_ERR_TOO_LARGE;
	memcpy(buf, src, len);
	buf[len] = '\0';
	return ZC_OK;
}

/* A TCP port number, as DAPR_HTTP_PORT must be. */
static bool
valid_port(const char *s)
{
	long v;
	char *end;

	if (s == NULL || *s == '\0')
		return false;
	v = strtol(s, &end, 10);
	return *end == '\0' && v > 0 && v < 65536;
}

zc_err
zc_service_url(const char *service, char *buf, size_t size)
{
	return zc__service_resolve(service, buf, size, NULL);
}

zc_err
zc__service_resolve(const char *service, char *buf, size_t size, int *mode)
{
	char env[ZC_LABEL_MAX + sizeof("_URL")];
	const char *val, *ns, *dapr;
	size_t i, len;
	int n;

	if (buf == NULL || size == 0)
		return ZC_ERR_INVALID;
	buf[0] = '\0';
	if (service == NULL || !valid_label(service))
		return ZC_ERR_INVALID;

	/* balance-manager -> BALANCE_MANAGER_URL: the shape a shell allows. */
	for (i = 0; service[i] != '\0'; i++) {
		char c = service[i];

		if (c == '-')
			env[i] = '_';
		else if (c >= 'a' && c <= 'z')
			env[i] = (char)(c - 'a' + 'A');
		else
			env[i] = c;
	}
	memcpy(env + i, "_URL", sizeof("_URL"));

	/*
	 * Callers append a path that starts with '/', so a trailing slash in
	 * the override would give "//path".  An empty (or all-slash) value is
	 * treated as unset, as a shell's "export X=" usually means "no value".
	 */
	val = getenv(env);
	if (val != NULL) {
		len = strlen(val);
		while (len > 0 && val[len - 1] == '/')
			len--;
		if (len > 0) {
			if (mode != NULL)
				*mode = ZC_MODE_ENV;
			return put(buf, size, val, len);
		}
	}

	dapr = getenv("DAPR_HTTP_PORT");
	if (valid_port(dapr)) {
		if (mode != NULL)
			*mode = ZC_MODE_DAPR;
		n = snprintf(buf, size,
			     "http://127.0.0.1:%s/v1.0/invoke/%s/method", dapr,
			     service);
		if (n < 0 || (size_t)n >= size) {
			buf[0] = '\0';
			return ZC_ERR_TOO_LARGE;
		}
		return ZC_OK;
	}
	if (mode != NULL)
		*mode = ZC_MODE_KNATIVE;

	/* An empty POD_NAMESPACE is the downward API not being wired up. */
	ns = getenv("POD_NAMESPACE");
	if (ns == NULL || ns[0] == '\0')
		ns = "default";
	else if (!valid_label(ns))
		return ZC_ERR_INVALID;

	n = snprintf(buf, size, "http://%s.%s.svc.cluster.local", service, ns);
	if (n < 0)
		return ZC_ERR_INVALID;
	if ((size_t)n >= size) {
		buf[0] = '\0';
		return ZC_ERR_TOO_LARGE;
	}
	return ZC_OK;
}
