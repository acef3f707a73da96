/* weft — settling a future from another thread.
 *
 * The settle travels to the loop as a small message through
 * weft_call_soon_threadsafe(); the future itself is only touched on the
 * loop thread. The message carries the reference the caller handed over,
 * so the future cannot be freed while the message is in flight.
 *
 * Messages are recycled, so that a settle allocates nothing once the loop
 * has as many as are in flight at once (DESIGN.md rule 4):
 *  - every message of a loop is on the loop's `ts_all` list (pushed once,
 *    when it is made; the loop's teardown frees them all, wherever they
 *    are);
 *  - the loop, having applied one, pushes it on the loop's `ts_back`
 *    stack (only the loop thread pushes there);
 *  - a posting thread takes messages from its own thread-local cache,
 *    keyed by the loop's address and creation id; when that is empty it
 *    takes the whole `ts_back` stack at once (an exchange, so no ABA), and
 *    only when that is empty too it allocates.
 * A thread's cache of a loop that is gone is recognised by the id and
 * forgotten (its messages went with the loop). */
#include "internal.h"

#define TS_CACHE 4

typedef struct weft__tsnode {
  struct weft__tsnode *next; /* a cache, or the loop's ts_back stack */
  struct weft__tsnode *all;  /* the loop's ts_all list */
  weft_future *f;
  union {
    void *p;
    int64_t i;
  } v;
  weft_dtor dtor;
  int what; /* 0 pointer, 1 int64, 2 rejection */
} ts_node;

static _Thread_local struct {
  weft_loop *loop;
  uint64_t id;
  ts_node *free;
} cache[TS_CACHE];
static _Thread_local unsigned cache_next;

/* Loop teardown: every message of the loop (none is in flight: the loop is
 * not freed while posts are queued). */
static void ts_teardown(weft__fmod *m) {
  ts_node *n = atomic_exchange(&m->ts_all, NULL);
  while (n != NULL) {
    ts_node *nx = n->all;
    weft__free(n);
    n = nx;
  }
  atomic_store(&m->ts_back, NULL);
}

static void ts_apply(void *arg) {
  ts_node *n = arg;
  weft_future *f = n->f;
  int err;
  if (n->what == 0)
    err = weft_future_resolve(f, n->v.p, n->dtor);
  else if (n->what == 1)
    err = weft_future_resolve_i64(f, n->v.i);
  else
    err = weft_future_reject(f, (int)n->v.i);
  if (err != 0 && n->what == 0 && n->dtor != NULL) n->dtor(n->v.p);
  weft__fmod *m = weft__fmod_get(f->loop);
  weft_future_unref(f);
  /* back to the posting threads: a push by the only pusher */
  n->next = atomic_load_explicit(&m->ts_back, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(
      &m->ts_back, &n->next, n, memory_order_release, memory_order_relaxed)) {
  }
}

/* The calling thread's cache slot for loop, claimed if it has none. */
static unsigned slot_of(weft_loop *loop) {
  for (unsigned i = 0; i < TS_CACHE; i++)
    if (cache[i].loop == loop && cache[i].id == loop->x_id) return i;
  unsigned i = cache_next++ % TS_CACHE;
  cache[i].loop = loop;
  cache[i].id = loop->x_id;
  cache[i].free = NULL; /* another loop's, or a freed loop's: forgotten */
  return i;
}

static ts_node *node_get(weft_loop *loop, unsigned slot) {
  ts_node *n = cache[slot].free;
  weft__fmod *m = weft__fmod_get(loop);
  if (n == NULL)
    n = atomic_exchange_explicit(&m->ts_back, NULL, memory_order_acquire);
  if (n != NULL) {
    cache[slot].free = n->next;
    return n;
  }
  n = weft__malloc(sizeof *n);
  if (n == NULL) return NULL;
  atomic_store(&m->ts_teardown, ts_teardown);
  n->all = atomic_load_explicit(&m->ts_all, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(
      &m->ts_all, &n->all, n, memory_order_release, memory_order_relaxed)) {
  }
  return n;
}

static int ts_post(weft_future *f, int what, void *p, int64_t i,
                   weft_dtor dtor) {
  if (f == NULL) return -EINVAL;
  /* f->loop and the loop's futures module were written on the loop thread
   * before f was handed over */
  weft_loop *loop = f->loop;
  if (atomic_load_explicit(&loop->x_closed, memory_order_acquire))
    return -ESHUTDOWN;
  unsigned slot = slot_of(loop);
  ts_node *n = node_get(loop, slot);
  if (n == NULL) return -ENOMEM;
  n->f = f;
  if (what == 0)
    n->v.p = p;
  else
    n->v.i = i;
  n->dtor = dtor;
  n->what = what;
  int err = weft_call_soon_threadsafe(loop, ts_apply, n);
  if (err != 0) { /* kept for the next settle */
    n->next = cache[slot].free;
    cache[slot].free = n;
  }
  return err;
}

int weft_future_resolve_threadsafe(weft_future *f, void *value,
                                   weft_dtor dtor) {
  return ts_post(f, 0, value, 0, dtor);
}

int weft_future_resolve_i64_threadsafe(weft_future *f, int64_t v) {
  return ts_post(f, 1, NULL, v, NULL);
}

int weft_future_reject_threadsafe(weft_future *f, int err) {
  if (err >= 0) return -EINVAL;
  return ts_post(f, 2, NULL, err, NULL);
}
