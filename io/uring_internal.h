/* weft — the io_uring backend of the fs operations (io/uring.c), between it
 * and io/fs.c. Never installed. Raw system calls and <linux/io_uring.h>
 * only: no liburing. */
#ifndef WEFT_IO_URING_INTERNAL_H
#define WEFT_IO_URING_INTERNAL_H

#include "fs_internal.h"

typedef struct weft__uring weft__uring;

/* Called on the loop's thread when a ring request is over (req->result
 * set, req->statbuf filled for the stat ops). */
typedef void (*weft__uring_done_fn)(weft_fs_req *req);

/* Makes the ring of `loop`: io_uring_setup, the mappings, the probe, an
 * eventfd registered with the ring and watched by the loop. Returns 0 or
 * a negative errno (-ENOSYS, -EPERM when io_uring is disabled, -EMFILE,
 * -ENOMEM, ...); a failure leaves nothing behind. */
int weft__uring_new(weft_loop *loop, weft__uring_done_fn done,
                    weft__uring **out);

/* Closes the ring. Nothing may be in flight (weft__uring_drain first). */
void weft__uring_free(weft__uring *u);

/* Whether the ring backend has an opcode for req's operation at all. */
bool weft__uring_knows(const weft_fs_req *req);

/* Whether the ring can run req's operation (this kernel has its opcode). */
bool weft__uring_can(const weft__uring *u, const weft_fs_req *req);

/* Starts req on the ring (the submission itself is batched in the loop's
 * prepare phase). Returns 0, or -EAGAIN when the ring is full: then
 * nothing happened and the caller uses the pool. */
int weft__uring_start(weft__uring *u, weft_fs_req *req);

/* Cancels a ring request: 0 (its callback gets -ECANCELED, and the kernel
 * no longer touches its buffers), -EALREADY (it had finished; the callback
 * gets the result), -EBUSY (the kernel could not stop it: it completes
 * normally). */
int weft__uring_cancel(weft__uring *u, weft_fs_req *req);

/* Loop teardown: cancels everything in flight, waits for the kernel and
 * runs the callbacks, here. */
void weft__uring_drain(weft__uring *u);

/* Requests in flight. */
unsigned weft__uring_inflight(const weft__uring *u);

#endif
