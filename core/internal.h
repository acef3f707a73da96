/* weft — what the library's modules share. Never installed; nothing outside
 * the library includes it. */
#ifndef WEFT_CORE_INTERNAL_H
#define WEFT_CORE_INTERNAL_H

#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
void *weft__realloc(void *ptr, size_t size); /* NULL ptr: malloc; never size 0 */
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
} weft__handle_ops;

enum {
  WEFT__H_ACTIVE = 1u << 0,
  WEFT__H_UNREF = 1u << 1,
  WEFT__H_CLOSING = 1u << 2,
  WEFT__H_CLOSED = 1u << 3,
};

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

/* ---- aliveness --------------------------------------------------------- */

/* Every reason the loop is alive is counted in loop->alive; the loop holds
 * one ev_ref on libev exactly while the count is nonzero, and every libev
 * watcher weft starts is unreferenced. So libev's ev_run (weft's or a host's)
 * keeps going exactly while weft has something to do. */
void weft__alive_add(weft_loop *loop, int delta);
/* An outstanding request (pool job, DNS query, connect, ...). */
static inline void weft__req_start(weft_loop *loop) { weft__alive_add(loop, 1); }
static inline void weft__req_done(weft_loop *loop) { weft__alive_add(loop, -1); }

/* Start/stop a libev watcher on behalf of weft: the watcher itself never
 * holds a libev reference (see above), and a started I/O watcher marks the
 * loop's fd set dirty for weft_loop_backend_timeout(). */
void weft__io_start(weft_loop *loop, ev_io *w);
void weft__io_stop(weft_loop *loop, ev_io *w);

/* ---- per-loop module state -------------------------------------------- */

/* Modules beyond the core (futures, pool, dns, ...) keep per-loop state in a
 * slot, created on first use, torn down by weft_loop_free(). */
typedef enum weft__module_id {
  WEFT__MOD_FUTURE = 0,
  WEFT__MOD_SYNC,
  WEFT__MOD_POOL,
  WEFT__MOD_FS,
  WEFT__MOD_DNS,
  WEFT__MOD_NET,
  WEFT__MOD_PROCESS,
  WEFT__MOD_MAX
} weft__module_id;

typedef struct weft__module {
  void *state;
  /* Called by weft_loop_free() once nothing is outstanding, in reverse
   * module order. Must free `state`. */
  void (*teardown)(weft_loop *loop, void *state);
} weft__module;

/* ---- the loop ---------------------------------------------------------- */

typedef struct weft__task {
  weft_cb cb;
  void *arg;
} weft__task;

typedef struct weft__timer_entry {
  uint64_t deadline;
  uint64_t seq;
  weft_timer *t;
} weft__timer_entry;

struct weft_loop {
  struct ev_loop *ev;
  bool own_ev;
  int backend_fd; /* libev's epoll fd, or -ENOTSUP (core/backend.c) */
  int running; /* nesting guard for weft_loop_run */
  void *data;
  uint64_t now;

  unsigned alive;     /* reasons to live; ev_ref held while nonzero */
  unsigned user_refs; /* weft_loop_ref() */
  bool fd_dirty;      /* an I/O watcher changed since the last prepare */

  /* call_soon: a power-of-two ring that only grows */
  weft__task *cs_ring;
  uint32_t cs_head, cs_count, cs_mask;
  unsigned cs_budget;
  bool cs_alive; /* the nonempty queue is counted in `alive` */

  /* call_soon_threadsafe: producers append under the lock; the loop swaps
   * the buffer out and runs it outside the lock. */
  pthread_mutex_t ts_lock;
  weft__task *ts_buf, *ts_spare;
  size_t ts_len, ts_cap, ts_spare_cap;
  bool ts_closed;
  atomic_bool stop_flag;

  /* handles: every open handle, and the queue of those finishing close */
  weft_handle *all_head, *all_tail;
  size_t handle_count;
  weft_handle *closing_head, *closing_tail;

  /* timers: a 4-ary min-heap on (deadline, seq) */
  weft__timer_entry *heap;
  uint32_t heap_len, heap_cap;
  uint64_t timer_seq;
  uint64_t armed_deadline; /* deadline the ev_timer is armed for */
  bool timer_armed;

  weft__module modules[WEFT__MOD_MAX];

  ev_prepare prepare;   /* arms the timer watcher before polling */
  ev_check time_check;  /* max priority: refreshes `now` after polling */
  ev_check check;       /* min priority: drains, closes, stops */
  ev_idle idle;         /* makes the poll non-blocking while work queued */
  ev_timer timer_watcher;
  ev_async async;       /* cross-thread posts and stop */
};

/* Module slots. get returns NULL if none yet. */
static inline void *weft__module_get(const weft_loop *loop, weft__module_id id) {
  return loop->modules[id].state;
}
void weft__module_set(weft_loop *loop, weft__module_id id, void *state,
                      void (*teardown)(weft_loop *, void *));

/* Creates a libev loop and finds its epoll fd (core/backend.c). */
struct ev_loop *weft__ev_loop_new(unsigned flags, int *backend_fd);

/* The one place where milliseconds become libev's seconds. */
static inline double weft__ms_to_ev(uint64_t ms) { return (double)ms / 1e3; }

/* Makes sure the next poll does not block (deferred work is queued). */
void weft__loop_want_turn(weft_loop *loop);

/* ---- timers (timers/timer.c) ------------------------------------------- */
void weft__timers_run(weft_loop *loop);
/* ms until the earliest timer (0 if due), or -1 if none. */
int64_t weft__timers_next(const weft_loop *loop);


#endif /* WEFT_CORE_INTERNAL_H */
