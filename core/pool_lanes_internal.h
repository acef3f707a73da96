/* weft — the thread pool's private types, shared by core/pool.c (lanes,
 * workers, submit, cancel, completions), core/pool_control.c (size,
 * stats, metrics, thread hooks, shutdown) and core/pool_clock.c (job
 * stamps). Never installed; nothing else includes it (modules use
 * pool_internal.h). */
#ifndef WEFT_CORE_POOL_LANES_INTERNAL_H
#define WEFT_CORE_POOL_LANES_INTERNAL_H

#include "internal.h"
#include "pool_internal.h"
#include "weft/pool.h"

/* A job's state (weft_work.state). */
enum { W_IDLE = 0, W_QUEUED, W_RUNNING, W_CANCELLED, W_DONE };

/* One per loop that uses the pool (WEFT__MOD_POOL slot). */
typedef struct pool_state {
  weft_loop *loop;
  ev_async async; /* one wake-up per batch of completions */
  /* the completion queue: workers push, the loop takes it whole */
  pthread_mutex_t lock;
  pthread_cond_t cond; /* before_free waits here for running jobs */
  weft__list cq;       /* completed jobs (qnode) */
  bool armed;          /* a wake-up is pending or the loop is draining */
  bool waiter;         /* before_free is waiting on cond */
  /* loop thread only */
  weft__list out; /* outstanding jobs (lnode), newest first */
  unsigned outstanding;
  bool closing; /* weft_loop_free() is cancelling: no new submits */
  /* shutdown (weft__pool_shutdown): the callback waiting for the threads
   * to be gone (loop thread), and its signal from the last worker (lock) */
  void (*shut_cb)(weft_loop *loop, void *arg);
  void *shut_arg;
  struct pool_state *shut_next; /* the pool's waiters (aux lock) */
  bool shut_done;               /* lock */
} pool_state;

/* A job's two list nodes (core/list.h), private storage in weft_work. */
_Static_assert(sizeof(((weft_work *)0)->qnode) == sizeof(weft__list) &&
                   sizeof(((weft_work *)0)->lnode) == sizeof(weft__list),
               "weft_work's list nodes");
static inline weft__list *qnode(weft_work *w) {
  return (weft__list *)(void *)&w->qnode;
}
static inline weft__list *lnode(weft_work *w) {
  return (weft__list *)(void *)&w->lnode;
}
#define WORK_OF_Q(n) WEFT__CONTAINER_OF((void *)(n), weft_work, qnode)
#define WORK_OF_L(n) WEFT__CONTAINER_OF((void *)(n), weft_work, lnode)

#define BATCH_MAX 16
#define SPIN_ROUNDS 1000
#define DRAIN_ROUNDS 4

enum { SLOT_EMPTY = 0, SLOT_LIVE, SLOT_EXITED };

/* weft_pool_get_metrics' counters of one worker slot: written by its
 * thread alone (plain relaxed load + store, no locked add, no cache line
 * shared with another worker), summed over the slots when read. They
 * outlive the slot's threads: a thread that reuses the slot goes on
 * counting (it starts after its predecessor was joined). */
typedef struct slot_counters {
  atomic_ullong jobs;
  atomic_ullong wait[WEFT_POOL_HIST_BUCKETS], run[WEFT_POOL_HIST_BUCKETS];
  char pad[64]; /* keeps the next slot's counters off the last line */
} slot_counters;

typedef struct lane lane;
typedef struct slot {
  pthread_t tid;
  lane *l;
  int state; /* lane lock */
  unsigned index;
  weft_pool_thread_hooks hooks; /* as when the thread started */
  slot_counters *ctr;           /* made at the slot's first start */
} slot;

struct lane {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  /* Submits push here without the lock: a stack (newest first, linked
   * through qnode.next), so that a loop submitting in bulk never waits
   * for the lock the workers take. Workers, cancel, stats and shutdown
   * move it to `queue`, oldest first, under the lock (weft__pool_inbox_drain).
   */
  _Atomic(weft_work *) inbox;
  weft__list queue; /* queued jobs (qnode), in submit order */
  size_t qlen;
  atomic_size_t qlen_hint; /* qlen, for spinning workers (no lock) */
  unsigned target, nthreads;
  /* written under the lock, read by submit without it (see lane_wake) */
  atomic_uint nidle, nspin;
  atomic_bool waking;
  atomic_bool spawn; /* nthreads < target: a submit starts threads first */
  bool shutdown;
  /* weft_pool_shutdown: no submits; exit once the queue is empty */
  atomic_bool closing;
  atomic_ullong running, done; /* updated before completions are pushed */
  slot *slots; /* WEFT_POOL_MAX, allocated when the lane first starts */
};

typedef struct pool {
  lane lanes[WEFT_LANE_COUNT];
  unsigned refs; /* loops using the pool (g_lock) */
  /* aux: a leaf lock (after a lane's lock, before a loop's completion
   * lock) for the thread hooks and the shutdown's bookkeeping */
  pthread_mutex_t aux;
  weft_pool_thread_hooks hooks;
  unsigned live;          /* worker threads started and not yet exited */
  bool shut;              /* weft__pool_shutdown ran */
  pool_state *shut_waits; /* loops waiting for the threads to be gone */
} pool;

/* Job stamps (core/pool_clock.c): the TSC on x86-64 when the kernel's
 * clock source is the TSC, else CLOCK_MONOTONIC in ns. Only differences of
 * two stamps mean anything; weft__pool_bucket() turns one into its log2 µs
 * bucket. weft__pool_clock_init() runs once, before the first stamp (the
 * pool's creation); it may spin 0.5 ms to measure the TSC's rate. */
extern bool weft__pool_tsc;
void weft__pool_clock_init(void);
unsigned weft__pool_bucket(uint64_t ticks);
static inline uint64_t weft__pool_stamp(void) {
#if defined(__x86_64__)
  if (WEFT__LIKELY(weft__pool_tsc)) return __builtin_ia32_rdtsc();
#endif
  return weft__clock_ns();
}

/* The process-wide pool: created by the first loop that uses it, freed
 * with the last (g_lock in pool.c). */
extern pool *weft__pool_g;

/* core/pool.c */
/* This loop's pool state, created (and the pool acquired) on first use.
 * NULL with *err = -ENOMEM (or the pool's error) on failure. */
pool_state *weft__pool_state_get(weft_loop *loop, int *err);
/* Moves the inbox to the end of the queue, oldest first. Lane lock held. */
void weft__pool_inbox_drain(lane *l);
/* Appends completed jobs of `st`'s loop and wakes it (see pool.c). */
void weft__pool_cq_push(pool_state *st, weft__list *done);
/* Starts threads until the lane has its target. Lane lock held. */
int weft__pool_lane_spawn(lane *l);

/* core/pool_control.c */
/* The last worker is gone: every waiting loop learns it. Aux lock held. */
void weft__pool_shut_notify_all(void);
/* Runs `st`'s shutdown callback, if one waits (loop thread). */
void weft__pool_shut_deliver(pool_state *st);

#endif
