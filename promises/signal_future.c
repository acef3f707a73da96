/* weft — a signal as a future: a oneshot signal handle of its own per
 * future, so several pending futures for one signal each get the next
 * delivery. Built on the public weft_signal_* API. The handle's close
 * callback is the one place that frees the memory. */
#include <signal.h>

#include "internal.h"
#include "weft/signal.h"

typedef struct sig_future {
  weft_signal s;  /* first: the handle pointer is the struct's */
  weft_future *f; /* the producer's reference; NULL once dropped */
} sig_future;

static void sf_closed(weft_handle *h) {
  sig_future *x = (sig_future *)(void *)h;
  weft_future_unref(x->f); /* NULL once fired or after a failed start */
  weft__free(x);
}

static void sf_fired(weft_signal *s, int signum) {
  sig_future *x = (sig_future *)(void *)s;
  weft_future *f = x->f;
  x->f = NULL;
  weft_future_resolve_i64(f, signum);
  weft_future_unref(f);
  weft_close(&x->s.base, sf_closed);
}

static void sf_cancel(weft_future *f, void *arg) {
  WEFT__UNUSED(f);
  sig_future *x = arg;
  weft_signal_stop(&x->s);
  weft_close(&x->s.base, sf_closed); /* -EINVAL if already closing */
}

int weft_signal_next_future(weft_loop *loop, int signum, weft_future **out) {
  if (loop == NULL || out == NULL || signum <= 0 || signum >= NSIG ||
      signum == SIGKILL || signum == SIGSTOP)
    return -EINVAL;
  sig_future *x = weft__malloc(sizeof *x);
  if (x == NULL) return -ENOMEM;
  int err = weft_future_new_op(loop, "weft_signal_next_future", &x->f);
  if (err != 0) {
    weft__free(x);
    return err;
  }
  weft_signal_init(loop, &x->s);
  err = weft_signal_start_oneshot(&x->s, sf_fired, signum);
  if (err != 0) {
    weft_future_unref(x->f); /* pending, never seen: freed quietly */
    x->f = NULL;
    weft_close(&x->s.base, sf_closed);
    return err;
  }
  weft_future_on_cancel(x->f, sf_cancel, x);
  *out = weft_future_ref(x->f);
  return 0;
}
