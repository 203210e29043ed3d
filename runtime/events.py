"""`ocish events`: a container's resource usage as runc prints it, once or every interval.

Each event is one compact JSON line, `{"type": "stats", "id": ID, "data": {...}}`, `data` in the
layout of runc's `types.Stats` (libcontainer/../events/types.go): the same keys, the same Go
`omitempty` rules (e.g. `memory.usage.usage` is left out when 0, `limit` and `failcnt` never are),
built from the cgroup manager's stats(). An out-of-memory event is `{"type": "oom", "id": ID}`:
on cgroup v1 it comes from memory.oom_control through an eventfd (as runc's notifyOnOOM), on v2
from the oom_kill count of memory.events, checked four times a second.

Where runc differs on purpose: runc keeps running (and logging errors) after the container
stops; ocish events returns 0 once the container has stopped.
"""
from __future__ import annotations

import os
import sys
import time

import _json

from runtime import jsonfast, state
from runtime.errors import OcishError

_compact = _json.make_encoder(None, None, _json.encode_basestring, None, ":", ",", False, False,
                              False)


def compact(obj) -> str:
    """JSON as Go's encoder writes it: no spaces, non-ASCII kept as is."""
    return "".join(_compact(obj, 0))


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_DURATION = (2**63 - 1) / 1e9  # seconds: about 292 years


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds: "5s", "500ms", "1m30s", "1.5h"."""
    s, total = text.strip(), 0.0
    if s in ("0", ""):
        return 0.0
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        j = i
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        number, unit = s[:i], s[i:j]
        if not number or unit not in _UNITS:
            raise OcishError(f"invalid duration {jsonfast.quote(text)}")
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            raise OcishError(f"invalid duration {jsonfast.quote(text)}") from None
        s = s[j:]
    if total > _MAX_DURATION:  # Go's durations are int64 nanoseconds
        raise OcishError(f"invalid duration {jsonfast.quote(text)}")
    return sign * total


def _omit(d: dict, *keys: str) -> dict:
    """Go's omitempty for `keys`: drop them when zero or empty."""
    return {k: v for k, v in d.items() if k not in keys or v not in (0, None, "", [], {})}


def _memory_entry(e: dict | None) -> dict:
    e = e or {}
    return _omit({"limit": e.get("limit", 0), "usage": e.get("usage", 0),
                  "max": e.get("max", 0), "failcnt": e.get("failcnt", 0)}, "usage", "max")


def runc_stats(raw: dict, cpuset: dict | None = None) -> dict:
    """runc's types.Stats from a Manager.stats() dict."""
    cpu = raw.get("cpu") or {}
    u = cpu.get("usage") or {}
    usage = _omit({"total": u.get("total", 0), "percpu": u.get("percpu"),
                   "percpu_kernel": u.get("percpu_kernel"), "percpu_user": u.get("percpu_user"),
                   "kernel": u.get("kernel", 0), "user": u.get("user", 0)},
                  "total", "percpu", "percpu_kernel", "percpu_user")
    t = cpu.get("throttling") or {}
    throttling = _omit({k: t.get(k, 0) for k in ("periods", "throttledPeriods", "throttledTime")},
                       "periods", "throttledPeriods", "throttledTime")
    mem = raw.get("memory") or {}
    memory = _omit({"cache": mem.get("cache", 0), "usage": _memory_entry(mem.get("usage")),
                    "swap": _memory_entry(mem.get("swap")), "kernel": _memory_entry(mem.get("kernel")),
                    "kernelTCP": _memory_entry(mem.get("kernelTCP")), "raw": mem.get("raw")},
                   "cache", "raw")
    p = raw.get("pids") or {}
    pids = _omit({"current": p.get("current", 0), "limit": p.get("limit", 0)}, "current", "limit")
    blkio = {k: [_omit({"major": e.get("major", 0), "minor": e.get("minor", 0), "op": e.get("op", ""),
                        "value": e.get("value", 0)}, "major", "minor", "op", "value") for e in v]
             for k, v in (raw.get("blkio") or {}).items() if v}
    hugetlb = {size: _omit({"usage": h.get("usage", 0), "max": h.get("max", 0),
                            "failcnt": h.get("failcnt", 0)}, "usage", "max")
               for size, h in (raw.get("hugetlb") or {}).items()}
    return {"cpu": {"usage": usage, "throttling": throttling}, "cpuset": cpuset or {},
            "memory": memory, "pids": pids, "blkio": blkio, "hugetlb": hugetlb,
            "intel_rdt": {}, "network_interfaces": None}


def _cpu_list(text: str | None) -> list[int]:
    """"0-2,4" -> [0, 1, 2, 4]."""
    out: list[int] = []
    for part in (text or "").split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out += range(int(lo), int(hi) + 1)
        elif part.strip():
            out.append(int(part))
    return out


def cpuset_stats(manager) -> dict:
    """runc's CPUSet stats: v1 reads the cpuset controller's files, v2 the effective sets."""
    from runtime.cgroups.base import read
    paths = manager.paths()
    d = paths.get("cpuset") or paths.get("")
    if not d:
        return {}
    v2 = "cpuset" not in paths
    cpus = read(f"{d}/cpuset.cpus.effective" if v2 else f"{d}/cpuset.cpus")
    mems = read(f"{d}/cpuset.mems.effective" if v2 else f"{d}/cpuset.mems")
    out = _omit({"cpus": _cpu_list(cpus), "cpu_exclusive": 0, "mems": _cpu_list(mems)},
                "cpus", "mems")
    names = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
             "memory_spread_page", "memory_spread_slab", "memory_pressure", "sched_load_balance",
             "sched_relax_domain_level")
    for name in names:
        value = None if v2 else read(f"{d}/cpuset.{name}")
        out[name] = int(value) if value and value.lstrip("-").isdigit() else 0
    # runc's field order: cpus, cpu_exclusive, mems, then the rest
    order = ["cpus", "cpu_exclusive", "mems"] + list(names[1:])
    return {k: out[k] for k in order if k in out}


def stats_event(cid: str, manager) -> dict:
    return {"type": "stats", "id": cid, "data": runc_stats(manager.stats(), cpuset_stats(manager))}


class OomWatch:
    """Tells when the kernel reported an OOM in the container's memory cgroup."""

    def __init__(self, manager) -> None:
        self.fd = -1
        self.events_file = None
        self.count = 0
        paths = manager.paths()
        if "memory" in paths:  # v1: an eventfd registered through cgroup.event_control
            d = paths["memory"]
            try:
                efd = os.eventfd(0, os.EFD_CLOEXEC)
                ofd = os.open(f"{d}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    with open(f"{d}/cgroup.event_control", "w") as f:
                        f.write(f"{efd} {ofd}")
                finally:
                    os.close(ofd)
                self.fd = efd
            except OSError:
                pass
        elif "" in paths:  # v2: the oom_kill counter of memory.events
            self.events_file = f"{paths['']}/memory.events"
            self.count = self._oom_kills()

    def _oom_kills(self) -> int:
        from runtime.cgroups.base import read_keyed
        try:
            return read_keyed(self.events_file).get("oom_kill", 0)
        except OcishError:
            return self.count

    def wait(self, timeout: float) -> int:
        """Sleep up to `timeout` seconds; the number of OOM events seen meanwhile."""
        if self.fd >= 0:
            import select
            poller = select.poll()
            poller.register(self.fd, select.POLLIN)
            if poller.poll(max(0, int(timeout * 1000))):
                return os.eventfd_read(self.fd)
            return 0
        time.sleep(max(0.0, timeout))
        if self.events_file:
            now = self._oom_kills()
            seen, self.count = max(0, now - self.count), now
            return seen
        return 0


def events(root: str, cid: str, stats_only: bool, interval: float, out=None) -> None:
    out = out or sys.stdout
    if interval <= 0:
        raise OcishError("duration interval must be greater than 0")
    st = state.load(root, cid)
    if state.status(root, st) in ("stopped", "creating"):
        raise OcishError(f"container with id {cid} is not running")
    if not st.get("cgroup"):
        raise OcishError(f"container {cid} has no cgroup")
    from runtime import cgroups
    manager = cgroups.from_state(st["cgroup"])

    def emit(event: dict) -> None:
        out.write(compact(event) + "\n")
        out.flush()

    if stats_only:
        emit(stats_event(cid, manager))
        return
    watch = OomWatch(manager)
    # wake at least once a second to notice the container stopped; v2 OOMs are polled
    step = min(interval, 0.25 if watch.events_file else 1.0)
    next_stats = time.monotonic() + interval  # like Go's time.Tick: the first after one interval
    while state.alive(st):
        for _ in range(watch.wait(min(step, max(0.0, next_stats - time.monotonic())))):
            emit({"type": "oom", "id": cid})
        if time.monotonic() >= next_stats:
            next_stats += interval
            if not state.alive(st):
                break
            emit(stats_event(cid, manager))
