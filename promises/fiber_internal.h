/* weft — what the fiber files share (fiber.c, fiber_switch.c,
 * fiber_stack.c). Never installed. */
#ifndef WEFT_PROMISES_FIBER_INTERNAL_H
#define WEFT_PROMISES_FIBER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "weft/fiber.h"

/* ---- the context switch (fiber_switch.c) ---------------------------------
 * x86-64 System V and aarch64 have their own few instructions, saving only
 * what the ABI says a callee keeps (x86-64: rbx, rbp, r12-r15, MXCSR and
 * the x87 control word; aarch64: x19-x30, d8-d15, FPCR); other machines,
 * or -DWEFT_FIBER_UCONTEXT, use ucontext. */
#if !defined(WEFT_FIBER_UCONTEXT) && !defined(__x86_64__) &&                   \
    !defined(__aarch64__)
#define WEFT_FIBER_UCONTEXT 1
#endif

#ifdef WEFT_FIBER_UCONTEXT
#include <ucontext.h>
typedef struct weft__fctx {
  ucontext_t uc;
} weft__fctx;
#else
typedef struct weft__fctx {
  void *sp; /* the saved stack pointer; the registers are below it */
} weft__fctx;
#endif

/* Prepares c to run entry(arg) on the stack [lo, lo + size) at its first
 * weft__fctx_switch; entry must never return (it switches away for good). */
void weft__fctx_make(weft__fctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg);
/* Saves the running context in from and continues to. */
#ifdef WEFT_FIBER_UCONTEXT
void weft__fctx_switch(weft__fctx *from, weft__fctx *to);
/* Continues to, saving nothing: for a context that is finished. */
__attribute__((noreturn)) void weft__fctx_exit(weft__fctx *to);
#else
/* Pushes the callee-saved state, stores the stack pointer in *save, loads
 * new_sp and pops what is saved there. */
void weft__fctx_jump(void **save, void *new_sp);
static inline void weft__fctx_switch(weft__fctx *from, weft__fctx *to) {
  weft__fctx_jump(&from->sp, to->sp);
}
/* The restoring half of weft__fctx_jump: loads sp and pops what is saved
 * there, saving nothing. */
__attribute__((noreturn)) void weft__fctx_leave(void *sp);
/* Continues to, saving nothing: for a context that is finished (a fiber
 * whose body returned). */
__attribute__((noreturn)) static inline void weft__fctx_exit(weft__fctx *to) {
  weft__fctx_leave(to->sp);
}
#endif
/* Saves the running context in from and runs entry(arg) on the stack [lo,
 * lo + size), with the running thread's MXCSR and x87 control word (its
 * FPCR on aarch64): a fresh context's first switch, as weft__fctx_make and
 * weft__fctx_switch to `to` would do it. `to` gets the context's registers
 * when it next switches away; entry must never return. On x86-64 nothing
 * is written on the new stack first and nothing popped from it: the
 * registers are saved and the call is made in one step. */
#if !defined(WEFT_FIBER_UCONTEXT) && defined(__x86_64__)
void weft__fctx_enter(void **save, void *top, void (*entry)(void *), void *arg);
static inline void weft__fctx_begin(weft__fctx *from, weft__fctx *to, void *lo,
                                    size_t size, void (*entry)(void *),
                                    void *arg) {
  (void)to;
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  weft__fctx_enter(&from->sp, (void *)top, entry, arg);
}
#else
static inline void weft__fctx_begin(weft__fctx *from, weft__fctx *to, void *lo,
                                    size_t size, void (*entry)(void *),
                                    void *arg) {
  weft__fctx_make(to, lo, size, entry, arg);
  weft__fctx_switch(from, to);
}
#endif
/* "asm-x86_64", "asm-aarch64" or "ucontext": for the bench and reports. */
const char *weft__fctx_impl(void);

/* ---- stacks (fiber_stack.c) ----------------------------------------------
 * An mmap'd region: a guard page (no access) at `map`, then `size` bytes
 * of stack, committed only when touched (MAP_NORESERVE). */
typedef struct weft__fstack {
  void *map;   /* the mapping, guard page first */
  size_t size; /* usable bytes above the guard */
  unsigned vg; /* valgrind's stack id */
} weft__fstack;

/* The usable size for a request (0: default): pages, at least the
 * minimum; 0 if over WEFT_FIBER_STACK_MAX. */
size_t weft__fstack_round(size_t want);
/* Maps a stack of `size` usable bytes (weft__fstack_round'ed). 0 or
 * -ENOMEM. */
int weft__fstack_map(weft__fstack *s, size_t size);
void weft__fstack_unmap(weft__fstack *s);
/* Bytes of the guard page (the page size). */
size_t weft__fstack_guard(void);
/* The page size once weft__fstack_guard has run (it has, once a stack is
 * mapped): read inline on the way into a fiber. */
extern size_t weft__fstack_page;
/* The lowest usable byte of s (a mapped stack). */
static inline char *weft__fstack_lo(const weft__fstack *s) {
  return (char *)s->map + weft__fstack_page;
}

/* For tests: the guard page of a running fiber's stack. */
void *weft__fiber_guard(const weft_fiber *f);
/* For a one-call form whose operation completed although the fiber was
 * cancelled meanwhile (it returns the result, not -ECANCELED): the
 * cancellation is raised again, so the fiber's next await, yield or sleep
 * returns -ECANCELED instead of it being lost. No-op if not cancelled. */
void weft__fiber_recancel(weft_fiber *f);
/* weft_await(f), except that cancelling the fiber meanwhile does not
 * cancel f (the await still returns -ECANCELED): for an operation that
 * must not be cut off, such as a write sending from the caller's buffer. */
int weft__await_shielded(weft_future *f);
/* From a fiber (asserted by the callers): returns once `h`, whose close
 * was requested (weft_close), has fully closed and its own close callback
 * has run; at once if it is closed. Allocates nothing and suspends once:
 * the handle's close callback wakes the fiber. A cancellation meanwhile
 * does not cut the wait short (the caller may free h afterwards): it stays
 * raised for the fiber's next await. */
void weft__fiber_wait_closed(weft_handle *h);

#endif
