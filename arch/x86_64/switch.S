/*
 * Fiber context switch for x86_64 System V.
 *
 * A suspended context is nothing but its stack pointer: everything else the ABI says survives a call
 * (rbx, rbp, r12-r15, the MXCSR control bits and the x87 control word) is pushed on the suspended
 * stack. Vector registers are caller-saved, so a cooperative switch owes them nothing; preemption
 * (a signal frame) saves the full state separately. The frame layout, from the saved sp upward:
 *
 *     sp+0   x87 control word (2 bytes, padded)
 *     sp+8   MXCSR (4 bytes, padded)
 *     sp+16  r15, r14, r13, r12, rbx, rbp
 *     sp+64  return address
 *
 * context.cc builds the same frame by hand for a fiber that has never run.
 */
        .text

/* void vthread_arch_switch(void **save_sp, void *load_sp) */
        .globl  vthread_arch_switch
        .hidden vthread_arch_switch
        .type   vthread_arch_switch, @function
        .p2align 4
vthread_arch_switch:
        .cfi_startproc
        pushq   %rbp
        .cfi_adjust_cfa_offset 8
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        pushq   %r15
        .cfi_adjust_cfa_offset 8
        subq    $16, %rsp
        .cfi_adjust_cfa_offset 16
        stmxcsr 8(%rsp)
        fnstcw  (%rsp)
        movq    %rsp, (%rdi)
        /* From here on we run on the other context's stack. */
        movq    %rsi, %rsp
        fldcw   (%rsp)
        ldmxcsr 8(%rsp)
        addq    $16, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   vthread_arch_switch, .-vthread_arch_switch

/*
 * First instructions of every fiber: the hand-built frame "returns" here with the entry function in
 * r12 and its argument in r13. rsp is 16-byte aligned at this point, as a call requires. The entry
 * function never returns; undefined rip tells unwinders and debuggers this is the outermost frame.
 */
        .globl  vthread_arch_trampoline
        .hidden vthread_arch_trampoline
        .type   vthread_arch_trampoline, @function
        .p2align 4
vthread_arch_trampoline:
        .cfi_startproc
        .cfi_undefined rip
        xorl    %ebp, %ebp
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   vthread_arch_trampoline, .-vthread_arch_trampoline

        .section .note.GNU-stack,"",@progbits
