/*
 * dapr.c - the Dapr sidecar: where it is (DAPR_HTTP_PORT), readiness
 * that waits for it, and where a publish goes.  The sidecar is ready only
 * once the app answers on its port, so the runtime listens first and then
 * polls the sidecar's outbound health (/v1.0/healthz/outbound, which does
 * not need the app channel), holding readiness at 503 until it answers;
 * gating the listen on the sidecar would deadlock the two.
 */
#include "events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The targets the runtime's own calls to the sidecar share: names no
 * function can have ('_'), so they never meet a function's target. */
#define SIDECAR_TARGET "dapr_sidecar"
#define PUBLISH_TARGET "dapr_publish"
/* Between polls, and the most one poll may take (loopback). */
#define POLL_MS         250L
#define POLL_TIMEOUT_MS 1000L
#define GATE            "dapr"
#define GATE_REASON     "waiting for the Dapr sidecar"

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	bool running, stopping;
	bool wait;            /* ZC_DAPR_WAIT */
	long long timeout_ms; /* DAPR_HEALTH_TIMEOUT */
	char url[96];         /* the health URL polled */
} sc = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
	.wait = true,
	.timeout_ms = 60000,
};

/* Set at shutdown: cuts a poll in flight short (the client's drain
 * deadline, which a detached call honours mid-attempt).  It lives as long
 * as the process, as the client requires. */
static _Atomic long long stop_ns;

/* A TCP port number, as DAPR_HTTP_PORT must be. */
static bool
valid_port(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0' || strlen(s) > 5)
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno == 0 && *end == '\0' && v > 0 && v < 65536;
}

const char *
zc__dapr_port(void)
{
	const char *p = getenv("DAPR_HTTP_PORT");

	return valid_port(p) ? p : NULL;
}

/*
 * The sidecar's publish target: its calls carry DAPR_API_TOKEN (call.c),
 * in line and when the outbox relay delivers a stored publish (so the
 * token is never stored), with the global retries, not the none of
 * service invocation through Dapr (503 is retried; receivers dedupe on
 * source + id).  Made at start-up, before the relay can deliver a row a
 * previous process left, and on first use.
 */
static struct zc_target *
publish_target(void)
{
	zc_policy p;

	zc_policy_default(&p);
	return zc__target_with(PUBLISH_TARGET, ZC_MODE_DAPR, &p);
}

int
zc__dapr_configure(char *err, size_t errsize)
{
	const char *p = getenv("DAPR_HTTP_PORT");
	long timeout_s = 60;
	bool wait = true;

	/* Dapr's SDKs wait DAPR_HEALTH_TIMEOUT seconds, 60 by default */
	if (zc__env_long("DAPR_HEALTH_TIMEOUT", 0, 86400, &timeout_s, err,
			 errsize) != 0)
		return -1;
	if (zc_env_bool("ZC_DAPR_WAIT", true, &wait) != ZC_OK) {
		snprintf(err, errsize, "ZC_DAPR_WAIT: expected true or false");
		return -1;
	}
	if (p != NULL && *p != '\0' && !valid_port(p))
		zc_warn("DAPR_HTTP_PORT=\"%.16s\" is not a port number: the "
			"Dapr sidecar is not used",
			p);
	sc.wait = wait;
	sc.timeout_ms = timeout_s * 1000LL;
	if (valid_port(p) && publish_target() == NULL) {
		snprintf(err, errsize, "out of memory");
		return -1;
	}
	return 0;
}

int
zc__dapr_wait_note(struct zc__dapr_wait *w, long long elapsed_ms)
{
	if (elapsed_ms < w->next_ms)
		return ZC_DAPR_NOTE_NONE;
	w->next_ms = elapsed_ms + ZC_DAPR_REMIND_MS;
	if (!w->timed_out) {
		w->timed_out = true;
		return ZC_DAPR_NOTE_TIMEOUT;
	}
	return ZC_DAPR_NOTE_REMIND;
}

/* ---------------------------------------------------------------------
 * The poller
 * ------------------------------------------------------------------- */
/* One poll: true when the sidecar answered 2xx (204 by its API); else
 * what happened instead into why. */
static bool
poll_once(char *why, size_t size)
{
	zc_call *call = zc__call_new_url(NULL, SIDECAR_TARGET, sc.url, "GET");
	zc_err err;
	int status;

	if (call == NULL) {
		snprintf(why, size, "out of memory");
		return false;
	}
	zc__call_detach(call, &stop_ns);
	zc_call_timeout_ms(call, POLL_TIMEOUT_MS);
	err = zc_call_perform(call);
	status = zc_call_status(call);
	zc_call_free(call);
	if (err == ZC_OK && status >= 200 && status <= 299)
		return true;
	if (status > 0)
		snprintf(why, size, "HTTP %d", status);
	else
		snprintf(why, size, "%s", zc_strerror(err));
	return false;
}

/* Wait ms, or until stopped; true when stopped. */
static bool
pause_ms(long ms)
{
	struct timespec ts;
	bool stop;

	zc__wall_deadline(zc__now_ns() + ms * 1000000LL, 0, &ts);
	pthread_mutex_lock(&sc.mu);
	while (!sc.stopping &&
	       pthread_cond_timedwait(&sc.cv, &sc.mu, &ts) != ETIMEDOUT)
		;
	stop = sc.stopping;
	pthread_mutex_unlock(&sc.mu);
	return stop;
}

static void *
poller(void *arg)
{
	struct zc__dapr_wait w = {sc.timeout_ms, sc.timeout_ms, false};
	long long start = zc__now_ns(), elapsed;
	char why[128] = "no answer yet";

	(void)arg;
	while (!pause_ms(0)) {
		if (poll_once(why, sizeof(why))) {
			zc__ready_gate(GATE, NULL);
			zc_info("Dapr sidecar answered %s after %lld ms: ready",
				sc.url, (zc__now_ns() - start) / 1000000LL);
			return NULL;
		}
		elapsed = (zc__now_ns() - start) / 1000000LL;
		switch (zc__dapr_wait_note(&w, elapsed)) {
		case ZC_DAPR_NOTE_TIMEOUT:
			zc_error("Dapr sidecar not answering after %lld s "
				 "(DAPR_HEALTH_TIMEOUT): GET %s: %s; readiness "
				 "stays 503 and polling goes on.  Check that "
				 "the daprd sidecar is injected and running "
				 "(dapr.io/enabled, dapr.io/app-id, "
				 "dapr.io/app-port; its container's log) and "
				 "that DAPR_HTTP_PORT is its HTTP port; "
				 "ZC_DAPR_WAIT=false serves without waiting",
				 elapsed / 1000, sc.url, why);
			break;
		case ZC_DAPR_NOTE_REMIND:
			zc_warn("still waiting for the Dapr sidecar after %lld "
				"s: GET %s: %s; readiness stays 503",
				elapsed / 1000, sc.url, why);
			break;
		}
		if (pause_ms(POLL_MS))
			break;
	}
	return NULL;
}

void
zc__dapr_start(void)
{
	const char *port = zc__dapr_port();
	zc_policy p;

	if (port == NULL || sc.running)
		return;
	if (!sc.wait) {
		zc_info("Dapr sidecar on port %s: readiness does not wait for "
			"it (ZC_DAPR_WAIT=false)",
			port);
		return;
	}
	snprintf(sc.url, sizeof(sc.url),
		 "http://127.0.0.1:%s/v1.0/healthz/outbound", port);
	/* a poll is one short attempt: no retries, no breaker to wait out */
	zc_policy_default(&p);
	p.retries = 0;
	p.breaker_failures = 0;
	p.max_concurrent = 0;
	p.timeout_ms = POLL_TIMEOUT_MS;
	if (p.connect_timeout_ms > POLL_TIMEOUT_MS)
		p.connect_timeout_ms = POLL_TIMEOUT_MS;
	if (zc__target_with(SIDECAR_TARGET, ZC_MODE_DAPR, &p) == NULL ||
	    zc__ready_gate(GATE, GATE_REASON) != 0) {
		zc_warn("cannot wait for the Dapr sidecar (out of memory): "
			"readiness does not wait for it");
		return;
	}
	atomic_store(&stop_ns, 0);
	sc.stopping = false;
	if (pthread_create(&sc.thr, NULL, poller, NULL) != 0) {
		zc__ready_gate(GATE, NULL);
		zc_warn("cannot start a thread to wait for the Dapr sidecar: "
			"readiness does not wait for it");
		return;
	}
	sc.running = true;
	zc_info("waiting for the Dapr sidecar: GET %s until it answers; "
		"readiness answers 503 until then (DAPR_HEALTH_TIMEOUT %lld s)",
		sc.url, sc.timeout_ms / 1000);
}

void
zc__dapr_stop(void)
{
	if (!sc.running)
		return;
	pthread_mutex_lock(&sc.mu);
	sc.stopping = true;
	pthread_cond_broadcast(&sc.cv);
	pthread_mutex_unlock(&sc.mu);
	atomic_store(&stop_ns, zc__now_ns());
	pthread_join(sc.thr, NULL);
	sc.running = false;
	zc__ready_gate(GATE, NULL);
}

/* ---------------------------------------------------------------------
 * Publishing: where "dapr:<pubsub>/<topic>" goes
 * ------------------------------------------------------------------- */
/* A component name: Kubernetes' resource names, and what self-hosted
 * component files use. */
static bool
valid_pubsub(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.' || s[i] == '_'))
			return false;
	return true;
}

zc_err
zc__dapr_publish_url(const char *spec, char *url, size_t urlsz, char *tname,
		     size_t tsize)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *port = zc__dapr_port(), *slash, *t;
	size_t n;
	int k;

	slash = spec != NULL ? strchr(spec, '/') : NULL;
	if (slash == NULL || !valid_pubsub(spec, (size_t)(slash - spec)) ||
	    slash[1] == '\0' || strlen(slash + 1) > 512) {
		zc_error("dapr:%.80s: expected dapr:<pubsub>/<topic> (the "
			 "pub/sub component's name, then the topic)",
			 spec != NULL ? spec : "");
		return ZC_ERR_INVALID;
	}
	if (port == NULL) {
		zc_error("dapr:%.80s: no Dapr sidecar (DAPR_HTTP_PORT is not "
			 "set to its HTTP port)",
			 spec);
		return ZC_ERR_INVALID;
	}
	k = snprintf(url, urlsz, "http://127.0.0.1:%s/v1.0/publish/%.*s/", port,
		     (int)(slash - spec), spec);
	if (k < 0 || (size_t)k >= urlsz)
		return ZC_ERR_TOO_LARGE;
	n = (size_t)k;
	/* the topic is one path segment: anything but unreserved escaped */
	for (t = slash + 1; *t != '\0'; t++) {
		unsigned char c = (unsigned char)*t;
		if (c < 0x20 || c == 0x7f) {
			zc_error("dapr:%.80s: the topic holds a control "
				 "character",
				 spec);
			return ZC_ERR_INVALID;
		}
		if (n + 4 > urlsz)
			return ZC_ERR_TOO_LARGE;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			url[n++] = (char)c;
		} else {
			url[n++] = '%';
			url[n++] = hex[c >> 4];
			url[n++] = hex[c & 15];
		}
	}
	url[n] = '\0';
	snprintf(tname, tsize, "%s", PUBLISH_TARGET);
	return publish_target() != NULL ? ZC_OK : ZC_ERR_NOMEM;
}
