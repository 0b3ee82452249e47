/*
 * core.h - the core every layer uses: configuration, logging, JSON
 * encoding, trace context and random ids, clocks, metrics.  Nothing here
 * knows of the server, outbound calls, events or the store; the layers
 * above register what core must ask them (metrics providers).
 */
#ifndef ZC_CORE_H
#define ZC_CORE_H

#include "zenith.h"
#include "fiber.h"
#include "tracing.h"
#include "loop.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

/* ---- configuration (config.c) ---- */
typedef struct zc_config {
	int port;
	const char *listen_address; /* NULL: all interfaces */
	int threads;
	bool thread_per_connection; /* ZC_THREAD_MODE=connection */
	size_t max_body;
	size_t max_header;
	unsigned idle_timeout_s;
	long body_timeout_ms;
	long handler_timeout_ms;
	long drain_timeout_ms;
	unsigned max_connections;
	const char *readiness_path;
	const char *liveness_path;
	const char *metrics_path; /* NULL: metrics off */
	long max_inflight;        /* 0: unlimited */
	zc_policy policy;         /* global client defaults */
	size_t client_max_reply;
	size_t async_queue;
	int async_workers;
	size_t idem_max_keys;
	long idem_ttl_s;
} zc_config;

/* Fill cfg from the environment.  On a bad value writes one line naming the
 * variable into err and returns -1. */
int zc__config_load(zc_config *cfg, char *err, size_t errsize);
/* Environment variable name as an integer in [min, max] into *out (unset
 * or empty: *out unchanged); else -1 and one line naming it in err. */
int zc__env_long(const char *name, long min, long max, long *out, char *err,
		 size_t errsize);
/* CPUs this process may use: cgroup quota first, then affinity. */
int zc__cpu_count(void);
/* The client policy's built-in defaults (zenith.h lists them). */
void zc__policy_builtin(zc_policy *p);
/* Server threads: ZC_THREADS, or the default for a function that does or
 * does not call out. */
int zc__config_threads(const zc_config *cfg, bool calls_out);

/* ---- trace context and randomness (trace.c) ---- */
/* W3C trace context of one request. */
struct zc_trace {
	char trace_id[33];
	char parent_id[17]; /* the caller's span, "" when we started it */
	char span_id[17];   /* ours */
	char flags[3];
	bool inbound; /* came with a valid traceparent */
};

uint64_t zc__rand64(void);
/* v as 16 lower-case hex digits and a NUL into out (17 bytes). */
void zc__hex64(char *out, uint64_t v);
#define ZC__FNV_OFFSET 0xcbf29ce484222325ULL /* FNV-1a's offset basis */
/* FNV-1a of p[0..n) continuing from h, and an independent second hash:
 * together a 128-bit fingerprint (ids.c). */
uint64_t zc__fnv1a(const void *p, size_t n, uint64_t h);
uint64_t zc__mix_hash(const void *p, size_t n);
bool zc__trace_parse(const char *traceparent, struct zc_trace *t);
/* Continue the trace in traceparent (NULL or invalid: start one) and give
 * it a span id of our own. */
void zc__trace_start(struct zc_trace *t, const char *traceparent);
/* A traceparent for an outbound call: same trace, new parent-id. */
void zc__trace_child(const struct zc_trace *t, char *out, size_t size);

/*
 * What the layers below the server know of the request a thread serves:
 * what its log lines and access line print.  struct zc_req (http/http.h)
 * begins with it, so a zc_req * is also a pointer to its zc_reqctx.
 */
struct zc_reqctx {
	const char *method;
	const char *path;
	const char *route; /* matched pattern, for logs */
	bool probe;        /* User-Agent kube-probe/...: no access line */
	struct zc_trace trace;
	/* tracing (http/tracing.c): the innermost open span, which outbound
	 * calls and events are children of, and the request's own span at
	 * the bottom of that chain; both NULL when not traced */
	struct zc_span *span;
	struct zc_span *server_span;
};

static inline const struct zc_reqctx *
zc__reqctx(const zc_req *req)
{
	return (const struct zc_reqctx *)(const void *)req;
}

/* The request this thread is serving (for log lines), or NULL. */
void zc__set_current(zc_req *req);
zc_req *zc__current(void);

/* ---- logging (log.c) ---- */
void zc__log_init(const char *name);
/* Hold this thread's lines while it serves a request ... */
void zc__log_hold(void);
/* ... and write them with the request's access line (none for probes or
 * a NULL req), in one write, before the response is queued. */
void zc__log_release(const zc_req *req, int status, long long ns);
/* Write what this thread holds now: before it blocks (an outbound call, a
 * retry's sleep). */
void zc__log_flush(void);
/* A request's held lines while its handler waits on its loop: written,
 * and no longer held (returns whether they were) ... */
bool zc__log_detach(void);
/* ... and held again (on) when it resumes. */
void zc__log_attach(bool on);
/* Write every thread's lines held longer than the hold limit (the server's
 * watchdog), or all of them (exit). */
void zc__log_sweep(void);
void zc__log_flush_all(void);

/* ---- JSON (json.c) ---- */
/* The length of the valid UTF-8 sequence at s[0..n): 1 to 4, or 0. */
size_t zc__utf8_seq(const unsigned char *s, size_t n);
/* Compact, Go-compatible encoding (shortest round-trip numbers).  Returns a
 * malloc'd NUL-terminated string and its length, or NULL. */
char *zc__json_dump(const json_t *value, size_t *len);
/* json_pack's format straight to the same text, or NULL when jansson must
 * do it (see json.c); ap is left for the caller's json_vpack_ex. */
char *zc__json_vpackf(const char *fmt, va_list ap, size_t *len);

/* ---- text buffers (metrics.c) ---- */
struct zc_buf {
	char *p; /* NULL once an allocation failed */
	size_t len, cap;
};
void zc__buf_printf(struct zc_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- metrics (metrics.c) ---- */
enum { ZC_ROUTE_ID_NONE = 0, ZC_ROUTE_ID_HEALTH, ZC_ROUTE_ID_METRICS };
/* The route names, in route-id order after the three above. */
void zc__metrics_init(const char *const *route_names, size_t nroutes);
/* The metrics id of the route at index i of the names given to init. */
int zc__metrics_route_id(size_t i);
void zc__metrics_request(int route_id, const char *method, int status,
			 long long ns);
void zc__metrics_shed(void);
/* A label value, escaped as the exposition format wants. */
void zc__metrics_label(struct zc_buf *b, const char *s);
/* A layer above adds its families: render is called on every scrape, from
 * the thread serving it.  Called before the server starts. */
int zc__metrics_provider(void (*render)(struct zc_buf *out, void *arg),
			 void *arg);
void zc__metrics_provider_remove(void (*render)(struct zc_buf *out, void *arg),
				 void *arg);
/* The exposition text (malloc'd, *len set), or NULL when out of memory. */
char *zc__metrics_render(size_t *len);

/* ---- time (clock.c) ---- */
long long zc__now_ns(void);
/* The wall-clock time deadline_ns + extra_ns (monotonic) stands for, for
 * the pthread calls that take one. */
void zc__wall_deadline(long long deadline_ns, long long extra_ns,
		       struct timespec *ts);
/* Initialise cv for timed waits on the monotonic clock. */
void zc__cond_init_monotonic(pthread_cond_t *cv);
/* "YYYY-MM-DDTHH:MM:SS" of t in UTC into out (19 bytes, no NUL); the
 * calendar is worked out once per second per thread. */
void zc__utc_seconds(time_t t, char *out);

#endif /* ZC_CORE_H */
