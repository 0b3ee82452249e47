/*
 * test_discovery.c - service name -> URL resolution, and the error enum's
 * text and HTTP status mapping.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "zenith.h"

#include "testutil.h"

static void
clear_env(void)
{
	unsetenv("BALANCE_MANAGER_URL");
	unsetenv("AUDIT_LOGGER_URL");
	unsetenv("A_URL");
	unsetenv("POD_NAMESPACE");
}

START_TEST(test_env_override)
{
	char buf[256];

	setenv("BALANCE_MANAGER_URL", "http://127.0.0.1:8081", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf, "http://127.0.0.1:8081");
}
END_TEST

START_TEST(test_env_override_beats_namespace)
{
	char buf[256];

	setenv("POD_NAMESPACE", "prod", 1);
	setenv("AUDIT_LOGGER_URL", "http://localhost:3500/v1.0/invoke/a", 1);
	ck_assert_int_eq(zc_service_url("audit-logger", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf, "http://localhost:3500/v1.0/invoke/a");
}
END_TEST

START_TEST(test_env_trailing_slash)
{
	char buf[256];

	setenv("BALANCE_MANAGER_URL", "http://bm:8080/", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf, "http://bm:8080");

	setenv("BALANCE_MANAGER_URL", "http://bm:8080///", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf, "http://bm:8080");
}
END_TEST

START_TEST(test_env_empty_ignored)
{
	char buf[256];

	setenv("BALANCE_MANAGER_URL", "", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf,
			 "http://balance-manager.default.svc.cluster.local");
}
END_TEST

START_TEST(test_namespace_default)
{
	char buf[256];

	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf,
			 "http://balance-manager.default.svc.cluster.local");

	/* An empty POD_NAMESPACE means the downward API is not wired. */
	setenv("POD_NAMESPACE", "", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf,
			 "http://balance-manager.default.svc.cluster.local");
}
END_TEST

START_TEST(test_pod_namespace)
{
	char buf[256];

	setenv("POD_NAMESPACE", "payments", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_OK);
	ck_assert_str_eq(buf,
			 "http://balance-manager.payments.svc.cluster.local");
}
END_TEST

START_TEST(test_bad_pod_namespace)
{
	char buf[256];

	setenv("POD_NAMESPACE", "Bad_NS", 1);
	ck_assert_int_eq(zc_service_url("balance-manager", buf, sizeof(buf)),
			 ZC_ERR_INVALID);
}
END_TEST

START_TEST(test_invalid_names)
{
	static const char *const bad[] = {
		"",
		"-lead",
		"trail-",
		"Upper",
		"under_score",
		"dot.ted",
		"sla/sh",
		"spa ce",
		"h\xc3\xa9llo",
		/* 64 characters: one over the DNS label limit */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aa",
	};
	char buf[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(buf, "junk", 5);
		ck_assert_msg(zc_service_url(bad[i], buf, sizeof(buf)) ==
				      ZC_ERR_INVALID,
			      "accepted \"%s\"", bad[i]);
		ck_assert_str_eq(buf, "");
	}
	ck_assert_int_eq(zc_service_url(NULL, buf, sizeof(buf)),
			 ZC_ERR_INVALID);
	ck_assert_int_eq(zc_service_url("a", NULL, 10), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_service_url("a", buf, 0), ZC_ERR_INVALID);
}
END_TEST

START_TEST(test_valid_edge_names)
{
	/* 63 characters: exactly the limit */
	static const char max[] = "a23456789b23456789c23456789d23456789e2345678"
				  "9f23456789g23456789";
	char buf[256];

	ck_assert_uint_eq(strlen(max), 63);
	ck_assert_int_eq(zc_service_url(max, buf, sizeof(buf)), ZC_OK);
	ck_assert_int_eq(zc_service_url("a", buf, sizeof(buf)), ZC_OK);
	ck_assert_str_eq(buf, "http://a.default.svc.cluster.local");
	ck_assert_int_eq(zc_service_url("9lives", buf, sizeof(buf)), ZC_OK);
	ck_assert_int_eq(zc_service_url("a-1", buf, sizeof(buf)), ZC_OK);
}
END_TEST

START_TEST(test_small_buffer)
{
	static const char want[] = "http://a.default.svc.cluster.local";
	char buf[sizeof(want)];

	/* Exactly enough room for the string and its NUL. */
	ck_assert_int_eq(zc_service_url("a", buf, sizeof(want)), ZC_OK);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(zc_service_url("a", buf, sizeof(want) - 1),
			 ZC_ERR_TOO_LARGE);
	ck_assert_int_eq(zc_service_url("a", buf, 1), ZC_ERR_TOO_LARGE);

	/* The env override path checks the size too. */
	setenv("A_URL", "http://127.0.0.1:1", 1);
	ck_assert_int_eq(zc_service_url("a", buf, sizeof("http://127.0.0.1:1")),
			 ZC_OK);
	ck_assert_str_eq(buf, "http://127.0.0.1:1");
	ck_assert_int_eq(
		zc_service_url("a", buf, sizeof("http://127.0.0.1:1") - 1),
		ZC_ERR_TOO_LARGE);
}
END_TEST

START_TEST(test_strerror_every_value)
{
	int e;

	for (e = ZC_OK; e <= ZC_ERR_DEADLINE; e++) {
		const char *s = zc_strerror((zc_err)e);

		ck_assert_ptr_nonnull(s);
		ck_assert_msg(s[0] != '\0', "empty text for %d", e);
	}
	/* Distinct texts, so a log line tells errors apart. */
	ck_assert_str_ne(zc_strerror(ZC_ERR_TIMEOUT),
			 zc_strerror(ZC_ERR_DEADLINE));
	ck_assert_ptr_nonnull(zc_strerror((zc_err)9999));
	ck_assert_ptr_nonnull(zc_strerror((zc_err)-1));
}
END_TEST

START_TEST(test_err_http_status)
{
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_TIMEOUT), 504);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_DEADLINE), 504);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_BREAKER_OPEN), 503);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_BULKHEAD_FULL), 503);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_QUEUE_FULL), 503);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_DNS), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_REFUSED), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_TRANSPORT), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_HTTP), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_BAD_REPLY), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_TOO_LARGE), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_NOMEM), 502);
	ck_assert_int_eq(zc_err_http_status(ZC_ERR_INVALID), 502);
}
END_TEST

static Suite *
discovery_suite(void)
{
	Suite *s = suite_create("discovery");
	TCase *tc = tcase_create("service_url");
	TCase *te = tcase_create("errors");

	/* Checked fixtures run around every test, fork mode or not. */
	tcase_add_checked_fixture(tc, clear_env, clear_env);
	tcase_add_test(tc, test_env_override);
	tcase_add_test(tc, test_env_override_beats_namespace);
	tcase_add_test(tc, test_env_trailing_slash);
	tcase_add_test(tc, test_env_empty_ignored);
	tcase_add_test(tc, test_namespace_default);
	tcase_add_test(tc, test_pod_namespace);
	tcase_add_test(tc, test_bad_pod_namespace);
	tcase_add_test(tc, test_invalid_names);
	tcase_add_test(tc, test_valid_edge_names);
	tcase_add_test(tc, test_small_buffer);
	suite_add_tcase(s, tc);

	tcase_add_test(te, test_strerror_every_value);
	tcase_add_test(te, test_err_http_status);
	suite_add_tcase(s, te);
	return s;
}

int
main(void)
{
	return run_suite(discovery_suite());
}
