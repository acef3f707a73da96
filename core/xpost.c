/* weft — cross-thread posts (weft_call_soon_threadsafe).
 *
 * Each posting thread gets its own single-producer ring per loop: a chain of
 * fixed-size segments that the producer fills and the loop drains. A post
 * is a slot write and a release store of the producer's own counter, so
 * two threads flooding one loop never share a lock or a written cache line.
 * Order per posting thread is the ring's order.
 *
 * Wake-ups: the loop sets `sleeping` before it lets libev block, re-checks
 * the rings, and each producer checks `sleeping` after publishing (both
 * sides sequentially consistent: Dekker's pattern). Only a producer that finds
 * the loop asleep wakes it (weft__loop_wake), so a busy loop gets no
 * wake-ups at all and a sleeping one gets one per batch.
 *
 * A thread finds its ring through a small thread-local cache keyed by the
 * loop's address and creation id; on a miss it takes the loop's registry
 * lock, which is the only lock here. Rings live until the loop is freed. */
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

#define SEG_SLOTS 1024u
#define DRAIN_BUDGET 65536u
#define TLS_CACHE 4

typedef struct xseg {
  struct xseg *next;
  weft__task slot[SEG_SLOTS];
} xseg;

struct weft__xring {
  /* producer's line */
  _Alignas(64) xseg *ptail;
  uint32_t pidx;
  uint64_t pcount;
  atomic_uint_fast64_t published;
  atomic_bool posting; /* a post is between its `closed` check and its end */
  xseg *pfree;         /* drained segments the producer has taken back */
  /* loop's line */
  _Alignas(64) xseg *chead;
  uint32_t cidx;
  uint64_t consumed;
  /* Drained segments handed back to the producer: the loop pushes, the
   * producer takes the whole chain at once, so the producer never
   * allocates once the ring has grown to its backlog. */
  _Atomic(xseg *) spare;
  pthread_t owner;
  struct weft__xring *next; /* registry */
};

static atomic_uint_fast64_t next_loop_id = 1;

static _Thread_local struct {
  weft_loop *loop;
  uint64_t id;
  weft__xring *ring;
} cache[TLS_CACHE];
static _Thread_local unsigned cache_next;

int weft__xpost_init(weft_loop *loop) {
  int err = pthread_mutex_init(&loop->x_lock, NULL);
  if (err != 0) return -err;
  loop->x_id = atomic_fetch_add(&next_loop_id, 1);
  atomic_init(&loop->x_rings, NULL);
  /* until its first drain the loop counts as asleep: the first post wakes it */
  atomic_init(&loop->x_sleeping, true);
  atomic_init(&loop->x_closed, false);
  return 0;
}

static weft__xring *ring_new(void) {
  weft__xring *r = weft__calloc(1, sizeof *r);
  xseg *s = weft__malloc(sizeof *s);
  if (r == NULL || s == NULL) {
    weft__free(r);
    weft__free(s);
    return NULL;
  }
  s->next = NULL;
  r->ptail = r->chead = s;
  atomic_init(&r->published, 0);
  atomic_init(&r->posting, false);
  atomic_init(&r->spare, NULL);
  r->owner = pthread_self();
  return r;
}

/* The calling thread's ring on `loop`, created on first use. */
static weft__xring *my_ring(weft_loop *loop) {
  for (unsigned i = 0; i < TLS_CACHE; i++)
    if (cache[i].loop == loop && cache[i].id == loop->x_id)
      return cache[i].ring;
  pthread_t self = pthread_self();
  pthread_mutex_lock(&loop->x_lock);
  weft__xring *r = atomic_load_explicit(&loop->x_rings, memory_order_relaxed);
  while (r != NULL && !pthread_equal(r->owner, self))
    r = r->next;
  /* no new rings once weft_loop_free() has begun: it is about to free them */
  bool closed = atomic_load_explicit(&loop->x_closed, memory_order_relaxed);
  if (r == NULL && !closed && (r = ring_new()) != NULL) {
    r->next = atomic_load_explicit(&loop->x_rings, memory_order_relaxed);
    atomic_store_explicit(&loop->x_rings, r, memory_order_release);
  }
  pthread_mutex_unlock(&loop->x_lock);
  if (r != NULL) {
    unsigned i = cache_next++ % TLS_CACHE;
    cache[i].loop = loop;
    cache[i].id = loop->x_id;
    cache[i].ring = r;
  }
  return r;
}

/* Publishes one post on the calling thread's ring `r`. */
static int post(weft_loop *loop, weft__xring *r, weft_cb cb, void *arg) {
  if (r->pidx == SEG_SLOTS) {
    if (r->pfree == NULL)
      r->pfree =
          atomic_exchange_explicit(&r->spare, NULL, memory_order_acquire);
    xseg *s = r->pfree;
    if (s != NULL)
      r->pfree = s->next;
    else if ((s = weft__malloc(sizeof *s)) == NULL)
      return -ENOMEM;
    s->next = NULL;
    r->ptail->next = s; /* published by the release store below */
    r->ptail = s;
    r->pidx = 0;
  }
  r->ptail->slot[r->pidx++] = (weft__task){cb, arg};
  /* seq_cst store, then seq_cst load: pairs with the loop's store of
   * `sleeping` and re-check of the rings in weft__xpost_drain() */
  atomic_store_explicit(&r->published, ++r->pcount, memory_order_seq_cst);
  if (atomic_load_explicit(&loop->x_sleeping, memory_order_seq_cst) &&
      atomic_exchange_explicit(&loop->x_sleeping, false, memory_order_acq_rel))
    weft__loop_wake(loop);
  return 0;
}

int weft_call_soon_threadsafe(weft_loop *loop, weft_cb cb, void *arg) {
  if (loop == NULL || cb == NULL) return -EINVAL;
  if (atomic_load_explicit(&loop->x_closed, memory_order_acquire))
    return -ESHUTDOWN;
  weft__xring *r = my_ring(loop);
  if (r == NULL) return atomic_load(&loop->x_closed) ? -ESHUTDOWN : -ENOMEM;
  /* Dekker's pattern with weft__xpost_close(): either this post sees
   * `closed`, or the close waits until the post is published (and so
   * counted as pending). An accepted post is never dropped by a free. */
  atomic_store_explicit(&r->posting, true, memory_order_seq_cst);
  int err = atomic_load_explicit(&loop->x_closed, memory_order_seq_cst)
                ? -ESHUTDOWN
                : post(loop, r, cb, arg);
  atomic_store_explicit(&r->posting, false, memory_order_release);
  return err;
}

/* Runs up to `budget` of the ring's posts; returns how many ran. */
static size_t ring_drain(weft_loop *loop, weft__xring *r, size_t budget) {
  uint64_t avail =
      atomic_load_explicit(&r->published, memory_order_acquire) - r->consumed;
  size_t n = avail < budget ? (size_t)avail : budget;
  for (size_t i = 0; i < n; i++) {
    if (r->cidx == SEG_SLOTS) {
      xseg *done = r->chead;
      r->chead = done->next;
      r->cidx = 0;
      /* only this thread pushes and the producer only takes the whole
       * chain, so the compare-and-swap cannot suffer ABA */
      xseg *head = atomic_load_explicit(&r->spare, memory_order_relaxed);
      do
        done->next = head;
      while (!atomic_compare_exchange_weak_explicit(
          &r->spare, &head, done, memory_order_release, memory_order_relaxed));
    }
    weft__task t = r->chead->slot[r->cidx++];
    r->consumed++;
    if (WEFT__UNLIKELY(loop->slow_cb != NULL)) {
      uint64_t t0 = weft__clock_ns();
      t.cb(t.arg);
      weft__slow_check(loop, (weft_any_fn)t.cb, t0);
    } else {
      t.cb(t.arg);
    }
  }
  loop->m.posts_received += n;
  return n;
}

static bool rings_empty(weft_loop *loop) {
  for (weft__xring *r =
           atomic_load_explicit(&loop->x_rings, memory_order_acquire);
       r != NULL; r = r->next)
    if (atomic_load_explicit(&r->published, memory_order_seq_cst) !=
        r->consumed)
      return false;
  return true;
}

/* From the loop's async watcher: drains every ring, fairly, within a
 * budget; then either asks for another turn or goes to sleep. */
void weft__xpost_drain(weft_loop *loop) {
  size_t budget = DRAIN_BUDGET, ran;
  do {
    ran = 0;
    for (weft__xring *r =
             atomic_load_explicit(&loop->x_rings, memory_order_acquire);
         r != NULL && budget != 0; r = r->next) {
      size_t n = ring_drain(loop, r, budget < 1024 ? budget : 1024);
      ran += n;
      budget -= n;
    }
  } while (ran != 0 && budget != 0);
  if (budget == 0) { /* more may be queued: come back next turn */
    weft__loop_wake(loop);
    return;
  }
  atomic_store_explicit(&loop->x_sleeping, true, memory_order_seq_cst);
  if (!rings_empty(loop) &&
      atomic_exchange_explicit(&loop->x_sleeping, false, memory_order_acq_rel))
    weft__loop_wake(loop);
}

bool weft__xpost_pending(weft_loop *loop) { return !rings_empty(loop); }

int weft__xpost_close(weft_loop *loop) {
  if (!rings_empty(loop)) return -EBUSY;
  pthread_mutex_lock(&loop->x_lock);
  atomic_store_explicit(&loop->x_closed, true, memory_order_seq_cst);
  /* posts that got past the `closed` check finish publishing */
  for (weft__xring *r =
           atomic_load_explicit(&loop->x_rings, memory_order_acquire);
       r != NULL; r = r->next)
    while (atomic_load_explicit(&r->posting, memory_order_seq_cst))
      sched_yield();
  bool busy = !rings_empty(loop);
  if (busy) atomic_store_explicit(&loop->x_closed, false, memory_order_release);
  pthread_mutex_unlock(&loop->x_lock);
  return busy ? -EBUSY : 0;
}

void weft__xpost_free(weft_loop *loop) {
  weft__xring *r = atomic_load_explicit(&loop->x_rings, memory_order_acquire);
  while (r != NULL) {
    weft__xring *next = r->next;
    for (xseg *s = r->chead, *sn; s != NULL; s = sn) {
      sn = s->next;
      weft__free(s);
    }
    for (int chain = 0; chain < 2; chain++)
      for (xseg *s = chain ? r->pfree : atomic_load(&r->spare), *sn; s != NULL;
           s = sn) {
        sn = s->next;
        weft__free(s);
      }
    weft__free(r);
    r = next;
  }
  pthread_mutex_destroy(&loop->x_lock);
}
