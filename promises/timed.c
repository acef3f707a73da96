/* weft — sleep and timeout: futures settled by a weft timer.
 *
 * Each timed future owns one timer holder while it is pending; the holder
 * keeps a reference to the future until the timer fires or is stopped, then
 * its timer is closed and the holder goes back to the loop's idle list when
 * the close completes (so steady state allocates nothing). Every holder is
 * also on the loop's list of all holders, which the loop's teardown frees:
 * a pending sleep whose timer someone else closed (a loop shut down with
 * weft_walk + weft_close) leaks nothing. */
#include "internal.h"

typedef struct weft__timer_holder {
  struct weft__timer_holder *all_next; /* every holder of the loop */
  struct weft__timer_holder *next;     /* the idle list */
  weft_timer t;
  weft_future *f;
} holder;

/* Every holder, idle or not: by now their timers are closed (a loop is
 * freed only once its handles are), whoever closed them. */
static void timers_teardown(weft__fmod *m) {
  while (m->timers != NULL) {
    holder *h = m->timers;
    m->timers = h->all_next;
    weft__free(h);
  }
}

static int holder_get(weft_loop *loop, holder **out) {
  weft__fmod *m = weft__fmod_get(loop);
  holder *h = m->timers_free;
  if (h != NULL) {
    m->timers_free = h->next;
  } else {
    if ((h = weft__malloc(sizeof *h)) == NULL) return -ENOMEM;
    m->timers_teardown = timers_teardown;
    h->all_next = m->timers;
    m->timers = h;
  }
  h->next = NULL;
  h->f = NULL;
  weft_timer_init(loop, &h->t);
  h->t.base.data = h;
  *out = h;
  return 0;
}

static void holder_closed(weft_handle *base) {
  holder *h = base->data;
  weft__fmod *m = weft__fmod_get(base->loop);
  h->next = m->timers_free;
  m->timers_free = h;
}

/* Detaches f's holder (*slot, if any): stops and closes its timer and drops
 * the holder's reference to f. Also how sleep and timeout are cancelled.
 * The slot is u.timer (sleep) or u.agg.timer (timeout). */
static void timer_stop(weft_future *f, holder **slot) {
  holder *h = *slot;
  if (h == NULL) return;
  *slot = NULL;
  h->f = NULL;
  weft_close(&h->t.base, holder_closed);
  weft_future_unref(f);
}

static int holder_start(weft_future *f, holder **slot, uint64_t ms,
                        weft_timer_cb cb) {
  holder *h;
  int err = holder_get(f->loop, &h);
  if (err != 0) return err;
  err = weft_timer_start(&h->t, cb, ms, 0);
  if (err != 0) {
    weft_close(&h->t.base, holder_closed);
    return err;
  }
  h->f = weft_future_ref(f);
  *slot = h;
  return 0;
}

static void on_sleep(weft_timer *t) {
  holder *h = t->base.data;
  weft_future *f = h->f;
  weft_future_ref(f);
  timer_stop(f, &f->u.timer);
  weft__future_finish(f, WEFT_FUTURE_FULFILLED, 0);
  weft_future_unref(f);
}

static weft_future *sleep_cancel(weft_future *f) {
  timer_stop(f, &f->u.timer);
  return NULL;
}

/* settled by its timer only */
static const weft__kind sleep_kind = {.name = "weft_sleep",
                                      .cancel = sleep_cancel};
WEFT__KIND(WEFT__K_SLEEP, sleep_kind)

int weft_sleep(weft_loop *loop, uint64_t ms, weft_future **out) {
  if (loop == NULL || out == NULL || ms > WEFT_TIMEOUT_MAX) return -EINVAL;
  weft_future *f;
  int err = weft__future_alloc(loop, WEFT__K_SLEEP, &f);
  if (err != 0) return err;
  err = holder_start(f, &f->u.timer, ms, on_sleep);
  if (err != 0) {
    weft_future_unref(f);
    return err;
  }
  *out = f;
  return 0;
}

static void on_timeout(weft_timer *t) {
  holder *h = t->base.data;
  weft_future *agg = h->f, *inner = agg->src->src;
  weft_future_ref(agg);
  timer_stop(agg, &agg->u.agg.timer);
  weft__future_finish(agg, WEFT_FUTURE_REJECTED, -ETIMEDOUT);
  weft__agg_detach(agg);
  if (inner->state == WEFT_FUTURE_PENDING) weft_future_cancel(inner);
  weft_future_unref(agg);
}

/* The inner future settled first. */
static void timeout_propagate(weft_future *agg, weft_future *in) {
  timer_stop(agg, &agg->u.agg.timer); /* first: pass reuses u */
  weft__future_pass(agg, in);
}

static weft_future *timeout_cancel(weft_future *agg) {
  timer_stop(agg, &agg->u.agg.timer);
  return weft__agg_cancel(agg);
}

/* an aggregate of one input, racing a timer */
static const weft__kind timeout_kind = {.name = "weft_future_timeout",
                                        .propagate = timeout_propagate,
                                        .cancel = timeout_cancel,
                                        .release = weft__agg_release};
WEFT__KIND(WEFT__K_TIMEOUT, timeout_kind)

int weft_future_timeout(weft_future *f, uint64_t ms, weft_future **out) {
  if (f == NULL || out == NULL || ms > WEFT_TIMEOUT_MAX) return -EINVAL;
  weft_future *agg;
  int err = weft__gather(f->loop, &f, 1, WEFT__K_TIMEOUT, &agg);
  if (err != 0) return err;
  err = holder_start(agg, &agg->u.agg.timer, ms, on_timeout);
  if (err != 0) {
    /* take the node back out of f's continuations */
    if (f->state == WEFT_FUTURE_PENDING) weft__future_unwait(f, agg->src);
    weft_future_unref(agg);
    return err;
  }
  *out = agg;
  return 0;
}
