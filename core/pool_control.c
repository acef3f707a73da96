/* weft — the thread pool's control calls: size (weft_pool_resize), stats
 * and metrics (weft_pool_get_stats, weft_pool_get_metrics: the per-slot
 * counters summed), thread hooks, and the shutdown (weft__pool_shutdown;
 * the future form is promises/pool_future.c). The lanes, workers and job
 * hand-offs are core/pool.c; the types both share, core/pool_lanes_internal.h.
 */
#include <string.h>

#include "pool_lanes_internal.h"

/* ---- size and stats ----------------------------------------------------- */

static int lane_resize(lane *l, unsigned n) {
  pthread_mutex_lock(&l->lock);
  if (atomic_load(&l->closing)) {
    pthread_mutex_unlock(&l->lock);
    return -ESHUTDOWN;
  }
  unsigned old = l->target;
  l->target = n;
  int err = 0;
  if (n > l->nthreads && l->nthreads != 0) {
    err = weft__pool_lane_spawn(l);
    if (l->nthreads < n) {
      l->target = l->nthreads > old ? l->nthreads : old;
      if (err == 0) err = -EAGAIN;
    }
  } else if (n < l->nthreads) {
    pthread_cond_broadcast(&l->cond); /* the extra ones exit */
  }
  atomic_store(&l->spawn, l->nthreads < l->target);
  pthread_mutex_unlock(&l->lock);
  return err;
}

int weft_pool_resize(weft_loop *loop, unsigned cpu, unsigned io) {
  if (loop == NULL || cpu > WEFT_POOL_MAX || io > WEFT_POOL_MAX) return -EINVAL;
  int err = 0;
  if (weft__pool_state_get(loop, &err) == NULL) return err;
  if (cpu != 0) err = lane_resize(&weft__pool_g->lanes[WEFT_LANE_CPU], cpu);
  if (err == 0 && io != 0)
    err = lane_resize(&weft__pool_g->lanes[WEFT_LANE_IO], io);
  return err;
}

int weft_pool_get_stats(weft_loop *loop, weft_pool_lane lane_id,
                        weft_pool_stats *out) {
  if (loop == NULL || out == NULL || (unsigned)lane_id >= WEFT_LANE_COUNT)
    return -EINVAL;
  int err = 0;
  if (weft__pool_state_get(loop, &err) == NULL) return err;
  lane *l = &weft__pool_g->lanes[lane_id];
  pthread_mutex_lock(&l->lock);
  weft__pool_inbox_drain(l);
  out->queued = l->qlen;
  out->running = atomic_load(&l->running);
  out->done = atomic_load(&l->done);
  out->threads = l->nthreads;
  out->target = l->target;
  pthread_mutex_unlock(&l->lock);
  return 0;
}

static void lane_metrics_add(weft_pool_lane_metrics *o,
                             const slot_counters *c) {
  o->jobs += atomic_load_explicit(&c->jobs, memory_order_relaxed);
  for (int i = 0; i < WEFT_POOL_HIST_BUCKETS; i++) {
    o->queue_wait[i] += atomic_load_explicit(&c->wait[i], memory_order_relaxed);
    o->run_time[i] += atomic_load_explicit(&c->run[i], memory_order_relaxed);
  }
}

int weft_pool_get_metrics(weft_loop *loop, weft_pool_metrics *m, size_t size) {
  if (loop == NULL || m == NULL || size < sizeof *m) return -EINVAL;
  int err = 0;
  if (weft__pool_state_get(loop, &err) == NULL) return err;
  memset(m, 0, size);
  m->size = sizeof *m;
  for (int k = 0; k < WEFT_LANE_COUNT; k++) {
    lane *l = &weft__pool_g->lanes[k];
    pthread_mutex_lock(&l->lock); /* slots and their counters are made here */
    for (int j = 0; l->slots != NULL && j < WEFT_POOL_MAX; j++)
      if (l->slots[j].ctr != NULL)
        lane_metrics_add(&m->lanes[k], l->slots[j].ctr);
    pthread_mutex_unlock(&l->lock);
  }
  return 0;
}

/* ---- thread hooks and shutdown ------------------------------------------ */

int weft_pool_set_thread_hooks(weft_loop *loop,
                               const weft_pool_thread_hooks *hooks) {
  if (loop == NULL) return -EINVAL;
  int err = 0;
  if (weft__pool_state_get(loop, &err) == NULL) return err;
  pthread_mutex_lock(&weft__pool_g->aux);
  weft__pool_g->hooks = hooks != NULL ? *hooks : (weft_pool_thread_hooks){0};
  pthread_mutex_unlock(&weft__pool_g->aux);
  return 0;
}

/* Wakes `st`'s loop to run its shutdown callback. Aux lock held. */
static void shut_notify(pool_state *st) {
  pthread_mutex_lock(&st->lock);
  st->shut_done = true;
  if (!st->armed) {
    st->armed = true;
    ev_async_send(st->loop->ev, &st->async);
    weft__loop_wake(st->loop); /* see weft__pool_cq_push */
  }
  pthread_mutex_unlock(&st->lock);
}

/* The last worker is gone: every waiting loop learns it. Aux lock held. */
void weft__pool_shut_notify_all(void) {
  pool *g = weft__pool_g;
  while (g->shut_waits != NULL) {
    pool_state *st = g->shut_waits;
    g->shut_waits = st->shut_next;
    st->shut_next = NULL;
    shut_notify(st);
  }
}

/* Joins the threads that have exited (each has run its stop hook and
 * signalled; it is returning), so that none is left when the callback
 * says the workers are gone. Loop thread; no lock held. */
static void join_exited(void) {
  for (int i = 0; i < WEFT_LANE_COUNT; i++) {
    lane *l = &weft__pool_g->lanes[i];
    pthread_mutex_lock(&l->lock);
    for (int k = 0; l->slots != NULL && k < WEFT_POOL_MAX; k++) {
      if (l->slots[k].state != SLOT_EXITED) continue;
      pthread_t tid = l->slots[k].tid;
      l->slots[k].state = SLOT_EMPTY;
      pthread_mutex_unlock(&l->lock);
      pthread_join(tid, NULL);
      pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
  }
}

void weft__pool_shut_deliver(pool_state *st) {
  void (*cb)(weft_loop *, void *) = st->shut_cb;
  void *arg = st->shut_arg;
  if (cb == NULL) return;
  st->shut_cb = NULL;
  st->shut_arg = NULL;
  join_exited();
  weft__req_done(st->loop);
  cb(st->loop, arg);
}

/* Cancels every queued job of the lane (any loop's). Lane lock held. */
static void lane_cancel_queued(lane *l) {
  weft__pool_inbox_drain(l);
  for (weft__list *q; (q = weft__list_pop_front(&l->queue)) != NULL;) {
    weft_work *w = WORK_OF_Q(q);
    w->queued = 0;
    l->qlen--;
    atomic_fetch_add_explicit(&l->done, 1, memory_order_relaxed);
    atomic_store(&w->state, W_CANCELLED);
    w->status = -ECANCELED;
    weft__list one;
    weft__list_init(&one);
    weft__list_insert(&one, qnode(w));
    weft__pool_cq_push(weft__module_get(w->loop, WEFT__MOD_POOL), &one);
  }
  atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
}

int weft__pool_shutdown(weft_loop *loop, bool cancel_queued,
                        void (*cb)(weft_loop *loop, void *arg), void *arg) {
  if (loop == NULL) return -EINVAL;
  int err = 0;
  pool_state *st = weft__pool_state_get(loop, &err);
  if (st == NULL) return err;
  for (int i = 0; i < WEFT_LANE_COUNT; i++) {
    lane *l = &weft__pool_g->lanes[i];
    pthread_mutex_lock(&l->lock);
    atomic_store(&l->closing, true);
    if (cancel_queued) lane_cancel_queued(l);
    pthread_cond_broadcast(&l->cond); /* idle workers look again and leave */
    pthread_mutex_unlock(&l->lock);
  }
  pthread_mutex_lock(&weft__pool_g->aux);
  weft__pool_g->shut = true;
  if (cb != NULL) {
    bool waiting = st->shut_cb != NULL;
    st->shut_cb = cb;
    st->shut_arg = arg;
    if (!waiting) {
      weft__req_start(loop); /* the loop stays alive until it is told */
      if (weft__pool_g->live == 0) {
        shut_notify(st);
      } else {
        st->shut_next = weft__pool_g->shut_waits;
        weft__pool_g->shut_waits = st;
      }
    }
  }
  pthread_mutex_unlock(&weft__pool_g->aux);
  return 0;
}
