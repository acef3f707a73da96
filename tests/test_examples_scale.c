/* The loop-group servers' distribution flag, as a user runs them: httpd and
 * kvd with --loops 2 --handoff --stats on a free loopback port (--port 0,
 * read back). Loop 0 accepts every connection and hands it to the loop
 * with the fewest live ones (ties: the loop after the last choice), so
 * connections made one after the other, each answered before the next is
 * made, split exactly: 10 held connections are 5 and 5; after all of
 * loop 1's and two of loop 0's close (live 3 / 0), the next three go to
 * loop 1 and the fourth, a tie, to loop 0 (accepted 6 / 8). The
 * counts are read from the SIGUSR1 lines ("stats loop=I accepted=A
 * live=L ..."). Also: --help lists --handoff (bench/scale/run.sh looks for
 * it), one loop with --handoff serves (httpd's line ends with its thread's
 * cpu_ms and runq_wait_ms, which only grow), and a value after --handoff
 * is a bad command line (exit 2). Each server stops with SIGTERM, exit 0. */
#include "support/test.h"
#include "support/examples.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct srv {
  pid_t pid;
  unsigned port;
  int out; /* its stdout: "listening on", then the stats lines */
  bool http;
  char dir[64]; /* httpd: the temp root */
} srv;

/* One line of fd (no newline), waiting at most 10 s for each byte; byte by
 * byte, so what follows stays in the pipe for the next call. */
static void read_line(int fd, char *buf, size_t size) {
  size_t len = 0;
  for (;;) {
    struct pollfd pf = {fd, POLLIN, 0};
    cr_assert_eq(poll(&pf, 1, 10000), 1, "no line (so far: %.*s)", (int)len,
                 buf);
    char ch;
    cr_assert_eq(read(fd, &ch, 1), 1, "output ended");
    if (ch == '\n') break;
    cr_assert_lt(len + 1, size, "line too long");
    buf[len++] = ch;
  }
  buf[len] = '\0';
}

/* httpd (with a root holding "a.txt") or kvd, with `extra` arguments. */
static srv start(bool http, const char *const *extra) {
  srv s = {.http = http};
  const char *argv[16] = {NULL, "--port", "0"};
  int argc = 3;
  if (http) {
    snprintf(s.dir, sizeof s.dir, "/tmp/weft-scale-XXXXXX");
    cr_assert_not_null(mkdtemp(s.dir));
    char path[96];
    snprintf(path, sizeof path, "%s/a.txt", s.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("hello\n", f);
    fclose(f);
    argv[argc++] = "--root";
    argv[argc++] = s.dir;
  }
  for (; *extra != NULL; extra++)
    argv[argc++] = *extra;
  s.pid = th_example_start(http ? "httpd" : "kvd", argv, &s.out);
  char line[128];
  read_line(s.out, line, sizeof line);
  cr_assert_eq(sscanf(line, "listening on %u", &s.port), 1, "line: %s", line);
  cr_assert_gt(s.port, 0);
  return s;
}

static void stop(srv *s) {
  int status = -1;
  cr_assert_eq(kill(s->pid, SIGTERM), 0);
  cr_assert_eq(waitpid(s->pid, &status, 0), s->pid);
  close(s->out);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d",
            status);
  if (s->http) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    cr_assert_eq(system(cmd), 0);
  }
}

/* Connects, makes one request and reads its whole reply: once it is in,
 * the server has opened the connection on its loop. 10 s at most. */
static int conn_open(const srv *s) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)s->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  const char *req =
      s->http ? "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" : "PING\r\n";
  const char *end = s->http ? "\r\n\r\nhello\n" : "+PONG\r\n";
  cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
  char buf[1024];
  size_t len = 0;
  while (len < strlen(end) || strcmp(buf + len - strlen(end), end) != 0) {
    ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
    cr_assert_gt(n, 0, "no reply (so far: %.*s)", (int)len, buf);
    len += (size_t)n;
    buf[len] = '\0';
  }
  if (s->http) cr_assert_eq(strncmp(buf, "HTTP/1.1 200 ", 13), 0, "%s", buf);
  return fd;
}

/* SIGUSR1: the two loops' accepted and live counts. */
static void counts(const srv *s, unsigned long long acc[2],
                   unsigned long long live[2]) {
  cr_assert_eq(kill(s->pid, SIGUSR1), 0);
  bool seen[2] = {false, false};
  for (int k = 0; k < 2; k++) {
    char line[512];
    unsigned i;
    unsigned long long a, l;
    read_line(s->out, line, sizeof line);
    cr_assert_eq(
        sscanf(line, "stats loop=%u accepted=%llu live=%llu", &i, &a, &l), 3,
        "line: %s", line);
    cr_assert(i < 2 && !seen[i], "line: %s", line);
    seen[i] = true;
    acc[i] = a;
    live[i] = l;
  }
}

/* Waits (10 s at most) until loop 1 has no live connection. */
static void wait_loop1_empty(const srv *s, unsigned long long acc[2],
                             unsigned long long live[2]) {
  for (int i = 0; i < 1000; i++) {
    counts(s, acc, live);
    if (live[1] == 0) return;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  cr_assert_fail("loop 1 still has %llu live connections", live[1]);
}

static void handoff_spreads_by_live_count(bool http) {
  srv s = start(http,
                (const char *[]){"--loops", "2", "--handoff", "--stats", NULL});
  int fds[10];
  for (int i = 0; i < 10; i++)
    fds[i] = conn_open(&s);
  unsigned long long acc[2], live[2];
  counts(&s, acc, live);
  cr_assert(acc[0] == 5 && acc[1] == 5, "accepted %llu %llu", acc[0], acc[1]);
  cr_assert(live[0] == 5 && live[1] == 5, "live %llu %llu", live[0], live[1]);
  /* A tie goes to the loop after the last choice, so the first connection
   * (index 0) went to loop 1: the even indices are loop 1's. Closing them
   * and two of loop 0's leaves live 3 / 0. */
  for (int i = 0; i < 10; i += 2)
    close(fds[i]);
  close(fds[1]), close(fds[3]);
  wait_loop1_empty(&s, acc, live);
  for (int i = 0; i < 1000 && live[0] != 3; i++) {
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    counts(&s, acc, live);
  }
  cr_assert(live[0] == 3 && live[1] == 0, "live %llu %llu", live[0], live[1]);
  /* The least loaded, loop 1, gets the next three (0, 1, 2 live against
   * 3); the fourth is a tie (3, 3) and goes to loop 0. */
  int more[4];
  for (int i = 0; i < 4; i++)
    more[i] = conn_open(&s);
  counts(&s, acc, live);
  cr_assert(acc[0] == 6 && acc[1] == 8, "accepted %llu %llu", acc[0], acc[1]);
  cr_assert(live[0] == 4 && live[1] == 3, "live %llu %llu", live[0], live[1]);
  close(fds[5]), close(fds[7]), close(fds[9]);
  for (int i = 0; i < 4; i++)
    close(more[i]);
  stop(&s);
}

Test(examples_scale, httpd_handoff_spreads_by_live_count, .timeout = 60) {
  handoff_spreads_by_live_count(true);
}

Test(examples_scale, kvd_handoff_spreads_by_live_count, .timeout = 60) {
  handoff_spreads_by_live_count(false);
}

/* One loop with --handoff: the acceptor hands every connection to itself. */
Test(examples_scale, one_loop_handoff_serves, .timeout = 60) {
  for (int k = 0; k < 2; k++) {
    srv s = start(k == 0, (const char *[]){"--handoff", "--stats", NULL});
    int a = conn_open(&s), b = conn_open(&s);
    cr_assert_eq(kill(s.pid, SIGUSR1), 0);
    char line[512];
    unsigned i;
    unsigned long long acc, live;
    read_line(s.out, line, sizeof line);
    cr_assert_eq(
        sscanf(line, "stats loop=%u accepted=%llu live=%llu", &i, &acc, &live),
        3, "line: %s", line);
    cr_assert(i == 0 && acc == 2 && live == 2, "line: %s", line);
    /* httpd adds its thread's scheduler times where the kernel has them;
     * they only grow. */
    unsigned long long cpu = 0, wait = 0, cpu2 = 0, wait2 = 0;
    const char *p = strstr(line, " cpu_ms=");
    if (k == 0 && access("/proc/thread-self/schedstat", R_OK) == 0) {
      cr_assert(p && sscanf(p, " cpu_ms=%llu runq_wait_ms=%llu", &cpu, &wait) ==
                         2,
                "line: %s", line);
      cr_assert_eq(kill(s.pid, SIGUSR1), 0);
      read_line(s.out, line, sizeof line);
      p = strstr(line, " cpu_ms=");
      cr_assert(
          p && sscanf(p, " cpu_ms=%llu runq_wait_ms=%llu", &cpu2, &wait2) == 2,
          "line: %s", line);
      cr_assert(cpu2 >= cpu && wait2 >= wait, "%llu %llu, then %s", cpu, wait,
                line);
    } else if (k == 1) {
      cr_assert_null(p, "kvd prints no scheduler times: %s", line);
    }
    close(a), close(b);
    stop(&s);
  }
}

Test(examples_scale, help_lists_handoff_and_a_value_is_refused, .timeout = 60) {
  static char out[4096];
  const char *help[] = {NULL, "--help", NULL};
  const char *bad_httpd[] = {NULL,   "--port",    "0", "--root",
                             "/tmp", "--handoff", "1", NULL};
  const char *bad_kvd[] = {NULL, "--port", "0", "--handoff", "1", NULL};
  const char *names[] = {"httpd", "kvd"};
  const char **bad[] = {bad_httpd, bad_kvd};
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(th_example_run(names[k], help, out, sizeof out, 20, NULL), 0);
    cr_assert_not_null(strstr(out, "--handoff"), "%s --help: %s", names[k],
                       out);
    cr_assert_eq(th_example_run(names[k], bad[k], out, sizeof out, 20, NULL), 2,
                 "%s: %s", names[k], out);
    cr_assert_null(strstr(out, "listening on"), "%s", out);
  }
}
