/* weft — a C11 asynchronous event-loop framework for Linux.
 * The one header users include. */
#ifndef WEFT_H
#define WEFT_H

#include "weft/common.h"
#include "weft/loop.h"
#include "weft/signal.h"
#include "weft/timer.h"

#endif /* WEFT_H */
