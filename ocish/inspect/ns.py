"""Namespaces: the inode of each /proc/<pid>/ns/* beside the shell's own (the host's)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ocish.inspect import Target


@dataclass
class Namespace:
    kind: str          # mnt, pid, pid_for_children, ...
    inode: int
    host_inode: int
    differs: bool


@dataclass
class Namespaces:
    pid: int
    items: list[Namespace]


def inode(link: str) -> int:
    """4026531841 from "mnt:[4026531841]"."""
    text = os.readlink(link)
    return int(text[text.index("[") + 1:-1])


def read(t: Target) -> Namespaces:
    items = []
    for kind in sorted(os.listdir(f"/proc/{t.pid}/ns")):
        try:
            mine, host = inode(f"/proc/{t.pid}/ns/{kind}"), inode(f"/proc/self/ns/{kind}")
        except FileNotFoundError:
            continue
        items.append(Namespace(kind, mine, host, mine != host))
    return Namespaces(t.pid, items)
