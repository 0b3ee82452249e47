/*
 * test_client.c - the outbound client against a real TCP server in this
 * process that misbehaves on demand: errors, garbage, slowness, hang-ups,
 * oversized replies.  Each test starts its own server on 127.0.0.1:0.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "fake_http.h"

enum scenario {
	SC_OK,       /* 200 {"ok":true,"n":1}, keep-alive */
	SC_503,      /* 503 {"error":"down"}, keep-alive */
	SC_BAD_JSON, /* 200 with a body that is not JSON */
	SC_EMPTY_204,
	SC_REDIRECT, /* 302 to elsewhere: must not be followed */
	SC_ECHO,     /* 200 {"head":"<request head>","body":"<request body>"} */
	SC_SLOW,     /* waits SLOW_MS before answering */
	SC_CLOSE_MID,    /* headers promise 100 bytes, 11 arrive, then FIN */
	SC_CLOSE_EMPTY,  /* FIN without a byte of reply */
	SC_RESET,        /* RST instead of a reply */
	SC_SIZED,        /* 200 with a body of exactly reply_size bytes */
	SC_SIZED_CHUNKED /* the same, chunked: no Content-Length to check */
};

#define SLOW_MS 2000

/* ---- the fake downstream: every request answered as scenario says ---- */

static struct fake_http fake;
static struct {
	atomic_int scenario;
	atomic_int reply_size; /* for SC_SIZED* */
} ctl;

static int
reply_echo(struct fh_conn *c)
{
	json_t *j;
	char *s;
	int rc;

	j = json_pack("{s:s%,s:s%}", "head", c->buf, c->head_len, "body",
		      c->buf + c->head_len, c->body_len);
	if (j == NULL)
		return -1;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return -1;
	/* a HEAD answer keeps its Content-Length but sends no body */
	rc = fh_reply(c->fd, 200, "OK", "", s, strlen(s),
		      strncmp(c->buf, "HEAD ", 5) == 0);
	free(s);
	return rc;
}

static int
reply_sized(int fd, bool chunked)
{
	size_t size = (size_t)atomic_load(&ctl.reply_size), i, off;
	char head[256], *body;
	int n, rc = 0;

	/* A JSON string of exactly size bytes: "xxx...". */
	if (size < 2 || (body = malloc(size)) == NULL)
		return -1;
	memset(body, 'x', size);
	body[0] = body[size - 1] = '"';
	if (!chunked) {
		rc = fh_reply(fd, 200, "OK", "", body, size, false);
		free(body);
		return rc;
	}

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n");
	rc = fh_send_all(fd, head, (size_t)n);
	/* Several chunks, so the client's buffer grows while reading. */
	for (off = 0; rc == 0 && off < size; off += i) {
		i = size - off < 1000 ? size - off : 1000;
		n = snprintf(head, sizeof(head), "%zx\r\n", i);
		if (fh_send_all(fd, head, (size_t)n) != 0 ||
		    fh_send_all(fd, body + off, i) != 0 ||
		    fh_send_all(fd, "\r\n", 2) != 0)
			rc = -1;
	}
	if (rc == 0)
		rc = fh_send_all(fd, "0\r\n\r\n", 5);
	free(body);
	return rc;
}

/* Answer one request.  Returns 0 to keep the connection, -1 to end it. */
static int
answer(struct fake_http *f, struct fh_conn *c)
{
	static const char ok[] = "{\"ok\":true,\"n\":1}";
	static const char down[] = "{\"error\":\"down\"}";
	static const char garbage[] = "this is not json{";
	static const char partial[] = "{\"partial\":";
	static const char partial_head[] =
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		"Content-Length: 100\r\n\r\n";

	fh_record(f, c);
	switch (atomic_load(&ctl.scenario)) {
	case SC_OK:
		return fh_reply(c->fd, 200, "OK", "", ok, strlen(ok), false);
	case SC_503:
		return fh_reply(c->fd, 503, "Service Unavailable", "", down,
				strlen(down), false);
	case SC_BAD_JSON:
		return fh_reply(c->fd, 200, "OK", "", garbage, strlen(garbage),
				false);
	case SC_EMPTY_204:
		return fh_send_all(c->fd, "HTTP/1.1 204 No Content\r\n\r\n",
				   27);
	case SC_REDIRECT:
		return fh_reply(c->fd, 302, "Found", "Location: /elsewhere\r\n",
				ok, strlen(ok), false);
	case SC_ECHO:
		return reply_echo(c);
	case SC_SLOW:
		/* Wakes early when the client gives up and closes. */
		if (fh_wait_quiet(f, c->fd, SLOW_MS) != 0)
			return -1;
		return fh_reply(c->fd, 200, "OK", "", ok, strlen(ok), false);
	case SC_CLOSE_MID:
		fh_send_all(c->fd, partial_head, strlen(partial_head));
		fh_send_all(c->fd, partial, strlen(partial));
		return -1;
	case SC_CLOSE_EMPTY:
		return -1;
	case SC_RESET:
		return fh_reset(c);
	case SC_SIZED:
		return reply_sized(c->fd, false);
	case SC_SIZED_CHUNKED:
		return reply_sized(c->fd, true);
	}
	return -1;
}

static void
fake_start(void)
{
	atomic_store(&ctl.scenario, SC_OK);
	atomic_store(&ctl.reply_size, 0);
	fh_start(&fake, answer);
	set_service_port("fake-down", fake.port);
	/* Built-in defaults for every test; a test may lower them. */
	zc__client_set_defaults(5000, 2000, 8 * 1024 * 1024);
}

static void
fake_stop(void)
{
	fh_stop(&fake);
	unsetenv("FAKE_DOWN_URL");
	unsetenv("FAKE_DOWN_RETRIES");
}

/* ---- helpers ---- */

/* One GET /x against fake-down in the current scenario. */
static zc_err
get_once(int scenario, zc_call **out)
{
	zc_call *call;
	zc_err err;

	atomic_store(&ctl.scenario, scenario);
	call = zc_call_new(NULL, "fake-down", "GET", "/x");
	ck_assert_ptr_nonnull(call);
	err = zc_call_perform(call);
	if (out != NULL)
		*out = call;
	else
		zc_call_free(call);
	return err;
}

/* ---- tests ---- */

START_TEST(test_ok_json)
{
	char want[64];
	zc_call *call;
	json_t *j;
	size_t len;

	ck_assert_int_eq(get_once(SC_OK, &call), ZC_OK);
	ck_assert_int_eq(zc_call_status(call), 200);
	ck_assert_str_eq(zc_call_reply(call, &len), "{\"ok\":true,\"n\":1}");
	ck_assert_uint_eq(len, strlen("{\"ok\":true,\"n\":1}"));
	j = zc_call_reply_json(call);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_true(json_object_get(j, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "n")), 1);
	/* Parsed once and cached: the same borrowed value both times. */
	ck_assert_ptr_eq(zc_call_reply_json(call), j);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d/x", fake.port);
	ck_assert_str_eq(zc_call_url(call), want);
	zc_call_free(call);
}
END_TEST

START_TEST(test_keepalive_one_connection)
{
	/*
	 * One request per call: the 503 below would otherwise be retried
	 * (test_resilience covers that).  Per-target env is read when the
	 * target is first used, i.e. by the first call below.
	 */
	setenv("FAKE_DOWN_RETRIES", "0", 1);
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
	ck_assert_int_eq(atomic_load(&fake.requests), 2);
	ck_assert_int_eq(atomic_load(&fake.accepts), 1);
	/* An error status is still a complete reply: the connection stays. */
	ck_assert_int_eq(get_once(SC_503, NULL), ZC_ERR_HTTP);
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
	ck_assert_int_eq(atomic_load(&fake.requests), 4);
	ck_assert_int_eq(atomic_load(&fake.accepts), 1);
}
END_TEST

START_TEST(test_http_503_json)
{
	zc_call *call;
	json_t *j;
	size_t len;

	ck_assert_int_eq(get_once(SC_503, &call), ZC_ERR_HTTP);
	ck_assert_int_eq(zc_call_status(call), 503);
	ck_assert_ptr_nonnull(zc_call_reply(call, &len));
	ck_assert_uint_eq(len, strlen("{\"error\":\"down\"}"));
	j = zc_call_reply_json(call);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
			 "down");
	zc_call_free(call);
}
END_TEST

START_TEST(test_invalid_json_reply)
{
	zc_call *call;

	/* The transfer worked; only the JSON view is unavailable. */
	ck_assert_int_eq(get_once(SC_BAD_JSON, &call), ZC_OK);
	ck_assert_int_eq(zc_call_status(call), 200);
	ck_assert_str_eq(zc_call_reply(call, NULL), "this is not json{");
	ck_assert_ptr_null(zc_call_reply_json(call));
	ck_assert_ptr_null(zc_call_reply_json(call));
	zc_call_free(call);
}
END_TEST

START_TEST(test_empty_204)
{
	zc_call *call;
	size_t len = 99;

	ck_assert_int_eq(get_once(SC_EMPTY_204, &call), ZC_OK);
	ck_assert_int_eq(zc_call_status(call), 204);
	ck_assert_str_eq(zc_call_reply(call, &len), "");
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(zc_call_reply_json(call));
	zc_call_free(call);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
	zc_call *call;

	ck_assert_int_eq(get_once(SC_REDIRECT, &call), ZC_OK);
	ck_assert_int_eq(zc_call_status(call), 302);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	zc_call_free(call);
}
END_TEST

START_TEST(test_post_json_and_headers)
{
	const char *head, *body;
	size_t want_len;
	char *want;
	zc_call *call;
	json_t *in, *echo;

	atomic_store(&ctl.scenario, SC_ECHO);
	call = zc_call_new(NULL, "fake-down", "POST", "/transactions?x=1");
	ck_assert_ptr_nonnull(call);
	in = json_pack("{s:s,s:f,s:[i,i]}", "id", "tx-1", "amount", 30.5,
		       "list", 1, 2);
	ck_assert_ptr_nonnull(in);
	want = zc__json_dump(in, &want_len);
	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(zc_call_json(call, in), ZC_OK);
	/* Borrowed and serialised at once: freeing it now is fine. */
	json_decref(in);
	ck_assert_int_eq(zc_call_header(call, "X-Request-Id", "abc-123"),
			 ZC_OK);
	ck_assert_int_eq(zc_call_header(call, "X-Empty", ""), ZC_OK);

	ck_assert_int_eq(zc_call_perform(call), ZC_OK);
	echo = zc_call_reply_json(call);
	ck_assert_ptr_nonnull(echo);
	head = json_string_value(json_object_get(echo, "head"));
	body = json_string_value(json_object_get(echo, "body"));
	ck_assert_ptr_nonnull(head);
	ck_assert_ptr_nonnull(body);
	ck_assert_msg(
		strncmp(head, "POST /transactions?x=1 HTTP/1.1\r\n", 33) == 0,
		"head: %s", head);
	ck_assert_ptr_nonnull(
		strcasestr(head, "\r\nContent-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(
		strcasestr(head, "\r\nAccept: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(head, "\r\nX-Request-Id: abc-123\r\n"));
	ck_assert_ptr_nonnull(strstr(head, "\r\nX-Empty:"));
	ck_assert_ptr_null(strcasestr(head, "\r\nExpect:"));
	ck_assert_str_eq(body, want);
	free(want);
	zc_call_free(call);
}
END_TEST

START_TEST(test_post_without_body)
{
	const char *head;
	zc_call *call;

	atomic_store(&ctl.scenario, SC_ECHO);
	call = zc_call_new(NULL, "fake-down", "PUT", "/p");
	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(zc_call_perform(call), ZC_OK);
	head = json_string_value(
		json_object_get(zc_call_reply_json(call), "head"));
	ck_assert_ptr_nonnull(head);
	ck_assert(strncmp(head, "PUT /p HTTP/1.1\r\n", 17) == 0);
	ck_assert_ptr_nonnull(strcasestr(head, "\r\nContent-Length: 0\r\n"));
	/* Not curl's form-urlencoded default for a body we do not send. */
	ck_assert_ptr_null(strcasestr(head, "\r\nContent-Type:"));
	zc_call_free(call);
}
END_TEST

/*
 * One thread's handle serves every call, and it is not reset between
 * them: nothing of one call (its method, its body, HEAD's "no body") may
 * show in the next.  Each call's request head and body as the server saw
 * them, in an order where each method follows one that set something.
 */
START_TEST(test_no_option_leaks_between_calls)
{
	static const struct {
		const char *method, *body, *line;
		bool has_length;
	} seq[] = {
		{"POST", "{\"a\":1}", "POST /s HTTP/1.1\r\n", true},
		{"HEAD", NULL, "HEAD /s HTTP/1.1\r\n", false},
		{"POST", "{\"b\":2}", "POST /s HTTP/1.1\r\n", true},
		{"GET", NULL, "GET /s HTTP/1.1\r\n", false},
		{"PUT", "{\"c\":3}", "PUT /s HTTP/1.1\r\n", true},
		{"DELETE", NULL, "DELETE /s HTTP/1.1\r\n", false},
		{"PATCH", NULL, "PATCH /s HTTP/1.1\r\n", true},
		{"HEAD", NULL, "HEAD /s HTTP/1.1\r\n", false},
		{"GET", NULL, "GET /s HTTP/1.1\r\n", false},
	};
	char head[2048], cl[32];
	size_t i;
	int base;

	atomic_store(&ctl.scenario, SC_ECHO);
	setenv("FAKE_DOWN_RETRIES", "0", 1);
	base = atomic_load(&fake.requests);
	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		zc_call *call =
			zc_call_new(NULL, "fake-down", seq[i].method, "/s");
		json_t *body =
			seq[i].body ? json_loads(seq[i].body, 0, NULL) : NULL;

		ck_assert_ptr_nonnull(call);
		if (body != NULL)
			ck_assert_int_eq(zc_call_json(call, body), ZC_OK);
		json_decref(body);
		ck_assert_msg(zc_call_perform(call) == ZC_OK, "call %zu (%s)",
			      i, seq[i].method);
		ck_assert_int_eq(zc_call_status(call), 200);
		fh_rec_copy(&fake, base + (int)i, head, sizeof(head));
		ck_assert_msg(strncmp(head, seq[i].line, strlen(seq[i].line)) ==
				      0,
			      "call %zu: %s", i, head);
		fh_header(head, "Content-Length", cl, sizeof(cl));
		if (!seq[i].has_length)
			ck_assert_msg(cl[0] == '\0',
				      "call %zu (%s) sent "
				      "Content-Length %s",
				      i, seq[i].method, cl);
		else if (seq[i].body != NULL)
			ck_assert_int_eq(atoi(cl), (int)strlen(seq[i].body));
		else
			ck_assert_str_eq(cl, "0");
		if (seq[i].body != NULL)
			ck_assert_ptr_nonnull(strstr(head, seq[i].body));
		if (strcmp(seq[i].method, "HEAD") != 0) {
			const char *echo = json_string_value(json_object_get(
				zc_call_reply_json(call), "head"));
			ck_assert_ptr_nonnull(echo);
			ck_assert(strncmp(echo, seq[i].line,
					  strlen(seq[i].line)) == 0);
		}
		zc_call_free(call);
	}
	/* all on the one kept-alive connection */
	ck_assert_int_eq(atomic_load(&fake.accepts), 1);
}
END_TEST

START_TEST(test_user_accept_replaces_default)
{
	const char *head;
	zc_call *call;

	atomic_store(&ctl.scenario, SC_ECHO);
	call = zc_call_new(NULL, "fake-down", "GET", "/a");
	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(zc_call_header(call, "accept", "*/*"), ZC_OK);
	ck_assert_int_eq(zc_call_perform(call), ZC_OK);
	head = json_string_value(
		json_object_get(zc_call_reply_json(call), "head"));
	ck_assert_ptr_nonnull(head);
	ck_assert_ptr_nonnull(strstr(head, "\r\naccept: */*\r\n"));
	ck_assert_ptr_null(strcasestr(head, "application/json"));
	zc_call_free(call);
}
END_TEST

START_TEST(test_timeout_holds)
{
	zc_call *call;
	long t0, ms;

	atomic_store(&ctl.scenario, SC_SLOW);
	call = zc_call_new(NULL, "fake-down", "GET", "/slow");
	ck_assert_ptr_nonnull(call);
	zc_call_timeout_ms(call, 200);
	t0 = now_ms();
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_TIMEOUT);
	ms = now_ms() - t0;
	ck_assert_msg(ms >= 190 && ms <= 600, "timeout took %ld ms", ms);
	ck_assert_int_eq(zc_call_status(call), 0);
	ck_assert_ptr_null(zc_call_reply(call, NULL));
	ck_assert_ptr_null(zc_call_reply_json(call));
	zc_call_free(call);

	/* The thread's handle is still good after a timeout. */
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
}
END_TEST

START_TEST(test_default_timeout_from_config)
{
	long t0, ms;

	zc__client_set_defaults(250, 0, 0);
	t0 = now_ms();
	ck_assert_int_eq(get_once(SC_SLOW, NULL), ZC_ERR_TIMEOUT);
	ms = now_ms() - t0;
	ck_assert_msg(ms >= 240 && ms <= 650, "timeout took %ld ms", ms);
}
END_TEST

START_TEST(test_refused)
{
	zc_call *call;
	long t0;

	set_service_port("fake-down", closed_port());
	t0 = now_ms();
	call = zc_call_new(NULL, "fake-down", "GET", "/x");
	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_REFUSED);
	ck_assert_int_lt(now_ms() - t0, 1000);
	ck_assert_int_eq(zc_call_status(call), 0);
	zc_call_free(call);
}
END_TEST

START_TEST(test_dns_failure)
{
	zc_call *call;

	/* RFC 6761: .invalid never resolves. */
	setenv("FAKE_DOWN_URL", "http://no-such-host.invalid", 1);
	call = zc_call_new(NULL, "fake-down", "GET", "/x");
	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_DNS);
	zc_call_free(call);
}
END_TEST

START_TEST(test_bad_scheme_is_invalid)
{
	zc_call *call;

	setenv("FAKE_DOWN_URL", "file:///etc", 1);
	call = zc_call_new(NULL, "fake-down", "GET", "/passwd");
	ck_assert_ptr_nonnull(call);
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_status(call), 0);
	zc_call_free(call);
}
END_TEST

START_TEST(test_close_mid_response)
{
	zc_call *call;

	/* Single attempt: a GET would be retried on the truncated reply. */
	setenv("FAKE_DOWN_RETRIES", "0", 1);
	ck_assert_int_eq(get_once(SC_CLOSE_MID, &call), ZC_ERR_TRANSPORT);
	/* A truncated reply is no reply. */
	ck_assert_int_eq(zc_call_status(call), 0);
	ck_assert_ptr_null(zc_call_reply(call, NULL));
	zc_call_free(call);
	/* The next call opens a fresh connection and works. */
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
	ck_assert_int_eq(atomic_load(&fake.accepts), 2);
	ck_assert_int_eq(atomic_load(&fake.requests), 2);
}
END_TEST

START_TEST(test_close_without_reply)
{
	ck_assert_int_eq(get_once(SC_CLOSE_EMPTY, NULL), ZC_ERR_TRANSPORT);
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
}
END_TEST

START_TEST(test_connection_reset)
{
	ck_assert_int_eq(get_once(SC_RESET, NULL), ZC_ERR_TRANSPORT);
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
}
END_TEST

START_TEST(test_reply_size_limit)
{
	zc_call *call;
	size_t len;

	zc__client_set_defaults(0, 0, 4096);

	/* Exactly the limit is allowed, by Content-Length and chunked. */
	atomic_store(&ctl.reply_size, 4096);
	ck_assert_int_eq(get_once(SC_SIZED, &call), ZC_OK);
	ck_assert_ptr_nonnull(zc_call_reply(call, &len));
	ck_assert_uint_eq(len, 4096);
	ck_assert_ptr_nonnull(zc_call_reply_json(call));
	zc_call_free(call);
	ck_assert_int_eq(get_once(SC_SIZED_CHUNKED, &call), ZC_OK);
	ck_assert_ptr_nonnull(zc_call_reply(call, &len));
	ck_assert_uint_eq(len, 4096);
	zc_call_free(call);

	/* One byte over is refused either way. */
	atomic_store(&ctl.reply_size, 4097);
	ck_assert_int_eq(get_once(SC_SIZED, &call), ZC_ERR_TOO_LARGE);
	ck_assert_int_eq(zc_call_status(call), 0);
	ck_assert_ptr_null(zc_call_reply(call, NULL));
	zc_call_free(call);
	atomic_store(&ctl.reply_size, 20000);
	ck_assert_int_eq(get_once(SC_SIZED_CHUNKED, NULL), ZC_ERR_TOO_LARGE);

	/* And the handle recovers. */
	ck_assert_int_eq(get_once(SC_OK, NULL), ZC_OK);
}
END_TEST

START_TEST(test_invalid_arguments)
{
	zc_call *call;
	size_t len = 7;

	/* NULL call: every function answers, none crashes. */
	ck_assert_int_eq(zc_call_perform(NULL), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_json(NULL, NULL), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_header(NULL, "a", "b"), ZC_ERR_INVALID);
	zc_call_timeout_ms(NULL, 10);
	zc_call_connect_timeout_ms(NULL, 10);
	ck_assert_int_eq(zc_call_status(NULL), 0);
	ck_assert_ptr_null(zc_call_reply(NULL, &len));
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(zc_call_reply_json(NULL));
	ck_assert_str_eq(zc_call_url(NULL), "");
	zc_call_free(NULL);

	/* Bad service, method or path: a call that fails at perform. */
	call = zc_call_new(NULL, "Bad_Name", "GET", "/x");
	ck_assert_ptr_nonnull(call);
	ck_assert_str_eq(zc_call_url(call), "");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, NULL, "GET", "/x");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", "get", "/x");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", NULL, "/x");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", "GET", "x");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", "GET", "/a b");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", "GET", NULL);
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);

	/* A rejected header or body poisons the call: nothing is sent. */
	atomic_store(&ctl.scenario, SC_OK);
	call = zc_call_new(NULL, "fake-down", "GET", "/x");
	ck_assert_int_eq(zc_call_header(call, "X-A", "1\r\nX-B: 2"),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", "GET", "/x");
	ck_assert_int_eq(zc_call_header(call, "X-A: 1\r\nX-B", "2"),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_header(call, NULL, "2"), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "fake-down", "POST", "/x");
	ck_assert_int_eq(zc_call_json(call, NULL), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_INVALID);
	zc_call_free(call);
	ck_assert_int_eq(atomic_load(&fake.requests), 0);
}
END_TEST

START_TEST(test_perform_twice)
{
	zc_call *call;

	/* Re-performing a call starts from a clean reply each time. */
	atomic_store(&ctl.scenario, SC_503);
	call = zc_call_new(NULL, "fake-down", "GET", "/x");
	ck_assert_int_eq(zc_call_perform(call), ZC_ERR_HTTP);
	ck_assert_ptr_nonnull(zc_call_reply_json(call));
	atomic_store(&ctl.scenario, SC_OK);
	ck_assert_int_eq(zc_call_perform(call), ZC_OK);
	ck_assert_int_eq(zc_call_status(call), 200);
	ck_assert(
		json_is_true(json_object_get(zc_call_reply_json(call), "ok")));
	zc_call_free(call);
}
END_TEST

#define WORKERS          4
#define CALLS_PER_WORKER 5

static void *
worker(void *arg)
{
	atomic_int *failures = arg;
	zc_call *call;
	int i;

	for (i = 0; i < CALLS_PER_WORKER; i++) {
		call = zc_call_new(NULL, "fake-down", "GET", "/w");
		if (call == NULL || zc_call_perform(call) != ZC_OK ||
		    zc_call_reply_json(call) == NULL)
			atomic_fetch_add(failures, 1);
		zc_call_free(call);
	}
	return NULL;
}

START_TEST(test_threads_one_connection_each)
{
	pthread_t t[WORKERS];
	atomic_int failures = 0;
	int i;

	atomic_store(&ctl.scenario, SC_OK);
	for (i = 0; i < WORKERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &failures),
				 0);
	for (i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(atomic_load(&failures), 0);
	ck_assert_int_eq(atomic_load(&fake.requests),
			 WORKERS * CALLS_PER_WORKER);
	/* Each thread's handle kept its own connection for all its calls. */
	ck_assert_int_eq(atomic_load(&fake.accepts), WORKERS);
}
END_TEST

static Suite *
client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("fake_downstream");

	tcase_add_checked_fixture(tc, fake_start, fake_stop);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_ok_json);
	tcase_add_test(tc, test_keepalive_one_connection);
	tcase_add_test(tc, test_http_503_json);
	tcase_add_test(tc, test_invalid_json_reply);
	tcase_add_test(tc, test_empty_204);
	tcase_add_test(tc, test_redirect_not_followed);
	tcase_add_test(tc, test_post_json_and_headers);
	tcase_add_test(tc, test_post_without_body);
	tcase_add_test(tc, test_user_accept_replaces_default);
	tcase_add_test(tc, test_timeout_holds);
	tcase_add_test(tc, test_default_timeout_from_config);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_dns_failure);
	tcase_add_test(tc, test_bad_scheme_is_invalid);
	tcase_add_test(tc, test_close_mid_response);
	tcase_add_test(tc, test_close_without_reply);
	tcase_add_test(tc, test_connection_reset);
	tcase_add_test(tc, test_reply_size_limit);
	tcase_add_test(tc, test_invalid_arguments);
	tcase_add_test(tc, test_perform_twice);
	tcase_add_test(tc, test_no_option_leaks_between_calls);
	tcase_add_test(tc, test_threads_one_connection_each);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_client_suite(client_suite());
}
