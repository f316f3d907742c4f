# gdb commands for programs running under vthread: every pthread of the program is a fiber, and
# only the few carriers among them are kernel threads gdb knows about. These commands read the
# runtime's fiber table (sched/fiber.h: one array of records at a fixed range, never unmapped).
#
#   (gdb) source tools/gdb/vthread.py
#   (gdb) vthread fibers          every thread: id, name, state, what it waits for, where
#   (gdb) vthread bt ID           backtrace of a suspended thread (frame pointers; live or core)
#   (gdb) vthread bt all          every suspended thread's backtrace
#   (gdb) vthread deadlocks       cycles of threads each waiting for a mutex the next one holds
#
# Works on a live process or a core file with libvthread.so's debug information (the default build
# keeps it). A suspended fiber's registers are on its stack in the frame arch/x86_64/switch.S
# pushes: from the saved sp, x87 CW, MXCSR, r15, r14, r13, r12, rbx, rbp, return address. The
# backtrace follows frame pointers from there: code built without them (Debian's libc) shows as a
# gap or ends the walk.
import gdb

STATES = {0: "free", 1: "runnable", 2: "running", 3: "parked", 4: "exited"}
FIBER_MAGIC = 0x76746872
FAKE_TID_BASE = 0x20000000  # sched/tls.h: a fiber's thread id is this plus its table index
MUTEX_OWNER_OFFSET = 8      # glibc's pthread_mutex_t: __lock, __count, __owner


def _atomic(value):
    """The value of a std::atomic<T> (libstdc++ keeps it in _M_i, or _M_base._M_i for bool)."""
    for path in (("_M_i",), ("_M_base", "_M_i")):
        v = value
        try:
            for field in path:
                v = v[field]
            return int(v)
        except gdb.error:
            continue
    return int(value)


def _static(name):
    """A C++ static by its qualified name, whatever the language of the selected frame."""
    symbol = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
    if symbol is None:
        raise gdb.GdbError("%s not found: is libvthread.so loaded, with its debug information?" % name)
    return symbol.value()


def _fibers():
    base = _static("vthread::sched::FiberTable::base_")
    if int(base) == 0:
        return
    count = _atomic(_static("vthread::sched::FiberTable::high_water_"))
    for i in range(count):
        f = base[i]
        if int(f["magic"]) != FIBER_MAGIC:
            continue
        word = _atomic(f["sched_word"])
        if word & 0xFF == 0:
            continue
        yield f, word


def _text(pointer):
    return pointer.string() if int(pointer) else ""


def _wait_reason(fiber):
    """WaitReason::kRwlockRead -> "rwlock read"."""
    name = str(fiber["wait_reason"]).split("::")[-1]
    name = name[1:] if name.startswith("k") else name
    return "".join(" " + c.lower() if c.isupper() else c for c in name).strip()


class VthreadPrefix(gdb.Command):
    """Commands for threads that run as vthread fibers: vthread fibers, vthread bt ID."""

    def __init__(self):
        super().__init__("vthread", gdb.COMMAND_STATUS, gdb.COMPLETE_COMMAND, True)


class VthreadFibers(gdb.Command):
    """List every thread of the program (vthread fibers): id, name, state, wait reason, call, carrier."""

    def __init__(self):
        super().__init__("vthread fibers", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        rows = []
        for f, word in _fibers():
            state = STATES.get(word & 0xFF, "?")
            wait = _wait_reason(f) if state == "parked" else ""
            carrier = f["carrier"]
            where = "c%d" % int(carrier["index"]) if int(carrier) else "-"
            on = "%#x" % int(f["wait_address"]) if state == "parked" and int(f["wait_address"]) else ""
            rows.append((int(f["id"]), f["name"].string(), state, wait, on, _text(f["in_call"]), where,
                         "%#x" % int(f["context"]["sp"])))
        gdb.write("%-8s %-16s %-9s %-20s %-16s %-24s %-7s %s\n" %
                  ("id", "name", "state", "waits for", "on", "in call", "carrier", "saved sp"))
        for row in rows:
            gdb.write("%-8d %-16s %-9s %-20s %-16s %-24s %-7s %s\n" % row)
        gdb.write("%d threads\n" % len(rows))


class VthreadBacktrace(gdb.Command):
    """Backtrace of a suspended vthread fiber: vthread bt ID (IDs from 'vthread fibers')."""

    def __init__(self):
        super().__init__("vthread bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        if arg.strip() == "all":
            for f, word in list(_fibers()):
                state = STATES.get(word & 0xFF, "?")
                gdb.write("\nthread %d \"%s\" %s%s\n" % (int(f["id"]), f["name"].string(), state,
                                                         " (" + _wait_reason(f) + ")" if state == "parked" else ""))
                if state in ("parked", "runnable") and int(f["context"]["sp"]):
                    self._backtrace_from(f)
                elif state == "running":
                    gdb.write("  running on a carrier: see gdb's own 'thread apply all bt'\n")
            return
        try:
            wanted = int(arg)
        except ValueError:
            raise gdb.GdbError("usage: vthread bt ID|all")
        for f, word in _fibers():
            if int(f["id"]) != wanted:
                continue
            if word & 0xFF == 2:
                raise gdb.GdbError("thread %d is running: use gdb's own 'thread' and 'bt'" % wanted)
            if int(f["context"]["sp"]) == 0:
                raise gdb.GdbError("thread %d has no saved context (ucontext backend?)" % wanted)
            self._backtrace_from(f)
            return
        raise gdb.GdbError("no thread %d" % wanted)

    @staticmethod
    def _backtrace_from(fiber, limit=64):
        """Walks the frame-pointer chain from the fiber's saved switch frame. Only memory is read:
        borrowing a live thread's registers instead would cancel the system call it sleeps in (gdb
        stops the kernel from restarting a call whose thread had its pc written), and crash it."""
        u64 = gdb.lookup_type("unsigned long").pointer()
        sp = int(fiber["context"]["sp"])
        lo, hi = int(fiber["stack"]["lo"]), int(fiber["stack"]["hi"])
        if not lo:  # the main fiber runs on the process stack, whose bounds it does not record
            lo, hi = sp, sp + (64 << 20)

        def word(address):
            return int(gdb.Value(address).cast(u64).dereference())

        pc, fp = word(sp + 8 * 8), word(sp + 7 * 8)  # switch.S: ... rbp, return address
        for depth in range(limit):
            gdb.write("#%-3d%s\n" % (depth, _describe(pc)))
            if not (lo <= fp < hi) or fp & 7:
                break
            next_fp, pc = word(fp), word(fp + 8)
            if pc == 0 or next_fp <= fp:
                break
            fp = next_fp
        gdb.write("\n")


def _describe(pc):
    """'0x... in function (file:line)' for a return address."""
    where = gdb.execute("info symbol %#x" % pc, to_string=True).strip()
    name = where.split(" + ")[0].split(" in section ")[0] if not where.startswith("No symbol") else "??"
    line = gdb.find_pc_line(pc - 1)  # the call, not the instruction after it
    source = " (%s:%d)" % (line.symtab.filename, line.line) if line.symtab else ""
    return "%#x in %s%s" % (pc, name, source)


VthreadPrefix()
VthreadFibers()
VthreadBacktrace()


class VthreadDeadlocks(gdb.Command):
    """Report cycles of threads each parked on a mutex whose holder is the next one in the cycle."""

    def __init__(self):
        super().__init__("vthread deadlocks", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        base = int(_static("vthread::sched::FiberTable::base_"))
        size = gdb.lookup_type("vthread::sched::Fiber").sizeof
        pid = gdb.selected_inferior().pid
        fibers = {}       # table index -> (id, name, mutex address or None)
        main_index = None
        for f, word in _fibers():
            index = (int(f.address) - base) // size
            mutex = None
            if word & 0xFF == 3 and _wait_reason(f) == "mutex" and int(f["wait_address"]):
                mutex = int(f["wait_address"])
            fibers[index] = (int(f["id"]), f["name"].string(), mutex)
            if bool(f["is_main"]):
                main_index = index
        int_ptr = gdb.lookup_type("int").pointer()

        def holder(mutex):
            owner = int(gdb.Value(mutex + MUTEX_OWNER_OFFSET).cast(int_ptr).dereference())
            if owner >= FAKE_TID_BASE and owner - FAKE_TID_BASE in fibers:
                return owner - FAKE_TID_BASE
            return main_index if owner == pid else None

        reported = set()
        cycles = 0
        for start in fibers:
            path, seen = [], {}
            index = start
            while index is not None and index not in seen and fibers[index][2] is not None:
                seen[index] = len(path)
                path.append(index)
                index = holder(fibers[index][2])
            if index is None or index not in seen:
                continue
            cycle = path[seen[index]:]
            if frozenset(cycle) in reported:
                continue
            reported.add(frozenset(cycle))
            cycles += 1
            gdb.write("deadlock: %d threads wait for each other's mutexes\n" % len(cycle))
            for i in cycle:
                tid, name, mutex = fibers[i]
                held_by = fibers[holder(mutex)]
                gdb.write("  thread %d \"%s\" waits for mutex %#x held by thread %d \"%s\"\n" %
                          (tid, name, mutex, held_by[0], held_by[1]))
        if not cycles:
            gdb.write("no deadlock among threads waiting for mutexes\n")


VthreadDeadlocks()
