/* weft — loop phase hooks: prepare, check and idle handles, as libuv has
 * them, for bolting another library's work into every turn of the loop.
 *
 * Where they run in one turn, as a user sees it (docs/handles.md, "Loop
 * phase hooks"):
 *   1. idle callbacks, then prepare callbacks (right before the poll, so
 *      timers, I/O watchers and weft_call_soon() they start count for it);
 *   2. the poll (never blocking while an idle handle is started);
 *   3. due timer callbacks, then I/O callbacks;
 *   4. check callbacks (right after the turn's timer and I/O callbacks);
 *   5. the deferred queue (weft_call_soon(), future continuations),
 *      including what the check callbacks queued;
 *   6. close callbacks.
 * Within a kind, started handles run in the order they were started; each
 * runs at most once per turn, and a handle started during its own phase
 * (by a callback of that phase) first runs in the next turn. A handle
 * stopped or closed by an earlier callback of the phase does not run.
 * Callbacks may start, stop or close any hook handle, their own included.
 *
 * They behave like every weft handle: embed them, close them with
 * weft_close() (two phases; the close callback may free them), weft_ref()/
 * weft_unref() (a started, referenced hook keeps the loop alive; an
 * unreferenced one does not, and a started unreferenced idle handle stops
 * the loop from blocking only while something else keeps it running),
 * weft_walk() shows them. A started prepare or check handle keeps the
 * loop alive but, as in libuv, does not keep the poll from blocking: the
 * loop waits for I/O or a timer between their calls. None of these functions
 * allocates. They run under a host's ev_run() too (weft_loop_from_ev()), in the
 * same order. Loop thread only. */
#ifndef WEFT_HOOKS_H
#define WEFT_HOOKS_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_prepare weft_prepare;
typedef struct weft_check weft_check;
typedef struct weft_idle weft_idle;

/** Runs once per turn, right before the loop polls. */
typedef void (*weft_prepare_cb)(weft_prepare *p);
/** Runs once per turn, right after the turn's timer and I/O callbacks. */
typedef void (*weft_check_cb)(weft_check *c);
/** Runs once per turn, before the prepare callbacks. */
typedef void (*weft_idle_cb)(weft_idle *i);

/** A prepare handle. Fields after `base` are private. */
struct weft_prepare {
  weft_handle base;
  /* private */
  weft_prepare_cb cb;
  struct weft__list node; /* loop->hooks[] while started */
};

/** A check handle. Fields after `base` are private. */
struct weft_check {
  weft_handle base;
  /* private */
  weft_check_cb cb;
  struct weft__list node;
};

/** An idle handle. Fields after `base` are private. */
struct weft_idle {
  weft_handle base;
  /* private */
  weft_idle_cb cb;
  struct weft__list node;
};

/** Initialises `p` on `loop` (stopped). Returns 0 or -EINVAL (NULL). */
WEFT_API int weft_prepare_init(weft_loop *loop, weft_prepare *p);
/** Starts calling `cb` once per turn before the poll. Starting a started
 * handle only replaces its callback (it keeps its place). Returns 0;
 * -EINVAL for NULL `p` or `cb`, a handle that is not an initialised
 * prepare handle, or one that is closing or closed. */
WEFT_API int weft_prepare_start(weft_prepare *p, weft_prepare_cb cb);
/** Stops it; a no-op when stopped. Returns 0 or -EINVAL (NULL, not a
 * prepare handle). */
WEFT_API int weft_prepare_stop(weft_prepare *p);

/** Initialises `c` on `loop` (stopped). Returns 0 or -EINVAL (NULL). */
WEFT_API int weft_check_init(weft_loop *loop, weft_check *c);
/** Starts calling `cb` once per turn after the timer and I/O callbacks.
 * Same rules and errors as weft_prepare_start(). */
WEFT_API int weft_check_start(weft_check *c, weft_check_cb cb);
/** Stops it; a no-op when stopped. Returns 0 or -EINVAL. */
WEFT_API int weft_check_stop(weft_check *c);

/** Initialises `i` on `loop` (stopped). Returns 0 or -EINVAL (NULL). */
WEFT_API int weft_idle_init(weft_loop *loop, weft_idle *i);
/** Starts calling `cb` once per turn; while it is started the loop polls
 * without blocking (it spins: a turn per poll), so `cb` runs again as soon
 * as the rest of the turn is done. Same rules and errors as
 * weft_prepare_start(). */
WEFT_API int weft_idle_start(weft_idle *i, weft_idle_cb cb);
/** Stops it (the poll may block again); a no-op when stopped. Returns 0 or
 * -EINVAL. */
WEFT_API int weft_idle_stop(weft_idle *i);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_HOOKS_H */
