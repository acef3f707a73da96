/* Passing fds over weft pipes (SCM_RIGHTS), peer credentials and
 * weft_stream_detach: fds read through after passing, several fds per
 * message, fds and data boundaries, cancel and close with fds pending,
 * truncated control messages, close-on-exec, detach to a second loop, bad
 * input and allocation failure. Every test counts /proc/self/fd before and
 * after: nothing leaks. */
#include "support/test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the DIR's own fd */
}

static bool cloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

static ino_t ino(int fd) {
  struct stat st;
  cr_assert_eq(fstat(fd, &st), 0);
  return st.st_ino;
}

/* Runs turns until *flag is set (bounded). */
static void run_until(weft_loop *loop, const int *flag) {
  for (int i = 0; i < 1000 && !*flag; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert(*flag, "condition never met");
}

/* Runs turns until `f` settles (bounded). */
static void settle(weft_loop *loop, weft_future *f) {
  for (int i = 0; i < 1000 && weft_future_get_state(f) == WEFT_FUTURE_PENDING;
       i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_neq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
}

static void expect_i64(weft_loop *loop, weft_future *f, int64_t v) {
  settle(loop, f);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "rejected: %s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_future_value_i64(f), v);
  weft_future_unref(f);
}

static void expect_err(weft_loop *loop, weft_future *f, int err) {
  settle(loop, f);
  cr_assert_eq(weft_future_error(f), err, "got %s, want %s",
               weft_err_name(weft_future_error(f)), weft_err_name(err));
  weft_future_unref(f);
}

static void pair(weft_loop *loop, weft_pipe *a, weft_pipe *b) {
  cr_assert_eq(weft_pipe_init(loop, a), 0);
  cr_assert_eq(weft_pipe_init(loop, b), 0);
  cr_assert_eq(weft_pipe_pair(loop, a, b), 0);
}

typedef struct wstat {
  int calls, status;
} wstat;

static void on_write(weft_write_req *req, int status) {
  wstat *w = req->data;
  w->calls++;
  w->status = status;
}

/* ---- passing and reading through ---------------------------------------- */

typedef struct rd {
  char buf[256];
  size_t got;
  int calls, err;
  size_t fds_at_first; /* weft_pipe_get_pending_fds at the first callback */
} rd;

static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  rd *r = s->base.data;
  r->calls++;
  if (n < 0) {
    r->err = (int)n;
    return;
  }
  if (r->calls == 1)
    r->fds_at_first = weft_pipe_get_pending_fds((weft_pipe *)s);
  memcpy(r->buf + r->got, buf->base, (size_t)n);
  r->got += (size_t)n;
}

Test(fdpass, pipe_end_and_file_read_through, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  int pf[2];
  cr_assert_eq(pipe(pf), 0);
  char path[] = "/tmp/weft-fdpass-XXXXXX";
  int file = mkstemp(path);
  cr_assert_geq(file, 0);
  unlink(path);
  cr_assert_eq(write(file, "hello file", 10), 10);
  int fds[2] = {pf[0], file};
  weft_write_req req;
  wstat ws = {0, 1};
  req.data = &ws;
  weft_buf buf = weft_buf_init("X", 1);
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &buf, 1, fds, 2, on_write), 0);
  close(pf[0]); /* dup'd at call time: ours may go at once */
  close(file);
  rd r = {0};
  b.stream.base.data = &r;
  cr_assert_eq(weft_stream_read_start(&b.stream, NULL, on_read), 0);
  run_until(loop, &r.calls);
  cr_assert_eq(ws.calls, 1);
  cr_assert_eq(ws.status, 0);
  cr_assert_eq(r.got, 1);
  cr_assert_eq(r.buf[0], 'X');
  cr_assert_eq(r.fds_at_first, 2);
  int got[4] = {-1, -1, -1, -1};
  cr_assert_eq(weft_pipe_take_fds(&b, got, 4), 2);
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 0);
  cr_assert(cloexec(got[0]) && cloexec(got[1]), "received fds are CLOEXEC");
  cr_assert_eq(write(pf[1], "via pipe", 8), 8);
  char tmp[16] = {0};
  cr_assert_eq(read(got[0], tmp, sizeof tmp), 8);
  cr_assert_str_eq(tmp, "via pipe");
  memset(tmp, 0, sizeof tmp);
  cr_assert_eq(pread(got[1], tmp, sizeof tmp, 0), 10);
  cr_assert_str_eq(tmp, "hello file");
  close(got[0]);
  close(got[1]);
  close(pf[1]);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* Three writes: 1 fd with "AB", none with "CD", 3 with "EF". Reads of two
 * bytes see exactly the fds sent up to the bytes they got, in send order. */
Test(fdpass, several_fds_and_message_boundaries, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  int src[4];
  ino_t want[4];
  for (int i = 0; i < 4; i++) {
    src[i] = i == 0 ? dup(0) : memfd_create("fdpass", MFD_CLOEXEC);
    cr_assert_geq(src[i], 0);
    want[i] = ino(src[i]);
  }
  weft_future *w1, *w2, *w3;
  weft_buf ab = weft_buf_init("AB", 2), cd = weft_buf_init("CD", 2),
           ef = weft_buf_init("EF", 2);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &ab, 1, src, 1, &w1), 0);
  cr_assert_eq(weft_stream_write_future(&a.stream, &cd, 1, &w2), 0);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &ef, 1, src + 1, 3, &w3), 0);
  for (int i = 0; i < 4; i++)
    close(src[i]);
  expect_i64(loop, w1, 2);
  expect_i64(loop, w2, 2);
  expect_i64(loop, w3, 2);
  char buf[2];
  const char *msgs[] = {"AB", "CD", "EF"};
  size_t pend[] = {1, 1, 4};
  for (int m = 0; m < 3; m++) {
    weft_future *f;
    cr_assert_eq(weft_stream_read_exact_future(&b.stream, buf, 2, &f), 0);
    expect_i64(loop, f, 2);
    cr_assert_eq(memcmp(buf, msgs[m], 2), 0);
    cr_assert_eq(weft_pipe_get_pending_fds(&b), pend[m], "after %s: %zu",
                 msgs[m], weft_pipe_get_pending_fds(&b));
  }
  int got[4];
  cr_assert_eq(weft_pipe_take_fds(&b, got, 3), 3);
  cr_assert_eq(weft_pipe_take_fds(&b, got + 3, 3), 1);
  cr_assert_eq(weft_pipe_take_fds(&b, got, 3), 0);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(ino(got[i]), want[i], "fd %d out of order", i);
    cr_assert(cloexec(got[i]));
    close(got[i]);
  }
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* Fds never taken are closed with the receiving handle. */
Test(fdpass, untaken_fds_closed_with_handle, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  int base = fd_count();
  int fds[3] = {0, 1, 2};
  weft_future *w, *r;
  weft_buf x = weft_buf_init("xyz", 3);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, fds, 3, &w), 0);
  expect_i64(loop, w, 3);
  char buf[8];
  cr_assert_eq(weft_stream_read_some_future(&b.stream, buf, sizeof buf, &r), 0);
  expect_i64(loop, r, 3);
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 3);
  cr_assert_eq(fd_count(), base + 3);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* ---- cancel and close before the fds went out ---------------------------- */

Test(fdpass, cancel_and_close_with_fds_pending, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  int base = fd_count();
  size_t big = 16u << 20; /* more than the socket buffers hold */
  char *blob = calloc(1, big);
  weft_buf bb = weft_buf_init(blob, big);
  weft_future *bigf, *fdf;
  cr_assert_eq(weft_stream_write_future(&a.stream, &bb, 1, &bigf), 0);
  int fds[2] = {0, 1};
  weft_buf x = weft_buf_init("x", 1);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, fds, 2, &fdf), 0);
  cr_assert_eq(fd_count(), base + 2); /* the dups */
  cr_assert_eq(weft_future_cancel(fdf), 0);
  cr_assert_eq(weft_future_get_state(fdf), WEFT_FUTURE_CANCELLED);
  weft_future_unref(fdf);
  cr_assert_eq(fd_count(), base);
  /* callback form, then close: -ECANCELED and the dups closed */
  weft_write_req req;
  wstat ws = {0, 1};
  req.data = &ws;
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &x, 1, fds, 2, on_write), 0);
  cr_assert_eq(fd_count(), base + 2);
  cr_assert_eq(weft_close(&a.stream.base, NULL), 0);
  expect_err(loop, bigf, -ECANCELED);
  run_until(loop, &ws.calls);
  cr_assert_eq(ws.calls, 1);
  cr_assert_eq(ws.status, -ECANCELED, "%s", weft_err_name(ws.status));
  cr_assert_eq(fd_count(), base - 1); /* a's socket closed, no dup left */
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 0);
  th_loop_finish(loop);
  free(blob);
  cr_assert_eq(fd_count(), before);
}

/* ---- a truncated control message ----------------------------------------- */

static void raw_send_fds(int sock, int fd, unsigned n) {
  int *fds = calloc(n, sizeof *fds);
  for (unsigned i = 0; i < n; i++)
    fds[i] = fd;
  size_t clen = CMSG_SPACE(sizeof(int) * n);
  char *ctl = calloc(1, clen);
  struct iovec iov = {"M", 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = clen;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  cr_assert_eq(sendmsg(sock, &msg, 0), 1);
  free(ctl);
  free(fds);
}

static void ctrunc(bool future) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  weft_pipe b;
  cr_assert_eq(weft_pipe_init(loop, &b), 0);
  cr_assert_eq(weft_pipe_open(&b, sv[1]), 0);
  int base = fd_count();
  raw_send_fds(sv[0], 0, WEFT_PIPE_FDS_MAX + 36);
  /* while the fds sit in the socket the kernel holds them: count after */
  if (future) {
    char buf[8];
    weft_future *f;
    cr_assert_eq(weft_stream_read_some_future(&b.stream, buf, sizeof buf, &f),
                 0);
    expect_err(loop, f, -ENOBUFS);
  } else {
    rd r = {0};
    b.stream.base.data = &r;
    cr_assert_eq(weft_stream_read_start(&b.stream, NULL, on_read), 0);
    run_until(loop, &r.calls);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.err, -ENOBUFS, "%s", weft_err_name(r.err));
    cr_assert(!weft_stream_is_reading(&b.stream));
  }
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 0);
  cr_assert_eq(fd_count(), base); /* the 64 that came are closed */
  th_loop_usable(loop);
  close(sv[0]);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

Test(fdpass, ctrunc_is_an_error_read_start, .timeout = 10) { ctrunc(false); }
Test(fdpass, ctrunc_is_an_error_read_future, .timeout = 10) { ctrunc(true); }

/* ---- a window of fd messages: one wake-up per 64, not one each ---------- */

static uint64_t io_events(weft_loop *loop) {
  weft_loop_metrics m;
  cr_assert_eq(weft_loop_get_metrics(loop, &m, sizeof m), 0);
  return m.io_events;
}

/* 100 one-byte messages with one fd each wait in the socket; the kernel
 * ends every recvmsg at one of them. The reads go on past those short
 * reads, 64 per readiness (WEFT__STREAM_FDS_READS), so all 100 bytes and
 * fds arrive in exactly two I/O events. */
static void fd_window(bool future) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  weft_pipe b;
  cr_assert_eq(weft_pipe_init(loop, &b), 0);
  cr_assert_eq(weft_pipe_open(&b, sv[1]), 0);
  for (int i = 0; i < 100; i++)
    raw_send_fds(sv[0], 0, 1);
  uint64_t ev0 = io_events(loop);
  rd r = {0};
  char buf[100][8]; /* room for more than a message: every read is short */
  weft_future *f[100];
  if (future) {
    for (int i = 0; i < 100; i++)
      cr_assert_eq(
          weft_stream_read_some_future(&b.stream, buf[i], sizeof buf[i], &f[i]),
          0);
    for (int i = 0;
         i < 100 && weft_future_get_state(f[99]) == WEFT_FUTURE_PENDING; i++)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    for (int i = 0; i < 100; i++)
      expect_i64(loop, f[i], 1);
    r.got = 100;
  } else {
    b.stream.base.data = &r;
    cr_assert_eq(weft_stream_read_start(&b.stream, NULL, on_read), 0);
    for (int i = 0; i < 100 && r.got < 100; i++)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    cr_assert_eq(r.calls, 100); /* one callback per message */
  }
  cr_assert_eq(r.got, 100);
  cr_assert_eq(io_events(loop) - ev0, 2, "%llu I/O events",
               (unsigned long long)(io_events(loop) - ev0));
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 100);
  int got[100];
  cr_assert_eq(weft_pipe_take_fds(&b, got, 100), 100);
  for (int i = 0; i < 100; i++) {
    cr_assert_eq(ino(got[i]), ino(0));
    close(got[i]);
  }
  if (!future) weft_stream_read_stop(&b.stream);
  th_loop_usable(loop);
  close(sv[0]);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

Test(fdpass, fd_window_one_wakeup_per_64_read_start, .timeout = 10) {
  fd_window(false);
}
Test(fdpass, fd_window_one_wakeup_per_64_read_future, .timeout = 10) {
  fd_window(true);
}

/* The received-fd queue hands fds out oldest first while it is taken from
 * the front, refilled behind, moved down (room at its end used up, room at
 * its front free) and grown past its first 64 slots. Each fd is a memfd
 * of its own, so the order is checked fd by fd. */
Test(fdpass, fd_queue_order_across_takes_and_growth, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  enum { N = 3 * WEFT_PIPE_FDS_MAX };
  static ino_t want[N];
  weft_buf one = weft_buf_init("M", 1);
  unsigned sent = 0, taken = 0;
  /* sent, then taken, before each step's reads: 64 fill the queue, one
   * taken frees its front, one more is moved down, 128 grow it */
  const unsigned send_n[] = {WEFT_PIPE_FDS_MAX, 1, 2 * WEFT_PIPE_FDS_MAX - 1};
  const unsigned take_n[] = {1, 0, N - 1};
  for (int step = 0; step < 3; step++) {
    for (unsigned i = 0; i < send_n[step]; i++, sent++) {
      int fd = memfd_create("fdq", MFD_CLOEXEC);
      cr_assert_geq(fd, 0);
      want[sent] = ino(fd);
      weft_future *w;
      cr_assert_eq(weft_pipe_write_fds_future(&a, &one, 1, &fd, 1, &w), 0);
      close(fd);
      expect_i64(loop, w, 1);
    }
    char buf[N];
    for (size_t got = 0; got < send_n[step];) {
      weft_future *f;
      cr_assert_eq(weft_stream_read_some_future(&b.stream, buf, sizeof buf, &f),
                   0);
      settle(loop, f);
      got += (size_t)weft_future_value_i64(f);
      weft_future_unref(f);
    }
    cr_assert_eq(weft_pipe_get_pending_fds(&b), sent - taken);
    for (unsigned k = 0; k < take_n[step]; k++, taken++) {
      int fd;
      cr_assert_eq(weft_pipe_take_fds(&b, &fd, 1), 1);
      cr_assert_eq(ino(fd), want[taken], "fd %u out of order", taken);
      close(fd);
    }
  }
  cr_assert_eq(taken, N);
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 0);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* A fd write that goes out within its call (the queue empty) still counts
 * in the turn's write cap (weft/stream.h): after 16 such writes of 64 KiB
 * in one turn, an ordinary write of the same turn finds the cap spent and
 * queues, all of its 64 KiB, until the next turn. */
Test(fdpass, direct_fd_writes_count_in_the_write_cap, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  int big = 8 << 20; /* room for the whole turn: only the cap can queue */
  setsockopt(weft_stream_fileno(&a.stream), SOL_SOCKET, SO_SNDBUFFORCE, &big,
             sizeof big);
  setsockopt(weft_stream_fileno(&b.stream), SOL_SOCKET, SO_RCVBUFFORCE, &big,
             sizeof big);
  static char data[64 << 10];
  weft_buf chunk = weft_buf_init(data, sizeof data);
  unsigned n = WEFT_STREAM_WRITE_CAP / sizeof data;
  weft_write_req w[16 + 1];
  wstat ws = {0};
  int fd = dup(0);
  cr_assert_eq(n, 16);
  for (unsigned i = 0; i < n; i++) {
    w[i].data = &ws;
    cr_assert_eq(weft_pipe_write_fds(&w[i], &a, &chunk, 1, &fd, 1, on_write),
                 0);
    cr_assert_eq(weft_stream_write_queue_size(&a.stream), 0); /* sent */
  }
  close(fd);
  w[n].data = &ws;
  cr_assert_eq(weft_stream_write(&w[n], &a.stream, &chunk, 1, on_write), 0);
  cr_assert_eq(weft_stream_write_queue_size(&a.stream), sizeof data);
  cr_assert_eq(ws.calls, 0); /* never inline */
  for (int i = 0; i < 1000 && ws.calls < (int)n + 1; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(ws.calls, (int)n + 1);
  cr_assert_eq(ws.status, 0);
  cr_assert_eq(weft_stream_write_queue_size(&a.stream), 0);
  static char sink[(16 + 1) * sizeof data];
  weft_future *f;
  cr_assert_eq(weft_stream_read_exact_future(&b.stream, sink, sizeof sink, &f),
               0);
  expect_i64(loop, f, (int64_t)sizeof sink);
  cr_assert_eq(weft_pipe_get_pending_fds(&b), n);
  int got[16];
  cr_assert_eq(weft_pipe_take_fds(&b, got, n), (int)n);
  for (unsigned i = 0; i < n; i++)
    close(got[i]);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* ---- peer credentials ---------------------------------------------------- */

Test(fdpass, peercred, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b, none, pp;
  pair(loop, &a, &b);
  pid_t pid = 0;
  uid_t uid = (uid_t)-1;
  gid_t gid = (gid_t)-1;
  cr_assert_eq(weft_pipe_getpeercred(&a, &pid, &uid, &gid), 0);
  cr_assert_eq(pid, getpid());
  cr_assert_eq(uid, getuid());
  cr_assert_eq(gid, getgid());
  cr_assert_eq(weft_pipe_getpeercred(&b, NULL, NULL, NULL), 0);
  cr_assert_eq(weft_pipe_getpeercred(NULL, &pid, &uid, &gid), -EINVAL);
  cr_assert_eq(weft_pipe_init(loop, &none), 0);
  cr_assert_eq(weft_pipe_getpeercred(&none, &pid, NULL, NULL), -ENOTCONN);
  int pf[2];
  cr_assert_eq(pipe(pf), 0);
  cr_assert_eq(weft_pipe_init(loop, &pp), 0);
  cr_assert_eq(weft_pipe_open(&pp, pf[0]), 0);
  cr_assert_eq(weft_pipe_getpeercred(&pp, &pid, NULL, NULL), -ENOTSUP);
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_pipe_getpeercred((weft_pipe *)(void *)&t, &pid, NULL, NULL),
               -EINVAL);
  close(pf[1]);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* ---- detach -------------------------------------------------------------- */

static int closed;
static void on_close(weft_handle *h) {
  (void)h;
  closed++;
}

Test(fdpass, detach_to_second_loop_pipe, .timeout = 10) {
  int before = fd_count();
  weft_loop *l1 = th_loop(), *l2 = th_loop();
  weft_pipe a, b, b2;
  pair(l1, &a, &b);
  weft_future *f;
  char buf[16] = {0};
  weft_buf hi = weft_buf_init("hi", 2);
  cr_assert_eq(weft_stream_write_future(&a.stream, &hi, 1, &f), 0);
  expect_i64(l1, f, 2);
  cr_assert_eq(weft_stream_read_exact_future(&b.stream, buf, 2, &f), 0);
  expect_i64(l1, f, 2);
  /* a write from b still queued behind a huge one is cancelled by detach */
  size_t big = 16u << 20;
  char *blob = calloc(1, big);
  weft_buf bb = weft_buf_init(blob, big);
  weft_future *bigf, *small;
  cr_assert_eq(weft_stream_write_future(&b.stream, &bb, 1, &bigf), 0);
  cr_assert_eq(weft_stream_write_future(&b.stream, &hi, 1, &small), 0);
  closed = 0;
  int fd = -1;
  int bfd = weft_stream_fileno(&b.stream);
  cr_assert_eq(weft_stream_detach(&b.stream, &fd, on_close), 0);
  cr_assert_eq(fd, bfd);
  cr_assert(weft_is_closing(&b.stream.base));
  expect_err(l1, small, -ECANCELED);
  expect_err(l1, bigf, -ECANCELED); /* partly written: stays on the wire */
  run_until(l1, &closed);
  cr_assert_eq(closed, 1);
  cr_assert_geq(fcntl(fd, F_GETFD), 0, "the fd lives on");
  free(blob); /* its bytes on the wire go b -> a: b2 reads a's writes */
  /* the second loop takes over the connection */
  cr_assert_eq(weft_pipe_init(l2, &b2), 0);
  cr_assert_eq(weft_pipe_open(&b2, fd), 0);
  weft_buf more = weft_buf_init("more", 4);
  cr_assert_eq(weft_stream_write_future(&a.stream, &more, 1, &f), 0);
  expect_i64(l1, f, 4);
  cr_assert_eq(weft_stream_read_exact_future(&b2.stream, buf, 4, &f), 0);
  expect_i64(l2, f, 4);
  cr_assert_eq(memcmp(buf, "more", 4), 0);
  th_loop_close(l2);
  th_loop_finish(l1);
  cr_assert_eq(fd_count(), before);
}

Test(fdpass, detach_tcp_to_second_loop, .timeout = 10) {
  int before = fd_count();
  weft_loop *l1 = th_loop(), *l2 = th_loop();
  weft_tcp lis, srv, cli, moved;
  struct sockaddr_in addr;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &addr), 0);
  cr_assert_eq(weft_tcp_init(l1, &lis), 0);
  cr_assert_eq(weft_tcp_init(l1, &srv), 0);
  cr_assert_eq(weft_tcp_init(l1, &cli), 0);
  cr_assert_eq(weft_tcp_bind(&lis, (struct sockaddr *)&addr, 0), 0);
  socklen_t len = sizeof addr;
  cr_assert_eq(weft_tcp_getsockname(&lis, (struct sockaddr *)&addr, &len), 0);
  cr_assert_eq(weft_tcp_listen(&lis, 0, NULL), 0);
  weft_future *acc, *con, *f;
  cr_assert_eq(weft_stream_accept_future(&lis.stream, &srv.stream, &acc), 0);
  cr_assert_eq(weft_tcp_connect_future(&cli, (struct sockaddr *)&addr, &con),
               0);
  expect_i64(l1, acc, 0);
  expect_i64(l1, con, 0);
  int fd = -1;
  closed = 0;
  cr_assert_eq(weft_stream_detach(&srv.stream, &fd, on_close), 0);
  run_until(l1, &closed);
  cr_assert_eq(weft_tcp_init(l2, &moved), 0);
  cr_assert_eq(weft_tcp_open(&moved, fd), 0);
  weft_buf ping = weft_buf_init("ping", 4), pong = weft_buf_init("pong", 4);
  char buf[4];
  cr_assert_eq(weft_stream_write_future(&cli.stream, &ping, 1, &f), 0);
  expect_i64(l1, f, 4);
  cr_assert_eq(weft_stream_read_exact_future(&moved.stream, buf, 4, &f), 0);
  expect_i64(l2, f, 4);
  cr_assert_eq(memcmp(buf, "ping", 4), 0);
  cr_assert_eq(weft_stream_write_future(&moved.stream, &pong, 1, &f), 0);
  expect_i64(l2, f, 4);
  cr_assert_eq(weft_stream_read_exact_future(&cli.stream, buf, 4, &f), 0);
  expect_i64(l1, f, 4);
  cr_assert_eq(memcmp(buf, "pong", 4), 0);
  th_loop_close(l2);
  th_loop_finish(l1);
  cr_assert_eq(fd_count(), before);
}

/* Buffered bytes or untaken fds cannot follow the fd: -EBUSY, unchanged. */
Test(fdpass, detach_refused_while_weft_holds_data, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  pair(loop, &a, &b);
  weft_future *f;
  weft_buf line = weft_buf_init("one\ntwo", 7);
  cr_assert_eq(weft_stream_write_future(&a.stream, &line, 1, &f), 0);
  expect_i64(loop, f, 7);
  char buf[16];
  cr_assert_eq(
      weft_stream_read_until_future(&b.stream, buf, sizeof buf, "\n", 1, &f),
      0);
  expect_i64(loop, f, 4);
  cr_assert_eq(weft_stream_read_buffered(&b.stream), 3);
  int fd = -1;
  cr_assert_eq(weft_stream_detach(&b.stream, &fd, NULL), -EBUSY);
  cr_assert_eq(fd, -1);
  cr_assert(!weft_is_closing(&b.stream.base));
  cr_assert_eq(weft_stream_read_exact_future(&b.stream, buf, 3, &f), 0);
  expect_i64(loop, f, 3);
  /* now a pending fd */
  int one = 0;
  weft_buf x = weft_buf_init("x", 1);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, &one, 1, &f), 0);
  expect_i64(loop, f, 1);
  cr_assert_eq(weft_stream_read_exact_future(&b.stream, buf, 1, &f), 0);
  expect_i64(loop, f, 1);
  cr_assert_eq(weft_pipe_get_pending_fds(&b), 1);
  cr_assert_eq(weft_stream_detach(&b.stream, &fd, NULL), -EBUSY);
  int got;
  cr_assert_eq(weft_pipe_take_fds(&b, &got, 1), 1);
  close(got);
  cr_assert_eq(weft_stream_detach(&b.stream, &fd, NULL), 0);
  cr_assert_eq(weft_stream_detach(&b.stream, &fd, NULL), -EINVAL); /* closing */
  th_loop_finish(loop);
  close(fd);
  cr_assert_eq(fd_count(), before);
}

/* ---- bad input ----------------------------------------------------------- */

Test(fdpass, bad_input, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  weft_pipe a, b, none, pp;
  pair(loop, &a, &b);
  int base = fd_count();
  weft_write_req req;
  weft_future *f = NULL;
  weft_buf x = weft_buf_init("x", 1), empty = weft_buf_init("x", 0);
  int fds[WEFT_PIPE_FDS_MAX + 1];
  for (unsigned i = 0; i <= WEFT_PIPE_FDS_MAX; i++)
    fds[i] = 0;
  cr_assert_eq(weft_pipe_write_fds(NULL, &a, &x, 1, fds, 1, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds(&req, NULL, &x, 1, fds, 1, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds(&req, &a, NULL, 1, fds, 1, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &x, 0, fds, 1, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &x, 1, NULL, 1, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &x, 1, fds, 0, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &empty, 1, fds, 1, NULL), -EINVAL);
  cr_assert_eq(
      weft_pipe_write_fds(&req, &a, &x, 1, fds, WEFT_PIPE_FDS_MAX + 1, NULL),
      -EINVAL);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, fds, 1, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, fds, 0, &f), -EINVAL);
  int bad = fds[0];
  fds[0] = 1000000;
  cr_assert_eq(weft_pipe_write_fds(&req, &a, &x, 1, fds, 1, NULL), -EBADF);
  fds[0] = -1;
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, fds, 1, &f), -EBADF);
  fds[0] = bad;
  weft_tcp t;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(
      weft_pipe_write_fds(&req, (weft_pipe *)(void *)&t, &x, 1, fds, 1, NULL),
      -EINVAL);
  cr_assert_eq(weft_pipe_init(loop, &none), 0);
  cr_assert_eq(weft_pipe_write_fds(&req, &none, &x, 1, fds, 1, NULL),
               -ENOTCONN);
  int pf[2];
  cr_assert_eq(pipe(pf), 0);
  cr_assert_eq(weft_pipe_init(loop, &pp), 0);
  cr_assert_eq(weft_pipe_open(&pp, pf[1]), 0);
  cr_assert_eq(weft_pipe_write_fds(&req, &pp, &x, 1, fds, 1, NULL), -ENOTSUP);
  cr_assert_eq(f, NULL);
  /* take / pending */
  int got[2];
  cr_assert_eq(weft_pipe_take_fds(NULL, got, 2), -EINVAL);
  cr_assert_eq(weft_pipe_take_fds(&b, NULL, 2), -EINVAL);
  cr_assert_eq(weft_pipe_take_fds(&b, got, 0), -EINVAL);
  cr_assert_eq(weft_pipe_take_fds(&b, got, 2), 0);
  cr_assert_eq(weft_pipe_take_fds((weft_pipe *)(void *)&t, got, 2), -EINVAL);
  cr_assert_eq(weft_pipe_get_pending_fds(NULL), 0);
  cr_assert_eq(weft_pipe_get_pending_fds((weft_pipe *)(void *)&t), 0);
  /* detach */
  int fd = -1;
  cr_assert_eq(weft_stream_detach(NULL, &fd, NULL), -EINVAL);
  cr_assert_eq(weft_stream_detach(&a.stream, NULL, NULL), -EINVAL);
  cr_assert_eq(weft_stream_detach(&none.stream, &fd, NULL), -EBADF);
  weft_timer tm;
  cr_assert_eq(weft_timer_init(loop, &tm), 0);
  cr_assert_eq(weft_stream_detach((weft_stream *)(void *)&tm, &fd, NULL),
               -EINVAL);
  cr_assert_eq(fd, -1);
  cr_assert_eq(fd_count(), base + 2); /* pf only: no dup held */
  th_loop_usable(loop);
  th_loop_finish(loop);
  close(pf[0]);
  cr_assert_eq(fd_count(), before);
}

/* ---- allocation failure -------------------------------------------------- */

typedef struct sweep_arg {
  weft_pipe a, b;
  weft_write_req req; /* may complete in the sweep's close, after the op */
  wstat ws;
  int what;
} sweep_arg;

static int fds_round(weft_loop *loop, void *arg) {
  sweep_arg *s = arg; /* the handles are closed by the sweep */
  cr_assert_eq(weft_pipe_init(loop, &s->a), 0);
  cr_assert_eq(weft_pipe_init(loop, &s->b), 0);
  int err = weft_pipe_pair(loop, &s->a, &s->b);
  if (err != 0) return err;
  int fds[2] = {0, 1};
  weft_buf x = weft_buf_init("xy", 2);
  s->ws = (wstat){0, 1};
  s->req.data = &s->ws;
  weft_future *w = NULL, *r;
  if (s->what == 0)
    err = weft_pipe_write_fds_future(&s->a, &x, 1, fds, 2, &w);
  else
    err = weft_pipe_write_fds(&s->req, &s->a, &x, 1, fds, 2, on_write);
  if (err != 0) return err;
  char buf[2];
  err = weft_stream_read_exact_future(&s->b.stream, buf, 2, &r);
  if (err != 0) {
    if (w) weft_future_unref(w);
    return err; /* the close of a cancels the write, closing the dups */
  }
  if (w) {
    expect_i64(loop, w, 2);
  } else {
    run_until(loop, &s->ws.calls);
    cr_assert_eq(s->ws.status, 0);
  }
  settle(loop, r);
  err = weft_future_error(r);
  weft_future_unref(r);
  if (err != 0) {
    cr_assert_eq(err, -ENOMEM, "%s", weft_err_name(err));
    cr_assert_eq(weft_pipe_get_pending_fds(&s->b), 0);
    return err;
  }
  cr_assert_eq(weft_pipe_get_pending_fds(&s->b), 2);
  return 0; /* the queued fds are closed with b */
}

Test(fdpass, alloc_failure_future, .timeout = 60) {
  int before = fd_count();
  sweep_arg s = {.what = 0};
  size_t n = th_alloc_sweep_run(
      &(th_sweep){.op = fds_round, .arg = &s, .max_rounds = 200});
  cr_assert_gt(n, 0);
  cr_assert_eq(fd_count(), before);
}

Test(fdpass, alloc_failure_callback, .timeout = 60) {
  int before = fd_count();
  sweep_arg s = {.what = 1};
  size_t n = th_alloc_sweep_run(
      &(th_sweep){.op = fds_round, .arg = &s, .max_rounds = 200});
  cr_assert_gt(n, 0);
  cr_assert_eq(fd_count(), before);
}

/* ---- a connection handed to another process ------------------------------ */

/* The worker: takes one fd passed over `sock`, serves one request on it
 * (reads "ping", answers "PONG") through its own loop. Exit code 0 if all
 * went as expected. */
static int worker(int sock) {
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  weft_pipe ctl;
  weft_tcp conn;
  if (weft_pipe_init(loop, &ctl) != 0 || weft_pipe_open(&ctl, sock) != 0)
    return 2;
  char c;
  weft_future *f;
  if (weft_stream_read_exact_future(&ctl.stream, &c, 1, &f) != 0) return 3;
  settle(loop, f);
  if (weft_future_get_state(f) != WEFT_FUTURE_FULFILLED || c != 'C') return 4;
  int fd;
  if (weft_pipe_take_fds(&ctl, &fd, 1) != 1 || !cloexec(fd)) return 5;
  if (weft_tcp_init(loop, &conn) != 0 || weft_tcp_open(&conn, fd) != 0)
    return 6;
  char buf[4];
  if (weft_stream_read_exact_future(&conn.stream, buf, 4, &f) != 0) return 7;
  settle(loop, f);
  if (weft_future_get_state(f) != WEFT_FUTURE_FULFILLED ||
      memcmp(buf, "ping", 4) != 0)
    return 8;
  weft_buf pong = weft_buf_init("PONG", 4);
  if (weft_stream_write_future(&conn.stream, &pong, 1, &f) != 0) return 9;
  settle(loop, f);
  return weft_future_get_state(f) == WEFT_FUTURE_FULFILLED ? 0 : 10;
}

Test(fdpass, accepted_tcp_connection_served_by_worker_process, .timeout = 20) {
  int before = fd_count();
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(sv[0]);
    _exit(worker(sv[1]));
  }
  close(sv[1]);
  weft_loop *loop = th_loop();
  weft_tcp lis, srv, cli;
  weft_pipe ctl;
  struct sockaddr_in addr;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &addr), 0);
  cr_assert_eq(weft_tcp_init(loop, &lis), 0);
  cr_assert_eq(weft_tcp_init(loop, &srv), 0);
  cr_assert_eq(weft_tcp_init(loop, &cli), 0);
  cr_assert_eq(weft_pipe_init(loop, &ctl), 0);
  cr_assert_eq(weft_pipe_open(&ctl, sv[0]), 0);
  cr_assert_eq(weft_tcp_bind(&lis, (struct sockaddr *)&addr, 0), 0);
  socklen_t len = sizeof addr;
  cr_assert_eq(weft_tcp_getsockname(&lis, (struct sockaddr *)&addr, &len), 0);
  cr_assert_eq(weft_tcp_listen(&lis, 0, NULL), 0);
  weft_future *acc, *con, *f;
  cr_assert_eq(weft_stream_accept_future(&lis.stream, &srv.stream, &acc), 0);
  cr_assert_eq(weft_tcp_connect_future(&cli, (struct sockaddr *)&addr, &con),
               0);
  expect_i64(loop, acc, 0);
  expect_i64(loop, con, 0);
  int fd = -1;
  cr_assert_eq(weft_stream_detach(&srv.stream, &fd, NULL), 0);
  weft_buf c = weft_buf_init("C", 1);
  cr_assert_eq(weft_pipe_write_fds_future(&ctl, &c, 1, &fd, 1, &f), 0);
  close(fd); /* the write holds a dup */
  expect_i64(loop, f, 1);
  weft_buf ping = weft_buf_init("ping", 4);
  char buf[4];
  cr_assert_eq(weft_stream_write_future(&cli.stream, &ping, 1, &f), 0);
  expect_i64(loop, f, 4);
  cr_assert_eq(weft_stream_read_exact_future(&cli.stream, buf, 4, &f), 0);
  expect_i64(loop, f, 4);
  cr_assert_eq(memcmp(buf, "PONG", 4), 0);
  int status = -1;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker: %d",
            status);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}

/* ---- out of fds -----------------------------------------------------------
 */

/* The process runs out of fds (RLIMIT_NOFILE; each test has its own
 * process) while fds arrive: the kernel installs what fits and truncates
 * the control message, the read fails with -ENOBUFS and the fds that came
 * are closed. A fd write that goes out at once needs no free fd (no dup);
 * one queued behind another write must dup, and fails with -EMFILE,
 * holding none. */
Test(fdpass, out_of_fds, .timeout = 10) {
  int before = fd_count();
  weft_loop *loop = th_loop();
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  weft_pipe a, b, r;
  pair(loop, &a, &b);
  cr_assert_eq(weft_pipe_init(loop, &r), 0);
  cr_assert_eq(weft_pipe_open(&r, sv[1]), 0);
  raw_send_fds(sv[0], 0, 3);
  char buf[8];
  weft_future *f;
  cr_assert_eq(weft_stream_read_some_future(&r.stream, buf, sizeof buf, &f), 0);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  low = old;
  low.rlim_cur = 256;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  static int fill[256];
  int n = 0, fd;
  while (n < 256 && (fd = fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0)
    fill[n++] = fd;
  cr_assert_eq(errno, EMFILE);
  cr_assert_gt(n, 1);
  close(fill[--n]); /* room for one of the three */
  expect_err(loop, f, -ENOBUFS);
  cr_assert_eq(weft_pipe_get_pending_fds(&r), 0);
  cr_assert_eq(fcntl(0, F_DUPFD_CLOEXEC, 0), fill[n],
               "the one that came "
               "is closed again"); /* and taken back */
  n++;
  /* not one fd free: a fd write that goes out at once (queue empty)
   * needs none, its sendmsg carries the caller's fd itself */
  int one = 0;
  weft_buf x = weft_buf_init("x", 1);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, &one, 1, &f), 0);
  expect_i64(loop, f, 1);
  /* behind a queued write it must wait, so it dups: -EMFILE, none held */
  static char big[4 << 20];
  weft_buf bb = weft_buf_init(big, sizeof big);
  weft_future *fbig;
  cr_assert_eq(weft_stream_write_future(&a.stream, &bb, 1, &fbig), 0);
  cr_assert_gt(weft_stream_write_queue_size(&a.stream), 0);
  cr_assert_eq(weft_pipe_write_fds_future(&a, &x, 1, &one, 1, &f), -EMFILE);
  while (n > 0)
    close(fill[--n]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  static char got[1 + (4 << 20)];
  weft_future *fr;
  cr_assert_eq(weft_stream_read_exact_future(&b.stream, got, sizeof got, &fr),
               0);
  expect_i64(loop, fbig, (int64_t)sizeof big);
  expect_i64(loop, fr, (int64_t)sizeof got);
  cr_assert_eq(got[0], 'x');
  int came;
  cr_assert_eq(weft_pipe_take_fds(&b, &came, 1), 1);
  cr_assert(cloexec(came));
  cr_assert_eq(ino(came), ino(0), "the caller's fd itself went");
  close(came);
  th_loop_usable(loop);
  close(sv[0]);
  th_loop_finish(loop);
  cr_assert_eq(fd_count(), before);
}
