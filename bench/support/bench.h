/* weft benchmarks — the common harness.
 *
 * A benchmark program describes one or more groups. A group is a workload
 * with named metrics (e.g. "timers_1m_zero_start", "..._fire") and one
 * function per implementation (weft, libuv, libev) that runs the workload
 * once, verifies it, and fills in one value per metric. bench_group_run()
 * runs every implementation once per repetition, alternating (weft, libuv,
 * libev, weft, ...), so that the machine's drift hits all of them alike,
 * then prints one JSON line per (metric, impl) with the median:
 *
 *   {"bench":"timers_1m_zero_start","impl":"weft","value":0.041,
 *    "unit":"s","better":"lower","runs":5}
 *
 * JSON goes to stdout, progress and errors to stderr. A workload that fails
 * its own verification calls bench_fail() (or BENCH_CHECK), which exits the
 * program with status 1: a group that lost a callback reports no figures.
 *
 * Environment: BENCH_RUNS (repetitions, default 5), BENCH_QUICK=1 (smaller
 * N for CI smoke runs: see bench_n()), BENCH_IMPL=name (run only that impl,
 * e.g. to profile weft alone with perf). */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdbool.h>
#include <stddef.h>

/* ---- clocks ------------------------------------------------------------ */

/** Monotonic wall-clock time in seconds (arbitrary origin). */
double bench_wall(void);

/** CPU time consumed by the whole process (all threads, user + system), in
 * seconds. */
double bench_cpu(void);

/* ---- environment --------------------------------------------------------- */

/** Repetitions: $BENCH_RUNS if it is a positive integer, else 5. */
int bench_runs(void);

/** True when $BENCH_QUICK is set to something other than "" or "0". */
bool bench_quick(void);

/** `full` normally, `quick` in quick mode: the one knob for workload size. */
size_t bench_n(size_t full, size_t quick);

/* ---- statistics and output ----------------------------------------------- */

/** The median of v[0..n) (sorts v in place; the mean of the middle two for
 * even n). NaN for n == 0. */
double bench_median(double *v, size_t n);

/** Prints one result line to stdout (and flushes it). `higher_is_better`
 * sets "better" to "higher" or "lower". */
void bench_emit(const char *bench, const char *impl, double value,
                const char *unit, bool higher_is_better, int runs);

/** Reports a failed verification (printf-style, to stderr) and exits 1. */
void bench_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/** Called from an impl's bench_fn that cannot run (a peer is not installed,
 * the machine lacks what it needs): leave its values at NaN and give the
 * reason (printf-style). Each metric of that impl without a value is then
 * emitted as {"bench":...,"impl":...,"skipped":"reason"} instead of being
 * dropped, and the report shows "skipped: reason". */
void bench_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Fails the benchmark unless `cond` holds. */
#define BENCH_CHECK(cond, ...)                                                 \
  do {                                                                         \
    if (!(cond)) bench_fail(__VA_ARGS__);                                      \
  } while (0)

/* ---- groups of cases ------------------------------------------------------
 */

/** One measured quantity of a workload. */
typedef struct bench_metric {
  const char *name; /**< the JSON "bench" field, e.g. "timers_1m_zero_fire" */
  const char *unit; /**< "s", "ops/s", "ns/op", ... */
  bool higher_is_better; /**< throughputs: true; times: false */
} bench_metric;

/** Runs the workload once for one implementation and stores one value per
 * metric in values[i] (same order as the group's metrics). A metric that
 * does not apply to this implementation is left at NaN and not reported.
 * Verifies its own result and calls bench_fail() if it is wrong. */
typedef void (*bench_fn)(double *values, void *arg);

/** One implementation of a workload. */
typedef struct bench_impl {
  const char *name; /**< the JSON "impl" field: "weft", "libuv", "libev" */
  bench_fn fn;
  void *arg; /**< passed to fn, e.g. a workload variant */
} bench_impl;

/** A workload: its metrics and its implementations. */
typedef struct bench_group {
  const char *name; /**< for progress lines and filtering */
  const bench_metric *metrics;
  size_t n_metrics;
  const bench_impl *impls;
  size_t n_impls;
} bench_group;

/** Array length, for filling in bench_group. */
#define BENCH_LEN(a) (sizeof(a) / sizeof((a)[0]))

/** Runs bench_runs() repetitions of every impl of `g`, alternating, then
 * emits the median of each (metric, impl) over the repetitions. */
void bench_group_run(const bench_group *g);

/** A program's main: runs every group whose name contains argv[1] (all
 * groups without an argument), in order. Returns 0, or 2 if the filter
 * matched no group. */
int bench_main(int argc, char **argv, const bench_group *groups, size_t n);

#endif /* WEFT_BENCH_H */
