/* proc_counter: a counter summed across processes, the weft way (the
 * counterpart of Python's multiprocessing.Value-with-a-lock example).
 *
 *   proc_counter [-j WORKERS] [-n JOBS] [-k INCREMENTS]
 *
 * Instead of sharing a counter behind a lock, each job counts on its own in
 * a worker process and sends back its partial count; the parent adds the
 * partials up. The workers are this program's own binary started in
 * worker mode by a weft_procpool; every job's reply is a future, and
 * weft_future_all() says when all are in. Prints the total and checks it
 * against JOBS * INCREMENTS. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage_text[] =
    "usage: proc_counter [-j WORKERS] [-n JOBS] [-k INCREMENTS]\n"
    "  JOBS jobs (default 10) each count to INCREMENTS (default 100000) in\n"
    "  one of WORKERS worker processes (default 4); prints the total.\n";

/* ---- worker mode: count to the number in the job ------------------------ */

static int count_job(const void *in, size_t len, weft_buf *out, void *arg) {
  (void)arg;
  char text[32];
  if (len == 0 || len >= sizeof text) return -EINVAL;
  memcpy(text, in, len);
  text[len] = '\0';
  long long k = atoll(text);
  volatile long long counter = 0; /* the work: k increments, no lock needed */
  for (long long i = 0; i < k; i++)
    counter = counter + 1;
  out->base = malloc(32);
  if (out->base == NULL) return -ENOMEM;
  out->len = (size_t)snprintf(out->base, 32, "%lld", (long long)counter);
  return 0;
}

/* ---- the parent -------------------------------------------------------------
 */

typedef struct counter {
  weft_future **jobs;
  int n;
  long long total;
  int errors;
  weft_procpool *pool;
} counter;

static void pool_closed(weft_procpool *pool, void *arg) {
  (void)pool;
  (void)arg;
}

/* All jobs settled (or one failed): add up the partials, stop the pool. */
static void all_done(weft_future *all, void *arg) {
  counter *c = arg;
  (void)all;
  for (int i = 0; i < c->n; i++) {
    if (weft_future_error(c->jobs[i]) != 0) {
      c->errors++;
      continue;
    }
    const weft_procpool_result *r = weft_future_value(c->jobs[i]);
    c->total += atoll(r->data);
  }
  weft_procpool_close(c->pool, pool_closed, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--worker") == 0)
    return weft_procpool_worker_main(count_job, NULL) == 0 ? 0 : 1;
  int workers = 4, jobs = 10;
  long long k = 100000;
  int opt;
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (ex_is_help(argv[i])) ex_usage(usage_text, 0);
  opterr = 0;
  while ((opt = getopt(argc, argv, "+j:n:k:")) != -1) {
    if (opt == 'j')
      workers = (int)ex_number("-j", optarg, 1, 1024, usage_text);
    else if (opt == 'n')
      jobs = (int)ex_number("-n", optarg, 1, 1000000, usage_text);
    else if (opt == 'k')
      k = ex_number("-k", optarg, 0, 1000000000000L, usage_text);
    else if (optopt == 'j' || optopt == 'n' || optopt == 'k')
      ex_bad(usage_text, "-%c needs a value", optopt);
    else
      ex_bad(usage_text, "unknown option '-%c'", optopt);
  }
  if (optind < argc) ex_bad(usage_text, "unknown argument '%s'", argv[optind]);
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len < 0) return 1;
  self[len] = '\0';

  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  counter c = {.n = jobs, .jobs = calloc((size_t)jobs, sizeof(weft_future *))};
  weft_buf *inputs = calloc((size_t)jobs, sizeof *inputs);
  char kbuf[32];
  int klen = snprintf(kbuf, sizeof kbuf, "%lld", k);
  for (int i = 0; i < jobs; i++)
    inputs[i] = weft_buf_init(kbuf, (size_t)klen);
  weft_procpool_options o = {.argv = (char *const[]){self, "--worker", NULL},
                             .workers = (unsigned)workers};
  weft_future *all = NULL;
  int err = weft_procpool_new(loop, &o, &c.pool);
  if (err == 0)
    err = weft_procpool_map(c.pool, inputs, (size_t)jobs, c.jobs, &all);
  if (err == 0) err = weft_future_on_settled(all, all_done, &c);
  if (err != 0) {
    fprintf(stderr, "proc_counter: %s\n", weft_strerror(err));
    return 1;
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  long long want = (long long)jobs * k;
  printf("%d jobs x %lld increments on %d worker processes: total %lld (%s)\n",
         jobs, k, workers, c.total, c.total == want ? "correct" : "WRONG");
  for (int i = 0; i < jobs; i++)
    weft_future_unref(c.jobs[i]);
  weft_future_unref(all);
  free(c.jobs);
  free(inputs);
  weft_loop_free(loop);
  return c.total == want && c.errors == 0 ? 0 : 1;
}
