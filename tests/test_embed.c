/* Embedding: a host that runs its own libev loop (weft_loop_from_ev), and a
 * host with a foreign poll loop that drives weft through the backend fd and
 * the next timeout. */
#include "support/test.h"

#include <ev.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static void inc(void *arg) { ++*(int *)arg; }

/* A host's wait: a signal handler may interrupt it (EINTR), as any host
 * loop knows. */
static int host_wait(int ep, int timeout) {
  struct epoll_event e;
  int n;
  while ((n = epoll_wait(ep, &e, 1, timeout)) < 0 && errno == EINTR) {
  }
  return n;
}
static void on_count(weft_timer *t) { ++*(int *)t->base.data; }

Test(embed, bad_input_is_rejected, .timeout = 5) {
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  weft_loop *loop = NULL;
  cr_assert_eq(weft_loop_from_ev(NULL, ev, NULL), -EINVAL);
  cr_assert_eq(weft_loop_from_ev(&loop, NULL, NULL), -EINVAL);
  cr_assert_null(loop);
  cr_assert_eq(weft_loop_backend_fd(NULL), -EINVAL);
  cr_assert_eq(weft_loop_backend_timeout(NULL), -1);
  /* backends libev cannot provide on Linux */
  weft_loop_options opts = {.ev_flags = EVBACKEND_PORT | EVBACKEND_KQUEUE};
  cr_assert_eq(weft_loop_new(&loop, &opts), -EINVAL);
  cr_assert_null(loop);
  cr_assert_eq(weft_alloc_live(), 0);
  ev_loop_destroy(ev);
}

/* ---- a host running ev_run() on its own libev loop -------------------- */

typedef struct guest {
  weft_loop *loop;
  weft_timer once, rep;
  int once_fired, rep_fired, soon_ran, host_fired, posted;
} guest;

#define GUEST_POSTS 100

static void guest_post(void *arg) {
  guest *g = arg;
  if (++g->posted == GUEST_POSTS) weft_loop_unref(g->loop);
}

static void *guest_thread(void *arg) {
  long errors = 0;
  for (int i = 0; i < GUEST_POSTS; i++)
    errors +=
        weft_call_soon_threadsafe(((guest *)arg)->loop, guest_post, arg) != 0;
  return (void *)errors;
}

static void guest_soon(void *arg) {
  guest *g = arg;
  if (++g->soon_ran < 10) weft_call_soon(g->loop, guest_soon, g);
}

static void guest_once(weft_timer *t) {
  guest *g = t->base.data;
  g->once_fired++;
  weft_call_soon(g->loop, guest_soon, g);
}

static void guest_rep(weft_timer *t) {
  guest *g = t->base.data;
  if (++g->rep_fired == 3) weft_timer_stop(t);
}

static void host_timer(struct ev_loop *ev, ev_timer *w, int revents) {
  (void)ev;
  (void)revents;
  ++*(int *)w->data;
}

Test(embed, host_ev_run_drives_weft_and_ends_with_its_work, .timeout = 10) {
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  static guest g;
  cr_assert_eq(weft_loop_from_ev(&g.loop, ev, NULL), 0);
  cr_assert_eq(weft_loop_ev(g.loop), ev);
  cr_assert_eq(weft_loop_backend_fd(g.loop), -ENOTSUP, "the host polls");
  /* weft's internal watchers alone do not keep the host running */
  ev_run(ev, 0);
  weft_timer_init(g.loop, &g.once);
  weft_timer_init(g.loop, &g.rep);
  g.once.base.data = g.rep.base.data = &g;
  weft_timer_start(&g.once, guest_once, 2, 0);
  weft_timer_start(&g.rep, guest_rep, 1, 1);
  ev_timer host;
  ev_timer_init(&host, host_timer, 0.001, 0.);
  host.data = &g.host_fired;
  ev_timer_start(ev, &host);
  weft_loop_ref(g.loop); /* until the other thread's posts have run */
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, guest_thread, &g), 0);
  ev_run(ev, 0); /* returns once both weft's and the host's work is done */
  void *errors;
  pthread_join(th, &errors);
  cr_assert_null(errors);
  cr_assert_eq(g.posted, GUEST_POSTS);
  cr_assert_eq(g.once_fired, 1);
  cr_assert_eq(g.rep_fired, 3);
  cr_assert_eq(g.soon_ran, 10);
  cr_assert_eq(g.host_fired, 1);
  cr_assert(!weft_loop_alive(g.loop));
  /* an unreferenced weft timer does not keep the host running either */
  weft_unref(&g.rep.base);
  weft_timer_start(&g.rep, guest_rep, 60000, 0);
  ev_run(ev, 0);
  /* closing is weft work: the host's run finishes it */
  weft_close(&g.once.base, NULL);
  weft_close(&g.rep.base, NULL);
  cr_assert(weft_loop_alive(g.loop));
  ev_run(ev, 0);
  cr_assert(!weft_loop_alive(g.loop));
  cr_assert_eq(weft_loop_free(g.loop), 0);
  cr_assert_eq(weft_alloc_live(), 0);
  /* the host's loop is intact and still runs */
  ev_timer_start(ev, &host);
  ev_run(ev, 0);
  cr_assert_eq(g.host_fired, 2);
  ev_loop_destroy(ev);
}

/* ---- a host polling the backend fd ----------------------------------- */

Test(embed, backend_timeout_reports_the_next_deadline, .timeout = 5) {
  weft_loop *loop = th_loop();
  cr_assert_geq(weft_loop_backend_fd(loop), 0);
  /* until the first poll, libev has not registered its wake-up fd */
  cr_assert_eq(weft_loop_backend_timeout(loop), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1, "nothing to wait for");
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  weft_timer_start(&t, on_count, 1000, 0);
  /* measured from the present: 999 if weft's millisecond has just ended */
  int ms = weft_loop_backend_timeout(loop);
  cr_assert(ms == 1000 || ms == 999, "%d ms", ms);
  weft_timer_start(&t, on_count, WEFT_TIMEOUT_MAX, 0);
  cr_assert_eq(weft_loop_backend_timeout(loop), INT32_MAX, "capped");
  weft_timer_start(&t, on_count, 0, 0);
  cr_assert_eq(weft_loop_backend_timeout(loop), 0, "a due timer");
  weft_timer_stop(&t);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1);
  weft_call_soon(loop, inc, &n);
  cr_assert_eq(weft_loop_backend_timeout(loop), 0, "queued work");
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(n, 1);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1);
  weft_close(&t.base, NULL);
  cr_assert_eq(weft_loop_backend_timeout(loop), 0, "a close to finish");
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1);
  th_loop_finish(loop);
}

Test(embed, other_backends_have_no_backend_fd, .timeout = 5) {
  weft_loop_options opts = {.ev_flags = EVBACKEND_POLL};
  weft_loop *loop = NULL;
  cr_assert_eq(weft_loop_new(&loop, &opts), 0);
  cr_assert_eq(weft_loop_backend_fd(loop), -ENOTSUP);
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  weft_timer_start(&t, on_count, 1, 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(n, 1);
  th_loop_finish(loop);
}

/* The host's loop: epoll on weft's backend fd with weft's timeout, then a
 * NOWAIT run, until weft has nothing left. Returns the iterations. */
static int host_poll_loop(weft_loop *loop) {
  int ep = epoll_create1(EPOLL_CLOEXEC), iterations = 0;
  cr_assert_geq(ep, 0);
  struct epoll_event e = {.events = EPOLLIN};
  cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, weft_loop_backend_fd(loop), &e), 0);
  while (weft_loop_alive(loop)) {
    int timeout = weft_loop_backend_timeout(loop);
    cr_assert_geq(timeout, -1);
    cr_assert_geq(host_wait(ep, timeout), 0);
    cr_assert_geq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
    iterations++;
  }
  close(ep);
  return iterations;
}

#define HOST_POSTS 1000

typedef struct hosted {
  weft_loop *loop;
  weft_timer first, rep, last;
  weft_signal sig;
  int first_fired, rep_fired, last_fired, sig_fired, soon_ran, posted;
} hosted;

static void hosted_soon(void *arg) {
  hosted *h = arg;
  if (++h->soon_ran < 10) weft_call_soon(h->loop, hosted_soon, h);
}

static void hosted_first(weft_timer *t) {
  hosted *h = t->base.data;
  h->first_fired++;
  weft_call_soon(h->loop, hosted_soon, h);
  raise(SIGUSR2);
}

static void hosted_rep(weft_timer *t) {
  if (++((hosted *)t->base.data)->rep_fired == 3) weft_timer_stop(t);
}

static void hosted_last(weft_timer *t) {
  ((hosted *)t->base.data)->last_fired++;
}

static void hosted_sig(weft_signal *s, int signum) {
  hosted *h = s->base.data;
  cr_assert_eq(signum, SIGUSR2);
  h->sig_fired++;
  weft_signal_stop(s);
}

static void hosted_post(void *arg) {
  hosted *h = arg;
  if (++h->posted == HOST_POSTS) weft_loop_unref(h->loop);
}

static void *hosted_thread(void *arg) {
  hosted *h = arg;
  long errors = 0;
  for (int i = 0; i < HOST_POSTS; i++)
    errors += weft_call_soon_threadsafe(h->loop, hosted_post, h) != 0;
  return (void *)errors;
}

Test(embed, epoll_host_drives_timers_posts_signals_and_threads, .timeout = 10) {
  static hosted h;
  h.loop = th_loop();
  weft_timer_init(h.loop, &h.first);
  weft_timer_init(h.loop, &h.rep);
  weft_timer_init(h.loop, &h.last);
  weft_signal_init(h.loop, &h.sig);
  h.first.base.data = h.rep.base.data = h.last.base.data = h.sig.base.data = &h;
  weft_timer_start(&h.first, hosted_first, 1, 0);
  weft_timer_start(&h.rep, hosted_rep, 2, 2);
  weft_timer_start(&h.last, hosted_last, 8, 0);
  cr_assert_eq(weft_signal_start(&h.sig, hosted_sig, SIGUSR2), 0);
  weft_loop_ref(h.loop); /* until every cross-thread post has run */
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, hosted_thread, &h), 0);
  int iterations = host_poll_loop(h.loop);
  void *errors;
  pthread_join(th, &errors);
  cr_assert_null(errors);
  cr_assert_eq(h.first_fired, 1);
  cr_assert_eq(h.rep_fired, 3);
  cr_assert_eq(h.last_fired, 1);
  cr_assert_eq(h.sig_fired, 1);
  cr_assert_eq(h.soon_ran, 10);
  cr_assert_eq(h.posted, HOST_POSTS);
  /* the host slept between events instead of spinning */
  cr_assert_lt(iterations, 2000, "%d host iterations", iterations);
  th_loop_finish(h.loop);
}

/* A host that polls only the backend fd, with no timeout, is woken by a
 * post from another thread. */
typedef struct waker {
  weft_loop *loop;
  int ran;
} waker;

static void waker_cb(void *arg) {
  waker *w = arg;
  w->ran++;
  weft_loop_unref(w->loop);
}

static void *waker_thread(void *arg) {
  waker *w = arg;
  return (void *)(intptr_t)weft_call_soon_threadsafe(w->loop, waker_cb, w);
}

Test(embed, cross_thread_post_wakes_a_host_blocked_on_the_backend_fd,
     .timeout = 10) {
  static waker w;
  w.loop = th_loop();
  weft_loop_ref(w.loop);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, weft_loop_backend_fd(w.loop), &e);
  /* the first turn registers libev's wake-up fd */
  while (weft_loop_backend_timeout(w.loop) == 0)
    weft_loop_run(w.loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_loop_backend_timeout(w.loop), -1);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, waker_thread, &w), 0);
  cr_assert_eq(host_wait(ep, -1), 1);
  cr_assert_eq(weft_loop_run(w.loop, WEFT_RUN_NOWAIT), 0);
  void *err;
  pthread_join(th, &err);
  cr_assert_null(err);
  cr_assert_eq(w.ran, 1);
  close(ep);
  th_loop_finish(w.loop);
}

/* Likewise for a signal that arrives while the host blocks. */
static void waker_sig(weft_signal *s, int signum) {
  cr_assert_eq(signum, SIGUSR1);
  ++*(int *)s->base.data;
  weft_signal_stop(s);
}

static void *kill_thread(void *arg) {
  (void)arg;
  return (void *)(intptr_t)kill(getpid(), SIGUSR1);
}

Test(embed, signal_wakes_a_host_blocked_on_the_backend_fd, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_signal s;
  int fired = 0;
  weft_signal_init(loop, &s);
  s.base.data = &fired;
  cr_assert_eq(weft_signal_start(&s, waker_sig, SIGUSR1), 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, weft_loop_backend_fd(loop), &e);
  while (weft_loop_backend_timeout(loop) == 0)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, kill_thread, NULL), 0);
  cr_assert_eq(host_wait(ep, -1), 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  void *err;
  pthread_join(th, &err);
  cr_assert_null(err);
  cr_assert_eq(fired, 1);
  close(ep);
  th_loop_finish(loop);
}

/* Likewise for a terminal's SIGWINCH (weft_tty_on_resize watches it with
 * the signal module's handler, which wakes the host too). The pty is not
 * the process's controlling terminal, so the thread resizes it and sends
 * the signal itself. */
typedef struct winch_host {
  int master, calls, cols, rows;
} winch_host;

static void host_resized(weft_tty *t, int cols, int rows) {
  winch_host *w = t->stream.base.data;
  w->calls++;
  w->cols = cols;
  w->rows = rows;
}

static void *resize_thread(void *arg) {
  winch_host *w = arg;
  struct winsize ws = {.ws_row = 40, .ws_col = 100};
  if (ioctl(w->master, TIOCSWINSZ, &ws) != 0) return (void *)(intptr_t)-errno;
  return (void *)(intptr_t)kill(getpid(), SIGWINCH);
}

Test(embed, tty_resize_wakes_a_host_blocked_on_the_backend_fd, .timeout = 10) {
  weft_loop *loop = th_loop();
  static winch_host w;
  w.master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  cr_assert_geq(w.master, 0);
  char name[64];
  cr_assert_eq(grantpt(w.master), 0);
  cr_assert_eq(unlockpt(w.master), 0);
  cr_assert_eq(ptsname_r(w.master, name, sizeof name), 0);
  int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  cr_assert_geq(slave, 0);
  struct winsize ws = {.ws_row = 24, .ws_col = 80};
  cr_assert_eq(ioctl(w.master, TIOCSWINSZ, &ws), 0);
  weft_tty t;
  cr_assert_eq(weft_tty_init(loop, &t), 0);
  cr_assert_eq(weft_tty_open(&t, slave), 0);
  t.stream.base.data = &w;
  cr_assert_eq(weft_tty_on_resize(&t, host_resized), 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, weft_loop_backend_fd(loop), &e);
  while (weft_loop_backend_timeout(loop) == 0)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, resize_thread, &w), 0);
  cr_assert_eq(host_wait(ep, 5000), 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1); /* tty watched */
  void *err;
  pthread_join(th, &err);
  cr_assert_null(err);
  cr_assert_eq(w.calls, 1);
  cr_assert_eq(w.cols, 100);
  cr_assert_eq(w.rows, 40);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  close(ep);
  th_loop_finish(loop);
  close(slave);
  close(w.master);
}

/* Likewise for a thread-pool job that completes while the host blocks. */
static void pool_work(weft_work *w) { (void)w; }
static void pool_done(weft_work *w, int status) {
  cr_assert_eq(status, 0);
  ++*(int *)w->data;
}

Test(embed, pool_completion_wakes_a_host_blocked_on_the_backend_fd,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, weft_loop_backend_fd(loop), &e);
  while (weft_loop_backend_timeout(loop) == 0)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  static weft_work w;
  int done = 0;
  w.data = &done;
  cr_assert_eq(weft_work_submit(loop, &w, WEFT_LANE_CPU, pool_work, pool_done),
               0);
  while (done == 0) {
    cr_assert_eq(weft_loop_backend_timeout(loop), -1, "nothing but the job");
    cr_assert_eq(host_wait(ep, -1), 1);
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  cr_assert_eq(done, 1);
  close(ep);
  th_loop_finish(loop);
}

/* A host that waits exactly weft_loop_backend_timeout() wakes up to find
 * the timer due: it does not spin while weft's millisecond clock and
 * libev's precise one disagree about the current millisecond. */
#define PACED_FIRINGS 20

static void paced_fire(weft_timer *t) { ++*(int *)t->base.data; }

/* Polls as a host does until the timer has fired; returns the wake-ups. */
static int host_until_fired(weft_loop *loop, int ep, const int *fired) {
  int before = *fired, iterations = 0;
  while (*fired == before && iterations < 100000) {
    int timeout = weft_loop_backend_timeout(loop);
    cr_assert_geq(timeout, 0);
    cr_assert_geq(host_wait(ep, timeout), 0);
    cr_assert_geq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
    iterations++;
  }
  return iterations;
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps until the monotonic clock reads `ns` (an absolute time). */
static void sleep_until_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
  }
}

static weft_loop *paced_loop(int *ep) {
  weft_loop *loop = th_loop();
  /* the first turns register libev's fds */
  while (weft_loop_backend_timeout(loop) == 0)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  *ep = epoll_create1(EPOLL_CLOEXEC);
  cr_assert_geq(*ep, 0);
  struct epoll_event e = {.events = EPOLLIN};
  cr_assert_eq(epoll_ctl(*ep, EPOLL_CTL_ADD, weft_loop_backend_fd(loop), &e),
               0);
  return loop;
}

Test(embed, epoll_host_sleeps_until_a_repeating_timer_is_due, .timeout = 10) {
  int ep, fired = 0;
  weft_loop *loop = paced_loop(&ep);
  weft_timer t;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  cr_assert_eq(weft_timer_start(&t, paced_fire, 1, 1), 0);
  int iterations = 0;
  for (int i = 0; i < PACED_FIRINGS; i++)
    iterations += host_until_fired(loop, ep, &fired);
  cr_assert_eq(fired, PACED_FIRINGS);
  cr_assert_leq(iterations, 3 * PACED_FIRINGS,
                "%d host wake-ups for %d firings", iterations, PACED_FIRINGS);
  close(ep);
  weft_close(&t.base, NULL);
  th_loop_finish(loop);
}

/* Arms a 2 ms timer late in a millisecond (between .6 and .9 of it, so
 * that libev's precise deadline lies that much after weft's millisecond
 * one); returns weft's deadline, or 0 if the thread was preempted while
 * arming (the caller tries again). */
static uint64_t arm_late_in_a_ms(weft_loop *loop, weft_timer *t) {
  uint64_t ns;
  while ((ns = mono_ns()) % 1000000u < 600000u || ns % 1000000u > 900000u) {
  }
  weft_update_time(loop);
  uint64_t deadline = weft_now(loop) + 2;
  cr_assert_eq(weft_timer_start(t, paced_fire, 2, 0), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1); /* arms libev */
  if (mono_ns() / 1000000u == ns / 1000000u) return deadline;
  weft_timer_stop(t);
  return 0;
}

/* The host, busy with its own work, comes back after weft's millisecond
 * clock has reached the deadline but before the precise time libev armed,
 * and runs weft: the timeout it gets then must be one it can sleep through,
 * not a 0 that spins it until libev's deadline. And the time it was away
 * counts: the timeout is not measured from weft's last turn. */
Test(embed, epoll_host_back_from_its_own_work_sleeps_until_the_timer_is_due,
     .timeout = 10) {
  int ep, fired = 0;
  weft_loop *loop = paced_loop(&ep);
  weft_timer t;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  int runs = 0, worst = 0;
  for (int i = 0, tries = 0; i < PACED_FIRINGS && tries < 1000; tries++) {
    uint64_t deadline = arm_late_in_a_ms(loop, &t);
    if (deadline == 0) continue;
    sleep_until_ns(deadline * 1000000u + 50000u); /* the host's own work */
    cr_assert_leq(weft_loop_backend_timeout(loop), 1, "the host was away");
    int n = 0;
    for (;;) {
      cr_assert_geq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
      if (++n == 100000 || fired == i + 1) break;
      int timeout = weft_loop_backend_timeout(loop);
      cr_assert_geq(timeout, 0);
      cr_assert_geq(host_wait(ep, timeout), 0);
    }
    runs += n;
    worst = n > worst ? n : worst;
    i++;
  }
  cr_assert_eq(fired, PACED_FIRINGS);
  cr_assert_leq(worst, 3, "%d host runs for one firing (%d in all)", worst,
                runs);
  close(ep);
  weft_close(&t.base, NULL);
  th_loop_finish(loop);
}
