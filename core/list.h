/* weft — the one intrusive doubly-linked list of the library.
 *
 * A list head is a node whose prev/next point at itself when empty. Unlink
 * resets the node, so "is it linked?" is one pointer test. Never installed. */
#ifndef WEFT_CORE_LIST_H
#define WEFT_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct weft__list {
  struct weft__list *prev, *next;
} weft__list;

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
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = n;
}

static inline weft__list *weft__list_pop_front(weft__list *head) {
  if (weft__list_empty(head)) return NULL;
  weft__list *n = head->next;
  weft__list_unlink(n);
  return n;
}

#define WEFT__LIST_FOREACH(it, head)                                           \
  for (weft__list *it = (head)->next; it != (head); it = it->next)

#endif /* WEFT_CORE_LIST_H */
