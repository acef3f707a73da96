/* core/list.h, the one intrusive list, and WEFT__ASSERT: insert, unlink
 * resets, splice, front/pop, the safe walk, the container macro; in the
 * debug (sanitizer) builds an insert of a linked node aborts. */
#include <signal.h>

#include "support/test.h"

#include "core/list.h"

typedef struct item {
  int id;
  weft__list node;
} item;

/* The ids of `head`'s items, in order, checking the back links. */
static int ids(const weft__list *head, int *out, int max) {
  int n = 0;
  for (const weft__list *it = head->next; it != head; it = it->next) {
    cr_assert_eq(it->next->prev, it, "broken back link");
    cr_assert_lt(n, max, "list longer than %d", max);
    out[n++] = WEFT__CONTAINER_OF(it, item, node)->id;
  }
  return n;
}

static void fill(weft__list *head, item *v, int n, int first_id) {
  weft__list_init(head);
  for (int i = 0; i < n; i++) {
    v[i] = (item){.id = first_id + i};
    weft__list_insert(head, &v[i].node); /* before the head: at the back */
  }
}

Test(list, insert_unlink_and_linked, .timeout = 5) {
  weft__list head;
  item v[3];
  fill(&head, v, 3, 1);
  int got[8];
  cr_assert_eq(ids(&head, got, 8), 3);
  cr_assert(got[0] == 1 && got[1] == 2 && got[2] == 3);
  item z = {.id = 0}; /* zeroed: not linked */
  cr_assert(!weft__list_linked(&z.node));
  weft__list_insert(&v[0].node, &z.node); /* before item 1: at the front */
  cr_assert_eq(ids(&head, got, 8), 4);
  cr_assert_eq(got[0], 0);
  cr_assert(weft__list_linked(&v[1].node));
  weft__list_unlink(&v[1].node);
  cr_assert(!weft__list_linked(&v[1].node), "unlink resets the node");
  cr_assert_eq(v[1].node.next, &v[1].node);
  cr_assert_eq(ids(&head, got, 8), 3);
  cr_assert(got[0] == 0 && got[1] == 1 && got[2] == 3);
  weft__list_insert(&head, &v[1].node); /* a reset node may be inserted again */
  cr_assert_eq(ids(&head, got, 8), 4);
  cr_assert_eq(got[3], 2);
}

Test(list, front_and_pop_front, .timeout = 5) {
  weft__list head;
  item v[2];
  weft__list_init(&head);
  cr_assert_null(weft__list_front(&head));
  cr_assert_null(weft__list_pop_front(&head));
  fill(&head, v, 2, 7);
  cr_assert_eq(weft__list_front(&head), &v[0].node);
  cr_assert_eq(weft__list_pop_front(&head), &v[0].node);
  cr_assert(!weft__list_linked(&v[0].node));
  cr_assert_eq(weft__list_pop_front(&head), &v[1].node);
  cr_assert(weft__list_empty(&head));
}

Test(list, splice_back_moves_everything_in_order, .timeout = 5) {
  weft__list a, b, empty;
  item va[2], vb[3];
  fill(&a, va, 2, 1);
  fill(&b, vb, 3, 3);
  weft__list_splice_back(&a, &b);
  cr_assert(weft__list_empty(&b), "the source is left empty");
  int got[8];
  cr_assert_eq(ids(&a, got, 8), 5);
  for (int i = 0; i < 5; i++)
    cr_assert_eq(got[i], i + 1);
  cr_assert_eq(a.prev, &vb[2].node);
  /* an empty source changes nothing; an empty target takes the lot */
  weft__list_init(&empty);
  weft__list_splice_back(&a, &empty);
  cr_assert_eq(ids(&a, got, 8), 5);
  weft__list_splice_back(&empty, &a);
  cr_assert(weft__list_empty(&a));
  cr_assert_eq(ids(&empty, got, 8), 5);
  cr_assert_eq(got[0], 1);
  cr_assert_eq(got[4], 5);
}

Test(list, foreach_safe_allows_unlinking, .timeout = 5) {
  weft__list head;
  item v[5];
  fill(&head, v, 5, 0);
  int seen = 0;
  WEFT__LIST_FOREACH_SAFE(it, next, &head) {
    item *x = WEFT__CONTAINER_OF(it, item, node);
    cr_assert_eq(x->id, seen);
    seen++;
    if (x->id % 2 == 0) weft__list_unlink(it);
  }
  cr_assert_eq(seen, 5);
  int got[8];
  cr_assert_eq(ids(&head, got, 8), 2);
  cr_assert(got[0] == 1 && got[1] == 3);
  int n = 0;
  WEFT__LIST_FOREACH(it, &head) n++;
  cr_assert_eq(n, 2);
}

#ifdef WEFT_DEBUG
Test(list, assert_is_on_and_evaluates_its_condition, .timeout = 5) {
  int n = 0;
  WEFT__ASSERT(++n == 1);
  cr_assert_eq(n, 1);
}

/* Inserting a node that is on a list would corrupt both lists: the debug
 * builds stop right there. */
Test(list, inserting_a_linked_node_aborts, .timeout = 5, .signal = SIGABRT) {
  weft__list a, b;
  item v[1];
  fill(&a, v, 1, 0);
  weft__list_init(&b);
  weft__list_insert(&b, &v[0].node);
}
#else
Test(list, assert_is_compiled_out_without_weft_debug, .timeout = 5) {
  int n = 0;
  WEFT__ASSERT(++n == 1); /* not evaluated */
  cr_assert_eq(n, 0);
}
#endif
