/* Threads that take from the loop: weft_future_wait and
 * weft_queue_get_threadsafe, each against what a C programmer writes
 * without weft. Uses only include/.
 *
 * wait      a thread waits, N times, for a future the loop has settled:
 *           each wait is one post to the loop and one wake of the thread
 *           (weft_future_wait on a settled future). Baseline in the same
 *           program: the eventfd ping-pong (the thread posts a callback with
 *           weft_call_soon_threadsafe, the loop's callback writes an
 *           eventfd the thread reads).
 * wait-pend the same with a pending future each round: the thread posts a
 *           ping that settles it and waits (two posts, one wake).
 * queue     4 producer threads put N items (put_threadsafe), 4 consumer
 *           threads take them (get_threadsafe), queue of 64, a loop
 *           running (idle: no loop-side waiter). Baseline: a bounded ring
 *           of 64 under one mutex with two condition variables (not empty,
 *           not full), the same 4 + 4, the same items, sums checked.
 * Every figure is checked: each wait returned 0, each item was taken once
 * (sums). Prints rates, medians of BENCH_RUNS runs (default 5) in
 * which the two sides alternate, swapping which goes first. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

static void die(const char *what) {
  fprintf(stderr, "bench_threads: %s\n", what);
  exit(1);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define MAX_RUNS 15

/* The median of v[0..n) (n odd). */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return v[n / 2];
}

/* ---- wait round trips -----------------------------------------------------
 */

typedef struct rt {
  weft_loop *loop;
  weft_future *f;              /* settled (wait) or the current pending one */
  _Atomic(weft_future *) next; /* wait-pend: the next round's future */
  int efd;
  size_t n;
  int mode; /* 0 eventfd ping-pong, 1 wait (settled), 2 wait (pending) */
  double secs;
} rt;

static void stop_cb(void *arg) {
  rt *r = arg;
  weft_loop_unref(r->loop);
  weft_loop_stop(r->loop);
}

static void pong_cb(void *arg) {
  rt *r = arg;
  uint64_t one = 1;
  if (write(r->efd, &one, sizeof one) != sizeof one) die("eventfd write");
}

/* wait-pend: settle this round's future, after making the next one */
static void settle_cb(void *arg) {
  rt *r = arg;
  weft_future *f = r->f, *nf;
  if (weft_future_new(r->loop, &nf) != 0) die("future_new");
  r->f = nf;
  atomic_store(&r->next, weft_future_ref(nf)); /* the thread's reference */
  weft_future_resolve_i64(f, 1);
  weft_future_unref(f);
}

static void *rt_thread(void *arg) {
  rt *r = arg;
  double t0 = now_s();
  for (size_t i = 0; i < r->n; i++) {
    if (r->mode == 0) {
      if (weft_call_soon_threadsafe(r->loop, pong_cb, r) != 0) die("post");
      uint64_t v;
      if (read(r->efd, &v, sizeof v) != sizeof v) die("eventfd read");
    } else if (r->mode == 1) {
      if (weft_future_wait(r->f, WEFT_WAIT_FOREVER) != 0) die("wait");
    } else {
      weft_future *f = atomic_load(&r->next);
      if (weft_call_soon_threadsafe(r->loop, settle_cb, r) != 0) die("post");
      if (weft_future_wait(f, WEFT_WAIT_FOREVER) != 0) die("wait-pend");
      if (weft_future_value_i64(f) != 1) die("wait-pend value");
      if (weft_future_unref_threadsafe(f) != 0) die("unref");
    }
  }
  r->secs = now_s() - t0;
  if (weft_call_soon_threadsafe(r->loop, stop_cb, r) != 0) die("post stop");
  return NULL;
}

static double rt_run(int mode, size_t n) {
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) die("loop_new");
  rt r = {.loop = loop, .n = n, .mode = mode};
  r.efd = eventfd(0, EFD_CLOEXEC);
  if (r.efd < 0) die("eventfd");
  if (weft_future_new(loop, &r.f) != 0) die("future_new");
  if (mode == 1) {
    weft_future_resolve_i64(r.f, 1);
  } else if (mode == 2) {
    atomic_store(&r.next, weft_future_ref(r.f));
  }
  weft_loop_ref(loop);
  pthread_t t;
  if (pthread_create(&t, NULL, rt_thread, &r) != 0) die("pthread_create");
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  pthread_join(t, NULL);
  weft_loop_run(loop, WEFT_RUN_NOWAIT); /* the last unref */
  weft_future_unref(r.f);
  while (weft_loop_free(loop) == -EBUSY)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  close(r.efd);
  return (double)n / r.secs;
}

/* ---- queues: 4 producers, 4 consumers ------------------------------------ */

#define QP 4
#define QC 4
#define QCAP 64

typedef struct mq { /* the baseline: mutex + two condition variables */
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  void *ring[QCAP];
  size_t head, len;
} mq;

static void mq_put(mq *q, void *item) {
  pthread_mutex_lock(&q->mu);
  while (q->len == QCAP)
    pthread_cond_wait(&q->not_full, &q->mu);
  q->ring[(q->head + q->len) % QCAP] = item;
  q->len++;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->mu);
}

static void *mq_get(mq *q) {
  pthread_mutex_lock(&q->mu);
  while (q->len == 0)
    pthread_cond_wait(&q->not_empty, &q->mu);
  void *item = q->ring[q->head];
  q->head = (q->head + 1) % QCAP;
  q->len--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->mu);
  return item;
}

typedef struct qarg {
  mq *m;
  weft_queue *w;
  weft_loop *loop;
  size_t n;
  long long sum;
  atomic_int
      *left; /* consumers still running (weft: the last stops the loop) */
} qarg;

static void qstop_cb(void *arg) {
  weft_loop *loop = arg;
  weft_loop_unref(loop);
  weft_loop_stop(loop);
}

static void *producer(void *arg) {
  qarg *a = arg;
  for (size_t i = 1; i <= a->n; i++) {
    if (a->w != NULL) {
      if (weft_queue_put_threadsafe(a->w, (void *)(uintptr_t)i) != 0)
        die("put_threadsafe");
    } else {
      mq_put(a->m, (void *)(uintptr_t)i);
    }
  }
  return NULL;
}

static void *consumer(void *arg) {
  qarg *a = arg;
  for (size_t i = 0; i < a->n; i++) {
    void *item;
    if (a->w != NULL) {
      if (weft_queue_get_threadsafe(a->w, &item, WEFT_WAIT_FOREVER) != 0)
        die("get_threadsafe");
    } else {
      item = mq_get(a->m);
    }
    a->sum += (long long)(uintptr_t)item;
  }
  if (a->w != NULL && atomic_fetch_sub(a->left, 1) == 1 &&
      weft_call_soon_threadsafe(a->loop, qstop_cb, a->loop) != 0)
    die("post stop");
  return NULL;
}

static double q_run(bool weft, size_t per) {
  mq m;
  memset(&m, 0, sizeof m);
  pthread_mutex_init(&m.mu, NULL);
  pthread_cond_init(&m.not_empty, NULL);
  pthread_cond_init(&m.not_full, NULL);
  weft_loop *loop = NULL;
  weft_queue *w = NULL;
  atomic_int left = QC;
  if (weft) {
    if (weft_loop_new(&loop, NULL) != 0) die("loop_new");
    if (weft_queue_new(loop, QCAP, NULL, &w) != 0) die("queue_new");
    weft_loop_ref(loop);
  }
  qarg p[QP], c[QC];
  pthread_t tp[QP], tc[QC];
  double t0 = now_s();
  for (int i = 0; i < QC; i++) {
    c[i] = (qarg){
        .m = &m, .w = w, .loop = loop, .n = per * QP / QC, .left = &left};
    if (pthread_create(&tc[i], NULL, consumer, &c[i]) != 0)
      die("pthread_create");
  }
  for (int i = 0; i < QP; i++) {
    p[i] = (qarg){.m = &m, .w = w, .loop = loop, .n = per};
    if (pthread_create(&tp[i], NULL, producer, &p[i]) != 0)
      die("pthread_create");
  }
  if (weft) weft_loop_run(loop, WEFT_RUN_DEFAULT);
  long long sum = 0;
  for (int i = 0; i < QP; i++)
    pthread_join(tp[i], NULL);
  for (int i = 0; i < QC; i++) {
    pthread_join(tc[i], NULL);
    sum += c[i].sum;
  }
  double secs = now_s() - t0;
  if (sum != (long long)QP * (long long)per * (long long)(per + 1) / 2)
    die("queue sum");
  if (weft) {
    while (weft_queue_free(w) == -EBUSY)
      weft_loop_run(loop, WEFT_RUN_NOWAIT);
    while (weft_loop_free(loop) == -EBUSY)
      weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  pthread_mutex_destroy(&m.mu);
  pthread_cond_destroy(&m.not_empty);
  pthread_cond_destroy(&m.not_full);
  return (double)(QP * per) / secs;
}

/* bench_threads [N [PER [wait|queue]]]: N round trips, PER items per
 * producer, one part or both; BENCH_RUNS repetitions (odd, default 5),
 * weft and its baseline alternating, which goes first swapping each time. */
int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000;
  size_t per = argc > 2 ? strtoul(argv[2], NULL, 10) : 50000;
  const char *only = argc > 3 ? argv[3] : "";
  bool do_wait = strcmp(only, "queue") != 0;
  bool do_queue = strcmp(only, "wait") != 0;
  const char *env = getenv("BENCH_RUNS");
  int runs = env != NULL ? atoi(env) : 5;
  if (runs < 1) runs = 1;
  if (runs > MAX_RUNS) runs = MAX_RUNS;
  if (runs % 2 == 0) runs++;
  double efd[MAX_RUNS], wt[MAX_RUNS], wp[MAX_RUNS], qw[MAX_RUNS], qm[MAX_RUNS];
  for (int k = 0; k < runs; k++) {
    bool weft_first = k % 2 == 1;
    if (do_wait) {
      if (weft_first) {
        wt[k] = rt_run(1, n);
        wp[k] = rt_run(2, n);
        efd[k] = rt_run(0, n);
      } else {
        efd[k] = rt_run(0, n);
        wt[k] = rt_run(1, n);
        wp[k] = rt_run(2, n);
      }
    }
    if (do_queue) {
      if (weft_first) {
        qw[k] = q_run(true, per);
        qm[k] = q_run(false, per);
      } else {
        qm[k] = q_run(false, per);
        qw[k] = q_run(true, per);
      }
    }
  }
  if (do_wait) {
    double e = median(efd, runs), w = median(wt, runs), p = median(wp, runs);
    printf("wait round trip (settled)   %10.0f rt/s   eventfd ping-pong "
           "%10.0f rt/s   ratio %.2f\n",
           w, e, w / e);
    printf("wait round trip (pending)   %10.0f rt/s   eventfd ping-pong "
           "%10.0f rt/s   ratio %.2f\n",
           p, e, p / e);
  }
  if (do_queue) {
    double m = median(qm, runs), q = median(qw, runs);
    printf("queue 4p/4c get_threadsafe %10.0f it/s   mutex+condvar     "
           "%10.0f it/s   ratio %.2f\n",
           q, m, q / m);
  }
  return 0;
}
