/*
 * metrics.c - the Prometheus text exposition behind GET /metrics
 * (ZC_METRICS_PATH; "off" turns it off): requests by route, method and
 * status, a latency histogram by route, shed requests, uptime and resident
 * memory, and the families the layers above add as providers (the
 * server's connections, outbound calls and breakers, the async queue).
 * Counters are plain atomics in fixed tables: recording costs a few
 * atomic adds on the request path and takes no lock.
 */
#include "core.h"

#define outf  zc__buf_printf
#define label zc__metrics_label

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROUTE_SLOTS 64   /* routes tracked separately; the rest share one */
#define REQ_SLOTS   1024 /* (route, method, status) combinations */

static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bounds) / sizeof(bounds[0]))

static const char *const methods[] = {"GET",    "HEAD",  "POST",    "PUT",
				      "DELETE", "PATCH", "OPTIONS", "other"};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

struct req_slot {
	_Atomic unsigned
		key; /* 0 empty; else route<<16 | method<<10 | status */
	atomic_ulong count;
};

struct hist {
	atomic_ulong buckets[NBUCKETS]; /* non-cumulative; summed when read */
	atomic_ulong count;
	atomic_ulong sum_us;
};

static struct req_slot req_table[REQ_SLOTS];
static struct hist hists[ROUTE_SLOTS];
static const char *route_names[ROUTE_SLOTS];
static atomic_ulong shed_total;
static long long start_ns;

/* route ids: 0 unmatched (404/405/limits), 1 health, 2 metrics, 3+ routes */
enum { R_NONE = 0, R_HEALTH, R_METRICS, R_FIRST };

/* Providers: registered before the server starts, read by scrapes. */
#define MAX_PROVIDERS 8
static struct {
	void (*render)(struct zc_buf *, void *);
	void *arg;
} providers[MAX_PROVIDERS];
static size_t nproviders;

void
zc__metrics_init(const char *const *names, size_t nroutes)
{
	size_t k;

	start_ns = zc__now_ns();
	route_names[R_NONE] = "(unmatched)";
	route_names[R_HEALTH] = "(health)";
	route_names[R_METRICS] = "(metrics)";
	for (k = 0; k < nroutes && R_FIRST + k < ROUTE_SLOTS - 1; k++)
		route_names[R_FIRST + k] = names[k];
	if (R_FIRST + k == ROUTE_SLOTS - 1)
		route_names[ROUTE_SLOTS - 1] = "(other)";
}

int
zc__metrics_route_id(size_t k)
{
	return R_FIRST + k < ROUTE_SLOTS - 1 ? (int)(R_FIRST + k)
					     : ROUTE_SLOTS - 1;
}

int
zc__metrics_provider(void (*render)(struct zc_buf *, void *), void *arg)
{
	size_t i;

	for (i = 0; i < nproviders; i++)
		if (providers[i].render == render && providers[i].arg == arg)
			return 0; /* a second app in one process (tests) */
	if (nproviders == MAX_PROVIDERS)
		return -1;
	providers[nproviders].render = render;
	providers[nproviders].arg = arg;
	nproviders++;
	return 0;
}

void
zc__metrics_provider_remove(void (*render)(struct zc_buf *, void *), void *arg)
{
	size_t i;

	for (i = 0; i < nproviders; i++)
		if (providers[i].render == render && providers[i].arg == arg) {
			providers[i] = providers[--nproviders];
			return;
		}
}

static unsigned
method_id(const char *m)
{
	unsigned i;

	for (i = 0; i < NMETHODS - 1; i++)
		if (strcmp(m, methods[i]) == 0)
			return i;
	return NMETHODS - 1;
}

void
zc__metrics_request(int route_id, const char *method, int status, long long ns)
{
	unsigned key, h, i, want = 0;
	double s = (double)ns / 1e9;
	struct hist *hg;
	size_t b;

	if (route_id < 0 || route_id >= ROUTE_SLOTS)
		route_id = R_NONE;
	if (status < 100 || status > 599)
		status = 599;
	key = ((unsigned)route_id << 16) | (method_id(method) << 10) |
	      (unsigned)status;
	/* open addressing; a slot's key is written once, never changed */
	h = (key * 2654435761u) % REQ_SLOTS;
	for (i = 0; i < REQ_SLOTS; i++, h = (h + 1) % REQ_SLOTS) {
		unsigned cur = atomic_load(&req_table[h].key);
		if (cur == key)
			break;
		if (cur == 0) {
			want = 0;
			if (atomic_compare_exchange_strong(&req_table[h].key,
							   &want, key) ||
			    want == key)
				break;
		}
	}
	if (i < REQ_SLOTS)
		atomic_fetch_add(&req_table[h].count, 1);
	hg = &hists[route_id];
	for (b = 0; b < NBUCKETS && s > bounds[b]; b++)
		;
	if (b < NBUCKETS)
		atomic_fetch_add(&hg->buckets[b], 1);
	atomic_fetch_add(&hg->count, 1);
	atomic_fetch_add(&hg->sum_us, (unsigned long)(ns / 1000));
}

void
zc__metrics_shed(void)
{
	atomic_fetch_add(&shed_total, 1);
}

void
zc__buf_printf(struct zc_buf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (o->p == NULL)
			return;
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		char *np = realloc(o->p, o->cap * 2 + (size_t)n);
		if (np == NULL) {
			free(o->p);
			o->p = NULL;
			return;
		}
		o->p = np;
		o->cap = o->cap * 2 + (size_t)n;
	}
}

void
zc__metrics_label(struct zc_buf *o, const char *s)
{
	for (; s != NULL && *s; s++) {
		if (*s == '\\' || *s == '"')
			outf(o, "\\%c", *s);
		else if (*s == '\n')
			outf(o, "\\n");
		else
			outf(o, "%c", *s);
	}
}

static long
rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

char *
zc__metrics_render(size_t *len)
{
	struct zc_buf o = {malloc(8192), 0, 8192};
	size_t i, b;
	int r;

	outf(&o,
	     "# HELP zc_http_requests_total HTTP requests served, by route, "
	     "method and status.\n# TYPE zc_http_requests_total counter\n");
	for (i = 0; i < REQ_SLOTS; i++) {
		unsigned key = atomic_load(&req_table[i].key);
		if (key == 0)
			continue;
		outf(&o, "zc_http_requests_total{route=\"");
		label(&o, route_names[key >> 16]);
		outf(&o, "\",method=\"%s\",status=\"%u\"} %lu\n",
		     methods[(key >> 10) & 63], key & 1023,
		     atomic_load(&req_table[i].count));
	}
	outf(&o, "# HELP zc_http_request_duration_seconds Time from a "
		 "request's arrival to its response, by route.\n"
		 "# TYPE zc_http_request_duration_seconds histogram\n");
	for (r = 0; r < ROUTE_SLOTS; r++) {
		unsigned long cum = 0, count = atomic_load(&hists[r].count);
		if (count == 0 || route_names[r] == NULL)
			continue;
		for (b = 0; b < NBUCKETS; b++) {
			cum += atomic_load(&hists[r].buckets[b]);
			outf(&o, "zc_http_request_duration_seconds_bucket{"
				 "route=\"");
			label(&o, route_names[r]);
			outf(&o, "\",le=\"%g\"} %lu\n", bounds[b], cum);
		}
		outf(&o, "zc_http_request_duration_seconds_bucket{route=\"");
		label(&o, route_names[r]);
		outf(&o, "\",le=\"+Inf\"} %lu\n", count);
		outf(&o, "zc_http_request_duration_seconds_sum{route=\"");
		label(&o, route_names[r]);
		outf(&o, "\"} %.6f\n",
		     (double)atomic_load(&hists[r].sum_us) / 1e6);
		outf(&o, "zc_http_request_duration_seconds_count{route=\"");
		label(&o, route_names[r]);
		outf(&o, "\"} %lu\n", count);
	}
	outf(&o,
	     "# HELP zc_http_requests_shed_total Requests refused with 503 "
	     "over ZC_MAX_INFLIGHT.\n# TYPE zc_http_requests_shed_total "
	     "counter\nzc_http_requests_shed_total %lu\n",
	     atomic_load(&shed_total));
	for (i = 0; i < nproviders; i++)
		providers[i].render(&o, providers[i].arg);
	outf(&o,
	     "# HELP zc_process_uptime_seconds Seconds since start.\n"
	     "# TYPE zc_process_uptime_seconds gauge\n"
	     "zc_process_uptime_seconds %.3f\n"
	     "# HELP zc_process_resident_memory_bytes Resident set size.\n"
	     "# TYPE zc_process_resident_memory_bytes gauge\n"
	     "zc_process_resident_memory_bytes %ld\n",
	     (double)(zc__now_ns() - start_ns) / 1e9, rss_bytes());
	*len = o.len;
	return o.p;
}
