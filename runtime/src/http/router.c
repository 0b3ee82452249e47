/*
 * router.c - method + path routing with {param} segments.  Routes are few
 * (a function has a handful), so a linear scan over pre-split patterns is
 * both the simplest and the fastest structure here.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
zc__split_path(char *path, char **segs)
{
	int n = 0;
	char *p = path;

	if (*p == '\0')
		return 0; /* "/" has no segments */
	for (;;) {
		if (n == ZC_MAX_SEGS)
			return -1;
		segs[n++] = p;
		p = strchr(p, '/');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

static int
valid_method(const char *m)
{
	size_t i, n = strlen(m);

	if (n == 0 || n >= 16)
		return 0;
	for (i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return 0;
	return 1;
}

static int
valid_param_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

/* Same shape: same length and the same literal/param layout and literals. */
static int
same_shape(const struct zc_route *a, const struct zc_route *b)
{
	int i;

	if (a->nsegs != b->nsegs)
		return 0;
	for (i = 0; i < a->nsegs; i++) {
		if (a->is_param[i] != b->is_param[i])
			return 0;
		if (!a->is_param[i] && strcmp(a->segs[i], b->segs[i]) != 0)
			return 0;
	}
	return 1;
}

static zc_err add_route(zc_app *app, const char *method, const char *pattern,
			zc_handler handler, void *arg, unsigned flags);

zc_err
zc_route(zc_app *app, const char *method, const char *pattern,
	 zc_handler handler, void *arg)
{
	return add_route(app, method, pattern, handler, arg, 0);
}

zc_err
zc_route_with(zc_app *app, const char *method, const char *pattern,
	      zc_handler handler, void *arg, const zc_route_opts *opts)
{
	unsigned flags = opts != NULL ? opts->flags : 0;

	if (opts != NULL &&
	    ((flags &
	      ~(unsigned)(ZC_ROUTE_IDEMPOTENT | ZC_ROUTE_TRANSACTIONAL)) != 0 ||
	     opts->event_type != NULL)) {
		zc_error("zc_route_with: \"%s %s\": only ZC_ROUTE_IDEMPOTENT "
			 "and ZC_ROUTE_TRANSACTIONAL apply to an HTTP route "
			 "(event options belong to zc_event_route)",
			 method ? method : "(null)",
			 pattern ? pattern : "(null)");
		return ZC_ERR_INVALID;
	}
	return zc__route_add(app, method, pattern, handler, arg, flags);
}

zc_err
zc__route_add(zc_app *app, const char *method, const char *pattern,
	      zc_handler handler, void *arg, unsigned flags)
{
	if ((flags & ZC_ROUTE_IDEMPOTENT) && app != NULL && app->idem == NULL) {
		app->idem = zc__idem_new(app->cfg.idem_max_keys,
					 app->cfg.idem_ttl_s);
		if (app->idem == NULL)
			return ZC_ERR_NOMEM;
	}
	if ((flags & ZC_ROUTE_TRANSACTIONAL) && app != NULL)
		app->uses_store = true;
	return add_route(app, method, pattern, handler, arg, flags);
}

const char **
zc__route_names(const zc_app *app)
{
	const char **names = calloc(app->nroutes + 1, sizeof(*names));
	size_t k;

	for (k = 0; names != NULL && k < app->nroutes; k++)
		names[k] = app->routes[k].pattern;
	return names;
}

static zc_err
add_route(zc_app *app, const char *method, const char *pattern,
	  zc_handler handler, void *arg, unsigned flags)
{
	struct zc_route r;
	char *copy;
	int i, nparams = 0;
	size_t k;

	if (app == NULL || method == NULL || pattern == NULL ||
	    handler == NULL || !valid_method(method) || pattern[0] != '/' ||
	    strpbrk(pattern, "?# \t\r\n") != NULL) {
		zc_error("zc_route: invalid method or pattern \"%s %s\"",
			 method ? method : "(null)",
			 pattern ? pattern : "(null)");
		return ZC_ERR_INVALID;
	}
	memset(&r, 0, sizeof(r));
	snprintf(r.method, sizeof(r.method), "%s", method);
	r.handler = handler;
	r.arg = arg;
	r.idempotent = (flags & ZC_ROUTE_IDEMPOTENT) != 0;
	r.transactional = (flags & ZC_ROUTE_TRANSACTIONAL) != 0;
	r.pattern = strdup(pattern);
	copy = strdup(pattern + 1);
	if (r.pattern == NULL || copy == NULL) {
		free(r.pattern);
		free(copy);
		return ZC_ERR_NOMEM;
	}
	r.nsegs = zc__split_path(copy, r.segs);
	if (r.nsegs < 0)
		goto bad;
	for (i = 0; i < r.nsegs; i++) {
		size_t n = strlen(r.segs[i]);
		if (n >= 2 && r.segs[i][0] == '{' && r.segs[i][n - 1] == '}') {
			if (!valid_param_name(r.segs[i] + 1, n - 2) ||
			    ++nparams > ZC_MAX_PARAMS)
				goto bad;
			r.segs[i][n - 1] = '\0';
			r.segs[i]++;
			r.is_param[i] = true;
		} else if (strpbrk(r.segs[i], "{}") != NULL ||
			   (n == 0 && i != r.nsegs - 1)) {
			goto bad; /* braces inside a segment, or "//" */
		} else {
			r.literals++;
		}
	}
	for (k = 0; k < app->nroutes; k++) {
		if (strcmp(app->routes[k].method, method) == 0 &&
		    same_shape(&app->routes[k], &r)) {
			zc_error("zc_route: \"%s %s\" is already registered as "
				 "\"%s\"",
				 method, pattern, app->routes[k].pattern);
			goto fail;
		}
	}
	if (app->nroutes == app->caproutes) {
		size_t cap = app->caproutes ? app->caproutes * 2 : 8;
		struct zc_route *nr =
			realloc(app->routes, cap * sizeof(*app->routes));
		if (nr == NULL) {
			free(r.pattern);
			free(copy);
			return ZC_ERR_NOMEM;
		}
		app->routes = nr;
		app->caproutes = cap;
	}
	/* segs point into copy; remember it through segs[0] (or keep it). */
	if (r.nsegs == 0)
		free(copy);
	app->routes[app->nroutes++] = r;
	return ZC_OK;
bad:
	zc_error("zc_route: malformed pattern \"%s\"", pattern);
fail:
	free(r.pattern);
	free(copy);
	return ZC_ERR_INVALID;
}

void
zc__router_free(zc_app *app)
{
	size_t k;

	for (k = 0; k < app->nroutes; k++) {
		struct zc_route *r = &app->routes[k];
		if (r->nsegs > 0) {
			/* segs[0] may have been advanced past '{'. */
			char *base =
				r->is_param[0] ? r->segs[0] - 1 : r->segs[0];
			free(base);
		}
		free(r->pattern);
	}
	free(app->routes);
	app->routes = NULL;
	app->nroutes = app->caproutes = 0;
}

static int
matches(const struct zc_route *r, char **segs, int nsegs)
{
	int i;

	if (r->nsegs != nsegs)
		return 0;
	for (i = 0; i < nsegs; i++) {
		if (r->is_param[i]) {
			if (segs[i][0] == '\0')
				return 0; /* a parameter is never empty */
		} else if (strcmp(r->segs[i], segs[i]) != 0) {
			return 0;
		}
	}
	return 1;
}

static void
allow_add(char *allow, size_t allowsz, const char *m)
{
	size_t n = strlen(allow), ml = strlen(m);
	const char *p = allow;

	/* skip duplicates */
	while ((p = strstr(p, m)) != NULL) {
		if ((p == allow || p[-1] == ' ') &&
		    (p[ml] == ',' || p[ml] == '\0'))
			return;
		p += ml;
	}
	if (n + ml + 3 > allowsz)
		return;
	if (n > 0) {
		memcpy(allow + n, ", ", 2);
		n += 2;
	}
	memcpy(allow + n, m, ml + 1);
}

const struct zc_route *
zc__router_match(const zc_app *app, const char *method, char **segs, int nsegs,
		 bool *path_known, char *allow, size_t allowsz)
{
	const struct zc_route *best = NULL;
	bool head = strcmp(method, "HEAD") == 0;
	size_t k;

	*path_known = false;
	if (allowsz > 0)
		allow[0] = '\0';
	for (k = 0; k < app->nroutes; k++) {
		const struct zc_route *r = &app->routes[k];
		if (!matches(r, segs, nsegs))
			continue;
		*path_known = true;
		allow_add(allow, allowsz, r->method);
		if (strcmp(r->method, "GET") == 0)
			allow_add(allow, allowsz, "HEAD");
		if (strcmp(r->method, method) == 0 ||
		    (head && strcmp(r->method, "GET") == 0)) {
			/* An explicit HEAD route beats GET's implicit one. */
			if (best == NULL || r->literals > best->literals ||
			    (r->literals == best->literals && head &&
			     strcmp(r->method, "HEAD") == 0 &&
			     strcmp(best->method, "GET") == 0))
				best = r;
		}
	}
	if (*path_known)
		allow_add(allow, allowsz, "OPTIONS");
	return best;
}
