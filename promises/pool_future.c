/* weft — the thread pool's future form: a job whose value settles a future.
 *
 * Built on the pool's public callback form (weft_work_submit), as any user
 * of the pool would be: the pool knows nothing of futures. Jobs come from a
 * per-loop free list (WEFT__MOD_POOL_FUTURE), so a steady stream of submits
 * does not allocate (the future itself comes from the futures' own free
 * list). The job holds one reference to its future until the done callback
 * has settled it; cancelling the future cancels the job through the hook. */
#include "core/pool_internal.h"
#include "internal.h"
#include "weft/pool.h"

/* What a job's result holds. */
enum { R_I64 = 0, R_PTR, R_F64 };

/* One job of either future form: weft_pool_submit_future (fn: one
 * pointer, or an error through *err) or weft_pool_submit_job (jfn: the
 * future API's result shape, set with weft_pool_return*). */
struct weft_pool_job {
  weft_work w;
  weft_future *f;
  weft_pool_fn fn;
  weft_pool_job_fn jfn;
  void *arg;
  weft_dtor dtor;
  union {
    void *p;
    int64_t i;
    double d;
  } v;
  unsigned char vkind; /* R_* */
  int err;
  struct weft_pool_job *free_next;
};
typedef struct weft_pool_job pool_job;

/* The loop's free list of jobs, and its pending shutdown future. */
typedef struct job_state {
  pool_job *free;
  weft_future *shut_f; /* the state's reference; NULL: none pending */
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

/* Drops a pointer result nobody will own. */
static void value_drop(pool_job *j) {
  if (j->vkind == R_PTR && j->dtor != NULL) j->dtor(j->v.p);
  j->vkind = R_I64;
  j->v.i = 0;
}

static void job_work(weft_work *w) {
  pool_job *j = (pool_job *)w;
  j->err = 0;
  if (j->jfn != NULL) {
    j->vkind = R_I64;
    j->v.i = 0;
    j->dtor = NULL;
    int rc = j->jfn(j, j->arg);
    if (rc < 0) j->err = rc; /* the value is dropped on the loop thread */
    return;
  }
  j->v.p = j->fn(j->arg, &j->err);
  /* a rejected weft_pool_fn's return value is ignored, as documented */
  j->vkind = j->err < 0 ? R_I64 : R_PTR;
}

void weft_pool_return(weft_pool_job *j, void *value, weft_dtor dtor) {
  value_drop(j);
  j->vkind = R_PTR;
  j->v.p = value;
  j->dtor = dtor;
}

void weft_pool_return_i64(weft_pool_job *j, int64_t v) {
  value_drop(j);
  j->v.i = v;
}

void weft_pool_return_f64(weft_pool_job *j, double v) {
  value_drop(j);
  j->vkind = R_F64;
  j->v.d = v;
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
    /* cancelled before it ran: by the future (already settled, -EALREADY),
     * by loop teardown or a pool shutdown (the future learns it now) */
    weft_future_cancel(f);
  } else if (j->err < 0) {
    weft_future_reject(f, j->err);
    value_drop(j);
  } else {
    int rc;
    if (j->vkind == R_PTR)
      rc = weft_future_resolve(f, j->v.p, j->dtor);
    else if (j->vkind == R_F64)
      rc = weft_future_resolve_f64(f, j->v.d);
    else
      rc = weft_future_resolve_i64(f, j->v.i);
    if (rc != 0) value_drop(j); /* cancelled while running: nobody owns it */
  }
  job_put(st, j);
  weft_future_unref(f);
}

static void job_cancel(weft_future *f, void *arg) {
  (void)f;
  pool_job *j = arg;
  weft_work_cancel(&j->w); /* queued: never runs; running: flag raised */
}

static int submit(weft_loop *loop, weft_pool_lane lane, weft_pool_fn fn,
                  weft_pool_job_fn jfn, void *arg, weft_dtor dtor,
                  const char *op, weft_future **out) {
  job_state *st = job_state_get(loop);
  if (st == NULL) return -ENOMEM;
  pool_job *j = st->free;
  if (j != NULL)
    st->free = j->free_next;
  else if ((j = weft__calloc(1, sizeof *j)) == NULL)
    return -ENOMEM;
  weft_future *f = NULL;
  int err = weft_future_new_op(loop, op, &f);
  if (err == 0) err = weft_future_on_cancel(f, job_cancel, j);
  if (err == 0) {
    *j = (pool_job){.f = f, .fn = fn, .jfn = jfn, .arg = arg, .dtor = dtor};
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

int weft_pool_submit_future(weft_loop *loop, weft_pool_lane lane,
                            weft_pool_fn fn, void *arg, weft_dtor dtor,
                            weft_future **out) {
  if (loop == NULL || fn == NULL || out == NULL ||
      (unsigned)lane >= WEFT_LANE_COUNT)
    return -EINVAL;
  return submit(loop, lane, fn, NULL, arg, dtor, "weft_pool_submit_future",
                out);
}

int weft_pool_submit_job(weft_loop *loop, weft_pool_lane lane,
                         weft_pool_job_fn fn, void *arg, weft_future **out) {
  if (loop == NULL || fn == NULL || out == NULL ||
      (unsigned)lane >= WEFT_LANE_COUNT)
    return -EINVAL;
  return submit(loop, lane, NULL, fn, arg, NULL, "weft_pool_submit_job", out);
}

/* ---- weft_pool_shutdown: a future for "the workers are gone" ------------- */

static void shut_done(weft_loop *loop, void *arg) {
  WEFT__UNUSED(loop);
  job_state *st = arg;
  weft_future *f = st->shut_f;
  st->shut_f = NULL;
  if (f != NULL) {
    weft_future_resolve_i64(f, 0);
    weft_future_unref(f);
  }
}

static void shut_cancel(weft_future *f, void *arg) {
  job_state *st = arg;
  if (st->shut_f == f) { /* only the waiting stops */
    st->shut_f = NULL;
    weft_future_unref(f); /* the canceller still holds f */
  }
}

int weft_pool_shutdown(weft_loop *loop, bool wait, bool cancel_queued,
                       weft_future **out) {
  if (loop == NULL || wait != (out != NULL)) return -EINVAL;
  if (!wait) return weft__pool_shutdown(loop, cancel_queued, NULL, NULL);
  job_state *st = job_state_get(loop);
  if (st == NULL) return -ENOMEM;
  if (st->shut_f != NULL) { /* one pending: the same future */
    int err = weft__pool_shutdown(loop, cancel_queued, NULL, NULL);
    if (err == 0) *out = weft_future_ref(st->shut_f);
    return err;
  }
  weft_future *f;
  int err = weft_future_new_op(loop, "weft_pool_shutdown", &f);
  if (err != 0) return err;
  if ((err = weft_future_on_cancel(f, shut_cancel, st)) != 0 ||
      (err = weft__pool_shutdown(loop, cancel_queued, shut_done, st)) != 0) {
    weft_future_unref(f);
    return err;
  }
  st->shut_f = f; /* the state's reference; it may settle this turn */
  *out = weft_future_ref(f);
  return 0;
}

/* ---- weft_pool_map: n calls, at most `limit` at once ----------------------
 * One block holds the map and its `limit` jobs (slots). Each slot runs one
 * index at a time; its done callback, on the loop thread, stores the
 * result and resubmits the slot with the next index, so no more than
 * `limit` calls are ever queued or running. On the first error (or a
 * cancel, or loop teardown) no slot is resubmitted and the busy ones are
 * cancelled; when the last slot comes home the future is settled (unless a
 * cancel already did) and the block is freed. */
typedef struct pool_map pool_map;
typedef struct map_slot {
  weft_work w;
  pool_map *m;
  size_t i;
  int64_t result; /* written by the worker, read in the done callback */
  int rc;
  bool busy; /* submitted, done callback not yet run */
} map_slot;

struct pool_map {
  weft_loop *loop;
  weft_future *f; /* the map's reference */
  weft_pool_map_fn fn;
  void *arg;
  int64_t *results;
  size_t n, next, nslots, active;
  weft_pool_lane lane;
  int err;        /* first error; -ECANCELED: loop teardown */
  bool cancelled; /* the future was cancelled (already settled) */
  map_slot slots[];
};

static void map_work(weft_work *w) {
  map_slot *s = (map_slot *)w;
  s->result = 0;
  s->rc = s->m->fn(s->i, s->m->arg, &s->result);
}

static void map_stop(pool_map *m) {
  for (size_t k = 0; k < m->nslots; k++)
    if (m->slots[k].busy) weft_work_cancel(&m->slots[k].w);
}

static void map_fail(pool_map *m, int err) {
  if (m->err != 0 || m->cancelled) return;
  m->err = err;
  map_stop(m);
}

static void map_done(weft_work *w, int status);

static int map_start(pool_map *m, map_slot *s) {
  s->i = m->next;
  int err = weft_work_submit(m->loop, &s->w, m->lane, map_work, map_done);
  if (err != 0) return err;
  m->next++;
  s->busy = true;
  return 0;
}

static void map_finish(pool_map *m) {
  weft_future *f = m->f;
  if (m->cancelled)
    ; /* settled by the cancel */
  else if (m->err == -ECANCELED)
    weft_future_cancel(f); /* loop teardown; the hook finds nothing busy */
  else if (m->err != 0)
    weft_future_reject(f, m->err);
  else
    weft_future_resolve_i64(f, (int64_t)m->n);
  weft__free(m);
  weft_future_unref(f);
}

static void map_done(weft_work *w, int status) {
  map_slot *s = (map_slot *)w;
  pool_map *m = s->m;
  s->busy = false;
  if (status != 0)
    map_fail(m, -ECANCELED); /* withdrawn: by us, or by loop teardown */
  else if (s->rc < 0)
    map_fail(m, s->rc);
  else if (m->results != NULL && !m->cancelled)
    m->results[s->i] = s->result;
  if (m->err == 0 && !m->cancelled && m->next < m->n) {
    int err = map_start(m, s);
    if (err == 0) return;
    map_fail(m, err == -ESHUTDOWN ? -ECANCELED : err);
  }
  if (--m->active == 0) map_finish(m);
}

static void map_cancel(weft_future *f, void *arg) {
  (void)f;
  pool_map *m = arg;
  m->cancelled = true; /* f is settled: map_finish leaves it alone */
  map_stop(m);
}

int weft_pool_map(weft_loop *loop, weft_pool_lane lane, size_t n,
                  weft_pool_map_fn fn, void *arg, size_t limit,
                  int64_t *results, weft_future **out) {
  if (loop == NULL || fn == NULL || out == NULL ||
      (unsigned)lane >= WEFT_LANE_COUNT)
    return -EINVAL;
  weft_future *f = NULL;
  pool_map *m = NULL;
  int err = weft_future_new_op(loop, "weft_pool_map", &f);
  if (err != 0) return err;
  if (n == 0) {
    weft_future_resolve_i64(f, 0);
    *out = f;
    return 0;
  }
  if (limit == 0) {
    weft_pool_stats st;
    if ((err = weft_pool_get_stats(loop, lane, &st)) != 0) goto fail;
    limit = st.target > 0 ? st.target : 1;
  }
  if (limit > n) limit = n;
  if (limit > (SIZE_MAX - sizeof(pool_map)) / sizeof(map_slot)) {
    err = -ENOMEM;
    goto fail;
  }
  m = weft__calloc(1, sizeof *m + limit * sizeof(map_slot));
  if (m == NULL) {
    err = -ENOMEM;
    goto fail;
  }
  *m = (pool_map){.loop = loop,
                  .f = f,
                  .fn = fn,
                  .arg = arg,
                  .results = results,
                  .n = n,
                  .nslots = limit,
                  .lane = lane};
  for (size_t k = 0; k < limit; k++)
    m->slots[k].m = m;
  if ((err = weft_future_on_cancel(f, map_cancel, m)) != 0 ||
      (err = map_start(m, &m->slots[0])) != 0) {
    weft__free(m);
    goto fail;
  }
  m->active = 1;
  /* a later slot that cannot start (no thread, teardown) only lowers the
   * concurrency: the started ones carry on through every index */
  for (size_t k = 1; k < limit && map_start(m, &m->slots[k]) == 0; k++)
    m->active++;
  *out = weft_future_ref(f); /* one for the caller, one for the map */
  return 0;
fail:
  weft_future_unref(f);
  return err;
}
