/*
 * config.c - every environment variable the runtime reads, with its default,
 * validated once at start-up.  A bad value stops the process with a message
 * that names the variable (Knative marks the revision failed; locally the
 * developer sees why).  docs/operations.md lists the same table.
 */
#include "core.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Parse env name as an integer in [min, max]; unset or empty keeps *out. */
int
zc__env_long(const char *name, long min, long max, long *out, char *err,
	     size_t errsize)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		snprintf(err, errsize,
			 "invalid %s=\"%.64s\": expected an integer from %ld "
			 "to %ld",
			 name, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int
env_int(const char *name, int min, int max, int *out, char *err, size_t errsize)
{
	long v = *out;

	if (zc__env_long(name, min, max, &v, err, errsize))
		return -1;
	*out = (int)v;
	return 0;
}

static int
env_path(const char *name, const char **out, char *err, size_t errsize)
{
	const char *s = getenv(name);

	if (s == NULL || *s == '\0')
		return 0;
	if (s[0] != '/' || strpbrk(s, "?# \t\r\n") != NULL) {
		snprintf(err, errsize,
			 "invalid %s=\"%.64s\": expected an absolute path",
			 name, s);
		return -1;
	}
	*out = s;
	return 0;
}

/* Read a small file into buf; 0 on success. */
static int
read_small(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL)
		return -1;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	return 0;
}

/*
 * The CPU budget the scheduler will actually give us: a container's cgroup
 * quota (v2 cpu.max, then v1 cfs) is what Knative's CPU limit sets, and it is
 * often far below the node's core count.
 */
int
zc__cpu_count(void)
{
	char buf[128];
	long quota = -1, period = 0;
	int cpus = 1;
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	if (read_small("/sys/fs/cgroup/cpu.max", buf, sizeof(buf)) == 0) {
		if (strncmp(buf, "max", 3) != 0)
			sscanf(buf, "%ld %ld", &quota, &period);
	} else if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf,
			      sizeof(buf)) == 0) {
		quota = strtol(buf, NULL, 10);
		if (read_small("/sys/fs/cgroup/cpu/cpu.cfs_period_us", buf,
			       sizeof(buf)) == 0)
			period = strtol(buf, NULL, 10);
	}
	if (quota > 0 && period > 0) {
		long q = (quota + period - 1) / period;
		if (q < cpus)
			cpus = (int)q;
	}
	return cpus < 1 ? 1 : cpus;
}

void
zc__policy_builtin(zc_policy *p)
{
	static const zc_policy builtin = {
		.timeout_ms = 5000,
		.connect_timeout_ms = 2000,
		.retries = 2,
		.backoff_ms = 50,
		.backoff_max_ms = 1000,
		.breaker_failures = 5,
		.breaker_open_ms = 10000,
		.breaker_probes = 3,
		.max_concurrent = 0,
	};

	*p = builtin;
}

int
zc__config_load(zc_config *cfg, char *err, size_t errsize)
{
	const char *s;
	long v;

	memset(cfg, 0, sizeof(*cfg));
	cfg->port = 8080;
	/* 0: chosen at start-up, once setup has said whether handlers call
	 * out (zc__config_threads) */
	cfg->threads = 0;
	cfg->max_body = 1024 * 1024;
	cfg->max_header = 32 * 1024;
	cfg->idle_timeout_s = 15;
	cfg->body_timeout_ms = 10000;
	cfg->handler_timeout_ms = 30000;
	cfg->drain_timeout_ms = 20000;
	cfg->max_connections = 0; /* libmicrohttpd's default */
	cfg->readiness_path = "/health/readiness";
	cfg->liveness_path = "/health/liveness";
	cfg->metrics_path = "/metrics";
	cfg->max_inflight = 0;
	zc__policy_builtin(&cfg->policy);
	cfg->client_max_reply = 8 * 1024 * 1024;
	cfg->async_queue = 1024;
	cfg->async_workers = 0; /* as many as server threads (app.c) */
	cfg->idem_max_keys = 10000;
	cfg->idem_ttl_s = 3600;

	v = cfg->port;
	if (zc__env_long("PORT", 1, 65535, &v, err, errsize))
		return -1;
	cfg->port = (int)v;
	cfg->listen_address = getenv("ZC_LISTEN_ADDRESS");
	if (cfg->listen_address != NULL && *cfg->listen_address == '\0')
		cfg->listen_address = NULL;
	s = getenv("ZC_THREAD_MODE");
	if (s != NULL && *s != '\0') {
		if (strcmp(s, "connection") == 0) {
			cfg->thread_per_connection = true;
		} else if (strcmp(s, "pool") != 0) {
			snprintf(err, errsize,
				 "invalid ZC_THREAD_MODE=\"%.32s\": expected "
				 "pool or connection",
				 s);
			return -1;
		}
	}
	v = 0;
	if (zc__env_long("ZC_THREADS", 1, 1024, &v, err, errsize))
		return -1;
	cfg->threads = (int)v;
	v = (long)cfg->max_body;
	if (zc__env_long("ZC_MAX_BODY_BYTES", 0, 1L << 30, &v, err, errsize))
		return -1;
	cfg->max_body = (size_t)v;
	v = (long)cfg->max_header;
	if (zc__env_long("ZC_MAX_HEADER_BYTES", 4096, 1L << 20, &v, err,
			 errsize))
		return -1;
	cfg->max_header = (size_t)v;
	v = cfg->idle_timeout_s;
	if (zc__env_long("ZC_IDLE_TIMEOUT_S", 1, 3600, &v, err, errsize))
		return -1;
	cfg->idle_timeout_s = (unsigned)v;
	if (zc__env_long("ZC_BODY_TIMEOUT_MS", 1, 3600000,
			 &cfg->body_timeout_ms, err, errsize))
		return -1;
	if (zc__env_long("ZC_HANDLER_TIMEOUT_MS", 1, 3600000,
			 &cfg->handler_timeout_ms, err, errsize))
		return -1;
	if (zc__env_long("ZC_DRAIN_TIMEOUT_MS", 0, 3600000,
			 &cfg->drain_timeout_ms, err, errsize))
		return -1;
	v = cfg->max_connections;
	if (zc__env_long("ZC_MAX_CONNECTIONS", 0, 1000000, &v, err, errsize))
		return -1;
	cfg->max_connections = (unsigned)v;
	if (env_path("ZC_READINESS_PATH", &cfg->readiness_path, err, errsize))
		return -1;
	if (env_path("ZC_LIVENESS_PATH", &cfg->liveness_path, err, errsize))
		return -1;
	s = getenv("ZC_METRICS_PATH");
	if (s != NULL && strcmp(s, "off") == 0)
		cfg->metrics_path = NULL;
	else if (env_path("ZC_METRICS_PATH", &cfg->metrics_path, err, errsize))
		return -1;
	if (zc__env_long("ZC_MAX_INFLIGHT", 0, 1000000, &cfg->max_inflight, err,
			 errsize))
		return -1;
	if (zc__env_long("ZC_CLIENT_TIMEOUT_MS", 1, 3600000,
			 &cfg->policy.timeout_ms, err, errsize))
		return -1;
	if (zc__env_long("ZC_CLIENT_CONNECT_TIMEOUT_MS", 1, 3600000,
			 &cfg->policy.connect_timeout_ms, err, errsize))
		return -1;
	if (env_int("ZC_CLIENT_RETRIES", 0, 100, &cfg->policy.retries, err,
		    errsize))
		return -1;
	if (zc__env_long("ZC_CLIENT_BACKOFF_MS", 1, 60000,
			 &cfg->policy.backoff_ms, err, errsize))
		return -1;
	if (zc__env_long("ZC_CLIENT_BACKOFF_MAX_MS", 1, 600000,
			 &cfg->policy.backoff_max_ms, err, errsize))
		return -1;
	if (env_int("ZC_CLIENT_MAX_CONCURRENT", 0, 1000000,
		    &cfg->policy.max_concurrent, err, errsize))
		return -1;
	if (env_int("ZC_BREAKER_FAILURES", 0, 1000000,
		    &cfg->policy.breaker_failures, err, errsize))
		return -1;
	if (zc__env_long("ZC_BREAKER_OPEN_MS", 1, 3600000,
			 &cfg->policy.breaker_open_ms, err, errsize))
		return -1;
	if (env_int("ZC_BREAKER_PROBES", 1, 1000, &cfg->policy.breaker_probes,
		    err, errsize))
		return -1;
	v = (long)cfg->async_queue;
	if (zc__env_long("ZC_ASYNC_QUEUE_SIZE", 1, 10000000, &v, err, errsize))
		return -1;
	cfg->async_queue = (size_t)v;
	if (env_int("ZC_ASYNC_WORKERS", 1, 64, &cfg->async_workers, err,
		    errsize))
		return -1;
	/* read where they are used (fiber.c, loop.c); checked here */
	v = 256;
	if (zc__env_long("ZC_FIBER_STACK_KB", 32, 65536, &v, err, errsize))
		return -1;
	v = 100;
	if (zc__env_long("ZC_LOOP_BLOCK_WARN_MS", 0, 3600000, &v, err,
			 errsize))
		return -1;
	v = (long)cfg->client_max_reply;
	if (zc__env_long("ZC_CLIENT_MAX_REPLY_BYTES", 1024, 1L << 30, &v, err,
			 errsize))
		return -1;
	cfg->client_max_reply = (size_t)v;
	v = (long)cfg->idem_max_keys;
	if (zc__env_long("ZC_IDEMPOTENCY_MAX_KEYS", 1, 10000000, &v, err,
			 errsize))
		return -1;
	cfg->idem_max_keys = (size_t)v;
	if (zc__env_long("ZC_IDEMPOTENCY_TTL_S", 1, 30L * 86400,
			 &cfg->idem_ttl_s, err, errsize))
		return -1;
	if (cfg->metrics_path != NULL &&
	    (strcmp(cfg->metrics_path, cfg->readiness_path) == 0 ||
	     strcmp(cfg->metrics_path, cfg->liveness_path) == 0)) {
		snprintf(err, errsize,
			 "ZC_METRICS_PATH \"%s\" is also a health path",
			 cfg->metrics_path);
		return -1;
	}
	if (strcmp(cfg->readiness_path, cfg->liveness_path) == 0) {
		snprintf(err, errsize,
			 "ZC_READINESS_PATH and ZC_LIVENESS_PATH are both "
			 "\"%s\"",
			 cfg->readiness_path);
		return -1;
	}
	return 0;
}

/*
 * ZC_THREADS unset: one event loop per CPU, whether or not the function
 * calls out.  A handler waiting on a downstream yields its loop (its
 * fiber waits, the loop serves other connections), so a thread per
 * waiting handler is no longer needed, and more loops than CPUs only add
 * context switches and split the event batches (BENCHMARKS.md).
 * calls_out is kept for the start-up line's sake.
 */
int
zc__config_threads(const zc_config *cfg, bool calls_out)
{
	(void)calls_out;
	if (cfg->threads > 0)
		return cfg->threads;
	return zc__cpu_count();
}
