/*
 * zenith.h - the whole public API of Zenith C, the C function runtime for
 * Zenith and Knative functions.  Read docs/api.md for the execution model.
 *
 * Prefix: every public symbol starts with zc_ (ZC_ for macros).
 *
 * Ownership, stated once:
 *   - zc_app, zc_req, zc_res, zc_call and zc_event are opaque handles.
 *   - Borrowed: the zc_req, zc_res and zc_event a handler is given, every
 *     string and json_t * the API returns (valid until the handler returns,
 *     or as long as the object that returned it), and every argument you
 *     pass (copied when kept), except:
 *   - Stolen (the API takes your reference): the json_t * given to
 *     zc_res_json and zc_event_set_json, and "o" arguments of the
 *     json_pack-style formats (zc_res_jsonf, zc_call_jsonf), as json_pack
 *     steals them.
 *   - Yours to free: a zc_call from zc_call_new (zc_call_free; after a
 *     successful zc_call_send_async the runtime owns it), a zc_event from
 *     zc_event_new (zc_event_free), a zc_res from zc_test_request
 *     (zc_res_free), a zc_app from zc_test_app (zc_app_free), the strings
 *     from zc_json_dumps (free), the json_t * from zc_money_json_new
 *     (json_decref).
 *
 * Errors: every fallible call returns a zc_err (ZC_OK is 0), except the
 * constructors, which return NULL only when out of memory.
 *
 * Thread safety: handlers run concurrently on several threads, and
 * interleave on each thread while they wait on an outbound call (docs/api.md
 * section 1).  zc_req, zc_res, zc_call and zc_span are used by one handler
 * at a time.  zc_log*,
 * zc_service_url, zc_strerror, zc_err_http_status, zc_json_dumps,
 * zc_timestamp, zc_money_*, zc_call_send_async, zc_req_trace_id, zc_env_*,
 * zc_random_id, zc_stable_id and zc_hash64 are safe from any thread.
 * zc_route*, zc_event_route, zc_on_* and zc_service are called only from
 * zc_function_setup(), before the server starts.
 */
#ifndef ZENITH_H
#define ZENITH_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The API version: compare ZC_VERSION_NUM in #if, e.g.
 * #if ZC_VERSION_NUM >= ZC_VERSION_AT(0, 2, 0). */
#define ZC_VERSION_MAJOR 0
#define ZC_VERSION_MINOR 2
#define ZC_VERSION_PATCH 0
#define ZC_VERSION       "0.2.0"
#define ZC_VERSION_AT(major, minor, patch)                                     \
	(((major) << 16) | ((minor) << 8) | (patch))
#define ZC_VERSION_NUM                                                         \
	ZC_VERSION_AT(ZC_VERSION_MAJOR, ZC_VERSION_MINOR, ZC_VERSION_PATCH)

#if defined(__GNUC__) || defined(__clang__)
#define ZC_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define ZC_DEPRECATED(msg)
#endif

/* ---------------------------------------------------------------------
 * Errors: every failure is one of these values; nothing aborts.
 * ------------------------------------------------------------------- */
typedef enum zc_err {
	ZC_OK = 0,
	ZC_ERR_NOMEM,         /* out of memory */
	ZC_ERR_INVALID,       /* bad argument, bad configuration */
	ZC_ERR_DNS,           /* outbound: target name did not resolve */
	ZC_ERR_REFUSED,       /* outbound: connection refused / unreachable */
	ZC_ERR_TIMEOUT,       /* outbound: connect or total deadline passed */
	ZC_ERR_TRANSPORT,     /* outbound: connection reset, truncated reply */
	ZC_ERR_HTTP,          /* outbound: a reply with status >= 400 */
	ZC_ERR_BAD_REPLY,     /* outbound: reply is not the JSON we asked for */
	ZC_ERR_TOO_LARGE,     /* a body over its limit */
	ZC_ERR_BREAKER_OPEN,  /* outbound: circuit breaker is open (issue 3) */
	ZC_ERR_BULKHEAD_FULL, /* outbound: too many concurrent calls (issue 3) */
	ZC_ERR_QUEUE_FULL,    /* outbound async queue full (issue 3) */
	ZC_ERR_DEADLINE,      /* the inbound request's deadline has passed */
	ZC_ERR_STORE,         /* the store is unreachable or a statement
				 failed (ZC_STORE_URL) */
	ZC_ERR_CONFLICT       /* the store transaction lost to a concurrent
				 one (serialization failure, deadlock); the
				 runtime re-runs a transactional handler */
} zc_err;

/* A static, human-readable description of err.  Never NULL. */
const char *zc_strerror(zc_err err);

/* ---------------------------------------------------------------------
 * Application and routing
 * ------------------------------------------------------------------- */
typedef struct zc_app zc_app;
typedef struct zc_req zc_req;
typedef struct zc_res zc_res;

/*
 * A handler fills in res.  Return 0 when res holds the answer (any status,
 * including errors you chose).  Return non-zero when the handler itself
 * failed: the client gets a generic 500 JSON body and the detail you logged
 * stays in the log.  A handler that sets nothing answers 204.
 */
typedef int (*zc_handler)(zc_req *req, zc_res *res, void *arg);

/*
 * The function's entry point, written by the function author.  It registers
 * routes and hooks; it runs once, before the port opens.  Return 0, or
 * non-zero to stop start-up (the runtime exits 1).
 * The library supplies main() (calling zc_main) unless you write your own.
 */
int zc_function_setup(zc_app *app);

/* Run a function: read the environment, call setup, serve until SIGTERM or
 * SIGINT, drain, run the shutdown hook.  Returns the process exit code. */
int zc_main(int argc, char **argv, int (*setup)(zc_app *app));

/*
 * Register handler for method + pattern.  method is an upper-case HTTP
 * method ("GET", "POST", ...).  pattern is an exact path ("/log") or has
 * parameters in braces ("/accounts/{id}"); a literal segment beats a
 * parameter.  GET routes also answer HEAD.  Returns ZC_ERR_INVALID for a
 * malformed pattern or a duplicate method + pattern.
 */
zc_err zc_route(zc_app *app, const char *method, const char *pattern,
		zc_handler handler, void *arg);

/*
 * Route options, shared by zc_route_with and zc_event_route; they combine.
 * Zero-initialise and set what you need:
 *   &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}
 */
enum {
	/*
	 * Run at most once per request even when callers retry.  HTTP
	 * routes: a request with an Idempotency-Key header runs once; a
	 * repeat with the same key and body gets the stored answer (with
	 * header Idempotent-Replayed: true); the same key with another body
	 * is a 422; a repeat while the first still runs is a 409 with
	 * Retry-After.  A key is scoped to method + path.  Requests without
	 * the header run normally.  Event routes: an event whose source + id
	 * the route has handled gets the stored answer (a stored reply event
	 * is sent again only when a reply is asked for, else 202); still
	 * being handled: 409; same source + id with another type or data:
	 * 422.  Both: answers of 5xx and failed handlers are not stored; an
	 * answer that overran its deadline is stored (the work was done)
	 * though the client got a 504.  The app keeps at most
	 * ZC_IDEMPOTENCY_MAX_KEYS (10000) keys over all its idempotent
	 * routes, each for at most ZC_IDEMPOTENCY_TTL_S (3600) seconds.  With a
	 * SQLite or PostgreSQL store (a function that keeps state) the
	 * records live in the store: across restarts and replicas, bounded by
	 * the TTL only.
	 */
	ZC_ROUTE_IDEMPOTENT = 1u << 0,
	/* Event routes: answer with the reply event even when the sender
	 * did not send "Prefer: reply". */
	ZC_ROUTE_REPLYING = 1u << 1,
	/*
	 * Run the handler inside one store transaction (ZC_STORE_URL): the
	 * runtime begins it, the handler reads and writes through
	 * zc_req_tx(req), and the runtime commits when the handler answers
	 * 2xx and rolls back otherwise.  With ZC_ROUTE_IDEMPOTENT the
	 * idempotency record is written in the same transaction, and
	 * fire-and-forget calls and events the handler makes go to the
	 * store's outbox, delivered after the commit.  A serialization
	 * failure or deadlock re-runs the handler (ZC_STORE_RETRIES, 3).
	 * The store unreachable: 503 with Retry-After, nothing applied.
	 */
	ZC_ROUTE_TRANSACTIONAL = 1u << 2
};

typedef struct zc_route_opts {
	unsigned flags;         /* ZC_ROUTE_* */
	const char *event_type; /* event routes: only events of this type
				   reach the handler (NULL: every type) */
} zc_route_opts;

/* zc_route with options (opts NULL: none).  ZC_ERR_INVALID for an option
 * that does not apply to an HTTP route (ZC_ROUTE_REPLYING, event_type). */
zc_err zc_route_with(zc_app *app, const char *method, const char *pattern,
		     zc_handler handler, void *arg, const zc_route_opts *opts);

/* Deprecated: zc_route_with(..., &(zc_route_opts){ZC_ROUTE_IDEMPOTENT}). */
ZC_DEPRECATED("use zc_route_with and ZC_ROUTE_IDEMPOTENT")
static inline zc_err
zc_route_idempotent(zc_app *app, const char *method, const char *pattern,
		    zc_handler handler, void *arg)
{
	zc_route_opts o = {ZC_ROUTE_IDEMPOTENT, NULL};

	return zc_route_with(app, method, pattern, handler, arg, &o);
}

/* Hooks.  init runs after setup, before the port opens (non-zero: the
 * process logs it and exits 1).  shutdown runs once after draining. */
void zc_on_init(zc_app *app, int (*init)(void *arg), void *arg);
void zc_on_shutdown(zc_app *app, void (*shutdown)(void *arg), void *arg);

/* The function's name: K_SERVICE, else the executable's base name. */
const char *zc_app_name(const zc_app *app);

/* ---------------------------------------------------------------------
 * Requests (borrowed, valid until the handler returns)
 * ------------------------------------------------------------------- */
const char *zc_req_method(const zc_req *req);
const char *zc_req_path(const zc_req *req);
/* Path parameter by name ("id" for "/accounts/{id}"), or NULL. */
const char *zc_req_param(const zc_req *req, const char *name);
/* First query-string value for key, or NULL. */
const char *zc_req_query(const zc_req *req, const char *key);
/* Request header, name compared case-insensitively, or NULL. */
const char *zc_req_header(const zc_req *req, const char *name);
/* Raw body (not NUL-terminated in general; len may be 0). */
const char *zc_req_body(const zc_req *req, size_t *len);
/*
 * The body parsed as JSON (borrowed; parsed once, cached).  When the body is
 * not JSON, sets a 400 with a JSON error on res and returns NULL: the
 * handler then just returns 0.
 */
json_t *zc_req_json(zc_req *req, zc_res *res);
/* The W3C trace id (32 hex) of this request: from its traceparent, or
 * new when it had none.  Outbound calls carry it on. */
const char *zc_req_trace_id(const zc_req *req);
/* Milliseconds left before this request's handler deadline (>= 0). */
long zc_req_remaining_ms(const zc_req *req);

/* ---------------------------------------------------------------------
 * JSON field helpers: on a missing or ill-typed field they set a 400 with
 * a JSON error naming the field on res and return ZC_ERR_INVALID; ZC_OK on
 * success (out borrowed from obj).
 * ------------------------------------------------------------------- */
zc_err zc_json_string(const json_t *obj, const char *field, const char **out,
		      zc_res *res);
/* Any JSON value (not absent). */
zc_err zc_json_value(const json_t *obj, const char *field, json_t **out,
		     zc_res *res);
/* A money amount: a JSON number with at most two decimals, |x| within
 * ZC_MONEY_MAX minor units, converted exactly to minor units (cents). */
zc_err zc_json_money(const json_t *obj, const char *field, int64_t *cents,
		     zc_res *res);

/* Compact JSON text of value, as the runtime writes it on the wire (Go's
 * encoding/json form: 0.3 stays 0.3).  NEW string: free() it.  NULL on
 * ENOMEM. */
char *zc_json_dumps(const json_t *value);

/* Now as RFC 3339 in UTC with nanoseconds, Go's time.Time JSON form
 * ("2026-11-27T20:22:43.123456789Z").  buf needs 40 bytes; returns buf. */
char *zc_timestamp(char *buf, size_t size);

/* ---------------------------------------------------------------------
 * Money: exact integer minor units (cents).
 * ------------------------------------------------------------------- */
#define ZC_MONEY_MAX INT64_C(999999999999999) /* 9,999,999,999,999.99 */

/* JSON number -> cents.  ZC_ERR_INVALID: not a number, more than two
 * decimals, or beyond ZC_MONEY_MAX. */
zc_err zc_money_from_json(const json_t *value, int64_t *cents);
/* cents -> a NEW JSON number that prints the way a person writes it
 * (30 -> 0.3, 10050 -> 100.5, 10000 -> 100).  NULL on ENOMEM/range. */
json_t *zc_money_json_new(int64_t cents);
/* cents -> "100.5" into buf (needs 24 bytes).  Returns buf. */
char *zc_money_format(int64_t cents, char *buf, size_t size);

/* ---------------------------------------------------------------------
 * Responses (the runtime owns res)
 * ------------------------------------------------------------------- */
void zc_res_status(zc_res *res, int status);
/* Add a header; copies name and value.  ZC_ERR_INVALID for CR/LF. */
zc_err zc_res_header(zc_res *res, const char *name, const char *value);
/* Compact JSON body, Content-Type application/json.  STEALS body. */
zc_err zc_res_json(zc_res *res, int status, json_t *body);
/* json_pack-style: zc_res_jsonf(res, 200, "{s:s}", "status", "ok"). */
zc_err zc_res_jsonf(zc_res *res, int status, const char *fmt, ...);
/* Plain text body, Content-Type text/plain; charset=utf-8.  Copies. */
zc_err zc_res_text(zc_res *res, int status, const char *text);
/* {"error":"<printf message>"} with status. */
zc_err zc_res_error(zc_res *res, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Reading a response back (tests and middleware). */
int zc_res_get_status(const zc_res *res);
const char *zc_res_get_body(const zc_res *res, size_t *len);
const char *zc_res_get_header(const zc_res *res, const char *name);
void zc_res_free(zc_res *res); /* only for responses you own */

/* ---------------------------------------------------------------------
 * Outbound calls to other functions
 * ------------------------------------------------------------------- */
typedef struct zc_call zc_call;

/*
 * Resolve a function name to its base URL (no trailing slash) into buf:
 *   1. env <NAME>_URL (name upper-cased, '-' -> '_'), e.g. BALANCE_MANAGER_URL
 *   2. with DAPR_HTTP_PORT set, the Dapr sidecar:
 *      http://127.0.0.1:<DAPR_HTTP_PORT>/v1.0/invoke/<name>/method
 *      (calls then carry dapr-api-token when DAPR_API_TOKEN is set)
 *   3. http://<name>.<POD_NAMESPACE or "default">.svc.cluster.local
 * ZC_ERR_INVALID for an empty or malformed name, ZC_ERR_TOO_LARGE if buf is
 * too small.
 */
zc_err zc_service_url(const char *service, char *buf, size_t size);

/*
 * How calls to one target behave.  Every call to a target shares its
 * circuit breaker and bulkhead.  Precedence, highest first: per-call
 * setters, per-target env (<NAME>_TIMEOUT_MS, <NAME>_CONNECT_TIMEOUT_MS,
 * <NAME>_RETRIES, <NAME>_BREAKER_FAILURES, <NAME>_BREAKER_OPEN_MS,
 * <NAME>_MAX_CONCURRENT), zc_service() in code, global env (ZC_CLIENT_*,
 * ZC_BREAKER_*), built-in defaults (in parentheses).
 */
typedef struct zc_policy {
	long timeout_ms;         /* whole call, retries included (5000) */
	long connect_timeout_ms; /* each connection attempt (2000) */
	int retries;             /* extra attempts when safe (2); a Dapr
				    target declared without a policy gets 0
				    (the sidecar retries itself) unless
				    <NAME>_RETRIES says otherwise */
	long backoff_ms;         /* first backoff, doubled each time (50) */
	long backoff_max_ms;     /* backoff cap (1000); jitter: 50-100% */
	int breaker_failures;    /* consecutive failed attempts that open
				    (5); 0 turns the breaker off */
	long breaker_open_ms;    /* open before half-open (10000) */
	int breaker_probes;      /* half-open probes; as many successes
				    close it (3) */
	int max_concurrent;      /* bulkhead: attempts in flight (0 = no
				    bound) */
} zc_policy;

/* The defaults in force (built-in, then global env) into p. */
void zc_policy_default(zc_policy *p);
/* Declare a target in zc_function_setup: its policy (NULL: defaults) and a
 * start-up log line saying how it is reached (env URL, Dapr, Knative). */
zc_err zc_service(zc_app *app, const char *name, const zc_policy *policy);

/*
 * A call to service's path.  inbound is the request being served (or NULL):
 * the call's deadline is the smaller of its own timeout and what is left of
 * inbound's.  method is "GET", "POST", ...; path starts with '/'.
 * NULL only when out of memory.
 */
zc_call *zc_call_new(zc_req *inbound, const char *service, const char *method,
		     const char *path);
/* Body to send as application/json; borrowed (serialised at once). */
zc_err zc_call_json(zc_call *call, const json_t *body);
/* Body built json_pack-style: zc_call_jsonf(c, "{s:s}", "k", "v").
 * As with json_pack, "o" arguments are stolen. */
zc_err zc_call_jsonf(zc_call *call, const char *fmt, ...);
zc_err zc_call_header(zc_call *call, const char *name, const char *value);
void zc_call_timeout_ms(zc_call *call, long total_ms);
void zc_call_connect_timeout_ms(zc_call *call, long connect_ms);
/*
 * Perform the call (blocking, on the calling thread; connections are reused
 * per thread), with the target's policy:
 *  - retries with exponential backoff and jitter, within the call's time
 *    budget, honouring Retry-After; only when a repeat cannot apply twice:
 *    GET, HEAD, PUT, DELETE, OPTIONS, or any method carrying an
 *    Idempotency-Key header (sent unchanged on every attempt); on refused,
 *    reset, DNS or timed-out connections and on 429, 502, 503, 504 (and 409
 *    "still in flight" for keyed calls);
 *  - the circuit breaker (transport errors and 5xx count as failures; an
 *    open breaker fails at once with ZC_ERR_BREAKER_OPEN);
 *  - the bulkhead (ZC_ERR_BULKHEAD_FULL at once when full);
 *  - trace context from the inbound request: traceparent (same trace, a
 *    new parent-id per call; started when the request had none),
 *    tracestate, b3 / x-b3-* and x-request-id, with no handler code.  ZC_OK for a 1xx-3xx reply; ZC_ERR_HTTP for >= 400 (status
 * and body are still available); otherwise a transport error, and status 0
 * with no reply.  Bad arguments given to zc_call_new or a failed setter
 * (zc_call_json, zc_call_jsonf, zc_call_header) make perform return that
 * error without sending anything: a half-built request never leaves.
 * A reply that is not JSON is not an error here: zc_call_reply_json()
 * returns NULL, which a handler treats as ZC_ERR_BAD_REPLY.
 */
zc_err zc_call_perform(zc_call *call);
int zc_call_status(const zc_call *call);   /* 0 if no reply */
int zc_call_attempts(const zc_call *call); /* attempts made */
/* Milliseconds to wait before trying again, when known: the breaker's
 * remaining open time, or the last reply's Retry-After (delta-seconds
 * form); else 0. */
long zc_call_retry_after_ms(const zc_call *call);
const char *zc_call_reply(const zc_call *call, size_t *len);
/* Reply parsed as JSON (borrowed, owned by call), or NULL. */
json_t *zc_call_reply_json(zc_call *call);
/* The URL actually called (for logs). */
const char *zc_call_url(const zc_call *call);
void zc_call_free(zc_call *call);

/* The status a handler should answer when a downstream call failed with
 * err: 504 for timeouts, 503 for breaker, bulkhead or a full queue, 502
 * otherwise. */
int zc_err_http_status(zc_err err);

/* Answer res for a failed call: zc_err_http_status(err), a JSON error
 * naming the target, and Retry-After when the call knows one (1 s for a
 * full bulkhead). */
zc_err zc_res_call_error(zc_res *res, const zc_call *call, zc_err err);

/*
 * Fire-and-forget: hand the call to the runtime's delivery queue and
 * return at once.  ZC_OK: the runtime owns call now (it performs it on
 * its own worker thread, with the target's retries when the call is
 * repeatable, and frees it); anything it finally cannot deliver is logged
 * as a complete [UNDELIVERED] record.
 * ZC_ERR_QUEUE_FULL (ZC_ASYNC_QUEUE_SIZE, 1024) or a setup error: nothing
 * was queued and the caller still owns call.  On SIGTERM the queue is
 * drained within ZC_DRAIN_TIMEOUT_MS; what is left is logged, not lost.
 * In a ZC_ROUTE_TRANSACTIONAL handler the call goes out only if the
 * transaction commits: with a SQLite or PostgreSQL store as an outbox row
 * (delivered by the relay, surviving kill -9; ZC_ERR_STORE or
 * ZC_ERR_CONFLICT when the row could not be written), with memory: on
 * this queue after the commit.
 */
zc_err zc_call_send_async(zc_call *call);

/* ---------------------------------------------------------------------
 * CloudEvents 1.0 over HTTP (binary, structured and batch modes), for
 * Knative Eventing: Triggers deliver to "/" by default.
 * ------------------------------------------------------------------- */
typedef struct zc_event zc_event;

/*
 * An event handler.  ev is borrowed (valid until the handler returns).
 * Answer through res: nothing set -> 202 Accepted (empty); a reply event
 * with zc_res_event (200, binary mode); or an error status, which a broker
 * retries or not by Knative's table (5xx, 404, 408, 409, 429: retried;
 * other 4xx: not).  Non-zero return: 500 (retried).
 */
typedef int (*zc_event_handler)(zc_req *req, const zc_event *ev, zc_res *res,
				void *arg);

/*
 * Receive events on POST path.  opts (NULL: none): event_type, only
 * events of this type reach the handler (NULL: every type; several routes
 * may share a path with different types; an event no route takes is
 * answered 202 and logged); ZC_ROUTE_IDEMPOTENT, each event (source + id)
 * applied once; ZC_ROUTE_REPLYING, answer with the reply event even
 * without "Prefer: reply".  Malformed events -> 400 naming the attribute;
 * wrong content type for the mode -> 415; batch mode calls the handler
 * once per event.
 */
zc_err zc_event_route(zc_app *app, const char *path, zc_event_handler handler,
		      void *arg, const zc_route_opts *opts);

/* The event sink a function sends to: K_SINK, or NULL when unset or
 * empty (Knative sets it from a SinkBinding or the Function's sink). */
const char *zc_event_sink(void);

/* Attributes (borrowed; NULL when absent).  zc_event_attr reads any
 * attribute, extensions included ("traceparent", "knativeerrorcode"). */
const char *zc_event_id(const zc_event *ev);
const char *zc_event_source(const zc_event *ev);
const char *zc_event_type(const zc_event *ev);
const char *zc_event_subject(const zc_event *ev);
const char *zc_event_time(const zc_event *ev);
const char *zc_event_datacontenttype(const zc_event *ev);
const char *zc_event_attr(const zc_event *ev, const char *name);
/* Iterate all attributes: 0 .. zc_event_attr_count()-1. */
size_t zc_event_attr_count(const zc_event *ev);
const char *zc_event_attr_at(const zc_event *ev, size_t i, const char **value);
/* The data as bytes ("" and len 0 when none), and parsed when it is JSON
 * (borrowed, NULL otherwise).  docs/events.md has the details. */
const char *zc_event_data(const zc_event *ev, size_t *len);
json_t *zc_event_json(const zc_event *ev);

/* Building an event: the caller owns it and frees it with zc_event_free.
 * id, time and source are filled when sent if left empty. */
zc_event *zc_event_new(const char *type);
/* Any attribute (names a-z0-9; values UTF-8 without control characters);
 * value NULL or "" removes it.  ZC_ERR_INVALID for a bad name or value. */
zc_err zc_event_set(zc_event *ev, const char *attr, const char *value);
/* JSON data (STEALS data); datacontenttype application/json. */
zc_err zc_event_set_json(zc_event *ev, json_t *data);
zc_err zc_event_set_data(zc_event *ev, const char *content_type,
			 const void *data, size_t len);
void zc_event_free(zc_event *ev);

/* Answer an event request with a reply event (copied; ev stays yours;
 * replaces what res held; id, source and time filled when unset).
 * ZC_ERR_INVALID when ev has no type. */
zc_err zc_res_event(zc_res *res, const zc_event *ev);

/*
 * Send ev in binary mode (copied; ev stays yours) to: NULL -> K_SINK; an
 * http(s) URL; or a broker name -> http://broker-ingress.knative-eventing
 * .svc.cluster.local/<POD_NAMESPACE>/<name>.  K_CE_OVERRIDES extensions
 * are applied; source defaults to the function's name; the traceparent
 * extension and header carry the inbound trace.  Retried like an
 * idempotent call (receivers dedupe on source + id).  ZC_OK only for a
 * 2xx; ZC_ERR_HTTP for any other status; ZC_ERR_INVALID when the target
 * is NULL and K_SINK unset, or not a URL or broker name.  In a
 * ZC_ROUTE_TRANSACTIONAL handler with a SQLite or PostgreSQL store the
 * event is written to the outbox instead and sent after the commit: ZC_OK
 * means queued.
 */
zc_err zc_event_send(zc_req *inbound, const char *target, const zc_event *ev);

/* ---------------------------------------------------------------------
 * Dapr: pub/sub through the sidecar at DAPR_HTTP_PORT.  With it set, the
 * runtime also holds readiness at 503 until the sidecar answers
 * (DAPR_HEALTH_TIMEOUT, ZC_DAPR_WAIT: docs/operations.md#dapr).
 * ------------------------------------------------------------------- */
/*
 * Subscribe path (POST; "/...", no parameters) to topic of the pub/sub
 * component pubsub: the runtime answers the sidecar's GET /dapr/subscribe
 * with every subscription, and each delivered CloudEvent reaches handler
 * as on an event route (zc_event_route: its data, attributes and Dapr's
 * extensions topic, pubsubname, traceid, traceparent, tracestate; opts
 * as there: event_type, ZC_ROUTE_IDEMPOTENT for source + id dedup,
 * ZC_ROUTE_TRANSACTIONAL; not ZC_ROUTE_REPLYING).  The answer goes to
 * the sidecar as 200 {"status":...}: SUCCESS for a 2xx (or nothing
 * set); RETRY (redelivered) for 5xx, 408, 409, 429 or a non-zero return;
 * DROP, with a warning logged, for any other status and for a malformed
 * event.  With APP_API_TOKEN set, GET /dapr/subscribe and these routes
 * need header dapr-api-token equal to it (else 401).  Several topics may
 * share a path and handler.  ZC_ERR_INVALID for bad arguments, a topic
 * subscribed twice, or a path already an ordinary event route.
 */
zc_err zc_dapr_subscribe(zc_app *app, const char *pubsub, const char *topic,
			 const char *path, zc_event_handler handler, void *arg,
			 const zc_route_opts *opts);
/*
 * Publish ev (copied; filled in as zc_event_send does: id, source, time,
 * traceparent) to topic of pubsub: POST
 * http://127.0.0.1:<DAPR_HTTP_PORT>/v1.0/publish/<pubsub>/<topic>, the
 * event in structured mode (application/cloudevents+json, so Dapr keeps
 * its id and trace), with dapr-api-token when DAPR_API_TOKEN is set.
 * The same as zc_event_send(inbound, "dapr:<pubsub>/<topic>", ev),
 * which a K_SINK of that form selects too.  ZC_OK for the sidecar's 204;
 * ZC_ERR_HTTP for 403 (not allowed), 404 (no such pub/sub) or 500, none
 * retried; 503 and transport errors are retried by the client's policy
 * (target dapr_publish: DAPR_PUBLISH_RETRIES, ...).  ZC_ERR_INVALID
 * without DAPR_HTTP_PORT or for a bad name.  In a ZC_ROUTE_TRANSACTIONAL
 * handler with a SQLite or PostgreSQL store: written to the outbox and
 * published after the commit (ZC_OK means queued).  Safe from any thread.
 */
zc_err zc_dapr_publish(zc_req *inbound, const char *pubsub, const char *topic,
		       const zc_event *ev);

/* ---------------------------------------------------------------------
 * Durable state: one store per function, chosen by ZC_STORE_URL
 * (sqlite:PATH, the default, a file under $TMPDIR; postgres://... for many
 * replicas; memory: for tests).  SQL with $1..$n placeholders on both
 * backends; docs/api.md lists the subset both accept.
 * ------------------------------------------------------------------- */
typedef struct zc_tx zc_tx;
typedef struct zc_rows zc_rows;

/* The transaction of a ZC_ROUTE_TRANSACTIONAL route's handler (borrowed,
 * until the handler returns); NULL on any other route. */
zc_tx *zc_req_tx(zc_req *req);

/*
 * Run one SQL statement with bound parameters.  types has one letter per
 * parameter, in order, for $1, $2, ...: 's' const char * (NULL: SQL NULL),
 * 'i' int, 'I' int64_t.  Values are bound, never spliced into the text.
 * ZC_ERR_STORE for a failed statement (the transaction is then aborted:
 * the handler should answer an error), ZC_ERR_CONFLICT for a lost race
 * (return at once: the runtime re-runs the handler), ZC_ERR_INVALID for a
 * bad types string.
 */
zc_err zc_tx_exec(zc_tx *tx, const char *sql, const char *types, ...);
/* Rows changed by the last zc_tx_exec (INSERT, UPDATE, DELETE). */
long long zc_tx_changes(const zc_tx *tx);
/* As zc_tx_exec, for a statement that returns rows (SELECT, ...
 * RETURNING): *rows receives them, the caller frees with zc_rows_free. */
zc_err zc_tx_query(zc_tx *tx, zc_rows **rows, const char *sql,
		   const char *types, ...);
size_t zc_rows_count(const zc_rows *rows);
/* Column col (from 0) of row as text; NULL for SQL NULL or out of
 * range.  Borrowed from rows. */
const char *zc_rows_text(const zc_rows *rows, size_t row, int col);
/* Column col of row as an integer; ZC_ERR_INVALID for NULL, out of range
 * or not an integer. */
zc_err zc_rows_int64(const zc_rows *rows, size_t row, int col, int64_t *out);
void zc_rows_free(zc_rows *rows);

/*
 * Declare the function's own tables, in zc_function_setup: ddl (one or
 * more statements, no parameters) runs once per store in one transaction
 * when the store is first reached, recorded as name + version in the
 * runtime's schema table; a later version runs its ddl once more (write
 * it to migrate from the previous one).  Several schemas may be declared.
 */
zc_err zc_store_schema(zc_app *app, const char *name, int version,
		       const char *ddl);

/* Run fn in one store transaction outside a route (a background task):
 * committed when fn returns 0, rolled back otherwise, re-run on
 * ZC_ERR_CONFLICT.  Returns fn's failure as ZC_ERR_STORE. */
zc_err zc_store_run(zc_app *app, int (*fn)(zc_tx *tx, void *arg), void *arg);

/* ---------------------------------------------------------------------
 * Tracing: OpenTelemetry spans, exported when the OTEL_* variables ask
 * (docs/operations.md, "Tracing").  The runtime makes the server span of
 * each request, a client span per outbound attempt and the event spans;
 * a handler adds detail with these calls.  Every call accepts NULL and
 * then does nothing, so handler code needs no checks: a request that is
 * not traced (tracing off, or not sampled) has no span.
 * ------------------------------------------------------------------- */
typedef struct zc_span zc_span;

/* The request's current span: its server span, or the innermost span
 * opened with zc_span_start and not yet ended.  Borrowed; NULL when the
 * request is not traced. */
zc_span *zc_req_span(zc_req *req);
/*
 * Open a child of the request's current span around your own work (an
 * INTERNAL span named name).  It becomes the current span until
 * zc_span_end, so outbound calls and store work made meanwhile are its
 * children.  A span still open when the handler returns is ended then.
 */
zc_span *zc_span_start(zc_req *req, const char *name);
/* End a span from zc_span_start, and the ones opened inside it (ignored
 * for any other span). */
void zc_span_end(zc_span *span);
/* Attributes (copied; a key set twice keeps the last value). */
void zc_span_set_str(zc_span *span, const char *key, const char *value);
void zc_span_set_int(zc_span *span, const char *key, int64_t value);
void zc_span_set_double(zc_span *span, const char *key, double value);
void zc_span_set_bool(zc_span *span, const char *key, bool value);
/* A timestamped event on the span ("cache miss", "retrying"). */
void zc_span_event(zc_span *span, const char *name);
/* Mark the span failed, with a description (printf-style; NULL: none). */
void zc_span_error(zc_span *span, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------------
 * Small helpers a function needs and should not write again
 * ------------------------------------------------------------------- */
/*
 * A boolean setting from the environment: 1/true/on/yes or 0/false/off/no
 * (any case); unset or empty gives dflt.  Any other value logs an error
 * naming the variable and returns ZC_ERR_INVALID (*out untouched), so
 * zc_function_setup can refuse to start on a typo.
 */
zc_err zc_env_bool(const char *name, bool dflt, bool *out);
/* One of choices (a NULL-terminated list) from the environment, as an
 * index into it; unset or empty gives dflt.  Anything else: an error
 * naming the variable and the choices, ZC_ERR_INVALID. */
zc_err zc_env_choice(const char *name, const char *const *choices, int dflt,
		     int *out);
/* A random id: size-1 lower-case hex digits (at most 32) and a NUL into
 * buf; unique enough across threads and replicas (not a secret).
 * Returns buf. */
char *zc_random_id(char *buf, size_t size);
/* A stable id: prefix followed by 32 hex digits of a 128-bit hash of a
 * and b (b may be NULL), the same for the same inputs in every replica:
 * to derive an event's or a transaction's id from the one that caused
 * it.  ZC_ERR_TOO_LARGE when buf is too small (it needs strlen(prefix) +
 * 33 bytes). */
zc_err zc_stable_id(char *buf, size_t size, const char *prefix, const char *a,
		    const char *b);
/* A 64-bit hash of data (FNV-1a): for a function's own hash tables. */
uint64_t zc_hash64(const void *data, size_t len);

/* ---------------------------------------------------------------------
 * Logging: one line per message to stderr; LOG_LEVEL=debug|info|warn|error
 * ------------------------------------------------------------------- */
typedef enum zc_level {
	ZC_LOG_DEBUG = 0,
	ZC_LOG_INFO,
	ZC_LOG_WARN,
	ZC_LOG_ERROR
} zc_level;

void zc_log(zc_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void zc_vlog(zc_level level, const char *fmt, va_list ap);
#define zc_debug(...) zc_log(ZC_LOG_DEBUG, __VA_ARGS__)
#define zc_info(...)  zc_log(ZC_LOG_INFO, __VA_ARGS__)
#define zc_warn(...)  zc_log(ZC_LOG_WARN, __VA_ARGS__)
#define zc_error(...) zc_log(ZC_LOG_ERROR, __VA_ARGS__)

/* ---------------------------------------------------------------------
 * In-process testing: run the app's routing and a handler on a built
 * request, no socket.  Same dispatch as the server (404, 405, 413, ...).
 * ------------------------------------------------------------------- */
/* An app with setup applied (and the init hook run); NULL on failure. */
zc_app *zc_test_app(int (*setup)(zc_app *app));
void zc_app_free(zc_app *app); /* runs the shutdown hook if init ran */
/*
 * target is a path with an optional query ("/a?b=c").  headers is NULL or a
 * NULL-terminated array of "Name: value" strings.  body may be NULL.
 * Returns a response the caller frees with zc_res_free(); NULL on ENOMEM.
 */
zc_res *zc_test_request(zc_app *app, const char *method, const char *target,
			const char *const *headers, const char *body);

#ifdef __cplusplus
}
#endif
#endif /* ZENITH_H */
