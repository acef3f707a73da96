/* The thread pool: weft's pool against libuv's (uv_queue_work) and a plain
 * hand-written mutex + condition-variable queue, the same number of
 * threads for all (THREADS; libuv's through UV_THREADPOOL_SIZE).
 *
 * bulk    1M tiny jobs submitted at once from the loop thread; the run ends
 *         when the last completion has run on the loop (plain: when the
 *         submitter has seen every job counted; it has no completions to
 *         run). The job structs are allocated and written before the clock.
 *         jobs/s, and the process's CPU time (every thread) per job.
 * serial  one job at a time: the next is submitted from the completion of
 *         the previous one, so every job pays two cross-thread hand-offs.
 *         jobs/s.
 * Counts are verified exactly: every job ran once and completed once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define THREADS 4

static size_t n_bulk, n_serial;
static atomic_size_t ran;
static size_t completed;

static void tiny(void) {
  atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
}

/* The caller's job structs (weft_work, uv_work_t), written once before the
 * clock starts: the figure is the pool's, not the kernel's first touch of
 * 100 MB (the plain queue has no per-job struct at all). */
static void *job_array(size_t size, size_t n) {
  void *p = malloc(size * n);
  if (p == NULL) bench_fail("malloc");
  memset(p, 0, size * n);
  return p;
}

/* ---- weft ------------------------------------------------------------------
 */

static weft_loop *new_weft_loop(void) {
  weft_loop_options o = {.pool_size = THREADS};
  weft_loop *loop = NULL;
  if (weft_loop_new(&loop, &o) != 0) bench_fail("weft_loop_new");
  return loop;
}

static void w_work(weft_work *w) {
  (void)w;
  tiny();
}
static void w_done(weft_work *w, int status) {
  (void)w;
  if (status != 0) bench_fail("weft job status %d", status);
  completed++;
}
static void w_serial_done(weft_work *w, int status) {
  if (status != 0) bench_fail("weft job status %d", status);
  if (++completed < n_serial &&
      weft_work_submit(w->loop, w, WEFT_LANE_CPU, w_work, w_serial_done) != 0)
    bench_fail("weft submit");
}

static void weft_run(double *v, void *arg) {
  bool serial = arg != NULL;
  size_t n = serial ? n_serial : n_bulk;
  weft_loop *loop = new_weft_loop();
  weft_work *w = job_array(sizeof *w, serial ? 1 : n);
  atomic_store(&ran, 0);
  completed = 0;
  /* warm: threads start on first use, not inside the measurement */
  weft_work warm;
  if (weft_work_submit(loop, &warm, WEFT_LANE_CPU, w_work, w_done) != 0)
    bench_fail("submit");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  atomic_store(&ran, 0);
  completed = 0;
  double t0 = bench_wall(), c0 = bench_cpu();
  if (serial) {
    if (weft_work_submit(loop, w, WEFT_LANE_CPU, w_work, w_serial_done) != 0)
      bench_fail("submit");
  } else {
    for (size_t i = 0; i < n; i++)
      if (weft_work_submit(loop, &w[i], WEFT_LANE_CPU, w_work, w_done) != 0)
        bench_fail("submit");
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  v[0] = (double)n / (bench_wall() - t0);
  if (!serial) v[1] = (bench_cpu() - c0) * 1e9 / (double)n;
  BENCH_CHECK(completed == n && atomic_load(&ran) == n, "weft: %zu/%zu",
              completed, n);
  free(w);
  if (weft_loop_free(loop) != 0) bench_fail("weft_loop_free");
}

/* ---- libuv -----------------------------------------------------------------
 */

static void u_work(uv_work_t *w) {
  (void)w;
  tiny();
}
static void u_done(uv_work_t *w, int status) {
  (void)w;
  if (status != 0) bench_fail("uv job status %d", status);
  completed++;
}
static void u_serial_done(uv_work_t *w, int status) {
  if (status != 0) bench_fail("uv job status %d", status);
  if (++completed < n_serial &&
      uv_queue_work(w->loop, w, u_work, u_serial_done) != 0)
    bench_fail("uv submit");
}

static void uv_run_bench(double *v, void *arg) {
  bool serial = arg != NULL;
  size_t n = serial ? n_serial : n_bulk;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_work_t *w = job_array(sizeof *w, serial ? 1 : n);
  uv_work_t warm;
  uv_queue_work(&loop, &warm, u_work, u_done);
  uv_run(&loop, UV_RUN_DEFAULT);
  atomic_store(&ran, 0);
  completed = 0;
  double t0 = bench_wall(), c0 = bench_cpu();
  if (serial) {
    uv_queue_work(&loop, w, u_work, u_serial_done);
  } else {
    for (size_t i = 0; i < n; i++)
      if (uv_queue_work(&loop, &w[i], u_work, u_done) != 0)
        bench_fail("uv submit");
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  v[0] = (double)n / (bench_wall() - t0);
  if (!serial) v[1] = (bench_cpu() - c0) * 1e9 / (double)n;
  BENCH_CHECK(completed == n && atomic_load(&ran) == n, "libuv: %zu/%zu",
              completed, n);
  free(w);
  uv_loop_close(&loop);
}

/* ---- plain: a mutex + condvar queue of job indices -------------------------
 */

typedef struct plain_q {
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  size_t head, tail, finished, n;
  bool stop;
} plain_q;

static void *plain_worker(void *arg) {
  plain_q *q = arg;
  pthread_mutex_lock(&q->lock);
  for (;;) {
    while (q->head == q->tail && !q->stop)
      pthread_cond_wait(&q->work, &q->lock);
    if (q->head == q->tail) break;
    q->head++;
    pthread_mutex_unlock(&q->lock);
    tiny();
    pthread_mutex_lock(&q->lock);
    if (++q->finished == q->n) pthread_cond_signal(&q->done);
  }
  pthread_mutex_unlock(&q->lock);
  return NULL;
}

static void plain_run(double *v, void *arg) {
  (void)arg;
  plain_q q = {.n = n_bulk};
  pthread_mutex_init(&q.lock, NULL);
  pthread_cond_init(&q.work, NULL);
  pthread_cond_init(&q.done, NULL);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, plain_worker, &q);
  atomic_store(&ran, 0);
  double t0 = bench_wall(), c0 = bench_cpu();
  for (size_t i = 0; i < n_bulk; i++) {
    pthread_mutex_lock(&q.lock);
    q.tail++;
    pthread_cond_signal(&q.work);
    pthread_mutex_unlock(&q.lock);
  }
  pthread_mutex_lock(&q.lock);
  while (q.finished < q.n)
    pthread_cond_wait(&q.done, &q.lock);
  q.stop = true;
  pthread_cond_broadcast(&q.work);
  pthread_mutex_unlock(&q.lock);
  v[0] = (double)n_bulk / (bench_wall() - t0);
  v[1] = (bench_cpu() - c0) * 1e9 / (double)n_bulk;
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  BENCH_CHECK(atomic_load(&ran) == n_bulk, "plain: %zu", atomic_load(&ran));
}

static const bench_metric bulk_m[] = {{"pool_bulk_1m", "jobs/s", true},
                                      {"pool_bulk_1m_cpu", "ns/job", false}};
static const bench_metric serial_m[] = {{"pool_serial", "jobs/s", true}};
static const bench_impl bulk_i[] = {{"weft", weft_run, NULL},
                                    {"libuv", uv_run_bench, NULL},
                                    {"plain", plain_run, NULL}};
static const bench_impl serial_i[] = {{"weft", weft_run, (void *)1},
                                      {"libuv", uv_run_bench, (void *)1}};
static const bench_group groups[] = {
    {"bulk", bulk_m, BENCH_LEN(bulk_m), bulk_i, BENCH_LEN(bulk_i)},
    {"serial", serial_m, 1, serial_i, BENCH_LEN(serial_i)},
};

int main(int argc, char **argv) {
  setenv("UV_THREADPOOL_SIZE", "4", 1); /* THREADS, before libuv's first use */
  n_bulk = bench_n(1000000, 100000);
  n_serial = bench_n(100000, 10000);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
