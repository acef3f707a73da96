/* weft — all, all_settled, any, race (and the node machinery timeout uses).
 *
 * An aggregate registers one node per input: a small future (K_NODE) in the
 * input's list of continuations, holding a reference to the input and a
 * plain pointer back to the aggregate. The aggregate keeps its nodes in a
 * chain (through the nodes' `waiters` field) and cuts the back pointers
 * when it is freed, so nodes that outlive it do nothing when they fire.
 * Nodes are all drawn before any is registered: a failure leaves nothing
 * behind. */
#include "internal.h"

static void agg_finish(weft_future *a, uint8_t state, int64_t v) {
  a->v.i = v;
  a->flags &= (uint8_t)~F_VALUE;
  weft__future_settle(a, state);
}

static void free_chain(weft_future *n) {
  while (n != NULL) {
    weft_future *nx = n->waiters;
    n->waiters = NULL;
    weft_future_unref(n);
    n = nx;
  }
}

int weft__gather(weft_loop *loop, weft_future *const *fs, size_t n,
                 uint8_t kind, weft_future **out) {
  if (loop == NULL || out == NULL || (n != 0 && fs == NULL) || n > UINT32_MAX)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL || fs[i]->loop != loop) return -EINVAL;
  weft_future *agg, *head = NULL, *tail = NULL;
  int err = weft__future_alloc(loop, kind, &agg);
  if (err != 0) return err;
  for (size_t i = 0; i < n; i++) {
    weft_future *node;
    err = weft__future_alloc(loop, K_NODE, &node);
    if (err != 0) {
      free_chain(head);
      weft_future_unref(agg);
      return err;
    }
    if (tail != NULL) tail->waiters = node;
    else head = node;
    tail = node;
  }
  agg->src = head;
  agg->v.i = (int64_t)n;              /* inputs still to come */
  agg->u.h.arg = (void *)(uintptr_t)n; /* input count */
  size_t i = 0;
  for (weft_future *node = head; node != NULL; node = node->waiters, i++) {
    node->src = weft_future_ref(fs[i]);
    node->u.h.arg = agg;
    node->v.i = (int64_t)i;
    weft__future_wait(fs[i], weft_future_ref(node)); /* + the chain's */
  }
  *out = agg;
  return 0;
}

/* Once the aggregate has settled, its nodes still waiting on inputs are
 * taken out of those inputs' continuations: they no longer count as
 * consumers (see weft__future_sole) and will not fire for nothing. */
void weft__agg_detach(weft_future *agg) {
  for (weft_future *n = agg->src; n != NULL; n = n->waiters)
    if (n->src->state == WEFT_FUTURE_PENDING) weft__future_unwait(n->src, n);
}

/* Cancels every input still pending (all's first error, any's winner). */
static void cancel_rest(weft_future *agg) {
  weft_future_ref(agg);
  weft__agg_detach(agg);
  for (weft_future *n = agg->src; n != NULL; n = n->waiters)
    if (n->src->state == WEFT_FUTURE_PENDING) weft_future_cancel(n->src);
  weft_future_unref(agg);
}

void weft__agg_cancel(weft_future *agg) {
  for (weft_future *n = agg->src; n != NULL; n = n->waiters) {
    weft_future *in = n->src;
    if (in->state != WEFT_FUTURE_PENDING) continue;
    bool sole = weft__future_sole(in, n);
    weft__future_unwait(in, n);
    if (sole) weft_future_cancel(in);
  }
}

void weft__agg_fire(weft_future *node) {
  weft_future *agg = node->u.h.arg, *in = node->src;
  if (agg == NULL || agg->state != WEFT_FUTURE_PENDING) return;
  bool ok = in->state == WEFT_FUTURE_FULFILLED;
  int64_t count = (int64_t)(uintptr_t)agg->u.h.arg;
  switch (agg->kind) {
  case K_ALL:
    if (!ok) {
      agg_finish(agg, WEFT_FUTURE_REJECTED, in->v.i);
      cancel_rest(agg);
    } else if (--agg->v.i == 0) {
      agg_finish(agg, WEFT_FUTURE_FULFILLED, count);
    }
    break;
  case K_ALL_SETTLED:
    if (--agg->v.i == 0) agg_finish(agg, WEFT_FUTURE_FULFILLED, count);
    break;
  case K_ANY:
    if (ok) {
      weft__future_pass(agg, in);
      cancel_rest(agg);
    } else if (--agg->v.i == 0) {
      agg_finish(agg, WEFT_FUTURE_REJECTED, WEFT_EAGGREGATE);
    }
    break;
  case K_TIMEOUT:
    weft__timed_cancel(agg); /* stop the timer first: pass reuses u */
    weft__future_pass(agg, in);
    break;
  default: /* K_RACE */
    weft__future_pass(agg, in);
    break;
  }
  if (agg->state != WEFT_FUTURE_PENDING) weft__agg_detach(agg);
}

int weft_future_all(weft_loop *loop, weft_future *const *fs, size_t n,
                    weft_future **out) {
  int err = weft__gather(loop, fs, n, K_ALL, out);
  if (err == 0 && n == 0) agg_finish(*out, WEFT_FUTURE_FULFILLED, 0);
  return err;
}

int weft_future_all_settled(weft_loop *loop, weft_future *const *fs, size_t n,
                            weft_future **out) {
  int err = weft__gather(loop, fs, n, K_ALL_SETTLED, out);
  if (err == 0 && n == 0) agg_finish(*out, WEFT_FUTURE_FULFILLED, 0);
  return err;
}

int weft_future_any(weft_loop *loop, weft_future *const *fs, size_t n,
                    weft_future **out) {
  int err = weft__gather(loop, fs, n, K_ANY, out);
  if (err == 0 && n == 0)
    agg_finish(*out, WEFT_FUTURE_REJECTED, WEFT_EAGGREGATE);
  return err;
}

int weft_future_race(weft_loop *loop, weft_future *const *fs, size_t n,
                     weft_future **out) {
  return weft__gather(loop, fs, n, K_RACE, out);
}
