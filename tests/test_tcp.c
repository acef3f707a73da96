/* TCP: echo over IPv4 and IPv6, 1,000 concurrent connections, accept under
 * fd exhaustion, connect errors, cancellation and futures, socket options,
 * peer reset mid-write, and bad input to every call. */
#include "support/test.h"
#include "support/echo.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- an echo server (tests/support/echo.c) ------------------------------- */

typedef struct server {
  weft_tcp tcp;
  th_echo echo;
  unsigned bind_flags;
} server;

/* Starts an echo server on `ip` port 0; returns its address in *addr. */
static void server_start(weft_loop *loop, server *srv, const char *ip,
                         struct sockaddr_storage *addr) {
  unsigned flags = srv->bind_flags;
  memset(srv, 0, sizeof *srv);
  srv->bind_flags = flags;
  cr_assert_eq(weft_tcp_init(loop, &srv->tcp), 0);
  if (strchr(ip, ':'))
    cr_assert_eq(weft_ip6_addr(ip, 0, (struct sockaddr_in6 *)addr), 0);
  else
    cr_assert_eq(weft_ip4_addr(ip, 0, (struct sockaddr_in *)addr), 0);
  cr_assert_eq(
      weft_tcp_bind(&srv->tcp, (struct sockaddr *)addr, srv->bind_flags), 0);
  th_echo_listen(&srv->echo, &srv->tcp.stream);
  socklen_t len = sizeof *addr;
  cr_assert_eq(weft_tcp_getsockname(&srv->tcp, (struct sockaddr *)addr, &len),
               0);
  cr_assert_gt(weft_sockaddr_port((struct sockaddr *)addr), 0);
}

/* ---- an echo client --------------------------------------------------------
 */

typedef struct client {
  weft_tcp tcp;
  weft_connect_req cr;
  weft_write_req wr;
  size_t len, got;
  unsigned seed;
  int connected, written, closed, errors;
  char *out;
  char in[16384];
  int *done; /* counts finished clients */
} client;

static void client_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  (void)suggested;
  client *c = (client *)s;
  *buf = weft_buf_init(c->in, sizeof c->in);
}

static void client_closed(weft_handle *h) {
  client *c = (client *)h;
  c->closed++;
  (*c->done)++;
}

static void client_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  client *c = (client *)s;
  if (n == 0) return;
  if (n < 0) {
    c->errors++;
    weft_close(&s->base, client_closed);
    return;
  }
  cr_assert_leq(c->got + (size_t)n, c->len);
  cr_assert_eq(memcmp(buf->base, c->out + c->got, (size_t)n), 0);
  c->got += (size_t)n;
  if (c->got == c->len) weft_close(&s->base, client_closed);
}

static void client_written(weft_write_req *req, int status) {
  client *c = req->data;
  cr_assert_eq(status, 0);
  c->written++;
}

static void client_connected(weft_connect_req *req, int status) {
  client *c = req->data;
  cr_assert_eq(status, 0, "connect: %s", weft_strerror(status));
  c->connected++;
  c->wr.data = c;
  weft_buf b = weft_buf_init(c->out, c->len);
  cr_assert_eq(weft_stream_write(&c->wr, &c->tcp.stream, &b, 1, client_written),
               0);
  cr_assert_eq(
      weft_stream_read_start(&c->tcp.stream, client_alloc, client_read), 0);
}

static void client_start(weft_loop *loop, client *c,
                         const struct sockaddr_storage *addr, size_t len,
                         unsigned seed, int *done) {
  memset(c, 0, sizeof *c);
  c->len = len;
  c->seed = seed;
  c->done = done;
  c->out = malloc(len);
  for (size_t i = 0; i < len; i++)
    c->out[i] = (char)(seed * 31 + i * 7);
  cr_assert_eq(weft_tcp_init(loop, &c->tcp), 0);
  c->cr.data = c;
  cr_assert_eq(weft_tcp_connect(&c->cr, &c->tcp, (const struct sockaddr *)addr,
                                client_connected),
               0);
}

static void run_until(weft_loop *loop, const int *counter, int target) {
  while (*counter < target)
    cr_assert_neq(weft_loop_run(loop, WEFT_RUN_ONCE), -EINVAL);
}

/* Closes the listener and waits until every accepted connection (whose
 * client is gone) has seen EOF and freed itself. */
static void server_finish(weft_loop *loop, server *srv) {
  weft_close(&srv->tcp.stream.base, NULL);
  while (srv->echo.closed < srv->echo.accepted)
    weft_loop_run(loop, WEFT_RUN_ONCE);
}

static void echo_once(const char *ip, size_t len) {
  weft_loop *loop = th_loop();
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, ip, &addr);
  client c;
  int done = 0;
  client_start(loop, &c, &addr, len, 1, &done);
  run_until(loop, &done, 1);
  cr_assert_eq(c.connected, 1);
  cr_assert_eq(c.written, 1);
  cr_assert_eq(c.got, len);
  cr_assert_eq(c.errors, 0);
  cr_assert_eq(srv.echo.accepted, 1);
  free(c.out);
  run_until(loop, &srv.echo.closed,
            1); /* the server side sees EOF and closes */
  weft_close(&srv.tcp.stream.base, NULL);
  th_loop_finish(loop);
}

Test(tcp, echo_ipv4, .timeout = 10) { echo_once("127.0.0.1", 100000); }

Test(tcp, echo_ipv6, .timeout = 10) { echo_once("::1", 100000); }

Test(tcp, echo_1000_concurrent_connections, .timeout = 60) {
  struct rlimit rl;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2100 && rl.rlim_max >= 2100) {
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  weft_loop *loop = th_loop();
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "127.0.0.1", &addr);
  enum { N = 1000 };
  client *cs = calloc(N, sizeof *cs);
  int done = 0;
  for (int i = 0; i < N; i++)
    client_start(loop, &cs[i], &addr, 3000 + (size_t)i, (unsigned)i, &done);
  run_until(loop, &done, N);
  size_t bytes = 0;
  for (int i = 0; i < N; i++) {
    cr_assert_eq(cs[i].connected, 1);
    cr_assert_eq(cs[i].got, 3000 + (size_t)i);
    cr_assert_eq(cs[i].errors, 0);
    bytes += cs[i].got;
    free(cs[i].out);
  }
  cr_assert_eq(bytes, (size_t)N * 3000 + (size_t)N * (N - 1) / 2);
  cr_assert_eq(srv.echo.accepted, N);
  run_until(loop, &srv.echo.closed, N);
  weft_close(&srv.tcp.stream.base, NULL);
  th_loop_finish(loop);
  free(cs);
}

/* ---- accept under fd exhaustion --------------------------------------------
 */

Test(tcp, accept_survives_emfile_and_recovers, .timeout = 20) {
  weft_loop *loop = th_loop();
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "127.0.0.1", &addr);
  int done = 0;
  client c1;
  client_start(loop, &c1, &addr, 1000, 1, &done);
  run_until(loop, &done, 1); /* everything set up, sockets work */
  run_until(loop, &srv.echo.closed, 1);
  free(c1.out);
  /* a client socket made before the limit drops */
  client c2;
  client_start(loop, &c2, &addr, 5000, 2, &done);
  /* exhaust the fds: lower the limit to just above the highest fd in use */
  int probe = dup(0);
  cr_assert_geq(probe, 0);
  struct rlimit old, rl;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  rl = old;
  rl.rlim_cur = (rlim_t)probe + 1;
  close(probe);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  int filler = dup(0); /* takes the last free fd */
  cr_assert_geq(filler, 0);
  cr_assert_eq(dup(0), -1);
  cr_assert_eq(errno, EMFILE);
  /* the connect completes in the kernel; accept fails with EMFILE */
  for (int i = 0; i < 20 && c2.connected == 0; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(c2.connected, 1);
  for (int i = 0; i < 10; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(srv.echo.accepted, 1); /* not the second one: no fd */
  cr_assert(weft_is_active(&srv.tcp.stream.base)); /* still listening */
  /* free an fd: the listener picks the connection up and serves it */
  close(filler);
  run_until(loop, &done, 2);
  cr_assert_eq(srv.echo.accepted, 2);
  cr_assert_eq(c2.got, 5000);
  free(c2.out);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  /* and the server keeps serving */
  client c3;
  client_start(loop, &c3, &addr, 7000, 3, &done);
  run_until(loop, &done, 3);
  cr_assert_eq(c3.got, 7000);
  free(c3.out);
  run_until(loop, &srv.echo.closed, 3);
  weft_close(&srv.tcp.stream.base, NULL);
  th_loop_finish(loop);
}

/* ---- connect
 * ----------------------------------------------------------------- */

static void count_status(weft_connect_req *req, int status) {
  int *st = req->data;
  st[0]++;
  st[1] = status;
}

static unsigned free_port(void) {
  /* bind and close: the port is free right after (SO_REUSEADDR not set) */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  close(fd);
  return ntohs(a.sin_port);
}

Test(tcp, connect_refused_then_retry_on_same_handle, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  struct sockaddr_in a;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", free_port(), &a), 0);
  weft_connect_req req;
  int st[2] = {0, 0};
  req.data = st;
  cr_assert_eq(weft_tcp_connect(&req, &t, (struct sockaddr *)&a, count_status),
               0);
  cr_assert_eq(st[0], 0); /* never inline */
  cr_assert_eq(weft_tcp_connect(&req, &t, (struct sockaddr *)&a, count_status),
               -EALREADY);
  while (st[0] == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(st[0], 1);
  cr_assert_eq(st[1], -ECONNREFUSED);
  cr_assert_eq(weft_stream_fileno(&t.stream), -EBADF); /* back to fresh */
  /* the same handle connects again, this time to a server */
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "127.0.0.1", &addr);
  cr_assert_eq(
      weft_tcp_connect(&req, &t, (struct sockaddr *)&addr, count_status), 0);
  while (st[0] == 1)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(st[1], 0);
  weft_close(&t.stream.base, NULL);
  server_finish(loop, &srv);
  th_loop_finish(loop);
}

Test(tcp, close_cancels_pending_connect_and_writes, .timeout = 10) {
  weft_loop *loop = th_loop();
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "127.0.0.1", &addr);
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  weft_connect_req req;
  int st[2] = {0, 0};
  req.data = st;
  cr_assert_eq(
      weft_tcp_connect(&req, &t, (struct sockaddr *)&addr, count_status), 0);
  weft_write_req w;
  int wst[2] = {0, 0};
  w.data = wst;
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_stream_write(&w, &t.stream, &b, 1,
                                 (weft_write_cb)(void (*)(void))count_status),
               0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  cr_assert_eq(st[0], 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(st[0], 1);
  cr_assert_eq(st[1], -ECANCELED);
  cr_assert_eq(wst[0], 1);
  cr_assert_eq(wst[1], -ECANCELED);
  server_finish(loop, &srv);
  th_loop_finish(loop);
}

Test(tcp, connect_future_fulfils, .timeout = 10) {
  weft_loop *loop = th_loop();
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "::1", &addr);
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  weft_future *f = NULL;
  cr_assert_eq(weft_tcp_connect_future(&t, (struct sockaddr *)&addr, &f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  weft_future_unref(f);
  /* a second connect on a connected handle is refused */
  cr_assert_eq(weft_tcp_connect_future(&t, (struct sockaddr *)&addr, &f),
               -EINVAL);
  weft_close(&t.stream.base, NULL);
  server_finish(loop, &srv);
  th_loop_finish(loop);
}

Test(tcp, connect_future_rejects_and_cancel_aborts, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  struct sockaddr_in a;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", free_port(), &a), 0);
  weft_future *f = NULL;
  cr_assert_eq(weft_tcp_connect_future(&t, (struct sockaddr *)&a, &f), 0);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_error(f), -ECONNREFUSED);
  weft_future_unref(f);
  /* cancel: the socket closes at once, the handle can be reused */
  cr_assert_eq(weft_tcp_connect_future(&t, (struct sockaddr *)&a, &f), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  cr_assert_eq(weft_stream_fileno(&t.stream), -EBADF);
  cr_assert(!weft_is_active(&t.stream.base));
  weft_future_unref(f);
  th_loop_finish(loop);
}

Test(tcp, connect_with_timeout_is_cancelled, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* a listener whose backlog is full never completes the handshake, and
   * 192.0.2.1 (TEST-NET) may be unreachable: use a full backlog */
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(lfd, 0), 0);
  socklen_t len = sizeof a;
  getsockname(lfd, (struct sockaddr *)&a, &len);
  enum { N = 8 };
  weft_tcp ts[N];
  weft_future *fs[N], *tos[N];
  for (int i = 0; i < N; i++) {
    cr_assert_eq(weft_tcp_init(loop, &ts[i]), 0);
    cr_assert_eq(weft_tcp_connect_future(&ts[i], (struct sockaddr *)&a, &fs[i]),
                 0);
    cr_assert_eq(weft_future_timeout(fs[i], 200, &tos[i]), 0);
  }
  int timed_out = 0, settled = 0;
  for (int i = 0; i < N; i++) {
    while (weft_future_get_state(tos[i]) == WEFT_FUTURE_PENDING)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    settled++;
    if (weft_future_error(tos[i]) != 0) {
      timed_out++;
      cr_assert_eq(weft_future_get_state(fs[i]), WEFT_FUTURE_CANCELLED);
      cr_assert_eq(weft_stream_fileno(&ts[i].stream), -EBADF);
    }
    weft_future_unref(tos[i]);
    weft_future_unref(fs[i]);
  }
  cr_assert_eq(settled, N);
  cr_assert_gt(timed_out, 0); /* the backlog holds at most a couple */
  close(lfd);
  th_loop_finish(loop);
}

/* ---- peer reset -------------------------------------------------------------
 */

typedef struct resetter {
  weft_tcp tcp;
  weft_tcp peer;
  int accepted;
} resetter;

static void reset_on_accept(weft_stream *s, int status) {
  cr_assert_eq(status, 0);
  resetter *r = (resetter *)s;
  cr_assert_eq(weft_tcp_init(weft_handle_loop(&s->base), &r->peer), 0);
  cr_assert_eq(weft_stream_accept(s, &r->peer.stream), 0);
  r->accepted++;
  cr_assert_eq(weft_tcp_close_reset(&r->peer, NULL), 0);
}

typedef struct writer {
  weft_tcp tcp;
  weft_connect_req cr;
  weft_write_req w[64];
  char *data;
  int done, errors, last;
} writer;

static void writer_done(weft_write_req *req, int status) {
  writer *w = req->data;
  w->done++;
  if (status != 0) {
    w->errors++;
    w->last = status;
  }
}

static void writer_connected(weft_connect_req *req, int status) {
  writer *w = req->data;
  cr_assert_eq(status, 0);
  for (int i = 0; i < 64; i++) {
    w->w[i].data = w;
    weft_buf b = weft_buf_init(w->data, 1 << 20);
    int err = weft_stream_write(&w->w[i], &w->tcp.stream, &b, 1, writer_done);
    cr_assert(err == 0 || err == -EPIPE);
    if (err != 0) w->done++, w->errors++, w->last = -EPIPE;
  }
}

Test(tcp, peer_reset_mid_write_fails_writes_without_sigpipe, .timeout = 20) {
  signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill the test */
  weft_loop *loop = th_loop();
  resetter r = {0};
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &r.tcp), 0);
  cr_assert_eq(weft_tcp_bind(&r.tcp, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(weft_tcp_listen(&r.tcp, 1, reset_on_accept), 0);
  socklen_t len = sizeof a;
  weft_tcp_getsockname(&r.tcp, (struct sockaddr *)&a, &len);
  writer w = {0};
  w.data = calloc(1, 1 << 20);
  cr_assert_eq(weft_tcp_init(loop, &w.tcp), 0);
  w.cr.data = &w;
  cr_assert_eq(
      weft_tcp_connect(&w.cr, &w.tcp, (struct sockaddr *)&a, writer_connected),
      0);
  while (w.done < 64)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(r.accepted, 1);
  cr_assert_gt(w.errors, 0);
  cr_assert(w.last == -ECONNRESET || w.last == -EPIPE, "%s",
            weft_err_name(w.last));
  free(w.data);
  th_loop_finish(loop);
}

/* ---- options, names, adoption
 * ------------------------------------------------ */

Test(tcp, options_names_and_open, .timeout = 10) {
  weft_loop *loop = th_loop();
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "127.0.0.1", &addr);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(
      connect(fd, (struct sockaddr *)&addr, sizeof(struct sockaddr_in)), 0);
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_tcp_open(&t, fd), 0);
  cr_assert_eq(weft_tcp_open(&t, fd), -EINVAL);
  cr_assert_eq(weft_stream_fileno(&t.stream), fd);
  cr_assert_eq(weft_tcp_nodelay(&t, true), 0);
  cr_assert_eq(weft_tcp_keepalive(&t, true, 60), 0);
  cr_assert_eq(weft_tcp_keepalive(&t, true, 0), -EINVAL);
  cr_assert_eq(weft_tcp_keepalive(&t, false, 0), 0);
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  cr_assert_eq(weft_tcp_getpeername(&t, (struct sockaddr *)&peer, &len), 0);
  cr_assert_eq(weft_sockaddr_port((struct sockaddr *)&peer),
               weft_sockaddr_port((struct sockaddr *)&addr));
  char name[64];
  cr_assert_eq(weft_ip_name((struct sockaddr *)&peer, name, sizeof name), 0);
  cr_assert_str_eq(name, "127.0.0.1");
  cr_assert_eq(weft_ip_name((struct sockaddr *)&peer, name, 3), -ENOSPC);
  cr_assert(weft_stream_is_writable(&t.stream));
  cr_assert_leq(weft_tcp_handle_size(), 248);
  cr_assert_eq(weft_handle_get_type(&t.stream.base), WEFT_HANDLE_TCP);
  weft_close(&t.stream.base, NULL);
  run_until(loop, &srv.echo.accepted, 1);
  server_finish(loop, &srv);
  th_loop_finish(loop);
}

Test(tcp, reuseport_lets_two_listeners_share_a_port, .timeout = 10) {
  weft_loop *loop = th_loop();
  server a, b;
  struct sockaddr_storage addr;
  memset(&a, 0, sizeof a);
  a.bind_flags = WEFT_TCP_REUSEPORT;
  server_start(loop, &a, "127.0.0.1", &addr);
  memset(&b, 0, sizeof b);
  cr_assert_eq(weft_tcp_init(loop, &b.tcp), 0);
  cr_assert_eq(
      weft_tcp_bind(&b.tcp, (struct sockaddr *)&addr, WEFT_TCP_REUSEPORT), 0);
  th_echo_listen(&b.echo, &b.tcp.stream);
  /* without the flag the port is taken */
  weft_tcp c;
  cr_assert_eq(weft_tcp_init(loop, &c), 0);
  cr_assert_eq(weft_tcp_bind(&c, (struct sockaddr *)&addr, 0), -EADDRINUSE);
  cr_assert_eq(weft_stream_fileno(&c.stream), -EBADF); /* nothing left open */
  th_loop_finish(loop);
}

/* ---- bad input
 * ---------------------------------------------------------------- */

static void no_conn(weft_stream *s, int status) { (void)s, (void)status; }

Test(tcp, bad_input_is_rejected_cleanly, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp t;
  struct sockaddr_in a;
  struct sockaddr_in6 a6;
  cr_assert_eq(weft_tcp_init(NULL, &t), -EINVAL);
  cr_assert_eq(weft_tcp_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_ip4_addr("300.1.1.1", 0, &a), -EINVAL);
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 70000, &a), -EINVAL);
  cr_assert_eq(weft_ip4_addr(NULL, 0, &a), -EINVAL);
  cr_assert_eq(weft_ip6_addr("::g", 0, &a6), -EINVAL);
  cr_assert_eq(weft_ip6_addr("::1%nosuchif0", 0, &a6), -EINVAL);
  cr_assert_eq(weft_ip6_addr("::1%1", 80, &a6), 0);
  cr_assert_eq(weft_sockaddr_port(NULL), -EINVAL);
  cr_assert_eq(weft_sockaddr_len(NULL), 0);
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  struct sockaddr bad = {.sa_family = AF_UNIX};
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_bind(NULL, (struct sockaddr *)&a, 0), -EINVAL);
  cr_assert_eq(weft_tcp_bind(&t, NULL, 0), -EINVAL);
  cr_assert_eq(weft_tcp_bind(&t, &bad, 0), -EINVAL);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0x100), -EINVAL);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, WEFT_TCP_IPV6ONLY),
               -EINVAL);
  cr_assert_eq(weft_tcp_listen(&t, 0, no_conn), -EINVAL); /* not bound */
  cr_assert_eq(weft_tcp_nodelay(&t, true), -EINVAL);      /* no socket */
  weft_connect_req req;
  weft_write_req w;
  weft_shutdown_req sr;
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_tcp_connect(NULL, &t, (struct sockaddr *)&a, NULL),
               -EINVAL);
  cr_assert_eq(weft_tcp_connect(&req, &t, &bad, NULL), -EINVAL);
  cr_assert_eq(weft_stream_write(&w, &t.stream, &b, 1, NULL), -ENOTCONN);
  cr_assert_eq(weft_stream_write(&w, &t.stream, &b, 0, NULL), -EINVAL);
  cr_assert_eq(weft_stream_write(&w, &t.stream, NULL, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_read_start(&t.stream, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_stream_shutdown(&sr, &t.stream, NULL), -ENOTCONN);
  cr_assert_eq(weft_stream_accept(&t.stream, &t.stream), -EINVAL);
  cr_assert_eq(weft_tcp_getsockname(&t, (struct sockaddr *)&a, NULL), -EINVAL);
  /* listen twice; a listener does not read, write or connect */
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0), -EINVAL);
  cr_assert_eq(weft_tcp_listen(&t, 0, no_conn), 0);
  cr_assert_eq(weft_tcp_listen(&t, 0, no_conn), -EINVAL);
  cr_assert_eq(weft_stream_write(&w, &t.stream, &b, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_read_start(&t.stream, NULL, (weft_read_cb)1),
               -EINVAL);
  cr_assert_eq(weft_tcp_connect(&req, &t, (struct sockaddr *)&a, NULL),
               -EINVAL);
  weft_tcp other;
  cr_assert_eq(weft_tcp_init(loop, &other), 0);
  cr_assert_eq(weft_stream_accept(&t.stream, &other.stream), -EAGAIN);
  /* closed handles */
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), -EALREADY);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0), -EINVAL);
  cr_assert_eq(weft_stream_write(&w, &t.stream, &b, 1, NULL), -EINVAL);
  cr_assert_eq(weft_tcp_open(&t, 0), -EINVAL);
  cr_assert_eq(weft_tcp_open(&other, -1), -EINVAL);
  int ufd = socket(AF_INET, SOCK_DGRAM, 0);
  cr_assert_eq(weft_tcp_open(&other, ufd), -EINVAL); /* not a stream */
  close(ufd);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  /* the loop is still usable */
  weft_tcp again;
  cr_assert_eq(weft_tcp_init(loop, &again), 0);
  th_loop_finish(loop);
}

/* A plain kernel listener (no weft allocation): its backlog completes
 * handshakes and buffers what clients write. */
static int raw_listener(struct sockaddr_in *a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  weft_ip4_addr("127.0.0.1", 0, a);
  cr_assert_eq(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
  cr_assert_eq(listen(fd, 16), 0);
  socklen_t len = sizeof *a;
  getsockname(fd, (struct sockaddr *)a, &len);
  return fd;
}

typedef struct tcp_round {
  struct sockaddr_in a;
  int lfd;
  weft_tcp t; /* outlives the op: closed by the sweep */
} tcp_round;

static int connect_and_write(weft_loop *loop, void *arg) {
  tcp_round *r = arg;
  /* drain what the kernel queued for earlier rounds */
  for (int c; (c = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0;)
    close(c);
  cr_assert_eq(weft_tcp_init(loop, &r->t), 0);
  weft_future *f = NULL;
  int err = weft_tcp_connect_future(&r->t, (const struct sockaddr *)&r->a, &f);
  if (err != 0) return err;
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_error(f), 0);
  weft_future_unref(f);
  weft_buf bufs[6]; /* more than fit inline: the iovec array is copied */
  for (int i = 0; i < 6; i++)
    bufs[i] = weft_buf_init("abc", 3);
  if ((err = weft_stream_write_future(&r->t.stream, bufs, 6, &f)) != 0)
    return err;
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_value_i64(f), 18);
  weft_future_unref(f);
  return 0;
}

Test(tcp, allocation_failures_are_clean, .timeout = 20) {
  tcp_round r;
  r.lfd = raw_listener(&r.a);
  th_alloc_sweep_run(
      &(th_sweep){.op = connect_and_write, .arg = &r, .max_rounds = 200});
  close(r.lfd);
}

Test(tcp, more_bad_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  struct sockaddr bad = {.sa_family = AF_UNIX};
  char name[64];
  cr_assert_eq(weft_tcp_close_reset(NULL, NULL), -EINVAL);
  cr_assert_eq(weft_stream_accept(NULL, &t.stream), -EINVAL);
  cr_assert_eq(weft_tcp_getpeername(&t, (struct sockaddr *)&ss, &len),
               -EINVAL); /* no socket */
  cr_assert_eq(weft_tcp_keepalive(NULL, true, 1), -EINVAL);
  cr_assert_eq(weft_tcp_nodelay(NULL, true), -EINVAL);
  cr_assert_eq(weft_ip_name(&bad, name, sizeof name), -EINVAL);
  cr_assert_eq(weft_ip_name(NULL, name, sizeof name), -EINVAL);
  cr_assert_eq(weft_sockaddr_port(&bad), -EINVAL);
  cr_assert_eq(weft_tcp_connect_future(NULL, &bad, NULL), -EINVAL);
  weft_future *f;
  cr_assert_eq(weft_tcp_connect_future(&t, &bad, &f), -EINVAL);
  /* a bound socket that is not connected has no peer */
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  len = sizeof ss;
  cr_assert_eq(weft_tcp_getpeername(&t, (struct sockaddr *)&ss, &len),
               -ENOTCONN);
  cr_assert_eq(weft_tcp_close_reset(&t, NULL), 0);
  cr_assert_eq(weft_tcp_close_reset(&t, NULL), -EINVAL); /* closing */
  th_loop_finish(loop);
}

static void shut_status(weft_shutdown_req *req, int status) {
  int *st = req->data;
  st[0]++;
  st[1] = status;
}

static void eof_count(weft_stream *s, ssize_t n, const weft_buf *b) {
  (void)b;
  if (n == WEFT_EOF) (*(int *)s->base.data)++;
}

Test(tcp, shutdown_while_connecting, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* refused: the shutdown fails with the connect's error */
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  struct sockaddr_in a;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", free_port(), &a), 0);
  weft_connect_req cr;
  weft_shutdown_req sr;
  int cst[2] = {0, 0}, sst[2] = {0, 0};
  cr.data = cst;
  sr.data = sst;
  cr_assert_eq(weft_tcp_connect(&cr, &t, (struct sockaddr *)&a, count_status),
               0);
  cr_assert_eq(weft_stream_shutdown(&sr, &t.stream, shut_status), 0);
  while (sst[0] == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(cst[1], -ECONNREFUSED);
  cr_assert_eq(sst[1], -ECONNREFUSED);
  /* the handle is fresh again: connect to a server, shut down at once;
   * the shutdown happens once connected and the peer reads EOF */
  server srv = {0};
  struct sockaddr_storage addr;
  server_start(loop, &srv, "127.0.0.1", &addr);
  cr_assert_eq(
      weft_tcp_connect(&cr, &t, (struct sockaddr *)&addr, count_status), 0);
  cr_assert_eq(weft_stream_shutdown(&sr, &t.stream, shut_status), 0);
  int eofs = 0;
  t.stream.base.data = &eofs;
  cr_assert_eq(weft_stream_read_start(&t.stream, NULL, eof_count), 0);
  /* the echo server sees EOF and closes: we read EOF too */
  while (sst[0] < 2 || eofs == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(cst[0], 2);
  cr_assert_eq(cst[1], 0);
  cr_assert_eq(sst[1], 0);
  cr_assert_eq(eofs, 1);
  weft_close(&t.stream.base, NULL);
  server_finish(loop, &srv);
  th_loop_finish(loop);
}

/* ---- keepalive with idle, interval and count ------------------------------
 */

static int open_fd_count(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

static int tcp_opt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
  return v;
}

Test(tcp, keepalive_ex_sets_idle_interval_and_count, .timeout = 10) {
  int fds_before = open_fd_count();
  weft_loop *loop = th_loop();
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  /* no socket yet */
  cr_assert_eq(weft_tcp_keepalive_ex(&t, true, 10, 5, 3), -EINVAL);
  struct sockaddr_in a;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &a), 0);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  int fd = weft_stream_fileno(&t.stream);
  cr_assert_eq(weft_tcp_keepalive_ex(&t, true, 10, 5, 3), 0);
  cr_assert_eq(tcp_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 10);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
  /* the limits themselves are taken */
  cr_assert_eq(weft_tcp_keepalive_ex(&t, true, WEFT_TCP_KEEPALIVE_TIME_MAX,
                                     WEFT_TCP_KEEPALIVE_TIME_MAX,
                                     WEFT_TCP_KEEPALIVE_COUNT_MAX),
               0);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 32767);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 32767);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPCNT), 127);
  cr_assert_eq(weft_tcp_keepalive_ex(&t, true, 1, 1, 1), 0);
  /* disabling clears SO_KEEPALIVE, ignores the rest, keeps the timings */
  cr_assert_eq(weft_tcp_keepalive_ex(&t, false, 0, 0, 0), 0);
  cr_assert_eq(tcp_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 1);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPCNT), 1);
  /* each bad value, and none of the good ones is set on the way */
  cr_assert_eq(weft_tcp_keepalive_ex(&t, true, 20, 9, 9), 0);
  unsigned bad[][3] = {{0, 5, 3},      {32768, 5, 3}, {10, 0, 3},
                       {10, 32768, 3}, {10, 5, 0},    {10, 5, 128}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int r = weft_tcp_keepalive_ex(&t, true, bad[i][0], bad[i][1], bad[i][2]);
    cr_assert_eq(r, -EINVAL, "case %zu: %s", i, weft_err_name(r));
  }
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 20);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 9);
  cr_assert_eq(tcp_opt(fd, IPPROTO_TCP, TCP_KEEPCNT), 9);
  cr_assert_eq(tcp_opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  cr_assert_eq(weft_tcp_keepalive_ex(NULL, true, 10, 5, 3), -EINVAL);
  weft_udp u; /* a handle of another kind */
  cr_assert_eq(weft_udp_init(loop, &u), 0);
  cr_assert_eq(weft_tcp_keepalive_ex((weft_tcp *)(void *)&u, true, 10, 5, 3),
               -EINVAL);
  cr_assert_eq(weft_close(&u.base, NULL), 0);
  cr_assert_eq(weft_close(&t.stream.base, NULL), 0);
  cr_assert_eq(weft_tcp_keepalive_ex(&t, true, 10, 5, 3),
               -EINVAL); /* closing */
  th_run(loop);
  th_loop_finish(loop);
  cr_assert_eq(open_fd_count(), fds_before);
}
