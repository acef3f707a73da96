/* Loop metrics (weft_loop_get_metrics) and the slow-callback hook
 * (weft_loop_set_slow_callback): exact counts in small scenarios. */
#include "support/test.h"

#include "support/dnsmasq.h"

#include <ev.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static weft_loop_metrics get(weft_loop *loop) {
  weft_loop_metrics m;
  memset(&m, 0xa5, sizeof m);
  int err = weft_loop_get_metrics(loop, &m, sizeof m);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  cr_assert_eq(m.size, sizeof m);
  return m;
}

static uint64_t lag_sum(const weft_loop_metrics *m) {
  uint64_t n = 0;
  for (int i = 0; i < WEFT_LOOP_LAG_BUCKETS; i++)
    n += m->timer_lag[i];
  return n;
}

/* Burns the CPU clock for `ms` (a slow callback: the loop thread is busy,
 * as it would be in a real stall). */
static void stall_ms(unsigned ms) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  do
    clock_gettime(CLOCK_MONOTONIC, &b);
  while ((uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
             (uint64_t)a.tv_nsec <
         (uint64_t)ms * 1000000u);
}

static int ran;
static void count_cb(void *arg) {
  (void)arg;
  ran++;
}

/* ---- deferred callbacks ------------------------------------------------ */

Test(metrics, fresh_loop_is_all_zero, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.turns, 0);
  cr_assert_eq(m.callbacks, 0);
  cr_assert_eq(m.busy_ns, 0);
  cr_assert_eq(m.wait_ns, 0);
  cr_assert_eq(m.deferred_max_depth, 0);
  cr_assert_eq(lag_sum(&m), 0);
  th_loop_finish(loop);
}

Test(metrics, n_call_soon_count_n_callbacks_and_the_depth, .timeout = 5) {
  enum { N = 300 }; /* more than the ring's first size: it grows */
  weft_loop *loop = th_loop();
  ran = 0;
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_call_soon(loop, count_cb, NULL), 0);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.deferred_depth, N);
  cr_assert_eq(m.deferred_max_depth, N);
  cr_assert_eq(m.deferred, 0);
  th_run(loop);
  cr_assert_eq(ran, N);
  m = get(loop);
  cr_assert_eq(m.deferred, N, "%llu", (unsigned long long)m.deferred);
  cr_assert_eq(m.callbacks, N);
  cr_assert_eq(m.deferred_depth, 0);
  cr_assert_eq(m.deferred_max_depth, N);
  cr_assert_eq(m.timers_fired + m.io_events + m.posts_received + m.hooks, 0);
  cr_assert_geq(m.turns, 1);
  cr_assert_gt(m.busy_ns, 0);
  cr_assert_geq(m.longest_turn_ns, 1);
  cr_assert_leq(m.longest_turn_ns, m.busy_ns);
  th_loop_finish(loop);
}

Test(metrics, a_drain_cut_by_the_budget_counts_what_ran, .timeout = 5) {
  weft_loop_options o = {.call_soon_budget = 10};
  weft_loop *loop;
  cr_assert_eq(weft_loop_new(&loop, &o), 0);
  ran = 0;
  for (int i = 0; i < 25; i++)
    cr_assert_eq(weft_call_soon(loop, count_cb, NULL), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(ran, 10);
  cr_assert_eq(m.deferred, 10, "%llu", (unsigned long long)m.deferred);
  cr_assert_eq(m.deferred_depth, 15);
  cr_assert_eq(m.deferred_max_depth, 25);
  th_run(loop);
  m = get(loop);
  cr_assert_eq(m.deferred, 25, "%llu", (unsigned long long)m.deferred);
  cr_assert_eq(m.deferred_depth, 0);
  th_loop_finish(loop);
}

/* ---- timers and lag ----------------------------------------------------- */

static void on_timer(weft_timer *t) {
  ran++;
  weft_close(&t->base, NULL);
}

Test(metrics, k_timers_count_k_fired_and_k_lag_entries, .timeout = 5) {
  enum { K = 7 };
  weft_loop *loop = th_loop();
  static weft_timer t[K];
  ran = 0;
  for (int i = 0; i < K; i++) {
    cr_assert_eq(weft_timer_init(loop, &t[i]), 0);
    cr_assert_eq(weft_timer_start(&t[i], on_timer, (uint64_t)(i % 3), 0), 0);
  }
  th_run(loop);
  cr_assert_eq(ran, K);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.timers_fired, K);
  cr_assert_eq(lag_sum(&m), K);
  cr_assert_eq(m.callbacks, K);
  th_loop_finish(loop);
}

static void on_repeat(weft_timer *t) {
  if (++ran == 3) weft_close(&t->base, NULL);
}

Test(metrics, a_repeating_timer_counts_each_firing, .timeout = 5) {
  weft_loop *loop = th_loop();
  static weft_timer t;
  ran = 0;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(&t, on_repeat, 1, 1), 0);
  th_run(loop);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.timers_fired, 3);
  cr_assert_eq(lag_sum(&m), 3);
  th_loop_finish(loop);
}

Test(metrics, a_lone_timer_shows_as_waiting_in_the_poll, .timeout = 5) {
  weft_loop *loop = th_loop();
  static weft_timer t;
  ran = 0;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(&t, on_timer, 40, 0), 0);
  th_run(loop);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.timers_fired, 1);
  /* the loop blocked until the deadline: at least most of 40 ms waiting */
  cr_assert_geq(m.wait_ns, 30000000u, "wait %llu ns",
                (unsigned long long)m.wait_ns);
  cr_assert_lt(m.busy_ns, m.wait_ns);
  th_loop_finish(loop);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* weft_now() in the timer's callback, and CLOCK_MONOTONIC (ns) right then */
static uint64_t fired_now_ms, fired_mono_ns;
static void on_timer_clock(weft_timer *t) {
  fired_now_ms = weft_now(t->base.loop);
  fired_mono_ns = mono_ns();
  ran++;
  weft_close(&t->base, NULL);
}

/* The turn's stamps come from libev's own clock reads (core/loop.c): they
 * must be CLOCK_MONOTONIC, within the run and adding up to most of it. */
static void check_stamps_are_monotonic(weft_loop *loop, bool host) {
  static weft_timer t;
  ran = 0;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  uint64_t start_ms = weft_now(loop);
  cr_assert_eq(weft_timer_start(&t, on_timer_clock, 40, 0), 0);
  uint64_t t0 = mono_ns();
  if (host)
    ev_run(weft_loop_ev(loop), 0);
  else
    th_run(loop);
  uint64_t t1 = mono_ns();
  cr_assert_eq(ran, 1);
  cr_assert_geq(fired_now_ms, start_ms + 40);
  cr_assert_leq(fired_now_ms, fired_mono_ns / 1000000u);
  weft_loop_metrics m = get(loop);
  cr_assert_leq(m.busy_ns + m.wait_ns, t1 - t0, "busy %llu wait %llu run %llu",
                (unsigned long long)m.busy_ns, (unsigned long long)m.wait_ns,
                (unsigned long long)(t1 - t0));
  cr_assert_geq(m.busy_ns + m.wait_ns, 30000000u);
}

Test(metrics, turn_stamps_are_the_monotonic_clock, .timeout = 5) {
  weft_loop *loop = th_loop();
  check_stamps_are_monotonic(loop, false);
  th_loop_finish(loop);
}

Test(metrics, turn_stamps_are_the_monotonic_clock_on_a_host_loop,
     .timeout = 5) {
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  cr_assert_not_null(ev);
  weft_loop *loop;
  cr_assert_eq(weft_loop_from_ev(&loop, ev, NULL), 0);
  check_stamps_are_monotonic(loop, true);
  cr_assert_eq(weft_loop_free(loop), 0);
  ev_loop_destroy(ev);
  cr_assert_eq(weft_alloc_live(), 0);
}

/* ---- I/O ---------------------------------------------------------------- */

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  (void)buf;
  cr_assert_eq(nread, 1, "%s", weft_err_name((int)nread));
  ran++;
  weft_close((weft_handle *)s, NULL);
}

Test(metrics, one_byte_on_a_pipe_is_one_io_event, .timeout = 5) {
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  static weft_pipe p;
  cr_assert_eq(weft_pipe_init(loop, &p), 0);
  cr_assert_eq(weft_pipe_open(&p, fds[0]), 0);
  int err = weft_stream_read_start((weft_stream *)&p, NULL, on_read);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  ran = 0;
  weft_loop_metrics m0 = get(loop);
  cr_assert_eq(write(fds[1], "x", 1), 1);
  th_run(loop);
  cr_assert_eq(ran, 1);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.io_events - m0.io_events, 1, "%llu io events",
               (unsigned long long)(m.io_events - m0.io_events));
  close(fds[1]);
  th_loop_finish(loop);
}

static int poll_calls;
static void on_poll(weft_poll *p, int status, int events, void *arg) {
  (void)status, (void)events, (void)arg;
  poll_calls++;
  weft_poll_stop(p);
}

Test(metrics, a_poll_handle_and_a_poll_future_count_io_events, .timeout = 5) {
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  weft_poll p;
  cr_assert_eq(weft_poll_init(loop, &p, fds[0]), 0);
  int err = weft_poll_start(&p, WEFT_POLL_READABLE, on_poll, NULL);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  weft_loop_metrics m0 = get(loop);
  cr_assert_eq(write(fds[1], "x", 1), 1);
  th_run(loop);
  cr_assert_eq(poll_calls, 1);
  weft_loop_metrics m1 = get(loop);
  cr_assert_eq(m1.io_events - m0.io_events, 1, "%llu io events",
               (unsigned long long)(m1.io_events - m0.io_events));
  weft_future *f;
  err = weft_poll_future(&p, WEFT_POLL_READABLE, &f);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  weft_future_unref(f);
  weft_loop_metrics m2 = get(loop);
  cr_assert_eq(m2.io_events - m1.io_events, 1, "%llu io events",
               (unsigned long long)(m2.io_events - m1.io_events));
  cr_assert_eq(weft_close(&p.base, NULL), 0);
  close(fds[0]);
  close(fds[1]);
  th_loop_finish(loop);
}

static int exits;
static void on_exit_cb(weft_process *p, int64_t status, int sig) {
  (void)status, (void)sig;
  exits++;
  weft_close(&p->base, NULL);
}

Test(metrics, a_child_exit_is_one_io_event_on_its_pidfd, .timeout = 10) {
  weft_loop *loop = th_loop();
  char *argv[] = {"true", NULL};
  weft_process_options o = {0};
  o.argv = argv;
  o.exit_cb = on_exit_cb;
  weft_process p;
  weft_loop_metrics m0 = get(loop);
  int err = weft_spawn(loop, &p, &o);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  th_run(loop);
  cr_assert_eq(exits, 1);
  weft_loop_metrics m = get(loop);
  /* pidfd_open exists on every kernel this runs on (>= 5.3); without it
   * children are reaped on SIGCHLD, which is not an I/O event */
  int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  cr_assert_geq(pfd, 0, "no pidfd_open: the count below does not apply");
  close(pfd);
  cr_assert_eq(m.io_events - m0.io_events, 1, "%llu io events",
               (unsigned long long)(m.io_events - m0.io_events));
  th_loop_finish(loop);
}

Test(metrics, a_dns_answer_is_one_io_event_on_its_socket, .timeout = 20) {
  th_dnsmasq d;
  int started = th_dnsmasq_start(&d, "127.0.0.2 a.test\n");
  cr_assert_eq(started, 0, "dnsmasq did not start: %s", strerror(-started));
  weft_loop *loop = th_loop();
  int err = weft_dns_set_servers(loop, d.server);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  err = weft_dns_use_hosts_file(loop, false);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  struct addrinfo hints = {0};
  hints.ai_family = AF_INET; /* one query (A), one answer, one wake-up */
  weft_loop_metrics m0 = get(loop);
  weft_future *f;
  err = weft_getaddrinfo_future(loop, "a.test", NULL, &hints, &f);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.io_events - m0.io_events, 1, "%llu io events",
               (unsigned long long)(m.io_events - m0.io_events));
  th_loop_finish(loop);
  th_dnsmasq_stop(&d);
}

/* ---- cross-thread posts ------------------------------------------------- */

enum { M_POSTS = 1000 };
static int posts_ran;

static void on_post(void *arg) {
  weft_loop *loop = arg;
  if (++posts_ran == M_POSTS) weft_loop_unref(loop);
}

static void *poster(void *arg) {
  for (int i = 0; i < M_POSTS; i++)
    while (weft_call_soon_threadsafe(arg, on_post, arg) != 0)
      sched_yield();
  return NULL;
}

Test(metrics, m_posts_from_a_thread_count_m_received, .timeout = 10) {
  weft_loop *loop = th_loop();
  posts_ran = 0;
  weft_loop_ref(loop);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, poster, loop), 0);
  th_run(loop);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(posts_ran, M_POSTS);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.posts_received, M_POSTS, "%llu",
               (unsigned long long)m.posts_received);
  cr_assert_eq(m.callbacks, M_POSTS);
  th_loop_finish(loop);
}

/* ---- prepare/check/idle hooks ------------------------------------------ */

static void on_idle(weft_idle *i) {
  if (++ran == 4) weft_close(&i->base, NULL);
}

Test(metrics, hook_callbacks_are_counted, .timeout = 5) {
  weft_loop *loop = th_loop();
  static weft_idle idle;
  ran = 0;
  cr_assert_eq(weft_idle_init(loop, &idle), 0);
  cr_assert_eq(weft_idle_start(&idle, on_idle), 0);
  th_run(loop);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.hooks, 4);
  cr_assert_eq(m.callbacks, 4);
  cr_assert_geq(m.turns, 4);
  th_loop_finish(loop);
}

/* ---- the slow-callback hook --------------------------------------------- */

static struct {
  int calls;
  weft_any_fn fn;
  uint64_t ns;
  void *arg;
  weft_loop *loop;
} slow;

static void on_slow(weft_loop *loop, weft_any_fn fn, uint64_t ns, void *arg) {
  slow.calls++;
  slow.fn = fn;
  slow.ns = ns;
  slow.arg = arg;
  slow.loop = loop;
}

static void stall_cb(void *arg) {
  (void)arg;
  ran++;
  stall_ms(60);
}

static void stall_timer(weft_timer *t) {
  ran++;
  stall_ms(60);
  weft_close(&t->base, NULL);
}

Test(metrics, a_stalling_callback_is_the_longest_turn_and_reported_once,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  static int tag;
  memset(&slow, 0, sizeof slow);
  cr_assert_eq(weft_loop_set_slow_callback(loop, 30000, on_slow, &tag), 0);
  ran = 0;
  for (int i = 0; i < 5; i++)
    cr_assert_eq(weft_call_soon(loop, count_cb, NULL), 0);
  cr_assert_eq(weft_call_soon(loop, stall_cb, NULL), 0);
  cr_assert_eq(weft_call_soon(loop, count_cb, NULL), 0);
  th_run(loop);
  cr_assert_eq(ran, 7);
  cr_assert_eq(slow.calls, 1);
  cr_assert(slow.fn == (weft_any_fn)stall_cb);
  cr_assert_geq(slow.ns, 60000000u);
  cr_assert_eq(slow.arg, &tag);
  cr_assert_eq(slow.loop, loop);
  weft_loop_metrics m = get(loop);
  cr_assert_geq(m.longest_turn_ns, 60000000u);
  cr_assert_geq(m.busy_ns, m.longest_turn_ns);

  /* a timer callback: the timer's function */
  static weft_timer t;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(&t, stall_timer, 0, 0), 0);
  th_run(loop);
  cr_assert_eq(slow.calls, 2);
  cr_assert(slow.fn == (weft_any_fn)stall_timer);

  /* off: nothing more is reported */
  cr_assert_eq(weft_loop_set_slow_callback(loop, 30000, NULL, NULL), 0);
  cr_assert_eq(weft_call_soon(loop, stall_cb, NULL), 0);
  th_run(loop);
  cr_assert_eq(slow.calls, 2);
  th_loop_finish(loop);
}

static void on_slow_post(void *arg) {
  (void)arg;
  stall_ms(40);
  posts_ran++;
}

static void *slow_poster(void *arg) {
  while (weft_call_soon_threadsafe(arg, on_slow_post, arg) != 0)
    sched_yield();
  while (weft_call_soon_threadsafe(arg, on_post, arg) != 0)
    sched_yield();
  return NULL;
}

Test(metrics, a_slow_post_and_a_slow_hook_are_reported, .timeout = 10) {
  weft_loop *loop = th_loop();
  memset(&slow, 0, sizeof slow);
  cr_assert_eq(weft_loop_set_slow_callback(loop, 20000, on_slow, NULL), 0);
  posts_ran = M_POSTS - 2; /* on_post unrefs at M_POSTS */
  weft_loop_ref(loop);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, slow_poster, loop), 0);
  th_run(loop);
  cr_assert_eq(pthread_join(th, NULL), 0);
  cr_assert_eq(slow.calls, 1);
  cr_assert(slow.fn == (weft_any_fn)on_slow_post);
  th_loop_finish(loop);
}

/* every callback with threshold 0 */
Test(metrics, threshold_zero_reports_every_callback, .timeout = 5) {
  weft_loop *loop = th_loop();
  memset(&slow, 0, sizeof slow);
  cr_assert_eq(weft_loop_set_slow_callback(loop, 0, on_slow, NULL), 0);
  ran = 0;
  for (int i = 0; i < 10; i++)
    cr_assert_eq(weft_call_soon(loop, count_cb, NULL), 0);
  th_run(loop);
  cr_assert_eq(slow.calls, 10);
  cr_assert(slow.fn == (weft_any_fn)count_cb);
  th_loop_finish(loop);
}

/* ---- bad inputs --------------------------------------------------------- */

Test(metrics, bad_inputs, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_loop_metrics m;
  cr_assert_eq(weft_loop_get_metrics(NULL, &m, sizeof m), -EINVAL);
  cr_assert_eq(weft_loop_get_metrics(loop, NULL, sizeof m), -EINVAL);
  cr_assert_eq(weft_loop_get_metrics(loop, &m, 0), -EINVAL);
  cr_assert_eq(weft_loop_get_metrics(loop, &m, sizeof m - 1), -EINVAL);
  cr_assert_eq(weft_loop_set_slow_callback(NULL, 1, on_slow, NULL), -EINVAL);
  /* a caller built against a later, larger struct: the tail is zeroed */
  struct {
    weft_loop_metrics m;
    uint64_t later[4];
  } big;
  memset(&big, 0xff, sizeof big);
  cr_assert_eq(weft_loop_get_metrics(loop, &big.m, sizeof big), 0);
  cr_assert_eq(big.m.size, sizeof(weft_loop_metrics));
  for (int i = 0; i < 4; i++)
    cr_assert_eq(big.later[i], 0);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- a host's libev loop ------------------------------------------------ */

Test(metrics, counts_on_a_loop_from_ev_run_by_its_host, .timeout = 5) {
  enum { N = 20 };
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  cr_assert_not_null(ev);
  weft_loop *loop;
  cr_assert_eq(weft_loop_from_ev(&loop, ev, NULL), 0);
  ran = 0;
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_call_soon(loop, count_cb, NULL), 0);
  static weft_timer t;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(&t, on_timer, 5, 0), 0);
  ev_run(ev, 0);
  cr_assert_eq(ran, N + 1);
  weft_loop_metrics m = get(loop);
  cr_assert_eq(m.deferred, N);
  cr_assert_eq(m.timers_fired, 1);
  cr_assert_eq(lag_sum(&m), 1);
  cr_assert_eq(m.callbacks, N + 1);
  cr_assert_geq(m.turns, 2);
  cr_assert_gt(m.wait_ns, 0);
  cr_assert_eq(weft_loop_free(loop), 0);
  ev_loop_destroy(ev);
  cr_assert_eq(weft_alloc_live(), 0);
}
