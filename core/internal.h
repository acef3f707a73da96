/* weft — what the library's modules share. Never installed; nothing outside
 * the library includes it. */
#ifndef WEFT_CORE_INTERNAL_H
#define WEFT_CORE_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "list.h"
#include "weft/loop.h"
#include "weft/timer.h"
#include "weft/signal.h"

#define WEFT__UNUSED(x) ((void)(x))
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- allocator (core/alloc.c) ------------------------------------------ */
void *weft__malloc(size_t size);
void *weft__calloc(size_t n, size_t size);
void *weft__realloc(void *ptr,
                    size_t size); /* NULL ptr: malloc; never size 0 */
void weft__free(void *ptr);
char *weft__strdup(const char *s);

/* ---- handles ----------------------------------------------------------- */

/* What differs per handle type. `close` stops the handle's watchers at once
 * (from weft_close); `finish` (may be NULL) runs in the close phase right
 * before the close callback: this is where pending requests fail with
 * -ECANCELED, so that they always complete before the handle's close
 * callback. */
typedef struct weft__handle_ops {
  weft_handle_type type;
  void (*close)(weft_handle *h);
  void (*finish)(weft_handle *h);
  /* May be NULL. Runs the handle's completed requests: called by the io
   * layer's deferred run for a handle it queued (io/iostate.c), so that
   * layer never needs to know the handle's type. */
  void (*deliver)(weft_handle *h);
} weft__handle_ops;

enum {
  WEFT__H_ACTIVE = 1u << 0,
  WEFT__H_UNREF = 1u << 1,
  WEFT__H_CLOSING = 1u << 2,
  WEFT__H_CLOSED = 1u << 3,
  /* bits 8-31 of weft_handle.flags: the handle's slot in loop->names plus
   * one, or 0 when it has no name (core/debug.c) */
  WEFT__H_NAME_SHIFT = 8,
};

/* A slot of the loop's table of handle names: a named handle's name, or
 * (a free slot) the next free slot plus one, 0 ending the list. */
typedef union weft__name_slot {
  const char *name;
  uint32_t next_free;
} weft__name_slot;

/* weft_handle_set_name's name for `h`, or NULL (core/debug.c). */
const char *weft__handle_name(const weft_handle *h);
/* Forgets `h`'s name, giving its slot back; nothing if it has none. */
void weft__handle_drop_name(weft_handle *h);

/* Registers `h` with `loop` (it counts as open until closed). */
void weft__handle_init(weft_loop *loop, weft_handle *h,
                       const weft__handle_ops *ops);
/* Active + referenced handles keep the loop alive. Idempotent. */
void weft__handle_start(weft_handle *h);
void weft__handle_stop(weft_handle *h);
static inline bool weft__handle_usable(const weft_handle *h) {
  return h != NULL && h->ops != NULL &&
         !(h->flags & (WEFT__H_CLOSING | WEFT__H_CLOSED));
}
/* weft_is_closing() for a handle known to be there (no call). */
static inline bool weft__handle_closing(const weft_handle *h) {
  return (h->flags & (WEFT__H_CLOSING | WEFT__H_CLOSED)) != 0;
}

/* ---- aliveness --------------------------------------------------------- */

/* Every reason the loop is alive is counted in loop->alive; the loop holds
 * one ev_ref on libev exactly while the count is nonzero, and every libev
 * watcher weft starts is unreferenced. So libev's ev_run (weft's or a host's)
 * keeps going exactly while weft has something to do. */
void weft__alive_add(weft_loop *loop, int delta);
/* An outstanding request (pool job, DNS query, connect, ...). */
static inline void weft__req_start(weft_loop *loop) {
  weft__alive_add(loop, 1);
}
static inline void weft__req_done(weft_loop *loop) {
  weft__alive_add(loop, -1);
}

/* Start/stop a libev watcher on behalf of weft: the watcher itself never
 * holds a libev reference (see above), and a started I/O watcher marks the
 * loop's fd set dirty for weft_loop_backend_timeout(). */
void weft__io_start(weft_loop *loop, ev_io *w);
void weft__io_stop(weft_loop *loop, ev_io *w);

/* The same for every other kind of libev watcher (`kind` is libev's: timer,
 * signal, async, check, prepare, idle): WEFT__EV_START starts `w` if it is
 * not active and drops the libev reference that took; WEFT__EV_STOP gives
 * the reference back and stops `w` if it is active. A one-shot ev_timer
 * stops itself when it fires: its callback calls weft__ev_fired() first.
 * (A watcher that adds an fd, an ev_signal with EVFLAG_SIGNALFD, also sets
 * loop->fd_dirty, as weft__io_start does.) */
#define WEFT__EV_START(kind, loop, w)                                          \
  do {                                                                         \
    if (!ev_is_active(w)) {                                                    \
      ev_##kind##_start((loop)->ev, (w));                                      \
      ev_unref((loop)->ev);                                                    \
    }                                                                          \
  } while (0)
#define WEFT__EV_STOP(kind, loop, w)                                           \
  do {                                                                         \
    if (ev_is_active(w)) {                                                     \
      ev_ref((loop)->ev);                                                      \
      ev_##kind##_stop((loop)->ev, (w));                                       \
    }                                                                          \
  } while (0)
/* First thing in a one-shot ev_timer's callback (see WEFT__EV_START): the
 * timer stopped itself, so the reference it dropped comes back. */
static inline void weft__ev_fired(struct ev_loop *ev) { ev_ref(ev); }

/* ---- per-loop module state -------------------------------------------- */

/* Modules beyond the core (futures, pool, dns, ...) keep per-loop state in a
 * slot, created on first use, torn down by weft_loop_free(). */
typedef enum weft__module_id {
  WEFT__MOD_FUTURE = 0,
  WEFT__MOD_SYNC,
  WEFT__MOD_POOL,
  WEFT__MOD_POOL_FUTURE,
  WEFT__MOD_FS,
  WEFT__MOD_DNS,
  WEFT__MOD_NET,
  WEFT__MOD_PROCESS,
  WEFT__MOD_FIBER, /* promises/fiber.c: the stack cache, live fibers */
  WEFT__MOD_WATCH, /* io/watch.c: the loop's shared inotify fd */
  WEFT__MOD_MAX
} weft__module_id;

typedef struct weft__module {
  void *state;
  /* Called by weft_loop_free() once nothing is outstanding, in reverse
   * module order. Must free `state`. */
  void (*teardown)(weft_loop *loop, void *state);
  /* May be NULL. Called first thing by weft_loop_free(), in module order,
   * when outstanding requests are all that keeps the loop from being freed
   * (no open handle, nothing deferred, not running): `requests` is how many
   * there are in all. A module whose own requests are all of them may
   * finish them here (cancel, wait, run their callbacks), so that the free
   * can go ahead. */
  void (*before_free)(weft_loop *loop, void *state, unsigned requests);
  /* May be NULL. weft_loop_debug_dump(): writes the module's lines to fd
   * (futures: one per pending future) and returns how many it wrote, or a
   * negative errno if a write failed. */
  long (*dump)(weft_loop *loop, void *state, int fd);
} weft__module;

/* ---- the loop ---------------------------------------------------------- */

typedef struct weft__xring weft__xring;

typedef struct weft__task {
  weft_cb cb;
  void *arg;
} weft__task;

#include "timers/internal.h" /* weft__timers: owned by timers/, embedded here */

struct weft_loop {
  struct ev_loop *ev;
  bool own_ev;
  int backend_fd; /* libev's epoll fd, or -ENOTSUP (core/backend.c) */
  int running;    /* nesting guard for weft_loop_run */
  bool debug;     /* debug mode (weft_loop_options.debug, $WEFT_DEBUG) */
  /* debug mode: pthread_self() of the thread in weft_loop_run(), 0 when no
   * run is in progress (written by that thread, read by any) */
  atomic_uintptr_t run_thread;
  void *data;
  uint64_t now;

  unsigned alive;     /* reasons to live; ev_ref held while nonzero */
  unsigned user_refs; /* weft_loop_ref() */
  bool fd_dirty;      /* an I/O watcher changed since the last prepare */

  /* call_soon: a power-of-two ring that only grows */
  weft__task *cs_ring;
  uint32_t cs_head, cs_count, cs_mask;
  /* weft_call_soon's one test: cs_mask + 1 (the ring's capacity), or 0 in
   * debug mode, so that the debug check costs nothing when off */
  uint32_t cs_limit;
  unsigned cs_budget;
  bool cs_alive;   /* the nonempty queue is counted in `alive` */
  uint32_t cs_max; /* metrics: the deepest the queue has been */

  /* call_soon_threadsafe (core/xpost.c): one ring per posting thread */
  pthread_mutex_t x_lock; /* the registry of rings */
  _Atomic(weft__xring *) x_rings;
  uint64_t x_id;          /* creation id, for the threads' ring caches */
  atomic_bool x_sleeping; /* the loop may block: producers must wake it */
  atomic_bool x_closed;   /* weft_loop_free() has begun */
  atomic_bool stop_flag;

  /* handles: every open handle (weft_handle.all), and the FIFO queue of
   * those finishing close, both in order. The queue is an array
   * (closing_vec), so that the close phase streams through it, prefetching,
   * instead of chasing one pointer per handle through memory; closing_spare
   * is the array the close phase last emptied, kept for the next turn. Only
   * when the array cannot grow does the queue go on as a list singly linked
   * through weft_handle.closing_next (closing_tail points at the last
   * handle's closing_next, or at closing_head when the list is empty); while
   * that list is not empty every close joins it, so the order is kept. */
  weft__list handles;
  size_t handle_count;
#define WEFT__CLOSING_INITIAL 64u /* entries; made with the loop */
  weft_handle **closing_vec, **closing_spare;
  uint32_t closing_len, closing_cap, closing_spare_cap;
  weft_handle *closing_head;
  weft_handle **closing_tail;
  /* weft_handle_set_name's names, out of the handles (core/debug.c): a
   * named handle holds its slot in its flags; free slots form a list */
  weft__name_slot *names;
  uint32_t names_cap;
  uint32_t names_free; /* the first free slot plus one, or 0 */

  weft__timers timers;
  uint64_t armed_deadline; /* deadline the ev_timer is armed for */
  bool timer_armed;

  weft__module modules[WEFT__MOD_MAX];
  unsigned pool_size; /* weft_loop_options.pool_size (core/pool.c) */

  /* loop phase hooks (core/hooks.c): started prepare, check and idle
   * handles, each list in start order; idle_active counts the idle ones,
   * which keep the poll from blocking */
  weft__list hooks[3];
  unsigned idle_active;

  /* metrics (weft_loop_get_metrics): plain counters, loop thread only;
   * m.size, m.callbacks and the depths are filled in when read */
  weft_loop_metrics m;
  uint64_t turn_ns; /* clock at the last turn's start (after the poll) */
  uint64_t poll_ns; /* clock when the last prepare phase ended, or 0 */
  bool turn_open;   /* a busy stretch began at turn_ns */
  /* turn stamps from libev's own clock reads (core/loop.c, ev_mono_ns):
   * ev_clock, libev's clock is CLOCK_MONOTONIC and clock_probe gives it;
   * release_stamp, libev's release callback stamps the poll's start;
   * now_is_ev, `now` is libev's current time truncated to the ms */
  bool ev_clock, release_stamp, now_is_ev;
  ev_timer clock_probe; /* always active, unreferenced: see ev_mono_ns */
  uint64_t slow_ns;     /* the slow-callback threshold */
  weft_slow_callback_cb slow_cb; /* NULL: callbacks are not timed */
  void *slow_arg;

  ev_prepare prepare;  /* arms the timer watcher before polling */
  ev_check time_check; /* max priority: refreshes `now` after polling */
  ev_check check;      /* min priority: drains, closes, stops */
  ev_idle idle;        /* makes the poll non-blocking while work queued */
  ev_timer timer_watcher;
  ev_io wake_io; /* wake_fd readable: cross-thread posts, stop */
  int wake_fd;   /* an eventfd (see weft__loop_wake) */
};

/* True while handles wait in the close queue (weft_close, core/loop.c). */
static inline bool weft__closing_pending(const weft_loop *loop) {
  return loop->closing_len != 0 || loop->closing_head != NULL;
}

/* Module slots. get returns NULL if none yet. */
static inline void *weft__module_get(const weft_loop *loop,
                                     weft__module_id id) {
  return loop->modules[id].state;
}
void weft__module_set(weft_loop *loop, weft__module_id id, void *state,
                      void (*teardown)(weft_loop *, void *));
/* Registers the slot's before-free hook (see weft__module); call it after
 * weft__module_set. */
void weft__module_set_before_free(weft_loop *loop, weft__module_id id,
                                  void (*before_free)(weft_loop *, void *,
                                                      unsigned));

/* Registers the slot's dump hook (see weft__module). */
void weft__module_set_dump(weft_loop *loop, weft__module_id id,
                           long (*dump)(weft_loop *, void *, int));

/* ---- debug mode (weft_loop_options.debug, $WEFT_DEBUG) ------------------
 * WEFT__CHECK_THREAD(loop) at the top of a loop-thread-only public function
 * that returns an int: in debug mode, while weft_loop_run() runs the loop on
 * another thread, it reports the call (one line on stderr naming the
 * function) and returns WEFT_EWRONGTHREAD. Off (the default) it costs one
 * load of loop->debug and a branch. WEFT__CHECK_THREAD_VOID is the same for
 * a function that returns nothing (it returns without doing anything).
 * WEFT__CHECK_INIT(loop, h) adds, for a handle's init function, the check
 * that `h` is not still open (or closing) on `loop`: -EBUSY. */
int weft__debug_wrong_thread(const weft_loop *loop, const char *fn);
int weft__debug_init(const weft_loop *loop, const weft_handle *h,
                     const char *fn);
static inline int weft__debug_thread(const weft_loop *loop, const char *fn) {
  if (WEFT__LIKELY(!loop->debug)) return 0;
  uintptr_t t = atomic_load_explicit(&loop->run_thread, memory_order_relaxed);
  if (t == 0 || t == (uintptr_t)pthread_self()) return 0;
  return weft__debug_wrong_thread(loop, fn);
}
#define WEFT__CHECK_THREAD(loop)                                               \
  do {                                                                         \
    int dbg_err_ = weft__debug_thread((loop), __func__);                       \
    if (WEFT__UNLIKELY(dbg_err_ != 0)) return dbg_err_;                        \
  } while (0)
#define WEFT__CHECK_THREAD_VOID(loop)                                          \
  do {                                                                         \
    if (WEFT__UNLIKELY(weft__debug_thread((loop), __func__) != 0)) return;     \
  } while (0)
#define WEFT__CHECK_INIT(loop, h)                                              \
  do {                                                                         \
    if (WEFT__UNLIKELY((loop)->debug)) {                                       \
      int dbg_err_ = weft__debug_init((loop), (h), __func__);                  \
      if (dbg_err_ != 0) return dbg_err_;                                      \
    }                                                                          \
  } while (0)

/* Creates a libev loop and finds its epoll fd (core/backend.c). */
struct ev_loop *weft__ev_loop_new(unsigned flags, int *backend_fd);

/* The one place where milliseconds become libev's seconds. */
static inline double weft__ms_to_ev(uint64_t ms) { return (double)ms / 1e3; }

/* Cross-thread posts (core/xpost.c). */
int weft__xpost_init(weft_loop *loop);
void weft__xpost_drain(weft_loop *loop);
bool weft__xpost_pending(weft_loop *loop);
int weft__xpost_close(weft_loop *loop); /* -EBUSY while posts are queued */
void weft__xpost_free(weft_loop *loop);

/* The monotonic clock in ns (metrics, the slow-callback hook). */
static inline uint64_t weft__clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The slow-callback hook: while loop->slow_cb is set, a dispatcher reads
 * the clock before a callback (t0) and calls this after it. */
static inline void weft__slow_check(weft_loop *loop, weft_any_fn fn,
                                    uint64_t t0) {
  uint64_t d = weft__clock_ns() - t0;
  if (d >= loop->slow_ns && loop->slow_cb != NULL)
    loop->slow_cb(loop, fn, d, loop->slow_arg);
}

/* Makes sure the next poll does not block (deferred work is queued). */
void weft__loop_want_turn(weft_loop *loop);

/* Wakes the loop from any thread (async-signal-safe): its next poll, or a
 * host's poll of the backend fd, returns and drains cross-thread posts. */
void weft__loop_wake(weft_loop *loop);

/* ---- loop phase hooks (core/hooks.c) ----------------------------------- */
enum { WEFT__HOOK_PREPARE = 0, WEFT__HOOK_CHECK, WEFT__HOOK_IDLE };
/* Runs the started hooks of one kind (on_prepare: idle then prepare;
 * on_check: check), each once; a hook started meanwhile waits a turn. */
void weft__hooks_run(weft_loop *loop, int kind);
static inline void weft__hooks_maybe_run(weft_loop *loop, int kind) {
  if (!weft__list_empty(&loop->hooks[kind])) weft__hooks_run(loop, kind);
}

/* ---- signals (core/signal.c) ------------------------------------------- */
/* Claims `signum` for `loop` (-EBUSY if another loop watches it); each claim
 * needs one release. For a module's own ev_signal, which after its start
 * gets weft's handler (wrap: it also wakes a host that polls the backend
 * fd itself). */
int weft__signal_claim(weft_loop *loop, int signum);
void weft__signal_release(int signum);
void weft__signal_wrap(weft_loop *loop, int signum);

/* ---- timers: see timers/internal.h --------------------------------- */

#endif /* WEFT_CORE_INTERNAL_H */
