/* The fiber-style examples (examples/echo_fibers, tree_sum, run_many,
 * prodcons_fibers, workers_fibers, counter_fibers) run as a user runs
 * them: the echo server on a free loopback port (--port 0, read back) with
 * its client over 10,000 lines, tree_sum over a tree made here (CRC-32s
 * computed here), run_many with a command that times out, the three
 * classic exercises with their exact results, and get_fibers with its
 * asyncio twin (examples/python/get.py) against Python's http.server. Each
 * program runs with a deadline (killed past it) and its exit status and output
 * are checked. */
#include "support/test.h"

#include "support/examples.h"

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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

Test(examples_fibers, echo_server_and_client_over_10000_lines, .timeout = 60) {
  int fd;
  const char *sv[] = {NULL, "--port", "0", NULL};
  pid_t server = th_example_start("echo_fibers", sv, &fd);
  FILE *f = fdopen(fd, "r");
  unsigned port = 0;
  cr_assert_eq(fscanf(f, "echo_fibers: listening on 127.0.0.1:%u", &port), 1);
  cr_assert(port > 0 && port < 65536, "port %u", port);
  char portstr[16], out[256];
  snprintf(portstr, sizeof portstr, "%u", port);
  const char *cl[] = {NULL, "--client", portstr, NULL};
  int rc = th_example_run("echo_fibers", cl, out, sizeof out, 50, NULL);
  cr_expect_eq(rc, 0, "client exit %d: %s", rc, out);
  cr_expect_str_eq(out, "echo_fibers: 10000 lines echoed and checked\n");
  /* a second client on the same server: connections are independent */
  const char *cl2[] = {NULL, "--client", portstr, "--lines", "3", NULL};
  rc = th_example_run("echo_fibers", cl2, out, sizeof out, 20, NULL);
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
  cr_expect_eq(th_example_run("echo_fibers", cl, out, sizeof out, 15, NULL), 1);
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
  int rc = th_example_run("tree_sum", argv, out, sizeof out, 50, NULL);
  cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
  cr_expect_str_eq(out, want);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
  /* a directory that does not exist: an error, exit 1 */
  rc = th_example_run("tree_sum", argv, out, sizeof out, 20, NULL);
  cr_expect_eq(rc, 1);
  cr_expect_str_eq(out, "0 files, 0 bytes, crc32 sum 0\n");
}

Test(examples_fibers, run_many_times_out_and_kills, .timeout = 30) {
  char out[1024];
  double secs;
  const char *argv[] = {NULL,     "-t",      "0.5", "sleep 20",
                        "exit 3", "echo hi", NULL};
  int rc = th_example_run("run_many", argv, out, sizeof out, 15, &secs);
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
  int rc = th_example_run("run_many", argv, out, sizeof out, 20, &secs);
  cr_expect_eq(rc, 0, "exit %d: %s", rc, out);
  cr_expect_geq(secs, 0.6, "4 x 0.3 s with -j 2 took %g s", secs);
  int n = 0;
  for (const char *p = out; (p = strstr(p, "sleep 0.3: exit 0 (")) != NULL; p++)
    n++;
  cr_expect_eq(n, 4, "%s", out);
  const char *bad[] = {NULL, "-j", "0", "true", NULL};
  cr_expect_eq(th_example_run("run_many", bad, out, sizeof out, 10, NULL), 2);
}

Test(examples_fibers, prodcons_workers_counter_exact, .timeout = 60) {
  char out[256];
  const char *pc[] = {NULL, "-n", "5000", NULL};
  cr_expect_eq(th_example_run("prodcons_fibers", pc, out, sizeof out, 30, NULL),
               0);
  cr_expect_str_eq(out, "consumed 5000 items, sum 12502500\n");
  const char *wk[] = {NULL, "-n", "12", "-j", "3", NULL};
  cr_expect_eq(th_example_run("workers_fibers", wk, out, sizeof out, 30, NULL),
               0);
  cr_expect_str_eq(out, "12 jobs done, at most 3 at once (limit 3)\n");
  const char *ct[] = {NULL, "-f", "5", "-n", "100", NULL};
  cr_expect_eq(th_example_run("counter_fibers", ct, out, sizeof out, 30, NULL),
               0);
  /* without the lock every fiber reads before any writes back: 100 */
  cr_expect_str_eq(out, "with the lock: 500, without: 100 (expected 500)\n");
}

/* ---- get_fibers and its asyncio twin --------------------------------------
 * Both against Python's http.server on 127.0.0.1 and a free port, plus a
 * listener that never answers (the kernel completes the handshake, nobody
 * replies): the same URLs, the same results, at most -j at a time. */

static const char http_server[] =
    "import http.server, sys\n"
    "class Quiet(http.server.SimpleHTTPRequestHandler):\n"
    "    def log_message(self, *a): pass\n"
    "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)\n"
    "print(s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

/* Starts http.server in `dir`; its port in *port. */
static pid_t start_http(const char *dir, unsigned *port) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    if (chdir(dir) == 0)
      execlp("python3", "python3", "-u", "-c", http_server, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  cr_assert_eq(fscanf(f, "%u", port), 1, "http.server did not start");
  fclose(f);
  return pid;
}

/* A listening socket on 127.0.0.1 that never accepts: its port. */
static int silent_listener(unsigned *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 16), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

/* Runs `bin` (a path; argv[0] is replaced) in directory `dir` to the end
 * within `limit` seconds: stdout into out, the exit status returned. */
static int run_in(const char *dir, const char *bin, const char **argv,
                  char *out, size_t size, double limit, double *secs) {
  int fd, status;
  double t0 = now_s();
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    if (chdir(dir) == 0) execvp(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  fd = p[0];
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
      cr_assert_fail("%s did not finish within %g s; said: %s", bin, limit,
                     out);
    }
    usleep(10000);
  }
  if (secs != NULL) *secs = now_s() - t0;
  cr_assert(WIFEXITED(status), "%s died of signal %d", bin, WTERMSIG(status));
  return WEXITSTATUS(status);
}

static bool same_file(const char *a, const char *b) {
  char cmd[2 * PATH_MAX + 32];
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
  return system(cmd) == 0;
}

/* The checks both programs must pass for one run over the URLs below. */
static void check_get_run(const char *who, const char *out, const char *dir,
                          const char *srv, unsigned silent) {
  char want[256], a[PATH_MAX], b[PATH_MAX];
  const char *lines[] = {"] a.txt: 200, 6 bytes\n", "] a.txt.3: 200, 6 bytes\n",
                         "] big.bin: 200, 300000 bytes\n", "] missing: 404, "};
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
    cr_expect_not_null(strstr(out, lines[i]), "%s: no '%s' in:\n%s", who,
                       lines[i], out);
  snprintf(want, sizeof want,
           "] http://127.0.0.1:%u/slow: timed out after 0.5 s\n", silent);
  cr_expect_not_null(strstr(out, want), "%s: no timeout line in:\n%s", who,
                     out);
  cr_expect_not_null(strstr(out, "5 URLs, 3 ok, 2 failed, "), "%s:\n%s", who,
                     out);
  for (int i = 1; i <= 5; i++) { /* progress: [1/5] .. [5/5], each once */
    snprintf(want, sizeof want, "[%d/5] ", i);
    const char *p = strstr(out, want);
    cr_expect(p != NULL && strstr(p + 1, want) == NULL, "%s: %s\n%s", who, want,
              out);
  }
  const char *files[][2] = {
      {"a.txt", "a.txt"}, {"a.txt.3", "a.txt"}, {"big.bin", "big.bin"}};
  for (size_t i = 0; i < 3; i++) {
    snprintf(a, sizeof a, "%s/%s", dir, files[i][0]);
    snprintf(b, sizeof b, "%s/%s", srv, files[i][1]);
    cr_expect(same_file(a, b), "%s: %s differs from the server's", who, a);
  }
}

Test(examples_fibers, get_fibers_and_its_twin_download_with_limit_and_timeout,
     .timeout = 90) {
  char root[] = "/tmp/weft-get-XXXXXX", srv[PATH_MAX], outc[PATH_MAX],
       outp[PATH_MAX], twin[PATH_MAX], bin[PATH_MAX];
  cr_assert_not_null(mkdtemp(root));
  cr_assert_not_null(realpath("examples/python/get.py", twin),
                     "run from the source tree: examples/python/get.py");
  th_example_path("get_fibers", bin, sizeof bin);
  snprintf(srv, sizeof srv, "%s/srv", root);
  snprintf(outc, sizeof outc, "%s/c", root);
  snprintf(outp, sizeof outp, "%s/py", root);
  cr_assert_eq(mkdir(srv, 0755), 0);
  cr_assert_eq(mkdir(outc, 0755), 0);
  cr_assert_eq(mkdir(outp, 0755), 0);
  static char big[300000];
  for (size_t i = 0; i < sizeof big; i++)
    big[i] = (char)(i * 7 + i / 251);
  put(srv, "a.txt", "hello\n", 6);
  put(srv, "big.bin", big, sizeof big);
  unsigned port, silent;
  pid_t server = start_http(srv, &port);
  int quiet = silent_listener(&silent);
  char u[5][64], out[4096];
  snprintf(u[0], sizeof u[0], "http://127.0.0.1:%u/a.txt", port);
  snprintf(u[1], sizeof u[1], "http://127.0.0.1:%u/big.bin", port);
  snprintf(u[2], sizeof u[2], "http://127.0.0.1:%u/a.txt", port);
  snprintf(u[3], sizeof u[3], "http://127.0.0.1:%u/missing", port);
  snprintf(u[4], sizeof u[4], "http://127.0.0.1:%u/slow", silent);
  const char *cargv[] = {bin,  "-j", "2",  "-t", "0.5", u[0],
                         u[1], u[2], u[3], u[4], NULL};
  int rc = run_in(outc, bin, cargv, out, sizeof out, 30, NULL);
  cr_expect_eq(rc, 1, "get_fibers exit %d: %s", rc, out);
  check_get_run("get_fibers", out, outc, srv, silent);
  const char *pargv[] = {"python3", twin, "-j", "2",  "-t", "0.5",
                         u[0],      u[1], u[2], u[3], u[4], NULL};
  rc = run_in(outp, "python3", pargv, out, sizeof out, 30, NULL);
  cr_expect_eq(rc, 1, "get.py exit %d: %s", rc, out);
  check_get_run("get.py", out, outp, srv, silent);
  /* -j 1: one at a time, so the fetch after the silent one waits for its
   * timeout; with -j 2 it does not */
  double secs;
  const char *seq[] = {bin, "-j", "1", "-t", "0.5", u[4], u[0], NULL};
  rc = run_in(outc, bin, seq, out, sizeof out, 30, &secs);
  cr_expect_eq(rc, 1);
  const char *t = strstr(out, "/slow: timed out"), *a = strstr(out, "a.txt:");
  cr_expect(t != NULL && a != NULL && t < a, "-j 1 order:\n%s", out);
  cr_expect_geq(secs, 0.5, "-j 1 took %g s", secs);
  const char *par[] = {bin, "-j", "2", "-t", "0.5", u[4], u[0], NULL};
  rc = run_in(outc, bin, par, out, sizeof out, 30, NULL);
  t = strstr(out, "/slow: timed out"), a = strstr(out, "a.txt:");
  cr_expect(t != NULL && a != NULL && a < t, "-j 2 order:\n%s", out);
  /* every fetch 2xx: exit 0; a bad URL and a usage error */
  const char *ok[] = {bin, u[0], NULL};
  cr_expect_eq(run_in(outc, bin, ok, out, sizeof out, 20, NULL), 0, "%s", out);
  cr_expect_not_null(strstr(out, "[1/1] a.txt: 200, 6 bytes\n1 URLs, 1 ok, "),
                     "%s", out);
  const char *bad[] = {bin, "ftp://x/y", NULL};
  cr_expect_eq(run_in(outc, bin, bad, out, sizeof out, 20, NULL), 1, "%s", out);
  cr_expect_not_null(strstr(out, "[1/1] ftp://x/y: "), "%s", out);
  const char *usage[] = {bin, "-j", "0", u[0], NULL};
  cr_expect_eq(run_in(outc, bin, usage, out, sizeof out, 20, NULL), 2);
  close(quiet);
  kill(server, SIGKILL);
  waitpid(server, NULL, 0);
  th_rm_tree(root);
}
