/* weft — getaddrinfo and getnameinfo on the loop's c-ares channel, in
 * callback and future forms. The query lifecycle (who frees what, inline
 * answers, cancellation) lives in io/dns.c; this file validates input,
 * starts c-ares and copies its answers into weft-owned memory. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---- the hosts file
 * ------------------------------------------------------------ */

/* With the hosts file on, weft does c-ares' "files" step itself, from the
 * loop's table (io/dns_hosts.c), and sends only the names it does not know
 * to the DNS channel: c-ares 1.18 would re-read the file for every lookup.
 * An answer from the table is what c-ares' file_lookup gives: the
 * addresses of every line naming the host (canonical name or alias,
 * case-insensitively) in file order and of the asked family, with c-ares'
 * port; "localhost", when a file that exists lacks it, is ::1 and
 * 127.0.0.1 (RFC 6761). A name the table holds no address of the asked
 * family for goes to DNS, as in c-ares. What c-ares decides before its
 * files step (service names, ".onion", numeric-looking hosts) is left to
 * c-ares, on the DNS channel, which reads no file for it. */

/* c-ares 1.18's port for `service` (a name looked up as tcp, else strtoul
 * base 0, cut to 16 bits; 0 is refused): false when c-ares would fail the
 * lookup with ARES_ESERVICE. */
static bool ares_port(const char *service, int flags, uint16_t *port) {
  unsigned short p = 0;
  *port = 0;
  if (service == NULL) return true;
  /* digits only: no service is named so, skip reading /etc/services */
  bool digits = service[0] != '\0';
  for (const char *c = service; *c && digits; c++)
    digits = *c >= '0' && *c <= '9';
  if (!digits && !(flags & ARES_AI_NUMERICSERV)) {
    struct servent se, *found = NULL;
    char buf[4096];
    if (getservbyname_r(service, "tcp", &se, buf, sizeof buf, &found) == 0 &&
        found != NULL)
      p = ntohs((uint16_t)found->s_port);
  }
  if (p == 0) p = (unsigned short)strtoul(service, NULL, 0);
  *port = htons(p);
  return p != 0;
}

static bool ends_with(const char *s, size_t n, const char *tail) {
  size_t t = strlen(tail);
  return n >= t && strcasecmp(s + n - t, tail) == 0;
}

/* What c-ares answers before its files step: ".onion" names (refused) and
 * what its fake_addrinfo takes for an address. */
static bool ares_decides_first(const char *name, int family) {
  size_t n = strlen(name), dots = 0;
  if (ends_with(name, n, ".onion") || ends_with(name, n, ".onion."))
    return true;
  bool digits = true;
  for (const char *p = name; *p && digits; p++) {
    dots += *p == '.';
    digits = (*p >= '0' && *p <= '9') || *p == '.';
  }
  uint8_t a6[16];
  if (digits && dots == 3) return true;
  return family != AF_INET && ares_inet_pton(AF_INET6, name, a6) == 1;
}

typedef struct hosts_fill {
  addr_entry *e;
  size_t n;
  uint16_t port;
  const struct ares_addrinfo_hints *hints;
} hosts_fill;

static void hosts_add(void *arg, int family, const uint8_t *addr) {
  hosts_fill *f = arg;
  addr_entry *e = &f->e[f->n++];
  memset(e, 0, sizeof *e);
  if (family == AF_INET) {
    e->u.in.sin_family = AF_INET;
    e->u.in.sin_port = f->port;
    memcpy(&e->u.in.sin_addr, addr, 4);
    e->ai.addrlen = sizeof e->u.in;
  } else {
    e->u.in6.sin6_family = AF_INET6;
    e->u.in6.sin6_port = f->port;
    memcpy(&e->u.in6.sin6_addr, addr, 16);
    e->ai.addrlen = sizeof e->u.in6;
  }
  e->ai.family = family;
  e->ai.socktype = f->hints->ai_socktype;
  e->ai.protocol = f->hints->ai_protocol;
}

/* RFC 6761's answer, as c-ares 1.18 gives it when the file lacks it. */
static size_t localhost_fill(hosts_fill *f, int family) {
  static const uint8_t v6[16] = {[15] = 1}, v4[4] = {127, 0, 0, 1};
  if (f->e == NULL) return family == AF_UNSPEC ? 2 : 1;
  if (family != AF_INET) hosts_add(f, AF_INET6, v6);
  if (family != AF_INET6) hosts_add(f, AF_INET, v4);
  return f->n;
}

/* The table's answer for a->host into q->res: 1 if answered, 0 if the
 * table has no address for it, or -ENOMEM. */
static int hosts_answer(weft__dns_query *q, const gai_args *a, uint16_t port) {
  const weft__dns_hosts *h = &q->st->hosts;
  int family = a->hints.ai_family;
  hosts_fill f = {NULL, 0, port, &a->hints};
  size_t n = weft__dns_hosts_find(h, a->host, family, NULL, NULL);
  bool localhost = n == 0 && h->state == WEFT__HOSTS_LOADED &&
                   strcmp(a->host, "localhost") == 0;
  if (localhost) n = localhost_fill(&f, family);
  if (n == 0) return 0;
  if ((f.e = weft__calloc(n, sizeof *f.e)) == NULL) return -ENOMEM;
  if (localhost)
    localhost_fill(&f, family);
  else
    weft__dns_hosts_find(h, a->host, family, hosts_add, &f);
  sort_by_precedence(f.e, n);
  q->res = &f.e[0].ai;
  return 1;
}

/* The files step of a forward lookup: 1 when q was answered from the
 * table; 0 with *via the channel to ask; or -ENOMEM, or -EFBIG for a file
 * set with weft_dns_set_hosts_file() that is over a cap. */
static int hosts_step(weft__dns_query *q, const gai_args *a,
                      ares_channel *via) {
  weft__dns_state *st = q->st;
  uint16_t port;
  *via = st->dns.ch;
  if (ares_decides_first(a->host, a->hints.ai_family) ||
      !ares_port(a->service, a->hints.ai_flags, &port))
    return 0;
  bool custom = st->hosts.path != NULL;
  /* HOSTALIASES renames a dotless name before c-ares' files step */
  if (!custom && strchr(a->host, '.') == NULL && getenv("HOSTALIASES"))
    return weft__dns_files_channel(st, via);
  int err = weft__dns_hosts_refresh(&st->hosts, weft_now(st->loop));
  if (err != 0) return err;
  if (st->hosts.state == WEFT__HOSTS_TOO_BIG)
    return custom ? -EFBIG : weft__dns_files_channel(st, via);
  return hosts_answer(q, a, port);
}

/* ---- starting
 * ---------------------------------------------------------------- */

typedef struct gni_args {
  struct sockaddr_in6 sa; /* big enough for both families */
  socklen_t len;
  int flags;
} gni_args;

/* Starts a forward lookup: answered by weft (numeric host, hosts-file
 * table) or handed to c-ares. 0, or a negative code. */
static int start_addr(weft__dns_query *q, const gai_args *a) {
  weft__dns_state *st = q->st;
  ares_channel via = st->dns.ch;
  int r = 0;
  if (a->numeric) {
    if (a->status == 0 && (q->res = numeric_list(a)) == NULL) return -ENOMEM;
    weft__dns_answered(q, a->status); /* delivered later, like c-ares' */
    return 0;
  }
  if (!st->no_hosts_file && (r = hosts_step(q, a, &via)) < 0) return r;
  if (r == 1)
    weft__dns_answered(q, 0);
  else
    ares_getaddrinfo(via, a->host, a->service, &a->hints, on_addrinfo, q);
  return 0;
}

/* Starts q; 0, or a negative code (q freed). */
static int start_query(weft__dns_query *q, const void *args) {
  weft__dns_state *st = q->st;
  int err = 0;
  st->sock_errno = 0; /* a socket() failure is news only from here on */
  if (q->kind == WEFT__DNS_ADDR) {
    err = start_addr(q, args);
  } else {
    const gni_args *a = args;
    ares_channel via = st->dns.ch;
    /* reverse lookups keep c-ares' own hosts-file step */
    if (!st->no_hosts_file) err = weft__dns_files_channel(st, &via);
    if (err == 0)
      ares_getnameinfo(via, (const struct sockaddr *)&a->sa,
                       (ares_socklen_t)a->len, a->flags, on_nameinfo, q);
  }
  if (err != 0) {
    weft__dns_query_discard(q);
    return err;
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
  if ((err = start_query(q, args)) != 0) {
    if (f != NULL) weft_future_unref(f); /* the producer's */
    goto fail;
  }
  if (out != NULL) *out = f;
  return 0;
nomem:
  err = -ENOMEM;
fail:
  if (f != NULL) weft_future_unref(f);
  return err;
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
