/* Timers: start/stop/again/repeat, ordering of equal deadlines, restarts
 * from callbacks, and the heap against a reference model. */
#include "support/test.h"

#include <stdlib.h>

/* weft__timers_validate() and the timer structures, for the invariant
 * tests at the end */
#include "core/internal.h"

typedef struct rec {
  weft_timer t;
  int id, fired;
  int *log, *log_len; /* shared firing log */
} rec;

static void log_fire(weft_timer *t) {
  rec *r = (rec *)t;
  r->fired++;
  if (r->log) r->log[(*r->log_len)++] = r->id;
}

static void count(weft_timer *t) { ++*(int *)t->base.data; }

Test(timer, bad_input_is_rejected, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t, zeroed = {0};
  cr_assert_eq(weft_timer_init(NULL, &t), -EINVAL);
  cr_assert_eq(weft_timer_init(loop, NULL), -EINVAL);
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(NULL, count, 1, 0), -EINVAL);
  cr_assert_eq(weft_timer_start(&t, NULL, 1, 0), -EINVAL);
  cr_assert_eq(weft_timer_start(&t, count, WEFT_TIMEOUT_MAX + 1, 0), -EINVAL);
  cr_assert_eq(weft_timer_start(&t, count, (uint64_t)-1, 0), -EINVAL);
  cr_assert_eq(weft_timer_start(&t, count, 1, WEFT_TIMEOUT_MAX + 1), -EINVAL);
  cr_assert_eq(weft_timer_start(&t, count, 1, (uint64_t)-1), -EINVAL);
  cr_assert_eq(weft_timer_start(&zeroed, count, 1, 0), -EINVAL);
  cr_assert(!weft_is_active(&t.base), "a failed start left the timer active");
  cr_assert_eq(weft_timer_stop(NULL), -EINVAL);
  cr_assert_eq(weft_timer_again(NULL), -EINVAL);
  cr_assert_eq(weft_timer_again(&t), -EINVAL, "never started");
  cr_assert_eq(weft_timer_set_repeat(NULL, 1), -EINVAL);
  cr_assert_eq(weft_timer_set_repeat(&t, WEFT_TIMEOUT_MAX + 1), -EINVAL);
  cr_assert_eq(weft_timer_get_repeat(NULL), 0);
  cr_assert_eq(weft_timer_due_in(NULL), 0);
  /* a signal handle is not a timer */
  weft_signal s;
  cr_assert_eq(weft_signal_init(loop, &s), 0);
  cr_assert_eq(weft_timer_start((weft_timer *)(void *)&s, count, 1, 0),
               -EINVAL);
  cr_assert_eq(weft_timer_stop((weft_timer *)(void *)&s), -EINVAL);
  /* a closing timer cannot start */
  cr_assert_eq(weft_close(&t.base, NULL), 0);
  cr_assert_eq(weft_timer_start(&t, count, 1, 0), -EINVAL);
  cr_assert(weft_loop_run(loop, WEFT_RUN_DEFAULT) == 0);
  th_loop_finish(loop);
}

Test(timer, largest_timeout_is_accepted, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  cr_assert_eq(weft_timer_start(&t, count, WEFT_TIMEOUT_MAX, WEFT_TIMEOUT_MAX),
               0);
  cr_assert_eq(weft_timer_due_in(&t), WEFT_TIMEOUT_MAX);
  cr_assert_eq(weft_timer_get_repeat(&t), WEFT_TIMEOUT_MAX);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
  cr_assert_eq(n, 0);
  th_loop_finish(loop);
}

Test(timer, oneshot_fires_once_then_is_inactive, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  cr_assert_eq(weft_timer_start(&t, count, 1, 0), 0);
  cr_assert(weft_is_active(&t.base));
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(n, 1);
  cr_assert(!weft_is_active(&t.base));
  cr_assert_eq(weft_timer_due_in(&t), 0);
  th_loop_finish(loop);
}

static void stop_after_5(weft_timer *t) {
  if (++*(int *)t->base.data == 5) cr_assert_eq(weft_timer_stop(t), 0);
}

Test(timer, repeat_fires_until_stopped, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  cr_assert_eq(weft_timer_start(&t, stop_after_5, 0, 1), 0);
  cr_assert_eq(weft_timer_get_repeat(&t), 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(n, 5);
  cr_assert_eq(weft_timer_stop(&t), 0, "stopping an inactive timer is a no-op");
  th_loop_finish(loop);
}

Test(timer, set_repeat_takes_effect_at_next_expiry, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  cr_assert_eq(weft_timer_start(&t, stop_after_5, 0, 0), 0);
  cr_assert_eq(weft_timer_set_repeat(&t, 1),
               0); /* one-shot becomes repeating */
  cr_assert_eq(weft_timer_get_repeat(&t), 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(n, 5);
  th_loop_finish(loop);
}

Test(timer, again_restarts_with_the_repeat, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  cr_assert_eq(weft_timer_start(&t, count, 100000, 0), 0);
  cr_assert_eq(weft_timer_again(&t), 0, "repeat 0: again stops");
  cr_assert(!weft_is_active(&t.base));
  cr_assert_eq(weft_timer_set_repeat(&t, 2), 0);
  cr_assert_eq(weft_timer_again(&t), 0);
  cr_assert(weft_is_active(&t.base));
  cr_assert_leq(weft_timer_due_in(&t), 2);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1);
  while (n == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(n, 1);
  cr_assert(weft_is_active(&t.base), "repeating after again");
  th_loop_finish(loop);
}

Test(timer, due_in_counts_down_from_the_timeout, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  cr_assert_eq(weft_timer_due_in(&t), 0, "inactive");
  weft_timer_start(&t, count, 5000, 0);
  cr_assert_eq(weft_timer_due_in(&t), 5000, "same cached time");
  weft_timer_stop(&t);
  cr_assert_eq(weft_timer_due_in(&t), 0);
  th_loop_finish(loop);
}

#define N_EQUAL 1000

Test(timer, equal_deadlines_fire_in_start_order, .timeout = 10) {
  weft_loop *loop = th_loop();
  rec *r = calloc(N_EQUAL, sizeof *r);
  int log[N_EQUAL], len = 0;
  for (int i = 0; i < N_EQUAL; i++) {
    weft_timer_init(loop, &r[i].t);
    r[i].id = i;
    r[i].log = log;
    r[i].log_len = &len;
    cr_assert_eq(weft_timer_start(&r[i].t, log_fire, 2, 0), 0);
  }
  /* restarting with the same deadline puts a timer last */
  cr_assert_eq(weft_timer_start(&r[10].t, log_fire, 2, 0), 0);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(len, N_EQUAL);
  for (int i = 0, k = 0; i < N_EQUAL; i++) {
    if (i == 10) continue;
    cr_assert_eq(log[k++], i, "position %d", k - 1);
  }
  cr_assert_eq(log[N_EQUAL - 1], 10);
  for (int i = 0; i < N_EQUAL; i++)
    cr_assert_eq(r[i].fired, 1);
  th_loop_finish(loop);
  free(r);
}

static void restart_zero(weft_timer *t) {
  ++*(int *)t->base.data;
  cr_assert_eq(weft_timer_start(t, restart_zero, 0, 0), 0);
}

/* Expired timers are collected before any runs: a callback restarting its
 * timer at 0 ms runs once per turn, not in a spin. */
Test(timer, zero_restart_fires_once_per_turn, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer t;
  int n = 0;
  weft_timer_init(loop, &t);
  t.base.data = &n;
  weft_timer_start(&t, restart_zero, 0, 0);
  for (int turn = 1; turn <= 20; turn++) {
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), 1);
    cr_assert_eq(n, turn);
  }
  for (int turn = 21; turn <= 40; turn++) {
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_NOWAIT), 1);
    cr_assert_eq(n, turn);
  }
  th_loop_finish(loop);
}

Test(timer, restart_moves_an_active_timer, .timeout = 5) {
  weft_loop *loop = th_loop();
  rec a = {.id = 0}, b = {.id = 1};
  int log[4], len = 0;
  a.log = b.log = log;
  a.log_len = b.log_len = &len;
  weft_timer_init(loop, &a.t);
  weft_timer_init(loop, &b.t);
  weft_timer_start(&a.t, log_fire, 1, 0);
  weft_timer_start(&b.t, log_fire, 2, 0);
  cr_assert_eq(weft_timer_start(&a.t, log_fire, 3, 0), 0);
  cr_assert_eq(weft_timer_due_in(&a.t), 3);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(len, 2);
  cr_assert_eq(log[0], 1);
  cr_assert_eq(log[1], 0);
  cr_assert_eq(a.fired, 1);
  th_loop_finish(loop);
}

typedef struct pair {
  weft_timer t;
  struct pair *other;
  int fired;
  int mode; /* what the first to fire does to the other */
} pair;

static void pair_cb(weft_timer *t) {
  pair *p = (pair *)t;
  p->fired++;
  if (p->other == NULL) return;
  if (p->mode == 0) cr_assert_eq(weft_timer_stop(&p->other->t), 0);
  if (p->mode == 1) cr_assert_eq(weft_close(&p->other->t.base, NULL), 0);
  if (p->mode == 2)
    cr_assert_eq(weft_timer_start(&p->other->t, pair_cb, 0, 0), 0);
  p->other->other = NULL;
}

/* a stops (0), closes (1) or restarts at 0 ms (2) b, due in the same batch,
 * with the same deadline as a or (b_later) a later one */
static void same_batch(int mode, int b_fired, bool b_later) {
  weft_loop *loop = th_loop();
  pair a = {.mode = mode}, b = {.mode = mode};
  a.other = &b;
  b.other = &a;
  weft_timer_init(loop, &a.t);
  weft_timer_init(loop, &b.t);
  weft_timer_start(&a.t, pair_cb, 1, 0);
  weft_timer_start(&b.t, pair_cb, b_later ? 2 : 1, 0);
  uint64_t b_deadline = weft_now(loop) + weft_timer_due_in(&b.t);
  do
    weft_update_time(loop); /* both are due when the turn begins */
  while (weft_now(loop) < b_deadline);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_ONCE), mode == 2);
  cr_assert_eq(a.fired, 1);
  cr_assert_eq(b.fired, 0, "b ran in the batch that stopped or restarted it");
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(a.fired, 1);
  cr_assert_eq(b.fired, b_fired);
  th_loop_finish(loop);
}

Test(timer, stop_from_another_callback_in_same_batch, .timeout = 5) {
  same_batch(0, 0, false);
}
Test(timer, close_from_another_callback_in_same_batch, .timeout = 5) {
  same_batch(1, 0, false);
}
Test(timer, restart_at_zero_in_same_batch_waits_a_turn, .timeout = 5) {
  same_batch(2, 1, false);
}
Test(timer, stop_of_a_later_deadline_in_same_batch, .timeout = 5) {
  same_batch(0, 0, true);
}
Test(timer, close_of_a_later_deadline_in_same_batch, .timeout = 5) {
  same_batch(1, 0, true);
}
Test(timer, restart_of_a_later_deadline_in_same_batch_waits_a_turn,
     .timeout = 5) {
  same_batch(2, 1, true);
}

/* ---- a failed start or set_repeat changes nothing ---------------------- */

#define FULL_ROOM 64 /* the first slab's buckets, heap entries and hash */

typedef enum { ROOM_RESTART, ROOM_SET_REPEAT } room_op;

static void count_100(weft_timer *t) { *(int *)t->base.data += 100; }

/* Fills the first slab with FULL_ROOM active timers on distinct deadlines,
 * then restarts the last one (with another callback) or makes it
 * repeating: either needs a new slab. Allocation `fail_at` fails (0: none).
 * Returns the operation's status, having checked that a failure left the
 * timer as it was; stores the allocations made before the operation. */
static int op_needing_room(room_op op, size_t fail_at, size_t *calls_before) {
  static weft_timer t[FULL_ROOM];
  th_alloc_install(fail_at);
  weft_loop *loop = th_loop();
  int fired = 0;
  for (int i = 0; i < FULL_ROOM; i++) {
    cr_assert_eq(weft_timer_init(loop, &t[i]), 0);
    t[i].base.data = &fired;
    cr_assert_eq(weft_timer_start(&t[i], count, 10 + (uint64_t)i, 0), 0);
  }
  weft_timer *last = &t[FULL_ROOM - 1];
  uint64_t due = weft_timer_due_in(last);
  *calls_before = th_alloc_calls();
  int e = op == ROOM_RESTART ? weft_timer_start(last, count_100, 5, 0)
                             : weft_timer_set_repeat(last, 7);
  if (e != 0) {
    cr_assert_eq(e, -ENOMEM, "%s", weft_err_name(e));
    cr_assert(weft_is_active(&last->base), "a failed call stopped the timer");
    cr_assert_eq(weft_timer_due_in(last), due, "a failed call moved the timer");
    cr_assert_eq(weft_timer_get_repeat(last), 0);
  } else {
    cr_assert_eq(weft_timer_due_in(last), op == ROOM_RESTART ? 5 : due);
    cr_assert_eq(weft_timer_get_repeat(last), op == ROOM_RESTART ? 0 : 7);
    if (op == ROOM_SET_REPEAT) cr_assert_eq(weft_timer_set_repeat(last, 0), 0);
  }
  /* the loop still works (only one allocation fails): every timer fires
   * once, `last` with the callback it was left with */
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  bool moved = op == ROOM_RESTART && e == 0;
  cr_assert_eq(fired, moved ? FULL_ROOM - 1 + 100 : FULL_ROOM);
  th_loop_finish(loop);
  th_alloc_restore();
  return e;
}

static void room_case(room_op op) {
  size_t before, unused;
  cr_assert_eq(op_needing_room(op, 0, &before), 0);
  cr_assert_gt(th_alloc_calls(), before, "the operation allocated nothing");
  cr_assert_eq(op_needing_room(op, before + 1, &unused), -ENOMEM);
  cr_assert_eq(th_alloc_failed(), 1);
}

Test(timer, restart_that_cannot_grow_leaves_the_timer_as_it_was,
     .timeout = 10) {
  room_case(ROOM_RESTART);
}

Test(timer, set_repeat_that_cannot_grow_leaves_the_timer_as_it_was,
     .timeout = 10) {
  room_case(ROOM_SET_REPEAT);
}

/* ---- a batch is collected before any of it runs ----------------------- */

typedef struct joiner {
  weft_timer early, late; /* both due; late's deadline is the batch's now */
  weft_loop *loop;
  uint64_t late_deadline;
  int early_fired, late_fired;
  bool now_was_late_deadline;
} joiner;

static void joiner_late(weft_timer *t) {
  ((joiner *)t->base.data)->late_fired++;
}

static void joiner_early(weft_timer *t) {
  joiner *j = t->base.data;
  j->now_was_late_deadline = weft_now(j->loop) == j->late_deadline;
  /* at 0 ms its deadline is now: the deadline of the due `late` */
  if (++j->early_fired == 1)
    cr_assert_eq(weft_timer_start(t, joiner_early, 0, 0), 0);
}

/* Two due groups, the later one's deadline equal to the batch's `now`: the
 * earlier group's callback restarts itself at 0 ms, which lands on that
 * deadline, and still waits for the next turn. */
Test(timer, zero_restart_does_not_join_a_due_group_at_now, .timeout = 10) {
  weft_loop *loop = th_loop();
  static joiner j;
  int tries = 0;
  do {
    j = (joiner){.loop = loop};
    weft_timer_init(loop, &j.early);
    weft_timer_init(loop, &j.late);
    j.early.base.data = j.late.base.data = &j;
    weft_update_time(loop);
    j.late_deadline = weft_now(loop) + 1;
    weft_timer_start(&j.early, joiner_early, 0, 0);
    weft_timer_start(&j.late, joiner_late, 1, 0);
    /* the turn runs in the millisecond of late's deadline (retried when a
     * millisecond boundary falls inside it) */
    do
      weft_update_time(loop);
    while (weft_now(loop) < j.late_deadline);
    int alive = weft_loop_run(loop, WEFT_RUN_NOWAIT);
    cr_assert_eq(j.early_fired, 1, "the restarted timer ran in its own batch");
    cr_assert_eq(alive, 1, "early was restarted");
    cr_assert_eq(j.late_fired, 1);
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
    cr_assert_eq(j.early_fired, 2);
    cr_assert_eq(j.late_fired, 1);
    weft_close(&j.early.base, NULL);
    weft_close(&j.late.base, NULL);
    cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  } while (!j.now_was_late_deadline && ++tries < 100);
  cr_assert(j.now_was_late_deadline, "no turn ran at late's deadline");
  th_loop_finish(loop);
}

/* The batch is what was due when it began: a callback that moves weft's
 * clock past another timer's deadline does not add that timer to it. */
static void advance_clock(weft_timer *t) {
  weft_timer *later = t->base.data;
  weft_loop *loop = weft_handle_loop(&t->base);
  ++*(int *)weft_loop_get_data(loop);
  uint64_t deadline = weft_now(loop) + weft_timer_due_in(later);
  do
    weft_update_time(loop);
  while (weft_now(loop) < deadline);
  cr_assert_eq(weft_timer_due_in(later), 0);
}

Test(timer, batch_is_what_was_due_when_it_began, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer first, later;
  int n = 0;
  weft_loop_set_data(loop, &n);
  weft_timer_init(loop, &first);
  weft_timer_init(loop, &later);
  first.base.data = &later;
  later.base.data = &n;
  weft_timer_start(&first, advance_clock, 0, 0);
  weft_timer_start(&later, count, 2, 0);
  int alive = weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(n, 1, "later joined the batch it was not due in");
  cr_assert_eq(alive, 1);
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(n, 2);
  weft_close(&first.base, NULL);
  weft_close(&later.base, NULL);
  th_loop_finish(loop);
}

static void freeing_close(weft_handle *h) {
  ++*(int *)h->data;
  free(h);
}

static void close_self(weft_timer *t) {
  ++*(int *)t->base.data;
  cr_assert_eq(weft_close(&t->base, freeing_close), 0);
  cr_assert_eq(weft_close(&t->base, freeing_close), -EALREADY);
}

Test(timer, close_from_own_callback, .timeout = 5) {
  weft_loop *loop = th_loop();
  int events[2] = {0, 0};
  for (int repeat = 0; repeat < 2; repeat++) {
    weft_timer *t = malloc(sizeof *t);
    weft_timer_init(loop, t);
    t->base.data = &events[repeat];
    weft_timer_start(t, close_self, 0, (uint64_t)repeat);
  }
  cr_assert_eq(weft_loop_run(loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(events[0], 2, "one-shot: fired once, closed once");
  cr_assert_eq(events[1], 2, "repeating: fired once, closed once");
  th_loop_finish(loop);
}

/* ---- the heap against a reference model --------------------------------
 * The model keeps one FIFO per deadline (ms): entries are appended in start
 * order, so a bucket's first live entry is its (deadline, start order)
 * minimum; stopped or restarted entries become stale and are skipped. Every
 * timer that fires must be the model's minimum at that moment. */

#define MODEL_TIMERS 10000
#define MODEL_BUCKETS 4096

typedef struct mt {
  weft_timer t;
  uint64_t deadline, seq, repeat;
  bool active;
  int fires;
} mt;

typedef struct entry {
  int id;
  uint64_t seq;
} entry;

static struct model {
  weft_loop *loop;
  mt *timers;
  entry *bucket[MODEL_BUCKETS];
  size_t len[MODEL_BUCKETS], cap[MODEL_BUCKETS], head[MODEL_BUCKETS];
  uint64_t base, seq, rng;
  size_t lo;
  long ops_left, fired, wrong;
} M;

static uint64_t rnd(void) {
  M.rng ^= M.rng << 13;
  M.rng ^= M.rng >> 7;
  M.rng ^= M.rng << 17;
  return M.rng;
}

static void model_push(int id, uint64_t deadline) {
  mt *m = &M.timers[id];
  size_t b = (size_t)(deadline - M.base);
  cr_assert_lt(b, MODEL_BUCKETS);
  if (M.len[b] == M.cap[b]) {
    M.cap[b] = M.cap[b] ? M.cap[b] * 2 : 64;
    M.bucket[b] = realloc(M.bucket[b], M.cap[b] * sizeof(entry));
    cr_assert_not_null(M.bucket[b]);
  }
  m->deadline = deadline;
  m->seq = M.seq++;
  m->active = true;
  M.bucket[b][M.len[b]++] = (entry){id, m->seq};
  if (b < M.lo) M.lo = b;
}

static mt *model_min(void) {
  for (size_t b = M.lo; b < MODEL_BUCKETS; b++, M.lo = b) {
    while (M.head[b] < M.len[b]) {
      entry e = M.bucket[b][M.head[b]];
      mt *m = &M.timers[e.id];
      if (m->active && m->seq == e.seq) return m;
      M.head[b]++;
    }
  }
  return NULL;
}

static void model_cb(weft_timer *t);

/* One random operation on a random timer, mirrored in the model. */
static void random_op(void) {
  int id = (int)(rnd() % MODEL_TIMERS);
  mt *m = &M.timers[id];
  uint64_t r = rnd() % 8, timeout = rnd() % 4,
           repeat = rnd() % 6 < 4 ? 0 : 1 + rnd() % 2;
  if (r < 5) {
    cr_assert_eq(weft_timer_start(&m->t, model_cb, timeout, repeat), 0);
    m->repeat = repeat;
    model_push(id, weft_now(M.loop) + timeout);
  } else {
    cr_assert_eq(weft_timer_stop(&m->t), 0);
    m->active = false;
  }
}

static void model_cb(weft_timer *t) {
  mt *m = (mt *)t;
  if (model_min() != m) M.wrong++;
  M.fired++;
  m->active = false;
  if (m->repeat != 0 && ++m->fires < 3) {
    model_push((int)(m - M.timers), weft_now(M.loop) + m->repeat);
  } else if (m->repeat != 0) {
    weft_timer_stop(t);
  }
  for (int i = 0; i < 2 && M.ops_left > 0; i++, M.ops_left--)
    random_op();
}

Test(timer, heap_matches_reference_model, .timeout = 30) {
  M = (struct model){.rng = 0x9e3779b97f4a7c15u};
  M.loop = th_loop();
  M.timers = calloc(MODEL_TIMERS, sizeof *M.timers);
  M.base = weft_now(M.loop);
  for (int i = 0; i < MODEL_TIMERS; i++) {
    weft_timer_init(M.loop, &M.timers[i].t);
    uint64_t timeout = rnd() % 4;
    cr_assert_eq(weft_timer_start(&M.timers[i].t, model_cb, timeout, 0), 0);
    model_push(i, M.base + timeout);
  }
  for (int i = 0; i < 2 * MODEL_TIMERS; i++)
    random_op();
  M.ops_left = 2 * MODEL_TIMERS;
  cr_assert_eq(weft_loop_run(M.loop, WEFT_RUN_DEFAULT), 0);
  cr_assert_eq(M.wrong, 0,
               "%ld of %ld timers fired out of (deadline, start) order",
               M.wrong, M.fired);
  cr_assert_null(model_min(), "a timer the model expects never fired");
  cr_assert_gt(M.fired, MODEL_TIMERS / 2);
  for (int i = 0; i < MODEL_TIMERS; i++)
    cr_assert(!weft_is_active(&M.timers[i].t.base));
  th_loop_finish(M.loop);
  for (size_t b = 0; b < MODEL_BUCKETS; b++)
    free(M.bucket[b]);
  free(M.timers);
}

/* ---- invariants: weft__timers_validate after every step ----------------- */

#define VAL_TIMERS 48
#define VAL_STEPS 3000

static struct {
  weft_loop *loop;
  weft_timer t[VAL_TIMERS];
  uint64_t rng;
  long fired, bad; /* callbacks, and validations failed inside them */
} V;

static uint64_t vrnd(void) { /* xorshift64: the same sequence every run */
  V.rng ^= V.rng << 13;
  V.rng ^= V.rng >> 7;
  V.rng ^= V.rng << 17;
  return V.rng;
}

/* Timeouts from a few values, so that buckets are shared, emptied and
 * recycled; 0 ms lands on the deadline of buckets being collected. */
static uint64_t vtimeout(void) {
  static const uint64_t pick[] = {0, 0, 1, 1, 2, 3, 5, 8, 1000};
  return pick[vrnd() % (sizeof pick / sizeof pick[0])];
}

static void val_cb(weft_timer *t);

/* One random operation; returns what it returned (0, or -EINVAL for
 * again on a timer never started). */
static int val_op(void) {
  weft_timer *t = &V.t[vrnd() % VAL_TIMERS];
  switch (vrnd() % 6) {
  case 0:
  case 1:
    return weft_timer_start(t, val_cb, vtimeout(), 0);
  case 2:
    return weft_timer_start(t, val_cb, vtimeout(), 1 + vrnd() % 3);
  case 3:
    return weft_timer_stop(t);
  case 4:
    return weft_timer_set_repeat(t, vrnd() % 2 ? 0 : 2);
  default:
    return t->cb == NULL ? 0 : weft_timer_again(t);
  }
}

/* Callbacks stop and restart others (collected ones included) and check
 * the structures mid-run, where the due list is not empty. */
static void val_cb(weft_timer *t) {
  V.fired++;
  if (!weft__timers_validate(V.loop)) V.bad++;
  if (V.fired > 4 * VAL_STEPS) { /* bound the run: stop repeats */
    weft_timer_stop(t);
    return;
  }
  if (val_op() != 0) V.bad++;
  if (!weft__timers_validate(V.loop)) V.bad++;
}

Test(timer, structures_stay_valid_through_random_start_stop_restart,
     .timeout = 30) {
  V.loop = th_loop();
  V.rng = 0x2545f4914f6cdd1du;
  V.fired = V.bad = 0;
  cr_assert(weft__timers_validate(V.loop), "a new loop's timers are invalid");
  for (int i = 0; i < VAL_TIMERS; i++)
    cr_assert_eq(weft_timer_init(V.loop, &V.t[i]), 0);
  for (int step = 0; step < VAL_STEPS; step++) {
    int err = val_op();
    cr_assert_eq(err, 0, "step %d: %s", step, weft_err_name(err));
    cr_assert(weft__timers_validate(V.loop), "invalid after step %d", step);
    if (step % 16 == 15) {
      weft_update_time(V.loop);
      cr_assert_geq(weft_loop_run(V.loop, WEFT_RUN_NOWAIT), 0);
      cr_assert(weft__timers_validate(V.loop),
                "invalid after the run of step %d", step);
    }
  }
  cr_assert_eq(V.bad, 0, "%ld failures inside %ld callbacks", V.bad, V.fired);
  cr_assert_gt(V.fired, 0, "no timer fired");
  for (int i = 0; i < VAL_TIMERS; i++) {
    cr_assert_eq(weft_timer_stop(&V.t[i]), 0);
    cr_assert(weft__timers_validate(V.loop), "invalid after stopping %d", i);
  }
  cr_assert_eq(V.loop->timers.linked, 0);
  cr_assert_eq(V.loop->timers.bucket_count, 0);
  th_loop_finish(V.loop);
}

Test(timer, validate_catches_a_broken_heap, .timeout = 5) {
  weft_loop *loop = th_loop();
  weft_timer a, b;
  weft_timer_init(loop, &a);
  weft_timer_init(loop, &b);
  cr_assert_eq(weft_timer_start(&a, count, 10, 0), 0);
  cr_assert_eq(weft_timer_start(&b, count, 20, 0), 0);
  cr_assert(weft__timers_validate(loop));
  weft__timers *ts = &loop->timers;
  cr_assert_eq(ts->heap_len, 2);
  /* the root's key above its child's: heap order is broken (the order is
   * checked before keys are compared with their buckets) */
  uint64_t saved = ts->heap[0].deadline;
  ts->heap[0].deadline = ts->heap[1].deadline + 1;
  cr_assert(!weft__timers_validate(loop), "a broken heap order passed");
  ts->heap[0].deadline = saved;
  cr_assert(weft__timers_validate(loop));
  /* a count that disagrees with the buckets */
  ts->linked++;
  cr_assert(!weft__timers_validate(loop), "a wrong timer count passed");
  ts->linked--;
  cr_assert(weft__timers_validate(loop));
  weft_close(&a.base, NULL);
  weft_close(&b.base, NULL);
  th_loop_finish(loop);
}

/* Bytes per timer (issue 16 §3): the handle base plus callback, repeat,
 * bucket link and bucket; the deadline lives in the bucket only. */
Test(timer, a_timer_is_its_handle_plus_40_bytes, .timeout = 5) {
  cr_assert_eq(sizeof(weft_timer), sizeof(weft_handle) + 40);
  cr_assert_leq(sizeof(weft_timer), 104);
}
