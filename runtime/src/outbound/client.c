/*
 * client.c - outbound HTTP calls from a handler to another function, with
 * libcurl.  One easy handle per thread so each worker keeps its own warm
 * connections and no curl handle is ever touched by two threads.
 *
 * libcurl is loaded with dlopen when first needed, not linked: it and the
 * thirty-odd libraries it pulls in (TLS, IDN, LDAP, ...) cost several
 * milliseconds of start-up and megabytes of resident memory, which a
 * function that never calls out should not pay, and one that does should
 * pay after its port is open (zc_main preloads it in the background).
 */
#include "outbound.h"

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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
} curl_api;

#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_global_init   curl_api.global_init
#define curl_easy_init     curl_api.easy_init
#define curl_easy_cleanup  curl_api.easy_cleanup
#define curl_easy_setopt   curl_api.easy_setopt
#define curl_easy_perform  curl_api.easy_perform
#define curl_easy_getinfo  curl_api.easy_getinfo
#define curl_easy_strerror curl_api.easy_strerror
#define curl_slist_append(l, s)                                                \
	(curl_api.slist_append != NULL ? curl_api.slist_append(l, s) : NULL)
#define curl_slist_free_all(l)                                                 \
	do {                                                                   \
		if (curl_api.slist_free_all != NULL)                           \
			curl_api.slist_free_all(l);                            \
	} while (0)

/* Built-in defaults; zc__client_set_defaults() overrides them at start-up. */
#define ZC_CLIENT_TIMEOUT_MS 5000L
#define ZC_CLIENT_CONNECT_MS 2000L
#define ZC_CLIENT_MAX_REPLY  ((size_t)8 * 1024 * 1024)

/*
 * A base URL from <NAME>_URL can be long (a Dapr invoke prefix), but a
 * service URL longer than this is a configuration mistake.
 */
#define ZC_URL_MAX 2048

/*
 * Idle connections each thread's handle keeps.  curl's default of 5 is
 * per handle; 16 covers a handler that fans out to several functions
 * without closing warm connections to the others.
 */
#define ZC_CLIENT_MAXCONNECTS 16L

/* Longest method name kept, NUL included ("OPTIONS" needs 8). */
#define ZC_METHOD_MAX 16

struct zc_call {
	zc_req *inbound; /* for the deadline; NULL once queued async */
	struct zc_target *target;
	struct curl_slist *propagated; /* trace headers, copied at new */
	bool keyed;                    /* carries an Idempotency-Key */
	int attempts;
	long retry_after_ms;
	bool queued; /* handed to the async queue */
	int sends;   /* sends of the current attempt */
	bool resend_refused;
	/*
	 * The first error from zc_call_new/json/header.  perform returns it
	 * without sending, so a handler that ignored a setter's result never
	 * sends a half-built request (say, without its body or auth header).
	 */
	zc_err setup_err;
	char method[ZC_METHOD_MAX];
	char *url;
	char *body;
	size_t body_len;
	bool has_body;
	struct curl_slist *headers; /* the caller's, "Name: value" */
	bool user_accept;
	bool user_ctype;
	long timeout_ms;
	long connect_ms;
	size_t max_reply;

	/* reply; valid after perform returned ZC_OK or ZC_ERR_HTTP */
	int status;
	char *reply;
	size_t reply_len, reply_cap;
	bool reply_too_large;
	bool reply_nomem;
	json_t *reply_json;
	bool reply_parsed;
	char errbuf[CURL_ERROR_SIZE];
};

/*
 * Written only by zc__client_set_defaults() before worker threads start,
 * so plain variables are enough: pthread_create orders the write before
 * every read.
 */
static long default_timeout_ms = ZC_CLIENT_TIMEOUT_MS;
static long default_connect_ms = ZC_CLIENT_CONNECT_MS;
static size_t default_max_reply = ZC_CLIENT_MAX_REPLY;

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

void
zc__client_set_defaults(long timeout_ms, long connect_ms, size_t max_reply)
{
	zc_policy p;

	/* Non-positive means "not configured": keep the built-in default. */
	zc_policy_default(&p);
	if (timeout_ms > 0)
		default_timeout_ms = p.timeout_ms = timeout_ms;
	if (connect_ms > 0)
		default_connect_ms = p.connect_timeout_ms = connect_ms;
	if (max_reply > 0)
		default_max_reply = max_reply;
	zc__policy_set_global(&p);
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

static CURLcode setup_handle_once(CURL *curl);

/*
 * This thread's easy handle.  Connections live in the handle, so reusing
 * it is what gives keep-alive; sharing it (or its connection cache through
 * CURLSH) between threads is unsupported by libcurl.
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
	if ((curl = curl_easy_init()) == NULL)
		return NULL;
	if (setup_handle_once(curl) != CURLE_OK ||
	    pthread_setspecific(handle_key, curl) != 0) {
		curl_easy_cleanup(curl);
		return NULL;
	}
	return curl;
}

/* An upper-case token, which is what zenith.h promises callers pass. */
static bool
valid_method(const char *m)
{
	size_t i;

	for (i = 0; m[i] != '\0'; i++) {
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	}
	return i > 0 && i < ZC_METHOD_MAX;
}

/*
 * Spaces and control characters would be rejected by curl's URL parser or,
 * worse, split the request line; catch them here as ZC_ERR_INVALID.
 */
static bool
valid_path(const char *p)
{
	if (p[0] != '/')
		return false;
	for (; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* RFC 9110 token characters, so a name can never inject a second header. */
static bool
valid_header_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c))
			return false;
	}
	return true;
}

static bool
valid_header_value(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\r' || *s == '\n')
			return false;
	}
	return true;
}

/* Record the first setup failure; later ones are consequences of it. */
static zc_err
setup_fail(zc_call *call, zc_err err)
{
	if (call->setup_err == ZC_OK)
		call->setup_err = err;
	return err;
}

static int
add_header(struct curl_slist **l, const char *name, const char *value)
{
	char line[1024];
	struct curl_slist *t;

	if (value == NULL || *value == '\0' || strlen(value) > 900 ||
	    !valid_header_value(value))
		return 0; /* nothing to forward, or not forwardable */
	snprintf(line, sizeof(line), "%s: %s", name, value);
	if ((t = curl_slist_append(*l, line)) == NULL)
		return -1;
	*l = t;
	return 0;
}

/*
 * The trace context this call carries, copied now: an async call outlives
 * its inbound request.  W3C traceparent gets a new parent-id (this call is
 * a new span of the same trace); tracestate, B3 and x-request-id go on
 * unchanged (B3 shares span ids between client and server sides).
 */
static int
propagate(zc_call *call, zc_req *inbound)
{
	static const char *const verbatim[] = {
		"b3",           "x-b3-traceid",
		"x-b3-spanid",  "x-b3-parentspanid",
		"x-b3-sampled", "x-b3-flags",
		"x-request-id",
	};
	char tp[64];
	size_t i;

	if (inbound == NULL)
		inbound = zc__current();
	if (inbound == NULL || inbound->ctx.trace.trace_id[0] == '\0')
		return 0;
	zc__trace_child(&inbound->ctx.trace, tp, sizeof(tp));
	if (add_header(&call->propagated, "traceparent", tp) != 0)
		return -1;
	/* tracestate belongs to the traceparent it came with */
	if (inbound->ctx.trace.inbound &&
	    add_header(&call->propagated, "tracestate",
		       zc_req_header(inbound, "tracestate")) != 0)
		return -1;
	for (i = 0; i < sizeof(verbatim) / sizeof(verbatim[0]); i++)
		if (add_header(&call->propagated, verbatim[i],
			       zc_req_header(inbound, verbatim[i])) != 0)
			return -1;
	return 0;
}

zc_call *
zc_call_new(zc_req *inbound, const char *service, const char *method,
	    const char *path)
{
	char base[ZC_URL_MAX];
	zc_call *call;
	size_t blen, plen;
	zc_err err;

	if ((call = calloc(1, sizeof(*call))) == NULL)
		return NULL;
	call->inbound = inbound;
	call->timeout_ms = default_timeout_ms;
	call->connect_ms = default_connect_ms;
	call->max_reply = default_max_reply;
	if (zc__client_global_init() != 0) {
		call->setup_err = ZC_ERR_INVALID; /* libcurl missing */
		return call;
	}
	if (propagate(call, inbound) != 0) {
		zc_call_free(call);
		return NULL;
	}

	/*
	 * zc_call_new returns NULL only for ENOMEM, so bad arguments are
	 * kept and reported by perform, where the handler checks anyway.
	 */
	if (method == NULL || !valid_method(method)) {
		call->setup_err = ZC_ERR_INVALID;
		return call;
	}
	memcpy(call->method, method, strlen(method) + 1);
	if (path == NULL || !valid_path(path)) {
		call->setup_err = ZC_ERR_INVALID;
		return call;
	}
	if ((err = zc_service_url(service, base, sizeof(base))) != ZC_OK) {
		call->setup_err = err;
		return call;
	}
	if ((call->target = zc__target_get(service)) == NULL) {
		zc_call_free(call);
		return NULL;
	}
	call->timeout_ms = call->target->policy.timeout_ms;
	call->connect_ms = call->target->policy.connect_timeout_ms;

	blen = strlen(base);
	plen = strlen(path);
	if ((call->url = malloc(blen + plen + 1)) == NULL) {
		zc_call_free(call);
		return NULL;
	}
	memcpy(call->url, base, blen);
	memcpy(call->url + blen, path, plen + 1);
	return call;
}

zc_err
zc_call_json(zc_call *call, const json_t *body)
{
	char *s;
	size_t len;

	if (call == NULL)
		return ZC_ERR_INVALID;
	if (body == NULL)
		return setup_fail(call, ZC_ERR_INVALID);
	/* Serialise now: the caller may change or free body right after. */
	if ((s = zc__json_dump(body, &len)) == NULL)
		return setup_fail(call, ZC_ERR_NOMEM);
	free(call->body);
	call->body = s;
	call->body_len = len;
	call->has_body = true;
	return ZC_OK;
}

zc_err
zc_call_header(zc_call *call, const char *name, const char *value)
{
	struct curl_slist *l;
	char *line;
	size_t nlen, vlen;

	if (call == NULL)
		return ZC_ERR_INVALID;
	if (name == NULL || value == NULL || !valid_header_name(name) ||
	    !valid_header_value(value))
		return setup_fail(call, ZC_ERR_INVALID);

	nlen = strlen(name);
	vlen = strlen(value);
	if ((line = malloc(nlen + vlen + 3)) == NULL)
		return setup_fail(call, ZC_ERR_NOMEM);
	memcpy(line, name, nlen);
	if (vlen == 0) {
		/* curl reads "Name:" as "remove Name"; "Name;" sends it empty. */
		memcpy(line + nlen, ";", 2);
	} else {
		memcpy(line + nlen, ": ", 2);
		memcpy(line + nlen + 2, value, vlen + 1);
	}
	l = curl_slist_append(call->headers, line);
	free(line);
	if (l == NULL)
		return setup_fail(call, ZC_ERR_NOMEM);
	call->headers = l;
	if (strcasecmp(name, "Idempotency-Key") == 0)
		call->keyed = true;
	if (strcasecmp(name, "Accept") == 0)
		call->user_accept = true;
	else if (strcasecmp(name, "Content-Type") == 0)
		call->user_ctype = true;
	return ZC_OK;
}

void
zc_call_timeout_ms(zc_call *call, long total_ms)
{
	if (call == NULL)
		return;
	call->timeout_ms = total_ms > 0 ? total_ms
			   : call->target != NULL
				   ? call->target->policy.timeout_ms
				   : default_timeout_ms;
}

void
zc_call_connect_timeout_ms(zc_call *call, long connect_ms)
{
	if (call == NULL)
		return;
	call->connect_ms = connect_ms > 0 ? connect_ms
			   : call->target != NULL
				   ? call->target->policy.connect_timeout_ms
				   : default_connect_ms;
}

static void
reply_clear(zc_call *call)
{
	free(call->reply);
	call->reply = NULL;
	call->reply_len = call->reply_cap = 0;
	call->reply_too_large = false;
	call->reply_nomem = false;
	json_decref(call->reply_json);
	call->reply_json = NULL;
	call->reply_parsed = false;
	call->status = 0;
	call->errbuf[0] = '\0';
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
 * shutdown drain deadline passes, so draining ends on time.
 */
static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
	    curl_off_t un)
{
	long long deadline = zc__async_deadline_ns();

	(void)arg;
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return deadline != 0 && zc__now_ns() >= deadline;
}

static bool repeatable(const zc_call *call);

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
	if (++call->sends > 1 && !repeatable(call)) {
		call->resend_refused = true;
		return CURL_PREREQFUNC_ABORT;
	}
	return CURL_PREREQFUNC_OK;
}

/* curl's header callback: keep Retry-After (delta-seconds form). */
static size_t
on_reply_header(char *data, size_t size, size_t nmemb, void *arg)
{
	zc_call *call = arg;
	size_t n = size * nmemb;

	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char buf[32];
		size_t k = n - 12 < sizeof(buf) - 1 ? n - 12 : sizeof(buf) - 1;
		char *end;
		long v;

		memcpy(buf, data + 12, k);
		buf[k] = '\0';
		v = strtol(buf, &end, 10);
		if (end != buf && v >= 0 && v < 86400)
			call->retry_after_ms = v * 1000;
	}
	return n;
}

static bool
method_has_body(const char *m)
{
	return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	       strcmp(m, "PATCH") == 0;
}

/*
 * The header list for one perform: our defaults, then the caller's (a
 * caller's Accept or Content-Type replaces ours rather than doubling it).
 */
/* Did the caller set the header named in line ("Name: value")? */
static bool
caller_set(const zc_call *call, const char *line)
{
	const struct curl_slist *h;
	size_t n = strcspn(line, ":");

	for (h = call->headers; h != NULL; h = h->next)
		if (strncasecmp(h->data, line, n) == 0 &&
		    (h->data[n] == ':' || h->data[n] == ';'))
			return true;
	return false;
}

static struct curl_slist *
build_headers(const zc_call *call)
{
	struct curl_slist *l = NULL, *t, *h;
	const char *defaults[4];
	size_t i, n = 0;

	if (!call->user_accept)
		defaults[n++] = "Accept: application/json";
	if (!call->user_ctype) {
		if (call->has_body)
			defaults[n++] = "Content-Type: application/json";
		else if (method_has_body(call->method))
			/* curl would label an empty POST as a form. */
			defaults[n++] = "Content-Type:";
	}
	/*
	 * curl sends "Expect: 100-continue" for bodies over 1 MiB and waits
	 * up to a second for a 100 most servers never send.  (Only then: every
	 * header in the list costs curl a scan per header it writes.)
	 */
	if (call->body_len >= 1024 * 1024)
		defaults[n++] = "Expect:";

	for (i = 0; i < n; i++) {
		if ((t = curl_slist_append(l, defaults[i])) == NULL)
			goto fail;
		l = t;
	}
	for (h = call->headers; h != NULL; h = h->next) {
		if ((t = curl_slist_append(l, h->data)) == NULL)
			goto fail;
		l = t;
	}
	for (h = call->propagated; h != NULL; h = h->next) {
		if (caller_set(call, h->data))
			continue; /* the handler's own value wins */
		if ((t = curl_slist_append(l, h->data)) == NULL)
			goto fail;
		l = t;
	}
	if (call->target != NULL && call->target->mode == ZC_MODE_DAPR &&
	    add_header(&l, "dapr-api-token", getenv("DAPR_API_TOKEN")) != 0)
		goto fail;
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
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
	return rc;
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
	/* queued (async) calls: the drain deadline can abort them */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_NOPROGRESS,
				      call->queued ? 0L : 1L);
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
	if (call->has_body || method_has_body(call->method)) {
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
 * One request on the wire.  Retries, the circuit breaker, the bulkhead and
 * trace headers will wrap this, so it holds no per-target state and its
 * result is the whole story of one attempt.
 */
static zc_err
call_attempt(zc_call *call, CURL *curl, struct curl_slist *hdrs, long total_ms,
	     long connect_ms)
{
	CURLcode rc;
	long status = 0;
	zc_err err;

	reply_clear(call);
	call->sends = 0;
	call->resend_refused = false;
	if ((rc = setup_handle(call, curl, hdrs, total_ms, connect_ms)) !=
	    CURLE_OK)
		return rc == CURLE_OUT_OF_MEMORY ? ZC_ERR_NOMEM
						 : ZC_ERR_INVALID;

	rc = curl_easy_perform(curl);
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
		/* A partial reply is not a reply: status 0, no body. */
		reply_clear(call);
		return err;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	call->status = (int)status;
	if (status >= 400)
		return ZC_ERR_HTTP;
	return ZC_OK;
}

/* Could a repeat of this call apply twice?  Then it is never retried. */
static bool
repeatable(const zc_call *call)
{
	static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE",
					   "OPTIONS"};
	size_t i;

	if (call->keyed)
		return true; /* the server dedupes on the key */
	for (i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		if (strcmp(call->method, safe[i]) == 0)
			return true;
	return false;
}

/* Is this outcome worth another attempt? */
static bool
transient(const zc_call *call, zc_err err)
{
	switch (err) {
	case ZC_ERR_REFUSED:
	case ZC_ERR_DNS:
	case ZC_ERR_TRANSPORT:
	case ZC_ERR_TIMEOUT:
		return true;
	case ZC_ERR_HTTP:
		return call->status == 429 || call->status == 502 ||
		       call->status == 503 || call->status == 504 ||
		       (call->status == 409 && call->keyed);
	default:
		return false;
	}
}

/* Transport failures and 5xx say the target is unwell; 4xx does not. */
static bool
breaker_failure(const zc_call *call, zc_err err)
{
	if (err == ZC_OK)
		return false;
	if (err == ZC_ERR_HTTP)
		return call->status >= 500;
	return err == ZC_ERR_REFUSED || err == ZC_ERR_DNS ||
	       err == ZC_ERR_TRANSPORT || err == ZC_ERR_TIMEOUT ||
	       err == ZC_ERR_DEADLINE;
}

/* Exponential backoff with jitter: 50-100% of base * 2^n, capped. */
static long
backoff_ms(const zc_policy *p, int attempt)
{
	long d = p->backoff_ms > 0 ? p->backoff_ms : 1;
	int i;

	for (i = 1; i < attempt && d < p->backoff_max_ms; i++)
		d *= 2;
	if (d > p->backoff_max_ms)
		d = p->backoff_max_ms;
	return d / 2 + (long)(zc__rand64() % (uint64_t)(d / 2 + 1));
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* One attempt through the bulkhead and the breaker. */
static zc_err
guarded_attempt(zc_call *call, CURL *curl, struct curl_slist *hdrs, long total,
		long connect)
{
	struct zc_target *t = call->target;
	unsigned generation = 0;
	zc_err err;

	if (t->policy.max_concurrent > 0 &&
	    atomic_fetch_add(&t->inflight, 1) >= t->policy.max_concurrent) {
		atomic_fetch_sub(&t->inflight, 1);
		atomic_fetch_add(&t->outcomes[ZC_ERR_BULKHEAD_FULL], 1);
		return ZC_ERR_BULKHEAD_FULL;
	}
	err = zc__breaker_allow(&t->breaker, &generation,
				&call->retry_after_ms);
	if (err != ZC_OK) {
		long ra = call->retry_after_ms;
		reply_clear(call); /* no stale status from an earlier try */
		call->retry_after_ms = ra;
	} else {
		call->attempts++;
		call->retry_after_ms = 0;
		err = call_attempt(call, curl, hdrs, total, connect);
		zc__breaker_done(&t->breaker, generation,
				 !breaker_failure(call, err));
	}
	if (t->policy.max_concurrent > 0)
		atomic_fetch_sub(&t->inflight, 1);
	if (err >= 0 && err < ZC_OUTCOMES)
		atomic_fetch_add(&t->outcomes[err], 1);
	return err;
}

zc_err
zc_call_perform(zc_call *call)
{
	struct curl_slist *hdrs;
	long long now, end, drain;
	long total, connect, left, wait;
	bool clamped = false;
	CURL *curl;
	zc_err err;

	if (call == NULL)
		return ZC_ERR_INVALID;
	reply_clear(call);
	call->attempts = 0;
	call->retry_after_ms = 0;
	if (call->setup_err != ZC_OK)
		return call->setup_err;

	total = call->timeout_ms;
	if (call->inbound != NULL) {
		/*
		 * Our caller stops waiting at its deadline; work past it is
		 * wasted, and with nothing left we do not send at all.
		 */
		left = zc_req_remaining_ms(call->inbound);
		if (left <= 0)
			return ZC_ERR_DEADLINE;
		if (left < total) {
			total = left;
			clamped = true;
		}
	}
	/* a queued call during shutdown: the drain deadline bounds it */
	if (call->queued && (drain = zc__async_deadline_ns()) != 0) {
		left = (long)((drain - zc__now_ns()) / 1000000LL);
		if (left <= 0)
			return ZC_ERR_DEADLINE;
		if (left < total) {
			total = left;
			clamped = true;
		}
	}
	end = zc__now_ns() + (long long)total * 1000000LL;

	if ((curl = thread_handle()) == NULL)
		return ZC_ERR_NOMEM;
	if ((hdrs = build_headers(call)) == NULL)
		return ZC_ERR_NOMEM;

	for (;;) {
		now = zc__now_ns();
		left = (long)((end - now) / 1000000LL);
		if (left <= 0) {
			err = ZC_ERR_TIMEOUT;
			break;
		}
		connect = call->connect_ms < left ? call->connect_ms : left;
		err = guarded_attempt(call, curl, hdrs, left, connect);
		if (err == ZC_OK || !transient(call, err) ||
		    !repeatable(call) ||
		    call->attempts > call->target->policy.retries)
			break;
		wait = backoff_ms(&call->target->policy, call->attempts);
		if (call->retry_after_ms > wait)
			wait = call->retry_after_ms;
		if (zc__now_ns() + (long long)wait * 1000000LL >= end)
			break; /* no time left for another attempt */
		if (err == ZC_ERR_HTTP)
			zc_info("retrying %s %s in %ld ms (attempt %d: HTTP "
				"%d)",
				call->method, call->url, wait, call->attempts,
				call->status);
		else
			zc_info("retrying %s %s in %ld ms (attempt %d: %s)",
				call->method, call->url, wait, call->attempts,
				zc_strerror(err));
		zc__log_flush(); /* held lines do not wait out the backoff */
		sleep_ms(wait);
	}
	curl_slist_free_all(hdrs);

	/*
	 * Time ran out because the inbound request's deadline did, not the
	 * call's own timeout: report that, so no caller retries it.
	 */
	if (err == ZC_ERR_TIMEOUT && clamped && zc__now_ns() >= end - 1000000LL)
		err = ZC_ERR_DEADLINE;
	return err;
}

int
zc_call_attempts(const zc_call *call)
{
	return call != NULL ? call->attempts : 0;
}

long
zc_call_retry_after_ms(const zc_call *call)
{
	return call != NULL ? call->retry_after_ms : 0;
}

zc_err
zc_res_call_error(zc_res *res, const zc_call *call, zc_err err)
{
	char ra[24];
	long ms = zc_call_retry_after_ms(call);
	const char *target = call != NULL && call->target != NULL
				     ? call->target->name
				     : "downstream";

	if (ms > 0 && (err == ZC_ERR_BREAKER_OPEN || err == ZC_ERR_HTTP ||
		       err == ZC_ERR_BULKHEAD_FULL)) {
		snprintf(ra, sizeof(ra), "%ld", (ms + 999) / 1000);
		zc_res_header(res, "Retry-After", ra);
	} else if (err == ZC_ERR_BULKHEAD_FULL) {
		zc_res_header(res, "Retry-After", "1");
	}
	if (err == ZC_ERR_HTTP)
		return zc_res_error(res, zc_err_http_status(err),
				    "%s failed: HTTP %d", target,
				    zc_call_status(call));
	return zc_res_error(res, zc_err_http_status(err), "%s unavailable: %s",
			    target, zc_strerror(err));
}

int
zc_call_status(const zc_call *call)
{
	return call != NULL ? call->status : 0;
}

const char *
zc_call_reply(const zc_call *call, size_t *len)
{
	if (len != NULL)
		*len = 0;
	if (call == NULL || call->status == 0)
		return NULL;
	if (len != NULL)
		*len = call->reply_len;
	/* An empty body is "" rather than NULL, so callers can print it. */
	return call->reply != NULL ? call->reply : "";
}

json_t *
zc_call_reply_json(zc_call *call)
{
	json_error_t jerr;

	if (call == NULL || call->status == 0)
		return NULL;
	if (!call->reply_parsed) {
		call->reply_parsed = true;
		if (call->reply_len > 0)
			call->reply_json =
				json_loadb(call->reply, call->reply_len,
					   JSON_DECODE_ANY, &jerr);
	}
	return call->reply_json;
}

const char *
zc_call_url(const zc_call *call)
{
	/* Safe to hand straight to a "%s" in a log line. */
	if (call == NULL || call->url == NULL)
		return "";
	return call->url;
}

void
zc_call_free(zc_call *call)
{
	if (call == NULL)
		return;
	reply_clear(call);
	curl_slist_free_all(call->headers);
	curl_slist_free_all(call->propagated);
	free(call->body);
	free(call->url);
	free(call);
}

void
zc__call_detach(zc_call *call)
{
	/* The inbound request ends before the queued call runs. */
	call->inbound = NULL;
	call->queued = true;
}

zc_err
zc__call_setup_err(const zc_call *call)
{
	return call->setup_err;
}

/* A complete, replayable record of the call, as one line of JSON. */
char *
zc__call_record(const zc_call *call)
{
	const struct curl_slist *h;
	json_t *rec, *hdrs;
	char *out;

	hdrs = json_array();
	for (h = call->headers; h != NULL && hdrs != NULL; h = h->next)
		json_array_append_new(hdrs, json_string(h->data));
	for (h = call->propagated; h != NULL && hdrs != NULL; h = h->next)
		json_array_append_new(hdrs, json_string(h->data));
	rec = json_pack("{s:s, s:s, s:o, s:s%}", "method", call->method, "url",
			call->url != NULL ? call->url : "", "headers",
			hdrs != NULL ? hdrs : json_array(), "body",
			call->body != NULL ? call->body : "",
			call->body != NULL ? call->body_len : (size_t)0);
	if (rec == NULL)
		return NULL;
	out = zc_json_dumps(rec);
	json_decref(rec);
	return out;
}

/*
 * A call to an absolute URL (K_SINK, a broker ingress) rather than a
 * function name; target_name keys its policy, breaker and bulkhead
 * ("k-sink", the broker's name).  Same ownership as zc_call_new.
 */
zc_call *
zc__call_new_url(zc_req *inbound, const char *target_name, const char *url,
		 const char *method)
{
	zc_call *call = calloc(1, sizeof(*call));

	if (call == NULL)
		return NULL;
	call->inbound = inbound;
	call->timeout_ms = default_timeout_ms;
	call->connect_ms = default_connect_ms;
	call->max_reply = default_max_reply;
	if (zc__client_global_init() != 0) {
		call->setup_err = ZC_ERR_INVALID; /* libcurl missing */
		return call;
	}
	if (propagate(call, inbound) != 0) {
		zc_call_free(call);
		return NULL;
	}
	if (method == NULL || !valid_method(method) || url == NULL ||
	    (strncmp(url, "http://", 7) != 0 &&
	     strncmp(url, "https://", 8) != 0) ||
	    strlen(url) >= ZC_URL_MAX || !valid_header_value(url)) {
		call->setup_err = ZC_ERR_INVALID;
		return call;
	}
	memcpy(call->method, method, strlen(method) + 1);
	if ((call->target = zc__target_get(target_name)) == NULL ||
	    (call->url = strdup(url)) == NULL) {
		zc_call_free(call);
		return NULL;
	}
	call->timeout_ms = call->target->policy.timeout_ms;
	call->connect_ms = call->target->policy.connect_timeout_ms;
	return call;
}

/* The receiver dedupes (CloudEvents: on source + id), so a repeat is safe. */
void
zc__call_set_repeatable(zc_call *call)
{
	if (call != NULL)
		call->keyed = true;
}

/* Body bytes with a content type of the caller's (binary-mode events). */
zc_err
zc__call_body(zc_call *call, const char *content_type, const void *data,
	      size_t len)
{
	char *copy;

	if (call == NULL)
		return ZC_ERR_INVALID;
	copy = malloc(len + 1);
	if (copy == NULL)
		return setup_fail(call, ZC_ERR_NOMEM);
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	free(call->body);
	call->body = copy;
	call->body_len = len;
	call->has_body = true;
	if (content_type != NULL)
		return zc_call_header(call, "Content-Type", content_type);
	return ZC_OK;
}

zc_err
zc_call_jsonf(zc_call *call, const char *fmt, ...)
{
	json_error_t e;
	json_t *v;
	va_list ap;
	zc_err err;

	char *text;
	size_t len;

	va_start(ap, fmt);
	text = zc__json_vpackf(fmt, ap, &len);
	if (text != NULL) {
		va_end(ap);
		err = zc__call_body(call, NULL, text, len);
		free(text);
		return err;
	}
	v = json_vpack_ex(&e, 0, fmt, ap);
	va_end(ap);
	if (v == NULL) {
		zc_error("zc_call_jsonf(\"%s\"): %s", fmt, e.text);
		/* mark the call failed, so perform never sends it bodiless */
		zc_call_json(call, NULL);
		return ZC_ERR_INVALID;
	}
	err = zc_call_json(call, v);
	json_decref(v);
	return err;
}
