/* weft — a non-loop thread blocks until a future settles
 * (weft_future_wait).
 *
 * The future belongs to its loop's thread, so the waiting thread never
 * touches it while it waits. It fills a waiter and posts it to the loop
 * (weft_call_soon_threadsafe); on the loop thread the waiter registers an
 * on_settled callback on the future, which, when it runs, stores the answer
 * in the waiter's atomic `result` (compare-and-swap from W_PENDING) and
 * wakes the thread with futex(2), which the thread sleeps on. No mutex: a
 * woken thread does not then contend for a lock the loop still holds.
 *
 * References to the waiter (an atomic count), and which thread owns each:
 *  - the thread's own, from the call to its return;
 *  - the loop's, from the post until the loop has answered or let go: it
 *    travels register -> (on_settled registration) -> fire, withdraw or the
 *    loop's teardown, all on the loop thread;
 *  - a withdraw request's, from a timed-out thread's post until it ran.
 * Whoever drops the last one frees the waiter (or, on the thread, keeps it
 * in a one-entry thread-local cache for its next wait).
 *
 * A thread that times out swaps its answer to -ETIMEDOUT (if the swap
 * fails, the answer came first and wins; else a late answer changes nothing)
 * and posts a withdraw, which removes the registration on the loop thread; its
 * posts run in order, so the withdraw runs after the register. If the withdraw
 * cannot be posted (-ENOMEM, -ESHUTDOWN) the registration stays until the
 * future settles or the loop is freed, and then lets go of the waiter.
 *
 * Registered waiters are on a list of the loop's futures module, so that
 * weft_loop_free() (the module's teardown) answers them -ESHUTDOWN. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define W_PENDING 1 /* no answer yet (answers are 0 or negative) */

typedef struct weft__waiter {
  atomic_uint refs;
  atomic_int result; /* W_PENDING until answered; the futex word */
  bool registered;   /* loop thread: an on_settled registration is live */
  weft_future *f;    /* written before the post: the loop reads them */
  weft__fmod *m;
  struct weft__waiter *prev, *next; /* m->waiting, while registered */
} weft__waiter;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static bool key_ok;

static void w_destroy(weft__waiter *w) { weft__free(w); }

static void cache_free(void *p) { w_destroy(p); }

static void key_init(void) {
  key_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

/* A waiter for this thread: its cached one, else a new one. */
static weft__waiter *w_get(void) {
  pthread_once(&key_once, key_init);
  if (key_ok) {
    weft__waiter *w = pthread_getspecific(cache_key);
    if (w != NULL) {
      pthread_setspecific(cache_key, NULL);
      return w;
    }
  }
  return weft__malloc(sizeof(weft__waiter));
}

/* The last reference went. On a thread that has no cached waiter it is
 * kept for the next wait; elsewhere (the loop thread, or a full cache) it
 * is freed. */
static void w_last(weft__waiter *w, bool may_cache) {
  if (may_cache && key_ok && pthread_getspecific(cache_key) == NULL &&
      pthread_setspecific(cache_key, w) == 0)
    return;
  w_destroy(w);
}

static void w_drop(weft__waiter *w, bool may_cache) {
  if (atomic_fetch_sub(&w->refs, 1) == 1) w_last(w, may_cache);
}

static long futex(atomic_int *word, int op, int val,
                  const struct timespec *ts) {
  return syscall(SYS_futex, (int *)word, op | FUTEX_PRIVATE_FLAG, val, ts, NULL,
                 FUTEX_BITSET_MATCH_ANY);
}

/* Loop thread: records rc (unless the thread has given up) and wakes the
 * thread; consumes the loop's reference, dropped after the wake, so the
 * waiter outlives it. */
static void answer(weft__waiter *w, int rc) {
  int pending = W_PENDING;
  if (atomic_compare_exchange_strong(&w->result, &pending, rc))
    futex(&w->result, FUTEX_WAKE, 1, NULL);
  w_drop(w, false);
}

static void unlink_w(weft__waiter *w) {
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    w->m->waiting = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->registered = false;
}

/* The loop is being freed: every registered wait is answered -ESHUTDOWN
 * (the futures go with the loop; the on_settled nodes with its slabs). */
static void waits_teardown(weft__fmod *m) {
  while (m->waiting != NULL) {
    weft__waiter *w = m->waiting;
    unlink_w(w);
    answer(w, -ESHUTDOWN);
  }
}

static void w_fire(weft_future *f, void *arg) {
  weft__waiter *w = arg;
  unlink_w(w);
  weft__observe(f); /* before the wake: the thread may read f afterwards */
  answer(w, 0);
}

static void w_register(void *arg) {
  weft__waiter *w = arg;
  weft__fmod *m = w->m;
  weft_future *f = w->f;
  m->waits_teardown = waits_teardown;
  if (f->state != WEFT_FUTURE_PENDING) {
    weft__observe(f);
    answer(w, 0);
    return;
  }
  int err = weft_future_on_settled(f, w_fire, w);
  if (err != 0) {
    answer(w, err);
    return;
  }
  w->registered = true;
  w->prev = NULL;
  w->next = m->waiting;
  if (m->waiting != NULL) m->waiting->prev = w;
  m->waiting = w;
}

/* A timed-out thread's withdraw: holds its own reference. */
static void w_withdraw(void *arg) {
  weft__waiter *w = arg;
  if (w->registered) {
    weft_future_off_settled(w->f, w_fire, w);
    unlink_w(w);
    w_drop(w, false); /* the registration's (the loop's) */
  }
  w_drop(w, false);
}

int weft_future_wait(weft_future *f, int64_t timeout_ms) {
  if (f == NULL || timeout_ms < -1) return -EINVAL;
  /* f->loop and the module pointer were written on the loop thread before
   * f was handed to this one */
  weft_loop *loop = f->loop;
  weft__fmod *m = weft__fmod_get(loop);
  if (pthread_equal(m->owner, pthread_self())) return -EDEADLK;
  weft__waiter *w = w_get();
  if (w == NULL) return -ENOMEM;
  w->f = f;
  w->m = m;
  atomic_store(&w->result, W_PENDING);
  w->registered = false;
  w->prev = w->next = NULL;
  atomic_store(&w->refs, 2); /* this thread's and the loop's */
  int err = weft_call_soon_threadsafe(loop, w_register, w);
  if (err != 0) {
    atomic_store(&w->refs, 1);
    w_drop(w, true);
    return err;
  }
  struct timespec until =
      timeout_ms > 0 ? weft__deadline_after(timeout_ms) : (struct timespec){0};
  int rc;
  while ((rc = atomic_load(&w->result)) == W_PENDING) {
    if (timeout_ms != 0 && (futex(&w->result, FUTEX_WAIT_BITSET, W_PENDING,
                                  timeout_ms < 0 ? NULL : &until) == 0 ||
                            errno != ETIMEDOUT))
      continue; /* woken, EAGAIN (answered meanwhile), EINTR: look again */
    int pending = W_PENDING;
    if (atomic_compare_exchange_strong(&w->result, &pending, -ETIMEDOUT))
      rc = -ETIMEDOUT;
    else
      rc = pending; /* the answer came first */
    break;
  }
  if (rc == -ETIMEDOUT) {
    atomic_fetch_add(&w->refs, 1); /* the withdraw's */
    if (weft_call_soon_threadsafe(loop, w_withdraw, w) != 0)
      atomic_fetch_sub(&w->refs, 1); /* ours is still held: not the last */
  }
  w_drop(w, true);
  return rc;
}

static void unref_cb(void *arg) { weft_future_unref(arg); }

int weft_future_unref_threadsafe(weft_future *f) {
  if (f == NULL) return -EINVAL;
  return weft_call_soon_threadsafe(f->loop, unref_cb, f);
}
