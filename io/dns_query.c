/* weft — getaddrinfo and getnameinfo on the loop's c-ares channel, in
 * callback and future forms. The query lifecycle (who frees what, inline
 * answers, cancellation) lives in io/dns.c; this file validates input,
 * starts c-ares and copies its answers into weft-owned memory. */
#include <arpa/inet.h>
#include <string.h>

#include "io/dns_internal.h"

/* ---- answers ----------------------------------------------------------------- */

/* One list entry and its address, so a whole list is one allocation. */
typedef struct addr_entry {
  weft_addrinfo ai;
  union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } u;
} addr_entry;

void weft_freeaddrinfo(weft_addrinfo *res) { weft__free(res); }

static void free_addrinfo(void *res) { weft__free(res); }

void weft__dns_free_names(void *names) { weft__free(names); }

/* RFC 6724's default policy table, destination side: a higher precedence
 * is tried first. The source-address rules (1, 2, 5, ...) would need a
 * socket per address; connect_host tries every address anyway. */
static int precedence(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) return 35; /* ::ffff:0:0/96 */
  const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  static const uint8_t loopback[16] = {[15] = 1};
  if (memcmp(a, loopback, 16) == 0) return 50;
  if (a[0] == 0x20 && a[1] == 0x02) return 30;                 /* 6to4 */
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) return 5; /* Teredo */
  if ((a[0] & 0xfe) == 0xfc) return 3;                         /* ULA */
  if ((a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) || (a[0] == 0x3f && a[1] == 0xfe))
    return 1; /* site-local, 6bone */
  static const uint8_t zero12[12] = {0};
  if (memcmp(a, zero12, 12) == 0) return 1; /* IPv4-compatible */
  return 40;
}

/* Stable insertion sort of the entries, then relinked (lists are short). */
static void sort_by_precedence(addr_entry *e, size_t n) {
  for (size_t i = 1; i < n; i++) {
    addr_entry cur = e[i];
    int p = precedence(&cur.u.sa);
    size_t j = i;
    for (; j > 0 && precedence(&e[j - 1].u.sa) < p; j--) e[j] = e[j - 1];
    e[j] = cur;
  }
  for (size_t i = 0; i < n; i++) {
    e[i].ai.addr = &e[i].u.sa;
    e[i].ai.next = i + 1 < n ? &e[i + 1].ai : NULL;
  }
}

/* Copies c-ares' list; 0, -ENOMEM, or WEFT_EDNS_NODATA for no address. */
static int copy_addrinfo(const struct ares_addrinfo *ai, weft_addrinfo **out) {
  size_t n = 0;
  for (const struct ares_addrinfo_node *it = ai->nodes; it; it = it->ai_next)
    if (it->ai_addrlen <= sizeof(((addr_entry *)0)->u)) n++;
  if (n == 0) return WEFT_EDNS_NODATA;
  addr_entry *e = weft__calloc(n, sizeof *e);
  if (e == NULL) return -ENOMEM;
  size_t i = 0;
  for (const struct ares_addrinfo_node *it = ai->nodes; it; it = it->ai_next) {
    if (it->ai_addrlen > sizeof e->u) continue;
    e[i].ai = (weft_addrinfo){i + 1 < n ? &e[i + 1].ai : NULL, it->ai_family,
                              it->ai_socktype, it->ai_protocol,
                              (socklen_t)it->ai_addrlen, &e[i].u.sa};
    memcpy(&e[i].u, it->ai_addr, it->ai_addrlen);
    i++;
  }
  sort_by_precedence(e, n);
  *out = &e[0].ai;
  return 0;
}

static void on_addrinfo(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res) {
  WEFT__UNUSED(timeouts);
  dns_query *q = arg;
  int err = weft__dns_status(status);
  if (err == 0 && !q->done)
    err = res != NULL ? copy_addrinfo(res, &q->res) : WEFT_EDNS_NODATA;
  if (res != NULL) ares_freeaddrinfo(res);
  weft__dns_answered(q, err);
}

static int copy_names(const char *host, const char *serv, weft_nameinfo **out) {
  host = host ? host : "";
  serv = serv ? serv : "";
  size_t hl = strlen(host) + 1, sl = strlen(serv) + 1;
  /* c-ares 1.18 appends "%0" to numeric IPv6 hosts without a scope;
   * getnameinfo(3) does not, and '%' never occurs in a host name */
  if (hl > 3 && strcmp(host + hl - 3, "%0") == 0) hl -= 2;
  weft_nameinfo *ni = weft__malloc(sizeof *ni + hl + sl);
  if (ni == NULL) return -ENOMEM;
  char *p = (char *)(ni + 1);
  memcpy(p, host, hl - 1);
  p[hl - 1] = '\0';
  memcpy(p + hl, serv, sl);
  ni->host = p;
  ni->service = p + hl;
  *out = ni;
  return 0;
}

static void on_nameinfo(void *arg, int status, int timeouts, char *node,
                        char *service) {
  WEFT__UNUSED(timeouts);
  dns_query *q = arg;
  int err = weft__dns_status(status);
  if (err == 0 && !q->done) err = copy_names(node, service, &q->names);
  weft__dns_answered(q, err);
}

/* ---- input ------------------------------------------------------------------- */

static int convert_hints(const struct addrinfo *h, struct ares_addrinfo_hints *o) {
  static const struct { int ai, ares; } flags[] = {
      {AI_PASSIVE, ARES_AI_PASSIVE},         {AI_CANONNAME, ARES_AI_CANONNAME},
      {AI_NUMERICHOST, ARES_AI_NUMERICHOST}, {AI_NUMERICSERV, ARES_AI_NUMERICSERV},
      {AI_V4MAPPED, ARES_AI_V4MAPPED},       {AI_ALL, ARES_AI_ALL},
      {AI_ADDRCONFIG, ARES_AI_ADDRCONFIG}};
  memset(o, 0, sizeof *o);
  o->ai_family = AF_UNSPEC;
  /* c-ares' RFC 6724 sort opens, connects and closes a UDP socket per
   * address to learn its source address: 4 syscalls per address, most of
   * a lookup's cost. weft sorts by destination precedence instead
   * (sort_by_precedence) */
  o->ai_flags = ARES_AI_NOSORT;
  if (h == NULL) return 0;
  if (h->ai_family != AF_UNSPEC && h->ai_family != AF_INET &&
      h->ai_family != AF_INET6)
    return -EINVAL;
  int rest = h->ai_flags;
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    if (rest & flags[i].ai) {
      o->ai_flags |= flags[i].ares;
      rest &= ~flags[i].ai;
    }
  if (rest != 0 || h->ai_socktype < 0 || h->ai_protocol < 0) return -EINVAL;
  o->ai_family = h->ai_family;
  o->ai_socktype = h->ai_socktype;
  o->ai_protocol = h->ai_protocol;
  return 0;
}

static int convert_ni_flags(int flags, int *out) {
  static const struct { int ni, ares; } map[] = {
      {NI_NUMERICHOST, ARES_NI_NUMERICHOST}, {NI_NUMERICSERV, ARES_NI_NUMERICSERV},
      {NI_NOFQDN, ARES_NI_NOFQDN},           {NI_NAMEREQD, ARES_NI_NAMEREQD},
      {NI_DGRAM, ARES_NI_DGRAM}};
  int o = ARES_NI_LOOKUPHOST | ARES_NI_LOOKUPSERVICE;
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (flags & map[i].ni) {
      o |= map[i].ares;
      flags &= ~map[i].ni;
    }
  *out = o;
  return flags == 0 ? 0 : -EINVAL;
}

static int check_sockaddr(const struct sockaddr *sa, socklen_t len) {
  if (sa == NULL) return -EINVAL;
  if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) return 0;
  if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) return 0;
  return -EINVAL;
}

/* ---- starting ---------------------------------------------------------------- */

typedef struct gai_args {
  const char *host, *service;
  struct ares_addrinfo_hints hints;
} gai_args;

typedef struct gni_args {
  struct sockaddr_in6 sa; /* big enough for both families */
  socklen_t len;
  int flags;
} gni_args;

/* Starts q in c-ares; 0 or -ENOMEM (q freed). */
static int start_query(dns_query *q, const void *args) {
  if (q->kind == DNS_ADDR) {
    const gai_args *a = args;
    ares_getaddrinfo(q->st->ch, a->host, a->service, &a->hints, on_addrinfo, q);
  } else {
    const gni_args *a = args;
    ares_getnameinfo(q->st->ch, (const struct sockaddr *)&a->sa,
                     (ares_socklen_t)a->len, a->flags, on_nameinfo, q);
  }
  return weft__dns_query_accept(q);
}

static void on_future_cancel(weft_future *f, void *arg) {
  dns_query *q = arg;
  weft__dns_query_cancel(q);
  weft_future_unref(f); /* the producer's reference */
}

/* Cancels q's future, whose hook abandons q. Should the future have been
 * settled behind the producer's back, q is abandoned here all the same. */
void weft__dns_future_cancel(dns_query *q) {
  weft_future *f = q->fut;
  if (weft_future_cancel(f) != 0 && !q->done) on_future_cancel(f, q);
}

void weft__dns_settle(dns_query *q, int status, weft_addrinfo *res,
                      weft_nameinfo *names) {
  weft_future *f = q->fut;
  q->fut = NULL;
  if (status != 0) {
    weft_future_reject(f, status);
  } else if (q->kind == DNS_ADDR) {
    if (weft_future_resolve(f, res, free_addrinfo) != 0) weft__free(res);
  } else if (weft_future_resolve(f, names, weft__dns_free_names) != 0) {
    weft__free(names);
  }
  weft_future_unref(f);
}

/* Shared by the four entry points: `cb` set for the callback form, `out`
 * for the future form. */
static int query_run(weft_loop *loop, dns_kind kind, const void *args,
                     void (*cb)(void), void *arg, weft_future **out) {
  dns_state *st;
  int err = weft__dns_state(loop, &st);
  if (err != 0) return err;
  weft_future *f = NULL;
  if (out != NULL && (err = weft_future_new(loop, &f)) != 0) return err;
  dns_query *q = weft__dns_query_new(st, kind);
  if (q == NULL) goto nomem;
  if (f != NULL) {
    if (weft_future_on_cancel(f, on_future_cancel, q) != 0) {
      weft__dns_query_discard(q);
      goto nomem;
    }
    q->fut = weft_future_ref(f);
  } else if (kind == DNS_ADDR) {
    q->cb.addr = (weft_getaddrinfo_cb)cb;
  } else {
    q->cb.name = (weft_getnameinfo_cb)cb;
  }
  q->arg = arg;
  if (start_query(q, args) != 0) {
    if (f != NULL) weft_future_unref(f); /* the producer's */
    goto nomem;
  }
  if (out != NULL) *out = f;
  return 0;
nomem:
  if (f != NULL) weft_future_unref(f);
  return -ENOMEM;
}

static int gai_prepare(const char *host, const char *service,
                       const struct addrinfo *hints, gai_args *a) {
  if (host == NULL) return -EINVAL;
  a->host = host;
  a->service = service;
  return convert_hints(hints, &a->hints);
}

int weft_getaddrinfo(weft_loop *loop, const char *host, const char *service,
                     const struct addrinfo *hints, weft_getaddrinfo_cb cb,
                     void *arg) {
  gai_args a;
  if (loop == NULL || cb == NULL) return -EINVAL;
  int err = gai_prepare(host, service, hints, &a);
  if (err != 0) return err;
  return query_run(loop, DNS_ADDR, &a, (void (*)(void))cb, arg, NULL);
}

int weft_getaddrinfo_future(weft_loop *loop, const char *host,
                            const char *service, const struct addrinfo *hints,
                            weft_future **out) {
  gai_args a;
  if (loop == NULL || out == NULL) return -EINVAL;
  int err = gai_prepare(host, service, hints, &a);
  if (err != 0) return err;
  return query_run(loop, DNS_ADDR, &a, NULL, NULL, out);
}

static int gni_prepare(const struct sockaddr *addr, socklen_t len, int flags,
                       gni_args *a) {
  int err = check_sockaddr(addr, len);
  if (err == 0) err = convert_ni_flags(flags, &a->flags);
  if (err != 0) return err;
  memset(&a->sa, 0, sizeof a->sa);
  a->len = addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                      : sizeof(struct sockaddr_in6);
  memcpy(&a->sa, addr, a->len);
  return 0;
}

int weft_getnameinfo(weft_loop *loop, const struct sockaddr *addr,
                     socklen_t addrlen, int flags, weft_getnameinfo_cb cb,
                     void *arg) {
  gni_args a;
  if (loop == NULL || cb == NULL) return -EINVAL;
  int err = gni_prepare(addr, addrlen, flags, &a);
  if (err != 0) return err;
  return query_run(loop, DNS_NAME, &a, (void (*)(void))cb, arg, NULL);
}

int weft_getnameinfo_future(weft_loop *loop, const struct sockaddr *addr,
                            socklen_t addrlen, int flags, weft_future **out) {
  gni_args a;
  if (loop == NULL || out == NULL) return -EINVAL;
  int err = gni_prepare(addr, addrlen, flags, &a);
  if (err != 0) return err;
  return query_run(loop, DNS_NAME, &a, NULL, NULL, out);
}
