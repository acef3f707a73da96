/* weft — what io/loopgroup.c and io/loopgroup_call.c share. Never
 * installed. */
#ifndef WEFT_IO_LOOPGROUP_INTERNAL_H
#define WEFT_IO_LOOPGROUP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/internal.h"
#include "weft/loopgroup.h"

/* A loop's drain phases, in order (its own thread reads and writes them). */
enum {
  WEFT__LG_RUN = 0,   /* serving */
  WEFT__LG_DRAINING,  /* not accepting; connections finish until the deadline */
  WEFT__LG_ABORTED,   /* the deadline passed: connections were told to close */
  WEFT__LG_FINISHING, /* no connection left: closing the loop's handles */
  WEFT__LG_DONE       /* the thread ends */
};

/* One loop of a group. */
typedef struct weft__lg_loop {
  struct weft_lgroup *g;
  unsigned index;
  weft_loop *loop;
  pthread_t thread;
  int lfd;                 /* this loop's listening socket, or -1 */
  ev_io lio;               /* its readiness */
  weft_timer retry;        /* accept after EMFILE */
  weft_timer deadline;     /* the drain's deadline */
  weft_signal sint, sterm; /* loop 0 with stop_signals */
  bool signals;
  int phase;               /* WEFT__LG_*, this loop's thread only */
  struct weft__list conns; /* live weft_lgroup_conn.node */
  _Atomic uint64_t accepted, live;
  atomic_int inflight; /* fds handed to this loop, not yet opened */
  atomic_bool ended;   /* past its drain: runs no more user code */
  _Atomic(void *) local;
} weft__lg_loop;

struct weft_lgroup {
  weft_lgroup_options o;
  unsigned n;
  weft__lg_loop *loops;
  struct sockaddr_storage addr;
  socklen_t alen;
  bool listening, started, joined;
  weft_lgroup_dist dist;
  unsigned made; /* threads created */
  unsigned rr;   /* the acceptor's last choice (hand-off) */
  atomic_bool stop_claimed, stop_asked, accept_closed;
  _Atomic uint64_t deadline_ms;
  pthread_mutex_t mu; /* guards inited, ended, init_err; cv signals them */
  pthread_cond_t cv;
  unsigned inited, ended;
  int init_err;
};

/* The group loop this thread runs (NULL on any other thread). */
extern _Thread_local weft__lg_loop *weft__lg_cur;

#endif
