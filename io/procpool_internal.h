/* weft — what the process pool's files share (io/procpool*.c). Never
 * installed.
 *
 * Wire (docs/process.md, "Framing"):
 *   job:     u32 length (big-endian), payload
 *   control: u32 length | WEFT__PP_CTRL, one type byte, body
 *              'I' the initializer's bytes
 *              'B' a batch: u32 count, then count x (u32 length, payload)
 *   reply:   u32 length, i32 status (big-endian), payload (a failed job's
 *            payload is its message)
 *   reply | WEFT__PP_EXT: payload = u32 data, u32 out, u32 err lengths,
 *            then the three (captured output).
 * A worker answers a batch with one reply per item, in order, and an
 * initializer with one reply. */
#ifndef WEFT_IO_PROCPOOL_INTERNAL_H
#define WEFT_IO_PROCPOOL_INTERNAL_H

#include "internal.h"
#include "weft/process.h"

#define WEFT__PP_MAX_FRAME ((size_t)1 << 30)
#define WEFT__PP_CTRL 0x80000000u /* job side: a control frame */
#define WEFT__PP_EXT 0x80000000u  /* reply side: with captured output */
#define WEFT__PP_REPLY_HDR 8u
#define WEFT__PP_EXT_HDR 12u
/* The environment variable a pool sets for its workers: their output mode
 * ("inherit", "discard" or "capture"); fd 3 is then where stdout goes. */
#define WEFT__PP_ENV "WEFT_PROCPOOL_STDIO"

static inline void weft__put_be32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

static inline uint32_t weft__get_be32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 |
         u[3];
}

/* ---- job futures (procpool_job.c): a future kind whose rejection can carry
 * the worker's message and output ---------------------------------------- */

/* Called when a pending job future is cancelled (procpool.c). */
void weft__ppjob_cancelled(void *job);
/* A pending job future for `job`, one reference. */
int weft__ppjob_new(weft_loop *loop, void *job, weft_future **out);
/* Fulfils f with r (owned by f from here; freed with weft__free). */
void weft__ppjob_fulfil(weft_future *f, weft_procpool_result *r);
/* Rejects f with code; `detail` (may be NULL; weft__free'd with f) is
 * what the worker said. Takes detail in every case. */
void weft__ppjob_fail(weft_future *f, int code, weft_procpool_result *detail);

/* One result in one allocation: the struct, then data, out, err, each
 * NUL-terminated. NULL when out of memory. */
weft_procpool_result *weft__ppresult_new(int status, const char *d, size_t dl,
                                         const char *o, size_t ol,
                                         const char *e, size_t el);

/* ---- maps (procpool_map.c) ---------------------------------------------- */

typedef struct weft__ppmap weft__ppmap;

/* What waits in the pool's queue: a single job or a map. */
typedef struct weft__ppsrc {
  weft__list node;
  bool is_map;
} weft__ppsrc;

/* A map's next message: up to `max` items (max > 0), as the 1 or 2
 * buffers it returns in bufs: a batch's 9-byte header, written to `hdr`,
 * then the items' frames as the map holds them (valid until the message
 * is answered, failed or given back). Never allocates. Sets *first and
 * *count. */
unsigned weft__ppmap_take(weft__ppmap *m, size_t max, char hdr[9],
                          weft_buf bufs[2], size_t *first, size_t *count);
/* Items not yet handed to a worker. */
size_t weft__ppmap_left(const weft__ppmap *m);
/* Stores item i's result (copies the bytes). */
void weft__ppmap_item(weft__ppmap *m, size_t i, int status, const char *d,
                      size_t dl, const char *o, size_t ol, const char *e,
                      size_t el);
/* A message's items [first, first + count) have all been answered (or set
 * with weft__ppmap_item): one message fewer in flight. */
void weft__ppmap_msg_done(weft__ppmap *m);
/* The pool drops the items not yet handed out (status `err`); the map is
 * out of the queue. */
void weft__ppmap_drop_rest(weft__ppmap *m, int err);
/* A message's items [first, first + count) were never started (their
 * worker died with them queued behind another message): they go back to
 * the map, to be handed out first; one message fewer in flight. Returns 1
 * if the map was still in the pool's queue, 0 if the pool must put it back
 * (at the front), -ENOMEM (nothing changed). */
int weft__ppmap_give_back(weft__ppmap *m, size_t first, size_t count);
/* True once the map's future was cancelled: its replies go nowhere. */
bool weft__ppmap_cancelled(const weft__ppmap *m);
weft__ppmap *weft__ppmap_of(weft__ppsrc *s);

/* procpool.c, for the map: queue a map, kill the workers running its
 * messages, take it out of the queue. */
int weft__procpool_enqueue_map(weft_procpool *pool, weft__ppmap *m, size_t n);
void weft__procpool_kill_map(weft_procpool *pool, weft__ppmap *m);
void weft__procpool_unqueue_map(weft_procpool *pool, weft__ppmap *m);
weft_loop *weft__procpool_loop(const weft_procpool *pool);

#endif
