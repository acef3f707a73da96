/* The per-loop hosts-file table (weft_dns_set_hosts_file): forward lookups
 * answered from a file each test writes, names not in it sent to a dnsmasq
 * each test starts. No test reads the machine's /etc/hosts or depends on
 * IPv6 order: every expected list is written out in full, and where IPv4
 * and IPv6 mix, weft's own precedence sort (IPv4 before ULA) decides. */
#include <ares.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/dnsmasq.h"
#include "support/test.h"
#include "weft/future.h"

/* What dnsmasq serves: names the files below do not hold, and one
 * (alpha.test) they do, to show the file wins. */
#define DNS_HOSTS                                                              \
  "127.0.0.5 dns.test\n"                                                       \
  "127.0.0.9 alpha.test\n"                                                     \
  "fd00::b beta.test\n"

#define FILE_TEXT                                                              \
  "# weft's test hosts file\n"                                                 \
  "10.0.0.1\tAlpha.Test  al.test # trailing comment\n"                         \
  "10.0.0.2 beta.test\n"                                                       \
  "fd00::1 alpha.test\n"                                                       \
  "  10.0.0.3 alpha.test ALPHA.test\r\n"                                       \
  "not-an-address gamma.test\n"                                                \
  "10.0.0.9\n"                                                                 \
  "fd00::7 v6only.test"

typedef struct hfile {
  char dir[64], path[96];
} hfile;

static void hfile_write(hfile *h, const char *text) {
  FILE *f = fopen(h->path, "w");
  cr_assert_not_null(f);
  cr_assert_eq(fputs(text, f) >= 0, true);
  cr_assert_eq(fclose(f), 0);
}

/* A private directory and a hosts file in it (text NULL: no file). */
static void hfile_make(hfile *h, const char *text) {
  snprintf(h->dir, sizeof h->dir, "/tmp/weft-hosts-XXXXXX");
  cr_assert_not_null(mkdtemp(h->dir));
  snprintf(h->path, sizeof h->path, "%s/hosts", h->dir);
  if (text != NULL) hfile_write(h, text);
}

/* Gives the file an mtime `sec` seconds in the past: distinct from any
 * earlier one whatever the file system's timestamp granularity. */
static void hfile_touch(const hfile *h, int sec) {
  struct timespec ts[2];
  clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= sec;
  ts[1] = ts[0];
  cr_assert_eq(utimensat(AT_FDCWD, h->path, ts, 0), 0);
}

typedef struct answer {
  int calls, status, count;
  char addr[8][64]; /* numeric, in list order */
  int port[8], socktype[8];
} answer;

static void on_addr(int status, weft_addrinfo *res, void *arg) {
  answer *a = arg;
  a->calls++;
  a->status = status;
  for (const weft_addrinfo *it = res; it; it = it->next, a->count++) {
    if (a->count == 8) continue;
    const struct sockaddr *sa = it->addr;
    const void *p =
        sa->sa_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    inet_ntop(sa->sa_family, p, a->addr[a->count], sizeof a->addr[0]);
    a->port[a->count] = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    a->socktype[a->count] = it->socktype;
  }
  weft_freeaddrinfo(res);
}

/* Starts a lookup (never answered inline) into a. */
static void ask(weft_loop *loop, const char *name, int family, answer *a) {
  struct addrinfo h = {.ai_family = family, .ai_socktype = SOCK_STREAM};
  memset(a, 0, sizeof *a);
  int err = weft_getaddrinfo(loop, name, "80", &h, on_addr, a);
  cr_assert_eq(err, 0, "%s: %s", name, weft_err_name(err));
  cr_assert_eq(a->calls, 0, "%s answered inline", name);
}

/* Asserts a's list: `want` is "addr addr ..." in order, or NULL for the
 * error `status`. */
static void expect(const answer *a, const char *name, const char *want,
                   int status) {
  cr_assert_eq(a->calls, 1, "%s", name);
  if (want == NULL) {
    cr_assert_eq(a->status, status, "%s: %s", name, weft_err_name(a->status));
    return;
  }
  cr_assert_eq(a->status, 0, "%s: %s", name, weft_err_name(a->status));
  char got[512] = "";
  for (int i = 0; i < a->count && i < 8; i++) {
    cr_assert_eq(a->port[i], 80, "%s", name);
    cr_assert_eq(a->socktype[i], SOCK_STREAM, "%s", name);
    strcat(got, i ? " " : "");
    strcat(got, a->addr[i]);
  }
  cr_assert_str_eq(got, want, "%s", name);
}

static void start_dns_with(th_dnsmasq *d, weft_loop *loop, const char *hosts) {
  int started = th_dnsmasq_start(d, hosts);
  cr_assert_eq(started, 0, "dnsmasq did not start: %s", strerror(-started));
  cr_assert_eq(weft_dns_set_servers(loop, d->server), 0);
}

static void start_dns(th_dnsmasq *d, weft_loop *loop) {
  start_dns_with(d, loop, DNS_HOSTS);
}

static void use_file(weft_loop *loop, const hfile *h) {
  int err = weft_dns_set_hosts_file(loop, h->path);
  cr_assert_eq(err, 0, "%s", weft_err_name(err));
}

static void finish(weft_loop *loop, th_dnsmasq *d, hfile *h) {
  if (d != NULL) th_dnsmasq_stop(d);
  th_rm_tree(h->dir);
  th_loop_finish(loop);
}

/* ---- answers --------------------------------------------------------------
 */

/* Every line naming the host (canonical or alias, any case) in file order,
 * filtered by family; names the file lacks, or holds no address of the
 * asked family for, go to DNS, as with c-ares' "fb" lookups. */
Test(dns_hosts, file_answers_then_dns, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  hfile h;
  start_dns(&d, loop);
  hfile_make(&h, FILE_TEXT);
  use_file(loop, &h);
  static const struct {
    const char *name;
    int family;
    const char *want;
  } c[] = {
      {"alpha.test", AF_INET, "10.0.0.1 10.0.0.3"},
      {"ALPHA.TEST", AF_UNSPEC, "10.0.0.1 10.0.0.3 fd00::1"},
      {"alpha.test", AF_INET6, "fd00::1"},
      {"Al.Test", AF_INET, "10.0.0.1"},      /* an alias */
      {"al.test", AF_INET6, NULL},           /* nothing: DNS, NXDOMAIN */
      {"beta.test", AF_INET, "10.0.0.2"},    /* file */
      {"beta.test", AF_INET6, "fd00::b"},    /* no IPv6 in the file: DNS */
      {"v6only.test", AF_UNSPEC, "fd00::7"}, /* last line, no newline */
      {"gamma.test", AF_UNSPEC, NULL},       /* bad address: DNS */
      {"dns.test", AF_UNSPEC, "127.0.0.5"},  /* DNS */
      {"alpha.test.", AF_INET, "127.0.0.9"}, /* not the file's name */
      {"localhost", AF_INET, "127.0.0.1"},   /* RFC 6761, file lacks it */
      {"localhost", AF_UNSPEC, "::1 127.0.0.1"},
  };
  enum { N = sizeof c / sizeof c[0] };
  answer a[N];
  for (int i = 0; i < N; i++)
    ask(loop, c[i].name, c[i].family, &a[i]);
  th_run(loop);
  for (int i = 0; i < N; i++)
    expect(&a[i], c[i].name, c[i].want, WEFT_EDNS_NOTFOUND);
  finish(loop, &d, &h);
}

/* The same lookups through c-ares itself (lookups "f" and CARES_HOSTS on
 * the same file) give the same addresses in the same order: per family,
 * since weft then sorts IPv4 before ULA (all IPv6 here is ULA, so the
 * sort keeps each family's file order). "localhost" is left out: c-ares
 * 1.18.1 leaks its first copy of the name when it falls back to the
 * loopback addresses (file_answers_then_dns checks weft's answer). */
typedef struct ares_answer {
  int status;
  char list[2][512]; /* [0] IPv4, [1] IPv6: "addr/port ..." */
} ares_answer;

static void list_add(char list[2][512], const struct sockaddr *sa) {
  char s[64];
  bool v4 = sa->sa_family == AF_INET;
  const void *p =
      v4 ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
         : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
  inet_ntop(sa->sa_family, p, s, sizeof s);
  char *l = list[v4 ? 0 : 1];
  snprintf(l + strlen(l), 512 - strlen(l), "%s/%d ", s,
           ntohs(((const struct sockaddr_in *)sa)->sin_port));
}

static void on_ares(void *arg, int status, int timeouts,
                    struct ares_addrinfo *res) {
  (void)timeouts;
  ares_answer *a = arg;
  a->status = status;
  for (struct ares_addrinfo_node *n = res ? res->nodes : NULL; n;
       n = n->ai_next)
    list_add(a->list, n->ai_addr);
  if (res != NULL) ares_freeaddrinfo(res);
}

static void on_weft_list(int status, weft_addrinfo *res, void *arg) {
  ares_answer *a = arg;
  a->status = status;
  for (weft_addrinfo *it = res; it; it = it->next)
    list_add(a->list, it->addr);
  weft_freeaddrinfo(res);
}

Test(dns_hosts, agrees_with_c_ares, .timeout = 20) {
  static const char text[] =
      FILE_TEXT "\n"
                "10.1.1.1 dup.test dup.test DUP.TEST\n"
                "10.1.1.2\tdup.test\t\n"
                "0x0a010103 hex.test\n"
                "10.1.1.4/8 cidr.test\n"
                "10.1.1.5 \v tabbed.test\f\n"
                "::ffff:10.1.1.6 mapped.test\n"
                "fd00::9 dup.test\n"
                "10.1.1.7 many a1 a2 a3 a4 a5 a6 a7 a8 a9 dup.test\n"
                "#10.1.1.8 commented.test\n"
                "10.1.1.9 x.test#glued.test\n";
  static const char *const names[] = {"alpha.test",
                                      "ALPHA.TEST",
                                      "al.test",
                                      "beta.test",
                                      "gamma.test",
                                      "dup.test",
                                      "hex.test",
                                      "cidr.test",
                                      "tabbed.test",
                                      "mapped.test",
                                      "a9",
                                      "commented.test",
                                      "x.test",
                                      "glued.test",
                                      "v6only.test",
                                      "none.test",
                                      "many",
                                      "LOCALHOST",
                                      ""};
  static const char *const services[] = {NULL, "80", "http", "0x50"};
  static const int families[] = {AF_UNSPEC, AF_INET, AF_INET6};
  hfile h;
  hfile_make(&h, text);
  cr_assert_eq(setenv("CARES_HOSTS", h.path, 1), 0);
  cr_assert_eq(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
  ares_channel ch;
  struct ares_options o = {.lookups = (char *)"f"};
  cr_assert_eq(ares_init_options(&ch, &o, ARES_OPT_LOOKUPS), ARES_SUCCESS);
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  start_dns_with(&d, loop, "127.0.0.5 dns.test\n"); /* none of the names */
  use_file(loop, &h);
  int compared = 0;
  for (size_t n = 0; n < sizeof names / sizeof names[0]; n++)
    for (size_t s = 0; s < 4; s++)
      for (size_t f = 0; f < 3; f++) {
        struct ares_addrinfo_hints ah = {ARES_AI_ENVHOSTS | ARES_AI_NOSORT,
                                         families[f], SOCK_STREAM, 0};
        ares_answer want = {.status = -1}, got = {.status = 1};
        ares_getaddrinfo(ch, names[n], services[s], &ah, on_ares, &want);
        cr_assert_neq(want.status, -1, "c-ares answered later");
        struct addrinfo wh = {.ai_family = families[f],
                              .ai_socktype = SOCK_STREAM};
        cr_assert_eq(weft_getaddrinfo(loop, names[n], services[s], &wh,
                                      on_weft_list, &got),
                     0);
        th_run(loop);
        const char *what = names[n];
        if (want.status != ARES_SUCCESS) { /* weft asked DNS: not there */
          cr_assert_neq(got.status, 0, "%s %s %d", what, services[s],
                        families[f]);
          continue;
        }
        cr_assert_eq(got.status, 0, "%s: %s", what, weft_err_name(got.status));
        for (int k = 0; k < 2; k++)
          cr_assert_str_eq(got.list[k], want.list[k], "%s %s %d", what,
                           services[s] ? services[s] : "-", families[f]);
        /* "http" needs /etc/services, which a fresh root may lack: those
         * answers are compared when c-ares has them, and not counted */
        compared += services[s] == NULL || strcmp(services[s], "http") != 0;
      }
  /* of the 171 other lookups, those c-ares answers from the file */
  cr_assert_eq(compared, 87, "%d compared", compared);
  ares_destroy(ch);
  ares_library_cleanup();
  finish(loop, &d, &h);
}

/* An edit (a new mtime) is seen once WEFT_DNS_HOSTS_RECHECK_MS of loop
 * time have passed since the last check, not before. */
static void on_wait(weft_timer *t) { weft_close(&t->base, NULL); }

static void wait_ms(weft_loop *loop, uint64_t ms) {
  weft_timer t;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  cr_assert_eq(weft_timer_start(&t, on_wait, ms, 0), 0);
  th_run(loop);
}

Test(dns_hosts, edit_seen_after_the_recheck_bound, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  hfile h;
  start_dns(&d, loop);
  hfile_make(&h, "10.0.0.1 alpha.test\n");
  hfile_touch(&h, 20);
  use_file(loop, &h);
  answer a;
  ask(loop, "alpha.test", AF_INET, &a);
  th_run(loop);
  expect(&a, "first", "10.0.0.1", 0);
  hfile_write(&h, "10.0.0.2 alpha.test\n");
  hfile_touch(&h, 10);
  ask(loop, "alpha.test", AF_INET, &a); /* within the bound: not re-checked */
  th_run(loop);
  expect(&a, "stale", "10.0.0.1", 0);
  wait_ms(loop, WEFT_DNS_HOSTS_RECHECK_MS);
  ask(loop, "alpha.test", AF_INET, &a);
  th_run(loop);
  expect(&a, "re-read", "10.0.0.2", 0);
  /* removed: no names (alpha.test then comes from DNS) */
  cr_assert_eq(unlink(h.path), 0);
  wait_ms(loop, WEFT_DNS_HOSTS_RECHECK_MS);
  ask(loop, "alpha.test", AF_INET, &a);
  th_run(loop);
  expect(&a, "removed", "127.0.0.9", 0);
  finish(loop, &d, &h);
}

/* A missing file holds no names; c-ares then fails "localhost" as it does
 * without /etc/hosts (it never sends it to DNS). The file appearing later
 * is picked up after the bound. */
Test(dns_hosts, missing_file_is_empty, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  hfile h;
  start_dns(&d, loop);
  hfile_make(&h, NULL);
  use_file(loop, &h);
  answer a, lo;
  ask(loop, "alpha.test", AF_INET, &a);
  ask(loop, "localhost", AF_INET, &lo);
  th_run(loop);
  expect(&a, "alpha.test", "127.0.0.9", 0);
  expect(&lo, "localhost", NULL, WEFT_EDNS_CONNREFUSED);
  hfile_write(&h, "10.0.0.4 alpha.test\n");
  wait_ms(loop, WEFT_DNS_HOSTS_RECHECK_MS);
  ask(loop, "alpha.test", AF_INET, &a);
  ask(loop, "localhost", AF_INET6, &lo);
  th_run(loop);
  expect(&a, "alpha.test", "10.0.0.4", 0);
  expect(&lo, "localhost", "::1", 0); /* the file exists, lacks it */
  finish(loop, &d, &h);
}

/* With the hosts file off, the table is not consulted at all. */
Test(dns_hosts, hosts_file_off_ignores_the_file, .timeout = 10) {
  weft_loop *loop = th_loop();
  th_dnsmasq d;
  hfile h;
  start_dns(&d, loop);
  hfile_make(&h, FILE_TEXT);
  use_file(loop, &h);
  cr_assert_eq(weft_dns_use_hosts_file(loop, false), 0);
  answer a;
  ask(loop, "alpha.test", AF_INET, &a);
  th_run(loop);
  expect(&a, "off", "127.0.0.9", 0);
  cr_assert_eq(weft_dns_use_hosts_file(loop, true), 0);
  ask(loop, "alpha.test", AF_INET, &a);
  th_run(loop);
  expect(&a, "on", "10.0.0.1 10.0.0.3", 0);
  finish(loop, &d, &h);
}

/* The future form, and a cancel that beats the deferred answer. */
Test(dns_hosts, future_form_and_cancel, .timeout = 10) {
  weft_loop *loop = th_loop();
  hfile h;
  hfile_make(&h, FILE_TEXT);
  use_file(loop, &h);
  weft_future *f = NULL, *g = NULL;
  cr_assert_eq(weft_getaddrinfo_future(loop, "beta.test", "7", NULL, &f), 0);
  cr_assert_eq(weft_getaddrinfo_future(loop, "beta.test", "7", NULL, &g), 0);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_PENDING);
  cr_assert_eq(weft_future_cancel(g), 0);
  th_run(loop);
  cr_assert_eq(weft_future_get_state(f), WEFT_FUTURE_FULFILLED, "%s",
               weft_err_name(weft_future_error(f)));
  const weft_addrinfo *ai = weft_future_value(f);
  cr_assert_eq(ai->family, AF_INET);
  cr_assert_null(ai->next);
  const struct sockaddr_in *in = (const struct sockaddr_in *)ai->addr;
  cr_assert_eq(in->sin_addr.s_addr, htonl(0x0a000002));
  cr_assert_eq(ntohs(in->sin_port), 7);
  cr_assert_eq(weft_future_error(g), -ECANCELED);
  weft_future_unref(f);
  weft_future_unref(g);
  finish(loop, NULL, &h);
}

/* ---- caps and bad input ---------------------------------------------------
 */

static void expect_efbig(const char *text_or_null, size_t big_bytes) {
  weft_loop *loop = th_loop();
  hfile h;
  hfile_make(&h, text_or_null);
  if (text_or_null == NULL) { /* a file one byte over the cap */
    int fd = open(h.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, (off_t)big_bytes), 0);
    close(fd);
  }
  use_file(loop, &h);
  answer a;
  struct addrinfo hi = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  cr_assert_eq(weft_getaddrinfo(loop, "alpha.test", NULL, &hi, on_addr, &a),
               -EFBIG);
  /* nothing held, and the loop still answers numeric hosts */
  memset(&a, 0, sizeof a);
  cr_assert_eq(weft_getaddrinfo(loop, "10.9.9.9", "80", &hi, on_addr, &a), 0);
  th_run(loop);
  expect(&a, "numeric", "10.9.9.9", 0);
  finish(loop, NULL, &h);
}

Test(dns_hosts, file_over_the_byte_cap_is_efbig, .timeout = 10) {
  expect_efbig(NULL, WEFT_DNS_HOSTS_MAX_BYTES + 1);
}

Test(dns_hosts, file_over_the_name_cap_is_efbig, .timeout = 10) {
  size_t n = WEFT_DNS_HOSTS_MAX_NAMES + 1, len = 0;
  char *text = malloc(n * 8 + 16);
  cr_assert_not_null(text);
  len += (size_t)sprintf(text, "10.0.0.1");
  for (size_t i = 0; i < n; i++)
    len += (size_t)sprintf(text + len, " %zx", i);
  cr_assert_lt(len, (size_t)WEFT_DNS_HOSTS_MAX_BYTES);
  expect_efbig(text, 0);
  free(text);
}

Test(dns_hosts, set_hosts_file_bad_input, .timeout = 10) {
  weft_loop *loop = th_loop();
  char longp[PATH_MAX + 8];
  memset(longp, 'a', sizeof longp - 1);
  longp[0] = '/';
  longp[sizeof longp - 1] = '\0';
  cr_assert_eq(weft_dns_set_hosts_file(NULL, "/etc/hosts"), -EINVAL);
  cr_assert_eq(weft_dns_set_hosts_file(loop, NULL), -EINVAL);
  cr_assert_eq(weft_dns_set_hosts_file(loop, ""), -EINVAL);
  cr_assert_eq(weft_dns_set_hosts_file(loop, "relative/hosts"), -EINVAL);
  cr_assert_eq(weft_dns_set_hosts_file(loop, longp), -ENAMETOOLONG);
  longp[PATH_MAX - 1] = '\0'; /* PATH_MAX - 1 bytes: accepted */
  cr_assert_eq(weft_dns_set_hosts_file(loop, longp), 0);
  cr_assert_eq(weft_dns_set_hosts_file(loop, "/etc/hosts"), 0); /* default */
  cr_assert_eq(weft_loop_alive(loop), false);
  answer a;
  struct addrinfo hi = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  memset(&a, 0, sizeof a);
  cr_assert_eq(weft_getaddrinfo(loop, "127.0.0.1", "80", &hi, on_addr, &a), 0);
  th_run(loop);
  expect(&a, "numeric", "127.0.0.1", 0);
  th_loop_finish(loop);
}

/* ---- allocation failure ---------------------------------------------------
 */

/* Loading the table, answering from it, and setting the path can each
 * run out of memory: -ENOMEM from the start call, nothing leaked, and the
 * next lookup loads the table again. */
static int table_round(weft_loop *loop, void *arg) {
  const hfile *h = arg;
  int rc = weft_dns_set_hosts_file(loop, h->path);
  answer a;
  memset(&a, 0, sizeof a);
  struct addrinfo hi = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  if (rc == 0)
    rc = weft_getaddrinfo(loop, "alpha.test", "80", &hi, on_addr, &a);
  if (rc != 0) return rc;
  th_run(loop);
  expect(&a, "alpha.test", "10.0.0.1 10.0.0.3 fd00::1", 0);
  return 0;
}

Test(dns_hosts, allocation_failure_on_table, .timeout = 20) {
  hfile h;
  hfile_make(&h, FILE_TEXT);
  th_alloc_sweep_run(&(th_sweep){
      .op = table_round, .arg = &h, .strict = true, .max_rounds = 100});
  th_rm_tree(h.dir);
}
