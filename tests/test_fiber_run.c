/* How ready fibers run (promises/fiber.c, wake_fire and suspend): the
 * deferred callback that resumes one fiber goes on with the fibers whose
 * wakes come next in the ready queue, and a fiber that suspends switches
 * straight to the next one when its wake is next. Neither may change
 * what a program sees: the ready queue's FIFO order, continuations that
 * are not fibers' running in their place in it, a fiber that finishes
 * after such a handoff being reaped, and a cancelled fiber's await. */
#include <string.h>

#include "support/test.h"

static const char *en(int err) { return weft_err_name(err); }

#define ASSERT_ERR(got, want)                                                  \
  do {                                                                         \
    int g_ = (int)(got), w_ = (want);                                          \
    cr_assert_eq(g_, w_, "%s: got %s (%d), want %s (%d)", #got, en(g_), g_,    \
                 en(w_), w_);                                                  \
  } while (0)

static char order[64];
static size_t n_order;
static weft_future *settled;

static void note(char c) {
  cr_assert_lt(n_order, sizeof order - 1);
  order[n_order++] = c;
  order[n_order] = '\0';
}

static int cont(weft_future *in, weft_future *out, void *arg) {
  (void)in, (void)out;
  note(*(const char *)arg);
  return 0;
}

/* Notes its letter, queues a continuation (a capital: not a fiber) behind
 * itself if asked, yields, notes its letter again. */
static int yielder(weft_fiber *self, void *arg) {
  (void)self;
  const char *c = arg;
  note(c[0]);
  if (c[1] != '\0') {
    weft_future *t;
    ASSERT_ERR(weft_future_then(settled, cont, (void *)(c + 1), &t), 0);
    weft_future_unref(t);
  }
  ASSERT_ERR(weft_fiber_yield(), 0);
  note(c[0]);
  return 0;
}

Test(fiber_run, the_queue_order_holds_with_continuations_between,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  n_order = 0;
  ASSERT_ERR(weft_future_new(loop, &settled), 0);
  ASSERT_ERR(weft_future_resolve_i64(settled, 1), 0);
  /* a queues C behind b; then a's and b's yields: C runs between b's
   * first and a's second half, exactly as the FIFO says */
  ASSERT_ERR(weft_fiber_spawn(loop, yielder, "aC", NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, yielder, "b", NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, yielder, "c", NULL, NULL), 0);
  th_run(loop);
  cr_assert_str_eq(order, "abcCabc");
  weft_future_unref(settled);
  th_loop_finish(loop);
}

/* ---- a fiber handed over to finishes ---------------------------------- */

static int counts[3];

static int short_one(weft_fiber *self, void *arg) {
  (void)self;
  counts[(intptr_t)arg]++;
  return (int)(intptr_t)arg == 2 ? -EPROTO : 0;
}

/* Spawns two fibers, then yields: the first of them starts by a handoff
 * from this fiber's suspend and finishes; the second likewise from the
 * loop's run. Then it awaits both. */
static int spawner(weft_fiber *self, void *arg) {
  (void)arg;
  weft_future *f[2];
  for (int i = 0; i < 2; i++)
    ASSERT_ERR(weft_fiber_spawn(weft_fiber_loop(self), short_one,
                                (void *)(intptr_t)(i + 1), NULL, &f[i]),
               0);
  ASSERT_ERR(weft_fiber_yield(), 0);
  cr_assert_eq(counts[1], counts[0] + 1); /* both ran meanwhile */
  cr_assert_eq(counts[2], counts[0] + 1);
  ASSERT_ERR(weft_await(f[0]), 0);
  ASSERT_ERR(weft_await(f[1]), -EPROTO);
  for (int i = 0; i < 2; i++)
    weft_future_unref(f[i]);
  counts[0]++;
  return 0;
}

Test(fiber_run, fibers_started_by_a_handoff_finish_and_are_reaped,
     .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  memset(counts, 0, sizeof counts);
  for (int round = 0; round < 3; round++)
    ASSERT_ERR(weft_fiber_run(loop, spawner, NULL, NULL, NULL), 0);
  cr_assert_eq(counts[0], 3);
  cr_assert_eq(counts[1], 3);
  cr_assert_eq(counts[2], 3);
  cr_assert(!weft_loop_alive(loop), "a finished fiber still holds the loop");
  th_loop_finish(loop); /* every struct, stack and node given back */
  th_alloc_restore();
}

/* ---- cancel of a fiber whose wake is queued behind a handoff ---------- */

static weft_future *victim_f;
static int victim_rc = 1;

static int victim(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  victim_rc = weft_fiber_yield(); /* cancelled while its wake is queued */
  return 0;
}

static int canceller(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_future_cancel(victim_f);
  ASSERT_ERR(weft_fiber_yield(), 0); /* hands over to the victim */
  return 0;
}

Test(fiber_run, a_cancel_reaches_a_fiber_resumed_by_a_handoff, .timeout = 10) {
  weft_loop *loop = th_loop();
  ASSERT_ERR(weft_fiber_spawn(loop, victim, NULL, NULL, &victim_f), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, canceller, NULL, NULL, NULL), 0);
  th_run(loop);
  ASSERT_ERR(victim_rc, -ECANCELED);
  ASSERT_ERR(weft_future_error(victim_f), -ECANCELED);
  weft_future_unref(victim_f);
  th_loop_finish(loop);
}
