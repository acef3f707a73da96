/* counter_fibers [-f FIBERS] [-n INCREMENTS] — why even cooperative fibers
 * need a lock: FIBERS (10) fibers each add 1 to a shared counter INCREMENTS
 * (1000) times as read, await (a yield standing for I/O), write back. Under
 * a weft_lock the total is exact; without it, fibers overwrite each other's
 * updates and most increments are lost. Prints both totals; exit 1 if the
 * locked one is wrong. The asyncio twin is examples/python/counter.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: counter_fibers [-f FIBERS] [-n INCREMENTS]\n";
static long fibers = 10, increments = 1000, counter;

static int add(weft_fiber *self, void *lock) {
  (void)self;
  for (long i = 0; i < increments; i++) {
    int err = lock == NULL ? 0 : weft_fiber_lock_acquire(lock);
    if (err != 0) return err;
    long v = counter;
    err = weft_fiber_yield();
    counter = v + 1;
    if (lock != NULL) weft_lock_release(lock);
    if (err != 0) return err;
  }
  return 0;
}

static int run(weft_fiber *self, void *lock) {
  weft_future *fs[fibers];
  counter = 0;
  for (long i = 0; i < fibers; i++)
    if (weft_fiber_create_task(add, lock, &fs[i]) != 0) return -ENOMEM;
  int err = weft_fiber_gather(fs, (size_t)fibers);
  weft_fiber_return_i64(self, counter);
  return err;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "-f") == 0)
      fibers = ex_long(argc, argv, &i, 1, 10000, usage);
    else if (strcmp(argv[i], "-n") == 0)
      increments = ex_long(argc, argv, &i, 0, 1000000, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  weft_loop *loop;
  weft_lock *lock;
  int64_t locked = 0, unlocked = 0;
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_lock_new(loop, &lock);
  if (err == 0) err = weft_fiber_run(loop, run, lock, NULL, &locked);
  if (err == 0) err = weft_fiber_run(loop, run, NULL, NULL, &unlocked);
  if (err != 0) {
    fprintf(stderr, "counter_fibers: %s\n", weft_strerror(err));
    return 1;
  }
  printf("with the lock: %lld, without: %lld (expected %ld)\n",
         (long long)locked, (long long)unlocked, fibers * increments);
  weft_lock_free(lock);
  weft_loop_free(loop);
  return locked == fibers * increments ? 0 : 1;
}
