/*
 * Calling a function so that it believes someone else called it (x86_64 System V).
 *
 * Some functions act on their caller's identity: glibc's dlopen looks up the object that contains
 * its return address to choose the namespace and the RPATH/RUNPATH to search. A wrapper that
 * interposes dlopen and calls the real one would make every program's dlopen search the
 * wrapper's paths instead of its own. To be the real caller while still getting control back,
 * vthread_arch_call_as_if_from hands `fn` a return address inside the caller's object that holds a
 * `ret` instruction (any 0xc3 byte of its code): `fn` returns there, and that `ret` pops the
 * address of our own continuation, pushed just below.
 *
 *     void *vthread_arch_call_as_if_from(void *(*fn)(), void *a0, long a1, long a2, const void *ret_in_caller)
 *
 * calls fn(a0, a1, a2) and returns its result. Stack while fn runs, from its entry rsp upward:
 *     rsp+0  ret_in_caller   (fn's return address)
 *     rsp+8  continuation    (popped by that ret)
 *     rsp+16 padding, so that fn starts with the alignment of a normal call
 *     rsp+24 our saved rbp
 * Unwinding through fn stops making sense at ret_in_caller (it is in some unrelated function);
 * nothing may throw through it.
 */
        .text
        .globl  vthread_arch_call_as_if_from
        .hidden vthread_arch_call_as_if_from
        .type   vthread_arch_call_as_if_from, @function
        .p2align 4
vthread_arch_call_as_if_from:
        .cfi_startproc
        pushq   %rbp
        .cfi_def_cfa_offset 16
        .cfi_offset %rbp, -16
        movq    %rsp, %rbp
        .cfi_def_cfa_register %rbp
        subq    $8, %rsp
        leaq    1f(%rip), %rax
        pushq   %rax
        pushq   %r8
        movq    %rdi, %rax
        movq    %rsi, %rdi
        movq    %rdx, %rsi
        movq    %rcx, %rdx
        jmp     *%rax
1:
        leave
        .cfi_def_cfa %rsp, 8
        ret
        .cfi_endproc
        .size   vthread_arch_call_as_if_from, .-vthread_arch_call_as_if_from

        .section .note.GNU-stack,"",@progbits
