"""The cgroup v1 driver: one directory per mounted controller, like runc's fs manager.

On a hybrid host the manager also makes and joins the v2 directory ("unified" in paths), and uses
its cgroup.kill for SIGKILL; resources, freezing and stats go through the v1 controllers. A
controller that is not mounted is skipped, unless the config sets something that needs it.
"""
from __future__ import annotations

import errno
import os

from runtime.cgroups.base import (MAX_UINT64, STAGE, Manager, read, read_int, read_ints, read_keyed,
                                  wait_for, write, write_rdma)
from runtime.cgroups.resources import POINTER, Section, device_rule, major_minor, page_size
from runtime.errors import StageError

_THROTTLE = (("throttleReadBpsDevice", "read_bps_device"),
             ("throttleWriteBpsDevice", "write_bps_device"),
             ("throttleReadIOPSDevice", "read_iops_device"),
             ("throttleWriteIOPSDevice", "write_iops_device"))
_CPU_KEYS = ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod", "idle", "burst")
# runc's blkio stats: the CFQ files when the kernel has them, else BFQ's, else the throttle ones
_BLKIO_STATS = (
    ("ioServiceBytesRecursive", ("io_service_bytes_recursive", "bfq.io_service_bytes_recursive",
                                 "throttle.io_service_bytes_recursive")),
    ("ioServicedRecursive", ("io_serviced_recursive", "bfq.io_serviced_recursive",
                             "throttle.io_serviced_recursive")),
    ("ioQueueRecursive", ("io_queued_recursive",)),
    ("ioServiceTimeRecursive", ("io_service_time_recursive",)),
    ("ioWaitTimeRecursive", ("io_wait_time_recursive",)),
    ("ioMergedRecursive", ("io_merged_recursive",)),
    ("ioTimeRecursive", ("time_recursive",)),
    ("sectorsRecursive", ("sectors_recursive",)))


class V1Manager(Manager):
    version = 1

    # -- create

    def _init_dir(self, d: str) -> None:
        cpuset = self._paths.get("cpuset")
        if cpuset and (d == cpuset or cpuset.startswith(d + "/")):
            _inherit_cpuset(d)

    # -- resources

    def apply(self, resources: dict) -> None:
        res = Section(resources, POINTER)
        if res.asks("unified"):
            raise StageError(STAGE, "apply", "", 0, res.ptr("unified"),
                             "unified resources need cgroup v2, and this host uses cgroup v1")
        cpu = res.sub("cpu")
        self._cpuset(cpu)
        self._devices(res)
        self._memory(res.sub("memory"))
        self._cpu(cpu)
        self._pids(res.sub("pids"))
        self._blkio(res.sub("blockIO"))
        self._hugetlb(res)
        self._network(res.sub("network"))
        self._rdma(res)

    def _dir(self, ctrl: str, sec: Section, *keys: str) -> str | None:
        """The controller's directory; None when it is not mounted and the config needs none
        of it."""
        d = self._paths.get(ctrl)
        if d is None and sec.asks(*keys):
            raise StageError(STAGE, "apply", f"{ctrl} controller", 0,
                             sec.ptr(keys[0]) if len(keys) == 1 else sec.pointer,
                             f"not mounted under {self.root}")
        return d

    def _cpuset(self, cpu: Section) -> None:
        d = self._dir("cpuset", cpu, "cpus", "mems")
        if d is None:
            return
        for key in ("cpus", "mems"):
            value = cpu.string(key, f"{d}/cpuset.{key}")
            if value:
                write(f"{d}/cpuset.{key}", value, cpu.ptr(key))

    def _devices(self, res: Section) -> None:
        d = self._dir("devices", res, "devices")
        if d is None:
            return
        for rule in res.items("devices", d):
            allow = rule.flag("allow", d, required=True)
            target = f"{d}/devices.{'allow' if allow else 'deny'}"
            write(target, device_rule(rule, target), rule.pointer)

    def _memory(self, mem: Section) -> None:
        d = self._dir("memory", mem)
        if d is None:
            return
        f = {k: f"{d}/memory.{v}" for k, v in (
            ("limit", "limit_in_bytes"), ("swap", "memsw.limit_in_bytes"),
            ("reservation", "soft_limit_in_bytes"), ("kernelTCP", "kmem.tcp.limit_in_bytes"),
            ("swappiness", "swappiness"), ("disableOOMKiller", "oom_control"))}
        limit = mem.integer("limit", f["limit"], lo=-1)
        swap = mem.integer("swap", f["swap"], lo=-1)
        reservation = mem.integer("reservation", f["reservation"], lo=-1)
        tcp = mem.integer("kernelTCP", f["kernelTCP"], lo=-1)
        swappiness = mem.integer("swappiness", f["swappiness"], lo=-1, hi=100)
        no_oom = mem.flag("disableOOMKiller", f["disableOOMKiller"])
        # deprecated, and refused by kernels since 6.1: checked, then ignored as runc does
        mem.integer("kernel", f"{d}/memory.kmem.limit_in_bytes", lo=-1)
        self._memory_and_swap(mem, f, limit or 0, swap or 0)
        for key, value in (("reservation", reservation), ("kernelTCP", tcp)):
            if value:
                write(f[key], str(value), mem.ptr(key))
        if no_oom:
            write(f["disableOOMKiller"], "1", mem.ptr("disableOOMKiller"))
        if swappiness is not None and swappiness >= 0:
            write(f["swappiness"], str(swappiness), mem.ptr("swappiness"))

    @staticmethod
    def _memory_and_swap(mem: Section, f: dict[str, str], limit: int, swap: int) -> None:
        """The kernel keeps memsw >= memory at every step, so raising the limits writes memsw
        first and lowering them writes memory first (runc's setMemoryAndSwap)."""
        if limit == -1 and not swap and os.path.exists(f["swap"]):
            swap = -1  # unlimited memory with swap unset: unlimited swap too
        swap_first = False
        if limit and swap:
            current = read_int(f["limit"])
            swap_first = swap == -1 or current is None or current < swap
        values = {"limit": limit, "swap": swap}
        for key in ("swap", "limit") if swap_first else ("limit", "swap"):
            if values[key]:
                _write_memory(f[key], values[key], mem.ptr(key))

    def _cpu(self, cpu: Section) -> None:
        d = self._dir("cpu", cpu, *_CPU_KEYS)
        if d is None:
            return
        shares = cpu.integer("shares", f"{d}/cpu.shares", lo=0)
        quota = cpu.integer("quota", f"{d}/cpu.cfs_quota_us")
        period = cpu.integer("period", f"{d}/cpu.cfs_period_us", lo=0)
        burst = cpu.integer("burst", f"{d}/cpu.cfs_burst_us", lo=0)
        rt_period = cpu.integer("realtimePeriod", f"{d}/cpu.rt_period_us", lo=0)
        rt_runtime = cpu.integer("realtimeRuntime", f"{d}/cpu.rt_runtime_us", lo=-1)
        idle = cpu.integer("idle", f"{d}/cpu.idle")
        if shares:
            _write_shares(f"{d}/cpu.shares", shares, cpu.ptr("shares"))
        _write_quota(d, cpu, quota or 0, period or 0)
        for key, name, value in (("burst", "cfs_burst_us", burst),
                                 ("realtimePeriod", "rt_period_us", rt_period),
                                 ("realtimeRuntime", "rt_runtime_us", rt_runtime)):
            if value:
                write(f"{d}/cpu.{name}", str(value), cpu.ptr(key))
        if idle is not None:
            write(f"{d}/cpu.idle", str(idle), cpu.ptr("idle"))

    def _pids(self, pids: Section) -> None:
        d = self._dir("pids", pids, "limit")
        limit = pids.integer("limit", _file(d, "pids.max"))
        if d is not None and limit is not None:
            write(f"{d}/pids.max", str(limit) if limit > 0 else "max", pids.ptr("limit"))

    def _blkio(self, bio: Section) -> None:
        d = self._dir("blkio", bio)
        if d is None:
            return
        # kernels without CFQ name the proportional weight after BFQ
        pre = "blkio.bfq." if not os.path.exists(f"{d}/blkio.weight") and os.path.exists(
            f"{d}/blkio.bfq.weight") else "blkio."
        for key, name in (("weight", f"{pre}weight"), ("leafWeight", "blkio.leaf_weight")):
            value = bio.integer(key, f"{d}/{name}", lo=0)
            if value:
                write(f"{d}/{name}", str(value), bio.ptr(key))
        for dev in bio.items("weightDevice", d):
            for key, name in (("weight", f"{pre}weight_device"),
                              ("leafWeight", "blkio.leaf_weight_device")):
                target = f"{d}/{name}"
                value = dev.integer(key, target, lo=0)
                if value:
                    write(target, f"{major_minor(dev, target)} {value}", dev.ptr(key))
        for key, name in _THROTTLE:
            target = f"{d}/blkio.throttle.{name}"
            for dev in bio.items(key, target):
                rate = dev.integer("rate", target, lo=0, required=True)
                write(target, f"{major_minor(dev, target)} {rate}", dev.pointer)

    def _hugetlb(self, res: Section) -> None:
        d = self._dir("hugetlb", res, "hugepageLimits")
        for limit in res.items("hugepageLimits", d or ""):
            target = _file(d, f"hugetlb.{page_size(limit, d or '')}.limit_in_bytes")
            value = limit.integer("limit", target, lo=0, required=True)
            write(target, str(value), limit.ptr("limit"))

    def _network(self, net: Section) -> None:
        d = self._dir("net_cls", net, "classID")
        class_id = net.integer("classID", _file(d, "net_cls.classid"), lo=0)
        if d is not None and class_id is not None:
            write(f"{d}/net_cls.classid", str(class_id), net.ptr("classID"))
        d = self._dir("net_prio", net, "priorities")
        target = _file(d, "net_prio.ifpriomap")
        for prio in net.items("priorities", target):
            name = prio.string("name", target, required=True)
            value = prio.integer("priority", target, lo=0, required=True)
            write(target, f"{name} {value}", prio.pointer)

    def _rdma(self, res: Section) -> None:
        d = self._dir("rdma", res, "rdma")
        target = _file(d, "rdma.max")
        for device, limits, pointer in res.entries("rdma", target):
            write_rdma(target, device, Section(limits, pointer, target))

    # -- freezer

    def _freezer_state(self) -> str:
        d = self._paths.get("freezer")
        if d is None:
            raise StageError(STAGE, "freeze", "freezer controller", 0,
                             detail=f"not mounted under {self.root}")
        return f"{d}/freezer.state"

    def _can_freeze(self) -> bool:
        return "freezer" in self._paths

    def freeze(self) -> None:
        state = self._freezer_state()
        write(state, "FROZEN")
        if not wait_for(state, "FROZEN"):
            write(state, "THAWED")
            raise StageError(STAGE, "freeze", state, errno.ETIMEDOUT,
                             detail="timed out waiting for the processes to freeze")

    def thaw(self) -> None:
        write(self._freezer_state(), "THAWED")

    def frozen(self) -> bool:
        return self._can_freeze() and read(self._freezer_state()) == "FROZEN"

    # -- processes and stats

    def _pids_dir(self) -> str:
        for ctrl in ("pids", "freezer", "memory", "devices"):
            if ctrl in self._paths:
                return self._paths[ctrl]
        return self._dirs()[0]

    def stats(self) -> dict:
        out = {}
        for key, stat in (("cpu", self._cpu_stats), ("memory", self._memory_stats),
                          ("pids", self._pid_stats), ("blkio", self._blkio_stats),
                          ("hugetlb", self._hugetlb_stats)):
            value = stat()
            if value:
                out[key] = value
        return out

    def _cpu_stats(self) -> dict:
        out: dict = {}
        acct = self._paths.get("cpuacct")
        if acct:
            usage = read_ints(acct, {"total": "cpuacct.usage"})
            for key, name in (("percpu", ""), ("percpu_kernel", "_sys"), ("percpu_user", "_user")):
                text = read(f"{acct}/cpuacct.usage_percpu{name}")
                if text:
                    usage[key] = [int(v) for v in text.split()]
            ticks = read_keyed(f"{acct}/cpuacct.stat")
            hz = os.sysconf("SC_CLK_TCK")
            for key, name in (("kernel", "system"), ("user", "user")):
                if name in ticks:
                    usage[key] = ticks[name] * 1_000_000_000 // hz
            if usage:
                out["usage"] = usage
        if "cpu" in self._paths:
            st = read_keyed(f"{self._paths['cpu']}/cpu.stat")
            throttling = {k: st[n] for k, n in (("periods", "nr_periods"),
                                                 ("throttledPeriods", "nr_throttled"),
                                                 ("throttledTime", "throttled_time")) if n in st}
            if throttling:
                out["throttling"] = throttling
        return out

    def oom_kills(self) -> int:
        d = self._paths.get("memory")
        return read_keyed(f"{d}/memory.oom_control").get("oom_kill", 0) if d else 0

    def _memory_stats(self) -> dict:
        d = self._paths.get("memory")
        if d is None:
            return {}
        out: dict = {}
        raw = read_keyed(f"{d}/memory.stat")
        if raw:
            out["raw"] = raw
            out["cache"] = raw.get("cache", 0)
        for key, prefix in (("usage", "memory."), ("swap", "memory.memsw."),
                            ("kernel", "memory.kmem."), ("kernelTCP", "memory.kmem.tcp.")):
            entry = read_ints(d, {"usage": f"{prefix}usage_in_bytes",
                                  "max": f"{prefix}max_usage_in_bytes",
                                  "limit": f"{prefix}limit_in_bytes",
                                  "failcnt": f"{prefix}failcnt"})
            if entry:
                out[key] = entry
        return out

    def _pid_stats(self) -> dict:
        d = self._paths.get("pids")
        out = read_ints(d, {"current": "pids.current", "limit": "pids.max"}) if d else {}
        if out.get("limit") == MAX_UINT64:
            out["limit"] = 0  # runc reports "max" as 0, no limit
        return out

    def _blkio_stats(self) -> dict:
        d = self._paths.get("blkio")
        if d is None:
            return {}
        out = {}
        for key, names in _BLKIO_STATS:
            for name in names:
                entries = _blkio_entries(read(f"{d}/blkio.{name}"))
                if entries:
                    out[key] = entries
                    break
        return out

    def _hugetlb_stats(self) -> dict:
        d = self._paths.get("hugetlb")
        if d is None:
            return {}
        out = {}
        with os.scandir(d) as it:
            sizes = [e.name.split(".")[1] for e in it
                     if e.name.startswith("hugetlb.") and e.name.endswith(".limit_in_bytes")
                     and e.name.count(".") == 2]
        for size in sizes:
            out[size] = read_ints(d, {"usage": f"hugetlb.{size}.usage_in_bytes",
                                      "max": f"hugetlb.{size}.max_usage_in_bytes",
                                      "failcnt": f"hugetlb.{size}.failcnt"})
        return out


def _file(d: str | None, name: str) -> str:
    """A file of a controller directory, or just its name when the controller is not mounted
    (and the value only needs checking)."""
    return f"{d}/{name}" if d else name


def _inherit_cpuset(d: str) -> None:
    """A new v1 cpuset starts with no cpus and mems, and refuses tasks until it has some:
    copy the parent's, filling an empty parent first, up to the root (runc's cpuset
    ensureParent): a parent another create made a moment ago may not be filled in yet."""
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read(f"{d}/{name}"):
            value = read(f"{parent}/{name}")
            if not value and os.path.exists(f"{os.path.dirname(parent)}/{name}"):
                _inherit_cpuset(parent)
                value = read(f"{parent}/{name}")
            write(f"{d}/{name}", value or "")


def _write_memory(path: str, value: int, pointer: str) -> None:
    try:
        write(path, str(value), pointer)
    except StageError as e:
        if e.errno != errno.EBUSY:
            raise
        usage = read_int(os.path.join(os.path.dirname(path), "memory.usage_in_bytes"))
        raise StageError(STAGE, "write", path, e.errno, pointer,
                         f"the cgroup uses {usage} bytes, more than the limit {value}") from None


def _write_shares(path: str, shares: int, pointer: str) -> None:
    """The kernel clamps cpu.shares silently: read it back to report the range (runc does)."""
    write(path, str(shares), pointer)
    got = read_int(path)
    if got is not None and got != shares:
        bound = "maximum" if shares > got else "minimum"
        raise StageError(STAGE, "write", path, 0, pointer,
                         f"the {bound} allowed cpu shares is {got}")


def _write_quota(d: str, cpu: Section, quota: int, period: int) -> None:
    """A period shorter than the current one can be refused (EINVAL) until the quota is
    lowered, so then it is written again after the quota (runc's CpuGroup.Set)."""
    retry = False
    if period:
        try:
            write(f"{d}/cpu.cfs_period_us", str(period), cpu.ptr("period"))
        except StageError as e:
            if e.errno != errno.EINVAL or not quota:
                raise
            retry = True
    if quota:
        write(f"{d}/cpu.cfs_quota_us", str(quota), cpu.ptr("quota"))
        if retry:
            write(f"{d}/cpu.cfs_period_us", str(period), cpu.ptr("period"))


def _blkio_entries(text: str | None) -> list[dict]:
    """Lines "8:0 Read 4096" (or "8:0 4096"); the closing "Total" line is dropped."""
    out = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        out.append({"major": int(major), "minor": int(minor),
                    "op": fields[1] if len(fields) > 2 else "", "value": int(fields[-1])})
    return out
