/*
 * function.c - a starter Zenith C function: POST / (and GET /) answer the
 * JSON they are sent, which is what `func invoke` sends and expects;
 * GET /hello?name=... greets; POST /echo {"message": "..."} answers the
 * message back.  Copy this directory (or `func create -l c -t zenith/http`),
 * and replace the handlers.
 *
 * You write zc_function_setup() and the handlers; the library supplies
 * main(), the HTTP server, health endpoints, logging and the SIGTERM drain.
 * The full API is in zenith.h; docs/api.md explains the execution model.
 */
#include <string.h>
#include <zenith.h>

#define MAX_NAME 64 /* bytes; a longer name is the client's mistake */

/*
 * A handler fills in res and returns 0.  It runs on one of several server
 * threads at once, so it must not keep req, res, or any string they
 * returned after it returns, and any state it shares with other requests
 * (a static counter, a cache) needs a mutex or an atomic.
 */
static int
handle_hello(zc_req *req, zc_res *res, void *arg)
{
	/* Borrowed from the request: valid until this handler returns. */
	const char *name = zc_req_query(req, "name");

	(void)arg; /* the pointer given to zc_route(); unused here */
	if (name == NULL || name[0] == '\0')
		name = "world";
	if (strlen(name) > MAX_NAME)
		/* {"error":"..."} with status 400; returning its result (0 on
		 * success) is the usual way to end a handler. */
		return zc_res_error(res, 400, "name must be at most %d bytes",
				    MAX_NAME);

	zc_info("greeting %s", name); /* one line on stderr, thread-safe */

	/* Build the JSON answer json_pack-style: {"message":"Hello, Ada!"}.
	 * Each "+" after "s" appends one more string.  A non-zero result
	 * (out of memory) returned from the handler becomes a generic 500. */
	return zc_res_jsonf(res, 200, "{s:s++}", "message", "Hello, ", name,
			    "!");
}

static int
handle_echo(zc_req *req, zc_res *res, void *arg)
{
	const char *message;
	json_t *body;

	(void)arg;
	/*
	 * The body parsed as JSON.  On a bad body zc_req_json has already
	 * put a 400 with {"error":"..."} in res; so has zc_json_string when
	 * "message" is missing or not a string.  Either way: return 0.
	 */
	body = zc_req_json(req, res);
	if (body == NULL ||
	    zc_json_string(body, "message", &message, res) != ZC_OK)
		return 0;

	/* "I" is a 64-bit JSON integer: {"echo":"hi","bytes":2}. */
	return zc_res_jsonf(res, 200, "{s:s, s:I}", "echo", message, "bytes",
			    (json_int_t)strlen(message));
}

/*
 * "/" is where `func invoke` and a Knative Trigger send: POST with
 * {"message":"Hello World"} (func invoke --request-type GET sends the
 * same body on a GET).  Answer the JSON as it came, like func's own
 * starters answer every request; a GET without a body gets
 * {"message":"OK"}.
 */
static int
handle_root(zc_req *req, zc_res *res, void *arg)
{
	size_t len = 0;
	json_t *body;

	(void)arg;
	zc_req_body(req, &len);
	if (len == 0 && strcmp(zc_req_method(req), "GET") == 0)
		return zc_res_jsonf(res, 200, "{s:s}", "message", "OK");
	body = zc_req_json(req, res); /* borrowed; NULL: res holds a 400 */
	if (body == NULL)
		return 0;
	/* zc_res_json steals a reference: take one for it. */
	return zc_res_json(res, 200, json_incref(body));
}

/*
 * Called once at start-up, before the port opens.  Register every route
 * here; returning non-zero stops the process with exit code 1.
 */
int
zc_function_setup(zc_app *app)
{
	if (zc_route(app, "POST", "/", handle_root, NULL) != ZC_OK ||
	    zc_route(app, "GET", "/", handle_root, NULL) != ZC_OK)
		return -1;
	if (zc_route(app, "GET", "/hello", handle_hello, NULL) != ZC_OK)
		return -1;
	if (zc_route(app, "POST", "/echo", handle_echo, NULL) != ZC_OK)
		return -1;
	return 0;
}
