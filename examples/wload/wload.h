/* wload — shared declarations of the load generator's parts.
 *
 * wload.c    the command line, the loop group, the merged report
 * hist.c     the latency histogram (log-linear, HDR-style, ~0.8% buckets)
 * proto.c    requests (HTTP/1.1, RESP) and incremental response parsers
 * conn.c     one loop's connections: connect, send, parse, pace, time out
 *
 * One loop per thread (a weft loop group without a listener); each loop
 * owns its connections, histogram and counters outright, and the main
 * thread merges them after every thread has ended, so the hot path has no
 * lock and no shared write but -n's claims and ends and the progress count
 * (atomic adds, once per callback or pipeline refill, not per request). */
#ifndef WLOAD_H
#define WLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <weft.h>

/* ---- histogram (hist.c) -------------------------------------------------- */

/* Values are nanoseconds. Below 2^WL_SUB_BITS a bucket is one value; above,
 * each power of two is split into 2^(WL_SUB_BITS-1) linear buckets, so a
 * bucket is at most 1/128 of its lowest value wide: a reported value (the
 * bucket's upper end, clamped to max) is at most 0.8% above the true one,
 * never below it. */
#define WL_SUB_BITS 8
#define WL_HALF (1u << (WL_SUB_BITS - 1))
#define WL_BUCKETS ((64 - WL_SUB_BITS + 1) * WL_HALF + WL_HALF)

typedef struct wl_hist {
  uint64_t count, min, max;
  double sum;
  uint64_t n[WL_BUCKETS];
} wl_hist;

void wl_hist_init(wl_hist *h);
void wl_hist_record(wl_hist *h, uint64_t v);
void wl_hist_merge(wl_hist *into, const wl_hist *from);
/* The value at percentile p (0..100): the upper end of the bucket holding
 * the ceil(p/100*count)-th smallest value, clamped to [min, max]. 0 when
 * empty. */
uint64_t wl_hist_percentile(const wl_hist *h, double p);
/* Bucket i's lowest and highest values. */
uint64_t wl_hist_bucket_lo(unsigned i);
uint64_t wl_hist_bucket_hi(unsigned i);

/* ---- protocols (proto.c) ------------------------------------------------- */

enum wl_proto { WL_HTTP = 0, WL_RESP = 1 };

/* How a request ends: a response (classified) or a transport error. */
enum wl_err {
  WL_E_CONNECT, /* connect failed (per attempt, not per request) */
  WL_E_READ,    /* reset, EOF or a read error with the request in flight */
  WL_E_WRITE,   /* the request could not be written */
  WL_E_TIMEOUT, /* no whole response within --timeout */
  WL_E_PARSE,   /* the response did not parse */
  WL_E_STATUS,  /* HTTP status 400 or above */
  WL_E_REPLY,   /* RESP error reply (-ERR ...) */
  WL_E_TYPE,    /* RESP reply of the wrong type for its command */
  WL_E_COUNT
};
extern const char *const wl_err_names[WL_E_COUNT];

/* A request template: its bytes, sent as they are (HTTP) or with every
 * "__rand_int__" overwritten by a 12-digit random key (RESP, as
 * redis-benchmark does). */
typedef struct wl_req {
  char *bytes;
  size_t len;
  bool head;        /* HTTP HEAD: the response has no body */
  size_t *rand_off; /* RESP: offsets of the placeholders in bytes */
  unsigned nrand;
  char expect; /* RESP: expected reply type ('+', '$', ':', '*'), 0: any */
} wl_req;

#define WL_RAND_DIGITS 12

/* Writes request r into out (room: r->len), with its random keys drawn
 * from *rng in [0, keyspace); returns its length. */
size_t wl_req_build(const wl_req *r, char *out, uint64_t *rng,
                    uint64_t keyspace);
/* Fills r from a RESP command line of space-separated words ("SET
 * key:__rand_int__ __data__"); "__data__" becomes data_size bytes of 'x';
 * the expected reply type comes from the command name. 0, -EINVAL (no
 * word) or -ENOMEM. */
int wl_resp_template(wl_req *r, const char *line, size_t data_size);
/* Fills r with an HTTP/1.1 request. 0 or -ENOMEM. */
int wl_http_template(wl_req *r, const char *method, const char *host,
                     const char *path, const char *headers, const char *body);
void wl_req_free(wl_req *r);

/* An incremental response parser: feed bytes, it says how many it used
 * and whether a response ended there. */
enum wl_pev { WL_P_MORE = 0, WL_P_DONE = 1, WL_P_ERROR = 2 };
typedef struct wl_parser {
  int state;
  uint64_t left; /* body/chunk/bulk bytes still to skip */
  int status;    /* HTTP status of the response that ended */
  bool close;    /* HTTP: Connection: close (or HTTP/1.0 without keep-alive) */
  bool head;     /* HTTP: the response answers a HEAD */
  char type;     /* RESP: the top-level reply type */
  int depth;     /* RESP: open aggregates */
  int64_t pending[8];
} wl_parser;

void wl_parser_reset(wl_parser *p, bool head);
/* Consumes a prefix of p[0..n) into the response being parsed; *ev says
 * what happened at the end of that prefix: MORE (all n used, or a line is
 * incomplete: the rest must be kept and fed again with more bytes), DONE (a
 * response ended after the returned count), ERROR. */
size_t wl_http_feed(wl_parser *ps, const char *p, size_t n, int *ev);
size_t wl_resp_feed(wl_parser *ps, const char *p, size_t n, int *ev);
/* True at end of stream for a response whose body runs to EOF. */
bool wl_http_eof_ends(const wl_parser *ps);

/* ---- the run and its loops (conn.c) -------------------------------------- */

typedef struct wl_config {
  enum wl_proto proto;
  struct sockaddr_storage addr;
  unsigned threads, conns, depth;
  uint64_t duration_ns, warmup_ns, timeout_ns;
  uint64_t nreq; /* 0: by duration */
  double rate;   /* requests/s over all connections; 0: closed loop */
  wl_req *reqs;  /* round robin */
  unsigned nreqs;
  uint64_t keyspace;
} wl_config;

/* One loop's figures, merged by the main thread after the threads end. */
typedef struct wl_stats {
  uint64_t requests;  /* ended in the window: responses + request errors */
  uint64_t responses; /* parsed whole */
  uint64_t errors[WL_E_COUNT];
  uint64_t status[6]; /* [1]..[5]: 1xx..5xx */
  uint64_t bytes_in, bytes_out;
  uint64_t last_end_ns; /* when the last request ended */
  wl_hist hist;
} wl_stats;

typedef struct wl_run wl_run;
typedef struct wl_worker wl_worker;

struct wl_run {
  const wl_config *cfg;
  weft_lgroup *group;
  uint64_t t0_ns;     /* start of the run (wl_now_ns) */
  uint64_t win_start; /* t0 + warmup: figures count from here */
  uint64_t win_end;   /* win_start + duration (UINT64_MAX with -n) */
  uint64_t deadline;  /* the loops stop here at the latest */
  _Atomic uint64_t claimed, ended; /* -n */
  _Atomic unsigned done;           /* loops finished */
  _Atomic uint64_t progress;       /* requests ended, for the progress line */
  wl_worker **workers;
  int failed; /* first setup error of a loop */
};

/* CLOCK_MONOTONIC in nanoseconds (the timerfd's clock). */
uint64_t wl_now_ns(void);

/* The loop group's callbacks (arg: the wl_run). */
int wl_worker_init(weft_lgroup *g, unsigned index, weft_loop *loop, void *arg);
void wl_worker_stop(weft_lgroup *g, unsigned index, weft_loop *loop, void *arg);
/* Frees a worker after weft_lgroup_free(); its stats into *st. */
void wl_worker_free(wl_worker *w, wl_stats *st);

#endif /* WLOAD_H */
