/*
 * coldstart - time from spawning a server to its first 2xx answer, the
 * benchmark's cold-start figure.  The same method as the peers' coldstart.c
 * (../shared/peers/coldstart.c), kept here so the bench runs without it.
 *
 *   coldstart -p PORT [-P PATH] [-b BODY] [-n RUNS] [-i POLL_US]
 *             [-t TIMEOUT_MS] [-o CHILD_LOG] -- CMD [ARGS...]
 *
 * Each run: t0; posix_spawnp(CMD) with this process's environment; every
 * POLL_US (default 100) microseconds connect to 127.0.0.1:PORT and send
 * POST PATH with BODY and "Connection: close"; the first "HTTP/1.x 2xx"
 * stops the clock.  The child is then SIGKILLed and reaped.  Prints
 * "run N: X ms" per run and
 *   COLDSTART runs=N median_ms=.. min_ms=.. max_ms=.. mean_ms=.. poll_us=..
 * Exits non-zero if the port is busy before a run, the child exits, or no
 * 2xx arrives within TIMEOUT_MS (default 5000).  Only 127.0.0.1 is contacted.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum probe_result { PROBE_REFUSED, PROBE_NOT_2XX, PROBE_2XX };

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static enum probe_result
probe(int port, const char *req, size_t len)
{
	struct sockaddr_in sa;
	struct timeval tv = {2, 0};
	char buf[64];
	size_t off = 0, got = 0;
	ssize_t n;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return PROBE_REFUSED;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return PROBE_REFUSED;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (off < len) {
		n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n <= 0) {
			close(fd);
			return PROBE_NOT_2XX;
		}
		off += (size_t)n;
	}
	while (got < 12) { /* "HTTP/1.1 200" */
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && buf[9] == '2')
		return PROBE_2XX;
	return PROBE_NOT_2XX;
}

static int
usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s -p PORT [-P PATH] [-b BODY] [-n RUNS] [-i POLL_US] "
		"[-t TIMEOUT_MS] [-o CHILD_LOG] -- CMD [ARGS...]\n",
		argv0);
	return 2;
}

int
main(int argc, char **argv)
{
	const char *path = "/", *body = "{}", *child_log = "/dev/null";
	int port = 0, runs = 10, poll_us = 100, timeout_ms = 5000, opt, len;
	posix_spawn_file_actions_t fa;
	struct timespec pause;
	char req[4096];
	double *t, sum = 0, med;

	while ((opt = getopt(argc, argv, "p:P:b:n:i:t:o:")) != -1) {
		switch (opt) {
		case 'p': port = atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'b': body = optarg; break;
		case 'n': runs = atoi(optarg); break;
		case 'i': poll_us = atoi(optarg); break;
		case 't': timeout_ms = atoi(optarg); break;
		case 'o': child_log = optarg; break;
		default: return usage(argv[0]);
		}
	}
	if (port <= 0 || port > 65535 || optind >= argc || runs <= 0 ||
	    poll_us <= 0)
		return usage(argv[0]);
	len = snprintf(req, sizeof(req),
		       "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		       "Content-Type: application/json\r\n"
		       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		       path, port, strlen(body), body);
	if (len <= 0 || (size_t)len >= sizeof(req)) {
		fprintf(stderr, "coldstart: request too long\n");
		return 2;
	}
	t = calloc((size_t)runs, sizeof(*t));
	if (t == NULL)
		return 1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, child_log,
					 O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pause.tv_sec = poll_us / 1000000;
	pause.tv_nsec = (long)(poll_us % 1000000) * 1000;

	for (int i = 0; i < runs; i++) {
		double t0;
		pid_t pid;
		int ok = 0, status;

		/* Nothing may answer yet: the previous child's port must be gone. */
		for (int k = 0; probe(port, req, (size_t)len) != PROBE_REFUSED;
		     k++) {
			if (k > 200) {
				fprintf(stderr, "coldstart: port %d in use\n",
					port);
				return 3;
			}
			usleep(10000);
		}
		t0 = now_ms();
		if (posix_spawnp(&pid, argv[optind], &fa, NULL, argv + optind,
				 environ) != 0) {
			perror("coldstart: posix_spawnp");
			return 4;
		}
		for (;;) {
			if (probe(port, req, (size_t)len) == PROBE_2XX) {
				ok = 1;
				break;
			}
			if (waitpid(pid, &status, WNOHANG) == pid) {
				fprintf(stderr,
					"coldstart: run %d: child exited "
					"(status 0x%x)\n",
					i, status);
				return 5;
			}
			if (now_ms() - t0 > timeout_ms)
				break;
			nanosleep(&pause, NULL);
		}
		t[i] = now_ms() - t0;
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		if (!ok) {
			fprintf(stderr, "coldstart: run %d: no 2xx within %d ms\n",
				i, timeout_ms);
			return 6;
		}
		printf("run %d: %.3f ms\n", i, t[i]);
		fflush(stdout);
		usleep(50000);
	}
	for (int i = 0; i < runs; i++)
		sum += t[i];
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	med = runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
	printf("COLDSTART runs=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f "
	       "mean_ms=%.3f poll_us=%d\n",
	       runs, med, t[0], t[runs - 1], sum / runs, poll_us);
	free(t);
	return 0;
}
