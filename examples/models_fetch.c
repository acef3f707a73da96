/* models_fetch — one I/O-bound job written in the three models of
 * concurrency (the guide's "Choosing" page, docs/guide/choosing.md): fetch
 * N pages from a slow HTTP server, C at a time, and count the bytes.
 *
 *   models_fetch --serve [--delay MS] [--size BYTES]
 *       the slow server: answers every request after MS ms (default 20)
 *       with BYTES bytes (default 1024), one fiber per connection; prints
 *       "models_fetch: serving on 127.0.0.1:PORT" and runs until killed
 *   models_fetch --model threads|processes|async --port PORT [-n N] [-c C]
 *       fetches N pages (default 1000), C at a time (default 100):
 *       threads    C blocking fetches at once on the pool's I/O lane
 *       processes  C worker processes, each making blocking fetches
 *       async      C fibers on the loop's one thread (non-blocking sockets)
 *
 * Every model waits for the same server, so their wall times agree; what
 * differs is what the waiting costs (threads, processes or fibers). Each
 * model's driver is a fiber. Prints the model, the pages and bytes, and
 * the wall time; exit 1 if a fetch failed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: models_fetch --serve [--delay MS] [--size BYTES]\n"
    "       models_fetch --model threads|processes|async --port PORT "
    "[-n N] [-c C]\n"
    "  the server answers each request after MS ms with BYTES bytes; the\n"
    "  client fetches N pages (1000), C at a time (100), in the model\n"
    "  given, and prints the bytes and the wall time.\n";

static const char request[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
static long delay_ms = 20, body_size = 1024, pages = 1000, at_once = 100;
static long port;
static char self_path[4096];

/* ---- the slow server: one fiber per connection --------------------------- */

typedef struct conn {
  weft_tcp tcp;
  char buf[4096];
} conn;

static void on_closed(weft_handle *h) { free(h); }

static int serve(weft_fiber *self, void *arg) {
  (void)self;
  conn *c = arg;
  char *reply = malloc((size_t)body_size + 128);
  ssize_t n = reply == NULL
                  ? -ENOMEM
                  : weft_fiber_read_until(&c->tcp.stream, c->buf, sizeof c->buf,
                                          "\r\n\r\n", 4);
  if (n > 0 && weft_fiber_sleep((uint64_t)delay_ms) == 0) {
    int head =
        snprintf(reply, 128, "HTTP/1.0 200 OK\r\nContent-Length: %ld\r\n\r\n",
                 body_size);
    memset(reply + head, 'x', (size_t)body_size);
    weft_fiber_write(&c->tcp.stream, reply, (size_t)head + (size_t)body_size);
  }
  free(reply);
  weft_close(&c->tcp.stream.base, on_closed);
  return 0;
}

static int acceptor(weft_fiber *self, void *listener) {
  for (;;) {
    conn *c = malloc(sizeof *c);
    if (c == NULL) return -ENOMEM;
    weft_tcp_init(weft_fiber_loop(self), &c->tcp);
    int err = weft_fiber_accept(listener, &c->tcp.stream);
    if (err == 0)
      err = weft_fiber_spawn(weft_fiber_loop(self), serve, c, NULL, NULL);
    if (err != 0) weft_close(&c->tcp.stream.base, on_closed);
    if (err == -ECANCELED) return 0;
  }
}

static int run_server(weft_loop *loop) {
  weft_tcp server;
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  weft_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&a);
  weft_tcp_init(loop, &server);
  int err = weft_tcp_bind(&server, (struct sockaddr *)&a, 0);
  if (err == 0) err = weft_tcp_listen(&server, 4096, NULL);
  if (err == 0)
    err = weft_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
  if (err == 0)
    err = weft_fiber_spawn(loop, acceptor, &server.stream, NULL, NULL);
  if (err != 0) return err;
  printf("models_fetch: serving on 127.0.0.1:%d\n",
         weft_sockaddr_port((struct sockaddr *)&a));
  fflush(stdout);
  return weft_loop_run(loop, WEFT_RUN_DEFAULT);
}

/* ---- a blocking fetch (for threads and processes) ------------------------ */

/* Returns the bytes of the reply (head and body), or a negative errno. */
static int64_t fetch_blocking(void) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int64_t total = 0;
  char buf[16384];
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      write(fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1))
    total = -errno;
  for (ssize_t n; total >= 0 && (n = read(fd, buf, sizeof buf)) != 0;)
    total = n < 0 ? -errno : total + n;
  close(fd);
  return total;
}

/* ---- threads: blocking fetches on the pool's I/O lane -------------------- */

static int fetch_job(size_t i, void *arg, int64_t *result) {
  (void)i;
  (void)arg;
  *result = fetch_blocking();
  return *result < 0 ? (int)*result : 0;
}

static int run_threads(weft_loop *loop, int64_t *total) {
  int64_t *sizes = calloc((size_t)pages, sizeof *sizes);
  weft_future *map = NULL;
  int err =
      sizes == NULL ? -ENOMEM : weft_pool_resize(loop, 0, (unsigned)at_once);
  if (err == 0)
    err = weft_pool_map(loop, WEFT_LANE_IO, (size_t)pages, fetch_job, NULL,
                        (size_t)at_once, sizes, &map);
  if (err == 0) err = weft_await(map);
  for (long i = 0; err == 0 && i < pages; i++)
    *total += sizes[i];
  weft_future_unref(map);
  free(sizes);
  return err;
}

/* ---- processes: worker processes making blocking fetches ----------------- */

static int worker_job(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)in;
  (void)len;
  (void)arg;
  int64_t n = fetch_blocking();
  if (n < 0) return (int)n;
  out->base = malloc(32);
  if (out->base == NULL) return -ENOMEM;
  out->len = (size_t)snprintf(out->base, 32, "%lld", (long long)n);
  return 0;
}

static void pool_closed(weft_procpool *pool, void *arg) {
  (void)pool;
  weft_future_resolve_i64(arg, 0);
}

static int run_processes(weft_loop *loop, int64_t *total) {
  char port_arg[16];
  snprintf(port_arg, sizeof port_arg, "%ld", port);
  weft_procpool_options o = {
      .argv = (char *const[]){self_path, "--worker", port_arg, NULL},
      .workers = (unsigned)at_once};
  weft_buf *inputs = calloc((size_t)pages, sizeof *inputs);
  weft_future **jobs = calloc((size_t)pages, sizeof *jobs);
  weft_future *all = NULL, *closed = NULL;
  weft_procpool *pool = NULL;
  int err = inputs && jobs ? 0 : -ENOMEM;
  for (long i = 0; err == 0 && i < pages; i++)
    inputs[i] = weft_buf_init((char *)"get", 3);
  if (err == 0) err = weft_procpool_new(loop, &o, &pool);
  if (err == 0)
    err = weft_procpool_map(pool, inputs, (size_t)pages, jobs, &all);
  if (err == 0) err = weft_await(all);
  for (long i = 0; err == 0 && i < pages; i++) {
    const weft_procpool_result *r = weft_future_value(jobs[i]);
    *total += atoll(r->data);
  }
  for (long i = 0; all != NULL && i < pages; i++)
    weft_future_unref(jobs[i]);
  weft_future_unref(all);
  if (pool != NULL && weft_future_new(loop, &closed) == 0) {
    if (weft_procpool_close(pool, pool_closed, closed) == 0) weft_await(closed);
    weft_future_unref(closed);
  }
  free(jobs);
  free(inputs);
  return err;
}

/* ---- async: C fibers at a time on the loop's thread ---------------------- */

typedef struct fetcher {
  weft_semaphore *slots;
  int64_t bytes;
} fetcher;

static int fetch_fiber(weft_fiber *self, void *arg) {
  fetcher *f = arg;
  conn *c = malloc(sizeof *c);
  struct sockaddr_in a;
  weft_ip4_addr("127.0.0.1", (unsigned)port, &a);
  if (c == NULL) return -ENOMEM;
  ssize_t err = weft_fiber_semaphore_acquire(f->slots);
  if (err != 0) {
    free(c);
    return (int)err;
  }
  weft_tcp_init(weft_fiber_loop(self), &c->tcp);
  err = weft_fiber_connect(&c->tcp, (struct sockaddr *)&a);
  if (err == 0)
    err = weft_fiber_write(&c->tcp.stream, request, sizeof request - 1);
  while (err >= 0 &&
         (err = weft_fiber_read(&c->tcp.stream, c->buf, sizeof c->buf)) > 0)
    f->bytes += err;
  weft_close(&c->tcp.stream.base, on_closed);
  weft_semaphore_release(f->slots);
  return err < 0 ? (int)err : 0;
}

static int run_async(weft_loop *loop, int64_t *total) {
  fetcher f = {0};
  weft_future **fs = calloc((size_t)pages, sizeof *fs);
  int err = fs == NULL ? -ENOMEM
                       : weft_semaphore_new(loop, (unsigned)at_once, &f.slots);
  for (long i = 0; err == 0 && i < pages; i++)
    err = weft_fiber_create_task(fetch_fiber, &f, &fs[i]);
  for (long i = 0; fs != NULL && i < pages && fs[i] != NULL; i++) {
    int e = weft_await_take_i64(fs[i], NULL); /* drops fs[i] */
    if (err == 0) err = e;
  }
  *total = f.bytes;
  if (f.slots != NULL) weft_semaphore_free(f.slots);
  free(fs);
  return err;
}

/* ---- the driver ---------------------------------------------------------- */

typedef struct model {
  const char *name;
  int (*run)(weft_loop *loop, int64_t *total);
} model;

static const model models[] = {{"threads", run_threads},
                               {"processes", run_processes},
                               {"async", run_async}};

static int driver(weft_fiber *self, void *arg) {
  int64_t total = 0;
  int err = ((const model *)arg)->run(weft_fiber_loop(self), &total);
  weft_fiber_return_i64(self, total);
  return err;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "--worker") == 0) {
    port = atol(argv[2]);
    return weft_procpool_worker_main(worker_job, NULL) == 0 ? 0 : 1;
  }
  const model *m = NULL;
  bool server = false;
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i])) {
      ex_usage(usage, 0);
    } else if (strcmp(argv[i], "--serve") == 0) {
      server = true;
    } else if (strcmp(argv[i], "--model") == 0) {
      const char *name = ex_str(argc, argv, &i, usage);
      for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        if (strcmp(models[k].name, name) == 0) m = &models[k];
      if (m == NULL) ex_bad(usage, "unknown model '%s'", name);
    } else if (strcmp(argv[i], "--port") == 0) {
      port = ex_long(argc, argv, &i, 1, 65535, usage);
    } else if (strcmp(argv[i], "--delay") == 0) {
      delay_ms = ex_long(argc, argv, &i, 0, 60000, usage);
    } else if (strcmp(argv[i], "--size") == 0) {
      body_size = ex_long(argc, argv, &i, 0, 1 << 26, usage);
    } else if (strcmp(argv[i], "-n") == 0) {
      pages = ex_long(argc, argv, &i, 1, 1000000, usage);
    } else if (strcmp(argv[i], "-c") == 0) {
      at_once = ex_long(argc, argv, &i, 1, 256, usage);
    } else {
      ex_bad(usage, "unknown argument '%s'", argv[i]);
    }
  }
  if (server == (m != NULL)) ex_bad(usage, "give --serve or --model");
  if (m != NULL && port == 0) ex_bad(usage, "--model needs --port");
  ssize_t len = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (len < 0) return 1;
  self_path[len] = '\0';
  weft_loop *loop;
  int64_t total = 0;
  double t0 = now_s();
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) {
    fprintf(stderr, "models_fetch: loop: %s\n", weft_strerror(err));
    return 1;
  }
  err = server ? run_server(loop)
               : weft_fiber_run(loop, driver, (void *)m, NULL, &total);
  if (err != 0)
    fprintf(stderr, "models_fetch: %s: %s\n", server ? "serve" : m->name,
            weft_strerror(err));
  else if (!server)
    printf("%-9s %ld pages, %ld at once: %lld bytes in %.3f s wall\n", m->name,
           pages, at_once, (long long)total, now_s() - t0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* finish the handles' closes */
  weft_loop_free(loop);
  return err == 0 ? 0 : 1;
}
