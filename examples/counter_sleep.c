/* counter_sleep — asyncio's shared-counter example with futures.
 *
 * TASKS tasks each increment a shared counter ROUNDS times; an increment
 * reads the counter, awaits sleep(0) (so that the other tasks run), then
 * writes back the value it read plus one: TASKS * ROUNDS = 100,000 awaits
 * of sleep(0) per run. Without a lock the tasks overwrite each other's
 * updates; with a weft_lock held across read-await-write the total is
 * exact.
 *
 * A "task" in C is a small struct plus a chain of continuations: each step
 * registers the next one with weft_future_then(). */
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: counter_sleep\n"
    "  TASKS tasks increment a shared counter through sleep(0), without and\n"
    "  with a weft_lock, and print both totals. No options.\n";

#define TASKS 10
#define ROUNDS 10000

typedef struct task {
  weft_loop *loop;
  weft_lock *lock; /* NULL: run without one */
  long *counter;
  long seen;
  int left;
} task;

static void check(int err, const char *what) {
  if (err != 0) {
    fprintf(stderr, "counter_sleep: %s: %s\n", what, weft_strerror(err));
    exit(1);
  }
}

static void increment(task *t);

/* after sleep(0): write back, release, go round again */
static int write_back(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  task *t = arg;
  *t->counter = t->seen + 1;
  if (t->lock != NULL) check(weft_lock_release(t->lock), "release");
  if (--t->left > 0) increment(t);
  return 0;
}

/* read, then await sleep(0) */
static void read_and_sleep(task *t) {
  t->seen = *t->counter;
  weft_future *nap;
  check(weft_sleep(t->loop, 0, &nap), "sleep");
  check(weft_future_then(nap, write_back, t, NULL), "then");
  weft_future_unref(nap);
}

static int locked(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  (void)out;
  read_and_sleep(arg);
  return 0;
}

static void increment(task *t) {
  if (t->lock == NULL) {
    read_and_sleep(t);
    return;
  }
  weft_future *held;
  check(weft_lock_acquire(t->lock, &held), "acquire");
  check(weft_future_then(held, locked, t, NULL), "then");
  weft_future_unref(held);
}

static long run_tasks(weft_loop *loop, weft_lock *lock) {
  long counter = 0;
  task tasks[TASKS];
  for (int i = 0; i < TASKS; i++) {
    tasks[i] = (task){loop, lock, &counter, 0, ROUNDS};
    increment(&tasks[i]);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return counter;
}

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  weft_loop *loop;
  weft_lock *lock;
  check(weft_loop_new(&loop, NULL), "loop");
  check(weft_lock_new(loop, &lock), "lock");
  long without = run_tasks(loop, NULL);
  long with = run_tasks(loop, lock);
  printf("%d tasks x %d increments, each awaiting sleep(0)\n", TASKS, ROUNDS);
  printf("without a lock: counter = %ld (updates lost)\n", without);
  printf("with a lock:    counter = %ld (expected %d)\n", with, TASKS * ROUNDS);
  check(weft_lock_free(lock), "lock_free");
  check(weft_loop_free(loop), "loop_free");
  return with == TASKS * ROUNDS ? 0 : 1;
}
