/* kvd — an in-memory key-value server speaking the Redis protocol (RESP2
 * and inline commands, pipelining) on weft's TCP streams and timers.
 *
 *   kvd --port P [--loops N] [--bind ADDR] [--proto-max-bulk-len BYTES]
 *
 * Prints "listening on PORT" once it accepts connections (--port 0 picks a
 * free port), and exits cleanly on SIGTERM or SIGINT. With --loops N, N
 * loops on N threads listen on the same port (SO_REUSEPORT) and share one
 * store, sharded by key hash with a lock per shard (see kvd/kvd.h).
 *
 * Each connection reads into its own buffer (bounded: KVD_MAX_QUERY bytes
 * of one request), runs every complete command in it, and writes all the
 * replies of that batch with one write. A malformed or oversized request
 * gets Redis's protocol error, then the connection closes; the server lives
 * on. Keys with a TTL expire lazily on access and actively on a weft timer
 * per loop, armed at the earliest deadline of the shards that loop owns. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvd/kvd.h"

#define OUT_HIGH (1u << 20) /* pause reading while more replies wait */
#define READ_MIN (16u * 1024u)
#define EXPIRE_BUDGET 200 /* keys deleted per shard per expiry run */
#define LINGER_MS 1000    /* a closing client's time to read its last reply */

typedef struct kvd_loop {
  struct kvd_server *srv;
  size_t index;
  weft_loop *loop;
  weft_tcp listener;
  weft_timer expire_timer;
  weft_signal sigterm, sigint;
  pthread_t thread;
  _Atomic int64_t armed; /* deadline the timer is set for; 0 while scanning */
  atomic_bool rearm_posted; /* a rearm from another loop is queued */
  bool closing;
} kvd_loop;

typedef struct kvd_server {
  kvd_store store;
  kvd_loop *loops;
  size_t nloops;
  atomic_bool stopping;
} kvd_server;

struct kvd_conn {
  weft_tcp tcp;
  kvd_loop *kl;
  char *ibuf; /* input: [ipos, ilen) not yet parsed */
  size_t ilen, icap, ipos;
  char *obuf; /* replies being gathered */
  size_t olen, ocap;
  char *wbuf; /* replies being written */
  size_t wcap;
  kvd_str *argv;
  size_t argcap;
  weft_write_req wreq;
  weft_shutdown_req sreq;
  weft_timer linger; /* set up once closing starts; bounds the wait for EOF */
  int open_handles;  /* the stream, and the linger timer once set up */
  bool writing, close_after, paused, closing, failed, lingering;
};

static _Thread_local kvd_loop *cur_loop;

static void conn_close(kvd_conn *c);
static void conn_flush(kvd_conn *c);
static void conn_process(kvd_conn *c);

/* ---- replies ------------------------------------------------------------ */

kvd_store *kvd_conn_store(kvd_conn *c) { return &c->kl->srv->store; }

static bool out_reserve(kvd_conn *c, size_t n) {
  if (c->olen + n <= c->ocap) return true;
  if (c->failed) return false;
  size_t cap = c->ocap ? c->ocap : 16384;
  while (cap < c->olen + n)
    cap *= 2;
  char *p = realloc(c->obuf, cap);
  if (!p) {
    c->failed = true; /* the reply stream is broken: drop the client */
    return false;
  }
  c->obuf = p;
  c->ocap = cap;
  return true;
}

void kvd_reply_raw(kvd_conn *c, const char *p, size_t n) {
  if (!out_reserve(c, n)) return;
  memcpy(c->obuf + c->olen, p, n);
  c->olen += n;
}

/* "<prefix><v>\r\n" without printf: this is the hot path of every reply. */
static void reply_num(kvd_conn *c, char prefix, long long v) {
  char buf[32], *e = buf + sizeof buf, *p = e;
  unsigned long long u =
      v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
  *--p = '\n';
  *--p = '\r';
  do
    *--p = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0) *--p = '-';
  *--p = prefix;
  kvd_reply_raw(c, p, (size_t)(e - p));
}

void kvd_reply_status(kvd_conn *c, const char *s) {
  kvd_reply_raw(c, "+", 1);
  kvd_reply_raw(c, s, strlen(s));
  kvd_reply_raw(c, "\r\n", 2);
}

void kvd_reply_error(kvd_conn *c, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + 1, sizeof buf - 3, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof buf - 4) n = (int)(sizeof buf - 4);
  buf[0] = '-';
  for (int i = 1; i <= n; i++) /* an error is one line: no CR/LF inside */
    if (buf[i] == '\r' || buf[i] == '\n') buf[i] = ' ';
  memcpy(buf + 1 + n, "\r\n", 2);
  kvd_reply_raw(c, buf, (size_t)n + 3);
}

void kvd_reply_int(kvd_conn *c, long long v) { reply_num(c, ':', v); }

void kvd_reply_bulk(kvd_conn *c, const char *p, size_t n) {
  reply_num(c, '$', (long long)n);
  kvd_reply_raw(c, p, n);
  kvd_reply_raw(c, "\r\n", 2);
}

void kvd_reply_nil(kvd_conn *c) { kvd_reply_raw(c, "$-1\r\n", 5); }

void kvd_reply_array(kvd_conn *c, size_t n) { reply_num(c, '*', (long long)n); }

void kvd_conn_close_after_reply(kvd_conn *c) { c->close_after = true; }

static void protocol_error(kvd_conn *c, const char *what) {
  kvd_reply_error(c, "ERR Protocol error: %s", what);
  c->close_after = true;
}

/* ---- the expiry timers -------------------------------------------------- */

static void on_expire_timer(weft_timer *t);

/* Arms the loop's timer for `next` (INT64_MAX: nothing to expire). If the
 * timer cannot start, keys still expire lazily on access, and the next
 * earlier deadline tries again. */
static void expire_arm(kvd_loop *kl, int64_t next, int64_t now) {
  if (next == INT64_MAX || kl->closing) {
    atomic_store(&kl->armed, INT64_MAX);
    weft_timer_stop(&kl->expire_timer);
    return;
  }
  uint64_t delay = next > now ? (uint64_t)(next - now) : 0;
  bool ok = weft_timer_start(&kl->expire_timer, on_expire_timer, delay, 0) == 0;
  atomic_store(&kl->armed, ok ? next : INT64_MAX);
}

/* Deletes the due keys of the shards this loop owns (shard i belongs to
 * loop i % N), a bounded number per shard so clients are not starved,
 * and rearms at the earliest remaining deadline. `armed` reads 0 during
 * the scan so that any loop adding an earlier deadline meanwhile asks
 * for another run (see kvd_expiry_moved). */
static void expire_run(kvd_loop *kl) {
  kvd_server *srv = kl->srv;
  atomic_store(&kl->armed, 0);
  int64_t now = kvd_clock_ms(), next = INT64_MAX;
  for (size_t i = kl->index; i < KVD_SHARDS; i += srv->nloops) {
    kvd_shard *sh = &srv->store.shards[i];
    kvd_shard_lock(&srv->store, sh);
    int64_t n = kvd_expire_due(sh, now, EXPIRE_BUDGET);
    kvd_shard_unlock(&srv->store, sh);
    if (n < next) next = n;
  }
  expire_arm(kl, next, now);
}

static void on_expire_timer(weft_timer *t) { expire_run(t->base.data); }

static void on_rearm_post(void *arg) {
  kvd_loop *kl = arg;
  atomic_store(&kl->rearm_posted, false);
  if (!kl->closing) expire_run(kl);
}

void kvd_expiry_moved(kvd_store *st, kvd_shard *sh, int64_t at) {
  kvd_server *srv = st->server;
  kvd_loop *owner = &srv->loops[kvd_shard_index(st, sh) % srv->nloops];
  if (at >= atomic_load(&owner->armed)) return;
  if (owner == cur_loop) {
    expire_arm(owner, at, kvd_clock_ms());
  } else if (!atomic_load(&srv->stopping) &&
             !atomic_exchange(&owner->rearm_posted, true)) {
    if (weft_call_soon_threadsafe(owner->loop, on_rearm_post, owner) < 0)
      atomic_store(&owner->rearm_posted, false); /* lazy expiry still holds */
  }
}

/* ---- parsing ------------------------------------------------------------ */

static bool argv_reserve(kvd_conn *c, size_t n) {
  if (n <= c->argcap) return true;
  size_t cap = c->argcap ? c->argcap : 16;
  while (cap < n)
    cap *= 2;
  kvd_str *a = realloc(c->argv, cap * sizeof *a);
  if (!a) return false;
  c->argv = a;
  c->argcap = cap;
  return true;
}

/* Reads the decimal number of a "*N\r\n" or "$N\r\n" line at `p`. Returns
 * 1 and moves *p past the line, 0 if the line is incomplete, -1 if it is
 * not a number or too long. */
static int read_count(kvd_conn *c, size_t *p, long long *out) {
  char *start = c->ibuf + *p + 1, *end = c->ibuf + c->ilen;
  char *cr = memchr(start, '\r', (size_t)(end - start));
  if (!cr || cr + 1 >= end)
    return (size_t)(end - start) > KVD_MAX_INLINE ? -1 : 0;
  long long v = 0;
  bool neg = *start == '-', any = false;
  for (char *q = start + neg; q < cr; q++) {
    if (*q < '0' || *q > '9' || v > 1000000000000LL) return -1;
    v = v * 10 + (*q - '0');
    any = true;
  }
  if (!any) return -1;
  *out = neg ? -v : v;
  *p = (size_t)(cr + 2 - c->ibuf);
  return 1;
}

/* One "*N" request. Returns 1 with the arguments in c->argv (*argc), 0 if
 * incomplete, -1 after a protocol error reply. */
static int parse_multibulk(kvd_conn *c, size_t *argc) {
  size_t p = c->ipos;
  long long n, len;
  int r = read_count(c, &p, &n);
  if (r == 0) return 0;
  if (r < 0 || n > (long long)KVD_MAX_ARGS) {
    protocol_error(c, "invalid multibulk length");
    return -1;
  }
  if (n > 0 && !argv_reserve(c, (size_t)n)) {
    c->failed = true;
    return -1;
  }
  for (long long i = 0; i < n; i++) {
    if (p >= c->ilen) return 0;
    if (c->ibuf[p] != '$') {
      char what[64];
      snprintf(what, sizeof what, "expected '$', got '%c'", c->ibuf[p]);
      protocol_error(c, what);
      return -1;
    }
    if ((r = read_count(c, &p, &len)) == 0) return 0;
    if (r < 0 || len < 0 || len > (long long)KVD_MAX_BULK) {
      protocol_error(c, "invalid bulk length");
      return -1;
    }
    if (c->ilen - p < (size_t)len + 2) return 0;
    c->argv[i] = (kvd_str){c->ibuf + p, (size_t)len};
    p += (size_t)len + 2;
  }
  *argc = n > 0 ? (size_t)n : 0;
  c->ipos = p;
  return 1;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* The escape after a backslash inside double quotes; advances *q. */
static char unescape(char **q, const char *end) {
  char ch = **q;
  if (ch == 'x' && *q + 2 < end && hexval((*q)[1]) >= 0 &&
      hexval((*q)[2]) >= 0) {
    ch = (char)(hexval((*q)[1]) * 16 + hexval((*q)[2]));
    *q += 2;
    return ch;
  }
  switch (ch) {
  case 'n':
    return '\n';
  case 'r':
    return '\r';
  case 't':
    return '\t';
  case 'b':
    return '\b';
  case 'a':
    return '\a';
  default:
    return ch;
  }
}

/* One inline token at *q, unquoted in place (the result is never longer
 * than the input), as Redis's sdssplitargs does. Returns its end, or NULL
 * for unbalanced quotes. */
static char *inline_token(char **q, char *end) {
  char *w = *q, quote = 0;
  for (char *r = *q; r < end; r++) {
    if (!quote && (*r == ' ' || *r == '\t')) {
      *q = r;
      return w;
    }
    if (!quote && (*r == '"' || *r == '\'')) {
      quote = *r;
    } else if (quote && *r == quote) {
      if (r + 1 < end && r[1] != ' ' && r[1] != '\t') return NULL;
      quote = 0;
    } else if (quote && *r == '\\' && r + 1 < end &&
               (quote == '"' || r[1] == '\'')) {
      r++;
      *w++ = quote == '"' ? unescape(&r, end) : *r;
    } else {
      *w++ = *r;
    }
  }
  *q = end;
  return quote ? NULL : w;
}

/* One inline command line (telnet-style clients, PING_INLINE). */
static int parse_inline(kvd_conn *c, size_t *argc) {
  char *start = c->ibuf + c->ipos, *end = c->ibuf + c->ilen;
  char *nl = memchr(start, '\n', (size_t)(end - start));
  if (!nl) {
    if ((size_t)(end - start) <= KVD_MAX_INLINE) return 0;
    protocol_error(c, "too big inline request");
    return -1;
  }
  char *le = nl > start && nl[-1] == '\r' ? nl - 1 : nl, *q = start;
  size_t n = 0;
  for (;;) {
    while (q < le && (*q == ' ' || *q == '\t'))
      q++;
    if (q == le) break;
    char *tok = q, *tend = inline_token(&q, le);
    if (!tend) {
      protocol_error(c, "unbalanced quotes in request");
      return -1;
    }
    if (!argv_reserve(c, n + 1)) {
      c->failed = true;
      return -1;
    }
    c->argv[n++] = (kvd_str){tok, (size_t)(tend - tok)};
  }
  *argc = n;
  c->ipos = (size_t)(nl + 1 - c->ibuf);
  return 1;
}

/* ---- connections -------------------------------------------------------- */

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf);
static void on_alloc(weft_stream *s, size_t suggested, weft_buf *buf);

/* Runs every complete command in the input buffer, unless too many
 * replies are already waiting (then reading pauses until they drain). */
static void conn_process(kvd_conn *c) {
  while (!c->close_after && !c->failed && c->ipos < c->ilen) {
    if (c->olen >= OUT_HIGH && c->writing) {
      c->paused = true;
      weft_stream_read_stop(&c->tcp.stream);
      break;
    }
    size_t argc = 0;
    int r = c->ibuf[c->ipos] == '*' ? parse_multibulk(c, &argc)
                                    : parse_inline(c, &argc);
    if (r <= 0) break;
    if (argc > 0) kvd_dispatch(c, c->argv, argc);
  }
  if (c->ipos > 0) { /* keep only the unparsed tail */
    memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
    c->ilen -= c->ipos;
    c->ipos = 0;
  }
  if (!c->close_after && c->ilen >= KVD_MAX_QUERY)
    protocol_error(c, "request too large");
  if (c->failed) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

static void on_conn_closed(weft_handle *h) {
  kvd_conn *c = h->data;
  if (--c->open_handles > 0) return;
  free(c->ibuf);
  free(c->obuf);
  free(c->wbuf);
  free(c->argv);
  free(c);
}

static void conn_close(kvd_conn *c) {
  if (c->closing) return;
  c->closing = true;
  c->open_handles = 1 + c->lingering;
  weft_close(&c->tcp.stream.base, on_conn_closed);
  if (c->lingering) weft_close(&c->linger.base, on_conn_closed);
}

static void on_shutdown(weft_shutdown_req *req, int status) {
  (void)req, (void)status; /* reading goes on until the client's EOF */
}

static void on_linger(weft_timer *t) { conn_close(t->base.data); }

/* Shuts the write side after the last reply, and closes the connection
 * for good at the client's EOF or after LINGER_MS, whichever is first. */
static void conn_linger(kvd_conn *c) {
  if (weft_stream_shutdown(&c->sreq, &c->tcp.stream, on_shutdown) < 0) {
    conn_close(c);
    return;
  }
  weft_timer_init(c->kl->loop, &c->linger);
  c->linger.base.data = c;
  c->lingering = true;
  if (weft_timer_start(&c->linger, on_linger, LINGER_MS, 0) < 0) conn_close(c);
}

static void on_write(weft_write_req *req, int status);

/* Writes the gathered replies if no write is in flight; the two buffers
 * swap so replies keep gathering while the kernel takes the others. After
 * the last reply to a closing client, only the write side shuts: closing
 * with unread input would send RST, and the client could lose the reply. */
static void conn_flush(kvd_conn *c) {
  if (c->writing || c->closing) return;
  if (c->olen == 0) {
    if (c->close_after && !c->lingering) conn_linger(c);
    return;
  }
  char *b = c->wbuf;
  size_t cap = c->wcap;
  c->wbuf = c->obuf;
  c->wcap = c->ocap;
  c->obuf = b;
  c->ocap = cap;
  weft_buf buf = weft_buf_init(c->wbuf, c->olen);
  c->olen = 0;
  if (weft_stream_write(&c->wreq, &c->tcp.stream, &buf, 1, on_write) < 0) {
    conn_close(c);
    return;
  }
  c->writing = true;
}

static void on_write(weft_write_req *req, int status) {
  kvd_conn *c = req->data;
  c->writing = false;
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->paused) {
    c->paused = false;
    conn_process(c); /* the commands left waiting in the input buffer */
    if (!c->paused && !c->closing &&
        weft_stream_read_start(&c->tcp.stream, on_alloc, on_read) < 0)
      conn_close(c);
    return;
  }
  conn_flush(c);
}

/* Reads straight into the connection's input buffer, growing it up to
 * the request bound. */
static void on_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  kvd_conn *c = s->base.data;
  (void)suggested;
  if (c->close_after) c->ilen = 0; /* discarding input until EOF */
  if (c->icap - c->ilen < READ_MIN && c->icap < KVD_MAX_QUERY + READ_MIN) {
    size_t cap = c->icap ? c->icap * 2 : READ_MIN * 2;
    char *p = realloc(c->ibuf, cap);
    if (p) {
      c->ibuf = p;
      c->icap = cap;
    }
  }
  *buf = weft_buf_init(c->ibuf + c->ilen, c->icap - c->ilen);
}

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  kvd_conn *c = s->base.data;
  (void)buf;
  if (nread < 0) {
    conn_close(c); /* EOF, reset, or no buffer memory */
  } else if (nread > 0 && !c->close_after) {
    c->ilen += (size_t)nread;
    conn_process(c);
  }
}

static void on_connection(weft_stream *server, int status) {
  kvd_loop *kl = server->base.data;
  if (status < 0) return; /* transient accept error: keep listening */
  kvd_conn *c = calloc(1, sizeof *c);
  if (!c) return; /* the client waits in the backlog for the next try */
  c->kl = kl;
  c->wreq.data = c;
  c->sreq.data = c;
  weft_tcp_init(kl->loop, &c->tcp);
  c->tcp.stream.base.data = c;
  if (weft_stream_accept(server, &c->tcp.stream) < 0) {
    conn_close(c);
    return;
  }
  weft_tcp_nodelay(&c->tcp, true);
  if (weft_stream_read_start(&c->tcp.stream, on_alloc, on_read) < 0)
    conn_close(c);
}

/* ---- loops, threads and shutdown ---------------------------------------- */

static void close_one(weft_handle *h, void *arg) {
  kvd_loop *kl = arg;
  if (weft_is_closing(h)) return;
  bool conn_part = h != &kl->listener.stream.base &&
                   h != &kl->expire_timer.base &&
                   (weft_handle_get_type(h) == WEFT_HANDLE_TCP ||
                    weft_handle_get_type(h) == WEFT_HANDLE_TIMER);
  if (conn_part)
    conn_close(h->data); /* the stream, and its linger timer with it */
  else
    weft_close(h, NULL);
}

/* Closes everything on the loop; it then runs out of work and returns. */
static void loop_shutdown(kvd_loop *kl) {
  kl->closing = true;
  weft_walk(kl->loop, close_one, kl);
}

static void stop_all(kvd_server *srv) {
  atomic_store(&srv->stopping, true);
  for (size_t i = 0; i < srv->nloops; i++)
    weft_loop_stop(srv->loops[i].loop);
}

static void on_signal(weft_signal *s, int signum) {
  (void)signum;
  stop_all(s->base.data);
}

/* Runs a loop until stop_all(), then lets it finish closing everything. */
static void loop_run(kvd_loop *kl) {
  cur_loop = kl;
  weft_loop_run(kl->loop, WEFT_RUN_DEFAULT);
  loop_shutdown(kl);
  weft_loop_run(kl->loop, WEFT_RUN_DEFAULT);
}

static void *thread_main(void *arg) {
  loop_run(arg);
  return NULL;
}

/* Creates loop i, its expiry timer and its listener on `addr`. */
static int loop_setup(kvd_server *srv, size_t i,
                      struct sockaddr_storage *addr) {
  kvd_loop *kl = &srv->loops[i];
  kl->srv = srv;
  kl->index = i;
  atomic_init(&kl->armed, INT64_MAX);
  atomic_init(&kl->rearm_posted, false);
  int r = weft_loop_new(&kl->loop, NULL);
  if (r < 0) return r;
  weft_timer_init(kl->loop, &kl->expire_timer);
  kl->expire_timer.base.data = kl;
  weft_tcp_init(kl->loop, &kl->listener);
  kl->listener.stream.base.data = kl;
  unsigned flags = srv->nloops > 1 ? WEFT_TCP_REUSEPORT : 0;
  if ((r = weft_tcp_bind(&kl->listener, (struct sockaddr *)addr, flags)) < 0)
    return r;
  if ((r = weft_tcp_listen(&kl->listener, 511, on_connection)) < 0) return r;
  if (i == 0) { /* the first bind picked the port the others share */
    socklen_t len = sizeof *addr;
    r = weft_tcp_getsockname(&kl->listener, (struct sockaddr *)addr, &len);
  }
  return r;
}

static int signals_setup(kvd_server *srv) {
  kvd_loop *kl = &srv->loops[0];
  weft_signal_init(kl->loop, &kl->sigterm);
  weft_signal_init(kl->loop, &kl->sigint);
  kl->sigterm.base.data = kl->sigint.base.data = srv;
  int r = weft_signal_start(&kl->sigterm, on_signal, SIGTERM);
  return r < 0 ? r : weft_signal_start(&kl->sigint, on_signal, SIGINT);
}

static int parse_addr(const char *host, unsigned port,
                      struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (weft_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 0;
  return weft_ip6_addr(host, port, (struct sockaddr_in6 *)out);
}

static int usage(void) {
  fprintf(stderr, "usage: kvd --port P [--loops N] [--bind ADDR] [--proto-max-bulk-len BYTES]\n");
  return 2;
}

/* Frees what loop_setup() made, whether or not the loop ever ran. */
static void loop_teardown(kvd_loop *kl) {
  if (!kl->loop) return;
  if (!kl->closing) loop_shutdown(kl);
  while (weft_loop_free(kl->loop) == -EBUSY)
    weft_loop_run(kl->loop, WEFT_RUN_NOWAIT);
}

static int serve(kvd_server *srv, struct sockaddr_storage *addr) {
  int r = 0;
  size_t started = 0;
  for (size_t i = 0; i < srv->nloops && r == 0; i++)
    r = loop_setup(srv, i, addr);
  if (r == 0) r = signals_setup(srv);
  if (r == 0) {
    printf("listening on %d\n", weft_sockaddr_port((struct sockaddr *)addr));
    fflush(stdout);
    for (started = 1; started < srv->nloops; started++)
      if (pthread_create(&srv->loops[started].thread, NULL, thread_main,
                         &srv->loops[started]) != 0)
        break;
    if (started == srv->nloops) loop_run(&srv->loops[0]);
    stop_all(srv);
    for (size_t i = 1; i < started; i++)
      pthread_join(srv->loops[i].thread, NULL);
    if (started < srv->nloops) r = -EAGAIN;
  }
  for (size_t i = 0; i < srv->nloops; i++)
    loop_teardown(&srv->loops[i]);
  return r;
}

int main(int argc, char **argv) {
  long port = -1, loops = 1;
  const char *host = "127.0.0.1";
  for (int i = 1; i + 1 < argc; i += 2) {
    char *end;
    long v = strtol(argv[i + 1], &end, 10);
    if (strcmp(argv[i], "--bind") == 0)
      host = argv[i + 1];
    else if (*end || end == argv[i + 1])
      return usage();
    else if (strcmp(argv[i], "--port") == 0)
      port = v;
    else if (strcmp(argv[i], "--loops") == 0)
      loops = v;
    else if (strcmp(argv[i], "--proto-max-bulk-len") == 0 &&
             v >= (long)KVD_MAX_BULK_MIN)
      kvd_max_bulk = (size_t)v; /* like CONFIG SET: at least 1 MiB */
    else
      return usage();
  }
  if (argc % 2 == 0 || port < 0 || port > 65535 || loops < 1 || loops > 64)
    return usage();
  static kvd_server srv;
  struct sockaddr_storage addr;
  if (parse_addr(host, (unsigned)port, &addr) < 0) return usage();
  srv.nloops = (size_t)loops;
  srv.loops = calloc(srv.nloops, sizeof *srv.loops);
  if (!srv.loops || kvd_store_init(&srv.store, srv.nloops > 1) < 0) {
    fprintf(stderr, "kvd: out of memory\n");
    return 1;
  }
  srv.store.server = &srv;
  int r = serve(&srv, &addr);
  kvd_store_destroy(&srv.store);
  free(srv.loops);
  if (r < 0) fprintf(stderr, "kvd: %s\n", weft_strerror(r));
  return r < 0 ? 1 : 0;
}
