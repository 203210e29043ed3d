"""cgroup limits: the files the runtime's own cgroup driver would write for /linux/resources,
beside what those files hold now.

The asked side is not recomputed here: the v1 or v2 driver (runtime/cgroups) runs its `apply`
with its writes recorded instead of made (`planned_writes`), so every conversion it does (cpu
shares to a v2 weight, memory+swap to v2's swap alone, "max" for -1, pids 0 as no limit) is
the one compared. The kernel then reads some values back changed, as any runtime sees them:
memory limits rounded down to whole pages, -1 shown as v1's PAGE_COUNTER_MAX, cpuset lists
re-spelled ("0,1" as "0-1"), keyed files (io.max, blkio throttles) holding a line per device.
v1 device rules are not judged: devices.list shows the resulting whitelist, not the rules.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

from ocish.inspect.cgroup import CGROUP_ROOT, V1_UNLIMITED, Membership, dirs_of
from ocish.verify import Item, judge, skipped
from ocish.verify.subject import Subject
from runtime.cgroups import V1Manager, V2Manager, base, v1, v2
from runtime.errors import StageError

PAGE = os.sysconf("SC_PAGE_SIZE")


@contextmanager
def _recording(writes: list[tuple[str, str, str]]):
    """The drivers' cgroup writes recorded as (file, value, pointer), not made; a read of a
    recorded file (the drivers read cpu.shares back) gives the recorded value."""
    recorded: dict[str, str] = {}
    real_read, real_read_int = base.read, base.read_int

    def write(path: str, value: str, pointer: str = "") -> None:
        writes.append((path, value, pointer))
        recorded[path] = value

    def read(path: str) -> str | None:
        return recorded[path] if path in recorded else real_read(path)

    def read_int(path: str) -> int | None:
        if path in recorded:
            text = recorded[path]
            return base.MAX_UINT64 if text == "max" else int(text.split()[0])
        return real_read_int(path)

    saved = [(m, name, getattr(m, name)) for m in (base, v1, v2)
             for name in ("write", "read", "read_int") if hasattr(m, name)]
    for m, name, _ in saved:
        setattr(m, name, {"write": write, "read": read, "read_int": read_int}[name])
    try:
        yield
    finally:
        for m, name, fn in saved:
            setattr(m, name, fn)


def planned_writes(resources: dict, paths: dict[str, str], root: str = CGROUP_ROOT
                   ) -> list[tuple[str, str, str]]:
    """(file, value, config pointer) of each write the driver for `paths` (v2 when `root` is a
    cgroup2 mount, else v1) makes for `resources`. Raises StageError as the driver's apply
    does (a setting this host cannot honour)."""
    manager = V2Manager(paths, root) if os.path.exists(f"{root}/cgroup.controllers") \
        else V1Manager(paths, root)
    writes: list[tuple[str, str, str]] = []
    with _recording(writes):
        manager.apply(resources)
    return writes


def check(s: Subject, root: str = CGROUP_ROOT) -> list[Item]:
    """Items for each cgroup file the driver writes for /linux/resources (none without
    resources), under the cgroup hierarchies mounted at `root`."""
    resources = (s.spec.get("linux") or {}).get("resources")
    if not isinstance(resources, dict) or not resources:
        return []
    paths = s.cgroup_paths or _paths_of(s.pid, root)
    try:
        writes = planned_writes(resources, paths, root)
    except StageError as e:
        return [skipped("cgroup", "", "", f"the driver refuses the resources: {e}",
                        e.pointer or "/linux/resources")]
    return compare(writes)


def compare(writes: list[tuple[str, str, str]]) -> list[Item]:
    """One Item per file (the last write to a file is what it holds; appended files such as
    devices.allow, io.max and the throttles keep every line)."""
    out, last = [], {}
    for path, value, pointer in writes:
        name = os.path.basename(path)
        if name in ("devices.allow", "devices.deny"):
            continue
        last.setdefault(path, []).append((value, pointer))
    for path, values in last.items():
        name = os.path.basename(path)
        item = f"cgroup {name}"
        try:
            with open(path) as f:
                held = f.read().strip()
        except OSError as e:
            out.append(judge(item, values[-1][0], os.strerror(e.errno or 0).lower(),
                             values[-1][1], same=False))
            continue
        lines = held.splitlines()
        if len(lines) > 1 or _keyed(name):
            for value, pointer in values:
                have = next((ln for ln in lines if ln.split()[:1] == value.split()[:1]), "")
                out.append(judge(item, value, have or "(no line)", pointer,
                                 same=_line_same(value, have)))
            continue
        value, pointer = values[-1]
        out.append(judge(item, value, held, pointer, same=same_value(name, value, held)))
    if any(os.path.basename(p) in ("devices.allow", "devices.deny") for p, _, _ in writes):
        out.append(skipped("cgroup devices", "rules", "", "devices.list holds the resulting "
                           "whitelist, not the rules", "/linux/resources/devices"))
    return out


def _keyed(name: str) -> bool:
    return name in ("io.max", "io.weight", "rdma.max") or name.startswith("blkio.throttle.") \
        or name.endswith("weight_device") or name == "net_prio.ifpriomap"


def _line_same(value: str, have: str) -> bool:
    """"8:0 rbps=1048576" against the device's line "8:0 rbps=1048576 wbps=max ..."."""
    return bool(have) and set(value.split()) <= set(have.split())


def same_value(name: str, written: str, held: str) -> bool:
    """Whether a cgroup file holding `held` is what writing `written` leaves in it."""
    if written == held:
        return True
    if name.startswith("cpuset."):
        return _cpus(written) == _cpus(held)
    if name == "memory.oom_control":  # written 1: "oom_kill_disable 1" among its lines
        return f"oom_kill_disable {written}" in held
    if name == "cpu.max":  # "max" alone keeps the period: "max 100000"
        return held.split()[:len(written.split())] == written.split()
    try:
        w, h = int(written), int(held)
    except ValueError:
        return False
    if w == -1:
        return h >= V1_UNLIMITED or h == -1
    if name.startswith("memory.") or name.startswith("hugetlb."):
        return h == w // PAGE * PAGE  # the page counter holds whole pages
    return False


def _cpus(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _paths_of(pid: int, root: str) -> dict[str, str]:
    """A process's cgroup directories by controller, from /proc/PID/cgroup (another runtime's
    container: its state files are not ours to interpret)."""
    with open(f"/proc/{pid}/cgroup") as f:
        membership = [Membership(*ln.split(":", 2)) for ln in f.read().splitlines()]
    return dirs_of(membership, root)
