/* weft — event, lock, semaphore and condition on futures.
 *
 * Each keeps its waiters in a weft__waitq: pending futures linked through
 * their own `next` field, so waiting allocates only the future (from the
 * loop's free list). A waiter's cancel hook unlinks it, which is how
 * cancelling one waiter leaves the others in place. A release hands the
 * resource straight to the oldest waiter (FIFO fairness: a newcomer cannot
 * overtake a waiter woken but not yet run). */
#include <limits.h>

#include "internal.h"

/* ---- wait lists ---------------------------------------------------------- */

bool weft__waitq_unlink(weft__waitq *q, weft_future *f) {
  weft_future *prev = NULL;
  for (weft_future *w = q->head; w != NULL; prev = w, w = w->next) {
    if (w != f) continue;
    if (prev != NULL)
      prev->next = w->next;
    else
      q->head = w->next;
    if (q->tail == w) q->tail = prev;
    w->next = NULL;
    return true;
  }
  return false;
}

static void waitq_remove(weft_future *f, void *arg) {
  /* the list's reference; the canceller holds another */
  if (weft__waitq_unlink(arg, f)) weft_future_unref(f);
}

void weft__waitq_push(weft__waitq *q, weft_future *f) {
  f->u.hook.fn = waitq_remove;
  f->u.hook.arg = q;
  f->next = NULL;
  if (q->tail != NULL)
    q->tail->next = f;
  else
    q->head = f;
  q->tail = f;
}

int weft__waitq_add(weft_loop *loop, weft__waitq *q, weft_future **out) {
  weft_future *f;
  int err = weft__future_alloc(loop, WEFT__K_PLAIN, &f);
  if (err != 0) return err;
  weft__waitq_push(q, weft_future_ref(f));
  *out = f;
  return 0;
}

weft_future *weft__waitq_pop(weft__waitq *q) {
  weft_future *f = q->head;
  if (f == NULL) return NULL;
  q->head = f->next;
  if (q->head == NULL) q->tail = NULL;
  f->next = NULL;
  f->u.hook.fn = NULL; /* no longer listed: nothing to unlink on cancel */
  return f;
}

bool weft__waitq_wake(weft__waitq *q) {
  for (weft_future *f; (f = weft__waitq_pop(q)) != NULL;) {
    int err = weft_future_resolve_i64(f, 0);
    weft_future_unref(f);
    if (err == 0) return true;
  }
  return false;
}

void weft__waitq_fail_all(weft__waitq *q, int err) {
  for (weft_future *f; (f = weft__waitq_pop(q)) != NULL;) {
    weft_future_reject(f, err);
    weft_future_unref(f);
  }
}

int weft__future_done(weft_loop *loop, weft_future **out) {
  int err = weft__future_alloc(loop, WEFT__K_PLAIN, out);
  if (err == 0) weft_future_resolve_i64(*out, 0);
  return err;
}

/* ---- event -----------------------------------------------------------------
 */

struct weft_event {
  weft_loop *loop;
  bool set;
  weft__waitq q;
};

int weft_event_new(weft_loop *loop, weft_event **out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  weft_event *ev = weft__calloc(1, sizeof *ev);
  if (ev == NULL) return -ENOMEM;
  ev->loop = loop;
  *out = ev;
  return 0;
}

int weft_event_free(weft_event *ev) {
  if (ev == NULL) return -EINVAL;
  weft__waitq_fail_all(&ev->q, WEFT_ECLOSED);
  weft__free(ev);
  return 0;
}

int weft_event_set(weft_event *ev) {
  if (ev == NULL) return -EINVAL;
  ev->set = true;
  while (weft__waitq_wake(&ev->q)) {
  }
  return 0;
}

int weft_event_clear(weft_event *ev) {
  if (ev == NULL) return -EINVAL;
  ev->set = false;
  return 0;
}

bool weft_event_is_set(const weft_event *ev) { return ev != NULL && ev->set; }

int weft_event_wait(weft_event *ev, weft_future **out) {
  if (ev == NULL || out == NULL) return -EINVAL;
  if (ev->set) return weft__future_done(ev->loop, out);
  return weft__waitq_add(ev->loop, &ev->q, out);
}

/* ---- lock -------------------------------------------------------------------
 */

struct weft_lock {
  weft_loop *loop;
  bool locked;
  weft__waitq q;
};

int weft_lock_new(weft_loop *loop, weft_lock **out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  weft_lock *l = weft__calloc(1, sizeof *l);
  if (l == NULL) return -ENOMEM;
  l->loop = loop;
  *out = l;
  return 0;
}

int weft_lock_free(weft_lock *lock) {
  if (lock == NULL) return -EINVAL;
  weft__waitq_fail_all(&lock->q, WEFT_ECLOSED);
  weft__free(lock);
  return 0;
}

int weft_lock_acquire(weft_lock *lock, weft_future **out) {
  if (lock == NULL || out == NULL) return -EINVAL;
  if (lock->locked) return weft__waitq_add(lock->loop, &lock->q, out);
  int err = weft__future_done(lock->loop, out);
  if (err == 0) lock->locked = true;
  return err;
}

int weft_lock_release(weft_lock *lock) {
  if (lock == NULL) return -EINVAL;
  if (!lock->locked) return -EPERM;
  if (!weft__waitq_wake(&lock->q)) lock->locked = false; /* else handed on */
  return 0;
}

bool weft_lock_locked(const weft_lock *lock) {
  return lock != NULL && lock->locked;
}

/* ---- semaphore ----------------------------------------------------------- */

struct weft_semaphore {
  weft_loop *loop;
  unsigned value;
  unsigned bound; /* bounded: the initial value, which value never passes */
  bool bounded;
  weft__waitq q;
};

int weft_semaphore_new(weft_loop *loop, unsigned value, weft_semaphore **out) {
  if (loop == NULL || out == NULL) return -EINVAL;
  weft_semaphore *s = weft__calloc(1, sizeof *s);
  if (s == NULL) return -ENOMEM;
  s->loop = loop;
  s->value = value;
  *out = s;
  return 0;
}

int weft_semaphore_free(weft_semaphore *sem) {
  if (sem == NULL) return -EINVAL;
  weft__waitq_fail_all(&sem->q, WEFT_ECLOSED);
  weft__free(sem);
  return 0;
}

int weft_semaphore_acquire(weft_semaphore *sem, weft_future **out) {
  if (sem == NULL || out == NULL) return -EINVAL;
  if (sem->value == 0) return weft__waitq_add(sem->loop, &sem->q, out);
  int err = weft__future_done(sem->loop, out);
  if (err == 0) sem->value--;
  return err;
}

int weft_semaphore_new_bounded(weft_loop *loop, unsigned value,
                               weft_semaphore **out) {
  int err = weft_semaphore_new(loop, value, out);
  if (err == 0) {
    (*out)->bounded = true;
    (*out)->bound = value;
  }
  return err;
}

int weft_semaphore_release(weft_semaphore *sem) {
  if (sem == NULL) return -EINVAL;
  /* checked before any waiter is woken, as Python's BoundedSemaphore */
  if (sem->bounded && sem->value >= sem->bound) return -EOVERFLOW;
  if (weft__waitq_wake(&sem->q)) return 0; /* the permit went to a waiter */
  if (sem->value == UINT_MAX) return -EOVERFLOW;
  sem->value++;
  return 0;
}

unsigned weft_semaphore_value(const weft_semaphore *sem) {
  return sem ? sem->value : 0;
}

/* ---- condition
 * --------------------------------------------------------------- */

struct weft_condition {
  weft_lock *lock;
  weft__waitq q;
};

int weft_condition_new(weft_lock *lock, weft_condition **out) {
  if (lock == NULL || out == NULL) return -EINVAL;
  weft_condition *c = weft__calloc(1, sizeof *c);
  if (c == NULL) return -ENOMEM;
  c->lock = lock;
  *out = c;
  return 0;
}

int weft_condition_free(weft_condition *cond) {
  if (cond == NULL) return -EINVAL;
  weft__waitq_fail_all(&cond->q, WEFT_ECLOSED);
  weft__free(cond);
  return 0;
}

int weft_condition_wait(weft_condition *cond, weft_future **out) {
  if (cond == NULL || out == NULL) return -EINVAL;
  if (!cond->lock->locked) return -EPERM;
  int err = weft__waitq_add(cond->lock->loop, &cond->q, out);
  if (err == 0) weft_lock_release(cond->lock);
  return err;
}

/* A notified waiter moves, future and all, to the lock's wait list: it is
 * fulfilled when it holds the lock again. */
static bool notify_one(weft_condition *cond) {
  weft_future *w = weft__waitq_pop(&cond->q);
  if (w == NULL) return false;
  weft_lock *lock = cond->lock;
  if (lock->locked) {
    weft__waitq_push(&lock->q, w);
  } else {
    lock->locked = true;
    weft_future_resolve_i64(w, 0);
    weft_future_unref(w);
  }
  return true;
}

int weft_condition_notify(weft_condition *cond, unsigned n) {
  if (cond == NULL) return -EINVAL;
  int woken = 0;
  while ((unsigned)woken < n && woken < INT_MAX && notify_one(cond))
    woken++;
  return woken;
}

int weft_condition_notify_all(weft_condition *cond) {
  return weft_condition_notify(cond, UINT_MAX);
}

/* ---- barrier
 * ------------------------------------------------------------------
 * asyncio.Barrier: the waiters of the cycle under way are the wait list;
 * the parties-th arrival fulfils them all, in arrival order, with their
 * positions, and the next arrival starts the next cycle. A cancelled waiter
 * leaves the cycle (its hook unlinks it and counts it out). Abort and reset
 * reject the waiters with WEFT_EBROKEN; an aborted barrier stays broken
 * until reset. */

struct weft_barrier {
  weft_loop *loop;
  unsigned parties, count; /* count: waiters of the cycle under way */
  bool broken;
  weft__waitq q;
};

static void barrier_leave(weft_future *f, void *arg) {
  weft_barrier *b = arg;
  b->count--;
  waitq_remove(f, &b->q);
}

int weft_barrier_new(weft_loop *loop, unsigned parties, weft_barrier **out) {
  if (loop == NULL || out == NULL || parties == 0) return -EINVAL;
  weft_barrier *b = weft__calloc(1, sizeof *b);
  if (b == NULL) return -ENOMEM;
  b->loop = loop;
  b->parties = parties;
  *out = b;
  return 0;
}

static void barrier_fail(weft_barrier *b, int err) {
  b->count = 0;
  weft__waitq_fail_all(&b->q, err);
}

int weft_barrier_free(weft_barrier *b) {
  if (b == NULL) return -EINVAL;
  barrier_fail(b, WEFT_ECLOSED);
  weft__free(b);
  return 0;
}

/* The last party: the others get 0 .. parties-2 in arrival order. */
static int barrier_release(weft_barrier *b, weft_future **out) {
  int err = weft__future_alloc(b->loop, WEFT__K_PLAIN, out);
  if (err != 0) return err;
  weft_future_resolve_i64(*out, (int64_t)b->parties - 1);
  b->count = 0;
  int64_t i = 0;
  for (weft_future *f; (f = weft__waitq_pop(&b->q)) != NULL;) {
    weft_future_resolve_i64(f, i++);
    weft_future_unref(f);
  }
  return 0;
}

int weft_barrier_wait(weft_barrier *b, weft_future **out) {
  if (b == NULL || out == NULL) return -EINVAL;
  if (b->broken) return WEFT_EBROKEN;
  if (b->count + 1 == b->parties) return barrier_release(b, out);
  int err = weft__waitq_add(b->loop, &b->q, out);
  if (err != 0) return err;
  b->q.tail->u.hook.fn = barrier_leave;
  b->q.tail->u.hook.arg = b;
  b->count++;
  return 0;
}

int weft_barrier_abort(weft_barrier *b) {
  if (b == NULL) return -EINVAL;
  b->broken = true;
  barrier_fail(b, WEFT_EBROKEN);
  return 0;
}

int weft_barrier_reset(weft_barrier *b) {
  if (b == NULL) return -EINVAL;
  barrier_fail(b, WEFT_EBROKEN);
  b->broken = false;
  return 0;
}

unsigned weft_barrier_waiting(const weft_barrier *b) {
  return b ? b->count : 0;
}

unsigned weft_barrier_parties(const weft_barrier *b) {
  return b ? b->parties : 0;
}

bool weft_barrier_broken(const weft_barrier *b) { return b && b->broken; }
