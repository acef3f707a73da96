/* workers_fibers [-n JOBS] [-j N] — a worker pool: JOBS fibers (20), each
 * waiting for one of N (4) semaphore permits before its work (a short
 * sleep standing for I/O), so at most N run at once. Prints the peak and
 * checks it. The asyncio twin is examples/python/workers.py. */
#include <stdio.h>
#include <weft.h>

#include "args.h"

static const char usage[] = "usage: workers_fibers [-n JOBS] [-j N]\n";
static weft_semaphore *permits;
static long jobs = 20, width = 4, running, peak, done;

static int worker(weft_fiber *self, void *arg) {
  (void)self;
  int err = weft_fiber_semaphore_acquire(permits);
  if (err != 0) return err;
  peak = ++running > peak ? running : peak;
  err = weft_fiber_sleep(10 + (uint64_t)((intptr_t)arg * 7 % 20));
  running--, done++;
  weft_semaphore_release(permits);
  return err;
}

static int run(weft_fiber *self, void *arg) {
  (void)arg;
  int err =
      weft_semaphore_new(weft_fiber_loop(self), (unsigned)width, &permits);
  if (err != 0) return err;
  err = weft_fiber_map(worker, NULL, (size_t)jobs, 0);
  weft_semaphore_free(permits);
  return err;
}

int main(int argc, char **argv) {
  ex_opt opts[] = {{"-n", &jobs, 0, 100000}, {"-j", &width, 1, 100000}, {NULL}};
  ex_parse(argc, argv, opts, 0, 0, usage);
  int err = weft_fiber_main(run, NULL, NULL, NULL);
  if (err != 0) {
    fprintf(stderr, "workers_fibers: %s\n", weft_strerror(err));
    return 1;
  }
  printf("%ld jobs done, at most %ld at once (limit %ld)\n", done, peak, width);
  return done == jobs && peak <= width ? 0 : 1;
}
