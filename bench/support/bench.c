/* weft benchmarks — the common harness (see bench.h). */
#include "support/bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- clocks ------------------------------------------------------------ */

static double ts_seconds(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_wall(void) { return ts_seconds(CLOCK_MONOTONIC); }
double bench_cpu(void) { return ts_seconds(CLOCK_PROCESS_CPUTIME_ID); }

/* ---- environment --------------------------------------------------------- */

int bench_runs(void) {
  const char *s = getenv("BENCH_RUNS");
  if (s == NULL || *s == '\0') return 5;
  char *end;
  long n = strtol(s, &end, 10);
  if (*end != '\0' || n < 1 || n > 1000) {
    fprintf(stderr, "bench: ignoring BENCH_RUNS=%s (want 1..1000)\n", s);
    return 5;
  }
  return (int)n;
}

bool bench_quick(void) {
  const char *s = getenv("BENCH_QUICK");
  return s != NULL && *s != '\0' && strcmp(s, "0") != 0;
}

size_t bench_n(size_t full, size_t quick) {
  return bench_quick() ? quick : full;
}

/* ---- statistics and output ----------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
  if (n == 0) return NAN;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_emit(const char *bench, const char *impl, double value,
                const char *unit, bool higher_is_better, int runs) {
  printf("{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%.6g,\"unit\":\"%s\","
         "\"better\":\"%s\",\"runs\":%d}\n",
         bench, impl, value, unit, higher_is_better ? "higher" : "lower", runs);
  fflush(stdout);
}

void bench_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: FAILED: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static char skip_reason[256]; /* set by bench_skip() during one fn call */

void bench_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(skip_reason, sizeof skip_reason, fmt, ap);
  va_end(ap);
  for (char *c = skip_reason; *c != '\0'; c++) /* stays a JSON string */
    if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) *c = ' ';
  fprintf(stderr, " (skipped: %s)", skip_reason);
}

/* ---- groups ----------------------------------------------------------------
 */

/* values[(rep * n_impls + impl) * n_metrics + metric] */
static double *cell(double *values, const bench_group *g, int rep, size_t impl,
                    size_t metric) {
  return &values[((size_t)rep * g->n_impls + impl) * g->n_metrics + metric];
}

static void emit_medians(const bench_group *g, double *values, int runs,
                         char (*skipped)[sizeof skip_reason]) {
  double *col = malloc(sizeof *col * (size_t)runs);
  if (col == NULL) bench_fail("out of memory");
  for (size_t m = 0; m < g->n_metrics; m++)
    for (size_t i = 0; i < g->n_impls; i++) {
      size_t n = 0;
      for (int r = 0; r < runs; r++) {
        double v = *cell(values, g, r, i, m);
        if (!isnan(v)) col[n++] = v;
      }
      if (n != 0)
        bench_emit(g->metrics[m].name, g->impls[i].name, bench_median(col, n),
                   g->metrics[m].unit, g->metrics[m].higher_is_better, (int)n);
      else if (skipped[i][0] != '\0') {
        printf("{\"bench\":\"%s\",\"impl\":\"%s\",\"skipped\":\"%s\","
               "\"unit\":\"%s\",\"better\":\"%s\"}\n",
               g->metrics[m].name, g->impls[i].name, skipped[i],
               g->metrics[m].unit,
               g->metrics[m].higher_is_better ? "higher" : "lower");
        fflush(stdout);
      }
    }
  free(col);
}

/* $BENCH_IMPL, if set, keeps only the impl of that name. */
static bool impl_selected(const bench_impl *impl) {
  const char *only = getenv("BENCH_IMPL");
  return only == NULL || *only == '\0' || strcmp(only, impl->name) == 0;
}

void bench_group_run(const bench_group *g) {
  int runs = bench_runs();
  size_t cells = (size_t)runs * g->n_impls * g->n_metrics;
  double *values = malloc(sizeof *values * (cells ? cells : 1));
  if (values == NULL) bench_fail("out of memory");
  for (size_t k = 0; k < cells; k++)
    values[k] = NAN;
  char(*skipped)[sizeof skip_reason] =
      calloc(g->n_impls ? g->n_impls : 1, sizeof *skipped);
  if (skipped == NULL) bench_fail("out of memory");
  for (int r = 0; r < runs; r++) {
    fprintf(stderr, "  %s: run %d/%d:", g->name, r + 1, runs);
    for (size_t i = 0; i < g->n_impls; i++) {
      if (!impl_selected(&g->impls[i])) continue;
      fprintf(stderr, " %s", g->impls[i].name);
      skip_reason[0] = '\0';
      g->impls[i].fn(cell(values, g, r, i, 0), g->impls[i].arg);
      if (skip_reason[0] != '\0')
        memcpy(skipped[i], skip_reason, sizeof skip_reason);
    }
    fputc('\n', stderr);
  }
  emit_medians(g, values, runs, skipped);
  free(skipped);
  free(values);
}

int bench_main(int argc, char **argv, const bench_group *groups, size_t n) {
  const char *filter = argc > 1 ? argv[1] : NULL;
  size_t matched = 0;
  for (size_t k = 0; k < n; k++) {
    if (filter != NULL && strstr(groups[k].name, filter) == NULL) continue;
    matched++;
    bench_group_run(&groups[k]);
  }
  if (matched == 0) {
    fprintf(stderr, "bench: no group matches '%s'\n", filter);
    return 2;
  }
  return 0;
}
