/*
 * audit-logger - records audit events: POST /log {"action", "details"}.
 * The seed's Function 3, with its wire contract kept exactly; a request
 * repeated with the same Idempotency-Key is answered without a second
 * record.
 *
 * Event mode (EVENT_MODE=1): also subscribes on "/" to
 * com.example.balance.updated and writes the same [AUDIT] line for each
 * event, once per source + id however often it is delivered.
 */
#include <stdlib.h>
#include <zenith.h>

static int
handle_log(zc_req *req, zc_res *res, void *arg)
{
	const char *action;
	json_t *in, *details;
	char *text, ts[40];

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_string(in, "action", &action, res) != ZC_OK ||
	    zc_json_value(in, "details", &details, res) != ZC_OK)
		return 0; /* res already holds the 400 */

	text = zc_json_dumps(details);
	if (text == NULL)
		return -1;
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

	(void)req;
	(void)arg;
	if (!json_is_object(data))
		return zc_res_error(res, 400,
				    "event data must be a JSON object");
	text = zc_json_dumps(data);
	if (text == NULL)
		return -1;
	zc_info("[AUDIT] Action: balance_update, Details: %s", text);
	free(text);
	return 0; /* 202 */
}

int
zc_function_setup(zc_app *app)
{
	bool events;

	/* EVENT_MODE=1|0; unset: on when K_SINK is set */
	if (zc_env_bool("EVENT_MODE", zc_event_sink() != NULL, &events) !=
	    ZC_OK)
		return -1;
	/* a redelivered event (same source + id) is recorded once */
	if (events &&
	    zc_event_route(app, "/", handle_balance_updated, NULL,
			   &(zc_route_opts){
				   .flags = ZC_ROUTE_IDEMPOTENT,
				   .event_type = "com.example.balance.updated",
			   }) != ZC_OK)
		return -1;
	/* a retried audit (same Idempotency-Key) is recorded once */
	return zc_route_with(app, "POST", "/log", handle_log, NULL,
			     &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT});
}
