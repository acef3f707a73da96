/* get_fibers [-j K] [-t SECONDS] URL... — a parallel downloader in fiber
 * style: fetches every http:// URL (HTTP/1.0), at most K (4) at a time
 * (weft_fiber_map with a limit), each within SECONDS (10, connecting
 * included: weft_fiber_wait_for on the download's fiber, which a timeout
 * cancels), and saves each body in the current directory under the URL's
 * last path segment ("index.html" for "/"; a name an earlier URL took gets
 * ".N" appended, N the URL's position). Prints a line per URL as it ends
 * ("[done/N] NAME: STATUS, BYTES bytes", or the URL and what went wrong),
 * then a summary; exit 0 if every fetch got a 2xx reply, else 1. The
 * asyncio twin is examples/python/get.py; the callback version is get.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] = "usage: get_fibers [-j K] [-t SECONDS] URL...\n";
static long jobs = 4, n_urls, done, failed;
static double timeout_s = 10;
static unsigned long long total;

typedef struct fetch {
  const char *url;
  char host[256], path[1024], name[300];
  int port, status;
  unsigned long long size;
} fetch;
static fetch *fs;

/* Splits URL i, "http://host[:port][/path]" (host[0] stays NUL if it is
 * not one), and names its file after the path's last segment. */
static void parse(long i, const char *url) {
  fetch *f = &fs[i];
  int n = 0;
  *f = (fetch){.url = url, .path = "/", .port = 80};
  sscanf(url, "http://%255[^:/?#]%n:%5d%n", f->host, &n, &f->port, &n);
  sscanf(url + n, "%1023[^?#]", f->path);
  if (f->path[0] != '/') f->host[0] = '\0'; /* not an http:// URL */
  const char *slash = strrchr(f->path, '/');
  const char *base = slash && slash[1] ? slash + 1 : "index.html";
  snprintf(f->name, sizeof f->name, "%s", base);
  for (long j = 0; j < i; j++)
    if (strcmp(fs[j].name, base) == 0)
      snprintf(f->name, sizeof f->name, "%s.%ld", base, i + 1);
}

static int download(weft_fiber *self, void *arg) {
  fetch *f = arg;
  weft_tcp t;
  char buf[16384] = "";
  FILE *out = NULL;
  (void)self;
  if (f->host[0] == '\0') return -EINVAL; /* not an http:// URL */
  ssize_t err = weft_fiber_open_connection(&t, f->host, (unsigned)f->port);
  int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n",
                   f->path, f->host, f->port);
  if (err == 0) err = weft_fiber_write(&t.stream, buf, (size_t)n);
  if (err > 0)
    err = weft_fiber_read_until(&t.stream, buf, sizeof buf - 1, "\r\n\r\n", 4);
  if (err > 0 && sscanf(buf, "HTTP/%*s %d", &f->status) != 1) err = -EPROTO;
  if (err > 0 && (out = fopen(f->name, "wb")) == NULL) err = -errno;
  while (err > 0 && (err = weft_fiber_read(&t.stream, buf, sizeof buf)) > 0)
    f->size += fwrite(buf, 1, (size_t)err, out);
  if (out != NULL) fclose(out);
  weft_fiber_close(&t.stream.base);
  return (int)err;
}

static int get_one(weft_fiber *self, void *i) {
  fetch *f = &fs[(uintptr_t)i];
  (void)self;
  weft_future *task;
  int err = weft_fiber_create_task(download, f, &task);
  if (err == 0) err = weft_fiber_wait_for(task, (uint64_t)(timeout_s * 1000));
  weft_future_unref(task);
  failed += err != 0 || f->status < 200 || f->status > 299;
  printf("[%ld/%ld] ", ++done, n_urls);
  if (err == -ETIMEDOUT)
    printf("%s: timed out after %g s\n", f->url, timeout_s);
  else if (err != 0)
    printf("%s: %s\n", f->url, weft_strerror(err));
  else
    printf("%s: %d, %llu bytes\n", f->name, f->status, f->size);
  total += err == 0 ? f->size : 0;
  return 0;
}

static int get_all(weft_fiber *self, void *argv) {
  if ((fs = calloc((size_t)n_urls, sizeof *fs)) == NULL) return -ENOMEM;
  for (long i = 0; i < n_urls; i++)
    parse(i, ((char **)argv)[i + 1]);
  uint64_t t0 = weft_now(weft_fiber_loop(self));
  int err = weft_fiber_map(get_one, NULL, (size_t)n_urls, (unsigned)jobs);
  double secs = (double)(weft_now(weft_fiber_loop(self)) - t0) / 1000;
  printf("%ld URLs, %ld ok, %ld failed, %llu bytes in %.2f s\n", n_urls,
         n_urls - failed, failed, total, secs);
  return err;
}

int main(int argc, char **argv) {
  ex_opt opts[] = {{"-j", &jobs, 1, 1000},
                   {"-t", .real = &timeout_s, .min = 0, .max = 1000000},
                   {NULL}};
  n_urls = ex_parse(argc, argv, opts, 1, -1, usage);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int err = weft_fiber_main(get_all, argv, NULL, NULL);
  if (err != 0) fprintf(stderr, "get_fibers: %s\n", weft_strerror(err));
  free(fs);
  return err != 0 || failed != 0;
}
