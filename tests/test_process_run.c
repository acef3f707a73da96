/* weft_process_run(): stdin in, stdout and stderr out, exit status, 10 MiB,
 * the output limit, a child ignoring its input, cancellation, allocation
 * failures and bad input. */
#include "support/test.h"

#include <signal.h>
#include <string.h>

#define SH(script) ((char *const[]){"sh", "-c", script, NULL})

static weft_future *run_wait(weft_loop *loop, const weft_run_options *o) {
  weft_future *f = NULL;
  cr_assert_eq(weft_process_run(loop, o, &f), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_neq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  return f;
}

Test(process_run, feeds_stdin_and_collects_both_outputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_run_options o = {
      .proc = {.argv = SH("tr a-z A-Z; echo err >&2; exit 4")},
      .input = "hello run",
      .input_len = 9};
  weft_future *f = run_wait(loop, &o);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_eq(r->status, 4);
  cr_assert_eq(r->out_len, 9);
  cr_assert_str_eq(r->out, "HELLO RUN");
  cr_assert_str_eq(r->err, "err\n");
  cr_assert_eq(r->err_len, 4);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process_run, without_input_and_empty_output, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_run_options o = {.proc = {.argv = SH("cat; kill -KILL $$")}};
  weft_future *f = run_wait(loop, &o);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_eq(weft_exit_signal(r->status), SIGKILL);
  cr_assert_eq(r->out_len, 0);
  cr_assert_str_eq(r->out, "");
  cr_assert_str_eq(r->err, "");
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process_run, ten_mib, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_run_options o = {
      .proc = {.argv = (char *const[]){"head", "-c", "10485760", "/dev/zero",
                                       NULL}}};
  weft_future *f = run_wait(loop, &o);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_eq(r->status, 0);
  cr_assert_eq(r->out_len, (size_t)10 << 20);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process_run, over_the_limit_kills_the_child, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* `yes` would write forever: only the kill ends it */
  weft_run_options o = {.proc = {.argv = (char *const[]){"yes", NULL}},
                        .limit = 100000};
  weft_future *f = run_wait(loop, &o);
  cr_assert_eq(weft_future_error(f), WEFT_ELIMIT);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process_run, child_ignoring_its_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  static char big[1 << 20];
  weft_run_options o = {.proc = {.argv = (char *const[]){"true", NULL}},
                        .input = big,
                        .input_len = sizeof big};
  weft_future *f = run_wait(loop, &o);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_eq(r->status, 0);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static void cancel_on_timer(weft_timer *t) {
  weft_future_cancel(t->base.data);
  weft_close(&t->base, NULL);
}

Test(process_run, cancel_kills_the_child, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_run_options o = {.proc = {.argv = (char *const[]){"sleep", "30", NULL}}};
  weft_future *f;
  cr_assert_eq(weft_process_run(loop, &o, &f), 0);
  weft_timer t;
  weft_timer_init(loop, &t);
  t.base.data = f;
  weft_timer_start(&t, cancel_on_timer, 1, 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* ends: the child was killed */
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process_run, timeout_combinator_kills_the_child, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_run_options o = {.proc = {.argv = (char *const[]){"sleep", "30", NULL}}};
  weft_future *f, *t;
  cr_assert_eq(weft_process_run(loop, &o, &f), 0);
  cr_assert_eq(weft_future_timeout(f, 20, &t), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* ends: the child was killed */
  cr_assert_eq(weft_future_error(t), -ETIMEDOUT);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  weft_future_unref(t);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process_run, bad_input_and_exec_failure, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *f = NULL;
  weft_run_options o = {.proc = {.argv = (char *const[]){"true", NULL}}};
  cr_assert_eq(weft_process_run(NULL, &o, &f), -EINVAL);
  cr_assert_eq(weft_process_run(loop, NULL, &f), -EINVAL);
  cr_assert_eq(weft_process_run(loop, &o, NULL), -EINVAL);
  o.input_len = 3;
  cr_assert_eq(weft_process_run(loop, &o, &f), -EINVAL);
  o.input_len = 0;
  o.proc.argv = (char *const[]){NULL};
  cr_assert_eq(weft_process_run(loop, &o, &f), -EINVAL);
  o.proc.argv = (char *const[]){"no-such-program-xyz", NULL};
  cr_assert_eq(weft_process_run(loop, &o, &f), -ENOENT);
  cr_assert_null(f);
  th_loop_finish(loop);
}

static int run_cat_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_run_options o = {.proc = {.argv = (char *const[]){"cat", NULL}},
                        .input = "abc",
                        .input_len = 3};
  weft_future *f = NULL;
  int err = weft_process_run(loop, &o, &f);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0 && weft_future_get_state(f) == WEFT_FUTURE_FULFILLED) {
    const weft_run_result *r = weft_future_value(f);
    cr_assert_str_eq(r->out, "abc");
  } else if (err == 0) {
    err = weft_future_error(f); /* the output buffer: -ENOMEM */
  }
  weft_future_unref(f);
  return err;
}

Test(process_run, allocation_failures_are_clean, .timeout = 60) {
  th_alloc_sweep_run(&(th_sweep){.op = run_cat_round, .max_rounds = 300});
}
