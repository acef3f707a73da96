/* The future forms of stream reads (some, exact, until), accept, shutdown
 * and Unix connect, over TCP, Unix socket pairs and pipes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test.h"

/* ---- helpers ------------------------------------------------------------ */

/* Runs the loop until `f` settles; returns its state. */
static weft_future_state wait_settled(weft_loop *loop, weft_future *f) {
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  return weft_future_get_state(f);
}

/* Waits for `f`, asserts it fulfilled with `v`, drops it. */
static void expect_value(weft_loop *loop, weft_future *f, int64_t v) {
  weft_future_state st = wait_settled(loop, f);
  cr_assert_eq(st, WEFT_FUTURE_FULFILLED, "rejected: %s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_future_value_i64(f), v, "value %lld, want %lld",
               (long long)weft_future_value_i64(f), (long long)v);
  weft_future_unref(f);
}

/* Waits for `f`, asserts it was rejected with `err`, drops it. */
static void expect_error(weft_loop *loop, weft_future *f, int err) {
  weft_future_state st = wait_settled(loop, f);
  cr_assert_neq(st, WEFT_FUTURE_FULFILLED, "fulfilled with %lld",
                (long long)weft_future_value_i64(f));
  cr_assert_eq(weft_future_error(f), err, "got %s, want %s",
               weft_err_name(weft_future_error(f)), weft_err_name(err));
  weft_future_unref(f);
}

/* A few turns that block on nothing. */
static void spin(weft_loop *loop) {
  for (int i = 0; i < 5; i++)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
}

static void put(int fd, const char *s) {
  size_t n = strlen(s);
  cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

/* Writes through `fd` until the peer's socket has the bytes: loopback
 * delivers at once, so one turn later an EV_READ is due. */
static void put_and_spin(weft_loop *loop, int fd, const char *s) {
  put(fd, s);
  spin(loop);
}

static int sfd(weft_stream *s) { return weft_stream_fileno(s); }

/* The three kinds of stream: `r` reads, `wfd` writes into it. */
typedef enum { K_TCP, K_UNIX, K_PIPE } kind;
typedef struct pair {
  kind k;
  weft_tcp lt, ta, tb; /* TCP: listener, accepted (reader), client */
  weft_pipe pa, pb;    /* Unix pair / pipe: reader, writer */
  weft_stream *r, *w;  /* w NULL for a pipe: write to wfd */
  int wfd;
} pair;

static void tcp_pair(weft_loop *loop, pair *p) {
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &p->lt), 0);
  cr_assert_eq(weft_tcp_bind(&p->lt, (struct sockaddr *)&a, 0), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&p->lt, (struct sockaddr *)&a, &len), 0);
  cr_assert_eq(weft_tcp_listen(&p->lt, 0, NULL), 0, "listen without a cb");
  cr_assert_eq(weft_tcp_init(loop, &p->ta), 0);
  cr_assert_eq(weft_tcp_init(loop, &p->tb), 0);
  weft_future *acc, *con;
  cr_assert_eq(weft_stream_accept_future(&p->lt.stream, &p->ta.stream, &acc),
               0);
  cr_assert_eq(weft_tcp_connect_future(&p->tb, (struct sockaddr *)&a, &con), 0);
  expect_value(loop, acc, 0);
  expect_value(loop, con, 0);
  p->r = &p->ta.stream;
  p->w = &p->tb.stream;
  p->wfd = sfd(p->w);
}

static void make_pair(weft_loop *loop, pair *p, kind k) {
  memset(p, 0, sizeof *p);
  p->k = k;
  if (k == K_TCP) {
    tcp_pair(loop, p);
    return;
  }
  cr_assert_eq(weft_pipe_init(loop, &p->pa), 0);
  cr_assert_eq(weft_pipe_init(loop, &p->pb), 0);
  if (k == K_UNIX) {
    cr_assert_eq(weft_pipe_pair(loop, &p->pa, &p->pb), 0);
    p->w = &p->pb.stream;
    p->wfd = sfd(p->w);
  } else {
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    cr_assert_eq(weft_pipe_open(&p->pa, fds[0]), 0);
    cr_assert_eq(weft_pipe_open(&p->pb, fds[1]), 0);
    p->w = &p->pb.stream;
    p->wfd = fds[1];
  }
  p->r = &p->pa.stream;
}

/* The writer's end of file: shutdown (sockets) or closing the write end. */
static void writer_eof(weft_loop *loop, pair *p) {
  weft_future *f;
  cr_assert_eq(weft_stream_shutdown_future(p->w, &f), 0);
  expect_value(loop, f, 0);
}

static void close_all(weft_loop *loop) { th_loop_finish(loop); }

/* ---- the operation each future reports ----------------------------------- */

/* An unobserved rejection names the operation (weft_future_get_op). */
Test(stream_future, each_future_names_its_operation, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  char buf[8];
  weft_future *f[5];
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, 1, &f[0]), 0);
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 2, &f[1]), 0);
  cr_assert_eq(
      weft_stream_read_until_future(p.r, buf, sizeof buf, "!", 1, &f[2]), 0);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &p.tb.stream, &f[3]),
               -EINVAL, "a connected client is refused");
  weft_tcp extra;
  cr_assert_eq(weft_tcp_init(loop, &extra), 0);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &extra.stream, &f[3]),
               0);
  cr_assert_eq(weft_stream_shutdown_future(p.w, &f[4]), 0);
  static const char *const want[] = {
      "weft_stream_read_some_future", "weft_stream_read_exact_future",
      "weft_stream_read_until_future", "weft_stream_accept_future",
      "weft_stream_shutdown_future"};
  for (int i = 0; i < 5; i++) {
    cr_assert_str_eq(weft_future_get_op(f[i]), want[i]);
    if (weft_future_get_state(f[i]) == WEFT_FUTURE_PENDING)
      cr_assert_eq(weft_future_cancel(f[i]), 0);
    weft_future_unref(f[i]);
  }
  weft_close(&extra.stream.base, NULL);
  close_all(loop);
}

/* ---- read_some ----------------------------------------------------------- */

static void some_round_trip(kind k) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, k);
  char buf[16] = {0};
  weft_future *f;
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, 4, &f), 0);
  spin(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  put(p.wfd, "hello");
  expect_value(loop, f, 4);
  cr_assert_eq(memcmp(buf, "hell", 4), 0);
  cr_assert_eq(buf[4], 0, "at most n bytes written");
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &f), 0);
  expect_value(loop, f, 1);
  cr_assert_eq(buf[0], 'o');
  /* end of file: 0, and again 0 */
  writer_eof(loop, &p);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &f), 0);
  expect_value(loop, f, 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &f), 0);
  expect_value(loop, f, 0);
  cr_assert_eq(weft_stream_read_buffered(p.r), 0);
  close_all(loop);
}

Test(stream_future, read_some_tcp, .timeout = 10) { some_round_trip(K_TCP); }
Test(stream_future, read_some_unix_pair, .timeout = 10) {
  some_round_trip(K_UNIX);
}
Test(stream_future, read_some_pipe, .timeout = 10) { some_round_trip(K_PIPE); }

Test(stream_future, pending_reads_are_served_in_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  char a[2], b[3], c[16];
  weft_future *fa, *fb, *fc;
  cr_assert_eq(weft_stream_read_some_future(p.r, a, sizeof a, &fa), 0);
  cr_assert_eq(weft_stream_read_exact_future(p.r, b, sizeof b, &fb), 0);
  cr_assert_eq(weft_stream_read_until_future(p.r, c, sizeof c, "!", 1, &fc), 0);
  put(p.wfd, "abcdefg!tail");
  expect_value(loop, fa, 2);
  expect_value(loop, fb, 3);
  expect_value(loop, fc, 3);
  cr_assert_eq(memcmp(a, "ab", 2), 0);
  cr_assert_eq(memcmp(b, "cde", 3), 0);
  cr_assert_eq(memcmp(c, "fg!", 3), 0);
  cr_assert_eq(weft_stream_read_buffered(p.r), 4, "\"tail\" read past '!'");
  cr_assert_eq(weft_stream_read_some_future(p.r, c, sizeof c, &fa), 0);
  expect_value(loop, fa, 4);
  cr_assert_eq(memcmp(c, "tail", 4), 0);
  close_all(loop);
}

/* ---- read_exact --------------------------------------------------------- */

static void exact_partial(kind k) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, k);
  char buf[10];
  weft_future *f;
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, sizeof buf, &f), 0);
  put_and_spin(loop, p.wfd, "abc");
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  put_and_spin(loop, p.wfd, "defg");
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  put(p.wfd, "hijKL");
  expect_value(loop, f, 10);
  cr_assert_eq(memcmp(buf, "abcdefghij", 10), 0);
  /* the rest waits in the fd: the next read gets it */
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 2, &f), 0);
  expect_value(loop, f, 2);
  cr_assert_eq(memcmp(buf, "KL", 2), 0);
  close_all(loop);
}

Test(stream_future, read_exact_tcp, .timeout = 10) { exact_partial(K_TCP); }
Test(stream_future, read_exact_unix_pair, .timeout = 10) {
  exact_partial(K_UNIX);
}
Test(stream_future, read_exact_pipe, .timeout = 10) { exact_partial(K_PIPE); }

static void exact_eof(kind k) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, k);
  char buf[8] = {0};
  weft_future *f;
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, sizeof buf, &f), 0);
  put_and_spin(loop, p.wfd, "xyz");
  writer_eof(loop, &p);
  expect_error(loop, f, WEFT_EOF);
  cr_assert_eq(weft_stream_read_buffered(p.r), 3, "the partial bytes stay");
  memset(buf, 0, sizeof buf);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &f), 0);
  expect_value(loop, f, 3);
  cr_assert_eq(memcmp(buf, "xyz", 3), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &f), 0);
  expect_value(loop, f, 0);
  close_all(loop);
}

Test(stream_future, read_exact_eof_keeps_partial_tcp, .timeout = 10) {
  exact_eof(K_TCP);
}
Test(stream_future, read_exact_eof_keeps_partial_pipe, .timeout = 10) {
  exact_eof(K_PIPE);
}

/* ---- read_until --------------------------------------------------------- */

static void until_split(kind k) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, k);
  char buf[32] = {0};
  weft_future *f;
  cr_assert_eq(
      weft_stream_read_until_future(p.r, buf, sizeof buf, "\r\n", 2, &f), 0);
  put_and_spin(loop, p.wfd, "abc\r");
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  put(p.wfd, "\ndef");
  expect_value(loop, f, 5);
  cr_assert_eq(memcmp(buf, "abc\r\n", 5), 0);
  cr_assert_eq(weft_stream_read_buffered(p.r), 3);
  /* the next line starts in the read-back buffer and ends in the fd */
  memset(buf, 0, sizeof buf);
  cr_assert_eq(
      weft_stream_read_until_future(p.r, buf, sizeof buf, "\r\n", 2, &f), 0);
  put(p.wfd, "gh\r\nij");
  expect_value(loop, f, 7);
  cr_assert_eq(memcmp(buf, "defgh\r\n", 7), 0);
  cr_assert_eq(weft_stream_read_buffered(p.r), 2);
  close_all(loop);
}

Test(stream_future, read_until_split_delimiter_tcp, .timeout = 10) {
  until_split(K_TCP);
}
Test(stream_future, read_until_split_delimiter_unix_pair, .timeout = 10) {
  until_split(K_UNIX);
}
Test(stream_future, read_until_split_delimiter_pipe, .timeout = 10) {
  until_split(K_PIPE);
}

Test(stream_future, read_until_long_delimiter_byte_by_byte, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  const char *delim = "--END--";
  char buf[64] = {0};
  weft_future *f;
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, sizeof buf, delim,
                                             strlen(delim), &f),
               0);
  /* a false start ("--EN-") and the delimiter one byte per segment */
  const char *msg = "x--EN---END--y";
  for (const char *c = msg; *c; c++) {
    char one[2] = {*c, 0};
    put_and_spin(loop, p.wfd, one);
    if (c[1] == 'y') break;
  }
  expect_value(loop, f, 13);
  cr_assert_eq(memcmp(buf, "x--EN---END--", 13), 0);
  close_all(loop);
}

Test(stream_future, read_until_lines_from_one_segment, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  put(p.wfd, "one\ntwo\nthree\nrest");
  char buf[16];
  const char *want[] = {"one\n", "two\n", "three\n"};
  for (int i = 0; i < 3; i++) {
    weft_future *f;
    memset(buf, 0, sizeof buf);
    cr_assert_eq(
        weft_stream_read_until_future(p.r, buf, sizeof buf, "\n", 1, &f), 0);
    expect_value(loop, f, (int64_t)strlen(want[i]));
    cr_assert_eq(memcmp(buf, want[i], strlen(want[i])), 0);
  }
  /* "re" was read past the third line, "st" still waits in the fd */
  cr_assert_eq(weft_stream_read_buffered(p.r), 2);
  weft_future *f;
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 4, &f), 0);
  expect_value(loop, f, 4);
  cr_assert_eq(memcmp(buf, "rest", 4), 0);
  close_all(loop);
}

Test(stream_future, read_until_cap_overflow_keeps_bytes, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  char buf[16] = {0};
  weft_future *f;
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, 4, "\n", 1, &f), 0);
  put(p.wfd, "abcdefgh\n");
  expect_error(loop, f, -EMSGSIZE);
  cr_assert_eq(weft_stream_read_buffered(p.r), 4);
  /* from the read-back buffer this time: overflow again, nothing lost */
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, 3, "\n", 1, &f), 0);
  expect_error(loop, f, -EMSGSIZE);
  cr_assert_eq(weft_stream_read_buffered(p.r), 4);
  /* a larger cap reads the whole line, in order */
  memset(buf, 0, sizeof buf);
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, sizeof buf, "\n", 1, &f),
               0);
  expect_value(loop, f, 9);
  cr_assert_eq(memcmp(buf, "abcdefgh\n", 9), 0);
  close_all(loop);
}

Test(stream_future, read_until_eof_keeps_bytes, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  char buf[16] = {0};
  weft_future *f;
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, sizeof buf, "\n", 1, &f),
               0);
  put_and_spin(loop, p.wfd, "no newline");
  writer_eof(loop, &p);
  expect_error(loop, f, WEFT_EOF);
  cr_assert_eq(weft_stream_read_buffered(p.r), 10);
  memset(buf, 0, sizeof buf);
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 10, &f), 0);
  expect_value(loop, f, 10);
  cr_assert_str_eq(buf, "no newline");
  close_all(loop);
}

/* ---- cancel ------------------------------------------------------------- */

static void cancel_mid_read(kind k) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, k);
  char buf[32] = {0};
  weft_future *f, *g;
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 10, &f), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf + 16, 4, &g), 0);
  put_and_spin(loop, p.wfd, "0123");
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  /* cancelling the queued one consumes nothing; cancelling the one that
   * holds 4 bytes gives them back */
  cr_assert_eq(weft_future_cancel(g), 0);
  weft_future_unref(g);
  cr_assert_eq(weft_stream_read_buffered(p.r), 0);
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_CANCELLED);
  weft_future_unref(f);
  cr_assert_eq(weft_stream_read_buffered(p.r), 4);
  /* read again: every byte, in order */
  memset(buf, 0, sizeof buf);
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 8, &f), 0);
  put(p.wfd, "4567");
  expect_value(loop, f, 8);
  cr_assert_eq(memcmp(buf, "01234567", 8), 0);
  /* cancel an until read that read past nothing: buffered bytes kept too */
  put_and_spin(loop, p.wfd, "ab");
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, 8, "\n", 1, &f), 0);
  spin(loop);
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_stream_read_buffered(p.r), 2);
  memset(buf, 0, sizeof buf);
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, 8, "\n", 1, &f), 0);
  put(p.wfd, "c\n");
  expect_value(loop, f, 4);
  cr_assert_eq(memcmp(buf, "abc\n", 4), 0);
  close_all(loop);
}

Test(stream_future, cancel_mid_read_loses_nothing_tcp, .timeout = 10) {
  cancel_mid_read(K_TCP);
}
Test(stream_future, cancel_mid_read_loses_nothing_pipe, .timeout = 10) {
  cancel_mid_read(K_PIPE);
}

Test(stream_future, cancel_front_serves_the_next_from_the_buffer,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  char a[8], b[8] = {0};
  weft_future *f, *g;
  cr_assert_eq(weft_stream_read_exact_future(p.r, a, sizeof a, &f), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, b, sizeof b, &g), 0);
  put_and_spin(loop, p.wfd, "xyz");
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  expect_value(loop, g, 3); /* no new byte on the fd: from the buffer */
  cr_assert_eq(memcmp(b, "xyz", 3), 0);
  close_all(loop);
}

/* ---- read_start interplay ----------------------------------------------- */

typedef struct rs_state {
  char got[64];
  size_t len;
  int calls;
  ssize_t last;
  char small[2];
} rs_state;

static void rs_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  rs_state *st = s->base.data;
  st->last = n;
  if (n <= 0) return;
  st->calls++;
  memcpy(st->got + st->len, buf->base, (size_t)n);
  st->len += (size_t)n;
}

static void rs_alloc2(weft_stream *s, size_t suggested, weft_buf *buf) {
  (void)suggested;
  rs_state *st = s->base.data;
  *buf = weft_buf_init(st->small, sizeof st->small);
}

static void never_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)s;
  (void)buf;
  cr_assert_fail("read callback ran: %zd", n);
}

Test(stream_future, read_start_and_read_futures_exclude_each_other,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  char buf[16];
  weft_future *f;
  cr_assert_eq(weft_stream_read_start(p.r, NULL, never_read), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, 4, &f), -EBUSY);
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 4, &f), -EBUSY);
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, 4, "\n", 1, &f), -EBUSY);
  cr_assert_eq(weft_stream_read_stop(p.r), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, 4, &f), 0);
  cr_assert_eq(weft_stream_read_start(p.r, NULL, never_read), -EBUSY);
  cr_assert(!weft_stream_is_reading(p.r));
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_stream_read_start(p.r, NULL, never_read), 0);
  cr_assert_eq(weft_stream_read_stop(p.r), 0);
  close_all(loop);
}

static void read_start_gets_buffered(weft_alloc_cb alloc) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  rs_state st = {0};
  p.r->base.data = &st;
  char buf[16];
  weft_future *f;
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 10, &f), 0);
  put_and_spin(loop, p.wfd, "abcd");
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_stream_read_buffered(p.r), 4);
  /* read_start delivers the 4 buffered bytes without new data on the fd */
  cr_assert_eq(weft_stream_read_start(p.r, alloc, rs_read), 0);
  cr_assert_eq(st.calls, 0, "never inline");
  while (st.len < 4)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(st.calls, alloc ? 2 : 1);
  put(p.wfd, "ef");
  while (st.len < 6)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(memcmp(st.got, "abcdef", 6), 0);
  cr_assert_eq(weft_stream_read_buffered(p.r), 0);
  /* and back to futures */
  cr_assert_eq(weft_stream_read_stop(p.r), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &f), 0);
  put(p.wfd, "g");
  expect_value(loop, f, 1);
  cr_assert_eq(buf[0], 'g');
  close_all(loop);
}

Test(stream_future, read_start_gets_buffered_bytes_first, .timeout = 10) {
  read_start_gets_buffered(NULL);
}
Test(stream_future, read_start_with_alloc_gets_buffered_bytes, .timeout = 10) {
  read_start_gets_buffered(rs_alloc2);
}

/* ---- close, errors ------------------------------------------------------ */

static void count_close(weft_handle *h) { ++*(int *)h->data; }

Test(stream_future, close_rejects_pending_reads, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  char buf[16];
  weft_future *f, *g, *h;
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, 4, &f), 0);
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 8, &g), 0);
  cr_assert_eq(weft_stream_read_until_future(p.r, buf, 8, "\n", 1, &h), 0);
  int closed = 0;
  p.r->base.data = &closed;
  cr_assert_eq(weft_close(&p.r->base, count_close), 0);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, 4, &f), -EINVAL);
  th_run(loop);
  cr_assert_eq(closed, 1);
  expect_error(loop, f, -ECANCELED);
  expect_error(loop, g, -ECANCELED);
  expect_error(loop, h, -ECANCELED);
  close_all(loop);
}

Test(stream_future, connection_reset_rejects, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  char buf[16];
  weft_future *f, *g;
  cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 8, &f), 0);
  put_and_spin(loop, p.wfd, "ab");
  cr_assert_eq(weft_tcp_close_reset(&p.tb, NULL), 0);
  expect_error(loop, f, -ECONNRESET);
  cr_assert_eq(weft_stream_read_buffered(p.r), 2);
  cr_assert_eq(weft_stream_read_some_future(p.r, buf, sizeof buf, &g), 0);
  expect_value(loop, g, 2);
  cr_assert_eq(memcmp(buf, "ab", 2), 0);
  close_all(loop);
}

Test(stream_future, failed_connect_rejects_pending_reads, .timeout = 10) {
  weft_loop *loop = th_loop();
  /* a port nobody listens on: bind one, read it back, close it */
  weft_tcp l, c;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &l), 0);
  cr_assert_eq(weft_tcp_bind(&l, (struct sockaddr *)&a, 0), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&l, (struct sockaddr *)&a, &len), 0);
  weft_close(&l.stream.base, NULL);
  cr_assert_eq(weft_tcp_init(loop, &c), 0);
  weft_future *con, *f;
  char buf[4];
  int err = weft_tcp_connect_future(&c, (struct sockaddr *)&a, &con);
  if (err == -ECONNREFUSED) { /* refused at once: nothing to test */
    close_all(loop);
    return;
  }
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
  cr_assert_eq(weft_stream_read_some_future(&c.stream, buf, 4, &f), 0);
  expect_error(loop, con, -ECONNREFUSED);
  expect_error(loop, f, -ECONNREFUSED);
  close_all(loop);
}

/* ---- bad inputs --------------------------------------------------------- */

Test(stream_future, bad_inputs, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  char buf[8];
  weft_future *f = NULL;
  weft_stream *r = p.r;
  cr_assert_eq(weft_stream_read_some_future(NULL, buf, 4, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_some_future(r, NULL, 4, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_some_future(r, buf, 0, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_some_future(r, buf, 4, NULL), -EINVAL);
  cr_assert_eq(weft_stream_read_exact_future(NULL, buf, 4, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_exact_future(r, NULL, 4, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_exact_future(r, buf, 0, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_exact_future(r, buf, 4, NULL), -EINVAL);
  cr_assert_eq(weft_stream_read_until_future(NULL, buf, 8, "\n", 1, &f),
               -EINVAL);
  cr_assert_eq(weft_stream_read_until_future(r, NULL, 8, "\n", 1, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_until_future(r, buf, 8, NULL, 1, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_until_future(r, buf, 8, "\n", 0, &f), -EINVAL);
  cr_assert_eq(weft_stream_read_until_future(r, buf, 1, "\r\n", 2, &f), -EINVAL,
               "cap < delim_len");
  char longd[WEFT_STREAM_DELIM_MAX + 1];
  memset(longd, '-', sizeof longd);
  cr_assert_eq(
      weft_stream_read_until_future(r, buf, 64, longd, sizeof longd, &f),
      -EINVAL);
  cr_assert_eq(weft_stream_read_until_future(r, buf, 8, "\n", 1, NULL),
               -EINVAL);
  /* wrong handle types: a UDP handle and a timer */
  weft_udp u;
  weft_timer t;
  cr_assert_eq(weft_udp_init(loop, &u), 0);
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(
      weft_stream_read_some_future((weft_stream *)(void *)&u, buf, 4, &f),
      -EINVAL);
  cr_assert_eq(
      weft_stream_read_exact_future((weft_stream *)(void *)&t, buf, 4, &f),
      -EINVAL);
  cr_assert_eq(weft_stream_shutdown_future((weft_stream *)(void *)&t, &f),
               -EINVAL);
  /* a listener, and a handle without a connection */
  cr_assert_eq(weft_stream_read_some_future(&p.lt.stream, buf, 4, &f), -EINVAL);
  weft_tcp fresh;
  cr_assert_eq(weft_tcp_init(loop, &fresh), 0);
  cr_assert_eq(weft_stream_read_some_future(&fresh.stream, buf, 4, &f),
               -ENOTCONN);
  cr_assert_eq(
      weft_stream_read_until_future(&fresh.stream, buf, 4, "\n", 1, &f),
      -ENOTCONN);
  cr_assert_eq(weft_stream_shutdown_future(&fresh.stream, &f), -ENOTCONN);
  cr_assert_null(f, "no future made by a failed call");
  /* shutdown: NULL out, twice */
  cr_assert_eq(weft_stream_shutdown_future(NULL, &f), -EINVAL);
  cr_assert_eq(weft_stream_shutdown_future(p.w, NULL), -EINVAL);
  cr_assert_eq(weft_stream_shutdown_future(p.w, &f), 0);
  weft_future *g = NULL;
  cr_assert_eq(weft_stream_shutdown_future(p.w, &g), -EALREADY);
  cr_assert_null(g);
  expect_value(loop, f, 0);
  /* accept: not a listener, a used client, another kind, NULL out, the
   * same client twice */
  weft_pipe pc;
  cr_assert_eq(weft_pipe_init(loop, &pc), 0);
  weft_tcp c2;
  cr_assert_eq(weft_tcp_init(loop, &c2), 0);
  f = NULL;
  cr_assert_eq(weft_stream_accept_future(NULL, &c2.stream, &f), -EINVAL);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, NULL, &f), -EINVAL);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &c2.stream, NULL),
               -EINVAL);
  cr_assert_eq(weft_stream_accept_future(r, &c2.stream, &f), -EINVAL);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, r, &f), -EINVAL);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &pc.stream, &f),
               -EINVAL);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &p.lt.stream, &f),
               -EINVAL);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &c2.stream, &f), 0);
  cr_assert_eq(weft_stream_accept_future(&p.lt.stream, &c2.stream, &g), -EINVAL,
               "already the client of a pending accept");
  cr_assert_eq(weft_future_cancel(f), 0);
  weft_future_unref(f);
  /* pipe connect */
  cr_assert_eq(weft_pipe_connect_future(NULL, "/x", 0, &f), -EINVAL);
  cr_assert_eq(weft_pipe_connect_future(&pc, NULL, 0, &f), -EINVAL);
  cr_assert_eq(weft_pipe_connect_future(&pc, "/x", 0, NULL), -EINVAL);
  cr_assert_eq(weft_pipe_connect_future(&pc, "", 0, &f), -EINVAL);
  cr_assert_eq(
      weft_pipe_connect_future(&pc, "/nonexistent/weft-sfut.sock", 0, &f),
      -ENOENT);
  weft_pipe zero;
  memset(&zero, 0, sizeof zero);
  cr_assert_eq(weft_pipe_connect_future(&zero, "/x", 0, &f), -EINVAL,
               "a handle that was never initialised");
  /* closing */
  cr_assert_eq(weft_close(&r->base, NULL), 0);
  cr_assert_eq(weft_stream_read_some_future(r, buf, 4, &f), -EINVAL);
  cr_assert_eq(weft_stream_shutdown_future(r, &f), -EINVAL);
  th_loop_usable(loop);
  close_all(loop);
}

/* ---- accept ------------------------------------------------------------- */

typedef struct order {
  int seq[8];
  int n;
} order;
typedef struct tagged {
  order *o;
  int tag;
} tagged;

static void note_order(weft_future *f, void *arg) {
  tagged *t = arg;
  if (weft_future_get_state(f) == WEFT_FUTURE_FULFILLED)
    t->o->seq[t->o->n++] = t->tag;
}

static int conn_calls;
static void count_conn(weft_stream *server, int status) {
  (void)server;
  (void)status;
  conn_calls++;
}

Test(stream_future, accepts_are_served_in_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp l, srv[3], cli[3];
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &l), 0);
  cr_assert_eq(weft_tcp_bind(&l, (struct sockaddr *)&a, 0), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&l, (struct sockaddr *)&a, &len), 0);
  conn_calls = 0;
  cr_assert_eq(weft_tcp_listen(&l, 0, count_conn), 0, "with a callback");
  order o = {0};
  tagged tags[3];
  weft_future *acc[3], *con[3];
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(weft_tcp_init(loop, &srv[i]), 0);
    cr_assert_eq(weft_tcp_init(loop, &cli[i]), 0);
    cr_assert_eq(weft_stream_accept_future(&l.stream, &srv[i].stream, &acc[i]),
                 0);
    tags[i] = (tagged){&o, i};
    cr_assert_eq(weft_future_on_settled(acc[i], note_order, &tags[i]), 0);
  }
  /* the middle one is cancelled: its connection goes to the next */
  cr_assert_eq(weft_future_cancel(acc[1]), 0);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(
        weft_tcp_connect_future(&cli[i], (struct sockaddr *)&a, &con[i]), 0);
  expect_value(loop, acc[0], 0);
  expect_value(loop, acc[2], 0);
  expect_error(loop, acc[1], -ECANCELED);
  for (int i = 0; i < 2; i++)
    expect_value(loop, con[i], 0);
  while (o.n < 2)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(o.n, 2);
  cr_assert_eq(o.seq[0], 0);
  cr_assert_eq(o.seq[1], 2);
  cr_assert_eq(conn_calls, 0, "futures come before the callback");
  cr_assert_geq(weft_stream_fileno(&srv[0].stream), 0);
  cr_assert_eq(weft_stream_fileno(&srv[1].stream), -EBADF);
  cr_assert_geq(weft_stream_fileno(&srv[2].stream), 0);
  /* accepted streams work: a byte through each */
  char c;
  weft_future *f;
  put(weft_stream_fileno(&cli[1].stream), "z");
  cr_assert_eq(weft_stream_read_some_future(&srv[2].stream, &c, 1, &f), 0);
  expect_value(loop, f, 1);
  cr_assert_eq(c, 'z');
  /* with no future pending, the callback gets the next connection */
  cr_assert_eq(weft_tcp_connect_future(&cli[2], (struct sockaddr *)&a, &f), 0);
  expect_value(loop, f, 0);
  while (conn_calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  /* which it leaves unaccepted: the next accept future takes it */
  cr_assert_eq(weft_stream_accept_future(&l.stream, &srv[1].stream, &f), 0);
  expect_value(loop, f, 0);
  cr_assert_eq(conn_calls, 1);
  cr_assert_geq(weft_stream_fileno(&srv[1].stream), 0);
  close_all(loop);
}

Test(stream_future, accept_unix_and_pipe_connect_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  char path[64];
  snprintf(path, sizeof path, "/tmp/weft-sfut-%d.sock", (int)getpid());
  unlink(path);
  weft_pipe l, s, c;
  cr_assert_eq(weft_pipe_init(loop, &l), 0);
  cr_assert_eq(weft_pipe_bind(&l, path, 0), 0);
  cr_assert_eq(weft_pipe_listen(&l, 0, NULL), 0);
  cr_assert_eq(weft_pipe_init(loop, &s), 0);
  cr_assert_eq(weft_pipe_init(loop, &c), 0);
  weft_future *acc, *con, *f;
  cr_assert_eq(weft_stream_accept_future(&l.stream, &s.stream, &acc), 0);
  cr_assert_eq(weft_pipe_connect_future(&c, path, 0, &con), 0);
  expect_value(loop, con, 0);
  expect_value(loop, acc, 0);
  char line[16] = {0};
  cr_assert_eq(
      weft_stream_read_until_future(&s.stream, line, sizeof line, "\n", 1, &f),
      0);
  put(weft_stream_fileno(&c.stream), "hi\n");
  expect_value(loop, f, 3);
  cr_assert_eq(memcmp(line, "hi\n", 3), 0);
  /* a Unix connect to a listener completes at once: cancelling its
   * future then leaves the handle connected and usable */
  weft_pipe c2;
  cr_assert_eq(weft_pipe_init(loop, &c2), 0);
  cr_assert_eq(weft_pipe_connect_future(&c2, path, 0, &con), 0);
  cr_assert_eq(weft_future_cancel(con), 0);
  cr_assert_eq(weft_future_get_state(con), WEFT_FUTURE_CANCELLED);
  weft_future_unref(con);
  spin(loop);
  cr_assert(weft_stream_is_writable(&c2.stream));
  /* closing the listener rejects a pending accept */
  weft_pipe s2;
  cr_assert_eq(weft_pipe_init(loop, &s2), 0);
  cr_assert_eq(weft_stream_accept_future(&l.stream, &s2.stream, &acc), 0);
  weft_close(&l.stream.base, NULL);
  expect_error(loop, acc, -ECANCELED);
  unlink(path);
  close_all(loop);
}

Test(stream_future, accept_into_a_client_used_meanwhile_rejects,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  char path[64];
  int plen =
      snprintf(path, sizeof path, "%cweft-sfut-used-%d", 0, (int)getpid());
  weft_pipe l, a, b, c;
  cr_assert_eq(weft_pipe_init(loop, &l), 0);
  cr_assert_eq(weft_pipe_bind(&l, path, (size_t)plen), 0);
  cr_assert_eq(weft_pipe_listen(&l, 0, NULL), 0);
  cr_assert_eq(weft_pipe_init(loop, &a), 0);
  cr_assert_eq(weft_pipe_init(loop, &b), 0);
  cr_assert_eq(weft_pipe_init(loop, &c), 0);
  weft_future *fa, *fb, *con;
  cr_assert_eq(weft_stream_accept_future(&l.stream, &a.stream, &fa), 0);
  cr_assert_eq(weft_stream_accept_future(&l.stream, &b.stream, &fb), 0);
  /* `a` gets an fd of its own before a connection comes */
  int fds[2];
  cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
  cr_assert_eq(weft_pipe_open(&a, fds[0]), 0);
  close(fds[1]);
  cr_assert_eq(weft_pipe_connect_future(&c, path, (size_t)plen, &con), 0);
  expect_value(loop, con, 0);
  expect_error(loop, fa, -EINVAL);
  expect_value(loop, fb, 0);
  cr_assert_eq(weft_stream_fileno(&a.stream), fds[0], "a keeps its own fd");
  cr_assert_geq(weft_stream_fileno(&b.stream), 0);
  cr_assert_eq(weft_stream_read_buffered(NULL), 0);
  close_all(loop);
}

Test(stream_future, listener_without_callback_leaves_the_backlog,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_tcp l, s, c;
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &l), 0);
  cr_assert_eq(weft_tcp_bind(&l, (struct sockaddr *)&a, 0), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&l, (struct sockaddr *)&a, &len), 0);
  cr_assert_eq(weft_tcp_listen(&l, 0, NULL), 0);
  cr_assert(!weft_is_active(&l.stream.base), "nothing to wait for");
  cr_assert_eq(weft_tcp_init(loop, &c), 0);
  weft_future *con, *acc;
  cr_assert_eq(weft_tcp_connect_future(&c, (struct sockaddr *)&a, &con), 0);
  expect_value(loop, con, 0); /* the kernel completed it: in the backlog */
  spin(loop);
  cr_assert_eq(weft_tcp_init(loop, &s), 0);
  cr_assert_eq(weft_stream_accept_future(&l.stream, &s.stream, &acc), 0);
  cr_assert(weft_is_active(&l.stream.base));
  expect_value(loop, acc, 0);
  close_all(loop);
}

/* ---- shutdown future ---------------------------------------------------- */

Test(stream_future, shutdown_cancel_withdraws_before_the_half_close,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  /* fill the socket so that a write queues: the shutdown waits behind it */
  int one = 4096;
  setsockopt(p.wfd, SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  static char big[1 << 20];
  weft_buf b = weft_buf_init(big, sizeof big);
  weft_future *w, *sh, *sh2;
  cr_assert_eq(weft_stream_write_future(p.w, &b, 1, &w), 0);
  cr_assert_gt(weft_stream_write_queue_size(p.w), 0);
  cr_assert_eq(weft_stream_shutdown_future(p.w, &sh), 0);
  cr_assert(!weft_stream_is_writable(p.w));
  cr_assert_eq(weft_future_cancel(sh), 0);
  weft_future_unref(sh);
  cr_assert(weft_stream_is_writable(p.w), "shutdown withdrawn");
  cr_assert_eq(weft_stream_shutdown_future(p.w, &sh2), 0, "may shut again");
  /* drain the reader side so the write and the shutdown complete */
  static char sink[1 << 16];
  size_t total = 0;
  for (;;) {
    weft_future *f;
    cr_assert_eq(weft_stream_read_some_future(p.r, sink, sizeof sink, &f), 0);
    cr_assert_eq(wait_settled(loop, f), WEFT_FUTURE_FULFILLED);
    int64_t n = weft_future_value_i64(f);
    weft_future_unref(f);
    if (n == 0) break;
    total += (size_t)n;
  }
  cr_assert_eq(total, sizeof big);
  expect_value(loop, w, (int64_t)sizeof big);
  expect_value(loop, sh2, 0);
  close_all(loop);
}

Test(stream_future, close_rejects_pending_shutdown, .timeout = 10) {
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_TCP);
  weft_future *f;
  cr_assert_eq(weft_stream_shutdown_future(p.w, &f), 0);
  weft_close(&p.w->base, NULL);
  weft_future_state st = wait_settled(loop, f);
  /* the shutdown either ran before the close (0) or was cancelled */
  if (st == WEFT_FUTURE_FULFILLED)
    cr_assert_eq(weft_future_value_i64(f), 0);
  else
    cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
                 weft_err_name(weft_future_error(f)));
  weft_future_unref(f);
  close_all(loop);
}

/* ---- allocations -------------------------------------------------------- */

typedef struct sweep_arg {
  weft_pipe a, b;
  int what;
} sweep_arg;

static int read_round(weft_loop *loop, void *arg) {
  sweep_arg *s = arg; /* the handles are closed by the sweep */
  cr_assert_eq(weft_pipe_init(loop, &s->a), 0);
  cr_assert_eq(weft_pipe_init(loop, &s->b), 0);
  int err = weft_pipe_pair(loop, &s->a, &s->b);
  if (err != 0) return err;
  put(weft_stream_fileno(&s->b.stream), "line one\nrest");
  char buf[32];
  weft_future *f;
  switch (s->what) {
  case 0:
    err = weft_stream_read_some_future(&s->a.stream, buf, sizeof buf, &f);
    break;
  case 1:
    err = weft_stream_read_exact_future(&s->a.stream, buf, 6, &f);
    break;
  case 2:
    err = weft_stream_read_until_future(&s->a.stream, buf, sizeof buf, "\n", 1,
                                        &f);
    break;
  default:
    err = weft_stream_shutdown_future(&s->b.stream, &f);
    break;
  }
  if (err != 0) return err;
  int64_t want[] = {13, 6, 9, 0};
  cr_assert_eq(wait_settled(loop, f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  cr_assert_eq(weft_future_value_i64(f), want[s->what]);
  weft_future_unref(f);
  if (s->what == 2) { /* and from the read-back buffer */
    err = weft_stream_read_some_future(&s->a.stream, buf, sizeof buf, &f);
    if (err != 0) return err;
    wait_settled(loop, f);
    cr_assert_eq(weft_future_value_i64(f), 4);
    weft_future_unref(f);
  }
  return 0;
}

Test(stream_future, allocation_failures_are_clean, .timeout = 30) {
  sweep_arg s;
  for (s.what = 0; s.what < 4; s.what++)
    th_alloc_sweep_run(
        &(th_sweep){.op = read_round, .arg = &s, .max_rounds = 200});
}

static int accept_round(weft_loop *loop, void *arg) {
  weft_tcp *t = arg; /* listener, server side, client */
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &t[0]), 0);
  cr_assert_eq(weft_tcp_init(loop, &t[1]), 0);
  cr_assert_eq(weft_tcp_init(loop, &t[2]), 0);
  int err = weft_tcp_bind(&t[0], (struct sockaddr *)&a, 0);
  if (err != 0) return err;
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&t[0], (struct sockaddr *)&a, &len), 0);
  if ((err = weft_tcp_listen(&t[0], 0, NULL)) != 0) return err;
  weft_future *acc, *con;
  if ((err = weft_stream_accept_future(&t[0].stream, &t[1].stream, &acc)) != 0)
    return err;
  err = weft_tcp_connect_future(&t[2], (struct sockaddr *)&a, &con);
  if (err != 0) {
    weft_future_cancel(acc);
    weft_future_unref(acc);
    return err;
  }
  expect_value(loop, acc, 0);
  expect_value(loop, con, 0);
  return 0;
}

Test(stream_future, accept_allocation_failures_are_clean, .timeout = 30) {
  weft_tcp t[3];
  th_alloc_sweep_run(
      &(th_sweep){.op = accept_round, .arg = t, .max_rounds = 200});
}

static int pipe_connect_round(weft_loop *loop, void *arg) {
  weft_pipe *p = arg;
  char path[64];
  int plen = snprintf(path, sizeof path, "%cweft-sfut-%d", 0, (int)getpid());
  cr_assert_eq(weft_pipe_init(loop, &p[0]), 0);
  cr_assert_eq(weft_pipe_init(loop, &p[1]), 0);
  cr_assert_eq(weft_pipe_init(loop, &p[2]), 0);
  int err = weft_pipe_bind(&p[0], path, (size_t)plen);
  if (err != 0) return err;
  if ((err = weft_pipe_listen(&p[0], 0, NULL)) != 0) return err;
  weft_future *acc, *con;
  if ((err = weft_stream_accept_future(&p[0].stream, &p[1].stream, &acc)) != 0)
    return err;
  err = weft_pipe_connect_future(&p[2], path, (size_t)plen, &con);
  if (err != 0) {
    weft_future_cancel(acc);
    weft_future_unref(acc);
    return err;
  }
  expect_value(loop, con, 0);
  expect_value(loop, acc, 0);
  return 0;
}

Test(stream_future, pipe_connect_allocation_failures_are_clean, .timeout = 30) {
  weft_pipe p[3];
  th_alloc_sweep_run(
      &(th_sweep){.op = pipe_connect_round, .arg = p, .max_rounds = 200});
}

static void settled_count(weft_future *f, void *arg) {
  (void)f;
  ++*(int *)arg;
}

Test(stream_future, steady_state_reads_allocate_nothing, .timeout = 20) {
  th_alloc_install(0);
  weft_loop *loop = th_loop();
  pair p;
  make_pair(loop, &p, K_UNIX);
  char buf[64];
  size_t calls = 0;
  for (int round = 0; round < 300; round++) {
    if (round == 20) calls = th_alloc_calls(); /* free lists are warm */
    weft_future *f, *g, *h;
    int done = 0;
    put(p.wfd, "0123456789abcdef\nxyz");
    cr_assert_eq(weft_stream_read_some_future(p.r, buf, 4, &f), 0);
    cr_assert_eq(weft_stream_read_exact_future(p.r, buf + 4, 6, &g), 0);
    cr_assert_eq(weft_stream_read_until_future(p.r, buf + 10, 32, "\n", 1, &h),
                 0);
    cr_assert_eq(weft_future_on_settled(h, settled_count, &done), 0);
    while (done == 0)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    cr_assert_eq(weft_future_value_i64(f), 4);
    cr_assert_eq(weft_future_value_i64(g), 6);
    cr_assert_eq(weft_future_value_i64(h), 7);
    weft_future_unref(f);
    weft_future_unref(g);
    weft_future_unref(h);
    cr_assert_eq(weft_stream_read_exact_future(p.r, buf, 3, &f), 0);
    cr_assert_eq(wait_settled(loop, f), WEFT_FUTURE_FULFILLED);
    weft_future_unref(f);
  }
  cr_assert_eq(th_alloc_calls(), calls, "steady-state reads allocated %zu",
               th_alloc_calls() - calls);
  th_loop_finish(loop);
  th_alloc_restore();
}
