/* pmap: run a command over many inputs, N at a time.
 *
 *   pmap [-j N] CMD ARGS... -- INPUT...
 *
 * Runs `CMD ARGS... INPUT` once per input, at most N at a time (default:
 * the number of CPUs), each through weft_process_run(): its stdout and
 * stderr are collected and printed in one piece when it finishes, so the
 * outputs of parallel jobs never interleave. On a terminal, stderr shows a
 * progress bar. At the end: a summary of exit statuses; pmap exits 0 if
 * every job exited 0, else 1 (2 for a usage error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage_text[] =
    "usage: pmap [-j N] CMD ARGS... -- INPUT...\n"
    "  Runs `CMD ARGS... INPUT` once per INPUT, N at a time (1..1024;\n"
    "  default: the number of CPUs), printing each job's output in one\n"
    "  piece; exit 0 if every job exited 0, else 1.\n";

typedef struct pmap {
  weft_loop *loop;
  char **cmd; /* CMD ARGS... and a slot for the input, NULL-terminated */
  int ncmd;
  char **inputs;
  int ninputs, next, running, done, ok, failed, signalled, spawn_errors;
  int jobs;
  int codes[256]; /* how many jobs exited with each status */
  bool tty;
} pmap;

static void start_next(pmap *pm);

static void progress(pmap *pm) {
  if (!pm->tty) return;
  enum { W = 40 };
  int fill = pm->ninputs ? pm->done * W / pm->ninputs : W;
  fprintf(stderr, "\r[%.*s%*s] %d/%d (%d running)", fill,
          "########################################", W - fill, "", pm->done,
          pm->ninputs, pm->running);
  fflush(stderr);
}

static void clear_progress(pmap *pm) {
  if (pm->tty) fprintf(stderr, "\r\033[K");
}

/* Called when a job's future settles: print its output, count its status,
 * start the next input. */
static void on_settled(weft_future *f, void *arg) {
  pmap *pm = weft_loop_get_data(weft_future_loop(f));
  const char *input = arg;
  pm->running--;
  pm->done++;
  clear_progress(pm);
  int err = weft_future_error(f);
  if (err != 0) {
    fprintf(stderr, "pmap: %s: %s\n", input, weft_strerror(err));
    pm->failed++;
  } else {
    const weft_run_result *r = weft_future_value(f);
    fwrite(r->out, 1, r->out_len, stdout);
    fflush(stdout);
    fwrite(r->err, 1, r->err_len, stderr);
    if (weft_exit_is_signal(r->status)) {
      fprintf(stderr, "pmap: %s: killed by signal %d\n", input,
              weft_exit_signal(r->status));
      pm->signalled++;
    } else {
      pm->codes[weft_exit_code(r->status)]++;
      if (r->status == 0)
        pm->ok++;
      else
        pm->failed++;
    }
  }
  weft_future_unref(f);
  start_next(pm);
  progress(pm);
}

static void start_next(pmap *pm) {
  while (pm->running < pm->jobs && pm->next < pm->ninputs) {
    char *input = pm->inputs[pm->next++];
    pm->cmd[pm->ncmd] = input;
    weft_run_options o = {.proc = {.argv = pm->cmd}};
    weft_future *f;
    int err = weft_process_run(pm->loop, &o, &f);
    if (err != 0) { /* e.g. the command does not exist */
      fprintf(stderr, "pmap: %s: %s\n", pm->cmd[0], weft_strerror(err));
      pm->spawn_errors++;
      pm->done++;
      continue;
    }
    pm->running++;
    if (weft_future_on_settled(f, on_settled, input) != 0) {
      fprintf(stderr, "pmap: out of memory\n");
      exit(1);
    }
  }
}

static void summary(const pmap *pm) {
  fprintf(stderr, "pmap: %d jobs: %d ok", pm->ninputs, pm->ok);
  for (int c = 1; c < 256; c++)
    if (pm->codes[c]) fprintf(stderr, ", %d exited %d", pm->codes[c], c);
  if (pm->signalled) fprintf(stderr, ", %d killed by a signal", pm->signalled);
  if (pm->spawn_errors) fprintf(stderr, ", %d not started", pm->spawn_errors);
  fputc('\n', stderr);
}

int main(int argc, char **argv) {
  pmap pm = {.jobs = (int)sysconf(_SC_NPROCESSORS_ONLN)};
  int i = 1;
  if (i < argc && ex_is_help(argv[i])) ex_usage(usage_text, 0);
  if (i < argc && strcmp(argv[i], "-j") == 0) {
    pm.jobs = (int)ex_long(argc, argv, &i, 1, 1024, usage_text);
    i++;
  } else if (i < argc && argv[i][0] == '-') {
    ex_bad(usage_text, "unknown option '%s'", argv[i]);
  }
  if (pm.jobs < 1) pm.jobs = 1;
  int sep = i;
  while (sep < argc && strcmp(argv[sep], "--") != 0)
    sep++;
  if (sep == i) ex_bad(usage_text, "missing CMD");
  if (sep == argc) ex_bad(usage_text, "missing -- before the inputs");
  pm.ncmd = sep - i;
  pm.cmd = calloc((size_t)pm.ncmd + 2, sizeof *pm.cmd);
  if (pm.cmd == NULL) return 1;
  memcpy(pm.cmd, argv + i, (size_t)pm.ncmd * sizeof *pm.cmd);
  pm.inputs = argv + sep + 1;
  pm.ninputs = argc - sep - 1;
  pm.tty = isatty(2);
  if (weft_loop_new(&pm.loop, NULL) != 0) return 1;
  weft_loop_set_data(pm.loop, &pm);
  start_next(&pm);
  progress(&pm);
  weft_loop_run(pm.loop, WEFT_RUN_DEFAULT);
  clear_progress(&pm);
  summary(&pm);
  free(pm.cmd);
  weft_loop_free(pm.loop);
  return pm.ok == pm.ninputs ? 0 : 1;
}
