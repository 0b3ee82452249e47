/*
 * log.c - one line per message to stderr, written with a single write(2)
 * so lines from concurrent handler threads never interleave.
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

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void
zc__log_init(const char *name)
{
	const char *lvl = getenv("LOG_LEVEL");

	snprintf(log_name, sizeof(log_name), "%s", name);
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
static void
vlog_trace(zc_level level, const char *trace_id, const char *fmt, va_list ap)
{
	char head[160], small[4096], *msg = small, *esc, *line;
	size_t hn, mn, en, total;
	va_list ap2;
	int m;

	if (level < log_min || level > ZC_LOG_ERROR)
		return;
	hn = format_time(head, sizeof(head));
	m = snprintf(head + hn, sizeof(head) - hn, " %-5s %s: ",
		     level_names[level], log_name);
	if (m > 0)
		hn += (size_t)m;
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
	zc_req *cur = zc__current();

	vlog_trace(level, cur != NULL ? cur->trace.trace_id : NULL, fmt, ap);
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
log_trace(zc_level level, const char *trace_id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_trace(level, trace_id, fmt, ap);
	va_end(ap);
}

void
zc__log_access(const zc_req *req, int status, double ms)
{
	log_trace(ZC_LOG_INFO, req->trace.trace_id, "access %s %s %d %.3fms",
		  req->method, req->path, status, ms);
}
