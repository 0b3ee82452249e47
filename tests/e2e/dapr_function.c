/*
 * dapr_function.c - a test function for the e2e Dapr tests (test_dapr.py
 * builds it against the build's libzenithc.a):
 *
 *   POST /orders   topic "orders" of pub/sub "pubsub" (idempotent on
 *                  source + id).  The event's data says what to answer:
 *                  {"answer": <status>}, {"fail": true} (returns -1),
 *                  {"fail_times": n} (503 until the n+1st delivery of
 *                  that id); else 202.  Each run logs
 *                  "[GOT] <id> topic=<topic> trace=<traceparent header>".
 *   POST /publish  {"pubsub", "topic", "data"[, "target"]}: zc_dapr_publish
 *                  (or zc_event_send to target); answers 200
 *                  {"err": zc_strerror}
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zenith.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char id[64];
	int n;
} seen[64];

/* How often the event id has been handled, this one included. */
static int
count(const char *id)
{
	int i, n = 0;

	pthread_mutex_lock(&mu);
	for (i = 0; i < 64; i++) {
		if (seen[i].id[0] == '\0')
			snprintf(seen[i].id, sizeof(seen[i].id), "%s", id);
		if (strcmp(seen[i].id, id) == 0) {
			n = ++seen[i].n;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return n;
}

static int
on_order(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	json_t *d = zc_event_json(ev);
	json_t *a = json_object_get(d, "answer");
	json_t *f = json_object_get(d, "fail_times");
	const char *tp = zc_req_header(req, "traceparent");
	int n = count(zc_event_id(ev));

	(void)arg;
	zc_info("[GOT] %s topic=%s trace=%s", zc_event_id(ev),
		zc_event_attr(ev, "topic") ? zc_event_attr(ev, "topic") : "-",
		tp != NULL ? tp : "-");
	if (json_is_true(json_object_get(d, "fail")))
		return -1;
	if (json_is_integer(a))
		return zc_res_error(res, (int)json_integer_value(a),
				    "answered %d as asked",
				    (int)json_integer_value(a));
	if (json_is_integer(f) && n <= json_integer_value(f))
		return zc_res_error(res, 503, "failing %d of %d", n,
				    (int)json_integer_value(f));
	return 0;
}

static int
on_publish(zc_req *req, zc_res *res, void *arg)
{
	const char *pubsub, *topic, *target;
	json_t *in = zc_req_json(req, res), *data;
	zc_event *ev;
	zc_err err;

	(void)arg;
	if (in == NULL)
		return 0;
	pubsub = json_string_value(json_object_get(in, "pubsub"));
	topic = json_string_value(json_object_get(in, "topic"));
	target = json_string_value(json_object_get(in, "target"));
	data = json_object_get(in, "data");
	if ((ev = zc_event_new("com.example.order")) == NULL)
		return -1;
	if (data != NULL)
		zc_event_set_json(ev, json_incref(data));
	err = target != NULL ? zc_event_send(req, target, ev)
			     : zc_dapr_publish(req, pubsub, topic, ev);
	zc_event_free(ev);
	return zc_res_jsonf(res, 200, "{s:s}", "err", zc_strerror(err));
}

int
zc_function_setup(zc_app *app)
{
	if (zc_dapr_subscribe(
		    app, "pubsub", "orders", "/orders", on_order, NULL,
		    &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) != ZC_OK)
		return -1;
	return zc_route(app, "POST", "/publish", on_publish, NULL);
}
