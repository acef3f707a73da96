/* echo_fibers — a TCP echo server with one fiber per connection, and its
 * client, which sends LINES lines one at a time and checks every echo
 * (weft_fiber_start_server with a handler that reads and writes back;
 * weft_fiber_open_connection, write and read_exact for the client). The
 * asyncio twin is examples/python/echo_fibers.py.
 *
 *   echo_fibers [--port P]
 *       serves on 127.0.0.1:P (0: any free port) and prints
 *       "echo_fibers: listening on 127.0.0.1:PORT"
 *   echo_fibers --client PORT [--lines N]
 *       sends N lines (default 10000), checks every echo
 */
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: echo_fibers [--port P] | --client PORT [--lines N]\n";
static long port = 0, to = 0, n_lines = 10000;

static int serve(weft_fiber *self, weft_stream *conn, void *arg) {
  char buf[256 * 1024]; /* uvloop reads 256 KiB at a time too */
  (void)self, (void)arg;
  for (ssize_t n; (n = weft_fiber_read(conn, buf, sizeof buf)) > 0;)
    if (weft_fiber_write(conn, buf, (size_t)n) < 0) break;
  return 0;
}

static int server(weft_fiber *self, void *arg) {
  weft_fiber_server *srv;
  weft_fiber_server_options o = {.stack_size = 320 << 10}; /* for buf */
  (void)self, (void)arg;
  int err = weft_fiber_start_server("127.0.0.1", (unsigned)port, serve, NULL,
                                    &o, &srv);
  if (err != 0) return err;
  dprintf(fileno(stdout), "echo_fibers: listening on 127.0.0.1:%d\n",
          weft_fiber_server_port(srv)); /* unbuffered: print(flush=True) */
  return weft_fiber_serve_forever(srv);
}

static int client(weft_fiber *self, void *arg) {
  weft_tcp t;
  char line[32], back[32];
  (void)self, (void)arg;
  ssize_t err = weft_fiber_open_connection(&t, "127.0.0.1", (unsigned)to);
  for (long i = 0; err >= 0 && i < n_lines; i++) {
    size_t len = (size_t)snprintf(line, sizeof line, "line %ld\n", i);
    if ((err = weft_fiber_write(&t.stream, line, len)) >= 0)
      err = weft_fiber_read_exact(&t.stream, back, len);
    if (err >= 0 && memcmp(back, line, len) != 0) {
      fprintf(stderr, "echo_fibers: line %ld came back as %.*s\n", i, (int)len,
              back);
      err = -EPROTO;
    }
  }
  weft_fiber_close(&t.stream.base); /* -EALREADY if it did not open */
  if (err >= 0) printf("echo_fibers: %ld lines echoed and checked\n", n_lines);
  return err < 0 ? (int)err : 0;
}

int main(int argc, char **argv) {
  ex_opt opts[] = {{"--port", &port, 0, 65535},
                   {"--client", &to, 1, 65535},
                   {"--lines", &n_lines, 0, 100000000},
                   {NULL}};
  ex_parse(argc, argv, opts, 0, 0, usage);
  int err = weft_fiber_main(to != 0 ? client : server, NULL, NULL, NULL);
  if (err != 0) fprintf(stderr, "echo_fibers: %s\n", weft_strerror(err));
  return err != 0;
}
