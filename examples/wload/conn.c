/* wload — one loop's connections, on that loop's thread only.
 *
 * A connection keeps up to `depth` requests in flight (a ring of their
 * latency origins) and two output buffers: the one being written (weft
 * does not copy) and the one requests are appended to meanwhile; each read
 * callback parses every whole response it got and sends the requests that
 * they make room for with one write. Callbacks, not fibers, because this
 * is the hot path: one read callback serves a whole pipelined batch.
 *
 * Closed loop: a response ends, a request is sent (latency from the send).
 * Open loop: request i of this loop is due at t0 + i / rate, whatever
 * happens; a timerfd (ns precision, watched with weft_poll) wakes the loop
 * at the next due time and due requests go to connections with room; a
 * request that finds none waits, and its latency still runs from its due
 * time. That is the coordinated-omission correction: a stalled server
 * cannot make the client stop asking, so the stall shows in the figures.
 *
 * A connection error ends every request in flight on it with that error's
 * kind, then the connection is closed and made again (after 10 ms when the
 * connect itself failed). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "wload.h"

enum { C_IDLE, C_RETRY, C_CONNECTING, C_OPEN, C_CLOSING };

#define RETRY_NS 10000000ull /* after a failed connect */
#define TICK_MS 10           /* timeouts and reconnects */

typedef struct wl_conn {
  weft_tcp tcp;
  weft_connect_req creq;
  weft_write_req wreq;
  wl_worker *w;
  int state;
  bool writing, in_ready;
  char *out[2];
  size_t outlen[2];
  int cur;           /* the buffer requests are appended to */
  uint64_t *origin;  /* latency origins of the requests in flight (ring) */
  const wl_req **rq; /* and their templates (HEAD? which reply type?) */
  unsigned first, count;
  uint64_t progress; /* last response, or first send when idle */
  uint64_t overdue;  /* progress + 1: a tick found it overdue (on_tick) */
  uint64_t retry_at;
  wl_parser ps;
  char *carry; /* an incomplete header block or line, kept for more */
  size_t carry_len, carry_cap;
  struct wl_conn *next_ready;
} wl_conn;

struct wl_worker {
  wl_run *run;
  const wl_config *cfg;
  unsigned index;
  weft_loop *loop;
  wl_conn *conns;
  unsigned nconns;
  weft_timer end_timer, tick_timer;
  weft_poll pacer;
  int tfd;
  double interval_ns; /* open loop: between due times */
  uint64_t issued, armed;
  wl_conn *ready; /* open loop: connections with room (lazily pruned) */
  uint64_t rng;
  uint64_t unsettled, unsettled_win; /* ends not yet added to the run's */
  uint64_t settle_ns;                /* counters (see settle) */
  unsigned next_req;
  size_t req_max;
  bool finished, stopped;
  wl_stats st;
};

uint64_t wl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void conn_connect(wl_conn *c);
static void conn_fail(wl_conn *c, int kind);
static void dispatch(wl_worker *w, uint64_t now);

static bool in_window(const wl_worker *w, uint64_t now) {
  return !w->finished && now >= w->run->win_start && now <= w->run->win_end;
}

/* The end of the run on this loop: no more figures, no more requests.
 * The last loop to finish stops the group. */
static void finish(wl_worker *w) {
  if (w->finished) return;
  w->finished = true;
  weft_timer_stop(&w->end_timer);
  unsigned loops = w->cfg->threads;
  if (atomic_fetch_add(&w->run->done, 1) + 1 == loops)
    weft_lgroup_stop(w->run->group, 0);
}

/* A request ended (response or error): this loop's counts. The run's
 * shared counters (the progress line's, -n's end) are added to once per
 * callback, by settle(), not once per request: a read that brings 16
 * pipelined responses costs two atomic adds, not 32. */
static void ended(wl_worker *w, uint64_t now, int err) {
  if (in_window(w, now)) {
    w->st.requests++;
    if (err >= 0) w->st.errors[err]++;
    w->st.last_end_ns = now;
    w->unsettled_win++;
  }
  w->unsettled++;
  w->settle_ns = now;
}

/* Adds the ends since the last call to the run's counters; the loop that
 * brings -n's count to N stops the group. Called at the end of every
 * callback that can end requests. */
static void settle(wl_worker *w) {
  if (w->unsettled_win) {
    atomic_fetch_add_explicit(&w->run->progress, w->unsettled_win,
                              memory_order_relaxed);
    w->unsettled_win = 0;
  }
  if (!w->unsettled) return;
  uint64_t k = w->unsettled;
  w->unsettled = 0;
  if (w->cfg->nreq && atomic_fetch_add(&w->run->ended, k) + k == w->cfg->nreq) {
    w->st.last_end_ns = w->settle_ns;
    weft_lgroup_stop(w->run->group, 0);
  }
}

/* Claims up to `want` of -n's requests (all of them without -n) with one
 * atomic add; what it returns must be sent at once, or another loop could
 * wait for requests nobody sends. */
static unsigned claim(wl_worker *w, unsigned want) {
  if (!w->cfg->nreq || want == 0) return want;
  uint64_t old = atomic_fetch_add(&w->run->claimed, want);
  if (old >= w->cfg->nreq) return 0;
  uint64_t left = w->cfg->nreq - old;
  return left < want ? (unsigned)left : want;
}

/* ---- sending ------------------------------------------------------------- */

static void on_write(weft_write_req *req, int status);

static void flush(wl_conn *c) {
  if (c->writing || c->outlen[c->cur] == 0 || c->state != C_OPEN) return;
  weft_buf b = weft_buf_init(c->out[c->cur], c->outlen[c->cur]);
  int rc = weft_stream_write(&c->wreq, &c->tcp.stream, &b, 1, on_write);
  if (rc < 0) {
    conn_fail(c, WL_E_WRITE);
    return;
  }
  c->writing = true;
  c->cur ^= 1;
}

static void on_write(weft_write_req *req, int status) {
  wl_conn *c = req->data;
  c->writing = false;
  c->outlen[c->cur ^ 1] = 0;
  if (c->state != C_OPEN) return;
  if (status < 0)
    conn_fail(c, WL_E_WRITE);
  else
    flush(c);
  settle(c->w);
}

/* Appends the next request (claimed already), latency measured from
 * `origin`. */
static void send_one(wl_conn *c, uint64_t origin) {
  wl_worker *w = c->w;
  const wl_req *r = &w->cfg->reqs[w->next_req];
  if (++w->next_req == w->cfg->nreqs) w->next_req = 0;
  c->outlen[c->cur] += wl_req_build(r, c->out[c->cur] + c->outlen[c->cur],
                                    &w->rng, w->cfg->keyspace);
  unsigned slot = c->first + c->count;
  if (slot >= w->cfg->depth) slot -= w->cfg->depth;
  c->origin[slot] = origin;
  c->rq[slot] = r;
  if (in_window(w, origin)) w->st.bytes_out += r->len;
  if (c->count++ == 0) {
    wl_parser_reset(&c->ps, r->head);
    c->progress = wl_now_ns();
  }
}

static void make_ready(wl_conn *c) {
  if (c->in_ready || c->state != C_OPEN || c->count >= c->w->cfg->depth) return;
  c->in_ready = true;
  c->next_ready = c->w->ready;
  c->w->ready = c;
}

/* Closed loop: fill the pipeline. Open loop: offer the room. */
static void refill(wl_conn *c, uint64_t now) {
  wl_worker *w = c->w;
  if (w->finished || c->state != C_OPEN) return;
  if (w->cfg->rate > 0) {
    make_ready(c);
    return;
  }
  for (unsigned k = claim(w, w->cfg->depth - c->count); k > 0; k--)
    send_one(c, now);
}

/* ---- open-loop pacing ---------------------------------------------------- */

static void arm(wl_worker *w, uint64_t due) {
  if (w->armed == due) return;
  struct itimerspec its = {0};
  its.it_value.tv_sec = (time_t)(due / 1000000000ull);
  its.it_value.tv_nsec = (long)(due % 1000000000ull);
  if (timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
    w->armed = due;
}

static void dispatch(wl_worker *w, uint64_t now) {
  while (!w->finished) {
    uint64_t due =
        w->run->t0_ns + (uint64_t)((double)w->issued * w->interval_ns);
    if (due > now) {
      arm(w, due);
      break;
    }
    wl_conn *c = w->ready;
    if (!c) break; /* all busy: the due requests wait (and age) */
    if (c->state != C_OPEN || c->count >= w->cfg->depth) {
      w->ready = c->next_ready;
      c->in_ready = false;
      flush(c);
      continue;
    }
    if (!claim(w, 1)) break;
    send_one(c, due);
    w->issued++;
  }
  if (w->ready) flush(w->ready);
}

static void on_pace(weft_poll *p, int status, int events, void *arg) {
  (void)p, (void)status, (void)events;
  wl_worker *w = arg;
  uint64_t n;
  if (read(w->tfd, &n, sizeof n) < 0 && errno != EAGAIN) return;
  w->armed = 0;
  dispatch(w, wl_now_ns());
  settle(w);
}

/* ---- receiving ----------------------------------------------------------- */

/* The response at the ring's head ended at `now`: classify and count it.
 * False when the connection is no longer usable. */
static bool response_done(wl_conn *c, uint64_t now) {
  wl_worker *w = c->w;
  uint64_t origin = c->origin[c->first];
  const wl_req *r = c->rq[c->first];
  if (++c->first == w->cfg->depth) c->first = 0;
  c->count--;
  c->progress = now;
  int err = -1;
  if (w->cfg->proto == WL_HTTP) {
    int cls = c->ps.status / 100;
    if (in_window(w, now) && cls >= 1 && cls <= 5) w->st.status[cls]++;
    if (c->ps.status >= 400) err = WL_E_STATUS;
  } else {
    if (c->ps.type == '-')
      err = WL_E_REPLY;
    else if (r->expect && c->ps.type != r->expect)
      err = WL_E_TYPE;
  }
  if (in_window(w, now)) {
    w->st.responses++;
    wl_hist_record(&w->st.hist, now > origin ? now - origin : 0);
  }
  ended(w, now, err);
  bool close = w->cfg->proto == WL_HTTP && c->ps.close;
  wl_parser_reset(&c->ps, c->count ? c->rq[c->first]->head : false);
  if (close) {
    conn_fail(c, WL_E_READ); /* the rest will not be answered */
    return false;
  }
  return true;
}

/* Parses p[0..n): every whole response, then keeps the tail. */
static void parse(wl_conn *c, const char *p, size_t n, uint64_t now) {
  bool http = c->w->cfg->proto == WL_HTTP;
  size_t off = 0;
  while (off < n) {
    if (c->count == 0) { /* bytes nobody asked for: an error of their own */
      if (in_window(c->w, now)) c->w->st.errors[WL_E_PARSE]++;
      conn_fail(c, WL_E_PARSE);
      return;
    }
    int ev;
    off += http ? wl_http_feed(&c->ps, p + off, n - off, &ev)
                : wl_resp_feed(&c->ps, p + off, n - off, &ev);
    if (ev == WL_P_ERROR) {
      conn_fail(c, WL_E_PARSE);
      return;
    }
    if (ev == WL_P_MORE) break;
    if (!response_done(c, now)) return;
  }
  size_t rest = n - off;
  if (rest == 0) {
    c->carry_len = 0;
    return;
  }
  if (p == c->carry) {
    memmove(c->carry, p + off, rest);
  } else {
    if (rest > c->carry_cap) {
      char *nc = realloc(c->carry, rest * 2);
      if (!nc) {
        conn_fail(c, WL_E_READ);
        return;
      }
      c->carry = nc, c->carry_cap = rest * 2;
    }
    memcpy(c->carry, p + off, rest);
  }
  c->carry_len = rest;
}

static void read_some(wl_conn *c, ssize_t nread, const weft_buf *buf) {
  wl_worker *w = c->w;
  uint64_t now = wl_now_ns();
  if (nread < 0) {
    if (nread == WEFT_EOF && c->count > 0 && c->w->cfg->proto == WL_HTTP &&
        wl_http_eof_ends(&c->ps)) {
      response_done(c, now); /* a body that runs to the close */
      return;
    }
    conn_fail(c, WL_E_READ); /* an idle close fails nothing */
    return;
  }
  if (in_window(w, now)) w->st.bytes_in += (uint64_t)nread;
  if (c->carry_len == 0) {
    parse(c, buf->base, (size_t)nread, now);
  } else {
    size_t need = c->carry_len + (size_t)nread;
    if (need > c->carry_cap) {
      char *nc = realloc(c->carry, need * 2);
      if (!nc) {
        conn_fail(c, WL_E_READ);
        return;
      }
      c->carry = nc, c->carry_cap = need * 2;
    }
    memcpy(c->carry + c->carry_len, buf->base, (size_t)nread);
    parse(c, c->carry, need, now);
  }
  if (c->state != C_OPEN) return;
  refill(c, now);
  if (w->cfg->rate > 0)
    dispatch(w, now);
  else
    flush(c);
}

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  wl_conn *c = (wl_conn *)s;
  if (nread == 0) return;
  read_some(c, nread, buf);
  settle(c->w);
}

/* ---- connection life ----------------------------------------------------- */

static void on_closed(weft_handle *h) {
  wl_conn *c = (wl_conn *)h;
  wl_worker *w = c->w;
  c->state = C_IDLE;
  c->writing = false;
  c->outlen[0] = c->outlen[1] = 0;
  c->carry_len = 0;
  if (!w->finished && !w->stopped) conn_connect(c);
}

static void conn_fail(wl_conn *c, int kind) {
  wl_worker *w = c->w;
  uint64_t now = wl_now_ns();
  while (c->count > 0) {
    c->count--;
    ended(w, now, kind);
  }
  if (c->state == C_CLOSING || c->state == C_IDLE) return;
  c->state = C_CLOSING;
  weft_close(&c->tcp.stream.base, on_closed);
}

static void on_connect(weft_connect_req *req, int status) {
  wl_conn *c = req->data;
  wl_worker *w = c->w;
  if (status == -ECANCELED || c->state != C_CONNECTING) return;
  if (status < 0) {
    w->st.errors[WL_E_CONNECT]++;
    c->state = C_RETRY; /* the handle is back to its initial state */
    c->retry_at = wl_now_ns() + RETRY_NS;
    return;
  }
  c->state = C_OPEN;
  weft_tcp_nodelay(&c->tcp, true);
  uint64_t now = wl_now_ns();
  if (weft_stream_read_start(&c->tcp.stream, NULL, on_read) < 0)
    conn_fail(c, WL_E_READ);
  else
    refill(c, now);
  if (w->cfg->rate > 0)
    dispatch(w, now);
  else
    flush(c);
  settle(w);
}

static void conn_connect(wl_conn *c) {
  wl_worker *w = c->w;
  if (c->state == C_IDLE) {
    weft_tcp_init(w->loop, &c->tcp);
    c->tcp.stream.base.data = c;
  }
  c->creq.data = c;
  c->wreq.data = c;
  c->count = 0;
  c->state = C_CONNECTING;
  int rc = weft_tcp_connect(&c->creq, &c->tcp,
                            (const struct sockaddr *)&w->cfg->addr, on_connect);
  if (rc < 0) {
    w->st.errors[WL_E_CONNECT]++;
    c->state = C_RETRY;
    c->retry_at = wl_now_ns() + RETRY_NS;
  }
}

/* Every 10 ms: requests without progress for --timeout, and reconnects.
 * A connection times out when two ticks in a row find it overdue with the
 * same progress: after this process was not scheduled for a while, the
 * tick can run before the reads of the same loop turn (libev runs a turn's
 * timers first), and answers already in the socket must not count as
 * timeouts. */
static void on_tick(weft_timer *t) {
  wl_worker *w = t->base.data;
  uint64_t now = wl_now_ns();
  for (unsigned i = 0; i < w->nconns && !w->finished; i++) {
    wl_conn *c = &w->conns[i];
    if (c->state == C_OPEN && c->count > 0 &&
        now - c->progress > w->cfg->timeout_ns) {
      if (c->overdue == c->progress + 1)
        conn_fail(c, WL_E_TIMEOUT);
      else
        c->overdue = c->progress + 1;
    } else if (c->state == C_RETRY && now >= c->retry_at)
      conn_connect(c);
  }
  settle(w);
}

static void on_end(weft_timer *t) { finish(t->base.data); }

/* ---- the loop group's callbacks ------------------------------------------ */

static int worker_alloc(wl_worker *w) {
  const wl_config *cfg = w->cfg;
  for (unsigned i = 0; i < cfg->nreqs; i++)
    if (cfg->reqs[i].len > w->req_max) w->req_max = cfg->reqs[i].len;
  if (!(w->conns = calloc(w->nconns ? w->nconns : 1, sizeof *w->conns)))
    return -ENOMEM;
  for (unsigned i = 0; i < w->nconns; i++) {
    wl_conn *c = &w->conns[i];
    c->w = w;
    c->out[0] = malloc(cfg->depth * w->req_max);
    c->out[1] = malloc(cfg->depth * w->req_max);
    c->origin = calloc(cfg->depth, sizeof *c->origin);
    c->rq = calloc(cfg->depth, sizeof *c->rq);
    if (!c->out[0] || !c->out[1] || !c->origin || !c->rq) return -ENOMEM;
  }
  return 0;
}

int wl_worker_init(weft_lgroup *g, unsigned index, weft_loop *loop, void *arg) {
  (void)g;
  wl_run *run = arg;
  const wl_config *cfg = run->cfg;
  wl_worker *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  run->workers[index] = w;
  w->run = run, w->cfg = cfg, w->index = index, w->loop = loop;
  w->tfd = -1;
  w->nconns = cfg->conns / cfg->threads + (index < cfg->conns % cfg->threads);
  w->rng = 0x9E3779B97F4A7C15ull * (index + 1);
  wl_hist_init(&w->st.hist);
  int rc = worker_alloc(w);
  if (rc < 0) return rc;
  weft_timer_init(loop, &w->end_timer);
  weft_timer_init(loop, &w->tick_timer);
  w->end_timer.base.data = w->tick_timer.base.data = w;
  uint64_t now = wl_now_ns();
  uint64_t left = run->deadline > now ? run->deadline - now : 0;
  if ((rc = weft_timer_start(&w->end_timer, on_end, (left + 999999) / 1000000,
                             0)) < 0 ||
      (rc = weft_timer_start(&w->tick_timer, on_tick, TICK_MS, TICK_MS)) < 0)
    return rc;
  if (cfg->rate > 0) {
    /* This thread's timer slack (50 us by default) would let every wake-up
     * run late, and latency counts from the due time: ask for 1 ns. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    double share = cfg->rate * w->nconns / cfg->conns;
    w->interval_ns = share > 0 ? 1e9 / share : 1e18;
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->tfd < 0) return -errno;
    if ((rc = weft_poll_init(loop, &w->pacer, w->tfd)) < 0 ||
        (rc = weft_poll_start(&w->pacer, WEFT_POLL_READABLE, on_pace, w)) < 0)
      return rc;
  }
  if (w->nconns == 0) finish(w);
  for (unsigned i = 0; i < w->nconns; i++)
    conn_connect(&w->conns[i]);
  return 0;
}

static void on_pacer_closed(weft_handle *h) {
  wl_worker *w = (wl_worker *)((char *)h - offsetof(wl_worker, pacer));
  close(w->tfd);
  w->tfd = -1;
}

void wl_worker_stop(weft_lgroup *g, unsigned index, weft_loop *loop,
                    void *arg) {
  (void)g, (void)loop;
  wl_run *run = arg;
  wl_worker *w = run->workers[index];
  if (!w) return;
  w->finished = w->stopped = true;
  for (unsigned i = 0; i < w->nconns; i++) {
    wl_conn *c = &w->conns[i];
    if (c->state == C_IDLE || c->state == C_CLOSING) continue;
    c->state = C_CLOSING;
    weft_close(&c->tcp.stream.base, on_closed);
  }
  weft_close(&w->end_timer.base, NULL);
  weft_close(&w->tick_timer.base, NULL);
  if (w->tfd >= 0) weft_close(&w->pacer.base, on_pacer_closed);
}

void wl_worker_free(wl_worker *w, wl_stats *st) {
  if (!w) return;
  if (st) *st = w->st;
  for (unsigned i = 0; i < w->nconns; i++) {
    wl_conn *c = &w->conns[i];
    free(c->out[0]), free(c->out[1]), free(c->origin), free(c->rq);
    free(c->carry);
  }
  if (w->tfd >= 0) close(w->tfd);
  free(w->conns);
  free(w);
}
