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
#include <string.h>
#include <zenith.h>

static int
handle_log(zc_req *req, zc_res *res, void *arg)
{
	const char *action;
	json_t *in, *details;
	char *text, ts[40];

	(void)arg;
	in = zc_req_json(req, res);
	if (in == NULL || zc_json_string(in, "action", &action, res) != 0 ||
	    zc_json_value(in, "details", &details, res) != 0)
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

/* EVENT_MODE=1|true|on or 0|false|off; unset: on when K_SINK is set
 * (as in the other two functions). */
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

int
zc_function_setup(zc_app *app)
{
	int events;

	if (event_mode(&events) != 0)
		return -1;
	/* a redelivered event (same source + id) is recorded once */
	if (events &&
	    zc_event_route(app, "/", handle_balance_updated, NULL, &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT, .event_type = "com.example.balance.updated"}) != ZC_OK)
		return -1;
	/* A retried audit (same Idempotency-Key) is recorded once. */
	return zc_route_with(app, "POST", "/log", handle_log, NULL,
		&(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT});
}
