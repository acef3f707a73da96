/* weft — fiber conveniences over the primitives' futures: each call makes
 * the future, awaits it and drops it (include/weft/fiber.h, "one-call
 * forms"). Nothing here allocates beyond the future form it wraps. */
#include "fiber_internal.h"
#include "internal.h"

/* True when f was fulfilled although the await returned -ECANCELED: the
 * fiber's cancellation arrived after f settled, before the fiber resumed. */
static bool done_anyway(int err, const weft_future *f) {
  return err == -ECANCELED && weft_future_get_state(f) == WEFT_FUTURE_FULFILLED;
}

int weft_fiber_lock_acquire(weft_lock *lock) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int err = weft_lock_acquire(lock, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) weft_lock_release(lock); /* granted: give back */
  weft_future_unref(f);
  return err;
}

int weft_fiber_semaphore_acquire(weft_semaphore *sem) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int err = weft_semaphore_acquire(sem, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) weft_semaphore_release(sem); /* give it back */
  weft_future_unref(f);
  return err;
}

int weft_fiber_queue_put(weft_queue *q, void *item) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int err = weft_queue_put(q, item, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) err = 0; /* the item is in: that counts */
  weft_future_unref(f);
  return err;
}

int weft_fiber_queue_get(weft_queue *q, void **item) {
  if (item != NULL) *item = NULL;
  if (!weft_in_fiber()) return -EPERM;
  if (item == NULL) return -EINVAL;
  weft_future *f;
  int err = weft_queue_get(q, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) err = 0; /* the item was taken: hand it out */
  if (err == 0) *item = weft_future_value(f);
  weft_future_unref(f);
  return err;
}

int weft_fiber_create_task(weft_fiber_fn fn, void *arg, weft_future **out) {
  if (out != NULL) *out = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  return weft_fiber_spawn(weft_fiber_loop(self), fn, arg, NULL, out);
}

int weft_fiber_gather(weft_future **fs, size_t n) {
  if (!weft_in_fiber()) return -EPERM;
  if (fs == NULL && n > 0) return -EINVAL;
  int first = 0;
  bool cancelled = false;
  for (size_t i = 0; i < n; i++) {
    if (fs[i] == NULL) continue;
    if (cancelled) {
      weft_future_cancel(fs[i]);
    } else {
      int err = weft_await(fs[i]);
      if (err == -ECANCELED && weft_fiber_cancelled(weft_fiber_current())) {
        cancelled = true, first = -ECANCELED;
        weft_future_cancel(fs[i]);
      } else if (err != 0 && first == 0) {
        first = err;
      }
    }
    weft_future_unref(fs[i]);
    fs[i] = NULL;
  }
  return first;
}
