/* Spawn's kill_on_close (the child is killed when its handle closes) and
 * weft_process_kill_group (a signal to the child's whole process group),
 * with their bad input. */
#include "support/test.h"
#include "support/child.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void spawn_flags(weft_loop *loop, weft_process *p, char *const *argv,
                        unsigned flags, weft_pipe *out) {
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, out}};
  if (out != NULL) cr_assert_eq(weft_pipe_init(loop, out), 0);
  weft_process_options o = {.argv = argv,
                            .stdio = st,
                            .stdio_count = out != NULL ? 2 : 1,
                            .flags = flags};
  cr_assert_eq(weft_spawn(loop, p, &o), 0);
}

/* Whether `pid` (our child, not yet reaped by us) has exited, without
 * reaping it. */
static bool exited_unreaped(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         si.si_pid == pid;
}

/* A long sleeper closed with kill_on_close dies and is reaped by the loop
 * (th_wait_reaped fails if it is still there after 5000 turns). */
Test(process_kill, kill_on_close_kills_the_running_child, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_process p;
  spawn_flags(loop, &p, (char *const[]){"sleep", "1000", NULL},
              WEFT_PROCESS_KILL_ON_CLOSE, NULL);
  pid_t pid = p.pid;
  weft_future *f;
  cr_assert_eq(weft_process_exit_future(&p, &f), 0);
  weft_close(&p.base, NULL);
  th_wait_reaped(loop, pid);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  cr_assert_eq(kill(pid, 0), -1, "gone");
  th_loop_finish(loop);
}

/* Without the flag the same child survives its handle (libuv's rule). */
Test(process_kill, without_kill_on_close_the_child_lives_on, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_process p;
  spawn_flags(loop, &p, (char *const[]){"sleep", "1000", NULL}, 0, NULL);
  pid_t pid = p.pid;
  weft_close(&p.base, NULL);
  for (int i = 0; i < 20; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert(!exited_unreaped(pid), "still running");
  cr_assert_eq(kill(pid, SIGKILL), 0);
  th_wait_reaped(loop, pid);
  th_loop_finish(loop);
}

/* kill_on_close after the child exited: nothing to kill, the exit was
 * reported as usual. */
Test(process_kill, kill_on_close_after_exit_is_harmless, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  p.base.data = &e;
  weft_process_options o = {.argv = TH_SH("exit 7"),
                            .flags = WEFT_PROCESS_KILL_ON_CLOSE,
                            .exit_cb = th_on_exit_count};
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  th_run(loop);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 7);
  cr_assert_eq(e.sig, 0);
  th_loop_finish(loop);
}

/* A shell leads a new group and starts two sleepers; one signal to the
 * group reaches all three. We are their subreaper, so the orphaned
 * sleepers come back to us and their status shows the signal. */
Test(process_kill, kill_group_reaches_grandchildren, .timeout = 20) {
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  weft_loop *loop = th_loop();
  weft_process p;
  weft_pipe out;
  spawn_flags(loop, &p,
              TH_SH("sleep 1000 & echo $!; sleep 1000 & echo $!; wait"),
              WEFT_PROCESS_NEW_PGROUP, &out);
  char buf[64] = {0};
  size_t got = 0;
  int lines = 0;
  while (lines < 2) { /* two pids, one per line */
    weft_future *f;
    cr_assert_eq(weft_stream_read_some_future(&out.stream, buf + got,
                                              sizeof buf - 1 - got, &f),
                 0);
    for (int i = 0;
         i < 10000 && weft_future_get_state(f) == WEFT_FUTURE_PENDING; i++)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
    got += (size_t)weft_future_value_i64(f);
    weft_future_unref(f);
    lines = 0;
    for (size_t i = 0; i < got; i++)
      lines += buf[i] == '\n';
  }
  pid_t g1 = 0, g2 = 0;
  cr_assert_eq(sscanf(buf, "%d\n%d", &g1, &g2), 2);
  cr_assert_eq(getpgid(g1), p.pid, "the sleepers are in the child's group");
  weft_future *ex;
  cr_assert_eq(weft_process_exit_future(&p, &ex), 0);
  cr_assert_eq(weft_process_kill_group(&p, SIGTERM), 0);
  for (int i = 0; i < 10000 && weft_future_get_state(ex) == WEFT_FUTURE_PENDING;
       i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_exit_signal(weft_future_value_i64(ex)), SIGTERM);
  weft_future_unref(ex);
  pid_t g[2] = {g1, g2};
  for (int i = 0; i < 2; i++) {
    int st = 0;
    cr_assert_eq(waitpid(g[i], &st, 0), g[i]);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "%d: %#x", g[i], st);
  }
  /* nobody is left in the group */
  cr_assert_eq(weft_process_kill_group(&p, 0), -ESRCH);
  weft_close(&out.stream.base, NULL);
  weft_close(&p.base, NULL);
  th_loop_finish(loop);
}

Test(process_kill, bad_input, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_process p;
  cr_assert_eq(weft_process_kill_group(NULL, SIGTERM), -EINVAL);
  weft_process_options bad = {.argv = (char *const[]){"true", NULL},
                              .flags = WEFT_PROCESS_KILL_ON_CLOSE << 1};
  cr_assert_eq(weft_spawn(loop, &p, &bad), -EINVAL, "an unknown flag");
  spawn_flags(loop, &p, (char *const[]){"sleep", "1000", NULL},
              WEFT_PROCESS_KILL_ON_CLOSE, NULL);
  /* shares our group: a group signal would hit us */
  cr_assert_eq(weft_process_kill_group(&p, SIGTERM), -EINVAL);
  cr_assert_eq(weft_process_kill(&p, 0), 0, "still running");
  pid_t pid = p.pid;
  weft_close(&p.base, NULL);
  cr_assert_eq(weft_process_kill_group(&p, SIGTERM), -EINVAL, "closing");
  th_wait_reaped(loop, pid);
  weft_process q;
  spawn_flags(loop, &q, (char *const[]){"sleep", "1000", NULL},
              WEFT_PROCESS_NEW_PGROUP | WEFT_PROCESS_KILL_ON_CLOSE, NULL);
  cr_assert_eq(weft_process_kill_group(&q, -1), -EINVAL);
  cr_assert_eq(weft_process_kill_group(&q, NSIG), -EINVAL);
  cr_assert_eq(weft_process_kill_group(&q, 0), 0, "the group exists");
  pid = q.pid;
  weft_close(&q.base, NULL);
  th_wait_reaped(loop, pid);
  th_loop_finish(loop);
}
