/* TTY: a terminal as a stream, driven through a pseudo-terminal (so it
 * runs without one): bytes both ways, raw/io/normal modes as tcgetattr
 * sees them, the mode put back at close, at exit and when the process
 * dies by a signal (forked children), the window size and SIGWINCH as a
 * callback and a future, and bad input. Every test counts its fds. */
#include "support/test.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int open_fd_count(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

typedef struct pty {
  int master, slave;
  char name[64];
  struct termios orig; /* the slave's termios when opened */
} pty;

static void pty_open(pty *p) {
  p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  cr_assert_geq(p->master, 0);
  cr_assert_eq(grantpt(p->master), 0);
  cr_assert_eq(unlockpt(p->master), 0);
  cr_assert_eq(ptsname_r(p->master, p->name, sizeof p->name), 0);
  p->slave = open(p->name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  cr_assert_geq(p->slave, 0);
  cr_assert_eq(tcgetattr(p->slave, &p->orig), 0);
}

static void pty_close(pty *p) {
  close(p->slave);
  close(p->master);
}

static bool same_termios(const struct termios *a, const struct termios *b) {
  return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag &&
         a->c_cflag == b->c_cflag && a->c_lflag == b->c_lflag &&
         memcmp(a->c_cc, b->c_cc, sizeof a->c_cc) == 0;
}

static struct termios now_of(int fd) {
  struct termios t;
  cr_assert_eq(tcgetattr(fd, &t), 0);
  return t;
}

/* Reads from `fd` until `want` is among what came (5 s at most). */
static bool read_until(int fd, const char *want) {
  char got[512];
  size_t n = 0;
  while (n < sizeof got - 1) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 5000) != 1) return false;
    ssize_t r = read(fd, got + n, sizeof got - 1 - n);
    if (r <= 0) return false;
    n += (size_t)r;
    got[n] = '\0';
    if (strstr(got, want)) return true;
  }
  return false;
}

static void write_all(int fd, const char *s) {
  cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

typedef struct reader {
  char got[256];
  size_t n;
  int errors;
} reader;

static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  reader *r = s->base.data;
  if (n < 0) {
    r->errors++;
    return;
  }
  if (r->n + (size_t)n < sizeof r->got) {
    memcpy(r->got + r->n, buf->base, (size_t)n);
    r->n += (size_t)n;
    r->got[r->n] = '\0';
  }
}

static void run_until_got(weft_loop *loop, reader *r, const char *want) {
  for (int i = 0; i < 1000 && !strstr(r->got, want); i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert(strstr(r->got, want) != NULL, "got '%s', want '%s'", r->got, want);
}

static void tty_on(weft_loop *loop, weft_tty *t, int fd) {
  cr_assert_eq(weft_tty_init(loop, t), 0);
  int r = weft_tty_open(t, fd);
  cr_assert_eq(r, 0, "%s", weft_err_name(r));
}

/* ---- streams --------------------------------------------------------------
 */

Test(tty, reads_and_writes_both_ways_on_its_own_fd, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  weft_loop *loop = th_loop();
  weft_tty t;
  reader r = {0};
  tty_on(loop, &t, p.slave);
  t.stream.base.data = &r;
  cr_assert_eq(weft_handle_get_type(&t.stream.base), WEFT_HANDLE_TTY);
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_TTY), "tty");
  cr_assert_eq(weft_tty_get_mode(&t), WEFT_TTY_MODE_NORMAL);
  /* reopened by name: its fd is not ours, and ours stayed blocking */
  int own = weft_stream_fileno(&t.stream);
  cr_assert_geq(own, 0);
  cr_assert_neq(own, p.slave);
  cr_assert_eq(fcntl(p.slave, F_GETFL) & O_NONBLOCK, 0);
  cr_assert_neq(fcntl(own, F_GETFL) & O_NONBLOCK, 0);
  cr_assert_neq(fcntl(own, F_GETFD) & FD_CLOEXEC, 0);
  /* terminal to weft: a line (normal mode is canonical) */
  cr_assert_eq(weft_stream_read_start(&t.stream, NULL, on_read), 0);
  write_all(p.master, "hello\n");
  run_until_got(loop, &r, "hello\n");
  /* weft to terminal */
  weft_future *f;
  weft_buf b = weft_buf_init("world", 5);
  cr_assert_eq(weft_stream_write_future(&t.stream, &b, 1, &f), 0);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 5);
  weft_future_unref(f);
  cr_assert(read_until(p.master, "world"));
  cr_assert_eq(r.errors, 0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  th_run(loop);
  /* the caller's fd is still open and still a working terminal */
  cr_assert_eq(fcntl(p.slave, F_GETFD) >= 0, true);
  write_all(p.slave, "still");
  cr_assert(read_until(p.master, "still"));
  th_loop_finish(loop);
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

Test(tty, a_master_fd_is_dupd_and_its_flags_put_back, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  weft_loop *loop = th_loop();
  weft_tty t;
  reader r = {0};
  /* a pty master cannot be reopened by name (that makes a new pty) */
  tty_on(loop, &t, p.master);
  t.stream.base.data = &r;
  cr_assert_neq(weft_stream_fileno(&t.stream), p.master);
  cr_assert_neq(fcntl(p.master, F_GETFL) & O_NONBLOCK, 0); /* shared */
  cr_assert_eq(weft_stream_read_start(&t.stream, NULL, on_read), 0);
  write_all(p.slave, "from the slave");
  run_until_got(loop, &r, "from the slave");
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  th_run(loop);
  cr_assert_eq(fcntl(p.master, F_GETFL) & O_NONBLOCK, 0); /* put back */
  th_loop_finish(loop);
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

/* ---- modes ----------------------------------------------------------------
 */

Test(tty, raw_io_and_normal_modes_show_in_termios, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  cr_assert_neq(p.orig.c_lflag & ICANON, 0); /* a fresh pty is cooked */
  weft_loop *loop = th_loop();
  weft_tty t;
  reader r = {0};
  tty_on(loop, &t, p.slave);
  t.stream.base.data = &r;
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_RAW), 0);
  cr_assert_eq(weft_tty_get_mode(&t), WEFT_TTY_MODE_RAW);
  struct termios now = now_of(p.slave);
  cr_assert_eq(now.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), 0);
  cr_assert_eq(now.c_iflag & (ICRNL | IXON | BRKINT | ISTRIP | INPCK), 0);
  cr_assert_neq(now.c_oflag & OPOST, 0); /* output still processed */
  cr_assert_neq(now.c_oflag & ONLCR, 0);
  cr_assert_eq(now.c_cflag & CSIZE, CS8);
  cr_assert_eq(now.c_cc[VMIN], 1);
  cr_assert_eq(now.c_cc[VTIME], 0);
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_RAW), 0); /* no-op */
  /* raw: a key arrives alone, no newline needed */
  cr_assert_eq(weft_stream_read_start(&t.stream, NULL, on_read), 0);
  write_all(p.master, "k");
  run_until_got(loop, &r, "k");
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_IO), 0);
  now = now_of(p.slave);
  cr_assert_eq(now.c_oflag & OPOST, 0); /* cfmakeraw */
  cr_assert_eq(now.c_lflag & (ICANON | ECHO), 0);
  cr_assert_eq(weft_tty_get_mode(&t), WEFT_TTY_MODE_IO);
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_NORMAL), 0);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  /* leaving normal mode again, then closing: the close puts it back */
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_IO), 0);
  now = now_of(p.slave);
  cr_assert(!same_termios(&now, &p.orig));
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  cr_assert_eq(weft_tty_get_mode(&t), WEFT_TTY_MODE_NORMAL);
  th_run(loop);
  th_loop_finish(loop);
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

Test(tty, reset_mode_puts_back_every_saved_terminal, .timeout = 10) {
  int fds = open_fd_count();
  pty p, q;
  pty_open(&p);
  pty_open(&q);
  weft_loop *loop = th_loop();
  weft_tty a, b;
  tty_on(loop, &a, p.slave);
  tty_on(loop, &b, q.slave);
  cr_assert_eq(weft_tty_set_mode(&a, WEFT_TTY_MODE_RAW), 0);
  cr_assert_eq(weft_tty_set_mode(&b, WEFT_TTY_MODE_IO), 0);
  cr_assert_eq(weft_tty_reset_mode(), 0);
  struct termios pn = now_of(p.slave), qn = now_of(q.slave);
  cr_assert(same_termios(&pn, &p.orig));
  cr_assert(same_termios(&qn, &q.orig));
  cr_assert_eq(weft_tty_get_mode(&a), WEFT_TTY_MODE_RAW); /* unchanged */
  /* the handle still holds its entry: normal mode goes back through it */
  cr_assert_eq(weft_tty_set_mode(&a, WEFT_TTY_MODE_NORMAL), 0);
  cr_assert_eq(weft_tty_set_mode(&a, WEFT_TTY_MODE_RAW), 0);
  pn = now_of(p.slave);
  cr_assert_eq(pn.c_lflag & ICANON, 0);
  th_loop_finish(loop); /* closes both: back to cooked */
  pn = now_of(p.slave);
  qn = now_of(q.slave);
  cr_assert(same_termios(&pn, &p.orig));
  cr_assert(same_termios(&qn, &q.orig));
  cr_assert_eq(weft_tty_reset_mode(), 0); /* nothing saved: nothing to do */
  pty_close(&p);
  pty_close(&q);
  cr_assert_eq(open_fd_count(), fds);
}

/* A child sets raw mode, says so, then ends as `how` says; the parent
 * reads the pty's termios afterwards. Kept in globals so that the child's
 * loop is reachable (LeakSanitizer) when it dies without closing it. */
static weft_loop *child_loop;
static weft_tty child_tty;

enum how { EXIT, TERM_SIGNAL, ABORT, SEGV, UNDER_EXIT };

static void child_main(int slave, int ready, enum how how) {
  child_loop = NULL;
  struct sigaction sa; /* a sanitizer may own SIGSEGV: weft leaves it */
  sigaction(SIGSEGV, NULL, &sa);
  bool segv_default = !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
  if (weft_loop_new(&child_loop, NULL) != 0 ||
      weft_tty_init(child_loop, &child_tty) != 0 ||
      weft_tty_open(&child_tty, slave) != 0 ||
      weft_tty_set_mode(&child_tty, WEFT_TTY_MODE_RAW) != 0)
    _exit(90);
  char c = (how == SEGV && !segv_default) ? 'n' : 'r';
  if (write(ready, &c, 1) != 1) _exit(91);
  switch (how) {
  case EXIT:
    exit(0);
  case TERM_SIGNAL:
    for (;;)
      pause();
  case ABORT:
    abort();
  case SEGV:
    if (c == 'n') _exit(0);
    raise(SIGSEGV);
    _exit(92);
  case UNDER_EXIT:
    _exit(0);
  }
  _exit(93);
}

/* Waits for the child's status, 10 s at most. */
static int wait_child(pid_t pid) {
  for (int i = 0; i < 1000; i++) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    cr_assert_eq(r, 0);
    struct pollfd none = {-1, 0, 0};
    poll(&none, 0, 10); /* a bounded wait for a child that is dying */
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  cr_assert_fail("the child did not end");
  return -1;
}

/* Runs the child; returns its wait status, or -1 if it could not take
 * part (a sanitizer's SIGSEGV handler). Checks the mode was raw while the
 * child lived. */
static int run_child(pty *p, enum how how) {
  int ready[2];
  cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(ready[0]);
    child_main(p->slave, ready[1], how);
  }
  close(ready[1]);
  struct pollfd pfd = {ready[0], POLLIN, 0};
  cr_assert_eq(poll(&pfd, 1, 5000), 1);
  char c = 0;
  cr_assert_eq(read(ready[0], &c, 1), 1);
  close(ready[0]);
  if (c == 'n') {
    wait_child(pid);
    return -1;
  }
  cr_assert_eq(c, 'r');
  struct termios now = now_of(p->slave);
  if (how == TERM_SIGNAL) /* the others may have ended already */
    cr_assert_eq(now.c_lflag & ICANON, 0, "the child made it raw");
  if (how == TERM_SIGNAL) cr_assert_eq(kill(pid, SIGTERM), 0);
  return wait_child(pid);
}

Test(tty, mode_is_put_back_when_the_process_exits_or_dies, .timeout = 30) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  struct termios now;
  /* exit(3): the atexit handler */
  int st = run_child(&p, EXIT);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig), "restored at exit");
  /* killed by SIGTERM, a crash by abort(): restored, then died by it */
  int sigs[] = {SIGTERM, SIGABRT};
  enum how hows[] = {TERM_SIGNAL, ABORT};
  for (int i = 0; i < 2; i++) {
    st = run_child(&p, hows[i]);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == sigs[i], "status %#x", st);
    now = now_of(p.slave);
    cr_assert(same_termios(&now, &p.orig), "restored on signal %d", sigs[i]);
  }
  /* a segfault, when no sanitizer owns SIGSEGV */
  st = run_child(&p, SEGV);
  if (st != -1) {
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status %#x", st);
    now = now_of(p.slave);
    cr_assert(same_termios(&now, &p.orig), "restored on SIGSEGV");
  }
  /* the control: _exit(2) runs no handler, so the terminal stays raw (this
   * is what every case above would show without the restore) */
  st = run_child(&p, UNDER_EXIT);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
  now = now_of(p.slave);
  cr_assert_eq(now.c_lflag & ICANON, 0);
  cr_assert_eq(tcsetattr(p.slave, TCSANOW, &p.orig), 0);
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

/* ---- window size and resizes --------------------------------------------- */

static void set_size(int master, int cols, int rows) {
  struct winsize ws = {.ws_row = (unsigned short)rows,
                       .ws_col = (unsigned short)cols};
  cr_assert_eq(ioctl(master, TIOCSWINSZ, &ws), 0);
}

typedef struct resizes {
  int calls, cols, rows;
} resizes;

static void on_resize(weft_tty *t, int cols, int rows) {
  resizes *r = t->stream.base.data;
  r->calls++;
  r->cols = cols;
  r->rows = rows;
}

static void count_signal(weft_signal *s, int signum) {
  int *n = s->base.data;
  (*n)++;
  cr_assert_eq(signum, SIGWINCH);
}

/* SIGWINCH as the kernel sends it to a terminal's foreground group; the
 * pty here is nobody's controlling terminal, so the test sends it (the
 * next test has the kernel do it). A weft_signal on SIGWINCH in the same
 * loop tells when the signal has been handled. */
static void winch_and_wait(weft_loop *loop, int *seen) {
  int before = *seen;
  cr_assert_eq(kill(getpid(), SIGWINCH), 0);
  while (*seen == before)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

Test(tty, winsize_and_resize_callback_and_future, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  set_size(p.master, 80, 24);
  weft_loop *loop = th_loop();
  weft_tty t;
  resizes r = {0};
  tty_on(loop, &t, p.slave);
  t.stream.base.data = &r;
  int cols = 0, rows = 0;
  cr_assert_eq(weft_tty_get_winsize(&t, &cols, &rows), 0);
  cr_assert_eq(cols, 80);
  cr_assert_eq(rows, 24);
  cr_assert_eq(weft_tty_get_winsize(&t, NULL, &rows), 0);
  weft_signal sig;
  int seen = 0;
  cr_assert_eq(weft_signal_init(loop, &sig), 0);
  sig.base.data = &seen;
  cr_assert_eq(weft_signal_start(&sig, count_signal, SIGWINCH), 0);
  cr_assert_eq(weft_tty_on_resize(&t, on_resize), 0);
  set_size(p.master, 132, 43);
  cr_assert_eq(r.calls, 0); /* never inline */
  winch_and_wait(loop, &seen);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.cols, 132);
  cr_assert_eq(r.rows, 43);
  /* a SIGWINCH that changes nothing reports nothing */
  winch_and_wait(loop, &seen);
  cr_assert_eq(r.calls, 1);
  /* the future form: fulfils at the next change, the callback runs too */
  weft_future *f;
  cr_assert_eq(weft_tty_resize_future(&t, &f), 0);
  cr_assert_eq(weft_tty_resize_future(&t, &f), -EBUSY);
  winch_and_wait(loop, &seen); /* no change: still pending */
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  set_size(p.master, 100, 30);
  winch_and_wait(loop, &seen);
  cr_assert_eq(r.calls, 2);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  int64_t v = weft_future_value_i64(f);
  cr_assert_eq(weft_tty_size_cols(v), 100);
  cr_assert_eq(weft_tty_size_rows(v), 30);
  weft_future_unref(f);
  /* the callback off, a future alone; cancelled: stops waiting */
  cr_assert_eq(weft_tty_on_resize(&t, NULL), 0);
  cr_assert_eq(weft_tty_resize_future(&t, &f), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  set_size(p.master, 90, 20);
  winch_and_wait(loop, &seen);
  cr_assert_eq(r.calls, 2);
  /* a pending future when the handle closes: -ECANCELED */
  cr_assert_eq(weft_tty_resize_future(&t, &f), 0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  cr_assert_eq(weft_signal_stop(&sig), 0);
  th_loop_finish(loop);
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

/* The kernel's own SIGWINCH: a child in a session of its own makes the
 * pty its controlling terminal (TIOCSCTTY), the parent resizes it through
 * the master, and the child's callback reports the size through a pipe.
 * The child is this program again, started by posix_spawn with the
 * variable below: a child that runs weft code after a fork without exec
 * is not what a user does, and under ThreadSanitizer (whose runtime
 * defers signal handlers) it lost the first SIGWINCH about once in 50
 * runs. Its fds: 3 the slave, 4 "ready", 5 the result. */
#define WINCH_CHILD_ENV "WEFT_TEST_TTY_WINCH_CHILD"

static void winch_child(int slave, int ready, int result) {
  weft_loop *loop;
  weft_tty t;
  resizes r = {0};
  if (ioctl(slave, TIOCSCTTY, 0) != 0) _exit(80);
  if (weft_loop_new(&loop, NULL) != 0 || weft_tty_init(loop, &t) != 0 ||
      weft_tty_open(&t, slave) != 0)
    _exit(81);
  t.stream.base.data = &r;
  if (weft_tty_on_resize(&t, on_resize) != 0) _exit(82);
  if (write(ready, "r", 1) != 1) _exit(83);
  while (r.calls == 0)
    if (weft_loop_run(loop, WEFT_RUN_ONCE) < 0) _exit(84);
  char out[32];
  int n = snprintf(out, sizeof out, "%d %d", r.cols, r.rows);
  if (write(result, out, (size_t)n) != n) _exit(85);
  _exit(0);
}

/* Before the test runner's main: the child role, when asked for. */
__attribute__((constructor)) static void winch_child_entry(void) {
  if (getenv(WINCH_CHILD_ENV) != NULL) winch_child(3, 4, 5);
}

extern char **environ;

static pid_t spawn_winch_child(int slave, int ready, int result) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
  cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, slave, 3), 0);
  cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, ready, 4), 0);
  cr_assert_eq(posix_spawn_file_actions_adddup2(&fa, result, 5), 0);
  cr_assert_eq(posix_spawnattr_init(&at), 0);
  cr_assert_eq(posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID), 0);
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **env = calloc(n + 2, sizeof *env);
  cr_assert_not_null(env);
  memcpy(env, environ, n * sizeof *env);
  env[n] = WINCH_CHILD_ENV "=1";
  char exe[] = "/proc/self/exe";
  char *argv[] = {exe, NULL};
  pid_t pid;
  int err = posix_spawn(&pid, exe, &fa, &at, argv, env);
  free(env);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  cr_assert_eq(err, 0, "posix_spawn: %s", strerror(err));
  return pid;
}

Test(tty, kernel_sigwinch_of_a_controlling_terminal, .timeout = 30) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  set_size(p.master, 80, 24);
  int ready[2], result[2];
  cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
  cr_assert_eq(pipe2(result, O_CLOEXEC), 0);
  pid_t pid = spawn_winch_child(p.slave, ready[1], result[1]);
  close(ready[1]);
  close(result[1]);
  struct pollfd pfd = {ready[0], POLLIN, 0};
  cr_assert_eq(poll(&pfd, 1, 10000), 1);
  char c;
  cr_assert_eq(read(ready[0], &c, 1), 1, "child status %#x", wait_child(pid));
  /* ThreadSanitizer's runtime runs an asynchronous signal's handler at
   * the thread's next intercepted call, and about once in 50 runs here it
   * lost the SIGWINCH of a resize that came as the child entered
   * epoll_wait: /proc showed the signal caught, nothing pending or
   * blocked, the child asleep (the plain and ASan builds lost none in
   * hundreds of runs). Under TSan only, a resize that is not reported in
   * 2 s is made again with a new size. */
#ifdef WEFT_TSAN
  enum { TRIES = 5, WAIT_MS = 2000 };
#else
  enum { TRIES = 1, WAIT_MS = 10000 };
#endif
  pfd.fd = result[0];
  char want[32];
  int ready_n = 0;
  for (int k = 0; k < TRIES && ready_n != 1; k++) {
    set_size(p.master, 120 + k, 33);
    snprintf(want, sizeof want, "%d 33", 120 + k);
    ready_n = poll(&pfd, 1, WAIT_MS);
  }
  cr_assert_eq(ready_n, 1);
  char out[32] = {0};
  cr_assert_gt(read(result[0], out, sizeof out - 1), 0);
  cr_assert_str_eq(out, want);
  int st = wait_child(pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
  close(ready[0]);
  close(result[0]);
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

/* ---- bad input -------------------------------------------------------------
 */

Test(tty, bad_input_is_rejected_cleanly, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  weft_loop *loop = th_loop();
  weft_tty t;
  weft_future *f = NULL;
  cr_assert_eq(weft_tty_init(NULL, &t), -EINVAL);
  cr_assert_eq(weft_tty_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_tty_init(loop, &t), 0);
  /* no terminal yet */
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_RAW), -EINVAL);
  cr_assert_eq(weft_tty_get_winsize(&t, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_tty_on_resize(&t, on_resize), -EINVAL);
  cr_assert_eq(weft_tty_resize_future(&t, &f), -EINVAL);
  /* open: NULL, negative, closed, not a terminal */
  cr_assert_eq(weft_tty_open(NULL, p.slave), -EINVAL);
  cr_assert_eq(weft_tty_open(&t, -1), -EINVAL);
  int pp[2];
  cr_assert_eq(pipe2(pp, O_CLOEXEC), 0);
  cr_assert_eq(weft_tty_open(&t, pp[0]), -ENOTTY);
  int file = open("/dev/null", O_RDWR | O_CLOEXEC);
  cr_assert_geq(file, 0);
  cr_assert_eq(weft_tty_open(&t, file), -ENOTTY);
  close(file);
  cr_assert_eq(weft_tty_open(&t, file), -EBADF); /* closed now */
  close(pp[0]);
  close(pp[1]);
  weft_udp u; /* a handle of another kind */
  cr_assert_eq(weft_udp_init(loop, &u), 0);
  cr_assert_eq(weft_tty_open((weft_tty *)(void *)&u, p.slave), -EINVAL);
  cr_assert_eq(weft_tty_get_mode((weft_tty *)(void *)&u), WEFT_TTY_MODE_NORMAL);
  cr_assert_eq(weft_tty_get_mode(NULL), WEFT_TTY_MODE_NORMAL);
  cr_assert_eq(weft_close(&u.base, NULL), 0);
  /* the handle is still usable after all that */
  cr_assert_eq(weft_tty_open(&t, p.slave), 0);
  cr_assert_eq(weft_tty_open(&t, p.slave), -EINVAL); /* has one */
  cr_assert_eq(weft_tty_set_mode(NULL, WEFT_TTY_MODE_RAW), -EINVAL);
  cr_assert_eq(weft_tty_set_mode(&t, (weft_tty_mode)3), -EINVAL);
  cr_assert_eq(weft_tty_set_mode(&t, (weft_tty_mode)-1), -EINVAL);
  struct termios now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig)); /* nothing changed */
  cr_assert_eq(weft_tty_get_winsize(NULL, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_tty_on_resize(NULL, on_resize), -EINVAL);
  cr_assert_eq(weft_tty_resize_future(NULL, &f), -EINVAL);
  cr_assert_eq(weft_tty_resize_future(&t, NULL), -EINVAL);
  /* SIGWINCH belongs to one loop at a time */
  weft_loop *other = th_loop();
  weft_tty o;
  tty_on(other, &o, p.slave);
  cr_assert_eq(weft_tty_on_resize(&t, on_resize), 0);
  cr_assert_eq(weft_tty_on_resize(&o, on_resize), -EBUSY);
  cr_assert_eq(weft_tty_resize_future(&o, &f), -EBUSY);
  cr_assert_eq(weft_tty_on_resize(&t, NULL), 0);
  cr_assert_eq(weft_tty_on_resize(&o, on_resize), 0); /* free again */
  cr_assert_eq(weft_tty_on_resize(&o, NULL), 0);
  th_loop_close(other);
  /* closing */
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_RAW), 0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  cr_assert_eq(weft_tty_set_mode(&t, WEFT_TTY_MODE_RAW), -EINVAL);
  cr_assert_eq(weft_tty_open(&t, p.slave), -EINVAL);
  cr_assert_eq(weft_tty_get_winsize(&t, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_tty_on_resize(&t, on_resize), -EINVAL);
  cr_assert_eq(weft_tty_resize_future(&t, &f), -EINVAL);
  th_run(loop);
  th_loop_usable(loop);
  th_loop_finish(loop);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

Test(tty, the_saved_table_has_a_limit, .timeout = 10) {
  int fds = open_fd_count();
  enum { N = WEFT_TTY_SAVED_MAX + 1 };
  pty p[N];
  weft_loop *loop = th_loop();
  weft_tty t[N];
  for (int i = 0; i < N; i++) {
    pty_open(&p[i]);
    tty_on(loop, &t[i], p[i].slave);
  }
  for (int i = 0; i < N - 1; i++)
    cr_assert_eq(weft_tty_set_mode(&t[i], WEFT_TTY_MODE_RAW), 0);
  int r = weft_tty_set_mode(&t[N - 1], WEFT_TTY_MODE_RAW);
  cr_assert_eq(r, -ENOSPC, "%s", weft_err_name(r));
  cr_assert_eq(weft_tty_get_mode(&t[N - 1]), WEFT_TTY_MODE_NORMAL);
  struct termios now = now_of(p[N - 1].slave);
  cr_assert(same_termios(&now, &p[N - 1].orig));
  /* one entry freed: the last terminal gets it */
  cr_assert_eq(weft_tty_set_mode(&t[3], WEFT_TTY_MODE_NORMAL), 0);
  cr_assert_eq(weft_tty_set_mode(&t[N - 1], WEFT_TTY_MODE_RAW), 0);
  th_loop_finish(loop);
  for (int i = 0; i < N; i++) {
    now = now_of(p[i].slave);
    cr_assert(same_termios(&now, &p[i].orig), "terminal %d", i);
    pty_close(&p[i]);
  }
  cr_assert_eq(open_fd_count(), fds);
}

Test(tty, handles_on_one_terminal_share_its_saved_mode, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  weft_loop *loop = th_loop();
  weft_tty in, out;
  tty_on(loop, &in, p.slave);
  tty_on(loop, &out, p.slave);
  /* the second handle does not save the first one's raw mode as the
   * original: both go back to what the terminal was */
  cr_assert_eq(weft_tty_set_mode(&in, WEFT_TTY_MODE_RAW), 0);
  cr_assert_eq(weft_tty_set_mode(&out, WEFT_TTY_MODE_IO), 0);
  cr_assert_eq(weft_tty_set_mode(&out, WEFT_TTY_MODE_NORMAL), 0);
  struct termios now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  cr_assert_eq(weft_tty_get_mode(&in), WEFT_TTY_MODE_RAW); /* last call won */
  cr_assert_eq(weft_tty_set_mode(&out, WEFT_TTY_MODE_RAW), 0);
  now = now_of(p.slave);
  cr_assert_eq(now.c_lflag & ICANON, 0);
  cr_assert_eq(weft_close(&in.stream.base, NULL), 0);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig)); /* its close put it back */
  th_loop_finish(loop);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}

/* Out of fds (RLIMIT_NOFILE): the open and the mode's saved entry, which
 * each need a fd, fail with -EMFILE and change nothing. */
Test(tty, running_out_of_fds_is_emfile, .timeout = 10) {
  int fds = open_fd_count();
  pty p;
  pty_open(&p);
  weft_loop *loop = th_loop();
  weft_tty a, b;
  tty_on(loop, &a, p.slave);
  cr_assert_eq(weft_tty_init(loop, &b), 0);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int top = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) top = fd;
  low = old;
  low.rlim_cur = (rlim_t)top + 1;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fill[1024], nfill = 0; /* take the holes below the limit too */
  for (int fd; (fd = dup(0)) >= 0 && nfill < 1024;)
    fill[nfill++] = fd;
  int r = weft_tty_open(&b, p.slave);
  cr_assert_eq(r, -EMFILE, "%s", weft_err_name(r));
  cr_assert_eq(weft_stream_fileno(&b.stream), -EBADF); /* still none */
  r = weft_tty_set_mode(&a, WEFT_TTY_MODE_RAW);
  cr_assert_eq(r, -EMFILE, "%s", weft_err_name(r));
  cr_assert_eq(weft_tty_get_mode(&a), WEFT_TTY_MODE_NORMAL);
  struct termios now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  for (int i = 0; i < nfill; i++)
    close(fill[i]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  /* both work once fds are back */
  cr_assert_eq(weft_tty_open(&b, p.slave), 0);
  cr_assert_eq(weft_tty_set_mode(&a, WEFT_TTY_MODE_RAW), 0);
  th_loop_finish(loop);
  now = now_of(p.slave);
  cr_assert(same_termios(&now, &p.orig));
  pty_close(&p);
  cr_assert_eq(open_fd_count(), fds);
}
