/* weft — a bounded queue of void * between futures-driven tasks, which
 * worker threads can feed.
 *
 * The loop side is a ring plus two wait lists (getters while empty,
 * putters while full). Threads reserve a slot under `mu` (blocking on
 * `space` while the queue and the items already on their way fill it),
 * then post the item to the loop, where it lands in the reserved slot or
 * goes straight to a waiting getter. `len` and `reserved` change only
 * under `mu`, so a thread's room check sees what the loop sees.
 *
 * Threads also take from it (weft_queue_get_threadsafe): under `mu` they
 * pop the ring directly (blocking on `items` while it is empty) and post
 * a refill to the loop, which moves the oldest waiting put's item into the
 * freed slot (futures are settled on the loop thread only), or else wakes
 * a thread blocked in put_threadsafe. Loop getters are served before
 * blocked threads: an item put while a loop get waits goes to that get. */
#include <pthread.h>
#include <time.h>

#include "internal.h"

typedef struct qent {
  void *item;
  uint64_t seq; /* entry order: ties of a priority queue */
} qent;

struct weft_queue {
  weft_loop *loop;
  qent *ring; /* FIFO/LIFO: a ring from head; PRIORITY: a heap (head 0) */
  size_t cap, head;
  weft_dtor dtor;
  weft_queue_kind kind;
  weft_queue_cmp cmp;
  uint64_t seq;        /* next entry's number (under mu) */
  size_t unfinished;   /* items entered minus task_done (under mu) */
  weft__waitq joiners; /* weft_queue_join futures (loop thread) */
  weft__waitq getters, putters;
  pthread_mutex_t mu;
  pthread_cond_t space;
  pthread_cond_t items; /* threads in weft_queue_get_threadsafe (monotonic) */
  pthread_t owner;      /* the loop's thread: the one that made the queue */
  size_t len;           /* items in the ring (under mu) */
  size_t reserved;      /* thread items on their way (under mu) */
  size_t posts;    /* refills posted by thread gets, not yet run (under mu) */
  size_t tgetters; /* threads blocked in get_threadsafe (under mu) */
  bool closed;     /* (under mu) */
};

typedef struct ts_item {
  weft_queue *q;
  void *item;
} ts_item;

int weft_queue_new_ex(weft_loop *loop, size_t capacity, weft_dtor dtor,
                      weft_queue_kind kind, weft_queue_cmp cmp,
                      weft_queue **out) {
  if (loop == NULL || out == NULL || capacity == 0 ||
      capacity > SIZE_MAX / sizeof(qent))
    return -EINVAL;
  bool ordered = kind == WEFT_QUEUE_FIFO || kind == WEFT_QUEUE_LIFO;
  if (kind == WEFT_QUEUE_PRIORITY ? cmp == NULL : !ordered || cmp != NULL)
    return -EINVAL;
  weft_queue *q = weft__calloc(1, sizeof *q);
  if (q == NULL) return -ENOMEM;
  q->ring = weft__malloc(capacity * sizeof *q->ring);
  if (q->ring == NULL) {
    weft__free(q);
    return -ENOMEM;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->space, NULL);
  pthread_cond_init(&q->items, &ca);
  pthread_condattr_destroy(&ca);
  q->owner = pthread_self();
  q->loop = loop;
  q->cap = capacity;
  q->dtor = dtor;
  q->kind = kind;
  q->cmp = cmp;
  *out = q;
  return 0;
}

int weft_queue_new(weft_loop *loop, size_t capacity, weft_dtor dtor,
                   weft_queue **out) {
  return weft_queue_new_ex(loop, capacity, dtor, WEFT_QUEUE_FIFO, NULL, out);
}

/* Heap order: a before b (smaller by cmp, else entered first). */
static bool before(const weft_queue *q, const qent *a, const qent *b) {
  int c = q->cmp(a->item, b->item);
  return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Under mu: the item enters (one more unfinished task); a thread blocked
 * in get_threadsafe may take it. */
static void ring_push(weft_queue *q, void *item) {
  qent e = {item, q->seq++};
  q->unfinished++;
  if (q->kind != WEFT_QUEUE_PRIORITY) {
    q->ring[(q->head + q->len) % q->cap] = e;
  } else {
    size_t i = q->len;
    while (i > 0 && before(q, &e, &q->ring[(i - 1) / 2])) {
      q->ring[i] = q->ring[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    q->ring[i] = e;
  }
  q->len++;
  if (q->tgetters != 0) pthread_cond_signal(&q->items);
}

/* Under mu, len != 0: the next item by the queue's kind. */
static void *ring_pop(weft_queue *q) {
  void *item;
  if (q->kind == WEFT_QUEUE_FIFO) {
    item = q->ring[q->head].item;
    q->head = (q->head + 1) % q->cap;
    q->len--;
  } else if (q->kind == WEFT_QUEUE_LIFO) {
    item = q->ring[(q->head + q->len - 1) % q->cap].item;
    q->len--;
  } else {
    item = q->ring[0].item;
    qent last = q->ring[--q->len];
    size_t i = 0, n = q->len;
    for (;;) {
      size_t c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && before(q, &q->ring[c + 1], &q->ring[c])) c++;
      if (!before(q, &q->ring[c], &last)) break;
      q->ring[i] = q->ring[c];
      i = c;
    }
    if (n != 0) q->ring[i] = last;
  }
  return item;
}

/* Gives item to the oldest pending getter (it enters the queue and leaves
 * at once: one more unfinished task); false if there is none. */
static bool hand_to_getter(weft_queue *q, void *item) {
  for (weft_future *g; (g = weft__waitq_pop(&q->getters)) != NULL;) {
    int err = weft_future_resolve(g, item, NULL);
    weft_future_unref(g);
    if (err == 0) {
      q->seq++;
      q->unfinished++;
      return true;
    }
  }
  return false;
}

/* The future is drawn first, so that a failure leaves the item with the
 * caller and the queue untouched. */
int weft_queue_put(weft_queue *q, void *item, weft_future **out) {
  if (q == NULL || out == NULL) return -EINVAL;
  weft_future *f;
  int err = weft__future_alloc(q->loop, WEFT__K_PLAIN, &f);
  if (err != 0) return err;
  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    err = WEFT_ECLOSED;
  } else if (hand_to_getter(q, item)) {
    weft_future_resolve_i64(f, 0);
  } else if (q->len + q->reserved < q->cap) {
    ring_push(q, item);
    weft_future_resolve_i64(f, 0);
  } else {
    f->v.p = item; /* a pending future's value field is free */
    weft__waitq_push(&q->putters, weft_future_ref(f));
  }
  pthread_mutex_unlock(&q->mu);
  if (err != 0)
    weft_future_unref(f);
  else
    *out = f;
  return err;
}

/* A slot was freed: the oldest waiting putter takes it, else a thread. */
static void refill(weft_queue *q) {
  for (weft_future *p; (p = weft__waitq_pop(&q->putters)) != NULL;) {
    void *item = p->v.p;
    int err = weft_future_resolve_i64(p, 0);
    weft_future_unref(p);
    if (err == 0) {
      ring_push(q, item);
      return;
    }
  }
  pthread_cond_signal(&q->space);
}

int weft_queue_get(weft_queue *q, weft_future **out) {
  if (q == NULL || out == NULL) return -EINVAL;
  weft_future *f;
  int err = weft__future_alloc(q->loop, WEFT__K_PLAIN, &f);
  if (err != 0) return err;
  pthread_mutex_lock(&q->mu);
  if (q->len != 0) {
    weft_future_resolve(f, ring_pop(q), NULL);
    refill(q);
  } else if (q->closed) {
    err = WEFT_ECLOSED;
  } else {
    weft__waitq_push(&q->getters, weft_future_ref(f));
  }
  pthread_mutex_unlock(&q->mu);
  if (err != 0)
    weft_future_unref(f);
  else
    *out = f;
  return err;
}

static void ts_arrive(void *arg) {
  ts_item *m = arg;
  weft_queue *q = m->q;
  pthread_mutex_lock(&q->mu);
  q->reserved--;
  if (hand_to_getter(q, m->item))
    pthread_cond_signal(&q->space);
  else
    ring_push(q, m->item); /* its slot was reserved */
  pthread_mutex_unlock(&q->mu);
  weft__free(m);
}

static void unreserve(weft_queue *q) {
  pthread_mutex_lock(&q->mu);
  q->reserved--;
  pthread_cond_signal(&q->space);
  pthread_mutex_unlock(&q->mu);
}

int weft_queue_put_threadsafe(weft_queue *q, void *item) {
  if (q == NULL) return -EINVAL;
  ts_item *m = weft__malloc(sizeof *m);
  if (m == NULL) return -ENOMEM;
  m->q = q;
  m->item = item;
  pthread_mutex_lock(&q->mu);
  while (!q->closed && q->len + q->reserved >= q->cap)
    pthread_cond_wait(&q->space, &q->mu);
  bool closed = q->closed;
  if (!closed) q->reserved++;
  pthread_mutex_unlock(&q->mu);
  int err =
      closed ? WEFT_ECLOSED : weft_call_soon_threadsafe(q->loop, ts_arrive, m);
  if (err != 0) {
    if (!closed) unreserve(q);
    weft__free(m);
  }
  return err;
}

int weft_queue_close(weft_queue *q) {
  if (q == NULL) return -EINVAL;
  pthread_mutex_lock(&q->mu);
  bool was = q->closed;
  q->closed = true;
  pthread_cond_broadcast(&q->space);
  pthread_cond_broadcast(&q->items);
  pthread_mutex_unlock(&q->mu);
  if (was) return -EALREADY;
  weft__waitq_fail_all(&q->getters, WEFT_ECLOSED);
  weft__waitq_fail_all(&q->putters, WEFT_ECLOSED);
  return 0;
}

int weft_queue_task_done(weft_queue *q) {
  if (q == NULL) return -EINVAL;
  if (!pthread_equal(q->owner, pthread_self())) return -EPERM;
  pthread_mutex_lock(&q->mu);
  int err = 0;
  bool zero = false;
  if (q->unfinished == 0)
    err = -EOVERFLOW;
  else
    zero = --q->unfinished == 0;
  pthread_mutex_unlock(&q->mu);
  if (zero)
    while (weft__waitq_wake(&q->joiners)) {
    }
  return err;
}

int weft_queue_join(weft_queue *q, weft_future **out) {
  if (q == NULL || out == NULL) return -EINVAL;
  if (!pthread_equal(q->owner, pthread_self())) return -EPERM;
  pthread_mutex_lock(&q->mu);
  size_t n = q->unfinished;
  pthread_mutex_unlock(&q->mu);
  if (n == 0) return weft__future_done(q->loop, out);
  return weft__waitq_add(q->loop, &q->joiners, out);
}

size_t weft_queue_unfinished(const weft_queue *q) {
  if (q == NULL) return 0;
  pthread_mutex_lock((pthread_mutex_t *)&q->mu);
  size_t n = q->unfinished;
  pthread_mutex_unlock((pthread_mutex_t *)&q->mu);
  return n;
}

int weft_queue_free(weft_queue *q) {
  if (q == NULL) return -EINVAL;
  pthread_mutex_lock(&q->mu);
  size_t on_way = q->reserved + q->posts + q->tgetters;
  pthread_mutex_unlock(&q->mu);
  if (on_way != 0) return -EBUSY;
  weft_queue_close(q);
  weft__waitq_fail_all(&q->joiners, WEFT_ECLOSED);
  while (q->len != 0) {
    void *item = ring_pop(q);
    if (q->dtor != NULL) q->dtor(item);
  }
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->space);
  pthread_cond_destroy(&q->items);
  weft__free(q->ring);
  weft__free(q);
  return 0;
}

size_t weft_queue_len(const weft_queue *q) {
  if (q == NULL) return 0;
  pthread_mutex_lock((pthread_mutex_t *)&q->mu);
  size_t n = q->len;
  pthread_mutex_unlock((pthread_mutex_t *)&q->mu);
  return n;
}

/* Loop thread: a thread's get freed a slot. */
static void refill_cb(void *arg) {
  weft_queue *q = arg;
  pthread_mutex_lock(&q->mu);
  q->posts--;
  if (q->len + q->reserved < q->cap) refill(q);
  pthread_mutex_unlock(&q->mu);
}

int weft_queue_get_threadsafe(weft_queue *q, void **item, int64_t timeout_ms) {
  if (q == NULL || item == NULL || timeout_ms < -1) return -EINVAL;
  if (pthread_equal(q->owner, pthread_self())) return -EDEADLK;
  struct timespec until =
      timeout_ms > 0 ? weft__deadline_after(timeout_ms) : (struct timespec){0};
  int err;
  bool timed_out = timeout_ms == 0;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    if (q->len != 0) {
      /* the refill is posted first: if it cannot be, the item stays */
      q->posts++;
      err = weft_call_soon_threadsafe(q->loop, refill_cb, q);
      if (err != 0)
        q->posts--;
      else
        *item = ring_pop(q);
      break;
    }
    if (q->closed) {
      err = WEFT_ECLOSED;
      break;
    }
    if (timed_out) {
      err = -ETIMEDOUT;
      break;
    }
    q->tgetters++;
    if (timeout_ms < 0)
      pthread_cond_wait(&q->items, &q->mu);
    else if (pthread_cond_timedwait(&q->items, &q->mu, &until) == ETIMEDOUT)
      timed_out = true;
    q->tgetters--;
  }
  pthread_mutex_unlock(&q->mu);
  return err;
}

int weft_queue_try_put(weft_queue *q, void *item) {
  if (q == NULL) return -EINVAL;
  int err = 0;
  pthread_mutex_lock(&q->mu);
  if (q->closed)
    err = WEFT_ECLOSED;
  else if (hand_to_getter(q, item))
    err = 0;
  else if (q->len + q->reserved < q->cap)
    ring_push(q, item);
  else
    err = -EAGAIN;
  pthread_mutex_unlock(&q->mu);
  return err;
}

int weft_queue_try_get(weft_queue *q, void **item) {
  if (q == NULL || item == NULL) return -EINVAL;
  int err = 0;
  pthread_mutex_lock(&q->mu);
  if (q->len != 0) {
    *item = ring_pop(q);
    refill(q);
  } else {
    err = q->closed ? WEFT_ECLOSED : -EAGAIN;
  }
  pthread_mutex_unlock(&q->mu);
  return err;
}
