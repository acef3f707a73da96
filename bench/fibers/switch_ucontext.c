/* ucontext peer of bench_fibers' switch: two contexts swapcontext() to each
 * other (glibc saves and restores the signal mask: one syscall per switch).
 * One round trip is two switches.
 * Usage: switch_ucontext N  -> one JSON line, ns per switch. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

static ucontext_t main_ctx, fib_ctx;
static unsigned long counter;

static void body(void) {
  for (;;) {
    ++counter;
    swapcontext(&fib_ctx, &main_ctx);
  }
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
  size_t size = 64 * 1024;
  char *stack = malloc(size);
  if (stack == NULL || getcontext(&fib_ctx) != 0) return 1;
  fib_ctx.uc_stack.ss_sp = stack;
  fib_ctx.uc_stack.ss_size = size;
  fib_ctx.uc_link = NULL;
  makecontext(&fib_ctx, body, 0);
  swapcontext(&main_ctx, &fib_ctx); /* warm up: start the body */
  counter = 0;
  double t0 = now();
  for (unsigned long i = 0; i < n; i++)
    swapcontext(&main_ctx, &fib_ctx);
  double t = now() - t0;
  if (counter != n) {
    fprintf(stderr, "switch_ucontext: FAILED: %lu of %lu\n", counter, n);
    return 1;
  }
  printf("{\"bench\":\"fibers_switch\",\"impl\":\"ucontext\",\"value\":%.3f,"
         "\"unit\":\"ns\",\"better\":\"lower\",\"runs\":1}\n",
         t * 1e9 / (2.0 * (double)n));
  free(stack);
  return 0;
}
