/* weft — the loop: creation, running, aliveness, time, the deferred queue,
 * cross-thread posts and the close phase.
 *
 * weft's own work hangs on libev watchers so that a turn behaves the same
 * whether weft_loop_run() drives libev or a host runs ev_run() itself:
 *   time_check (check, max priority)  refresh the cached time after polling
 *   timer_watcher (max priority)      run due timers
 *   [I/O watchers, priority 0]        streams, wake_io (cross-thread posts)
 *   check (min priority)              drain call_soon, finish closes, stop
 *   prepare                           arm timer_watcher for the next poll
 *   idle                              keep the poll non-blocking while queued
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CS_INITIAL 256u
#define CS_BUDGET_DEFAULT 4096u

_Static_assert(sizeof(ev_io) <= sizeof(((weft_signal *)0)->watcher) ||
                   sizeof(ev_signal) <= sizeof(((weft_signal *)0)->watcher),
               "watcher storage too small");

/* ---- time -------------------------------------------------------------- */

static uint64_t clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t weft_now(const weft_loop *loop) { return loop ? loop->now : 0; }

void weft_update_time(weft_loop *loop) {
  if (loop != NULL) {
    loop->now = clock_ms();
    loop->now_is_ev = false;
  }
}

/* libev reads CLOCK_MONOTONIC right before each poll and right after it
 * (its mn_now), and those are the instants a turn's metrics and weft's
 * cached time need: weft takes them from libev instead of reading the
 * clock again. libev does not export mn_now, but an active ev_timer's
 * deadline (ev_timer.at, listed as private in ev.h) is on that clock and
 * ev_timer_remaining() is that deadline minus mn_now, so a timer that is
 * always active (clock_probe, period EV_PROBE_S, keeping no reference)
 * gives mn_now back. loop_init checks the result against the clock once;
 * if it disagrees (a libev without a monotonic clock), ev_clock stays false
 * and weft reads the clock itself. */
#define EV_PROBE_S 1e6 /* 11.6 days: mn_now + this is exact to 1 ns */

static void on_clock_probe(struct ev_loop *ev, ev_timer *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(w);
  WEFT__UNUSED(revents); /* repeating: libev re-arms it */
}

static uint64_t ev_mono_ns(weft_loop *loop) {
  ev_timer *w = &loop->clock_probe;
  double s = w->at - ev_timer_remaining(loop->ev, w);
  return (uint64_t)(s * 1e9 + 0.5);
}

/* The turn's clock: libev's last read if usable, else a fresh one. */
static uint64_t turn_clock_ns(weft_loop *loop) {
  return loop->ev_clock ? ev_mono_ns(loop) : weft__clock_ns();
}

static void clock_probe_init(weft_loop *loop) {
  ev_timer_init(&loop->clock_probe, on_clock_probe, EV_PROBE_S, EV_PROBE_S);
  ev_set_priority(&loop->clock_probe, EV_MINPRI);
  ev_now_update(loop->ev);
  WEFT__EV_START(timer, loop, &loop->clock_probe);
  uint64_t ev = ev_mono_ns(loop), t = weft__clock_ns();
  loop->ev_clock = t >= ev && t - ev < 1000000u; /* within 1 ms */
}

/* ---- aliveness --------------------------------------------------------- */

void weft__alive_add(weft_loop *loop, int delta) {
  unsigned before = loop->alive;
  loop->alive = (unsigned)((int)before + delta);
  if (before == 0 && loop->alive != 0)
    ev_ref(loop->ev);
  else if (before != 0 && loop->alive == 0)
    ev_unref(loop->ev);
}

bool weft_loop_alive(const weft_loop *loop) {
  return loop != NULL && loop->alive != 0;
}

void weft_loop_ref(weft_loop *loop) {
  if (loop == NULL) return;
  WEFT__CHECK_THREAD_VOID(loop);
  loop->user_refs++;
  weft__alive_add(loop, 1);
}

void weft_loop_unref(weft_loop *loop) {
  if (loop == NULL || loop->user_refs == 0) return;
  WEFT__CHECK_THREAD_VOID(loop);
  loop->user_refs--;
  weft__alive_add(loop, -1);
}

/* Internal watchers must not keep libev alive on their own (core/internal.h).
 */
void weft__io_start(weft_loop *loop, ev_io *w) {
  loop->fd_dirty = true;
  WEFT__EV_START(io, loop, w);
}

void weft__io_stop(weft_loop *loop, ev_io *w) {
  loop->fd_dirty = true;
  WEFT__EV_STOP(io, loop, w);
}

void weft__loop_want_turn(weft_loop *loop) {
  WEFT__EV_START(idle, loop, &loop->idle);
}

static void maybe_stop_idle(weft_loop *loop) {
  if (loop->cs_count == 0 && !weft__closing_pending(loop) &&
      loop->idle_active == 0)
    WEFT__EV_STOP(idle, loop, &loop->idle);
}

/* ---- call_soon --------------------------------------------------------- */

static int cs_grow(weft_loop *loop) {
  uint32_t cap = loop->cs_mask + 1;
  if (cap > UINT32_MAX / 2) return -ENOMEM;
  weft__task *ring = weft__malloc(sizeof *ring * cap * 2);
  if (ring == NULL) return -ENOMEM;
  /* unwrap the ring into the new buffer, oldest first */
  for (uint32_t i = 0; i < loop->cs_count; i++)
    ring[i] = loop->cs_ring[(loop->cs_head + i) & loop->cs_mask];
  weft__free(loop->cs_ring);
  loop->cs_ring = ring;
  loop->cs_head = 0;
  loop->cs_mask = cap * 2 - 1;
  loop->cs_limit = loop->debug ? 0 : cap * 2;
  return 0;
}

/* weft_call_soon's slow path: the ring is full, debug mode is on, or the
 * queue was empty (the loop must be kept alive and turning). Out of line,
 * so that the fast path calls nothing and saves no registers. */
static __attribute__((noinline)) int cs_post_slow(weft_loop *loop, weft_cb cb,
                                                  void *arg) {
  if (loop->cs_count >= loop->cs_limit) {
    int err = weft__debug_thread(loop, "weft_call_soon");
    if (err == 0 && loop->cs_count > loop->cs_mask) err = cs_grow(loop);
    if (err != 0) return err;
  }
  weft__task *slot =
      &loop->cs_ring[(loop->cs_head + loop->cs_count) & loop->cs_mask];
  slot->cb = cb;
  slot->arg = arg;
  loop->cs_count++;
  if (!loop->cs_alive) {
    loop->cs_alive = true;
    weft__alive_add(loop, 1);
    weft__loop_want_turn(loop);
  }
  return 0;
}

int weft_call_soon(weft_loop *loop, weft_cb cb, void *arg) {
  if (WEFT__UNLIKELY(loop == NULL || cb == NULL)) return -EINVAL;
  uint32_t n = loop->cs_count;
  if (WEFT__UNLIKELY(n >= loop->cs_limit || !loop->cs_alive))
    return cs_post_slow(loop, cb, arg);
  weft__task *slot = &loop->cs_ring[(loop->cs_head + n) & loop->cs_mask];
  slot->cb = cb;
  slot->arg = arg;
  loop->cs_count = n + 1;
  return 0;
}

/* cs_drain() with the slow-callback hook on; returns the budget left. */
static unsigned cs_drain_timed(weft_loop *loop, unsigned left) {
  while (loop->cs_count != 0 && left != 0) {
    left--;
    weft__task t = loop->cs_ring[loop->cs_head];
    loop->cs_head = (loop->cs_head + 1) & loop->cs_mask;
    loop->cs_count--;
    uint64_t t0 = weft__clock_ns();
    t.cb(t.arg);
    weft__slow_check(loop, (weft_any_fn)t.cb, t0);
  }
  return left;
}

/* Runs queued callbacks, including ones they queue, until the queue is
 * empty or the budget is spent; what is left runs next turn, after a
 * non-blocking poll, so a self-reposting callback cannot starve I/O.
 * Metrics cost nothing per callback here or in weft_call_soon(): the
 * deepest the queue has been is sampled when a drain begins (and by
 * weft_loop_get_metrics), and the count run is added once per drain. */
static void cs_drain(weft_loop *loop) {
  unsigned budget = loop->cs_budget, left = budget;
  if (loop->cs_count > loop->cs_max) loop->cs_max = loop->cs_count;
  if (WEFT__UNLIKELY(loop->slow_cb != NULL)) {
    left = cs_drain_timed(loop, left);
  } else {
    while (loop->cs_count != 0 && left-- != 0) {
      weft__task t = loop->cs_ring[loop->cs_head];
      loop->cs_head = (loop->cs_head + 1) & loop->cs_mask;
      loop->cs_count--;
      t.cb(t.arg);
    }
    if (loop->cs_count != 0) left = 0; /* stopped by the budget: wrapped */
  }
  loop->m.deferred += budget - left; /* once per drain */
  if (loop->cs_count == 0 && loop->cs_alive) {
    loop->cs_alive = false;
    weft__alive_add(loop, -1);
  }
}

/* ---- watchers ---------------------------------------------------------- */

static void on_time_check(struct ev_loop *ev, ev_check *w, int revents) {
  WEFT__UNUSED(revents);
  weft_loop *loop = w->data;
  WEFT__UNUSED(ev);
  uint64_t t = turn_clock_ns(loop); /* libev's read after the poll */
  uint64_t ms = t / 1000000u;
  if (ms > loop->now) loop->now = ms; /* never back: weft_update_time */
  loop->now_is_ev = loop->ev_clock && ms >= loop->now;
  loop->m.turns++;
  if (loop->poll_ns != 0) loop->m.wait_ns += t - loop->poll_ns;
  loop->poll_ns = 0;
  loop->turn_ns = t;
  loop->turn_open = true;
}

/* Ends the busy stretch begun at loop->turn_ns (metrics). */
static void turn_close(weft_loop *loop, uint64_t t) {
  if (!loop->turn_open) return;
  loop->turn_open = false;
  uint64_t d = t - loop->turn_ns;
  loop->m.busy_ns += d;
  if (d > loop->m.longest_turn_ns) loop->m.longest_turn_ns = d;
}

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents) {
  WEFT__UNUSED(revents);
  weft_loop *loop = w->data;
  weft__ev_fired(ev); /* a one-shot ev_timer stopped itself */
  loop->timer_armed = false;
  weft__timers_run(loop);
}

/* libev's ev_async writes libev's wake-up pipe only while ev_run() is
 * polling, so a host that polls the backend fd itself (weft only runs
 * NOWAIT turns) would sleep through it. weft wakes through its own eventfd,
 * which sits in the backend's fd set like any other I/O. */
void weft__loop_wake(weft_loop *loop) {
  uint64_t one = 1;
  ssize_t n = write(loop->wake_fd, &one, sizeof one);
  WEFT__UNUSED(n); /* EAGAIN: the counter is saturated, the fd readable */
}

static void on_wake(struct ev_loop *ev, ev_io *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(revents);
  weft_loop *loop = w->data;
  uint64_t count; /* reset before draining: later posts wake again */
  ssize_t n = read(loop->wake_fd, &count, sizeof count);
  WEFT__UNUSED(n);
  weft__xpost_drain(loop);
}

static void finish_one(weft_loop *loop, weft_handle *h) {
  WEFT__ASSERT(h->flags & WEFT__H_CLOSING);
  if (h->ops->finish != NULL) h->ops->finish(h);
  h->flags = (h->flags & ~WEFT__H_CLOSING) | WEFT__H_CLOSED;
  weft__list_unlink(&h->all);
  weft__handle_drop_name(h);
  loop->handle_count--;
  weft__alive_add(loop, -1);               /* the close in progress */
  if (h->close_cb != NULL) h->close_cb(h); /* may free h */
}

/* Keeps an emptied close-queue array for the next turn (core/internal.h):
 * as the queue's own if closes meanwhile found none, else as the spare. */
static void closing_keep(weft_loop *loop, weft_handle **vec, uint32_t cap) {
  if (loop->closing_vec == NULL) {
    loop->closing_vec = vec;
    loop->closing_cap = cap;
  } else if (loop->closing_spare == NULL) {
    loop->closing_spare = vec;
    loop->closing_spare_cap = cap;
  } else {
    weft__free(vec);
  }
}

static void finish_closing(weft_loop *loop) {
  /* closes requested by close callbacks finish next turn: take the queue,
   * the array first (older), then the list */
  weft_handle **vec = loop->closing_vec, *next = loop->closing_head;
  uint32_t n = loop->closing_len, cap = loop->closing_cap;
  loop->closing_vec = loop->closing_spare;
  loop->closing_cap = loop->closing_spare_cap;
  loop->closing_len = 0;
  loop->closing_spare = NULL;
  loop->closing_spare_cap = 0;
  loop->closing_head = NULL;
  loop->closing_tail = &loop->closing_head;
  for (uint32_t i = 0; i < n; i++) {
    /* handles are far apart in memory: ask for them well ahead */
    if (i + 8 < n) __builtin_prefetch(vec[i + 8], 1);
    finish_one(loop, vec[i]);
  }
  if (vec != NULL) closing_keep(loop, vec, cap);
  while (next != NULL) {
    weft_handle *h = next;
    next = h->closing_next; /* before the close callback, which may free h */
    finish_one(loop, h);
  }
}

static void on_check(struct ev_loop *ev, ev_check *w, int revents) {
  WEFT__UNUSED(revents);
  weft_loop *loop = w->data;
  weft__hooks_maybe_run(loop, WEFT__HOOK_CHECK); /* core/hooks.c */
  cs_drain(loop);
  if (weft__closing_pending(loop)) finish_closing(loop);
  maybe_stop_idle(loop);
  if (atomic_load_explicit(&loop->stop_flag, memory_order_relaxed))
    ev_break(ev, EVBREAK_ONE);
}

static void arm_timer(struct ev_loop *ev, weft_loop *loop) {
  uint64_t deadline;
  if (!weft__timers_earliest(loop, &deadline)) {
    if (loop->timer_armed) {
      WEFT__EV_STOP(timer, loop, &loop->timer_watcher);
      loop->timer_armed = false;
    }
    return;
  }
  if (loop->timer_armed && loop->armed_deadline == deadline) return;
  WEFT__EV_STOP(timer, loop, &loop->timer_watcher);
  uint64_t wait = deadline > loop->now ? deadline - loop->now : 0;
  /* libev measures `wait` from its own cached time, which can be older than
   * weft's: refresh it, or the watcher fires before weft's clock reaches the
   * deadline and a ONCE run returns without running the timer. Not needed
   * when weft's time is libev's, truncated (on_time_check). */
  if (!loop->now_is_ev) ev_now_update(ev);
  ev_timer_set(&loop->timer_watcher, weft__ms_to_ev(wait), 0.);
  WEFT__EV_START(timer, loop, &loop->timer_watcher);
  loop->timer_armed = true;
  loop->armed_deadline = deadline;
}

static void on_prepare(struct ev_loop *ev, ev_prepare *w, int revents) {
  WEFT__UNUSED(revents);
  weft_loop *loop = w->data;
  /* first: what they start (timers, I/O, call_soon) counts for this poll */
  weft__hooks_maybe_run(loop, WEFT__HOOK_IDLE);
  weft__hooks_maybe_run(loop, WEFT__HOOK_PREPARE);
  loop->fd_dirty = false;
  arm_timer(ev, loop);
  /* metrics: the turn ends, the poll begins (own loops: on_release) */
  if (!loop->release_stamp) {
    uint64_t t = weft__clock_ns();
    turn_close(loop, t);
    loop->poll_ns = t;
  }
}

/* libev calls this right before its poll, after its own clock read (own
 * libev loops only: a host's may have its own release callback). */
static void on_release(struct ev_loop *ev) EV_NOEXCEPT {
  weft_loop *loop = ev_userdata(ev);
  uint64_t t = ev_mono_ns(loop);
  turn_close(loop, t);
  loop->poll_ns = t;
}

static void on_acquire(struct ev_loop *ev) EV_NOEXCEPT { WEFT__UNUSED(ev); }

static void on_idle(struct ev_loop *ev, ev_idle *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(w);
  WEFT__UNUSED(revents);
}

/* ---- create / free ----------------------------------------------------- */

static void on_probe_async(struct ev_loop *ev, ev_async *w, int revents) {
  WEFT__UNUSED(ev);
  WEFT__UNUSED(w);
  WEFT__UNUSED(revents);
}

/* libev makes its own wake-up fd (an eventfd, else a pipe) the first time a
 * loop starts an ev_async or an ev_signal, and abort()s if it cannot: with
 * the fds used up, the first pool job or signal handle would kill the
 * process. So it is made here, where a failure is still an error code: an
 * eventfd is opened and closed first, so that libev's own attempt finds the
 * fd free, then an ev_async started and stopped makes libev create its fd,
 * which lives as long as the libev loop. (Another thread taking that fd in
 * between is the one window left.) */
static int ev_wakeup_fd_make(struct ev_loop *ev) {
  int probe = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (probe < 0) return -errno;
  close(probe);
  ev_async a;
  ev_async_init(&a, on_probe_async);
  ev_async_start(ev, &a);
  ev_async_stop(ev, &a);
  return 0;
}

static int loop_init(weft_loop **out, struct ev_loop *ev, bool own,
                     const weft_loop_options *opts) {
  weft_loop *loop = weft__calloc(1, sizeof *loop);
  if (loop == NULL) return -ENOMEM;
  loop->cs_ring = weft__malloc(sizeof *loop->cs_ring * CS_INITIAL);
  /* the close queue's first array: closing a few handles allocates nothing */
  loop->closing_vec =
      weft__malloc(sizeof *loop->closing_vec * WEFT__CLOSING_INITIAL);
  int err =
      loop->cs_ring && loop->closing_vec ? weft__xpost_init(loop) : -ENOMEM;
  if (err != 0) {
    weft__free(loop->closing_vec);
    weft__free(loop->cs_ring);
    weft__free(loop);
    return err;
  }
  loop->closing_cap = WEFT__CLOSING_INITIAL;
  loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  err = loop->wake_fd < 0 ? -errno : ev_wakeup_fd_make(ev);
  if (err != 0) {
    if (loop->wake_fd >= 0) close(loop->wake_fd);
    weft__xpost_free(loop);
    weft__free(loop->closing_vec);
    weft__free(loop->cs_ring);
    weft__free(loop);
    return err;
  }
  loop->cs_mask = CS_INITIAL - 1;
  weft__list_init(&loop->handles);
  loop->closing_head = NULL;
  loop->closing_tail = &loop->closing_head;
  for (int i = 0; i < 3; i++)
    weft__list_init(&loop->hooks[i]);
  weft__timers_init(loop);
  loop->pool_size = opts ? opts->pool_size : 0;
  loop->cs_budget = opts && opts->call_soon_budget ? opts->call_soon_budget
                                                   : CS_BUDGET_DEFAULT;
  const char *dbg = getenv("WEFT_DEBUG");
  loop->debug = (opts && opts->debug) ||
                (dbg != NULL && dbg[0] != '\0' && strcmp(dbg, "0") != 0);
  atomic_init(&loop->run_thread, 0);
  loop->cs_limit = loop->debug ? 0 : CS_INITIAL;
  loop->ev = ev;
  loop->own_ev = own;
  /* libev registers its wake-up fd with epoll on the first poll: until
   * then weft_loop_backend_timeout() must say "run me now" */
  loop->fd_dirty = true;
  atomic_init(&loop->stop_flag, false);
  loop->now = clock_ms();

  ev_check_init(&loop->time_check, on_time_check);
  ev_set_priority(&loop->time_check, EV_MAXPRI);
  ev_timer_init(&loop->timer_watcher, on_timer, 0., 0.);
  ev_set_priority(&loop->timer_watcher, EV_MAXPRI);
  ev_check_init(&loop->check, on_check);
  ev_set_priority(&loop->check, EV_MINPRI);
  ev_prepare_init(&loop->prepare, on_prepare);
  ev_idle_init(&loop->idle, on_idle);
  ev_set_priority(&loop->idle, EV_MINPRI);
  ev_io_init(&loop->wake_io, on_wake, loop->wake_fd, EV_READ);
  loop->time_check.data = loop->timer_watcher.data = loop->check.data =
      loop->prepare.data = loop->idle.data = loop->wake_io.data = loop;
  WEFT__EV_START(check, loop, &loop->time_check);
  WEFT__EV_START(check, loop, &loop->check);
  WEFT__EV_START(prepare, loop, &loop->prepare);
  WEFT__EV_START(io, loop, &loop->wake_io);
  clock_probe_init(loop);
  if (own && loop->ev_clock) {
    ev_set_userdata(ev, loop);
    ev_set_loop_release_cb(ev, on_release, on_acquire);
    loop->release_stamp = true;
  }
  *out = loop;
  return 0;
}

/* ev_loop_new() said NULL: the backend asked for could not be made. With
 * libev's choice (EVFLAG_AUTO) it falls back to poll(), which needs no fd,
 * so only an explicit backend fails on fd exhaustion; other failures of an
 * explicit backend mean it is not available (bad flags). */
static int loop_new_error(int e, bool explicit_flags) {
  if (e == EMFILE || e == ENFILE || e == ENOMEM) return -e;
  return explicit_flags ? -EINVAL : -ENOMEM;
}

int weft_loop_new(weft_loop **out, const weft_loop_options *opts) {
  if (out == NULL) return -EINVAL;
  unsigned flags = opts && opts->ev_flags ? opts->ev_flags : EVFLAG_AUTO;
  int backend_fd;
  errno = 0;
  struct ev_loop *ev = weft__ev_loop_new(flags, &backend_fd);
  if (ev == NULL) return loop_new_error(errno, opts && opts->ev_flags);
  int err = loop_init(out, ev, true, opts);
  if (err != 0)
    ev_loop_destroy(ev);
  else
    (*out)->backend_fd = backend_fd;
  return err;
}

int weft_loop_from_ev(weft_loop **out, struct ev_loop *ev,
                      const weft_loop_options *opts) {
  if (out == NULL || ev == NULL) return -EINVAL;
  int err = loop_init(out, ev, false, opts);
  if (err == 0) (*out)->backend_fd = -ENOTSUP; /* the host owns the poll */
  return err;
}

static bool loop_busy(weft_loop *loop) {
  return loop->handle_count != 0 || loop->cs_count != 0 ||
         loop->alive != loop->user_refs || loop->running;
}

/* When outstanding requests are all that keeps the loop from being freed,
 * the modules' before-free hooks may finish theirs (weft__module). */
static void modules_before_free(weft_loop *loop) {
  for (int id = 0; id < WEFT__MOD_MAX; id++) {
    /* rechecked each time: a hook runs callbacks that may start more */
    if (loop->handle_count != 0 || loop->cs_count != 0 || loop->running) return;
    unsigned requests = loop->alive - loop->user_refs;
    if (requests == 0) return;
    if (loop->modules[id].before_free != NULL)
      loop->modules[id].before_free(loop, loop->modules[id].state, requests);
  }
}

int weft_loop_free(weft_loop *loop) {
  if (loop == NULL) return -EINVAL;
  modules_before_free(loop);
  if (loop_busy(loop) || weft__xpost_close(loop) != 0) return -EBUSY;

  for (int id = WEFT__MOD_MAX - 1; id >= 0; id--)
    if (loop->modules[id].teardown != NULL)
      loop->modules[id].teardown(loop, loop->modules[id].state);
  while (loop->user_refs)
    weft_loop_unref(loop);
  WEFT__EV_STOP(check, loop, &loop->time_check);
  WEFT__EV_STOP(check, loop, &loop->check);
  WEFT__EV_STOP(prepare, loop, &loop->prepare);
  WEFT__EV_STOP(io, loop, &loop->wake_io);
  WEFT__EV_STOP(idle, loop, &loop->idle);
  WEFT__EV_STOP(timer, loop, &loop->timer_watcher);
  WEFT__EV_STOP(timer, loop, &loop->clock_probe);
  if (loop->own_ev) ev_loop_destroy(loop->ev);
  close(loop->wake_fd);
  weft__xpost_free(loop);
  weft__free(loop->cs_ring);
  weft__free(loop->closing_vec);
  weft__free(loop->closing_spare);
  weft__timers_free(loop);
  weft__free(loop->names);
  weft__free(loop);
  return 0;
}

void weft__module_set(weft_loop *loop, weft__module_id id, void *state,
                      void (*teardown)(weft_loop *, void *)) {
  loop->modules[id].state = state;
  loop->modules[id].teardown = teardown;
}

void weft__module_set_dump(weft_loop *loop, weft__module_id id,
                           long (*dump)(weft_loop *, void *, int)) {
  loop->modules[id].dump = dump;
}

void weft__module_set_before_free(weft_loop *loop, weft__module_id id,
                                  void (*before_free)(weft_loop *, void *,
                                                      unsigned)) {
  loop->modules[id].before_free = before_free;
}

struct ev_loop *weft_loop_ev(weft_loop *loop) {
  return loop ? loop->ev : NULL;
}
void *weft_loop_get_data(const weft_loop *loop) {
  return loop ? loop->data : NULL;
}
void weft_loop_set_data(weft_loop *loop, void *data) {
  if (loop != NULL) loop->data = data;
}
size_t weft_loop_size(void) { return sizeof(weft_loop); }

/* ---- run / stop -------------------------------------------------------- */

int weft_loop_run(weft_loop *loop, weft_run_mode mode) {
  if (loop == NULL) return -EINVAL;
  int flags;
  switch (mode) {
  case WEFT_RUN_DEFAULT:
    flags = 0;
    break;
  case WEFT_RUN_ONCE:
    flags = EVRUN_ONCE;
    break;
  case WEFT_RUN_NOWAIT:
    flags = EVRUN_NOWAIT;
    break;
  default:
    return -EINVAL;
  }
  WEFT__CHECK_THREAD(loop);
  if (loop->running) return -EBUSY;
  loop->running = 1;
  if (loop->debug)
    atomic_store_explicit(&loop->run_thread, (uintptr_t)pthread_self(),
                          memory_order_relaxed);
  uint64_t t = weft__clock_ns();
  loop->now = t / 1000000u;
  loop->now_is_ev = false;
  loop->turn_ns = t; /* metrics: busy until the first poll */
  loop->turn_open = true;
  /* libev's ev_run always makes one pass; a DEFAULT run of a dead loop
   * returns at once, as a libuv user expects. */
  if (mode != WEFT_RUN_DEFAULT || loop->alive != 0 || !loop->own_ev)
    ev_run(loop->ev, flags);
  turn_close(loop, weft__clock_ns());
  loop->poll_ns = 0; /* between runs: neither busy nor waiting */
  atomic_store(&loop->stop_flag, false);
  loop->running = 0;
  if (loop->debug)
    atomic_store_explicit(&loop->run_thread, 0, memory_order_relaxed);
  return loop->alive != 0;
}

void weft_loop_stop(weft_loop *loop) {
  if (loop == NULL) return;
  atomic_store(&loop->stop_flag, true);
  weft__loop_wake(loop); /* wakes a blocked poll */
}

/* ---- embedding --------------------------------------------------------- */

int weft_loop_backend_fd(const weft_loop *loop) {
  return loop ? loop->backend_fd : -EINVAL;
}

int weft_loop_backend_timeout(const weft_loop *loop) {
  if (loop == NULL) return -1;
  if (loop->cs_count || weft__closing_pending(loop) || loop->fd_dirty ||
      loop->idle_active || ev_pending_count(loop->ev))
    return 0;
  int64_t ms = weft__timers_next(loop);
  if (ms > INT32_MAX) return INT32_MAX;
  return (int)ms;
}

/* ---- metrics ------------------------------------------------------------ */

_Static_assert(WEFT_LOOP_LAG_BUCKETS == 32, "lag buckets: see weft/loop.h");

int weft_loop_get_metrics(const weft_loop *loop, weft_loop_metrics *m,
                          size_t size) {
  if (loop == NULL || m == NULL || size < sizeof *m) return -EINVAL;
  WEFT__CHECK_THREAD(loop);
  weft_loop_metrics v = loop->m;
  v.size = sizeof v;
  v.timers_fired = 0; /* one lag entry per fired timer (timers/timer.c) */
  for (int i = 0; i < WEFT_LOOP_LAG_BUCKETS; i++)
    v.timers_fired += v.timer_lag[i];
  v.callbacks =
      v.deferred + v.posts_received + v.timers_fired + v.io_events + v.hooks;
  v.deferred_depth = loop->cs_count;
  v.deferred_max_depth =
      loop->cs_count > loop->cs_max ? loop->cs_count : loop->cs_max;
  memset(m, 0, size);
  memcpy(m, &v, sizeof v);
  return 0;
}

int weft_loop_set_slow_callback(weft_loop *loop, uint64_t threshold_us,
                                weft_slow_callback_cb cb, void *arg) {
  if (loop == NULL) return -EINVAL;
  WEFT__CHECK_THREAD(loop);
  loop->slow_ns =
      threshold_us > UINT64_MAX / 1000u ? UINT64_MAX : threshold_us * 1000u;
  loop->slow_arg = arg;
  loop->slow_cb = cb;
  return 0;
}
