"""The cgroup v2 driver: one directory in the unified hierarchy, like runc's fs2 manager.

Values that v2 spells differently are converted as runc and crun do (cpu shares to cpu.weight,
memory+swap to swap alone, blkio weight to io.weight). Settings v2 cannot honour without an eBPF
program or at all (device rules beyond the default set, network, realtime cpu, swappiness, ...)
are refused with a StageError at their pointer rather than silently dropped.
"""
from __future__ import annotations

import errno
import os

from runtime.cgroups.base import (MAX_UINT64, STAGE, Manager, read, read_ints, read_keyed, wait_for,
                                  write, write_rdma)
from runtime.cgroups.resources import POINTER, Section, device_numbers, major_minor, page_size
from runtime.errors import StageError

_IO_MAX = (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
           ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops"))
# the rules runc's spec conversion always adds (mknod anything; null, zero, full, random, urandom,
# tty, console, ptmx, pts, tun): after a deny-all they give a container what it needs, and their
# effect without an eBPF filter is only that other device nodes are not refused
_DEFAULT_DEVICES = {("c", -1, -1), ("b", -1, -1), ("c", 1, 3), ("c", 1, 5), ("c", 1, 7),
                    ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 1), ("c", 5, 2),
                    ("c", 136, -1), ("c", 10, 200)}


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] to cpu.weight [1, 10000], linearly as runc and crun do."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] to io.weight [1, 10000] (runc's ConvertBlkIOToIOWeightValue)."""
    return 1 + ((weight - 10) * 9999) // 990


def _limit(value: int) -> str:
    return "max" if value == -1 else str(value)


class V2Manager(Manager):
    version = 2

    @property
    def _path(self) -> str:
        return self._paths[""]

    # -- create

    def create(self) -> None:
        """mkdir the cgroup, then enable in each ancestor the controllers it offers, so that
        their files appear below (the kernel starts a child with none)."""
        super().create()
        chain = []
        d = self._path
        while d.startswith(self.root + "/"):
            d = os.path.dirname(d)
            chain.append(d)
        for d in reversed(chain):
            _enable_controllers(d)

    # -- resources

    def apply(self, resources: dict) -> None:
        res = Section(resources, POINTER)
        self._refuse_unsupported(res)
        self._devices(res)
        self._memory(res.sub("memory"))
        self._cpu(res.sub("cpu"))
        self._pids(res.sub("pids"))
        self._io(res.sub("blockIO"))
        for limit in res.items("hugepageLimits", self._path):
            target = f"{self._path}/hugetlb.{page_size(limit, self._path)}.max"
            value = limit.integer("limit", target, lo=0, required=True)
            write(target, str(value), limit.ptr("limit"))
        for device, limits, pointer in res.entries("rdma", f"{self._path}/rdma.max"):
            write_rdma(f"{self._path}/rdma.max", device, Section(limits, pointer, self._path))
        self._unified(res)

    def _refuse(self, pointer: str, what: str) -> StageError:
        return StageError(STAGE, "apply", self._path, 0, pointer,
                          f"{what} is not supported on cgroup v2")

    def _refuse_unsupported(self, res: Section) -> None:
        mem, cpu, bio = res.sub("memory"), res.sub("cpu"), res.sub("blockIO")
        for sec, key, what in ((mem, "kernelTCP", "kernel TCP memory limit"),
                               (mem, "disableOOMKiller", "disabling the OOM killer"),
                               (cpu, "realtimeRuntime", "realtime cpu scheduling"),
                               (cpu, "realtimePeriod", "realtime cpu scheduling"),
                               (bio, "leafWeight", "blkio leaf weight"),
                               (res.sub("network"), "classID", "network classID"),
                               (res.sub("network"), "priorities", "network priorities")):
            if sec.asks(key):
                raise self._refuse(sec.ptr(key), what)
        swappiness = mem.integer("swappiness", self._path, lo=-1)
        if swappiness is not None and swappiness >= 0:
            raise self._refuse(mem.ptr("swappiness"), "memory swappiness")
        for dev in bio.items("weightDevice", self._path):
            if dev.asks("leafWeight"):
                raise self._refuse(dev.ptr("leafWeight"), "blkio leaf weight")

    def _devices(self, res: Section) -> None:
        """No rule is written: v2 device control is an eBPF program, which ocish cannot load yet.
        Rules are accepted only when that changes nothing a container could rely on."""
        denied_all = False
        for rule in res.items("devices", self._path):
            allow = rule.flag("allow", self._path, required=True)
            kind, major, minor, access = device_numbers(rule, self._path)
            if kind == "a" and set(access) == set("rwm"):
                denied_all = not allow
            elif allow == (not denied_all):
                continue  # allowing what is allowed, or denying what is denied
            elif not (allow and (kind, major, minor) in _DEFAULT_DEVICES
                      and (major != -1 or access == "m")):
                raise StageError(STAGE, "apply", self._path, 0, rule.pointer,
                                 "device rules need an eBPF program on cgroup v2, which ocish does "
                                 "not support yet: only the default device rules can be used")

    def _memory(self, mem: Section) -> None:
        d = self._path
        limit = mem.integer("limit", f"{d}/memory.max", lo=-1) or 0
        swap = mem.integer("swap", f"{d}/memory.swap.max", lo=-1) or 0
        reservation = mem.integer("reservation", f"{d}/memory.low", lo=-1)
        mem.integer("kernel", f"{d}/memory.max", lo=-1)  # deprecated: checked, ignored as by runc
        swap_max = self._swap_max(mem, limit, swap)
        if swap_max is not None:
            try:
                write(f"{d}/memory.swap.max", swap_max, mem.ptr("swap"))
            except StageError as e:
                # without swap accounting there is no swap to leave unlimited or to disable
                if e.errno != errno.ENOENT or swap_max not in ("max", "0"):
                    raise
        if limit:
            write(f"{d}/memory.max", _limit(limit), mem.ptr("limit"))
        if reservation:
            write(f"{d}/memory.low", _limit(reservation), mem.ptr("reservation"))

    def _swap_max(self, mem: Section, limit: int, swap: int) -> str | None:
        """The spec's swap is memory+swap (v1's memsw); memory.swap.max is the swap alone
        (runc's ConvertMemorySwapToCgroupV2Value). None leaves it as it is."""
        if limit == -1 and not swap or swap == -1:
            return "max"
        if not swap:
            return None
        target = f"{self._path}/memory.swap.max"
        if limit in (0, -1):
            raise StageError(STAGE, "write", target, 0, mem.ptr("swap"),
                             "a swap limit needs a memory limit on cgroup v2")
        if swap < limit:
            raise StageError(STAGE, "write", target, 0, mem.ptr("swap"),
                             f"swap counts memory too: {swap} must be at least the memory "
                             f"limit {limit}")
        return str(swap - limit)

    def _cpu(self, cpu: Section) -> None:
        d = self._path
        shares = cpu.integer("shares", f"{d}/cpu.weight", lo=0)
        quota = cpu.integer("quota", f"{d}/cpu.max")
        period = cpu.integer("period", f"{d}/cpu.max", lo=0)
        idle = cpu.integer("idle", f"{d}/cpu.idle")
        burst = cpu.integer("burst", f"{d}/cpu.max.burst", lo=0)
        if shares:
            write(f"{d}/cpu.weight", str(shares_to_weight(shares)), cpu.ptr("shares"))
        if idle is not None:
            write(f"{d}/cpu.idle", str(idle), cpu.ptr("idle"))
        if burst is not None:
            write(f"{d}/cpu.max.burst", str(burst), cpu.ptr("burst"))
        if quota or period:
            value = str(quota) if quota and quota > 0 else "max"
            if period:
                value += f" {period}"
            write(f"{d}/cpu.max", value, cpu.ptr("quota" if quota else "period"))
        for key in ("cpus", "mems"):
            value = cpu.string(key, f"{d}/cpuset.{key}")
            if value:
                write(f"{d}/cpuset.{key}", value, cpu.ptr(key))

    def _pids(self, pids: Section) -> None:
        limit = pids.integer("limit", f"{self._path}/pids.max")
        if limit is not None:
            write(f"{self._path}/pids.max", str(limit) if limit > 0 else "max", pids.ptr("limit"))

    def _io(self, bio: Section) -> None:
        d = self._path
        # with BFQ, runc writes the blkio weight unconverted to io.bfq.weight
        bfq = os.path.exists(f"{d}/io.bfq.weight")
        target = f"{d}/io.bfq.weight" if bfq else f"{d}/io.weight"
        weight = bio.integer("weight", target, lo=10, hi=1000) if bio.asks("weight") else None
        if weight:
            write(target, str(weight if bfq else blkio_to_io_weight(weight)), bio.ptr("weight"))
        for dev in bio.items("weightDevice", target):
            value = dev.integer("weight", target, lo=10, hi=1000) if dev.asks("weight") else None
            if value:
                value = value if bfq else blkio_to_io_weight(value)
                write(target, f"{major_minor(dev, target)} {value}", dev.ptr("weight"))
        target = f"{d}/io.max"
        for key, name in _IO_MAX:
            for dev in bio.items(key, target):
                rate = dev.integer("rate", target, lo=0, required=True)
                write(target, f"{major_minor(dev, target)} {name}={rate}", dev.pointer)

    def _unified(self, res: Section) -> None:
        for key, value, pointer in res.entries("unified", self._path):
            target = f"{self._path}/{key}"
            if "/" in key or key in ("", ".", ".."):
                raise StageError(STAGE, "write", target, 0, pointer,
                                 "must name a file of the cgroup")
            if not isinstance(value, str):
                raise StageError(STAGE, "write", target, 0, pointer, "must be a string")
            write(target, value, pointer)

    # -- freezer

    def _can_freeze(self) -> bool:
        return True

    def freeze(self) -> None:
        write(f"{self._path}/cgroup.freeze", "1")
        if not wait_for(f"{self._path}/cgroup.events", "frozen 1"):
            write(f"{self._path}/cgroup.freeze", "0")
            raise StageError(STAGE, "freeze", f"{self._path}/cgroup.events", errno.ETIMEDOUT,
                             detail="timed out waiting for the processes to freeze")

    def thaw(self) -> None:
        write(f"{self._path}/cgroup.freeze", "0")

    def frozen(self) -> bool:
        return read(f"{self._path}/cgroup.freeze") == "1"

    # -- processes and stats

    def _pids_dir(self) -> str:
        return self._path

    def oom_kills(self) -> int:
        return read_keyed(f"{self._path}/memory.events").get("oom_kill", 0)

    def stats(self) -> dict:
        d = self._path
        out: dict = {}
        cpu = read_keyed(f"{d}/cpu.stat")
        usage = {k: cpu[n] * 1000 for k, n in (("total", "usage_usec"), ("kernel", "system_usec"),
                                                ("user", "user_usec")) if n in cpu}
        throttling = {k: cpu[n] * m for k, n, m in (("periods", "nr_periods", 1),
                                                     ("throttledPeriods", "nr_throttled", 1),
                                                     ("throttledTime", "throttled_usec", 1000))
                      if n in cpu}
        if usage or throttling:
            out["cpu"] = {"usage": usage, "throttling": throttling}
        memory = _memory_stats(d)
        if memory:
            out["memory"] = memory
        pids = read_ints(d, {"current": "pids.current", "limit": "pids.max"})
        if pids:
            if pids.get("limit") == MAX_UINT64:
                pids["limit"] = 0  # runc reports "max" as 0, no limit
            out["pids"] = pids
        blkio = _io_stats(read(f"{d}/io.stat"))
        if blkio:
            out["blkio"] = blkio
        hugetlb = _hugetlb_stats(d)
        if hugetlb:
            out["hugetlb"] = hugetlb
        return out


def _enable_controllers(d: str) -> None:
    """Enable in `d`'s subtree_control what it offers and has not enabled yet. Failures are left
    to show up as missing files when a resource needs one (a cgroup with processes, or a
    threaded one, cannot enable some controllers; runc ignores them the same way)."""
    offered = (read(f"{d}/cgroup.controllers") or "").split()
    enabled = (read(f"{d}/cgroup.subtree_control") or "").split()
    missing = [c for c in offered if c not in enabled and f"+{c}" not in enabled]
    if not missing:
        return
    try:
        write(f"{d}/cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    except StageError:
        for c in missing:
            try:
                write(f"{d}/cgroup.subtree_control", f"+{c}")
            except StageError:
                pass


def _memory_stats(d: str) -> dict:
    out: dict = {}
    raw = read_keyed(f"{d}/memory.stat")
    if raw:
        out["raw"] = raw
        out["cache"] = raw.get("file", 0)
    usage = read_ints(d, {"usage": "memory.current", "limit": "memory.max", "max": "memory.peak"})
    if not usage:
        return out
    usage["failcnt"] = read_keyed(f"{d}/memory.events").get("max", 0)
    out["usage"] = usage
    swap = read_ints(d, {"usage": "memory.swap.current", "limit": "memory.swap.max"})
    if swap:
        # v1 reported memory+swap: add the memory part back, as runc does for compatibility
        swap["usage"] = swap.get("usage", 0) + usage.get("usage", 0)
        if MAX_UINT64 not in (swap.get("limit", MAX_UINT64), usage.get("limit", MAX_UINT64)):
            swap["limit"] += usage["limit"]
        swap["failcnt"] = read_keyed(f"{d}/memory.swap.events").get("max", 0)
        out["swap"] = swap
    return out


def _io_stats(text: str | None) -> dict:
    """io.stat lines "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." in runc's blkio shape."""
    out: dict = {}
    for line in (text or "").splitlines():
        dev, *fields = line.split()
        major, _, minor = dev.partition(":")
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        for key, name, op in (("ioServiceBytesRecursive", "rbytes", "Read"),
                              ("ioServiceBytesRecursive", "wbytes", "Write"),
                              ("ioServicedRecursive", "rios", "Read"),
                              ("ioServicedRecursive", "wios", "Write")):
            if name in values:
                out.setdefault(key, []).append({"major": int(major), "minor": int(minor), "op": op,
                                                "value": int(values[name])})
    return out


def _hugetlb_stats(d: str) -> dict:
    with os.scandir(d) as it:
        sizes = [e.name.split(".")[1] for e in it if e.name.startswith("hugetlb.")
                 and e.name.endswith(".max") and e.name.count(".") == 2]
    out = {}
    for size in sizes:
        entry = read_ints(d, {"usage": f"hugetlb.{size}.current", "max": f"hugetlb.{size}.max"})
        entry["failcnt"] = read_keyed(f"{d}/hugetlb.{size}.events").get("max", 0)
        out[size] = entry
    return out
