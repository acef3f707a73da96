/* prodcons_fibers [-n ITEMS] — producer/consumer through a bounded queue
 * (64 items), both fibers on one loop: the producer awaits each put (so it
 * waits while the queue is full), the consumer each get, until the 0 that
 * ends production. Checks the count and the sum. The asyncio twin is
 * examples/python/prodcons.py; the thread-to-loop version is prodcons.c. */
#include <stdio.h>
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

static int run(weft_fiber *self, void *arg) {
  weft_queue *q;
  (void)arg;
  int err = weft_queue_new(weft_fiber_loop(self), 64, NULL, &q);
  if (err != 0) return err;
  err = weft_fiber_gather_calls(
      (weft_fiber_call[]){{producer, q}, {consumer, q}}, 2);
  weft_queue_free(q);
  return err;
}

int main(int argc, char **argv) {
  ex_parse(argc, argv, (ex_opt[]){{"-n", &n, 0, 100000000}, {0}}, 0, 0, usage);
  int err = weft_fiber_main(run, NULL, NULL, NULL);
  if (err != 0)
    fprintf(stderr, "prodcons_fibers: %s\n", weft_strerror(err));
  else
    printf("consumed %ld items, sum %ld\n", count, sum);
  return err == 0 && count == n && sum == n * (n + 1) / 2 ? 0 : 1;
}
