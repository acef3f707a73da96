/* weft — TCP over IPv4 and IPv6, and socket-address helpers.
 *
 * A weft_tcp is a stream (weft_stream, see stream.h): read, write and
 * shut it down through &tcp->stream. The socket is created lazily by the
 * first bind or connect (with the address's family), or adopted with
 * weft_tcp_open().
 *
 * Accept survives fd exhaustion: when accept() fails with EMFILE or ENFILE
 * the listener pauses and retries on a short timer (and at once when a
 * weft stream closes), so pending clients wait in the backlog and are
 * served as soon as fds free up; the connection callback is not told.
 * Loop thread only. */
#ifndef WEFT_TCP_H
#define WEFT_TCP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A TCP handle; embed it anywhere. Use `stream` with the stream calls
 * and `stream.base` with weft_close(). */
typedef struct weft_tcp {
  weft_stream stream;
} weft_tcp;

/** Flags for weft_tcp_bind(). */
enum {
  WEFT_TCP_IPV6ONLY = 1u << 0,  /**< an AF_INET6 socket takes no IPv4 */
  WEFT_TCP_REUSEPORT = 1u << 1, /**< SO_REUSEPORT: several listeners share
                                   the port; the kernel spreads connections */
};

/** Initialises `t` on `loop`, without a socket yet. Returns 0 or -EINVAL.
 * Close it with weft_close(&t->stream.base, cb). */
WEFT_API int weft_tcp_init(weft_loop *loop, weft_tcp *t);

/** Adopts `fd`, an open TCP socket (connected, listening or fresh), which
 * the handle then owns (weft_close closes it). Made non-blocking. Returns
 * 0; -EINVAL for NULL, a negative fd or a handle that has a socket;
 * -ENOTSOCK; -EBADF. */
WEFT_API int weft_tcp_open(weft_tcp *t, int fd);

/** Binds to `addr` (AF_INET or AF_INET6; port 0 picks a free port; read it
 * back with weft_tcp_getsockname()). SO_REUSEADDR is always set; `flags`
 * takes WEFT_TCP_IPV6ONLY and WEFT_TCP_REUSEPORT. Returns 0; -EINVAL (NULL,
 * bad family, unknown flag, IPV6ONLY on IPv4, already bound/connected,
 * closing); -EADDRINUSE, -EADDRNOTAVAIL, ... from the kernel. */
WEFT_API int weft_tcp_bind(weft_tcp *t, const struct sockaddr *addr,
                           unsigned flags);

/** Listens; `cb` runs on the loop for each connection to accept (call
 * weft_stream_accept() there) or with a negative status on accept errors
 * other than fd exhaustion. A connection the callback leaves unaccepted
 * waits: the listener accepts nothing more until weft_stream_accept() or
 * weft_stream_accept_future(). `cb` may be NULL: connections are then
 * taken only by accept futures (stream.h), and wait in the backlog while
 * none is pending. `backlog` <= 0 means SOMAXCONN. Returns 0; -EINVAL for
 * NULL t, a closing, reading, connected or already listening handle or one
 * without a bound socket; errors of listen(2). */
WEFT_API int weft_tcp_listen(weft_tcp *t, int backlog, weft_connection_cb cb);

/** Connects to `addr` (AF_INET or AF_INET6). `cb` (may be NULL) runs
 * later, once, with 0, a negative errno (-ECONNREFUSED, ...), or
 * -ECANCELED if the handle closes first. On failure the socket is closed
 * and the handle is back to its initial state, so it may connect again
 * (a previous bind is lost). Keep `req` alive until `cb`. Returns 0;
 * -EINVAL (NULL t/req/addr, bad family, a closing, listening or connected
 * handle); -EALREADY if a connect is in progress; -ENOMEM; immediate
 * kernel errors (-ENETUNREACH, ...). On an error `cb` never runs; after
 * -ENOMEM or a kernel error the socket is closed (initial state). */
WEFT_API int weft_tcp_connect(weft_connect_req *req, weft_tcp *t,
                              const struct sockaddr *addr, weft_connect_cb cb);

/** Enables/disables TCP_NODELAY (Nagle off). Returns 0, -EINVAL (NULL,
 * no socket yet), or a kernel error. */
WEFT_API int weft_tcp_nodelay(weft_tcp *t, bool enable);

/** Enables/disables SO_KEEPALIVE; `delay_s` (> 0 when enabling) sets the
 * idle time before the first probe (TCP_KEEPIDLE). Returns 0, -EINVAL
 * (NULL, no socket yet, enable with delay 0), or a kernel error. */
WEFT_API int weft_tcp_keepalive(weft_tcp *t, bool enable, unsigned delay_s);

/** Most seconds weft_tcp_keepalive_ex() takes for `idle_s` and
 * `interval_s` (the kernel's limit, MAX_TCP_KEEPIDLE/MAX_TCP_KEEPINTVL). */
#define WEFT_TCP_KEEPALIVE_TIME_MAX 32767u
/** Most probes weft_tcp_keepalive_ex() takes for `count` (MAX_TCP_KEEPCNT). */
#define WEFT_TCP_KEEPALIVE_COUNT_MAX 127u

/** Keepalive with every knob, like libuv's uv_tcp_keepalive_ex(): enabling
 * sets SO_KEEPALIVE, the idle time before the first probe (`idle_s`,
 * TCP_KEEPIDLE), the time between probes (`interval_s`, TCP_KEEPINTVL) and
 * the probes that go unanswered before the connection is dropped (`count`,
 * TCP_KEEPCNT); the peer is then declared dead after about idle + interval
 * * count seconds and reads fail with -ETIMEDOUT. Disabling clears
 * SO_KEEPALIVE and ignores the other three (the values set before stay in
 * the socket and apply if keepalive is enabled again). Every value is
 * checked before any is set, so an error changes nothing. Returns 0;
 * -EINVAL for NULL, a handle with no socket yet or closing, or, when
 * enabling, `idle_s` or `interval_s` outside 1..WEFT_TCP_KEEPALIVE_TIME_MAX
 * or `count` outside 1..WEFT_TCP_KEEPALIVE_COUNT_MAX; a kernel error. */
WEFT_API int weft_tcp_keepalive_ex(weft_tcp *t, bool enable, unsigned idle_s,
                                   unsigned interval_s, unsigned count);

/** The local address into `*addr`; `*len` in: its size, out: the length
 * used. Returns 0, -EINVAL (NULL, no socket), or a kernel error. */
WEFT_API int weft_tcp_getsockname(const weft_tcp *t, struct sockaddr *addr,
                                  socklen_t *len);

/** The peer's address, like weft_tcp_getsockname(); -ENOTCONN without a
 * connection. */
WEFT_API int weft_tcp_getpeername(const weft_tcp *t, struct sockaddr *addr,
                                  socklen_t *len);

/** Resets the connection: closes `t` with SO_LINGER 0 so the peer gets
 * RST instead of FIN. Like weft_close() otherwise. */
WEFT_API int weft_tcp_close_reset(weft_tcp *t, weft_close_cb cb);

/** Connect, future form: returns 0 and stores in *out a new future (the
 * caller holds one reference) that fulfils with 0 when connected or
 * rejects with the connect error. Cancelling the future (for example
 * through a timeout combinator) aborts the connect: the socket closes and
 * the handle is back to its initial state. Errors as weft_tcp_connect()
 * (then no future is made), plus -ENOMEM. */
WEFT_API int weft_tcp_connect_future(weft_tcp *t, const struct sockaddr *addr,
                                     weft_future **out);

/* ---- addresses ---------------------------------------------------------- */

/** Fills `*out` from a dotted IPv4 string and a port. Returns 0 or -EINVAL. */
WEFT_API int weft_ip4_addr(const char *ip, unsigned port,
                           struct sockaddr_in *out);

/** Fills `*out` from an IPv6 string (with an optional "%scope") and a
 * port. Returns 0 or -EINVAL. */
WEFT_API int weft_ip6_addr(const char *ip, unsigned port,
                           struct sockaddr_in6 *out);

/** Writes the numeric host of `addr` (AF_INET or AF_INET6) into `dst`.
 * Returns 0, -EINVAL (NULL, bad family), or -ENOSPC if `size` is short. */
WEFT_API int weft_ip_name(const struct sockaddr *addr, char *dst, size_t size);

/** The port of an AF_INET/AF_INET6 address (host order), -EINVAL else. */
WEFT_API int weft_sockaddr_port(const struct sockaddr *addr);

/** The length of an AF_INET or AF_INET6 address, 0 for anything else. */
WEFT_API socklen_t weft_sockaddr_len(const struct sockaddr *addr);

/** Bytes of one idle TCP handle (sizeof(weft_tcp); weft allocates nothing
 * more per handle, but 16 bytes while weft_stream_set_watermarks() has
 * watermarks set on it). */
WEFT_API size_t weft_tcp_handle_size(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TCP_H */
