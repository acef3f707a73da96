/* Timers: start N one-shot timers, fire them all, close them all; weft
 * against libuv and raw libev, same workload, alternating in one run.
 *
 * Two shapes: every timer at 0 ms ("zero"), and deadlines i % 1000 ms in
 * start order, so the heap sees non-monotonic inserts ("spread"; the fire
 * phase waits the real ~1 s, so its CPU time is what compares).
 *
 * Metrics per shape: start (wall), fire CPU and fire wall, start+fire CPU
 * (the goal figure) and close (wall). For raw libev "close" is stopping
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

enum { M_START, M_FIRE_CPU, M_FIRE_WALL, M_START_FIRE_CPU, M_CLOSE, M_COUNT };

typedef enum { SHAPE_ZERO, SHAPE_SPREAD } shape;

static size_t n_timers;
static size_t fired;

static uint64_t delay_ms(shape s, size_t i) {
  return s == SHAPE_ZERO ? 0 : (uint64_t)(i % 1000);
}

typedef struct mark {
  double wall, cpu;
} mark;

static mark now(void) { return (mark){bench_wall(), bench_cpu()}; }

/* Memory for the timers, already faulted in. */
static void *timer_array(size_t size) {
  void *p = malloc(size);
  if (p == NULL) bench_fail("out of memory for %zu bytes", size);
  memset(p, 0, size);
  return p;
}

/* a: before start, b: after start, c: after fire, d: after close. */
static void record(double *v, shape s, mark a, mark b, mark c, mark d) {
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
  record(v, s, a, b, c, d);
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
  record(v, s, a, b, c, d);
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
  record(v, s, a, b, c, d);
  ev_loop_destroy(loop);
  free(t);
}

/* ---- groups ------------------------------------------------------------ */

static char names[2][M_COUNT][64];
static bench_metric metrics[2][M_COUNT];
static const shape shapes[2] = {SHAPE_ZERO, SHAPE_SPREAD};
static const char *const shape_names[2] = {"zero", "spread"};

static void make_metrics(int k, const char *size) {
  static const char *const what[M_COUNT] = {"start", "fire_cpu", "fire_wall",
                                            "start_fire_cpu", "close"};
  for (int m = 0; m < M_COUNT; m++) {
    snprintf(names[k][m], sizeof names[k][m], "timers_%s_%s_%s", size,
             shape_names[k], what[m]);
    metrics[k][m] = (bench_metric){names[k][m], "s", false};
  }
}

int main(int argc, char **argv) {
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
