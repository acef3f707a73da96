/* Conformance with Promises/A+ 1.1, for every rule that applies to C.
 *
 * Each case runs three ways (APLUS below): on an input future that is
 * already settled, on one settled later in the same turn (a deferred
 * callback), and on one settled by a 1 ms timer. Rule numbers refer to
 * https://promisesaplus.com/. */
#include <stdlib.h>

#include "support/test.h"

enum { NOW, LATER, TIMER };

typedef struct pending_settle {
  weft_timer t;
  weft_future *f;
  int64_t v;
  int err; /* < 0: reject with it */
} pending_settle;

static void apply(pending_settle *p) {
  if (p->err < 0)
    cr_assert_eq(weft_future_reject(p->f, p->err), 0);
  else
    cr_assert_eq(weft_future_resolve_i64(p->f, p->v), 0);
  weft_future_unref(p->f);
}

static void on_later(void *arg) {
  apply(arg);
  free(arg);
}

static void on_closed(weft_handle *h) { free(h->data); }

static void on_timer(weft_timer *t) {
  apply(t->base.data);
  weft_close(&t->base, on_closed);
}

/* A future that is, or will be, fulfilled with v (err == 0) or rejected
 * with err, the way `mode` says. The caller owns one reference. */
static weft_future *mk(weft_loop *loop, int mode, int64_t v, int err) {
  weft_future *f;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  pending_settle *p = malloc(sizeof *p);
  cr_assert_not_null(p);
  *p = (pending_settle){.f = weft_future_ref(f), .v = v, .err = err};
  if (mode == NOW) {
    apply(p);
    free(p);
  } else if (mode == LATER) {
    cr_assert_eq(weft_call_soon(loop, on_later, p), 0);
  } else {
    cr_assert_eq(weft_timer_init(loop, &p->t), 0);
    p->t.base.data = p;
    cr_assert_eq(weft_timer_start(&p->t, on_timer, 1, 0), 0);
  }
  return f;
}

/* Derived futures nobody looks at are reported; keep the output quiet. */
static int unobserved;
static void quiet(weft_loop *loop, int err, void *arg) {
  (void)loop;
  (void)err;
  (void)arg;
  unobserved++;
}

static weft_loop *aplus_loop(void) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_future_set_unhandled_hook(loop, quiet, NULL), 0);
  return loop;
}

#define APLUS(name)                                                            \
  static void name(weft_loop *loop, int mode);                                 \
  Test(aplus, name##_already_settled, .timeout = 10) {                         \
    weft_loop *loop = aplus_loop();                                            \
    name(loop, NOW);                                                           \
    th_loop_finish(loop);                                                      \
  }                                                                            \
  Test(aplus, name##_settled_later_same_turn, .timeout = 10) {                 \
    weft_loop *loop = aplus_loop();                                            \
    name(loop, LATER);                                                         \
    th_loop_finish(loop);                                                      \
  }                                                                            \
  Test(aplus, name##_settled_by_timer, .timeout = 10) {                        \
    weft_loop *loop = aplus_loop();                                            \
    name(loop, TIMER);                                                         \
    th_loop_finish(loop);                                                      \
  }                                                                            \
  static void name(weft_loop *loop, int mode)

/* A recording continuation: appends its tag to a log, optionally returns
 * a value or an error. */
typedef struct rec {
  int log[8];
  int n;
  int64_t seen;
  int seen_err;
} rec;

typedef struct step {
  rec *r;
  int tag;
  int64_t value; /* fulfil out with it */
  int fail;      /* < 0: return it */
  bool pass;     /* leave out alone: then passes through, catch recovers */
} step;

static int record(weft_future *in, weft_future *out, void *arg) {
  step *s = arg;
  s->r->log[s->r->n++] = s->tag;
  s->r->seen = weft_future_value_i64(in);
  s->r->seen_err = weft_future_error(in);
  if (s->fail < 0) return s->fail;
  if (s->pass || out == NULL) return 0;
  return weft_future_resolve_i64(out, s->value);
}

/* 2.1.2, 2.1.3: a settled future never changes state or value. */
APLUS(settled_state_never_changes) {
  weft_future *a = mk(loop, mode, 7, 0), *b = mk(loop, mode, 0, -EIO);
  th_run(loop);
  cr_assert_eq(weft_future_resolve_i64(a, 8), -EALREADY);
  cr_assert_eq(weft_future_reject(a, -EPIPE), -EALREADY);
  cr_assert_eq(weft_future_resolve_i64(b, 8), -EALREADY);
  cr_assert_eq(weft_future_cancel(b), -EALREADY);
  cr_assert_eq(weft_future_value_i64(a), 7);
  cr_assert_eq(weft_future_error(b), -EIO);
  weft_future_unref(a);
  weft_future_unref(b);
}

/* 2.2.2, 2.2.3: handlers get the value / reason, once, only after
 * settlement; 2.2.4: never from inside then(). */
APLUS(handlers_run_once_with_outcome_never_inline) {
  rec r = {0};
  step ok = {&r, 1, 0, 0, true}, bad = {&r, 2, 0, 0, true};
  weft_future *a = mk(loop, mode, 5, 0), *b = mk(loop, mode, 0, -EIO);
  cr_assert_eq(weft_future_then(a, record, &ok, NULL), 0);
  cr_assert_eq(weft_future_catch(a, record, &bad, NULL), 0);
  cr_assert_eq(r.n, 0);
  th_run(loop);
  cr_assert_eq(r.n, 1);
  cr_assert_eq(r.log[0], 1);
  cr_assert_eq(r.seen, 5);
  cr_assert_eq(weft_future_then(b, record, &ok, NULL), 0);
  cr_assert_eq(weft_future_catch(b, record, &bad, NULL), 0);
  cr_assert_eq(r.n, 1); /* registered on a settled future: still deferred */
  th_run(loop);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.log[1], 2);
  cr_assert_eq(r.seen_err, -EIO);
  weft_future_unref(a);
  weft_future_unref(b);
}

/* 2.2.6: handlers on one future run in the order they were registered. */
APLUS(handlers_run_in_registration_order) {
  rec r = {0};
  step s[4] = {{&r, 1, 0, 0, true},
               {&r, 2, 0, 0, true},
               {&r, 3, 0, 0, true},
               {&r, 4, 0, 0, true}};
  weft_future *a = mk(loop, mode, 1, 0), *b = mk(loop, mode, 0, -EIO);
  cr_assert_eq(weft_future_then(a, record, &s[0], NULL), 0);
  cr_assert_eq(weft_future_finally(a, record, &s[1], NULL), 0);
  cr_assert_eq(weft_future_then2(a, record, NULL, &s[2], NULL), 0);
  cr_assert_eq(weft_future_then(a, record, &s[3], NULL), 0);
  th_run(loop);
  cr_assert_eq(r.n, 4);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(r.log[i], i + 1);
  r.n = 0;
  cr_assert_eq(weft_future_catch(b, record, &s[0], NULL), 0);
  cr_assert_eq(weft_future_then2(b, NULL, record, &s[1], NULL), 0);
  cr_assert_eq(weft_future_catch(b, record, &s[2], NULL), 0);
  th_run(loop);
  cr_assert_eq(r.n, 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(r.log[i], i + 1);
  weft_future_unref(a);
  weft_future_unref(b);
}

/* 2.2.7.1, 2.2.7.2: a handler's value fulfils the derived future, its error
 * rejects it. */
APLUS(handler_result_decides_derived_future) {
  rec r = {0};
  step val = {&r, 1, 42, 0, false}, err = {&r, 2, 0, -EPIPE, false};
  weft_future *a = mk(loop, mode, 1, 0), *d1, *d2;
  cr_assert_eq(weft_future_then(a, record, &val, &d1), 0);
  cr_assert_eq(weft_future_then(a, record, &err, &d2), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(d1), 42);
  cr_assert_eq(weft_future_error(d2), -EPIPE);
  weft_future_unref(a);
  weft_future_unref(d1);
  weft_future_unref(d2);
}

/* 2.2.7.3, 2.2.7.4: with no handler for the outcome, the derived future
 * takes the input's value or reason. */
APLUS(missing_handler_passes_outcome_through) {
  rec r = {0};
  step s = {&r, 1, 0, 0, false}, keep = {&r, 2, 0, 0, true};
  weft_future *a = mk(loop, mode, 9, 0), *b = mk(loop, mode, 0, -EIO);
  weft_future *da, *db, *dp;
  cr_assert_eq(weft_future_catch(a, record, &s, &da), 0);
  cr_assert_eq(weft_future_then(b, record, &s, &db), 0);
  cr_assert_eq(weft_future_then(a, record, &keep, &dp), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(da), 9);
  cr_assert_eq(weft_future_error(db), -EIO);
  cr_assert_eq(weft_future_value_i64(dp), 9); /* returned 0, left out alone */
  cr_assert_eq(r.n, 1);
  weft_future_unref(a);
  weft_future_unref(b);
  weft_future_unref(da);
  weft_future_unref(db);
  weft_future_unref(dp);
}

/* 2.2.7.1: onRejected returning normally (0, out left alone) fulfils the
 * derived future; returning the input's error re-throws it. */
APLUS(rejection_handler_returning_normally_recovers) {
  rec r = {0};
  step keep = {&r, 1, 0, 0, true}, rethrow = {&r, 2, 0, -EIO, false};
  weft_future *b = mk(loop, mode, 0, -EIO), *d1, *d2, *d3;
  cr_assert_eq(weft_future_catch(b, record, &keep, &d1), 0);
  cr_assert_eq(weft_future_then2(b, NULL, record, &keep, &d2), 0);
  cr_assert_eq(weft_future_catch(b, record, &rethrow, &d3), 0);
  th_run(loop);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(weft_future_get_state(d1), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_get_state(d2), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(d1), 0);
  cr_assert_eq(weft_future_error(d3), -EIO);
  weft_future *all[] = {b, d1, d2, d3};
  for (int i = 0; i < 4; i++)
    weft_future_unref(all[i]);
}

/* Rejection skips then to the first catch; catch can recover. */
APLUS(rejection_propagates_to_first_catch) {
  rec r = {0};
  step t1 = {&r, 1, 0, 0, false}, t2 = {&r, 2, 0, 0, false};
  step c = {&r, 3, 77, 0, false}, t3 = {&r, 4, 0, 0, true};
  weft_future *a = mk(loop, mode, 0, -ENOENT), *d1, *d2, *d3, *d4;
  cr_assert_eq(weft_future_then(a, record, &t1, &d1), 0);
  cr_assert_eq(weft_future_then(d1, record, &t2, &d2), 0);
  cr_assert_eq(weft_future_catch(d2, record, &c, &d3), 0);
  cr_assert_eq(weft_future_then(d3, record, &t3, &d4), 0);
  th_run(loop);
  cr_assert_eq(r.n, 2);
  cr_assert_eq(r.log[0], 3);
  cr_assert_eq(r.log[1], 4);
  cr_assert_eq(r.seen, 77);
  cr_assert_eq(weft_future_error(d2), -ENOENT);
  cr_assert_eq(weft_future_value_i64(d4), 77);
  weft_future *all[] = {a, d1, d2, d3, d4};
  for (int i = 0; i < 5; i++)
    weft_future_unref(all[i]);
}

/* finally sees both outcomes and passes the input through; an error from
 * it rejects the derived future. */
APLUS(finally_passes_input_through) {
  rec r = {0};
  step f1 = {&r, 1, 5, 0, false}, f2 = {&r, 2, 0, -EBADF, false};
  weft_future *a = mk(loop, mode, 3, 0), *b = mk(loop, mode, 0, -EIO);
  weft_future *da, *db, *dc;
  cr_assert_eq(weft_future_finally(a, record, &f1, &da), 0);
  cr_assert_eq(weft_future_finally(b, record, &f1, &db), 0);
  cr_assert_eq(weft_future_finally(a, record, &f2, &dc), 0);
  th_run(loop);
  cr_assert_eq(r.n, 3);
  cr_assert_eq(weft_future_value_i64(da), 3);
  cr_assert_eq(weft_future_error(db), -EIO);
  cr_assert_eq(weft_future_error(dc), -EBADF);
  weft_future *all[] = {a, b, da, db, dc};
  for (int i = 0; i < 5; i++)
    weft_future_unref(all[i]);
}

/* 2.3.1: a future resolved with itself is rejected, not hung. */
static int adopt_self(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)arg;
  cr_assert_eq(weft_future_adopt(out, out), -EDEADLK);
  return 0;
}

APLUS(self_adoption_is_an_error) {
  weft_future *a = mk(loop, mode, 1, 0), *d;
  cr_assert_eq(weft_future_then(a, adopt_self, NULL, &d), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(d), -EDEADLK);
  weft_future_unref(a);
  weft_future_unref(d);
}

/* 2.3.2: a returned future is adopted: the derived future takes its
 * eventual value or reason. */
typedef struct adopt_arg {
  weft_loop *loop;
  int mode;
  int64_t v;
  int err;
} adopt_arg;

static int adopt_other(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  adopt_arg *a = arg;
  return weft_future_adopt(out, mk(a->loop, a->mode, a->v, a->err));
}

APLUS(returned_future_is_adopted) {
  adopt_arg ok = {loop, mode, 11, 0}, bad = {loop, mode, 0, -EXDEV};
  weft_future *a = mk(loop, mode, 1, 0), *d1, *d2, *d3;
  cr_assert_eq(weft_future_then(a, adopt_other, &ok, &d1), 0);
  cr_assert_eq(weft_future_then(a, adopt_other, &bad, &d2), 0);
  cr_assert_eq(weft_future_then(d1, adopt_other, &ok, &d3), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(d1), 11);
  cr_assert_eq(weft_future_error(d2), -EXDEV);
  cr_assert_eq(weft_future_value_i64(d3), 11);
  weft_future *all[] = {a, d1, d2, d3};
  for (int i = 0; i < 4; i++)
    weft_future_unref(all[i]);
}

/* Value identity: a pointer value flows unchanged through handlers that
 * pass it on, and is freed exactly once, by its owner. */
static int frees;
static void count_free(void *p) {
  frees++;
  free(p);
}

static int check_ptr(weft_future *in, weft_future *out, void *arg) {
  (void)out;
  cr_assert_eq(weft_future_value(in), arg);
  return 0;
}

static void resolve_ptr(void *arg) {
  void **pair = arg;
  cr_assert_eq(weft_future_resolve(pair[0], pair[1], count_free), 0);
  weft_future_unref(pair[0]);
}

APLUS(pointer_value_passes_through_unchanged) {
  frees = 0;
  char *v = malloc(16);
  weft_future *a, *d1, *d2;
  cr_assert_eq(weft_future_new(loop, &a), 0);
  void *pair[2] = {weft_future_ref(a), v};
  if (mode == NOW)
    resolve_ptr(pair);
  else
    cr_assert_eq(weft_call_soon(loop, resolve_ptr, pair), 0);
  cr_assert_eq(weft_future_then(a, check_ptr, v, &d1), 0);
  cr_assert_eq(weft_future_then(d1, check_ptr, v, &d2), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value(d2), v);
  weft_future_unref(a);
  weft_future_unref(d1);
  cr_assert_eq(frees, 0); /* d2 still borrows it */
  weft_future_unref(d2);
  cr_assert_eq(frees, 1);
}

/* Beyond A+: long chains settle, cancel and free iteratively (no recursion
 * proportional to their length). */
static int hook_calls;
static void on_hook(weft_future *f, void *arg) {
  (void)f;
  (void)arg;
  hook_calls++;
}

static int ident(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  (void)arg;
  return 0;
}

static weft_future *long_chain(weft_future *root, int n) {
  weft_future *d = weft_future_ref(root);
  for (int i = 0; i < n; i++) {
    weft_future *next;
    cr_assert_eq(weft_future_then(d, ident, NULL, &next), 0);
    weft_future_unref(d);
    d = next;
  }
  return d;
}

Test(aplus, long_chains_cancel_and_free_iteratively, .timeout = 30) {
  weft_loop *loop = aplus_loop();
  weft_future *root, *tail;
  static int value;
  hook_calls = 0;
  cr_assert_eq(weft_future_new(loop, &root), 0);
  cr_assert_eq(weft_future_on_cancel(root, on_hook, NULL), 0);
  tail = long_chain(root, 200000);
  cr_assert_eq(weft_future_cancel(tail), 0); /* reaches the root */
  cr_assert_eq(hook_calls, 1);
  cr_assert_eq(weft_future_get_state(root), WEFT_FUTURE_CANCELLED);
  th_run(loop);
  weft_future_unref(tail);
  weft_future_unref(root);
  cr_assert_eq(weft_future_new(loop, &root), 0);
  tail = long_chain(root, 200000);
  cr_assert_eq(weft_future_resolve(root, &value, NULL), 0);
  weft_future_unref(root);
  th_run(loop);
  cr_assert_eq(weft_future_value(tail), &value); /* borrowed all the way */
  weft_future_unref(tail); /* frees 200,001 borrowing futures */
  th_loop_finish(loop);
}
