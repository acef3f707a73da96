/* pmap: run a command over many inputs, N at a time.
 *
 *   pmap [-j N] [--chunksize N] [--max-jobs-per-worker N] [-u]
 *        CMD ARGS... -- INPUT...
 *
 * Runs `CMD ARGS... INPUT` once per input on a weft_procpool of N worker
 * processes (default: the number of CPUs). The workers are pmap itself in
 * worker mode: the pool's initializer hands each one CMD ARGS, a job is one
 * input, and the worker runs the command and replies its exit status. The
 * pool captures what each job writes (WEFT_PROCPOOL_OUTPUT_CAPTURE: the
 * command inherits the worker's stdout and stderr, which are per-job memory
 * files), so the outputs of parallel jobs never interleave: pmap prints each
 * job's stdout and stderr in one piece, in input order, or as the jobs
 * finish with -u. --chunksize sends inputs to a worker N at a time;
 * --max-jobs-per-worker replaces a worker after N jobs. On a terminal,
 * stderr shows a progress bar. At the end: a summary of exit statuses; pmap
 * exits 0 if every job exited 0, else 1 (2 for a usage error). */
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

extern char **environ;

static const char usage_text[] =
    "usage: pmap [-j N] [--chunksize N] [--max-jobs-per-worker N] [-u]\n"
    "            CMD ARGS... -- INPUT...\n"
    "  Runs `CMD ARGS... INPUT` once per INPUT on N worker processes\n"
    "  (1..1024; default: the number of CPUs), printing each job's output\n"
    "  in one piece, in input order (-u, --unordered: as jobs finish).\n"
    "  --chunksize N: inputs sent to a worker N at a time (default 1).\n"
    "  --max-jobs-per-worker N: a worker is replaced after N jobs.\n"
    "  Exit 0 if every job exited 0, else 1.\n";

/* ---- the worker: runs CMD ARGS... INPUT ------------------------------------
 */

static char **worker_cmd; /* CMD ARGS..., a slot for the input, NULL */

/* The initializer: CMD ARGS... as NUL-terminated strings back to back. */
static int worker_init(const void *in, size_t len, weft_buf *msg, void *arg) {
  (void)arg;
  const char *p = in;
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += p[i] == '\0';
  char *copy = malloc(len + 1);
  worker_cmd = calloc(n + 2, sizeof *worker_cmd);
  if (n == 0 || copy == NULL || worker_cmd == NULL)
    return weft_procpool_failf(msg, -EINVAL, "pmap: bad initializer");
  memcpy(copy, in, len);
  for (size_t k = 0, at = 0; k < n; k++, at += strlen(copy + at) + 1)
    worker_cmd[k] = copy + at;
  return 0;
}

/* One job: the input is the last argument; the reply is the exit value
 * ("0".."255", or "s" and the signal number). */
static int worker_job(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)arg;
  size_t n = 0;
  while (worker_cmd[n] != NULL)
    n++;
  char *input = strndup(in, len);
  if (input == NULL) return -ENOMEM;
  worker_cmd[n] = input;
  fflush(stdout);
  pid_t pid;
  int err = posix_spawnp(&pid, worker_cmd[0], NULL, NULL, worker_cmd, environ);
  worker_cmd[n] = NULL;
  free(input);
  if (err != 0)
    return weft_procpool_failf(out, -err, "%s: %s", worker_cmd[0],
                               strerror(err));
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -errno;
  char buf[16];
  int k = WIFSIGNALED(st) ? snprintf(buf, sizeof buf, "s%d", WTERMSIG(st))
                          : snprintf(buf, sizeof buf, "%d", WEXITSTATUS(st));
  out->base = strdup(buf);
  out->len = out->base ? (size_t)k : 0;
  return out->base ? 0 : -ENOMEM;
}

/* ---- the parent ------------------------------------------------------------
 */

typedef struct pmap {
  weft_loop *loop;
  char **inputs;
  int ninputs, done, ok, failed, signalled, spawn_errors;
  int codes[256]; /* how many jobs exited with each status */
  bool tty;
} pmap;

static void progress(pmap *pm) {
  if (!pm->tty) return;
  enum { W = 40 };
  int fill = pm->ninputs ? pm->done * W / pm->ninputs : W;
  fprintf(stderr, "\r[%.*s%*s] %d/%d", fill,
          "########################################", W - fill, "", pm->done,
          pm->ninputs);
  fflush(stderr);
}

static void clear_progress(pmap *pm) {
  if (pm->tty) fprintf(stderr, "\r\033[K");
}

static void count_status(pmap *pm, const char *input, const char *s) {
  if (s[0] == 's') {
    fprintf(stderr, "pmap: %s: killed by signal %s\n", input, s + 1);
    pm->signalled++;
    return;
  }
  int code = atoi(s) & 255;
  pm->codes[code]++;
  if (code == 0)
    pm->ok++;
  else
    pm->failed++;
}

/* One job finished (in input order, or as they finish with -u): print its
 * output in one piece and count its status. */
static void on_result(size_t i, const weft_procpool_result *r, void *arg) {
  pmap *pm = arg;
  const char *input = pm->inputs[i];
  pm->done++;
  clear_progress(pm);
  if (r->out_len) fwrite(r->out, 1, r->out_len, stdout);
  fflush(stdout);
  if (r->err_len) fwrite(r->err, 1, r->err_len, stderr);
  if (r->status == 0) {
    count_status(pm, input, r->data);
  } else {
    fprintf(stderr, "pmap: %s: %s\n", input,
            r->len ? r->data : weft_strerror(r->status));
    if (r->status == -ENOENT || r->status == -EACCES)
      pm->spawn_errors++;
    else
      pm->failed++;
  }
  progress(pm);
}

static void summary(const pmap *pm) {
  fprintf(stderr, "pmap: %d jobs: %d ok", pm->ninputs, pm->ok);
  for (int c = 1; c < 256; c++)
    if (pm->codes[c]) fprintf(stderr, ", %d exited %d", pm->codes[c], c);
  if (pm->signalled) fprintf(stderr, ", %d killed by a signal", pm->signalled);
  if (pm->spawn_errors) fprintf(stderr, ", %d not started", pm->spawn_errors);
  int other = pm->failed;
  for (int c = 1; c < 256; c++)
    other -= pm->codes[c];
  if (other > 0) fprintf(stderr, ", %d failed", other);
  fputc('\n', stderr);
}

typedef struct opts {
  long jobs, chunksize, max_jobs;
  bool unordered;
} opts;

/* Options before CMD; returns the index of CMD. */
static int parse_opts(int argc, char **argv, opts *o) {
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (ex_is_help(a))
      ex_usage(usage_text, 0);
    else if (strcmp(a, "-j") == 0)
      o->jobs = ex_long(argc, argv, &i, 1, 1024, usage_text);
    else if (strcmp(a, "--chunksize") == 0)
      o->chunksize = ex_long(argc, argv, &i, 1, 1000000, usage_text);
    else if (strcmp(a, "--max-jobs-per-worker") == 0)
      o->max_jobs = ex_long(argc, argv, &i, 1, 1000000000, usage_text);
    else if (strcmp(a, "-u") == 0 || strcmp(a, "--unordered") == 0)
      o->unordered = true;
    else if (strcmp(a, "--") == 0)
      break;
    else
      ex_bad(usage_text, "unknown option '%s'", a);
  }
  return i;
}

/* CMD ARGS... packed for the initializer. */
static char *pack(char **argv, int n, size_t *len) {
  size_t total = 0;
  for (int k = 0; k < n; k++)
    total += strlen(argv[k]) + 1;
  char *p = malloc(total);
  if (p == NULL) return NULL;
  for (int k = 0, at = 0; k < n; k++) {
    strcpy(p + at, argv[k]);
    at += (int)strlen(argv[k]) + 1;
  }
  *len = total;
  return p;
}

static int run(pmap *pm, const opts *o, const char *init, size_t init_len) {
  char self[4096];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) return 1;
  self[sl] = '\0';
  char *wargv[] = {self, "--pmap-worker", NULL};
  weft_procpool_options po = {.argv = wargv,
                              .workers = (unsigned)o->jobs,
                              .init = init,
                              .init_len = init_len,
                              .max_jobs_per_worker = (unsigned)o->max_jobs,
                              .output = WEFT_PROCPOOL_OUTPUT_CAPTURE};
  weft_procpool *pool = NULL;
  int err = weft_procpool_new(pm->loop, &po, &pool);
  weft_buf *in = calloc((size_t)pm->ninputs + 1, sizeof *in);
  for (int k = 0; in != NULL && k < pm->ninputs; k++)
    in[k] = weft_buf_init(pm->inputs[k], strlen(pm->inputs[k]));
  weft_procpool_map_options mo = {.chunksize = (size_t)o->chunksize,
                                  .on_result = on_result,
                                  .arg = pm,
                                  .ordered = !o->unordered};
  weft_future *f = NULL;
  if (err == 0 && in == NULL) err = -ENOMEM;
  if (err == 0)
    err = weft_procpool_map_ex(pool, in, (size_t)pm->ninputs, &mo, &f);
  if (err == 0) {
    progress(pm);
    while (pm->done < pm->ninputs) /* on_result counts every input */
      weft_loop_run(pm->loop, WEFT_RUN_ONCE);
    weft_future_unref(f);
  }
  if (err != 0) fprintf(stderr, "pmap: %s\n", weft_strerror(err));
  if (pool != NULL) weft_procpool_close(pool, NULL, NULL);
  weft_loop_run(pm->loop, WEFT_RUN_DEFAULT);
  free(in);
  return err;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--pmap-worker") == 0) {
    weft_procpool_worker_options wo = {.handler = worker_job,
                                       .init = worker_init};
    return weft_procpool_worker_run(&wo) == 0 ? 0 : 1;
  }
  opts o = {.jobs = sysconf(_SC_NPROCESSORS_ONLN), .chunksize = 1};
  if (o.jobs < 1) o.jobs = 1;
  if (o.jobs > 1024) o.jobs = 1024;
  int i = parse_opts(argc, argv, &o);
  int sep = i;
  while (sep < argc && strcmp(argv[sep], "--") != 0)
    sep++;
  if (sep == i) ex_bad(usage_text, "missing CMD");
  if (sep == argc) ex_bad(usage_text, "missing -- before the inputs");
  pmap pm = {.inputs = argv + sep + 1, .ninputs = argc - sep - 1};
  pm.tty = isatty(2);
  size_t init_len;
  char *init = pack(argv + i, sep - i, &init_len);
  if (init == NULL || weft_loop_new(&pm.loop, NULL) != 0) return 1;
  int err = run(&pm, &o, init, init_len);
  clear_progress(&pm);
  summary(&pm);
  free(init);
  weft_loop_free(pm.loop);
  return err == 0 && pm.ok == pm.ninputs ? 0 : 1;
}
