/*
 * transaction-processor - the chain's entry: POST /transaction
 * {"account", "amount"} moves money through balance-manager.  The seed's
 * Function 1; the transaction id is made first (unique even within one
 * second, unlike the seed's TXN-<unix seconds>) and sent as the
 * Idempotency-Key of the balance update, so the runtime may retry the
 * update through faults and balance-manager still applies it once.  A
 * client that retries sends its own Idempotency-Key: the transaction id
 * is then derived from it, so a retry on any replica is the same
 * transaction, applied once by balance-manager's store (this function
 * keeps no state).
 *
 * Event mode (EVENT_MODE=1, or K_SINK set; the seed's "Event-Driven via
 * Broker"): POST /transaction answers 202 {"status":"accepted",
 * "transaction_id"} and publishes com.example.transaction.created
 * {account, amount, transaction_id} to K_SINK, the transaction id being
 * the event id, so a redelivery is recognisable downstream.  With
 * DAPR_PUBSUB=<component> the event goes to topic "transactions" of that
 * Dapr pub/sub instead (through the sidecar at DAPR_HTTP_PORT).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zenith.h>

/* balance-manager's limit on account names, checked before publishing:
 * in event mode nobody would see its 400 */
#define MAX_ACCOUNT 128

/* Event mode's target: NULL for K_SINK, or "dapr:<pubsub>/transactions" */
static const char *sink;
static char dapr_sink[300];

static zc_err new_transaction_id(zc_req *req, char *buf, size_t size);
static int downstream_failed(zc_res *res, zc_call *call, zc_err err);

static int
handle_transaction(zc_req *req, zc_res *res, void *arg)
{
	const char *account;
	int64_t amount, balance;
	char id[64], ts[40], text[24];
	json_t *in;
	zc_call *call;
	zc_err err;
	int rc;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL ||
	    zc_json_string(in, "account", &account, res) != ZC_OK ||
	    zc_json_money(in, "amount", &amount, res) != ZC_OK)
		return 0;
	if (new_transaction_id(req, id, sizeof(id)) != ZC_OK)
		return zc_res_error(res, 400,
				    "invalid Idempotency-Key: expected 1 to "
				    "255 printable ASCII characters");
	zc_info("Processing transaction %s: account=%s, amount=%s", id, account,
		zc_money_format(amount, text, sizeof(text)));

	if ((call = zc_call_new(req, "balance-manager", "POST", "/update")) ==
	    NULL)
		return -1;
	err = zc_call_jsonf(call, "{s:s, s:o}", "account", account, "amount",
			    zc_money_json_new(amount));
	if (err == ZC_OK)
		err = zc_call_header(call, "Idempotency-Key", id);
	if (err == ZC_OK)
		err = zc_call_perform(call);
	if (err == ZC_OK &&
	    zc_money_from_json(
		    json_object_get(zc_call_reply_json(call), "new_balance"),
		    &balance) != ZC_OK)
		err = ZC_ERR_BAD_REPLY;
	if (err != ZC_OK) {
		rc = downstream_failed(res, call, err);
		zc_call_free(call);
		return rc;
	}
	zc_call_free(call);

	return zc_res_jsonf(res, 200, "{s:s, s:s, s:o, s:s}", "status",
			    "success", "transaction_id", id, "balance",
			    zc_money_json_new(balance), "timestamp",
			    zc_timestamp(ts, sizeof(ts)));
}

/*
 * Event mode: accept the transaction and publish it.  The answer says
 * only that it was accepted; balance-manager applies it when the event
 * arrives.  An event the sink did not take is the client's to retry
 * (502/503/504), as in the synchronous chain.
 */
static int
handle_transaction_event(zc_req *req, zc_res *res, void *arg)
{
	const char *account;
	int64_t amount;
	char id[64], text[24];
	json_t *in, *data;
	zc_event *ev;
	zc_err err;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL ||
	    zc_json_string(in, "account", &account, res) != ZC_OK ||
	    zc_json_money(in, "amount", &amount, res) != ZC_OK)
		return 0;
	if (account[0] == '\0' || strlen(account) > MAX_ACCOUNT)
		return zc_res_error(res, 400,
				    "field \"account\" must be 1 to %d bytes",
				    MAX_ACCOUNT);
	if (new_transaction_id(req, id, sizeof(id)) != ZC_OK)
		return zc_res_error(res, 400,
				    "invalid Idempotency-Key: expected 1 to "
				    "255 printable ASCII characters");
	zc_info("Publishing transaction %s: account=%s, amount=%s", id, account,
		zc_money_format(amount, text, sizeof(text)));

	data = json_pack("{s:s, s:o, s:s}", "account", account, "amount",
			 zc_money_json_new(amount), "transaction_id", id);
	if ((ev = zc_event_new("com.example.transaction.created")) == NULL ||
	    data == NULL) {
		json_decref(data);
		zc_event_free(ev);
		return -1;
	}
	/* subject: for Trigger filters; an account a header cannot carry
	 * (a control character) just goes without one */
	(void)zc_event_set(ev, "subject", account);
	if ((err = zc_event_set(ev, "id", id)) == ZC_OK)
		err = zc_event_set_json(ev, data);
	else
		json_decref(data);
	if (err == ZC_OK)
		err = zc_event_send(req, sink, ev);
	zc_event_free(ev);
	if (err != ZC_OK)
		return zc_res_error(res, zc_err_http_status(err),
				    "event sink unavailable: %s",
				    zc_strerror(err));
	return zc_res_jsonf(res, 202, "{s:s, s:s}", "status", "accepted",
			    "transaction_id", id);
}

/*
 * With the client's Idempotency-Key: TXN- and a hash of the key, the same
 * on every replica.  Without: the time and 64 random bits, unique across
 * threads and replicas alike.
 */
static zc_err
new_transaction_id(zc_req *req, char *buf, size_t size)
{
	const char *key = zc_req_header(req, "Idempotency-Key");
	char rnd[17];
	size_t i, n;

	if (key == NULL) {
		snprintf(buf, size, "TXN-%lld-%s", (long long)time(NULL),
			 zc_random_id(rnd, sizeof(rnd)));
		return ZC_OK;
	}
	n = strlen(key);
	for (i = 0; i < n; i++)
		if (key[i] < 0x21 || key[i] > 0x7e)
			return ZC_ERR_INVALID;
	if (n == 0 || n > 255)
		return ZC_ERR_INVALID;
	return zc_stable_id(buf, size, "TXN-", key, NULL);
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
	    status != 409 && status != 429 && json_is_object(reply))
		return zc_res_json(res, status, json_incref(reply));
	return zc_res_call_error(res, call, err);
}

int
zc_function_setup(zc_app *app)
{
	const char *pubsub = getenv("DAPR_PUBSUB");
	bool events;

	if (pubsub != NULL && *pubsub != '\0') {
		snprintf(dapr_sink, sizeof(dapr_sink),
			 "dapr:%.200s/transactions", pubsub);
		sink = dapr_sink;
	}
	/* EVENT_MODE=1|0; unset: on when K_SINK or DAPR_PUBSUB is set */
	if (zc_env_bool("EVENT_MODE", zc_event_sink() != NULL || sink != NULL,
			&events) != ZC_OK)
		return -1;
	if (events) {
		if (zc_event_sink() == NULL && sink == NULL) {
			zc_error("event mode needs K_SINK (the URL events are "
				 "sent to: a broker, or the next function) or "
				 "DAPR_PUBSUB (a Dapr pub/sub component)");
			return -1;
		}
		zc_info("event mode: transactions are published to %s",
			sink != NULL ? sink : zc_event_sink());
		return zc_route(app, "POST", "/transaction",
				handle_transaction_event, NULL);
	}
	/* retries are safe: every update carries its Idempotency-Key */
	if (zc_service(app, "balance-manager", NULL) != ZC_OK)
		return -1;
	return zc_route(app, "POST", "/transaction", handle_transaction, NULL);
}
