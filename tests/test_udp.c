/* UDP: round trips over IPv4 and IPv6, recvmmsg batches, truncation, a
 * default peer, send futures, options, and bad input. */
#include "support/test.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct peer {
  weft_udp u;
  int got, truncated, errors;
  size_t last_len;
  char last[8];
  struct sockaddr_storage from;
  weft_udp_send_req reply;
  bool echo;
} peer;

static void sent_count(weft_udp_send_req *req, int status) {
  int *c = req->data;
  c[0]++;
  c[1] = status;
}

static void on_dgram(weft_udp *u, ssize_t n, const weft_buf *buf,
                     const struct sockaddr *addr, unsigned flags) {
  peer *p = (peer *)u;
  if (n < 0) {
    p->errors++;
    return;
  }
  p->got++;
  p->last_len = (size_t)n;
  memcpy(p->last, buf->base, n < 8 ? (size_t)n : 8);
  if (flags & WEFT_UDP_TRUNCATED) p->truncated++;
  memcpy(&p->from, addr, weft_sockaddr_len(addr));
  if (p->echo) {
    static char copy[65536]; /* the loop's buffer is valid in here only */
    memcpy(copy, buf->base, (size_t)n);
    weft_buf b = weft_buf_init(copy, (size_t)n);
    cr_assert_eq(weft_udp_send(&p->reply, u, &b, 1, addr, NULL), 0);
  }
}

static void bind_peer(weft_loop *loop, peer *p, const char *ip,
                      struct sockaddr_storage *addr) {
  memset(p, 0, sizeof *p);
  cr_assert_eq(weft_udp_init(loop, &p->u), 0);
  if (strchr(ip, ':'))
    weft_ip6_addr(ip, 0, (struct sockaddr_in6 *)addr);
  else
    weft_ip4_addr(ip, 0, (struct sockaddr_in *)addr);
  cr_assert_eq(weft_udp_bind(&p->u, (struct sockaddr *)addr, 0), 0);
  socklen_t len = sizeof *addr;
  cr_assert_eq(weft_udp_getsockname(&p->u, (struct sockaddr *)addr, &len), 0);
  cr_assert_eq(weft_udp_recv_start(&p->u, on_dgram), 0);
}

static void round_trip(const char *ip) {
  weft_loop *loop = th_loop();
  peer srv, cli;
  struct sockaddr_storage sa, ca;
  bind_peer(loop, &srv, ip, &sa);
  srv.echo = true;
  bind_peer(loop, &cli, ip, &ca);
  enum { N = 100 };
  for (int i = 0; i < N; i++) {
    int c[2] = {0, -1};
    weft_udp_send_req req;
    req.data = c;
    char msg[8];
    memcpy(msg, "ping", 4);
    memcpy(msg + 4, &i, 4);
    weft_buf b = weft_buf_init(msg, 8);
    cr_assert_eq(
        weft_udp_send(&req, &cli.u, &b, 1, (struct sockaddr *)&sa, sent_count),
        0);
    cr_assert_eq(c[0], 0);
    while (cli.got == i)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    cr_assert_eq(c[0], 1);
    cr_assert_eq(c[1], 0);
    cr_assert_eq(cli.last_len, 8);
    cr_assert_eq(memcmp(cli.last, msg, 8), 0);
    cr_assert_eq(weft_sockaddr_port((struct sockaddr *)&cli.from),
                 weft_sockaddr_port((struct sockaddr *)&sa));
  }
  cr_assert_eq(srv.got, N);
  cr_assert_eq(cli.got, N);
  cr_assert_eq(srv.truncated + cli.truncated, 0);
  th_loop_finish(loop);
}

Test(udp, round_trips_ipv4, .timeout = 10) { round_trip("127.0.0.1"); }
Test(udp, round_trips_ipv6, .timeout = 10) { round_trip("::1"); }

Test(udp, batch_receives_all_and_flags_truncation, .timeout = 10) {
  weft_loop *loop = th_loop();
  peer srv, cli;
  struct sockaddr_storage sa, ca;
  bind_peer(loop, &srv, "127.0.0.1", &sa);
  bind_peer(loop, &cli, "127.0.0.1", &ca);
  cr_assert_eq(weft_udp_set_batch(&srv.u, 16), 0); /* 4 KiB slots */
  static char big[5000];
  memset(big, 'z', sizeof big);
  weft_udp_send_req reqs[41];
  int c[2] = {0, 0};
  /* one lone datagram first: the receiver then asks for 1 at a time and
   * must grow back to full batches for the flood below */
  weft_buf one = weft_buf_init(big, 10);
  cr_assert_eq(
      weft_udp_send(&reqs[40], &cli.u, &one, 1, (struct sockaddr *)&sa, NULL),
      0);
  while (srv.got < 1)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  srv.got = 0;
  for (int i = 0; i < 40; i++) {
    reqs[i].data = c;
    weft_buf b = weft_buf_init(big, i == 39 ? sizeof big : 100);
    cr_assert_eq(weft_udp_send(&reqs[i], &cli.u, &b, 1, (struct sockaddr *)&sa,
                               sent_count),
                 0);
  }
  while (srv.got < 40)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(c[0], 40);
  cr_assert_eq(srv.truncated, 1);
  cr_assert_eq(srv.last_len, WEFT_STREAM_SLAB_SIZE / 16); /* cut at the slot */
  /* with a batch of 1 the whole datagram fits */
  cr_assert_eq(weft_udp_set_batch(&srv.u, 1), 0);
  weft_buf b = weft_buf_init(big, sizeof big);
  cr_assert_eq(
      weft_udp_send(&reqs[0], &cli.u, &b, 1, (struct sockaddr *)&sa, NULL), 0);
  while (srv.got < 41)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(srv.last_len, sizeof big);
  cr_assert_eq(srv.truncated, 1);
  th_loop_finish(loop);
}

Test(udp, connected_socket_and_send_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  peer srv;
  struct sockaddr_storage sa;
  bind_peer(loop, &srv, "127.0.0.1", &sa);
  weft_udp c;
  cr_assert_eq(weft_udp_init(loop, &c), 0);
  cr_assert_eq(weft_udp_connect(&c, NULL), -ENOTCONN);
  cr_assert_eq(weft_udp_connect(&c, (struct sockaddr *)&sa), 0);
  struct sockaddr_storage pa;
  socklen_t len = sizeof pa;
  cr_assert_eq(weft_udp_getpeername(&c, (struct sockaddr *)&pa, &len), 0);
  cr_assert_eq(weft_sockaddr_port((struct sockaddr *)&pa),
               weft_sockaddr_port((struct sockaddr *)&sa));
  weft_buf parts[2] = {weft_buf_init("ab", 2), weft_buf_init("cde", 3)};
  weft_future *f;
  cr_assert_eq(weft_udp_send_future(&c, parts, 2, (struct sockaddr *)&sa, &f),
               -EINVAL);
  cr_assert_eq(weft_udp_send_future(&c, parts, 2, NULL, &f), 0);
  while (srv.got == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 5);
  weft_future_unref(f);
  cr_assert_eq(srv.last_len, 5);
  cr_assert_eq(memcmp(srv.last, "abcde", 5), 0);
  cr_assert_eq(weft_udp_send_queue_count(&c), 0);
  /* dissolve the default peer: sends need an address again */
  cr_assert_eq(weft_udp_connect(&c, NULL), 0);
  weft_udp_send_req req;
  cr_assert_eq(weft_udp_send(&req, &c, parts, 2, NULL, NULL), -EINVAL);
  th_loop_finish(loop);
}

Test(udp, connected_send_to_closed_port_reports_error, .timeout = 10) {
  weft_loop *loop = th_loop();
  peer p;
  struct sockaddr_storage sa, dead;
  bind_peer(loop, &p, "127.0.0.1", &sa);
  /* a port with nobody behind it */
  weft_udp tmp;
  weft_udp_init(loop, &tmp);
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&dead);
  cr_assert_eq(weft_udp_bind(&tmp, (struct sockaddr *)&dead, 0), 0);
  socklen_t len = sizeof dead;
  weft_udp_getsockname(&tmp, (struct sockaddr *)&dead, &len);
  weft_close(&tmp.base, NULL);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_udp_connect(&p.u, (struct sockaddr *)&dead), 0);
  weft_udp_send_req req;
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_udp_send(&req, &p.u, &b, 1, NULL, NULL), 0);
  while (p.errors == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(p.errors, 1); /* ECONNREFUSED from the ICMP reply */
  th_loop_finish(loop);
}

Test(udp, options_and_multicast, .timeout = 10) {
  weft_loop *loop = th_loop();
  peer p;
  struct sockaddr_storage sa;
  bind_peer(loop, &p, "127.0.0.1", &sa);
  cr_assert_eq(weft_udp_set_broadcast(&p.u, true), 0);
  cr_assert_eq(weft_udp_set_multicast_ttl(&p.u, 4), 0);
  cr_assert_eq(weft_udp_set_multicast_ttl(&p.u, 256), -EINVAL);
  cr_assert_eq(weft_udp_set_multicast_loop(&p.u, true), 0);
  cr_assert_eq(weft_udp_set_multicast_interface(&p.u, "127.0.0.1"), 0);
  cr_assert_eq(weft_udp_set_multicast_interface(&p.u, "nonsense"), -EINVAL);
  cr_assert_eq(weft_udp_set_membership(&p.u, "239.1.2.3", "127.0.0.1", true),
               0);
  cr_assert_eq(weft_udp_set_membership(&p.u, "239.1.2.3", "127.0.0.1", false),
               0);
  cr_assert_eq(weft_udp_set_membership(&p.u, "not-an-ip", NULL, true), -EINVAL);
  cr_assert_eq(weft_udp_set_membership(&p.u, NULL, NULL, true), -EINVAL);
  th_loop_finish(loop);
}

static void never_recv(weft_udp *u, ssize_t n, const weft_buf *b,
                       const struct sockaddr *a, unsigned f) {
  (void)u, (void)n, (void)b, (void)a, (void)f;
}

static void udp_closed(weft_handle *h) {
  int *closed = h->data;
  (*closed)++;
}

Test(udp, bad_input_and_close_after_sends, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_udp u;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  struct sockaddr bad = {.sa_family = AF_UNIX};
  weft_udp_send_req req;
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_udp_init(NULL, &u), -EINVAL);
  cr_assert_eq(weft_udp_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_udp_init(loop, &u), 0);
  cr_assert_eq(weft_udp_recv_start(&u, never_recv), -EINVAL); /* no socket */
  cr_assert_eq(weft_udp_bind(&u, &bad, 0), -EINVAL);
  cr_assert_eq(weft_udp_bind(&u, (struct sockaddr *)&a, 0x40), -EINVAL);
  cr_assert_eq(weft_udp_bind(&u, (struct sockaddr *)&a, WEFT_UDP_IPV6ONLY),
               -EINVAL);
  cr_assert_eq(weft_udp_send(&req, &u, &b, 1, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_udp_send(&req, &u, &b, 0, (struct sockaddr *)&a, NULL),
               -EINVAL);
  cr_assert_eq(weft_udp_send(&req, &u, &b, 1, &bad, NULL), -EINVAL);
  cr_assert_eq(weft_udp_send(NULL, &u, &b, 1, (struct sockaddr *)&a, NULL),
               -EINVAL);
  cr_assert_eq(weft_udp_set_batch(&u, 0), -EINVAL);
  cr_assert_eq(weft_udp_set_batch(&u, 65), -EINVAL);
  cr_assert_eq(weft_udp_set_broadcast(&u, true), -EINVAL); /* no socket */
  cr_assert_eq(weft_udp_bind(&u, (struct sockaddr *)&a, WEFT_UDP_REUSEADDR), 0);
  cr_assert_eq(weft_udp_bind(&u, (struct sockaddr *)&a, 0),
               -EINVAL); /* twice */
  /* sends the kernel took complete with 0, even when the handle closes
   * before their callbacks ran; the close callback comes after them */
  socklen_t len = sizeof a;
  weft_udp_getsockname(&u, (struct sockaddr *)&a, &len);
  int c[2] = {0, 0};
  weft_udp_send_req reqs[10];
  for (int i = 0; i < 10; i++) {
    reqs[i].data = c;
    cr_assert_eq(
        weft_udp_send(&reqs[i], &u, &b, 1, (struct sockaddr *)&a, sent_count),
        0);
  }
  cr_assert_eq(weft_udp_send_queue_count(&u), 0);
  int closed = 0;
  u.base.data = &closed;
  cr_assert_eq(weft_close(&u.base, udp_closed), 0);
  cr_assert_eq(weft_udp_send(&req, &u, &b, 1, (struct sockaddr *)&a, NULL),
               -EINVAL);
  cr_assert_eq(c[0], 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(c[0], 10);
  cr_assert_eq(c[1], 0);
  cr_assert_eq(closed, 1);
  th_loop_finish(loop);
}

/* bind, recv_start (the loop's buffer), and a send future with more
 * buffers than fit inline: every allocation fails in turn, cleanly */
static int udp_alloc_round(weft_loop *loop, void *arg) {
  weft_udp *u = arg; /* outlives the op: closed by the sweep */
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_udp_init(loop, u), 0);
  cr_assert_eq(weft_udp_bind(u, (struct sockaddr *)&a, 0), 0);
  socklen_t len = sizeof a;
  weft_udp_getsockname(u, (struct sockaddr *)&a, &len);
  int err = weft_udp_recv_start(u, never_recv);
  if (err != 0) return err;
  weft_buf bufs[6];
  for (int i = 0; i < 6; i++)
    bufs[i] = weft_buf_init("ab", 2);
  weft_future *f;
  if ((err = weft_udp_send_future(u, bufs, 6, (struct sockaddr *)&a, &f)) != 0)
    return err;
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 12);
  weft_future_unref(f);
  return 0;
}

Test(udp, allocation_failures_are_clean, .timeout = 20) {
  weft_udp u;
  th_alloc_sweep_run(
      &(th_sweep){.op = udp_alloc_round, .arg = &u, .max_rounds = 200});
}

/* ---- weft_udp_recv_future ---------------------------------------------- */

typedef struct rf_count {
  int calls;
  weft_future_state state;
  int64_t value;
  int err;
} rf_count;

static void rf_settled(weft_future *f, void *arg) {
  rf_count *c = arg;
  c->calls++;
  c->state = weft_future_get_state(f);
  c->err = weft_future_error(f);
  if (c->state == WEFT_FUTURE_FULFILLED) c->value = weft_future_value_i64(f);
}

static void bind_plain(weft_loop *loop, weft_udp *u, const char *ip,
                       struct sockaddr_storage *addr) {
  cr_assert_eq(weft_udp_init(loop, u), 0);
  if (strchr(ip, ':'))
    weft_ip6_addr(ip, 0, (struct sockaddr_in6 *)addr);
  else
    weft_ip4_addr(ip, 0, (struct sockaddr_in *)addr);
  cr_assert_eq(weft_udp_bind(u, (struct sockaddr *)addr, 0), 0);
  socklen_t len = sizeof *addr;
  cr_assert_eq(weft_udp_getsockname(u, (struct sockaddr *)addr, &len), 0);
}

static void send_one(weft_udp *from, const char *data, size_t n,
                     const struct sockaddr_storage *to) {
  weft_future *f;
  weft_buf b = weft_buf_init((void *)data, n);
  cr_assert_eq(
      weft_udp_send_future(from, &b, 1, (const struct sockaddr *)to, &f), 0);
  weft_future_unref(f);
}

static void recv_future_round_trip(const char *ip) {
  weft_loop *loop = th_loop();
  weft_udp a, b;
  struct sockaddr_storage aa, ba, from;
  bind_plain(loop, &a, ip, &aa);
  bind_plain(loop, &b, ip, &ba);
  char buf[16];
  memset(buf, 0, sizeof buf);
  weft_future *f;
  rf_count c = {0};
  cr_assert_eq(weft_udp_recv_future(&a, buf, sizeof buf, &from, &f), 0);
  cr_assert_eq(weft_future_on_settled(f, rf_settled, &c), 0);
  send_one(&b, "hello", 5, &aa);
  while (c.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.state, WEFT_FUTURE_FULFILLED, "%s", weft_err_name(c.err));
  cr_assert_eq(c.value, 5);
  cr_assert_eq(memcmp(buf, "hello", 5), 0);
  cr_assert_eq(buf[5], 0);
  cr_assert_eq(from.ss_family, ba.ss_family);
  cr_assert_eq(weft_sockaddr_len((struct sockaddr *)&from),
               weft_sockaddr_len((struct sockaddr *)&ba));
  cr_assert_eq(memcmp(&from, &ba, weft_sockaddr_len((struct sockaddr *)&ba)),
               0);
  weft_future_unref(f);
  /* a second one, without `from`, a datagram cut to the buffer; an empty
   * datagram gives 0 */
  rf_count d = {0}, e = {0};
  cr_assert_eq(weft_udp_recv_future(&a, buf, 3, NULL, &f), 0);
  weft_future_on_settled(f, rf_settled, &d);
  send_one(&b, "abcdefgh", 8, &aa);
  while (d.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(d.value, 3, "%s", weft_err_name(d.err));
  cr_assert_eq(memcmp(buf, "abc", 3), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_udp_recv_future(&a, NULL, 0, NULL, &f), 0);
  weft_future_on_settled(f, rf_settled, &e);
  send_one(&b, "", 0, &aa);
  while (e.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(e.state, WEFT_FUTURE_FULFILLED, "%s", weft_err_name(e.err));
  cr_assert_eq(e.value, 0);
  weft_future_unref(f);
  /* nothing pending: the handle no longer keeps the loop alive */
  th_run(loop);
  cr_assert_eq(c.calls + d.calls + e.calls, 3);
  th_loop_finish(loop);
}

Test(udp, recv_future_ipv4, .timeout = 10) {
  recv_future_round_trip("127.0.0.1");
}
Test(udp, recv_future_ipv6, .timeout = 10) { recv_future_round_trip("::1"); }

Test(udp, recv_future_bad_input_and_ebusy, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_udp u, unbound;
  struct sockaddr_storage ua;
  char buf[4];
  weft_future *f = NULL, *g = NULL;
  cr_assert_eq(weft_udp_recv_future(NULL, buf, 4, NULL, &f), -EINVAL);
  cr_assert_eq(weft_udp_init(loop, &unbound), 0);
  cr_assert_eq(weft_udp_recv_future(&unbound, buf, 4, NULL, &f), -EINVAL);
  bind_plain(loop, &u, "127.0.0.1", &ua);
  cr_assert_eq(weft_udp_recv_future(&u, buf, 4, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_udp_recv_future(&u, NULL, 4, NULL, &f), -EINVAL);
  cr_assert_null(f);
  /* recv_start active: -EBUSY; and the other way round */
  cr_assert_eq(weft_udp_recv_start(&u, never_recv), 0);
  cr_assert_eq(weft_udp_recv_future(&u, buf, 4, NULL, &f), -EBUSY);
  cr_assert_eq(weft_udp_recv_stop(&u), 0);
  cr_assert_eq(weft_udp_recv_future(&u, buf, 4, NULL, &f), 0);
  cr_assert_eq(weft_udp_recv_future(&u, buf, 4, NULL, &g), -EBUSY);
  cr_assert_null(g);
  cr_assert_eq(weft_udp_recv_start(&u, never_recv), -EBUSY);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_udp_recv_start(&u, never_recv), 0, "after the cancel");
  cr_assert_eq(weft_udp_recv_stop(&u), 0);
  cr_assert_eq(weft_close(&u.base, NULL), 0);
  cr_assert_eq(weft_udp_recv_future(&u, buf, 4, NULL, &f), -EINVAL, "closing");
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(udp, recv_future_cancel_keeps_the_handle_usable, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_udp a, b;
  struct sockaddr_storage aa, ba;
  bind_plain(loop, &a, "127.0.0.1", &aa);
  bind_plain(loop, &b, "127.0.0.1", &ba);
  char buf[8] = {0};
  weft_future *f;
  rf_count c = {0}, d = {0};
  cr_assert_eq(weft_udp_recv_future(&a, buf, sizeof buf, NULL, &f), 0);
  weft_future_on_settled(f, rf_settled, &c);
  cr_assert_eq(weft_future_cancel(f), 0);
  th_run(loop); /* nothing pending: returns */
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.state, WEFT_FUTURE_CANCELLED);
  cr_assert_eq(c.err, -ECANCELED, "%s", weft_err_name(c.err));
  weft_future_unref(f);
  /* a datagram sent now goes to the next receive future */
  cr_assert_eq(weft_udp_recv_future(&a, buf, sizeof buf, NULL, &f), 0);
  weft_future_on_settled(f, rf_settled, &d);
  send_one(&b, "xy", 2, &aa);
  while (d.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(d.value, 2, "%s", weft_err_name(d.err));
  cr_assert_eq(memcmp(buf, "xy", 2), 0);
  cr_assert_eq(c.calls, 1);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(udp, recv_future_close_rejects_ecanceled, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_udp u;
  struct sockaddr_storage ua;
  bind_plain(loop, &u, "127.0.0.1", &ua);
  char buf[8];
  weft_future *f;
  rf_count c = {0};
  int closed = 0;
  cr_assert_eq(weft_udp_recv_future(&u, buf, sizeof buf, NULL, &f), 0);
  weft_future_on_settled(f, rf_settled, &c);
  u.base.data = &closed;
  cr_assert_eq(weft_close(&u.base, udp_closed), 0);
  th_run(loop);
  cr_assert_eq(closed, 1);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(c.state, WEFT_FUTURE_REJECTED);
  cr_assert_eq(c.err, -ECANCELED, "%s", weft_err_name(c.err));
  cr_assert_eq(weft_future_cancel(f), -EALREADY);
  weft_future_unref(f);
  th_loop_finish(loop);
}

static int recv_future_alloc_round(weft_loop *loop, void *arg) {
  weft_udp *u = arg; /* closed by the sweep */
  struct sockaddr_storage ua;
  bind_plain(loop, &u[0], "127.0.0.1", &ua);
  char buf[4];
  weft_future *f;
  int err = weft_udp_recv_future(&u[0], buf, sizeof buf, NULL, &f);
  if (err != 0) return err;
  struct sockaddr_storage ba;
  bind_plain(loop, &u[1], "127.0.0.1", &ba);
  weft_buf b = weft_buf_init("ok", 2);
  weft_future *s;
  err = weft_udp_send_future(&u[1], &b, 1, (struct sockaddr *)&ua, &s);
  if (err == 0) weft_future_unref(s);
  if (err != 0) {
    weft_future_cancel(f);
    weft_future_unref(f);
    return err;
  }
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 2, "%s",
               weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
  return 0;
}

Test(udp, recv_future_allocation_failures_are_clean, .timeout = 20) {
  weft_udp u[2];
  th_alloc_sweep_run(
      &(th_sweep){.op = recv_future_alloc_round, .arg = u, .max_rounds = 200});
}

/* ---- batches (sendmmsg), try_send, Unix datagram sockets ------------------
 */

static int open_fd_count(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

typedef struct batch_done {
  int calls, status;
  unsigned sent;
} batch_done;

static void on_batch(weft_udp_batch_req *req, int status, unsigned sent) {
  batch_done *d = req->data;
  d->calls++;
  d->status = status;
  d->sent = sent;
}

#define NDG 50
static char dg_data[NDG][1024];
static weft_buf dg_bufs[NDG];
static weft_udp_dgram dgs[NDG];

/* NDG datagrams of 1 KiB, datagram i starting with byte i, to `to`. */
static void make_dgrams(const struct sockaddr *to) {
  for (int i = 0; i < NDG; i++) {
    memset(dg_data[i], 'a' + i % 26, sizeof dg_data[i]);
    dg_data[i][0] = (char)i;
    dg_bufs[i] = weft_buf_init(dg_data[i], sizeof dg_data[i]);
    dgs[i] = (weft_udp_dgram){&dg_bufs[i], 1, to};
  }
}

typedef struct seq_peer {
  weft_udp u;
  int got, in_order, nulls;
  size_t bytes;
  struct sockaddr_un from;
} seq_peer;

static void on_seq(weft_udp *u, ssize_t n, const weft_buf *buf,
                   const struct sockaddr *addr, unsigned flags) {
  seq_peer *p = (seq_peer *)u;
  cr_assert_geq(n, 0, "%s", weft_err_name((int)n));
  cr_assert_eq(flags, 0);
  if (n > 0 && (unsigned char)buf->base[0] == (unsigned)p->got) p->in_order++;
  p->got++;
  p->bytes += (size_t)n;
  if (addr == NULL)
    p->nulls++;
  else if (addr->sa_family == AF_UNIX)
    memcpy(&p->from, addr, sizeof p->from);
}

Test(udp, send_batch_sends_every_datagram_in_order, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  seq_peer srv = {0};
  weft_udp cli;
  struct sockaddr_storage sa, ca;
  bind_plain(loop, &srv.u, "127.0.0.1", &sa);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  cr_assert_eq(weft_udp_init(loop, &cli), 0); /* binds on the first send */
  make_dgrams((struct sockaddr *)&sa);
  batch_done d = {0};
  weft_udp_batch_req req;
  req.data = &d;
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, NDG, on_batch), 0);
  cr_assert_eq(d.calls, 0); /* never inline */
  while (srv.got < NDG)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(d.calls, 1);
  cr_assert_eq(d.status, 0, "%s", weft_err_name(d.status));
  cr_assert_eq(d.sent, NDG);
  cr_assert_eq(srv.in_order, NDG);
  cr_assert_eq(srv.bytes, NDG * 1024u);
  socklen_t len = sizeof ca;
  cr_assert_eq(weft_udp_getsockname(&cli, (struct sockaddr *)&ca, &len), 0);
  cr_assert_neq(weft_sockaddr_port((struct sockaddr *)&ca), 0);
  /* the future form fulfils with the count */
  weft_future *f;
  cr_assert_eq(weft_udp_send_batch_future(&cli, dgs, 10, &f), 0);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 10, "%s",
               weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
  while (srv.got < NDG + 10)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  /* the synchronous form: all of them fit */
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 5), 5);
  cr_assert_eq(weft_udp_try_send(&cli, &dg_bufs[7], 1, (struct sockaddr *)&sa),
               1024);
  while (srv.got < NDG + 16)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(srv.bytes, (NDG + 16) * 1024u);
  th_loop_finish(loop);
  cr_assert_eq(open_fd_count(), fds);
}

/* A Unix datagram receiver holds max_dgram_qlen datagrams (10 by default)
 * while it does not read: a sender connected to it then blocks. */
static void unix_pair(weft_loop *loop, seq_peer *srv, weft_udp *cli,
                      const char *path) {
  unlink(path);
  memset(srv, 0, sizeof *srv);
  cr_assert_eq(weft_udp_init(loop, &srv->u), 0);
  cr_assert_eq(weft_udp_bind_unix(&srv->u, path, 0), 0);
  cr_assert_eq(weft_udp_init(loop, cli), 0);
  cr_assert_eq(weft_udp_connect_unix(cli, path, 0), 0);
}

static void tmp_path(char *buf, size_t n, const char *what) {
  snprintf(buf, n, "/tmp/weft-udp-%d-%s.sock", (int)getpid(), what);
}

Test(udp, send_batch_queues_what_the_socket_does_not_take, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  char path[108];
  tmp_path(path, sizeof path, "q");
  seq_peer srv;
  weft_udp cli;
  unix_pair(loop, &srv, &cli, path);
  make_dgrams(NULL);
  batch_done d = {0};
  weft_udp_batch_req req;
  req.data = &d;
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, NDG, on_batch), 0);
  cr_assert_eq(weft_udp_send_queue_count(&cli), 1); /* the receiver is full */
  cr_assert(weft_is_active(&cli.base));
  /* while it waits, the try forms say -EAGAIN (order is kept) */
  cr_assert_eq(weft_udp_try_send(&cli, &dg_bufs[0], 1, NULL), -EAGAIN);
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 2), -EAGAIN);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(d.calls, 0);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  while (d.calls == 0 || srv.got < NDG)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(d.status, 0, "%s", weft_err_name(d.status));
  cr_assert_eq(d.sent, NDG);
  cr_assert_eq(srv.in_order, NDG); /* nothing lost, nothing reordered */
  cr_assert_eq(srv.nulls, NDG);    /* the sender has no name */
  cr_assert_eq(weft_udp_send_queue_count(&cli), 0);
  th_loop_finish(loop);
  unlink(path);
  cr_assert_eq(open_fd_count(), fds);
}

Test(udp, try_send_says_eagain_when_the_socket_is_full, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  char path[108];
  tmp_path(path, sizeof path, "t");
  seq_peer srv;
  weft_udp cli;
  unix_pair(loop, &srv, &cli, path);
  make_dgrams(NULL);
  int sent = 0, r;
  while ((r = weft_udp_try_send(&cli, &dg_bufs[sent], 1, NULL)) == 1024)
    sent++;
  cr_assert_eq(r, -EAGAIN, "%s", weft_err_name(r));
  cr_assert_gt(sent, 0);
  cr_assert_lt(sent, NDG);
  cr_assert_eq(weft_udp_send_queue_count(&cli), 0); /* nothing queued */
  /* the batch form sends what fits, then says -EAGAIN */
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 3), -EAGAIN);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  while (srv.got < sent)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(srv.in_order, sent);
  r = weft_udp_try_send_batch(&cli, dgs + sent, (unsigned)(NDG - sent));
  cr_assert_gt(r, 0, "%s", weft_err_name(r));
  cr_assert_leq(r, NDG - sent);
  int total = sent + r;
  while (srv.got < total)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(srv.in_order, total);
  th_loop_finish(loop);
  unlink(path);
  cr_assert_eq(open_fd_count(), fds);
}

Test(udp, batch_cancel_and_close_report_what_was_sent, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  char path[108];
  tmp_path(path, sizeof path, "c");
  seq_peer srv;
  weft_udp cli;
  unix_pair(loop, &srv, &cli, path);
  make_dgrams(NULL);
  /* a queued batch future, cancelled: out of the queue, -ECANCELED */
  weft_future *f;
  cr_assert_eq(weft_udp_send_batch_future(&cli, dgs, NDG, &f), 0);
  cr_assert_eq(weft_udp_send_queue_count(&cli), 1);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_udp_send_queue_count(&cli), 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  /* a queued batch when the handle closes: -ECANCELED with the count */
  batch_done d = {0};
  weft_udp_batch_req req;
  req.data = &d;
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, 5, on_batch), 0);
  cr_assert_eq(weft_udp_send_queue_count(&cli), 1);
  cr_assert_eq(weft_close(&cli.base, NULL), 0);
  cr_assert_eq(d.calls, 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(d.calls, 1);
  cr_assert_eq(d.status, -ECANCELED, "%s", weft_err_name(d.status));
  cr_assert_eq(d.sent, 0); /* the receiver was full from the future's */
  th_loop_finish(loop);
  unlink(path);
  cr_assert_eq(open_fd_count(), fds);
}

Test(udp, batch_error_stops_at_the_failing_datagram, .timeout = 10) {
  weft_loop *loop = th_loop();
  seq_peer srv = {0};
  weft_udp cli;
  struct sockaddr_storage sa;
  bind_plain(loop, &srv.u, "127.0.0.1", &sa);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  cr_assert_eq(weft_udp_init(loop, &cli), 0);
  make_dgrams((struct sockaddr *)&sa);
  static char huge[70000]; /* above the 65507-byte IPv4 limit */
  weft_buf hb = weft_buf_init(huge, sizeof huge);
  dgs[3] = (weft_udp_dgram){&hb, 1, (struct sockaddr *)&sa};
  batch_done d = {0};
  weft_udp_batch_req req;
  req.data = &d;
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, 6, on_batch), 0);
  while (d.calls == 0 || srv.got < 3)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(d.status, -EMSGSIZE, "%s", weft_err_name(d.status));
  cr_assert_eq(d.sent, 3);
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 6), 3); /* the good ones */
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs + 3, 3), -EMSGSIZE);
  cr_assert_eq(weft_udp_try_send(&cli, &hb, 1, (struct sockaddr *)&sa),
               -EMSGSIZE);
  weft_future *f;
  cr_assert_eq(weft_udp_send_batch_future(&cli, dgs + 3, 1, &f), 0);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_error(f), -EMSGSIZE);
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(udp, batch_and_try_send_bad_input, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  seq_peer srv = {0};
  weft_udp cli, tcp_like;
  struct sockaddr_storage sa;
  bind_plain(loop, &srv.u, "127.0.0.1", &sa);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  cr_assert_eq(weft_udp_init(loop, &cli), 0);
  make_dgrams((struct sockaddr *)&sa);
  weft_udp_batch_req req;
  weft_future *f = NULL;
  struct sockaddr bad = {.sa_family = AF_UNIX};
  cr_assert_eq(weft_udp_send_batch(NULL, &cli, dgs, 1, NULL), -EINVAL);
  cr_assert_eq(weft_udp_send_batch(&req, NULL, dgs, 1, NULL), -EINVAL);
  cr_assert_eq(weft_udp_send_batch(&req, &cli, NULL, 1, NULL), -EINVAL);
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, 0, NULL), -EINVAL);
  cr_assert_eq(
      weft_udp_send_batch(&req, &cli, dgs, WEFT_UDP_BATCH_MAX + 1, NULL),
      -EINVAL);
  cr_assert_eq(weft_udp_send_batch_future(&cli, dgs, 1, NULL), -EINVAL);
  cr_assert_eq(weft_udp_send_batch_future(NULL, dgs, 1, &f), -EINVAL);
  cr_assert_eq(weft_udp_send_batch_future(&cli, dgs, 0, &f), -EINVAL);
  cr_assert_eq(weft_udp_try_send_batch(NULL, dgs, 1), -EINVAL);
  cr_assert_eq(weft_udp_try_send_batch(&cli, NULL, 1), -EINVAL);
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 0), -EINVAL);
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, WEFT_UDP_BATCH_MAX + 1),
               -EINVAL);
  /* one bad datagram anywhere: none is sent */
  weft_udp_dgram keep[3] = {dgs[4], dgs[5], dgs[6]};
  dgs[5].nbufs = 0;
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, 10, NULL), -EINVAL);
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 10), -EINVAL);
  dgs[5] = keep[1];
  dgs[6].bufs = NULL;
  cr_assert_eq(weft_udp_send_batch_future(&cli, dgs, 10, &f), -EINVAL);
  dgs[6] = keep[2];
  dgs[4].addr = NULL; /* unconnected: an address is needed */
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 10), -EINVAL);
  dgs[4].addr = &bad; /* AF_UNIX on an IP handle */
  cr_assert_eq(weft_udp_send_batch(&req, &cli, dgs, 10, NULL), -EINVAL);
  dgs[4] = keep[0];
  cr_assert_eq(weft_udp_try_send(NULL, dg_bufs, 1, (struct sockaddr *)&sa),
               -EINVAL);
  cr_assert_eq(weft_udp_try_send(&cli, NULL, 1, (struct sockaddr *)&sa),
               -EINVAL);
  cr_assert_eq(weft_udp_try_send(&cli, dg_bufs, 0, (struct sockaddr *)&sa),
               -EINVAL);
  cr_assert_eq(weft_udp_try_send(&cli, dg_bufs, 1, NULL), -EINVAL);
  cr_assert_eq(weft_udp_try_send(&cli, dg_bufs, 1, &bad), -EINVAL);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(srv.got, 0);
  /* a connected handle takes no address; a closing one nothing */
  cr_assert_eq(weft_udp_connect(&cli, (struct sockaddr *)&sa), 0);
  cr_assert_eq(weft_udp_try_send(&cli, dg_bufs, 1, (struct sockaddr *)&sa),
               -EINVAL);
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 2), -EINVAL);
  dgs[0].addr = dgs[1].addr = NULL;
  cr_assert_eq(weft_udp_try_send_batch(&cli, dgs, 2), 2);
  cr_assert_eq(weft_udp_init(loop, &tcp_like), 0);
  cr_assert_eq(weft_close(&tcp_like.base, NULL), 0);
  cr_assert_eq(weft_udp_try_send_batch(&tcp_like, dgs, 1), -EINVAL);
  cr_assert_eq(weft_udp_send_batch(&req, &tcp_like, dgs, 1, NULL), -EINVAL);
  cr_assert_eq(weft_udp_try_send(&tcp_like, dg_bufs, 1, NULL), -EINVAL);
  while (srv.got < 2)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  th_loop_usable(loop);
  th_loop_finish(loop);
  cr_assert_eq(open_fd_count(), fds);
}

static int batch_alloc_round(weft_loop *loop, void *arg) {
  weft_udp *u = arg;
  struct sockaddr_storage a;
  bind_plain(loop, u, "127.0.0.1", &a);
  weft_buf b = weft_buf_init("hi", 2);
  weft_udp_dgram d[2] = {{&b, 1, (struct sockaddr *)&a},
                         {&b, 1, (struct sockaddr *)&a}};
  weft_future *f;
  int err = weft_udp_send_batch_future(u, d, 2, &f);
  if (err != 0) return err;
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 2);
  weft_future_unref(f);
  return 0;
}

Test(udp, batch_future_allocation_failures_are_clean, .timeout = 20) {
  weft_udp u;
  th_alloc_sweep_run(
      &(th_sweep){.op = batch_alloc_round, .arg = &u, .max_rounds = 200});
}

/* ---- Unix datagram sockets ---------------------------------------------- */

Test(udp, unix_datagrams_carry_the_senders_path, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  char spath[108], cpath[108];
  tmp_path(spath, sizeof spath, "srv");
  tmp_path(cpath, sizeof cpath, "cli");
  unlink(spath);
  unlink(cpath);
  seq_peer srv = {0}, cli = {0};
  cr_assert_eq(weft_udp_init(loop, &srv.u), 0);
  cr_assert_eq(weft_udp_bind_unix(&srv.u, spath, 0), 0);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  cr_assert_eq(weft_udp_init(loop, &cli.u), 0);
  cr_assert_eq(weft_udp_bind_unix(&cli.u, cpath, 0), 0);
  cr_assert_eq(weft_udp_recv_start(&cli.u, on_seq), 0);
  struct sockaddr_un to = {.sun_family = AF_UNIX};
  strcpy(to.sun_path, spath);
  /* every send form, to a path */
  make_dgrams((struct sockaddr *)&to);
  weft_udp_send_req sr;
  int c[2] = {0, 0};
  sr.data = c;
  cr_assert_eq(weft_udp_send(&sr, &cli.u, &dg_bufs[0], 1,
                             (struct sockaddr *)&to, sent_count),
               0);
  cr_assert_eq(
      weft_udp_try_send(&cli.u, &dg_bufs[1], 1, (struct sockaddr *)&to), 1024);
  cr_assert_eq(weft_udp_try_send_batch(&cli.u, dgs + 2, 2), 2);
  while (srv.got < 4)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(c[0], 1);
  cr_assert_eq(c[1], 0);
  cr_assert_eq(srv.in_order, 4);
  cr_assert_eq(srv.nulls, 0);
  cr_assert_eq(srv.from.sun_family, AF_UNIX);
  cr_assert_str_eq(srv.from.sun_path, cpath); /* NUL-terminated */
  /* reply to the address the callback gave */
  struct sockaddr_un back = srv.from;
  cr_assert_eq(
      weft_udp_try_send(&srv.u, &dg_bufs[0], 1, (struct sockaddr *)&back),
      1024);
  while (cli.got < 1)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_str_eq(cli.from.sun_path, spath);
  /* the receive future gives the sender too */
  cr_assert_eq(weft_udp_recv_stop(&srv.u), 0);
  char buf[2048];
  struct sockaddr_storage from;
  weft_future *f;
  cr_assert_eq(weft_udp_recv_future(&srv.u, buf, sizeof buf, &from, &f), 0);
  cr_assert_eq(
      weft_udp_try_send(&cli.u, &dg_bufs[9], 1, (struct sockaddr *)&to), 1024);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 1024);
  weft_future_unref(f);
  cr_assert_eq(buf[0], 9);
  cr_assert_eq(from.ss_family, AF_UNIX);
  cr_assert_str_eq(((struct sockaddr_un *)&from)->sun_path, cpath);
  /* names */
  struct sockaddr_un me;
  socklen_t len = sizeof me;
  cr_assert_eq(weft_udp_getsockname(&srv.u, (struct sockaddr *)&me, &len), 0);
  cr_assert_str_eq(me.sun_path, spath);
  /* an unnamed sender: receive future's `from` is AF_UNSPEC */
  weft_udp anon;
  cr_assert_eq(weft_udp_init(loop, &anon), 0);
  cr_assert_eq(weft_udp_connect_unix(&anon, spath, 0), 0);
  cr_assert_eq(weft_udp_recv_future(&srv.u, buf, sizeof buf, &from, &f), 0);
  cr_assert_eq(weft_udp_try_send(&anon, &dg_bufs[8], 1, NULL), 1024);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 1024);
  weft_future_unref(f);
  cr_assert_eq(from.ss_family, AF_UNSPEC);
  th_loop_finish(loop);
  unlink(spath);
  unlink(cpath);
  cr_assert_eq(open_fd_count(), fds);
}

Test(udp, unix_abstract_names, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  char sname[64], cname[64];
  int sl = snprintf(sname, sizeof sname, "%cweft-udp-%d-s", 0, (int)getpid());
  int cl = snprintf(cname, sizeof cname, "%cweft-udp-%d-c", 0, (int)getpid());
  seq_peer srv = {0}, cli = {0};
  cr_assert_eq(weft_udp_init(loop, &srv.u), 0);
  cr_assert_eq(weft_udp_bind_unix(&srv.u, sname, (size_t)sl), 0);
  cr_assert_eq(weft_udp_recv_start(&srv.u, on_seq), 0);
  cr_assert_eq(weft_udp_init(loop, &cli.u), 0);
  cr_assert_eq(weft_udp_bind_unix(&cli.u, cname, (size_t)cl), 0);
  cr_assert_eq(weft_udp_recv_start(&cli.u, on_seq), 0);
  /* a sockaddr_un with the abstract name, zero-padded */
  struct sockaddr_un to = {.sun_family = AF_UNIX};
  memcpy(to.sun_path, sname, (size_t)sl);
  make_dgrams((struct sockaddr *)&to);
  cr_assert_eq(weft_udp_try_send_batch(&cli.u, dgs, 3), 3);
  while (srv.got < 3)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(srv.in_order, 3);
  cr_assert_eq(srv.from.sun_path[0], '\0');
  cr_assert_eq(memcmp(srv.from.sun_path, cname, (size_t)cl), 0);
  for (size_t i = (size_t)cl; i < sizeof srv.from.sun_path; i++)
    cr_assert_eq(srv.from.sun_path[i], '\0'); /* padded */
  /* and back, through connect_unix with the abstract name */
  cr_assert_eq(weft_udp_connect_unix(&srv.u, cname, (size_t)cl), 0);
  cr_assert_eq(weft_udp_try_send(&srv.u, &dg_bufs[0], 1, NULL), 1024);
  while (cli.got < 1)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(memcmp(cli.from.sun_path, sname, (size_t)sl), 0);
  th_loop_finish(loop);
  cr_assert_eq(open_fd_count(), fds);
}

Test(udp, unix_bad_input, .timeout = 10) {
  int fds = open_fd_count();
  weft_loop *loop = th_loop();
  char path[108], missing[108];
  tmp_path(path, sizeof path, "bad");
  tmp_path(missing, sizeof missing, "missing");
  unlink(path);
  unlink(missing);
  weft_udp u, ip;
  cr_assert_eq(weft_udp_init(loop, &u), 0);
  char longname[200];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  cr_assert_eq(weft_udp_bind_unix(NULL, path, 0), -EINVAL);
  cr_assert_eq(weft_udp_bind_unix(&u, NULL, 0), -EINVAL);
  cr_assert_eq(weft_udp_bind_unix(&u, "", 0), -EINVAL);
  cr_assert_eq(weft_udp_bind_unix(&u, longname, 0), -ENAMETOOLONG);
  cr_assert_eq(weft_udp_bind_unix(&u, "/nonexistent-dir/x.sock", 0), -ENOENT);
  cr_assert_eq(weft_udp_connect_unix(NULL, path, 0), -EINVAL);
  cr_assert_eq(weft_udp_connect_unix(&u, NULL, 0), -EINVAL);
  cr_assert_eq(weft_udp_connect_unix(&u, "", 0), -EINVAL);
  cr_assert_eq(weft_udp_connect_unix(&u, longname, 0), -ENAMETOOLONG);
  cr_assert_eq(weft_udp_connect_unix(&u, missing, 0), -ENOENT);
  cr_assert_eq(weft_udp_recv_start(&u, never_recv), -EINVAL); /* no socket */
  cr_assert_eq(weft_udp_bind_unix(&u, path, 0), 0);
  cr_assert_eq(weft_udp_bind_unix(&u, path, 0), -EINVAL); /* has a socket */
  weft_udp other;
  cr_assert_eq(weft_udp_init(loop, &other), 0);
  cr_assert_eq(weft_udp_bind_unix(&other, path, 0), -EADDRINUSE);
  cr_assert_eq(weft_udp_connect_unix(&other, missing, 0), -ENOENT);
  cr_assert_eq(weft_udp_connect_unix(&other, path, 0), 0); /* still usable */
  /* IP addresses on a Unix handle and Unix calls on an IP handle */
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 9, &a);
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_udp_try_send(&u, &b, 1, (struct sockaddr *)&a), -EINVAL);
  struct sockaddr_un empty_abstract = {.sun_family = AF_UNIX};
  cr_assert_eq(weft_udp_try_send(&u, &b, 1, (struct sockaddr *)&empty_abstract),
               -EINVAL);
  struct sockaddr_un gone = {.sun_family = AF_UNIX};
  strcpy(gone.sun_path, missing);
  cr_assert_eq(weft_udp_try_send(&u, &b, 1, (struct sockaddr *)&gone), -ENOENT);
  cr_assert_eq(weft_udp_init(loop, &ip), 0);
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_udp_bind(&ip, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(weft_udp_connect_unix(&ip, path, 0), -EINVAL);
  cr_assert_eq(weft_udp_bind_unix(&ip, path, 0), -EINVAL);
  cr_assert_eq(weft_close(&u.base, NULL), 0);
  cr_assert_eq(weft_udp_bind_unix(&u, missing, 0), -EINVAL); /* closing */
  cr_assert_eq(weft_udp_connect_unix(&u, path, 0), -EINVAL);
  th_run(loop);
  th_loop_usable(loop);
  th_loop_finish(loop);
  unlink(path);
  cr_assert_eq(open_fd_count(), fds);
}
