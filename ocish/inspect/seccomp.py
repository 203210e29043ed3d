"""seccomp: the mode and NoNewPrivs from /proc/<pid>/status and, in filter mode, every filter
dumped with PTRACE_SECCOMP_GET_FILTER and disassembled.

Dumping needs the process in a ptrace-stop: it is seized, interrupted (no signal is sent), read
and detached at once; a process blocked in a syscall resumes it transparently.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

from ocish.inspect import Target, bpf
from ocish.inspect.status import read_status

PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
_WALL = 0x40000000
MODES = {0: "disabled", 1: "strict", 2: "filter"}


@dataclass
class Filter:
    index: int                 # 0 is the most recently installed
    instructions: list[bpf.Insn]
    listing: list[str]


@dataclass
class Seccomp:
    mode: str
    no_new_privs: bool
    filter_count: int
    filters: list[Filter] = field(default_factory=list)
    error: str = ""            # why the filters could not be dumped


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


def dump_filters(pid: int) -> list[list[bpf.Insn]]:
    """The filters of `pid`, newest first (the order the kernel runs them in); raises ptrace's
    PtraceError when it cannot. PTRACE_SECCOMP_GET_FILTER numbers them the other way: its
    index 0 is the first filter installed (get_nth_filter in kernel/seccomp.c counts back
    from the newest)."""
    from ptrace import PtraceError
    from ptrace.binding.func import PTRACE_DETACH, ptrace
    from ocish.inspect.cgroup import frozen
    if frozen(pid):  # it would never stop for ptrace, and stay seized once thawed
        raise PtraceError(f"pid {pid} is frozen (a paused container: `resume` it first)",
                          pid=pid)
    ptrace(PTRACE_SEIZE, pid, 0, 0)
    try:
        ptrace(PTRACE_INTERRUPT, pid)
        status = _stopped(pid)
        if status is None:  # frozen meanwhile, say: do not wait for ever
            raise PtraceError(f"pid {pid} does not stop for ptrace", pid=pid)
        if not os.WIFSTOPPED(status):
            raise PtraceError(f"pid {pid} exited", pid=pid)
        filters = []
        while True:
            try:
                count = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(filters), 0)
            except PtraceError as e:
                if e.errno == 2:  # ENOENT: no filter at this index
                    return filters[::-1]
                raise
            prog = (_SockFilter * count)()
            ptrace(PTRACE_SECCOMP_GET_FILTER, pid, len(filters), ctypes.addressof(prog))
            filters.append([bpf.Insn(i.code, i.jt, i.jf, i.k) for i in prog])
    finally:
        try:
            ptrace(PTRACE_DETACH, pid, 0, 0)
        except PtraceError:
            pass


def _stopped(pid: int, timeout: float = 2.0) -> int | None:
    """The wait status of `pid` once PTRACE_INTERRUPT stopped it; None when it did not within
    `timeout` s (a task in a frozen cgroup stops only once thawed)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, _WALL | os.WNOHANG)
        if got:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)


def read(t: Target) -> Seccomp:
    st = read_status(t.pid)
    mode = int(st.get("Seccomp", "0"))
    out = Seccomp(MODES.get(mode, str(mode)), st.get("NoNewPrivs") == "1",
                  int(st.get("Seccomp_filters", "0")))
    if mode != 2:
        return out
    from ptrace import PtraceError
    from ocish.syscall_args import syscall_names
    try:
        progs = dump_filters(t.pid)
    except PtraceError as e:
        tracer = st.get("TracerPid", "0")
        # a process has one tracer: `catch exec`'s helper holds it, or another debugger
        out.error = (f"cannot dump the filters: pid {tracer} traces it (a process `catch exec` "
                     "holds is dumped once `continue` lets it run)" if tracer != "0"
                     else f"cannot dump the filters: {e}")
        return out
    out.filters = [Filter(i, p, bpf.disassemble(p, syscall_names())) for i, p in enumerate(progs)]
    return out
