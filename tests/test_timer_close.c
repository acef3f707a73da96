/* Closing many timers: the loop's close queue (an array, continued by a
 * list when the array cannot grow) keeps close callbacks in close order,
 * exactly once each, whatever fails to allocate, and allocates nothing
 * once it has grown. */
#include "support/test.h"

#include <stdlib.h>

enum { N_TIMERS = 200 };

typedef struct closer {
  weft_timer t[N_TIMERS];
  int log[N_TIMERS]; /* ids in the order their close callbacks ran */
  int logged;
  int chained; /* close callbacks of timers closed by a close callback */
} closer;

static void on_closed(weft_handle *h) {
  closer *c = h->data;
  c->log[c->logged++] = (int)((weft_timer *)h - c->t);
}

static void on_fire(weft_timer *t) { (void)t; }

/* Inits and starts every timer of `c` on `loop`. */
static void start_all(weft_loop *loop, closer *c) {
  c->logged = 0;
  for (int i = 0; i < N_TIMERS; i++) {
    cr_assert_eq(weft_timer_init(loop, &c->t[i]), 0);
    c->t[i].base.data = c;
    cr_assert_eq(weft_timer_start(&c->t[i], on_fire, 60000, 0), 0);
  }
}

/* Closes timers [from, to) in order. */
static void close_span(closer *c, int from, int to) {
  for (int i = from; i < to; i++)
    cr_assert_eq(weft_close(&c->t[i].base, on_closed), 0);
}

/* One turn finishes every close requested before it, in order. */
static void assert_closed_in_order(weft_loop *loop, closer *c) {
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(c->logged, N_TIMERS, "%d close callbacks", c->logged);
  for (int i = 0; i < N_TIMERS; i++)
    cr_assert_eq(c->log[i], i, "close callback %d was timer %d", i, c->log[i]);
  cr_assert(!weft_loop_alive(loop), "closed timers keep the loop alive");
}

/* The nth allocation from the first close fails. The loop is made with
 * an array of 64: fail_at = 1 fails its first growth (closes 65.. go on
 * the list), 2 lets it grow to 128 and fails the next growth. */
static void close_with_failure(size_t fail_at) {
  closer *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  start_all(loop, c);
  th_alloc_arm(fail_at);
  close_span(c, 0, N_TIMERS);
  cr_assert_eq(th_alloc_failed(), 1, "the close queue never had to grow");
  assert_closed_in_order(loop, c);
  /* the loop and its queue still work: a second round, nothing failing */
  start_all(loop, c);
  close_span(c, 0, N_TIMERS);
  assert_closed_in_order(loop, c);
  cr_assert_eq(th_alloc_failed(), 1);
  th_loop_finish(loop);
  th_alloc_restore();
  free(c);
}

Test(timer_close, order_is_kept_when_the_queue_array_cannot_grow,
     .timeout = 10) {
  close_with_failure(1);
}

Test(timer_close, order_is_kept_when_its_second_growth_fails, .timeout = 10) {
  close_with_failure(2);
}

Test(timer_close, a_grown_queue_allocates_nothing, .timeout = 10) {
  closer *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  for (int round = 0; round < 3; round++) {
    start_all(loop, c);
    size_t calls = th_alloc_calls();
    close_span(c, 0, N_TIMERS);
    assert_closed_in_order(loop, c);
    if (round > 0)
      cr_assert_eq(th_alloc_calls(), calls, "round %d allocated", round);
  }
  th_loop_finish(loop);
  th_alloc_restore();
  free(c);
}

/* A close callback that closes the next timer: each close finishes in a
 * later turn than the one that requested it, never in the same pass. */
static void on_closed_chain(weft_handle *h) {
  closer *c = h->data;
  int i = (int)((weft_timer *)h - c->t);
  c->log[c->logged++] = i;
  if (i + 1 < N_TIMERS) {
    cr_assert_eq(weft_close(&c->t[i + 1].base, on_closed_chain), 0);
    c->chained++;
  }
}

/* fail: the first allocation from the first turn on fails. In that turn
 * the close phase holds the loop's array, so the close requested by the
 * callback needs a new one: it goes on the list instead. */
static void chain(bool fail) {
  closer *c = calloc(1, sizeof *c);
  cr_assert_not_null(c);
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  start_all(loop, c);
  cr_assert_eq(weft_close(&c->t[0].base, on_closed_chain), 0);
  th_alloc_arm(fail ? 1 : 0);
  for (int turn = 1; turn <= N_TIMERS; turn++) {
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), turn < N_TIMERS);
    cr_assert_eq(c->logged, turn, "turn %d finished %d closes", turn,
                 c->logged);
  }
  cr_assert_eq(th_alloc_failed(), fail ? 1 : 0);
  cr_assert_eq(c->chained, N_TIMERS - 1);
  for (int i = 0; i < N_TIMERS; i++)
    cr_assert_eq(c->log[i], i);
  th_loop_finish(loop);
  th_alloc_restore();
  free(c);
}

Test(timer_close, a_close_from_a_close_callback_finishes_next_turn,
     .timeout = 10) {
  chain(false);
}

Test(timer_close, so_does_one_whose_queue_array_cannot_be_made, .timeout = 10) {
  chain(true);
}
