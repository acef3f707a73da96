/* kvd — an in-memory key-value server speaking the Redis protocol (RESP2
 * and inline commands, pipelining) on weft's TCP streams and timers.
 *
 *   kvd --port P [--loops N] [--bind ADDR] [--handoff]
 *       [--proto-max-bulk-len BYTES] [--stats]
 *
 * Prints "listening on PORT" once it accepts connections (--port 0 picks a
 * free port), and exits cleanly on SIGTERM or SIGINT. With --loops N, N
 * loops on N threads (one weft loop group, weft/loopgroup.h) listen on the
 * same port (SO_REUSEPORT; with --handoff loop 0 accepts and hands each
 * connection to the loop with the fewest live ones) and share one store,
 * sharded by key hash with a lock per shard (see kvd/kvd.h).
 *
 * Each connection reads into its own buffer (bounded: KVD_MAX_QUERY bytes
 * of one request), runs every complete command in it, and writes all the
 * replies of that batch with one write. A malformed or oversized request
 * gets Redis's protocol error, then the connection closes; the server lives
 * on. Keys with a TTL expire lazily on access and actively on a weft timer
 * per loop, armed at the earliest deadline of the shards that loop owns. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "kvd/kvd.h"

#define OUT_HIGH (1u << 20)    /* pause parsing while more replies wait */
#define OUT_KEEP (64u * 1024u) /* larger drained buffers are freed */
#define READ_MIN (16u * 1024u)
#define EXPIRE_BUDGET 200 /* keys deleted per shard per expiry run */
#define LINGER_MS 1000    /* a closing client's time to read its last reply */

typedef struct kvd_loop {
  struct kvd_server *srv;
  size_t index;
  weft_loop *loop;
  weft_timer expire_timer;
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
  weft_lgroup_conn lc; /* first: lc.tcp is the connection */
  kvd_loop *kl;
  char *ibuf; /* input: [ipos, ilen) not yet run */
  size_t ilen, icap, ipos;
  /* the request at ipos, parsed so far (offsets from ipos) */
  size_t ppos;       /* where parsing resumes */
  size_t lscan;      /* where the search for the current line's end resumes */
  long long mb_left; /* arguments still to read; -1: "*N" line not read */
  long long bulk;    /* length of the argument being read; -1: not known */
  size_t nargs;      /* arguments read */
  bool stuck;        /* a NUL hides the line end (see find_term) */
  char *obuf;        /* replies being gathered */
  size_t olen, ocap;
  char *wbuf; /* replies being written */
  size_t wlen, wcap;
  kvd_str *argv;
  size_t *argoff; /* argv[i] is at ibuf + ipos + argoff[i] */
  size_t argcap;
  weft_write_req wreq;
  weft_shutdown_req sreq;
  weft_timer linger; /* set up once closing starts; bounds the wait for EOF */
  int open_handles;  /* the stream, and the linger timer once set up */
  bool writing, close_after, paused, closing, failed, lingering;
};

static _Thread_local kvd_loop *cur_loop;

/* Counters printed at exit with --stats (the suite's window into the
 * server: bytes the parser scanned for line ends, the largest reply
 * buffers one client ever held, clients dropped for their output). */
static struct { atomic_size_t scanned, out_peak, out_dropped; } stats;
static bool print_stats;

static void conn_close(kvd_conn *c);
static void conn_flush(kvd_conn *c);
static void conn_process(kvd_conn *c);

/* ---- replies ------------------------------------------------------------ */

kvd_store *kvd_conn_store(kvd_conn *c) { return &c->kl->srv->store; }

static bool out_reserve(kvd_conn *c, size_t n) {
  if (c->failed) return false;
  if (c->olen + c->wlen > KVD_MAX_OUTPUT) {
    /* more replies wait than the hard limit allows, and one more comes:
     * drop the client, as Redis's client-output-buffer-limit does. Parsing
     * pauses at OUT_HIGH, so only one command's huge reply (MGET of many
     * large values) gets here; one value of any size still passes. */
    atomic_fetch_add_explicit(&stats.out_dropped, 1, memory_order_relaxed);
    c->failed = true;
    return false;
  }
  if (c->olen + n <= c->ocap) return true;
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
  size_t held = c->ocap + c->wcap,
         peak = atomic_load_explicit(&stats.out_peak, memory_order_relaxed);
  while (held > peak && !atomic_compare_exchange_weak_explicit(
                            &stats.out_peak, &peak, held, memory_order_relaxed,
                            memory_order_relaxed)) {
  }
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

/* "-<text>\r\n" as Redis's addReplyErrorFormat(): any length, CR and LF
 * trimmed from the end, and the others inside turned into spaces. */
void kvd_reply_error(kvd_conn *c, const char *fmt, ...) {
  char stack[512], *buf = stack;
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(buf + 1, sizeof stack - 3, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof stack - 4) {
    char *big = malloc((size_t)n + 4);
    if (big) {
      buf = big;
      n = vsnprintf(buf + 1, (size_t)n + 1, fmt, ap2);
      if (n < 0) n = 0;
    } else {
      n = (int)(sizeof stack - 4); /* out of memory: the text cut short */
    }
  }
  va_end(ap2);
  while (n > 0 && (buf[n] == '\r' || buf[n] == '\n'))
    n--; /* as Redis's sdstrim(): no line end at the end */
  buf[0] = '-';
  for (int i = 1; i <= n; i++) /* an error is one line: no CR/LF inside */
    if (buf[i] == '\r' || buf[i] == '\n') buf[i] = ' ';
  memcpy(buf + 1 + n, "\r\n", 2);
  kvd_reply_raw(c, buf, (size_t)n + 3);
  if (buf != stack) free(buf);
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

/* Requests are parsed as Redis 7.0's processMultibulkBuffer and
 * processInlineBuffer do, byte for byte in their outcome, but
 * incrementally: the state of a partly received request (c->mb_left,
 * c->bulk, c->ppos, c->lscan) survives from one read to the next, so no
 * byte is scanned twice however the request is split. The arguments are
 * kept as offsets from the request's start (c->ipos), because the input
 * buffer may move when it grows. */

static bool argv_reserve(kvd_conn *c, size_t n) {
  if (n <= c->argcap) return true;
  size_t cap = c->argcap ? c->argcap : 16;
  while (cap < n)
    cap *= 2;
  kvd_str *a = realloc(c->argv, cap * sizeof *a);
  if (!a) return false;
  c->argv = a;
  size_t *o = realloc(c->argoff, cap * sizeof *o);
  if (!o) return false;
  c->argoff = o;
  c->argcap = cap;
  return true;
}

/* The offset (from c->ipos) of the first `term` at or after `from`, or -1
 * if it has not arrived. Redis finds line ends with strchr(), which stops
 * at a NUL byte: a NUL before the line end hides it for good, and the
 * request then waits until it is too big (c->stuck). */
static ssize_t find_term(kvd_conn *c, size_t from, char term) {
  if (c->stuck) return -1;
  char *base = c->ibuf + c->ipos;
  size_t avail = c->ilen - c->ipos, s = c->lscan > from ? c->lscan : from;
  if (s >= avail) return -1;
  char *t = memchr(base + s, term, avail - s);
  char *stop = t ? t : base + avail;
  atomic_fetch_add_explicit(&stats.scanned, (size_t)(stop - (base + s)),
                            memory_order_relaxed);
  if (memchr(base + s, '\0', (size_t)(stop - (base + s)))) {
    c->stuck = true;
    return -1;
  }
  if (!t) {
    c->lscan = avail;
    return -1;
  }
  c->lscan = 0;
  return t - base;
}

/* Redis's string2ll(): no spaces, no '+', no leading zeros, no "-0". */
static bool parse_ll(const char *p, size_t n, long long *out) {
  if (n == 0 || n >= 21) return false;
  if (n == 1 && p[0] == '0') {
    *out = 0;
    return true;
  }
  bool neg = p[0] == '-';
  size_t i = neg;
  if (i == n || p[i] < '1' || p[i] > '9') return false;
  unsigned long long v = 0;
  for (; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    unsigned d = (unsigned)(p[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > (unsigned long long)LLONG_MAX + 1) return false;
    *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
  } else {
    if (v > (unsigned long long)LLONG_MAX) return false;
    *out = (long long)v;
  }
  return true;
}

/* The "*N" or "$N" line (`want`) starting at c->ppos: 1 with its number in *out
 * (*number: whether it parsed) and c->ppos past the line, 0 if incomplete,
 * -1 after the error reply `big` when it has waited too long for its end.
 * Like Redis, the byte after CR is skipped whatever it is. */
static int read_count_line(kvd_conn *c, char want, long long *out, bool *number,
                           const char *big) {
  ssize_t cr = find_term(c, c->ppos, '\r');
  size_t avail = c->ilen - c->ipos;
  if (cr < 0) {
    if (avail - c->ppos > KVD_MAX_INLINE) {
      protocol_error(c, big);
      return -1;
    }
    return 0;
  }
  if ((size_t)cr + 1 >= avail) {
    c->lscan = (size_t)cr; /* the line end is known: rescan nothing */
    return 0;
  }
  const char *line = c->ibuf + c->ipos + c->ppos;
  if (line[0] != want) { /* only for '$': '*' chose this parser */
    char what[64];
    snprintf(what, sizeof what, "expected '$', got '%c'", line[0]);
    protocol_error(c, what);
    return -1;
  }
  *number = parse_ll(line + 1, (size_t)cr - c->ppos - 1, out);
  c->ppos = (size_t)cr + 2;
  return 1;
}

/* The rest of a "*N" request. Returns 1 when complete (arguments in
 * c->argv, *argc of them), 0 if incomplete, -1 after an error. */
static int parse_multibulk(kvd_conn *c, size_t *argc) {
  long long v = 0;
  bool ok = false;
  int r;
  if (c->mb_left < 0) {
    if ((r = read_count_line(c, '*', &v, &ok, "too big mbulk count string")) <=
        0)
      return r;
    if (!ok || v > INT_MAX) {
      protocol_error(c, "invalid multibulk length");
      return -1;
    }
    if (v <= 0) { /* "*0", "*-1": nothing to run */
      *argc = 0;
      return 1;
    }
    /* no more room than the arguments that arrive: the request bound
     * (KVD_MAX_QUERY) limits them */
    if (!argv_reserve(c, v < 1024 ? (size_t)v : 1024)) {
      c->failed = true;
      return -1;
    }
    c->mb_left = v;
    c->nargs = 0;
    c->bulk = -1;
  }
  while (c->mb_left > 0) {
    if (c->bulk < 0) {
      if (c->ppos >= c->ilen - c->ipos) return 0;
      if ((r = read_count_line(c, '$', &v, &ok, "too big bulk count string")) <=
          0)
        return r;
      if (!ok || v < 0 || v > (long long)KVD_MAX_BULK) {
        protocol_error(c, "invalid bulk length");
        return -1;
      }
      /* the whole request's bound, checked on its size and not on how
       * much of it one read brought: a request that ends in the same
       * read that crosses the bound is refused too */
      if (c->ppos + (size_t)v + 2 > KVD_MAX_QUERY) {
        protocol_error(c, "request too large");
        return -1;
      }
      c->bulk = v;
    }
    if (c->ilen - c->ipos - c->ppos < (size_t)c->bulk + 2) return 0;
    if (!argv_reserve(c, c->nargs + 1)) {
      c->failed = true;
      return -1;
    }
    c->argoff[c->nargs] = c->ppos;
    c->argv[c->nargs++].n = (size_t)c->bulk;
    c->ppos += (size_t)c->bulk + 2;
    c->bulk = -1;
    c->mb_left--;
  }
  *argc = c->nargs;
  return 1;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static bool is_space(char ch) { /* isspace() in the C locale */
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' ||
         ch == '\f';
}

static char unescape(char ch) {
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

/* One inline token at *q (not blank), unquoted in place (the result is
 * never longer than the input), exactly as Redis's sdssplitargs() does:
 * blanks between tokens are isspace() bytes, but only space, tab, CR and
 * LF end an unquoted token; a closing quote must be followed by a blank
 * or the end. Returns the token's end, or NULL for unbalanced quotes. */
static char *inline_token(char **q, char *end) {
  char *p = *q, *w = *q;
  bool inq = false, insq = false, done = false;
  while (!done) {
    if (inq) {
      if (p + 3 < end && p[0] == '\\' && p[1] == 'x' && hexval(p[2]) >= 0 &&
          hexval(p[3]) >= 0) {
        *w++ = (char)(hexval(p[2]) * 16 + hexval(p[3]));
        p += 3;
      } else if (p + 1 < end && p[0] == '\\') {
        p++;
        *w++ = unescape(*p);
      } else if (p < end && *p == '"') {
        if (p + 1 < end && !is_space(p[1])) return NULL;
        done = true;
      } else if (p == end) {
        return NULL;
      } else {
        *w++ = *p;
      }
    } else if (insq) {
      if (p + 1 < end && p[0] == '\\' && p[1] == '\'') {
        p++;
        *w++ = '\'';
      } else if (p < end && *p == '\'') {
        if (p + 1 < end && !is_space(p[1])) return NULL;
        done = true;
      } else if (p == end) {
        return NULL;
      } else {
        *w++ = *p;
      }
    } else if (p == end || *p == ' ' || *p == '\t' || *p == '\r' ||
               *p == '\n') {
      done = true;
    } else if (*p == '"') {
      inq = true;
    } else if (*p == '\'') {
      insq = true;
    } else {
      *w++ = *p;
    }
    if (p < end) p++;
  }
  *q = p;
  return w;
}

/* One inline command line (telnet-style clients, PING_INLINE). */
static int parse_inline(kvd_conn *c, size_t *argc) {
  ssize_t off = find_term(c, 0, '\n');
  if (off < 0) {
    if (c->ilen - c->ipos <= KVD_MAX_INLINE) return 0;
    protocol_error(c, "too big inline request");
    return -1;
  }
  char *start = c->ibuf + c->ipos, *nl = start + off;
  char *le = nl > start && nl[-1] == '\r' ? nl - 1 : nl, *q = start;
  atomic_fetch_add_explicit(&stats.scanned, (size_t)(le - start),
                            memory_order_relaxed);
  size_t n = 0;
  for (;;) {
    while (q < le && is_space(*q))
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
    c->argoff[n] = (size_t)(tok - start);
    c->argv[n++].n = (size_t)(tend - tok);
  }
  *argc = n;
  c->ppos = (size_t)off + 1;
  return 1;
}

/* Parses on from where the last read left the request at c->ipos. */
static int parse_request(kvd_conn *c, size_t *argc) {
  int r = c->ibuf[c->ipos] == '*' ? parse_multibulk(c, argc)
                                  : parse_inline(c, argc);
  if (r == 1) {
    for (size_t i = 0; i < *argc; i++)
      c->argv[i].p = c->ibuf + c->ipos + c->argoff[i];
    c->ipos += c->ppos; /* the next request starts afresh */
    c->ppos = c->lscan = 0;
    c->mb_left = c->bulk = -1;
    c->stuck = false;
  }
  return r;
}

/* ---- connections -------------------------------------------------------- */

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf);
static void on_alloc(weft_stream *s, size_t suggested, weft_buf *buf);

/* Runs every complete command in the input buffer. Once OUT_HIGH bytes
 * of replies are gathered they are written; if a write is already in
 * flight, parsing and reading pause until it completes. A client that
 * pipelines requests without reading its replies so holds at most two
 * buffers of about OUT_HIGH (plus one reply). */
static void conn_process(kvd_conn *c) {
  while (!c->close_after && !c->failed && c->ipos < c->ilen) {
    if (c->olen >= OUT_HIGH) {
      if (c->writing) {
        c->paused = true;
        weft_stream_read_stop(&c->lc.tcp.stream);
        break;
      }
      conn_flush(c);
      if (c->closing) return;
    }
    size_t argc = 0;
    int r = parse_request(c, &argc);
    if (r <= 0) break;
    if (argc > 0) kvd_dispatch(c, c->argv, argc);
  }
  if (c->ipos > 0) { /* keep only the unparsed tail */
    memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
    c->ilen -= c->ipos;
    c->ipos = 0;
  }
  if (c->icap > 4 * READ_MIN && c->ilen <= READ_MIN) { /* drained: shrink */
    char *p = realloc(c->ibuf, 2 * READ_MIN);
    if (p) {
      c->ibuf = p;
      c->icap = 2 * READ_MIN;
    }
  }
  if (!c->close_after && c->ilen >= KVD_MAX_QUERY)
    protocol_error(c, "request too large");
  if (c->failed) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

/* The stream's and the linger timer's close callbacks: the last frees. */
static void conn_unref(kvd_conn *c) {
  if (--c->open_handles > 0) return;
  free(c->ibuf);
  free(c->obuf);
  free(c->wbuf);
  free(c->argv);
  free(c->argoff);
  free(c);
}

static void on_linger_closed(weft_handle *h) { conn_unref(h->data); }

static void on_stream_closed(weft_lgroup_conn *lc, void *arg) {
  (void)arg;
  conn_unref((kvd_conn *)lc);
}

static void conn_close(kvd_conn *c) {
  if (c->closing) return;
  c->closing = true;
  c->open_handles = 1 + c->lingering;
  weft_lgroup_conn_close(&c->lc);
  if (c->lingering) weft_close(&c->linger.base, on_linger_closed);
}

/* At a stop: the group's drain deadline is 0, so every client closes now. */
static void on_conn_abort(weft_lgroup_conn *lc, void *arg) {
  (void)arg;
  conn_close((kvd_conn *)lc);
}

static void on_shutdown(weft_shutdown_req *req, int status) {
  (void)req, (void)status; /* reading goes on until the client's EOF */
}

static void on_linger(weft_timer *t) { conn_close(t->base.data); }

/* Shuts the write side after the last reply, and closes the connection
 * for good at the client's EOF or after LINGER_MS, whichever is first. */
static void conn_linger(kvd_conn *c) {
  if (weft_stream_shutdown(&c->sreq, &c->lc.tcp.stream, on_shutdown) < 0) {
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
  c->wlen = c->olen;
  c->olen = 0;
  if (weft_stream_write(&c->wreq, &c->lc.tcp.stream, &buf, 1, on_write) < 0) {
    conn_close(c);
    return;
  }
  c->writing = true;
}

static void on_write(weft_write_req *req, int status) {
  kvd_conn *c = req->data;
  c->writing = false;
  c->wlen = 0;
  if (c->wcap > OUT_KEEP) { /* drained: a big buffer is not kept */
    free(c->wbuf);
    c->wbuf = NULL;
    c->wcap = 0;
  }
  if (c->closing) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (c->paused) {
    c->paused = false;
    conn_process(c); /* the commands left waiting in the input buffer */
    if (!c->paused && !c->closing &&
        weft_stream_read_start(&c->lc.tcp.stream, on_alloc, on_read) < 0)
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
  if (c->close_after) c->ilen = c->ipos = 0; /* discarding input until EOF */
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

static weft_lgroup_conn *conn_new(weft_lgroup *g, unsigned i, void *arg) {
  (void)g, (void)i, (void)arg;
  kvd_conn *c = calloc(1, sizeof *c); /* NULL: the client is refused */
  return c ? &c->lc : NULL;
}

/* A client, opened by the group on loop `kl`. */
static void on_conn(weft_lgroup_conn *lc, void *arg) {
  kvd_server *srv = arg;
  kvd_conn *c = (kvd_conn *)lc;
  c->kl = &srv->loops[weft_lgroup_conn_index(lc)];
  c->mb_left = c->bulk = -1;
  c->wreq.data = c;
  c->sreq.data = c;
  c->lc.tcp.stream.base.data = c;
  weft_tcp_nodelay(&c->lc.tcp, true);
  if (weft_stream_read_start(&c->lc.tcp.stream, on_alloc, on_read) < 0)
    conn_close(c);
}

/* ---- the loops ----------------------------------------------------------- */

/* On loop i's thread, before it runs: its expiry timer. */
/* --stats, on SIGUSR1: each loop prints one line of its metrics (one write,
 * so the loops' lines do not interleave). */
static weft_lgroup *stats_group;
static weft_signal stats_usr1; /* on loop 0 */

static int print_loop_stats(weft_lgroup *g, unsigned i, void *local, void *arg,
                            weft_lgroup_result *res) {
  (void)local, (void)arg, (void)res;
  weft_loop_metrics m;
  weft_lgroup_stats st;
  int err = weft_loop_get_metrics(weft_lgroup_loop(g, i), &m, sizeof m);
  if (err == 0) err = weft_lgroup_get_stats(g, i, &st);
  if (err < 0) return err;
  char line[400];
  int n = snprintf(
      line, sizeof line,
      "stats loop=%u accepted=%llu live=%llu turns=%llu callbacks=%llu "
      "io_events=%llu timers=%llu busy_ms=%llu wait_ms=%llu "
      "longest_turn_us=%llu deferred_max=%llu\n",
      i, (unsigned long long)st.accepted, (unsigned long long)st.live,
      (unsigned long long)m.turns, (unsigned long long)m.callbacks,
      (unsigned long long)m.io_events, (unsigned long long)m.timers_fired,
      (unsigned long long)(m.busy_ns / 1000000u),
      (unsigned long long)(m.wait_ns / 1000000u),
      (unsigned long long)(m.longest_turn_ns / 1000u),
      (unsigned long long)m.deferred_max_depth);
  if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0) return -errno;
  return 0;
}

static void on_usr1(weft_signal *s, int signum) {
  (void)signum;
  weft_future *f;
  if (weft_lgroup_broadcast(stats_group, weft_handle_loop(&s->base),
                            print_loop_stats, NULL, NULL, &f) == 0)
    weft_future_unref(f); /* the lines are the result */
}

static int loop_init(weft_lgroup *g, unsigned i, weft_loop *loop, void *arg) {
  if (i == 0 && print_stats) {
    stats_group = g;
    int err = weft_signal_init(loop, &stats_usr1);
    if (err == 0) err = weft_signal_start(&stats_usr1, on_usr1, SIGUSR1);
    if (err < 0) return err;
    weft_unref(&stats_usr1.base); /* never keeps the loop up */
  }
  kvd_server *srv = arg;
  kvd_loop *kl = &srv->loops[i]; /* its shared fields: set by serve() */
  weft_timer_init(loop, &kl->expire_timer);
  kl->expire_timer.base.data = kl;
  cur_loop = kl;
  return 0;
}

/* On loop i's thread, once its clients are gone. Rearm posts still queued
 * for the loop find it closing. */
static void loop_stop(weft_lgroup *g, unsigned i, weft_loop *loop, void *arg) {
  (void)g, (void)loop;
  kvd_server *srv = arg;
  atomic_store(&srv->stopping, true);
  srv->loops[i].closing = true;
  weft_close(&srv->loops[i].expire_timer.base, NULL);
}

static int parse_addr(const char *host, unsigned port,
                      struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (weft_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 0;
  return weft_ip6_addr(host, port, (struct sockaddr_in6 *)out);
}

static const char usage[] =
    "usage: kvd --port P [--loops N] [--bind ADDR] [--handoff] "
    "[--proto-max-bulk-len BYTES] [--stats]\n"
    "  A Redis-protocol key-value server on ADDR (default 127.0.0.1) port P\n"
    "  (0..65535; 0: any free port), printing \"listening on PORT\"; N loops\n"
    "  (1..64, default 1) share one store, each with its own listening\n"
    "  socket (SO_REUSEPORT: the kernel spreads connections); --handoff:\n"
    "  loop 0 accepts them all and hands each to the loop with the fewest\n"
    "  live connections. --proto-max-bulk-len: at least\n"
    "  1 MiB. --stats: print counters on exit, and on SIGUSR1 one line per\n"
    "  loop (\"stats loop=I accepted=.. live=.. turns=.. ...\", its\n"
    "  weft_loop_metrics and connections). SIGTERM/SIGINT stop it.\n";

static int serve(kvd_server *srv, struct sockaddr_storage *addr,
                 weft_lgroup_dist dist) {
  weft_lgroup_options o = {.loops = (unsigned)srv->nloops,
                           .stop_signals = true,
                           .on_loop_init = loop_init,
                           .on_loop_stop = loop_stop,
                           .on_conn = on_conn,
                           .on_conn_closed = on_stream_closed,
                           .on_conn_abort = on_conn_abort,
                           .conn_new = conn_new,
                           .arg = srv};
  weft_lgroup *g;
  int r = weft_lgroup_new(&g, &o);
  if (r < 0) return r;
  /* What other loops read of a loop (kvd_expiry_moved: its weft_loop for
   * the post, its deadline and post flags) is set here, before any loop
   * thread starts: a loop may serve a client that moves a deadline of
   * another loop's shard before that loop has run its init. */
  for (size_t i = 0; i < srv->nloops; i++) {
    kvd_loop *kl = &srv->loops[i];
    kl->srv = srv;
    kl->index = i;
    kl->loop = weft_lgroup_loop(g, (unsigned)i);
    atomic_init(&kl->armed, INT64_MAX);
    atomic_init(&kl->rearm_posted, false);
  }
  socklen_t len = sizeof *addr;
  r = weft_lgroup_listen(g, (struct sockaddr *)addr, dist, 511);
  if (r == 0) r = weft_lgroup_getsockname(g, (struct sockaddr *)addr, &len);
  if (r == 0) r = weft_lgroup_start(g);
  if (r == 0) {
    printf("listening on %d\n", weft_sockaddr_port((struct sockaddr *)addr));
    fflush(stdout);
  } else {
    weft_lgroup_stop(g, 0);
  }
  weft_lgroup_wait(g, WEFT_WAIT_FOREVER); /* -EINVAL if never started */
  weft_lgroup_free(g);
  return r;
}

int main(int argc, char **argv) {
  long port = -1, loops = 1;
  const char *host = "127.0.0.1";
  weft_lgroup_dist dist = WEFT_LGROUP_REUSEPORT;
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "--stats") == 0)
      print_stats = true;
    else if (strcmp(argv[i], "--handoff") == 0)
      dist = WEFT_LGROUP_HANDOFF;
    else if (strcmp(argv[i], "--bind") == 0)
      host = ex_str(argc, argv, &i, usage);
    else if (strcmp(argv[i], "--port") == 0)
      port = ex_long(argc, argv, &i, 0, 65535, usage);
    else if (strcmp(argv[i], "--loops") == 0)
      loops = ex_long(argc, argv, &i, 1, 64, usage);
    else if (strcmp(argv[i], "--proto-max-bulk-len") == 0)
      /* like CONFIG SET: at least 1 MiB */
      kvd_max_bulk = (size_t)ex_long(argc, argv, &i, (long)KVD_MAX_BULK_MIN,
                                     LONG_MAX, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  if (port < 0) ex_bad(usage, "--port P is required");
  static kvd_server srv;
  struct sockaddr_storage addr;
  if (parse_addr(host, (unsigned)port, &addr) < 0)
    ex_bad(usage, "--bind %s: not an IPv4 or IPv6 address", host);
  srv.nloops = (size_t)loops;
  srv.loops = calloc(srv.nloops, sizeof *srv.loops);
  if (!srv.loops || kvd_store_init(&srv.store, srv.nloops > 1) < 0) {
    fprintf(stderr, "kvd: out of memory\n");
    return 1;
  }
  srv.store.server = &srv;
  int r = serve(&srv, &addr, dist);
  kvd_store_destroy(&srv.store);
  free(srv.loops);
  if (r < 0) fprintf(stderr, "kvd: %s\n", weft_strerror(r));
  if (print_stats)
    fprintf(stderr, "kvd stats: scanned %zu out_peak %zu out_dropped %zu\n",
            atomic_load(&stats.scanned), atomic_load(&stats.out_peak),
            atomic_load(&stats.out_dropped));
  return r < 0 ? 1 : 0;
}
