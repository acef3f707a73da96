/* weft — the loop, the handle base, deferred and cross-thread callbacks.
 *
 * One thread runs one loop. A loop and everything attached to it is used
 * from the thread that runs it, except the functions whose name ends in
 * _threadsafe and weft_loop_stop(), which any thread may call.
 *
 * One turn of the loop: due timers fire; I/O callbacks run; the deferred
 * (call_soon) queue drains until empty or until the per-turn budget is
 * spent; handles whose close was requested finish closing and their close
 * callbacks run; the loop blocks in the kernel only when nothing is queued.
 * No callback ever runs from inside the call that registered it. */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
typedef struct weft_loop weft_loop;

/** A deferred callback: runs once on the loop's thread with `arg`. */
typedef void (*weft_cb)(void *arg);

/** Options for weft_loop_new() and weft_loop_from_ev(). Zero-initialise,
 * then set what you need; 0 in a field means "the default". */
typedef struct weft_loop_options {
  /** Deferred callbacks run per turn before I/O is polled again
   * (default 4096). Bounds how long a self-reposting callback can keep the
   * loop from I/O and timers. */
  unsigned call_soon_budget;
  /** Threads per lane of the process-wide thread pool, which every loop
   * shares (weft/pool.h); not a per-loop share. Applied when this loop
   * first uses the pool (its first job or fs call, weft_pool_resize(),
   * weft_pool_get_stats()): a pool that does not exist yet is created
   * with this size; an existing smaller one grows to it (both lanes); a
   * larger one is left as it is. Capped at WEFT_POOL_MAX. 0: the pool's
   * current size, or for a new pool $WEFT_POOL_SIZE, else the number of
   * CPUs. */
  unsigned pool_size;
  /** libev backend flags for weft_loop_new() (EVBACKEND_*; default: libev's
   * choice, epoll on Linux). Ignored by weft_loop_from_ev(). */
  unsigned ev_flags;
  /** Nonzero: debug mode for this loop (docs/debug.md). Setting the
   * environment variable WEFT_DEBUG to anything but "" or "0" turns it on
   * for every loop created while it is set. Off by default. In debug mode a
   * loop-thread-only call made while weft_loop_run() runs the loop on
   * another thread fails with WEFT_EWRONGTHREAD (see weft_loop_is_debug())
   * and a handle init on a handle still open or closing on the loop fails
   * with -EBUSY. */
  unsigned debug;
} weft_loop_options;

/** How weft_loop_run() runs. */
typedef enum weft_run_mode {
  WEFT_RUN_DEFAULT = 0, /**< until nothing keeps the loop alive, or stop */
  WEFT_RUN_ONCE = 1,    /**< one turn, blocking for events if none are due */
  WEFT_RUN_NOWAIT = 2   /**< one turn, never blocking */
} weft_run_mode;

/** Creates a loop with its own libev loop. `opts` may be NULL. On success
 * stores it in *out and returns 0; -EINVAL for a NULL out or bad options,
 * -ENOMEM, -EMFILE or -ENFILE (fewer than three fds free: libev's epoll
 * fd, libev's wake-up fd and weft's), or another negative errno from the
 * kernel; a failure leaves nothing behind. Free with weft_loop_free().
 * A loop needs no further fd for pool jobs (so fs calls), signal handles,
 * timers or cross-thread posts: those work with the fd table full. */
WEFT_API int weft_loop_new(weft_loop **out, const weft_loop_options *opts);

/** Wraps an existing libev loop (which the caller keeps owning and may run
 * itself with ev_run()). weft's internal watchers do not keep the host's
 * ev_run() alive; weft's live handles and queued work do. weft_loop_free()
 * leaves the libev loop intact. Same errors as weft_loop_new(); it needs
 * two free fds (weft's wake-up fd, and libev's, which weft makes now if
 * the libev loop has none yet: libev would abort() if it could not make
 * it later). */
WEFT_API int weft_loop_from_ev(weft_loop **out, struct ev_loop *ev,
                               const weft_loop_options *opts);

/** Frees a loop. Returns -EBUSY (changing nothing; the loop stays usable)
 * while handles are open (not yet fully closed), deferred or cross-thread
 * callbacks are queued, or requests (pool work, DNS, ...) are outstanding;
 * -EINVAL for NULL. After it returns 0, posts from other threads must have
 * stopped: while it runs they fail with -ESHUTDOWN. Pool jobs are the one
 * exception: when they are all that is outstanding, queued ones are
 * cancelled, running ones waited for, and their done callbacks run (here,
 * on this thread) before the loop is freed (see weft/pool.h). */
WEFT_API int weft_loop_free(weft_loop *loop);

/** The libev loop underneath. On a loop weft_loop_new() made, weft owns
 * its userdata and its release callback (ev_set_userdata(),
 * ev_set_loop_release_cb(): the metrics' stamp of each poll's start):
 * leave them; a loop from weft_loop_from_ev() leaves both to the host. */
WEFT_API struct ev_loop *weft_loop_ev(weft_loop *loop);

/** Runs the loop in `mode`. Returns 1 if the loop is still alive (handles
 * or work remain), 0 if not, -EINVAL for a NULL loop or bad mode, -EBUSY
 * if called recursively from one of the loop's own callbacks. */
WEFT_API int weft_loop_run(weft_loop *loop, weft_run_mode mode);

/** Makes the current (or next) weft_loop_run() return after the turn in
 * progress. Callable from any thread. */
WEFT_API void weft_loop_stop(weft_loop *loop);

/** True if something keeps the loop alive: an active, referenced handle,
 * an outstanding request, a queued callback, a handle being closed, or a
 * weft_loop_ref(). */
WEFT_API bool weft_loop_alive(const weft_loop *loop);

/** Keeps the loop alive without a handle, e.g. while other threads will
 * post work with weft_call_soon_threadsafe(). Counted: each weft_loop_ref()
 * needs one weft_loop_unref(). Loop thread only. */
WEFT_API void weft_loop_ref(weft_loop *loop);
/** Drops one weft_loop_ref(). Extra calls are ignored. */
WEFT_API void weft_loop_unref(weft_loop *loop);

/** The loop's cached time in milliseconds (monotonic clock, arbitrary
 * origin), refreshed once per turn right after polling. */
WEFT_API uint64_t weft_now(const weft_loop *loop);

/** Refreshes the cached time now (e.g. after a long computation). */
WEFT_API void weft_update_time(weft_loop *loop);

/** For embedding in a foreign loop: an fd that becomes readable when the
 * loop has events (I/O, posts from other threads, weft_loop_stop(), watched
 * signals). Poll it for reading, at most weft_loop_backend_timeout() ms,
 * then call weft_loop_run(loop, WEFT_RUN_NOWAIT).
 * Returns the fd; -EINVAL for NULL; -ENOTSUP for a loop made by
 * weft_loop_from_ev() (its host polls libev itself), for a libev backend
 * other than epoll (weft_loop_options.ev_flags), or when the fd could
 * not be identified (another thread created an epoll instance at the same
 * moment as this loop). */
WEFT_API int weft_loop_backend_fd(const weft_loop *loop);

/** For embedding: how long a host may block before calling
 * weft_loop_run(NOWAIT): -1 no deadline, 0 work is pending (also before
 * the loop's first turn, and after watchers changed, until a turn has
 * registered them with the backend), else the milliseconds from now until
 * the next timer is due, rounded up (at most INT32_MAX): a host that sleeps
 * that long finds the timer due on its next NOWAIT run, so it neither
 * spins nor oversleeps by more than the rounding. -EINVAL is never
 * returned: a NULL loop gives -1. */
WEFT_API int weft_loop_backend_timeout(const weft_loop *loop);

/** User data pointer of the loop. */
WEFT_API void *weft_loop_get_data(const weft_loop *loop);
/** Sets the loop's user data pointer. */
WEFT_API void weft_loop_set_data(weft_loop *loop, void *data);

/** Bytes of one weft_loop (for reports). */
WEFT_API size_t weft_loop_size(void);

/* ---- deferred callbacks ------------------------------------------------ */

/** Queues cb(arg) to run once on the loop's thread, after the current
 * callback returns, in FIFO order. Returns 0, -EINVAL (NULL loop or cb),
 * or -ENOMEM when the queue had to grow and could not (the callback is then
 * not queued). The queue never shrinks, so steady state allocates nothing.
 * Loop thread only. */
WEFT_API int weft_call_soon(weft_loop *loop, weft_cb cb, void *arg);

/** Like weft_call_soon() but callable from any thread; the loop is woken
 * once per batch. Every accepted post runs exactly once, in order per
 * posting thread: a post that races with weft_loop_free() is either
 * accepted (and the free returns -EBUSY) or rejected. Returns 0, -EINVAL,
 * -ENOMEM, or -ESHUTDOWN while weft_loop_free() runs, even one that then
 * returns -EBUSY (the callback is then not queued). Posting alone does not
 * keep the loop alive: see weft_loop_ref(). */
WEFT_API int weft_call_soon_threadsafe(weft_loop *loop, weft_cb cb, void *arg);

/* ---- handles ------------------------------------------------------------ */

/** Every handle type. */
typedef enum weft_handle_type {
  WEFT_HANDLE_UNKNOWN = 0,
  WEFT_HANDLE_TIMER,
  WEFT_HANDLE_SIGNAL,
  WEFT_HANDLE_TCP,
  WEFT_HANDLE_PIPE, /**< Unix-domain sockets, pipes and other fds */
  WEFT_HANDLE_UDP,
  WEFT_HANDLE_PROCESS,
  WEFT_HANDLE_POLL,
  WEFT_HANDLE_PREPARE, /**< loop phase hooks (weft/hooks.h) */
  WEFT_HANDLE_CHECK,
  WEFT_HANDLE_IDLE,
  WEFT_HANDLE_WATCH,   /**< file-system watches (weft/watch.h) */
  WEFT_HANDLE_FS_POLL, /**< stat-polling watches (weft/watch.h) */
  WEFT_HANDLE_TTY,     /**< terminals (weft/tty.h) */
  WEFT_HANDLE_TYPE_MAX
} weft_handle_type;

typedef struct weft_handle weft_handle;
struct weft__handle_ops;

/* private: room for one libev watcher inside a public struct, so handles
 * embed their watchers without users needing <ev.h>. The sources check the
 * size with a static assertion. */
#define WEFT__EV_STORAGE(name)                                                 \
  union {                                                                      \
    void *p_[8];                                                               \
    uint64_t u_[8];                                                            \
  } name

/* private: the node of the library's one intrusive list (core/list.h),
 * declared here so that public structs can embed it. */
struct weft__list {
  struct weft__list *prev, *next;
};

/** Runs once a handle has finished closing; the handle may be freed here. */
typedef void (*weft_close_cb)(weft_handle *handle);

/** The base of every handle; each handle struct starts with one, named
 * `base`, so `&timer->base` is a weft_handle *. Users read and write `data`;
 * every other field is private. */
struct weft_handle {
  void *data; /**< yours; the init functions leave it untouched */
  /* private */
  weft_loop *loop;
  const struct weft__handle_ops *ops;
  weft_close_cb close_cb;
  struct weft__list all;     /* the loop's list of handles */
  weft_handle *closing_next; /* the loop's closing queue (singly linked) */
  unsigned flags; /* and the slot of weft_handle_set_name's name, if any */
};

/** Starts closing `h`: its watchers stop at once, pending operations fail
 * with -ECANCELED, and `cb` (may be NULL) runs later in this turn's close
 * phase, never inline; freeing the handle is allowed from `cb`. Returns 0,
 * -EINVAL for NULL or an uninitialised handle, -EALREADY if it is already
 * closing or closed. */
WEFT_API int weft_close(weft_handle *h, weft_close_cb cb);

/** The loop a handle belongs to. */
WEFT_API weft_loop *weft_handle_loop(const weft_handle *h);
/** The handle's type (WEFT_HANDLE_UNKNOWN for NULL). */
WEFT_API weft_handle_type weft_handle_get_type(const weft_handle *h);
/** A static name for a handle type ("timer", "tcp", ...). */
WEFT_API const char *weft_handle_type_name(weft_handle_type type);
/** True while the handle is doing something (a started timer, a reading
 * stream, a listening server, ...). False for NULL. */
WEFT_API bool weft_is_active(const weft_handle *h);
/** True from weft_close() on. */
WEFT_API bool weft_is_closing(const weft_handle *h);
/** Lets the loop keep running because of this handle while it is active
 * (the default). */
WEFT_API void weft_ref(weft_handle *h);
/** An unreferenced handle does not keep weft_loop_run() alive. */
WEFT_API void weft_unref(weft_handle *h);
/** True if the handle is referenced. */
WEFT_API bool weft_has_ref(const weft_handle *h);

/** Names a handle for weft_loop_debug_dump(). The string is borrowed, not
 * copied: it must stay valid until the handle is renamed, re-initialised or
 * freed. NULL removes the name. An init function clears the name, so name
 * a handle after its init. The name is forgotten when the handle's close
 * finishes (before its close callback runs). Names are kept on the loop,
 * not in the handle. Returns 0, -EINVAL for a NULL or uninitialised
 * handle, -ENOMEM if the loop's table of names cannot grow. Loop thread
 * only. */
WEFT_API int weft_handle_set_name(weft_handle *h, const char *name);
/** The handle's name (weft_handle_set_name()), or NULL. Loop thread only
 * (or while no weft_loop_run() is in progress). */
WEFT_API const char *weft_handle_get_name(const weft_handle *h);

/** Visitor for weft_walk(). */
typedef void (*weft_walk_cb)(weft_handle *h, void *arg);
/** Calls cb for every handle of the loop that is not yet fully closed, in
 * creation order. cb may close the handle it is given. */
WEFT_API void weft_walk(weft_loop *loop, weft_walk_cb cb, void *arg);

/* ---- metrics ------------------------------------------------------------ */

/** Buckets of weft_loop_metrics.timer_lag: bucket 0 counts timers that fired
 * less than 1 µs after their deadline; bucket i (1 <= i < 31) those
 * [2^(i-1), 2^i) µs late; bucket 31 those 2^30 µs (about 18 minutes) late
 * or more. */
#define WEFT_LOOP_LAG_BUCKETS 32

/** What a loop has done since it was created; filled by
 * weft_loop_get_metrics(). Counters only grow (nothing resets them); they
 * are kept on the loop's thread with plain increments, always on.
 *
 * A turn, here, is one iteration of libev's loop: prepare, poll, then the
 * callbacks of what the poll found. Time is the monotonic clock, in
 * nanoseconds, at two instants per turn: right after the poll returns (the
 * turn starts) and right before the poll (the turn ends). Both are the
 * clock reads libev makes there anyway (where its clock is CLOCK_MONOTONIC,
 * as on Linux; elsewhere weft reads the clock itself), so the metrics read
 * no clock of their own per turn; on a libev loop a host runs
 * (weft_loop_from_ev) weft reads it once per turn, at the end of its prepare
 * phase, for the turn's end. weft_loop_run() also reads it when it starts and
 * returns. */
typedef struct weft_loop_metrics {
  /** Bytes of this struct that weft_loop_get_metrics() filled: the smaller
   * of the size it was given and the library's own sizeof. A later version
   * only appends fields, so a program built against this one keeps
   * working. */
  size_t size;
  /** Turns that polled: each time libev's poll returned (WEFT_RUN_NOWAIT
   * turns included, whether or not anything was ready). */
  uint64_t turns;
  /** Every callback weft ran: the sum of `deferred`, `posts_received`,
   * `timers_fired`, `io_events` and `hooks`. Close callbacks, future
   * continuations run outside the deferred queue, pool done callbacks,
   * signal and process callbacks are not counted. */
  uint64_t callbacks;
  /** Deferred callbacks (weft_call_soon()) run. Work weft itself defers
   * through that queue (future settlements, I/O completions delivered
   * later) counts too. Added when each drain of the queue ends: a deferred
   * callback reading the metrics does not see its own drain counted. */
  uint64_t deferred;
  /** Cross-thread posts (weft_call_soon_threadsafe()) taken from the
   * queues and run on this loop. */
  uint64_t posts_received;
  /** Timer callbacks run (a repeating timer counts once per firing);
   * internal timers weft starts for itself (timeouts of futures, DNS,
   * accept back-off) count too. */
  uint64_t timers_fired;
  /** I/O readiness callbacks: one per wake-up of the watcher of a stream
   * (TCP, pipe), UDP or poll handle, of a weft_poll_future, of a DNS
   * socket or of a child process's pidfd, whatever weft then reads,
   * writes, accepts or reaps. The loop's own wake-up fd (cross-thread
   * posts, weft_loop_stop) is not counted. */
  uint64_t io_events;
  /** Prepare, check and idle handle callbacks run (weft/hooks.h). */
  uint64_t hooks;
  /** Nanoseconds spent turning: from each poll's return to the start of
   * the next poll (on a host's loop, the end of the next prepare phase), or
   * to weft_loop_run() returning, or from its start to the first poll. For a
   * libev loop a host runs itself (weft_loop_from_ev) between ev_run() calls,
   * the host's own time between a turn's callbacks and its next ev_run() counts
   * as busy. */
  uint64_t busy_ns;
  /** Nanoseconds spent in libev's poll (blocked in the kernel, or not):
   * from the start of a poll (a host's loop: the end of the prepare phase
   * before it) to the poll's return. The time between
   * weft_loop_run() calls counts in neither field. */
  uint64_t wait_ns;
  /** The longest single busy stretch of busy_ns (one turn), in ns. */
  uint64_t longest_turn_ns;
  /** Deferred callbacks queued now (weft_call_soon(), not yet run). */
  uint64_t deferred_depth;
  /** The most deferred callbacks queued at once, as sampled when each
   * drain of the queue begins and when the metrics are read. A peak
   * reached and run within one drain (a deferred callback queuing more)
   * is seen only if it is still queued when the next drain begins. */
  uint64_t deferred_max_depth;
  /** Loop lag: for each timer callback counted in `timers_fired`, how late
   * it ran: the start of its turn (the clock read right after the poll)
   * minus its deadline (weft_now() at the start plus the timeout, in whole
   * ms), in log2 µs buckets (WEFT_LOOP_LAG_BUCKETS). The buckets add up to
   * `timers_fired`. */
  uint64_t timer_lag[WEFT_LOOP_LAG_BUCKETS];
} weft_loop_metrics;

/** Fills *m with the loop's metrics. `size` is sizeof *m as the caller was
 * compiled: the first `size` bytes are written (m->size says how many hold
 * fields, the rest of a larger struct is zeroed). Returns 0; -EINVAL for a
 * NULL loop or m, or a size smaller than this version's struct. Loop
 * thread only: the counters are plain memory written by the loop's thread;
 * from another thread, post a function that reads them
 * (weft_call_soon_threadsafe(), or weft_lgroup_broadcast() for a loop
 * group). */
WEFT_API int weft_loop_get_metrics(const weft_loop *loop, weft_loop_metrics *m,
                                   size_t size);

/** A generic function pointer: the callback weft ran, as
 * weft_slow_callback_cb sees it. Cast it back to void * for dladdr(). */
typedef void (*weft_any_fn)(void);

/** Told about a callback that ran longer than the threshold: `fn` is the
 * function weft called (a weft_cb, a timer callback, a hook callback),
 * `duration_ns` how long it ran, `arg` the pointer given to
 * weft_loop_set_slow_callback(). Runs on the loop's thread right after
 * the slow callback returned; it is not itself timed. */
typedef void (*weft_slow_callback_cb)(weft_loop *loop, weft_any_fn fn,
                                      uint64_t duration_ns, void *arg);

/** Calls cb after every deferred callback, cross-thread post, timer
 * callback or prepare/check/idle callback that ran for at least
 * `threshold_us` microseconds (0: after every one of them). A hook set
 * from inside a callback applies from the next drain of the deferred
 * queue or the next batch of due timers at the latest. I/O callbacks
 * are not timed one by one: a slow one shows in longest_turn_ns. A NULL cb
 * turns the hook off (the default); while off, no clock is read per
 * callback. Replaces any earlier hook. Returns 0, or -EINVAL for a NULL
 * loop. Loop thread only. */
WEFT_API int weft_loop_set_slow_callback(weft_loop *loop, uint64_t threshold_us,
                                         weft_slow_callback_cb cb, void *arg);

/* ---- debug mode ---------------------------------------------------------- */

/** True if the loop runs in debug mode (weft_loop_options.debug or
 * $WEFT_DEBUG when it was created). In debug mode:
 *  - the loop-thread-only calls of the loop, handles, timers, streams (TCP,
 *    pipes), UDP and the future-settling calls (weft_future_resolve*,
 *    weft_future_reject, weft_future_cancel) check the calling thread:
 *    made while weft_loop_run() runs the loop on another thread, they print
 *    one line on stderr naming the function and return WEFT_EWRONGTHREAD,
 *    changing nothing (those that return nothing just return);
 *  - the init of a timer, signal, hook, TCP, pipe, UDP or poll handle that
 *    is still open or closing on the same loop (its close callback has not
 *    run yet) returns -EBUSY and leaves the handle as it was.
 * When no weft_loop_run() is in progress (before the first, between runs,
 * or for a libev loop its host runs with ev_run()), the thread is not
 * checked: the program hands the loop from thread to thread itself. False
 * for NULL. */
WEFT_API bool weft_loop_is_debug(const weft_loop *loop);

/** Writes what is live on the loop to `fd`, one line each (works whether
 * or not the loop is in debug mode):
 *
 *     weft loop <address>
 *     handle <type> <address> <state>[ "<name>"]
 *     future <kind> <address> pending op=<op>[ "<name>"]
 *     end: <n> handles, <m> pending futures
 *
 * Handles come in creation order, every one not yet fully closed; <type>
 * is weft_handle_type_name(), <state> one of "active", "inactive" and
 * "closing", followed by " unref" for an unreferenced handle; <name> is
 * weft_handle_set_name()'s. Futures are the loop's pending ones, in no
 * particular order; <kind> is how the future was made (plain, then, all,
 * sleep, ...), <op> weft_future_get_op(), <name>
 * weft_future_set_name()'s. Addresses are printed with %p. Returns 0,
 * -EINVAL for a NULL loop or a negative fd, or the negative errno of a
 * failed write (the output then stops). Loop thread only. */
WEFT_API int weft_loop_debug_dump(weft_loop *loop, int fd);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_LOOP_H */
