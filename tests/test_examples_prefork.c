/* examples/prefork as a user runs it: three workers on a free loopback
 * port (--port 0, read back from its stderr), twelve HTTP requests, each
 * answered by a worker with its pid: the connections were served by all
 * three workers (round robin: four each). SIGTERM then stops it cleanly:
 * exit 0, and its report says how many connections each worker got. */
#include "support/test.h"
#include "support/examples.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* Starts prefork with its stderr on a pipe (read end in *err_fd). */
static pid_t start_prefork(int *err_fd) {
  char bin[PATH_MAX];
  th_example_path("prefork", bin, sizeof bin);
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], 2);
    close(p[0]);
    close(p[1]);
    execl(bin, bin, "--port", "0", "--workers", "3", (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *err_fd = p[0];
  return pid;
}

/* Reads stderr until it holds `want` (bounded: 10 s). */
static void read_until(int fd, char *buf, size_t size, size_t *len,
                       const char *want) {
  while (strstr(buf, want) == NULL) {
    struct pollfd pf = {fd, POLLIN, 0};
    cr_assert_eq(poll(&pf, 1, 10000), 1, "no '%s' in: %s", want, buf);
    ssize_t r = read(fd, buf + *len, size - 1 - *len);
    cr_assert_gt(r, 0, "stderr ended before '%s': %s", want, buf);
    *len += (size_t)r;
    buf[*len] = '\0';
  }
}

/* One request; returns the answering worker's pid. */
static long get(unsigned port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(s, 0);
  struct timeval tv = {10, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  cr_assert_eq(write(s, req, sizeof req - 1), (ssize_t)sizeof req - 1);
  char buf[512];
  size_t len = 0;
  ssize_t r;
  while ((r = read(s, buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)r;
  cr_assert_eq(r, 0, "the worker closes after its answer");
  close(s);
  buf[len] = '\0';
  cr_assert_eq(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), 0, "%s", buf);
  const char *body = strstr(buf, "\r\n\r\nworker ");
  cr_assert_not_null(body, "%s", buf);
  return strtol(body + 11, NULL, 10);
}

Test(examples_prefork, workers_serve_handed_connections, .timeout = 60) {
  int err_fd;
  pid_t pid = start_prefork(&err_fd);
  char err[8192] = {0};
  size_t len = 0;
  read_until(err_fd, err, sizeof err, &len, " with 3 workers\n");
  unsigned port = 0;
  cr_assert_eq(sscanf(strstr(err, "port "), "port %u", &port), 1, "%s", err);
  long pids[3] = {0, 0, 0};
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 12; i++) {
    long w = get(port);
    int k = 0;
    while (k < 3 && pids[k] != 0 && pids[k] != w)
      k++;
    cr_assert_lt(k, 3, "a fourth worker pid %ld", w);
    pids[k] = w;
    counts[k]++;
  }
  for (int k = 0; k < 3; k++)
    cr_assert_eq(counts[k], 4, "worker %ld served %d", pids[k], counts[k]);
  cr_assert_eq(kill(pid, SIGTERM), 0);
  read_until(err_fd, err, sizeof err, &len, "worker 2 (pid");
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  ssize_t r; /* the rest of its report, to end of file */
  while ((r = read(err_fd, err + len, sizeof err - 1 - len)) > 0)
    len += (size_t)r;
  err[len] = '\0';
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s",
            status, err);
  cr_assert_not_null(strstr(err, "worker 0 (pid"), "%s", err);
  cr_assert_not_null(strstr(err, ": 4 connections, exit 0"), "%s", err);
  close(err_fd);
}
