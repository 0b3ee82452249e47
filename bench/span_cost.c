/*
 * span_cost - what recording a span costs, deterministically: N requests'
 * worth of spans, each a server span with the attributes http/tracing.c
 * sets and a client span with those outbound/client.c sets, started, ended,
 * taken from the queue and freed the way the exporter does (every 512).
 * Meant for `valgrind --tool=callgrind`: run it with N and with 0 and
 * divide the difference by N.
 *
 *   make all && cc -std=c11 -D_GNU_SOURCE -O2 -pthread -Iruntime/include \
 *     -Iruntime/src bench/span_cost.c build/lib/libzenithc.a \
 *     /usr/lib/x86_64-linux-gnu/libmicrohttpd.a \
 *     build/obj/runtime/notls/notls.o -ljansson -lm -lrt -ldl \
 *     -o build/span_cost
 *   valgrind --tool=callgrind build/span_cost 100000
 */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>

static void
drain(void)
{
	struct zc_span *list, *s, *next;

	while (zc__span_take(&list, 512, 0) > 0)
		for (s = list; s != NULL; s = next) {
			next = s->next;
			zc__span_free(s);
		}
}

static void
one_request(void)
{
	struct zc_span_ctx parent;
	struct zc_span *s, *c;
	uint8_t own[8] = {1, 2, 3, 4, 5, 6, 7, 8};

	zc__span_ctx_from_hex(&parent, "4bf92f3577b34da6a3ce929d0e0e4736",
			      "00f067aa0ba902b7", "01", true);
	/* the server span, as zc__server_span_begin and server_attrs */
	s = zc__span_start(ZC_SPAN_SERVER, "POST", &parent, own, 0);
	zc__span_attr_str(s, "http.request.method", "POST");
	zc__span_attr_str(s, "url.path", "/transaction");
	zc__span_attr_str(s, "url.scheme", "http");
	zc__span_attr_str(s, "server.address", "127.0.0.1");
	zc__span_attr_int(s, "server.port", 8080);
	zc__span_attr_str(s, "network.peer.address", "127.0.0.1");
	zc__span_attr_int(s, "network.peer.port", 51234);
	zc__span_attr_str(s, "client.address", "127.0.0.1");
	zc__span_attr_str(s, "network.protocol.version", "1.1");
	zc__span_attr_str(s, "user_agent.original", "wrk/4.2.0");

	/* a client span, as attempt_span and attempt_span_end */
	c = zc__span_start(ZC_SPAN_CLIENT, "POST", &s->ctx, NULL, 0);
	zc__span_attr_str(c, "http.request.method", "POST");
	zc__span_attr_str(c, "url.full", "http://127.0.0.1:8081/balance");
	zc__span_attr_str(c, "server.address", "127.0.0.1");
	zc__span_attr_int(c, "server.port", 8081);
	zc__span_attr_int(c, "http.response.status_code", 200);
	zc__span_end(c, 0);

	/* zc__server_span_end */
	zc__span_set_name(s, "POST /transaction");
	zc__span_attr_str(s, "http.route", "/transaction");
	zc__span_attr_int(s, "http.response.status_code", 200);
	zc__span_end(s, 0);
}

int
main(int argc, char **argv)
{
	struct zc_otel o = {0};
	long n = argc > 1 ? atol(argv[1]) : 100000, i;
	struct zc_span_counts k;

	o.exporter = ZC_EXPORT_OTLP;
	o.sampler = ZC_SAMPLE_RATIO;
	o.ratio = 1.0;
	o.max_queue = 2048;
	o.max_batch = 512;
	zc__tracing_enable(&o);
	for (i = 0; i < n; i++) {
		one_request();
		if (i % 256 == 255)
			drain();
	}
	drain();
	zc__span_counts(&k);
	printf("span_cost: %ld requests, %llu spans ended, %llu dropped\n", n,
	       k.ended, k.dropped);
	zc__tracing_disable();
	return 0;
}
