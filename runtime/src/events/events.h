/*
 * events.h - CloudEvents 1.0 over HTTP: the event model, its codecs
 * (binary, structured and batch modes), sending to a sink or broker, and
 * receiving on event routes with dedup.  Above the server (routes,
 * requests), outbound calls (sending) and the store (dedup records).
 */
#ifndef ZC_EVENTS_H
#define ZC_EVENTS_H

#include "../outbound/outbound.h"

/* Free the app's event routes (app.c, when the app is freed). */
void zc__events_free(zc_app *app);

#endif /* ZC_EVENTS_H */
