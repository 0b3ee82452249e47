/*
 * otel_env.c - the OpenTelemetry SDK variables (OTEL_*), read once at
 * start-up into struct zc_otel, the way the specification parses them:
 * empty is unset, enums and "true" are case-insensitive, and a bad value
 * is one warning naming the variable and the default it falls back to,
 * never a failure.  A signal-specific variable (..._TRACES_...) beats the
 * generic one.
 *
 * When tracing is on.  The specification's default exporter is otlp, but
 * a function started with no OTEL_* variable at all must not start
 * exporting to localhost:4318 (or pay for recording spans), so here:
 *   - OTEL_SDK_DISABLED=true: off, whatever else is set;
 *   - OTEL_TRACES_EXPORTER=otlp, console (or its deprecated alias
 *     logging): that exporter; none (or zipkin, unsupported): off;
 *   - OTEL_TRACES_EXPORTER unset: otlp when OTEL_EXPORTER_OTLP_ENDPOINT or
 *     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else off.
 * The Zenith operator sets both the endpoint and OTEL_TRACES_EXPORTER=otlp,
 * so its functions export; a local run with none of them costs nothing.
 */
#include "core.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_ENDPOINT "http://localhost:4318/v1/traces"

/* The variable's value, NULL when unset or empty (the spec: same thing). */
static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* The signal-specific variable if set, else the generic one; *used names
 * the one read, for warnings. */
static const char *
env2(const char *specific, const char *generic, const char **used)
{
	const char *v = env(specific);

	*used = specific;
	if (v == NULL) {
		v = env(generic);
		*used = generic;
	}
	return v;
}

/* v without leading and trailing blanks into out (size bytes). */
static void
trimmed(const char *v, char *out, size_t size)
{
	size_t n;

	while (isspace((unsigned char)*v))
		v++;
	n = strlen(v);
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	if (n >= size)
		n = size - 1;
	memmove(out, v, n); /* out may be v */
	out[n] = '\0';
}

/*
 * A duration or count: a non-negative integer no larger than max.  Unset:
 * dflt, quietly; negative or unparsable: dflt, with a warning.
 */
static long
env_long(const char *name, const char *v, long dflt, long max)
{
	char *end;
	long long n;

	if (v == NULL)
		return dflt;
	errno = 0;
	n = strtoll(v, &end, 10);
	while (end != v && isspace((unsigned char)*end))
		end++;
	if (end == v || *end != '\0' || errno != 0 || n < 0 || n > max) {
		zc_warn("%s=\"%.64s\": expected an integer from 0 to %ld; "
			"using %ld",
			name, v, max, dflt);
		return dflt;
	}
	return (long)n;
}

static int
unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode p[0..n), blanks around it trimmed, into a new string;
 * NULL on a bad escape, a NUL in it, or ENOMEM. */
static char *
decode(const char *p, size_t n)
{
	char *out, *o;
	size_t i;

	while (n > 0 && isspace((unsigned char)*p)) {
		p++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		n--;
	if ((out = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0, o = out; i < n; i++) {
		if (p[i] == '%') {
			int hi, lo;

			/* two hex digits must follow; %00 would end the text */
			if (i + 2 >= n ||
			    (hi = unhex((unsigned char)p[i + 1])) < 0 ||
			    (lo = unhex((unsigned char)p[i + 2])) < 0 ||
			    (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = p[i];
		}
	}
	*o = '\0';
	return out;
}

static void
kv_free(struct zc_otel_kv *kv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

/*
 * "k=v,k2=v2", keys and values percent-decoded (W3C Baggage style, no
 * ";" properties) into a new array, *n set.  A bad entry: -1 and *bad
 * points at it (the caller decides whether that drops the whole list).
 * Empty entries (",,") are skipped.
 */
static int
parse_pairs(const char *v, struct zc_otel_kv **out, size_t *n, const char **bad,
	    size_t *badlen)
{
	struct zc_otel_kv *kv = NULL;
	size_t count = 0, cap = 0;
	const char *p = v;

	*out = NULL;
	*n = 0;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		const char *eq = memchr(p, '=', len);
		char *key = NULL, *val = NULL;
		size_t k;

		for (k = 0; k < len && isspace((unsigned char)p[k]); k++)
			;
		if (k == len) { /* empty entry */
			p += len + (p[len] == ',');
			continue;
		}
		if (eq != NULL) {
			key = decode(p, (size_t)(eq - p));
			val = decode(eq + 1, len - (size_t)(eq - p) - 1);
		}
		if (key == NULL || val == NULL || key[0] == '\0') {
			free(key);
			free(val);
			*bad = p;
			*badlen = len;
			kv_free(kv, count);
			return -1;
		}
		if (count == cap) {
			struct zc_otel_kv *t;
			cap = cap == 0 ? 4 : cap * 2;
			if ((t = realloc(kv, cap * sizeof(*t))) == NULL) {
				free(key);
				free(val);
				kv_free(kv, count);
				*bad = NULL;
				return -1;
			}
			kv = t;
		}
		kv[count].key = key;
		kv[count].value = val;
		count++;
		p += len + (p[len] == ',');
	}
	*out = kv;
	*n = count;
	return 0;
}

/* Append key=value to the resource unless key is there already (the
 * first setter wins: callers add in precedence order). */
static void
resource_add(struct zc_otel *o, const char *key, const char *value)
{
	struct zc_otel_kv *t;
	size_t i;

	for (i = 0; i < o->nresource; i++)
		if (strcmp(o->resource[i].key, key) == 0)
			return;
	t = realloc(o->resource, (o->nresource + 1) * sizeof(*t));
	if (t == NULL)
		return;
	o->resource = t;
	t[o->nresource].key = strdup(key);
	t[o->nresource].value = strdup(value);
	if (t[o->nresource].key == NULL || t[o->nresource].value == NULL) {
		free(t[o->nresource].key);
		free(t[o->nresource].value);
		return;
	}
	o->nresource++;
}

/*
 * The resource: service.name first (OTEL_SERVICE_NAME, else service.name
 * in OTEL_RESOURCE_ATTRIBUTES, else the function's name), then the other
 * OTEL_RESOURCE_ATTRIBUTES in their order, then the SDK's own attributes
 * unless the variable set them.  telemetry.sdk.language is "c": the
 * conventions' list (cpp, dotnet, erlang, go, java, nodejs, php, python,
 * ruby, rust, swift, webjs) has no C, "cpp" would be untrue, and the
 * attribute's enum is open to other values.
 */
static void
load_resource(struct zc_otel *o, const char *service)
{
	const char *attrs = env("OTEL_RESOURCE_ATTRIBUTES");
	const char *name = env("OTEL_SERVICE_NAME");
	struct zc_otel_kv *kv = NULL;
	const char *bad = NULL;
	size_t n = 0, badlen = 0, i;
	char svc[256];

	if (attrs != NULL && parse_pairs(attrs, &kv, &n, &bad, &badlen) != 0) {
		if (bad != NULL)
			zc_warn("OTEL_RESOURCE_ATTRIBUTES: cannot decode "
				"\"%.*s\" (expected key=value, with ',', '=' "
				"and '%%' percent-encoded); ignoring the whole "
				"variable",
				(int)(badlen < 64 ? badlen : 64), bad);
		kv = NULL;
		n = 0;
	}
	if (name != NULL) {
		trimmed(name, svc, sizeof(svc));
		resource_add(o, "service.name", svc);
	}
	for (i = 0; i < n; i++)
		if (strcmp(kv[i].key, "service.name") == 0 &&
		    kv[i].value[0] != '\0')
			resource_add(o, "service.name", kv[i].value);
	resource_add(o, "service.name",
		     service != NULL && *service != '\0' ? service
							 : "unknown_service");
	for (i = 0; i < n; i++)
		resource_add(o, kv[i].key, kv[i].value);
	kv_free(kv, n);
	resource_add(o, "telemetry.sdk.name", "zenith-c");
	resource_add(o, "telemetry.sdk.language", "c");
	resource_add(o, "telemetry.sdk.version", ZC_VERSION);
}

/* One entry of OTEL_TRACES_EXPORTER: ZC_EXPORT_*, or -1 when unknown. */
static int
exporter_named(const char *name, size_t len)
{
	if (len == 4 && strncasecmp(name, "otlp", 4) == 0)
		return ZC_EXPORT_OTLP;
	if ((len == 7 && strncasecmp(name, "console", 7) == 0) ||
	    (len == 7 && strncasecmp(name, "logging", 7) == 0))
		return ZC_EXPORT_CONSOLE;
	if (len == 4 && strncasecmp(name, "none", 4) == 0)
		return ZC_EXPORT_NONE;
	return -1;
}

/*
 * OTEL_TRACES_EXPORTER, a comma-separated list: the first of otlp or
 * console in it (one exporter runs), none alone turns tracing off.
 * Returns -1 when the variable names no exporter we know (treated as
 * unset), and the rule at the top of the file applies.
 */
static int
load_exporter(void)
{
	const char *v = env("OTEL_TRACES_EXPORTER"), *p;
	int chosen = -1;

	if (v == NULL)
		return -1;
	for (p = v; *p != '\0';) {
		char item[32];
		size_t len = strcspn(p, ","), t;
		int e;

		t = len < sizeof(item) ? len : sizeof(item) - 1;
		memcpy(item, p, t);
		item[t] = '\0';
		trimmed(item, item, sizeof(item));
		e = exporter_named(item, strlen(item));
		if (e < 0 && strcasecmp(item, "zipkin") == 0) {
			zc_warn("OTEL_TRACES_EXPORTER: zipkin is not "
				"supported (use otlp); not exporting to it");
			e = ZC_EXPORT_NONE;
		} else if (e < 0 && item[0] != '\0') {
			zc_warn("OTEL_TRACES_EXPORTER: unknown exporter "
				"\"%.32s\" (expected otlp, console or none); "
				"ignored",
				item);
		}
		if (strcasecmp(item, "logging") == 0)
			zc_warn("OTEL_TRACES_EXPORTER: logging is deprecated; "
				"using console");
		if (e > ZC_EXPORT_NONE && chosen > ZC_EXPORT_NONE &&
		    e != chosen)
			zc_warn("OTEL_TRACES_EXPORTER=\"%.64s\": one exporter "
				"at a time; using the first",
				v);
		else if (e > ZC_EXPORT_NONE ||
			 (e == ZC_EXPORT_NONE && chosen < 0))
			chosen = e;
		p += len + (p[len] == ',');
	}
	return chosen;
}

static void
load_sampler(struct zc_otel *o)
{
	static const struct {
		const char *name;
		int sampler;
	} names[] = {
		{"always_on", ZC_SAMPLE_ALWAYS_ON},
		{"always_off", ZC_SAMPLE_ALWAYS_OFF},
		{"traceidratio", ZC_SAMPLE_RATIO},
		{"parentbased_always_on", ZC_SAMPLE_PARENT_ON},
		{"parentbased_always_off", ZC_SAMPLE_PARENT_OFF},
		{"parentbased_traceidratio", ZC_SAMPLE_PARENT_RATIO},
	};
	const char *v = env("OTEL_TRACES_SAMPLER"), *arg;
	char name[64], *end;
	size_t i;
	double r;

	o->sampler = ZC_SAMPLE_PARENT_ON;
	o->ratio = 1.0;
	if (v == NULL)
		return;
	trimmed(v, name, sizeof(name));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			break;
	if (i == sizeof(names) / sizeof(names[0])) {
		if (strcasecmp(name, "parentbased_jaeger_remote") == 0 ||
		    strcasecmp(name, "jaeger_remote") == 0)
			zc_warn("OTEL_TRACES_SAMPLER=%s is not supported; "
				"using parentbased_always_on",
				name);
		else
			zc_warn("OTEL_TRACES_SAMPLER=\"%.64s\": unknown "
				"sampler; using parentbased_always_on",
				v);
		return;
	}
	o->sampler = names[i].sampler;
	/* the argument belongs to the ratio samplers only */
	if (o->sampler != ZC_SAMPLE_RATIO &&
	    o->sampler != ZC_SAMPLE_PARENT_RATIO)
		return;
	if ((arg = env("OTEL_TRACES_SAMPLER_ARG")) == NULL)
		return;
	errno = 0;
	r = strtod(arg, &end);
	while (end != arg && isspace((unsigned char)*end))
		end++;
	if (end == arg || *end != '\0' || errno != 0 || isnan(r) || r < 0.0 ||
	    r > 1.0) {
		zc_warn("OTEL_TRACES_SAMPLER_ARG=\"%.64s\": expected a ratio "
			"from 0 to 1; using 1.0",
			arg);
		return;
	}
	o->ratio = r;
}

/* An http(s) URL with a host, no blanks or control characters. */
static bool
url_ok(const char *u)
{
	const char *host;
	const char *p;

	if (strncasecmp(u, "http://", 7) == 0)
		host = u + 7;
	else if (strncasecmp(u, "https://", 8) == 0)
		host = u + 8;
	else
		return false;
	if (*host == '\0' || *host == '/' || *host == '?' || *host == '#')
		return false;
	for (p = u; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return strlen(u) < 2000;
}

/*
 * The traces URL.  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is,
 * except that an empty path becomes "/"; OTEL_EXPORTER_OTLP_ENDPOINT is a
 * base to which "v1/traces" is appended (after a "/" unless it ends with
 * one).  Nothing else is rewritten.
 */
static char *
load_endpoint(void)
{
	const char *t = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
	const char *b = env("OTEL_EXPORTER_OTLP_ENDPOINT");
	char buf[2100];

	if (t != NULL) {
		trimmed(t, buf, sizeof(buf));
		if (url_ok(buf)) {
			const char *host = strstr(buf, "://") + 3;
			size_t h = strcspn(host, "/?#");
			if (host[h] != '/') {
				/* empty path: "/" before any query */
				size_t at = (size_t)(host - buf) + h;
				char out[2100];
				snprintf(out, sizeof(out), "%.*s/%s", (int)at,
					 buf, buf + at);
				return strdup(out);
			}
			return strdup(buf);
		}
		zc_warn("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=\"%.64s\": not an "
			"http(s) URL; ignored",
			t);
	}
	if (b != NULL) {
		size_t n;

		trimmed(b, buf, sizeof(buf));
		n = strlen(buf);
		if (url_ok(buf)) {
			char out[2120];
			snprintf(out, sizeof(out), "%s%sv1/traces", buf,
				 n > 0 && buf[n - 1] == '/' ? "" : "/");
			return strdup(out);
		}
		zc_warn("OTEL_EXPORTER_OTLP_ENDPOINT=\"%.64s\": not an http(s) "
			"URL; using http://localhost:4318",
			b);
	}
	return strdup(DEFAULT_ENDPOINT);
}

static void
load_protocol(struct zc_otel *o)
{
	const char *used;
	const char *v = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
			     "OTEL_EXPORTER_OTLP_PROTOCOL", &used);
	char p[32];

	o->protocol = ZC_OTLP_PROTOBUF;
	if (v == NULL)
		return;
	trimmed(v, p, sizeof(p));
	if (strcasecmp(p, "http/json") == 0)
		o->protocol = ZC_OTLP_JSON;
	else if (strcasecmp(p, "grpc") == 0)
		zc_warn("%s=grpc: this runtime speaks OTLP over HTTP only; "
			"using http/protobuf (the collector's HTTP port is "
			"usually 4318, not gRPC's 4317)",
			used);
	else if (strcasecmp(p, "http/protobuf") != 0)
		zc_warn("%s=\"%.32s\": expected http/protobuf or http/json; "
			"using http/protobuf",
			used, v);
}

/* A header name must be a token, its value one line: a decoded "%0D%0A"
 * must not add a header of its own. */
static bool
header_ok(const struct zc_otel_kv *kv)
{
	const char *s;

	for (s = kv->key; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    strchr("\"(),/:;<=>?@[\\]{}", *s) != NULL)
			return false;
	for (s = kv->value; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

/* The signal's headers replace the generic ones; a bad entry is skipped
 * with a warning (the rest still go). */
static void
load_headers(struct zc_otel *o)
{
	const char *used, *bad = NULL, *v;
	struct zc_otel_kv *kv;
	size_t n, i, k, badlen = 0;

	v = env2("OTEL_EXPORTER_OTLP_TRACES_HEADERS",
		 "OTEL_EXPORTER_OTLP_HEADERS", &used);
	if (v == NULL)
		return;
	/* entry by entry, so one bad one does not lose the others */
	while (*v != '\0') {
		size_t len = strcspn(v, ",");
		char *one = strndup(v, len);

		v += len + (v[len] == ',');
		if (one == NULL)
			return;
		if (parse_pairs(one, &kv, &n, &bad, &badlen) != 0) {
			zc_warn("%s: cannot decode \"%.64s\" (expected "
				"name=value, percent-encoded); skipped",
				used, one);
			free(one);
			continue;
		}
		free(one);
		for (i = 0; i < n; i++) {
			struct zc_otel_kv *t;
			if (!header_ok(&kv[i])) {
				zc_warn("%s: \"%.64s\" is not a valid header; "
					"skipped",
					used, kv[i].key);
				free(kv[i].key);
				free(kv[i].value);
				continue;
			}
			t = realloc(o->headers, (o->nheaders + 1) * sizeof(*t));
			if (t == NULL) {
				for (k = i; k < n; k++) {
					free(kv[k].key);
					free(kv[k].value);
				}
				break;
			}
			o->headers = t;
			o->headers[o->nheaders++] = kv[i];
		}
		free(kv);
	}
}

static void
load_export_settings(struct zc_otel *o)
{
	const char *used, *v;
	char c[16];

	v = env2("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
		 "OTEL_EXPORTER_OTLP_TIMEOUT", &used);
	o->timeout_ms = env_long(used, v, 10000, 86400000L);
	v = env2("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
		 "OTEL_EXPORTER_OTLP_COMPRESSION", &used);
	o->gzip = false;
	if (v != NULL) {
		trimmed(v, c, sizeof(c));
		if (strcasecmp(c, "gzip") == 0)
			o->gzip = true;
		else if (strcasecmp(c, "none") != 0)
			zc_warn("%s=\"%.32s\": expected gzip or none; using "
				"none",
				used, v);
	}
	o->schedule_delay_ms =
		env_long("OTEL_BSP_SCHEDULE_DELAY",
			 env("OTEL_BSP_SCHEDULE_DELAY"), 5000, 86400000L);
	o->export_timeout_ms =
		env_long("OTEL_BSP_EXPORT_TIMEOUT",
			 env("OTEL_BSP_EXPORT_TIMEOUT"), 30000, 86400000L);
	o->max_queue = (size_t)env_long("OTEL_BSP_MAX_QUEUE_SIZE",
					env("OTEL_BSP_MAX_QUEUE_SIZE"), 2048,
					10000000L);
	if (o->max_queue == 0) {
		zc_warn("OTEL_BSP_MAX_QUEUE_SIZE=0: a queue needs room; "
			"using 2048");
		o->max_queue = 2048;
	}
	o->max_batch = (size_t)env_long("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
					env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
					512, 10000000L);
	if (o->max_batch == 0) {
		zc_warn("OTEL_BSP_MAX_EXPORT_BATCH_SIZE=0: using 512");
		o->max_batch = 512;
	}
	if (o->max_batch > o->max_queue) {
		zc_warn("OTEL_BSP_MAX_EXPORT_BATCH_SIZE=%zu is over "
			"OTEL_BSP_MAX_QUEUE_SIZE=%zu; using %zu",
			o->max_batch, o->max_queue, o->max_queue);
		o->max_batch = o->max_queue;
	}
}

void
zc__otel_load(struct zc_otel *o, const char *service)
{
	const char *dis = env("OTEL_SDK_DISABLED");
	char d[16];
	int e;

	memset(o, 0, sizeof(*o));
	o->exporter = ZC_EXPORT_NONE;
	if (dis != NULL) {
		trimmed(dis, d, sizeof(d));
		if (strcasecmp(d, "true") == 0)
			return; /* everything off, nothing else read */
		if (strcasecmp(d, "false") != 0)
			zc_warn("OTEL_SDK_DISABLED=\"%.32s\": expected true or "
				"false; using false",
				dis);
	}
	e = load_exporter();
	if (e < 0)
		e = env("OTEL_EXPORTER_OTLP_ENDPOINT") != NULL ||
				    env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") !=
					    NULL
			    ? ZC_EXPORT_OTLP
			    : ZC_EXPORT_NONE;
	if (e == ZC_EXPORT_NONE)
		return;
	o->exporter = e;
	load_sampler(o);
	load_resource(o, service);
	load_export_settings(o);
	if (e == ZC_EXPORT_OTLP) {
		o->endpoint = load_endpoint();
		load_protocol(o);
		load_headers(o);
		if (o->endpoint == NULL)
			o->exporter = ZC_EXPORT_NONE; /* ENOMEM */
	}
}

void
zc__otel_free(struct zc_otel *o)
{
	if (o == NULL)
		return;
	kv_free(o->resource, o->nresource);
	kv_free(o->headers, o->nheaders);
	free(o->endpoint);
	memset(o, 0, sizeof(*o));
}
