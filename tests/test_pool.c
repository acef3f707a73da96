/* The thread pool: submit, complete, cancel, lanes, resize, teardown. */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "support/test.h"

typedef struct counters {
  atomic_int ran;
  int ok, cancelled, other;
  weft_loop *loop;
} counters;

static counters C;

static void count_work(weft_work *w) {
  (void)w;
  atomic_fetch_add(&C.ran, 1);
}

static void count_done(weft_work *w, int status) {
  cr_assert_eq(w->loop, C.loop);
  if (status == 0)
    C.ok++;
  else if (status == -ECANCELED)
    C.cancelled++;
  else
    C.other++;
}

static void reset(weft_loop *loop) {
  atomic_store(&C.ran, 0);
  C.ok = C.cancelled = C.other = 0;
  C.loop = loop;
}

/* A job that holds its worker until released or asked to stop. */
static atomic_int gate_started, gate_open, gate_saw_cancel;
static void gate_work(weft_work *w) {
  (void)w;
  atomic_fetch_add(&gate_started, 1);
  while (!atomic_load(&gate_open)) {
    if (weft_work_cancelled()) {
      atomic_fetch_add(&gate_saw_cancel, 1);
      break;
    }
    sched_yield();
  }
  atomic_fetch_add(&C.ran, 1);
}
static void gate_reset(void) {
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  atomic_store(&gate_saw_cancel, 0);
}
static void wait_started(int n) {
  while (atomic_load(&gate_started) < n)
    sched_yield();
}

Test(pool, submit_runs_work_then_done, .timeout = 20) {
  weft_loop *loop = th_loop();
  reset(loop);
  weft_work w[100];
  for (int i = 0; i < 100; i++)
    cr_assert_eq(weft_work_submit(loop, &w[i],
                                  i % 2 ? WEFT_LANE_IO : WEFT_LANE_CPU,
                                  count_work, count_done),
                 0);
  cr_assert(weft_loop_alive(loop));
  cr_assert_eq(C.ok, 0, "never inline");
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(atomic_load(&C.ran), 100);
  cr_assert_eq(C.ok, 100);
  cr_assert_eq(C.cancelled + C.other, 0);
  th_loop_finish(loop);
}

Test(pool, submit_bad_arguments, .timeout = 20) {
  weft_loop *loop = th_loop();
  reset(loop);
  weft_work w = {0};
  cr_assert_eq(
      weft_work_submit(NULL, &w, WEFT_LANE_CPU, count_work, count_done),
      -EINVAL);
  cr_assert_eq(
      weft_work_submit(loop, NULL, WEFT_LANE_CPU, count_work, count_done),
      -EINVAL);
  cr_assert_eq(weft_work_submit(loop, &w, WEFT_LANE_CPU, NULL, count_done),
               -EINVAL);
  cr_assert_eq(weft_work_submit(loop, &w, WEFT_LANE_CPU, count_work, NULL),
               -EINVAL);
  cr_assert_eq(
      weft_work_submit(loop, &w, (weft_pool_lane)7, count_work, count_done),
      -EINVAL);
  cr_assert_eq(
      weft_work_submit(loop, &w, (weft_pool_lane)-1, count_work, count_done),
      -EINVAL);
  cr_assert_eq(weft_work_cancel(NULL), -EINVAL);
  cr_assert_eq(weft_work_cancel(&w), -EINVAL, "never submitted");
  cr_assert(!weft_loop_alive(loop));
  cr_assert(!weft_work_cancelled(), "not inside a job");
  /* still usable */
  cr_assert_eq(
      weft_work_submit(loop, &w, WEFT_LANE_CPU, count_work, count_done), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(C.ok, 1);
  cr_assert_eq(weft_work_cancel(&w), -EALREADY);
  th_loop_finish(loop);
}

Test(pool, thousand_concurrent_jobs, .timeout = 30) {
  weft_loop *loop = th_loop();
  reset(loop);
  weft_work *w = calloc(1000, sizeof *w);
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(weft_work_submit(loop, &w[i], (weft_pool_lane)(i % 2),
                                  count_work, count_done),
                 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(atomic_load(&C.ran), 1000);
  cr_assert_eq(C.ok, 1000);
  free(w);
  th_loop_finish(loop);
}

static int serial_left;
static void serial_done(weft_work *w, int status) {
  cr_assert_eq(status, 0);
  C.ok++;
  if (--serial_left > 0)
    cr_assert_eq(
        weft_work_submit(w->loop, w, WEFT_LANE_CPU, count_work, serial_done),
        0);
}

Test(pool, resubmit_from_done_callback, .timeout = 30) {
  weft_loop *loop = th_loop();
  reset(loop);
  weft_work w;
  serial_left = 1000;
  cr_assert_eq(
      weft_work_submit(loop, &w, WEFT_LANE_CPU, count_work, serial_done), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(C.ok, 1000);
  cr_assert_eq(atomic_load(&C.ran), 1000);
  th_loop_finish(loop);
}

static void gate_done(weft_work *w, int status) {
  (void)w;
  cr_assert_eq(status, 0, "a running job completes normally");
  C.ok++;
}

Test(pool, cancel_queued_and_running, .timeout = 30) {
  weft_loop *loop = th_loop();
  reset(loop);
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  weft_work gate, w[50];
  cr_assert_eq(
      weft_work_submit(loop, &gate, WEFT_LANE_CPU, gate_work, gate_done), 0);
  wait_started(1); /* the only cpu worker is now busy */
  for (int i = 0; i < 50; i++)
    cr_assert_eq(
        weft_work_submit(loop, &w[i], WEFT_LANE_CPU, count_work, count_done),
        0);
  for (int i = 0; i < 50; i += 2)
    cr_assert_eq(weft_work_cancel(&w[i]), 0);
  cr_assert_eq(weft_work_cancel(&w[0]), -EALREADY);
  weft_pool_stats s;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.queued, 25);
  cr_assert_eq(s.running, 1);
  cr_assert_eq(s.threads, 1);
  cr_assert_eq(s.target, 1);
  cr_assert_eq(weft_work_cancel(&gate), -EBUSY);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(atomic_load(&gate_saw_cancel), 1);
  cr_assert_eq(C.cancelled, 25);
  cr_assert_eq(C.ok, 25 + 1);
  cr_assert_eq(atomic_load(&C.ran), 25 + 1);
  cr_assert_eq(weft_work_cancel(&gate), -EALREADY);
  th_loop_finish(loop);
}

/* The cpu lane is saturated by jobs that only the io job's completion
 * releases: if io waited behind cpu, this would never finish. */
static void release_gate(weft_work *w, int status) {
  (void)w;
  cr_assert_eq(status, 0);
  cr_assert_eq(atomic_load(&gate_started), 2, "cpu lane still saturated");
  C.ok++;
  atomic_store(&gate_open, 1);
}

Test(pool, io_lane_not_starved_by_cpu_lane, .timeout = 30) {
  weft_loop *loop = th_loop();
  reset(loop);
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 2, 1), 0);
  weft_work g[4], io;
  for (int i = 0; i < 4; i++)
    cr_assert_eq(
        weft_work_submit(loop, &g[i], WEFT_LANE_CPU, gate_work, gate_done), 0);
  wait_started(2);
  cr_assert_eq(
      weft_work_submit(loop, &io, WEFT_LANE_IO, count_work, release_gate), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(C.ok, 5);
  cr_assert_eq(atomic_load(&gate_started), 4);
  cr_assert_eq(atomic_load(&C.ran), 5);
  th_loop_finish(loop);
}

static int resize_seen;
static void resize_done(weft_work *w, int status) {
  cr_assert_eq(status, 0);
  C.ok++;
  if (C.ok == 500) cr_assert_eq(weft_pool_resize(w->loop, 1, 1), 0);
  if (C.ok == 1000) cr_assert_eq(weft_pool_resize(w->loop, 3, 2), 0);
  if (C.ok == 1500) {
    weft_pool_stats s;
    cr_assert_eq(weft_pool_get_stats(w->loop, WEFT_LANE_CPU, &s), 0);
    resize_seen = (int)s.target;
  }
}

Test(pool, resize_under_load, .timeout = 30) {
  weft_loop *loop = th_loop();
  reset(loop);
  weft_work *w = calloc(2000, sizeof *w);
  for (int i = 0; i < 2000; i++)
    cr_assert_eq(
        weft_work_submit(loop, &w[i], WEFT_LANE_CPU, count_work, resize_done),
        0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(C.ok, 2000);
  cr_assert_eq(atomic_load(&C.ran), 2000);
  cr_assert_eq(resize_seen, 3);
  cr_assert_eq(weft_pool_resize(loop, WEFT_POOL_MAX + 1, 0), -EINVAL);
  cr_assert_eq(weft_pool_resize(NULL, 1, 1), -EINVAL);
  free(w);
  th_loop_finish(loop);
}

Test(pool, stats_count_per_lane, .timeout = 20) {
  weft_loop *loop = th_loop();
  reset(loop);
  weft_pool_stats s0, s1;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s0), 0);
  weft_work w[10];
  for (int i = 0; i < 10; i++)
    cr_assert_eq(
        weft_work_submit(loop, &w[i], WEFT_LANE_IO, count_work, count_done), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s1), 0);
  cr_assert_eq(s1.done - s0.done, 10);
  cr_assert_eq(s1.queued, 0);
  cr_assert_eq(s1.running, 0);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s1), 0);
  cr_assert_eq(s1.done, 0);
  cr_assert_eq(weft_pool_get_stats(NULL, WEFT_LANE_IO, &s1), -EINVAL);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_COUNT, &s1), -EINVAL);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, NULL), -EINVAL);
  th_loop_finish(loop);
}

Test(pool, loop_free_cancels_queued_and_waits_for_running, .timeout = 30) {
  weft_loop *loop = th_loop();
  reset(loop);
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  weft_work gate, w[20];
  cr_assert_eq(
      weft_work_submit(loop, &gate, WEFT_LANE_CPU, gate_work, gate_done), 0);
  wait_started(1);
  for (int i = 0; i < 20; i++)
    cr_assert_eq(
        weft_work_submit(loop, &w[i], WEFT_LANE_CPU, count_work, count_done),
        0);
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(atomic_load(&gate_saw_cancel), 1);
  cr_assert_eq(C.ok, 1, "the running job completed");
  cr_assert_eq(C.cancelled, 20);
  cr_assert_eq(atomic_load(&C.ran), 1);
  cr_assert_eq(weft_alloc_live(), 0);
}

static weft_loop *L2;
static int done2;
static void done_other(weft_work *w, int status) {
  cr_assert_eq(status, 0);
  cr_assert_eq(w->loop, L2);
  done2++;
}

Test(pool, two_loops_share_the_pool, .timeout = 20) {
  weft_loop *loop = th_loop();
  L2 = th_loop();
  reset(loop);
  done2 = 0;
  weft_work a[100], b[100];
  for (int i = 0; i < 100; i++) {
    cr_assert_eq(
        weft_work_submit(loop, &a[i], WEFT_LANE_CPU, count_work, count_done),
        0);
    cr_assert_eq(
        weft_work_submit(L2, &b[i], WEFT_LANE_CPU, count_work, done_other), 0);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  weft_loop_run(L2, WEFT_RUN_DEFAULT);
  cr_assert_eq(C.ok, 100);
  cr_assert_eq(done2, 100);
  cr_assert_eq(atomic_load(&C.ran), 200);
  cr_assert_eq(weft_loop_free(L2), 0);
  th_loop_finish(loop);
}

/* pool_size sets the process-wide lanes' size (target); threads start on
 * a lane's first job, and only on that lane. */
Test(pool, pool_size_option_sets_the_lanes_size, .timeout = 20) {
  weft_loop *loop = NULL;
  weft_loop_options o = {.pool_size = 3};
  cr_assert_eq(weft_loop_new(&loop, &o), 0);
  reset(loop);
  weft_pool_stats s;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s), 0);
  cr_assert_eq(s.target, 3);
  cr_assert_eq(s.threads, 0, "no thread before the lane's first job");
  weft_work w;
  cr_assert_eq(weft_work_submit(loop, &w, WEFT_LANE_IO, count_work, count_done),
               0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(C.ok, 1);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s), 0);
  cr_assert_eq(s.threads, 3, "the lane starts up to its size");
  cr_assert_eq(s.target, 3);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.threads, 0, "the other lane has had no job");
  cr_assert_eq(s.target, 3);
  th_loop_finish(loop);
}

/* `threads` counts live workers: after a shrink it falls to the new size
 * as the extra threads exit. */
Test(pool, stats_threads_are_the_live_workers, .timeout = 20) {
  weft_loop *loop = NULL;
  weft_loop_options o = {.pool_size = 4};
  cr_assert_eq(weft_loop_new(&loop, &o), 0);
  reset(loop);
  weft_work w;
  cr_assert_eq(
      weft_work_submit(loop, &w, WEFT_LANE_CPU, count_work, count_done), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  weft_pool_stats s;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.threads, 4);
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.target, 1);
  while (s.threads != 1) { /* the extra threads exit on their own */
    cr_assert_gt(s.threads, 1);
    sched_yield();
    cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  }
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_IO, &s), 0);
  cr_assert_eq(s.target, 4, "resize 0 keeps a lane as it is");
  th_loop_finish(loop);
}

Test(pool, a_loop_asking_for_more_threads_grows_the_shared_pool,
     .timeout = 20) {
  weft_loop *a = th_loop(), *b = NULL, *c = NULL;
  weft_pool_stats s;
  cr_assert_eq(weft_pool_get_stats(a, WEFT_LANE_CPU, &s), 0);
  unsigned before = s.target;
  weft_loop_options o = {.pool_size = before + 2};
  cr_assert_eq(weft_loop_new(&b, &o), 0);
  cr_assert_eq(weft_pool_get_stats(b, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.target, before + 2);
  cr_assert_eq(weft_pool_get_stats(a, WEFT_LANE_IO, &s), 0);
  cr_assert_eq(s.target, before + 2, "one pool, both lanes");
  /* a smaller pool_size leaves the shared pool as it is */
  weft_loop_options small = {.pool_size = 1};
  cr_assert_eq(weft_loop_new(&c, &small), 0);
  cr_assert_eq(weft_pool_get_stats(c, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.target, before + 2, "pool_size never shrinks the pool");
  cr_assert_eq(weft_loop_free(c), 0);
  cr_assert_eq(weft_loop_free(b), 0);
  th_loop_finish(a);
}

static int submit_round(weft_loop *loop, void *arg) {
  (void)arg;
  reset(loop);
  weft_work w;
  int err = weft_work_submit(loop, &w, WEFT_LANE_IO, count_work, count_done);
  if (err != 0) {
    cr_assert(!weft_loop_alive(loop));
    cr_assert_eq(C.ok, 0);
  } else {
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    cr_assert_eq(C.ok, 1);
  }
  return err;
}

Test(pool, allocation_failure_on_submit, .timeout = 30) {
  th_alloc_sweep_run(&(th_sweep){.op = submit_round, .max_rounds = 100});
}

/* ---- future form ----------------------------------------------------------
 */

static atomic_int fut_ran, dtor_calls;
static void count_dtor(void *p) {
  atomic_fetch_add(&dtor_calls, 1);
  free(p);
}
static void *make_int(void *arg, int *err) {
  (void)err;
  atomic_fetch_add(&fut_ran, 1);
  int *p = malloc(sizeof *p);
  *p = *(int *)arg;
  return p;
}
static void *fail_eio(void *arg, int *err) {
  (void)arg;
  atomic_fetch_add(&fut_ran, 1);
  *err = -EIO;
  return NULL;
}
static void *wait_cancel(void *arg, int *err) {
  gate_work(NULL);
  return make_int(arg, err);
}
static void fut_reset(void) {
  atomic_store(&fut_ran, 0);
  atomic_store(&dtor_calls, 0);
}

Test(pool, future_fulfils_with_the_work_value, .timeout = 20) {
  weft_loop *loop = th_loop();
  fut_reset();
  int v = 42;
  weft_future *f = NULL;
  cr_assert_eq(weft_pool_submit_future(loop, WEFT_LANE_CPU, make_int, &v,
                                       count_dtor, &f),
               0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(*(int *)weft_future_value(f), 42);
  cr_assert_eq(atomic_load(&fut_ran), 1);
  weft_future_unref(f);
  cr_assert_eq(atomic_load(&dtor_calls), 1);
  th_loop_finish(loop);
}

Test(pool, future_rejects_with_the_work_error, .timeout = 20) {
  weft_loop *loop = th_loop();
  fut_reset();
  weft_future *f = NULL;
  cr_assert_eq(
      weft_pool_submit_future(loop, WEFT_LANE_IO, fail_eio, NULL, NULL, &f), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(f), -EIO);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(pool, future_bad_arguments, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  cr_assert_eq(
      weft_pool_submit_future(NULL, WEFT_LANE_CPU, make_int, NULL, NULL, &f),
      -EINVAL);
  cr_assert_eq(
      weft_pool_submit_future(loop, WEFT_LANE_CPU, NULL, NULL, NULL, &f),
      -EINVAL);
  cr_assert_eq(
      weft_pool_submit_future(loop, WEFT_LANE_CPU, make_int, NULL, NULL, NULL),
      -EINVAL);
  cr_assert_eq(
      weft_pool_submit_future(loop, WEFT_LANE_COUNT, make_int, NULL, NULL, &f),
      -EINVAL);
  cr_assert_null(f);
  cr_assert(!weft_loop_alive(loop));
  th_loop_finish(loop);
}

Test(pool, future_cancel_stops_queued_and_running_work, .timeout = 30) {
  weft_loop *loop = th_loop();
  fut_reset();
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  int v = 7;
  weft_future *running = NULL, *queued[10];
  cr_assert_eq(weft_pool_submit_future(loop, WEFT_LANE_CPU, wait_cancel, &v,
                                       count_dtor, &running),
               0);
  wait_started(1);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(weft_pool_submit_future(loop, WEFT_LANE_CPU, make_int, &v,
                                         count_dtor, &queued[i]),
                 0);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(weft_future_cancel(queued[i]), 0);
  cr_assert_eq(weft_future_cancel(running), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(atomic_load(&gate_saw_cancel), 1);
  cr_assert_eq(atomic_load(&fut_ran), 1, "only the running one ran");
  cr_assert_eq(atomic_load(&dtor_calls), 1, "its value was dropped");
  cr_assert_eq(weft_future_get_state(running), WEFT_FUTURE_CANCELLED);
  for (int i = 0; i < 10; i++) {
    cr_assert_eq(weft_future_error(queued[i]), -ECANCELED);
    weft_future_unref(queued[i]);
  }
  weft_future_unref(running);
  th_loop_finish(loop);
}

Test(pool, future_jobs_cancelled_by_loop_free, .timeout = 30) {
  weft_loop *loop = th_loop();
  fut_reset();
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  weft_work gate;
  reset(loop);
  cr_assert_eq(
      weft_work_submit(loop, &gate, WEFT_LANE_CPU, gate_work, gate_done), 0);
  wait_started(1);
  int v = 1;
  weft_future *f = NULL;
  cr_assert_eq(weft_pool_submit_future(loop, WEFT_LANE_CPU, make_int, &v,
                                       count_dtor, &f),
               0);
  weft_future_unref(f); /* the job keeps it alive */
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(weft_alloc_live(), 0);
  cr_assert_eq(atomic_load(&fut_ran), 0);
  cr_assert_eq(C.ok, 1);
}

static int submit_future_round(weft_loop *loop, void *arg) {
  fut_reset();
  weft_future *f = NULL;
  int err = weft_pool_submit_future(loop, WEFT_LANE_CPU, make_int, arg,
                                    count_dtor, &f);
  if (err != 0) {
    cr_assert_null(f);
    cr_assert(!weft_loop_alive(loop));
  } else {
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    cr_assert_eq(*(int *)weft_future_value(f), 5);
    weft_future_unref(f);
  }
  return err;
}

Test(pool, future_allocation_failure, .timeout = 30) {
  int v = 5;
  th_alloc_sweep_run(
      &(th_sweep){.op = submit_future_round, .arg = &v, .max_rounds = 100});
}

/* ---- weft_pool_map --------------------------------------------------------
 */

#define MAP_N 1000
static atomic_int map_now, map_max, map_calls, map_runs[MAP_N];
static atomic_int map_fail_at; /* index that fails with -EIO, or -1 */
static atomic_int map_gate;    /* 1: map_gated's calls may return */
static void map_reset(void) {
  atomic_store(&map_now, 0);
  atomic_store(&map_max, 0);
  atomic_store(&map_calls, 0);
  atomic_store(&map_fail_at, -1);
  atomic_store(&map_gate, 0);
  for (int i = 0; i < MAP_N; i++)
    atomic_store(&map_runs[i], 0);
}
static int map_count(size_t i, void *arg, int64_t *result) {
  int now = atomic_fetch_add(&map_now, 1) + 1;
  int max = atomic_load(&map_max);
  while (now > max && !atomic_compare_exchange_weak(&map_max, &max, now)) {
  }
  atomic_fetch_add(&map_calls, 1);
  if (i < MAP_N) atomic_fetch_add(&map_runs[i], 1);
  sched_yield();
  *result = (int64_t)i * 2 + (arg != NULL ? *(int *)arg : 0);
  atomic_fetch_sub(&map_now, 1);
  return (int)i == atomic_load(&map_fail_at) ? -EIO : 0;
}
/* Holds its worker until map_gate opens or the call is asked to stop. */
static int map_gated(size_t i, void *arg, int64_t *result) {
  (void)arg;
  atomic_fetch_add(&map_calls, 1);
  if (i < MAP_N) atomic_fetch_add(&map_runs[i], 1);
  atomic_fetch_add(&gate_started, 1);
  while (!atomic_load(&map_gate)) {
    if (weft_work_cancelled()) {
      atomic_fetch_add(&gate_saw_cancel, 1);
      return -ECANCELED;
    }
    sched_yield();
  }
  *result = 1;
  return 0;
}

Test(pool, map_runs_every_index_once_within_the_limit, .timeout = 60) {
  weft_loop *loop = th_loop();
  map_reset();
  cr_assert_eq(weft_pool_resize(loop, 8, 0), 0);
  static int64_t results[MAP_N];
  int bias = 5;
  weft_future *f = NULL;
  int err = weft_pool_map(loop, WEFT_LANE_CPU, MAP_N, map_count, &bias, 3,
                          results, &f);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_future_value_i64(f), MAP_N);
  cr_assert_eq(atomic_load(&map_calls), MAP_N);
  int max = atomic_load(&map_max);
  cr_assert(max >= 1 && max <= 3, "max concurrent %d", max);
  for (int i = 0; i < MAP_N; i++) {
    cr_assert_eq(atomic_load(&map_runs[i]), 1, "index %d", i);
    cr_assert_eq(results[i], (int64_t)i * 2 + 5, "index %d", i);
  }
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(pool, map_limit_zero_is_the_lane_size_and_above_n_is_fine, .timeout = 30) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_pool_resize(loop, 2, 0), 0);
  size_t limits[] = {0, 1000000};
  for (int k = 0; k < 2; k++) {
    map_reset();
    weft_future *f = NULL;
    int err = weft_pool_map(loop, WEFT_LANE_CPU, 50, map_count, NULL, limits[k],
                            NULL, &f);
    cr_assert_eq(err, 0, "%s", weft_err_name(err));
    th_run(loop);
    cr_assert_eq(weft_future_value_i64(f), 50);
    cr_assert_eq(atomic_load(&map_calls), 50);
    if (k == 0) cr_assert_leq(atomic_load(&map_max), 2);
    weft_future_unref(f);
  }
  th_loop_finish(loop);
}

Test(pool, map_of_nothing_is_fulfilled_with_zero, .timeout = 20) {
  weft_loop *loop = th_loop();
  map_reset();
  weft_future *f = NULL;
  cr_assert_eq(
      weft_pool_map(loop, WEFT_LANE_IO, 0, map_count, NULL, 3, NULL, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 0);
  cr_assert(!weft_loop_alive(loop));
  cr_assert_eq(atomic_load(&map_calls), 0);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(pool, map_error_stops_the_rest, .timeout = 30) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_pool_resize(loop, 2, 0), 0);
  static int64_t results[MAP_N];
  /* limit 1: strictly in order, so exactly 0..10 ran and 11.. never did */
  map_reset();
  atomic_store(&map_fail_at, 10);
  for (int i = 0; i < MAP_N; i++)
    results[i] = -1;
  weft_future *f = NULL;
  cr_assert_eq(weft_pool_map(loop, WEFT_LANE_CPU, MAP_N, map_count, NULL, 1,
                             results, &f),
               0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(f), -EIO, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(atomic_load(&map_calls), 11);
  for (int i = 0; i < MAP_N; i++)
    cr_assert_eq(atomic_load(&map_runs[i]), i <= 10 ? 1 : 0, "index %d", i);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(results[i], 2 * i);
  for (int i = 10; i < MAP_N; i++)
    cr_assert_eq(results[i], -1, "index %d: failed or never ran", i);
  weft_future_unref(f);
  /* limit 2: the same error; no index ran twice, the failing one ran */
  map_reset();
  atomic_store(&map_fail_at, 10);
  cr_assert_eq(
      weft_pool_map(loop, WEFT_LANE_CPU, MAP_N, map_count, NULL, 2, NULL, &f),
      0);
  th_run(loop);
  cr_assert_eq(weft_future_error(f), -EIO, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(atomic_load(&map_runs[10]), 1);
  for (int i = 0; i < MAP_N; i++)
    cr_assert_leq(atomic_load(&map_runs[i]), 1, "index %d", i);
  weft_future_unref(f);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(pool, map_cancel_stops_queued_and_running_calls, .timeout = 30) {
  weft_loop *loop = th_loop();
  map_reset();
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 4, 0), 0);
  static int64_t results[MAP_N];
  weft_future *f = NULL;
  cr_assert_eq(
      weft_pool_map(loop, WEFT_LANE_CPU, 100, map_gated, NULL, 3, results, &f),
      0);
  wait_started(3);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  th_run(loop);
  cr_assert_eq(atomic_load(&map_calls), 3, "only the first three ran");
  cr_assert_eq(atomic_load(&gate_saw_cancel), 3, "all asked to stop");
  for (int i = 3; i < 100; i++)
    cr_assert_eq(atomic_load(&map_runs[i]), 0);
  cr_assert_eq(weft_future_cancel(f), -EALREADY);
  weft_future_unref(f);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(pool, map_bad_arguments, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  cr_assert_eq(
      weft_pool_map(NULL, WEFT_LANE_CPU, 1, map_count, NULL, 1, NULL, &f),
      -EINVAL);
  cr_assert_eq(weft_pool_map(loop, WEFT_LANE_CPU, 1, NULL, NULL, 1, NULL, &f),
               -EINVAL);
  cr_assert_eq(
      weft_pool_map(loop, WEFT_LANE_CPU, 1, map_count, NULL, 1, NULL, NULL),
      -EINVAL);
  cr_assert_eq(
      weft_pool_map(loop, WEFT_LANE_COUNT, 1, map_count, NULL, 1, NULL, &f),
      -EINVAL);
  cr_assert_eq(
      weft_pool_map(loop, (weft_pool_lane)-1, 1, map_count, NULL, 1, NULL, &f),
      -EINVAL);
  cr_assert_null(f);
  cr_assert(!weft_loop_alive(loop));
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(pool, map_pending_when_the_loop_is_freed, .timeout = 30) {
  weft_loop *loop = th_loop();
  map_reset();
  gate_reset();
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  weft_future *f = NULL;
  cr_assert_eq(
      weft_pool_map(loop, WEFT_LANE_CPU, 50, map_gated, NULL, 4, NULL, &f), 0);
  wait_started(1);
  weft_future_unref(f); /* the map keeps it alive */
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(weft_alloc_live(), 0);
  /* one worker: the first call ran (asked to stop), the three queued ones
   * were withdrawn, nothing else started */
  cr_assert_eq(atomic_load(&map_calls), 1);
  cr_assert_eq(atomic_load(&gate_saw_cancel), 1);
}

static int map_round(weft_loop *loop, void *arg) {
  (void)arg;
  map_reset();
  int64_t results[20] = {0};
  weft_future *f = NULL;
  int err =
      weft_pool_map(loop, WEFT_LANE_CPU, 20, map_count, NULL, 0, results, &f);
  if (err != 0) {
    cr_assert_null(f);
    cr_assert(!weft_loop_alive(loop));
    cr_assert_eq(atomic_load(&map_calls), 0);
  } else {
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    cr_assert_eq(weft_future_value_i64(f), 20);
    cr_assert_eq(atomic_load(&map_calls), 20);
    cr_assert_eq(results[19], 38);
    weft_future_unref(f);
  }
  return err;
}

Test(pool, map_allocation_failure, .timeout = 60) {
  th_alloc_sweep_run(&(th_sweep){.op = map_round, .max_rounds = 100});
}
