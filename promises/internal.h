/* weft — what the promises/ files share. Never installed. */
#ifndef WEFT_PROMISES_INTERNAL_H
#define WEFT_PROMISES_INTERNAL_H

#include "core/internal.h"
#include "weft/future.h"
#include "weft/sync.h"

/* What a future is, which decides how its fields are read (see future.c). */
enum {
  K_PLAIN = 0, /* made by weft_future_new: u.h = producer's cancel hook */
  K_THEN,      /* derived: src = input, u.h = (fn, arg) */
  K_CATCH,
  K_FINALLY,
  K_BOTH,      /* as K_THEN, v.fn2 = the error handler while pending */
  K_ADOPT,     /* waits on src and takes its outcome */
  K_CB,        /* on_settled node: src = watched future, u.h = (cb, arg) */
  K_NODE,      /* combinator input node: src = input, u.h.arg = aggregate,
                  waiters = next node of the aggregate's chain */
  K_ALL,       /* aggregates: src = chain of K_NODE, v.i = remaining,
                  u.h.arg = input count */
  K_ALL_SETTLED,
  K_ANY,
  K_RACE,
  K_TIMEOUT,   /* aggregate of one node; u.h.arg = its timer */
  K_SLEEP,     /* u.h.arg = its timer */
};

enum {
  F_PTR = 1u << 0,      /* the value is a pointer */
  F_OBSERVED = 1u << 1, /* someone looked at the outcome */
  F_RUNNING = 1u << 2,  /* its continuation is running (may settle it) */
  F_REMOVED = 1u << 3,  /* on_settled node removed: do not call */
  F_F64 = 1u << 4,      /* the value is a double */
  F_VALUE = F_PTR | F_F64,
};

typedef void (*weft__fn)(void);

struct weft_future {
  weft_loop *loop;
  struct weft_future *next;    /* in a waiter list, ready queue, free list,
                                  or a primitive's wait list */
  struct weft_future *waiters; /* continuations, newest first (pending) */
  struct weft_future *src;     /* see the kinds above; a reference */
  union {
    void *p;
    int64_t i;
    double d;
    weft_then_fn fn2;
  } v;
  union {
    struct {
      weft__fn fn;
      void *arg;
    } h;             /* while pending */
    weft_dtor dtor;  /* once fulfilled with a pointer */
  } u;
  uint32_t refs;
  uint8_t state; /* weft_future_state; a rejection's code lives in v.i */
  uint8_t kind;
  uint8_t flags;
};

/* The loop's futures state (future.c): the free list, the ready queue. */
typedef struct weft__fmod {
  weft_loop *loop;
  weft_future *free;              /* free list through `next` */
  void *slabs;                    /* slabs of futures, freed at teardown */
  weft_future *rq_head, *rq_tail; /* ready continuations */
  bool scheduled;                 /* a drain task is queued */
  void *timers;                   /* timed.c: every timer holder */
  void *timers_free;              /* timed.c: the idle ones */
  weft_unhandled_cb unhandled;
  void *unhandled_arg;
} weft__fmod;

/* Draws a zeroed pending future of `kind` with one reference; the slow
 * path creates the module state or refills the free list. */
int weft__future_alloc_slow(weft_loop *loop, uint8_t kind, weft_future **out);
static inline int weft__future_alloc(weft_loop *loop, uint8_t kind,
                                     weft_future **out) {
  weft__fmod *m = (weft__fmod *)weft__module_get(loop, WEFT__MOD_FUTURE);
  if (WEFT__UNLIKELY(m == NULL || m->free == NULL))
    return weft__future_alloc_slow(loop, kind, out);
  weft_future *f = m->free;
  m->free = f->next;
  *f = (weft_future){.loop = loop, .refs = 1, .kind = kind};
  *out = f;
  return 0;
}
/* Settles f (pending) with (state, value) and queues its continuations. */
void weft__future_settle(weft_future *f, uint8_t state);
/* f takes src's outcome (src settled). */
void weft__future_pass(weft_future *f, weft_future *src);
/* Queues w (one reference given) to run soon: f has settled. */
void weft__future_enqueue(weft_future *f, weft_future *w);
/* Registers w (one reference given) as a continuation of f. */
static inline void weft__future_wait(weft_future *f, weft_future *w) {
  f->flags |= F_OBSERVED;
  if (f->state != WEFT_FUTURE_PENDING) {
    weft__future_enqueue(f, w);
    return;
  }
  w->next = f->waiters;
  f->waiters = w;
}
/* Removes w from f's continuations (drops the list's reference to w). */
bool weft__future_unwait(weft_future *f, weft_future *w);
/* True if w is f's only registered continuation. */
static inline bool weft__future_sole(const weft_future *f, const weft_future *w) {
  return f->waiters == w && w->next == NULL;
}
/* Called by future.c when an aggregate node fires / an aggregate cancels. */
int weft__ready_mark_removed(weft_future *f, weft_future_cb cb, void *arg);
void weft__agg_fire(weft_future *node);
void weft__agg_cancel(weft_future *agg);
void weft__agg_detach(weft_future *agg);
void weft__timed_cancel(weft_future *f);
/* Builds an aggregate of `kind` over fs (see combinators.c). */
int weft__gather(weft_loop *loop, weft_future *const *fs, size_t n,
                 uint8_t kind, weft_future **out);
/* The loop's state, which must exist (a future was allocated). */
static inline weft__fmod *weft__fmod_get(weft_loop *loop) {
  return (weft__fmod *)weft__module_get(loop, WEFT__MOD_FUTURE);
}

/* ---- wait lists of the async primitives (sync.c) -------------------------
 * A FIFO of pending K_PLAIN futures through their `next` field; the list
 * holds a reference to each, and each one's cancel hook takes it out. */
typedef struct weft__waitq {
  weft_future *head, *tail;
} weft__waitq;

/* A new waiter at the tail; *out gets the caller's reference. */
int weft__waitq_add(weft_loop *loop, weft__waitq *q, weft_future **out);
/* Appends an existing pending waiter (taking over the list reference). */
void weft__waitq_push(weft__waitq *q, weft_future *f);
/* The oldest waiter, with the list's reference, or NULL. */
weft_future *weft__waitq_pop(weft__waitq *q);
/* Fulfils (int64 0) the oldest waiter still pending; false if none. */
bool weft__waitq_wake(weft__waitq *q);
/* Rejects every waiter with err and empties the list. */
void weft__waitq_fail_all(weft__waitq *q, int err);
/* A future already fulfilled with int64 0. */
int weft__future_done(weft_loop *loop, weft_future **out);

#endif
