/* weft — what io/dns.c (channel, query lifecycle) and io/weft__dns_query.c
 * (getaddrinfo, getnameinfo) share. Never installed. */
#ifndef WEFT_IO_DNS_INTERNAL_H
#define WEFT_IO_DNS_INTERNAL_H

#include <ares.h>

#include "core/internal.h"
#include "weft/dns.h"
#include "weft/future.h"

typedef struct weft__dns_state {
  weft_loop *loop;
  ares_channel ch;  /* NULL until first use (or after a failed reopen) */
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
/* The loop's state with an open channel, created on first use. */
int weft__dns_get_state(weft_loop *loop, weft__dns_state **out);
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
