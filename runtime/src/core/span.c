/*
 * span.c - recording spans: the sampler, a span's attributes, events,
 * links and status, and the bounded queue that hands finished spans to the
 * exporter's thread.  A request never waits on export: ending a span is an
 * append under a mutex, and a full queue drops the span (counted) rather
 * than block or grow.
 */
#include "core.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_bool recording;
static int sampler = ZC_SAMPLE_PARENT_ON;
static uint64_t ratio_bound; /* sampled when trace-id's low 63 bits < it */

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond;
static pthread_once_t cond_once = PTHREAD_ONCE_INIT;
static struct zc_span *queue_head, *queue_tail;
static size_t queued, queue_max = 2048, batch_max = 512;
static bool wake_flag;
static unsigned long long n_ended, n_dropped;

static void
cond_init(void)
{
	zc__cond_init_monotonic(&queue_cond);
}

void
zc__tracing_enable(const struct zc_otel *o)
{
	pthread_once(&cond_once, cond_init);
	sampler = o->sampler;
	/*
	 * TraceIdRatioBased as the Go and Java SDKs do it: the trace id's low
	 * 8 bytes, as a 63-bit number, below ratio * 2^63.  Every process of
	 * the trace decides the same for the same id.
	 */
	if (o->ratio >= 1.0)
		ratio_bound = UINT64_MAX;
	else if (o->ratio <= 0.0)
		ratio_bound = 0;
	else
		ratio_bound = (uint64_t)(o->ratio * 9223372036854775808.0);
	pthread_mutex_lock(&queue_lock);
	queue_max = o->max_queue > 0 ? o->max_queue : 2048;
	batch_max = o->max_batch > 0 && o->max_batch <= queue_max ? o->max_batch
								  : queue_max;
	pthread_mutex_unlock(&queue_lock);
	atomic_store(&recording, true);
}

void
zc__tracing_disable(void)
{
	struct zc_span *s, *next;

	atomic_store(&recording, false);
	pthread_mutex_lock(&queue_lock);
	s = queue_head;
	queue_head = queue_tail = NULL;
	queued = 0;
	pthread_mutex_unlock(&queue_lock);
	for (; s != NULL; s = next) {
		next = s->next;
		zc__span_free(s);
	}
}

bool
zc__tracing_on(void)
{
	return atomic_load_explicit(&recording, memory_order_relaxed);
}

static bool
ratio_says(const uint8_t id[16])
{
	uint64_t low = 0;
	int i;

	if (ratio_bound == UINT64_MAX)
		return true;
	for (i = 8; i < 16; i++)
		low = (low << 8) | id[i];
	return (low >> 1) < ratio_bound;
}

bool
zc__sample(const uint8_t trace_id[16], const struct zc_span_ctx *parent)
{
	bool has_parent =
		parent != NULL && zc__span_ctx_valid(parent) &&
		(parent->span_id[0] | parent->span_id[1] | parent->span_id[2] |
		 parent->span_id[3] | parent->span_id[4] | parent->span_id[5] |
		 parent->span_id[6] | parent->span_id[7]) != 0;

	switch (sampler) {
	case ZC_SAMPLE_ALWAYS_ON:
		return true;
	case ZC_SAMPLE_ALWAYS_OFF:
		return false;
	case ZC_SAMPLE_RATIO:
		return ratio_says(trace_id);
	case ZC_SAMPLE_PARENT_OFF:
		return has_parent ? (parent->flags & 1) != 0 : false;
	case ZC_SAMPLE_PARENT_RATIO:
		return has_parent ? (parent->flags & 1) != 0
				  : ratio_says(trace_id);
	default: /* parentbased_always_on, the spec's default */
		return has_parent ? (parent->flags & 1) != 0 : true;
	}
}

/* A hex digit's value, -1 for anything else (the NUL included). */
static int
unhex(unsigned char c)
{
	if ((unsigned)(c - '0') < 10u)
		return c - '0';
	c |= 0x20; /* lower case */
	if ((unsigned)(c - 'a') < 6u)
		return c - 'a' + 10;
	return -1;
}

/* n bytes from the first 2n hex digits of hex; all zeros when it is
 * shorter or not hex (a NUL in them is not a digit: no strlen needed). */
static void
hex_bytes(uint8_t *out, size_t n, const char *hex)
{
	size_t i;

	if (hex == NULL) {
		memset(out, 0, n);
		return;
	}
	for (i = 0; i < n; i++) {
		int hi = unhex((unsigned char)hex[2 * i]);
		int lo = hi < 0 ? -1 : unhex((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			memset(out, 0, n);
			return;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
}

void
zc__span_ctx_from_hex(struct zc_span_ctx *out, const char *trace_id,
		      const char *span_id, const char *flags, bool remote)
{
	uint8_t f = 0;

	hex_bytes(out->trace_id, 16, trace_id);
	hex_bytes(out->span_id, 8, span_id);
	if (flags != NULL && flags[0] != '\0')
		hex_bytes(&f, 1, flags);
	out->flags = f;
	out->remote = remote;
}

bool
zc__span_ctx_valid(const struct zc_span_ctx *c)
{
	int i;

	for (i = 0; i < 16; i++)
		if (c->trace_id[i] != 0)
			return true;
	return false;
}

static void
to_hex(char *out, const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
}

void
zc__span_ctx_traceparent(const struct zc_span_ctx *c, char *out)
{
	memcpy(out, "00-", 3);
	to_hex(out + 3, c->trace_id, 16);
	out[35] = '-';
	to_hex(out + 36, c->span_id, 8);
	out[52] = '-';
	to_hex(out + 53, &c->flags, 1);
	out[55] = '\0';
}

static void
random_bytes(uint8_t *out, size_t n)
{
	size_t i;
	uint64_t r = 0;

	do {
		for (i = 0; i < n; i++) {
			if (i % 8 == 0)
				r = zc__rand64();
			out[i] = (uint8_t)r;
			r >>= 8;
		}
		for (i = 0; i < n && out[i] == 0; i++)
			;
	} while (i == n); /* all zeros is invalid */
}

/* ---- a span's storage: its arena, then the heap ---- */

static bool
in_arena(const struct zc_span *s, const char *p)
{
	uintptr_t u = (uintptr_t)p, base = (uintptr_t)s->arena;

	return u >= base && u < base + sizeof(s->arena);
}

/* A copy of the n bytes at str (and a NUL) owned by s: in its arena when
 * it fits, else malloc'd; NULL when out of memory. */
static char *
span_strndup(struct zc_span *s, const char *str, size_t n)
{
	char *p;

	if (n < sizeof(s->arena) - s->arena_used) {
		p = s->arena + s->arena_used;
		s->arena_used += n + 1;
	} else if ((p = malloc(n + 1)) == NULL) {
		return NULL;
	}
	memcpy(p, str, n);
	p[n] = '\0';
	return p;
}

static char *
span_strdup(struct zc_span *s, const char *str)
{
	return span_strndup(s, str, strlen(str));
}

/* Give back a string of s's: the heap's is freed, the arena's bytes stay
 * taken until the span goes. */
static void
span_strfree(const struct zc_span *s, char *p)
{
	if (p != NULL && !in_arena(s, p))
		free(p);
}

struct zc_span *
zc__span_start(enum zc_span_kind kind, const char *name,
	       const struct zc_span_ctx *parent, const uint8_t span_id[8],
	       long long start_ns)
{
	struct zc_span *s;
	uint8_t trace_id[16];
	bool has_parent = false;

	if (!zc__tracing_on())
		return NULL;
	if (parent != NULL && zc__span_ctx_valid(parent)) {
		static const uint8_t zero[8];
		memcpy(trace_id, parent->trace_id, 16);
		has_parent = memcmp(parent->span_id, zero, 8) != 0;
	} else {
		random_bytes(trace_id, 16);
		parent = NULL;
	}
	if (!zc__sample(trace_id, parent))
		return NULL;
	/* one allocation: the inline arrays and the arena need no zeroing */
	s = malloc(sizeof(*s));
	if (s == NULL)
		return NULL;
	memset(s, 0, offsetof(struct zc_span, link_inline));
	s->attrs = s->attrs_inline;
	s->attrs_cap = ZC_SPAN_INLINE_ATTRS;
	s->links = &s->link_inline;
	s->links_cap = 1;
	s->name = span_strdup(s, name != NULL ? name : "");
	if (s->name == NULL) {
		free(s);
		return NULL;
	}
	memcpy(s->ctx.trace_id, trace_id, 16);
	if (span_id != NULL)
		memcpy(s->ctx.span_id, span_id, 8);
	else
		random_bytes(s->ctx.span_id, 8);
	s->ctx.flags = 0x01; /* sampled: we record it */
	if (has_parent) {
		memcpy(s->parent_id, parent->span_id, 8);
		s->has_parent = true;
		s->parent_remote = parent->remote;
	}
	s->kind = kind;
	s->start_ns = start_ns != 0 ? start_ns : zc__wall_ns();
	return s;
}

void
zc__span_set_name(struct zc_span *s, const char *name)
{
	char *n;

	if (s == NULL || name == NULL || (n = span_strdup(s, name)) == NULL)
		return;
	span_strfree(s, s->name);
	s->name = n;
}

static void
attr_clear(const struct zc_span *s, struct zc_attr *a)
{
	if (a->own_key)
		span_strfree(s, a->key);
	if (a->type == ZC_ATTR_STR)
		span_strfree(s, a->v.s);
}

/* The slot for key in an array of s's (inline: the array it starts as,
 * NULL when none): the one key already has, or a new one; NULL when over
 * the limit (counted) or out of memory. */
static struct zc_attr *
attr_slot(struct zc_span *s, struct zc_attr **attrs, int *n, int *cap,
	  struct zc_attr *inline_attrs, int *dropped, const char *key,
	  bool copy)
{
	struct zc_attr *a = *attrs, *end = a + *n;
	char k0 = key[0];

	for (; a < end; a++) {
		/* the runtime's keys are literals: mostly the same pointer
		 * when equal, a different first byte when not */
		if (a->key == key ||
		    (a->key[0] == k0 && strcmp(a->key, key) == 0)) {
			if (a->type == ZC_ATTR_STR)
				span_strfree(s, a->v.s);
			a->type = ZC_ATTR_INT;
			return a;
		}
	}
	if (*n >= ZC_SPAN_MAX_ATTRS) {
		if (dropped != NULL)
			(*dropped)++;
		return NULL;
	}
	if (*n == *cap) {
		int ncap = *cap == 0 ? 8 : *cap * 2;
		if (*attrs != NULL && *attrs == inline_attrs) {
			a = malloc((size_t)ncap * sizeof(*a));
			if (a != NULL)
				memcpy(a, *attrs, (size_t)*n * sizeof(*a));
		} else {
			a = realloc(*attrs, (size_t)ncap * sizeof(*a));
		}
		if (a == NULL)
			return NULL;
		*attrs = a;
		*cap = ncap;
	}
	a = &(*attrs)[*n];
	if (!copy)
		a->key = (char *)key;
	else if ((a->key = span_strdup(s, key)) == NULL)
		return NULL;
	a->own_key = copy;
	a->type = ZC_ATTR_INT;
	a->v.i = 0;
	(*n)++;
	return a;
}

static struct zc_attr *
span_attr(struct zc_span *s, const char *key, bool copy)
{
	if (s == NULL || s->ended || key == NULL || key[0] == '\0')
		return NULL;
	return attr_slot(s, &s->attrs, &s->nattrs, &s->attrs_cap,
			 s->attrs_inline, &s->dropped_attrs, key, copy);
}

/* a's value: a copy of value (NULL: "") */
static void
attr_set_str(struct zc_span *s, struct zc_attr *a, const char *value)
{
	a->v.s = span_strdup(s, value != NULL ? value : "");
	a->type = a->v.s != NULL ? ZC_ATTR_STR : ZC_ATTR_INT;
}

void
zc__span_attr_str(struct zc_span *s, const char *key, const char *value)
{
	struct zc_attr *a = span_attr(s, key, false);

	if (a != NULL)
		attr_set_str(s, a, value);
}

void
zc__span_attr_int(struct zc_span *s, const char *key, int64_t value)
{
	struct zc_attr *a = span_attr(s, key, false);

	if (a != NULL)
		a->v.i = value;
}

void
zc__span_attr_double(struct zc_span *s, const char *key, double value)
{
	struct zc_attr *a = span_attr(s, key, false);

	if (a != NULL) {
		a->type = ZC_ATTR_DOUBLE;
		a->v.d = value;
	}
}

void
zc__span_attr_bool(struct zc_span *s, const char *key, bool value)
{
	struct zc_attr *a = span_attr(s, key, false);

	if (a != NULL) {
		a->type = ZC_ATTR_BOOL;
		a->v.b = value;
	}
}

void
zc__span_event(struct zc_span *s, const char *name)
{
	struct zc_span_event *e;

	if (s == NULL || s->ended || name == NULL)
		return;
	if (s->nevents >= ZC_SPAN_MAX_EVENTS) {
		s->dropped_events++;
		return;
	}
	if (s->nevents == s->events_cap) {
		int ncap = s->events_cap == 0 ? 4 : s->events_cap * 2;
		e = realloc(s->events, (size_t)ncap * sizeof(*e));
		if (e == NULL)
			return;
		s->events = e;
		s->events_cap = ncap;
	}
	e = &s->events[s->nevents];
	memset(e, 0, sizeof(*e));
	if ((e->name = span_strdup(s, name)) == NULL)
		return;
	e->time_ns = zc__wall_ns();
	s->nevents++;
}

void
zc__span_event_attr_str(struct zc_span *s, const char *key, const char *value)
{
	struct zc_span_event *e;
	struct zc_attr *a;
	int cap;

	if (s == NULL || s->ended || s->nevents == 0 || key == NULL)
		return;
	e = &s->events[s->nevents - 1];
	/* an event's attribute array is sized exactly: few, set once */
	cap = e->nattrs;
	a = attr_slot(s, &e->attrs, &e->nattrs, &cap, NULL, NULL, key, true);
	if (a != NULL)
		attr_set_str(s, a, value);
}

void
zc__span_link(struct zc_span *s, const struct zc_span_ctx *to)
{
	struct zc_span_ctx *l;

	if (s == NULL || s->ended || to == NULL || !zc__span_ctx_valid(to))
		return;
	if (s->nlinks >= ZC_SPAN_MAX_LINKS) {
		s->dropped_links++;
		return;
	}
	if (s->nlinks == s->links_cap) {
		int ncap = s->links_cap * 2;
		if (s->links == &s->link_inline) {
			l = malloc((size_t)ncap * sizeof(*l));
			if (l != NULL)
				*l = s->link_inline;
		} else {
			l = realloc(s->links, (size_t)ncap * sizeof(*l));
		}
		if (l == NULL)
			return;
		s->links = l;
		s->links_cap = ncap;
	}
	s->links[s->nlinks++] = *to;
}

void
zc__span_status(struct zc_span *s, enum zc_span_status code,
		const char *message)
{
	if (s == NULL || s->ended || code == ZC_STATUS_UNSET)
		return;
	/* the API: once OK, a span stays OK */
	if (s->status == ZC_STATUS_OK)
		return;
	span_strfree(s, s->status_message);
	s->status_message = NULL;
	s->status = code;
	if (code == ZC_STATUS_ERROR && message != NULL && message[0] != '\0')
		s->status_message = span_strdup(s, message);
}

void
zc__span_free(struct zc_span *s)
{
	int i, j;

	if (s == NULL)
		return;
	/* nothing to free unless a string went to the heap or an array grew
	 * out of the struct */
	for (i = 0; i < s->nattrs; i++)
		attr_clear(s, &s->attrs[i]);
	if (s->attrs != s->attrs_inline)
		free(s->attrs);
	for (i = 0; i < s->nevents; i++) {
		for (j = 0; j < s->events[i].nattrs; j++)
			attr_clear(s, &s->events[i].attrs[j]);
		free(s->events[i].attrs);
		span_strfree(s, s->events[i].name);
	}
	free(s->events);
	if (s->links != &s->link_inline)
		free(s->links);
	span_strfree(s, s->status_message);
	span_strfree(s, s->name);
	free(s);
}

void
zc__span_end(struct zc_span *s, long long end_ns)
{
	bool full_batch;

	if (s == NULL || s->ended)
		return;
	s->ended = true;
	s->end_ns = end_ns != 0 ? end_ns : zc__wall_ns();
	if (s->end_ns < s->start_ns)
		s->end_ns = s->start_ns;
	s->next = NULL;
	pthread_mutex_lock(&queue_lock);
	if (!zc__tracing_on() || queued >= queue_max) {
		if (zc__tracing_on())
			n_dropped++;
		pthread_mutex_unlock(&queue_lock);
		zc__span_free(s);
		return;
	}
	if (queue_tail != NULL)
		queue_tail->next = s;
	else
		queue_head = s;
	queue_tail = s;
	queued++;
	n_ended++;
	full_batch = queued == batch_max;
	pthread_mutex_unlock(&queue_lock);
	if (full_batch)
		pthread_cond_signal(&queue_cond);
}

void
zc__span_wake(void)
{
	pthread_once(&cond_once, cond_init);
	pthread_mutex_lock(&queue_lock);
	wake_flag = true;
	pthread_mutex_unlock(&queue_lock);
	pthread_cond_broadcast(&queue_cond);
}

size_t
zc__span_take(struct zc_span **list, size_t max, long long deadline_ns)
{
	struct zc_span *head, *s;
	size_t n;

	pthread_once(&cond_once, cond_init);
	pthread_mutex_lock(&queue_lock);
	while (queued < max && !wake_flag) {
		struct timespec ts = {
			.tv_sec = (time_t)(deadline_ns / 1000000000LL),
			.tv_nsec = (long)(deadline_ns % 1000000000LL)};
		if (zc__now_ns() >= deadline_ns ||
		    pthread_cond_timedwait(&queue_cond, &queue_lock, &ts) ==
			    ETIMEDOUT)
			break;
	}
	wake_flag = false;
	head = queue_head;
	for (n = 0, s = head; s != NULL && n + 1 < max; n++)
		s = s->next;
	if (s == NULL) {
		/* all of them */
		queue_head = queue_tail = NULL;
		n = queued;
	} else {
		n++;
		queue_head = s->next;
		if (queue_head == NULL)
			queue_tail = NULL;
		s->next = NULL;
	}
	queued -= n;
	pthread_mutex_unlock(&queue_lock);
	*list = n > 0 ? head : NULL;
	return n;
}

void
zc__span_counts(struct zc_span_counts *out)
{
	pthread_mutex_lock(&queue_lock);
	out->ended = n_ended;
	out->dropped = n_dropped;
	out->queued = queued;
	pthread_mutex_unlock(&queue_lock);
}

/* ---- the public calls that need no request ---- */

/* A handler's key may be its own buffer: these copy it. */
void
zc_span_set_str(zc_span *span, const char *key, const char *value)
{
	struct zc_attr *a = span_attr(span, key, true);

	if (a != NULL)
		attr_set_str(span, a, value);
}

void
zc_span_set_int(zc_span *span, const char *key, int64_t value)
{
	struct zc_attr *a = span_attr(span, key, true);

	if (a != NULL)
		a->v.i = value;
}

void
zc_span_set_double(zc_span *span, const char *key, double value)
{
	struct zc_attr *a = span_attr(span, key, true);

	if (a != NULL) {
		a->type = ZC_ATTR_DOUBLE;
		a->v.d = value;
	}
}

void
zc_span_set_bool(zc_span *span, const char *key, bool value)
{
	struct zc_attr *a = span_attr(span, key, true);

	if (a != NULL) {
		a->type = ZC_ATTR_BOOL;
		a->v.b = value;
	}
}

void
zc_span_event(zc_span *span, const char *name)
{
	zc__span_event(span, name);
}

void
zc_span_error(zc_span *span, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (span == NULL)
		return;
	msg[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	zc__span_status(span, ZC_STATUS_ERROR, msg);
}
