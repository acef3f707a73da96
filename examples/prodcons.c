/* prodcons — the threading.Condition producer/consumer example, across a
 * thread and a loop: a worker thread produces ITEMS numbers into a bounded
 * weft_queue with weft_queue_put_threadsafe() (blocking while the queue is
 * full), and the loop consumes them with weft_queue_get() futures. A NULL
 * item tells the consumer that production is over. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: prodcons\n"
    "  A thread produces 100000 numbers into a bounded queue; the loop\n"
    "  consumes them and prints the sum. No options.\n";

#define ITEMS 100000
#define CAPACITY 64

typedef struct consumer {
  weft_loop *loop;
  weft_queue *q;
  long count, sum;
} consumer;

static void check(int err, const char *what) {
  if (err != 0) {
    fprintf(stderr, "prodcons: %s: %s\n", what, weft_strerror(err));
    exit(1);
  }
}

static void *producer(void *arg) {
  weft_queue *q = arg;
  for (long i = 1; i <= ITEMS; i++) {
    long *item = malloc(sizeof *item);
    if (item == NULL) abort();
    *item = i;
    check(weft_queue_put_threadsafe(q, item), "put_threadsafe");
  }
  check(weft_queue_put_threadsafe(q, NULL), "put_threadsafe"); /* done */
  return NULL;
}

static void get_next(consumer *c);

static void on_item(weft_future *f, void *arg) {
  consumer *c = arg;
  long *item = weft_future_value(f);
  if (item == NULL) { /* the producer is done: let the loop finish */
    weft_loop_unref(c->loop);
    return;
  }
  c->count++;
  c->sum += *item;
  free(item);
  get_next(c);
}

static void get_next(consumer *c) {
  weft_future *g;
  check(weft_queue_get(c->q, &g), "get");
  check(weft_future_on_settled(g, on_item, c), "on_settled");
  weft_future_unref(g);
}

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  consumer c = {0};
  check(weft_loop_new(&c.loop, NULL), "loop");
  check(weft_queue_new(c.loop, CAPACITY, free, &c.q), "queue");
  /* the loop has no handle to wait on while the thread produces */
  weft_loop_ref(c.loop);
  get_next(&c);
  pthread_t th;
  if (pthread_create(&th, NULL, producer, c.q) != 0) return 1;
  weft_loop_run(c.loop, WEFT_RUN_DEFAULT);
  pthread_join(th, NULL);
  printf("consumed %ld items, sum %ld (expected %ld)\n", c.count, c.sum,
         (long)ITEMS * (ITEMS + 1) / 2);
  check(weft_queue_free(c.q), "queue_free");
  check(weft_loop_free(c.loop), "loop_free");
  return c.sum == (long)ITEMS * (ITEMS + 1) / 2 ? 0 : 1;
}
