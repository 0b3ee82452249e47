/*
 * test_async.c - zc_call_send_async: delivered by the runtime's workers,
 * with the target's retries; a full queue is ZC_ERR_QUEUE_FULL and the
 * caller keeps the call; zc_app_free drains the queue (as SIGTERM does):
 * what can be delivered is, and every call that cannot is logged as one
 * complete [UNDELIVERED] JSON record - none lost.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#include "fake_http.h"

/* ---- a fake downstream: 200, or 503 for the first fail_first, or hang ---- */

/* fake.arrived counts requests read, fake.requests those answered (and
 * recorded, after fake.delay_ms). */
static struct fake_http fake;
static struct {
	atomic_int fail_first; /* 503 to requests numbered below */
	atomic_bool hang;      /* never answer */
} ctl;

static int
answer(struct fake_http *f, struct fh_conn *c)
{
	if (atomic_load(&ctl.hang)) {
		fh_wait_quiet(f, c->fd, -1);
		return -1;
	}
	if (fh_delay(f, c) != 0)
		return -1;
	if (fh_record(f, c) < atomic_load(&ctl.fail_first))
		return fh_reply(c->fd, 503, "Busy", "", "{}", 2, false);
	return fh_reply(c->fd, 200, "OK", "", "{}", 2, false);
}

static void
fake_start(void)
{
	atomic_store(&ctl.fail_first, 0);
	atomic_store(&ctl.hang, false);
	fh_start(&fake, answer);
	set_service_port("a-down", fake.port);
}

static void
fake_stop(void)
{
	fh_stop(&fake);
}

/* The fake is not there at all: connections are refused. */
static void
target_down(void)
{
	set_service_port("a-down", closed_port());
}

/* ---- app and helpers ---- */

/* stderr is captured from the start of each test (fixture), so a record
 * a worker logs before the drain is seen too. */
static struct capture cap;
static bool capturing;

static zc_app *app;

static void
app_open(void)
{
	app = open_app(setup_nothing);
}

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
	ck_assert_int_eq(
		zc_call_jsonf(call, "{s:i, s:s}", "seq", seq, "pad", p), ZC_OK);
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
			      (int)(eol != NULL ? eol - p : (long)strlen(p)),
			      p);
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

	json_array_foreach (all, i, r) {
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

	json_array_foreach (json_object_get(rec, "headers"), i, h) {
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
	ck_assert_str_eq(fh_rec_body(&fake.recs[0]),
			 "{\"seq\":1,\"pad\":\"ppp\"}");
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
	atomic_store(&ctl.fail_first, 2);
	app_open();
	send_ok(1, "audit-1", 0);
	wait_requests(3, 3000);
	log = drain_logged(NULL);
	ck_assert_int_eq(atomic_load(&fake.requests), 3);
	ck_assert_ptr_null(strstr(log, TAG));
	free(log);
	pthread_mutex_lock(&fake.mu);
	ck_assert_str_eq(fake.recs[0].key, "audit-1");
	ck_assert_str_eq(fake.recs[1].key, "audit-1");
	ck_assert_str_eq(fake.recs[2].key, "audit-1");
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
	atomic_store(&ctl.hang, true);
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
		ck_assert_str_eq(
			json_string_value(json_object_get(body, "pad")),
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
	json_array_foreach (all, i, rec) {
		body = json_loads(
			json_string_value(json_object_get(rec, "body")), 0,
			NULL);
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
	ck_assert_uint_eq(
		strlen(json_string_value(json_object_get(body, "pad"))), 6000);
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
	atomic_store(&ctl.hang, true);
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
	return run_client_suite(async_suite());
}
