/* Child processes: exit codes and signals, kill, 200 concurrent children,
 * children on two loops, what a loop's close does to a running child, the
 * SIGCHLD fallback, allocation failures and bad input to every call. What
 * the child is given (env, cwd, stdio, fds, signals, ids, groups) is
 * test_process_child.c; weft_process_run() is test_process_run.c. */
#include "support/test.h"
#include "support/child.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- th_exits and signals
 * ---------------------------------------------------------- */

Test(process, exit_code_reaches_callback_and_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, TH_SH("exit 3"), NULL);
  cr_assert_gt(p.pid, 0);
  cr_assert_eq(weft_process_pid(&p), p.pid);
  cr_assert(weft_is_active(&p.base));
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(&p, &f), 0);
  weft_future *g;
  cr_assert_eq(weft_process_exit_future(&p, &g), 0);
  cr_assert_eq(f, g, "every call gives the same future");
  weft_future_unref(g);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 3);
  cr_assert_eq(e.sig, 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 3);
  cr_assert(!weft_exit_is_signal(weft_future_value_i64(f)));
  cr_assert_eq(weft_exit_code(weft_future_value_i64(f)), 3);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process, signal_death_is_reported, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, TH_SH("kill -TERM $$"), NULL);
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(&p, &f), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  cr_assert_eq(e.sig, SIGTERM);
  int64_t v = weft_future_value_i64(f);
  cr_assert(weft_exit_is_signal(v));
  cr_assert_eq(weft_exit_signal(v), SIGTERM);
  cr_assert_eq(weft_exit_code(v), 0);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static void kill_on_timer(weft_timer *t) {
  weft_process *p = t->base.data;
  cr_assert_eq(weft_process_kill(p, 0), 0, "running");
  cr_assert_eq(weft_process_kill(p, SIGKILL), 0);
  weft_close(&t->base, NULL);
}

Test(process, kill_of_a_sleeping_child, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  weft_timer t;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  t.base.data = &p;
  cr_assert_eq(weft_timer_start(&t, kill_on_timer, 1, 0), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.sig, SIGKILL);
  th_loop_finish(loop);
}

static void exit_keep_open(weft_process *p, int64_t status, int sig) {
  th_exits *e = p->base.data;
  e->calls++;
  e->status = status;
  e->sig = sig;
}

Test(process, kill_and_future_after_exit, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  p.base.data = &e;
  weft_process_options o = {.argv = (char *const[]){"true", NULL},
                            .exit_cb = exit_keep_open};
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert(!weft_is_active(&p.base));
  cr_assert_eq(weft_process_kill(&p, SIGTERM), -ESRCH);
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(&p, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 0);
  weft_future_unref(f);
  weft_close(&p.base, NULL);
  th_loop_finish(loop);
}

Test(process, two_hundred_concurrent_children, .timeout = 30) {
  weft_loop *loop = th_loop();
  enum { N = 200 };
  weft_process *ps = calloc(N, sizeof *ps);
  th_exits e = {0};
  char scripts[N][32];
  int64_t want = 0;
  for (int i = 0; i < N; i++) {
    snprintf(scripts[i], sizeof scripts[i], "exit %d", i % 7);
    want += i % 7;
    ps[i].base.data = &e;
    weft_process_options o = {.argv = TH_SH(scripts[i]),
                              .exit_cb = th_on_exit_count};
    cr_assert_eq(weft_spawn(loop, &ps[i], &o), 0);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, N);
  cr_assert_eq(e.code_sum, want);
  th_loop_finish(loop);
  free(ps);
}

Test(process, children_on_two_loops, .timeout = 10) {
  /* pidfds make any loop able to own children, several at once */
  weft_loop *a = th_loop(), *b = th_loop();
  weft_process pa, pb;
  th_exits ea = {0}, eb = {0};
  th_spawn_out(a, &pa, &ea, TH_SH("exit 5"), NULL);
  th_spawn_out(b, &pb, &eb, TH_SH("exit 6"), NULL);
  weft_loop_run(b, WEFT_RUN_DEFAULT);
  weft_loop_run(a, WEFT_RUN_DEFAULT);
  cr_assert_eq(ea.calls, 1);
  cr_assert_eq(ea.status, 5);
  cr_assert_eq(eb.calls, 1);
  cr_assert_eq(eb.status, 6);
  th_loop_close(b);
  th_loop_finish(a);
}

/* ---- closing early
 * -------------------------------------------------------------------- */

Test(process, running_child_survives_its_loop, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(&p, &f), 0);
  pid_t pid = p.pid;
  cr_assert_eq(weft_close(&p.base, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop); /* the loop is gone; the child is not */
  cr_assert_eq(e.calls, 0);
  cr_assert_eq(kill(pid, 0), 0, "the child still runs");
  cr_assert_eq(kill(pid, SIGKILL), 0);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid, "not reaped by the freed loop");
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

Test(process, closed_handle_child_is_reaped_by_the_loop, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  pid_t pid = p.pid;
  weft_close(&p.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  th_wait_reaped(loop, pid); /* the orphan does not keep the loop alive */
  cr_assert_eq(e.calls, 0);
  th_loop_finish(loop);
}

/* ---- the SIGCHLD fallback (forced: this kernel has pidfds) -----------------
 */

static weft_loop *fallback_loop(void) {
  cr_assert_eq(setenv("WEFT_PROCESS_NO_PIDFD", "1", 1), 0);
  return th_loop();
}

Test(process, fallback_exits_signals_and_kill, .timeout = 30) {
  weft_loop *loop = fallback_loop();
  enum { N = 50 };
  weft_process ps[N], sleeper;
  th_exits e = {0}, k = {0};
  char scripts[N][32];
  int64_t want = 0;
  for (int i = 0; i < N; i++) {
    snprintf(scripts[i], sizeof scripts[i], "exit %d", i % 5);
    want += i % 5;
    th_spawn_out(loop, &ps[i], &e, TH_SH(scripts[i]), NULL);
  }
  th_spawn_out(loop, &sleeper, &k, (char *const[]){"sleep", "30", NULL}, NULL);
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(&sleeper, &f), 0);
  cr_assert_eq(weft_process_kill(&sleeper, SIGTERM), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, N);
  cr_assert_eq(e.code_sum, want);
  cr_assert_eq(k.calls, 1);
  cr_assert_eq(k.sig, SIGTERM);
  cr_assert_eq(weft_exit_signal(weft_future_value_i64(f)), SIGTERM);
  weft_future_unref(f);
  th_loop_finish(loop);
  unsetenv("WEFT_PROCESS_NO_PIDFD");
}

static void on_sig(weft_signal *s, int signum) {
  (void)s;
  (void)signum;
}

Test(process, fallback_owns_sigchld_while_children_run, .timeout = 30) {
  weft_loop *loop = fallback_loop();
  weft_loop *other = th_loop();
  weft_process p, q;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  weft_process_options o = {.argv = (char *const[]){"true", NULL}};
  cr_assert_eq(weft_spawn(other, &q, &o), -EBUSY,
               "SIGCHLD is the first loop's");
  weft_signal sig;
  weft_signal_init(other, &sig);
  cr_assert_eq(weft_signal_start(&sig, on_sig, SIGCHLD), -EBUSY);
  cr_assert_eq(weft_process_kill(&p, SIGKILL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  /* released: the other loop may watch SIGCHLD now */
  cr_assert_eq(weft_signal_start(&sig, on_sig, SIGCHLD), 0);
  weft_close(&sig.base, NULL);
  th_loop_close(other);
  th_loop_finish(loop);
  unsetenv("WEFT_PROCESS_NO_PIDFD");
}

Test(process, fallback_reaps_orphans_and_runs, .timeout = 30) {
  weft_loop *loop = fallback_loop();
  weft_process p;
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  pid_t pid = p.pid;
  weft_close(&p.base, NULL);
  weft_run_options o = {.proc = {.argv = (char *const[]){"cat", NULL}},
                        .input = "via run",
                        .input_len = 7};
  weft_future *f;
  cr_assert_eq(weft_process_run(loop, &o, &f), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_not_null(r);
  cr_assert_str_eq(r->out, "via run");
  weft_future_unref(f);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  th_wait_reaped(loop, pid); /* the sweep reaps the orphan */
  cr_assert_eq(e.calls, 0);
  th_loop_finish(loop);
  unsetenv("WEFT_PROCESS_NO_PIDFD");
}

/* ---- bad input
 * ----------------------------------------------------------------------------
 */

Test(process, bad_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  weft_process_options o = {.argv = (char *const[]){"true", NULL}};
  cr_assert_eq(weft_spawn(NULL, &p, &o), -EINVAL);
  cr_assert_eq(weft_spawn(loop, NULL, &o), -EINVAL);
  cr_assert_eq(weft_spawn(loop, &p, NULL), -EINVAL);
  weft_process_options empty = {.argv = (char *const[]){NULL}};
  cr_assert_eq(weft_spawn(loop, &p, &empty), -EINVAL);
  weft_process_options noargv = {0};
  cr_assert_eq(weft_spawn(loop, &p, &noargv), -EINVAL);
  weft_process_options badfile = {.argv = (char *const[]){"true", NULL},
                                  .file = ""};
  cr_assert_eq(weft_spawn(loop, &p, &badfile), -EINVAL);
  o.flags = 1u << 20;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EINVAL);
  o.flags = 0;
  o.stdio_count = WEFT_PROCESS_MAX_STDIO + 1;
  weft_stdio many[WEFT_PROCESS_MAX_STDIO + 1] = {0};
  o.stdio = many;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EINVAL);
  o.stdio_count = 1;
  o.stdio = NULL;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EINVAL);
  weft_stdio badkind = {(weft_stdio_kind)42};
  o.stdio = &badkind;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EINVAL);
  weft_stdio badfd[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_FD, 987}};
  o.stdio = badfd;
  o.stdio_count = 2;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EBADF);
  badfd[1].fd = -1;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EBADF);
  weft_stdio nopipe[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, NULL}};
  o.stdio = nopipe;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EINVAL);
  /* a pipe that already has an fd */
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  nopipe[1].pipe = &a;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EINVAL);
  /* a later slot failing undoes the pipe of an earlier one */
  weft_pipe c;
  weft_pipe_init(loop, &c);
  weft_stdio undo[3] = {
      {WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &c}, {WEFT_STDIO_FD, 999}};
  o.stdio = undo;
  o.stdio_count = 3;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EBADF);
  cr_assert_eq(weft_stream_fileno(&c.stream), -EBADF);
  /* the other calls */
  cr_assert_eq(weft_process_kill(NULL, SIGTERM), -EINVAL);
  cr_assert_eq(weft_process_exit_future(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_process_pid(NULL), -EINVAL);
  th_exits e = {0};
  th_spawn_out(loop, &p, &e, (char *const[]){"true", NULL}, NULL);
  cr_assert_eq(weft_process_kill(&p, -1), -EINVAL);
  cr_assert_eq(weft_process_kill(&p, NSIG), -EINVAL);
  cr_assert_eq(weft_process_exit_future(&p, NULL), -EINVAL);
  weft_close(&a.stream.base, NULL);
  weft_close(&b.stream.base, NULL);
  weft_close(&c.stream.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(weft_process_kill(&p, SIGTERM), -EINVAL, "closed handle");
  th_loop_finish(loop);
}

/* ---- allocation failures
 * ------------------------------------------------------------------ */

typedef struct spawn_round {
  weft_process p; /* outlive the op: closed by the sweep */
  th_exits e;
  th_sink out;
} spawn_round;

static int spawn_alloc_round(weft_loop *loop, void *arg) {
  spawn_round *r = arg;
  memset(r, 0, sizeof *r);
  weft_pipe_init(loop, &r->out.pipe);
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &r->out.pipe}};
  weft_process_options o = {.argv = TH_SH("echo hi"),
                            .stdio = st,
                            .stdio_count = 2,
                            .exit_cb = th_on_exit_count};
  r->p.base.data = &r->e;
  int err = weft_spawn(loop, &r->p, &o);
  bool spawned = err == 0;
  weft_future *f = NULL;
  if (err == 0) err = weft_process_exit_future(&r->p, &f);
  if (err == 0)
    err = weft_stream_read_start(&r->out.pipe.stream, NULL, th_sink_read);
  if (err != 0) {
    if (spawned) weft_process_kill(&r->p, SIGKILL);
    weft_future_unref(f);
    f = NULL;
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) {
    cr_assert_eq(r->e.calls, 1);
    cr_assert_str_eq(r->out.buf, "hi\n");
    cr_assert_eq(weft_future_value_i64(f), 0);
    weft_future_unref(f);
  }
  free(r->out.buf);
  return err;
}

Test(process, spawn_allocation_failures_are_clean, .timeout = 30) {
  spawn_round r;
  th_alloc_sweep_run(
      &(th_sweep){.op = spawn_alloc_round, .arg = &r, .max_rounds = 200});
}
