/* weft — the fiber context switch.
 *
 * weft__fctx_switch(from, to) is a function call as far as the compiler is
 * concerned, so only what the ABI says a callee must keep has to be saved:
 * on x86-64 System V rbx, rbp, r12-r15, the MXCSR and the x87 control
 * word; on aarch64 x19-x29, the link register x30, d8-d15 and FPCR. They
 * are pushed on the running stack, the stack pointer is stored in `from`,
 * and the other side's registers are popped from `to`'s stack. A fresh
 * context (weft__fctx_make) is a stack holding such a frame whose return
 * address is a trampoline, which calls entry(arg) with arg and entry taken
 * from two of the restored registers. The control words of a fresh context
 * are copied from the thread that makes it, as the thread's own code would
 * see them. On x86-64 a fiber's first switch is weft__fctx_enter instead
 * (fiber_internal.h's weft__fctx_begin): the saving half, then a call of
 * entry(arg) on the new stack, with nothing written there first.
 *
 * Elsewhere (or built with -DWEFT_FIBER_UCONTEXT) it is ucontext:
 * makecontext/swapcontext, which also saves the signal mask with a system
 * call per switch (the bench shows the cost). */
#include <stdint.h>
#include <string.h>

#include "fiber_internal.h"

#if defined(WEFT_FIBER_UCONTEXT)

/* makecontext passes int arguments only: the pointer goes in two halves. */
static void uc_start(unsigned hi, unsigned lo, unsigned ehi, unsigned elo) {
  void *arg = (void *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo);
  void (*entry)(void *) =
      (void (*)(void *))(((uintptr_t)ehi << 16 << 16) | (uintptr_t)elo);
  entry(arg);
}

void weft__fctx_make(weft__fctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg) {
  uintptr_t a = (uintptr_t)arg, e = (uintptr_t)entry;
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = lo;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = NULL;
  makecontext(&c->uc, (void (*)(void))uc_start, 4, (unsigned)(a >> 16 >> 16),
              (unsigned)a, (unsigned)(e >> 16 >> 16), (unsigned)e);
}

void weft__fctx_switch(weft__fctx *from, weft__fctx *to) {
  swapcontext(&from->uc, &to->uc);
}

void weft__fctx_exit(weft__fctx *to) {
  setcontext(&to->uc);
  __builtin_unreachable();
}

const char *weft__fctx_impl(void) { return "ucontext"; }

#else

#if defined(__x86_64__)
/* Frame, from the saved sp up: [0] MXCSR (low 4 bytes) and the x87
 * control word (bytes 4-5), [1] r15, [2] r14, [3] r13, [4] r12, [5] rbx,
 * [6] rbp, [7] the return address (popped into r8 and jumped to). */
__asm__(".text\n"
        ".globl weft__fctx_jump\n"
        ".hidden weft__fctx_jump\n"
        ".type weft__fctx_jump,@function\n"
        ".p2align 4\n"
        "weft__fctx_jump:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        ".Lweft_fctx_restore:\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        /* not ret: the return stack predicts the caller of this call, which
         * is on the other stack; an indirect jump learns the pattern */
        "  popq %r8\n"
        "  jmpq *%r8\n"
        ".size weft__fctx_jump,.-weft__fctx_jump\n"
        /* the second half of the jump alone: nothing is saved */
        ".globl weft__fctx_leave\n"
        ".hidden weft__fctx_leave\n"
        ".type weft__fctx_leave,@function\n"
        "weft__fctx_leave:\n"
        "  movq %rdi, %rsp\n"
        "  jmp .Lweft_fctx_restore\n"
        ".size weft__fctx_leave,.-weft__fctx_leave\n"
        /* a fresh context's first switch: the jump's saving half, then
         * rsp = rsi (16-byte aligned), rbp = 0 (a backtrace ends at the
         * entry) and entry = rdx called with arg = rcx; the control words
         * stay the thread's; entry never returns */
        ".globl weft__fctx_enter\n"
        ".hidden weft__fctx_enter\n"
        ".type weft__fctx_enter,@function\n"
        ".p2align 4\n"
        "weft__fctx_enter:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  xorl %ebp, %ebp\n"
        "  movq %rcx, %rdi\n"
        "  callq *%rdx\n"
        "  ud2\n"
        ".size weft__fctx_enter,.-weft__fctx_enter\n"
        /* entered by the jump above with rsp 16-byte aligned: r12 is the
         * entry, rbx its argument; entry never returns */
        ".globl weft__fctx_start\n"
        ".hidden weft__fctx_start\n"
        ".type weft__fctx_start,@function\n"
        "weft__fctx_start:\n"
        "  movq %rbx, %rdi\n"
        "  callq *%r12\n"
        "  ud2\n"
        ".size weft__fctx_start,.-weft__fctx_start\n");

/* Global and hidden, in the asm and here: taken as a local asm symbol
 * through the GOT (what GCC does for an extern function on aarch64), its
 * address came out as the start of the asm's section, weft__fctx_jump,
 * and a fresh context jumped into the jump (found by make check-aarch64). */
__attribute__((visibility("hidden"))) void weft__fctx_start(void);

void weft__fctx_make(weft__fctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)(top - 80); /* 10 slots; sp + 64 is aligned */
  uint32_t mxcsr;
  uint16_t fpucw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fpucw));
  /* r13-r15 are left as they are (whatever is there is popped and never
   * read); rbp is 0 so that a backtrace ends at the fiber's entry */
  sp[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
  sp[4] = (uint64_t)(uintptr_t)entry;
  sp[5] = (uint64_t)(uintptr_t)arg;
  sp[6] = 0;
  sp[7] = (uint64_t)(uintptr_t)weft__fctx_start;
  c->sp = sp;
}

const char *weft__fctx_impl(void) { return "asm-x86_64"; }

#elif defined(__aarch64__)
/* Frame, from the saved sp up (176 bytes): x19-x28, x29 (fp), x30 (lr),
 * d8-d15, FPCR. */
__asm__(".text\n"
        ".globl weft__fctx_jump\n"
        ".hidden weft__fctx_jump\n"
        ".type weft__fctx_jump,%function\n"
        ".p2align 4\n"
        "weft__fctx_jump:\n"
        "  sub sp, sp, #176\n"
        "  stp x19, x20, [sp, #0]\n"
        "  stp x21, x22, [sp, #16]\n"
        "  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n"
        "  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  mrs x9, fpcr\n"
        "  str x9, [sp, #160]\n"
        "  mov x9, sp\n"
        "  str x9, [x0]\n"
        "  mov sp, x1\n"
        ".Lweft_fctx_restore:\n"
        "  ldr x9, [sp, #160]\n"
        "  msr fpcr, x9\n"
        "  ldp x19, x20, [sp, #0]\n"
        "  ldp x21, x22, [sp, #16]\n"
        "  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n"
        "  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #176\n"
        "  ret\n"
        ".size weft__fctx_jump,.-weft__fctx_jump\n"
        /* the second half of the jump alone: nothing is saved */
        ".globl weft__fctx_leave\n"
        ".hidden weft__fctx_leave\n"
        ".type weft__fctx_leave,%function\n"
        "weft__fctx_leave:\n"
        "  mov sp, x0\n"
        "  b .Lweft_fctx_restore\n"
        ".size weft__fctx_leave,.-weft__fctx_leave\n"
        /* x20 is the entry, x19 its argument; entry never returns */
        ".globl weft__fctx_start\n"
        ".hidden weft__fctx_start\n"
        ".type weft__fctx_start,%function\n"
        "weft__fctx_start:\n"
        "  mov x0, x19\n"
        "  blr x20\n"
        "  brk #0\n"
        ".size weft__fctx_start,.-weft__fctx_start\n");

/* Global and hidden, in the asm and here: taken as a local asm symbol
 * through the GOT (what GCC does for an extern function on aarch64), its
 * address came out as the start of the asm's section, weft__fctx_jump,
 * and a fresh context jumped into the jump (found by make check-aarch64). */
__attribute__((visibility("hidden"))) void weft__fctx_start(void);

void weft__fctx_make(weft__fctx *c, void *lo, size_t size,
                     void (*entry)(void *), void *arg) {
  uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)(top - 176);
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  memset(sp, 0, 176);
  sp[0] = (uint64_t)(uintptr_t)arg;               /* x19 */
  sp[1] = (uint64_t)(uintptr_t)entry;             /* x20 */
  sp[11] = (uint64_t)(uintptr_t)weft__fctx_start; /* x30 */
  sp[20] = fpcr;
  c->sp = sp;
}

const char *weft__fctx_impl(void) { return "asm-aarch64"; }
#endif

#endif
