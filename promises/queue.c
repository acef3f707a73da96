/* weft — a bounded queue of void * between futures-driven tasks and
 * threads.
 *
 * One ring (a heap for PRIORITY) under the mutex `mu`, which threads and
 * the loop share directly: a thread's put pushes into it and a thread's get
 * pops from it under `mu`, so that thread to thread traffic never goes
 * through the loop.
 *
 * A thread that must block (get while empty, put while full) puts a
 * waiter on its own stack on a FIFO list (`tg`, `tp`) and sleeps on the
 * waiter's futex word. Whoever makes its wait over completes it under
 * `mu`, handing the item over directly (a put gives its item to the oldest
 * blocked getter; a get that frees a slot moves the oldest blocked put's
 * item into it), stores the result in the word and wakes it: the woken
 * thread returns without taking `mu` again, so a wake-up does not then
 * queue for the lock the waker is about to release (a mutex + condvar
 * queue wakes the waiter into that contention every time). Close completes
 * every waiter with WEFT_ECLOSED. Only a timed-out getter takes `mu` again,
 * to unlink itself if nobody completed it first. The futex wake comes
 * after the store and may reach a thread that has returned already and
 * reused that stack address for another futex wait: a spurious wake-up,
 * which every futex wait tolerates. `sleepers` (atomic) counts the
 * threads that may still touch the queue after they blocked, for
 * weft_queue_free's -EBUSY.
 *
 * The loop is involved only where a future must be settled, which happens
 * on its thread only:
 *  - loop getters (weft_queue_get while empty) and loop putters
 *    (weft_queue_put while full) wait on two wait lists, counted under `mu`
 *    (`lgetters`, `lputters`; their cancel hooks take `mu` to unlink and
 *    count down), so a thread sees whether a loop-side waiter is pending;
 *  - a thread's put while loop getters wait pushes the item and `claims`
 *    it for them (threads take only len - claimed items: a loop get is
 *    served before blocked threads), then posts one `serve` to the loop
 *    (at most one on its way), which hands the claimed items out;
 *  - a thread's get while loop putters wait reserves the freed slot
 *    (`reserved`: threads see the queue as full meanwhile) and posts a
 *    refill, which moves the oldest waiting put's item in.
 * Invariant: while lgetters > claimed, every item in the ring is claimed.
 * On the loop thread every operation ends in balance(), which serves the
 * loop getters from the ring, refills from the loop putters, then
 * completes the blocked threads that can go on. */
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define T_WAITING 1 /* a waiter's word until completed (results are <= 0) */

/* A blocked thread's place in line, on its own stack. */
typedef struct twaiter {
  struct twaiter *next;
  void *item;        /* a put's item, or the item handed to a get */
  atomic_int result; /* T_WAITING, then 0 or WEFT_ECLOSED; the futex word */
} twaiter;

typedef struct tlist {
  twaiter *head, *tail;
} tlist;

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
  uint64_t seq;                 /* next entry's number (under mu) */
  size_t unfinished;            /* items entered minus task_done (under mu) */
  weft__waitq joiners;          /* weft_queue_join futures (loop thread) */
  weft__waitq getters, putters; /* loop waiters (changed under mu) */
  pthread_mutex_t mu;
  tlist tg, tp;           /* threads blocked in get/put_threadsafe (under mu) */
  atomic_size_t sleepers; /* threads that blocked and have not returned */
  pthread_t owner;        /* the loop's thread: the one that made the queue */
  size_t len;             /* items in the ring (under mu) */
  size_t claimed;         /* ring items promised to loop getters (under mu) */
  size_t reserved;        /* free slots promised to loop putters (under mu) */
  size_t lgetters, lputters; /* lengths of getters, putters (under mu) */
  size_t posts;      /* serves and refills posted, not yet run (under mu) */
  bool serve_posted; /* a serve is on its way (under mu) */
  bool closed;       /* (under mu) */
};

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
  pthread_mutex_init(&q->mu, NULL);
  atomic_init(&q->sleepers, 0);
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

/* Under mu, len < cap: the item enters (one more unfinished task). */
static void ring_push(weft_queue *q, void *item) {
  qent e = {item, q->seq++};
  q->unfinished++;
  if (q->kind == WEFT_QUEUE_FIFO || q->kind == WEFT_QUEUE_LIFO) {
    size_t i = q->head + q->len;
    q->ring[i < q->cap ? i : i - q->cap] = e;
  } else {
    size_t i = q->len;
    while (i > 0 && before(q, &e, &q->ring[(i - 1) / 2])) {
      q->ring[i] = q->ring[(i - 1) / 2];
      i = (i - 1) / 2;
    }
    q->ring[i] = e;
  }
  q->len++;
}

/* Under mu, len != 0: the next item by the queue's kind. */
static void *ring_pop(weft_queue *q) {
  void *item;
  if (q->kind == WEFT_QUEUE_FIFO) {
    item = q->ring[q->head].item;
    if (++q->head == q->cap) q->head = 0;
    q->len--;
  } else if (q->kind == WEFT_QUEUE_LIFO) {
    size_t i = q->head + q->len - 1;
    item = q->ring[i < q->cap ? i : i - q->cap].item;
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

/* ---- the loop's wait lists ------------------------------------------------
 * weft__waitq lists whose cancel hook also keeps the counts that threads
 * read, under mu. */

static void wake_threads(weft_queue *q);

/* Cancel hook of a waiting get or put (loop thread). */
static void on_cancel(weft_future *f, void *arg) {
  weft_queue *q = arg;
  pthread_mutex_lock(&q->mu);
  bool found = false;
  if (weft__waitq_unlink(&q->getters, f)) {
    found = true;
    q->lgetters--;
    if (q->claimed > q->lgetters) q->claimed = q->lgetters;
  } else if (weft__waitq_unlink(&q->putters, f)) {
    found = true;
    q->lputters--;
  }
  if (found) wake_threads(q);
  pthread_mutex_unlock(&q->mu);
  if (found) weft_future_unref(f); /* the list's; the canceller holds one */
}

static void wait_push(weft_queue *q, weft__waitq *l, weft_future *f) {
  weft__waitq_push(l, weft_future_ref(f));
  f->u.hook.fn = on_cancel;
  f->u.hook.arg = q;
  if (l == &q->getters)
    q->lgetters++;
  else
    q->lputters++;
}

/* ---- blocked threads --------------------------------------------------- */

static long futex(atomic_int *word, int op, int val,
                  const struct timespec *ts) {
  return syscall(SYS_futex, (int *)word, op | FUTEX_PRIVATE_FLAG, val, ts, NULL,
                 FUTEX_BITSET_MATCH_ANY);
}

static void tl_push(tlist *l, twaiter *w) {
  w->next = NULL;
  if (l->tail != NULL)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
}

static twaiter *tl_pop(tlist *l) {
  twaiter *w = l->head;
  if (w != NULL && (l->head = w->next) == NULL) l->tail = NULL;
  return w;
}

static void tl_remove(tlist *l, twaiter *w) {
  twaiter *prev = NULL;
  for (twaiter *x = l->head; x != NULL; prev = x, x = x->next) {
    if (x != w) continue;
    if (prev != NULL)
      prev->next = x->next;
    else
      l->head = x->next;
    if (l->tail == x) l->tail = prev;
    return;
  }
}

/* Under mu: completes a waiter popped from its list. The store is the
 * waiter's last sight of the queue's state; the wake may come after it has
 * returned (see the top of the file). */
static void t_complete(twaiter *w, int result) {
  atomic_store_explicit(&w->result, result, memory_order_release);
  futex(&w->result, FUTEX_WAKE, 1, NULL);
}

/* Under mu: the item goes to the oldest blocked getter; false if none is
 * blocked. `entering`: a put's item, which enters the queue and leaves at
 * once (one more unfinished task), rather than one from the ring. */
static bool hand_to_thread(weft_queue *q, void *item, bool entering) {
  twaiter *w = tl_pop(&q->tg);
  if (w == NULL) return false;
  if (entering) {
    q->seq++;
    q->unfinished++;
  }
  w->item = item;
  t_complete(w, 0);
  return true;
}

/* Under mu: a slot is free and no loop put waits for it: the oldest blocked
 * put's item takes it (to a blocked getter if one waits). */
static bool take_from_thread(weft_queue *q) {
  twaiter *w = tl_pop(&q->tp);
  if (w == NULL) return false;
  if (!hand_to_thread(q, w->item, true)) ring_push(q, w->item);
  t_complete(w, 0);
  return true;
}

/* Under mu: completes the blocked threads that may go on now. */
static void wake_threads(weft_queue *q) {
  while (q->tg.head != NULL && q->len > q->claimed)
    hand_to_thread(q, ring_pop(q), false);
  while (q->tp.head != NULL && q->lputters == 0 &&
         q->len + q->reserved < q->cap)
    take_from_thread(q);
}

/* Blocks the calling thread, which holds mu and has just pushed w on l,
 * until completed or the deadline (until, or none). Returns with mu
 * released: the result, or T_WAITING if it timed out first (w is then
 * unlinked). */
static int t_sleep(weft_queue *q, tlist *l, twaiter *w,
                   const struct timespec *until) {
  atomic_fetch_add_explicit(&q->sleepers, 1, memory_order_relaxed);
  pthread_mutex_unlock(&q->mu);
  int rc;
  while ((rc = atomic_load_explicit(&w->result, memory_order_acquire)) ==
         T_WAITING) {
    if (futex(&w->result, FUTEX_WAIT_BITSET, T_WAITING, until) != 0 &&
        errno == ETIMEDOUT) {
      pthread_mutex_lock(&q->mu);
      rc = atomic_load_explicit(&w->result, memory_order_acquire);
      if (rc == T_WAITING) tl_remove(l, w);
      pthread_mutex_unlock(&q->mu);
      break;
    }
  }
  /* the last touch of q: weft_queue_free may go on after it */
  atomic_fetch_sub_explicit(&q->sleepers, 1, memory_order_release);
  return rc;
}

/* Loop thread, under mu: waiting gets take the ring's items (oldest get
 * first), waiting puts fill the free slots (oldest first), then blocked
 * threads are woken if they can go on. */
static void balance(weft_queue *q) {
  for (;;) {
    if (q->len != 0 && q->lgetters != 0) {
      weft_future *g = weft__waitq_pop(&q->getters);
      q->lgetters--;
      /* listed getters are pending (a cancel unlinks them); checked all
       * the same, so that an item is never lost */
      if (g->state == WEFT_FUTURE_PENDING)
        weft_future_resolve(g, ring_pop(q), NULL);
      weft_future_unref(g);
    } else if (q->lputters != 0 && q->len + q->reserved < q->cap) {
      weft_future *p = weft__waitq_pop(&q->putters);
      q->lputters--;
      if (p->state == WEFT_FUTURE_PENDING) {
        ring_push(q, p->v.p);
        weft_future_resolve_i64(p, 0);
      }
      weft_future_unref(p);
    } else {
      break;
    }
  }
  q->claimed = 0; /* no getter waits, or no item is left */
  wake_threads(q);
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
  } else {
    balance(q);
    if (q->lputters == 0 && q->len + q->reserved < q->cap) {
      ring_push(q, item);
      weft_future_resolve_i64(f, 0);
      balance(q);
    } else {
      f->v.p = item; /* a pending future's value field is free */
      wait_push(q, &q->putters, f);
    }
  }
  pthread_mutex_unlock(&q->mu);
  if (err != 0)
    weft_future_unref(f);
  else
    *out = f;
  return err;
}

int weft_queue_get(weft_queue *q, weft_future **out) {
  if (q == NULL || out == NULL) return -EINVAL;
  weft_future *f;
  int err = weft__future_alloc(q->loop, WEFT__K_PLAIN, &f);
  if (err != 0) return err;
  pthread_mutex_lock(&q->mu);
  balance(q); /* older gets first */
  if (q->len != 0) {
    weft_future_resolve(f, ring_pop(q), NULL);
    balance(q);
  } else if (q->closed) {
    err = WEFT_ECLOSED;
  } else {
    wait_push(q, &q->getters, f);
  }
  pthread_mutex_unlock(&q->mu);
  if (err != 0)
    weft_future_unref(f);
  else
    *out = f;
  return err;
}

int weft_queue_try_put(weft_queue *q, void *item) {
  if (q == NULL) return -EINVAL;
  int err = 0;
  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    err = WEFT_ECLOSED;
  } else {
    balance(q);
    if (q->lputters == 0 && q->len + q->reserved < q->cap) {
      ring_push(q, item);
      balance(q);
    } else {
      err = -EAGAIN;
    }
  }
  pthread_mutex_unlock(&q->mu);
  return err;
}

int weft_queue_try_get(weft_queue *q, void **item) {
  if (q == NULL || item == NULL) return -EINVAL;
  int err = 0;
  pthread_mutex_lock(&q->mu);
  balance(q);
  if (q->len != 0) {
    *item = ring_pop(q);
    balance(q);
  } else {
    err = q->closed ? WEFT_ECLOSED : -EAGAIN;
  }
  pthread_mutex_unlock(&q->mu);
  return err;
}

/* ---- threads ----------------------------------------------------------- */

/* Loop thread: a thread's put claimed items for the loop's getters, or a
 * thread's get reserved a slot for its putters. */
static void serve_cb(void *arg) {
  weft_queue *q = arg;
  pthread_mutex_lock(&q->mu);
  q->posts--;
  q->serve_posted = false;
  balance(q);
  pthread_mutex_unlock(&q->mu);
}

static void refill_cb(void *arg) {
  weft_queue *q = arg;
  pthread_mutex_lock(&q->mu);
  q->posts--;
  q->reserved--;
  balance(q);
  pthread_mutex_unlock(&q->mu);
}

int weft_queue_put_threadsafe(weft_queue *q, void *item) {
  if (q == NULL) return -EINVAL;
  int err = 0;
  pthread_mutex_lock(&q->mu);
  if (q->closed) {
    err = WEFT_ECLOSED;
  } else if (q->lgetters > q->claimed) {
    /* a get waits on the loop: the item is its (the ring holds claimed
     * items only); the serve is posted first, so that if it cannot be the
     * item stays the caller's */
    if (!q->serve_posted) {
      err = weft_call_soon_threadsafe(q->loop, serve_cb, q);
      if (err == 0) {
        q->serve_posted = true;
        q->posts++;
      }
    }
    if (err == 0) {
      ring_push(q, item);
      q->claimed++;
    }
  } else if (hand_to_thread(q, item, true)) {
    /* a blocked thread had it */
  } else if (q->len + q->reserved < q->cap && q->tp.head == NULL) {
    ring_push(q, item);
  } else {
    twaiter w = {.item = item};
    atomic_init(&w.result, T_WAITING);
    tl_push(&q->tp, &w);
    return t_sleep(q, &q->tp, &w, NULL); /* no deadline: never times out */
  }
  pthread_mutex_unlock(&q->mu);
  return err;
}

int weft_queue_get_threadsafe(weft_queue *q, void **item, int64_t timeout_ms) {
  if (q == NULL || item == NULL || timeout_ms < -1) return -EINVAL;
  if (pthread_equal(q->owner, pthread_self())) return -EDEADLK;
  struct timespec until =
      timeout_ms > 0 ? weft__deadline_after(timeout_ms) : (struct timespec){0};
  int err = 0;
  pthread_mutex_lock(&q->mu);
  if (q->len > q->claimed) {
    if (q->lputters > q->reserved) {
      /* a put waits on the loop: the slot is its; the refill is posted
       * first, so that if it cannot be the item stays */
      err = weft_call_soon_threadsafe(q->loop, refill_cb, q);
      if (err == 0) {
        q->posts++;
        q->reserved++;
        *item = ring_pop(q);
      }
    } else {
      *item = ring_pop(q);
      take_from_thread(q);
    }
  } else if (q->closed) {
    err = WEFT_ECLOSED;
  } else if (timeout_ms == 0) {
    err = -ETIMEDOUT;
  } else {
    twaiter w = {.item = NULL};
    atomic_init(&w.result, T_WAITING);
    tl_push(&q->tg, &w);
    err = t_sleep(q, &q->tg, &w, timeout_ms < 0 ? NULL : &until);
    if (err == 0) *item = w.item;
    /* timed out uncompleted: the queue was empty for this thread all along,
     * or an item would have been handed to it */
    return err == T_WAITING ? -ETIMEDOUT : err;
  }
  pthread_mutex_unlock(&q->mu);
  return err;
}

/* ---- close, free, counts ------------------------------------------------- */

int weft_queue_close(weft_queue *q) {
  if (q == NULL) return -EINVAL;
  pthread_mutex_lock(&q->mu);
  bool was = q->closed;
  if (!was) balance(q); /* items promised to waiting gets are theirs */
  q->closed = true;
  weft__waitq getters = q->getters, putters = q->putters;
  q->getters = q->putters = (weft__waitq){0};
  q->lgetters = q->lputters = q->claimed = 0;
  for (twaiter *w; (w = tl_pop(&q->tp)) != NULL;)
    t_complete(w, WEFT_ECLOSED); /* the item stays the caller's */
  /* after balance(), a blocked getter means an empty queue */
  for (twaiter *w; (w = tl_pop(&q->tg)) != NULL;)
    t_complete(w, WEFT_ECLOSED);
  pthread_mutex_unlock(&q->mu);
  if (was) return -EALREADY;
  weft__waitq_fail_all(&getters, WEFT_ECLOSED);
  weft__waitq_fail_all(&putters, WEFT_ECLOSED);
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
  size_t on_way = q->posts + atomic_load(&q->sleepers);
  pthread_mutex_unlock(&q->mu);
  if (on_way != 0) return -EBUSY;
  weft_queue_close(q);
  weft__waitq_fail_all(&q->joiners, WEFT_ECLOSED);
  while (q->len != 0) {
    void *item = ring_pop(q);
    if (q->dtor != NULL) q->dtor(item);
  }
  pthread_mutex_destroy(&q->mu);
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
