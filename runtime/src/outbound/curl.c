/*
 * curl.c - libcurl, and only this file sees it: loading it, one easy
 * handle per thread and a multi handle per event loop, and one request on
 * the wire: performed in line, or on the loop while its handler's fiber
 * waits.
 */
#include "call.h"

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <stdbool.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * libcurl is loaded with dlopen when first needed, not linked: it and the
 * thirty-odd libraries it pulls in (TLS, IDN, LDAP, ...) cost several
 * milliseconds of start-up and megabytes of resident memory, which a
 * function that never calls out should not pay, and one that does should
 * pay after its port is open (zc_main preloads it in the background).
 *
 * One easy handle per thread, so each worker keeps its own warm
 * connections and no curl handle is ever touched by two threads.
 */

_Static_assert(CURL_ERROR_SIZE <= ZC_CALL_ERRBUF,
	       "a call's errbuf must hold libcurl's error text");

/* The libcurl functions used here, resolved by global_init_once(). */
static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMcode (*multi_cleanup)(CURLM *);
} curl_api;

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init   curl_api.global_init
#define curl_easy_init     curl_api.easy_init
#define curl_easy_cleanup  curl_api.easy_cleanup
#define curl_easy_setopt   curl_api.easy_setopt
#define curl_easy_perform  curl_api.easy_perform
#define curl_easy_getinfo  curl_api.easy_getinfo
#define curl_easy_strerror curl_api.easy_strerror
#define curl_multi_init          curl_api.multi_init
#define curl_multi_setopt        curl_api.multi_setopt
#define curl_multi_add_handle    curl_api.multi_add_handle
#define curl_multi_remove_handle curl_api.multi_remove_handle
#define curl_multi_socket_action curl_api.multi_socket_action
#define curl_multi_info_read     curl_api.multi_info_read
#define curl_multi_assign        curl_api.multi_assign
#define curl_multi_cleanup       curl_api.multi_cleanup
#define curl_slist_append(l, s)                                                \
	(curl_api.slist_append != NULL ? curl_api.slist_append(l, s) : NULL)
#define curl_slist_free_all(l)                                                 \
	do {                                                                   \
		if (curl_api.slist_free_all != NULL)                           \
			curl_api.slist_free_all(l);                            \
	} while (0)

/*
 * Idle connections each thread's handle keeps.  curl's default of 5 is
 * per handle; 16 covers a handler that fans out to several functions
 * without closing warm connections to the others.
 */
#define ZC_CLIENT_MAXCONNECTS 16L
/* Idle connections a loop's multi keeps (256 waiting handlers' calls). */
#define ZC_LOOP_MAXCONNECTS 256L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc = -1;

static pthread_once_t handle_once = PTHREAD_ONCE_INIT;
static pthread_key_t handle_key;
static bool handle_key_ok;

static void
global_init_once(void)
{
	static const char *const sonames[] = {"libcurl.so.4",
					      "libcurl-gnutls.so.4"};
	void *h = NULL;
	size_t i;

	for (i = 0; h == NULL && i < sizeof(sonames) / sizeof(sonames[0]); i++)
		h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		zc_error("cannot load libcurl: %s", dlerror());
		return;
	}
#define LOAD(field, sym)                                                       \
	if ((*(void **)&curl_api.field = dlsym(h, sym)) == NULL) {             \
		zc_error("libcurl lacks %s", sym);                             \
		return;                                                        \
	}
	LOAD(global_init, "curl_global_init");
	LOAD(easy_init, "curl_easy_init");
	LOAD(easy_cleanup, "curl_easy_cleanup");
	LOAD(easy_setopt, "curl_easy_setopt");
	LOAD(easy_perform, "curl_easy_perform");
	LOAD(easy_getinfo, "curl_easy_getinfo");
	LOAD(easy_strerror, "curl_easy_strerror");
	LOAD(slist_append, "curl_slist_append");
	LOAD(slist_free_all, "curl_slist_free_all");
	LOAD(multi_init, "curl_multi_init");
	LOAD(multi_setopt, "curl_multi_setopt");
	LOAD(multi_add_handle, "curl_multi_add_handle");
	LOAD(multi_remove_handle, "curl_multi_remove_handle");
	LOAD(multi_socket_action, "curl_multi_socket_action");
	LOAD(multi_info_read, "curl_multi_info_read");
	LOAD(multi_assign, "curl_multi_assign");
	LOAD(multi_cleanup, "curl_multi_cleanup");
#undef LOAD
	global_rc = curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK ? 0 : -1;
}

int
zc__client_global_init(void)
{
	/*
	 * curl_global_init is not thread-safe on every libcurl, and an
	 * easy_init without it would run it lazily from whichever worker
	 * calls first.  pthread_once makes both the start-up call and the
	 * lazy path (in-process tests) safe.
	 */
	if (pthread_once(&global_once, global_init_once) != 0)
		return -1;
	return global_rc;
}

int
zc__curl_list_append(struct curl_slist **l, const char *line)
{
	struct curl_slist *t;

	if ((t = curl_slist_append(*l, line)) == NULL)
		return -1;
	*l = t;
	return 0;
}

void
zc__curl_list_free(struct curl_slist *l)
{
	curl_slist_free_all(l);
}

/* curl's write callback: collect the reply, refusing more than max_reply. */
static size_t
on_reply_data(char *data, size_t size, size_t nmemb, void *arg)
{
	zc_call *call = arg;
	size_t n = size * nmemb, need, cap;
	char *p;

	if (n > call->max_reply - call->reply_len) {
		/* Returning short aborts the transfer (CURLE_WRITE_ERROR). */
		call->reply_too_large = true;
		return 0;
	}
	need = call->reply_len + n + 1;
	if (need > call->reply_cap) {
		cap = call->reply_cap > 0 ? call->reply_cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > call->max_reply + 1)
			cap = call->max_reply + 1;
		if ((p = realloc(call->reply, cap)) == NULL) {
			call->reply_nomem = true;
			return 0;
		}
		call->reply = p;
		call->reply_cap = cap;
	}
	memcpy(call->reply + call->reply_len, data, n);
	call->reply_len += n;
	call->reply[call->reply_len] = '\0';
	return n;
}

/*
 * For queued (async) calls: abort an attempt in progress once the
 * shutdown drain deadline passes, so draining ends on time.  arg is the
 * queue's deadline, which starts while attempts are running.
 */
static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
	    curl_off_t un)
{
	_Atomic long long *drain_ns = arg;
	long long deadline =
		atomic_load_explicit(drain_ns, memory_order_relaxed);

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return deadline != 0 && zc__now_ns() >= deadline;
}

/*
 * Called by libcurl just before each send of the request.  When a reused
 * connection dies before any reply byte, libcurl quietly sends the request
 * again on a new connection; for a call that must not apply twice (POST
 * without an Idempotency-Key) the first send may have been processed, so
 * the second is refused and the attempt fails instead.
 */
static int
on_prereq(void *arg, char *conn_primary_ip, char *conn_local_ip,
	  int conn_primary_port, int conn_local_port)
{
	zc_call *call = arg;

	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	if (++call->sends > 1 && !call->may_resend) {
		call->resend_refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* Retry-After's HTTP-date form (IMF-fixdate) as ms from now, or -1. */
static long
retry_after_date(const char *v)
{
	struct tm tm;
	const char *end;
	time_t t, now = time(NULL);

	while (*v == ' ' || *v == '\t')
		v++;
	memset(&tm, 0, sizeof(tm));
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || (t = timegm(&tm)) == (time_t)-1)
		return -1;
	if (t <= now)
		return 0;
	return t - now < 86400 ? (long)(t - now) * 1000 : -1;
}

/* curl's header callback: keep Retry-After (delta-seconds or a date). */
static size_t
on_reply_header(char *data, size_t size, size_t nmemb, void *arg)
{
	zc_call *call = arg;
	size_t n = size * nmemb;

	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char buf[48]; /* an HTTP-date is 29 */
		size_t k = n - 12 < sizeof(buf) - 1 ? n - 12 : sizeof(buf) - 1;
		char *end;
		long v;

		memcpy(buf, data + 12, k);
		buf[k] = '\0';
		v = strtol(buf, &end, 10);
		if (end != buf && v >= 0 && v < 86400)
			call->retry_after_ms = v * 1000;
		else if (end == buf && (v = retry_after_date(buf)) >= 0)
			call->retry_after_ms = v;
	}
	return n;
}

/*
 * Options that are the same for every call, set once when a thread's
 * handle is made rather than after a curl_easy_reset on every call (that
 * reset and its twenty setopts were 3.4k of the 95.8k instructions a call
 * took, callgrind on transaction-processor).
 */
static CURLcode
setup_handle_once(CURL *curl)
{
	CURLcode rc;

	/* Threads and curl's SIGALRM-based timeouts do not mix. */
	rc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_MAXCONNECTS,
				      ZC_CLIENT_MAXCONNECTS);
	/* Small JSON requests: do not let Nagle hold them back. */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
	/* Notice a peer that vanished while the connection sat idle. */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
		/* A <NAME>_URL must not turn a call into a file:// or gopher:// read. */
#if LIBCURL_VERSION_NUM >= 0x075500
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR,
				      "http,https");
#else
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS,
				      (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_USERAGENT,
				      "zenith-c/" ZC_VERSION);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
				      on_reply_data);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION,
				      on_reply_header);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, on_prereq);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION,
				      on_progress);
	/*
	 * Retire idle connections before servers do (libmicrohttpd's idle
	 * timeout here is 15 s), so a request rarely meets a connection the
	 * peer is closing.
	 */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_MAXAGE_CONN, 10L);
	/*
	 * The receive buffer each handle keeps: 4 KiB rather than 16 holds
	 * a function's JSON answer in one read, and on a loop there is a
	 * handle per call in flight (256 connections: 3 MiB less resident).
	 */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 4096L);
	return rc;
}

/* Runs when a thread exits, so a worker's connections close with it. */
static void
handle_destroy(void *p)
{
	curl_easy_cleanup(p);
}

static void
handle_key_init(void)
{
	if (zc__client_global_init() != 0)
		return;
	if (pthread_key_create(&handle_key, handle_destroy) == 0)
		handle_key_ok = true;
}

/* A new easy handle with the options every call shares. */
static CURL *
new_handle(void)
{
	CURL *curl = curl_easy_init();

	if (curl != NULL && setup_handle_once(curl) != CURLE_OK) {
		curl_easy_cleanup(curl);
		return NULL;
	}
	return curl;
}

/*
 * Connections live in the handle, so reusing it is what gives keep-alive;
 * sharing it (or its connection cache through CURLSH) between threads is
 * unsupported by libcurl.
 */
static CURL *
thread_handle(void)
{
	CURL *curl;

	if (pthread_once(&handle_once, handle_key_init) != 0 || !handle_key_ok)
		return NULL;
	curl = pthread_getspecific(handle_key);
	if (curl != NULL)
		return curl;
	if ((curl = new_handle()) == NULL)
		return NULL;
	if (pthread_setspecific(handle_key, curl) != 0) {
		curl_easy_cleanup(curl);
		return NULL;
	}
	return curl;
}

/* ---- calls on an event loop ------------------------------------------ */

/*
 * A loop's curl multi: its sockets in the loop's epoll set, its timer one
 * of the loop's, its connection cache shared by every call the loop's
 * handlers make (connections live in the multi while handles are in it),
 * and idle easy handles kept for the next calls, one per call in flight.
 */
#define MULTI_IDLE_MAX 256

struct multi {
	CURLM *multi;
	struct zc_loop *loop;
	struct zc_timer timer;
	CURL *idle[MULTI_IDLE_MAX];
	int nidle;
};

/* a socket curl asked the loop to poll */
struct msock {
	struct zc_watch w;
	struct multi *m;
};

/* a call's attempt, waiting on the multi */
struct mwait {
	struct zc_task *task;
	bool done;
	CURLcode rc;
};

static _Thread_local struct multi *my_multi;

/* Transfers that finished: their tasks go on. */
static void
reap(struct multi *m)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		CURL *e = msg->easy_handle;
		CURLcode rc = msg->data.result;
		struct mwait *mw = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&mw);
		curl_multi_remove_handle(m->multi, e); /* msg is gone now */
		if (mw != NULL) {
			mw->rc = rc;
			mw->done = true;
			zc__task_wake(mw->task);
		}
	}
}

static void
on_sock_ready(struct zc_watch *w, uint32_t events)
{
	struct msock *ms = (struct msock *)w;
	struct multi *m = ms->m; /* ms may be freed by the action */
	int flags = 0, running;

	if (events & (EPOLLIN | EPOLLHUP))
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & EPOLLERR)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(m->multi, w->fd, flags, &running);
	reap(m);
}

static void
on_multi_timer(struct zc_timer *t)
{
	struct multi *m = (struct multi *)((char *)t -
					   offsetof(struct multi, timer));
	int running;

	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	reap(m);
}

static int
on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct multi *m = userp;
	struct msock *ms = socketp;
	uint32_t ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (ms != NULL) {
			zc__loop_unwatch(m->loop, &ms->w);
			curl_multi_assign(m->multi, fd, NULL);
			free(ms);
		}
		return 0;
	}
	if (ms == NULL) {
		if ((ms = calloc(1, sizeof(*ms))) == NULL)
			return -1; /* curl fails the transfer */
		ms->w.cb = on_sock_ready;
		ms->m = m;
		curl_multi_assign(m->multi, fd, ms);
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	if (zc__loop_watch(m->loop, &ms->w, fd, ev) != 0) {
		zc_error("outbound call: cannot poll a socket: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int
on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct multi *m = userp;

	(void)multi;
	if (timeout_ms < 0)
		zc__timer_cancel(m->loop, &m->timer);
	else
		zc__timer_arm(m->loop, &m->timer,
			      zc__now_ns() + (long long)timeout_ms * 1000000LL);
	return 0;
}

/* The loop is freed: its calls ended with its handlers. */
static void
multi_close(void *arg)
{
	struct multi *m = arg;
	int i;

	curl_multi_cleanup(m->multi);
	for (i = 0; i < m->nidle; i++)
		curl_easy_cleanup(m->idle[i]);
	zc__timer_cancel(m->loop, &m->timer);
	free(m);
}

/* This loop's multi, made on its first call; NULL when it cannot be. */
static struct multi *
loop_multi(void)
{
	struct zc_loop *loop = zc__loop_current();
	struct multi *m = my_multi;

	if (m != NULL || loop == NULL)
		return m;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->loop = loop;
	m->timer.cb = on_multi_timer;
	if ((m->multi = curl_multi_init()) == NULL ||
	    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket) !=
		    CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer) !=
		    CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m) != CURLM_OK ||
	    /* curl's default, 4 x the handles added now, shrinks after a
	     * burst and closes warm connections (a TIME_WAIT each) */
	    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS,
			      ZC_LOOP_MAXCONNECTS) != CURLM_OK ||
	    zc__loop_at_close(loop, multi_close, m) != 0) {
		if (m->multi != NULL)
			curl_multi_cleanup(m->multi);
		free(m);
		return NULL;
	}
	my_multi = m;
	return m;
}

void *
zc__curl_handle(zc_call *call)
{
	struct multi *m = NULL;

	if (zc__client_global_init() != 0)
		return NULL;
	if (call->on_loop && (m = loop_multi()) == NULL)
		call->on_loop = false; /* in line, as off the loop */
	if (m == NULL)
		return thread_handle();
	return m->nidle > 0 ? m->idle[--m->nidle] : new_handle();
}

void
zc__curl_handle_done(zc_call *call, void *curl)
{
	struct multi *m = my_multi;

	if (!call->on_loop || curl == NULL || m == NULL)
		return; /* the thread's own handle stays */
	if (m->nidle < MULTI_IDLE_MAX)
		m->idle[m->nidle++] = curl;
	else
		curl_easy_cleanup(curl);
}

/* One transfer on the loop's multi, the task waiting until it is done. */
static CURLcode
multi_perform(CURL *curl)
{
	struct multi *m = my_multi;
	struct mwait mw = {.task = zc__task_current()};
	CURLMcode mc;

	curl_easy_setopt(curl, CURLOPT_PRIVATE, (void *)&mw);
	if ((mc = curl_multi_add_handle(m->multi, curl)) != CURLM_OK) {
		curl_easy_setopt(curl, CURLOPT_PRIVATE, NULL);
		return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
						 : CURLE_FAILED_INIT;
	}
	while (!mw.done)
		zc__task_wait();
	curl_easy_setopt(curl, CURLOPT_PRIVATE, NULL);
	return mw.rc;
}

/*
 * Set every option that differs between calls, each one every time, so
 * nothing from one call (a body, a method, a timeout) leaks into the next.
 */
static CURLcode
setup_handle(zc_call *call, CURL *curl, struct curl_slist *hdrs, long total_ms,
	     long connect_ms)
{
	CURLcode rc;

	rc = curl_easy_setopt(curl, CURLOPT_URL, call->url);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
				      connect_ms);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, call->errbuf);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, call);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_HEADERDATA, call);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PREREQDATA, call);
	/*
	 * Queued (async) calls: the drain deadline can abort them.  It lives
	 * as long as the process, so the handle may keep pointing at it.
	 */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_NOPROGRESS,
				      call->drain_ns != NULL ? 0L : 1L);
	if (rc == CURLE_OK && call->drain_ns != NULL)
		rc = curl_easy_setopt(curl, CURLOPT_XFERINFODATA,
				      (void *)call->drain_ns);
	/* Refuse a declared Content-Length over the cap before reading it. */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
				      (curl_off_t)call->max_reply);
	if (rc != CURLE_OK)
		return rc;

	/*
	 * The method, from a clean slate: NOBODY off (a HEAD before must not
	 * make this call bodiless), then what this method needs.
	 */
	rc = curl_easy_setopt(curl, CURLOPT_NOBODY, 0L);
	if (rc != CURLE_OK)
		return rc;
	if (call->has_body || zc__method_has_body(call->method)) {
		/* POSTFIELDS sends Content-Length, even 0 for an empty PUT. */
		rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
				      (curl_off_t)call->body_len);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
					      call->has_body ? call->body : "");
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST,
					      strcmp(call->method, "POST") != 0
						      ? call->method
						      : NULL);
		return rc;
	}
	rc = curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	if (rc == CURLE_OK && strcmp(call->method, "HEAD") == 0)
		rc = curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(
			curl, CURLOPT_CUSTOMREQUEST,
			strcmp(call->method, "GET") != 0 &&
					strcmp(call->method, "HEAD") != 0
				? call->method
				: NULL);
	return rc;
}

static zc_err
map_curl_error(const zc_call *call, CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return ZC_OK;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return ZC_ERR_DNS;
	case CURLE_COULDNT_CONNECT:
		return ZC_ERR_REFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return ZC_ERR_TIMEOUT;
	case CURLE_ABORTED_BY_CALLBACK:
		if (call->resend_refused)
			return ZC_ERR_TRANSPORT; /* see on_prereq */
		return ZC_ERR_DEADLINE; /* the shutdown drain deadline */
	case CURLE_FILESIZE_EXCEEDED:
		return ZC_ERR_TOO_LARGE;
	case CURLE_OUT_OF_MEMORY:
		return ZC_ERR_NOMEM;
	case CURLE_WRITE_ERROR:
		/* Our write callback refused the data; say why. */
		if (call->reply_too_large)
			return ZC_ERR_TOO_LARGE;
		if (call->reply_nomem)
			return ZC_ERR_NOMEM;
		return ZC_ERR_TRANSPORT;
	case CURLE_URL_MALFORMAT:
		/* A bad <NAME>_URL: configuration, not the network. */
		return ZC_ERR_INVALID;
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* a file:// or gopher:// URL is configuration; an http URL
		 * answered by something that is not HTTP is the network */
		if (call->url != NULL &&
		    (strncmp(call->url, "http://", 7) == 0 ||
		     strncmp(call->url, "https://", 8) == 0))
			return ZC_ERR_TRANSPORT;
		return ZC_ERR_INVALID;
	default:
		/* Reset, empty reply, truncated body, recv/send errors, TLS. */
		return ZC_ERR_TRANSPORT;
	}
}

/*
 * Retries, the circuit breaker, the bulkhead and the deadline wrap this
 * (client.c), so it holds no per-target state and its result is the whole
 * story of one attempt.
 */
zc_err
zc__curl_attempt(zc_call *call, void *curl, struct curl_slist *hdrs,
		 long total_ms, long connect_ms)
{
	CURLcode rc;
	long status = 0;
	zc_err err;

	call->sends = 0;
	call->resend_refused = false;
	if ((rc = setup_handle(call, curl, hdrs, total_ms, connect_ms)) !=
	    CURLE_OK)
		return rc == CURLE_OUT_OF_MEMORY ? ZC_ERR_NOMEM
						 : ZC_ERR_INVALID;

	rc = call->on_loop ? multi_perform(curl) : curl_easy_perform(curl);
	/* The handle keeps pointers to hdrs and call: drop them now. */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(curl, CURLOPT_PREREQDATA, NULL);

	if (rc != CURLE_OK) {
		err = map_curl_error(call, rc);
		zc_debug("call %s %s: %s (%s)", call->method, call->url,
			 zc_strerror(err),
			 call->errbuf[0] != '\0' ? call->errbuf
						 : curl_easy_strerror(rc));
		return err;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	call->status = (int)status;
	if (status >= 400)
		return ZC_ERR_HTTP;
	return ZC_OK;
}
