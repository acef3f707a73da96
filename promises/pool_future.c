/* weft — the thread pool's future form: a job whose value settles a future.
 *
 * Built on the pool's public callback form (weft_work_submit), as any user
 * of the pool would be: the pool knows nothing of futures. Jobs come from a
 * per-loop free list (WEFT__MOD_POOL_FUTURE), so a steady stream of submits
 * does not allocate (the future itself comes from the futures' own free
 * list). The job holds one reference to its future until the done callback
 * has settled it; cancelling the future cancels the job through the hook. */
#include "internal.h"
#include "weft/pool.h"

typedef struct weft__pool_job {
  weft_work w;
  weft_future *f;
  weft_pool_fn fn;
  void *arg;
  weft_dtor dtor;
  void *value;
  int err;
  struct weft__pool_job *free_next;
} pool_job;

/* The loop's free list of jobs. */
typedef struct job_state {
  pool_job *free;
} job_state;

static void job_state_teardown(weft_loop *loop, void *arg) {
  WEFT__UNUSED(loop);
  job_state *st = arg;
  while (st->free != NULL) {
    pool_job *j = st->free;
    st->free = j->free_next;
    weft__free(j);
  }
  weft__free(st);
}

static job_state *job_state_get(weft_loop *loop) {
  job_state *st = weft__module_get(loop, WEFT__MOD_POOL_FUTURE);
  if (WEFT__LIKELY(st != NULL)) return st;
  st = weft__calloc(1, sizeof *st);
  if (st != NULL)
    weft__module_set(loop, WEFT__MOD_POOL_FUTURE, st, job_state_teardown);
  return st;
}

static void job_work(weft_work *w) {
  pool_job *j = (pool_job *)w;
  j->err = 0;
  j->value = j->fn(j->arg, &j->err);
}

static void job_put(job_state *st, pool_job *j) {
  j->f = NULL;
  j->free_next = st->free;
  st->free = j;
}

static void job_done(weft_work *w, int status) {
  pool_job *j = (pool_job *)w;
  job_state *st = weft__module_get(w->loop, WEFT__MOD_POOL_FUTURE);
  weft_future *f = j->f;
  if (status != 0) {
    /* cancelled before it ran: by the future (already settled, -EALREADY)
     * or by loop teardown (the future learns it now) */
    weft_future_cancel(f);
  } else if (j->err < 0) {
    weft_future_reject(f, j->err);
  } else if (weft_future_resolve(f, j->value, j->dtor) != 0 && j->dtor) {
    j->dtor(j->value); /* cancelled while running: nobody owns the value */
  }
  job_put(st, j);
  weft_future_unref(f);
}

static void job_cancel(weft_future *f, void *arg) {
  (void)f;
  pool_job *j = arg;
  weft_work_cancel(&j->w); /* queued: never runs; running: flag raised */
}

int weft_pool_submit_future(weft_loop *loop, weft_pool_lane lane,
                            weft_pool_fn fn, void *arg, weft_dtor dtor,
                            weft_future **out) {
  if (loop == NULL || fn == NULL || out == NULL ||
      (unsigned)lane >= WEFT_LANE_COUNT)
    return -EINVAL;
  job_state *st = job_state_get(loop);
  if (st == NULL) return -ENOMEM;
  pool_job *j = st->free;
  if (j != NULL)
    st->free = j->free_next;
  else if ((j = weft__calloc(1, sizeof *j)) == NULL)
    return -ENOMEM;
  weft_future *f = NULL;
  int err = weft_future_new(loop, &f);
  if (err == 0) err = weft_future_on_cancel(f, job_cancel, j);
  if (err == 0) {
    *j = (pool_job){.f = f, .fn = fn, .arg = arg, .dtor = dtor};
    err = weft_work_submit(loop, &j->w, lane, job_work, job_done);
  }
  if (err != 0) {
    weft_future_unref(f);
    job_put(st, j);
    return err;
  }
  *out = weft_future_ref(f); /* one for the caller, one for the job */
  return 0;
}
