/* workers_fibers [-n JOBS] [-j N] — a worker pool: JOBS fibers (20), each
 * waiting for one of N (4) semaphore permits before its work (a short
 * sleep standing for I/O), so at most N run at once. Prints the peak and
 * checks it. The asyncio twin is examples/python/workers.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  (void)self, (void)arg;
  weft_future *fs[jobs];
  for (long i = 0; i < jobs; i++)
    if (weft_fiber_create_task(worker, (void *)i, &fs[i]) != 0) return -ENOMEM;
  return weft_fiber_gather(fs, (size_t)jobs);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "-n") == 0)
      jobs = ex_long(argc, argv, &i, 0, 100000, usage);
    else if (strcmp(argv[i], "-j") == 0)
      width = ex_long(argc, argv, &i, 1, 100000, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  weft_loop *loop;
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_semaphore_new(loop, (unsigned)width, &permits);
  if (err == 0) err = weft_fiber_run(loop, run, NULL, NULL, NULL);
  if (err != 0) {
    fprintf(stderr, "workers_fibers: %s\n", weft_strerror(err));
    return 1;
  }
  printf("%ld jobs done, at most %ld at once (limit %ld)\n", done, peak, width);
  weft_semaphore_free(permits);
  weft_loop_free(loop);
  return done == jobs && peak <= width ? 0 : 1;
}
