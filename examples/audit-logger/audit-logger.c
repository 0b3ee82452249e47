/*
 * audit-logger - records audit events: POST /log {"action", "details"}.
 * The seed's Function 3, with its wire contract kept exactly; a request
 * repeated with the same Idempotency-Key is answered without a second
 * record.
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

int
zc_function_setup(zc_app *app)
{
	/* A retried audit (same Idempotency-Key) is recorded once. */
	return zc_route_idempotent(app, "POST", "/log", handle_log, NULL);
}
