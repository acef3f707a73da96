/* prefork — one listener process hands accepted TCP connections to N
 * worker processes over fd passing; each worker serves them on its own
 * loop with a tiny HTTP responder.
 *
 *   prefork [--port P] [--workers N] [--host ADDR]
 *
 * The listener spawns N copies of this program (--worker), each with one
 * end of a Unix socketpair as its fd 3 (a WEFT_STDIO_PIPE slot). For each
 * connection it accepts, it detaches the socket from its handle
 * (weft_stream_detach) and writes one byte with the fd
 * (weft_pipe_write_fds) to the next worker, round robin. A worker takes
 * the fd (weft_pipe_take_fds), opens it as a weft_tcp and answers one
 * request ("HTTP/1.1 200 OK", body "worker PID\n", then closes).
 *
 * Shutdown: SIGINT or SIGTERM to the listener stops accepting and closes
 * the control sockets; each worker sees end of file, finishes the
 * connections it has and exits 0; the listener waits for them, prints how
 * many connections each worker got and exits 0. Workers ignore SIGINT (a
 * terminal's ^C reaches the whole group; the listener decides), and are
 * spawned kill_on_close, so none outlives an aborted listener. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

#define MAX_WORKERS 64

static const char usage[] =
    "usage: prefork [--port P] [--workers N] [--host ADDR]\n"
    "  A listener on ADDR (default 127.0.0.1) port P (default 8080; 0: any\n"
    "  free port, printed on stderr) hands each connection to one of N\n"
    "  worker processes (1..64, default 2), which answer HTTP with their\n"
    "  pid. SIGINT/SIGTERM stop it cleanly.\n"
    "  (--worker: internal, a worker serving connections passed on fd 3)\n";

/* ---- the worker ---------------------------------------------------------- */

typedef struct wconn {
  weft_tcp tcp;
  weft_write_req wr;
  size_t len;
  char buf[4096];
  char reply[160];
} wconn;

static int open_conns;
static bool ctl_eof;
static weft_pipe ctl;

static void conn_closed(weft_handle *h) {
  free(h->data);
  open_conns--;
}

static void on_replied(weft_write_req *req, int status) {
  (void)status;
  wconn *c = req->data;
  weft_close(&c->tcp.stream.base, conn_closed);
}

static void conn_alloc(weft_stream *s, size_t suggested, weft_buf *buf) {
  (void)suggested;
  wconn *c = s->base.data;
  *buf = weft_buf_init(c->buf + c->len, sizeof c->buf - 1 - c->len);
}

/* Reads up to the end of the request head, then answers once. */
static void conn_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  wconn *c = s->base.data;
  if (n < 0 || (c->len += (size_t)n) == sizeof c->buf - 1) {
    weft_close(&s->base, conn_closed);
    return;
  }
  c->buf[c->len] = '\0';
  if (strstr(c->buf, "\r\n\r\n") == NULL) return;
  weft_stream_read_stop(s);
  char body[32];
  int blen = snprintf(body, sizeof body, "worker %ld\n", (long)getpid());
  int rlen = snprintf(c->reply, sizeof c->reply,
                      "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n%s",
                      blen, body);
  weft_buf r = weft_buf_init(c->reply, (size_t)rlen);
  c->wr.data = c;
  if (weft_stream_write(&c->wr, s, &r, 1, on_replied) != 0)
    weft_close(&s->base, conn_closed);
}

static void serve_fd(weft_loop *loop, int fd) {
  wconn *c = calloc(1, sizeof *c);
  if (c == NULL || weft_tcp_init(loop, &c->tcp) != 0) {
    free(c);
    close(fd);
    return;
  }
  c->tcp.stream.base.data = c;
  open_conns++;
  if (weft_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    weft_close(&c->tcp.stream.base, conn_closed);
    return;
  }
  if (weft_stream_read_start(&c->tcp.stream, conn_alloc, conn_read) != 0)
    weft_close(&c->tcp.stream.base, conn_closed);
}

/* One byte per connection on the control socket, its fd with it. */
static void ctl_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  (void)buf;
  int fds[WEFT_PIPE_FDS_MAX];
  int k;
  while ((k = weft_pipe_take_fds(&ctl, fds, WEFT_PIPE_FDS_MAX)) > 0)
    for (int i = 0; i < k; i++)
      serve_fd(s->base.loop, fds[i]);
  if (n < 0) { /* the listener closed us (or died): no more connections */
    ctl_eof = true;
    weft_close(&s->base, NULL);
  }
}

static int worker_main(void) {
  signal(SIGINT, SIG_IGN);
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  if (weft_pipe_init(loop, &ctl) != 0 || weft_pipe_open(&ctl, 3) != 0 ||
      weft_stream_read_start(&ctl.stream, NULL, ctl_read) != 0) {
    fprintf(stderr, "prefork worker: no control socket on fd 3\n");
    return 1;
  }
  /* runs until the control socket is closed and every connection is done */
  int err = weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) err = weft_loop_free(loop);
  return err == 0 && ctl_eof && open_conns == 0 ? 0 : 1;
}

/* ---- the listener -------------------------------------------------------- */

typedef struct worker {
  weft_process proc;
  weft_pipe ctl;
  unsigned long handed;
  bool exited;
  int64_t status;
} worker;

static worker workers[MAX_WORKERS];
static unsigned nworkers, next_worker, exits;
static weft_tcp listener;
static weft_signal sigs[2];
static bool stopping;

typedef struct handoff {
  weft_write_req wr;
} handoff;

static void handed(weft_write_req *req, int status) {
  if (status != 0 && !stopping)
    fprintf(stderr, "prefork: handing a connection over: %s\n",
            weft_strerror(status));
  free(req);
}

static void stop_all(void) {
  if (stopping) return;
  stopping = true;
  weft_close(&listener.stream.base, NULL);
  for (int i = 0; i < 2; i++)
    weft_close(&sigs[i].base, NULL);
  for (unsigned i = 0; i < nworkers; i++)
    weft_close(&workers[i].ctl.stream.base, NULL);
}

static void on_worker_exit(weft_process *p, int64_t status, int sig) {
  worker *w = p->base.data;
  w->exited = true;
  w->status = sig != 0 ? -sig : status;
  weft_close(&p->base, NULL);
  if (++exits == nworkers) return;
  if (!stopping) {
    fprintf(stderr, "prefork: worker %ld died (%s %d): stopping\n",
            (long)p->pid, sig ? "signal" : "status", sig ? sig : (int)status);
    stop_all();
  }
}

static void hand_over(int fd) {
  worker *w = &workers[next_worker];
  next_worker = (next_worker + 1) % nworkers;
  handoff *h = malloc(sizeof *h);
  weft_buf one = weft_buf_init("C", 1);
  int err = h == NULL
                ? -ENOMEM
                : weft_pipe_write_fds(&h->wr, &w->ctl, &one, 1, &fd, 1, handed);
  close(fd); /* the write holds its own dup */
  if (err != 0) {
    free(h);
    fprintf(stderr, "prefork: dropped a connection: %s\n", weft_strerror(err));
    return;
  }
  w->handed++;
}

static void free_handle(weft_handle *h) { free(h); } /* base is first */

static void on_connection(weft_stream *server, int status) {
  if (status != 0) return;
  weft_tcp *c = malloc(sizeof *c);
  if (c == NULL || weft_tcp_init(server->base.loop, c) != 0 ||
      weft_stream_accept(server, &c->stream) != 0) {
    free(c);
    return;
  }
  int fd = -1;
  c->stream.base.data = c;
  if (weft_stream_detach(&c->stream, &fd, free_handle) == 0)
    hand_over(fd);
  else
    weft_close(&c->stream.base, free_handle);
}

static void on_signal(weft_signal *s, int signum) {
  (void)s;
  (void)signum;
  stop_all();
}

static int spawn_workers(weft_loop *loop, const char *self) {
  char *argv[] = {(char *)self, "--worker", NULL};
  for (unsigned i = 0; i < nworkers; i++) {
    worker *w = &workers[i];
    weft_pipe_init(loop, &w->ctl);
    weft_stdio st[4] = {{WEFT_STDIO_IGNORE},
                        {WEFT_STDIO_INHERIT},
                        {WEFT_STDIO_INHERIT},
                        {WEFT_STDIO_PIPE, -1, &w->ctl}};
    weft_process_options o = {.argv = argv,
                              .stdio = st,
                              .stdio_count = 4,
                              .flags = WEFT_PROCESS_KILL_ON_CLOSE,
                              .exit_cb = on_worker_exit};
    w->proc.base.data = w;
    int err = weft_spawn(loop, &w->proc, &o);
    if (err != 0) {
      fprintf(stderr, "prefork: spawning a worker: %s\n", weft_strerror(err));
      weft_close(&w->ctl.stream.base, NULL);
      nworkers = i;
      return err;
    }
  }
  return 0;
}

static int listen_on(const char *host, long port) {
  struct sockaddr_storage ss;
  int err = weft_ip4_addr(host, (unsigned)port, (struct sockaddr_in *)&ss);
  if (err != 0)
    err = weft_ip6_addr(host, (unsigned)port, (struct sockaddr_in6 *)&ss);
  if (err != 0) {
    fprintf(stderr, "prefork: bad address '%s'\n", host);
    return err;
  }
  err = weft_tcp_bind(&listener, (struct sockaddr *)&ss, 0);
  if (err == 0) err = weft_tcp_listen(&listener, 128, on_connection);
  if (err != 0) {
    fprintf(stderr, "prefork: listen on %s:%ld: %s\n", host, port,
            weft_strerror(err));
    return err;
  }
  socklen_t len = sizeof ss;
  weft_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
  unsigned real =
      ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
  fprintf(stderr, "prefork: listening on %s port %u with %u workers\n", host,
          real, nworkers);
  return 0;
}

static int listener_main(const char *host, long port) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  /* everything stop_all() closes exists from here on */
  weft_tcp_init(loop, &listener);
  for (int i = 0; i < 2; i++)
    weft_signal_init(loop, &sigs[i]);
  int err = spawn_workers(loop, self);
  for (int i = 0; i < 2 && err == 0; i++)
    err = weft_signal_start(&sigs[i], on_signal, i == 0 ? SIGINT : SIGTERM);
  if (err == 0) err = listen_on(host, port);
  if (err != 0) stop_all(); /* the workers see end of file and exit */
  int rerr = weft_loop_run(loop, WEFT_RUN_DEFAULT);
  if (err == 0) err = rerr;
  if (err == 0) err = weft_loop_free(loop);
  int bad = 0;
  for (unsigned i = 0; i < nworkers; i++) {
    fprintf(stderr,
            "prefork: worker %u (pid %ld): %lu connections, exit %lld\n", i,
            (long)workers[i].proc.pid, workers[i].handed,
            (long long)workers[i].status);
    bad += !workers[i].exited || workers[i].status != 0;
  }
  return err == 0 && bad == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = 8080;
  nworkers = 2;
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "--worker") == 0)
      return worker_main();
    else if (strcmp(argv[i], "--port") == 0)
      port = ex_long(argc, argv, &i, 0, 65535, usage);
    else if (strcmp(argv[i], "--workers") == 0)
      nworkers = (unsigned)ex_long(argc, argv, &i, 1, MAX_WORKERS, usage);
    else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
      host = argv[++i];
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  return listener_main(host, port);
}
