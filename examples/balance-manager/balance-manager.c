/*
 * balance-manager - keeps balances: POST /update {"account", "amount"}.
 * The seed's Function 2, with exact cents and a thread-safe ledger.
 * Every update is applied exactly once per Idempotency-Key (the runtime
 * replays the stored answer to a retry), and reported to audit-logger:
 * fire-and-forget by default (AUDIT_MODE=async), or in line
 * (AUDIT_MODE=sync).  An audit failure never fails the update (the seed's
 * behaviour) and is never lost: the call is retried (it carries an
 * Idempotency-Key, so audit-logger records it once) and, if it still
 * cannot be delivered, the complete record is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <zenith.h>

#include "ledger.h"

static ledger *balances;
static int audit_async = 1;

/*
 * The audit call carries a key derived from the update's own key, so the
 * runtime may retry it and audit-logger (an idempotent route) still
 * writes one record per update.
 */
static void
audit(zc_req *req, const char *account, int64_t amount, int64_t balance)
{
	const char *key = zc_req_header(req, "Idempotency-Key");
	char audit_key[300];
	json_t *record;
	zc_call *call;
	zc_err err = ZC_ERR_NOMEM;
	char *text;
	unsigned long long r[2] = {0, 0};

	if (key != NULL) {
		snprintf(audit_key, sizeof(audit_key), "audit-%.250s", key);
	} else {
		/* an update without a key: any unique key will do */
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r[0] = (unsigned long long)(uintptr_t)&r ^
			       (unsigned long long)clock();
		snprintf(audit_key, sizeof(audit_key), "audit-%016llx%016llx",
			 r[0], r[1]);
	}
	record = json_pack("{s:s, s:{s:s, s:o, s:o}}", "action",
			   "balance_update", "details", "account", account,
			   "amount", zc_money_json_new(amount), "new_balance",
			   zc_money_json_new(balance));
	call = zc_call_new(req, "audit-logger", "POST", "/log");
	if (record != NULL && call != NULL &&
	    (err = zc_call_json(call, record)) == ZC_OK)
		err = zc_call_header(call, "Idempotency-Key", audit_key);
	if (err == ZC_OK && audit_async) {
		err = zc_call_send_async(call);
		if (err == ZC_OK) {
			json_decref(record);
			return; /* the runtime owns the call now */
		}
		/* queue full or closed: deliver in line rather than drop */
		zc_warn("audit queue: %s; sending in line", zc_strerror(err));
		err = ZC_OK;
	}
	if (err == ZC_OK)
		err = zc_call_perform(call);
	if (err != ZC_OK) {
		/* Never lost: the complete record goes to the log. */
		text = record != NULL ? zc_json_dumps(record) : NULL;
		zc_warn("[AUDIT-UNDELIVERED] %s (%s, HTTP %d)",
			text != NULL ? text : "(out of memory)",
			zc_strerror(err), zc_call_status(call));
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
	const char *mode = getenv("AUDIT_MODE");

	(void)arg;
	if (mode != NULL && *mode != '\0') {
		if (strcmp(mode, "sync") == 0) {
			audit_async = 0;
		} else if (strcmp(mode, "async") != 0) {
			zc_error("AUDIT_MODE=\"%s\": expected sync or async",
				 mode);
			return -1;
		}
	}
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
	if (zc_service(app, "audit-logger", NULL) != ZC_OK)
		return -1;
	return zc_route_idempotent(app, "POST", "/update", handle_update,
				   NULL);
}
