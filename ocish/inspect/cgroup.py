"""cgroups: the process's membership (/proc/<pid>/cgroup) and the limits and usage of the
container's cgroup directories (those the cgroup stage made)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ocish.inspect import Target

CGROUP_ROOT = "/sys/fs/cgroup"
# (controller key in the manager's paths, file, label); v1 files first, then cgroup v2's
FILES = [
    ("memory", "memory.limit_in_bytes", "memory limit"),
    ("memory", "memory.usage_in_bytes", "memory usage"),
    ("memory", "memory.max_usage_in_bytes", "memory peak"),
    ("pids", "pids.max", "pids limit"),
    ("pids", "pids.current", "pids"),
    ("cpu", "cpu.shares", "cpu shares"),
    ("cpu", "cpu.cfs_quota_us", "cpu quota (us)"),
    ("cpu", "cpu.cfs_period_us", "cpu period (us)"),
    ("freezer", "freezer.state", "freezer"),
    ("", "memory.max", "memory limit"),
    ("", "memory.current", "memory usage"),
    ("", "pids.max", "pids limit"),
    ("", "pids.current", "pids"),
    ("", "cpu.weight", "cpu weight"),
    ("", "cpu.max", "cpu quota/period (us)"),
    ("", "cgroup.freeze", "frozen"),
]


@dataclass
class Membership:
    hierarchy: str
    controllers: str    # "" for the v2 hierarchy
    path: str


@dataclass
class Limit:
    label: str
    file: str           # full path of the cgroup file
    value: str


@dataclass
class CgroupInfo:
    membership: list[Membership]
    dirs: dict[str, str]
    limits: list[Limit] = field(default_factory=list)


def dirs_of(membership: list[Membership], root: str = CGROUP_ROOT) -> dict[str, str]:
    """The cgroup directories of a process from its membership, keyed like a manager's paths,
    for a process the session did not create."""
    pure_v2 = os.path.exists(f"{root}/cgroup.controllers")
    out = {}
    for m in membership:
        if not m.controllers:
            v2 = root if pure_v2 else f"{root}/unified"
            out["" if pure_v2 else "unified"] = f"{v2}{m.path}".rstrip("/")
            continue
        mount = "systemd" if m.controllers == "name=systemd" else m.controllers
        for ctrl in m.controllers.split(","):
            out[ctrl] = f"{root}/{mount}{m.path}".rstrip("/")
    return out


def read(t: Target) -> CgroupInfo:
    with open(f"/proc/{t.pid}/cgroup") as f:
        lines = [ln.split(":", 2) for ln in f.read().splitlines()]
    membership = [Membership(*p) for p in lines]
    info = CgroupInfo(membership, dict(t.cgroup_paths) or dirs_of(membership))
    for key, name, label in FILES:
        d = info.dirs.get(key)
        if d is None:
            continue
        path = os.path.join(d, name)
        try:
            with open(path) as f:
                info.limits.append(Limit(label, path, f.read().strip()))
        except OSError:
            continue
    return info

