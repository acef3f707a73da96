/* weft — the process pool's own state, shared by io/procpool.c (the pool,
 * its queue, workers' lifecycle and dispatch) and io/procpool_reply.c
 * (reading and routing the workers' replies). Never installed; the map
 * (io/procpool_map.c) and the job futures (io/procpool_job.c) do not see
 * it. */
#ifndef WEFT_IO_PROCPOOL_POOL_H
#define WEFT_IO_PROCPOOL_POOL_H

#include "procpool_internal.h"

typedef struct weft__ppw worker;

typedef struct weft__ppj {
  weft__ppsrc src; /* the pool's queue */
  weft_procpool *pool;
  weft_future *future; /* the producer's reference */
  worker *w;           /* running on it */
  bool dropped;        /* taken off the queue by the pool itself */
  size_t frame_len;
  char frame[]; /* header + payload */
} job;

struct weft__ppw {
  weft__list node; /* pool->workers */
  weft_procpool *pool;
  weft_process proc;
  weft_pipe in, out;
  weft_write_req wreq;
  job *job;            /* a single job in hand */
  weft__ppmap *map;    /* or a map's items [first, first + count) */
  size_t first, count; /* ... of which `replied` were answered */
  size_t replied;
  weft__ppmap *map2; /* a map's next message, sent ahead (prefetch) */
  size_t first2, count2;
  char hdr[9]; /* the header of the batch being written */
  char *rbuf;  /* replies read, not yet whole */
  size_t rlen, rcap;
  unsigned open;         /* handles whose close callback is to come */
  size_t done;           /* jobs completed */
  bool starting, inited; /* initializer sent / succeeded */
  bool exited, crashed, writing, member;
  bool retiring; /* resize: no more jobs, not replaced */
  bool recycle;  /* max_jobs_per_worker reached: no more jobs, replaced */
  bool replace;  /* to be replaced once its handles closed */
  int fail;      /* why we killed it mid-job (0: it died by itself) */
};

struct weft_procpool {
  weft_loop *loop;
  char **argv, **env, *cwd; /* copies, for respawns */
  char *init_frame;         /* control frame 'I', or NULL */
  size_t init_len;
  unsigned target, members, alive; /* wanted; see above; structs not freed */
  unsigned max_jobs;
  weft_procpool_output output;
  weft__list workers;
  weft__list queue; /* weft__ppsrc: jobs and maps */
  size_t queued;    /* jobs waiting: single ones and maps' items */
  size_t max_queue;
  int init_err; /* the last initializer failure, with its message */
  weft_procpool_result *init_msg;
  bool closing, terminating;
  weft_procpool_close_cb close_cb;
  void *close_arg;
};

/* procpool.c */
void weft__ppjob_free(job *j);
/* The worker's message is fully answered (`jobs` of them): count them,
 * then dispatch, or close its stdin if it takes no more. */
void weft__ppw_done(worker *w, size_t jobs);
/* A broken reply or pipe: the worker cannot be trusted any more. */
void weft__ppw_kill(worker *w);

static inline bool weft__ppw_busy(const worker *w) {
  return w->job != NULL || w->map != NULL;
}

/* procpool_reply.c */
/* The worker's stdout read callback: replies, parsed and routed. */
void weft__ppw_on_read(weft_stream *s, ssize_t nread, const weft_buf *buf);
/* Reads and handles what the exited worker wrote before it died. */
void weft__ppw_drain(worker *w);

#endif
