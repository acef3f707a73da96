/* wload — the latency histogram: log-linear buckets in the manner of
 * HdrHistogram (two significant decimal digits and a bit). Recording is an
 * index computation and an increment; merging adds arrays; a percentile
 * walks the counts once. */
#include <string.h>

#include "wload.h"

void wl_hist_init(wl_hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static unsigned index_of(uint64_t v) {
  if (v < 2 * WL_HALF) return (unsigned)v;
  unsigned e = (unsigned)(63 - __builtin_clzll(v)) - (WL_SUB_BITS - 1);
  return e * WL_HALF + (unsigned)(v >> e);
}

uint64_t wl_hist_bucket_lo(unsigned i) {
  if (i < 2 * WL_HALF) return i;
  unsigned e = i / WL_HALF - 1;
  return (uint64_t)(i - e * WL_HALF) << e;
}

uint64_t wl_hist_bucket_hi(unsigned i) {
  if (i < 2 * WL_HALF) return i;
  unsigned e = i / WL_HALF - 1;
  return (((uint64_t)(i - e * WL_HALF) + 1) << e) - 1;
}

void wl_hist_record(wl_hist *h, uint64_t v) {
  h->n[index_of(v)]++;
  h->count++;
  h->sum += (double)v;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

void wl_hist_merge(wl_hist *into, const wl_hist *from) {
  if (from->count == 0) return;
  for (unsigned i = 0; i < WL_BUCKETS; i++)
    into->n[i] += from->n[i];
  into->count += from->count;
  into->sum += from->sum;
  if (from->min < into->min) into->min = from->min;
  if (from->max > into->max) into->max = from->max;
}

uint64_t wl_hist_percentile(const wl_hist *h, double p) {
  if (h->count == 0) return 0;
  if (p <= 0) return h->min;
  double want = p / 100.0 * (double)h->count;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want) rank++;
  if (rank < 1) rank = 1;
  if (rank >= h->count) return h->max;
  uint64_t seen = 0;
  for (unsigned i = 0; i < WL_BUCKETS; i++) {
    seen += h->n[i];
    if (seen >= rank) {
      uint64_t v = wl_hist_bucket_hi(i);
      if (v > h->max) v = h->max;
      if (v < h->min) v = h->min;
      return v;
    }
  }
  return h->max;
}
