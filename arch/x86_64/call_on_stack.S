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
 * Returning from a signal handler whose kernel frame was moved (see shim/signal_route.cc):
 *
 *     void vthread_arch_sigreturn_from(void *uc)
 *
 * rt_sigreturn reads the frame at rsp - 8 (the restorer's return address, popped by the handler's
 * ret, sits just below the ucontext), so rsp is set to the ucontext and the system call made. It
 * does not return: the kernel resumes what the ucontext describes.
 */
        .globl  vthread_arch_sigreturn_from
        .hidden vthread_arch_sigreturn_from
        .type   vthread_arch_sigreturn_from, @function
        .p2align 4
vthread_arch_sigreturn_from:
        .cfi_startproc
        movq    %rdi, %rsp
        movl    $15, %eax           /* __NR_rt_sigreturn */
        syscall
        ud2
        .cfi_endproc
        .size   vthread_arch_sigreturn_from, .-vthread_arch_sigreturn_from

        .section .note.GNU-stack,"",@progbits
