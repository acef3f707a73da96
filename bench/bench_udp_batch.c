/* Sending 1 KiB UDP datagrams over loopback: one sendmmsg(2) per batch of
 * BATCH datagrams against one system call per datagram.
 *
 * udp_send_1k   datagrams/s handed to the kernel, N = 200k of them per run.
 *   weft             weft_udp_try_send_batch(), BATCH per call
 *   weft-send_batch  weft_udp_send_batch() (the callback form, BATCH per
 *                    request, WINDOW requests in flight, completions from
 *                    the loop)
 *   weft-try_send    weft_udp_try_send(), one sendmsg per datagram
 *   weft-send        weft_udp_send(), one request per datagram, WINDOW in
 *                    flight (the usual per-datagram weft code)
 *   libuv-try_send   uv_udp_try_send(), one per datagram
 *   libuv-try_send2  uv_udp_try_send2() (libuv >= 1.50: sendmmsg), BATCH
 *                    per call; a "skipped" row with an older libuv.
 *   raw-sendmmsg     sendmmsg(2) by hand, BATCH per call, no library: the
 *                    ceiling any batched sender reaches on this kernel
 *   raw-sendto       sendto(2) by hand, one per datagram: the per-datagram
 *                    floor; raw-sendmmsg / raw-sendto is the most batching
 *                    can gain here
 * The receiver is a bound socket nobody reads, with a small receive
 * buffer: the kernel drops what does not fit (after the whole send path
 * ran), so the figure is the sender's cost alone and does not depend on a
 * reader keeping up on a shared machine. Every impl must hand exactly N
 * datagrams to the kernel (every call checked; EAGAIN is retried).
 * BENCH_QUICK=1: 10k datagrams. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <weft.h>

#include "support/bench.h"

#define SIZE 1024
#define BATCH 64u
#define WINDOW 64u

static size_t n;
static char payload[SIZE];
static struct sockaddr_in sink; /* where every impl sends */
static int sink_fd;

static void make_sink(void) {
  sink_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sink_fd < 0) bench_fail("socket");
  int small = 4096;
  setsockopt(sink_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  if (weft_ip4_addr("127.0.0.1", 0, &sink) != 0) bench_fail("address");
  if (bind(sink_fd, (struct sockaddr *)&sink, sizeof sink) != 0)
    bench_fail("bind");
  socklen_t len = sizeof sink;
  if (getsockname(sink_fd, (struct sockaddr *)&sink, &len) != 0)
    bench_fail("getsockname");
}

/* ---- weft ------------------------------------------------------------------
 */

static weft_buf wbuf;
static weft_udp_dgram dgrams[BATCH];

static weft_loop *w_open(weft_udp *u) {
  weft_loop *loop = NULL;
  if (weft_loop_new(&loop, NULL) != 0) bench_fail("weft_loop_new");
  if (weft_udp_init(loop, u) != 0) bench_fail("weft_udp_init");
  struct sockaddr_in any;
  weft_ip4_addr("127.0.0.1", 0, &any);
  if (weft_udp_bind(u, (struct sockaddr *)&any, 0) != 0) bench_fail("bind");
  wbuf = weft_buf_init(payload, SIZE);
  for (unsigned i = 0; i < BATCH; i++)
    dgrams[i] = (weft_udp_dgram){&wbuf, 1, (struct sockaddr *)&sink};
  return loop;
}

static void w_close(weft_loop *loop, weft_udp *u) {
  weft_close(&u->base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (weft_loop_free(loop) != 0) bench_fail("weft_loop_free");
}

static void w_try_batch(double *v, void *arg) {
  (void)arg;
  weft_udp u;
  weft_loop *loop = w_open(&u);
  size_t sent = 0;
  double t0 = bench_wall();
  while (sent < n) {
    unsigned k = n - sent < BATCH ? (unsigned)(n - sent) : BATCH;
    int r = weft_udp_try_send_batch(&u, dgrams, k);
    if (r == -EAGAIN) continue;
    BENCH_CHECK(r > 0, "try_send_batch: %s", weft_err_name(r));
    sent += (size_t)r;
  }
  v[0] = (double)n / (bench_wall() - t0);
  BENCH_CHECK(sent == n, "%zu of %zu sent", sent, n);
  w_close(loop, &u);
}

static void w_try_one(double *v, void *arg) {
  (void)arg;
  weft_udp u;
  weft_loop *loop = w_open(&u);
  size_t sent = 0;
  double t0 = bench_wall();
  while (sent < n) {
    int r = weft_udp_try_send(&u, &wbuf, 1, (struct sockaddr *)&sink);
    if (r == -EAGAIN) continue;
    BENCH_CHECK(r == SIZE, "try_send: %s", weft_err_name(r));
    sent++;
  }
  v[0] = (double)n / (bench_wall() - t0);
  w_close(loop, &u);
}

/* The callback forms: WINDOW requests in flight, each completion starts
 * the next until N datagrams were issued. */
static size_t issued, done_count;
static weft_udp w_u;

static void w_sent_one(weft_udp_send_req *req, int status) {
  BENCH_CHECK(status == 0, "send: %s", weft_err_name(status));
  done_count++;
  if (issued < n) {
    issued++;
    if (weft_udp_send(req, &w_u, &wbuf, 1, (struct sockaddr *)&sink,
                      w_sent_one) != 0)
      bench_fail("send submit");
  }
}

static void w_send_one(double *v, void *arg) {
  (void)arg;
  static weft_udp_send_req reqs[WINDOW];
  weft_loop *loop = w_open(&w_u);
  issued = done_count = 0;
  double t0 = bench_wall();
  for (unsigned i = 0; i < WINDOW && issued < n; i++) {
    issued++;
    if (weft_udp_send(&reqs[i], &w_u, &wbuf, 1, (struct sockaddr *)&sink,
                      w_sent_one) != 0)
      bench_fail("send submit");
  }
  while (done_count < n)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  v[0] = (double)n / (bench_wall() - t0);
  BENCH_CHECK(done_count == n, "%zu of %zu sent", done_count, n);
  w_close(loop, &w_u);
}

static void w_sent_batch(weft_udp_batch_req *req, int status, unsigned sent) {
  BENCH_CHECK(status == 0, "send_batch: %s", weft_err_name(status));
  done_count += sent;
  if (issued < n) {
    unsigned k = n - issued < BATCH ? (unsigned)(n - issued) : BATCH;
    issued += k;
    if (weft_udp_send_batch(req, &w_u, dgrams, k, w_sent_batch) != 0)
      bench_fail("send_batch submit");
  }
}

static void w_send_batch(double *v, void *arg) {
  (void)arg;
  static weft_udp_batch_req reqs[WINDOW];
  weft_loop *loop = w_open(&w_u);
  issued = done_count = 0;
  double t0 = bench_wall();
  for (unsigned i = 0; i < WINDOW && issued < n; i++) {
    unsigned k = n - issued < BATCH ? (unsigned)(n - issued) : BATCH;
    issued += k;
    if (weft_udp_send_batch(&reqs[i], &w_u, dgrams, k, w_sent_batch) != 0)
      bench_fail("send_batch submit");
  }
  while (done_count < n)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  v[0] = (double)n / (bench_wall() - t0);
  BENCH_CHECK(done_count == n, "%zu of %zu sent", done_count, n);
  w_close(loop, &w_u);
}

/* ---- libuv -----------------------------------------------------------------
 */

static uv_loop_t *u_open(uv_udp_t *u) {
  static uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) bench_fail("uv_loop_init");
  if (uv_udp_init(&loop, u) != 0) bench_fail("uv_udp_init");
  struct sockaddr_in any;
  uv_ip4_addr("127.0.0.1", 0, &any);
  if (uv_udp_bind(u, (struct sockaddr *)&any, 0) != 0) bench_fail("uv bind");
  return &loop;
}

static void u_close(uv_loop_t *loop, uv_udp_t *u) {
  uv_close((uv_handle_t *)u, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) bench_fail("uv_loop_close");
}

static void u_try_one(double *v, void *arg) {
  (void)arg;
  uv_udp_t u;
  uv_loop_t *loop = u_open(&u);
  uv_buf_t b = uv_buf_init(payload, SIZE);
  size_t sent = 0;
  double t0 = bench_wall();
  while (sent < n) {
    int r = uv_udp_try_send(&u, &b, 1, (struct sockaddr *)&sink);
    if (r == UV_EAGAIN) continue;
    BENCH_CHECK(r == SIZE, "uv_udp_try_send: %s", uv_err_name(r));
    sent++;
  }
  v[0] = (double)n / (bench_wall() - t0);
  u_close(loop, &u);
}

static void u_try_batch(double *v, void *arg) {
  (void)arg;
#if UV_VERSION_HEX >= 0x013200 /* uv_udp_try_send2 came with libuv 1.50 */
  uv_udp_t u;
  uv_loop_t *loop = u_open(&u);
  uv_buf_t b = uv_buf_init(payload, SIZE);
  uv_buf_t *bufs[BATCH];
  unsigned int nbufs[BATCH];
  struct sockaddr *addrs[BATCH];
  for (unsigned i = 0; i < BATCH; i++) {
    bufs[i] = &b;
    nbufs[i] = 1;
    addrs[i] = (struct sockaddr *)&sink;
  }
  size_t sent = 0;
  double t0 = bench_wall();
  while (sent < n) {
    unsigned k = n - sent < BATCH ? (unsigned)(n - sent) : BATCH;
    int r = uv_udp_try_send2(&u, k, bufs, nbufs, addrs, 0);
    if (r == UV_EAGAIN) continue;
    BENCH_CHECK(r > 0, "uv_udp_try_send2: %s", uv_err_name(r));
    sent += (size_t)r;
  }
  v[0] = (double)n / (bench_wall() - t0);
  u_close(loop, &u);
#else
  (void)v;
  bench_skip("uv_udp_try_send2 needs libuv >= 1.50 (installed: %s)",
             uv_version_string());
#endif
}

/* ---- raw system calls ------------------------------------------------------
 */

static int raw_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) bench_fail("socket");
  struct sockaddr_in any;
  weft_ip4_addr("127.0.0.1", 0, &any);
  if (bind(fd, (struct sockaddr *)&any, sizeof any) != 0) bench_fail("bind");
  return fd;
}

static void raw_mmsg(double *v, void *arg) {
  (void)arg;
  int fd = raw_socket();
  static struct iovec iov;
  static struct mmsghdr msgs[BATCH];
  iov = (struct iovec){payload, SIZE};
  for (unsigned i = 0; i < BATCH; i++)
    msgs[i].msg_hdr = (struct msghdr){.msg_name = &sink,
                                      .msg_namelen = sizeof sink,
                                      .msg_iov = &iov,
                                      .msg_iovlen = 1};
  size_t sent = 0;
  double t0 = bench_wall();
  while (sent < n) {
    unsigned k = n - sent < BATCH ? (unsigned)(n - sent) : BATCH;
    int r = sendmmsg(fd, msgs, k, 0);
    if (r < 0 && errno == EAGAIN) continue;
    BENCH_CHECK(r > 0, "sendmmsg: %s", strerror(errno));
    sent += (size_t)r;
  }
  v[0] = (double)n / (bench_wall() - t0);
  BENCH_CHECK(sent == n, "%zu of %zu sent", sent, n);
  close(fd);
}

static void raw_sendto(double *v, void *arg) {
  (void)arg;
  int fd = raw_socket();
  size_t sent = 0;
  double t0 = bench_wall();
  while (sent < n) {
    ssize_t r =
        sendto(fd, payload, SIZE, 0, (struct sockaddr *)&sink, sizeof sink);
    if (r < 0 && errno == EAGAIN) continue;
    BENCH_CHECK(r == SIZE, "sendto: %s", strerror(errno));
    sent++;
  }
  v[0] = (double)n / (bench_wall() - t0);
  close(fd);
}

int main(int argc, char **argv) {
  n = bench_n(200000, 10000);
  memset(payload, 'u', sizeof payload);
  make_sink();
  const bench_metric m[] = {{"udp_send_1k", "datagrams/s", true}};
  const bench_impl i[] = {{"weft", w_try_batch, NULL},
                          {"weft-send_batch", w_send_batch, NULL},
                          {"weft-try_send", w_try_one, NULL},
                          {"weft-send", w_send_one, NULL},
                          {"libuv-try_send", u_try_one, NULL},
                          {"libuv-try_send2", u_try_batch, NULL},
                          {"raw-sendmmsg", raw_mmsg, NULL},
                          {"raw-sendto", raw_sendto, NULL}};
  const bench_group g[] = {{"udp_batch", m, BENCH_LEN(m), i, BENCH_LEN(i)}};
  int rc = bench_main(argc, argv, g, BENCH_LEN(g));
  close(sink_fd);
  return rc;
}
