/* weft — a loop group: N loops on N threads run as one unit
 * (docs/loopgroup.md).
 *
 * A group makes N loops, each run by its own named thread ("weft-loop-i",
 * optionally pinned to a CPU). The user sets up per-loop state in an init
 * callback that runs on each loop's own thread. One listen serves the
 * whole group, spread across the loops either by the kernel (SO_REUSEPORT:
 * a listener per loop) or by hand-off (loop 0 accepts and passes each
 * connection to the loop with the fewest live connections). Every
 * connection is a weft_lgroup_conn, whose first member is its weft_tcp;
 * the group counts accepted and live connections per loop exactly,
 * because it gives the handles out and closes them (weft_lgroup_conn_close).
 *
 * Stopping (weft_lgroup_stop from any thread, or SIGINT/SIGTERM with
 * `stop_signals`) drains gracefully, on every loop: stop accepting, let
 * live connections finish for up to the deadline, then close what is
 * left, then run the loop's stop callback, close the loop's remaining
 * handles and end the thread. weft_lgroup_wait() blocks a non-loop thread
 * until every thread has ended; weft_lgroup_free() then frees the loops.
 *
 * Cross-loop calls: weft_lgroup_submit() runs a function on loop i's
 * thread and settles a future on the caller's loop with its result;
 * weft_lgroup_broadcast() runs it on every loop with one future; each loop
 * has a `local` pointer (sharded state) that those functions receive.
 *
 * Thread rules: new, listen, start, wait and free are for a thread that is
 * not one of the group's loops (usually main); stop, get_stats, size,
 * loop, local and the submit/broadcast calls (on the caller loop's own
 * thread) may be called from any thread as stated on each. */
#ifndef WEFT_LOOPGROUP_H
#define WEFT_LOOPGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "future.h"
#include "loop.h"
#include "tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The most loops one group may have. */
#define WEFT_LGROUP_MAX 256

typedef struct weft_lgroup weft_lgroup;

/** One connection of the group. Your own connection struct may start with
 * it (set weft_lgroup_options.conn_size). `tcp` is the connection's stream
 * (read and write through &conn->tcp.stream); close it only with
 * weft_lgroup_conn_close(), never weft_close(), so the counts stay exact.
 * `data` is yours. The other fields are private. */
typedef struct weft_lgroup_conn {
  weft_tcp tcp;
  void *data;
  /* private */
  struct weft__list node; /* the loop's live connections */
  void *owner_;           /* the loop's slot in the group */
} weft_lgroup_conn;

/** How a group's listen spreads connections. */
typedef enum weft_lgroup_dist {
  /** One listening socket per loop on one port (SO_REUSEPORT); the kernel
   * spreads connections by a hash of the peer's address. */
  WEFT_LGROUP_REUSEPORT = 0,
  /** One listening socket on loop 0, which accepts each connection and
   * hands its fd to the loop with the fewest live connections (counting
   * those already handed over but not yet opened), loop 0 included. */
  WEFT_LGROUP_HANDOFF = 1
} weft_lgroup_dist;

/** Runs on loop `index`'s own thread before the loop runs (set up per-loop
 * state and handles here, and weft_lgroup_set_local). A negative return
 * fails weft_lgroup_start() with it and stops the group. */
typedef int (*weft_lgroup_init_cb)(weft_lgroup *g, unsigned index,
                                   weft_loop *loop, void *arg);
/** Runs on loop `index`'s thread once its connections are all closed
 * during a stop: close the per-loop handles made in the init callback.
 * Handles still open afterwards are closed by the group (with no close
 * callback). */
typedef void (*weft_lgroup_loop_cb)(weft_lgroup *g, unsigned index,
                                    weft_loop *loop, void *arg);
/** A connection callback, on the thread of the connection's loop. */
typedef void (*weft_lgroup_conn_cb)(weft_lgroup_conn *c, void *arg);

/** Options for weft_lgroup_new(). Zero-initialise, then set what you need. */
typedef struct weft_lgroup_options {
  /** Loops (threads); 0: as many as the CPUs this process may run on
   * (weft_lgroup_cpus()). At most WEFT_LGROUP_MAX. */
  unsigned loops;
  /** Pin loop i's thread to the i-th CPU this process may run on (modulo
   * their count). */
  bool pin;
  /** Loop 0 watches SIGINT and SIGTERM (unreferenced signal handles) and
   * calls weft_lgroup_stop(g, drain_ms) on the first. So that the kernel
   * delivers them there, weft_lgroup_start() blocks both in the calling
   * thread (for good: it and the threads it makes later keep them
   * blocked), and every loop thread but loop 0's inherits that. */
  bool stop_signals;
  /** The deadline stop_signals uses (ms; 0: close connections at once). */
  uint64_t drain_ms;
  /** Passed to each loop's weft_loop_new() (may be NULL). */
  const weft_loop_options *loop_options;
  /** Per loop, on its thread, before it runs (may be NULL). */
  weft_lgroup_init_cb on_loop_init;
  /** Per loop, on its thread, when its draining is over (may be NULL). */
  weft_lgroup_loop_cb on_loop_stop;
  /** A new connection, opened on its loop (required for listening). */
  weft_lgroup_conn_cb on_conn;
  /** Runs once per connection when its handle has closed; the group then
   * forgets it and, if it allocated it, frees it (may be NULL). */
  weft_lgroup_conn_cb on_conn_closed;
  /** Called when a stop begins for each live connection (may be NULL):
   * finish politely (close when idle). */
  weft_lgroup_conn_cb on_conn_drain;
  /** Called at the deadline for each connection still live (may be
   * NULL: the group calls weft_lgroup_conn_close). It must close the
   * connection (and what it owns) now. */
  weft_lgroup_conn_cb on_conn_abort;
  /** Makes connection memory (may be NULL: the group allocates
   * `conn_size` zeroed bytes and frees them after on_conn_closed). Return
   * a struct that starts with a weft_lgroup_conn, or NULL (the connection
   * is then refused: closed at once, not counted); you free it in
   * on_conn_closed. */
  weft_lgroup_conn *(*conn_new)(weft_lgroup *g, unsigned index, void *arg);
  /** Bytes the group allocates per connection; 0: sizeof(weft_lgroup_conn).
   * Smaller nonzero values are invalid. */
  size_t conn_size;
  /** Given to every callback above. */
  void *arg;
} weft_lgroup_options;

/** Per-loop connection counts (weft_lgroup_get_stats). */
typedef struct weft_lgroup_stats {
  uint64_t accepted; /**< connections opened on this loop, ever */
  uint64_t live;     /**< opened and not yet closed */
} weft_lgroup_stats;

/** The CPUs this process may run on (sched_getaffinity), at least 1. */
WEFT_API unsigned weft_lgroup_cpus(void);

/** Creates a group of loops (not running yet) and stores it in *out.
 * Returns 0; -EINVAL (NULL out or options, loops above WEFT_LGROUP_MAX,
 * conn_size below sizeof(weft_lgroup_conn)); -ENOMEM; the errors of
 * weft_loop_new(). A failure leaves nothing behind. */
WEFT_API int weft_lgroup_new(weft_lgroup **out, const weft_lgroup_options *o);

/** Listens on `addr` (AF_INET or AF_INET6; port 0 picks a free port, the
 * same for every loop: read it with weft_lgroup_getsockname) for the whole
 * group, with `dist`; `backlog` <= 0 means SOMAXCONN. Before
 * weft_lgroup_start(), not on a loop thread. Returns 0; -EINVAL (NULL,
 * bad family or dist, no on_conn, already started); -EALREADY if the group
 * already listens; kernel errors (-EADDRINUSE, ...), then nothing is left
 * open. */
WEFT_API int weft_lgroup_listen(weft_lgroup *g, const struct sockaddr *addr,
                                weft_lgroup_dist dist, int backlog);

/** The listening address into *addr (*len: in its size, out the length).
 * Returns 0; -EINVAL (NULL); -ENOTCONN if the group does not listen. Any
 * thread. */
WEFT_API int weft_lgroup_getsockname(const weft_lgroup *g,
                                     struct sockaddr *addr, socklen_t *len);

/** Starts every loop's thread; each runs its init callback, then its loop.
 * Returns once every init callback has run: 0, or the first init error
 * (the group is then already stopping: call weft_lgroup_wait and free);
 * -EINVAL (NULL, already started); -EAGAIN (a thread could not be made:
 * the group stops, and wait/free still apply). */
WEFT_API int weft_lgroup_start(weft_lgroup *g);

/** Any thread (not from a signal handler: use stop_signals): begins a
 * graceful stop on every loop. Listening stops at once; live connections
 * are told (on_conn_drain) and have `deadline_ms` (measured on each loop's
 * clock) to close; then on_conn_abort (or a close) ends the rest; then
 * on_loop_stop runs and the thread ends. Later calls do nothing. Returns
 * 0; -EINVAL (NULL); -EALREADY if a stop was already asked for. */
WEFT_API int weft_lgroup_stop(weft_lgroup *g, uint64_t deadline_ms);

/** Not on a loop thread of this group: blocks until every loop thread has
 * ended (after a stop), at most `timeout_ms` (WEFT_WAIT_FOREVER: no
 * limit). Returns 0; -ETIMEDOUT; -EDEADLK on one of the group's loop
 * threads; -EINVAL (NULL, never started, timeout < -1). */
WEFT_API int weft_lgroup_wait(weft_lgroup *g, int64_t timeout_ms);

/** Frees the group: joins its threads and frees its loops (running what
 * is still queued on them first, on this thread). Returns 0; -EINVAL
 * (NULL); -EBUSY (changing nothing) while threads still run (stop and
 * wait first). A group never started frees at once. */
WEFT_API int weft_lgroup_free(weft_lgroup *g);

/** The number of loops (0 for NULL). Any thread. */
WEFT_API unsigned weft_lgroup_size(const weft_lgroup *g);
/** Loop `index` (NULL for NULL or out of range). Any thread; use the loop
 * itself only from its thread or with its _threadsafe calls. */
WEFT_API weft_loop *weft_lgroup_loop(const weft_lgroup *g, unsigned index);
/** Per-loop counts of loop `index` into *st. Any thread (relaxed reads of
 * counters the loop updates). Returns 0 or -EINVAL. */
WEFT_API int weft_lgroup_get_stats(const weft_lgroup *g, unsigned index,
                                   weft_lgroup_stats *st);

/** Loop `index`'s local pointer (sharded state; NULL until set). */
WEFT_API void *weft_lgroup_local(const weft_lgroup *g, unsigned index);
/** Sets loop `index`'s local pointer: in its init callback, or from its own
 * thread; other threads reach it through submit/broadcast. Returns 0 or
 * -EINVAL. */
WEFT_API int weft_lgroup_set_local(weft_lgroup *g, unsigned index, void *p);

/** The loop index of a connection. */
WEFT_API unsigned weft_lgroup_conn_index(const weft_lgroup_conn *c);
/** Closes a connection (its tcp handle): on_conn_closed runs later from
 * the close phase, exactly once, then the group forgets the connection.
 * Returns 0; -EINVAL (NULL); -EALREADY if it is already closing. Loop
 * thread of the connection. */
WEFT_API int weft_lgroup_conn_close(weft_lgroup_conn *c);

/* ---- cross-loop calls ---------------------------------------------------- */

/** Where a cross-loop function puts its value (weft_lgroup_return*). */
typedef struct weft_lgroup_result weft_lgroup_result;
/** Runs on loop `index`'s thread with that loop's local pointer. Return 0
 * (the value is what weft_lgroup_return* set, int64 0 if nothing) or a
 * negative error, which rejects the future. */
typedef int (*weft_lgroup_fn)(weft_lgroup *g, unsigned index, void *local,
                              void *arg, weft_lgroup_result *res);
/** From a weft_lgroup_fn: the result is `value`, owned by the future
 * (dtor(value) when freed, or when the result is dropped). */
WEFT_API void weft_lgroup_return(weft_lgroup_result *res, void *value,
                                 weft_dtor dtor);
/** From a weft_lgroup_fn: the result is the int64 `v`. */
WEFT_API void weft_lgroup_return_i64(weft_lgroup_result *res, int64_t v);

/** On `caller`'s own thread (any loop: a loop of the group or not): runs
 * fn on loop `index`'s thread, later (never inline, also when `index` is
 * the caller), and settles *out (a future of `caller`, one reference) on
 * the caller's thread with fn's value or error. Cancelling the future does
 * not stop fn; its value is then dropped. A call that reaches a loop
 * past its drain (its thread ending, or the group being freed) does not
 * run fn: the future rejects with -ESHUTDOWN. Returns 0; -EINVAL (NULL,
 * index out of range); -ENOMEM; -ESHUTDOWN (the target loop's thread has
 * ended); nothing then runs. */
WEFT_API int weft_lgroup_submit(weft_lgroup *g, weft_loop *caller,
                                unsigned index, weft_lgroup_fn fn, void *arg,
                                weft_future **out);

/** Like weft_lgroup_submit on every loop at once: *out fulfils with the
 * number of loops (an int64) once fn has run on all of them, or rejects
 * with the error of the lowest-indexed loop that failed, once all have
 * run. With `results` (may be NULL; weft_lgroup_size() entries, kept alive
 * until the future settles) results[i] gets loop i's int64 value (pointer
 * values are dropped), written on the caller's thread before the future
 * settles. Errors as weft_lgroup_submit. */
WEFT_API int weft_lgroup_broadcast(weft_lgroup *g, weft_loop *caller,
                                   weft_lgroup_fn fn, void *arg,
                                   int64_t *results, weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_LOOPGROUP_H */
