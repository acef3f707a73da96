/* weft — finding libev's backend (epoll) fd, for hosts that embed a weft
 * loop in a foreign poll loop.
 *
 * libev keeps its epoll fd private. weft creates its libev loops under one
 * lock and compares the process's epoll fds before and after: the one that
 * appeared is libev's. The lock serialises weft's own loop creations; an
 * epoll created by another thread at the same instant makes the answer
 * ambiguous, and then weft_loop_backend_fd() reports -ENOTSUP rather than
 * guess. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
