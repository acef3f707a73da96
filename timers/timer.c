/* weft — timers on a 4-ary min-heap ordered by (deadline, start sequence).
 *
 * The heap array holds the keys inline (like libev's cached `at`), so a sift
 * touches the array, not the timers. The sequence number makes equal
 * deadlines fire in start order, and it is also what keeps a timer restarted
 * at 0 ms from firing twice in one turn: weft__timers_run() only pops
 * entries started before it began. The array only grows, so restarting a
 * timer never allocates once the heap has reached its working size. */
#include "core/internal.h"

#define NONE UINT32_MAX
#define HEAP_INITIAL 64u

static const weft__handle_ops timer_ops;

static inline bool before(const weft__timer_entry *a, const weft__timer_entry *b) {
  return a->deadline < b->deadline ||
         (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void place(weft_loop *loop, uint32_t i, weft__timer_entry e) {
  loop->heap[i] = e;
  e.t->heap_index = i;
}

static void sift_up(weft_loop *loop, uint32_t i, weft__timer_entry e) {
  while (i > 0) {
    uint32_t parent = (i - 1) / 4;
    if (!before(&e, &loop->heap[parent])) break;
    place(loop, i, loop->heap[parent]);
    i = parent;
  }
  place(loop, i, e);
}

static void sift_down(weft_loop *loop, uint32_t i, weft__timer_entry e) {
  uint32_t n = loop->heap_len;
  for (;;) {
    uint32_t first = 4 * i + 1;
    if (first >= n) break;
    uint32_t best = first, last = first + 4 < n ? first + 4 : n;
    for (uint32_t c = first + 1; c < last; c++)
      if (before(&loop->heap[c], &loop->heap[best])) best = c;
    if (!before(&loop->heap[best], &e)) break;
    place(loop, i, loop->heap[best]);
    i = best;
  }
  place(loop, i, e);
}

static void heap_remove(weft_loop *loop, weft_timer *t) {
  uint32_t i = t->heap_index;
  t->heap_index = NONE;
  weft__timer_entry last = loop->heap[--loop->heap_len];
  if (i == loop->heap_len) return;
  if (i > 0 && before(&last, &loop->heap[(i - 1) / 4]))
    sift_up(loop, i, last);
  else
    sift_down(loop, i, last);
}

static int heap_reserve(weft_loop *loop) {
  if (loop->heap_len < loop->heap_cap) return 0;
  uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : HEAP_INITIAL;
  if (cap <= loop->heap_cap) return -ENOMEM;
  weft__timer_entry *heap = weft__realloc(loop->heap, (size_t)cap * sizeof *heap);
  if (heap == NULL) return -ENOMEM;
  loop->heap = heap;
  loop->heap_cap = cap;
  return 0;
}

/* Puts an active timer at (deadline, fresh seq); its slot is reused. */
static void heap_schedule(weft_loop *loop, weft_timer *t, uint64_t deadline) {
  weft__timer_entry e = {deadline, loop->timer_seq++, t};
  t->deadline = deadline;
  t->seq = e.seq;
  if (t->heap_index == NONE) {
    sift_up(loop, loop->heap_len++, e);
    return;
  }
  uint32_t i = t->heap_index;
  if (i > 0 && before(&e, &loop->heap[(i - 1) / 4]))
    sift_up(loop, i, e);
  else
    sift_down(loop, i, e);
}

void weft__timers_run(weft_loop *loop) {
  uint64_t now = loop->now, limit = loop->timer_seq;
  while (loop->heap_len != 0) {
    weft__timer_entry top = loop->heap[0];
    if (top.deadline > now || top.seq >= limit) break;
    weft_timer *t = top.t;
    if (t->repeat != 0) {
      heap_schedule(loop, t, now + t->repeat); /* reuses its slot */
    } else {
      heap_remove(loop, t);
      weft__handle_stop(&t->base);
    }
    t->cb(t);
  }
}

int64_t weft__timers_next(const weft_loop *loop) {
  if (loop->heap_len == 0) return -1;
  uint64_t d = loop->heap[0].deadline;
  return d > loop->now ? (int64_t)(d - loop->now) : 0;
}

static void timer_close(weft_handle *h) {
  weft_timer_stop((weft_timer *)h);
}

static const weft__handle_ops timer_ops = {WEFT_HANDLE_TIMER, timer_close, NULL};

int weft_timer_init(weft_loop *loop, weft_timer *t) {
  if (loop == NULL || t == NULL) return -EINVAL;
  weft__handle_init(loop, &t->base, &timer_ops);
  t->cb = NULL;
  t->deadline = t->repeat = t->seq = 0;
  t->heap_index = NONE;
  return 0;
}

int weft_timer_start(weft_timer *t, weft_timer_cb cb, uint64_t timeout_ms,
                     uint64_t repeat_ms) {
  if (t == NULL || cb == NULL || !weft__handle_usable(&t->base) ||
      t->base.ops != &timer_ops || timeout_ms > WEFT_TIMEOUT_MAX ||
      repeat_ms > WEFT_TIMEOUT_MAX)
    return -EINVAL;
  weft_loop *loop = t->base.loop;
  if (t->heap_index == NONE) {
    int err = heap_reserve(loop);
    if (err != 0) return err;
  }
  t->cb = cb;
  t->repeat = repeat_ms;
  heap_schedule(loop, t, loop->now + timeout_ms);
  weft__handle_start(&t->base);
  return 0;
}

int weft_timer_stop(weft_timer *t) {
  if (t == NULL || t->base.ops != &timer_ops) return -EINVAL;
  if (t->heap_index != NONE) heap_remove(t->base.loop, t);
  weft__handle_stop(&t->base);
  return 0;
}

int weft_timer_again(weft_timer *t) {
  if (t == NULL || t->cb == NULL || t->base.ops != &timer_ops) return -EINVAL;
  if (t->repeat == 0) return weft_timer_stop(t);
  return weft_timer_start(t, t->cb, t->repeat, t->repeat);
}

int weft_timer_set_repeat(weft_timer *t, uint64_t repeat_ms) {
  if (t == NULL || t->base.ops != &timer_ops || repeat_ms > WEFT_TIMEOUT_MAX)
    return -EINVAL;
  t->repeat = repeat_ms;
  return 0;
}

uint64_t weft_timer_get_repeat(const weft_timer *t) { return t ? t->repeat : 0; }

uint64_t weft_timer_due_in(const weft_timer *t) {
  if (t == NULL || t->heap_index == NONE) return 0;
  uint64_t now = t->base.loop->now;
  return t->deadline > now ? t->deadline - now : 0;
}
