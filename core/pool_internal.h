/* weft — the thread pool's per-loop state, shared by core/pool.c and the
 * modules that run their jobs on it (io/fs.c). Never installed. */
#ifndef WEFT_CORE_POOL_INTERNAL_H
#define WEFT_CORE_POOL_INTERNAL_H

#include "internal.h"
#include "weft/pool.h"

/* A job's state (weft_work.state). */
enum { W_IDLE = 0, W_QUEUED, W_RUNNING, W_CANCELLED, W_DONE };

/* One per loop that uses the pool (WEFT__MOD_POOL slot). */
typedef struct weft__pool_state {
  weft_loop *loop;
  ev_async async; /* one wake-up per batch of completions */
  /* the completion queue: workers push, the loop takes it whole */
  pthread_mutex_t lock;
  pthread_cond_t cond;    /* teardown waits here for running jobs */
  weft_work *cq_head, *cq_tail;
  bool armed;  /* a wake-up is pending or the loop is draining */
  bool waiter; /* teardown is waiting on cond */
  /* loop thread only */
  weft_work *out_head; /* outstanding jobs (lprev/lnext) */
  unsigned outstanding;
  bool closing; /* weft_loop_free() is cancelling: no new submits */
  struct weft__pool_job *job_free; /* future-form jobs, for reuse */
} weft__pool_state;

/* Frees the future-form jobs kept for reuse (module teardown). */
void weft__pool_jobs_free(weft__pool_state *st);

/* This loop's pool state, created (and the pool acquired) on first use.
 * NULL with *err = -ENOMEM (or the pool's error) on failure. */
weft__pool_state *weft__pool_state_get(weft_loop *loop, int *err);

#endif
