/*
 * app.c - the function's life: configuration, setup, init hook, serving,
 * and the SIGTERM drain that Knative's scale-down depends on.
 *
 * Signals: SIGTERM/SIGINT are blocked in every thread and taken by the main
 * thread with sigwait, so shutdown runs as ordinary code (no async-signal
 * restrictions).  It also works as PID 1, where the kernel discards
 * default-disposition signals: a blocked signal is never discarded, it
 * waits for sigwait (tests/e2e/test_pid1.py runs it so).
 */
#include "app.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

zc_app *
zc__app_new(void)
{
	zc_app *app = calloc(1, sizeof(*app));

	if (app == NULL)
		return NULL;
	atomic_init(&app->state, ZC_STARTING);
	atomic_init(&app->inflight, 0);
	snprintf(app->name, sizeof(app->name), "function");
	return app;
}

const char *
zc_app_name(const zc_app *app)
{
	return app->name;
}

void
zc_on_init(zc_app *app, int (*init)(void *arg), void *arg)
{
	app->init = init;
	app->init_arg = arg;
}

void
zc_on_shutdown(zc_app *app, void (*shutdown)(void *arg), void *arg)
{
	app->shutdown = shutdown;
	app->shutdown_arg = arg;
}

void
zc_app_free(zc_app *app)
{
	if (app == NULL)
		return;
	/* deliver what handlers queued, as a served function does */
	zc__async_drain(zc__now_ns() + app->cfg.drain_timeout_ms * 1000000LL,
			true);
	zc__relay_drain(zc__now_ns() + app->cfg.drain_timeout_ms * 1000000LL);
	if (app->init_ran && app->shutdown != NULL)
		app->shutdown(app->shutdown_arg);
	zc__router_free(app);
	zc__idem_free(app->idem);
	zc__events_free(app);
	zc__dapr_free(app);
	if (app->uses_store)
		zc__store_shutdown();
	free(app);
}

static void
set_name(zc_app *app, const char *argv0)
{
	const char *svc = getenv("K_SERVICE");
	char tmp[256];

	if (svc != NULL && *svc != '\0') {
		snprintf(app->name, sizeof(app->name), "%s", svc);
	} else if (argv0 != NULL && *argv0 != '\0') {
		snprintf(tmp, sizeof(tmp), "%s", argv0);
		snprintf(app->name, sizeof(app->name), "%s", basename(tmp));
	}
}

/* A user route on a health path would be silently shadowed: refuse. */
static int
check_health_paths(const zc_app *app)
{
	size_t k;

	for (k = 0; k < app->nroutes; k++) {
		const char *p = app->routes[k].pattern;
		if (strcmp(p, app->cfg.readiness_path) == 0 ||
		    strcmp(p, app->cfg.liveness_path) == 0 ||
		    (app->cfg.metrics_path != NULL &&
		     strcmp(p, app->cfg.metrics_path) == 0)) {
			zc_error("route \"%s %s\" collides with a health or "
				 "metrics endpoint; move it or set "
				 "ZC_READINESS_PATH, ZC_LIVENESS_PATH or "
				 "ZC_METRICS_PATH",
				 app->routes[k].method, p);
			return -1;
		}
	}
	return 0;
}

/* The route names, and the families each layer adds to /metrics. */
static int
init_metrics(zc_app *app)
{
	const char **names = zc__route_names(app);

	if (names == NULL) {
		zc_error("out of memory");
		return -1;
	}
	zc__metrics_init(names, app->nroutes);
	free(names);
	if (zc__metrics_provider(zc__targets_metrics, NULL) != 0 ||
	    zc__metrics_provider(zc__async_metrics, NULL) != 0 ||
	    (app->uses_store &&
	     zc__metrics_provider(zc__store_metrics, NULL) != 0) ||
	    (zc__relay_running() &&
	     zc__metrics_provider(zc__relay_metrics, NULL) != 0)) {
		zc_error("too many metrics providers");
		return -1;
	}
	return 0;
}

static int
nothing(zc_tx *tx, void *arg)
{
	(void)tx;
	(void)arg;
	return 0;
}

/*
 * One empty transaction: the store's schemas applied and its reachability
 * known before the first request needs them.  A store that is down is not
 * fatal: readiness says so until it comes back.
 */
static void *
warm_store(void *arg)
{
	zc_err err = zc__store_run(nothing, NULL, NULL);

	(void)arg;
	if (err != ZC_OK)
		zc_warn("store not reachable yet (%s): readiness answers 503 "
			"and requests that need it 503 until it is",
			zc_strerror(err));
	return NULL;
}

/*
 * The store, for a function that keeps state (a transactional route or a
 * schema): ZC_STORE_URL parsed, nothing connected yet.  In-process tests
 * default to memory: rather than a file under $TMPDIR.
 */
static int
open_store(zc_app *app, bool testing)
{
	const char *url = getenv("ZC_STORE_URL");
	char err[512];

	if (!app->uses_store)
		return 0;
	if (testing && (url == NULL || *url == '\0')
		    ? zc__store_configure("memory:", app->name, -1, err,
					  sizeof(err)) != 0
		    : zc__store_configure_env(app->name, err, sizeof(err)) !=
			      0) {
		zc_error("%s", err);
		return -1;
	}
	if (!testing)
		zc__store_log_startup();
	else
		warm_store(NULL); /* in-process tests: schemas applied now */
	/* SQLite or PostgreSQL: what transactional handlers sent waits in
	 * the outbox, and the relay delivers it (what an earlier process
	 * left too) */
	if (zc__store_durable() && zc__relay_start(err, sizeof(err)) != 0) {
		zc_error("%s", err);
		return -1;
	}
	return 0;
}

static int
run_setup(zc_app *app, int (*setup)(zc_app *), bool testing)
{
	if (setup == NULL || setup(app) != 0) {
		zc_error("function setup failed");
		return -1;
	}
	if (check_health_paths(app) != 0)
		return -1;
	if (open_store(app, testing) != 0)
		return -2;
	if (app->init != NULL && app->init(app->init_arg) != 0) {
		zc_error("init hook failed");
		return -1;
	}
	app->init_ran = true;
	return init_metrics(app);
}

/* Client defaults from the environment, before setup declares targets. */
static void
apply_client_config(const zc_config *cfg)
{
	zc__policy_set_global(&cfg->policy);
	zc__client_set_defaults(cfg->policy.timeout_ms,
				cfg->policy.connect_timeout_ms,
				cfg->client_max_reply);
	zc__async_configure(cfg->async_queue, cfg->async_workers);
}

zc_app *
zc_test_app(int (*setup)(zc_app *app))
{
	char err[256];
	zc_app *app = zc__app_new();

	if (app == NULL)
		return NULL;
	zc__log_init(app->name);
	if (zc__config_load(&app->cfg, err, sizeof(err)) != 0) {
		zc_error("%s", err);
		free(app);
		return NULL;
	}
	apply_client_config(&app->cfg);
	if (run_setup(app, setup, true) != 0) {
		zc_app_free(app);
		return NULL;
	}
	atomic_store(&app->state, ZC_READY);
	return app;
}

/*
 * Wait for in-flight requests to finish, up to the drain deadline.  A
 * request whose body has not advanced for a second is not waited for: its
 * client is gone or stuck (libmicrohttpd may not notice a client that
 * closed mid-body until its idle timeout), and MHD_stop_daemon closes it.
 */
static long
drain(zc_app *app, long long deadline)
{
	struct timespec tick = {0, 5 * 1000000L};
	long n;

	while ((n = atomic_load(&app->inflight) -
		    zc__server_stalled(1000000000LL)) > 0 &&
	       zc__now_ns() < deadline)
		nanosleep(&tick, NULL);
	return n > 0 ? n : 0;
}

static void *
preload(void *arg)
{
	(void)arg;
	if (zc__client_global_init() != 0)
		zc_error("outbound calls will fail: libcurl cannot be loaded");
	return NULL;
}

/*
 * Start-up work on threads of their own (loading libcurl, the store's
 * first transaction), joined before the process exits: exiting while one
 * still initialises a library would run the library's destructors under
 * it.  In line when no thread can start.
 */
static pthread_t helpers[2];
static int nhelpers;

static void
background(void *(*fn)(void *))
{
	if (nhelpers < 2 &&
	    pthread_create(&helpers[nhelpers], NULL, fn, NULL) == 0)
		nhelpers++;
	else
		(void)fn(NULL);
}

/* Wait for them until deadline (then leave them: the exit ends them).
 * Returns how many are still running. */
static int
join_background(long long deadline_ns)
{
	struct timespec ts;
	int i, left = 0;

	for (i = 0; i < nhelpers; i++) {
		zc__wall_deadline(deadline_ns, 0, &ts);
		if (pthread_timedjoin_np(helpers[i], NULL, &ts) != 0) {
			zc_warn("a start-up thread is still running at exit");
			left++;
		}
	}
	nhelpers = 0;
	return left;
}

/*
 * A function that declared targets will call out: load libcurl now, on a
 * thread of its own, once the port is open, so neither the first request
 * nor start-up waits for it.  Others load it only if they ever call.
 */
static void
preload_client(void)
{
	if (zc__targets() != NULL)
		background(preload);
}

int
zc_main(int argc, char **argv, int (*setup)(zc_app *app))
{
	char err[256];
	struct zc_server *srv;
	sigset_t set;
	long long deadline;
	zc_app *app;
	long left;
	int helpers_left;
	int sig, rc;

	(void)argc;
	app = zc__app_new();
	if (app == NULL) {
		fprintf(stderr, "zenith: out of memory\n");
		return 1;
	}
	set_name(app, argv != NULL ? argv[0] : NULL);
	zc__log_init(app->name);
	if (zc__config_load(&app->cfg, err, sizeof(err)) != 0) {
		zc_error("configuration: %s", err);
		free(app);
		return 2;
	}
	/*
	 * Before any thread exists: block the shutdown signals (every thread
	 * inherits the mask) and ignore SIGPIPE, which a peer closing a
	 * socket would otherwise turn into process death.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	apply_client_config(&app->cfg);
	/* the sidecar's targets exist before the outbox relay delivers */
	if (zc__dapr_configure(err, sizeof(err)) != 0) {
		zc_error("configuration: %s", err);
		zc_app_free(app);
		return 2;
	}
	if ((rc = run_setup(app, setup, false)) != 0) {
		zc_app_free(app);
		return rc == -2 ? 2 : 1; /* 2: configuration, as above */
	}
	{
		const char *sink = getenv("K_SINK");
		app->cfg.threads = zc__config_threads(
			&app->cfg, zc__targets() != NULL ||
					   (sink != NULL && *sink != '\0'));

		/*
		 * A delivery thread per server thread: each blocks for a
		 * call's round trip, about what a request takes to serve, so
		 * the queue keeps up with the handlers that fill it (2 left
		 * it full under load and most audits went in line; 8 on 2
		 * CPUs: 5-14 % more transactions/s in three A/B pairs, 16 no
		 * better than 2).
		 */
		if (app->cfg.async_workers == 0)
			zc__async_configure(
				app->cfg.async_queue,
				app->cfg.threads < 64 ? app->cfg.threads : 64);
	}
	/* spans recorded from the first request on; OTEL_* off: nothing */
	zc__tracing_start(app->name);
	srv = zc__server_start(app, err, sizeof(err));
	if (srv == NULL) {
		zc_error("%s", err);
		zc__tracing_stop(zc__now_ns());
		zc_app_free(app);
		return 1;
	}
	/* listening first: the sidecar needs the app's port to be ready;
	 * readiness waits for the sidecar (a gate closed before READY) */
	zc__dapr_start();
	atomic_store(&app->state, ZC_READY);
	preload_client();
	if (app->uses_store)
		background(warm_store);
	if (app->cfg.thread_per_connection)
		zc_info("listening on port %d (a thread per connection, %zu "
			"routes)",
			app->cfg.port, app->nroutes);
	else
		zc_info("listening on port %d (%d threads, %zu routes)",
			app->cfg.port, app->cfg.threads, app->nroutes);

	do {
		sig = 0;
		if (sigwait(&set, &sig) != 0)
			sig = 0;
	} while (sig != SIGTERM && sig != SIGINT);

	atomic_store(&app->state, ZC_DRAINING);
	zc__dapr_stop(); /* a poll in flight is cut short: no delay */
	{
		/* clients that left mid-body are not in flight any more */
		long gone = zc__server_stalled(1000000000LL);
		zc_info("%s: draining (%ld in flight, up to %ld ms)%s",
			strsignal(sig),
			(long)atomic_load(&app->inflight) - gone,
			app->cfg.drain_timeout_ms,
			gone > 0 ? "; not waiting for clients gone mid-body"
				 : "");
	}
	deadline = zc__now_ns() + app->cfg.drain_timeout_ms * 1000000LL;
	zc__server_quiesce(srv);
	left = drain(app, deadline);
	/* then the async calls those requests queued, in the time left;
	 * the outbox relay delivers meanwhile, and what it leaves stays in
	 * the store for the next replica */
	zc__async_drain(deadline, false);
	zc__relay_drain(deadline);
	/* the spans of everything above, exported within the same deadline */
	zc__tracing_stop(deadline);
	/* the store's warm-up may still be in its first transaction (a
	 * locked SQLite file): it uses a connection closed below */
	helpers_left = join_background(deadline);
	if (left == 0) {
		zc__server_stop(srv);
		/* no handler, probe or start-up thread runs now: the store's
		 * connections can go (with any still running they stay, and
		 * the exit closes them) */
		if (app->uses_store && helpers_left == 0)
			zc__store_close_all();
	} else {
		/*
		 * MHD_stop_daemon would join threads still inside handlers
		 * and could hang past the grace period; exit without it.
		 */
		zc_warn("drain deadline reached with %ld request(s) in "
			"flight; exiting",
			left);
	}
	/*
	 * The hook may free what handlers use, so it runs only once none is
	 * running; past the drain deadline it is skipped, and said so.
	 */
	if (app->shutdown != NULL && left == 0)
		app->shutdown(app->shutdown_arg);
	else if (app->shutdown != NULL)
		zc_warn("shutdown hook skipped: handlers still running");
	app->init_ran = false; /* the shutdown hook has run */
	zc_info("stopped");
	zc__log_flush_all(); /* handlers still running past the deadline */
	if (left == 0)
		zc_app_free(app);
	return 0;
}
