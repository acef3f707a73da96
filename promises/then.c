/* weft — the consumer side: then, catch, finally, then2, adopt, on_settled.
 *
 * A derived future is itself the continuation node: it sits in its input's
 * list of continuations (which holds a reference to it) and holds a
 * reference to its input (see internal.h for which field means what). */
#include "internal.h"

static int derive(weft_future *f, uint8_t kind, weft_then_fn fn,
                  weft_then_fn fn2, void *arg, weft_future **out) {
  if (f == NULL) return -EINVAL;
  weft_future *d;
  int err = weft__future_alloc(f->loop, kind, &d);
  if (err != 0) return err;
  f->refs++;
  d->src = f;
  d->u.h.fn = (weft__fn)fn;
  d->u.h.arg = arg;
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
  return derive(f, K_THEN, fn, NULL, arg, out);
}

int weft_future_catch(weft_future *f, weft_then_fn fn, void *arg,
                      weft_future **out) {
  if (fn == NULL) return -EINVAL;
  return derive(f, K_CATCH, fn, NULL, arg, out);
}

int weft_future_finally(weft_future *f, weft_then_fn fn, void *arg,
                        weft_future **out) {
  if (fn == NULL) return -EINVAL;
  return derive(f, K_FINALLY, fn, NULL, arg, out);
}

int weft_future_then2(weft_future *f, weft_then_fn on_ok, weft_then_fn on_err,
                      void *arg, weft_future **out) {
  if (on_ok == NULL && on_err == NULL) return -EINVAL;
  return derive(f, K_BOTH, on_ok, on_err, arg, out);
}

static int adopt_check(weft_future *out, weft_future *src) {
  if (out == NULL || src == NULL || out->loop != src->loop) return -EINVAL;
  if (out->state != WEFT_FUTURE_PENDING) return -EALREADY;
  /* a future with a cancel hook belongs to its producer */
  if (out->kind == K_PLAIN) return out->u.h.fn == NULL ? 0 : -EBUSY;
  if (out->kind >= K_THEN && out->kind <= K_BOTH && (out->flags & F_RUNNING))
    return 0;
  return -EBUSY;
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
  out->kind = K_ADOPT;
  out->src = src; /* the caller's reference, consumed */
  weft__future_wait(src, weft_future_ref(out));
  weft_future_unref(old);
  return 0;
}

int weft_future_on_settled(weft_future *f, weft_future_cb cb, void *arg) {
  if (f == NULL || cb == NULL) return -EINVAL;
  weft_future *n;
  int err = weft__future_alloc(f->loop, K_CB, &n);
  if (err != 0) return err;
  n->src = weft_future_ref(f);
  n->u.h.fn = (weft__fn)cb;
  n->u.h.arg = arg;
  weft__future_wait(f, n);
  return 0;
}

int weft_future_off_settled(weft_future *f, weft_future_cb cb, void *arg) {
  if (f == NULL || cb == NULL) return -EINVAL;
  int n = 0;
  for (weft_future **p = &f->waiters; *p != NULL;) {
    weft_future *w = *p;
    if (w->kind == K_CB && w->u.h.fn == (weft__fn)cb && w->u.h.arg == arg) {
      *p = w->next;
      w->next = NULL;
      weft_future_unref(w);
      n++;
    } else {
      p = &w->next;
    }
  }
  return n + weft__ready_mark_removed(f, cb, arg);
}
