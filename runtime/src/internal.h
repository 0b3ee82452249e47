/*
 * internal.h - every layer's internal header, for the unit tests and the
 * fuzz harnesses only.  Runtime files include their own layer's header,
 * which includes the layers below it:
 *   app/ -> events/ -> outbound/ -> http/ -> store/ -> core/
 */
#ifndef ZC_INTERNAL_H
#define ZC_INTERNAL_H

#include "app/app.h"

#endif /* ZC_INTERNAL_H */
