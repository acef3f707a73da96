/* fanout — start several requests at once, wait for all of them with
 * weft_future_all(), and give up after a deadline with
 * weft_future_timeout(), which cancels the work still running.
 *
 * A "request" here is a sleep of some milliseconds mapped to a result
 * (its index times ten) by a continuation; a real program would use a
 * DNS query, a connect or a pool job, which cancel the same way. The
 * first round has one slow request and times out; the second finishes. */
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#include "args.h"

static const char usage[] =
    "usage: fanout\n"
    "  Starts 5 timed requests and waits for all of them with a deadline\n"
    "  (the first round times out, the second finishes), printing the\n"
    "  results. No options.\n";

#define N 5

static void check(int err, const char *what) {
  if (err != 0) {
    fprintf(stderr, "fanout: %s: %s\n", what, weft_strerror(err));
    exit(1);
  }
}

static int to_result(weft_future *in, weft_future *out, void *arg) {
  (void)in;
  return weft_future_resolve_i64(out, (int64_t)(intptr_t)arg * 10);
}

static void round_trip(weft_loop *loop, const uint64_t *delays,
                       uint64_t deadline) {
  weft_future *reqs[N], *all, *bounded;
  for (intptr_t i = 0; i < N; i++) {
    weft_future *nap;
    check(weft_sleep(loop, delays[i], &nap), "sleep");
    check(weft_future_then(nap, to_result, (void *)i, &reqs[i]), "then");
    weft_future_unref(nap);
  }
  check(weft_future_all(loop, reqs, N, &all), "all");
  check(weft_future_timeout(all, deadline, &bounded), "timeout");
  uint64_t t0 = weft_now(loop);
  weft_loop_run(loop, WEFT_RUN_DEFAULT);
  int err = weft_future_error(bounded);
  printf("deadline %3llu ms: %s after %llu ms;", (unsigned long long)deadline,
         err == 0 ? "all done" : weft_strerror(err),
         (unsigned long long)(weft_now(loop) - t0));
  for (int i = 0; i < N; i++) {
    if (weft_future_get_state(reqs[i]) == WEFT_FUTURE_FULFILLED)
      printf(" %lld", (long long)weft_future_value_i64(reqs[i]));
    else
      printf(" [%s]", weft_err_name(weft_future_error(reqs[i])));
    weft_future_unref(reqs[i]);
  }
  printf("\n");
  weft_future_unref(all);
  weft_future_unref(bounded);
}

int main(int argc, char **argv) {
  ex_no_args(argc, argv, usage);
  weft_loop *loop;
  check(weft_loop_new(&loop, NULL), "loop");
  const uint64_t slow[N] = {10, 20, 5000, 15, 30};
  const uint64_t fast[N] = {10, 20, 25, 15, 30};
  round_trip(loop, slow, 100); /* the 5 s request is cancelled at 100 ms */
  round_trip(loop, fast, 100);
  check(weft_loop_free(loop), "loop_free");
  return 0;
}
