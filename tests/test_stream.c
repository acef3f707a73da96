/* Streams: completions never inline, backpressure with watermarks (64 MiB
 * through a slow reader), half-close both ways, close cancelling queued
 * writes before the close callback, the per-turn fairness cap (reads, and
 * writes made from write callbacks), buffers
 * from the caller, write futures and their cancellation, sendfile (order
 * with writes, a large file to a slow reader, cancel, bad input). */
#include "support/test.h"
#include "io/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connected TCP pair on one loop. */
typedef struct tpair {
  weft_tcp listener, a, b;
  weft_connect_req cr;
  int connected, accepted;
} tpair;

static void tp_connected(weft_connect_req *req, int status) {
  cr_assert_eq(status, 0);
  ((tpair *)req->data)->connected++;
}

static void tp_accept(weft_stream *s, int status) {
  cr_assert_eq(status, 0);
  tpair *p = (tpair *)s;
  cr_assert_eq(weft_stream_accept(s, &p->b.stream), 0);
  p->accepted++;
}

static void tpair_open(weft_loop *loop, tpair *p) {
  memset(p, 0, sizeof *p);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(weft_tcp_init(loop, &p->listener), 0);
  cr_assert_eq(weft_tcp_bind(&p->listener, (struct sockaddr *)&a, 0), 0);
  cr_assert_eq(weft_tcp_listen(&p->listener, 1, tp_accept), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(weft_tcp_getsockname(&p->listener, (struct sockaddr *)&a, &len),
               0);
  cr_assert_eq(weft_tcp_init(loop, &p->a), 0);
  cr_assert_eq(weft_tcp_init(loop, &p->b), 0);
  p->cr.data = p;
  cr_assert_eq(
      weft_tcp_connect(&p->cr, &p->a, (struct sockaddr *)&a, tp_connected), 0);
  while (!p->connected || !p->accepted)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  weft_close(&p->listener.stream.base, NULL);
}

/* ---- completions are never inline ---------------------------------------- */

static void count_write(weft_write_req *req, int status) {
  int *c = req->data;
  c[0]++;
  c[1] = status;
}

Test(stream, write_completes_later_never_inline, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  cr_assert_eq(weft_pipe_init(loop, &a), 0);
  cr_assert_eq(weft_pipe_init(loop, &b), 0);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  int c[2] = {0, -1};
  weft_write_req w;
  w.data = c;
  weft_buf buf = weft_buf_init("hello", 5);
  cr_assert_eq(weft_stream_write(&w, &a.stream, &buf, 1, count_write), 0);
  cr_assert_eq(c[0], 0);
  cr_assert_eq(weft_stream_write_queue_size(&a.stream), 0); /* kernel took it */
  cr_assert(weft_is_active(&a.stream.base)); /* completion outstanding */
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(c[0], 1);
  cr_assert_eq(c[1], 0);
  cr_assert(!weft_is_active(&a.stream.base));
  char got[8];
  cr_assert_eq(read(weft_stream_fileno(&b.stream), got, sizeof got), 5);
  cr_assert_eq(memcmp(got, "hello", 5), 0);
  th_loop_finish(loop);
}

/* A write issued from a read callback completes after that callback has
 * returned (in the same turn), never from inside weft_stream_write(). */
typedef struct inio {
  weft_write_req w;
  int wrote, in_read, cb_in_read;
} inio;

static void inio_written(weft_write_req *req, int status) {
  inio *x = req->data;
  cr_assert_eq(status, 0);
  x->wrote++;
  if (x->in_read) x->cb_in_read++;
}

static void inio_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  inio *x = s->base.data;
  cr_assert_eq(n, 4);
  x->in_read = 1;
  x->w.data = x;
  weft_buf b = weft_buf_init("pong", 4);
  cr_assert_eq(weft_stream_write(&x->w, s, &b, 1, inio_written), 0);
  cr_assert_eq(x->wrote, 0);
  x->in_read = 0;
}

Test(stream, write_from_read_callback_completes_after_it_returns,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  inio x = {0};
  b.stream.base.data = &x;
  cr_assert_eq(weft_stream_read_start(&b.stream, NULL, inio_read), 0);
  cr_assert_eq(write(weft_stream_fileno(&a.stream), "ping", 4), 4);
  while (x.wrote == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(x.wrote, 1);
  cr_assert_eq(x.cb_in_read, 0);
  char got[4];
  cr_assert_eq(read(weft_stream_fileno(&a.stream), got, 4), 4);
  cr_assert_eq(memcmp(got, "pong", 4), 0);
  th_loop_finish(loop);
}

/* ---- 64 MiB through a slow reader ---------------------------------------- */

#define TOTAL (64u << 20)
#define CHUNK (64u << 10)
#define HIGH (1u << 20)

typedef struct pump {
  weft_stream *w, *r;
  weft_write_req reqs[64];
  int free_reqs[64], nfree;
  char *data;
  size_t sent, received, max_queue;
  int highs, lows, writes_done;
  bool paused;
  weft_timer slow;
  size_t since_pause;
} pump;

static void pump_fill(pump *p);

static void pump_written(weft_write_req *req, int status) {
  pump *p = req->data;
  cr_assert_eq(status, 0);
  p->writes_done++;
  p->free_reqs[p->nfree++] = (int)(req - p->reqs);
  pump_fill(p); /* a request is free again */
}

static void pump_mark(weft_stream *s, weft_watermark which) {
  pump *p = s->base.data;
  if (which == WEFT_WATERMARK_HIGH) {
    p->highs++;
    p->paused = true;
  } else {
    p->lows++;
    p->paused = false;
    pump_fill(p);
  }
}

/* Writes 64 KiB chunks until paused by the high watermark. */
static void pump_fill(pump *p) {
  while (!p->paused && p->sent < TOTAL && p->nfree > 0) {
    weft_write_req *req = &p->reqs[p->free_reqs[--p->nfree]];
    req->data = p;
    weft_buf b = weft_buf_init(p->data + p->sent % (1u << 20), CHUNK);
    cr_assert_eq(weft_stream_write(req, p->w, &b, 1, pump_written), 0);
    p->sent += CHUNK;
    size_t q = weft_stream_write_queue_size(p->w);
    if (q > p->max_queue) p->max_queue = q;
  }
}

static void slow_resume(weft_timer *t);

static void pump_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  pump *p = s->base.data;
  cr_assert_gt(n, 0);
  for (ssize_t i = 0; i < n; i += 4093)
    cr_assert_eq(buf->base[i], p->data[(p->received + (size_t)i) % (1u << 20)]);
  p->received += (size_t)n;
  p->since_pause += (size_t)n;
  if (p->since_pause >= (4u << 20)) { /* slow: pause 1 ms every 4 MiB */
    p->since_pause = 0;
    weft_stream_read_stop(s);
    cr_assert_eq(weft_timer_start(&p->slow, slow_resume, 1, 0), 0);
  }
}

static void slow_resume(weft_timer *t) {
  pump *p = t->base.data;
  cr_assert_eq(weft_stream_read_start(p->r, NULL, pump_read), 0);
}

Test(stream, slow_reader_64mib_queue_stays_under_high_watermark,
     .timeout = 60) {
  weft_loop *loop = th_loop();
  tpair tp;
  tpair_open(loop, &tp);
  pump *p = calloc(1, sizeof *p);
  p->data = malloc(1u << 20);
  for (size_t i = 0; i < (1u << 20); i++)
    p->data[i] = (char)(i * 131 + (i >> 11));
  for (int i = 0; i < 64; i++)
    p->free_reqs[p->nfree++] = i;
  p->w = &tp.a.stream;
  p->r = &tp.b.stream;
  tp.a.stream.base.data = tp.b.stream.base.data = p;
  cr_assert_eq(weft_timer_init(loop, &p->slow), 0);
  p->slow.base.data = p;
  cr_assert_eq(weft_stream_set_watermarks(p->w, HIGH, HIGH / 4, pump_mark), 0);
  cr_assert_eq(weft_stream_read_start(p->r, NULL, pump_read), 0);
  pump_fill(p);
  while (p->received < TOTAL)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(p->sent, TOTAL);
  cr_assert_eq(p->received, TOTAL);
  cr_assert_leq(p->max_queue, HIGH + CHUNK);
  cr_assert_gt(p->highs, 0);
  cr_assert(p->lows == p->highs || p->lows == p->highs - 1);
  while (p->writes_done < (int)(TOTAL / CHUNK))
    weft_loop_run(loop, WEFT_RUN_ONCE);
  th_loop_finish(loop); /* before freeing the timer inside p */
  free(p->data);
  free(p);
}

/* ---- half-close ------------------------------------------------------------
 */

typedef struct hc {
  int eof, shut, shut_status;
  size_t bytes;
} hc;

static void hc_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  hc *h = s->base.data;
  if (n == WEFT_EOF)
    h->eof++;
  else if (n > 0)
    h->bytes += (size_t)n;
  else
    cr_assert_fail("read error %zd", n);
}

static void hc_shut(weft_shutdown_req *req, int status) {
  hc *h = req->data;
  h->shut++;
  h->shut_status = status;
}

Test(stream, half_close_both_ways, .timeout = 10) {
  weft_loop *loop = th_loop();
  tpair tp;
  tpair_open(loop, &tp);
  hc ha = {0}, hb = {0};
  tp.a.stream.base.data = &ha;
  tp.b.stream.base.data = &hb;
  cr_assert_eq(weft_stream_read_start(&tp.a.stream, NULL, hc_read), 0);
  cr_assert_eq(weft_stream_read_start(&tp.b.stream, NULL, hc_read), 0);
  /* a writes, then shuts down: b reads everything, then EOF */
  static char big[300000];
  weft_write_req w1, w2;
  int c1[2] = {0, 0}, c2[2] = {0, 0};
  w1.data = c1;
  w2.data = c2;
  weft_buf b = weft_buf_init(big, sizeof big);
  cr_assert_eq(weft_stream_write(&w1, &tp.a.stream, &b, 1, count_write), 0);
  weft_shutdown_req sa, sb;
  sa.data = &ha;
  cr_assert_eq(weft_stream_shutdown(&sa, &tp.a.stream, hc_shut), 0);
  cr_assert_eq(weft_stream_shutdown(&sa, &tp.a.stream, hc_shut), -EALREADY);
  cr_assert_eq(weft_stream_write(&w2, &tp.a.stream, &b, 1, count_write),
               -EPIPE);
  cr_assert(!weft_stream_is_writable(&tp.a.stream));
  while (hb.eof == 0 || ha.shut == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(hb.bytes, sizeof big);
  cr_assert_eq(c1[0], 1);
  cr_assert_eq(c1[1], 0);
  cr_assert_eq(ha.shut_status, 0);
  cr_assert_eq(ha.eof, 0);
  /* the other way: b still writes to a, then shuts down */
  weft_buf small = weft_buf_init("late reply", 10);
  cr_assert_eq(weft_stream_write(&w2, &tp.b.stream, &small, 1, count_write), 0);
  sb.data = &hb;
  cr_assert_eq(weft_stream_shutdown(&sb, &tp.b.stream, hc_shut), 0);
  while (ha.eof == 0 || hb.shut == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(ha.bytes, 10);
  cr_assert_eq(ha.eof, 1);
  cr_assert_eq(hb.eof, 1);
  cr_assert_eq(hb.shut, 1);
  cr_assert_eq(c2[0], 1);
  th_loop_finish(loop);
}

/* ---- close cancels queued writes before the close callback ------------------
 */

static int order[8], norder;

static void order_write(weft_write_req *req, int status) {
  order[norder++] = status == -ECANCELED ? 2 : (status == 0 ? 1 : 3);
  (void)req;
}

static void order_close(weft_handle *h) {
  (void)h;
  order[norder++] = 9;
}

Test(stream, close_cancels_queued_writes_before_close_cb, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  static char big[8 << 20]; /* more than the socket buffer */
  weft_write_req w[3];
  weft_buf bb = weft_buf_init(big, sizeof big);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_stream_write(&w[i], &a.stream, &bb, 1, order_write), 0);
  cr_assert_gt(weft_stream_write_queue_size(&a.stream), 2 * sizeof big);
  cr_assert_eq(weft_close(&a.stream.base, order_close), 0);
  cr_assert_eq(norder, 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(norder, 4);
  cr_assert_eq(order[0], 2); /* the partly written one too: cancelled */
  cr_assert_eq(order[1], 2);
  cr_assert_eq(order[2], 2);
  cr_assert_eq(order[3], 9);
  th_loop_finish(loop);
}

/* ---- fairness
 * ---------------------------------------------------------------- */

typedef struct fair {
  size_t a_bytes, b_bytes;
  int b_calls;
} fair;

static void fair_read_a(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  cr_assert_gt(n, 0);
  ((fair *)s->base.data)->a_bytes += (size_t)n;
}

static void fair_read_b(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  cr_assert_gt(n, 0);
  fair *f = s->base.data;
  f->b_bytes += (size_t)n;
  f->b_calls++;
}

Test(stream, busy_peer_is_capped_per_turn, .timeout = 20) {
  weft_loop *loop = th_loop();
  tpair busy, quiet;
  tpair_open(loop, &busy);
  tpair_open(loop, &quiet);
  /* let the kernel hold several MiB for the busy reader */
  int big = 8 << 20;
  setsockopt(weft_stream_fileno(&busy.b.stream), SOL_SOCKET, SO_RCVBUFFORCE,
             &big, sizeof big);
  setsockopt(weft_stream_fileno(&busy.a.stream), SOL_SOCKET, SO_SNDBUFFORCE,
             &big, sizeof big);
  static char data[1 << 20];
  size_t pushed = 0;
  for (;;) {
    ssize_t n = send(weft_stream_fileno(&busy.a.stream), data, sizeof data,
                     MSG_DONTWAIT);
    if (n <= 0) break;
    pushed += (size_t)n;
    if (pushed >= (6u << 20)) break;
  }
  cr_assert_gt(pushed, 2 * WEFT_STREAM_READ_CAP);
  cr_assert_eq(send(weft_stream_fileno(&quiet.a.stream), "q", 1, 0), 1);
  fair f = {0};
  busy.b.stream.base.data = quiet.b.stream.base.data = &f;
  cr_assert_eq(weft_stream_read_start(&busy.b.stream, NULL, fair_read_a), 0);
  cr_assert_eq(weft_stream_read_start(&quiet.b.stream, NULL, fair_read_b), 0);
  weft_loop_run(loop, WEFT_RUN_ONCE);
  /* one turn: the busy stream stopped at the cap, the quiet one was served */
  cr_assert_gt(f.a_bytes, 0);
  cr_assert_leq(f.a_bytes, WEFT_STREAM_READ_CAP + WEFT_STREAM_SLAB_SIZE);
  cr_assert_eq(f.b_calls, 1);
  while (f.a_bytes < pushed)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(f.a_bytes, pushed);
  th_loop_finish(loop);
}

/* A writer that refills from its own write callbacks: each write is
 * 64 KiB; `sync` counts the bytes the kernel took at once in the turn the
 * test watches, `queued` says a write had to wait. */
typedef struct refill {
  weft_stream *s;
  weft_write_req w[2];
  unsigned next;
  size_t sent, target, sync, got;
  bool queued;
} refill;

static char refill_data[64 << 10];

static void refill_write(refill *r);

static void refill_written(weft_write_req *w, int status) {
  cr_assert_eq(status, 0);
  refill *r = w->data;
  if (r->sent < r->target) refill_write(r);
}

static void refill_write(refill *r) {
  weft_write_req *w = &r->w[r->next++ % 2];
  w->data = r;
  weft_buf b = weft_buf_init(refill_data, sizeof refill_data);
  cr_assert_eq(weft_stream_write(w, r->s, &b, 1, refill_written), 0);
  r->sent += sizeof refill_data;
  if (weft_stream_write_queue_size(r->s) > 0)
    r->queued = true;
  else if (!r->queued)
    r->sync += sizeof refill_data;
}

static void refill_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  cr_assert_gt(n, 0);
  ((refill *)s->base.data)->got += (size_t)n;
}

Test(stream, writes_from_write_callbacks_are_capped_per_turn, .timeout = 20) {
  weft_loop *loop = th_loop();
  tpair p;
  tpair_open(loop, &p);
  /* room for several MiB: only the cap can stop the writer in one turn */
  int big = 8 << 20;
  setsockopt(weft_stream_fileno(&p.a.stream), SOL_SOCKET, SO_SNDBUFFORCE, &big,
             sizeof big);
  setsockopt(weft_stream_fileno(&p.b.stream), SOL_SOCKET, SO_RCVBUFFORCE, &big,
             sizeof big);
  refill r = {.s = &p.a.stream, .target = 6u << 20};
  refill_write(&r); /* before the run: its callback starts the chain */
  cr_assert_eq(r.sync, sizeof refill_data);
  r.sync = 0;
  weft_loop_run(loop, WEFT_RUN_ONCE);
  /* one turn: the chain stopped at the cap and queued the next write */
  cr_assert(r.queued);
  cr_assert_geq(r.sync, WEFT_STREAM_WRITE_CAP - sizeof refill_data);
  cr_assert_leq(r.sync, WEFT_STREAM_WRITE_CAP);
  cr_assert_lt(r.sent, r.target);
  p.b.stream.base.data = &r;
  cr_assert_eq(weft_stream_read_start(&p.b.stream, NULL, refill_read), 0);
  while (r.got < r.target)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(r.sent, r.target);
  cr_assert_eq(r.got, r.target);
  cr_assert_eq(weft_stream_write_queue_size(&p.a.stream), 0);
  weft_close(&p.a.stream.base, NULL);
  weft_close(&p.b.stream.base, NULL);
  th_loop_finish(loop);
}

/* ---- the caller's buffers
 * ------------------------------------------------------ */

typedef struct own {
  char buf[3];
  int calls, nobufs, zero, eof;
  size_t bytes;
  bool give_none;
} own;

static void own_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  own *o = s->base.data;
  cr_assert_eq(suggested, WEFT_STREAM_SLAB_SIZE);
  if (!o->give_none) *buf = weft_buf_init(o->buf, sizeof o->buf);
}

static void own_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  own *o = s->base.data;
  o->calls++;
  if (n == -ENOBUFS) {
    o->nobufs++;
    o->give_none = false;
    return;
  }
  if (n == 0) {
    o->zero++;
    return;
  }
  if (n == WEFT_EOF) {
    o->eof++;
    return;
  }
  cr_assert_gt(n, 0);
  cr_assert_eq(buf->base, o->buf);
  o->bytes += (size_t)n;
}

Test(stream, reads_into_caller_buffers_and_reports_nobufs, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  own o = {.give_none = true};
  b.stream.base.data = &o;
  cr_assert_eq(write(weft_stream_fileno(&a.stream), "0123456789", 10), 10);
  cr_assert_eq(weft_stream_read_start(&b.stream, own_alloc, own_read), 0);
  cr_assert(weft_stream_is_reading(&b.stream));
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(o.nobufs, 1);
  while (o.bytes < 10)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(o.bytes, 10);
  close(weft_stream_fileno(&a.stream)); /* peer gone: EOF */
  while (o.eof == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(o.eof, 1);
  cr_assert(!weft_stream_is_reading(&b.stream));
  th_loop_finish(loop);
}

/* ---- futures and many buffers
 * ---------------------------------------------------- */

/* The request pools stay valid through future-form writes, and the
 * validate function notices a free request that still holds a future. */
Test(stream, request_pools_stay_valid, .timeout = 10) {
  weft_loop *loop = th_loop();
  size_t nfree = 99;
  cr_assert_eq(weft__req_pools_validate(loop, &nfree), 0);
  cr_assert_eq(nfree, 0); /* no io yet */
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  weft_buf buf = weft_buf_init("abc", 3);
  weft_future *f[3];
  for (int i = 0; i < 3; i++)
    cr_assert_eq(weft_stream_write_future(&a.stream, &buf, 1, &f[i]), 0);
  cr_assert_eq(weft__req_pools_validate(loop, &nfree), 0);
  cr_assert_eq(nfree, 0); /* all three in flight */
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(weft_future_get_state(f[i]), WEFT_FUTURE_FULFILLED);
    cr_assert_eq(weft_future_value_i64(f[i]), 3);
    weft_future_unref(f[i]);
  }
  cr_assert_eq(weft__req_pools_validate(loop, &nfree), 0);
  cr_assert_eq(nfree, 3); /* back in the pool, ready for reuse */
  weft__net *net = weft__module_get(loop, WEFT__MOD_NET);
  weft__req_hdr *r = weft__req_of(net->wreqs.free.next);
  r->future = f[0]; /* a stale future left in a free request */
  cr_assert_eq(weft__req_pools_validate(loop, NULL), -EINVAL);
  r->future = NULL;
  cr_assert_eq(weft__req_pools_validate(loop, NULL), 0);
  weft_close(&a.stream.base, NULL);
  weft_close(&b.stream.base, NULL);
  th_loop_finish(loop);
}

Test(stream, write_future_and_cancel_of_a_queued_write, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  static char big[8 << 20];
  weft_buf bb = weft_buf_init(big, sizeof big);
  weft_future *f1, *f2, *f3;
  cr_assert_eq(weft_stream_write_future(&a.stream, &bb, 1, &f1),
               0); /* partly written */
  cr_assert_eq(weft_stream_write_future(&a.stream, &bb, 1, &f2),
               0); /* untouched */
  size_t q = weft_stream_write_queue_size(&a.stream);
  cr_assert_eq(weft_future_cancel(f2), 0);
  cr_assert_eq(weft_stream_write_queue_size(&a.stream), q - sizeof big);
  cr_assert_eq(weft_future_error(f2), -ECANCELED);
  weft_buf tail = weft_buf_init("end", 3);
  cr_assert_eq(weft_stream_write_future(&a.stream, &tail, 1, &f3), 0);
  cr_assert_eq(weft_future_cancel(f1), 0); /* on the wire: finishes anyway */
  size_t got = 0;
  static char sink[1 << 16];
  int fd = weft_stream_fileno(&b.stream);
  while (weft_future_get_state(f3) == WEFT_FUTURE_PENDING) {
    ssize_t n = read(fd, sink, sizeof sink);
    if (n > 0) got += (size_t)n;
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
  }
  for (ssize_t n; (n = read(fd, sink, sizeof sink)) > 0;)
    got += (size_t)n;
  cr_assert_eq(got, sizeof big + 3); /* f1 whole, f2 never, f3 whole */
  cr_assert_eq(weft_future_value_i64(f3), 3);
  weft_future_unref(f1);
  weft_future_unref(f2);
  weft_future_unref(f3);
  th_loop_finish(loop);
}

Test(stream, writev_of_many_buffers_keeps_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  enum { N = 3000 }; /* more than IOV_MAX */
  static weft_buf bufs[N];
  static char bytes[N];
  for (int i = 0; i < N; i++) {
    bytes[i] = (char)(i % 251);
    bufs[i] = weft_buf_init(&bytes[i], i % 7 == 3 ? 0 : 1); /* some empty */
  }
  weft_write_req w;
  int c[2] = {0, -1};
  w.data = c;
  cr_assert_eq(weft_stream_write(&w, &a.stream, bufs, N, count_write), 0);
  for (int i = 0; i < N; i++)
    bufs[i].len = 99; /* the request keeps its copy */
  while (c[0] == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(c[1], 0);
  static char got[N];
  ssize_t n = read(weft_stream_fileno(&b.stream), got, sizeof got);
  int k = 0;
  for (int i = 0; i < N; i++)
    if (i % 7 != 3) cr_assert_eq(got[k++], bytes[i]);
  cr_assert_eq(n, k);
  th_loop_finish(loop);
}

static void noop_mark(weft_stream *s, weft_watermark w) { (void)s, (void)w; }

Test(stream, bad_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a;
  weft_pipe_init(loop, &a);
  weft_future *f;
  weft_buf b = weft_buf_init("x", 1);
  cr_assert_eq(weft_stream_set_watermarks(NULL, 1, 0, noop_mark), -EINVAL);
  cr_assert_eq(weft_stream_set_watermarks(&a.stream, 1, 2, noop_mark), -EINVAL);
  cr_assert_eq(
      weft_stream_set_watermarks(&a.stream, (size_t)1 << 33, 0, noop_mark),
      -EINVAL);
  cr_assert_eq(weft_stream_set_watermarks(&a.stream, 2, 1, noop_mark), 0);
  cr_assert_eq(weft_stream_write_future(&a.stream, &b, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_write_future(&a.stream, &b, 1, &f), -ENOTCONN);
  cr_assert_eq(weft_stream_read_stop(NULL), -EINVAL);
  cr_assert_eq(weft_stream_read_stop(&a.stream), 0);
  cr_assert_eq(weft_stream_fileno(NULL), -EINVAL);
  cr_assert_eq(weft_stream_fileno(&a.stream), -EBADF);
  cr_assert_eq(weft_stream_write_queue_size(NULL), 0);
  cr_assert(!weft_stream_is_reading(NULL));
  cr_assert(!weft_stream_is_writable(&a.stream));
  cr_assert_eq(weft_stream_shutdown(NULL, &a.stream, NULL), -EINVAL);
  th_loop_finish(loop);
}

/* Watermarks live outside the stream (made by the first call, freed by
 * removing them or by the close): a listener has none (its fields take
 * their place), a closing stream takes none, and a failed allocation is
 * -ENOMEM with the stream as it was. ASan's leak check covers the frees. */
Test(stream, watermarks_state_listener_close_and_enomem, .timeout = 10) {
  th_alloc_install(0); /* counts, fails nothing until armed */
  weft_loop *loop = th_loop();
  weft_tcp srv, c;
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(weft_tcp_init(loop, &srv), 0);
  cr_assert_eq(weft_tcp_bind(&srv, (struct sockaddr *)&a, 0), 0);
  /* set before listen: dropped by the listen, then refused */
  cr_assert_eq(weft_stream_set_watermarks(&srv.stream, 8, 4, noop_mark), 0);
  cr_assert_eq(weft_tcp_listen(&srv, 16, NULL), 0);
  cr_assert_eq(weft_stream_set_watermarks(&srv.stream, 8, 4, noop_mark),
               -EINVAL);
  cr_assert_eq(weft_stream_set_watermarks(&srv.stream, 0, 0, NULL), -EINVAL);
  cr_assert_eq(weft_stream_write_queue_size(&srv.stream), 0);
  /* set, changed, removed, set again: one allocation in all */
  cr_assert_eq(weft_tcp_init(loop, &c), 0);
  size_t calls = th_alloc_calls();
  cr_assert_eq(weft_stream_set_watermarks(&c.stream, 8, 4, noop_mark), 0);
  cr_assert_eq(weft_stream_set_watermarks(&c.stream, 16, 2, noop_mark), 0);
  cr_assert_eq(th_alloc_calls() - calls, 1);
  cr_assert_eq(weft_stream_set_watermarks(&c.stream, 0, 0, NULL), 0);
  /* without memory: -ENOMEM, nothing set; then it works */
  th_alloc_arm(1);
  cr_assert_eq(weft_stream_set_watermarks(&c.stream, 8, 4, noop_mark), -ENOMEM);
  cr_assert_eq(th_alloc_failed(), 1);
  cr_assert_eq(weft_stream_set_watermarks(&c.stream, 8, 4, noop_mark), 0);
  /* the close frees them; a closing stream takes none */
  cr_assert_eq(weft_close(&c.stream.base, NULL), 0);
  cr_assert_eq(weft_stream_set_watermarks(&c.stream, 8, 4, noop_mark), -EINVAL);
  cr_assert_eq(weft_close(&srv.stream.base, NULL), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  th_loop_finish(loop);
  th_alloc_restore();
}

/* ---- sendfile
 * ------------------------------------------------------------------ */

/* An unlinked temporary file of `len` bytes of a pattern; returns its fd. */
static int pattern_file(size_t len) {
  char name[] = "/tmp/weft-sendfile-XXXXXX";
  int fd = mkstemp(name);
  cr_assert_geq(fd, 0);
  cr_assert_eq(unlink(name), 0);
  static char chunk[1 << 16];
  for (size_t off = 0; off < len;) {
    size_t n = len - off < sizeof chunk ? len - off : sizeof chunk;
    for (size_t i = 0; i < n; i++)
      chunk[i] = (char)((off + i) * 131 + ((off + i) >> 11));
    cr_assert_eq(write(fd, chunk, n), (ssize_t)n);
    off += n;
  }
  return fd;
}

static char pattern_at(size_t i) { return (char)(i * 131 + (i >> 11)); }

typedef struct sfcount {
  int calls, status;
} sfcount;

static void count_sendfile(weft_sendfile_req *req, int status) {
  sfcount *c = req->data;
  c->calls++;
  c->status = status;
}

/* Reads what is available on `fd` into buf[*got..cap). */
static void drain_into(int fd, char *buf, size_t cap, size_t *got) {
  for (ssize_t n; *got < cap && (n = read(fd, buf + *got, cap - *got)) > 0;)
    *got += (size_t)n;
}

Test(stream, sendfile_is_ordered_with_writes, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  int fd = pattern_file(100);
  cr_assert_eq(lseek(fd, 7, SEEK_SET), 7); /* the file offset is not used */
  weft_write_req w1, w2;
  int c1[2] = {0, -1}, c2[2] = {0, -1};
  w1.data = c1;
  w2.data = c2;
  weft_sendfile_req sf;
  sfcount sc = {0, -1};
  sf.data = &sc;
  weft_buf head = weft_buf_init("head:", 5), tail = weft_buf_init(":tail", 5);
  cr_assert_eq(weft_stream_write(&w1, &a.stream, &head, 1, count_write), 0);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, fd, 10, 20, count_sendfile),
               0);
  weft_future *f;
  cr_assert_eq(weft_stream_sendfile_future(&a.stream, fd, 0, 3, &f), 0);
  cr_assert_eq(weft_stream_write(&w2, &a.stream, &tail, 1, count_write), 0);
  cr_assert_eq(sc.calls, 0, "never inline");
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(c1[0], 1);
  cr_assert_eq(sc.calls, 1);
  cr_assert_eq(sc.status, 0, "%s", weft_err_name(sc.status));
  cr_assert_eq(weft_future_value_i64(f), 3);
  cr_assert_eq(c2[0], 1);
  cr_assert_eq(c2[1], 0);
  char got[64];
  size_t n = 0;
  drain_into(weft_stream_fileno(&b.stream), got, sizeof got, &n);
  cr_assert_eq(n, 5 + 20 + 3 + 5);
  cr_assert_eq(memcmp(got, "head:", 5), 0);
  for (size_t i = 0; i < 20; i++)
    cr_assert_eq(got[5 + i], pattern_at(10 + i), "byte %zu", i);
  for (size_t i = 0; i < 3; i++)
    cr_assert_eq(got[25 + i], pattern_at(i));
  cr_assert_eq(memcmp(got + 28, ":tail", 5), 0);
  cr_assert_eq(lseek(fd, 0, SEEK_CUR), 7);
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
}

#define SF_TOTAL ((size_t)24 << 20)

typedef struct sfslow {
  weft_stream *r;
  weft_timer slow;
  size_t received, since_pause, max_queue;
  weft_stream *w;
  bool bad;
} sfslow;

static void sfslow_resume(weft_timer *t);

static void sfslow_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  sfslow *p = s->base.data;
  cr_assert_gt(n, 0, "%s", weft_err_name((int)n));
  for (ssize_t i = 0; i < n; i++)
    if (buf->base[i] != pattern_at(p->received + (size_t)i)) p->bad = true;
  p->received += (size_t)n;
  p->since_pause += (size_t)n;
  size_t q = weft_stream_write_queue_size(p->w);
  if (q > p->max_queue) p->max_queue = q;
  if (p->since_pause >= (2u << 20)) { /* slow: pause 1 ms every 2 MiB */
    p->since_pause = 0;
    weft_stream_read_stop(s);
    cr_assert_eq(weft_timer_start(&p->slow, sfslow_resume, 1, 0), 0);
  }
}

static void sfslow_resume(weft_timer *t) {
  sfslow *p = t->base.data;
  cr_assert_eq(weft_stream_read_start(p->r, NULL, sfslow_read), 0);
}

/* A large file to a slow reader over TCP: EAGAIN is waited out on the
 * stream's own watcher; the queue size counts the file bytes not sent. */
Test(stream, sendfile_of_a_large_file_to_a_slow_reader, .timeout = 60) {
  weft_loop *loop = th_loop();
  tpair tp;
  tpair_open(loop, &tp);
  int fd = pattern_file(SF_TOTAL);
  sfslow p = {.r = &tp.b.stream, .w = &tp.a.stream};
  tp.b.stream.base.data = &p;
  cr_assert_eq(weft_timer_init(loop, &p.slow), 0);
  p.slow.base.data = &p;
  weft_sendfile_req sf;
  sfcount sc = {0, -1};
  sf.data = &sc;
  cr_assert_eq(
      weft_stream_sendfile(&sf, &tp.a.stream, fd, 0, SF_TOTAL, count_sendfile),
      0);
  size_t q0 = weft_stream_write_queue_size(&tp.a.stream);
  cr_assert_gt(q0, 0, "the kernel cannot take 24 MiB at once");
  cr_assert_leq(q0, SF_TOTAL);
  cr_assert_eq(weft_stream_read_start(p.r, NULL, sfslow_read), 0);
  while (p.received < SF_TOTAL || sc.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(sc.calls, 1);
  cr_assert_eq(sc.status, 0, "%s", weft_err_name(sc.status));
  cr_assert_eq(p.received, SF_TOTAL);
  cr_assert(!p.bad, "the bytes differ from the file");
  cr_assert_eq(weft_stream_write_queue_size(&tp.a.stream), 0);
  close(fd);
  th_loop_finish(loop); /* before the timer inside p goes */
}

static int sforder[4], nsforder;
static void sforder_sendfile(weft_sendfile_req *req, int status) {
  (void)req;
  sforder[nsforder++] = status == -ECANCELED ? 2 : 3;
}
static void sforder_close(weft_handle *h) {
  (void)h;
  sforder[nsforder++] = 9;
}

Test(stream, sendfile_cancelled_by_close_and_by_its_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  static char big[8 << 20]; /* more than the socket buffer: the rest queues */
  weft_buf bb = weft_buf_init(big, sizeof big);
  weft_write_req w;
  w.data = (int[2]){0, 0};
  cr_assert_eq(weft_stream_write(&w, &a.stream, &bb, 1, NULL), 0);
  int fd = pattern_file(1 << 16);
  weft_future *f;
  size_t q = weft_stream_write_queue_size(&a.stream);
  cr_assert_eq(weft_stream_sendfile_future(&a.stream, fd, 0, 1 << 16, &f), 0);
  cr_assert_eq(weft_stream_write_queue_size(&a.stream), q + (1 << 16));
  cr_assert_eq(weft_future_cancel(f), 0);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  cr_assert_eq(weft_stream_write_queue_size(&a.stream), q);
  weft_sendfile_req sf;
  cr_assert_eq(
      weft_stream_sendfile(&sf, &a.stream, fd, 0, 1 << 16, sforder_sendfile),
      0);
  cr_assert_eq(weft_close(&a.stream.base, sforder_close), 0);
  cr_assert_eq(nsforder, 0);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(nsforder, 2);
  cr_assert_eq(sforder[0], 2); /* -ECANCELED, before the close callback */
  cr_assert_eq(sforder[1], 9);
  weft_future_unref(f);
  close(fd);
  th_loop_finish(loop);
}

Test(stream, sendfile_bad_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_pipe a, b, idle;
  weft_pipe_init(loop, &a);
  weft_pipe_init(loop, &b);
  weft_pipe_init(loop, &idle);
  cr_assert_eq(weft_pipe_pair(loop, &a, &b), 0);
  int fd = pattern_file(10);
  weft_sendfile_req sf;
  weft_future *f = NULL;
  cr_assert_eq(weft_stream_sendfile(NULL, &a.stream, fd, 0, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_sendfile(&sf, NULL, fd, 0, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, fd, 0, 0, NULL), -EINVAL);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, fd, -1, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, fd, INT64_MAX, 2, NULL),
               -EINVAL);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, -1, 0, 1, NULL), -EBADF);
  int closed = dup(fd);
  close(closed);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, closed, 0, 1, NULL),
               -EBADF);
  cr_assert_eq(weft_stream_sendfile(&sf, &idle.stream, fd, 0, 1, NULL),
               -ENOTCONN);
  cr_assert_eq(weft_stream_sendfile_future(&a.stream, fd, 0, 1, NULL), -EINVAL);
  cr_assert_eq(weft_stream_sendfile_future(NULL, fd, 0, 1, &f), -EINVAL);
  cr_assert_eq(weft_stream_sendfile_future(&a.stream, -1, 0, 1, &f), -EBADF);
  cr_assert_null(f);
  /* a file shorter than asked: WEFT_EOF, after what it had */
  sfcount sc = {0, -1};
  sf.data = &sc;
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, fd, 4, 100, count_sendfile),
               0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(sc.calls, 1);
  cr_assert_eq(sc.status, WEFT_EOF, "%s", weft_err_name(sc.status));
  char got[16];
  size_t n = 0;
  drain_into(weft_stream_fileno(&b.stream), got, sizeof got, &n);
  cr_assert_eq(n, 6);
  /* after a shutdown: -EPIPE; closing: -EINVAL */
  weft_shutdown_req sh;
  cr_assert_eq(weft_stream_shutdown(&sh, &a.stream, NULL), 0);
  cr_assert_eq(weft_stream_sendfile(&sf, &a.stream, fd, 0, 1, NULL), -EPIPE);
  weft_close(&b.stream.base, NULL);
  cr_assert_eq(weft_stream_sendfile(&sf, &b.stream, fd, 0, 1, NULL), -EINVAL);
  /* the loop still works */
  th_loop_usable(loop);
  close(fd);
  th_loop_finish(loop);
}

typedef struct sfround {
  weft_pipe a, b; /* outlive the op: closed by the sweep */
  int fd;
} sfround;

static int sendfile_round(weft_loop *loop, void *arg) {
  sfround *r = arg;
  cr_assert_eq(weft_pipe_init(loop, &r->a), 0);
  cr_assert_eq(weft_pipe_init(loop, &r->b), 0);
  int err = weft_pipe_pair(loop, &r->a, &r->b);
  weft_future *f = NULL;
  if (err == 0)
    err = weft_stream_sendfile_future(&r->a.stream, r->fd, 0, 10, &f);
  if (err != 0) {
    cr_assert_null(f);
    return err;
  }
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  int64_t v = weft_future_value_i64(f);
  weft_future_unref(f);
  cr_assert_eq(v, 10);
  return 0;
}

Test(stream, sendfile_future_allocation_failures_are_clean, .timeout = 20) {
  sfround r;
  r.fd = pattern_file(10);
  th_alloc_sweep_run(
      &(th_sweep){.op = sendfile_round, .arg = &r, .max_rounds = 100});
  close(r.fd);
}
