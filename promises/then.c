/* weft — the consumer side: then, catch, finally, then2, adopt, on_settled,
 * and the kinds behind them.
 *
 * A derived future is itself the continuation node: it sits in its input's
 * list of continuations (which holds a reference to it) and holds a
 * reference to its input in `src`; u.call is its (fn, arg), and v.fn2 the
 * error handler of then2 while pending. An on_settled node (WEFT__K_CB) is the
 * same, with a weft_future_cb. */
#include "internal.h"

/* ---- firing ----------------------------------------------------------------
 */

/* A derived future no longer needs its input once settled, unless it
 * borrows the input's pointer value. */
static void drop_src(weft_future *w) {
  weft_future *s = w->src;
  if (s == NULL || w->state == WEFT_FUTURE_PENDING)
    return; /* pending: it adopted s */
  if (w->state == WEFT_FUTURE_FULFILLED && (w->flags & WEFT__F_PTR) &&
      s->state == WEFT_FUTURE_FULFILLED && s->v.p == w->v.p)
    return;
  w->src = NULL;
  weft_future_unref(s);
}

/* True if w (off the ready queue) is still to be decided by its input. */
static bool ready(weft_future *w) {
  if (w->state != WEFT_FUTURE_PENDING || w->src == NULL) return false;
  weft__observe(w->src);
  return true;
}

static bool input_ok(const weft_future *w) {
  return w->src->state == WEFT_FUTURE_FULFILLED;
}

static weft_then_fn fn_of(const weft_future *w) {
  return (weft_then_fn)w->u.call.fn;
}

/* Runs fn (if any) on w's input, then settles w as fn said (unless fn did,
 * or adopted a future). The future's reference to its input moves into `in`
 * for the call (so `in` stays valid even if the continuation adopts another
 * future), and afterwards is kept only if the future borrows the input's
 * pointer value. An error handler (`recover`: catch, then2's on_err) that
 * returns 0 and leaves `out` alone recovers: w is fulfilled with int64 0
 * (Promises/A+ onRejected returning undefined); any other continuation
 * that does so passes `in` through. */
static void react(weft_future *w, weft_then_fn fn, weft_future *out,
                  bool recover) {
  weft_future *in = w->src;
  int rc = 0;
  if (fn != NULL) {
    w->src = NULL;
    w->flags |= WEFT__F_RUNNING;
    rc = fn(in, out, w->u.call.arg);
    w->flags &= (uint8_t)~WEFT__F_RUNNING;
    if (w->kind == WEFT__K_ADOPT) { /* it holds the adopted future instead */
      weft_future_unref(in);
      return;
    }
    w->src = in;
    if (w->state != WEFT_FUTURE_PENDING) { /* settled by the continuation */
      drop_src(w);
      return;
    }
  }
  if (rc < 0)
    weft__future_finish(w, WEFT_FUTURE_REJECTED, rc);
  else if (recover)
    weft__future_finish(w, WEFT_FUTURE_FULFILLED, 0);
  else
    weft__future_pass(w, in);
  drop_src(w);
}

static void then_fire(weft_future *w) {
  if (ready(w)) react(w, input_ok(w) ? fn_of(w) : NULL, w, false);
}

static void catch_fire(weft_future *w) {
  if (!ready(w)) return;
  bool ok = input_ok(w);
  react(w, ok ? NULL : fn_of(w), w, !ok);
}

static void finally_fire(weft_future *w) {
  if (ready(w)) react(w, fn_of(w), NULL, false);
}

static void both_fire(weft_future *w) {
  if (!ready(w)) return;
  weft_then_fn fn = input_ok(w) ? fn_of(w) : w->v.fn2;
  react(w, fn, w, fn != NULL && !input_ok(w));
}

static void adopt_fire(weft_future *w) {
  if (!ready(w)) return;
  weft__future_pass(w, w->src);
  drop_src(w);
}

static void cb_fire(weft_future *w) {
  if (!(w->flags & WEFT__F_REMOVED))
    ((weft_future_cb)w->u.call.fn)(w->src, w->u.call.arg);
}

/* ---- cancelling ------------------------------------------------------------
 */

/* A cancelled derived future lets go of its input; the input is cancelled
 * next (returned with a reference) if w was its only consumer. */
static weft_future *derived_cancel(weft_future *w) {
  weft_future *s = w->src, *next = NULL;
  if (s == NULL) return NULL;
  w->src = NULL;
  if (s->state == WEFT_FUTURE_PENDING) {
    bool sole = weft__future_sole(s, w);
    weft__future_unwait(s, w); /* the caller still holds w */
    if (sole) next = weft_future_ref(s);
  }
  weft_future_unref(s);
  return next;
}

/* a derived future is decided by its continuation, which may also settle
 * it by hand while it runs */
#define DERIVED_KIND(kname, fire_fn)                                           \
  {                                                                            \
    .name = kname, .fire = fire_fn, .cancel = derived_cancel,                  \
    .by_hand = WEFT__BY_CONTINUATION                                           \
  }

static const weft__kind then_kind = DERIVED_KIND("then", then_fire);
static const weft__kind catch_kind = DERIVED_KIND("catch", catch_fire);
static const weft__kind finally_kind = DERIVED_KIND("finally", finally_fire);
static const weft__kind both_kind = DERIVED_KIND("then2", both_fire);
/* adopting: only its source decides it */
static const weft__kind adopt_kind = {
    .name = "adopt", .fire = adopt_fire, .cancel = derived_cancel};
static const weft__kind cb_kind = {.name = "on_settled", .fire = cb_fire};
WEFT__KIND(WEFT__K_THEN, then_kind)
WEFT__KIND(WEFT__K_CATCH, catch_kind)
WEFT__KIND(WEFT__K_FINALLY, finally_kind)
WEFT__KIND(WEFT__K_BOTH, both_kind)
WEFT__KIND(WEFT__K_ADOPT, adopt_kind)
WEFT__KIND(WEFT__K_CB, cb_kind)

/* ---- the API ---------------------------------------------------------------
 */

static int derive(weft_future *f, uint8_t kind, weft_then_fn fn,
                  weft_then_fn fn2, void *arg, weft_future **out) {
  if (f == NULL) return -EINVAL;
  weft_future *d;
  int err = weft__future_alloc(f->loop, kind, &d);
  if (err != 0) return err;
  f->refs++;
  d->src = f;
  d->u.call.fn = (weft__fn)fn;
  d->u.call.arg = arg;
  d->v.fn2 = fn2;
  if (out != NULL) { /* the caller's reference; the list has the first */
    d->refs++;
    *out = d;
  }
  weft__future_wait(f, d);
  return 0;
}

int weft_future_then(weft_future *f, weft_then_fn fn, void *arg,
                     weft_future **out) {
  if (fn == NULL) return -EINVAL;
  return derive(f, WEFT__K_THEN, fn, NULL, arg, out);
}

int weft_future_catch(weft_future *f, weft_then_fn fn, void *arg,
                      weft_future **out) {
  if (fn == NULL) return -EINVAL;
  return derive(f, WEFT__K_CATCH, fn, NULL, arg, out);
}

int weft_future_finally(weft_future *f, weft_then_fn fn, void *arg,
                        weft_future **out) {
  if (fn == NULL) return -EINVAL;
  return derive(f, WEFT__K_FINALLY, fn, NULL, arg, out);
}

int weft_future_then2(weft_future *f, weft_then_fn on_ok, weft_then_fn on_err,
                      void *arg, weft_future **out) {
  if (on_ok == NULL && on_err == NULL) return -EINVAL;
  return derive(f, WEFT__K_BOTH, on_ok, on_err, arg, out);
}

static int adopt_check(weft_future *out, weft_future *src) {
  if (out == NULL || src == NULL || out->loop != src->loop) return -EINVAL;
  if (out->state != WEFT_FUTURE_PENDING) return -EALREADY;
  /* a future with a cancel hook belongs to its producer */
  if (weft__kind_of(out)->by_hand == WEFT__BY_PRODUCER &&
      out->u.hook.fn != NULL)
    return -EBUSY;
  return weft__settle_by_hand(out);
}

int weft_future_adopt(weft_future *out, weft_future *src) {
  if (out != NULL && out == src) {
    /* Promises/A+ 2.3.1: a promise resolved with itself is rejected */
    if (adopt_check(out, out) == 0) weft_future_reject(out, -EDEADLK);
    return -EDEADLK;
  }
  int err = adopt_check(out, src);
  if (err != 0) {
    weft_future_unref(src);
    return err;
  }
  weft_future *old = out->src; /* NULL while its continuation runs */
  out->kind = WEFT__K_ADOPT;
  out->src = src; /* the caller's reference, consumed */
  weft__future_wait(src, weft_future_ref(out));
  weft_future_unref(old);
  return 0;
}

int weft_future_on_settled(weft_future *f, weft_future_cb cb, void *arg) {
  if (f == NULL || cb == NULL) return -EINVAL;
  weft_future *n;
  int err = weft__future_alloc(f->loop, WEFT__K_CB, &n);
  if (err != 0) return err;
  n->src = weft_future_ref(f);
  n->u.call.fn = (weft__fn)cb;
  n->u.call.arg = arg;
  weft__future_wait(f, n);
  return 0;
}

/* on_settled nodes of f already in the ready queue are marked, not moved. */
static int mark_removed(weft_future *f, weft_future_cb cb, void *arg) {
  weft__fmod *m = weft__fmod_get(f->loop);
  int n = 0;
  for (weft_future *w = m->rq_head; w != NULL; w = w->next) {
    if (w->kind == WEFT__K_CB && w->src == f && !(w->flags & WEFT__F_REMOVED) &&
        w->u.call.fn == (weft__fn)cb && w->u.call.arg == arg) {
      w->flags |= WEFT__F_REMOVED;
      n++;
    }
  }
  return n;
}

int weft_future_off_settled(weft_future *f, weft_future_cb cb, void *arg) {
  if (f == NULL || cb == NULL) return -EINVAL;
  int n = 0;
  for (weft_future **p = &f->waiters; *p != NULL;) {
    weft_future *w = *p;
    if (w->kind == WEFT__K_CB && w->u.call.fn == (weft__fn)cb &&
        w->u.call.arg == arg) {
      *p = w->next;
      w->next = NULL;
      weft_future_unref(w);
      n++;
    } else {
      p = &w->next;
    }
  }
  return n + mark_removed(f, cb, arg);
}
