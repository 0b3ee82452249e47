/*
 * server_internal.h - what server.c, acceptor.c, loops.c and watchdog.c
 * share: the server's state and the calls between them.  server.c calls
 * the others, never the other way (acceptor.c hands connections to
 * loops.c); watchdog.c never talks to libmicrohttpd.
 */
#ifndef ZC_SERVER_INTERNAL_H
#define ZC_SERVER_INTERNAL_H

#include "http.h"

#include <sys/socket.h>

struct MHD_Daemon;
struct run;

/* watchdog.c's thread, one per server. */
struct zc_watchdog {
	pthread_t thread;
	bool running;
	atomic_bool stopping;
	long long idle_ns; /* ZC_IDLE_TIMEOUT_S */
};

/*
 * One event loop (an MHD daemon with its own thread and epoll set) per
 * pool thread, fed by one acceptor thread.  MHD's own thread pool lets
 * every worker accept from the shared listening socket, up to 10 at a
 * wake-up, so a burst of connections lands unevenly (19 on one thread, 2
 * on another, counted under the bench); a handler waiting on its
 * downstream then holds up every other connection of its thread, which is
 * what the p99 tail was made of.  The acceptor gives each new connection
 * to the loop with the fewest open connections, round-robin among equals.
 */
struct zc_worker {
	struct MHD_Daemon *daemon;
	atomic_int conns; /* open on this loop: NOTIFY_STARTED - CLOSED */
	/*
	 * The loop that drives the daemon (libmicrohttpd in external epoll
	 * mode) and runs its handlers on fibers; NULL when MHD runs its own
	 * threads (thread per connection, ZC_POLL).  Only the loop's thread
	 * touches the daemon: the acceptor posts new connections to it.
	 */
	struct zc_loop *loop;
	pthread_t thread;
	bool thread_running;
	struct zc_watch mhd_watch; /* MHD's epoll set */
	struct zc_timer mhd_timer; /* MHD_get_timeout */
	bool run_mhd;              /* a connection was resumed or added */
	struct run *waiting;       /* handlers waiting (server.c's runs) */
	struct zc_server *srv;
};

struct zc_server {
	/*
	 * The loops; one whose daemon listens itself when ZC_THREADS is 1 or
	 * in thread-per-connection mode (then there is no acceptor).
	 */
	struct zc_worker *workers;
	unsigned nworkers;
	unsigned limit; /* ZC_MAX_CONNECTIONS over all loops */
	unsigned next;  /* acceptor's round-robin start */
	int lfd;        /* the acceptor's listening socket */
	pthread_t acceptor;
	bool acceptor_running;
	atomic_bool quiescing;
	zc_app *app;
	struct zc_watchdog watchdog;
	/*
	 * MHD's listening socket after quiesce, closed only once MHD stops
	 * (an MHD_socket, which is an int on POSIX: this header keeps
	 * <microhttpd.h> out of watchdog.c).
	 */
	int listen_fd;
};

/* ---- acceptor.c ---- */
/* Open srv->lfd on ss (dual: IPv4 too, or IPv4 alone on a host without
 * IPv6).  0, or -1 with err set. */
int zc__acceptor_listen(struct zc_server *srv, struct sockaddr_storage *ss,
			bool dual, char *err, size_t errsize);
/* Start handing srv->lfd's connections to srv->workers; false with err
 * set. */
bool zc__acceptor_start(struct zc_server *srv, char *err, size_t errsize);
/* Refuse new connections and end the acceptor (if it runs). */
void zc__acceptor_stop(struct zc_server *srv);

/* ---- loops.c (called by server.c and acceptor.c) ---- */
/* Start w's loop thread, which drives w->daemon (external polling);
 * false with err set. */
bool zc__loop_start(struct zc_worker *w, char *err, size_t errsize);
/* Stop it and free the loop (the daemon stays for MHD_stop_daemon). */
void zc__loop_end(struct zc_worker *w);
/* MHD_quiesce_daemon on w's loop thread: the listening socket (an
 * MHD_socket), or -1. */
int zc__loop_quiesce(struct zc_worker *w);
/* Give a new connection fd to w: posted to its loop, or straight to MHD
 * when MHD runs its own threads.  false when fd was closed. */
bool zc__loop_hand_over(struct zc_worker *w, int fd,
			const struct sockaddr_storage *ss, socklen_t len);
/* The worker whose loop this thread runs, or NULL. */
struct zc_worker *zc__loop_worker(void);

/* ---- watchdog.c ---- */
/*
 * A connection the watchdog keeps an eye on, from MHD's NOTIFY_STARTED to
 * its CLOSED.  Every call below takes NULL (a connection not tracked, for
 * want of memory) and then does nothing.
 */
struct zc_track;

/* Track the connection on socket fd; NULL when out of memory. */
struct zc_track *zc__track_open(int fd);
void zc__track_close(struct zc_track *t);
/* Its request's headers are all in: no longer timed. */
void zc__track_request(struct zc_track *t);
/* Its request was answered or abandoned: the next request's headers are
 * timed from now. */
void zc__track_idle(struct zc_track *t);
/* req, on t's connection, waits for its body ... */
void zc__track_body(struct zc_track *t, zc_req *req);
/* ... or no longer (a no-op when it was not waiting). */
void zc__track_body_done(struct zc_track *t, zc_req *req);
void zc__watchdog_start(struct zc_watchdog *wd, unsigned idle_timeout_s);
void zc__watchdog_stop(struct zc_watchdog *wd);

#endif /* ZC_SERVER_INTERNAL_H */
