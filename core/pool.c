/* weft — the shared thread pool.
 *
 * One process-wide pool (g_pool), created when the first loop submits,
 * reference-counted by the loops that use it, and joined and freed when the
 * last of them is freed. Two lanes (cpu, io), each with its own queue, lock
 * and threads, so a saturated cpu lane never holds up file I/O.
 *
 * Hand-offs are where a 2-core VM loses its time (about 5 us per wake-up of
 * an idle thread), so both directions are batched:
 *  - submit wakes a worker only when none is spinning and no wake-up is
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
 * worker holds no lane lock while it pushes completions.
 *
 * The pool is ignorant of its users, as libuv's threadpool.c is: a job is a
 * weft_work with two functions, whatever embeds it (the future form in
 * promises/pool_future.c, file requests in io/fs.c) stays above. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

typedef struct lane lane;
typedef struct slot {
  pthread_t tid;
  lane *l;
  int state; /* lane lock */
  unsigned index;
  weft_pool_thread_hooks hooks; /* as when the thread started */
} slot;

struct lane {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  weft__list queue; /* queued jobs (qnode) */
  size_t qlen;
  atomic_size_t qlen_hint; /* qlen, for spinning workers (no lock) */
  unsigned target, nthreads, nidle, nspin;
  bool waking, shutdown;
  bool closing; /* weft_pool_shutdown: no submits; exit once the queue is
                   empty */
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

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pool *g_pool;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static unsigned g_default_size;
static _Thread_local weft_work *t_current;

static void default_size_init(void) {
  const char *env = getenv("WEFT_POOL_SIZE");
  long n = env ? strtol(env, NULL, 10) : 0;
  if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= 0) n = 4;
  g_default_size = n > WEFT_POOL_MAX ? WEFT_POOL_MAX : (unsigned)n;
}

/* ---- workers ------------------------------------------------------------ */

static void push_completions(weft_work **batch, int n);

/* Runs (or skips, if cancelled meanwhile) one job taken off the queue. */
static void run_job(weft_work *w) {
  int expected = W_QUEUED;
  if (atomic_compare_exchange_strong(&w->state, &expected, W_RUNNING)) {
    t_current = w;
    w->work_fn(w);
    t_current = NULL;
    w->status = 0;
    atomic_store_explicit(&w->state, W_DONE, memory_order_release);
  } else {
    w->status = -ECANCELED;
  }
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
  l->nspin++;
  pthread_mutex_unlock(&l->lock);
  for (int i = 0; i < SPIN_ROUNDS; i++) {
    if (atomic_load_explicit(&l->qlen_hint, memory_order_relaxed) != 0) break;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  pthread_mutex_lock(&l->lock);
  l->nspin--;
}

static void shut_notify_all(void);

static bool worker_should_exit(const lane *l) {
  return l->shutdown || l->nthreads > l->target ||
         (l->closing && weft__list_empty(&l->queue));
}

static void *worker_main(void *arg) {
  slot *s = arg;
  lane *l = s->l;
  weft_pool_lane lane_id = (weft_pool_lane)(l - g_pool->lanes);
  char name[16];
  snprintf(name, sizeof name, "weft-%s-%u",
           lane_id == WEFT_LANE_CPU ? "cpu" : "io", s->index);
  pthread_setname_np(pthread_self(), name);
  if (s->hooks.on_start != NULL)
    s->hooks.on_start(lane_id, s->index, s->hooks.arg);
  weft_work *batch[BATCH_MAX];
  pthread_mutex_lock(&l->lock);
  for (;;) {
    if (worker_should_exit(l)) break;
    if (weft__list_empty(&l->queue) && l->nspin == 0) {
      /* one spinner per lane: more would steal the CPUs that the loop
       * thread and the busy workers need (2 cores) */
      spin_for_work(l); /* drops the lock: look at everything again */
      if (worker_should_exit(l)) break;
    }
    if (weft__list_empty(&l->queue)) {
      l->nidle++;
      pthread_cond_wait(&l->cond, &l->lock);
      l->nidle--;
      l->waking = false;
      continue;
    }
    int n = take_batch(l, batch);
    if (!weft__list_empty(&l->queue) && l->nidle > 0 && !l->waking) {
      l->waking = true; /* chain: pass the rest on */
      pthread_cond_signal(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
    for (int i = 0; i < n; i++)
      run_job(batch[i]);
    atomic_fetch_sub_explicit(&l->running, (unsigned long long)n,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&l->done, (unsigned long long)n,
                              memory_order_relaxed);
    push_completions(batch, n);
    pthread_mutex_lock(&l->lock);
  }
  l->nthreads--; /* now, so that no other thread leaves for this one */
  pthread_mutex_unlock(&l->lock);
  if (s->hooks.on_stop != NULL)
    s->hooks.on_stop(lane_id, s->index, s->hooks.arg);
  pthread_mutex_lock(&l->lock);
  s->state = SLOT_EXITED;
  pthread_mutex_unlock(&l->lock);
  pool *g = g_pool; /* alive: it is freed only after joining this thread */
  pthread_mutex_lock(&g->aux);
  if (--g->live == 0 && g->shut) shut_notify_all();
  pthread_mutex_unlock(&g->aux);
  return NULL;
}

/* Starts threads until the lane has its target. Lane lock held. Returns 0,
 * or -EAGAIN if none could be started and the lane has none. */
static int lane_spawn(lane *l) {
  if (l->slots == NULL) {
    l->slots = weft__calloc(WEFT_POOL_MAX, sizeof *l->slots);
    if (l->slots == NULL) return -ENOMEM;
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
    s->l = l;
    s->index = (unsigned)i;
    pthread_mutex_lock(&g_pool->aux);
    s->hooks = g_pool->hooks;
    g_pool->live++; /* before it can exit: it needs the lane lock first */
    pthread_mutex_unlock(&g_pool->aux);
    err = pthread_create(&s->tid, NULL, worker_main, s);
    if (err != 0) {
      pthread_mutex_lock(&g_pool->aux);
      g_pool->live--;
      pthread_mutex_unlock(&g_pool->aux);
      break;
    }
    s->state = SLOT_LIVE;
    l->nthreads++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return l->nthreads == 0 ? (err ? -err : -EAGAIN) : 0;
}

/* Lane lock held. Never called after shutdown. */
static void lane_wake_one(lane *l) {
  if (l->nspin == 0 && l->nidle > 0 && !l->waking) {
    l->waking = true;
    pthread_cond_signal(&l->cond);
  }
}

static void lane_init(lane *l, unsigned size) {
  pthread_mutex_init(&l->lock, NULL);
  pthread_cond_init(&l->cond, NULL);
  weft__list_init(&l->queue);
  atomic_init(&l->qlen_hint, 0);
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
  weft__free(l->slots);
  pthread_cond_destroy(&l->cond);
  pthread_mutex_destroy(&l->lock);
}

/* ---- the process-wide pool ---------------------------------------------- */

static int pool_acquire(unsigned want) {
  pthread_once(&g_once, default_size_init);
  if (want > WEFT_POOL_MAX) want = WEFT_POOL_MAX;
  pthread_mutex_lock(&g_lock);
  if (g_pool == NULL) {
    g_pool = weft__calloc(1, sizeof *g_pool);
    if (g_pool == NULL) {
      pthread_mutex_unlock(&g_lock);
      return -ENOMEM;
    }
    unsigned size = want ? want : g_default_size;
    for (int i = 0; i < WEFT_LANE_COUNT; i++)
      lane_init(&g_pool->lanes[i], size);
    pthread_mutex_init(&g_pool->aux, NULL);
  } else if (want != 0) {
    /* a loop asking for more threads grows the shared pool */
    for (int i = 0; i < WEFT_LANE_COUNT; i++) {
      lane *l = &g_pool->lanes[i];
      pthread_mutex_lock(&l->lock);
      if (l->target < want) l->target = want;
      pthread_mutex_unlock(&l->lock);
    }
  }
  g_pool->refs++;
  pthread_mutex_unlock(&g_lock);
  return 0;
}

static void pool_release(void) {
  pthread_mutex_lock(&g_lock);
  if (--g_pool->refs == 0) {
    for (int i = 0; i < WEFT_LANE_COUNT; i++)
      lane_destroy(&g_pool->lanes[i]);
    pthread_mutex_destroy(&g_pool->aux);
    weft__free(g_pool);
    g_pool = NULL;
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
static pool_state *pool_state_get(weft_loop *loop, int *err) {
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
static void cq_push(pool_state *st, weft__list *done) {
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
    cq_push(weft__module_get(loop, WEFT__MOD_POOL), &group);
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
static void shut_deliver(pool_state *st);

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
  if (shut) shut_deliver(st);
  pthread_mutex_lock(&st->lock);
  if (!weft__list_empty(&st->cq)) {
    ev_async_send(st->loop->ev, &st->async);
    weft__loop_wake(st->loop); /* see cq_push */
  } else {
    st->armed = false;
  }
  pthread_mutex_unlock(&st->lock);
}

/* ---- submit / cancel ---------------------------------------------------- */

int weft_work_submit(weft_loop *loop, weft_work *w, weft_pool_lane lane_id,
                     weft_work_fn work_fn, weft_work_done_cb done_cb) {
  if (loop == NULL || w == NULL || work_fn == NULL || done_cb == NULL ||
      (unsigned)lane_id >= WEFT_LANE_COUNT)
    return -EINVAL;
  int err = 0;
  pool_state *st = pool_state_get(loop, &err);
  if (st == NULL) return err;
  if (st->closing) return -ESHUTDOWN;
  lane *l = &g_pool->lanes[lane_id];
  w->loop = loop;
  w->work_fn = work_fn;
  w->done_cb = done_cb;
  w->lane = (unsigned char)lane_id;
  w->status = 0;
  atomic_store_explicit(&w->cancel, false, memory_order_relaxed);
  atomic_store_explicit(&w->state, W_QUEUED, memory_order_relaxed);
  pthread_mutex_lock(&l->lock);
  if (WEFT__UNLIKELY(l->closing)) {
    pthread_mutex_unlock(&l->lock);
    atomic_store(&w->state, W_IDLE);
    return -ESHUTDOWN;
  }
  if (WEFT__UNLIKELY(l->nthreads < l->target)) {
    err = lane_spawn(l);
    if (err != 0) {
      pthread_mutex_unlock(&l->lock);
      atomic_store(&w->state, W_IDLE);
      return err;
    }
  }
  weft__list_init(qnode(w)); /* `w` is the caller's: its nodes hold anything */
  weft__list_push_back(&l->queue, qnode(w));
  w->queued = 1;
  l->qlen++;
  atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
  lane_wake_one(l);
  pthread_mutex_unlock(&l->lock);
  /* the loop's list of outstanding jobs: loop thread only */
  weft__list_push_front(&st->out, lnode(w));
  st->outstanding++;
  weft__req_start(loop);
  return 0;
}

/* Cancels one outstanding job (see weft_work_cancel()). */
static int cancel_job(pool_state *st, weft_work *w) {
  lane *l = &g_pool->lanes[w->lane];
  pthread_mutex_lock(&l->lock);
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
    cq_push(st, &one);
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

/* ---- size and stats ----------------------------------------------------- */

static int lane_resize(lane *l, unsigned n) {
  pthread_mutex_lock(&l->lock);
  if (l->closing) {
    pthread_mutex_unlock(&l->lock);
    return -ESHUTDOWN;
  }
  unsigned old = l->target;
  l->target = n;
  int err = 0;
  if (n > l->nthreads && l->nthreads != 0) {
    err = lane_spawn(l);
    if (l->nthreads < n) {
      l->target = l->nthreads > old ? l->nthreads : old;
      if (err == 0) err = -EAGAIN;
    }
  } else if (n < l->nthreads) {
    pthread_cond_broadcast(&l->cond); /* the extra ones exit */
  }
  pthread_mutex_unlock(&l->lock);
  return err;
}

int weft_pool_resize(weft_loop *loop, unsigned cpu, unsigned io) {
  if (loop == NULL || cpu > WEFT_POOL_MAX || io > WEFT_POOL_MAX) return -EINVAL;
  int err = 0;
  if (pool_state_get(loop, &err) == NULL) return err;
  if (cpu != 0) err = lane_resize(&g_pool->lanes[WEFT_LANE_CPU], cpu);
  if (err == 0 && io != 0) err = lane_resize(&g_pool->lanes[WEFT_LANE_IO], io);
  return err;
}

int weft_pool_get_stats(weft_loop *loop, weft_pool_lane lane_id,
                        weft_pool_stats *out) {
  if (loop == NULL || out == NULL || (unsigned)lane_id >= WEFT_LANE_COUNT)
    return -EINVAL;
  int err = 0;
  if (pool_state_get(loop, &err) == NULL) return err;
  lane *l = &g_pool->lanes[lane_id];
  pthread_mutex_lock(&l->lock);
  out->queued = l->qlen;
  out->running = atomic_load(&l->running);
  out->done = atomic_load(&l->done);
  out->threads = l->nthreads;
  out->target = l->target;
  pthread_mutex_unlock(&l->lock);
  return 0;
}

/* ---- thread hooks and shutdown ------------------------------------------ */

int weft_pool_set_thread_hooks(weft_loop *loop,
                               const weft_pool_thread_hooks *hooks) {
  if (loop == NULL) return -EINVAL;
  int err = 0;
  if (pool_state_get(loop, &err) == NULL) return err;
  pthread_mutex_lock(&g_pool->aux);
  g_pool->hooks = hooks != NULL ? *hooks : (weft_pool_thread_hooks){0};
  pthread_mutex_unlock(&g_pool->aux);
  return 0;
}

/* Wakes `st`'s loop to run its shutdown callback. Aux lock held. */
static void shut_notify(pool_state *st) {
  pthread_mutex_lock(&st->lock);
  st->shut_done = true;
  if (!st->armed) {
    st->armed = true;
    ev_async_send(st->loop->ev, &st->async);
    weft__loop_wake(st->loop); /* see cq_push */
  }
  pthread_mutex_unlock(&st->lock);
}

/* The last worker is gone: every waiting loop learns it. Aux lock held. */
static void shut_notify_all(void) {
  pool *g = g_pool;
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
    lane *l = &g_pool->lanes[i];
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

static void shut_deliver(pool_state *st) {
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
    cq_push(weft__module_get(w->loop, WEFT__MOD_POOL), &one);
  }
  atomic_store_explicit(&l->qlen_hint, l->qlen, memory_order_relaxed);
}

int weft__pool_shutdown(weft_loop *loop, bool cancel_queued,
                        void (*cb)(weft_loop *loop, void *arg), void *arg) {
  if (loop == NULL) return -EINVAL;
  int err = 0;
  pool_state *st = pool_state_get(loop, &err);
  if (st == NULL) return err;
  for (int i = 0; i < WEFT_LANE_COUNT; i++) {
    lane *l = &g_pool->lanes[i];
    pthread_mutex_lock(&l->lock);
    l->closing = true;
    if (cancel_queued) lane_cancel_queued(l);
    pthread_cond_broadcast(&l->cond); /* idle workers look again and leave */
    pthread_mutex_unlock(&l->lock);
  }
  pthread_mutex_lock(&g_pool->aux);
  g_pool->shut = true;
  if (cb != NULL) {
    bool waiting = st->shut_cb != NULL;
    st->shut_cb = cb;
    st->shut_arg = arg;
    if (!waiting) {
      weft__req_start(loop); /* the loop stays alive until it is told */
      if (g_pool->live == 0) {
        shut_notify(st);
      } else {
        st->shut_next = g_pool->shut_waits;
        g_pool->shut_waits = st;
      }
    }
  }
  pthread_mutex_unlock(&g_pool->aux);
  return 0;
}
