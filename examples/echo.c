/* echo — a TCP echo server on weft.
 *
 *   echo [--port P] [--loops N] [--host ADDR]
 *
 * N loops run on N threads, each with its own listener bound to the same
 * port with SO_REUSEPORT, so the kernel spreads connections across them.
 * SIGINT or SIGTERM stops it cleanly: the main loop watches both signals
 * (the other threads block them) and asks every loop, through
 * weft_call_soon_threadsafe(), to close its handles; each loop then runs
 * out of work, its thread ends, and main frees the loops. */
#include <pthread.h>
#include <signal.h>
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

typedef struct conn {
  weft_tcp tcp;
  weft_write_req wr;
  char buf[64 * 1024];
} conn;

typedef struct worker {
  weft_loop *loop;
  weft_tcp listener;
  pthread_t thread;
  int index;
} worker;

static void on_closed(weft_handle *h) { free(h); }

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
      weft_stream_read_start(&c->tcp.stream, on_alloc, on_read) != 0)
    weft_close(&c->tcp.stream.base, on_closed);
}

/* One chunk at a time: stop reading until it is echoed, so a client that
 * does not read its replies cannot make the server buffer without bound. */
static void on_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  conn *c = (conn *)s;
  if (n == 0) return;
  if (n < 0) { /* WEFT_EOF or an error */
    weft_close(&s->base, on_closed);
    return;
  }
  weft_stream_read_stop(s);
  c->wr.data = c;
  weft_buf out = weft_buf_init(buf->base, (size_t)n);
  if (weft_stream_write(&c->wr, s, &out, 1, on_written) != 0)
    weft_close(&s->base, on_closed);
}

static void on_connection(weft_stream *server, int status) {
  if (status != 0) {
    fprintf(stderr, "echo: accept: %s\n", weft_strerror(status));
    return;
  }
  conn *c = malloc(sizeof *c);
  if (c == NULL) return; /* the connection waits; accepted next time */
  weft_tcp_init(weft_handle_loop(&server->base), &c->tcp);
  if (weft_stream_accept(server, &c->tcp.stream) != 0 ||
      weft_stream_read_start(&c->tcp.stream, on_alloc, on_read) != 0) {
    weft_close(&c->tcp.stream.base, on_closed);
    return;
  }
  weft_tcp_nodelay(&c->tcp, true);
}

/* Closes every handle of the loop. Connections are heap-allocated and
 * free themselves; listeners and signal handles (data == 1) are not. */
static void close_one(weft_handle *h, void *arg) {
  (void)arg;
  if (weft_is_closing(h)) return;
  weft_close(h, h->data == (void *)1 ? NULL : on_closed);
}

static void shut_loop(void *arg) {
  worker *w = arg;
  weft_walk(w->loop, close_one, NULL);
}

static worker workers[MAX_LOOPS];
static int n_loops = 1;

static void on_signal(weft_signal *s, int signum) {
  fprintf(stderr, "echo: signal %d, stopping\n", signum);
  for (int i = 1; i < n_loops; i++)
    weft_call_soon_threadsafe(workers[i].loop, shut_loop, &workers[i]);
  (void)s;
  shut_loop(&workers[0]); /* closes the signal handles too */
}

static void *thread_main(void *arg) {
  worker *w = arg;
  weft_loop_run(w->loop, WEFT_RUN_DEFAULT);
  return NULL;
}

static int setup(worker *w, const struct sockaddr *addr) {
  int err = weft_loop_new(&w->loop, NULL);
  if (err == 0) err = weft_tcp_init(w->loop, &w->listener);
  w->listener.stream.base.data = (void *)1; /* not heap: no free on close */
  if (err == 0) err = weft_tcp_bind(&w->listener, addr, WEFT_TCP_REUSEPORT);
  if (err == 0) err = weft_tcp_listen(&w->listener, 1024, on_connection);
  return err;
}

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

/* The port addr's listener really got (port 0 picks one). */
static unsigned bound_port(const weft_tcp *t) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (weft_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0) return 0;
  return ss.ss_family == AF_INET6
             ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
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
  /* only the main thread takes SIGINT/SIGTERM: block them while the
   * worker threads are created (they inherit the mask) */
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  for (int i = 0; i < n_loops; i++) {
    int err = setup(&workers[i], (struct sockaddr *)&addr);
    if (err != 0) {
      fprintf(stderr, "echo: listen on %s:%u: %s\n", host, port,
              weft_strerror(err));
      return 1;
    }
    if (i == 0 && port == 0) { /* the other loops share the port it got */
      port = bound_port(&workers[0].listener);
      if (addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
      else
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
    }
  }
  for (int i = 1; i < n_loops; i++)
    pthread_create(&workers[i].thread, NULL, thread_main, &workers[i]);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  weft_signal sint, sterm;
  weft_signal_init(workers[0].loop, &sint);
  weft_signal_init(workers[0].loop, &sterm);
  sint.base.data = sterm.base.data = (void *)1;
  weft_signal_start(&sint, on_signal, SIGINT);
  weft_signal_start(&sterm, on_signal, SIGTERM);
  fprintf(stderr, "echo: listening on %s:%u with %d loop(s)\n", host, port,
          n_loops);
  weft_loop_run(workers[0].loop, WEFT_RUN_DEFAULT);
  for (int i = 1; i < n_loops; i++)
    pthread_join(workers[i].thread, NULL);
  for (int i = 0; i < n_loops; i++)
    weft_loop_free(workers[i].loop);
  return 0;
}
