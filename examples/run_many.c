/* run_many [-j N] [-t SECONDS] [CMD...] — runs each shell command, at most
 * N (3) at a time, each with a timeout (2 s; a command still running then
 * is killed, with its process group): one fiber per command, a semaphore
 * for the slots, the exit future with a timeout. Prints how each ended; exit 0
 * if every command exited 0. Without commands it runs eight samples. The
 * asyncio twin is examples/python/run_many.py. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#include "args.h"

static const char usage[] = "usage: run_many [-j N] [-t SECONDS] [CMD...]\n";
static char *samples[] = {"echo one", "sleep 0.2",           "true",
                          "exit 3",   "sleep 0.3; echo two", "ls / >/dev/null",
                          "sleep 5",  "kill -9 $$"};
static weft_semaphore *slots;
static double timeout_s = 2;
static int failed;

static void on_closed(weft_handle *h) { free(h); }

static int run_one(weft_fiber *self, void *cmd) {
  weft_loop *loop = weft_fiber_loop(self);
  int64_t st = 0;
  int err = weft_fiber_semaphore_acquire(slots);
  if (err != 0) return err;
  char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  weft_process_options o = {
      .file = "/bin/sh", .argv = argv, .flags = WEFT_PROCESS_NEW_PGROUP};
  weft_process *p = malloc(sizeof *p);
  uint64_t t0 = weft_now(loop);
  if ((err = p == NULL ? -ENOMEM : weft_spawn(loop, p, &o)) != 0)
    free(p), p = NULL;
  if (err == 0)
    err = weft_fiber_process_wait(p, (uint64_t)(timeout_s * 1000), &st);
  if (err == -ETIMEDOUT) {
    kill(-p->pid, SIGKILL); /* the command's whole process group */
    weft_fiber_process_wait(p, 0, NULL);
  }
  double secs = (double)(weft_now(loop) - t0) / 1000;
  if (err == -ETIMEDOUT)
    printf("%s: timed out after %g s, killed\n", (char *)cmd, timeout_s);
  else if (err != 0)
    printf("%s: %s\n", (char *)cmd, weft_strerror(err));
  else if (weft_exit_is_signal(st))
    printf("%s: killed by signal %d (%.2f s)\n", (char *)cmd,
           weft_exit_signal(st), secs);
  else
    printf("%s: exit %d (%.2f s)\n", (char *)cmd, weft_exit_code(st), secs);
  failed += err != 0 || st != 0;
  if (p != NULL) weft_close(&p->base, on_closed);
  weft_semaphore_release(slots);
  return 0;
}

typedef struct cmds {
  char **v;
  int n;
} cmds;

static int run_all(weft_fiber *self, void *arg) {
  (void)self;
  cmds *c = arg;
  weft_future *fs[c->n];
  for (int i = 0; i < c->n; i++)
    if (weft_fiber_create_task(run_one, c->v[i], &fs[i]) != 0) return -ENOMEM;
  weft_fiber_gather(fs, (size_t)c->n);
  return 0;
}

int main(int argc, char **argv) {
  long jobs = 3;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    char *end;
    if (ex_is_help(argv[i])) {
      ex_usage(usage, 0);
    } else if (strcmp(argv[i], "-j") == 0) {
      jobs = ex_long(argc, argv, &i, 1, 1000, usage);
    } else if (strcmp(argv[i], "-t") == 0) {
      timeout_s = strtod(ex_str(argc, argv, &i, usage), &end);
      if (*end != '\0' || !(timeout_s > 0 && timeout_s < 1e6))
        ex_bad(usage, "-t %s: want seconds, more than 0", argv[i]);
    } else {
      ex_bad(usage, "unknown argument '%s'", argv[i]);
    }
  }
  cmds c = {argv + i, argc - i};
  if (c.n == 0) c = (cmds){samples, (int)(sizeof samples / sizeof *samples)};
  setvbuf(stdout, NULL, _IOLBF, 0);
  weft_loop *loop;
  int err = weft_loop_new(&loop, NULL);
  if (err == 0) err = weft_semaphore_new(loop, (unsigned)jobs, &slots);
  if (err == 0) err = weft_fiber_run(loop, run_all, &c, NULL, NULL);
  if (err == 0) err = weft_loop_run(loop, WEFT_RUN_DEFAULT); /* the closes */
  if (err != 0) {
    fprintf(stderr, "run_many: %s\n", weft_strerror(err));
    return 1;
  }
  weft_semaphore_free(slots);
  weft_loop_free(loop);
  return failed != 0;
}
