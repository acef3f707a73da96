/* The load client of the fibers echo rows: CONNS connections to
 * 127.0.0.1:PORT, each sending a SIZE-byte message, reading the whole echo
 * back (every byte checked), then sending again; once every connection has
 * made a round trip (untimed warm-up), it counts for SECONDS (and at least
 * CONNS round trips) and prints round trips/s as one JSON line (bench BENCH,
 * impl IMPL). One thread, epoll, edge-triggered, so the client costs the
 * same for every server.
 * Usage: echo_client PORT CONNS SIZE SECONDS BENCH IMPL */
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
      c->got = c->sent = 0;
      if (pump_out(c) < 0) return -1;
    }
  }
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
  if (argc != 7) {
    fprintf(stderr, "usage: echo_client PORT CONNS SIZE SECONDS BENCH IMPL\n");
    return 2;
  }
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
  unsigned long before = 0;
  for (size_t i = 0; i < n; i++)
    before += cs[i].trips;
  t0 = now();
  end = t0 + secs;
  /* SECONDS, and at least as many round trips as connections (one each on
   * average), so that big messages over many connections still count whole
   * round trips; at most 120 s. */
  unsigned long trips = 0;
  while ((t = now()) < end || trips < n) {
    if (t > end + 120)
      fail("timed run: fewer round trips than connections in 120 s");
    if (run(ep) < 0) fail("echo");
    trips = 0;
    for (size_t i = 0; i < n; i++)
      trips += cs[i].trips;
    trips -= before;
  }
  /* Reset, not FIN: no TIME_WAIT left behind, which would slow the next
   * run's connect()s (the kernel's port search walks them). */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  for (size_t i = 0; i < n; i++) {
    setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(cs[i].fd);
  }
  printf("{\"bench\":\"%s\",\"impl\":\"%s\",\"value\":%.1f,\"unit\":\"rt/s\","
         "\"better\":\"higher\",\"runs\":1}\n",
         argv[5], argv[6], (double)trips / (t - t0));
  return 0;
}
