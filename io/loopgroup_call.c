/* weft — cross-loop calls of a loop group: submit (one loop, one future)
 * and broadcast (every loop, one future).
 *
 * A call is a record posted to the target loop (weft_call_soon_threadsafe),
 * run there, and posted back to the caller's loop, where the future is
 * settled: futures are only ever touched on their own loop's thread. The
 * caller's loop holds a weft_loop_ref for each call in flight, so it keeps
 * running until every answer is in. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "loopgroup_internal.h"

#define POST_TRIES 8 /* post-back attempts when the queue cannot grow */

struct weft_lgroup_result {
  void *ptr;
  weft_dtor dtor;
  int64_t i64;
  bool is_ptr;
};

typedef struct bcast {
  weft_future *f;
  int64_t *results;
  unsigned left, n;
  unsigned err_index;
  int err;
} bcast;

typedef struct call {
  weft_lgroup *g;
  unsigned index;
  weft_lgroup_fn fn;
  void *arg;
  weft_loop *caller;
  weft_future *f; /* submit: the caller's future */
  bcast *b;       /* broadcast: the aggregate */
  int status;
  struct weft_lgroup_result res;
} call;

void weft_lgroup_return(weft_lgroup_result *res, void *value, weft_dtor dtor) {
  if (res == NULL) return;
  if (res->is_ptr && res->dtor) res->dtor(res->ptr);
  res->ptr = value;
  res->dtor = dtor;
  res->is_ptr = true;
}

void weft_lgroup_return_i64(weft_lgroup_result *res, int64_t v) {
  if (res == NULL) return;
  if (res->is_ptr && res->dtor) res->dtor(res->ptr);
  res->is_ptr = false;
  res->ptr = NULL;
  res->i64 = v;
}

static void drop_value(call *c) {
  if (c->res.is_ptr && c->res.dtor) c->res.dtor(c->res.ptr);
  c->res.is_ptr = false;
}

static void bcast_settle(bcast *b, weft_loop *caller) {
  if (b->err < 0)
    weft_future_reject(b->f, b->err);
  else
    weft_future_resolve_i64(b->f, b->n);
  weft_future_unref(b->f);
  weft__free(b);
  weft_loop_unref(caller);
}

/* On the caller's thread: the answer is in. */
static void call_done(void *arg) {
  call *c = arg;
  if (c->f) {
    int r = c->status < 0   ? weft_future_reject(c->f, c->status)
            : c->res.is_ptr ? weft_future_resolve(c->f, c->res.ptr, c->res.dtor)
                            : weft_future_resolve_i64(c->f, c->res.i64);
    if (r == 0) c->res.is_ptr = false; /* the future owns the pointer now */
    drop_value(c);                     /* cancelled meanwhile: dropped */
    weft_future_unref(c->f);
    weft_loop_unref(c->caller);
  } else {
    bcast *b = c->b;
    if (b->results) b->results[c->index] = c->res.is_ptr ? 0 : c->res.i64;
    drop_value(c);
    if (c->status < 0 && (b->err == 0 || c->index < b->err_index)) {
      b->err = c->status;
      b->err_index = c->index;
    }
    if (--b->left == 0) bcast_settle(b, c->caller);
  }
  weft__free(c);
}

static void post_back(void *arg);

/* Posts the answer to the caller's loop; when its queue cannot grow, tries
 * again from this loop's deferred queue (next turn). */
static void post_back(void *arg) {
  call *c = arg;
  for (int i = 0; i < POST_TRIES; i++) {
    if (weft_call_soon_threadsafe(c->caller, call_done, c) == 0) return;
    weft__lg_loop *l = weft__lg_cur;
    if (l && weft_call_soon(l->loop, post_back, c) == 0) return;
  }
}

/* On the target's thread (or, after its thread ended, on the thread that
 * frees the group: weft__lg_cur is then not this loop). */
static void call_run(void *arg) {
  call *c = arg;
  weft__lg_loop *l = &c->g->loops[c->index];
  if (weft__lg_cur != l || l->phase >= WEFT__LG_FINISHING)
    c->status = -ESHUTDOWN;
  else
    c->status = c->fn(c->g, c->index, atomic_load(&l->local), c->arg, &c->res);
  if (c->status > 0) c->status = 0;
  post_back(c);
}

static call *call_new(weft_lgroup *g, weft_loop *caller, unsigned index,
                      weft_lgroup_fn fn, void *arg) {
  call *c = weft__calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->g = g;
  c->index = index;
  c->fn = fn;
  c->arg = arg;
  c->caller = caller;
  return c;
}

static int post_call(call *c) {
  weft__lg_loop *l = &c->g->loops[c->index];
  if (atomic_load(&l->ended)) return -ESHUTDOWN;
  return weft_call_soon_threadsafe(l->loop, call_run, c);
}

int weft_lgroup_submit(weft_lgroup *g, weft_loop *caller, unsigned index,
                       weft_lgroup_fn fn, void *arg, weft_future **out) {
  if (g == NULL || caller == NULL || fn == NULL || out == NULL || index >= g->n)
    return -EINVAL;
  weft_future *f;
  int err = weft_future_new(caller, &f);
  if (err < 0) return err;
  call *c = call_new(g, caller, index, fn, arg);
  if (c == NULL) {
    weft_future_unref(f);
    return -ENOMEM;
  }
  c->f = weft_future_ref(f);
  weft_loop_ref(caller);
  if ((err = post_call(c)) < 0) {
    weft_loop_unref(caller);
    weft_future_unref(f);
    weft_future_unref(f);
    weft__free(c);
    return err;
  }
  *out = f;
  return 0;
}

static void free_calls(call **cs, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    weft__free(cs[i]);
  weft__free(cs);
}

int weft_lgroup_broadcast(weft_lgroup *g, weft_loop *caller, weft_lgroup_fn fn,
                          void *arg, int64_t *results, weft_future **out) {
  if (g == NULL || caller == NULL || fn == NULL || out == NULL) return -EINVAL;
  for (unsigned i = 0; i < g->n; i++)
    if (atomic_load(&g->loops[i].ended)) return -ESHUTDOWN;
  call **cs = weft__calloc(g->n, sizeof *cs);
  bcast *b = cs ? weft__calloc(1, sizeof *b) : NULL;
  unsigned made = 0;
  while (b && made < g->n && (cs[made] = call_new(g, caller, made, fn, arg)))
    cs[made++]->b = b;
  int err = made == g->n ? weft_future_new(caller, &b->f) : -ENOMEM;
  if (err < 0) {
    weft__free(b);
    free_calls(cs, made);
    return err;
  }
  weft_future_ref(b->f); /* one for *out, one settled by the last answer */
  b->results = results;
  b->n = b->left = g->n;
  weft_loop_ref(caller);
  for (unsigned i = 0; i < g->n; i++) {
    if ((err = post_call(cs[i])) == 0) continue;
    cs[i]->status = err; /* unreachable loop: counts as failed, at once */
    if (weft_call_soon(caller, call_done, cs[i]) < 0) {
      if (b->err == 0 || i < b->err_index) b->err = err, b->err_index = i;
      weft__free(cs[i]);
      b->left--;
    }
  }
  *out = b->f;
  if (b->left == 0) { /* nothing reached any loop */
    bcast_settle(b, caller);
  }
  weft__free(cs);
  return 0;
}
