/*
 * relay.c - the outbox's other half: a call or event a transactional
 * handler sent becomes a row in its transaction (zc__relay_put), and
 * relay threads deliver the committed rows with the ordinary client (the
 * target's policy, retries and breaker), each claimed as a lease so one
 * replica at a time delivers it, with the same Idempotency-Key on every
 * attempt.  At least once: a row goes only when delivered (or refused for
 * good: 'dead', logged as [UNDELIVERED]); on SIGTERM what is left stays
 * in the store for the next replica.
 */
#include "call.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_POLL_MS  1000L
#define DEFAULT_LEASE_MS 30000L
#define DEFAULT_RELAYS   2
#define BATCH            8
/* Backoff between attempts of one row: 1 s doubling to 60 s. */
#define BACKOFF_MIN_MS 1000LL
#define BACKOFF_MAX_MS 60000LL
/* A delivery ends this long before its lease does. */
#define LEASE_MARGIN_MS 1000L

/* ---------------------------------------------------------------------
 * A call as a row
 * ------------------------------------------------------------------- */
/* Headers that belong to one connection, never stored for another. */
static bool
hop_by_hop(const char *name, size_t n)
{
	static const char *const names[] = {
		"connection",
		"keep-alive",
		"proxy-connection",
		"te",
		"trailer",
		"transfer-encoding",
		"upgrade",
		"host",
		"content-length",
		"expect",
		"proxy-authenticate",
		"proxy-authorization",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n &&
		    strncasecmp(name, names[i], n) == 0)
			return true;
	return false;
}

/* "Name: value" or "Name;" (empty): the name's length and the value. */
static size_t
split_line(const char *line, const char **value)
{
	size_t n = strcspn(line, ":;");

	if (line[n] == ':') {
		*value = line + n + 1;
		while (**value == ' ')
			(*value)++;
	} else {
		*value = "";
	}
	return n;
}

static bool
named(const char *line, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(line, name, n) == 0;
}

static bool
has_header(const struct zc_hdr *l, const char *line, size_t n)
{
	for (; l != NULL; l = l->next)
		if (strncasecmp(l->line, line, n) == 0 &&
		    (l->line[n] == ':' || l->line[n] == ';'))
			return true;
	return false;
}

struct textbuf {
	char *p;
	size_t len, cap;
	bool nomem;
};

static void
add_line(struct textbuf *b, const char *line)
{
	size_t n = strlen(line), cap;
	char *p;

	if (b->nomem)
		return;
	if (b->len + n + 2 > b->cap) {
		cap = (b->len + n + 2) * 2;
		if ((p = realloc(b->p, cap)) == NULL) {
			b->nomem = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (b->len > 0)
		b->p[b->len++] = '\n';
	memcpy(b->p + b->len, line, n + 1);
	b->len += n;
}

/*
 * Where a row goes: a function's name and the path (resolved again at
 * delivery, with its policy), or, for a call to a URL (events), the
 * target's name and the whole URL.
 */
static const char *
row_path(const zc_call *call)
{
	char base[ZC_URL_MAX];
	size_t bl;

	if (zc__service_resolve(call->target->name, base, sizeof(base), NULL) ==
		    ZC_OK &&
	    strncmp(call->url, base, (bl = strlen(base))) == 0 &&
	    call->url[bl] == '/')
		return call->url + bl;
	return call->url;
}

zc_err
zc__relay_put(zc_tx *tx, zc_call *call, const char *kind)
{
	struct zc_outbox_row row = {0};
	struct textbuf hb = {0};
	const struct zc_hdr *h;
	const char *v;
	char id[33];
	size_t n;
	zc_err err;

	if (tx == NULL || call == NULL || kind == NULL)
		return ZC_ERR_INVALID;
	if ((err = zc__call_setup_err(call)) != ZC_OK)
		return err;
	if (call->target == NULL || call->url == NULL)
		return ZC_ERR_INVALID;
	for (h = call->headers; h != NULL; h = h->next) {
		n = split_line(h->line, &v);
		if (named(h->line, n, "idempotency-key"))
			row.idem_key = (char *)v;
		else if (named(h->line, n, "traceparent"))
			row.traceparent = (char *)v;
		else if (named(h->line, n, "tracestate"))
			row.tracestate = (char *)v;
		else if (!hop_by_hop(h->line, n))
			add_line(&hb, h->line);
	}
	for (h = call->propagated; h != NULL; h = h->next) {
		n = split_line(h->line, &v);
		if (named(h->line, n, "traceparent")) {
			if (row.traceparent == NULL)
				row.traceparent = (char *)v;
		} else if (named(h->line, n, "tracestate")) {
			if (row.tracestate == NULL)
				row.tracestate = (char *)v;
		} else if (!has_header(call->headers, h->line, n)) {
			add_line(&hb, h->line); /* b3, x-request-id */
		}
	}
	if (hb.nomem) {
		free(hb.p);
		return ZC_ERR_NOMEM;
	}
	/* without a key of the caller's, the row's own: every attempt
	 * carries the same one, and the receiver applies it once */
	zc_random_id(id, sizeof(id));
	row.id = id;
	if (row.idem_key == NULL && strcmp(kind, "event") != 0)
		row.idem_key = id;
	row.kind = (char *)kind;
	row.target = call->target->name;
	row.method = call->method;
	row.path = (char *)row_path(call);
	row.headers = hb.p;
	row.body =
		call->has_body ? (call->body != NULL ? call->body : "") : NULL;
	row.body_len = call->has_body ? call->body_len : 0;
	err = zc__outbox_insert(tx, &row);
	free(hb.p);
	return err;
}

/* ---------------------------------------------------------------------
 * A row as a call
 * ------------------------------------------------------------------- */
static zc_call *
row_call(const struct zc_outbox_row *row, struct zc_span_ctx *queued)
{
	const char *p = row->path != NULL ? row->path : "";
	const char *line, *end, *v;
	zc_call *call;
	char name[256];
	size_t n, ln;

	if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0)
		call = zc__call_new_url(NULL, row->target, p, row->method);
	else
		call = zc_call_new(NULL, row->target, row->method, p);
	if (call == NULL)
		return NULL;
	for (line = row->headers; line != NULL && *line != '\0';
	     line = *end != '\0' ? end + 1 : end) {
		end = line + strcspn(line, "\n");
		ln = (size_t)(end - line);
		n = strcspn(line, ":;\n");
		if (n == 0 || n >= sizeof(name) || n > ln)
			continue;
		memcpy(name, line, n);
		name[n] = '\0';
		if (line[n] == ':') {
			char value[2048];
			size_t vl;
			for (v = line + n + 1; *v == ' '; v++)
				;
			vl = (size_t)(end - v);
			if (vl >= sizeof(value))
				vl = sizeof(value) - 1;
			memcpy(value, v, vl);
			value[vl] = '\0';
			zc_call_header(call, name, value);
		} else {
			zc_call_header(call, name, "");
		}
	}
	/* tracing on: the context the row was queued in is the relay
	 * span's parent and link, and each attempt sends its own span's
	 * traceparent; off, the row's goes as it is */
	memset(queued, 0, sizeof(*queued));
	if (row->traceparent != NULL && zc__tracing_on()) {
		struct zc_trace t;
		if (zc__trace_parse(row->traceparent, &t))
			zc__span_ctx_from_hex(queued, t.trace_id, t.parent_id,
					      t.flags, true);
	}
	if (row->traceparent != NULL && !zc__span_ctx_valid(queued))
		zc_call_header(call, "traceparent", row->traceparent);
	if (row->tracestate != NULL)
		zc_call_header(call, "tracestate", row->tracestate);
	if (row->idem_key != NULL)
		zc_call_header(call, "Idempotency-Key", row->idem_key);
	if (row->body != NULL)
		zc__call_body(call, NULL, row->body, row->body_len);
	/* events: the receiver dedupes on source + id */
	if (row->kind != NULL && strcmp(row->kind, "event") == 0)
		zc__call_set_repeatable(call);
	return call;
}

/* ---------------------------------------------------------------------
 * The relay
 * ------------------------------------------------------------------- */
enum { D_DELIVERED, D_RETRIED, D_DEAD, NDELIVERIES };
static const char *const delivery_names[NDELIVERIES] = {"delivered", "retried",
							"dead"};
static atomic_ulong deliveries[NDELIVERIES], claims, claimed_rows;

/* The drain deadline (0: not draining), which bounds calls in flight. */
static _Atomic long long drain_ns;
/* The relay's last claim reached the store: worth asking it more. */
static atomic_bool store_ok;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t *threads;
	bool *idle; /* per thread: found nothing due since draining */
	int n;
	bool running, draining, stopping;
	long poll_ms;
	long long lease_ms;
} r = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static long long
backoff_ms(int attempts, long retry_after_ms)
{
	long long d = BACKOFF_MIN_MS;
	int i;

	for (i = 1; i < attempts && d < BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	d = d / 2 + (long long)(zc__rand64() % (uint64_t)(d / 2 + 1));
	if (retry_after_ms > d)
		d = retry_after_ms < BACKOFF_MAX_MS ? retry_after_ms
						    : BACKOFF_MAX_MS;
	return d;
}

/* A refusal that a repeat would meet again. */
static bool
permanent(const struct zc_outbox_row *row, zc_err err, int status)
{
	bool event = row->kind != NULL && strcmp(row->kind, "event") == 0;

	if (err == ZC_ERR_INVALID || err == ZC_ERR_TOO_LARGE)
		return true; /* cannot even be sent */
	if (err != ZC_OK && err != ZC_ERR_HTTP)
		return false;
	if (status == 408 || status == 409 || status == 429 || status >= 500)
		return false;
	/* 3xx: delivered for a call; for an event only 2xx is */
	return status >= 400 || (event && status >= 300);
}

static void
log_dead(const struct zc_outbox_row *row, zc_call *call, zc_err err, int status)
{
	char *rec = call != NULL ? zc__call_record(call) : NULL;

	zc_error("[UNDELIVERED] %s (outbox row %s, %s %s%s: %s, HTTP %d, %d "
		 "attempts; kept as 'dead')",
		 rec != NULL ? rec : "(record unavailable)", row->id,
		 row->kind != NULL ? row->kind : "call",
		 row->target != NULL ? row->target : "",
		 row->path != NULL && row->path[0] == '/' ? row->path : "",
		 zc_strerror(err), status, row->attempts);
	free(rec);
}

/*
 * The span of one delivery attempt: a PRODUCER "send {target}" in the
 * trace of the transaction that queued the row, its child and linked to
 * it (the delivery is deferred work that request did not wait for); the
 * call's client spans are its children.  NULL when not sampled.
 */
static struct zc_span *
delivery_span(const struct zc_outbox_row *row, zc_call *call,
	      const struct zc_span_ctx *queued)
{
	struct zc_span *s;
	char name[128];

	if (!zc__span_ctx_valid(queued))
		return NULL;
	snprintf(name, sizeof(name), "send %s",
		 row->target != NULL ? row->target : "");
	s = zc__span_start(ZC_SPAN_PRODUCER, name, queued, NULL, 0);
	zc__call_trace(call, s != NULL ? &s->ctx : queued);
	if (s == NULL)
		return NULL;
	zc__span_link(s, queued);
	zc__span_attr_str(s, "messaging.system", "zenith.outbox");
	zc__span_attr_str(s, "messaging.operation.name", "send");
	zc__span_attr_str(s, "messaging.operation.type", "send");
	if (row->target != NULL)
		zc__span_attr_str(s, "messaging.destination.name", row->target);
	zc__span_attr_str(s, "messaging.message.id", row->id);
	zc__span_attr_str(s, "zenith.outbox.kind",
			  row->kind != NULL ? row->kind : "call");
	zc__span_attr_int(s, "zenith.outbox.attempt", row->attempts);
	return s;
}

static void
delivery_span_end(struct zc_span *s, const char *why)
{
	if (s == NULL)
		return;
	if (why != NULL) {
		zc__span_attr_str(s, "error.type", why);
		zc__span_status(s, ZC_STATUS_ERROR, NULL);
	}
	zc__span_end(s, 0);
}

/* Deliver one claimed row, its lease ending at lease_end_ns: true when
 * delivered (the caller deletes it), else its outcome is recorded. */
static bool
deliver(const char *owner, const struct zc_outbox_row *row,
	long long lease_end_ns)
{
	long long left_ms = (lease_end_ns - zc__now_ns()) / 1000000LL;
	struct zc_span_ctx queued;
	zc_call *call = row_call(row, &queued);
	struct zc_span *span;
	char why[160];
	zc_err err, serr;
	int status = 0;
	long ra = 0;

	if (call == NULL) {
		/* out of memory: due again after the lease */
		zc_warn("outbox: no memory to deliver row %s", row->id);
		return false;
	}
	zc__call_detach(call, &drain_ns);
	span = delivery_span(row, call, &queued);
	if (left_ms - LEASE_MARGIN_MS < call->timeout_ms)
		zc_call_timeout_ms(call, left_ms - LEASE_MARGIN_MS > 100
						 ? left_ms - LEASE_MARGIN_MS
						 : 100);
	err = zc_call_perform(call);
	status = zc_call_status(call);
	ra = zc_call_retry_after_ms(call);
	if (err == ZC_OK &&
	    !(row->kind != NULL && strcmp(row->kind, "event") == 0 &&
	      (status < 200 || status > 299))) {
		atomic_fetch_add(&deliveries[D_DELIVERED], 1);
		zc_debug("outbox: row %s delivered to %s (HTTP %d, attempt "
			 "%d)",
			 row->id, zc_call_url(call), status, row->attempts);
		delivery_span_end(span, NULL);
		zc_call_free(call);
		return true;
	}
	if (err == ZC_OK)
		err = ZC_ERR_HTTP;
	if (status > 0)
		snprintf(why, sizeof(why), "HTTP %d", status);
	else
		snprintf(why, sizeof(why), "%s", zc_strerror(err));
	if (status > 0) {
		char code[16];
		snprintf(code, sizeof(code), "%d", status);
		delivery_span_end(span, code);
	} else {
		delivery_span_end(span, zc__outcome_name(err));
	}
	if (permanent(row, err, status)) {
		atomic_fetch_add(&deliveries[D_DEAD], 1);
		log_dead(row, call, err, status);
		serr = zc__outbox_dead(row->id, owner, why);
	} else {
		/* cut short by the drain: the next replica's, now */
		long long wait =
			err == ZC_ERR_DEADLINE && atomic_load(&drain_ns) != 0
				? 0
				: backoff_ms(row->attempts, ra);
		atomic_fetch_add(&deliveries[D_RETRIED], 1);
		zc_info("outbox: row %s to %s failed (%s, attempt %d); next "
			"attempt in %lld ms",
			row->id, zc_call_url(call), why, row->attempts, wait);
		serr = zc__outbox_retry(row->id, owner,
					zc__store_now_ms() + wait, why);
	}
	if (serr != ZC_OK)
		zc_warn("outbox: row %s: its outcome could not be recorded "
			"(%s); due again after its lease",
			row->id, zc_strerror(serr));
	zc_call_free(call);
	return false;
}

int
zc__relay_pass(const char *owner, int max, long long lease_ms)
{
	struct zc_outbox_row *rows;
	long long lease_end, dl;
	const char **ids;
	size_t n, i, k = 0;
	zc_err err;

	if (zc__outbox_claim(owner, lease_ms, max, &rows, &n) != ZC_OK) {
		atomic_store(&store_ok, false);
		return -1;
	}
	atomic_store(&store_ok, true);
	lease_end = zc__now_ns() + lease_ms * 1000000LL;
	if (n == 0)
		return 0;
	atomic_fetch_add(&claims, 1);
	atomic_fetch_add(&claimed_rows, n);
	if ((ids = calloc(n, sizeof(*ids))) == NULL) {
		zc__outbox_rows_free(rows, n);
		return (int)n; /* due again after the lease */
	}
	for (i = 0; i < n; i++) {
		/* past the drain deadline the rest stay claimed: given
		 * back when the relay stops */
		if ((dl = atomic_load(&drain_ns)) != 0 && zc__now_ns() >= dl)
			break;
		if (deliver(owner, &rows[i], lease_end))
			ids[k++] = rows[i].id;
	}
	/* the delivered go together: one transaction, not one each */
	if (k > 0 && (err = zc__outbox_done(ids, k)) != ZC_OK)
		zc_warn("outbox: %zu delivered row(s) could not be deleted "
			"(%s); they will be delivered again (same "
			"Idempotency-Key)",
			k, zc_strerror(err));
	free(ids);
	zc__outbox_rows_free(rows, n);
	return (int)n;
}

static void *
relay_main(void *arg)
{
	int me = (int)(intptr_t)arg, n;
	unsigned long seen = 0;
	bool warned = false;
	long wait;

	pthread_setname_np(pthread_self(), "zc-relay");
	/* SQLite: claims left by a process of this host that died (kill -9)
	 * are due now; no other replica would wait for their lease */
	if (me == 0 && zc__store_kind() == ZC_STORE_SQLITE)
		(void)zc__outbox_release_dead_local();
	for (;;) {
		pthread_mutex_lock(&r.mu);
		if (r.stopping) {
			pthread_mutex_unlock(&r.mu);
			break;
		}
		pthread_mutex_unlock(&r.mu);
		n = zc__relay_pass(zc__store_replica_id(), BATCH, r.lease_ms);
		if (n < 0 && !warned)
			zc_warn("outbox: the relay cannot reach the store; "
				"trying again every %ld ms",
				r.poll_ms);
		warned = n < 0;
		pthread_mutex_lock(&r.mu);
		if (r.draining) {
			r.idle[me] = n <= 0;
			pthread_cond_broadcast(&r.cv);
		}
		wait = r.draining ? 50 : r.poll_ms;
		pthread_mutex_unlock(&r.mu);
		if (n > 0)
			continue; /* more may be due */
		zc__log_flush();
		zc__outbox_wait(&seen, wait);
	}
	zc__log_flush();
	return NULL;
}

int
zc__relay_start(char *err, size_t errsize)
{
	long poll, lease, n;
	int i;

	poll = DEFAULT_POLL_MS;
	lease = DEFAULT_LEASE_MS;
	n = DEFAULT_RELAYS;
	if (zc__env_long("ZC_OUTBOX_POLL_MS", 10, 3600000, &poll, err,
			 errsize) != 0 ||
	    zc__env_long("ZC_OUTBOX_LEASE_MS", 1000, 86400000, &lease, err,
			 errsize) != 0 ||
	    zc__env_long("ZC_OUTBOX_RELAYS", 1, 32, &n, err, errsize) != 0)
		return -1;
	pthread_mutex_lock(&r.mu);
	if (r.running) {
		pthread_mutex_unlock(&r.mu);
		return 0;
	}
	r.threads = calloc((size_t)n, sizeof(*r.threads));
	r.idle = calloc((size_t)n, sizeof(*r.idle));
	if (r.threads == NULL || r.idle == NULL) {
		free(r.threads);
		free(r.idle);
		r.threads = NULL;
		r.idle = NULL;
		pthread_mutex_unlock(&r.mu);
		snprintf(err, errsize, "outbox relay: out of memory");
		return -1;
	}
	r.poll_ms = poll;
	r.lease_ms = lease;
	r.draining = r.stopping = false;
	atomic_store(&drain_ns, 0);
	for (r.n = 0; r.n < n; r.n++)
		if (pthread_create(&r.threads[r.n], NULL, relay_main,
				   (void *)(intptr_t)r.n) != 0)
			break;
	r.running = r.n > 0;
	i = r.n;
	pthread_mutex_unlock(&r.mu);
	if (i == 0) {
		snprintf(err, errsize, "outbox relay: cannot start a thread");
		return -1;
	}
	zc_info("outbox relay: %d thread(s), polling every %ld ms, lease %ld "
		"ms",
		i, poll, lease);
	return 0;
}

bool
zc__relay_running(void)
{
	bool on;

	pthread_mutex_lock(&r.mu);
	on = r.running;
	pthread_mutex_unlock(&r.mu);
	return on;
}

static bool
all_idle(void)
{
	int i;

	for (i = 0; i < r.n; i++)
		if (!r.idle[i])
			return false;
	return true;
}

long
zc__relay_drain(long long deadline_ns)
{
	long long pending = -1, dead, oldest;
	struct timespec ts;
	int i;

	pthread_mutex_lock(&r.mu);
	if (!r.running) {
		pthread_mutex_unlock(&r.mu);
		return 0;
	}
	/* deliver what is due, until none is or the deadline */
	r.draining = true;
	for (i = 0; i < r.n; i++)
		r.idle[i] = false;
	atomic_store(&drain_ns, deadline_ns);
	zc__outbox_wake();
	while (!all_idle() && zc__now_ns() < deadline_ns) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r.cv, &r.mu, &ts);
	}
	r.stopping = true;
	pthread_mutex_unlock(&r.mu);
	zc__outbox_wake();
	for (i = 0; i < r.n; i++)
		pthread_join(r.threads[i], NULL);
	pthread_mutex_lock(&r.mu);
	free(r.threads);
	free(r.idle);
	r.threads = NULL;
	r.idle = NULL;
	r.n = 0;
	r.running = r.draining = r.stopping = false;
	pthread_mutex_unlock(&r.mu);
	atomic_store(&drain_ns, 0);
	/* what this replica still holds is any replica's now; nothing is
	 * logged as undelivered: it stays in the store */
	if (!atomic_load(&store_ok) ||
	    zc__outbox_release(zc__store_replica_id()) != ZC_OK ||
	    zc__outbox_stats(&pending, &dead, &oldest) != ZC_OK)
		zc_warn("outbox: stopped; the rows left could not be counted "
			"(the store is unreachable); they stay in it");
	else if (pending > 0)
		zc_info("outbox: stopped with %lld row(s) left in the store "
			"for the next replica",
			pending);
	return pending > 0 ? (long)pending : 0;
}

/* ---------------------------------------------------------------------
 * Metrics
 * ------------------------------------------------------------------- */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static long long stats_at_ns, st_pending, st_dead, st_oldest;
static bool stats_ok;

void
zc__relay_metrics(struct zc_buf *o, void *arg)
{
	long long now = zc__now_ns(), pending, dead, oldest, age = 0;
	bool ok;
	size_t i;

	(void)arg;
	/* the store is asked at most once a second, however many scrape */
	pthread_mutex_lock(&stats_mu);
	if (now - stats_at_ns >= 1000000000LL && atomic_load(&store_ok)) {
		stats_at_ns = now;
		stats_ok = zc__outbox_stats(&st_pending, &st_dead,
					    &st_oldest) == ZC_OK;
	}
	ok = stats_ok;
	pending = st_pending;
	dead = st_dead;
	oldest = st_oldest;
	pthread_mutex_unlock(&stats_mu);
	if (oldest > 0 && (age = zc__store_now_ms() - oldest) < 0)
		age = 0;
	if (ok)
		zc__buf_printf(
			o,
			"# HELP zc_outbox_depth Outbox rows waiting for "
			"delivery (all replicas).\n# TYPE zc_outbox_depth "
			"gauge\nzc_outbox_depth %lld\n"
			"# HELP zc_outbox_oldest_age_seconds Age of the "
			"oldest row waiting (0: none).\n# TYPE "
			"zc_outbox_oldest_age_seconds gauge\n"
			"zc_outbox_oldest_age_seconds %.3f\n"
			"# HELP zc_outbox_dead Outbox rows refused for good, "
			"kept as 'dead'.\n# TYPE zc_outbox_dead gauge\n"
			"zc_outbox_dead %lld\n",
			pending, (double)age / 1e3, dead);
	zc__buf_printf(o, "# HELP zc_outbox_deliveries_total Delivery "
			  "attempts of outbox rows by this replica, by "
			  "outcome.\n# TYPE zc_outbox_deliveries_total "
			  "counter\n");
	for (i = 0; i < NDELIVERIES; i++)
		zc__buf_printf(o,
			       "zc_outbox_deliveries_total{outcome=\"%s\"} "
			       "%lu\n",
			       delivery_names[i], atomic_load(&deliveries[i]));
	zc__buf_printf(o,
		       "# HELP zc_outbox_claims_total Claims by this "
		       "replica's relay that took rows, and the rows.\n"
		       "# TYPE zc_outbox_claims_total counter\n"
		       "zc_outbox_claims_total %lu\n"
		       "# HELP zc_outbox_claimed_rows_total Rows those "
		       "claims took.\n"
		       "# TYPE zc_outbox_claimed_rows_total counter\n"
		       "zc_outbox_claimed_rows_total %lu\n",
		       atomic_load(&claims), atomic_load(&claimed_rows));
}
