/* weft — groups (asyncio's TaskGroup), and the member list that groups and
 * scopes share.
 *
 * A group is a future of its own kind whose members are any futures added
 * to it; each member is watched by a node in its list of continuations (see
 * group_internal.h). A node firing does the bookkeeping (one member fewer
 * pending; a rejected member is kept, any other leaves the list) and hands
 * the member to its owner's kind (`propagate`): a group decides whether to
 * abort on the error and whether it is done, a scope (scope.c) only whether
 * it is done. Cancelling the owner cancels every pending member: unlike an
 * aggregate, a group owns its members, whoever else waits on them. */
#include <string.h>

#include "group_internal.h"
#include "weft/group.h"

static weft__group *grp(const weft_future *g) { return g->u.group; }

/* ---- the bookkeeping slot and the member list -----------------------------
 */

static void slot_free(weft_loop *loop, weft__group *x);

int weft__members_new(weft_loop *loop, uint8_t kind, weft_future **out) {
  weft_future *g, *slot;
  int err = weft__future_alloc(loop, WEFT__K_PLAIN, &slot);
  if (err != 0) return err;
  weft__group *x = (weft__group *)(void *)slot;
  if ((err = weft__future_alloc(loop, kind, &g)) != 0) {
    slot_free(loop, x);
    return err;
  }
  memset(x, 0, sizeof *x);
  x->deadline = UINT64_MAX;
  g->u.group = x;
  *out = g;
  return 0;
}

/* The slot goes straight back to the free list (a release hook must not
 * start another release). */
static void slot_free(weft_loop *loop, weft__group *x) {
  weft__fmod *m = weft__fmod_get(loop);
  weft_future *slot = (weft_future *)(void *)x;
  *slot = (weft_future){.loop = loop};
  slot->next = m->free;
  m->free = slot;
}

static void unlink_node(weft__group *x, weft_future *n) {
  weft_future *prev = n->waiters, *next = n->u.node.chain;
  if (prev != NULL)
    prev->u.node.chain = next;
  else
    x->head = next;
  if (next != NULL)
    next->waiters = prev;
  else
    x->tail = prev;
  n->waiters = NULL;
  n->u.node.chain = NULL;
  weft_future_unref(n); /* the list's reference */
}

int weft__members_add(weft_future *g, weft_future *f) {
  weft__group *x = grp(g);
  if (x->added >= INT32_MAX) return -EOVERFLOW;
  weft_future *n;
  int err = weft__future_alloc(g->loop, WEFT__K_GROUP_NODE, &n);
  if (err != 0) return err;
  n->src = weft_future_ref(f);
  n->u.node.agg = g;
  n->v.i = x->added++;
  n->waiters = x->tail; /* the list takes the allocation's reference */
  if (x->tail != NULL)
    x->tail->u.node.chain = n;
  else
    x->head = n;
  x->tail = n;
  x->pending++;
  weft__future_wait(f, weft_future_ref(n));
  return 0;
}

/* Nodes leave the list only when they fire (from the ready queue), and g
 * is held, so the walk is safe against what the members' cancel hooks do. */
void weft__members_cancel(weft_future *g) {
  weft_future_ref(g);
  for (weft_future *n = grp(g)->head; n != NULL; n = n->u.node.chain)
    if (n->src->state == WEFT_FUTURE_PENDING) weft_future_cancel(n->src);
  weft_future_unref(g);
}

void weft__members_release(weft_future *g, weft_future **todo) {
  weft__group *x = grp(g);
  for (weft_future *n = x->head, *nx; n != NULL; n = nx) {
    nx = n->u.node.chain;
    weft_future *m = n->src;
    if (m->kind == WEFT__K_SCOPE && m->state == WEFT_FUTURE_PENDING &&
        grp(m)->parent == g)
      grp(m)->parent = NULL;
    n->u.node.agg = NULL;
    n->u.node.chain = NULL;
    n->waiters = NULL;
    weft__future_drop(n, todo);
  }
  slot_free(g->loop, x);
}

static void node_fire(weft_future *n) {
  weft_future *g = n->u.node.agg, *in = n->src;
  if (g == NULL) return; /* its owner is gone */
  weft__group *x = grp(g);
  x->pending--;
  if (in->state == WEFT_FUTURE_REJECTED) {
    if (x->failed++ == 0) x->first_err = (int32_t)in->v.i;
  } else {
    unlink_node(x, n); /* the ready queue still holds n */
  }
  if (g->state == WEFT_FUTURE_PENDING) weft__kind_of(g)->propagate(g, in);
}

/* a node is nobody's to settle or cancel: only its owner sees it */
static const weft__kind group_node_kind = {.name = "group_node",
                                           .fire = node_fire};
WEFT__KIND(WEFT__K_GROUP_NODE, group_node_kind)

/* ---- the group kind ---------------------------------------------------------
 */

static void settle_if_done(weft_future *g) {
  weft__group *x = grp(g);
  if (!(x->closed || x->aborting) || x->pending != 0) return;
  if (x->failed != 0)
    weft__future_finish(g, WEFT_FUTURE_REJECTED, x->first_err);
  else
    weft__future_finish(g, WEFT_FUTURE_FULFILLED, (int64_t)x->added);
}

static void group_propagate(weft_future *g, weft_future *in) {
  weft__group *x = grp(g);
  if (in->state == WEFT_FUTURE_REJECTED &&
      (x->flags & WEFT_GROUP_CANCEL_ON_ERROR) && !x->aborting) {
    x->aborting = 1;
    weft__members_cancel(g); /* their nodes fire later: g waits for them */
  }
  settle_if_done(g);
}

static weft_future *group_cancel(weft_future *g) {
  weft__members_cancel(g);
  return NULL;
}

/* settled by its members only (by_hand 0) */
static const weft__kind group_kind = {.name = "group",
                                      .propagate = group_propagate,
                                      .cancel = group_cancel,
                                      .release = weft__members_release};
WEFT__KIND(WEFT__K_GROUP, group_kind)

/* ---- the API
 * ------------------------------------------------------------------ */

static bool is_group(const weft_future *g) {
  return g != NULL && g->kind == WEFT__K_GROUP;
}

int weft_group_new(weft_loop *loop, unsigned flags, weft_future **out) {
  if (loop == NULL || out == NULL || (flags & ~WEFT_GROUP_CANCEL_ON_ERROR))
    return -EINVAL;
  int err = weft__members_new(loop, WEFT__K_GROUP, out);
  if (err == 0) grp(*out)->flags = (uint8_t)flags;
  return err;
}

int weft_group_add(weft_future *g, weft_future *f) {
  if (!is_group(g) || f == NULL || f == g || f->loop != g->loop) return -EINVAL;
  weft__group *x = grp(g);
  if (g->state == WEFT_FUTURE_CANCELLED || x->aborting) {
    if (f->state == WEFT_FUTURE_PENDING) weft_future_cancel(f);
    return -ECANCELED;
  }
  if (x->closed || g->state != WEFT_FUTURE_PENDING) return WEFT_ECLOSED;
  return weft__members_add(g, f);
}

int weft_group_close(weft_future *g) {
  if (!is_group(g)) return -EINVAL;
  weft__group *x = grp(g);
  if (x->closed) return -EALREADY;
  x->closed = 1;
  if (g->state == WEFT_FUTURE_PENDING) settle_if_done(g);
  return 0;
}

int weft_group_errors(const weft_future *g, weft_group_error *out, size_t cap) {
  if (g == NULL || (g->kind != WEFT__K_GROUP && g->kind != WEFT__K_SCOPE) ||
      (out == NULL && cap > 0))
    return -EINVAL;
  size_t i = 0;
  for (weft_future *n = grp(g)->head; n != NULL && i < cap;
       n = n->u.node.chain) {
    if (n->src->state != WEFT_FUTURE_REJECTED) continue;
    out[i++] = (weft_group_error){
        .index = (size_t)n->v.i, .err = (int)n->src->v.i, .future = n->src};
  }
  return (int)grp(g)->failed;
}

int weft_group_counts(const weft_future *g, size_t *added, size_t *pending) {
  if (g == NULL || (g->kind != WEFT__K_GROUP && g->kind != WEFT__K_SCOPE))
    return -EINVAL;
  if (added != NULL) *added = grp(g)->added;
  if (pending != NULL) *pending = grp(g)->pending;
  return 0;
}
