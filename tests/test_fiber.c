/* Fibers (promises/fiber.c): spawn and results, ordering, awaiting every
 * kind of future, yields, cancellation, groups and scopes, many fibers,
 * bad inputs, loop free, allocation failures, and a stack overflow that
 * hits the guard page. */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/echo.h"
#include "support/test.h"

#include "promises/fiber_internal.h"
#include "promises/internal.h"

static const char *en(int err) { return weft_err_name(err); }

#define ASSERT_ERR(got, want)                                                  \
  do {                                                                         \
    int g_ = (got), w_ = (want);                                               \
    cr_assert_eq(g_, w_, "%s: got %s (%d), want %s (%d)", #got, en(g_), g_,    \
                 en(w_), w_);                                                  \
  } while (0)

static int dtor_calls;
static void count_dtor(void *p) {
  (void)p;
  dtor_calls++;
}

/* Runs the loop one turn at a time until f has settled. */
static void run_until_settled(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

/* ---- results ---------------------------------------------------------- */

static int ret_ptr(weft_fiber *self, void *arg) {
  weft_fiber_return(self, arg, count_dtor);
  return 0;
}

static int ret_i64(weft_fiber *self, void *arg) {
  (void)arg;
  weft_fiber_return_i64(self, 42);
  return 0;
}

static int ret_err(weft_fiber *self, void *arg) {
  (void)arg;
  weft_fiber_return(self, &dtor_calls, count_dtor); /* dropped: rejected */
  return -EIO;
}

static int ret_nothing(weft_fiber *self, void *arg) {
  (void)self;
  (void)arg;
  return 7; /* positive counts as 0 */
}

static int ret_replaced(weft_fiber *self, void *arg) {
  weft_fiber_return(self, arg, count_dtor);
  weft_fiber_return_i64(self, 5); /* drops the pointer */
  return 0;
}

Test(fiber, results_pointer_int64_error, .timeout = 10) {
  weft_loop *loop = th_loop();
  static int cell;
  weft_future *f[5];
  dtor_calls = 0;
  ASSERT_ERR(weft_fiber_spawn(loop, ret_ptr, &cell, NULL, &f[0]), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, ret_i64, NULL, NULL, &f[1]), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, ret_err, NULL, NULL, &f[2]), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, ret_nothing, NULL, NULL, &f[3]), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, ret_replaced, &cell, NULL, &f[4]), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f[0]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value(f[0]), &cell);
  cr_assert_eq(weft_future_get_state(f[1]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f[1]), 42);
  cr_assert_eq(weft_future_get_state(f[2]), WEFT_FUTURE_REJECTED);
  ASSERT_ERR(weft_future_error(f[2]), -EIO);
  cr_assert_eq(weft_future_value_i64(f[3]), 0);
  cr_assert_eq(weft_future_get_state(f[3]), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f[4]), 5);
  cr_assert_eq(dtor_calls, 2); /* ret_err's and ret_replaced's, dropped */
  for (int i = 0; i < 5; i++)
    weft_future_unref(f[i]);
  cr_assert_eq(dtor_calls, 3); /* f[0]'s value, with its future */
  th_loop_finish(loop);
}

/* ---- ordering ------------------------------------------------------------ */

static char order_log[64];
static size_t order_n;

static int log_index(weft_fiber *self, void *arg) {
  (void)self;
  order_log[order_n++] = (char)(intptr_t)arg;
  return 0;
}

Test(fiber, starts_on_a_later_turn_in_spawn_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  order_n = 0;
  for (int i = 0; i < 4; i++)
    ASSERT_ERR(weft_fiber_spawn(loop, log_index, (void *)(intptr_t)('a' + i),
                                NULL, NULL),
               0);
  cr_assert_eq(order_n, 0); /* nothing ran inline */
  th_run(loop);
  cr_assert_eq(order_n, 4);
  cr_assert_eq(memcmp(order_log, "abcd", 4), 0);
  th_loop_finish(loop);
}

static int yielder(weft_fiber *self, void *arg) {
  (void)self;
  for (int i = 0; i < 5; i++) {
    order_log[order_n++] = (char)(intptr_t)arg;
    ASSERT_ERR(weft_fiber_yield(), 0);
  }
  return 0;
}

Test(fiber, yield_interleaves_two_fibers_exactly, .timeout = 10) {
  weft_loop *loop = th_loop();
  order_n = 0;
  ASSERT_ERR(weft_fiber_spawn(loop, yielder, (void *)'A', NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, yielder, (void *)'B', NULL, NULL), 0);
  th_run(loop);
  order_log[order_n] = 0;
  cr_assert_str_eq(order_log, "ABABABABAB");
  th_loop_finish(loop);
}

/* ---- awaiting each kind of future ---------------------------------------- */

typedef struct kinds {
  weft_loop *loop;
  weft_queue *q;
  weft_lock *lock;
  int steps;
  int lock_order[4];
  int nlock;
} kinds;

static void resolve_later(void *arg) { weft_future_resolve_i64(arg, 99); }

static void *pool_job(void *arg, int *err) {
  (void)err;
  return arg;
}

static int await_many(weft_fiber *self, void *arg) {
  kinds *k = arg;
  weft_loop *loop = weft_fiber_loop(self);
  /* sleep, both ways */
  uint64_t t0 = weft_now(loop);
  ASSERT_ERR(weft_fiber_sleep(5), 0);
  cr_assert_geq(weft_now(loop) - t0, 5);
  weft_future *s;
  ASSERT_ERR(weft_sleep(loop, 1, &s), 0);
  ASSERT_ERR(weft_await(s), 0);
  weft_future_unref(s);
  k->steps++;
  /* a plain future settled from a callback */
  weft_future *p;
  ASSERT_ERR(weft_future_new(loop, &p), 0);
  ASSERT_ERR(weft_call_soon(loop, resolve_later, p), 0);
  int64_t v = 0;
  ASSERT_ERR(weft_await_take_i64(p, &v), 0);
  cr_assert_eq(v, 99);
  k->steps++;
  /* a queue get (the item is put by the other fiber) */
  weft_future *g;
  ASSERT_ERR(weft_queue_get(k->q, &g), 0);
  ASSERT_ERR(weft_await(g), 0);
  cr_assert_eq(weft_future_value(g), (void *)k);
  weft_future_unref(g);
  k->steps++;
  /* a pool job */
  weft_future *j;
  ASSERT_ERR(
      weft_pool_submit_future(loop, WEFT_LANE_CPU, pool_job, k, NULL, &j), 0);
  ASSERT_ERR(weft_await(j), 0);
  cr_assert_eq(weft_future_value(j), (void *)k);
  weft_future_unref(j);
  k->steps++;
  return 0;
}

static int putter(weft_fiber *self, void *arg) {
  (void)self;
  kinds *k = arg;
  ASSERT_ERR(weft_fiber_sleep(2), 0);
  weft_future *p;
  ASSERT_ERR(weft_queue_put(k->q, k, &p), 0);
  ASSERT_ERR(weft_await(p), 0);
  weft_future_unref(p);
  return 0;
}

Test(fiber, awaits_sleep_plain_queue_and_pool, .timeout = 10) {
  weft_loop *loop = th_loop();
  kinds k = {.loop = loop};
  ASSERT_ERR(weft_queue_new(loop, 1, NULL, &k.q), 0);
  weft_future *a, *b;
  ASSERT_ERR(weft_fiber_spawn(loop, await_many, &k, NULL, &a), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, putter, &k, NULL, &b), 0);
  th_run(loop);
  ASSERT_ERR(weft_future_error(a), 0);
  ASSERT_ERR(weft_future_error(b), 0);
  cr_assert_eq(weft_future_get_state(a), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(k.steps, 4);
  weft_future_unref(a);
  weft_future_unref(b);
  ASSERT_ERR(weft_queue_free(k.q), 0);
  th_loop_finish(loop);
}

static int locker(weft_fiber *self, void *arg) {
  (void)self;
  kinds *k = arg;
  weft_future *f;
  ASSERT_ERR(weft_lock_acquire(k->lock, &f), 0);
  ASSERT_ERR(weft_await(f), 0);
  weft_future_unref(f);
  k->lock_order[k->nlock++] = (int)(intptr_t)weft_fiber_get_name(self)[0];
  ASSERT_ERR(weft_fiber_yield(), 0); /* hold it across a yield */
  k->lock_order[k->nlock++] = (int)(intptr_t)weft_fiber_get_name(self)[0];
  ASSERT_ERR(weft_lock_release(k->lock), 0);
  return 0;
}

Test(fiber, lock_serialises_two_fibers, .timeout = 10) {
  weft_loop *loop = th_loop();
  kinds k = {.loop = loop};
  ASSERT_ERR(weft_lock_new(loop, &k.lock), 0);
  weft_fiber_options o1 = {.name = "x"}, o2 = {.name = "y"};
  ASSERT_ERR(weft_fiber_spawn(loop, locker, &k, &o1, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, locker, &k, &o2, NULL), 0);
  th_run(loop);
  cr_assert_eq(k.nlock, 4);
  cr_assert_eq(k.lock_order[0], 'x');
  cr_assert_eq(k.lock_order[1], 'x');
  cr_assert_eq(k.lock_order[2], 'y');
  cr_assert_eq(k.lock_order[3], 'y');
  ASSERT_ERR(weft_lock_free(k.lock), 0);
  th_loop_finish(loop);
}

static void free_handle(weft_handle *h) { free(h->data); }

static int connector(weft_fiber *self, void *arg) {
  struct sockaddr_storage *addr = arg;
  weft_tcp *t = malloc(sizeof *t);
  cr_assert_not_null(t);
  ASSERT_ERR(weft_tcp_init(weft_fiber_loop(self), t), 0);
  weft_future *f;
  ASSERT_ERR(weft_tcp_connect_future(t, (struct sockaddr *)addr, &f), 0);
  ASSERT_ERR(weft_await(f), 0);
  weft_future_unref(f);
  weft_fiber_return_i64(self, 1);
  t->stream.base.data = t;
  ASSERT_ERR(weft_close(&t->stream.base, free_handle), 0);
  return 0;
}

Test(fiber, awaits_a_tcp_connect, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp srv;
  th_echo echo = {0};
  struct sockaddr_storage addr;
  ASSERT_ERR(weft_tcp_init(loop, &srv), 0);
  ASSERT_ERR(weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&addr), 0);
  ASSERT_ERR(weft_tcp_bind(&srv, (struct sockaddr *)&addr, 0), 0);
  th_echo_listen(&echo, &srv.stream);
  socklen_t len = sizeof addr;
  ASSERT_ERR(weft_tcp_getsockname(&srv, (struct sockaddr *)&addr, &len), 0);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, connector, &addr, NULL, &f), 0);
  run_until_settled(loop, f);
  ASSERT_ERR(weft_future_error(f), 0);
  cr_assert_eq(weft_future_value_i64(f), 1);
  weft_future_unref(f);
  ASSERT_ERR(weft_close(&srv.stream.base, NULL), 0);
  th_run(loop); /* the accepted side reads EOF and closes */
  cr_assert_eq(echo.accepted, 1);
  cr_assert_eq(echo.closed, 1);
  th_loop_finish(loop);
}

/* ---- an await of a settled future still yields ------------------------- */

typedef struct yield_once {
  weft_future *settled;
  int cb_runs, other_runs;
  int seen_cb, seen_other;
} yield_once;

static void count_settled(weft_future *f, void *arg) {
  (void)f;
  ((yield_once *)arg)->cb_runs++;
}

static int await_settled(weft_fiber *self, void *arg) {
  (void)self;
  yield_once *y = arg;
  /* queues a continuation, then awaits a settled future: the continuation
   * and the other fiber run before the await returns */
  weft_future *p;
  ASSERT_ERR(weft_future_new(weft_fiber_loop(self), &p), 0);
  ASSERT_ERR(weft_future_on_settled(p, count_settled, y), 0);
  ASSERT_ERR(weft_future_resolve_i64(p, 1), 0);
  weft_future_unref(p);
  cr_assert_eq(y->cb_runs, 0);
  ASSERT_ERR(weft_await(y->settled), 0);
  y->seen_cb = y->cb_runs;
  y->seen_other = y->other_runs;
  return 0;
}

static int bump(weft_fiber *self, void *arg) {
  (void)self;
  ((yield_once *)arg)->other_runs++;
  return 0;
}

Test(fiber, await_of_a_settled_future_yields_once, .timeout = 10) {
  weft_loop *loop = th_loop();
  yield_once y = {0};
  ASSERT_ERR(weft_future_new(loop, &y.settled), 0);
  ASSERT_ERR(weft_future_resolve_i64(y.settled, 3), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, await_settled, &y, NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, bump, &y, NULL, NULL), 0);
  th_run(loop);
  cr_assert_eq(y.seen_cb, 1);
  cr_assert_eq(y.seen_other, 1);
  weft_future_unref(y.settled);
  th_loop_finish(loop);
}

/* Two fibers awaiting settled futures alternate exactly: an await goes
 * behind whatever is queued (the in-place path is only for a fiber alone
 * in the ready queue). */
typedef struct alternate {
  weft_future *settled;
  char trace[64];
  int len;
} alternate;

static int await_and_mark(weft_fiber *self, void *arg) {
  alternate *a = arg;
  char me = weft_fiber_get_name(self)[0];
  for (int i = 0; i < 4; i++) {
    a->trace[a->len++] = me;
    ASSERT_ERR(weft_await(a->settled), 0);
  }
  return 0;
}

static void mark_soon(void *arg) {
  alternate *a = arg;
  a->trace[a->len++] = 'c';
}

static int alone_then_queued(weft_fiber *self, void *arg) {
  alternate *a = arg;
  ASSERT_ERR(weft_await(a->settled), 0); /* alone: in place */
  a->trace[a->len++] = 'x';
  ASSERT_ERR(weft_call_soon(weft_fiber_loop(self), mark_soon, a), 0);
  ASSERT_ERR(weft_fiber_yield(), 0); /* a deferred callback waits */
  a->trace[a->len++] = 'y';
  return 0;
}

Test(fiber, settled_awaits_of_two_fibers_alternate, .timeout = 10) {
  weft_loop *loop = th_loop();
  alternate a = {0};
  ASSERT_ERR(weft_future_new(loop, &a.settled), 0);
  ASSERT_ERR(weft_future_resolve_i64(a.settled, 1), 0);
  weft_fiber_options oa = {.name = "a"}, ob = {.name = "b"};
  ASSERT_ERR(weft_fiber_spawn(loop, await_and_mark, &a, &oa, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, await_and_mark, &a, &ob, NULL), 0);
  th_run(loop);
  cr_assert_str_eq(a.trace, "abababab");
  memset(&a.trace, 0, sizeof a.trace);
  a.len = 0;
  /* a yield with a deferred callback queued: the fiber resumes from the
   * drain it runs in, as before (the callback runs after that drain) */
  ASSERT_ERR(weft_fiber_spawn(loop, alone_then_queued, &a, NULL, NULL), 0);
  th_run(loop);
  cr_assert_str_eq(a.trace, "xyc");
  weft_future_unref(a.settled);
  th_loop_finish(loop);
}

/* ---- a loop of yields cannot keep the loop from polling ------------------ */

static void set_flag(weft_future *f, void *arg) {
  (void)f;
  *(int *)arg = 1;
}

static int spin_until(weft_fiber *self, void *arg) {
  int *flag = arg;
  weft_future *settled, *s;
  /* due at the next timer run, which comes after this turn's drain */
  ASSERT_ERR(weft_sleep(weft_fiber_loop(self), 0, &s), 0);
  ASSERT_ERR(weft_future_on_settled(s, set_flag, flag), 0);
  weft_future_unref(s);
  ASSERT_ERR(weft_future_new(weft_fiber_loop(self), &settled), 0);
  ASSERT_ERR(weft_future_resolve_i64(settled, 0), 0);
  int64_t n = 0;
  while (!*flag && n < 100000000) {
    ASSERT_ERR(n % 2 ? weft_fiber_yield() : weft_await(settled), 0);
    n++;
  }
  weft_future_unref(settled);
  weft_fiber_return_i64(self, n);
  return 0;
}

Test(fiber, yields_and_settled_awaits_let_timers_run, .timeout = 20) {
  weft_loop *loop = th_loop();
  int flag = 0;
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, spin_until, &flag, NULL, &f), 0);
  th_run(loop);
  cr_assert_eq(flag, 1);
  /* a few turns' budgets (1024 quick wakes each), not the ready queue's
   * call_soon_budget x 4096 */
  cr_assert_leq(weft_future_value_i64(f), 4 * 1024, "%lld wakes",
                (long long)weft_future_value_i64(f));
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* ---- no allocation per await or per switch ------------------------------ */

/* The measured pattern, 3000 settled awaits and 3000 yields: about six
 * turns' budgets, so it also goes through the budget's 0 ms sleeps. */
static void await_round(weft_future *settled) {
  for (int i = 0; i < 3000; i++) {
    ASSERT_ERR(weft_await(settled), 0);
    ASSERT_ERR(weft_fiber_yield(), 0);
  }
}

static int await_loop(weft_fiber *self, void *arg) {
  weft_future *settled = arg;
  /* warm up on the very pattern measured, long enough for every cache the
   * steady state needs to reach its size: the budget's sleeps reuse timer
   * holders (one goes back to the idle list only in the close phase of the
   * turn it fired in, so two alternate) and future slab entries */
  for (int r = 0; r < 3; r++)
    await_round(settled);
  size_t before = th_alloc_calls();
  await_round(settled);
  weft_fiber_return_i64(self, (int64_t)(th_alloc_calls() - before));
  return 0;
}

/* Two fibers, so that awaits and yields switch (one fiber alone in the
 * ready queue continues in place, see docs/fibers.md): each counts the
 * allocator's calls across its measured round, which the other's overlaps. */
Test(fiber, awaits_and_yields_allocate_nothing, .timeout = 20) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  weft_future *settled, *f[2];
  ASSERT_ERR(weft_future_new(loop, &settled), 0);
  ASSERT_ERR(weft_future_resolve_i64(settled, 1), 0);
  size_t in_use0, in_use1;
  for (int i = 0; i < 2; i++)
    ASSERT_ERR(weft_fiber_spawn(loop, await_loop, settled, NULL, &f[i]), 0);
  cr_assert(weft__future_slabs_validate(loop, &in_use0));
  th_run(loop);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(weft_future_value_i64(f[i]), 0, "fiber %d: %lld allocations",
                 i, (long long)weft_future_value_i64(f[i]));
    weft_future_unref(f[i]);
  }
  cr_assert(weft__future_slabs_validate(loop, &in_use1));
  /* `settled`, and the two wake nodes the spare structs keep for the next
   * spawns: the fibers' own futures are back */
  cr_assert_eq(in_use1, 3);
  cr_assert_lt(in_use1, in_use0);
  weft_future_unref(settled);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* One fiber alone: its settled awaits and yields take the in-place path,
 * which allocates nothing either. */
Test(fiber, awaits_alone_allocate_nothing, .timeout = 20) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  weft_future *settled, *f;
  ASSERT_ERR(weft_future_new(loop, &settled), 0);
  ASSERT_ERR(weft_future_resolve_i64(settled, 1), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, await_loop, settled, NULL, &f), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(f), 0, "%lld allocations",
               (long long)weft_future_value_i64(f));
  weft_future_unref(f);
  weft_future_unref(settled);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* ---- spawn and finish: warm stacks, spare structs ------------------------ */

enum { BATCH = 64 };
static void *batch_guard[2 * BATCH];
static int batch_ran;

static int note_guard(weft_fiber *self, void *arg) {
  batch_guard[(intptr_t)arg] = weft__fiber_guard(self);
  batch_ran++;
  return 0;
}

static void run_batch(weft_loop *loop, const weft_fiber_options *o) {
  batch_ran = 0;
  for (intptr_t i = 0; i < BATCH; i++)
    ASSERT_ERR(weft_fiber_spawn(loop, note_guard, (void *)i, o, NULL), 0);
  th_run(loop);
  cr_assert_eq(batch_ran, BATCH);
}

/* Fibers that start and finish one after the other all run on the stack
 * idled last (warm). */
Test(fiber, a_batch_runs_on_the_warmest_stack, .timeout = 10) {
  weft_loop *loop = th_loop();
  run_batch(loop, NULL); /* BATCH stacks idle now */
  run_batch(loop, NULL);
  for (int i = 1; i < BATCH; i++)
    cr_assert_eq(batch_guard[i], batch_guard[0], "fiber %d ran on another", i);
  /* another size: its own stack, the default ones are not taken */
  weft_fiber_options big = {.stack_size = 256 * 1024};
  run_batch(loop, &big);
  for (int i = 1; i < BATCH; i++)
    cr_assert_eq(batch_guard[i], batch_guard[0]);
  void *big_guard = batch_guard[0];
  /* the default stacks are still idle beside the big ones, and run warm
   * again */
  run_batch(loop, NULL);
  cr_assert_neq(batch_guard[0], big_guard);
  for (int i = 1; i < BATCH; i++)
    cr_assert_eq(batch_guard[i], batch_guard[0]);
  th_loop_finish(loop);
}

static void run_n(weft_loop *loop, int n) {
  batch_ran = 0;
  for (intptr_t i = 0; i < n; i++)
    ASSERT_ERR(weft_fiber_spawn(loop, note_guard, (void *)i, NULL, NULL), 0);
  th_run(loop);
  cr_assert_eq(batch_ran, n);
}

/* More fibers than idle stacks: the first BATCH count on the idle ones
 * (taken at start), the other BATCH map their own at spawn; all of them
 * still run on the stack idled last, and afterwards all 2 x BATCH stacks
 * idle, so the same spawn again allocates nothing. */
Test(fiber, a_batch_larger_than_the_idle_stacks_runs_warm, .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  run_n(loop, BATCH); /* BATCH stacks idle now */
  run_n(loop, 2 * BATCH);
  for (int i = 1; i < 2 * BATCH; i++)
    cr_assert_eq(batch_guard[i], batch_guard[0], "fiber %d ran on another", i);
  size_t before = th_alloc_calls();
  run_n(loop, 2 * BATCH);
  cr_assert_eq(th_alloc_calls() - before, 0);
  for (int i = 1; i < 2 * BATCH; i++)
    cr_assert_eq(batch_guard[i], batch_guard[0]);
  th_loop_finish(loop);
  th_alloc_restore();
}

static int count_allocs(weft_loop *loop, int rounds) {
  size_t before = th_alloc_calls();
  for (int r = 0; r < rounds; r++)
    run_batch(loop, NULL);
  return (int)(th_alloc_calls() - before);
}

/* Once a loop has run a batch, spawning and finishing the same number of
 * fibers again allocates nothing: structs, stacks and futures are reused. */
Test(fiber, spawn_and_finish_allocate_nothing_in_steady_state, .timeout = 20) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  count_allocs(loop, 2);
  int n = count_allocs(loop, 3);
  cr_assert_eq(n, 0, "%d allocations in 3 batches of %d fibers", n, BATCH);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* ---- cancellation -------------------------------------------------------- */

typedef struct cancel_rec {
  int await_err, later_err, ran, cancelled_seen;
  weft_future *awaited;
} cancel_rec;

static int long_sleeper(weft_fiber *self, void *arg) {
  cancel_rec *r = arg;
  weft_fiber_return(self, r, count_dtor);
  r->ran = 1;
  r->await_err = weft_fiber_sleep(60000);
  r->cancelled_seen = weft_fiber_cancelled(self);
  r->later_err = weft_fiber_sleep(1); /* later awaits work */
  return 0;
}

Test(fiber, cancel_while_awaiting_stops_the_sleep, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_rec r = {0};
  dtor_calls = 0;
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, long_sleeper, &r, NULL, &f), 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT); /* it starts and sleeps */
  cr_assert_eq(r.ran, 1);
  ASSERT_ERR(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  uint64_t t0 = weft_now(loop);
  th_run(loop); /* returns: the 60 s timer was stopped */
  cr_assert_lt(weft_now(loop) - t0, 5000);
  ASSERT_ERR(r.await_err, -ECANCELED);
  ASSERT_ERR(r.later_err, 0);
  cr_assert_eq(r.cancelled_seen, 1);
  cr_assert_eq(dtor_calls, 1); /* its value, dropped once */
  ASSERT_ERR(weft_future_cancel(f), -EALREADY);
  weft_future_unref(f);
  cr_assert_eq(dtor_calls, 1);
  th_loop_finish(loop);
}

static int await_shared(weft_fiber *self, void *arg) {
  (void)self;
  cancel_rec *r = arg;
  r->await_err = weft_await(r->awaited);
  return 0;
}

static int noop_then(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  (void)arg;
  return 0;
}

Test(fiber, cancel_detaches_from_a_shared_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_rec r = {0};
  weft_future *f, *d;
  ASSERT_ERR(weft_future_new(loop, &r.awaited), 0);
  ASSERT_ERR(weft_future_then(r.awaited, noop_then, NULL, &d), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, await_shared, &r, NULL, &f), 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_future_cancel(f), 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(r.await_err, -ECANCELED);
  /* another consumer: the awaited future was left alone */
  cr_assert_eq(weft_future_get_state(r.awaited), WEFT_FUTURE_PENDING);
  ASSERT_ERR(weft_future_resolve_i64(r.awaited, 1), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(d), WEFT_FUTURE_FULFILLED);
  weft_future_unref(d);
  weft_future_unref(r.awaited);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(fiber, cancel_of_the_sole_consumer_cancels_the_awaited, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_rec r = {0};
  weft_future *f;
  ASSERT_ERR(weft_future_new(loop, &r.awaited), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, await_shared, &r, NULL, &f), 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_get_state(r.awaited), WEFT_FUTURE_CANCELLED);
  th_run(loop);
  ASSERT_ERR(r.await_err, -ECANCELED);
  weft_future_unref(r.awaited);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int early(weft_fiber *self, void *arg) {
  cancel_rec *r = arg;
  r->ran = 1;
  r->cancelled_seen = weft_fiber_cancelled(self);
  r->await_err = weft_fiber_yield();
  r->later_err = weft_fiber_yield();
  weft_fiber_return(self, r, count_dtor);
  return 0;
}

Test(fiber, cancel_before_start_runs_the_body_cancelled, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_rec r = {0};
  dtor_calls = 0;
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, early, &r, NULL, &f), 0);
  ASSERT_ERR(weft_future_cancel(f), 0);
  cr_assert_eq(r.ran, 0);
  th_run(loop);
  cr_assert_eq(r.ran, 1);
  cr_assert_eq(r.cancelled_seen, 1);
  ASSERT_ERR(r.await_err, -ECANCELED);
  ASSERT_ERR(r.later_err, 0);
  cr_assert_eq(dtor_calls, 1);
  ASSERT_ERR(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int fail_soon(weft_fiber *self, void *arg) {
  (void)self;
  (void)arg;
  ASSERT_ERR(weft_fiber_sleep(1), 0);
  return -EIO;
}

Test(fiber, group_cancel_on_error_cancels_sibling_fibers, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_rec r = {0};
  dtor_calls = 0;
  weft_future *g, *a, *b;
  ASSERT_ERR(weft_group_new(loop, WEFT_GROUP_CANCEL_ON_ERROR, &g), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, long_sleeper, &r, NULL, &a), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, fail_soon, NULL, NULL, &b), 0);
  ASSERT_ERR(weft_group_add(g, a), 0);
  ASSERT_ERR(weft_group_add(g, b), 0);
  ASSERT_ERR(weft_group_close(g), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_REJECTED);
  ASSERT_ERR(weft_future_error(g), -EIO);
  cr_assert_eq(weft_future_get_state(a), WEFT_FUTURE_CANCELLED);
  ASSERT_ERR(r.await_err, -ECANCELED);
  cr_assert_eq(dtor_calls, 1);
  weft_future_unref(a);
  weft_future_unref(b);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(fiber, scope_deadline_cancels_its_fiber, .timeout = 10) {
  weft_loop *loop = th_loop();
  cancel_rec r = {0};
  dtor_calls = 0;
  weft_future *s, *a;
  ASSERT_ERR(weft_scope_new(loop, NULL, 20, &s), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, long_sleeper, &r, NULL, &a), 0);
  ASSERT_ERR(weft_scope_attach(s, a), 0);
  ASSERT_ERR(weft_scope_close(s), 0);
  th_run(loop);
  ASSERT_ERR(weft_future_error(s), -ETIMEDOUT);
  cr_assert_eq(weft_future_get_state(a), WEFT_FUTURE_CANCELLED);
  ASSERT_ERR(r.await_err, -ECANCELED);
  ASSERT_ERR(r.later_err, 0);
  weft_future_unref(a);
  weft_future_unref(s);
  th_loop_finish(loop);
}

/* ---- many fibers --------------------------------------------------------- */

typedef struct many {
  weft_event *ev;
  int waiting, done;
} many;

static int wait_event(weft_fiber *self, void *arg) {
  many *m = arg;
  weft_future *w;
  ASSERT_ERR(weft_event_wait(m->ev, &w), 0);
  m->waiting++;
  ASSERT_ERR(weft_await(w), 0);
  weft_future_unref(w);
  m->done++;
  weft_fiber_return_i64(self, 1);
  return 0;
}

Test(fiber, ten_thousand_fibers_alive_at_once, .timeout = 30) {
  weft_loop *loop = th_loop();
  many m = {0};
  ASSERT_ERR(weft_event_new(loop, &m.ev), 0);
#ifdef WEFT_TSAN
  enum { N = 1000 }; /* a TSan fiber costs a thread's state: fewer */
#else
  enum { N = 10000 };
#endif
  for (int i = 0; i < N; i++)
    ASSERT_ERR(weft_fiber_spawn(loop, wait_event, &m, NULL, NULL), 0);
  while (m.waiting < N)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(m.done, 0);
  ASSERT_ERR(weft_loop_free(loop), -EBUSY); /* live fibers */
  ASSERT_ERR(weft_event_set(m.ev), 0);
  th_run(loop);
  cr_assert_eq(m.done, N);
  ASSERT_ERR(weft_event_free(m.ev), 0);
  th_loop_finish(loop);
}

/* ---- outside a fiber, bad inputs ----------------------------------------- */

Test(fiber, outside_a_fiber_is_eperm, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  ASSERT_ERR(weft_future_new(loop, &f), 0);
  ASSERT_ERR(weft_await(f), -EPERM);
  ASSERT_ERR(weft_await(NULL), -EPERM);
  ASSERT_ERR(weft_fiber_yield(), -EPERM);
  ASSERT_ERR(weft_fiber_sleep(1), -EPERM);
  cr_assert_null(weft_fiber_current());
  cr_assert(!weft_in_fiber());
  int64_t v = 9;
  ASSERT_ERR(weft_await_take_i64(f, &v), -EPERM); /* drops the reference */
  cr_assert_eq(v, 0);
  size_t in_use;
  cr_assert(weft__future_slabs_validate(loop, &in_use));
  cr_assert_eq(in_use, 0);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

typedef struct bad {
  weft_loop *other;
  weft_future *foreign;
  int rc[8];
  const char *name;
  bool in, cur;
} bad;

static int bad_inside(weft_fiber *self, void *arg) {
  bad *b = arg;
  b->in = weft_in_fiber();
  b->cur = weft_fiber_current() == self;
  b->rc[0] = weft_await(NULL);
  b->rc[1] = weft_await(b->foreign);
  b->rc[2] = weft_await(weft_fiber_future(self));
  b->rc[3] = weft_fiber_sleep(WEFT_TIMEOUT_MAX + 1);
  b->rc[4] = weft_fiber_run(weft_fiber_loop(self), ret_i64, NULL, NULL, NULL);
  b->rc[5] = weft_await_take_i64(NULL, NULL);
  b->name = weft_fiber_get_name(self);
  return 0;
}

Test(fiber, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  bad b = {0};
  b.other = th_loop();
  ASSERT_ERR(weft_future_new(b.other, &b.foreign), 0);
  ASSERT_ERR(weft_fiber_spawn(NULL, bad_inside, &b, NULL, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_spawn(loop, NULL, &b, NULL, NULL), -EINVAL);
  weft_fiber_options big = {.stack_size = WEFT_FIBER_STACK_MAX + 1};
  ASSERT_ERR(weft_fiber_spawn(loop, bad_inside, &b, &big, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_run(NULL, bad_inside, &b, NULL, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_run(loop, NULL, &b, NULL, NULL), -EINVAL);
  cr_assert(!weft_fiber_cancelled(NULL));
  cr_assert_null(weft_fiber_get_name(NULL));
  cr_assert_null(weft_fiber_loop(NULL));
  cr_assert_null(weft_fiber_future(NULL));
  weft_fiber_return(NULL, NULL, NULL);
  weft_fiber_return_i64(NULL, 1);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, bad_inside, &b, NULL, &f), 0);
  th_run(loop);
  cr_assert(b.in);
  cr_assert(b.cur);
  ASSERT_ERR(b.rc[0], -EINVAL);
  ASSERT_ERR(b.rc[1], -EINVAL);
  ASSERT_ERR(b.rc[2], -EDEADLK);
  ASSERT_ERR(b.rc[3], -EINVAL);
  ASSERT_ERR(b.rc[4], -EBUSY);
  ASSERT_ERR(b.rc[5], -EINVAL);
  cr_assert_str_eq(b.name, "fiber");
  ASSERT_ERR(weft_future_error(f), 0);
  weft_future_unref(f);
  weft_future_unref(b.foreign);
  th_loop_usable(loop);
  th_loop_close(b.other);
  th_loop_finish(loop);
}

static int name_of(weft_fiber *self, void *arg) {
  char *out = arg;
  strcpy(out, weft_fiber_get_name(self));
  return 0;
}

Test(fiber, names_are_copied_and_cut, .timeout = 10) {
  weft_loop *loop = th_loop();
  char buf[128], got1[128] = "", got2[128] = "";
  strcpy(buf, "worker-1");
  weft_fiber_options o = {.name = buf, .stack_size = 1}; /* raised to min */
  ASSERT_ERR(weft_fiber_spawn(loop, name_of, got1, &o, NULL), 0);
  strcpy(buf, "changed");
  char longname[100];
  memset(longname, 'n', 99);
  longname[99] = 0;
  weft_fiber_options o2 = {.name = longname};
  ASSERT_ERR(weft_fiber_spawn(loop, name_of, got2, &o2, NULL), 0);
  th_run(loop);
  cr_assert_str_eq(got1, "worker-1");
  cr_assert_eq(strlen(got2), 63);
  th_loop_finish(loop);
}

/* ---- weft_fiber_run ---------------------------------------------------- */

static int main_fiber(weft_fiber *self, void *arg) {
  (void)arg;
  ASSERT_ERR(weft_fiber_sleep(1), 0);
  weft_fiber_return_i64(self, 123);
  return 0;
}

Test(fiber, run_returns_the_result, .timeout = 10) {
  weft_loop *loop = th_loop();
  int64_t v = 0;
  ASSERT_ERR(weft_fiber_run(loop, main_fiber, NULL, NULL, &v), 0);
  cr_assert_eq(v, 123);
  v = 5;
  ASSERT_ERR(weft_fiber_run(loop, fail_soon, NULL, NULL, &v), -EIO);
  cr_assert_eq(v, 0);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- loop free with live fibers ------------------------------------------ */

Test(fiber, loop_free_is_ebusy_while_a_fiber_lives, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, main_fiber, NULL, NULL, &f), 0);
  ASSERT_ERR(weft_loop_free(loop), -EBUSY); /* not started */
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  ASSERT_ERR(weft_loop_free(loop), -EBUSY); /* sleeping */
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(f), 123);
  weft_future_unref(f);
  th_loop_finish(loop); /* now it frees */
}

/* ---- allocation failures ------------------------------------------------- */

/* A failure inside the fiber (its sleep) rejects its future. */
static int sweep_fiber(weft_fiber *self, void *arg) {
  (void)arg;
  int err = weft_fiber_sleep(1);
  if (err == 0) err = weft_fiber_yield();
  weft_fiber_return_i64(self, 1);
  return err;
}

static int sweep_op(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f;
  int err = weft_fiber_spawn(loop, sweep_fiber, NULL, NULL, &f);
  if (err != 0) return err;
  run_until_settled(loop, f);
  err = weft_future_error(f);
  weft_future_unref(f);
  return err;
}

Test(fiber, spawn_allocation_failures_are_enomem, .timeout = 30) {
  cr_assert_geq(th_alloc_sweep(sweep_op, NULL), 1);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(WEFT_TSAN)
/* No stack mapping (the address space is capped): -ENOMEM, nothing made. */
Test(fiber, no_stack_mapping_is_enomem, .timeout = 10) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    weft_loop *loop = th_loop();
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_AS, &rl);
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (fp == NULL || fscanf(fp, "%lu", &pages) != 1) _exit(2);
    fclose(fp);
    rl.rlim_cur = pages * (unsigned long)sysconf(_SC_PAGESIZE) + (1u << 20);
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
    weft_fiber_options o = {.stack_size = 64u << 20};
    weft_future *f = NULL;
    int err = weft_fiber_spawn(loop, ret_i64, NULL, &o, &f);
    _exit(err == -ENOMEM && f == NULL ? 0 : 1);
  }
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st));
  cr_assert_eq(WEXITSTATUS(st), 0);
}
#endif

/* ---- stack overflow hits the guard page ---------------------------------- */

static char *guard_lo;
static int report_fd;

static void on_segv(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  char *a = si->si_addr;
  long page = sysconf(_SC_PAGESIZE);
  char ok = a >= guard_lo && a < guard_lo + page ? 'G' : 'X';
  if (write(report_fd, &ok, 1) != 1) _exit(4);
  signal(sig, SIG_DFL); /* returning re-faults, now fatally */
}

static volatile int depth_limit = INT32_MAX; /* never reached */

static int recurse(volatile char *p, int depth) {
  volatile char pad[512];
  pad[0] = (char)depth;
  pad[511] = p != NULL ? p[0] : 0;
  if (depth >= depth_limit) return pad[0];
  return recurse(pad, depth + 1) + pad[511];
}

static int overflow(weft_fiber *self, void *arg) {
  (void)arg;
  guard_lo = weft__fiber_guard(self);
  return recurse(NULL, 0);
}

Test(fiber, stack_overflow_is_sigsegv_on_the_guard_page, .timeout = 20) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    report_fd = fds[1];
    static char alt[64 * 1024];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    weft_loop *loop = th_loop();
    weft_fiber_spawn(loop, overflow, NULL, NULL, NULL);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    _exit(0); /* not reached */
  }
  close(fds[1]);
  char got = 0;
  ssize_t n = read(fds[0], &got, 1);
  close(fds[0]);
  int st = 0;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFSIGNALED(st), "the child exited with status %d",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  cr_assert_eq(WTERMSIG(st), SIGSEGV);
  cr_assert_eq(n, 1);
  cr_assert_eq(got, 'G', "the fault was not in the guard page");
}
