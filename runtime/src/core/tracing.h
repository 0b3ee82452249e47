/*
 * tracing.h - spans, the sampler, the settings read from the OpenTelemetry
 * variables, the queue of finished spans and the OTLP encodings: what every
 * layer records and what the exporter (outbound/export.c) ships.  Included
 * by core.h.  The public face of a span is zc_span in zenith.h; struct
 * zc_span is this one.
 *
 * Cost model: with no exporter configured nothing is recorded:
 * zc__span_start returns NULL after one relaxed load, and every zc__span_*
 * call takes NULL and returns.  A span belongs to the thread that started
 * it until zc__span_end hands it to the queue.
 */
#ifndef ZC_TRACING_H
#define ZC_TRACING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* OTLP's SpanKind values, so the encoders write them as they are. */
enum zc_span_kind {
	ZC_SPAN_INTERNAL = 1,
	ZC_SPAN_SERVER = 2,
	ZC_SPAN_CLIENT = 3,
	ZC_SPAN_PRODUCER = 4,
	ZC_SPAN_CONSUMER = 5
};

/* OTLP's StatusCode values. */
enum zc_span_status {
	ZC_STATUS_UNSET = 0,
	ZC_STATUS_OK = 1,
	ZC_STATUS_ERROR = 2
};

enum zc_attr_type { ZC_ATTR_STR, ZC_ATTR_INT, ZC_ATTR_DOUBLE, ZC_ATTR_BOOL };

/* One attribute; a string value is owned by the span, the key when
 * own_key says so (the runtime's keys are literals, not copied).  What the
 * span owns lives in its arena when it fits (span.c). */
struct zc_attr {
	char *key;
	bool own_key;
	enum zc_attr_type type;
	union {
		char *s;
		int64_t i;
		double d;
		bool b;
	} v;
};

struct zc_span_event {
	long long time_ns; /* Unix epoch */
	char *name;
	struct zc_attr *attrs;
	int nattrs;
};

/*
 * A span context: what a traceparent carries.  Valid when the trace id is
 * not all zeros.  remote: it came from another process (a traceparent
 * header, an event's extension, an outbox row).
 */
struct zc_span_ctx {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t flags; /* W3C trace-flags; bit 0 = sampled */
	bool remote;
};

/* The spec's default limits (OTEL_SPAN_*_COUNT_LIMIT); over them, counted
 * as dropped. */
#define ZC_SPAN_MAX_ATTRS  128
#define ZC_SPAN_MAX_EVENTS 128
#define ZC_SPAN_MAX_LINKS  128

/*
 * A span is one allocation in the common case: the first
 * ZC_SPAN_INLINE_ATTRS attributes and the first link live in the struct,
 * and its name, string values, copied keys, event names and status
 * message are copied into its arena; only what does not fit goes to the
 * heap (a bigger array, a string too long for what is left).  attrs,
 * links and the char pointers below point at either; zc__span_free frees
 * what is on the heap.
 */
#define ZC_SPAN_INLINE_ATTRS 16
#define ZC_SPAN_ARENA        512

struct zc_span {
	struct zc_span *up;     /* the span that was current before this one */
	void *owner;            /* the zc_req it is current in, or NULL */
	struct zc_span_ctx ctx; /* trace id, own span id, flags */
	uint8_t parent_id[8];
	bool has_parent;
	bool parent_remote;
	bool ended;
	bool user; /* opened by zc_span_start: zc_span_end may end it */
	enum zc_span_kind kind;
	char *name;
	long long start_ns, end_ns; /* Unix epoch */
	struct zc_attr *attrs;
	int nattrs, attrs_cap, dropped_attrs;
	struct zc_span_event *events;
	int nevents, events_cap, dropped_events;
	struct zc_span_ctx *links;
	int nlinks, links_cap, dropped_links;
	enum zc_span_status status;
	char *status_message;
	struct zc_span *next; /* in the queue */
	size_t arena_used;    /* bytes of arena taken */
	/* storage: what is above is zeroed at start, what follows is not */
	struct zc_span_ctx link_inline;
	struct zc_attr attrs_inline[ZC_SPAN_INLINE_ATTRS];
	char arena[ZC_SPAN_ARENA];
};

/* ---- settings (otel_env.c) ---- */
enum { ZC_EXPORT_NONE = 0, ZC_EXPORT_OTLP, ZC_EXPORT_CONSOLE };
enum {
	ZC_SAMPLE_ALWAYS_ON = 0,
	ZC_SAMPLE_ALWAYS_OFF,
	ZC_SAMPLE_RATIO,
	ZC_SAMPLE_PARENT_ON,
	ZC_SAMPLE_PARENT_OFF,
	ZC_SAMPLE_PARENT_RATIO
};
enum { ZC_OTLP_PROTOBUF = 0, ZC_OTLP_JSON };

struct zc_otel_kv {
	char *key, *value;
};

/*
 * Everything the OpenTelemetry variables say, parsed once at start-up.  A
 * bad value is a warning and the spec's default; nothing here fails.
 */
struct zc_otel {
	int exporter; /* ZC_EXPORT_*: NONE when disabled or unset */
	int sampler;  /* ZC_SAMPLE_* */
	double ratio; /* [0, 1] */
	struct zc_otel_kv *resource; /* service.name first */
	size_t nresource;
	char *endpoint; /* the full traces URL */
	int protocol;   /* ZC_OTLP_* */
	struct zc_otel_kv *headers;
	size_t nheaders;
	long timeout_ms; /* per export; 0 = no limit */
	bool gzip;
	long schedule_delay_ms;
	long export_timeout_ms;
	size_t max_queue;
	size_t max_batch;
};

/* Read the variables into o (zeroed first).  service is the function's
 * name, used when OTEL_SERVICE_NAME and service.name are unset.  Warnings
 * go to the log. */
void zc__otel_load(struct zc_otel *o, const char *service);
void zc__otel_free(struct zc_otel *o);

/* ---- recording (span.c) ---- */
/* Turn recording on with o's sampler and queue size (o stays the
 * caller's; the exporter reads the rest).  Before the server starts. */
void zc__tracing_enable(const struct zc_otel *o);
/* Off again, the queue emptied (tests, exit). */
void zc__tracing_disable(void);
bool zc__tracing_on(void);

/*
 * The sampler's answer for a new span of trace_id whose parent is parent
 * (NULL or invalid: a root): whether it is sampled.  Used where a trace
 * enters the process, so the flags it sends on say what was decided.
 */
bool zc__sample(const uint8_t trace_id[16], const struct zc_span_ctx *parent);

/* Parse the hex ids of a struct zc_trace (core.h) into a context. */
void zc__span_ctx_from_hex(struct zc_span_ctx *out, const char *trace_id,
			   const char *span_id, const char *flags, bool remote);
bool zc__span_ctx_valid(const struct zc_span_ctx *c);
/* "00-<trace>-<span>-<flags>" of c into out (56 bytes). */
void zc__span_ctx_traceparent(const struct zc_span_ctx *c, char *out);

/*
 * Start a span: a child of parent (NULL or invalid: a root with a new
 * trace id; a valid trace id with an all-zero span id: a root in that
 * trace, for a trace whose id was made before its first span), with span_id (NULL: a new one), at start_ns (Unix epoch ns,
 * 0: now).  NULL when not recording: tracing off, the sampler said no, or
 * out of memory.  The name is copied.
 */
struct zc_span *zc__span_start(enum zc_span_kind kind, const char *name,
			       const struct zc_span_ctx *parent,
			       const uint8_t span_id[8], long long start_ns);
void zc__span_set_name(struct zc_span *s, const char *name);
/* key must outlive the span: a string literal (handlers' keys go through
 * zc_span_set_*, which copy them). */
void zc__span_attr_str(struct zc_span *s, const char *key, const char *value);
void zc__span_attr_int(struct zc_span *s, const char *key, int64_t value);
void zc__span_attr_double(struct zc_span *s, const char *key, double value);
void zc__span_attr_bool(struct zc_span *s, const char *key, bool value);
/* An event now; its attributes are added with zc__span_event_attr_str on
 * the span's last event. */
void zc__span_event(struct zc_span *s, const char *name);
void zc__span_event_attr_str(struct zc_span *s, const char *key,
			     const char *value);
void zc__span_link(struct zc_span *s, const struct zc_span_ctx *to);
/* Status: ERROR keeps its message (NULL: none); OK wins over ERROR, as the
 * API says; UNSET does nothing. */
void zc__span_status(struct zc_span *s, enum zc_span_status code,
		     const char *message);
/* End at end_ns (0: now) and hand it to the queue: dropped, and counted,
 * when the queue is full.  s is no longer the caller's. */
void zc__span_end(struct zc_span *s, long long end_ns);
void zc__span_free(struct zc_span *s);
/* Wall clock, Unix epoch ns (clock.c). */
long long zc__wall_ns(void);

/* ---- the queue of finished spans (span.c) ---- */
/*
 * Wait until max spans are queued, deadline_ns (zc__now_ns clock) passes or
 * a flush is asked for, then take up to max spans, oldest first, as a list
 * linked by next.  Returns how many.
 */
size_t zc__span_take(struct zc_span **list, size_t max, long long deadline_ns);
/* Wake the taker now (SIGTERM's flush, a full batch). */
void zc__span_wake(void);
struct zc_span_counts {
	unsigned long long ended;   /* recorded and queued */
	unsigned long long dropped; /* queue full */
	size_t queued;
};
void zc__span_counts(struct zc_span_counts *out);

/* ---- OTLP encodings (otlp.c) ---- */
/* One ExportTraceServiceRequest holding the spans of list (linked by next,
 * n of them) under o's resource.  malloc'd, *len set; NULL on ENOMEM. */
char *zc__otlp_protobuf(const struct zc_otel *o, const struct zc_span *list,
			size_t *len);
char *zc__otlp_json(const struct zc_otel *o, const struct zc_span *list,
		    size_t *len);
/* One span as one JSON line for the console exporter (newline included). */
char *zc__otlp_console(const struct zc_otel *o, const struct zc_span *s,
		       size_t *len);
/* Shared by otlp.c and otlp_json.c: Span/Link flags, the W3C flags,
 * 0x100 (remoteness known) and 0x200 when remote. */
uint32_t zc__otlp_flags(uint8_t w3c, bool remote);
/* The partial_success of an ExportTraceServiceResponse: rejected spans
 * and message (protobuf or JSON by protocol); 0 when none. */
long long zc__otlp_rejected(int protocol, const char *body, size_t len,
			    char *msg, size_t msgsize);

#endif /* ZC_TRACING_H */
