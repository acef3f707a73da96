/* DNS through c-ares, against a real dnsmasq that each test starts on its
 * own port (tests run in parallel processes). Tests that use dnsmasq turn
 * the resolver's /etc/hosts step off (weft_dns_use_hosts_file), and no
 * test looks up "localhost": none depends on the machine's /etc/hosts
 * (absent on a fresh root, ::1 first on Debian's stock one). */
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "support/dnsmasq.h"
#include "support/test.h"
#include "weft/future.h"

#define HOSTS                                                                  \
  "127.0.0.1 localhost\n" /* for PTR 127.0.0.1 */                              \
  "127.0.0.2 a.test\n"                                                         \
  "127.0.0.3 both.test\n"                                                      \
  "fd00::3 both.test\n"                                                        \
  "fd00::2 v6.test\n"

typedef struct result {
  int calls;
  int status;
  int count;      /* addresses in the list */
  char first[64]; /* first address, numeric */
  int first_family;
  int first_port;
  unsigned first_scope; /* sin6_scope_id of an IPv6 first address */
  int first_socktype;
  char host[256], service[64];
} result;

static void addr_text(const struct sockaddr *sa, char *dst, size_t n) {
  const void *a =
      sa->sa_family == AF_INET
          ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
          : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  inet_ntop(sa->sa_family, a, dst, (socklen_t)n);
}

static void record_list(result *r, const weft_addrinfo *res) {
  for (const weft_addrinfo *it = res; it; it = it->next)
    r->count++;
  if (res == NULL) return;
  addr_text(res->addr, r->first, sizeof r->first);
  r->first_family = res->family;
  r->first_port = ntohs(((const struct sockaddr_in *)res->addr)->sin_port);
  r->first_socktype = res->socktype;
  if (res->family == AF_INET6)
    r->first_scope = ((const struct sockaddr_in6 *)res->addr)->sin6_scope_id;
}

static void on_addr(int status, weft_addrinfo *res, void *arg) {
  result *r = arg;
  r->calls++;
  r->status = status;
  cr_assert_eq(status == 0, res != NULL, "%s", weft_err_name(status));
  record_list(r, res);
  weft_freeaddrinfo(res);
}

static void on_name(int status, const char *host, const char *service,
                    void *arg) {
  result *r = arg;
  r->calls++;
  r->status = status;
  cr_assert_eq(status == 0, host != NULL && service != NULL, "%s",
               weft_err_name(status));
  if (host) snprintf(r->host, sizeof r->host, "%s", host);
  if (service) snprintf(r->service, sizeof r->service, "%s", service);
}

static struct addrinfo hints_for(int family) {
  struct addrinfo h;
  memset(&h, 0, sizeof h);
  h.ai_family = family;
  h.ai_socktype = SOCK_STREAM;
  return h;
}

/* Points `loop` at dnsmasq `d`, DNS only (no /etc/hosts). */
static void use_dnsmasq(const th_dnsmasq *d, weft_loop *loop) {
  int err = weft_dns_set_servers(loop, d->server);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  err = weft_dns_use_hosts_file(loop, false);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}

static void start_dnsmasq(th_dnsmasq *d, weft_loop *loop) {
  int started = th_dnsmasq_start(d, HOSTS);
  cr_assert_eq(started, 0, "dnsmasq did not start: %s", strerror(-started));
  use_dnsmasq(d, loop);
}

/* ---- answers ---------------------------------------------------------------
 */

/* With the hosts file off, names come from the name server (dnsmasq's
 * list); "localhost", which c-ares 1.18 never sends to a name server
 * (RFC 6761), then has no source and fails at once. */
Test(dns, hosts_file_off_asks_the_name_server, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0}, lo = {0};
  cr_assert_eq(weft_getaddrinfo(loop, "a.test", "80", NULL, on_addr, &r), 0);
  cr_assert_eq(weft_getaddrinfo(loop, "localhost", "80", NULL, on_addr, &lo),
               0);
  cr_assert_eq(r.calls + lo.calls, 0, "answered inline");
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_eq(r.count, 1);
  cr_assert_str_eq(r.first, "127.0.0.2");
  cr_assert_eq(r.first_port, 80);
  cr_assert_eq(lo.calls, 1);
  cr_assert_eq(lo.status, WEFT_EDNS_CONNREFUSED, "%s",
               weft_err_name(lo.status));
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, use_hosts_file_bad_input_and_busy, .timeout = 10) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_dns_use_hosts_file(NULL, false), -EINVAL);
  unsigned port;
  int fd = th_silent_udp(&port);
  cr_assert_geq(fd, 0);
  char server[32];
  snprintf(server, sizeof server, "127.0.0.1:%u", port);
  cr_assert_eq(weft_dns_set_servers(loop, server), 0);
  cr_assert_eq(weft_dns_use_hosts_file(loop, false), 0);
  weft_future *f = NULL;
  cr_assert_eq(weft_getaddrinfo_future(loop, "x.test", NULL, NULL, &f), 0);
  int err = weft_dns_use_hosts_file(loop, true);
  cr_assert_eq(err, -EBUSY, "%s", weft_err_name(err));
  cr_assert_eq(weft_future_cancel(f), 0);
  err = weft_dns_use_hosts_file(loop, true);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  th_run(loop);
  cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
               weft_err_name(weft_future_error(f)));
  /* the servers and options survive it: the silent server, 100 ms, 1 try */
  cr_assert_eq(weft_dns_set_options(loop, 100, 1), 0);
  cr_assert_eq(weft_dns_use_hosts_file(loop, false), 0);
  result r = {0};
  uint64_t t0 = weft_now(loop);
  cr_assert_eq(weft_getaddrinfo(loop, "y.test", NULL, NULL, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, WEFT_EDNS_TIMEOUT, "%s", weft_err_name(r.status));
  cr_assert_lt(weft_now(loop) - t0, 1000u);
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
}

Test(dns, ipv4_answer_from_dnsmasq, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0};
  struct addrinfo h = hints_for(AF_INET);
  cr_assert_eq(weft_getaddrinfo(loop, "a.test", "8080", &h, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_eq(r.count, 1);
  cr_assert_str_eq(r.first, "127.0.0.2");
  cr_assert_eq(r.first_port, 8080);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, ipv6_answer_from_dnsmasq, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0};
  struct addrinfo h = hints_for(AF_INET6);
  cr_assert_eq(weft_getaddrinfo(loop, "v6.test", NULL, &h, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_eq(r.count, 1);
  cr_assert_eq(r.first_family, AF_INET6);
  cr_assert_str_eq(r.first, "fd00::2");
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, unspec_gets_both_families, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0};
  cr_assert_eq(weft_getaddrinfo(loop, "both.test", "1", NULL, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_eq(r.count, 2);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, nxdomain_is_notfound, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0};
  cr_assert_eq(weft_getaddrinfo(loop, "nope.test", NULL, NULL, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, WEFT_EDNS_NOTFOUND, "%s", weft_err_name(r.status));
  cr_assert_eq(r.count, 0);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, many_concurrent_queries, .timeout = 10) {
  enum { N = 40 };
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r[N];
  memset(r, 0, sizeof r);
  struct addrinfo h = hints_for(AF_INET);
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_getaddrinfo(loop, i % 2 ? "a.test" : "nope.test", NULL,
                                  &h, on_addr, &r[i]),
                 0);
  th_run(loop);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(r[i].calls, 1);
    cr_assert_eq(r[i].status, i % 2 ? 0 : WEFT_EDNS_NOTFOUND, "%s",
                 weft_err_name(r[i].status));
  }
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, unknown_service_and_bad_name, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r[2] = {{0}};
  cr_assert_eq(
      weft_getaddrinfo(loop, "a.test", "no-such-service", NULL, on_addr, &r[0]),
      0);
  cr_assert_eq(weft_getaddrinfo(loop, "bad..name", NULL, NULL, on_addr, &r[1]),
               0);
  th_run(loop);
  cr_assert_eq(r[0].calls, 1);
  cr_assert_eq(r[0].status, WEFT_EDNS_NONAME, "%s", weft_err_name(r[0].status));
  cr_assert_eq(r[1].calls, 1);
  cr_assert_eq(r[1].status, WEFT_EDNS_BADNAME, "%s",
               weft_err_name(r[1].status));
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, numeric_host_answers_without_a_server, .timeout = 10) {
  weft_loop *loop = th_loop();
  result r = {0};
  struct addrinfo h = hints_for(AF_UNSPEC);
  h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  cr_assert_eq(weft_getaddrinfo(loop, "::1", "443", &h, on_addr, &r), 0);
  cr_assert_eq(r.calls, 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_str_eq(r.first, "::1");
  cr_assert_eq(r.first_port, 443);
  th_loop_finish(loop);
}

/* Numeric hosts are answered by weft, not by a DNS query: against a name
 * server that never answers (60 s per try), every lookup below completes
 * in the first turns, once, never inline, with the right address. c-ares
 * 1.18 alone sent "127.0.0.1" with AF_UNSPEC, and anything with
 * AI_NUMERICHOST, to the server and waited. */
typedef struct numeric_case {
  const char *host, *service;
  int family, flags;
  int status;       /* expected */
  const char *addr; /* expected first address (status 0) */
  int addr_family;
  int port;
  unsigned scope;
} numeric_case;

static int silent_server(weft_loop *loop, uint64_t timeout_ms);

Test(dns, numeric_hosts_skip_the_name_server, .timeout = 10) {
  unsigned lo = if_nametoindex("lo");
  cr_assert_neq(lo, 0u);
  const numeric_case c[] = {
      {"127.0.0.1", "80", AF_UNSPEC, 0, 0, "127.0.0.1", AF_INET, 80, 0},
      {"::1", NULL, AF_UNSPEC, 0, 0, "::1", AF_INET6, 0, 0},
      {"10.1.2.3", "65535", AF_INET, 0, 0, "10.1.2.3", AF_INET, 65535, 0},
      {"fe80::1%lo", "7", AF_UNSPEC, 0, 0, "fe80::1", AF_INET6, 7, lo},
      {"fe80::2%1", "7", AF_INET6, 0, 0, "fe80::2", AF_INET6, 7, 1},
      {"127.0.0.1", "1", AF_INET6, AI_V4MAPPED, 0, "::ffff:127.0.0.1", AF_INET6,
       1, 0},
      {"127.0.0.1", NULL, AF_INET6, 0, WEFT_EDNS_NODATA, NULL, 0, 0, 0},
      {"::1", NULL, AF_INET, 0, WEFT_EDNS_NODATA, NULL, 0, 0, 0},
      {"a.test", NULL, AF_UNSPEC, AI_NUMERICHOST, WEFT_EDNS_NONAME, NULL, 0, 0,
       0},
      {"fe80::1%no-such-if0", NULL, AF_UNSPEC, 0, WEFT_EDNS_NONAME, NULL, 0, 0,
       0},
      {"127.0.0.1", "65536", AF_UNSPEC, 0, WEFT_EDNS_NONAME, NULL, 0, 0, 0},
      {"127.0.0.1", "x", AF_UNSPEC, AI_NUMERICSERV, WEFT_EDNS_NONAME, NULL, 0,
       0, 0},
  };
  enum { N = sizeof c / sizeof c[0] };
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  result r[N];
  memset(r, 0, sizeof r);
  uint64_t t0 = weft_now(loop);
  for (int i = 0; i < N; i++) {
    struct addrinfo h = hints_for(c[i].family);
    h.ai_flags = c[i].flags;
    int err =
        weft_getaddrinfo(loop, c[i].host, c[i].service, &h, on_addr, &r[i]);
    cr_assert_eq(err, 0, "%s: %s", c[i].host, weft_err_name(err));
  }
  for (int i = 0; i < N; i++)
    cr_assert_eq(r[i].calls, 0, "answered inline");
  th_run(loop);
  cr_assert_lt(weft_now(loop) - t0, 1000u, "waited for the name server");
  for (int i = 0; i < N; i++) {
    cr_assert_eq(r[i].calls, 1, "%d %s", i, c[i].host);
    cr_assert_eq(r[i].status, c[i].status, "%d %s: %s", i, c[i].host,
                 weft_err_name(r[i].status));
    if (c[i].status != 0) continue;
    cr_assert_eq(r[i].count, 1, "%s", c[i].host);
    cr_assert_str_eq(r[i].first, c[i].addr);
    cr_assert_eq(r[i].first_family, c[i].addr_family);
    cr_assert_eq(r[i].first_port, c[i].port);
    cr_assert_eq(r[i].first_socktype, SOCK_STREAM);
    if (c[i].addr_family == AF_INET6)
      cr_assert_eq(r[i].first_scope, c[i].scope);
  }
  close(fd);
  th_loop_finish(loop);
}

/* The future form of a numeric lookup, and its cancellation before the
 * deferred answer is delivered. */
Test(dns, numeric_host_future_and_cancel, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  weft_future *f = NULL, *g = NULL;
  cr_assert_eq(weft_getaddrinfo_future(loop, "127.0.0.1", "5", NULL, &f), 0);
  cr_assert_eq(weft_getaddrinfo_future(loop, "::1", "5", NULL, &g), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_cancel(g), 0);
  uint64_t t0 = weft_now(loop);
  th_run(loop);
  cr_assert_lt(weft_now(loop) - t0, 1000u);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  const weft_addrinfo *ai = weft_future_value(f);
  cr_assert_eq(ai->family, AF_INET);
  cr_assert_null(ai->next);
  const struct sockaddr_in *in = (const struct sockaddr_in *)ai->addr;
  cr_assert_eq(in->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
  cr_assert_eq(ntohs(in->sin_port), 5);
  cr_assert_eq(weft_future_error(g), -ECANCELED, "%s",
               weft_err_name(weft_future_error(g)));
  weft_future_unref(f);
  weft_future_unref(g);
  close(fd);
  th_loop_finish(loop);
}

Test(dns, getnameinfo_of_loopback, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0};
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(8080)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa,
                                NI_NUMERICSERV, on_name, &r),
               0);
  cr_assert_eq(r.calls, 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_str_eq(r.host, "localhost");
  cr_assert_str_eq(r.service, "8080");
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

/* A reverse (PTR) lookup answered by the DNS server, not /etc/hosts. */
Test(dns, getnameinfo_through_dnsmasq, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  result r = {0};
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(80)};
  sa.sin_addr.s_addr = htonl(0x7f000002); /* 127.0.0.2: a.test */
  cr_assert_eq(weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa,
                                NI_NUMERICSERV | NI_NAMEREQD, on_name, &r),
               0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_str_eq(r.host, "a.test");
  cr_assert_str_eq(r.service, "80");
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, getnameinfo_numeric, .timeout = 10) {
  weft_loop *loop = th_loop();
  result r = {0};
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(53)};
  sa.sin6_addr = in6addr_loopback;
  cr_assert_eq(weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa,
                                NI_NUMERICHOST | NI_NUMERICSERV, on_name, &r),
               0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_str_eq(r.host, "::1");
  cr_assert_str_eq(r.service, "53");
  th_loop_finish(loop);
}

static void first_of(weft_loop *loop, const char *name, result *r) {
  cr_assert_eq(weft_getaddrinfo(loop, name, NULL, NULL, on_addr, r), 0);
  th_run(loop);
  cr_assert_eq(r->calls, 1);
  cr_assert_eq(r->status, 0, "%s", weft_err_name(r->status));
}

/* Destination precedence (RFC 6724 policy table): ::1 > IPv4 > ULA. */
Test(dns, addresses_sorted_by_precedence, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  cr_assert_eq(th_dnsmasq_start(&d, "127.0.0.3 mix.test\nfd00::3 mix.test\n"
                                    "127.0.0.1 lo.test\n::1 lo.test\n"),
               0);
  cr_assert_eq(weft_dns_set_servers(loop, d.server), 0);
  result a = {0}, b = {0};
  first_of(loop, "mix.test", &a);
  cr_assert_eq(a.count, 2);
  cr_assert_str_eq(a.first, "127.0.0.3");
  first_of(loop, "lo.test", &b);
  cr_assert_eq(b.count, 2);
  cr_assert_str_eq(b.first, "::1");
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

typedef struct chain {
  weft_loop *loop;
  int done, settings_rc, hosts_rc;
} chain;

static void on_chain(int status, weft_addrinfo *res, void *arg) {
  chain *c = arg;
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  weft_freeaddrinfo(res);
  /* inside c-ares' processing: replacing the channel is refused */
  c->settings_rc = weft_dns_set_options(c->loop, 500, 2);
  c->hosts_rc = weft_dns_use_hosts_file(c->loop, true);
  if (++c->done < 5)
    cr_assert_eq(weft_getaddrinfo(c->loop, "a.test", NULL, NULL, on_chain, c),
                 0);
}

Test(dns, lookups_started_from_callbacks, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  chain c = {loop, 0, 1, 1};
  cr_assert_eq(weft_getaddrinfo(loop, "a.test", NULL, NULL, on_chain, &c), 0);
  th_run(loop);
  cr_assert_eq(c.done, 5);
  cr_assert_eq(c.settings_rc, -EBUSY);
  cr_assert_eq(c.hosts_rc, -EBUSY, "%s", weft_err_name(c.hosts_rc));
  cr_assert_eq(weft_dns_set_options(loop, 500, 2), 0);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

/* ---- futures
 * ------------------------------------------------------------------ */

Test(dns, future_getaddrinfo_fulfils_with_the_list, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  weft_future *f = NULL;
  struct addrinfo h = hints_for(AF_INET);
  cr_assert_eq(weft_getaddrinfo_future(loop, "a.test", "7", &h, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  result r = {0};
  record_list(&r, weft_future_value(f));
  cr_assert_eq(r.count, 1);
  cr_assert_str_eq(r.first, "127.0.0.2");
  cr_assert_eq(r.first_port, 7);
  weft_future_unref(f);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, future_rejects_with_dns_code, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  weft_future *f = NULL;
  cr_assert_eq(weft_getaddrinfo_future(loop, "nope.test", NULL, NULL, &f), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(f), WEFT_EDNS_NOTFOUND, "%s",
               weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(dns, future_getnameinfo, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop);
  weft_future *f = NULL;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(9)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(weft_getnameinfo_future(loop, (struct sockaddr *)&sa, sizeof sa,
                                       NI_NUMERICSERV, &f),
               0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  const weft_nameinfo *ni = weft_future_value(f);
  cr_assert_str_eq(ni->host, "localhost");
  cr_assert_str_eq(ni->service, "9");
  weft_future_unref(f);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

/* ---- timeouts and cancellation
 * --------------------------------------------------- */

static int silent_server(weft_loop *loop, uint64_t timeout_ms) {
  unsigned port;
  int fd = th_silent_udp(&port);
  cr_assert_geq(fd, 0);
  char server[32];
  snprintf(server, sizeof server, "127.0.0.1:%u", port);
  cr_assert_eq(weft_dns_set_servers(loop, server), 0);
  cr_assert_eq(weft_dns_set_options(loop, timeout_ms, 1), 0);
  return fd;
}

Test(dns, silent_server_times_out, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 100);
  result r = {0};
  uint64_t t0 = weft_now(loop);
  cr_assert_eq(weft_getaddrinfo(loop, "x.test", NULL, NULL, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, WEFT_EDNS_TIMEOUT, "%s", weft_err_name(r.status));
  cr_assert_geq(weft_now(loop) - t0, 90);
  close(fd);
  th_loop_finish(loop);
}

/* A host that embeds weft polls its backend fd for as long as
 * weft_loop_backend_timeout() says: DNS deadlines must be part of it. */
Test(dns, embedded_loop_sees_dns_deadlines, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 100);
  result r = {0};
  cr_assert_eq(weft_getaddrinfo(loop, "x.test", NULL, NULL, on_addr, &r), 0);
  int backend = weft_loop_backend_fd(loop);
  cr_assert_geq(backend, 0);
  for (int turns = 0; r.calls == 0; turns++) {
    cr_assert_lt(turns, 50, "the host spins instead of sleeping");
    int ms = weft_loop_backend_timeout(loop);
    cr_assert_neq(ms, -1, "no deadline while a query can time out");
    struct pollfd p = {backend, POLLIN, 0};
    poll(&p, 1, ms);
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  cr_assert_eq(r.status, WEFT_EDNS_TIMEOUT, "%s", weft_err_name(r.status));
  close(fd);
  th_loop_finish(loop);
}

Test(dns, cancel_future_mid_query, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  weft_future *f = NULL;
  cr_assert_eq(weft_getaddrinfo_future(loop, "x.test", NULL, NULL, &f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1); /* query sent */
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_future_cancel(f), -EALREADY);
  th_run(loop); /* returns at once: the abandoned query holds nothing */
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop); /* the channel's teardown reaps the c-ares query */
}

/* Numeric answers (like /etc/hosts ones) are ready inside the start call
 * and wait in the deferred queue: cancelling then still wins, exactly once. */
Test(dns, cancel_before_an_inline_answer_is_delivered, .timeout = 10) {
  weft_loop *loop = th_loop();
  result r = {0};
  weft_future *f = NULL;
  cr_assert_eq(weft_getaddrinfo_future(loop, "127.0.0.1", NULL, NULL, &f), 0);
  cr_assert_eq(weft_getaddrinfo(loop, "::1", NULL, NULL, on_addr, &r), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_dns_cancel_all(loop), 1);
  th_run(loop);
  cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, -ECANCELED, "%s", weft_err_name(r.status));
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(dns, loop_free_with_future_outstanding, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  weft_future *f = NULL;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(0x0a000001);
  cr_assert_eq(weft_getnameinfo_future(loop, (struct sockaddr *)&sa, sizeof sa,
                                       NI_NAMEREQD, &f),
               0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(weft_loop_free(loop), -EBUSY);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  th_run(loop);
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(weft_alloc_live(), 0);
  close(fd);
}

Test(dns, cancel_all_completes_callbacks_once, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  result r[2] = {{0}};
  weft_future *f = NULL;
  cr_assert_eq(weft_getaddrinfo(loop, "x.test", NULL, NULL, on_addr, &r[0]), 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(0x0a000001); /* 10.0.0.1: not in /etc/hosts */
  cr_assert_eq(weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa,
                                NI_NAMEREQD, on_name, &r[1]),
               0);
  cr_assert_eq(weft_getaddrinfo_future(loop, "y.test", NULL, NULL, &f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(weft_dns_cancel_all(loop), 3);
  cr_assert_eq(r[0].calls + r[1].calls, 0, "cancel completed inline");
  cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_dns_cancel_all(loop), 0);
  th_run(loop);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(r[i].calls, 1);
    cr_assert_eq(r[i].status, -ECANCELED, "%s", weft_err_name(r[i].status));
  }
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
}

Test(dns, loop_free_with_query_outstanding, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  result r = {0};
  cr_assert_eq(weft_getaddrinfo(loop, "x.test", NULL, NULL, on_addr, &r), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(weft_loop_free(loop), -EBUSY); /* the query holds the loop */
  cr_assert_eq(weft_dns_set_servers(loop, "127.0.0.1"), -EBUSY);
  cr_assert_eq(weft_dns_set_options(loop, 100, 1), -EBUSY);
  cr_assert_eq(weft_dns_cancel_all(loop), 1);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, -ECANCELED, "%s", weft_err_name(r.status));
  /* c-ares still holds the abandoned query; freeing the loop destroys the
   * channel, which reaps it without any callback */
  cr_assert_eq(weft_loop_free(loop), 0);
  cr_assert_eq(weft_alloc_live(), 0);
  close(fd);
}

/* ---- bad input
 * --------------------------------------------------------------------- */

Test(dns, bad_input_is_rejected_and_the_loop_stays_usable, .timeout = 10) {
  weft_loop *loop = th_loop();
  result r = {0};
  weft_future *f = NULL;
  struct addrinfo h = hints_for(AF_UNIX);
  cr_assert_eq(weft_getaddrinfo(NULL, "localhost", NULL, NULL, on_addr, &r),
               -EINVAL);
  cr_assert_eq(weft_getaddrinfo(loop, NULL, NULL, NULL, on_addr, &r), -EINVAL);
  cr_assert_eq(weft_getaddrinfo(loop, "localhost", NULL, NULL, NULL, &r),
               -EINVAL);
  cr_assert_eq(weft_getaddrinfo(loop, "localhost", NULL, &h, on_addr, &r),
               -EINVAL);
  h = hints_for(AF_INET);
  h.ai_flags = 0x40000000;
  cr_assert_eq(weft_getaddrinfo(loop, "localhost", NULL, &h, on_addr, &r),
               -EINVAL);
  cr_assert_eq(weft_getaddrinfo_future(loop, "localhost", NULL, NULL, NULL),
               -EINVAL);
  cr_assert_eq(weft_getaddrinfo_future(loop, NULL, NULL, NULL, &f), -EINVAL);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  cr_assert_eq(weft_getnameinfo(loop, NULL, sizeof sa, 0, on_name, &r),
               -EINVAL);
  cr_assert_eq(
      weft_getnameinfo(loop, (struct sockaddr *)&sa, 4, 0, on_name, &r),
      -EINVAL);
  cr_assert_eq(weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa,
                                0x40000000, on_name, &r),
               -EINVAL);
  cr_assert_eq(
      weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa, 0, NULL, &r),
      -EINVAL);
  sa.sin_family = AF_UNIX;
  cr_assert_eq(
      weft_getnameinfo_future(loop, (struct sockaddr *)&sa, sizeof sa, 0, &f),
      -EINVAL);
  cr_assert_eq(weft_dns_set_servers(loop, "not an address"), -EINVAL);
  cr_assert_eq(weft_dns_set_servers(loop, ""), -EINVAL);
  cr_assert_eq(weft_dns_set_servers(loop, NULL), -EINVAL);
  cr_assert_eq(weft_dns_set_servers(NULL, "127.0.0.1"), -EINVAL);
  cr_assert_eq(weft_dns_set_options(loop, (uint64_t)INT32_MAX + 1, 1), -EINVAL);
  cr_assert_eq(weft_dns_set_options(NULL, 100, 1), -EINVAL);
  cr_assert_eq(weft_dns_cancel_all(NULL), -EINVAL);
  cr_assert_null(f);
  cr_assert_eq(weft_loop_alive(loop), false);
  cr_assert_eq(r.calls, 0);
  /* still usable */
  cr_assert_eq(weft_getaddrinfo(loop, "127.0.0.1", NULL, NULL, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  th_loop_finish(loop);
}

Test(dns, settings_change_after_cancel, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop, 60000);
  weft_future *f = NULL;
  result r = {0};
  cr_assert_eq(weft_getaddrinfo_future(loop, "x.test", NULL, NULL, &f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(weft_dns_set_options(loop, 100, 1), -EBUSY);
  cr_assert_eq(weft_future_cancel(f), 0);
  /* the abandoned query no longer locks the settings: the old channel is
   * destroyed, reaping it */
  cr_assert_eq(weft_dns_set_options(loop, 50, 1), 0);
  cr_assert_eq(weft_getaddrinfo(loop, "y.test", NULL, NULL, on_addr, &r), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, WEFT_EDNS_TIMEOUT, "%s", weft_err_name(r.status));
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
}

Test(dns, cancel_all_without_queries, .timeout = 10) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_dns_cancel_all(loop), 0);
  th_loop_finish(loop);
}

Test(dns, freeaddrinfo_null_is_ignored, .timeout = 10) {
  weft_freeaddrinfo(NULL);
  cr_assert_eq(weft_alloc_live(), 0);
}

/* ---- allocation failure
 * ------------------------------------------------------------- */

/* A loop, pointed at dnsmasq `d` (DNS only) when `d` is not NULL. */
/* Every allocation on the way can fail: the start returns -ENOMEM (never
 * calling back) or, for a failure after c-ares accepted the query, the
 * callback reports -ENOMEM once (or success, when the failure cost only a
 * deadline); nothing leaks either way. Kinds 0-2 go through dnsmasq, 3 is
 * a numeric host that weft answers itself. */
static int start_kind(weft_loop *loop, int kind, result *r, weft_future **f) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  switch (kind) {
  case 0:
    return weft_getaddrinfo(loop, "a.test", "1", NULL, on_addr, r);
  case 1:
    return weft_getaddrinfo_future(loop, "a.test", "1", NULL, f);
  case 3:
    return weft_getaddrinfo(loop, "127.0.0.1", "1", NULL, on_addr, r);
  default:
    return weft_getnameinfo(loop, (struct sockaddr *)&sa, sizeof sa,
                            NI_NUMERICSERV, on_name, r);
  }
}

typedef struct dns_round {
  th_dnsmasq d;
  int kind;
} dns_round;

static int use_dnsmasq_setup(weft_loop *loop, void *arg) {
  use_dnsmasq(&((dns_round *)arg)->d, loop);
  return 0;
}

static int dns_round_op(weft_loop *loop, void *arg) {
  dns_round *dr = arg;
  bool future = dr->kind == 1;
  result r = {0};
  weft_future *f = NULL;
  int rc = start_kind(loop, dr->kind, &r, &f);
  if (rc != 0) cr_assert_null(f);
  th_run(loop);
  int status = future && f ? weft_future_error(f) : r.status;
  if (rc == 0) {
    cr_assert_eq(future ? 0 : r.calls, future ? 0 : 1);
    /* through DNS a failed allocation may also be absorbed (the timer
     * heap not growing costs only a deadline the answer beats) */
    if (th_alloc_failed() == 0)
      cr_assert_eq(status, 0, "%s", weft_err_name(status));
    else
      cr_assert(status == -ENOMEM || (status == 0 && dr->kind != 3), "%s",
                weft_err_name(status));
  }
  if (f != NULL) weft_future_unref(f);
  return rc != 0 ? rc : status;
}

/* The loop is pointed at dnsmasq while nothing fails (the setup). */
static void alloc_failures(int kind) {
  dns_round dr = {.kind = kind};
  int started = th_dnsmasq_start(&dr.d, HOSTS);
  cr_assert_eq(started, 0, "dnsmasq did not start: %s", strerror(-started));
  th_alloc_sweep_run(&(th_sweep){.op = dns_round_op,
                                 .arg = &dr,
                                 .setup = use_dnsmasq_setup,
                                 .max_rounds = 100});
  th_dnsmasq_stop(&dr.d);
}

Test(dns, allocation_failure_on_query_start, .timeout = 20) {
  alloc_failures(0);
}

Test(dns, allocation_failure_on_future_start, .timeout = 20) {
  alloc_failures(1);
}

Test(dns, allocation_failure_on_getnameinfo, .timeout = 20) {
  alloc_failures(2);
}

Test(dns, allocation_failure_on_numeric_host, .timeout = 20) {
  alloc_failures(3);
}

/* The settings keep the old channel and values when memory runs out. */
static int settings_round(weft_loop *loop, void *arg) {
  (void)arg;
  int rc = weft_dns_set_servers(loop, "127.0.0.1:9");
  if (rc == 0) rc = weft_dns_set_options(loop, 100, 1);
  if (rc == 0) rc = weft_dns_use_hosts_file(loop, false);
  bool failed = th_alloc_failed() != 0;
  cr_assert_eq(rc, failed ? -ENOMEM : 0, "%s", weft_err_name(rc));
  if (failed) { /* still usable: only the one allocation failed */
    result r = {0};
    cr_assert_eq(weft_getaddrinfo(loop, "127.0.0.1", NULL, NULL, on_addr, &r),
                 0);
    th_run(loop);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  }
  return rc;
}

Test(dns, allocation_failure_on_settings, .timeout = 20) {
  th_alloc_sweep_run(
      &(th_sweep){.op = settings_round, .strict = true, .max_rounds = 100});
}
