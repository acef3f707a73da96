/* weft — UDP over IPv4 and IPv6.
 *
 * Receiving batches datagrams with recvmmsg(2): one system call fills up to
 * `batch` datagrams into the loop's 64 KiB buffer, cut into `batch` equal
 * slots (default 16 slots of 4 KiB). A datagram larger than its slot is
 * cut and flagged WEFT_UDP_TRUNCATED; for datagrams up to 64 KiB set the
 * batch to 1 (weft_udp_set_batch). Data is valid during the callback only.
 *
 * Sends are tried at once and queued only when the socket buffer is full;
 * their completion still comes later, from the loop. Loop thread only. */
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
 * datagram) from `addr`, with `flags` (WEFT_UDP_TRUNCATED). `nread` < 0 is
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
