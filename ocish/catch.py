"""`catch exec`: the container's process held right after its execve, before its first
instruction, so that every `inspect` topic shows the program as it starts.

The tracer (ocish/trace.py) seizes the init before `start` opens exec.fifo and holds it at its
PTRACE_EVENT_EXEC stop (gdb's `catch exec` stops there too). `continue` releases it: the tracer
shows its first N calls when `catch exec N` asked for them, then detaches; quit, a teardown or
the shell's death detach it too, and it runs on.
"""
from __future__ import annotations

from dataclasses import dataclass

from ocish.trace import TraceResult, Tracer


@dataclass
class Held:
    """A process stopped at its exec event, and the tracer that holds it."""
    pid: int
    exe: str                          # /proc/PID/exe at the stop: the new program
    tracer: Tracer

    @property
    def text(self) -> str:
        return f"stopped after execve of {self.exe}"


@dataclass
class Released:
    """What `continue` did to a held process: it runs (or died), its first calls if traced."""
    pid: int
    exe: str
    running: bool
    trace: TraceResult
    calls: int                        # how many calls of the new program were asked for


def release(held: Held, calls: int, running) -> Released:
    """Let `held` run: trace `calls` calls of it first (0: detach at once); `running(pid)`
    says afterwards whether it lives."""
    held.tracer.release()
    if calls:
        held.tracer.wait(5.0)
    result = held.tracer.stop()
    return Released(held.pid, held.exe, running(held.pid), result, calls)
