/*
 * log.c - one line per message to stderr, written with a single write(2)
 * so lines from concurrent handler threads never interleave.  Text by
 * default (for people); LOG_FORMAT=json gives one JSON object per line
 * (for log pipelines), with the function's identity, the request's trace
 * and span ids, and for access lines the route, status and duration.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static zc_level log_min = ZC_LOG_INFO;
static char log_name[64] = "function";
static bool log_json;
static const char *log_revision;

/* what an access line adds */
struct access {
	const zc_req *req;
	int status;
	double ms;
};

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
zc__log_init(const char *name)
{
	const char *lvl = getenv("LOG_LEVEL");
	const char *fmt = getenv("LOG_FORMAT");

	snprintf(log_name, sizeof(log_name), "%s", name);
	log_revision = getenv("K_REVISION");
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

/* "2026-11-27T20:22:43.123Z" */
static size_t
format_time(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, size - n, ".%03ldZ",
			      ts.tv_nsec / 1000000);
	return n;
}

/*
 * One message is one line: control characters in it (a newline in an
 * account name, say) are written as \n or \xHH, so request data can never
 * forge a log line of its own.  Returns a malloc'd escaped copy of msg, or
 * NULL when msg needs no escaping (the common case) or memory is short.
 */
static char *
escape_controls(const char *msg, size_t len, size_t *outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	char *out;

	for (i = 0; i < len; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			break;
	if (i == len || (out = malloc(len * 4 + 1)) == NULL)
		return NULL;
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
	*outlen = o;
	return out;
}

/*
 * Format, escape and write one line.  Short lines use the stack; a long
 * one (a complete [UNDELIVERED] record with its body) is formatted on the
 * heap rather than cut, since a cut record is a lost one.
 */
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
		json_object_set_new(o, "revision", safe_string(log_revision,
							       strlen(log_revision)));
	if (req != NULL && req->trace.trace_id[0] != '\0') {
		json_object_set_new(o, "trace_id",
				    json_string(req->trace.trace_id));
		json_object_set_new(o, "span_id",
				    json_string(req->trace.span_id));
	}
	if (acc != NULL) {
		if (acc->req->route != NULL)
			json_object_set_new(o, "route",
					    json_string(acc->req->route));
		json_object_set_new(o, "method",
				    safe_string(acc->req->method,
						strlen(acc->req->method)));
		json_object_set_new(o, "path",
				    safe_string(acc->req->path,
						strlen(acc->req->path)));
		json_object_set_new(o, "status", json_integer(acc->status));
		json_object_set_new(o, "duration_ms", json_real(acc->ms));
	}
	out = zc__json_dump(o, len);
	json_decref(o);
	return out;
}

/*
 * Format, escape and write one line.  Short lines use the stack; a long
 * one (a complete [UNDELIVERED] record with its body) is formatted on the
 * heap rather than cut, since a cut record is a lost one.
 */
static void
vlog_req(zc_level level, const zc_req *req, const struct access *acc,
	 const char *fmt, va_list ap)
{
	char head[160], small[4096], *msg = small, *esc, *line;
	const char *trace_id = req != NULL ? req->trace.trace_id : NULL;
	size_t hn, mn, en, total;
	va_list ap2;
	int m;

	if (level < log_min || level > ZC_LOG_ERROR)
		return;
	hn = format_time(head, sizeof(head));
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
	if (log_json) {
		size_t jn;
		char *j;

		head[hn] = '\0';
		j = json_line(level, head, req, acc, msg, mn, &jn);
		if (j != NULL) {
			j[jn++] = '\n'; /* the dump keeps room for it */
			(void)!write(STDERR_FILENO, j, jn);
			free(j);
			if (msg != small)
				free(msg);
			return;
		}
	}
	m = snprintf(head + hn, sizeof(head) - hn, " %-5s %s: ",
		     level_names[level], log_name);
	if (m > 0)
		hn += (size_t)m;
	esc = escape_controls(msg, mn, &en);
	total = hn + (esc ? en : mn) + 64;
	line = total <= 8192 ? NULL : malloc(total);
	{
		char stackline[8192], *out = line ? line : stackline;
		size_t n = hn, cap = line ? total : sizeof(stackline);
		size_t body = esc ? en : mn;

		if (n + body + 50 > cap)
			body = cap - n - 50; /* only when malloc failed */
		memcpy(out, head, hn);
		memcpy(out + n, esc ? esc : msg, body);
		n += body;
		if (trace_id != NULL && trace_id[0] != '\0')
			n += (size_t)snprintf(out + n, cap - n, " trace_id=%s",
					      trace_id);
		out[n++] = '\n';
		(void)!write(STDERR_FILENO, out, n);
	}
	free(line);
	free(esc);
	if (msg != small)
		free(msg);
}

/* Lines logged while serving a request carry its trace id. */
void
zc_vlog(zc_level level, const char *fmt, va_list ap)
{
	vlog_req(level, zc__current(), NULL, fmt, ap);
}

void
zc_log(zc_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zc_vlog(level, fmt, ap);
	va_end(ap);
}

static void
log_access(const struct access *acc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
log_access(const struct access *acc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_req(ZC_LOG_INFO, acc->req, acc, fmt, ap);
	va_end(ap);
}

void
zc__log_access(const zc_req *req, int status, double ms)
{
	struct access acc = {req, status, ms};

	log_access(&acc, "access %s %s %d %.3fms", req->method, req->path,
		   status, ms);
}
