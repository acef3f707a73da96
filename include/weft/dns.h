/* weft — asynchronous DNS through c-ares.
 *
 * One c-ares channel per loop, created on first use. Its sockets are libev
 * I/O watchers and its retransmission deadlines one weft timer, so a slow
 * name server never blocks the loop or the thread pool. That timer is an
 * internal, unreferenced handle, open only while a query waits for its
 * answer: weft_walk() shows it then, and it finishes closing in the close
 * phase of the turn in which the last answer was delivered. Numeric hosts
 * ("127.0.0.1", "::1", "fe80::1%lo") are answered by weft itself, without
 * a name server, still never inline. Names are looked up in /etc/hosts
 * first, then through DNS (weft_dns_use_hosts_file() can turn the first
 * step off); forward lookups read the hosts file from a per-loop table,
 * re-checked at most every WEFT_DNS_HOSTS_RECHECK_MS (see
 * weft_dns_set_hosts_file()). Results are weft-owned lists of
 * socket addresses. Failures are negative codes: -EINVAL and -ENOMEM as
 * usual, -ECANCELED for cancelled queries, and WEFT_EDNS_* (see common.h)
 * for what the resolver reports (WEFT_EDNS_NOTFOUND, WEFT_EDNS_TIMEOUT, ...).
 *
 * Every accepted query completes exactly once, never from inside the call
 * that started it, and keeps the loop alive until it does. weft_loop_free()
 * returns -EBUSY while a query is outstanding; weft_dns_cancel_all() (or
 * cancelling the futures) ends them. Loop thread only. */
#ifndef WEFT_DNS_H
#define WEFT_DNS_H

#include <netdb.h>
#include <sys/socket.h>

#include "loop.h"
#include "tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* <netdb.h> declares struct addrinfo only for POSIX builds; a strict C11
 * user (no _POSIX_C_SOURCE) still gets a file-scope declaration. */
struct addrinfo;

/** One resolved address. A list is one allocation, freed with
 * weft_freeaddrinfo(); `addr` points inside it. */
typedef struct weft_addrinfo {
  struct weft_addrinfo *next; /**< next address, NULL at the end */
  int family;                 /**< AF_INET or AF_INET6 */
  int socktype;               /**< SOCK_STREAM, SOCK_DGRAM, or 0 */
  int protocol;               /**< IPPROTO_TCP, IPPROTO_UDP, or 0 */
  socklen_t addrlen;          /**< bytes at `addr` */
  struct sockaddr *addr;      /**< the address, with the port filled in */
} weft_addrinfo;

/** Runs once per weft_getaddrinfo(): `status` is 0 and `res` a non-empty
 * list that the callback now owns (free it with weft_freeaddrinfo()), or
 * `status` is negative and `res` NULL. */
typedef void (*weft_getaddrinfo_cb)(int status, weft_addrinfo *res, void *arg);

/** The answer of weft_getnameinfo(): two NUL-terminated strings in one
 * allocation (the value of the future form, which owns it). */
typedef struct weft_nameinfo {
  const char *host;    /**< host name, or the numeric address */
  const char *service; /**< service name, or the numeric port */
} weft_nameinfo;

/** Runs once per weft_getnameinfo(): on success `host` and `service` are
 * NUL-terminated strings valid during the callback; on failure both are
 * NULL and `status` negative. */
typedef void (*weft_getnameinfo_cb)(int status, const char *host,
                                    const char *service, void *arg);

/** Resolves `host` (a name or a numeric address) and `service` (a port
 * number or a service name, or NULL for port 0) to socket addresses, like
 * getaddrinfo(3). `hints` may be NULL; weft reads ai_family (AF_UNSPEC,
 * AF_INET, AF_INET6), ai_socktype, ai_protocol and ai_flags (AI_PASSIVE,
 * AI_CANONNAME, AI_NUMERICHOST, AI_NUMERICSERV, AI_V4MAPPED, AI_ALL,
 * AI_ADDRCONFIG), and nothing else. A numeric `host` (an IPv4 literal
 * "a.b.c.d", or an IPv6 literal without brackets, optionally with a
 * "%scope" given as an interface name or index) is answered without
 * asking a name server: one address, with the hints' socktype and
 * protocol; an IPv4 literal asked as AF_INET6 is mapped with AI_V4MAPPED,
 * otherwise a literal of the other family fails with WEFT_EDNS_NODATA, and
 * an unknown scope with WEFT_EDNS_NONAME. With AI_NUMERICHOST a `host` that
 * is not numeric fails with WEFT_EDNS_NONAME, also without a name server.
 * An unknown service fails with WEFT_EDNS_NONAME. `cb(status, res, arg)`
 * runs later, once (also for numeric answers and those errors).
 * Returns 0 when the query was accepted; -EINVAL for a NULL loop, host or
 * cb, or unsupported hints; -ENOMEM (then cb never runs). */
WEFT_API int weft_getaddrinfo(weft_loop *loop, const char *host,
                              const char *service, const struct addrinfo *hints,
                              weft_getaddrinfo_cb cb, void *arg);

typedef struct weft_future weft_future;

/** The future form of weft_getaddrinfo(): on success stores in *out a new
 * future (the caller holds one reference) that is fulfilled with the
 * weft_addrinfo list as its value (owned by the future: read it with
 * weft_future_value(), do not free it) or rejected with the same codes the
 * callback would see. Cancelling the future abandons the query (-ECANCELED).
 * Returns 0, -EINVAL (as weft_getaddrinfo(), or NULL out), -ENOMEM. */
WEFT_API int weft_getaddrinfo_future(weft_loop *loop, const char *host,
                                     const char *service,
                                     const struct addrinfo *hints,
                                     weft_future **out);

/** Frees a list returned by weft_getaddrinfo(). NULL is ignored. */
WEFT_API void weft_freeaddrinfo(weft_addrinfo *res);

/** Finds the host name and service of `addr` (AF_INET or AF_INET6),
 * like getnameinfo(3). `flags` takes NI_NUMERICHOST, NI_NUMERICSERV,
 * NI_NOFQDN, NI_NAMEREQD, NI_DGRAM. `cb` runs later, once. Returns 0,
 * -EINVAL (NULL argument, bad family or length, unknown flag), -ENOMEM. */
WEFT_API int weft_getnameinfo(weft_loop *loop, const struct sockaddr *addr,
                              socklen_t addrlen, int flags,
                              weft_getnameinfo_cb cb, void *arg);

/** The future form of weft_getnameinfo(): fulfilled with a weft_nameinfo
 * block owned by the future, or rejected. Cancelling abandons the query.
 * Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_getnameinfo_future(weft_loop *loop,
                                     const struct sockaddr *addr,
                                     socklen_t addrlen, int flags,
                                     weft_future **out);

/** Sets the name servers of `loop`'s resolver, replacing the system's
 * (/etc/resolv.conf): a comma-separated list of "ip", "ip:port",
 * "[ipv6]:port". Applies to queries started afterwards. Returns 0;
 * -EINVAL for NULL or a malformed list; -EBUSY while a query waits for
 * its answer (cancelled ones do not count) and when called from a DNS
 * callback; -ENOMEM. */
WEFT_API int weft_dns_set_servers(weft_loop *loop, const char *servers);

/** Sets how long the resolver waits for one answer (`timeout_ms`, the
 * first try; c-ares doubles it per round) and how many times each server
 * is tried (`tries`). 0 keeps the current value (defaults: 2000 ms, 3
 * tries). Re-creates the loop's channel, keeping servers set with
 * weft_dns_set_servers(). Returns 0; -EINVAL for NULL or a timeout above
 * INT32_MAX; -EBUSY as weft_dns_set_servers(); -ENOMEM. */
WEFT_API int weft_dns_set_options(weft_loop *loop, uint64_t timeout_ms,
                                  unsigned tries);

/** Chooses whether `loop`'s resolver looks names up in /etc/hosts before
 * asking DNS (`use` true, the default) or asks DNS only (`use` false:
 * for tests and programs that must not depend on the machine's
 * /etc/hosts; c-ares 1.18 never sends "localhost" to a name server, so
 * it then fails with WEFT_EDNS_CONNREFUSED: use 127.0.0.1). Numeric
 * hosts are answered by weft either way. Applies to queries started
 * afterwards; servers and options set before are kept. Returns 0;
 * -EINVAL for a NULL loop; -EBUSY as weft_dns_set_servers(); -ENOMEM. */
WEFT_API int weft_dns_use_hosts_file(weft_loop *loop, bool use);

/** How stale a forward lookup's view of the hosts file may be, in ms of
 * loop time (weft_now()): the loop's table is re-validated (one stat() of
 * the file: device, inode, size, mtime, ctime) by the first forward lookup
 * that starts at least this long after the previous check, and re-read if
 * any of them changed. So an edit is seen by every lookup that starts
 * WEFT_DNS_HOSTS_RECHECK_MS or more after it (an edit that keeps all five
 * unchanged is not seen until another one changes them). */
#define WEFT_DNS_HOSTS_RECHECK_MS 1000

/** The caps of the hosts-file table: a file larger than
 * WEFT_DNS_HOSTS_MAX_BYTES, or naming more than WEFT_DNS_HOSTS_MAX_NAMES
 * names (canonical names and aliases, counted per line), is not loaded.
 * Forward lookups then fall back to c-ares reading /etc/hosts itself on
 * each lookup (the cost before the table existed); for a file set with
 * weft_dns_set_hosts_file() they fail with -EFBIG instead. A loaded
 * table takes the file's size plus at most 52 bytes per name (3.75 MiB at
 * most). */
#define WEFT_DNS_HOSTS_MAX_BYTES (1024 * 1024)
#define WEFT_DNS_HOSTS_MAX_NAMES 65536 /**< see WEFT_DNS_HOSTS_MAX_BYTES */

/** Makes `loop`'s forward lookups (weft_getaddrinfo() and its future
 * form, weft_tcp_connect_host()) read their hosts-file step from `path`
 * instead of /etc/hosts, like c-ares' CARES_HOSTS but per loop: for
 * tests, and for programs that ship their own file. `path` must be
 * absolute; "/etc/hosts" restores the default. The file is (re)read on
 * the next forward lookup and then re-validated as for /etc/hosts
 * (WEFT_DNS_HOSTS_RECHECK_MS); a missing or unreadable file holds no
 * names, and then "localhost" fails as c-ares fails it without a file.
 * Reverse lookups (weft_getnameinfo()) are not affected: c-ares reads
 * /etc/hosts for them. Has no effect while weft_dns_use_hosts_file(loop,
 * false) is in force, and takes effect again when it is undone. May be
 * called with queries outstanding (they keep the answers they have).
 * Returns 0; -EINVAL for a NULL loop or path, or a path that is empty or
 * not absolute; -ENAMETOOLONG for a path of PATH_MAX bytes or more;
 * -ENOMEM (the previous path stays). */
WEFT_API int weft_dns_set_hosts_file(weft_loop *loop, const char *path);

/** Completes every outstanding query of `loop` with -ECANCELED (callbacks
 * run later, in this turn's deferred phase; futures are cancelled at once).
 * Returns the number of queries cancelled, -EINVAL for NULL, -ENOMEM if
 * the deferred delivery could not be queued (then nothing changed). */
WEFT_API int weft_dns_cancel_all(weft_loop *loop);

/* ---- connecting by name ------------------------------------------------- */

/** Runs once when weft_tcp_connect_host() ends: `status` 0 (connected),
 * the last address's connect error, a DNS error (WEFT_EDNS_*), or
 * -ECANCELED if `t` was closed meanwhile. */
typedef void (*weft_connect_host_cb)(weft_tcp *t, int status, void *arg);

/** Resolves `host` (name or numeric address, the latter without a name
 * server; /etc/hosts first unless turned off with weft_dns_use_hosts_file())
 * and connects
 * `t` (initialised, without a socket) to each address in turn, in the
 * resolver's order, until one accepts; an attempt still pending after 1 s
 * is abandoned for the next address (the last one gets the kernel's own
 * timeout). Keep `t` alive until `cb` runs, later, once. Returns 0;
 * -EINVAL for NULL t/host/cb, a port above 65535, or a closing handle;
 * -ENOMEM. */
WEFT_API int weft_tcp_connect_host(weft_tcp *t, const char *host, unsigned port,
                                   weft_connect_host_cb cb, void *arg);

/** The future form of weft_tcp_connect_host(): *out (the caller's
 * reference) fulfils with 0 once connected or rejects with the error the
 * callback would get. Cancelling it stops the lookup or the connect in
 * progress (the handle is left without a socket). Returns 0, -EINVAL
 * (as above, or NULL out), -ENOMEM. */
WEFT_API int weft_tcp_connect_host_future(weft_tcp *t, const char *host,
                                          unsigned port, weft_future **out);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_DNS_H */
