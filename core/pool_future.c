/* weft — the thread pool's future form: a job whose value settles a future.
 *
 * Jobs come from a per-loop free list, so a steady stream of submits does
 * not allocate (the future itself comes from the futures' own free list).
 * The job holds one reference to its future until the done callback has
 * settled it; cancelling the future cancels the job through the hook. */
#include "internal.h"
#include "pool_internal.h"

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

static void job_work(weft_work *w) {
  pool_job *j = (pool_job *)w;
  j->err = 0;
  j->value = j->fn(j->arg, &j->err);
}

static void job_put(weft__pool_state *st, pool_job *j) {
  j->f = NULL;
  j->free_next = st->job_free;
  st->job_free = j;
}

static void job_done(weft_work *w, int status) {
  pool_job *j = (pool_job *)w;
  weft__pool_state *st = weft__module_get(w->loop, WEFT__MOD_POOL);
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

void weft__pool_jobs_free(weft__pool_state *st) {
  while (st->job_free != NULL) {
    pool_job *j = st->job_free;
    st->job_free = j->free_next;
    weft__free(j);
  }
}

int weft_pool_submit_future(weft_loop *loop, weft_pool_lane lane, weft_pool_fn fn,
                            void *arg, weft_dtor dtor, weft_future **out) {
  if (loop == NULL || fn == NULL || out == NULL || (unsigned)lane >= WEFT_LANE_COUNT)
    return -EINVAL;
  int err = 0;
  weft__pool_state *st = weft__pool_state_get(loop, &err);
  if (st == NULL) return err;
  pool_job *j = st->job_free;
  if (j != NULL) st->job_free = j->free_next;
  else if ((j = weft__calloc(1, sizeof *j)) == NULL) return -ENOMEM;
  weft_future *f = NULL;
  err = weft_future_new(loop, &f);
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
