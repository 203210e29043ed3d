"""Mounts: /proc/<pid>/mountinfo as a tree, relative to the container's root.

Until pivot_root the container's root is still the host's /: then the tree starts at the
rootfs mount (once the mounts stage has bound it) and paths are shown relative to it, which is
where they will be after the pivot. `hidden` counts the namespace's mounts outside that tree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ocish.inspect import Target
from runtime.linux import procfs


@dataclass
class Mount:
    mountpoint: str       # relative to the container's root
    source: str
    fstype: str
    options: str          # per-mount options (rw, nosuid, ...)
    super_options: str    # filesystem options
    propagation: str      # shared, slave, private, unbindable (+ peer group numbers)
    mount_id: int
    children: list["Mount"] = field(default_factory=list)


@dataclass
class MountTree:
    root: Mount
    based_at: str         # the host path the tree starts at ("/" after the pivot)
    pivoted: bool
    hidden: int           # mounts of the namespace outside the tree


def propagation(optional: list[str]) -> str:
    tags = []
    for tag in optional:
        kind, _, group = tag.partition(":")
        tags.append({"shared": f"shared:{group}", "master": f"slave:{group}",
                     "propagate_from": f"from:{group}"}.get(kind, kind))
    return ",".join(tags) or "private"


def _rel(path: str, base: str) -> str:
    if base == "/":
        return path
    return path[len(base.rstrip("/")):] or "/"


def read(t: Target) -> MountTree:
    entries = procfs.mountinfo(t.pid)
    rootfs = t.rootfs.rstrip("/")
    at_rootfs = [e for e in entries if rootfs and e.mountpoint == rootfs]
    by_parent: dict[int, list[procfs.MountEntry]] = {}
    for e in entries:
        by_parent.setdefault(e.parent_id, []).append(e)
    if at_rootfs:
        base, base_path = at_rootfs[-1], rootfs
    else:
        ids = {e.mount_id for e in entries}
        tops = [e for e in entries if e.parent_id not in ids or e.parent_id == e.mount_id]
        base, base_path = (tops or entries)[0], "/"

    def build(e: procfs.MountEntry) -> Mount:
        node = Mount(_rel(e.mountpoint, base_path), e.source, e.fstype, e.options, e.super_options,
                     propagation(e.optional), e.mount_id)
        node.children = [build(c) for c in by_parent.get(e.mount_id, []) if c is not e]
        return node

    root = build(base)
    return MountTree(root, base_path, _own_root(t.pid), len(entries) - _count(root))


def _count(m: Mount) -> int:
    return 1 + sum(_count(c) for c in m.children)


def _own_root(pid: int) -> bool:
    """Whether the process's root differs from the shell's (it has pivoted or chrooted)."""
    a, b = os.stat(f"/proc/{pid}/root/"), os.stat("/")
    return (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)

