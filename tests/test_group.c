/* Structured concurrency: groups (weft_group_*) and cancellation scopes
 * (weft_scope_*), which are futures of their own kinds: their members,
 * errors, cancellation reaching the work behind the members (a sleep's
 * timer, a pool job's flag, a pending TCP connect), deadlines that move,
 * nesting, bad inputs and allocation failure at each site. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test.h"

#define EQ_ERR(got, want)                                                      \
  do {                                                                         \
    int g_ = (got), w_ = (want);                                               \
    cr_assert_eq(g_, w_, "%s: got %s, want %s", #got, weft_err_name(g_),       \
                 weft_err_name(w_));                                           \
  } while (0)

#define STATE(f, st) cr_assert_eq(weft_future_get_state(f), (st), "%s", #f)

static void run(weft_loop *loop) { th_run(loop); }

static int hooks;
static void on_cancel_count(weft_future *f, void *arg) {
  (void)f;
  (void)arg;
  hooks++;
}

static void make_n(weft_loop *loop, weft_future **fs, int n) {
  for (int i = 0; i < n; i++)
    EQ_ERR(weft_future_new(loop, &fs[i]), 0);
}
static void unref_n(weft_future **fs, int n) {
  for (int i = 0; i < n; i++)
    weft_future_unref(fs[i]);
}

/* ---- groups -------------------------------------------------------------- */

Test(group, fulfils_with_the_count_once_closed_and_all_settled, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *g;
  make_n(loop, fs, 3);
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_future_resolve_i64(fs[0], 1), 0); /* settled before it is added */
  for (int i = 0; i < 3; i++)
    EQ_ERR(weft_group_add(g, fs[i]), 0);
  size_t added = 0, pending = 0;
  EQ_ERR(weft_group_counts(g, &added, &pending), 0);
  cr_assert_eq(added, 3);
  cr_assert_eq(pending, 3); /* fs[0]'s node has not fired yet */
  EQ_ERR(weft_future_resolve_i64(fs[1], 2), 0);
  EQ_ERR(weft_future_resolve_i64(fs[2], 3), 0);
  run(loop);
  STATE(g, WEFT_FUTURE_PENDING); /* not closed: more may come */
  EQ_ERR(weft_group_counts(g, NULL, &pending), 0);
  cr_assert_eq(pending, 0);
  weft_future *late;
  EQ_ERR(weft_future_new(loop, &late), 0);
  EQ_ERR(weft_group_add(g, late), 0); /* at any time until closed */
  EQ_ERR(weft_group_close(g), 0);
  EQ_ERR(weft_group_close(g), -EALREADY);
  run(loop);
  STATE(g, WEFT_FUTURE_PENDING);
  EQ_ERR(weft_future_resolve_i64(late, 4), 0);
  run(loop);
  STATE(g, WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(g), 4);
  EQ_ERR(weft_group_errors(g, NULL, 0), 0);
  weft_future *more;
  EQ_ERR(weft_future_new(loop, &more), 0);
  EQ_ERR(weft_group_add(g, more), WEFT_ECLOSED);
  STATE(more, WEFT_FUTURE_PENDING); /* left alone */
  weft_future_unref(more);
  weft_future_unref(late);
  unref_n(fs, 3);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(group, empty_group_fulfils_with_zero_when_closed, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *g;
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_group_close(g), 0);
  STATE(g, WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(g), 0);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(group, collects_every_error_and_rejects_with_the_first, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[5], *g;
  make_n(loop, fs, 5);
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  for (int i = 0; i < 5; i++)
    EQ_ERR(weft_group_add(g, fs[i]), 0);
  EQ_ERR(weft_group_close(g), 0);
  EQ_ERR(weft_future_reject(fs[3], -EPIPE), 0); /* first to fail */
  run(loop);
  EQ_ERR(weft_future_reject(fs[1], -EIO), 0);
  EQ_ERR(weft_future_cancel(fs[4]), 0); /* a cancelled member is no error */
  EQ_ERR(weft_future_resolve_i64(fs[0], 0), 0);
  run(loop);
  STATE(g, WEFT_FUTURE_PENDING); /* without the flag, it waits for fs[2] */
  EQ_ERR(weft_future_resolve_i64(fs[2], 0), 0);
  run(loop);
  STATE(g, WEFT_FUTURE_REJECTED);
  EQ_ERR(weft_future_error(g), -EPIPE);
  weft_group_error e[4];
  EQ_ERR(weft_group_errors(g, e, 4), 2);
  cr_assert_eq(e[0].index, 1); /* in add order */
  EQ_ERR(e[0].err, -EIO);
  cr_assert_eq(e[0].future, fs[1]);
  cr_assert_eq(e[1].index, 3);
  EQ_ERR(e[1].err, -EPIPE);
  cr_assert_eq(e[1].future, fs[3]);
  memset(e, 0, sizeof e);
  EQ_ERR(weft_group_errors(g, e, 1), 2); /* the count, one filled */
  cr_assert_eq(e[0].index, 1);
  cr_assert_null(e[1].future);
  unref_n(fs, 5);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(group, cancel_on_error_cancels_the_rest_and_settles_unclosed,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *g, *late;
  make_n(loop, fs, 3);
  hooks = 0;
  for (int i = 0; i < 3; i++)
    EQ_ERR(weft_future_on_cancel(fs[i], on_cancel_count, NULL), 0);
  EQ_ERR(weft_group_new(loop, WEFT_GROUP_CANCEL_ON_ERROR, &g), 0);
  for (int i = 0; i < 3; i++)
    EQ_ERR(weft_group_add(g, fs[i]), 0);
  EQ_ERR(weft_future_reject(fs[1], -EIO), 0);
  run(loop);
  cr_assert_eq(hooks, 2);
  STATE(fs[0], WEFT_FUTURE_CANCELLED);
  STATE(fs[2], WEFT_FUTURE_CANCELLED);
  STATE(g, WEFT_FUTURE_REJECTED); /* no close needed */
  EQ_ERR(weft_future_error(g), -EIO);
  EQ_ERR(weft_group_errors(g, NULL, 0), 1);
  EQ_ERR(weft_future_new(loop, &late), 0);
  EQ_ERR(weft_group_add(g, late), -ECANCELED);
  STATE(late, WEFT_FUTURE_CANCELLED);
  EQ_ERR(weft_group_close(g), 0);
  weft_future_unref(late);
  unref_n(fs, 3);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(group, cancelling_it_cancels_pending_members_only, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *g, *late, *sl;
  make_n(loop, fs, 3);
  hooks = 0;
  for (int i = 0; i < 3; i++)
    EQ_ERR(weft_future_on_cancel(fs[i], on_cancel_count, NULL), 0);
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  for (int i = 0; i < 3; i++)
    EQ_ERR(weft_group_add(g, fs[i]), 0);
  EQ_ERR(weft_sleep(loop, 10000, &sl), 0);
  EQ_ERR(weft_group_add(g, sl), 0);
  EQ_ERR(weft_future_resolve_i64(fs[0], 0), 0);
  EQ_ERR(weft_future_cancel(g), 0);
  STATE(g, WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 2);
  STATE(fs[0], WEFT_FUTURE_FULFILLED);
  STATE(sl, WEFT_FUTURE_CANCELLED);
  run(loop); /* returns at once: the sleep's timer was stopped */
  EQ_ERR(weft_future_new(loop, &late), 0);
  EQ_ERR(weft_group_add(g, late), -ECANCELED);
  STATE(late, WEFT_FUTURE_CANCELLED);
  EQ_ERR(weft_group_close(g), 0);
  EQ_ERR(weft_future_resolve_i64(g, 1), -EALREADY);
  weft_future_unref(late);
  weft_future_unref(sl);
  unref_n(fs, 3);
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(group, groups_nest_and_cancel_through_each_other, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *outer, *inner, *f;
  hooks = 0;
  EQ_ERR(weft_group_new(loop, 0, &outer), 0);
  EQ_ERR(weft_group_new(loop, 0, &inner), 0);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_future_on_cancel(f, on_cancel_count, NULL), 0);
  EQ_ERR(weft_group_add(inner, f), 0);
  EQ_ERR(weft_group_add(outer, inner), 0);
  EQ_ERR(weft_future_cancel(outer), 0);
  STATE(inner, WEFT_FUTURE_CANCELLED);
  STATE(f, WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 1);
  run(loop);
  weft_future_unref(f);
  weft_future_unref(inner);
  weft_future_unref(outer);
  th_loop_finish(loop);
}

Test(group, a_nested_group_error_rejects_the_outer_group, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *outer, *inner, *f;
  EQ_ERR(weft_group_new(loop, 0, &outer), 0);
  EQ_ERR(weft_group_new(loop, 0, &inner), 0);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_group_add(inner, f), 0);
  EQ_ERR(weft_group_add(outer, inner), 0);
  EQ_ERR(weft_group_close(inner), 0);
  EQ_ERR(weft_group_close(outer), 0);
  EQ_ERR(weft_future_reject(f, -ENOENT), 0);
  run(loop);
  EQ_ERR(weft_future_error(outer), -ENOENT);
  weft_group_error e;
  EQ_ERR(weft_group_errors(outer, &e, 1), 1);
  cr_assert_eq(e.future, inner);
  weft_future_unref(f);
  weft_future_unref(inner);
  weft_future_unref(outer);
  th_loop_finish(loop);
}

Test(group, dropping_a_pending_group_leaves_members_running, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *g, *f;
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_group_add(g, f), 0);
  weft_future_unref(g);
  STATE(f, WEFT_FUTURE_PENDING);
  EQ_ERR(weft_future_resolve_i64(f, 7), 0);
  run(loop); /* the node fires for nothing */
  cr_assert_eq(weft_future_value_i64(f), 7);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(group, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop(), *other = th_loop();
  weft_future *g, *f, *o, *s;
  EQ_ERR(weft_group_new(NULL, 0, &g), -EINVAL);
  EQ_ERR(weft_group_new(loop, 0, NULL), -EINVAL);
  EQ_ERR(weft_group_new(loop, 2, &g), -EINVAL);
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_future_new(other, &o), 0);
  EQ_ERR(weft_scope_new(loop, NULL, WEFT_SCOPE_NO_DEADLINE, &s), 0);
  EQ_ERR(weft_group_add(NULL, f), -EINVAL);
  EQ_ERR(weft_group_add(g, NULL), -EINVAL);
  EQ_ERR(weft_group_add(g, g), -EINVAL);
  EQ_ERR(weft_group_add(f, g), -EINVAL); /* not a group */
  EQ_ERR(weft_group_add(s, f), -EINVAL); /* a scope is not a group */
  EQ_ERR(weft_group_add(g, o), -EINVAL); /* another loop */
  EQ_ERR(weft_group_close(NULL), -EINVAL);
  EQ_ERR(weft_group_close(f), -EINVAL);
  EQ_ERR(weft_group_errors(NULL, NULL, 0), -EINVAL);
  EQ_ERR(weft_group_errors(f, NULL, 0), -EINVAL);
  EQ_ERR(weft_group_errors(g, NULL, 1), -EINVAL);
  EQ_ERR(weft_group_counts(NULL, NULL, NULL), -EINVAL);
  EQ_ERR(weft_group_counts(f, NULL, NULL), -EINVAL);
  /* nobody settles a group by hand */
  EQ_ERR(weft_future_resolve_i64(g, 1), -EBUSY);
  EQ_ERR(weft_future_reject(g, -EIO), -EBUSY);
  EQ_ERR(weft_future_on_cancel(g, on_cancel_count, NULL), -EBUSY);
  weft_future *a;
  EQ_ERR(weft_future_new(loop, &a), 0);
  EQ_ERR(weft_future_adopt(g, a), -EBUSY);
  STATE(g, WEFT_FUTURE_PENDING);
  EQ_ERR(weft_group_close(g), 0);
  STATE(g, WEFT_FUTURE_FULFILLED);
  weft_future_unref(s);
  weft_future_unref(o);
  weft_future_unref(f);
  weft_future_unref(a);
  weft_future_unref(g);
  th_loop_usable(loop);
  th_loop_close(other);
  th_loop_finish(loop);
}

/* new, three adds (one settled already), close, settle, drain */
static int group_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *g, *fs[3] = {NULL, NULL, NULL};
  int err = weft_group_new(loop, WEFT_GROUP_CANCEL_ON_ERROR, &g);
  if (err != 0) return err;
  for (int i = 0; i < 3 && err == 0; i++) {
    if ((err = weft_future_new(loop, &fs[i])) != 0) break;
    if (i == 0) weft_future_resolve_i64(fs[0], 0);
    err = weft_group_add(g, fs[i]);
  }
  if (err == 0) err = weft_group_close(g);
  for (int i = 1; i < 3; i++)
    if (fs[i] != NULL) weft_future_resolve_i64(fs[i], i);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) {
    cr_assert_eq(weft_future_get_state(g), WEFT_FUTURE_FULFILLED);
    cr_assert_eq(weft_future_value_i64(g), 3);
  }
  for (int i = 0; i < 3; i++)
    weft_future_unref(fs[i]);
  weft_future_unref(g);
  return err;
}

Test(group, allocation_failure_at_each_site, .timeout = 30) {
  cr_assert_gt(th_alloc_sweep(group_round, NULL), 0);
}

/* ---- scopes ------------------------------------------------------------- */

static uint64_t elapsed_since(weft_loop *loop, uint64_t t0) {
  weft_update_time(loop);
  return weft_now(loop) - t0;
}

Test(scope, fulfils_with_the_count_once_closed_whatever_the_outcomes,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s, *fs[2];
  make_n(loop, fs, 2);
  EQ_ERR(weft_scope_new(loop, NULL, 5000, &s), 0);
  EQ_ERR(weft_scope_attach(s, fs[0]), 0);
  EQ_ERR(weft_scope_attach(s, fs[1]), 0);
  EQ_ERR(weft_scope_close(s), 0);
  EQ_ERR(weft_scope_close(s), -EALREADY);
  EQ_ERR(weft_future_reject(fs[0], -EIO), 0);
  EQ_ERR(weft_future_resolve_i64(fs[1], 1), 0);
  run(loop); /* returns at once: settling stopped the 5 s deadline */
  STATE(s, WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(s), 2);
  EQ_ERR(weft_future_error(fs[0]), -EIO);
  uint64_t at;
  EQ_ERR(weft_scope_deadline(s, &at), -EALREADY);
  EQ_ERR(weft_scope_reschedule(s, 10), -EALREADY);
  weft_future *late;
  EQ_ERR(weft_future_new(loop, &late), 0);
  EQ_ERR(weft_scope_attach(s, late), WEFT_ECLOSED);
  STATE(late, WEFT_FUTURE_PENDING);
  weft_future_unref(late);
  unref_n(fs, 2);
  weft_future_unref(s);
  th_loop_finish(loop);
}

Test(scope, deadline_rejects_it_and_cancels_what_is_attached, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s, *sl, *f;
  hooks = 0;
  uint64_t t0 = weft_now(loop);
  EQ_ERR(weft_scope_new(loop, NULL, 20, &s), 0);
  EQ_ERR(weft_sleep(loop, 8000, &sl), 0);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_future_on_cancel(f, on_cancel_count, NULL), 0);
  EQ_ERR(weft_scope_attach(s, sl), 0);
  EQ_ERR(weft_scope_attach(s, f), 0);
  run(loop); /* returns once the deadline cancelled the 8 s sleep */
  cr_assert_lt(elapsed_since(loop, t0), 4000);
  cr_assert_geq(elapsed_since(loop, t0), 20);
  STATE(s, WEFT_FUTURE_REJECTED);
  EQ_ERR(weft_future_error(s), -ETIMEDOUT);
  STATE(sl, WEFT_FUTURE_CANCELLED);
  STATE(f, WEFT_FUTURE_CANCELLED);
  cr_assert_eq(hooks, 1);
  weft_future *late;
  EQ_ERR(weft_future_new(loop, &late), 0);
  EQ_ERR(weft_scope_attach(s, late), -ETIMEDOUT);
  STATE(late, WEFT_FUTURE_CANCELLED);
  EQ_ERR(weft_scope_close(s), 0);
  weft_future_unref(late);
  weft_future_unref(f);
  weft_future_unref(sl);
  weft_future_unref(s);
  th_loop_finish(loop);
}

Test(scope, reschedule_moves_the_deadline_later_earlier_or_away,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s, *sl;
  /* later: a 10 ms deadline moved to 5 s lets a 30 ms member finish */
  EQ_ERR(weft_scope_new(loop, NULL, 10, &s), 0);
  EQ_ERR(weft_scope_reschedule(s, 5000), 0);
  EQ_ERR(weft_sleep(loop, 30, &sl), 0);
  EQ_ERR(weft_scope_attach(s, sl), 0);
  EQ_ERR(weft_scope_close(s), 0);
  run(loop);
  STATE(s, WEFT_FUTURE_FULFILLED);
  STATE(sl, WEFT_FUTURE_FULFILLED);
  weft_future_unref(sl);
  weft_future_unref(s);
  /* away */
  EQ_ERR(weft_scope_new(loop, NULL, 10, &s), 0);
  EQ_ERR(weft_scope_reschedule(s, WEFT_SCOPE_NO_DEADLINE), 0);
  uint64_t at;
  EQ_ERR(weft_scope_deadline(s, &at), 0);
  cr_assert_eq(at, WEFT_SCOPE_NO_DEADLINE);
  EQ_ERR(weft_sleep(loop, 30, &sl), 0);
  EQ_ERR(weft_scope_attach(s, sl), 0);
  EQ_ERR(weft_scope_close(s), 0);
  run(loop);
  STATE(s, WEFT_FUTURE_FULFILLED);
  weft_future_unref(sl);
  weft_future_unref(s);
  /* earlier: an 8 s deadline moved to 10 ms cancels an 8 s member */
  uint64_t t0 = weft_now(loop);
  EQ_ERR(weft_scope_new(loop, NULL, 8000, &s), 0);
  EQ_ERR(weft_sleep(loop, 8000, &sl), 0);
  EQ_ERR(weft_scope_attach(s, sl), 0);
  EQ_ERR(weft_scope_reschedule(s, 10), 0);
  EQ_ERR(weft_scope_deadline(s, &at), 0);
  cr_assert_eq(at, weft_now(loop) + 10);
  run(loop);
  cr_assert_lt(elapsed_since(loop, t0), 4000);
  EQ_ERR(weft_future_error(s), -ETIMEDOUT);
  STATE(sl, WEFT_FUTURE_CANCELLED);
  weft_future_unref(sl);
  weft_future_unref(s);
  th_loop_finish(loop);
}

Test(scope, nested_scopes_take_the_earlier_deadline_and_the_parents_cancel,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *p, *c, *c2, *sl;
  EQ_ERR(weft_scope_new(loop, NULL, 1000, &p), 0);
  EQ_ERR(weft_scope_new(loop, p, 5000, &c), 0);
  EQ_ERR(weft_scope_new(loop, c, 100, &c2), 0);
  uint64_t now = weft_now(loop), at;
  EQ_ERR(weft_scope_deadline(c, &at), 0);
  cr_assert_eq(at, now + 1000); /* the parent's, earlier */
  EQ_ERR(weft_scope_deadline(c2, &at), 0);
  cr_assert_eq(at, now + 100); /* its own, earlier */
  EQ_ERR(weft_scope_reschedule(p, WEFT_SCOPE_NO_DEADLINE), 0);
  EQ_ERR(weft_scope_deadline(c, &at), 0);
  cr_assert_eq(at, now + 5000);
  EQ_ERR(weft_scope_reschedule(c2, WEFT_SCOPE_NO_DEADLINE), 0);
  EQ_ERR(weft_sleep(loop, 8000, &sl), 0);
  EQ_ERR(weft_scope_attach(c2, sl), 0);
  /* cancelling the root reaches the grandchild's member */
  EQ_ERR(weft_future_cancel(p), 0);
  STATE(c, WEFT_FUTURE_CANCELLED);
  STATE(c2, WEFT_FUTURE_CANCELLED);
  STATE(sl, WEFT_FUTURE_CANCELLED);
  EQ_ERR(weft_scope_new(loop, p, 10, &c), -ECANCELED); /* parent gone */
  run(loop);
  weft_future_unref(sl);
  weft_future_unref(c2);
  weft_future_unref(p);
  /* the parent's deadline passing cancels the child */
  EQ_ERR(weft_scope_new(loop, NULL, 10, &p), 0);
  EQ_ERR(weft_scope_new(loop, p, WEFT_SCOPE_NO_DEADLINE, &c), 0);
  EQ_ERR(weft_sleep(loop, 8000, &sl), 0);
  EQ_ERR(weft_scope_attach(c, sl), 0);
  run(loop);
  EQ_ERR(weft_future_error(p), -ETIMEDOUT);
  STATE(c, WEFT_FUTURE_CANCELLED);
  STATE(sl, WEFT_FUTURE_CANCELLED);
  weft_future_unref(sl);
  weft_future_unref(c);
  weft_future_unref(p);
  /* a child freed before, and after, its parent */
  EQ_ERR(weft_scope_new(loop, NULL, WEFT_SCOPE_NO_DEADLINE, &p), 0);
  EQ_ERR(weft_scope_new(loop, p, WEFT_SCOPE_NO_DEADLINE, &c), 0);
  EQ_ERR(weft_scope_new(loop, p, 5000, &c2), 0);
  weft_future_unref(p); /* c and c2 are still pending members */
  EQ_ERR(weft_scope_deadline(c2, &at), 0); /* does not read the freed p */
  cr_assert_eq(at, weft_now(loop) + 5000);
  EQ_ERR(weft_future_cancel(c2), 0);
  weft_future_unref(c2);
  weft_future_unref(c);
  run(loop);
  th_loop_finish(loop);
}

Test(scope, groups_and_scopes_nest_in_each_other, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *s, *g, *f;
  EQ_ERR(weft_scope_new(loop, NULL, 10, &s), 0);
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_group_add(g, f), 0);
  EQ_ERR(weft_scope_attach(s, g), 0);
  run(loop);
  EQ_ERR(weft_future_error(s), -ETIMEDOUT);
  STATE(g, WEFT_FUTURE_CANCELLED);
  STATE(f, WEFT_FUTURE_CANCELLED);
  weft_future_unref(f);
  weft_future_unref(g);
  weft_future_unref(s);
  /* a scope inside a group: its timeout is the group's error */
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_scope_new(loop, NULL, 10, &s), 0);
  EQ_ERR(weft_group_add(g, s), 0);
  EQ_ERR(weft_group_close(g), 0);
  run(loop);
  EQ_ERR(weft_future_error(g), -ETIMEDOUT);
  weft_future_unref(s);
  weft_future_unref(g);
  th_loop_finish(loop);
}

/* ---- cancellation reaches the work -------------------------------------- */

static atomic_int job_saw_cancel;

/* Announces that it runs, then works until asked to stop (bounded). */
static void *cancellable_job(void *arg, int *err) {
  (void)err;
  weft_future *started = arg;
  weft_future_resolve_i64_threadsafe(started, 1);
  for (int i = 0; i < 8000 && !weft_work_cancelled(); i++)
    usleep(1000);
  atomic_store(&job_saw_cancel, weft_work_cancelled() ? 1 : 0);
  return NULL;
}

/* once the job runs, the deadline is brought forward to now */
static int pull_deadline_in(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  EQ_ERR(weft_scope_reschedule(arg, 0), 0);
  return 0;
}

/* A listening socket whose one-slot accept queue is full: a further
 * connect's SYN is dropped, so the connect stays pending (SYNs are retried
 * after 1 s, 3 s, ...). Returns the listener; *fillers gets the sockets
 * that fill it. */
static int full_listener(struct sockaddr_in *addr, int fillers[2]) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(l, 0);
  *addr = (struct sockaddr_in){.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(l, (struct sockaddr *)addr, sizeof *addr), 0);
  socklen_t len = sizeof *addr;
  cr_assert_eq(getsockname(l, (struct sockaddr *)addr, &len), 0);
  cr_assert_eq(listen(l, 0), 0);
  for (int i = 0; i < 2; i++) {
    fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    cr_assert_geq(fillers[i], 0);
    connect(fillers[i], (struct sockaddr *)addr, sizeof *addr);
  }
  usleep(20000); /* let the handshakes land in the accept queue */
  return l;
}

Test(scope, cancelling_reaches_a_timer_a_pool_job_and_a_connect,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_future *s, *sl, *job, *started, *cf, *then;
  atomic_store(&job_saw_cancel, -1);
  uint64_t t0 = weft_now(loop);
  EQ_ERR(weft_scope_new(loop, NULL, 5000, &s), 0);
  EQ_ERR(weft_sleep(loop, 8000, &sl), 0);
  EQ_ERR(weft_scope_attach(s, sl), 0);
  EQ_ERR(weft_future_new(loop, &started), 0);
  EQ_ERR(weft_future_then(started, pull_deadline_in, s, &then), 0);
  EQ_ERR(weft_pool_submit_future(loop, WEFT_LANE_CPU, cancellable_job,
                                 weft_future_ref(started), NULL, &job),
         0);
  EQ_ERR(weft_scope_attach(s, job), 0);
  struct sockaddr_in addr;
  int fillers[2], l = full_listener(&addr, fillers);
  weft_tcp t;
  EQ_ERR(weft_tcp_init(loop, &t), 0);
  EQ_ERR(weft_tcp_connect_future(&t, (struct sockaddr *)&addr, &cf), 0);
  EQ_ERR(weft_scope_attach(s, cf), 0);
  run(loop); /* until the job has stopped and every member is cancelled */
  cr_assert_lt(elapsed_since(loop, t0), 4000);
  EQ_ERR(weft_future_error(s), -ETIMEDOUT);
  STATE(sl, WEFT_FUTURE_CANCELLED);
  STATE(job, WEFT_FUTURE_CANCELLED);
  STATE(cf, WEFT_FUTURE_CANCELLED);
  cr_assert_eq(atomic_load(&job_saw_cancel), 1); /* the running job's flag */
  /* the connect was aborted: the handle may connect again */
  weft_future *cf2;
  EQ_ERR(weft_tcp_connect_future(&t, (struct sockaddr *)&addr, &cf2), 0);
  EQ_ERR(weft_future_cancel(cf2), 0);
  weft_future_unref(cf2);
  weft_close(&t.stream.base, NULL);
  run(loop);
  close(fillers[0]);
  close(fillers[1]);
  close(l);
  weft_future_unref(then);
  weft_future_unref(started);
  weft_future_unref(cf);
  weft_future_unref(job);
  weft_future_unref(sl);
  weft_future_unref(s);
  th_loop_finish(loop);
}

/* ---- scope: bad inputs, allocation failure --------------------------------
 */

Test(scope, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop(), *other = th_loop();
  weft_future *s, *f, *g, *o, *os;
  EQ_ERR(weft_scope_new(NULL, NULL, 10, &s), -EINVAL);
  EQ_ERR(weft_scope_new(loop, NULL, 10, NULL), -EINVAL);
  EQ_ERR(weft_scope_new(loop, NULL, WEFT_TIMEOUT_MAX + 1, &s), -EINVAL);
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_group_new(loop, 0, &g), 0);
  EQ_ERR(weft_future_new(other, &o), 0);
  EQ_ERR(weft_scope_new(other, NULL, WEFT_SCOPE_NO_DEADLINE, &os), 0);
  EQ_ERR(weft_scope_new(loop, f, 10, &s), -EINVAL);  /* parent not a scope */
  EQ_ERR(weft_scope_new(loop, g, 10, &s), -EINVAL);  /* nor a group */
  EQ_ERR(weft_scope_new(loop, os, 10, &s), -EINVAL); /* another loop */
  EQ_ERR(weft_scope_new(loop, NULL, 10, &s), 0);
  EQ_ERR(weft_scope_attach(NULL, f), -EINVAL);
  EQ_ERR(weft_scope_attach(s, NULL), -EINVAL);
  EQ_ERR(weft_scope_attach(s, s), -EINVAL);
  EQ_ERR(weft_scope_attach(g, f), -EINVAL);
  EQ_ERR(weft_scope_attach(s, o), -EINVAL);
  EQ_ERR(weft_scope_reschedule(NULL, 10), -EINVAL);
  EQ_ERR(weft_scope_reschedule(g, 10), -EINVAL);
  EQ_ERR(weft_scope_reschedule(s, WEFT_TIMEOUT_MAX + 1), -EINVAL);
  uint64_t at;
  EQ_ERR(weft_scope_deadline(NULL, &at), -EINVAL);
  EQ_ERR(weft_scope_deadline(s, NULL), -EINVAL);
  EQ_ERR(weft_scope_deadline(f, &at), -EINVAL);
  EQ_ERR(weft_scope_close(NULL), -EINVAL);
  EQ_ERR(weft_scope_close(g), -EINVAL);
  EQ_ERR(weft_future_resolve_i64(s, 1), -EBUSY);
  EQ_ERR(weft_future_reject(s, -EIO), -EBUSY);
  EQ_ERR(weft_future_on_cancel(s, on_cancel_count, NULL), -EBUSY);
  EQ_ERR(weft_group_counts(s, NULL, NULL), 0);
  EQ_ERR(weft_scope_close(s), 0);
  STATE(s, WEFT_FUTURE_FULFILLED);
  weft_future_unref(s);
  weft_future_unref(os);
  weft_future_unref(o);
  weft_future_unref(g);
  weft_future_unref(f);
  th_loop_usable(loop);
  th_loop_close(other);
  th_loop_finish(loop);
}

/* a parent with a deadline, a child with one, a member, a reschedule,
 * close, settle, drain */
static int scope_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *p, *c = NULL, *f = NULL;
  int err = weft_scope_new(loop, NULL, 5000, &p);
  if (err != 0) return err;
  err = weft_scope_new(loop, p, 4000, &c);
  if (err == 0) err = weft_future_new(loop, &f);
  if (err == 0) err = weft_scope_attach(c, f);
  if (err == 0) err = weft_scope_reschedule(c, 3000);
  if (err == 0) err = weft_scope_close(c);
  if (err == 0) err = weft_scope_close(p);
  if (f != NULL) weft_future_resolve_i64(f, 1);
  if (err != 0) weft_future_cancel(p);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) {
    cr_assert_eq(weft_future_get_state(p), WEFT_FUTURE_FULFILLED);
    cr_assert_eq(weft_future_value_i64(p), 1);
  }
  weft_future_unref(f);
  weft_future_unref(c);
  weft_future_unref(p);
  return err;
}

Test(scope, allocation_failure_at_each_site, .timeout = 30) {
  cr_assert_gt(th_alloc_sweep(scope_round, NULL), 0);
}

/* ---- race_index, as_completed, shield ------------------------------------ */

Test(combine, race_index_tells_which_input_settled_first, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[3], *r, *r2, *e;
  make_n(loop, fs, 3);
  EQ_ERR(weft_future_race_index(loop, fs, 3, &r), 0);
  EQ_ERR(weft_future_reject(fs[2], -EIO), 0); /* an error wins too */
  EQ_ERR(weft_future_resolve_i64(fs[0], 5), 0);
  run(loop);
  STATE(r, WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(r), 2);
  EQ_ERR(weft_future_error(fs[2]), -EIO);
  STATE(fs[1], WEFT_FUTURE_PENDING); /* the others are left alone */
  /* already settled inputs: the first in array order */
  EQ_ERR(weft_future_race_index(loop, fs, 3, &r2), 0);
  run(loop);
  cr_assert_eq(weft_future_value_i64(r2), 0);
  /* empty: pending until cancelled; cancelling cancels sole inputs */
  EQ_ERR(weft_future_race_index(loop, NULL, 0, &e), 0);
  STATE(e, WEFT_FUTURE_PENDING);
  EQ_ERR(weft_future_cancel(e), 0);
  weft_future_unref(e);
  hooks = 0;
  EQ_ERR(weft_future_on_cancel(fs[1], on_cancel_count, NULL), 0);
  weft_future *only = fs[1];
  EQ_ERR(weft_future_race_index(loop, &only, 1, &e), 0);
  EQ_ERR(weft_future_cancel(e), 0);
  cr_assert_eq(hooks, 1);
  STATE(fs[1], WEFT_FUTURE_CANCELLED);
  EQ_ERR(weft_future_race_index(NULL, fs, 3, &e), -EINVAL);
  EQ_ERR(weft_future_race_index(loop, NULL, 3, &e), -EINVAL);
  EQ_ERR(weft_future_race_index(loop, fs, 3, NULL), -EINVAL);
  EQ_ERR(weft_future_resolve_i64(r, 1), -EALREADY);
  run(loop);
  weft_future_unref(e);
  weft_future_unref(r2);
  weft_future_unref(r);
  unref_n(fs, 3);
  th_loop_finish(loop);
}

static int order[8], norder;
static void record(weft_future *in, void *arg) {
  weft_future **fs = arg;
  for (int i = 0; i < 8; i++)
    if (fs[i] == in) order[norder++] = i;
}

Test(combine, as_completed_hands_inputs_out_in_settling_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[8] = {0}, *outs[4];
  make_n(loop, fs, 4);
  norder = 0;
  EQ_ERR(weft_future_resolve(fs[1], strdup("one"), free), 0); /* settled */
  EQ_ERR(weft_future_as_completed(loop, fs, 4, record, fs, outs), 0);
  EQ_ERR(weft_future_resolve_i64(outs[0], 1), -EBUSY);
  run(loop);
  EQ_ERR(weft_future_reject(fs[3], -EPIPE), 0);
  run(loop);
  EQ_ERR(weft_future_cancel(outs[2]), 0); /* gives up the third position */
  EQ_ERR(weft_future_resolve_i64(fs[0], 10), 0);
  EQ_ERR(weft_future_resolve_i64(fs[2], 20), 0);
  run(loop);
  cr_assert_eq(norder, 4);
  cr_assert_eq(order[0], 1);
  cr_assert_eq(order[1], 3);
  cr_assert_eq(order[2], 0);
  cr_assert_eq(order[3], 2);
  cr_assert_str_eq(weft_future_value(outs[0]), "one"); /* borrowed */
  EQ_ERR(weft_future_error(outs[1]), -EPIPE);
  STATE(outs[2], WEFT_FUTURE_CANCELLED);
  STATE(fs[0], WEFT_FUTURE_FULFILLED); /* not touched by the cancel */
  cr_assert_eq(weft_future_value_i64(outs[3]), 20);
  unref_n(fs, 4); /* outs[0] keeps fs[1]'s value alive */
  cr_assert_str_eq(weft_future_value(outs[0]), "one");
  unref_n(outs, 4);
  th_loop_finish(loop);
}

Test(combine, as_completed_callback_only_and_drain_only, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *fs[8] = {0}, *outs[2];
  make_n(loop, fs, 2);
  norder = 0;
  EQ_ERR(weft_future_as_completed(loop, fs, 2, record, fs, NULL), 0);
  EQ_ERR(weft_future_as_completed(loop, fs, 2, NULL, NULL, outs), 0);
  EQ_ERR(weft_future_resolve_i64(fs[1], 1), 0);
  EQ_ERR(weft_future_cancel(fs[0]), 0);
  run(loop);
  cr_assert_eq(norder, 2);
  cr_assert_eq(order[0], 1);
  cr_assert_eq(order[1], 0);
  cr_assert_eq(weft_future_value_i64(outs[0]), 1);
  STATE(outs[1], WEFT_FUTURE_CANCELLED);
  /* dropping the drain early, and inputs that never settle, leak nothing */
  weft_future *p;
  EQ_ERR(weft_future_new(loop, &p), 0);
  EQ_ERR(weft_future_as_completed(loop, &p, 1, NULL, NULL, outs), 0);
  weft_future_unref(outs[0]);
  EQ_ERR(weft_future_as_completed(loop, NULL, 0, record, fs, NULL), 0);
  EQ_ERR(weft_future_as_completed(loop, fs, 2, NULL, NULL, NULL), -EINVAL);
  EQ_ERR(weft_future_as_completed(NULL, fs, 2, record, NULL, NULL), -EINVAL);
  EQ_ERR(weft_future_as_completed(NULL, fs, 2, NULL, NULL, outs), -EINVAL);
  cr_assert_null(outs[0]);
  weft_future *bad[2] = {fs[0], NULL};
  EQ_ERR(weft_future_as_completed(loop, bad, 2, NULL, NULL, outs), -EINVAL);
  cr_assert_null(outs[0]);
  cr_assert_null(outs[1]);
  weft_future_unref(p);
  unref_n(fs, 2);
  th_loop_finish(loop);
}

Test(combine, shield_cancel_leaves_the_inner_work_running, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_future *sl, *sh, *sh2, *f;
  EQ_ERR(weft_sleep(loop, 20, &sl), 0);
  EQ_ERR(weft_future_shield(sl, &sh), 0);
  EQ_ERR(weft_future_resolve_i64(sh, 1), -EBUSY);
  EQ_ERR(weft_future_cancel(sh), 0); /* the sleep is not stopped */
  STATE(sh, WEFT_FUTURE_CANCELLED);
  STATE(sl, WEFT_FUTURE_PENDING);
  EQ_ERR(weft_future_shield(sl, &sh2), 0);
  run(loop);
  STATE(sl, WEFT_FUTURE_FULFILLED);
  STATE(sh2, WEFT_FUTURE_FULFILLED); /* a shield passes the outcome on */
  /* a timeout over a shield: the timeout cancels the shield, not f */
  hooks = 0;
  weft_future *t;
  EQ_ERR(weft_future_new(loop, &f), 0);
  EQ_ERR(weft_future_on_cancel(f, on_cancel_count, NULL), 0);
  weft_future_unref(sh);
  EQ_ERR(weft_future_shield(f, &sh), 0);
  EQ_ERR(weft_future_timeout(sh, 5, &t), 0);
  run(loop);
  EQ_ERR(weft_future_error(t), -ETIMEDOUT);
  STATE(sh, WEFT_FUTURE_CANCELLED);
  STATE(f, WEFT_FUTURE_PENDING);
  cr_assert_eq(hooks, 0);
  EQ_ERR(weft_future_resolve(f, strdup("v"), free), 0);
  run(loop);
  EQ_ERR(weft_future_shield(NULL, &sh2), -EINVAL);
  EQ_ERR(weft_future_shield(f, NULL), -EINVAL);
  weft_future_unref(sh2);
  EQ_ERR(weft_future_shield(f, &sh2), 0); /* on a settled future */
  weft_future_unref(f);
  run(loop);
  cr_assert_str_eq(weft_future_value(sh2), "v");
  weft_future_unref(t);
  weft_future_unref(sh2);
  weft_future_unref(sh);
  weft_future_unref(sl);
  th_loop_finish(loop);
}

static int combine_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *fs[3] = {NULL, NULL, NULL}, *outs[3], *r = NULL, *sh = NULL;
  int err = 0;
  for (int i = 0; i < 3 && err == 0; i++)
    err = weft_future_new(loop, &fs[i]);
  if (err == 0) err = weft_future_race_index(loop, fs, 3, &r);
  if (err == 0) err = weft_future_as_completed(loop, fs, 3, NULL, NULL, outs);
  bool drained = err == 0;
  if (err == 0) err = weft_future_shield(fs[0], &sh);
  for (int i = 0; i < 3; i++)
    if (fs[i] != NULL) weft_future_resolve_i64(fs[i], i);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (r != NULL) cr_assert_eq(weft_future_value_i64(r), 0);
  if (drained) {
    for (int i = 0; i < 3; i++) {
      cr_assert_eq(weft_future_value_i64(outs[i]), i);
      weft_future_unref(outs[i]);
    }
  }
  if (sh != NULL)
    cr_assert_eq(weft_future_get_state(sh), WEFT_FUTURE_FULFILLED);
  weft_future_unref(sh);
  weft_future_unref(r);
  for (int i = 0; i < 3; i++)
    weft_future_unref(fs[i]);
  return err;
}

Test(combine, allocation_failure_at_each_site, .timeout = 30) {
  cr_assert_gt(th_alloc_sweep(combine_round, NULL), 0);
}
