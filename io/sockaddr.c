/* weft — socket-address helpers. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

socklen_t weft_sockaddr_len(const struct sockaddr *addr) {
  if (addr == NULL) return 0;
  if (addr->sa_family == AF_INET) return sizeof(struct sockaddr_in);
  if (addr->sa_family == AF_INET6) return sizeof(struct sockaddr_in6);
  return 0;
}

int weft__sockaddr_check(const struct sockaddr *addr, socklen_t *len) {
  *len = weft_sockaddr_len(addr);
  return *len != 0 ? 0 : -EINVAL;
}

int weft__sock_setopt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int weft__sock_name(int fd, struct sockaddr *addr, socklen_t *len,
                    int (*fn)(int, struct sockaddr *, socklen_t *)) {
  if (fd < 0 || addr == NULL || len == NULL) return -EINVAL;
  return fn(fd, addr, len) < 0 ? -errno : 0;
}

int weft_ip4_addr(const char *ip, unsigned port, struct sockaddr_in *out) {
  if (ip == NULL || out == NULL || port > 65535) return -EINVAL;
  memset(out, 0, sizeof *out);
  out->sin_family = AF_INET;
  out->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, ip, &out->sin_addr) == 1 ? 0 : -EINVAL;
}

int weft_ip6_addr(const char *ip, unsigned port, struct sockaddr_in6 *out) {
  if (ip == NULL || out == NULL || port > 65535) return -EINVAL;
  memset(out, 0, sizeof *out);
  out->sin6_family = AF_INET6;
  out->sin6_port = htons((uint16_t)port);
  char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  const char *pct = strchr(ip, '%');
  size_t n = pct ? (size_t)(pct - ip) : strlen(ip);
  if (n >= INET6_ADDRSTRLEN) return -EINVAL;
  memcpy(host, ip, n);
  host[n] = '\0';
  if (pct != NULL) { /* a scope: an interface name or number */
    unsigned idx = if_nametoindex(pct + 1);
    char *end;
    if (idx == 0) idx = (unsigned)strtoul(pct + 1, &end, 10);
    if (idx == 0) return -EINVAL;
    out->sin6_scope_id = idx;
  }
  return inet_pton(AF_INET6, host, &out->sin6_addr) == 1 ? 0 : -EINVAL;
}

int weft_ip_name(const struct sockaddr *addr, char *dst, size_t size) {
  if (addr == NULL || dst == NULL) return -EINVAL;
  const void *src;
  if (addr->sa_family == AF_INET)
    src = &((const struct sockaddr_in *)(const void *)addr)->sin_addr;
  else if (addr->sa_family == AF_INET6)
    src = &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr;
  else
    return -EINVAL;
  if (size > UINT32_MAX) size = UINT32_MAX;
  return inet_ntop(addr->sa_family, src, dst, (socklen_t)size) ? 0 : -ENOSPC;
}

int weft_sockaddr_port(const struct sockaddr *addr) {
  if (addr == NULL) return -EINVAL;
  if (addr->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)(const void *)addr)->sin_port);
  if (addr->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)(const void *)addr)->sin6_port);
  return -EINVAL;
}
