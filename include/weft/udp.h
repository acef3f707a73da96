/* weft — UDP over IPv4 and IPv6.
 *
 * Receiving batches datagrams with recvmmsg(2): one system call fills up to
 * `batch` datagrams into the loop's 64 KiB buffer, cut into `batch` equal
 * slots (default 16 slots of 4 KiB). A datagram larger than its slot is
 * cut and flagged WEFT_UDP_TRUNCATED; for datagrams up to 64 KiB set the
 * batch to 1 (weft_udp_set_batch). Data is valid during the callback only.
 *
 * Sends are tried at once and queued only when the socket buffer is full;
 * their completion still comes later, from the loop. Batches of datagrams
 * go out with sendmmsg(2), one system call for up to WEFT_UDP_BATCH_MAX
 * of them (weft_udp_send_batch, weft_udp_try_send_batch);
 * weft_udp_try_send() sends now or says -EAGAIN, never queueing.
 *
 * Unix datagram sockets: weft_udp_bind_unix() and weft_udp_connect_unix()
 * make the handle an AF_UNIX SOCK_DGRAM socket, named by a path or by an
 * abstract name (a leading NUL). Everything else works as for IP: sends
 * take a whole struct sockaddr_un as the address (an AF_UNIX address on an
 * IP handle, or an IP one on a Unix handle, is -EINVAL), and the receive
 * callback and
 * weft_udp_recv_future() give the sender's struct sockaddr_un, its name
 * zero-padded to the end of the struct (so a path is a NUL-terminated
 * string). An abstract name is the bytes after the leading NUL up to the
 * next NUL, on sends and receives alike: it cannot hold a NUL byte. A
 * datagram from a socket that has no name (never bound) comes with a NULL
 * address (the receive future's `from` has ss_family AF_UNSPEC).
 * Loop thread only. */
#ifndef WEFT_UDP_H
#define WEFT_UDP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_udp weft_udp;
typedef struct weft_udp_send_req weft_udp_send_req;

/** Flags given to the receive callback. */
enum {
  WEFT_UDP_TRUNCATED = 1u << 0, /**< the datagram was larger than its slot */
};

/** Flags for weft_udp_bind(). */
enum {
  WEFT_UDP_IPV6ONLY = 1u << 0,  /**< an AF_INET6 socket takes no IPv4 */
  WEFT_UDP_REUSEADDR = 1u << 1, /**< SO_REUSEADDR and SO_REUSEPORT */
};

/** A datagram arrived: `nread` >= 0 bytes at buf->base (0 is an empty
 * datagram) from `addr` (NULL from an unnamed Unix socket), with `flags`
 * (WEFT_UDP_TRUNCATED). `nread` < 0 is
 * a receive error (e.g. -ECONNREFUSED after sending to a closed port on a
 * connected socket), with `buf` and `addr` NULL; receiving goes on. */
typedef void (*weft_udp_recv_cb)(weft_udp *u, ssize_t nread,
                                 const weft_buf *buf,
                                 const struct sockaddr *addr, unsigned flags);

/** A send finished: 0, a negative errno, or -ECANCELED (close). */
typedef void (*weft_udp_send_cb)(weft_udp_send_req *req, int status);

/** A send request; embed it anywhere; keep it and the buffers alive until
 * its callback. `data` is yours; the rest is private. */
struct weft_udp_send_req {
  void *data;
  /* private */
  weft__req_hdr req;
  weft_udp *udp;
  weft_udp_send_cb cb;
  weft_buf *bufs;
  unsigned nbufs;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  weft_buf inline_bufs[WEFT__WRITE_INLINE_BUFS];
};

/** Most datagrams one batch call takes (the kernel's UIO_MAXIOV). */
#define WEFT_UDP_BATCH_MAX 1024u

/** One datagram of a batch: `nbufs` (1..IOV_MAX) buffers sent as one
 * datagram to `addr` (NULL on a connected handle, else an AF_INET,
 * AF_INET6 or, on a Unix handle, AF_UNIX address). */
typedef struct weft_udp_dgram {
  const weft_buf *bufs;
  unsigned nbufs;
  const struct sockaddr *addr;
} weft_udp_dgram;

typedef struct weft_udp_batch_req weft_udp_batch_req;

/** A batch finished: `sent` datagrams (the first ones, in order) went to
 * the kernel. `status` is 0 when all did, else the error of datagram
 * number `sent` (a negative errno; the rest were not tried) or -ECANCELED
 * (the handle closed first: `sent` tells what went before). */
typedef void (*weft_udp_batch_cb)(weft_udp_batch_req *req, int status,
                                  unsigned sent);

/** A batch request; embed it anywhere; keep it, the weft_udp_dgram array,
 * its buffer arrays, buffers and addresses alive until its callback.
 * `data` is yours; the rest is private. */
struct weft_udp_batch_req {
  void *data;
  /* private */
  weft__req_hdr req;
  weft_udp *udp;
  weft_udp_batch_cb cb;
  const weft_udp_dgram *dgrams;
  unsigned n, sent;
};

/** A UDP handle; embed it anywhere. Fields after `base` are private. */
struct weft_udp {
  weft_handle base;
  /* private */
  struct {
    void *p_[2];
  } pend;
  union {
    void *p_[6];
    uint64_t u_[6];
  } io; /* struct ev_io */
  weft_udp_recv_cb recv_cb;
  struct {
    void *p_[2];
  } sq; /* sends waiting for the socket (weft__list) */
  struct {
    void *p_[2];
  } done; /* sent, callback pending */
  size_t sq_count;
  unsigned flags;
  unsigned batch;
  unsigned vlen;   /* datagrams asked of the next recvmmsg (adapts) */
  weft_future *rf; /* a pending weft_udp_recv_future(), or NULL */
  void *rf_base;
  size_t rf_len;
  struct sockaddr_storage *rf_from;
};

/** Initialises `u` on `loop`, without a socket. Returns 0 or -EINVAL. */
WEFT_API int weft_udp_init(weft_loop *loop, weft_udp *u);

/** Binds to `addr` (AF_INET or AF_INET6; port 0 picks one). Returns 0;
 * -EINVAL (NULL, bad family, unknown flag, already bound, closing); kernel
 * errors (-EADDRINUSE, ...). */
WEFT_API int weft_udp_bind(weft_udp *u, const struct sockaddr *addr,
                           unsigned flags);

/** Sets the default peer (sends may then pass a NULL address and only its
 * datagrams are received); `addr` NULL removes it. Binds to an ephemeral
 * port first if needed. Returns 0; -EINVAL; kernel errors. */
WEFT_API int weft_udp_connect(weft_udp *u, const struct sockaddr *addr);

/** Sends one datagram made of `nbufs` buffers to `addr` (NULL on a
 * connected handle). Binds to an ephemeral port first if needed. `cb` (may
 * be NULL) runs later, once, with 0, a negative errno or -ECANCELED.
 * Returns 0 if accepted; -EINVAL (NULL req/u/bufs, nbufs 0, bad address,
 * an address on a connected handle or none on an unconnected one,
 * closing); -ENOMEM. */
WEFT_API int weft_udp_send(weft_udp_send_req *req, weft_udp *u,
                           const weft_buf *bufs, unsigned nbufs,
                           const struct sockaddr *addr, weft_udp_send_cb cb);

/** Send, future form: *out (one reference for the caller) fulfils with
 * the datagram's size or rejects with the send error or -ECANCELED
 * (cancelling a queued send takes it out of the queue). Errors as
 * weft_udp_send(), plus -EINVAL for NULL out. */
WEFT_API int weft_udp_send_future(weft_udp *u, const weft_buf *bufs,
                                  unsigned nbufs, const struct sockaddr *addr,
                                  weft_future **out);

/** Sends `n` datagrams (1..WEFT_UDP_BATCH_MAX) in order, as many per
 * sendmmsg(2) call as the socket buffer takes; what does not fit waits in
 * the send queue (behind earlier sends) until the socket is writable.
 * Binds to an ephemeral port first if needed. `cb` (may be NULL) runs
 * later, once, with how many were sent (see weft_udp_batch_cb). Returns 0
 * if accepted; -EINVAL (NULL req, u or dgrams, n 0 or above the maximum,
 * any datagram invalid as for weft_udp_send(): then none is sent,
 * closing); -ENOMEM; a kernel error making the socket. */
WEFT_API int weft_udp_send_batch(weft_udp_batch_req *req, weft_udp *u,
                                 const weft_udp_dgram *dgrams, unsigned n,
                                 weft_udp_batch_cb cb);

/** Batch, future form: like weft_udp_send_batch() without a request; the
 * array and what it points to stay the caller's and must live until the
 * future settles. *out (one reference for the caller) fulfils with `n`
 * (an int64) once all are sent, or rejects with the error of the first
 * that failed (the count is then in the callback form only) or
 * -ECANCELED; cancelling takes a batch still queued out of the queue (the
 * datagrams already sent stay sent). Errors as weft_udp_send_batch(),
 * plus -EINVAL for NULL out. */
WEFT_API int weft_udp_send_batch_future(weft_udp *u,
                                        const weft_udp_dgram *dgrams,
                                        unsigned n, weft_future **out);

/** Sends one datagram now or not at all, like libuv's uv_udp_try_send():
 * no request, no callback, no queueing. Returns the bytes sent; -EAGAIN
 * if the socket buffer is full or sends are queued (they go first: order
 * is kept); -EINVAL as weft_udp_send(); kernel errors (-EMSGSIZE,
 * -ECONNREFUSED, ...). Binds to an ephemeral port first if needed. */
WEFT_API int weft_udp_try_send(weft_udp *u, const weft_buf *bufs,
                               unsigned nbufs, const struct sockaddr *addr);

/** Sends what fits now of `n` datagrams (1..WEFT_UDP_BATCH_MAX) with
 * sendmmsg(2), never queueing. Returns how many were sent, the first ones
 * in order (fewer than `n` when the socket buffer filled or datagram
 * number <return> failed: calling again with the rest gives its error);
 * -EAGAIN if none could be sent now (or sends are queued); the first
 * datagram's error if it failed; -EINVAL as weft_udp_send_batch() (then
 * none is sent). */
WEFT_API int weft_udp_try_send_batch(weft_udp *u, const weft_udp_dgram *dgrams,
                                     unsigned n);

/** Binds the handle as a Unix datagram socket (AF_UNIX, SOCK_DGRAM) to
 * `name`, `len` bytes as weft_pipe_bind() takes them (0: strlen(name); a
 * leading NUL makes it an abstract name, which then needs `len`). The
 * file a path name creates is not removed at close. Returns 0; -EINVAL
 * (NULL u or name, empty name, a socket already there, closing);
 * -ENAMETOOLONG; -EADDRINUSE and other kernel errors (the handle is then
 * as before). */
WEFT_API int weft_udp_bind_unix(weft_udp *u, const char *name, size_t len);

/** Sets the default peer of a Unix datagram handle to the socket bound at
 * `name` (`len` as weft_udp_bind_unix()); makes an unbound AF_UNIX socket
 * first if the handle has none (then no peer can reply to it). Returns 0;
 * -EINVAL (NULL, empty name, a socket that is not AF_UNIX, closing);
 * -ENAMETOOLONG; -ENOENT, -ECONNREFUSED, -EPERM (the peer connected
 * elsewhere) and other kernel errors. */
WEFT_API int weft_udp_connect_unix(weft_udp *u, const char *name, size_t len);

/** Starts receiving into the loop's buffer; `cb` runs per datagram.
 * Returns 0; -EINVAL (NULL, closing, not bound); -EBUSY while a
 * weft_udp_recv_future() is pending; -ENOMEM. */
WEFT_API int weft_udp_recv_start(weft_udp *u, weft_udp_recv_cb cb);

/** Receives one datagram, future form: the datagram is copied into the
 * caller's `base` (`len` bytes; a longer datagram is cut to `len`, the
 * rest lost) and *out (one reference for the caller) fulfils with the
 * number of bytes stored (int64, 0 for an empty datagram). If `from` is
 * not NULL the sender's address is written there; `base` and `from` must
 * stay valid until the future settles. It rejects with a receive error
 * (e.g. -ECONNREFUSED on a connected handle) or -ECANCELED when the handle
 * closes. Cancelling it stops waiting; the handle stays usable and no
 * datagram is consumed. One at a time per handle, and not with
 * weft_udp_recv_start(). Returns 0; -EINVAL (NULL u or out, NULL base
 * with len > 0, closing, not bound); -EBUSY (recv_start active or another
 * receive future pending); -ENOMEM. */
WEFT_API int weft_udp_recv_future(weft_udp *u, void *base, size_t len,
                                  struct sockaddr_storage *from,
                                  weft_future **out);

/** Stops receiving. Returns 0 or -EINVAL. */
WEFT_API int weft_udp_recv_stop(weft_udp *u);

/** Datagrams per recvmmsg() call, 1..64 (default 16); each gets a
 * 64 KiB / batch slot. Returns 0 or -EINVAL. */
WEFT_API int weft_udp_set_batch(weft_udp *u, unsigned batch);

/** Sends waiting for room in the socket buffer (0 for NULL). */
WEFT_API size_t weft_udp_send_queue_count(const weft_udp *u);

/** SO_BROADCAST on/off. Returns 0, -EINVAL (NULL, no socket), or errno. */
WEFT_API int weft_udp_set_broadcast(weft_udp *u, bool on);

/** Multicast TTL / hop limit (0..255). Returns 0, -EINVAL, or errno. */
WEFT_API int weft_udp_set_multicast_ttl(weft_udp *u, int ttl);

/** Whether multicast sends loop back to this host. 0, -EINVAL or errno. */
WEFT_API int weft_udp_set_multicast_loop(weft_udp *u, bool on);

/** The interface for outgoing multicast: an address of the interface
 * (IPv4) or an interface index as a decimal string (IPv6); NULL for the
 * default. Returns 0, -EINVAL, or errno. */
WEFT_API int weft_udp_set_multicast_interface(weft_udp *u, const char *iface);

/** Joins (`join` true) or leaves the multicast group `group` on the
 * interface `iface` (NULL: any; IPv4 address of the interface, or for IPv6
 * an index as a decimal string). Returns 0; -EINVAL (NULL, bad address,
 * no socket); kernel errors. */
WEFT_API int weft_udp_set_membership(weft_udp *u, const char *group,
                                     const char *iface, bool join);

/** The local address, like weft_tcp_getsockname(). */
WEFT_API int weft_udp_getsockname(const weft_udp *u, struct sockaddr *addr,
                                  socklen_t *len);

/** The default peer, like weft_tcp_getpeername(); -ENOTCONN if none. */
WEFT_API int weft_udp_getpeername(const weft_udp *u, struct sockaddr *addr,
                                  socklen_t *len);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_UDP_H */
