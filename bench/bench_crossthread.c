/* Cross-thread hand-offs to a loop: weft's weft_call_soon_threadsafe()
 * against libuv's uv_async and raw libev's ev_async, each used as an expert
 * user of that library would.
 *
 * pingpong  one thread sends a ping to the loop and waits for the pong
 *           before sending the next (the shape of libuv's async1 test). The
 *           thread side is the same for every impl: it blocks reading an
 *           eventfd, which the loop's callback writes. Only the loop side
 *           differs: weft_call_soon_threadsafe() (the loop kept alive by
 *           weft_loop_ref()), uv_async_send(), ev_async_send().
 *           Where the two threads run decides the figure (a wake-up on the
 *           other, idle CPU costs several microseconds on a VM), so they are
 *           pinned: "2cpu" puts them on CPUs 0 and 1, "1cpu" both on CPU 0.
 *           Unpinned runs were bimodal (20k or 150k rt/s by placement).
 * flood     two threads each post M callbacks as fast as they can; every
 *           one must run. weft: weft_call_soon_threadsafe(). libuv, libev:
 *           what a user of those writes, a mutex-protected queue of
 *           (function, argument) items plus one async watcher, woken when the
 *           queue goes from empty to non-empty, drained by swapping the
 *           buffer out under the lock.
 * Counts are verified exactly: every ping answered; per producer, every item
 * ran and the producer's end marker arrived after its last item. */
#include <ev.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define PRODUCERS 2

static size_t n_pings;      /* ping-pong round trips */
static size_t n_per_thread; /* flood items per producer */

/* ---- eventfd: the thread side's wait, identical for every impl ----------- */

static void efd_signal(int fd) {
  uint64_t one = 1;
  if (write(fd, &one, sizeof one) != sizeof one) bench_fail("eventfd write");
}

static void efd_wait(int fd) {
  uint64_t v;
  if (read(fd, &v, sizeof v) != sizeof v) bench_fail("eventfd read");
}

/* ---- ping-pong --------------------------------------------------------------
 */

typedef struct pingpong {
  int efd;
  size_t got; /* pings the loop has seen */
  double secs;
  void (*ping)(struct pingpong *);
  weft_loop *weft;
  uv_loop_t uv;
  uv_async_t uv_async;
  struct ev_loop *ev;
  ev_async ev_async;
} pingpong;

static void *pingpong_thread(void *arg) {
  pingpong *p = arg;
  double t0 = bench_wall();
  for (size_t i = 0; i < n_pings; i++) {
    p->ping(p);
    efd_wait(p->efd);
  }
  p->secs = bench_wall() - t0;
  return NULL;
}

/* The loop side's answer; true after the last ping. */
static bool pong(pingpong *p) {
  p->got++;
  efd_signal(p->efd);
  return p->got == n_pings;
}

static void on_weft_ping(void *arg) {
  pingpong *p = arg;
  if (pong(p)) weft_loop_unref(p->weft);
}

static void weft_ping(pingpong *p) {
  if (weft_call_soon_threadsafe(p->weft, on_weft_ping, p) != 0)
    bench_fail("weft_call_soon_threadsafe");
}

static void on_uv_ping(uv_async_t *a) {
  if (pong(a->data)) uv_close((uv_handle_t *)a, NULL);
}

static void uv_ping(pingpong *p) { uv_async_send(&p->uv_async); }

static void on_ev_ping(struct ev_loop *loop, ev_async *w, int revents) {
  (void)revents;
  if (pong(w->data)) ev_async_stop(loop, w);
}

static void ev_ping(pingpong *p) { ev_async_send(p->ev, &p->ev_async); }

/* Where the loop (the calling thread) and the pinging thread run: on the
 * first two CPUs this process may use, or both on the first. */
typedef enum placement { SPLIT, SHARED } placement;

static const placement split = SPLIT, shared = SHARED;

static cpu_set_t one_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return set;
}

/* The n-th CPU (from 0) in `allowed`, or -1. */
static int nth_cpu(const cpu_set_t *allowed, int n) {
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    if (CPU_ISSET(cpu, allowed) && n-- == 0) return cpu;
  return -1;
}

/* Runs the loop until the thread's last ping is answered, the calling
 * thread pinned meanwhile. False (nothing run) if the placement needs a
 * second CPU that this process does not have. */
static bool pingpong_run(pingpong *p, placement where,
                         void (*run)(pingpong *)) {
  cpu_set_t saved;
  pthread_t self = pthread_self(), th;
  BENCH_CHECK(pthread_getaffinity_np(self, sizeof saved, &saved) == 0,
              "pthread_getaffinity_np");
  int loop_cpu = nth_cpu(&saved, 0);
  int thread_cpu = where == SPLIT ? nth_cpu(&saved, 1) : loop_cpu;
  if (thread_cpu < 0) return false;
  cpu_set_t loop_set = one_cpu(loop_cpu), thread_set = one_cpu(thread_cpu);
  BENCH_CHECK(pthread_setaffinity_np(self, sizeof loop_set, &loop_set) == 0,
              "cannot pin the loop thread to CPU %d", loop_cpu);
  p->efd = eventfd(0, EFD_CLOEXEC);
  BENCH_CHECK(p->efd >= 0, "eventfd");
  p->got = 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setaffinity_np(&attr, sizeof thread_set, &thread_set);
  BENCH_CHECK(pthread_create(&th, &attr, pingpong_thread, p) == 0, "thread");
  pthread_attr_destroy(&attr);
  run(p);
  pthread_join(th, NULL);
  pthread_setaffinity_np(self, sizeof saved, &saved);
  close(p->efd);
  BENCH_CHECK(p->got == n_pings, "%zu of %zu pings answered", p->got, n_pings);
  return true;
}

/* Round trips per second, or NaN (not reported) if it could not run. */
static double pingpong_rate(pingpong *p, void *arg, void (*run)(pingpong *)) {
  if (pingpong_run(p, *(const placement *)arg, run))
    return (double)n_pings / p->secs;
  bench_skip("needs 2 CPUs");
  return NAN;
}

static void pp_run_weft(pingpong *p) {
  weft_loop_run(p->weft, WEFT_RUN_DEFAULT);
}
static void pp_run_uv(pingpong *p) { uv_run(&p->uv, UV_RUN_DEFAULT); }
static void pp_run_ev(pingpong *p) { ev_run(p->ev, 0); }

static void run_weft_pingpong(double *v, void *arg) {
  pingpong p = {.ping = weft_ping};
  BENCH_CHECK(weft_loop_new(&p.weft, NULL) == 0, "weft_loop_new");
  weft_loop_ref(p.weft); /* until the last ping */
  v[0] = pingpong_rate(&p, arg, pp_run_weft);
  BENCH_CHECK(weft_loop_free(p.weft) == 0, "weft_loop_free");
  BENCH_CHECK(weft_alloc_live() == 0, "weft leaked");
}

static void run_uv_pingpong(double *v, void *arg) {
  pingpong p = {.ping = uv_ping};
  BENCH_CHECK(uv_loop_init(&p.uv) == 0, "uv_loop_init");
  BENCH_CHECK(uv_async_init(&p.uv, &p.uv_async, on_uv_ping) == 0, "async");
  p.uv_async.data = &p;
  v[0] = pingpong_rate(&p, arg, pp_run_uv);
  if (!uv_is_closing((uv_handle_t *)&p.uv_async)) { /* skipped */
    uv_close((uv_handle_t *)&p.uv_async, NULL);
    uv_run(&p.uv, UV_RUN_DEFAULT);
  }
  BENCH_CHECK(uv_loop_close(&p.uv) == 0, "uv_loop_close");
}

static void run_ev_pingpong(double *v, void *arg) {
  pingpong p = {.ping = ev_ping, .ev = ev_loop_new(EVFLAG_AUTO)};
  BENCH_CHECK(p.ev != NULL, "ev_loop_new");
  ev_async_init(&p.ev_async, on_ev_ping);
  p.ev_async.data = &p;
  ev_async_start(p.ev, &p.ev_async);
  v[0] = pingpong_rate(&p, arg, pp_run_ev);
  ev_loop_destroy(p.ev);
}

/* ---- the peers' queue: mutex, vector, swap ---------------------------------
 */

typedef struct item {
  void (*fn)(void *);
  void *arg;
} item;

typedef struct mqueue {
  pthread_mutex_t lock;
  item *buf, *spare;
  size_t len, cap, spare_cap;
} mqueue;

/* Appends; true if the queue was empty, i.e. the caller must wake the loop
 * (it has seen every earlier item, or will, before it sleeps again). */
static bool mq_push(mqueue *q, item it) {
  pthread_mutex_lock(&q->lock);
  if (q->len == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 64;
    q->buf = realloc(q->buf, q->cap * sizeof *q->buf);
    if (q->buf == NULL) bench_fail("out of memory");
  }
  q->buf[q->len++] = it;
  bool wake = q->len == 1;
  pthread_mutex_unlock(&q->lock);
  return wake;
}

/* Swaps the batch out under the lock, runs it outside. */
static void mq_drain(mqueue *q) {
  pthread_mutex_lock(&q->lock);
  item *batch = q->buf;
  size_t n = q->len, cap = q->cap;
  q->buf = q->spare;
  q->cap = q->spare_cap;
  q->len = 0;
  pthread_mutex_unlock(&q->lock);
  for (size_t i = 0; i < n; i++)
    batch[i].fn(batch[i].arg);
  pthread_mutex_lock(&q->lock);
  q->spare = batch;
  q->spare_cap = cap;
  pthread_mutex_unlock(&q->lock);
}

/* ---- flood
 * -------------------------------------------------------------------- */

typedef struct flood flood;

typedef struct producer {
  flood *f;
  size_t ran; /* items run, on the loop */
  bool done;  /* end marker seen, on the loop */
} producer;

struct flood {
  producer prod[PRODUCERS];
  size_t done;
  pthread_barrier_t go;
  void (*post)(flood *, void (*)(void *), void *);
  void (*finish)(flood *); /* on the loop, after the last end marker */
  weft_loop *weft;
  uv_loop_t uv;
  uv_async_t uv_async;
  struct ev_loop *ev;
  ev_async ev_async;
  mqueue q;
};

static void on_item(void *arg) { ((producer *)arg)->ran++; }

static void on_end(void *arg) {
  producer *p = arg;
  BENCH_CHECK(p->ran == n_per_thread, "end marker after %zu of %zu items",
              p->ran, n_per_thread);
  p->done = true;
  if (++p->f->done == PRODUCERS) p->f->finish(p->f);
}

static void *flood_thread(void *arg) {
  producer *p = arg;
  flood *f = p->f;
  pthread_barrier_wait(&f->go);
  for (size_t i = 0; i < n_per_thread; i++)
    f->post(f, on_item, p);
  f->post(f, on_end, p);
  return NULL;
}

static void weft_post(flood *f, void (*fn)(void *), void *arg) {
  if (weft_call_soon_threadsafe(f->weft, fn, arg) != 0)
    bench_fail("weft_call_soon_threadsafe");
}
static void weft_finish(flood *f) { weft_loop_unref(f->weft); }

static void uv_post(flood *f, void (*fn)(void *), void *arg) {
  if (mq_push(&f->q, (item){fn, arg})) uv_async_send(&f->uv_async);
}
static void on_uv_flood(uv_async_t *a) { mq_drain(&((flood *)a->data)->q); }
static void uv_finish(flood *f) { uv_close((uv_handle_t *)&f->uv_async, NULL); }

static void ev_post(flood *f, void (*fn)(void *), void *arg) {
  if (mq_push(&f->q, (item){fn, arg})) ev_async_send(f->ev, &f->ev_async);
}
static void on_ev_flood(struct ev_loop *loop, ev_async *w, int revents) {
  (void)loop;
  (void)revents;
  mq_drain(&((flood *)w->data)->q);
}
static void ev_finish(flood *f) { ev_async_stop(f->ev, &f->ev_async); }

/* Starts the producers, runs the loop until both end markers ran, and
 * stores the throughput in *v. */
static void flood_run(flood *f, double *v, void (*run)(flood *)) {
  pthread_t th[PRODUCERS];
  pthread_mutex_init(&f->q.lock, NULL);
  pthread_barrier_init(&f->go, NULL, PRODUCERS + 1);
  for (int i = 0; i < PRODUCERS; i++) {
    f->prod[i] = (producer){.f = f};
    BENCH_CHECK(pthread_create(&th[i], NULL, flood_thread, &f->prod[i]) == 0,
                "thread");
  }
  pthread_barrier_wait(&f->go);
  double t0 = bench_wall();
  run(f);
  v[0] = (double)(PRODUCERS * n_per_thread) / (bench_wall() - t0);
  for (int i = 0; i < PRODUCERS; i++) {
    pthread_join(th[i], NULL);
    BENCH_CHECK(f->prod[i].done, "producer %d not finished", i);
  }
  pthread_barrier_destroy(&f->go);
  pthread_mutex_destroy(&f->q.lock);
  free(f->q.buf);
  free(f->q.spare);
}

static void fl_run_weft(flood *f) { weft_loop_run(f->weft, WEFT_RUN_DEFAULT); }
static void fl_run_uv(flood *f) { uv_run(&f->uv, UV_RUN_DEFAULT); }
static void fl_run_ev(flood *f) { ev_run(f->ev, 0); }

static void run_weft_flood(double *v, void *arg) {
  (void)arg;
  flood *f = calloc(1, sizeof *f);
  BENCH_CHECK(f != NULL, "out of memory");
  f->post = weft_post;
  f->finish = weft_finish;
  BENCH_CHECK(weft_loop_new(&f->weft, NULL) == 0, "weft_loop_new");
  weft_loop_ref(f->weft); /* until both producers are done */
  flood_run(f, v, fl_run_weft);
  BENCH_CHECK(weft_loop_free(f->weft) == 0, "weft_loop_free");
  BENCH_CHECK(weft_alloc_live() == 0, "weft leaked");
  free(f);
}

static void run_uv_flood(double *v, void *arg) {
  (void)arg;
  flood *f = calloc(1, sizeof *f);
  BENCH_CHECK(f != NULL, "out of memory");
  f->post = uv_post;
  f->finish = uv_finish;
  BENCH_CHECK(uv_loop_init(&f->uv) == 0, "uv_loop_init");
  BENCH_CHECK(uv_async_init(&f->uv, &f->uv_async, on_uv_flood) == 0, "async");
  f->uv_async.data = f;
  flood_run(f, v, fl_run_uv);
  BENCH_CHECK(uv_loop_close(&f->uv) == 0, "uv_loop_close");
  free(f);
}

static void run_ev_flood(double *v, void *arg) {
  (void)arg;
  flood *f = calloc(1, sizeof *f);
  BENCH_CHECK(f != NULL, "out of memory");
  f->post = ev_post;
  f->finish = ev_finish;
  f->ev = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(f->ev != NULL, "ev_loop_new");
  ev_async_init(&f->ev_async, on_ev_flood);
  f->ev_async.data = f;
  ev_async_start(f->ev, &f->ev_async);
  flood_run(f, v, fl_run_ev);
  ev_loop_destroy(f->ev);
  free(f);
}

/* ---- groups
 * ------------------------------------------------------------------ */

int main(int argc, char **argv) {
  n_pings = bench_n(20000, 2000);
  n_per_thread = bench_n(1000000, 100000);
  static char pp2_name[64], pp1_name[64], fl_name[64];
  const char *pp_size = bench_quick() ? "2k" : "20k";
  snprintf(pp2_name, sizeof pp2_name, "crossthread_pingpong_%s_2cpu", pp_size);
  snprintf(pp1_name, sizeof pp1_name, "crossthread_pingpong_%s_1cpu", pp_size);
  snprintf(fl_name, sizeof fl_name, "crossthread_flood_2x%s",
           bench_quick() ? "100k" : "1m");
  const bench_metric pp2_m[] = {{pp2_name, "rt/s", true}};
  const bench_metric pp1_m[] = {{pp1_name, "rt/s", true}};
  const bench_metric fl_m[] = {{fl_name, "ops/s", true}};
  void *two = (void *)&split, *one = (void *)&shared;
  const bench_impl pp2_i[] = {{"weft", run_weft_pingpong, two},
                              {"libuv", run_uv_pingpong, two},
                              {"libev", run_ev_pingpong, two}};
  const bench_impl pp1_i[] = {{"weft", run_weft_pingpong, one},
                              {"libuv", run_uv_pingpong, one},
                              {"libev", run_ev_pingpong, one}};
  const bench_impl fl_i[] = {{"weft", run_weft_flood, NULL},
                             {"libuv", run_uv_flood, NULL},
                             {"libev", run_ev_flood, NULL}};
  const bench_group groups[] = {
      {"pingpong_2cpu", pp2_m, 1, pp2_i, BENCH_LEN(pp2_i)},
      {"pingpong_1cpu", pp1_m, 1, pp1_i, BENCH_LEN(pp1_i)},
      {"flood", fl_m, 1, fl_i, BENCH_LEN(fl_i)},
  };
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
