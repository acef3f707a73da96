/* first_fibers — the guide's first program (docs/guide/getting-started.md)
 * in fiber style: the same server and client as first_callbacks.c, each a
 * fiber that reads top to bottom, awaiting every operation where the
 * other styles register a callback or a continuation. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: first_fibers\n"
    "  a server and a client on 127.0.0.1 in one program; prints the\n"
    "  server's answer to \"hello\".\n";

static weft_tcp server, conn, client;

/* The server: accept one connection, answer its line upper-cased. */
static int serve(weft_fiber *self, void *arg) {
  (void)self;
  (void)arg;
  char line[64];
  int err = weft_fiber_accept(&server.stream, &conn.stream);
  ssize_t n =
      err != 0 ? err : weft_fiber_readline(&conn.stream, line, sizeof line);
  for (ssize_t i = 0; i < n; i++)
    line[i] = (char)toupper((unsigned char)line[i]);
  if (n > 0) n = weft_fiber_write(&conn.stream, line, (size_t)n);
  weft_close(&conn.stream.base, NULL);
  weft_close(&server.stream.base, NULL);
  return n < 0 ? (int)n : 0;
}

/* The client: connect, send a line, print the answer. */
static int ask(weft_fiber *self, void *addr) {
  (void)self;
  char answer[64];
  ssize_t n = weft_fiber_connect(&client, addr);
  if (n == 0) n = weft_fiber_write(&client.stream, "hello\n", 6);
  if (n >= 0) n = weft_fiber_readline(&client.stream, answer, sizeof answer);
  if (n >= 0) printf("the server answered: %s", answer);
  weft_close(&client.stream.base, NULL);
  return n < 0 ? (int)n : 0;
}

/* main's fiber: start both, wait for both (asyncio.gather). */
static int both(weft_fiber *self, void *addr) {
  (void)self;
  weft_future *fs[2] = {NULL, NULL};
  int err = weft_fiber_create_task(serve, NULL, &fs[0]);
  if (err == 0) err = weft_fiber_create_task(ask, addr, &fs[1]);
  int gathered = weft_fiber_gather(fs, 2);
  return err != 0 ? err : gathered;
}

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  weft_loop *loop;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&a);
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_tcp_init(loop, &server);
  if (err == 0) err = weft_tcp_bind(&server, (struct sockaddr *)&a, 0);
  if (err == 0) err = weft_tcp_listen(&server, 16, NULL);
  if (err == 0)
    err = weft_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
  if (err == 0) err = weft_tcp_init(loop, &conn);
  if (err == 0) err = weft_tcp_init(loop, &client);
  if (err == 0) err = weft_fiber_run(loop, both, &a, NULL, NULL);
  if (err != 0) {
    fprintf(stderr, "first_fibers: %s\n", weft_strerror(err));
    return 1;
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* finish the handles' closes */
  weft_loop_free(loop);
  return 0;
}
