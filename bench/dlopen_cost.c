/*
 * dlopen_cost.c - what loading libcurl costs a function on its first
 * outbound call (outbound/curl.c loads it with dlopen): the dlopen of the
 * library with its dependency tree, then curl_global_init.
 *
 *   cc -std=c11 -O2 -o dlopen_cost bench/dlopen_cost.c -ldl
 *   ./dlopen_cost libcurl.so.4; ./dlopen_cost libcurl-gnutls.so.4
 *
 * Run it a few times: the first run after boot also reads the files.
 * Benchmark tool only.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

static double
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
	long (*global_init)(long);
	double t0, t1, t2;
	void *h;

	if (argc != 2) {
		fprintf(stderr, "usage: dlopen_cost SONAME\n");
		return 2;
	}
	t0 = now_ms();
	if ((h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	t1 = now_ms();
	*(void **)&global_init = dlsym(h, "curl_global_init");
	if (global_init == NULL || global_init(3 /* CURL_GLOBAL_ALL */) != 0) {
		fprintf(stderr, "curl_global_init failed\n");
		return 1;
	}
	t2 = now_ms();
	printf("%s: dlopen %.2f ms, curl_global_init %.2f ms\n", argv[1],
	       t1 - t0, t2 - t1);
	return 0;
}
