/* weft — timers: one bucket per distinct deadline, buckets on a min-heap.
 *
 * Timers started with the same deadline share a bucket and sit in it in
 * start order, so equal deadlines fire first-in-first-out without a
 * tie-breaking key, and starting or firing such a timer is O(1). Servers
 * start many timers with the same timeout in the same millisecond (idle
 * and request timeouts), so buckets are usually few and the heap small.
 * A hash maps a deadline to its bucket; `last` short-cuts the lookup for a
 * run of equal timeouts.
 *
 * A run first collects every due bucket: off the heap and the hash, onto
 * the due list, in deadline order. Only then do callbacks run, and only
 * the timers of that list fire. A timer (re)started by a callback, even at
 * 0 ms and even on the deadline of a collected bucket, lands in a bucket
 * on the heap and waits for the next run, as does a timer that a callback
 * makes due by moving the clock (weft_update_time): a callback that
 * restarts itself cannot spin the loop (libuv's uv__run_timers and libev
 * collect first too).
 *
 * Buckets come from slabs and are recycled; slabs, heap and hash only
 * grow, so restarting timers allocates nothing in steady state. */
#include <stdio.h>

#include "core/internal.h"

#define SLAB_MIN 64u
#define HEAP_INITIAL 64u
#define HASH_INITIAL 64u
#define NONE UINT32_MAX

struct weft__tbucket {
  uint64_t deadline;
  weft__list timers;    /* weft_timer.node, in start order */
  weft__tbucket *hnext; /* hash chain, or free list */
  weft__list due;       /* on the due list (ts->due) */
  uint32_t heap_index;  /* NONE while on the due list */
};

typedef struct slab {
  struct slab *next;
  size_t n;
  weft__tbucket *spill, *spill_end; /* the previous slab's uncarved room */
  weft__tbucket b[];
} slab;

static const weft__handle_ops timer_ops;

/* tests/test_timer.c and the CHANGELOG state this size: keep them true */
_Static_assert(sizeof(weft_timer) == sizeof(weft_handle) + 40,
               "weft_timer: base + cb, repeat, node, bucket");

/* ---- the heap of buckets ------------------------------------------------ */

static inline void place(weft__timers *ts, uint32_t i, weft__theap_entry e) {
  ts->heap[i] = e;
  e.b->heap_index = i;
}

static void sift_up(weft__timers *ts, uint32_t i, weft__theap_entry e) {
  while (i > 0) {
    uint32_t parent = (i - 1) / 4;
    if (ts->heap[parent].deadline <= e.deadline) break;
    place(ts, i, ts->heap[parent]);
    i = parent;
  }
  place(ts, i, e);
}

static void sift_down(weft__timers *ts, uint32_t i, weft__theap_entry e) {
  uint32_t n = ts->heap_len;
  for (;;) {
    uint32_t first = 4 * i + 1;
    if (first >= n) break;
    uint32_t best = first, end = first + 4 < n ? first + 4 : n;
    for (uint32_t c = first + 1; c < end; c++)
      if (ts->heap[c].deadline < ts->heap[best].deadline) best = c;
    if (ts->heap[best].deadline >= e.deadline) break;
    place(ts, i, ts->heap[best]);
    i = best;
  }
  place(ts, i, e);
}

static void heap_remove(weft__timers *ts, weft__tbucket *b) {
  uint32_t i = b->heap_index;
  b->heap_index = NONE;
  weft__theap_entry last = ts->heap[--ts->heap_len];
  if (i == ts->heap_len) return;
  if (i > 0 && last.deadline < ts->heap[(i - 1) / 4].deadline)
    sift_up(ts, i, last);
  else
    sift_down(ts, i, last);
}

/* ---- the hash of buckets ------------------------------------------------ */

static inline uint32_t hash_of(const weft__timers *ts, uint64_t deadline) {
  return (uint32_t)((deadline * 0x9E3779B97F4A7C15ull) >> 32) & ts->hash_mask;
}

static weft__tbucket *hash_find(const weft__timers *ts, uint64_t deadline) {
  if (ts->hash == NULL) return NULL;
  weft__tbucket *b = ts->hash[hash_of(ts, deadline)];
  while (b != NULL && b->deadline != deadline)
    b = b->hnext;
  return b;
}

static void hash_unlink(weft__timers *ts, weft__tbucket *b) {
  weft__tbucket **p = &ts->hash[hash_of(ts, b->deadline)];
  while (*p != b)
    p = &(*p)->hnext;
  *p = b->hnext;
  b->hnext = NULL;
}

static int hash_grow(weft__timers *ts) {
  uint32_t cap = ts->hash ? (ts->hash_mask + 1) * 2 : HASH_INITIAL;
  weft__tbucket **table = weft__calloc(cap, sizeof *table);
  if (table == NULL) return -ENOMEM;
  weft__tbucket **old = ts->hash;
  uint32_t old_cap = old ? ts->hash_mask + 1 : 0;
  ts->hash = table;
  ts->hash_mask = cap - 1;
  for (uint32_t i = 0; i < old_cap; i++)
    for (weft__tbucket *b = old[i], *next; b != NULL; b = next) {
      next = b->hnext;
      uint32_t h = hash_of(ts, b->deadline);
      b->hnext = table[h];
      table[h] = b;
    }
  weft__free(old);
  return 0;
}

/* ---- buckets ------------------------------------------------------------ */

/* Every bucket in use, on the heap or the due list, holds at least one
 * timer. Buckets are created by starts (at most one each) and by repeating
 * timers rescheduled while firing (at most one each, and only repeating
 * timers can be in buckets that hold no other kind). So room for the buckets in
 * use, plus one, plus one per repeating timer, lets a rescheduled repeat never
 * allocate: that is what weft_timer_start() and weft_timer_set_repeat()
 * reserve. Slabs double in size and are carved lazily; the heap holds one entry
 * per bucket. The hash is best effort: if it cannot grow, chains get longer. */
static int reserve(weft__timers *ts, size_t need) {
  if (ts->capacity < need) {
    size_t n = ts->capacity < SLAB_MIN ? SLAB_MIN : ts->capacity;
    slab *s = weft__malloc(sizeof *s + n * sizeof(weft__tbucket));
    if (s == NULL) return -ENOMEM;
    s->next = ts->slabs;
    s->n = n;
    ts->slabs = s;
    ts->capacity += n;
    /* the old slab's uncarved room stays reachable through the spill list */
    s->spill = ts->bump;
    s->spill_end = ts->bump_end;
    ts->bump = s->b;
    ts->bump_end = s->b + n;
  }
  if (ts->heap_cap < need) {
    size_t cap = ts->heap_cap ? (size_t)ts->heap_cap * 2 : HEAP_INITIAL;
    while (cap < need)
      cap *= 2;
    if (cap > UINT32_MAX) return -ENOMEM;
    weft__theap_entry *heap = weft__realloc(ts->heap, cap * sizeof *heap);
    if (heap == NULL) return -ENOMEM;
    ts->heap = heap;
    ts->heap_cap = (uint32_t)cap;
  }
  if (ts->hash == NULL) return hash_grow(ts);
  if (ts->bucket_count > ts->hash_mask) (void)hash_grow(ts);
  return 0;
}

/* Room for one more bucket from a start, and for every repeating timer
 * (plus `more_repeat`) to be rescheduled into a bucket of its own. */
static size_t room_needed(const weft__timers *ts, bool more_repeat) {
  return ts->bucket_count + ts->due_count + 1 + ts->repeating +
         (more_repeat ? 1 : 0);
}

static weft__tbucket *bucket_alloc(weft__timers *ts) {
  weft__tbucket *b = ts->free_buckets;
  if (b != NULL) {
    ts->free_buckets = b->hnext;
    return b;
  }
  if (ts->bump == ts->bump_end) {
    /* the newest slab is carved out: continue in an older one's room */
    for (slab *s = ts->slabs; s != NULL; s = s->next)
      if (s->spill != s->spill_end) {
        ts->bump = s->spill;
        ts->bump_end = s->spill_end;
        s->spill = s->spill_end = NULL;
        break;
      }
  }
  /* reserve() made room for every bucket that can be in use */
  WEFT__ASSERT(ts->bump < ts->bump_end);
  return ts->bump++;
}

static weft__tbucket *bucket_new(weft__timers *ts, uint64_t deadline) {
  weft__tbucket *b = bucket_alloc(ts);
  b->deadline = deadline;
  weft__list_init(&b->timers);
  weft__list_init(&b->due);
  uint32_t h = hash_of(ts, deadline);
  b->hnext = ts->hash[h];
  ts->hash[h] = b;
  ts->bucket_count++;
  WEFT__ASSERT(ts->heap_len < ts->heap_cap);
  sift_up(ts, ts->heap_len++, (weft__theap_entry){deadline, b});
  return b;
}

/* A bucket leaves the heap and the hash when it empties or is collected. */
static void bucket_detach(weft__timers *ts, weft__tbucket *b) {
  heap_remove(ts, b);
  hash_unlink(ts, b);
  ts->bucket_count--;
  if (ts->last == b) ts->last = NULL;
}

/* The due list: collected buckets, in deadline order, each still holding
 * at least one timer (a bucket that empties leaves it at once). */
static void due_append(weft__timers *ts, weft__tbucket *b) {
  weft__list_insert(&ts->due, &b->due);
  ts->due_count++;
}

static void due_unlink(weft__timers *ts, weft__tbucket *b) {
  weft__list_unlink(&b->due);
  ts->due_count--;
}

static void bucket_free(weft__timers *ts, weft__tbucket *b) {
  b->hnext = ts->free_buckets;
  ts->free_buckets = b;
}

static void timer_unlink(weft__timers *ts, weft_timer *t) {
  weft__tbucket *b = t->bucket;
  WEFT__ASSERT(b != NULL && weft__list_linked(&t->node));
  weft__list_unlink(&t->node);
  t->bucket = NULL;
  ts->linked--;
  if (t->repeat != 0) ts->repeating--;
  if (!weft__list_empty(&b->timers)) return;
  if (b->heap_index == NONE)
    due_unlink(ts, b); /* collected */
  else
    bucket_detach(ts, b);
  bucket_free(ts, b);
}

static void timer_link(weft__timers *ts, weft_timer *t, uint64_t deadline) {
  weft__tbucket *b = ts->last;
  if (b == NULL || b->deadline != deadline) {
    b = hash_find(ts, deadline);
    if (b == NULL) b = bucket_new(ts, deadline);
    ts->last = b;
  }
  t->bucket = b;
  weft__list_insert(&b->timers, &t->node);
  ts->linked++;
  if (t->repeat != 0) ts->repeating++;
}

/* ---- running ------------------------------------------------------------ */

/* Metrics: the lag bucket (weft/loop.h) of a timer due at `deadline_ms`
 * that fires in this turn: the turn's start, in ns, minus the deadline.
 * Each fired timer adds one to its bucket; the buckets' sum is
 * timers_fired (weft_loop_get_metrics). */
static uint64_t *lag_slot(weft_loop *loop, uint64_t deadline_ms) {
  uint64_t due_ns = deadline_ms * 1000000u;
  uint64_t us = loop->turn_ns > due_ns ? (loop->turn_ns - due_ns) / 1000u : 0;
  unsigned i = us == 0 ? 0 : 64u - (unsigned)__builtin_clzll(us);
  if (i > WEFT_LOOP_LAG_BUCKETS - 1) i = WEFT_LOOP_LAG_BUCKETS - 1;
  return &loop->m.timer_lag[i];
}

/* Collects every bucket due at `now`, then fires the due list's timers in
 * (deadline, start) order. Callbacks may stop, restart or close any timer,
 * collected ones included: timer_unlink takes it off its bucket, and the
 * bucket off the due list the moment it empties. A nested run (a callback
 * running the loop) appends what is due by then and drains the same list. */
void weft__timers_run(weft_loop *loop) {
  weft__timers *ts = &loop->timers;
  while (ts->heap_len != 0 && ts->heap[0].deadline <= loop->now) {
    weft__tbucket *b = ts->heap[0].b;
    bucket_detach(ts, b);
    due_append(ts, b);
  }
  weft__list *d;
  /* timers of one bucket share a deadline, so a lag bucket: found once */
  uint64_t lag_deadline = UINT64_MAX, *lag = NULL; /* no deadline is MAX */
  bool timed = loop->slow_cb != NULL; /* a hook set meanwhile: next run */
  while ((d = weft__list_front(&ts->due)) != NULL) {
    weft__tbucket *b = WEFT__CONTAINER_OF(d, weft__tbucket, due);
    weft_timer *t = WEFT__CONTAINER_OF(b->timers.next, weft_timer, node);
    if (WEFT__UNLIKELY(b->deadline != lag_deadline)) {
      lag_deadline = b->deadline;
      lag = lag_slot(loop, lag_deadline);
    }
    (*lag)++;
    timer_unlink(ts, t);
    if (t->repeat != 0)
      timer_link(ts, t, loop->now + t->repeat);
    else
      weft__handle_stop(&t->base);
    if (WEFT__UNLIKELY(timed)) {
      weft_timer_cb cb = t->cb;
      uint64_t t0 = weft__clock_ns();
      cb(t); /* may free t */
      weft__slow_check(loop, (weft_any_fn)cb, t0);
    } else {
      t->cb(t);
    }
  }
}

bool weft__timers_earliest(const weft_loop *loop, uint64_t *deadline) {
  if (loop->timers.heap_len == 0) return false;
  *deadline = loop->timers.heap[0].deadline;
  return true;
}

void weft__timers_init(weft_loop *loop) {
  loop->timers = (weft__timers){0};
  weft__list_init(&loop->timers.due);
}

void weft__timers_free(weft_loop *loop) {
  weft__timers *ts = &loop->timers;
  for (slab *s = ts->slabs, *next; s != NULL; s = next) {
    next = s->next;
    weft__free(s);
  }
  weft__free(ts->heap);
  weft__free(ts->hash);
  weft__timers_init(loop);
}

/* ---- validation (tests) -------------------------------------------------- */

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "weft__timers_validate: " __VA_ARGS__);                  \
      fputc('\n', stderr);                                                     \
      return false;                                                            \
    }                                                                          \
  } while (0)

/* A bucket's timers: linked both ways, pointing back at it (so on its
 * deadline), at least one. Adds them to *timers and the repeating ones to *rep.
 */
static bool check_bucket(const weft__tbucket *b, size_t *timers, size_t *rep) {
  size_t n = 0;
  CHECK(!weft__list_empty(&b->timers), "empty bucket %p in use", (void *)b);
  for (const weft__list *it = b->timers.next; it != &b->timers; it = it->next) {
    const weft_timer *t = WEFT__CONTAINER_OF(it, weft_timer, node);
    CHECK(it->next->prev == it && it->prev->next == it, "broken bucket list");
    CHECK(t->bucket == b, "timer %p not pointing at its bucket", (void *)t);
    CHECK(weft__handle_usable(&t->base) && (t->base.flags & WEFT__H_ACTIVE),
          "linked timer %p not active", (void *)t);
    if (t->repeat != 0) (*rep)++;
    if (++n > SIZE_MAX / 2) return false;
  }
  *timers += n;
  return true;
}

static bool check_heap(const weft__timers *ts, size_t *timers, size_t *rep) {
  CHECK(ts->heap_len <= ts->heap_cap, "heap_len %u > heap_cap %u", ts->heap_len,
        ts->heap_cap);
  CHECK(ts->heap_len == ts->bucket_count, "heap_len %u != bucket_count %u",
        ts->heap_len, ts->bucket_count);
  for (uint32_t i = 1; i < ts->heap_len; i++)
    CHECK(ts->heap[(i - 1) / 4].deadline <= ts->heap[i].deadline,
          "heap order broken at %u", i);
  for (uint32_t i = 0; i < ts->heap_len; i++) {
    const weft__theap_entry *e = &ts->heap[i];
    CHECK(e->b->heap_index == i, "heap[%u] indexed as %u", i, e->b->heap_index);
    CHECK(e->deadline == e->b->deadline, "heap[%u] key != bucket deadline", i);
    CHECK(hash_find(ts, e->deadline) == e->b, "bucket of heap[%u] not hashed",
          i);
    if (!check_bucket(e->b, timers, rep)) return false;
  }
  return true;
}

static bool check_hash(const weft__timers *ts) {
  if (ts->hash == NULL) {
    CHECK(ts->bucket_count == 0, "buckets but no hash");
    return true;
  }
  size_t n = 0;
  for (uint32_t h = 0; h <= ts->hash_mask; h++)
    for (const weft__tbucket *b = ts->hash[h]; b != NULL; b = b->hnext) {
      CHECK(hash_of(ts, b->deadline) == h, "bucket in the wrong chain");
      CHECK(b->heap_index < ts->heap_len && ts->heap[b->heap_index].b == b,
            "hashed bucket %p not on the heap", (void *)b);
      CHECK(++n <= ts->bucket_count, "more hashed buckets than %u",
            ts->bucket_count);
    }
  CHECK(n == ts->bucket_count, "%zu hashed buckets, count %u", n,
        ts->bucket_count);
  return true;
}

static bool check_due(const weft__timers *ts, size_t *timers, size_t *rep) {
  size_t n = 0;
  uint64_t prev = 0;
  for (const weft__list *it = ts->due.next; it != &ts->due; it = it->next) {
    const weft__tbucket *b = WEFT__CONTAINER_OF(it, weft__tbucket, due);
    CHECK(it->next->prev == it && it->prev->next == it, "broken due list");
    CHECK(b->heap_index == NONE, "due bucket %p still on the heap", (void *)b);
    CHECK(b->deadline >= prev, "due list out of deadline order");
    CHECK(b != ts->last, "due bucket is the `last` short-cut");
    prev = b->deadline;
    CHECK(++n <= ts->due_count, "due list longer than %zu", ts->due_count);
    if (!check_bucket(b, timers, rep)) return false;
  }
  CHECK(n == ts->due_count, "due list of %zu, count %zu", n, ts->due_count);
  return true;
}

/* Every bucket of the slabs is in use, on the free list, or uncarved. */
static bool check_slabs(const weft__timers *ts) {
  size_t cap = 0, room = (size_t)(ts->bump_end - ts->bump), free_n = 0;
  for (const slab *s = ts->slabs; s != NULL; s = s->next) {
    cap += s->n;
    room += (size_t)(s->spill_end - s->spill);
  }
  CHECK(cap == ts->capacity, "slabs hold %zu buckets, capacity %zu", cap,
        ts->capacity);
  for (const weft__tbucket *b = ts->free_buckets; b != NULL; b = b->hnext)
    CHECK(++free_n <= cap, "free bucket list longer than the slabs");
  size_t used = ts->bucket_count + ts->due_count;
  CHECK(used + free_n + room == cap,
        "%zu in use + %zu free + %zu uncarved != capacity %zu", used, free_n,
        room, cap);
  CHECK(ts->bucket_count <= ts->heap_cap, "heap too small for the buckets");
  return true;
}

bool weft__timers_validate(const weft_loop *loop) {
  const weft__timers *ts = &loop->timers;
  size_t timers = 0, rep = 0;
  if (!check_heap(ts, &timers, &rep) || !check_hash(ts) ||
      !check_due(ts, &timers, &rep) || !check_slabs(ts))
    return false;
  CHECK(timers == ts->linked, "%zu timers in buckets, linked %zu", timers,
        ts->linked);
  CHECK(rep == ts->repeating, "%zu repeating, count %zu", rep, ts->repeating);
  CHECK(ts->last == NULL || (ts->last->heap_index < ts->heap_len &&
                             ts->heap[ts->last->heap_index].b == ts->last),
        "`last` is not a bucket on the heap");
  return true;
}

#undef CHECK

/* ---- the public API ------------------------------------------------------ */

static void timer_stop(weft_timer *t) {
  if (t->bucket != NULL) timer_unlink(&t->base.loop->timers, t);
  weft__handle_stop(&t->base);
}

/* weft_close checked the thread already */
static void timer_close(weft_handle *h) { timer_stop((weft_timer *)h); }

static const weft__handle_ops timer_ops = {WEFT_HANDLE_TIMER, timer_close,
                                           NULL};

int weft_timer_init(weft_loop *loop, weft_timer *t) {
  if (loop == NULL || t == NULL) return -EINVAL;
  WEFT__CHECK_INIT(loop, &t->base);
  weft__handle_init(loop, &t->base, &timer_ops);
  t->cb = NULL;
  t->repeat = 0;
  weft__list_init(&t->node);
  t->bucket = NULL;
  return 0;
}

int weft_timer_start(weft_timer *t, weft_timer_cb cb, uint64_t timeout_ms,
                     uint64_t repeat_ms) {
  if (t == NULL || cb == NULL || t->base.ops != &timer_ops) return -EINVAL;
  WEFT__CHECK_THREAD(t->base.loop);
  if (!weft__handle_usable(&t->base) || timeout_ms > WEFT_TIMEOUT_MAX ||
      repeat_ms > WEFT_TIMEOUT_MAX)
    return -EINVAL;
  weft_loop *loop = t->base.loop;
  weft__timers *ts = &loop->timers;
  /* reserve first, so that a failure changes nothing */
  bool was_rep = t->bucket != NULL && t->repeat != 0;
  int err = reserve(ts, room_needed(ts, repeat_ms != 0 && !was_rep));
  if (err != 0) return err;
  if (t->bucket != NULL) timer_unlink(ts, t);
  t->cb = cb;
  t->repeat = repeat_ms;
  timer_link(ts, t, loop->now + timeout_ms);
  weft__handle_start(&t->base);
  return 0;
}

int weft_timer_stop(weft_timer *t) {
  if (t == NULL || t->base.ops != &timer_ops) return -EINVAL;
  WEFT__CHECK_THREAD(t->base.loop);
  timer_stop(t);
  return 0;
}

int weft_timer_again(weft_timer *t) {
  if (t == NULL || t->base.ops != &timer_ops) return -EINVAL;
  WEFT__CHECK_THREAD(t->base.loop);
  if (t->cb == NULL) return -EINVAL;
  if (t->repeat == 0) return weft_timer_stop(t);
  return weft_timer_start(t, t->cb, t->repeat, t->repeat);
}

int weft_timer_set_repeat(weft_timer *t, uint64_t repeat_ms) {
  if (t == NULL || t->base.ops != &timer_ops || repeat_ms > WEFT_TIMEOUT_MAX)
    return -EINVAL;
  WEFT__CHECK_THREAD(t->base.loop);
  weft__timers *ts = &t->base.loop->timers;
  if (t->bucket != NULL && (t->repeat != 0) != (repeat_ms != 0)) {
    if (repeat_ms != 0) {
      int err = reserve(ts, room_needed(ts, true));
      if (err != 0) return err;
      ts->repeating++;
    } else {
      ts->repeating--;
    }
  }
  t->repeat = repeat_ms;
  return 0;
}

uint64_t weft_timer_get_repeat(const weft_timer *t) {
  return t ? t->repeat : 0;
}

uint64_t weft_timer_due_in(const weft_timer *t) {
  if (t == NULL || t->bucket == NULL) return 0;
  uint64_t now = t->base.loop->now;
  uint64_t deadline = ((const weft__tbucket *)t->bucket)->deadline;
  return deadline > now ? deadline - now : 0;
}
