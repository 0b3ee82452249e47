/*
 * cloudevents.c - CloudEvents 1.0 over HTTP: receiving (binary, structured,
 * batch), replying and emitting.  (Being written for issue 5.)
 */
#include "internal.h"

void
zc__events_free(zc_app *app)
{
	(void)app;
}
