/* weft — UDP socket options (broadcast, multicast TTL, loop, interface and
 * membership, IPv4 or IPv6 by the socket's family) and the socket's names.
 * The handle itself, sending and receiving are in io/udp.c. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "udp_internal.h"

/* ---- options
 * ----------------------------------------------------------------- */

static int sock_family(const weft_udp *u) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(weft__udp_fd(u), (struct sockaddr *)&ss, &len) < 0)
    return -errno;
  return ss.ss_family;
}

int weft_udp_set_broadcast(weft_udp *u, bool on) {
  if (!weft__udp_usable(u) || weft__udp_fd(u) < 0) return -EINVAL;
  return weft__sock_setopt(weft__udp_fd(u), SOL_SOCKET, SO_BROADCAST, on);
}

int weft_udp_set_multicast_ttl(weft_udp *u, int ttl) {
  if (!weft__udp_usable(u) || weft__udp_fd(u) < 0 || ttl < 0 || ttl > 255)
    return -EINVAL;
  if (sock_family(u) == AF_INET6)
    return weft__sock_setopt(weft__udp_fd(u), IPPROTO_IPV6, IPV6_MULTICAST_HOPS,
                             ttl);
  return weft__sock_setopt(weft__udp_fd(u), IPPROTO_IP, IP_MULTICAST_TTL, ttl);
}

int weft_udp_set_multicast_loop(weft_udp *u, bool on) {
  if (!weft__udp_usable(u) || weft__udp_fd(u) < 0) return -EINVAL;
  if (sock_family(u) == AF_INET6)
    return weft__sock_setopt(weft__udp_fd(u), IPPROTO_IPV6, IPV6_MULTICAST_LOOP,
                             on);
  return weft__sock_setopt(weft__udp_fd(u), IPPROTO_IP, IP_MULTICAST_LOOP, on);
}

/* An IPv6 interface: a decimal index or a name; 0 for NULL. */
static int if_index(const char *iface, unsigned *out) {
  *out = 0;
  if (iface == NULL) return 0;
  char *end;
  unsigned long v = strtoul(iface, &end, 10);
  if (*iface != '\0' && *end == '\0')
    *out = (unsigned)v;
  else
    *out = if_nametoindex(iface);
  return *out != 0 ? 0 : -EINVAL;
}

int weft_udp_set_multicast_interface(weft_udp *u, const char *iface) {
  if (!weft__udp_usable(u) || weft__udp_fd(u) < 0) return -EINVAL;
  if (sock_family(u) == AF_INET6) {
    unsigned idx;
    if (if_index(iface, &idx) != 0) return -EINVAL;
    return weft__sock_setopt(weft__udp_fd(u), IPPROTO_IPV6, IPV6_MULTICAST_IF,
                             (int)idx);
  }
  struct in_addr a = {htonl(INADDR_ANY)};
  if (iface != NULL && inet_pton(AF_INET, iface, &a) != 1) return -EINVAL;
  return setsockopt(weft__udp_fd(u), IPPROTO_IP, IP_MULTICAST_IF, &a,
                    sizeof a) < 0
             ? -errno
             : 0;
}

static int membership6(weft_udp *u, const char *group, const char *iface,
                       bool join) {
  struct ipv6_mreq m;
  memset(&m, 0, sizeof m);
  unsigned idx;
  if (inet_pton(AF_INET6, group, &m.ipv6mr_multiaddr) != 1 ||
      if_index(iface, &idx) != 0)
    return -EINVAL;
  m.ipv6mr_interface = idx;
  int opt = join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP;
  return setsockopt(weft__udp_fd(u), IPPROTO_IPV6, opt, &m, sizeof m) < 0
             ? -errno
             : 0;
}

int weft_udp_set_membership(weft_udp *u, const char *group, const char *iface,
                            bool join) {
  if (!weft__udp_usable(u) || weft__udp_fd(u) < 0 || group == NULL)
    return -EINVAL;
  if (sock_family(u) == AF_INET6) return membership6(u, group, iface, join);
  struct ip_mreq m;
  memset(&m, 0, sizeof m);
  m.imr_interface.s_addr = htonl(INADDR_ANY);
  if (inet_pton(AF_INET, group, &m.imr_multiaddr) != 1 ||
      (iface != NULL && inet_pton(AF_INET, iface, &m.imr_interface) != 1))
    return -EINVAL;
  int opt = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
  return setsockopt(weft__udp_fd(u), IPPROTO_IP, opt, &m, sizeof m) < 0 ? -errno
                                                                        : 0;
}

static int name_of(const weft_udp *u, struct sockaddr *addr, socklen_t *len,
                   int (*fn)(int, struct sockaddr *, socklen_t *)) {
  if (u == NULL || u->base.ops != &weft__udp_ops) return -EINVAL;
  return weft__sock_name(weft__udp_fd(u), addr, len, fn);
}

int weft_udp_getsockname(const weft_udp *u, struct sockaddr *addr,
                         socklen_t *len) {
  return name_of(u, addr, len, getsockname);
}

int weft_udp_getpeername(const weft_udp *u, struct sockaddr *addr,
                         socklen_t *len) {
  return name_of(u, addr, len, getpeername);
}
