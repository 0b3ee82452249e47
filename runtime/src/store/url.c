/*
 * url.c - ZC_STORE_URL: which backend and where, checked at start-up
 * without connecting, so a typo stops the function at once instead of
 * failing its first request; and how to name it in logs without its
 * password.
 */
#include "backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Gives memory: databases distinct names within one process. */
static atomic_uint memory_seq;

static int
fail(char *err, size_t errsize, const char *url, const char *why)
{
	char *shown = zc__store_url_mask(url);

	snprintf(err, errsize, "ZC_STORE_URL=\"%.200s\": %s",
		 shown != NULL ? shown : "?", why);
	free(shown);
	return -1;
}

/* Replace s[from..to) with "***" in a malloc'd copy of s. */
static char *
splice_mask(const char *s, size_t from, size_t to)
{
	size_t len = strlen(s);
	char *out = malloc(len + 4);

	if (out == NULL)
		return NULL;
	memcpy(out, s, from);
	memcpy(out + from, "***", 3);
	memcpy(out + from + 3, s + to, len - to + 1);
	return out;
}

char *
zc__store_url_mask(const char *s)
{
	const char *auth, *end, *at, *colon, *q, *p;
	char *out, *next;

	if (s == NULL)
		return strdup("");
	out = strdup(s);
	if (out == NULL)
		return NULL;
	/* scheme://user:password@host... */
	if ((auth = strstr(out, "://")) != NULL) {
		auth += 3;
		end = auth + strcspn(auth, "/?#");
		for (at = NULL, p = auth; p < end; p++)
			if (*p == '@')
				at = p;
		colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth))
				   : NULL;
		if (colon != NULL) {
			next = splice_mask(out, (size_t)(colon + 1 - out),
					   (size_t)(at - out));
			free(out);
			if ((out = next) == NULL)
				return NULL;
		}
	}
	/* ...?password=secret&... (also a key=value conninfo) */
	for (q = out; (q = strstr(q, "password=")) != NULL;) {
		if (q != out && isalnum((unsigned char)q[-1])) {
			q++;
			continue;
		}
		q += strlen("password=");
		end = q + strcspn(q, "& ");
		if (end == q || (end - q == 3 && strncmp(q, "***", 3) == 0))
			continue;
		next = splice_mask(out, (size_t)(q - out), (size_t)(end - out));
		q = next != NULL ? next + (q - out) + 3 : NULL;
		free(out);
		if ((out = next) == NULL)
			return NULL;
	}
	return out;
}

static bool
is_hex(int c)
{
	return isxdigit((unsigned char)c) != 0;
}

/*
 * A libpq URI, checked for what would make libpq refuse it: control
 * characters or spaces, a bad %-escape, a port that is not a number, a
 * query parameter without '='.  libpq itself reads it at connect time.
 */
static const char *
check_pg_uri(const char *u)
{
	const char *rest = strstr(u, "://") + 3, *p, *end, *host, *query;

	for (p = u; *p != '\0'; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "contains a space or control character";
		if (*p == '%' && (!is_hex(p[1]) || !is_hex(p[2])))
			return "has a bad %-escape";
	}
	end = rest + strcspn(rest, "/?");
	/* the hosts follow the last '@' of the authority */
	host = rest;
	for (p = rest; p < end; p++)
		if (*p == '@')
			host = p + 1;
	while (host < end) {
		const char *comma = memchr(host, ',', (size_t)(end - host));
		const char *hend = comma != NULL ? comma : end;
		const char *port = NULL;

		if (*host == '[') {
			const char *rb =
				memchr(host, ']', (size_t)(hend - host));
			if (rb == NULL)
				return "has an unclosed [IPv6] host";
			if (rb + 1 < hend) {
				if (rb[1] != ':')
					return "has junk after an [IPv6] host";
				port = rb + 2;
			}
		} else {
			port = memchr(host, ':', (size_t)(hend - host));
			if (port != NULL)
				port++;
		}
		if (port != NULL) {
			long n = 0;
			if (port == hend)
				return "has an empty port";
			for (p = port; p < hend; p++) {
				if (!isdigit((unsigned char)*p))
					return "has a port that is not a "
					       "number";
				n = n * 10 + (*p - '0');
				if (n > 65535)
					return "has a port over 65535";
			}
		}
		host = comma != NULL ? comma + 1 : end;
	}
	query = strchr(end, '?');
	if (query != NULL) {
		for (p = query + 1; *p != '\0';) {
			size_t n = strcspn(p, "&");
			const char *eq = memchr(p, '=', n);
			if (eq == NULL || eq == p)
				return "has a query parameter without "
				       "key=value";
			p += n;
			if (*p == '&')
				p++;
		}
	}
	return NULL;
}

/* name made safe as a file name: [A-Za-z0-9._-], others as '_'. */
static void
file_name(char *out, size_t size, const char *name)
{
	size_t i;

	if (name == NULL || *name == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		name = "zenith-c";
	for (i = 0; i + 1 < size && name[i] != '\0'; i++)
		out[i] = isalnum((unsigned char)name[i]) || name[i] == '.' ||
					 name[i] == '-' || name[i] == '_'
				 ? name[i]
				 : '_';
	out[i] = '\0';
}

static bool
under(const char *path, const char *dir)
{
	size_t n;

	if (dir == NULL || *dir != '/')
		return false;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* State under /tmp, $TMPDIR or /dev/shm is gone when the pod goes. */
static bool
ephemeral_path(const char *path)
{
	return under(path, "/tmp") || under(path, getenv("TMPDIR")) ||
	       under(path, "/dev/shm");
}

static int
set_strings(struct zc_store_url *out, char *target, const char *display)
{
	out->target = target;
	out->display = zc__store_url_mask(display);
	if (out->target == NULL || out->display == NULL) {
		zc__store_url_free(out);
		return -1;
	}
	return 0;
}

/* Unset or empty: a file named for the function under $TMPDIR or /tmp. */
static int
parse_default(const char *name, struct zc_store_url *out, char *err,
	      size_t errsize)
{
	char fname[128], *path, *shown;
	const char *dir = getenv("TMPDIR");
	size_t plen;
	int rc;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	file_name(fname, sizeof(fname), name);
	plen = strlen(dir) + strlen(fname) + 5;
	if ((path = malloc(plen)) == NULL)
		return fail(err, errsize, "", "out of memory");
	snprintf(path, plen, "%s%s%s.db", dir,
		 dir[strlen(dir) - 1] == '/' ? "" : "/", fname);
	if ((shown = malloc(plen + 7)) == NULL) {
		free(path);
		return fail(err, errsize, "", "out of memory");
	}
	snprintf(shown, plen + 7, "sqlite:%s", path);
	out->kind = ZC_STORE_SQLITE;
	out->ephemeral = true; /* $TMPDIR or /tmp, by definition */
	rc = set_strings(out, path, shown);
	free(shown);
	return rc == 0 ? 0 : fail(err, errsize, "", "out of memory");
}

static int
parse_sqlite(const char *url, struct zc_store_url *out, char *err,
	     size_t errsize)
{
	const char *p = url + strlen("sqlite:"), *c;

	/* sqlite:///abs/path is sqlite:/abs/path */
	if (strncmp(p, "//", 2) == 0) {
		if (p[2] != '/')
			return fail(err, errsize, url,
				    "write sqlite:PATH or "
				    "sqlite:///ABSOLUTE/PATH");
		p += 2;
	}
	if (*p == '\0')
		return fail(err, errsize, url,
			    "sqlite: needs a file path, e.g. "
			    "sqlite:/data/state.db");
	for (c = p; *c != '\0'; c++)
		if ((unsigned char)*c < ' ')
			return fail(err, errsize, url,
				    "the path contains a control character");
	out->kind = ZC_STORE_SQLITE;
	out->ephemeral = ephemeral_path(p);
	if (set_strings(out, strdup(p), url) != 0)
		return fail(err, errsize, url, "out of memory");
	return 0;
}

/*
 * An in-memory database shared by every connection of this process,
 * and only it: a name no other process or configuration uses.  SQLite's
 * memdb VFS (a name starting with "/" is shared within the process), not
 * mode=memory&cache=shared: with the shared cache every COMMIT walks the
 * whole page cache's hash table, so a store that keeps every record got
 * slower as it grew (audit-logger's POST /log fell from 12k to 3.4k
 * requests/s at 75 MiB).  bench/memstore.c: 10.9 -> 31.4 us per
 * single-row transaction over 600k rows, memdb 14-15 throughout.
 */
static int
parse_memory(const char *url, struct zc_store_url *out, char *err,
	     size_t errsize)
{
	char uri[96];

	snprintf(uri, sizeof(uri), "file:/zc-%ld-%u?vfs=memdb",
		 (long)getpid(), atomic_fetch_add(&memory_seq, 1));
	out->kind = ZC_STORE_MEMORY;
	out->ephemeral = true;
	if (set_strings(out, strdup(uri), url) != 0)
		return fail(err, errsize, url, "out of memory");
	return 0;
}

int
zc__store_url_parse(const char *url, const char *name, struct zc_store_url *out,
		    char *err, size_t errsize)
{
	const char *why;

	memset(out, 0, sizeof(*out));
	snprintf(out->appname, sizeof(out->appname), "%s",
		 name != NULL && *name != '\0' ? name : "zenith-c");
	if (url == NULL || *url == '\0')
		return parse_default(name, out, err, errsize);
	if (strncmp(url, "postgres://", 11) == 0 ||
	    strncmp(url, "postgresql://", 13) == 0) {
		if ((why = check_pg_uri(url)) != NULL)
			return fail(err, errsize, url, why);
		out->kind = ZC_STORE_POSTGRES;
		if (set_strings(out, strdup(url), url) != 0)
			return fail(err, errsize, url, "out of memory");
		return 0;
	}
	if (strncmp(url, "sqlite:", 7) == 0)
		return parse_sqlite(url, out, err, errsize);
	if (strcmp(url, "memory:") == 0)
		return parse_memory(url, out, err, errsize);
	if (strncmp(url, "memory:", 7) == 0)
		return fail(err, errsize, url,
			    "memory: takes nothing after the colon");
	return fail(err, errsize, url,
		    "unknown kind of store; expected postgres://..., "
		    "postgresql://..., sqlite:PATH or memory:");
}

void
zc__store_url_free(struct zc_store_url *u)
{
	if (u == NULL)
		return;
	free(u->target);
	free(u->display);
	u->target = u->display = NULL;
	u->kind = ZC_STORE_NONE;
}
