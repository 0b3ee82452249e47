/*
 * balance-manager - keeps balances: POST /update {"account", "amount"}.
 * The seed's Function 2, with exact cents and a thread-safe ledger; it
 * reports every change to audit-logger, and an audit failure does not fail
 * the update (the seed's behaviour) but is logged as a complete record.
 */
#include <stdlib.h>
#include <string.h>
#include <zenith.h>

#include "ledger.h"

static ledger *balances;

static void
audit(zc_req *req, const char *account, int64_t amount, int64_t balance)
{
	json_t *record;
	zc_call *call;
	zc_err err = ZC_ERR_NOMEM;
	char *text;

	record = json_pack("{s:s, s:{s:s, s:o, s:o}}", "action",
			   "balance_update", "details", "account", account,
			   "amount", zc_money_json_new(amount), "new_balance",
			   zc_money_json_new(balance));
	call = zc_call_new(req, "audit-logger", "POST", "/log");
	if (record != NULL && call != NULL &&
	    (err = zc_call_json(call, record)) == ZC_OK)
		err = zc_call_perform(call);
	if (err == ZC_OK) {
		zc_debug("audit logged for %s", account);
	} else {
		/* Never lost: the complete record goes to the log. */
		text = record != NULL ? zc_json_dumps(record) : NULL;
		zc_warn("[AUDIT-UNDELIVERED] %s (%s, HTTP %d)",
			text != NULL ? text : "(out of memory)",
			zc_strerror(err), call ? zc_call_status(call) : 0);
		free(text);
	}
	json_decref(record);
	zc_call_free(call);
}

static int
handle_update(zc_req *req, zc_res *res, void *arg)
{
	const char *account;
	int64_t amount, balance;
	char text[24];
	json_t *in;
	int rc;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_string(in, "account", &account, res) != 0 ||
	    zc_json_money(in, "amount", &amount, res) != 0)
		return 0;
	if (account[0] == '\0' || strlen(account) > LEDGER_MAX_ACCOUNT)
		return zc_res_error(res, 400,
				    "field \"account\" must be 1 to %d bytes",
				    LEDGER_MAX_ACCOUNT);

	rc = ledger_add(balances, account, amount, &balance);
	if (rc == -1)
		return zc_res_error(res, 422,
				    "balance of %s would leave the supported "
				    "range",
				    account);
	if (rc != 0)
		return -1;
	zc_info("Updated balance for %s: %s", account,
		zc_money_format(balance, text, sizeof(text)));

	audit(req, account, amount, balance);

	return zc_res_jsonf(res, 200, "{s:s, s:o, s:s}", "status", "updated",
			    "new_balance", zc_money_json_new(balance),
			    "account", account);
}

static int
init(void *arg)
{
	(void)arg;
	balances = ledger_new();
	return balances == NULL ? -1 : 0;
}

static void
shutdown_ledger(void *arg)
{
	(void)arg;
	ledger_free(balances);
	balances = NULL;
}

int
zc_function_setup(zc_app *app)
{
	zc_on_init(app, init, NULL);
	zc_on_shutdown(app, shutdown_ledger, NULL);
	return zc_route(app, "POST", "/update", handle_update, NULL);
}
