/* Error handlers recover (catch, then2's on_err returning 0 fulfil the
 * derived future), and unobserved rejections name their future. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/test.h"

static int unobserved;
static int last_err;
static void count_unobserved(weft_loop *loop, int err, void *arg) {
  (void)loop;
  (void)arg;
  unobserved++;
  last_err = err;
}

static weft_loop *quiet_loop(void) {
  weft_loop *loop = th_loop();
  unobserved = 0;
  last_err = 0;
  cr_assert_eq(weft_future_set_unhandled_hook(loop, count_unobserved, NULL), 0);
  return loop;
}

static weft_future *rejected(weft_loop *loop, int err) {
  weft_future *f;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_reject(f, err), 0);
  return f;
}

static weft_future *fulfilled(weft_loop *loop, int64_t v) {
  weft_future *f;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_resolve_i64(f, v), 0);
  return f;
}

typedef struct handler {
  int calls;
  int seen_err;
  int64_t seen_value;
  int ret;        /* returned (0 or an error code) */
  bool rethrow;   /* return weft_future_error(in) */
  bool set_value; /* resolve out with 99 */
} handler;

static int on_err(weft_future *in, weft_future *out, void *arg) {
  handler *h = arg;
  h->calls++;
  h->seen_err = weft_future_error(in);
  h->seen_value = weft_future_value_i64(in);
  if (h->set_value) return weft_future_resolve_i64(out, 99);
  if (h->rethrow) return weft_future_error(in);
  return h->ret;
}

static int on_ok(weft_future *in, weft_future *out, void *arg) {
  handler *h = arg;
  (void)out;
  h->calls++;
  h->seen_value = weft_future_value_i64(in);
  return h->ret;
}

#define ASSERT_STATE(f, st)                                                    \
  cr_assert_eq(weft_future_get_state(f), (st), "state %d, error %s",           \
               (int)weft_future_get_state(f),                                  \
               weft_err_name(weft_future_error(f)))

/* ---- catch recovers ---------------------------------------------------- */

Test(recover, catch_returning_zero_fulfils_with_int64_zero, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *d;
  handler h = {0};
  cr_assert_eq(weft_future_catch(a, on_err, &h, &d), 0);
  th_run(loop);
  cr_assert_eq(h.calls, 1);
  cr_assert_eq(h.seen_err, -EIO, "%s", weft_err_name(h.seen_err));
  ASSERT_STATE(d, WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value_i64(d), 0);
  cr_assert_null(weft_future_value(d));
  cr_assert_eq(weft_future_error(d), 0);
  weft_future_unref(a);
  weft_future_unref(d);
  /* neither the input (observed by catch) nor d was an unobserved error */
  cr_assert_eq(unobserved, 0);
  th_loop_finish(loop);
}

Test(recover, recovered_chain_continues_with_then, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -ENOENT), *d, *e;
  handler c = {0}, t = {.ret = 0};
  cr_assert_eq(weft_future_catch(a, on_err, &c, &d), 0);
  cr_assert_eq(weft_future_then(d, on_ok, &t, &e), 0);
  th_run(loop);
  cr_assert_eq(c.calls, 1);
  cr_assert_eq(t.calls, 1); /* the then after a recovering catch runs */
  cr_assert_eq(t.seen_value, 0);
  ASSERT_STATE(e, WEFT_FUTURE_FULFILLED);
  weft_future_unref(a);
  weft_future_unref(d);
  weft_future_unref(e);
  th_loop_finish(loop);
}

Test(recover, catch_without_out_leaves_no_unobserved_rejection, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EPIPE);
  handler h = {0};
  cr_assert_eq(weft_future_catch(a, on_err, &h, NULL), 0);
  weft_future_unref(a);
  th_run(loop);
  cr_assert_eq(h.calls, 1);
  cr_assert_eq(unobserved, 0); /* the old pass-through reported one here */
  th_loop_finish(loop);
}

Test(recover, catch_rethrows_by_returning_the_error, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *d;
  handler h = {.rethrow = true};
  cr_assert_eq(weft_future_catch(a, on_err, &h, &d), 0);
  th_run(loop);
  cr_assert_eq(h.calls, 1);
  ASSERT_STATE(d, WEFT_FUTURE_REJECTED);
  cr_assert_eq(weft_future_error(d), -EIO, "%s",
               weft_err_name(weft_future_error(d)));
  weft_future_unref(a);
  weft_future_unref(d);
  cr_assert_eq(unobserved, 0);
  th_loop_finish(loop);
}

Test(recover, rethrown_error_is_reported_when_unobserved, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO);
  handler h = {.rethrow = true};
  cr_assert_eq(weft_future_catch(a, on_err, &h, NULL), 0);
  weft_future_unref(a);
  th_run(loop);
  cr_assert_eq(h.calls, 1);
  cr_assert_eq(unobserved, 1);
  cr_assert_eq(last_err, -EIO, "%s", weft_err_name(last_err));
  th_loop_finish(loop);
}

Test(recover, catch_throws_another_code, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *d;
  handler h = {.ret = -ETIMEDOUT};
  cr_assert_eq(weft_future_catch(a, on_err, &h, &d), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(d), -ETIMEDOUT, "%s",
               weft_err_name(weft_future_error(d)));
  weft_future_unref(a);
  weft_future_unref(d);
  th_loop_finish(loop);
}

Test(recover, catch_can_fulfil_out_with_a_value, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *d;
  handler h = {.set_value = true};
  cr_assert_eq(weft_future_catch(a, on_err, &h, &d), 0);
  th_run(loop);
  cr_assert_eq(weft_future_value_i64(d), 99);
  weft_future_unref(a);
  weft_future_unref(d);
  th_loop_finish(loop);
}

Test(recover, catch_recovers_a_cancellation, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a, *d;
  handler h = {0};
  cr_assert_eq(weft_future_new(loop, &a), 0);
  cr_assert_eq(weft_future_catch(a, on_err, &h, &d), 0);
  weft_future_ref(d);
  /* d is one of two holders of a (the caller too): cancelling a directly */
  cr_assert_eq(weft_future_cancel(a), 0);
  th_run(loop);
  cr_assert_eq(h.calls, 1);
  cr_assert_eq(h.seen_err, -ECANCELED, "%s", weft_err_name(h.seen_err));
  ASSERT_STATE(d, WEFT_FUTURE_FULFILLED);
  weft_future_unref(d);
  weft_future_unref(d);
  weft_future_unref(a);
  th_loop_finish(loop);
}

Test(recover, catch_on_a_value_is_skipped_and_passes_it, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = fulfilled(loop, 7), *d;
  handler h = {0};
  cr_assert_eq(weft_future_catch(a, on_err, &h, &d), 0);
  th_run(loop);
  cr_assert_eq(h.calls, 0);
  cr_assert_eq(weft_future_value_i64(d), 7);
  weft_future_unref(a);
  weft_future_unref(d);
  th_loop_finish(loop);
}

/* finally keeps passing through: its 0 is not a recovery */
Test(recover, finally_still_passes_the_error_through, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *d;
  handler h = {0};
  cr_assert_eq(weft_future_finally(a, on_err, &h, &d), 0);
  th_run(loop);
  cr_assert_eq(h.calls, 1);
  cr_assert_eq(weft_future_error(d), -EIO, "%s",
               weft_err_name(weft_future_error(d)));
  weft_future_unref(a);
  weft_future_unref(d);
  th_loop_finish(loop);
}

/* ---- then2 both ways ----------------------------------------------------- */

Test(recover, then2_on_err_recovers_and_on_ok_passes, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *b = fulfilled(loop, 5);
  weft_future *da, *db, *dc;
  handler ea = {0}, oa = {0}, eb = {0}, ob = {0}, ec = {0};
  cr_assert_eq(weft_future_then2(a, on_ok, on_err, &ea, &da), 0);
  cr_assert_eq(weft_future_then2(b, on_ok, on_err, &ob, &db), 0);
  /* then2 with only on_ok on a rejection: passes the error through */
  weft_future *a2 = rejected(loop, -EBADF);
  cr_assert_eq(weft_future_then2(a2, on_ok, NULL, &ec, &dc), 0);
  th_run(loop);
  (void)oa;
  (void)eb;
  cr_assert_eq(ea.calls, 1);
  cr_assert_eq(ea.seen_err, -EIO);
  ASSERT_STATE(da, WEFT_FUTURE_FULFILLED); /* recovered */
  cr_assert_eq(weft_future_value_i64(da), 0);
  cr_assert_eq(ob.calls, 1);
  cr_assert_eq(ob.seen_value, 5);
  cr_assert_eq(weft_future_value_i64(db), 5); /* on_ok's 0 passes the value */
  cr_assert_eq(ec.calls, 0);
  cr_assert_eq(weft_future_error(dc), -EBADF, "%s",
               weft_err_name(weft_future_error(dc)));
  weft_future *all[] = {a, b, a2, da, db, dc};
  for (int i = 0; i < 6; i++)
    weft_future_unref(all[i]);
  th_loop_finish(loop);
}

Test(recover, then2_on_err_rethrows_and_throws_another, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a = rejected(loop, -EIO), *b = rejected(loop, -EIO);
  weft_future *da, *db;
  handler re = {.rethrow = true}, other = {.ret = -EPROTO};
  cr_assert_eq(weft_future_then2(a, NULL, on_err, &re, &da), 0);
  cr_assert_eq(weft_future_then2(b, on_ok, on_err, &other, &db), 0);
  th_run(loop);
  cr_assert_eq(weft_future_error(da), -EIO, "%s",
               weft_err_name(weft_future_error(da)));
  cr_assert_eq(weft_future_error(db), -EPROTO, "%s",
               weft_err_name(weft_future_error(db)));
  cr_assert_eq(re.calls, 1);
  cr_assert_eq(other.calls, 1);
  weft_future *all[] = {a, b, da, db};
  for (int i = 0; i < 4; i++)
    weft_future_unref(all[i]);
  th_loop_finish(loop);
}

/* ---- which future: ops and names ---------------------------------------- */

typedef struct seen_info {
  int calls;
  int err;
  char op[64];
  char name[64];
  bool named;
} seen_info;

static void on_info(weft_loop *loop, const weft_unhandled_info *in, void *arg) {
  (void)loop;
  seen_info *s = arg;
  s->calls++;
  s->err = in->err;
  cr_assert_not_null(in->op);
  cr_assert_not_null(in->future);
  snprintf(s->op, sizeof s->op, "%s", in->op);
  s->named = in->name != NULL;
  snprintf(s->name, sizeof s->name, "%s", in->name ? in->name : "");
}

Test(names, op_defaults_and_producer_ops, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *a, *b, *d, *c = NULL;
  cr_assert_eq(weft_future_new(loop, &a), 0);
  cr_assert_eq(weft_future_new_op(loop, "my_lib_query", &b), 0);
  cr_assert_eq(weft_future_new_op(loop, NULL, &c), 0);
  cr_assert_str_eq(weft_future_get_op(a), "weft_future_new");
  cr_assert_str_eq(weft_future_get_op(b), "my_lib_query");
  cr_assert_str_eq(weft_future_get_op(c), "weft_future_new");
  cr_assert_str_eq(weft_future_get_op(NULL), "");
  handler h = {0};
  cr_assert_eq(weft_future_then(a, on_ok, &h, &d), 0);
  cr_assert_str_eq(weft_future_get_op(d), "then");
  cr_assert_null(weft_future_get_name(a));
  cr_assert_null(weft_future_get_name(NULL));
  cr_assert_eq(weft_future_new_op(NULL, "x", &c), -EINVAL);
  cr_assert_eq(weft_future_new_op(loop, "x", NULL), -EINVAL);
  cr_assert_eq(weft_future_resolve_i64(a, 1), 0);
  weft_future *e;
  cr_assert_eq(weft_future_new(loop, &e), 0);
  weft_future_cancel(e);
  weft_future_unref(e);
  th_run(loop);
  weft_future *all[] = {a, b, c, d};
  for (int i = 0; i < 4; i++) {
    weft_future_cancel(all[i]);
    weft_future_unref(all[i]);
  }
  th_loop_finish(loop);
}

Test(names, set_name_copies_cuts_replaces_and_clears, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  weft_future *f;
  cr_assert_eq(weft_future_new(loop, &f), 0);
  char buf[16] = "first";
  cr_assert_eq(weft_future_set_name(f, buf), 0);
  buf[0] = 'X'; /* copied, not borrowed */
  cr_assert_str_eq(weft_future_get_name(f), "first");
  cr_assert_eq(weft_future_set_name(f, "second"), 0);
  cr_assert_str_eq(weft_future_get_name(f), "second");
  const char *longname = "0123456789abcdef0123456789abcdefTAIL";
  cr_assert_eq(weft_future_set_name(f, longname), 0);
  cr_assert_eq(strlen(weft_future_get_name(f)), WEFT_FUTURE_NAME_MAX);
  cr_assert_eq(strncmp(weft_future_get_name(f), longname, 31), 0);
  cr_assert_eq(weft_future_set_name(f, NULL), 0);
  cr_assert_null(weft_future_get_name(f));
  cr_assert_eq(weft_future_set_name(f, NULL), 0); /* unnamed: no-op */
  cr_assert_eq(weft_future_set_name(NULL, "x"), -EINVAL);
  cr_assert_eq(weft_future_set_name(f, ""), 0);
  cr_assert_str_eq(weft_future_get_name(f), "");
  weft_future_unref(f); /* a named future's entry is freed with it */
  th_loop_finish(loop); /* asserts weft holds no memory */
}

Test(names, many_named_futures_keep_their_own_names, .timeout = 10) {
  weft_loop *loop = quiet_loop();
  enum { N = 300 }; /* past several growths of the table */
  weft_future *fs[N];
  for (int i = 0; i < N; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "job-%d", i);
    cr_assert_eq(weft_future_new(loop, &fs[i]), 0);
    cr_assert_eq(weft_future_set_name(fs[i], nm), 0);
  }
  for (int i = 0; i < N; i += 2)
    weft_future_unref(fs[i]);
  for (int i = 1; i < N; i += 2) {
    char nm[32];
    snprintf(nm, sizeof nm, "job-%d", i);
    cr_assert_str_eq(weft_future_get_name(fs[i]), nm);
    weft_future_unref(fs[i]);
  }
  /* reused slots come back unnamed */
  weft_future *g;
  cr_assert_eq(weft_future_new(loop, &g), 0);
  cr_assert_null(weft_future_get_name(g));
  weft_future_unref(g);
  th_loop_finish(loop);
}

Test(names, info_hook_names_op_and_name, .timeout = 10) {
  weft_loop *loop = th_loop();
  seen_info s = {0};
  cr_assert_eq(weft_future_set_unhandled_info_hook(loop, on_info, &s), 0);
  weft_future *f;
  cr_assert_eq(weft_future_new_op(loop, "weft_tcp_connect_future", &f), 0);
  cr_assert_eq(weft_future_set_name(f, "upstream"), 0);
  cr_assert_eq(weft_future_reject(f, -ECONNREFUSED), 0);
  weft_future_unref(f);
  cr_assert_eq(s.calls, 1);
  cr_assert_eq(s.err, -ECONNREFUSED, "%s", weft_err_name(s.err));
  cr_assert_str_eq(s.op, "weft_tcp_connect_future");
  cr_assert(s.named);
  cr_assert_str_eq(s.name, "upstream");
  /* unnamed: name NULL */
  cr_assert_eq(weft_future_new(loop, &f), 0);
  cr_assert_eq(weft_future_reject(f, -EIO), 0);
  weft_future_unref(f);
  cr_assert_eq(s.calls, 2);
  cr_assert_str_eq(s.op, "weft_future_new");
  cr_assert(!s.named);
  cr_assert_eq(weft_future_set_unhandled_info_hook(NULL, on_info, &s), -EINVAL);
  th_loop_finish(loop);
}

Test(names, pass_through_carries_op_and_name, .timeout = 10) {
  weft_loop *loop = th_loop();
  seen_info s = {0};
  cr_assert_eq(weft_future_set_unhandled_info_hook(loop, on_info, &s), 0);
  weft_future *f, *d;
  cr_assert_eq(weft_future_new_op(loop, "weft_tcp_connect_future", &f), 0);
  cr_assert_eq(weft_future_set_name(f, "db"), 0);
  handler h = {0};
  cr_assert_eq(weft_future_then(f, on_ok, &h, &d), 0);
  cr_assert_eq(weft_future_reject(f, -EHOSTUNREACH), 0);
  weft_future_unref(f);
  th_run(loop);
  cr_assert_eq(s.calls, 0); /* f observed by the then; d still held */
  weft_future_unref(d);
  cr_assert_eq(s.calls, 1);
  cr_assert_str_eq(s.op, "weft_tcp_connect_future");
  cr_assert_str_eq(s.name, "db");
  th_loop_finish(loop);
}

Test(names, legacy_hook_still_works_and_hooks_replace_each_other,
     .timeout = 10) {
  weft_loop *loop = th_loop();
  seen_info s = {0};
  unobserved = 0;
  cr_assert_eq(weft_future_set_unhandled_info_hook(loop, on_info, &s), 0);
  cr_assert_eq(weft_future_set_unhandled_hook(loop, count_unobserved, NULL), 0);
  weft_future *f = rejected(loop, -EIO);
  weft_future_unref(f);
  cr_assert_eq(unobserved, 1);
  cr_assert_eq(last_err, -EIO);
  cr_assert_eq(s.calls, 0);
  cr_assert_eq(weft_future_set_unhandled_info_hook(loop, on_info, &s), 0);
  f = rejected(loop, -EPIPE);
  weft_future_unref(f);
  cr_assert_eq(unobserved, 1);
  cr_assert_eq(s.calls, 1);
  th_loop_finish(loop);
}

/* The default line on stderr names the op and the name. */
Test(names, default_report_names_the_future, .timeout = 10) {
  weft_loop *loop = th_loop();
  FILE *tmp = tmpfile();
  cr_assert_not_null(tmp);
  fflush(stderr);
  int saved = dup(2);
  cr_assert(saved >= 0);
  cr_assert(dup2(fileno(tmp), 2) >= 0);
  weft_future *f;
  cr_assert_eq(weft_future_new_op(loop, "weft_getaddrinfo_future", &f), 0);
  cr_assert_eq(weft_future_set_name(f, "resolve api"), 0);
  cr_assert_eq(weft_future_reject(f, -ENOENT), 0);
  weft_future_unref(f);
  cr_assert_eq(weft_future_new_op(loop, "weft_sleep_like", &f), 0);
  cr_assert_eq(weft_future_reject(f, -EIO), 0);
  weft_future_unref(f);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char out[512] = {0};
  rewind(tmp);
  size_t n = fread(out, 1, sizeof out - 1, tmp);
  fclose(tmp);
  cr_assert(n > 0);
  cr_assert_not_null(strstr(out, "made by weft_getaddrinfo_future, named "
                                 "\"resolve api\""),
                     "%s", out);
  cr_assert_not_null(strstr(out, "(ENOENT)"), "%s", out);
  cr_assert_not_null(strstr(out, "made by weft_sleep_like\n"), "%s", out);
  th_loop_finish(loop);
}

static int name_round(weft_loop *loop, void *arg) {
  (void)arg;
  weft_future *f = NULL;
  int err = weft_future_new(loop, &f);
  if (err != 0) return err;
  err = weft_future_set_name(f, "swept");
  if (err == 0)
    cr_assert_str_eq(weft_future_get_name(f), "swept");
  else
    cr_assert_null(weft_future_get_name(f));
  weft_future_unref(f);
  return err;
}

Test(names, set_name_fails_cleanly_without_memory, .timeout = 20) {
  th_alloc_sweep(name_round, NULL);
}

/* ---- weft's producers name their operations ------------------------------ */

static void *pool_job(void *arg, int *err) {
  (void)arg;
  *err = -EPERM;
  return NULL;
}

Test(names, producers_record_their_op, .timeout = 20) {
  weft_loop *loop = th_loop();
  seen_info s = {0};
  cr_assert_eq(weft_future_set_unhandled_info_hook(loop, on_info, &s), 0);
  /* a bound, non-listening socket on 127.0.0.1 refuses connects */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sin;
  cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  weft_tcp t;
  weft_future *c, *st, *p;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_tcp_connect_future(&t, (struct sockaddr *)&sin, &c), 0);
  cr_assert_str_eq(weft_future_get_op(c), "weft_tcp_connect_future");
  cr_assert_eq(weft_fs_stat_future(loop, "/nonexistent/weft-sem-test", &st), 0);
  cr_assert_str_eq(weft_future_get_op(st), "weft_fs_stat_future");
  cr_assert_eq(
      weft_pool_submit_future(loop, WEFT_LANE_CPU, pool_job, NULL, NULL, &p),
      0);
  cr_assert_str_eq(weft_future_get_op(p), "weft_pool_submit_future");
  cr_assert_eq(weft_future_set_name(c, "backend"), 0);
  /* drop them unobserved: each rejection is reported with its op */
  weft_future_unref(st);
  weft_future_unref(p);
  while (s.calls < 2)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  while (weft_future_get_state(c) == WEFT_FUTURE_PENDING)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  weft_future_unref(c);
  cr_assert_eq(s.calls, 3);
  cr_assert_eq(s.err, -ECONNREFUSED, "%s", weft_err_name(s.err));
  cr_assert_str_eq(s.op, "weft_tcp_connect_future");
  cr_assert_str_eq(s.name, "backend");
  weft_close(&t.stream.base, NULL);
  close(fd);
  th_loop_finish(loop);
}
