// Boost.Context peer of bench_fibers' switch: two contexts yield to each
// other through the raw fcontext primitive (what boost::context::fiber and
// Boost.Fiber are built on). One round trip is two switches.
// Usage: switch_boost N  -> one JSON line, ns per switch.
#include <boost/context/detail/fcontext.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace ctx = boost::context::detail;

static unsigned long counter;

static void body(ctx::transfer_t t) {
  for (;;) {
    ++counter;
    t = ctx::jump_fcontext(t.fctx, nullptr);
  }
}

int main(int argc, char **argv) {
  const unsigned long n =
      argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 10000000;
  const std::size_t size = 64 * 1024;
  char *stack = static_cast<char *>(std::malloc(size));
  ctx::fcontext_t f = ctx::make_fcontext(stack + size, size, body);
  f = ctx::jump_fcontext(f, nullptr).fctx; // warm up: start the body
  counter = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (unsigned long i = 0; i < n; i++)
    f = ctx::jump_fcontext(f, nullptr).fctx;
  auto t1 = std::chrono::steady_clock::now();
  if (counter != n) {
    std::fprintf(stderr, "switch_boost: FAILED: %lu of %lu\n", counter, n);
    return 1;
  }
  double ns =
      std::chrono::duration<double, std::nano>(t1 - t0).count() / (2.0 * n);
  std::printf("{\"bench\":\"fibers_switch\",\"impl\":\"boost\",\"value\":%.3f,"
              "\"unit\":\"ns\",\"better\":\"lower\",\"runs\":1}\n",
              ns);
  std::free(stack); // the body is parked forever: its stack has no destructors
  return 0;
}
