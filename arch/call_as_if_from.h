// Calling a function on behalf of the program, so that a function that identifies its caller by its
// return address (glibc's dlopen: namespace, RPATH/RUNPATH, $ORIGIN) sees the program's code, not
// the shim's. See x86_64/call_as_if_from.S for how.
#ifndef VTHREAD_ARCH_CALL_AS_IF_FROM_H_
#define VTHREAD_ARCH_CALL_AS_IF_FROM_H_

namespace vthread::arch {

// A `ret` instruction in the executable segment of the loaded object that contains `code`, or
// nullptr if there is none (or `code` is in no loaded object).
const void* ret_instruction_near(const void* code);

// Calls fn(a0, a1, a2) so that its return address is `ret_in_caller` (from ret_instruction_near),
// and returns its result. fn must not unwind (throw) through this call.
void* call_as_if_from(void* (*fn)(), void* a0, long a1, long a2, const void* ret_in_caller);

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_CALL_AS_IF_FROM_H_
