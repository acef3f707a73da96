/* The fiber-style examples (examples/echo_fibers, tree_sum, run_many,
 * prodcons_fibers, workers_fibers, counter_fibers) run as a user runs
 * them: the echo server on a free loopback port (--port 0, read back) with
 * its client over 10,000 lines, tree_sum over a tree made here (CRC-32s
 * computed here), run_many with a command that times out, and the three
 * classic exercises with their exact results. Each program runs with a
 * deadline (killed past it) and its exit status and output are checked. */
#include "support/test.h"

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* $(O)/examples/NAME, next to the tests' directory (or two levels up from
 * $(O)/asan/tests and $(O)/tsan/tests). */
static void example_path(const char *name, char *out, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  char *dir = dirname(self);
  snprintf(out, size, "%s/../examples/%s", dir, name);
  if (access(out, X_OK) != 0)
    snprintf(out, size, "%s/../../examples/%s", dir, name);
  cr_assert_eq(access(out, X_OK), 0, "%s not built at %s", name, out);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Starts examples/NAME with argv (NULL-terminated, argv[0] ignored),
 * stdout into a pipe whose read end goes to *out_fd. */
static pid_t start(const char *name, const char **argv, int *out_fd) {
  char bin[PATH_MAX];
  example_path(name, bin, sizeof bin);
  argv[0] = bin;
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion ends us both */
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  *out_fd = p[0];
  return pid;
}

/* Runs examples/NAME to the end within `limit` seconds (killed and failed
 * past it): its stdout into out (NUL-terminated), its exit status returned,
 * the time it took in *secs (may be NULL). */
static int run(const char *name, const char **argv, char *out, size_t size,
               double limit, double *secs) {
  int fd, status;
  double t0 = now_s();
  pid_t pid = start(name, argv, &fd);
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd, out + len, size - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(fd);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_s() - t0 > limit) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      cr_assert_fail("%s did not finish within %g s; said: %s", name, limit,
                     out);
    }
    usleep(10000);
  }
  if (secs != NULL) *secs = now_s() - t0;
  cr_assert(WIFEXITED(status), "%s died of signal %d", name, WTERMSIG(status));
  return WEXITSTATUS(status);
}

Test(examples_fibers, echo_server_and_client_over_10000_lines, .timeout = 60) {
  int fd;
  const char *sv[] = {NULL, "--port", "0", NULL};
  pid_t server = start("echo_fibers", sv, &fd);
  FILE *f = fdopen(fd, "r");
  unsigned port = 0;
  cr_assert_eq(fscanf(f, "echo_fibers: listening on 127.0.0.1:%u", &port), 1);
  cr_assert(port > 0 && port < 65536, "port %u", port);
  char portstr[16], out[256];
  snprintf(portstr, sizeof portstr, "%u", port);
  const char *cl[] = {NULL, "--client", portstr, NULL};
  int rc = run("echo_fibers", cl, out, sizeof out, 50, NULL);
  cr_expect_eq(rc, 0, "client exit %d: %s", rc, out);
  cr_expect_str_eq(out, "echo_fibers: 10000 lines echoed and checked\n");
  /* a second client on the same server: connections are independent */
  const char *cl2[] = {NULL, "--client", portstr, "--lines", "3", NULL};
  rc = run("echo_fibers", cl2, out, sizeof out, 20, NULL);
  cr_expect_eq(rc, 0);
  cr_expect_str_eq(out, "echo_fibers: 3 lines echoed and checked\n");
  kill(server, SIGTERM);
  int status;
  cr_assert_eq(waitpid(server, &status, 0), server);
  fclose(f);
}

Test(examples_fibers, echo_client_without_a_server_fails, .timeout = 20) {
  /* a port nobody listens on: bind one, read its number, close it */
  weft_loop *loop = th_loop();
  weft_tcp t;
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(weft_tcp_getsockname(&t, (struct sockaddr *)&a, &len), 0);
  weft_close(&t.stream.base, NULL);
  th_run(loop);
  char portstr[16], out[256];
  snprintf(portstr, sizeof portstr, "%d",
           weft_sockaddr_port((struct sockaddr *)&a));
  const char *cl[] = {NULL, "--client", portstr, NULL};
  cr_expect_eq(run("echo_fibers", cl, out, sizeof out, 15, NULL), 1);
  cr_expect_str_eq(out, "");
  th_loop_finish(loop);
}

static uint32_t crc32_of(const char *s, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= (unsigned char)s[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & -(c & 1u));
  }
  return ~c;
}

static void put(const char *dir, const char *name, const char *data, size_t n) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  cr_assert_not_null(f, "%s", p);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

Test(examples_fibers, tree_sum_counts_every_file_once, .timeout = 60) {
  char dir[] = "/tmp/weft-tree-sum-XXXXXX", sub[PATH_MAX], cmd[PATH_MAX + 16];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(sub, sizeof sub, "%s/a", dir);
  cr_assert_eq(mkdir(sub, 0755), 0);
  snprintf(sub, sizeof sub, "%s/a/b", dir);
  cr_assert_eq(mkdir(sub, 0755), 0);
  static char big[3 << 20]; /* a large file: read by several jobs */
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 31 + i / 4093);
  put(dir, "top.txt", "hello\n", 6);
  put(dir, "empty", "", 0);
  put(dir, "a/b/big.bin", big, sizeof big);
  for (int i = 0; i < 20; i++) { /* more files than the 8 in flight */
    char name[32], data[32];
    snprintf(name, sizeof name, "a/f%02d", i);
    int n = snprintf(data, sizeof data, "file %d\n", i);
    put(dir, name, data, (size_t)n);
  }
  char link[PATH_MAX];
  snprintf(link, sizeof link, "%s/a/loop", dir);
  cr_assert_eq(symlink(dir, link), 0); /* not followed */
  unsigned long long sum = (unsigned long long)crc32_of("hello\n", 6) +
                           crc32_of("", 0) + crc32_of(big, sizeof big);
  unsigned long long bytes = 6 + sizeof big;
  for (int i = 0; i < 20; i++) {
    char data[32];
    int n = snprintf(data, sizeof data, "file %d\n", i);
    sum += crc32_of(data, (size_t)n);
    bytes += (unsigned long long)n;
  }
  char want[128], out[512];
  snprintf(want, sizeof want, "23 files, %llu bytes, crc32 sum %llu\n", bytes,
           sum);
  const char *argv[] = {NULL, dir, NULL};
  int rc = run("tree_sum", argv, out, sizeof out, 50, NULL);
  cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
  cr_expect_str_eq(out, want);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
  /* a directory that does not exist: an error, exit 1 */
  rc = run("tree_sum", argv, out, sizeof out, 20, NULL);
  cr_expect_eq(rc, 1);
  cr_expect_str_eq(out, "0 files, 0 bytes, crc32 sum 0\n");
}

Test(examples_fibers, run_many_times_out_and_kills, .timeout = 30) {
  char out[1024];
  double secs;
  const char *argv[] = {NULL,     "-t",      "0.5", "sleep 20",
                        "exit 3", "echo hi", NULL};
  int rc = run("run_many", argv, out, sizeof out, 15, &secs);
  cr_expect_eq(rc, 1, "exit %d: %s", rc, out);
  cr_expect_not_null(strstr(out, "sleep 20: timed out after 0.5 s, killed\n"),
                     "%s", out);
  cr_expect_not_null(strstr(out, "exit 3: exit 3 ("), "%s", out);
  /* the child's own "hi" comes first; another command's line may come
   * between it and run_many's report (they run at once) */
  const char *hi = strstr(out, "hi\n");
  const char *done = strstr(out, "echo hi: exit 0 (");
  cr_expect(hi != NULL && done != NULL && hi < done, "%s", out);
  cr_expect_lt(secs, 10, "the timed-out command was not killed: %g s", secs);
}

Test(examples_fibers, run_many_runs_at_most_j_at_once, .timeout = 30) {
  char out[1024];
  double secs;
  /* 4 x 0.3 s, 2 at a time: at least 0.6 s; all exit 0 */
  const char *argv[] = {NULL,        "-j",        "2",         "sleep 0.3",
                        "sleep 0.3", "sleep 0.3", "sleep 0.3", NULL};
  int rc = run("run_many", argv, out, sizeof out, 20, &secs);
  cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
  cr_expect_geq(secs, 0.6, "4 x 0.3 s with -j 2 took %g s", secs);
  int n = 0;
  for (const char *p = out; (p = strstr(p, "sleep 0.3: exit 0 (")) != NULL; p++)
    n++;
  cr_expect_eq(n, 4, "%s", out);
  const char *bad[] = {NULL, "-j", "0", "true", NULL};
  cr_expect_eq(run("run_many", bad, out, sizeof out, 10, NULL), 2);
}

Test(examples_fibers, prodcons_workers_counter_exact, .timeout = 60) {
  char out[256];
  const char *pc[] = {NULL, "-n", "5000", NULL};
  cr_expect_eq(run("prodcons_fibers", pc, out, sizeof out, 30, NULL), 0);
  cr_expect_str_eq(out, "consumed 5000 items, sum 12502500\n");
  const char *wk[] = {NULL, "-n", "12", "-j", "3", NULL};
  cr_expect_eq(run("workers_fibers", wk, out, sizeof out, 30, NULL), 0);
  cr_expect_str_eq(out, "12 jobs done, at most 3 at once (limit 3)\n");
  const char *ct[] = {NULL, "-f", "5", "-n", "100", NULL};
  cr_expect_eq(run("counter_fibers", ct, out, sizeof out, 30, NULL), 0);
  /* without the lock every fiber reads before any writes back: 100 */
  cr_expect_str_eq(out, "with the lock: 500, without: 100 (expected 500)\n");
}
