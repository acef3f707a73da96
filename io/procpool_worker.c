/* weft — the process pool's worker side: weft_procpool_worker_run() reads
 * job frames, runs the handler, writes reply frames (io/procpool_internal.h
 * has the wire). Blocking and loop-free: it runs in the worker process.
 *
 * Started by a pool (WEFT__PP_ENV set), it first moves the pool's pipes off
 * fds 0 and 1 to close-on-exec fds, so that neither the handler's reads and
 * prints nor the programs it runs can touch the framing; stdin becomes
 * /dev/null, stdout fd 3 (the parent's stdout, or /dev/null), and in
 * capture mode stdout and stderr become two memory files that are emptied
 * before each job and sent with its reply. Replies to a batch are written
 * together (one write per 64 KiB). */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "procpool_internal.h"

#define FLUSH_AT ((size_t)64 << 10)

typedef struct wk {
  const weft_procpool_worker_options *o;
  int rfd, wfd;
  int cap[2]; /* capture: the memory files behind fds 1 and 2, else -1 */
  char *ibuf, *obuf;
  size_t icap, olen, ocap;
} wk;

/* Reads exactly n bytes: 1 done, 0 at end of input before any byte, < 0
 * on an error or a frame cut short. */
static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return got == 0 ? 0 : -EPROTO;
    got += (size_t)r;
  }
  return 1;
}

static int write_full(int fd, const void *buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t r = write(fd, (const char *)buf + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    put += (size_t)r;
  }
  return 0;
}

static int flush(wk *k) {
  int err = k->olen ? write_full(k->wfd, k->obuf, k->olen) : 0;
  k->olen = 0;
  return err;
}

static char *oreserve(wk *k, size_t n) {
  if (k->olen + n > k->ocap) {
    size_t cap = k->ocap ? k->ocap : 65536;
    while (cap < k->olen + n)
      cap *= 2;
    char *b = weft__realloc(k->obuf, cap);
    if (b == NULL) return NULL;
    k->obuf = b;
    k->ocap = cap;
  }
  char *p = k->obuf + k->olen;
  k->olen += n;
  return p;
}

/* ---- capture --------------------------------------------------------------
 */

static void capture_reset(wk *k) {
  for (int i = 0; i < 2; i++)
    if (k->cap[i] >= 0) {
      if (ftruncate(k->cap[i], 0) != 0) { /* a memfd: cannot fail */
      }
      lseek(k->cap[i], 0, SEEK_SET);
    }
}

/* The bytes written to capture file i since the reset, in a malloc'ed
 * buffer (*len bytes); NULL and 0 when empty or on a failure. */
static char *capture_take(wk *k, int i, size_t *len) {
  *len = 0;
  off_t end = lseek(k->cap[i], 0, SEEK_CUR);
  if (end <= 0) return NULL;
  if ((size_t)end > WEFT__PP_MAX_FRAME / 4) end = WEFT__PP_MAX_FRAME / 4;
  char *b = weft__malloc((size_t)end);
  if (b == NULL) return NULL;
  ssize_t n = pread(k->cap[i], b, (size_t)end, 0);
  if (n <= 0) {
    weft__free(b);
    return NULL;
  }
  *len = (size_t)n;
  return b;
}

/* ---- one reply ------------------------------------------------------------
 */

static int put_reply(wk *k, int status, const weft_buf *out) {
  bool ext = k->cap[0] >= 0;
  size_t ol = 0, el = 0;
  char *o = NULL, *e = NULL;
  if (ext) {
    fflush(stdout);
    fflush(stderr);
    o = capture_take(k, 0, &ol);
    e = capture_take(k, 1, &el);
  }
  size_t len = out->len + (ext ? WEFT__PP_EXT_HDR + ol + el : 0);
  char *p = oreserve(k, WEFT__PP_REPLY_HDR + len);
  int err = p == NULL ? -ENOMEM : 0;
  if (p != NULL) {
    weft__put_be32(p, (uint32_t)len | (ext ? WEFT__PP_EXT : 0));
    weft__put_be32(p + 4, (uint32_t)status);
    p += WEFT__PP_REPLY_HDR;
    if (ext) {
      weft__put_be32(p, (uint32_t)out->len);
      weft__put_be32(p + 4, (uint32_t)ol);
      weft__put_be32(p + 8, (uint32_t)el);
      p += WEFT__PP_EXT_HDR;
    }
    if (out->len) memcpy(p, out->base, out->len);
    if (ol) memcpy(p + out->len, o, ol);
    if (el) memcpy(p + out->len + ol, e, el);
  }
  weft__free(o);
  weft__free(e);
  return err;
}

static int run_one(wk *k, const char *in, size_t len) {
  if (k->cap[0] >= 0) capture_reset(k);
  weft_buf out = {NULL, 0};
  int status = k->o->handler(in, len, &out, k->o->arg);
  if (status > 0) status = 0;
  if (out.len > WEFT__PP_MAX_FRAME / 2 || (out.len && out.base == NULL)) {
    free(out.base);
    out = (weft_buf){NULL, 0};
    status = -EMSGSIZE;
  }
  int err = put_reply(k, status, &out);
  free(out.base);
  if (err == 0 && k->olen >= FLUSH_AT) err = flush(k);
  return err;
}

static int run_batch(wk *k, const char *p, size_t len) {
  if (len < 4) return -EPROTO;
  size_t count = weft__get_be32(p), off = 4;
  for (size_t i = 0; i < count; i++) {
    if (len - off < 4) return -EPROTO;
    size_t il = weft__get_be32(p + off);
    off += 4;
    if (len - off < il) return -EPROTO;
    int err = run_one(k, p + off, il);
    if (err != 0) return err;
    off += il;
  }
  return off == len ? 0 : -EPROTO;
}

static int run_init(wk *k, const char *p, size_t len) {
  weft_buf msg = {NULL, 0};
  int status = -ENOTSUP;
  if (k->o->init != NULL)
    status = k->o->init(p, len, &msg, k->o->arg);
  else if ((msg.base = strdup("the worker has no initializer")) != NULL)
    msg.len = strlen(msg.base);
  if (status > 0) status = 0;
  if (msg.len > WEFT__PP_MAX_FRAME / 2) msg.len = 0;
  int err = put_reply(k, status, &msg);
  free(msg.base);
  if (err == 0) err = flush(k);
  return err != 0 ? err : status;
}

/* ---- the frame loop -------------------------------------------------------
 */

static int read_frame(wk *k, size_t len) {
  if (len > k->icap) {
    char *b = weft__realloc(k->ibuf, len);
    if (b == NULL) return -ENOMEM;
    k->ibuf = b;
    k->icap = len;
  }
  int r = read_full(k->rfd, k->ibuf, len);
  return len == 0 || r == 1 ? 0 : r < 0 ? r : -EPROTO;
}

static int one_frame(wk *k, uint32_t hdr) {
  size_t len = hdr & ~WEFT__PP_CTRL;
  if (len > WEFT__PP_MAX_FRAME) return -EPROTO;
  int err = read_frame(k, len);
  if (err != 0) return err;
  if (!(hdr & WEFT__PP_CTRL)) {
    err = run_one(k, k->ibuf, len);
  } else if (len >= 1 && k->ibuf[0] == 'B') {
    err = run_batch(k, k->ibuf + 1, len - 1);
  } else if (len >= 1 && k->ibuf[0] == 'I') {
    return run_init(k, k->ibuf + 1, len - 1);
  } else {
    return -EPROTO;
  }
  return err == 0 ? flush(k) : err;
}

/* ---- set-up: where the pool's pipes and the output go --------------------
 */

static int move_fd(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 4); }

static int setup_capture(wk *k) {
  for (int i = 0; i < 2; i++) {
    k->cap[i] = memfd_create(i ? "weft-stderr" : "weft-stdout", MFD_CLOEXEC);
    if (k->cap[i] < 0 || dup2(k->cap[i], i + 1) < 0) return -errno;
  }
  return 0;
}

static int setup(wk *k) {
  const char *mode = getenv("WEFT_PROCPOOL_STDIO"); /* WEFT__PP_ENV */
  if (mode == NULL) return 0; /* run by hand: frames on stdin and stdout */
  bool capture = strcmp(mode, "capture") == 0;
  unsetenv(WEFT__PP_ENV); /* the handler's children are not workers */
  if ((k->rfd = move_fd(0)) < 0 || (k->wfd = move_fd(1)) < 0) return -errno;
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return -errno;
  int err = dup2(null, 0) < 0 ? -errno : 0;
  close(null);
  if (err == 0 && fcntl(3, F_GETFD) >= 0) {
    if (dup2(3, 1) < 0) err = -errno;
    close(3);
  }
  if (err == 0 && capture) err = setup_capture(k);
  return err;
}

int weft_procpool_worker_run(const weft_procpool_worker_options *o) {
  if (o == NULL || o->handler == NULL) return -EINVAL;
  signal(SIGPIPE, SIG_IGN); /* a gone parent: fail the write, exit */
  wk k = {.o = o, .rfd = 0, .wfd = 1, .cap = {-1, -1}};
  int err = setup(&k);
  while (err == 0) {
    char hdr[4];
    int r = read_full(k.rfd, hdr, sizeof hdr);
    if (r <= 0) {
      err = r;
      break;
    }
    err = one_frame(&k, weft__get_be32(hdr));
  }
  weft__free(k.ibuf);
  weft__free(k.obuf);
  return err;
}

int weft_procpool_worker_main(weft_procpool_handler fn, void *arg) {
  weft_procpool_worker_options o = {.handler = fn, .arg = arg};
  return weft_procpool_worker_run(&o);
}

int weft_procpool_failf(weft_buf *out, int code, const char *fmt, ...) {
  if (out == NULL || fmt == NULL) return -EINVAL;
  *out = (weft_buf){NULL, 0};
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) return -ENOMEM;
  *out = weft_buf_init(s, (size_t)n);
  return code < 0 ? code : -EINVAL;
}
