/* weft — a C11 asynchronous event-loop framework for Linux.
 * The one header users include. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/common.h"
#include "weft/future.h"
#include "weft/group.h"
#include "weft/hooks.h"
#include "weft/loop.h"
#include "weft/pool.h"
#include "weft/fs.h"
#include "weft/signal.h"
#include "weft/sync.h"
#include "weft/timer.h"
#include "weft/stream.h"
#include "weft/tcp.h"
#include "weft/pipe.h"
#include "weft/tty.h"
#include "weft/poll.h"
#include "weft/watch.h"
#include "weft/udp.h"
#include "weft/dns.h"
#include "weft/process.h"
#include "weft/shm.h"
#include "weft/fiber.h"
#include "weft/loopgroup.h"

#endif /* WEFT_H */
