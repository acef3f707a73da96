/* Shared memory, cross-process locks and fd passing (issue 14's rows).
 *
 * "shm_transfer": one 256 MiB input to a worker process and a checksum
 * back. The worker is forked before the clock starts and waits on a Unix
 * socket. weft (shared memory): the input sits in a weft_shm region; the parent
 * passes the region's fd (weft_pipe_write_fds), the worker maps it
 * (weft_shm_attach, then MADV_POPULATE_READ), sums it and writes the
 * 8-byte sum back. pipe: the
 * same input in the parent's memory goes through the socket
 * (weft_stream_write_future of the whole buffer), the worker reads all of
 * it into a 256 MiB buffer it faulted in before the clock started, sums
 * it and answers. Both sides sum the same 256 MiB with the same function
 * (verified), from pages already faulted in on the sending side; the
 * shared-memory worker maps the region's pages inside the clock (one
 * MADV_POPULATE_READ), the pipe's bytes are copied twice (into the socket,
 * out of it). Figure: transfers per second (wall clock).
 *
 * "shm_lock": two processes each take and release a lock N times around
 * an increment of a plain shared counter (verified: 2N at the end); the
 * figure is lock/unlock pairs per second of the two together. weft:
 * weft_shm_lock; pthread: a PTHREAD_PROCESS_SHARED mutex (glibc); python:
 * multiprocessing.Lock with a multiprocessing.Value (N/20 rounds, the
 * same rate reported).
 *
 * "fdpass": 100,000 fds (one /dev/null fd, one per one-byte message) over
 * one Unix socket pair in one process, in windows of 64 messages: send
 * 64, receive them and close each received fd, repeat. weft: a
 * weft_pipe pair, weft_pipe_write_fds per message, read_start and
 * weft_pipe_take_fds on the other end. sendmsg: the plain blocking
 * sendmsg/recvmsg loop a C programmer writes. Figure: fds per second.
 * "fdpass_batch": the same fds, 64 per message (WEFT_PIPE_FDS_MAX), one
 * message in flight. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "support/bench.h"

/* ---- shm_transfer ---------------------------------------------------------
 */

static size_t xfer_size;

static uint64_t sum_words(const uint64_t *p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; i++)
    a += p[i];
  return a + b + c + d;
}

static void fill(uint64_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = i * 0x9e3779b97f4a7c15ull;
}

static ssize_t read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

/* The worker: per request, a mode byte ('S': a region fd came with it;
 * 'P': xfer_size bytes follow); answers the sum. 'Q' ends it. */
static int recv_fd(int sock, char *mode) {
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {mode, 1};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cbuf,
                      .msg_controllen = sizeof cbuf};
  ssize_t r;
  do
    r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (r < 0 && errno == EINTR);
  if (r != 1) return -2;
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  if (c == NULL || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static void xfer_worker(int sock) {
  /* the pipe's input lands in a buffer as large as the region, its pages
   * faulted in before the clock starts (the region's pages are too: the
   * parent wrote them), and is summed once all of it came, as a job
   * summing its input would: the same sum over the same 256 MiB as the
   * shared-memory side, not over a 1 MiB buffer that stays in cache */
  uint64_t *buf = malloc(xfer_size);
  if (buf == NULL) _exit(6);
  memset(buf, 1, xfer_size);
  char ready = 'R';
  if (write(sock, &ready, 1) != 1) _exit(6);
  for (;;) {
    char mode = 0;
    int fd = recv_fd(sock, &mode);
    if (fd == -2 || mode == 'Q') _exit(0);
    uint64_t sum = 0;
    if (mode == 'S') {
      weft_shm shm;
      if (fd < 0 || weft_shm_attach(&shm, fd) != 0) _exit(3);
      /* one call maps every page (the 65,536 minor faults of a first
       * touch cost about as much as the sum on this VM) */
      madvise(shm.base, shm.size, MADV_POPULATE_READ);
      sum = sum_words(shm.base, shm.size / 8);
      weft_shm_close(&shm);
    } else {
      if (fd >= 0) close(fd);
      if (read_full(sock, buf, xfer_size) != (ssize_t)xfer_size) _exit(4);
      sum = sum_words(buf, xfer_size / 8);
    }
    if (write(sock, &sum, sizeof sum) != (ssize_t)sizeof sum) _exit(5);
  }
}

typedef struct xfer {
  weft_loop *loop;
  weft_pipe ctl;
  pid_t pid;
  uint64_t want;
} xfer;

static void settle(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  BENCH_CHECK(weft_future_get_state(f) == WEFT_FUTURE_FULFILLED, "%s",
              weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
}

static void xfer_start(xfer *x) {
  int sv[2];
  BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
              "socketpair");
  x->pid = fork();
  BENCH_CHECK(x->pid >= 0, "fork");
  if (x->pid == 0) {
    close(sv[0]);
    xfer_worker(sv[1]);
  }
  close(sv[1]);
  BENCH_CHECK(weft_loop_new(&x->loop, NULL) == 0, "loop");
  weft_pipe_init(x->loop, &x->ctl);
  BENCH_CHECK(weft_pipe_open(&x->ctl, sv[0]) == 0, "open");
  char ready = 0; /* the worker's buffer is faulted in */
  weft_future *f;
  BENCH_CHECK(weft_stream_read_exact_future(&x->ctl.stream, &ready, 1, &f) == 0,
              "ready");
  settle(x->loop, f);
  BENCH_CHECK(ready == 'R', "ready byte %d", ready);
}

static void xfer_stop(xfer *x) {
  weft_buf q = weft_buf_init("Q", 1);
  weft_future *f;
  BENCH_CHECK(weft_stream_write_future(&x->ctl.stream, &q, 1, &f) == 0, "q");
  settle(x->loop, f);
  int st;
  BENCH_CHECK(waitpid(x->pid, &st, 0) == x->pid && WIFEXITED(st) &&
                  WEXITSTATUS(st) == 0,
              "worker status %#x", st);
  weft_close(&x->ctl.stream.base, NULL);
  weft_loop_run(x->loop, WEFT_RUN_DEFAULT);
  BENCH_CHECK(weft_loop_free(x->loop) == 0, "loop_free");
}

static void xfer_answer(xfer *x) {
  uint64_t sum = 0;
  weft_future *f;
  BENCH_CHECK(weft_stream_read_exact_future(&x->ctl.stream, &sum, 8, &f) == 0,
              "read");
  settle(x->loop, f);
  BENCH_CHECK(sum == x->want, "checksum %llx, want %llx",
              (unsigned long long)sum, (unsigned long long)x->want);
}

static void run_xfer_shm(double *v, void *arg) {
  (void)arg;
  xfer x;
  xfer_start(&x);
  weft_shm shm;
  BENCH_CHECK(weft_shm_create(&shm, "bench", xfer_size) == 0, "create");
  fill(shm.base, xfer_size / 8);
  x.want = sum_words(shm.base, xfer_size / 8);
  double t0 = bench_wall();
  weft_buf s = weft_buf_init("S", 1);
  weft_future *f;
  BENCH_CHECK(weft_pipe_write_fds_future(&x.ctl, &s, 1, &shm.fd, 1, &f) == 0,
              "write_fds");
  settle(x.loop, f);
  xfer_answer(&x);
  v[0] = 1.0 / (bench_wall() - t0);
  weft_shm_close(&shm);
  xfer_stop(&x);
}

static void run_xfer_pipe(double *v, void *arg) {
  (void)arg;
  xfer x;
  xfer_start(&x);
  uint64_t *data = malloc(xfer_size);
  BENCH_CHECK(data != NULL, "malloc");
  fill(data, xfer_size / 8);
  x.want = sum_words(data, xfer_size / 8);
  /* the mode byte carries a harmless fd, so the worker's recvmsg is the
   * same in both modes */
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  double t0 = bench_wall();
  weft_buf p = weft_buf_init("P", 1);
  weft_future *f;
  BENCH_CHECK(weft_pipe_write_fds_future(&x.ctl, &p, 1, &devnull, 1, &f) == 0,
              "write_fds");
  settle(x.loop, f);
  weft_buf all = weft_buf_init(data, xfer_size);
  BENCH_CHECK(weft_stream_write_future(&x.ctl.stream, &all, 1, &f) == 0,
              "write");
  xfer_answer(&x);
  settle(x.loop, f);
  v[0] = 1.0 / (bench_wall() - t0);
  close(devnull);
  free(data);
  xfer_stop(&x);
}

/* ---- shm_lock ---------------------------------------------------------------
 */

static long lock_rounds;

typedef struct lockarea {
  weft_shm_lock wl;
  pthread_mutex_t pm;
  int64_t counter;
} lockarea;

static void lock_loop(lockarea *a, bool weft) {
  for (long i = 0; i < lock_rounds; i++) {
    if (weft) {
      if (weft_shm_lock_acquire(&a->wl, WEFT_SHM_FOREVER) != 0) _exit(7);
      a->counter++;
      weft_shm_lock_release(&a->wl);
    } else {
      pthread_mutex_lock(&a->pm);
      a->counter++;
      pthread_mutex_unlock(&a->pm);
    }
  }
}

static void run_lock(double *v, bool weft) {
  lockarea *a = mmap(NULL, sizeof *a, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  BENCH_CHECK(a != MAP_FAILED, "mmap");
  weft_shm_lock_init(&a->wl);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&a->pm, &ma);
  a->counter = 0;
  double t0 = bench_wall();
  pid_t pid = fork();
  BENCH_CHECK(pid >= 0, "fork");
  if (pid == 0) {
    lock_loop(a, weft);
    _exit(0);
  }
  lock_loop(a, weft);
  int st;
  BENCH_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
                  WEXITSTATUS(st) == 0,
              "child %#x", st);
  double secs = bench_wall() - t0;
  BENCH_CHECK(a->counter == 2 * lock_rounds, "counter %lld",
              (long long)a->counter);
  v[0] = 2.0 * (double)lock_rounds / secs;
  pthread_mutex_destroy(&a->pm);
  munmap(a, sizeof *a);
}

static void run_lock_weft(double *v, void *arg) {
  (void)arg;
  run_lock(v, true);
}

static void run_lock_pthread(double *v, void *arg) {
  (void)arg;
  run_lock(v, false);
}

static const char py_lock[] =
    "import multiprocessing as mp, sys, time\n"
    "def work(lock, val, n):\n"
    "    for _ in range(n):\n"
    "        with lock:\n"
    "            val.value += 1\n"
    "if __name__ == '__main__':\n"
    "    n = int(sys.argv[1])\n"
    "    lock = mp.Lock(); val = mp.Value('q', 0, lock=False)\n"
    "    p = mp.Process(target=work, args=(lock, val, n))\n"
    "    t0 = time.perf_counter(); p.start(); work(lock, val, n); p.join()\n"
    "    dt = time.perf_counter() - t0\n"
    "    assert val.value == 2 * n, val.value\n"
    "    print(2 * n / dt)\n";

static void run_lock_python(double *v, void *arg) {
  (void)arg;
  char cmd[256];
  long n = lock_rounds / 20;
  snprintf(cmd, sizeof cmd, "python3 -c \"$BENCH_PY\" %ld", n);
  setenv("BENCH_PY", py_lock, 1);
  FILE *p = popen(cmd, "r");
  double rate = 0;
  if (p == NULL || fscanf(p, "%lf", &rate) != 1 || pclose(p) != 0) {
    bench_skip("python3 multiprocessing did not run");
    return;
  }
  v[0] = rate;
}

/* ---- fdpass -----------------------------------------------------------------
 */

static size_t fd_total;
#define WINDOW 64

typedef struct fdrun {
  weft_loop *loop;
  weft_pipe a, b;
  weft_write_req reqs[WINDOW];
  size_t sent, done, taken;
  int fd, errors;
  char byte;
} fdrun;

static void fd_written(weft_write_req *req, int status) {
  fdrun *r = req->data;
  r->errors += status != 0;
  r->done++;
}

static void fd_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  fdrun *r = s->base.data;
  if (n < 0) {
    r->errors++;
    return;
  }
  int fds[WINDOW];
  int k;
  while ((k = weft_pipe_take_fds(&r->b, fds, WINDOW)) > 0) {
    for (int i = 0; i < k; i++)
      close(fds[i]);
    r->taken += (size_t)k;
  }
}

static void run_fd_weft(double *v, void *arg) {
  (void)arg;
  fdrun *r = calloc(1, sizeof *r);
  BENCH_CHECK(r != NULL && weft_loop_new(&r->loop, NULL) == 0, "loop");
  weft_pipe_init(r->loop, &r->a);
  weft_pipe_init(r->loop, &r->b);
  BENCH_CHECK(weft_pipe_pair(r->loop, &r->a, &r->b) == 0, "pair");
  r->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  r->b.stream.base.data = r;
  BENCH_CHECK(weft_stream_read_start(&r->b.stream, NULL, fd_read) == 0, "rd");
  weft_buf one = weft_buf_init(&r->byte, 1);
  double t0 = bench_wall();
  while (r->taken < fd_total) {
    size_t batch = fd_total - r->sent < WINDOW ? fd_total - r->sent : WINDOW;
    for (size_t i = 0; i < batch; i++) {
      r->reqs[i].data = r;
      BENCH_CHECK(weft_pipe_write_fds(&r->reqs[i], &r->a, &one, 1, &r->fd, 1,
                                      fd_written) == 0,
                  "write_fds");
    }
    r->sent += batch;
    while (r->taken < r->sent || r->done < r->sent)
      weft_loop_run(r->loop, WEFT_RUN_ONCE);
  }
  v[0] = (double)fd_total / (bench_wall() - t0);
  BENCH_CHECK(r->errors == 0 && r->taken == fd_total, "%d errors, %zu fds",
              r->errors, r->taken);
  weft_close(&r->a.stream.base, NULL);
  weft_close(&r->b.stream.base, NULL);
  weft_loop_run(r->loop, WEFT_RUN_DEFAULT);
  BENCH_CHECK(weft_loop_free(r->loop) == 0, "loop_free");
  close(r->fd);
  free(r);
}

static void send_one(int sock, int fd) {
  char cbuf[CMSG_SPACE(sizeof(int))] = {0};
  char b = 0;
  struct iovec iov = {&b, 1};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cbuf,
                      .msg_controllen = sizeof cbuf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  BENCH_CHECK(sendmsg(sock, &mh, MSG_NOSIGNAL) == 1, "sendmsg");
}

static void run_fd_sendmsg(double *v, void *arg) {
  (void)arg;
  int sv[2];
  BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
              "socketpair");
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  size_t taken = 0;
  double t0 = bench_wall();
  while (taken < fd_total) {
    size_t batch = fd_total - taken < WINDOW ? fd_total - taken : WINDOW;
    for (size_t i = 0; i < batch; i++)
      send_one(sv[0], fd);
    for (size_t i = 0; i < batch; i++) {
      char m;
      int got = recv_fd(sv[1], &m);
      BENCH_CHECK(got >= 0, "recvmsg");
      close(got);
    }
    taken += batch;
  }
  v[0] = (double)fd_total / (bench_wall() - t0);
  close(fd);
  close(sv[0]);
  close(sv[1]);
}

/* "fdpass_batch": the same 100,000 fds, 64 per message (WEFT_PIPE_FDS_MAX),
 * one message at a time. */
#define BATCH 64

static void run_fdb_weft(double *v, void *arg) {
  (void)arg;
  fdrun *r = calloc(1, sizeof *r);
  BENCH_CHECK(r != NULL && weft_loop_new(&r->loop, NULL) == 0, "loop");
  weft_pipe_init(r->loop, &r->a);
  weft_pipe_init(r->loop, &r->b);
  BENCH_CHECK(weft_pipe_pair(r->loop, &r->a, &r->b) == 0, "pair");
  r->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int fds[BATCH];
  for (int i = 0; i < BATCH; i++)
    fds[i] = r->fd;
  r->b.stream.base.data = r;
  BENCH_CHECK(weft_stream_read_start(&r->b.stream, NULL, fd_read) == 0, "rd");
  weft_buf one = weft_buf_init(&r->byte, 1);
  double t0 = bench_wall();
  while (r->sent < fd_total) {
    unsigned k =
        fd_total - r->sent < BATCH ? (unsigned)(fd_total - r->sent) : BATCH;
    r->reqs[0].data = r;
    BENCH_CHECK(weft_pipe_write_fds(&r->reqs[0], &r->a, &one, 1, fds, k,
                                    fd_written) == 0,
                "write_fds");
    r->sent += k;
    size_t want_done = r->done + 1;
    while (r->taken < r->sent || r->done < want_done)
      weft_loop_run(r->loop, WEFT_RUN_ONCE);
  }
  v[0] = (double)fd_total / (bench_wall() - t0);
  BENCH_CHECK(r->errors == 0 && r->taken == fd_total, "%d errors, %zu fds",
              r->errors, r->taken);
  weft_close(&r->a.stream.base, NULL);
  weft_close(&r->b.stream.base, NULL);
  weft_loop_run(r->loop, WEFT_RUN_DEFAULT);
  BENCH_CHECK(weft_loop_free(r->loop) == 0, "loop_free");
  close(r->fd);
  free(r);
}

static void run_fdb_sendmsg(double *v, void *arg) {
  (void)arg;
  int sv[2];
  BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
              "socketpair");
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  char cbuf[CMSG_SPACE(BATCH * sizeof(int))];
  size_t taken = 0;
  double t0 = bench_wall();
  while (taken < fd_total) {
    unsigned k =
        fd_total - taken < BATCH ? (unsigned)(fd_total - taken) : BATCH;
    char b = 0;
    struct iovec iov = {&b, 1};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf,
                        .msg_controllen = CMSG_SPACE(k * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(k * sizeof(int));
    for (unsigned i = 0; i < k; i++)
      memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
    BENCH_CHECK(sendmsg(sv[0], &mh, MSG_NOSIGNAL) == 1, "sendmsg");
    struct msghdr rh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf};
    BENCH_CHECK(recvmsg(sv[1], &rh, MSG_CMSG_CLOEXEC) == 1, "recvmsg");
    c = CMSG_FIRSTHDR(&rh);
    BENCH_CHECK(c != NULL && c->cmsg_len == CMSG_LEN(k * sizeof(int)), "cmsg");
    for (unsigned i = 0; i < k; i++) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      close(got);
    }
    taken += k;
  }
  v[0] = (double)fd_total / (bench_wall() - t0);
  close(fd);
  close(sv[0]);
  close(sv[1]);
}

/* ---- groups ---------------------------------------------------------------
 */

static const bench_metric xfer_metrics[] = {
    {"shm_256mib_to_worker_and_checksum", "transfers/s", true}};
static const bench_impl xfer_impls[] = {{"weft", run_xfer_shm, NULL},
                                        {"pipe", run_xfer_pipe, NULL}};
static const bench_metric lock_metrics[] = {
    {"shm_lock_two_processes", "locks/s", true}};
static const bench_impl lock_impls[] = {{"weft", run_lock_weft, NULL},
                                        {"pthread", run_lock_pthread, NULL},
                                        {"python", run_lock_python, NULL}};
static const bench_metric fd_metrics[] = {
    {"fdpass_100k_one_socket", "fds/s", true}};
static const bench_impl fd_impls[] = {{"weft", run_fd_weft, NULL},
                                      {"sendmsg", run_fd_sendmsg, NULL}};
static const bench_metric fdb_metrics[] = {
    {"fdpass_100k_64_per_message", "fds/s", true}};
static const bench_impl fdb_impls[] = {{"weft", run_fdb_weft, NULL},
                                       {"sendmsg", run_fdb_sendmsg, NULL}};
static const bench_group groups[] = {
    {"shm_transfer", xfer_metrics, 1, xfer_impls, BENCH_LEN(xfer_impls)},
    {"shm_lock", lock_metrics, 1, lock_impls, BENCH_LEN(lock_impls)},
    {"fdpass", fd_metrics, 1, fd_impls, BENCH_LEN(fd_impls)},
    {"fdpass_batch", fdb_metrics, 1, fdb_impls, BENCH_LEN(fdb_impls)}};

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  xfer_size = bench_n((size_t)256 << 20, (size_t)16 << 20);
  lock_rounds = (long)bench_n(2000000, 100000);
  fd_total = bench_n(100000, 10000);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
