/* Futures built from other futures: the combinators (all, all_settled, any,
 * race) and the timed futures (sleep, timeout). The core semantics of a
 * single future are in test_future.c. */
#include <stdlib.h>
#include <string.h>

#include "support/test.h"

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

static int never(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  (*(int *)arg)++;
  return 0;
}

/* ---- combinators ------------------------------------------------------- */

static void make_n(weft_loop *loop, weft_future **fs, int n) {
  for (int i = 0; i < n; i++)
    cr_assert_eq(weft_future_new(loop, &fs[i]), 0);
}
static void unref_n(weft_future **fs, int n) {
  for (int i = 0; i < n; i++)
    weft_future_unref(fs[i]);
}

Test(future_comb, all_fulfils_with_count_when_every_input_does, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *all;
  make_n(loop, fs, 3);
  cr_assert_eq(weft_future_resolve_i64(fs[1], 1), 0);
  cr_assert_eq(weft_future_all(loop, fs, 3, &all), 0);
  cr_assert_eq(weft_future_resolve_i64(fs[0], 0), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(all), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_resolve_i64(fs[2], 2), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(all), 3);
  unref_n(fs, 3);
  weft_future_unref(all);
  th_loop_finish(loop);
}

Test(future_comb, all_rejects_on_first_error_and_cancels_the_rest,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *all;
  hooks = 0;
  make_n(loop, fs, 3);
  cr_assert_eq(weft_future_on_cancel(fs[2], on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_all(loop, fs, 3, &all), 0);
  cr_assert_eq(weft_future_resolve_i64(fs[0], 0), 0);
  cr_assert_eq(weft_future_reject(fs[1], -EIO), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(all), -EIO);
  cr_assert_eq(weft_future_get_state(fs[2]), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 1);
  unref_n(fs, 3);
  weft_future_unref(all);
  th_loop_finish(loop);
}

Test(future_comb, all_settled_waits_for_every_outcome, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *all;
  make_n(loop, fs, 3);
  cr_assert_eq(weft_future_all_settled(loop, fs, 3, &all), 0);
  cr_assert_eq(weft_future_reject(fs[0], -EIO), 0);
  cr_assert_eq(weft_future_cancel(fs[1]), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(all), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_resolve_i64(fs[2], 5), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(all), 3);
  unref_n(fs, 3);
  weft_future_unref(all);
  th_loop_finish(loop);
}

Test(future_comb, any_takes_first_success_and_cancels_others, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *any;
  make_n(loop, fs, 3);
  char *v = malloc(4);
  frees = 0;
  cr_assert_eq(weft_future_any(loop, fs, 3, &any), 0);
  cr_assert_eq(weft_future_reject(fs[0], -EIO), 0);
  cr_assert_eq(weft_future_resolve(fs[1], v, count_free), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value(any), v);
  cr_assert_eq(weft_future_get_state(fs[2]), WEFT_FUTURE_CANCELLED);
  unref_n(fs, 3);
  cr_assert_eq(frees, 0); /* any borrows the winner's value */
  cr_assert_eq(weft_future_value(any), v);
  weft_future_unref(any);
  cr_assert_eq(frees, 1);
  th_loop_finish(loop);
}

Test(future_comb, any_rejects_with_aggregate_when_all_fail, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[2], *any;
  make_n(loop, fs, 2);
  cr_assert_eq(weft_future_any(loop, fs, 2, &any), 0);
  cr_assert_eq(weft_future_reject(fs[0], -EIO), 0);
  cr_assert_eq(weft_future_reject(fs[1], -EPIPE), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(any), WEFT_EAGGREGATE);
  unref_n(fs, 2);
  weft_future_unref(any);
  th_loop_finish(loop);
}

Test(future_comb, race_takes_first_settled_outcome, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[2], *race;
  make_n(loop, fs, 2);
  cr_assert_eq(weft_future_race(loop, fs, 2, &race), 0);
  cr_assert_eq(weft_future_reject(fs[1], -EPIPE), 0);
  cr_assert_eq(weft_future_resolve_i64(fs[0], 1), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(race), -EPIPE);
  cr_assert_eq(weft_future_value_i64(fs[0]), 1); /* not cancelled */
  unref_n(fs, 2);
  weft_future_unref(race);
  th_loop_finish(loop);
}

Test(future_comb, settled_aggregate_stops_counting_as_consumer, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[2], *race, *d;
  int calls = 0;
  hooks = 0;
  make_n(loop, fs, 2);
  cr_assert_eq(weft_future_on_cancel(fs[1], on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_race(loop, fs, 2, &race), 0);
  cr_assert_eq(weft_future_resolve_i64(fs[0], 1), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(race), 1);
  cr_assert_eq(weft_future_then(fs[1], never, &calls, &d), 0);
  cr_assert_eq(weft_future_cancel(d), 0); /* d is fs[1]'s only consumer now */
  cr_assert_eq(weft_future_get_state(fs[1]), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 1);
  th_run(loop);
  cr_assert_eq(calls, 0);
  unref_n(fs, 2);
  weft_future_unref(race);
  weft_future_unref(d);
  th_loop_finish(loop);
}

Test(future_comb, empty_inputs_have_defined_results, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *a, *s, *y, *r;
  cr_assert_eq(weft_future_all(loop, NULL, 0, &a), 0);
  cr_assert_eq(weft_future_all_settled(loop, NULL, 0, &s), 0);
  cr_assert_eq(weft_future_any(loop, NULL, 0, &y), 0);
  cr_assert_eq(weft_future_race(loop, NULL, 0, &r), 0);
  cr_assert_eq(weft_future_value_i64(a), 0);
  cr_assert_eq(weft_future_get_state(a), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_get_state(s), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_error(y), WEFT_EAGGREGATE);
  cr_assert_eq(weft_future_get_state(r), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_cancel(r), 0);
  weft_future_unref(a);
  weft_future_unref(s);
  weft_future_unref(y);
  weft_future_unref(r);
  th_loop_finish(loop);
}

Test(future_comb, combinators_reject_bad_input, .timeout = 10) {
  weft_loop *loop = th_loop(), *other = th_loop();
  weft_future *fs[2] = {NULL, NULL}, *out = NULL;
  cr_assert_eq(weft_future_all(NULL, fs, 0, &out), -EINVAL);
  cr_assert_eq(weft_future_all(loop, NULL, 2, &out), -EINVAL);
  cr_assert_eq(weft_future_any(loop, fs, 0, NULL), -EINVAL);
  cr_assert_eq(weft_future_race(loop, fs, 2, &out), -EINVAL); /* NULL input */
  cr_assert_eq(weft_future_new(loop, &fs[0]), 0);
  cr_assert_eq(weft_future_new(other, &fs[1]), 0);
  cr_assert_eq(weft_future_all_settled(loop, fs, 2, &out), -EINVAL);
  cr_assert_null(out);
  cr_assert_eq(weft_future_timeout(NULL, 1, &out), -EINVAL);
  cr_assert_eq(weft_future_timeout(fs[0], 1, NULL), -EINVAL);
  cr_assert_eq(weft_future_timeout(fs[0], WEFT_TIMEOUT_MAX + 1, &out), -EINVAL);
  cr_assert_eq(weft_sleep(NULL, 1, &out), -EINVAL);
  cr_assert_eq(weft_sleep(loop, 1, NULL), -EINVAL);
  cr_assert_eq(weft_sleep(loop, WEFT_TIMEOUT_MAX + 1, &out), -EINVAL);
  unref_n(fs, 2);
  cr_assert_eq(weft_loop_free(other), 0);
  th_loop_finish(loop);
}

Test(future_comb, cancelling_an_aggregate_cancels_its_sole_inputs,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[2], *all, *d;
  int calls = 0;
  make_n(loop, fs, 2);
  cr_assert_eq(weft_future_then(fs[1], never, &calls, &d),
               0); /* 2nd consumer */
  cr_assert_eq(weft_future_all(loop, fs, 2, &all), 0);
  cr_assert_eq(weft_future_cancel(all), 0);
  cr_assert_eq(weft_future_get_state(fs[0]), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(fs[1]), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_resolve_i64(fs[1], 1), 0);
  th_run(loop);
  cr_assert_eq(calls, 1);
  unref_n(fs, 2);
  weft_future_unref(all);
  weft_future_unref(d);
  th_loop_finish(loop);
}

static int combinators_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *fs[70] = {0}, *all = NULL, *to = NULL;
  int err = 0, made = 0;
  for (; made < 70 && err == 0; made++)
    err = weft_future_new(loop, &fs[made]);
  if (err != 0) made--;
  if (err == 0) err = weft_future_all(loop, fs, 70, &all);
  if (err == 0) err = weft_future_timeout(fs[0], 1000, &to);
  if (err != 0) {
    cr_assert_eq(err, -ENOMEM);
  } else {
    for (int i = 0; i < 70; i++)
      weft_future_resolve_i64(fs[i], i);
    th_run(loop);
    cr_assert_eq(weft_future_value_i64(all), 70);
    cr_assert_eq(weft_future_value_i64(to), 0);
  }
  unref_n(fs, made);
  weft_future_unref(all);
  weft_future_unref(to);
  return err;
}

Test(future_comb, combinators_fail_cleanly_without_memory, .timeout = 30) {
  th_alloc_sweep(combinators_round, NULL);
}

/* ---- sleep and timeout --------------------------------------------------- */

Test(future_comb, sleep_fulfils_after_its_delay, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s;
  uint64_t t0 = weft_now(loop);
  cr_assert_eq(weft_sleep(loop, 20, &s), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(s), WEFT_FUTURE_FULFILLED);
  cr_assert_geq(weft_now(loop) - t0, 20);
  weft_future_unref(s);
  th_loop_finish(loop);
}

Test(future_comb, cancelled_sleep_stops_its_timer, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s;
  cr_assert_eq(weft_sleep(loop, 60000, &s), 0);
  cr_assert_eq(weft_future_cancel(s), 0);
  th_run(loop); /* returns at once: nothing keeps the loop alive */
  cr_assert_eq(weft_future_error(s), -ECANCELED);
  cr_assert_eq(weft_loop_alive(loop), false);
  weft_future_unref(s);
  th_loop_finish(loop);
}

Test(future_comb, timeout_rejects_and_cancels_inner_work, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f, *t;
  hooks = 0;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_on_cancel(f, on_cancel_count, NULL), 0);
  cr_assert_eq(weft_future_timeout(f, 10, &t), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(t), -ETIMEDOUT);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 1);
  weft_future_unref(f);
  weft_future_unref(t);
  th_loop_finish(loop);
}

Test(future_comb, timeout_passes_inner_value_and_stops_timer, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s, *t;
  cr_assert_eq(weft_sleep(loop, 5, &s), 0);
  cr_assert_eq(weft_future_timeout(s, 60000, &t), 0);
  th_run(loop); /* returns once the sleep is done: the timeout timer stopped */
  cr_assert_eq(weft_future_get_state(t), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(t), 0);
  weft_future_unref(s);
  weft_future_unref(t);
  th_loop_finish(loop);
}

Test(future_comb, cancelling_timeout_cancels_timer_and_inner, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s, *t;
  cr_assert_eq(weft_sleep(loop, 60000, &s), 0);
  cr_assert_eq(weft_future_timeout(s, 60000, &t), 0);
  cr_assert_eq(weft_future_cancel(t), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(s), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_loop_alive(loop), false);
  weft_future_unref(s);
  weft_future_unref(t);
  th_loop_finish(loop);
}

Test(future_comb, loop_teardown_reclaims_pending_sleep, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s;
  cr_assert_eq(weft_sleep(loop, 60000, &s), 0);
  weft_future_unref(s);
  th_loop_finish(loop); /* closes the timer behind weft's back */
}

static int sleep_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *s = NULL;
  int err = weft_sleep(loop, 1, &s);
  if (err == 0) th_run(loop);
  if (err == 0) cr_assert_eq(weft_future_get_state(s), WEFT_FUTURE_FULFILLED);
  weft_future_unref(s);
  return err;
}

Test(future_comb, sleep_fails_cleanly_without_memory, .timeout = 20) {
  th_alloc_sweep(sleep_round, NULL);
}
