/* httpd --port P --root DIR [--loops N] [--handoff] [--host ADDR]
 *       [--idle-ms MS] [--header-ms MS] [--send-ms MS] [--cache-ms MS]
 *       [--stats]
 * — an HTTP/1.1 static file server on weft (docs/httpd.md).
 *
 * GET and HEAD of regular files under DIR (a path ending in "/" serves its
 * index.html; a directory without the "/" is redirected, 301), with
 * keep-alive and pipelining, Content-Length, Last-Modified and ETag, the
 * conditionals of RFC 9110 13 (If-Match, If-Unmodified-Since: 412;
 * If-None-Match, If-Modified-Since: 304; If-Range), one byte range per GET
 * (206, 416), 100 Continue, and the error replies 400 (malformed, see
 * httpd/http_req.c), 403 (path traversal, directory without index), 404,
 * 405 (POST to a file, other registered methods), 413 (request body over
 * 1 MiB), 414 (URL over 8000 bytes), 431 (a header line over 8 KiB or 32
 * KiB in all), 501 (unknown method or transfer coding), 505 (not
 * HTTP/1.x). Requests are parsed by httpd/http_req.c, strictly where RFC
 * 9112 says MUST. Files are opened and fstat'ed with weft's
 * asynchronous file I/O (on the thread pool, so a slow disk never blocks
 * the loop) and kept open for --cache-ms (default 1000; 0: off) in a
 * per-loop cache (httpd/fcache.c), and bodies go out with
 * weft_stream_sendfile() in 1 MiB requests on the connection's write
 * queue (see docs/httpd.md for why not weft_fs_sendfile).
 *
 * N loops run on N threads as one loop group (weft/loopgroup.h), each with
 * its own listening socket on the same port (SO_REUSEPORT: the kernel
 * spreads connections), or with --handoff one listening socket on loop 0,
 * which hands each connection to the loop with the fewest live ones.
 * --stats prints each loop's connection counts and metrics on SIGUSR1.
 * Port 0 picks a free port; the server prints
 * "listening on PORT" once it accepts connections. SIGTERM or SIGINT stops
 * it cleanly (exit status 0): the group stops accepting, closes every
 * connection, lets file requests in flight finish and joins its threads.
 *
 * Timeouts, on weft timers: a keep-alive connection idle for --idle-ms
 * (default 15000) is closed; a request (head and body) that has not fully
 * arrived --header-ms (default 10000) after its first byte is closed (slow
 * clients); a reply that sends no byte for --send-ms (default 30000) is
 * abandoned. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>

#include "httpd/httpd.h"

#define IN_MAX 16384 /* per-connection input buffer: > any line accepted */
#define SEND_CHUNK (1024u << 10) /* body bytes per sendfile request */
#define WORK_SPARE 64  /* work areas a loop keeps for its next requests */
#define LINGER_MS 2000 /* how long to drain input after an error reply */
#define HEAD_MORE_MAX                                                          \
  (16 << 10) /* bodies up to this go out in one packet with their head */

_Static_assert(IN_MAX > HTTPD_URL_MAX + 32 && IN_MAX > HTTPD_LINE_MAX,
               "a line must fit");

typedef struct options {
  const char *host, *root;
  unsigned port, loops;
  uint64_t idle_ms, header_ms, send_ms, cache_ms;
  bool stats;   /* --stats: per-loop metrics on SIGUSR1 */
  bool handoff; /* --handoff: WEFT_LGROUP_HANDOFF, not SO_REUSEPORT */
} options;

typedef struct server { /* one per loop */
  weft_loop *loop;
  const options *opt;
  fcache cache;    /* open files, trusted for --cache-ms */
  time_t date_sec; /* the cached Date header value is for this second */
  char date[40];
  weft_lgroup *g;     /* --stats: loop 0 broadcasts on SIGUSR1 */
  weft_signal usr1;   /* loop 0 only */
  struct work *spare; /* work areas idle connections gave back */
  unsigned n_spare;   /* at most WORK_SPARE */
  unsigned n_work;    /* work areas this loop's connections hold */
} server;

/* What a connection needs only while it has a request to read or answer:
 * the input buffer, the parser, the reply's head and requests. A
 * keep-alive connection gives it back when it goes idle (nothing buffered,
 * no reply in progress), as nginx frees a request's memory, so an idle
 * connection holds only its conn (about 480 bytes); each loop keeps up to
 * WORK_SPARE of them for the next request. */
typedef struct work {
  struct work *next; /* on the server's spare list */
  weft_fs_req fs;
  weft_write_req wreq, creq; /* the reply; a 100 Continue */
  weft_sendfile_req body;    /* the current chunk of the reply's body */
  weft_shutdown_req sreq;
  httpd_req req;
  char head[HTTPD_URL_MAX + 1024]; /* room for a Location as long as a target */
  char path[PATH_MAX];
  char in[IN_MAX];
} work;

typedef struct conn {
  weft_lgroup_conn lc; /* first: lc.tcp is the connection */
  weft_timer timer;
  server *srv;
  work *w;  /* NULL while idle */
  int refs; /* tcp handle + timer handle + fs request in flight */
  bool closing, serving, peer_eof, keep_alive, lingering, started, index;
  int reject; /* the parser's error status, once the reply is due */
  size_t in_len;
  int fd;              /* the file being served, or -1 */
  fcache_entry *entry; /* the cache entry that owns fd, or NULL */
  const struct stat *st;
  off_t off, end;   /* body bytes [off, end) still to send */
  size_t sent_mark; /* write queue size when the send timer was set, or
                       SIZE_MAX: a timer that is not a body's */
} conn;

/* ---- connection lifetime ------------------------------------------------ */

static void release_file(conn *c);

/* Gives the connection a work area, its loop's last spare one or a new
 * one (not zeroed: each field is set before it is read); false without
 * memory. */
static bool work_take(conn *c) {
  server *s = c->srv;
  work *w = s->spare;
  if (w != NULL) {
    s->spare = w->next;
    s->n_spare--;
  } else if ((w = malloc(sizeof *w)) == NULL) {
    return false;
  }
  httpd_req_init(&w->req);
  c->w = w;
  s->n_work++;
  return true;
}

/* The connection needs its work area no more (idle, or gone). */
static void work_give(conn *c) {
  work *w = c->w;
  server *s = c->srv;
  if (w == NULL) return;
  c->w = NULL;
  s->n_work--;
  if (s->n_spare < WORK_SPARE) {
    w->next = s->spare;
    s->spare = w;
    s->n_spare++;
  } else {
    free(w);
  }
}

/* An idle keep-alive connection (no reply in progress, no byte of a next
 * request read) gives its work area back. */
static void maybe_idle(conn *c) {
  if (!c->serving && !c->started && !c->lingering && !c->closing &&
      c->in_len == 0)
    work_give(c);
}

static void conn_unref(conn *c) {
  if (--c->refs > 0) return;
  release_file(c);
  work_give(c);
  free(c);
}

static void on_handle_closed(weft_handle *h) { conn_unref(h->data); }
static void on_conn_closed(weft_lgroup_conn *lc, void *arg) {
  (void)arg;
  conn_unref((conn *)lc);
}

/* Closes the connection; the memory goes once the socket, the timer and
 * any file request in flight have all finished. */
static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = true;
  weft_close(&c->timer.base, on_handle_closed);
  weft_lgroup_conn_close(&c->lc);
}

/* At a stop (the group's deadline is 0): every connection closes now. */
static void on_conn_abort(weft_lgroup_conn *lc, void *arg) {
  (void)arg;
  conn_close((conn *)lc);
}

static void arm(conn *c, uint64_t ms);

/* A body's timer fires: if bytes went out since it was set (the write
 * queue shrank), that is progress and it is set again, as nginx's
 * send_timeout counts from the last successful write; else, and for every
 * other timer, the connection is closed. */
static void on_timeout(weft_timer *t) {
  conn *c = t->base.data;
  size_t left = weft_stream_write_queue_size(&c->lc.tcp.stream);
  if (c->sent_mark != SIZE_MAX && left < c->sent_mark) {
    arm(c, c->srv->opt->send_ms);
    c->sent_mark = left;
    return;
  }
  conn_close(c);
}

static void arm(conn *c, uint64_t ms) {
  c->sent_mark = SIZE_MAX;
  weft_timer_start(&c->timer, on_timeout, ms, 0);
}

/* ---- requests
 * ----------------------------------------------------------------- */

static void reset_request(conn *c) {
  c->reject = 0;
  c->started = c->index = false;
  c->off = c->end = 0;
  if (c->w != NULL) httpd_req_init(&c->w->req);
}

/* ---- replies ----------------------------------------------------------------
 */

static const char *http_date(server *s) {
  time_t now = time(NULL);
  if (now != s->date_sec) { /* formatted once per second per loop */
    httpd_format_date(now, s->date, sizeof s->date);
    s->date_sec = now;
  }
  return s->date;
}

/* Starts the reply head: status line, Date, Server, Connection. */
static size_t head_begin(conn *c, int status) {
  const char *conn_hdr = !c->keep_alive         ? "Connection: close\r\n"
                         : c->w->req.minor == 0 ? "Connection: keep-alive\r\n"
                                                : "";
  return (size_t)snprintf(
      c->w->head, sizeof c->w->head,
      "HTTP/1.1 %d %s\r\nServer: weft-httpd\r\nDate: %s\r\n%s", status,
      httpd_status_text(status), http_date(c->srv), conn_hdr);
}

static void head_add(conn *c, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void head_add(conn *c, size_t *len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (*len < sizeof c->w->head)
    *len +=
        (size_t)vsnprintf(c->w->head + *len, sizeof c->w->head - *len, fmt, ap);
  va_end(ap);
}

static void finish_request(conn *c);
static void send_body(conn *c);
static int start_reading(conn *c);

static void on_shutdown(weft_shutdown_req *req, int status) {
  if (status < 0) conn_close(req->data);
}

/* After an error reply the connection ends, but closing at once would
 * make the kernel answer the client's unread bytes with a reset that can
 * destroy the reply in flight; so the write side is shut and the input
 * drained (and dropped) until EOF or LINGER_MS. */
static void linger(conn *c) {
  c->lingering = true;
  c->in_len = 0;
  c->w->sreq.data = c;
  if (c->peer_eof ||
      weft_stream_shutdown(&c->w->sreq, &c->lc.tcp.stream, on_shutdown) < 0) {
    conn_close(c);
    return;
  }
  arm(c, LINGER_MS);
  if (!weft_stream_is_reading(&c->lc.tcp.stream) && start_reading(c) < 0)
    conn_close(c);
}

static void on_head_written(weft_write_req *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status < 0)
    conn_close(c);
  else if (c->off < c->end)
    send_body(c);
  else
    finish_request(c);
}

static void write_head(conn *c, size_t len) {
  if (len >= sizeof c->w->head) len = sizeof c->w->head - 1; /* cannot happen */
  weft_buf b = weft_buf_init(c->w->head, len);
  c->w->wreq.data = c;
  arm(c, c->srv->opt->send_ms);
  if (weft_stream_write(&c->w->wreq, &c->lc.tcp.stream, &b, 1,
                        on_head_written) < 0)
    conn_close(c);
}

/* A reply without a file: a short text body naming the status, and one
 * more header line (`extra`, "" if none). A parse error ends the
 * connection; other errors leave it usable. */
static void send_simple(conn *c, int status, const char *extra) {
  if (c->reject || status == 400 || status == 500) c->keep_alive = false;
  size_t len = head_begin(c, status);
  const char *text = httpd_status_text(status);
  if (status == 405) head_add(c, &len, "Allow: GET, HEAD\r\n");
  head_add(c, &len, "%sContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
           extra, strlen(text) + 1);
  if (c->w->req.method != HTTPD_HEAD || c->reject)
    head_add(c, &len, "%s\n", text);
  write_head(c, len);
}

/* A head followed by a body: while the stream's queue is empty, the head
 * goes straight to the socket, and the body follows at once. For a small
 * body (HEAD_MORE_MAX) the head goes with MSG_MORE, so that the kernel
 * sends the whole reply as one packet, not two: 1.22x the requests/s for
 * a 1 KiB file. A large body's head goes alone, as nginx sends it: with
 * MSG_MORE, about 1% of 1 MiB replies stalled 10 ms and then 20 ms at the
 * first segment boundaries under this machine's BBR pacing (1 in 1,600
 * without it, as with nginx; docs/httpd.md). What the socket does not take
 * goes through the stream, which also reports any error. */
static void write_head_and_body(conn *c, size_t len) {
  ssize_t n = -1;
  if (c->off < c->end && weft_stream_write_queue_size(&c->lc.tcp.stream) == 0)
    n = send(weft_stream_fileno(&c->lc.tcp.stream), c->w->head, len,
             (c->end - c->off <= HEAD_MORE_MAX ? MSG_MORE : 0) | MSG_NOSIGNAL |
                 MSG_DONTWAIT);
  if (n == (ssize_t)len) {
    arm(c, c->srv->opt->send_ms);
    send_body(c);
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  memmove(c->w->head, c->w->head + done, len - done);
  write_head(c, len - done);
}

/* The status for a file: preconditions first (RFC 9110 13.2.2), then a
 * Range, which only a GET honours, and only if If-Range allows. */
static int file_status(conn *c, const char *etag, off_t *from, off_t *to) {
  const struct stat *st = c->st;
  int pre = httpd_preconditions(&c->w->req, etag, st->st_mtime);
  if (pre != 0) return pre;
  *from = 0;
  *to = st->st_size;
  if (c->w->req.method != HTTPD_GET || c->w->req.vlen[HTTPD_F_RANGE] < 0 ||
      !httpd_if_range_ok(&c->w->req, etag, st->st_mtime))
    return 200;
  int rs =
      httpd_parse_range(c->w->req.val[HTTPD_F_RANGE], st->st_size, from, to);
  return rs == 0 ? 206 : rs == 416 ? 416 : 200;
}

/* The file is open and stat'ed: pick the status and send the head. */
static void respond_file(conn *c) {
  const struct stat *st = c->st;
  if (c->w->req.method == HTTPD_POST) {
    send_simple(c, 405, "");
    return;
  }
  char lm[40], etag[48];
  httpd_format_date(st->st_mtime, lm, sizeof lm);
  httpd_format_etag(st, etag, sizeof etag);
  off_t from = 0, to = 0;
  int status = file_status(c, etag, &from, &to);
  if (status == 412) {
    send_simple(c, 412, "");
    return;
  }
  size_t len = head_begin(c, status);
  if (status == 416) {
    head_add(c, &len,
             "Content-Range: bytes */%lld\r\nContent-Length: 0\r\n\r\n",
             (long long)st->st_size);
    write_head(c, len);
    return;
  }
  head_add(c, &len, "Last-Modified: %s\r\nETag: %s\r\nAccept-Ranges: bytes\r\n",
           lm, etag);
  if (status == 304) {
    head_add(c, &len, "\r\n");
    write_head(c, len);
    return;
  }
  if (status == 206)
    head_add(c, &len, "Content-Range: bytes %lld-%lld/%lld\r\n",
             (long long)from, (long long)to - 1, (long long)st->st_size);
  head_add(c, &len, "Content-Type: %s\r\nContent-Length: %lld\r\n\r\n",
           httpd_content_type(c->w->path), (long long)(to - from));
  if (c->w->req.method == HTTPD_GET) {
    c->off = from;
    c->end = to;
  }
  write_head_and_body(c, len);
}

/* ---- the file: open, fstat, sendfile --------------------------------------
 */

/* The reply uses the cache's fd, which it must not close. */
static void use_entry(conn *c, fcache_entry *e) {
  c->entry = e;
  c->fd = e->fd;
  c->st = &e->st;
}

/* The reply no longer needs its file. */
static void release_file(conn *c) {
  if (c->entry != NULL)
    fcache_release(c->entry);
  else if (c->fd >= 0)
    close(c->fd);
  c->entry = NULL;
  c->fd = -1;
}

static int fs_error_status(int64_t err) {
  return err == -ENOENT || err == -ENOTDIR || err == -ENAMETOOLONG ? 404
         : err == -EACCES || err == -ELOOP                         ? 403
                                                                   : 500;
}

/* A directory named without its trailing slash: redirected to it, as
 * nginx does (a relative Location, RFC 9110 10.2.2). */
static void redirect_dir(conn *c) {
  /* The head buffer holds the Location with room for the other fields;
   * a longer one is refused rather than truncated. */
  char loc[sizeof c->w->head - 256], extra[sizeof loc + 16];
  if (!httpd_dir_location(c->w->req.url, c->w->req.url_len, loc, sizeof loc)) {
    send_simple(c, 414, "");
    return;
  }
  snprintf(extra, sizeof extra, "Location: %s\r\n", loc);
  send_simple(c, 301, extra);
}

static void on_fstat(weft_fs_req *req) {
  conn *c = req->data;
  if (c->closing) {
    conn_unref(c);
    return;
  }
  c->refs--;
  if (req->result < 0)
    send_simple(c, 500, "");
  else if (S_ISDIR(req->statbuf.st_mode))
    c->index ? send_simple(c, 403, "") : redirect_dir(c);
  else if (!S_ISREG(req->statbuf.st_mode))
    send_simple(c, 403, "");
  else {
    c->st = &req->statbuf;
    fcache_entry *e = fcache_put(&c->srv->cache, c->w->path, c->fd,
                                 &req->statbuf, weft_now(c->srv->loop));
    if (e != NULL) use_entry(c, e);
    respond_file(c);
  }
}

/* A directory without an index file is refused (403), like nginx without
 * autoindex; a missing one is 404. */
static void on_dir_stat(weft_fs_req *req) {
  conn *c = req->data;
  if (c->closing) {
    conn_unref(c);
    return;
  }
  c->refs--;
  send_simple(c, req->result == 0 && S_ISDIR(req->statbuf.st_mode) ? 403 : 404,
              "");
}

static void on_open(weft_fs_req *req) {
  conn *c = req->data;
  if (req->result >= 0) c->fd = (int)req->result; /* closed by whoever ends */
  if (c->closing) {
    conn_unref(c);
    return;
  }
  if (req->result == -ENOENT && c->index) {
    c->w->path[strlen(c->w->path) - strlen("index.html")] = '\0';
    if (weft_fs_stat(c->srv->loop, &c->w->fs, c->w->path, on_dir_stat) == 0)
      return;
  }
  if (req->result < 0) {
    c->refs--;
    send_simple(c, fs_error_status(req->result), "");
  } else if (weft_fs_fstat(c->srv->loop, &c->w->fs, c->fd, on_fstat) < 0) {
    c->refs--;
    send_simple(c, 500, "");
  }
}

static void on_body_sent(weft_sendfile_req *req, int status) {
  conn *c = req->data;
  if (c->closing) return;
  if (status < 0) { /* an error, or the file shrank under us (WEFT_EOF) */
    conn_close(c);
    return;
  }
  send_body(c);
}

/* Sends the body straight from the page cache, one chunk per request on
 * the stream's write queue (weft waits for socket space and caps the bytes
 * per turn, so one fast reader of a large file cannot starve the other
 * connections). A chunk of 1 MiB: at 256 KiB the queue ran dry between
 * chunks (the next is queued from the last one's completion, a turn
 * later), and a fast client got 0.88x nginx's 1 MiB rate (bench_httpd
 * httpd2_1m, wload). --send-ms counts from the last bytes sent (on_timeout),
 * not from the last chunk that completed. */
static void send_body(conn *c) {
  if (c->off >= c->end) {
    finish_request(c);
    return;
  }
  size_t want = (size_t)(c->end - c->off) < SEND_CHUNK
                    ? (size_t)(c->end - c->off)
                    : SEND_CHUNK;
  off_t from = c->off;
  c->off += (off_t)want;
  c->w->body.data = c;
  if (weft_stream_sendfile(&c->w->body, &c->lc.tcp.stream, c->fd, from, want,
                           on_body_sent) < 0) {
    conn_close(c);
    return;
  }
  arm(c, c->srv->opt->send_ms);
  c->sent_mark = weft_stream_write_queue_size(&c->lc.tcp.stream);
}

/* A complete request is parsed: answer it. */
static void start_request(conn *c) {
  c->serving = true;
  c->keep_alive = c->w->req.keep_alive;
  /* POST is looked up as nginx does: 405 only for a file that exists. */
  if (c->w->req.method == HTTPD_OTHER) {
    send_simple(c, 405, "");
    return;
  }
  int status =
      httpd_map_path(c->w->req.url, c->w->req.url_len, c->srv->opt->root,
                     c->w->path, sizeof c->w->path, &c->index);
  if (status != 0) {
    send_simple(c, status, "");
    return;
  }
  fcache_entry *e =
      fcache_get(&c->srv->cache, c->w->path, weft_now(c->srv->loop));
  if (e != NULL) { /* a hot file: no trip to the pool */
    use_entry(c, e);
    respond_file(c);
    return;
  }
  c->w->fs.data = c;
  arm(c, c->srv->opt->send_ms);
  if (weft_fs_open(c->srv->loop, &c->w->fs, c->w->path, O_RDONLY | O_CLOEXEC, 0,
                   on_open) < 0)
    send_simple(c, 500, "");
  else
    c->refs++;
}

static void on_continue_written(weft_write_req *req, int status) {
  conn *c = req->data;
  if (status < 0 && !c->closing) conn_close(c);
}

/* The head is complete and a body follows: a client waiting for
 * "100 Continue" (RFC 9110 10.1.1; never sent to HTTP/1.0) gets it, since
 * the body is read (and skipped) before the final reply. */
static void on_head(conn *c) {
  static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
  if (!c->w->req.has_body || !c->w->req.expect_continue || c->w->req.minor == 0)
    return;
  weft_buf b = weft_buf_init((char *)msg, sizeof msg - 1);
  c->w->creq.data = c;
  if (weft_stream_write(&c->w->creq, &c->lc.tcp.stream, &b, 1,
                        on_continue_written) < 0)
    conn_close(c);
}

/* Parses buffered input until a request is complete, the input runs out
 * or it is malformed. One request at a time: pipelined ones wait,
 * unparsed, in the input buffer until this one's reply has gone out. */
static void process_input(conn *c) {
  enum httpd_event ev = HTTPD_EV_MORE;
  /* After the head, the parser is asked again even without input: a
   * request without a body is complete. */
  while (!c->serving && !c->closing && !c->lingering &&
         (c->in_len > 0 || ev == HTTPD_EV_HEAD)) {
    if (!c->started) { /* slow clients: the request must arrive within header_ms
                        */
      c->started = true;
      arm(c, c->srv->opt->header_ms);
    }
    size_t n = 0;
    ev = httpd_req_feed(&c->w->req, c->w->in, c->in_len, &n);
    memmove(c->w->in, c->w->in + n, c->in_len - n);
    c->in_len -= n;
    if (ev == HTTPD_EV_HEAD)
      on_head(c);
    else if (ev == HTTPD_EV_DONE)
      start_request(c);
    else if (ev == HTTPD_EV_ERROR) {
      c->serving = true;
      c->reject = c->w->req.status;
      c->keep_alive = false;
      c->in_len = 0;
      send_simple(c, c->reject, "");
    } else
      break;
  }
}

/* The reply is out: close, or go on with the next (maybe pipelined) one. */
static void finish_request(conn *c) {
  release_file(c);
  c->serving = false;
  if (!c->keep_alive) {
    linger(c);
    return;
  }
  reset_request(c);
  if (c->peer_eof && c->in_len == 0) {
    conn_close(c);
    return;
  }
  arm(c, c->srv->opt->idle_ms);
  process_input(c);
  if (c->serving || c->closing || c->lingering) return;
  if (c->peer_eof)
    conn_close(c); /* a partial request that cannot complete */
  else if (!weft_stream_is_reading(&c->lc.tcp.stream) && start_reading(c) < 0)
    conn_close(c);
  else
    maybe_idle(c);
}

/* ---- socket input ----------------------------------------------------------
 */

static void on_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  conn *c = s->base.data;
  (void)suggested;
  if (c->w == NULL && !work_take(c)) { /* the read gets -ENOBUFS: closed */
    *buf = weft_buf_init(NULL, 0);
    return;
  }
  if (c->lingering) c->in_len = 0; /* drained input is dropped */
  *buf = weft_buf_init(c->w->in + c->in_len, IN_MAX - c->in_len);
}

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  conn *c = s->base.data;
  (void)buf;
  if (nread < 0) {
    weft_stream_read_stop(s);
    c->peer_eof = true;
    if (nread != WEFT_EOF || c->lingering || !c->serving) conn_close(c);
    return;
  }
  c->in_len += (size_t)nread;
  if (c->lingering) return;
  process_input(c);
  /* Only a reply in progress leaves the buffer full (the parser takes
   * every complete line and fails on a longer one): finish_request()
   * resumes reading. */
  if (!c->closing && c->in_len == IN_MAX) weft_stream_read_stop(s);
  maybe_idle(c); /* e.g. a read that found nothing */
}

static int start_reading(conn *c) {
  return weft_stream_read_start(&c->lc.tcp.stream, on_alloc, on_read);
}

/* The group's allocation of a connection on loop i (NULL: refused). Only
 * the socket counts until on_conn adds the timer. */
static weft_lgroup_conn *conn_new(weft_lgroup *g, unsigned i, void *arg) {
  (void)g;
  conn *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->srv = &((server *)arg)[i];
  c->fd = -1;
  c->refs = 1;
  return &c->lc;
}

static void on_conn(weft_lgroup_conn *lc, void *arg) {
  (void)arg;
  conn *c = (conn *)lc;
  weft_timer_init(c->srv->loop, &c->timer);
  c->refs = 2;
  c->lc.tcp.stream.base.data = c->timer.base.data = c;
  reset_request(c);
  weft_tcp_nodelay(&c->lc.tcp, true); /* head and body are separate sends */
  arm(c, c->srv->opt->idle_ms);
  if (start_reading(c) < 0) conn_close(c);
}

/* ---- the loop group, main -------------------------------------------------
 */

/* This thread's time on a CPU and waiting for one (runnable, not running)
 * in ms, from /proc/thread-self/schedstat; false if the kernel has none. */
static bool sched_times(unsigned long long *run_ms,
                        unsigned long long *wait_ms) {
  FILE *f = fopen("/proc/thread-self/schedstat", "r");
  if (f == NULL) return false;
  unsigned long long run, wait;
  bool ok = fscanf(f, "%llu %llu", &run, &wait) == 2;
  fclose(f);
  *run_ms = run / 1000000u;
  *wait_ms = wait / 1000000u;
  return ok;
}

/* --stats: each loop prints one line of its metrics (one write, so the
 * loops' lines do not interleave). */
static int print_stats(weft_lgroup *g, unsigned i, void *local, void *arg,
                       weft_lgroup_result *res) {
  (void)local, (void)res;
  const server *srv = &((const server *)arg)[i]; /* loop i's: we run on it */
  weft_loop_metrics m;
  weft_lgroup_stats st;
  int err = weft_loop_get_metrics(weft_lgroup_loop(g, i), &m, sizeof m);
  if (err == 0) err = weft_lgroup_get_stats(g, i, &st);
  if (err < 0) return err;
  char line[480];
  int n = snprintf(
      line, sizeof line,
      "stats loop=%u accepted=%llu live=%llu turns=%llu callbacks=%llu "
      "io_events=%llu timers=%llu busy_ms=%llu wait_ms=%llu "
      "longest_turn_us=%llu deferred_max=%llu",
      i, (unsigned long long)st.accepted, (unsigned long long)st.live,
      (unsigned long long)m.turns, (unsigned long long)m.callbacks,
      (unsigned long long)m.io_events, (unsigned long long)m.timers_fired,
      (unsigned long long)(m.busy_ns / 1000000u),
      (unsigned long long)(m.wait_ns / 1000000u),
      (unsigned long long)(m.longest_turn_ns / 1000u),
      (unsigned long long)m.deferred_max_depth);
  unsigned long long run_ms, wait_ms;
  if (sched_times(&run_ms, &wait_ms))
    n += snprintf(line + n, sizeof line - (size_t)n,
                  " cpu_ms=%llu runq_wait_ms=%llu", run_ms, wait_ms);
  n += snprintf(line + n, sizeof line - (size_t)n, " work=%u spare=%u",
                srv->n_work, srv->n_spare);
  n += snprintf(line + n, sizeof line - (size_t)n, "\n");
  if (write(STDOUT_FILENO, line, (size_t)n) < 0) return -errno;
  return 0;
}

static void on_usr1(weft_signal *s, int signum) {
  (void)signum;
  server *srv = s->base.data;
  weft_future *f;
  if (weft_lgroup_broadcast(srv->g, srv->loop, print_stats, srv, NULL, &f) == 0)
    weft_future_unref(f); /* the lines are the result */
}

static int loop_init(weft_lgroup *g, unsigned i, weft_loop *loop, void *arg) {
  server *srv = &((server *)arg)[i];
  srv->loop = loop;
  srv->g = g;
  if (i != 0 || !srv->opt->stats) return 0;
  int err = weft_signal_init(loop, &srv->usr1);
  srv->usr1.base.data = srv;
  if (err == 0) err = weft_signal_start(&srv->usr1, on_usr1, SIGUSR1);
  if (err == 0) weft_unref(&srv->usr1.base); /* never keeps the loop up */
  return err;
}

static int parse_addr(const options *o, struct sockaddr_storage *ss) {
  return strchr(o->host, ':')
             ? weft_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)ss)
             : weft_ip4_addr(o->host, o->port, (struct sockaddr_in *)ss);
}

static const char usage_text[] =
    "usage: httpd --port P --root DIR [--loops N] [--handoff] [--host ADDR]\n"
    "             [--idle-ms MS] [--header-ms MS] [--send-ms MS] "
    "[--cache-ms MS] [--stats]\n"
    "  Serves the files under DIR over HTTP/1.1 on ADDR (default 127.0.0.1)\n"
    "  port P (0..65535; 0: any free port), printing \"listening on PORT\";\n"
    "  N loops (1..256, default 1), each with its own listening socket\n"
    "  (SO_REUSEPORT: the kernel spreads connections); --handoff: loop 0\n"
    "  accepts them all and hands each to the loop with the fewest live\n"
    "  connections. Timeouts in ms (> 0): idle 15000,\n"
    "  header 10000, send 30000; --cache-ms 1000 (0: no descriptor cache).\n"
    "  --stats: on SIGUSR1 each loop prints a line \"stats loop=I accepted=..\n"
    "  live=.. turns=.. ...\" (its weft_loop_metrics and connections; then\n"
    "  cpu_ms, runq_wait_ms: its thread's time on a CPU and waiting for "
    "one).\n";

/* Says what is wrong, then the usage on stderr; returns 2. */
static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("httpd: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fputs(usage_text, stderr);
  return 2;
}

static int parse_args(int argc, char **argv, options *o, char *root) {
  *o = (options){.host = "127.0.0.1",
                 .loops = 1,
                 .port = 65536,
                 .idle_ms = 15000,
                 .header_ms = 10000,
                 .send_ms = 30000,
                 .cache_ms = 1000};
  const char *dir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (strcmp(k, "-h") == 0 || strcmp(k, "--help") == 0) {
      fputs(usage_text, stdout);
      exit(0);
    }
    if (strcmp(k, "--stats") == 0) {
      o->stats = true;
      continue;
    }
    if (strcmp(k, "--handoff") == 0) {
      o->handoff = true;
      continue;
    }
    static const char *const opts[] = {"--root",    "--host",    "--port",
                                       "--loops",   "--idle-ms", "--header-ms",
                                       "--send-ms", "--cache-ms"};
    size_t which = 0;
    while (which < sizeof opts / sizeof *opts && strcmp(k, opts[which]) != 0)
      which++;
    if (which == sizeof opts / sizeof *opts)
      return usage("unknown argument '%s'", k);
    if (i + 1 >= argc) return usage("%s needs a value", k);
    const char *v = argv[++i];
    if (which == 0) {
      dir = v;
      continue;
    }
    if (which == 1) {
      o->host = v;
      continue;
    }
    unsigned long long n = 0;
    static const unsigned long long lo[] = {0, 0, 0, 1, 1, 1, 1, 0};
    unsigned long long hi = which == 2   ? 65535
                            : which == 3 ? 256
                                         : (unsigned long long)WEFT_TIMEOUT_MAX;
    if (!httpd_parse_uint(v, WEFT_TIMEOUT_MAX, &n) || n < lo[which] || n > hi)
      return usage("%s %s: want a number from %llu to %llu", k, v, lo[which],
                   hi);
    if (which == 2)
      o->port = (unsigned)n;
    else if (which == 3)
      o->loops = (unsigned)n;
    else if (which == 4)
      o->idle_ms = n;
    else if (which == 5)
      o->header_ms = n;
    else if (which == 6)
      o->send_ms = n;
    else
      o->cache_ms = n;
  }
  if (dir == NULL) return usage("--root DIR is required");
  if (o->port > 65535) return usage("--port P is required");
  /* Requests are mapped under the canonical root (no trailing slash). */
  if (realpath(dir, root) == NULL) {
    perror(dir);
    return 2;
  }
  if (strcmp(root, "/") == 0) root[0] = '\0';
  o->root = root;
  return 0;
}

/* Makes the group and listens (port 0: the port it got goes to o->port). */
static int start_group(weft_lgroup **g, server *srv, options *o) {
  weft_lgroup_options go = {.loops = o->loops,
                            .stop_signals = true,
                            .on_loop_init = loop_init,
                            .on_conn = on_conn,
                            .on_conn_closed = on_conn_closed,
                            .on_conn_abort = on_conn_abort,
                            .conn_new = conn_new,
                            .arg = srv};
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int err = parse_addr(o, &ss);
  if (err == 0 && (err = weft_lgroup_new(g, &go)) == 0) {
    err = weft_lgroup_listen(
        *g, (struct sockaddr *)&ss,
        o->handoff ? WEFT_LGROUP_HANDOFF : WEFT_LGROUP_REUSEPORT, 1024);
    if (err == 0)
      err = weft_lgroup_getsockname(*g, (struct sockaddr *)&ss, &len);
    if (err == 0)
      o->port = (unsigned)weft_sockaddr_port((struct sockaddr *)&ss);
    if (err == 0) err = weft_lgroup_start(*g);
  }
  if (err < 0)
    fprintf(stderr, "httpd: listen on %s:%u: %s\n", o->host, o->port,
            weft_strerror(err));
  return err;
}

int main(int argc, char **argv) {
  options o;
  static char root[PATH_MAX];
  int rc = parse_args(argc, argv, &o, root);
  if (rc != 0) return rc;
  /* sendfile(2) to a reset socket raises SIGPIPE; the error return is
   * what we want (weft_stream_sendfile() would also ignore it, but only
   * from the first body on). SIGTERM and SIGINT stop the group
   * (stop_signals). */
  signal(SIGPIPE, SIG_IGN);
  server *srv = calloc(o.loops, sizeof *srv);
  if (srv == NULL) return 1;
  for (unsigned i = 0; i < o.loops; i++) {
    srv[i].opt = &o;
    srv[i].cache.valid_ms = o.cache_ms;
  }
  weft_lgroup *g = NULL;
  int err = start_group(&g, srv, &o);
  if (err == 0) {
    printf("listening on %u\n", o.port);
    fflush(stdout);
  } else if (g) {
    weft_lgroup_stop(g, 0);
  }
  if (g) {
    weft_lgroup_wait(g, WEFT_WAIT_FOREVER); /* -EINVAL if never started */
    weft_lgroup_free(g);
  }
  for (unsigned i = 0; i < o.loops; i++) { /* the loops are gone: no race */
    fcache_clear(&srv[i].cache);
    for (work *w; (w = srv[i].spare) != NULL; free(w))
      srv[i].spare = w->next;
  }
  free(srv);
  if (err < 0) return 1;
  return 0;
}
