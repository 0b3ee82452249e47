/*
 * idempotency.c - exactly-once handling of retried requests on routes
 * registered with zc_route_idempotent, after the IETF Idempotency-Key
 * draft and Stripe: the first request with a key runs; a repeat with the
 * same payload gets the stored answer without running again; the same key
 * with a different payload is a 422; a repeat while the first is still
 * running is a 409.  Answers of 5xx are not kept, so a retry may succeed.
 * This table is this process's: the keys themselves with memory: or no
 * store; with SQLite or PostgreSQL the records live in the store
 * (records.c) and this table only marks the keys running here, so a
 * duplicate in this process gets its 409 without a round trip.
 *
 * Memory is bounded: at most max_keys entries, each kept at most ttl; the
 * oldest go first.  One mutex guards the table; it is held only for a
 * lookup or an insert, never while a handler runs.
 */
#include "store.h"

#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;          /* hash chain */
	struct entry *older, *newer; /* insertion order, for eviction */
	uint64_t hash, fp1, fp2, id;
	long long created_ns;
	bool done;
	int status;
	const char *ctype;
	char *body;
	size_t len;
	char key[]; /* scope "\n" key */
};

struct zc_idem {
	pthread_mutex_t mu;
	struct entry **buckets;
	size_t nbuckets, count, max_keys;
	long long ttl_ns;
	struct entry *oldest, *newest;
	uint64_t next_id;
};

struct zc_idem *
zc__idem_new(size_t max_keys, long ttl_s)
{
	struct zc_idem *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->nbuckets = 1024;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->max_keys = max_keys > 0 ? max_keys : 1;
	t->ttl_ns = (long long)ttl_s * 1000000000LL;
	return t;
}

static void
unlink_entry(struct zc_idem *t, struct entry *e)
{
	struct entry **pp = &t->buckets[e->hash & (t->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		t->newest = e->older;
	t->count--;
	free(e->body);
	free(e);
}

void
zc__idem_free(struct zc_idem *t)
{
	if (t == NULL)
		return;
	while (t->oldest != NULL)
		unlink_entry(t, t->oldest);
	free(t->buckets);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static void
grow(struct zc_idem *t)
{
	size_t n = t->nbuckets * 2, i;
	struct entry **nb = calloc(n, sizeof(*nb));

	if (nb == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < t->nbuckets; i++) {
		struct entry *e = t->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
}

static struct entry *
find(struct zc_idem *t, uint64_t hash, const char *key)
{
	struct entry *e = t->buckets[hash & (t->nbuckets - 1)];

	for (; e != NULL; e = e->next)
		if (e->hash == hash && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

int
zc__idem_begin(struct zc_idem *t, const char *scope, const char *key,
	       const char *body, size_t len, struct zc_answer *replay,
	       struct zc_idem_ticket *ticket)
{
	long long now = zc__now_ns();
	size_t slen = strlen(scope), klen = strlen(key);
	uint64_t fp1 = zc__fnv1a(body, len, ZC__FNV_OFFSET);
	uint64_t fp2 = zc__mix_hash(body, len);
	struct entry *e;
	char *full;
	uint64_t h;
	int rc;

	full = malloc(slen + klen + 2);
	if (full == NULL)
		return ZC_IDEM_PROCEED_UNTRACKED;
	memcpy(full, scope, slen);
	full[slen] = '\n';
	memcpy(full + slen + 1, key, klen + 1);
	h = zc__fnv1a(full, slen + klen + 1, ZC__FNV_OFFSET);

	pthread_mutex_lock(&t->mu);
	while (t->oldest != NULL && now - t->oldest->created_ns > t->ttl_ns)
		unlink_entry(t, t->oldest);
	e = find(t, h, full);
	if (e != NULL) {
		if (e->fp1 != fp1 || e->fp2 != fp2) {
			rc = ZC_IDEM_MISMATCH;
		} else if (!e->done) {
			rc = ZC_IDEM_CONFLICT;
		} else {
			char *copy = e->len > 0 ? malloc(e->len + 1) : NULL;
			if (e->len > 0 && copy == NULL) {
				rc = ZC_IDEM_CONFLICT; /* try again later */
			} else {
				if (copy != NULL) {
					memcpy(copy, e->body, e->len);
					copy[e->len] = '\0';
				}
				replay->status = e->status;
				replay->ctype = e->ctype;
				replay->body = copy;
				replay->len = e->len;
				rc = ZC_IDEM_REPLAY;
			}
		}
		pthread_mutex_unlock(&t->mu);
		free(full);
		return rc;
	}
	/* room for the new key: the oldest goes first */
	while (t->oldest != NULL && t->count >= t->max_keys)
		unlink_entry(t, t->oldest);
	e = calloc(1, sizeof(*e) + slen + klen + 2);
	if (e == NULL) {
		pthread_mutex_unlock(&t->mu);
		free(full);
		return ZC_IDEM_PROCEED_UNTRACKED;
	}
	memcpy(e->key, full, slen + klen + 2);
	free(full);
	e->hash = h;
	e->fp1 = fp1;
	e->fp2 = fp2;
	e->id = ++t->next_id;
	e->created_ns = now;
	e->next = t->buckets[h & (t->nbuckets - 1)];
	t->buckets[h & (t->nbuckets - 1)] = e;
	e->older = t->newest;
	if (t->newest != NULL)
		t->newest->newer = e;
	else
		t->oldest = e;
	t->newest = e;
	if (++t->count > t->nbuckets)
		grow(t);
	ticket->hash = h;
	ticket->id = e->id;
	pthread_mutex_unlock(&t->mu);
	return ZC_IDEM_PROCEED;
}

void
zc__idem_finish(struct zc_idem *t, const struct zc_idem_ticket *ticket,
		const struct zc_answer *ans)
{
	struct entry *e;

	pthread_mutex_lock(&t->mu);
	/* The entry may have been evicted meanwhile: find it by id. */
	for (e = t->buckets[ticket->hash & (t->nbuckets - 1)]; e != NULL;
	     e = e->next)
		if (e->id == ticket->id)
			break;
	if (e != NULL) {
		if (ans->status >= 500) {
			unlink_entry(t, e); /* not kept: a retry runs again */
		} else {
			e->body = ans->len > 0 ? malloc(ans->len) : NULL;
			if (ans->len > 0 && e->body == NULL) {
				unlink_entry(t, e);
			} else {
				if (ans->len > 0)
					memcpy(e->body, ans->body, ans->len);
				e->len = ans->len;
				e->status = ans->status;
				e->ctype = ans->ctype;
				e->done = true;
			}
		}
	}
	pthread_mutex_unlock(&t->mu);
}

/* The handler failed (500): forget the key, so a retry runs again. */
void
zc__idem_finish_failed(struct zc_idem *t, const struct zc_idem_ticket *ticket)
{
	struct entry *e;

	pthread_mutex_lock(&t->mu);
	for (e = t->buckets[ticket->hash & (t->nbuckets - 1)]; e != NULL;
	     e = e->next)
		if (e->id == ticket->id)
			break;
	if (e != NULL)
		unlink_entry(t, e);
	pthread_mutex_unlock(&t->mu);
}
