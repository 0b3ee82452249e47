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
 *
 * Event mode (EVENT_MODE=1, or K_SINK set): also subscribes on "/" to
 * com.example.transaction.created, applies each event once per source +
 * id (a redelivery changes nothing) and, when K_SINK is set, publishes
 * com.example.balance.updated {account, amount, new_balance,
 * transaction_id} for audit-logger.
 */
#include <stdatomic.h>
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
 * A full queue means overload, when every update would say so: one
 * warning a second, with how many it stands for.
 */
static void
warn_in_line(zc_err err)
{
	static _Atomic long long last_s = -1;
	static atomic_ulong more;
	long long now = (long long)time(NULL), prev = atomic_load(&last_s);

	if (now == prev ||
	    !atomic_compare_exchange_strong(&last_s, &prev, now)) {
		atomic_fetch_add(&more, 1);
		return;
	}
	zc_warn("audit queue: %s; sending in line (and %lu more since the "
		"last warning)",
		zc_strerror(err), atomic_exchange(&more, 0));
}

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
		warn_in_line(err);
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

/*
 * The balance.updated event's id comes from the transaction event's
 * source and id, so however often one transaction is delivered, its
 * balance event is the same event to audit-logger.
 */
static void
derived_id(const zc_event *ev, char *buf, size_t size)
{
	const char *parts[2] = {zc_event_source(ev), zc_event_id(ev)};
	uint64_t h1 = 1469598103934665603ULL, h2 = 0x9e3779b97f4a7c15ULL;
	size_t i;
	const char *p;

	for (i = 0; i < 2; i++) {
		for (p = parts[i]; *p != '\0'; p++) {
			h1 = (h1 ^ (unsigned char)*p) * 1099511628211ULL;
			h2 = (h2 ^ (unsigned char)*p) * 0xff51afd7ed558ccdULL;
			h2 ^= h2 >> 29;
		}
		h1 = (h1 ^ 0x0a) * 1099511628211ULL; /* separator */
		h2 = (h2 ^ 0x0a) * 0xff51afd7ed558ccdULL;
	}
	snprintf(buf, size, "bal-%016llx%016llx", (unsigned long long)h1,
		 (unsigned long long)h2);
}

/* Publish the new balance to K_SINK (audit-logger, or a broker).  Like the
 * HTTP audit call, a failure never fails the update and is never lost:
 * the complete record is logged. */
static void
publish_balance(zc_req *req, const zc_event *in, const char *account,
		int64_t amount, int64_t balance)
{
	const char *sink = getenv("K_SINK");
	json_t *tx = json_object_get(zc_event_json(in), "transaction_id");
	json_t *data;
	char id[48], *text;
	zc_event *ev;
	zc_err err = ZC_ERR_NOMEM;

	if (sink == NULL || *sink == '\0')
		return; /* subscribed, publishing nothing */
	data = json_pack("{s:s, s:o, s:o}", "account", account, "amount",
			 zc_money_json_new(amount), "new_balance",
			 zc_money_json_new(balance));
	if (data != NULL && json_is_string(tx))
		json_object_set(data, "transaction_id", tx);
	derived_id(in, id, sizeof(id));
	ev = zc_event_new("com.example.balance.updated");
	if (ev != NULL && data != NULL) {
		(void)zc_event_set(ev, "subject", account);
		err = zc_event_set(ev, "id", id);
		if (err == ZC_OK)
			err = zc_event_set_json(ev, json_incref(data));
		if (err == ZC_OK)
			err = zc_event_send(req, NULL, ev);
	}
	if (err != ZC_OK) {
		json_t *rec = json_pack("{s:s, s:O}", "action",
					"balance_update", "details", data);
		text = rec != NULL ? zc_json_dumps(rec) : NULL;
		zc_warn("[AUDIT-UNDELIVERED] %s (%s)",
			text != NULL ? text : "(out of memory)",
			zc_strerror(err));
		free(text);
		json_decref(rec);
	}
	json_decref(data);
	zc_event_free(ev);
}

/*
 * com.example.transaction.created: the same update as POST /update.  The
 * route is idempotent on source + id (zc_event_route_idempotent), so a
 * broker's redelivery is answered without touching the ledger.  Bad data
 * is a 400 or 422 (Knative does not retry those); out of memory is a 500
 * (retried, and not recorded as processed).
 */
static int
handle_transaction_created(zc_req *req, const zc_event *ev, zc_res *res,
			   void *arg)
{
	const char *account;
	int64_t amount, balance;
	json_t *data = zc_event_json(ev);
	char text[24];
	int rc;

	(void)arg;
	if (!json_is_object(data))
		return zc_res_error(res, 400,
				    "event data must be a JSON object with "
				    "account and amount");
	if (zc_json_string(data, "account", &account, res) != 0 ||
	    zc_json_money(data, "amount", &amount, res) != 0)
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
	zc_info("Updated balance for %s: %s (event %s from %s)", account,
		zc_money_format(balance, text, sizeof(text)), zc_event_id(ev),
		zc_event_source(ev));
	publish_balance(req, ev, account, amount, balance);
	return 0; /* 202 */
}

/* EVENT_MODE=1|true|on or 0|false|off; unset: on when K_SINK is set. */
static int
event_mode(int *on)
{
	const char *m = getenv("EVENT_MODE"), *sink = getenv("K_SINK");

	if (m == NULL || *m == '\0')
		*on = sink != NULL && *sink != '\0';
	else if (!strcmp(m, "1") || !strcmp(m, "true") || !strcmp(m, "on"))
		*on = 1;
	else if (!strcmp(m, "0") || !strcmp(m, "false") || !strcmp(m, "off"))
		*on = 0;
	else {
		zc_error("EVENT_MODE=\"%s\": expected 1 or 0", m);
		return -1;
	}
	return 0;
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
	int events;

	zc_on_init(app, init, NULL);
	zc_on_shutdown(app, shutdown_ledger, NULL);
	if (event_mode(&events) != 0)
		return -1;
	if (events) {
		const char *sink = getenv("K_SINK");

		if (zc_event_route(app, "/", handle_transaction_created, NULL, &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT, .event_type = "com.example.transaction.created"}) != ZC_OK)
			return -1;
		zc_info("event mode: transaction events taken on /; balance "
			"events go to %s",
			sink != NULL && *sink != '\0' ? sink
						      : "nowhere (no K_SINK)");
	}
	if (zc_service(app, "audit-logger", NULL) != ZC_OK)
		return -1;
	return zc_route_with(app, "POST", "/update", handle_update, NULL,
		&(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT});
}
