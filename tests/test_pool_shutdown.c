/* The pool's shutdown (concurrent.futures' shutdown(wait, cancel_futures)),
 * its thread start/stop hooks, and jobs that return the future API's
 * result shape (weft_pool_submit_job). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/test.h"

#define ERR(e) weft_err_name(e)

static atomic_int gate_started, gate_open;

/* Blocks until the test opens the gate (bounded by the test's timeout). */
static int gate_job(weft_pool_job *j, void *arg) {
  (void)arg;
  atomic_fetch_add(&gate_started, 1);
  while (!atomic_load(&gate_open))
    sched_yield();
  weft_pool_return_i64(j, 11);
  return 0;
}

static atomic_int plain_runs;
static int plain_job(weft_pool_job *j, void *arg) {
  atomic_fetch_add(&plain_runs, 1);
  weft_pool_return_i64(j, (int64_t)(intptr_t)arg);
  return 0;
}

static void run_until_started(weft_loop *loop, int n) {
  while (atomic_load(&gate_started) < n)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
}

static void run_until_settled(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

#define ASSERT_ERR(f, e)                                                       \
  cr_assert_eq(weft_future_error(f), (e), "error %s, wanted %s",               \
               ERR(weft_future_error(f)), ERR(e))

/* ---- weft_pool_submit_job: the result shape ----------------------------- */

static int dtor_calls;
static void count_free(void *p) {
  dtor_calls++;
  free(p);
}

static int ptr_job(weft_pool_job *j, void *arg) {
  (void)arg;
  char *s = malloc(8);
  if (s == NULL) return -ENOMEM;
  strcpy(s, "pooled");
  weft_pool_return(j, s, count_free);
  return 0;
}

static int f64_job(weft_pool_job *j, void *arg) {
  (void)arg;
  weft_pool_return_f64(j, 2.5);
  return 0;
}

static int nothing_job(weft_pool_job *j, void *arg) {
  (void)j;
  (void)arg;
  return 0;
}

/* sets a pointer, then fails: the value is dropped */
static int fail_job(weft_pool_job *j, void *arg) {
  (void)arg;
  weft_pool_return(j, malloc(4), count_free);
  weft_pool_return(j, malloc(4), count_free); /* replaces: first dropped */
  return -EPROTO;
}

Test(pool_job, returns_pointer_int_double_nothing_or_error, .timeout = 20) {
  weft_loop *loop = th_loop();
  dtor_calls = 0;
  weft_future *p, *i, *d, *n, *e;
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, ptr_job, NULL, &p), 0);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_IO, plain_job,
                                    (void *)(intptr_t)42, &i),
               0);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, f64_job, NULL, &d), 0);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, nothing_job, NULL, &n),
               0);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, fail_job, NULL, &e),
               0);
  cr_assert_str_eq(weft_future_get_op(p), "weft_pool_submit_job");
  th_run(loop);
  cr_assert_str_eq(weft_future_value(p), "pooled");
  cr_assert_eq(weft_future_value_i64(i), 42);
  cr_assert_eq(weft_future_value_f64(d), 2.5);
  cr_assert_eq(weft_future_get_state(n), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(n), 0);
  ASSERT_ERR(e, -EPROTO);
  cr_assert_eq(dtor_calls, 2); /* both of fail_job's values */
  weft_future *all[] = {p, i, d, n, e};
  for (int k = 0; k < 5; k++)
    weft_future_unref(all[k]);
  cr_assert_eq(dtor_calls, 3); /* p's value went with p */
  th_loop_finish(loop);
}

Test(pool_job, bad_inputs, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  cr_assert_eq(weft_pool_submit_job(NULL, WEFT_LANE_CPU, nothing_job, NULL, &f),
               -EINVAL);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, NULL, NULL, &f),
               -EINVAL);
  cr_assert_eq(
      weft_pool_submit_job(loop, WEFT_LANE_CPU, nothing_job, NULL, NULL),
      -EINVAL);
  cr_assert_eq(
      weft_pool_submit_job(loop, (weft_pool_lane)7, nothing_job, NULL, &f),
      -EINVAL);
  cr_assert_null(f);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

static int cancelled_seen;
static int flagged_ptr_job(weft_pool_job *j, void *arg) {
  (void)arg;
  atomic_fetch_add(&gate_started, 1);
  while (!weft_work_cancelled())
    sched_yield();
  weft_pool_return(j, malloc(4), count_free);
  return 0;
}

Test(pool_job, cancel_while_running_drops_the_value, .timeout = 20) {
  weft_loop *loop = th_loop();
  dtor_calls = 0;
  atomic_store(&gate_started, 0);
  weft_future *f;
  cr_assert_eq(
      weft_pool_submit_job(loop, WEFT_LANE_CPU, flagged_ptr_job, NULL, &f), 0);
  run_until_started(loop, 1);
  cr_assert_eq(weft_future_cancel(f), 0);
  th_run(loop); /* the job sees its flag, returns, the value is dropped */
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(dtor_calls, 1);
  (void)cancelled_seen;
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int job_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f = NULL;
  int err = weft_pool_submit_job(loop, WEFT_LANE_CPU, plain_job,
                                 (void *)(intptr_t)5, &f);
  if (err != 0) return err;
  run_until_settled(loop, f);
  cr_assert_eq(weft_future_value_i64(f), 5);
  weft_future_unref(f);
  return 0;
}

Test(pool_job, fails_cleanly_without_memory, .timeout = 60) {
  th_alloc_sweep(job_round, NULL);
}

/* ---- shutdown ---------------------------------------------------------- */

Test(pool_shutdown, bad_inputs, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  cr_assert_eq(weft_pool_shutdown(NULL, true, false, &f), -EINVAL);
  cr_assert_eq(weft_pool_shutdown(loop, true, false, NULL), -EINVAL);
  cr_assert_eq(weft_pool_shutdown(loop, false, false, &f), -EINVAL);
  cr_assert_null(f);
  /* the pool still works: none of those shut it */
  weft_future *j;
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, plain_job,
                                    (void *)(intptr_t)3, &j),
               0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(j), 3);
  weft_future_unref(j);
  th_loop_finish(loop);
}

static void noop_work(weft_work *w) { (void)w; }
static void noop_done(weft_work *w, int status) {
  (void)w;
  (void)status;
}
static int map_fn(size_t i, void *arg, int64_t *r) {
  (void)arg;
  *r = (int64_t)i;
  return 0;
}

static void assert_refuses_work(weft_loop *loop) {
  weft_work w = {0};
  weft_future *f = NULL;
  int err = weft_work_submit(loop, &w, WEFT_LANE_CPU, noop_work, noop_done);
  cr_assert_eq(err, -ESHUTDOWN, "%s", ERR(err));
  err = weft_pool_submit_job(loop, WEFT_LANE_IO, plain_job, NULL, &f);
  cr_assert_eq(err, -ESHUTDOWN, "%s", ERR(err));
  cr_assert_null(f);
  err = weft_pool_map(loop, WEFT_LANE_CPU, 4, map_fn, NULL, 2, NULL, &f);
  cr_assert_eq(err, -ESHUTDOWN, "%s", ERR(err));
  err = weft_pool_resize(loop, 2, 2);
  cr_assert_eq(err, -ESHUTDOWN, "%s", ERR(err));
  err = weft_work_cancel(&w);
  cr_assert_eq(err, -EINVAL, "%s", ERR(err)); /* never submitted */
}

Test(pool_shutdown, with_cancel_withdraws_queued_and_waits_for_running,
     .timeout = 30) {
  weft_loop *loop = th_loop();
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  atomic_store(&plain_runs, 0);
  cr_assert_eq(weft_pool_resize(loop, 1, 1), 0);
  weft_future *run, *q1, *q2, *shut;
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, gate_job, NULL, &run),
               0);
  run_until_started(loop, 1);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, plain_job,
                                    (void *)(intptr_t)1, &q1),
               0);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, plain_job,
                                    (void *)(intptr_t)2, &q2),
               0);
  cr_assert_eq(weft_pool_shutdown(loop, true, true, &shut), 0);
  cr_assert_str_eq(weft_future_get_op(shut), "weft_pool_shutdown");
  assert_refuses_work(loop);
  /* the queued ones are withdrawn at once; the running one goes on */
  while (weft_future_get_state(q1) == WEFT_FUTURE_PENDING ||
         weft_future_get_state(q2) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_get_state(q1), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(q2), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_get_state(run), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_get_state(shut), WEFT_FUTURE_PENDING);
  atomic_store(&gate_open, 1);
  run_until_settled(loop, shut);
  cr_assert_eq(weft_future_get_state(shut), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_get_state(run), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(run), 11);
  cr_assert_eq(atomic_load(&plain_runs), 0);
  weft_pool_stats s;
  for (int lane = 0; lane < WEFT_LANE_COUNT; lane++) {
    cr_assert_eq(weft_pool_get_stats(loop, (weft_pool_lane)lane, &s), 0);
    cr_assert_eq(s.threads, 0);
    cr_assert_eq(s.queued, 0);
  }
  weft_future *all[] = {run, q1, q2, shut};
  for (int k = 0; k < 4; k++)
    weft_future_unref(all[k]);
  th_loop_finish(loop);
}

Test(pool_shutdown, without_cancel_runs_queued_jobs_first, .timeout = 30) {
  weft_loop *loop = th_loop();
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  atomic_store(&plain_runs, 0);
  cr_assert_eq(weft_pool_resize(loop, 1, 1), 0);
  weft_future *run, *q1, *q2, *shut, *again;
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, gate_job, NULL, &run),
               0);
  run_until_started(loop, 1);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, plain_job,
                                    (void *)(intptr_t)1, &q1),
               0);
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, plain_job,
                                    (void *)(intptr_t)2, &q2),
               0);
  cr_assert_eq(weft_pool_shutdown(loop, true, false, &shut), 0);
  cr_assert_eq(weft_pool_shutdown(loop, true, false, &again), 0);
  cr_assert_eq(again, shut); /* one pending per loop: the same future */
  assert_refuses_work(loop);
  for (int k = 0; k < 50; k++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_future_get_state(shut), WEFT_FUTURE_PENDING);
  atomic_store(&gate_open, 1);
  run_until_settled(loop, shut);
  /* every job was done before the workers left */
  cr_assert_eq(weft_future_value_i64(run), 11);
  cr_assert_eq(weft_future_value_i64(q1), 1);
  cr_assert_eq(weft_future_value_i64(q2), 2);
  cr_assert_eq(atomic_load(&plain_runs), 2);
  /* a wait after the workers are gone settles at once (soon) */
  weft_future *late;
  cr_assert_eq(weft_pool_shutdown(loop, true, false, &late), 0);
  cr_assert_neq(late, shut);
  run_until_settled(loop, late);
  cr_assert_eq(weft_future_get_state(late), WEFT_FUTURE_FULFILLED);
  weft_future *all[] = {run, q1, q2, shut, again, late};
  for (int k = 0; k < 6; k++)
    weft_future_unref(all[k]);
  th_loop_finish(loop);
}

Test(pool_shutdown, without_wait_returns_at_once, .timeout = 30) {
  weft_loop *loop = th_loop();
  atomic_store(&plain_runs, 0);
  weft_future *q;
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_IO, plain_job,
                                    (void *)(intptr_t)9, &q),
               0);
  cr_assert_eq(weft_pool_shutdown(loop, false, false, NULL), 0);
  assert_refuses_work(loop);
  th_run(loop); /* the queued job still runs */
  cr_assert_eq(weft_future_value_i64(q), 9);
  weft_future_unref(q);
  th_loop_finish(loop); /* the pool (and its threads) go with the loop */
}

Test(pool_shutdown, before_any_thread_started, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *shut;
  cr_assert_eq(weft_pool_shutdown(loop, true, true, &shut), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(shut), WEFT_FUTURE_FULFILLED);
  assert_refuses_work(loop);
  weft_future_unref(shut);
  th_loop_finish(loop);
}

Test(pool_shutdown, cancelling_the_wait_leaves_the_shutdown, .timeout = 30) {
  weft_loop *loop = th_loop();
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  weft_future *run, *shut, *again;
  cr_assert_eq(weft_pool_submit_job(loop, WEFT_LANE_CPU, gate_job, NULL, &run),
               0);
  run_until_started(loop, 1);
  cr_assert_eq(weft_pool_shutdown(loop, true, false, &shut), 0);
  cr_assert_eq(weft_future_cancel(shut), 0);
  assert_refuses_work(loop);
  /* a new wait after the cancel gets a new future */
  cr_assert_eq(weft_pool_shutdown(loop, true, false, &again), 0);
  cr_assert_neq(again, shut);
  atomic_store(&gate_open, 1);
  run_until_settled(loop, again);
  cr_assert_eq(weft_future_get_state(again), WEFT_FUTURE_FULFILLED);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(run), 11);
  weft_future_unref(run);
  weft_future_unref(shut);
  weft_future_unref(again);
  th_loop_finish(loop);
}

static int shut_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f = NULL;
  int err = weft_pool_shutdown(loop, true, true, &f);
  if (err != 0) return err;
  run_until_settled(loop, f);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  weft_future_unref(f);
  return 0;
}

Test(pool_shutdown, fails_cleanly_without_memory, .timeout = 60) {
  th_alloc_sweep(shut_round, NULL);
}

/* ---- thread hooks ------------------------------------------------------ */

static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static int starts[WEFT_LANE_COUNT][8], stops[WEFT_LANE_COUNT][8];
static int bad_names, hook_arg_wrong;
static int marker;

static void on_start(weft_pool_lane lane, unsigned index, void *arg) {
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  char want[16];
  snprintf(want, sizeof want, "weft-%s-%u",
           lane == WEFT_LANE_CPU ? "cpu" : "io", index);
  pthread_mutex_lock(&hook_lock);
  if (strcmp(name, want) != 0) bad_names++;
  if (arg != &marker) hook_arg_wrong++;
  if (index < 8) starts[lane][index]++;
  pthread_mutex_unlock(&hook_lock);
  pthread_setname_np(pthread_self(), "renamed"); /* the hook may rename */
}

static void on_stop(weft_pool_lane lane, unsigned index, void *arg) {
  char name[16] = "";
  pthread_getname_np(pthread_self(), name, sizeof name);
  pthread_mutex_lock(&hook_lock);
  if (strcmp(name, "renamed") != 0) bad_names++;
  if (arg != &marker) hook_arg_wrong++;
  if (index < 8) stops[lane][index]++;
  pthread_mutex_unlock(&hook_lock);
}

static int hook_sum(int (*a)[8]) {
  int n = 0;
  pthread_mutex_lock(&hook_lock);
  for (int l = 0; l < WEFT_LANE_COUNT; l++)
    for (int i = 0; i < 8; i++)
      n += a[l][i];
  pthread_mutex_unlock(&hook_lock);
  return n;
}

Test(pool_hooks, each_thread_starts_and_stops_once, .timeout = 30) {
  weft_loop *loop = th_loop();
  weft_pool_thread_hooks h = {on_start, on_stop, &marker};
  cr_assert_eq(weft_pool_set_thread_hooks(NULL, &h), -EINVAL);
  cr_assert_eq(weft_pool_set_thread_hooks(loop, &h), 0);
  cr_assert_eq(weft_pool_resize(loop, 2, 3), 0);
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  /* five blocking jobs hold all five threads at once */
  weft_future *fs[5];
  for (int k = 0; k < 5; k++)
    cr_assert_eq(weft_pool_submit_job(loop,
                                      k < 2 ? WEFT_LANE_CPU : WEFT_LANE_IO,
                                      gate_job, NULL, &fs[k]),
                 0);
  run_until_started(loop, 5);
  cr_assert_eq(hook_sum(starts), 5);
  cr_assert_eq(hook_sum(stops), 0);
  weft_future *shut;
  cr_assert_eq(weft_pool_shutdown(loop, true, false, &shut), 0);
  atomic_store(&gate_open, 1);
  run_until_settled(loop, shut);
  /* the future settles after every stop hook has run */
  cr_assert_eq(hook_sum(stops), 5);
  for (int l = 0; l < WEFT_LANE_COUNT; l++)
    for (int i = 0; i < 8; i++) {
      cr_assert_eq(starts[l][i], stops[l][i], "lane %d slot %d", l, i);
      cr_assert(starts[l][i] <= 1, "lane %d slot %d", l, i);
    }
  cr_assert_eq(starts[WEFT_LANE_CPU][0] + starts[WEFT_LANE_CPU][1], 2);
  cr_assert_eq(bad_names, 0);
  cr_assert_eq(hook_arg_wrong, 0);
  for (int k = 0; k < 5; k++) {
    cr_assert_eq(weft_future_value_i64(fs[k]), 11);
    weft_future_unref(fs[k]);
  }
  weft_future_unref(shut);
  th_loop_finish(loop);
}

Test(pool_hooks, shrink_and_pool_free_stop_threads_once, .timeout = 30) {
  weft_loop *loop = th_loop();
  memset(starts, 0, sizeof starts);
  memset(stops, 0, sizeof stops);
  weft_pool_thread_hooks h = {on_start, on_stop, &marker};
  cr_assert_eq(weft_pool_set_thread_hooks(loop, &h), 0);
  cr_assert_eq(weft_pool_resize(loop, 3, 1), 0);
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  weft_future *fs[3];
  for (int k = 0; k < 3; k++)
    cr_assert_eq(
        weft_pool_submit_job(loop, WEFT_LANE_CPU, gate_job, NULL, &fs[k]), 0);
  run_until_started(loop, 3);
  cr_assert_eq(hook_sum(starts), 3);
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  atomic_store(&gate_open, 1);
  th_run(loop);
  weft_pool_stats s;
  do {
    cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  } while (s.threads > 1);
  while (hook_sum(stops) < 2)
    sched_yield();
  cr_assert_eq(hook_sum(stops), 2);
  /* hooks cleared: a thread started now runs none */
  cr_assert_eq(weft_pool_set_thread_hooks(loop, NULL), 0);
  for (int k = 0; k < 3; k++)
    weft_future_unref(fs[k]);
  th_loop_finish(loop); /* the last thread stops with the pool */
  cr_assert_eq(hook_sum(starts), 3);
  cr_assert_eq(hook_sum(stops), 3);
  cr_assert_eq(bad_names, 0);
}
