/*
 * test_example_transaction-processor.c - the chain's entry function in
 * process, against a fake balance-manager on loopback: bad input is a 400
 * without a downstream call; the downstream's success, client errors,
 * failures, garbage, silence and absence each map to the documented answer,
 * fast.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "zenith.h"

/* ---- a fake balance-manager on loopback ---- */

#define MAX_SEEN 8

/*
 * It serves connections one after another, one request each: the first
 * with first_reply (when set), every other with reply.  It keeps the first
 * request whole and the Idempotency-Key of each.
 */
struct fake {
	int lfd;
	int port;
	pthread_t thread;
	atomic_int stop;
	const char *first_reply;
	const char *reply; /* a whole HTTP response; NULL: never answer */
	char req[8192];	   /* the first request it received */
	size_t req_len;
	char keys[MAX_SEEN][128];
	atomic_int accepted;
};

static int
wait_readable(struct fake *f, int fd)
{
	struct pollfd p = {fd, POLLIN, 0};

	while (!atomic_load(&f->stop)) {
		int n = poll(&p, 1, 10);
		if (n > 0)
			return 0;
		if (n < 0)
			return -1;
	}
	return -1;
}

/* Read one request (headers and Content-Length body) into buf. */
static void
read_request(struct fake *f, int fd, char *buf, size_t size, size_t *len)
{
	const char *end, *cl;
	size_t want = 0;
	ssize_t n;

	*len = 0;
	buf[0] = '\0';
	for (;;) {
		if (wait_readable(f, fd) != 0)
			return;
		n = read(fd, buf + *len, size - 1 - *len);
		if (n <= 0)
			return;
		*len += (size_t)n;
		buf[*len] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end == NULL)
			continue;
		cl = strcasestr(buf, "\r\ncontent-length:");
		if (cl != NULL && cl < end)
			want = strtoul(cl + 17, NULL, 10);
		if (*len >= (size_t)(end + 4 - buf) + want)
			return;
	}
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	char sink[256], buf[8192];
	const char *reply, *k;
	size_t len;
	int fd, n;

	while (wait_readable(f, f->lfd) == 0) {
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		n = atomic_load(&f->accepted);
		read_request(f, fd, buf, sizeof(buf), &len);
		if (n == 0) {
			memcpy(f->req, buf, len + 1);
			f->req_len = len;
		}
		k = strcasestr(buf, "\r\nIdempotency-Key: ");
		if (n < MAX_SEEN && k != NULL)
			sscanf(k + 19, "%127[^\r]", f->keys[n]);
		atomic_store(&f->accepted, n + 1);
		reply = n == 0 && f->first_reply != NULL ? f->first_reply
							 : f->reply;
		if (reply != NULL) {
			(void)!write(fd, reply, strlen(reply));
		} else {
			/* Hold it, say nothing, until told or closed. */
			while (wait_readable(f, fd) == 0 &&
			       read(fd, sink, sizeof(sink)) > 0)
				;
		}
		close(fd);
	}
	return NULL;
}

static int
listen_loopback(int *port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void
fake_start(struct fake *f, const char *reply)
{
	memset(f, 0, sizeof(*f));
	atomic_init(&f->stop, 0);
	atomic_init(&f->accepted, 0);
	f->reply = reply;
	f->lfd = listen_loopback(&f->port);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

/* A loopback port nothing listens on: bound once, then closed. */
static int
closed_port(void)
{
	int port, fd = listen_loopback(&port);

	close(fd);
	return port;
}

static void
set_balance_port(int port)
{
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	setenv("BALANCE_MANAGER_URL", url, 1);
}

/* ---- helpers ---- */

static void
clear_env(void)
{
	unsetenv("BALANCE_MANAGER_URL");
	unsetenv("BALANCE_MANAGER_BREAKER_FAILURES");
	unsetenv("ZC_HANDLER_TIMEOUT_MS");
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *
body_json(const zc_res *res)
{
	size_t len;
	const char *b = zc_res_get_body(res, &len);
	json_error_t e;
	json_t *v = json_loadb(b, len, 0, &e);

	ck_assert_msg(v != NULL, "body is not JSON (%s): %.*s", e.text,
		      (int)len, b);
	return v;
}

/* An app built after the environment is set, and one transaction. */
static zc_res *
transact(const char *body, long long *elapsed_ms)
{
	zc_app *app = zc_test_app(zc_function_setup);
	long long t0;
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	t0 = now_ms();
	res = zc_test_request(app, "POST", "/transaction", NULL, body);
	if (elapsed_ms != NULL)
		*elapsed_ms = now_ms() - t0;
	ck_assert_ptr_nonnull(res);
	zc_app_free(app);
	return res;
}

/* status with a JSON error that mentions mention (if not NULL). */
static void
expect_error(const zc_res *res, int status, const char *mention)
{
	const char *msg;
	json_t *v;

	ck_assert_msg(zc_res_get_status(res) == status, "status %d, want %d",
		      zc_res_get_status(res), status);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	v = body_json(res);
	msg = json_string_value(json_object_get(v, "error"));
	ck_assert_ptr_nonnull(msg);
	if (mention != NULL)
		ck_assert_msg(strstr(msg, mention) != NULL,
			      "error \"%s\" does not mention \"%s\"", msg,
			      mention);
	json_decref(v);
}

static char *
http_reply(int status, const char *body)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		 status, strlen(body), body);
	return buf;
}

/* ---- tests ---- */

START_TEST(test_bad_input_400)
{
	static const char *const bad[] = {
		"{",
		"",
		"[]",
		"{\"amount\":1}",
		"{\"account\":7,\"amount\":1}",
		"{\"account\":\"alice\"}",
		"{\"account\":\"alice\",\"amount\":\"1.00\"}",
		"{\"account\":\"alice\",\"amount\":0.001}",
		"{\"account\":\"alice\",\"amount\":1e16}",
		"{\"account\":\"alice\",\"amount\":1,\"amount\":2}",
		NULL,
	};
	struct fake f;
	int i;

	/* A balance-manager that would answer: none of these reach it. */
	fake_start(&f, http_reply(200, "{\"status\":\"updated\","
					"\"new_balance\":1,"
					"\"account\":\"alice\"}"));
	set_balance_port(f.port);
	for (i = 0; bad[i] != NULL; i++) {
		zc_res *res = transact(bad[i], NULL);

		ck_assert_msg(zc_res_get_status(res) == 400, "%s -> %d",
			      bad[i], zc_res_get_status(res));
		expect_error(res, 400, NULL);
		zc_res_free(res);
	}
	fake_stop(&f);
	ck_assert_int_eq(atomic_load(&f.accepted), 0);
	clear_env();
}
END_TEST

START_TEST(test_balance_manager_down_502_fast)
{
	long long ms;
	zc_res *res;

	/* Refused on loopback at once: no timeout is involved. */
	set_balance_port(closed_port());
	res = transact("{\"account\":\"alice\",\"amount\":10.5}", &ms);
	expect_error(res, 502, "balance-manager");
	ck_assert_msg(ms < 1000, "502 took %lld ms", ms);
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_success)
{
	struct fake f;
	zc_res *res;
	json_t *v;
	const char *key, *id, *idem, *body;
	json_t *item;
	regex_t re;
	char *text, hdr[128];
	size_t len;
	int i = 0;
	static const char *const order[] = {"status", "transaction_id",
					    "balance", "timestamp"};

	fake_start(&f, http_reply(200, "{\"status\":\"updated\","
					"\"new_balance\":0.3,"
					"\"account\":\"alice\"}"));
	set_balance_port(f.port);
	res = transact("{\"account\":\"alice\",\"amount\":0.1}", NULL);
	fake_stop(&f);

	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	json_object_foreach(v, key, item)
	{
		ck_assert_int_lt(i, 4);
		ck_assert_str_eq(key, order[i]);
		i++;
	}
	ck_assert_int_eq(i, 4);
	ck_assert_str_eq(json_string_value(json_object_get(v, "status")),
			 "success");
	id = json_string_value(json_object_get(v, "transaction_id"));
	ck_assert_ptr_nonnull(id);
	ck_assert_int_eq(regcomp(&re, "^TXN-[0-9]+-[0-9a-f]{16}$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	ck_assert_msg(regexec(&re, id, 0, NULL, 0) == 0, "id %s", id);
	regfree(&re);
	/* The balance on the wire is exactly the text 0.3. */
	body = zc_res_get_body(res, &len);
	text = strndup(body, len);
	ck_assert_msg(strstr(text, ",\"balance\":0.3,") != NULL, "body %s",
		      text);
	free(text);

	/* What balance-manager received. */
	ck_assert_int_eq(atomic_load(&f.accepted), 1);
	ck_assert_msg(strncmp(f.req, "POST /update HTTP/1.1\r\n", 23) == 0,
		      "request: %s", f.req);
	ck_assert_ptr_nonnull(
		strcasestr(f.req, "\r\nContent-Type: application/json\r\n"));
	snprintf(hdr, sizeof(hdr), "\r\nIdempotency-Key: %s\r\n", id);
	idem = strcasestr(f.req, hdr);
	ck_assert_msg(idem != NULL, "no %s in %s", hdr + 2, f.req);
	body = strstr(f.req, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body + 4, "{\"account\":\"alice\",\"amount\":0.1}");
	json_decref(v);
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_unique_ids)
{
	static const char ok[] = "{\"status\":\"updated\",\"new_balance\":1,"
				 "\"account\":\"a\"}";
	char first[64];
	struct fake f;
	zc_res *res;
	json_t *v;

	fake_start(&f, http_reply(200, ok));
	set_balance_port(f.port);
	res = transact("{\"account\":\"a\",\"amount\":1}", NULL);
	fake_stop(&f);
	v = body_json(res);
	snprintf(first, sizeof(first), "%s",
		 json_string_value(json_object_get(v, "transaction_id")));
	json_decref(v);
	zc_res_free(res);

	fake_start(&f, http_reply(200, ok));
	set_balance_port(f.port);
	res = transact("{\"account\":\"a\",\"amount\":1}", NULL);
	fake_stop(&f);
	v = body_json(res);
	ck_assert_str_ne(first,
			 json_string_value(json_object_get(v, "transaction_id")));
	json_decref(v);
	zc_res_free(res);
	clear_env();
}
END_TEST

/* A 4xx from balance-manager is the client's fault: passed through. */
START_TEST(test_downstream_4xx_passed_through)
{
	static const char err400[] =
		"{\"error\":\"field \\\"account\\\" must be 1 to 128 bytes\"}";
	static const char err422[] =
		"{\"error\":\"balance of a would leave the supported range\"}";
	struct fake f;
	zc_res *res;
	json_t *v;

	fake_start(&f, http_reply(400, err400));
	set_balance_port(f.port);
	res = transact("{\"account\":\"\",\"amount\":1}", NULL);
	fake_stop(&f);
	expect_error(res, 400, "account");
	v = body_json(res);
	ck_assert_str_eq(json_string_value(json_object_get(v, "error")),
			 "field \"account\" must be 1 to 128 bytes");
	json_decref(v);
	zc_res_free(res);

	fake_start(&f, http_reply(422, err422));
	set_balance_port(f.port);
	res = transact("{\"account\":\"a\",\"amount\":9999999999999.99}",
		       NULL);
	fake_stop(&f);
	expect_error(res, 422, "range");
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_downstream_failures_502)
{
	static const struct {
		const char *reply;
		int requests;
	} cases[] = {
		/* a server error: not the client's fault, not passed on, and
		 * not one of the statuses worth a retry (502/503/504/429) */
		{"HTTP/1.1 500 X\r\nContent-Type: application/json\r\n"
		 "Content-Length: 26\r\nConnection: close\r\n\r\n"
		 "{\"error\":\"internal error\"}",
		 1},
		/* a 4xx that is not JSON */
		{"HTTP/1.1 400 X\r\nContent-Type: text/plain\r\n"
		 "Content-Length: 11\r\nConnection: close\r\n\r\nbad request",
		 1},
		/* 200 with garbage */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 8\r\nConnection: close\r\n\r\nnot json",
		 1},
		/* 200 without new_balance */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 21\r\nConnection: close\r\n\r\n"
		 "{\"status\":\"updated\"}\n",
		 1},
		/* 200 with a balance that is not money */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 20\r\nConnection: close\r\n\r\n"
		 "{\"new_balance\":\"1\"}\n",
		 1},
		/*
		 * dies mid-reply, every time: a transport error, so the keyed
		 * update is retried (2 retries by default) with the same key;
		 * after the last attempt it is a 502.  (A one-shot fake made
		 * the retry wait on a listener nobody served until the 5 s
		 * call timeout: 504, correctly, for a silent downstream.)
		 */
		{"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: 100\r\nConnection: close\r\n\r\n{\"new_bal",
		 3},
		/* not HTTP at all: a transport failure, retried like one */
		{"SSH-2.0-OpenSSH_9.2\r\n", 3},
	};
	size_t i;

	/* one target serves every case: keep its breaker out of the count */
	setenv("BALANCE_MANAGER_BREAKER_FAILURES", "0", 1);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f;
		long long ms;
		zc_res *res;
		int n, k;

		fake_start(&f, cases[i].reply);
		set_balance_port(f.port);
		res = transact("{\"account\":\"a\",\"amount\":1}", &ms);
		fake_stop(&f);
		ck_assert_msg(zc_res_get_status(res) == 502,
			      "reply #%zu -> %d, want 502", i,
			      zc_res_get_status(res));
		expect_error(res, 502, "balance-manager");
		ck_assert_msg(ms < 1000, "reply #%zu took %lld ms", i, ms);
		n = atomic_load(&f.accepted);
		ck_assert_msg(n == cases[i].requests,
			      "reply #%zu: %d requests, want %d", i, n,
			      cases[i].requests);
		for (k = 1; k < n; k++)
			ck_assert_str_eq(f.keys[k], f.keys[0]);
		zc_res_free(res);
	}
	clear_env();
}
END_TEST

/*
 * Exactly-once through a fault: the update dies mid-reply once, the
 * runtime retries it with the same Idempotency-Key (the transaction id),
 * and the answer carries that id.
 */
START_TEST(test_update_retried_with_same_key)
{
	struct fake f;
	zc_res *res;
	json_t *v;
	const char *id;

	fake_start(&f, http_reply(200, "{\"status\":\"updated\","
					"\"new_balance\":2.5,"
					"\"account\":\"a\"}"));
	f.first_reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json"
			"\r\nContent-Length: 100\r\nConnection: close\r\n"
			"\r\n{\"new_bal";
	set_balance_port(f.port);
	res = transact("{\"account\":\"a\",\"amount\":2.5}", NULL);
	fake_stop(&f);
	ck_assert_int_eq(zc_res_get_status(res), 200);
	v = body_json(res);
	id = json_string_value(json_object_get(v, "transaction_id"));
	ck_assert_ptr_nonnull(id);
	ck_assert_int_eq(atomic_load(&f.accepted), 2);
	ck_assert_str_eq(f.keys[0], id);
	ck_assert_str_eq(f.keys[1], id);
	json_decref(v);
	zc_res_free(res);
	clear_env();
}
END_TEST

/* A downstream that is down for good: retried, then 502 - fast. */
START_TEST(test_update_503_retried_then_502)
{
	struct fake f;
	long long ms;
	zc_res *res;

	fake_start(&f, http_reply(503, "{\"error\":\"draining\"}"));
	set_balance_port(f.port);
	res = transact("{\"account\":\"a\",\"amount\":1}", &ms);
	fake_stop(&f);
	expect_error(res, 502, "balance-manager");
	ck_assert_int_eq(atomic_load(&f.accepted), 3);
	ck_assert_str_eq(f.keys[2], f.keys[0]);
	ck_assert_msg(ms < 1000, "took %lld ms", ms);
	zc_res_free(res);
	clear_env();
}
END_TEST

/*
 * A balance-manager that accepts and never answers.  The inbound deadline
 * bounds the outbound call (zc_test_app leaves ZC_CLIENT_* alone, so the
 * call's own timeout is the built-in 5 s): the client gets a 504 at the
 * deadline, not after 5 s.
 */
START_TEST(test_downstream_silent_deadline_504)
{
	struct fake f;
	long long ms;
	zc_res *res;

	fake_start(&f, NULL);
	set_balance_port(f.port);
	setenv("ZC_HANDLER_TIMEOUT_MS", "300", 1);
	res = transact("{\"account\":\"a\",\"amount\":1}", &ms);
	fake_stop(&f);
	expect_error(res, 504, NULL);
	ck_assert_msg(ms >= 250 && ms < 1500,
		      "504 after %lld ms; ZC_HANDLER_TIMEOUT_MS=300", ms);
	zc_res_free(res);
	clear_env();
}
END_TEST

START_TEST(test_routes)
{
	zc_app *app = zc_test_app(zc_function_setup);
	zc_res *res;

	ck_assert_ptr_nonnull(app);
	res = zc_test_request(app, "GET", "/transaction", NULL, NULL);
	ck_assert_int_eq(zc_res_get_status(res), 405);
	ck_assert_str_eq(zc_res_get_header(res, "Allow"), "POST, OPTIONS");
	zc_res_free(res);
	zc_app_free(app);
}
END_TEST

static Suite *
tp_suite(void)
{
	Suite *s = suite_create("example transaction-processor");
	TCase *tc = tcase_create("transaction");

	tcase_add_checked_fixture(tc, clear_env, clear_env);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_bad_input_400);
	tcase_add_test(tc, test_balance_manager_down_502_fast);
	tcase_add_test(tc, test_success);
	tcase_add_test(tc, test_unique_ids);
	tcase_add_test(tc, test_downstream_4xx_passed_through);
	tcase_add_test(tc, test_downstream_failures_502);
	tcase_add_test(tc, test_update_retried_with_same_key);
	tcase_add_test(tc, test_update_503_retried_then_502);
	tcase_add_test(tc, test_downstream_silent_deadline_504);
	tcase_add_test(tc, test_routes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tp_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
