/* weft — stackful fibers: sequential code over futures (promises/fiber.c).
 *
 * A fiber is a function running on its own small stack on a loop's thread.
 * It calls weft_await(f) where callback code would register a continuation:
 * the fiber is suspended, the loop runs, and the fiber resumes, from the
 * loop's queue of ready continuations (never inline), once f has settled.
 * Each fiber is also a future of its own: it settles with what the body
 * returns, so fibers go into groups, scopes and combinators like any future.
 *
 * A fiber belongs to the loop it was spawned on and never migrates; all of
 * these functions are for that loop's thread. docs/fibers.md tells when to
 * use fibers, what a fiber may not do (block the thread, hold a pthread
 * mutex across an await), and how stacks are sized. */
#ifndef WEFT_FIBER_H
#define WEFT_FIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "future.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A fiber. Opaque; valid from the body's start until it returns. */
typedef struct weft_fiber weft_fiber;

/** A fiber's body. Return 0 to fulfil the fiber's future with what
 * weft_fiber_return*() set (int64 0 if nothing), or a negative error code
 * to reject it with that code (a positive return counts as 0). */
typedef int (*weft_fiber_fn)(weft_fiber *self, void *arg);

/** The default stack reservation: 64 KiB (plus a guard page). */
#define WEFT_FIBER_STACK_DEFAULT ((size_t)64 * 1024)
/** The smallest stack a fiber gets: a smaller request is raised to it. */
#define WEFT_FIBER_STACK_MIN ((size_t)16 * 1024)
/** The largest stack_size accepted (larger: -EINVAL). */
#define WEFT_FIBER_STACK_MAX ((size_t)1024 * 1024 * 1024)

/** Spawn options; a zeroed struct (or NULL) means the defaults. */
typedef struct weft_fiber_options {
  /** Bytes of stack to reserve: 0 is WEFT_FIBER_STACK_DEFAULT; rounded up
   * to whole pages, at least WEFT_FIBER_STACK_MIN, at most
   * WEFT_FIBER_STACK_MAX. Pages are committed only when touched, and a
   * PROT_NONE guard page lies below, so an overflow is a SIGSEGV. */
  size_t stack_size;
  /** A name for debugging (weft_fiber_get_name): copied, cut to 63 bytes;
   * NULL means "fiber". */
  const char *name;
} weft_fiber_options;

/** Loop thread. Makes a fiber running fn(self, arg) that starts on a later
 * turn (never inline, like asyncio.create_task); fibers spawned one after
 * another start in that order. *out (NULL allowed: fire and forget) gets
 * the fiber's future (one reference), fulfilled or rejected with the
 * body's result once the body returns.
 *
 * Cancelling that future settles it CANCELLED at once, cancels the future
 * the fiber is awaiting when the fiber is its only consumer (so the work
 * behind it stops; otherwise the fiber just stops waiting for it) and makes
 * that await return -ECANCELED. A fiber cancelled while it is not awaiting
 * (not started yet, or cancelling itself) gets -ECANCELED from its next
 * weft_await / weft_fiber_yield / weft_fiber_sleep instead; the body always
 * runs, so it can free its argument. Either way the fiber runs on to clean
 * up (later awaits work normally; weft_fiber_cancelled() is true), and
 * what it returns is dropped (a pointer's dtor runs once).
 *
 * A live fiber keeps the loop alive and weft_loop_free() at -EBUSY.
 * Returns 0, -EINVAL (NULL loop or fn, stack_size over
 * WEFT_FIBER_STACK_MAX), -ENOMEM (no memory or no stack mapping; nothing
 * made). */
WEFT_API int weft_fiber_spawn(weft_loop *loop, weft_fiber_fn fn, void *arg,
                              const weft_fiber_options *opts,
                              weft_future **out);

/** asyncio.run(): spawns fn as a fiber, runs the loop (WEFT_RUN_DEFAULT)
 * until that fiber's future settles, and returns its error (0 if it was
 * fulfilled, the rejection code, -ECANCELED), storing its int64 result in
 * *result (may be NULL; 0 unless fulfilled with an int64). The loop is left
 * usable. Returns -EBUSY if called while the loop runs (from one of its
 * callbacks or fibers), -EINVAL and -ENOMEM as weft_fiber_spawn, or the
 * error of weft_loop_run if the loop stopped first. */
WEFT_API int weft_fiber_run(weft_loop *loop, weft_fiber_fn fn, void *arg,
                            const weft_fiber_options *opts, int64_t *result);

/** The body's result will be the pointer `value`, owned by the fiber's
 * future (dtor(value) when the future is freed, or at once if the result is
 * dropped: the body rejected, or the fiber was cancelled). A later call
 * replaces an earlier result, whose value is then dropped. NULL self is
 * ignored. */
WEFT_API void weft_fiber_return(weft_fiber *self, void *value, weft_dtor dtor);

/** The body's result will be the int64 `v` (replacing, and dropping, an
 * earlier one). NULL self is ignored. */
WEFT_API void weft_fiber_return_i64(weft_fiber *self, int64_t v);

/** Inside a fiber: suspends until f settles, always yielding at least once
 * even if f is already settled (so a loop of awaits lets other fibers and
 * continuations run), then returns 0 if f is fulfilled (read the value with
 * weft_future_value*(f)), else its error (-ECANCELED if f was cancelled, or
 * if the fiber was, see weft_fiber_spawn). The caller keeps its reference
 * to f. Makes no allocation. Returns -EPERM outside a fiber (nothing else
 * happens: no nested loop run), -EINVAL for NULL f or a future of another
 * loop, -EDEADLK for the fiber's own future. */
WEFT_API int weft_await(weft_future *f);

/** One-line form for a future made only to be awaited: as weft_await, and
 * stores f's int64 value in *v (may be NULL; 0 unless fulfilled with an
 * int64); drops the caller's reference to f in every case (also on -EPERM
 * and -EINVAL, for non-NULL f). */
WEFT_API int weft_await_take_i64(weft_future *f, int64_t *v);

/** Inside a fiber: lets every fiber and continuation already queued run,
 * then resumes. Returns 0, -EPERM outside a fiber, -ECANCELED if the fiber
 * was cancelled meanwhile (or before, see weft_fiber_spawn). */
WEFT_API int weft_fiber_yield(void);

/** Inside a fiber: suspends for `ms` milliseconds (a weft_sleep awaited).
 * Returns 0, -ECANCELED (the sleep's timer is then stopped), -EPERM outside
 * a fiber, -EINVAL (ms > WEFT_TIMEOUT_MAX), -ENOMEM. */
WEFT_API int weft_fiber_sleep(uint64_t ms);

/** The fiber running on this thread, or NULL outside a fiber. */
WEFT_API weft_fiber *weft_fiber_current(void);

/** True inside a fiber (weft_fiber_current() != NULL). */
WEFT_API bool weft_in_fiber(void);

/** True once f's future was cancelled. False for NULL. */
WEFT_API bool weft_fiber_cancelled(const weft_fiber *f);

/** f's name ("fiber" unless options named it); NULL for NULL. */
WEFT_API const char *weft_fiber_get_name(const weft_fiber *f);

/** The loop f runs on; NULL for NULL. */
WEFT_API weft_loop *weft_fiber_loop(const weft_fiber *f);

/** f's own future (no reference taken: valid while f runs). NULL for NULL. */
WEFT_API weft_future *weft_fiber_future(const weft_fiber *f);

/* ---- one-call forms: make the future, await it, drop it -------------------
 * (promises/fiber_ops.c, io/fiber_io_ops.c). Each is for a fiber: outside
 * one it returns -EPERM and does nothing else. Each returns 0 or the
 * negative error of the future form (making the future or its outcome);
 * cancelling the fiber while it waits cancels the future (so the wait is
 * withdrawn: a lock, permit or item is not taken) and returns -ECANCELED.
 * If the operation had already completed when the cancellation arrived, a
 * lock or permit is given back (still -ECANCELED), while a queue item that
 * moved stays moved and the call returns 0 (weft_fiber_cancelled() stays
 * true). None allocates beyond what the future form does. */

#include "pool.h"
#include "process.h"
#include "sync.h"

/** weft_lock_acquire awaited: returns 0 once the fiber holds `lock`
 * (release it with weft_lock_release), -EINVAL (NULL), -ENOMEM,
 * -ECANCELED (the lock is not held), -EPERM. */
WEFT_API int weft_fiber_lock_acquire(weft_lock *lock);

/** weft_semaphore_acquire awaited: returns 0 once the fiber holds one
 * permit of `sem` (give it back with weft_semaphore_release), -EINVAL
 * (NULL), -ENOMEM, -ECANCELED (no permit taken), -EPERM. */
WEFT_API int weft_fiber_semaphore_acquire(weft_semaphore *sem);

/** weft_queue_put awaited: returns 0 once `item` is in `q` (waiting while
 * a bounded queue is full), -EINVAL (NULL q), WEFT_ECLOSED (q closed),
 * -ENOMEM,
 * -ECANCELED (item not queued, still the caller's), -EPERM. */
WEFT_API int weft_fiber_queue_put(weft_queue *q, void *item);

/** weft_queue_get awaited: returns 0 and the item in *item (now the
 * caller's), waiting while `q` is empty; else *item is NULL (if item is
 * not NULL) and the error is returned: -EINVAL (NULL q or item),
 * WEFT_ECLOSED (q closed and empty), -ENOMEM, -ECANCELED (no item taken),
 * -EPERM. */
WEFT_API int weft_fiber_queue_get(weft_queue *q, void **item);

/** asyncio.create_task from a fiber: weft_fiber_spawn on the calling
 * fiber's loop with default options. *out (NULL allowed) gets the new
 * fiber's future, or NULL on error. Returns 0, -EINVAL (NULL fn), -ENOMEM,
 * -EPERM outside a fiber. */
WEFT_API int weft_fiber_create_task(weft_fiber_fn fn, void *arg,
                                    weft_future **out);

/** asyncio.gather: awaits fs[0], fs[1], ... in order (NULL entries are
 * skipped), dropping each reference and setting the entry to NULL.
 * Returns 0 if all were fulfilled, else the first error in index order
 * (every future is still awaited); -EINVAL (NULL fs with n > 0), -EPERM
 * outside a fiber (fs untouched). If the calling fiber is cancelled
 * meanwhile, the future it awaits and every later one is cancelled and
 * dropped, and it returns -ECANCELED. */
WEFT_API int weft_fiber_gather(weft_future **fs, size_t n);

/** weft_fs_read_file_future on the fiber's loop, awaited. On 0 *out is the
 * fulfilled future (the caller's reference): weft_future_value(*out) is
 * the const weft_fs_buf *, valid until the caller unrefs *out. On error
 * *out is NULL (if out is not NULL) and nothing is left: -EINVAL (NULL
 * path or out), the file's error (-ENOENT, -EISDIR, ...), -ENOMEM,
 * -ECANCELED (the read is cancelled), -EPERM. */
WEFT_API int weft_fiber_read_file(const char *path, weft_future **out);

/** weft_fs_scandir_future on the fiber's loop, awaited; as
 * weft_fiber_read_file, the value of *out being the const weft_fs_dir *. */
WEFT_API int weft_fiber_scandir(const char *path, weft_future **out);

/** asyncio.to_thread: runs fn(arg, &err) on the pool's `lane` (as
 * weft_pool_submit_future) and awaits it. On 0 *result (may be NULL) gets
 * fn's return value, which is then the caller's (with result NULL it is
 * passed to dtor, if not NULL). Otherwise *result is NULL and the error is
 * returned: fn's err, -EINVAL (NULL fn, bad lane), -ENOMEM, -EAGAIN,
 * -ESHUTDOWN, -ECANCELED (a queued job never runs; a running one gets its
 * cancel flag, and what it returns goes to dtor), -EPERM. */
WEFT_API int weft_fiber_run_in_pool(weft_pool_lane lane, weft_pool_fn fn,
                                    void *arg, weft_dtor dtor, void **result);

/** asyncio.wait_for(proc.wait(), timeout): awaits the exit of the spawned
 * child `p` for at most timeout_ms milliseconds (0: no timeout) and stores
 * its exit value in *status (may be NULL; 0 unless it exited; read it with
 * weft_exit_is_signal / weft_exit_code). Returns 0, -ETIMEDOUT (the child
 * is left running: kill it and wait again), -EINVAL (NULL, a handle never
 * spawned or closing, timeout_ms > WEFT_TIMEOUT_MAX), -ECANCELED (the
 * handle was closed first, or the fiber cancelled; the child is not
 * touched), -ENOMEM, -EPERM. */
WEFT_API int weft_fiber_process_wait(weft_process *p, uint64_t timeout_ms,
                                     int64_t *status);

/* ---- streams from a fiber: asyncio's StreamReader / StreamWriter ---------
 * (io/fiber_stream.c). Each call makes the stream's future form
 * (weft/stream.h), awaits it and drops it, so it takes the same arguments
 * and returns the same errors, and allocates only what that future form
 * does (nothing in steady state). Outside a fiber each returns -EPERM and
 * does nothing else. A read fills `buf` only while the call runs.
 * Cancelling the fiber while it waits cancels a read, connect or accept
 * and the call returns -ECANCELED: a read then consumes nothing (the bytes
 * it had gathered stay readable, the stream stays usable), a connect
 * aborts, a connection is left for the next accept. A write is not cut
 * off (weft may be sending from `buf`): the call waits for it. An
 * operation that completed although the fiber was cancelled returns its
 * result (no byte lost), and the fiber's next await, yield or sleep
 * returns -ECANCELED instead. */

#include <sys/types.h>

#include "stream.h"
#include "tcp.h"

/** asyncio's `await reader.read(n)`: reads at most `n` bytes into `buf` as
 * soon as any are there. Returns the count (1..n), 0 at end of file, or a
 * negative error: as weft_stream_read_some_future (-EINVAL, -ENOTCONN,
 * -EBUSY while read_start is active, -ENOMEM), the read's error
 * (-ECONNRESET, ...), -ECANCELED (the stream was closed, or the fiber
 * cancelled), -EPERM. */
WEFT_API ssize_t weft_fiber_read(weft_stream *s, void *buf, size_t n);

/** asyncio's `await reader.readexactly(n)`: returns `n` once `n` bytes are
 * in `buf`; WEFT_EOF if the stream ended first (what came stays readable:
 * weft_stream_read_buffered() counts it); else an error as weft_fiber_read,
 * plus -ENOMEM if the read-back buffer could not grow to `n`. */
WEFT_API ssize_t weft_fiber_read_exact(weft_stream *s, void *buf, size_t n);

/** asyncio's `await reader.readuntil(delim)` into `buf`, at most `cap`
 * bytes: returns the length through the delimiter's last byte (what
 * follows stays readable); -EMSGSIZE if `cap` bytes hold no delimiter,
 * WEFT_EOF if the stream ended first (in both cases every byte stays
 * readable); else an error as weft_fiber_read_exact, plus -EINVAL for NULL
 * delim, `delim_len` 0 or above WEFT_STREAM_DELIM_MAX, `cap` < delim_len. */
WEFT_API ssize_t weft_fiber_read_until(weft_stream *s, void *buf, size_t cap,
                                       const void *delim, size_t delim_len);

/** asyncio's `await reader.readline()` as a C string: reads through the
 * next "\n" into `buf` (at most cap - 1 bytes) and ends it with a NUL.
 * Returns the line's length with its "\n" (not counting the NUL); at end
 * of file before a newline, WEFT_EOF (a last line without "\n" stays
 * readable: weft_fiber_read gets it); -EMSGSIZE for a longer line (it stays
 * readable); -EINVAL for NULL buf or `cap` < 2; else errors as
 * weft_fiber_read_until. On an error other than -EPERM, buf[0] is NUL
 * (when cap > 0). */
WEFT_API ssize_t weft_fiber_readline(weft_stream *s, char *buf, size_t cap);

/** asyncio's `writer.write(b); await writer.drain()`: writes the `n` bytes
 * of `buf` (weft_stream_write_future, which sends from `buf` itself) and
 * waits until all are written; when it returns weft no longer uses `buf`.
 * Returns `n`, or a negative error: -EINVAL (NULL s or buf, n 0),
 * -ENOTCONN, -EPIPE, -ENOMEM, the write's error, -ECANCELED (the stream
 * was closed first), -EPERM. Cancelling the fiber meanwhile does not
 * withdraw the write (as asyncio keeps written bytes queued when drain is
 * cancelled): the call still waits for it and returns its result. */
WEFT_API ssize_t weft_fiber_write(weft_stream *s, const void *buf, size_t n);

/** `await asyncio.open_connection(...)` for a weft_tcp: connects `t` to
 * `addr` (weft_tcp_connect_future) and waits. Returns 0 once connected,
 * the connect's error (-ECONNREFUSED, ...), the errors of
 * weft_tcp_connect (-EINVAL, ...), -ENOMEM, -ECANCELED (the fiber was
 * cancelled: the connect is aborted and `t` is back to its initial state),
 * -EPERM. */
WEFT_API int weft_fiber_connect(weft_tcp *t, const struct sockaddr *addr);

/** `await` of an accept: waits for the next connection on the listener
 * `server` and accepts it into `client` (an initialised, unused handle of
 * the same kind), as weft_stream_accept_future. Returns 0, its errors,
 * -ECANCELED (server closed, or the fiber cancelled: the connection is
 * left for the next accept), -EPERM. */
WEFT_API int weft_fiber_accept(weft_stream *server, weft_stream *client);

/* ---- programs, task sets and deadlines ------------------------------------
 * (promises/fiber_ops.c) */

/** asyncio.run() with a loop of its own: makes a loop (default options),
 * runs fn(self, arg) on it as weft_fiber_run does, then runs the loop on
 * until nothing is left on it (fibers fn spawned and did not await finish,
 * handles being closed finish closing), and frees it. Returns the fiber's
 * error as weft_fiber_run (0 if fulfilled; its int64 result in *result,
 * which may be NULL); else -EINVAL (NULL fn, bad options), -EBUSY (called
 * from inside a fiber), the errors of weft_loop_new (-ENOMEM, -EMFILE) or
 * -ENOMEM from the spawn. A fiber left running forever (a server never
 * closed) keeps it from returning, as it would keep the loop alive. If
 * the loop still cannot be freed afterwards (a handle initialised but never
 * closed, an unmatched weft_loop_ref) it is left allocated and -EBUSY is
 * returned unless the fiber failed first. Not for a thread that runs
 * another loop's callbacks at the time (-EBUSY inside a fiber). */
WEFT_API int weft_fiber_main(weft_fiber_fn fn, void *arg,
                             const weft_fiber_options *opts, int64_t *result);

/** A task group, asyncio.TaskGroup with an optional limit on how many of
 * its fibers run at once (weft_fiber_group_new). Opaque. */
typedef struct weft_fiber_group weft_fiber_group;

/** Inside a fiber: makes a task group on the fiber's loop whose fibers
 * run at most `limit` at a time (0: no limit; asyncio's Semaphore around
 * each task). It must be waited for (weft_fiber_group_wait), which frees
 * it. Returns 0, -EINVAL (NULL out), -ENOMEM, -EPERM outside a fiber; on
 * an error *out is NULL. */
WEFT_API int weft_fiber_group_new(unsigned limit, weft_fiber_group **out);

/** `tg.create_task(fn(arg))`: spawns fn(self, arg) as a fiber of `g`
 * (default options), first waiting while `limit` of g's fibers are running
 * (so a loop of spawns is throttled: at most `limit` fibers exist).
 * Returns 0, -ECANCELED (the calling fiber was cancelled while it waited:
 * nothing spawned), -ENOMEM, -EINVAL (NULL g or fn, g of another loop or
 * already waited for), -EPERM outside a fiber. A fiber's negative return
 * is recorded in the group, not reported as an unobserved rejection. */
WEFT_API int weft_fiber_group_spawn(weft_fiber_group *g, weft_fiber_fn fn,
                                    void *arg);

/** The end of `async with TaskGroup()`: waits until the body of every
 * fiber spawned in `g` has returned, then frees g. Returns 0, or the first
 * error one of them returned (in the order they returned). If the calling
 * fiber is cancelled meanwhile, every fiber of g still running is
 * cancelled and still waited for (so their arguments may be freed once
 * this returns), and -ECANCELED is returned. -EINVAL (NULL g, already
 * waited for, g of another loop), -EPERM outside a fiber (g untouched). */
WEFT_API int weft_fiber_group_wait(weft_fiber_group *g);

/** `await asyncio.gather(*(fn(a) for a in args))`, at most `limit` at a
 * time (0: all at once): spawns n fibers in a task group on the calling
 * fiber's loop, fiber i running fn(self, args[i]) (with args NULL:
 * fn(self, (void *)(uintptr_t)i), the index), in index order, and waits
 * for all of them as weft_fiber_group_wait. Returns 0 if every one
 * returned 0, else the first error one returned. If spawning fails
 * (-ENOMEM), those already spawned are still waited for and the spawn's
 * error is returned. Cancelling the calling fiber meanwhile cancels the
 * fibers not yet finished (the later ones are not spawned), waits for them
 * and returns -ECANCELED. -EINVAL for NULL fn, -EPERM outside a fiber
 * (nothing spawned); n 0 returns 0 at once. */
WEFT_API int weft_fiber_map(weft_fiber_fn fn, void *const *args, size_t n,
                            unsigned limit);

/** A fiber to spawn: its body and argument (weft_fiber_gather_calls). */
typedef struct weft_fiber_call {
  weft_fiber_fn fn;
  void *arg;
} weft_fiber_call;

/** `await asyncio.gather(f(a), g(b), ...)`: as weft_fiber_map without a
 * limit, fiber i running calls[i].fn(self, calls[i].arg). -EINVAL (nothing
 * spawned) for NULL calls with n > 0 or a NULL fn in any entry. */
WEFT_API int weft_fiber_gather_calls(const weft_fiber_call *calls, size_t n);

/** asyncio.wait_for(f, timeout): as weft_await(f), but gives up after
 * `ms` milliseconds: then f is cancelled (if the caller's await was its
 * only consumer, as weft_future_timeout does; for a fiber's future this
 * cancels the fiber, which runs on to clean up) and -ETIMEDOUT returned.
 * Returns 0 (read the value with weft_future_value*(f)), f's error,
 * -ETIMEDOUT, -ECANCELED (the calling fiber was cancelled: f is cancelled
 * too, as by weft_await), -EINVAL (NULL f, a future of another loop, ms >
 * WEFT_TIMEOUT_MAX), -ENOMEM (the timer: f untouched), -EPERM outside a
 * fiber. The caller keeps its reference to f. */
WEFT_API int weft_fiber_wait_for(weft_future *f, uint64_t ms);

/* ---- servers and connections: asyncio.start_server / open_connection -----
 * (io/fiber_net.c) */

/** Closes the handle `h` (weft_close) and waits until it is fully closed
 * (its pending operations failed with -ECANCELED), so that its memory may
 * be freed or go out of scope when this returns: `writer.close(); await
 * writer.wait_closed()`. The fiber is suspended once and woken by the
 * close itself, in the close phase of the turn (no timer, no polling, no
 * allocation); it runs again on the next turn. A cancellation of the fiber
 * meanwhile does not cut the wait short (the handle may not be freed before):
 * it is raised again for the fiber's next await. Returns 0, -EINVAL (NULL or an
 * uninitialised handle), -EALREADY (already closing or closed: nothing
 * waited for), -EPERM outside a fiber (h untouched). */
WEFT_API int weft_fiber_close(weft_handle *h);

/** `await asyncio.open_connection(host, port)`: initialises `t` on the
 * calling fiber's loop and connects it to `host` (a name, resolved as
 * weft_tcp_connect_host does, or a numeric IPv4 / IPv6 address) and
 * `port`, trying each address in turn. On 0 `t` is a connected stream the
 * caller owns (read and write it with weft_fiber_read/write, then close it,
 * e.g. with weft_fiber_close(&t->stream.base)). On an error `t` is a
 * closed handle (nothing to free; weft_fiber_close(&t->stream.base)
 * returns -EALREADY): the connect's error (-ECONNREFUSED, ...), a DNS
 * error (WEFT_EDNS_*), -EINVAL (NULL host, port > 65535), -ENOMEM,
 * -ECANCELED (the fiber was cancelled: the lookup or connect is stopped).
 * Except: -EINVAL for NULL t, and -EPERM outside a fiber (t untouched). */
WEFT_API int weft_fiber_open_connection(weft_tcp *t, const char *host,
                                        unsigned port);

/** A server started by weft_fiber_start_server. Opaque. */
typedef struct weft_fiber_server weft_fiber_server;

/** A connection handler: runs in a fiber of its own for each accepted
 * connection `conn` (TCP, TCP_NODELAY set, as asyncio does). When it
 * returns the server closes `conn` (unless the handler did) and frees it:
 * the handler must not keep it. A negative return rejects the handler fiber's
 * future, which nobody holds: it is reported as an unobserved rejection. `arg`
 * is the one given to weft_fiber_start_server. */
typedef int (*weft_fiber_conn_fn)(weft_fiber *self, weft_stream *conn,
                                  void *arg);

/** Options of weft_fiber_start_server; a zeroed struct (or NULL) means the
 * defaults. */
typedef struct weft_fiber_server_options {
  int backlog;       /**< listen(2) backlog; 0 or less: SOMAXCONN */
  size_t stack_size; /**< stack of each handler fiber (weft_fiber_options) */
} weft_fiber_server_options;

/** `await asyncio.start_server(fn, host, port)`: listens on `host` (a
 * numeric IPv4 or IPv6 address; NULL: "0.0.0.0") and `port` (0: a free
 * port, read it with weft_fiber_server_port), on the calling fiber's loop,
 * and accepts connections from now on in a fiber of the server's, running
 * fn(self, conn, arg) in a new fiber for each (see weft_fiber_conn_fn).
 * Each wake-up takes in the connections already queued (up to 64) in the
 * same loop turn. When a connection cannot be taken in (no memory for it,
 * EMFILE, any other accept error), the server waits 100 ms and accepts again,
 * as asyncio does. *out is the server, valid until weft_fiber_server_close. The
 * server keeps the loop alive until closed. Returns 0; -EINVAL (NULL fn or out,
 * a host that is not a numeric address, port > 65535, a stack size over
 * WEFT_FIBER_STACK_MAX); the errors of bind and listen (-EADDRINUSE, ...);
 * -ENOMEM; -EPERM outside a fiber. On an error *out is NULL and nothing is left
 * open. */
WEFT_API int weft_fiber_start_server(const char *host, unsigned port,
                                     weft_fiber_conn_fn fn, void *arg,
                                     const weft_fiber_server_options *opts,
                                     weft_fiber_server **out);

/** The port the server listens on (the one picked for port 0); -EINVAL
 * for NULL. */
WEFT_API int weft_fiber_server_port(const weft_fiber_server *srv);

/** `server.close()`: stops accepting and closes the listening socket.
 * Connections already accepted go on until their handlers return. The
 * server frees itself once its listener has closed (on a later turn):
 * `srv` must not be used after this call. Loop thread, in a fiber or
 * not. Returns 0, -EINVAL for NULL, -EALREADY if already closed. */
WEFT_API int weft_fiber_server_close(weft_fiber_server *srv);

/** `await server.serve_forever()`: waits until `srv` is closed (by
 * weft_fiber_server_close, from a handler or another fiber) and returns
 * 0 then. If the calling fiber is cancelled meanwhile, the server is
 * closed (as asyncio's serve_forever does) and -ECANCELED returned; in
 * both cases `srv` is no longer valid afterwards. Several fibers may
 * wait on one server. -EINVAL for NULL srv, -EPERM outside a fiber (srv
 * untouched). */
WEFT_API int weft_fiber_serve_forever(weft_fiber_server *srv);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FIBER_H */
