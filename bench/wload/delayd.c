/* A fixed-delay HTTP/1.1 server for wload's open-loop accuracy bench: a
 * thread per connection reads each request (up to its blank line), sleeps
 * exactly --delay-us with clock_nanosleep on an absolute deadline from the
 * request's arrival, and answers "200 OK" with a 2-byte body. Blocking
 * threads, not an event loop, so that the delay is the kernel's timer
 * precision (tens of microseconds) and nothing else: the latency a client
 * measures must come out as this delay plus the loopback round trip.
 *
 * With RECORD_FILE, the server also keeps its own timestamps of every
 * request (CLOCK_MONOTONIC, ns): when the read that brought it returned
 * and when its response's write returned. SIGUSR1 writes the pairs since
 * the last SIGUSR1 to RECORD_FILE ("arrival_ns done_ns" lines, through a
 * rename, so the file appears whole) and starts a new set. The bench
 * turns them into a second, independent latency measurement (see
 * bench/wload/serverlat.py).
 *
 *   delayd PORT DELAY_US [RECORD_FILE]   (prints "listening" when ready) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long delay_ns;
static const char *record_file;

#define MAX_RECS (1u << 22)
static struct rec { uint64_t arrival, done; } * recs;
static size_t nrecs;
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t ns_of(const struct timespec *t) {
  return (uint64_t)t->tv_sec * 1000000000ull + (uint64_t)t->tv_nsec;
}

static void record(uint64_t arrival) {
  if (!recs) return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  pthread_mutex_lock(&rec_lock);
  if (nrecs < MAX_RECS) recs[nrecs++] = (struct rec){arrival, ns_of(&now)};
  pthread_mutex_unlock(&rec_lock);
}

/* SIGUSR1 (blocked in every other thread): dump and start again. */
static void *dumper(void *arg) {
  sigset_t *set = arg;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", record_file);
  for (;;) {
    int sig;
    if (sigwait(set, &sig) != 0) continue;
    pthread_mutex_lock(&rec_lock);
    FILE *f = fopen(tmp, "w");
    for (size_t i = 0; f && i < nrecs; i++)
      fprintf(f, "%llu %llu\n", (unsigned long long)recs[i].arrival,
              (unsigned long long)recs[i].done);
    nrecs = 0;
    pthread_mutex_unlock(&rec_lock);
    if (f && fclose(f) == 0) rename(tmp, record_file);
  }
  return NULL;
}

static void *serve(void *arg) {
  int fd = (int)(long)arg;
  char buf[8192];
  size_t have = 0;
  static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (;;) {
    ssize_t n = read(fd, buf + have, sizeof buf - have);
    if (n <= 0) break;
    struct timespec at;
    clock_gettime(CLOCK_MONOTONIC, &at);
    uint64_t arrival = ns_of(&at);
    have += (size_t)n;
    char *end;
    while ((end = memmem(buf, have, "\r\n\r\n", 4)) != NULL) {
      size_t used = (size_t)(end + 4 - buf);
      at.tv_nsec += delay_ns;
      at.tv_sec += at.tv_nsec / 1000000000;
      at.tv_nsec %= 1000000000;
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
      if (write(fd, resp, sizeof resp - 1) < 0) goto out;
      record(arrival);
      memmove(buf, buf + used, have - used);
      have -= used;
    }
    if (have == sizeof buf) break;
  }
out:
  close(fd);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: delayd PORT DELAY_US [RECORD_FILE]\n");
    return 2;
  }
  delay_ns = atol(argv[2]) * 1000;
  static sigset_t set;
  if (argc == 4) {
    record_file = argv[3];
    if (!(recs = malloc(MAX_RECS * sizeof *recs))) {
      perror("delayd");
      return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it */
    pthread_t t;
    if (pthread_create(&t, NULL, dumper, &set) != 0) {
      perror("delayd");
      return 1;
    }
  }
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1024) < 0) {
    perror("delayd");
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    if (pthread_create(&t, NULL, serve, (void *)(long)c) != 0)
      close(c);
    else
      pthread_detach(t);
  }
}
