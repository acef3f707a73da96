/* Futures: producer and consumer sides, cancellation, the unobserved-error
 * hook, threadsafe settles and allocation behaviour. Combinators and timed
 * futures are in test_future_comb.c. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "support/test.h"

/* weft__future_slabs_validate and the module state, for the slab test */
#include "promises/internal.h"

static int frees;
static void count_free(void *p) {
  frees++;
  free(p);
}

static int hooks;
static void on_cancel_count(weft_future *f, void *arg) {
  (void)f;
  (void)arg;
  hooks++;
}

/* ---- producer side ----------------------------------------------------- */

Test(future, settles_once_and_reports_state, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_error(f), 0);
  cr_assert_eq(weft_future_loop(f), loop);
  cr_assert_eq(weft_future_resolve_i64(f, 42), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 42);
  cr_assert_eq(weft_future_resolve_i64(f, 7), -EALREADY);
  cr_assert_eq(weft_future_reject(f, -EIO), -EALREADY);
  cr_assert_eq(weft_future_cancel(f), -EALREADY);
  cr_assert_eq(weft_future_value_i64(f), 42);
  cr_assert_null(weft_future_value(f));
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* The names renamed to the getter rule stay usable, deprecated, for one
 * release. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
Test(future, deprecated_names_still_work, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_resolve_i64(f, 1), 0);
  cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_FULFILLED);
  weft_pool_stats st;
  cr_assert_eq(weft_pool_stats_get(loop, WEFT_LANE_CPU, &st), 0);
  cr_assert_eq(weft_pool_stats_get(loop, WEFT_LANE_CPU, NULL), -EINVAL);
  weft_future_unref(f);
  th_loop_finish(loop);
}
#pragma GCC diagnostic pop

Test(future, pointer_value_owned_and_not_consumed_on_failure, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  frees = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  char *a = malloc(8), *b = malloc(8);
  cr_assert_eq(weft_future_resolve(f, a, count_free), 0);
  cr_assert_eq(weft_future_resolve(f, b, count_free), -EALREADY);
  cr_assert_eq(weft_future_value(f), a);
  free(b); /* the failed resolve left it with us */
  weft_future_ref(f);
  weft_future_unref(f);
  cr_assert_eq(frees, 0);
  weft_future_unref(f);
  cr_assert_eq(frees, 1);
  th_loop_finish(loop);
}

Test(future, double_and_rejection_values, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f, *g;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_new(loop, &g), 0);
  cr_assert_eq(weft_future_resolve_f64(f, 2.5), 0);
  cr_assert_float_eq(weft_future_value_f64(f), 2.5, 1e-12);
  cr_assert_eq(weft_future_value_i64(f), 0);
  cr_assert_eq(weft_future_reject(g, -EPIPE), 0);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(g), -EPIPE);
  cr_assert_eq(weft_future_value_i64(g), 0);
  weft_future_unref(f);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(future, bad_inputs_are_rejected, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  cr_assert_eq(weft_future_new(NULL, &f), -EINVAL);
  cr_assert_eq(weft_future_new(loop, NULL), -EINVAL);
  cr_assert_eq(weft_future_resolve(NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_resolve_i64(NULL, 1), -EINVAL);
  cr_assert_eq(weft_future_resolve_f64(NULL, 1), -EINVAL);
  cr_assert_eq(weft_future_reject(NULL, -EIO), -EINVAL);
  cr_assert_eq(weft_future_cancel(NULL), -EINVAL);
  cr_assert_eq(weft_future_on_cancel(NULL, on_cancel_count, NULL), -EINVAL);
  cr_assert_eq(weft_future_error(NULL), -EINVAL);
  cr_assert_eq(weft_future_get_state(NULL), WEFT_FUTURE_PENDING);
  cr_assert_null(weft_future_loop(NULL));
  cr_assert_null(weft_future_value(NULL));
  cr_assert_eq(weft_future_value_i64(NULL), 0);
  cr_assert_float_eq(weft_future_value_f64(NULL), 0.0, 1e-12);
  cr_assert_eq(weft_future_resolve_i64_threadsafe(NULL, 1), -EINVAL);
  cr_assert_null(weft_future_ref(NULL));
  weft_future_unref(NULL);
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_reject(f, 0), -EINVAL);
  cr_assert_eq(weft_future_reject(f, 5), -EINVAL);
  cr_assert_eq(weft_future_on_cancel(f, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_then(NULL, NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_then(f, NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_catch(f, NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_finally(f, NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_then2(f, NULL, NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_on_settled(f, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_off_settled(NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_resolve_threadsafe(NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_reject_threadsafe(f, 1), -EINVAL);
  cr_assert_eq(weft_future_set_unhandled_hook(NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_adopt(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_resolve_i64(f, 1), 0); /* still usable */
  cr_assert_eq(weft_future_on_cancel(f, on_cancel_count, NULL), -EALREADY);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(future, is_at_most_64_bytes, .timeout = 10) {
  cr_assert_leq(weft_future_size(), 64);
}

/* ---- cancellation ------------------------------------------------------ */

Test(future, cancel_runs_the_hook_once, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  hooks = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_on_cancel(f, on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(hooks, 1);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  cr_assert_eq(weft_future_cancel(f), -EALREADY);
  cr_assert_eq(weft_future_resolve_i64(f, 1), -EALREADY);
  cr_assert_eq(hooks, 1);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(future, hook_does_not_run_when_settled_normally, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  hooks = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_on_cancel(f, on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_resolve_i64(f, 1), 0);
  cr_assert_eq(weft_future_cancel(f), -EALREADY);
  weft_future_unref(f);
  cr_assert_eq(hooks, 0);
  th_loop_finish(loop);
}

static int never(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  (*(int *)arg)++;
  return 0;
}

Test(future, cancelling_derived_cancels_sole_source, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *src, *d1, *d2;
  int calls = 0;
  hooks = 0;
  cr_assert_eq(weft_future_new(loop, &src), 0);
  cr_assert_eq(weft_future_on_cancel(src, on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_then(src, never, &calls, &d1), 0);
  cr_assert_eq(weft_future_then(d1, never, &calls, &d2), 0);
  cr_assert_eq(weft_future_cancel(d2), 0);
  cr_assert_eq(weft_future_get_state(d1), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(src), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 1);
  th_run(loop);
  cr_assert_eq(calls, 0);
  weft_future_unref(d1);
  weft_future_unref(d2);
  weft_future_unref(src);
  th_loop_finish(loop);
}

Test(future, cancelling_one_of_two_consumers_spares_source, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *src, *a, *b;
  int calls = 0;
  hooks = 0;
  cr_assert_eq(weft_future_new(loop, &src), 0);
  cr_assert_eq(weft_future_on_cancel(src, on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_then(src, never, &calls, &a), 0);
  cr_assert_eq(weft_future_then(src, never, &calls, &b), 0);
  cr_assert_eq(weft_future_cancel(a), 0);
  cr_assert_eq(weft_future_get_state(src), WEFT_FUTURE_PENDING);
  cr_assert_eq(hooks, 0);
  cr_assert_eq(weft_future_resolve_i64(src, 3), 0);
  th_run(loop);
  cr_assert_eq(calls, 1); /* b ran, a did not */
  cr_assert_eq(weft_future_get_state(b), WEFT_FUTURE_FULFILLED);
  weft_future_unref(a);
  weft_future_unref(b);
  weft_future_unref(src);
  th_loop_finish(loop);
}

static int adopt_running(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  weft_future *g = arg;
  cr_assert_eq(weft_future_adopt(out, weft_future_ref(g)), 0);
  cr_assert_eq(weft_future_adopt(out, weft_future_ref(g)), -EBUSY);
  cr_assert_eq(weft_future_resolve_i64(out, 1), -EBUSY); /* decided by g */
  return -EIO; /* ignored: out already adopts g */
}

Test(future, adopt_and_settle_rules, .timeout = 10) {
  weft_loop *loop = th_loop(), *other = th_loop();
  weft_future *f, *g, *d, *x, *done;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_new(loop, &g), 0);
  cr_assert_eq(weft_future_new(other, &x), 0);
  cr_assert_eq(weft_future_new(loop, &done), 0);
  cr_assert_eq(weft_future_resolve_i64(done, 1), 0);
  cr_assert_eq(weft_future_then(f, adopt_running, g, &d), 0);
  /* outside its continuation a derived future is not the caller's */
  cr_assert_eq(weft_future_resolve_i64(d, 1), -EBUSY);
  cr_assert_eq(weft_future_reject(d, -EIO), -EBUSY);
  cr_assert_eq(weft_future_on_cancel(d, on_cancel_count, NULL), -EBUSY);
  cr_assert_eq(weft_future_adopt(d, weft_future_ref(g)), -EBUSY);
  cr_assert_eq(weft_future_adopt(f, weft_future_ref(x)), -EINVAL); /* loops */
  cr_assert_eq(weft_future_adopt(done, weft_future_ref(g)), -EALREADY);
  cr_assert_eq(weft_future_adopt(NULL, weft_future_ref(g)), -EINVAL);
  cr_assert_eq(weft_future_on_cancel(g, on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_adopt(g, weft_future_ref(done)), -EBUSY); /* hook */
  cr_assert_eq(weft_future_resolve_i64(f, 0), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(d), WEFT_FUTURE_PENDING); /* waits on g */
  cr_assert_eq(weft_future_resolve_f64(g, 0.5), 0);
  th_run(loop);
  cr_assert_float_eq(weft_future_value_f64(d), 0.5, 1e-12);
  weft_future *all[] = {f, g, d, x, done};
  for (int i = 0; i < 5; i++)
    weft_future_unref(all[i]);
  cr_assert_eq(weft_loop_free(other), 0);
  th_loop_finish(loop);
}

static int threadsafe_settle_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f = NULL;
  int err = weft_future_new(loop, &f);
  if (err == 0) {
    weft_future_ref(f); /* for the settle */
    err = weft_future_resolve_i64_threadsafe(f, 5);
    if (err != 0) weft_future_unref(f); /* not consumed */
  }
  while (err == 0 && weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  if (err == 0) cr_assert_eq(weft_future_value_i64(f), 5);
  weft_future_unref(f);
  return err;
}

Test(future, threadsafe_settle_fails_cleanly_without_memory, .timeout = 20) {
  th_alloc_sweep(threadsafe_settle_round, NULL);
}

/* ---- unobserved rejections --------------------------------------------- */

static int unhandled, unhandled_err;
static void on_unhandled(weft_loop *loop, int err, void *arg) {
  (void)loop;
  (void)arg;
  unhandled++;
  unhandled_err = err;
}

Test(future, unobserved_rejection_is_reported_once, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f, *g, *c;
  unhandled = 0;
  cr_assert_eq(weft_future_set_unhandled_hook(loop, on_unhandled, NULL), 0);
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_new(loop, &g), 0);
  cr_assert_eq(weft_future_new(loop, &c), 0);
  cr_assert_eq(weft_future_reject(f, -EIO), 0);
  cr_assert_eq(weft_future_reject(g, -EPIPE), 0);
  cr_assert_eq(weft_future_error(g), -EPIPE); /* observed */
  cr_assert_eq(weft_future_cancel(c), 0);     /* cancellation is no error */
  weft_future_unref(f);
  weft_future_unref(g);
  weft_future_unref(c);
  cr_assert_eq(unhandled, 1);
  cr_assert_eq(unhandled_err, -EIO);
  th_loop_finish(loop);
}

/* ---- callback style -------------------------------------------------- */

static int settled_calls;
static void on_settled(weft_future *f, void *arg) {
  settled_calls++;
  *(int64_t *)arg = weft_future_value_i64(f);
}

Test(future, on_settled_runs_deferred_and_can_be_removed, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  int64_t got = 0, other = 0;
  settled_calls = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_on_settled(f, on_settled, &got), 0);
  cr_assert_eq(weft_future_on_settled(f, on_settled, &other), 0);
  cr_assert_eq(weft_future_off_settled(f, on_settled, &other), 1);
  cr_assert_eq(weft_future_off_settled(f, on_settled, &other), 0);
  cr_assert_eq(weft_future_resolve_i64(f, 9), 0);
  cr_assert_eq(settled_calls, 0); /* never inline */
  cr_assert_eq(weft_future_on_settled(f, on_settled, &other), 0);
  cr_assert_eq(weft_future_off_settled(f, on_settled, &other), 1);
  th_run(loop);
  cr_assert_eq(settled_calls, 1);
  cr_assert_eq(got, 9);
  cr_assert_eq(other, 0);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* ---- threads ------------------------------------------------------------ */

#define NTHREADS 8
#define PER_THREAD 200

static weft_future *ts_futs[NTHREADS][PER_THREAD];

static void *ts_worker(void *arg) {
  intptr_t t = (intptr_t)arg;
  for (int i = 0; i < PER_THREAD; i++) {
    weft_future *f = ts_futs[t][i];
    int err = (i % 3 == 2) ? weft_future_reject_threadsafe(f, -EIO)
              : (i % 3 == 1)
                  ? weft_future_resolve_threadsafe(f, malloc(4), count_free)
                  : weft_future_resolve_i64_threadsafe(f, t * 1000 + i);
    if (err != 0) abort();
  }
  return NULL;
}

static int ts_done;
static void ts_settled(weft_future *f, void *arg) {
  (void)f;
  if (++ts_done == NTHREADS * PER_THREAD) weft_loop_unref(arg);
}

Test(future, threadsafe_settles_from_eight_threads, .timeout = 30) {
  weft_loop *loop = th_loop();
  frees = ts_done = 0;
  for (int t = 0; t < NTHREADS; t++)
    for (int i = 0; i < PER_THREAD; i++) {
      cr_assert_eq(weft_future_new(loop, &ts_futs[t][i]), 0);
      cr_assert_eq(weft_future_on_settled(ts_futs[t][i], ts_settled, loop), 0);
      weft_future_ref(ts_futs[t][i]); /* handed to the worker */
    }
  weft_loop_ref(loop);
  pthread_t th[NTHREADS];
  for (intptr_t t = 0; t < NTHREADS; t++)
    cr_assert_eq(pthread_create(&th[t], NULL, ts_worker, (void *)t), 0);
  th_run(loop);
  for (int t = 0; t < NTHREADS; t++)
    pthread_join(th[t], NULL);
  cr_assert_eq(ts_done, NTHREADS * PER_THREAD);
  int ptrs = 0;
  for (int t = 0; t < NTHREADS; t++)
    for (int i = 0; i < PER_THREAD; i++) {
      weft_future *f = ts_futs[t][i];
      if (i % 3 == 0)
        cr_assert_eq(weft_future_value_i64(f), t * 1000 + i);
      else if (i % 3 == 2)
        cr_assert_eq(weft_future_error(f), -EIO);
      else
        ptrs++;
      weft_future_unref(f);
    }
  cr_assert_eq(frees, ptrs);
  cr_assert_eq(ptrs, NTHREADS * 67);
  th_loop_finish(loop);
}

static weft_loop *late_loop;
static void late_free(void *p) {
  frees++;
  free(p);
  weft_loop_unref(late_loop); /* runs on the loop thread */
}

static void *late_worker(void *arg) {
  if (weft_future_resolve_threadsafe(arg, malloc(4), late_free) != 0) abort();
  return NULL;
}

Test(future, threadsafe_settle_after_cancel_frees_value, .timeout = 10) {
  weft_loop *loop = late_loop = th_loop();
  weft_future *f;
  frees = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_loop_ref(loop);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, late_worker, weft_future_ref(f)), 0);
  th_run(loop);
  pthread_join(th, NULL);
  cr_assert_eq(frees, 1); /* the late value was destroyed on the loop */
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static void late_settled(weft_future *f, void *arg) {
  (void)f;
  weft_loop_unref(arg);
}

/* ---- allocation ------------------------------------------------------ */

static int plus_one(weft_future *in, weft_future *out, void *arg) {
  (void)arg;
  return weft_future_resolve_i64(out, weft_future_value_i64(in) + 1);
}

static void churn(weft_loop *loop, int n) {
  for (int i = 0; i < n; i++) {
    weft_future *f, *d;
    cr_assert_eq(weft_future_new(loop, &f), 0);
    cr_assert_eq(weft_future_then(f, plus_one, NULL, &d), 0);
    cr_assert_eq(weft_future_resolve_i64(f, i), 0);
    th_run(loop);
    cr_assert_eq(weft_future_value_i64(d), i + 1);
    weft_future_unref(f);
    weft_future_unref(d);
  }
}

Test(future, steady_state_allocates_nothing, .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  churn(loop, 10); /* warm the free lists */
  size_t before = th_alloc_calls();
  churn(loop, 1000);
  cr_assert_eq(th_alloc_calls(), before);
  th_loop_finish(loop);
  th_alloc_restore();
}

static int then_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f = NULL, *d = NULL;
  int err = weft_future_new(loop, &f);
  if (err == 0) err = weft_future_then(f, plus_one, NULL, &d);
  if (err == 0) err = weft_future_on_settled(d, late_settled, loop);
  if (err == 0) cr_assert_eq(weft_future_resolve_i64(f, 1), 0);
  weft_loop_ref(loop); /* late_settled drops it */
  if (err != 0)
    weft_loop_unref(loop);
  else
    th_run(loop);
  if (err == 0) cr_assert_eq(weft_future_value_i64(d), 2);
  weft_future_unref(d);
  weft_future_unref(f);
  return err;
}

Test(future, then_and_on_settled_fail_cleanly_without_memory, .timeout = 20) {
  th_alloc_sweep(then_round, NULL);
}

/* ---- the slabs: weft__future_slabs_validate ------------------------------ */

#define SLAB_FUTS 200 /* more than three slabs of 63 */

Test(future, slabs_stay_valid_and_count_what_is_in_use, .timeout = 10) {
  weft_loop *loop = th_loop();
  size_t in_use = 1;
  cr_assert(weft__future_slabs_validate(loop, &in_use));
  cr_assert_eq(in_use, 0, "no future drawn yet");
  static weft_future *fs[SLAB_FUTS];
  for (int i = 0; i < SLAB_FUTS; i++) {
    cr_assert_eq(weft_future_new(loop, &fs[i]), 0);
    cr_assert(weft__future_slabs_validate(loop, &in_use), "after new %d", i);
    cr_assert_eq(in_use, (size_t)i + 1);
  }
  /* every other one back: settled, rejected (observed) or left pending */
  for (int i = 0; i < SLAB_FUTS; i += 2) {
    if (i % 4 == 0) cr_assert_eq(weft_future_resolve_i64(fs[i], i), 0);
    weft_future_unref(fs[i]);
    cr_assert(weft__future_slabs_validate(loop, &in_use), "after unref %d", i);
  }
  cr_assert_eq(in_use, SLAB_FUTS / 2);
  /* the freed ones are drawn again before any new slab */
  for (int i = 0; i < SLAB_FUTS; i += 2)
    cr_assert_eq(weft_future_new(loop, &fs[i]), 0);
  cr_assert(weft__future_slabs_validate(loop, &in_use));
  cr_assert_eq(in_use, SLAB_FUTS);
  for (int i = 0; i < SLAB_FUTS; i++)
    weft_future_unref(fs[i]);
  cr_assert(weft__future_slabs_validate(loop, &in_use));
  cr_assert_eq(in_use, 0, "%zu futures not given back", in_use);
  /* a free entry that is no slab's future is caught */
  weft__fmod *m = weft__fmod_get(loop);
  weft_future stray = {.next = m->free};
  weft_future *saved = m->free;
  m->free = &stray;
  cr_assert(!weft__future_slabs_validate(loop, &in_use),
            "a stray entry passed");
  m->free = saved;
  cr_assert(weft__future_slabs_validate(loop, &in_use));
  th_loop_finish(loop);
}
