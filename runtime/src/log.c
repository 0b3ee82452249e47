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

void
zc_vlog(zc_level level, const char *fmt, va_list ap)
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
	n += (size_t)m;
	/* A truncated message still ends in a newline. */
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

void
zc_log(zc_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	zc_vlog(level, fmt, ap);
	va_end(ap);
}

void
zc__log_access(const zc_req *req, int status, double ms)
{
	zc_log(ZC_LOG_INFO, "access %s %s %d %.3fms", req->method, req->path,
	       status, ms);
}
