/* weft tests: a real DNS server for the DNS suite and benchmark.
 *
 * th_dnsmasq_start() writes `hosts` (hosts-file text) to a private
 * directory and starts Debian's dnsmasq on 127.0.0.1 and a free UDP port,
 * serving only those names; unknown names under .test and .localhost (and
 * "localhost" itself, unless listed) get NXDOMAIN or no data, never a
 * forward. It
 * returns once dnsmasq answers a query (no fixed sleep), retrying on a new
 * port if the chosen one was taken meanwhile. dnsmasq dies with the test
 * process (PR_SET_PDEATHSIG) even if the test fails before stopping it.
 * Plain libc, so benchmarks can include it too. */
#ifndef WEFT_TEST_DNSMASQ_H
#define WEFT_TEST_DNSMASQ_H

#include <sys/types.h>

typedef struct th_dnsmasq {
  pid_t pid;
  unsigned port;
  char dir[64];    /* private directory holding the hosts file */
  char hosts[96];  /* path of the hosts file */
  char server[32]; /* "127.0.0.1:PORT", for weft_dns_set_servers() */
} th_dnsmasq;

/* 0, or a negative errno (dnsmasq missing, never answered, ...). */
int th_dnsmasq_start(th_dnsmasq *d, const char *hosts);
/* Stops dnsmasq (SIGTERM, reaped) and removes its files. */
void th_dnsmasq_stop(th_dnsmasq *d);

/* A UDP socket bound to 127.0.0.1 that never answers: a DNS server that
 * times out. Returns the fd (close it when done) and stores the port. */
int th_silent_udp(unsigned *port);

#endif
