/*
 * test_ce_emit.c - zc_event_send against a receiver in this process: the
 * binary-mode request as it goes on the wire (headers byte for byte),
 * defaults filled, K_CE_OVERRIDES, the traceparent extension next to the
 * traceparent header, K_SINK / URL / broker targets, and the client's
 * retries and success rule (2xx only).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "zenith.h"

#define MAX_REQS 8

/* ---- the receiver: one request per connection, scripted answers ---- */
static struct receiver {
	int lfd, port;
	pthread_t thr;
	atomic_bool stop;
	pthread_mutex_t mu;
	int statuses[MAX_REQS]; /* answer for request i; 0: 202 */
	int n;
	char head[MAX_REQS][8192];
	char body[MAX_REQS][4096];
	size_t body_len[MAX_REQS];
} rx;

static void
serve_one(int fd)
{
	char buf[16384], *end, *cl;
	size_t len = 0, want = 0, hl;
	ssize_t k;
	int i, status;
	char reply[256];

	for (;;) {
		buf[len] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			hl = (size_t)(end - buf) + 4;
			cl = strcasestr(buf, "\r\ncontent-length:");
			want = cl != NULL && cl < end
				       ? strtoul(cl + 17, NULL, 10)
				       : 0;
			if (len >= hl + want)
				break;
		}
		if (len >= sizeof(buf) - 1)
			return;
		k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (k <= 0)
			return;
		len += (size_t)k;
	}
	pthread_mutex_lock(&rx.mu);
	i = rx.n < MAX_REQS ? rx.n : MAX_REQS - 1;
	rx.n++;
	/* every line of the head, the last one too, ends with CRLF */
	snprintf(rx.head[i], sizeof(rx.head[i]), "%.*s", (int)(hl - 2), buf);
	rx.body_len[i] = want < sizeof(rx.body[i]) ? want : 0;
	memcpy(rx.body[i], buf + hl, rx.body_len[i]);
	status = rx.statuses[i] != 0 ? rx.statuses[i] : 202;
	pthread_mutex_unlock(&rx.mu);
	snprintf(reply, sizeof(reply),
		 "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n"
		 "%s\r\n",
		 status,
		 status == 302 ? "Location: http://127.0.0.1:1/\r\n" : "");
	if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
		return;
}

static void *
rx_loop(void *arg)
{
	struct pollfd p;
	int fd;

	(void)arg;
	while (!atomic_load(&rx.stop)) {
		p.fd = rx.lfd;
		p.events = POLLIN;
		if (poll(&p, 1, 20) <= 0)
			continue;
		if ((fd = accept(rx.lfd, NULL, NULL)) < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
	return NULL;
}

static void
rx_start(void)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int one = 1;

	memset(&rx, 0, sizeof(rx));
	pthread_mutex_init(&rx.mu, NULL);
	rx.lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(rx.lfd, 0);
	setsockopt(rx.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(rx.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(rx.lfd, 16), 0);
	getsockname(rx.lfd, (struct sockaddr *)&a, &al);
	rx.port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&rx.thr, NULL, rx_loop, NULL), 0);
}

static void
rx_stop(void)
{
	atomic_store(&rx.stop, true);
	pthread_join(rx.thr, NULL);
	close(rx.lfd);
	pthread_mutex_destroy(&rx.mu);
}

/*
 * The receiver's records are read under its mutex: the thread that wrote
 * them is only ordered with this one through a socket, which a race
 * detector does not see.
 */
static int
rx_count(void)
{
	int n;

	pthread_mutex_lock(&rx.mu);
	n = rx.n;
	pthread_mutex_unlock(&rx.mu);
	return n;
}

static void
rx_answer(int i, int status)
{
	pthread_mutex_lock(&rx.mu);
	rx.statuses[i] = status;
	pthread_mutex_unlock(&rx.mu);
}

/* A copy of request i's head ("POST ... HTTP/1.1\r\n...\r\n"). */
static const char *
rx_head(int i, char *out, size_t size)
{
	pthread_mutex_lock(&rx.mu);
	snprintf(out, size, "%s", rx.head[i]);
	pthread_mutex_unlock(&rx.mu);
	return out;
}

/* Request i's head, copied for the test thread. */
static char headbuf[8192];
#define HEAD(i) rx_head((i), headbuf, sizeof(headbuf))

/* Request i's body into out (size bytes); returns its length. */
static size_t
rx_body(int i, char *out, size_t size)
{
	size_t n;

	pthread_mutex_lock(&rx.mu);
	n = rx.body_len[i] < size ? rx.body_len[i] : size;
	memcpy(out, rx.body[i], n);
	pthread_mutex_unlock(&rx.mu);
	return n;
}

/* The value of header name in request i (names compared exactly), into
 * out; NULL when absent. */
static const char *
rx_header(int i, const char *name, char *out, size_t size)
{
	char needle[128], head[8192];
	const char *p, *e;

	rx_head(i, head, sizeof(head));
	snprintf(needle, sizeof(needle), "\r\n%s: ", name);
	if ((p = strstr(head, needle)) == NULL)
		return NULL;
	p += strlen(needle);
	e = strstr(p, "\r\n");
	snprintf(out, size, "%.*s", (int)(e - p), p);
	return out;
}

/* Request i has this exact header line. */
static bool
rx_has_line(int i, const char *line)
{
	char needle[512], head[8192];

	rx_head(i, head, sizeof(head));
	snprintf(needle, sizeof(needle), "\r\n%s\r\n", line);
	return strstr(head, needle) != NULL;
}

/* ---- the function under test: POST /send sends one event ---- */
static const char *target; /* zc_event_send's target */
static zc_err send_err;

static int
h_send(zc_req *req, zc_res *res, void *arg)
{
	zc_event *ev = zc_event_new("com.example.sent");
	const char *mode = zc_req_query(req, "mode");

	(void)arg;
	ck_assert_ptr_nonnull(ev);
	if (mode == NULL || strcmp(mode, "nodata") != 0) {
		ck_assert_int_eq(zc_event_set(ev, "subject", "ACC 001 ü"),
				 ZC_OK);
		ck_assert_int_eq(
			zc_event_set_json(ev, json_pack("{s:s, s:f}", "account",
							"ACC 001 ü", "amount",
							100.5)),
			ZC_OK);
	}
	if (mode != NULL && strcmp(mode, "own") == 0) {
		zc_event_set(ev, "id", "my-id");
		zc_event_set(ev, "source", "/my/source");
		zc_event_set(ev, "time", "2026-01-01T00:00:00Z");
	}
	send_err = zc_event_send(req, target, ev);
	zc_event_free(ev);
	return zc_res_jsonf(res, 200, "{s:s}", "result", zc_strerror(send_err));
}

static int
setup_app(zc_app *app)
{
	return zc_route(app, "POST", "/send", h_send, NULL);
}

static zc_app *app;
static char sink[64];

static void
setup(void)
{
	unsetenv("K_SERVICE");
	unsetenv("K_CE_OVERRIDES");
	unsetenv("POD_NAMESPACE");
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	setenv("ZC_CLIENT_BACKOFF_MS", "5", 1);
	rx_start();
	snprintf(sink, sizeof(sink), "http://127.0.0.1:%d/sink", rx.port);
	setenv("K_SINK", sink, 1);
	target = NULL;
	send_err = ZC_ERR_NOMEM;
	app = zc_test_app(setup_app);
	ck_assert_ptr_nonnull(app);
}

static void
teardown(void)
{
	zc_app_free(app);
	rx_stop();
	unsetenv("K_SINK");
}

static void
send_with(const char *query, const char *const *headers)
{
	char path[64];
	zc_res *res;

	snprintf(path, sizeof(path), "/send%s", query);
	res = zc_test_request(app, "POST", path, headers, NULL);
	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	zc_res_free(res);
}

static bool
is_uuid4(const char *s)
{
	size_t i;

	if (strlen(s) != 36 || s[14] != '4' || strchr("89ab", s[19]) == NULL)
		return false;
	for (i = 0; i < 36; i++)
		if (i == 8 || i == 13 || i == 18 || i == 23
			    ? s[i] != '-'
			    : strchr("0123456789abcdef", s[i]) == NULL)
			return false;
	return true;
}

/* ---- tests ---- */
START_TEST(binary_request_on_the_wire)
{
	static const char *const h[] = {
		"traceparent: "
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate: vendor=abc", NULL};
	char v[256], tp[256], body[512];
	const char *spec, *id, *src, *type;
	size_t n;
	const char *want_body = "{\"account\":\"ACC 001 ü\",\"amount\":100.5}";

	send_with("", h);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert_int_eq(rx_count(), 1);
	ck_assert_msg(strncmp(HEAD(0), "POST /sink HTTP/1.1\r\n", 21) == 0,
		      "%s", HEAD(0));
	ck_assert(rx_has_line(0, "ce-specversion: 1.0"));
	ck_assert(rx_has_line(0, "ce-source: function"));
	ck_assert(rx_has_line(0, "ce-type: com.example.sent"));
	ck_assert(rx_has_line(0, "ce-subject: ACC%20001%20%C3%BC"));
	ck_assert(rx_has_line(
		0, "ce-traceparent: "
		   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
	ck_assert(rx_has_line(0, "ce-tracestate: vendor=abc"));
	ck_assert(rx_has_line(0, "Content-Type: application/json"));
	ck_assert_ptr_null(rx_header(0, "ce-datacontenttype", v, sizeof(v)));
	ck_assert_ptr_nonnull(rx_header(0, "ce-id", v, sizeof(v)));
	ck_assert_msg(is_uuid4(v), "ce-id %s", v);
	ck_assert_ptr_nonnull(rx_header(0, "ce-time", v, sizeof(v)));
	/* 2026-11-27T20:22:43.123456789Z, trailing zeros of the fraction cut */
	ck_assert_uint_ge(strlen(v), 20);
	ck_assert_uint_le(strlen(v), 30);
	ck_assert_int_eq(v[10], 'T');
	ck_assert_int_eq(v[strlen(v) - 1], 'Z');
	/* the HTTP traceparent: same trace, a new parent-id (this call) */
	ck_assert_ptr_nonnull(rx_header(0, "traceparent", tp, sizeof(tp)));
	ck_assert_int_eq(strlen(tp), 55);
	ck_assert(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36) == 0);
	ck_assert(strcmp(tp + 36, "00f067aa0ba902b7-01") != 0);
	ck_assert(rx_has_line(0, "tracestate: vendor=abc"));
	/* the required four first, in the spec's order */
	spec = strstr(HEAD(0), "\r\nce-specversion:");
	id = strstr(HEAD(0), "\r\nce-id:");
	src = strstr(HEAD(0), "\r\nce-source:");
	type = strstr(HEAD(0), "\r\nce-type:");
	ck_assert(spec < id && id < src && src < type);
	n = rx_body(0, body, sizeof(body));
	ck_assert_uint_eq(n, strlen(want_body));
	ck_assert(memcmp(body, want_body, n) == 0);
}
END_TEST

START_TEST(callers_attributes_are_kept)
{
	setenv("K_SERVICE", "my-service", 1);
	send_with("?mode=own", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert(rx_has_line(0, "ce-id: my-id"));
	ck_assert(rx_has_line(0, "ce-source: /my/source"));
	ck_assert(rx_has_line(0, "ce-time: 2026-01-01T00:00:00Z"));
	/* K_SERVICE is the default source */
	send_with("", NULL);
	ck_assert(rx_has_line(1, "ce-source: my-service"));
}
END_TEST

START_TEST(trace_extension_without_inbound_traceparent)
{
	char ext[128], tp[128];

	send_with("", NULL);
	ck_assert_ptr_nonnull(rx_header(0, "ce-traceparent", ext, sizeof(ext)));
	ck_assert_ptr_nonnull(rx_header(0, "traceparent", tp, sizeof(tp)));
	ck_assert_int_eq(strlen(ext), 55);
	/* one trace: the request's, started here */
	ck_assert(strncmp(ext, tp, 36) == 0);
	ck_assert_ptr_null(rx_header(0, "ce-tracestate", ext, sizeof(ext)));
}
END_TEST

START_TEST(ce_overrides_applied_as_extensions)
{
	setenv("K_CE_OVERRIDES",
	       "{\"extensions\":{\"extra\":\"this is an extra attribute\","
	       "\"additional\":42,\"flag\":true,\"type\":\"nope\","
	       "\"id\":\"nope\",\"Bad\":\"x\",\"gone\":null}}",
	       1);
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert(
		rx_has_line(0, "ce-extra: this%20is%20an%20extra%20attribute"));
	ck_assert(rx_has_line(0, "ce-additional: 42"));
	ck_assert(rx_has_line(0, "ce-flag: true"));
	ck_assert(rx_has_line(0, "ce-type: com.example.sent"));
	ck_assert(strstr(HEAD(0), "nope") == NULL);
	ck_assert(strcasestr(HEAD(0), "ce-bad") == NULL);
	ck_assert(strstr(HEAD(0), "ce-gone") == NULL);
	/* not JSON: ignored, the event still goes */
	setenv("K_CE_OVERRIDES", "{extensions", 1);
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert_int_eq(rx_count(), 2);
}
END_TEST

START_TEST(event_without_data)
{
	char v[64];

	send_with("?mode=nodata", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert_ptr_null(rx_header(0, "Content-Type", v, sizeof(v)));
	ck_assert(rx_has_line(0, "Content-Length: 0"));
	ck_assert_uint_eq(rx_body(0, v, sizeof(v)), 0);
}
END_TEST

START_TEST(targets)
{
	char url[96];

	/* an explicit URL */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/explicit", rx.port);
	target = url;
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert(strncmp(HEAD(0), "POST /explicit HTTP/1.1", 23) == 0);
	/* no target and no K_SINK */
	target = NULL;
	unsetenv("K_SINK");
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_ERR_INVALID);
	setenv("K_SINK", "", 1);
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_ERR_INVALID);
	/* neither a URL nor a broker name */
	target = "My_Broker";
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_ERR_INVALID);
	target = "ftp://example.com/x";
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_ERR_INVALID);
	ck_assert_int_eq(rx_count(), 1);
}
END_TEST

START_TEST(broker_name_resolves_to_broker_ingress)
{
	char proxy[64];

	/* curl honours http_proxy: the proxy sees the absolute URL */
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", rx.port);
	setenv("http_proxy", proxy, 1);
	target = "my-broker";
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert_msg(strncmp(HEAD(0),
			      "POST http://broker-ingress.knative-eventing.svc."
			      "cluster.local/default/my-broker HTTP/1.1",
			      86) == 0,
		      "%s", HEAD(0));
	setenv("POD_NAMESPACE", "prod", 1);
	send_with("", NULL);
	ck_assert_msg(strncmp(HEAD(1),
			      "POST http://broker-ingress.knative-eventing.svc."
			      "cluster.local/prod/my-broker HTTP/1.1",
			      83) == 0,
		      "%s", HEAD(1));
}
END_TEST

START_TEST(retried_with_the_same_id_then_delivered)
{
	char id0[64], id1[64];

	rx_answer(0, 503);
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
	ck_assert_int_eq(rx_count(), 2);
	ck_assert_ptr_nonnull(rx_header(0, "ce-id", id0, sizeof(id0)));
	ck_assert_ptr_nonnull(rx_header(1, "ce-id", id1, sizeof(id1)));
	ck_assert_str_eq(id0, id1);
}
END_TEST

START_TEST(non_2xx_is_not_delivery)
{
	rx_answer(0, 400); /* Knative: not retried */
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_ERR_HTTP);
	ck_assert_int_eq(rx_count(), 1);
	rx_answer(1, 302); /* never followed, never success */
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_ERR_HTTP);
	ck_assert_int_eq(rx_count(), 2);
	rx_answer(2, 200);
	send_with("", NULL);
	ck_assert_int_eq(send_err, ZC_OK);
}
END_TEST

START_TEST(send_outside_a_handler)
{
	zc_event *ev = zc_event_new("com.example.background");
	char v[64];

	ck_assert_int_eq(zc_event_send(NULL, NULL, ev), ZC_OK);
	ck_assert_int_eq(zc_event_send(NULL, NULL, NULL), ZC_ERR_INVALID);
	zc_event_free(ev);
	ck_assert_int_eq(rx_count(), 1);
	ck_assert(rx_has_line(0, "ce-source: zenith-c"));
	ck_assert_ptr_null(rx_header(0, "ce-traceparent", v, sizeof(v)));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("cloudevents emit");
	TCase *tc = tcase_create("send");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, binary_request_on_the_wire);
	tcase_add_test(tc, callers_attributes_are_kept);
	tcase_add_test(tc, trace_extension_without_inbound_traceparent);
	tcase_add_test(tc, ce_overrides_applied_as_extensions);
	tcase_add_test(tc, event_without_data);
	tcase_add_test(tc, targets);
	tcase_add_test(tc, broker_name_resolves_to_broker_ingress);
	tcase_add_test(tc, retried_with_the_same_id_then_delivered);
	tcase_add_test(tc, non_2xx_is_not_delivery);
	tcase_add_test(tc, send_outside_a_handler);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
