/* Static files over HTTP/1.1: examples/httpd (one weft loop) against nginx
 * (Debian's nginx-light, one worker), both serving the same 1 KiB and
 * 1 MiB files from a temp dir, driven by wrk: 100 keep-alive connections,
 * 2 wrk threads, 5 s per run (BENCH_QUICK=1: 1 s). Two figures per file
 * size: requests per second and wrk's p99 latency (--latency).
 *
 * Both servers are started once and stay up; the runs alternate between
 * them (weft, nginx, weft, ...), BENCH_RUNS times (default 3 here), and
 * the medians are reported. nginx gets a generated config: `user root;`
 * when run as root, access_log off, sendfile on, keep-alive without a
 * request limit (httpd has none), on a free loopback port, and an open
 * file cache trusted for 1 s, like httpd's default --cache-ms 1000, so
 * both skip open/fstat for hot files alike. A run fails
 * its verification if wrk reports non-2xx replies, socket errors or no
 * requests at all.
 *
 * The second table (groups "httpd2_1k", "httpd2_1m", issue 7) runs the same
 * workloads against httpd --loops 2 and nginx with `worker_processes 2;`,
 * otherwise configured alike. All four servers stay up for the whole
 * program; only the pair being measured is under load. The machine has 2
 * cores and wrk shares them with the server, so neither server gets two
 * cores to itself: the wrk settings (-t2 -c100, same duration) are the same
 * for both impls and both tables, which keeps the comparison fair but
 * caps what a second loop or worker can gain. */
#include <arpa/inet.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/bench.h"

typedef struct target {
  unsigned port;
  const char *file; /* "/1k.bin" or "/1m.bin" */
} target;

static char dir[64];
static pid_t httpd_pid[2], nginx_pid[2]; /* [0]: 1 loop/worker, [1]: 2 */
/* [0..3]: weft 1k, nginx 1k, weft 1m, nginx 1m with 1 loop/worker;
 * [4..7]: the same with 2 loops/workers. */
static target targets[8];

static void write_file(const char *name, size_t len) {
  char path[128];
  snprintf(path, sizeof path, "%s/www/%s", dir, name);
  FILE *out = fopen(path, "wb");
  BENCH_CHECK(out != NULL, "cannot create %s\n", path);
  for (size_t i = 0; i < len; i++)
    fputc('a' + (int)(i % 26), out);
  fclose(out);
}

static unsigned free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  BENCH_CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(s, (struct sockaddr *)&a, &len) == 0,
              "no free port\n");
  close(s);
  return ntohs(a.sin_port);
}

/* Runs argv with stdout on a pipe; returns the pid and the read end. */
static pid_t spawn(char *const *argv, FILE **out) {
  int p[2];
  BENCH_CHECK(pipe(p) == 0, "pipe\n");
  pid_t pid = fork();
  BENCH_CHECK(pid >= 0, "fork\n");
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  *out = fdopen(p[0], "r");
  return pid;
}

static unsigned start_httpd(unsigned loops) {
  char self[PATH_MAX], bin[PATH_MAX + 32], root[128], nloops[16];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  BENCH_CHECK(n > 0, "readlink\n");
  self[n] = '\0';
  snprintf(bin, sizeof bin, "%s/../examples/httpd", dirname(self));
  snprintf(root, sizeof root, "%s/www", dir);
  snprintf(nloops, sizeof nloops, "%u", loops);
  char *argv[] = {bin, "--port", "0", "--root", root, "--loops", nloops, NULL};
  FILE *out;
  unsigned port = 0;
  httpd_pid[loops - 1] = spawn(argv, &out);
  BENCH_CHECK(fscanf(out, "listening on %u", &port) == 1,
              "httpd did not start (%s)\n", bin);
  fclose(out);
  return port;
}

/* nginx cannot report a port it picked, so it gets one that was free a
 * moment ago; the bench waits until it accepts connections. */
static unsigned start_nginx(unsigned workers) {
  unsigned port = free_port();
  char conf[160], errlog[160];
  snprintf(conf, sizeof conf, "%s/nginx%u.conf", dir, workers);
  snprintf(errlog, sizeof errlog, "%s/error%u.log", dir, workers);
  FILE *c = fopen(conf, "w");
  BENCH_CHECK(c != NULL, "cannot write %s\n", conf);
  fprintf(
      c,
      "%sworker_processes %u;\ndaemon off;\npid %s/nginx%u.pid;\nerror_log "
      "%s;\n"
      "events { worker_connections 4096; }\n"
      "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush off;\n"
      "  keepalive_timeout 65;\n  keepalive_requests 100000000;\n"
      "  open_file_cache max=1000 inactive=20s;\n  open_file_cache_valid 1s;\n"
      "  client_body_temp_path %s;\n"
      "  default_type application/octet-stream;\n"
      "  server { listen 127.0.0.1:%u; root %s/www; }\n}\n",
      geteuid() == 0 ? "user root;\n" : "", workers, dir, workers, errlog, dir,
      port, dir);
  fclose(c);
  char *argv[] = {"nginx", "-p", dir, "-e", errlog, "-c", conf, NULL};
  FILE *out;
  nginx_pid[workers - 1] = spawn(argv, &out);
  fclose(out);
  for (int i = 0; i < 500; i++) { /* up to 5 s for nginx to listen */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    if (ok) return port;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  bench_fail("nginx did not start; see %s\n", errlog);
}

/* wrk's latency "123.45us" / "1.20ms" / "2.00s" in ms. */
static double to_ms(double v, const char *unit) {
  if (strcmp(unit, "us") == 0) return v / 1000;
  if (strcmp(unit, "s") == 0) return v * 1000;
  if (strcmp(unit, "m") == 0) return v * 60000;
  return v;
}

static void run_wrk(double *values, void *arg) {
  const target *t = arg;
  char url[96];
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", t->port, t->file);
  char *argv[] = {"wrk",       "-t2", "-c100", bench_quick() ? "-d1s" : "-d5s",
                  "--latency", url,   NULL};
  FILE *out;
  pid_t pid = spawn(argv, &out);
  char line[512], unit[8];
  double rps = -1, p99 = -1, v;
  bool bad = false;
  while (fgets(line, sizeof line, out) != NULL) {
    if (sscanf(line, "Requests/sec: %lf", &v) == 1) rps = v;
    if (sscanf(line, " 99%% %lf%7s", &v, unit) == 2) p99 = to_ms(v, unit);
    if (strstr(line, "Non-2xx") != NULL ||
        strstr(line, "Socket errors") != NULL) {
      bad = true;
      fprintf(stderr, "bench_httpd: %s: %s", url, line);
    }
  }
  fclose(out);
  int status;
  waitpid(pid, &status, 0);
  BENCH_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "wrk failed on %s\n", url);
  BENCH_CHECK(!bad && rps > 0 && p99 >= 0, "wrk on %s: errors or no figures\n",
              url);
  values[0] = rps;
  values[1] = p99;
}

static void stop(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  waitpid(pid, NULL, 0);
}

static void cleanup(void) {
  for (int i = 0; i < 2; i++) {
    stop(httpd_pid[i], SIGTERM);
    stop(nginx_pid[i],
         SIGQUIT); /* graceful: the workers exit, then the master */
    httpd_pid[i] = nginx_pid[i] = 0;
  }
  char cmd[96];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (dir[0] != '\0' && system(cmd) != 0)
    fprintf(stderr, "bench_httpd: cannot remove %s\n", dir);
}

static const bench_metric m1k[] = {{"httpd_1k_rps", "req/s", true},
                                   {"httpd_1k_p99", "ms", false}};
static const bench_metric m1m[] = {{"httpd_1m_rps", "req/s", true},
                                   {"httpd_1m_p99", "ms", false}};
static const bench_impl i1k[] = {{"weft", run_wrk, &targets[0]},
                                 {"nginx", run_wrk, &targets[1]}};
static const bench_impl i1m[] = {{"weft", run_wrk, &targets[2]},
                                 {"nginx", run_wrk, &targets[3]}};
static const bench_metric m2_1k[] = {{"httpd2_1k_rps", "req/s", true},
                                     {"httpd2_1k_p99", "ms", false}};
static const bench_metric m2_1m[] = {{"httpd2_1m_rps", "req/s", true},
                                     {"httpd2_1m_p99", "ms", false}};
static const bench_impl i2_1k[] = {{"weft", run_wrk, &targets[4]},
                                   {"nginx", run_wrk, &targets[5]}};
static const bench_impl i2_1m[] = {{"weft", run_wrk, &targets[6]},
                                   {"nginx", run_wrk, &targets[7]}};
static const bench_group groups[] = {
    {"httpd_1k", m1k, BENCH_LEN(m1k), i1k, BENCH_LEN(i1k)},
    {"httpd_1m", m1m, BENCH_LEN(m1m), i1m, BENCH_LEN(i1m)},
    {"httpd2_1k", m2_1k, BENCH_LEN(m2_1k), i2_1k, BENCH_LEN(i2_1k)},
    {"httpd2_1m", m2_1m, BENCH_LEN(m2_1m), i2_1m, BENCH_LEN(i2_1m)},
};

int main(int argc, char **argv) {
  setenv("BENCH_RUNS", "3", 0); /* wrk runs are long: 3 unless told */
  signal(SIGPIPE, SIG_IGN);
  snprintf(dir, sizeof dir, "/tmp/weft-bench-httpd-XXXXXX");
  BENCH_CHECK(mkdtemp(dir) != NULL, "mkdtemp\n");
  atexit(cleanup); /* bench_fail() exits: the servers must not outlive us */
  char www[96];
  snprintf(www, sizeof www, "%s/www", dir);
  BENCH_CHECK(mkdir(www, 0755) == 0, "mkdir %s\n", www);
  chmod(dir, 0755);
  write_file("1k.bin", 1024);
  write_file("1m.bin", 1u << 20);
  for (unsigned n = 1; n <= 2; n++) { /* n loops for httpd, n nginx workers */
    unsigned wp = start_httpd(n), np = start_nginx(n), t = 4 * (n - 1);
    targets[t + 0] = (target){wp, "/1k.bin"};
    targets[t + 1] = (target){np, "/1k.bin"};
    targets[t + 2] = (target){wp, "/1m.bin"};
    targets[t + 3] = (target){np, "/1m.bin"};
  }
  return bench_main(argc, argv, groups, BENCH_LEN(groups));
}
