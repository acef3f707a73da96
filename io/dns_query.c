/* weft — getaddrinfo and getnameinfo on the loop's c-ares channel, in
 * callback and future forms. The query lifecycle (who frees what, inline
 * answers, cancellation) lives in io/dns.c; this file validates input,
 * starts c-ares and copies its answers into weft-owned memory. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "io/dns_internal.h"

/* ---- answers
 * ----------------------------------------------------------------- */

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
  if (a[0] == 0x20 && a[1] == 0x02) return 30; /* 6to4 */
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0)
    return 5;                          /* Teredo */
  if ((a[0] & 0xfe) == 0xfc) return 3; /* ULA */
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
    for (; j > 0 && precedence(&e[j - 1].u.sa) < p; j--)
      e[j] = e[j - 1];
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
    e[i].ai = (weft_addrinfo){i + 1 < n ? &e[i + 1].ai : NULL,
                              it->ai_family,
                              it->ai_socktype,
                              it->ai_protocol,
                              (socklen_t)it->ai_addrlen,
                              &e[i].u.sa};
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
  weft__dns_query *q = arg;
  int err = weft__dns_answer_status(q->st, status);
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
  weft__dns_query *q = arg;
  int err = weft__dns_answer_status(q->st, status);
  if (err == 0 && !q->done) err = copy_names(node, service, &q->names);
  weft__dns_answered(q, err);
}

/* ---- input
 * ------------------------------------------------------------------- */

static int convert_hints(const struct addrinfo *h,
                         struct ares_addrinfo_hints *o) {
  static const struct {
    int ai, ares;
  } flags[] = {{AI_PASSIVE, ARES_AI_PASSIVE},
               {AI_CANONNAME, ARES_AI_CANONNAME},
               {AI_NUMERICHOST, ARES_AI_NUMERICHOST},
               {AI_NUMERICSERV, ARES_AI_NUMERICSERV},
               {AI_V4MAPPED, ARES_AI_V4MAPPED},
               {AI_ALL, ARES_AI_ALL},
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
  static const struct {
    int ni, ares;
  } map[] = {{NI_NUMERICHOST, ARES_NI_NUMERICHOST},
             {NI_NUMERICSERV, ARES_NI_NUMERICSERV},
             {NI_NOFQDN, ARES_NI_NOFQDN},
             {NI_NAMEREQD, ARES_NI_NAMEREQD},
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

/* ---- numeric hosts
 * ------------------------------------------------------------ */

/* c-ares 1.18 answers a numeric host itself only when the hints name its
 * family, and ignores ARES_AI_NUMERICHOST: "127.0.0.1" with AF_UNSPEC
 * becomes a DNS query that waits for the name server. So weft answers
 * numeric hosts before c-ares, and AI_NUMERICHOST with a name fails here. */

typedef struct gai_args {
  const char *host, *service;
  struct ares_addrinfo_hints hints;
  bool numeric;   /* answered by weft (numeric_list), not c-ares */
  int status;     /* for a numeric answer: 0 or the error to deliver */
  addr_entry one; /* the numeric answer, when status is 0 */
} gai_args;

/* The scope of "fe80::1%lo" or "fe80::1%2": an index, or 0 if unknown. */
static unsigned scope_id(const char *s) {
  if (*s >= '0' && *s <= '9') {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return *end == '\0' && v <= UINT32_MAX ? (unsigned)v : 0;
  }
  return if_nametoindex(s);
}

/* Parses an IPv4 or IPv6 literal (an IPv6 one with an optional %scope)
 * into e->u. 1 when numeric, 0 when not, WEFT_EDNS_NONAME for an unknown
 * scope. */
static int parse_numeric(const char *host, addr_entry *e) {
  if (inet_pton(AF_INET, host, &e->u.in.sin_addr) == 1) {
    e->u.in.sin_family = AF_INET;
    return 1;
  }
  char buf[INET6_ADDRSTRLEN];
  const char *pct = strchr(host, '%');
  size_t len = pct ? (size_t)(pct - host) : strlen(host);
  if (len >= sizeof buf) return 0;
  memcpy(buf, host, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET6, buf, &e->u.in6.sin6_addr) != 1) return 0;
  e->u.in6.sin6_family = AF_INET6;
  if (pct != NULL && (e->u.in6.sin6_scope_id = scope_id(pct + 1)) == 0)
    return WEFT_EDNS_NONAME;
  return 1;
}

/* The asked family: an IPv4 address asked as AF_INET6 is mapped with
 * AI_V4MAPPED; any other mismatch has no address (WEFT_EDNS_NODATA). */
static int fit_family(addr_entry *e, int family, int flags) {
  if (family == AF_UNSPEC || family == e->u.sa.sa_family) return 0;
  if (family == AF_INET || !(flags & ARES_AI_V4MAPPED)) return WEFT_EDNS_NODATA;
  struct in_addr v4 = e->u.in.sin_addr;
  memset(&e->u, 0, sizeof e->u);
  e->u.in6.sin6_family = AF_INET6;
  e->u.in6.sin6_addr.s6_addr[10] = e->u.in6.sin6_addr.s6_addr[11] = 0xff;
  memcpy(&e->u.in6.sin6_addr.s6_addr[12], &v4, 4);
  return 0;
}

/* The port of `service` (NULL: 0; a number; a name from /etc/services, as
 * c-ares would look it up); WEFT_EDNS_NONAME if unknown. */
static int service_port(const char *service,
                        const struct ares_addrinfo_hints *h, uint16_t *port) {
  *port = 0;
  if (service == NULL || service[0] == '\0') return 0;
  char *end;
  unsigned long v = strtoul(service, &end, 10);
  if (service[0] >= '0' && service[0] <= '9' && *end == '\0')
    return v <= 65535 ? (*port = htons((uint16_t)v), 0) : WEFT_EDNS_NONAME;
  if (h->ai_flags & ARES_AI_NUMERICSERV) return WEFT_EDNS_NONAME;
  struct servent se, *found = NULL;
  char buf[1024];
  const char *proto = h->ai_socktype == SOCK_DGRAM ? "udp" : "tcp";
  if (getservbyname_r(service, proto, &se, buf, sizeof buf, &found) != 0 ||
      found == NULL)
    return WEFT_EDNS_NONAME;
  *port = (uint16_t)found->s_port;
  return 0;
}

/* Decides whether weft answers a->host itself; fills a->numeric, status
 * and one. No allocation: the list is made when the query starts. */
static void numeric_prepare(gai_args *a) {
  addr_entry *e = &a->one;
  memset(e, 0, sizeof *e);
  int n = parse_numeric(a->host, e);
  a->numeric = n != 0 || (a->hints.ai_flags & ARES_AI_NUMERICHOST);
  if (!a->numeric) return;
  a->status = n < 0 ? n : n == 0 ? WEFT_EDNS_NONAME : 0;
  if (a->status == 0)
    a->status = fit_family(e, a->hints.ai_family, a->hints.ai_flags);
  uint16_t port;
  if (a->status == 0) a->status = service_port(a->service, &a->hints, &port);
  if (a->status != 0) return;
  if (e->u.sa.sa_family == AF_INET)
    e->u.in.sin_port = port;
  else
    e->u.in6.sin6_port = port;
  e->ai.family = e->u.sa.sa_family;
  e->ai.socktype = a->hints.ai_socktype;
  e->ai.protocol = a->hints.ai_protocol;
  e->ai.addrlen = e->ai.family == AF_INET ? sizeof e->u.in : sizeof e->u.in6;
}

/* The one-entry list of a numeric answer; NULL on -ENOMEM. */
static weft_addrinfo *numeric_list(const gai_args *a) {
  addr_entry *e = weft__malloc(sizeof *e);
  if (e == NULL) return NULL;
  *e = a->one;
  e->ai.next = NULL;
  e->ai.addr = &e->u.sa;
  return &e->ai;
}

/* ---- starting
 * ---------------------------------------------------------------- */

typedef struct gni_args {
  struct sockaddr_in6 sa; /* big enough for both families */
  socklen_t len;
  int flags;
} gni_args;

/* Starts q in c-ares; 0 or -ENOMEM (q freed). */
static int start_query(weft__dns_query *q, const void *args) {
  q->st->sock_errno = 0; /* a socket() failure is news only from here on */
  if (q->kind == WEFT__DNS_ADDR) {
    const gai_args *a = args;
    if (!a->numeric) {
      ares_getaddrinfo(q->st->ch, a->host, a->service, &a->hints, on_addrinfo,
                       q);
    } else if (a->status == 0 && (q->res = numeric_list(a)) == NULL) {
      weft__dns_query_discard(q);
      return -ENOMEM;
    } else {
      weft__dns_answered(q, a->status); /* delivered later, like c-ares' */
    }
  } else {
    const gni_args *a = args;
    ares_getnameinfo(q->st->ch, (const struct sockaddr *)&a->sa,
                     (ares_socklen_t)a->len, a->flags, on_nameinfo, q);
  }
  return weft__dns_query_accept(q);
}

static void on_future_cancel(weft_future *f, void *arg) {
  weft__dns_query *q = arg;
  weft__dns_query_cancel(q);
  weft_future_unref(f); /* the producer's reference */
}

/* Cancels q's future, whose hook abandons q. Should the future have been
 * settled behind the producer's back, q is abandoned here all the same. */
void weft__dns_future_cancel(weft__dns_query *q) {
  weft_future *f = q->fut;
  if (weft_future_cancel(f) != 0 && !q->done) on_future_cancel(f, q);
}

void weft__dns_settle(weft__dns_query *q, int status, weft_addrinfo *res,
                      weft_nameinfo *names) {
  weft_future *f = q->fut;
  q->fut = NULL;
  if (status != 0) {
    weft_future_reject(f, status);
  } else if (q->kind == WEFT__DNS_ADDR) {
    if (weft_future_resolve(f, res, free_addrinfo) != 0) weft__free(res);
  } else if (weft_future_resolve(f, names, weft__dns_free_names) != 0) {
    weft__free(names);
  }
  weft_future_unref(f);
}

/* Shared by the four entry points: `cb` set for the callback form, `out`
 * for the future form. */
static int query_run(weft_loop *loop, weft__dns_kind kind, const void *args,
                     void (*cb)(void), void *arg, weft_future **out) {
  weft__dns_state *st;
  int err = weft__dns_get_state(loop, &st);
  if (err != 0) return err;
  weft_future *f = NULL;
  if (out != NULL && (err = weft_future_new_op(loop,
                                               kind == WEFT__DNS_ADDR
                                                   ? "weft_getaddrinfo_future"
                                                   : "weft_getnameinfo_future",
                                               &f)) != 0)
    return err;
  weft__dns_query *q = weft__dns_query_new(st, kind);
  if (q == NULL) goto nomem;
  if (f != NULL) {
    if (weft_future_on_cancel(f, on_future_cancel, q) != 0) {
      weft__dns_query_discard(q);
      goto nomem;
    }
    q->fut = weft_future_ref(f);
  } else if (kind == WEFT__DNS_ADDR) {
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
  int err = convert_hints(hints, &a->hints);
  if (err == 0) numeric_prepare(a);
  return err;
}

int weft_getaddrinfo(weft_loop *loop, const char *host, const char *service,
                     const struct addrinfo *hints, weft_getaddrinfo_cb cb,
                     void *arg) {
  gai_args a;
  if (loop == NULL || cb == NULL) return -EINVAL;
  int err = gai_prepare(host, service, hints, &a);
  if (err != 0) return err;
  return query_run(loop, WEFT__DNS_ADDR, &a, (void (*)(void))cb, arg, NULL);
}

int weft_getaddrinfo_future(weft_loop *loop, const char *host,
                            const char *service, const struct addrinfo *hints,
                            weft_future **out) {
  gai_args a;
  if (loop == NULL || out == NULL) return -EINVAL;
  int err = gai_prepare(host, service, hints, &a);
  if (err != 0) return err;
  return query_run(loop, WEFT__DNS_ADDR, &a, NULL, NULL, out);
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
  return query_run(loop, WEFT__DNS_NAME, &a, (void (*)(void))cb, arg, NULL);
}

int weft_getnameinfo_future(weft_loop *loop, const struct sockaddr *addr,
                            socklen_t addrlen, int flags, weft_future **out) {
  gni_args a;
  if (loop == NULL || out == NULL) return -EINVAL;
  int err = gni_prepare(addr, addrlen, flags, &a);
  if (err != 0) return err;
  return query_run(loop, WEFT__DNS_NAME, &a, NULL, NULL, out);
}
