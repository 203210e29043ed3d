"""A process summary: state, parent, threads, its pid inside the namespace, command line."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ocish.inspect import Target
from ocish.inspect.status import ints, read_status


@dataclass
class Proc:
    pid: int
    name: str
    state: str
    ppid: int
    threads: int
    nspid: list[int]     # the pid in each nested pid namespace, the host's first
    cmdline: list[str]
    exe: str
    cwd: str


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def read(t: Target) -> Proc:
    st = read_status(t.pid)
    with open(f"/proc/{t.pid}/cmdline", "rb") as f:
        cmdline = [a.decode(errors="backslashreplace") for a in f.read().split(b"\0")[:-1]]
    return Proc(t.pid, st["Name"], st["State"], int(st["PPid"]), int(st["Threads"]),
                ints(st.get("NSpid", str(t.pid))), cmdline, _link(f"/proc/{t.pid}/exe"),
                _link(f"/proc/{t.pid}/cwd"))
