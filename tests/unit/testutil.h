/*
 * testutil.h - small helpers the unit tests share, so that each test file
 * holds only what it tests:
 *
 *   clocks        now_ns, now_ms (CLOCK_MONOTONIC), sleep_ms
 *   the app       open_app (zc_test_app that must succeed), reopen_app,
 *                 setup_nothing (a setup with no routes)
 *   responses     body_copy, body_json, expect_json_error (the runtime's
 *                 {"error": "..."} shape), expect_error_mentions (any JSON
 *                 body with a string "error", e.g. one passed through)
 *   stderr        capture_start / capture_end: what the code under test
 *                 logs, as text
 *   main()        run_suite; run_client_suite (after internal.h) also does
 *                 what zc_main does before any thread exists
 *
 * Everything is static inline: no Makefile change, and a file that uses
 * only some of it gets no unused-function warning.  Include it after
 * zenith.h or internal.h.  fake_http.h (a loopback HTTP server) builds on
 * it.
 */
#ifndef ZC_TESTUTIL_H
#define ZC_TESTUTIL_H

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zenith.h"

/* ---- clocks ---- */

static inline long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline long long
now_ms(void)
{
	return now_ns() / 1000000LL;
}

/* Sleeps the whole ms, through signals. */
static inline void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- the app under test ---- */

/* zc_test_app(setup), which must succeed. */
static inline zc_app *
open_app(int (*setup)(zc_app *app))
{
	zc_app *app = zc_test_app(setup);

	ck_assert_ptr_nonnull(app);
	return app;
}

/* Frees *app and opens a new one that reads the environment as it is now. */
static inline void
reopen_app(zc_app **app, int (*setup)(zc_app *app))
{
	zc_app_free(*app);
	*app = open_app(setup);
}

/* A setup with no routes: an app for its configuration and its clients. */
static inline int
setup_nothing(zc_app *app)
{
	(void)app;
	return 0;
}

/* ---- response bodies ---- */

/* The body as a NUL-terminated copy (free it); it holds no NUL itself. */
static inline char *
body_copy(const zc_res *res)
{
	size_t len;
	const char *b = zc_res_get_body(res, &len);
	char *s = strndup(b, len);

	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(strlen(s), len);
	return s;
}

/* The body parsed (decref it); it must be JSON. */
static inline json_t *
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

/* status with a JSON error body: {"error": "<non-empty string>"} and
 * nothing else. */
static inline void
expect_json_error(const zc_res *res, int status)
{
	json_t *v, *e;

	ck_assert_ptr_nonnull(res);
	ck_assert_msg(zc_res_get_status(res) == status, "status %d, want %d",
		      zc_res_get_status(res), status);
	ck_assert_str_eq(zc_res_get_header(res, "Content-Type"),
			 "application/json");
	v = body_json(res);
	ck_assert(json_is_object(v));
	ck_assert_uint_eq(json_object_size(v), 1);
	e = json_object_get(v, "error");
	ck_assert(json_is_string(e));
	ck_assert_uint_gt(json_string_length(e), 0);
	json_decref(v);
}

/* status with a JSON body whose "error" is a string that mentions mention
 * (when not NULL); other members are allowed. */
static inline void
expect_error_mentions(const zc_res *res, int status, const char *mention)
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

/* ---- stderr capture ---- */

/* stderr into an unlinked temporary file, and back. */
struct capture {
	int fd, saved;
};

static inline void
capture_start(struct capture *c)
{
	char path[] = "/tmp/zc-test-log-XXXXXX";

	c->fd = mkstemp(path);
	ck_assert_int_ge(c->fd, 0);
	unlink(path);
	c->saved = dup(STDERR_FILENO);
	dup2(c->fd, STDERR_FILENO);
}

/* Restores stderr; returns the captured text (free it). */
static inline char *
capture_end(struct capture *c)
{
	off_t size;
	char *buf;
	ssize_t n;

	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	size = lseek(c->fd, 0, SEEK_END);
	ck_assert_int_ge(size, 0);
	buf = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(buf);
	n = pread(c->fd, buf, (size_t)size, 0);
	close(c->fd);
	ck_assert_int_eq(n, size);
	buf[n] = '\0';
	return buf;
}

/* ---- main() ---- */

/* Runs the suite; the process's exit status. */
static inline int
run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#ifdef ZC_INTERNAL_H
/* For tests that make outbound calls: what zc_main does at start-up,
 * before any thread exists, then the suite. */
static inline int
run_client_suite(Suite *s)
{
	signal(SIGPIPE, SIG_IGN);
	if (zc__client_global_init() != 0) {
		fprintf(stderr, "curl_global_init failed\n");
		return EXIT_FAILURE;
	}
	return run_suite(s);
}
#endif

#endif /* ZC_TESTUTIL_H */
