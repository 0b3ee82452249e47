/*
 * test_log.c - log.c: the line format, the access line built by hand,
 * lines held while a thread serves a request and written with its access
 * line, the sweep that bounds how long a line is held, and a crash that
 * still writes what was held.  Also clock.c's cached calendar.
 */
#include "internal.h"

#include <sys/wait.h>

#include "testutil.h"

/* A request as the server would log it, without a socket. */
static void
fake_req(zc_req *req, const char *method, const char *path)
{
	memset(req, 0, sizeof(*req));
	req->ctx.method = method;
	req->ctx.path = path;
	strcpy(req->ctx.trace.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (; (hay = strstr(hay, needle)) != NULL; hay++)
		n++;
	return n;
}

/* What stderr (a file here) holds so far, without ending the capture. */
static char *
so_far(struct capture *c)
{
	off_t size = lseek(c->fd, 0, SEEK_END);
	char *buf = malloc((size_t)size + 1);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	n = pread(c->fd, buf, (size_t)size, 0);
	ck_assert_int_eq(n, size);
	buf[n] = '\0';
	return buf;
}

START_TEST(test_line_format)
{
	struct capture c;
	char *out;

	capture_start(&c);
	zc_info("hello %s %d", "world", 42);
	zc_warn("tab\there\nnewline \x01");
	out = capture_end(&c);
	/* 2026-11-27T20:22:43.123Z INFO  function: hello world 42 */
	ck_assert_uint_gt(strlen(out), 25);
	ck_assert_int_eq(out[4], '-');
	ck_assert_int_eq(out[10], 'T');
	ck_assert_int_eq(out[19], '.');
	ck_assert_int_eq(out[23], 'Z');
	ck_assert_msg(
		strncmp(out + 24, " INFO  function: hello world 42\n", 32) == 0,
		"%s", out);
	ck_assert_ptr_nonnull(
		strstr(out, " WARN  function: tab\\there\\nnewline \\x01\n"));
	free(out);
}
END_TEST

/* Outside a request every line goes out at once. */
START_TEST(test_unheld_line_is_written_at_once)
{
	struct capture c;
	char *now, *out;

	capture_start(&c);
	zc_info("right away");
	now = so_far(&c);
	ck_assert_ptr_nonnull(strstr(now, "right away\n"));
	free(now);
	out = capture_end(&c);
	free(out);
}
END_TEST

START_TEST(test_held_until_release_with_access_line)
{
	struct capture c;
	zc_req req;
	char *now, *out, *a, *b;

	fake_req(&req, "POST", "/log");
	capture_start(&c);
	zc__log_hold();
	zc__set_current(&req);
	zc_info("[AUDIT] first");
	zc_info("second");
	zc__set_current(NULL);
	now = so_far(&c);
	ck_assert_str_eq(now, ""); /* held */
	free(now);
	zc__log_release(&req, 200, 1234567);
	/* released: later lines are not held */
	zc_info("after");
	now = so_far(&c);
	ck_assert_ptr_nonnull(strstr(now, "after\n"));
	free(now);
	out = capture_end(&c);
	a = strstr(out,
		   "[AUDIT] first trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n");
	b = strstr(out, "access POST /log 200 1.235ms trace_id="
			"4bf92f3577b34da6a3ce929d0e0e4736\n");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert(a < strstr(out, "second"));
	ck_assert(strstr(out, "second") < b);
	ck_assert(b < strstr(out, "after"));
	free(out);
}
END_TEST

/* %.3f's rounding, and the path's control characters escaped. */
START_TEST(test_access_line_format)
{
	static const struct {
		long long ns;
		const char *text;
	} cases[] = {
		{0, " 0.000ms"},         {499, " 0.000ms"},
		{500, " 0.001ms"},       {999999, " 1.000ms"},
		{12345678, " 12.346ms"}, {60000000000LL, " 60000.000ms"},
	};
	struct capture c;
	zc_req req;
	char *out, want[64];
	size_t i;

	capture_start(&c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_req(&req, "GET", "/x");
		zc__log_hold();
		zc__log_release(&req, 204, cases[i].ns);
	}
	fake_req(&req, "GET", "/a\nb");
	zc__log_hold();
	zc__log_release(&req, 404, 0);
	out = capture_end(&c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(want, sizeof(want), "access GET /x 204%s trace_id",
			 cases[i].text);
		ck_assert_msg(strstr(out, want) != NULL, "no \"%s\" in %s",
			      want, out);
	}
	ck_assert_ptr_nonnull(strstr(out, "access GET /a\\nb 404 0.000ms"));
	ck_assert_uint_eq(count(out, "\n"), 7);
	free(out);
}
END_TEST

/* Probes are not in the access log; what the handler logged still is. */
START_TEST(test_probe_has_no_access_line)
{
	struct capture c;
	zc_req req;
	char *out;

	fake_req(&req, "GET", "/health/readiness");
	req.ctx.probe = true;
	capture_start(&c);
	zc__log_hold();
	zc_info("probe handler line");
	zc__log_release(&req, 200, 1000);
	out = capture_end(&c);
	ck_assert_ptr_nonnull(strstr(out, "probe handler line"));
	ck_assert_ptr_null(strstr(out, "access"));
	free(out);
}
END_TEST

/* A handler that blocks where the runtime cannot see: its lines are
 * written by the sweep once they are old enough, not before. */
START_TEST(test_sweep_bounds_the_hold)
{
	struct capture c;
	zc_req req;
	char *now, *out;

	fake_req(&req, "POST", "/slow");
	capture_start(&c);
	zc__log_hold();
	zc_info("before blocking");
	zc__log_sweep(); /* too young */
	now = so_far(&c);
	ck_assert_str_eq(now, "");
	free(now);
	sleep_ms(250);
	zc__log_sweep();
	now = so_far(&c);
	ck_assert_ptr_nonnull(strstr(now, "before blocking\n"));
	free(now);
	zc__log_release(&req, 200, 250000000);
	out = capture_end(&c);
	ck_assert_uint_eq(count(out, "before blocking"), 1);
	ck_assert_ptr_nonnull(strstr(out, "access POST /slow 200 250.000ms"));
	free(out);
}
END_TEST

START_TEST(test_flush_and_flush_all)
{
	struct capture c;
	zc_req req;
	char *now, *out;

	fake_req(&req, "POST", "/x");
	capture_start(&c);
	zc__log_hold();
	zc_info("one");
	zc__log_flush();
	now = so_far(&c);
	ck_assert_ptr_nonnull(strstr(now, "one\n"));
	free(now);
	zc_info("two");
	zc__log_flush_all();
	now = so_far(&c);
	ck_assert_ptr_nonnull(strstr(now, "two\n"));
	free(now);
	zc__log_release(&req, 200, 0);
	out = capture_end(&c);
	ck_assert_uint_eq(count(out, "one\n"), 1);
	ck_assert_uint_eq(count(out, "two\n"), 1);
	free(out);
}
END_TEST

/* More than the buffer holds: written in order, nothing lost. */
START_TEST(test_overflow_keeps_every_line_in_order)
{
	struct capture c;
	zc_req req;
	char *out, *p, want[32];
	int i;

	fake_req(&req, "POST", "/many");
	capture_start(&c);
	zc__log_hold();
	for (i = 0; i < 1000; i++)
		zc_info("line %04d %s", i,
			"padding padding padding padding padding");
	zc__log_release(&req, 200, 0);
	out = capture_end(&c);
	p = out;
	for (i = 0; i < 1000; i++) {
		snprintf(want, sizeof(want), "line %04d ", i);
		p = strstr(p, want);
		ck_assert_msg(p != NULL, "%s missing or out of order", want);
	}
	ck_assert_ptr_nonnull(strstr(p, "access POST /many 200"));
	free(out);
}
END_TEST

/* A long line is written whole, not cut. */
START_TEST(test_long_line_whole)
{
	struct capture c;
	char *big, *out;

	big = malloc(20001);
	ck_assert_ptr_nonnull(big);
	memset(big, 'q', 20000);
	big[20000] = '\0';
	capture_start(&c);
	zc__log_hold();
	zc_info("[UNDELIVERED] %s end", big);
	zc__log_release(NULL, 0, 0);
	out = capture_end(&c);
	ck_assert_ptr_nonnull(strstr(out, big));
	ck_assert_ptr_nonnull(strstr(out, "qqq end\n"));
	free(out);
	free(big);
}
END_TEST

/* A thread that crashes mid-request still leaves what it logged, and the
 * crash is still the crash (killed by SIGSEGV, or reported by a sanitizer,
 * whose handler the runtime's passes the signal on to). */
START_TEST(test_crash_writes_held_lines)
{
	struct capture c;
	char *out;
	pid_t pid;
	int status;

	capture_start(&c);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		zc__log_init("crasher"); /* installs the fatal handlers */
		zc__log_hold();
		zc_info("last words");
		raise(SIGSEGV);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	out = capture_end(&c);
	/*
	 * Killed by the signal; under a sanitizer, which reports and exits,
	 * its report's exit code (only there: a plain build must die of it).
	 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	ck_assert_msg((WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) ||
			      (WIFEXITED(status) && WEXITSTATUS(status) != 0),
		      "status %d", status);
#else
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		      "status %d", status);
#endif
	ck_assert_ptr_nonnull(strstr(out, "crasher: last words\n"));
	free(out);
}
END_TEST

/* The per-thread calendar cache gives what strftime gives, for any order
 * of seconds. */
START_TEST(test_utc_seconds_cache)
{
	static const time_t ts[] = {
		0,          1,          86399,      86400, 951782400,
		1795811347, 1795811347, 1795811348, 1,     4102444799};
	char got[20], want[32];
	struct tm tm;
	size_t i;

	for (i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		gmtime_r(&ts[i], &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		zc__utc_seconds(ts[i], got);
		got[19] = '\0';
		ck_assert_str_eq(got, want);
	}
}
END_TEST

/* RFC 3339 with nanoseconds, trailing zeros dropped (Go's form). */
START_TEST(test_timestamp_shape)
{
	char buf[40], small[8];
	size_t n;
	int i;

	for (i = 0; i < 1000; i++) {
		zc_timestamp(buf, sizeof(buf));
		n = strlen(buf);
		ck_assert_uint_ge(n, 20);
		ck_assert_uint_le(n, 30);
		ck_assert_int_eq(buf[n - 1], 'Z');
		ck_assert_int_eq(buf[10], 'T');
		if (n > 20) {
			ck_assert_int_eq(buf[19], '.');
			ck_assert_int_ne(buf[n - 2], '0');
		}
	}
	zc_timestamp(small, sizeof(small));
	ck_assert_uint_eq(strlen(small), 7); /* cut, as snprintf would */
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_test(tc, test_line_format);
	tcase_add_test(tc, test_unheld_line_is_written_at_once);
	tcase_add_test(tc, test_held_until_release_with_access_line);
	tcase_add_test(tc, test_access_line_format);
	tcase_add_test(tc, test_probe_has_no_access_line);
	tcase_add_test(tc, test_sweep_bounds_the_hold);
	tcase_add_test(tc, test_flush_and_flush_all);
	tcase_add_test(tc, test_overflow_keeps_every_line_in_order);
	tcase_add_test(tc, test_long_line_whole);
	tcase_add_test(tc, test_crash_writes_held_lines);
	tcase_add_test(tc, test_utc_seconds_cache);
	tcase_add_test(tc, test_timestamp_shape);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(log_suite());
}
