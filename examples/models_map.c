/* models_map [--model threads|processes|async] [-c CHUNKS] [-w WIDTH] [-j N]
 * — one CPU-bound map written in the three models of concurrency (the
 * guide's "Choosing" page, docs/guide/choosing.md): count the primes below
 * CHUNKS * WIDTH by trial division, one job per chunk of WIDTH numbers,
 * and add the counts up.
 *
 *   threads    the jobs run on the pool's CPU lane (weft_pool_map), N threads
 *   processes  the jobs run in N worker processes (weft_procpool_map), this
 *              program's own binary started with --worker
 *   async      one fiber per job on the loop's thread: no parallelism at
 *              all, and the loop does nothing else while a job computes
 *
 * Each model's driver is a fiber, so all three read top to bottom. Prints
 * the model, the count and the wall time; exit 1 if the count is wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: models_map [--model threads|processes|async] [-c CHUNKS] "
    "[-w WIDTH] [-j N]\n"
    "  counts the primes below CHUNKS*WIDTH (default 64 * 100000), one job\n"
    "  per chunk, in N threads (default 2), N worker processes, or fibers\n"
    "  on one thread; prints the count and the wall time.\n";

static long chunks = 64, width = 100000, parallel = 2;
static char self_path[4096];

/* The work: the primes in [lo, hi), by trial division. */
static int64_t count_primes(int64_t lo, int64_t hi) {
  int64_t n = 0;
  for (int64_t v = lo < 2 ? 2 : lo; v < hi; v++) {
    bool prime = true;
    for (int64_t d = 2; d * d <= v && prime; d++)
      prime = v % d != 0;
    n += prime;
  }
  return n;
}

/* The check: the same count by a sieve (one bit per number), far cheaper
 * than the map itself. */
static int64_t sieve_count(int64_t below) {
  uint8_t *composite = calloc((size_t)below / 8 + 1, 1);
  int64_t n = 0;
  if (composite == NULL) return -1;
  for (int64_t v = 2; v < below; v++) {
    if (composite[v / 8] & (1u << (v % 8))) continue;
    n++;
    for (int64_t k = v * v; k < below; k += v)
      composite[k / 8] |= (uint8_t)(1u << (k % 8));
  }
  free(composite);
  return n;
}

/* ---- threads: weft_pool_map on the CPU lane ------------------------------ */

static int chunk_job(size_t i, void *arg, int64_t *result) {
  (void)arg;
  *result = count_primes((int64_t)i * width, (int64_t)(i + 1) * width);
  return 0;
}

static int run_threads(weft_loop *loop, int64_t *total) {
  int64_t *counts = calloc((size_t)chunks, sizeof *counts);
  weft_future *map = NULL;
  int err =
      counts == NULL ? -ENOMEM : weft_pool_resize(loop, (unsigned)parallel, 0);
  if (err == 0)
    err = weft_pool_map(loop, WEFT_LANE_CPU, (size_t)chunks, chunk_job, NULL, 0,
                        counts, &map);
  if (err == 0) err = weft_await(map);
  for (long i = 0; err == 0 && i < chunks; i++)
    *total += counts[i];
  weft_future_unref(map);
  free(counts);
  return err;
}

/* ---- processes: weft_procpool_map over worker processes ------------------ */

static int worker_job(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)arg;
  char text[64];
  long long lo, hi;
  if (len >= sizeof text) return -EINVAL;
  memcpy(text, in, len);
  text[len] = '\0';
  if (sscanf(text, "%lld %lld", &lo, &hi) != 2) return -EINVAL;
  out->base = malloc(32);
  if (out->base == NULL) return -ENOMEM;
  out->len =
      (size_t)snprintf(out->base, 32, "%lld", (long long)count_primes(lo, hi));
  return 0;
}

static void pool_closed(weft_procpool *pool, void *arg) {
  (void)pool;
  weft_future_resolve_i64(arg, 0);
}

static int run_processes(weft_loop *loop, int64_t *total) {
  weft_procpool_options o = {.argv =
                                 (char *const[]){self_path, "--worker", NULL},
                             .workers = (unsigned)parallel};
  char(*texts)[64] = calloc((size_t)chunks, sizeof *texts);
  weft_buf *inputs = calloc((size_t)chunks, sizeof *inputs);
  weft_future **jobs = calloc((size_t)chunks, sizeof *jobs);
  weft_future *all = NULL, *closed = NULL;
  weft_procpool *pool = NULL;
  int err = texts && inputs && jobs ? 0 : -ENOMEM;
  for (long i = 0; err == 0 && i < chunks; i++) {
    int n = snprintf(texts[i], sizeof texts[i], "%ld %ld", i * width,
                     (i + 1) * width);
    inputs[i] = weft_buf_init(texts[i], (size_t)n);
  }
  if (err == 0) err = weft_procpool_new(loop, &o, &pool);
  if (err == 0)
    err = weft_procpool_map(pool, inputs, (size_t)chunks, jobs, &all);
  if (err == 0) err = weft_await(all);
  for (long i = 0; err == 0 && i < chunks; i++) {
    const weft_procpool_result *r = weft_future_value(jobs[i]);
    *total += atoll(r->data);
  }
  for (long i = 0; all != NULL && i < chunks; i++)
    weft_future_unref(jobs[i]);
  weft_future_unref(all);
  if (pool != NULL && weft_future_new(loop, &closed) == 0) {
    /* the pool stops its workers; wait until they have exited */
    if (weft_procpool_close(pool, pool_closed, closed) == 0) weft_await(closed);
    weft_future_unref(closed);
  }
  free(jobs);
  free(inputs);
  free(texts);
  return err;
}

/* ---- async: one fiber per chunk on the loop's own thread ----------------- */

static int chunk_fiber(weft_fiber *self, void *arg) {
  long i = (long)(intptr_t)arg;
  weft_fiber_return_i64(self, count_primes(i * width, (i + 1) * width));
  return 0;
}

static int run_async(weft_loop *loop, int64_t *total) {
  (void)loop;
  weft_future **fs = calloc((size_t)chunks, sizeof *fs);
  int err = fs == NULL ? -ENOMEM : 0;
  for (long i = 0; err == 0 && i < chunks; i++)
    err = weft_fiber_create_task(chunk_fiber, (void *)(intptr_t)i, &fs[i]);
  for (long i = 0; fs != NULL && i < chunks && fs[i] != NULL; i++) {
    int64_t v = 0;
    int e = weft_await_take_i64(fs[i], &v); /* drops fs[i] */
    if (err == 0) err = e;
    *total += v;
  }
  free(fs);
  return err;
}

/* ---- the driver ---------------------------------------------------------- */

typedef struct model {
  const char *name;
  int (*run)(weft_loop *loop, int64_t *total);
} model;

static const model models[] = {{"threads", run_threads},
                               {"processes", run_processes},
                               {"async", run_async}};

static int driver(weft_fiber *self, void *arg) {
  int64_t total = 0;
  int err = ((const model *)arg)->run(weft_fiber_loop(self), &total);
  weft_fiber_return_i64(self, total);
  return err;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--worker") == 0)
    return weft_procpool_worker_main(worker_job, NULL) == 0 ? 0 : 1;
  const model *m = &models[0];
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i])) {
      ex_usage(usage, 0);
    } else if (strcmp(argv[i], "--model") == 0) {
      const char *name = ex_str(argc, argv, &i, usage);
      m = NULL;
      for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        if (strcmp(models[k].name, name) == 0) m = &models[k];
      if (m == NULL) ex_bad(usage, "unknown model '%s'", name);
    } else if (strcmp(argv[i], "-c") == 0) {
      chunks = ex_long(argc, argv, &i, 1, 100000, usage);
    } else if (strcmp(argv[i], "-w") == 0) {
      width = ex_long(argc, argv, &i, 1, 100000000, usage);
    } else if (strcmp(argv[i], "-j") == 0) {
      parallel = ex_long(argc, argv, &i, 1, 64, usage);
    } else {
      ex_bad(usage, "unknown argument '%s'", argv[i]);
    }
  }
  ssize_t len = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (len < 0) return 1;
  self_path[len] = '\0';
  weft_loop *loop;
  int64_t total = 0;
  double t0 = now_s();
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) {
    fprintf(stderr, "models_map: loop: %s\n", weft_strerror(err));
    return 1;
  }
  err = weft_fiber_run(loop, driver, (void *)m, NULL, &total);
  double wall = now_s() - t0;
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* finish the handles' closes */
  weft_loop_free(loop);
  if (err != 0) {
    fprintf(stderr, "models_map: %s: %s\n", m->name, weft_strerror(err));
    return 1;
  }
  int64_t want = sieve_count(chunks * width);
  printf("%-9s %ld chunks: %lld primes below %ld in %.3f s wall%s\n", m->name,
         chunks, (long long)total, chunks * width, wall,
         total == want ? "" : " (WRONG)");
  return total == want ? 0 : 1;
}
