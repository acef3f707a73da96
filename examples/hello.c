/* The README's program: a deferred callback and a repeating timer. */
#include <stdio.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: hello\n"
    "  The README's program: a deferred callback and a timer that\n"
    "  ticks 3 times. No options.\n";

static int ticks;

static void on_tick(weft_timer *t) {
  weft_loop *loop = weft_handle_loop(&t->base);
  printf("tick %d at %llu ms\n", ++ticks, (unsigned long long)weft_now(loop));
  if (ticks == 3)
    weft_close(&t->base, NULL); /* the loop ends when nothing is left */
}

static void hello(void *arg) { printf("hello from %s\n", (const char *)arg); }

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  weft_loop *loop;
  weft_timer timer;
  if (weft_loop_new(&loop, NULL) != 0) return 1;
  weft_call_soon(loop, hello, "the deferred queue");
  weft_timer_init(loop, &timer);
  weft_timer_start(&timer, on_tick, 10, 10); /* after 10 ms, then every 10 ms */
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  return weft_loop_free(loop) == 0 ? 0 : 1;
}
