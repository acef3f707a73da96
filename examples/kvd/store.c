/* kvd — the store: sharded chained hash tables, one min-heap of expiry
 * times per shard (for the active expiry timers), and glob matching. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvd.h"

#define HEAP_NONE ((size_t)-1)

int64_t kvd_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, then a final mix so that both the shard (low bits) and the
 * bucket (high bits) get well-spread bits. */
uint64_t kvd_hash(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

int kvd_store_init(kvd_store *st, bool locking) {
  memset(st, 0, sizeof *st);
  st->locking = locking;
  for (size_t i = 0; i < KVD_SHARDS; i++) {
    kvd_shard *sh = &st->shards[i];
    pthread_mutex_init(&sh->lock, NULL);
    sh->nbuckets = 256;
    sh->buckets = calloc(sh->nbuckets, sizeof *sh->buckets);
    if (!sh->buckets) {
      kvd_store_destroy(st);
      return -ENOMEM;
    }
  }
  return 0;
}

void kvd_store_destroy(kvd_store *st) {
  for (size_t i = 0; i < KVD_SHARDS; i++) {
    kvd_shard *sh = &st->shards[i];
    if (sh->buckets) kvd_shard_clear(sh);
    free(sh->buckets);
    free(sh->heap);
    pthread_mutex_destroy(&sh->lock);
  }
}

kvd_shard *kvd_shard_of(kvd_store *st, uint64_t hash) {
  return &st->shards[hash % KVD_SHARDS];
}

size_t kvd_shard_index(const kvd_store *st, const kvd_shard *sh) {
  return (size_t)(sh - st->shards);
}

void kvd_shard_lock(kvd_store *st, kvd_shard *sh) {
  if (st->locking) pthread_mutex_lock(&sh->lock);
}

void kvd_shard_unlock(kvd_store *st, kvd_shard *sh) {
  if (st->locking) pthread_mutex_unlock(&sh->lock);
}

static size_t bucket_of(const kvd_shard *sh, uint64_t h) {
  return (size_t)(h >> 20) & (sh->nbuckets - 1);
}

/* ---- the expiry heap --------------------------------------------------- */

static void heap_swap(kvd_shard *sh, size_t a, size_t b) {
  kvd_entry *t = sh->heap[a];
  sh->heap[a] = sh->heap[b];
  sh->heap[b] = t;
  sh->heap[a]->heap_idx = a;
  sh->heap[b]->heap_idx = b;
}

static void heap_up(kvd_shard *sh, size_t i) {
  while (i > 0 && sh->heap[(i - 1) / 2]->expire_at > sh->heap[i]->expire_at) {
    heap_swap(sh, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_down(kvd_shard *sh, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < sh->heap_len && sh->heap[l]->expire_at < sh->heap[m]->expire_at)
      m = l;
    if (r < sh->heap_len && sh->heap[r]->expire_at < sh->heap[m]->expire_at)
      m = r;
    if (m == i) return;
    heap_swap(sh, i, m);
    i = m;
  }
}

static void heap_remove(kvd_shard *sh, kvd_entry *e) {
  size_t i = e->heap_idx, last = --sh->heap_len;
  e->heap_idx = HEAP_NONE;
  if (i == last) return;
  sh->heap[i] = sh->heap[last];
  sh->heap[i]->heap_idx = i;
  heap_up(sh, i);
  heap_down(sh, sh->heap[i]->heap_idx);
}

int kvd_reserve_heap(kvd_shard *sh) {
  if (sh->heap_len < sh->heap_cap) return 0;
  size_t cap = sh->heap_cap ? sh->heap_cap * 2 : 64;
  kvd_entry **h = realloc(sh->heap, cap * sizeof *h);
  if (!h) return -ENOMEM;
  sh->heap = h;
  sh->heap_cap = cap;
  return 0;
}

bool kvd_set_expire(kvd_shard *sh, kvd_entry *e, int64_t at) {
  int64_t old_min = sh->heap_len ? sh->heap[0]->expire_at : INT64_MAX;
  if (e->heap_idx != HEAP_NONE) heap_remove(sh, e);
  e->expire_at = at;
  if (at == 0) return false;
  e->heap_idx = sh->heap_len;
  sh->heap[sh->heap_len++] = e;
  heap_up(sh, e->heap_idx);
  return at < old_min;
}

/* ---- entries ----------------------------------------------------------- */

static void free_entry(kvd_entry *e) {
  for (size_t i = 0; i < e->nitems; i++)
    free((void *)e->items[e->first + i].p);
  free(e->items);
  free(e->val);
  free(e);
}

void kvd_delete(kvd_shard *sh, kvd_entry *e) {
  kvd_entry **pp = &sh->buckets[bucket_of(sh, e->hash)];
  while (*pp != e)
    pp = &(*pp)->next;
  *pp = e->next;
  if (e->heap_idx != HEAP_NONE) heap_remove(sh, e);
  sh->count--;
  free_entry(e);
}

kvd_entry *kvd_find(kvd_shard *sh, uint64_t h, kvd_str key, int64_t *now) {
  kvd_entry *e = sh->buckets[bucket_of(sh, h)];
  while (e && !(e->hash == h && e->klen == key.n &&
                memcmp(e->key, key.p, key.n) == 0))
    e = e->next;
  if (!e || !e->expire_at) return e;
  if (!*now) *now = kvd_clock_ms();
  if (e->expire_at > *now) return e;
  kvd_delete(sh, e); /* lazily expired, as Redis does on access */
  return NULL;
}

/* Doubles the table when it averages more than one key per bucket; a
 * failed grow only costs speed. */
static void maybe_grow(kvd_shard *sh) {
  if (sh->count < sh->nbuckets) return;
  size_t n = sh->nbuckets * 2;
  kvd_entry **nb = calloc(n, sizeof *nb);
  if (!nb) return;
  kvd_entry **old = sh->buckets;
  size_t oldn = sh->nbuckets;
  sh->buckets = nb;
  sh->nbuckets = n;
  for (size_t i = 0; i < oldn; i++) {
    for (kvd_entry *e = old[i], *next; e; e = next) {
      next = e->next;
      size_t b = bucket_of(sh, e->hash);
      e->next = nb[b];
      nb[b] = e;
    }
  }
  free(old);
}

kvd_entry *kvd_insert(kvd_shard *sh, uint64_t h, kvd_str key, int type) {
  kvd_entry *e = calloc(1, sizeof *e + key.n);
  if (!e) return NULL;
  memcpy(e->key, key.p, key.n);
  e->klen = key.n;
  e->hash = h;
  e->type = type;
  e->heap_idx = HEAP_NONE;
  maybe_grow(sh);
  size_t b = bucket_of(sh, h);
  e->next = sh->buckets[b];
  sh->buckets[b] = e;
  sh->count++;
  return e;
}

int kvd_set_value(kvd_entry *e, const char *p, size_t n) {
  char *v = e->val;
  if (!v || e->vlen < n || e->vlen > 2 * n + 64) { /* reuse when it fits */
    v = malloc(n ? n : 1);
    if (!v) return -ENOMEM;
    free(e->val);
  }
  memcpy(v, p, n);
  e->val = v;
  e->vlen = n;
  return 0;
}

int64_t kvd_expire_due(kvd_shard *sh, int64_t now, size_t max) {
  while (sh->heap_len && sh->heap[0]->expire_at <= now && max--)
    kvd_delete(sh, sh->heap[0]);
  return sh->heap_len ? sh->heap[0]->expire_at : INT64_MAX;
}

void kvd_shard_clear(kvd_shard *sh) {
  for (size_t i = 0; i < sh->nbuckets; i++) {
    for (kvd_entry *e = sh->buckets[i], *next; e; e = next) {
      next = e->next;
      free_entry(e);
    }
    sh->buckets[i] = NULL;
  }
  sh->count = 0;
  sh->heap_len = 0;
}

/* ---- glob -------------------------------------------------------------- */

/* Redis's stringmatchlen() semantics, without its recursion: the pattern
 * is a sequence of tokens (a run of '*', or one token matching one byte:
 * '?', a [...] class, a \-escaped or a plain byte), and where each token
 * ends depends on the pattern alone. Matching keeps only the last star
 * seen: on a mismatch, that star takes one more byte and the tokens after
 * it are tried again. Each retry starts one byte further on, so the work
 * is O(pattern x string) and the stack use is constant (Redis recurses once
 * per star and backtracks, which is why it also caps nesting at 1000). */

/* Whether `c` is in the class at pat[*i] (just after '['); moves *i past
 * the class. As in Redis: a backslash escapes the next byte, "x-y" is a
 * range (either order, bytes compared as signed char, and ']' may end
 * one), and an unterminated class runs to the end of the pattern. */
static bool class_match(const char *pat, size_t plen, size_t *i, char c) {
  size_t p = *i;
  bool neg = p < plen && pat[p] == '^', hit = false;
  if (neg) p++;
  for (; p < plen && pat[p] != ']'; p++) {
    if (pat[p] == '\\' && plen - p >= 2) {
      hit |= pat[++p] == c;
    } else if (plen - p >= 3 && pat[p + 1] == '-') {
      int lo = (signed char)pat[p], hi = (signed char)pat[p + 2];
      int ch = (signed char)c;
      if (lo > hi) {
        int t = lo;
        lo = hi;
        hi = t;
      }
      hit |= ch >= lo && ch <= hi;
      p += 2;
    } else {
      hit |= pat[p] == c;
    }
  }
  *i = p < plen ? p + 1 : p;
  return neg ? !hit : hit;
}

/* Whether the one-byte token at pat[*i] matches `c`; moves *i past it. */
static bool token_match(const char *pat, size_t plen, size_t *i, char c) {
  char t = pat[(*i)++];
  if (t == '?') return true;
  if (t == '[') return class_match(pat, plen, i, c);
  if (t == '\\' && *i < plen) t = pat[(*i)++];
  return t == c;
}

bool kvd_glob(const char *pat, size_t plen, const char *s, size_t slen) {
  if (slen == 0) return plen == 0; /* Redis: "*" does not match "" either */
  size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
  while (i < slen) {
    if (p < plen && pat[p] == '*') {
      while (p < plen && pat[p] == '*')
        p++;
      if (p == plen) return true;
      star_p = p; /* the tokens after the star, tried at star_i first */
      star_i = i;
      continue;
    }
    size_t next = p;
    if (p < plen && token_match(pat, plen, &next, s[i])) {
      p = next;
      i++;
    } else if (star_p == SIZE_MAX) {
      return false;
    } else {
      p = star_p; /* the last star takes one more byte */
      i = ++star_i;
    }
  }
  while (p < plen && pat[p] == '*')
    p++;
  return p == plen;
}
