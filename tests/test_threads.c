/* Threads and the loop, both ways: weft_future_wait from non-loop threads,
 * settles from other threads (which allocate nothing in steady state). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "support/test.h"

#define NTHREADS 8

static const char *en(int err) { return weft_err_name(err); }

void th_alloc_arm(size_t n); /* tests/support/helpers.c */

/* ---- helpers ------------------------------------------------------------- */

/* Runs the loop (kept alive by weft_loop_ref) until *flag is set. */
static void run_until(weft_loop *loop, atomic_int *flag, int want) {
  while (atomic_load(flag) < want)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

static void count_cb(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static int dtor_calls;
static void count_dtor(void *p) {
  (void)p;
  dtor_calls++;
}

/* ---- wait: normal use ------------------------------------------------------
 */

typedef struct waiter {
  weft_loop *loop;
  weft_future *f;
  int64_t timeout;
  int rc;
  weft_future_state state;
  int error;
  int64_t i64;
  void *ptr;
  double f64;
  atomic_int *done;
  atomic_int *ready;
  pid_t tid;
} waiter;

static void *wait_thread(void *arg) {
  waiter *w = arg;
  w->tid = (pid_t)syscall(SYS_gettid);
  if (w->ready != NULL)
    cr_assert_eq(weft_call_soon_threadsafe(w->loop, count_cb, w->ready), 0);
  w->rc = weft_future_wait(w->f, w->timeout);
  if (w->rc == 0) {
    w->state = weft_future_get_state(w->f);
    w->error = weft_future_error(w->f);
    w->i64 = weft_future_value_i64(w->f);
    w->ptr = weft_future_value(w->f);
    w->f64 = weft_future_value_f64(w->f);
  }
  if (w->rc != -ESHUTDOWN) {
    cr_assert_eq(weft_future_unref_threadsafe(w->f), 0);
    cr_assert_eq(weft_call_soon_threadsafe(w->loop, count_cb, w->done), 0);
  }
  return NULL;
}

Test(threads, wait_on_a_settled_future_returns_its_outcome, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  atomic_int done = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_resolve_i64(f, 42), 0);
  waiter w = {.loop = loop,
              .f = weft_future_ref(f),
              .timeout = WEFT_WAIT_FOREVER,
              .done = &done};
  weft_loop_ref(loop);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, wait_thread, &w), 0);
  run_until(loop, &done, 1);
  pthread_join(t, NULL);
  weft_loop_unref(loop);
  cr_assert_eq(w.rc, 0, "wait: %s", en(w.rc));
  cr_assert_eq(w.state, WEFT_FUTURE_FULFILLED);
  cr_assert_eq(w.error, 0);
  cr_assert_eq(w.i64, 42);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* Eight threads wait on eight pending futures with four kinds of outcome;
 * the loop settles each once its thread has said it is about to wait. */

Test(threads, eight_threads_wait_for_pending_futures, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *f[NTHREADS];
  waiter w[NTHREADS];
  pthread_t t[NTHREADS];
  atomic_int done = 0, ready = 0;
  static int payload[NTHREADS];
  dtor_calls = 0;
  weft_loop_ref(loop);
  for (int i = 0; i < NTHREADS; i++) {
    cr_assert_eq(weft_future_new(loop, &f[i]), 0);
    w[i] = (waiter){.loop = loop,
                    .f = weft_future_ref(f[i]),
                    .timeout = i % 2 ? 10000 : WEFT_WAIT_FOREVER,
                    .done = &done,
                    .ready = &ready};
    cr_assert_eq(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
  }
  run_until(loop, &ready, NTHREADS);
  for (int i = 0; i < NTHREADS; i++) {
    switch (i % 4) {
    case 0:
      cr_assert_eq(weft_future_resolve_i64(f[i], 1000 + i), 0);
      break;
    case 1:
      cr_assert_eq(weft_future_resolve(f[i], &payload[i], count_dtor), 0);
      break;
    case 2:
      cr_assert_eq(weft_future_reject(f[i], -EPIPE), 0);
      break;
    default:
      cr_assert_eq(weft_future_cancel(f[i]), 0);
      break;
    }
  }
  run_until(loop, &done, NTHREADS);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(t[i], NULL);
  weft_loop_unref(loop);
  for (int i = 0; i < NTHREADS; i++) {
    cr_assert_eq(w[i].rc, 0, "thread %d: %s", i, en(w[i].rc));
    switch (i % 4) {
    case 0:
      cr_assert_eq(w[i].state, WEFT_FUTURE_FULFILLED);
      cr_assert_eq(w[i].i64, 1000 + i);
      break;
    case 1:
      cr_assert_eq(w[i].state, WEFT_FUTURE_FULFILLED);
      cr_assert_eq(w[i].ptr, &payload[i]);
      break;
    case 2:
      cr_assert_eq(w[i].state, WEFT_FUTURE_REJECTED);
      cr_assert_eq(w[i].error, -EPIPE, "%s", en(w[i].error));
      break;
    default:
      cr_assert_eq(w[i].state, WEFT_FUTURE_CANCELLED);
      cr_assert_eq(w[i].error, -ECANCELED);
      break;
    }
    weft_future_unref(f[i]);
  }
  cr_assert_eq(dtor_calls, 2);
  th_loop_finish(loop);
}

/* ---- wait: bad inputs, the loop thread --------------------------------- */

Test(threads, wait_bad_inputs_and_loop_thread, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  dtor_calls = 0;
  cr_assert_eq(weft_future_wait(NULL, 0), -EINVAL);
  cr_assert_eq(weft_future_unref_threadsafe(NULL), -EINVAL);
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_wait(f, -2), -EINVAL);
  /* on the loop's own thread: at once, pending or settled */
  cr_assert_eq(weft_future_wait(f, WEFT_WAIT_FOREVER), -EDEADLK);
  cr_assert_eq(weft_future_wait(f, 0), -EDEADLK);
  cr_assert_eq(weft_future_resolve(f, &dtor_calls, count_dtor), 0);
  cr_assert_eq(weft_future_wait(f, 10), -EDEADLK);
  /* unref_threadsafe works from the loop thread too: the last reference
   * goes on the loop's next turn, not inline */
  cr_assert_eq(weft_future_unref_threadsafe(f), 0);
  cr_assert_eq(dtor_calls, 0);
  while (dtor_calls == 0)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(dtor_calls, 1);
  th_loop_finish(loop);
}

/* ---- wait: timeout, withdrawal ----------------------------------------------
 */

Test(threads, wait_times_out_and_withdraws, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  atomic_int done = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  waiter w = {
      .loop = loop, .f = weft_future_ref(f), .timeout = 20, .done = &done};
  waiter w0 = {
      .loop = loop, .f = weft_future_ref(f), .timeout = 0, .done = &done};
  weft_loop_ref(loop);
  pthread_t t, t0;
  cr_assert_eq(pthread_create(&t, NULL, wait_thread, &w), 0);
  cr_assert_eq(pthread_create(&t0, NULL, wait_thread, &w0), 0);
  run_until(loop, &done, 2);
  pthread_join(t, NULL);
  pthread_join(t0, NULL);
  weft_loop_unref(loop);
  cr_assert_eq(w.rc, -ETIMEDOUT, "%s", en(w.rc));
  cr_assert_eq(w0.rc, -ETIMEDOUT, "%s", en(w0.rc));
  /* the withdraws ran before the threads' unrefs (posts keep their order):
   * settling now wakes nobody and frees everything */
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_resolve_i64(f, 7), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  weft_future_unref(f);
  th_loop_finish(loop); /* asserts the waiters are freed */
}

/* ---- wait: the loop is freed while a thread waits ----------------------- */

/* True once the thread sits in futex(2): it has posted its wait. */
static bool in_futex(pid_t tid) {
  char path[64], buf[64] = {0};
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return false;
  bool yes =
      fgets(buf, sizeof buf, fp) != NULL && strtol(buf, NULL, 10) == SYS_futex;
  fclose(fp);
  return yes;
}

Test(threads, loop_free_wakes_waiters_with_eshutdown, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f[2];
  waiter w[2];
  pthread_t t[2];
  atomic_int ready = 0, done = 0;
  weft_loop_ref(loop);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(weft_future_new(loop, &f[i]), 0);
    w[i] = (waiter){.loop = loop,
                    .f = weft_future_ref(f[i]),
                    .timeout = i ? 60000 : WEFT_WAIT_FOREVER,
                    .done = &done,
                    .ready = &ready};
    cr_assert_eq(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
  }
  run_until(loop, &ready, 2);
  for (int i = 0; i < 2; i++)
    while (!in_futex(w[i].tid))
      weft_loop_run(loop, WEFT_RUN_NOWAIT);
  weft_loop_unref(loop);
  int err;
  while ((err = weft_loop_free(loop)) == -EBUSY)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(err, 0, "free: %s", en(err));
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(w[i].rc, -ESHUTDOWN, "thread %d: %s", i, en(w[i].rc));
  }
  cr_assert_eq(weft_alloc_live(), 0);
}

/* ---- wait: allocation failure at each site ------------------------------- */

typedef struct sweep_round {
  weft_timer tm; /* first: the tick finds the round from its timer */
  weft_future *f;
  atomic_int finished;
  waiter w;
} sweep_round;

static void *sweep_thread(void *arg) {
  sweep_round *r = arg;
  r->w.rc = weft_future_wait(r->f, WEFT_WAIT_FOREVER);
  if (r->w.rc == 0) r->w.i64 = weft_future_value_i64(r->f);
  atomic_store(&r->finished, 1);
  return NULL;
}

static void sweep_tick(weft_timer *t) {
  sweep_round *r = (sweep_round *)t;
  if (weft_future_get_state(r->f) == WEFT_FUTURE_PENDING)
    weft_future_resolve_i64(r->f, 5);
  if (atomic_load(&r->finished)) weft_timer_stop(t);
}

Test(threads, wait_fails_cleanly_without_memory, .timeout = 60) {
  size_t enomem = 0, n;
  for (n = 1; n < 200; n++) {
    th_alloc_install(0);
    weft_loop *loop = th_loop();
    sweep_round r = {0};
    cr_assert_eq(weft_future_new(loop, &r.f), 0);
    cr_assert_eq(weft_timer_init(loop, &r.tm), 0);
    cr_assert_eq(weft_timer_start(&r.tm, sweep_tick, 1, 1), 0);
    th_alloc_arm(n); /* the thread's waiter, its post ring, ... */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, sweep_thread, &r), 0);
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
    pthread_join(t, NULL);
    size_t failed = th_alloc_failed();
    th_alloc_arm(0);
    if (r.w.rc == -ENOMEM) {
      cr_assert_eq(failed, 1);
      enomem++;
    } else {
      cr_assert_eq(r.w.rc, 0, "round %zu: %s", n, en(r.w.rc));
      cr_assert_eq(r.w.i64, 5);
    }
    weft_future_unref(r.f);
    weft_close(&r.tm.base, NULL);
    th_loop_finish(loop);
    th_alloc_restore();
    if (failed == 0) break;
  }
  cr_assert_lt(n, 200, "never succeeded");
  cr_assert_geq(enomem, 1);
}

/* ---- threadsafe settles: no allocation in steady state ------------------ */

#define SETTLES 1000

typedef struct settler {
  weft_future **fs;
  int from, to;
  int errors;
} settler;

static void *settle_thread(void *arg) {
  settler *s = arg;
  for (int i = s->from; i < s->to; i++) {
    int err;
    switch (i % 3) {
    case 0:
      err = weft_future_resolve_i64_threadsafe(s->fs[i], i);
      break;
    case 1:
      err = weft_future_resolve_threadsafe(s->fs[i], s->fs, NULL);
      break;
    default:
      err = weft_future_reject_threadsafe(s->fs[i], -EIO);
      break;
    }
    s->errors += err != 0;
  }
  return NULL;
}

/* One round: SETTLES futures settled by `threads` threads; checks every
 * outcome. Returns malloc calls made during the round (counted from after
 * the futures were drawn). */
static size_t settle_round(weft_loop *loop, int threads) {
  static weft_future *fs[SETTLES];
  for (int i = 0; i < SETTLES; i++) {
    cr_assert_eq(weft_future_new(loop, &fs[i]), 0);
    weft_future_ref(fs[i]); /* the settle's */
  }
  size_t before = th_alloc_calls();
  settler s[NTHREADS];
  pthread_t t[NTHREADS];
  int per = SETTLES / threads;
  for (int k = 0; k < threads; k++) {
    s[k] = (settler){.fs = fs,
                     .from = k * per,
                     .to = k == threads - 1 ? SETTLES : (k + 1) * per};
    cr_assert_eq(pthread_create(&t[k], NULL, settle_thread, &s[k]), 0);
  }
  for (int k = 0; k < threads; k++) {
    pthread_join(t[k], NULL);
    cr_assert_eq(s[k].errors, 0);
  }
  for (int i = 0; i < SETTLES;) { /* every post was published: run until */
    if (weft_future_get_state(fs[i]) != WEFT_FUTURE_PENDING)
      i++;
    else
      weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  size_t calls = th_alloc_calls() - before;
  for (int i = 0; i < SETTLES; i++) {
    switch (i % 3) {
    case 0:
      cr_assert_eq(weft_future_value_i64(fs[i]), i);
      break;
    case 1:
      cr_assert_eq(weft_future_value(fs[i]), fs);
      break;
    default:
      cr_assert_eq(weft_future_error(fs[i]), -EIO);
      break;
    }
    weft_future_unref(fs[i]);
  }
  return calls;
}

Test(threads, threadsafe_settle_allocates_nothing_in_steady_state,
     .timeout = 20) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  /* warm-up: the messages, the post ring's segments (a ring of 1024-slot
   * segments needs a second one once posts cross a segment's end) */
  size_t warm = settle_round(loop, 1);
  cr_assert_geq(warm, SETTLES, "%zu", warm); /* all in flight at once */
  settle_round(loop, 1);
  for (int round = 0; round < 3; round++) {
    size_t calls = settle_round(loop, 1);
    cr_assert_eq(calls, 0, "round %d: %zu allocations for %d settles", round,
                 calls, SETTLES);
  }
  th_loop_finish(loop);
  th_alloc_restore();
}

Test(threads, eight_threads_settle_concurrently, .timeout = 30) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  for (int round = 0; round < 3; round++)
    settle_round(loop, NTHREADS);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* A settle that meets an already settled future hands the value to its
 * dtor on the loop thread, and a recycled message carries nothing over. */
Test(threads, threadsafe_settle_of_settled_future_runs_dtor, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  dtor_calls = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_resolve_i64(f, 3), 0);
  for (int i = 0; i < 3; i++) {
    weft_future_ref(f);
    cr_assert_eq(weft_future_resolve_threadsafe(f, &dtor_calls, count_dtor), 0);
    while (dtor_calls != i + 1)
      weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  weft_future_ref(f);
  cr_assert_eq(weft_future_resolve_i64_threadsafe(f, 9), 0);
  cr_assert_eq(weft_future_reject_threadsafe(f, 0), -EINVAL);
  cr_assert_eq(weft_future_resolve_i64_threadsafe(NULL, 9), -EINVAL);
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(dtor_calls, 3);
  cr_assert_eq(weft_future_value_i64(f), 3);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* ---- the queue, thread side -------------------------------------------------
 */

typedef struct qthread {
  weft_queue *q;
  int64_t timeout;
  int n;           /* gets to make (consumers) or items to put (producers) */
  int rc;          /* the last result */
  intptr_t got[8]; /* the first items got */
  int count;
  long long sum;
  atomic_int tid;
  atomic_int *consumed;
} qthread;

static void *get_thread(void *arg) {
  qthread *c = arg;
  atomic_store(&c->tid, (int)syscall(SYS_gettid));
  for (int i = 0; c->n < 0 || i < c->n; i++) {
    void *item;
    c->rc = weft_queue_get_threadsafe(c->q, &item, c->timeout);
    if (c->rc != 0) break;
    if (c->count < 8) c->got[c->count] = (intptr_t)item;
    c->count++;
    c->sum += (intptr_t)item;
    if (c->consumed != NULL) atomic_fetch_add(c->consumed, 1);
  }
  return NULL;
}

static void *put_thread(void *arg) {
  qthread *p = arg;
  for (int i = 1; i <= p->n; i++) {
    p->rc = weft_queue_put_threadsafe(p->q, (void *)(intptr_t)i);
    if (p->rc != 0) break;
  }
  return NULL;
}

static void queue_free_all(weft_loop *loop, weft_queue *q) {
  int err;
  while ((err = weft_queue_free(q)) == -EBUSY)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(err, 0, "%s", en(err));
}

Test(threads, queue_get_threadsafe_takes_in_order_and_times_out,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  cr_assert_eq(weft_queue_new(loop, 4, NULL, &q), 0);
  for (intptr_t i = 1; i <= 3; i++)
    cr_assert_eq(weft_queue_try_put(q, (void *)i), 0);
  qthread c = {.q = q, .timeout = WEFT_WAIT_FOREVER, .n = 3};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
  pthread_join(t, NULL);
  cr_assert_eq(c.rc, 0, "%s", en(c.rc));
  cr_assert_eq(c.count, 3);
  cr_assert_eq(c.got[0], 1);
  cr_assert_eq(c.got[1], 2);
  cr_assert_eq(c.got[2], 3);
  cr_assert_eq(weft_queue_len(q), 0);
  c = (qthread){.q = q, .timeout = 20, .n = 1};
  cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
  pthread_join(t, NULL);
  cr_assert_eq(c.rc, -ETIMEDOUT, "%s", en(c.rc));
  c = (qthread){.q = q, .timeout = 0, .n = 1};
  cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
  pthread_join(t, NULL);
  cr_assert_eq(c.rc, -ETIMEDOUT, "%s", en(c.rc));
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

Test(threads, queue_thread_get_refills_a_waiting_put, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *put;
  int a, b;
  cr_assert_eq(weft_queue_new(loop, 1, NULL, &q), 0);
  cr_assert_eq(weft_queue_try_put(q, &a), 0);
  cr_assert_eq(weft_queue_try_put(q, &b), -EAGAIN);
  cr_assert_eq(weft_queue_put(q, &b, &put), 0);
  cr_assert_eq(weft_future_get_state(put), WEFT_FUTURE_PENDING);
  qthread c = {.q = q, .timeout = 5000, .n = 1};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
  pthread_join(t, NULL);
  cr_assert_eq(c.rc, 0, "%s", en(c.rc));
  cr_assert_eq(c.got[0], (intptr_t)&a);
  while (weft_future_get_state(put) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_NOWAIT); /* the refill */
  cr_assert_eq(weft_future_error(put), 0);
  cr_assert_eq(weft_queue_len(q), 1);
  void *item;
  cr_assert_eq(weft_queue_try_get(q, &item), 0);
  cr_assert_eq(item, &b);
  cr_assert_eq(weft_queue_try_get(q, &item), -EAGAIN);
  weft_future_unref(put);
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

Test(threads, queue_close_wakes_blocked_threads, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  cr_assert_eq(weft_queue_new(loop, 2, NULL, &q), 0);
  qthread c[2];
  pthread_t t[2];
  for (int i = 0; i < 2; i++) {
    c[i] = (qthread){.q = q, .timeout = i ? 60000 : WEFT_WAIT_FOREVER, .n = 1};
    cr_assert_eq(pthread_create(&t[i], NULL, get_thread, &c[i]), 0);
  }
  for (int i = 0; i < 2; i++)
    while (atomic_load(&c[i].tid) == 0 || !in_futex(atomic_load(&c[i].tid)))
      sched_yield();
  cr_assert_eq(weft_queue_free(q), -EBUSY); /* threads are blocked in it */
  cr_assert_eq(weft_queue_close(q), 0);
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(c[i].rc, WEFT_ECLOSED, "%s", en(c[i].rc));
    cr_assert_eq(c[i].count, 0);
  }
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

Test(threads, queue_bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  void *item = &item;
  cr_assert_eq(weft_queue_new(loop, 1, NULL, &q), 0);
  cr_assert_eq(weft_queue_get_threadsafe(NULL, &item, 0), -EINVAL);
  cr_assert_eq(weft_queue_get_threadsafe(q, NULL, 0), -EINVAL);
  cr_assert_eq(weft_queue_get_threadsafe(q, &item, -2), -EINVAL);
  cr_assert_eq(weft_queue_get_threadsafe(q, &item, WEFT_WAIT_FOREVER),
               -EDEADLK);
  cr_assert_eq(weft_queue_try_put(NULL, item), -EINVAL);
  cr_assert_eq(weft_queue_try_get(NULL, &item), -EINVAL);
  cr_assert_eq(weft_queue_try_get(q, NULL), -EINVAL);
  cr_assert_eq(weft_queue_try_get(q, &item), -EAGAIN);
  cr_assert_eq(item, &item); /* untouched */
  cr_assert_eq(weft_queue_try_put(q, &q), 0);
  cr_assert_eq(weft_queue_close(q), 0);
  cr_assert_eq(weft_queue_try_put(q, &q), WEFT_ECLOSED);
  cr_assert_eq(weft_queue_try_get(q, &item),
               0); /* items inside still come out */
  cr_assert_eq(item, &q);
  cr_assert_eq(weft_queue_try_get(q, &item), WEFT_ECLOSED);
  qthread c = {.q = q, .timeout = WEFT_WAIT_FOREVER, .n = 1};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
  pthread_join(t, NULL);
  cr_assert_eq(c.rc, WEFT_ECLOSED, "%s", en(c.rc));
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

/* Four producer threads feed four consumer threads through a queue of 4
 * that the loop runs in between (arrivals and refills). */
#define QITEMS 2000

Test(threads, queue_four_producers_four_consumers, .timeout = 60) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  atomic_int consumed = 0;
  cr_assert_eq(weft_queue_new(loop, 4, NULL, &q), 0);
  qthread p[4], c[4];
  pthread_t tp[4], tc[4];
  for (int i = 0; i < 4; i++) {
    c[i] = (qthread){
        .q = q, .timeout = WEFT_WAIT_FOREVER, .n = -1, .consumed = &consumed};
    p[i] = (qthread){.q = q, .n = QITEMS};
    cr_assert_eq(pthread_create(&tc[i], NULL, get_thread, &c[i]), 0);
    cr_assert_eq(pthread_create(&tp[i], NULL, put_thread, &p[i]), 0);
  }
  while (atomic_load(&consumed) < 4 * QITEMS)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_queue_close(q), 0);
  long long sum = 0;
  int count = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(tp[i], NULL);
    pthread_join(tc[i], NULL);
    cr_assert_eq(p[i].rc, 0, "%s", en(p[i].rc));
    cr_assert_eq(c[i].rc, WEFT_ECLOSED, "%s", en(c[i].rc));
    sum += c[i].sum;
    count += c[i].count;
  }
  cr_assert_eq(count, 4 * QITEMS);
  cr_assert_eq(sum, 4LL * QITEMS * (QITEMS + 1) / 2);
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

/* A thread's get posts to the loop only when a weft_queue_put waits there
 * for the freed slot; the thread's first post needs its ring: when that
 * allocation fails the get returns -ENOMEM, the item stays in the queue
 * and the put keeps waiting. */
Test(threads, queue_get_threadsafe_fails_cleanly_without_memory,
     .timeout = 30) {
  size_t n, enomem = 0;
  for (n = 1; n < 100; n++) {
    th_alloc_install(0);
    weft_loop *loop = th_loop();
    weft_queue *q;
    weft_future *put;
    int a, b;
    cr_assert_eq(weft_queue_new(loop, 1, NULL, &q), 0);
    cr_assert_eq(weft_queue_try_put(q, &a), 0);
    cr_assert_eq(weft_queue_put(q, &b, &put), 0);
    th_alloc_arm(n);
    qthread c = {.q = q, .timeout = 1000, .n = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
    pthread_join(t, NULL);
    size_t failed = th_alloc_failed();
    th_alloc_arm(0);
    if (c.rc == -ENOMEM) {
      enomem++;
      cr_assert_eq(weft_queue_len(q), 1);
      cr_assert_eq(weft_future_get_state(put), WEFT_FUTURE_PENDING);
      void *item;
      cr_assert_eq(weft_queue_try_get(q, &item), 0); /* a, then b moves in */
      cr_assert_eq(item, &a);
    } else {
      cr_assert_eq(c.rc, 0, "round %zu: %s", n, en(c.rc));
      cr_assert_eq(c.got[0], (intptr_t)&a);
      while (weft_future_get_state(put) == WEFT_FUTURE_PENDING)
        weft_loop_run(loop, WEFT_RUN_NOWAIT); /* the refill */
    }
    cr_assert_eq(weft_future_error(put), 0);
    cr_assert_eq(weft_queue_len(q), 1); /* b */
    weft_future_unref(put);
    queue_free_all(loop, q);
    th_loop_finish(loop);
    th_alloc_restore();
    if (failed == 0) break;
  }
  cr_assert_lt(n, 100);
  cr_assert_geq(enomem, 1);
}

/* Thread to thread through the queue, with no waiter on the loop, takes
 * neither an allocation nor a post: items are in the queue when
 * put_threadsafe returns, and a blocked getter is handed the next one
 * without the loop running at all. */
Test(threads, queue_thread_to_thread_needs_no_loop_and_no_allocation,
     .timeout = 20) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  weft_queue *q;
  cr_assert_eq(weft_queue_new(loop, 4, NULL, &q), 0);
  size_t calls = th_alloc_calls();
  qthread c = {.q = q, .timeout = WEFT_WAIT_FOREVER, .n = 50};
  qthread p = {.q = q, .n = 50};
  pthread_t tc, tp;
  cr_assert_eq(pthread_create(&tc, NULL, get_thread, &c), 0);
  while (atomic_load(&c.tid) == 0 || !in_futex(atomic_load(&c.tid)))
    sched_yield(); /* blocked on the empty queue */
  cr_assert_eq(pthread_create(&tp, NULL, put_thread, &p), 0);
  pthread_join(tp, NULL);
  pthread_join(tc, NULL); /* the loop has not run meanwhile */
  cr_assert_eq(p.rc, 0, "%s", en(p.rc));
  cr_assert_eq(c.rc, 0, "%s", en(c.rc));
  cr_assert_eq(c.count, 50);
  for (int i = 0; i < 8; i++)
    cr_assert_eq(c.got[i], i + 1); /* in order */
  cr_assert_eq(c.sum, 50 * 51 / 2);
  cr_assert_eq(th_alloc_calls(), calls, "%zu allocations",
               th_alloc_calls() - calls);
  cr_assert_eq(weft_queue_unfinished(q), 50); /* every item entered */
  cr_assert_eq(weft_queue_len(q), 0);
  queue_free_all(loop, q);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* An item the loop puts goes to a thread blocked in get_threadsafe, and
 * counts as one unfinished task (it was counted twice once). */
Test(threads, queue_loop_put_to_a_blocked_thread_counts_once, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *p;
  int a, b;
  cr_assert_eq(weft_queue_new(loop, 2, NULL, &q), 0);
  for (int round = 0; round < 2; round++) {
    qthread c = {.q = q, .timeout = WEFT_WAIT_FOREVER, .n = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, get_thread, &c), 0);
    while (atomic_load(&c.tid) == 0 || !in_futex(atomic_load(&c.tid)))
      sched_yield();
    if (round == 0) {
      cr_assert_eq(weft_queue_try_put(q, &a), 0);
    } else {
      cr_assert_eq(weft_queue_put(q, &b, &p), 0);
      cr_assert_eq(weft_future_get_state(p), WEFT_FUTURE_FULFILLED);
      weft_future_unref(p);
    }
    pthread_join(t, NULL);
    cr_assert_eq(c.rc, 0, "%s", en(c.rc));
    cr_assert_eq(c.got[0], round == 0 ? (intptr_t)&a : (intptr_t)&b);
    cr_assert_eq(weft_queue_len(q), 0);
    cr_assert_eq(weft_queue_unfinished(q), (size_t)round + 1);
  }
  cr_assert_eq(weft_queue_task_done(q), 0);
  cr_assert_eq(weft_queue_task_done(q), 0);
  cr_assert_eq(weft_queue_task_done(q), -EOVERFLOW);
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

/* A weft_queue_get waiting on the loop is served before a thread blocked
 * in get_threadsafe: a thread's put is claimed for it, and only the next
 * item goes to the thread. */
Test(threads, queue_loop_get_is_served_before_blocked_threads, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *g;
  cr_assert_eq(weft_queue_new(loop, 4, NULL, &q), 0);
  qthread c = {.q = q, .timeout = WEFT_WAIT_FOREVER, .n = 1};
  pthread_t tc;
  cr_assert_eq(pthread_create(&tc, NULL, get_thread, &c), 0);
  while (atomic_load(&c.tid) == 0 || !in_futex(atomic_load(&c.tid)))
    sched_yield();
  cr_assert_eq(weft_queue_get(q, &g), 0);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_PENDING);
  qthread p = {.q = q, .n = 1};
  pthread_t tp;
  cr_assert_eq(pthread_create(&tp, NULL, put_thread, &p), 0);
  pthread_join(tp, NULL);
  cr_assert_eq(p.rc, 0, "%s", en(p.rc));
  cr_assert_eq(weft_queue_len(q), 1);       /* in the queue, promised to g */
  cr_assert(in_futex(atomic_load(&c.tid))); /* the thread still waits */
  while (weft_future_get_state(g) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_NOWAIT); /* the serve */
  cr_assert_eq(weft_future_value(g), (void *)1);
  weft_future_unref(g);
  cr_assert_eq(c.count, 0);
  cr_assert_eq(weft_queue_put_threadsafe(q, (void *)2), 0); /* to the thread */
  pthread_join(tc, NULL);
  cr_assert_eq(c.rc, 0, "%s", en(c.rc));
  cr_assert_eq(c.got[0], 2);
  cr_assert_eq(weft_queue_len(q), 0);
  /* a cancelled loop get gives its claim back to the threads */
  cr_assert_eq(weft_queue_get(q, &g), 0);
  cr_assert_eq(weft_queue_put_threadsafe(q, (void *)3), 0); /* claimed */
  c = (qthread){.q = q, .timeout = 0, .n = 1};
  cr_assert_eq(pthread_create(&tc, NULL, get_thread, &c), 0);
  pthread_join(tc, NULL);
  cr_assert_eq(c.rc, -ETIMEDOUT, "%s", en(c.rc)); /* not the thread's */
  cr_assert_eq(weft_future_cancel(g), 0);
  weft_future_unref(g);
  c = (qthread){.q = q, .timeout = 0, .n = 1};
  cr_assert_eq(pthread_create(&tc, NULL, get_thread, &c), 0);
  pthread_join(tc, NULL);
  cr_assert_eq(c.rc, 0, "%s", en(c.rc));
  cr_assert_eq(c.got[0], 3);
  /* closing before the serve ran: the waiting get still has its item */
  cr_assert_eq(weft_queue_get(q, &g), 0);
  cr_assert_eq(weft_queue_put_threadsafe(q, (void *)4), 0);
  cr_assert_eq(weft_queue_close(q), 0);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value(g), (void *)4);
  weft_future_unref(g);
  cr_assert_eq(weft_queue_len(q), 0);
  queue_free_all(loop, q); /* the serve on its way: -EBUSY until it ran */
  th_loop_finish(loop);
}

/* Eight threads (4 putting, 4 getting) and the loop (getting and putting
 * too, with futures) hammer one small queue; the loop closes it in the
 * middle. Every item is accounted for exactly once: got by one getter, or
 * left in the queue and freed by the dtor at weft_queue_free, or refused
 * (WEFT_ECLOSED) and still its putter's; none lost, none twice. */
#define HPUT 4
#define HGET 4
#define HITEMS 4000 /* per putting thread */
#define HLOOP 1000  /* loop puts */
#define HIDS (HPUT * HITEMS + HLOOP)

static atomic_int h_got[HIDS + 1];   /* per id: times got */
static atomic_int h_freed[HIDS + 1]; /* per id: times freed by the dtor */
static atomic_int h_dtors;
static bool h_loop_ok[HLOOP + 1]; /* per loop put: fulfilled */

static void h_dtor(void *p) {
  atomic_fetch_add(&h_freed[(intptr_t)p], 1);
  atomic_fetch_add(&h_dtors, 1);
}

typedef struct hput {
  weft_queue *q;
  int base;     /* ids base+1 .. base+HITEMS */
  int accepted; /* puts that returned 0 (a prefix: then WEFT_ECLOSED) */
  int rc;
} hput;

static void *h_put_thread(void *arg) {
  hput *p = arg;
  for (int i = 1; i <= HITEMS; i++) {
    p->rc = weft_queue_put_threadsafe(p->q, (void *)(intptr_t)(p->base + i));
    if (p->rc != 0) break;
    p->accepted++;
  }
  return NULL;
}

typedef struct hget {
  weft_queue *q;
  int count, rc;
  atomic_int *total;
} hget;

static void *h_get_thread(void *arg) {
  hget *g = arg;
  for (;;) {
    void *item;
    /* a timeout now and then: the timed path races the hand-offs */
    g->rc = weft_queue_get_threadsafe(g->q, &item, g->count % 7 == 0 ? 1 : -1);
    if (g->rc == -ETIMEDOUT) continue;
    if (g->rc != 0) break;
    atomic_fetch_add(&h_got[(intptr_t)item], 1);
    atomic_fetch_add(g->total, 1);
    g->count++;
  }
  return NULL;
}

Test(threads, queue_eight_threads_and_the_loop_close_in_the_middle,
     .timeout = 120) {
  for (int i = 0; i <= HIDS; i++) {
    atomic_store(&h_got[i], 0);
    atomic_store(&h_freed[i], 0);
  }
  atomic_store(&h_dtors, 0);
  memset(h_loop_ok, 0, sizeof h_loop_ok);
  weft_loop *loop = th_loop();
  weft_queue *q;
  atomic_int total = 0;
  cr_assert_eq(weft_queue_new(loop, 3, h_dtor, &q), 0);
  hput p[HPUT];
  hget g[HGET];
  pthread_t tp[HPUT], tg[HGET];
  for (int i = 0; i < HGET; i++) {
    g[i] = (hget){.q = q, .total = &total};
    cr_assert_eq(pthread_create(&tg[i], NULL, h_get_thread, &g[i]), 0);
  }
  for (int i = 0; i < HPUT; i++) {
    p[i] = (hput){.q = q, .base = i * HITEMS};
    cr_assert_eq(pthread_create(&tp[i], NULL, h_put_thread, &p[i]), 0);
  }
  /* the loop: one get and one put of its own pending at a time */
  weft_future *lg = NULL, *lp = NULL;
  int loop_next = HPUT * HITEMS + 1, loop_put_ok = 0, loop_got = 0;
  int lp_id = 0;
  bool closed = false;
  for (;;) {
    if (lg == NULL) {
      int err = weft_queue_get(q, &lg);
      if (err == WEFT_ECLOSED)
        lg = NULL;
      else
        cr_assert_eq(err, 0, "%s", en(err));
    }
    if (lp == NULL && !closed && loop_next <= HIDS) {
      lp_id = loop_next++;
      cr_assert_eq(weft_queue_put(q, (void *)(intptr_t)lp_id, &lp), 0);
    }
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
    if (lg != NULL && weft_future_get_state(lg) != WEFT_FUTURE_PENDING) {
      if (weft_future_get_state(lg) == WEFT_FUTURE_FULFILLED) {
        atomic_fetch_add(&h_got[(intptr_t)weft_future_value(lg)], 1);
        atomic_fetch_add(&total, 1);
        loop_got++;
      } else {
        cr_assert_eq(weft_future_error(lg), WEFT_ECLOSED);
      }
      weft_future_unref(lg);
      lg = NULL;
    }
    if (lp != NULL && weft_future_get_state(lp) != WEFT_FUTURE_PENDING) {
      if (weft_future_get_state(lp) == WEFT_FUTURE_FULFILLED) {
        loop_put_ok++;
        h_loop_ok[lp_id - HPUT * HITEMS] = true;
      } else
        cr_assert_eq(weft_future_error(lp), WEFT_ECLOSED); /* still ours */
      weft_future_unref(lp);
      lp = NULL;
    }
    if (!closed && atomic_load(&total) >= (HPUT * HITEMS) / 2) {
      cr_assert_eq(weft_queue_close(q), 0);
      closed = true;
    }
    if (closed && lg == NULL && lp == NULL) break;
  }
  int accepted = loop_put_ok, got = loop_got;
  for (int i = 0; i < HPUT; i++) {
    pthread_join(tp[i], NULL);
    cr_assert(p[i].rc == 0 || p[i].rc == WEFT_ECLOSED, "%s", en(p[i].rc));
    accepted += p[i].accepted;
  }
  for (int i = 0; i < HGET; i++) {
    pthread_join(tg[i], NULL);
    cr_assert_eq(g[i].rc, WEFT_ECLOSED, "%s", en(g[i].rc));
    got += g[i].count;
  }
  size_t left = weft_queue_len(q);
  size_t unfinished = weft_queue_unfinished(q);
  queue_free_all(loop, q);
  cr_assert_eq(atomic_load(&h_dtors), (int)left);
  /* per id: a thread's accepted puts are its first ids, in order */
  for (int i = 0; i < HPUT; i++)
    for (int k = 1; k <= HITEMS; k++) {
      int id = p[i].base + k;
      int seen = atomic_load(&h_got[id]) + atomic_load(&h_freed[id]);
      cr_assert_eq(seen, k <= p[i].accepted ? 1 : 0, "id %d seen %d", id, seen);
    }
  for (int id = HPUT * HITEMS + 1; id <= HIDS; id++) {
    int seen = atomic_load(&h_got[id]) + atomic_load(&h_freed[id]);
    cr_assert_eq(seen, h_loop_ok[id - HPUT * HITEMS] ? 1 : 0,
                 "loop id %d seen %d", id, seen);
  }
  cr_assert_eq(unfinished, (size_t)accepted,
               "unfinished %zu, accepted %d (loop %d), got %d, left %zu",
               unfinished, accepted, loop_put_ok, got, left);
  cr_assert_eq((size_t)got + left, (size_t)accepted, "got %d left %zu of %d",
               got, left, accepted);
  th_loop_finish(loop);
}

/* ---- weft_thread_spawn ------------------------------------------------------
 */

static atomic_int spawn_dtors;
static void spawn_dtor(void *p) {
  (void)p;
  atomic_fetch_add(&spawn_dtors, 1);
}

static int body_i64(weft_thread *t, void *arg) {
  char name[16] = {0};
  pthread_getname_np(pthread_self(), name, sizeof name);
  weft_thread_return_i64(t, strcmp(name, "worker-01234567") == 0 ? 77 : -1);
  (void)arg;
  return 0;
}

static int body_ptr(weft_thread *t, void *arg) {
  weft_thread_return(t, arg, spawn_dtor);
  return 0;
}

static int body_err(weft_thread *t, void *arg) {
  (void)t;
  (void)arg;
  return -EPIPE;
}

/* Runs until cancelled; says when it has started. */
static int body_cancel(weft_thread *t, void *arg) {
  atomic_store((atomic_int *)arg, 1);
  while (!weft_thread_cancelled(t))
    sched_yield();
  weft_thread_return(t, arg, spawn_dtor); /* dropped: nobody takes it */
  return 0;
}

Test(threads, spawn_settles_with_the_result, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *f[NTHREADS];
  static int payload;
  atomic_store(&spawn_dtors, 0);
  for (int i = 0; i < NTHREADS; i++) {
    weft_thread_fn fn = i % 3 == 0   ? body_i64
                        : i % 3 == 1 ? body_ptr
                                     : body_err;
    cr_assert_eq(
        weft_thread_spawn(loop, "worker-0123456789", fn, &payload, &f[i]), 0);
  }
  cr_assert_eq(weft_loop_free(loop), -EBUSY); /* threads still to be joined */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT),
               0); /* alive until all settled */
  for (int i = 0; i < NTHREADS; i++) {
    switch (i % 3) {
    case 0:
      cr_assert_eq(weft_future_value_i64(f[i]), 77);
      break; /* name cut to 15 */
    case 1:
      cr_assert_eq(weft_future_value(f[i]), &payload);
      break;
    default:
      cr_assert_eq(weft_future_error(f[i]), -EPIPE);
      break;
    }
    weft_future_unref(f[i]);
  }
  cr_assert_eq(atomic_load(&spawn_dtors), 3); /* i = 1, 4, 7 */
  th_loop_finish(loop);
}

/* Eight spawned threads use every cross-thread path at once: each puts
 * SPITEMS items (put_threadsafe) that the loop takes with weft_queue_get
 * futures (the serve path), then waits (weft_future_wait) for a gate the
 * loop opens once it has every item, then returns its count. */
#define SPITEMS 300

typedef struct spawn_feed {
  weft_queue *q;
  weft_future *gate;
  int base;
} spawn_feed;

static int body_feed(weft_thread *t, void *arg) {
  spawn_feed *sf = arg;
  int n = 0;
  for (int i = 1; i <= SPITEMS; i++) {
    if (weft_queue_put_threadsafe(sf->q, (void *)(intptr_t)(sf->base + i)) != 0)
      return -EPROTO;
    n++;
  }
  int err = weft_future_wait(sf->gate, WEFT_WAIT_FOREVER);
  if (err != 0) return err;
  weft_thread_return_i64(t, n + weft_future_value_i64(sf->gate));
  return 0;
}

Test(threads, eight_spawned_threads_put_wait_and_return, .timeout = 60) {
  weft_loop *loop = th_loop();
  weft_queue *q;
  weft_future *gate, *f[NTHREADS];
  spawn_feed sf[NTHREADS];
  static atomic_int seen[NTHREADS * SPITEMS + 1];
  for (int i = 0; i <= NTHREADS * SPITEMS; i++)
    atomic_store(&seen[i], 0);
  cr_assert_eq(weft_queue_new(loop, 8, NULL, &q), 0);
  cr_assert_eq(weft_future_new(loop, &gate), 0);
  for (int i = 0; i < NTHREADS; i++) {
    sf[i] = (spawn_feed){.q = q, .gate = gate, .base = i * SPITEMS};
    cr_assert_eq(weft_thread_spawn(loop, "feeder", body_feed, &sf[i], &f[i]),
                 0);
  }
  int got = 0;
  weft_future *g = NULL;
  while (got < NTHREADS * SPITEMS) {
    if (g == NULL) cr_assert_eq(weft_queue_get(q, &g), 0);
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
    if (weft_future_get_state(g) == WEFT_FUTURE_PENDING) continue;
    cr_assert_eq(weft_future_error(g), 0, "%s", en(weft_future_error(g)));
    atomic_fetch_add(&seen[(intptr_t)weft_future_value(g)], 1);
    weft_future_unref(g);
    g = NULL;
    got++;
  }
  cr_assert_eq(weft_queue_len(q), 0);
  cr_assert_eq(weft_queue_unfinished(q), (size_t)got);
  for (int i = 1; i <= NTHREADS * SPITEMS; i++)
    cr_assert_eq(atomic_load(&seen[i]), 1, "item %d seen %d", i,
                 atomic_load(&seen[i]));
  cr_assert_eq(weft_future_resolve_i64(gate, 1000), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0); /* all settle */
  for (int i = 0; i < NTHREADS; i++) {
    cr_assert_eq(weft_future_error(f[i]), 0, "%s", en(weft_future_error(f[i])));
    cr_assert_eq(weft_future_value_i64(f[i]), SPITEMS + 1000);
    weft_future_unref(f[i]);
  }
  weft_future_unref(gate);
  queue_free_all(loop, q);
  th_loop_finish(loop);
}

Test(threads, spawn_cancel_raises_the_flag_and_drops_the_value, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  atomic_int started = 0;
  atomic_store(&spawn_dtors, 0);
  cr_assert_eq(weft_thread_spawn(loop, NULL, body_cancel, &started, &f), 0);
  while (!atomic_load(&started))
    sched_yield();
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0); /* until joined */
  cr_assert_eq(atomic_load(&spawn_dtors), 1);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(threads, spawn_bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  cr_assert_eq(weft_thread_spawn(NULL, "x", body_i64, NULL, &f), -EINVAL);
  cr_assert_eq(weft_thread_spawn(loop, "x", NULL, NULL, &f), -EINVAL);
  cr_assert_eq(weft_thread_spawn(loop, "x", body_i64, NULL, NULL), -EINVAL);
  cr_assert_null(f);
  cr_assert_eq(weft_thread_cancelled(NULL), false);
  weft_thread_return(NULL, NULL, NULL);
  weft_thread_return_i64(NULL, 1);
  th_loop_finish(loop);
}

Test(threads, spawn_fails_cleanly_without_memory, .timeout = 60) {
  size_t n, enomem = 0;
  for (n = 1; n < 100; n++) {
    th_alloc_install(0);
    weft_loop *loop = th_loop();
    th_alloc_arm(n);
    weft_future *f = NULL;
    int err = weft_thread_spawn(loop, "sweep", body_i64, NULL, &f);
    if (err == 0) cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
    size_t failed = th_alloc_failed();
    th_alloc_arm(0);
    if (err == -ENOMEM) {
      enomem++;
      cr_assert_null(f);
    } else {
      cr_assert_eq(err, 0, "round %zu: %s", n, en(err));
      cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
      weft_future_unref(f);
    }
    th_loop_finish(loop);
    th_alloc_restore();
    if (failed == 0) break;
  }
  cr_assert_lt(n, 100);
  cr_assert_geq(enomem, 1);
}
