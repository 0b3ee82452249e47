/*
 * export.c - the trace exporter: one thread (zc-otel) that takes batches
 * of finished spans from span.c's queue and ships them, as OTLP/HTTP to
 * the collector (protobuf or JSON, gzip if asked, the OTLP retry rules) or
 * as JSON lines on stderr (console).  One thread, so exports never
 * overlap, and a request never waits for one: a slow or absent collector
 * fills the bounded queue, and what does not fit is dropped and counted.
 *
 * Its requests go straight to curl.c's zc__curl_attempt with a call of its
 * own, not through zc_call_perform: the exporter's POSTs are no function
 * call, so they get no client span (which would feed the queue it is
 * draining), no target, breaker or call metrics.
 */
#include "call.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#define USER_AGENT "OTel-OTLP-Exporter-C/" ZC_VERSION " zenith-c/" ZC_VERSION
/* The spec: treat a reply over 4 MiB as not retryable. */
#define MAX_REPLY ((size_t)4 * 1024 * 1024)
/* Retries without Retry-After: 1 s doubling to 30 s, 50-100 % jitter. */
#define BACKOFF_MS     1000L
#define BACKOFF_MAX_MS 30000L
/* Warnings of a failure streak after its first line: one a minute. */
#define WARN_EVERY_NS (60LL * 1000000000LL)

static struct zc_otel cfg;
static pthread_t thread;
static bool running; /* start and stop run on the main thread */
static atomic_bool stopping;
/* The stop deadline (0: none yet): bounds retries and waits, and aborts
 * a request in progress through curl.c's progress callback. */
static _Atomic long long abort_ns;
static pthread_mutex_t wait_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wait_cond;
static pthread_once_t wait_once = PTHREAD_ONCE_INIT;

/* metrics */
static atomic_ullong n_exported, n_failed, n_rejected, n_shutdown;
enum { R_SUCCESS, R_PARTIAL, R_RETRYABLE, R_FAILED, R_TRANSPORT, R_N };
static const char *const result_names[R_N] = {"success", "partial", "retryable",
					      "failed", "transport_error"};
static atomic_ullong n_requests[R_N];

/* the exporter thread's own */
static zc_call *wire;
static struct curl_slist *wire_hdrs;
static void *curl;
static bool use_gzip; /* asked for, and zlib is there */
static struct {
	bool failing;
	long long since_ns; /* last warning */
	unsigned long exports, spans;
} streak;
static long long partial_warned_ns;

static void
wait_init(void)
{
	zc__cond_init_monotonic(&wait_cond);
}

/* Sleep ms, or less when stop is asked for meanwhile (once stopping,
 * backoff still applies: the stop deadline bounds it in post()). */
static void
nap(long ms)
{
	long long until = zc__now_ns() + (long long)ms * 1000000LL;
	struct timespec ts = {(time_t)(until / 1000000000LL),
			      (long)(until % 1000000000LL)};
	bool was = atomic_load(&stopping);

	pthread_mutex_lock(&wait_mu);
	while ((was || !atomic_load(&stopping)) && zc__now_ns() < until)
		if (pthread_cond_timedwait(&wait_cond, &wait_mu, &ts) ==
		    ETIMEDOUT)
			break;
	pthread_mutex_unlock(&wait_mu);
}

/* ---- gzip: zlib loaded with dlopen, as libcurl is (curl.c) ---- */

static struct {
	int (*init2)(z_streamp, int, int, int, int, int, const char *, int);
	int (*deflate)(z_streamp, int);
	int (*end)(z_streamp);
	uLong (*bound)(z_streamp, uLong);
} zl;
static pthread_once_t zl_once = PTHREAD_ONCE_INIT;
static bool zl_ok;

static void
zl_load(void)
{
	void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		zc_warn("OTEL_EXPORTER_OTLP_COMPRESSION=gzip: cannot load "
			"zlib (%s); sending uncompressed",
			dlerror());
		return;
	}
	*(void **)&zl.init2 = dlsym(h, "deflateInit2_");
	*(void **)&zl.deflate = dlsym(h, "deflate");
	*(void **)&zl.end = dlsym(h, "deflateEnd");
	*(void **)&zl.bound = dlsym(h, "deflateBound");
	zl_ok = zl.init2 != NULL && zl.deflate != NULL && zl.end != NULL &&
		zl.bound != NULL;
	if (!zl_ok)
		zc_warn("zlib lacks deflate; sending traces uncompressed");
}

/* in as a gzip member (malloc'd, *out_len set), or NULL. */
static char *
gzip(const char *in, size_t n, size_t *out_len)
{
	z_stream s;
	char *out;
	uLong cap;

	if (n > UINT_MAX)
		return NULL;
	memset(&s, 0, sizeof(s));
	/* windowBits 15 + 16: a gzip header and trailer, not zlib's */
	if (zl.init2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
		     Z_DEFAULT_STRATEGY, ZLIB_VERSION, (int)sizeof(s)) != Z_OK)
		return NULL;
	cap = zl.bound(&s, (uLong)n);
	if ((out = malloc(cap)) == NULL) {
		zl.end(&s);
		return NULL;
	}
	s.next_in = (Bytef *)(uintptr_t)in;
	s.avail_in = (uInt)n;
	s.next_out = (Bytef *)out;
	s.avail_out = (uInt)cap;
	if (zl.deflate(&s, Z_FINISH) != Z_STREAM_END) {
		zl.end(&s);
		free(out);
		return NULL;
	}
	*out_len = s.total_out;
	zl.end(&s);
	return out;
}

/* ---- warnings, rate-limited: a collector that is down must not flood
 * the log ---- */

static void
export_failed(size_t n, const char *why)
{
	long long now = zc__now_ns();

	atomic_fetch_add(&n_failed, n);
	streak.exports++;
	streak.spans += n;
	if (!streak.failing) {
		zc_warn("trace export to %s failed (%s): %zu span(s) dropped; "
			"while it keeps failing, one line a minute",
			cfg.endpoint, why, n);
	} else if (now - streak.since_ns >= WARN_EVERY_NS) {
		zc_warn("trace export to %s still failing (%s): %lu "
			"export(s), %lu span(s) dropped in the last minute",
			cfg.endpoint, why, streak.exports, streak.spans);
	} else {
		return;
	}
	streak.failing = true;
	streak.since_ns = now;
	streak.exports = streak.spans = 0;
}

static void
export_ok(void)
{
	if (streak.failing)
		zc_info("trace export to %s works again", cfg.endpoint);
	streak.failing = false;
}

/* ---- OTLP/HTTP ---- */

/* The wire call and its headers, made once on the exporter's thread
 * (loading libcurl is its business, not start-up's). */
static int
wire_setup(void)
{
	char line[1100];
	size_t i;

	/* the exporter's thread is no loop: wire->on_loop stays false */
	if ((wire = calloc(1, sizeof(*wire))) == NULL)
		return -1;
	if (zc__client_global_init() != 0 ||
	    (curl = zc__curl_handle(wire)) == NULL)
		return -1;
	memcpy(wire->method, "POST", 5);
	wire->url = cfg.endpoint;
	wire->max_reply = MAX_REPLY;
	wire->may_resend = true; /* a collector accepts duplicates */
	wire->drain_ns = &abort_ns;
	if (cfg.gzip) {
		pthread_once(&zl_once, zl_load);
		use_gzip = zl_ok;
	}
	if (zc__curl_list_append(&wire_hdrs,
				 cfg.protocol == ZC_OTLP_JSON
					 ? "Content-Type: "
					   "application/json"
					 : "Content-Type: "
					   "application/x-protobuf") != 0 ||
	    zc__curl_list_append(&wire_hdrs, "User-Agent: " USER_AGENT) != 0 ||
	    /* curl would wait for a 100 Continue on large bodies */
	    zc__curl_list_append(&wire_hdrs, "Expect:") != 0 ||
	    (use_gzip &&
	     zc__curl_list_append(&wire_hdrs, "Content-Encoding: gzip") != 0))
		return -1;
	for (i = 0; i < cfg.nheaders; i++) {
		const char *k = cfg.headers[i].key, *v = cfg.headers[i].value;
		/* the body's own headers are ours to say */
		if (strcasecmp(k, "Content-Type") == 0 ||
		    strcasecmp(k, "Content-Encoding") == 0 ||
		    strcasecmp(k, "Content-Length") == 0)
			continue;
		/* "Name;" is how curl sends an empty value */
		snprintf(line, sizeof(line), v[0] != '\0' ? "%s: %s" : "%s;", k,
			 v);
		if (zc__curl_list_append(&wire_hdrs, line) != 0)
			return -1;
	}
	return 0;
}

static void
wire_free(void)
{
	zc__curl_list_free(wire_hdrs);
	wire_hdrs = NULL;
	if (wire != NULL) {
		zc__call_reply_clear(wire);
		free(wire);
		wire = NULL;
	}
}

static long
backoff(int attempt)
{
	long d = BACKOFF_MS;
	int i;

	for (i = 1; i < attempt && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	return d / 2 + (long)(zc__rand64() % (uint64_t)(d / 2 + 1));
}

static bool
transport_error(zc_err err)
{
	return err == ZC_ERR_REFUSED || err == ZC_ERR_DNS ||
	       err == ZC_ERR_TRANSPORT || err == ZC_ERR_TIMEOUT;
}

/* A 2xx: spans accepted, maybe some rejected (partial success, never
 * retried). */
static void
accepted(size_t n)
{
	char msg[256];
	long long rej = zc__otlp_rejected(cfg.protocol, wire->reply,
					  wire->reply_len, msg, sizeof(msg));
	long long now = zc__now_ns();

	if (rej > (long long)n)
		rej = (long long)n;
	if (rej == 0 && msg[0] == '\0') {
		atomic_fetch_add(&n_requests[R_SUCCESS], 1);
		atomic_fetch_add(&n_exported, n);
		return;
	}
	atomic_fetch_add(&n_requests[R_PARTIAL], 1);
	atomic_fetch_add(&n_exported, n - (size_t)rej);
	atomic_fetch_add(&n_rejected, (unsigned long long)rej);
	if (partial_warned_ns == 0 ||
	    now - partial_warned_ns >= WARN_EVERY_NS) {
		zc_warn("trace export: the collector rejected %lld of %zu "
			"span(s)%s%.200s",
			rej, n, msg[0] != '\0' ? ": " : "", msg);
		partial_warned_ns = now;
	}
}

/*
 * One batch to the collector, retried on 429, 502, 503, 504 and transport
 * failures (Retry-After, else exponential backoff with jitter) for at most
 * OTEL_BSP_EXPORT_TIMEOUT, and never past the stop deadline; each attempt
 * at most OTEL_EXPORTER_OTLP_TIMEOUT.  0 when sent; else -1 and why.
 */
static int
post(const char *body, size_t len, size_t n, char *why, size_t whysize)
{
	long long end =
		cfg.export_timeout_ms > 0
			? zc__now_ns() + cfg.export_timeout_ms * 1000000LL
			: LLONG_MAX;
	int attempt;

	if (wire == NULL) {
		snprintf(why, whysize, "libcurl cannot be loaded");
		return -1;
	}
	wire->body = (char *)(uintptr_t)body;
	wire->body_len = len;
	wire->has_body = true;
	for (attempt = 1;; attempt++) {
		long long stop = atomic_load(&abort_ns), now = zc__now_ns();
		long left, per, wait;
		zc_err err;

		if (stop != 0 && stop < end)
			end = stop;
		if (now >= end) {
			snprintf(why, whysize,
				 "out of time after %d attempt(s)",
				 attempt - 1);
			return -1;
		}
		left = end == LLONG_MAX ? 0 : (long)((end - now) / 1000000LL);
		if (end != LLONG_MAX && left < 1)
			left = 1;
		per = cfg.timeout_ms > 0 && (left == 0 || cfg.timeout_ms < left)
			      ? cfg.timeout_ms
			      : left; /* 0: no limit */
		zc__call_reply_clear(wire);
		wire->retry_after_ms = 0;
		err = zc__curl_attempt(wire, curl, wire_hdrs, per, per);
		if (err == ZC_OK && wire->status >= 200 && wire->status < 300) {
			accepted(n);
			return 0;
		}
		if (err == ZC_OK ||
		    (err == ZC_ERR_HTTP && wire->status != 429 &&
		     wire->status != 502 && wire->status != 503 &&
		     wire->status != 504)) {
			atomic_fetch_add(&n_requests[R_FAILED], 1);
			snprintf(why, whysize, "HTTP %d, not retried",
				 wire->status);
			return -1;
		}
		if (err != ZC_ERR_HTTP && !transport_error(err)) {
			/* the stop deadline, a reply over 4 MiB, memory */
			atomic_fetch_add(&n_requests[R_FAILED], 1);
			snprintf(why, whysize, "%s", zc_strerror(err));
			return -1;
		}
		atomic_fetch_add(&n_requests[err == ZC_ERR_HTTP ? R_RETRYABLE
								: R_TRANSPORT],
				 1);
		if (err == ZC_ERR_HTTP)
			snprintf(why, whysize, "HTTP %d", wire->status);
		else
			snprintf(why, whysize, "%s", zc_strerror(err));
		/*
		 * Shutting down, a collector that cannot be reached will not
		 * be reached in the seconds left either: give up at once
		 * rather than hold the pod's exit until the drain deadline.
		 * 429 and 5xx answers are still retried within it.
		 */
		if (err != ZC_ERR_HTTP && atomic_load(&stopping)) {
			snprintf(why + strlen(why), whysize - strlen(why),
				 "; not retried while shutting down");
			return -1;
		}
		wait = wire->retry_after_ms > 0 ? wire->retry_after_ms
						: backoff(attempt);
		if (end != LLONG_MAX &&
		    zc__now_ns() + (long long)wait * 1000000LL >= end) {
			snprintf(why + strlen(why), whysize - strlen(why),
				 "; no time for a retry in %ld ms", wait);
			return -1;
		}
		zc_debug("trace export: %s; retrying in %ld ms", why, wait);
		nap(wait);
	}
}

static void
ship_otlp(const struct zc_span *list, size_t n)
{
	char why[160], *body, *gz = NULL;
	size_t len, gzlen = 0;

	body = cfg.protocol == ZC_OTLP_JSON
		       ? zc__otlp_json(&cfg, list, &len)
		       : zc__otlp_protobuf(&cfg, list, &len);
	if (body == NULL) {
		export_failed(n, "out of memory");
		return;
	}
	if (use_gzip && (gz = gzip(body, len, &gzlen)) == NULL) {
		free(body);
		export_failed(n, "gzip failed");
		return;
	}
	if (post(gz != NULL ? gz : body, gz != NULL ? gzlen : len, n, why,
		 sizeof(why)) == 0)
		export_ok();
	else
		export_failed(n, why);
	free(gz);
	free(body);
}

/* ---- console ---- */

static void
write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void
ship_console(const struct zc_span *list)
{
	const struct zc_span *s;
	size_t len;
	char *line;

	for (s = list; s != NULL; s = s->next) {
		if ((line = zc__otlp_console(&cfg, s, &len)) == NULL) {
			atomic_fetch_add(&n_failed, 1);
			continue;
		}
		write_all(line, len); /* one write: lines never interleave */
		free(line);
		atomic_fetch_add(&n_exported, 1);
	}
}

/* ---- the thread ---- */

static void *
run(void *arg)
{
	struct zc_span *list, *s, *next;
	size_t n;

	(void)arg;
	pthread_setname_np(pthread_self(), "zc-otel");
	if (cfg.exporter == ZC_EXPORT_OTLP && wire_setup() != 0) {
		zc_warn("trace export: libcurl cannot be loaded; spans will "
			"be dropped");
		wire_free();
	}
	for (;;) {
		bool stop = atomic_load(&stopping);
		long long now = zc__now_ns();

		/* a schedule delay of 0 would spin: 1 ms is its floor */
		n = zc__span_take(&list, cfg.max_batch,
				  stop ? now
				       : now + (cfg.schedule_delay_ms > 0
							? cfg.schedule_delay_ms
							: 1) *
							  1000000LL);
		if (n > 0) {
			if (cfg.exporter == ZC_EXPORT_CONSOLE)
				ship_console(list);
			else
				ship_otlp(list, n);
			for (s = list; s != NULL; s = next) {
				next = s->next;
				zc__span_free(s);
			}
		}
		if (stop && (n == 0 || zc__now_ns() >= atomic_load(&abort_ns)))
			break;
	}
	wire_free();
	return NULL;
}

static void
render(struct zc_buf *o, void *arg)
{
	struct zc_span_counts c;
	int i;

	(void)arg;
	zc__span_counts(&c);
	zc__buf_printf(o,
		       "# HELP zc_otel_spans_exported_total Spans the "
		       "collector accepted (console: printed).\n"
		       "# TYPE zc_otel_spans_exported_total counter\n"
		       "zc_otel_spans_exported_total %llu\n"
		       "# HELP zc_otel_spans_dropped_total Spans recorded but "
		       "never exported, by reason.\n"
		       "# TYPE zc_otel_spans_dropped_total counter\n"
		       "zc_otel_spans_dropped_total{reason=\"queue_full\"} "
		       "%llu\n"
		       "zc_otel_spans_dropped_total{reason=\"export_failed\"} "
		       "%llu\n"
		       "zc_otel_spans_dropped_total{reason=\"rejected\"} %llu\n"
		       "zc_otel_spans_dropped_total{reason=\"shutdown\"} %llu\n"
		       "# HELP zc_otel_export_requests_total Requests to the "
		       "collector, by result (each retry counts).\n"
		       "# TYPE zc_otel_export_requests_total counter\n",
		       (unsigned long long)atomic_load(&n_exported), c.dropped,
		       (unsigned long long)atomic_load(&n_failed),
		       (unsigned long long)atomic_load(&n_rejected),
		       (unsigned long long)atomic_load(&n_shutdown));
	for (i = 0; i < R_N; i++)
		zc__buf_printf(o,
			       "zc_otel_export_requests_total{result=\"%s\"} "
			       "%llu\n",
			       result_names[i],
			       (unsigned long long)atomic_load(&n_requests[i]));
	zc__buf_printf(o,
		       "# HELP zc_otel_queue_spans Finished spans waiting for "
		       "export.\n# TYPE zc_otel_queue_spans gauge\n"
		       "zc_otel_queue_spans %zu\n",
		       c.queued);
}

static const char *
sampler_name(int s)
{
	static const char *const names[] = {
		"always_on",
		"always_off",
		"traceidratio",
		"parentbased_always_on",
		"parentbased_always_off",
		"parentbased_traceidratio",
	};

	return s >= 0 && s < 6 ? names[s] : "?";
}

int
zc__tracing_start(const char *service)
{
	char ratio[32] = "";

	if (running)
		return 0;
	zc__otel_load(&cfg, service);
	if (cfg.exporter == ZC_EXPORT_NONE) {
		zc__otel_free(&cfg);
		return 0;
	}
	pthread_once(&wait_once, wait_init);
	atomic_store(&stopping, false);
	atomic_store(&abort_ns, 0);
	zc__tracing_enable(&cfg);
	if (zc__metrics_provider(render, NULL) != 0)
		zc_warn("tracing: no room for its metrics in /metrics");
	if (pthread_create(&thread, NULL, run, NULL) != 0) {
		zc_error("tracing: cannot start the exporter thread; tracing "
			 "off");
		zc__tracing_disable();
		zc__metrics_provider_remove(render, NULL);
		zc__otel_free(&cfg);
		return -1;
	}
	running = true;
	if (cfg.sampler == ZC_SAMPLE_RATIO ||
	    cfg.sampler == ZC_SAMPLE_PARENT_RATIO)
		snprintf(ratio, sizeof(ratio), " %g", cfg.ratio);
	if (cfg.exporter == ZC_EXPORT_CONSOLE)
		zc_info("tracing: console exporter (JSON lines on stderr), "
			"sampler %s%s, service.name %s",
			sampler_name(cfg.sampler), ratio,
			cfg.resource[0].value);
	else
		zc_info("tracing: OTLP to %s (%s%s), sampler %s%s, "
			"service.name %s, batches of %zu every %ld ms, queue "
			"%zu",
			cfg.endpoint,
			cfg.protocol == ZC_OTLP_JSON ? "http/json"
						     : "http/protobuf",
			cfg.gzip ? ", gzip" : "", sampler_name(cfg.sampler),
			ratio, cfg.resource[0].value, cfg.max_batch,
			cfg.schedule_delay_ms, cfg.max_queue);
	return 0;
}

bool
zc__tracing_running(void)
{
	return running;
}

void
zc__tracing_stop(long long deadline_ns)
{
	struct zc_span_counts c;
	struct timespec ts;

	if (!running)
		return;
	atomic_store(&abort_ns, deadline_ns);
	pthread_mutex_lock(&wait_mu);
	atomic_store(&stopping, true);
	pthread_cond_broadcast(&wait_cond);
	pthread_mutex_unlock(&wait_mu);
	zc__span_wake();
	/* curl's progress callback notices the deadline within a second */
	zc__wall_deadline(deadline_ns, 1500000000LL, &ts);
	running = false;
	if (pthread_timedjoin_np(thread, NULL, &ts) != 0) {
		/* it holds cfg and the spans in hand: leave both to exit */
		zc_warn("tracing: the exporter is still busy at the drain "
			"deadline; exiting without it");
		pthread_detach(thread);
		return;
	}
	zc__span_counts(&c);
	atomic_fetch_add(&n_shutdown, c.queued);
	zc__tracing_disable();
	if (c.queued > 0)
		zc_warn("tracing: %zu span(s) not exported by the drain "
			"deadline",
			c.queued);
	zc__otel_free(&cfg);
}
