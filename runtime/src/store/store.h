/*
 * store.h - state that outlives one request: the idempotency records of
 * idempotent routes and the event-dedup records of idempotent event
 * routes.  Below the server: it stores answers as plain values, not
 * responses, and knows nothing of HTTP.
 */
#ifndef ZC_STORE_H
#define ZC_STORE_H

#include "../core/core.h"

/* An answer as stored and replayed: status, content type, body. */
struct zc_answer {
	int status;
	const char *ctype; /* a static string */
	char *body;        /* NUL-terminated copy; NULL when len is 0 */
	size_t len;
};

/* ---- idempotency keys (idempotency.c) ---- */
enum {
	ZC_IDEM_PROCEED = 0,       /* first time: run, then finish */
	ZC_IDEM_PROCEED_UNTRACKED, /* out of memory: run untracked */
	ZC_IDEM_REPLAY,            /* *replay holds the stored answer */
	ZC_IDEM_CONFLICT,          /* same key still running: 409 */
	ZC_IDEM_MISMATCH           /* same key, other payload: 422 */
};
struct zc_idem;
struct zc_idem_ticket {
	uint64_t hash, id;
};
struct zc_idem *zc__idem_new(size_t max_keys, long ttl_s);
void zc__idem_free(struct zc_idem *t);
/* On ZC_IDEM_REPLAY, *replay receives a copy the caller owns (free its
 * body). */
int zc__idem_begin(struct zc_idem *t, const char *scope, const char *key,
		   const char *body, size_t len, struct zc_answer *replay,
		   struct zc_idem_ticket *ticket);
/* Keep the answer (copied), or forget the key when it is a 5xx. */
void zc__idem_finish(struct zc_idem *t, const struct zc_idem_ticket *ticket,
		     const struct zc_answer *answer);
void zc__idem_finish_failed(struct zc_idem *t,
			    const struct zc_idem_ticket *ticket);

#endif /* ZC_STORE_H */
