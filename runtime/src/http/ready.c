/*
 * ready.c - readiness gates: something the function needs before it can
 * do its work (the Dapr sidecar) holds /health/readiness at 503 with a
 * reason until it is there.  The server side only answers the probe; the
 * layers above, which know what they wait for, close and open the gates,
 * so the probe never has to call up the layers.
 */
#include "http.h"

#include <string.h>

/* A process needs very few: one per sidecar or dependency waited for. */
#define MAX_GATES 8

static struct {
	const char *name;
	const char *reason; /* NULL: open */
} gates[MAX_GATES];
static pthread_mutex_t gates_mu = PTHREAD_MUTEX_INITIALIZER;

int
zc__ready_gate(const char *name, const char *reason)
{
	int i, free_slot = -1, rc = 0;

	if (name == NULL)
		return -1;
	pthread_mutex_lock(&gates_mu);
	for (i = 0; i < MAX_GATES; i++) {
		if (gates[i].name != NULL && strcmp(gates[i].name, name) == 0)
			break;
		if (gates[i].name == NULL && free_slot < 0)
			free_slot = i;
	}
	if (i == MAX_GATES) {
		if (reason == NULL)
			goto out; /* opening a gate nobody closed */
		if (free_slot < 0) {
			rc = -1;
			goto out;
		}
		i = free_slot;
		gates[i].name = name;
	}
	gates[i].reason = reason;
	if (reason == NULL)
		gates[i].name = NULL; /* open gates take no slot */
out:
	pthread_mutex_unlock(&gates_mu);
	return rc;
}

const char *
zc__ready_gate_reason(void)
{
	const char *r = NULL;
	int i;

	pthread_mutex_lock(&gates_mu);
	for (i = 0; i < MAX_GATES && r == NULL; i++)
		if (gates[i].name != NULL)
			r = gates[i].reason;
	pthread_mutex_unlock(&gates_mu);
	return r;
}
