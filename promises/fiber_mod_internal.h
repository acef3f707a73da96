/* weft — the fiber struct and the per-loop fiber module, shared by
 * fiber.c (switching, awaits) and fiber_spawn.c (memory, spawning). Never
 * installed; only those two include it. */
#ifndef WEFT_PROMISES_FIBER_MOD_INTERNAL_H
#define WEFT_PROMISES_FIBER_MOD_INTERNAL_H

#include "fiber_internal.h"
#include "internal.h"

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* The struct's layout depends on it: every file that includes this header
 * must agree. */
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif

/* S_PARK: suspended until weft__fiber_wait_closed's handle has closed;
 * a cancel does not wake it (the flag waits for the next await). */
enum { S_NEW, S_RUNNING, S_AWAIT, S_YIELD, S_PARK, S_DONE };

struct weft_fiber {
  weft__fctx ctx; /* the fiber's registers while it is suspended */
  struct weft_fiber *next_spare; /* in the module's spare list */
  weft__fctx *caller;            /* resume()'s, to switch back to */
  weft_loop *loop;
  struct fmodule *mod; /* the loop's fiber module */
  weft_future *f;      /* its own future: a reference */
  weft_future *node;   /* its wake node: a reference */
  weft__fstack stack;
  weft_fiber_fn fn;
  void *arg;
  uint8_t state;
  bool cancelled;      /* its future was cancelled */
  bool cancel_pending; /* ... and no await has returned -ECANCELED yet */
  bool shielded;       /* a cancel leaves the awaited future alone */
  /* the result set by weft_fiber_return* */
  bool is_ptr;
  void *p;
  int64_t i;
  weft_dtor dtor;
#ifdef WEFT_ASAN
  void *fake;                /* ASan's fake stack while suspended */
  const void *caller_bottom; /* the stack it came from */
  size_t caller_size;
#endif
#ifdef WEFT_TSAN
  void *tsan, *caller_tsan;
#endif
  const char *name; /* "fiber" (static) or name_buf */
  char name_buf[64];
};

/* A fiber waiting in weft__fiber_wait_closed: a record on its stack, which
 * stays put while it is suspended. */
typedef struct closer {
  struct closer *next; /* in the module's list */
  weft_handle *h;
  weft_close_cb cb; /* the handle's own close callback, run first */
  struct weft_fiber *fb;
} closer;

/* The per-loop state: idle stacks, spare fiber structs, the live count.
 * Idle stacks of the default size are in `pool`, of other sizes in
 * `idle`. A fiber of the default size spawned while the pool holds more
 * stacks than fibers already count on (`owed`) counts on one too and takes
 * the pool's last (warmest) at its start (stack.map NULL until then), so
 * that spawn neither maps nor touches a stack yet cannot fail at start. */
typedef struct fmodule {
  weft__fstack *pool; /* a LIFO: pool[npool - 1] was idled last */
  unsigned npool, pcap;
  unsigned owed;      /* unstarted fibers that will take a pool stack */
  weft__fstack *idle; /* other sizes, a LIFO like the pool */
  unsigned nidle, cap;
  weft_fiber *spare; /* finished fibers' structs, through next_spare */
  unsigned nspare;
  size_t live;
  unsigned iter;           /* the libev iteration `quick` and `run` count in */
  unsigned quick;          /* wakes that did not wait, in that iteration */
  unsigned run;            /* fibers wake_fire resumed from its run, in it */
  size_t default_size;     /* weft__fstack_round(0), once */
  struct weft_fiber *back; /* the fiber that last switched to wake_fire */
#ifdef WEFT_ASAN
  const void *home_bottom; /* wake_fire's stack, as ASan reported it */
  size_t home_size;
  bool from_fiber; /* the switch in progress is a direct handoff */
#endif
  closer *closers; /* fibers waiting for a handle to close */
} fmodule;

/* weft_future_ref without the call, for the node (never NULL). */
static inline weft_future *weft__node_ref(weft_future *n) {
  n->refs++;
  return n;
}

/* Idle stacks of each array and spare structs kept per loop: as many as a
 * batch of fibers that is spawned, run and finished over and over (so a
 * steady state maps nothing), and at most a few MiB of touched pages. */
#define WEFT__FIBER_CACHE_MAX 1024

/* The loop's side, after the body returned (fiber.c's resume): the stack
 * and the struct go back to the module, the references go. */
void weft__fiber_reap_slow(weft_fiber *fb);
/* weft__fiber_reap_slow with its usual case inline (resume, which calls it,
 * is inlined into wake_fire's loop): a default-size stack onto the pool,
 * the struct onto the spare list, both with room, and not the last live
 * fiber; the future as weft__future_unref_norelease puts it. */
static inline void weft__fiber_reap(weft_fiber *fb) {
  fmodule *m = fb->mod;
  weft_future *f = fb->f;
  if (!(fb->stack.size == m->default_size && m->npool < m->pcap &&
        m->nspare < WEFT__FIBER_CACHE_MAX && m->live > 1)) {
    weft__fiber_reap_slow(fb);
    return;
  }
#ifdef WEFT_TSAN
  __tsan_destroy_fiber(fb->tsan);
#endif
  m->pool[m->npool++] = fb->stack;
  fb->next_spare = m->spare; /* with its node */
  m->spare = fb;
  m->nspare++;
  m->live--;
  weft__future_unref_norelease(f); /* the fiber kind has no release hook */
}

/* At a fiber's start: one that counts on a pool stack takes the last
 * idled; one that took its own at spawn (a cold one, mapped then) runs on
 * the last idled of its size if there is one (warm), which leaves its own
 * in that one's place. */
static inline void weft__fiber_bind_stack(fmodule *m, weft_fiber *fb) {
  if (fb->stack.map == NULL) {
    fb->stack = m->pool[--m->npool];
    m->owed--;
    return;
  }
  bool dflt = fb->stack.size == m->default_size;
  weft__fstack *a = dflt ? m->pool : m->idle;
  unsigned n = dflt ? m->npool : m->nidle;
  if (n == 0 || a[n - 1].size != fb->stack.size) return;
  weft__fstack t = a[n - 1];
  a[n - 1] = fb->stack;
  fb->stack = t;
}

#endif
