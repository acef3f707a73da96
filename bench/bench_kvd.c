/* examples/kvd against redis-server, both driven by redis-benchmark:
 * PING_INLINE, SET and GET, 50 clients, without and with -P 16
 * pipelining, in requests per second. One kvd loop against one
 * redis-server (persistence off), each started fresh per run and stopped
 * after it; runs alternate (bench_group_run), medians of BENCH_RUNS
 * (default 3 here). BENCH_QUICK=1: 10,000 requests per test instead of
 * 100,000. Needs redis-server and redis-benchmark (scripts/deps.sh).
 *
 * The second table (group "kvd2", issue 7) runs the same tests against
 * kvd --loops 2 and redis-server --io-threads 2 --io-threads-do-reads yes
 * (accepted by Debian's 7.0.15). The machine has 2 cores and
 * redis-benchmark (one thread) shares them with the server, so neither
 * server gets two cores to itself: the client settings are identical for
 * both impls and both tables, which keeps the comparison fair but caps
 * what a second loop or I/O thread can gain.
 *
 * Each table also has "weft+wload" and "redis-server+wload" rows: the same
 * tests driven by examples/wload --resp instead (see run_wload), alternating
 * with the redis-benchmark rows ("weft", "redis-server": the reference) in
 * the same run.
 *
 * The group "kvd_idle" (issue 16) measures memory per idle client: a fresh
 * kvd (one loop) or redis-server per run, 2,000 clients that each ran a
 * PING, one after another, and the growth of the server's resident set
 * divided by 2,000. */
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/bench.h"

enum { PING, SET, GET, NTESTS };
static const char *const test_names[NTESTS] = {"PING_INLINE", "SET", "GET"};
static size_t n_requests;

typedef struct server {
  pid_t pid;
  int port;
} server;

/* Starts argv with stdout on a pipe and reads lines until one contains
 * `ready`; `port_prefix` (or NULL) names the text after which the line
 * gives the port. */
static server spawn(char *const *argv, const char *ready,
                    const char *port_prefix) {
  int o[2];
  BENCH_CHECK(pipe(o) == 0, "pipe");
  server s = {fork(), 0};
  BENCH_CHECK(s.pid >= 0, "fork");
  if (s.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* bench_fail() exits: the server too */
    dup2(o[1], 1);
    close(o[0]), close(o[1]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(o[1]);
  FILE *f = fdopen(o[0], "r");
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    if (!strstr(line, ready)) continue;
    if (port_prefix)
      s.port = atoi(strstr(line, port_prefix) + strlen(port_prefix));
    fclose(f); /* the server's later output goes nowhere (EPIPE is harmless) */
    return s;
  }
  bench_fail("%s exited before it was ready", argv[0]);
}

static void stop(server s) {
  int st;
  kill(s.pid, SIGTERM);
  BENCH_CHECK(waitpid(s.pid, &st, 0) == s.pid, "waitpid");
}

/* A port free right now (redis-server cannot be told to pick one). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr = {htonl(INADDR_LOOPBACK)}};
  socklen_t len = sizeof a;
  BENCH_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(fd, (struct sockaddr *)&a, &len) == 0,
              "free port");
  close(fd);
  return ntohs(a.sin_port);
}

/* Runs redis-benchmark --csv and stores each test's requests/s in rps[]. */
static void run_benchmark(int port, int pipeline, double *rps) {
  char cmd[256], line[512];
  snprintf(cmd, sizeof cmd,
           "redis-benchmark -h 127.0.0.1 -p %d -c 50 -n %zu -P %d -t "
           "ping_inline,set,get "
           "--csv 2>/dev/null",
           port, n_requests, pipeline);
  FILE *p = popen(cmd, "r");
  BENCH_CHECK(p != NULL, "popen redis-benchmark");
  for (int i = 0; i < NTESTS; i++)
    rps[i] = NAN;
  while (fgets(line, sizeof line, p)) {
    for (int i = 0; i < NTESTS; i++) {
      char want[32];
      snprintf(want, sizeof want, "\"%s\",\"", test_names[i]);
      if (strncmp(line, want, strlen(want)) == 0)
        rps[i] = atof(line + strlen(want));
    }
  }
  BENCH_CHECK(pclose(p) == 0, "redis-benchmark failed on port %d", port);
  for (int i = 0; i < NTESTS; i++)
    BENCH_CHECK(rps[i] > 0, "no %s result from redis-benchmark", test_names[i]);
}

/* The same tests from examples/wload --resp (one thread, 50 connections,
 * the same request count and pipelining): "PING" (wload sends every
 * command as a RESP array, not inline), "SET key:0 xxx" and "GET key:0"
 * (-r 1: one key, as redis-benchmark without -r). Any error or a wrong
 * reply type fails the run. */
static const char *const wload_cmds[NTESTS] = {
    "PING", "SET key:__rand_int__ __data__", "GET key:__rand_int__"};

static double json_num(const char *js, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *q = strstr(js, k);
  return q ? strtod(q + strlen(k), NULL) : -1;
}

static void run_wload(int port, int pipeline, double *rps) {
  char self[PATH_MAX], bin[PATH_MAX + 32], target[32], nreq[32], pl[16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  BENCH_CHECK(n > 0, "readlink");
  self[n] = '\0';
  snprintf(bin, sizeof bin, "%s/../examples/wload", dirname(self));
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  snprintf(nreq, sizeof nreq, "%zu", n_requests);
  snprintf(pl, sizeof pl, "%d", pipeline);
  for (int i = 0; i < NTESTS; i++) {
    char cmd[PATH_MAX + 256], js[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' --resp -q --json -t 1 -c 50 -n %s -P %s -r 1 "
             "--data-size 3 --cmd '%s' %s",
             bin, nreq, pl, wload_cmds[i], target);
    FILE *p = popen(cmd, "r");
    BENCH_CHECK(p != NULL, "popen wload");
    size_t len = fread(js, 1, sizeof js - 1, p);
    js[len] = '\0';
    BENCH_CHECK(pclose(p) == 0, "wload failed on port %d: %s", port, cmd);
    rps[i] = json_num(js, "requests_per_s");
    BENCH_CHECK(rps[i] > 0 && json_num(js, "errors_total") == 0,
                "wload %s on port %d: errors or no figures: %s", test_names[i],
                port, js);
  }
}

static bool use_wload; /* the client of the impl being run */
static bool use_idle;  /* group kvd_idle: memory per idle connection */

/* ---- memory per idle connection (group kvd_idle) ------------------------- */

#define IDLE_CONNS 2000u

/* The resident set of `pid` in bytes (VmRSS), or a negative value. */
static double rss_bytes(pid_t pid) {
  char path[64], line[128];
  double kb = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmRSS: %lf", &kb) == 1) break;
  if (f != NULL) fclose(f);
  return kb * 1024;
}

/* Opens n connections to `port` one after another, sends PING on each and
 * reads its +PONG before the next one opens, and leaves them open (fds in
 * fds[]): n idle clients that have each run a command, one at a time, so
 * that the figure is what an idle client keeps, not a peak. */
static void open_idle(int port, int *fds, unsigned n) {
  static const char ping[] = "*1\r\n$4\r\nPING\r\n";
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr = {htonl(INADDR_LOOPBACK)}};
  struct timeval tmo = {10, 0};
  for (unsigned i = 0; i < n; i++) {
    char buf[16];
    size_t got = 0;
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BENCH_CHECK(
        fds[i] >= 0 &&
            setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo) ==
                0 &&
            connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0 &&
            write(fds[i], ping, sizeof ping - 1) == (ssize_t)(sizeof ping - 1),
        "idle client %u", i);
    while (got < 7) {
      ssize_t k = read(fds[i], buf + got, sizeof buf - got);
      BENCH_CHECK(k > 0, "idle client %u: no reply", i);
      got += (size_t)k;
    }
    BENCH_CHECK(got == 7 && memcmp(buf, "+PONG\r\n", 7) == 0,
                "idle client %u: not +PONG", i);
  }
}

/* values[0]: the fresh server's resident set growth per idle client. */
static void measure_idle(server s, double *values) {
  int warm; /* one client first: what a server makes once is made */
  open_idle(s.port, &warm, 1);
  close(warm);
  nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
  double before = rss_bytes(s.pid);
  static int fds[IDLE_CONNS];
  open_idle(s.port, fds, IDLE_CONNS);
  nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
  double after = rss_bytes(s.pid);
  for (unsigned i = 0; i < IDLE_CONNS; i++)
    close(fds[i]);
  BENCH_CHECK(before > 0 && after > 0, "no VmRSS for %d", (int)s.pid);
  values[0] = (after - before) / IDLE_CONNS;
}

/* values: the 3 tests without pipelining, then the 3 with -P 16, from
 * redis-benchmark or (use_wload) examples/wload; or (use_idle) the bytes
 * per idle client. */
static void measure(server s, double *values) {
  void (*client)(int, int, double *) = use_wload ? run_wload : run_benchmark;
  if (use_idle) {
    measure_idle(s, values);
  } else {
    client(s.port, 1, values);
    client(s.port, 16, values + NTESTS);
  }
  stop(s);
}

/* arg: the number of loops, as a string ("1" or "2"). */
static void run_kvd(double *values, void *arg) {
  char self[PATH_MAX], path[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  BENCH_CHECK(n > 0, "readlink");
  self[n] = '\0';
  snprintf(path, sizeof path, "%s/../examples/kvd", dirname(self));
  char *argv[] = {path, "--port", "0", "--loops", arg, NULL};
  if (strcmp(arg, "1") == 0) argv[3] = NULL; /* the first table: as before */
  measure(spawn(argv, "listening on ", "listening on "), values);
}

/* arg: the number of I/O threads, as a string ("1": Redis's default, no
 * I/O threads; "2": reads and writes on 2 threads, the main one included). */
static void run_redis(double *values, void *arg) {
  char port[16];
  snprintf(port, sizeof port, "%d", free_port());
  char *argv[] = {"redis-server",
                  "--port",
                  port,
                  "--bind",
                  "127.0.0.1",
                  "--save",
                  "",
                  "--appendonly",
                  "no",
                  "--io-threads",
                  arg,
                  "--io-threads-do-reads",
                  "yes",
                  NULL};
  if (strcmp(arg, "1") == 0) argv[9] = NULL; /* the first table: as before */
  server s = spawn(argv, "Ready to accept connections", NULL);
  s.port = atoi(port);
  measure(s, values);
}

static void run_kvd_rb(double *values, void *arg) {
  use_wload = false;
  run_kvd(values, arg);
}
static void run_kvd_wload(double *values, void *arg) {
  use_wload = true;
  run_kvd(values, arg);
}
static void run_redis_rb(double *values, void *arg) {
  use_wload = false;
  run_redis(values, arg);
}
static void run_redis_wload(double *values, void *arg) {
  use_wload = true;
  run_redis(values, arg);
}

static void run_kvd_idle(double *values, void *arg) {
  use_wload = false, use_idle = true;
  run_kvd(values, arg);
  use_idle = false;
}
static void run_redis_idle(double *values, void *arg) {
  use_wload = false, use_idle = true;
  run_redis(values, arg);
  use_idle = false;
}

static const bench_metric metrics[] = {
    {"kvd_ping_inline", "req/s", true}, {"kvd_set", "req/s", true},
    {"kvd_get", "req/s", true},         {"kvd_ping_inline_p16", "req/s", true},
    {"kvd_set_p16", "req/s", true},     {"kvd_get_p16", "req/s", true}};
static const bench_impl impls[] = {
    {"weft", run_kvd_rb, "1"},
    {"redis-server", run_redis_rb, "1"},
    {"weft+wload", run_kvd_wload, "1"},
    {"redis-server+wload", run_redis_wload, "1"}};
static const bench_metric metrics2[] = {{"kvd2_ping_inline", "req/s", true},
                                        {"kvd2_set", "req/s", true},
                                        {"kvd2_get", "req/s", true},
                                        {"kvd2_ping_inline_p16", "req/s", true},
                                        {"kvd2_set_p16", "req/s", true},
                                        {"kvd2_get_p16", "req/s", true}};
static const bench_impl impls2[] = {
    {"weft", run_kvd_rb, "2"},
    {"redis-server", run_redis_rb, "2"},
    {"weft+wload", run_kvd_wload, "2"},
    {"redis-server+wload", run_redis_wload, "2"}};
/* A fresh server per run (freed memory stays in a process's heap); one
 * kvd loop against redis-server without I/O threads. */
static const bench_metric metrics_idle[] = {
    {"kvd_idle_conn_bytes", "B", false}};
static const bench_impl impls_idle[] = {{"weft", run_kvd_idle, "1"},
                                        {"redis-server", run_redis_idle, "1"}};
static const bench_group groups[] = {
    {"kvd", metrics, BENCH_LEN(metrics), impls, BENCH_LEN(impls)},
    {"kvd2", metrics2, BENCH_LEN(metrics2), impls2, BENCH_LEN(impls2)},
    {"kvd_idle", metrics_idle, BENCH_LEN(metrics_idle), impls_idle,
     BENCH_LEN(impls_idle)}};

int main(int argc, char **argv) {
  setenv("BENCH_RUNS", "3", 0); /* each run is seconds long: 3 by default */
  signal(SIGPIPE, SIG_IGN);
  n_requests = bench_n(100000, 10000);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
