/* The pool's per-lane queue-wait and run-time histograms
 * (weft_pool_get_metrics): exact counts in small scenarios. */
#include "support/test.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static weft_pool_metrics get(weft_loop *loop) {
  weft_pool_metrics m;
  memset(&m, 0xa5, sizeof m);
  int err = weft_pool_get_metrics(loop, &m, sizeof m);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  cr_assert_eq(m.size, sizeof m);
  return m;
}

static uint64_t sum(const uint64_t *h) {
  uint64_t n = 0;
  for (int i = 0; i < WEFT_POOL_HIST_BUCKETS; i++)
    n += h[i];
  return n;
}

/* Jobs of at least 2^(b-1) µs: buckets b and up. */
static uint64_t from_bucket(const uint64_t *h, int b) {
  uint64_t n = 0;
  for (int i = b; i < WEFT_POOL_HIST_BUCKETS; i++)
    n += h[i];
  return n;
}

static uint64_t clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Busy for at least `ms` (a job that really runs that long). */
static void busy_ms(unsigned ms) {
  uint64_t end = clock_ns() + (uint64_t)ms * 1000000u;
  while (clock_ns() < end) {
  }
}

static int done_ok, done_cancelled;
static void on_done(weft_work *w, int status) {
  (void)w;
  if (status == 0)
    done_ok++;
  else if (status == -ECANCELED)
    done_cancelled++;
}
static void empty_job(weft_work *w) { (void)w; }
static void slow_job(weft_work *w) {
  (void)w;
  busy_ms(5);
}

static atomic_int go;
static void gated_slow_job(weft_work *w) {
  (void)w;
  while (!atomic_load(&go)) {
  }
  busy_ms(5);
}

Test(pool_metrics, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pool_metrics m;
  int err = weft_pool_get_metrics(NULL, &m, sizeof m);
  cr_assert_eq(err, -EINVAL, "%s", weft_err_name(err));
  err = weft_pool_get_metrics(loop, NULL, sizeof m);
  cr_assert_eq(err, -EINVAL, "%s", weft_err_name(err));
  err = weft_pool_get_metrics(loop, &m, sizeof m - 1);
  cr_assert_eq(err, -EINVAL, "%s", weft_err_name(err));
  /* a bigger struct (a newer caller): filled, the rest zeroed */
  unsigned char big[sizeof m + 16];
  memset(big, 0xa5, sizeof big);
  err =
      weft_pool_get_metrics(loop, (weft_pool_metrics *)(void *)big, sizeof big);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  weft_pool_metrics head;
  memcpy(&head, big, sizeof head);
  cr_assert_eq(head.size, sizeof m);
  for (size_t i = sizeof m; i < sizeof big; i++)
    cr_assert_eq(big[i], 0, "byte %zu", i);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(pool_metrics, n_jobs_count_n_in_each_histogram_of_their_lane,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_pool_metrics a = get(loop);
  enum { N = 100 };
  static weft_work w[N];
  for (int i = 0; i < N; i++) {
    int err = weft_work_submit(loop, &w[i], WEFT_LANE_CPU, empty_job, on_done);
    cr_assert_eq(err, 0, "%s", weft_err_name(err));
  }
  th_run(loop);
  cr_assert_eq(done_ok, N);
  weft_pool_metrics b = get(loop);
  const weft_pool_lane_metrics *ca = &a.lanes[WEFT_LANE_CPU],
                               *cb = &b.lanes[WEFT_LANE_CPU];
  cr_assert_eq(cb->jobs - ca->jobs, N);
  cr_assert_eq(sum(cb->queue_wait) - sum(ca->queue_wait), N);
  cr_assert_eq(sum(cb->run_time) - sum(ca->run_time), N);
  cr_assert_eq(sum(cb->run_time), cb->jobs);
  cr_assert_eq(sum(cb->queue_wait), cb->jobs);
  /* the io lane saw none of them */
  cr_assert_eq(b.lanes[WEFT_LANE_IO].jobs, a.lanes[WEFT_LANE_IO].jobs);
  cr_assert_eq(sum(b.lanes[WEFT_LANE_IO].run_time),
               sum(a.lanes[WEFT_LANE_IO].run_time));
  th_loop_finish(loop);
}

Test(pool_metrics, run_time_and_queue_wait_land_in_their_buckets,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  int err = weft_pool_resize(loop, 1, 1); /* one worker: jobs queue up */
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  weft_pool_metrics a = get(loop);
  weft_work blocker, behind, cancelled, slow;
  atomic_store(&go, 0);
  cr_assert_eq(
      weft_work_submit(loop, &blocker, WEFT_LANE_IO, gated_slow_job, on_done),
      0);
  cr_assert_eq(
      weft_work_submit(loop, &behind, WEFT_LANE_IO, empty_job, on_done), 0);
  cr_assert_eq(
      weft_work_submit(loop, &cancelled, WEFT_LANE_IO, empty_job, on_done), 0);
  err = weft_work_cancel(&cancelled); /* still queued behind the blocker */
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  atomic_store(&go, 1); /* `behind` now waits >= 5 ms for the worker */
  cr_assert_eq(weft_work_submit(loop, &slow, WEFT_LANE_CPU, slow_job, on_done),
               0);
  th_run(loop);
  cr_assert_eq(done_ok, 3);
  cr_assert_eq(done_cancelled, 1);

  weft_pool_metrics b = get(loop);
  const weft_pool_lane_metrics *ia = &a.lanes[WEFT_LANE_IO],
                               *ib = &b.lanes[WEFT_LANE_IO],
                               *ca = &a.lanes[WEFT_LANE_CPU],
                               *cb = &b.lanes[WEFT_LANE_CPU];
  /* io: the blocker and `behind` ran; the cancelled job is in neither */
  cr_assert_eq(ib->jobs - ia->jobs, 2);
  cr_assert_eq(sum(ib->queue_wait) - sum(ia->queue_wait), 2);
  cr_assert_eq(sum(ib->run_time) - sum(ia->run_time), 2);
  /* 5 ms = 5000 µs is in bucket 13, [4096, 8192) µs, or later */
  cr_assert_eq(from_bucket(ib->run_time, 13) - from_bucket(ia->run_time, 13), 1,
               "the blocker ran >= 5 ms");
  cr_assert_geq(from_bucket(ib->queue_wait, 13) -
                    from_bucket(ia->queue_wait, 13),
                1, "`behind` waited >= 5 ms");
  /* cpu: the slow job */
  cr_assert_eq(cb->jobs - ca->jobs, 1);
  cr_assert_eq(from_bucket(cb->run_time, 13) - from_bucket(ca->run_time, 13),
               1);
  cr_assert_eq(sum(cb->queue_wait) - sum(ca->queue_wait), 1);
  th_loop_finish(loop);
}
