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
  int err = 0;
  for (intptr_t i = 1; err == 0 && i <= n + 1; i++) /* then the end mark, 0 */
    err = weft_fiber_queue_put(q, (void *)(i <= n ? i : 0));
  return err;
}

static int consumer(weft_fiber *self, void *q) {
  (void)self;
  for (void *item;;) {
    int err = weft_fiber_queue_get(q, &item);
    if (err != 0 || item == NULL) return err;
    count++, sum += (intptr_t)item;
  }
}

static int run(weft_fiber *self, void *q) {
  (void)self;
  weft_future *f[2];
  int err = weft_fiber_create_task(producer, q, &f[0]);
  if (err == 0) err = weft_fiber_create_task(consumer, q, &f[1]);
  int gathered = weft_fiber_gather(f, err == 0 ? 2 : 1);
  return err != 0 ? err : gathered;
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
