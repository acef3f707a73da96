/* How weft_spawn() starts a child (io/process_clone.c: clone on a stack
 * each loop keeps; posix_spawn under TSan): exec and setup failures leave
 * no fd, no child and no mapping behind and the loop usable; EMFILE is an
 * error code; the $PATH search; what the child starts with (no signal
 * caught, ignored or blocked, on every flag combination); loops in two
 * threads spawning at once; spawns leave no mapping behind. */
#include "support/test.h"
#include "support/child.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd_count(void) { return th_fds_in("/proc/self/fd"); }

/* Sanitizers' allocators map memory as they go: mapping counts are only
 * checked in plain builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(WEFT_TSAN)
#define CHECK_MAPS 0
#else
#define CHECK_MAPS 1
#endif

static int map_count(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  cr_assert_not_null(f);
  int n = 0, c;
  while ((c = fgetc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

/* No child of ours is left, zombie or running. */
static void assert_no_child(void) {
  siginfo_t si;
  cr_assert_eq(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT), -1);
  cr_assert_eq(errno, ECHILD);
}

/* Spawns argv (stdin /dev/null, stdout a pipe, stderr inherited) and runs
 * the loop until it is done: returns the spawn's error, or the exit code
 * (>= 0) with the output in *out (malloc'ed) if out is not NULL. */
static int spawn_run(weft_loop *loop, weft_process_options o, char **out) {
  weft_process p;
  th_exits e = {0};
  th_sink sink = {0};
  cr_assert_eq(weft_pipe_init(loop, &sink.pipe), 0);
  weft_stdio st[3] = {{WEFT_STDIO_IGNORE},
                      {WEFT_STDIO_PIPE, -1, &sink.pipe},
                      {WEFT_STDIO_INHERIT}};
  o.stdio = st;
  o.stdio_count = 3;
  o.exit_cb = th_on_exit_count;
  p.base.data = &e;
  int err = weft_spawn(loop, &p, &o);
  if (err != 0) {
    cr_assert_eq(weft_stream_fileno(&sink.pipe.stream), -EBADF);
    weft_close(&sink.pipe.stream.base, NULL);
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    return err;
  }
  th_sink_start(&sink);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(e.calls, 1);
  cr_assert_eq(e.sig, 0);
  if (out != NULL)
    *out = sink.buf;
  else
    free(sink.buf);
  return (int)e.status;
}

#define ARGV(...) ((char *const[]){__VA_ARGS__, NULL})

/* ---- failures -------------------------------------------------------- */

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  cr_assert_geq(fd, 0, "%s", path);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  cr_assert_eq(chmod(path, mode), 0);
}

Test(process_spawn, failures_leave_nothing_behind, .timeout = 20) {
  char dir[] = "/tmp/weft-spawn-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char junk[64], plain[64];
  snprintf(junk, sizeof junk, "%s/junk", dir);
  snprintf(plain, sizeof plain, "%s/plain", dir);
  write_file(junk, "\x01\x02\x03 not a program\n", 0755);
  write_file(plain, "#!/bin/sh\nexit 0\n", 0644);
  weft_loop *loop = th_loop();
  cr_assert_eq(
      spawn_run(loop, (weft_process_options){.argv = ARGV("true")}, NULL),
      0); /* the loop's first spawn maps what it keeps */
  int fds = fd_count(), maps = map_count();
  struct {
    weft_process_options o;
    int err;
  } cases[] = {
      {{.argv = ARGV("no-such-program-xyz")}, -ENOENT},
      {{.argv = ARGV("/nonexistent/prog")}, -ENOENT},
      {{.argv = ARGV(plain)}, -EACCES},
      {{.argv = ARGV(junk)}, -ENOEXEC},
      {{.argv = ARGV("/etc/passwd/x")}, -ENOTDIR},
      {{.argv = ARGV("true"), .cwd = "/nonexistent"}, -ENOENT},
      {{.argv = ARGV("true"), .cwd = "/etc/passwd"}, -ENOTDIR},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int err = spawn_run(loop, cases[i].o, NULL);
    cr_assert_eq(err, cases[i].err, "case %zu: %s", i, weft_err_name(err));
    assert_no_child();
    cr_assert_eq(fd_count(), fds, "case %zu: an fd leaked", i);
    if (CHECK_MAPS)
      cr_assert_eq(map_count(), maps, "case %zu: a mapping leaked", i);
  }
  /* still usable: the same loop spawns and reads */
  char *out;
  cr_assert_eq(
      spawn_run(loop, (weft_process_options){.argv = TH_SH("echo ok")}, &out),
      0);
  cr_assert_str_eq(out, "ok\n");
  free(out);
  th_loop_usable(loop);
  th_loop_finish(loop);
  unlink(junk);
  unlink(plain);
  rmdir(dir);
}

enum { FILL = 256 };

/* Every fd below the limit taken: the spawn fails with -EMFILE (the pipe,
 * or the pidfd of a spawn that opens nothing else), nothing is left, and
 * once fds are free again the loop spawns. */
Test(process_spawn, emfile_is_an_error_code, .timeout = 20) {
  weft_loop *loop = th_loop();
  cr_assert_eq(
      spawn_run(loop, (weft_process_options){.argv = ARGV("true")}, NULL), 0);
  int fds = fd_count();
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = FILL < old.rlim_cur ? FILL : old.rlim_cur;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  int fill[FILL], nfill = 0, fd;
  while (nfill < FILL && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    fill[nfill++] = fd;
  cr_assert_eq(errno, EMFILE);
  cr_assert_eq(
      spawn_run(loop, (weft_process_options){.argv = ARGV("true")}, NULL),
      -EMFILE);
  weft_process p;
  weft_process_options o = {.argv = ARGV("true")}; /* inherits 0..2 */
  cr_assert_eq(weft_spawn(loop, &p, &o), -EMFILE);
  assert_no_child();
  while (nfill > 0)
    close(fill[--nfill]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_eq(fd_count(), fds, "an fd leaked");
  char *out;
  cr_assert_eq(
      spawn_run(loop, (weft_process_options){.argv = TH_SH("echo ok")}, &out),
      0);
  cr_assert_str_eq(out, "ok\n");
  free(out);
  th_loop_finish(loop);
}

/* ---- the $PATH search ------------------------------------------------ */

Test(process_spawn, path_search, .timeout = 20) {
  char dir[] = "/tmp/weft-path-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char sub[64], prog[96], path[256];
  snprintf(sub, sizeof sub, "%s/noexec", dir);
  cr_assert_eq(mkdir(sub, 0755), 0);
  snprintf(prog, sizeof prog, "%s/true", sub); /* not executable */
  write_file(prog, "#!/bin/sh\nexit 9\n", 0644);
  snprintf(prog, sizeof prog, "%s/seven", dir);
  write_file(prog, "#!/bin/sh\nexit 7\n", 0755);
  const char *saved = getenv("PATH");
  char *keep = saved != NULL ? strdup(saved) : NULL;
  weft_loop *loop = th_loop();
  weft_process_options o = {.argv = ARGV("true")};
  /* a missing entry and an EACCES one are passed over */
  snprintf(path, sizeof path, "/nonexistent:%s:/usr/bin:/bin", sub);
  setenv("PATH", path, 1);
  cr_assert_eq(spawn_run(loop, o, NULL), 0);
  /* only EACCES: that is the error */
  setenv("PATH", sub, 1);
  cr_assert_eq(spawn_run(loop, o, NULL), -EACCES);
  /* an empty entry is the working directory (the child's: cwd) */
  setenv("PATH", "/nonexistent:", 1);
  o = (weft_process_options){.argv = ARGV("seven"), .cwd = dir};
  cr_assert_eq(spawn_run(loop, o, NULL), 7);
  /* no PATH: /bin:/usr/bin */
  unsetenv("PATH");
  o = (weft_process_options){.argv = ARGV("true")};
  cr_assert_eq(spawn_run(loop, o, NULL), 0);
  /* a name longer than NAME_MAX */
  char longname[300];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  o.argv = ARGV(longname);
  cr_assert_eq(spawn_run(loop, o, NULL), -ENAMETOOLONG);
  /* `file` is searched, argv[0] is only passed */
  setenv("PATH", "/usr/bin:/bin", 1);
  char *out;
  o = (weft_process_options){.file = "sh",
                             .argv = ARGV("my-name", "-c", "echo $0")};
  cr_assert_eq(spawn_run(loop, o, &out), 0);
  cr_assert_str_eq(out, "my-name\n");
  free(out);
  if (keep != NULL) setenv("PATH", keep, 1);
  free(keep);
  th_loop_finish(loop);
  unlink(prog);
  snprintf(prog, sizeof prog, "%s/true", sub);
  unlink(prog);
  rmdir(sub);
  rmdir(dir);
}

/* ---- what the child starts with ------------------------------------ */

static void on_usr1(int sig) { (void)sig; }

/* The hex value of a /proc/self/status line. */
static unsigned long long status_mask(const char *text, const char *key) {
  const char *at = strstr(text, key);
  cr_assert_not_null(at, "%s missing", key);
  return strtoull(at + strlen(key), NULL, 16);
}

/* The parent catches SIGUSR1 and a real-time signal, ignores SIGUSR2,
 * SIGPIPE and glibc's 32, blocks SIGHUP and SIGTERM: in the child no
 * signal is caught, ignored or blocked, whatever the flags (session,
 * group, uid and gid: other setup steps in the child). */
Test(process_spawn, child_signals_are_all_defaults, .timeout = 20) {
  struct sigaction h = {.sa_handler = on_usr1}, ign = {.sa_handler = SIG_IGN};
  struct sigaction o1, o2, o3, o4;
  sigaction(SIGUSR1, &h, &o1);
  sigaction(SIGRTMIN + 1, &h, &o2);
  sigaction(SIGUSR2, &ign, &o3);
  sigaction(SIGPIPE, &ign, &o4);
  unsigned long k_ign[8] = {(unsigned long)SIG_IGN}, k_old[8];
  cr_assert_eq(syscall(SYS_rt_sigaction, 32, k_ign, k_old, (NSIG - 1) / 8), 0);
  sigset_t block, oldmask;
  sigemptyset(&block);
  sigaddset(&block, SIGHUP);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &oldmask);
  weft_loop *loop = th_loop();
  const unsigned flags[] = {
      0, WEFT_PROCESS_NEW_SESSION, WEFT_PROCESS_NEW_PGROUP,
      WEFT_PROCESS_SETUID | WEFT_PROCESS_SETGID | WEFT_PROCESS_NEW_PGROUP};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    weft_process_options o = {.argv = ARGV("cat", "/proc/self/status"),
                              .flags = flags[i],
                              .uid = geteuid(),
                              .gid = getegid()};
    char *out;
    int st = spawn_run(loop, o, &out);
    cr_assert_eq(st, 0, "flags %#x: %s", flags[i], weft_err_name(st));
    cr_assert_eq(status_mask(out, "SigBlk:"), 0, "flags %#x", flags[i]);
    cr_assert_eq(status_mask(out, "SigIgn:"), 0, "flags %#x", flags[i]);
    cr_assert_eq(status_mask(out, "SigCgt:"), 0, "flags %#x", flags[i]);
    free(out);
  }
  th_loop_finish(loop);
  pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
  syscall(SYS_rt_sigaction, 32, k_old, NULL, (NSIG - 1) / 8);
  sigaction(SIGUSR1, &o1, NULL);
  sigaction(SIGRTMIN + 1, &o2, NULL);
  sigaction(SIGUSR2, &o3, NULL);
  sigaction(SIGPIPE, &o4, NULL);
}

/* ---- loops in threads, mappings ------------------------------------ */

enum { THREAD_SPAWNS = 40 };

static void *spawner(void *arg) {
  int *ok = arg;
  weft_loop *loop = NULL;
  if (weft_loop_new(&loop, NULL) != 0) return NULL;
  for (int i = 0; i < THREAD_SPAWNS; i++) {
    weft_process p;
    th_exits e = {0};
    weft_process_options o = {.argv = ARGV("sh", "-c", "exit 5"),
                              .exit_cb = th_on_exit_count};
    p.base.data = &e;
    if (weft_spawn(loop, &p, &o) != 0) break;
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    *ok += e.calls == 1 && e.status == 5;
  }
  weft_loop_free(loop);
  return NULL;
}

/* Each loop has its own spawn stack: two threads spawning at once. */
Test(process_spawn, loops_in_two_threads_spawn_at_once, .timeout = 60) {
  pthread_t t[2];
  int ok[2] = {0, 0};
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, spawner, &ok[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  cr_assert_eq(ok[0], THREAD_SPAWNS);
  cr_assert_eq(ok[1], THREAD_SPAWNS);
  cr_assert_eq(weft_alloc_live(), 0);
}

/* After a loop's first spawn, more spawns map nothing new, and freeing
 * the loop unmaps what it kept. */
Test(process_spawn, spawns_leave_no_mapping_behind, .timeout = 30,
     .disabled = !CHECK_MAPS) {
  int before = map_count();
  weft_loop *loop = th_loop();
  weft_process_options o = {.argv = ARGV("true")};
  cr_assert_eq(spawn_run(loop, o, NULL), 0);
  int maps = map_count();
  for (int i = 0; i < 20; i++)
    cr_assert_eq(spawn_run(loop, o, NULL), 0);
  cr_assert_eq(map_count(), maps);
  th_loop_finish(loop);
  cr_assert_leq(map_count(), before, "the loop's mappings stay");
}
