/* wload — a load generator in the manner of wrk, wrk2 and redis-benchmark,
 * built on weft's loop group (docs/wload.md).
 *
 *   wload [options] URL...                 HTTP/1.1 (keep-alive)
 *   wload --resp [options] HOST:PORT       RESP (Redis protocol)
 *
 * N connections spread evenly over T loops (one thread each). Closed loop
 * (default): every connection keeps its pipeline full, as fast as the
 * server answers. Open loop (--rate): requests are due at a constant rate
 * and latency runs from the time each was due, so a stalled server shows
 * as latency instead of as fewer requests (coordinated omission corrected,
 * as wrk2 does). Every response is parsed and checked; one that does not
 * parse is an error. The figures: requests/s, bytes/s, errors by kind,
 * HTTP status classes, and latency percentiles from a log-linear histogram
 * per loop, merged at the end. --json prints them as one object. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "args.h"
#include "wload/wload.h"

static const char usage[] =
    "usage: wload [options] URL...          (HTTP/1.1: "
    "http://HOST[:PORT]/PATH)\n"
    "       wload --resp [options] HOST:PORT (RESP, the Redis protocol)\n"
    "  -t, --threads N       loops, one thread each (default 1)\n"
    "  -c, --connections N   connections, spread evenly (default 10)\n"
    "  -d, --duration T      measured time: 10, 10s, 500ms, 2m (default 10s)\n"
    "  -n, --requests N      stop after N requests (-d is then a deadline)\n"
    "  -w, --warmup T        run T first, without counting it (not with -n)\n"
    "  -R, --rate N          open loop: N requests/s in all, latency from\n"
    "                        each request's intended send time\n"
    "  -P, --pipeline N      requests in flight per connection (default 1)\n"
    "      --timeout T       no response for T: a timeout error (default 2s)\n"
    "  -m, --method M        HTTP method (default GET)\n"
    "  -H, --header 'K: V'   an extra HTTP header (repeatable)\n"
    "  -b, --body TEXT       an HTTP request body\n"
    "      --resp            speak RESP to HOST:PORT\n"
    "      --cmd 'LINE'      a RESP command, repeatable, sent round robin\n"
    "                        (default 'GET key:__rand_int__'); __rand_int__\n"
    "                        is a random key, __data__ a value\n"
    "  -r, --keyspace N      random keys in [0, N) (default 100000)\n"
    "      --data-size N     bytes of __data__ (default 3)\n"
    "      --csv FILE        write the latency histogram as CSV\n"
    "      --plot FILE       with --csv: a gnuplot script charting it by\n"
    "                        percentile ('gnuplot FILE' writes FILE.png)\n"
    "      --json            print the results as one JSON object\n"
    "  -q, --quiet           no progress line\n"
    "  -h, --help            this help\n";

typedef struct opts {
  wl_config cfg;
  const char *csv, *plot;
  bool json, quiet, have_duration;
  char target[300]; /* what the report names */
  char **argv;      /* split_short's copy */
} opts;

/* "10", "10s", "2.5s", "500ms", "2m" as nanoseconds (> 0). */
static uint64_t parse_time(const char *opt, const char *v) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  double mul = 1e9;
  if (strcmp(end, "ms") == 0)
    mul = 1e6;
  else if (strcmp(end, "m") == 0)
    mul = 60e9;
  else if (strcmp(end, "us") == 0)
    mul = 1e3;
  else if (*end != '\0' && strcmp(end, "s") != 0)
    x = -1;
  if (end == v || errno || !(x > 0) || x * mul > 1e15)
    ex_bad(usage, "%s %s: want a time such as 10s or 500ms", opt, v);
  return (uint64_t)(x * mul);
}

/* Splits "HOST:PORT" or "[V6]:PORT" (port required when need_port). */
static int split_hostport(char *s, char **host, char **port) {
  if (*s == '[') {
    char *e = strchr(s, ']');
    if (!e || (e[1] != ':' && e[1] != '\0')) return -1;
    *e = '\0';
    *host = s + 1;
    *port = e[1] ? e + 2 : NULL;
    return 0;
  }
  char *c = strrchr(s, ':');
  *host = s;
  *port = NULL;
  if (c) *c = '\0', *port = c + 1;
  return **host ? 0 : -1;
}

static void resolve(opts *o, const char *host, const char *port) {
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "wload: %s:%s: %s\n", host, port, gai_strerror(rc));
    exit(1);
  }
  memcpy(&o->cfg.addr, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
}

/* One HTTP URL: its authority must match the first one's. */
static void add_url(opts *o, const char *url, const char *method,
                    const char *headers, const char *body, char *authority) {
  if (strncmp(url, "http://", 7) != 0)
    ex_bad(usage, "%s: want an http:// URL", url);
  const char *a = url + 7, *slash = strchr(a, '/');
  size_t alen = slash ? (size_t)(slash - a) : strlen(a);
  if (alen == 0 || alen >= 256) ex_bad(usage, "%s: no host", url);
  if (authority[0] && (strlen(authority) != alen || memcmp(authority, a, alen)))
    ex_bad(usage, "%s: every URL must name the same host and port", url);
  if (!authority[0]) {
    memcpy(authority, a, alen);
    authority[alen] = '\0';
    char buf[256], *host, *port;
    memcpy(buf, a, alen + 1);
    buf[alen] = '\0';
    if (split_hostport(buf, &host, &port) < 0 || (port && !*port))
      ex_bad(usage, "%s: bad host or port", url);
    resolve(o, host, port ? port : "80");
  }
  wl_config *c = &o->cfg;
  if (wl_http_template(&c->reqs[c->nreqs++], method, authority,
                       slash ? slash : "/", headers, body) < 0) {
    fprintf(stderr, "wload: out of memory\n");
    exit(1);
  }
}

/* wrk's short forms: "-t2", "-c100", "-d5s" are "-t 2", ... The new
 * argv (freed by main) points into the old. */
static char **split_short(int *argc, char **argv) {
  static const char letters[] = "tcdnwRPmHbr";
  static char flags[sizeof letters][3];
  char **v = calloc(2 * (size_t)*argc + 1, sizeof *v);
  if (!v) {
    fprintf(stderr, "wload: out of memory\n");
    exit(1);
  }
  int n = 0;
  for (int i = 0; i < *argc; i++) {
    const char *a = argv[i],
               *l = a[0] == '-' && a[1] ? strchr(letters, a[1]) : NULL;
    if (i > 0 && l && a[2]) {
      char *f = flags[l - letters];
      f[0] = '-', f[1] = a[1], f[2] = '\0';
      v[n++] = f;
      v[n++] = argv[i] + 2;
    } else {
      v[n++] = argv[i];
    }
  }
  *argc = n;
  return v;
}

static void parse_args(opts *o, int argc, char **argv) {
  wl_config *c = &o->cfg;
  argv = o->argv = split_short(&argc, argv);
  c->threads = 1, c->conns = 10, c->depth = 1;
  c->duration_ns = 10000000000ull, c->timeout_ns = 2000000000ull;
  c->keyspace = 100000;
  size_t data_size = 3;
  const char *method = "GET", *body = NULL;
  static char headers[8192];
  const char *cmds[64], *ops[64];
  int ncmds = 0, nops = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (ex_is_help(a)) ex_usage(usage, 0);
#define IS(s, l) (strcmp(a, s) == 0 || strcmp(a, l) == 0)
    if (IS("-t", "--threads"))
      c->threads = (unsigned)ex_long(argc, argv, &i, 1, WEFT_LGROUP_MAX, usage);
    else if (IS("-c", "--connections"))
      c->conns = (unsigned)ex_long(argc, argv, &i, 1, 1000000, usage);
    else if (IS("-d", "--duration"))
      c->duration_ns = parse_time(a, ex_str(argc, argv, &i, usage)),
      o->have_duration = true;
    else if (IS("-n", "--requests"))
      c->nreq = (uint64_t)ex_long(argc, argv, &i, 1, LONG_MAX, usage);
    else if (IS("-w", "--warmup"))
      c->warmup_ns = parse_time(a, ex_str(argc, argv, &i, usage));
    else if (IS("-R", "--rate"))
      c->rate = (double)ex_long(argc, argv, &i, 1, 100000000, usage);
    else if (IS("-P", "--pipeline"))
      c->depth = (unsigned)ex_long(argc, argv, &i, 1, 4096, usage);
    else if (IS("--timeout", "--timeout"))
      c->timeout_ns = parse_time(a, ex_str(argc, argv, &i, usage));
    else if (IS("-m", "--method"))
      method = ex_str(argc, argv, &i, usage);
    else if (IS("-H", "--header")) {
      const char *h = ex_str(argc, argv, &i, usage);
      if (!strchr(h, ':') || strpbrk(h, "\r\n"))
        ex_bad(usage, "-H %s: want 'Name: value'", h);
      size_t l = strlen(headers);
      if (l + strlen(h) + 3 > sizeof headers) ex_bad(usage, "too many headers");
      snprintf(headers + l, sizeof headers - l, "%s\r\n", h);
    } else if (IS("-b", "--body"))
      body = ex_str(argc, argv, &i, usage);
    else if (IS("--resp", "--resp"))
      c->proto = WL_RESP;
    else if (IS("--cmd", "--cmd")) {
      if (ncmds == 64) ex_bad(usage, "at most 64 --cmd");
      cmds[ncmds++] = ex_str(argc, argv, &i, usage);
    } else if (IS("-r", "--keyspace"))
      c->keyspace = (uint64_t)ex_long(argc, argv, &i, 1, LONG_MAX, usage);
    else if (IS("--data-size", "--data-size"))
      data_size = (size_t)ex_long(argc, argv, &i, 0, 64 << 20, usage);
    else if (IS("--csv", "--csv"))
      o->csv = ex_str(argc, argv, &i, usage);
    else if (IS("--plot", "--plot"))
      o->plot = ex_str(argc, argv, &i, usage);
    else if (IS("--json", "--json"))
      o->json = true;
    else if (IS("-q", "--quiet"))
      o->quiet = true;
    else if (a[0] == '-')
      ex_bad(usage, "unknown option '%s'", a);
    else if (nops == 64)
      ex_bad(usage, "at most 64 URLs");
    else
      ops[nops++] = a;
#undef IS
  }
  if (nops == 0) ex_bad(usage, "no %s given", c->proto ? "HOST:PORT" : "URL");
  if (o->plot && !o->csv) ex_bad(usage, "--plot needs --csv");
  if (c->nreq && c->warmup_ns) ex_bad(usage, "-w and -n do not go together");
  if (c->threads > c->conns) c->threads = c->conns;
  if (c->proto == WL_RESP) {
    if (nops != 1) ex_bad(usage, "--resp takes one HOST:PORT");
    char buf[256], *host, *port;
    snprintf(buf, sizeof buf, "%s", ops[0]);
    if (split_hostport(buf, &host, &port) < 0 || !port || !*port)
      ex_bad(usage, "%s: want HOST:PORT", ops[0]);
    resolve(o, host, port);
    snprintf(o->target, sizeof o->target, "%s", ops[0]);
    if (ncmds == 0) cmds[ncmds++] = "GET key:__rand_int__";
    c->reqs = calloc((size_t)ncmds, sizeof *c->reqs);
    for (int k = 0; c->reqs && k < ncmds; k++)
      if (wl_resp_template(&c->reqs[c->nreqs++], cmds[k], data_size) < 0)
        ex_bad(usage, "--cmd '%s': want a command", cmds[k]);
  } else {
    if (ncmds) ex_bad(usage, "--cmd needs --resp");
    char authority[256] = "";
    c->reqs = calloc((size_t)nops, sizeof *c->reqs);
    for (int k = 0; c->reqs && k < nops; k++)
      add_url(o, ops[k], method, headers, body, authority);
    snprintf(o->target, sizeof o->target, "%s%s", ops[0],
             nops > 1 ? " (and more)" : "");
  }
  if (!c->reqs) {
    fprintf(stderr, "wload: out of memory\n");
    exit(1);
  }
}

/* ---- the report ---------------------------------------------------------- */

typedef struct result {
  wl_stats st;
  double secs, cpu;
  uint64_t errors;
} result;

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static void print_json(const opts *o, const result *r) {
  const wl_config *c = &o->cfg;
  const wl_hist *h = &r->st.hist;
  printf("{\"tool\":\"wload\",\"version\":\"%s\",\"protocol\":\"%s\","
         "\"mode\":\"%s\",\"rate\":%.0f,\"threads\":%u,\"connections\":%u,"
         "\"pipeline\":%u,\"duration_s\":%.6f,\"warmup_s\":%.3f,",
         weft_version(), c->proto ? "resp" : "http",
         c->rate > 0 ? "open" : "closed", c->rate, c->threads, c->conns,
         c->depth, r->secs, (double)c->warmup_ns / 1e9);
  printf(
      "\"requests\":%llu,\"responses\":%llu,\"requests_per_s\":%.1f,"
      "\"bytes_in\":%llu,\"bytes_out\":%llu,\"bytes_per_s\":%.1f,",
      (unsigned long long)r->st.requests, (unsigned long long)r->st.responses,
      r->secs > 0 ? (double)r->st.requests / r->secs : 0.0,
      (unsigned long long)r->st.bytes_in, (unsigned long long)r->st.bytes_out,
      r->secs > 0 ? (double)r->st.bytes_in / r->secs : 0.0);
  printf("\"status\":{");
  for (int k = 1; k <= 5; k++)
    printf("%s\"%dxx\":%llu", k > 1 ? "," : "", k,
           (unsigned long long)r->st.status[k]);
  printf("},\"errors\":{");
  for (int k = 0; k < WL_E_COUNT; k++)
    printf("%s\"%s\":%llu", k ? "," : "", wl_err_names[k],
           (unsigned long long)r->st.errors[k]);
  printf("},\"errors_total\":%llu,", (unsigned long long)r->errors);
  printf("\"latency_us\":{\"count\":%llu,\"min\":%.3f,\"mean\":%.3f,"
         "\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f},",
         (unsigned long long)h->count, us(h->count ? h->min : 0),
         h->count ? h->sum / (double)h->count / 1000.0 : 0.0,
         us(wl_hist_percentile(h, 50)), us(wl_hist_percentile(h, 90)),
         us(wl_hist_percentile(h, 99)), us(wl_hist_percentile(h, 99.9)),
         us(h->max));
  printf("\"cpu_s\":%.6f,\"cpu_us_per_request\":%.4f}\n", r->cpu,
         r->st.requests ? r->cpu * 1e6 / (double)r->st.requests : 0.0);
}

static void fmt_lat(char *b, size_t n, uint64_t ns) {
  if (ns >= 1000000000ull)
    snprintf(b, n, "%.2fs", (double)ns / 1e9);
  else if (ns >= 1000000)
    snprintf(b, n, "%.2fms", (double)ns / 1e6);
  else
    snprintf(b, n, "%.1fus", (double)ns / 1e3);
}

static void print_text(const opts *o, const result *r) {
  const wl_config *c = &o->cfg;
  const wl_hist *h = &r->st.hist;
  printf("wload %s: %u threads, %u connections, pipeline %u, ", o->target,
         c->threads, c->conns, c->depth);
  if (c->rate > 0)
    printf("open loop at %.0f/s", c->rate);
  else
    printf("closed loop");
  printf(", %.2f s measured\n", r->secs);
  double rps = r->secs > 0 ? (double)r->st.requests / r->secs : 0;
  printf("  requests   %llu (%.1f/s), %llu responses\n",
         (unsigned long long)r->st.requests, rps,
         (unsigned long long)r->st.responses);
  printf("  bytes      in %llu (%.2f MB/s), out %llu\n",
         (unsigned long long)r->st.bytes_in,
         r->secs > 0 ? (double)r->st.bytes_in / r->secs / 1e6 : 0.0,
         (unsigned long long)r->st.bytes_out);
  char v[6][32];
  const double ps[5] = {50, 90, 99, 99.9, 100};
  for (int k = 0; k < 5; k++)
    fmt_lat(v[k], sizeof v[k], wl_hist_percentile(h, ps[k]));
  fmt_lat(v[5], sizeof v[5],
          h->count ? (uint64_t)(h->sum / (double)h->count) : 0);
  printf("  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)\n",
         v[0], v[1], v[2], v[3], v[4], v[5]);
  if (c->proto == WL_HTTP)
    printf("  status     1xx %llu  2xx %llu  3xx %llu  4xx %llu  5xx %llu\n",
           (unsigned long long)r->st.status[1],
           (unsigned long long)r->st.status[2],
           (unsigned long long)r->st.status[3],
           (unsigned long long)r->st.status[4],
           (unsigned long long)r->st.status[5]);
  printf("  errors     %llu:", (unsigned long long)r->errors);
  for (int k = 0; k < WL_E_COUNT; k++)
    printf(" %s %llu", wl_err_names[k], (unsigned long long)r->st.errors[k]);
  printf("\n  cpu        %.3f s (%.2f us/request)\n", r->cpu,
         r->st.requests ? r->cpu * 1e6 / (double)r->st.requests : 0.0);
}

/* value_us (the bucket's upper end), count, cumulative fraction. */
static int write_csv(const char *path, const wl_hist *h) {
  FILE *f = fopen(path, "w");
  if (!f) return -errno;
  fprintf(f, "value_us,count,cumulative\n");
  uint64_t seen = 0;
  for (unsigned i = 0; i < WL_BUCKETS; i++) {
    if (!h->n[i]) continue;
    seen += h->n[i];
    uint64_t v = wl_hist_bucket_hi(i);
    fprintf(f, "%.3f,%llu,%.6f\n", us(v > h->max ? h->max : v),
            (unsigned long long)h->n[i], (double)seen / (double)h->count);
  }
  return fclose(f) == 0 ? 0 : -errno;
}

/* A gnuplot string literal: single quotes, a quote doubled. */
static void gp_str(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    fputc(*s, f);
  }
  fputc('\'', f);
}

/* --plot: latency by percentile, HdrHistogram style. x is 1/(1 - the
 * cumulative fraction) on a log scale, so 90%, 99%, 99.9% are evenly
 * spaced; the last line (cumulative 1, the max) has no x and is left out.
 * The CSV is named by its absolute path, the PNG is the script's path with
 * ".png" appended, so the script runs from any directory. */
static int write_plot(const char *path, const char *csv, const char *title) {
  char *abs = realpath(csv, NULL);
  if (!abs) return -errno;
  FILE *f = fopen(path, "w");
  if (!f) {
    int e = errno;
    free(abs);
    return -e;
  }
  char png[4096];
  snprintf(png, sizeof png, "%s.png", path);
  fprintf(f, "# wload latency by percentile: gnuplot this file\n"
             "set terminal pngcairo size 900,540 noenhanced\n"
             "set output ");
  gp_str(f, png);
  fprintf(f, "\nset datafile separator ','\nset title ");
  gp_str(f, title);
  fprintf(f,
          "\nset xlabel 'percentile'\n"
          "set ylabel 'latency (us)'\n"
          "set logscale x\n"
          "set xrange [1:*]\n"
          "set xtics ('0%%%%' 1, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, "
          "'99.99%%%%' 10000, '99.999%%%%' 100000, '99.9999%%%%' 1000000)\n"
          "set grid\n"
          "set key top left\n"
          "plot ");
  gp_str(f, abs);
  fprintf(f, " skip 1 using ($3 < 1 ? 1/(1 - $3) : NaN):1 "
             "with steps linewidth 2 title 'wload'\n");
  free(abs);
  return fclose(f) == 0 ? 0 : -errno;
}

/* ---- the run ------------------------------------------------------------- */

static void progress(const wl_run *run, bool tty) {
  if (!tty) return;
  uint64_t now = wl_now_ns();
  double t = (double)(now - run->t0_ns) / 1e9;
  fprintf(stderr, "\r[%6.1f s] %llu requests%s   ", t,
          (unsigned long long)atomic_load_explicit(&run->progress,
                                                   memory_order_relaxed),
          now < run->win_start ? " (warming up)" : "");
  fflush(stderr);
}

static int run_load(opts *o, result *res) {
  wl_config *c = &o->cfg;
  wl_run run = {.cfg = c};
  run.workers = calloc(c->threads, sizeof *run.workers);
  if (!run.workers) return -ENOMEM;
  weft_lgroup_options lo = {.loops = c->threads,
                            .stop_signals = true,
                            .on_loop_init = wl_worker_init,
                            .on_loop_stop = wl_worker_stop,
                            .arg = &run};
  int rc = weft_lgroup_new(&run.group, &lo);
  if (rc < 0) {
    free(run.workers);
    return rc;
  }
  run.t0_ns = wl_now_ns();
  run.win_start = run.t0_ns + c->warmup_ns;
  run.win_end = c->nreq ? UINT64_MAX : run.win_start + c->duration_ns;
  run.deadline = c->nreq && !o->have_duration ? run.t0_ns + 600000000000ull
                                              : run.win_start + c->duration_ns;
  bool tty = !o->quiet && isatty(2);
  rc = weft_lgroup_start(run.group);
  while (weft_lgroup_wait(run.group, 1000) == -ETIMEDOUT)
    progress(&run, tty);
  uint64_t t_end = wl_now_ns();
  if (tty) fputs("\r\033[K", stderr);
  weft_lgroup_free(run.group);
  memset(res, 0, sizeof *res);
  wl_hist_init(&res->st.hist);
  uint64_t last = run.t0_ns;
  for (unsigned i = 0; i < c->threads; i++) {
    wl_stats st;
    if (!run.workers[i]) continue;
    wl_worker_free(run.workers[i], &st);
    res->st.requests += st.requests, res->st.responses += st.responses;
    res->st.bytes_in += st.bytes_in, res->st.bytes_out += st.bytes_out;
    for (int k = 0; k < WL_E_COUNT; k++)
      res->st.errors[k] += st.errors[k];
    for (int k = 0; k < 6; k++)
      res->st.status[k] += st.status[k];
    if (st.last_end_ns > last) last = st.last_end_ns;
    wl_hist_merge(&res->st.hist, &st.hist);
  }
  free(run.workers);
  for (int k = 0; k < WL_E_COUNT; k++)
    res->errors += res->st.errors[k];
  if (c->nreq)
    res->secs = (double)(last - run.t0_ns) / 1e9;
  else
    res->secs = t_end <= run.win_start
                    ? 0
                    : (double)((t_end < run.win_end ? t_end : run.win_end) -
                               run.win_start) /
                          1e9;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  res->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return rc;
}

int main(int argc, char **argv) {
  opts o = {0};
  parse_args(&o, argc, argv);
  result r;
  int rc = run_load(&o, &r);
  for (unsigned i = 0; i < o.cfg.nreqs; i++)
    wl_req_free(&o.cfg.reqs[i]);
  free(o.cfg.reqs);
  free(o.argv);
  if (rc < 0) {
    fprintf(stderr, "wload: %s\n", weft_strerror(rc));
    return 1;
  }
  if (o.json)
    print_json(&o, &r);
  else
    print_text(&o, &r);
  if (o.csv && (rc = write_csv(o.csv, &r.st.hist)) < 0) {
    fprintf(stderr, "wload: %s: %s\n", o.csv, strerror(-rc));
    return 1;
  }
  if (o.plot && (rc = write_plot(o.plot, o.csv, o.target)) < 0) {
    fprintf(stderr, "wload: %s: %s\n", o.plot, strerror(-rc));
    return 1;
  }
  return 0;
}
