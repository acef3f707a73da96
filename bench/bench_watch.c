/* File-system watching: weft_watch against a raw inotify loop (epoll +
 * read + parse, what inotifywait does) and libuv's uv_fs_event, all with
 * one watch on one directory and the same kernel mask (weft's: create,
 * delete, modify, attrib, moves, delete-self), so the kernel does the same
 * work for each.
 *
 * latency   a write to a file in the watched directory, then the event's
 *           delivery to the callback (the loop thread writes the next byte
 *           as soon as it has the event, so the loop is never asleep):
 *           median and p99 in µs, over LAT_N writes. The per-event path.
 * wake      the same, but another thread writes and then waits (eventfd)
 *           until the callback has the event: the loop sleeps in the
 *           kernel before each write, and every sample includes waking
 *           it, as when another process changes the file.
 * burst     BURST_N files created as fast as one other thread can (open
 *           O_CREAT + close), watched as it happens: events/s from the
 *           first creation to the last event delivered, and the loop
 *           thread's CPU time per event (ns). Every creation must arrive
 *           as its own event. A run in which the kernel's queue
 *           overflowed (the loop thread was preempted long enough on a
 *           loaded machine; any impl) is dropped from the medians with a
 *           note, the JSON's "runs" counting the rest; an event lost
 *           without an overflow event is a failure (libuv, which has no
 *           overflow event, has its run dropped as "lost without a
 *           report").
 *           The files are removed between runs, untimed. This is bound
 *           by how fast one thread creates files; so is the next, not:
 * drain     the same BURST_N creations made in batches (half the kernel's
 *           queue, max_queued_events) while the loop does not read, then
 *           only the delivery of each batch is timed: events/s of the
 *           watch's own work (read, parse, dispatch), and the loop
 *           thread's CPU time per event over those deliveries (ns): on a
 *           shared machine a preempted 4 ms batch inflates the wall time,
 *           not this.
 * The directory is on /dev/shm (tmpfs) when there is one, else /tmp: the
 * disk would measure the file system, not the watch. BENCH_QUICK=1 shrinks
 * the counts. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define KMASK                                                                  \
  (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM |             \
   IN_MOVED_TO | IN_DELETE_SELF)

static char dir[96];
static char file[128];
static size_t lat_n, burst_n;

/* ---- shared ------------------------------------------------------------- */

static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a run measures (the impls' arg). */
enum { LATENCY, BURST, WAKE };
static int mode_burst = BURST, mode_wake = WAKE; /* bench_impl.arg */
static int run_mode(const void *arg) { return arg ? *(const int *)arg : 0; }

/* latency: samples in µs, the write fd, the next write's start (written
 * by the writer thread in WAKE runs, hence the atomics) */
static double *lat;
static size_t lat_done;
static int lat_fd;
static double lat_t0;
static bool lat_wake;
static int lat_ack = -1; /* WAKE: the loop tells the writer "delivered" */
static pthread_t lat_thread;

static void lat_write(void) {
  double t = bench_wall();
  __atomic_store(&lat_t0, &t, __ATOMIC_RELEASE);
  if (pwrite(lat_fd, "x", 1, 0) != 1) bench_fail("pwrite: %s", strerror(errno));
}

/* WAKE: another thread writes, then sleeps until the loop has the event,
 * so every sample includes the sleeping loop's wake-up */
static void *lat_writer(void *arg) {
  (void)arg;
  for (size_t i = 0; i < lat_n; i++) {
    lat_write();
    eventfd_t one;
    if (eventfd_read(lat_ack, &one) != 0) bench_fail("eventfd_read");
  }
  return NULL;
}

/* one event arrived: false when the run is complete */
static bool lat_event(void) {
  double t0;
  __atomic_load(&lat_t0, &t0, __ATOMIC_ACQUIRE);
  lat[lat_done++] = (bench_wall() - t0) * 1e6;
  bool more = lat_done < lat_n;
  if (lat_wake) {
    if (eventfd_write(lat_ack, 1) != 0) bench_fail("eventfd_write");
  } else if (more) {
    lat_write();
  }
  return more;
}

/* Opens the file and makes the first write (or starts the writer). */
static void lat_start(bool wake) {
  lat_done = 0;
  lat_wake = wake;
  lat_fd = open(file, O_WRONLY | O_CLOEXEC);
  if (lat_fd < 0) bench_fail("open %s", file);
  if (!wake) {
    lat_write();
    return;
  }
  lat_ack = eventfd(0, EFD_CLOEXEC);
  if (lat_ack < 0) bench_fail("eventfd");
  if (pthread_create(&lat_thread, NULL, lat_writer, NULL) != 0)
    bench_fail("pthread_create");
}

static void lat_end(double *v) {
  if (lat_wake) {
    pthread_join(lat_thread, NULL);
    close(lat_ack);
    lat_ack = -1;
  }
  close(lat_fd);
  BENCH_CHECK(lat_done == lat_n, "latency: %zu of %zu events", lat_done, lat_n);
  double *s = malloc(lat_n * sizeof *s);
  memcpy(s, lat, lat_n * sizeof *s);
  v[0] = bench_median(s, lat_n);
  /* bench_median sorted s */
  v[1] = s[(size_t)((double)(lat_n - 1) * 0.99)];
  free(s);
}

/* burst: the creating thread and what the consumer counted */
static pthread_t burst_thread;
static size_t burst_seen, burst_overflow;
static bool burst_silent; /* libuv: the guard saw events missing */
static double burst_t0, burst_cpu0;

static void *burst_make(void *arg) {
  (void)arg;
  char p[160];
  for (size_t i = 0; i < burst_n; i++) {
    snprintf(p, sizeof p, "%s/b%zu", dir, i);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) bench_fail("create %s: %s", p, strerror(errno));
    close(fd);
  }
  return NULL;
}

static void burst_begin(void) {
  burst_seen = burst_overflow = 0;
  burst_silent = false;
  burst_cpu0 = thread_cpu();
  burst_t0 = bench_wall();
  if (pthread_create(&burst_thread, NULL, burst_make, NULL) != 0)
    bench_fail("pthread_create");
}

static void burst_end(double *v, const char *impl) {
  double t = bench_wall() - burst_t0, cpu = thread_cpu() - burst_cpu0;
  pthread_join(burst_thread, NULL);
  if (burst_overflow != 0 || burst_silent) {
    /* the loop thread was off the CPU long enough for the creating thread
     * to fill the kernel's queue (any impl, on a loaded machine): the rate
     * is not comparable, the run is not counted (the JSON's "runs" says
     * how many were); the loss itself was reported, or, for libuv, which
     * has no overflow event, seen missing by the guard */
    fprintf(stderr, " [%s: %s, run dropped]", impl,
            burst_overflow ? "queue overflow, reported"
                           : "events lost without a report");
    v[0] = v[1] = NAN;
  } else {
    BENCH_CHECK(burst_seen == burst_n, "%s: %zu of %zu events", impl,
                burst_seen, burst_n);
    v[0] = (double)burst_n / t;
    v[1] = cpu / (double)burst_n * 1e9;
  }
  /* untimed: empty the directory again */
  char p[160];
  for (size_t i = 0; i < burst_n; i++) {
    snprintf(p, sizeof p, "%s/b%zu", dir, i);
    unlink(p);
  }
}

/* drain: files b<i> made in batches of drain_b, each delivered in full
 * before the next is made */
static size_t drain_b, drain_target;
static double drain_time, drain_cpu; /* wall, loop-thread CPU (s) */

static void drain_make(size_t batch) {
  char p[160];
  for (size_t i = batch * drain_b; i < (batch + 1) * drain_b; i++) {
    snprintf(p, sizeof p, "%s/b%zu", dir, i);
    int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) bench_fail("create %s: %s", p, strerror(errno));
    close(fd);
  }
  drain_target += drain_b;
}

static void drain_end(double *v, const char *impl) {
  BENCH_CHECK(burst_overflow == 0, "%s: the queue overflowed", impl);
  BENCH_CHECK(burst_seen == drain_target, "%s: %zu of %zu events", impl,
              burst_seen, drain_target);
  v[0] = (double)drain_target / drain_time;
  v[1] = drain_cpu / (double)drain_target * 1e9;
  char p[160];
  for (size_t i = 0; i < drain_target; i++) {
    snprintf(p, sizeof p, "%s/b%zu", dir, i);
    unlink(p);
  }
}

static size_t drain_batches(void) { return burst_n / drain_b; }

/* a run that lost an event would wait forever: 5 s without one fails */
#define QUIET_MS 5000

/* ---- weft ---------------------------------------------------------------- */

/* The guard: a 100 ms timer that fails the run when no event came for
 * QUIET_MS. The callbacks only count (no clock read per event, which the
 * raw loop's epoll timeout does not cost either). */
#define GUARD_MS 100
static weft_timer w_guard;
static size_t w_events, w_events_seen;
static unsigned w_quiet;

static void w_guard_reset(void) {
  w_events_seen = w_events;
  w_quiet = 0;
}

static void w_guard_cb(weft_timer *t) {
  (void)t;
  if (w_events != w_events_seen)
    w_guard_reset();
  else if (++w_quiet * GUARD_MS >= QUIET_MS)
    bench_fail("weft: no event for %d ms (%zu seen)", QUIET_MS, burst_seen);
}

static void w_lat_cb(weft_watch *w, int status, const weft_watch_event *ev,
                     void *arg) {
  (void)arg;
  w_events++;
  if (status != 0 || ev->kind != WEFT_WATCH_MODIFY) return;
  if (!lat_event()) weft_close(&w->base, NULL);
}

static void w_burst_cb(weft_watch *w, int status, const weft_watch_event *ev,
                       void *arg) {
  (void)arg;
  w_events++;
  if (status != 0) return;
  if (ev->kind == WEFT_WATCH_OVERFLOW) {
    burst_overflow++;
    weft_close(&w->base, NULL);
  } else if (ev->kind == WEFT_WATCH_CREATE && ++burst_seen == burst_n) {
    weft_close(&w->base, NULL);
  }
}

static void w_drain_cb(weft_watch *w, int status, const weft_watch_event *ev,
                       void *arg) {
  (void)arg;
  w_events++;
  if (status != 0) return;
  if (ev->kind == WEFT_WATCH_OVERFLOW) burst_overflow++;
  if (ev->kind == WEFT_WATCH_CREATE) burst_seen++;
  if (burst_seen == drain_target || burst_overflow)
    weft_loop_stop(weft_handle_loop(&w->base));
}

static void weft_drain(double *v, void *arg) {
  (void)arg;
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) bench_fail("weft_loop_new");
  weft_watch w;
  weft_watch_init(loop, &w);
  int err = weft_watch_start(&w, dir, 0, 0, w_drain_cb, NULL);
  if (err != 0) bench_fail("weft_watch_start: %s", weft_strerror(err));
  weft_timer_init(loop, &w_guard);
  weft_timer_start(&w_guard, w_guard_cb, GUARD_MS, GUARD_MS);
  burst_seen = burst_overflow = drain_target = 0;
  drain_time = drain_cpu = 0;
  for (size_t b = 0; b < drain_batches() && !burst_overflow; b++) {
    drain_make(b);
    w_guard_reset();
    double t0 = bench_wall(), c0 = thread_cpu();
    weft_loop_run(loop, WEFT_RUN_DEFAULT);
    drain_time += bench_wall() - t0;
    drain_cpu += thread_cpu() - c0;
  }
  drain_end(v, "weft");
  weft_close(&w.base, NULL);
  weft_close(&w_guard.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (weft_loop_free(loop) != 0) bench_fail("weft_loop_free");
}

static void weft_run(double *v, void *arg) {
  int mode = run_mode(arg);
  bool burst = mode == BURST;
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) bench_fail("weft_loop_new");
  weft_watch w;
  weft_watch_init(loop, &w);
  int err =
      weft_watch_start(&w, dir, 0, 0, burst ? w_burst_cb : w_lat_cb, NULL);
  if (err != 0) bench_fail("weft_watch_start: %s", weft_strerror(err));
  weft_timer_init(loop, &w_guard);
  weft_timer_start(&w_guard, w_guard_cb, GUARD_MS, GUARD_MS);
  weft_unref(&w_guard.base);
  w_guard_reset();
  if (burst)
    burst_begin();
  else
    lat_start(mode == WAKE);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (burst)
    burst_end(v, "weft");
  else
    lat_end(v);
  weft_close(&w_guard.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (weft_loop_free(loop) != 0) bench_fail("weft_loop_free");
}

/* ---- raw inotify --------------------------------------------------------- */

static void raw_run(double *v, void *arg) {
  int mode = run_mode(arg);
  bool burst = mode == BURST;
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (in < 0 || ep < 0) bench_fail("inotify/epoll: %s", strerror(errno));
  if (inotify_add_watch(in, dir, KMASK) < 0) bench_fail("add_watch");
  struct epoll_event ee = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, in, &ee);
  static char buf[64 * 1024] __attribute__((aligned(8)));
  if (burst)
    burst_begin();
  else
    lat_start(mode == WAKE);
  bool more = true;
  while (more) {
    struct epoll_event out;
    int n = epoll_wait(ep, &out, 1, QUIET_MS);
    if (n == 0) bench_fail("raw: no event for %d ms", QUIET_MS);
    if (n < 0) continue;
    ssize_t len;
    while (more && (len = read(in, buf, sizeof buf)) > 0) {
      for (char *p = buf; more && p < buf + len;) {
        struct inotify_event *e = (void *)p;
        p += sizeof *e + e->len;
        if (e->mask & IN_Q_OVERFLOW) {
          burst_overflow++;
          more = false;
        } else if (burst && (e->mask & IN_CREATE)) {
          more = ++burst_seen < burst_n;
        } else if (!burst && (e->mask & IN_MODIFY)) {
          more = lat_event();
        }
      }
    }
  }
  if (burst)
    burst_end(v, "raw");
  else
    lat_end(v);
  close(ep);
  close(in);
}

static void raw_drain(double *v, void *arg) {
  (void)arg;
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (in < 0 || ep < 0) bench_fail("inotify/epoll: %s", strerror(errno));
  if (inotify_add_watch(in, dir, KMASK) < 0) bench_fail("add_watch");
  struct epoll_event ee = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, in, &ee);
  static char buf[64 * 1024] __attribute__((aligned(8)));
  burst_seen = burst_overflow = drain_target = 0;
  drain_time = drain_cpu = 0;
  for (size_t b = 0; b < drain_batches() && !burst_overflow; b++) {
    drain_make(b);
    double t0 = bench_wall(), c0 = thread_cpu();
    while (burst_seen < drain_target && !burst_overflow) {
      struct epoll_event out;
      int n = epoll_wait(ep, &out, 1, QUIET_MS);
      if (n == 0) bench_fail("raw: no event for %d ms", QUIET_MS);
      ssize_t len;
      while (n > 0 && (len = read(in, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + len;) {
          struct inotify_event *e = (void *)p;
          p += sizeof *e + e->len;
          if (e->mask & IN_Q_OVERFLOW)
            burst_overflow++;
          else if (e->mask & IN_CREATE)
            burst_seen++;
        }
      }
    }
    drain_time += bench_wall() - t0;
    drain_cpu += thread_cpu() - c0;
  }
  drain_end(v, "raw");
  close(ep);
  close(in);
}

/* ---- libuv --------------------------------------------------------------- */

static void u_close_cb(uv_handle_t *h) { (void)h; }

static void u_lat_cb(uv_fs_event_t *h, const char *name, int events,
                     int status) {
  (void)name;
  if (status != 0 || !(events & UV_CHANGE)) return;
  if (!lat_event()) uv_close((uv_handle_t *)h, u_close_cb);
}

/* burst: libuv drops IN_Q_OVERFLOW; a guard sees the run stall */
static uv_timer_t u_guard;
static size_t u_seen_at;
static unsigned u_quiet;

static void u_burst_done(uv_fs_event_t *h) {
  uv_close((uv_handle_t *)h, u_close_cb);
  uv_close((uv_handle_t *)&u_guard, u_close_cb);
}

static void u_guard_cb(uv_timer_t *t) {
  if (burst_seen != u_seen_at) {
    u_seen_at = burst_seen;
    u_quiet = 0;
  } else if (++u_quiet * GUARD_MS >= QUIET_MS) {
    burst_silent = true;
    u_burst_done(t->data);
  }
}

static void u_burst_cb(uv_fs_event_t *h, const char *name, int events,
                       int status) {
  (void)name;
  if (status != 0) return;
  /* libuv says UV_RENAME for a creation (and for everything but changes) */
  if ((events & UV_RENAME) && ++burst_seen == burst_n) u_burst_done(h);
}

static void u_drain_cb(uv_fs_event_t *h, const char *name, int events,
                       int status) {
  (void)name;
  if (status == 0 && (events & UV_RENAME)) burst_seen++;
  if (burst_seen == drain_target) uv_stop(h->loop);
}

static void uv_drain(double *v, void *arg) {
  (void)arg;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_fs_event_t h;
  uv_fs_event_init(&loop, &h);
  int err = uv_fs_event_start(&h, u_drain_cb, dir, 0);
  if (err != 0) bench_fail("uv_fs_event_start: %s", uv_strerror(err));
  burst_seen = burst_overflow = drain_target = 0;
  drain_time = drain_cpu = 0;
  for (size_t b = 0; b < drain_batches(); b++) {
    drain_make(b);
    double t0 = bench_wall(), c0 = thread_cpu();
    uv_run(&loop, UV_RUN_DEFAULT);
    drain_time += bench_wall() - t0;
    drain_cpu += thread_cpu() - c0;
  }
  /* libuv has no overflow event: a loss shows as a short count (or a
   * hang, which the harness's own runs would show) */
  drain_end(v, "libuv");
  uv_close((uv_handle_t *)&h, u_close_cb);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
}

static void uv_run_bench(double *v, void *arg) {
  int mode = run_mode(arg);
  bool burst = mode == BURST;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_fs_event_t h;
  uv_fs_event_init(&loop, &h);
  int err = uv_fs_event_start(&h, burst ? u_burst_cb : u_lat_cb, dir, 0);
  if (err != 0) bench_fail("uv_fs_event_start: %s", uv_strerror(err));
  if (burst) {
    uv_timer_init(&loop, &u_guard);
    u_guard.data = &h;
    u_seen_at = 0;
    u_quiet = 0;
    uv_timer_start(&u_guard, u_guard_cb, GUARD_MS, GUARD_MS);
    burst_begin();
  } else {
    lat_start(mode == WAKE);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  if (burst)
    burst_end(v, "libuv");
  else
    lat_end(v);
  uv_loop_close(&loop);
}

/* ---- main ---------------------------------------------------------------- */

static void cleanup(void) {
  unlink(file);
  rmdir(dir);
}

int main(int argc, char **argv) {
  lat_n = bench_n(20000, 1000);
  burst_n = bench_n(100000, 5000);
  struct stat st;
  const char *base =
      stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
  snprintf(dir, sizeof dir, "%s/weft-bench-watch-XXXXXX", base);
  if (mkdtemp(dir) == NULL) bench_fail("mkdtemp: %s", strerror(errno));
  snprintf(file, sizeof file, "%s/target", dir);
  int fd = open(file, O_CREAT | O_WRONLY, 0644);
  if (fd < 0) bench_fail("create %s", file);
  close(fd);
  atexit(cleanup);
  lat = calloc(lat_n, sizeof *lat);
  int queued = 16384;
  FILE *q = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
  if (q != NULL) {
    if (fscanf(q, "%d", &queued) != 1) queued = 16384;
    fclose(q);
  }
  drain_b = (size_t)queued / 2;
  if (drain_b > burst_n) drain_b = burst_n;
  if (drain_b == 0) drain_b = 1;
  fprintf(stderr, "bench_watch: in %s, %zu writes, %zu creations\n", dir, lat_n,
          burst_n);

  static const bench_metric lm[] = {{"watch_latency_median", "us", false},
                                    {"watch_latency_p99", "us", false}};
  static const bench_impl li[] = {{"weft", weft_run, NULL},
                                  {"raw_inotify", raw_run, NULL},
                                  {"libuv", uv_run_bench, NULL}};
  static const bench_metric bm[] = {
      {"watch_burst_100k", "events/s", true},
      {"watch_burst_100k_cpu", "ns/event", false}};
  static const bench_impl bi[] = {{"weft", weft_run, &mode_burst},
                                  {"raw_inotify", raw_run, &mode_burst},
                                  {"libuv", uv_run_bench, &mode_burst}};
  static const bench_metric wm[] = {{"watch_latency_wake_median", "us", false},
                                    {"watch_latency_wake_p99", "us", false}};
  static const bench_impl wi[] = {{"weft", weft_run, &mode_wake},
                                  {"raw_inotify", raw_run, &mode_wake},
                                  {"libuv", uv_run_bench, &mode_wake}};
  static const bench_metric dm[] = {
      {"watch_drain_100k", "events/s", true},
      {"watch_drain_100k_cpu", "ns/event", false}};
  static const bench_impl di[] = {{"weft", weft_drain, NULL},
                                  {"raw_inotify", raw_drain, NULL},
                                  {"libuv", uv_drain, NULL}};
  const bench_group g[] = {{"latency", lm, BENCH_LEN(lm), li, BENCH_LEN(li)},
                           {"wake", wm, BENCH_LEN(wm), wi, BENCH_LEN(wi)},
                           {"burst", bm, BENCH_LEN(bm), bi, BENCH_LEN(bi)},
                           {"drain", dm, BENCH_LEN(dm), di, BENCH_LEN(di)}};
  int rc = bench_main(argc, argv, g, BENCH_LEN(g));
  free(lat);
  return rc;
}
