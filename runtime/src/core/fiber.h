/*
 * fiber.h - user-space stacks a loop thread switches between, so that a
 * handler waiting on the network or the store gives its thread back to
 * the loop instead of blocking it.  Included by core.h.
 *
 * A fiber is resumed from its thread's own stack (the loop) and runs
 * until it yields or its function returns; it never moves to another
 * thread.  Switching is a few instructions on x86-64 (ucontext elsewhere)
 * and is annotated for AddressSanitizer and ThreadSanitizer, so both
 * builds follow a handler across its stacks.
 */
#ifndef ZC_FIBER_H
#define ZC_FIBER_H

#include <stdbool.h>
#include <stddef.h>

struct zc_fiber;

/*
 * A fiber that runs fn(arg) when first resumed, on a stack of stack_size
 * bytes (0: ZC_FIBER_STACK_KB, 256 KiB by default) behind a guard page.
 * Stacks are kept per thread for reuse.  NULL when out of memory.
 */
struct zc_fiber *zc__fiber_new(void (*fn)(void *arg), void *arg,
			       size_t stack_size);
/* Run f, from the thread's own stack, until it yields or returns; true
 * once fn has returned (f may then be freed). */
bool zc__fiber_resume(struct zc_fiber *f);
/* From inside a fiber: back to the zc__fiber_resume that ran it. */
void zc__fiber_yield(void);
/* The fiber this thread is running, or NULL on the thread's own stack. */
struct zc_fiber *zc__fiber_current(void);
/* Free a fiber that returned or never ran (its stack goes back to the
 * thread's pool). */
void zc__fiber_free(struct zc_fiber *f);
/* The stack size new fibers get (ZC_FIBER_STACK_KB, read once). */
size_t zc__fiber_stack_size(void);

#endif /* ZC_FIBER_H */
