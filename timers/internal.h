/* weft — the timers' state and internal API, owned by timers/. Timers are
 * part of the loop core's knot, as in libuv (uv__run_timers is called
 * straight from uv_run): their state sits inside struct weft_loop, the
 * loop's own libev timer watcher runs them (core/loop.c: on_timer, armed in
 * on_prepare), and the host's timeout is computed from them
 * (core/backend.c). The heap, the buckets and the public timer API are
 * timers/timer.c. Included by core/internal.h (the loop embeds the state);
 * never installed. */
#ifndef WEFT_TIMERS_INTERNAL_H
#define WEFT_TIMERS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h" /* and weft/loop.h */

/* One bucket per distinct deadline holds its timers in start order; a
 * min-heap orders the buckets and a hash finds the bucket of a deadline. */
typedef struct weft__tbucket weft__tbucket;
typedef struct weft__theap_entry {
  uint64_t deadline;
  weft__tbucket *b;
} weft__theap_entry;

typedef struct weft__timers {
  weft__theap_entry *heap; /* 4-ary min-heap of buckets */
  uint32_t heap_len, heap_cap;
  weft__tbucket **hash; /* deadline -> bucket, chained */
  uint32_t hash_mask, bucket_count;
  weft__tbucket *free_buckets;    /* recycled buckets */
  void *slabs;                    /* bucket slabs, newest first */
  weft__tbucket *bump, *bump_end; /* never-used room in the newest slab */
  size_t capacity;                /* buckets in all slabs */
  size_t linked;                  /* timers in buckets (active timers) */
  size_t repeating;               /* of those, the ones with a repeat */
  weft__tbucket *last;            /* the bucket used last (equal timeouts) */
  weft__list due;                 /* buckets collected by weft__timers_run */
  size_t due_count;               /* buckets on that list */
} weft__timers;

/* Sets up the empty timer structures (loop creation; allocates nothing). */
void weft__timers_init(weft_loop *loop);
/* Fires the timers due at loop->now, all collected before any runs; timers
 * (re)started meanwhile wait for the next run, even at 0 ms. */
void weft__timers_run(weft_loop *loop);
/* The earliest deadline, if any timer is active. */
bool weft__timers_earliest(const weft_loop *loop, uint64_t *deadline);
/* Frees the timer structures (weft_loop_free). */
void weft__timers_free(weft_loop *loop);
/* For weft_loop_backend_timeout() (core/backend.c): the ms a host may
 * sleep, from now, after which the earliest timer fires on its next run
 * (rounded up; 0 if due), or -1 if no timer is active. */
int64_t weft__timers_next(const weft_loop *loop);
/* Checks every invariant of the structures (heap order and back-indexes,
 * hash and bucket membership, the due list, the counts, the slabs' room)
 * and returns true if they hold; else prints the first broken one to
 * stderr and returns false. O(timers + buckets + capacity); for tests. */
bool weft__timers_validate(const weft_loop *loop);

#endif /* WEFT_TIMERS_INTERNAL_H */
