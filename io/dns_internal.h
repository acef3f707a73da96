/* weft — what io/dns.c (channels, query lifecycle), io/dns_query.c
 * (getaddrinfo, getnameinfo) and io/dns_hosts.c (the hosts-file table)
 * share. Never installed. */
#ifndef WEFT_IO_DNS_INTERNAL_H
#define WEFT_IO_DNS_INTERNAL_H

#include <ares.h>
#include <sys/stat.h>
#include <time.h>

#include "core/internal.h"
#include "weft/dns.h"
#include "weft/future.h"

/* ---- the hosts-file table (io/dns_hosts.c) ---- */

enum {
  WEFT__HOSTS_NONE,    /* not loaded (first use, new path, or -ENOMEM) */
  WEFT__HOSTS_LOADED,  /* parsed: the table answers */
  WEFT__HOSTS_ABSENT,  /* missing or unreadable: no names, no localhost */
  WEFT__HOSTS_TOO_BIG, /* over a cap: c-ares reads the file (or -EFBIG) */
};

/* One name of one line, with that line's address. */
typedef struct weft__hosts_rec {
  uint32_t hash;    /* of the name, case-folded */
  uint32_t name;    /* offset of the NUL-terminated name in buf */
  uint32_t line;    /* line number: a line counts once per name */
  uint32_t next;    /* next record in the bucket, in file order */
  uint8_t family;   /* AF_INET or AF_INET6 */
  uint8_t addr[16]; /* 4 or 16 bytes */
} weft__hosts_rec;

/* What stat() said of the file: a change of any field re-reads it. */
typedef struct weft__hosts_sig {
  int err; /* stat's errno, or 0 */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime, ctime;
} weft__hosts_sig;

typedef struct weft__dns_hosts {
  char *path; /* weft_dns_set_hosts_file(), or NULL for /etc/hosts */
  int state;  /* WEFT__HOSTS_* */
  weft__hosts_sig sig;
  uint64_t checked_at; /* loop time of the last stat() */
  char *buf;           /* the file's text, names NUL-terminated in place */
  weft__hosts_rec *recs;
  uint32_t *buckets; /* n_buckets (a power of two) chain heads */
  size_t n_recs, n_buckets;
} weft__dns_hosts;

typedef void (*weft__hosts_visit)(void *arg, int family, const uint8_t *addr);

/* Re-validates the table (a stat() at most once per
 * WEFT_DNS_HOSTS_RECHECK_MS of loop time `now`), re-reading the file when
 * it changed. 0 (see h->state), or -ENOMEM. */
int weft__dns_hosts_refresh(weft__dns_hosts *h, uint64_t now);
/* Calls visit (if not NULL) for each address of `name` of `family`
 * (AF_UNSPEC: both), in file order; returns how many. */
size_t weft__dns_hosts_find(const weft__dns_hosts *h, const char *name,
                            int family, weft__hosts_visit visit, void *arg);
/* A new path ("/etc/hosts" is the default); the table reloads. 0, -ENOMEM. */
int weft__dns_hosts_set_path(weft__dns_hosts *h, const char *path);
/* Frees the table and the path. */
void weft__dns_hosts_free(weft__dns_hosts *h);

/* ---- channels and queries ---- */

struct weft__dns_state;

/* A c-ares channel and the state it belongs to (its socket callbacks'
 * data, so each socket knows which channel to process). */
typedef struct weft__dns_chan {
  struct weft__dns_state *st;
  ares_channel ch; /* NULL until opened */
} weft__dns_chan;

typedef struct weft__dns_state {
  weft_loop *loop;
  /* lookups "b" (DNS only): forward lookups after weft's own hosts-file
   * step, and everything with the hosts file off. NULL until first use
   * (or after a failed reopen) */
  weft__dns_chan dns;
  /* lookups "fb" (c-ares reads the hosts file, then DNS), opened on first
   * need while the hosts file is on: reverse lookups, and forward ones the
   * table cannot answer (file over a cap, HOSTALIASES) */
  weft__dns_chan files;
  weft__dns_hosts hosts;
  weft_timer timer; /* c-ares' next deadline (see weft__dns_rearm) */
  weft__list socks; /* weft__dns_sock: sockets c-ares asked us to watch */
  weft__list spare; /* recycled weft__dns_sock */
  unsigned n_spare;
  weft__list queries;   /* weft__dns_query whose owner still waits */
  weft__list cancelled; /* callback-form queries awaiting -ECANCELED */
  bool cancel_queued;   /* deliver_cancelled is on the call_soon queue */
  unsigned in_ares;     /* queries c-ares still holds */
  unsigned processing;  /* inside ares_process_fd (see process()) */
  int timeout_ms, tries;
  bool no_hosts_file; /* weft_dns_use_hosts_file(loop, false): DNS only */
  char *servers;      /* as given to weft_dns_set_servers(), or NULL */
  int sock_errno;     /* why c-ares' last socket() failed, else 0 */
} weft__dns_state;

typedef enum weft__dns_kind { WEFT__DNS_ADDR, WEFT__DNS_NAME } weft__dns_kind;

typedef struct weft__dns_query {
  weft__list node; /* in st->queries or st->cancelled */
  weft__dns_state *st;
  weft__dns_kind kind;
  union {
    weft_getaddrinfo_cb addr;
    weft_getnameinfo_cb name;
  } cb;
  void *arg;
  weft_future *fut; /* future form: holds the producer's reference */
  int status;
  weft_addrinfo *res;   /* WEFT__DNS_ADDR answer until delivered */
  weft_nameinfo *names; /* WEFT__DNS_NAME answer until delivered */
  bool starting;        /* inside the ares_* start call */
  bool in_ares;         /* c-ares will still call back */
  bool queued;          /* deferred_finish is queued */
  bool in_cancel;       /* on st->cancelled */
  bool done;            /* the owner has its answer (or was cancelled) */
} weft__dns_query;

/* ares status -> weft code (0, -ENOMEM, -ECANCELED, WEFT_EDNS_*). */
int weft__dns_status(int ares_status);
/* weft__dns_status for a query's answer: a "no server reachable" that
 * came from socket() failing (EMFILE, ENFILE, ...) is that errno. */
int weft__dns_answer_status(const weft__dns_state *st, int ares_status);
/* The loop's state with an open DNS channel, created on first use. */
int weft__dns_get_state(weft_loop *loop, weft__dns_state **out);
/* The "fb" channel, opened on first use: 0 or a negative code. */
int weft__dns_files_channel(weft__dns_state *st, ares_channel *out);
/* Re-arms the deadline timer from ares_timeout(). */
void weft__dns_rearm(weft__dns_state *st);
/* A new query, counted as held by c-ares; NULL on -ENOMEM. */
weft__dns_query *weft__dns_query_new(weft__dns_state *st, weft__dns_kind kind);
/* Frees a query never handed to c-ares. */
void weft__dns_query_discard(weft__dns_query *q);
/* After the start call returned: 0, or -ENOMEM (query freed). */
int weft__dns_query_accept(weft__dns_query *q);
/* From the c-ares callback, once the answer is stored in q. */
void weft__dns_answered(weft__dns_query *q, int status);
/* Future form: called by the cancel hook. */
void weft__dns_query_cancel(weft__dns_query *q);
/* Future form (io/weft__dns_query.c): settle q->fut, taking res/names. */
void weft__dns_settle(weft__dns_query *q, int status, weft_addrinfo *res,
                      weft_nameinfo *names);
/* Future form: cancel q->fut; q is unlinked and abandoned afterwards. */
void weft__dns_future_cancel(weft__dns_query *q);
/* Frees a weft_nameinfo block. */
void weft__dns_free_names(void *names);

#endif
