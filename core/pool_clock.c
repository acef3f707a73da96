/* weft — the thread pool's job stamps (weft_pool_get_metrics' queue wait
 * and run time).
 *
 * Every job is stamped at its submit and after it ran, on the hot path of
 * both the loop thread and the workers, so the stamp must be cheap. On
 * x86-64, when the kernel's own clock source is the TSC (it checked that
 * the counter is invariant and synchronised across CPUs), a stamp is one
 * rdtsc: about half the cost of a vDSO clock_gettime() on the VMs we
 * measured (bench/README.md, pool). Ticks become microseconds with a ratio
 * measured once against CLOCK_MONOTONIC when the pool is first created.
 * Anywhere else a stamp is CLOCK_MONOTONIC in ns. */
#include <stdio.h>
#include <string.h>

#include "pool_lanes_internal.h"

bool weft__pool_tsc;
/* 2^32 / ticks per µs: a tick count times this, shifted right 32 bits, is
 * µs (for counts under 2^32; longer ones divide). */
static uint64_t g_inv_tpu = (UINT64_C(1) << 32) / 1000u;
static uint64_t g_tpu = 1000u; /* ticks per µs: ns until calibrated */

#if defined(__x86_64__)
static bool clocksource_is_tsc(void) {
  FILE *f = fopen(
      "/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
  if (f == NULL) return false;
  char buf[16] = {0};
  bool tsc = fgets(buf, sizeof buf, f) != NULL && strcmp(buf, "tsc\n") == 0;
  fclose(f);
  return tsc;
}

/* One (tsc, ns) pair, the tsc read on both sides of the clock read; the
 * tightest of a few tries, so that a preemption between them cannot skew
 * the ratio. */
static void stamp_pair(uint64_t *tsc, uint64_t *ns) {
  uint64_t best = UINT64_MAX;
  for (int i = 0; i < 5; i++) {
    uint64_t a = __builtin_ia32_rdtsc();
    uint64_t n = weft__clock_ns();
    uint64_t b = __builtin_ia32_rdtsc();
    if (b - a < best) {
      best = b - a;
      *tsc = a + (b - a) / 2;
      *ns = n;
    }
  }
}

/* Counts ticks over 500 µs of CLOCK_MONOTONIC (a spin, once per process). */
static uint64_t measure_tpu(void) {
  uint64_t t0, n0, t1, n1;
  stamp_pair(&t0, &n0);
  while (weft__clock_ns() - n0 < 500000u) {
    __builtin_ia32_pause();
  }
  stamp_pair(&t1, &n1);
  return n1 > n0 ? (t1 - t0) * 1000u / (n1 - n0) : 0;
}
#endif

void weft__pool_clock_init(void) {
#if defined(__x86_64__)
  if (!clocksource_is_tsc()) return;
  uint64_t tpu = measure_tpu();
  if (tpu < 100u || tpu > 100000u) return; /* 0.1 to 100 GHz, or not used */
  g_tpu = tpu;
  g_inv_tpu = (UINT64_C(1) << 32) / tpu;
  weft__pool_tsc = true;
#endif
}

unsigned weft__pool_bucket(uint64_t ticks) {
  if ((int64_t)ticks < 0) ticks = 0; /* a stamp from a CPU slightly behind */
  uint64_t us =
      ticks < (UINT64_C(1) << 32) ? (ticks * g_inv_tpu) >> 32 : ticks / g_tpu;
  unsigned i = us == 0 ? 0 : 64u - (unsigned)__builtin_clzll(us);
  return i < WEFT_POOL_HIST_BUCKETS ? i : WEFT_POOL_HIST_BUCKETS - 1;
}
