/* weft — futures: the one currency of completion.
 *
 * State machine (docs/futures.md draws it):
 *
 *   PENDING --resolve--> FULFILLED   (a void * with optional dtor, or an
 *      |                              int64 / double held inline)
 *      +----reject-----> REJECTED    (a negative error code)
 *      +----cancel-----> CANCELLED   (error -ECANCELED; the cancel hook runs)
 *
 * A future settles once; settling it again returns -EALREADY and changes
 * nothing. Futures belong to their loop and are used from its thread only,
 * except the *_threadsafe functions.
 *
 * Reference counting. A future is freed (back to the loop's free list) when
 * its count drops to 0:
 *  - weft_future_new(), then/catch/finally/then2, the combinators, sleep and
 *    timeout give the caller one reference, to be dropped with
 *    weft_future_unref();
 *  - a registered continuation keeps the future it waits on, and the
 *    derived future, alive until it has run: `weft_future_then(f, fn, arg,
 *    NULL)` is fine, fn still runs;
 *  - combinators take their own references to their inputs: the caller
 *    keeps (and drops) its own;
 *  - weft_future_adopt() consumes the caller's reference to the adopted
 *    future; the *_threadsafe settles consume one reference (see there).
 * A fulfilled future owns its pointer value and calls its dtor when freed; a
 * future that passes a pointer value through (then without a handler,
 * any, race, adopt) borrows it and keeps its source alive instead.
 *
 * Continuations never run inline: when a future settles, its continuations
 * are queued on the loop's deferred queue (weft_call_soon) and run in
 * registration order; a continuation registered on a settled future is
 * queued the same way. */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A loop-owned, reference-counted future. Opaque. */
typedef struct weft_future weft_future;

/** Frees a pointer value when its future is freed. */
typedef void (*weft_dtor)(void *value);

/** The producer's hook that stops the work behind a future. */
typedef void (*weft_future_cancel_cb)(weft_future *f, void *arg);

/** A plain settle callback (weft_future_on_settled): `f` is settled. */
typedef void (*weft_future_cb)(weft_future *f, void *arg);

/** A continuation. `in` is the settled input; `out` is the derived future,
 * still pending, that the continuation decides (NULL for finally):
 *  - settle `out` with weft_future_resolve*() / weft_future_reject(): that
 *    is its outcome ("return a value");
 *  - return a negative error code: `out` is rejected with it ("throw");
 *  - weft_future_adopt(out, g): `out` takes g's outcome when g settles
 *    ("return a future"); adopting `out` itself rejects it with -EDEADLK;
 *  - return 0 and leave `out` alone: a success handler (then, then2's
 *    on_ok) passes `in`'s value through; an error handler (catch, then2's
 *    on_err) **recovers**: `out` is fulfilled with int64 0 (no value), as
 *    a Promises/A+ onRejected that returns normally. To pass the error on,
 *    an error handler returns it: `return weft_future_error(in);`.
 * For finally the input always passes through unless fn returns an error.
 * `in` is valid only during the call (take a reference to keep it). */
typedef int (*weft_then_fn)(weft_future *in, weft_future *out, void *arg);

/** A future's state. */
typedef enum weft_future_state {
  WEFT_FUTURE_PENDING = 0,
  WEFT_FUTURE_FULFILLED,
  WEFT_FUTURE_REJECTED,
  WEFT_FUTURE_CANCELLED
} weft_future_state;

/* ---- producer side ------------------------------------------------------ */

/** Creates a pending future on `loop`; *out holds the caller's one
 * reference. Returns 0, -EINVAL (NULL loop or out), -ENOMEM. Loop thread. */
WEFT_API int weft_future_new(weft_loop *loop, weft_future **out);

/** Like weft_future_new, and records `op`, the name of the operation that
 * makes the future (e.g. "weft_tcp_connect_future"), which an unobserved
 * rejection reports (weft_future_get_op). `op` is borrowed, not copied: it
 * must have static storage duration (a string literal). NULL: none, as
 * weft_future_new. A process keeps up to 255 distinct op pointers; past
 * that a new one is recorded as none. For producers: weft's own, and
 * libraries built on weft. Returns 0, -EINVAL (NULL loop or out), -ENOMEM.
 * Loop thread. */
WEFT_API int weft_future_new_op(weft_loop *loop, const char *op,
                                weft_future **out);

/** Longest name weft_future_set_name keeps, in bytes, without the NUL. */
#define WEFT_FUTURE_NAME_MAX 31

/** Names f for reports (an unobserved rejection prints it). The name is
 * copied, cut to WEFT_FUTURE_NAME_MAX bytes; a later call replaces it;
 * NULL removes it. Steady-state futures pay nothing for this: names live
 * in a table of the loop, allocated on first use. Returns 0, -EINVAL (NULL
 * f), -ENOMEM (f keeps its old name). Loop thread. */
WEFT_API int weft_future_set_name(weft_future *f, const char *name);

/** f's name (weft_future_set_name), or NULL if it has none; valid until f
 * is renamed or freed. A future that took a rejection from another (a
 * derived future passing an error through, adopt, race, timeout) takes
 * that future's name too, unless it has its own. NULL for NULL. */
WEFT_API const char *weft_future_get_name(const weft_future *f);

/** The operation that made f: the `op` given to weft_future_new_op (weft's
 * producers name theirs: "weft_tcp_connect_future", "weft_pool_submit_
 * future", ...); for a future that took a rejection from another, that
 * future's op; else "weft_future_new" for a plain future, or the kind of
 * future ("then", "catch", "all", ...; "weft_sleep" and
 * "weft_future_timeout" for those two). Never NULL;
 * "" for NULL f. A string with static storage duration. */
WEFT_API const char *weft_future_get_op(const weft_future *f);

/** Takes a reference; returns f (NULL stays NULL). */
WEFT_API weft_future *weft_future_ref(weft_future *f);

/** Drops a reference; at 0 the future goes back to the loop's free list
 * (its dtor runs; an unobserved rejection is reported, see
 * weft_future_set_unhandled_hook). NULL is ignored. */
WEFT_API void weft_future_unref(weft_future *f);

/** Fulfils `f` with a pointer; the future owns `value` and calls dtor(value)
 * when freed (dtor may be NULL). Returns 0; -EINVAL for NULL f; -EALREADY if
 * f is already settled (value is then NOT consumed: the caller keeps it);
 * -EBUSY if f's outcome is decided elsewhere: a derived future outside its
 * own continuation, a future adopting another, a combinator, sleep or
 * timeout (value not consumed either). */
WEFT_API int weft_future_resolve(weft_future *f, void *value, weft_dtor dtor);

/** Fulfils `f` with an int64 held inline. Errors as weft_future_resolve. */
WEFT_API int weft_future_resolve_i64(weft_future *f, int64_t v);

/** Fulfils `f` with a double held inline. Errors as weft_future_resolve. */
WEFT_API int weft_future_resolve_f64(weft_future *f, double v);

/** Rejects `f` with `err` (< 0). -EINVAL for NULL f or err >= 0; -EALREADY
 * if settled; -EBUSY as weft_future_resolve. */
WEFT_API int weft_future_reject(weft_future *f, int err);

/** Cancels a pending future: it settles as CANCELLED (error -ECANCELED), its
 * continuations are queued, and the work behind it is stopped: the
 * producer's on_cancel hook runs (once, now); a derived future cancels its
 * source when it is the source's only consumer (registered continuation);
 * a combinator cancels the inputs it is the only consumer of; sleep and
 * timeout stop their timers. Returns 0, -EINVAL, -EALREADY if settled. */
WEFT_API int weft_future_cancel(weft_future *f);

/** Registers the producer's hook that really stops the work: called on the
 * loop thread, once, from weft_future_cancel(), only if f is cancelled while
 * pending. The hook must not settle f (it already is). One hook per future:
 * a second call replaces it. Returns 0, -EINVAL (NULL f or cb), -EALREADY
 * if f is settled, -EBUSY if f did not come from weft_future_new() (weft
 * cancels derived futures, combinators and timers itself). */
WEFT_API int weft_future_on_cancel(weft_future *f, weft_future_cancel_cb cb,
                                   void *arg);

/** Any thread: fulfils `f` with a pointer on the loop thread. Consumes one
 * reference to f, which the caller took on the loop thread before handing
 * f over (weft_future_ref); it is dropped on the loop thread after the
 * settle. If f was settled or cancelled meanwhile, dtor(value) runs there.
 * Returns 0; -EINVAL (NULL f); -ENOMEM or -ESHUTDOWN (loop being freed):
 * then nothing is consumed (the caller keeps its reference and value). */
WEFT_API int weft_future_resolve_threadsafe(weft_future *f, void *value,
                                            weft_dtor dtor);

/** Any thread: like weft_future_resolve_threadsafe with an int64. */
WEFT_API int weft_future_resolve_i64_threadsafe(weft_future *f, int64_t v);

/** Any thread: like weft_future_resolve_threadsafe, rejecting with err < 0
 * (-EINVAL otherwise). */
WEFT_API int weft_future_reject_threadsafe(weft_future *f, int err);

/* ---- threads that wait for the loop (promises/wait.c) -------------------
 * A non-loop thread may block until a future of a loop settles. The future
 * stays the loop's: the waiting thread never touches it while it waits (it
 * posts a request to the loop, which watches f and wakes the thread). */

/** weft_future_wait(): no time limit. */
#define WEFT_WAIT_FOREVER (-1)

/** Any thread but the loop's: blocks the calling thread until f settles or
 * `timeout_ms` milliseconds pass (WEFT_WAIT_FOREVER: no limit; 0: does not
 * block, so it returns -ETIMEDOUT unless the loop answered at once: the
 * loop must run to answer). The caller must hold a
 * reference to f for the whole call (taken on the loop thread with
 * weft_future_ref before handing f over; drop it later on the loop thread,
 * or with weft_future_unref_threadsafe). Returns
 *  - 0: f is settled. Its outcome is then fixed, the loop has marked it
 *    observed, and this thread may read it with weft_future_get_state,
 *    weft_future_error and weft_future_value / _i64 / _f64 (the loop wrote
 *    it before waking the thread: the wake orders the reads after it).
 *    Nothing else on f may be called from this thread.
 *  - -ETIMEDOUT: still pending after timeout_ms; the loop forgets the wait.
 *  - -ESHUTDOWN: the loop is being freed (weft_loop_free ran, or runs,
 *    while the thread waits, or had begun): f is gone with the loop, do not
 *    touch it.
 *  - -EDEADLK at once on the loop's thread (the thread that made the loop's
 *    first future), which would wait for itself.
 *  - -EINVAL (NULL f, timeout_ms < -1), -ENOMEM (nothing waited). */
WEFT_API int weft_future_wait(weft_future *f, int64_t timeout_ms);

/** Any thread: drops a reference to f on the loop thread (the counterpart
 * of a weft_future_ref handed to a thread). Returns 0, -EINVAL (NULL),
 * -ENOMEM or -ESHUTDOWN (loop being freed; the reference is then not
 * dropped). */
WEFT_API int weft_future_unref_threadsafe(weft_future *f);

/* ---- a dedicated thread whose result settles a future (promises/thread.c) */

/** The running thread's handle, passed to its function. */
typedef struct weft_thread weft_thread;

/** A spawned thread's body: return 0 to fulfil the future with what
 * weft_thread_return* set (int64 0 if nothing), or a negative error code to
 * reject it with that code. Runs on its own thread: it must not touch the
 * loop except through the *_threadsafe functions. */
typedef int (*weft_thread_fn)(weft_thread *t, void *arg);

/** Loop thread: starts a dedicated thread named `name` (pthread_setname_np,
 * cut to 15 bytes; NULL: "weft-thread") running fn(t, arg). *out gets a
 * future (one reference) settled on the loop thread with fn's result once
 * fn has returned and the thread has been joined. The loop stays alive
 * while the thread runs, and weft_loop_free() returns -EBUSY until its
 * future has settled. Cancelling the future settles it CANCELLED at once
 * and raises the flag weft_thread_cancelled() reads; the thread runs on
 * until fn returns, is then joined, and its value is dropped (dtor).
 * Returns 0; -EINVAL (NULL loop, fn or out); -ENOMEM; -EAGAIN (no thread
 * could be created); nothing then started. */
WEFT_API int weft_thread_spawn(weft_loop *loop, const char *name,
                               weft_thread_fn fn, void *arg, weft_future **out);

/** The thread's own call: its result will be the pointer `value`, owned by
 * the future (dtor(value) when freed, or when the result is dropped). A
 * later call replaces an earlier one (whose value is then dropped). */
WEFT_API void weft_thread_return(weft_thread *t, void *value, weft_dtor dtor);

/** The thread's own call: its result will be the int64 `v`. */
WEFT_API void weft_thread_return_i64(weft_thread *t, int64_t v);

/** Any thread: true once the thread's future was cancelled (poll it and
 * return early). False for NULL. */
WEFT_API bool weft_thread_cancelled(const weft_thread *t);

/* ---- inspection --------------------------------------------------------- */

/** The state (PENDING for NULL). */
WEFT_API weft_future_state weft_future_get_state(const weft_future *f);
/** Deprecated name of weft_future_get_state (getters are
 * weft_<noun>_get_<what>); removed in the release after 0.2. */
WEFT_DEPRECATED("use weft_future_get_state")
static inline weft_future_state weft_future_state_get(const weft_future *f) {
  return weft_future_get_state(f);
}

/** 0 while pending or fulfilled, the rejection code, or -ECANCELED. Reading
 * it marks a rejection as observed. -EINVAL for NULL. */
WEFT_API int weft_future_error(const weft_future *f);

/** The pointer value (NULL unless fulfilled with a pointer). */
WEFT_API void *weft_future_value(const weft_future *f);
/** The int64 value (0 unless fulfilled with an int64). */
WEFT_API int64_t weft_future_value_i64(const weft_future *f);
/** The double value (0.0 unless fulfilled with a double). */
WEFT_API double weft_future_value_f64(const weft_future *f);

/** The loop a future belongs to (NULL for NULL). */
WEFT_API weft_loop *weft_future_loop(const weft_future *f);

/** Bytes of one future (for reports). */
WEFT_API size_t weft_future_size(void);

/* ---- consumer side --------------------------------------------------------
 */

/** Registers fn to run when f is fulfilled; an error skips it and passes
 * through. *out (may be NULL if unwanted) gets the derived future with one
 * reference. Returns 0, -EINVAL (NULL f or fn), -ENOMEM (nothing
 * registered). */
WEFT_API int weft_future_then(weft_future *f, weft_then_fn fn, void *arg,
                              weft_future **out);

/** Registers fn to run when f is rejected or cancelled; a value skips it and
 * passes through. fn recovers unless it says otherwise: returning 0 without
 * settling `out` fulfils it with int64 0; `return weft_future_error(in)`
 * passes the error on (see weft_then_fn). Same contract as
 * weft_future_then. */
WEFT_API int weft_future_catch(weft_future *f, weft_then_fn fn, void *arg,
                               weft_future **out);

/** Registers fn for both outcomes (called with out == NULL); the input then
 * passes through unchanged, unless fn returns an error, which rejects the
 * derived future. Same contract as weft_future_then. */
WEFT_API int weft_future_finally(weft_future *f, weft_then_fn fn, void *arg,
                                 weft_future **out);

/** Both handlers: on_ok when fulfilled, on_err when rejected or cancelled;
 * either may be NULL (pass through). on_err recovers as catch's fn does
 * (returning 0 without settling `out` fulfils it with int64 0). Same
 * contract as weft_future_then (-EINVAL if both are NULL). */
WEFT_API int weft_future_then2(weft_future *f, weft_then_fn on_ok,
                               weft_then_fn on_err, void *arg,
                               weft_future **out);

/** Makes the pending `out` take src's outcome when src settles ("return a
 * future" from a continuation, or forward one plain future to another);
 * consumes the caller's reference to src in every case (except src == out,
 * which rejects out with -EDEADLK and returns -EDEADLK). Returns 0, -EINVAL
 * (NULL, or futures of different loops), -EALREADY if out is settled,
 * -EBUSY if out's outcome is decided elsewhere (as weft_future_resolve) or
 * it has a producer's cancel hook (it belongs to that producer). */
WEFT_API int weft_future_adopt(weft_future *out, weft_future *src);

/** Callback style: cb(f, arg) runs once, deferred, when f settles (or soon,
 * if it already has). Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_future_on_settled(weft_future *f, weft_future_cb cb,
                                    void *arg);

/** Removes every on_settled registration of (cb, arg) on f that has not run
 * yet. Returns how many were removed (0 if none), -EINVAL for NULL. */
WEFT_API int weft_future_off_settled(weft_future *f, weft_future_cb cb,
                                     void *arg);

/* ---- combinators and timers ------------------------------------------- */

/** Fulfils (int64 value n) once all n inputs are fulfilled; the first
 * rejection or cancellation rejects it with that error and cancels the
 * other inputs. Read the values from the inputs. n == 0: fulfilled (0) at
 * once. Returns 0, -EINVAL (NULL loop/out, NULL fs with n > 0, NULL or
 * foreign input), -ENOMEM. */
WEFT_API int weft_future_all(weft_loop *loop, weft_future *const *fs, size_t n,
                             weft_future **out);

/** Fulfils (int64 value n) once every input has settled, whatever the
 * outcomes. n == 0: fulfilled (0) at once. Errors as weft_future_all. */
WEFT_API int weft_future_all_settled(weft_loop *loop, weft_future *const *fs,
                                     size_t n, weft_future **out);

/** Takes the value of the first input to be fulfilled (the others are then
 * cancelled); if all fail, rejects with WEFT_EAGGREGATE. n == 0: rejected
 * with WEFT_EAGGREGATE. Errors as weft_future_all. */
WEFT_API int weft_future_any(weft_loop *loop, weft_future *const *fs, size_t n,
                             weft_future **out);

/** Takes the outcome of the first input to settle (the others are not
 * cancelled). n == 0: stays pending until cancelled (as in JavaScript).
 * Errors as weft_future_all. */
WEFT_API int weft_future_race(weft_loop *loop, weft_future *const *fs, size_t n,
                              weft_future **out);

/** Takes f's outcome, or rejects with -ETIMEDOUT after `ms` and cancels f.
 * Cancelling the result stops the timer and cancels f (if it is f's only
 * consumer). Returns 0, -EINVAL (NULL, ms > WEFT_TIMEOUT_MAX), -ENOMEM. */
WEFT_API int weft_future_timeout(weft_future *f, uint64_t ms,
                                 weft_future **out);

/** A future fulfilled (int64 0) after `ms` milliseconds; cancelling it stops
 * its timer. Returns 0, -EINVAL (NULL, ms > WEFT_TIMEOUT_MAX), -ENOMEM. */
WEFT_API int weft_sleep(weft_loop *loop, uint64_t ms, weft_future **out);

/* ---- unobserved rejections ---------------------------------------------- */

/** Called when a rejected future is freed and nobody observed its error (no
 * continuation, combinator or weft_future_error() call). */
typedef void (*weft_unhandled_cb)(weft_loop *loop, int err, void *arg);

/** Sets the loop's hook for unobserved rejections; NULL restores the
 * default (one line on stderr, naming the future's op and name). Replaces
 * a hook set with weft_future_set_unhandled_info_hook. Returns 0, -EINVAL
 * (NULL loop), -ENOMEM. */
WEFT_API int weft_future_set_unhandled_hook(weft_loop *loop,
                                            weft_unhandled_cb cb, void *arg);

/** What an unobserved rejection is about (valid during the hook only). */
typedef struct weft_unhandled_info {
  int err;                   /**< the rejection code (< 0) */
  const char *op;            /**< weft_future_get_op(future): never NULL */
  const char *name;          /**< weft_future_get_name(future), or NULL */
  const weft_future *future; /**< being freed: do not keep it */
} weft_unhandled_info;

/** An unobserved-rejection hook that is told which future. */
typedef void (*weft_unhandled_info_cb)(weft_loop *loop,
                                       const weft_unhandled_info *info,
                                       void *arg);

/** Like weft_future_set_unhandled_hook, with the info hook: one hook per
 * loop, so this replaces a weft_unhandled_cb and the reverse; NULL
 * restores the default. Returns 0, -EINVAL (NULL loop), -ENOMEM. */
WEFT_API int weft_future_set_unhandled_info_hook(weft_loop *loop,
                                                 weft_unhandled_info_cb cb,
                                                 void *arg);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FUTURE_H */
