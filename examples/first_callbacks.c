/* first_callbacks — the guide's first program (docs/guide/getting-started.md)
 * in callback style: a TCP server on 127.0.0.1 (a free port) answers each
 * line upper-cased, and a client in the same program sends "hello\n",
 * prints the answer and closes; then the server closes too and the loop,
 * with nothing left to do, returns. first_futures.c and first_fibers.c are
 * the same program in the other two styles. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: first_callbacks\n"
    "  a server and a client on 127.0.0.1 in one program; prints the\n"
    "  server's answer to \"hello\".\n";

static weft_loop *loop;
static weft_tcp server, conn, client;
static weft_connect_req connect_req;
static weft_write_req server_write, client_write;
static char answer[64];
static size_t answered;

/* ---- the server: accept one connection, answer each line upper-cased ---- */

static void server_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  static char out[64 * 1024];
  if (n < 0) { /* the client closed: so does the server */
    weft_close(&s->base, NULL);
    weft_close(&server.stream.base, NULL);
    return;
  }
  for (ssize_t i = 0; i < n; i++)
    out[i] = (char)toupper((unsigned char)buf->base[i]);
  weft_buf reply = weft_buf_init(out, (size_t)n);
  if (n > 0) weft_stream_write(&server_write, s, &reply, 1, NULL);
}

static void on_connection(weft_stream *listener, int status) {
  if (status != 0) return;
  weft_tcp_init(loop, &conn);
  if (weft_stream_accept(listener, &conn.stream) == 0)
    weft_stream_read_start(&conn.stream, NULL, server_read);
}

/* ---- the client: connect, send a line, print the answer ----------------- */

static void client_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  if (n > 0 && answered + (size_t)n < sizeof answer) {
    memcpy(answer + answered, buf->base, (size_t)n);
    answered += (size_t)n;
  }
  if (n < 0 || memchr(answer, '\n', answered) != NULL) {
    printf("the server answered: %.*s", (int)answered, answer);
    weft_close(&s->base, NULL);
  }
}

static void on_connected(weft_connect_req *req, int status) {
  static const char line[] = "hello\n";
  weft_buf b = weft_buf_init((void *)line, sizeof line - 1);
  if (status != 0) {
    fprintf(stderr, "connect: %s\n", weft_strerror(status));
    weft_close(&client.stream.base, NULL);
    weft_close(&server.stream.base, NULL);
    return;
  }
  weft_stream_write(&client_write, req->stream, &b, 1, NULL);
  weft_stream_read_start(req->stream, NULL, client_read);
}

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&a);
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_tcp_init(loop, &server);
  if (err == 0) err = weft_tcp_bind(&server, (struct sockaddr *)&a, 0);
  if (err == 0) err = weft_tcp_listen(&server, 16, on_connection);
  if (err == 0)
    err = weft_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
  if (err == 0) err = weft_tcp_init(loop, &client);
  if (err == 0)
    err = weft_tcp_connect(&connect_req, &client, (struct sockaddr *)&a,
                           on_connected);
  if (err != 0) {
    fprintf(stderr, "first_callbacks: %s\n", weft_strerror(err));
    return 1;
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* until every handle has closed */
  weft_loop_free(loop);
  return answered > 0 ? 0 : 1;
}
