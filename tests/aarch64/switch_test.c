/* The fiber context switch (promises/fiber_switch.c) on its own, built for
 * whichever machine compiles it: `make check-aarch64` builds it statically
 * with aarch64-linux-gnu-gcc and runs it under qemu-aarch64, so the
 * aarch64 assembly is run and not only assembled; it also builds natively
 * (x86-64, or -DWEFT_FIBER_UCONTEXT). No library, no Criterion: it checks
 * and prints, and exits 1 at the first failure.
 *
 * What it checks: a fresh context starts at its entry with its argument;
 * switching back and forth keeps the callee-saved general and FP registers
 * of both sides (values kept live across the switch in registers, and an
 * assembly check that sets every callee-saved register, switches away and
 * back, and compares); each side keeps its own FP control word (rounding
 * mode); the fiber's stack pointer is 16-byte aligned at entry and in its
 * frames; weft__fctx_exit leaves a finished context for good; two fibers
 * hand off to each other through main. */
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promises/fiber_internal.h"

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "switch_test: FAILED %s:%d: %s: ", __FILE__, __LINE__,   \
              #cond);                                                          \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static weft__fctx main_ctx, fib_ctx, fib2_ctx;
static weft__fstack st1, st2;

static void map_stack(weft__fstack *s) {
  CHECK(weft__fstack_map(s, weft__fstack_round(0)) == 0, "no stack mapping");
}

/* ---- 1. start, argument, alignment, ping-pong ---------------------------- */

static long pings;
static uintptr_t entry_sp_mod16 = 99;

static void pinger(void *arg) {
  CHECK(arg == &pings, "entry got %p, not %p", arg, (void *)&pings);
  char probe __attribute__((aligned(16)));
  entry_sp_mod16 = (uintptr_t)__builtin_frame_address(0) % 16;
  (void)probe;
  for (;;) {
    pings++;
    weft__fctx_switch(&fib_ctx, &main_ctx);
  }
}

static void test_ping_pong(void) {
  map_stack(&st1);
  weft__fctx_make(&fib_ctx, weft__fstack_lo(&st1), st1.size, pinger, &pings);
  for (long i = 1; i <= 100000; i++) {
    weft__fctx_switch(&main_ctx, &fib_ctx);
    CHECK(pings == i, "after %ld switches the fiber counted %ld", i, pings);
  }
  CHECK(entry_sp_mod16 == 0, "frame address %% 16 = %lu",
        (unsigned long)entry_sp_mod16);
  weft__fstack_unmap(&st1);
  printf("switch_test: ping-pong of 100000 round trips (%s): ok\n",
         weft__fctx_impl());
}

/* ---- 2. callee-saved values live across switches ------------------------- */

static volatile uint64_t sink;

/* Many integer and double values live across each switch: at -O2 the
 * compiler keeps them in callee-saved registers (x19-x28, d8-d15). */
__attribute__((noinline)) static uint64_t mix(weft__fctx *self, weft__fctx *to,
                                              uint64_t seed) {
  uint64_t a = seed * 3 + 1, b = seed ^ 0x5555, c = seed + 77, d = seed * 7,
           e = seed ^ 0xabcdef, f = seed + 1000003, g = seed * 13, h = ~seed,
           i = seed << 3, j = seed >> 1;
  double fa = (double)seed * 0.5, fb = (double)seed + 0.25,
         fc = (double)seed * 1.5, fd = (double)seed - 3.0,
         fe = (double)seed / 7.0, ff = (double)seed * 2.0,
         fg = (double)seed + 9.0, fh = (double)seed * 0.125;
  for (int k = 0; k < 100; k++) {
    weft__fctx_switch(self, to);
    a += b ^ k;
    b += c;
    c ^= d + (uint64_t)k;
    d += e;
    e ^= f;
    f += g;
    g ^= h;
    h += i;
    i ^= j;
    j += a;
    fa += fb;
    fb *= 1.0000001;
    fc -= fd * 1e-9;
    fd += fe;
    fe += ff * 1e-12;
    ff -= fg * 1e-12;
    fg += fh;
    fh *= 0.9999999;
  }
  return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^
         (uint64_t)(fa + fb + fc + fd + fe + ff + fg + fh);
}

/* The same arithmetic without switches: what mix must return. */
__attribute__((noinline)) static uint64_t mix_ref(uint64_t seed) {
  uint64_t a = seed * 3 + 1, b = seed ^ 0x5555, c = seed + 77, d = seed * 7,
           e = seed ^ 0xabcdef, f = seed + 1000003, g = seed * 13, h = ~seed,
           i = seed << 3, j = seed >> 1;
  double fa = (double)seed * 0.5, fb = (double)seed + 0.25,
         fc = (double)seed * 1.5, fd = (double)seed - 3.0,
         fe = (double)seed / 7.0, ff = (double)seed * 2.0,
         fg = (double)seed + 9.0, fh = (double)seed * 0.125;
  for (int k = 0; k < 100; k++) {
    sink = (uint64_t)k;
    a += b ^ k;
    b += c;
    c ^= d + (uint64_t)k;
    d += e;
    e ^= f;
    f += g;
    g ^= h;
    h += i;
    i ^= j;
    j += a;
    fa += fb;
    fb *= 1.0000001;
    fc -= fd * 1e-9;
    fd += fe;
    fe += ff * 1e-12;
    ff -= fg * 1e-12;
    fg += fh;
    fh *= 0.9999999;
  }
  return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^
         (uint64_t)(fa + fb + fc + fd + fe + ff + fg + fh);
}

static uint64_t fiber_mix;

static void mixer(void *arg) {
  fiber_mix = mix(&fib_ctx, &main_ctx, (uint64_t)(uintptr_t)arg);
  weft__fctx_exit(&main_ctx); /* finished: saves nothing */
}

static void test_live_values(void) {
  map_stack(&st1);
  weft__fctx_make(&fib_ctx, weft__fstack_lo(&st1), st1.size, mixer,
                  (void *)(uintptr_t)12345);
  /* main's own mix switches to the fiber 100 times; the fiber's mix
   * switches back 100 times, then it exits to main for good */
  weft__fctx_switch(&main_ctx, &fib_ctx);
  uint64_t mine = mix(&main_ctx, &fib_ctx, 999);
  CHECK(mine == mix_ref(999), "main's values changed across switches");
  CHECK(fiber_mix == mix_ref(12345), "the fiber's values changed");
  weft__fstack_unmap(&st1);
  printf("switch_test: values live across 200 switches, then exit: ok\n");
}

/* ---- 3. every callee-saved register, in assembly ------------------------- */
#if defined(__aarch64__) && !defined(WEFT_FIBER_UCONTEXT)
static void clobber_all(void *arg) {
  (void)arg;
  for (;;) {
    /* the fiber writes junk to every callee-saved register, then switches
     * back: weft__fctx_switch must restore main's */
    __asm__ volatile("mov x19, #1\n mov x20, #2\n mov x21, #3\n"
                     "mov x22, #4\n mov x23, #5\n mov x24, #6\n"
                     "mov x25, #7\n mov x26, #8\n mov x27, #9\n"
                     "mov x28, #10\n fmov d8, #1.0\n fmov d9, #2.0\n"
                     "fmov d10, #3.0\n fmov d11, #4.0\n fmov d12, #5.0\n"
                     "fmov d13, #6.0\n fmov d14, #7.0\n fmov d15, #8.0\n" ::
                         : "x19", "x20", "x21", "x22", "x23", "x24", "x25",
                           "x26", "x27", "x28", "d8", "d9", "d10", "d11",
                           "d12", "d13", "d14", "d15");
    weft__fctx_switch(&fib_ctx, &main_ctx);
  }
}

static void fctx_switch_main_fib(void) {
  weft__fctx_switch(&main_ctx, &fib_ctx);
}

/* What the registers held after the switch, and the function that switches
 * (globals: the asm below leaves no register free for operands). */
static uint64_t regs_out[18] __attribute__((used));
static void (*regs_fn)(void) __attribute__((used)) = fctx_switch_main_fib;

/* Sets x19-x28 and d8-d15 to known values, calls the switch (through a C
 * function), and stores what the registers hold afterwards in regs_out. */
static void regs_across_switch(void) {
  __asm__ volatile(
      "adrp x16, regs_fn\n ldr x16, [x16, :lo12:regs_fn]\n"
      "mov x19, #119\n mov x20, #120\n mov x21, #121\n mov x22, #122\n"
      "mov x23, #123\n mov x24, #124\n mov x25, #125\n mov x26, #126\n"
      "mov x27, #127\n mov x28, #128\n"
      "fmov d8, #-1.0\n fmov d9, #-2.0\n fmov d10, #-3.0\n fmov d11, #-4.0\n"
      "fmov d12, #-5.0\n fmov d13, #-6.0\n fmov d14, #-7.0\n fmov d15, #-8.0\n"
      "blr x16\n"
      "adrp x0, regs_out\n add x0, x0, :lo12:regs_out\n"
      "stp x19, x20, [x0, #0]\n stp x21, x22, [x0, #16]\n"
      "stp x23, x24, [x0, #32]\n stp x25, x26, [x0, #48]\n"
      "stp x27, x28, [x0, #64]\n stp d8, d9, [x0, #80]\n"
      "stp d10, d11, [x0, #96]\n stp d12, d13, [x0, #112]\n"
      "stp d14, d15, [x0, #128]\n"
      :
      :
      : "cc", "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10",
        "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x19", "x20", "x21",
        "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x30", "d0", "d1",
        "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11", "d12",
        "d13", "d14", "d15", "d16", "d17", "d18", "d19", "d20", "d21", "d22",
        "d23", "d24", "d25", "d26", "d27", "d28", "d29", "d30", "d31",
        "memory");
}

static void test_every_register(void) {
  map_stack(&st1);
  weft__fctx_make(&fib_ctx, weft__fstack_lo(&st1), st1.size, clobber_all,
                  NULL);
  regs_across_switch();
  const uint64_t *got = regs_out;
  for (int r = 0; r < 10; r++)
    CHECK(got[r] == (uint64_t)(119 + r), "x%d is %llu after the switch",
          19 + r, (unsigned long long)got[r]);
  for (int r = 0; r < 8; r++) {
    double d;
    memcpy(&d, &got[10 + r], sizeof d);
    CHECK(d == -(double)(r + 1), "d%d is %g after the switch", 8 + r, d);
  }
  weft__fstack_unmap(&st1);
  printf("switch_test: x19-x28 and d8-d15 kept across a switch: ok\n");
}
#else
static void test_every_register(void) {
  printf("switch_test: register-by-register check is for aarch64 only\n");
}
#endif

/* ---- 4. FP control per context ------------------------------------------- */

static int fiber_round_seen = -1;

static void rounder(void *arg) {
  (void)arg;
  /* a fresh context starts with the control word of the thread that made
   * it: round to nearest */
  fiber_round_seen = fegetround();
  fesetround(FE_UPWARD);
  weft__fctx_switch(&fib_ctx, &main_ctx);
  fiber_round_seen = fegetround(); /* still upward after main ran */
  weft__fctx_switch(&fib_ctx, &main_ctx);
  for (;;)
    weft__fctx_switch(&fib_ctx, &main_ctx);
}

static void test_fp_control(void) {
  CHECK(fegetround() == FE_TONEAREST, "main does not start to nearest");
  map_stack(&st1);
  weft__fctx_make(&fib_ctx, weft__fstack_lo(&st1), st1.size, rounder, NULL);
  weft__fctx_switch(&main_ctx, &fib_ctx);
  CHECK(fiber_round_seen == FE_TONEAREST, "fresh fiber's rounding %d",
        fiber_round_seen);
  CHECK(fegetround() == FE_TONEAREST,
        "main's rounding changed by the fiber's fesetround: %d", fegetround());
  fesetround(FE_TOWARDZERO);
  weft__fctx_switch(&main_ctx, &fib_ctx);
  CHECK(fiber_round_seen == FE_UPWARD, "the fiber's rounding became %d",
        fiber_round_seen);
  CHECK(fegetround() == FE_TOWARDZERO, "main's rounding became %d",
        fegetround());
  fesetround(FE_TONEAREST);
  weft__fstack_unmap(&st1);
  printf("switch_test: each context keeps its own rounding mode: ok\n");
}

/* ---- 5. two fibers through main ------------------------------------------ */

static int order[8], norder;

static void two_a(void *arg) {
  (void)arg;
  for (int i = 0; i < 4; i++) {
    order[norder++] = 'a';
    weft__fctx_switch(&fib_ctx, &fib2_ctx); /* straight to the other */
  }
  weft__fctx_exit(&main_ctx);
}

static void two_b(void *arg) {
  (void)arg;
  for (;;) {
    order[norder++] = 'b';
    weft__fctx_switch(&fib2_ctx, &fib_ctx);
  }
}

static void test_two_fibers(void) {
  map_stack(&st1);
  map_stack(&st2);
  weft__fctx_make(&fib_ctx, weft__fstack_lo(&st1), st1.size, two_a, NULL);
  weft__fctx_make(&fib2_ctx, weft__fstack_lo(&st2), st2.size, two_b, NULL);
  weft__fctx_switch(&main_ctx, &fib_ctx);
  CHECK(norder == 8, "%d steps", norder);
  for (int i = 0; i < 8; i++)
    CHECK(order[i] == (i % 2 ? 'b' : 'a'), "step %d was %c", i, order[i]);
  weft__fstack_unmap(&st1);
  weft__fstack_unmap(&st2);
  printf("switch_test: two fibers hand off directly, then exit: ok\n");
}

int main(void) {
  test_ping_pong();
  test_live_values();
  test_every_register();
  test_fp_control();
  test_two_fibers();
  printf("switch_test: all passed\n");
  return 0;
}
