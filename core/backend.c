/* weft — for hosts that embed a weft loop in a foreign poll loop: finding
 * libev's backend (epoll) fd, and how long the host may sleep on it.
 *
 * libev keeps its epoll fd private. weft creates its libev loops under one
 * lock and compares the process's epoll fds before and after: the one that
 * appeared is libev's. The lock serialises weft's own loop creations; an
 * epoll created by another thread at the same instant makes the answer
 * ambiguous, and then weft_loop_backend_fd() reports -ENOTSUP rather than
 * guess. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define MAX_EPOLLS 1024

static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

static int epoll_fds(int *out) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int n = 0, self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < MAX_EPOLLS) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd == self) continue;
    char path[64], link[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, link, sizeof link - 1);
    if (len <= 0) continue;
    link[len] = '\0';
    if (strcmp(link, "anon_inode:[eventpoll]") == 0) out[n++] = fd;
  }
  closedir(d);
  return n;
}

static bool contains(const int *v, int n, int x) {
  for (int i = 0; i < n; i++)
    if (v[i] == x) return true;
  return false;
}

struct ev_loop *weft__ev_loop_new(unsigned flags, int *backend_fd) {
  static int before[MAX_EPOLLS], after[MAX_EPOLLS];
  pthread_mutex_lock(&create_lock);
  int nb = epoll_fds(before);
  struct ev_loop *ev = ev_loop_new(flags);
  int na = ev != NULL && nb >= 0 ? epoll_fds(after) : -1;
  int found = -1, count = 0;
  for (int i = 0; i < na; i++)
    if (!contains(before, nb, after[i])) {
      found = after[i];
      count++;
    }
  pthread_mutex_unlock(&create_lock);
  *backend_fd = count == 1 ? found : -ENOTSUP;
  return ev;
}

/* ---- the host's timeout ------------------------------------------------- */

/* A timer fires when libev's ev_timer does, and on_prepare arms that at
 * libev's precise time plus the milliseconds weft's truncated clock says
 * are left: up to 1 ms after weft's own deadline. A host told "deadline
 * minus weft_now()" therefore wakes early, its NOWAIT run fires nothing,
 * and it is told 0 until libev's deadline: a spin of up to a millisecond.
 * So the wait is measured on the clock that will fire the timer, from the
 * present rather than from the last turn, and rounded up: libev's, once
 * the watcher is armed for the earliest deadline; before that (the next
 * prepare arms it), weft's monotonic clock read precisely, whose
 * millisecond must reach the deadline. Either way a host that sleeps the
 * answer finds the timer due on its next run. */
static double ms_left_on_weft_clock(uint64_t deadline) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double now = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
  return (double)deadline - now;
}

int64_t weft__timers_next(const weft_loop *loop) {
  uint64_t deadline;
  if (!weft__timers_earliest(loop, &deadline)) return -1;
  double left;
  if (loop->timer_armed && loop->armed_deadline == deadline) {
    ev_now_update(loop->ev);
    left = ev_timer_remaining(loop->ev, (ev_timer *)&loop->timer_watcher) * 1e3;
  } else {
    left = ms_left_on_weft_clock(deadline);
  }
  if (!(left > 0)) return 0;
  if (left >= (double)INT64_MAX) return INT64_MAX;
  return (int64_t)ceil(left);
}
