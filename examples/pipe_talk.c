/* pipe_talk: a parent and a child talking over a pipe, the weft way (the
 * counterpart of Python's multiprocessing.Pipe example).
 *
 *   pipe_talk            the parent: starts itself again as the child
 *   pipe_talk --child    the child: answers each line it reads
 *
 * The parent spawns its own binary with stdin and stdout as pipes (weft
 * streams), sends a few lines, prints each answer as it arrives, then
 * closes the child's stdin; the child sees end of file and exits, and the
 * parent reports how. Both sides run a weft loop: the child opens its
 * stdin and stdout as weft pipes. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#include "args.h"

static const char usage_text[] =
    "usage: pipe_talk\n"
    "  Starts itself again as a child (pipe_talk --child) and talks to it\n"
    "  over two pipes: the child answers each line upper-cased. No options.\n";

/* ---- the child: read lines, answer "pong: LINE" (upper-cased) --------------
 */

typedef struct child {
  weft_pipe in, out;
  char line[256];
  size_t len;
} child;

static void answered(weft_write_req *req, int status) {
  (void)status;
  free(req);
}

static void answer(child *c) {
  weft_write_req *req = malloc(sizeof *req + 300);
  if (req == NULL) return;
  char *text = (char *)(req + 1);
  for (size_t i = 0; i < c->len; i++)
    c->line[i] = (char)toupper((unsigned char)c->line[i]);
  int n = snprintf(text, 300, "pong: %.*s\n", (int)c->len, c->line);
  weft_buf b = weft_buf_init(text, (size_t)n);
  if (weft_stream_write(req, &c->out.stream, &b, 1, answered) != 0) free(req);
}

static void child_read(weft_stream *s, ssize_t n, const weft_buf *buf) {
  child *c = s->base.data;
  if (n < 0) { /* the parent closed our stdin: done */
    weft_close(&c->in.stream.base, NULL);
    weft_close(&c->out.stream.base, NULL); /* queued answers fail; fine */
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      answer(c);
      c->len = 0;
    } else if (c->len < sizeof c->line) {
      c->line[c->len++] = ch;
    }
  }
}

static int run_child(weft_loop *loop) {
  child c = {0};
  weft_pipe_init(loop, &c.in);
  weft_pipe_init(loop, &c.out);
  c.in.stream.base.data = &c;
  if (weft_pipe_open(&c.in, dup(0)) != 0 || weft_pipe_open(&c.out, dup(1)) != 0)
    return 1;
  weft_stream_read_start(&c.in.stream, NULL, child_read);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return 0;
}

/* ---- the parent
 * --------------------------------------------------------------- */

static const char *const lines[] = {"hello", "how are you", "42", "bye"};
enum { NLINES = sizeof lines / sizeof lines[0] };

typedef struct parent {
  weft_process proc;
  weft_pipe to_child, from_child;
  weft_write_req req;
  weft_buf bufs[2 * NLINES];
  int answers;
  size_t heard_len; /* bytes of the answer being printed */
} parent;

static void heard(weft_stream *s, ssize_t n, const weft_buf *buf) {
  parent *p = s->base.data;
  if (n < 0) {
    weft_close(&s->base, NULL);
    return;
  }
  /* answers may arrive several to a read, or split across reads */
  for (ssize_t i = 0; i < n; i++) {
    if (p->heard_len == 0) fputs("parent heard: ", stdout);
    putchar(buf->base[i]);
    p->heard_len++;
    if (buf->base[i] == '\n') {
      p->answers++;
      p->heard_len = 0;
    }
  }
  fflush(stdout);
  if (p->answers == NLINES) /* every answer is in: hang up */
    weft_close(&p->to_child.stream.base, NULL);
}

static void child_exited(weft_process *proc, int64_t status, int sig) {
  if (sig)
    printf("child %d killed by signal %d\n", (int)proc->pid, sig);
  else
    printf("child %d exited with status %d\n", (int)proc->pid, (int)status);
  weft_close(&proc->base, NULL);
}

static int run_parent(weft_loop *loop) {
  parent p = {0};
  weft_pipe_init(loop, &p.to_child);
  weft_pipe_init(loop, &p.from_child);
  p.from_child.stream.base.data = &p;
  weft_stdio st[3] = {{WEFT_STDIO_PIPE, -1, &p.to_child},
                      {WEFT_STDIO_PIPE, -1, &p.from_child},
                      {WEFT_STDIO_INHERIT}};
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len < 0) return 1;
  self[len] = '\0';
  weft_process_options o = {.argv = (char *const[]){self, "--child", NULL},
                            .stdio = st,
                            .stdio_count = 3,
                            .exit_cb = child_exited};
  int err = weft_spawn(loop, &p.proc, &o);
  if (err != 0) {
    fprintf(stderr, "pipe_talk: spawn: %s\n", weft_strerror(err));
    return 1;
  }
  for (int i = 0; i < NLINES; i++) {
    printf("parent says: %s\n", lines[i]);
    p.bufs[2 * i] = weft_buf_init((char *)lines[i], strlen(lines[i]));
    p.bufs[2 * i + 1] = weft_buf_init("\n", 1);
  }
  fflush(stdout);
  weft_stream_write(&p.req, &p.to_child.stream, p.bufs, 2 * NLINES, NULL);
  weft_stream_read_start(&p.from_child.stream, NULL, heard);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return p.answers == NLINES ? 0 : 1;
}

int main(int argc, char **argv) {
  bool is_child = argc == 2 && strcmp(argv[1], "--child") == 0;
  if (!is_child) ex_no_args(argc, argv, usage_text);
  weft_loop *loop;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  int rc = is_child ? run_child(loop) : run_parent(loop);
  weft_loop_free(loop);
  return rc;
}
