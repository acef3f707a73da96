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

#endif
