/*
 * ledger.h - account balances in exact cents, safe to update from many
 * handler threads at once (the seed's Go map was unsynchronised and crashed
 * with "concurrent map writes").
 */
#ifndef LEDGER_H
#define LEDGER_H

#include <stdint.h>

#define LEDGER_MAX_ACCOUNT 128 /* bytes in an account name */

typedef struct ledger ledger;

ledger *ledger_new(void);
void ledger_free(ledger *l);
/* Add cents to account (created at 0).  On success stores the new balance
 * in *balance and returns 0; returns -1 (balance unchanged) when the result
 * would leave the money range, -2 when out of memory. */
int ledger_add(ledger *l, const char *account, int64_t cents, int64_t *balance);

#endif
