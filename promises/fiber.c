/* weft — fibers: a function on its own stack whose result settles a future.
 *
 * A fiber is two futures and a stack. Its own future (WEFT__K_FIBER) is
 * what spawn hands out and what the body's result settles; nobody settles
 * it by hand. Its wake node (WEFT__K_FIBER_WAKE) is the one continuation
 * it ever registers: weft_await puts the node in the awaited future's list
 * of continuations (or, for a settled future, straight on the loop's ready
 * queue), and when the node comes off the ready queue its fire hook
 * switches to the fiber. The node is made once at spawn and reused by
 * every await, yield and sleep, so steady state allocates nothing; the
 * fiber struct itself lives at the top of its own stack.
 *
 * Control flow: the drain of the ready queue (a weft_call_soon task) calls
 * resume(), which switches to the fiber; the fiber runs until it suspends
 * (switching back to resume's context) or its body returns (it settles its
 * future, marks itself done and switches back for good, and resume, on the
 * loop's stack, gives the stack back to the cache). A fiber thus only ever
 * runs from a deferred callback, never inline in the call that woke it.
 *
 * Cancelling the fiber's future (fiber_cancel) raises `cancel_pending`;
 * if the fiber is waiting, its node is taken out of the awaited future's
 * continuations and queued, and the awaited future is cancelled next when
 * the node was its only consumer. The await that sees the flag clears it
 * and returns -ECANCELED.
 *
 * Sanitizers are told about every switch: ASan's start/finish_switch_fiber
 * (so it knows which stack is live) and TSan's fibers (WEFT_TSAN builds). */
#include <stdio.h>
#include <string.h>

#include "fiber_internal.h"
#include "internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Idle stacks kept per loop: as many as a batch of fibers that is spawned,
 * run and finished over and over (so a steady state maps nothing), and at
 * most a few MiB of touched pages. */
#define CACHE_MAX 1024
/* Wakes that did not wait (yields, awaits of settled futures) per loop
 * iteration; past it they wait behind a 0 ms sleep, which fires only after
 * the loop has polled for I/O, so a fiber awaiting settled futures in a
 * loop cannot keep I/O and timers waiting (the ready queue alone would let
 * it run on for call_soon_budget x 4096 wakes). */
#define TURN_BUDGET 1024

enum { S_NEW, S_RUNNING, S_AWAIT, S_YIELD, S_DONE };

struct weft_fiber {
  weft__fctx ctx;     /* the fiber's registers while it is suspended */
  weft__fctx *caller; /* resume()'s, to switch back to */
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
  char name[64];
};

/* An idle stack, kept in its own top bytes. */
typedef struct idle_stack {
  weft__fstack st;
  struct idle_stack *next;
} idle_stack;

/* The per-loop state: idle stacks (LIFO) and the live count. */
typedef struct fmodule {
  idle_stack *idle;
  unsigned nidle;
  size_t live;
  unsigned iter;  /* the libev iteration `quick` counts in */
  unsigned quick; /* wakes that did not wait, in that iteration */
} fmodule;

static _Thread_local weft_fiber *tl_current;

/* ---- the per-loop module ------------------------------------------------ */

static void mod_teardown(weft_loop *loop, void *state) {
  WEFT__UNUSED(loop);
  fmodule *m = state;
  while (m->idle != NULL) {
    idle_stack *c = m->idle;
    weft__fstack st = c->st;
    m->idle = c->next;
    weft__fstack_unmap(&st);
  }
  weft__free(m);
}

static fmodule *mod_get(weft_loop *loop) {
  fmodule *m = weft__module_get(loop, WEFT__MOD_FIBER);
  if (m != NULL) return m;
  m = weft__calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  weft__module_set(loop, WEFT__MOD_FIBER, m, mod_teardown);
  return m;
}

/* The most recently idled stack of that size (its pages are warm), or a
 * new mapping. */
static int stack_get(fmodule *m, size_t size, weft__fstack *out) {
  for (idle_stack **p = &m->idle; *p != NULL; p = &(*p)->next) {
    if ((*p)->st.size == size) {
      idle_stack *c = *p;
      *p = c->next;
      *out = c->st;
      m->nidle--;
      return 0;
    }
  }
  return weft__fstack_map(out, size);
}

static void stack_put(fmodule *m, weft__fstack *s) {
  if (m->nidle >= CACHE_MAX) {
    weft__fstack_unmap(s);
    return;
  }
  char *top = weft__fstack_lo(s) + s->size;
  idle_stack *c = (idle_stack *)(top - sizeof(idle_stack));
  c->st = *s;
  c->next = m->idle;
  m->idle = c;
  m->nidle++;
}

/* ---- switching ------------------------------------------------------------
 * resume() runs on the loop's side, suspend() and leave() on the fiber's;
 * the san_* helpers are empty without sanitizers. */

static void san_arrive(weft_fiber *fb, void *fake) {
#ifdef WEFT_ASAN
  __sanitizer_finish_switch_fiber(fake, &fb->caller_bottom, &fb->caller_size);
#else
  WEFT__UNUSED(fb);
  WEFT__UNUSED(fake);
#endif
}

static void san_leave(weft_fiber *fb, void **fake) {
#ifdef WEFT_ASAN
  __sanitizer_start_switch_fiber(fake, fb->caller_bottom, fb->caller_size);
#else
  WEFT__UNUSED(fake);
#endif
#ifdef WEFT_TSAN
  __tsan_switch_to_fiber(fb->caller_tsan, 0);
#else
  WEFT__UNUSED(fb);
#endif
}

static void reap(weft_fiber *fb);

static void resume(weft_fiber *fb) {
  weft__fctx here;
  weft_fiber *prev = tl_current;
  fb->caller = &here;
  fb->state = S_RUNNING;
  tl_current = fb;
#ifdef WEFT_ASAN
  void *fake = NULL;
  __sanitizer_start_switch_fiber(&fake, weft__fstack_lo(&fb->stack),
                                 fb->stack.size);
#endif
#ifdef WEFT_TSAN
  fb->caller_tsan = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(fb->tsan, 0);
#endif
  weft__fctx_switch(&here, &fb->ctx);
#ifdef WEFT_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  tl_current = prev;
  if (fb->state == S_DONE) reap(fb);
}

/* The fiber's side: back to whoever resumed it, until it is resumed. */
static void suspend(weft_fiber *fb, uint8_t state) {
  fb->state = state;
#ifdef WEFT_ASAN
  san_leave(fb, &fb->fake);
  weft__fctx_switch(&fb->ctx, fb->caller);
  san_arrive(fb, fb->fake);
#else
  san_leave(fb, NULL);
  weft__fctx_switch(&fb->ctx, fb->caller);
#endif
}

/* ---- results ------------------------------------------------------------- */

static void drop_value(weft_fiber *fb) {
  if (fb->is_ptr && fb->dtor != NULL) fb->dtor(fb->p);
  fb->is_ptr = false;
  fb->i = 0;
}

/* The body returned rc: settle the future (unless it was cancelled, when
 * the value is dropped). */
static void settle(weft_fiber *fb, int rc) {
  weft_future *f = fb->f;
  if (f->state != WEFT_FUTURE_PENDING || rc < 0) {
    drop_value(fb);
    if (f->state == WEFT_FUTURE_PENDING)
      weft__future_finish(f, WEFT_FUTURE_REJECTED, rc);
    return;
  }
  if (!fb->is_ptr) {
    weft__future_finish(f, WEFT_FUTURE_FULFILLED, fb->i);
    return;
  }
  f->v.p = fb->p;
  f->flags = (uint8_t)((f->flags & ~WEFT__F_VALUE) | WEFT__F_PTR);
  f->u.dtor = fb->dtor;
  fb->is_ptr = false;
  weft__future_settle(f, WEFT_FUTURE_FULFILLED);
}

static void entry(void *arg) {
  weft_fiber *fb = arg;
  san_arrive(fb, NULL);
  int rc = fb->fn(fb, fb->arg);
  settle(fb, rc > 0 ? 0 : rc);
  fb->state = S_DONE;
  san_leave(fb, NULL); /* for ASan, NULL: this stack is finished */
  weft__fctx_switch(&fb->ctx, fb->caller);
  __builtin_unreachable();
}

/* The loop's side, after the body returned: the stack goes back to the
 * cache (fb lives on it, so copy first), the references go. */
static void reap(weft_fiber *fb) {
  weft_loop *loop = fb->loop;
  weft_future *f = fb->f, *n = fb->node;
  weft__fstack st = fb->stack;
#ifdef WEFT_TSAN
  __tsan_destroy_fiber(fb->tsan);
#endif
  fmodule *m = fb->mod;
  stack_put(m, &st);
  m->live--;
  weft_future_unref(n);
  weft_future_unref(f);
  weft__req_done(loop);
}

/* ---- the two kinds --------------------------------------------------------
 */

/* The wake node came off the ready queue. */
static void wake_fire(weft_future *n) { resume(n->u.call.arg); }

/* The fiber's future was cancelled (see the top of the file). */
static weft_future *fiber_cancel(weft_future *f) {
  weft_fiber *fb = f->u.call.arg;
  fb->cancelled = true;
  fb->cancel_pending = true;
  weft_future *n = fb->node, *s = n->src;
  if (fb->state != S_AWAIT || s == NULL || s->state != WEFT_FUTURE_PENDING)
    return NULL; /* running, or its wake is already queued */
  bool sole = weft__future_sole(s, n);
  weft__future_unwait(s, n); /* the fiber still holds n */
  weft__future_enqueue(s, weft_future_ref(n));
  return sole && !fb->shielded ? weft_future_ref(s) : NULL;
}

static const weft__kind fiber_kind = {.name = "fiber", .cancel = fiber_cancel};
static const weft__kind wake_kind = {.name = "fiber_wake", .fire = wake_fire};
WEFT__KIND(WEFT__K_FIBER, fiber_kind)
WEFT__KIND(WEFT__K_FIBER_WAKE, wake_kind)

/* ---- spawning --------------------------------------------------------------
 */

/* Lays the fiber struct out at the top of its stack. */
static weft_fiber *place(const weft__fstack *st) {
  char *lo = weft__fstack_lo(st);
  uintptr_t at =
      ((uintptr_t)lo + st->size - sizeof(weft_fiber)) & ~(uintptr_t)63;
  weft_fiber *fb = (weft_fiber *)at;
  /* field by field: a memset of the whole struct (name included) was a
   * third of a spawn */
  fb->caller = NULL;
  fb->cancelled = fb->cancel_pending = fb->is_ptr = fb->shielded = false;
  fb->p = NULL;
  fb->i = 0;
  fb->dtor = NULL;
#ifdef WEFT_ASAN
  fb->fake = NULL;
  fb->caller_bottom = NULL;
  fb->caller_size = 0;
#endif
#ifdef WEFT_TSAN
  fb->tsan = fb->caller_tsan = NULL;
#endif
  fb->stack = *st;
  weft__fctx_make(&fb->ctx, lo, (size_t)((char *)fb - lo), entry, fb);
  return fb;
}

static int alloc_parts(weft_loop *loop, size_t size, weft_future **f,
                       weft_future **n, weft__fstack *st) {
  fmodule *m = mod_get(loop);
  if (m == NULL) return -ENOMEM;
  if (weft__future_alloc(loop, WEFT__K_FIBER, f) != 0) return -ENOMEM;
  if (weft__future_alloc(loop, WEFT__K_FIBER_WAKE, n) != 0) {
    weft_future_unref(*f);
    return -ENOMEM;
  }
  if (stack_get(m, size, st) != 0) {
    weft_future_unref(*n);
    weft_future_unref(*f);
    return -ENOMEM;
  }
  return 0;
}

int weft_fiber_spawn(weft_loop *loop, weft_fiber_fn fn, void *arg,
                     const weft_fiber_options *opts, weft_future **out) {
  if (loop == NULL || fn == NULL) return -EINVAL;
  size_t size = weft__fstack_round(opts != NULL ? opts->stack_size : 0);
  if (size == 0) return -EINVAL;
  weft_future *f, *n;
  weft__fstack st;
  int err = alloc_parts(loop, size, &f, &n, &st);
  if (err != 0) return err;
  weft_fiber *fb = place(&st);
  fb->loop = loop;
  fb->mod = weft__module_get(loop, WEFT__MOD_FIBER);
  fb->f = f;
  fb->node = n;
  fb->fn = fn;
  fb->arg = arg;
  fb->state = S_NEW;
  const char *name = opts != NULL && opts->name != NULL ? opts->name : "fiber";
  size_t len = strnlen(name, sizeof fb->name - 1);
  memcpy(fb->name, name, len);
  fb->name[len] = '\0';
#ifdef WEFT_TSAN
  fb->tsan = __tsan_create_fiber(0);
#endif
  f->u.call.arg = fb;
  n->u.call.arg = fb;
  weft__future_enqueue(n, weft_future_ref(n)); /* it starts from the queue */
  fb->mod->live++;
  weft__req_start(loop);
  if (out != NULL) *out = weft_future_ref(f);
  return 0;
}

int weft_fiber_run(weft_loop *loop, weft_fiber_fn fn, void *arg,
                   const weft_fiber_options *opts, int64_t *result) {
  if (result != NULL) *result = 0;
  if (loop == NULL || fn == NULL) return -EINVAL;
  if (loop->running) return -EBUSY;
  weft_future *f;
  int err = weft_fiber_spawn(loop, fn, arg, opts, &f);
  if (err != 0) return err;
  while (f->state == WEFT_FUTURE_PENDING) {
    err = weft_loop_run(loop, WEFT_RUN_ONCE);
    if (err < 0) break;
  }
  if (f->state != WEFT_FUTURE_PENDING) {
    err = weft_future_error(f);
    if (err == 0 && result != NULL) *result = weft_future_value_i64(f);
  }
  weft_future_unref(f);
  return err;
}

void weft_fiber_return(weft_fiber *self, void *value, weft_dtor dtor) {
  if (self == NULL) return;
  drop_value(self);
  self->is_ptr = true;
  self->p = value;
  self->dtor = dtor;
}

void weft_fiber_return_i64(weft_fiber *self, int64_t v) {
  if (self == NULL) return;
  drop_value(self);
  self->i = v;
}

/* ---- inside a fiber ---------------------------------------------------- */

/* -ECANCELED once per cancellation, else 0. */
static int take_cancel(weft_fiber *fb) {
  if (!fb->cancel_pending) return 0;
  fb->cancel_pending = false;
  return -ECANCELED;
}

/* True once this loop iteration has had TURN_BUDGET wakes that did not
 * wait. */
static bool turn_spent(weft_fiber *fb) {
  fmodule *m = fb->mod;
  unsigned it = ev_iteration(fb->loop->ev);
  if (it != m->iter) {
    m->iter = it;
    m->quick = 0;
  }
  return ++m->quick > TURN_BUDGET;
}

/* True when nothing but this fiber could run before it resumes: no
 * continuation is in the ready queue and no other deferred callback waits
 * (the fiber runs from the drain task, already taken off the deferred
 * queue). Going to the back of an empty queue is then going to its front:
 * the drain would pop the fiber's node next and switch straight back, two
 * switches that nothing can observe, so the yield is made in place. */
static bool alone(const weft_fiber *fb) {
  const weft__fmod *fm = weft__module_get(fb->loop, WEFT__MOD_FUTURE);
  return fm->rq_head == NULL && fb->loop->cs_count == 0;
}

/* Suspends until the loop's queue has run what was ahead of the fiber
 * (and, past the turn's budget, until the loop has polled). */
static int yield_now(weft_fiber *fb) {
  weft_future *n = fb->node, *s;
  bool spent = turn_spent(fb);
  if (!spent && alone(fb)) return take_cancel(fb);
  if (spent && weft_sleep(fb->loop, 0, &s) == 0) {
    n->src = s; /* the sleep's reference */
    weft__future_wait(s, weft_future_ref(n));
  } else {
    weft__future_enqueue(n, weft_future_ref(n));
  }
  suspend(fb, S_YIELD);
  s = n->src;
  n->src = NULL;
  weft_future_unref(s);
  return take_cancel(fb);
}

int weft_await(weft_future *f) {
  weft_fiber *fb = tl_current;
  if (fb == NULL) return -EPERM;
  if (f == NULL || f->loop != fb->loop) return -EINVAL;
  if (f == fb->f) return -EDEADLK;
  if (fb->cancel_pending) {
    /* cancelled while not waiting: this await takes it, and cancels f
     * as it would have, were the fiber waiting on it */
    if (f->state == WEFT_FUTURE_PENDING && f->waiters == NULL && !fb->shielded)
      weft_future_cancel(f);
    weft__observe(f);
    return yield_now(fb); /* -ECANCELED: the flag is still up */
  }
  if (f->state != WEFT_FUTURE_PENDING) { /* still yields, see yield_now */
    weft__observe(f);
    int err = yield_now(fb);
    return err != 0 ? err : weft_future_error(f);
  }
  weft_future *n = fb->node;
  n->src = weft_future_ref(f);
  weft__future_wait(f, weft_future_ref(n));
  suspend(fb, S_AWAIT);
  n->src = NULL;
  weft_future_unref(f); /* the caller still holds f */
  int err = take_cancel(fb);
  return err != 0 ? err : weft_future_error(f);
}

int weft_await_take_i64(weft_future *f, int64_t *v) {
  if (v != NULL) *v = 0;
  int err = weft_await(f);
  if (err == 0 && v != NULL) *v = weft_future_value_i64(f);
  weft_future_unref(f);
  return err;
}

int weft_fiber_yield(void) {
  weft_fiber *fb = tl_current;
  if (fb == NULL) return -EPERM;
  return yield_now(fb);
}

int weft_fiber_sleep(uint64_t ms) {
  weft_fiber *fb = tl_current;
  if (fb == NULL) return -EPERM;
  weft_future *s;
  int err = weft_sleep(fb->loop, ms, &s);
  if (err != 0) return err;
  err = weft_await(s);
  weft_future_unref(s);
  return err;
}

weft_fiber *weft_fiber_current(void) { return tl_current; }

bool weft_in_fiber(void) { return tl_current != NULL; }

bool weft_fiber_cancelled(const weft_fiber *f) {
  return f != NULL && f->cancelled;
}

const char *weft_fiber_get_name(const weft_fiber *f) {
  return f != NULL ? f->name : NULL;
}

weft_loop *weft_fiber_loop(const weft_fiber *f) {
  return f != NULL ? f->loop : NULL;
}

weft_future *weft_fiber_future(const weft_fiber *f) {
  return f != NULL ? f->f : NULL;
}

void *weft__fiber_guard(const weft_fiber *f) { return f->stack.map; }

int weft__await_shielded(weft_future *f) {
  weft_fiber *fb = tl_current;
  if (fb == NULL) return -EPERM;
  fb->shielded = true;
  int err = weft_await(f);
  fb->shielded = false;
  return err;
}

void weft__fiber_recancel(weft_fiber *f) {
  if (f != NULL && f->cancelled) f->cancel_pending = true;
}
