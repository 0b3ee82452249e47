/*
 * transaction-processor - the chain's entry: POST /transaction
 * {"account", "amount"} moves money through balance-manager.  The seed's
 * Function 1; the transaction id is made first (unique even within one
 * second, unlike the seed's TXN-<unix seconds>) and sent as the
 * Idempotency-Key of the balance update, so the runtime may retry the
 * update through faults and balance-manager still applies it once.
 */
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <zenith.h>

static void
new_transaction_id(char *buf, size_t size)
{
	unsigned long long r = 0;

	/* 64 random bits: unique across threads and replicas alike. */
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned long long)clock() ^ (unsigned long long)buf;
	snprintf(buf, size, "TXN-%lld-%016llx", (long long)time(NULL), r);
}

/* Map a failed balance-manager call to this function's answer. */
static int
downstream_failed(zc_res *res, zc_call *call, zc_err err)
{
	int status = zc_call_status(call);
	json_t *reply = zc_call_reply_json(call);

	zc_warn("balance-manager call failed after %d attempt(s): %s (HTTP "
		"%d)",
		zc_call_attempts(call), zc_strerror(err), status);
	/* A client error from balance-manager is the client's: pass it on
	 * (409 "still in flight" excepted: that one is ours to retry). */
	if (err == ZC_ERR_HTTP && status >= 400 && status < 500 &&
	    status != 409 && status != 429 && reply != NULL &&
	    json_is_object(reply))
		return zc_res_json(res, status, json_incref(reply));
	return zc_res_call_error(res, call, err);
}

static int
handle_transaction(zc_req *req, zc_res *res, void *arg)
{
	const char *account;
	int64_t amount, balance;
	char id[64], ts[40], text[24];
	json_t *in, *reply;
	zc_call *call;
	zc_err err;
	int rc;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_string(in, "account", &account, res) != 0 ||
	    zc_json_money(in, "amount", &amount, res) != 0)
		return 0;
	new_transaction_id(id, sizeof(id));
	zc_info("Processing transaction %s: account=%s, amount=%s", id,
		account, zc_money_format(amount, text, sizeof(text)));

	call = zc_call_new(req, "balance-manager", "POST", "/update");
	if (call == NULL)
		return -1;
	err = zc_call_jsonf(call, "{s:s, s:o}", "account", account, "amount",
			    zc_money_json_new(amount));
	if (err == ZC_OK)
		err = zc_call_header(call, "Idempotency-Key", id);
	if (err == ZC_OK)
		err = zc_call_perform(call);
	if (err != ZC_OK) {
		rc = downstream_failed(res, call, err);
		zc_call_free(call);
		return rc;
	}
	reply = zc_call_reply_json(call);
	if (reply == NULL ||
	    zc_money_from_json(json_object_get(reply, "new_balance"),
			       &balance) != ZC_OK) {
		rc = downstream_failed(res, call, ZC_ERR_BAD_REPLY);
		zc_call_free(call);
		return rc;
	}
	zc_call_free(call);

	return zc_res_jsonf(res, 200, "{s:s, s:s, s:o, s:s}", "status",
			    "success", "transaction_id", id, "balance",
			    zc_money_json_new(balance), "timestamp",
			    zc_timestamp(ts, sizeof(ts)));
}

int
zc_function_setup(zc_app *app)
{
	/* retries are safe: every update carries its Idempotency-Key */
	if (zc_service(app, "balance-manager", NULL) != ZC_OK)
		return -1;
	return zc_route(app, "POST", "/transaction", handle_transaction, NULL);
}
