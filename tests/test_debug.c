/* The debug mode (weft_loop_options.debug, $WEFT_DEBUG): wrong-thread calls
 * caught, re-init of an open or closing handle caught, and
 * weft_loop_debug_dump's exact output. */
#include "support/test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static weft_loop *debug_loop(void) {
  weft_loop_options o = {0};
  o.debug = 1;
  weft_loop *loop = NULL;
  int err = weft_loop_new(&loop, &o);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  cr_assert(weft_loop_is_debug(loop));
  return loop;
}

#define EXPECT(call, want)                                                     \
  do {                                                                         \
    int got_ = (call);                                                         \
    cr_assert_eq(got_, (want), "%s: %s, want %s", #call, weft_err_name(got_),  \
                 weft_err_name(want));                                         \
  } while (0)

static int fired;
static void on_timer(weft_timer *t) {
  (void)t;
  fired++;
}
static int soon_ran;
static void soon_cb(void *arg) {
  (void)arg;
  soon_ran++;
}
static int closed;
static void on_closed(weft_handle *h) {
  (void)h;
  closed++;
}

/* ---- turning it on ------------------------------------------------------- */

Test(debug, off_by_default_on_by_option_or_environment, .timeout = 5) {
  unsetenv("WEFT_DEBUG");
  weft_loop *a = th_loop();
  cr_assert(!weft_loop_is_debug(a));
  cr_assert(!weft_loop_is_debug(NULL));
  weft_loop *b = debug_loop();
  const char *on[] = {"1", "yes"}, *off[] = {"0", ""};
  for (int i = 0; i < 2; i++) {
    setenv("WEFT_DEBUG", on[i], 1);
    weft_loop *c = th_loop();
    cr_assert(weft_loop_is_debug(c), "WEFT_DEBUG=%s", on[i]);
    th_loop_close(c);
    setenv("WEFT_DEBUG", off[i], 1);
    c = th_loop();
    cr_assert(!weft_loop_is_debug(c), "WEFT_DEBUG='%s'", off[i]);
    th_loop_close(c);
  }
  unsetenv("WEFT_DEBUG");
  cr_assert_str_eq(weft_err_name(WEFT_EWRONGTHREAD), "WEFT_EWRONGTHREAD");
  th_loop_close(b);
  th_loop_finish(a);
}

/* ---- the thread check ---------------------------------------------------- */

typedef struct runner {
  weft_loop *loop;
  pthread_t thread;
  atomic_int running;
  int rc;
} runner;

static void mark_running(void *arg) {
  runner *r = arg;
  atomic_store(&r->running, 1);
}

static void *run_loop(void *arg) {
  runner *r = arg;
  r->rc = weft_loop_run(r->loop, WEFT_RUN_DEFAULT);
  return NULL;
}

/* Runs r->loop on a thread of its own (kept alive by a weft_loop_ref) and
 * returns once its first turn has run. */
static void runner_start(runner *r, weft_loop *loop) {
  r->loop = loop;
  atomic_init(&r->running, 0);
  weft_loop_ref(loop);
  EXPECT(weft_call_soon(loop, mark_running, r), 0);
  cr_assert_eq(pthread_create(&r->thread, NULL, run_loop, r), 0);
  while (!atomic_load(&r->running))
    sched_yield();
}

static void runner_stop(runner *r) {
  weft_loop_stop(r->loop);
  cr_assert_eq(pthread_join(r->thread, NULL), 0);
  cr_assert_eq(r->rc, 1); /* the weft_loop_ref still holds it */
  weft_loop_unref(r->loop);
}

static int then_ran;
static int then_fn(weft_future *in, weft_future *out, void *arg) {
  (void)in, (void)arg;
  then_ran++;
  return weft_future_resolve_i64(out, 1);
}

Test(debug, calls_from_another_thread_while_the_loop_runs_are_caught,
     .timeout = 10) {
  weft_loop *loop = debug_loop();
  weft_timer t;
  EXPECT(weft_timer_init(loop, &t), 0);
  weft_pipe a, b;
  EXPECT(weft_pipe_init(loop, &a), 0);
  EXPECT(weft_pipe_init(loop, &b), 0);
  EXPECT(weft_pipe_pair(loop, &a, &b), 0);
  weft_future *f;
  EXPECT(weft_future_new(loop, &f), 0);
  weft_future *g;
  EXPECT(weft_future_then(f, then_fn, NULL, &g), 0);
  weft_loop_metrics m;

  runner r;
  runner_start(&r, loop);
  /* this thread is not the one running the loop: every call is refused */
  EXPECT(weft_timer_start(&t, on_timer, 0, 0), WEFT_EWRONGTHREAD);
  EXPECT(weft_timer_stop(&t), WEFT_EWRONGTHREAD);
  EXPECT(weft_timer_set_repeat(&t, 5), WEFT_EWRONGTHREAD);
  EXPECT(weft_call_soon(loop, soon_cb, NULL), WEFT_EWRONGTHREAD);
  EXPECT(weft_close(&t.base, on_closed), WEFT_EWRONGTHREAD);
  EXPECT(weft_handle_set_name(&t.base, "x"), WEFT_EWRONGTHREAD);
  char byte = 'x';
  weft_buf buf = {&byte, 1};
  weft_write_req wr;
  EXPECT(weft_stream_write(&wr, &a.stream, &buf, 1, NULL), WEFT_EWRONGTHREAD);
  EXPECT(weft_stream_read_stop(&b.stream), WEFT_EWRONGTHREAD);
  weft_future *rf = NULL;
  char in[4];
  EXPECT(weft_stream_read_some_future(&b.stream, in, sizeof in, &rf),
         WEFT_EWRONGTHREAD);
  cr_assert_null(rf);
  EXPECT(weft_future_resolve_i64(f, 7), WEFT_EWRONGTHREAD);
  EXPECT(weft_future_resolve(f, NULL, NULL), WEFT_EWRONGTHREAD);
  EXPECT(weft_future_reject(f, -EIO), WEFT_EWRONGTHREAD);
  EXPECT(weft_future_cancel(g), WEFT_EWRONGTHREAD);
  weft_tcp tcp;
  EXPECT(weft_tcp_init(loop, &tcp), WEFT_EWRONGTHREAD);
  weft_udp udp;
  EXPECT(weft_udp_init(loop, &udp), WEFT_EWRONGTHREAD);
  EXPECT(weft_loop_get_metrics(loop, &m, sizeof m), WEFT_EWRONGTHREAD);
  EXPECT(weft_loop_debug_dump(loop, STDERR_FILENO), WEFT_EWRONGTHREAD);
  EXPECT(weft_loop_run(loop, WEFT_RUN_NOWAIT), WEFT_EWRONGTHREAD);
  weft_unref(&t.base); /* returns nothing: refused, changes nothing */
  runner_stop(&r);

  /* nothing changed, and between runs this thread may use the loop */
  cr_assert(!weft_is_active(&t.base));
  cr_assert(weft_has_ref(&t.base));
  cr_assert(!weft_is_closing(&t.base));
  cr_assert_null(weft_handle_get_name(&t.base));
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_PENDING);
  EXPECT(weft_loop_get_metrics(loop, &m, sizeof m), 0);
  cr_assert_eq(m.deferred, 1); /* mark_running only */
  cr_assert_eq(soon_ran, 0);
  cr_assert_eq(weft_loop_get_metrics(loop, &m, sizeof m), 0);

  EXPECT(weft_timer_start(&t, on_timer, 0, 0), 0);
  EXPECT(weft_future_resolve_i64(f, 7), 0);
  th_run(loop);
  cr_assert_eq(fired, 1);
  cr_assert_eq(then_ran, 1);
  cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_FULFILLED);
  weft_future_unref(f);
  weft_future_unref(g);
  EXPECT(weft_close(&t.base, on_closed), 0);
  EXPECT(weft_close(&a.stream.base, on_closed), 0);
  EXPECT(weft_close(&b.stream.base, on_closed), 0);
  th_run(loop);
  cr_assert_eq(closed, 3);
  EXPECT(weft_loop_free(loop), 0);
}

/* The loop's own thread is never refused, from callbacks or between them. */
static void start_from_callback(void *arg) {
  weft_timer *t = arg;
  int err = weft_timer_start(t, on_timer, 0, 0);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}

Test(debug, the_loops_own_thread_is_never_refused, .timeout = 5) {
  weft_loop *loop = debug_loop();
  weft_timer t;
  EXPECT(weft_timer_init(loop, &t), 0);
  EXPECT(weft_call_soon(loop, start_from_callback, &t), 0);
  th_run(loop);
  cr_assert_eq(fired, 1);
  EXPECT(weft_close(&t.base, NULL), 0);
  th_run(loop);
  th_loop_finish(loop);
}

/* Debug off: the same calls from another thread between runs behave as
 * before (no check, no message), and nothing is refused on the loop's
 * thread. */
Test(debug, off_the_thread_is_not_checked, .timeout = 5) {
  unsetenv("WEFT_DEBUG");
  weft_loop *loop = th_loop();
  cr_assert(!weft_loop_is_debug(loop));
  weft_timer t;
  EXPECT(weft_timer_init(loop, &t), 0);
  runner r;
  runner_start(&r, loop);
  runner_stop(&r);
  EXPECT(weft_timer_start(&t, on_timer, 0, 0), 0);
  th_run(loop);
  cr_assert_eq(fired, 1);
  EXPECT(weft_close(&t.base, on_closed), 0);
  th_run(loop);
  cr_assert_eq(closed, 1);
  th_loop_finish(loop);
}

/* ---- re-init ------------------------------------------------------------- */

Test(debug, reinit_of_a_closing_or_open_handle_is_caught, .timeout = 5) {
  weft_loop *loop = debug_loop();
  weft_timer t;
  EXPECT(weft_timer_init(loop, &t), 0);
  EXPECT(weft_timer_start(&t, on_timer, 1000, 0), 0);
  EXPECT(weft_timer_init(loop, &t), -EBUSY); /* open and active */
  cr_assert(weft_is_active(&t.base));
  EXPECT(weft_close(&t.base, on_closed), 0);
  EXPECT(weft_timer_init(loop, &t), -EBUSY); /* closing */
  cr_assert(weft_is_closing(&t.base));

  weft_tcp tcp;
  EXPECT(weft_tcp_init(loop, &tcp), 0);
  EXPECT(weft_close(&tcp.stream.base, on_closed), 0);
  EXPECT(weft_tcp_init(loop, &tcp), -EBUSY);
  weft_pipe p;
  EXPECT(weft_pipe_init(loop, &p), 0);
  EXPECT(weft_pipe_init(loop, &p), -EBUSY);
  weft_udp u;
  EXPECT(weft_udp_init(loop, &u), 0);
  EXPECT(weft_close(&u.base, on_closed), 0);
  EXPECT(weft_udp_init(loop, &u), -EBUSY);
  weft_signal s;
  EXPECT(weft_signal_init(loop, &s), 0);
  EXPECT(weft_signal_init(loop, &s), -EBUSY);
  weft_prepare pr;
  EXPECT(weft_prepare_init(loop, &pr), 0);
  EXPECT(weft_prepare_init(loop, &pr), -EBUSY);
  EXPECT(weft_close(&p.stream.base, on_closed), 0);
  EXPECT(weft_close(&s.base, on_closed), 0);
  EXPECT(weft_close(&pr.base, on_closed), 0);

  th_run(loop); /* every close finishes once: nothing was corrupted */
  cr_assert_eq(closed, 6);
  cr_assert_eq(fired, 0);
  /* closed: an init is fine again */
  EXPECT(weft_timer_init(loop, &t), 0);
  EXPECT(weft_tcp_init(loop, &tcp), 0);
  EXPECT(weft_close(&t.base, on_closed), 0);
  EXPECT(weft_close(&tcp.stream.base, on_closed), 0);
  th_run(loop);
  cr_assert_eq(closed, 8);
  th_loop_finish(loop);
}

/* ---- the dump ------------------------------------------------------------ */

/* What weft_loop_debug_dump wrote, through a pipe. */
static char *dump_of(weft_loop *loop) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  EXPECT(weft_loop_debug_dump(loop, fds[1]), 0);
  close(fds[1]);
  static char out[4096];
  size_t n = 0;
  ssize_t k;
  while ((k = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
    n += (size_t)k;
  close(fds[0]);
  out[n] = '\0';
  return out;
}

static void dump_scenario(bool debug) {
  weft_loop *loop = debug ? debug_loop() : th_loop();
  cr_assert_eq(weft_loop_is_debug(loop), debug);
  char want[2048];
  snprintf(want, sizeof want,
           "weft loop %p\nend: 0 handles, 0 pending futures\n", (void *)loop);
  cr_assert_str_eq(dump_of(loop), want);
  weft_timer tick, idle;
  weft_tcp tcp;
  EXPECT(weft_timer_init(loop, &tick), 0);
  EXPECT(weft_handle_set_name(&tick.base, "tick"), 0);
  cr_assert_str_eq(weft_handle_get_name(&tick.base), "tick");
  EXPECT(weft_timer_start(&tick, on_timer, 60000, 0), 0);
  weft_unref(&tick.base);
  EXPECT(weft_timer_init(loop, &idle), 0);
  EXPECT(weft_tcp_init(loop, &tcp), 0);
  EXPECT(weft_handle_set_name(&tcp.stream.base, "conn"), 0);
  EXPECT(weft_close(&tcp.stream.base, on_closed), 0);
  weft_future *plain, *named, *done;
  EXPECT(weft_future_new(loop, &plain), 0);
  EXPECT(weft_future_new(loop, &named), 0);
  EXPECT(weft_future_set_name(named, "answer"), 0);
  EXPECT(weft_future_new(loop, &done), 0);
  EXPECT(weft_future_resolve_i64(done, 1), 0); /* settled: not listed */

  snprintf(want, sizeof want,
           "weft loop %p\n"
           "handle timer %p active unref \"tick\"\n"
           "handle timer %p inactive\n"
           "handle tcp %p closing \"conn\"\n"
           "future plain %p pending op=weft_future_new\n"
           "future plain %p pending op=weft_future_new \"answer\"\n"
           "end: 3 handles, 2 pending futures\n",
           (void *)loop, (void *)&tick, (void *)&idle, (void *)&tcp,
           (void *)plain, (void *)named);
  cr_assert_str_eq(dump_of(loop), want);

  /* a closed handle and a settled future drop out; a renamed handle too */
  th_run(loop);
  cr_assert_eq(closed, 1);
  EXPECT(weft_handle_set_name(&tick.base, NULL), 0);
  EXPECT(weft_future_reject(plain, -EIO), 0);
  weft_future_unref(plain); /* observed nowhere: the report goes to stderr */
  snprintf(want, sizeof want,
           "weft loop %p\n"
           "handle timer %p active unref\n"
           "handle timer %p inactive\n"
           "future plain %p pending op=weft_future_new \"answer\"\n"
           "end: 2 handles, 1 pending futures\n",
           (void *)loop, (void *)&tick, (void *)&idle, (void *)named);
  cr_assert_str_eq(dump_of(loop), want);

  /* an init clears the name */
  EXPECT(weft_handle_set_name(&idle.base, "idle"), 0);
  EXPECT(weft_close(&idle.base, on_closed), 0);
  th_run(loop);
  EXPECT(weft_timer_init(loop, &idle), 0);
  cr_assert_null(weft_handle_get_name(&idle.base));

  weft_future_unref(named);
  weft_future_unref(done);
  EXPECT(weft_close(&tick.base, on_closed), 0);
  EXPECT(weft_close(&idle.base, on_closed), 0);
  th_run(loop);
  cr_assert_eq(closed, 4);
  th_loop_finish(loop);
}

Test(debug, dump_lists_handles_and_pending_futures_debug_on, .timeout = 5) {
  dump_scenario(true);
}

Test(debug, dump_is_the_same_with_debug_off, .timeout = 5) {
  unsetenv("WEFT_DEBUG");
  dump_scenario(false);
}

Test(debug, bad_inputs, .timeout = 5) {
  weft_loop *loop = debug_loop();
  EXPECT(weft_loop_debug_dump(NULL, STDERR_FILENO), -EINVAL);
  EXPECT(weft_loop_debug_dump(loop, -1), -EINVAL);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  EXPECT(weft_loop_debug_dump(loop, fds[0]), -EBADF); /* the read end */
  close(fds[0]);
  close(fds[1]);
  EXPECT(weft_handle_set_name(NULL, "x"), -EINVAL);
  weft_timer never = {0};
  EXPECT(weft_handle_set_name(&never.base, "x"), -EINVAL);
  cr_assert_null(weft_handle_get_name(NULL));
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- names live on the loop, not in weft_handle --------------------------
 * weft_handle has no name field (a TCP handle stays within its size
 * budget): the loop keeps a table of names, a named handle its slot. */

static int named_closed;
static const char *name_in_close_cb;

static void on_named_closed(weft_handle *h) {
  name_in_close_cb = weft_handle_get_name(h);
  named_closed++;
}

Test(debug, names_are_kept_per_handle_and_slots_are_reused, .timeout = 10) {
  cr_assert_leq(sizeof(weft_handle), 64);
  enum { N = 40 }; /* past the first table of 16 names, and the second */
  static weft_timer t[N];
  static char names[N][16];
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  for (int i = 0; i < N; i++) {
    EXPECT(weft_timer_init(loop, &t[i]), 0);
    snprintf(names[i], sizeof names[i], "t%d", i);
    EXPECT(weft_handle_set_name(&t[i].base, names[i]), 0);
  }
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_handle_get_name(&t[i].base), names[i], "t%d", i);
  /* a rename keeps the others; NULL removes one name only */
  EXPECT(weft_handle_set_name(&t[3].base, "three"), 0);
  EXPECT(weft_handle_set_name(&t[5].base, NULL), 0);
  EXPECT(weft_handle_set_name(&t[5].base, NULL), 0);
  cr_assert_str_eq(weft_handle_get_name(&t[3].base), "three");
  cr_assert_null(weft_handle_get_name(&t[5].base));
  cr_assert_eq(weft_handle_get_name(&t[4].base), names[4]);
  cr_assert_eq(weft_handle_get_name(&t[6].base), names[6]);
  EXPECT(weft_handle_set_name(&t[5].base, names[5]), 0);
  strcpy(names[3], "t3");
  EXPECT(weft_handle_set_name(&t[3].base, names[3]), 0);
  /* a finished close forgets the name before the close callback */
  named_closed = 0;
  name_in_close_cb = "unset";
  for (int i = 0; i < N / 2; i++)
    EXPECT(weft_close(&t[i].base, on_named_closed), 0);
  cr_assert_eq(weft_handle_get_name(&t[0].base), names[0],
               "a closing handle keeps its name until the close finishes");
  th_run(loop);
  cr_assert_eq(named_closed, N / 2);
  cr_assert_null(name_in_close_cb);
  for (int i = N / 2; i < N; i++)
    cr_assert_eq(weft_handle_get_name(&t[i].base), names[i], "t%d", i);
  /* the freed slots take new names without the table growing */
  size_t calls = th_alloc_calls();
  for (int i = 0; i < N / 2; i++) {
    EXPECT(weft_timer_init(loop, &t[i]), 0);
    cr_assert_null(weft_handle_get_name(&t[i].base));
    EXPECT(weft_handle_set_name(&t[i].base, names[N - 1 - i]), 0);
  }
  cr_assert_eq(th_alloc_calls(), calls, "naming into freed slots allocated");
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_handle_get_name(&t[i].base),
                 names[i < N / 2 ? N - 1 - i : i], "t%d", i);
  for (int i = 0; i < N; i++)
    EXPECT(weft_close(&t[i].base, NULL), 0);
  th_run(loop);
  th_loop_finish(loop);
  th_alloc_restore();
}

Test(debug, a_name_that_cannot_grow_the_table_is_enomem, .timeout = 10) {
  enum { FIRST = 16 }; /* the first table's size */
  static weft_timer t[FIRST + 1];
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  for (int i = 0; i <= FIRST; i++)
    EXPECT(weft_timer_init(loop, &t[i]), 0);
  th_alloc_arm(1);
  EXPECT(weft_handle_set_name(&t[0].base, "first"), -ENOMEM);
  cr_assert_eq(th_alloc_failed(), 1);
  cr_assert_null(weft_handle_get_name(&t[0].base));
  for (int i = 0; i < FIRST; i++)
    EXPECT(weft_handle_set_name(&t[i].base, "n"), 0);
  th_alloc_arm(1);
  EXPECT(weft_handle_set_name(&t[FIRST].base, "last"), -ENOMEM);
  cr_assert_eq(th_alloc_failed(), 2);
  cr_assert_null(weft_handle_get_name(&t[FIRST].base));
  /* a rename needs no room: it works while allocations fail */
  th_alloc_arm(1);
  EXPECT(weft_handle_set_name(&t[0].base, "renamed"), 0);
  cr_assert_str_eq(weft_handle_get_name(&t[0].base), "renamed");
  th_alloc_arm(0);
  EXPECT(weft_handle_set_name(&t[FIRST].base, "last"), 0);
  cr_assert_str_eq(weft_handle_get_name(&t[FIRST].base), "last");
  th_loop_usable(loop);
  for (int i = 0; i <= FIRST; i++)
    EXPECT(weft_close(&t[i].base, NULL), 0);
  th_run(loop);
  th_loop_finish(loop);
  th_alloc_restore();
}
