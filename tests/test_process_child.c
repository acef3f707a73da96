/* What a child process is given: environment and cwd, stdio kinds, stdin
 * -> stdout through cat, 10 MiB of output, fd slots and leaks, signal mask
 * and dispositions, exec failures, uid/gid, process groups and sessions,
 * detached children. Exits, kills and the rest: test_process.c. */
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

/* ---- environment, cwd, stdio
 * -------------------------------------------------------- */

Test(process, env_and_cwd, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
  weft_process_options o = {
      .argv = TH_SH("printf '%s:%s:%s' \"$FOO\" \"$(pwd)\" \"${HOME:-none}\""),
      .env = (char *const[]){"FOO=bar baz", "PATH=/usr/bin:/bin", NULL},
      .cwd = "/tmp",
      .stdio = st,
      .stdio_count = 2,
      .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  th_sink_start(&out);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  cr_assert_eq(out.eof, 1);
  cr_assert_str_eq(out.buf, "bar baz:/tmp:none");
  free(out.buf);
  th_loop_finish(loop);
}

Test(process, bad_cwd_is_reported, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  weft_process_options o = {.argv = (char *const[]){"true", NULL},
                            .cwd = "/nonexistent/dir"};
  cr_assert_eq(weft_spawn(loop, &p, &o), -ENOENT);
  th_loop_finish(loop);
}

static void cat_written(weft_write_req *req, int status) {
  cr_assert_eq(status, 0);
  weft_pipe *in = req->data;
  weft_close(&in->stream.base, NULL); /* cat sees end of file */
}

Test(process, stdin_to_stdout_through_cat, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  weft_pipe in;
  th_sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &in), 0);
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[3] = {{WEFT_STDIO_PIPE, -1, &in},
                      {WEFT_STDIO_PIPE, -1, &out.pipe},
                      {WEFT_STDIO_INHERIT}};
  weft_process_options o = {.argv = (char *const[]){"cat", NULL},
                            .stdio = st,
                            .stdio_count = 3,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  th_sink_start(&out);
  static char msg[] = "hello through cat\n";
  weft_write_req wr = {.data = &in};
  weft_buf b = weft_buf_init(msg, sizeof msg - 1);
  cr_assert_eq(weft_stream_write(&wr, &in.stream, &b, 1, cat_written), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  cr_assert_str_eq(out.buf, msg);
  free(out.buf);
  th_loop_finish(loop);
}

Test(process, ten_mib_of_output_through_a_stream, .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_sink out = {0};
  th_spawn_out(loop, &p, &e,
               (char *const[]){"head", "-c", "10485760", "/dev/zero", NULL},
               &out);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  cr_assert_eq(out.len, (size_t)10 << 20);
  cr_assert_eq(out.eof, 1);
  free(out.buf);
  th_loop_finish(loop);
}

Test(process, stdio_fd_ignore_and_socketpair_slot, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
  weft_process p;
  th_exits e = {0};
  th_sink extra = {0};
  cr_assert_eq(weft_pipe_init(loop, &extra.pipe), 0);
  /* stdin /dev/null (cat prints nothing), stdout to our fd, fd 3 a socket */
  weft_stdio st[4] = {{WEFT_STDIO_IGNORE},
                      {WEFT_STDIO_FD, fds[1]},
                      {WEFT_STDIO_INHERIT},
                      {WEFT_STDIO_PIPE, -1, &extra.pipe}};
  weft_process_options o = {.argv = TH_SH("cat; echo out; echo three >&3"),
                            .stdio = st,
                            .stdio_count = 4,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  close(fds[1]);
  th_sink_start(&extra);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  char buf[16] = {0};
  cr_assert_eq(read(fds[0], buf, sizeof buf), 4);
  cr_assert_str_eq(buf, "out\n");
  cr_assert_str_eq(extra.buf, "three\n");
  close(fds[0]);
  free(extra.buf);
  th_loop_finish(loop);
}

Test(process, swapped_fds_and_no_leaked_fds, .timeout = 10) {
  weft_loop *loop = th_loop();
  int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
  cr_assert_geq(leak, 3);
  char script[96];
  snprintf(script, sizeof script, "test -e /proc/self/fd/%d && exit 9; exit 0",
           leak);
  weft_process p;
  th_exits e = {0};
  /* stdin from our stdout and stdout from our stdin: a swap */
  weft_stdio st[2] = {{WEFT_STDIO_FD, 1}, {WEFT_STDIO_FD, 0}};
  weft_process_options o = {.argv = TH_SH(script),
                            .stdio = st,
                            .stdio_count = 2,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0, "an fd without O_CLOEXEC leaked into the child");
  close(leak);
  th_loop_finish(loop);
}

Test(process, parent_with_closed_stdin, .timeout = 10) {
  /* our pipe ends may land on fd 0: they must still go where they belong */
  weft_loop *loop = th_loop();
  int saved = dup(0);
  cr_assert_geq(saved, 0);
  weft_process p;
  th_exits e = {0};
  weft_pipe in;
  th_sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &in), 0);
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[2] = {{WEFT_STDIO_PIPE, -1, &in},
                      {WEFT_STDIO_PIPE, -1, &out.pipe}};
  weft_process_options o = {.argv = (char *const[]){"cat", NULL},
                            .stdio = st,
                            .stdio_count = 2,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  close(0); /* the next fd weft opens (a pipe end) gets number 0 */
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  /* the child's pipe end had fd 0 and is closed again (posix_spawn
   * fallback: the pidfd opened after the spawn takes fd 0) */
  int fl = fcntl(0, F_GETFD);
  cr_assert(fl == -1 || fl == FD_CLOEXEC, "fd 0 is closed or one of ours");
  th_sink_start(&out);
  static char msg[] = "through fd 0\n";
  weft_write_req wr = {.data = &in};
  weft_buf b = weft_buf_init(msg, sizeof msg - 1);
  cr_assert_eq(weft_stream_write(&wr, &in.stream, &b, 1, cat_written), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  cr_assert_str_eq(out.buf, msg);
  free(out.buf);
  th_loop_finish(loop);
  cr_assert_eq(dup2(saved, 0), 0);
  close(saved);
}

Test(process, fd_in_its_own_slot_loses_cloexec, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* fd 15: high enough not to be the test runner's own */
  int fds[2];
  cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
  /* both ends above 15 (a loop's fds can push them onto it), so that
   * fd 15 is only the copy made next */
  for (int i = 0; i < 2; i++) {
    int up = fcntl(fds[i], F_DUPFD_CLOEXEC, 16);
    cr_assert_geq(up, 16);
    close(fds[i]);
    fds[i] = up;
  }
  cr_assert_eq(dup3(fds[1], 15, O_CLOEXEC), 15);
  close(fds[1]);
  weft_stdio st[16];
  for (int i = 0; i < 16; i++)
    st[i] = (weft_stdio){WEFT_STDIO_IGNORE};
  st[2] = (weft_stdio){WEFT_STDIO_INHERIT};
  st[15] = (weft_stdio){WEFT_STDIO_FD, 15};
  weft_process p;
  th_exits e = {0};
  weft_process_options o = {.argv = TH_SH("echo nine > /dev/fd/15"),
                            .stdio = st,
                            .stdio_count = 16,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  close(15);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0);
  char buf[16] = {0};
  cr_assert_eq(read(fds[0], buf, sizeof buf), 5);
  cr_assert_str_eq(buf, "nine\n");
  close(fds[0]);
  th_loop_finish(loop);
}

Test(process, sixteen_pipe_slots, .timeout = 10) {
  weft_loop *loop = th_loop();
  enum { N = WEFT_PROCESS_MAX_STDIO };
  th_sink *sinks = calloc(N, sizeof *sinks);
  weft_stdio st[N];
  for (int i = 0; i < N; i++) {
    cr_assert_eq(weft_pipe_init(loop, &sinks[i].pipe), 0);
    st[i] = (weft_stdio){WEFT_STDIO_PIPE, -1, &sinks[i].pipe};
  }
  weft_process p;
  th_exits e = {0};
  weft_process_options o = {
      /* bash: dash cannot redirect to fds above 9 */
      .argv = (char *const[]){"bash", "-c",
                              "echo out; echo err >&2; set -e; "
                              "for i in {3..15}; do echo $i >&$i; done",
                              NULL},
      .stdio = st,
      .stdio_count = N,
      .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  weft_close(&sinks[0].pipe.stream.base, NULL); /* stdin: end of file */
  for (int i = 1; i < N; i++)
    th_sink_start(&sinks[i]);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0, "%d %s", (int)e.status,
               sinks[2].buf ? sinks[2].buf : "");
  cr_assert_str_eq(sinks[1].buf, "out\n");
  cr_assert_str_eq(sinks[2].buf, "err\n");
  for (int i = 3; i < N; i++) {
    char want[16];
    snprintf(want, sizeof want, "%d\n", i);
    cr_assert_str_eq(sinks[i].buf, want);
    free(sinks[i].buf);
  }
  free(sinks[1].buf);
  free(sinks[2].buf);
  free(sinks);
  th_loop_finish(loop);
}

Test(process, signal_mask_and_dispositions_reset, .timeout = 10) {
  weft_loop *loop = th_loop();
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, &old);
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_int;
  sigaction(SIGINT, &ign, &old_int);
  weft_process p, q;
  th_exits e1 = {0}, e2 = {0};
  th_spawn_out(loop, &p, &e1, TH_SH("kill -TERM $$; exit 0"), NULL);
  th_spawn_out(loop, &q, &e2, TH_SH("kill -INT $$; exit 0"), NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  sigprocmask(SIG_SETMASK, &old, NULL);
  sigaction(SIGINT, &old_int, NULL);
  cr_assert_eq(e1.sig, SIGTERM);
  cr_assert_eq(e2.sig, SIGINT);
  th_loop_finish(loop);
}

/* The status line `key` of a /proc/<pid>/status text, as a string. */
static const char *status_field(const char *text, const char *key, char *out,
                                size_t n) {
  const char *at = strstr(text, key);
  cr_assert_not_null(at, "%s missing", key);
  at += strlen(key);
  while (*at == ' ' || *at == '\t')
    at++;
  size_t len = strcspn(at, "\n");
  cr_assert_lt(len, n);
  memcpy(out, at, len);
  out[len] = '\0';
  return out;
}

/* Every signal, glibc's internal 32 and 33 included, is at its default in
 * the child and none is blocked, on both spawn paths (posix_spawn, and
 * fork when a uid is asked for). cat reads its own status. */
Test(process, every_signal_default_and_unblocked_in_the_child, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* the parent ignores 32 itself (glibc's sigaction refuses it), so the
   * fork path inherits it. Not 33: under TSan the fork child has a second
   * thread, and its setuid() must signal that thread with 33. */
  unsigned long ign[8] = {(unsigned long)SIG_IGN}, old[8];
  cr_assert_eq(syscall(SYS_rt_sigaction, 32, ign, old, (NSIG - 1) / 8), 0);
  for (int path = 0; path < 2; path++) {
    weft_process p;
    th_exits e = {0};
    th_sink out = {0};
    cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
    weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
    weft_process_options o = {
        .argv = (char *const[]){"cat", "/proc/self/status", NULL},
        .stdio = st,
        .stdio_count = 2,
        .exit_cb = th_on_exit_count};
    if (path == 1) {
      o.flags = WEFT_PROCESS_SETUID;
      o.uid = geteuid();
    }
    p.base.data = &e;
    int err = weft_spawn(loop, &p, &o);
    cr_assert_eq(err, 0, "%s", weft_err_name(err));
    th_sink_start(&out);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    cr_assert_eq(e.calls, 1);
    cr_assert_eq(e.status, 0);
    char v[64];
    cr_assert_str_eq(status_field(out.buf, "SigIgn:", v, sizeof v),
                     "0000000000000000", "path %d", path);
    cr_assert_str_eq(status_field(out.buf, "SigBlk:", v, sizeof v),
                     "0000000000000000", "path %d", path);
    free(out.buf);
  }
  syscall(SYS_rt_sigaction, 32, old, NULL, (NSIG - 1) / 8);
  th_loop_finish(loop);
}

/* ---- exec failures, uid/gid, groups
 * --------------------------------------------------- */

Test(process, exec_failures_are_returned_by_spawn, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  weft_pipe out;
  cr_assert_eq(weft_pipe_init(loop, &out), 0);
  weft_stdio st[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &out}};
  weft_process_options o = {.argv =
                                (char *const[]){"no-such-program-xyz", NULL},
                            .stdio = st,
                            .stdio_count = 2};
  cr_assert_eq(weft_spawn(loop, &p, &o), -ENOENT);
  cr_assert_eq(weft_stream_fileno(&out.stream), -EBADF, "pipe left unopened");
  o.argv = (char *const[]){"/nonexistent/prog", NULL};
  cr_assert_eq(weft_spawn(loop, &p, &o), -ENOENT);
  o.argv = (char *const[]){"/etc/passwd", NULL};
  cr_assert_eq(weft_spawn(loop, &p, &o), -EACCES);
  /* the loop is still usable: the same pipe works for a good spawn */
  th_exits e = {0};
  o.argv = (char *const[]){"true", NULL};
  o.exit_cb = th_on_exit_count;
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  weft_close(&out.stream.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  th_loop_finish(loop);
}

Test(process, uid_and_gid, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  th_sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
  weft_process_options o = {.argv = TH_SH("echo $(id -u):$(id -g):$(id -G)"),
                            .stdio = st,
                            .stdio_count = 2,
                            .flags = WEFT_PROCESS_SETUID | WEFT_PROCESS_SETGID,
                            .uid = 65534,
                            .gid = 65534,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  int err = weft_spawn(loop, &p, &o);
  if (geteuid() != 0) {
    cr_assert_eq(err, -EPERM);
    th_loop_finish(loop);
    return;
  }
  cr_assert_eq(err, 0);
  th_sink_start(&out);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_str_eq(out.buf, "65534:65534:65534\n");
  free(out.buf);
  /* the fork path reports exec failure too */
  o.argv = (char *const[]){"/nonexistent/prog", NULL};
  o.stdio_count = 0;
  err = weft_spawn(loop, &p, &o);
  cr_assert_eq(err, -ENOENT, "%s", weft_err_name(err));
  th_loop_finish(loop);
}

Test(process, new_process_group_and_session, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p, q;
  th_exits e = {0};
  weft_process_options o = {.argv = (char *const[]){"sleep", "30", NULL},
                            .flags = WEFT_PROCESS_NEW_PGROUP,
                            .exit_cb = th_on_exit_count};
  p.base.data = q.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  cr_assert_eq(getpgid(p.pid), p.pid);
  cr_assert_neq(getsid(p.pid), p.pid);
  o.flags = WEFT_PROCESS_NEW_SESSION;
  cr_assert_eq(weft_spawn(loop, &q, &o), 0);
  cr_assert_eq(getsid(q.pid), q.pid);
  cr_assert_eq(weft_process_kill(&p, SIGKILL), 0);
  cr_assert_eq(weft_process_kill(&q, SIGKILL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 2);
  th_loop_finish(loop);
}

Test(process, detached_child_does_not_keep_the_loop, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  th_exits e = {0};
  weft_process_options o = {.argv = (char *const[]){"sleep", "30", NULL},
                            .flags = WEFT_PROCESS_DETACHED,
                            .exit_cb = th_on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  cr_assert(!weft_has_ref(&p.base));
  cr_assert_eq(getsid(p.pid), p.pid);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(e.calls, 0);
  weft_ref(&p.base); /* now wait for it */
  cr_assert_eq(weft_process_kill(&p, SIGTERM), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.sig, SIGTERM);
  th_loop_finish(loop);
}
