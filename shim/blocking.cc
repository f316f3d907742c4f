// System calls that may block, called by fibers: each is passed to glibc between
// sched::enter_blocking() and sched::exit_blocking(), so that if its carrier stays in the kernel
// while other fibers wait, the monitor hands their work to another kernel thread
// (sched/handoff.h). The call itself is glibc's, unchanged: same result, errno, and restart or
// EINTR behaviour. Preemption ticks are never sent to a carrier marked this way, so preemption
// adds no EINTR. Those that are POSIX cancellation points act on a pending cancel first, as
// glibc's do, and a pthread_cancel while blocked interrupts the call and acts (cancel.h,
// "Blocking system calls").
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>

#include "sched/handoff.h"
#include "sched/libc.h"
#include "shim/cancel.h"
#include "shim/entry.h"

namespace {

using vthread::shim::ShimEntry;

// The blocking mark, and for a cancellation point the cancellable window (cancel.h), around the
// call; RAII so that every return path closes them. Opening the window acts on a due cancel.
class Blocking {
 public:
  Blocking(vthread::sched::Fiber* fiber, bool cancellation_point)
      : fiber_(fiber), cancellable_(fiber && cancellation_point) {
    if (cancellable_) vthread::shim::enter_cancellable_syscall(fiber_);
    if (fiber_) vthread::sched::enter_blocking();
  }
  ~Blocking() {
    if (fiber_) vthread::sched::exit_blocking();
    if (cancellable_) vthread::shim::leave_cancellable_syscall(fiber_);
  }
  Blocking(const Blocking&) = delete;
  Blocking& operator=(const Blocking&) = delete;

 private:
  vthread::sched::Fiber* fiber_;
  bool cancellable_;
};

}  // namespace

// A wrapper: `cancel` says whether the call is a cancellation point.
#define VTHREAD_BLOCKING(cancel, ret, name, params, args)                                          \
  extern "C" ret name params {                                                                     \
    static std::atomic<void*> real{nullptr};                                                       \
    auto fn = reinterpret_cast<ret(*) params>(vthread::libc::resolve_real(real, #name));           \
    ShimEntry entry(#name);                                                                        \
    Blocking mark(entry.fiber(), cancel);                                                          \
    return fn args;                                                                                \
  }

VTHREAD_BLOCKING(true, ssize_t, read, (int fd, void* buf, size_t n), (fd, buf, n))
VTHREAD_BLOCKING(true, ssize_t, write, (int fd, const void* buf, size_t n), (fd, buf, n))
VTHREAD_BLOCKING(true, ssize_t, readv, (int fd, const struct iovec* iov, int n), (fd, iov, n))
VTHREAD_BLOCKING(true, ssize_t, writev, (int fd, const struct iovec* iov, int n), (fd, iov, n))
VTHREAD_BLOCKING(true, ssize_t, pread, (int fd, void* buf, size_t n, off_t off), (fd, buf, n, off))
VTHREAD_BLOCKING(true, ssize_t, pread64, (int fd, void* buf, size_t n, off64_t off), (fd, buf, n, off))
VTHREAD_BLOCKING(true, ssize_t, pwrite, (int fd, const void* buf, size_t n, off_t off), (fd, buf, n, off))
VTHREAD_BLOCKING(true, ssize_t, pwrite64, (int fd, const void* buf, size_t n, off64_t off), (fd, buf, n, off))
VTHREAD_BLOCKING(true, ssize_t, recv, (int fd, void* buf, size_t n, int flags), (fd, buf, n, flags))
VTHREAD_BLOCKING(true, ssize_t, recvfrom,
                 (int fd, void* buf, size_t n, int flags, struct sockaddr* from, socklen_t* len),
                 (fd, buf, n, flags, from, len))
VTHREAD_BLOCKING(true, ssize_t, recvmsg, (int fd, struct msghdr* msg, int flags), (fd, msg, flags))
VTHREAD_BLOCKING(true, ssize_t, send, (int fd, const void* buf, size_t n, int flags), (fd, buf, n, flags))
VTHREAD_BLOCKING(true, ssize_t, sendto,
                 (int fd, const void* buf, size_t n, int flags, const struct sockaddr* to, socklen_t len),
                 (fd, buf, n, flags, to, len))
VTHREAD_BLOCKING(true, ssize_t, sendmsg, (int fd, const struct msghdr* msg, int flags), (fd, msg, flags))
VTHREAD_BLOCKING(true, int, accept, (int fd, struct sockaddr* addr, socklen_t* len), (fd, addr, len))
VTHREAD_BLOCKING(true, int, accept4, (int fd, struct sockaddr* addr, socklen_t* len, int flags), (fd, addr, len, flags))
VTHREAD_BLOCKING(true, int, connect, (int fd, const struct sockaddr* addr, socklen_t len), (fd, addr, len))
VTHREAD_BLOCKING(true, int, poll, (struct pollfd* fds, nfds_t n, int timeout), (fds, n, timeout))
VTHREAD_BLOCKING(true, int, ppoll,
                 (struct pollfd* fds, nfds_t n, const struct timespec* timeout, const sigset_t* mask),
                 (fds, n, timeout, mask))
VTHREAD_BLOCKING(true, int, select, (int n, fd_set* r, fd_set* w, fd_set* e, struct timeval* timeout),
                 (n, r, w, e, timeout))
VTHREAD_BLOCKING(true, int, pselect,
                 (int n, fd_set* r, fd_set* w, fd_set* e, const struct timespec* timeout, const sigset_t* mask),
                 (n, r, w, e, timeout, mask))
VTHREAD_BLOCKING(true, int, epoll_wait, (int fd, struct epoll_event* events, int max, int timeout),
                 (fd, events, max, timeout))
VTHREAD_BLOCKING(true, int, epoll_pwait,
                 (int fd, struct epoll_event* events, int max, int timeout, const sigset_t* mask),
                 (fd, events, max, timeout, mask))
VTHREAD_BLOCKING(true, pid_t, wait, (int* status), (status))
VTHREAD_BLOCKING(true, pid_t, waitpid, (pid_t pid, int* status, int options), (pid, status, options))
VTHREAD_BLOCKING(true, pid_t, wait4, (pid_t pid, int* status, int options, struct rusage* usage),
                 (pid, status, options, usage))
VTHREAD_BLOCKING(false, int, flock, (int fd, int operation), (fd, operation))
VTHREAD_BLOCKING(true, ssize_t, msgrcv, (int id, void* msg, size_t size, long type, int flags),
                 (id, msg, size, type, flags))
// (The sigwait family parks the fiber instead: signal.cc.)

#undef VTHREAD_BLOCKING

namespace {

// fcntl and fcntl64: only the waiting lock commands block (and are cancellation points).
int blocking_fcntl(std::atomic<void*>& real, const char* name, int fd, int cmd, void* arg) {
  auto fn = reinterpret_cast<int (*)(int, int, ...)>(vthread::libc::resolve_real(real, name));
  if (cmd != F_SETLKW && cmd != F_OFD_SETLKW) return fn(fd, cmd, arg);
  ShimEntry entry(name);
  Blocking mark(entry.fiber(), true);
  return fn(fd, cmd, arg);
}

}  // namespace

extern "C" int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);  // as glibc's: one argument, int or pointer, read as a word
  va_end(ap);
  static std::atomic<void*> real{nullptr};
  return blocking_fcntl(real, "fcntl", fd, cmd, arg);
}

extern "C" int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  static std::atomic<void*> real{nullptr};
  return blocking_fcntl(real, "fcntl64", fd, cmd, arg);
}
