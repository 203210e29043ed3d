"""ptrace the container side while the engine runs a step, from a forked helper process.

A helper process, not a thread of the shell: the kernel reports a tracee's ptrace-stops to every
thread of the tracer's thread group, so the engine's own waitpid(C1) (the unshare stage reaps C1)
would steal the tracer's events. Traced from another process, C1's stops reach only the helper,
and C1's exit reaches the shell, its real parent, once the helper has seen it.

    shell                                  tracer (forked helper)                 container side
    ─────                                  ──────────────────────                 ──────────────
    Tracer.start() ── fork ──────────────► PTRACE_SEIZE + INTERRUPT ───────────►  stops (its recv
                   ◄──────────── "ready"   PTRACE_SYSCALL                          restarts later)
    engine.step() ── Run ───────────────────────────────────────────────────────► syscalls, each
                                           records enter/exit (+ forked children)  one ptrace-stop
                   ◄──────────────────────────────────────────────────────────── Ok
    Tracer.stop() ── "stop" (ctl pipe) ──► PTRACE_INTERRUPT, PTRACE_DETACH at
                   ◄──────── calls, EOF    each tracee's next stop; exits

Tracees are seized (PTRACE_SEIZE), so stopping them for the detach needs no signal: the container
never sees a SIGSTOP. Records are kept in memory and written only after the detach, so the helper
never blocks on a full pipe while a tracee waits for it.

`catch exec` holds the process at its PTRACE_EVENT_EXEC stop (the new program is mapped, its
first instruction not run yet; /proc/PID/status says "t (tracing stop)"):

    Tracer.held() ◄── records so far, "held" ── at the exec event: waits on the ctl pipe
    (the shell inspects /proc/PID: exe, maps, auxv, fds ...)
    Tracer.release() ── "go" ──────────────► traces `limit` calls of the new program, then
                                             PTRACE_DETACH (limit 0: at once)

The helper dies with the shell (PR_SET_PDEATHSIG): the kernel then detaches its tracees and
resumes one held in a ptrace-stop, so a killed shell never leaves the process stopped.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import time
from dataclasses import asdict, dataclass, field

from ptrace import PtraceError
from ptrace.binding.func import (PTRACE_DETACH, PTRACE_EVENT_CLONE, PTRACE_EVENT_EXEC,
                                 PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_O_TRACECLONE,
                                 PTRACE_O_TRACEEXEC, PTRACE_O_TRACEFORK, PTRACE_O_TRACESYSGOOD,
                                 PTRACE_O_TRACEVFORK, PTRACE_SYSCALL, ptrace, ptrace_geteventmsg)

from ocish import syscall_args as A

PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_EVENT_STOP = 128
_WALL = 0x40000000
_SYSINFO_ENTRY, _SYSINFO_EXIT = 1, 2


@dataclass
class Call:
    pid: int
    name: str
    args: list[str]
    result: str = "?"
    errno: str = ""

    def text(self) -> str:
        return f"{self.name}({', '.join(self.args)}) = {self.result}"


@dataclass
class Event:
    pid: int
    what: str      # fork, exec, exit
    detail: str = ""

    def text(self) -> str:
        return f"--- {self.what} {self.detail}".rstrip() + " ---"


@dataclass
class TraceResult:
    records: list[Call | Event] = field(default_factory=list)
    error: str = ""


@dataclass
class Repeated:
    """Consecutive calls of one kind shown as one line: `first`, with the argument at `varies`
    replaced by every value it took (-1: none differs, or several do), `count` calls in all."""
    first: Call
    count: int
    varies: int
    values: list[str]
    identical: bool

    def text(self) -> str:
        if self.varies < 0:
            more = "" if self.identical else ", other arguments"
            return f"{self.first.text()}  (x{self.count}{more})"
        args = list(self.first.args)
        args[self.varies] = "{" + ", ".join(self.values) + "}"
        return f"{self.first.name}({', '.join(args)}) = {self.first.result}  (x{self.count})"


def group(records: list[Call | Event]) -> list[Call | Event | Repeated]:
    """Fold runs of consecutive calls of one process with the same name, first argument and
    result into one line: when at most one other argument differs, every value it took is
    listed (nothing is lost); failed calls fold whatever else differs (the first is shown,
    with the count), so a loop of refusals reads as one line."""
    out: list[Call | Event | Repeated] = []
    i = 0
    while i < len(records):
        r = records[i]
        j = i + 1
        if isinstance(r, Call):
            while j < len(records) and _same_kind(r, records[j]):
                j += 1
        run = records[i:j]
        differ = [k for k in range(len(r.args)) if len({c.args[k] for c in run}) > 1] \
            if len(run) > 1 else []
        if len(run) == 1 or (len(differ) > 1 and not r.errno):
            out.extend(run)
        elif len(differ) == 1:
            out.append(Repeated(r, len(run), differ[0], [c.args[differ[0]] for c in run], False))
        else:
            out.append(Repeated(r, len(run), -1, [], not differ))
        i = j
    return out


def _same_kind(a: Call, b: Call | Event) -> bool:
    return (isinstance(b, Call) and len(a.args) == len(b.args) and a.args[:1] == b.args[:1]
            and (a.pid, a.name, a.result, a.errno) == (b.pid, b.name, b.result, b.errno))


class Tracer:
    """One tracing session of `pid` (and the children it forks), in a forked helper.

    mode "state": record only the calls that change kernel state (syscall_args.interesting).
    mode "all": record every call.
    mode "exec": record those that change state until an execve succeeds, then every call, and
    detach by itself after `limit` calls of the new program. With `hold`, the process is held
    at the exec event until release() (`catch exec`).
    """

    def __init__(self, pid: int, mode: str = "state", limit: int = 0, hold: bool = False) -> None:
        self.pid, self.mode, self.limit, self.hold = pid, mode, limit, hold
        self.helper = 0
        self._ctl = self._out = -1

    def start(self, timeout: float = 5.0) -> str:
        """Fork the helper and wait until the tracee is under syscall tracing; "" or an error."""
        ctl_r, ctl_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the helper; reports through out_w
            code = 1
            try:
                os.close(ctl_w)
                os.close(out_r)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the shell's
                from runtime.linux import syscalls
                syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
                _Helper(self.pid, self.mode, self.limit, ctl_r, out_w, self.hold).run()
                code = 0
            finally:
                os._exit(code)
        os.close(ctl_r)
        os.close(out_w)
        self.helper, self._ctl, self._out = pid, ctl_w, out_r
        line = self._readline(timeout)
        if line != "ready":
            self.stop()
            return line or "the tracer did not start"
        return ""

    def _readline(self, timeout: float) -> str:
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                return ""
            chunk = os.read(self._out, 1)
            if not chunk:
                return buf.decode().strip()
            buf += chunk
        return buf.decode().strip()

    def held(self, timeout: float) -> TraceResult | None:
        """With `hold`: wait up to `timeout` s for the process to stop at its exec event; the
        records so far, or None when it did not get there (it died; then stop() says how)."""
        result = TraceResult()
        lines = []
        while True:
            line = self._readline(timeout)
            if line == "held":
                _parse(lines, result)
                return result
            if not line:
                return None
            lines.append(line)

    def release(self) -> None:
        """Let a held process run on: the helper traces `limit` calls, then detaches."""
        try:
            os.write(self._ctl, b"go\n")
        except BrokenPipeError:  # the helper finished by itself (the process died)
            pass

    def wait(self, timeout: float) -> bool:
        """Wait for the helper to finish by itself (mode "exec"); False on timeout."""
        return bool(select.select([self._out], [], [], timeout)[0])

    def stop(self, timeout: float = 10.0) -> TraceResult:
        """Detach from every tracee, collect the records and reap the helper."""
        if not self.helper:
            return TraceResult(error="not tracing")
        try:
            os.write(self._ctl, b"stop\n")
        except BrokenPipeError:  # the helper finished by itself
            pass
        os.close(self._ctl)
        result = TraceResult()
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                # a tracee that never stops (e.g. in uninterruptible sleep): the kernel detaches
                # the tracees of a tracer that dies
                os.kill(self.helper, signal.SIGKILL)
                result.error = "the tracer did not finish: killed (its tracees are detached)"
                break
            chunk = os.read(self._out, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self._out)
        os.waitpid(self.helper, 0)
        self.helper = 0
        _parse(b"".join(chunks).decode(errors="replace").splitlines(), result)
        return result


def _parse(lines: list[str], result: TraceResult) -> None:
    """The helper's JSON lines into `result` (records, or its first error)."""
    for line in lines:
        if not line or line == "ready":
            continue
        try:
            rec = json.loads(line)
        except ValueError:  # cut short when the helper was killed
            continue
        kind = rec.pop("kind")
        if kind == "error":
            result.error = result.error or rec["msg"]
        else:
            result.records.append(Call(**rec) if kind == "call" else Event(**rec))


class _Helper:
    """The tracer's loop, in the forked helper process."""

    def __init__(self, pid: int, mode: str, limit: int, ctl: int, out: int,
                 hold: bool = False) -> None:
        self.root, self.mode, self.limit, self.ctl, self.out = pid, mode, limit, ctl, out
        self.hold = hold
        self.tracees: dict[int, A.Memory | None] = {}
        self.pending: dict[int, tuple[str, list[str], bool]] = {}  # pid: a call entered
        self.records: list[dict] = []
        self.exec_seen = False
        self.after_exec = 0
        self.stopping = False

    def run(self) -> None:
        opts = (PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK
                | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        try:
            ptrace(PTRACE_SEIZE, self.root, 0, opts)
            ptrace(PTRACE_INTERRUPT, self.root)
        except PtraceError as e:
            self._emit({"kind": "error", "msg": f"cannot trace pid {self.root}: {e}"})
            return
        self.tracees[self.root] = None
        _, status = os.waitpid(self.root, _WALL)
        if not os.WIFSTOPPED(status):
            self._emit({"kind": "error", "msg": f"pid {self.root} exited before tracing"})
            return
        self._resume(self.root)
        os.write(self.out, b"ready\n")
        while self.tracees:
            pid, status = os.waitpid(-1, _WALL | os.WNOHANG)
            if pid == 0:
                ready = select.select([wake_r, self.ctl], [], [])[0]
                if wake_r in ready:
                    while _read_all(wake_r):
                        pass
                if self.ctl in ready and not self.stopping:
                    self._stop_all()
                continue
            try:
                self._handle(pid, status)
            except PtraceError:  # the tracee died between its stop and our request
                self._forget(pid)
            done = self.mode == "exec" and self.limit and self.after_exec >= self.limit
            if done and not self.stopping:
                self._stop_all()
        for rec in self.records:
            self._emit(rec)

    def _emit(self, rec: dict) -> None:
        os.write(self.out, (json.dumps(rec) + "\n").encode())

    def _event(self, pid: int, what: str, detail: str = "") -> None:
        self.records.append({"kind": "event", **asdict(Event(pid, what, detail))})

    def _resume(self, pid: int, sig: int = 0) -> None:
        ptrace(PTRACE_SYSCALL, pid, 0, sig)

    def _stop_all(self) -> None:
        """Interrupt every tracee; each is detached at its next stop."""
        self.stopping = True
        for pid in list(self.tracees):
            try:
                ptrace(PTRACE_INTERRUPT, pid)
            except PtraceError:
                self._forget(pid)

    def _forget(self, pid: int) -> None:
        mem = self.tracees.pop(pid, None)
        if mem is not None:
            mem.close()
        self.pending.pop(pid, None)

    def _handle(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            if pid in self.tracees:
                how = (f"status {os.WEXITSTATUS(status)}" if os.WIFEXITED(status)
                       else f"signal {signal.Signals(os.WTERMSIG(status)).name}")
                self._event(pid, "exit", how)
                self._forget(pid)
            return
        if not os.WIFSTOPPED(status):
            return
        if pid not in self.tracees:  # a new child whose first stop beat its parent's fork event
            self.tracees[pid] = None
        sig, event = os.WSTOPSIG(status), status >> 16
        if self.stopping:
            passed = sig if (event == 0 and sig != signal.SIGTRAP | 0x80) else 0
            ptrace(PTRACE_DETACH, pid, 0, passed)
            self._forget(pid)
            return
        if event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE):
            child = ptrace_geteventmsg(pid)
            self.tracees.setdefault(child, None)
            self._event(pid, "fork", f"child {child}")
            self._resume(pid)
        elif event == PTRACE_EVENT_EXEC:
            self._forget_memory(pid)
            self._event(pid, "exec", _readlink(f"/proc/{pid}/exe"))
            self.exec_seen = True
            if self.hold and pid == self.root:
                self._hold(pid)
            else:
                self._resume(pid)
        elif event == PTRACE_EVENT_STOP:
            self._resume(pid)  # the first stop after seize, or of an auto-attached child
        elif sig == signal.SIGTRAP | 0x80:
            self._syscall(pid)
            self._resume(pid)
        else:
            self._resume(pid, sig)  # a real signal: deliver it

    def _hold(self, pid: int) -> None:
        """Stay in the exec event stop until the shell says "go" (or "stop", or goes away);
        then trace `limit` calls, or detach at once."""
        for rec in self.records:
            self._emit(rec)
        self.records = []
        os.write(self.out, b"held\n")
        word = b""
        while not word.endswith(b"\n"):
            chunk = os.read(self.ctl, 1)
            if not chunk:
                break
            word += chunk
        if word == b"go\n" and self.limit:
            self._resume(pid)
            return
        self.stopping = True
        ptrace(PTRACE_DETACH, pid, 0, 0)
        self._forget(pid)
        for other in list(self.tracees):  # children it forked before its execve
            try:
                ptrace(PTRACE_INTERRUPT, other)
            except PtraceError:
                self._forget(other)

    def _forget_memory(self, pid: int) -> None:
        mem = self.tracees.get(pid)
        if mem is not None:  # the address space was replaced by execve
            mem.close()
            self.tracees[pid] = None

    def _memory(self, pid: int) -> A.Memory:
        mem = self.tracees.get(pid)
        if mem is None:
            mem = self.tracees[pid] = A.Memory(pid)
        return mem

    def _syscall(self, pid: int) -> None:
        info = (ctypes.c_uint8 * 88)()
        ptrace(PTRACE_GET_SYSCALL_INFO, pid, ctypes.sizeof(info), ctypes.addressof(info))
        raw = bytes(info)
        op = raw[0]
        if op == _SYSINFO_ENTRY:
            nr = int.from_bytes(raw[24:32], "little")
            args = [int.from_bytes(raw[32 + 8 * i:40 + 8 * i], "little") for i in range(6)]
            name = A.syscall_names().get(nr, f"syscall_{nr}")
            mem = self._memory(pid)
            everything = self.mode == "all" or (self.mode == "exec" and self.exec_seen)
            keep = everything or A.interesting(name, args, mem)
            # strings are read at entry: the call may change or free them
            self.pending[pid] = (name, A.decode(name, args, mem) if keep else [], keep)
        elif op == _SYSINFO_EXIT and pid in self.pending:
            name, shown, keep = self.pending.pop(pid)
            rval = int.from_bytes(raw[24:32], "little", signed=True)
            result, err = A.result_text(rval, bool(raw[32]), name)
            if keep:
                self.records.append({"kind": "call", **asdict(Call(pid, name, shown, result, err))})
            if self.mode == "exec" and self.exec_seen and name not in ("execve", "execveat"):
                self.after_exec += 1


def _read_all(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
