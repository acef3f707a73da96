/* echo — a TCP echo server on weft.
 *
 *   echo [--port P] [--loops N] [--host ADDR]
 *
 * N loops run on N threads as one loop group (weft/loopgroup.h), each
 * with its own listener bound to the same port with SO_REUSEPORT, so the
 * kernel spreads connections across them. SIGINT or SIGTERM stops it
 * cleanly: the group stops accepting, closes every connection (an echo
 * has no natural end to wait for: the drain's deadline is 0) and joins
 * its threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

#define MAX_LOOPS 64

static const char usage[] =
    "usage: echo [--port P] [--loops N] [--host ADDR]\n"
    "  A TCP echo server on ADDR (default 0.0.0.0) port P (default 7000;\n"
    "  0: any free port, printed on stderr), with N loops on N threads\n"
    "  (1..64, default 1) sharing the port. SIGINT/SIGTERM stop it.\n";

/* The read buffer: big enough that a message of up to 256 KiB that has
 * arrived whole is read with one read and echoed with one write (with
 * 64 KiB, a 100 KiB message took two of each and two loop turns). */
#define BUF_SIZE (256 * 1024)

typedef struct conn {
  weft_lgroup_conn lc; /* first: its tcp is the connection */
  weft_write_req wr;
  char buf[BUF_SIZE];
} conn;

static void on_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  (void)suggested;
  conn *c = (conn *)s;
  *buf = weft_buf_init(c->buf, sizeof c->buf);
}

static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf);

/* The echo went out: read the next chunk. */
static void on_written(weft_write_req *req, int status) {
  conn *c = req->data;
  if (status != 0 ||
      weft_stream_read_start(&c->lc.tcp.stream, on_alloc, on_read) != 0)
    weft_lgroup_conn_close(&c->lc);
}

/* One chunk at a time: stop reading until it is echoed, so a client that
 * does not read its replies cannot make the server buffer without bound. */
static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  conn *c = (conn *)s;
  if (n == 0) return;
  if (n < 0) { /* WEFT_EOF or an error */
    weft_lgroup_conn_close(&c->lc);
    return;
  }
  weft_stream_read_stop(s);
  c->wr.data = c;
  weft_buf out = weft_buf_init(buf->base, (size_t)n);
  if (weft_stream_write(&c->wr, s, &out, 1, on_written) != 0)
    weft_lgroup_conn_close(&c->lc);
}

/* A connection, opened by the group on one of its loops. */
static void on_conn(weft_lgroup_conn *lc, void *arg) {
  (void)arg;
  if (weft_stream_read_start(&lc->tcp.stream, on_alloc, on_read) != 0) {
    weft_lgroup_conn_close(lc);
    return;
  }
  weft_tcp_nodelay(&lc->tcp, true);
}

static int n_loops = 1;

static void parse(int argc, char **argv, unsigned *port, const char **host) {
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "--port") == 0)
      *port = (unsigned)ex_long(argc, argv, &i, 0, 65535, usage);
    else if (strcmp(argv[i], "--loops") == 0)
      n_loops = (int)ex_long(argc, argv, &i, 1, MAX_LOOPS, usage);
    else if (strcmp(argv[i], "--host") == 0)
      *host = ex_str(argc, argv, &i, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
}

int main(int argc, char **argv) {
  unsigned port = 7000;
  const char *host = "0.0.0.0";
  parse(argc, argv, &port, &host);
  struct sockaddr_storage addr;
  if (weft_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      weft_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
    fprintf(stderr, "echo: bad address %s\n", host);
    return 2;
  }
  weft_lgroup *g;
  weft_lgroup_options o = {.loops = (unsigned)n_loops,
                           .stop_signals = true,
                           .drain_ms = 0,
                           .on_conn = on_conn,
                           .conn_size = sizeof(conn)};
  int err = weft_lgroup_new(&g, &o);
  if (err == 0)
    err = weft_lgroup_listen(g, (struct sockaddr *)&addr, WEFT_LGROUP_REUSEPORT,
                             1024);
  socklen_t len = sizeof addr; /* port 0: the one the group got */
  if (err == 0)
    err = weft_lgroup_getsockname(g, (struct sockaddr *)&addr, &len);
  if (err == 0) err = weft_lgroup_start(g);
  if (err != 0) {
    fprintf(stderr, "echo: listen on %s:%u: %s\n", host, port,
            weft_strerror(err));
    return 1;
  }
  fprintf(stderr, "echo: listening on %s:%d with %d loop(s)\n", host,
          weft_sockaddr_port((struct sockaddr *)&addr), n_loops);
  weft_lgroup_wait(g, WEFT_WAIT_FOREVER);
  weft_lgroup_free(g);
  return 0;
}
