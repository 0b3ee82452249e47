/*
 * test_helpers.c - the helpers zenith.h gives every function (environment
 * settings, random and stable ids, the hash, the event sink), the version
 * macros, and the route options: what combines, what an HTTP route
 * refuses, and the deprecated alias that still works.
 */
#include <ctype.h>

#include "zenith.h"
#include "testutil.h"

START_TEST(env_bool_values)
{
	static const char *const yes[] = {"1", "true", "TRUE", "on", "Yes"};
	static const char *const no[] = {"0", "false", "Off", "no", "NO"};
	bool v;
	size_t i;

	unsetenv("ZC_T_FLAG");
	v = false;
	ck_assert_int_eq(zc_env_bool("ZC_T_FLAG", true, &v), ZC_OK);
	ck_assert(v);
	setenv("ZC_T_FLAG", "", 1);
	v = true;
	ck_assert_int_eq(zc_env_bool("ZC_T_FLAG", false, &v), ZC_OK);
	ck_assert(!v);
	for (i = 0; i < 5; i++) {
		setenv("ZC_T_FLAG", yes[i], 1);
		v = false;
		ck_assert_int_eq(zc_env_bool("ZC_T_FLAG", false, &v), ZC_OK);
		ck_assert_msg(v, "%s", yes[i]);
		setenv("ZC_T_FLAG", no[i], 1);
		v = true;
		ck_assert_int_eq(zc_env_bool("ZC_T_FLAG", true, &v), ZC_OK);
		ck_assert_msg(!v, "%s", no[i]);
	}
	unsetenv("ZC_T_FLAG");
}
END_TEST

START_TEST(env_bool_bad_value_names_the_variable)
{
	struct capture c;
	bool v = true;
	char *log;

	setenv("ZC_T_FLAG", "maybe", 1);
	capture_start(&c);
	ck_assert_int_eq(zc_env_bool("ZC_T_FLAG", false, &v), ZC_ERR_INVALID);
	log = capture_end(&c);
	ck_assert(v); /* untouched */
	ck_assert_ptr_nonnull(strstr(log, "ZC_T_FLAG=\"maybe\""));
	ck_assert_ptr_nonnull(strstr(log, "expected"));
	free(log);
	ck_assert_int_eq(zc_env_bool(NULL, false, &v), ZC_ERR_INVALID);
	ck_assert_int_eq(zc_env_bool("ZC_T_FLAG", false, NULL), ZC_ERR_INVALID);
	unsetenv("ZC_T_FLAG");
}
END_TEST

START_TEST(env_choice_values)
{
	static const char *const modes[] = {"async", "sync", NULL};
	struct capture c;
	int m = -1;
	char *log;

	unsetenv("ZC_T_MODE");
	ck_assert_int_eq(zc_env_choice("ZC_T_MODE", modes, 0, &m), ZC_OK);
	ck_assert_int_eq(m, 0);
	setenv("ZC_T_MODE", "sync", 1);
	ck_assert_int_eq(zc_env_choice("ZC_T_MODE", modes, 0, &m), ZC_OK);
	ck_assert_int_eq(m, 1);
	setenv("ZC_T_MODE", "SYNC", 1); /* exact, as the docs say */
	m = 7;
	capture_start(&c);
	ck_assert_int_eq(zc_env_choice("ZC_T_MODE", modes, 0, &m),
			 ZC_ERR_INVALID);
	log = capture_end(&c);
	ck_assert_int_eq(m, 7);
	ck_assert_ptr_nonnull(strstr(log, "ZC_T_MODE=\"SYNC\""));
	ck_assert_ptr_nonnull(strstr(log, "async or sync"));
	free(log);
	unsetenv("ZC_T_MODE");
}
END_TEST

static bool
all_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) ||
		    isupper((unsigned char)s[i]))
			return false;
	return s[n] == '\0';
}

START_TEST(random_ids)
{
	char a[33], b[33], small[9], one[1];

	ck_assert_ptr_eq(zc_random_id(a, sizeof(a)), a);
	zc_random_id(b, sizeof(b));
	ck_assert(all_hex(a, 32));
	ck_assert(all_hex(b, 32));
	ck_assert_str_ne(a, b);
	zc_random_id(small, sizeof(small));
	ck_assert(all_hex(small, 8));
	zc_random_id(one, sizeof(one));
	ck_assert_int_eq(one[0], '\0');
	/* a larger buffer still gets at most 32 digits */
	{
		char big[64];
		zc_random_id(big, sizeof(big));
		ck_assert(all_hex(big, 32));
	}
}
END_TEST

START_TEST(stable_ids)
{
	char x[48], y[48], z[48], w[48], tiny[10];

	ck_assert_int_eq(zc_stable_id(x, sizeof(x), "bal-", "src", "id-1"),
			 ZC_OK);
	ck_assert_int_eq(zc_stable_id(y, sizeof(y), "bal-", "src", "id-1"),
			 ZC_OK);
	ck_assert_str_eq(x, y);
	ck_assert_int_eq(strncmp(x, "bal-", 4), 0);
	ck_assert(all_hex(x + 4, 32));
	ck_assert_int_eq(zc_stable_id(z, sizeof(z), "bal-", "src", "id-2"),
			 ZC_OK);
	ck_assert_str_ne(x, z);
	/* the parts are kept apart: ("ab", "c") is not ("a", "bc") */
	ck_assert_int_eq(zc_stable_id(z, sizeof(z), "", "ab", "c"), ZC_OK);
	ck_assert_int_eq(zc_stable_id(w, sizeof(w), "", "a", "bc"), ZC_OK);
	ck_assert_str_ne(z, w);
	ck_assert_int_eq(zc_stable_id(w, sizeof(w), NULL, "a", NULL), ZC_OK);
	ck_assert(all_hex(w, 32));
	ck_assert_int_eq(zc_stable_id(tiny, sizeof(tiny), "p", "a", "b"),
			 ZC_ERR_TOO_LARGE);
	ck_assert_int_eq(zc_stable_id(x, sizeof(x), "p", NULL, "b"),
			 ZC_ERR_INVALID);
}
END_TEST

START_TEST(hash64_is_fnv1a)
{
	/* FNV-1a 64 reference values */
	ck_assert_uint_eq(zc_hash64("", 0), 0xcbf29ce484222325ULL);
	ck_assert_uint_eq(zc_hash64("a", 1), 0xaf63dc4c8601ec8cULL);
	ck_assert_uint_eq(zc_hash64("foobar", 6), 0x85944171f73967e8ULL);
}
END_TEST

START_TEST(event_sink)
{
	unsetenv("K_SINK");
	ck_assert_ptr_null(zc_event_sink());
	setenv("K_SINK", "", 1);
	ck_assert_ptr_null(zc_event_sink());
	setenv("K_SINK", "http://broker", 1);
	ck_assert_str_eq(zc_event_sink(), "http://broker");
	unsetenv("K_SINK");
}
END_TEST

START_TEST(version_macros)
{
	char text[32];

	snprintf(text, sizeof(text), "%d.%d.%d", ZC_VERSION_MAJOR,
		 ZC_VERSION_MINOR, ZC_VERSION_PATCH);
	ck_assert_str_eq(text, ZC_VERSION);
	ck_assert_int_eq(ZC_VERSION_NUM,
			 ZC_VERSION_AT(ZC_VERSION_MAJOR, ZC_VERSION_MINOR,
				       ZC_VERSION_PATCH));
#if ZC_VERSION_NUM < ZC_VERSION_AT(0, 2, 0)
	ck_abort_msg("the route options need 0.2");
#endif
}
END_TEST

/* ---- route options ---- */

static int
h_count(zc_req *req, zc_res *res, void *arg)
{
	(void)req;
	(*(int *)arg)++;
	return zc_res_jsonf(res, 200, "{s:i}", "n", *(int *)arg);
}

static int runs;
static int event_runs;

static int
on_event(zc_req *req, const zc_event *ev, zc_res *res, void *arg)
{
	zc_event *reply = zc_event_new("com.example.reply");
	zc_err err;

	(void)req;
	(void)ev;
	(void)arg;
	event_runs++;
	ck_assert_ptr_nonnull(reply);
	err = zc_res_event(res, reply);
	zc_event_free(reply);
	return err == ZC_OK ? 0 : -1;
}

static int
setup_options(zc_app *app)
{
	zc_route_opts idem = {.flags = ZC_ROUTE_IDEMPOTENT};
	zc_route_opts both = {.flags = ZC_ROUTE_IDEMPOTENT | ZC_ROUTE_REPLYING,
			      .event_type = "com.example.t"};

	if (zc_route_with(app, "POST", "/once", h_count, &runs, &idem) !=
		    ZC_OK ||
	    zc_route_with(app, "POST", "/plain", h_count, &runs, NULL) !=
		    ZC_OK ||
	    zc_event_route(app, "/events", on_event, NULL, &both) != ZC_OK)
		return -1;
	return 0;
}

START_TEST(route_options_combine)
{
	const char *const key[] = {"Idempotency-Key: K-1",
				   "Content-Type: application/json", NULL};
	const char *const ev[] = {"ce-specversion: 1.0",
				  "ce-id: e-1",
				  "ce-source: /t",
				  "ce-type: com.example.t",
				  "Content-Type: application/json",
				  NULL};
	zc_app *app;
	zc_res *a, *b;

	runs = event_runs = 0;
	app = open_app(setup_options);
	a = zc_test_request(app, "POST", "/once", key, "{}");
	b = zc_test_request(app, "POST", "/once", key, "{}");
	ck_assert_int_eq(zc_res_get_status(a), 200);
	ck_assert_int_eq(zc_res_get_status(b), 200);
	ck_assert_str_eq(zc_res_get_header(b, "Idempotent-Replayed"), "true");
	ck_assert_int_eq(runs, 1);
	zc_res_free(a);
	zc_res_free(b);
	a = zc_test_request(app, "POST", "/plain", key, "{}");
	b = zc_test_request(app, "POST", "/plain", key, "{}");
	ck_assert_int_eq(runs, 3); /* no option: runs every time */
	zc_res_free(a);
	zc_res_free(b);
	/* idempotent and replying at once: a reply without Prefer: reply,
	 * and the redelivery answered from the record */
	a = zc_test_request(app, "POST", "/events", ev, "{}");
	b = zc_test_request(app, "POST", "/events", ev, "{}");
	ck_assert_int_eq(zc_res_get_status(a), 200);
	ck_assert_str_eq(zc_res_get_header(a, "ce-type"), "com.example.reply");
	ck_assert_int_eq(zc_res_get_status(b), 200);
	ck_assert_str_eq(zc_res_get_header(b, "ce-type"), "com.example.reply");
	ck_assert_int_eq(event_runs, 1);
	zc_res_free(a);
	zc_res_free(b);
	zc_app_free(app);
}
END_TEST

static zc_err refused[3];

static int
setup_refused(zc_app *app)
{
	zc_route_opts replying = {.flags = ZC_ROUTE_REPLYING};
	zc_route_opts typed = {.event_type = "x"};
	zc_route_opts unknown = {.flags = 1u << 30};

	refused[0] =
		zc_route_with(app, "POST", "/a", h_count, &runs, &replying);
	refused[1] = zc_route_with(app, "POST", "/b", h_count, &runs, &typed);
	refused[2] = zc_route_with(app, "POST", "/c", h_count, &runs, &unknown);
	return 0;
}

START_TEST(http_route_refuses_event_options)
{
	struct capture c;
	zc_app *app;
	char *log;

	capture_start(&c);
	app = open_app(setup_refused);
	log = capture_end(&c);
	ck_assert_int_eq(refused[0], ZC_ERR_INVALID);
	ck_assert_int_eq(refused[1], ZC_ERR_INVALID);
	ck_assert_int_eq(refused[2], ZC_ERR_INVALID);
	ck_assert_ptr_nonnull(strstr(log, "zc_route_with"));
	free(log);
	zc_app_free(app);
}
END_TEST

/* The 0.1 name still works (and warns at compile time, silenced here). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int
setup_alias(zc_app *app)
{
	return zc_route_idempotent(app, "POST", "/old", h_count, &runs);
}
#pragma GCC diagnostic pop

START_TEST(deprecated_alias_is_idempotent)
{
	const char *const key[] = {"Idempotency-Key: K-2", NULL};
	zc_app *app;
	zc_res *a, *b;

	runs = 0;
	app = open_app(setup_alias);
	a = zc_test_request(app, "POST", "/old", key, "{}");
	b = zc_test_request(app, "POST", "/old", key, "{}");
	ck_assert_int_eq(runs, 1);
	ck_assert_str_eq(zc_res_get_header(b, "Idempotent-Replayed"), "true");
	zc_res_free(a);
	zc_res_free(b);
	zc_app_free(app);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("helpers");
	TCase *tc = tcase_create("helpers");

	tcase_add_test(tc, env_bool_values);
	tcase_add_test(tc, env_bool_bad_value_names_the_variable);
	tcase_add_test(tc, env_choice_values);
	tcase_add_test(tc, random_ids);
	tcase_add_test(tc, stable_ids);
	tcase_add_test(tc, hash64_is_fnv1a);
	tcase_add_test(tc, event_sink);
	tcase_add_test(tc, version_macros);
	tcase_add_test(tc, route_options_combine);
	tcase_add_test(tc, http_route_refuses_event_options);
	tcase_add_test(tc, deprecated_alias_is_idempotent);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
