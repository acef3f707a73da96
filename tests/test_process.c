/* Child processes: exit codes and signals, kill, env and cwd, stdio kinds,
 * stdin -> stdout through cat, 10 MiB of output, 200 concurrent children,
 * exec failures, uid/gid, process groups and sessions, signal mask reset,
 * what a loop's close does to a running child, the SIGCHLD fallback,
 * allocation failures and bad input to every call. weft_process_run() has
 * its own suite, test_process_run.c. */
#include "support/test.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SH(script) ((char *const[]){"sh", "-c", script, NULL})

/* ---- collecting exits and output -------------------------------------------- */

typedef struct exits {
  int calls;
  int64_t status;
  int sig;
  int64_t code_sum;
} exits;

static void on_exit_count(weft_process *p, int64_t status, int sig) {
  exits *e = p->base.data;
  e->calls++;
  e->status = status;
  e->sig = sig;
  e->code_sum += status;
  weft_close(&p->base, NULL);
}

typedef struct sink {
  weft_pipe pipe;
  char *buf;
  size_t len, cap;
  int eof;
} sink;

static void sink_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  sink *k = (sink *)s;
  if (n > 0) {
    if (k->len + (size_t)n + 1 > k->cap) {
      k->cap = (k->len + (size_t)n + 1) * 2;
      k->buf = realloc(k->buf, k->cap);
      cr_assert_not_null(k->buf);
    }
    memcpy(k->buf + k->len, buf->base, (size_t)n);
    k->len += (size_t)n;
    k->buf[k->len] = '\0';
  } else if (n < 0) {
    cr_assert_eq(n, WEFT_EOF);
    k->eof++;
    weft_close(&s->base, NULL);
  }
}

static void sink_start(sink *k) {
  cr_assert_eq(weft_stream_read_start(&k->pipe.stream, NULL, sink_read), 0);
}

/* Spawns argv with stdout into `out` (may be NULL: inherited). */
static void spawn_out(weft_loop *loop, weft_process *p, exits *e,
                      char *const *argv, sink *out) {
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, out ? &out->pipe : NULL}};
  if (out) cr_assert_eq(weft_pipe_init(loop, &out->pipe), 0);
  weft_process_options o = {.argv = argv, .stdio = st,
                            .stdio_count = out ? 2 : 1,
                            .exit_cb = on_exit_count};
  p->base.data = e;
  cr_assert_eq(weft_spawn(loop, p, &o), 0);
  if (out) sink_start(out);
}

/* ---- exits and signals ---------------------------------------------------------- */

Test(process, exit_code_reaches_callback_and_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  exits e = {0};
  spawn_out(loop, &p, &e, SH("exit 3"), NULL);
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
  cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 3);
  cr_assert(!weft_exit_is_signal(weft_future_value_i64(f)));
  cr_assert_eq(weft_exit_code(weft_future_value_i64(f)), 3);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(process, signal_death_is_reported, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  exits e = {0};
  spawn_out(loop, &p, &e, SH("kill -TERM $$"), NULL);
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
  exits e = {0};
  spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
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
  exits *e = p->base.data;
  e->calls++;
  e->status = status;
  e->sig = sig;
}

Test(process, kill_and_future_after_exit, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  exits e = {0};
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
  cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(f), 0);
  weft_future_unref(f);
  weft_close(&p.base, NULL);
  th_loop_finish(loop);
}

Test(process, two_hundred_concurrent_children, .timeout = 30) {
  weft_loop *loop = th_loop();
  enum { N = 200 };
  weft_process *ps = calloc(N, sizeof *ps);
  exits e = {0};
  char scripts[N][32];
  int64_t want = 0;
  for (int i = 0; i < N; i++) {
    snprintf(scripts[i], sizeof scripts[i], "exit %d", i % 7);
    want += i % 7;
    ps[i].base.data = &e;
    weft_process_options o = {.argv = SH(scripts[i]), .exit_cb = on_exit_count};
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
  exits ea = {0}, eb = {0};
  spawn_out(a, &pa, &ea, SH("exit 5"), NULL);
  spawn_out(b, &pb, &eb, SH("exit 6"), NULL);
  weft_loop_run(b, WEFT_RUN_DEFAULT);
  weft_loop_run(a, WEFT_RUN_DEFAULT);
  cr_assert_eq(ea.calls, 1);
  cr_assert_eq(ea.status, 5);
  cr_assert_eq(eb.calls, 1);
  cr_assert_eq(eb.status, 6);
  th_loop_close(b);
  th_loop_finish(a);
}

/* ---- environment, cwd, stdio -------------------------------------------------------- */

Test(process, env_and_cwd, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  exits e = {0};
  sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
  weft_process_options o = {
      .argv = SH("printf '%s:%s:%s' \"$FOO\" \"$(pwd)\" \"${HOME:-none}\""),
      .env = (char *const[]){"FOO=bar baz", "PATH=/usr/bin:/bin", NULL},
      .cwd = "/tmp", .stdio = st, .stdio_count = 2, .exit_cb = on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  sink_start(&out);
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
  exits e = {0};
  weft_pipe in;
  sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &in), 0);
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[3] = {{WEFT_STDIO_PIPE, -1, &in},
                      {WEFT_STDIO_PIPE, -1, &out.pipe},
                      {WEFT_STDIO_INHERIT}};
  weft_process_options o = {.argv = (char *const[]){"cat", NULL}, .stdio = st,
                            .stdio_count = 3, .exit_cb = on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  sink_start(&out);
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
  exits e = {0};
  sink out = {0};
  spawn_out(loop, &p, &e, (char *const[]){"head", "-c", "10485760", "/dev/zero", NULL},
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
  exits e = {0};
  sink extra = {0};
  cr_assert_eq(weft_pipe_init(loop, &extra.pipe), 0);
  /* stdin /dev/null (cat prints nothing), stdout to our fd, fd 3 a socket */
  weft_stdio st[4] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_FD, fds[1]},
                      {WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &extra.pipe}};
  weft_process_options o = {.argv = SH("cat; echo out; echo three >&3"),
                            .stdio = st, .stdio_count = 4,
                            .exit_cb = on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  close(fds[1]);
  sink_start(&extra);
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
  exits e = {0};
  /* stdin from our stdout and stdout from our stdin: a swap */
  weft_stdio st[2] = {{WEFT_STDIO_FD, 1}, {WEFT_STDIO_FD, 0}};
  weft_process_options o = {.argv = SH(script), .stdio = st, .stdio_count = 2,
                            .exit_cb = on_exit_count};
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
  exits e = {0};
  weft_pipe in;
  sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &in), 0);
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[2] = {{WEFT_STDIO_PIPE, -1, &in}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
  weft_process_options o = {.argv = (char *const[]){"cat", NULL}, .stdio = st,
                            .stdio_count = 2, .exit_cb = on_exit_count};
  p.base.data = &e;
  close(0); /* the next fd weft opens (a pipe end) gets number 0 */
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  cr_assert_eq(fcntl(0, F_GETFD), FD_CLOEXEC, "fd 0 is one of ours now");
  sink_start(&out);
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
  for (int i = 0; i < 16; i++) st[i] = (weft_stdio){WEFT_STDIO_IGNORE};
  st[2] = (weft_stdio){WEFT_STDIO_INHERIT};
  st[15] = (weft_stdio){WEFT_STDIO_FD, 15};
  weft_process p;
  exits e = {0};
  weft_process_options o = {.argv = SH("echo nine > /dev/fd/15"), .stdio = st,
                            .stdio_count = 16, .exit_cb = on_exit_count};
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
  sink *sinks = calloc(N, sizeof *sinks);
  weft_stdio st[N];
  for (int i = 0; i < N; i++) {
    cr_assert_eq(weft_pipe_init(loop, &sinks[i].pipe), 0);
    st[i] = (weft_stdio){WEFT_STDIO_PIPE, -1, &sinks[i].pipe};
  }
  weft_process p;
  exits e = {0};
  weft_process_options o = {
      /* bash: dash cannot redirect to fds above 9 */
      .argv = (char *const[]){"bash", "-c",
                              "echo out; echo err >&2; set -e; "
                              "for i in {3..15}; do echo $i >&$i; done", NULL},
      .stdio = st, .stdio_count = N, .exit_cb = on_exit_count};
  p.base.data = &e;
  cr_assert_eq(weft_spawn(loop, &p, &o), 0);
  weft_close(&sinks[0].pipe.stream.base, NULL); /* stdin: end of file */
  for (int i = 1; i < N; i++) sink_start(&sinks[i]);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.status, 0, "%d %s", (int)e.status, sinks[2].buf ? sinks[2].buf : "");
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
  exits e1 = {0}, e2 = {0};
  spawn_out(loop, &p, &e1, SH("kill -TERM $$; exit 0"), NULL);
  spawn_out(loop, &q, &e2, SH("kill -INT $$; exit 0"), NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  sigprocmask(SIG_SETMASK, &old, NULL);
  sigaction(SIGINT, &old_int, NULL);
  cr_assert_eq(e1.sig, SIGTERM);
  cr_assert_eq(e2.sig, SIGINT);
  th_loop_finish(loop);
}

/* The status line `key` of a /proc/<pid>/status text, as a string. */
static const char *status_field(const char *text, const char *key, char *out, size_t n) {
  const char *at = strstr(text, key);
  cr_assert_not_null(at, "%s missing", key);
  at += strlen(key);
  while (*at == ' ' || *at == '\t') at++;
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
    exits e = {0};
    sink out = {0};
    cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
    weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
    weft_process_options o = {.argv = (char *const[]){"cat", "/proc/self/status", NULL},
                              .stdio = st, .stdio_count = 2, .exit_cb = on_exit_count};
    if (path == 1) {
      o.flags = WEFT_PROCESS_SETUID;
      o.uid = geteuid();
    }
    p.base.data = &e;
    int err = weft_spawn(loop, &p, &o);
    cr_assert_eq(err, 0, "%s", weft_err_name(err));
    sink_start(&out);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    cr_assert_eq(e.calls, 1);
    cr_assert_eq(e.status, 0);
    char v[64];
    cr_assert_str_eq(status_field(out.buf, "SigIgn:", v, sizeof v), "0000000000000000",
                     "path %d", path);
    cr_assert_str_eq(status_field(out.buf, "SigBlk:", v, sizeof v), "0000000000000000",
                     "path %d", path);
    free(out.buf);
  }
  syscall(SYS_rt_sigaction, 32, old, NULL, (NSIG - 1) / 8);
  th_loop_finish(loop);
}

/* ---- exec failures, uid/gid, groups --------------------------------------------------- */

Test(process, exec_failures_are_returned_by_spawn, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  weft_pipe out;
  cr_assert_eq(weft_pipe_init(loop, &out), 0);
  weft_stdio st[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &out}};
  weft_process_options o = {.argv = (char *const[]){"no-such-program-xyz", NULL},
                            .stdio = st, .stdio_count = 2};
  cr_assert_eq(weft_spawn(loop, &p, &o), -ENOENT);
  cr_assert_eq(weft_stream_fileno(&out.stream), -EBADF, "pipe left unopened");
  o.argv = (char *const[]){"/nonexistent/prog", NULL};
  cr_assert_eq(weft_spawn(loop, &p, &o), -ENOENT);
  o.argv = (char *const[]){"/etc/passwd", NULL};
  cr_assert_eq(weft_spawn(loop, &p, &o), -EACCES);
  /* the loop is still usable: the same pipe works for a good spawn */
  exits e = {0};
  o.argv = (char *const[]){"true", NULL};
  o.exit_cb = on_exit_count;
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
  exits e = {0};
  sink out = {0};
  cr_assert_eq(weft_pipe_init(loop, &out.pipe), 0);
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
  weft_process_options o = {.argv = SH("echo $(id -u):$(id -g):$(id -G)"),
                            .stdio = st, .stdio_count = 2,
                            .flags = WEFT_PROCESS_SETUID | WEFT_PROCESS_SETGID,
                            .uid = 65534, .gid = 65534, .exit_cb = on_exit_count};
  p.base.data = &e;
  int err = weft_spawn(loop, &p, &o);
  if (geteuid() != 0) {
    cr_assert_eq(err, -EPERM);
    th_loop_finish(loop);
    return;
  }
  cr_assert_eq(err, 0);
  sink_start(&out);
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
  exits e = {0};
  weft_process_options o = {.argv = (char *const[]){"sleep", "30", NULL},
                            .flags = WEFT_PROCESS_NEW_PGROUP,
                            .exit_cb = on_exit_count};
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
  exits e = {0};
  weft_process_options o = {.argv = (char *const[]){"sleep", "30", NULL},
                            .flags = WEFT_PROCESS_DETACHED,
                            .exit_cb = on_exit_count};
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

/* ---- closing early -------------------------------------------------------------------- */

Test(process, running_child_survives_its_loop, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  exits e = {0};
  spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
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

static void tick(weft_timer *t) { (void)t; }

Test(process, closed_handle_child_is_reaped_by_the_loop, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_process p;
  exits e = {0};
  spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  pid_t pid = p.pid;
  weft_close(&p.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  /* the orphan does not keep the loop alive: pace it with a timer until
   * the zombie is gone (WNOWAIT looks without reaping) */
  weft_timer t;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, tick, 1, 1);
  siginfo_t si;
  int turns = 0;
  while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         turns++ < 5000)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(errno, ECHILD, "the loop reaped it");
  cr_assert_eq(e.calls, 0);
  th_loop_finish(loop);
}

/* ---- the SIGCHLD fallback (forced: this kernel has pidfds) ----------------- */

static weft_loop *fallback_loop(void) {
  cr_assert_eq(setenv("WEFT_PROCESS_NO_PIDFD", "1", 1), 0);
  return th_loop();
}

Test(process, fallback_exits_signals_and_kill, .timeout = 30) {
  weft_loop *loop = fallback_loop();
  enum { N = 50 };
  weft_process ps[N], sleeper;
  exits e = {0}, k = {0};
  char scripts[N][32];
  int64_t want = 0;
  for (int i = 0; i < N; i++) {
    snprintf(scripts[i], sizeof scripts[i], "exit %d", i % 5);
    want += i % 5;
    spawn_out(loop, &ps[i], &e, SH(scripts[i]), NULL);
  }
  spawn_out(loop, &sleeper, &k, (char *const[]){"sleep", "30", NULL}, NULL);
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
  exits e = {0};
  spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  weft_process_options o = {.argv = (char *const[]){"true", NULL}};
  cr_assert_eq(weft_spawn(other, &q, &o), -EBUSY, "SIGCHLD is the first loop's");
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
  exits e = {0};
  spawn_out(loop, &p, &e, (char *const[]){"sleep", "30", NULL}, NULL);
  pid_t pid = p.pid;
  weft_close(&p.base, NULL);
  weft_run_options o = {.proc = {.argv = (char *const[]){"cat", NULL}},
                        .input = "via run", .input_len = 7};
  weft_future *f;
  cr_assert_eq(weft_process_run(loop, &o, &f), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  const weft_run_result *r = weft_future_value(f);
  cr_assert_not_null(r);
  cr_assert_str_eq(r->out, "via run");
  weft_future_unref(f);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  weft_timer t;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, tick, 1, 1);
  siginfo_t si;
  int turns = 0;
  while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         turns++ < 5000)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(errno, ECHILD, "the sweep reaped the orphan");
  cr_assert_eq(e.calls, 0);
  th_loop_finish(loop);
  unsetenv("WEFT_PROCESS_NO_PIDFD");
}

/* ---- bad input ---------------------------------------------------------------------------- */

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
  weft_process_options badfile = {.argv = (char *const[]){"true", NULL}, .file = ""};
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
  weft_stdio undo[3] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &c},
                        {WEFT_STDIO_FD, 999}};
  o.stdio = undo;
  o.stdio_count = 3;
  cr_assert_eq(weft_spawn(loop, &p, &o), -EBADF);
  cr_assert_eq(weft_stream_fileno(&c.stream), -EBADF);
  /* the other calls */
  cr_assert_eq(weft_process_kill(NULL, SIGTERM), -EINVAL);
  cr_assert_eq(weft_process_exit_future(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_process_pid(NULL), -EINVAL);
  exits e = {0};
  spawn_out(loop, &p, &e, (char *const[]){"true", NULL}, NULL);
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

/* ---- allocation failures ------------------------------------------------------------------ */

Test(process, spawn_allocation_failures_are_clean, .timeout = 30) {
  for (size_t n = 1;; n++) {
    th_alloc_install(n);
    weft_loop *loop = NULL;
    if (weft_loop_new(&loop, NULL) != 0) {
      th_alloc_restore();
      continue;
    }
    weft_process p;
    exits e = {0};
    sink out = {0};
    weft_pipe_init(loop, &out.pipe);
    weft_stdio st[2] = {{WEFT_STDIO_IGNORE}, {WEFT_STDIO_PIPE, -1, &out.pipe}};
    weft_process_options o = {.argv = SH("echo hi"), .stdio = st,
                              .stdio_count = 2, .exit_cb = on_exit_count};
    p.base.data = &e;
    int err = weft_spawn(loop, &p, &o);
    bool spawned = err == 0;
    weft_future *f = NULL;
    if (err == 0) err = weft_process_exit_future(&p, &f);
    if (err == 0) err = weft_stream_read_start(&out.pipe.stream, NULL, sink_read);
    size_t failed = th_alloc_failed();
    if (err != 0) {
      cr_assert_eq(err, -ENOMEM);
      if (spawned) weft_process_kill(&p, SIGKILL);
      weft_future_unref(f);
      f = NULL;
    }
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    if (err == 0) {
      cr_assert_eq(e.calls, 1);
      cr_assert_str_eq(out.buf, "hi\n");
      cr_assert_eq(weft_future_value_i64(f), 0);
      weft_future_unref(f);
    }
    free(out.buf);
    th_loop_close(loop);
    cr_assert_eq(weft_alloc_live(), 0);
    th_alloc_restore();
    if (err == 0 && failed == 0) break;
    cr_assert_lt(n, 200);
  }
}
