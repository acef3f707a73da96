#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"

void th_on_exit_count(weft_process *p, int64_t status, int sig) {
  th_exits *e = p->base.data;
  e->calls++;
  e->status = status;
  e->sig = sig;
  e->code_sum += status;
  weft_close(&p->base, NULL);
}

void th_sink_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  th_sink *k = (th_sink *)s;
  if (n > 0) {
    if (k->len + (size_t)n + 1 > k->cap) {
      k->cap = (k->len + (size_t)n + 1) * 2;
      k->buf = realloc(k->buf, k->cap);
      cr_assert_not_null(k->buf);
    }
    memcpy(k->buf + k->len, buf->base, (size_t)n);
    k->len += (size_t)n;
    k->buf[k->len] = '\0';
  } else if (n < 0) {
    cr_assert_eq(n, WEFT_EOF);
    k->eof++;
    weft_close(&s->base, NULL);
  }
}

void th_sink_start(th_sink *k) {
  cr_assert_eq(weft_stream_read_start(&k->pipe.stream, NULL, th_sink_read), 0);
}

void th_spawn_out(weft_loop *loop, weft_process *p, th_exits *e,
                  char *const *argv, th_sink *out) {
  weft_stdio st[2] = {{WEFT_STDIO_IGNORE},
                      {WEFT_STDIO_PIPE, -1, out ? &out->pipe : NULL}};
  if (out) cr_assert_eq(weft_pipe_init(loop, &out->pipe), 0);
  weft_process_options o = {.argv = argv,
                            .stdio = st,
                            .stdio_count = out ? 2 : 1,
                            .exit_cb = th_on_exit_count};
  p->base.data = e;
  cr_assert_eq(weft_spawn(loop, p, &o), 0);
  if (out) th_sink_start(out);
}

static void pace(weft_timer *t) { (void)t; }
static void pace_closed(weft_handle *h) { *(bool *)h->data = true; }

void th_wait_reaped(weft_loop *loop, pid_t pid) {
  weft_timer t;
  bool closed = false;
  cr_assert_eq(weft_timer_init(loop, &t), 0);
  t.base.data = &closed;
  cr_assert_eq(weft_timer_start(&t, pace, 1, 1), 0);
  siginfo_t si;
  int turns = 0;
  while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         turns++ < 5000)
    weft_loop_run(loop, WEFT_RUN_ONCE);
  cr_assert_eq(errno, ECHILD, "the loop did not reap %d", (int)pid);
  weft_close(&t.base, pace_closed);
  while (!closed)
    weft_loop_run(loop, WEFT_RUN_NOWAIT);
}
