/* File-descriptor exhaustion: every call that needs an fd fails with a
 * clean -EMFILE (nothing leaked, the loop still usable), and every call
 * that needs none (pool jobs, signals, timers, cross-thread posts) still
 * works when the process has no fd left. Never an abort.
 *
 * Each test runs in its own process (Criterion's workers, plainrun's
 * forks), so lowering RLIMIT_NOFILE is local to it. The sanitizers' own
 * start-up is long done when a test fills its fds, and every test gives
 * them back (and restores the limit) before it finishes the loop, so the
 * leak checker at exit has the fds it needs. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "support/dnsmasq.h"
#include "support/test.h"

#define LIMIT 256
#define NAME(err) weft_err_name(err)

/* ---- filling the fd table ------------------------------------------------ */

static struct {
  int fd[LIMIT];
  int n;
  struct rlimit old;
} F;

/* Lowers the soft limit and takes every fd left (dup of /dev/null). */
static void fill(void) {
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &F.old), 0);
  struct rlimit r = F.old;
  if (r.rlim_cur > LIMIT) r.rlim_cur = LIMIT;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &r), 0);
  F.n = 0;
  int base = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (base >= 0) F.fd[F.n++] = base;
  int fd;
  while (base >= 0 && F.n < LIMIT &&
         (fd = fcntl(base, F_DUPFD_CLOEXEC, 0)) >= 0)
    F.fd[F.n++] = fd;
  cr_assert_eq(errno, EMFILE, "fds filled: %s", strerror(errno));
  cr_assert_eq(fcntl(0, F_DUPFD_CLOEXEC, 0), -1);
}

/* Gives `k` fds back. */
static void spare(int k) {
  while (k-- > 0 && F.n > 0)
    close(F.fd[--F.n]);
}

/* Gives every fd back and restores the limit. */
static void unfill(void) {
  spare(F.n);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &F.old), 0);
}

/* How many fds can still be opened (the fd table is left as it was). */
static int free_fds(void) {
  int got[LIMIT], n = 0, fd;
  while (n < LIMIT && (fd = fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0)
    got[n++] = fd;
  if (n == 0) { /* fd 0 itself may be closed: try another source */
    while (n < LIMIT && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
      got[n++] = fd;
  }
  for (int i = 0; i < n; i++)
    close(got[i]);
  return n;
}

/* ---- loops ----------------------------------------------------------------
 */

Test(rlimit, loop_new_reports_emfile_until_it_has_its_fds, .timeout = 10) {
  fill();
  weft_loop *loop = NULL;
  int failures = 0, err;
  /* the epoll fd, weft's wake-up eventfd, libev's wake-up eventfd */
  while ((err = weft_loop_new(&loop, NULL)) != 0 && failures < 8) {
    cr_assert_eq(err, -EMFILE, "%s", NAME(err));
    cr_assert_null(loop);
    cr_assert_eq(weft_alloc_live(), 0,
                 "a failed weft_loop_new() holds nothing");
    cr_assert_eq(free_fds(), failures, "nor any fd");
    failures++;
    spare(1);
  }
  cr_assert_eq(err, 0, "%s", NAME(err));
  cr_assert_eq(failures, 3);
  unfill();
  th_loop_finish(loop);
}

Test(rlimit, explicit_backend_reports_emfile, .timeout = 10) {
  fill();
  weft_loop *loop = NULL;
  weft_loop_options o = {.ev_flags = EVBACKEND_EPOLL};
  int err = weft_loop_new(&loop, &o);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  cr_assert_eq(weft_alloc_live(), 0);
  spare(3);
  cr_assert_eq(weft_loop_new(&loop, &o), 0);
  unfill();
  th_loop_finish(loop);
}

static int from_ev_done;
static void noop_work(weft_work *w) { (void)w; }
static void note_done(weft_work *w, int status) {
  (void)w;
  cr_assert_eq(status, 0, "%s", NAME(status));
  from_ev_done++;
}

Test(rlimit, loop_from_ev_reports_emfile, .timeout = 10) {
  struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
  cr_assert_not_null(ev);
  fill();
  weft_loop *loop = NULL;
  int err, failures = 0;
  while ((err = weft_loop_from_ev(&loop, ev, NULL)) != 0 && failures < 8) {
    cr_assert_eq(err, -EMFILE, "%s", NAME(err));
    cr_assert_eq(weft_alloc_live(), 0);
    failures++;
    spare(1);
  }
  cr_assert_eq(err, 0, "%s", NAME(err));
  cr_assert_eq(failures, 2, "weft's eventfd and libev's");
  /* no fd left, and the wrapped loop's first pool job needs none */
  weft_work w;
  from_ev_done = 0;
  cr_assert_eq(weft_work_submit(loop, &w, WEFT_LANE_CPU, noop_work, note_done),
               0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(from_ev_done, 1);
  unfill();
  th_loop_finish(loop);
  ev_loop_destroy(ev);
}

/* ---- what needs no fd works with none left ------------------------------- */

static int work_ok, fs_calls, fs_open_result, stat_result;
static atomic_int work_ran;
static void count_work(weft_work *w) {
  (void)w;
  atomic_fetch_add(&work_ran, 1);
}
static void count_done(weft_work *w, int status) {
  (void)w;
  cr_assert_eq(status, 0, "%s", NAME(status));
  work_ok++;
}
static void *future_work(void *arg, int *err) {
  (void)err;
  return arg;
}
static void on_open(weft_fs_req *req) {
  fs_calls++;
  fs_open_result = (int)req->result;
  weft_fs_req_cleanup(req);
}
static void on_stat(weft_fs_req *req) {
  fs_calls++;
  stat_result = (int)req->result;
  weft_fs_req_cleanup(req);
}

/* The abort: libev made its wake-up fd on the first pool job. */
Test(rlimit, first_pool_job_with_no_fd_left, .timeout = 20) {
  weft_loop *loop = th_loop();
  work_ok = fs_calls = 0;
  atomic_store(&work_ran, 0);
  fill();
  weft_work w;
  int err = weft_work_submit(loop, &w, WEFT_LANE_CPU, count_work, count_done);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_future *f = NULL;
  static int token;
  err = weft_pool_submit_future(loop, WEFT_LANE_CPU, future_work, &token, NULL,
                                &f);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_fs_req open_req, stat_req;
  cr_assert_eq(weft_fs_open(loop, &open_req, "/dev/null", O_RDONLY, 0, on_open),
               0);
  cr_assert_eq(weft_fs_stat(loop, &stat_req, "/", on_stat), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(work_ok, 1);
  cr_assert_eq(atomic_load(&work_ran), 1);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED);
  cr_assert_eq(weft_future_value(f), &token);
  weft_future_unref(f);
  cr_assert_eq(fs_calls, 2);
  cr_assert_eq(fs_open_result, -EMFILE, "%s", NAME(fs_open_result));
  cr_assert_eq(stat_result, 0, "%s", NAME(stat_result));
  /* an fd given back: the same call succeeds */
  spare(1);
  cr_assert_eq(weft_fs_open(loop, &open_req, "/dev/null", O_RDONLY, 0, on_open),
               0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(fs_calls, 3);
  cr_assert_geq(fs_open_result, 0, "%s", NAME(fs_open_result));
  close(fs_open_result);
  unfill();
  th_loop_finish(loop);
}

typedef struct sig {
  weft_signal s;
  int calls;
} sig;
static void on_sig(weft_signal *s, int signum) {
  cr_assert_eq(signum, SIGUSR1);
  ((sig *)s)->calls++;
  cr_assert_eq(weft_signal_stop(s), 0);
}
static void raise_usr1(void *arg) {
  (void)arg;
  raise(SIGUSR1);
}

static void signal_with_no_fd_left(unsigned ev_flags) {
  weft_loop *loop = NULL;
  weft_loop_options o = {.ev_flags = ev_flags};
  cr_assert_eq(weft_loop_new(&loop, &o), 0);
  fill();
  sig x = {.calls = 0};
  cr_assert_eq(weft_signal_init(loop, &x.s), 0);
  int err = weft_signal_start(&x.s, on_sig, SIGUSR1);
  cr_assert_eq(err, 0, "%s", NAME(err));
  cr_assert_eq(weft_call_soon(loop, raise_usr1, NULL), 0);
  while (x.calls == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(x.calls, 1);
  unfill();
  th_loop_finish(loop);
}

Test(rlimit, signal_start_with_no_fd_left, .timeout = 10) {
  signal_with_no_fd_left(0);
}

Test(rlimit, signalfd_loop_signal_start_with_no_fd_left, .timeout = 10) {
  signal_with_no_fd_left(EVFLAG_SIGNALFD);
}

#define POSTS 100
static int posted;
static weft_loop *post_loop;
static void on_post(void *arg) {
  (void)arg;
  if (++posted == POSTS) weft_loop_unref(post_loop);
}
static void *poster(void *arg) {
  for (int i = 0; i < POSTS; i++)
    cr_assert_eq(weft_call_soon_threadsafe(arg, on_post, NULL), 0);
  return NULL;
}

Test(rlimit, call_soon_threadsafe_with_no_fd_left, .timeout = 10) {
  post_loop = th_loop();
  posted = 0;
  fill();
  weft_loop_ref(post_loop);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, poster, post_loop), 0);
  weft_loop_run(post_loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(pthread_join(t, NULL), 0);
  cr_assert_eq(posted, POSTS);
  unfill();
  th_loop_finish(post_loop);
}

static int timer_calls;
static void on_timer(weft_timer *t) {
  (void)t;
  timer_calls++;
}

Test(rlimit, timers_with_no_fd_left, .timeout = 10) {
  weft_loop *loop = th_loop();
  fill();
  timer_calls = 0;
  weft_timer t;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(&t, on_timer, 1, 0), 0);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(timer_calls, 1);
  unfill();
  th_loop_finish(loop);
}

/* ---- what needs an fd fails cleanly
 * ------------------------------------------ */

static int exits;
static int64_t exit_status;
static void on_exit_cb(weft_process *p, int64_t status, int term_signal) {
  (void)p;
  cr_assert_eq(term_signal, 0);
  exit_status = status;
  exits++;
}

static int spawn_true(weft_loop *loop, weft_process *p, weft_stdio *stdio,
                      unsigned n) {
  static char *const argv[] = {"true", NULL};
  weft_process_options o = {.file = "/bin/true",
                            .argv = argv,
                            .stdio = stdio,
                            .stdio_count = n,
                            .exit_cb = on_exit_cb};
  return weft_spawn(loop, p, &o);
}

Test(rlimit, spawn_reports_emfile, .timeout = 20) {
  weft_loop *loop = th_loop();
  exits = 0;
  weft_pipe out;
  cr_assert_eq(weft_pipe_init(loop, &out), 0);
  weft_process p[3];
  weft_stdio piped[2] = {{.kind = WEFT_STDIO_INHERIT},
                         {.kind = WEFT_STDIO_PIPE, .pipe = &out}};
  weft_stdio ignored[1] = {{.kind = WEFT_STDIO_IGNORE}};
  fill();
  /* no fd: the pipe, /dev/null, the child's pidfd each fail; the child
   * that could not be watched is killed and reaped */
  int err = spawn_true(loop, &p[0], piped, 2);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = spawn_true(loop, &p[0], ignored, 1);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = spawn_true(loop, &p[0], NULL, 0);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  cr_assert_eq(free_fds(), 0, "no fd kept by a failed spawn");
  /* one fd: still not enough for a pipe; enough for /dev/null (closed
   * after the spawn) and then the pidfd */
  spare(1);
  err = spawn_true(loop, &p[0], piped, 2);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  cr_assert_eq(free_fds(), 1);
  err = spawn_true(loop, &p[0], ignored, 1);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(exits, 1);
  cr_assert_eq(exit_status, 0);
  err = spawn_true(loop, &p[1], NULL, 0);
  cr_assert_eq(err, 0, "the reaped child's pidfd was given back: %s",
               NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(exits, 2);
  /* two fds: the pipe, then the pidfd in the child end's place */
  spare(1);
  err = spawn_true(loop, &p[2], piped, 2);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(exits, 3);
  cr_assert_eq(exit_status, 0);
  unfill();
  th_loop_finish(loop);
}

/* Without pidfds (forced) a child is watched through SIGCHLD: the first
 * spawn starts an ev_signal, which needs no fd either. */
Test(rlimit, spawn_without_pidfd_needs_no_fd, .timeout = 20) {
  cr_assert_eq(setenv("WEFT_PROCESS_NO_PIDFD", "1", 1), 0);
  weft_loop *loop = th_loop();
  exits = 0;
  exit_status = -1;
  weft_process p;
  fill();
  int err = spawn_true(loop, &p, NULL, 0);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(exits, 1);
  cr_assert_eq(exit_status, 0);
  unfill();
  th_loop_finish(loop);
  unsetenv("WEFT_PROCESS_NO_PIDFD");
}

static int connects;
static void on_connect(weft_connect_req *req, int status) {
  (void)req;
  (void)status;
  connects++;
}

Test(rlimit, sockets_report_emfile, .timeout = 10) {
  weft_loop *loop = th_loop();
  connects = 0;
  struct sockaddr_in any;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &any), 0);
  struct sockaddr_in closed;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 9, &closed), 0);
  weft_tcp t, c;
  weft_udp u;
  weft_pipe p, q, pa, pb;
  cr_assert_eq(weft_tcp_init(loop, &t), 0);
  cr_assert_eq(weft_tcp_init(loop, &c), 0);
  cr_assert_eq(weft_udp_init(loop, &u), 0);
  cr_assert_eq(weft_pipe_init(loop, &p), 0);
  cr_assert_eq(weft_pipe_init(loop, &q), 0);
  cr_assert_eq(weft_pipe_init(loop, &pa), 0);
  cr_assert_eq(weft_pipe_init(loop, &pb), 0);
  const char name[] = "\0weft-rlimit-test";
  fill();
  weft_connect_req req;
  int err;
  err = weft_tcp_bind(&t, (struct sockaddr *)&any, 0);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = weft_tcp_connect(&req, &c, (struct sockaddr *)&closed, on_connect);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = weft_udp_bind(&u, (struct sockaddr *)&any, 0);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = weft_udp_connect(&u, (struct sockaddr *)&closed);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = weft_pipe_bind(&p, name, sizeof name - 1);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = weft_pipe_connect(&req, &q, name, sizeof name - 1, on_connect);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  err = weft_pipe_pair(loop, &pa, &pb);
  cr_assert_eq(err, -EMFILE, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(connects, 0, "a failed start never calls back");
  cr_assert_eq(free_fds(), 0);
  /* the same handles work once fds are back */
  spare(4);
  cr_assert_eq(weft_tcp_bind(&t, (struct sockaddr *)&any, 0), 0);
  cr_assert_eq(weft_udp_bind(&u, (struct sockaddr *)&any, 0), 0);
  cr_assert_eq(weft_pipe_pair(loop, &pa, &pb), 0);
  cr_assert_eq(free_fds(), 0);
  unfill();
  th_loop_finish(loop);
}

/* accept under EMFILE pauses the listener (no error callback); once an fd
 * is free, the retry accepts the waiting connection. */
static int conn_ok, conn_err;
static weft_tcp *accepted;
static void on_connection(weft_stream *server, int status) {
  if (status != 0) {
    conn_err++;
    return;
  }
  cr_assert_eq(weft_tcp_init(weft_handle_loop(&server->base), accepted), 0);
  int err = weft_stream_accept(server, &accepted->stream);
  cr_assert_eq(err, 0, "%s", NAME(err));
  conn_ok++;
}

Test(rlimit, accept_waits_for_a_free_fd, .timeout = 10) {
  weft_loop *loop = th_loop();
  conn_ok = conn_err = 0;
  weft_tcp server, client;
  accepted = &client;
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &addr), 0);
  cr_assert_eq(weft_tcp_init(loop, &server), 0);
  cr_assert_eq(weft_tcp_bind(&server, (struct sockaddr *)&addr, 0), 0);
  cr_assert_eq(weft_tcp_listen(&server, 16, on_connection), 0);
  cr_assert_eq(weft_tcp_getsockname(&server, (struct sockaddr *)&addr, &len),
               0);
  int peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(peer, 0);
  cr_assert_eq(connect(peer, (struct sockaddr *)&addr, sizeof addr), 0);
  fill();
  /* the listener is readable; accept finds no fd, pauses, retries on its
   * timer and pauses again */
  for (int i = 0; i < 3; i++)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(conn_ok, 0);
  cr_assert_eq(conn_err, 0, "EMFILE is not reported as an accept error");
  spare(1);
  while (conn_ok == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(conn_ok, 1);
  cr_assert_eq(conn_err, 0);
  unfill();
  close(peer);
  th_loop_finish(loop);
}

/* The retry is a weft timer: a host that polls the backend fd itself learns
 * from weft_loop_backend_timeout() when to run the loop again (it used to
 * be a raw ev_timer that the function did not see: -1, sleep forever). */
Test(rlimit, accept_retry_shows_in_backend_timeout, .timeout = 10) {
  weft_loop *loop = th_loop();
  conn_ok = conn_err = 0;
  weft_tcp server, client;
  accepted = &client;
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  cr_assert_eq(weft_ip4_addr("127.0.0.1", 0, &addr), 0);
  cr_assert_eq(weft_tcp_init(loop, &server), 0);
  cr_assert_eq(weft_tcp_bind(&server, (struct sockaddr *)&addr, 0), 0);
  cr_assert_eq(weft_tcp_listen(&server, 16, on_connection), 0);
  cr_assert_eq(weft_tcp_getsockname(&server, (struct sockaddr *)&addr, &len),
               0);
  cr_assert_eq(weft_loop_backend_timeout(loop), 0, "fd set changed: run now");
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(weft_loop_backend_timeout(loop), -1, "nothing timed yet");
  int peer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(peer, 0);
  cr_assert_eq(connect(peer, (struct sockaddr *)&addr, sizeof addr), 0);
  fill();
  /* the first turn finds the listener readable, accept finds no fd and the
   * listener pauses; the second settles the fd set */
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  weft_loop_run(loop, WEFT_RUN_NOWAIT);
  cr_assert_eq(conn_ok, 0);
  cr_assert_eq(conn_err, 0);
  int ms = weft_loop_backend_timeout(loop);
  cr_assert(ms >= 0 && ms <= 20,
            "backend timeout %d ms, the retry is due within 20", ms);
  spare(1);
  while (conn_ok == 0)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(conn_ok, 1);
  cr_assert_eq(conn_err, 0);
  unfill();
  close(peer);
  th_loop_finish(loop);
}

/* ---- DNS
 * ------------------------------------------------------------------------ */

static int dns_calls, dns_status;
static char dns_addr[64];
static void on_addrinfo(int status, weft_addrinfo *res, void *arg) {
  (void)arg;
  dns_calls++;
  dns_status = status;
  dns_addr[0] = '\0';
  if (res != NULL) weft_ip_name(res->addr, dns_addr, sizeof dns_addr);
  weft_freeaddrinfo(res);
}

/* The channel's creation and a numeric lookup need no fd. A query that
 * needs a socket fails through its callback with -EMFILE (c-ares says "no
 * server reachable"; weft makes c-ares' sockets itself and knows why),
 * never an abort; once an fd is back the same loop resolves. */
Test(rlimit, dns_with_no_fd_left, .timeout = 20) {
  th_dnsmasq d;
  int err = th_dnsmasq_start(&d, "127.0.0.5 host.test\n");
  cr_assert_eq(err, 0, "dnsmasq: %s", NAME(err));
  weft_loop *loop = th_loop();
  dns_calls = 0;
  struct addrinfo numeric = {.ai_family = AF_INET, .ai_flags = AI_NUMERICHOST};
  struct addrinfo by_name = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  fill();
  /* the loop's first DNS call: the channel is made with no fd left */
  err = weft_dns_set_servers(loop, d.server);
  cr_assert_eq(err, 0, "%s", NAME(err));
  err = weft_getaddrinfo(loop, "127.0.0.1", "80", &numeric, on_addrinfo, NULL);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(dns_calls, 1);
  cr_assert_eq(dns_status, 0, "%s", NAME(dns_status));
  cr_assert_str_eq(dns_addr, "127.0.0.1");
  err = weft_getaddrinfo(loop, "host.test", "80", &by_name, on_addrinfo, NULL);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(dns_calls, 2);
  cr_assert_eq(dns_status, -EMFILE, "%s", NAME(dns_status));
  cr_assert_eq(free_fds(), 0, "no socket left behind");
  spare(1);
  err = weft_getaddrinfo(loop, "host.test", "80", &by_name, on_addrinfo, NULL);
  cr_assert_eq(err, 0, "%s", NAME(err));
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  cr_assert_eq(dns_calls, 3);
  cr_assert_eq(dns_status, 0, "%s", NAME(dns_status));
  cr_assert_str_eq(dns_addr, "127.0.0.5");
  unfill();
  th_loop_finish(loop);
  th_dnsmasq_stop(&d);
}
