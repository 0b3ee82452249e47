/*
 * test_otel_env.c - the OpenTelemetry variables (core/otel_env.c): when
 * tracing turns on, every variable's default, the endpoint rule's cases,
 * signal-specific over generic, percent-decoding, and bad values, which
 * give one warning naming the variable and the default, never a failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "testutil.h"

static const char *const all_vars[] = {
	"OTEL_SDK_DISABLED",
	"OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_EXPORTER",
	"OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_TIMEOUT",
	"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_BSP_SCHEDULE_DELAY",
	"OTEL_BSP_EXPORT_TIMEOUT",
	"OTEL_BSP_MAX_QUEUE_SIZE",
	"OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
};

static void
clear_env(void)
{
	size_t i;

	for (i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
		unsetenv(all_vars[i]);
}

static struct zc_otel o;
static char *log_text;

/* Load with the log captured into log_text. */
static void
load(const char *service)
{
	struct capture c;

	free(log_text);
	capture_start(&c);
	zc__otel_load(&o, service);
	log_text = capture_end(&c);
}

static void
teardown(void)
{
	zc__otel_free(&o);
	free(log_text);
	log_text = NULL;
	clear_env();
}

static const char *
res(const char *key)
{
	size_t i;

	for (i = 0; i < o.nresource; i++)
		if (strcmp(o.resource[i].key, key) == 0)
			return o.resource[i].value;
	return NULL;
}

static int
warnings(void)
{
	int n = 0;
	const char *p;

	for (p = log_text; (p = strstr(p, "WARN")) != NULL; p++)
		n++;
	return n;
}

/* ---- when tracing is on ---- */

START_TEST(nothing_set_is_off)
{
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_NONE);
	ck_assert_str_eq(log_text, "");
}
END_TEST

START_TEST(endpoint_turns_otlp_on)
{
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_str_eq(o.endpoint, "http://c:4318/v1/traces");
	clear_env();
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/t", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_str_eq(o.endpoint, "http://c:4318/t");
}
END_TEST

START_TEST(exporter_values)
{
	static const struct {
		const char *v;
		int want;
		int warns;
	} cases[] = {
		{"otlp", ZC_EXPORT_OTLP, 0},
		{"OTLP", ZC_EXPORT_OTLP, 0},
		{"console", ZC_EXPORT_CONSOLE, 0},
		{" Console ", ZC_EXPORT_CONSOLE, 0},
		{"logging", ZC_EXPORT_CONSOLE, 1},
		{"none", ZC_EXPORT_NONE, 0},
		{"zipkin", ZC_EXPORT_NONE, 1},
		{"bogus", ZC_EXPORT_NONE, 1}, /* unknown: as unset */
		{"otlp,console", ZC_EXPORT_OTLP, 1},
		{"none,console", ZC_EXPORT_CONSOLE, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("OTEL_TRACES_EXPORTER", cases[i].v, 1);
		load("fn");
		ck_assert_msg(o.exporter == cases[i].want, "%s: %d", cases[i].v,
			      o.exporter);
		ck_assert_msg(warnings() == cases[i].warns, "%s: %s",
			      cases[i].v, log_text);
		if (o.exporter == ZC_EXPORT_OTLP)
			ck_assert_str_eq(o.endpoint,
					 "http://localhost:4318/v1/traces");
		zc__otel_free(&o);
	}
	/* unknown exporter with an endpoint: the endpoint rule */
	setenv("OTEL_TRACES_EXPORTER", "bogus", 1);
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	/* none beats an endpoint */
	zc__otel_free(&o);
	setenv("OTEL_TRACES_EXPORTER", "none", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_NONE);
}
END_TEST

START_TEST(sdk_disabled)
{
	setenv("OTEL_TRACES_EXPORTER", "otlp", 1);
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", 1);
	setenv("OTEL_SDK_DISABLED", "TRUE", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_NONE);
	zc__otel_free(&o);
	/* only "true" is true; anything else but "false" warns */
	setenv("OTEL_SDK_DISABLED", "1", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_ptr_nonnull(strstr(log_text, "OTEL_SDK_DISABLED"));
	zc__otel_free(&o);
	setenv("OTEL_SDK_DISABLED", "false", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_int_eq(warnings(), 0);
	zc__otel_free(&o);
	setenv("OTEL_SDK_DISABLED", "", 1); /* empty: unset */
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_int_eq(warnings(), 0);
}
END_TEST

/* ---- defaults ---- */

START_TEST(defaults)
{
	setenv("OTEL_TRACES_EXPORTER", "otlp", 1);
	load("balance-manager");
	ck_assert_int_eq(warnings(), 0);
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_int_eq(o.sampler, ZC_SAMPLE_PARENT_ON);
	ck_assert(o.ratio == 1.0);
	ck_assert_str_eq(o.endpoint, "http://localhost:4318/v1/traces");
	ck_assert_int_eq(o.protocol, ZC_OTLP_PROTOBUF);
	ck_assert_uint_eq(o.nheaders, 0);
	ck_assert_int_eq(o.timeout_ms, 10000);
	ck_assert(!o.gzip);
	ck_assert_int_eq(o.schedule_delay_ms, 5000);
	ck_assert_int_eq(o.export_timeout_ms, 30000);
	ck_assert_uint_eq(o.max_queue, 2048);
	ck_assert_uint_eq(o.max_batch, 512);
	/* resource: service.name first, then the SDK's */
	ck_assert_uint_eq(o.nresource, 4);
	ck_assert_str_eq(o.resource[0].key, "service.name");
	ck_assert_str_eq(o.resource[0].value, "balance-manager");
	ck_assert_str_eq(res("telemetry.sdk.name"), "zenith-c");
	ck_assert_str_eq(res("telemetry.sdk.language"), "c");
	ck_assert_str_eq(res("telemetry.sdk.version"), ZC_VERSION);
}
END_TEST

/* ---- the resource ---- */

START_TEST(resource_attributes)
{
	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	setenv("OTEL_RESOURCE_ATTRIBUTES",
	       "service.namespace=demo, service.version=latest,"
	       "team=a%2Cb%3Dc%25,,note=hello%20world",
	       1);
	load("fn");
	ck_assert_int_eq(warnings(), 0);
	ck_assert_str_eq(o.resource[0].value, "fn");
	ck_assert_str_eq(res("service.namespace"), "demo");
	ck_assert_str_eq(res("service.version"), "latest");
	ck_assert_str_eq(res("team"), "a,b=c%");
	ck_assert_str_eq(res("note"), "hello world");
}
END_TEST

START_TEST(service_name_precedence)
{
	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,x=1", 1);
	load("fn");
	ck_assert_str_eq(o.resource[0].key, "service.name");
	ck_assert_str_eq(o.resource[0].value, "from-attrs");
	zc__otel_free(&o);
	setenv("OTEL_SERVICE_NAME", "from-name", 1);
	load("fn");
	ck_assert_str_eq(o.resource[0].value, "from-name");
	ck_assert_str_eq(res("x"), "1");
	/* only one service.name */
	{
		size_t i, n = 0;
		for (i = 0; i < o.nresource; i++)
			n += strcmp(o.resource[i].key, "service.name") == 0;
		ck_assert_uint_eq(n, 1);
	}
	zc__otel_free(&o);
	unsetenv("OTEL_SERVICE_NAME");
	unsetenv("OTEL_RESOURCE_ATTRIBUTES");
	load(NULL);
	ck_assert_str_eq(o.resource[0].value, "unknown_service");
	/* the variable may set telemetry.sdk.* itself */
	zc__otel_free(&o);
	setenv("OTEL_RESOURCE_ATTRIBUTES", "telemetry.sdk.language=cpp", 1);
	load("fn");
	ck_assert_str_eq(res("telemetry.sdk.language"), "cpp");
}
END_TEST

START_TEST(resource_decode_error_drops_all)
{
	static const char *const bad[] = {"a=1,b=%zz", "a=1,b", "a=1,=x",
					  "a=%4", "a=%00"};
	size_t i;

	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("OTEL_RESOURCE_ATTRIBUTES", bad[i], 1);
		load("fn");
		ck_assert_msg(res("a") == NULL, "%s", bad[i]);
		ck_assert_int_eq(warnings(), 1);
		ck_assert_ptr_nonnull(
			strstr(log_text, "OTEL_RESOURCE_ATTRIBUTES"));
		ck_assert_str_eq(o.resource[0].value, "fn");
		ck_assert_str_eq(res("telemetry.sdk.name"), "zenith-c");
		zc__otel_free(&o);
	}
}
END_TEST

/* ---- the sampler ---- */

START_TEST(samplers)
{
	static const struct {
		const char *name;
		int want;
	} cases[] = {
		{"always_on", ZC_SAMPLE_ALWAYS_ON},
		{"always_off", ZC_SAMPLE_ALWAYS_OFF},
		{"traceidratio", ZC_SAMPLE_RATIO},
		{"parentbased_always_on", ZC_SAMPLE_PARENT_ON},
		{"parentbased_always_off", ZC_SAMPLE_PARENT_OFF},
		{"ParentBased_TraceIdRatio", ZC_SAMPLE_PARENT_RATIO},
	};
	size_t i;

	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("OTEL_TRACES_SAMPLER", cases[i].name, 1);
		load("fn");
		ck_assert_int_eq(o.sampler, cases[i].want);
		ck_assert_int_eq(warnings(), 0);
		zc__otel_free(&o);
	}
	setenv("OTEL_TRACES_SAMPLER", "parentbased_jaeger_remote", 1);
	load("fn");
	ck_assert_int_eq(o.sampler, ZC_SAMPLE_PARENT_ON);
	ck_assert_int_eq(warnings(), 1);
	ck_assert_ptr_nonnull(strstr(log_text, "OTEL_TRACES_SAMPLER"));
	zc__otel_free(&o);
	setenv("OTEL_TRACES_SAMPLER", "sometimes", 1);
	load("fn");
	ck_assert_int_eq(o.sampler, ZC_SAMPLE_PARENT_ON);
	ck_assert_int_eq(warnings(), 1);
}
END_TEST

START_TEST(sampler_arg)
{
	static const struct {
		const char *arg;
		double want;
		int warns;
	} cases[] = {
		{"0.25", 0.25, 0}, {"0", 0.0, 0},    {"1", 1.0, 0},
		{"1.5", 1.0, 1},   {"-0.1", 1.0, 1}, {"half", 1.0, 1},
		{"nan", 1.0, 1},   {"0.5x", 1.0, 1}, {" 0.1 ", 0.1, 0},
	};
	size_t i;

	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("OTEL_TRACES_SAMPLER_ARG", cases[i].arg, 1);
		load("fn");
		ck_assert_msg(o.ratio == cases[i].want, "%s: %g", cases[i].arg,
			      o.ratio);
		ck_assert_msg(warnings() == cases[i].warns, "%s: %s",
			      cases[i].arg, log_text);
		if (cases[i].warns)
			ck_assert_ptr_nonnull(
				strstr(log_text, "OTEL_TRACES_SAMPLER_ARG"));
		zc__otel_free(&o);
	}
	/* read only for the ratio samplers */
	setenv("OTEL_TRACES_SAMPLER", "always_on", 1);
	setenv("OTEL_TRACES_SAMPLER_ARG", "garbage", 1);
	load("fn");
	ck_assert_int_eq(warnings(), 0);
	ck_assert(o.ratio == 1.0);
	zc__otel_free(&o);
	/* without a sampler, the arg is not read */
	unsetenv("OTEL_TRACES_SAMPLER");
	setenv("OTEL_TRACES_SAMPLER_ARG", "0.1", 1);
	load("fn");
	ck_assert(o.ratio == 1.0);
	ck_assert_int_eq(o.sampler, ZC_SAMPLE_PARENT_ON);
}
END_TEST

/* ---- the endpoint ---- */

START_TEST(endpoint_rule)
{
	static const struct {
		const char *base, *traces, *want;
	} cases[] = {
		/* platform-fit.md section 1 */
		{"http://c:4318", NULL, "http://c:4318/v1/traces"},
		{"http://c:4318/", NULL, "http://c:4318/v1/traces"},
		{"http://c:4318/x/", NULL, "http://c:4318/x/v1/traces"},
		{"http://c:4318/x", NULL, "http://c:4318/x/v1/traces"},
		{NULL, "http://c:4318", "http://c:4318/"},
		{NULL, "http://c:4318/", "http://c:4318/"},
		{NULL, "http://c:4318/v1/traces", "http://c:4318/v1/traces"},
		{NULL, "https://c/custom/path", "https://c/custom/path"},
		{NULL, "http://c:4318?a=b", "http://c:4318/?a=b"},
		/* the signal's variable wins */
		{"http://base:4318", "http://sig:4318/t", "http://sig:4318/t"},
		/* the operator's */
		{"http://otel-collector-collector.opentelemetry-operator-"
		 "system.svc.cluster.local:4318",
		 NULL,
		 "http://otel-collector-collector.opentelemetry-operator-"
		 "system.svc.cluster.local:4318/v1/traces"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clear_env();
		if (cases[i].base != NULL)
			setenv("OTEL_EXPORTER_OTLP_ENDPOINT", cases[i].base, 1);
		if (cases[i].traces != NULL)
			setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
			       cases[i].traces, 1);
		load("fn");
		ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
		ck_assert_str_eq(o.endpoint, cases[i].want);
		ck_assert_int_eq(warnings(), 0);
		zc__otel_free(&o);
	}
}
END_TEST

START_TEST(endpoint_bad)
{
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318", 1);
	load("fn");
	ck_assert_int_eq(o.exporter, ZC_EXPORT_OTLP);
	ck_assert_str_eq(o.endpoint, "http://localhost:4318/v1/traces");
	ck_assert_ptr_nonnull(strstr(log_text, "OTEL_EXPORTER_OTLP_ENDPOINT"));
	zc__otel_free(&o);
	/* a bad signal endpoint falls back to the generic one */
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", 1);
	setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/", 1);
	load("fn");
	ck_assert_str_eq(o.endpoint, "http://c:4318/v1/traces");
	ck_assert_ptr_nonnull(
		strstr(log_text, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
}
END_TEST

/* ---- protocol, headers, timeout, compression ---- */

START_TEST(protocol)
{
	setenv("OTEL_TRACES_EXPORTER", "otlp", 1);
	setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1);
	load("fn");
	ck_assert_int_eq(o.protocol, ZC_OTLP_JSON);
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP/PROTOBUF", 1);
	load("fn");
	ck_assert_int_eq(o.protocol, ZC_OTLP_PROTOBUF);
	ck_assert_int_eq(warnings(), 0);
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc", 1);
	load("fn");
	ck_assert_int_eq(o.protocol, ZC_OTLP_PROTOBUF);
	ck_assert_int_eq(warnings(), 1);
	ck_assert_ptr_nonnull(
		strstr(log_text, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"));
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift", 1);
	load("fn");
	ck_assert_int_eq(o.protocol, ZC_OTLP_PROTOBUF);
	ck_assert_int_eq(warnings(), 1);
}
END_TEST

START_TEST(headers)
{
	setenv("OTEL_TRACES_EXPORTER", "otlp", 1);
	setenv("OTEL_EXPORTER_OTLP_HEADERS",
	       "api-key=s%3Dcret, X-Team = a%2Cb ,bad%0D%0AHost=x,"
	       "v=%0D%0Ainject,noequals,Empty=",
	       1);
	load("fn");
	ck_assert_uint_eq(o.nheaders, 3);
	ck_assert_str_eq(o.headers[0].key, "api-key");
	ck_assert_str_eq(o.headers[0].value, "s=cret");
	ck_assert_str_eq(o.headers[1].key, "X-Team");
	ck_assert_str_eq(o.headers[1].value, "a,b");
	ck_assert_str_eq(o.headers[2].key, "Empty");
	ck_assert_str_eq(o.headers[2].value, "");
	ck_assert_int_eq(warnings(), 3);
	zc__otel_free(&o);
	/* the signal's replace the generic ones */
	setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "only=this", 1);
	load("fn");
	ck_assert_uint_eq(o.nheaders, 1);
	ck_assert_str_eq(o.headers[0].key, "only");
}
END_TEST

START_TEST(timeouts_and_compression)
{
	setenv("OTEL_TRACES_EXPORTER", "otlp", 1);
	setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500", 1);
	setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "GZIP", 1);
	load("fn");
	ck_assert_int_eq(o.timeout_ms, 2500);
	ck_assert(o.gzip);
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", 1); /* no limit */
	setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none", 1);
	load("fn");
	ck_assert_int_eq(o.timeout_ms, 0);
	ck_assert(!o.gzip);
	ck_assert_int_eq(warnings(), 0);
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-5", 1);
	setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "brotli", 1);
	load("fn");
	ck_assert_int_eq(o.timeout_ms, 10000);
	ck_assert(!o.gzip);
	ck_assert_int_eq(warnings(), 2);
	ck_assert_ptr_nonnull(
		strstr(log_text, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"));
	ck_assert_ptr_nonnull(
		strstr(log_text, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"));
	zc__otel_free(&o);
	setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10s", 1);
	load("fn");
	ck_assert_int_eq(o.timeout_ms, 10000);
	ck_assert_ptr_nonnull(strstr(log_text, "using 10000"));
}
END_TEST

/* ---- the batch processor ---- */

START_TEST(bsp)
{
	setenv("OTEL_TRACES_EXPORTER", "console", 1);
	setenv("OTEL_BSP_SCHEDULE_DELAY", "100", 1);
	setenv("OTEL_BSP_EXPORT_TIMEOUT", "2000", 1);
	setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64", 1);
	setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16", 1);
	load("fn");
	ck_assert_int_eq(warnings(), 0);
	ck_assert_int_eq(o.schedule_delay_ms, 100);
	ck_assert_int_eq(o.export_timeout_ms, 2000);
	ck_assert_uint_eq(o.max_queue, 64);
	ck_assert_uint_eq(o.max_batch, 16);
	zc__otel_free(&o);
	/* batch over queue: the queue's size */
	setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100", 1);
	load("fn");
	ck_assert_uint_eq(o.max_batch, 64);
	ck_assert_int_eq(warnings(), 1);
	ck_assert_ptr_nonnull(
		strstr(log_text, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"));
	zc__otel_free(&o);
	/* bad values: each its default, one warning each */
	setenv("OTEL_BSP_SCHEDULE_DELAY", "soon", 1);
	setenv("OTEL_BSP_EXPORT_TIMEOUT", "-1", 1);
	setenv("OTEL_BSP_MAX_QUEUE_SIZE", "0", 1);
	setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "99999999999999999999", 1);
	load("fn");
	ck_assert_int_eq(o.schedule_delay_ms, 5000);
	ck_assert_int_eq(o.export_timeout_ms, 30000);
	ck_assert_uint_eq(o.max_queue, 2048);
	ck_assert_uint_eq(o.max_batch, 512);
	ck_assert_int_eq(warnings(), 4);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("otel_env");
	TCase *tc;

	zc__log_init("test");
	clear_env();
	tc = tcase_create("on");
	tcase_add_checked_fixture(tc, clear_env, teardown);
	tcase_add_test(tc, nothing_set_is_off);
	tcase_add_test(tc, endpoint_turns_otlp_on);
	tcase_add_test(tc, exporter_values);
	tcase_add_test(tc, sdk_disabled);
	suite_add_tcase(s, tc);
	tc = tcase_create("settings");
	tcase_add_checked_fixture(tc, clear_env, teardown);
	tcase_add_test(tc, defaults);
	tcase_add_test(tc, resource_attributes);
	tcase_add_test(tc, service_name_precedence);
	tcase_add_test(tc, resource_decode_error_drops_all);
	tcase_add_test(tc, samplers);
	tcase_add_test(tc, sampler_arg);
	tcase_add_test(tc, endpoint_rule);
	tcase_add_test(tc, endpoint_bad);
	tcase_add_test(tc, protocol);
	tcase_add_test(tc, headers);
	tcase_add_test(tc, timeouts_and_compression);
	tcase_add_test(tc, bsp);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
