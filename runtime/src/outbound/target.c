/*
 * target.c - one record per downstream function: how it is reached and
 * the policy, circuit breaker and bulkhead every call to it shares.
 * Targets are few and live for the process, so they sit in an append-only
 * list read without locks; only creation takes the mutex.
 */
#include "outbound.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic(struct zc_target *) targets;
static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;

/* The built-in defaults until zc__policy_set_global applies ZC_CLIENT_*
 * etc.; set before the server's threads start. */
static zc_policy global_policy;
static bool global_set;

void
zc__policy_set_global(const zc_policy *p)
{
	global_policy = *p;
	global_set = true;
}

void
zc_policy_default(zc_policy *p)
{
	if (p == NULL)
		return;
	if (global_set)
		*p = global_policy;
	else
		zc__policy_builtin(p);
}

/* <NAME>_<suffix> as a long within [min, max]; unset or bad keeps *out. */
static int bad_env; /* count of rejected per-target values, for zc_service */

static void
env_override(const char *name, const char *suffix, long min, long max,
	     long *out)
{
	char var[128], *end;
	const char *s;
	size_t i;
	long v;

	for (i = 0; name[i] != '\0' && i < 63; i++)
		var[i] = name[i] == '-' ? '_'
					: (char)toupper((unsigned char)name[i]);
	snprintf(var + i, sizeof(var) - i, "_%s", suffix);
	s = getenv(var);
	if (s == NULL || *s == '\0')
		return;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		zc_warn("ignoring %s=\"%.32s\": expected %ld to %ld", var, s,
			min, max);
		bad_env++;
		return;
	}
	*out = v;
}

static void
apply_env(const char *name, zc_policy *p)
{
	long v;

	env_override(name, "TIMEOUT_MS", 1, 3600000, &p->timeout_ms);
	env_override(name, "CONNECT_TIMEOUT_MS", 1, 3600000,
		     &p->connect_timeout_ms);
	v = p->retries;
	env_override(name, "RETRIES", 0, 100, &v);
	p->retries = (int)v;
	v = p->breaker_failures;
	env_override(name, "BREAKER_FAILURES", 0, 1000000, &v);
	p->breaker_failures = (int)v;
	env_override(name, "BREAKER_OPEN_MS", 1, 3600000, &p->breaker_open_ms);
	v = p->max_concurrent;
	env_override(name, "MAX_CONCURRENT", 0, 1000000, &v);
	p->max_concurrent = (int)v;
}

static struct zc_target *
find(const char *name)
{
	struct zc_target *t =
		atomic_load_explicit(&targets, memory_order_acquire);

	for (; t != NULL; t = t->next)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

/*
 * Create (or return) name's target; policy NULL means the defaults.  mode
 * is how the caller's resolution of name reached it.
 */
static struct zc_target *
create(const char *name, int mode, const zc_policy *policy, bool *created)
{
	struct zc_target *t;
	bool dapr_default_retries;

	*created = false;
	pthread_mutex_lock(&create_mu);
	if ((t = find(name)) != NULL) {
		pthread_mutex_unlock(&create_mu);
		return t;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		pthread_mutex_unlock(&create_mu);
		return NULL;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->policy = policy != NULL ? *policy : global_policy;
	t->mode = mode;
	/*
	 * The Dapr sidecar already retries service invocation; retrying on
	 * top would multiply attempts, so Dapr targets default to none.
	 */
	dapr_default_retries = t->mode == ZC_MODE_DAPR && policy == NULL;
	if (dapr_default_retries)
		t->policy.retries = 0;
	apply_env(name, &t->policy);
	zc__breaker_init(&t->breaker, (unsigned)t->policy.breaker_failures,
			 t->policy.breaker_open_ms,
			 (unsigned)t->policy.breaker_probes);
	atomic_init(&t->inflight, 0);
	for (size_t i = 0; i < ZC_OUTCOMES; i++)
		atomic_init(&t->outcomes[i], 0);
	t->next = atomic_load_explicit(&targets, memory_order_relaxed);
	atomic_store_explicit(&targets, t, memory_order_release);
	pthread_mutex_unlock(&create_mu);
	*created = true;
	return t;
}

struct zc_target *
zc__target_use(const char *name, int mode)
{
	struct zc_target *t = find(name);
	bool created;

	if (t != NULL)
		return t;
	return create(name, mode, NULL, &created);
}

struct zc_target *
zc__target_with(const char *name, int mode, const zc_policy *policy)
{
	struct zc_target *t = find(name);
	bool created;

	if (t != NULL)
		return t;
	return create(name, mode, policy, &created);
}

struct zc_target *
zc__target_get(const char *name)
{
	char url[2048];
	struct zc_target *t = find(name);
	int mode = ZC_MODE_KNATIVE;

	if (t != NULL)
		return t;
	(void)zc__service_resolve(name, url, sizeof(url), &mode);
	return zc__target_use(name, mode);
}

static const char *const mode_names[] = {"env", "dapr", "knative"};

zc_err
zc_service(zc_app *app, const char *name, const zc_policy *policy)
{
	char url[2048];
	struct zc_target *t;
	int mode = ZC_MODE_KNATIVE;
	bool created;
	zc_err err;

	(void)app;
	err = zc__service_resolve(name, url, sizeof(url), &mode);
	if (err == ZC_OK) {
		/* declared targets are checked at start-up: a bad value
		 * stops the process instead of being ignored later */
		zc_policy scratch = global_policy;
		pthread_mutex_lock(&create_mu);
		bad_env = 0;
		apply_env(name, &scratch);
		if (bad_env > 0)
			err = ZC_ERR_INVALID;
		pthread_mutex_unlock(&create_mu);
	}
	if (err != ZC_OK) {
		zc_error("zc_service(\"%s\"): %s", name ? name : "(null)",
			 zc_strerror(err));
		return err;
	}
	t = create(name, mode, policy, &created);
	if (t == NULL)
		return ZC_ERR_NOMEM;
	if (!created) {
		/* Targets are per process; a second app (tests) shares it. */
		zc_debug("zc_service(\"%s\"): already declared", name);
		return ZC_OK;
	}
	zc_info("target %s via %s: %s (timeout %ld ms, %d retries, breaker "
		"%d failures/%ld ms/%d probes, %d concurrent max)",
		t->name, mode_names[t->mode], url, t->policy.timeout_ms,
		t->policy.retries, t->policy.breaker_failures,
		t->policy.breaker_open_ms, t->policy.breaker_probes,
		t->policy.max_concurrent);
	return ZC_OK;
}

struct zc_target *
zc__targets(void)
{
	return atomic_load_explicit(&targets, memory_order_acquire);
}

const char *
zc__outcome_name(int outcome)
{
	static const char *const names[ZC_OUTCOMES] = {
		"ok",         "nomem",     "invalid",      "dns",
		"refused",    "timeout",   "transport",    "http_error",
		"bad_reply",  "too_large", "breaker_open", "bulkhead_full",
		"queue_full", "deadline",
	};

	return outcome >= 0 && outcome < ZC_OUTCOMES ? names[outcome] : "other";
}

void
zc__targets_metrics(struct zc_buf *o, void *arg)
{
	struct zc_target *t;
	size_t i;

	(void)arg;
	zc__buf_printf(o, "# HELP zc_client_calls_total Outbound call "
			  "attempts, by target and outcome.\n# TYPE "
			  "zc_client_calls_total counter\n");
	for (t = zc__targets(); t != NULL; t = t->next)
		for (i = 0; i < ZC_OUTCOMES; i++) {
			unsigned long n = atomic_load(&t->outcomes[i]);
			if (n == 0)
				continue;
			zc__buf_printf(o, "zc_client_calls_total{target=\"");
			zc__metrics_label(o, t->name);
			zc__buf_printf(o, "\",outcome=\"%s\"} %lu\n",
				       zc__outcome_name((int)i), n);
		}
	zc__buf_printf(o, "# HELP zc_client_breaker_state Circuit breaker per "
			  "target: 0 closed, 1 half-open, 2 open.\n# TYPE "
			  "zc_client_breaker_state gauge\n");
	for (t = zc__targets(); t != NULL; t = t->next) {
		zc__buf_printf(o, "zc_client_breaker_state{target=\"");
		zc__metrics_label(o, t->name);
		zc__buf_printf(o, "\"} %d\n", zc__breaker_state(&t->breaker));
	}
}
