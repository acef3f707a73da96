/* run_many [-j N] [-t SECONDS] [CMD...] — runs each shell command, at most
 * N (3) at a time, each with a timeout (2 s; a command still running then
 * is killed, with its process group): one fiber per command
 * (weft_fiber_map with a limit of N), the exit future with a timeout.
 * Prints how each ended; exit 0 if every command exited 0. Without
 * commands it runs eight samples. The asyncio twin is
 * examples/python/run_many.py. */
#include <signal.h>
#include <stdio.h>
#include <weft.h>

#include "args.h"

static const char usage[] = "usage: run_many [-j N] [-t SECONDS] [CMD...]\n";
static char *samples[] = {"echo one", "sleep 0.2",           "true",
                          "exit 3",   "sleep 0.3; echo two", "ls / >/dev/null",
                          "sleep 5",  "kill -9 $$"};
static char **cmds = samples;
static long jobs = 3, n_cmds = sizeof samples / sizeof *samples;
static double timeout_s = 2;
static int failed;

static int run_one(weft_fiber *self, void *cmd) {
  weft_loop *loop = weft_fiber_loop(self);
  char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  weft_process_options o = {
      .file = "/bin/sh", .argv = argv, .flags = WEFT_PROCESS_NEW_PGROUP};
  weft_process p;
  int64_t st = 0;
  uint64_t t0 = weft_now(loop);
  int err = weft_spawn(loop, &p, &o);
  bool spawned = err == 0;
  if (spawned)
    err = weft_fiber_process_wait(&p, (uint64_t)(timeout_s * 1000), &st);
  if (err == -ETIMEDOUT) {
    kill(-p.pid, SIGKILL); /* the command's whole process group */
    weft_fiber_process_wait(&p, 0, NULL);
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
  if (spawned) weft_fiber_close(&p.base);
  return 0;
}

static int run_all(weft_fiber *self, void *arg) {
  (void)self, (void)arg;
  return weft_fiber_map(run_one, (void *const *)cmds, (size_t)n_cmds,
                        (unsigned)jobs);
}

int main(int argc, char **argv) {
  ex_opt opts[] = {{"-j", &jobs, 1, 1000},
                   {"-t", .real = &timeout_s, .min = 0, .max = 1000000},
                   {NULL}};
  int n = ex_parse(argc, argv, opts, 0, -1, usage);
  if (n > 0) cmds = argv + 1, n_cmds = n;
  setvbuf(stdout, NULL, _IOLBF, 0);
  int err = weft_fiber_main(run_all, NULL, NULL, NULL);
  if (err != 0) fprintf(stderr, "run_many: %s\n", weft_strerror(err));
  return err != 0 || failed != 0;
}
