/* Loop phase hooks: prepare, check and idle handles (weft/hooks.h). */
#include "support/test.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a trace of what ran, in order ------------------------------------ */

typedef struct trace {
  weft_loop *loop;
  char buf[512];
  int n_prepare, n_check, n_idle, closed, timer_fired;
  int stop_idle_at;    /* idle stops itself at this count */
  weft_prepare *other; /* a prepare the first prepare stops or starts */
  weft_timer timer;
} trace;

static void note(trace *t, const char *what) {
  if (t->buf[0]) strcat(t->buf, " ");
  strcat(t->buf, what);
}

static void soon_prepare(void *arg) { note(arg, "soon(prepare)"); }
static void soon_io(void *arg) { note(arg, "soon(io)"); }
static void soon_check(void *arg) { note(arg, "soon(check)"); }
static void on_closed(weft_handle *h) { note(h->data, "close"); }

static void tr_idle(weft_idle *i) {
  trace *t = i->base.data;
  t->n_idle++;
  note(t, "idle");
}
static void tr_prepare(weft_prepare *p) {
  trace *t = p->base.data;
  t->n_prepare++;
  note(t, "prepare");
  weft_call_soon(t->loop, soon_prepare, t);
}
static void tr_check(weft_check *c) {
  trace *t = c->base.data;
  t->n_check++;
  note(t, "check");
  weft_call_soon(t->loop, soon_check, t);
  weft_close(&c->base, on_closed);
}
static void tr_timer(weft_timer *tm) { note(tm->base.data, "timer"); }
static void tr_io(weft_poll *p, int status, int events, void *arg) {
  trace *t = arg;
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  cr_assert_eq(events, WEFT_POLL_READABLE);
  note(t, "io");
  weft_call_soon(t->loop, soon_io, t);
  weft_poll_stop(p);
}

Test(hooks, one_turn_runs_idle_prepare_poll_timers_io_check_soon_close,
     .timeout = 5) {
  static trace t;
  memset(&t, 0, sizeof t);
  weft_loop *loop = t.loop = th_loop();
  weft_idle idle;
  weft_prepare prep;
  weft_check chk;
  weft_poll poll;
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(write(fds[1], "x", 1), 1);
  idle.base.data = prep.base.data = chk.base.data = t.timer.base.data = &t;
  cr_assert_eq(weft_idle_init(loop, &idle), 0);
  cr_assert_eq(weft_prepare_init(loop, &prep), 0);
  cr_assert_eq(weft_check_init(loop, &chk), 0);
  cr_assert_eq(weft_poll_init(loop, &poll, fds[0]), 0);
  cr_assert_eq(weft_timer_init(loop, &t.timer), 0);
  cr_assert_eq(weft_timer_start(&t.timer, tr_timer, 0, 0), 0);
  cr_assert_eq(weft_check_start(&chk, tr_check), 0);
  cr_assert_eq(weft_prepare_start(&prep, tr_prepare), 0);
  cr_assert_eq(weft_idle_start(&idle, tr_idle), 0);
  cr_assert_eq(weft_poll_start(&poll, WEFT_POLL_READABLE, tr_io, &t), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1);
  cr_assert_str_eq(t.buf, "idle prepare timer io check soon(prepare) soon(io) "
                          "soon(check) close");
  /* the next turn: only idle and prepare are left */
  t.buf[0] = 0;
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1);
  cr_assert_str_eq(t.buf, "idle prepare soon(prepare)");
  cr_assert_eq(t.n_check, 1);
  weft_close(&poll.base, NULL);
  close(fds[0]);
  close(fds[1]);
  th_loop_finish(loop);
}

/* ---- idle: a turn per poll, until stopped ----------------------------- */

static void count_prepare(weft_prepare *p) {
  ++((trace *)p->base.data)->n_prepare;
}
static void count_check(weft_check *c) { ++((trace *)c->base.data)->n_check; }
static void count_idle(weft_idle *i) {
  trace *t = i->base.data;
  if (++t->n_idle == t->stop_idle_at) weft_idle_stop(i);
}

Test(hooks, idle_spins_the_loop_once_per_turn_until_stopped, .timeout = 5) {
  static trace t;
  memset(&t, 0, sizeof t);
  weft_loop *loop = th_loop();
  weft_idle idle;
  weft_prepare prep;
  weft_check chk;
  idle.base.data = prep.base.data = chk.base.data = &t;
  t.stop_idle_at = 100;
  weft_idle_init(loop, &idle);
  weft_prepare_init(loop, &prep);
  weft_check_init(loop, &chk);
  weft_prepare_start(&prep, count_prepare);
  weft_check_start(&chk, count_check);
  weft_unref(&prep.base); /* they count turns but keep nothing alive */
  weft_unref(&chk.base);
  cr_assert_eq(weft_idle_start(&idle, count_idle), 0);
  cr_assert(weft_is_active(&idle.base));
  cr_assert(weft_loop_alive(loop));
  th_run(loop); /* returns: the idle handle stopped itself */
  cr_assert_eq(t.n_idle, 100);
  cr_assert_eq(t.n_prepare, 100, "one prepare per turn");
  cr_assert_eq(t.n_check, 100, "one check per turn");
  cr_assert(!weft_is_active(&idle.base));
  cr_assert(!weft_loop_alive(loop));
  /* stopped, it no longer runs */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0);
  cr_assert_eq(t.n_idle, 100);
  cr_assert_eq(t.n_prepare, 101);
  th_loop_finish(loop);
}

static void never_io(weft_poll *p, int status, int events, void *arg) {
  (void)p;
  (void)status;
  (void)events;
  (void)arg;
  cr_assert_fail("nothing was written");
}

Test(hooks, a_started_idle_keeps_the_poll_from_blocking, .timeout = 5) {
  static trace t;
  memset(&t, 0, sizeof t);
  weft_loop *loop = th_loop();
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  weft_poll poll; /* a referenced watcher that never fires */
  weft_poll_init(loop, &poll, fds[0]);
  weft_poll_start(&poll, WEFT_POLL_READABLE, never_io, NULL);
  weft_idle idle;
  idle.base.data = &t;
  weft_idle_init(loop, &idle);
  weft_idle_start(&idle, count_idle);
  weft_unref(&idle.base); /* unreferenced, it still spins the loop */
  for (int i = 1; i <= 5; i++) {
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1); /* never blocks */
    cr_assert_eq(t.n_idle, i);
    cr_assert_eq(weft_loop_backend_timeout(loop), 0, "a host must not sleep");
  }
  weft_idle_stop(&idle);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(t.n_idle, 5);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1, "nothing due: may block");
  weft_close(&poll.base, NULL);
  close(fds[0]);
  close(fds[1]);
  th_loop_finish(loop);
}

/* ---- a prepare callback's work counts for the poll that follows -------- */

static void on_timer_fired(weft_timer *tm) {
  ++((trace *)tm->base.data)->timer_fired;
}
static void prepare_starts_timer(weft_prepare *p) {
  trace *t = p->base.data;
  t->n_prepare++;
  weft_timer_start(&t->timer, on_timer_fired, 0, 0);
  weft_prepare_stop(p);
}

Test(hooks, a_timer_started_in_prepare_is_armed_for_this_poll, .timeout = 5) {
  static trace t;
  memset(&t, 0, sizeof t);
  weft_loop *loop = th_loop();
  weft_prepare prep;
  prep.base.data = t.timer.base.data = &t;
  weft_timer_init(loop, &t.timer);
  weft_prepare_init(loop, &prep);
  weft_prepare_start(&prep, prepare_starts_timer);
  /* a ONCE turn would block forever if the timer were armed after the poll */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(t.n_prepare, 1);
  cr_assert_eq(t.timer_fired, 1);
  th_loop_finish(loop);
}

/* ---- starting, stopping and closing from callbacks --------------------- */

typedef struct pair {
  weft_prepare a, b, c;
  int ran_a, ran_b, ran_c;
} pair;

static void run_c(weft_prepare *p) { ((pair *)p->base.data)->ran_c++; }
static void run_b(weft_prepare *p) { ((pair *)p->base.data)->ran_b++; }
static void run_a(weft_prepare *p) {
  pair *x = p->base.data;
  x->ran_a++;
  if (x->ran_a == 1) {
    weft_prepare_stop(&x->b);         /* later in the batch: skipped */
    weft_prepare_start(&x->c, run_c); /* new: from the next turn */
    weft_prepare_stop(p);             /* itself */
    cr_assert_eq(weft_prepare_start(p, run_a), 0); /* and back: next turn */
  } else if (x->ran_a == 3) {
    weft_prepare_stop(p);
    weft_prepare_stop(&x->c);
  }
}

Test(hooks, start_and_stop_inside_callbacks_take_effect_next_turn,
     .timeout = 5) {
  weft_loop *loop = th_loop();
  static pair x;
  memset(&x, 0, sizeof x);
  x.a.base.data = x.b.base.data = x.c.base.data = &x;
  weft_prepare_init(loop, &x.a);
  weft_prepare_init(loop, &x.b);
  weft_prepare_init(loop, &x.c);
  weft_prepare_start(&x.a, run_a);
  weft_prepare_start(&x.b, run_b);
  weft_unref(&x.b.base);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(x.ran_a, 1);
  cr_assert_eq(x.ran_b, 0, "stopped by an earlier callback of the phase");
  cr_assert_eq(x.ran_c, 0, "started during the phase: next turn");
  cr_assert(weft_is_active(&x.a.base));
  cr_assert(!weft_is_active(&x.b.base));
  /* a prepare alone keeps the loop alive but does not stop the poll from
   * blocking (as in libuv): turn the loop without waiting */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0); /* both stopped */
  cr_assert_eq(x.ran_a, 3);
  cr_assert_eq(x.ran_c, 2);
  cr_assert_eq(x.ran_b, 0);
  /* restarting a started handle only replaces the callback */
  weft_prepare_start(&x.b, run_b);
  cr_assert_eq(weft_prepare_start(&x.b, run_c), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 0); /* b is unref'd */
  cr_assert_eq(x.ran_b, 0);
  cr_assert_eq(x.ran_c, 3);
  th_loop_finish(loop);
}

static int heap_closed;
static void free_on_close(weft_handle *h) {
  heap_closed++;
  free(h);
}
static void check_closes_itself(weft_check *c) {
  ++*(int *)c->base.data;
  cr_assert_eq(weft_close(&c->base, free_on_close), 0);
  cr_assert_eq(weft_check_start(c, check_closes_itself), -EINVAL);
  cr_assert_eq(weft_close(&c->base, free_on_close), -EALREADY);
}
static void idle_closes_itself(weft_idle *i) {
  ++*(int *)i->base.data;
  weft_close(&i->base, free_on_close);
}

Test(hooks, close_inside_the_callback_finishes_in_the_same_turn, .timeout = 5) {
  weft_loop *loop = th_loop();
  heap_closed = 0;
  int ran = 0;
  weft_check *c = malloc(sizeof *c);
  weft_idle *i = malloc(sizeof *i);
  c->base.data = i->base.data = &ran;
  weft_check_init(loop, c);
  weft_idle_init(loop, i);
  weft_check_start(c, check_closes_itself);
  weft_idle_start(i, idle_closes_itself);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 0);
  cr_assert_eq(ran, 2);
  cr_assert_eq(heap_closed, 2, "close callbacks ran in that turn");
  cr_assert(!weft_loop_alive(loop));
  th_loop_finish(loop);
}

static void never_prepare(weft_prepare *p) {
  (void)p;
  cr_assert_fail("a closed prepare ran");
}

Test(hooks, a_hook_closed_before_its_phase_does_not_run, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_prepare p;
  weft_prepare_init(loop, &p);
  weft_prepare_start(&p, never_prepare);
  cr_assert_eq(weft_close(&p.base, NULL), 0);
  cr_assert(!weft_is_active(&p.base));
  th_run(loop);
  th_loop_finish(loop);
}

/* ---- ref/unref, walk, types ------------------------------------------- */

static void stop_on_timer(weft_timer *tm) { weft_idle_stop(tm->base.data); }

Test(hooks, unreferenced_hooks_do_not_keep_the_loop_alive, .timeout = 5) {
  weft_loop *loop = th_loop();
  static trace t;
  memset(&t, 0, sizeof t);
  weft_prepare p;
  weft_check c;
  weft_idle i;
  p.base.data = c.base.data = i.base.data = &t;
  weft_prepare_init(loop, &p);
  weft_check_init(loop, &c);
  weft_idle_init(loop, &i);
  weft_unref(&p.base);
  weft_unref(&c.base);
  weft_unref(&i.base);
  weft_prepare_start(&p, count_prepare);
  weft_check_start(&c, count_check);
  weft_idle_start(&i, count_idle);
  cr_assert(!weft_has_ref(&i.base));
  cr_assert(!weft_loop_alive(loop));
  th_run(loop); /* returns at once: nothing referenced */
  cr_assert_eq(t.n_idle, 0);
  /* referenced again, idle keeps it running until a timer stops it */
  weft_ref(&i.base);
  cr_assert(weft_loop_alive(loop));
  weft_timer tm;
  weft_timer_init(loop, &tm);
  tm.base.data = &i;
  weft_timer_start(&tm, stop_on_timer, 20, 0);
  th_run(loop);
  cr_assert_gt(t.n_idle, 1, "idle ran every turn until the timer");
  cr_assert_eq(t.n_prepare, t.n_idle);
  cr_assert_eq(t.n_check, t.n_idle);
  th_loop_finish(loop); /* closes the started, unreferenced p and c */
}

static void walk_types(weft_handle *h, void *arg) {
  int *seen = arg;
  seen[weft_handle_get_type(h)]++;
}

Test(hooks, types_names_and_walk, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_prepare p;
  weft_check c;
  weft_idle i;
  weft_prepare_init(loop, &p);
  weft_check_init(loop, &c);
  weft_idle_init(loop, &i);
  cr_assert_eq(weft_handle_get_type(&p.base), WEFT_HANDLE_PREPARE);
  cr_assert_eq(weft_handle_get_type(&c.base), WEFT_HANDLE_CHECK);
  cr_assert_eq(weft_handle_get_type(&i.base), WEFT_HANDLE_IDLE);
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_PREPARE), "prepare");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_CHECK), "check");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_IDLE), "idle");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_POLL), "poll");
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_TYPE_MAX), "unknown");
  int seen[WEFT_HANDLE_TYPE_MAX] = {0};
  weft_walk(loop, walk_types, seen);
  cr_assert_eq(seen[WEFT_HANDLE_PREPARE], 1);
  cr_assert_eq(seen[WEFT_HANDLE_CHECK], 1);
  cr_assert_eq(seen[WEFT_HANDLE_IDLE], 1);
  th_loop_finish(loop);
}

/* ---- bad input, allocation -------------------------------------------- */

static void any_check(weft_check *c) { (void)c; }
static void any_idle(weft_idle *i) { (void)i; }

Test(hooks, bad_input_is_rejected, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_prepare p;
  weft_check c;
  weft_idle i;
  cr_assert_eq(weft_prepare_init(NULL, &p), -EINVAL);
  cr_assert_eq(weft_prepare_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_check_init(NULL, &c), -EINVAL);
  cr_assert_eq(weft_check_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_idle_init(NULL, &i), -EINVAL);
  cr_assert_eq(weft_idle_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_prepare_start(NULL, count_prepare), -EINVAL);
  cr_assert_eq(weft_check_start(NULL, any_check), -EINVAL);
  cr_assert_eq(weft_idle_start(NULL, any_idle), -EINVAL);
  cr_assert_eq(weft_prepare_stop(NULL), -EINVAL);
  cr_assert_eq(weft_check_stop(NULL), -EINVAL);
  cr_assert_eq(weft_idle_stop(NULL), -EINVAL);
  weft_prepare_init(loop, &p);
  weft_check_init(loop, &c);
  weft_idle_init(loop, &i);
  cr_assert_eq(weft_prepare_start(&p, NULL), -EINVAL);
  cr_assert_eq(weft_check_start(&c, NULL), -EINVAL);
  cr_assert_eq(weft_idle_start(&i, NULL), -EINVAL);
  /* a handle of another kind (same layout) */
  cr_assert_eq(weft_check_start((weft_check *)(void *)&p, any_check), -EINVAL);
  cr_assert_eq(weft_idle_stop((weft_idle *)(void *)&c), -EINVAL);
  cr_assert(!weft_is_active(&p.base));
  cr_assert_eq(weft_prepare_stop(&p), 0, "stopping a stopped one is a no-op");
  /* a closed one cannot start */
  weft_close(&i.base, NULL);
  cr_assert_eq(weft_idle_start(&i, any_idle), -EINVAL);
  cr_assert_eq(weft_idle_stop(&i), 0);
  th_run(loop);
  cr_assert_eq(weft_idle_start(&i, any_idle), -EINVAL, "closed");
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(hooks, nothing_allocates, .timeout = 5) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  static trace t;
  memset(&t, 0, sizeof t);
  size_t before = th_alloc_calls();
  th_alloc_arm(1); /* the next allocation would fail */
  weft_prepare p;
  weft_check c;
  weft_idle i;
  p.base.data = c.base.data = i.base.data = &t;
  t.stop_idle_at = 10;
  cr_assert_eq(weft_prepare_init(loop, &p), 0);
  cr_assert_eq(weft_check_init(loop, &c), 0);
  cr_assert_eq(weft_idle_init(loop, &i), 0);
  cr_assert_eq(weft_prepare_start(&p, count_prepare), 0);
  cr_assert_eq(weft_check_start(&c, count_check), 0);
  cr_assert_eq(weft_idle_start(&i, count_idle), 0);
  weft_unref(&p.base);
  weft_unref(&c.base);
  th_run(loop);
  cr_assert_eq(t.n_idle, 10);
  cr_assert_eq(t.n_check, 10);
  weft_close(&p.base, NULL);
  weft_close(&c.base, NULL);
  weft_close(&i.base, NULL);
  th_run(loop);
  cr_assert_eq(th_alloc_calls(), before);
  cr_assert_eq(th_alloc_failed(), 0);
  th_alloc_arm(0);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* ---- embedding: a host's ev_run drives them --------------------------- */

Test(hooks, a_host_ev_run_drives_the_hooks, .timeout = 5) {
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  weft_loop *loop = NULL;
  cr_assert_eq(weft_loop_from_ev(&loop, ev, NULL), 0);
  static trace t;
  memset(&t, 0, sizeof t);
  t.stop_idle_at = 7;
  weft_prepare p;
  weft_check c;
  weft_idle i;
  p.base.data = c.base.data = i.base.data = &t;
  weft_prepare_init(loop, &p);
  weft_check_init(loop, &c);
  weft_idle_init(loop, &i);
  weft_prepare_start(&p, count_prepare);
  weft_check_start(&c, count_check);
  weft_idle_start(&i, count_idle);
  weft_unref(&p.base);
  weft_unref(&c.base);
  ev_run(ev, 0); /* the host's run ends when the idle handle stops */
  cr_assert_eq(t.n_idle, 7);
  cr_assert_eq(t.n_prepare, 7);
  cr_assert_eq(t.n_check, 7);
  weft_close(&p.base, NULL);
  weft_close(&c.base, NULL);
  weft_close(&i.base, NULL);
  ev_run(ev, 0);
  cr_assert(!weft_loop_alive(loop));
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(weft_alloc_live(), 0);
  ev_loop_destroy(ev);
}
