/*
 * outbound.h - calls from a handler to other functions: where a name
 * leads (discovery, targets), how a call behaves (policy, breaker,
 * bulkhead, retries), the libcurl loader, and fire-and-forget delivery.
 * Above the server side: a call reads its inbound request's deadline and
 * trace context.  The call's layout is private to outbound/ (call.h).
 */
#ifndef ZC_OUTBOUND_H
#define ZC_OUTBOUND_H

#include "../http/http.h"

/* ---- client (call.c, client.c, curl.c) ---- */
/* Load libcurl (once; safe from any thread): 0, or -1 when it cannot be. */
int zc__client_global_init(void);
/* The process-wide call defaults (ZC_CLIENT_*); before threads start. */
void zc__client_set_defaults(long timeout_ms, long connect_ms,
			     size_t max_reply);

/* ---- circuit breaker (breaker.c) ---- */
enum { ZC_BREAKER_CLOSED = 0, ZC_BREAKER_HALF_OPEN, ZC_BREAKER_OPEN };

struct zc_breaker {
	pthread_mutex_t mu;
	int state;
	unsigned generation;
	unsigned requests; /* admitted in this generation */
	unsigned successes, consecutive_failures;
	long long expiry_ns;
	/* settings; failures_to_open 0 disables the breaker */
	unsigned failures_to_open;
	long long open_ns;
	unsigned probes;
};

void zc__breaker_init(struct zc_breaker *b, unsigned failures, long open_ms,
		      unsigned probes);
/* ZC_OK and the generation to report back, or ZC_ERR_BREAKER_OPEN with
 * the milliseconds until a probe may pass. */
zc_err zc__breaker_allow(struct zc_breaker *b, unsigned *generation,
			 long *retry_after_ms);
void zc__breaker_done(struct zc_breaker *b, unsigned generation, bool success);
int zc__breaker_state(struct zc_breaker *b);
const char *zc__breaker_state_name(int state);

/* ---- targets: where and how calls go (discovery.c, target.c) ---- */
#define ZC_OUTCOMES (ZC_ERR_DEADLINE + 1)
/* How a target is reached: an explicit URL, the Dapr sidecar, Knative. */
enum { ZC_MODE_ENV = 0, ZC_MODE_DAPR, ZC_MODE_KNATIVE };
/* service's base URL into buf, and how it is reached into *mode (if not
 * NULL); reads the environment on every call. */
zc_err zc__service_resolve(const char *service, char *buf, size_t size,
			   int *mode);

struct zc_target {
	struct zc_target *next; /* append-only list */
	char name[64];
	int mode;
	zc_policy policy;
	struct zc_breaker breaker;
	atomic_int inflight;                /* bulkhead */
	atomic_ulong outcomes[ZC_OUTCOMES]; /* attempts by zc_err (metrics) */
};
struct zc_target *zc__targets(void); /* the list's head */
const char *zc__outcome_name(int outcome);
/* The target named name, created with its policy and mode on first use
 * (mode: how the caller, having just resolved name, reaches it); NULL
 * only on ENOMEM.  Lock-free after creation. */
struct zc_target *zc__target_use(const char *name, int mode);
/* The same with a policy of the caller's (NULL: the defaults), for the
 * runtime's own targets (the Dapr sidecar's, reached in ZC_MODE_DAPR, so
 * calls carry DAPR_API_TOKEN, but with the global retries: publishing
 * is not service invocation, which the sidecar retries itself). */
struct zc_target *zc__target_with(const char *name, int mode,
				  const zc_policy *policy);
/* The same for a caller that has not resolved name (tests): resolves it
 * if the target is new. */
struct zc_target *zc__target_get(const char *name);
void zc__policy_set_global(const zc_policy *p);
/* The targets' metrics families (calls by outcome, breaker state). */
void zc__targets_metrics(struct zc_buf *out, void *arg);

/* ---- async delivery (async.c, with call internals from call.c) ---- */
void zc__async_configure(size_t queue_size, int workers);
struct zc_async_stats {
	unsigned long depth, rejected, undelivered;
};
void zc__async_stats(struct zc_async_stats *st);
/* The queue's metrics families. */
void zc__async_metrics(struct zc_buf *out, void *arg);
/* Deliver what is queued until deadline; log what is left.  Returns the
 * number of calls logged as undelivered. */
long zc__async_drain(long long deadline_ns, bool reopen);
/* The call now belongs to the queue: its inbound request is gone, and
 * drain_ns (0 until the queue drains) bounds it, even mid-attempt. */
void zc__call_detach(zc_call *call, _Atomic long long *drain_ns);
/* The first error a constructor or setter met (ZC_OK if none). */
zc_err zc__call_setup_err(const zc_call *call);
/* A complete, replayable record of the call, one line of JSON (malloc'd). */
char *zc__call_record(const zc_call *call);
/* For emitters that call URLs, not functions (events/). */
zc_call *zc__call_new_url(zc_req *inbound, const char *target_name,
			  const char *url, const char *method);
void zc__call_set_repeatable(zc_call *call);
/* The span the call's attempts are children of, replacing what it copied
 * from its request (the outbox relay's and event producer spans); its
 * traceparent is what the call carries.  Tracing off: nothing. */
void zc__call_trace(zc_call *call, const struct zc_span_ctx *parent);
zc_err zc__call_body(zc_call *call, const char *content_type, const void *data,
		     size_t len);

/* ---- the outbox relay (relay.c) ---- */
/* Write call into tx's outbox (kind "call" or "event"): ZC_OK, the row
 * is written and the caller frees call; else nothing was written. */
zc_err zc__relay_put(zc_tx *tx, zc_call *call, const char *kind);
/* Start the relay threads (a durable store): ZC_OUTBOX_POLL_MS,
 * ZC_OUTBOX_LEASE_MS, ZC_OUTBOX_RELAYS.  -1 with one line in err for a
 * bad value.  Already running: nothing. */
int zc__relay_start(char *err, size_t errsize);
bool zc__relay_running(void);
/* Deliver what is due until none is or deadline_ns; stop the threads,
 * give back this replica's claims, log how many rows are left (they stay
 * in the store).  Returns that count. */
long zc__relay_drain(long long deadline_ns);
/* One pass as owner: claim up to max due rows for lease_ms and deliver
 * them.  The rows claimed, or -1 when the store failed. */
int zc__relay_pass(const char *owner, int max, long long lease_ms);
/* The outbox's metrics families. */
void zc__relay_metrics(struct zc_buf *out, void *arg);

/* ---- trace export (export.c) ---- */
/*
 * Read the OTEL_* variables (core/otel_env.c) for the function named
 * service and, when they turn tracing on, start recording spans and the
 * exporter thread (zc-otel), register its /metrics families and log one
 * line saying where spans go.  With tracing off: nothing, no thread.
 * Before the server starts.  0, or -1 when the thread cannot start
 * (logged; the function runs untraced).
 */
int zc__tracing_start(const char *service);
/* Whether the exporter runs. */
bool zc__tracing_running(void);
/*
 * Export what is queued until deadline_ns (zc__now_ns clock; an export in
 * progress is cut off there), then stop the thread and recording; spans
 * still queued are counted dropped (reason "shutdown").  After the
 * server drained, so the last requests' spans go too.  No-op when not
 * running.
 */
void zc__tracing_stop(long long deadline_ns);

#endif /* ZC_OUTBOUND_H */
