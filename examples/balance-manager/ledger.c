/*
 * ledger.c - a chained hash table split into stripes, each with its own
 * mutex, so updates to different accounts rarely wait for each other and
 * updates to one account are serialised.
 */
#include "ledger.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zenith.h>

#define STRIPES 64
#define BUCKETS 4096 /* per ledger; a multiple of STRIPES */

struct account {
	struct account *next;
	int64_t cents;
	char name[];
};

struct ledger {
	pthread_mutex_t locks[STRIPES];
	struct account *buckets[BUCKETS];
};

ledger *
ledger_new(void)
{
	ledger *l = calloc(1, sizeof(*l));
	int i;

	if (l == NULL)
		return NULL;
	for (i = 0; i < STRIPES; i++)
		pthread_mutex_init(&l->locks[i], NULL);
	return l;
}

void
ledger_free(ledger *l)
{
	size_t b;
	int i;

	if (l == NULL)
		return;
	for (b = 0; b < BUCKETS; b++) {
		struct account *a = l->buckets[b], *next;
		for (; a != NULL; a = next) {
			next = a->next;
			free(a);
		}
	}
	for (i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&l->locks[i]);
	free(l);
}

int
ledger_add(ledger *l, const char *account, int64_t cents, int64_t *balance)
{
	size_t b = zc_hash64(account, strlen(account)) % BUCKETS;
	pthread_mutex_t *m = &l->locks[b % STRIPES];
	struct account *a;
	int64_t next;
	int rc = 0;

	pthread_mutex_lock(m);
	for (a = l->buckets[b]; a != NULL; a = a->next)
		if (strcmp(a->name, account) == 0)
			break;
	next = (a != NULL ? a->cents : 0) + cents; /* both within 1e15 */
	if (next > ZC_MONEY_MAX || next < -ZC_MONEY_MAX) {
		rc = -1;
	} else if (a == NULL) {
		size_t n = strlen(account) + 1;
		a = malloc(sizeof(*a) + n);
		if (a == NULL) {
			rc = -2;
		} else {
			memcpy(a->name, account, n);
			a->next = l->buckets[b];
			l->buckets[b] = a;
		}
	}
	if (rc == 0) {
		a->cents = next;
		*balance = next;
	}
	pthread_mutex_unlock(m);
	return rc;
}
