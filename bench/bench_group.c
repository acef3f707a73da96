/* Groups: weft_group_* against weft_future_all() on the same workload.
 *
 * 100k futures are created and gathered (all: one call over the array;
 * group: one weft_group_add each, then weft_group_close), resolved, and
 * the loop drained until the aggregate is fulfilled; futures settled per
 * second. Both impls run once untimed first on the same loop (warm free
 * lists), and alternate in each repetition. Only include/ is used.
 * Goal (issue 12): group >= 0.9 x all. */
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#include "support/bench.h"

static size_t n;

static void ok(int err, const char *what) {
  if (err != 0) bench_fail("%s: %s", what, weft_strerror(err));
}

static double gather_once(weft_loop *loop, weft_future **fs, bool group) {
  double t0 = bench_wall();
  for (size_t i = 0; i < n; i++)
    ok(weft_future_new(loop, &fs[i]), "new");
  weft_future *agg;
  if (group) {
    ok(weft_group_new(loop, 0, &agg), "group_new");
    for (size_t i = 0; i < n; i++)
      ok(weft_group_add(agg, fs[i]), "group_add");
    ok(weft_group_close(agg), "group_close");
  } else {
    ok(weft_future_all(loop, fs, n, &agg), "all");
  }
  for (size_t i = 0; i < n; i++)
    ok(weft_future_resolve_i64(fs[i], (int64_t)i), "resolve");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double t = bench_wall() - t0;
  BENCH_CHECK(weft_future_get_state(agg) == WEFT_FUTURE_FULFILLED &&
                  weft_future_value_i64(agg) == (int64_t)n,
              "%s: wrong count", group ? "group" : "all");
  weft_future_unref(agg);
  for (size_t i = 0; i < n; i++)
    weft_future_unref(fs[i]);
  return (double)n / t;
}

static void run_impl(double *v, void *arg) {
  bool group = arg != NULL;
  weft_future **fs = malloc(n * sizeof *fs);
  if (fs == NULL) bench_fail("out of memory");
  weft_loop *loop;
  ok(weft_loop_new(&loop, NULL), "weft_loop_new");
  gather_once(loop, fs, group);
  v[0] = gather_once(loop, fs, group);
  ok(weft_loop_free(loop), "weft_loop_free");
  free(fs);
}

static const bench_metric metrics[] = {
    {"group_vs_all_100k", "futures/s", true}};
static int yes = 1;
static const bench_impl impls[] = {{"all", run_impl, NULL},
                                   {"group", run_impl, &yes}};
static const bench_group groups[] = {
    {"group", metrics, BENCH_LEN(metrics), impls, BENCH_LEN(impls)}};

int main(int argc, char **argv) {
  n = bench_n(100000, 10000);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
