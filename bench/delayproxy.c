/*
 * delayproxy.c - a loopback TCP proxy that adds latency, for
 * bench/latency_ab.sh (issue 16: a chain whose downstream answers in 50 ms).
 *
 *   delayproxy PORT UPSTREAM_PORT DELAY_MS
 *
 * Each chunk from the client is held DELAY_MS before it goes upstream;
 * replies pass straight back.  A thread per direction per connection: the
 * proxy must never be what limits the chain (the Python proxies of
 * tests/e2e are, at thousands of requests a second).  Benchmark tool
 * only: no limits, no cleanup beyond the process's exit.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static int up_port, delay_ms;
struct pair {
	int from, to;
	int delay;
};
static void *
pump(void *arg)
{
	struct pair *p = arg;
	char buf[65536];
	ssize_t n;
	while ((n = read(p->from, buf, sizeof buf)) > 0) {
		if (p->delay) {
			struct timespec ts = {delay_ms / 1000,
					      (delay_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
		ssize_t o = 0;
		while (o < n) {
			ssize_t w = write(p->to, buf + o, n - o);
			if (w <= 0)
				goto out;
			o += w;
		}
	}
out:
	shutdown(p->to, SHUT_WR);
	shutdown(p->from, SHUT_RD);
	return NULL;
}
static void *
conn(void *arg)
{
	int c = (int)(long)arg, one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(up_port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int u = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(u, (void *)&a, sizeof a) != 0) {
		close(c);
		close(u);
		return NULL;
	}
	setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct pair p1 = {c, u, 1}, p2 = {u, c, 0};
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 128 * 1024);
	pthread_create(&t, &at, pump, &p2);
	pump(&p1);
	pthread_join(t, NULL);
	close(c);
	close(u);
	return NULL;
}
int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: delayproxy PORT UPSTREAM_PORT DELAY_MS\n");
		return 2;
	}
	int port = atoi(argv[1]), one = 1;
	up_port = atoi(argv[2]);
	delay_ms = atoi(argv[3]);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (void *)&a, sizeof a) || listen(l, 1024)) {
		perror("bind");
		return 1;
	}
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0)
			continue;
		pthread_t t;
		pthread_create(&t, &at, conn, (void *)(long)c);
	}
}
