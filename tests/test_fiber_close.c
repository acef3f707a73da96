/* weft_fiber_close and the waits for a close inside the fiber server
 * (io/fiber_net.c over promises/fiber.c's weft__fiber_wait_closed): the
 * fiber suspends once and the handle's close callback wakes it, so the
 * wait fires no timer, allocates nothing and takes the same turns however
 * busy the loop is; a cancellation does not cut it short; two fibers and
 * a handle's own close callback chain. Loopback TCP, port 0 read back. */
#include <string.h>

#include "support/test.h"

static const char *en(int err) { return weft_err_name(err); }

#define ASSERT_ERR(got, want)                                                  \
  do {                                                                         \
    int g_ = (int)(got), w_ = (want);                                          \
    cr_assert_eq(g_, w_, "%s: got %s (%d), want %s (%d)", #got, en(g_), g_,    \
                 en(w_), w_);                                                  \
  } while (0)

static struct {
  int rc, rc2, done, closed_seen, turns;
  size_t allocs;
  uint64_t timers;
  bool closed_when_back;
  weft_future *victim;
} C;

static uint64_t timers_fired(weft_loop *loop) {
  weft_loop_metrics m;
  ASSERT_ERR(weft_loop_get_metrics(loop, &m, sizeof m), 0);
  return m.timers_fired;
}

/* Runs turns until C.done reaches n; C.turns counts them. */
static void turns_until(weft_loop *loop, int n) {
  for (C.turns = 0; C.done < n && C.turns < 1000; C.turns++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(C.done, n, "not done after %d turns", C.turns);
}

/* ---- one wake, no timer, no allocation -------------------------------- */

static int close_counted(weft_fiber *self, void *arg) {
  (void)arg;
  weft_loop *loop = weft_fiber_loop(self);
  weft_timer t; /* on this stack: must be closed before the return */
  ASSERT_ERR(weft_timer_init(loop, &t), 0);
  if (arg != NULL) { /* a first close warms what the loop keeps */
    ASSERT_ERR(weft_fiber_close(&t.base), 0);
    ASSERT_ERR(weft_timer_init(loop, &t), 0);
  }
  size_t a0 = th_alloc_calls();
  uint64_t t0 = timers_fired(loop);
  C.rc = weft_fiber_close(&t.base);
  C.allocs = th_alloc_calls() - a0;
  C.timers = timers_fired(loop) - t0;
  C.closed_when_back = weft_is_closing(&t.base);
  C.done++;
  return 0;
}

/* Another fiber that yields all the time: the old 0 ms sleep polled once
 * per turn behind it; the close wait must not care. */
static int spinner(weft_fiber *self, void *arg) {
  (void)self;
  while (C.done == 0)
    ASSERT_ERR(weft_fiber_yield(), 0);
  *(int *)arg += 1;
  return 0;
}

Test(fiber_close, wakes_once_from_the_close_phase_without_timer_or_alloc,
     .timeout = 10) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_spawn(loop, close_counted, "warm", NULL, NULL), 0);
  turns_until(loop, 1);
  ASSERT_ERR(C.rc, 0);
  cr_assert_eq(C.allocs, 0, "the wait allocated %zu times", C.allocs);
  cr_assert_eq(C.timers, 0, "the wait fired %llu timers",
               (unsigned long long)C.timers);
  cr_assert(C.closed_when_back);
  /* each close: parked in one turn, closed in its close phase, resumed in
   * the next */
  cr_assert_eq(C.turns, 3, "%d turns", C.turns);
  th_loop_finish(loop);
  th_alloc_restore();
}

Test(fiber_close, a_busy_loop_does_not_delay_the_wake, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  int spun = 0;
  ASSERT_ERR(weft_fiber_spawn(loop, close_counted, NULL, NULL, NULL), 0);
  ASSERT_ERR(weft_fiber_spawn(loop, spinner, &spun, NULL, NULL), 0);
  turns_until(loop, 1);
  ASSERT_ERR(C.rc, 0);
  cr_assert(C.closed_when_back);
  cr_assert_eq(C.turns, 2, "%d turns", C.turns);
  th_run(loop);
  cr_assert_eq(spun, 1);
  th_loop_finish(loop);
}

/* ---- a cancel while waiting ------------------------------------------- */

static int close_then_yield(weft_fiber *self, void *arg) {
  (void)arg;
  weft_timer t;
  ASSERT_ERR(weft_timer_init(weft_fiber_loop(self), &t), 0);
  C.rc = weft_fiber_close(&t.base); /* cancelled meanwhile: still waits */
  C.closed_when_back = weft_is_closing(&t.base);
  C.rc2 = weft_fiber_yield(); /* the cancellation arrives here */
  C.done++;
  return 0;
}

static int canceller(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_future_cancel(C.victim); /* the victim is parked in its close */
  return 0;
}

Test(fiber_close, a_cancel_while_waiting_comes_after_the_close, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_spawn(loop, close_then_yield, NULL, NULL, &C.victim),
             0);
  ASSERT_ERR(weft_fiber_spawn(loop, canceller, NULL, NULL, NULL), 0);
  th_run(loop);
  cr_assert_eq(C.done, 1);
  ASSERT_ERR(C.rc, 0);
  cr_assert(C.closed_when_back);
  ASSERT_ERR(C.rc2, -ECANCELED);
  ASSERT_ERR(weft_future_error(C.victim), -ECANCELED);
  weft_future_unref(C.victim);
  th_loop_finish(loop);
}

/* ---- the server: a handler that closes its connection itself ---------- */

static void note_closed(weft_handle *h) {
  (void)h;
  C.closed_seen++;
}

/* Closes the connection with a callback of its own, without waiting:
 * the server waits for it (its own callback runs first) and frees it. */
static int handler_closes(weft_fiber *self, weft_stream *s, void *arg) {
  (void)self, (void)arg;
  char c;
  ASSERT_ERR(weft_fiber_read(s, &c, 1), 1);
  ASSERT_ERR(weft_close(&s->base, note_closed), 0);
  C.done++;
  return 0;
}

static int client(weft_fiber *self, void *arg) {
  weft_fiber_server *srv = arg;
  weft_tcp t;
  ASSERT_ERR(weft_fiber_open_connection(&t, "127.0.0.1",
                                        (unsigned)weft_fiber_server_port(srv)),
             0);
  ASSERT_ERR(weft_fiber_write(&t.stream, "x", 1), 1);
  char c;
  C.rc2 = (int)weft_fiber_read(&t.stream, &c, 1); /* EOF: the server closed */
  ASSERT_ERR(weft_fiber_close(&t.stream.base), 0);
  ASSERT_ERR(weft_fiber_server_close(srv), 0);
  (void)self;
  return 0;
}

static int serve_one(weft_fiber *self, void *arg) {
  (void)arg;
  weft_fiber_server *srv;
  ASSERT_ERR(
      weft_fiber_start_server("127.0.0.1", 0, handler_closes, NULL, NULL, &srv),
      0);
  weft_future *cf;
  ASSERT_ERR(weft_fiber_spawn(weft_fiber_loop(self), client, srv, NULL, &cf),
             0);
  ASSERT_ERR(weft_await(cf), 0);
  weft_future_unref(cf);
  return 0;
}

Test(fiber_close, the_server_waits_for_a_close_the_handler_began,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_run(loop, serve_one, NULL, NULL, NULL), 0);
  th_run(loop);
  cr_assert_eq(C.done, 1);
  cr_assert_eq(C.closed_seen, 1, "the handler's close callback ran %d times",
               C.closed_seen);
  ASSERT_ERR(C.rc2, 0); /* end of file */
  th_loop_finish(loop);
}
