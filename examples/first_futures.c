/* first_futures — the guide's first program (docs/guide/getting-started.md)
 * in future style: the same server and client as first_callbacks.c, each
 * written as a chain of continuations. Every step returns the future of
 * the next operation (weft_future_adopt), so one failure skips the rest of
 * its chain and reaches its weft_future_finally, which closes the
 * handles. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: first_futures\n"
    "  a server and a client on 127.0.0.1 in one program; prints the\n"
    "  server's answer to \"hello\".\n";

static weft_tcp server, conn, client;
static char request[64], answer[64];

/* ---- the server: accept, read a line, answer it upper-cased, close ------ */

static int server_read(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)arg;
  weft_future *line;
  int err = weft_stream_read_until_future(&conn.stream, request, sizeof request,
                                          "\n", 1, &line);
  return err != 0 ? err : weft_future_adopt(out, line);
}

static int server_answer(weft_future *in, weft_future *out, void *arg) {
  (void)arg;
  size_t n = (size_t)weft_future_value_i64(in);
  for (size_t i = 0; i < n; i++)
    request[i] = (char)toupper((unsigned char)request[i]);
  weft_buf b = weft_buf_init(request, n);
  weft_future *written;
  int err = weft_stream_write_future(&conn.stream, &b, 1, &written);
  return err != 0 ? err : weft_future_adopt(out, written);
}

static int server_done(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  (void)arg;
  weft_close(&conn.stream.base, NULL);
  weft_close(&server.stream.base, NULL);
  return 0;
}

/* ---- the client: connect, send a line, read the answer, close ----------- */

static int client_send(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)arg;
  weft_buf b = weft_buf_init("hello\n", 6);
  weft_future *written;
  int err = weft_stream_write_future(&client.stream, &b, 1, &written);
  return err != 0 ? err : weft_future_adopt(out, written);
}

static int client_read(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)arg;
  weft_future *line;
  int err = weft_stream_read_until_future(&client.stream, answer, sizeof answer,
                                          "\n", 1, &line);
  return err != 0 ? err : weft_future_adopt(out, line);
}

static int client_print(weft_future *in, weft_future *out, void *arg) {
  (void)out;
  (void)arg;
  printf("the server answered: %.*s", (int)weft_future_value_i64(in), answer);
  return 0;
}

static int client_done(weft_future *in, weft_future *out, void *arg) {
  (void)out;
  (void)arg;
  if (weft_future_error(in) != 0)
    fprintf(stderr, "client: %s\n", weft_strerror(weft_future_error(in)));
  weft_close(&client.stream.base, NULL);
  return 0;
}

/* f.then(fn): drops the caller's reference to f, returns the next future
 * (NULL once a step could not be registered: the chain ends there). */
static weft_future *then(weft_future *f, weft_then_fn fn, bool finally) {
  weft_future *next = NULL;
  if (f != NULL)
    (finally ? weft_future_finally : weft_future_then)(f, fn, NULL, &next);
  weft_future_unref(f);
  return next;
}

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  weft_loop *loop;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  weft_future *accepted = NULL, *connected = NULL;
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&a);
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_tcp_init(loop, &server);
  if (err == 0) err = weft_tcp_bind(&server, (struct sockaddr *)&a, 0);
  if (err == 0) err = weft_tcp_listen(&server, 16, NULL);
  if (err == 0)
    err = weft_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
  if (err == 0) err = weft_tcp_init(loop, &conn);
  if (err == 0)
    err = weft_stream_accept_future(&server.stream, &conn.stream, &accepted);
  if (err == 0) err = weft_tcp_init(loop, &client);
  if (err == 0)
    err = weft_tcp_connect_future(&client, (struct sockaddr *)&a, &connected);
  if (err != 0) {
    fprintf(stderr, "first_futures: %s\n", weft_strerror(err));
    return 1;
  }
  weft_future *served =
      then(then(then(accepted, server_read, false), server_answer, false),
           server_done, true);
  weft_future *asked =
      then(then(then(then(connected, client_send, false), client_read, false),
                client_print, false),
           client_done, true);
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* until every handle has closed */
  int status = asked != NULL && weft_future_error(asked) == 0 ? 0 : 1;
  weft_future_unref(served);
  weft_future_unref(asked);
  weft_loop_free(loop);
  return status;
}
