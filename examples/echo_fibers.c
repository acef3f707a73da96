/* echo_fibers — a TCP echo server with one fiber per connection, and its
 * client, which sends LINES lines one at a time and checks every echo
 * (weft_fiber_accept / read / write for the server, weft_fiber_connect /
 * write / read_exact for the client). The asyncio twin is
 * examples/python/echo_fibers.py.
 *
 *   echo_fibers [--port P]
 *       serves on 127.0.0.1:P (0: any free port) and prints
 *       "echo_fibers: listening on 127.0.0.1:PORT"
 *   echo_fibers --client PORT [--lines N]
 *       sends N lines (default 10000), checks every echo
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"
#include <weft/fiber.h>

static const char usage[] =
    "usage: echo_fibers [--port P] | --client PORT [--lines N]\n";

typedef struct conn {
  weft_tcp tcp;
  char buf[64 * 1024];
} conn;

static void on_closed(weft_handle *h) { free(h); }

static int serve(weft_fiber *self, void *arg) {
  (void)self;
  conn *c = arg;
  ssize_t n;
  while ((n = weft_fiber_read(&c->tcp.stream, c->buf, sizeof c->buf)) > 0)
    if (weft_fiber_write(&c->tcp.stream, c->buf, (size_t)n) < 0) break;
  weft_close(&c->tcp.stream.base, on_closed);
  return 0;
}

/* One fiber accepts, each connection gets a fiber of its own. */
static int acceptor(weft_fiber *self, void *arg) {
  for (;;) {
    conn *c = malloc(sizeof *c);
    if (c == NULL) return -ENOMEM;
    weft_tcp_init(weft_fiber_loop(self), &c->tcp);
    int err = weft_fiber_accept(arg, &c->tcp.stream);
    if (err == 0)
      err = weft_fiber_spawn(weft_fiber_loop(self), serve, c, NULL, NULL);
    if (err != 0) weft_close(&c->tcp.stream.base, on_closed);
    if (err == -ECANCELED) return 0; /* the listener closed */
    if (err == 0) weft_tcp_nodelay(&c->tcp, true);
  }
}

static long n_lines = 10000;

static int client(weft_fiber *self, void *arg) {
  conn *c = malloc(sizeof *c);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", (unsigned)(uintptr_t)arg, &a);
  if (c == NULL) return -ENOMEM;
  weft_tcp_init(weft_fiber_loop(self), &c->tcp);
  ssize_t err = weft_fiber_connect(&c->tcp, (struct sockaddr *)&a);
  for (long i = 0; err >= 0 && i < n_lines; i++) {
    char line[32];
    size_t len = (size_t)snprintf(line, sizeof line, "line %ld\n", i);
    if ((err = weft_fiber_write(&c->tcp.stream, line, len)) >= 0)
      err = weft_fiber_read_exact(&c->tcp.stream, c->buf, len);
    if (err >= 0 && memcmp(c->buf, line, len) != 0) {
      fprintf(stderr, "echo_fibers: line %ld came back as %.*s\n", i, (int)len,
              c->buf);
      err = -EPROTO;
    }
  }
  weft_close(&c->tcp.stream.base, on_closed);
  return err < 0 ? (int)err : 0;
}

static int fail(const char *what, int err) {
  fprintf(stderr, "echo_fibers: %s: %s\n", what, weft_strerror(err));
  return 1;
}

int main(int argc, char **argv) {
  long port = 0, to = 0;
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "--port") == 0)
      port = ex_long(argc, argv, &i, 0, 65535, usage);
    else if (strcmp(argv[i], "--client") == 0)
      to = ex_long(argc, argv, &i, 1, 65535, usage);
    else if (strcmp(argv[i], "--lines") == 0)
      n_lines = ex_long(argc, argv, &i, 0, 100000000, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  weft_loop *loop;
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) return fail("loop", err);
  if (to != 0) {
    if ((err = weft_fiber_run(loop, client, (void *)(uintptr_t)to, NULL,
                              NULL)) != 0)
      return fail("client", err);
    printf("echo_fibers: %ld lines echoed and checked\n", n_lines);
  } else {
    weft_tcp server;
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    weft_ip4_addr("127.0.0.1", (unsigned)port, (struct sockaddr_in *)&a);
    weft_tcp_init(loop, &server);
    if ((err = weft_tcp_bind(&server, (struct sockaddr *)&a, 0)) != 0 ||
        (err = weft_tcp_listen(&server, 4096, NULL)) != 0 ||
        (err = weft_tcp_getsockname(&server, (struct sockaddr *)&a, &len)) != 0)
      return fail("listen", err);
    if ((err = weft_fiber_spawn(loop, acceptor, &server.stream, NULL, NULL)) !=
        0)
      return fail("spawn", err);
    printf("echo_fibers: listening on 127.0.0.1:%d\n",
           weft_sockaddr_port((struct sockaddr *)&a));
    fflush(stdout);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  weft_loop_free(loop);
  return 0;
}
