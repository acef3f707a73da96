/* weft_tcp_connect_host: resolve (against a dnsmasq each test starts, DNS
 * only, or numeric hosts that need no server), then connect to each
 * address in turn. No test depends on /etc/hosts or looks up
 * "localhost", whose addresses and their order vary between machines. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "support/dnsmasq.h"
#include "support/test.h"

/* Points `loop` at dnsmasq `d`, DNS only (no /etc/hosts). */
static void use_dnsmasq(const th_dnsmasq *d, weft_loop *loop) {
  int err = weft_dns_set_servers(loop, d->server);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  err = weft_dns_use_hosts_file(loop, false);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}

static void start_dnsmasq(th_dnsmasq *d, weft_loop *loop, const char *hosts) {
  int started = th_dnsmasq_start(d, hosts);
  cr_assert_eq(started, 0, "dnsmasq did not start: %s", strerror(-started));
  use_dnsmasq(d, loop);
}

/* A name server that never answers; the caller closes the returned fd. */
static int silent_server(weft_loop *loop) {
  unsigned port;
  int fd = th_silent_udp(&port);
  cr_assert_geq(fd, 0);
  char server[32];
  snprintf(server, sizeof server, "127.0.0.1:%u", port);
  cr_assert_eq(weft_dns_set_servers(loop, server), 0);
  return fd;
}

typedef struct server {
  weft_tcp listener;
  weft_tcp peer;
  int accepted;
  unsigned port;
} server;

static void on_connection(weft_stream *s, int status) {
  server *sv = s->base.data;
  cr_assert_eq(status, 0, "%s", weft_err_name(status));
  cr_assert_eq(weft_tcp_init(weft_handle_loop(&s->base), &sv->peer), 0);
  cr_assert_eq(weft_stream_accept(s, &sv->peer.stream), 0);
  sv->accepted++;
  weft_close(&sv->peer.stream.base, NULL);
  weft_close(&sv->listener.stream.base, NULL);
}

static void server_start(weft_loop *loop, server *sv) {
  memset(sv, 0, sizeof *sv);
  struct sockaddr_in a;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &a), 0);
  cr_assert_eq(weft_tcp_init(loop, &sv->listener), 0);
  sv->listener.stream.base.data = sv;
  cr_assert_eq(weft_tcp_bind(&sv->listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(weft_tcp_listen(&sv->listener, 8, on_connection), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&sv->listener, (struct sockaddr *)&a, &len),
               0);
  sv->port = ntohs(a.sin_port);
}

/* A port nothing listens on: bound, then closed. */
static unsigned dead_port(weft_loop *loop) {
  server sv;
  server_start(loop, &sv);
  weft_close(&sv.listener.stream.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return sv.port;
}

typedef struct conn_result {
  int calls, status;
} conn_result;

static void on_host_connected(weft_tcp *t, int status, void *arg) {
  conn_result *r = arg;
  r->calls++;
  r->status = status;
  weft_close(&t->stream.base, NULL);
}

Test(connect_host, by_name, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop, "127.0.0.1 h.test\n");
  server sv;
  server_start(loop, &sv);
  weft_tcp t;
  conn_result r = {0};
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(
      weft_tcp_connect_host(&t, "h.test", sv.port, on_host_connected, &r), 0);
  cr_assert_eq(r.calls, 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_eq(sv.accepted, 1);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

/* A numeric host needs no name server: against one that never answers
 * (c-ares alone waited 2+4+8 s for it), the connect completes at once. */
Test(connect_host, numeric_host_skips_the_name_server, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop);
  server sv;
  server_start(loop, &sv);
  weft_tcp t;
  conn_result r = {0};
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  uint64_t t0 = weft_now(loop);
  cr_assert_eq(
      weft_tcp_connect_host(&t, "127.0.0.1", sv.port, on_host_connected, &r),
      0);
  cr_assert_eq(r.calls, 0);
  th_run(loop);
  cr_assert_lt(weft_now(loop) - t0, 1000u, "waited for the name server");
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
  cr_assert_eq(sv.accepted, 1);
  close(fd);
  th_loop_finish(loop);
}

/* ::1 (refused: the server listens on 127.0.0.1 only) and 127.0.0.1: one
 * of the two accepts, whichever order the resolver picks. */
Test(connect_host, tries_each_address, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop, "127.0.0.1 two.test\n::1 two.test\n");
  server sv;
  server_start(loop, &sv);
  weft_future *f = NULL;
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_tcp_connect_host_future(&t, "two.test", sv.port, &f), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(sv.accepted, 1);
  weft_future_unref(f);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

/* ::1:P is a listener whose backlog is full, so SYNs go unanswered;
 * 127.0.0.1:P accepts. ::1 sorts first: its attempt must be abandoned
 * after about a second for the next address, not the kernel's minutes. */
Test(connect_host, abandons_a_silent_address, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop, "::1 bh.test\n127.0.0.1 bh.test\n");
  server sv;
  server_start(loop, &sv);
  int full = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1, filler = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                            .sin6_port = htons(sv.port)};
  a6.sin6_addr = in6addr_loopback;
  cr_assert_eq(setsockopt(full, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one),
               0);
  cr_assert_eq(bind(full, (struct sockaddr *)&a6, sizeof a6), 0);
  cr_assert_eq(listen(full, 0), 0);
  cr_assert_eq(connect(filler, (struct sockaddr *)&a6, sizeof a6), 0);
  weft_tcp t;
  weft_future *f = NULL;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  uint64_t t0 = weft_now(loop);
  cr_assert_eq(weft_tcp_connect_host_future(&t, "bh.test", sv.port, &f), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(sv.accepted, 1);
  cr_assert_geq(weft_now(loop) - t0, 900);
  weft_future_unref(f);
  close(filler);
  close(full);
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(connect_host, refused_and_notfound, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop, "127.0.0.2 a.test\n");
  unsigned port = dead_port(loop);
  weft_tcp t[2];
  conn_result r[2] = {{0}};
  for (int i = 0; i < 2; i++)
    cr_assert_eq(weft_tcp_init(loop, &t[i]), 0);
  cr_assert_eq(
      weft_tcp_connect_host(&t[0], "a.test", port, on_host_connected, &r[0]),
      0);
  cr_assert_eq(
      weft_tcp_connect_host(&t[1], "nope.test", 80, on_host_connected, &r[1]),
      0);
  th_run(loop);
  cr_assert_eq(r[0].calls, 1);
  cr_assert_eq(r[0].status, -ECONNREFUSED, "%s", weft_err_name(r[0].status));
  cr_assert_eq(r[1].calls, 1);
  cr_assert_eq(r[1].status, WEFT_EDNS_NOTFOUND, "%s",
               weft_err_name(r[1].status));
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(connect_host, cancel_during_lookup, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fd = silent_server(loop);
  weft_tcp t;
  weft_future *f = NULL;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_tcp_connect_host_future(&t, "x.test", 80, &f), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
               weft_err_name(weft_future_error(f)));
  weft_close(&t.stream.base, NULL);
  th_run(loop);
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
}

static void on_host_closed_meanwhile(weft_tcp *t, int status, void *arg) {
  conn_result *r = arg;
  r->calls++;
  r->status = status;
  cr_assert(weft_is_closing(&t->stream.base));
}

Test(connect_host, handle_closed_during_lookup, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dnsmasq(&d, loop, "127.0.0.2 a.test\n");
  weft_tcp t;
  conn_result r = {0};
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(
      weft_tcp_connect_host(&t, "a.test", 80, on_host_closed_meanwhile, &r), 0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  th_run(loop);
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.status, -ECANCELED, "%s", weft_err_name(r.status));
  th_dnsmasq_stop(&d);
  th_loop_finish(loop);
}

Test(connect_host, bad_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp t;
  conn_result r = {0};
  weft_future *f = NULL;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(
      weft_tcp_connect_host(NULL, "localhost", 1, on_host_connected, &r),
      -EINVAL);
  cr_assert_eq(weft_tcp_connect_host(&t, NULL, 1, on_host_connected, &r),
               -EINVAL);
  cr_assert_eq(weft_tcp_connect_host(&t, "localhost", 1, NULL, &r), -EINVAL);
  cr_assert_eq(
      weft_tcp_connect_host(&t, "localhost", 65536, on_host_connected, &r),
      -EINVAL);
  cr_assert_eq(weft_tcp_connect_host_future(&t, "localhost", 1, NULL), -EINVAL);
  cr_assert_eq(weft_tcp_connect_host_future(NULL, "localhost", 1, &f), -EINVAL);
  weft_close(&t.stream.base, NULL);
  cr_assert_eq(weft_tcp_connect_host(&t, "localhost", 1, on_host_connected, &r),
               -EINVAL);
  cr_assert_null(f);
  th_run(loop);
  cr_assert_eq(r.calls, 0);
  th_loop_finish(loop);
}

typedef struct host_round {
  th_dnsmasq d; /* one IPv4 address: no fallback to hide a failure */
  server sv;    /* the handles outlive the op: closed by the sweep */
  weft_tcp t;
} host_round;

/* While nothing fails: the loop points at dnsmasq, the server listens. */
static int host_round_setup(weft_loop *loop, void *arg) {
  host_round *h = arg;
  use_dnsmasq(&h->d, loop);
  server_start(loop, &h->sv);
  return 0;
}

static int host_round_op(weft_loop *loop, void *arg) {
  host_round *h = arg;
  conn_result r = {0};
  cr_assert_eq(weft_tcp_init(loop, &h->t), 0);
  int rc =
      weft_tcp_connect_host(&h->t, "h.test", h->sv.port, on_host_connected, &r);
  if (rc != 0) weft_close(&h->t.stream.base, NULL);
  while (rc == 0 && r.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  if (!weft_is_closing(&h->sv.listener.stream.base))
    weft_close(&h->sv.listener.stream.base, NULL); /* nobody connected */
  th_run(loop);
  bool failed = th_alloc_failed() != 0;
  if (rc == 0) {
    cr_assert_eq(r.calls, 1);
    /* a failure may also be absorbed (a deadline the answer beats) */
    if (!failed)
      cr_assert_eq(r.status, 0, "%s", weft_err_name(r.status));
    else
      cr_assert(r.status == 0 || r.status == -ENOMEM, "%s",
                weft_err_name(r.status));
  }
  return rc != 0 ? rc : r.status;
}

Test(connect_host, allocation_failure, .timeout = 20) {
  host_round h;
  int started = th_dnsmasq_start(&h.d, "127.0.0.1 h.test\n");
  cr_assert_eq(started, 0, "dnsmasq did not start: %s", strerror(-started));
  th_alloc_sweep_run(&(th_sweep){.op = host_round_op,
                                 .arg = &h,
                                 .setup = host_round_setup,
                                 .max_rounds = 200});
  th_dnsmasq_stop(&h.d);
}
