/* counter_threads — why shared data needs a lock.
 *
 * Many pool jobs (on worker threads) each add 1 to one shared counter many
 * times. Guarded by a mutex, the total is exact. With --no-lock the same
 * jobs also run unguarded: `counter++` is a load, an add and a store, and
 * two threads that interleave them lose increments, so the total usually
 * comes out short. Both totals are printed.
 *
 * The loop thread never touches the counter while jobs run; it only counts
 * completions (done callbacks run on the loop thread) and reads the total
 * once every job has finished.
 *
 * usage: counter_threads [--no-lock] [-j JOBS] [-n INCREMENTS_PER_JOB] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: counter_threads [--no-lock] [-j JOBS] [-n INCREMENTS_PER_JOB]\n"
    "  JOBS pool jobs (default 8, 1..1024) each add 1 to a shared counter\n"
    "  INCREMENTS_PER_JOB times (default 10000000), under a mutex unless\n"
    "  --no-lock; prints the total and whether it is exact.\n";

typedef struct counter {
  pthread_mutex_t lock;
  volatile long value; /* volatile: keep every load and store in the loop */
  bool use_lock;
  long per_job;
  int jobs_done;
} counter;

typedef struct job {
  weft_work work; /* first: the pool hands us back this pointer */
  counter *c;
} job;

static void add_many(weft_work *w) {
  counter *c = ((job *)w)->c;
  for (long i = 0; i < c->per_job; i++) {
    if (c->use_lock) pthread_mutex_lock(&c->lock);
    c->value = c->value + 1;
    if (c->use_lock) pthread_mutex_unlock(&c->lock);
  }
}

static void job_done(weft_work *w, int status) {
  if (status != 0) fprintf(stderr, "job failed: %s\n", weft_strerror(status));
  ((job *)w)->c->jobs_done++;
}

/* Runs `jobs` jobs on the cpu lane and returns the counter's final value. */
static long run(weft_loop *loop, int jobs, long per_job, bool use_lock) {
  counter c = {.use_lock = use_lock, .per_job = per_job};
  pthread_mutex_init(&c.lock, NULL);
  job *js = calloc((size_t)jobs, sizeof *js);
  if (js == NULL) return -1;
  for (int i = 0; i < jobs; i++) {
    js[i].c = &c;
    int err =
        weft_work_submit(loop, &js[i].work, WEFT_LANE_CPU, add_many, job_done);
    if (err != 0) {
      fprintf(stderr, "submit: %s\n", weft_strerror(err));
      exit(1);
    }
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT); /* returns when every job is done */
  free(js);
  pthread_mutex_destroy(&c.lock);
  if (c.jobs_done != jobs)
    fprintf(stderr, "only %d of %d jobs completed\n", c.jobs_done, jobs);
  return c.value;
}

int main(int argc, char **argv) {
  bool no_lock = false;
  int jobs = 8;
  long per_job = 10000000;
  for (int i = 1; i < argc; i++) {
    if (ex_is_help(argv[i]))
      ex_usage(usage, 0);
    else if (strcmp(argv[i], "--no-lock") == 0)
      no_lock = true;
    else if (strcmp(argv[i], "-j") == 0)
      jobs = (int)ex_long(argc, argv, &i, 1, 1024, usage);
    else if (strcmp(argv[i], "-n") == 0)
      per_job = ex_long(argc, argv, &i, 1, 1000000000, usage);
    else
      ex_bad(usage, "unknown argument '%s'", argv[i]);
  }
  weft_loop *loop = NULL;
  int err = weft_loop_new(&loop, NULL);
  if (err != 0) {
    fprintf(stderr, "weft_loop_new: %s\n", weft_strerror(err));
    return 1;
  }
  long expected = (long)jobs * per_job;
  long locked = run(loop, jobs, per_job, true);
  printf("with lock:    %ld (expected %ld)%s\n", locked, expected,
         locked == expected ? "" : "  WRONG");
  if (no_lock) {
    long unlocked = run(loop, jobs, per_job, false);
    printf("without lock: %ld (expected %ld): %ld increments lost\n", unlocked,
           expected, expected - unlocked);
    if (unlocked == expected)
      printf("(no race this time: try more jobs or more increments)\n");
  }
  weft_loop_free(loop);
  return locked == expected ? 0 : 1;
}
