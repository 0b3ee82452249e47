/*
 * fuzz_cloudevents.c - receiving CloudEvents: the request (layout in
 * fuzz_common.h; POST with ce-* headers for binary mode,
 * application/cloudevents+json for structured, application/cloudevents-
 * batch+json for batch) goes to an app with event routes: any type on
 * "/", a typed replying route on "/reply", an idempotent one on "/once".
 * Handlers read every attribute and the data, check what the API
 * promises (the required attributes are there, values are strings, data
 * parsed as JSON is JSON), and the "/reply" route answers with a reply
 * event built from the one received.  Every response passes
 * fz_check_response; event routes answer only statuses the runtime
 * documents.
 */
#include "fuzz_common.h"

static int
reader(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	size_t i, n, len;
	const char *name, *value, *data;
	json_t *j;

	(void)req;
	(void)res;
	(void)arg;
	FZ_CHECK(zc_event_id(ev) != NULL && zc_event_id(ev)[0] != '\0');
	FZ_CHECK(zc_event_source(ev) != NULL && zc_event_source(ev)[0]);
	FZ_CHECK(zc_event_type(ev) != NULL && zc_event_type(ev)[0]);
	FZ_CHECK(zc_event_attr(ev, "specversion") != NULL);
	n = zc_event_attr_count(ev);
	for (i = 0; i < n; i++) {
		value = NULL;
		name = zc_event_attr_at(ev, i, &value);
		FZ_CHECK(name != NULL && value != NULL);
		FZ_CHECK(zc_event_attr(ev, name) != NULL, "attr %s", name);
	}
	FZ_CHECK(zc_event_attr_at(ev, n, &value) == NULL);
	data = zc_event_data(ev, &len);
	FZ_CHECK(len == 0 || data != NULL);
	j = zc_event_json(ev);
	if (j != NULL) {
		char *s = zc_json_dumps(j);
		FZ_CHECK(s != NULL);
		free(s);
	}
	(void)zc_event_subject(ev);
	(void)zc_event_time(ev);
	(void)zc_event_datacontenttype(ev);
	return 0;
}

static int
replier(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	zc_event *out;
	json_t *j;
	const char *s;

	reader(req, ev, res, arg);
	out = zc_event_new("t.reply.done");
	FZ_CHECK(out != NULL);
	if ((s = zc_event_subject(ev)) != NULL)
		zc_event_set(out, "subject", s); /* may refuse: fine */
	if ((s = zc_event_attr(ev, "ext")) != NULL)
		zc_event_set(out, "ext", s);
	j = zc_event_json(ev);
	if (j != NULL) {
		zc_event_set_json(out, json_deep_copy(j));
	} else {
		/* not JSON: sent on as bytes (a JSON content type claimed by
		 * the sender is not repeated for data that is not JSON) */
		size_t len;
		const char *d = zc_event_data(ev, &len);
		const char *ct = zc_event_datacontenttype(ev);
		if (ct == NULL || strstr(ct, "json") != NULL)
			ct = "application/octet-stream";
		if (len > 0)
			zc_event_set_data(out, ct, d, len);
	}
	zc_res_event(res, out);
	zc_event_free(out);
	return 0;
}

static int
failing(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	reader(req, ev, res, arg);
	return strcmp(zc_event_type(ev), "t.fail") == 0 ? -1 : 0;
}

static int
setup(zc_app *app)
{
	if (zc_event_route(app, "/", reader, NULL, NULL) != ZC_OK ||
	    zc_event_route(app, "/", failing, NULL,
			   &(zc_route_opts){.event_type = "t.fail"}) != ZC_OK ||
	    zc_event_route(app, "/reply", replier, NULL,
			   &(zc_route_opts){.flags = ZC_ROUTE_REPLYING,
					    .event_type = "t.reply"}) !=
		    ZC_OK ||
	    zc_event_route(app, "/once", replier, NULL,
			   &(zc_route_opts){.flags = ZC_ROUTE_IDEMPOTENT}) !=
		    ZC_OK)
		return -1;
	return 0;
}

static bool
documented(int status)
{
	static const int ok[] = {200, 202, 204, 400, 404, 405,
				 409, 413, 415, 422, 500, 0};
	int i;

	for (i = 0; ok[i]; i++)
		if (ok[i] == status)
			return true;
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env_defaults();
	setenv("ZC_MAX_BODY_BYTES", "16384", 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_request r;
	zc_app *app;
	zc_res *res, *again;

	app = zc_test_app(setup);
	FZ_CHECK(app != NULL, "zc_test_app failed");
	fz_request_parse(&r, data, size);
	res = zc_test_request(app, r.method, r.target,
			      (const char *const *)r.headers, r.body);
	fz_check_response(res);
	FZ_CHECK(documented(res->status), "status %d", res->status);
	if (strncmp(r.target, "/once", 5) == 0 && res->status < 500) {
		again = zc_test_request(app, r.method, r.target,
					(const char *const *)r.headers, r.body);
		fz_check_response(again);
		FZ_CHECK(documented(again->status));
		zc_res_free(again);
	}
	zc_res_free(res);
	fz_request_free(&r);
	zc_app_free(app);
	return 0;
}
