#!/bin/sh
# Counts clock_gettime() calls per poll on the threads that poll (those
# that called epoll_wait), for any program: a small LD_PRELOAD shim built
# in a temporary directory. The calls of threads that never poll (a
# benchmark's client thread, pool workers) are reported apart.
#   scripts/clock-reads.sh CMD [ARGS...]
# e.g. BENCH_IMPL=weft BENCH_RUNS=1 scripts/clock-reads.sh \
#        build/bench/bench_net udp_pingpong
# prints, on stderr, after the program's own output:
#   [clock-reads] clock_gettime=N on-poll-threads=N epoll_wait=N per-poll=R
set -eu
[ $# -ge 1 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/shim.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <time.h>
static atomic_ulong n_all, n_poll_threads, n_polls;
static __thread int polls; /* this thread has called epoll_wait */
int clock_gettime(clockid_t c, struct timespec *ts) {
  static int (*real)(clockid_t, struct timespec *);
  if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
  n_all++;
  if (polls) n_poll_threads++;
  return real(c, ts);
}
int epoll_wait(int fd, struct epoll_event *e, int m, int t) {
  static int (*real)(int, struct epoll_event *, int, int);
  if (!real) real = (int (*)(int, struct epoll_event *, int, int))dlsym(RTLD_NEXT, "epoll_wait");
  n_polls++;
  polls = 1;
  return real(fd, e, m, t);
}
__attribute__((destructor)) static void report(void) {
  unsigned long p = n_polls;
  fprintf(stderr, "[clock-reads] clock_gettime=%lu on-poll-threads=%lu "
          "epoll_wait=%lu per-poll=%.2f\n", (unsigned long)n_all,
          (unsigned long)n_poll_threads, p,
          p ? (double)n_poll_threads / (double)p : 0.0);
}
C
${CC:-cc} -O2 -shared -fPIC -o "$dir/shim.so" "$dir/shim.c" -ldl
LD_PRELOAD="$dir/shim.so" "$@"
