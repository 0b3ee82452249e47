/*
 * function.c - a starter Zenith C event function.  It takes every event
 * POSTed to "/" (where `func invoke` and a Knative Trigger deliver) and
 * answers with a reply event of type function.response carrying the same
 * data: func's default event {"message":"Hello World"} comes back as
 * {"message":"Hello World"}.  A Broker publishes the reply as a new event.
 * Copy this directory (or `func create -l c -t zenith/cloudevents`) and
 * replace the handler.
 *
 * The runtime parses the event (binary, structured or batch mode),
 * answers malformed ones with 400 naming the attribute, and routes by
 * type; docs/events.md has the whole story, zenith.h the API.
 */
#include <string.h>
#include <zenith.h>

/* The reply's type, as in func's own Go starter. */
#define REPLY_TYPE "function.response"

/*
 * An event handler.  ev is borrowed: its attributes and data are valid
 * until the handler returns.  Leave res alone to accept the event (202);
 * put a reply event in it with zc_res_event; or answer an error status:
 * a Broker retries 5xx, 404, 408, 409 and 429, and gives up (dead letter)
 * on other 4xx.
 */
static int
handle_event(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	const char *ctype = zc_event_datacontenttype(ev);
	const char *data;
	size_t len;
	zc_event *reply;
	zc_err err;

	(void)req;
	(void)arg;
	zc_info("event %s from %s, type %s", zc_event_id(ev),
		zc_event_source(ev), zc_event_type(ev));

	/*
	 * Our own reply, delivered back by a Trigger without a type filter:
	 * accept it without answering, or the function would feed itself
	 * through the Broker for ever.
	 */
	if (strcmp(zc_event_type(ev), REPLY_TYPE) == 0)
		return 0;

	/* The data as it came (the runtime has already refused, with 400,
	 * data that is not the JSON its content type declares). */
	data = zc_event_data(ev, &len);

	/* The reply: id, source (K_SERVICE or the binary's name) and time
	 * are filled in. */
	reply = zc_event_new(REPLY_TYPE);
	if (reply == NULL)
		return -1; /* a 500: the Broker retries */
	err = ZC_OK;
	if (len > 0) /* the same bytes and content type back */
		err = zc_event_set_data(
			reply, ctype ? ctype : "application/octet-stream", data,
			len);
	if (err == ZC_OK)
		err = zc_res_event(res, reply); /* copied: free ours */
	zc_event_free(reply);
	return err == ZC_OK ? 0 : -1;
}

/*
 * Called once at start-up, before the port opens.  ZC_ROUTE_REPLYING:
 * answer with the reply event even when the sender did not send
 * "Prefer: reply" (func invoke does not; a Broker does).  To take only
 * some types, set .event_type and register one route per type.
 */
int
zc_function_setup(zc_app *app)
{
	zc_route_opts opts = {.flags = ZC_ROUTE_REPLYING};

	if (zc_event_route(app, "/", handle_event, NULL, &opts) != ZC_OK)
		return -1;
	return 0;
}
