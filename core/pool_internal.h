/* weft — what the thread pool offers the modules that run their jobs on it
 * (io/fs.c) beyond the public API. Never installed. The pool knows nothing
 * of its users: its per-loop state and job states stay in core/pool.c. */
#ifndef WEFT_CORE_POOL_INTERNAL_H
#define WEFT_CORE_POOL_INTERNAL_H

#include "internal.h"
#include "weft/pool.h"

/* Completes `w` without a worker, for a module that did the work itself on
 * the loop's thread: `w` counts as finished at once (weft_work_cancel()
 * says -EALREADY) and done_cb(w, 0) runs from the deferred queue, never
 * inline. Returns 0, or weft_call_soon()'s error (then nothing happened and
 * `w` may be submitted). Loop thread only. */
int weft__work_complete(weft_loop *loop, weft_work *w,
                        weft_work_done_cb done_cb);

/* Shuts the process-wide pool down (weft_pool_shutdown() is the future
 * form, in promises/pool_future.c): every lane refuses new jobs from then
 * on (weft_work_submit() and weft_pool_resize() return -ESHUTDOWN, from
 * any loop), cancel_queued withdraws every queued job of every loop (each
 * completes with -ECANCELED), and each worker exits once its lane's queue
 * is empty. If cb is not NULL it runs once on `loop`'s thread after the
 * last worker has run its stop hook and exited (it is joined first); the
 * loop is kept alive until then. A later call with a cb replaces the
 * pending one of that loop. Returns 0, -EINVAL (NULL loop), -ENOMEM (the
 * pool or this loop's state could not be created). Loop thread only. */
int weft__pool_shutdown(weft_loop *loop, bool cancel_queued,
                        void (*cb)(weft_loop *loop, void *arg), void *arg);

#endif
