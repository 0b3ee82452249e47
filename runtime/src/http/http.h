/*
 * http.h - the server side: the app's routes and lifecycle state, requests
 * and responses, routing, dispatch, and the libmicrohttpd server with its
 * acceptor and watchdog.  Only server.c, acceptor.c and request.c talk to
 * libmicrohttpd.
 */
#ifndef ZC_HTTP_H
#define ZC_HTTP_H

#include "../core/core.h"
#include "../store/store.h"

struct MHD_Connection;

#define ZC_MAX_SEGS   32
#define ZC_MAX_PARAMS 8

/* ---- app and routes (router.c) ---- */
struct zc_route {
	char method[16];
	char *pattern;
	int nsegs;
	char *segs[ZC_MAX_SEGS]; /* literal text, or param name if is_param */
	bool is_param[ZC_MAX_SEGS];
	int literals;
	zc_handler handler;
	void *arg;
	bool idempotent;    /* ZC_ROUTE_IDEMPOTENT */
	bool transactional; /* ZC_ROUTE_TRANSACTIONAL */
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
	bool uses_store;      /* a transactional route or a schema: the
				 store is opened (ZC_STORE_URL) */
	void *events;         /* event routes, owned by events/ */
	void *dapr;           /* Dapr subscriptions, owned by events/ */
	atomic_int state;
	atomic_long inflight;
};

/* Add a route with ZC_ROUTE_IDEMPOTENT and ZC_ROUTE_TRANSACTIONAL flags
 * (event options belong to events/). */
zc_err zc__route_add(zc_app *app, const char *method, const char *pattern,
		     zc_handler handler, void *arg, unsigned flags);
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
/* Route names in route order, for the metrics (a borrowed array of
 * app->nroutes patterns, malloc'd; the caller frees the array). */
const char **zc__route_names(const zc_app *app);

/* ---- requests and responses (request.c, response.c) ---- */
struct zc_kv {
	char *name;
	char *value;
};

struct zc_req {
	struct zc_reqctx ctx; /* first: core reads it through a zc_req * */
	zc_app *app;
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
	zc_tx *tx; /* a transactional route's, while its handler runs */
	/* routing */
	char *path_copy;
	const char *param_names[ZC_MAX_PARAMS];
	const char *param_values[ZC_MAX_PARAMS];
	int nparams;
	int route_id;     /* for metrics */
	bool shed;        /* over ZC_MAX_INFLIGHT: answer 503 */
	bool close_after; /* close the connection after the answer */
	bool unqueued;    /* its answer could not be queued: close */
	/* watchdog.c: still receiving its body, and when bytes last came */
	bool receiving;
	_Atomic long long activity_ns;
	int early_status; /* answered before routing (bad framing) */
	const char *early_msg;
	/* time */
	long long start_ns;
	long long deadline_ns;
	int status;          /* final status, for the access log */
	const char *version; /* "HTTP/1.1" (MHD's), NULL for test requests */
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
/* Start or continue the request's trace from its traceparent header. */
void zc__req_trace_begin(zc_req *req);
/* Call fn for each request header (the live connection's, or a test
 * request's), until it returns non-zero; returns that value or 0. */
int zc__req_headers(const zc_req *req,
		    int (*fn)(const char *name, const char *value, void *arg),
		    void *arg);
/* The peer's address and port (a live connection's; false for a test
 * request). */
bool zc__req_peer(const zc_req *req, char *addr, size_t size, int *port);
/* The query string rebuilt from its arguments ("a=1&b=2", values as
 * decoded) into out; false when there is none. */
bool zc__req_query_string(const zc_req *req, char *out, size_t size);
void zc__res_init(zc_res *res);
void zc__res_release(zc_res *res);
void zc__res_reset(zc_res *res);
/* res answers with a stored answer; takes its body. */
void zc__res_from_answer(zc_res *res, struct zc_answer *ans);
/* A view of res as an answer to store (borrows the body). */
struct zc_answer zc__res_answer(const zc_res *res);

/* Route req and run its handler (or answer 404/405/413/...) into res. */
void zc__dispatch(zc_app *app, zc_req *req, zc_res *res);

/* ---- spans of a request (tracing.c) ---- */
/*
 * The request's server span, when tracing is on and the sampler says so:
 * a child of its traceparent (or a root in its new trace) whose span id is
 * the trace's span_id, started at the request's start.  Sets the trace's
 * sampled flag to the decision, so what the request propagates says it.
 * Off: one relaxed load.
 */
void zc__server_span_begin(zc_req *req);
/* End the spans a handler left open above the server span. */
void zc__req_spans_unwind(zc_req *req);
/* End the server span (and anything above it) with the final status: when
 * the response is complete. */
void zc__server_span_end(zc_req *req, int status);
/* A child of the request's current span that becomes current (events'
 * consumer and producer spans); NULL when not traced.  link (NULL: none)
 * is added as a link. */
struct zc_span *zc__req_span_push(zc_req *req, enum zc_span_kind kind,
				  const char *name,
				  const struct zc_span_ctx *link);
/* End s and the spans opened inside it; its parent is current again. */
void zc__req_span_pop(zc_req *req, struct zc_span *s);
/*
 * The context work started by req continues from (outbound calls, events,
 * outbox rows): its current span's, else the trace's own ids with the
 * sampling decision's flags.  Invalid (all zeros) when req is NULL, has
 * no trace or tracing is off.
 */
void zc__req_span_ctx(const zc_req *req, struct zc_span_ctx *out);
/* A method as the conventions name it: itself when known, else NULL
 * (then "_OTHER" and "HTTP"). */
const char *zc__known_method(const char *m);

/* ---- readiness gates (ready.c) ---- */
/*
 * Close the gate name with reason (readiness then answers 503
 * {"status":reason}), or open it (reason NULL).  name and reason are kept,
 * not copied: literals.  0, or -1 when no gate is free (eight in all).
 * Safe from any thread.
 */
int zc__ready_gate(const char *name, const char *reason);
/* The reason of a closed gate, or NULL when every gate is open. */
const char *zc__ready_gate_reason(void);

/* ---- transactions and idempotency (transaction.c) ---- */
/*
 * One run of a handler with what its route asked for: a store
 * transaction (committed when the handler answers 2xx or nothing, rolled
 * back otherwise, re-run after a conflict) and an idempotency key
 * (applied once: the in-process table with memory: or no store, the
 * store's records with SQLite or PostgreSQL).
 */
struct zc_guard {
	/* the key, or key NULL: none; payload is fingerprinted */
	const char *scope, *key;
	const void *payload;
	size_t len;
	bool transactional;
	/* runs the handler into res (req->tx set when transactional) */
	int (*run)(zc_req *req, zc_res *res, void *arg);
	/* what to keep of res as its answer; *hold (NULL or malloc'd) is
	 * freed once kept.  -1: nothing (the key is freed, as on failure) */
	int (*keep)(const zc_res *res, struct zc_answer *ans, char **hold,
		    void *arg);
	void *arg;
	int rc; /* what run returned (ZC_IDEM_PROCEED) */
};
/* ZC_IDEM_PROCEED: the handler ran (g->rc), res holds its answer.
 * ZC_IDEM_REPLAY: res holds the stored answer.  ZC_IDEM_CONFLICT,
 * ZC_IDEM_MISMATCH: nothing ran, res untouched.  ZC_IDEM_UNAVAILABLE: the
 * store failed, res holds a 503. */
int zc__guarded_run(zc_req *req, zc_res *res, struct zc_guard *g);
/* Answer res for a store failure: 503 with Retry-After and why. */
void zc__res_store_error(zc_res *res, zc_err err, bool unknown);

/* ---- server (server.c, acceptor.c, watchdog.c) ---- */
struct zc_server;
struct zc_server *zc__server_start(zc_app *app, char *err, size_t errsize);
/* Stop accepting new connections (close the listener). */
void zc__server_quiesce(struct zc_server *srv);
void zc__server_stop(struct zc_server *srv);
/* The server's metrics families (in-flight requests, open connections). */
void zc__server_metrics(struct zc_buf *out, void *server);
/* libmicrohttpd's percent-decoding, except that a %00 makes the whole
 * string "\x01" (dispatch refuses it): used by the server and tests. */
size_t zc__unescape(void *cls, struct MHD_Connection *conn, char *s);
/* Requests waiting for body bytes that have not come for quiet_ns. */
long zc__server_stalled(long long quiet_ns);

#endif /* ZC_HTTP_H */
