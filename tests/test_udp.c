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
