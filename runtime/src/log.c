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
 * forge a log line of its own.  Escapes the len bytes at line + start in
 * place, within size; returns the new end.
 */
static size_t
escape_controls(char *line, size_t start, size_t len, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[4096];
	size_t i, o = 0, room = size - start - 1;

	for (i = 0; i < len; i++)
		if ((unsigned char)line[start + i] < 0x20 ||
		    line[start + i] == 0x7f)
			break;
	if (i == len)
		return start + len; /* the common case: nothing to do */
	for (i = 0; i < len && o < sizeof(tmp) - 4 && o < room - 4; i++) {
		unsigned char c = (unsigned char)line[start + i];
		if (c == '\n') {
			tmp[o++] = '\\';
			tmp[o++] = 'n';
		} else if (c == '\r') {
			tmp[o++] = '\\';
			tmp[o++] = 'r';
		} else if (c == '\t') {
			tmp[o++] = '\\';
			tmp[o++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			tmp[o++] = '\\';
			tmp[o++] = 'x';
			tmp[o++] = hex[c >> 4];
			tmp[o++] = hex[c & 15];
		} else {
			tmp[o++] = (char)c;
		}
	}
	memcpy(line + start, tmp, o);
	return start + o;
}

static void
vlog_trace(zc_level level, const char *trace_id, const char *fmt, va_list ap)
{
	char line[4096];
	size_t n;
	int m;

	if (level < log_min || level > ZC_LOG_ERROR)
		return;
	n = format_time(line, sizeof(line));
	m = snprintf(line + n, sizeof(line) - n, " %-5s %s: ",
		     level_names[level], log_name);
	if (m > 0)
		n += (size_t)m;
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= sizeof(line) - n)
		m = (int)(sizeof(line) - n - 1);
	n = escape_controls(line, n, (size_t)m, sizeof(line));
	if (n < sizeof(line) && trace_id != NULL && trace_id[0] != '\0') {
		m = snprintf(line + n, sizeof(line) - n, " trace_id=%s",
			     trace_id);
		if (m > 0)
			n += (size_t)m;
	}
	/* A truncated message still ends in a newline. */
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
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
