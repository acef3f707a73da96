/* Networking: weft against libuv and raw epoll, same workload, alternating
 * in one run. Client and server run in two processes; each implementation
 * serves its own clients (a weft client talks to a weft echo server, a
 * libuv client to a libuv server, epoll to epoll).
 *
 *   tcp_pingpong   one connection, 5-byte messages echoed: round trips/s
 *   tcp_pump_1     one connection, 64 KiB writes echoed back: MB/s (one way)
 *   tcp_pump_100   the same over 100 connections
 *                  (both pumps also as "weft_read_future": the client reads
 *                  with weft_stream_read_some_future into one reused
 *                  64 KiB buffer instead of read_start; same writes)
 *   tcp_pound      100 concurrent clients: connect, write, read echo,
 *                  close, again: accepts/s
 *   udp_pingpong   one socket pair, 5-byte datagrams: round trips/s
 *   tcp_handle_bytes  bytes per idle TCP handle (sizeof + allocations)
 *
 * Each group also reports <group>_cpu: the CPU time of client and server
 * together (user + system; the server's from getrusage(RUSAGE_CHILDREN)
 * once it is reaped) per MB, round trip or accept, in microseconds. On a
 * loaded machine the rates follow the scheduler (a run whose two
 * processes share a CPU moves half as much); the CPU per unit of work
 * compares the implementations whatever the load.
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
#include <sys/resource.h>
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
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
    bench_fail("bind: %d", errno);
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
  if (st != 0)
    weft_close(&c->t.stream.base, w_free);
  else
    weft_stream_read_start(&c->t.stream, w_srv_alloc, w_srv_read);
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
  if (weft_stream_write(&c->w, s, &o, 1, w_srv_written) != 0)
    weft_close(&s->base, w_free);
}
static void w_srv_conn(weft_stream *srv, int st) {
  if (st != 0) return;
  wconn *c = malloc(sizeof *c);
  weft_tcp_init(weft_handle_loop(&srv->base), &c->t);
  weft_stream_accept(srv, &c->t.stream);
  weft_tcp_nodelay(&c->t, true);
  weft_stream_read_start(&c->t.stream, w_srv_alloc, w_srv_read);
}
static weft_udp_send_req
    w_udp_req[64]; /* a request is busy until its callback */
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
  if (st != 0)
    uv_close((uv_handle_t *)&c->t, u_free);
  else
    uv_read_start((uv_stream_t *)&c->t, u_srv_alloc, u_srv_read);
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
    int lfd = listen_fd(SOCK_STREAM, &tport),
        ufd = listen_fd(SOCK_DGRAM, &uport);
    serve(lfd, ufd, p[1]);
    _exit(0);
  }
  close(p[1]);
  int ports[2];
  if (read(p[0], ports, sizeof ports) != sizeof ports)
    bench_fail("server start");
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

/* ---- clients: one per implementation; each runs one workload against
 * its own server and fills v[0] ------------------------------------------ */

static char out_chunk[CHUNK];
#define POUND_WIDTH 100
#define PUMP_DEPTH 4 /* writes in flight per pump connection */

typedef struct job {
  workload w;
  size_t conns;   /* connections (pump) */
  size_t target;  /* round trips, connections, or bytes per connection */
  size_t done;    /* finished connections / round trips */
  size_t started; /* pound: connections started */
} job;

static size_t conns_of(workload w) { return w == W_PUMP100 ? 100 : 1; }

static void job_init(job *j, workload w) {
  memset(j, 0, sizeof *j);
  j->w = w;
  j->conns = conns_of(w);
  j->target = w == W_PINGPONG || w == W_UDP ? n_rt
              : w == W_POUND                ? n_pound
                                            : pump_per / j->conns;
}

static double job_units; /* MB, round trips or accepts of the last run */

static void job_result(const job *j, double t, double *v) {
  if (j->w == W_PUMP1 || j->w == W_PUMP100)
    job_units = (double)j->target * (double)j->conns / 1e6;
  else
    job_units = (double)j->target;
  v[0] = job_units / t;
}

/* ---- weft --------------------------------------------------------------- */

typedef struct wc {
  weft_tcp t;
  weft_connect_req cr;
  weft_write_req w[PUMP_DEPTH];
  job *j;
  size_t sent, got, inflight;
  char buf[CHUNK];
} wc;

static void wc_start(weft_loop *loop, wc *c, const struct sockaddr_in *a);
static const struct sockaddr_in *wc_addr;

static void wc_alloc(weft_stream *s, size_t sz, weft_buf *b) {
  (void)sz;
  *b = weft_buf_init(((wc *)s)->buf, CHUNK);
}

static void wc_closed(weft_handle *h) {
  wc *c = (wc *)h;
  if (c->j->w == W_POUND && c->j->started < c->j->target)
    wc_start(weft_handle_loop(h), c, wc_addr);
}

static void wc_pump(wc *c);
static void wc_written(weft_write_req *w, int st) {
  wc *c = w->data;
  BENCH_CHECK(st == 0, "weft write: %s", weft_strerror(st));
  c->inflight--;
  if (c->j->w == W_PUMP1 || c->j->w == W_PUMP100) wc_pump(c);
}

static void wc_send(wc *c, const void *p, size_t n) {
  c->w[0].data = c;
  weft_buf b = weft_buf_init((void *)p, n);
  c->inflight++;
  BENCH_CHECK(weft_stream_write(&c->w[0], &c->t.stream, &b, 1, wc_written) == 0,
              "write");
}

static void wc_pump(wc *c) {
  while (c->inflight < PUMP_DEPTH && c->sent < c->j->target) {
    weft_write_req *w = &c->w[c->sent / CHUNK % PUMP_DEPTH];
    w->data = c;
    size_t n = c->j->target - c->sent < CHUNK ? c->j->target - c->sent : CHUNK;
    weft_buf b = weft_buf_init(out_chunk, n);
    c->inflight++;
    c->sent += n;
    BENCH_CHECK(weft_stream_write(w, &c->t.stream, &b, 1, wc_written) == 0,
                "write");
  }
}

static void wc_read(weft_stream *s, ssize_t n, const weft_buf *b) {
  (void)b;
  wc *c = (wc *)s;
  if (n == 0) return;
  BENCH_CHECK(n > 0, "weft read: %s", weft_strerror((int)n));
  c->got += (size_t)n;
  job *j = c->j;
  switch (j->w) {
  case W_PINGPONG:
    if (c->got % MSG_LEN) return;
    if (++j->done < j->target)
      wc_send(c, MSG, MSG_LEN);
    else
      weft_close(&s->base, NULL);
    return;
  case W_POUND:
    j->done++;
    weft_close(&s->base, wc_closed);
    return;
  default:
    if (c->got == j->target) {
      j->done++;
      weft_close(&s->base, NULL);
    }
  }
}

static bool wc_future; /* the pump client reads with read_some_future */

static void wc_read_next(wc *c);
static void wc_read_done(weft_future *f, void *arg) {
  wc *c = arg;
  BENCH_CHECK(weft_future_get_state(f) == WEFT_FUTURE_FULFILLED,
              "weft read future: %s", weft_strerror(weft_future_error(f)));
  int64_t n = weft_future_value_i64(f);
  weft_future_unref(f);
  BENCH_CHECK(n > 0, "weft read future: end of file");
  wc_read(&c->t.stream, (ssize_t)n, NULL);
  if (c->got < c->j->target) wc_read_next(c);
}
static void wc_read_next(wc *c) {
  weft_future *f;
  BENCH_CHECK(weft_stream_read_some_future(&c->t.stream, c->buf, CHUNK, &f) ==
                  0,
              "read future");
  BENCH_CHECK(weft_future_on_settled(f, wc_read_done, c) == 0, "on_settled");
}

static void wc_connected(weft_connect_req *r, int st) {
  wc *c = r->data;
  BENCH_CHECK(st == 0, "weft connect: %s", weft_strerror(st));
  weft_tcp_nodelay(&c->t, true);
  if (wc_future)
    wc_read_next(c);
  else
    weft_stream_read_start(&c->t.stream, wc_alloc, wc_read);
  if (c->j->w == W_PINGPONG || c->j->w == W_POUND)
    wc_send(c, MSG, 1 + (c->j->w == W_PINGPONG) * 4);
  else
    wc_pump(c);
}

static void wc_start(weft_loop *loop, wc *c, const struct sockaddr_in *a) {
  job *j = c->j;
  memset(c, 0, offsetof(wc, buf));
  c->j = j;
  j->started++;
  weft_tcp_init(loop, &c->t);
  c->cr.data = c;
  BENCH_CHECK(weft_tcp_connect(&c->cr, &c->t, (const struct sockaddr *)a,
                               wc_connected) == 0,
              "connect");
}

static weft_udp_send_req wu_req[2]; /* busy until its callback: alternate */
static unsigned wu_next;
static void wu_recv(weft_udp *u, ssize_t n, const weft_buf *b,
                    const struct sockaddr *a, unsigned f) {
  (void)b, (void)f;
  BENCH_CHECK(n == MSG_LEN, "udp reply %zd", n);
  job *j = u->base.data;
  if (++j->done == j->target) {
    weft_close(&u->base, NULL);
    return;
  }
  weft_buf m = weft_buf_init(MSG, MSG_LEN);
  weft_udp_send(&wu_req[wu_next++ % 2], u, &m, 1, a, NULL);
}

static void weft_client(workload w, const server_proc *s, double *v) {
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "loop");
  job j;
  job_init(&j, w);
  struct sockaddr_in ta = addr_of(s->tcp_port), ua = addr_of(s->udp_port);
  wc_addr = &ta;
  size_t width = w == W_POUND ? POUND_WIDTH : j.conns;
  wc *cs = calloc(width, sizeof *cs);
  weft_udp u;
  double t0 = bench_wall();
  if (w == W_UDP) {
    weft_udp_init(loop, &u);
    u.base.data = &j;
    weft_buf m = weft_buf_init(MSG, MSG_LEN);
    weft_udp_send(&wu_req[wu_next++ % 2], &u, &m, 1, (struct sockaddr *)&ua,
                  NULL);
    weft_udp_recv_start(&u, wu_recv);
  } else {
    for (size_t i = 0; i < width; i++) {
      cs[i].j = &j;
      wc_start(loop, &cs[i], &ta);
    }
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double t = bench_wall() - t0;
  size_t want = w == W_PUMP1 || w == W_PUMP100 ? j.conns : j.target;
  BENCH_CHECK(j.done == want, "weft: %zu of %zu done", j.done, want);
  job_result(&j, t, v);
  BENCH_CHECK(weft_loop_free(loop) == 0, "loop free");
  free(cs);
}

/* ---- libuv -------------------------------------------------------------- */

typedef struct uc {
  uv_tcp_t t;
  uv_connect_t cr;
  uv_write_t w[PUMP_DEPTH];
  job *j;
  size_t sent, got, inflight;
  char buf[CHUNK];
} uc;

static const struct sockaddr_in *uc_addr;
static void uc_start(uv_loop_t *loop, uc *c);

static void uc_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)sz;
  *b = uv_buf_init(((uc *)h)->buf, CHUNK);
}

static void uc_closed(uv_handle_t *h) {
  uc *c = (uc *)h;
  if (c->j->w == W_POUND && c->j->started < c->j->target) uc_start(h->loop, c);
}

static void uc_pump(uc *c);
static void uc_written(uv_write_t *w, int st) {
  uc *c = w->data;
  BENCH_CHECK(st == 0, "uv write: %s", uv_strerror(st));
  c->inflight--;
  if (c->j->w == W_PUMP1 || c->j->w == W_PUMP100) uc_pump(c);
}

static void uc_send(uc *c, const char *p, size_t n) {
  c->w[0].data = c;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  c->inflight++;
  BENCH_CHECK(uv_write(&c->w[0], (uv_stream_t *)&c->t, &b, 1, uc_written) == 0,
              "write");
}

static void uc_pump(uc *c) {
  while (c->inflight < PUMP_DEPTH && c->sent < c->j->target) {
    uv_write_t *w = &c->w[c->sent / CHUNK % PUMP_DEPTH];
    w->data = c;
    size_t n = c->j->target - c->sent < CHUNK ? c->j->target - c->sent : CHUNK;
    uv_buf_t b = uv_buf_init(out_chunk, (unsigned)n);
    c->inflight++;
    c->sent += n;
    BENCH_CHECK(uv_write(w, (uv_stream_t *)&c->t, &b, 1, uc_written) == 0,
                "write");
  }
}

static void uc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  uc *c = (uc *)s;
  if (n == 0) return;
  BENCH_CHECK(n > 0, "uv read: %s", uv_strerror((int)n));
  c->got += (size_t)n;
  job *j = c->j;
  switch (j->w) {
  case W_PINGPONG:
    if (c->got % MSG_LEN) return;
    if (++j->done < j->target)
      uc_send(c, MSG, MSG_LEN);
    else
      uv_close((uv_handle_t *)s, NULL);
    return;
  case W_POUND:
    j->done++;
    uv_close((uv_handle_t *)s, uc_closed);
    return;
  default:
    if (c->got == j->target) {
      j->done++;
      uv_close((uv_handle_t *)s, NULL);
    }
  }
}

static void uc_connected(uv_connect_t *r, int st) {
  uc *c = r->data;
  BENCH_CHECK(st == 0, "uv connect: %s", uv_strerror(st));
  uv_tcp_nodelay(&c->t, 1);
  uv_read_start((uv_stream_t *)&c->t, uc_alloc, uc_read);
  if (c->j->w == W_PINGPONG || c->j->w == W_POUND)
    uc_send(c, MSG, c->j->w == W_PINGPONG ? MSG_LEN : 1);
  else
    uc_pump(c);
}

static void uc_start(uv_loop_t *loop, uc *c) {
  job *j = c->j;
  memset(c, 0, offsetof(uc, buf));
  c->j = j;
  j->started++;
  uv_tcp_init(loop, &c->t);
  c->cr.data = c;
  BENCH_CHECK(uv_tcp_connect(&c->cr, &c->t, (const struct sockaddr *)uc_addr,
                             uc_connected) == 0,
              "connect");
}

static uv_udp_send_t uu_req; /* the first send only */
static char uu_buf[2048];
static void uu_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h, (void)sz;
  *b = uv_buf_init(uu_buf, sizeof uu_buf);
}
static void uu_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b,
                    const struct sockaddr *a, unsigned f) {
  (void)b, (void)f;
  if (n == 0 && a == NULL) return;
  BENCH_CHECK(n == MSG_LEN, "udp reply %zd", n);
  job *j = u->data;
  if (++j->done == j->target) {
    uv_close((uv_handle_t *)u, NULL);
    return;
  }
  uv_buf_t m = uv_buf_init(MSG, MSG_LEN);
  uv_udp_try_send(u, &m, 1, a); /* a reused uv_udp_send_t must complete first */
}

static void uv_client(workload w, const server_proc *s, double *v) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  job j;
  job_init(&j, w);
  struct sockaddr_in ta = addr_of(s->tcp_port), ua = addr_of(s->udp_port);
  uc_addr = &ta;
  size_t width = w == W_POUND ? POUND_WIDTH : j.conns;
  uc *cs = calloc(width, sizeof *cs);
  uv_udp_t u;
  double t0 = bench_wall();
  if (w == W_UDP) {
    uv_udp_init(&loop, &u);
    u.data = &j;
    uv_buf_t m = uv_buf_init(MSG, MSG_LEN);
    uv_udp_send(&uu_req, &u, &m, 1, (struct sockaddr *)&ua, NULL);
    uv_udp_recv_start(&u, uu_alloc, uu_recv);
  } else {
    for (size_t i = 0; i < width; i++) {
      cs[i].j = &j;
      uc_start(&loop, &cs[i]);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  double t = bench_wall() - t0;
  size_t want = w == W_PUMP1 || w == W_PUMP100 ? j.conns : j.target;
  BENCH_CHECK(j.done == want, "libuv: %zu of %zu done", j.done, want);
  job_result(&j, t, v);
  uv_loop_close(&loop);
  free(cs);
}

/* ---- raw epoll ---------------------------------------------------------- */

typedef struct ec {
  int fd;
  size_t sent, got;
  bool connecting;
} ec;

static int ec_connect(int ep, ec *c, const struct sockaddr_in *a, job *j,
                      size_t idx) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (const struct sockaddr *)a, sizeof *a) < 0 &&
      errno != EINPROGRESS)
    bench_fail("epoll connect: %d", errno);
  c->connecting = true;
  j->started++;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = idx};
  return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Writes what the socket takes (pump) and says whether more is pending. */
static bool ec_fill(ec *c, const job *j) {
  while (c->sent < j->target) {
    size_t n = j->target - c->sent < CHUNK ? j->target - c->sent : CHUNK;
    ssize_t r = send(c->fd, out_chunk, n, MSG_NOSIGNAL);
    if (r <= 0) return true;
    c->sent += (size_t)r;
  }
  return false;
}

static void ec_event(int ep, ec *c, job *j, uint32_t events, size_t idx,
                     const struct sockaddr_in *a, size_t *live) {
  static char buf[CHUNK];
  bool pump = j->w == W_PUMP1 || j->w == W_PUMP100;
  if (c->connecting && (events & EPOLLOUT)) {
    c->connecting = false;
    if (!pump) {
      BENCH_CHECK(
          send(c->fd, MSG, j->w == W_PINGPONG ? MSG_LEN : 1, MSG_NOSIGNAL) > 0,
          "send");
      struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      return;
    }
  }
  if (pump && (events & EPOLLOUT) && !ec_fill(c, j)) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  }
  if (!(events & EPOLLIN)) return;
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN) return;
  BENCH_CHECK(n > 0, "epoll read %zd", n);
  c->got += (size_t)n;
  if (j->w == W_PINGPONG) {
    if (c->got % MSG_LEN) return;
    if (++j->done < j->target)
      send(c->fd, MSG, MSG_LEN, MSG_NOSIGNAL);
    else
      close(c->fd), (*live)--;
  } else if (j->w == W_POUND) {
    j->done++;
    close(c->fd);
    if (j->started < j->target)
      ec_connect(ep, c, a, j, idx);
    else
      (*live)--;
  } else if (c->got == j->target) {
    j->done++;
    close(c->fd);
    (*live)--;
  }
}

static void epoll_udp(job *j, const struct sockaddr_in *ua) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  char buf[64];
  for (j->done = 0; j->done < j->target; j->done++) {
    sendto(fd, MSG, MSG_LEN, 0, (const struct sockaddr *)ua, sizeof *ua);
    BENCH_CHECK(recv(fd, buf, sizeof buf, 0) == MSG_LEN, "udp reply");
  }
  close(fd);
}

static void epoll_client(workload w, const server_proc *s, double *v) {
  job j;
  job_init(&j, w);
  struct sockaddr_in ta = addr_of(s->tcp_port), ua = addr_of(s->udp_port);
  size_t width = w == W_POUND ? POUND_WIDTH : j.conns, live = width;
  ec *cs = calloc(width, sizeof *cs);
  int ep = epoll_create1(0);
  double t0 = bench_wall();
  if (w == W_UDP) {
    epoll_udp(&j, &ua); /* blocking recv: what epoll would wait for */
    live = 0;
  }
  for (size_t i = 0; i < width && live; i++)
    ec_connect(ep, &cs[i], &ta, &j, i);
  struct epoll_event evs[256];
  while (live > 0) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      size_t idx = (size_t)evs[i].data.u64;
      ec_event(ep, &cs[idx], &j, evs[i].events, idx, &ta, &live);
    }
  }
  double t = bench_wall() - t0;
  size_t want = w == W_PUMP1 || w == W_PUMP100 ? j.conns : j.target;
  BENCH_CHECK(j.done == want, "epoll: %zu of %zu done", j.done, want);
  job_result(&j, t, v);
  close(ep);
  free(cs);
}

/* ---- groups
 * ------------------------------------------------------------------ */

typedef struct run_arg {
  workload w;
  serve_fn serve;
  void (*client)(workload w, const server_proc *s, double *v);
} run_arg;

/* CPU time (user + system) of the reaped children: the servers. */
static double children_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void run(double *v, void *arg) {
  run_arg *r = arg;
  server_proc s = server_start(r->serve);
  double c0 = bench_cpu(), s0 = children_cpu();
  r->client(r->w, &s, v);
  double c1 = bench_cpu();
  server_stop(&s); /* reaps it: its CPU time is counted from here */
  v[1] = (c1 - c0 + children_cpu() - s0) / job_units * 1e6;
}

/* The weft client, reading with read futures (pump workloads only). */
static void weft_future_client(workload w, const server_proc *s, double *v) {
  wc_future = true;
  weft_client(w, s, v);
  wc_future = false;
}

#define IMPLS(w)                                                               \
  static run_arg w##_weft = {w, serve_weft, weft_client};                      \
  static run_arg w##_uv = {w, serve_uv, uv_client};                            \
  static run_arg w##_ep = {w, serve_epoll, epoll_client};                      \
  static const bench_impl w##_impls[] = {{"weft", run, &w##_weft},             \
                                         {"libuv", run, &w##_uv},              \
                                         {"epoll", run, &w##_ep}};

IMPLS(W_PINGPONG)
/* the pumps: a fourth row, weft reading with read futures */
#define IMPLS_PUMP(w)                                                          \
  static run_arg w##_weft = {w, serve_weft, weft_client};                      \
  static run_arg w##_weftf = {w, serve_weft, weft_future_client};              \
  static run_arg w##_uv = {w, serve_uv, uv_client};                            \
  static run_arg w##_ep = {w, serve_epoll, epoll_client};                      \
  static const bench_impl w##_impls[] = {                                      \
      {"weft", run, &w##_weft},                                                \
      {"weft_read_future", run, &w##_weftf},                                   \
      {"libuv", run, &w##_uv},                                                 \
      {"epoll", run, &w##_ep}};

IMPLS_PUMP(W_PUMP1)
IMPLS_PUMP(W_PUMP100)
IMPLS(W_POUND)
IMPLS(W_UDP)

static const bench_metric m_pingpong[] = {{"tcp_pingpong", "rt/s", true},
                                          {"tcp_pingpong_cpu", "us/rt", false}};
static const bench_metric m_pump1[] = {{"tcp_pump_1", "MB/s", true},
                                       {"tcp_pump_1_cpu", "us/MB", false}};
static const bench_metric m_pump100[] = {{"tcp_pump_100", "MB/s", true},
                                         {"tcp_pump_100_cpu", "us/MB", false}};
static const bench_metric m_pound[] = {{"tcp_pound", "accepts/s", true},
                                       {"tcp_pound_cpu", "us/accept", false}};
static const bench_metric m_udp[] = {{"udp_pingpong", "rt/s", true},
                                     {"udp_pingpong_cpu", "us/rt", false}};

#define GROUP(name, m, w)                                                      \
  { name, m, BENCH_LEN(m), w##_impls, BENCH_LEN(w##_impls) }

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
    bench_emit("tcp_handle_bytes", "weft", (double)weft_tcp_handle_size(), "B",
               false, 1);
    bench_emit("tcp_handle_bytes", "libuv", (double)sizeof(uv_tcp_t), "B",
               false, 1);
  }
  int rc = bench_main(argc, argv, groups, BENCH_LEN(groups));
  return argc >= 2 && strstr("tcp_handle_bytes", argv[1]) ? 0 : rc;
}
