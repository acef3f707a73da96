/* weft — all, all_settled, any, race (and the node machinery timeout uses).
 *
 * An aggregate registers one node per input: a small future (WEFT__K_NODE) in
 * the input's list of continuations, holding a reference to the input (`src`)
 * and a plain pointer back to the aggregate (u.node.agg). The aggregate
 * keeps its nodes in a chain (its `src`, then u.node.chain), counts inputs
 * still to come in v.remaining, and cuts the back pointers when it is
 * freed, so nodes that outlive it do nothing when they fire. A node firing
 * hands the input to its aggregate's kind (`propagate`), which decides.
 * Nodes are all drawn before any is registered: a failure leaves nothing
 * behind.
 *
 * race_index is race fulfilled with the winner's position. as_completed's
 * driver (WEFT__K_AS_COMPLETED) is an aggregate nobody sees: it holds itself
 * until every input is in, its callback in u.call, and the drain's
 * positions still to fill (WEFT__K_SLOT futures, a reference each) as a list
 * through their `next` from its `waiters` (the driver is never waited on
 * and never settled, so neither field has another use). */
#include "internal.h"
#include "weft/group.h"

static void free_chain(weft_future *n) {
  while (n != NULL) {
    weft_future *nx = n->u.node.chain;
    n->u.node.chain = NULL;
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
    err = weft__future_alloc(loop, WEFT__K_NODE, &node);
    if (err != 0) {
      free_chain(head);
      weft_future_unref(agg);
      return err;
    }
    if (tail != NULL)
      tail->u.node.chain = node;
    else
      head = node;
    tail = node;
  }
  agg->src = head;
  agg->v.remaining = (int64_t)n;
  agg->u.agg.count = n;
  size_t i = 0;
  for (weft_future *node = head; node != NULL; node = node->u.node.chain, i++) {
    node->src = weft_future_ref(fs[i]);
    node->u.node.agg = agg;
    weft__future_wait(fs[i], weft_future_ref(node)); /* + the chain's */
  }
  *out = agg;
  return 0;
}

/* Once the aggregate has settled, its nodes still waiting on inputs are
 * taken out of those inputs' continuations: they no longer count as
 * consumers (see weft__future_sole) and will not fire for nothing. */
void weft__agg_detach(weft_future *agg) {
  for (weft_future *n = agg->src; n != NULL; n = n->u.node.chain)
    if (n->src->state == WEFT_FUTURE_PENDING) weft__future_unwait(n->src, n);
}

/* Cancels every input still pending (all's first error, any's winner). */
static void cancel_rest(weft_future *agg) {
  weft_future_ref(agg);
  weft__agg_detach(agg);
  for (weft_future *n = agg->src; n != NULL; n = n->u.node.chain)
    if (n->src->state == WEFT_FUTURE_PENDING) weft_future_cancel(n->src);
  weft_future_unref(agg);
}

weft_future *weft__agg_cancel(weft_future *agg) {
  for (weft_future *n = agg->src; n != NULL; n = n->u.node.chain) {
    weft_future *in = n->src;
    if (in->state != WEFT_FUTURE_PENDING) continue;
    bool sole = weft__future_sole(in, n);
    weft__future_unwait(in, n);
    if (sole) weft_future_cancel(in);
  }
  return NULL;
}

/* Detaches the nodes: they may outlive the aggregate in their inputs'
 * lists. */
void weft__agg_release(weft_future *agg, weft_future **todo) {
  for (weft_future *n = agg->src, *nx; n != NULL; n = nx) {
    nx = n->u.node.chain;
    n->u.node.chain = NULL;
    n->u.node.agg = NULL;
    weft__future_drop(n, todo);
  }
}

/* agg is held across propagate: as_completed's driver lets itself go
 * there once its last input is in. */
static void node_fire(weft_future *node) {
  weft_future *agg = node->u.node.agg;
  if (agg == NULL || agg->state != WEFT_FUTURE_PENDING) return;
  agg->refs++;
  weft__kind_of(agg)->propagate(agg, node->src);
  if (agg->state != WEFT_FUTURE_PENDING) weft__agg_detach(agg);
  weft_future_unref(agg);
}

static void all_propagate(weft_future *agg, weft_future *in) {
  if (in->state != WEFT_FUTURE_FULFILLED) {
    weft__future_finish(agg, WEFT_FUTURE_REJECTED, in->v.i);
    cancel_rest(agg);
  } else if (--agg->v.remaining == 0) {
    weft__future_finish(agg, WEFT_FUTURE_FULFILLED, (int64_t)agg->u.agg.count);
  }
}

static void all_settled_propagate(weft_future *agg, weft_future *in) {
  WEFT__UNUSED(in);
  if (--agg->v.remaining == 0)
    weft__future_finish(agg, WEFT_FUTURE_FULFILLED, (int64_t)agg->u.agg.count);
}

static void any_propagate(weft_future *agg, weft_future *in) {
  if (in->state == WEFT_FUTURE_FULFILLED) {
    weft__future_pass(agg, in);
    cancel_rest(agg);
  } else if (--agg->v.remaining == 0) {
    weft__future_finish(agg, WEFT_FUTURE_REJECTED, WEFT_EAGGREGATE);
  }
}

static void race_propagate(weft_future *agg, weft_future *in) {
  weft__future_pass(agg, in);
}

static void race_index_propagate(weft_future *agg, weft_future *in) {
  int64_t i = 0;
  for (weft_future *n = agg->src; n->src != in; n = n->u.node.chain)
    i++;
  weft__future_finish(agg, WEFT_FUTURE_FULFILLED, i);
}

/* The next input is in: the callback sees it, the next position takes its
 * outcome (keeping it alive: a pointer value is borrowed). */
static void as_completed_propagate(weft_future *d, weft_future *in) {
  weft_future *slot = d->waiters;
  if (d->u.call.fn != NULL) ((weft_future_cb)d->u.call.fn)(in, d->u.call.arg);
  if (slot != NULL) {
    d->waiters = slot->next;
    slot->next = NULL;
    if (slot->state == WEFT_FUTURE_PENDING) { /* not cancelled */
      slot->src = weft_future_ref(in);
      weft__future_pass(slot, in);
    }
    weft_future_unref(slot);
  }
  if (--d->v.remaining == 0) weft_future_unref(d); /* its own reference */
}

static void as_completed_release(weft_future *d, weft_future **todo) {
  for (weft_future *s = d->waiters, *nx; s != NULL; s = nx) {
    nx = s->next;
    s->next = NULL;
    weft__future_drop(s, todo);
  }
  d->waiters = NULL;
  weft__agg_release(d, todo);
}

#define AGG_KIND(kname, prop)                                                  \
  {                                                                            \
    .name = kname, .propagate = prop, .cancel = weft__agg_cancel,              \
    .release = weft__agg_release                                               \
  }

/* a node is nobody's to settle or cancel: only its aggregate sees it */
static const weft__kind node_kind = {.name = "node", .fire = node_fire};
static const weft__kind all_kind = AGG_KIND("all", all_propagate);
static const weft__kind all_settled_kind =
    AGG_KIND("all_settled", all_settled_propagate);
static const weft__kind any_kind = AGG_KIND("any", any_propagate);
static const weft__kind race_kind = AGG_KIND("race", race_propagate);
WEFT__KIND(WEFT__K_NODE, node_kind)
WEFT__KIND(WEFT__K_ALL, all_kind)
WEFT__KIND(WEFT__K_ALL_SETTLED, all_settled_kind)
WEFT__KIND(WEFT__K_ANY, any_kind)
WEFT__KIND(WEFT__K_RACE, race_kind)
static const weft__kind race_index_kind =
    AGG_KIND("race_index", race_index_propagate);
/* never settled, never cancelled: it goes once every input is in */
static const weft__kind as_completed_kind = {.name = "as_completed",
                                             .propagate =
                                                 as_completed_propagate,
                                             .release = as_completed_release};
/* settled by the driver only; cancelling one gives up its position */
static const weft__kind slot_kind = {.name = "as_completed_slot"};
WEFT__KIND(WEFT__K_RACE_INDEX, race_index_kind)
WEFT__KIND(WEFT__K_AS_COMPLETED, as_completed_kind)
WEFT__KIND(WEFT__K_SLOT, slot_kind)

int weft_future_all(weft_loop *loop, weft_future *const *fs, size_t n,
                    weft_future **out) {
  int err = weft__gather(loop, fs, n, WEFT__K_ALL, out);
  if (err == 0 && n == 0) weft__future_finish(*out, WEFT_FUTURE_FULFILLED, 0);
  return err;
}

int weft_future_all_settled(weft_loop *loop, weft_future *const *fs, size_t n,
                            weft_future **out) {
  int err = weft__gather(loop, fs, n, WEFT__K_ALL_SETTLED, out);
  if (err == 0 && n == 0) weft__future_finish(*out, WEFT_FUTURE_FULFILLED, 0);
  return err;
}

int weft_future_any(weft_loop *loop, weft_future *const *fs, size_t n,
                    weft_future **out) {
  int err = weft__gather(loop, fs, n, WEFT__K_ANY, out);
  if (err == 0 && n == 0)
    weft__future_finish(*out, WEFT_FUTURE_REJECTED, WEFT_EAGGREGATE);
  return err;
}

int weft_future_race(weft_loop *loop, weft_future *const *fs, size_t n,
                     weft_future **out) {
  return weft__gather(loop, fs, n, WEFT__K_RACE, out);
}

int weft_future_race_index(weft_loop *loop, weft_future *const *fs, size_t n,
                           weft_future **out) {
  return weft__gather(loop, fs, n, WEFT__K_RACE_INDEX, out);
}

static void slots_free(weft_future **slots, size_t n) {
  for (size_t i = 0; i < n; i++) {
    weft_future_unref(slots[i]);
    slots[i] = NULL;
  }
}

int weft_future_as_completed(weft_loop *loop, weft_future *const *fs, size_t n,
                             weft_future_cb cb, void *arg, weft_future **outs) {
  if (cb == NULL && outs == NULL) return -EINVAL;
  if (n == 0) return loop == NULL ? -EINVAL : 0;
  if (outs != NULL)
    for (size_t i = 0; i < n; i++)
      outs[i] = NULL;
  for (size_t i = 0; outs != NULL && i < n; i++) {
    int err = loop == NULL ? -EINVAL
                           : weft__future_alloc(loop, WEFT__K_SLOT, &outs[i]);
    if (err != 0) {
      slots_free(outs, i);
      return err;
    }
  }
  weft_future *d;
  int err = weft__gather(loop, fs, n, WEFT__K_AS_COMPLETED, &d);
  if (err != 0) {
    if (outs != NULL) slots_free(outs, n);
    return err;
  }
  d->u.call.fn = (weft__fn)cb;
  d->u.call.arg = arg;
  for (size_t i = n; outs != NULL && i-- > 0;) { /* the driver's references */
    outs[i]->next = d->waiters;
    d->waiters = weft_future_ref(outs[i]);
  }
  return 0; /* d keeps the gather's reference to itself */
}
