/* weft — the one intrusive doubly-linked list of the library.
 *
 * A list head is a node whose prev/next point at itself when empty. Unlink
 * resets the node, so "is it linked?" is one pointer test; a zeroed node
 * counts as unlinked too. h2o's linklist.h is the model: insert asserts
 * (WEFT__ASSERT, debug and sanitizer builds) that the node is not already
 * on a list, and a whole list can be spliced onto another in O(1).
 * Never installed. */
#ifndef WEFT_CORE_LIST_H
#define WEFT_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "debug_internal.h"
#include "weft/loop.h" /* struct weft__list, which public structs embed */

typedef struct weft__list weft__list;

/* The struct of type `type` whose member `member` is at `ptr`. */
#define WEFT__CONTAINER_OF(ptr, type, member)                                  \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void weft__list_init(weft__list *l) { l->prev = l->next = l; }

static inline bool weft__list_empty(const weft__list *l) {
  return l->next == l;
}

/* A reset node (see weft__list_init) is not linked. A zeroed node is not
 * linked either. */
static inline bool weft__list_linked(const weft__list *n) {
  return n->next != NULL && n->next != n;
}

/* Links `n` right before `pos` (a node, or the head: then at the back).
 * `n` must not be linked (reset or zeroed); debug builds assert it. */
static inline void weft__list_insert(weft__list *pos, weft__list *n) {
  WEFT__ASSERT(!weft__list_linked(n));
  n->prev = pos->prev;
  n->next = pos;
  pos->prev->next = n;
  pos->prev = n;
}

/* push_back/push_front take any node that is not on a list, including one
 * fresh from malloc (whose contents say nothing), so they cannot check it;
 * prefer weft__list_insert for nodes that are always reset. */
static inline void weft__list_push_back(weft__list *head, weft__list *n) {
  n->prev = head->prev;
  n->next = head;
  head->prev->next = n;
  head->prev = n;
}

static inline void weft__list_push_front(weft__list *head, weft__list *n) {
  n->next = head->next;
  n->prev = head;
  head->next->prev = n;
  head->next = n;
}

static inline void weft__list_unlink(weft__list *n) {
  WEFT__ASSERT(n->next != NULL && n->prev != NULL);
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

/* The first node, or NULL if the list is empty. */
static inline weft__list *weft__list_front(const weft__list *head) {
  return weft__list_empty(head) ? NULL : head->next;
}

static inline weft__list *weft__list_pop_front(weft__list *head) {
  if (weft__list_empty(head)) return NULL;
  weft__list *n = head->next;
  weft__list_unlink(n);
  return n;
}

/* Moves every node of `from`, in order, to the back of `to`; `from` is
 * left empty. O(1). */
static inline void weft__list_splice_back(weft__list *to, weft__list *from) {
  if (weft__list_empty(from)) return;
  from->next->prev = to->prev;
  to->prev->next = from->next;
  from->prev->next = to;
  to->prev = from->prev;
  weft__list_init(from);
}

/* Visits each node; the body must not unlink `it` (use _SAFE for that). */
#define WEFT__LIST_FOREACH(it, head)                                           \
  for (weft__list *it = (head)->next; it != (head); it = it->next)

/* Visits each node; the body may unlink or free `it` (not `next`). */
#define WEFT__LIST_FOREACH_SAFE(it, next, head)                                \
  for (weft__list *it = (head)->next, *next = it->next; it != (head);          \
       it = next, next = it->next)

#endif /* WEFT_CORE_LIST_H */
