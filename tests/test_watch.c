/* File-system watches (weft/watch.h): inotify watches, recursive trees,
 * stat polling. Each test works in its own directory under /tmp, removed
 * at the end; waits are bounded by a deadline, and "nothing more came" is
 * proven with a sentinel: inotify queues events in order, so once the
 * sentinel's event is in, every earlier one is too. */
#include "support/test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NAME(e) weft_err_name(e)
#define MAXEV 64

/* ---- helpers ------------------------------------------------------------- */

static char dir[64];

static void mk_tmp(void) {
  strcpy(dir, "/tmp/weft-watch-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void rm_tmp(void) { th_rm_tree(dir); }

static const char *P(const char *rel) {
  static char buf[4][256];
  static int i;
  char *b = buf[i++ & 3];
  snprintf(b, 256, "%s/%s", dir, rel);
  return b;
}

static void touch(const char *rel) {
  int fd = open(P(rel), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  cr_assert_geq(fd, 0, "%s: %s", rel, strerror(errno));
  close(fd);
}

static void put(const char *rel, const char *s) {
  int fd = open(P(rel), O_WRONLY | O_CLOEXEC);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
  close(fd);
}

/* Replaces `rel` by a new file holding `s`, whole at once (written aside,
 * then renamed over it): a poll's stat on a pool thread, which may run
 * while the test writes, sees either the old file or the complete new
 * one, never a half-made change (one such stat once saw st_size 0 after
 * put()'s write had begun, under load). */
static void put_whole(const char *rel, const char *s) {
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s.new", rel);
  int fd = open(P(tmp), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
  close(fd);
  char to[PATH_MAX];
  snprintf(to, sizeof to, "%s", P(rel));
  cr_assert_eq(rename(P(tmp), to), 0, "%s", strerror(errno));
}

static int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  while (readdir(d) != NULL)
    n++;
  closedir(d);
  return n;
}

/* The loop's inotify fd (-1 if none) and how many kernel watches it has. */
static int inotify_wds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *de;
  int wds = -1;
  while ((de = readdir(d)) != NULL) {
    char l[300], t[64] = "";
    snprintf(l, sizeof l, "/proc/self/fd/%s", de->d_name);
    ssize_t n = readlink(l, t, sizeof t - 1);
    if (n <= 0 || strcmp(t, "anon_inode:inotify") != 0) continue;
    snprintf(l, sizeof l, "/proc/self/fdinfo/%s", de->d_name);
    FILE *f = fopen(l, "r");
    char line[512];
    wds = 0;
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "inotify wd:", 11) == 0) wds++;
    fclose(f);
  }
  closedir(d);
  return wds;
}

/* What a watch saw: each event as "KIND name[>name2]", and counts. */
typedef struct rec {
  char ev[MAXEV][160];
  int n, total, errors, last_err, by_kind[16];
  int ovf_at;     /* r->total when the (first) OVERFLOW came */
  int stop_after; /* stop the watch after this many events (0: never) */
  int close_after;
  const char *until; /* a name whose event ends the wait */
  bool done;
} rec;

static int bit(int kind) { return __builtin_ctz((unsigned)kind); }

static const char *kname(int kind) {
  static const char *n[] = {"CREATE", "DELETE", "MODIFY",   "ATTRIB", "MOVE",
                            "OUT",    "IN",     "OVERFLOW", "GONE"};
  return kind ? n[bit(kind)] : "ERROR";
}

static void on_ev(weft_watch *w, int status, const weft_watch_event *e,
                  void *arg) {
  rec *r = arg;
  r->total++;
  if (status != 0) {
    r->errors++;
    r->last_err = status;
  } else {
    r->by_kind[bit(e->kind)]++;
  }
  if (r->until != NULL && status == 0 && strcmp(e->name, r->until) == 0) {
    r->done = true;
    return; /* the sentinel is not recorded */
  }
  if (r->n < MAXEV)
    snprintf(r->ev[r->n++], 160, "%s %s%s%s%s", kname(e->kind), e->name,
             e->name2 ? ">" : "", e->name2 ? e->name2 : "",
             e->is_dir ? "/" : "");
  if (r->stop_after && r->total == r->stop_after) weft_watch_stop(w);
  if (r->close_after && r->total == r->close_after) weft_close(&w->base, NULL);
  if (status == 0 && e->kind == WEFT_WATCH_GONE) r->done = true;
  if (status == 0 && e->kind == WEFT_WATCH_OVERFLOW) {
    r->done = true;
    if (r->ovf_at == 0) r->ovf_at = r->total;
  }
}

/* Runs the loop until `*flag`, at most 5 s (a repeating timer keeps each
 * turn short). */
static void on_tick(weft_timer *t) { (void)t; }
static void run_until(weft_loop *loop, bool *flag) {
  weft_timer t;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, on_tick, 5, 5);
  weft_update_time(loop);
  uint64_t end = weft_now(loop) + 5000;
  while (!*flag && weft_now(loop) < end)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  weft_close(&t.base, NULL);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert(*flag, "timed out waiting for events");
}

/* Creates the sentinel `rel` and waits for its event, named `name`. */
static void settle_as(weft_loop *loop, rec *r, const char *rel,
                      const char *name) {
  r->until = name;
  r->done = false;
  touch(rel);
  run_until(loop, &r->done);
  r->until = NULL;
}
static void settle(weft_loop *loop, rec *r, const char *rel) {
  settle_as(loop, r, rel, rel);
}

static bool has(const rec *r, const char *s) {
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->ev[i], s) == 0) return true;
  return false;
}

static void assert_seq(const rec *r, const char *const *want, int n) {
  cr_assert_eq(r->n, n, "%d events, want %d (first: %s)", r->n, n,
               r->n ? r->ev[0] : "-");
  for (int i = 0; i < n; i++)
    cr_assert_str_eq(r->ev[i], want[i], "event %d", i);
}

/* every test: .init = mk_tmp, .fini = rm_tmp (plainrun: no suite fixtures) */
#define FIX .init = mk_tmp, .fini = rm_tmp

/* ---- every kind -------------------------------------------------------- */

Test(watch, every_kind_once_with_its_name, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds = fd_count();
  weft_watch w;
  rec r = {0};
  cr_assert_eq(weft_watch_init(loop, &w), 0);
  cr_assert(!weft_is_active(&w.base));
  cr_assert_eq(weft_handle_get_type(&w.base), WEFT_HANDLE_WATCH);
  cr_assert_str_eq(weft_handle_type_name(WEFT_HANDLE_WATCH), "watch");
  cr_assert_eq(fd_count(), fds, "init opens nothing");
  int err = weft_watch_start(&w, dir, 0, 0, on_ev, &r);
  cr_assert_eq(err, 0, "%s", NAME(err));
  cr_assert_str_eq(weft_watch_get_path(&w), dir);
  cr_assert(weft_is_active(&w.base));
  cr_assert_eq(fd_count(), fds + 1, "one inotify fd");
  cr_assert_eq(inotify_wds(), 1);
  touch("f");
  put("f", "hello");
  cr_assert_eq(chmod(P("f"), 0600), 0);
  cr_assert_eq(unlink(P("f")), 0);
  cr_assert_eq(mkdir(P("d"), 0755), 0);
  cr_assert_eq(chmod(P("d"), 0700), 0);
  cr_assert_eq(rmdir(P("d")), 0);
  settle(loop, &r, "zz");
  const char *want[] = {"CREATE f",  "MODIFY f",  "ATTRIB f", "DELETE f",
                        "CREATE d/", "ATTRIB d/", "DELETE d/"};
  assert_seq(&r, want, 7);
  cr_assert_eq(r.errors, 0);
  cr_assert_eq(weft_watch_stop(&w), 0);
  cr_assert(!weft_is_active(&w.base));
  cr_assert_null(weft_watch_get_path(&w));
  cr_assert_eq(fd_count(), fds, "the last stop closes the inotify fd");
  cr_assert_eq(weft_watch_stop(&w), 0, "stopping twice is a no-op");
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, events_mask_selects_kinds, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, dir, WEFT_WATCH_CREATE, 0, on_ev, &r), 0);
  touch("a");
  put("a", "x");
  unlink(P("a"));
  settle(loop, &r, "zz");
  const char *want[] = {"CREATE a"};
  assert_seq(&r, want, 1);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, a_watched_file_reports_itself_then_gone, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds = fd_count();
  touch("f");
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, P("f"), 0, 0, on_ev, &r), 0);
  put("f", "abc");
  cr_assert_eq(unlink(P("f")), 0);
  run_until(loop, &r.done);
  const char *want[] = {"MODIFY ", "ATTRIB ", "GONE "};
  assert_seq(&r, want, 3);
  cr_assert(!weft_is_active(&w.base), "GONE stops the watch");
  th_run(loop); /* nothing keeps the loop alive any more */
  cr_assert_eq(fd_count(), fds);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, deleted_root_dir_ends_the_watch_cleanly, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds = fd_count();
  cr_assert_eq(mkdir(P("root"), 0755), 0);
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, P("root"), 0, 0, on_ev, &r), 0);
  cr_assert_eq(rmdir(P("root")), 0);
  run_until(loop, &r.done);
  const char *want[] = {"GONE /"};
  assert_seq(&r, want, 1);
  cr_assert(!weft_is_active(&w.base));
  th_run(loop);
  cr_assert_eq(fd_count(), fds);
  /* the handle can start again, elsewhere */
  rec r2 = {0};
  cr_assert_eq(weft_watch_start(&w, dir, 0, 0, on_ev, &r2), 0);
  settle(loop, &r2, "zz");
  cr_assert_eq(r2.n, 0);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

/* ---- renames ------------------------------------------------------------- */

Test(watch, rename_is_one_event_halves_are_out_and_in, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  cr_assert_eq(mkdir(P("w"), 0755), 0);
  cr_assert_eq(mkdir(P("elsewhere"), 0755), 0);
  touch("w/a");
  touch("elsewhere/c");
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, P("w"), 0, 0, on_ev, &r), 0);
  cr_assert_eq(rename(P("w/a"), P("w/b")), 0);
  cr_assert_eq(rename(P("w/b"), P("elsewhere/b")), 0);
  cr_assert_eq(rename(P("elsewhere/c"), P("w/c")), 0);
  settle_as(loop, &r, "w/zz", "zz");
  const char *want[] = {"MOVE a>b", "OUT b", "IN c"};
  assert_seq(&r, want, 3);
  cr_assert_eq(r.by_kind[bit(WEFT_WATCH_MOVE)], 1);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, a_moved_out_half_last_in_the_queue_is_reported, FIX,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  cr_assert_eq(mkdir(P("w"), 0755), 0);
  touch("w/a");
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, P("w"), 0, 0, on_ev, &r), 0);
  cr_assert_eq(rename(P("w/a"), P("a")), 0);
  r.until = "a"; /* no sentinel: the MOVED_FROM is the last event */
  run_until(loop, &r.done);
  cr_assert_eq(r.total, 1);
  cr_assert_eq(r.by_kind[bit(WEFT_WATCH_MOVED_OUT)], 1);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

/* ---- sharing ------------------------------------------------------------- */

Test(watch, two_watches_on_one_path_share_one_kernel_watch, FIX,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds = fd_count();
  weft_watch a, b;
  rec ra = {0}, rb = {0};
  weft_watch_init(loop, &a);
  weft_watch_init(loop, &b);
  cr_assert_eq(weft_watch_start(&a, dir, 0, 0, on_ev, &ra), 0);
  cr_assert_eq(weft_watch_start(&b, dir, WEFT_WATCH_DELETE, 0, on_ev, &rb), 0);
  cr_assert_eq(fd_count(), fds + 1, "one fd for both");
  cr_assert_eq(inotify_wds(), 1, "one kernel watch for both");
  touch("x");
  unlink(P("x"));
  settle(loop, &ra, "zz");
  const char *wa[] = {"CREATE x", "DELETE x"};
  assert_seq(&ra, wa, 2);
  const char *wb[] = {"DELETE x"};
  assert_seq(&rb, wb, 1);
  /* stopping one keeps the other's kernel watch */
  weft_watch_stop(&b);
  cr_assert_eq(inotify_wds(), 1);
  ra = (rec){0};
  touch("y");
  settle(loop, &ra, "zz2");
  const char *wa2[] = {"CREATE y"};
  assert_seq(&ra, wa2, 1);
  cr_assert_eq(rb.n, 1, "a stopped watch sees nothing");
  weft_close(&a.base, NULL);
  weft_close(&b.base, NULL);
  th_run(loop);
  cr_assert_eq(fd_count(), fds);
  th_loop_finish(loop);
}

Test(watch, stop_and_close_from_the_callback, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds = fd_count();
  weft_watch a, b;
  rec ra = {.stop_after = 1}, rb = {.close_after = 1};
  weft_watch_init(loop, &a);
  weft_watch_init(loop, &b);
  weft_watch_start(&a, dir, 0, 0, on_ev, &ra);
  weft_watch_start(&b, dir, 0, 0, on_ev, &rb);
  touch("1");
  touch("2");
  touch("3");
  th_run(loop); /* both end after their first event */
  cr_assert_eq(ra.total, 1);
  cr_assert_eq(rb.total, 1);
  cr_assert(weft_is_closing(&b.base));
  cr_assert_eq(fd_count(), fds);
  weft_close(&a.base, NULL);
  th_loop_finish(loop);
}

Test(watch, unref_does_not_keep_the_loop_alive, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  weft_watch_start(&w, dir, 0, 0, on_ev, &r);
  cr_assert(weft_loop_alive(loop));
  weft_unref(&w.base);
  cr_assert(!weft_loop_alive(loop));
  th_run(loop);
  weft_ref(&w.base);
  cr_assert(weft_loop_alive(loop));
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

/* ---- fairness ------------------------------------------------------------ */

/* A callback that writes to a watched file makes the next event at once:
 * the inotify fd never runs dry. One turn reads 1 MiB of events and then
 * lets the loop's other handles run: here 32768 MODIFY events of 32 bytes
 * ("f" padded to 16), one per read, per turn; a timer still ticks. */
static struct {
  int fd, ticks;
  long events, in_turn, max_turn;
  weft_watch w;
  weft_timer t;
  weft_prepare p;
} busy;

static void busy_ev(weft_watch *w, int status, const weft_watch_event *e,
                    void *arg) {
  (void)w;
  (void)arg;
  cr_assert_eq(status, 0, "%s", NAME(status));
  cr_assert_eq(e->kind, WEFT_WATCH_MODIFY);
  busy.events++;
  busy.in_turn++;
  cr_assert_eq(pwrite(busy.fd, "x", 1, 0), 1);
}

static void busy_turn(weft_prepare *p) {
  (void)p;
  if (busy.in_turn > busy.max_turn) busy.max_turn = busy.in_turn;
  busy.in_turn = 0;
}

static void busy_tick(weft_timer *t) {
  (void)t;
  if (++busy.ticks < 3) return;
  weft_close(&busy.w.base, NULL);
  weft_close(&busy.t.base, NULL);
  weft_close(&busy.p.base, NULL);
}

Test(watch, a_watch_that_never_runs_dry_lets_the_loop_turn, FIX,
     .timeout = 60) {
  weft_loop *loop = th_loop();
  memset(&busy, 0, sizeof busy);
  touch("f");
  busy.fd = open(P("f"), O_WRONLY | O_CLOEXEC);
  cr_assert_geq(busy.fd, 0);
  weft_watch_init(loop, &busy.w);
  cr_assert_eq(
      weft_watch_start(&busy.w, dir, WEFT_WATCH_MODIFY, 0, busy_ev, NULL), 0);
  weft_timer_init(loop, &busy.t);
  weft_timer_start(&busy.t, busy_tick, 1, 1);
  weft_prepare_init(loop, &busy.p);
  weft_prepare_start(&busy.p, busy_turn);
  cr_assert_eq(pwrite(busy.fd, "x", 1, 0), 1);
  th_run(loop); /* ends when the third tick closes everything */
  cr_assert_eq(busy.ticks, 3);
  cr_assert_eq(busy.max_turn, 32768, "at most %ld events in one turn",
               busy.max_turn);
  cr_assert_geq(busy.events, busy.max_turn);
  close(busy.fd);
  th_loop_finish(loop);
}

/* ---- overflow ------------------------------------------------------------ */

static int max_queued(void) {
  FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
  int n = 0;
  cr_assert_not_null(f);
  cr_assert_eq(fscanf(f, "%d", &n), 1);
  fclose(f);
  return n;
}

Test(watch, overflow_is_one_event_to_every_watch, FIX, .timeout = 60) {
  int limit = max_queued();
  if (limit > 200000) {
    fprintf(stderr, "skipped: max_queued_events is %d, too many to flood\n",
            limit);
    return;
  }
  weft_loop *loop = th_loop();
  weft_watch a, b;
  rec ra = {0}, rb = {0};
  weft_watch_init(loop, &a);
  weft_watch_init(loop, &b);
  cr_assert_eq(mkdir(P("other"), 0755), 0);
  weft_watch_start(&a, dir, 0, 0, on_ev, &ra);
  weft_watch_start(&b, P("other"), 0, 0, on_ev, &rb);
  /* the loop does not read meanwhile: more events than the queue holds.
   * Writes to two files in turn: the kernel merges an event only with an
   * identical one right before it, so each write is one MODIFY. */
  int n = limit + 100;
  touch("f0");
  touch("f1");
  int fd[2] = {open(P("f0"), O_WRONLY), open(P("f1"), O_WRONLY)};
  for (int i = 0; i < n; i++)
    cr_assert_eq(write(fd[i & 1], "x", 1), 1);
  close(fd[0]);
  close(fd[1]);
  run_until(loop, &ra.done);
  cr_assert_eq(ra.by_kind[bit(WEFT_WATCH_OVERFLOW)], 1);
  cr_assert_eq(rb.by_kind[bit(WEFT_WATCH_OVERFLOW)], 1, "every watch");
  cr_assert_eq(rb.total, 1);
  int got = ra.by_kind[bit(WEFT_WATCH_MODIFY)];
  cr_assert_eq(ra.by_kind[bit(WEFT_WATCH_CREATE)], 2);
  cr_assert_lt(got, n, "events were dropped");
  cr_assert_gt(got, 0);
  cr_assert_eq(ra.ovf_at, got + 3, "the overflow comes after the rest");
  /* and events flow again */
  ra = (rec){0};
  settle(loop, &ra, "zz");
  cr_assert_eq(ra.n, 0);
  weft_close(&a.base, NULL);
  weft_close(&b.base, NULL);
  th_loop_finish(loop);
}

/* ---- limits -------------------------------------------------------------- */

/* In a child in a user namespace of its own, whose inotify watch limit
 * (/proc/sys/user/max_inotify_watches, counted per namespace) it lowers
 * to `limit`: the machine's limits are never touched. Exit status 0 is
 * success; anything else names the check that failed. */
static int write_file(const char *path, const char *s) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) return -1;
  ssize_t n = write(fd, s, strlen(s));
  close(fd);
  return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int in_userns(int limit, int (*fn)(void)) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWUSER) != 0) _exit(100);
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/uid_map", "0 0 1");
    write_file("/proc/self/gid_map", "0 0 1");
    char v[16];
    snprintf(v, sizeof v, "%d", limit);
    int fd = open("/proc/sys/user/max_inotify_watches", O_WRONLY);
    if (fd < 0 || write(fd, v, strlen(v)) != (ssize_t)strlen(v)) _exit(101);
    close(fd);
    _exit(fn());
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st));
  return WEXITSTATUS(st);
}

static int enospc_child(void) {
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  int fds = fd_count();
  weft_watch a, b;
  rec r = {0};
  weft_watch_init(loop, &a);
  weft_watch_init(loop, &b);
  if (weft_watch_start(&a, P("d1"), 0, 0, on_ev, &r) != 0) return 2;
  int err = weft_watch_start(&b, P("d2"), 0, 0, on_ev, &r);
  if (err != -ENOSPC) return 3;
  if (weft_is_active(&b.base) || inotify_wds() != 1) return 4;
  weft_watch_stop(&a);
  if (fd_count() != fds) return 5;
  /* a recursive start that cannot watch its whole tree leaves nothing */
  err = weft_watch_start(&b, dir, 0, WEFT_WATCH_RECURSIVE, on_ev, &r);
  if (err != -ENOSPC || fd_count() != fds) return 6;
  if (weft_watch_start(&b, P("d2"), 0, 0, on_ev, &r) != 0) return 7;
  weft_close(&a.base, NULL);
  weft_close(&b.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return weft_loop_free(loop) == 0 ? 0 : 8;
}

Test(watch, the_per_user_watch_limit_is_enospc, FIX, .timeout = 20) {
  cr_assert_eq(mkdir(P("d1"), 0755), 0);
  cr_assert_eq(mkdir(P("d2"), 0755), 0);
  cr_assert_eq(chmod(dir, 0755), 0); /* readable from the namespace */
  int st = in_userns(1, enospc_child);
  if (st == 100 || st == 101) {
    fprintf(stderr,
            "skipped: no user namespace to lower the watch limit "
            "in (status %d)\n",
            st);
    return;
  }
  cr_assert_eq(st, 0, "child check %d failed", st);
}

/* Root and one new directory fill the limit of 2; the second new one is
 * reported as an error, and the watch goes on. */
static int enospc_subdir_child(void) {
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  if (weft_watch_start(&w, P("t"), 0, WEFT_WATCH_RECURSIVE, on_ev, &r) != 0)
    return 2;
  if (mkdir(P("t/a"), 0755) != 0 || mkdir(P("t/b"), 0755) != 0) return 3;
  close(open(P("t/zz"), O_CREAT | O_WRONLY, 0644));
  r.until = "zz";
  for (int i = 0; i < 1000 && !r.done; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  if (!r.done) return 4;
  if (r.errors != 1 || r.last_err != -ENOSPC) return 5;
  if (r.n != 3 || strcmp(r.ev[0], "CREATE a/") != 0 ||
      strcmp(r.ev[1], "CREATE b/") != 0 || strcmp(r.ev[2], "ERROR b/") != 0)
    return 6;
  if (inotify_wds() != 2) return 7;
  weft_close(&w.base, NULL);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return weft_loop_free(loop) == 0 ? 0 : 8;
}

Test(watch, emfile_when_no_fd_is_left, FIX, .timeout = 20) {
  weft_loop *loop = th_loop();
  int fds[1024], n = 0;
  struct rlimit old, lim;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  lim = old;
  lim.rlim_cur = 256;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
  int fd;
  while (n < 1024 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
    fds[n++] = fd;
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  int err = weft_watch_start(&w, dir, 0, 0, on_ev, &r);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  cr_assert(!weft_is_active(&w.base));
  close(fds[--n]);
  err = weft_watch_start(&w, dir, 0, 0, on_ev, &r);
  cr_assert_eq(err, 0, "%s", NAME(err));
  while (n > 0)
    close(fds[--n]);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  settle(loop, &r, "zz");
  cr_assert_eq(r.n, 0);
  weft_close(&w.base, NULL);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- bad inputs ---------------------------------------------------------- */

Test(watch, bad_inputs_are_errors_and_leave_nothing, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  int fds = fd_count();
  weft_watch w, z;
  rec r = {0};
  memset(&z, 0, sizeof z);
  cr_assert_eq(weft_watch_init(NULL, &w), -EINVAL);
  cr_assert_eq(weft_watch_init(loop, NULL), -EINVAL);
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(NULL, dir, 0, 0, on_ev, &r), -EINVAL);
  cr_assert_eq(weft_watch_start(&z, dir, 0, 0, on_ev, &r), -EINVAL);
  cr_assert_eq(weft_watch_start(&w, NULL, 0, 0, on_ev, &r), -EINVAL);
  cr_assert_eq(weft_watch_start(&w, "", 0, 0, on_ev, &r), -EINVAL);
  cr_assert_eq(weft_watch_start(&w, dir, 0, 0, NULL, &r), -EINVAL);
  cr_assert_eq(weft_watch_start(&w, dir, 1 << 12, 0, on_ev, &r), -EINVAL);
  cr_assert_eq(weft_watch_start(&w, dir, WEFT_WATCH_OVERFLOW, 0, on_ev, &r),
               -EINVAL, "OVERFLOW is not selectable");
  cr_assert_eq(weft_watch_start(&w, dir, 0, 2, on_ev, &r), -EINVAL);
  int err = weft_watch_start(&w, P("missing"), 0, 0, on_ev, &r);
  cr_assert_eq(err, -ENOENT, "%s", NAME(err));
  touch("file");
  err = weft_watch_start(&w, P("file"), 0, WEFT_WATCH_RECURSIVE, on_ev, &r);
  cr_assert_eq(err, -ENOTDIR, "%s", NAME(err));
  cr_assert_eq(fd_count(), fds, "failed starts leave no fd");
  cr_assert(!weft_is_active(&w.base));
  weft_future *f = NULL;
  cr_assert_eq(weft_watch_future(&w, &f), -EINVAL, "not started");
  cr_assert_eq(weft_watch_future(NULL, &f), -EINVAL);
  cr_assert_eq(weft_watch_stop(NULL), -EINVAL);
  cr_assert_eq(weft_watch_stop(&z), -EINVAL);
  cr_assert_null(weft_watch_get_path(NULL));
  /* a handle of another type */
  weft_timer t;
  weft_timer_init(loop, &t);
  cr_assert_eq(weft_watch_start((weft_watch *)(void *)&t, dir, 0, 0, on_ev, &r),
               -EINVAL);
  weft_close(&t.base, NULL);
  cr_assert_eq(weft_watch_start(&w, dir, 0, 0, on_ev, &r), 0);
  cr_assert_eq(weft_watch_start(&w, dir, 0, 0, on_ev, &r), -EBUSY);
  cr_assert_eq(weft_watch_future(&w, NULL), -EINVAL);
  weft_close(&w.base, NULL);
  cr_assert_eq(weft_watch_start(&w, dir, 0, 0, on_ev, &r), -EINVAL, "closing");
  cr_assert_eq(weft_watch_future(&w, &f), -EINVAL, "closing");
  th_run(loop);
  cr_assert_eq(fd_count(), fds);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- futures ------------------------------------------------------------- */

static void nop_ev(weft_watch *w, int s, const weft_watch_event *e, void *a) {
  (void)w, (void)s, (void)e, (void)a;
}

Test(watch, future_gets_the_next_event, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_watch w;
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, dir, 0, 0, nop_ev, NULL), 0);
  weft_future *f, *g, *c;
  cr_assert_eq(weft_watch_future(&w, &f), 0);
  cr_assert_eq(weft_watch_future(&w, &g), 0);
  cr_assert_eq(weft_watch_future(&w, &c), 0);
  cr_assert_eq(weft_future_cancel(c), 0);
  weft_future_unref(c);
  touch("a");
  touch("b");
  while (weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  const weft_watch_event *e = weft_future_value(f);
  cr_assert_eq(e->kind, WEFT_WATCH_CREATE);
  cr_assert_str_eq(e->name, "a");
  cr_assert_null(e->name2);
  const weft_watch_event *e2 = weft_future_value(g);
  cr_assert_str_eq(e2->name, "a", "both get the same event");
  weft_future_unref(f);
  weft_future_unref(g);
  /* closing rejects a pending one */
  cr_assert_eq(weft_watch_future(&w, &f), 0);
  weft_close(&w.base, NULL);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  th_run(loop);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  th_loop_finish(loop);
}

/* A future made in the callback is for the event after the current one. */
typedef struct chain {
  weft_future *f;
  int calls;
} chain;

static void chain_ev(weft_watch *w, int s, const weft_watch_event *e,
                     void *arg) {
  (void)s, (void)e;
  chain *c = arg;
  if (c->calls++ == 0) cr_assert_eq(weft_watch_future(w, &c->f), 0);
}

Test(watch, a_future_made_in_the_callback_gets_the_next_event, FIX,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_watch w;
  chain c = {0};
  weft_watch_init(loop, &w);
  weft_watch_start(&w, dir, 0, 0, chain_ev, &c);
  touch("first");
  touch("second");
  while (c.f == NULL || weft_future_get_state(c.f) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  const weft_watch_event *e = weft_future_value(c.f);
  cr_assert_str_eq(e->name, "second");
  weft_future_unref(c.f);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, a_renamed_root_is_still_watched, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  cr_assert_eq(mkdir(P("r"), 0755), 0);
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, P("r"), 0, 0, on_ev, &r), 0);
  cr_assert_eq(rename(P("r"), P("r2")), 0);
  touch("r2/x");
  settle_as(loop, &r, "r2/zz", "zz");
  const char *want[] = {"CREATE x"};
  assert_seq(&r, want, 1);
  cr_assert_str_eq(weft_watch_get_path(&w), P("r"), "the path as given");
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, stop_rejects_pending_futures, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_watch w;
  weft_watch_init(loop, &w);
  weft_watch_start(&w, dir, 0, 0, nop_ev, NULL);
  weft_future *f;
  cr_assert_eq(weft_watch_future(&w, &f), 0);
  weft_watch_stop(&w);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

/* ---- recursive ----------------------------------------------------------- */

Test(watch, recursive_names_are_relative_to_the_root, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  cr_assert_eq(mkdir(P("a"), 0755), 0);
  cr_assert_eq(mkdir(P("a/b"), 0755), 0);
  touch("a/b/old");
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  int err = weft_watch_start(&w, dir, 0, WEFT_WATCH_RECURSIVE, on_ev, &r);
  cr_assert_eq(err, 0, "%s", NAME(err));
  cr_assert_eq(inotify_wds(), 3, "root, a, a/b");
  put("a/b/old", "x");
  cr_assert_eq(rename(P("a/b/old"), P("a/new")), 0); /* across directories */
  cr_assert_eq(rename(P("a/b"), P("a/c")), 0);       /* a directory */
  touch("a/c/later");
  settle(loop, &r, "zz");
  const char *want[] = {"MODIFY a/b/old", "MOVE a/b/old>a/new", "MOVE a/b>a/c/",
                        "CREATE a/c/later"};
  assert_seq(&r, want, 4);
  /* moved out of the tree: reported once, then out of sight */
  char out[80];
  snprintf(out, sizeof out, "%s-out", dir);
  cr_assert_eq(rename(P("a/c"), out), 0);
  touch("zz1");
  r = (rec){0};
  char x[96];
  snprintf(x, sizeof x, "%s/x", out);
  close(open(x, O_CREAT | O_WRONLY, 0644));
  settle(loop, &r, "zz2");
  th_rm_tree(out);
  const char *want2[] = {"OUT a/c/", "CREATE zz1"};
  assert_seq(&r, want2, 2);
  cr_assert_eq(inotify_wds(), 2, "the moved-out subtree is unwatched");
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, recursive_mkdir_p_then_files_reports_every_file, FIX,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_watch w;
  rec r = {0};
  weft_watch_init(loop, &w);
  cr_assert_eq(weft_watch_start(&w, dir, 0, WEFT_WATCH_RECURSIVE, on_ev, &r),
               0);
  /* all of it before the loop reads a single event: only the scans can
   * find what is below "a" */
  cr_assert_eq(mkdir(P("a"), 0755), 0);
  cr_assert_eq(mkdir(P("a/b"), 0755), 0);
  cr_assert_eq(mkdir(P("a/b/c"), 0755), 0);
  touch("a/f1");
  touch("a/b/f2");
  touch("a/b/c/f3");
  settle(loop, &r, "zz");
  cr_assert_eq(r.n, 6, "%d events", r.n);
  const char *want[] = {"CREATE a/",   "CREATE a/b/",   "CREATE a/b/c/",
                        "CREATE a/f1", "CREATE a/b/f2", "CREATE a/b/c/f3"};
  for (int i = 0; i < 6; i++)
    cr_assert(has(&r, want[i]), "missing %s", want[i]);
  /* and the new directories are watched */
  r = (rec){0};
  touch("a/b/c/f4");
  settle(loop, &r, "zz2");
  const char *want2[] = {"CREATE a/b/c/f4"};
  assert_seq(&r, want2, 1);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

/* Trees made by another thread while the loop reads: every file once. */
#define TREES 30
static void *make_trees(void *arg) {
  (void)arg;
  for (int i = 0; i < TREES; i++) {
    char p[200];
    snprintf(p, sizeof p, "%s/t%d", dir, i);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/t%d/s", dir, i);
    mkdir(p, 0755);
    for (int k = 0; k < 3; k++) {
      snprintf(p, sizeof p, "%s/t%d/s/f%d", dir, i, k);
      close(open(p, O_CREAT | O_WRONLY, 0644));
    }
  }
  return NULL;
}

typedef struct tally {
  int creates, others, errors;
  char seen[TREES][4]; /* per tree: s and f0..f2 */
  bool done;
} tally;

static void on_tally(weft_watch *w, int status, const weft_watch_event *e,
                     void *arg) {
  (void)w;
  tally *t = arg;
  if (status != 0) {
    t->errors++;
    return;
  }
  if (strcmp(e->name, "zz") == 0) {
    t->done = true;
    return;
  }
  int i, k;
  if (e->kind != WEFT_WATCH_CREATE) {
    t->others++;
  } else if (sscanf(e->name, "t%d/s/f%d", &i, &k) == 2) {
    t->seen[i][1 + k]++;
  } else if (sscanf(e->name, "t%d/s", &i) == 1 && strchr(e->name, '/')) {
    t->seen[i][0]++;
  }
  if (e->kind == WEFT_WATCH_CREATE) t->creates++;
}

Test(watch, recursive_race_with_a_writer_thread_reports_each_once, FIX,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  weft_watch w;
  tally t = {0};
  weft_watch_init(loop, &w);
  weft_watch_start(&w, dir, 0, WEFT_WATCH_RECURSIVE, on_tally, &t);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, make_trees, NULL), 0);
  weft_timer tick;
  weft_timer_init(loop, &tick);
  weft_timer_start(&tick, on_tick, 1, 1);
  weft_update_time(loop);
  uint64_t end = weft_now(loop) + 3000;
  while (weft_now(loop) < end && t.creates < TREES * 5)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  weft_close(&tick.base, NULL);
  pthread_join(th, NULL);
  touch("zz");
  run_until(loop, &t.done);
  cr_assert_eq(t.errors, 0);
  cr_assert_eq(t.others, 0);
  cr_assert_eq(t.creates, TREES * 5, "%d creates", t.creates);
  for (int i = 0; i < TREES; i++)
    for (int k = 0; k < 4; k++)
      cr_assert_eq(t.seen[i][k], 1, "tree %d entry %d seen %d times", i, k,
                   t.seen[i][k]);
  weft_close(&w.base, NULL);
  th_loop_finish(loop);
}

Test(watch, recursive_subdir_beyond_the_limit_is_a_status, FIX, .timeout = 20) {
  cr_assert_eq(mkdir(P("t"), 0777), 0);
  cr_assert_eq(chmod(dir, 0755), 0);
  int st = in_userns(2, enospc_subdir_child);
  if (st == 100 || st == 101) {
    fprintf(stderr, "skipped: no user namespace (status %d)\n", st);
    return;
  }
  cr_assert_eq(st, 0, "child check %d failed", st);
}

/* ---- stat polling -------------------------------------------------------- */

typedef struct prec {
  int calls, errors, oks;
  int last_status;
  struct stat prev, curr;
  int stop_at;
  int future_at;     /* make `made` in this call (0: never) */
  weft_future *made; /* made in the callback */
} prec;

static void on_poll(weft_fs_poll *p, int status, const struct stat *prev,
                    const struct stat *curr, void *arg) {
  prec *r = arg;
  r->calls++;
  r->last_status = status;
  r->prev = *prev;
  r->curr = *curr;
  if (status)
    r->errors++;
  else
    r->oks++;
  if (r->future_at == r->calls) {
    cr_assert_eq(weft_fs_poll_future(p, &r->made), 0);
    cr_assert_eq(weft_future_get_state(r->made), WEFT_FUTURE_PENDING);
  }
  if (r->stop_at == r->calls) weft_fs_poll_stop(p);
}

static void run_calls(weft_loop *loop, prec *r, int calls) {
  weft_timer t;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, on_tick, 5, 5);
  weft_update_time(loop);
  uint64_t end = weft_now(loop) + 5000;
  while (r->calls < calls && weft_now(loop) < end)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  weft_close(&t.base, NULL);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(r->calls, calls, "timed out");
}

static bool flag_set;
static void on_flag(weft_timer *t) {
  (void)t;
  flag_set = true;
}

Test(watch, fs_poll_reports_changes_missing_once_and_recovery, FIX,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  touch("f");
  weft_fs_poll p;
  prec r = {0};
  cr_assert_eq(weft_fs_poll_init(loop, &p), 0);
  cr_assert_eq(weft_handle_get_type(&p.base), WEFT_HANDLE_FS_POLL);
  cr_assert_eq(weft_fs_poll_start(&p, P("f"), 10, on_poll, &r), 0);
  cr_assert_str_eq(weft_fs_poll_get_path(&p), P("f"));
  cr_assert_eq(weft_fs_poll_start(&p, P("f"), 10, on_poll, &r), -EBUSY);
  /* let the baseline stat happen, then change the size */
  flag_set = false;
  weft_timer t;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, on_flag, 50, 0);
  run_until(loop, &flag_set);
  cr_assert_eq(r.calls, 0, "the baseline reports nothing");
  put_whole("f", "hello");
  run_calls(loop, &r, 1);
  cr_assert_eq(r.last_status, 0);
  cr_assert_eq(r.prev.st_size, 0);
  cr_assert_eq(r.curr.st_size, 5);
  /* missing: one error, however many polls fail */
  unlink(P("f"));
  run_calls(loop, &r, 2);
  cr_assert_eq(r.last_status, -ENOENT, "%s", NAME(r.last_status));
  cr_assert_eq(r.prev.st_size, 5, "prev: the last good stat");
  cr_assert_eq(r.curr.st_ino, 0, "curr zero-filled");
  flag_set = false;
  weft_timer_start(&t, on_flag, 80, 0);
  run_until(loop, &flag_set); /* about 8 more failing polls */
  cr_assert_eq(r.calls, 2);
  touch("f");
  run_calls(loop, &r, 3);
  cr_assert_eq(r.last_status, 0, "recovered");
  cr_assert_eq(r.prev.st_ino, 0, "prev zero-filled after an error");
  cr_assert_neq(r.curr.st_ino, 0);
  cr_assert_eq(r.errors, 1);
  cr_assert_eq(weft_fs_poll_stop(&p), 0);
  cr_assert_null(weft_fs_poll_get_path(&p));
  cr_assert_eq(weft_fs_poll_stop(&p), 0);
  weft_close(&t.base, NULL);
  weft_close(&p.base, NULL);
  th_loop_finish(loop);
}

Test(watch, fs_poll_missing_at_start_and_stop_in_callback, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_fs_poll p;
  prec r = {.stop_at = 1};
  weft_fs_poll_init(loop, &p);
  cr_assert_eq(weft_fs_poll_start(&p, P("nothing"), 5, on_poll, &r), 0);
  th_run(loop); /* the callback stops it: nothing else keeps the loop */
  cr_assert_eq(r.calls, 1);
  cr_assert_eq(r.last_status, -ENOENT);
  cr_assert(!weft_is_active(&p.base));
  weft_close(&p.base, NULL);
  th_loop_finish(loop);
}

Test(watch, fs_poll_close_with_a_stat_in_flight, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  touch("f");
  weft_fs_poll p;
  prec r = {0};
  weft_fs_poll_init(loop, &p);
  cr_assert_eq(weft_fs_poll_start(&p, P("f"), 5, on_poll, &r), 0);
  weft_close(&p.base, NULL);
  th_run(loop);
  cr_assert_eq(r.calls, 0);
  th_loop_finish(loop);
}

/* ---- stat polling: futures ---------------------------------------------- */

static const weft_fs_poll_change *change_of(weft_future *f) {
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               NAME(weft_future_error(f)));
  return weft_future_value(f);
}

Test(watch, fs_poll_future_gets_the_next_change_or_its_error, FIX,
     .timeout = 20) {
  weft_loop *loop = th_loop();
  touch("f");
  weft_fs_poll p;
  prec r = {.future_at = 1};
  weft_fs_poll_init(loop, &p);
  weft_future *f = NULL;
  cr_assert_eq(weft_fs_poll_future(&p, &f), -EINVAL, "not started");
  cr_assert_null(f);
  cr_assert_eq(weft_fs_poll_start(&p, P("f"), 10, on_poll, &r), 0);
  flag_set = false; /* the baseline stat first */
  weft_timer t;
  weft_timer_init(loop, &t);
  weft_timer_start(&t, on_flag, 50, 0);
  run_until(loop, &flag_set);
  weft_future *g, *c;
  cr_assert_eq(weft_fs_poll_future(&p, &f), 0);
  cr_assert_eq(weft_fs_poll_future(&p, &g), 0);
  cr_assert_eq(weft_fs_poll_future(&p, &c), 0);
  cr_assert_eq(weft_future_cancel(c), 0);
  weft_future_unref(c);
  put_whole("f", "hello");
  run_calls(loop, &r, 1);
  const weft_fs_poll_change *ch = change_of(f);
  cr_assert_eq(ch->prev.st_size, 0);
  cr_assert_eq(ch->curr.st_size, 5);
  cr_assert_eq(ch->curr.st_ino, r.curr.st_ino);
  cr_assert_eq(change_of(g)->curr.st_size, 5, "both get the same change");
  weft_future_unref(f);
  weft_future_unref(g);
  /* made in the callback: for the next one, a failed stat: rejected */
  cr_assert_eq(weft_future_get_state(r.made), WEFT_FUTURE_PENDING);
  unlink(P("f"));
  run_calls(loop, &r, 2);
  cr_assert_eq(weft_future_get_state(r.made), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(r.made), -ENOENT, "%s",
               NAME(weft_future_error(r.made)));
  weft_future_unref(r.made);
  /* stopping rejects a pending one at once; a stopped poll makes none */
  cr_assert_eq(weft_fs_poll_future(&p, &f), 0);
  cr_assert_eq(weft_fs_poll_stop(&p), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  f = NULL;
  cr_assert_eq(weft_fs_poll_future(&p, &f), -EINVAL);
  cr_assert_null(f);
  /* closing rejects in the close phase */
  touch("f");
  cr_assert_eq(weft_fs_poll_start(&p, P("f"), 10, on_poll, &r), 0);
  cr_assert_eq(weft_fs_poll_future(&p, &f), 0);
  weft_close(&p.base, NULL);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_fs_poll_future(&p, &g), -EINVAL, "closing");
  weft_close(&t.base, NULL);
  th_run(loop);
  cr_assert_eq(weft_future_error(f), -ECANCELED);
  weft_future_unref(f);
  cr_assert_eq(r.calls, 2);
  th_loop_finish(loop);
}

Test(watch, fs_poll_future_bad_inputs, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_fs_poll p, z;
  weft_watch w;
  memset(&z, 0, sizeof z);
  weft_fs_poll_init(loop, &p);
  weft_watch_init(loop, &w);
  prec r = {0};
  cr_assert_eq(weft_fs_poll_start(&p, dir, 5, on_poll, &r), 0);
  weft_future *f = NULL;
  cr_assert_eq(weft_fs_poll_future(NULL, &f), -EINVAL);
  cr_assert_eq(weft_fs_poll_future(&z, &f), -EINVAL);
  cr_assert_eq(weft_fs_poll_future((weft_fs_poll *)(void *)&w, &f), -EINVAL);
  cr_assert_eq(weft_fs_poll_future(&p, NULL), -EINVAL);
  cr_assert_null(f);
  weft_close(&p.base, NULL);
  weft_close(&w.base, NULL);
  th_run(loop);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

Test(watch, fs_poll_bad_inputs, FIX, .timeout = 10) {
  weft_loop *loop = th_loop();
  weft_fs_poll p, z;
  prec r = {0};
  memset(&z, 0, sizeof z);
  cr_assert_eq(weft_fs_poll_init(NULL, &p), -EINVAL);
  cr_assert_eq(weft_fs_poll_init(loop, NULL), -EINVAL);
  weft_fs_poll_init(loop, &p);
  cr_assert_eq(weft_fs_poll_start(NULL, dir, 5, on_poll, &r), -EINVAL);
  cr_assert_eq(weft_fs_poll_start(&z, dir, 5, on_poll, &r), -EINVAL);
  cr_assert_eq(weft_fs_poll_start(&p, NULL, 5, on_poll, &r), -EINVAL);
  cr_assert_eq(weft_fs_poll_start(&p, "", 5, on_poll, &r), -EINVAL);
  cr_assert_eq(weft_fs_poll_start(&p, dir, 5, NULL, &r), -EINVAL);
  cr_assert_eq(weft_fs_poll_stop(NULL), -EINVAL);
  cr_assert_eq(weft_fs_poll_stop(&z), -EINVAL);
  cr_assert_null(weft_fs_poll_get_path(NULL));
  cr_assert(!weft_is_active(&p.base));
  weft_close(&p.base, NULL);
  cr_assert_eq(weft_fs_poll_start(&p, dir, 5, on_poll, &r), -EINVAL);
  th_run(loop);
  th_loop_usable(loop);
  th_loop_finish(loop);
}

/* ---- allocation failure at each site -------------------------------------
 * Each round: a recursive start, then a new directory with a file in it
 * (the scan, the seen set, the new node), a future for an event. An
 * injected failure is either the start's -ENOMEM or an event with status
 * -ENOMEM (or a rejected future); nothing is left behind either way. */

typedef struct sweep_rec {
  int enomem, other_err;
  bool seen;
  const char *want;
} sweep_rec;

static void sweep_ev(weft_watch *w, int status, const weft_watch_event *e,
                     void *arg) {
  (void)w;
  sweep_rec *s = arg;
  if (status == -ENOMEM)
    s->enomem++;
  else if (status != 0)
    s->other_err++;
  else if (strcmp(e->name, s->want) == 0)
    s->seen = true;
}

static int sweep_round;

static int sweep_watch(weft_loop *loop, void *arg) {
  (void)arg;
  char rel[32], want[40];
  snprintf(rel, sizeof rel, "n%d", sweep_round++);
  snprintf(want, sizeof want, "%s/f", rel);
  weft_watch w;
  weft_timer t;
  sweep_rec s = {.want = want};
  weft_watch_init(loop, &w);
  int err = weft_watch_start(&w, dir, 0, WEFT_WATCH_RECURSIVE, sweep_ev, &s);
  weft_future *f = NULL;
  int ferr = err == 0 ? weft_watch_future(&w, &f) : 0;
  if (err == 0) {
    cr_assert_eq(mkdir(P(rel), 0755), 0);
    touch(want);
    weft_timer_init(loop, &t);
    weft_timer_start(&t, on_tick, 5, 5);
    for (int i = 0; i < 400 && !s.seen && s.enomem == 0; i++)
      weft_loop_run(loop, WEFT_RUN_ONCE);
    weft_close(&t.base, NULL);
    weft_loop_run(loop, WEFT_RUN_NOWAIT); /* t's close */
    cr_assert(s.seen || s.enomem > 0, "neither the event nor an error");
  }
  cr_assert_eq(s.other_err, 0);
  weft_close(&w.base, NULL); /* a future still pending: -ECANCELED */
  th_run(loop);
  if (f != NULL) {
    if (weft_future_error(f) == -ENOMEM)
      s.enomem++;
    else if (weft_future_get_state(f) != WEFT_FUTURE_FULFILLED)
      cr_assert_eq(weft_future_error(f), -ECANCELED, "%s",
                   NAME(weft_future_error(f)));
    weft_future_unref(f);
  }
  th_rm_tree(P(rel)); /* the next round's tree is the same size */
  if (err != 0) return err;
  if (ferr != 0) return ferr;
  return s.enomem ? -ENOMEM : 0;
}

Test(watch, allocation_failure_at_each_site_is_clean, FIX, .timeout = 60) {
  cr_assert_eq(mkdir(P("a"), 0755), 0);
  cr_assert_eq(mkdir(P("a/b"), 0755), 0);
  th_sweep s = {.op = sweep_watch};
  cr_assert_geq(th_alloc_sweep_run(&s), 1);
}

static int sweep_fs_poll(weft_loop *loop, void *arg) {
  (void)arg;
  weft_fs_poll p;
  prec r = {.stop_at = 1};
  weft_fs_poll_init(loop, &p);
  int err = weft_fs_poll_start(&p, P("missing"), 5, on_poll, &r);
  weft_future *f = NULL;
  int ferr = err == 0 ? weft_fs_poll_future(&p, &f) : 0;
  if (err == 0) {
    th_run(loop);
    cr_assert_eq(r.calls, 1);
    err = r.last_status == -ENOENT ? 0 : r.last_status;
  }
  if (f != NULL) { /* the failed stat's error (or the injected one) */
    int fe = weft_future_error(f);
    cr_assert(fe == r.last_status, "%s", NAME(fe));
    weft_future_unref(f);
  }
  weft_close(&p.base, NULL);
  th_run(loop);
  return err ? err : ferr;
}

Test(watch, fs_poll_allocation_failure_is_clean, FIX, .timeout = 30) {
  th_sweep s = {.op = sweep_fs_poll};
  cr_assert_geq(th_alloc_sweep_run(&s), 1);
}
