"""cgroups: the process's membership (/proc/<pid>/cgroup) and the limits, usage and event
counters of the container's cgroup directories (those the cgroup stage made).

The directories outlive the process, so this topic still answers after the container process
died: the OOM-kill and failcnt counters are often the evidence of why.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ocish.inspect import Target

CGROUP_ROOT = "/sys/fs/cgroup"
POINTER = "/linux/resources"
# cgroup v1 writes "no limit" as PAGE_COUNTER_MAX pages: 0x7FFFFFFFFFFFF000 with 4 KiB pages
V1_UNLIMITED = 0x7FFFFFFFFFFFF000
AT_LIMIT = 0.95  # usage this close to the limit is flagged: reclaim keeps memory just under it

# (controller key in the manager's paths, file, label); v1 files first, then cgroup v2's
FILES = [
    ("memory", "memory.limit_in_bytes", "memory limit"),
    ("memory", "memory.usage_in_bytes", "memory usage"),
    ("memory", "memory.max_usage_in_bytes", "memory peak"),
    ("memory", "memory.failcnt", "memory failcnt"),
    ("memory", "memory.oom_control", "memory oom_control"),
    ("memory", "memory.memsw.limit_in_bytes", "memory+swap limit"),
    ("memory", "memory.memsw.usage_in_bytes", "memory+swap usage"),
    ("memory", "memory.memsw.max_usage_in_bytes", "memory+swap peak"),
    ("memory", "memory.memsw.failcnt", "memory+swap failcnt"),
    ("pids", "pids.max", "pids limit"),
    ("pids", "pids.current", "pids"),
    ("pids", "pids.peak", "pids peak"),
    ("pids", "pids.events", "pids events"),
    ("cpu", "cpu.shares", "cpu shares"),
    ("cpu", "cpu.cfs_quota_us", "cpu quota (us)"),
    ("cpu", "cpu.cfs_period_us", "cpu period (us)"),
    ("freezer", "freezer.state", "freezer"),
    ("", "memory.max", "memory limit"),
    ("", "memory.current", "memory usage"),
    ("", "memory.peak", "memory peak"),
    ("", "memory.events", "memory events"),
    ("", "memory.swap.max", "swap limit"),
    ("", "memory.swap.current", "swap usage"),
    ("", "pids.max", "pids limit"),
    ("", "pids.current", "pids"),
    ("", "pids.peak", "pids peak"),
    ("", "pids.events", "pids events"),
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
    """One cgroup file as read: the raw evidence behind `resources` and `settings`."""
    label: str
    file: str           # full path of the cgroup file
    value: str


@dataclass
class Resource:
    """A counted resource (memory, swap, pids): usage against its limit, with its counters."""
    name: str                   # memory, memory+swap, swap, pids
    unit: str                   # bytes, processes
    usage: int | None
    limit: int | None           # None: no limit
    peak: int | None
    pointer: str                # the config.json field that sets the limit
    configured: bool            # config.json sets it
    at_limit: bool              # usage at the limit (within 5% for memory)
    counters: dict[str, int] = field(default_factory=dict)  # failcnt, oom_kill, forks refused...
    file: str = ""              # the limit's file


@dataclass
class Setting:
    """A controller setting without a usage (cpu shares and quota, the freezer)."""
    name: str
    value: str
    pointer: str
    configured: bool
    file: str


@dataclass
class CgroupInfo:
    membership: list[Membership]   # [] once the process is gone
    dirs: dict[str, str]
    limits: list[Limit] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    process_gone: bool = False


def human_size(n: int) -> str:
    """1536 -> "1.5 KiB": binary units, one decimal."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


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


def frozen(pid: int) -> bool:
    """Whether `pid`'s cgroup is frozen: its v1 freezer, or its cgroup2 freeze (hybrid or
    pure v2); False when /proc/PID/cgroup cannot be read."""
    from runtime import cgroups
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            membership = [Membership(*ln.split(":", 2)) for ln in f.read().splitlines()]
    except OSError:
        return False
    dirs = dirs_of(membership)
    v2 = dirs.get("") or dirs.get("unified")
    return (cgroups.frozen({"version": 1, "paths": dirs})
            or v2 is not None and cgroups.frozen({"version": 2, "paths": {"": v2}}))


def read(t: Target) -> CgroupInfo:
    """Membership (when the process is alive), every file of FILES that exists, and the
    resources and settings they add up to. Raises OSError only when neither the process nor
    any cgroup directory is known."""
    try:
        with open(f"/proc/{t.pid}/cgroup") as f:
            lines = [ln.split(":", 2) for ln in f.read().splitlines()]
    except (FileNotFoundError, ProcessLookupError):
        if not t.cgroup_paths:
            raise
        lines = []
    membership = [Membership(*p) for p in lines]
    info = CgroupInfo(membership, dict(t.cgroup_paths) or dirs_of(membership),
                      process_gone=not membership)
    raw: dict[tuple[str, str], Limit] = {}
    for key, name, label in FILES:
        d = info.dirs.get(key)
        if d is None and key == "":
            d = info.dirs.get("unified")  # a hybrid host's v2 directory
        if d is None:
            continue
        path = os.path.join(d, name)
        try:
            with open(path) as f:
                lim = Limit(label, path, f.read().strip())
        except OSError:
            continue
        info.limits.append(lim)
        raw[(key, name)] = lim
    configured = _configured(t.resources or {})
    info.resources = _memory(raw, configured) + _pids(raw, configured)
    info.settings = _cpu(raw, configured) + _freezer(raw)
    return info


def _configured(resources: dict) -> set[str]:
    """The config pointers under /linux/resources that are set (non-null)."""
    out = set()
    for section in ("memory", "pids", "cpu"):
        for key, value in (resources.get(section) or {}).items():
            if value is not None:
                out.add(f"{POINTER}/{section}/{key}")
    return out


def _int(lim: Limit | None) -> int | None:
    if lim is None or lim.value in ("", "max"):
        return None
    try:
        return int(lim.value.split()[0])
    except ValueError:
        return None


def _keyed(lim: Limit | None) -> dict[str, int]:
    """"key value" lines (memory.oom_control, memory.events, pids.events) as a dict."""
    out = {}
    for line in (lim.value.splitlines() if lim else []):
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


def _limit(value: int | None) -> int | None:
    return None if value is None or value >= V1_UNLIMITED else value


def _resource(name: str, unit: str, usage: int | None, limit: int | None, peak: int | None,
              pointer: str, configured: set[str], counters: dict[str, int], file: str,
              slack: float) -> Resource:
    limit = _limit(limit)
    at = limit is not None and usage is not None and usage >= limit * slack
    return Resource(name, unit, usage, limit, peak, pointer, pointer in configured, at,
                    counters, file)


def _memory(raw: dict, configured: set[str]) -> list[Resource]:
    out = []
    limit = f"{POINTER}/memory/limit"
    if ("memory", "memory.limit_in_bytes") in raw:  # v1
        counters = {"failcnt": _int(raw.get(("memory", "memory.failcnt"))) or 0}
        oom = _keyed(raw.get(("memory", "memory.oom_control")))
        counters.update({k: oom[k] for k in ("oom_kill",) if k in oom})
        if oom.get("under_oom"):  # the OOM killer is disabled and the cgroup waits for memory
            counters["under_oom"] = oom["under_oom"]
        out.append(_resource("memory", "bytes", _int(raw.get(("memory", "memory.usage_in_bytes"))),
                             _int(raw[("memory", "memory.limit_in_bytes")]),
                             _int(raw.get(("memory", "memory.max_usage_in_bytes"))), limit,
                             configured, counters, raw[("memory", "memory.limit_in_bytes")].file,
                             AT_LIMIT))
        sw = raw.get(("memory", "memory.memsw.limit_in_bytes"))
        if sw is not None:
            out.append(_resource(
                "memory+swap", "bytes", _int(raw.get(("memory", "memory.memsw.usage_in_bytes"))),
                _int(sw), _int(raw.get(("memory", "memory.memsw.max_usage_in_bytes"))),
                f"{POINTER}/memory/swap", configured,
                {"failcnt": _int(raw.get(("memory", "memory.memsw.failcnt"))) or 0}, sw.file,
                AT_LIMIT))
    elif ("", "memory.max") in raw:  # v2: memory.events counts hits of max, OOMs and kills
        events = _keyed(raw.get(("", "memory.events")))
        counters = {k: events[k] for k in ("max", "oom", "oom_kill") if k in events}
        out.append(_resource("memory", "bytes", _int(raw.get(("", "memory.current"))),
                             _int(raw[("", "memory.max")]), _int(raw.get(("", "memory.peak"))),
                             limit, configured, counters, raw[("", "memory.max")].file, AT_LIMIT))
        sw = raw.get(("", "memory.swap.max"))
        if sw is not None:
            out.append(_resource("swap", "bytes", _int(raw.get(("", "memory.swap.current"))),
                                 _int(sw), None, f"{POINTER}/memory/swap", configured, {},
                                 sw.file, AT_LIMIT))
    return out


def _pids(raw: dict, configured: set[str]) -> list[Resource]:
    key = "pids" if ("pids", "pids.max") in raw else ""
    lim = raw.get((key, "pids.max"))
    if lim is None:
        return []
    events = _keyed(raw.get((key, "pids.events")))
    counters = {"forks refused": events["max"]} if "max" in events else {}
    return [_resource("pids", "processes", _int(raw.get((key, "pids.current"))), _int(lim),
                      _int(raw.get((key, "pids.peak"))), f"{POINTER}/pids/limit", configured,
                      counters, lim.file, 1.0)]


def _cpu(raw: dict, configured: set[str]) -> list[Setting]:
    out = []
    ptr = f"{POINTER}/cpu"

    def add(name: str, value: str, key: str, lim: Limit) -> None:
        out.append(Setting(name, value, f"{ptr}/{key}", f"{ptr}/{key}" in configured, lim.file))
    shares, weight = raw.get(("cpu", "cpu.shares")), raw.get(("", "cpu.weight"))
    if shares is not None:
        add("cpu shares", shares.value, "shares", shares)
    elif weight is not None:
        add("cpu weight", weight.value, "shares", weight)  # runc converts shares to a weight
    quota, period = raw.get(("cpu", "cpu.cfs_quota_us")), raw.get(("cpu", "cpu.cfs_period_us"))
    if quota is not None and period is not None:
        add("cpu quota", _quota(quota.value, period.value), "quota", quota)
    elif ("", "cpu.max") in raw:
        lim = raw[("", "cpu.max")]
        q, _, p = lim.value.partition(" ")
        add("cpu quota", _quota("-1" if q == "max" else q, p), "quota", lim)
    return out


def _quota(quota: str, period: str) -> str:
    """"50000 us per 100000 us (0.50 CPUs)", or no limit."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return f"{quota} per {period}"
    if q < 0:
        return f"no limit (period {p} us)"
    return f"{q} us per {p} us ({q / p:.2f} CPUs)"


def _freezer(raw: dict) -> list[Setting]:
    lim = raw.get(("freezer", "freezer.state")) or raw.get(("", "cgroup.freeze"))
    if lim is None:
        return []
    value = {"0": "thawed", "1": "frozen"}.get(lim.value, lim.value)
    return [Setting("freezer", value, "", False, lim.file)]
