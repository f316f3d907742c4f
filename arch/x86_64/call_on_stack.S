/*
 * Calling a function on another stack (x86_64 System V).
 *
 * A signal handler the program installed with SA_ONSTACK runs, natively, on the alternate stack
 * its thread set aside. The kernel cannot put it there for a fiber (the carrier's alternate stack
 * is the runtime's), so the runtime's handler moves there itself:
 *
 *     void vthread_arch_call_on_stack(void (*fn)(void *), void *arg, void *stack_top)
 *
 * calls fn(arg) with rsp at stack_top rounded down to 16 bytes, and returns on the caller's stack.
 * The frame keeps rbp pointing at the caller's saved rbp, and the CFI says so, so debuggers,
 * libunwind and C++ exceptions walk from fn back into the caller's stack.
 */
        .text
        .globl  vthread_arch_call_on_stack
        .hidden vthread_arch_call_on_stack
        .type   vthread_arch_call_on_stack, @function
        .p2align 4
vthread_arch_call_on_stack:
        .cfi_startproc
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        andq    $-16, %rdx
        movq    %rdx, %rsp          /* a call from here leaves fn's entry rsp at 16n - 8, as the ABI wants */
        movq    %rdi, %rax
        movq    %rsi, %rdi
        call    *%rax
        leave
        .cfi_def_cfa %rsp, 8
        ret
        .cfi_endproc
        .size   vthread_arch_call_on_stack, .-vthread_arch_call_on_stack

/*
 * Entering a signal handler on a copy of its kernel frame (see shim/signal_route.cc), the way the
 * kernel enters one:
 *
 *     void vthread_arch_enter_handler(void (*fn)(void *), void *arg, void *frame)
 *
 * jumps to fn(arg) with rsp at `frame`, whose first word is the restorer's address (glibc's
 * __restore_rt): fn's return runs rt_sigreturn on the copy, and unwinding from fn goes through
 * __restore_rt's signal-frame CFI into the copied ucontext, that is, into the interrupted code.
 */
        .globl  vthread_arch_enter_handler
        .hidden vthread_arch_enter_handler
        .type   vthread_arch_enter_handler, @function
        .p2align 4
vthread_arch_enter_handler:
        .cfi_startproc
        movq    %rdx, %rsp
        movq    %rdi, %rax
        movq    %rsi, %rdi
        jmp     *%rax
        .cfi_endproc
        .size   vthread_arch_enter_handler, .-vthread_arch_enter_handler

        .section .note.GNU-stack,"",@progbits
