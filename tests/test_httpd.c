/* examples/httpd against curl (run through weft_process_run) and raw
 * sockets: status codes, bytes identical to the files, ranges, HEAD,
 * keep-alive reuse, pipelining, traversal, malformed and oversized
 * requests, 404, 405, If-Modified-Since, idle and slow-client timeouts,
 * several loops, bad command lines; then requests larger than the input
 * buffer, and the RFC 9110/9112 MUSTs: Host, field syntax, versions, 501,
 * ETag and the conditionals (412, 304, If-Range), obsolete date forms,
 * 100 Continue, directory redirects. scripts/fuzz-http.sh compares httpd
 * with nginx and fuzzes it. Each test starts its own server on a
 * free loopback port (--port 0) and stops it with SIGTERM. */
#include "support/test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG_SIZE ((1u << 20) + 7) /* not a multiple of any buffer size */
#define MTIME 1000000000          /* Sun, 09 Sep 2001 01:46:40 GMT */

typedef struct fixture {
  char dir[64]; /* the temp dir; the root is dir/root */
  char root[96];
  pid_t pid;
  unsigned port;
  weft_loop *loop;
  FILE *out; /* the server's stdout, after "listening on" */
} fixture;

/* The server binary: $(O)/examples/httpd, next to the tests' directory
 * (or two levels up from $(O)/asan/tests). */
static void server_path(char *out, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  char *dir = dirname(self);
  snprintf(out, size, "%s/../examples/httpd", dir);
  if (access(out, X_OK) != 0)
    snprintf(out, size, "%s/../../examples/httpd", dir);
  cr_assert_eq(access(out, X_OK), 0, "httpd not built at %s", out);
}

static void write_file(const char *dir, const char *name, const void *data,
                       size_t len) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
  struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static unsigned char *big_data(void) {
  unsigned char *b = malloc(BIG_SIZE);
  cr_assert_not_null(b);
  for (size_t i = 0; i < BIG_SIZE; i++)
    b[i] = (unsigned char)(i * 7 + i / 251);
  return b;
}

static void make_tree(fixture *f) {
  snprintf(f->dir, sizeof f->dir, "/tmp/weft-httpd-XXXXXX");
  cr_assert_not_null(mkdtemp(f->dir));
  snprintf(f->root, sizeof f->root, "%s/root", f->dir);
  char sub[128];
  snprintf(sub, sizeof sub, "%s/sub", f->root);
  cr_assert_eq(mkdir(f->root, 0755), 0);
  cr_assert_eq(mkdir(sub, 0755), 0);
  snprintf(sub, sizeof sub, "%s/empty", f->root);
  cr_assert_eq(mkdir(sub, 0755), 0);
  write_file(f->root, "small.txt", "hello\n", 6);
  write_file(f->root, "sub/index.html", "<p>index</p>\n", 13);
  write_file(f->dir, "secret", "secret\n", 7);
  unsigned char *b = big_data();
  write_file(f->root, "big.bin", b, BIG_SIZE);
  free(b);
}

/* Starts httpd with `extra` arguments (NULL-terminated) and reads the
 * port from its "listening on PORT" line. */
static void start(fixture *f, const char *const *extra) {
  memset(f, 0, sizeof *f);
  make_tree(f);
  char bin[PATH_MAX];
  server_path(bin, sizeof bin);
  const char *argv[16] = {bin,     "--port", "0",        "--root",
                          f->root, "--host", "127.0.0.1"};
  int argc = 7;
  for (; extra != NULL && *extra != NULL; extra++)
    argv[argc++] = *extra;
  int p[2];
  cr_assert_eq(pipe(p), 0);
  f->pid = fork();
  cr_assert_geq(f->pid, 0);
  if (f->pid == 0) {
    /* A failed assertion ends the test process: the server goes with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  FILE *out = fdopen(p[0], "r");
  cr_assert_not_null(out);
  cr_assert_eq(fscanf(out, "listening on %u", &f->port), 1);
  cr_assert_eq(fgetc(out), '\n'); /* the rest of the line, no more */
  f->out = out;
  cr_assert_gt(f->port, 0);
  f->loop = th_loop();
}

static void rm_tree(const fixture *f) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  cr_assert_eq(system(cmd), 0);
}

/* SIGTERM; the server must exit cleanly with status 0. */
static void stop(fixture *f) {
  int status = -1;
  cr_assert_eq(kill(f->pid, SIGTERM), 0);
  cr_assert_eq(waitpid(f->pid, &status, 0), f->pid);
  fclose(f->out);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "httpd status %d",
            status);
  rm_tree(f);
  th_loop_finish(f->loop);
}

/* Runs curl with `args` (NULL-terminated) through weft_process_run and
 * returns its stdout (static buffer); asserts curl exited 0. */
static const char *curl(fixture *f, const char *const *args) {
  static char out[4096];
  const char *argv[32] = {"curl", "-s", "-S", "--max-time", "20"};
  int argc = 5;
  for (; *args != NULL; args++)
    argv[argc++] = *args;
  weft_run_options o = {.proc = {.argv = (char *const *)argv}};
  weft_future *fut = NULL;
  cr_assert_eq(weft_process_run(f->loop, &o, &fut), 0);
  weft_loop_run(f->loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(weft_future_get_state(fut), WEFT_FUTURE_FULFILLED);
  const weft_run_result *r = weft_future_value(fut);
  cr_assert_eq(r->status, 0, "curl failed: %s", r->err);
  snprintf(out, sizeof out, "%s", r->out);
  weft_future_unref(fut);
  return out;
}

static char *url(const fixture *f, const char *path) {
  static char bufs[4][512];
  static int next;
  char *u = bufs[next++ % 4];
  snprintf(u, sizeof bufs[0], "http://127.0.0.1:%u%s", f->port, path);
  return u;
}

static char *tmp(const fixture *f, const char *name) {
  static char bufs[4][160];
  static int next;
  char *p = bufs[next++ % 4];
  snprintf(p, sizeof bufs[0], "%s/%s", f->dir, name);
  return p;
}

/* The whole content of a file, and its length. */
static char *slurp(const char *path, size_t *len) {
  FILE *in = fopen(path, "rb");
  cr_assert_not_null(in, "%s", path);
  char *buf = malloc(BIG_SIZE + 1);
  *len = fread(buf, 1, BIG_SIZE + 1, in);
  fclose(in);
  return buf;
}

static void assert_file_is(const char *path, const void *want,
                           size_t want_len) {
  size_t len;
  char *got = slurp(path, &len);
  cr_assert_eq(len, want_len);
  cr_assert_eq(memcmp(got, want, len), 0);
  free(got);
}

/* Raw socket: sends `req` (len bytes), reads until EOF into a static
 * buffer (NUL-terminated), returns it. */
static const char *raw(const fixture *f, const char *req, size_t len) {
  static char buf[65536];
  int s = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(s, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)f->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  for (size_t off = 0; off < len;) {
    ssize_t n = send(s, req + off, len - off, MSG_NOSIGNAL);
    if (n < 0) break; /* the server may reply and stop reading early */
    off += (size_t)n;
  }
  size_t got = 0;
  ssize_t n;
  while (got < sizeof buf - 1 &&
         (n = recv(s, buf + got, sizeof buf - 1 - got, 0)) > 0)
    got += (size_t)n;
  buf[got] = '\0';
  close(s);
  return buf;
}

static const char *raw_str(const fixture *f, const char *req) {
  return raw(f, req, strlen(req));
}

/* The status line of the (first) reply to `req`, which should end the
 * connection (Connection: close, or an error that closes). */
static const char *status_of(const fixture *f, const char *req) {
  static char line[128];
  const char *r = raw_str(f, req);
  size_t n = strcspn(r, "\r");
  snprintf(line, sizeof line, "%.*s", (int)(n < 100 ? n : 100), r);
  return line;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL;
       p += strlen(needle))
    n++;
  return n;
}

/* ---- tests --------------------------------------------------------------- */

Test(httpd, get_small_file_exact_bytes, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w =
      curl(&f, (const char *[]){"-o", tmp(&f, "out"), "-w",
                                "%{http_code} %{size_download} %{content_type}",
                                url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "200 6 text/plain");
  assert_file_is(tmp(&f, "out"), "hello\n", 6);
  stop(&f);
}

Test(httpd, get_large_file_identical, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w = curl(&f, (const char *[]){"-o", tmp(&f, "out"), "-w",
                                            "%{http_code} %{size_download}",
                                            url(&f, "/big.bin"), NULL});
  cr_assert_str_eq(w, "200 1048583");
  unsigned char *b = big_data();
  assert_file_is(tmp(&f, "out"), b, BIG_SIZE);
  free(b);
  stop(&f);
}

Test(httpd, directory_slash_serves_index, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w = curl(&f, (const char *[]){"-o", tmp(&f, "out"), "-w",
                                            "%{http_code} %{content_type}",
                                            url(&f, "/sub/"), NULL});
  cr_assert_str_eq(w, "200 text/html");
  assert_file_is(tmp(&f, "out"), "<p>index</p>\n", 13);
  stop(&f);
}

Test(httpd, head_sends_headers_only, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w = curl(
      &f, (const char *[]){"-I", "-o", tmp(&f, "hdr"), "-o", "/dev/null", "-w",
                           "%{http_code} %{num_connects}", url(&f, "/big.bin"),
                           url(&f, "/big.bin"), NULL});
  /* The second HEAD reuses the connection: no body was left unsent. */
  cr_assert_str_eq(w, "200 1200 0");
  size_t len;
  char *h = slurp(tmp(&f, "hdr"), &len);
  h[len] = '\0';
  cr_assert_not_null(strstr(h, "Content-Length: 1048583\r\n"));
  cr_assert_not_null(
      strstr(h, "Last-Modified: Sun, 09 Sep 2001 01:46:40 GMT\r\n"));
  free(h);
  stop(&f);
}

Test(httpd, single_ranges_give_206_with_exact_bytes, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  unsigned char *b = big_data();
  const char *w =
      curl(&f, (const char *[]){"-r", "10-19", "-o", tmp(&f, "r1"), "-w",
                                "%{http_code}", url(&f, "/big.bin"), NULL});
  cr_assert_str_eq(w, "206");
  assert_file_is(tmp(&f, "r1"), b + 10, 10);
  w = curl(&f, (const char *[]){"-r", "-5", "-o", tmp(&f, "r2"), "-w",
                                "%{http_code}", url(&f, "/big.bin"), NULL});
  cr_assert_str_eq(w, "206");
  assert_file_is(tmp(&f, "r2"), b + BIG_SIZE - 5, 5);
  w = curl(&f, (const char *[]){"-r", "1048000-", "-D", tmp(&f, "h3"), "-o",
                                tmp(&f, "r3"), "-w", "%{http_code}",
                                url(&f, "/big.bin"), NULL});
  cr_assert_str_eq(w, "206");
  assert_file_is(tmp(&f, "r3"), b + 1048000, BIG_SIZE - 1048000);
  size_t len;
  char *h = slurp(tmp(&f, "h3"), &len);
  h[len] = '\0';
  cr_assert_not_null(
      strstr(h, "Content-Range: bytes 1048000-1048582/1048583\r\n"));
  free(h);
  free(b);
  stop(&f);
}

Test(httpd, unsatisfiable_range_gives_416, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w = curl(
      &f, (const char *[]){"-r", "6-", "-D", tmp(&f, "h"), "-o", "/dev/null",
                           "-w", "%{http_code}", url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "416");
  size_t len;
  char *h = slurp(tmp(&f, "h"), &len);
  h[len] = '\0';
  cr_assert_not_null(strstr(h, "Content-Range: bytes */6\r\n"));
  free(h);
  /* Several ranges are not served as multipart: the whole file, 200. */
  w = curl(&f, (const char *[]){"-r", "0-1,3-4", "-o", tmp(&f, "all"), "-w",
                                "%{http_code}", url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "200");
  assert_file_is(tmp(&f, "all"), "hello\n", 6);
  stop(&f);
}

Test(httpd, keep_alive_reuses_one_connection, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w =
      curl(&f, (const char *[]){
                   "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                   "-w", "%{http_code}:%{num_connects} ", url(&f, "/small.txt"),
                   url(&f, "/big.bin"), url(&f, "/nope"), NULL});
  cr_assert_str_eq(w, "200:1 200:0 404:0 ");
  stop(&f);
}

Test(httpd, pipelined_requests_answered_in_order, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char req[] =
      "GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n"
      "HEAD /sub/ HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET /sub/index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  const char *r = raw(&f, req, sizeof req - 1);
  const char *a = strstr(r, "HTTP/1.1 200 OK"),
             *b = a ? strstr(a + 1, "HTTP/1.1 200 OK") : NULL;
  const char *c = b ? strstr(b, "HTTP/1.1 404 Not Found") : NULL;
  const char *d = c ? strstr(c, "HTTP/1.1 200 OK") : NULL;
  cr_assert(a == r && b && c && d, "reply: %s", r);
  cr_assert_eq(count(r, "HTTP/1.1 "), 4);
  cr_assert_eq(count(r, "hello\n"), 1);
  cr_assert_eq(count(r, "<p>index</p>\n"), 1); /* HEAD sent none */
  cr_assert_not_null(strstr(d, "Connection: close\r\n"));
  cr_assert_eq(strcmp(r + strlen(r) - 13, "<p>index</p>\n"), 0);
  stop(&f);
}

Test(httpd, traversal_is_refused, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *paths[] = {"/../secret",
                         "/%2e%2e/secret",
                         "/sub/../../secret",
                         "/sub/%2E%2E/%2e%2e/secret",
                         "/..",
                         NULL};
  for (const char **p = paths; *p != NULL; p++) {
    const char *w =
        curl(&f, (const char *[]){"--path-as-is", "-o", tmp(&f, "out"), "-w",
                                  "%{http_code}", url(&f, *p), NULL});
    cr_assert_str_eq(w, "403", "%s", *p);
    assert_file_is(tmp(&f, "out"), "Forbidden\n", 10);
  }
  stop(&f);
}

Test(httpd, missing_files_give_404, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w =
      curl(&f, (const char *[]){"-o", "/dev/null", "-o", "/dev/null", "-o",
                                "/dev/null", "-w", "%{http_code} ",
                                url(&f, "/nope.txt"), url(&f, "/nope/"),
                                url(&f, "/small.txt/x"), NULL});
  cr_assert_str_eq(w, "404 404 404 ");
  stop(&f);
}

Test(httpd, other_methods_give_405, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w = curl(
      &f, (const char *[]){"-X", "POST", "-d", "abc", "-D", tmp(&f, "h"), "-o",
                           "/dev/null", "-w", "%{http_code} %{num_connects}",
                           url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "405 1");
  size_t len;
  char *h = slurp(tmp(&f, "h"), &len);
  h[len] = '\0';
  cr_assert_not_null(strstr(h, "Allow: GET, HEAD\r\n"));
  free(h);
  w = curl(&f, (const char *[]){"-X", "DELETE", "-o", "/dev/null", "-w",
                                "%{http_code}", url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "405");
  stop(&f);
}

Test(httpd, if_modified_since_gives_304, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *w =
      curl(&f, (const char *[]){
                   "-H", "If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
                   "-o", tmp(&f, "out"), "-w", "%{http_code} %{size_download}",
                   url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "304 0");
  w = curl(&f, (const char *[]){
                   "-H", "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 GMT",
                   "-o", tmp(&f, "out"), "-w", "%{http_code} %{size_download}",
                   url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "200 6");
  assert_file_is(tmp(&f, "out"), "hello\n", 6);
  /* An unparsable date is ignored. */
  w = curl(&f, (const char *[]){"-H", "If-Modified-Since: yesterday", "-o",
                                "/dev/null", "-w", "%{http_code}",
                                url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "200");
  stop(&f);
}

Test(httpd, malformed_requests_give_400, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *bad[] = {"GARBAGE\r\n\r\n",
                       "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                       "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
                       "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",
                       "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
                       NULL};
  for (const char **b = bad; *b != NULL; b++) {
    const char *r = raw(&f, *b, strlen(*b));
    cr_assert_eq(strncmp(r, "HTTP/1.1 400 Bad Request\r\n", 26), 0, "%s -> %s",
                 *b, r);
    cr_assert_not_null(strstr(r, "Connection: close\r\n"));
    cr_assert_eq(count(r, "HTTP/1.1 "), 1);
  }
  stop(&f);
}

Test(httpd, oversized_requests_give_414_431_413, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  static char req[40000];
  int n =
      snprintf(req, sizeof req, "GET /%09000d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
  cr_assert_eq(
      strncmp(raw(&f, req, (size_t)n), "HTTP/1.1 414 URI Too Long\r\n", 27), 0);
  n = snprintf(req, sizeof req,
               "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %020000d\r\n\r\n", 0);
  cr_assert_eq(strncmp(raw(&f, req, (size_t)n),
                       "HTTP/1.1 431 Request Header Fields Too Large\r\n", 46),
               0);
  n = snprintf(req, sizeof req,
               "POST /small.txt HTTP/1.1\r\nHost: a\r\nContent-Length: "
               "2000000\r\n\r\nabc");
  cr_assert_eq(strncmp(raw(&f, req, (size_t)n),
                       "HTTP/1.1 413 Content Too Large\r\n", 32),
               0);
  /* The server is still fine. */
  cr_assert_str_eq(
      curl(&f, (const char *[]){"-o", "/dev/null", "-w", "%{http_code}",
                                url(&f, "/small.txt"), NULL}),
      "200");
  stop(&f);
}

Test(httpd, unknown_http_version_gives_505, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *r = raw(&f, "GET /small.txt HTTP/2.0\r\n\r\n", 27);
  cr_assert_eq(strncmp(r, "HTTP/1.1 505 HTTP Version Not Supported\r\n", 41), 0,
               "%s", r);
  cr_assert_not_null(strstr(r, "Connection: close\r\n"));
  stop(&f);
}

Test(httpd, http10_closes_unless_keep_alive, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *r = raw(&f, "GET /small.txt HTTP/1.0\r\n\r\n", 27);
  cr_assert_eq(strncmp(r, "HTTP/1.1 200 OK\r\n", 17), 0);
  cr_assert_not_null(strstr(r, "Connection: close\r\n"));
  cr_assert_eq(strcmp(r + strlen(r) - 10, "\r\n\r\nhello\n"), 0);
  stop(&f);
}

Test(httpd, idle_connection_times_out, .timeout = 30) {
  fixture f;
  start(&f, (const char *[]){"--idle-ms", "200", NULL});
  /* Nothing sent: the server closes after 200 ms; recv sees EOF. */
  const char *r = raw(&f, "", 0);
  cr_assert_str_eq(r, "");
  /* After a reply, an idle keep-alive connection closes as well. */
  r = raw(&f, "GET /small.txt HTTP/1.1\r\nHost: a\r\n\r\n", 36);
  cr_assert_eq(strncmp(r, "HTTP/1.1 200 OK\r\n", 17), 0);
  cr_assert_eq(strcmp(r + strlen(r) - 6, "hello\n"), 0);
  stop(&f);
}

Test(httpd, slow_header_times_out, .timeout = 30) {
  fixture f;
  start(&f, (const char *[]){"--header-ms", "200", NULL});
  /* Half a header that never completes: closed without a reply. */
  cr_assert_str_eq(raw(&f, "GET /small.txt HTTP/1.1\r\nHo", 27), "");
  stop(&f);
}

Test(httpd, several_loops_share_the_port, .timeout = 30) {
  fixture f;
  start(&f, (const char *[]){"--loops", "2", NULL});
  for (int i = 0; i < 4; i++) {
    const char *w =
        curl(&f, (const char *[]){"-o", tmp(&f, "out"), "-w", "%{http_code}",
                                  url(&f, "/big.bin"), NULL});
    cr_assert_str_eq(w, "200");
  }
  unsigned char *b = big_data();
  assert_file_is(tmp(&f, "out"), b, BIG_SIZE);
  free(b);
  stop(&f);
}

Test(httpd, cached_file_served_repeatedly, .timeout = 30) {
  fixture f;
  start(&f, (const char *[]){"--cache-ms", "600000", NULL});
  const char *w =
      curl(&f, (const char *[]){"-o", tmp(&f, "a"), "-o", tmp(&f, "b"), "-w",
                                "%{http_code} ", url(&f, "/small.txt"),
                                url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "200 200 ");
  w = curl(&f, (const char *[]){"-r", "2-4", "-o", tmp(&f, "c"), "-w",
                                "%{http_code}", url(&f, "/small.txt"), NULL});
  cr_assert_str_eq(w, "206");
  assert_file_is(tmp(&f, "a"), "hello\n", 6);
  assert_file_is(tmp(&f, "b"), "hello\n", 6);
  assert_file_is(tmp(&f, "c"), "llo", 3);
  stop(&f);
}

Test(httpd, cache_off_sees_changes_at_once, .timeout = 30) {
  fixture f;
  start(&f, (const char *[]){"--cache-ms", "0", NULL});
  cr_assert_str_eq(
      curl(&f, (const char *[]){"-o", tmp(&f, "a"), "-w", "%{http_code}",
                                url(&f, "/small.txt"), NULL}),
      "200");
  assert_file_is(tmp(&f, "a"), "hello\n", 6);
  write_file(f.root, "small.txt", "changed!\n", 9);
  cr_assert_str_eq(
      curl(&f, (const char *[]){"-o", tmp(&f, "b"), "-w", "%{http_code}",
                                url(&f, "/small.txt"), NULL}),
      "200");
  assert_file_is(tmp(&f, "b"), "changed!\n", 9);
  stop(&f);
}

/* Bad command lines: usage, exit status 2, nothing served. */
/* --stats: SIGUSR1 makes each loop print one line; the accepted counts add
 * up to the connections made. */
Test(httpd, stats_on_sigusr1_one_line_per_loop, .timeout = 30) {
  fixture f;
  start(&f, (const char *[]){"--loops", "2", "--stats", NULL});
  for (int i = 0; i < 3; i++)
    cr_assert_str_eq(
        curl(&f, (const char *[]){"-o", "/dev/null", "-w", "%{http_code}",
                                  url(&f, "/small.txt"), NULL}),
        "200");
  cr_assert_eq(kill(f.pid, SIGUSR1), 0);
  bool seen[2] = {false, false};
  unsigned long long accepted = 0;
  for (int k = 0; k < 2; k++) {
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, f.out));
    unsigned idx;
    unsigned long long acc, live, turns;
    cr_assert_eq(sscanf(line,
                        "stats loop=%u accepted=%llu live=%llu turns=%llu",
                        &idx, &acc, &live, &turns),
                 4, "line: %s", line);
    cr_assert_lt(idx, 2u, "line: %s", line);
    cr_assert(!seen[idx], "loop %u twice", idx);
    seen[idx] = true;
    cr_assert_leq(live, acc);
    cr_assert_gt(turns, 0);
    cr_assert(strstr(line, " io_events=") && strstr(line, " busy_ms="),
              "line: %s", line);
    accepted += acc;
  }
  cr_assert_eq(accepted, 3);
  stop(&f);
}

/* Loop 0's " work=N spare=N" (--stats, SIGUSR1, one loop). */
static void work_counts(fixture *f, unsigned *work, unsigned *spare) {
  char line[512];
  cr_assert_eq(kill(f->pid, SIGUSR1), 0);
  cr_assert_not_null(fgets(line, sizeof line, f->out));
  const char *w = strstr(line, " work=");
  cr_assert_not_null(w, "line: %s", line);
  cr_assert_eq(sscanf(w, " work=%u spare=%u", work, spare), 2, "line: %s",
               line);
}

/* Polls loop 0's counts until they are (work, spare): the server reads
 * the client's bytes in its own time (bounded: 500 polls, 10 ms apart). */
static void await_work(fixture *f, unsigned work, unsigned spare) {
  unsigned w = ~0u, s = ~0u;
  for (int i = 0; i < 500 && (w != work || s != spare); i++) {
    if (i > 0) nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    work_counts(f, &w, &s);
  }
  cr_assert_eq(w, work);
  cr_assert_eq(s, spare);
}

static int dial(const fixture *f) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)f->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_geq(s, 0);
  cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  return s;
}

/* Reads one reply to GET /small.txt ("hello\n") from s: head and body. */
static void read_small_reply(int s) {
  char buf[2048];
  size_t got = 0;
  const char *end = NULL;
  while (end == NULL || got < (size_t)(end + 4 - buf) + 6) {
    ssize_t n = recv(s, buf + got, sizeof buf - 1 - got, 0);
    cr_assert_gt(n, 0);
    got += (size_t)n;
    buf[got] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  cr_assert_eq(strncmp(buf, "HTTP/1.1 200 ", 13), 0, "reply: %s", buf);
  cr_assert_str_eq(end + 4, "hello\n");
}

/* An idle keep-alive connection holds no work area (input buffer, parser,
 * reply head): it gives it back when its reply is out and takes one again
 * when the next request's first bytes come; a half-sent request keeps
 * its own. */
Test(httpd, idle_keepalive_connections_hold_no_work_area, .timeout = 30) {
  static const char req[] = "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
  fixture f;
  start(&f, (const char *[]){"--stats", NULL});
  await_work(&f, 0, 0);
  int a = dial(&f), b = dial(&f);
  cr_assert_eq(send(a, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
  read_small_reply(a);
  await_work(&f, 0, 1); /* a is idle, its area is the loop's spare */
  cr_assert_eq(send(b, req, 10, 0), 10); /* half a request */
  await_work(&f, 1, 0);                  /* b took the spare */
  cr_assert_eq(send(a, req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
  read_small_reply(a); /* a needed a new one, and gave it back */
  await_work(&f, 1, 1);
  cr_assert_eq(send(b, req + 10, sizeof req - 11, 0),
               (ssize_t)(sizeof req - 11));
  read_small_reply(b);
  await_work(&f, 0, 2); /* both idle */
  close(a);
  close(b);
  stop(&f);
}

static int run_bad(const char *const *args) {
  char bin[PATH_MAX];
  server_path(bin, sizeof bin);
  const char *argv[12] = {bin};
  int argc = 1;
  for (; *args != NULL; args++)
    argv[argc++] = *args;
  weft_loop *loop = th_loop();
  weft_run_options o = {.proc = {.argv = (char *const *)argv}};
  weft_future *fut = NULL;
  cr_assert_eq(weft_process_run(loop, &o, &fut), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  const weft_run_result *r = weft_future_value(fut);
  int status = (int)r->status;
  cr_assert_eq(r->out_len, 0);
  weft_future_unref(fut);
  th_loop_finish(loop);
  return status;
}

Test(httpd, bad_command_lines_exit_2, .timeout = 30) {
  cr_assert_eq(run_bad((const char *[]){"--port", "0", NULL}), 2);
  cr_assert_eq(run_bad((const char *[]){"--port", "x", "--root", "/tmp", NULL}),
               2);
  cr_assert_eq(
      run_bad((const char *[]){"--port", "70000", "--root", "/tmp", NULL}), 2);
  cr_assert_eq(run_bad((const char *[]){"--port", "0", "--root",
                                        "/nonexistent/dir", NULL}),
               2);
  cr_assert_eq(run_bad((const char *[]){"--port", "0", "--root", "/tmp",
                                        "--loops", "0", NULL}),
               2);
  cr_assert_eq(run_bad((const char *[]){"--port", "0", "--root", "/tmp",
                                        "--bogus", "1", NULL}),
               2);
  cr_assert_eq(run_bad((const char *[]){"--port", "0", "--root", NULL}), 2);
  cr_assert_eq(run_bad((const char *[]){"--port", "0", "--root", "/tmp",
                                        "--cache-ms", "-1", NULL}),
               2);
}

/* ---- item 3: requests larger than the input buffer ----------------------- */

#define ETAG "\"3b9aca00-6\"" /* small.txt: MTIME and size in hex, as nginx */

/* Appends n copies of a chunk of `size` bytes in chunked coding. */
static size_t add_chunks(char *dst, size_t at, size_t size, size_t n) {
  for (size_t i = 0; i < n; i++) {
    at += (size_t)sprintf(dst + at, "%zx\r\n", size);
    memset(dst + at, 'x', size);
    at += size;
    at += (size_t)sprintf(dst + at, "\r\n");
  }
  return at;
}

Test(httpd, requests_larger_than_the_buffer_are_answered, .timeout = 60) {
  fixture f;
  start(&f, NULL);
  char *req = malloc(1300000);
  cr_assert_not_null(req);
  /* 4000 small fields: 431 once over 32 KiB, not a stall and a reset. */
  size_t n = (size_t)sprintf(req, "GET /small.txt HTTP/1.1\r\nHost: a\r\n");
  for (int i = 0; i < 4000; i++)
    n += (size_t)sprintf(req + n, "X-%04d: abcdefgh\r\n", i);
  n += (size_t)sprintf(req + n, "\r\n");
  const char *r = raw(&f, req, n);
  cr_assert_eq(strncmp(r, "HTTP/1.1 431 ", 13), 0, "%.60s", r);
  cr_assert_not_null(strstr(r, "Connection: close\r\n"));
  /* A 20 KB body is skipped: 405, and the next request on the connection
   * is answered. */
  n = (size_t)sprintf(
      req,
      "POST /small.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n");
  memset(req + n, 'x', 20000);
  n += 20000;
  n += (size_t)sprintf(
      req + n,
      "GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  r = raw(&f, req, n);
  cr_assert_eq(strncmp(r, "HTTP/1.1 405 ", 13), 0, "%.60s", r);
  cr_assert_not_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
  cr_assert_eq(strcmp(r + strlen(r) - 6, "hello\n"), 0);
  /* A 300 KB chunked body: the same. */
  n = (size_t)sprintf(req, "POST /small.txt HTTP/1.1\r\nHost: "
                           "a\r\nTransfer-Encoding: chunked\r\n\r\n");
  n = add_chunks(req, n, 4096, 75);
  n += (size_t)sprintf(req + n, "0\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: "
                                "a\r\nConnection: close\r\n\r\n");
  r = raw(&f, req, n);
  cr_assert_eq(strncmp(r, "HTTP/1.1 405 ", 13), 0, "%.60s", r);
  cr_assert_eq(count(r, "HTTP/1.1 200 OK\r\n"), 1);
  /* Over 1 MiB, chunked: 413 and a clean close (the reply, not a reset). */
  n = (size_t)sprintf(req, "POST /small.txt HTTP/1.1\r\nHost: "
                           "a\r\nTransfer-Encoding: chunked\r\n\r\n");
  n = add_chunks(req, n, 65536, 18);
  r = raw(&f, req, n);
  cr_assert_eq(strncmp(r, "HTTP/1.1 413 Content Too Large\r\n", 32), 0, "%.60s",
               r);
  cr_assert_not_null(strstr(r, "Connection: close\r\n"));
  /* Declared over 1 MiB and sent: 413 as well. */
  n = (size_t)sprintf(
      req,
      "POST /small.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 1100000\r\n\r\n");
  memset(req + n, 'x', 1100000);
  r = raw(&f, req, n + 1100000);
  cr_assert_eq(strncmp(r, "HTTP/1.1 413 ", 13), 0, "%.60s", r);
  free(req);
  stop(&f);
}

/* ---- item 7: RFC 9110 / 9112 MUSTs
 * ----------------------------------------------- */

Test(httpd, host_rules_give_400, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *bad[] = {"GET /small.txt HTTP/1.1\r\n\r\n",
                       "GET /small.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                       "GET /small.txt HTTP/1.1\r\nHost: a b\r\n\r\n",
                       "GET /small.txt HTTP/1.1\r\nHost:\r\n\r\n",
                       "GET /small.txt HTTP/1.1\r\nHost: a:8x\r\n\r\n",
                       NULL};
  for (const char **b = bad; *b != NULL; b++)
    cr_assert_str_eq(status_of(&f, *b), "HTTP/1.1 400 Bad Request", "%s", *b);
  cr_assert_str_eq(status_of(&f, "GET /small.txt HTTP/1.0\r\n\r\n"),
                   "HTTP/1.1 200 OK");
  cr_assert_str_eq(status_of(&f, "GET /small.txt HTTP/1.1\r\nHost: "
                                 "[::1]:80\r\nConnection: close\r\n\r\n"),
                   "HTTP/1.1 200 OK");
  stop(&f);
}

Test(httpd, malformed_fields_and_versions_give_400, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *bad[] = {
      "GET /small.txt HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET /small.txt HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n",
      "GET /small.txt HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
      "GET /small.txt HTTP\\1.1\r\nHost: a\r\n\r\n",
      "GET /small.txt HTTX/1.1\r\nHost: a\r\n\r\n",
      "GET /small.txt HTTP/1.10\r\nHost: a\r\n\r\n",
      "GET  /small.txt HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /small.txt\r\n\r\n",
      "GET /small.txt HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
      "GET /small.txt HTTP/1.1\r\nHost: a\r\nContent-Length: "
      "1\r\nContent-Length: 1\r\n\r\nx",
      "POST /small.txt HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
      "chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
      "GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: "
      "Sun, 09 Sep 2001 01:46:40 GMT\r\n"
      "If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT\r\n\r\n",
      NULL};
  for (const char **b = bad; *b != NULL; b++)
    cr_assert_str_eq(status_of(&f, *b), "HTTP/1.1 400 Bad Request", "%s", *b);
  /* A bare LF ends a line as well (RFC 9112 2.2). */
  cr_assert_str_eq(
      status_of(&f, "GET /small.txt HTTP/1.1\nHost: a\nConnection: close\n\n"),
      "HTTP/1.1 200 OK");
  stop(&f);
}

Test(httpd, unknown_method_or_coding_gives_501, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  cr_assert_str_eq(status_of(&f, "FOO /small.txt HTTP/1.1\r\nHost: a\r\n\r\n"),
                   "HTTP/1.1 501 Not Implemented");
  cr_assert_str_eq(status_of(&f, "get /small.txt HTTP/1.1\r\nHost: a\r\n\r\n"),
                   "HTTP/1.1 501 Not Implemented");
  cr_assert_str_eq(status_of(&f, "POST /small.txt HTTP/1.1\r\nHost: "
                                 "a\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
                   "HTTP/1.1 501 Not Implemented");
  cr_assert_str_eq(
      status_of(&f, "POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: "
                    "1\r\nConnection: close\r\n\r\nx"),
      "HTTP/1.1 404 Not Found"); /* POST as nginx: 405 only for a file */
  stop(&f);
}

Test(httpd, etag_and_if_none_match, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *r = raw_str(
      &f, "GET /small.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  cr_assert_not_null(strstr(r, "\r\nETag: " ETAG "\r\n"), "%s", r);
  const char *hit[] = {"*", ETAG, "W/" ETAG, "\"a\", " ETAG, NULL};
  char req[512];
  for (const char **h = hit; *h != NULL; h++) {
    snprintf(req, sizeof req,
             "GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: "
             "%s\r\nConnection: close\r\n\r\n",
             *h);
    r = raw(&f, req, strlen(req));
    cr_assert_eq(strncmp(r, "HTTP/1.1 304 Not Modified\r\n", 27), 0, "%s: %s",
                 *h, r);
    cr_assert_not_null(strstr(r, "ETag: " ETAG "\r\n"));
  }
  cr_assert_str_eq(
      status_of(&f, "GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: "
                    "\"a\"\r\nConnection: close\r\n\r\n"),
      "HTTP/1.1 200 OK");
  /* With If-None-Match, If-Modified-Since is ignored (RFC 9110 13.1.3). */
  cr_assert_str_eq(
      status_of(&f, "GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: " ETAG
                    "\r\n"
                    "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 "
                    "GMT\r\nConnection: close\r\n\r\n"),
      "HTTP/1.1 304 Not Modified");
  cr_assert_str_eq(
      status_of(&f,
                "GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\n"
                "If-Modified-Since: Sun, 09 Sep 2001 01:46:40 "
                "GMT\r\nConnection: close\r\n\r\n"),
      "HTTP/1.1 200 OK");
  stop(&f);
}

Test(httpd, failed_preconditions_give_412, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *c = "Connection: close\r\n\r\n";
  char req[512];
#define PRE(hdrs, want)                                                        \
  snprintf(req, sizeof req, "GET /small.txt HTTP/1.1\r\nHost: a\r\n%s%s",      \
           hdrs, c);                                                           \
  cr_assert_str_eq(status_of(&f, req), want, "%s", hdrs)
  PRE("If-Match: \"a\"\r\n", "HTTP/1.1 412 Precondition Failed");
  PRE("If-Match: \"a\"\r\nRange: bytes=0-1\r\n",
      "HTTP/1.1 412 Precondition Failed");
  PRE("If-Match: W/" ETAG "\r\n",
      "HTTP/1.1 412 Precondition Failed"); /* strong comparison */
  PRE("If-Match: *\r\n", "HTTP/1.1 200 OK");
  PRE("If-Match: " ETAG "\r\nRange: bytes=0-1\r\n",
      "HTTP/1.1 206 Partial Content");
  PRE("If-Unmodified-Since: Sat, 08 Sep 2001 01:46:40 GMT\r\n",
      "HTTP/1.1 412 Precondition Failed");
  PRE("If-Unmodified-Since: Sun, 09 Sep 2001 01:46:40 GMT\r\n",
      "HTTP/1.1 200 OK");
  PRE("If-Match: *\r\nIf-Unmodified-Since: Sat, 08 Sep 2001 01:46:40 GMT\r\n",
      "HTTP/1.1 200 OK");
#undef PRE
  stop(&f);
}

Test(httpd, if_range_mismatch_sends_the_whole_file, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  char req[512];
  const char *cases[][2] = {
      {"If-Range: " ETAG, "HTTP/1.1 206 Partial Content"},
      {"If-Range: \"other\"", "HTTP/1.1 200 OK"},
      {"If-Range: W/" ETAG, "HTTP/1.1 200 OK"},
      {"If-Range: Sun, 09 Sep 2001 01:46:40 GMT",
       "HTTP/1.1 206 Partial Content"},
      {"If-Range: Sat, 08 Sep 2001 01:46:40 GMT", "HTTP/1.1 200 OK"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(req, sizeof req,
             "GET /small.txt HTTP/1.1\r\nHost: a\r\nRange: "
             "bytes=2-\r\n%s\r\nConnection: close\r\n\r\n",
             cases[i][0]);
    const char *r = raw(&f, req, strlen(req));
    cr_assert_eq(strncmp(r, cases[i][1], strlen(cases[i][1])), 0, "%s: %s",
                 cases[i][0], r);
    const char *body = strstr(r, "\r\n\r\n");
    cr_assert_str_eq(body + 4, cases[i][1][9] == '2' && cases[i][1][11] == '6'
                                   ? "llo\n"
                                   : "hello\n");
  }
  /* HEAD ignores Range (RFC 9110 14.2). */
  cr_assert_str_eq(status_of(&f,
                             "HEAD /small.txt HTTP/1.1\r\nHost: a\r\nRange: "
                             "bytes=2-\r\nConnection: close\r\n\r\n"),
                   "HTTP/1.1 200 OK");
  stop(&f);
}

Test(httpd, obsolete_date_forms_are_accepted, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *dates[] = {"Sun, 09 Sep 2001 01:46:40 GMT",
                         "Sunday, 09-Sep-01 01:46:40 GMT",
                         "Sun Sep  9 01:46:40 2001", NULL};
  char req[512];
  for (const char **d = dates; *d != NULL; d++) {
    snprintf(req, sizeof req,
             "GET /small.txt HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: "
             "%s\r\nConnection: close\r\n\r\n",
             *d);
    cr_assert_str_eq(status_of(&f, req), "HTTP/1.1 304 Not Modified", "%s", *d);
  }
  cr_assert_str_eq(status_of(&f, "GET /small.txt HTTP/1.1\r\nHost: "
                                 "a\r\nIf-Modified-Since: Saturday, 08-Sep-01 "
                                 "01:46:40 GMT\r\nConnection: close\r\n\r\n"),
                   "HTTP/1.1 200 OK");
  stop(&f);
}

Test(httpd, expect_100_continue_is_answered, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(s, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)f.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  struct timeval tv = {10, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const char head[] = "POST /small.txt HTTP/1.1\r\nHost: a\r\nExpect: "
                      "100-continue\r\nContent-Length: 3\r\n"
                      "Connection: close\r\n\r\n";
  cr_assert_eq(send(s, head, sizeof head - 1, 0), (ssize_t)sizeof head - 1);
  char buf[1024];
  ssize_t n =
      recv(s, buf, sizeof buf - 1, 0); /* before any body byte is sent */
  cr_assert_eq(n, 25);
  cr_assert_eq(memcmp(buf, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
  cr_assert_eq(send(s, "abc", 3, 0), 3);
  size_t got = 0;
  while (got < sizeof buf - 1 &&
         (n = recv(s, buf + got, sizeof buf - 1 - got, 0)) > 0)
    got += (size_t)n;
  buf[got] = '\0';
  cr_assert_eq(strncmp(buf, "HTTP/1.1 405 ", 13), 0, "%s", buf);
  close(s);
  stop(&f);
}

Test(httpd, directories_redirected_or_refused, .timeout = 30) {
  fixture f;
  start(&f, NULL);
  const char *r =
      raw_str(&f, "GET /sub HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  cr_assert_eq(strncmp(r, "HTTP/1.1 301 Moved Permanently\r\n", 32), 0, "%s",
               r);
  cr_assert_not_null(strstr(r, "\r\nLocation: /sub/\r\n"), "%s", r);
  r = raw_str(&f,
              "GET /sub?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  cr_assert_not_null(strstr(r, "\r\nLocation: /sub/?x=1\r\n"), "%s", r);
  cr_assert_str_eq(
      status_of(&f,
                "GET /empty/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
      "HTTP/1.1 403 Forbidden");
  cr_assert_str_eq(
      status_of(&f,
                "GET /empty HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
      "HTTP/1.1 301 Moved Permanently");
  cr_assert_str_eq(status_of(&f, "GET /empty/index.html HTTP/1.1\r\nHost: "
                                 "a\r\nConnection: close\r\n\r\n"),
                   "HTTP/1.1 404 Not Found");
  static char req[2048];
  snprintf(req, sizeof req,
           "GET /sub?%0900d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
           0);
  r = raw_str(&f, req);
  cr_assert_eq(strncmp(r, "HTTP/1.1 301 ", 13), 0, "%.40s",
               r); /* the whole Location, not truncated */
  cr_assert_not_null(strstr(r, "\r\nLocation: /sub/?0000"));
  cr_assert_not_null(strstr(r, "0000\r\n"));
  cr_assert_not_null(strstr(r, "\r\n\r\nMoved Permanently\n"));
  stop(&f);
}

/* --send-ms counts from the last bytes sent, as nginx's send_timeout: a
 * client that reads slowly but steadily (about 3 MB/s, the whole file
 * taking several times --send-ms) keeps its reply to the last byte. The
 * socket buffers take a few MiB at once, so the file is 12 MiB. */
#define SLOW_SIZE (12u << 20)

static int slow_client(const fixture *f) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(s, 0);
  int small = 64 << 10;
  cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)f->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  static const char req[] = "GET /slow.bin HTTP/1.1\r\nHost: x\r\n"
                            "Connection: close\r\n\r\n";
  cr_assert_eq(send(s, req, sizeof req - 1, 0), (ssize_t)sizeof req - 1);
  return s;
}

static void slow_file(const fixture *f) {
  char *b = calloc(1, SLOW_SIZE);
  cr_assert_not_null(b);
  write_file(f->root, "slow.bin", b, SLOW_SIZE);
  free(b);
}

Test(httpd, send_timeout_spares_a_slow_steady_reader, .timeout = 60) {
  fixture f;
  start(&f, (const char *[]){"--send-ms", "1500", NULL});
  slow_file(&f);
  int s = slow_client(&f);
  /* 32 KiB every 10 ms: the reply takes about 4 s */
  static char buf[32 << 10];
  size_t got = 0;
  ssize_t n;
  while ((n = recv(s, buf, sizeof buf, 0)) > 0) {
    got += (size_t)n;
    nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
  }
  close(s);
  cr_assert_gt(got, SLOW_SIZE, "got %zu bytes: cut off", got); /* + head */
  cr_assert_lt(got, SLOW_SIZE + 1024);
  stop(&f);
}
