/* Signal handles. libev restores the default action when the last watcher
 * of a signal stops, so every test raises a signal only while some handle
 * still watches it. */
#include "support/test.h"

#include <signal.h>
#include <stdlib.h>

typedef struct sig {
  weft_signal s;
  int calls, last_signum;
  int raise_until; /* raise the signal again until this many calls */
} sig;

static void on_sig(weft_signal *s, int signum) {
  sig *x = (sig *)s;
  x->calls++;
  x->last_signum = signum;
  if (x->calls < x->raise_until)
    raise(signum);
  else if (x->raise_until)
    cr_assert_eq(weft_signal_stop(s), 0);
}

static void not_called(weft_signal *s, int signum) {
  cr_assert_fail("callback of a failed start ran (%p, %d)", (void *)s, signum);
}

static void raise_arg(void *arg) { raise(*(int *)arg); }

Test(signal, bad_input_is_rejected, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_signal s, zeroed = {0};
  cr_assert_eq(weft_signal_init(NULL, &s), -EINVAL);
  cr_assert_eq(weft_signal_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_signal_init(loop, &s), 0);
  const int bad[] = {0, -1, SIGKILL, SIGSTOP, NSIG, NSIG + 1, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(weft_signal_start(&s, on_sig, bad[i]), -EINVAL, "signum %d",
                 bad[i]);
    cr_assert_eq(weft_signal_start_oneshot(&s, on_sig, bad[i]), -EINVAL);
  }
  cr_assert_eq(weft_signal_start(NULL, on_sig, SIGUSR1), -EINVAL);
  cr_assert_eq(weft_signal_start(&s, NULL, SIGUSR1), -EINVAL);
  cr_assert_eq(weft_signal_start(&zeroed, on_sig, SIGUSR1), -EINVAL);
  cr_assert(!weft_is_active(&s.base));
  cr_assert_eq(weft_signal_stop(NULL), -EINVAL);
  cr_assert_eq(weft_signal_stop(&s), 0, "stopping an inactive handle");
  /* a timer is not a signal handle */
  weft_timer t;
  weft_timer_init(loop, &t);
  cr_assert_eq(weft_signal_start((weft_signal *)(void *)&t, on_sig, SIGUSR1),
               -EINVAL);
  cr_assert_eq(weft_signal_stop((weft_signal *)(void *)&t), -EINVAL);
  cr_assert_eq(weft_close(&s.base, NULL), 0);
  cr_assert_eq(weft_signal_start(&s, on_sig, SIGUSR1), -EINVAL, "closing");
  th_loop_finish(loop);
}

Test(signal, start_fires_each_time_the_signal_arrives, .timeout = 5) {
  weft_loop *loop = th_loop();
  sig x = {.raise_until = 3};
  int signum = SIGUSR1;
  weft_signal_init(loop, &x.s);
  cr_assert_eq(weft_signal_start(&x.s, on_sig, SIGUSR1), 0);
  cr_assert(weft_is_active(&x.s.base));
  weft_call_soon(loop, raise_arg, &signum);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(x.calls, 3);
  cr_assert_eq(x.last_signum, SIGUSR1);
  cr_assert(!weft_is_active(&x.s.base));
  th_loop_finish(loop);
}

Test(signal, oneshot_stops_before_its_callback, .timeout = 5) {
  weft_loop *loop = th_loop();
  sig once = {0}, keep = {.raise_until = 2};
  int signum = SIGUSR2;
  weft_signal_init(loop, &once.s);
  weft_signal_init(loop, &keep.s);
  cr_assert_eq(weft_signal_start_oneshot(&once.s, on_sig, SIGUSR2), 0);
  cr_assert_eq(weft_signal_start(&keep.s, on_sig, SIGUSR2), 0);
  weft_call_soon(loop, raise_arg, &signum);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(once.calls, 1);
  cr_assert_eq(once.last_signum, SIGUSR2);
  cr_assert_eq(keep.calls, 2);
  cr_assert(!weft_is_active(&once.s.base));
  th_loop_finish(loop);
}

Test(signal, several_handles_watch_one_signal, .timeout = 5) {
  weft_loop *loop = th_loop();
  sig x[3] = {{.raise_until = 0}, {.raise_until = 0}, {.raise_until = 2}};
  int signum = SIGUSR1;
  for (int i = 0; i < 3; i++) {
    weft_signal_init(loop, &x[i].s);
    cr_assert_eq(weft_signal_start(&x[i].s, on_sig, SIGUSR1), 0);
  }
  /* the last handle raises the second signal, then stops; the first two are
   * unreferenced so that the loop ends with it */
  weft_unref(&x[0].s.base);
  weft_unref(&x[1].s.base);
  weft_call_soon(loop, raise_arg, &signum);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(x[i].calls, 2, "handle %d", i);
  th_loop_finish(loop);
}

Test(signal, second_loop_gets_ebusy, .timeout = 5) {
  weft_loop *a = th_loop(), *b = th_loop();
  sig sa = {0}, sb = {.raise_until = 1};
  int signum = SIGUSR2;
  weft_signal_init(a, &sa.s);
  weft_signal_init(b, &sb.s);
  cr_assert_eq(weft_signal_start(&sa.s, on_sig, SIGUSR1), 0);
  cr_assert_eq(weft_signal_start(&sb.s, on_sig, SIGUSR1), -EBUSY);
  cr_assert_eq(weft_signal_start_oneshot(&sb.s, on_sig, SIGUSR1), -EBUSY);
  cr_assert(!weft_is_active(&sb.s.base));
  /* b's handle is still usable for another signal */
  cr_assert_eq(weft_signal_start(&sb.s, on_sig, SIGUSR2), 0);
  /* a failed move leaves the handle watching its old signal */
  cr_assert_eq(weft_signal_start_oneshot(&sb.s, not_called, SIGUSR1), -EBUSY);
  cr_assert(weft_is_active(&sb.s.base));
  weft_call_soon(b, raise_arg, &signum);
  cr_assert_eq(weft_loop_run(b, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(sb.calls, 1);
  cr_assert_eq(sb.last_signum, SIGUSR2);
  /* once a lets go, b may take the signal */
  cr_assert_eq(weft_signal_stop(&sa.s), 0);
  cr_assert_eq(weft_signal_start(&sb.s, on_sig, SIGUSR1), 0);
  cr_assert_eq(weft_signal_start(&sa.s, on_sig, SIGUSR1), -EBUSY);
  th_loop_close(a);
  th_loop_finish(b);
}

Test(signal, restart_with_another_signal_moves_the_handle, .timeout = 5) {
  weft_loop *a = th_loop(), *b = th_loop();
  sig x = {.raise_until = 1}, y = {0};
  int signum = SIGUSR2;
  weft_signal_init(a, &x.s);
  weft_signal_init(b, &y.s);
  cr_assert_eq(weft_signal_start(&x.s, on_sig, SIGUSR1), 0);
  cr_assert_eq(weft_signal_start(&x.s, on_sig, SIGUSR2), 0);
  /* SIGUSR1 was released */
  cr_assert_eq(weft_signal_start(&y.s, on_sig, SIGUSR1), 0);
  weft_call_soon(a, raise_arg, &signum);
  cr_assert_eq(weft_loop_run(a, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(x.calls, 1);
  cr_assert_eq(x.last_signum, SIGUSR2);
  cr_assert_eq(y.calls, 0);
  th_loop_close(a);
  th_loop_finish(b);
}

Test(signal, unreferenced_handle_does_not_keep_the_loop_alive, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_signal s;
  weft_signal_init(loop, &s);
  weft_signal_start(&s, on_sig, SIGUSR1);
  cr_assert(weft_loop_alive(loop));
  weft_unref(&s.base);
  cr_assert(!weft_loop_alive(loop));
  cr_assert(weft_is_active(&s.base));
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  th_loop_finish(loop);
}

static void freeing_close(weft_handle *h) {
  ++*(int *)h->data;
  free(h);
}

Test(signal, close_releases_the_signal, .timeout = 5) {
  weft_loop *a = th_loop(), *b = th_loop();
  weft_signal *s = malloc(sizeof *s), other;
  int closed = 0;
  weft_signal_init(a, s);
  s->base.data = &closed;
  weft_signal_init(b, &other);
  cr_assert_eq(weft_signal_start(s, on_sig, SIGUSR1), 0);
  cr_assert_eq(weft_close(&s->base, freeing_close), 0);
  cr_assert_eq(closed, 0, "close callback ran inline");
  cr_assert_eq(weft_signal_start(&other, on_sig, SIGUSR1), 0);
  cr_assert_eq(weft_loop_run(a, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(closed, 1);
  th_loop_close(a);
  th_loop_finish(b);
}

/* ---- weft_signal_next_future ------------------------------------------- */

typedef struct sf_count {
  int calls;
  weft_future_state state;
  int64_t value;
  int err;
} sf_count;

static void sf_settled(weft_future *f, void *arg) {
  sf_count *c = arg;
  c->calls++;
  c->state = weft_future_get_state(f);
  c->err = weft_future_error(f);
  if (c->state == WEFT_FUTURE_FULFILLED) c->value = weft_future_value_i64(f);
}

Test(signal, next_future_fulfils_every_pending_future, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_future *f[3];
  sf_count c[3] = {{0}};
  int signum = SIGUSR1;
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(weft_signal_next_future(loop, SIGUSR1, &f[i]), 0);
    cr_assert_eq(weft_future_on_settled(f[i], sf_settled, &c[i]), 0);
  }
  weft_call_soon(loop, raise_arg, &signum);
  th_run(loop);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(c[i].calls, 1, "future %d", i);
    cr_assert_eq(c[i].state, WEFT_FUTURE_FULFILLED, "future %d: %s", i,
                 weft_err_name(c[i].err));
    cr_assert_eq(c[i].value, SIGUSR1);
    weft_future_unref(f[i]);
  }
  th_loop_finish(loop);
}

Test(signal, next_future_rejects_bad_input, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  const int bad[] = {0, -1, SIGKILL, SIGSTOP, NSIG, NSIG + 1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(weft_signal_next_future(loop, bad[i], &f), -EINVAL,
                 "signum %d", bad[i]);
  cr_assert_eq(weft_signal_next_future(NULL, SIGUSR1, &f), -EINVAL);
  cr_assert_eq(weft_signal_next_future(loop, SIGUSR1, NULL), -EINVAL);
  cr_assert_null(f);
  /* another loop watches SIGUSR2: -EBUSY, nothing held */
  weft_loop *other = th_loop();
  weft_future *g;
  cr_assert_eq(weft_signal_next_future(other, SIGUSR2, &g), 0);
  cr_assert_eq(weft_signal_next_future(loop, SIGUSR2, &f), -EBUSY);
  cr_assert_null(f);
  cr_assert_eq(weft_future_cancel(g), 0);
  weft_future_unref(g);
  th_loop_close(other);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(signal, next_future_cancel_stops_watching, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_future *f, *g;
  sf_count cf = {0}, cg = {0};
  int signum = SIGUSR1;
  cr_assert_eq(weft_signal_next_future(loop, SIGUSR1, &f), 0);
  cr_assert_eq(weft_signal_next_future(loop, SIGUSR1, &g), 0);
  weft_future_on_settled(f, sf_settled, &cf);
  weft_future_on_settled(g, sf_settled, &cg);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_call_soon(loop, raise_arg, &signum); /* g still watches */
  th_run(loop);
  cr_assert_eq(cf.calls, 1);
  cr_assert_eq(cf.state, WEFT_FUTURE_CANCELLED);
  cr_assert_eq(cf.err, -ECANCELED, "%s", weft_err_name(cf.err));
  cr_assert_eq(cg.calls, 1);
  cr_assert_eq(cg.value, SIGUSR1);
  weft_future_unref(f);
  weft_future_unref(g);
  /* cancelling the only one: the loop has nothing left */
  cr_assert_eq(weft_signal_next_future(loop, SIGUSR2, &f), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  th_run(loop);
  cr_assert(!weft_loop_alive(loop));
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int sf_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f;
  sf_count c = {0};
  int signum = SIGUSR1;
  int err = weft_signal_next_future(loop, SIGUSR1, &f);
  if (err != 0) return err;
  err = weft_future_on_settled(f, sf_settled, &c);
  if (err == 0) err = weft_call_soon(loop, raise_arg, &signum);
  if (err != 0) {
    weft_future_cancel(f);
    weft_future_unref(f);
    th_run(loop);
    return err;
  }
  th_run(loop);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.value, SIGUSR1, "%s", weft_err_name(c.err));
  weft_future_unref(f);
  return 0;
}

Test(signal, next_future_allocation_sweep, .timeout = 30) {
  th_alloc_sweep(sf_round, NULL);
}
