/* UDP: round trips over IPv4 and IPv6, recvmmsg batches, truncation, a
 * default peer, send futures, options, and bad input. */
#include "support/test.h"

#include <string.h>
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
