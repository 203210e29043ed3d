"""Small procfs readers shared by stages and lifecycle; they return plain data and never print."""
from __future__ import annotations

import errno
import os


class MountEntry:
    """One line of /proc/PID/mountinfo."""

    def __init__(self, mount_id: int, parent_id: int, root: str, mountpoint: str, options: str,
                 optional: list[str], fstype: str, source: str, super_options: str) -> None:
        self.mount_id, self.parent_id, self.root, self.mountpoint = mount_id, parent_id, root, mountpoint
        self.options = options
        self.optional = optional  # propagation tags: shared:N, master:N, propagate_from:N, unbindable
        self.fstype, self.source, self.super_options = fstype, source, super_options


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 1 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mountinfo(pid: int | str = "self") -> list[MountEntry]:
    with open(f"/proc/{pid}/mountinfo") as f:
        lines = f.read().splitlines()
    entries = []
    for line in lines:
        left, _, right = line.partition(" - ")
        f1 = left.split(" ")
        f2 = right.split(" ")
        entries.append(MountEntry(int(f1[0]), int(f1[1]), _unescape(f1[3]), _unescape(f1[4]),
                                  f1[5], f1[6:], f2[0], _unescape(f2[1]),
                                  f2[2] if len(f2) > 2 else ""))
    return entries


def mount_containing(path: str, entries: list[MountEntry]) -> MountEntry:
    """The mount whose mountpoint is the longest prefix of path (the last one wins on overmounts)."""
    best = entries[0]
    for e in entries:
        mp = e.mountpoint
        if path == mp or path.startswith(mp.rstrip("/") + "/") or mp == "/":
            if len(mp) >= len(best.mountpoint):
                best = e
    return best


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: tells a live pid from a reused one."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2:].split()[19])


def mount_id(path: str) -> int:
    """The id (as in mountinfo) of the mount `path` resolves to: the topmost one mounted on it,
    else the one containing it; from the "mnt_id:" line of /proc/self/fdinfo. OSError when
    `path` cannot be opened."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    finally:
        os.close(fd)
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo", path)


def proc_state(pid: int) -> str:
    """The one-letter state (R, S, D, T, Z...) of /proc/<pid>/stat, or "" when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return chr(data[data.rindex(b")") + 2])


def children(pid: int | str = "self") -> set[int]:
    """The live children of pid, from every thread's /proc/<pid>/task/<tid>/children (empty
    when it is gone)."""
    kids: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids |= {int(p) for p in f.read().split()}
        except OSError:
            continue
    return kids


def self_cgroups(pid: int | str = "self") -> list[tuple[str, str]]:
    """(controllers, path) pairs from /proc/<pid>/cgroup; controllers "" is the v2 hierarchy."""
    with open(f"/proc/{pid}/cgroup") as f:
        return [(p[1], p[2]) for p in (ln.split(":", 2) for ln in f.read().splitlines())]
