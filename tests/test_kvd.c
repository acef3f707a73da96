/* examples/kvd against the real redis-cli and raw sockets: every command,
 * pipelining, Redis's exact error texts, protocol errors, expiry on the
 * server's timers and the shared store of --loops N.
 *
 * Each test starts its own server ($O/examples/kvd, found from this
 * binary's path) on a free loopback port (--port 0; the server prints
 * "listening on PORT"), and stops it with SIGTERM, asserting a clean exit. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/test.h"

typedef struct server {
  pid_t pid;
  int port;
} server;

/* $O/examples/kvd: beside this binary's directory ($O/tests) or, for the
 * ASan build ($O/asan/tests), one level further up. */
static void kvd_path(char *out, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert_gt(n, 0);
  self[n] = '\0';
  char *dir = dirname(self);
  snprintf(out, size, "%s/../examples/kvd", dir);
  if (access(out, X_OK) != 0) snprintf(out, size, "%s/../../examples/kvd", dir);
  cr_assert_eq(access(out, X_OK), 0, "no kvd binary at %s", out);
}

/* Runs `argv` with stdin from `in` (NULL: /dev/null); returns its exit
 * status and its stdout+stderr in `out`. */
static int run(const char *const *argv, const char *in, char *out,
               size_t size) {
  int o[2], i[2];
  cr_assert_eq(pipe(o), 0);
  cr_assert_eq(pipe(i), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(i[0], 0);
    dup2(o[1], 1);
    dup2(o[1], 2);
    close(o[0]), close(o[1]), close(i[0]), close(i[1]);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(o[1]);
  close(i[0]);
  if (in) cr_assert_eq(write(i[1], in, strlen(in)), (ssize_t)strlen(in));
  close(i[1]);
  size_t len = 0;
  ssize_t r;
  while ((r = read(o[0], out + len, size - 1 - len)) > 0)
    len += (size_t)r;
  out[len] = '\0';
  close(o[0]);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static server start_with(const char *loops) {
  char path[PATH_MAX];
  kvd_path(path, sizeof path);
  int o[2];
  cr_assert_eq(pipe(o), 0);
  server s;
  s.pid = fork();
  cr_assert_geq(s.pid, 0);
  if (s.pid == 0) {
    prctl(PR_SET_PDEATHSIG,
          SIGTERM); /* a failed assertion kills the test: stop too */
    dup2(o[1], 1);
    close(o[0]), close(o[1]);
    execl(path, path, "--port", "0", "--loops", loops, (char *)NULL);
    _exit(127);
  }
  close(o[1]);
  char line[64];
  size_t len = 0;
  while (len < sizeof line - 1 && read(o[0], line + len, 1) == 1 &&
         line[len] != '\n')
    len++;
  line[len] = '\0';
  close(o[0]);
  cr_assert_eq(sscanf(line, "listening on %d", &s.port), 1, "got '%s'", line);
  cr_assert_gt(s.port, 0);
  return s;
}

static server start(void) { return start_with("1"); }

static void stop(server s) {
  int st;
  cr_assert_eq(kill(s.pid, SIGTERM), 0);
  cr_assert_eq(waitpid(s.pid, &st, 0), s.pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "kvd exit status %d", st);
}

/* redis-cli --no-raw -p PORT args...: the output keeps the reply types
 * visible ("(integer) 1", "(nil)", "(error) ..."). */
static char cli_out[1 << 16];

static const char *cli_argv(server s, const char *const *args) {
  const char *argv[32] = {"redis-cli", "--no-raw", "-p", NULL};
  char port[16];
  snprintf(port, sizeof port, "%d", s.port);
  argv[3] = port;
  size_t n = 4;
  for (; *args && n < 31; args++)
    argv[n++] = *args;
  argv[n] = NULL;
  cr_assert_eq(run(argv, NULL, cli_out, sizeof cli_out), 0, "redis-cli: %s",
               cli_out);
  return cli_out;
}

#define CLI(s, ...) cli_argv((s), (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT(s, want, ...) cr_assert_str_eq(CLI(s, __VA_ARGS__), want)

/* ---- raw sockets -------------------------------------------------------- */

static int raw_connect(server s) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)s.port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  /* a server that never replies fails the read, not the test's timeout */
  struct timeval tv = {.tv_sec = 20};
  cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  return fd;
}

/* Sends n bytes. A server that refuses a request may reply and close
 * before it has read all of it (redis-server does too): the rest then
 * fails with EPIPE or ECONNRESET, which ends the send, never the test
 * process (MSG_NOSIGNAL). */
static void raw_send(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) return;
    cr_assert_gt(w, 0, "write: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* Reads exactly n bytes (the test's timeout bounds a server that sends
 * fewer). */
static void raw_recv(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    cr_assert_gt(r, 0, "read after %zu of %zu bytes", got, n);
    got += (size_t)r;
  }
  buf[n] = '\0';
}

/* Sends `req`, asserts the reply is exactly `want`. */
static void raw_expect(int fd, const char *req, const char *want) {
  static char buf[1 << 16];
  raw_send(fd, req, strlen(req));
  raw_recv(fd, buf, strlen(want));
  cr_assert_str_eq(buf, want);
}

/* Asserts the server closes the connection next (EOF, nothing more). */
static void raw_expect_eof(int fd) {
  char c;
  cr_assert_eq(read(fd, &c, 1), 0);
  close(fd);
}

/* ---- commands ----------------------------------------------------------- */

Test(kvd, ping_and_echo, .timeout = 20) {
  server s = start();
  EXPECT(s, "PONG\n", "PING");
  EXPECT(s, "\"hello\"\n", "PING", "hello");
  EXPECT(s, "\"a b\"\n", "ECHO", "a b");
  EXPECT(s, "(error) ERR wrong number of arguments for 'ping' command\n",
         "PING", "a", "b");
  EXPECT(s, "(error) ERR wrong number of arguments for 'echo' command\n",
         "ECHO");
  stop(s);
}

Test(kvd, set_get_del_exists, .timeout = 20) {
  server s = start();
  EXPECT(s, "(nil)\n", "GET", "k");
  EXPECT(s, "OK\n", "SET", "k", "v");
  EXPECT(s, "\"v\"\n", "GET", "k");
  EXPECT(s, "OK\n", "set", "k", "w");
  EXPECT(s, "\"w\"\n", "get", "k");
  EXPECT(s, "(integer) 2\n", "EXISTS", "k", "k", "nokey");
  EXPECT(s, "(integer) 1\n", "DEL", "k", "nokey");
  EXPECT(s, "(integer) 0\n", "EXISTS", "k");
  EXPECT(s, "(nil)\n", "GET", "k");
  EXPECT(s, "(error) ERR wrong number of arguments for 'get' command\n", "GET");
  EXPECT(s, "(error) ERR wrong number of arguments for 'del' command\n", "DEL");
  stop(s);
}

Test(kvd, set_options, .timeout = 20) {
  server s = start();
  EXPECT(s, "OK\n", "SET", "k", "v", "NX");
  EXPECT(s, "(nil)\n", "SET", "k", "w", "NX");
  EXPECT(s, "\"v\"\n", "GET", "k");
  EXPECT(s, "OK\n", "SET", "k", "w", "XX");
  EXPECT(s, "(nil)\n", "SET", "nokey", "w", "XX");
  EXPECT(s, "(integer) 0\n", "EXISTS", "nokey");
  EXPECT(s, "OK\n", "SET", "k", "v", "EX", "100");
  EXPECT(s, "(integer) 100\n", "TTL", "k");
  EXPECT(s, "OK\n", "SET", "k", "v", "KEEPTTL");
  EXPECT(s, "(integer) 100\n", "TTL", "k");
  EXPECT(s, "OK\n", "SET", "k", "v");
  EXPECT(s, "(integer) -1\n", "TTL", "k");
  EXPECT(s, "OK\n", "SET", "k", "v", "px", "100000");
  long long pttl = 0;
  cr_assert_eq(sscanf(CLI(s, "PTTL", "k"), "(integer) %lld", &pttl), 1);
  cr_assert(pttl > 90000 && pttl <= 100000, "pttl %lld", pttl);
  EXPECT(s, "\"v\"\n", "SET", "k", "x", "GET");
  EXPECT(s, "(nil)\n", "SET", "fresh", "x", "GET");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "NX", "XX");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "EX", "10", "PX",
         "100");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "EX");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "foo");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "SET", "k",
         "v", "EX", "abc");
  EXPECT(s, "(error) ERR invalid expire time in 'set' command\n", "SET", "k",
         "v", "EX", "0");
  EXPECT(s, "(error) ERR invalid expire time in 'set' command\n", "SET", "k",
         "v", "PX", "-5");
  EXPECT(s, "(error) ERR invalid expire time in 'set' command\n", "SET", "k",
         "v", "PX", "9223372036854775000");
  EXPECT(s, "(error) ERR invalid expire time in 'set' command\n", "SET", "k",
         "v", "EX", "9223372036854775");
  EXPECT(s, "(error) ERR wrong number of arguments for 'set' command\n", "SET",
         "k");
  EXPECT(s, "\"x\"\n", "GET", "k"); /* failed SETs changed nothing */
  stop(s);
}

Test(kvd, incr_decr, .timeout = 20) {
  server s = start();
  EXPECT(s, "(integer) 1\n", "INCR", "c");
  EXPECT(s, "(integer) 11\n", "INCRBY", "c", "10");
  EXPECT(s, "(integer) 10\n", "DECR", "c");
  EXPECT(s, "(integer) -5\n", "DECRBY", "c", "15");
  EXPECT(s, "\"-5\"\n", "GET", "c");
  EXPECT(s, "(integer) -1\n", "DECR", "d");
  EXPECT(s, "OK\n", "SET", "big", "9223372036854775807");
  EXPECT(s, "(error) ERR increment or decrement would overflow\n", "INCR",
         "big");
  EXPECT(s, "OK\n", "SET", "small", "-9223372036854775808");
  EXPECT(s, "(error) ERR increment or decrement would overflow\n", "DECR",
         "small");
  EXPECT(s, "OK\n", "SET", "str", "12a");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "INCR",
         "str");
  EXPECT(s, "OK\n", "SET", "str", " 12");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "INCR",
         "str");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "INCRBY",
         "c", "1.5");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "DECRBY",
         "c", "x");
  EXPECT(s, "(error) ERR wrong number of arguments for 'incrby' command\n",
         "INCRBY", "c");
  EXPECT(s, "(error) ERR wrong number of arguments for 'incr' command\n",
         "INCR", "a", "b");
  EXPECT(s, "OK\n", "SET", "t", "5", "EX", "100");
  EXPECT(s, "(integer) 6\n", "INCR", "t");
  EXPECT(s, "(integer) 100\n", "TTL", "t"); /* INCR keeps the TTL */
  stop(s);
}

Test(kvd, mget_mset, .timeout = 20) {
  server s = start();
  EXPECT(s, "OK\n", "MSET", "a", "1", "b", "2");
  EXPECT(s, "1) \"1\"\n2) \"2\"\n3) (nil)\n", "MGET", "a", "b", "nokey");
  EXPECT(s, "(integer) 1\n", "LPUSH", "l", "x");
  EXPECT(s, "1) (nil)\n2) \"1\"\n", "MGET", "l", "a"); /* a list reads as nil */
  EXPECT(s, "(error) ERR wrong number of arguments for 'mset' command\n",
         "MSET", "a", "1", "b");
  EXPECT(s, "(error) ERR wrong number of arguments for 'mget' command\n",
         "MGET");
  EXPECT(s, "OK\n", "MSET", "l", "now-a-string");
  EXPECT(s, "\"now-a-string\"\n", "GET", "l");
  stop(s);
}

Test(kvd, expire_ttl_persist, .timeout = 20) {
  server s = start();
  EXPECT(s, "(integer) -2\n", "TTL", "k");
  EXPECT(s, "(integer) -2\n", "PTTL", "k");
  EXPECT(s, "(integer) 0\n", "EXPIRE", "k", "10");
  EXPECT(s, "OK\n", "SET", "k", "v");
  EXPECT(s, "(integer) -1\n", "TTL", "k");
  EXPECT(s, "(integer) -1\n", "PTTL", "k");
  EXPECT(s, "(integer) 1\n", "EXPIRE", "k", "100");
  EXPECT(s, "(integer) 100\n", "TTL", "k");
  EXPECT(s, "(integer) 1\n", "PEXPIRE", "k", "200000");
  EXPECT(s, "(integer) 200\n", "TTL", "k");
  EXPECT(s, "(integer) 0\n", "EXPIRE", "k", "300", "NX");
  EXPECT(s, "(integer) 1\n", "EXPIRE", "k", "300", "GT");
  EXPECT(s, "(integer) 0\n", "EXPIRE", "k", "100", "GT");
  EXPECT(s, "(integer) 300\n", "TTL", "k");
  EXPECT(s, "(integer) 1\n", "PERSIST", "k");
  EXPECT(s, "(integer) 0\n", "PERSIST", "k");
  EXPECT(s, "(integer) 0\n", "PERSIST", "nokey");
  EXPECT(s, "(integer) -1\n", "TTL", "k");
  EXPECT(s, "(integer) 0\n", "EXPIRE", "k", "10", "XX");
  EXPECT(s, "(integer) 1\n", "EXPIRE", "k", "-1"); /* in the past: deleted */
  EXPECT(s, "(integer) 0\n", "EXISTS", "k");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "EXPIRE",
         "k", "abc");
  EXPECT(s, "(error) ERR invalid expire time in 'expire' command\n", "EXPIRE",
         "k", "9223372036854775807");
  EXPECT(s, "(error) ERR invalid expire time in 'pexpire' command\n", "PEXPIRE",
         "k", "9223372036854775807");
  EXPECT(s, "(error) ERR invalid expire time in 'pexpire' command\n", "PEXPIRE",
         "k", "9223372036854775000");
  EXPECT(s, "(error) ERR invalid expire time in 'expire' command\n", "EXPIRE",
         "k", "9223372036854775");
  EXPECT(s, "(error) ERR Unsupported option FOO\n", "EXPIRE", "k", "10", "FOO");
  EXPECT(s,
         "(error) ERR NX and XX, GT or LT options at the same time are not "
         "compatible\n",
         "EXPIRE", "k", "10", "NX", "XX");
  EXPECT(s,
         "(error) ERR GT and LT options at the same time are not compatible\n",
         "EXPIRE", "k", "10", "GT", "LT");
  EXPECT(s, "(error) ERR wrong number of arguments for 'ttl' command\n", "TTL");
  stop(s);
}

Test(kvd, keys_dbsize_flushall, .timeout = 20) {
  server s = start();
  EXPECT(s, "(empty array)\n", "KEYS", "*");
  EXPECT(s, "OK\n", "MSET", "foo", "1", "fob", "2", "bar", "3", "f*x", "4");
  EXPECT(s, "(integer) 4\n", "DBSIZE");
  const char *out = CLI(s, "KEYS", "fo?");
  cr_assert(strcmp(out, "1) \"foo\"\n2) \"fob\"\n") == 0 ||
                strcmp(out, "1) \"fob\"\n2) \"foo\"\n") == 0,
            "%s", out);
  EXPECT(s, "1) \"bar\"\n", "KEYS", "[b-c]a*");
  EXPECT(s, "1) \"foo\"\n", "KEYS", "f[^x]o");
  EXPECT(s, "1) \"f*x\"\n", "KEYS", "f\\*x");
  EXPECT(s, "(empty array)\n", "KEYS", "z*");
  EXPECT(s, "(error) ERR wrong number of arguments for 'keys' command\n",
         "KEYS");
  EXPECT(s, "(error) ERR wrong number of arguments for 'dbsize' command\n",
         "DBSIZE", "x");
  EXPECT(s, "(error) ERR syntax error\n", "FLUSHALL", "x");
  EXPECT(s, "OK\n", "FLUSHALL");
  EXPECT(s, "(integer) 0\n", "DBSIZE");
  EXPECT(s, "OK\n", "SET", "a", "1", "EX", "100");
  EXPECT(s, "OK\n", "FLUSHALL", "ASYNC");
  EXPECT(s, "(integer) 0\n", "DBSIZE");
  stop(s);
}

Test(kvd, lists_and_wrongtype, .timeout = 20) {
  server s = start();
  EXPECT(s, "(integer) 2\n", "RPUSH", "l", "b", "c");
  EXPECT(s, "(integer) 3\n", "LPUSH", "l", "a");
  EXPECT(s, "(integer) 3\n", "LLEN", "l");
  EXPECT(s, "1) \"a\"\n2) \"b\"\n3) \"c\"\n", "LRANGE", "l", "0", "-1");
  EXPECT(s, "1) \"b\"\n", "LRANGE", "l", "1", "1");
  EXPECT(s, "(empty array)\n", "LRANGE", "l", "5", "9");
  EXPECT(s, "list\n", "TYPE", "l");
  EXPECT(s, "none\n", "TYPE", "nokey");
  const char *wt = "(error) WRONGTYPE Operation against a key holding the "
                   "wrong kind of value\n";
  EXPECT(s, wt, "GET", "l");
  EXPECT(s, wt, "INCR", "l");
  EXPECT(s, wt, "SET", "l", "x", "GET");
  EXPECT(s, "OK\n", "SET", "str", "x");
  EXPECT(s, "string\n", "TYPE", "str");
  EXPECT(s, wt, "LPUSH", "str", "y");
  EXPECT(s, wt, "LLEN", "str");
  EXPECT(s, "(integer) 3\n", "LPUSH", "m", "x", "y", "z"); /* one at a time */
  EXPECT(s, "(integer) 5\n", "RPUSH", "m", "p", "q");
  EXPECT(s, "1) \"z\"\n2) \"y\"\n3) \"x\"\n4) \"p\"\n5) \"q\"\n", "LRANGE", "m",
         "0", "-1");
  EXPECT(s, "1) \"p\"\n2) \"q\"\n", "LRANGE", "m", "-2", "100");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "LRANGE",
         "m", "a", "1");
  EXPECT(s, "(error) ERR wrong number of arguments for 'lpush' command\n",
         "LPUSH", "m");
  EXPECT(s, "(integer) 0\n", "LLEN", "nokey");
  EXPECT(s, "OK\n", "SET", "l", "x"); /* SET replaces any type */
  EXPECT(s, "\"x\"\n", "GET", "l");
  stop(s);
}

Test(kvd, command_minimal, .timeout = 20) {
  server s = start();
  EXPECT(s, "(integer) 34\n", "COMMAND", "COUNT");
  EXPECT(s,
         "1) 1) \"get\"\n   2) (integer) 2\n   3) (empty array)\n   4) "
         "(integer) 1\n"
         "   5) (integer) 1\n   6) (integer) 1\n2) (nil)\n",
         "COMMAND", "INFO", "get", "nosuch");
  const char *all = CLI(s, "COMMAND");
  cr_assert_not_null(strstr(all, "\"mset\"\n    2) (integer) -3\n"));
  EXPECT(s, "(error) ERR unknown subcommand 'FOO'. Try COMMAND HELP.\n",
         "COMMAND", "FOO");
  EXPECT(s, "(empty array)\n", "COMMAND", "DOCS");
  const char *help = CLI(s, "COMMAND", "HELP");
  cr_assert_eq(strncmp(help, " 1) COMMAND <subcommand>", 24), 0, "%s", help);
  cr_assert_not_null(strstr(help, "11)     Print this help.\n"), "%s", help);
  stop(s);
}

Test(kvd, unknown_command_text, .timeout = 20) {
  server s = start();
  EXPECT(
      s,
      "(error) ERR unknown command 'FOO', with args beginning with: 'a' 'b' \n",
      "FOO", "a", "b");
  EXPECT(s, "(error) ERR unknown command 'foo', with args beginning with: \n",
         "foo");
  char longarg[301];
  memset(longarg, 'x', 300);
  longarg[300] = '\0';
  char want[400];
  snprintf(want, sizeof want,
           "(error) ERR unknown command 'bar', with args beginning with: "
           "'%.128s' \n",
           longarg);
  EXPECT(s, want, "bar", longarg, "more");
  stop(s);
}

/* ---- pipelining and the protocol ---------------------------------------- */

Test(kvd, pipelined_raw, .timeout = 20) {
  server s = start();
  int fd = raw_connect(s);
  static char req[1 << 16], want[1 << 16];
  size_t rl = 0, wl = 0;
  for (int i = 1; i <= 500; i++) {
    rl += (size_t)sprintf(req + rl, "*2\r\n$4\r\nINCR\r\n$1\r\np\r\n");
    wl += (size_t)sprintf(want + wl, ":%d\r\n", i);
    if (i % 100 == 0) { /* inline commands mixed in */
      rl += (size_t)sprintf(req + rl, "GET p\r\n");
      wl += (size_t)sprintf(want + wl, "$%d\r\n%d\r\n",
                            i < 100 ? 1 : (i < 1000 ? 3 : 4), i);
    }
  }
  raw_expect(fd, req, want);
  /* a command split across writes waits for its last byte */
  raw_send(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk", 18);
  raw_expect(fd, "\r\n$5\r\nhello\r\n", "+OK\r\n");
  raw_expect(fd, "ECHO \"a\\x41\\n\" 'it\\'s'\r\n",
             "-ERR wrong number of arguments for 'echo' command\r\n");
  raw_expect(fd, "ECHO \"a\\x41\\n\"\r\n", "$3\r\naA\n\r\n");
  raw_expect(fd, "\r\n\r\n  \r\nPING\n",
             "+PONG\r\n"); /* empty lines are skipped */
  raw_expect(fd, "*0\r\n*-1\r\nPING\r\n", "+PONG\r\n");
  close(fd);
  stop(s);
}

Test(kvd, pipe_mode, .timeout = 30) {
  server s = start();
  static char in[1 << 17], out[4096];
  size_t n = 0;
  for (int i = 0; i < 2000; i++)
    n += (size_t)sprintf(in + n, "SET key:%d %d\r\n", i, i);
  char port[16];
  snprintf(port, sizeof port, "%d", s.port);
  const char *argv[] = {"redis-cli", "-p", port, "--pipe", NULL};
  cr_assert_eq(run(argv, in, out, sizeof out), 0, "%s", out);
  cr_assert_not_null(strstr(out, "errors: 0, replies: 2000"), "%s", out);
  EXPECT(s, "(integer) 2000\n", "DBSIZE");
  EXPECT(s, "\"1234\"\n", "GET", "key:1234");
  stop(s);
}

Test(kvd, protocol_error_closes_only_that_connection, .timeout = 20) {
  server s = start();
  int other = raw_connect(s);
  int fd = raw_connect(s);
  raw_expect(fd, "PING\r\n*1\r\n+x\r\nPING\r\n",
             "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n");
  raw_expect_eof(fd);
  fd = raw_connect(s);
  raw_expect(fd, "*abc\r\n",
             "-ERR Protocol error: invalid multibulk length\r\n");
  raw_expect_eof(fd);
  fd = raw_connect(s);
  raw_expect(fd, "*1\r\n$-1\r\n",
             "-ERR Protocol error: invalid bulk length\r\n");
  raw_expect_eof(fd);
  fd = raw_connect(s);
  raw_expect(fd, "ECHO \"a\r\n",
             "-ERR Protocol error: unbalanced quotes in request\r\n");
  raw_expect_eof(fd);
  raw_expect(other, "PING\r\n", "+PONG\r\n"); /* the server lives on */
  close(other);
  stop(s);
}

/* 7.6 MB through an ASan server: slow on a loaded 2-core machine, hence
 * the longer bound. */
Test(kvd, oversized_requests_are_refused, .timeout = 60) {
  server s = start();
  int fd = raw_connect(s);
  raw_expect(fd, "*1\r\n$999999999\r\n",
             "-ERR Protocol error: invalid bulk length\r\n");
  raw_expect_eof(fd);
  fd = raw_connect(s);
  raw_expect(fd, "*2147483648\r\n",
             "-ERR Protocol error: invalid multibulk length\r\n");
  raw_expect_eof(fd);
  static char big[200000];
  memset(big, 'x', sizeof big - 1);
  fd = raw_connect(s);
  raw_expect(fd, big, "-ERR Protocol error: too big inline request\r\n");
  raw_expect_eof(fd);
  /* many large arguments: each is legal, the request as a whole (over
   * proto-max-bulk-len + 4 MiB) is not */
  EXPECT(s, "OK\n", "CONFIG", "SET", "proto-max-bulk-len", "1mb");
  fd = raw_connect(s);
  static char arg[400 * 1024 + 64];
  int n = sprintf(arg, "$%d\r\n", 400 * 1024);
  memset(arg + n, 'y', 400 * 1024);
  memcpy(arg + n + 400 * 1024, "\r\n", 3);
  raw_send(fd, "*20\r\n$4\r\nMSET\r\n", 15);
  static char reply[128];
  size_t got = 0;
  for (int i = 0; i < 19; i++) {
    if (send(fd, arg, strlen(arg), MSG_NOSIGNAL) < 0)
      break; /* already closed */
  }
  ssize_t r;
  while ((r = read(fd, reply + got, sizeof reply - 1 - got)) > 0)
    got += (size_t)r;
  reply[got] = '\0';
  cr_assert_str_eq(reply, "-ERR Protocol error: request too large\r\n");
  close(fd);
  fd = raw_connect(s);
  raw_expect(fd, "PING\r\n", "+PONG\r\n");
  close(fd);
  stop(s);
}

/* After its error reply, a client that neither reads nor closes is
 * dropped after the linger time; its input meanwhile is discarded. */
Test(kvd, lingering_client_is_dropped, .timeout = 20) {
  server s = start();
  int fd = raw_connect(s);
  raw_expect(fd, "*abc\r\n",
             "-ERR Protocol error: invalid multibulk length\r\n");
  char c;
  cr_assert_eq(read(fd, &c, 1), 0); /* the server shut its write side */
  int sends = 0;
  for (;;) { /* the RST of the final close fails a send */
    if (send(fd, "x", 1, MSG_NOSIGNAL) < 0) {
      cr_assert(errno == EPIPE || errno == ECONNRESET, "%s", strerror(errno));
      break;
    }
    sends++;
    struct pollfd p = {.fd = fd, .events = 0}; /* wakes on POLLERR/POLLHUP */
    poll(&p, 1, 100);
  }
  cr_assert_gt(sends, 0);
  close(fd);
  fd = raw_connect(s);
  raw_expect(fd, "PING\r\n", "+PONG\r\n");
  close(fd);
  fd = raw_connect(s); /* still lingering when the server stops: no leak */
  raw_expect(fd, "QUIT\r\n", "+OK\r\n");
  stop(s);
  close(fd);
}

Test(kvd, quit_replies_then_closes, .timeout = 20) {
  server s = start();
  int fd = raw_connect(s);
  raw_expect(fd, "PING\r\nQUIT\r\nPING\r\n", "+PONG\r\n+OK\r\n");
  raw_expect_eof(fd);
  EXPECT(s, "OK\n", "QUIT");
  stop(s);
}

/* ---- limits and parsing, as redis-server 7.0 (see also `make fuzz`) ----- */

/* A server started with --stats, which prints its counters on stderr at
 * exit: "kvd stats: scanned N out_peak N out_dropped N". */
typedef struct stats_server {
  server s;
  int err; /* the read end of its stderr */
} stats_server;

static stats_server start_stats(void) {
  char path[PATH_MAX];
  kvd_path(path, sizeof path);
  int o[2], e[2];
  cr_assert_eq(pipe(o), 0);
  cr_assert_eq(pipe(e), 0);
  stats_server ss;
  ss.s.pid = fork();
  cr_assert_geq(ss.s.pid, 0);
  if (ss.s.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]), close(o[1]), close(e[0]), close(e[1]);
    execl(path, path, "--port", "0", "--stats", (char *)NULL);
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  char line[64];
  size_t len = 0;
  while (len < sizeof line - 1 && read(o[0], line + len, 1) == 1 &&
         line[len] != '\n')
    len++;
  line[len] = '\0';
  close(o[0]);
  cr_assert_eq(sscanf(line, "listening on %d", &ss.s.port), 1, "got '%s'",
               line);
  ss.err = e[0];
  return ss;
}

typedef struct kvd_stats {
  size_t scanned, out_peak, out_dropped;
} kvd_stats;

/* Stops the server and returns its counters. */
static kvd_stats stop_stats(stats_server ss) {
  stop(ss.s);
  static char buf[1 << 16];
  size_t len = 0;
  ssize_t r;
  while ((r = read(ss.err, buf + len, sizeof buf - 1 - len)) > 0)
    len += (size_t)r;
  buf[len] = '\0';
  close(ss.err);
  kvd_stats st;
  const char *p = strstr(buf, "kvd stats: ");
  cr_assert_not_null(p, "stderr: %s", buf);
  cr_assert_eq(sscanf(p, "kvd stats: scanned %zu out_peak %zu out_dropped %zu",
                      &st.scanned, &st.out_peak, &st.out_dropped),
               3, "%s", p);
  return st;
}

/* "SET big <512 KiB of 'v'>" on fd. */
static void set_big(int fd) {
  static char req[600 * 1024];
  int n = sprintf(req, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", 512 * 1024);
  memset(req + n, 'v', 512 * 1024);
  memcpy(req + n + 512 * 1024, "\r\n", 2);
  raw_send(fd, req, (size_t)n + 512 * 1024 + 2);
  raw_expect(fd, "", "+OK\r\n");
}

/* Reads from fd until `n` bytes arrived, or EOF/reset; returns the count. */
static size_t drain(int fd, size_t n) {
  static char buf[1 << 16];
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}

/* 3.6 KB of pipelined GETs of a 512 KiB value is 200 MB of replies: the
 * server gathers at most about 1 MiB more while a write is in flight, and
 * the rest waits in the input buffer until the client reads. */
Test(kvd, pipelined_output_is_bounded, .timeout = 60) {
  stats_server ss = start_stats();
  int fd = raw_connect(ss.s);
  set_big(fd);
  enum { NCLIENT = 3, NGET = 400 };
  static char req[NGET * 9 + 1];
  for (int i = 0; i < NGET; i++)
    memcpy(req + i * 9, "GET big\r\n", 9);
  int fds[NCLIENT];
  for (int i = 0; i < NCLIENT; i++) {
    fds[i] = raw_connect(ss.s);
    raw_send(fds[i], req, NGET * 9);
  }
  raw_expect(fd, "PING\r\n", "+PONG\r\n"); /* the others wait, not this */
  size_t one = strlen("$524288\r\n") + 512 * 1024 + 2;
  for (int i = 0; i < NCLIENT; i++) {
    cr_assert_eq(drain(fds[i], NGET * one), NGET * one, "client %d", i);
    raw_expect(fds[i], "PING\r\n", "+PONG\r\n");
    close(fds[i]);
  }
  close(fd);
  kvd_stats st = stop_stats(ss);
  cr_assert_leq(st.out_peak, 8u << 20, "peak reply buffers %zu bytes",
                st.out_peak);
  cr_assert_eq(st.out_dropped, 0);
}

/* One reply past the hard limit (64 MiB waiting) drops that client only. */
Test(kvd, output_limit_drops_the_client, .timeout = 60) {
  stats_server ss = start_stats();
  int fd = raw_connect(ss.s);
  set_big(fd);
  enum { NKEYS = 200 }; /* 100 MiB of reply */
  static char req[NKEYS * 13 + 32];
  size_t n = (size_t)sprintf(req, "*%d\r\n$4\r\nMGET\r\n", NKEYS + 1);
  for (int i = 0; i < NKEYS; i++)
    n += (size_t)sprintf(req + n, "$3\r\nbig\r\n");
  int victim = raw_connect(ss.s);
  raw_send(victim, req, n);
  size_t full = 6 + NKEYS * (strlen("$524288\r\n") + 512 * 1024 + 2);
  cr_assert_lt(drain(victim, full), full); /* closed before the end */
  close(victim);
  raw_expect(fd, "EXISTS big\r\n", ":1\r\n");
  raw_expect(fd, "MGET big big\r\n",
             "*2\r\n$524288\r\n"); /* a smaller reply is fine */
  cr_assert_eq(drain(fd, 2 * (512 * 1024 + 2) + 9 - 0),
               2 * (512 * 1024 + 2) + 9);
  close(fd);
  kvd_stats st = stop_stats(ss);
  cr_assert_eq(st.out_dropped, 1);
}

/* A 4 MB request in 256-byte writes: each byte is scanned for a line end
 * once, not once per read (the parse is incremental). */
Test(kvd, split_request_is_parsed_incrementally, .timeout = 60) {
  stats_server ss = start_stats();
  enum { NKEYS = 65000, KEYLEN = 56 };
  size_t cap = 32 + (size_t)NKEYS * (KEYLEN + 8);
  char *req = malloc(cap);
  cr_assert_not_null(req);
  size_t n = (size_t)sprintf(req, "*%d\r\n$3\r\nDEL\r\n", NKEYS + 1);
  for (int i = 0; i < NKEYS; i++)
    n += (size_t)sprintf(req + n, "$%d\r\n%0*d\r\n", KEYLEN, KEYLEN, i);
  cr_assert_gt(n, 4000000);
  int fd = raw_connect(ss.s);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (size_t off = 0; off < n; off += 256)
    raw_send(fd, req + off, n - off < 256 ? n - off : 256);
  raw_expect(fd, "", ":0\r\n");
  raw_expect(fd, "PING\r\n", "+PONG\r\n");
  close(fd);
  free(req);
  kvd_stats st = stop_stats(ss);
  /* the line ends of 65,002 lines: far less than the request itself */
  cr_assert_leq(st.scanned, n, "scanned %zu bytes of a %zu-byte request",
                st.scanned, n);
}

/* Redis's parser, byte for byte (each answer is redis-server 7.0.15's). */
Test(kvd, parsing_matches_redis, .timeout = 20) {
  server s = start();
  static const struct {
    const char *req, *want;
    bool closes;
  } cases[] = {
      /* count and length lines are string2ll numbers */
      {"*01\r\n$4\r\nPING\r\n",
       "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"*-0\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"*+1\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true},
      {"*2147483648\r\n", "-ERR Protocol error: invalid multibulk length\r\n",
       true},
      {"*1\r\n$-0\r\n", "-ERR Protocol error: invalid bulk length\r\n", true},
      {"*1\r\n$04\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n",
       true},
      {"*-5\r\n*0\r\nPING\r\n", "+PONG\r\n", false},
      /* the byte after CR and the two after an argument are not checked */
      {"*1\rx$4\ryPING\r\n", "+PONG\r\n", false},
      {"*2\r\n$4\r\nECHO\r\n$1\r\naXY", "$1\r\na\r\n", false},
      {"*1\r\n\r\n", "-ERR Protocol error: expected '$', got ' '\r\n", true},
      /* inline: blanks are isspace(), but only SP, TAB, CR, LF end a token */
      {"ECHO a\rb\r\n", "-ERR wrong number of arguments for 'echo' command\r\n",
       false},
      {"ECHO \v\"a\"\f\r\n", "$1\r\na\r\n", false},
      {"ECHO a\vb\r\n", "$3\r\na\vb\r\n", false},
      {"ECHO 'a'\v\r\n", "$1\r\na\r\n", false},
      {"ECHO \"a\"b\r\n",
       "-ERR Protocol error: unbalanced quotes in request\r\n", true},
      {"ECHO 'it\\'s' \r\n", "$4\r\nit's\r\n", false},
      {"ECHO \"\\x41\\x4g\\q\"\r\n", "$5\r\nAx4gq\r\n", false},
      {"ECHO \"a\\\r\n",
       "-ERR Protocol error: unbalanced quotes in request\r\n", true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int fd = raw_connect(s);
    raw_expect(fd, cases[i].req, cases[i].want);
    if (cases[i].closes)
      raw_expect_eof(fd);
    else
      close(fd);
  }
  /* a count line without CR: Redis's own error text past 64 KiB */
  static char big[70016];
  memset(big, '1', sizeof big - 1);
  int fd = raw_connect(s);
  big[0] = '*';
  raw_expect(fd, big, "-ERR Protocol error: too big mbulk count string\r\n");
  raw_expect_eof(fd);
  fd = raw_connect(s);
  memcpy(big, "*1\r\n$", 5);
  raw_expect(fd, big, "-ERR Protocol error: too big bulk count string\r\n");
  raw_expect_eof(fd);
  /* a NUL hides the line end from Redis's strchr(): nothing runs */
  fd = raw_connect(s);
  raw_send(fd, "ECHO a\0b\r\nPING\r\n", 16);
  memset(big, 'x', sizeof big - 1);
  raw_expect(fd, big, "-ERR Protocol error: too big inline request\r\n");
  raw_expect_eof(fd);
  fd = raw_connect(s);
  raw_send(fd, "*1\r\n$4\0\r\nPING\r\n", 15);
  raw_expect(fd, big, "-ERR Protocol error: too big bulk count string\r\n");
  raw_expect_eof(fd);
  enum { NARGS = 70000 };
  static char many[NARGS * 7 + 64];
  /* error texts: any length; CR/LF trimmed at the end, spaces inside */
  static char opt[700], want[800];
  memset(opt, 'o', 600);
  snprintf(want, sizeof want, "-ERR Unsupported option %.600s\r\n", opt);
  char *req = many; /* reused below */
  sprintf(req, "EXPIRE k 100 %.600s\r\n", opt);
  fd = raw_connect(s);
  raw_expect(fd, req, want);
  raw_expect(fd, "*4\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$1\r\n1\r\n$4\r\na\rb\n\r\n",
             "-ERR Unsupported option a b\r\n");
  close(fd);
  /* more than 65,536 arguments are fine (the 4 MiB request bound holds) */
  size_t n = (size_t)sprintf(many, "*%d\r\n$4\r\nECHO\r\n", NARGS + 1);
  for (int i = 0; i < NARGS; i++)
    n += (size_t)sprintf(many + n, "$1\r\nx\r\n");
  fd = raw_connect(s);
  raw_send(fd, many, n);
  raw_expect(fd, "", "-ERR wrong number of arguments for 'echo' command\r\n");
  close(fd);
  stop(s);
}

/* ---- expiry ------------------------------------------------------------- */

/* Polls DBSIZE on `fd` until it reads `want` (the test's timeout bounds
 * the wait). DBSIZE never touches keys, so only the server's timer can
 * make it drop. */
static void wait_dbsize(int fd, int want) {
  char buf[64], w[32];
  snprintf(w, sizeof w, ":%d\r\n", want);
  for (;;) {
    raw_send(fd, "DBSIZE\r\n", 8);
    ssize_t r = read(fd, buf, sizeof buf - 1);
    cr_assert_gt(r, 0);
    buf[r] = '\0';
    if (strcmp(buf, w) == 0) return;
  }
}

Test(kvd, keys_expire_on_the_timer, .timeout = 20) {
  server s = start();
  int fd = raw_connect(s);
  raw_expect(
      fd, "SET a 1 PX 40\r\nSET b 2 PX 20\r\nSET c 3 PX 60000\r\nSET d 4\r\n",
      "+OK\r\n+OK\r\n+OK\r\n+OK\r\n");
  raw_expect(fd, "DBSIZE\r\n", ":4\r\n");
  wait_dbsize(fd, 2);
  raw_expect(fd, "MGET a b c d\r\n",
             "*4\r\n$-1\r\n$-1\r\n$1\r\n3\r\n$1\r\n4\r\n");
  raw_expect(fd, "PEXPIRE d 10\r\n", ":1\r\n");
  wait_dbsize(fd, 1);
  raw_expect(fd, "TTL d\r\nEXISTS d\r\n", ":-2\r\n:0\r\n");
  close(fd);
  stop(s);
}

/* ---- several loops ------------------------------------------------------ */

Test(kvd, loops_share_one_store, .timeout = 30) {
  server s = start_with("4");
  enum { NCONN = 16, NINCR = 200 };
  int fds[NCONN];
  static char req[NINCR * 32], buf[NINCR * 32];
  size_t rl = 0;
  for (int i = 0; i < NINCR; i++)
    rl += (size_t)sprintf(req + rl, "INCR shared\r\n");
  for (int i = 0; i < NCONN; i++) {
    fds[i] = raw_connect(s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "SET own:%d %d\r\n", i, i);
    raw_expect(fds[i], cmd, "+OK\r\n");
  }
  for (int i = 0; i < NCONN; i++)
    raw_send(fds[i], req, rl);
  for (int i = 0; i < NCONN; i++) { /* every reply is an integer line */
    size_t lines = 0, got = 0;
    while (lines < NINCR) {
      ssize_t r = read(fds[i], buf + got, sizeof buf - got);
      cr_assert_gt(r, 0);
      for (ssize_t k = 0; k < r; k++)
        lines += buf[got + (size_t)k] == '\n';
      got += (size_t)r;
    }
  }
  char want[32];
  snprintf(want, sizeof want, "$4\r\n%d\r\n", NCONN * NINCR);
  for (int i = 0; i < NCONN; i++) { /* every connection sees every key */
    raw_expect(fds[i], "GET shared\r\n", want);
    raw_expect(fds[i], "DBSIZE\r\n", ":17\r\n");
    raw_expect(fds[i], "GET own:7\r\n", "$1\r\n7\r\n");
  }
  for (int i = 0; i < NCONN; i++) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "PEXPIRE own:%d %d\r\n", i, 10 + i);
    raw_expect(fds[i], cmd, ":1\r\n");
  }
  wait_dbsize(fds[0], 1); /* the owners' timers expired keys set by others */
  for (int i = 0; i < NCONN; i++)
    close(fds[i]);
  stop(s);
}

/* ---- the command line --------------------------------------------------- */

Test(kvd, bad_command_lines, .timeout = 20) {
  char path[PATH_MAX], out[1024];
  kvd_path(path, sizeof path);
  const char *bad[][6] = {
      {path, NULL},
      {path, "--port", "abc", NULL},
      {path, "--port", "70000", NULL},
      {path, "--port", "0", "--loops", "0", NULL},
      {path, "--port", "0", "--bind", "not-an-ip", NULL},
      {path, "--frob", "1", NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(run(bad[i], NULL, out, sizeof out), 2, "case %zu", i);
    /* what is wrong, then the usage */
    cr_assert_neq(
        strstr(out, "\nusage: kvd --port P [--loops N] [--bind ADDR]"), NULL,
        "%s", out);
  }
  server s = start(); /* a port in use fails cleanly */
  char port[16];
  snprintf(port, sizeof port, "%d", s.port);
  const char *busy[] = {path, "--port", port, NULL};
  cr_assert_eq(run(busy, NULL, out, sizeof out), 1);
  cr_assert_str_eq(out, "kvd: address already in use\n");
  stop(s);
}

/* ---- glob, the server's commands, the bulk limit (Redis 7.0.15's answers,
 * compared reply by reply) ------------------------------------------------ */

/* The matcher itself, compiled into this suite. */
#include "../examples/kvd/store.c"

static bool glob_s(const char *pat, const char *s) {
  return kvd_glob(pat, strlen(pat), s, strlen(s));
}

/* Each answer is redis-server 7.0.15's, from KEYS over the same keys. */
Test(kvd, glob_matches_as_redis_does, .timeout = 10) {
  static const struct {
    const char *pat, *s;
    bool hit;
  } cases[] = {
      {"*", "", false}, /* KEYS * lists "" only by its shortcut */
      {"", "", true},
      {"*", "a", true},
      {"**", "", false},
      {"a*", "a", true},
      {"*a", "ba", true},
      {"?", "", false},
      {"?*", "ab", true},
      {"a?c", "abc", true},
      {"a?c", "ac", false},
      {"a\\*c", "a*c", true},
      {"a\\*c", "abc", false},
      {"[ab]", "b", true},
      {"[^ab]", "b", false},
      {"[^ab]", "c", true},
      {"[b-a]", "a", true}, /* a reversed range */
      {"[a-]", "]", true},  /* Redis: "a-]" is a range up to ']' */
      {"[-a]", "-", true},
      {"[]]", "]", false},
      {"[\\]]", "]", true},
      {"[", "[", false},
      {"[^", "x", true},
      {"[a", "a", true},
      {"\\", "\\", true},
      {"a\\", "a\\", true},
      {"a\\\\b", "a\\b", true},
      {"h[ae]llo", "hallo", true},
      {"h[^e]llo", "hello", false},
      {"[a-\xff]", "b", false}, /* bytes compare as signed char */
      {"[\x80-\xff]", "\xff", true},
      {"*a*a*b", "aaab", true},
      {"*a*a*b", "aab", true},
      {"*a*a*b", "ab", false},
      {"a*b*c", "axxbyyc", true},
      {"a*b*c", "axxbyyd", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_assert_eq(glob_s(cases[i].pat, cases[i].s), cases[i].hit, "'%s' on '%s'",
                 cases[i].pat, cases[i].s);
}

/* A 1 MB pattern against a 1 MB string: no recursion (the old matcher
 * recursed once per star), and retries only from the last star. */
Test(kvd, glob_huge_inputs_use_bounded_stack, .timeout = 10) {
  size_t n = 1 << 20;
  char *pat = malloc(n + 2), *s = malloc(n + 1);
  cr_assert(pat && s);
  for (size_t i = 0; i < n; i += 2)
    pat[i] = '*', pat[i + 1] = 'a';
  memset(s, 'a', n);
  cr_assert(kvd_glob(pat, n, s, n));
  pat[n] = 'b'; /* now it cannot match: every star would have to retry */
  cr_assert(!kvd_glob(pat, n + 1, s, n));
  free(pat);
  free(s);
}

/* Sends one command as RESP and returns the reply's first `want` bytes. */
static void raw_cmd(int fd, const char *const *args, size_t nargs,
                    const char *want) {
  char head[64];
  raw_send(fd, head, (size_t)sprintf(head, "*%zu\r\n", nargs));
  for (size_t i = 0; i < nargs; i++) {
    size_t n = strlen(args[i]);
    raw_send(fd, head, (size_t)sprintf(head, "$%zu\r\n", n));
    raw_send(fd, args[i], n);
    raw_send(fd, "\r\n", 2);
  }
  static char buf[1 << 16];
  raw_recv(fd, buf, strlen(want));
  cr_assert_str_eq(buf, want);
}

Test(kvd, keys_long_and_exponential_patterns_return_at_once, .timeout = 10) {
  server s = start();
  char key[61];
  memset(key, 'a', 60);
  key[60] = '\0';
  EXPECT(s, "OK\n", "SET", key, "1");
  /* 12 s of backtracking before, for this one key */
  EXPECT(s, "(empty array)\n", "KEYS", "*a*a*a*a*a*a*a*b");
  EXPECT(
      s,
      "1) \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n",
      "KEYS", "*a*a*a*a*a*a*a*");
  static char pat[100001]; /* 100 KB: "*a" 50,000 times */
  for (size_t i = 0; i < 100000; i += 2)
    pat[i] = '*', pat[i + 1] = 'a';
  int fd = raw_connect(s);
  raw_cmd(fd, (const char *const[]){"KEYS", pat}, 2, "*0\r\n");
  pat[99999] = '*'; /* "*a" x 49,999 then "**": needs 49,999 a's */
  raw_cmd(fd, (const char *const[]){"KEYS", pat}, 2, "*0\r\n");
  memset(pat, '*', 100000);
  raw_cmd(fd, (const char *const[]){"KEYS", pat}, 2, "*1\r\n$60\r\n");
  close(fd);
  stop(s);
}

/* The commands Redis's test suite runs before each unit (external-server
 * mode, --singledb): the replies are redis-server 7.0.15's. */
Test(kvd, server_commands_reply_as_redis, .timeout = 20) {
  server s = start();
  EXPECT(s, "OK\n", "SELECT", "0");
  EXPECT(s, "(error) ERR DB index is out of range\n", "SELECT", "1");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "SELECT",
         "x");
  EXPECT(s, "(error) ERR wrong number of arguments for 'select' command\n",
         "SELECT");
  EXPECT(s, "OK\n", "MSET", "a", "1", "b", "2");
  EXPECT(s, "OK\n", "SET", "c", "3", "EX", "100");
  int fd = raw_connect(s);
  raw_cmd(fd, (const char *const[]){"INFO", "keyspace"}, 2,
          "$44\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n\r\n");
  raw_cmd(fd, (const char *const[]){"INFO", "nosuch"}, 2, "$0\r\n\r\n");
  cr_assert_not_null(strstr(CLI(s, "INFO"), "redis_version:"));
  EXPECT(s, "(error) ERR syntax error\n", "FLUSHDB", "x");
  EXPECT(s, "OK\n", "FLUSHDB");
  EXPECT(s, "(integer) 0\n", "DBSIZE");
  raw_cmd(fd, (const char *const[]){"INFO", "KEYSPACE"}, 2,
          "$12\r\n# Keyspace\r\n\r\n");
  close(fd);
  EXPECT(s, "OK\n", "FLUSHDB", "ASYNC");
  EXPECT(s, "OK\n", "FUNCTION", "FLUSH");
  EXPECT(s, "OK\n", "FUNCTION", "FLUSH", "SYNC");
  EXPECT(s, "(error) ERR FUNCTION FLUSH only supports SYNC|ASYNC option\n",
         "FUNCTION", "FLUSH", "x");
  EXPECT(s,
         "(error) ERR unknown subcommand or wrong number of arguments for "
         "'FLUSH'. Try FUNCTION HELP.\n",
         "FUNCTION", "FLUSH", "SYNC", "ASYNC");
  EXPECT(s, "(error) ERR unknown subcommand 'FOO'. Try FUNCTION HELP.\n",
         "FUNCTION", "FOO");
  EXPECT(s, "1) \"proto-max-bulk-len\"\n2) \"536870912\"\n", "CONFIG", "GET",
         "proto-max-bulk-len");
  EXPECT(s, "1) \"PROTO-max-bulk-len\"\n2) \"536870912\"\n", "CONFIG", "GET",
         "PROTO-max-bulk-len");
  EXPECT(s, "(empty array)\n", "CONFIG", "GET", "nosuch");
  EXPECT(s, "1) \"proto-max-bulk-len\"\n2) \"536870912\"\n", "CONFIG", "GET",
         "proto*", "*bulk*");
  EXPECT(s, "OK\n", "CONFIG", "SET", "proto-max-bulk-len", "2mb");
  EXPECT(s, "1) \"proto-max-bulk-len\"\n2) \"2097152\"\n", "CONFIG", "GET",
         "proto-max-bulk-len");
  EXPECT(s,
         "(error) ERR CONFIG SET failed (possibly related to argument "
         "'proto-max-bulk-len') - argument must be between 1048576 and "
         "9223372036854775807 inclusive\n",
         "CONFIG", "SET", "proto-max-bulk-len", "1k");
  EXPECT(s,
         "(error) ERR CONFIG SET failed (possibly related to argument "
         "'proto-max-bulk-len') - argument must be a memory value\n",
         "CONFIG", "SET", "proto-max-bulk-len", "-1");
  EXPECT(s,
         "(error) ERR CONFIG SET failed (possibly related to argument "
         "'proto-max-bulk-len') - duplicate parameter\n",
         "CONFIG", "SET", "proto-max-bulk-len", "2mb", "proto-max-bulk-len",
         "3mb");
  EXPECT(s,
         "(error) ERR Unknown option or number of arguments for CONFIG SET - "
         "'nosuch'\n",
         "CONFIG", "SET", "nosuch", "1");
  EXPECT(s,
         "(error) ERR CONFIG SET failed (possibly related to argument "
         "'databases') - can't set immutable config\n",
         "CONFIG", "SET", "databases", "2");
  EXPECT(s, "(error) ERR wrong number of arguments for 'config|set' command\n",
         "CONFIG", "SET", "proto-max-bulk-len");
  EXPECT(s, "(error) ERR wrong number of arguments for 'config|get' command\n",
         "CONFIG", "GET");
  EXPECT(s, "(error) ERR unknown subcommand 'FOO'. Try CONFIG HELP.\n",
         "CONFIG", "FOO");
  EXPECT(s, "1) \"proto-max-bulk-len\"\n2) \"2097152\"\n", "CONFIG", "GET",
         "proto-max-bulk-len"); /* the failed SETs changed nothing */
  EXPECT(s, "(error) ERR wrong number of arguments for 'config|help' command\n",
         "CONFIG", "HELP", "x");
  cr_assert_not_null(strstr(CLI(s, "CONFIG", "HELP"), "    Prints this help."));
  EXPECT(s,
         "(error) ERR wrong number of arguments for 'command|count' command\n",
         "COMMAND", "COUNT", "x");
  static char all[1 << 16]; /* CLI's buffer is reused by the next call */
  snprintf(all, sizeof all, "%s", CLI(s, "COMMAND"));
  cr_assert_str_eq(CLI(s, "COMMAND", "INFO"), all);
  stop(s);
}

Test(kvd, set_repeated_expiry_last_wins, .timeout = 20) {
  server s = start();
  EXPECT(s, "OK\n", "SET", "k", "v", "EX", "10", "EX", "200");
  EXPECT(s, "(integer) 200\n", "TTL", "k");
  EXPECT(s, "OK\n", "SET", "k", "v", "PX", "10000", "PX", "300000");
  EXPECT(s, "(integer) 300\n", "TTL", "k");
  EXPECT(s, "OK\n", "SET", "k", "v", "EX", "abc", "EX", "400");
  EXPECT(s, "(integer) 400\n", "TTL", "k");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "SET", "k",
         "v", "EX", "1", "EX", "abc");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "EX", "10", "PX",
         "20");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "EX", "10",
         "KEEPTTL");
  EXPECT(s, "(error) ERR syntax error\n", "SET", "k", "v", "EX", "abc", "PX");
  EXPECT(s, "OK\n", "SET", "k", "v", "EXAT", "4102444800"); /* 2100 */
  long long ttl = 0;
  cr_assert_eq(sscanf(CLI(s, "TTL", "k"), "(integer) %lld", &ttl), 1);
  cr_assert(ttl > 1000000000, "ttl %lld", ttl);
  EXPECT(s, "OK\n", "SET", "k", "v", "PXAT", "100"); /* 1970: gone at once */
  EXPECT(s, "(integer) -2\n", "TTL", "k");
  stop(s);
}

Test(kvd, expire_checks_options_first, .timeout = 20) {
  server s = start();
  EXPECT(s, "OK\n", "SET", "k", "v");
  EXPECT(s, "(error) ERR Unsupported option foo\n", "EXPIRE", "k", "abc",
         "foo");
  EXPECT(s,
         "(error) ERR NX and XX, GT or LT options at the same time are not "
         "compatible\n",
         "EXPIRE", "k", "abc", "NX", "XX");
  EXPECT(s,
         "(error) ERR GT and LT options at the same time are not compatible\n",
         "PEXPIRE", "k", "abc", "GT", "LT");
  EXPECT(s, "(error) ERR value is not an integer or out of range\n", "EXPIRE",
         "k", "abc", "NX");
  EXPECT(s, "(error) ERR invalid expire time in 'expire' command\n", "EXPIRE",
         "k", "9223372036854775807", "NX");
  EXPECT(s, "(integer) 1\n", "EXPIREAT", "k", "4102444800");
  EXPECT(s, "(integer) 0\n", "EXPIREAT", "k", "4102444801", "NX");
  EXPECT(s, "(integer) 1\n", "PEXPIREAT", "k", "100", "LT"); /* past */
  EXPECT(s, "(integer) 0\n", "EXISTS", "k");
  EXPECT(s, "OK\n", "SET", "k", "v"); /* Redis's suite: a huge negative time */
  EXPECT(s, "(integer) 1\n", "PEXPIREAT", "k", "-9223372036854770000");
  EXPECT(s, "(integer) -2\n", "TTL", "k");
  stop(s);
}

static server start_opt(const char *name, const char *value) {
  char path[PATH_MAX];
  kvd_path(path, sizeof path);
  int o[2];
  cr_assert_eq(pipe(o), 0);
  server s;
  s.pid = fork();
  cr_assert_geq(s.pid, 0);
  if (s.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(o[1], 1);
    close(o[0]), close(o[1]);
    execl(path, path, "--port", "0", name, value, (char *)NULL);
    _exit(127);
  }
  close(o[1]);
  char line[64] = "";
  cr_assert_gt(read(o[0], line, sizeof line - 1), 0);
  close(o[0]);
  cr_assert_eq(sscanf(line, "listening on %d", &s.port), 1, "got '%s'", line);
  return s;
}

/* A 4 MB SET was refused at 512 KiB; the limit is now Redis's 512 MB by
 * default, --proto-max-bulk-len or CONFIG SET proto-max-bulk-len. */
Test(kvd, bulk_limit_is_an_option, .timeout = 30) {
  server s = start();
  static char big[4000001];
  memset(big, 'x', 4000000);
  int fd = raw_connect(s);
  raw_cmd(fd, (const char *const[]){"SET", "big", big}, 3, "+OK\r\n");
  raw_cmd(fd, (const char *const[]){"STRLEN", "big"}, 2, "-ERR unknown");
  close(fd);
  EXPECT(s, "OK\n", "CONFIG", "SET", "proto-max-bulk-len", "1048576");
  fd = raw_connect(s);
  raw_expect(fd, "*1\r\n$1048577\r\n",
             "-ERR Protocol error: invalid bulk length\r\n");
  raw_expect_eof(fd);
  stop(s);

  s = start_opt("--proto-max-bulk-len", "2000000");
  EXPECT(s, "1) \"proto-max-bulk-len\"\n2) \"2000000\"\n", "CONFIG", "GET",
         "proto-max-bulk-len");
  fd = raw_connect(s);
  raw_expect(fd, "*1\r\n$2000001\r\n",
             "-ERR Protocol error: invalid bulk length\r\n");
  raw_expect_eof(fd);
  stop(s);

  char path[PATH_MAX];
  kvd_path(path, sizeof path);
  static char out[4096];
  cr_assert_eq(run((const char *const[]){path, "--port", "0",
                                         "--proto-max-bulk-len", "1000", NULL},
                   NULL, out, sizeof out),
               2, "%s", out); /* below Redis's 1 MiB minimum */
}

/* --stats: SIGUSR1 makes each loop print one line on stdout; the accepted
 * counts add up to the connections made. */
Test(kvd, stats_on_sigusr1_one_line_per_loop, .timeout = 20) {
  char path[PATH_MAX];
  kvd_path(path, sizeof path);
  int o[2];
  cr_assert_eq(pipe(o), 0);
  server s;
  s.pid = fork();
  cr_assert_geq(s.pid, 0);
  if (s.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    dup2(o[1], 1);
    close(o[0]), close(o[1]);
    execl(path, path, "--port", "0", "--loops", "2", "--stats", (char *)NULL);
    _exit(127);
  }
  close(o[1]);
  FILE *out = fdopen(o[0], "r");
  cr_assert_not_null(out);
  cr_assert_eq(fscanf(out, "listening on %d", &s.port), 1);
  cr_assert_eq(fgetc(out), '\n');
  for (int i = 0; i < 3; i++) {
    int fd = raw_connect(s);
    raw_expect(fd, "PING\r\n", "+PONG\r\n");
    close(fd);
  }
  cr_assert_eq(kill(s.pid, SIGUSR1), 0);
  bool seen[2] = {false, false};
  unsigned long long accepted = 0;
  for (int k = 0; k < 2; k++) {
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, out));
    unsigned idx;
    unsigned long long acc, live, turns;
    cr_assert_eq(sscanf(line,
                        "stats loop=%u accepted=%llu live=%llu turns=%llu",
                        &idx, &acc, &live, &turns),
                 4, "line: %s", line);
    cr_assert_lt(idx, 2u, "line: %s", line);
    cr_assert(!seen[idx], "loop %u twice", idx);
    seen[idx] = true;
    cr_assert_leq(live, acc);
    cr_assert(strstr(line, " io_events=") && strstr(line, " busy_ms="),
              "line: %s", line);
    accepted += acc;
  }
  cr_assert_eq(accepted, 3);
  stop(s);
  fclose(out);
}
