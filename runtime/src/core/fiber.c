/*
 * fiber.c - user-space stacks and the switch between them (fiber.h).
 *
 * Why not ucontext everywhere: swapcontext saves and restores the signal
 * mask, two system calls per switch, and a handler that waits switches
 * twice per wait.  On x86-64 the switch is the six callee-saved registers
 * and the stack pointer (the System V ABI leaves everything else
 * caller-saved); other architectures use ucontext.
 *
 * The sanitizers must be told: AddressSanitizer keeps a shadow of each
 * stack and would report a switch as a stack overflow or lose its fake
 * frames (__sanitizer_start/finish_switch_fiber); ThreadSanitizer keeps a
 * clock per fiber (__tsan_create/switch_to/destroy_fiber).
 */
#include "core.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__)
#include <ucontext.h>
#define ZC_FIBER_UCONTEXT 1
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ZC_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define ZC_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ZC_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define ZC_TSAN 1
#endif

#ifdef ZC_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
				    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
				     const void **bottom_old,
				     size_t *size_old);
#endif
#ifdef ZC_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* Stacks a thread keeps for its next fibers: enough for a burst of
 * waiting handlers without returning each stack to the kernel. */
#define ZC_FIBER_POOL 64

struct zc_stack {
	struct zc_stack *next; /* in the pool */
	char *base;            /* the mapping, guard page first */
	size_t size;           /* of the mapping */
};

struct zc_fiber {
	void (*fn)(void *arg);
	void *arg;
	struct zc_stack *stack;
	bool done;
#ifdef ZC_FIBER_UCONTEXT
	ucontext_t uc;
#else
	void *sp; /* saved stack pointer while not running */
#endif
#ifdef ZC_TSAN
	void *tsan;
#endif
};

struct zc_sched {
	struct zc_fiber *current;
#ifdef ZC_FIBER_UCONTEXT
	ucontext_t uc;
#else
	void *sp;
#endif
#ifdef ZC_TSAN
	void *tsan;
#endif
#ifdef ZC_ASAN
	const void *stack_bottom; /* the thread's own stack */
	size_t stack_size;
#endif
	struct zc_stack *pool;
	int pooled;
};

static _Thread_local struct zc_sched sched;

static size_t
page_size(void)
{
	static _Atomic size_t cached;
	size_t ps = atomic_load_explicit(&cached, memory_order_relaxed);

	if (ps == 0) {
		long p = sysconf(_SC_PAGESIZE);
		ps = p > 0 ? (size_t)p : 4096;
		atomic_store_explicit(&cached, ps, memory_order_relaxed);
	}
	return ps;
}

size_t
zc__fiber_stack_size(void)
{
	static _Atomic size_t size;
	size_t s = atomic_load_explicit(&size, memory_order_relaxed);
	long kb = 256;
	char err[256];

	if (s != 0)
		return s;
	/* a bad value was reported by the configuration check at start */
	if (zc__env_long("ZC_FIBER_STACK_KB", 32, 65536, &kb, err,
			 sizeof(err)) != 0)
		kb = 256;
#ifdef ZC_ASAN
	kb *= 4; /* redzones around every frame */
#endif
	s = (size_t)kb * 1024;
	atomic_store_explicit(&size, s, memory_order_relaxed);
	return s;
}

static struct zc_stack *
stack_get(size_t size)
{
	struct zc_stack *st;
	size_t ps = page_size(), total;
	void *p;

	size = (size + ps - 1) / ps * ps;
	total = size + ps;
	for (st = sched.pool; st != NULL; st = st->next) {
		if (st->size == total) {
			struct zc_stack **pp = &sched.pool;
			while (*pp != st)
				pp = &(*pp)->next;
			*pp = st->next;
			sched.pooled--;
			return st;
		}
	}
	st = malloc(sizeof(*st));
	if (st == NULL)
		return NULL;
	/* only the pages a handler touches become resident */
	p = mmap(NULL, total, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
		 0);
	if (p == MAP_FAILED) {
		free(st);
		return NULL;
	}
	/* a handler that overflows its stack faults here, not in a neighbour */
	if (mprotect(p, ps, PROT_NONE) != 0) {
		munmap(p, total);
		free(st);
		return NULL;
	}
	st->base = p;
	st->size = total;
	st->next = NULL;
	return st;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static bool pool_key_ok;

/* A thread that exits gives its pooled stacks back. */
static void
pool_release(void *unused)
{
	struct zc_stack *st, *next;

	(void)unused;
	for (st = sched.pool; st != NULL; st = next) {
		next = st->next;
		munmap(st->base, st->size);
		free(st);
	}
	sched.pool = NULL;
	sched.pooled = 0;
}

static void
pool_key_init(void)
{
	pool_key_ok = pthread_key_create(&pool_key, pool_release) == 0;
}

static void
stack_put(struct zc_stack *st)
{
	if (sched.pool == NULL) {
		/* the key's value only makes its destructor run */
		pthread_once(&pool_once, pool_key_init);
		if (pool_key_ok)
			pthread_setspecific(pool_key, &sched);
	}
	if (sched.pooled >= ZC_FIBER_POOL || !pool_key_ok) {
		munmap(st->base, st->size);
		free(st);
		return;
	}
	st->next = sched.pool;
	sched.pool = st;
	sched.pooled++;
}

static void
start_switch(struct zc_fiber *to, void **fake)
{
#ifdef ZC_ASAN
	if (to != NULL)
		__sanitizer_start_switch_fiber(
			fake, to->stack->base + page_size(),
			to->stack->size - page_size());
	else
		__sanitizer_start_switch_fiber(fake, sched.stack_bottom,
					       sched.stack_size);
#else
	(void)to;
	(void)fake;
#endif
}

static void
finish_switch(void *fake, bool into_fiber)
{
#ifdef ZC_ASAN
	const void *bottom;
	size_t size;

	__sanitizer_finish_switch_fiber(fake, &bottom, &size);
	if (into_fiber) {
		/* what we left is the thread's own stack */
		sched.stack_bottom = bottom;
		sched.stack_size = size;
	}
#else
	(void)fake;
	(void)into_fiber;
#endif
}

/* Every fiber starts here, on its own stack. */
static void
fiber_main(struct zc_fiber *f)
{
	finish_switch(NULL, true);
	f->fn(f->arg);
	f->done = true;
	/* back for good: the resumer frees the stack; ASan may drop this
	 * stack's fake frames (NULL save) */
	start_switch(NULL, NULL);
#ifdef ZC_TSAN
	__tsan_switch_to_fiber(sched.tsan, 0);
#endif
	sched.current = NULL;
#ifdef ZC_FIBER_UCONTEXT
	setcontext(&sched.uc);
#else
	{
		extern void zc__ctx_swap(void **save, void *load);
		void *dead;
		zc__ctx_swap(&dead, sched.sp);
	}
#endif
	abort(); /* unreachable: a finished fiber is never resumed */
}

#ifdef ZC_FIBER_UCONTEXT
static void
uc_entry(unsigned hi, unsigned lo)
{
	uintptr_t p = ((uintptr_t)hi << 32) | (uintptr_t)lo;

	fiber_main((struct zc_fiber *)p);
}
#else
/*
 * zc__ctx_swap(save, load): push the callee-saved registers, store the
 * stack pointer in *save, switch to load, pop its registers, return into
 * it.  A new stack is laid out as if it had called zc__ctx_swap from
 * zc__ctx_entry, with the fiber in rbx.
 */
__asm__(".text\n"
	".globl zc__ctx_swap\n"
	".type zc__ctx_swap,@function\n"
	"zc__ctx_swap:\n"
	"\tpushq %rbp\n"
	"\tpushq %rbx\n"
	"\tpushq %r12\n"
	"\tpushq %r13\n"
	"\tpushq %r14\n"
	"\tpushq %r15\n"
	"\tmovq %rsp, (%rdi)\n"
	"\tmovq %rsi, %rsp\n"
	"\tpopq %r15\n"
	"\tpopq %r14\n"
	"\tpopq %r13\n"
	"\tpopq %r12\n"
	"\tpopq %rbx\n"
	"\tpopq %rbp\n"
	"\tret\n"
	".size zc__ctx_swap, .-zc__ctx_swap\n"
	".type zc__ctx_entry,@function\n"
	"zc__ctx_entry:\n"
	"\tmovq %rbx, %rdi\n"
	"\tcall zc__fiber_main_trampoline\n"
	"\tud2\n"
	".size zc__ctx_entry, .-zc__ctx_entry\n"
	".section .note.GNU-stack,\"\",@progbits\n"
	".text\n");
void zc__ctx_swap(void **save, void *load);
void zc__ctx_entry(void);
void zc__fiber_main_trampoline(struct zc_fiber *f);

void
zc__fiber_main_trampoline(struct zc_fiber *f)
{
	fiber_main(f);
}
#endif

struct zc_fiber *
zc__fiber_new(void (*fn)(void *arg), void *arg, size_t stack_size)
{
	struct zc_fiber *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	if (stack_size == 0)
		stack_size = zc__fiber_stack_size();
	f->stack = stack_get(stack_size);
	if (f->stack == NULL) {
		free(f);
		return NULL;
	}
	f->fn = fn;
	f->arg = arg;
#ifdef ZC_FIBER_UCONTEXT
	if (getcontext(&f->uc) != 0) {
		stack_put(f->stack);
		free(f);
		return NULL;
	}
	f->uc.uc_stack.ss_sp = f->stack->base + page_size();
	f->uc.uc_stack.ss_size = f->stack->size - page_size();
	f->uc.uc_link = NULL;
	makecontext(&f->uc, (void (*)(void))uc_entry, 2,
		    (unsigned)((uintptr_t)f >> 32), (unsigned)(uintptr_t)f);
#else
	{
		uintptr_t top = (uintptr_t)(f->stack->base + f->stack->size);
		void **sp;

		top &= ~(uintptr_t)15;
		sp = (void **)top;
		/*
		 * The ret into zc__ctx_entry leaves rsp at top, 16-aligned,
		 * so its call enters the trampoline with rsp = 8 mod 16 as
		 * the ABI wants (a pad word here misaligned every frame, and
		 * the first aligned SSE store to the stack faulted).
		 */
		*--sp = (void *)zc__ctx_entry;   /* ret goes here */
		*--sp = NULL;                    /* rbp */
		*--sp = f;                       /* rbx */
		*--sp = NULL;                    /* r12 */
		*--sp = NULL;                    /* r13 */
		*--sp = NULL;                    /* r14 */
		*--sp = NULL;                    /* r15 */
		f->sp = sp;
	}
#endif
#ifdef ZC_TSAN
	f->tsan = __tsan_create_fiber(0);
#endif
	return f;
}

bool
zc__fiber_resume(struct zc_fiber *f)
{
	void *fake = NULL;

	if (f == NULL || f->done || sched.current != NULL)
		return f == NULL || f->done;
	sched.current = f;
#ifdef ZC_TSAN
	sched.tsan = __tsan_get_current_fiber();
#endif
	start_switch(f, &fake);
#ifdef ZC_TSAN
	__tsan_switch_to_fiber(f->tsan, 0);
#endif
#ifdef ZC_FIBER_UCONTEXT
	swapcontext(&sched.uc, &f->uc);
#else
	zc__ctx_swap(&sched.sp, f->sp);
#endif
	finish_switch(fake, false);
	sched.current = NULL;
	return f->done;
}

void
zc__fiber_yield(void)
{
	struct zc_fiber *f = sched.current;
	void *fake = NULL;

	if (f == NULL)
		return; /* on the thread's own stack: nothing to yield to */
	start_switch(NULL, &fake);
#ifdef ZC_TSAN
	__tsan_switch_to_fiber(sched.tsan, 0);
#endif
#ifdef ZC_FIBER_UCONTEXT
	swapcontext(&f->uc, &sched.uc);
#else
	zc__ctx_swap(&f->sp, sched.sp);
#endif
	finish_switch(fake, true);
}

struct zc_fiber *
zc__fiber_current(void)
{
	return sched.current;
}

void
zc__fiber_free(struct zc_fiber *f)
{
	if (f == NULL)
		return;
#ifdef ZC_TSAN
	__tsan_destroy_fiber(f->tsan);
#endif
	stack_put(f->stack);
	free(f);
}
