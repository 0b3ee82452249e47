/*
 * app.h - the top layer: the function's life (configuration, setup, init,
 * serving, drain) and the in-process test harness, wiring the layers
 * below together.
 */
#ifndef ZC_APP_H
#define ZC_APP_H

#include "../events/events.h"

zc_app *zc__app_new(void);

#endif /* ZC_APP_H */
