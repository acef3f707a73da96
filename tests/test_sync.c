/* Async primitives: event, lock, semaphore, condition, bounded queue. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "support/test.h"

static weft_future_state st(weft_future *f) { return weft_future_get_state(f); }

static void unref_all(weft_future **fs, int n) {
  for (int i = 0; i < n; i++) {
    weft_future_error(fs[i]); /* looked at: not an unobserved rejection */
    weft_future_unref(fs[i]);
  }
}

/* ---- event ------------------------------------------------------------------
 */

Test(sync, event_wakes_every_waiter_on_set, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_event *ev;
  weft_future *w[3];
  cr_assert_eq(weft_event_new(loop, &ev), 0);
  cr_assert_eq(weft_event_is_set(ev), false);
  cr_assert_eq(weft_event_wait(ev, &w[0]), 0);
  cr_assert_eq(weft_event_wait(ev, &w[1]), 0);
  cr_assert_eq(weft_future_cancel(w[0]), 0); /* leaves w[1] waiting */
  cr_assert_eq(st(w[1]), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_event_set(ev), 0);
  cr_assert_eq(st(w[1]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_event_wait(ev, &w[2]), 0); /* already set */
  cr_assert_eq(st(w[2]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_event_clear(ev), 0);
  cr_assert_eq(weft_event_is_set(ev), false);
  unref_all(w, 3);
  weft_future *late;
  cr_assert_eq(weft_event_wait(ev, &late), 0);
  cr_assert_eq(weft_event_free(ev), 0);
  cr_assert_eq(weft_future_error(late), WEFT_ECLOSED);
  weft_future_unref(late);
  th_run(loop);
  th_loop_finish(loop);
}

Test(sync, bad_inputs_are_rejected, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  weft_lock *lock;
  cr_assert_eq(weft_event_new(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_event_free(NULL), -EINVAL);
  cr_assert_eq(weft_event_set(NULL), -EINVAL);
  cr_assert_eq(weft_event_clear(NULL), -EINVAL);
  cr_assert_eq(weft_event_wait(NULL, &f), -EINVAL);
  cr_assert_eq(weft_event_is_set(NULL), false);
  cr_assert_eq(weft_lock_new(loop, NULL), -EINVAL);
  cr_assert_eq(weft_lock_free(NULL), -EINVAL);
  cr_assert_eq(weft_lock_acquire(NULL, &f), -EINVAL);
  cr_assert_eq(weft_lock_release(NULL), -EINVAL);
  cr_assert_eq(weft_lock_locked(NULL), false);
  cr_assert_eq(weft_semaphore_new(NULL, 1, NULL), -EINVAL);
  cr_assert_eq(weft_semaphore_free(NULL), -EINVAL);
  cr_assert_eq(weft_semaphore_acquire(NULL, &f), -EINVAL);
  cr_assert_eq(weft_semaphore_release(NULL), -EINVAL);
  cr_assert_eq(weft_semaphore_value(NULL), 0);
  cr_assert_eq(weft_condition_new(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_condition_free(NULL), -EINVAL);
  cr_assert_eq(weft_condition_wait(NULL, &f), -EINVAL);
  cr_assert_eq(weft_condition_notify(NULL, 1), -EINVAL);
  cr_assert_eq(weft_condition_notify_all(NULL), -EINVAL);
  weft_queue *q;
  cr_assert_eq(weft_queue_new(loop, 0, NULL, &q), -EINVAL);
  cr_assert_eq(weft_queue_new(NULL, 1, NULL, &q), -EINVAL);
  cr_assert_eq(weft_queue_free(NULL), -EINVAL);
  cr_assert_eq(weft_queue_put(NULL, NULL, &f), -EINVAL);
  cr_assert_eq(weft_queue_get(NULL, &f), -EINVAL);
  cr_assert_eq(weft_queue_put_threadsafe(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_queue_close(NULL), -EINVAL);
  cr_assert_eq(weft_queue_len(NULL), 0);
  /* still usable */
  cr_assert_eq(weft_lock_new(loop, &lock), 0);
  cr_assert_eq(weft_lock_release(lock), -EPERM);
  cr_assert_eq(weft_lock_acquire(lock, &f), 0);
  cr_assert_eq(weft_lock_locked(lock), true);
  weft_future_unref(f);
  cr_assert_eq(weft_lock_free(lock), 0);
  th_loop_finish(loop);
}

/* ---- lock -----------------------------------------------------------------
 */

Test(sync, lock_is_fifo_and_cancelled_waiter_is_skipped, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_lock *lock;
  weft_future *a[4];
  cr_assert_eq(weft_lock_new(loop, &lock), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_lock_acquire(lock, &a[i]), 0);
  cr_assert_eq(st(a[0]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(st(a[1]), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_cancel(a[2]), 0);
  cr_assert_eq(weft_lock_release(lock), 0);
  cr_assert_eq(st(a[1]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(st(a[3]), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_lock_release(lock), 0);
  cr_assert_eq(st(a[3]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_lock_locked(lock), true);
  cr_assert_eq(weft_lock_release(lock), 0);
  cr_assert_eq(weft_lock_locked(lock), false);
  cr_assert_eq(weft_lock_release(lock), -EPERM);
  unref_all(a, 4);
  cr_assert_eq(weft_lock_free(lock), 0);
  th_run(loop);
  th_loop_finish(loop);
}

/* Tasks that read, yield (sleep 0) and write back a shared counter: with the
 * lock around it no increment is lost. */
typedef struct task {
  weft_lock *lock;
  int *counter, seen, left;
} task;

static void task_step(task *t);

static int task_write(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  task *t = arg;
  *t->counter = t->seen + 1;
  weft_lock_release(t->lock);
  if (--t->left > 0) task_step(t);
  return 0;
}

static int task_read(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  task *t = arg;
  t->seen = *t->counter;
  weft_future *s;
  cr_assert_eq(weft_sleep(weft_future_loop(out), 0, &s), 0);
  cr_assert_eq(weft_future_then(s, task_write, t, NULL), 0);
  weft_future_unref(s);
  return 0;
}

static void task_step(task *t) {
  weft_future *f;
  cr_assert_eq(weft_lock_acquire(t->lock, &f), 0);
  cr_assert_eq(weft_future_then(f, task_read, t, NULL), 0);
  weft_future_unref(f);
}

Test(sync, lock_serialises_read_yield_write_tasks, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_lock *lock;
  int counter = 0;
  task ts[5];
  cr_assert_eq(weft_lock_new(loop, &lock), 0);
  for (int i = 0; i < 5; i++) {
    ts[i] = (task){lock, &counter, 0, 20};
    task_step(&ts[i]);
  }
  th_run(loop);
  cr_assert_eq(counter, 100);
  cr_assert_eq(weft_lock_locked(lock), false);
  cr_assert_eq(weft_lock_free(lock), 0);
  th_loop_finish(loop);
}

/* ---- semaphore --------------------------------------------------------------
 */

Test(sync, semaphore_counts_and_serves_in_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_semaphore *s;
  weft_future *a[5];
  cr_assert_eq(weft_semaphore_new(loop, 2, &s), 0);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(weft_semaphore_acquire(s, &a[i]), 0);
  cr_assert_eq(weft_semaphore_value(s), 0);
  cr_assert_eq(st(a[1]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(st(a[2]), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_cancel(a[3]), 0);
  cr_assert_eq(weft_semaphore_release(s), 0);
  cr_assert_eq(st(a[2]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(st(a[4]), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_semaphore_release(s), 0);
  cr_assert_eq(st(a[4]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_semaphore_release(s), 0);
  cr_assert_eq(weft_semaphore_value(s), 1);
  weft_future *late;
  cr_assert_eq(weft_semaphore_acquire(s, &late), 0);
  cr_assert_eq(weft_semaphore_acquire(s, &a[3]), 0); /* reuse the slot */
  cr_assert_eq(weft_semaphore_free(s), 0);
  cr_assert_eq(weft_future_error(a[3]), WEFT_ECLOSED);
  unref_all(a, 5);
  weft_future_unref(late);
  th_run(loop);
  th_loop_finish(loop);
}

/* ---- condition ------------------------------------------------------------
 */

Test(sync, condition_wait_releases_and_reacquires_the_lock, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_lock *lock;
  weft_condition *c;
  weft_future *held, *w[3];
  cr_assert_eq(weft_lock_new(loop, &lock), 0);
  cr_assert_eq(weft_condition_new(lock, &c), 0);
  cr_assert_eq(weft_condition_wait(c, &w[0]), -EPERM);
  cr_assert_eq(weft_lock_acquire(lock, &held), 0);
  weft_future_unref(held);
  cr_assert_eq(weft_condition_wait(c, &w[0]), 0);
  cr_assert_eq(weft_lock_locked(lock), false); /* released by wait */
  for (int i = 1; i < 3; i++) {
    cr_assert_eq(weft_lock_acquire(lock, &held), 0);
    weft_future_unref(held);
    cr_assert_eq(weft_condition_wait(c, &w[i]), 0);
  }
  cr_assert_eq(weft_future_cancel(w[1]), 0);
  cr_assert_eq(weft_lock_acquire(lock, &held), 0); /* the notifier */
  cr_assert_eq(weft_condition_notify(c, 1), 1);
  cr_assert_eq(st(w[0]), WEFT_FUTURE_PENDING); /* needs the lock first */
  cr_assert_eq(weft_lock_release(lock), 0);
  cr_assert_eq(st(w[0]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_lock_locked(lock), true); /* w[0] holds it */
  cr_assert_eq(weft_condition_notify_all(c), 1);
  cr_assert_eq(weft_condition_notify_all(c), 0);
  cr_assert_eq(weft_lock_release(lock), 0);
  cr_assert_eq(st(w[2]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_lock_release(lock), 0);
  cr_assert_eq(weft_lock_locked(lock), false);
  unref_all(w, 3);
  weft_future_unref(held);
  cr_assert_eq(weft_condition_free(c), 0);
  cr_assert_eq(weft_lock_free(lock), 0);
  th_run(loop);
  th_loop_finish(loop);
}

Test(sync, freeing_a_lock_or_condition_rejects_waiters, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_lock *lock;
  weft_condition *c;
  weft_semaphore *s;
  weft_future *held, *w, *cw, *other;
  cr_assert_eq(weft_lock_new(loop, &lock), 0);
  cr_assert_eq(weft_condition_new(lock, &c), 0);
  cr_assert_eq(weft_lock_acquire(lock, &held), 0);
  cr_assert_eq(weft_condition_wait(c, &cw), 0);
  cr_assert_eq(weft_lock_acquire(lock, &held), 0);
  cr_assert_eq(weft_lock_acquire(lock, &w), 0);
  cr_assert_eq(weft_condition_free(c), 0);
  cr_assert_eq(weft_future_error(cw), WEFT_ECLOSED);
  cr_assert_eq(weft_lock_free(lock), 0);
  cr_assert_eq(weft_future_error(w), WEFT_ECLOSED);
  cr_assert_eq(weft_semaphore_new(loop, UINT_MAX, &s), 0);
  cr_assert_eq(weft_semaphore_release(s), -EOVERFLOW);
  cr_assert_eq(weft_semaphore_acquire(s, &other), 0);
  cr_assert_eq(weft_semaphore_value(s), UINT_MAX - 1);
  cr_assert_eq(weft_semaphore_free(s), 0);
  weft_future *all[] = {held, w, cw, other};
  unref_all(all, 4);
  th_run(loop);
  th_loop_finish(loop);
}

/* ---- queue
 * --------------------------------------------------------------------- */

static int item_frees;
static void free_item(void *p) {
  item_frees++;
  free(p);
}

Test(sync, queue_is_fifo_and_bounded, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *p[3], *g[3];
  int v[3] = {1, 2, 3};
  cr_assert_eq(weft_queue_new(loop, 2, NULL, &q), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_queue_put(q, &v[i], &p[i]), 0);
  cr_assert_eq(st(p[1]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(st(p[2]), WEFT_FUTURE_PENDING); /* full */
  cr_assert_eq(weft_queue_len(q), 2);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_queue_get(q, &g[i]), 0);
  cr_assert_eq(st(p[2]), WEFT_FUTURE_FULFILLED);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_future_value(g[i]), &v[i]);
  cr_assert_eq(weft_queue_len(q), 0);
  unref_all(p, 3);
  unref_all(g, 3);
  cr_assert_eq(weft_queue_free(q), 0);
  th_run(loop);
  th_loop_finish(loop);
}

Test(sync, queue_getters_wait_and_cancel_independently, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *g[3], *p;
  int a = 1, b = 2;
  cr_assert_eq(weft_queue_new(loop, 1, NULL, &q), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_queue_get(q, &g[i]), 0);
  cr_assert_eq(weft_future_cancel(g[0]), 0);
  cr_assert_eq(weft_queue_put(q, &a, &p), 0);
  weft_future_unref(p);
  cr_assert_eq(weft_future_value(g[1]), &a); /* handed over directly */
  cr_assert_eq(weft_queue_put(q, &b, &p), 0);
  weft_future_unref(p);
  cr_assert_eq(weft_future_value(g[2]), &b);
  unref_all(g, 3);
  cr_assert_eq(weft_queue_free(q), 0);
  th_loop_finish(loop);
}

Test(sync, queue_close_wakes_every_waiter_with_an_error, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q, *q2;
  weft_future *g, *p1, *p2, *f;
  int x = 1;
  item_frees = 0;
  cr_assert_eq(weft_queue_new(loop, 1, NULL, &q), 0);
  cr_assert_eq(weft_queue_new(loop, 1, free_item, &q2), 0);
  cr_assert_eq(weft_queue_get(q, &g), 0);
  cr_assert_eq(weft_queue_put(q2, malloc(4), &p1), 0);
  cr_assert_eq(weft_queue_put(q2, &x, &p2), 0); /* waits: full */
  cr_assert_eq(weft_queue_close(q), 0);
  cr_assert_eq(weft_queue_close(q), -EALREADY);
  cr_assert_eq(weft_queue_close(q2), 0);
  cr_assert_eq(weft_future_error(g), WEFT_ECLOSED);
  cr_assert_eq(weft_future_error(p2), WEFT_ECLOSED);
  cr_assert_eq(weft_queue_get(q, &f), WEFT_ECLOSED);
  cr_assert_eq(weft_queue_put(q, &x, &f), WEFT_ECLOSED);
  cr_assert_eq(weft_queue_len(q2), 1);
  cr_assert_eq(weft_queue_free(q2), 0); /* frees the item left inside */
  cr_assert_eq(item_frees, 1);
  cr_assert_eq(weft_queue_free(q), 0);
  weft_future_unref(g);
  weft_future_unref(p1);
  weft_future_unref(p2);
  th_loop_finish(loop);
}

/* 8 threads feed a small queue; the loop consumes with a chain of gets. */
#define FEEDERS 8
#define PER_FEEDER 500

typedef struct consumer {
  weft_queue *q;
  weft_loop *loop;
  long sum;
  int got;
} consumer;

static void *feeder(void *arg) {
  weft_queue *q = arg;
  for (int i = 1; i <= PER_FEEDER; i++) {
    int *v = malloc(sizeof *v);
    *v = i;
    if (weft_queue_put_threadsafe(q, v) != 0) abort();
  }
  return NULL;
}

static void consume(weft_future *f, void *arg);

static void get_next(consumer *c) {
  weft_future *g;
  cr_assert_eq(weft_queue_get(c->q, &g), 0);
  cr_assert_eq(weft_future_on_settled(g, consume, c), 0);
  weft_future_unref(g);
}

static void consume(weft_future *f, void *arg) {
  consumer *c = arg;
  int *v = weft_future_value(f);
  c->sum += *v;
  free(v);
  if (++c->got == FEEDERS * PER_FEEDER)
    weft_loop_unref(c->loop);
  else
    get_next(c);
}

Test(sync, queue_fed_by_eight_threads, .timeout = 30) {
  weft_loop *loop = th_loop();
  consumer c = {NULL, loop, 0, 0};
  cr_assert_eq(weft_queue_new(loop, 4, NULL, &c.q), 0);
  weft_loop_ref(loop);
  get_next(&c);
  pthread_t th[FEEDERS];
  for (int i = 0; i < FEEDERS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, feeder, c.q), 0);
  th_run(loop);
  for (int i = 0; i < FEEDERS; i++)
    pthread_join(th[i], NULL);
  cr_assert_eq(c.got, FEEDERS * PER_FEEDER);
  cr_assert_eq(c.sum, (long)FEEDERS * PER_FEEDER * (PER_FEEDER + 1) / 2);
  cr_assert_eq(weft_queue_free(c.q), 0);
  th_loop_finish(loop);
}

static void *blocked_feeder(void *arg) {
  static int x;
  weft_queue *q = arg;
  int err = 0;
  while (err == 0)
    err = weft_queue_put_threadsafe(q, &x);
  return (void *)(intptr_t)err;
}

static void close_later(weft_timer *t) {
  weft_queue_close(t->base.data);
  weft_close(&t->base, NULL);
}

Test(sync, queue_close_releases_blocked_threads, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_timer t;
  cr_assert_eq(weft_queue_new(loop, 2, NULL, &q), 0);
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  t.base.data = q;
  cr_assert_eq(weft_timer_start(&t, close_later, 20, 0), 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, blocked_feeder, q), 0);
  th_run(loop);
  void *ret;
  pthread_join(th, &ret);
  cr_assert_eq((int)(intptr_t)ret, WEFT_ECLOSED);
  while (weft_queue_free(q) == -EBUSY)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  th_loop_finish(loop);
}

/* ---- allocation failure
 * ------------------------------------------------------ */

static int primitives_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_event *ev = NULL;
  weft_lock *lock = NULL;
  weft_condition *c = NULL;
  weft_semaphore *s = NULL;
  weft_queue *q = NULL;
  weft_future *f[7] = {0};
  int first = 1;
  int err = weft_event_new(loop, &ev);
  if (err == 0) err = weft_event_wait(ev, &f[0]);
  if (err == 0) err = weft_lock_new(loop, &lock);
  if (err == 0) err = weft_lock_acquire(lock, &f[1]);
  if (err == 0) err = weft_condition_new(lock, &c);
  if (err == 0) err = weft_semaphore_new(loop, 0, &s);
  if (err == 0) err = weft_semaphore_acquire(s, &f[2]);
  if (err == 0) err = weft_queue_new(loop, 1, NULL, &q);
  if (err == 0) err = weft_queue_put(q, &first, &f[5]);
  if (err == 0) err = weft_queue_get(q, &f[6]);
  if (err == 0) err = weft_queue_get(q, &f[3]);
  if (err == 0) err = weft_queue_put_threadsafe(q, &err);
  if (err == 0) err = weft_condition_wait(c, &f[4]);
  /* the threadsafe put is on its way until the loop has turned */
  while (q != NULL && weft_queue_free(q) == -EBUSY)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  if (err == 0) cr_assert_eq(weft_future_value(f[6]), &first);
  if (err == 0) cr_assert_eq(weft_future_value(f[3]), &err);
  weft_event_free(ev);
  weft_condition_free(c);
  weft_lock_free(lock);
  weft_semaphore_free(s);
  th_run(loop);
  unref_all(f, 7);
  return err;
}

Test(sync, primitives_fail_cleanly_without_memory, .timeout = 30) {
  th_alloc_sweep(primitives_round, NULL);
}

/* ---- bounded semaphore, barrier --------------------------------------------
 */

#define SEQ(got, want)                                                         \
  do {                                                                         \
    int g_ = (got), w_ = (want);                                               \
    cr_assert_eq(g_, w_, "%s: got %s, want %s", #got, weft_err_name(g_),       \
                 weft_err_name(w_));                                           \
  } while (0)

Test(sync, bounded_semaphore_refuses_a_release_above_its_initial_value,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_semaphore *s;
  weft_future *a, *b, *w;
  SEQ(weft_semaphore_new_bounded(NULL, 1, &s), -EINVAL);
  SEQ(weft_semaphore_new_bounded(loop, 1, NULL), -EINVAL);
  SEQ(weft_semaphore_new_bounded(loop, 2, &s), 0);
  SEQ(weft_semaphore_release(s), -EOVERFLOW); /* nothing taken yet */
  cr_assert_eq(weft_semaphore_value(s), 2);
  SEQ(weft_semaphore_acquire(s, &a), 0);
  SEQ(weft_semaphore_acquire(s, &b), 0);
  SEQ(weft_semaphore_acquire(s, &w), 0); /* waits */
  cr_assert_eq(st(w), WEFT_FUTURE_PENDING);
  SEQ(weft_semaphore_release(s), 0); /* to the waiter */
  cr_assert_eq(st(w), WEFT_FUTURE_FULFILLED);
  SEQ(weft_semaphore_release(s), 0);
  SEQ(weft_semaphore_release(s), 0);
  cr_assert_eq(weft_semaphore_value(s), 2);
  SEQ(weft_semaphore_release(s), -EOVERFLOW);
  cr_assert_eq(weft_semaphore_value(s), 2);
  weft_semaphore *z; /* bound 0: never releasable */
  SEQ(weft_semaphore_new_bounded(loop, 0, &z), 0);
  SEQ(weft_semaphore_release(z), -EOVERFLOW);
  SEQ(weft_semaphore_free(z), 0);
  SEQ(weft_semaphore_free(s), 0);
  weft_future_unref(a);
  weft_future_unref(b);
  weft_future_unref(w);
  th_loop_finish(loop);
}

Test(sync, barrier_releases_every_party_with_its_position_and_is_reused,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_barrier *b;
  weft_future *fs[6];
  SEQ(weft_barrier_new(loop, 3, &b), 0);
  cr_assert_eq(weft_barrier_parties(b), 3);
  for (int cycle = 0; cycle < 2; cycle++) {
    weft_future **f = fs + 3 * cycle;
    SEQ(weft_barrier_wait(b, &f[0]), 0);
    SEQ(weft_barrier_wait(b, &f[1]), 0);
    cr_assert_eq(weft_barrier_waiting(b), 2);
    cr_assert_eq(st(f[0]), WEFT_FUTURE_PENDING);
    SEQ(weft_barrier_wait(b, &f[2]), 0);
    cr_assert_eq(weft_barrier_waiting(b), 0);
    for (int i = 0; i < 3; i++) {
      cr_assert_eq(st(f[i]), WEFT_FUTURE_FULFILLED);
      cr_assert_eq(weft_future_value_i64(f[i]), i);
    }
  }
  unref_all(fs, 6);
  SEQ(weft_barrier_free(b), 0);
  th_loop_finish(loop);
}

Test(sync, barrier_cancel_takes_an_arrival_back_abort_and_reset_break_it,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_barrier *b;
  weft_future *a, *c, *d, *e, *x;
  SEQ(weft_barrier_new(loop, 2, &b), 0);
  SEQ(weft_barrier_wait(b, &a), 0);
  SEQ(weft_future_cancel(a), 0); /* leaves the cycle */
  cr_assert_eq(weft_barrier_waiting(b), 0);
  SEQ(weft_barrier_wait(b, &c), 0);
  cr_assert_eq(st(c), WEFT_FUTURE_PENDING); /* still one short */
  SEQ(weft_barrier_abort(b), 0);
  cr_assert(weft_barrier_broken(b));
  SEQ(weft_future_error(c), WEFT_EBROKEN);
  SEQ(weft_barrier_wait(b, &x), WEFT_EBROKEN);
  SEQ(weft_barrier_reset(b), 0);
  cr_assert(!weft_barrier_broken(b));
  SEQ(weft_barrier_wait(b, &d), 0);
  SEQ(weft_barrier_reset(b), 0); /* a reset breaks the waiting cycle */
  SEQ(weft_future_error(d), WEFT_EBROKEN);
  SEQ(weft_barrier_wait(b, &e), 0);
  cr_assert_eq(weft_barrier_waiting(b), 1);
  SEQ(weft_barrier_free(b), 0); /* closing rejects the waiter */
  SEQ(weft_future_error(e), WEFT_ECLOSED);
  th_run(loop);
  weft_future_unref(a);
  weft_future_unref(c);
  weft_future_unref(d);
  weft_future_unref(e);
  th_loop_finish(loop);
}

Test(sync, barrier_bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_barrier *b;
  weft_future *f;
  SEQ(weft_barrier_new(NULL, 2, &b), -EINVAL);
  SEQ(weft_barrier_new(loop, 0, &b), -EINVAL);
  SEQ(weft_barrier_new(loop, 2, NULL), -EINVAL);
  SEQ(weft_barrier_wait(NULL, &f), -EINVAL);
  SEQ(weft_barrier_abort(NULL), -EINVAL);
  SEQ(weft_barrier_reset(NULL), -EINVAL);
  SEQ(weft_barrier_free(NULL), -EINVAL);
  cr_assert_eq(weft_barrier_waiting(NULL), 0);
  cr_assert_eq(weft_barrier_parties(NULL), 0);
  cr_assert(!weft_barrier_broken(NULL));
  SEQ(weft_barrier_new(loop, 1, &b), 0);
  SEQ(weft_barrier_wait(b, NULL), -EINVAL);
  SEQ(weft_barrier_wait(b, &f), 0); /* one party: released at once */
  cr_assert_eq(weft_future_value_i64(f), 0);
  weft_future_unref(f);
  SEQ(weft_barrier_free(b), 0);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

static int barrier_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_barrier *b;
  weft_semaphore *s;
  weft_future *f[3] = {NULL, NULL, NULL};
  int err = weft_barrier_new(loop, 3, &b);
  if (err != 0) return err;
  for (int i = 0; i < 3 && err == 0; i++)
    err = weft_barrier_wait(b, &f[i]);
  if (err == 0)
    for (int i = 0; i < 3; i++)
      cr_assert_eq(weft_future_value_i64(f[i]), i);
  if (err == 0 && (err = weft_semaphore_new_bounded(loop, 1, &s)) == 0)
    weft_semaphore_free(s);
  weft_barrier_free(b);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  unref_all(f, 3);
  return err;
}

Test(sync, barrier_allocation_failure_at_each_site, .timeout = 30) {
  cr_assert_gt(th_alloc_sweep(barrier_round, NULL), 0);
}

/* ---- queue: LIFO, priority, task_done / join --------------------------------
 */

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void *get_value(weft_future *f) {
  void *v = weft_future_value(f);
  weft_future_unref(f);
  return v;
}

Test(queue_more, lifo_hands_out_newest_first_by_every_get, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *p, *g;
  int v[4] = {1, 2, 3, 4};
  void *item;
  SEQ(weft_queue_new_ex(loop, 3, NULL, WEFT_QUEUE_LIFO, NULL, &q), 0);
  for (int i = 0; i < 3; i++)
    SEQ(weft_queue_try_put(q, &v[i]), 0);
  SEQ(weft_queue_put(q, &v[3], &p), 0); /* full: waits */
  cr_assert_eq(st(p), WEFT_FUTURE_PENDING);
  SEQ(weft_queue_try_get(q, &item), 0);
  cr_assert_eq(item, &v[2]);
  cr_assert_eq(st(p), WEFT_FUTURE_FULFILLED); /* v[3] entered: newest */
  weft_future_unref(p);
  SEQ(weft_queue_get(q, &g), 0);
  cr_assert_eq(get_value(g), &v[3]);
  SEQ(weft_queue_try_get(q, &item), 0);
  cr_assert_eq(item, &v[1]);
  SEQ(weft_queue_try_put(q, &v[2]), 0);
  SEQ(weft_queue_get(q, &g), 0);
  cr_assert_eq(get_value(g), &v[2]);
  SEQ(weft_queue_get(q, &g), 0);
  cr_assert_eq(get_value(g), &v[0]);
  SEQ(weft_queue_try_get(q, &item), -EAGAIN);
  cr_assert_eq(weft_queue_len(q), 0);
  SEQ(weft_queue_free(q), 0);
  th_run(loop);
  th_loop_finish(loop);
}

Test(queue_more, priority_is_smallest_first_ties_in_entry_order,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *p, *g;
  /* two 1s and two 4s: ties must come out in the order they entered */
  int v[] = {5, 1, 4, 1, 9, 2, 6, 4, 3, 8, 7, 0};
  enum { N = sizeof v / sizeof v[0] };
  void *item;
  SEQ(weft_queue_new_ex(loop, N, NULL, WEFT_QUEUE_PRIORITY, cmp_int, &q), 0);
  for (int i = 0; i < N; i++)
    SEQ(weft_queue_try_put(q, &v[i]), 0);
  int *prev = NULL;
  for (int i = 0; i < N; i++) {
    int *got;
    if (i % 2 == 0) {
      SEQ(weft_queue_try_get(q, &item), 0);
      got = item;
    } else {
      SEQ(weft_queue_get(q, &g), 0);
      got = get_value(g);
    }
    if (prev != NULL) {
      cr_assert_leq(*prev, *got, "step %d: %d after %d", i, *got, *prev);
      if (*prev == *got) cr_assert_lt(prev, got, "tie out of entry order");
    }
    prev = got;
  }
  cr_assert_eq(*prev, 9);
  /* a put waiting while full is ordered once it enters */
  int a = 5, b = 3, c = 1;
  SEQ(weft_queue_free(q), 0);
  SEQ(weft_queue_new_ex(loop, 2, NULL, WEFT_QUEUE_PRIORITY, cmp_int, &q), 0);
  SEQ(weft_queue_try_put(q, &a), 0);
  SEQ(weft_queue_try_put(q, &b), 0);
  SEQ(weft_queue_try_put(q, &c), -EAGAIN);
  SEQ(weft_queue_put(q, &c, &p), 0);
  SEQ(weft_queue_get(q, &g), 0);
  cr_assert_eq(get_value(g), &b); /* c was not in yet */
  cr_assert_eq(st(p), WEFT_FUTURE_FULFILLED);
  weft_future_unref(p);
  SEQ(weft_queue_get(q, &g), 0);
  cr_assert_eq(get_value(g), &c);
  SEQ(weft_queue_get(q, &g), 0);
  cr_assert_eq(get_value(g), &a);
  SEQ(weft_queue_free(q), 0);
  th_run(loop);
  th_loop_finish(loop);
}

typedef struct order_taker {
  weft_queue *q;
  int n;
  int *got[8];
  int errs[8];
} order_taker;

static void *take_in_order(void *arg) {
  order_taker *t = arg;
  for (int i = 0; i < t->n; i++) {
    void *item = NULL;
    t->errs[i] = weft_queue_get_threadsafe(t->q, &item, 5000);
    t->got[i] = item;
  }
  return NULL;
}

Test(queue_more, get_threadsafe_follows_the_kind, .timeout = 20) {
  weft_loop *loop = th_loop();
  int v[] = {4, 2, 7, 1, 3};
  enum { N = sizeof v / sizeof v[0] };
  static const int prio[N] = {1, 2, 3, 4, 7};
  for (int kind = WEFT_QUEUE_LIFO; kind <= WEFT_QUEUE_PRIORITY; kind++) {
    order_taker t = {.n = N};
    SEQ(weft_queue_new_ex(loop, N, NULL, (weft_queue_kind)kind,
                          kind == WEFT_QUEUE_PRIORITY ? cmp_int : NULL, &t.q),
        0);
    for (int i = 0; i < N; i++)
      SEQ(weft_queue_try_put(t.q, &v[i]), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, take_in_order, &t), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++) {
      SEQ(t.errs[i], 0);
      if (kind == WEFT_QUEUE_LIFO)
        cr_assert_eq(t.got[i], &v[N - 1 - i], "lifo step %d", i);
      else
        cr_assert_eq(*t.got[i], prio[i], "priority step %d", i);
    }
    while (weft_queue_free(t.q) == -EBUSY) /* the refills run first */
      weft_loop_run(loop, WEFT_RUN_ONCE);
  }
  th_run(loop);
  th_loop_finish(loop);
}

Test(queue_more, join_waits_for_every_task_done, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *j[3], *g, *p;
  int a = 1, b = 2, c = 3;
  void *item;
  SEQ(weft_queue_new(loop, 1, NULL, &q), 0);
  SEQ(weft_queue_join(q, &j[0]), 0); /* nothing unfinished: at once */
  cr_assert_eq(st(j[0]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(j[0]), 0);
  weft_future_unref(j[0]);
  SEQ(weft_queue_task_done(q), -EOVERFLOW);
  cr_assert_eq(weft_queue_unfinished(q), 0);
  SEQ(weft_queue_get(q, &g), 0);
  SEQ(weft_queue_put(q, &a, &p), 0); /* handed straight to g: counts */
  weft_future_unref(p);
  cr_assert_eq(get_value(g), &a);
  cr_assert_eq(weft_queue_unfinished(q), 1);
  SEQ(weft_queue_try_put(q, &b), 0);
  SEQ(weft_queue_put(q, &c, &p), 0); /* full: not counted until it enters */
  cr_assert_eq(weft_queue_unfinished(q), 2);
  SEQ(weft_queue_join(q, &j[0]), 0);
  SEQ(weft_queue_join(q, &j[1]), 0);
  SEQ(weft_queue_join(q, &j[2]), 0);
  SEQ(weft_future_cancel(j[1]), 0);
  SEQ(weft_queue_task_done(q), 0); /* a */
  SEQ(weft_queue_try_get(q, &item), 0);
  cr_assert_eq(item, &b);
  cr_assert_eq(weft_queue_unfinished(q), 2); /* b still, c entered */
  weft_future_unref(p);
  SEQ(weft_queue_task_done(q), 0); /* b */
  cr_assert_eq(st(j[0]), WEFT_FUTURE_PENDING);
  SEQ(weft_queue_try_get(q, &item), 0);
  cr_assert_eq(item, &c);
  cr_assert_eq(st(j[2]), WEFT_FUTURE_PENDING); /* got is not done */
  SEQ(weft_queue_task_done(q), 0);             /* c */
  cr_assert_eq(st(j[0]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(st(j[1]), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(st(j[2]), WEFT_FUTURE_FULFILLED);
  SEQ(weft_queue_task_done(q), -EOVERFLOW);
  cr_assert_eq(weft_queue_unfinished(q), 0);
  unref_all(j, 3);
  /* a put_threadsafe item is in the queue, and counts, at its return */
  SEQ(weft_queue_put_threadsafe(q, &a), 0);
  cr_assert_eq(weft_queue_len(q), 1);
  cr_assert_eq(weft_queue_unfinished(q), 1);
  SEQ(weft_queue_join(q, &j[0]), 0);
  cr_assert_eq(st(j[0]), WEFT_FUTURE_PENDING);
  SEQ(weft_queue_task_done(q), 0); /* done before got is allowed */
  cr_assert_eq(st(j[0]), WEFT_FUTURE_FULFILLED);
  weft_future_unref(j[0]);
  SEQ(weft_queue_free(q), 0);
  th_run(loop);
  th_loop_finish(loop);
}

static void dummy_dtor(void *p) { (void)p; }

Test(queue_more, close_leaves_joins_waiting_free_rejects_them, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *j[2];
  int a = 1, b = 2;
  void *item;
  SEQ(weft_queue_new(loop, 2, NULL, &q), 0);
  SEQ(weft_queue_try_put(q, &a), 0);
  SEQ(weft_queue_try_put(q, &b), 0);
  SEQ(weft_queue_join(q, &j[0]), 0);
  SEQ(weft_queue_close(q), 0);
  cr_assert_eq(st(j[0]), WEFT_FUTURE_PENDING);
  SEQ(weft_queue_try_get(q, &item), 0);
  SEQ(weft_queue_task_done(q), 0);
  SEQ(weft_queue_join(q, &j[1]), 0); /* after close: still waits */
  cr_assert_eq(st(j[1]), WEFT_FUTURE_PENDING);
  SEQ(weft_queue_free(q), 0); /* b freed inside, never done */
  SEQ(weft_future_error(j[0]), WEFT_ECLOSED);
  SEQ(weft_future_error(j[1]), WEFT_ECLOSED);
  unref_all(j, 2);
  th_run(loop);
  th_loop_finish(loop);
}

typedef struct other_thread_call {
  weft_queue *q;
  int done, join;
  weft_future *f;
} other_thread_call;

static void *call_from_other_thread(void *arg) {
  other_thread_call *c = arg;
  c->done = weft_queue_task_done(c->q);
  c->join = weft_queue_join(c->q, &c->f);
  return NULL;
}

Test(queue_more, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q = NULL;
  weft_future *f = NULL;
  SEQ(weft_queue_new_ex(NULL, 1, NULL, WEFT_QUEUE_FIFO, NULL, &q), -EINVAL);
  SEQ(weft_queue_new_ex(loop, 1, NULL, WEFT_QUEUE_FIFO, NULL, NULL), -EINVAL);
  SEQ(weft_queue_new_ex(loop, 0, NULL, WEFT_QUEUE_LIFO, NULL, &q), -EINVAL);
  SEQ(weft_queue_new_ex(loop, SIZE_MAX / 2, NULL, WEFT_QUEUE_PRIORITY, cmp_int,
                        &q),
      -EINVAL); /* overflows the size */
  SEQ(weft_queue_new_ex(loop, 1, NULL, (weft_queue_kind)7, NULL, &q), -EINVAL);
  SEQ(weft_queue_new_ex(loop, 1, NULL, (weft_queue_kind)-1, NULL, &q), -EINVAL);
  SEQ(weft_queue_new_ex(loop, 1, NULL, (weft_queue_kind)7, cmp_int, &q),
      -EINVAL);
  SEQ(weft_queue_new_ex(loop, 1, NULL, WEFT_QUEUE_PRIORITY, NULL, &q), -EINVAL);
  SEQ(weft_queue_new_ex(loop, 1, NULL, WEFT_QUEUE_FIFO, cmp_int, &q), -EINVAL);
  SEQ(weft_queue_new_ex(loop, 1, NULL, WEFT_QUEUE_LIFO, cmp_int, &q), -EINVAL);
  cr_assert_null(q);
  SEQ(weft_queue_task_done(NULL), -EINVAL);
  SEQ(weft_queue_join(NULL, &f), -EINVAL);
  cr_assert_eq(weft_queue_unfinished(NULL), 0);
  SEQ(weft_queue_new_ex(loop, 1, dummy_dtor, WEFT_QUEUE_PRIORITY, cmp_int, &q),
      0);
  SEQ(weft_queue_join(q, NULL), -EINVAL);
  int a = 1;
  SEQ(weft_queue_try_put(q, &a), 0);
  other_thread_call c = {.q = q};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, call_from_other_thread, &c), 0);
  pthread_join(th, NULL);
  SEQ(c.done, -EPERM);
  SEQ(c.join, -EPERM);
  cr_assert_null(c.f);
  cr_assert_eq(weft_queue_unfinished(q), 1); /* untouched */
  SEQ(weft_queue_free(q), 0);
  th_run(loop); /* still usable */
  th_loop_finish(loop);
}

static int queue_more_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_queue *q = NULL;
  weft_future *j = NULL, *g = NULL, *j0 = NULL;
  int v[3] = {3, 1, 2};
  int err = weft_queue_new_ex(loop, 2, NULL, WEFT_QUEUE_PRIORITY, cmp_int, &q);
  if (err == 0) err = weft_queue_join(q, &j0);
  if (err == 0) err = weft_queue_try_put(q, &v[0]);
  if (err == 0) err = weft_queue_try_put(q, &v[1]);
  if (err == 0) err = weft_queue_join(q, &j);
  if (err == 0) err = weft_queue_get(q, &g);
  if (err == 0) cr_assert_eq(weft_future_value(g), &v[1]);
  if (err == 0) err = weft_queue_task_done(q);
  if (err == 0) err = weft_queue_task_done(q);
  if (err == 0) cr_assert_eq(st(j), WEFT_FUTURE_FULFILLED);
  if (q != NULL) weft_queue_free(q);
  weft_future *fs[3] = {j0, j, g};
  for (int i = 0; i < 3; i++)
    if (fs[i] != NULL) {
      weft_future_error(fs[i]);
      weft_future_unref(fs[i]);
    }
  th_run(loop);
  return err;
}

Test(queue_more, allocation_failure_at_each_site, .timeout = 30) {
  cr_assert_gt(th_alloc_sweep(queue_more_round, NULL), 0);
}
