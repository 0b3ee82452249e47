/*
 * test_async.c - zc_call_send_async: delivered by the runtime's workers,
 * with the target's retries; a full queue is ZC_ERR_QUEUE_FULL and the
 * caller keeps the call; zc_app_free drains the queue (as SIGTERM does):
 * what can be delivered is, and every call that cannot is logged as one
 * complete [UNDELIVERED] JSON record - none lost.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- a fake downstream: 200, or 503 for the first fail_first, or hang ---- */

#define MAX_CONNS 32
#define MAX_RECS 64

static struct fake {
	int lfd, port;
	pthread_t accept_thr;
	atomic_bool stop;
	pthread_mutex_t mu;
	int fds[MAX_CONNS];
	pthread_t thr[MAX_CONNS];
	int nconns;
	atomic_int requests; /* answered */
	atomic_int arrived;  /* read, answered or not */
	atomic_int fail_first; /* 503 to requests numbered below */
	atomic_bool hang;      /* never answer */
	atomic_int delay_ms;
	char bodies[MAX_RECS][512];
	char keys[MAX_RECS][64];
} fake;

struct conn {
	int slot, fd;
	size_t len;
	char buf[16384];
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
read_request(struct conn *c, size_t *head, size_t *body)
{
	const char *end, *cl;
	ssize_t n;

	*body = 0;
	for (;;) {
		c->buf[c->len] = '\0';
		if ((end = strstr(c->buf, "\r\n\r\n")) != NULL)
			break;
		if (c->len >= sizeof(c->buf) - 1)
			return -1;
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
			 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
	*head = (size_t)(end - c->buf) + 4;
	cl = strcasestr(c->buf, "\r\nContent-Length:");
	if (cl != NULL && cl < end)
		*body = strtoul(cl + 17, NULL, 10);
	if (*head + *body >= sizeof(c->buf))
		return -1;
	while (c->len < *head + *body) {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
			 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
	return 0;
}

/* Wait ms (-1: until the client leaves or the fake stops). */
static int
wait_quiet(int fd, long ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	long long end = now_ms() + ms;

	while (!atomic_load(&fake.stop)) {
		if (ms >= 0 && now_ms() >= end)
			return 0;
		if (poll(&p, 1, 10) != 0)
			return -1;
	}
	return -1;
}

static void *
conn_main(void *arg)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: "
				 "application/json\r\nContent-Length: 2\r\n"
				 "\r\n{}";
	static const char busy[] = "HTTP/1.1 503 Busy\r\nContent-Type: "
				   "application/json\r\nContent-Length: 2\r\n"
				   "\r\n{}";
	struct conn *c = arg;
	size_t head, body, k;
	const char *key;
	int n;

	while (read_request(c, &head, &body) == 0) {
		atomic_fetch_add(&fake.arrived, 1);
		if (atomic_load(&fake.hang)) {
			wait_quiet(c->fd, -1);
			break;
		}
		if (atomic_load(&fake.delay_ms) > 0 &&
		    wait_quiet(c->fd, atomic_load(&fake.delay_ms)) != 0)
			break;
		pthread_mutex_lock(&fake.mu);
		n = atomic_fetch_add(&fake.requests, 1);
		if (n < MAX_RECS) {
			k = body < sizeof(fake.bodies[n]) - 1
				    ? body
				    : sizeof(fake.bodies[n]) - 1;
			memcpy(fake.bodies[n], c->buf + head, k);
			fake.bodies[n][k] = '\0';
			key = strcasestr(c->buf, "\r\nIdempotency-Key: ");
			if (key != NULL && key < c->buf + head)
				sscanf(key + 19, "%63[^\r]", fake.keys[n]);
		}
		pthread_mutex_unlock(&fake.mu);
		if (n < atomic_load(&fake.fail_first)) {
			if (send(c->fd, busy, strlen(busy), MSG_NOSIGNAL) < 0)
				break;
		} else if (send(c->fd, ok, strlen(ok), MSG_NOSIGNAL) < 0) {
			break;
		}
		memmove(c->buf, c->buf + head + body, c->len - head - body);
		c->len -= head + body;
	}
	pthread_mutex_lock(&fake.mu);
	fake.fds[c->slot] = -1;
	close(c->fd);
	pthread_mutex_unlock(&fake.mu);
	free(c);
	return NULL;
}

static void *
accept_main(void *arg)
{
	struct pollfd pfd = {fake.lfd, POLLIN, 0};
	struct conn *c;
	int fd;

	(void)arg;
	while (!atomic_load(&fake.stop)) {
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if ((fd = accept(fake.lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&fake.mu);
		if (fake.nconns == MAX_CONNS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			pthread_mutex_unlock(&fake.mu);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->slot = fake.nconns;
		fake.fds[c->slot] = fd;
		if (pthread_create(&fake.thr[c->slot], NULL, conn_main, c) !=
		    0) {
			fake.fds[c->slot] = -1;
			close(fd);
			free(c);
		} else {
			fake.nconns++;
		}
		pthread_mutex_unlock(&fake.mu);
	}
	return NULL;
}

static int
listen_loopback(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void
fake_start(void)
{
	char url[64];

	memset(&fake, 0, sizeof(fake));
	pthread_mutex_init(&fake.mu, NULL);
	fake.lfd = listen_loopback(&fake.port);
	ck_assert_int_eq(
		pthread_create(&fake.accept_thr, NULL, accept_main, NULL), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", fake.port);
	setenv("A_DOWN_URL", url, 1);
}

static void
fake_stop(void)
{
	int i, n;

	atomic_store(&fake.stop, true);
	pthread_join(fake.accept_thr, NULL);
	close(fake.lfd);
	pthread_mutex_lock(&fake.mu);
	n = fake.nconns;
	for (i = 0; i < n; i++)
		if (fake.fds[i] >= 0)
			shutdown(fake.fds[i], SHUT_RDWR);
	pthread_mutex_unlock(&fake.mu);
	for (i = 0; i < n; i++)
		pthread_join(fake.thr[i], NULL);
	pthread_mutex_destroy(&fake.mu);
}

/* The fake is not there at all: connections are refused. */
static void
target_down(void)
{
	int port, fd = listen_loopback(&port);
	char url[64];

	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	setenv("A_DOWN_URL", url, 1);
}

/* ---- app and helpers ---- */

struct capture {
	int fd, saved;
};

/* stderr is captured from the start of each test (fixture), so a record
 * a worker logs before the drain is seen too. */
static struct capture cap;
static bool capturing;

static int
setup(zc_app *app)
{
	(void)app;
	return 0;
}

static zc_app *app;

static void
app_open(void)
{
	app = zc_test_app(setup);
	ck_assert_ptr_nonnull(app);
}

static void capture_start(struct capture *c);
static char *capture_end(struct capture *c);

static void
up(void)
{
	fake_start();
	capture_start(&cap);
	capturing = true;
}

static void
down(void)
{
	zc_app_free(app);
	app = NULL;
	fake_stop();
	if (capturing) {
		capturing = false;
		free(capture_end(&cap));
	}
}

/* POST /log {"seq": seq, "pad": pad-long string}, with key if given. */
static zc_call *
new_call(int seq, const char *key, size_t pad)
{
	zc_call *call = zc_call_new(NULL, "a-down", "POST", "/log");
	char *p = malloc(pad + 1);

	ck_assert_ptr_nonnull(call);
	ck_assert_ptr_nonnull(p);
	memset(p, 'p', pad);
	p[pad] = '\0';
	ck_assert_int_eq(zc_call_jsonf(call, "{s:i, s:s}", "seq", seq, "pad",
				       p),
			 ZC_OK);
	free(p);
	if (key != NULL)
		ck_assert_int_eq(zc_call_header(call, "Idempotency-Key", key),
				 ZC_OK);
	return call;
}

static void
send_ok(int seq, const char *key, size_t pad)
{
	zc_call *call = new_call(seq, key, pad);

	ck_assert_int_eq(zc_call_send_async(call), ZC_OK);
}

static void
wait_requests(int n, long ms)
{
	long long t0 = now_ms();

	while (atomic_load(&fake.requests) < n && now_ms() - t0 < ms)
		poll(NULL, 0, 5);
}

/* n requests reached the fake (answered or not) */
static void
wait_arrived(int n)
{
	long long t0 = now_ms();

	while (atomic_load(&fake.arrived) < n && now_ms() - t0 < 3000)
		poll(NULL, 0, 5);
	ck_assert_int_ge(atomic_load(&fake.arrived), n);
}

static void
capture_start(struct capture *c)
{
	char path[] = "/tmp/zc-async-XXXXXX";

	c->fd = mkstemp(path);
	ck_assert_int_ge(c->fd, 0);
	unlink(path);
	c->saved = dup(STDERR_FILENO);
	dup2(c->fd, STDERR_FILENO);
}

static char *
capture_end(struct capture *c)
{
	off_t size;
	char *buf;
	ssize_t n;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	size = lseek(c->fd, 0, SEEK_END);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	n = pread(c->fd, buf, (size_t)size, 0);
	close(c->fd);
	ck_assert_int_eq(n, size);
	buf[n] = '\0';
	return buf;
}

/* zc_app_free (the drain), then the whole log of the test so far. */
static char *
drain_logged(long long *ms)
{
	long long t0 = now_ms();

	zc_app_free(app);
	app = NULL;
	if (ms != NULL)
		*ms = now_ms() - t0;
	capturing = false;
	return capture_end(&cap);
}

#define TAG "[UNDELIVERED] "

/* Every [UNDELIVERED] record in log, parsed; their count in *n. */
static json_t *
records(const char *log)
{
	json_t *all = json_array();
	const char *p = log;
	json_error_t e;

	while ((p = strstr(p, TAG)) != NULL) {
		json_t *v;
		const char *eol = strchr(p, '\n');

		p += strlen(TAG);
		v = json_loads(p, JSON_DISABLE_EOF_CHECK, &e);
		ck_assert_msg(v != NULL,
			      "record is not complete JSON (%s at %d of a "
			      "%d-byte line): %.80s...",
			      e.text, e.position,
			      (int)(eol != NULL ? eol - p : (long)strlen(p)), p);
		json_array_append_new(all, v);
	}
	return all;
}

/* The record whose body has "seq": seq, or NULL. */
static json_t *
record_for(json_t *all, int seq, json_t **body_out)
{
	size_t i;
	json_t *r;

	json_array_foreach(all, i, r)
	{
		json_t *b = json_loads(
			json_string_value(json_object_get(r, "body")), 0, NULL);
		if (b != NULL &&
		    json_integer_value(json_object_get(b, "seq")) == seq) {
			*body_out = b;
			return r;
		}
		json_decref(b);
	}
	return NULL;
}

/* headers contains exactly "name: value" */
static bool
has_header(json_t *rec, const char *line)
{
	size_t i;
	json_t *h;

	json_array_foreach(json_object_get(rec, "headers"), i, h)
	{
		if (strcasecmp(json_string_value(h), line) == 0)
			return true;
	}
	return false;
}

/* ---- tests ---- */

START_TEST(test_delivered)
{
	char *log;

	app_open();
	send_ok(1, NULL, 3);
	wait_requests(1, 3000);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	pthread_mutex_lock(&fake.mu);
	ck_assert_str_eq(fake.bodies[0], "{\"seq\":1,\"pad\":\"ppp\"}");
	pthread_mutex_unlock(&fake.mu);
	log = drain_logged(NULL);
	ck_assert_ptr_null(strstr(log, TAG));
	free(log);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
}
END_TEST

START_TEST(test_delivered_with_retries_same_key)
{
	char *log;

	/* two 503s, then 200: the worker retries the keyed call */
	atomic_store(&fake.fail_first, 2);
	app_open();
	send_ok(1, "audit-1", 0);
	wait_requests(3, 3000);
	log = drain_logged(NULL);
	ck_assert_int_eq(atomic_load(&fake.requests), 3);
	ck_assert_ptr_null(strstr(log, TAG));
	free(log);
	pthread_mutex_lock(&fake.mu);
	ck_assert_str_eq(fake.keys[0], "audit-1");
	ck_assert_str_eq(fake.keys[1], "audit-1");
	ck_assert_str_eq(fake.keys[2], "audit-1");
	pthread_mutex_unlock(&fake.mu);
}
END_TEST

START_TEST(test_setup_error_not_queued)
{
	zc_call *call;

	app_open();
	ck_assert_int_eq(zc_call_send_async(NULL), ZC_ERR_INVALID);
	/* a call that could never be sent is refused; the caller keeps it */
	call = zc_call_new(NULL, "Not_A_Name", "POST", "/log");
	ck_assert_int_eq(zc_call_send_async(call), ZC_ERR_INVALID);
	zc_call_free(call);
	call = zc_call_new(NULL, "a-down", "POST", "/log");
	ck_assert_int_eq(zc_call_header(call, "X-A", "1\r\nX-B: 2"),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_call_send_async(call), ZC_ERR_INVALID);
	zc_call_free(call);
}
END_TEST

START_TEST(test_queue_full)
{
	zc_call *extra;
	json_t *all, *rec, *body;
	long long ms;
	char *log;
	int seq;

	/* one worker, two places; the downstream hangs */
	setenv("ZC_ASYNC_WORKERS", "1", 1);
	setenv("ZC_ASYNC_QUEUE_SIZE", "2", 1);
	setenv("ZC_DRAIN_TIMEOUT_MS", "300", 1);
	setenv("A_DOWN_TIMEOUT_MS", "800", 1);
	atomic_store(&fake.hang, true);
	app_open();

	send_ok(1, NULL, 0);
	/* the worker has taken #1 and waits on the server */
	wait_arrived(1);
	send_ok(2, NULL, 0);
	send_ok(3, NULL, 0);
	extra = new_call(4, NULL, 0);
	ck_assert_int_eq(zc_call_send_async(extra), ZC_ERR_QUEUE_FULL);
	/* not queued: still the caller's, intact */
	ck_assert_ptr_nonnull(strstr(zc_call_url(extra), "/log"));
	ck_assert_int_eq(zc_call_send_async(extra), ZC_ERR_QUEUE_FULL);
	zc_call_free(extra);

	/* shutdown: nothing can be delivered; all three are logged */
	log = drain_logged(&ms);
	all = records(log);
	ck_assert_msg(json_array_size(all) == 3, "%zu records in:\n%s",
		      json_array_size(all), log);
	for (seq = 1; seq <= 3; seq++) {
		rec = record_for(all, seq, &body);
		ck_assert_msg(rec != NULL, "no record for #%d", seq);
		json_decref(body);
	}
	ck_assert_ptr_null(record_for(all, 4, &body));
	json_decref(all);
	free(log);
	unsetenv("ZC_ASYNC_WORKERS");
	unsetenv("ZC_ASYNC_QUEUE_SIZE");
	unsetenv("ZC_DRAIN_TIMEOUT_MS");
	unsetenv("A_DOWN_TIMEOUT_MS");
}
END_TEST

START_TEST(test_drain_delivers_queued)
{
	char *log;
	int i;

	/* one worker, 20 calls, 30 ms each: most are still queued when the
	 * app is freed */
	setenv("ZC_ASYNC_WORKERS", "1", 1);
	atomic_store(&fake.delay_ms, 30);
	app_open();
	for (i = 0; i < 20; i++)
		send_ok(i, NULL, 0);
	ck_assert_int_lt(atomic_load(&fake.requests), 20);
	log = drain_logged(NULL);
	ck_assert_int_eq(atomic_load(&fake.requests), 20);
	ck_assert_ptr_null(strstr(log, TAG));
	free(log);
	unsetenv("ZC_ASYNC_WORKERS");
}
END_TEST

START_TEST(test_undelivered_records_complete)
{
	char key[32], line[64], url[128];
	json_t *all, *rec, *body;
	char *log;
	int seq;

	/* the downstream is gone: refused (breaker off, to count attempts) */
	target_down();
	setenv("A_DOWN_BREAKER_FAILURES", "0", 1);
	app_open();
	snprintf(url, sizeof(url), "%s/log", getenv("A_DOWN_URL"));
	for (seq = 0; seq < 10; seq++) {
		snprintf(key, sizeof(key), "idem-%d", seq);
		send_ok(seq, seq % 2 == 0 ? key : NULL, 10);
	}
	log = drain_logged(NULL);
	all = records(log);
	ck_assert_msg(json_array_size(all) == 10, "%zu records in:\n%s",
		      json_array_size(all), log);
	for (seq = 0; seq < 10; seq++) {
		rec = record_for(all, seq, &body);
		ck_assert_msg(rec != NULL, "no record for #%d", seq);
		ck_assert_str_eq(
			json_string_value(json_object_get(rec, "method")),
			"POST");
		ck_assert_str_eq(json_string_value(json_object_get(rec, "url")),
				 url);
		ck_assert_str_eq(json_string_value(json_object_get(body, "pad")),
				 "pppppppppp");
		snprintf(line, sizeof(line), "Idempotency-Key: idem-%d", seq);
		ck_assert_msg(has_header(rec, line) == (seq % 2 == 0),
			      "#%d headers", seq);
		json_decref(body);
	}
	json_decref(all);
	/* keyed calls were retried before giving up, keyless ones not */
	ck_assert_ptr_nonnull(strstr(log, "3 attempts"));
	ck_assert_ptr_nonnull(strstr(log, "1 attempts"));
	free(log);
	unsetenv("A_DOWN_BREAKER_FAILURES");
}
END_TEST

START_TEST(test_undelivered_many_none_lost)
{
	static bool seen[500];
	json_t *all, *rec, *body;
	char *log;
	size_t i;
	int seq;

	/* more than the workers can try before the drain deadline */
	target_down();
	setenv("ZC_ASYNC_WORKERS", "1", 1);
	setenv("ZC_DRAIN_TIMEOUT_MS", "200", 1);
	app_open();
	for (seq = 0; seq < 500; seq++)
		send_ok(seq, "k", 0);
	log = drain_logged(NULL);
	all = records(log);
	ck_assert_int_eq(json_array_size(all), 500);
	json_array_foreach(all, i, rec)
	{
		body = json_loads(json_string_value(json_object_get(rec, "body")),
				  0, NULL);
		ck_assert_ptr_nonnull(body);
		seq = (int)json_integer_value(json_object_get(body, "seq"));
		ck_assert(seq >= 0 && seq < 500 && !seen[seq]);
		seen[seq] = true;
		json_decref(body);
	}
	for (seq = 0; seq < 500; seq++)
		ck_assert_msg(seen[seq], "#%d lost", seq);
	json_decref(all);
	free(log);
	unsetenv("ZC_ASYNC_WORKERS");
	unsetenv("ZC_DRAIN_TIMEOUT_MS");
}
END_TEST

/* A record is complete however big the call: a 6 KB body survives. */
START_TEST(test_undelivered_large_record_complete)
{
	json_t *all, *rec, *body;
	char *log;

	target_down();
	app_open();
	send_ok(7, NULL, 6000);
	log = drain_logged(NULL);
	all = records(log);
	ck_assert_int_eq(json_array_size(all), 1);
	rec = record_for(all, 7, &body);
	ck_assert_ptr_nonnull(rec);
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(body, "pad"))),
			  6000);
	json_decref(body);
	json_decref(all);
	free(log);
}
END_TEST

/*
 * The drain deadline bounds the whole drain, a call in flight included:
 * the attempt under way is aborted (libcurl's progress callback, which
 * an idle transfer gets about once a second) rather than left to run to
 * its own 5 s timeout, and its record is logged.
 */
START_TEST(test_drain_deadline_bounds_in_flight)
{
	long long ms;
	json_t *all, *rec, *body;
	char *log;

	setenv("ZC_DRAIN_TIMEOUT_MS", "300", 1);
	atomic_store(&fake.hang, true);
	app_open();
	send_ok(1, NULL, 0);
	wait_arrived(1);
	log = drain_logged(&ms);
	all = records(log);
	ck_assert_int_eq(json_array_size(all), 1);
	rec = record_for(all, 1, &body);
	ck_assert_ptr_nonnull(rec);
	json_decref(body);
	ck_assert_msg(ms >= 250 && ms < 300 + 1700,
		      "drain took %lld ms, deadline 300", ms);
	ck_assert_ptr_nonnull(strstr(log, "request deadline passed"));
	json_decref(all);
	free(log);
	unsetenv("ZC_DRAIN_TIMEOUT_MS");
}
END_TEST

/*
 * What zc_main does on SIGTERM: the final drain (no reopen) leaves the
 * queue closed, so a handler still running gets ZC_ERR_QUEUE_FULL and
 * keeps its call; freeing the app afterwards (zc_main's last step) must
 * not touch the workers again.
 */
START_TEST(test_queue_closed_after_final_drain)
{
	zc_call *late;
	json_t *all;
	char *log;

	target_down();
	app_open();
	send_ok(1, NULL, 0);
	zc__async_drain(zc__now_ns() + 500 * 1000000LL, false);
	late = new_call(2, NULL, 0);
	ck_assert_int_eq(zc_call_send_async(late), ZC_ERR_QUEUE_FULL);
	ck_assert_ptr_nonnull(strstr(zc_call_url(late), "/log"));
	zc_call_free(late);
	log = drain_logged(NULL);
	all = records(log);
	ck_assert_int_eq(json_array_size(all), 1);
	json_decref(all);
	free(log);
}
END_TEST

START_TEST(test_queue_usable_after_drain)
{
	char *log;

	app_open();
	send_ok(1, NULL, 0);
	log = drain_logged(NULL);
	free(log);
	ck_assert_int_eq(atomic_load(&fake.requests), 1);
	/* a later app in the same process queues again */
	app_open();
	send_ok(2, NULL, 0);
	wait_requests(2, 3000);
	ck_assert_int_eq(atomic_load(&fake.requests), 2);
}
END_TEST

static Suite *
async_suite(void)
{
	Suite *s = suite_create("async");
	TCase *tc = tcase_create("queue");

	tcase_add_checked_fixture(tc, up, down);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_delivered);
	tcase_add_test(tc, test_delivered_with_retries_same_key);
	tcase_add_test(tc, test_setup_error_not_queued);
	tcase_add_test(tc, test_queue_full);
	tcase_add_test(tc, test_drain_delivers_queued);
	tcase_add_test(tc, test_undelivered_records_complete);
	tcase_add_test(tc, test_undelivered_many_none_lost);
	tcase_add_test(tc, test_undelivered_large_record_complete);
	tcase_add_test(tc, test_drain_deadline_bounds_in_flight);
	tcase_add_test(tc, test_queue_closed_after_final_drain);
	tcase_add_test(tc, test_queue_usable_after_drain);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	if (zc__client_global_init() != 0) {
		fprintf(stderr, "curl_global_init failed\n");
		return EXIT_FAILURE;
	}
	sr = srunner_create(async_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
