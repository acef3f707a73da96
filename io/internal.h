/* weft — what the stream, TCP, pipe and UDP files share. Never installed. */
#ifndef WEFT_IO_INTERNAL_H
#define WEFT_IO_INTERNAL_H

#include <sys/socket.h>

#include "core/internal.h"
#include "weft/future.h"
#include "weft/pipe.h"
#include "weft/stream.h"
#include "weft/tcp.h"
#include "weft/udp.h"

/* Stream flags (weft_stream.flags). */
enum {
  S_READING = 1u << 0,
  S_LISTENING = 1u << 1,
  S_CONNECTING = 1u << 2,
  S_CONNECTED = 1u << 3,  /* reads and writes allowed */
  S_SHUT_REQ = 1u << 4,   /* shutdown requested: no more writes */
  S_SHUT_DONE = 1u << 5,  /* shutdown performed, callback pending */
  S_SOCKET = 1u << 6,     /* use send/recv with MSG_NOSIGNAL */
  S_WM_ABOVE = 1u << 7,   /* told the producer to pause */
  S_ACCEPT_WAIT = 1u << 8, /* a connection waits for weft_stream_accept */
  S_ACCEPT_PAUSED = 1u << 9, /* accept hit EMFILE: retrying on a timer */
  S_CONNECT_DONE = 1u << 10, /* connect settled, callback pending */
  S_OWN_SOCKET = 1u << 11,   /* socket created by this call (for undo) */
};

/* How often a listener paused by EMFILE tries again (ms). */
#define WEFT__ACCEPT_RETRY_MS 20u

/* The loop's net state (module slot WEFT__MOD_NET). */
typedef struct weft__net {
  weft_loop *loop;
  char *slab;            /* the loop-provided read buffer */
  weft__list pending;    /* handles with completions to deliver */
  bool scheduled;        /* a delivery run is queued with call_soon */
  unsigned in_io;        /* inside a stream/UDP I/O callback */
  weft_write_req *free_wreqs;       /* for the future forms */
  weft_connect_req *free_creqs;
  weft_udp_send_req *free_sreqs;
  weft__list paused;     /* listeners paused by EMFILE */
  weft_timer accept_timer; /* retries paused listeners (internal, unref'd) */
} weft__net;

/* The state of `loop`, created on first use; NULL if out of memory. */
weft__net *weft__net_get(weft_loop *loop);
/* Settles a write or send request's future (the byte count it carried in
 * `data`, or the error) and drops the request's reference. */
void weft__net_settle(weft_future *f, int status, void *data);

/* Makes sure a delivery run is queued: call before accepting an operation
 * that may complete synchronously, so that its completion can always be
 * delivered later (no -ENOMEM after the fact). */
int weft__net_reserve(weft__net *net);

/* Brackets an I/O callback. Completions scheduled inside it are delivered
 * when it ends (the start calls have returned by then), without a
 * deferred run: the ping-pong fast path. */
static inline void weft__net_io_enter(weft__net *net) { net->in_io++; }
void weft__net_io_leave(weft__net *net);

/* Queues `h` (a stream or UDP handle) for delivery of its completions in
 * the run reserved with weft__net_reserve(). */
void weft__net_schedule(weft__net *net, weft_handle *h);

/* The pending-list node sits right after the handle base in every stream
 * and UDP handle. */
static inline weft__list *weft__pend_node(weft_handle *h) {
  return (weft__list *)(void *)((char *)h + sizeof(weft_handle));
}

/* A stream's fd (-1 if none). */
static inline int weft__stream_fd(const weft_stream *s) {
  const void *storage = &s->io;
  const ev_io *w = storage;
  return w->fd;
}

/* Streams (io/stream.c). */
void weft__stream_init(weft_loop *loop, weft_stream *s,
                       const weft__handle_ops *ops);
/* Takes `fd` (made non-blocking) with extra flags (S_SOCKET,
 * S_CONNECTED, ...). */
int weft__stream_set_fd(weft_stream *s, int fd, unsigned flags);
/* Closes the fd (if any) and resets the stream to its initial state. */
void weft__stream_reset(weft_stream *s);
void weft__stream_close(weft_handle *h);
void weft__stream_finish(weft_handle *h);
void weft__stream_deliver(weft_stream *s);
int weft__stream_listen(weft_stream *s, int backlog, weft_connection_cb cb);
/* Registers a connect: `immediate` 0 means connected already (completion
 * is scheduled), 1 means in progress. */
int weft__stream_connect(weft_stream *s, weft_connect_req *req,
                         weft_connect_cb cb, bool in_progress);
/* Fails every queued write with `status` (delivered from the loop). */
void weft__stream_abort_writes(weft_stream *s, int status);
/* A connect failed or was cancelled: queued writes and a pending shutdown
 * fail with `status`, the socket closes, the handle is back to INIT. */
void weft__stream_abort(weft_stream *s, int status);
/* Takes a listener out of its EMFILE pause and accepts what it can. */
void weft__stream_accept_resume(weft_stream *s);
/* Pauses listener `h` (accept hit EMFILE): it is retried on the net
 * state's timer, or at once when weft frees an fd (weft__net_fd_freed). */
void weft__net_accept_pause(weft__net *net, weft_handle *h);
/* Resumes listeners paused on EMFILE (an fd was just freed). */
void weft__net_fd_freed(weft_loop *loop);
void weft__udp_deliver(weft_udp *u);

/* Future forms: a pooled request that settles `f` on completion. */
void weft__connect_settle(weft_connect_req *req, int status);
void weft__future_cancel_connect(weft_future *f, void *arg);

/* Addresses (io/sockaddr.c). */
int weft__sockaddr_check(const struct sockaddr *addr, socklen_t *len);

#endif /* WEFT_IO_INTERNAL_H */
