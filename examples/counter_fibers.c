/* counter_fibers [-f FIBERS] [-n INCREMENTS] — why even cooperative fibers
 * need a lock: FIBERS (10) fibers each add 1 to a shared counter INCREMENTS
 * (1000) times as read, await (a yield standing for I/O), write back. Under
 * a weft_lock the total is exact; without it, fibers overwrite each other's
 * updates and most increments are lost. Prints both totals; exit 1 if the
 * locked one is wrong. The asyncio twin is examples/python/counter.py. */
#include <stdio.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: counter_fibers [-f FIBERS] [-n INCREMENTS]\n";
static long fibers = 10, increments = 1000, counter;
static weft_lock *lock; /* NULL: the run without it */

static int add(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
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

static int run(weft_fiber *self, void *locked) {
  int err = locked ? weft_lock_new(weft_fiber_loop(self), &lock) : 0;
  counter = 0;
  if (err == 0) err = weft_fiber_map(add, NULL, (size_t)fibers, 0);
  if (lock != NULL) weft_lock_free(lock);
  lock = NULL;
  weft_fiber_return_i64(self, counter);
  return err;
}

int main(int argc, char **argv) {
  ex_opt opts[] = {
      {"-f", &fibers, 1, 10000}, {"-n", &increments, 0, 1000000}, {NULL}};
  ex_parse(argc, argv, opts, 0, 0, usage);
  int64_t locked = 0, unlocked = 0;
  int err = weft_fiber_main(run, "locked", NULL, &locked);
  if (err == 0) err = weft_fiber_main(run, NULL, NULL, &unlocked);
  if (err != 0) {
    fprintf(stderr, "counter_fibers: %s\n", weft_strerror(err));
    return 1;
  }
  printf("with the lock: %lld, without: %lld (expected %ld)\n",
         (long long)locked, (long long)unlocked, fibers * increments);
  return locked == fibers * increments ? 0 : 1;
}
