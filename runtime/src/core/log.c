/*
 * log.c - one line per message to stderr.  Text by default (for people);
 * LOG_FORMAT=json gives one JSON object per line (for log pipelines), with
 * the function's identity, the request's trace and span ids, and for
 * access lines the route, status and duration.
 *
 * Lines never interleave: each goes out whole in one write(2).  While a
 * thread serves a request, the lines it logs are held in that thread's
 * buffer and written together with the request's access line, in one
 * write, just before the response is queued: a request costs one log
 * write however many lines its handler logs, and a line is in the log
 * before the client hears the answer it describes (an audit record before
 * its "logged").  A held line never waits long: the buffer is written
 * before the handler makes an outbound call or sleeps, when it fills, when
 * its oldest line is older than HOLD_MAX_NS (the server's watchdog sweeps),
 * at exit, and from a fatal signal's handler.
 */
#include "core.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static zc_level log_min = ZC_LOG_INFO;
static char log_name[64] = "function";
static size_t log_name_len = 8;
static bool log_json;
static const char *log_revision;

/* what an access line adds */
struct access {
	const zc_req *req;
	int status;
	long long ns;
};

/* "INFO " and the rest, padded as %-5s would */
static const char *const level_pad[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

/* ---- held lines ---------------------------------------------------- */

#define HOLD_CAP 16384
/* A held line is written within this long even if its handler blocks on
 * something the runtime cannot see (a lock, a sleep, a disk). */
#define HOLD_MAX_NS (200 * 1000000LL)

struct hold {
	pthread_mutex_t mu;
	struct hold *prev, *next; /* every thread's buffer, for sweeps */
	long long since_ns;       /* when the oldest held line was logged */
	size_t len;
	bool on; /* this thread is serving a request */
	char buf[HOLD_CAP];
};

static _Thread_local struct hold *my_hold;
static pthread_mutex_t holds_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hold *holds;
static pthread_once_t hold_once = PTHREAD_ONCE_INIT;
static pthread_key_t hold_key;
static bool hold_key_ok;

/* The whole of buf, through partial writes and signals. */
static void
write_all(const char *buf, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(STDERR_FILENO, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* stderr is gone: nothing else to tell */
		buf += w;
		n -= (size_t)w;
	}
}

static void
flush_locked(struct hold *h)
{
	if (h->len > 0)
		write_all(h->buf, h->len);
	h->len = 0;
	h->since_ns = 0;
}

/* A thread that served requests is ending (thread-per-connection mode):
 * write what it holds and let its buffer go. */
static void
hold_destroy(void *p)
{
	struct hold *h = p;

	pthread_mutex_lock(&holds_mu);
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		holds = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&holds_mu);
	pthread_mutex_lock(&h->mu);
	flush_locked(h);
	pthread_mutex_unlock(&h->mu);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

static void
hold_key_init(void)
{
	hold_key_ok = pthread_key_create(&hold_key, hold_destroy) == 0;
}

/* This thread's buffer, made on first use; NULL when memory is short
 * (lines are then written one by one, as they come). */
static struct hold *
hold_get(void)
{
	struct hold *h = my_hold;

	if (h != NULL)
		return h;
	if (pthread_once(&hold_once, hold_key_init) != 0 || !hold_key_ok)
		return NULL;
	if ((h = malloc(sizeof(*h))) == NULL)
		return NULL;
	pthread_mutex_init(&h->mu, NULL);
	h->len = 0;
	h->since_ns = 0;
	h->on = false;
	h->prev = NULL;
	if (pthread_setspecific(hold_key, h) != 0) {
		pthread_mutex_destroy(&h->mu);
		free(h);
		return NULL;
	}
	pthread_mutex_lock(&holds_mu);
	h->next = holds;
	if (holds != NULL)
		holds->prev = h;
	holds = h;
	pthread_mutex_unlock(&holds_mu);
	my_hold = h;
	return h;
}

/* One finished line: held while this thread serves a request, else out. */
static void
emit(const char *line, size_t n)
{
	struct hold *h = my_hold;

	if (h == NULL || !h->on) {
		write_all(line, n);
		return;
	}
	pthread_mutex_lock(&h->mu);
	if (h->len + n > HOLD_CAP)
		flush_locked(h);
	if (n > HOLD_CAP) {
		write_all(line, n);
	} else {
		if (h->len == 0)
			h->since_ns = zc__now_ns();
		memcpy(h->buf + h->len, line, n);
		h->len += n;
	}
	pthread_mutex_unlock(&h->mu);
}

void
zc__log_hold(void)
{
	struct hold *h = hold_get();

	if (h != NULL)
		h->on = true;
}

void
zc__log_flush(void)
{
	struct hold *h = my_hold;

	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	flush_locked(h);
	pthread_mutex_unlock(&h->mu);
}

/*
 * A handler that waits on its loop leaves the thread to other requests:
 * what it logged so far is written now, and its lines are held again when
 * it resumes (they are then written with its access line, after these).
 */
bool
zc__log_detach(void)
{
	struct hold *h = my_hold;
	bool on;

	if (h == NULL)
		return false;
	pthread_mutex_lock(&h->mu);
	flush_locked(h);
	pthread_mutex_unlock(&h->mu);
	on = h->on;
	h->on = false;
	return on;
}

void
zc__log_attach(bool on)
{
	struct hold *h = my_hold;

	if (h != NULL)
		h->on = on;
}

/* Every thread's held lines (older than min_age_ns).  A buffer its owner
 * is appending to right now is skipped: its owner writes it soon. */
static void
sweep(long long min_age_ns)
{
	long long now = zc__now_ns();
	struct hold *h;

	pthread_mutex_lock(&holds_mu);
	for (h = holds; h != NULL; h = h->next) {
		if (pthread_mutex_trylock(&h->mu) != 0)
			continue;
		if (h->len > 0 && now - h->since_ns >= min_age_ns)
			flush_locked(h);
		pthread_mutex_unlock(&h->mu);
	}
	pthread_mutex_unlock(&holds_mu);
}

void
zc__log_sweep(void)
{
	sweep(HOLD_MAX_NS);
}

void
zc__log_flush_all(void)
{
	sweep(0);
}

/*
 * A crash must not take the lines that lead up to it: the crashing
 * thread's held lines are written (write(2) is async-signal-safe), then
 * the signal's earlier disposition is restored and the fault happens
 * again into it (the default action, or a sanitizer's report).
 */
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static struct sigaction
	fatal_old[sizeof(fatal_signals) / sizeof(fatal_signals[0])];

static void
on_fatal(int sig, siginfo_t *si, void *uctx)
{
	struct hold *h = my_hold;
	size_t i;

	(void)uctx;
	if (h != NULL && h->len > 0 && h->len <= HOLD_CAP) {
		write_all(h->buf, h->len);
		h->len = 0;
	}
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		if (fatal_signals[i] == sig)
			sigaction(sig, &fatal_old[i], NULL);
	/* sent (kill, raise, abort) rather than a fault that recurs */
	if (si == NULL || si->si_code <= 0)
		raise(sig);
}

static void
install_fatal_handlers(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESETHAND;
	for (i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaction(fatal_signals[i], &sa, &fatal_old[i]);
}

/* ---- formatting ---------------------------------------------------- */

void
zc__log_init(const char *name)
{
	const char *lvl = getenv("LOG_LEVEL");
	const char *fmt = getenv("LOG_FORMAT");
	static bool handlers;

	snprintf(log_name, sizeof(log_name), "%s", name);
	log_name_len = strlen(log_name);
	log_revision = getenv("K_REVISION");
	if (!handlers) {
		handlers = true;
		install_fatal_handlers();
	}
	if (fmt != NULL && strcasecmp(fmt, "json") == 0)
		log_json = true;
	else if (fmt != NULL && *fmt != '\0' && strcasecmp(fmt, "text") != 0)
		zc_warn("LOG_FORMAT=\"%.32s\" is not text or json; using text",
			fmt);
	if (lvl == NULL || *lvl == '\0')
		return;
	if (strcasecmp(lvl, "debug") == 0)
		log_min = ZC_LOG_DEBUG;
	else if (strcasecmp(lvl, "info") == 0)
		log_min = ZC_LOG_INFO;
	else if (strcasecmp(lvl, "warn") == 0 ||
		 strcasecmp(lvl, "warning") == 0)
		log_min = ZC_LOG_WARN;
	else if (strcasecmp(lvl, "error") == 0)
		log_min = ZC_LOG_ERROR;
	else
		zc_warn("LOG_LEVEL=\"%.32s\" is not debug, info, warn or "
			"error; using info",
			lvl);
}

/* "2026-11-27T20:22:43.123Z": 24 bytes, no NUL */
#define TIME_LEN 24

static void
format_time(char *buf)
{
	struct timespec ts;
	long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	zc__utc_seconds(ts.tv_sec, buf);
	ms = ts.tv_nsec / 1000000;
	buf[19] = '.';
	buf[20] = (char)('0' + ms / 100);
	buf[21] = (char)('0' + ms / 10 % 10);
	buf[22] = (char)('0' + ms % 10);
	buf[23] = 'Z';
}

/* Does msg need escaping (a control character)? */
static bool
has_controls(const char *msg, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			return true;
	return false;
}

/*
 * One message is one line: control characters in it (a newline in an
 * account name, say) are written as \n or \xHH, so request data can never
 * forge a log line of its own.  out has room for 4 * len bytes.
 */
static size_t
escape_controls(const char *msg, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c == '\n' || c == '\r' || c == '\t') {
			out[o++] = '\\';
			out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (c < 0x20 || c == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

/* A JSON string of s, with bytes that are not UTF-8 written as \xHH. */
static json_t *
safe_string(const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	json_t *v = json_stringn(s, n);
	char *t;
	size_t i, o = 0;

	if (v != NULL)
		return v;
	if ((t = malloc(n * 4 + 1)) == NULL)
		return json_string("(unprintable)");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			t[o++] = '\\';
			t[o++] = 'x';
			t[o++] = hex[c >> 4];
			t[o++] = hex[c & 15];
		} else {
			t[o++] = (char)c;
		}
	}
	v = json_stringn(t, o);
	free(t);
	return v;
}

/* One JSON object per line; NULL when memory is short (text then). */
static char *
json_line(zc_level level, const char *time, const zc_req *req,
	  const struct access *acc, const char *msg, size_t mn, size_t *len)
{
	static const char *const lv[] = {"debug", "info", "warn", "error"};
	json_t *o = json_object();
	char *out;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "time", json_string(time));
	json_object_set_new(o, "level", json_string(lv[level]));
	json_object_set_new(o, "msg", safe_string(msg, mn));
	json_object_set_new(o, "function", json_string(log_name));
	if (log_revision != NULL)
		json_object_set_new(
			o, "revision",
			safe_string(log_revision, strlen(log_revision)));
	if (req != NULL && zc__reqctx(req)->trace.trace_id[0] != '\0') {
		json_object_set_new(
			o, "trace_id",
			json_string(zc__reqctx(req)->trace.trace_id));
		json_object_set_new(
			o, "span_id",
			json_string(zc__reqctx(req)->trace.span_id));
	}
	if (acc != NULL) {
		if (zc__reqctx(acc->req)->route != NULL)
			json_object_set_new(
				o, "route",
				json_string(zc__reqctx(acc->req)->route));
		json_object_set_new(
			o, "method",
			safe_string(zc__reqctx(acc->req)->method,
				    strlen(zc__reqctx(acc->req)->method)));
		json_object_set_new(
			o, "path",
			safe_string(zc__reqctx(acc->req)->path,
				    strlen(zc__reqctx(acc->req)->path)));
		json_object_set_new(o, "status", json_integer(acc->status));
		json_object_set_new(o, "duration_ms",
				    json_real((double)acc->ns / 1e6));
	}
	out = zc__json_dump(o, len);
	json_decref(o);
	return out;
}

/* Room for a line's fixed parts: time, level, name, trace id, newline. */
#define HEAD_MAX (TIME_LEN + 8 + sizeof(log_name) + 2)
#define TAIL_MAX (10 + 32 + 1)

/*
 * The buffers lines are built in: per thread, not on the stack, because a
 * handler's stack is a fiber's, and every page a fiber touches stays
 * resident for each request in flight (12 KiB of them at 256 waiting
 * requests is 3 MiB).  Nothing between filling and writing one yields
 * or logs, so a thread's handlers never share one at the same time.
 */
static _Thread_local char linebuf[8192];
static _Thread_local char small[4096];

/*
 * Build and emit one line around a formatted message.  Short lines are
 * built in linebuf; a long one (a complete [UNDELIVERED] record with its
 * body) on the heap rather than cut, since a cut record is a lost one.
 */
static void
line_out(zc_level level, const zc_req *req, const struct access *acc,
	 const char *msg, size_t mn)
{
	char *line = linebuf, *p;
	const char *trace_id =
		req != NULL ? zc__reqctx(req)->trace.trace_id : NULL;
	size_t cap, tl;
	char time[TIME_LEN + 1];
	bool esc;

	format_time(time);
	if (log_json) {
		size_t jn;
		char *j;

		time[TIME_LEN] = '\0';
		j = json_line(level, time, req, acc, msg, mn, &jn);
		if (j != NULL) {
			j[jn++] = '\n'; /* the dump keeps room for it */
			emit(j, jn);
			free(j);
			return;
		}
	}
	/* every line is scanned once: the answer sizes it and picks the copy */
	esc = has_controls(msg, mn);
	cap = HEAD_MAX + (esc ? 4 * mn : mn) + TAIL_MAX;
	if (cap > sizeof(linebuf) && (line = malloc(cap)) == NULL) {
		line = linebuf; /* truncated beats nothing */
		mn = sizeof(linebuf) - HEAD_MAX - TAIL_MAX;
		mn /= 4;
	}
	p = line;
	memcpy(p, time, TIME_LEN);
	p += TIME_LEN;
	*p++ = ' ';
	memcpy(p, level_pad[level], 5);
	p += 5;
	*p++ = ' ';
	memcpy(p, log_name, log_name_len);
	p += log_name_len;
	*p++ = ':';
	*p++ = ' ';
	if (esc)
		p += escape_controls(msg, mn, p);
	else {
		memcpy(p, msg, mn);
		p += mn;
	}
	if (trace_id != NULL && (tl = strlen(trace_id)) > 0 && tl <= 32) {
		memcpy(p, " trace_id=", 10);
		p += 10;
		memcpy(p, trace_id, tl);
		p += tl;
	}
	*p++ = '\n';
	emit(line, (size_t)(p - line));
	if (line != linebuf)
		free(line);
}

static void
vlog_req(zc_level level, const zc_req *req, const char *fmt, va_list ap)
{
	char *msg = small;
	size_t mn;
	va_list ap2;
	int m;

	if (level < log_min || level > ZC_LOG_ERROR)
		return;
	va_copy(ap2, ap);
	m = vsnprintf(small, sizeof(small), fmt, ap);
	if (m < 0) {
		va_end(ap2);
		return;
	}
	mn = (size_t)m;
	if (mn >= sizeof(small)) {
		msg = malloc(mn + 1);
		if (msg != NULL)
			vsnprintf(msg, mn + 1, fmt, ap2);
		else {
			msg = small; /* truncated beats nothing */
			mn = sizeof(small) - 1;
		}
	}
	va_end(ap2);
	line_out(level, req, NULL, msg, mn);
	if (msg != small)
		free(msg);
}

/* Lines logged while serving a request carry its trace id. */
void
zc_vlog(zc_level level, const char *fmt, va_list ap)
{
	vlog_req(level, zc__current(), fmt, ap);
}

void
zc_log(zc_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zc_vlog(level, fmt, ap);
	va_end(ap);
}

static char *
put_str(char *p, const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	memcpy(p, s, n);
	return p + n;
}

/* Decimal of v >= 0 */
static char *
put_uint(char *p, unsigned long long v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/*
 * "access POST /log 200 0.123ms", built by hand: it is written for every
 * request, and vsnprintf was a third of the runtime's own cost per request.
 * The path is cut at 2 KiB (the line says what was asked, not all of it).
 */
static void
log_access(const zc_req *req, int status, long long ns)
{
	static _Thread_local char msg[2200]; /* off the fiber: see line_out */
	struct access acc = {req, status, ns};
	char *p = msg;
	unsigned long long us =
		ns > 0 ? ((unsigned long long)ns + 500) / 1000 : 0;

	if (ZC_LOG_INFO < log_min)
		return;
	memcpy(p, "access ", 7);
	p += 7;
	p = put_str(p, zc__reqctx(req)->method, 16);
	*p++ = ' ';
	p = put_str(p, zc__reqctx(req)->path, 2048);
	*p++ = ' ';
	p = put_uint(p, (unsigned)(status > 0 ? status : 0));
	*p++ = ' ';
	p = put_uint(p, us / 1000);
	*p++ = '.';
	*p++ = (char)('0' + us / 100 % 10);
	*p++ = (char)('0' + us / 10 % 10);
	*p++ = (char)('0' + us % 10);
	memcpy(p, "ms", 2);
	p += 2;
	line_out(ZC_LOG_INFO, req, &acc, msg, (size_t)(p - msg));
}

void
zc__log_release(const zc_req *req, int status, long long ns)
{
	struct hold *h = my_hold;

	/* kube-probe every few seconds would drown the access log */
	if (req != NULL && !zc__reqctx(req)->probe)
		log_access(req, status, ns);
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->on = false;
	flush_locked(h);
	pthread_mutex_unlock(&h->mu);
}
