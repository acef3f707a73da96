/* The thread pool's submit path in bulk: jobs pushed while every worker is
 * busy wait in the lane's inbox (no lock), and cancel, stats and metrics
 * see them exactly, also a job a worker took in its batch but has not
 * started; several loops on their own threads submit to one lane
 * at once, each job running or being cancelled exactly once. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "support/test.h"

/* Jobs that hold both cpu workers until released. */
static atomic_int gate_started, gate_open;
static void gate_work(weft_work *w) {
  (void)w;
  atomic_fetch_add(&gate_started, 1);
  while (!atomic_load(&gate_open))
    sched_yield();
}

typedef struct job {
  weft_work w;
  atomic_int ran;
  int done, status;
} job;

static void job_work(weft_work *w) { atomic_fetch_add(&((job *)w)->ran, 1); }
static void job_done(weft_work *w, int status) {
  job *j = (job *)w;
  j->done++;
  j->status = status;
}

#define HELD 100

Test(pool_bulk, jobs_waiting_behind_busy_workers_are_counted_and_cancelled,
     .timeout = 30) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_pool_resize(loop, 2, 0), 0);
  job gate[2] = {0}, *j = calloc(HELD, sizeof *j);
  cr_assert_not_null(j);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(
        weft_work_submit(loop, &gate[i].w, WEFT_LANE_CPU, gate_work, job_done),
        0);
  while (atomic_load(&gate_started) < 2)
    sched_yield(); /* both workers are held: nothing drains the inbox */
  for (int i = 0; i < HELD; i++)
    cr_assert_eq(
        weft_work_submit(loop, &j[i].w, WEFT_LANE_CPU, job_work, job_done), 0);
  weft_pool_stats s;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.queued, HELD);
  cr_assert_eq(s.running, 2);
  for (int i = 0; i < HELD; i += 10)
    cr_assert_eq(weft_work_cancel(&j[i].w), 0);
  cr_assert_eq(weft_work_cancel(&j[0].w), -EALREADY);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.queued, HELD - HELD / 10);
  atomic_store(&gate_open, 1);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  for (int i = 0; i < HELD; i++) {
    bool cancelled = i % 10 == 0;
    cr_assert_eq(j[i].done, 1, "job %d", i);
    cr_assert_eq(j[i].status, cancelled ? -ECANCELED : 0, "job %d", i);
    cr_assert_eq(atomic_load(&j[i].ran), cancelled ? 0 : 1, "job %d", i);
  }
  cr_assert_eq(gate[0].done + gate[1].done, 2);
  weft_pool_metrics m;
  cr_assert_eq(weft_pool_get_metrics(loop, &m, sizeof m), 0);
  const weft_pool_lane_metrics *cpu = &m.lanes[WEFT_LANE_CPU];
  uint64_t waits = 0, runs = 0;
  for (int i = 0; i < WEFT_POOL_HIST_BUCKETS; i++) {
    waits += cpu->queue_wait[i];
    runs += cpu->run_time[i];
  }
  /* both workers' counters, summed: the gates and the jobs that ran */
  cr_assert_eq(cpu->jobs, 2 + HELD - HELD / 10);
  cr_assert_eq(waits, cpu->jobs);
  cr_assert_eq(runs, cpu->jobs);
  free(j);
  th_loop_finish(loop);
}

/* A second gate: the job a worker runs first out of a batch it took. */
static atomic_int hold_started, hold_open;
static void hold_work(weft_work *w) {
  (void)w;
  atomic_store(&hold_started, 1);
  while (!atomic_load(&hold_open))
    sched_yield();
}

/* One cpu worker, held by a gate while a second gate and three jobs queue
 * up (4 queued): released, it takes half the queue as its batch, the
 * second gate and the first job. That job is counted as running (2 running
 * on 1 thread) and, not started, is cancelled with 0 and never runs. */
Test(pool_bulk, a_job_taken_in_a_batch_but_not_started_is_cancelled,
     .timeout = 30) {
  weft_loop *loop = th_loop();
  cr_assert_eq(weft_pool_resize(loop, 1, 0), 0);
  atomic_store(&gate_started, 0);
  atomic_store(&gate_open, 0);
  atomic_store(&hold_started, 0);
  atomic_store(&hold_open, 0);
  job gate = {0}, hold = {0}, j[3] = {0};
  cr_assert_eq(
      weft_work_submit(loop, &gate.w, WEFT_LANE_CPU, gate_work, job_done), 0);
  while (atomic_load(&gate_started) < 1)
    sched_yield();
  cr_assert_eq(
      weft_work_submit(loop, &hold.w, WEFT_LANE_CPU, hold_work, job_done), 0);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(
        weft_work_submit(loop, &j[i].w, WEFT_LANE_CPU, job_work, job_done), 0);
  weft_pool_stats s;
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.queued, 4);
  cr_assert_eq(s.running, 1);
  atomic_store(&gate_open, 1);
  while (!atomic_load(&hold_started))
    sched_yield();
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.threads, 1);
  cr_assert_eq(s.queued, 2, "the batch was the hold and one job");
  cr_assert_eq(s.running, 2);
  cr_assert_eq(weft_work_cancel(&j[0].w), 0); /* in the batch, not started */
  cr_assert_eq(weft_work_cancel(&j[1].w), 0); /* still queued */
  cr_assert_eq(weft_work_cancel(&j[0].w), -EALREADY);
  cr_assert_eq(weft_pool_get_stats(loop, WEFT_LANE_CPU, &s), 0);
  cr_assert_eq(s.queued, 1);
  atomic_store(&hold_open, 1);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(gate.done, 1);
  cr_assert_eq(gate.status, 0);
  cr_assert_eq(hold.done, 1);
  cr_assert_eq(hold.status, 0);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(j[i].done, 1, "job %d", i);
    cr_assert_eq(j[i].status, i < 2 ? -ECANCELED : 0, "job %d", i);
    cr_assert_eq(atomic_load(&j[i].ran), i < 2 ? 0 : 1, "job %d", i);
  }
  th_loop_finish(loop);
}

#define SUBMITTERS 4
#define PER_LOOP 20000

typedef struct submitter {
  pthread_t tid;
  job *jobs;
  int cancelled, ok, bad;
} submitter;

static void *submit_in_bulk(void *arg) {
  submitter *s = arg;
  weft_loop *loop = NULL;
  weft_loop_options o = {.pool_size = 2};
  if (weft_loop_new(&loop, &o) != 0) {
    s->bad = -1;
    return NULL;
  }
  for (int i = 0; i < PER_LOOP; i++) {
    if (weft_work_submit(loop, &s->jobs[i].w, WEFT_LANE_CPU, job_work,
                         job_done) != 0)
      s->bad++;
    /* a cancel right away races the workers for the job: either it is
     * still queued (0, never runs) or it was taken (-EBUSY/-EALREADY) */
    if (i % 7 == 0) {
      int err = weft_work_cancel(&s->jobs[i].w);
      if (err != 0 && err != -EBUSY && err != -EALREADY) s->bad++;
    }
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  for (int i = 0; i < PER_LOOP; i++) {
    job *j = &s->jobs[i];
    int ran = atomic_load(&j->ran);
    if (j->done != 1 || ran > 1 || (j->status == 0) != (ran == 1))
      s->bad++;
    else if (j->status == 0)
      s->ok++;
    else if (j->status == -ECANCELED)
      s->cancelled++;
    else
      s->bad++;
  }
  if (weft_loop_free(loop) != 0) s->bad++;
  return NULL;
}

Test(pool_bulk, loops_on_four_threads_submit_to_one_lane_at_once,
     .timeout = 60) {
  submitter s[SUBMITTERS] = {0};
  for (int k = 0; k < SUBMITTERS; k++) {
    s[k].jobs = calloc(PER_LOOP, sizeof *s[k].jobs);
    cr_assert_not_null(s[k].jobs);
  }
  for (int k = 0; k < SUBMITTERS; k++)
    cr_assert_eq(pthread_create(&s[k].tid, NULL, submit_in_bulk, &s[k]), 0);
  for (int k = 0; k < SUBMITTERS; k++) {
    cr_assert_eq(pthread_join(s[k].tid, NULL), 0);
    cr_assert_eq(s[k].bad, 0, "loop %d", k);
    cr_assert_eq(s[k].ok + s[k].cancelled, PER_LOOP, "loop %d", k);
    cr_assert_leq(s[k].cancelled, (PER_LOOP + 6) / 7, "loop %d", k);
    free(s[k].jobs);
  }
  cr_assert_eq(weft_alloc_live(), 0); /* the last loop joined the pool */
}
