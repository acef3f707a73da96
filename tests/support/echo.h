/* weft tests: one echo server, over TCP or Unix sockets. */
#ifndef WEFT_TEST_ECHO_H
#define WEFT_TEST_ECHO_H

#include <weft.h>

/* Counts of an echo server. */
typedef struct th_echo {
  int accepted;     /* connections accepted */
  int closed;       /* connections closed (EOF, an error, a failed write) */
  int write_errors; /* echoes that failed to write (the connection closes) */
} th_echo;

/* Makes `listener` (the stream of a bound weft_tcp or weft_pipe) listen
 * and echo: every connection is accepted into a malloc'ed handle of the
 * listener's type that writes back each chunk it reads (reading stops
 * until the chunk is written), and closes on EOF, a read error or a
 * failed write. The listener's base.data becomes `e`; closing the
 * listener is the caller's. Asserts success. */
void th_echo_listen(th_echo *e, weft_stream *listener);

#endif
