/*
 * ce_function.c - a test function for the e2e CloudEvents tests
 * (test_events.py builds it against the build's libzenithc.a), written
 * from the Functions Framework conformance suite's documented behaviour:
 * the event a function receives is written out as JSON and compared.
 *
 *   POST /        any event: written to $OUTPUT_FILE (default
 *                 function_output.json) as {attributes..., "data": ...},
 *                 after sleeping CE_SLEEP_MS (the concurrency check);
 *                 answers 202
 *   POST /reply   a replying route: answers com.example.echo with the
 *                 event's data, subject "re: <subject>" and extension
 *                 seenid = the event's id
 *   POST /maybe   the same reply on an ordinary route: sent only when the
 *                 request carries Prefer: reply
 *   GET  /hello   an HTTP route in the same function
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zenith.h>

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static json_t *
event_json(const zc_event *ev)
{
	json_t *o = json_object(), *j = zc_event_json(ev);
	const char *name, *value, *data;
	size_t i, len;

	for (i = 0; i < zc_event_attr_count(ev); i++) {
		name = zc_event_attr_at(ev, i, &value);
		json_object_set_new(o, name, json_string(value));
	}
	data = zc_event_data(ev, &len);
	if (j != NULL)
		json_object_set(o, "data", j);
	else if (len > 0)
		json_object_set_new(o, "data", json_stringn(data, len));
	return o;
}

static int
on_any(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	const char *path = getenv("OUTPUT_FILE");
	const char *sleep_ms = getenv("CE_SLEEP_MS");
	json_t *o;
	int rc;

	(void)req;
	(void)res;
	(void)arg;
	if (sleep_ms != NULL) {
		long ms = atol(sleep_ms);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	o = event_json(ev);
	pthread_mutex_lock(&out_mu);
	rc = json_dump_file(o, path != NULL ? path : "function_output.json",
			    JSON_COMPACT);
	pthread_mutex_unlock(&out_mu);
	json_decref(o);
	return rc == 0 ? 0 : -1;
}

static int
on_reply(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	zc_event *r = zc_event_new("com.example.echo");
	const char *subject = zc_event_subject(ev), *ct;
	char buf[256];
	size_t len;
	const char *data = zc_event_data(ev, &len);
	zc_err err;

	(void)req;
	(void)arg;
	if (r == NULL)
		return -1;
	snprintf(buf, sizeof(buf), "re: %s", subject != NULL ? subject : "-");
	err = zc_event_set(r, "subject", buf);
	if (err == ZC_OK)
		err = zc_event_set(r, "seenid", zc_event_id(ev));
	ct = zc_event_datacontenttype(ev);
	if (err == ZC_OK && len > 0)
		err = zc_event_set_data(r, ct, data, len);
	if (err == ZC_OK)
		err = zc_res_event(res, r);
	zc_event_free(r);
	return err == ZC_OK ? 0 : -1;
}

static int
on_hello(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(void)arg;
	return zc_res_jsonf(res, 200, "{s:s}", "hello", "http");
}

int
zc_function_setup(zc_app *app)
{
	if (zc_event_route(app, "/", on_any, NULL, NULL) != ZC_OK ||
	    zc_event_route(app, "/reply", on_reply, NULL,
			   &(zc_route_opts){.flags = ZC_ROUTE_REPLYING}) !=
		    ZC_OK ||
	    zc_event_route(app, "/maybe", on_reply, NULL, NULL) != ZC_OK ||
	    zc_route(app, "GET", "/hello", on_hello, NULL) != ZC_OK)
		return -1;
	return 0;
}
