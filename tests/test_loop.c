/* The loop: creation, run modes, stop, aliveness, time, call_soon and its
 * fairness budget, cross-thread posts and stop; and the handle base
 * (data, ref, close, walk). This suite also runs under TSan. */
#include "support/test.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* the -ESHUTDOWN test hooks into weft_loop_free() through a module slot */
#include "core/internal.h"

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void inc(void *arg) { ++*(int *)arg; }
static void on_count(weft_timer *t) { ++*(int *)t->base.data; }

/* ---- create / free ----------------------------------------------------- */

Test(loop, new_and_free_with_and_without_options, .timeout = 5) {
  weft_loop *loop = NULL;
  cr_assert_eq(weft_loop_new(&loop, NULL), 0);
  cr_assert_not_null(weft_loop_ev(loop));
  cr_assert(!weft_loop_alive(loop));
  cr_assert_eq(weft_loop_free(loop), 0);
  weft_loop_options opts = {.call_soon_budget = 8, .pool_size = 2};
  cr_assert_eq(weft_loop_new(&loop, &opts), 0);
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(weft_loop_new(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_loop_free(NULL), -EINVAL);
  cr_assert_eq(weft_alloc_live(), 0);
  cr_assert_gt(weft_loop_size(), 0);
}

Test(loop, user_data_and_ev_accessors, .timeout = 5) {
  weft_loop *loop = th_loop();
  int x;
  cr_assert_null(weft_loop_get_data(loop));
  weft_loop_set_data(loop, &x);
  cr_assert_eq(weft_loop_get_data(loop), &x);
  cr_assert_null(weft_loop_get_data(NULL));
  weft_loop_set_data(NULL, &x); /* ignored */
  cr_assert_null(weft_loop_ev(NULL));
  th_loop_finish(loop);
}

Test(loop, free_is_busy_while_a_handle_is_open, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int fired = 0;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  t.base.data = &fired;
  cr_assert_eq(weft_loop_free(loop), -EBUSY, "an inactive open handle");
  /* still usable */
  cr_assert_eq(weft_timer_start(&t, on_count, 0, 0), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(fired, 1);
  cr_assert_eq(weft_close(&t.base, NULL), 0);
  cr_assert_eq(weft_loop_free(loop), -EBUSY, "a closing handle");
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  th_loop_finish(loop);
}

Test(loop, free_is_busy_while_callbacks_are_queued, .timeout = 5) {
  weft_loop *loop = th_loop();
  int ran = 0;
  cr_assert_eq(weft_call_soon(loop, inc, &ran), 0);
  cr_assert_eq(weft_loop_free(loop), -EBUSY);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(ran, 1);
  cr_assert_eq(weft_call_soon_threadsafe(loop, inc, &ran), 0, "not shut down");
  cr_assert_eq(weft_loop_free(loop), -EBUSY, "a cross-thread post is queued");
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(ran, 2);
  th_loop_finish(loop);
}

/* ---- run modes ----------------------------------------------------------- */

static void recurse(void *arg) {
  weft_loop *loop = arg;
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), -EBUSY);
  cr_assert_eq(weft_loop_free(loop), -EBUSY);
}

Test(loop, run_rejects_bad_input_and_recursion, .timeout = 5) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_loop_run(NULL, WEFT_RUN_DEFAULT), -EINVAL);
  cr_assert_eq(weft_loop_run(loop, (weft_run_mode)3), -EINVAL);
  cr_assert_eq(weft_loop_run(loop, (weft_run_mode)-1), -EINVAL);
  weft_call_soon(loop, recurse, loop);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  th_loop_finish(loop);
}

Test(loop, default_run_of_an_idle_loop_returns_at_once, .timeout = 5) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  th_loop_finish(loop);
}

Test(loop, once_blocks_until_a_timer_is_due, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int fired = 0;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  uint64_t start = mono_ms();
  weft_update_time(loop); /* the timeout counts from here */
  weft_timer_start(&t, on_count, 3, 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(fired, 1);
  cr_assert_geq(mono_ms() - start, 3);
  th_loop_finish(loop);
}

/* The loop's time can be much newer than libev's (weft_update_time after a
 * long computation between runs); a ONCE run must still wait for the timer
 * rather than return early without running it. */
Test(loop, once_waits_for_a_timer_started_after_a_long_computation,
     .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int fired = 0;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  uint64_t start = mono_ms();
  while (mono_ms() - start < 20) {
  } /* a computation, not a sleep */
  weft_update_time(loop);
  weft_timer_start(&t, on_count, 5, 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(fired, 1);
  th_loop_finish(loop);
}

Test(loop, nowait_never_blocks, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int fired = 0;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  weft_timer_start(&t, on_count, 60000, 0);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(fired, 0);
  th_loop_finish(loop);
}

static void stop_at_3(weft_timer *t) {
  if (++*(int *)t->base.data % 3 == 0)
    weft_loop_stop(weft_handle_loop(&t->base));
}

Test(loop, stop_from_a_callback_ends_the_run, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int fired = 0;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  weft_timer_start(&t, stop_at_3, 0, 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 1, "stopped while alive");
  cr_assert_eq(fired, 3);
  /* the stop was for that run only */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 1);
  cr_assert_eq(fired, 6);
  weft_loop_stop(NULL); /* ignored */
  th_loop_finish(loop);
}

Test(loop, stop_before_run_applies_to_the_next_run, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_loop_ref(loop); /* alive with nothing to do: would block forever */
  weft_loop_stop(loop);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 1);
  weft_loop_unref(loop);
  th_loop_finish(loop);
}

Test(loop, alive_follows_refs_and_work, .timeout = 5) {
  weft_loop *loop = th_loop();
  int ran = 0;
  cr_assert(!weft_loop_alive(loop));
  cr_assert(!weft_loop_alive(NULL));
  weft_loop_ref(loop);
  weft_loop_ref(loop);
  cr_assert(weft_loop_alive(loop));
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  weft_loop_unref(loop);
  cr_assert(weft_loop_alive(loop));
  weft_loop_unref(loop);
  cr_assert(!weft_loop_alive(loop));
  weft_loop_unref(loop); /* extra: ignored */
  weft_loop_unref(NULL);
  weft_loop_ref(NULL);
  cr_assert(!weft_loop_alive(loop));
  weft_call_soon(loop, inc, &ran);
  cr_assert(weft_loop_alive(loop), "a queued callback");
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(ran, 1);
  th_loop_finish(loop);
}

/* ---- time ------------------------------------------------------------- */

static void check_cached_time(void *arg) {
  weft_loop *loop = arg;
  uint64_t t0 = weft_now(loop), start = mono_ms();
  while (mono_ms() - start < 3) {
  } /* a computation of 3 ms, not a sleep */
  cr_assert_eq(weft_now(loop), t0, "the cached time moved by itself");
  weft_update_time(loop);
  cr_assert_geq(weft_now(loop), t0 + 2);
  cr_assert_leq(weft_now(loop), mono_ms());
}

Test(loop, now_is_cached_until_update_time, .timeout = 5) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_now(NULL), 0);
  weft_update_time(NULL);
  uint64_t before = weft_now(loop);
  cr_assert_leq(before, mono_ms());
  weft_call_soon(loop, check_cached_time, loop);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_geq(weft_now(loop), before + 2);
  th_loop_finish(loop);
}

/* ---- call_soon ---------------------------------------------------------- */

#define N_FIFO 1000

typedef struct fifo {
  int log[N_FIFO], len;
} fifo;
static fifo F;

static void log_index(void *arg) { F.log[F.len++] = (int)(intptr_t)arg; }

Test(loop, call_soon_runs_each_once_in_fifo_order, .timeout = 5) {
  weft_loop *loop = th_loop();
  for (int i = 0; i < N_FIFO; i++)
    cr_assert_eq(weft_call_soon(loop, log_index, (void *)(intptr_t)i), 0);
  cr_assert_eq(F.len, 0, "ran inline");
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(F.len, N_FIFO);
  for (int i = 0; i < N_FIFO; i++)
    cr_assert_eq(F.log[i], i);
  th_loop_finish(loop);
}

Test(loop, call_soon_rejects_bad_input, .timeout = 5) {
  weft_loop *loop = th_loop();
  int ran = 0;
  cr_assert_eq(weft_call_soon(NULL, inc, &ran), -EINVAL);
  cr_assert_eq(weft_call_soon(loop, NULL, &ran), -EINVAL);
  cr_assert_eq(weft_call_soon_threadsafe(NULL, inc, &ran), -EINVAL);
  cr_assert_eq(weft_call_soon_threadsafe(loop, NULL, &ran), -EINVAL);
  cr_assert(!weft_loop_alive(loop));
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(ran, 0);
  th_loop_finish(loop);
}

typedef struct nest {
  weft_loop *loop;
  int depth, left, ran;
} nest;

static void nested(void *arg) {
  nest *n = arg;
  cr_assert_eq(n->depth, 0, "a callback ran inside another");
  n->depth++;
  n->ran++;
  if (--n->left > 0) cr_assert_eq(weft_call_soon(n->loop, nested, n), 0);
  n->depth--;
}

Test(loop, call_soon_from_a_callback_runs_after_it, .timeout = 5) {
  weft_loop *loop = th_loop();
  nest n = {.loop = loop, .left = 5000};
  weft_call_soon(loop, nested, &n);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(n.ran, 5000);
  th_loop_finish(loop);
}

typedef struct repost {
  weft_loop *loop;
  int ran, limit;
} repost;

static void repost_cb(void *arg) {
  repost *r = arg;
  if (++r->ran < r->limit) weft_call_soon(r->loop, repost_cb, r);
}

Test(loop, call_soon_budget_bounds_one_turn, .timeout = 5) {
  weft_loop_options opts = {.call_soon_budget = 10};
  weft_loop *loop = NULL;
  cr_assert_eq(weft_loop_new(&loop, &opts), 0);
  repost r = {.loop = loop, .limit = 25};
  weft_call_soon(loop, repost_cb, &r);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1);
  cr_assert_eq(r.ran, 10);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(r.ran, 20);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(r.ran, 25);
  th_loop_finish(loop);
}

/* A callback that keeps re-posting itself must not starve timers, signals
 * or cross-thread posts: they all get their turn while it goes on, and it
 * stops only once they have. */
#define STARVE_POSTS 100

typedef struct starve {
  weft_loop *loop;
  weft_timer timer;
  weft_signal sig;
  long reposts;
  int timer_fired, sig_fired, posted, post_errors;
} starve;

static void starve_post(void *arg) { ((starve *)arg)->posted++; }

static void *starve_thread(void *arg) {
  starve *st = arg;
  for (int i = 0; i < STARVE_POSTS; i++)
    if (weft_call_soon_threadsafe(st->loop, starve_post, st) != 0)
      st->post_errors++;
  return NULL;
}

static void starve_timer(weft_timer *t) {
  ((starve *)t->base.data)->timer_fired++;
}
static void starve_sig(weft_signal *s, int signum) {
  cr_assert_eq(signum, SIGUSR1);
  ((starve *)s->base.data)->sig_fired++;
}

static void reposter(void *arg) {
  starve *st = arg;
  if (++st->reposts == 1) raise(SIGUSR1);
  if (st->timer_fired && st->sig_fired && st->posted == STARVE_POSTS) {
    cr_assert_eq(weft_close(&st->timer.base, NULL), 0);
    cr_assert_eq(weft_close(&st->sig.base, NULL), 0);
    return;
  }
  cr_assert_eq(weft_call_soon(st->loop, reposter, st), 0);
}

Test(loop, reposting_callback_cannot_starve_timers_signals_or_posts,
     .timeout = 20) {
  static starve st;
  st.loop = th_loop();
  weft_timer_init(st.loop, &st.timer);
  weft_signal_init(st.loop, &st.sig);
  st.timer.base.data = st.sig.base.data = &st;
  cr_assert_eq(weft_timer_start(&st.timer, starve_timer, 5, 0), 0);
  cr_assert_eq(weft_signal_start(&st.sig, starve_sig, SIGUSR1), 0);
  cr_assert_eq(weft_call_soon(st.loop, reposter, &st), 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, starve_thread, &st), 0);
  cr_assert_eq(weft_loop_run(st.loop, WEFT_RUN_DEFAULT), 0);
  pthread_join(th, NULL);
  cr_assert_eq(st.post_errors, 0);
  cr_assert_eq(st.timer_fired, 1);
  cr_assert_eq(st.sig_fired, 1);
  cr_assert_eq(st.posted, STARVE_POSTS);
  cr_assert_gt(st.reposts, 4096, "the reposter ran for more than one turn");
  th_loop_finish(st.loop);
}

/* ---- cross-thread posts ---------------------------------------------------
 */

#define TS_THREADS 4
#define TS_POSTS 100000

static struct {
  weft_loop *loop;
  unsigned next[TS_THREADS];
  long total, out_of_order, batches;
  bool marker_queued;
} TS;

static void batch_marker(void *arg) {
  (void)arg;
  TS.marker_queued = false;
}

static void ts_cb(void *arg) {
  uintptr_t v = (uintptr_t)arg;
  unsigned id = (unsigned)(v >> 24), seq = (unsigned)(v & 0xffffff);
  if (seq != TS.next[id]) TS.out_of_order++;
  TS.next[id] = seq + 1;
  /* a call_soon runs after the whole batch a wakeup delivered: one marker
   * per batch counts the wakeups */
  if (!TS.marker_queued) {
    TS.marker_queued = true;
    TS.batches++;
    weft_call_soon(TS.loop, batch_marker, NULL);
  }
  if (++TS.total == (long)TS_THREADS * TS_POSTS) weft_loop_unref(TS.loop);
}

static void *ts_thread(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  long errors = 0;
  for (uintptr_t seq = 0; seq < TS_POSTS; seq++)
    if (weft_call_soon_threadsafe(TS.loop, ts_cb, (void *)(id << 24 | seq)) !=
        0)
      errors++;
  return (void *)errors;
}

Test(loop, threadsafe_posts_from_4_threads_run_once_in_order, .timeout = 60) {
  TS.loop = th_loop();
  weft_loop_ref(TS.loop); /* posts alone do not keep the loop alive */
  pthread_t th[TS_THREADS];
  for (uintptr_t i = 0; i < TS_THREADS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, ts_thread, (void *)i), 0);
  cr_assert_eq(weft_loop_run(TS.loop, WEFT_RUN_DEFAULT), 0);
  for (int i = 0; i < TS_THREADS; i++) {
    void *errors;
    pthread_join(th[i], &errors);
    cr_assert_null(errors, "thread %d: %ld posts failed", i,
                   (long)(intptr_t)errors);
    cr_assert_eq(TS.next[i], TS_POSTS, "thread %d", i);
  }
  cr_assert_eq(TS.total, (long)TS_THREADS * TS_POSTS);
  cr_assert_eq(TS.out_of_order, 0);
  /* many posts per wakeup */
  cr_assert_lt(TS.batches * 4, TS.total, "%ld wakeups for %ld posts",
               TS.batches, TS.total);
  th_loop_finish(TS.loop);
}

Test(loop, threadsafe_post_from_the_loop_thread, .timeout = 5) {
  weft_loop *loop = th_loop();
  int ran = 0;
  weft_loop_ref(loop);
  cr_assert_eq(weft_call_soon_threadsafe(loop, inc, &ran), 0);
  cr_assert_eq(ran, 0, "ran inline");
  while (ran == 0)
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1);
  cr_assert_eq(ran, 1);
  weft_loop_unref(loop);
  th_loop_finish(loop);
}

/* Stop from another thread, once the loop thread sleeps in its poll: the
 * stopper reads the loop thread's scheduler state from /proc. */
typedef struct stopper {
  weft_loop *loop;
  pid_t tid;
  atomic_int go;
  bool saw_sleeping;
} stopper;

static char thread_state(pid_t tid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return '?';
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *paren = strrchr(buf, ')');
  return paren != NULL && paren[1] == ' ' ? paren[2] : '?';
}

static void *stop_thread(void *arg) {
  stopper *s = arg;
  while (!atomic_load(&s->go))
    sched_yield();
  uint64_t start = mono_ms();
  while (!(s->saw_sleeping = thread_state(s->tid) == 'S') &&
         mono_ms() - start < 5000)
    sched_yield();
  weft_loop_stop(s->loop);
  return NULL;
}

static void announce(void *arg) { atomic_store(&((stopper *)arg)->go, 1); }

Test(loop, stop_from_another_thread_wakes_a_blocked_poll, .timeout = 10) {
  static stopper s;
  s.loop = th_loop();
  s.tid = gettid();
  weft_loop_ref(s.loop); /* alive with nothing to do: blocks in the poll */
  weft_call_soon(s.loop, announce, &s);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, stop_thread, &s), 0);
  cr_assert_eq(weft_loop_run(s.loop, WEFT_RUN_DEFAULT), 1);
  pthread_join(th, NULL);
  cr_assert(s.saw_sleeping, "the loop thread never blocked");
  weft_loop_unref(s.loop);
  th_loop_finish(s.loop);
}

/* Posting while weft_loop_free() runs fails with -ESHUTDOWN, from the loop
 * thread and from another one; a module teardown is the window. */
typedef struct shut {
  weft_loop *loop;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stage, own_err, thread_err, ran;
} shut;

static void *shut_thread(void *arg) {
  shut *sd = arg;
  pthread_mutex_lock(&sd->mu);
  while (sd->stage < 1)
    pthread_cond_wait(&sd->cv, &sd->mu);
  pthread_mutex_unlock(&sd->mu);
  int err = weft_call_soon_threadsafe(sd->loop, inc, &sd->ran);
  pthread_mutex_lock(&sd->mu);
  sd->thread_err = err;
  sd->stage = 2;
  pthread_cond_signal(&sd->cv);
  pthread_mutex_unlock(&sd->mu);
  return NULL;
}

static void shut_teardown(weft_loop *loop, void *state) {
  shut *sd = state;
  sd->own_err = weft_call_soon_threadsafe(loop, inc, &sd->ran);
  pthread_mutex_lock(&sd->mu);
  sd->stage = 1;
  pthread_cond_signal(&sd->cv);
  while (sd->stage < 2)
    pthread_cond_wait(&sd->cv, &sd->mu);
  pthread_mutex_unlock(&sd->mu);
}

Test(loop, posting_to_a_loop_being_freed_gets_eshutdown, .timeout = 10) {
  static shut sd = {.mu = PTHREAD_MUTEX_INITIALIZER,
                    .cv = PTHREAD_COND_INITIALIZER};
  sd.loop = th_loop();
  weft__module_set(sd.loop, WEFT__MOD_PROCESS, &sd, shut_teardown);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, shut_thread, &sd), 0);
  cr_assert_eq(weft_loop_free(sd.loop), 0);
  pthread_join(th, NULL);
  cr_assert_eq(sd.own_err, -ESHUTDOWN);
  cr_assert_eq(sd.thread_err, -ESHUTDOWN);
  cr_assert_eq(sd.ran, 0);
  cr_assert_eq(weft_alloc_live(), 0);
}

/* ---- the handle base ------------------------------------------------------
 */

static void count_close(weft_handle *h) { ++*(int *)h->data; }
static void never_timer(weft_timer *t) {
  cr_assert_fail("timer %p ran", (void *)t);
}
static void never_signal(weft_signal *s, int signum) {
  cr_assert_fail("signal handle %p ran for %d", (void *)s, signum);
}

Test(handle, data_type_and_loop, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  weft_signal s;
  int x;
  t.base.data = &x; /* init leaves data alone */
  weft_timer_init(loop, &t);
  weft_signal_init(loop, &s);
  s.base.data = &s;
  cr_assert_eq(t.base.data, &x);
  cr_assert_eq(s.base.data, &s);
  cr_assert_eq(weft_handle_loop(&t.base), loop);
  cr_assert_null(weft_handle_loop(NULL));
  cr_assert_eq(weft_handle_get_type(&t.base), WEFT_HANDLE_TIMER);
  cr_assert_eq(weft_handle_get_type(&s.base), WEFT_HANDLE_SIGNAL);
  cr_assert_eq(weft_handle_get_type(NULL), WEFT_HANDLE_UNKNOWN);
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_TIMER), "timer");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_SIGNAL), "signal");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_TCP), "tcp");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_UNKNOWN), "unknown");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_TYPE_MAX), "unknown");
  cr_assert_str_eq(weft_handle_type_name((weft_handle_type)-1), "unknown");
  cr_assert(!weft_is_active(NULL));
  cr_assert(!weft_is_closing(NULL));
  cr_assert(!weft_has_ref(NULL));
  weft_ref(NULL);
  weft_unref(NULL);
  th_loop_finish(loop);
}

Test(handle, unreferenced_handle_does_not_keep_run_alive, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int fired = 0;
  weft_timer_init(loop, &t);
  t.base.data = &fired;
  cr_assert(weft_has_ref(&t.base));
  weft_unref(&t.base); /* before start: remembered */
  weft_unref(&t.base);
  cr_assert(!weft_has_ref(&t.base));
  weft_timer_start(&t, on_count, 60000, 0);
  cr_assert(weft_is_active(&t.base));
  cr_assert(!weft_loop_alive(loop));
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  weft_ref(&t.base);
  weft_ref(&t.base);
  cr_assert(weft_loop_alive(loop));
  weft_unref(&t.base);
  cr_assert(!weft_loop_alive(loop));
  weft_ref(&t.base);
  weft_timer_stop(&t);
  cr_assert(!weft_loop_alive(loop), "an inactive handle keeps nothing alive");
  cr_assert_eq(fired, 0);
  th_loop_finish(loop);
}

Test(handle, close_callback_runs_later_exactly_once, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int closed = 0;
  weft_timer_init(loop, &t);
  t.base.data = &closed;
  weft_timer_start(&t, never_timer, 0, 0);
  cr_assert_eq(weft_close(&t.base, count_close), 0);
  cr_assert_eq(closed, 0, "close callback ran inline");
  cr_assert(weft_is_closing(&t.base));
  cr_assert(!weft_is_active(&t.base), "close stops the handle at once");
  cr_assert(weft_loop_alive(loop), "a closing handle keeps the loop alive");
  cr_assert_eq(weft_close(&t.base, count_close), -EALREADY);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(closed, 1);
  cr_assert(weft_is_closing(&t.base), "closed is still closing");
  cr_assert_eq(weft_close(&t.base, count_close), -EALREADY);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(closed, 1);
  th_loop_finish(loop);
}

Test(handle, close_rejects_bad_input, .timeout = 5) {
  weft_timer zeroed = {0};
  cr_assert_eq(weft_close(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_close(&zeroed.base, NULL), -EINVAL);
}

static void free_in_close(weft_handle *h) {
  int *closed = h->data;
  free(h);
  ++*closed;
}

Test(handle, heap_handles_may_be_freed_in_the_close_callback, .timeout = 5) {
  weft_loop *loop = th_loop();
  int closed = 0;
  for (int i = 0; i < 10; i++) {
    weft_timer *t = malloc(sizeof *t);
    weft_signal *s = malloc(sizeof *s);
    weft_timer_init(loop, t);
    weft_signal_init(loop, s);
    t->base.data = s->base.data = &closed;
    weft_timer_start(t, never_timer, 0, 0);
    weft_signal_start(s, never_signal, SIGUSR1);
    weft_close(&t->base, free_in_close);
    weft_close(&s->base, free_in_close);
  }
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(closed, 20);
  th_loop_finish(loop);
}

static void close_other(weft_handle *h) {
  weft_handle *other = weft_loop_get_data(weft_handle_loop(h));
  ++*(int *)h->data;
  cr_assert_eq(weft_close(other, count_close), 0);
  cr_assert_eq(*(int *)other->data, 0);
}

Test(handle, close_requested_in_a_close_callback_finishes_later, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer a, b;
  int ca = 0, cb = 0;
  weft_timer_init(loop, &a);
  weft_timer_init(loop, &b);
  a.base.data = &ca;
  b.base.data = &cb;
  weft_loop_set_data(loop, &b.base);
  weft_close(&a.base, close_other);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1, "b still closing");
  cr_assert_eq(ca, 1);
  cr_assert_eq(cb, 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(cb, 1);
  th_loop_finish(loop);
}

typedef struct walk_log {
  weft_handle *seen[8];
  int n;
  bool close;
} walk_log;

static void walker(weft_handle *h, void *arg) {
  walk_log *w = arg;
  w->seen[w->n++] = h;
  if (w->close) cr_assert_eq(weft_close(h, NULL), 0);
}

Test(handle, walk_visits_open_handles_in_creation_order, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t1, t2;
  weft_signal s;
  weft_timer_init(loop, &t1);
  weft_signal_init(loop, &s);
  weft_timer_init(loop, &t2);
  walk_log w = {0};
  weft_walk(loop, walker, &w);
  cr_assert_eq(w.n, 3);
  cr_assert_eq(w.seen[0], &t1.base);
  cr_assert_eq(w.seen[1], &s.base);
  cr_assert_eq(w.seen[2], &t2.base);
  weft_close(&s.base, NULL); /* listed until its close has finished */
  w.n = 0;
  weft_walk(loop, walker, &w);
  cr_assert_eq(w.n, 3);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  w = (walk_log){.close = true};
  weft_walk(loop, walker, &w); /* closing from the visitor is allowed */
  cr_assert_eq(w.n, 2);
  cr_assert_eq(w.seen[0], &t1.base);
  cr_assert_eq(w.seen[1], &t2.base);
  weft_walk(NULL, walker, &w);
  weft_walk(loop, NULL, &w);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  w = (walk_log){0};
  weft_walk(loop, walker, &w);
  cr_assert_eq(w.n, 0);
  th_loop_finish(loop);
}
