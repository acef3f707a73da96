/* weft — fiber conveniences over the primitives' futures: each call makes
 * the future, awaits it and drops it (include/weft/fiber.h, "one-call
 * forms"). Nothing here allocates beyond the future form it wraps. */
#include "fiber_internal.h"
#include "internal.h"

/* True when f was fulfilled although the await returned -ECANCELED: the
 * fiber's cancellation arrived after f settled, before the fiber resumed. */
static bool done_anyway(int err, const weft_future *f) {
  return err == -ECANCELED && weft_future_get_state(f) == WEFT_FUTURE_FULFILLED;
}

int weft_fiber_lock_acquire(weft_lock *lock) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int err = weft_lock_acquire(lock, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) weft_lock_release(lock); /* granted: give back */
  weft_future_unref(f);
  return err;
}

int weft_fiber_semaphore_acquire(weft_semaphore *sem) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int err = weft_semaphore_acquire(sem, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) weft_semaphore_release(sem); /* give it back */
  weft_future_unref(f);
  return err;
}

int weft_fiber_queue_put(weft_queue *q, void *item) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int err = weft_queue_put(q, item, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) err = 0; /* the item is in: that counts */
  weft_future_unref(f);
  return err;
}

int weft_fiber_queue_get(weft_queue *q, void **item) {
  if (item != NULL) *item = NULL;
  if (!weft_in_fiber()) return -EPERM;
  if (item == NULL) return -EINVAL;
  weft_future *f;
  int err = weft_queue_get(q, &f);
  if (err != 0) return err;
  err = weft_await(f);
  if (done_anyway(err, f)) err = 0; /* the item was taken: hand it out */
  if (err == 0) *item = weft_future_value(f);
  weft_future_unref(f);
  return err;
}

int weft_fiber_create_task(weft_fiber_fn fn, void *arg, weft_future **out) {
  if (out != NULL) *out = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  return weft_fiber_spawn(weft_fiber_loop(self), fn, arg, NULL, out);
}

int weft_fiber_gather(weft_future **fs, size_t n) {
  if (!weft_in_fiber()) return -EPERM;
  if (fs == NULL && n > 0) return -EINVAL;
  int first = 0;
  bool cancelled = false;
  for (size_t i = 0; i < n; i++) {
    if (fs[i] == NULL) continue;
    if (cancelled) {
      weft_future_cancel(fs[i]);
    } else {
      int err = weft_await(fs[i]);
      if (err == -ECANCELED && weft_fiber_cancelled(weft_fiber_current())) {
        cancelled = true, first = -ECANCELED;
        weft_future_cancel(fs[i]);
      } else if (err != 0 && first == 0) {
        first = err;
      }
    }
    weft_future_unref(fs[i]);
    fs[i] = NULL;
  }
  return first;
}

/* ---- programs, task sets and deadlines ---------------------------------- */

int weft_fiber_main(weft_fiber_fn fn, void *arg, const weft_fiber_options *opts,
                    int64_t *result) {
  if (result != NULL) *result = 0;
  if (fn == NULL) return -EINVAL;
  if (weft_in_fiber()) return -EBUSY;
  weft_loop *loop;
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) return err;
  err = weft_fiber_run(loop, fn, arg, opts, result);
  /* what the fiber left behind: fibers it did not await, closes */
  int rc = weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0 && rc < 0) err = rc;
  int freed = weft_loop_free(loop); /* -EBUSY: left allocated, said so */
  return err != 0 ? err : freed;
}

/* ---- task groups --------------------------------------------------------
 * A member record per spawned fiber: the fiber runs member_body, which
 * runs the user's function, records its error in the group and unlinks
 * the record. The group counts bodies that have not returned; the one
 * that brings the count to 0 while the group is being waited on resolves
 * `idle`. So weft_fiber_group_wait returns only once every body returned,
 * and only then frees the group, which no body touches afterwards. */

struct weft_fiber_group {
  weft_loop *loop;
  weft_semaphore *slots; /* NULL: no limit */
  weft__list members;
  size_t running;
  weft_future *idle; /* resolved once waited on and no body runs */
  int first;         /* the first error a body returned */
  bool waited;
};

typedef struct member {
  weft__list link;
  weft_fiber_group *g;
  weft_fiber_fn fn;
  void *arg;
  weft_future *f; /* the fiber's future */
} member;

static int member_body(weft_fiber *self, void *arg) {
  member *m = arg;
  weft_fiber_group *g = m->g;
  int err = m->fn(self, m->arg);
  if (err < 0 && g->first == 0) g->first = err;
  weft__list_unlink(&m->link);
  weft_future_unref(m->f);
  weft__free(m);
  if (g->slots != NULL) weft_semaphore_release(g->slots);
  if (--g->running == 0 && g->waited) (void)weft_future_resolve_i64(g->idle, 0);
  return 0; /* the error is the group's: nothing left unobserved */
}

int weft_fiber_group_new(unsigned limit, weft_fiber_group **out) {
  if (out != NULL) *out = NULL;
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  if (out == NULL) return -EINVAL;
  weft_fiber_group *g = weft__calloc(1, sizeof *g);
  if (g == NULL) return -ENOMEM;
  g->loop = weft_fiber_loop(self);
  weft__list_init(&g->members);
  int err = weft_future_new(g->loop, &g->idle);
  if (err == 0 && limit > 0)
    err = weft_semaphore_new(g->loop, limit, &g->slots);
  if (err != 0) {
    weft_future_unref(g->idle);
    weft__free(g);
    return err;
  }
  *out = g;
  return 0;
}

int weft_fiber_group_spawn(weft_fiber_group *g, weft_fiber_fn fn, void *arg) {
  if (!weft_in_fiber()) return -EPERM;
  if (g == NULL || fn == NULL || g->waited) return -EINVAL;
  if (weft_fiber_loop(weft_fiber_current()) != g->loop) return -EINVAL;
  int err = g->slots != NULL ? weft_fiber_semaphore_acquire(g->slots) : 0;
  if (err != 0) return err;
  member *m = weft__malloc(sizeof *m);
  err = m == NULL ? -ENOMEM
                  : weft_fiber_spawn(g->loop, member_body, m, NULL, &m->f);
  if (err != 0) {
    weft__free(m);
    if (g->slots != NULL) weft_semaphore_release(g->slots);
    return err;
  }
  m->g = g, m->fn = fn, m->arg = arg;
  weft__list_push_back(&g->members, &m->link);
  g->running++;
  return 0;
}

/* Cancels every member still running (their bodies run on to return). */
static void cancel_members(weft_fiber_group *g) {
  for (weft__list *n = g->members.next; n != &g->members; n = n->next)
    weft_future_cancel(WEFT__CONTAINER_OF(n, member, link)->f);
}

int weft_fiber_group_wait(weft_fiber_group *g) {
  if (!weft_in_fiber()) return -EPERM;
  if (g == NULL || g->waited) return -EINVAL;
  if (weft_fiber_loop(weft_fiber_current()) != g->loop) return -EINVAL;
  g->waited = true;
  bool cancelled = false;
  while (g->running > 0) {
    /* shielded: a cancel must not settle idle, only stop the members */
    if (weft__await_shielded(g->idle) == -ECANCELED && !cancelled)
      cancelled = true, cancel_members(g);
  }
  int err = cancelled ? -ECANCELED : g->first;
  weft_future_unref(g->idle);
  if (g->slots != NULL) weft_semaphore_free(g->slots);
  weft__free(g);
  return err;
}

/* n fibers in a group of `limit`, fiber i running calls[i] (if calls is
 * not NULL) or fn(args[i]) (args[i]: i if args is NULL), then waited for:
 * weft_fiber_map and weft_fiber_gather_calls. */
static int spawn_wait(const weft_fiber_call *calls, weft_fiber_fn fn,
                      void *const *args, size_t n, unsigned limit) {
  weft_fiber_group *g;
  int err = weft_fiber_group_new(limit, &g);
  for (size_t i = 0; err == 0 && i < n; i++) {
    void *a = calls != NULL  ? calls[i].arg
              : args != NULL ? args[i]
                             : (void *)(uintptr_t)i;
    err = weft_fiber_group_spawn(g, calls != NULL ? calls[i].fn : fn, a);
  }
  if (g == NULL) return err;
  if (err == -ECANCELED) cancel_members(g); /* cancelled while spawning */
  int waited = weft_fiber_group_wait(g);
  return err != 0 ? err : waited;
}

int weft_fiber_map(weft_fiber_fn fn, void *const *args, size_t n,
                   unsigned limit) {
  if (!weft_in_fiber()) return -EPERM;
  if (fn == NULL) return -EINVAL;
  return spawn_wait(NULL, fn, args, n, limit);
}

int weft_fiber_gather_calls(const weft_fiber_call *calls, size_t n) {
  if (!weft_in_fiber()) return -EPERM;
  if (calls == NULL && n > 0) return -EINVAL;
  for (size_t i = 0; i < n; i++) /* all or nothing for a NULL fn */
    if (calls[i].fn == NULL) return -EINVAL;
  return spawn_wait(calls, NULL, NULL, n, 0);
}

int weft_fiber_wait_for(weft_future *f, uint64_t ms) {
  weft_fiber *self = weft_fiber_current();
  if (self == NULL) return -EPERM;
  if (f == NULL || ms > WEFT_TIMEOUT_MAX) return -EINVAL;
  if (weft_future_loop(f) != weft_fiber_loop(self)) return -EINVAL;
  if (f == weft_fiber_future(self)) return -EDEADLK;
  weft_future *t;
  int err = weft_future_timeout(f, ms, &t);
  if (err != 0) return err;
  err = weft_await(t);
  weft_future_unref(t);
  return err;
}
