/* weft — cancellation scopes (asyncio's timeout(), with reschedule).
 *
 * A scope is a group (group.c's member list) whose members' errors do not
 * count, with a deadline and an optional parent. The deadline is a sleep
 * future watched by a node of its own (WEFT__K_SCOPE_TIMER, u.node.agg the
 * scope, cut when the scope lets go of it): moving the deadline makes a new
 * sleep before cancelling the old one (so a failure keeps the old deadline),
 * and a cancelled sleep's node fires for nothing. A child scope is a member of
 * its parent, so the parent's cancellation reaches it like any member's;
 * the child keeps a plain pointer to the parent only to report the
 * earliest deadline, cut when either side settles or the parent is freed. */
#include "group_internal.h"
#include "weft/group.h"

static weft__group *grp(const weft_future *s) { return s->u.group; }

static bool is_scope(const weft_future *s) {
  return s != NULL && s->kind == WEFT__K_SCOPE;
}

static bool bad_timeout(uint64_t ms) {
  return ms > WEFT_TIMEOUT_MAX && ms != WEFT_SCOPE_NO_DEADLINE;
}

/* Lets go of s's deadline; a sleep still pending is cancelled (which stops
 * its timer). */
static void timer_detach(weft_future *s, weft_future **todo) {
  weft__group *x = grp(s);
  weft_future *t = x->timer;
  x->deadline = UINT64_MAX;
  if (t == NULL) return;
  x->timer = NULL;
  t->u.node.agg = NULL;
  if (t->src->state == WEFT_FUTURE_PENDING) weft_future_cancel(t->src);
  if (todo != NULL)
    weft__future_drop(t, todo);
  else
    weft_future_unref(t);
}

/* A new deadline ms from now replaces the old one (kept on failure). */
static int timer_arm(weft_future *s, uint64_t ms) {
  weft_future *sl, *t;
  int err = weft_sleep(s->loop, ms, &sl);
  if (err != 0) return err;
  if ((err = weft__future_alloc(s->loop, WEFT__K_SCOPE_TIMER, &t)) != 0) {
    weft_future_cancel(sl);
    weft_future_unref(sl);
    return err;
  }
  t->src = sl; /* the caller's reference moves into the node */
  t->u.node.agg = s;
  weft__future_wait(sl, weft_future_ref(t));
  timer_detach(s, NULL);
  grp(s)->timer = t;
  grp(s)->deadline = weft_now(s->loop) + ms;
  return 0;
}

/* Settles the pending s; a settled scope needs neither deadline nor
 * parent. */
static void finish(weft_future *s, uint8_t state, int64_t v) {
  timer_detach(s, NULL);
  grp(s)->parent = NULL;
  weft__future_finish(s, state, v);
}

static void timer_fire(weft_future *t) {
  weft_future *s = t->u.node.agg;
  if (s == NULL || t->src->state != WEFT_FUTURE_FULFILLED ||
      s->state != WEFT_FUTURE_PENDING)
    return;
  weft_future_ref(s);
  finish(s, WEFT_FUTURE_REJECTED, -ETIMEDOUT);
  weft__members_cancel(s);
  weft_future_unref(s);
}

static void scope_propagate(weft_future *s, weft_future *in) {
  WEFT__UNUSED(in);
  weft__group *x = grp(s);
  if (x->closed && x->pending == 0)
    finish(s, WEFT_FUTURE_FULFILLED, (int64_t)x->added);
}

/* s is CANCELLED already */
static weft_future *scope_cancel(weft_future *s) {
  timer_detach(s, NULL);
  grp(s)->parent = NULL;
  weft__members_cancel(s);
  return NULL;
}

static void scope_release(weft_future *s, weft_future **todo) {
  timer_detach(s, todo);
  weft__members_release(s, todo);
}

/* settled by its members, its deadline or a cancel only (by_hand 0) */
static const weft__kind scope_kind = {.name = "scope",
                                      .propagate = scope_propagate,
                                      .cancel = scope_cancel,
                                      .release = scope_release};
/* watches the deadline's sleep; nobody's to settle or cancel */
static const weft__kind scope_timer_kind = {.name = "scope_timer",
                                            .fire = timer_fire};
WEFT__KIND(WEFT__K_SCOPE, scope_kind)
WEFT__KIND(WEFT__K_SCOPE_TIMER, scope_timer_kind)

/* ---- the API
 * ------------------------------------------------------------------ */

int weft_scope_new(weft_loop *loop, weft_future *parent, uint64_t timeout_ms,
                   weft_future **out) {
  if (loop == NULL || out == NULL || bad_timeout(timeout_ms) ||
      (parent != NULL && (!is_scope(parent) || parent->loop != loop)))
    return -EINVAL;
  weft_future *s;
  int err = weft__members_new(loop, WEFT__K_SCOPE, &s);
  if (err != 0) return err;
  if (timeout_ms != WEFT_SCOPE_NO_DEADLINE) err = timer_arm(s, timeout_ms);
  if (err == 0 && parent != NULL) err = weft_scope_attach(parent, s);
  if (err != 0) {
    if (s->state == WEFT_FUTURE_PENDING) timer_detach(s, NULL);
    weft_future_unref(s);
    return err;
  }
  grp(s)->parent = parent;
  *out = s;
  return 0;
}

int weft_scope_attach(weft_future *s, weft_future *f) {
  if (!is_scope(s) || f == NULL || f == s || f->loop != s->loop) return -EINVAL;
  if (s->state == WEFT_FUTURE_CANCELLED || s->state == WEFT_FUTURE_REJECTED) {
    if (f->state == WEFT_FUTURE_PENDING) weft_future_cancel(f);
    return s->state == WEFT_FUTURE_REJECTED ? -ETIMEDOUT : -ECANCELED;
  }
  if (grp(s)->closed || s->state != WEFT_FUTURE_PENDING) return WEFT_ECLOSED;
  return weft__members_add(s, f);
}

int weft_scope_reschedule(weft_future *s, uint64_t timeout_ms) {
  if (!is_scope(s) || bad_timeout(timeout_ms)) return -EINVAL;
  if (s->state != WEFT_FUTURE_PENDING) return -EALREADY;
  if (timeout_ms == WEFT_SCOPE_NO_DEADLINE) {
    timer_detach(s, NULL);
    return 0;
  }
  return timer_arm(s, timeout_ms);
}

int weft_scope_deadline(const weft_future *s, uint64_t *at) {
  if (!is_scope(s) || at == NULL) return -EINVAL;
  if (s->state != WEFT_FUTURE_PENDING) return -EALREADY;
  uint64_t min = UINT64_MAX;
  for (const weft_future *p = s; p != NULL; p = grp(p)->parent)
    if (grp(p)->deadline < min) min = grp(p)->deadline;
  *at = min;
  return 0;
}

int weft_scope_close(weft_future *s) {
  if (!is_scope(s)) return -EINVAL;
  weft__group *x = grp(s);
  if (x->closed) return -EALREADY;
  x->closed = 1;
  if (s->state == WEFT_FUTURE_PENDING) scope_propagate(s, NULL);
  return 0;
}
