/*
 * audit-logger - records audit events: POST /log {"action", "details"}.
 * The seed's Function 3, with its wire contract kept exactly.  Each record
 * is kept in the store (table audit_log, ZC_STORE_URL) as well as logged
 * as an [AUDIT] line, and a request repeated with the same
 * Idempotency-Key, on any replica, is answered without a second record.
 *
 * Event mode (EVENT_MODE=1): also subscribes on "/" to
 * com.example.balance.updated and writes the same [AUDIT] line for each
 * event, once per source + id however often it is delivered.  With
 * DAPR_PUBSUB=<component>: topic "balances" of that Dapr pub/sub,
 * delivered to /events/balances, instead.
 */
#include <stdlib.h>
#include <zenith.h>

static const char schema_v1[] = "CREATE TABLE IF NOT EXISTS audit_log ("
				" key TEXT PRIMARY KEY,"
				" action TEXT NOT NULL,"
				" details TEXT NOT NULL);";

/* Keep the record in this request's transaction: its key is the
 * request's Idempotency-Key (any unique id without one). */
static zc_err
record(zc_req *req, const char *action, const char *details)
{
	const char *key = zc_req_header(req, "Idempotency-Key");
	char rnd[33];

	if (key == NULL)
		key = zc_random_id(rnd, sizeof(rnd));
	return zc_tx_exec(zc_req_tx(req),
			  "INSERT INTO audit_log (key, action, details) VALUES "
			  "($1, $2, $3)",
			  "sss", key, action, details);
}

/* The store refused: 503 (a conflict is re-run by the runtime). */
static int
store_failed(zc_res *res, zc_err err)
{
	zc_res_error(res, 503, "audit store unavailable: %s", zc_strerror(err));
	zc_res_header(res, "Retry-After", "1");
	return 0;
}

static int
handle_log(zc_req *req, zc_res *res, void *arg)
{
	const char *action;
	json_t *in, *details;
	char *text, ts[40];
	zc_err err;

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_string(in, "action", &action, res) != ZC_OK ||
	    zc_json_value(in, "details", &details, res) != ZC_OK)
		return 0; /* res already holds the 400 */

	text = zc_json_dumps(details);
	if (text == NULL)
		return -1;
	if ((err = record(req, action, text)) != ZC_OK) {
		free(text);
		return store_failed(res, err);
	}
	zc_info("[AUDIT] Action: %s, Details: %s", action, text);
	free(text);

	return zc_res_jsonf(res, 200, "{s:s, s:s}", "status", "logged",
			    "timestamp", zc_timestamp(ts, sizeof(ts)));
}

/* com.example.balance.updated: its data is the audit record's details. */
static int
handle_balance_updated(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	json_t *data = zc_event_json(ev);
	char *text;

	(void)arg;
	if (!json_is_object(data))
		return zc_res_error(res, 400,
				    "event data must be a JSON object");
	text = zc_json_dumps(data);
	if (text == NULL)
		return -1;
	if (zc_tx_exec(zc_req_tx(req),
		       "INSERT INTO audit_log (key, action, details) VALUES "
		       "($1, 'balance_update', $2)",
		       "ss", zc_event_id(ev), text) != ZC_OK) {
		free(text);
		return store_failed(res, ZC_ERR_STORE);
	}
	zc_info("[AUDIT] Action: balance_update, Details: %s", text);
	free(text);
	return 0; /* 202 */
}

int
zc_function_setup(zc_app *app)
{
	zc_route_opts once = {.flags = ZC_ROUTE_IDEMPOTENT |
				       ZC_ROUTE_TRANSACTIONAL};
	/* a redelivered event (same source + id) is recorded once */
	zc_route_opts updated = {
		.flags = ZC_ROUTE_IDEMPOTENT | ZC_ROUTE_TRANSACTIONAL,
		.event_type = "com.example.balance.updated",
	};
	const char *pubsub = getenv("DAPR_PUBSUB");
	bool dapr = pubsub != NULL && *pubsub != '\0', events;

	if (zc_store_schema(app, "audit-logger", 1, schema_v1) != ZC_OK)
		return -1;
	/* EVENT_MODE=1|0; unset: on when K_SINK or DAPR_PUBSUB is set */
	if (zc_env_bool("EVENT_MODE", zc_event_sink() != NULL || dapr,
			&events) != ZC_OK)
		return -1;
	if (events &&
	    (dapr ? zc_dapr_subscribe(app, pubsub, "balances",
				      "/events/balances",
				      handle_balance_updated, NULL, &updated)
		  : zc_event_route(app, "/", handle_balance_updated, NULL,
				   &updated)) != ZC_OK)
		return -1;
	/* a retried audit (same Idempotency-Key) is recorded once */
	return zc_route_with(app, "POST", "/log", handle_log, NULL, &once);
}
