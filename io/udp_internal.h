/* weft — what io/udp.c shares with io/udp_opt.c. Internal. */
#ifndef WEFT_IO_UDP_INTERNAL_H
#define WEFT_IO_UDP_INTERNAL_H

#include "internal.h"

/* The UDP handle's ops table (io/udp.c): a handle is a UDP handle when its
 * ops point here. */
extern const weft__handle_ops weft__udp_ops;

/* The handle's socket, or -1. */
static inline int weft__udp_fd(const weft_udp *u) {
  const void *storage = &u->io;
  const ev_io *w = storage;
  return w->fd;
}

/* A UDP handle that is initialised and not closing. */
static inline bool weft__udp_usable(const weft_udp *u) {
  return u != NULL && u->base.ops == &weft__udp_ops &&
         weft__handle_usable(&u->base);
}

#endif /* WEFT_IO_UDP_INTERNAL_H */
