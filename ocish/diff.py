"""Snapshots of a container process's kernel state, and unified diffs between two of them.

A snapshot is a few readers' output flattened to one line per fact ("ns mnt 4026532178 own",
"caps effective CAP_SYS_ADMIN", "mount /proc proc proc rw,... private"), so that difflib shows
exactly the namespaces entered, mounts added or removed, capabilities dropped, maps written and
cgroups joined between two stops.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ocish import inspect
from ocish.inspect import Target
from ocish.inspect.mounts import propagation
from runtime.linux import procfs


@dataclass
class Snapshot:
    label: str                     # where it was taken: "before cgroup", "after mounts /proc"
    lines: list[str] = field(default_factory=list)


def take(target: Target | None, label: str) -> Snapshot:
    """The facts about `target`; none when there is no process (yet, or any more)."""
    snap = Snapshot(label)
    if target is None:
        return snap
    try:
        snap.lines = _facts(target)
    except OSError:  # gone, or a zombie (its /proc/<pid>/mountinfo reads EINVAL)
        snap.lines = []
    return snap


def _facts(t: Target) -> list[str]:
    out = []
    proc = inspect.read("proc", t)
    out.append(f"proc pid {proc.pid} (in its namespace: {proc.nspid[-1]}) {proc.name}")
    for ns in inspect.read("ns", t).items:
        out.append(f"ns {ns.kind} {ns.inode} {'own' if ns.differs else 'host'}")
    ids = inspect.read("ids", t)
    out += [f"uid_map {r.inside} {r.outside} {r.count}" for r in ids.uid_map]
    out += [f"gid_map {r.inside} {r.outside} {r.count}" for r in ids.gid_map]
    out.append(f"ids uid {ids.uids} gid {ids.gids} groups {ids.groups} setgroups {ids.setgroups}")
    for s in inspect.read("caps", t).sets:
        out += [f"caps {s.name} {c}" for c in s.caps] or [f"caps {s.name} (none)"]
    for m in inspect.read("cgroup", t).membership:
        out.append(f"cgroup {m.controllers or '(v2)'} {m.path}")
    # the whole table as the process sees it (the tree view's base moves as setup goes on),
    # by mountpoint: a new mount namespace lists the same mounts in another order; the sort is
    # stable, so mounts stacked on one mountpoint keep their order
    for e in sorted(procfs.mountinfo(t.pid), key=lambda e: e.mountpoint):
        out.append(f"mount {e.mountpoint} {e.fstype} {e.source} {e.options} "
                   f"{propagation(e.optional)}")
    return out


def diff(before: Snapshot, after: Snapshot, context: int = 0) -> list[str]:
    """Unified diff lines from `before` to `after`; [] when nothing changed."""
    return [line.rstrip("\n") for line in difflib.unified_diff(
        before.lines, after.lines, before.label, after.label, n=context, lineterm="")]
