/* Timers: start N one-shot timers, fire them all, close them all; weft
 * against libuv and raw libev, same workload, alternating in one run.
 *
 * Two shapes: every timer at 0 ms ("zero"), and deadlines i % 1000 ms in
 * start order, so the heap sees non-monotonic inserts ("spread"; the fire
 * phase waits the real ~1 s, so its CPU time is what compares).
 *
 * Metrics per shape: start (wall), fire CPU and fire wall, start+fire CPU
 * (the goal figure), close (wall), and bytes per timer: the timer struct
 * plus what the library itself holds for the started timers (libev's heap
 * array; weft's buckets, heap and hash), counted by one allocator wrapper
 * that all three libraries are given. For raw libev "close" is stopping
 * each watcher, which is all a libev user does before freeing them.
 * Timer memory is allocated and touched before the clock starts, so page
 * faults are not measured; the libraries' own allocations are. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

enum {
  M_START,
  M_FIRE_CPU,
  M_FIRE_WALL,
  M_START_FIRE_CPU,
  M_CLOSE,
  M_BYTES,
  M_COUNT
};

typedef enum { SHAPE_ZERO, SHAPE_SPREAD } shape;

static size_t n_timers;
static size_t fired;

static uint64_t delay_ms(shape s, size_t i) {
  return s == SHAPE_ZERO ? 0 : (uint64_t)(i % 1000);
}

typedef struct mark {
  double wall, cpu;
  size_t lib_bytes; /* held by the library being measured */
} mark;

/* ---- counting allocator (every library gets the same one) ---------------
 * Each block carries its size in a 16-byte header (keeping malloc's
 * alignment), so live bytes are known at any point. */
static size_t lib_bytes;

enum { HDR = 16 };

static void *count_realloc(void *p, size_t n) {
  char *b = p ? (char *)p - HDR : NULL;
  size_t old = b ? *(size_t *)b : 0;
  if (n == 0) {
    free(b);
    lib_bytes -= old;
    return NULL;
  }
  char *nb = realloc(b, n + HDR);
  if (nb == NULL) return NULL;
  *(size_t *)nb = n;
  lib_bytes += n - old;
  return nb + HDR;
}

static void *count_malloc(size_t n) { return count_realloc(NULL, n ? n : 1); }
static void count_free(void *p) {
  if (p != NULL) count_realloc(p, 0);
}
static void *count_calloc(size_t k, size_t n) {
  if (n != 0 && k > SIZE_MAX / n) return NULL;
  void *p = count_malloc(k * n);
  if (p != NULL) memset(p, 0, k * n);
  return p;
}
static void *count_ev(void *p, long n) { return count_realloc(p, (size_t)n); }
static void *count_weft_malloc(size_t n, void *ctx) {
  (void)ctx;
  return count_malloc(n);
}
static void *count_weft_realloc(void *p, size_t n, void *ctx) {
  (void)ctx;
  return count_realloc(p, n ? n : 1);
}
static void count_weft_free(void *p, void *ctx) {
  (void)ctx;
  count_free(p);
}

static void count_allocations(void) {
  static const weft_allocator wa = {count_weft_malloc, count_weft_realloc,
                                    count_weft_free, NULL};
  BENCH_CHECK(weft_set_allocator(&wa) == 0, "weft_set_allocator");
  BENCH_CHECK(uv_replace_allocator(count_malloc, count_realloc, count_calloc,
                                   count_free) == 0,
              "uv_replace_allocator");
  ev_set_allocator(count_ev);
}

static mark now(void) { return (mark){bench_wall(), bench_cpu(), lib_bytes}; }

/* Memory for the timers, already faulted in. A memset(0) right after
 * malloc is not enough: the compiler turns the pair into calloc, which
 * leaves fresh pages of a large block untouched, and the start phase then
 * paid the page faults, in proportion to each library's timer size. So
 * every page is written through a volatile pointer as well. */
static void *timer_array(size_t size) {
  void *p = malloc(size);
  if (p == NULL) bench_fail("out of memory for %zu bytes", size);
  memset(p, 0, size);
  for (size_t off = 0; off < size; off += 4096)
    ((volatile char *)p)[off] = 0;
  return p;
}

/* a: before start, b: after start, c: after fire, d: after close.
 * `size`: the library's timer struct. */
static void record(double *v, shape s, size_t size, mark a, mark b, mark c,
                   mark d) {
  BENCH_CHECK(fired == n_timers, "fired %zu of %zu timers", fired, n_timers);
  /* the last deadline is 999 ms after the start phase began */
  if (s == SHAPE_SPREAD)
    BENCH_CHECK(c.wall - a.wall >= 0.99, "spread timers done after %.3f s",
                c.wall - a.wall);
  v[M_START] = b.wall - a.wall;
  v[M_FIRE_CPU] = c.cpu - b.cpu;
  v[M_FIRE_WALL] = c.wall - b.wall;
  v[M_START_FIRE_CPU] = c.cpu - a.cpu;
  v[M_CLOSE] = d.wall - c.wall;
  double held =
      b.lib_bytes > a.lib_bytes ? (double)(b.lib_bytes - a.lib_bytes) : 0.0;
  v[M_BYTES] = (double)size + held / (double)n_timers;
}

/* ---- weft ------------------------------------------------------------- */

static void on_weft_timer(weft_timer *t) {
  (void)t;
  fired++;
}

static void run_weft(double *v, void *arg) {
  shape s = *(const shape *)arg;
  weft_timer *t = timer_array(n_timers * sizeof *t);
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "weft_loop_new");
  fired = 0;
  weft_update_time(loop);
  mark a = now();
  for (size_t i = 0; i < n_timers; i++) {
    weft_timer_init(loop, &t[i]);
    if (weft_timer_start(&t[i], on_weft_timer, delay_ms(s, i), 0) != 0)
      bench_fail("weft_timer_start %zu", i);
  }
  mark b = now();
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  mark c = now();
  for (size_t i = 0; i < n_timers; i++)
    weft_close(&t[i].base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  mark d = now();
  record(v, s, sizeof *t, a, b, c, d);
  for (size_t i = 0; i < n_timers; i++)
    BENCH_CHECK(!weft_is_active(&t[i].base), "weft timer %zu still active", i);
  BENCH_CHECK(weft_loop_free(loop) == 0, "weft_loop_free");
  BENCH_CHECK(weft_alloc_live() == 0, "weft leaked %zu blocks",
              weft_alloc_live());
  free(t);
}

/* ---- libuv ------------------------------------------------------------- */

static void on_uv_timer(uv_timer_t *t) {
  (void)t;
  fired++;
}

static void run_uv(double *v, void *arg) {
  shape s = *(const shape *)arg;
  uv_timer_t *t = timer_array(n_timers * sizeof *t);
  uv_loop_t loop;
  BENCH_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
  fired = 0;
  uv_update_time(&loop);
  mark a = now();
  for (size_t i = 0; i < n_timers; i++) {
    uv_timer_init(&loop, &t[i]);
    if (uv_timer_start(&t[i], on_uv_timer, delay_ms(s, i), 0) != 0)
      bench_fail("uv_timer_start %zu", i);
  }
  mark b = now();
  uv_run(&loop, UV_RUN_DEFAULT);
  mark c = now();
  for (size_t i = 0; i < n_timers; i++)
    uv_close((uv_handle_t *)&t[i], NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  mark d = now();
  record(v, s, sizeof *t, a, b, c, d);
  BENCH_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close: handles left");
  free(t);
}

/* ---- raw libev ----------------------------------------------------------- */

static void on_ev_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
  fired++;
}

static void run_ev(double *v, void *arg) {
  shape s = *(const shape *)arg;
  ev_timer *t = timer_array(n_timers * sizeof *t);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(loop != NULL, "ev_loop_new");
  fired = 0;
  ev_now_update(loop);
  mark a = now();
  for (size_t i = 0; i < n_timers; i++) {
    ev_timer_init(&t[i], on_ev_timer, (double)delay_ms(s, i) / 1e3, 0.);
    ev_timer_start(loop, &t[i]);
  }
  mark b = now();
  ev_run(loop, 0);
  mark c = now();
  for (size_t i = 0; i < n_timers; i++)
    ev_timer_stop(loop, &t[i]);
  mark d = now();
  record(v, s, sizeof *t, a, b, c, d);
  ev_loop_destroy(loop);
  free(t);
}

/* ---- groups ------------------------------------------------------------ */

static char names[2][M_COUNT][64];
static bench_metric metrics[2][M_COUNT];
static const shape shapes[2] = {SHAPE_ZERO, SHAPE_SPREAD};
static const char *const shape_names[2] = {"zero", "spread"};

static void make_metrics(int k, const char *size) {
  static const char *const what[M_COUNT] = {
      "start", "fire_cpu", "fire_wall", "start_fire_cpu", "close", "bytes"};
  for (int m = 0; m < M_COUNT; m++) {
    snprintf(names[k][m], sizeof names[k][m], "timers_%s_%s_%s", size,
             shape_names[k], what[m]);
    metrics[k][m] =
        (bench_metric){names[k][m], m == M_BYTES ? "B/timer" : "s", false};
  }
}

int main(int argc, char **argv) {
  count_allocations();
  n_timers = bench_n(1000000, 100000);
  const char *size = bench_quick() ? "100k" : "1m";
  bench_impl impls[2][3];
  bench_group groups[2];
  for (int k = 0; k < 2; k++) {
    make_metrics(k, size);
    impls[k][0] = (bench_impl){"weft", run_weft, (void *)&shapes[k]};
    impls[k][1] = (bench_impl){"libuv", run_uv, (void *)&shapes[k]};
    impls[k][2] = (bench_impl){"libev", run_ev, (void *)&shapes[k]};
    groups[k] = (bench_group){shape_names[k], metrics[k], M_COUNT, impls[k], 3};
  }
  return bench_main(argc, argv, groups, 2);
}
