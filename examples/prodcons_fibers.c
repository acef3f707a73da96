/* prodcons_fibers [-n ITEMS] — producer/consumer through a bounded queue
 * (64 items), both fibers on one loop: the producer awaits each put (so it
 * waits while the queue is full), the consumer each get, until the 0 that
 * ends production. Checks the count and the sum. The asyncio twin is
 * examples/python/prodcons.py; the thread-to-loop version is prodcons.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] = "usage: prodcons_fibers [-n ITEMS]\n";
static long n = 100000, count, sum;

static int producer(weft_fiber *self, void *q) {
  (void)self;
  for (intptr_t i = 1; i <= n + 1; i++) { /* then the end mark, 0 */
    weft_future *put;
    int err = weft_queue_put(q, (void *)(i <= n ? i : 0), &put);
    if (err != 0 || (err = weft_await_take_i64(put, NULL)) != 0) return err;
  }
  return 0;
}

static int consumer(weft_fiber *self, void *q) {
  (void)self;
  for (;;) {
    weft_future *get;
    int err = weft_queue_get(q, &get);
    if (err != 0 || (err = weft_await(get)) != 0) return err;
    intptr_t item = (intptr_t)weft_future_value(get);
    weft_future_unref(get);
    if (item == 0) return 0;
    count++, sum += item;
  }
}

static int run(weft_fiber *self, void *q) {
  weft_future *f[2] = {NULL, NULL};
  int err = weft_fiber_spawn(weft_fiber_loop(self), producer, q, NULL, &f[0]);
  if (err == 0)
    err = weft_fiber_spawn(weft_fiber_loop(self), consumer, q, NULL, &f[1]);
  for (int i = 0; i < 2; i++) /* gather */
    if (f[i] != NULL && weft_await_take_i64(f[i], NULL) != 0) err = -EPROTO;
  return err;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "-n") == 0)
      n = ex_long(argc, argv, &i, 0, 100000000, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  weft_loop *loop;
  weft_queue *q;
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_queue_new(loop, 64, NULL, &q);
  if (err == 0) err = weft_fiber_run(loop, run, q, NULL, NULL);
  if (err != 0) {
    fprintf(stderr, "prodcons_fibers: %s\n", weft_strerror(err));
    return 1;
  }
  printf("consumed %ld items, sum %ld\n", count, sum);
  weft_queue_free(q);
  weft_loop_free(loop);
  return count == n && sum == n * (n + 1) / 2 ? 0 : 1;
}
