/* The asyncio-shaped fiber conveniences (promises/fiber_ops.c,
 * io/fiber_net.c): weft_fiber_main (asyncio.run with its own loop), task
 * groups with a limit, weft_fiber_map and weft_fiber_gather_calls,
 * weft_fiber_wait_for, weft_fiber_close, weft_fiber_open_connection and
 * the fiber server (start_server, server_port, server_close,
 * serve_forever). Each: normal use with exact counts, bad inputs, -EPERM
 * outside a fiber, cancellation, allocation failures. TCP on 127.0.0.1
 * with port 0 read back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test.h"

static const char *en(int err) { return weft_err_name(err); }

#define ASSERT_ERR(got, want)                                                  \
  do {                                                                         \
    int g_ = (int)(got), w_ = (want);                                          \
    cr_assert_eq(g_, w_, "%s: got %s (%d), want %s (%d)", #got, en(g_), g_,    \
                 en(w_), w_);                                                  \
  } while (0)

/* What a test's fibers share. */
typedef struct ctx {
  int started, finished, running, peak, rc, rc2, port;
  int cancelled_seen, state;
  weft_fiber_group *g;
  weft_fiber_server *srv;
  weft_future *f;
  weft_loop *loop;
  uint64_t ms;
} ctx;

static ctx C; /* reset by each test */

/* Runs the loop a turn at a time until *flag reaches n. */
static void run_until(weft_loop *loop, const int *flag, int n) {
  for (int i = 0; *flag < n && i < 200000; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_geq(*flag, n, "never got there");
}

/* ---- weft_fiber_main ----------------------------------------------------- */

static int orphan(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  if (weft_fiber_sleep(20) == 0) C.finished++;
  return 0;
}

static int main_body(weft_fiber *self, void *arg) {
  C.started++;
  C.loop = weft_fiber_loop(self);
  if (arg != NULL) return -(int)(intptr_t)arg;
  /* a fiber nobody awaits: weft_fiber_main still lets it finish */
  int err = weft_fiber_create_task(orphan, NULL, NULL);
  weft_fiber_return_i64(self, 42);
  return err;
}

Test(fiber_conv, main_runs_on_its_own_loop_and_finishes_what_is_left,
     .timeout = 10) {
  memset(&C, 0, sizeof C);
  int64_t v = 0;
  ASSERT_ERR(weft_fiber_main(main_body, NULL, NULL, &v), 0);
  cr_assert_eq(v, 42);
  cr_assert_eq(C.started, 1);
  cr_assert_eq(C.finished, 1, "the orphan fiber did not finish");
  /* an error is the fiber's, and *result is 0 */
  v = 7;
  ASSERT_ERR(weft_fiber_main(main_body, (void *)(intptr_t)EPROTO, NULL, &v),
             -EPROTO);
  cr_assert_eq(v, 0);
  cr_assert_eq(C.started, 2);
}

static int nested_main(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  C.rc = weft_fiber_main(main_body, NULL, NULL, NULL);
  return 0;
}

static weft_timer leftover;

static int leave_a_handle(weft_fiber *self, void *arg) {
  (void)arg;
  C.loop = weft_fiber_loop(self);
  return weft_timer_init(C.loop, &leftover); /* never closed */
}

Test(fiber_conv, main_bad_inputs, .timeout = 10) {
  memset(&C, 0, sizeof C);
  int64_t v = 5;
  ASSERT_ERR(weft_fiber_main(NULL, NULL, NULL, &v), -EINVAL);
  cr_assert_eq(v, 0);
  weft_fiber_options big = {.stack_size = WEFT_FIBER_STACK_MAX + 1};
  ASSERT_ERR(weft_fiber_main(main_body, NULL, &big, NULL), -EINVAL);
  cr_assert_eq(C.started, 0);
  /* from inside a fiber: -EBUSY, nothing run */
  ASSERT_ERR(weft_fiber_main(nested_main, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, -EBUSY);
  cr_assert_eq(C.started, 0);
  /* a handle never closed: the loop cannot be freed, -EBUSY, and it is
   * left to the caller (here: closed and freed by hand) */
  ASSERT_ERR(weft_fiber_main(leave_a_handle, NULL, NULL, NULL), -EBUSY);
  cr_assert_not_null(C.loop);
  weft_close(&leftover.base, NULL);
  th_run(C.loop);
  ASSERT_ERR(weft_loop_free(C.loop), 0);
}

static int sweep_main(weft_loop *loop, void *arg) {
  (void)loop, (void)arg;
  memset(&C, 0, sizeof C);
  return weft_fiber_main(main_body, NULL, NULL, NULL);
}

Test(fiber_conv, main_allocation_failures_are_enomem, .timeout = 60) {
  th_sweep s = {.op = sweep_main, .no_loop = true};
  cr_assert_geq(th_alloc_sweep_run(&s), 1);
}

/* ---- task groups, map, gather_calls ------------------------------------- */

/* Sleeps arg ms (a member), counting how many run at once; an odd arg
 * fails with -(arg). */
static int member(weft_fiber *self, void *arg) {
  (void)self;
  intptr_t ms = (intptr_t)arg;
  C.started++;
  C.peak = ++C.running > C.peak ? C.running : C.peak;
  int err = weft_fiber_sleep((uint64_t)ms);
  if (err == -ECANCELED) C.cancelled_seen++;
  C.running--, C.finished++;
  if (err == 0 && ms % 2 == 1) err = -(int)ms;
  return err;
}

static int group_parent(weft_fiber *self, void *arg) {
  (void)self;
  unsigned limit = (unsigned)(uintptr_t)arg;
  weft_fiber_group *g;
  int err = weft_fiber_group_new(limit, &g);
  if (err != 0) return err;
  for (int i = 0; err == 0 && i < 10; i++) {
    err = weft_fiber_group_spawn(g, member, (void *)(intptr_t)(10 + 2 * i));
    /* spawn returns only once fewer than `limit` run */
    if (limit > 0 && C.running > (int)limit) err = -EPROTO;
  }
  C.rc = err;
  return weft_fiber_group_wait(g);
}

Test(fiber_conv, group_runs_at_most_limit_at_once_and_waits_for_all,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  for (unsigned limit = 0; limit <= 3; limit += 3) {
    memset(&C, 0, sizeof C);
    ASSERT_ERR(weft_fiber_run(loop, group_parent, (void *)(uintptr_t)limit,
                              NULL, NULL),
               0);
    ASSERT_ERR(C.rc, 0);
    cr_assert_eq(C.started, 10);
    cr_assert_eq(C.finished, 10, "the wait returned early");
    cr_assert_eq(C.peak, limit == 0 ? 10 : 3, "peak %d", C.peak);
  }
  th_loop_finish(loop);
}

static int unhandled;
static void on_unhandled(weft_loop *l, int err, void *arg) {
  (void)l, (void)err, (void)arg;
  unhandled++;
}

static int map_errors(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  /* 20 ms, 15 ms (fails first), 11 ms (fails second), 30 ms */
  void *args[] = {(void *)20, (void *)15, (void *)11, (void *)30};
  C.rc = weft_fiber_map(member, args, 4, 2);
  return 0;
}

Test(fiber_conv, map_returns_the_first_error_and_reports_nothing_unobserved,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  unhandled = 0;
  weft_future_set_unhandled_hook(loop, on_unhandled, NULL);
  ASSERT_ERR(weft_fiber_run(loop, map_errors, NULL, NULL, NULL), 0);
  /* at most 2 at once: 20 and 15 start, 15 fails at 15 ms, 11 starts and
   * fails at 26 ms, 20 ends, 30 starts: the first error is -15 */
  ASSERT_ERR(C.rc, -15);
  cr_assert_eq(C.finished, 4);
  cr_assert_eq(C.peak, 2);
  cr_assert_eq(unhandled, 0);
  th_loop_finish(loop);
}

static int index_seen[8];
static int record_index(weft_fiber *self, void *arg) {
  (void)self;
  index_seen[(uintptr_t)arg]++;
  return 0;
}

static int by_index(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  C.rc = weft_fiber_map(record_index, NULL, 8, 0);
  C.rc2 = weft_fiber_map(record_index, NULL, 0, 0); /* nothing */
  return 0;
}

Test(fiber_conv, map_without_args_passes_the_index, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  memset(index_seen, 0, sizeof index_seen);
  ASSERT_ERR(weft_fiber_run(loop, by_index, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, 0);
  ASSERT_ERR(C.rc2, 0);
  for (int i = 0; i < 8; i++)
    cr_assert_eq(index_seen[i], 1, "fiber %d ran %d times", i, index_seen[i]);
  th_loop_finish(loop);
}

static int add_one(weft_fiber *self, void *arg) {
  (void)self;
  (*(int *)arg)++;
  return 0;
}
static int add_ten(weft_fiber *self, void *arg) {
  (void)self;
  *(int *)arg += 10;
  return 0;
}

static int gather_two(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int a = 0, b = 0;
  C.rc = weft_fiber_gather_calls(
      (weft_fiber_call[]){{add_one, &a}, {add_ten, &b}, {add_one, &b}}, 3);
  C.started = a, C.finished = b;
  /* a NULL fn anywhere: nothing spawned */
  C.rc2 = weft_fiber_gather_calls(
      (weft_fiber_call[]){{add_one, &a}, {NULL, &a}}, 2);
  C.peak = a;
  return 0;
}

Test(fiber_conv, gather_calls_runs_different_functions, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_run(loop, gather_two, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, 0);
  cr_assert_eq(C.started, 1);
  cr_assert_eq(C.finished, 11);
  ASSERT_ERR(C.rc2, -EINVAL);
  cr_assert_eq(C.peak, 1, "a fiber ran although the call was refused");
  th_loop_finish(loop);
}

static int bad_group_calls(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_fiber_group *g = (void *)1;
  ASSERT_ERR(weft_fiber_group_new(0, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_group_spawn(NULL, member, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_group_wait(NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_map(NULL, NULL, 3, 0), -EINVAL);
  ASSERT_ERR(weft_fiber_gather_calls(NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_gather_calls(NULL, 0), 0);
  ASSERT_ERR(weft_fiber_group_new(2, &g), 0);
  ASSERT_ERR(weft_fiber_group_spawn(g, NULL, NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_group_wait(g), 0); /* empty: at once */
  return 0;
}

Test(fiber_conv, group_bad_inputs_and_outside_a_fiber, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  weft_fiber_group *g = (void *)1;
  ASSERT_ERR(weft_fiber_group_new(1, &g), -EPERM);
  cr_assert_null(g);
  ASSERT_ERR(weft_fiber_group_spawn(NULL, member, NULL), -EPERM);
  ASSERT_ERR(weft_fiber_group_wait(NULL), -EPERM);
  ASSERT_ERR(weft_fiber_map(member, NULL, 3, 0), -EPERM);
  ASSERT_ERR(weft_fiber_gather_calls(NULL, 0), -EPERM);
  ASSERT_ERR(weft_fiber_run(loop, bad_group_calls, NULL, NULL, NULL), 0);
  cr_assert_eq(C.started, 0);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

static int group_waiter(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int err = weft_fiber_group_new(0, &C.g);
  for (int i = 0; err == 0 && i < 3; i++)
    err = weft_fiber_group_spawn(C.g, member, (void *)(intptr_t)10000);
  C.rc = weft_fiber_group_wait(C.g);
  return 0;
}

static int spawn_blocked(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_fiber_group *g;
  int err = weft_fiber_group_new(1, &g);
  if (err == 0) err = weft_fiber_group_spawn(g, member, (void *)50);
  C.rc2 = weft_fiber_group_spawn(g, member, (void *)2); /* waits: cancelled */
  C.rc = weft_fiber_group_wait(g); /* the member runs on: waited for */
  return err;
}

Test(fiber_conv, a_cancelled_wait_cancels_and_still_waits_for_the_members,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, group_waiter, NULL, NULL, &f), 0);
  run_until(loop, &C.started, 3);
  weft_future_cancel(f);
  th_run(loop);
  ASSERT_ERR(C.rc, -ECANCELED);
  cr_assert_eq(C.cancelled_seen, 3);
  cr_assert_eq(C.finished, 3);
  weft_future_unref(f);
  /* cancelled while a spawn waits for a slot: nothing spawned */
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_spawn(loop, spawn_blocked, NULL, NULL, &f), 0);
  run_until(loop, &C.started, 1);
  weft_future_cancel(f);
  th_run(loop);
  ASSERT_ERR(C.rc2, -ECANCELED);
  ASSERT_ERR(C.rc, 0);
  cr_assert_eq(C.started, 1, "the refused spawn ran");
  cr_assert_eq(C.finished, 1);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int map_cancelled(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  C.rc = weft_fiber_map(member, (void *[]){(void *)10000, (void *)10000}, 2, 0);
  return 0;
}

Test(fiber_conv, a_cancelled_map_cancels_its_fibers, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, map_cancelled, NULL, NULL, &f), 0);
  run_until(loop, &C.started, 2);
  weft_future_cancel(f);
  th_run(loop);
  ASSERT_ERR(C.rc, -ECANCELED);
  cr_assert_eq(C.cancelled_seen, 2);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int sweep_group_body(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int err = weft_fiber_map(member, (void *[]){(void *)2, (void *)4}, 2, 1);
  int err2 = weft_fiber_gather_calls(
      (weft_fiber_call[]){{member, (void *)2}, {member, (void *)4}}, 2);
  return err != 0 ? err : err2;
}

static int sweep_group(weft_loop *loop, void *arg) {
  (void)arg;
  memset(&C, 0, sizeof C);
  return weft_fiber_run(loop, sweep_group_body, NULL, NULL, NULL);
}

Test(fiber_conv, group_allocation_failures_are_enomem, .timeout = 60) {
  cr_assert_geq(th_alloc_sweep(sweep_group, NULL), 1);
}

/* ---- wait_for ------------------------------------------------------------ */

static int wait_for_sleep(weft_fiber *self, void *arg) {
  (void)arg;
  weft_loop *loop = weft_fiber_loop(self);
  weft_future *s;
  /* done in time: 0, the value readable */
  ASSERT_ERR(weft_sleep(loop, 5, &s), 0);
  C.rc = weft_fiber_wait_for(s, 5000);
  weft_future_unref(s);
  /* too slow: -ETIMEDOUT, the sleep cancelled */
  ASSERT_ERR(weft_sleep(loop, 10000, &s), 0);
  uint64_t t0 = weft_now(loop);
  C.rc2 = weft_fiber_wait_for(s, 20);
  C.ms = weft_now(loop) - t0;
  C.state = weft_future_get_state(s);
  weft_future_unref(s);
  /* a fiber's future: the fiber is cancelled and runs on to clean up */
  weft_future *task;
  ASSERT_ERR(weft_fiber_create_task(member, (void *)10000, &task), 0);
  C.peak = weft_fiber_wait_for(task, 20);
  weft_future_unref(task);
  return 0;
}

Test(fiber_conv, wait_for_times_out_and_cancels_what_it_waited_for,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_run(loop, wait_for_sleep, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, 0);
  ASSERT_ERR(C.rc2, -ETIMEDOUT);
  cr_assert(C.ms >= 20 && C.ms < 5000, "timed out after %llu ms",
            (unsigned long long)C.ms);
  cr_assert_eq(C.state, WEFT_FUTURE_CANCELLED, "state %d", C.state);
  ASSERT_ERR(C.peak, -ETIMEDOUT);
  th_run(loop); /* the cancelled member finishes */
  cr_assert_eq(C.cancelled_seen, 1);
  cr_assert_eq(C.finished, 1);
  th_loop_finish(loop);
}

static int wait_for_forever(weft_fiber *self, void *arg) {
  (void)arg;
  ASSERT_ERR(weft_sleep(weft_fiber_loop(self), 100000, &C.f), 0);
  C.started++;
  C.rc = weft_fiber_wait_for(C.f, 100000);
  return 0;
}

static int own_future(weft_fiber *self, void *other_loops) {
  ASSERT_ERR(weft_fiber_wait_for(NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_wait_for(other_loops, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_wait_for(weft_fiber_future(self), 1), -EDEADLK);
  weft_future *s;
  ASSERT_ERR(weft_sleep(weft_fiber_loop(self), 1, &s), 0);
  ASSERT_ERR(weft_fiber_wait_for(s, WEFT_TIMEOUT_MAX + 1), -EINVAL);
  ASSERT_ERR(weft_fiber_wait_for(s, 1000), 0);
  weft_future_unref(s);
  return 0;
}

Test(fiber_conv, wait_for_cancelled_and_bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  weft_future *f, *s;
  ASSERT_ERR(weft_sleep(loop, 1, &s), 0);
  ASSERT_ERR(weft_fiber_wait_for(s, 1), -EPERM);
  ASSERT_ERR(weft_fiber_spawn(loop, wait_for_forever, NULL, NULL, &f), 0);
  run_until(loop, &C.started, 1);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  weft_future_cancel(f);
  th_run(loop); /* returns: the sleep was cancelled too */
  ASSERT_ERR(C.rc, -ECANCELED);
  cr_assert_eq(weft_future_get_state(C.f), WEFT_FUTURE_CANCELLED);
  weft_future_unref(C.f);
  weft_future_unref(f);
  weft_loop *other = th_loop();
  weft_future *o;
  ASSERT_ERR(weft_future_new(other, &o), 0);
  ASSERT_ERR(weft_fiber_run(loop, own_future, o, NULL, NULL), 0);
  weft_future_cancel(o);
  weft_future_unref(o);
  th_loop_close(other);
  weft_future_unref(s);
  th_loop_finish(loop);
}

/* ---- weft_fiber_close ------------------------------------------------------
 */

static int close_on_stack(weft_fiber *self, void *arg) {
  (void)arg;
  weft_timer t; /* on the fiber's stack: must be closed before return */
  ASSERT_ERR(weft_timer_init(weft_fiber_loop(self), &t), 0);
  C.rc = weft_fiber_close(&t.base);
  C.rc2 = weft_fiber_close(&t.base);
  cr_assert(weft_is_closing(&t.base));
  ASSERT_ERR(weft_fiber_close(NULL), -EINVAL);
  C.finished++;
  return 0;
}

static int close_cancelled(weft_fiber *self, void *arg) {
  (void)arg;
  weft_timer t;
  ASSERT_ERR(weft_timer_init(weft_fiber_loop(self), &t), 0);
  weft_future_cancel(weft_fiber_future(self)); /* before the close */
  C.rc = weft_fiber_close(&t.base);
  C.rc2 = weft_fiber_yield(); /* the cancel comes back here */
  return 0;
}

Test(fiber_conv, close_waits_until_the_handle_is_closed, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  weft_timer t;
  ASSERT_ERR(weft_timer_init(loop, &t), 0);
  ASSERT_ERR(weft_fiber_close(&t.base), -EPERM);
  cr_assert(!weft_is_closing(&t.base), "closed outside a fiber");
  weft_close(&t.base, NULL);
  ASSERT_ERR(weft_fiber_run(loop, close_on_stack, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, 0);
  ASSERT_ERR(C.rc2, -EALREADY);
  cr_assert_eq(C.finished, 1);
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_run(loop, close_cancelled, NULL, NULL, NULL),
             -ECANCELED); /* at once: the fiber runs on */
  th_run(loop);
  ASSERT_ERR(C.rc, 0);
  ASSERT_ERR(C.rc2, -ECANCELED);
  th_loop_finish(loop);
}

/* ---- servers and connections --------------------------------------------- */

/* Echo handler: reads and writes back until EOF; counts connections. */
static int echo_handler(weft_fiber *self, weft_stream *conn, void *arg) {
  char buf[1024];
  (void)self;
  ctx *c = arg;
  c->started++;
  for (ssize_t n; (n = weft_fiber_read(conn, buf, sizeof buf)) > 0;)
    if (weft_fiber_write(conn, buf, (size_t)n) < 0) break;
  c->finished++;
  return 0;
}

/* Connects to C.port, sends "ping N\n", checks the echo; closes. */
static int echo_client(weft_fiber *self, void *arg) {
  (void)self;
  weft_tcp t;
  char line[32], back[32];
  int n = snprintf(line, sizeof line, "ping %d\n", (int)(intptr_t)arg);
  ssize_t err = weft_fiber_open_connection(&t, "127.0.0.1", (unsigned)C.port);
  if (err == 0) err = weft_fiber_write(&t.stream, line, (size_t)n);
  if (err > 0) err = weft_fiber_read_exact(&t.stream, back, (size_t)n);
  if (err > 0 && memcmp(back, line, (size_t)n) != 0) err = -EPROTO;
  weft_fiber_close(&t.stream.base);
  return err < 0 ? (int)err : 0;
}

static int serve_and_stop(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int err =
      weft_fiber_start_server("127.0.0.1", 0, echo_handler, &C, NULL, &C.srv);
  if (err != 0) return err;
  C.port = weft_fiber_server_port(C.srv);
  /* three clients at once, each its own connection and handler */
  err = weft_fiber_map(echo_client, NULL, 3, 0);
  C.rc2 = weft_fiber_server_close(C.srv); /* C.srv is gone now */
  /* once the listener closed, nobody accepts */
  weft_fiber_sleep(10);
  C.rc = weft_fiber_map(echo_client, NULL, 1, 0);
  return err;
}

Test(fiber_conv, server_runs_a_handler_per_connection, .timeout = 20) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_run(loop, serve_and_stop, NULL, NULL, NULL), 0);
  cr_assert(C.port > 0 && C.port < 65536, "port %d", C.port);
  ASSERT_ERR(C.rc2, 0);
  ASSERT_ERR(C.rc, -ECONNREFUSED);
  th_run(loop); /* the handlers see EOF, the server frees itself */
  cr_assert_eq(C.started, 3);
  cr_assert_eq(C.finished, 3);
  th_loop_finish(loop);
}

/* Records the loop turn each handler starts on (C.ms: the first, C.state:
 * the spread), then waits for EOF. */
static int turn_handler(weft_fiber *self, weft_stream *conn, void *arg) {
  char buf[16];
  (void)arg;
  weft_loop_metrics m;
  weft_loop_get_metrics(weft_fiber_loop(self), &m, sizeof m);
  if (C.started++ == 0) C.ms = m.turns;
  if ((int)(m.turns - C.ms) > C.state) C.state = (int)(m.turns - C.ms);
  while (weft_fiber_read(conn, buf, sizeof buf) > 0) {
  }
  C.finished++;
  return 0;
}

#define BURST 8

/* BURST connections queued in the kernel before the acceptor wakes. */
static int serve_burst(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int fds[BURST], err = weft_fiber_start_server("127.0.0.1", 0, turn_handler,
                                                NULL, NULL, &C.srv);
  if (err != 0) return err;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", (unsigned)weft_fiber_server_port(C.srv), &a);
  for (int i = 0; i < BURST; i++) { /* loopback: done before any accept */
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fds[i] >= 0 && connect(fds[i], (void *)&a, sizeof a) == 0);
  }
  for (int i = 0; i < 1000 && C.started < BURST; i++)
    weft_fiber_sleep(1);
  for (int i = 0; i < BURST; i++)
    close(fds[i]);
  C.rc = weft_fiber_server_close(C.srv);
  return 0;
}

/* The acceptor takes every connection already queued when it wakes, not
 * one per turn: BURST handlers start on the same turn. */
Test(fiber_conv, server_accepts_a_burst_in_one_turn, .timeout = 20) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_run(loop, serve_burst, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, 0);
  th_run(loop); /* the handlers see EOF, the server frees itself */
  cr_assert_eq(C.started, BURST);
  cr_assert_eq(C.finished, BURST);
  cr_assert_eq(C.state, 0, "handlers started over %d turns", C.state + 1);
  th_loop_finish(loop);
}

static int forever(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int err = weft_fiber_start_server(NULL, 0, echo_handler, &C, NULL, &C.srv);
  if (err != 0) return err;
  C.port = weft_fiber_server_port(C.srv);
  C.rc = weft_fiber_serve_forever(C.srv);
  C.finished++;
  return 0;
}

static int stopper(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  int err = weft_fiber_map(echo_client, NULL, 2, 0);
  weft_fiber_server_close(C.srv);
  return err;
}

Test(fiber_conv, serve_forever_returns_when_closed_or_closes_when_cancelled,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  weft_future *f, *g;
  ASSERT_ERR(weft_fiber_spawn(loop, forever, NULL, NULL, &f), 0);
  run_until(loop, &C.port, 1);
  ASSERT_ERR(weft_fiber_spawn(loop, stopper, NULL, NULL, &g), 0);
  th_run(loop); /* ends: the server was closed */
  ASSERT_ERR(weft_future_error(g), 0);
  ASSERT_ERR(C.rc, 0);
  cr_assert_eq(C.started, 2);
  weft_future_unref(f);
  weft_future_unref(g);
  /* cancelled: the server is closed, the loop ends */
  memset(&C, 0, sizeof C);
  ASSERT_ERR(weft_fiber_spawn(loop, forever, NULL, NULL, &f), 0);
  run_until(loop, &C.port, 1);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  weft_future_cancel(f);
  th_run(loop);
  ASSERT_ERR(C.rc, -ECANCELED);
  cr_assert_eq(C.finished, 1);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int closes_itself(weft_fiber *self, weft_stream *conn, void *arg) {
  (void)self, (void)arg;
  C.started++;
  weft_fiber_close(&conn->base); /* allowed: the server frees it after */
  return -EPROTO;                /* reported: nobody holds the future */
}

static int server_errors(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_fiber_server *srv = (void *)1, *srv2 = (void *)1;
  weft_fiber_server_options big = {.stack_size = WEFT_FIBER_STACK_MAX + 1};
  ASSERT_ERR(weft_fiber_start_server("127.0.0.1", 0, NULL, NULL, NULL, &srv),
             -EINVAL);
  cr_assert_null(srv);
  ASSERT_ERR(
      weft_fiber_start_server("127.0.0.1", 0, closes_itself, NULL, NULL, NULL),
      -EINVAL);
  ASSERT_ERR(
      weft_fiber_start_server("localhost", 0, closes_itself, NULL, NULL, &srv),
      -EINVAL);
  ASSERT_ERR(weft_fiber_start_server("127.0.0.1", 65536, closes_itself, NULL,
                                     NULL, &srv),
             -EINVAL);
  ASSERT_ERR(
      weft_fiber_start_server("127.0.0.1", 0, closes_itself, NULL, &big, &srv),
      -EINVAL);
  ASSERT_ERR(
      weft_fiber_start_server("127.0.0.1", 0, closes_itself, NULL, NULL, &srv),
      0);
  C.port = weft_fiber_server_port(srv);
  ASSERT_ERR(weft_fiber_start_server("127.0.0.1", (unsigned)C.port,
                                     closes_itself, NULL, NULL, &srv2),
             -EADDRINUSE);
  cr_assert_null(srv2);
  /* a handler that closes its connection and fails */
  C.rc = weft_fiber_map(echo_client, NULL, 1, 0);
  weft_fiber_server_close(srv);
  ASSERT_ERR(weft_fiber_serve_forever(NULL), -EINVAL);
  return 0;
}

Test(fiber_conv, server_bad_inputs, .timeout = 20) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  unhandled = 0;
  weft_future_set_unhandled_hook(loop, on_unhandled, NULL);
  weft_fiber_server *srv = (void *)1;
  ASSERT_ERR(weft_fiber_start_server(NULL, 0, closes_itself, NULL, NULL, &srv),
             -EPERM);
  cr_assert_null(srv);
  ASSERT_ERR(weft_fiber_server_port(NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_server_close(NULL), -EINVAL);
  ASSERT_ERR(weft_fiber_serve_forever(NULL), -EPERM);
  ASSERT_ERR(weft_fiber_run(loop, server_errors, NULL, NULL, NULL), 0);
  cr_assert(C.rc == WEFT_EOF || C.rc == -ECONNRESET, "client got %s", en(C.rc));
  th_run(loop);
  cr_assert_eq(C.started, 1);
  cr_assert_eq(unhandled, 1, "the handler's error was not reported");
  th_loop_finish(loop);
}

static int connect_errors(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_tcp t;
  /* nobody listens on C.port: refused, t left closed */
  C.rc = weft_fiber_open_connection(&t, "127.0.0.1", (unsigned)C.port);
  ASSERT_ERR(weft_fiber_close(&t.stream.base), -EALREADY);
  ASSERT_ERR(weft_fiber_open_connection(NULL, "127.0.0.1", 1), -EINVAL);
  ASSERT_ERR(weft_fiber_open_connection(&t, NULL, 1), -EINVAL);
  ASSERT_ERR(weft_fiber_close(&t.stream.base), -EALREADY);
  ASSERT_ERR(weft_fiber_open_connection(&t, "127.0.0.1", 65536), -EINVAL);
  ASSERT_ERR(weft_fiber_close(&t.stream.base), -EALREADY);
  return 0;
}

static int connect_cancelled(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_tcp t;
  C.rc = weft_fiber_open_connection(&t, "127.0.0.1", (unsigned)C.port);
  C.rc2 = weft_fiber_close(&t.stream.base);
  return 0;
}

Test(fiber_conv, open_connection_errors_leave_the_handle_closed,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  memset(&C, 0, sizeof C);
  /* a port nobody listens on: bind one, read it, close it */
  weft_tcp l;
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  ASSERT_ERR(weft_tcp_init(loop, &l), 0);
  ASSERT_ERR(weft_tcp_bind(&l, (struct sockaddr *)&a, 0), 0);
  ASSERT_ERR(weft_tcp_getsockname(&l, (struct sockaddr *)&a, &len), 0);
  C.port = weft_sockaddr_port((struct sockaddr *)&a);
  weft_close(&l.stream.base, NULL);
  th_run(loop);
  weft_tcp t;
  ASSERT_ERR(weft_fiber_open_connection(&t, "127.0.0.1", 1), -EPERM);
  ASSERT_ERR(weft_fiber_run(loop, connect_errors, NULL, NULL, NULL), 0);
  ASSERT_ERR(C.rc, -ECONNREFUSED);
  /* cancelled before it runs: the connect never completes */
  weft_future *f;
  ASSERT_ERR(weft_fiber_spawn(loop, connect_cancelled, NULL, NULL, &f), 0);
  weft_future_cancel(f);
  th_run(loop);
  ASSERT_ERR(C.rc, -ECANCELED);
  ASSERT_ERR(C.rc2, -EALREADY);
  weft_future_unref(f);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

static int sweep_net_body(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  weft_fiber_server *srv;
  int err =
      weft_fiber_start_server("127.0.0.1", 0, echo_handler, &C, NULL, &srv);
  if (err != 0) return err;
  C.port = weft_fiber_server_port(srv);
  err = weft_fiber_map(echo_client, NULL, 1, 0);
  weft_fiber_server_close(srv);
  return err;
}

static int sweep_net(weft_loop *loop, void *arg) {
  (void)arg;
  memset(&C, 0, sizeof C);
  int err = weft_fiber_run(loop, sweep_net_body, NULL, NULL, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* handlers and server finish */
  /* a connection the server could not serve (no memory for its fiber) is
   * closed: the client sees the end of the stream */
  if ((err == WEFT_EOF || err == -ECONNRESET) && th_alloc_failed() > 0)
    err = -ENOMEM;
  return err;
}

Test(fiber_conv, server_and_client_allocation_failures_are_enomem,
     .timeout = 120) {
  cr_assert_geq(th_alloc_sweep(sweep_net, NULL), 1);
}
