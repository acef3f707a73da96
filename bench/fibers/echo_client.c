/* The load client of the fibers echo rows: CONNS connections to
 * 127.0.0.1:PORT, each sending a SIZE-byte message, reading the whole echo
 * back (every byte checked), then sending again; once every connection has
 * made a round trip (untimed warm-up), it counts for SECONDS (and at least
 * CONNS round trips) and prints round trips/s as one JSON line (bench BENCH,
 * impl IMPL). One thread, epoll, edge-triggered, so the client costs the
 * same for every server.
 *
 * Warm-up: connections are made in batches of 500, and a connection that
 * has made its first round trip waits (sends nothing more) until every
 * connection has: the server then only accepts during the warm-up, instead
 * of echoing for the connections already made while the new ones wait to
 * be accepted (10,000 connections took minutes that way on a loaded VM).
 *
 * With SERVER_PID, two more lines: BENCH_srv_us, the server's CPU time
 * (user + system, /proc/PID/stat) per round trip in microseconds over the
 * timed run, and BENCH_cli_us, the client's own (getrusage): a client
 * whose CPU per round trip times the rate is near one CPU was the limit,
 * not the server.
 * Usage: echo_client PORT CONNS SIZE SECONDS BENCH IMPL [SERVER_PID] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
  int fd;
  size_t sent, got;
  unsigned long trips;
} conn;

static char *msg, scratch[256 * 1024];
static size_t size;
static int warming = 1;      /* a finished round trip does not send again */
static unsigned long trips; /* round trips of all connections */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *impl = "?";

static void fail(const char *what) {
  fprintf(stderr, "echo_client: %s: FAILED: %s (%s)\n", impl, what,
          strerror(errno));
  exit(1);
}

/* Writes what is left of the message; 0 when all of it is in the kernel or
 * the socket is full, -1 on error. */
static int pump_out(conn *c) {
  while (c->sent < size) {
    ssize_t w = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN ? 0 : -1;
    c->sent += (size_t)w;
  }
  return 0;
}

static int pump_in(conn *c) {
  for (;;) {
    size_t want =
        size - c->got < sizeof scratch ? size - c->got : sizeof scratch;
    ssize_t r = recv(c->fd, scratch, want, 0);
    if (r == 0) {
      errno = ECONNRESET;
      return -1;
    }
    if (r < 0) return errno == EAGAIN ? 0 : -1;
    if (memcmp(scratch, msg + c->got, (size_t)r) != 0) {
      errno = EPROTO;
      return -1;
    }
    c->got += (size_t)r;
    if (c->got == size) { /* a round trip: send again */
      c->trips++;
      trips++;
      c->got = c->sent = 0;
      if (!warming && pump_out(c) < 0) return -1;
    }
  }
}

/* CPU seconds (user + system) of process pid so far, from /proc. */
static double cpu_of(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t k = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[k] = '\0';
  const char *p = strrchr(buf, ')'); /* the name may hold spaces */
  unsigned long ut = 0, st = 0;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                                 "%lu %lu", &ut, &st) != 2)
    return 0;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* One epoll_wait and its events: 0, or -1 when a connection failed. */
static int run(int ep) {
  struct epoll_event evs[512];
  int k = epoll_wait(ep, evs, 512, 100);
  if (k < 0 && errno != EINTR) return -1;
  for (int j = 0; j < k; j++) {
    conn *c = evs[j].data.ptr;
    if (((evs[j].events & EPOLLOUT) && pump_out(c) < 0) ||
        ((evs[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && pump_in(c) < 0))
      return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: echo_client PORT CONNS SIZE SECONDS BENCH IMPL "
                    "[SERVER_PID]\n");
    return 2;
  }
  long srv_pid = argc == 8 ? atol(argv[7]) : 0;
  int port = atoi(argv[1]);
  impl = argv[6];
  size_t n = strtoul(argv[2], NULL, 10);
  size = strtoul(argv[3], NULL, 10);
  double secs = atof(argv[4]);
  msg = malloc(size);
  conn *cs = calloc(n, sizeof *cs);
  if (msg == NULL || cs == NULL || size == 0) fail("setup");
  for (size_t i = 0; i < size; i++)
    msg[i] = (char)((i * 131 + 7) & 0xff);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = epoll_create1(0), one = 1;
  /* Connects in batches of 500 (under every server's listen backlog), each
   * batch warmed up, not timed, until all of its connections have made a
   * round trip (the server has accepted them all); at most 300 s (10,000
   * connections take 1-2 minutes on a loaded 2-core VM). */
  double t0 = now(), t, end = t0 + 300;
  for (size_t lo = 0; lo < n; lo += 500) {
    size_t hi = lo + 500 < n ? lo + 500 : n, live = lo;
    for (size_t i = lo; i < hi; i++) {
      int fd = socket(AF_INET, SOCK_STREAM, 0), nb = 1;
      if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        fail("connect");
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (ioctl(fd, FIONBIO, &nb) < 0) fail("FIONBIO");
      cs[i].fd = fd;
      struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                               .data.ptr = &cs[i]};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) fail("epoll_ctl");
      if (pump_out(&cs[i]) < 0) fail("send");
    }
    while (live < hi) {
      if ((t = now()) > end)
        fail("warm-up: not every connection echoed within 300 s");
      if (run(ep) < 0) fail("echo");
      while (live < hi && cs[live].trips > 0)
        live++;
    }
  }
  fprintf(stderr, "echo_client: %s: %zu connections warm in %.1f s\n", impl,
          n, now() - t0);
  warming = 0;
  unsigned long before = trips;
  double srv0 = srv_pid > 0 ? cpu_of(srv_pid) : 0, cli0 = self_cpu();
  t0 = now();
  end = t0 + secs;
  for (size_t i = 0; i < n; i++) /* every connection sends again */
    if (pump_out(&cs[i]) < 0) fail("send");
  /* SECONDS, and at least as many round trips as connections (one each on
   * average), so that big messages over many connections still count whole
   * round trips; at most 120 s. */
  while ((t = now()) < end || trips - before < n) {
    if (t > end + 120)
      fail("timed run: fewer round trips than connections in 120 s");
    if (run(ep) < 0) fail("echo");
  }
  unsigned long done = trips - before;
  double srv_cpu = srv_pid > 0 ? cpu_of(srv_pid) - srv0 : 0,
         cli_cpu = self_cpu() - cli0;
  /* Reset, not FIN: no TIME_WAIT left behind, which would slow the next
   * run's connect()s (the kernel's port search walks them). */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  for (size_t i = 0; i < n; i++) {
    setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(cs[i].fd);
  }
  printf("{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%.1f,\"unit\":\"rt/s\","
         "\"better\":\"higher\",\"runs\":1}\n",
         argv[5], argv[6], (double)done / (t - t0));
  if (srv_pid > 0) {
    printf("{\"bench\":\"%s_srv_us\",\"impl\":\"%s\",\"value\":%.2f,"
           "\"unit\":\"us/rt\",\"better\":\"lower\",\"runs\":1}\n",
           argv[5], argv[6], srv_cpu * 1e6 / (double)done);
    printf("{\"bench\":\"%s_cli_us\",\"impl\":\"%s\",\"value\":%.2f,"
           "\"unit\":\"us/rt\",\"better\":\"lower\",\"runs\":1}\n",
           argv[5], argv[6], cli_cpu * 1e6 / (double)done);
  }
  fprintf(stderr,
          "echo_client: %s: %lu round trips in %.2f s; CPU per round trip: "
          "server %.2f us, client %.2f us (busy: server %.0f%%, client "
          "%.0f%% of a CPU)\n",
          impl, done, t - t0, srv_cpu * 1e6 / (double)done,
          cli_cpu * 1e6 / (double)done, 100 * srv_cpu / (t - t0),
          100 * cli_cpu / (t - t0));
  return 0;
}
