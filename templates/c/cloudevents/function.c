/*
 * function.c - a starter Zenith C event function.  It takes
 * com.example.greeting.requested events {"name": "..."} on "/", where a
 * Knative Trigger delivers them, and answers with a
 * com.example.greeting.created event {"message": "Hello, <name>!"}.  A
 * Broker asks for that reply (Prefer: reply) and publishes it as a new
 * event; a sender that did not ask just gets 202 Accepted.  Copy this
 * directory, rename NAME in the Makefile, and replace the handler.
 *
 * The runtime parses the event (binary, structured or batch mode),
 * answers malformed ones with 400 naming the attribute, and routes by
 * type; docs/events.md has the whole story, zenith.h the API.
 */
#include <string.h>
#include <zenith.h>

#define MAX_NAME 64 /* bytes; a longer name is the sender's mistake */

/*
 * An event handler.  ev is borrowed: its attributes and data are valid
 * until the handler returns.  Leave res alone to accept the event (202);
 * put a reply event in it with zc_res_event; or answer an error status:
 * a Broker retries 5xx, 404, 408, 409 and 429, and gives up (dead letter)
 * on other 4xx.
 */
static int
handle_greeting(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	json_t *data = zc_event_json(ev); /* NULL unless the data is JSON */
	const char *name;
	zc_event *reply;
	zc_err err;

	(void)req;
	(void)arg;
	/* A bad event will not get better by retrying: 400. */
	if (data == NULL)
		return zc_res_error(res, 400, "event data must be JSON");
	if (zc_json_string(data, "name", &name, res) != 0)
		return 0; /* res holds the 400 naming the field */
	if (name[0] == '\0' || strlen(name) > MAX_NAME)
		return zc_res_error(res, 400, "name must be 1 to %d bytes",
				    MAX_NAME);

	zc_info("greeting %s (event %s from %s)", name, zc_event_id(ev),
		zc_event_source(ev));

	/* The reply: id, source (K_SERVICE) and time are filled in. */
	reply = zc_event_new("com.example.greeting.created");
	if (reply == NULL)
		return -1; /* a 500: the Broker retries */
	err = zc_event_set_json(
		reply, json_pack("{s:s++}", "message", "Hello, ", name, "!"));
	if (err == ZC_OK)
		err = zc_res_event(res, reply); /* copied: free ours */
	zc_event_free(reply);
	return err == ZC_OK ? 0 : -1;
}

/*
 * Called once at start-up, before the port opens.  Events of other types
 * arriving on "/" are accepted (202) and logged, not handled.
 */
int
zc_function_setup(zc_app *app)
{
	zc_route_opts opts = {.event_type = "com.example.greeting.requested"};

	if (zc_event_route(app, "/", handle_greeting, NULL, &opts) != ZC_OK)
		return -1;
	return 0;
}
