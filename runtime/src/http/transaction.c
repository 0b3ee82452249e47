/*
 * transaction.c - running a handler with what its route asked for: one
 * store transaction (begun by the runtime, committed when the handler
 * answers 2xx, rolled back otherwise, run again from the start after a
 * lost race) and an idempotency key applied once, in this process (the
 * in-process table, with memory: or no store) or across replicas (the
 * store's records).  HTTP routes (dispatch.c) and event routes (events/)
 * both come through here.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A two-phase claim outlives the handler's deadline by this much. */
#define CLAIM_MARGIN_MS 10000LL

/* One run in a transaction: zc__store_run's callback and its results. */
struct tx_run {
	zc_req *req;
	zc_res *res;
	struct zc_guard *g;
	const struct zc_rec *rec; /* durable records: checked and put here */
	int outcome;              /* ZC_IDEM_* */
	struct zc_answer replay;
	int runs;
};

static bool
commits(int rc, const zc_res *res)
{
	return rc == 0 &&
	       (res->status == 0 || (res->status >= 200 && res->status < 300));
}

/* The answer to keep, and its buffer; -1 when there is none. */
static int
keep(struct zc_guard *g, const zc_res *res, struct zc_answer *ans, char **hold)
{
	*hold = NULL;
	return g->keep(res, ans, hold, g->arg);
}

static int
in_tx(zc_tx *tx, void *arg)
{
	struct tx_run *r = arg;
	struct zc_answer ans;
	char *hold;
	zc_err err;

	/* a re-run starts from nothing: the last run's answer is void */
	zc__res_reset(r->res);
	free(r->replay.body);
	memset(&r->replay, 0, sizeof(r->replay));
	r->g->rc = 0;
	r->outcome = ZC_IDEM_PROCEED;
	zc__store_tx_enter(tx);
	if (r->rec != NULL &&
	    (r->outcome = zc__rec_check(tx, r->rec, &r->replay)) !=
		    ZC_IDEM_PROCEED) {
		zc__store_tx_leave();
		return 1;
	}
	r->req->tx = tx;
	r->runs++;
	r->g->rc = r->g->run(r->req, r->res, r->g->arg);
	r->req->tx = NULL;
	zc__store_tx_leave();
	if (!commits(r->g->rc, r->res))
		return 1;
	if (r->rec == NULL || zc__store_tx_conflict(tx))
		return 0; /* (a conflict: the commit fails, run again) */
	/* the record commits with what the handler wrote, or neither */
	if (keep(r->g, r->res, &ans, &hold) != 0) {
		r->outcome = ZC_IDEM_UNAVAILABLE;
		return 1;
	}
	err = zc__rec_put(tx, r->rec, &ans);
	free(hold);
	if (err != ZC_OK) {
		r->outcome = ZC_IDEM_UNAVAILABLE;
		return 1;
	}
	return 0;
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

static const char *
what(const zc_req *req)
{
	return req->ctx.route != NULL ? req->ctx.route : req->ctx.path;
}

/*
 * The handler in a transaction, with rec's record checked and written in
 * it when rec is not NULL.  Returns a ZC_IDEM_* outcome as
 * zc__guarded_run; a 4xx (whose writes rolled back) is kept by the
 * caller.
 */
static int
tx_run(zc_req *req, zc_res *res, struct zc_guard *g, const struct zc_rec *rec,
       bool *committed)
{
	struct tx_run r = {req, res, g, rec, ZC_IDEM_PROCEED, {0}, 0};
	int decided = 1;
	zc_err err;

	*committed = false;
	err = zc__store_run(in_tx, &r, &decided);
	if (r.runs > 1)
		zc_info("%s %s ran %d times: the store reported conflicts",
			req->ctx.method, what(req), r.runs);
	if (err != ZC_OK || r.outcome == ZC_IDEM_UNAVAILABLE) {
		/* the handler's answer never reached the store: say so */
		zc_warn("%s %s: store transaction failed: %s", req->ctx.method,
			what(req),
			zc_strerror(err != ZC_OK ? err : ZC_ERR_STORE));
		zc__store_tx_after(false);
		free(r.replay.body);
		g->rc = 0;
		zc__res_store_error(res, err != ZC_OK ? err : ZC_ERR_STORE,
				    false);
		return ZC_IDEM_UNAVAILABLE;
	}
	*committed = r.outcome == ZC_IDEM_PROCEED && decided == 0;
	zc__store_tx_after(*committed);
	if (r.outcome == ZC_IDEM_REPLAY)
		zc__res_from_answer(res, &r.replay);
	return r.outcome;
}

/* The handler, in a transaction when its route has one; no key. */
static int
plain_run(zc_req *req, zc_res *res, struct zc_guard *g)
{
	bool committed;

	if (g->transactional)
		return tx_run(req, res, g, NULL, &committed);
	g->rc = g->run(req, res, g->arg);
	return ZC_IDEM_PROCEED;
}

/* The key in this process only: the in-process table. */
static int
local_run(zc_req *req, zc_res *res, struct zc_guard *g)
{
	struct zc_idem *t = req->app->idem;
	struct zc_idem_ticket ticket;
	struct zc_answer ans;
	char *hold;
	int rc, out;

	rc = zc__idem_begin(t, g->scope, g->key, g->payload, g->len, &ans,
			    &ticket);
	if (rc == ZC_IDEM_REPLAY)
		zc__res_from_answer(res, &ans);
	if (rc != ZC_IDEM_PROCEED && rc != ZC_IDEM_PROCEED_UNTRACKED)
		return rc;
	out = plain_run(req, res, g);
	if (rc != ZC_IDEM_PROCEED)
		return out;
	/*
	 * Kept before a late answer becomes a 504: the work was done, and
	 * a retry must get its result rather than do it again.
	 */
	if (g->rc == 0 && keep(g, res, &ans, &hold) == 0) {
		zc__idem_finish(t, &ticket, &ans);
		free(hold);
	} else {
		zc__idem_finish_failed(t, &ticket);
	}
	return out;
}

/* Keep a 4xx whose handler's writes rolled back, in a transaction of
 * its own, so a retry gets it again. */
static void
store_refusal(zc_req *req, const zc_res *res, struct zc_guard *g,
	      const struct zc_rec *rec)
{
	struct zc_answer ans;
	char *hold;

	if (g->rc != 0 || res->status >= 500 || keep(g, res, &ans, &hold) != 0)
		return;
	if (zc__rec_store(rec, &ans) != ZC_OK)
		zc_warn("%s %s: the answer %d could not be kept for its "
			"Idempotency-Key; a retry runs again",
			req->ctx.method, what(req), res->status);
	free(hold);
}

/* Two phases around a handler whose effect is outside the store. */
static int
claimed_run(zc_req *req, zc_res *res, struct zc_guard *g,
	    const struct zc_rec *rec)
{
	struct zc_answer ans;
	char *hold;
	int rc;
	zc_err err;

	rc = zc__rec_claim(rec, &ans);
	if (rc == ZC_IDEM_REPLAY)
		zc__res_from_answer(res, &ans);
	if (rc == ZC_IDEM_UNAVAILABLE)
		zc__res_store_error(res, ZC_ERR_STORE, false);
	if (rc != ZC_IDEM_PROCEED)
		return rc;
	g->rc = g->run(req, res, g->arg);
	if (g->rc == 0 && keep(g, res, &ans, &hold) == 0) {
		err = zc__rec_finish(rec, &ans);
		free(hold);
	} else {
		err = zc__rec_finish(rec, NULL);
	}
	if (err != ZC_OK)
		zc_warn("%s %s: the idempotency record could not be "
			"finished (%s); the key stays claimed until its "
			"lease ends",
			req->ctx.method, what(req), zc_strerror(err));
	return ZC_IDEM_PROCEED;
}

/* The key across replicas: the store's records.  The in-process table
 * still marks the key while it runs here, so a duplicate in this
 * process gets 409 at once instead of queueing for the store. */
static int
durable_run(zc_req *req, zc_res *res, struct zc_guard *g)
{
	zc_app *app = req->app;
	struct zc_idem_ticket ticket;
	struct zc_answer none;
	struct zc_rec rec;
	bool marked = false, committed;
	int rc = ZC_IDEM_PROCEED_UNTRACKED;

	if (app->idem != NULL)
		rc = zc__idem_begin(app->idem, g->scope, g->key, g->payload,
				    g->len, &none, &ticket);
	if (rc == ZC_IDEM_REPLAY) /* never kept here; be safe */
		free(none.body);
	else if (rc != ZC_IDEM_PROCEED && rc != ZC_IDEM_PROCEED_UNTRACKED)
		return rc;
	marked = rc == ZC_IDEM_PROCEED;
	if (zc__rec_init(&rec, g->scope, g->key, g->payload, g->len,
			 app->cfg.idem_ttl_s,
			 app->cfg.handler_timeout_ms + CLAIM_MARGIN_MS) !=
	    ZC_OK) {
		rc = plain_run(req, res, g);
		goto done;
	}
	if (g->transactional) {
		zc__rec_sweep(app->cfg.idem_ttl_s);
		rc = tx_run(req, res, g, &rec, &committed);
		if (rc == ZC_IDEM_PROCEED && !committed)
			store_refusal(req, res, g, &rec);
	} else {
		rc = claimed_run(req, res, g, &rec);
	}
	zc__rec_release(&rec);
done:
	if (marked)
		zc__idem_finish_failed(app->idem, &ticket);
	return rc;
}

int
zc__guarded_run(zc_req *req, zc_res *res, struct zc_guard *g)
{
	zc_app *app = req->app;

	g->rc = 0;
	if (g->key == NULL)
		return plain_run(req, res, g);
	if (app->uses_store && zc__store_durable())
		return durable_run(req, res, g);
	if (app->idem == NULL)
		return plain_run(req, res, g);
	return local_run(req, res, g);
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
