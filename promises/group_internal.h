/* weft — what group.c and scope.c share: the member list of a group or a
 * scope. Never installed. */
#ifndef WEFT_PROMISES_GROUP_INTERNAL_H
#define WEFT_PROMISES_GROUP_INTERNAL_H

#include "internal.h"

/* The bookkeeping of a group or a scope. It does not fit in the future
 * itself, so it lives in a second 64-byte slot drawn from the loop's free
 * list of futures (u.group points at it): a group allocates nothing but
 * futures, and a pending group nobody releases is reclaimed with the slabs.
 *
 * Members: one node (WEFT__K_GROUP_NODE) per member, holding a reference to the
 * member (`src`), a plain pointer back to its owner (u.node.agg, NULL once
 * the owner is freed), its position (v.i), and links in the owner's list
 * (u.node.chain forwards, `waiters` backwards: a node is never waited on).
 * The list holds one reference to each node, the member's continuations
 * another. A member that settles leaves the list unless it was rejected:
 * rejected members stay, so that their errors can be read. */
typedef struct weft__group {
  weft_future *head, *tail; /* pending and rejected members, in add order */
  uint32_t added, pending, failed;
  int32_t first_err;        /* the first rejected member's error */
  uint8_t flags;            /* WEFT_GROUP_* */
  uint8_t closed, aborting; /* close() was called; cancelling on an error */
  /* scope.c */
  weft_future *parent; /* the parent scope, a plain pointer: cut when the
                          parent is freed or this scope settles */
  weft_future *timer;  /* the deadline (WEFT__K_SCOPE_TIMER), a reference */
  uint64_t deadline;   /* own deadline on weft_now's clock, or UINT64_MAX */
} weft__group;

_Static_assert(sizeof(weft__group) <= sizeof(weft_future),
               "a group's bookkeeping must fit in one future slot");

/* A pending future of `kind` (WEFT__K_GROUP, WEFT__K_SCOPE) with zeroed
 * bookkeeping. */
int weft__members_new(weft_loop *loop, uint8_t kind, weft_future **out);
/* Adds f to g's members (g pending and open, checks done): -EOVERFLOW,
 * -ENOMEM, or 0. */
int weft__members_add(weft_future *g, weft_future *f);
/* Cancels every pending member of g. */
void weft__members_cancel(weft_future *g);
/* g's release: lets go of the members, cuts the back pointers (and a
 * member scope's parent pointer), gives the bookkeeping slot back. */
void weft__members_release(weft_future *g, weft_future **todo);

#endif
