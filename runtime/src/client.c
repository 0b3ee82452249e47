/*
 * client.c - outbound HTTP calls from a handler to another function, with
 * libcurl.  One easy handle per thread so each worker keeps its own warm
 * connections and no curl handle is ever touched by two threads.
 */
#include "internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Built-in defaults; zc__client_set_defaults() overrides them at start-up. */
#define ZC_CLIENT_TIMEOUT_MS 5000L
#define ZC_CLIENT_CONNECT_MS 2000L
#define ZC_CLIENT_MAX_REPLY ((size_t)8 * 1024 * 1024)

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
	zc_req *inbound; /* for the deadline now; trace headers later */
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
	/* Non-positive means "not configured": keep the built-in default. */
	if (timeout_ms > 0)
		default_timeout_ms = timeout_ms;
	if (connect_ms > 0)
		default_connect_ms = connect_ms;
	if (max_reply > 0)
		default_max_reply = max_reply;
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
	if (pthread_setspecific(handle_key, curl) != 0) {
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

	blen = strlen(base);
	plen = strlen(path);
	if ((call->url = malloc(blen + plen + 1)) == NULL) {
		free(call);
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
	call->timeout_ms = total_ms > 0 ? total_ms : default_timeout_ms;
}

void
zc_call_connect_timeout_ms(zc_call *call, long connect_ms)
{
	if (call == NULL)
		return;
	call->connect_ms = connect_ms > 0 ? connect_ms : default_connect_ms;
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
	 * up to a second for a 100 most servers never send.
	 */
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
	return l;
fail:
	curl_slist_free_all(l);
	return NULL;
}

/*
 * Set every option for this attempt.  The handle was reset, which keeps
 * its live connections and DNS cache but drops the last call's options,
 * so nothing from one call (a body, a method) leaks into the next.
 */
static CURLcode
setup_handle(zc_call *call, CURL *curl, struct curl_slist *hdrs,
	     long total_ms, long connect_ms)
{
	CURLcode rc;

	rc = curl_easy_setopt(curl, CURLOPT_URL, call->url);
	/* Threads and curl's SIGALRM-based timeouts do not mix. */
	if (rc == CURLE_OK)
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
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
				      connect_ms);
	/* A <NAME>_URL must not turn a call into a file:// or gopher:// read. */
#if LIBCURL_VERSION_NUM >= 0x075500
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS,
				      (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_USERAGENT,
				      "zenith-c/" ZC_VERSION);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, call->errbuf);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
				      on_reply_data);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_WRITEDATA, call);
	/* Refuse a declared Content-Length over the cap before reading it. */
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
				      (curl_off_t)call->max_reply);
	if (rc != CURLE_OK)
		return rc;

	if (call->has_body || method_has_body(call->method)) {
		/* POSTFIELDS sends Content-Length, even 0 for an empty PUT. */
		rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
				      (curl_off_t)call->body_len);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(curl, CURLOPT_POSTFIELDS,
					      call->has_body ? call->body : "");
		if (rc == CURLE_OK && strcmp(call->method, "POST") != 0)
			rc = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST,
					      call->method);
	} else if (strcmp(call->method, "GET") == 0) {
		rc = curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(call->method, "HEAD") == 0) {
		rc = curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else {
		rc = curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST,
				      call->method);
	}
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
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* A bad <NAME>_URL: configuration, not the network. */
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
call_attempt(zc_call *call, CURL *curl, struct curl_slist *hdrs,
	     long total_ms, long connect_ms)
{
	CURLcode rc;
	long status = 0;
	zc_err err;

	reply_clear(call);
	curl_easy_reset(curl);
	if ((rc = setup_handle(call, curl, hdrs, total_ms, connect_ms)) !=
	    CURLE_OK)
		return rc == CURLE_OUT_OF_MEMORY ? ZC_ERR_NOMEM : ZC_ERR_INVALID;

	rc = curl_easy_perform(curl);
	/* The handle keeps pointers to hdrs and call: drop them now. */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, NULL);

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

zc_err
zc_call_perform(zc_call *call)
{
	struct curl_slist *hdrs;
	long total, connect, left;
	bool clamped = false;
	CURL *curl;
	zc_err err;

	if (call == NULL)
		return ZC_ERR_INVALID;
	reply_clear(call);
	if (call->setup_err != ZC_OK)
		return call->setup_err;

	total = call->timeout_ms;
	connect = call->connect_ms;
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
	/* curl would let a connect timeout outlive the total one. */
	if (connect > total)
		connect = total;

	if ((curl = thread_handle()) == NULL)
		return ZC_ERR_NOMEM;
	if ((hdrs = build_headers(call)) == NULL)
		return ZC_ERR_NOMEM;

	err = call_attempt(call, curl, hdrs, total, connect);
	curl_slist_free_all(hdrs);

	/*
	 * Time ran out because the inbound request's deadline did, not the
	 * call's own timeout: report that, so retry logic never retries it.
	 */
	if (err == ZC_ERR_TIMEOUT && clamped)
		err = ZC_ERR_DEADLINE;
	return err;
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
			call->reply_json = json_loadb(call->reply,
						      call->reply_len,
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
	free(call->body);
	free(call->url);
	free(call);
}
