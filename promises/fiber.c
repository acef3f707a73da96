/* weft — fibers: a function on its own stack whose result settles a future.
 *
 * A fiber is two futures and a stack. Its own future (WEFT__K_FIBER) is
 * what spawn hands out and what the body's result settles; nobody settles
 * it by hand. Its wake node (WEFT__K_FIBER_WAKE) is the one continuation
 * it ever registers: weft_await puts the node in the awaited future's list
 * of continuations (or, for a settled future, straight on the loop's ready
 * queue), and when the node comes off the ready queue its fire hook
 * switches to the fiber. The node is reused by every await, yield and
 * sleep, and stays with the struct when the fiber finishes, for the next
 * fiber that gets the struct: steady state allocates nothing.
 *
 * Where the memory comes from, and spawning: fiber_spawn.c. The struct and
 * the per-loop module: fiber_mod_internal.h.
 *
 * Control flow: the drain of the ready queue (a weft_call_soon task) fires
 * a wake node; wake_fire resumes its fiber, then the fibers whose nodes
 * come next in the queue (a run of ready fibers is one drain entry); each
 * resume() switches to the fiber; the fiber runs until it suspends
 * (switching to the next fiber of the run if its wake is next in the
 * queue, hand_over, else back to resume's context) or its body returns (it
 * settles its future, marks itself done and switches back for good, and resume,
 * on the loop's stack, gives the stack back to the cache). A fiber thus only
 * ever runs from a deferred callback, never inline in the call that woke it.
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
#include "fiber_mod_internal.h"
#include "internal.h"

#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Wakes that did not wait (yields, awaits of settled futures) per loop
 * iteration; past it they wait behind a 0 ms sleep, which fires only after
 * the loop has polled for I/O, so a fiber awaiting settled futures in a
 * loop cannot keep I/O and timers waiting (the ready queue alone would let
 * it run on for call_soon_budget x 4096 wakes). */
#define TURN_BUDGET 1024
/* Fibers resumed per loop iteration straight from another's wake (see
 * wake_fire) before the rest go back to the ready queue's own drain, which
 * then applies its budget: the drain's figure. */
#define RUN_BUDGET 4096

static _Thread_local weft_fiber *tl_current;

/* ---- switching ------------------------------------------------------------
 * resume() runs on the loop's side, suspend() and leave() on the fiber's;
 * the san_* helpers are empty without sanitizers. */

static void san_arrive(weft_fiber *fb, void *fake) {
#ifdef WEFT_ASAN
  /* from wake_fire, the stack it reports is home; from another fiber (a
   * direct handoff) it is that fiber's, and home stays what it was */
  fmodule *m = fb->mod;
  const void *bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(fake, &bottom, &size);
  if (!m->from_fiber) m->home_bottom = bottom, m->home_size = size;
  m->from_fiber = false;
  fb->caller_bottom = m->home_bottom;
  fb->caller_size = m->home_size;
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

static void entry(void *arg);

/* Switches from `from` to `to`: at its first resume (fresh, its stack
 * bound by weft__fiber_bind_stack) straight into entry(to) on its stack,
 * else to where it suspended. */
static inline __attribute__((always_inline)) void
switch_to(weft__fctx *from, weft_fiber *to, bool fresh) {
  if (fresh)
    weft__fctx_begin(from, &to->ctx, weft__fstack_lo(&to->stack),
                     to->stack.size, entry, to);
  else
    weft__fctx_switch(from, &to->ctx);
}

/* Inlined in wake_fire, so that the switch back from the fiber lands in
 * wake_fire's loop and not in a return (see wake_fire). */
static inline __attribute__((always_inline)) void resume(weft_fiber *fb) {
  weft__fctx here;
  weft_fiber *prev = tl_current;
  bool fresh = fb->state == S_NEW;
  if (fresh) weft__fiber_bind_stack(fb->mod, fb);
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
  switch_to(&here, fb, fresh);
#ifdef WEFT_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  tl_current = prev;
  weft_fiber *back = fb->mod->back; /* fb, or one it handed over to */
  if (back->state == S_DONE) weft__fiber_reap(back);
}

/* The next entry of the ready queue if it is a fiber's wake node and the
 * run may go on (see wake_fire), taken off the queue; else NULL. */
static weft_fiber *take_next(fmodule *m, weft_loop *loop) {
  weft__fmod *fm = weft__fmod_get(loop);
  weft_future *w = fm->rq_head;
  if (w == NULL || w->kind != WEFT__K_FIBER_WAKE || ++m->run > RUN_BUDGET)
    return NULL;
  fm->rq_head = w->next;
  if (fm->rq_head == NULL) fm->rq_tail = NULL;
  w->next = NULL;
  w->refs--; /* the queue's; its fiber holds another */
  return w->u.call.arg;
}

/* fb suspends and `to`, whose wake was next in the queue, runs at once:
 * one switch instead of two through wake_fire, which `to` inherits. */
static void hand_over(weft_fiber *fb, weft_fiber *to) {
  bool fresh = to->state == S_NEW;
  if (fresh) weft__fiber_bind_stack(to->mod, to);
  to->caller = fb->caller;
  to->state = S_RUNNING;
  tl_current = to;
#ifdef WEFT_ASAN
  fb->mod->from_fiber = true;
  __sanitizer_start_switch_fiber(&fb->fake, weft__fstack_lo(&to->stack),
                                 to->stack.size);
#endif
#ifdef WEFT_TSAN
  to->caller_tsan = fb->caller_tsan;
  __tsan_switch_to_fiber(to->tsan, 0);
#endif
  switch_to(&fb->ctx, to, fresh);
#ifdef WEFT_ASAN
  san_arrive(fb, fb->fake);
#endif
}

/* The fiber's side: to the next ready fiber if its wake is next in the
 * queue, else back to wake_fire; returns once the fiber is resumed. */
static void suspend(weft_fiber *fb, uint8_t state) {
  fb->state = state;
  weft_fiber *to = take_next(fb->mod, fb->loop);
  if (to == fb) { /* its own wake: nothing ran in between */
    fb->state = S_RUNNING;
    return;
  }
  if (to != NULL) {
    hand_over(fb, to);
    return;
  }
  fb->mod->back = fb;
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

static __attribute__((noinline)) void drop_value(weft_fiber *fb) {
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
  fb->mod->back = fb;          /* wake_fire reaps it */
  san_leave(fb, NULL);         /* for ASan, NULL: this stack is finished */
  weft__fctx_exit(fb->caller); /* nothing to save: never resumed */
}

/* ---- the two kinds ------------------------------------------------------- */

/* Fibers run only from wake_fire: it notes the libev iteration once for
 * the counters that fibers and its run keep per iteration. */
static void note_iteration(fmodule *m, weft_loop *loop) {
  unsigned it = ev_iteration(loop->ev);
  if (it != m->iter) {
    m->iter = it;
    m->quick = 0;
    m->run = 0;
  }
}

/* The wake node came off the ready queue: its fiber runs, then, as long as
 * the queue's next entry is another fiber's wake node, that fiber, in
 * queue order, without going back to the drain: a run of ready fibers is
 * one deferred callback, and each fiber switches back into this loop
 * rather than into a chain of returns (which the CPU's return predictor,
 * fooled by the stack switch, mispredicts). Bounded per iteration by
 * RUN_BUDGET; past it the drain takes the rest with its own budget. */
static void wake_fire(weft_future *n) {
  weft_fiber *fb = n->u.call.arg;
  weft_loop *loop = fb->loop;
  fmodule *m = fb->mod;
  weft__fmod *fm = weft__fmod_get(loop);
  note_iteration(m, loop);
  resume(fb); /* may reap fb: m and fm are the loop's */
  weft_future *w;
  while ((w = fm->rq_head) != NULL && w->kind == WEFT__K_FIBER_WAKE &&
         ++m->run <= RUN_BUDGET) {
    fm->rq_head = w->next;
    if (fm->rq_head == NULL) fm->rq_tail = NULL;
    w->next = NULL;
    w->refs--; /* the queue's; its fiber holds another until it is reaped */
    resume(w->u.call.arg);
  }
}

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
  weft__future_enqueue(s, weft__node_ref(n));
  return sole && !fb->shielded ? weft_future_ref(s) : NULL;
}

static const weft__kind fiber_kind = {.name = "fiber", .cancel = fiber_cancel};
static const weft__kind wake_kind = {.name = "fiber_wake", .fire = wake_fire};
WEFT__KIND(WEFT__K_FIBER, fiber_kind)
WEFT__KIND(WEFT__K_FIBER_WAKE, wake_kind)

void weft_fiber_return(weft_fiber *self, void *value, weft_dtor dtor) {
  if (self == NULL) return;
  drop_value(self);
  self->is_ptr = true;
  self->p = value;
  self->dtor = dtor;
}

void weft_fiber_return_i64(weft_fiber *self, int64_t v) {
  if (self == NULL) return;
  if (WEFT__UNLIKELY(self->is_ptr)) drop_value(self); /* out of line */
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
  return ++fb->mod->quick > TURN_BUDGET; /* iteration: note_iteration */
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
    weft__future_wait(s, weft__node_ref(n));
  } else {
    weft__future_enqueue(n, weft__node_ref(n));
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
  weft__future_wait(f, weft__node_ref(n));
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

/* ---- waiting for a close ------------------------------------------------
 * The handle's close callback is taken over (the one it had runs first);
 * when the close phase calls it, the waiting fiber's node is queued: one
 * suspension, one wake, nothing allocated, nothing polled. Two fibers on
 * one handle chain: the second's record keeps the first's callback. */

static void closed_cb(weft_handle *h) {
  fmodule *m = weft__module_get(h->loop, WEFT__MOD_FIBER);
  closer **p = &m->closers;
  while ((*p)->h != h) /* there: its record set this callback */
    p = &(*p)->next;
  closer *c = *p;
  *p = c->next;
  weft_close_cb cb = c->cb;
  weft_fiber *fb = c->fb;
  weft__future_enqueue(fb->node, weft__node_ref(fb->node));
  if (cb != NULL) cb(h); /* may free h; c stays valid: fb has not run */
}

void weft__fiber_wait_closed(weft_handle *h) {
  weft_fiber *fb = tl_current;
  if (h->flags & WEFT__H_CLOSED) return;
  fmodule *m = fb->mod;
  closer c = {.next = m->closers, .h = h, .cb = h->close_cb, .fb = fb};
  m->closers = &c;
  h->close_cb = closed_cb;
  suspend(fb, S_PARK);
}
