/* weft tests: children for the process suites (test_process*.c). */
#ifndef WEFT_TEST_CHILD_H
#define WEFT_TEST_CHILD_H

#include <sys/types.h>

#include <weft.h>

#define TH_SH(script) ((char *const[]){"sh", "-c", script, NULL})

/* Exits seen by th_on_exit_count (through the process's base.data). */
typedef struct th_exits {
  int calls;
  int64_t status;
  int sig;
  int64_t code_sum;
} th_exits;

/* An exit callback: records into base.data (a th_exits) and closes. */
void th_on_exit_count(weft_process *p, int64_t status, int sig);

/* A pipe that collects what it reads, NUL-terminated, until EOF (then it
 * closes itself). The buffer is malloc'ed: free(k->buf) afterwards. */
typedef struct th_sink {
  weft_pipe pipe;
  char *buf;
  size_t len, cap;
  int eof;
} th_sink;
void th_sink_read(weft_stream *s, ssize_t n, const weft_buf *buf);
void th_sink_start(th_sink *k);

/* Spawns argv with stdout into `out` (may be NULL: inherited), stdin
 * ignored, exits into `e` via th_on_exit_count; asserts success. */
void th_spawn_out(weft_loop *loop, weft_process *p, th_exits *e,
                  char *const *argv, th_sink *out);

/* Runs the loop, paced by a 1 ms timer (an orphan does not keep the loop
 * alive), until `pid` is no longer a zombie child of ours (waitid with
 * WNOWAIT looks without reaping); asserts the loop reaped it within 5000
 * turns. The timer is closed before returning. */
void th_wait_reaped(weft_loop *loop, pid_t pid);

#endif
