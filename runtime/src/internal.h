/*
 * internal.h - structures and functions shared by the runtime's files and
 * never installed.  Public API lives in zenith.h.
 */
#ifndef ZC_INTERNAL_H
#define ZC_INTERNAL_H

#include "zenith.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

struct MHD_Connection;

#define ZC_MAX_SEGS   32
#define ZC_MAX_PARAMS 8

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
/* CPUs this process may use: cgroup quota first, then affinity. */
int zc__cpu_count(void);
/* Server threads: ZC_THREADS, or the default for a function that does or
 * does not call out. */
int zc__config_threads(const zc_config *cfg, bool calls_out);

/* ---- app and routes (app.c, router.c) ---- */
struct zc_route {
	char method[16];
	char *pattern;
	int nsegs;
	char *segs[ZC_MAX_SEGS]; /* literal text, or param name if is_param */
	bool is_param[ZC_MAX_SEGS];
	int literals;
	zc_handler handler;
	void *arg;
	bool idempotent; /* zc_route_idempotent */
};

enum zc_state { ZC_STARTING = 0, ZC_READY, ZC_DRAINING };

struct zc_app {
	char name[128];
	struct zc_route *routes;
	size_t nroutes, caproutes;
	int (*init)(void *);
	void *init_arg;
	void (*shutdown)(void *);
	void *shutdown_arg;
	bool init_ran;
	zc_config cfg;
	struct zc_idem *idem; /* created with the first idempotent route */
	void *events;         /* event routes, owned by cloudevents.c */
	atomic_int state;
	atomic_long inflight;
};

zc_app *zc__app_new(void);

/* Match path (already split into segs) against the routes.  Returns the best
 * route for method, or NULL.  When no route allows the method but some
 * pattern matches the path, *path_known is set and allow receives the
 * comma-separated methods for an Allow header. */
const struct zc_route *zc__router_match(const zc_app *app, const char *method,
					char **segs, int nsegs,
					bool *path_known, char *allow,
					size_t allowsz);
void zc__router_free(zc_app *app);
/* Split path into segments in place (path is a writable copy without the
 * leading '/').  Returns the count, or -1 when there are too many. */
int zc__split_path(char *path, char **segs);

/* ---- requests and responses (request.c, response.c) ---- */
struct zc_kv {
	char *name;
	char *value;
};

/* W3C trace context of one request (trace.c). */
struct zc_trace {
	char trace_id[33];
	char parent_id[17]; /* the caller's span, "" when we started it */
	char span_id[17];   /* ours */
	char flags[3];
	bool inbound; /* came with a valid traceparent */
};

struct zc_req {
	zc_app *app;
	const char *method;
	const char *path;
	struct MHD_Connection *conn; /* NULL for in-process test requests */
	/* in-process test requests only */
	struct zc_kv *headers;
	size_t nheaders;
	char *query_copy;
	struct zc_kv *query;
	size_t nquery;
	/* body */
	char *body;
	size_t body_len, body_cap;
	bool too_large;
	size_t discarded; /* bytes dropped after too_large */
	json_t *json;
	/* routing */
	char *path_copy;
	const char *param_names[ZC_MAX_PARAMS];
	const char *param_values[ZC_MAX_PARAMS];
	int nparams;
	const char *route; /* matched pattern, for logs */
	int route_id;      /* for metrics */
	bool shed;         /* over ZC_MAX_INFLIGHT: answer 503 */
	bool probe;        /* User-Agent kube-probe/...: no access line */
	bool close_after;  /* close the connection after the answer */
	/* server.c's list of requests still receiving their body */
	bool receiving;
	zc_req *recv_prev, *recv_next;
	_Atomic long long activity_ns;
	int early_status; /* answered before routing (bad framing) */
	const char *early_msg;
	struct zc_trace trace;
	/* time */
	long long start_ns;
	long long deadline_ns;
	int status; /* final status, for the access log */
};

struct zc_res {
	int status;
	char *body;
	size_t len;
	const char *content_type; /* static string */
	struct zc_kv *headers;
	size_t nheaders, capheaders;
};

void zc__req_init(zc_req *req, zc_app *app, const char *method,
		  const char *path);
void zc__req_release(zc_req *req);
/* Append body bytes, honouring the limit; sets too_large past it. */
int zc__req_append_body(zc_req *req, const char *data, size_t len);
void zc__res_init(zc_res *res);
void zc__res_release(zc_res *res);
void zc__res_reset(zc_res *res);

/* Route req and run its handler (or answer 404/405/413/...) into res. */
void zc__dispatch(zc_app *app, zc_req *req, zc_res *res);

/* ---- JSON (json.c) ---- */
/* Compact, Go-compatible encoding (shortest round-trip numbers).  Returns a
 * malloc'd NUL-terminated string and its length, or NULL. */
char *zc__json_dump(const json_t *value, size_t *len);
/* json_pack's format straight to the same text, or NULL when jansson must
 * do it (see json.c); ap is left for the caller's json_vpack_ex. */
char *zc__json_vpackf(const char *fmt, va_list ap, size_t *len);

/* ---- server (server.c) ---- */
struct zc_server;
struct zc_server *zc__server_start(zc_app *app, char *err, size_t errsize);
/* Stop accepting new connections (close the listener). */
void zc__server_quiesce(struct zc_server *srv);
/* open connections per event loop (one when not balanced): loops filled */
int zc__server_connections(int *per_loop, int max);
void zc__server_stop(struct zc_server *srv);
/* libmicrohttpd's percent-decoding, except that a %00 makes the whole
 * string "\x01" (dispatch refuses it): used by the server and tests. */
size_t zc__unescape(void *cls, struct MHD_Connection *conn, char *s);
/* Requests waiting for body bytes that have not come for quiet_ns. */
long zc__server_stalled(long long quiet_ns);

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
/* Write every thread's lines held longer than the hold limit (the server's
 * watchdog), or all of them (exit). */
void zc__log_sweep(void);
void zc__log_flush_all(void);

/* ---- client (client.c) ---- */
int zc__client_global_init(void);
void zc__client_set_defaults(long timeout_ms, long connect_ms,
			     size_t max_reply);

/* ---- trace context and randomness (trace.c) ---- */
uint64_t zc__rand64(void);
bool zc__trace_parse(const char *traceparent, struct zc_trace *t);
void zc__trace_begin(zc_req *req);
/* A traceparent for an outbound call: same trace, new parent-id. */
void zc__trace_child(const zc_req *req, char *out, size_t size);
/* The request this thread is serving (for log lines), or NULL. */
void zc__set_current(zc_req *req);
zc_req *zc__current(void);

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

/* ---- idempotency keys (idempotency.c) ---- */
enum {
	ZC_IDEM_PROCEED = 0,       /* first time: run, then finish */
	ZC_IDEM_PROCEED_UNTRACKED, /* out of memory: run untracked */
	ZC_IDEM_REPLAY,            /* res holds the stored answer */
	ZC_IDEM_CONFLICT,          /* same key still running: 409 */
	ZC_IDEM_MISMATCH           /* same key, other payload: 422 */
};
struct zc_idem;
struct zc_idem_ticket {
	uint64_t hash, id;
};
struct zc_idem *zc__idem_new(size_t max_keys, long ttl_s);
void zc__idem_free(struct zc_idem *t);
int zc__idem_begin(struct zc_idem *t, const char *scope, const char *key,
		   const char *body, size_t len, zc_res *res,
		   struct zc_idem_ticket *ticket);
void zc__idem_finish(struct zc_idem *t, const struct zc_idem_ticket *ticket,
		     const zc_res *res);
void zc__idem_finish_failed(struct zc_idem *t,
			    const struct zc_idem_ticket *ticket);

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

/* ---- async delivery (async.c, with call internals from client.c) ---- */
void zc__async_configure(size_t queue_size, int workers);
struct zc_async_stats {
	unsigned long depth, rejected, undelivered;
};
void zc__async_stats(struct zc_async_stats *st);
/* Deliver what is queued until deadline; log what is left.  Returns the
 * number of calls logged as undelivered. */
long zc__async_drain(long long deadline_ns, bool reopen);
long long zc__async_deadline_ns(void);
void zc__call_detach(zc_call *call);
zc_err zc__call_setup_err(const zc_call *call);
char *zc__call_record(const zc_call *call);
/* For emitters that call URLs, not functions (cloudevents.c). */
zc_call *zc__call_new_url(zc_req *inbound, const char *target_name,
			  const char *url, const char *method);
void zc__call_set_repeatable(zc_call *call);
zc_err zc__call_body(zc_call *call, const char *content_type, const void *data,
		     size_t len);

/* ---- metrics (metrics.c) ---- */
void zc__metrics_init(const zc_app *app);
int zc__metrics_route_id(const zc_app *app, const struct zc_route *r);
void zc__metrics_request(int route_id, const char *method, int status,
			 long long ns);
void zc__metrics_shed(void);
void zc__metrics_render(zc_app *app, zc_res *res);
enum { ZC_ROUTE_ID_NONE = 0, ZC_ROUTE_ID_HEALTH, ZC_ROUTE_ID_METRICS };

/* ---- CloudEvents (cloudevents.c) ---- */
void zc__events_free(zc_app *app);

/* ---- time (clock.c) ---- */
long long zc__now_ns(void);
/* "YYYY-MM-DDTHH:MM:SS" of t in UTC into out (19 bytes, no NUL); the
 * calendar is worked out once per second per thread. */
void zc__utc_seconds(time_t t, char *out);

#endif /* ZC_INTERNAL_H */
