/* Networking: weft against libuv and raw epoll, same workload, alternating
 * in one run. Client and server run in two processes; each implementation
 * serves its own clients (a weft client talks to a weft echo server, a
 * libuv client to a libuv server, epoll to epoll).
 *
 *   tcp_pingpong   one connection, 5-byte messages echoed: round trips/s
 *   tcp_pump_1     one connection, 64 KiB writes echoed back: MB/s (one way)
 *   tcp_pump_100   the same over 100 connections
 *   tcp_pound      100 concurrent clients: connect, write, read echo,
 *                  close, again: accepts/s
 *   udp_pingpong   one socket pair, 5-byte datagrams: round trips/s
 *   tcp_handle_bytes  bytes per idle TCP handle (sizeof + allocations)
 *
 * The server is forked before any loop exists; it reports its ports over a
 * pipe and is killed after the run. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define CHUNK (64 * 1024)
#define MSG "PING\n"
#define MSG_LEN 5

typedef enum { W_PINGPONG, W_PUMP1, W_PUMP100, W_POUND, W_UDP } workload;

static size_t n_rt;     /* round trips per ping-pong run */
static size_t pump_per; /* bytes per pump connection */
static size_t n_pound;  /* connections per pound run */

typedef struct server_proc {
  pid_t pid;
  int tcp_port, udp_port;
} server_proc;

/* ---- servers: TCP echo and UDP echo, one per implementation ------------- */

static int listen_fd(int type, int *port) {
  int fd = socket(AF_INET, type, 0), one = 1;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) bench_fail("bind: %d", errno);
  if (type == SOCK_STREAM && listen(fd, 1024) < 0) bench_fail("listen");
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  return fd;
}

/* weft echo server */
typedef struct wconn {
  weft_tcp t;
  weft_write_req w;
  char buf[CHUNK];
} wconn;

static void w_srv_read(weft_stream *s, ssize_t n, const weft_buf *b);
static void w_free(weft_handle *h) { free(h); }
static void w_srv_alloc(weft_stream *s, size_t sz, weft_buf *b) {
  (void)sz;
  *b = weft_buf_init(((wconn *)s)->buf, CHUNK);
}
static void w_srv_written(weft_write_req *w, int st) {
  wconn *c = w->data;
  if (st != 0) weft_close(&c->t.stream.base, w_free);
  else weft_stream_read_start(&c->t.stream, w_srv_alloc, w_srv_read);
}
static void w_srv_read(weft_stream *s, ssize_t n, const weft_buf *b) {
  wconn *c = (wconn *)s;
  if (n == 0) return;
  if (n < 0) {
    weft_close(&s->base, w_free);
    return;
  }
  weft_stream_read_stop(s);
  c->w.data = c;
  weft_buf o = weft_buf_init(b->base, (size_t)n);
  if (weft_stream_write(&c->w, s, &o, 1, w_srv_written) != 0) weft_close(&s->base, w_free);
}
static void w_srv_conn(weft_stream *srv, int st) {
  if (st != 0) return;
  wconn *c = malloc(sizeof *c);
  weft_tcp_init(weft_handle_loop(&srv->base), &c->t);
  weft_stream_accept(srv, &c->t.stream);
  weft_tcp_nodelay(&c->t, true);
  weft_stream_read_start(&c->t.stream, w_srv_alloc, w_srv_read);
}
static weft_udp_send_req w_udp_req[64]; /* a request is busy until its callback */
static unsigned w_udp_next;
static char w_udp_copy[64][2048];
static void w_srv_udp(weft_udp *u, ssize_t n, const weft_buf *b,
                      const struct sockaddr *a, unsigned f) {
  (void)f;
  if (n < 0) return;
  unsigned i = w_udp_next++ % 64;
  memcpy(w_udp_copy[i], b->base, (size_t)n);
  weft_buf o = weft_buf_init(w_udp_copy[i], (size_t)n);
  weft_udp_send(&w_udp_req[i], u, &o, 1, a, NULL);
}
/* Tells the parent the ports, once the server can take traffic. */
static void report(int pipe_fd, int tcp_fd, int udp_port) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(tcp_fd, (struct sockaddr *)&a, &len);
  int ports[2] = {ntohs(a.sin_port), udp_port};
  if (write(pipe_fd, ports, sizeof ports) != sizeof ports) _exit(1);
  close(pipe_fd);
}

static int port_of(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

static void serve_weft(int lfd, int ufd, int rep) {
  weft_loop *loop;
  weft_loop_new(&loop, NULL);
  static weft_tcp srv;
  static weft_udp u;
  weft_tcp_init(loop, &srv);
  weft_tcp_open(&srv, lfd);
  weft_tcp_listen(&srv, 1024, w_srv_conn);
  weft_udp_init(loop, &u);
  close(ufd); /* weft binds its own UDP socket */
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  weft_udp_bind(&u, (struct sockaddr *)&a, 0);
  socklen_t len = sizeof a;
  weft_udp_getsockname(&u, (struct sockaddr *)&a, &len);
  weft_udp_set_batch(&u, 32);
  weft_udp_recv_start(&u, w_srv_udp);
  report(rep, lfd, ntohs(a.sin_port));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
}

/* libuv echo server */
typedef struct uconn {
  uv_tcp_t t;
  uv_write_t w;
  char buf[CHUNK];
} uconn;
static void u_free(uv_handle_t *h) { free(h); }
static void u_srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)sz;
  *b = uv_buf_init(((uconn *)h)->buf, CHUNK);
}
static void u_srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void u_srv_written(uv_write_t *w, int st) {
  uconn *c = w->data;
  if (st != 0) uv_close((uv_handle_t *)&c->t, u_free);
  else uv_read_start((uv_stream_t *)&c->t, u_srv_alloc, u_srv_read);
}
static void u_srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  uconn *c = (uconn *)s;
  if (n == 0) return;
  if (n < 0) {
    uv_close((uv_handle_t *)s, u_free);
    return;
  }
  uv_read_stop(s);
  c->w.data = c;
  uv_buf_t o = uv_buf_init(b->base, (unsigned)n);
  uv_write(&c->w, s, &o, 1, u_srv_written);
}
static void u_srv_conn(uv_stream_t *srv, int st) {
  if (st != 0) return;
  uconn *c = malloc(sizeof *c);
  uv_tcp_init(srv->loop, &c->t);
  uv_accept(srv, (uv_stream_t *)&c->t);
  uv_tcp_nodelay(&c->t, 1);
  uv_read_start((uv_stream_t *)&c->t, u_srv_alloc, u_srv_read);
}
static char u_udp_buf[2048], u_udp_copy[2048];
static void u_udp_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h, (void)sz;
  *b = uv_buf_init(u_udp_buf, sizeof u_udp_buf);
}
static void u_srv_udp(uv_udp_t *u, ssize_t n, const uv_buf_t *b,
                      const struct sockaddr *a, unsigned f) {
  (void)f;
  if (n <= 0 || a == NULL) return;
  memcpy(u_udp_copy, b->base, (size_t)n);
  uv_buf_t o = uv_buf_init(u_udp_copy, (unsigned)n);
  uv_udp_try_send(u, &o, 1, a); /* a reused uv_udp_send_t must complete first */
}
static void serve_uv(int lfd, int ufd, int rep) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  static uv_tcp_t srv;
  static uv_udp_t u;
  uv_tcp_init(&loop, &srv);
  uv_tcp_open(&srv, lfd);
  uv_listen((uv_stream_t *)&srv, 1024, u_srv_conn);
  uv_udp_init(&loop, &u);
  uv_udp_open(&u, ufd);
  uv_udp_recv_start(&u, u_udp_alloc, u_srv_udp);
  report(rep, lfd, port_of(ufd));
  uv_run(&loop, UV_RUN_DEFAULT);
}

/* raw epoll echo server: level-triggered, echo what is read */
static void serve_epoll(int lfd, int ufd, int rep) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.fd = ufd;
  epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
  static char buf[CHUNK];
  struct epoll_event evs[256];
  report(rep, lfd, port_of(ufd));
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        int c = accept4(lfd, NULL, NULL, 0), one = 1;
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ev.data.fd = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
      } else if (fd == ufd) {
        struct sockaddr_storage a;
        socklen_t al = sizeof a;
        ssize_t r = recvfrom(ufd, buf, 2048, 0, (struct sockaddr *)&a, &al);
        if (r > 0) sendto(ufd, buf, (size_t)r, 0, (struct sockaddr *)&a, al);
      } else {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
          close(fd);
          continue;
        }
        for (ssize_t off = 0; off < r;) { /* blocking socket: writes all */
          ssize_t w = write(fd, buf + off, (size_t)(r - off));
          if (w <= 0) break;
          off += w;
        }
      }
    }
  }
}

typedef void (*serve_fn)(int lfd, int ufd, int report_fd);

static server_proc server_start(serve_fn serve) {
  int p[2];
  if (pipe(p) < 0) bench_fail("pipe");
  server_proc s = {0};
  s.pid = fork();
  if (s.pid == 0) {
    close(p[0]);
    int tport, uport;
    int lfd = listen_fd(SOCK_STREAM, &tport), ufd = listen_fd(SOCK_DGRAM, &uport);
    serve(lfd, ufd, p[1]);
    _exit(0);
  }
  close(p[1]);
  int ports[2];
  if (read(p[0], ports, sizeof ports) != sizeof ports) bench_fail("server start");
  close(p[0]);
  s.tcp_port = ports[0];
  s.udp_port = ports[1];
  return s;
}

static void server_stop(server_proc *s) {
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
}

static struct sockaddr_in addr_of(int port) {
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", (unsigned)port, &a);
  return a;
}

#include "bench_net_clients.h"

/* ---- groups ------------------------------------------------------------------ */

typedef struct run_arg {
  workload w;
  serve_fn serve;
  void (*client)(workload w, const server_proc *s, double *v);
} run_arg;

static void run(double *v, void *arg) {
  run_arg *r = arg;
  server_proc s = server_start(r->serve);
  r->client(r->w, &s, v);
  server_stop(&s);
}

#define IMPLS(w)                                                               \
  static run_arg w##_weft = {w, serve_weft, weft_client};                      \
  static run_arg w##_uv = {w, serve_uv, uv_client};                            \
  static run_arg w##_ep = {w, serve_epoll, epoll_client};                      \
  static const bench_impl w##_impls[] = {                                      \
      {"weft", run, &w##_weft}, {"libuv", run, &w##_uv}, {"epoll", run, &w##_ep}};

IMPLS(W_PINGPONG)
IMPLS(W_PUMP1)
IMPLS(W_PUMP100)
IMPLS(W_POUND)
IMPLS(W_UDP)

static const bench_metric m_pingpong[] = {{"tcp_pingpong", "rt/s", true}};
static const bench_metric m_pump1[] = {{"tcp_pump_1", "MB/s", true}};
static const bench_metric m_pump100[] = {{"tcp_pump_100", "MB/s", true}};
static const bench_metric m_pound[] = {{"tcp_pound", "accepts/s", true}};
static const bench_metric m_udp[] = {{"udp_pingpong", "rt/s", true}};

#define GROUP(name, m, w) {name, m, BENCH_LEN(m), w##_impls, BENCH_LEN(w##_impls)}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  n_rt = bench_n(20000, 2000);
  pump_per = bench_n(256u << 20, 16u << 20);
  n_pound = bench_n(20000, 2000);
  const bench_group groups[] = {
      GROUP("tcp_pingpong", m_pingpong, W_PINGPONG),
      GROUP("tcp_pump_1", m_pump1, W_PUMP1),
      GROUP("tcp_pump_100", m_pump100, W_PUMP100),
      GROUP("tcp_pound", m_pound, W_POUND),
      GROUP("udp_pingpong", m_udp, W_UDP),
  };
  /* the per-handle memory: weft allocates nothing per TCP handle */
  if (argc < 2 || strstr("tcp_handle_bytes", argv[1])) {
    bench_emit("tcp_handle_bytes", "weft", (double)weft_tcp_handle_size(), "B", false, 1);
    bench_emit("tcp_handle_bytes", "libuv", (double)sizeof(uv_tcp_t), "B", false, 1);
  }
  int rc = bench_main(argc, argv, groups, BENCH_LEN(groups));
  return argc >= 2 && strstr("tcp_handle_bytes", argv[1]) ? 0 : rc;
}
