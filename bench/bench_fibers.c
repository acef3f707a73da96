/* Fibers: weft's fibers on the workloads of bench/fibers (whose run.sh
 * runs this program once per repetition, alternating with the Boost.Context,
 * ucontext, Node and asyncio peers, and prints the table).
 *
 * switch   "weft": two fibers yield to each other N times each: ns per
 *          handoff (one fiber suspends, the other resumes: two context
 *          switches plus the loop's ready queue and the yield's budget
 *          check), what a fiber program pays. "weft-raw": the bare context
 *          switch weft uses, main and one context switching to each other,
 *          ns per switch: the row to compare with Boost's fcontext
 *          (bench/fibers/switch_boost.cpp measures jump_fcontext the same
 *          way; both save the callee-saved registers, MXCSR and the x87
 *          control word). "swapcontext": the same pair with ucontext (a
 *          sigprocmask system call per switch).
 * await    one fiber awaits an already-settled future 1M times. Each
 *          await still yields once; alone in the ready queue the fiber
 *          is at its front again, so it continues in place (no switch).
 *          "weft-2": two fibers do it at once, 1M awaits in all, so
 *          every await goes behind the other fiber (two switches).
 * spawn    1M fibers spawned and run to completion in batches of 1000
 *          (the peers do the same), fibers/s.
 * mem      100k fibers suspended on one event: RSS growth per fiber, in
 *          bytes (then the event is set and every fiber finishes).
 * Each impl runs its workload once untimed first on the same loop (warm
 * stack cache and free lists). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <weft.h>

#include "../promises/fiber_internal.h"
#include "support/bench.h"

static size_t n_switch, n_ops, n_mem;

static void ok(int err, const char *what) {
  if (err != 0) bench_fail("%s: %s", what, weft_strerror(err));
}

static weft_loop *new_loop(void) {
  weft_loop *loop;
  ok(weft_loop_new(&loop, NULL), "weft_loop_new");
  return loop;
}

static void run(weft_loop *loop) {
  int rc = weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (rc != 0) bench_fail("weft_loop_run: %d", rc);
}

/* ---- switch ------------------------------------------------------------ */

static size_t yields;

static int pinger(weft_fiber *self, void *arg) {
  (void)self;
  size_t n = *(size_t *)arg;
  for (size_t i = 0; i < n; i++) {
    ok(weft_fiber_yield(), "yield");
    yields++;
  }
  return 0;
}

static double switch_once(weft_loop *loop, size_t n) {
  yields = 0;
  ok(weft_fiber_spawn(loop, pinger, &n, NULL, NULL), "spawn");
  ok(weft_fiber_spawn(loop, pinger, &n, NULL, NULL), "spawn");
  double t0 = bench_wall();
  run(loop);
  double t = bench_wall() - t0;
  BENCH_CHECK(yields == 2 * n, "%zu of %zu yields", yields, 2 * n);
  return t * 1e9 / (double)(2 * n);
}

static void switch_weft(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = new_loop();
  switch_once(loop, n_switch / 100);
  v[0] = switch_once(loop, n_switch);
  ok(weft_loop_free(loop), "weft_loop_free");
}

/* the bare switch: main <-> one context */
static weft__fctx raw_main, raw_fib;
static size_t raw_count;

static void raw_body(void *arg) {
  (void)arg;
  for (;;) {
    raw_count++;
    weft__fctx_switch(&raw_fib, &raw_main);
  }
}

static void switch_raw(double *v, void *arg) {
  (void)arg;
  weft__fstack st;
  ok(weft__fstack_map(&st, weft__fstack_round(0)), "stack");
  weft__fctx_make(&raw_fib, weft__fstack_lo(&st), st.size, raw_body, NULL);
  weft__fctx_switch(&raw_main, &raw_fib); /* starts the body */
  raw_count = 0;
  double t0 = bench_wall();
  for (size_t i = 0; i < n_switch; i++)
    weft__fctx_switch(&raw_main, &raw_fib);
  double t = bench_wall() - t0;
  BENCH_CHECK(raw_count == n_switch, "%zu of %zu", raw_count, n_switch);
  v[0] = t * 1e9 / (double)(2 * n_switch);
  weft__fstack_unmap(&st); /* the body is parked there for good */
}

static ucontext_t uc_main, uc_fib;
static size_t uc_count;

static void uc_body(void) {
  for (;;) {
    uc_count++;
    swapcontext(&uc_fib, &uc_main);
  }
}

static void switch_uc(double *v, void *arg) {
  (void)arg;
  size_t n = n_switch / 10; /* a system call per switch */
  static char stack[64 * 1024];
  getcontext(&uc_fib);
  uc_fib.uc_stack.ss_sp = stack;
  uc_fib.uc_stack.ss_size = sizeof stack;
  uc_fib.uc_link = NULL;
  makecontext(&uc_fib, uc_body, 0);
  swapcontext(&uc_main, &uc_fib);
  uc_count = 0;
  double t0 = bench_wall();
  for (size_t i = 0; i < n; i++)
    swapcontext(&uc_main, &uc_fib);
  double t = bench_wall() - t0;
  BENCH_CHECK(uc_count == n, "%zu of %zu", uc_count, n);
  v[0] = t * 1e9 / (double)(2 * n);
}

/* ---- await of a settled future ------------------------------------------ */

static int awaiter(weft_fiber *self, void *arg) {
  (void)self;
  weft_future *f = arg;
  for (size_t i = 0; i < n_ops; i++)
    ok(weft_await(f), "await");
  return 0;
}

static double await_once(weft_loop *loop) {
  weft_future *settled, *fb;
  ok(weft_future_new(loop, &settled), "future");
  ok(weft_future_resolve_i64(settled, 1), "resolve");
  double t0 = bench_wall();
  ok(weft_fiber_spawn(loop, awaiter, settled, NULL, &fb), "spawn");
  run(loop);
  double t = bench_wall() - t0;
  BENCH_CHECK(weft_future_get_state(fb) == WEFT_FUTURE_FULFILLED,
              "the fiber did not finish");
  weft_future_unref(fb);
  weft_future_unref(settled);
  return (double)n_ops / t;
}

static int awaiter_half(weft_fiber *self, void *arg) {
  (void)self;
  weft_future *f = arg;
  for (size_t i = 0; i < n_ops / 2; i++)
    ok(weft_await(f), "await");
  return 0;
}

static double await2_once(weft_loop *loop) {
  weft_future *settled, *fb[2];
  ok(weft_future_new(loop, &settled), "future");
  ok(weft_future_resolve_i64(settled, 1), "resolve");
  double t0 = bench_wall();
  for (int i = 0; i < 2; i++)
    ok(weft_fiber_spawn(loop, awaiter_half, settled, NULL, &fb[i]), "spawn");
  run(loop);
  double t = bench_wall() - t0;
  for (int i = 0; i < 2; i++) {
    BENCH_CHECK(weft_future_get_state(fb[i]) == WEFT_FUTURE_FULFILLED,
                "a fiber did not finish");
    weft_future_unref(fb[i]);
  }
  weft_future_unref(settled);
  return (double)(n_ops / 2 * 2) / t;
}

static void await_weft(double *v, void *arg) {
  double (*once)(weft_loop *) = arg != NULL ? await2_once : await_once;
  weft_loop *loop = new_loop();
  once(loop);
  v[0] = once(loop);
  ok(weft_loop_free(loop), "weft_loop_free");
}

/* ---- spawn + finish ----------------------------------------------------- */

static size_t ran;

static int body(weft_fiber *self, void *arg) {
  weft_fiber_return_i64(self, (int64_t)(intptr_t)arg);
  ran++;
  return 0;
}

static double spawn_once(weft_loop *loop) {
  ran = 0;
  double t0 = bench_wall();
  for (size_t i = 0; i < n_ops; i += 1000) {
    for (size_t k = 0; k < 1000; k++)
      ok(weft_fiber_spawn(loop, body, (void *)(intptr_t)k, NULL, NULL),
         "spawn");
    run(loop);
  }
  double t = bench_wall() - t0;
  BENCH_CHECK(ran == n_ops, "%zu of %zu ran", ran, n_ops);
  return (double)n_ops / t;
}

static void spawn_weft(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = new_loop();
  spawn_once(loop);
  v[0] = spawn_once(loop);
  ok(weft_loop_free(loop), "weft_loop_free");
}

/* ---- memory per idle fiber ---------------------------------------------- */

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f == NULL || fscanf(f, "%lu %lu", &size, &res) != 2)
    bench_fail("cannot read /proc/self/statm");
  fclose(f);
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static size_t parked, woken;

static int parker(weft_fiber *self, void *arg) {
  (void)self;
  weft_future *w;
  ok(weft_event_wait(arg, &w), "event_wait");
  parked++;
  ok(weft_await(w), "await");
  weft_future_unref(w);
  woken++;
  return 0;
}

static void mem_weft(double *v, void *arg) {
  (void)arg;
  weft_loop *loop = new_loop();
  weft_event *ev;
  ok(weft_event_new(loop, &ev), "event");
  parked = woken = 0;
  size_t rss0 = rss_bytes();
  for (size_t i = 0; i < n_mem; i++) {
    int err = weft_fiber_spawn(loop, parker, ev, NULL, NULL);
    if (err != 0)
      bench_fail("fiber %zu of %zu: %s", i, n_mem, weft_strerror(err));
  }
  while (parked < n_mem)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  v[0] = (double)(rss_bytes() - rss0) / (double)n_mem;
  ok(weft_event_set(ev), "event_set");
  run(loop);
  BENCH_CHECK(woken == n_mem, "%zu of %zu woken", woken, n_mem);
  ok(weft_event_free(ev), "event_free");
  ok(weft_loop_free(loop), "weft_loop_free");
}

int main(int argc, char **argv) {
  n_switch = bench_n(10000000, 100000);
  n_ops = bench_n(1000000, 10000);
  n_mem = bench_n(100000, 1000);
  const bench_metric m_switch[] = {{"fibers_switch", "ns", false}};
  const bench_impl i_switch[] = {{"weft", switch_weft, NULL},
                                 {"weft-raw", switch_raw, NULL},
                                 {"swapcontext", switch_uc, NULL}};
  const bench_metric m_await[] = {
      {"fibers_await_settled_1m", "awaits/s", true}};
  const bench_impl i_await[] = {{"weft", await_weft, NULL},
                                {"weft-2", await_weft, "2"}};
  const bench_metric m_spawn[] = {{"fibers_spawn_1m", "spawns/s", true}};
  const bench_impl i_spawn[] = {{"weft", spawn_weft, NULL}};
  const bench_metric m_mem[] = {{"fibers_idle_mem_100k", "B", false}};
  const bench_impl i_mem[] = {{"weft", mem_weft, NULL}};
  const bench_group g[] = {
      {"switch", m_switch, BENCH_LEN(m_switch), i_switch, BENCH_LEN(i_switch)},
      {"await", m_await, BENCH_LEN(m_await), i_await, BENCH_LEN(i_await)},
      {"spawn", m_spawn, BENCH_LEN(m_spawn), i_spawn, BENCH_LEN(i_spawn)},
      {"mem", m_mem, BENCH_LEN(m_mem), i_mem, BENCH_LEN(i_mem)},
  };
  return bench_main(argc, argv, g, BENCH_LEN(g));
}
