"""How the process ended (or that it still runs), with the cgroup's evidence of why.

The wait status comes from the session, which reaped the process (its parent or subreaper);
the cgroup's counters (the OOM killer's kills, forks refused at the pids limit) outlive it.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from ocish.inspect import Target
from ocish.inspect import cgroup as cgroupmod
from runtime.linux import procfs


@dataclass
class ExitInfo:
    pid: int
    alive: bool
    how: str                   # "running (S)", "exit status 1", "killed by SIGKILL", ...
    exit_code: int | None      # when it exited
    signal: str                # the signal that killed it ("SIGKILL"), else ""
    core_dumped: bool
    oom_kills: int | None      # the cgroup's oom_kill counter; None where none is readable
    memory_limit: int | None   # the cgroup's memory limit in bytes; None: no limit
    forks_refused: int | None  # forks refused at the pids limit (pids.events max)
    cause: str                 # what the evidence points to, in plain words; "" when nothing
    pointer: str               # the config.json field behind the cause, if any
    when: str = ""             # set by the session: "during setup, in stage unshare", ...


def describe_status(status: int) -> str:
    """"exit status N" or "killed by SIGNAME" (", core dumped") for a wait status."""
    if os.WIFSIGNALED(status):
        return (f"killed by {_signame(os.WTERMSIG(status))}"
                + (" (core dumped)" if os.WCOREDUMP(status) else ""))
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def evidence(cg: cgroupmod.CgroupInfo | None, killed: bool) -> tuple[str, str]:
    """(what the cgroup's counters point to, its config pointer), ("", "") when nothing: OOM
    kills explain a process `killed` by SIGKILL; forks refused at the pids limit explain a
    failed fork (EAGAIN) or a process that gave up."""
    mem = next((r for r in cg.resources if r.name == "memory"), None) if cg else None
    pids = next((r for r in cg.resources if r.name == "pids"), None) if cg else None
    if killed and mem is not None and mem.counters.get("oom_kill"):
        limit = "none" if mem.limit is None else cgroupmod.human_size(mem.limit)
        return (f"the OOM killer: the cgroup's memory reached its limit ({limit}); oom_kill "
                f"counter {mem.counters['oom_kill']}", mem.pointer)
    if pids is not None and pids.counters.get("forks refused"):
        return (f"the pids limit ({pids.limit}) refused {pids.counters['forks refused']} "
                "fork(s)", pids.pointer)
    return "", ""


def read(t: Target) -> ExitInfo:
    """The end of `t`: alive when it is not reaped and /proc shows it running; raises nothing."""
    state = procfs.proc_state(t.pid) if t.status is None else ""
    alive = state not in ("", "Z", "X")
    info = ExitInfo(t.pid, alive, "", None, "", False, None, None, None, "", "")
    try:
        cg = cgroupmod.read(t) if t.cgroup_paths or alive else None
    except OSError:
        cg = None
    mem = next((r for r in cg.resources if r.name == "memory"), None) if cg else None
    pids = next((r for r in cg.resources if r.name == "pids"), None) if cg else None
    if mem is not None:
        info.memory_limit = mem.limit
        info.oom_kills = mem.counters.get("oom_kill")
    if pids is not None:
        info.forks_refused = pids.counters.get("forks refused")
    if alive:
        info.how = f"running (state {state})"
        return info
    if t.status is None:
        info.how = "gone (its wait status went to another parent)"
    else:
        info.how = describe_status(t.status)
        if os.WIFSIGNALED(t.status):
            info.signal = _signame(os.WTERMSIG(t.status))
            info.core_dumped = os.WCOREDUMP(t.status)
        else:
            info.exit_code = os.waitstatus_to_exitcode(t.status)
    info.cause, info.pointer = evidence(cg, info.signal in ("SIGKILL", ""))
    return info
