/*
 * outbound.h - calls from a handler to other functions: where a name
 * leads (discovery, targets), how a call behaves (policy, breaker,
 * bulkhead, retries), the libcurl loader, and fire-and-forget delivery.
 * Above the server side: a call reads its inbound request's deadline and
 * trace context.
 */
#ifndef ZC_OUTBOUND_H
#define ZC_OUTBOUND_H

#include "../http/http.h"

/* ---- client (client.c, curl.c) ---- */
int zc__client_global_init(void);
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
enum { ZC_MODE_ENV = 0, ZC_MODE_DAPR, ZC_MODE_KNATIVE };
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
/* The target named name, created with its policy on first use; NULL only
 * on ENOMEM.  Lock-free after creation. */
struct zc_target *zc__target_get(const char *name);
void zc__policy_set_global(const zc_policy *p);
/* The targets' metrics families (calls by outcome, breaker state). */
void zc__targets_metrics(struct zc_buf *out, void *arg);

/* ---- async delivery (async.c, with call internals from client.c) ---- */
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
long long zc__async_deadline_ns(void);
void zc__call_detach(zc_call *call);
zc_err zc__call_setup_err(const zc_call *call);
char *zc__call_record(const zc_call *call);
/* For emitters that call URLs, not functions (events/). */
zc_call *zc__call_new_url(zc_req *inbound, const char *target_name,
			  const char *url, const char *method);
void zc__call_set_repeatable(zc_call *call);
zc_err zc__call_body(zc_call *call, const char *content_type, const void *data,
		     size_t len);

#endif /* ZC_OUTBOUND_H */
