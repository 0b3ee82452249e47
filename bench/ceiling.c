/*
 * ceiling - the benchmark's transport ceiling: a bare libmicrohttpd server
 * that answers every POST with one fixed JSON body, with no runtime around
 * it (no router, no JSON parsing, no logging).  What Zenith C's /log is
 * measured against.  epoll + an internal pool of CEILING_THREADS (default 2)
 * threads; listens on CEILING_ADDRESS (default 127.0.0.1) port PORT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

/* The size and shape of audit-logger's answer, so both send the same bytes. */
static const char BODY[] =
    "{\"status\":\"logged\",\"timestamp\":\"2026-01-01T00:00:00.000000000Z\"}";

static struct MHD_Response *ok_response;	 /* shared by every request */
static struct MHD_Response *refused_response; /* 405 for anything but POST */

static long
env_long(const char *name, long def, long min, long max)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "ceiling: invalid %s=\"%s\"\n", name, s);
		exit(2);
	}
	return v;
}

/*
 * Called for the headers, then once per body chunk, then once more with no
 * data: the body is consumed and dropped, and the fixed answer queued at the
 * end, as any POST server must.
 */
static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *upload_data,
       size_t *upload_data_size, void **con_cls)
{
	static int marker;

	(void)cls;
	(void)url;
	(void)version;
	(void)upload_data;
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
					  refused_response);
	if (*con_cls == NULL) {
		*con_cls = &marker;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_OK, ok_response);
}

int
main(void)
{
	struct sockaddr_in sa;
	struct MHD_Daemon *d;
	const char *addr = getenv("CEILING_ADDRESS");
	long port = env_long("PORT", 8080, 1, 65535);
	long threads = env_long("CEILING_THREADS", 2, 1, 1024);
	sigset_t set;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, addr && *addr ? addr : "127.0.0.1",
		      &sa.sin_addr) != 1) {
		fprintf(stderr, "ceiling: invalid CEILING_ADDRESS\n");
		return 2;
	}

	ok_response = MHD_create_response_from_buffer(
	    sizeof(BODY) - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
	refused_response = MHD_create_response_from_buffer(
	    0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (ok_response == NULL || refused_response == NULL)
		return 1;
	MHD_add_response_header(ok_response, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	MHD_add_response_header(refused_response, MHD_HTTP_HEADER_ALLOW,
				"POST");

	/* The signals are waited for below, so every MHD thread must block them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
	    (uint16_t)port, NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned int)threads, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "ceiling: cannot listen on port %ld\n", port);
		return 1;
	}
	fprintf(stderr, "ceiling: listening on %s:%ld (%ld threads)\n",
		addr && *addr ? addr : "127.0.0.1", port, threads);

	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	MHD_destroy_response(ok_response);
	MHD_destroy_response(refused_response);
	return 0;
}
