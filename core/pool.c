/* weft — the shared thread pool.
 *
 * One process-wide pool (weft__pool_g), created when the first loop submits,
 * reference-counted by the loops that use it, and joined and freed when the
 * last of them is freed. Two lanes (cpu, io), each with its own queue, lock
 * and threads, so a saturated cpu lane never holds up file I/O.
 *
 * Hand-offs are where a 2-core VM loses its time (about 5 us per wake-up of
 * an idle thread), so both directions are batched:
 *  - submit takes no lock: it pushes the job on the lane's inbox (one
 *    compare-and-swap), which the workers move to the locked queue in
 *    whole; it wakes a worker only when none is spinning and no wake-up is
 *    already on its way; a woken worker that leaves work behind wakes the
 *    next one (a chain, never a thundering herd); a worker that runs dry
 *    spins briefly before sleeping, so a serial submitter finds it awake;
 *  - a worker takes several jobs per lock when the queue is long and pushes
 *    their completions to each loop's completion queue in one go; the loop
 *    is woken with one ev_async per batch and none while a wake-up is
 *    pending or the loop is still draining.
 *
 * Job states: IDLE -> QUEUED -> RUNNING -> DONE, or QUEUED -> CANCELLED.
 * The QUEUED -> RUNNING / QUEUED -> CANCELLED compare-and-swap decides a
 * race between a worker and weft_work_cancel().
 *
 * Lock order: g_lock, then a lane's lock, then a loop's completion lock. A
 * worker holds no lane lock while it pushes completions. Metrics are
 * counted per worker slot (slot_counters) with stamps from pool_clock.c.
 *
 * The pool is ignorant of its users, as libuv's threadpool.c is: a job is a
 * weft_work with two functions, whatever embeds it (the future form in
 * promises/pool_future.c, file requests in io/fs.c) stays above. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_lanes_internal.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
pool *weft__pool_g;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static unsigned g_default_size;
static _Thread_local weft_work *t_current;

static void default_size_init(void) {
  const char *env = getenv("WEFT_POOL_SIZE");
  long n = env ? strtol(env, NULL, 10) : 0;
  if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0) n = 4;
  g_default_size = n > WEFT_POOL_MAX ? WEFT_POOL_MAX : (unsigned)n;
  weft__pool_clock_init();
}

/* ---- workers ------------------------------------------------------------ */

static void push_completions(weft_work **batch, int n);

/* +1 on a counter that only this thread writes. */
static inline void ctr_inc(atomic_ullong *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                        memory_order_relaxed);
}

/* Runs (or skips, if cancelled meanwhile) the jobs of a batch taken off
 * the queue, and counts each one's queue wait and run time in the slot's
 * histograms. One stamp per job: the end of a job is the start of the
 * next (a skipped job takes no measurable time). */
static void run_batch(slot_counters *c, weft_work **batch, int n) {
  uint64_t t0 = weft__pool_stamp();
  for (int i = 0; i < n; i++) {
    weft_work *w = batch[i];
    int expected = W_QUEUED;
    if (!atomic_compare_exchange_strong(&w->state, &expected, W_RUNNING)) {
      w->status = -ECANCELED;
      continue;
    }
    t_current = w;
    w->work_fn(w);
    t_current = NULL;
    uint64_t t1 = weft__pool_stamp();
    w->status = 0;
    ctr_inc(&c->wait[weft__pool_bucket(t0 - w->submit_ns)]);
    ctr_inc(&c->run[weft__pool_bucket(t1 - t0)]);
    ctr_inc(&c->jobs);
    atomic_store_explicit(&w->state, W_DONE, memory_order_release);
    t0 = t1;
  }
}

/* Moves the inbox to the end of the queue, oldest first. Lane lock held. */
void weft__pool_inbox_drain(lane *l) {
  weft_work *w = atomic_exchange(&l->inbox, NULL);
  if (w == NULL) return;
  weft__list fifo;
  weft__list_init(&fifo);
  size_t n = 0;
  for (weft__list *q = qnode(w), *next; q != NULL; q = next, n++) {
    next = q->next;
    weft__list_push_front(&fifo, q); /* the stack is newest first */
  }
  weft__list_splice_back(&l->queue, &fifo);
  l->qlen += n;
  atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
}

/* Pushes `w` on the inbox (any loop's thread, no lock). Sequentially
 * consistent, as lane_wake's reads and an idle worker's weft__pool_inbox_drain
 * are: either the worker going to sleep sees `w`, or the submit sees it idle.
 */
static void inbox_push(lane *l, weft_work *w) {
  weft_work *head = atomic_load_explicit(&l->inbox, memory_order_relaxed);
  do {
    qnode(w)->next = head != NULL ? qnode(head) : NULL;
  } while (!atomic_compare_exchange_weak(&l->inbox, &head, w));
}

static int take_batch(lane *l, weft_work **batch) {
  size_t per = l->qlen / (2u * (l->nthreads ? l->nthreads : 1));
  int n = per < 1 ? 1 : per > BATCH_MAX ? BATCH_MAX : (int)per;
  int i = 0;
  for (weft__list *q; i < n && (q = weft__list_pop_front(&l->queue)) != NULL;) {
    weft_work *w = WORK_OF_Q(q);
    w->queued = 0;
    batch[i++] = w;
  }
  l->qlen -= (size_t)i;
  atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
  atomic_fetch_add_explicit(&l->running, (unsigned long long)i,
                            memory_order_relaxed);
  return i;
}

/* Spins a little, without the lock, hoping for work; returns with the lock
 * held. A serial submitter then needs no wake-up at all. */
static void spin_for_work(lane *l) {
  atomic_fetch_add(&l->nspin, 1);
  pthread_mutex_unlock(&l->lock);
  for (int i = 0; i < SPIN_ROUNDS; i++) {
    if (atomic_load_explicit(&l->inbox, memory_order_relaxed) != NULL ||
        atomic_load_explicit(&l->qlen_hint, memory_order_relaxed) != 0)
      break;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  pthread_mutex_lock(&l->lock);
  atomic_fetch_sub(&l->nspin, 1);
}

/* Sleeps until signalled, unless a submit pushed meanwhile: nidle is
 * raised before the inbox is looked at again (see inbox_push). Lane lock
 * held. */
static void idle_wait(lane *l) {
  atomic_fetch_add(&l->nidle, 1);
  weft__pool_inbox_drain(l);
  if (weft__list_empty(&l->queue)) pthread_cond_wait(&l->cond, &l->lock);
  atomic_fetch_sub(&l->nidle, 1);
  atomic_store_explicit(&l->waking, false, memory_order_relaxed);
}

static bool worker_should_exit(const lane *l) {
  return l->shutdown || l->nthreads > l->target ||
         (atomic_load_explicit(&l->closing, memory_order_relaxed) &&
          weft__list_empty(&l->queue));
}

/* Wakes one idle worker unless a wake-up is already on its way. Lane lock
 * held. */
static void lane_signal(lane *l) {
  if (atomic_load(&l->nidle) > 0 && !atomic_load(&l->waking)) {
    atomic_store(&l->waking, true);
    pthread_cond_signal(&l->cond);
  }
}

static void *worker_main(void *arg) {
  slot *s = arg;
  lane *l = s->l;
  weft_pool_lane lane_id = (weft_pool_lane)(l - weft__pool_g->lanes);
  char name[16];
  snprintf(name, sizeof name, "weft-%s-%u",
           lane_id == WEFT_LANE_CPU ? "cpu" : "io", s->index);
  pthread_setname_np(pthread_self(), name);
  if (s->hooks.on_start != NULL)
    s->hooks.on_start(lane_id, s->index, s->hooks.arg);
  weft_work *batch[BATCH_MAX];
  pthread_mutex_lock(&l->lock);
  for (;;) {
    weft__pool_inbox_drain(l);
    if (worker_should_exit(l)) break;
    if (weft__list_empty(&l->queue) && atomic_load(&l->nspin) == 0) {
      /* one spinner per lane: more would steal the CPUs that the loop
       * thread and the busy workers need (2 cores) */
      spin_for_work(l); /* drops the lock: look at everything again */
      weft__pool_inbox_drain(l);
      if (worker_should_exit(l)) break;
    }
    if (weft__list_empty(&l->queue)) {
      idle_wait(l);
      continue;
    }
    int n = take_batch(l, batch);
    if (!weft__list_empty(&l->queue)) lane_signal(l); /* chain: the rest */
    pthread_mutex_unlock(&l->lock);
    run_batch(s->ctr, batch, n);
    atomic_fetch_sub_explicit(&l->running, (unsigned long long)n,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&l->done, (unsigned long long)n,
                              memory_order_relaxed);
    push_completions(batch, n);
    pthread_mutex_lock(&l->lock);
  }
  l->nthreads--; /* now, so that no other thread leaves for this one */
  if (l->nthreads < l->target) atomic_store(&l->spawn, true);
  pthread_mutex_unlock(&l->lock);
  if (s->hooks.on_stop != NULL)
    s->hooks.on_stop(lane_id, s->index, s->hooks.arg);
  pthread_mutex_lock(&l->lock);
  s->state = SLOT_EXITED;
  pthread_mutex_unlock(&l->lock);
  pool *g =
      weft__pool_g; /* alive: it is freed only after joining this thread */
  pthread_mutex_lock(&g->aux);
  if (--g->live == 0 && g->shut) weft__pool_shut_notify_all();
  pthread_mutex_unlock(&g->aux);
  return NULL;
}

/* Starts threads until the lane has its target. Lane lock held. Returns 0,
 * or -EAGAIN if none could be started and the lane has none. */
int weft__pool_lane_spawn(lane *l) {
  if (l->slots == NULL) {
    l->slots = weft__calloc(WEFT_POOL_MAX, sizeof *l->slots);
    if (l->slots == NULL) return -ENOMEM;
  }
  /* Every counter block before any thread: a lane's first start that
   * cannot make them all fails whole with -ENOMEM, so a caller never gets
   * a pool that quietly started fewer workers because memory ran out. A
   * later start (growth) goes on with the workers it could make. */
  for (unsigned i = 0, k = l->nthreads; i < WEFT_POOL_MAX && k < l->target;
       i++) {
    slot *s = &l->slots[i];
    if (s->state == SLOT_LIVE) continue;
    k++;
    if (s->ctr == NULL && (s->ctr = weft__calloc(1, sizeof *s->ctr)) == NULL) {
      if (l->nthreads == 0) return -ENOMEM;
      break;
    }
  }
  sigset_t all, old;
  sigfillset(&all);
  /* workers never take signals: those belong to the loops' threads */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = 0;
  for (int i = 0; i < WEFT_POOL_MAX && l->nthreads < l->target; i++) {
    slot *s = &l->slots[i];
    if (s->state == SLOT_LIVE) continue;
    if (s->state == SLOT_EXITED) pthread_join(s->tid, NULL);
    s->state = SLOT_EMPTY;
    if (s->ctr == NULL) { /* made above unless memory ran out there */
      err = ENOMEM;
      break;
    }
    s->l = l;
    s->index = (unsigned)i;
    pthread_mutex_lock(&weft__pool_g->aux);
    s->hooks = weft__pool_g->hooks;
    weft__pool_g->live++; /* before it can exit: it needs the lane lock first */
    pthread_mutex_unlock(&weft__pool_g->aux);
    err = pthread_create(&s->tid, NULL, worker_main, s);
    if (err != 0) {
      pthread_mutex_lock(&weft__pool_g->aux);
      weft__pool_g->live--;
      pthread_mutex_unlock(&weft__pool_g->aux);
      break;
    }
    s->state = SLOT_LIVE;
    l->nthreads++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  atomic_store(&l->spawn, l->nthreads < l->target);
  return l->nthreads == 0 ? (err ? -err : -EAGAIN) : 0;
}

/* After a push: wakes a worker unless one is spinning, none is idle or a
 * wake-up is on its way; the lock only when one is to be signalled (a
 * bulk submit mostly takes no lock at all). */
static void lane_wake(lane *l) {
  if (atomic_load(&l->nspin) != 0 || atomic_load(&l->nidle) == 0 ||
      atomic_load_explicit(&l->waking, memory_order_relaxed))
    return;
  pthread_mutex_lock(&l->lock);
  if (atomic_load(&l->nspin) == 0) lane_signal(l);
  pthread_mutex_unlock(&l->lock);
}

static void lane_init(lane *l, unsigned size) {
  pthread_mutex_init(&l->lock, NULL);
  pthread_cond_init(&l->cond, NULL);
  weft__list_init(&l->queue);
  atomic_init(&l->inbox, NULL);
  atomic_init(&l->qlen_hint, 0);
  atomic_init(&l->nidle, 0);
  atomic_init(&l->nspin, 0);
  atomic_init(&l->waking, false);
  atomic_init(&l->spawn, true);
  atomic_init(&l->closing, false);
  atomic_init(&l->running, 0);
  atomic_init(&l->done, 0);
  l->target = size;
}

/* Stops and joins every thread of the lane; its queue is empty by now
 * (each loop's teardown has delivered all its jobs). */
static void lane_destroy(lane *l) {
  pthread_mutex_lock(&l->lock);
  l->shutdown = true;
  pthread_cond_broadcast(&l->cond);
  for (int i = 0; l->slots != NULL && i < WEFT_POOL_MAX; i++) {
    if (l->slots[i].state == SLOT_EMPTY) continue;
    pthread_t tid = l->slots[i].tid;
    l->slots[i].state = SLOT_EMPTY;
    pthread_mutex_unlock(&l->lock); /* the thread needs it to exit */
    pthread_join(tid, NULL);
    pthread_mutex_lock(&l->lock);
  }
  pthread_mutex_unlock(&l->lock);
  for (int i = 0; l->slots != NULL && i < WEFT_POOL_MAX; i++)
    weft__free(l->slots[i].ctr);
  weft__free(l->slots);
  pthread_cond_destroy(&l->cond);
  pthread_mutex_destroy(&l->lock);
}

/* ---- the process-wide pool ---------------------------------------------- */

static int pool_acquire(unsigned want) {
  pthread_once(&g_once, default_size_init);
  if (want > WEFT_POOL_MAX) want = WEFT_POOL_MAX;
  pthread_mutex_lock(&g_lock);
  if (weft__pool_g == NULL) {
    weft__pool_g = weft__calloc(1, sizeof *weft__pool_g);
    if (weft__pool_g == NULL) {
      pthread_mutex_unlock(&g_lock);
      return -ENOMEM;
    }
    unsigned size = want ? want : g_default_size;
    for (int i = 0; i < WEFT_LANE_COUNT; i++)
      lane_init(&weft__pool_g->lanes[i], size);
    pthread_mutex_init(&weft__pool_g->aux, NULL);
  } else if (want != 0) {
    /* a loop asking for more threads grows the shared pool */
    for (int i = 0; i < WEFT_LANE_COUNT; i++) {
      lane *l = &weft__pool_g->lanes[i];
      pthread_mutex_lock(&l->lock);
      if (l->target < want) l->target = want;
      atomic_store(&l->spawn, l->nthreads < l->target);
      pthread_mutex_unlock(&l->lock);
    }
  }
  weft__pool_g->refs++;
  pthread_mutex_unlock(&g_lock);
  return 0;
}

static void pool_release(void) {
  pthread_mutex_lock(&g_lock);
  if (--weft__pool_g->refs == 0) {
    for (int i = 0; i < WEFT_LANE_COUNT; i++)
      lane_destroy(&weft__pool_g->lanes[i]);
    pthread_mutex_destroy(&weft__pool_g->aux);
    weft__free(weft__pool_g);
    weft__pool_g = NULL;
  }
  pthread_mutex_unlock(&g_lock);
}

/* ---- per-loop state: the completion queue -------------------------------- */

static void on_completions(struct ev_loop *ev, ev_async *a, int revents);

static void lstate_before_free(weft_loop *loop, void *arg, unsigned requests);

static void lstate_teardown(weft_loop *loop, void *arg) {
  pool_state *st = arg;
  WEFT__EV_STOP(async, loop, &st->async);
  pthread_cond_destroy(&st->cond);
  pthread_mutex_destroy(&st->lock);
  weft__free(st);
  pool_release();
}

/* This loop's pool state, created (and the pool acquired) on first use.
 * NULL with *err = -ENOMEM (or the pool's error) on failure. */
pool_state *weft__pool_state_get(weft_loop *loop, int *err) {
  pool_state *st = weft__module_get(loop, WEFT__MOD_POOL);
  if (WEFT__LIKELY(st != NULL)) return st;
  st = weft__calloc(1, sizeof *st);
  if (st == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  *err = pool_acquire(loop->pool_size);
  if (*err != 0) {
    weft__free(st);
    return NULL;
  }
  st->loop = loop;
  weft__list_init(&st->cq);
  weft__list_init(&st->out);
  pthread_mutex_init(&st->lock, NULL);
  pthread_cond_init(&st->cond, NULL);
  ev_async_init(&st->async, on_completions);
  st->async.data = st;
  /* needs no fd: libev's wake-up fd was made with the loop (core/loop.c) */
  WEFT__EV_START(async, loop,
                 &st->async); /* outstanding jobs keep the loop alive */
  weft__module_set(loop, WEFT__MOD_POOL, st, lstate_teardown);
  weft__module_set_before_free(loop, WEFT__MOD_POOL, lstate_before_free);
  return st;
}

/* Appends completed jobs (all of `st`'s loop, a local list that is left
 * empty) and wakes the loop unless a wake-up is already pending. The
 * ev_async_send happens under the lock so that the loop cannot be freed
 * between the push and the send. */
void weft__pool_cq_push(pool_state *st, weft__list *done) {
  pthread_mutex_lock(&st->lock);
  weft__list_splice_back(&st->cq, done);
  if (st->waiter) pthread_cond_signal(&st->cond);
  if (!st->armed) {
    st->armed = true;
    ev_async_send(st->loop->ev, &st->async);
    /* libev writes its wake-up pipe only while ev_run() polls: a host that
     * polls the backend fd itself is woken through weft's own fd */
    weft__loop_wake(st->loop);
  }
  pthread_mutex_unlock(&st->lock);
}

/* Groups a worker's batch by loop (order kept per loop) and pushes each
 * group with one lock. */
static void push_completions(weft_work **batch, int n) {
  for (int i = 0; i < n; i++) {
    if (batch[i] == NULL) continue;
    weft_loop *loop = batch[i]->loop;
    weft__list group;
    weft__list_init(&group);
    for (int j = i; j < n; j++) {
      if (batch[j] != NULL && batch[j]->loop == loop) {
        weft__list_insert(&group, qnode(batch[j]));
        batch[j] = NULL;
      }
    }
    weft__pool_cq_push(weft__module_get(loop, WEFT__MOD_POOL), &group);
  }
}

/* Runs the done callbacks of a taken batch (a local list, left empty). */
static void deliver(pool_state *st, weft__list *done) {
  for (weft__list *q; (q = weft__list_pop_front(done)) != NULL;) {
    weft_work *w = WORK_OF_Q(q);
    weft__list_unlink(lnode(w));
    st->outstanding--;
    weft__req_done(st->loop);
    w->done_cb(w, w->status); /* may free or resubmit w */
  }
}

/* Moves the whole completion queue to `out`; false if it was empty. */
static bool cq_take(pool_state *st, weft__list *out) {
  pthread_mutex_lock(&st->lock);
  weft__list_splice_back(out, &st->cq);
  pthread_mutex_unlock(&st->lock);
  return !weft__list_empty(out);
}

/* Drains whole batches; completions that arrive meanwhile are picked up
 * without another wake-up (armed stays set). After a few rounds it yields
 * to the rest of the loop and re-arms itself. */
static void on_completions(struct ev_loop *ev, ev_async *a, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  pool_state *st = a->data;
  weft__list done;
  weft__list_init(&done);
  for (int round = 0; round < DRAIN_ROUNDS && cq_take(st, &done); round++)
    deliver(st, &done);
  pthread_mutex_lock(&st->lock);
  bool shut = st->shut_done;
  st->shut_done = false;
  pthread_mutex_unlock(&st->lock);
  if (shut) weft__pool_shut_deliver(st);
  pthread_mutex_lock(&st->lock);
  /* a shutdown notice that came after shut_done was read above found
   * `armed` still set and sent nothing: it needs this wake-up too */
  if (!weft__list_empty(&st->cq) || st->shut_done) {
    ev_async_send(st->loop->ev, &st->async);
    weft__loop_wake(st->loop); /* see weft__pool_cq_push */
  } else {
    st->armed = false;
  }
  pthread_mutex_unlock(&st->lock);
}

/* ---- submit / cancel ---------------------------------------------------- */

/* A submit's slow path: starts the lane's threads (first use, a resize, an
 * earlier failure). Returns 0, -ESHUTDOWN or weft__pool_lane_spawn()'s error.
 */
static int lane_start(lane *l) {
  pthread_mutex_lock(&l->lock);
  int err = atomic_load(&l->closing) ? -ESHUTDOWN : 0;
  if (err == 0 && l->nthreads < l->target) err = weft__pool_lane_spawn(l);
  pthread_mutex_unlock(&l->lock);
  return err;
}

/* Takes `w` off the lane if it is still queued there (true). */
static bool withdraw(lane *l, weft_work *w) {
  pthread_mutex_lock(&l->lock);
  weft__pool_inbox_drain(l);
  bool queued = w->queued;
  if (queued) {
    weft__list_unlink(qnode(w));
    w->queued = 0;
    l->qlen--;
    atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
  }
  pthread_mutex_unlock(&l->lock);
  return queued;
}

int weft_work_submit(weft_loop *loop, weft_work *w, weft_pool_lane lane_id,
                     weft_work_fn work_fn, weft_work_done_cb done_cb) {
  if (loop == NULL || w == NULL || work_fn == NULL || done_cb == NULL ||
      (unsigned)lane_id >= WEFT_LANE_COUNT)
    return -EINVAL;
  int err = 0;
  pool_state *st = weft__pool_state_get(loop, &err);
  if (st == NULL) return err;
  if (st->closing) return -ESHUTDOWN;
  lane *l = &weft__pool_g->lanes[lane_id];
  w->loop = loop;
  w->work_fn = work_fn;
  w->done_cb = done_cb;
  w->lane = (unsigned char)lane_id;
  w->status = 0;
  atomic_store_explicit(&w->cancel, false, memory_order_relaxed);
  atomic_store_explicit(&w->state, W_QUEUED, memory_order_relaxed);
  if (WEFT__UNLIKELY(atomic_load(&l->closing))) err = -ESHUTDOWN;
  if (WEFT__UNLIKELY(err == 0 && atomic_load(&l->spawn))) err = lane_start(l);
  if (err == 0) {
    w->submit_ns = weft__pool_stamp(); /* a stamp, not ns (pool_clock.c) */
    w->queued = 1;
    inbox_push(l, w);
    /* a shutdown that began meanwhile either withdrew `w` already (it
     * completes) or sees it now; take it back if it is still ours */
    if (WEFT__UNLIKELY(atomic_load(&l->closing)) && withdraw(l, w))
      err = -ESHUTDOWN;
  }
  if (err != 0) {
    atomic_store(&w->state, W_IDLE);
    return err;
  }
  lane_wake(l);
  /* the loop's list of outstanding jobs: loop thread only */
  weft__list_push_front(&st->out, lnode(w));
  st->outstanding++;
  weft__req_start(loop);
  return 0;
}

/* Cancels one outstanding job (see weft_work_cancel()). */
static int cancel_job(pool_state *st, weft_work *w) {
  lane *l = &weft__pool_g->lanes[w->lane];
  pthread_mutex_lock(&l->lock);
  weft__pool_inbox_drain(l);
  if (w->queued) {
    weft__list_unlink(qnode(w));
    w->queued = 0;
    l->qlen--;
    atomic_fetch_add_explicit(&l->done, 1, memory_order_relaxed);
    atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
    atomic_store(&w->state, W_CANCELLED);
    pthread_mutex_unlock(&l->lock);
    w->status = -ECANCELED;
    weft__list one;
    weft__list_init(&one);
    weft__list_insert(&one, qnode(w));
    weft__pool_cq_push(st, &one);
    return 0;
  }
  pthread_mutex_unlock(&l->lock);
  int expected = W_QUEUED; /* taken by a worker that has not started it */
  if (atomic_compare_exchange_strong(&w->state, &expected, W_CANCELLED))
    return 0;
  if (expected == W_RUNNING) {
    atomic_store(&w->cancel, true);
    /* it may have finished meanwhile: then the flag is moot */
    return atomic_load(&w->state) == W_RUNNING ? -EBUSY : -EALREADY;
  }
  return -EALREADY;
}

int weft_work_cancel(weft_work *w) {
  if (w == NULL || w->loop == NULL) return -EINVAL;
  int state = atomic_load(&w->state);
  if (state == W_IDLE) return -EINVAL;
  if (state == W_DONE || state == W_CANCELLED) return -EALREADY;
  pool_state *st = weft__module_get(w->loop, WEFT__MOD_POOL);
  return cancel_job(st, w);
}

static void complete_now(void *arg) {
  weft_work *w = arg;
  w->done_cb(w, w->status); /* may free or resubmit w */
}

int weft__work_complete(weft_loop *loop, weft_work *w,
                        weft_work_done_cb done_cb) {
  int err = weft_call_soon(loop, complete_now, w);
  if (err != 0) return err;
  w->loop = loop;
  w->done_cb = done_cb;
  w->status = 0;
  atomic_store(&w->state, W_DONE);
  return 0;
}

bool weft_work_cancelled(void) {
  return t_current != NULL &&
         atomic_load_explicit(&t_current->cancel, memory_order_relaxed);
}

/* ---- loop teardown ------------------------------------------------------ */

/* The module's before-free hook (weft__module): when pool jobs are all the
 * loop's outstanding requests, cancels the queued ones, waits for the
 * running ones and runs every done callback. */
static void lstate_before_free(weft_loop *loop, void *arg, unsigned requests) {
  WEFT__UNUSED(loop);
  pool_state *st = arg;
  if (st->outstanding == 0 || st->outstanding != requests) return;
  st->closing = true;
  WEFT__LIST_FOREACH(n, &st->out) cancel_job(st, WORK_OF_L(n));
  weft__list done;
  weft__list_init(&done);
  while (st->outstanding != 0) {
    pthread_mutex_lock(&st->lock);
    while (weft__list_empty(&st->cq)) {
      st->waiter = true;
      pthread_cond_wait(&st->cond, &st->lock);
    }
    st->waiter = false;
    weft__list_splice_back(&done, &st->cq);
    pthread_mutex_unlock(&st->lock);
    deliver(st, &done);
  }
  st->closing = false;
}
