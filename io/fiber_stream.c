/* weft — stream conveniences for fibers: make the stream's future, await
 * it, drop it (include/weft/fiber.h, "streams from a fiber"). Nothing here
 * allocates: the future forms draw from the loop's free lists. */
#include <weft/fiber.h>

#include <errno.h>

#include "../promises/fiber_internal.h"

/* Awaits f, the caller's future (shielded: then a cancellation of the
 * fiber leaves f running, see weft__await_shielded). After a
 * cancellation, waits on until f has settled, so that the caller's buffer
 * is no longer in use when this returns. An operation that completed
 * anyway returns its result (no byte lost) and the cancellation is raised
 * again for the fiber's next await. Drops the references; *v gets f's
 * int64 value when it was fulfilled. */
static int finish_as(weft_future *f, bool shielded, int64_t *v) {
  int err = shielded ? weft__await_shielded(f) : weft_await(f);
  bool cancelled = err == -ECANCELED;
  while (cancelled && weft_future_get_state(f) == WEFT_FUTURE_PENDING)
    (void)(shielded ? weft__await_shielded(f) : weft_await(f));
  if (weft_future_get_state(f) == WEFT_FUTURE_FULFILLED) {
    err = 0;
    *v = weft_future_value_i64(f);
    if (cancelled) weft__fiber_recancel(weft_fiber_current());
  } else if (!cancelled) {
    err = weft_future_error(f);
  }
  weft_future_unref(f);
  return err;
}

static int finish(weft_future *f, int64_t *v) { return finish_as(f, false, v); }

/* The byte count of a fulfilled read or write, else its error. */
static ssize_t count_or(int err, int64_t v) {
  return err != 0 ? (ssize_t)err : (ssize_t)v;
}

ssize_t weft_fiber_read(weft_stream *s, void *buf, size_t n) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int64_t v = 0;
  int err = weft_stream_read_some_future(s, buf, n, &f);
  if (err == 0) err = finish(f, &v);
  return count_or(err, v);
}

ssize_t weft_fiber_read_exact(weft_stream *s, void *buf, size_t n) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int64_t v = 0;
  int err = weft_stream_read_exact_future(s, buf, n, &f);
  if (err == 0) err = finish(f, &v);
  return count_or(err, v);
}

ssize_t weft_fiber_read_until(weft_stream *s, void *buf, size_t cap,
                              const void *delim, size_t delim_len) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int64_t v = 0;
  int err = weft_stream_read_until_future(s, buf, cap, delim, delim_len, &f);
  if (err == 0) err = finish(f, &v);
  return count_or(err, v);
}

ssize_t weft_fiber_readline(weft_stream *s, char *buf, size_t cap) {
  if (!weft_in_fiber()) return -EPERM;
  if (buf == NULL || cap < 2) {
    if (buf != NULL && cap > 0) buf[0] = '\0';
    return -EINVAL;
  }
  ssize_t n = weft_fiber_read_until(s, buf, cap - 1, "\n", 1);
  buf[n > 0 ? n : 0] = '\0';
  return n;
}

ssize_t weft_fiber_write(weft_stream *s, const void *buf, size_t n) {
  if (!weft_in_fiber()) return -EPERM;
  if (buf == NULL || n == 0) return -EINVAL;
  weft_buf b = weft_buf_init((void *)buf, n);
  weft_future *f;
  int64_t v = 0;
  int err = weft_stream_write_future(s, &b, 1, &f);
  /* shielded: a cancel must not cut the write off while weft may still
   * send from buf (the bytes stay queued, as asyncio's write does when
   * drain is cancelled) */
  if (err == 0) err = finish_as(f, true, &v);
  return count_or(err, v);
}

int weft_fiber_connect(weft_tcp *t, const struct sockaddr *addr) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int64_t v = 0;
  int err = weft_tcp_connect_future(t, addr, &f);
  return err != 0 ? err : finish(f, &v);
}

int weft_fiber_accept(weft_stream *server, weft_stream *client) {
  if (!weft_in_fiber()) return -EPERM;
  weft_future *f;
  int64_t v = 0;
  int err = weft_stream_accept_future(server, client, &f);
  return err != 0 ? err : finish(f, &v);
}
