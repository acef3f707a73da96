/* bench_net's clients, one per implementation; included by bench_net.c
 * only. Each runs one workload against its own server and fills v[0]. */

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

static void job_result(const job *j, double t, double *v) {
  if (j->w == W_PUMP1 || j->w == W_PUMP100)
    v[0] = (double)j->target * (double)j->conns / t / 1e6;
  else
    v[0] = (double)j->target / t;
}

/* ---- weft ----------------------------------------------------------------- */

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
  BENCH_CHECK(weft_stream_write(&c->w[0], &c->t.stream, &b, 1, wc_written) == 0, "write");
}

static void wc_pump(wc *c) {
  while (c->inflight < PUMP_DEPTH && c->sent < c->j->target) {
    weft_write_req *w = &c->w[c->sent / CHUNK % PUMP_DEPTH];
    w->data = c;
    size_t n = c->j->target - c->sent < CHUNK ? c->j->target - c->sent : CHUNK;
    weft_buf b = weft_buf_init(out_chunk, n);
    c->inflight++;
    c->sent += n;
    BENCH_CHECK(weft_stream_write(w, &c->t.stream, &b, 1, wc_written) == 0, "write");
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
    if (++j->done < j->target) wc_send(c, MSG, MSG_LEN);
    else weft_close(&s->base, NULL);
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

static void wc_connected(weft_connect_req *r, int st) {
  wc *c = r->data;
  BENCH_CHECK(st == 0, "weft connect: %s", weft_strerror(st));
  weft_tcp_nodelay(&c->t, true);
  weft_stream_read_start(&c->t.stream, wc_alloc, wc_read);
  if (c->j->w == W_PINGPONG || c->j->w == W_POUND) wc_send(c, MSG, 1 + (c->j->w == W_PINGPONG) * 4);
  else wc_pump(c);
}

static void wc_start(weft_loop *loop, wc *c, const struct sockaddr_in *a) {
  job *j = c->j;
  memset(c, 0, offsetof(wc, buf));
  c->j = j;
  j->started++;
  weft_tcp_init(loop, &c->t);
  c->cr.data = c;
  BENCH_CHECK(weft_tcp_connect(&c->cr, &c->t, (const struct sockaddr *)a, wc_connected) == 0,
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
    weft_udp_send(&wu_req[wu_next++ % 2], &u, &m, 1, (struct sockaddr *)&ua, NULL);
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

/* ---- libuv ---------------------------------------------------------------- */

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
  BENCH_CHECK(uv_write(&c->w[0], (uv_stream_t *)&c->t, &b, 1, uc_written) == 0, "write");
}

static void uc_pump(uc *c) {
  while (c->inflight < PUMP_DEPTH && c->sent < c->j->target) {
    uv_write_t *w = &c->w[c->sent / CHUNK % PUMP_DEPTH];
    w->data = c;
    size_t n = c->j->target - c->sent < CHUNK ? c->j->target - c->sent : CHUNK;
    uv_buf_t b = uv_buf_init(out_chunk, (unsigned)n);
    c->inflight++;
    c->sent += n;
    BENCH_CHECK(uv_write(w, (uv_stream_t *)&c->t, &b, 1, uc_written) == 0, "write");
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
    if (++j->done < j->target) uc_send(c, MSG, MSG_LEN);
    else uv_close((uv_handle_t *)s, NULL);
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
  if (c->j->w == W_PINGPONG || c->j->w == W_POUND) uc_send(c, MSG, c->j->w == W_PINGPONG ? MSG_LEN : 1);
  else uc_pump(c);
}

static void uc_start(uv_loop_t *loop, uc *c) {
  job *j = c->j;
  memset(c, 0, offsetof(uc, buf));
  c->j = j;
  j->started++;
  uv_tcp_init(loop, &c->t);
  c->cr.data = c;
  BENCH_CHECK(uv_tcp_connect(&c->cr, &c->t, (const struct sockaddr *)uc_addr, uc_connected) == 0,
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

/* ---- raw epoll -------------------------------------------------------------- */

typedef struct ec {
  int fd;
  size_t sent, got;
  bool connecting;
} ec;

static int ec_connect(int ep, ec *c, const struct sockaddr_in *a, job *j, size_t idx) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS)
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
      BENCH_CHECK(send(c->fd, MSG, j->w == W_PINGPONG ? MSG_LEN : 1, MSG_NOSIGNAL) > 0, "send");
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
    if (++j->done < j->target) send(c->fd, MSG, MSG_LEN, MSG_NOSIGNAL);
    else close(c->fd), (*live)--;
  } else if (j->w == W_POUND) {
    j->done++;
    close(c->fd);
    if (j->started < j->target) ec_connect(ep, c, a, j, idx);
    else (*live)--;
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
  for (size_t i = 0; i < width && live; i++) ec_connect(ep, &cs[i], &ta, &j, i);
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
