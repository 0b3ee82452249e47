/*
 * balance-manager - keeps balances: POST /update {"account", "amount"},
 * GET /accounts/{account}.  The seed's Function 2, with exact cents kept
 * in the store (ZC_STORE_URL: a SQLite file by default, PostgreSQL for
 * many replicas), so balances survive restarts and every replica sees the
 * same ones.  Each update is one store transaction: the balance, a ledger
 * entry keyed by the update's Idempotency-Key, the idempotency record and
 * the audit call all commit together or not at all.  The audit goes to
 * audit-logger fire-and-forget by default (AUDIT_MODE=async: through the
 * store's outbox, delivered after the commit, surviving kill -9), or in
 * line (AUDIT_MODE=sync).  An audit failure never fails the update (the
 * seed's behaviour) and is never lost.
 *
 * Event mode (EVENT_MODE=1, or K_SINK set): also subscribes on "/" to
 * com.example.transaction.created, applies each event once per source +
 * id (a redelivery changes nothing) and, when K_SINK is set, publishes
 * com.example.balance.updated {account, amount, new_balance,
 * transaction_id} for audit-logger.  With DAPR_PUBSUB=<component> the
 * same over Dapr pub/sub: topic "transactions" delivered to
 * /events/transactions, balance events published to topic "balances".
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zenith.h>

#define MAX_ACCOUNT 128 /* bytes in an account name */

/* The function's tables; the runtime keeps its own (idempotency records,
 * the outbox) beside them. */
static const char schema_v1[] =
	"CREATE TABLE IF NOT EXISTS accounts ("
	" account TEXT PRIMARY KEY,"
	" cents BIGINT NOT NULL);"
	/* one row per applied update: the ledger the balance sums */
	"CREATE TABLE IF NOT EXISTS entries ("
	" key TEXT PRIMARY KEY,"
	" account TEXT NOT NULL,"
	" cents BIGINT NOT NULL);";

static bool audit_async = true;
/* where balance events go: K_SINK (NULL), or "dapr:<pubsub>/balances" */
static const char *sink;
static char dapr_sink[300];

static void audit(zc_req *req, const char *key, const char *account,
		  int64_t amount, int64_t balance);
static int store_failed(zc_res *res, zc_err err);
static void publish_balance(zc_req *req, const zc_event *in,
			    const char *account, int64_t amount,
			    int64_t balance);

/*
 * The update both routes apply, in the route's transaction: account and
 * amount from obj, checked; the balance changed and a ledger entry keyed
 * key written.  Returns 1 when applied, 0 when res holds the answer (the
 * client's error, or a 503 from the store), -1 when the handler failed.
 * Any answer but a 2xx rolls the transaction back.
 */
static int
apply_update(zc_tx *tx, const json_t *obj, const char *key, zc_res *res,
	     const char **account, int64_t *amount, int64_t *balance)
{
	zc_rows *rows = NULL;
	char text[24];
	zc_err err;

	if (zc_json_string(obj, "account", account, res) != ZC_OK ||
	    zc_json_money(obj, "amount", amount, res) != ZC_OK)
		return 0;
	if ((*account)[0] == '\0' || strlen(*account) > MAX_ACCOUNT) {
		zc_res_error(res, 400,
			     "field \"account\" must be 1 to %d bytes",
			     MAX_ACCOUNT);
		return 0;
	}
	/* one statement: the row lock makes concurrent updates exact */
	err = zc_tx_query(tx, &rows,
			  "INSERT INTO accounts (account, cents) VALUES ($1, "
			  "$2) ON CONFLICT (account) DO UPDATE SET cents = "
			  "accounts.cents + excluded.cents RETURNING cents",
			  "sI", *account, *amount);
	if (err == ZC_OK)
		err = zc_rows_int64(rows, 0, 0, balance);
	zc_rows_free(rows);
	if (err == ZC_OK)
		err = zc_tx_exec(tx,
				 "INSERT INTO entries (key, account, cents) "
				 "VALUES ($1, $2, $3)",
				 "ssI", key, *account, *amount);
	if (err != ZC_OK)
		return store_failed(res, err);
	/* both were within ZC_MONEY_MAX, so the sum did not overflow */
	if (*balance > ZC_MONEY_MAX || *balance < -ZC_MONEY_MAX) {
		zc_res_error(res, 422,
			     "balance of %s would leave the supported range",
			     *account);
		return 0; /* rolled back: the balance is unchanged */
	}
	zc_info("Updated balance for %s: %s", *account,
		zc_money_format(*balance, text, sizeof(text)));
	return 1;
}

static int
handle_update(zc_req *req, zc_res *res, void *arg)
{
	const char *account, *key = zc_req_header(req, "Idempotency-Key");
	int64_t amount, balance;
	char rnd[33];
	json_t *in;
	int rc;

	(void)arg;
	if ((in = zc_req_json(req, res)) == NULL)
		return 0;
	/* an update without a key: any unique key will do */
	if (key == NULL)
		key = zc_random_id(rnd, sizeof(rnd));
	rc = apply_update(zc_req_tx(req), in, key, res, &account, &amount,
			  &balance);
	if (rc != 1)
		return rc;

	audit(req, key, account, amount, balance);

	return zc_res_jsonf(res, 200, "{s:s, s:o, s:s}", "status", "updated",
			    "new_balance", zc_money_json_new(balance),
			    "account", account);
}

/*
 * com.example.transaction.created: the same update as POST /update.  The
 * route is idempotent on source + id, so a broker's redelivery is answered
 * without touching the ledger.  Bad data is a 400 or 422 (Knative does not
 * retry those); out of memory is a 500 (retried, and not recorded as
 * processed).
 */
static int
handle_transaction_created(zc_req *req, const zc_event *ev, zc_res *res,
			   void *arg)
{
	const char *account;
	int64_t amount, balance;
	json_t *data = zc_event_json(ev);
	char key[48];
	int rc;

	(void)arg;
	if (!json_is_object(data))
		return zc_res_error(res, 400,
				    "event data must be a JSON object with "
				    "account and amount");
	/* the ledger entry is the event's: one per source + id */
	if (zc_stable_id(key, sizeof(key), "evt-", zc_event_source(ev),
			 zc_event_id(ev)) != ZC_OK)
		return -1;
	rc = apply_update(zc_req_tx(req), data, key, res, &account, &amount,
			  &balance);
	if (rc != 1)
		return rc;
	zc_info("(event %s from %s)", zc_event_id(ev), zc_event_source(ev));
	publish_balance(req, ev, account, amount, balance);
	return 0; /* 202 */
}

/* GET /accounts/{account}: {"account":"ACC-001","balance":100.5}. */
static int
handle_account(zc_req *req, zc_res *res, void *arg)
{
	const char *account = zc_req_param(req, "account");
	zc_rows *rows = NULL;
	int64_t balance;
	zc_err err;

	(void)arg;
	err = zc_tx_query(zc_req_tx(req), &rows,
			  "SELECT cents FROM accounts WHERE account = $1", "s",
			  account);
	if (err == ZC_OK && zc_rows_count(rows) == 0) {
		zc_rows_free(rows);
		return zc_res_error(res, 404, "no account %s", account);
	}
	if (err == ZC_OK)
		err = zc_rows_int64(rows, 0, 0, &balance);
	zc_rows_free(rows);
	if (err != ZC_OK)
		return store_failed(res, err);
	return zc_res_jsonf(res, 200, "{s:s, s:o}", "account", account,
			    "balance", zc_money_json_new(balance));
}

/* The store refused a statement: a conflict is the runtime's to re-run
 * (any answer will do, it is discarded); anything else is a 503. */
static int
store_failed(zc_res *res, zc_err err)
{
	if (err != ZC_ERR_CONFLICT)
		zc_warn("store: %s", zc_strerror(err));
	zc_res_error(res, 503, "balances unavailable: %s", zc_strerror(err));
	zc_res_header(res, "Retry-After", "1");
	return 0;
}

/* A full queue means overload, when every update would say so: one
 * warning a second, with how many it stands for. */
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

/* Never lost: a record that could not be delivered goes to the log. */
static void
log_undelivered(const json_t *record, zc_err err, int status)
{
	char *text = record != NULL ? zc_json_dumps(record) : NULL;

	zc_warn("[AUDIT-UNDELIVERED] %s (%s, HTTP %d)",
		text != NULL ? text : "(out of memory)", zc_strerror(err),
		status);
	free(text);
}

/*
 * The audit call carries a key derived from the update's own key, so the
 * runtime may retry it and audit-logger (an idempotent route) still
 * writes one record per update.
 */
static void
audit(zc_req *req, const char *key, const char *account, int64_t amount,
      int64_t balance)
{
	char audit_key[300];
	json_t *record;
	zc_call *call;
	zc_err err = ZC_ERR_NOMEM;

	snprintf(audit_key, sizeof(audit_key), "audit-%.250s", key);
	record = json_pack("{s:s, s:{s:s, s:o, s:o}}", "action",
			   "balance_update", "details", "account", account,
			   "amount", zc_money_json_new(amount), "new_balance",
			   zc_money_json_new(balance));
	call = zc_call_new(req, "audit-logger", "POST", "/log");
	if (record != NULL && call != NULL &&
	    (err = zc_call_json(call, record)) == ZC_OK)
		err = zc_call_header(call, "Idempotency-Key", audit_key);
	if (err == ZC_OK && audit_async) {
		if ((err = zc_call_send_async(call)) == ZC_OK) {
			json_decref(record);
			return; /* the runtime owns the call now */
		}
		/* queue full or closed: deliver in line rather than drop */
		warn_in_line(err);
		err = ZC_OK;
	}
	if (err == ZC_OK)
		err = zc_call_perform(call);
	if (err != ZC_OK)
		log_undelivered(record, err, zc_call_status(call));
	json_decref(record);
	zc_call_free(call);
}

/*
 * Publish the new balance to K_SINK (audit-logger, or a broker).  Its id
 * is derived from the transaction event's source and id, so however often
 * one transaction is delivered, its balance event is the same event to
 * audit-logger.  Like the HTTP audit, a failure never fails the update
 * and is never lost.
 */
static void
publish_balance(zc_req *req, const zc_event *in, const char *account,
		int64_t amount, int64_t balance)
{
	json_t *tx = json_object_get(zc_event_json(in), "transaction_id");
	json_t *data, *record;
	char id[48];
	zc_event *ev;
	zc_err err = ZC_ERR_NOMEM;

	if (sink == NULL && zc_event_sink() == NULL)
		return; /* subscribed, publishing nothing */
	data = json_pack("{s:s, s:o, s:o}", "account", account, "amount",
			 zc_money_json_new(amount), "new_balance",
			 zc_money_json_new(balance));
	if (data != NULL && json_is_string(tx))
		json_object_set(data, "transaction_id", tx);
	ev = zc_event_new("com.example.balance.updated");
	if (ev != NULL && data != NULL &&
	    (err = zc_stable_id(id, sizeof(id), "bal-", zc_event_source(in),
				zc_event_id(in))) == ZC_OK) {
		(void)zc_event_set(ev, "subject", account);
		err = zc_event_set(ev, "id", id);
		if (err == ZC_OK)
			err = zc_event_set_json(ev, json_incref(data));
		if (err == ZC_OK)
			err = zc_event_send(req, sink, ev);
	}
	if (err != ZC_OK) {
		record = json_pack("{s:s, s:O}", "action", "balance_update",
				   "details", data);
		log_undelivered(record, err, 0);
		json_decref(record);
	}
	json_decref(data);
	zc_event_free(ev);
}

int
zc_function_setup(zc_app *app)
{
	static const char *const modes[] = {"async", "sync", NULL};
	zc_route_opts once = {.flags = ZC_ROUTE_IDEMPOTENT |
				       ZC_ROUTE_TRANSACTIONAL};
	zc_route_opts tx = {.flags = ZC_ROUTE_TRANSACTIONAL};
	zc_route_opts created = {
		.flags = ZC_ROUTE_IDEMPOTENT | ZC_ROUTE_TRANSACTIONAL,
		.event_type = "com.example.transaction.created",
	};
	const char *pubsub = getenv("DAPR_PUBSUB");
	bool events;
	int mode;

	if (zc_env_choice("AUDIT_MODE", modes, 0, &mode) != ZC_OK)
		return -1;
	audit_async = mode == 0;
	if (pubsub != NULL && *pubsub != '\0') {
		snprintf(dapr_sink, sizeof(dapr_sink), "dapr:%.200s/balances",
			 pubsub);
		sink = dapr_sink;
	}
	/* EVENT_MODE=1|0; unset: on when K_SINK or DAPR_PUBSUB is set */
	if (zc_env_bool("EVENT_MODE", zc_event_sink() != NULL || sink != NULL,
			&events) != ZC_OK)
		return -1;
	if (events && sink != NULL) {
		if (zc_dapr_subscribe(app, pubsub, "transactions",
				      "/events/transactions",
				      handle_transaction_created, NULL,
				      &created) != ZC_OK)
			return -1;
	} else if (events) {
		if (zc_event_route(app, "/", handle_transaction_created, NULL,
				   &created) != ZC_OK)
			return -1;
		zc_info("event mode: transaction events taken on /; balance "
			"events go to %s",
			zc_event_sink() != NULL ? zc_event_sink()
						: "nowhere (no K_SINK)");
	}
	if (zc_store_schema(app, "balance-manager", 1, schema_v1) != ZC_OK ||
	    zc_service(app, "audit-logger", NULL) != ZC_OK ||
	    zc_route_with(app, "GET", "/accounts/{account}", handle_account,
			  NULL, &tx) != ZC_OK)
		return -1;
	return zc_route_with(app, "POST", "/update", handle_update, NULL,
			     &once);
}
