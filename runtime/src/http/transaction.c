/*
 * transaction.c - a transactional route's handler inside one store
 * transaction: begun by the runtime, committed when the handler answers
 * 2xx, rolled back otherwise, and run again from the start when the store
 * reports a lost race (a serialization failure or a deadlock).
 */
#include "http.h"

#include <stdio.h>

struct tx_run {
	zc_req *req;
	zc_res *res;
	const struct zc_route *route;
	int rc;   /* the handler's return, last run */
	int runs; /* how often the handler ran */
};

static int
in_tx(zc_tx *tx, void *arg)
{
	struct tx_run *r = arg;

	/* a re-run starts from nothing: the last run's answer is void */
	zc__res_reset(r->res);
	r->req->tx = tx;
	r->runs++;
	r->rc = r->route->handler(r->req, r->res, r->route->arg);
	r->req->tx = NULL;
	if (r->rc == 0 && r->res->status == 0)
		r->res->status = r->res->body != NULL ? 200 : 204;
	return r->rc == 0 && r->res->status >= 200 && r->res->status < 300 ? 0
									   : 1;
}

void
zc__res_store_error(zc_res *res, zc_err err, bool unknown)
{
	zc__res_reset(res);
	if (unknown)
		zc_res_error(res, 503,
			     "the store connection was lost while committing: "
			     "the outcome is unknown; retry with the same "
			     "Idempotency-Key");
	else if (err == ZC_ERR_CONFLICT)
		zc_res_error(res, 503,
			     "the store transaction kept conflicting with "
			     "concurrent ones; retry later");
	else
		zc_res_error(res, 503, "the store is unavailable: %s",
			     zc_strerror(err));
	zc_res_header(res, "Retry-After", "1");
}

int
zc__run_in_tx(zc_req *req, zc_res *res, const struct zc_route *route)
{
	struct tx_run r = {req, res, route, 0, 0};
	int decided = 0;
	zc_err err;

	err = zc__store_run(in_tx, &r, &decided);
	if (r.runs > 1)
		zc_info("%s %s ran %d times: the store reported conflicts",
			req->ctx.method, route->pattern, r.runs);
	if (err == ZC_OK)
		return r.rc;
	/* the handler's answer never reached the store: say so instead */
	zc_warn("%s %s: store transaction failed: %s", req->ctx.method,
		route->pattern, zc_strerror(err));
	zc__res_store_error(res, err, false);
	return 0;
}

zc_tx *
zc_req_tx(zc_req *req)
{
	return req != NULL ? req->tx : NULL;
}

zc_err
zc_store_schema(zc_app *app, const char *name, int version, const char *ddl)
{
	zc_err err;

	if (app == NULL)
		return ZC_ERR_INVALID;
	if ((err = zc__store_schema_add(name, version, ddl)) == ZC_OK)
		app->uses_store = true;
	return err;
}

zc_err
zc_store_run(zc_app *app, int (*fn)(zc_tx *tx, void *arg), void *arg)
{
	int rc = 0;
	zc_err err;

	if (app == NULL || fn == NULL)
		return ZC_ERR_INVALID;
	if (!zc__store_configured()) {
		zc_error("zc_store_run: no store: declare a schema "
			 "(zc_store_schema) or a transactional route in "
			 "zc_function_setup");
		return ZC_ERR_INVALID;
	}
	if ((err = zc__store_run(fn, arg, &rc)) != ZC_OK)
		return err;
	return rc == 0 ? ZC_OK : ZC_ERR_STORE;
}
