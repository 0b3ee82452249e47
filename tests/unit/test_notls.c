/*
 * test_notls.c - runtime/notls/notls.c, the stand-ins for the GnuTLS that
 * Debian's libmicrohttpd.a references: a plain daemon serves, a daemon
 * asked for TLS refuses to start (it never serves without TLS), and no
 * GnuTLS is loaded unless the shared libmicrohttpd brought it.
 */
#include <microhttpd.h>
#include <stdbool.h>

#include "testutil.h"

static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *upload_data,
       size_t *upload_data_size, void **con_cls)
{
	(void)cls, (void)conn, (void)url, (void)method, (void)version;
	(void)upload_data, (void)upload_data_size, (void)con_cls;
	return MHD_NO;
}

/* Is a library whose path contains name mapped into this process? */
static bool
mapped(const char *name)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, name) != NULL)
			found = true;
	fclose(f);
	return found;
}

START_TEST(test_plain_daemon_starts)
{
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
		answer, NULL, MHD_OPTION_END);

	ck_assert_ptr_nonnull(d);
	MHD_stop_daemon(d);
}
END_TEST

/*
 * With the stand-ins, MHD's TLS set-up gets GNUTLS_E_UNIMPLEMENTED_FEATURE
 * and must fail cleanly, not crash or start a plain daemon.  (With the
 * shared library the key is what it refuses, so this passes there too: it
 * is the static build's no-crash check.)
 */
START_TEST(test_tls_daemon_refuses_to_start)
{
	static const char key[] = "-----BEGIN PRIVATE KEY-----\n"
				  "MC4CAQAwBQYDK2VwBCIEIA==\n"
				  "-----END PRIVATE KEY-----\n";
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TLS,
		0, NULL, NULL, answer, NULL, MHD_OPTION_HTTPS_MEM_KEY, key,
		MHD_OPTION_HTTPS_MEM_CERT, key, MHD_OPTION_END);

	ck_assert_ptr_null(d);
}
END_TEST

START_TEST(test_gnutls_only_with_shared_libmicrohttpd)
{
	if (mapped("libgnutls"))
		ck_assert_msg(mapped("libmicrohttpd.so"),
			      "GnuTLS is loaded, and not by libmicrohttpd.so");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("notls");
	TCase *tc = tcase_create("notls");

	tcase_add_test(tc, test_plain_daemon_starts);
	tcase_add_test(tc, test_tls_daemon_refuses_to_start);
	tcase_add_test(tc, test_gnutls_only_with_shared_libmicrohttpd);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
