/* DNS lookups: weft (c-ares on the loop) against libuv (uv_getaddrinfo:
 * glibc's getaddrinfo on libuv's thread pool). 10 chains run concurrently;
 * each starts its next lookup from the previous one's callback.
 *
 * dns_localhost: both resolve "localhost" from /etc/hosts: weft from its
 * per-loop table of the file (no system call; see docs/dns.md, "The hosts
 * file"), libuv through glibc's nss files, which re-reads the file per
 * lookup. The same answer, but no longer the same work.
 *
 * dns_names: weft resolves names served by a dnsmasq the benchmark starts
 * on 127.0.0.1, over real UDP DNS. libuv cannot be pointed at that server
 * (glibc reads /etc/resolv.conf, which a benchmark must not change), so it
 * resolves names that are in /etc/hosts instead: a files lookup with no
 * network round trip, the cheapest path glibc has. The comparison is
 * therefore tilted towards libuv; weft leading it means weft's real DNS
 * beats libuv's best case. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <weft.h>

#include "../tests/support/dnsmasq.c"
#include "support/bench.h"

#define CHAINS 10

static th_dnsmasq server;
static const char *const etc_hosts_names[] = {"localhost"};
static const char *const dnsmasq_names[CHAINS] = {
    "n0.test", "n1.test", "n2.test", "n3.test", "n4.test",
    "n5.test", "n6.test", "n7.test", "n8.test", "n9.test"};

typedef struct workload {
  bool via_dnsmasq; /* weft: names through dnsmasq; libuv: /etc/hosts */
} workload;

static const workload localhost_work = {false};
static const workload names_work = {true};

static size_t total_lookups(void) { return bench_n(20000, 2000); }

/* ---- weft ------------------------------------------------------------------
 */

typedef struct weft_chain {
  weft_loop *loop;
  const char *name;
  size_t *left, *done;
} weft_chain;

static void weft_next(weft_chain *c);

static void weft_answered(int status, weft_addrinfo *res, void *arg) {
  weft_chain *c = arg;
  BENCH_CHECK(status == 0 && res != NULL, "weft lookup of %s: %s", c->name,
              weft_strerror(status));
  weft_freeaddrinfo(res);
  (*c->done)++;
  weft_next(c);
}

static void weft_next(weft_chain *c) {
  if (*c->left == 0) return;
  (*c->left)--;
  struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  int err = weft_getaddrinfo(c->loop, c->name, NULL, &h, weft_answered, c);
  BENCH_CHECK(err == 0, "weft_getaddrinfo: %s", weft_strerror(err));
}

static void run_weft(double *values, void *arg) {
  const workload *w = arg;
  weft_loop *loop;
  BENCH_CHECK(weft_loop_new(&loop, NULL) == 0, "weft_loop_new");
  if (w->via_dnsmasq)
    BENCH_CHECK(weft_dns_set_servers(loop, server.server) == 0, "set_servers");
  size_t n = total_lookups(), left = n, done = 0;
  weft_chain chains[CHAINS];
  double t0 = bench_wall();
  for (int i = 0; i < CHAINS; i++) {
    chains[i] = (weft_chain){
        loop, w->via_dnsmasq ? dnsmasq_names[i] : etc_hosts_names[0], &left,
        &done};
    weft_next(&chains[i]);
  }
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  double dt = bench_wall() - t0;
  BENCH_CHECK(done == n, "weft: %zu of %zu lookups", done, n);
  BENCH_CHECK(weft_loop_free(loop) == 0, "weft_loop_free");
  values[0] = (double)n / dt;
}

/* ---- libuv
 * -------------------------------------------------------------------- */

typedef struct uv_chain {
  uv_getaddrinfo_t req;
  const char *name;
  size_t *left, *done;
} uv_chain;

static void uv_next(uv_chain *c);

static void uv_answered(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  uv_chain *c = (uv_chain *)req;
  BENCH_CHECK(status == 0 && res != NULL, "uv lookup of %s: %s", c->name,
              uv_strerror(status));
  uv_freeaddrinfo(res);
  (*c->done)++;
  uv_next(c);
}

static void uv_next(uv_chain *c) {
  if (*c->left == 0) return;
  (*c->left)--;
  struct addrinfo h = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  int err =
      uv_getaddrinfo(c->req.loop, &c->req, uv_answered, c->name, NULL, &h);
  BENCH_CHECK(err == 0, "uv_getaddrinfo: %s", uv_strerror(err));
}

static void run_libuv(double *values, void *arg) {
  (void)arg;
  uv_loop_t loop;
  BENCH_CHECK(uv_loop_init(&loop) == 0, "uv_loop_init");
  size_t n = total_lookups(), left = n, done = 0;
  uv_chain chains[CHAINS];
  double t0 = bench_wall();
  for (int i = 0; i < CHAINS; i++) {
    chains[i] =
        (uv_chain){.name = etc_hosts_names[0], .left = &left, .done = &done};
    chains[i].req.loop = &loop;
    uv_next(&chains[i]);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  double dt = bench_wall() - t0;
  BENCH_CHECK(done == n, "libuv: %zu of %zu lookups", done, n);
  BENCH_CHECK(uv_loop_close(&loop) == 0, "uv_loop_close");
  values[0] = (double)n / dt;
}

/* ---- groups
 * --------------------------------------------------------------------- */

static const bench_metric localhost_metric[] = {
    {"dns_localhost_10_chains", "lookups/s", true}};
static const bench_metric names_metric[] = {
    {"dns_names_10_chains", "lookups/s", true}};

static const bench_impl localhost_impls[] = {
    {"weft", run_weft, (void *)&localhost_work},
    {"libuv", run_libuv, (void *)&localhost_work}};
static const bench_impl names_impls[] = {
    {"weft", run_weft, (void *)&names_work},
    {"libuv", run_libuv, (void *)&names_work}};

static const bench_group groups[] = {
    {"dns_localhost", localhost_metric, 1, localhost_impls, 2},
    {"dns_names", names_metric, 1, names_impls, 2}};

static void stop_server(void) { th_dnsmasq_stop(&server); }

int main(int argc, char **argv) {
  char hosts[512] = "";
  for (int i = 0; i < CHAINS; i++) {
    char line[48];
    snprintf(line, sizeof line, "127.0.1.%d %s\n", i + 1, dnsmasq_names[i]);
    strcat(hosts, line);
  }
  int err = th_dnsmasq_start(&server, hosts);
  if (err != 0) bench_fail("dnsmasq did not start: %s", strerror(-err));
  atexit(stop_server);
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
