/* get URL... — a minimal HTTP/1.0 client: fetches every URL at once on
 * one weft loop (DNS through c-ares, connect, write the request, read to
 * EOF) and saves each body to a file in the current directory, named
 * after the URL's last path segment ("index.html" for "/"; a name already
 * taken by an earlier URL gets ".N" appended, N its position).
 *
 *   $ get http://127.0.0.1:8000/a.txt http://localhost:8000/
 *   a.txt: 200, 1234 bytes
 *   index.html: 200, 567 bytes
 *
 * Only plain http:// URLs. Exit status 0 if every fetch got a 2xx reply,
 * else 1 (2 for a usage error). WEFT_DNS_SERVERS="ip:port" points the
 * resolver elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: get [--] URL...\n"
    "  Fetches every http:// URL at once (HTTP/1.0) and saves each body in\n"
    "  the current directory under the URL's last path segment.\n"
    "  WEFT_DNS_SERVERS=ip:port sets the name server.\n";

#define HEAD_MAX 16384

typedef struct fetch {
  weft_tcp tcp;
  weft_write_req write;
  char host[256], path[1024], file[300];
  unsigned port;
  char request[1400];
  char head[HEAD_MAX]; /* the reply header, until the blank line */
  size_t head_len;
  bool in_body;
  int http_status;
  size_t body_bytes;
  FILE *out;
  int error; /* 0, or the first weft error */
} fetch;

/* Splits "http://host[:port][/path]". Returns 0 or -1. */
static int parse_url(const char *url, fetch *f) {
  if (strncmp(url, "http://", 7) != 0) return -1;
  const char *h = url + 7, *slash = strchr(h, '/');
  size_t hostport = slash ? (size_t)(slash - h) : strlen(h);
  snprintf(f->path, sizeof f->path, "%s", slash ? slash : "/");
  const char *colon = memchr(h, ':', hostport);
  size_t hostlen = colon ? (size_t)(colon - h) : hostport;
  if (hostlen == 0 || hostlen >= sizeof f->host) return -1;
  memcpy(f->host, h, hostlen);
  f->host[hostlen] = '\0';
  f->port = 80;
  if (colon != NULL) {
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (end != h + hostport || p == 0 || p > 65535) return -1;
    f->port = (unsigned)p;
  }
  return 0;
}

static void name_file(fetch *all, int i) {
  fetch *f = &all[i];
  const char *base = strrchr(f->path, '/') + 1;
  size_t len = strcspn(base, "?#");
  if (len == 0)
    snprintf(f->file, sizeof f->file, "index.html");
  else
    snprintf(f->file, sizeof f->file, "%.*s", (int)len, base);
  for (int j = 0; j < i; j++)
    if (strcmp(all[j].file, f->file) == 0) {
      size_t n = strlen(f->file);
      snprintf(f->file + n, sizeof f->file - n, ".%d", i + 1);
      break;
    }
}

static void fail(fetch *f, int err) {
  if (f->error == 0) f->error = err;
  if (!weft_is_closing(&f->tcp.stream.base))
    weft_close(&f->tcp.stream.base, NULL);
}

/* Collects the header; once complete, the rest of `data` is body. */
static void on_head(fetch *f, const char *data, size_t n) {
  size_t room = HEAD_MAX - 1 - f->head_len, take = n < room ? n : room;
  memcpy(f->head + f->head_len, data, take);
  f->head_len += take;
  f->head[f->head_len] = '\0';
  char *end = strstr(f->head, "\r\n\r\n");
  if (end == NULL) {
    if (f->head_len == HEAD_MAX - 1) fail(f, -EMSGSIZE);
    return;
  }
  f->in_body = true;
  if (sscanf(f->head, "HTTP/%*d.%*d %d", &f->http_status) != 1) {
    fail(f, -EPROTO);
    return;
  }
  size_t body_in_head = f->head_len - (size_t)(end + 4 - f->head);
  size_t body_rest = n - take;
  fwrite(end + 4, 1, body_in_head, f->out);
  fwrite(data + take, 1, body_rest, f->out);
  f->body_bytes += body_in_head + body_rest;
}

static void on_read(weft_stream *s, ssize_t nread, const weft_buf *buf) {
  fetch *f = s->base.data;
  if (nread == WEFT_EOF) {
    weft_close(&s->base, NULL);
  } else if (nread < 0) {
    fail(f, (int)nread);
  } else if (!f->in_body) {
    on_head(f, buf->base, (size_t)nread);
  } else {
    fwrite(buf->base, 1, (size_t)nread, f->out);
    f->body_bytes += (size_t)nread;
  }
}

static void on_written(weft_write_req *req, int status) {
  if (status != 0) fail(req->data, status);
}

static void on_connected(weft_tcp *t, int status, void *arg) {
  fetch *f = arg;
  if (status != 0) {
    fail(f, status);
    return;
  }
  snprintf(f->request, sizeof f->request,
           "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: weft-get\r\n\r\n",
           f->path, f->host);
  weft_buf b = weft_buf_init(f->request, strlen(f->request));
  f->write.data = f;
  int err = weft_stream_write(&f->write, &t->stream, &b, 1, on_written);
  if (err == 0) err = weft_stream_read_start(&t->stream, NULL, on_read);
  if (err != 0) fail(f, err);
}

static int start(weft_loop *loop, fetch *f, const char *url) {
  if (parse_url(url, f) != 0) {
    fprintf(stderr, "get: %s: not an http:// URL\n", url);
    return -EINVAL;
  }
  if ((f->out = fopen(f->file, "wb")) == NULL) {
    perror(f->file);
    return -errno;
  }
  int err = weft_tcp_init(loop, &f->tcp);
  f->tcp.stream.base.data = f;
  if (err == 0)
    err = weft_tcp_connect_host(&f->tcp, f->host, f->port, on_connected, f);
  if (err != 0) fail(f, err);
  return 0;
}

static int report(const fetch *f, const char *url) {
  if (f->out == NULL) return 1;
  if (f->error != 0) {
    fprintf(stderr, "get: %s: %s\n", url, weft_strerror(f->error));
    return 1;
  }
  printf("%s: %d, %zu bytes\n", f->file, f->http_status, f->body_bytes);
  return f->http_status >= 200 && f->http_status < 300 ? 0 : 1;
}

int main(int argc, char **argv) {
  argc = ex_operands(argc, argv, 1, usage);
  weft_loop *loop;
  int err = weft_loop_new(&loop, NULL);
  const char *servers = getenv("WEFT_DNS_SERVERS");
  if (err == 0 && servers != NULL) err = weft_dns_set_servers(loop, servers);
  fetch *all = calloc((size_t)argc - 1, sizeof *all);
  if (err != 0 || all == NULL) {
    fprintf(stderr, "get: %s\n", weft_strerror(err ? err : -ENOMEM));
    return 1;
  }
  for (int i = 0; i < argc - 1; i++) {
    if (parse_url(argv[i + 1], &all[i]) == 0) name_file(all, i);
    start(loop, &all[i], argv[i + 1]);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  int failed = 0;
  for (int i = 0; i < argc - 1; i++) {
    failed |= report(&all[i], argv[i + 1]);
    if (all[i].out != NULL) fclose(all[i].out);
  }
  free(all);
  weft_loop_free(loop);
  return failed;
}
