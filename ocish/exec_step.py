"""`exec --step CMD` and `break exec:STAGE`: the runtime's exec pipeline stepped like create's.

An exec is stages run by the one engine (runtime/execprocess.py: cgroup-join, lsm, seccomp,
join, terminal, process, attributes, bounding, user, caps, exec); the debugger steps its
`ExecSetup.engine` exactly as it steps create's `Setup.engine`, with the same commands (step,
next, until, continue, stages, explain), breakpoints (named `exec:STAGE` so that they never
match create's stage of the same name: `exec:caps`, `exec:seccomp`) and inspection, whose
target is the exec's process (C1, then the process that joined the container, C2).

A stepped exec's process runs detached once its exec stage is done (the shell is busy with
the prompt, not with its terminal): the shell reaps it and says how it ended.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

PREFIX = "exec:"


@dataclass
class ExecLoaded:
    """`exec --step`: the exec's container side is up, stopped before its first stage."""
    id: str
    args: list[str]
    pid: int
    next: str = ""
    text: str = ""


def stage_names() -> list[str]:
    """The exec pipeline's stage names, in order (the same objects the runtime runs)."""
    from runtime import execprocess
    return [s.name for s in execprocess.pipeline({"pid": 0})]


def load(root: str, cid: str, args: list[str], observer, *, user: str | None = None,
         cwd: str | None = None, env: list[str] = ()):
    """The ExecSetup of `args` in container `cid` (as `ocish exec` builds it: the container's
    process with the command line over it), its container side spawned and ready, stopped
    before its first stage; its stdin is /dev/null, its process group its own. Raises
    ExecFailed as `ocish exec` does."""
    from runtime import execprocess
    st = execprocess.load_running(root, cid)
    flags = {"user": user, "cwd": cwd, "env": list(env)}
    process = execprocess.build_process(root, cid, st, args, None, **flags)
    setup = execprocess.ExecSetup(root, cid, process, observer=observer, st=st)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setup.engine.spawn(stdin_fd=devnull, own_group=True, wait_ready=True)
    except BaseException:
        setup.abort()
        raise
    finally:
        os.close(devnull)
    return setup
