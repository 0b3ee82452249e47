/*
 * caller.c - a test function for the e2e fault tests (test_faults.py
 * builds it against the build's libzenithc.a).  It makes exactly the
 * outbound call it is told to, to the target "downstream"
 * (DOWNSTREAM_URL, DOWNSTREAM_RETRIES, ...), so the client's rules can be
 * checked on calls the examples do not make (a POST without an
 * Idempotency-Key).
 *
 *   POST /call   the request body is POSTed to downstream /log, in line;
 *                with header X-Call-Key the call carries that
 *                Idempotency-Key.  Answers 200 {"result":"<zc_strerror>",
 *                "status":<downstream status>,"attempts":<n>}.
 *   POST /async  the same call through zc_call_send_async; answers 202
 *                {"queued":true} or 503 {"error":...}.
 */
#include <zenith.h>

static zc_call *
build(zc_req *req, zc_res *res)
{
	const char *key = zc_req_header(req, "X-Call-Key");
	json_t *body = zc_req_json(req, res);
	zc_call *call;

	if (body == NULL)
		return NULL;
	call = zc_call_new(req, "downstream", "POST", "/log");
	if (call == NULL)
		return NULL;
	zc_call_json(call, body);
	if (key != NULL)
		zc_call_header(call, "Idempotency-Key", key);
	return call;
}

static int
handle_call(zc_req *req, zc_res *res, void *arg)
{
	zc_call *call = build(req, res);
	zc_err err;
	int rc;

	(void)arg;
	if (call == NULL)
		return zc_res_get_status(res) != 0 ? 0 : -1;
	err = zc_call_perform(call);
	rc = zc_res_jsonf(res, 200, "{s:s, s:i, s:i}", "result",
			  zc_strerror(err), "status", zc_call_status(call),
			  "attempts", zc_call_attempts(call));
	zc_call_free(call);
	return rc;
}

static int
handle_async(zc_req *req, zc_res *res, void *arg)
{
	zc_call *call = build(req, res);
	zc_err err;

	(void)arg;
	if (call == NULL)
		return zc_res_get_status(res) != 0 ? 0 : -1;
	err = zc_call_send_async(call);
	if (err != ZC_OK) {
		zc_call_free(call);
		return zc_res_error(res, 503, "not queued: %s",
				    zc_strerror(err));
	}
	return zc_res_jsonf(res, 202, "{s:b}", "queued", 1);
}

int
zc_function_setup(zc_app *app)
{
	if (zc_service(app, "downstream", NULL) != ZC_OK)
		return -1;
	if (zc_route(app, "POST", "/call", handle_call, NULL) != ZC_OK)
		return -1;
	return zc_route(app, "POST", "/async", handle_async, NULL);
}
