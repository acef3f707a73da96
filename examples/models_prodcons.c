/* models_prodcons [--model threads|processes|async] [-n ITEMS] — one
 * producer/consumer written in the three models of concurrency (the
 * guide's "Choosing" page, docs/guide/choosing.md): a producer makes the
 * numbers 1..ITEMS (default 1000000), a consumer on the loop adds them up,
 * and the producer waits whenever the consumer falls behind by a bound.
 *
 *   threads    the producer is a dedicated thread (weft_thread_spawn)
 *              putting into a bounded weft_queue with
 *              weft_queue_put_threadsafe, which blocks it while the queue
 *              is full; the consumer is a fiber on the loop
 *   processes  the producer is a child process (this program with
 *              --produce) writing each number to a pipe with its own
 *              write(2); the bound is the pipe's buffer (64 KiB, 8192
 *              numbers), and the consumer fiber reads what has arrived
 *   async      producer and consumer are two fibers on one thread, through
 *              the same bounded queue (asyncio.Queue(maxsize=64))
 *
 * Prints the model, the count and sum, and the wall time; exit 1 if the
 * sum is wrong. The end of the numbers is a 0 (threads, async) or the end
 * of the pipe (processes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: models_prodcons [--model threads|processes|async] [-n ITEMS]\n"
    "  a producer makes 1..ITEMS (default 1000000), a consumer adds them\n"
    "  up: a thread and the loop through a 64-item queue, a child process\n"
    "  and the loop over a pipe, or two fibers; prints the wall time.\n";

#define BOUND 64
static long items = 1000000;
static char self_path[4096];

typedef struct tally {
  int64_t count, sum;
} tally;

/* The consumer for threads and async: a fiber taking from the queue. */
static int consume_queue(weft_queue *q, tally *t) {
  for (void *item;;) {
    int err = weft_fiber_queue_get(q, &item);
    if (err != 0 || item == NULL) return err;
    t->count++;
    t->sum += (intptr_t)item;
  }
}

/* ---- threads: a producer thread, the consumer on the loop ---------------- */

static int produce_thread(weft_thread *self, void *q) {
  (void)self;
  int err = 0;
  for (intptr_t i = 1; err == 0 && i <= items + 1; i++) /* then the 0 */
    err = weft_queue_put_threadsafe(q, (void *)(i <= items ? i : 0));
  return err;
}

static int run_threads(weft_loop *loop, tally *t) {
  weft_queue *q;
  weft_future *producer;
  int err = weft_queue_new(loop, BOUND, NULL, &q);
  if (err != 0) return err;
  err = weft_thread_spawn(loop, "producer", produce_thread, q, &producer);
  if (err == 0) {
    err = consume_queue(q, t);
    int perr = weft_await(producer); /* the thread's own result */
    if (err == 0) err = perr;
    weft_future_unref(producer);
  }
  weft_queue_free(q);
  return err;
}

/* ---- processes: a producer process writing to a pipe --------------------- */

static int produce_process(void) {
  for (int64_t i = 1; i <= items; i++) /* one write per item, like a put */
    if (write(1, &i, sizeof i) != (ssize_t)sizeof i) return 1;
  return 0;
}

static void on_closed(weft_handle *h) { (void)h; }

static weft_pipe out;      /* static: they finish closing after the */
static weft_process child; /* driver returns (main runs the loop on) */

static int run_processes(weft_loop *loop, tally *t) {
  char n_arg[32];
  snprintf(n_arg, sizeof n_arg, "%ld", items);
  weft_stdio st[2] = {{WEFT_STDIO_INHERIT}, {WEFT_STDIO_PIPE, -1, &out}};
  weft_process_options o = {
      .argv = (char *const[]){self_path, "--produce", n_arg, NULL},
      .stdio = st,
      .stdio_count = 2};
  weft_pipe_init(loop, &out);
  int err = weft_spawn(loop, &child, &o);
  if (err != 0) return err;
  int64_t batch[512];
  ssize_t n;
  while ((n = weft_fiber_read(&out.stream, batch, sizeof batch)) > 0) {
    /* a pipe read may end inside a number: keep the tail for the next */
    size_t whole = (size_t)n / sizeof batch[0], rest = (size_t)n % 8;
    for (size_t i = 0; i < whole; i++) {
      t->count++;
      t->sum += batch[i];
    }
    if (rest != 0 && (n = weft_fiber_read_exact(&out.stream, (char *)batch + n,
                                                sizeof batch[0] - rest)) < 0)
      break;
    if (rest != 0) {
      t->count++;
      t->sum += batch[whole];
    }
  }
  weft_future *exit = NULL;
  int64_t status = -1;
  if (weft_process_exit_future(&child, &exit) == 0)
    weft_await_take_i64(exit, &status);
  weft_close(&out.stream.base, on_closed);
  weft_close(&child.base, on_closed);
  err = n == WEFT_EOF ? 0 : (int)n;
  return err != 0 ? err : status == 0 ? 0 : -ECHILD;
}

/* ---- async: two fibers through the queue --------------------------------- */

static int produce_fiber(weft_fiber *self, void *q) {
  (void)self;
  int err = 0;
  for (intptr_t i = 1; err == 0 && i <= items + 1; i++) /* then the 0 */
    err = weft_fiber_queue_put(q, (void *)(i <= items ? i : 0));
  return err;
}

static int run_async(weft_loop *loop, tally *t) {
  weft_queue *q;
  weft_future *producer;
  int err = weft_queue_new(loop, BOUND, NULL, &q);
  if (err != 0) return err;
  err = weft_fiber_create_task(produce_fiber, q, &producer);
  if (err == 0) {
    err = consume_queue(q, t);
    int perr = weft_await(producer);
    if (err == 0) err = perr;
    weft_future_unref(producer);
  }
  weft_queue_free(q);
  return err;
}

/* ---- the driver ---------------------------------------------------------- */

typedef struct model {
  const char *name;
  int (*run)(weft_loop *loop, tally *t);
} model;

static const model models[] = {{"threads", run_threads},
                               {"processes", run_processes},
                               {"async", run_async}};

static tally result;

static int driver(weft_fiber *self, void *arg) {
  return ((const model *)arg)->run(weft_fiber_loop(self), &result);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "--produce") == 0) {
    items = atol(argv[2]);
    return produce_process();
  }
  const model *m = &models[0];
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i])) {
      ex_usage(usage, 0);
    } else if (strcmp(argv[i], "--model") == 0) {
      const char *name = ex_str(argc, argv, &i, usage);
      m = NULL;
      for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        if (strcmp(models[k].name, name) == 0) m = &models[k];
      if (m == NULL) ex_bad(usage, "unknown model '%s'", name);
    } else if (strcmp(argv[i], "-n") == 0) {
      items = ex_long(argc, argv, &i, 0, 1000000000, usage);
    } else {
      ex_bad(usage, "unknown argument '%s'", argv[i]);
    }
  }
  ssize_t len = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (len < 0) return 1;
  self_path[len] = '\0';
  weft_loop *loop;
  double t0 = now_s();
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) {
    fprintf(stderr, "models_prodcons: loop: %s\n", weft_strerror(err));
    return 1;
  }
  err = weft_fiber_run(loop, driver, (void *)m, NULL, NULL);
  double wall = now_s() - t0;
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* finish the handles' closes */
  weft_loop_free(loop);
  if (err != 0) {
    fprintf(stderr, "models_prodcons: %s: %s\n", m->name, weft_strerror(err));
    return 1;
  }
  int64_t want = (int64_t)items * (items + 1) / 2;
  printf("%-9s %lld items, sum %lld in %.3f s wall%s\n", m->name,
         (long long)result.count, (long long)result.sum, wall,
         result.sum == want && result.count == items ? "" : " (WRONG)");
  return result.sum == want && result.count == items ? 0 : 1;
}
