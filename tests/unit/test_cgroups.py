"""runtime.cgroups on a fake cgroupfs in tmp_path: layout detection, cgroupsPath resolution, every
resource mapping of both drivers, errors with their config pointers, state round trip, destroy."""
from __future__ import annotations

import errno
import os
import signal

import pytest

from runtime import cgroups
from runtime.cgroups import base, v1, v2
from runtime.errors import StageError

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma"
V1_DIRS = ("cpuset", "cpu,cpuacct", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
           "net_cls,net_prio", "rdma", "perf_event", "systemd")
PROC_SELF = """13:rdma:/
12:cpu,cpuacct:/user.slice
11:memory:/mem/own
10:perf_event:/
9:net_cls,net_prio:/
8:hugetlb:/
7:cpuset:/
6:pids:/
5:devices:/dev/own
4:blkio:/
3:freezer:/
1:name=systemd:/init.scope
0::/v2/own
"""


@pytest.fixture(autouse=True)
def test_mode(monkeypatch):
    monkeypatch.setattr(base, "TEST_MODE", True)


def put(path, text: str = "") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def cat(path) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def v2root(tmp_path):
    root = tmp_path / "v2"
    put(root / "cgroup.controllers", V2_CONTROLLERS + "\n")
    put(root / "cgroup.subtree_control", "")
    put(root / "cgroup.procs", "1\n")
    return str(root)


def make_v1(root, dirs=V1_DIRS, hybrid: bool = False) -> str:
    for d in dirs:
        put(root / d / "cgroup.procs", "1\n")
        for alias in d.split(",") if "," in d else ():
            os.symlink(d, root / alias)
    if "cpuset" in dirs:
        put(root / "cpuset" / "cpuset.cpus", "0-3\n")
        put(root / "cpuset" / "cpuset.mems", "0\n")
    put(root / "misc" / "cgroup.procs")       # a hierarchy ocish does not manage
    os.makedirs(root / "not-a-hierarchy")
    if hybrid:
        put(root / "unified" / "cgroup.controllers", "\n")
        put(root / "unified" / "cgroup.procs", "1\n")
    return str(root)


@pytest.fixture
def v1root(tmp_path):
    return make_v1(tmp_path / "v1")


@pytest.fixture
def hybrid(tmp_path):
    return make_v1(tmp_path / "hy", hybrid=True)


@pytest.fixture
def proc_self(tmp_path):
    put(tmp_path / "proc-self-cgroup", PROC_SELF)
    return str(tmp_path / "proc-self-cgroup")


@pytest.fixture
def writes(monkeypatch):
    """Every cgroup file write, in order, as (path, value, pointer)."""
    log = []

    def record(path, value, pointer=""):
        log.append((path, value, pointer))
        real_write(path, value, pointer)

    real_write = base.write
    for mod in (base, v1, v2):
        monkeypatch.setattr(mod, "write", record)
    return log


def made(root, path="/c", cid="c", **kw):
    m = cgroups.open_manager(path, cid, root=root, **kw)
    m.create()
    return m


def wrote(log, suffix: str) -> list[str]:
    return [value for path, value, _ in log if path.endswith("/" + suffix)]


# -- layout and cgroupsPath


def test_detects_v2(v2root):
    m = cgroups.open_manager(None, "x", root=v2root)
    assert m.version == 2 and m.paths() == {"": f"{v2root}/ocish/x"}


def test_detects_v1_without_aliases_or_unknown_hierarchies(v1root):
    m = cgroups.open_manager(None, "x", root=v1root)
    assert m.version == 1
    assert m.paths() == {
        "cpuset": f"{v1root}/cpuset/ocish/x", "cpu": f"{v1root}/cpu,cpuacct/ocish/x",
        "cpuacct": f"{v1root}/cpu,cpuacct/ocish/x", "memory": f"{v1root}/memory/ocish/x",
        "devices": f"{v1root}/devices/ocish/x", "freezer": f"{v1root}/freezer/ocish/x",
        "blkio": f"{v1root}/blkio/ocish/x", "pids": f"{v1root}/pids/ocish/x",
        "hugetlb": f"{v1root}/hugetlb/ocish/x", "net_cls": f"{v1root}/net_cls,net_prio/ocish/x",
        "net_prio": f"{v1root}/net_cls,net_prio/ocish/x", "rdma": f"{v1root}/rdma/ocish/x",
        "perf_event": f"{v1root}/perf_event/ocish/x", "name=systemd": f"{v1root}/systemd/ocish/x"}


def test_hybrid_adds_the_unified_dir(hybrid):
    paths = cgroups.open_manager("/a/b", "x", root=hybrid).paths()
    assert paths["unified"] == f"{hybrid}/unified/a/b" and paths["memory"] == f"{hybrid}/memory/a/b"


def test_no_hierarchy_is_an_error(tmp_path):
    with pytest.raises(StageError, match="no cgroup hierarchy is mounted here"):
        cgroups.open_manager(None, "x", root=str(tmp_path))


def test_relative_path_is_below_the_callers_own_cgroups(hybrid, v2root, proc_self):
    paths = cgroups.open_manager("a/b", "x", root=hybrid, proc_self_cgroup=proc_self).paths()
    assert paths["memory"] == f"{hybrid}/memory/mem/own/a/b"
    assert paths["cpu"] == f"{hybrid}/cpu,cpuacct/user.slice/a/b"
    assert paths["cpuset"] == f"{hybrid}/cpuset/a/b"
    assert paths["name=systemd"] == f"{hybrid}/systemd/init.scope/a/b"
    assert paths["unified"] == f"{hybrid}/unified/v2/own/a/b"
    m = cgroups.open_manager("a/b", "x", root=v2root, proc_self_cgroup=proc_self)
    assert m.paths() == {"": f"{v2root}/v2/own/a/b"}


def test_relative_path_needs_a_line_for_every_controller(v1root, proc_self):
    put(proc_self, PROC_SELF.replace("3:freezer:/\n", ""))
    with pytest.raises(StageError, match='no "freezer" line') as e:
        cgroups.open_manager("a", "x", root=v1root, proc_self_cgroup=proc_self)
    assert e.value.pointer == "/linux/cgroupsPath"


def test_absolute_path_never_reads_proc_self(v1root):
    m = cgroups.open_manager("/x/y", "c", root=v1root, proc_self_cgroup="/nonexistent")
    assert m.paths()["pids"] == f"{v1root}/pids/x/y"


def test_dotdot_cannot_climb_above_the_root(v2root, proc_self):
    assert cgroups.open_manager("/a/../../b", "x", root=v2root).paths()[""] == f"{v2root}/b"
    m = cgroups.open_manager("../../b", "x", root=v2root, proc_self_cgroup=proc_self)
    assert m.paths()[""] == f"{v2root}/v2/own/b"


@pytest.mark.parametrize("path", ["/", "/..", "."])
def test_path_naming_no_cgroup_is_refused(v2root, path):
    with pytest.raises(StageError, match="names no cgroup") as e:
        cgroups.open_manager(path, "x", root=v2root)
    assert e.value.pointer == "/linux/cgroupsPath"


def test_systemd_form_is_refused(v2root):
    with pytest.raises(StageError, match="systemd cgroup driver") as e:
        cgroups.open_manager("system.slice:ocish:abc", "x", root=v2root)
    assert e.value.stage == "cgroup" and e.value.pointer == "/linux/cgroupsPath"


# -- create, destroy, state


def test_create_records_the_dirs_it_made_parents_included(v1root):
    os.makedirs(f"{v1root}/memory/shared")
    m = made(v1root, "/shared/c")
    created = m.to_state()["created"]
    assert f"{v1root}/memory/shared/c" in created and f"{v1root}/memory/shared" not in created
    assert f"{v1root}/pids/shared" in created and f"{v1root}/pids/shared/c" in created
    assert created.count(f"{v1root}/cpu,cpuacct/shared/c") == 1
    assert created.index(f"{v1root}/pids/shared") < created.index(f"{v1root}/pids/shared/c")


def test_planned_state_is_what_create_will_make(v1root):
    """create's crash record, written before the first mkdir: a manager rebuilt from it and
    destroyed after a crash anywhere in create() removes what was made, and only that."""
    os.makedirs(f"{v1root}/memory/shared")
    m = cgroups.open_manager("/shared/c", "c", root=v1root)
    plan = m.planned_state()
    assert f"{v1root}/memory/shared" not in plan["created"]  # it was there: not ours
    m.create()
    assert sorted(plan["created"]) == sorted(m.to_state()["created"])
    assert m.planned_state() == m.to_state()  # nothing left to make
    half = cgroups.from_state(plan)
    os.rmdir(f"{v1root}/pids/shared/c")  # as if the crash came before that mkdir
    half.destroy()
    assert os.path.isdir(f"{v1root}/memory/shared")
    assert not os.path.exists(f"{v1root}/memory/shared/c")
    assert not os.path.exists(f"{v1root}/pids/shared")


def test_create_copies_cpuset_from_the_parent(v1root):
    m = made(v1root, "/p/c")
    for d in (f"{v1root}/cpuset/p", m.paths()["cpuset"]):
        assert cat(f"{d}/cpuset.cpus") == "0-3" and cat(f"{d}/cpuset.mems") == "0"


def test_v2_create_enables_offered_controllers_in_ancestors(v2root, writes):
    made(v2root, "/p/c")
    enabled = cat(f"{v2root}/cgroup.subtree_control")
    assert enabled == "+cpuset +cpu +io +memory +hugetlb +pids +rdma"
    assert not any(path.startswith(f"{v2root}/p/c/") for path, _, _ in writes)


def test_v2_create_leaves_enabled_controllers_alone(v2root, writes):
    put(f"{v2root}/cgroup.subtree_control", V2_CONTROLLERS)
    made(v2root)
    assert writes == []


def test_destroy_removes_only_what_it_made(v1root):
    os.makedirs(f"{v1root}/memory/shared")
    m = made(v1root, "/shared/c")
    put(f"{m.paths()['memory']}/memory.limit_in_bytes", "1")  # a cgroupfs file, not a blocker
    os.makedirs(f"{m.paths()['pids']}/sub")                   # made by the container: its own
    m.destroy()
    assert os.path.isdir(f"{v1root}/memory/shared")
    assert not os.path.exists(f"{v1root}/memory/shared/c")
    assert not os.path.exists(f"{v1root}/pids/shared")
    assert m.to_state()["created"] == []


def test_destroy_leaves_a_shared_parent_to_its_other_users(v2root):
    first, second = made(v2root, "/shared/a"), made(v2root, "/shared/b")
    first.destroy()
    assert os.path.isdir(f"{v2root}/shared/b") and not os.path.exists(f"{v2root}/shared/a")
    assert first.to_state()["created"] == [f"{v2root}/shared"]   # kept for a later retry
    second.destroy()
    first.destroy()
    assert not os.path.exists(f"{v2root}/shared")


def test_destroy_retries_busy_then_reports(v2root, monkeypatch):
    m = made(v2root)
    monkeypatch.setattr(base.time, "sleep", lambda s: None)
    real_rmdir, calls = os.rmdir, []

    def busy(path, times):
        calls.append(path)
        if len(calls) <= times:
            raise OSError(errno.EBUSY, "busy")
        real_rmdir(path)

    monkeypatch.setattr(base.os, "rmdir", lambda p: busy(p, 2))
    m.destroy()
    assert len(calls) == 3 and not os.path.exists(m.paths()[""])

    m, calls[:] = made(v2root), []
    monkeypatch.setattr(base.os, "rmdir", lambda p: busy(p, 99))
    with pytest.raises(StageError, match="still has processes") as e:
        m.destroy()
    assert e.value.op == "rmdir" and e.value.errno == errno.EBUSY and m.to_state()["created"]


@pytest.mark.parametrize("layout", ["v1root", "hybrid", "v2root"])
def test_state_round_trip(layout, request):
    m = made(request.getfixturevalue(layout), "/p/c")
    again = cgroups.from_state(m.to_state())
    assert type(again) is type(m) and again.to_state() == m.to_state()
    assert again.paths() == m.paths() and again.version == m.version
    again.destroy()
    assert not any(os.path.exists(d) for d in m.to_state()["created"])


def test_from_state_rejects_unknown_versions():
    with pytest.raises(StageError, match="unknown cgroup driver version 3"):
        cgroups.from_state({"version": 3, "paths": {}})


def test_add_writes_each_hierarchy_once(hybrid, writes):
    m = made(hybrid)
    writes.clear()
    m.add(4242)
    procs = [p for p, v, _ in writes if p.endswith("/cgroup.procs") and v == "4242"]
    assert sorted(procs) == sorted(f"{d}/cgroup.procs" for d in set(m.paths().values()))


# -- v2 resources


@pytest.mark.parametrize("shares,weight", [(2, 1), (1, 1), (1024, 39), (262144, 10000),
                                           (10**6, 10000)])
def test_v2_cpu_weight_from_shares(v2root, shares, weight):
    m = made(v2root)
    m.apply({"cpu": {"shares": shares}})
    assert cat(f"{m.paths()['']}/cpu.weight") == str(weight)
    assert v2.shares_to_weight(shares) == weight


@pytest.mark.parametrize("cpu,expect", [
    ({"quota": 50000, "period": 100000}, "50000 100000"),
    ({"quota": -1, "period": 100000}, "max 100000"),
    ({"quota": 20000}, "20000"),
    ({"period": 50000}, "max 50000"),
])
def test_v2_cpu_max(v2root, cpu, expect):
    m = made(v2root)
    m.apply({"cpu": cpu})
    assert cat(f"{m.paths()['']}/cpu.max") == expect


def test_v2_cpu_other_files(v2root):
    m = made(v2root)
    m.apply({"cpu": {"cpus": "0-1", "mems": "0", "idle": 1, "burst": 1000, "shares": 0}})
    d = m.paths()[""]
    assert (cat(f"{d}/cpuset.cpus"), cat(f"{d}/cpuset.mems"), cat(f"{d}/cpu.idle"),
            cat(f"{d}/cpu.max.burst")) == ("0-1", "0", "1", "1000")
    assert not os.path.exists(f"{d}/cpu.weight")  # shares 0 is unset


@pytest.mark.parametrize("mem,expect", [
    ({"limit": 100, "swap": 300, "reservation": 50}, {"memory.max": "100", "memory.swap.max": "200",
                                                      "memory.low": "50"}),
    ({"limit": 100, "swap": 100}, {"memory.max": "100", "memory.swap.max": "0"}),
    ({"limit": -1}, {"memory.max": "max", "memory.swap.max": "max"}),
    ({"limit": 100, "swap": -1}, {"memory.max": "100", "memory.swap.max": "max"}),
    ({"limit": 100}, {"memory.max": "100", "memory.swap.max": None}),
    ({"reservation": -1}, {"memory.low": "max", "memory.max": None}),
])
def test_v2_memory(v2root, mem, expect):
    m = made(v2root)
    m.apply({"memory": mem})
    for name, value in expect.items():
        path = f"{m.paths()['']}/{name}"
        assert (cat(path) if os.path.exists(path) else None) == value, name


def test_v2_swap_is_written_before_memory(v2root, writes):
    m = made(v2root)
    writes.clear()
    m.apply({"memory": {"limit": 100, "swap": 200}})
    assert [os.path.basename(p) for p, _, _ in writes] == ["memory.swap.max", "memory.max"]


@pytest.mark.parametrize("mem,detail", [
    ({"swap": 200}, "a swap limit needs a memory limit"),
    ({"limit": 300, "swap": 200}, "must be at least the memory limit 300"),
])
def test_v2_swap_errors(v2root, mem, detail):
    m = made(v2root)
    with pytest.raises(StageError, match=detail) as e:
        m.apply({"memory": mem})
    assert e.value.pointer == "/linux/resources/memory/swap" and e.value.errno == 0


def test_v2_swap_max_without_swap_accounting_is_ignored(v2root, monkeypatch):
    m = made(v2root)
    monkeypatch.setattr(base, "TEST_MODE", False)   # memory.swap.max does not exist
    put(f"{m.paths()['']}/memory.max")
    m.apply({"memory": {"limit": -1}})
    assert cat(f"{m.paths()['']}/memory.max") == "max"
    with pytest.raises(StageError) as e:
        m.apply({"memory": {"limit": 100, "swap": 200}})
    assert e.value.errno == errno.ENOENT and e.value.target.endswith("/memory.swap.max")


@pytest.mark.parametrize("limit,expect", [(10, "10"), (0, "max"), (-1, "max")])
def test_pids_max(v2root, v1root, limit, expect):
    for root in (v2root, v1root):
        m = made(root)
        m.apply({"pids": {"limit": limit}})
        d = m.paths().get("pids", m.paths().get(""))
        assert cat(f"{d}/pids.max") == expect


def test_v2_io(v2root, writes):
    m = made(v2root)
    m.apply({"blockIO": {
        "weight": 500,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 1000}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2048}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 200}]}})
    assert wrote(writes, "io.weight") == ["4950", "8:0 10000"]
    assert wrote(writes, "io.max") == ["8:0 rbps=1048576", "8:0 wbps=2048", "8:16 riops=100",
                                       "8:16 wiops=200"]
    assert [p for _, _, p in writes if p.endswith("Device/0")] == [
        f"/linux/resources/blockIO/throttle{k}Device/0"
        for k in ("ReadBps", "WriteBps", "ReadIOPS", "WriteIOPS")]
    assert v2.blkio_to_io_weight(10) == 1 and v2.blkio_to_io_weight(1000) == 10000


def test_v2_io_uses_bfq_weight_unconverted(v2root):
    m = made(v2root)
    put(f"{m.paths()['']}/io.bfq.weight", "100")
    m.apply({"blockIO": {"weight": 500}})
    assert cat(f"{m.paths()['']}/io.bfq.weight") == "500"


def test_v2_hugetlb_rdma_unified(v2root):
    m = made(v2root)
    m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
             "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
             "unified": {"memory.high": "1G", "cgroup.max.depth": "2"}})
    d = m.paths()[""]
    assert cat(f"{d}/hugetlb.2MB.max") == "4194304"
    assert cat(f"{d}/rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000"
    assert cat(f"{d}/memory.high") == "1G" and cat(f"{d}/cgroup.max.depth") == "2"


@pytest.mark.parametrize("key", ["../escape", "a/b", ".."])
def test_v2_unified_key_must_be_a_file_name(v2root, key):
    m = made(v2root)
    with pytest.raises(StageError, match="must name a file") as e:
        m.apply({"unified": {key: "1"}})
    assert e.value.pointer == "/linux/resources/unified/" + key.replace("/", "~1")


def test_v2_unified_value_must_be_a_string(v2root):
    with pytest.raises(StageError, match="must be a string") as e:
        made(v2root).apply({"unified": {"pids.max": 10}})
    assert e.value.pointer == "/linux/resources/unified/pids.max"


DEFAULT_DEVICES = [{"allow": False, "access": "rwm"},
                   {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                   {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                   {"allow": True, "type": "c", "access": "m"},
                   {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"}]


@pytest.mark.parametrize("rules", [[], DEFAULT_DEVICES, [{"allow": True, "access": "rwm"}],
                                   [{"allow": True, "type": "b", "major": 8, "minor": 0}]])
def test_v2_devices_that_need_no_filter_are_accepted(v2root, writes, rules):
    m = made(v2root)
    writes.clear()
    m.apply({"devices": rules})
    assert writes == []


@pytest.mark.parametrize("rules,index", [
    (DEFAULT_DEVICES + [{"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rw"}], 5),
    ([{"allow": False, "type": "c", "major": 1, "minor": 3}], 0),
    ([{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "access": "rwm"}], 1),
])
def test_v2_device_rules_needing_ebpf_are_refused(v2root, rules, index):
    with pytest.raises(StageError, match="need an eBPF program") as e:
        made(v2root).apply({"devices": rules})
    assert e.value.pointer == f"/linux/resources/devices/{index}"


@pytest.mark.parametrize("res,pointer", [
    ({"memory": {"swappiness": 60}}, "/linux/resources/memory/swappiness"),
    ({"memory": {"kernelTCP": 1 << 20}}, "/linux/resources/memory/kernelTCP"),
    ({"memory": {"disableOOMKiller": True}}, "/linux/resources/memory/disableOOMKiller"),
    ({"cpu": {"realtimeRuntime": 1000}}, "/linux/resources/cpu/realtimeRuntime"),
    ({"blockIO": {"leafWeight": 100}}, "/linux/resources/blockIO/leafWeight"),
    ({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 10}]}},
     "/linux/resources/blockIO/weightDevice/0/leafWeight"),
    ({"network": {"classID": 7}}, "/linux/resources/network/classID"),
])
def test_v2_refuses_what_it_cannot_honour(v2root, res, pointer):
    with pytest.raises(StageError, match="not supported on cgroup v2") as e:
        made(v2root).apply(res)
    assert e.value.pointer == pointer


def test_v2_unset_values_need_nothing(v2root, writes):
    m = made(v2root)
    writes.clear()
    m.apply({"memory": {"swappiness": -1, "disableOOMKiller": False, "kernel": 0}, "network": {},
             "cpu": {"shares": 0, "quota": 0, "period": 0}, "blockIO": {"weight": 0}})
    assert writes == []


# -- v1 resources


def test_v1_all_mappings(v1root, writes):
    m = made(v1root)
    writes.clear()
    m.apply({
        "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": 2 << 30, "kernel": 1 << 20,
                   "kernelTCP": 1 << 20, "swappiness": 10, "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimeRuntime": 950,
                "realtimePeriod": 1000, "cpus": "0-1", "mems": "0", "idle": 0, "burst": 10},
        "pids": {"limit": 32},
        "blockIO": {"weight": 300, "leafWeight": 200,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 400}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}],
                    "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 200}],
                    "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 400}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}],
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                    {"allow": False, "type": "b", "major": 8, "minor": -1, "access": "m"}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx4_0": {"hcaHandles": 2}},
    })
    rel = [(os.path.relpath(p, v1root), v) for p, v, _ in writes]
    assert rel == [
        ("cpuset/c/cpuset.cpus", "0-1"), ("cpuset/c/cpuset.mems", "0"),
        ("devices/c/devices.deny", "a *:* rwm"), ("devices/c/devices.allow", "c 1:3 rw"),
        ("devices/c/devices.allow", "c 136:* rwm"), ("devices/c/devices.deny", "b 8:* m"),
        ("memory/c/memory.memsw.limit_in_bytes", str(2 << 30)),   # raising: memsw first
        ("memory/c/memory.limit_in_bytes", str(1 << 30)),
        ("memory/c/memory.soft_limit_in_bytes", str(1 << 29)),
        ("memory/c/memory.kmem.tcp.limit_in_bytes", str(1 << 20)),
        ("memory/c/memory.oom_control", "1"), ("memory/c/memory.swappiness", "10"),
        ("cpu,cpuacct/c/cpu.shares", "512"), ("cpu,cpuacct/c/cpu.cfs_period_us", "100000"),
        ("cpu,cpuacct/c/cpu.cfs_quota_us", "50000"), ("cpu,cpuacct/c/cpu.cfs_burst_us", "10"),
        ("cpu,cpuacct/c/cpu.rt_period_us", "1000"), ("cpu,cpuacct/c/cpu.rt_runtime_us", "950"),
        ("cpu,cpuacct/c/cpu.idle", "0"),
        ("pids/c/pids.max", "32"),
        ("blkio/c/blkio.weight", "300"), ("blkio/c/blkio.leaf_weight", "200"),
        ("blkio/c/blkio.weight_device", "8:0 500"), ("blkio/c/blkio.leaf_weight_device", "8:0 400"),
        ("blkio/c/blkio.throttle.read_bps_device", "8:0 100"),
        ("blkio/c/blkio.throttle.write_bps_device", "8:0 200"),
        ("blkio/c/blkio.throttle.read_iops_device", "8:0 300"),
        ("blkio/c/blkio.throttle.write_iops_device", "8:0 400"),
        ("hugetlb/c/hugetlb.2MB.limit_in_bytes", str(1 << 21)),
        ("net_cls,net_prio/c/net_cls.classid", "1048577"),
        ("net_cls,net_prio/c/net_prio.ifpriomap", "eth0 5"),
        ("rdma/c/rdma.max", "mlx4_0 hca_handle=2"),
    ]
    pointers = dict((os.path.relpath(p, v1root), ptr) for p, _, ptr in writes)
    assert pointers["memory/c/memory.limit_in_bytes"] == "/linux/resources/memory/limit"
    assert pointers["blkio/c/blkio.throttle.read_bps_device"] == \
        "/linux/resources/blockIO/throttleReadBpsDevice/0"
    assert pointers["hugetlb/c/hugetlb.2MB.limit_in_bytes"] == \
        "/linux/resources/hugepageLimits/0/limit"
    assert pointers["rdma/c/rdma.max"] == "/linux/resources/rdma/mlx4_0"


@pytest.mark.parametrize("current,order", [
    (str(1 << 30), ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),   # raising
    (str(8 << 30), ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]),   # lowering
])
def test_v1_memory_and_swap_order(v1root, writes, current, order):
    m = made(v1root)
    put(f"{m.paths()['memory']}/memory.limit_in_bytes", current)
    writes.clear()
    m.apply({"memory": {"limit": 2 << 30, "swap": 4 << 30}})
    assert [os.path.basename(p) for p, _, _ in writes] == order


def test_v1_unlimited_memory_means_unlimited_swap(v1root, writes):
    m = made(v1root)
    put(f"{m.paths()['memory']}/memory.memsw.limit_in_bytes", "1")
    writes.clear()
    m.apply({"memory": {"limit": -1}})
    assert [(os.path.basename(p), v) for p, v, _ in writes] == [
        ("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_cpu_period_refused_until_quota_is_lowered(v1root, writes, monkeypatch):
    m = made(v1root)
    calls = []

    def picky(path, value, pointer=""):
        calls.append(os.path.basename(path))
        if calls == ["cpu.cfs_period_us"]:
            raise StageError("cgroup", "write", path, errno.EINVAL, pointer)
        base.write(path, value, pointer)

    monkeypatch.setattr(v1, "write", picky)
    m.apply({"cpu": {"quota": 1000, "period": 10000}})
    assert calls == ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_period_us"]


def test_v1_clamped_shares_are_reported(v1root, monkeypatch):
    m = made(v1root)
    real = v1.read_int
    monkeypatch.setattr(v1, "read_int", lambda p: 262144 if p.endswith("cpu.shares") else real(p))
    with pytest.raises(StageError, match="the maximum allowed cpu shares is 262144") as e:
        m.apply({"cpu": {"shares": 1 << 20}})
    assert e.value.pointer == "/linux/resources/cpu/shares"


def test_v1_bfq_weight_when_blkio_weight_is_absent(v1root, writes):
    m = made(v1root)
    put(f"{m.paths()['blkio']}/blkio.bfq.weight", "100")
    m.apply({"blockIO": {"weight": 300}})
    assert cat(f"{m.paths()['blkio']}/blkio.bfq.weight") == "300"


def test_v1_missing_controller(tmp_path):
    root = make_v1(tmp_path / "few", dirs=("memory", "pids", "devices"))
    m = made(root)
    m.apply({"hugepageLimits": [], "network": {"classID": 0}, "cpu": {"shares": 0},
             "pids": {"limit": 4}})
    with pytest.raises(StageError, match="not mounted under") as e:
        m.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]})
    assert (e.value.op, e.value.target, e.value.pointer) == (
        "apply", "hugetlb controller", "/linux/resources/hugepageLimits")
    with pytest.raises(StageError, match="not mounted") as e:
        m.apply({"cpu": {"cpus": "0"}})
    assert e.value.target == "cpuset controller"


def test_v1_refuses_unified(hybrid):
    with pytest.raises(StageError, match="unified resources need cgroup v2") as e:
        made(hybrid).apply({"unified": {"memory.high": "1"}})
    assert e.value.pointer == "/linux/resources/unified"


# -- bad values and failed writes


@pytest.mark.parametrize("layout", ["v1root", "v2root"])
@pytest.mark.parametrize("res,pointer,file,detail", [
    ({"memory": {"limit": "32M"}}, "/linux/resources/memory/limit", "memory.",
     'must be an integer, got "32M"'),
    ({"memory": {"limit": True}}, "/linux/resources/memory/limit", "memory.",
     "must be an integer, got true"),
    ({"memory": {"limit": -2}}, "/linux/resources/memory/limit", "memory.", "must be at least -1"),
    ({"cpu": {"shares": -5}}, "/linux/resources/cpu/shares", "cpu.", "must be at least 0, got -5"),
    ({"cpu": {"cpus": 3}}, "/linux/resources/cpu/cpus", "cpuset.cpus", "must be a string, got 3"),
    ({"pids": {"limit": 1.5}}, "/linux/resources/pids/limit", "pids.max", "must be an integer"),
    ({"pids": []}, "/linux/resources/pids", "", "must be an object, got an array"),
    ({"hugepageLimits": [{"pageSize": "../x", "limit": 1}]},
     "/linux/resources/hugepageLimits/0/pageSize", "", "is not a page size"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
     "/linux/resources/blockIO/throttleReadBpsDevice/0/minor", "", "is required"),
    ({"devices": [{"allow": "yes"}]}, "/linux/resources/devices/0/allow", "",
     "must be true or false"),
    ({"devices": [{"allow": False, "type": "x"}]}, "/linux/resources/devices/0/type", "",
     'must be "a", "b" or "c"'),
])
def test_bad_values(layout, request, res, pointer, file, detail):
    m = made(request.getfixturevalue(layout))
    with pytest.raises(StageError) as e:
        m.apply(res)
    err = e.value
    assert (err.stage, err.op, err.errno, err.pointer) == ("cgroup", "write", 0, pointer)
    assert detail in err.detail and file in os.path.basename(err.target)
    assert str(err).startswith("stage cgroup: write ")


@pytest.mark.parametrize("layout,name", [("v1root", "memory.limit_in_bytes"),
                                         ("v2root", "memory.max")])
def test_failed_write_carries_errno_target_and_pointer(layout, name, request):
    m = made(request.getfixturevalue(layout))
    d = m.paths().get("memory", m.paths().get(""))
    os.mkdir(f"{d}/{name}")  # open(O_WRONLY) of a directory fails: EISDIR
    with pytest.raises(StageError) as e:
        m.apply({"memory": {"limit": 1 << 25}})
    err = e.value
    assert (err.stage, err.op, err.target, err.errno, err.pointer) == (
        "cgroup", "write", f"{d}/{name}", errno.EISDIR, "/linux/resources/memory/limit")
    assert str(err) == (f"stage cgroup: write {d}/{name} (config /linux/resources/memory/limit): "
                        "is a directory")


def test_missing_file_says_why(v2root, monkeypatch):
    m = made(v2root)
    monkeypatch.setattr(base, "TEST_MODE", False)
    with pytest.raises(StageError, match="controller is not enabled here") as e:
        m.apply({"pids": {"limit": 3}})
    assert e.value.errno == errno.ENOENT and e.value.pointer == "/linux/resources/pids/limit"


# -- freezer, processes, kill


def test_v1_freeze_thaw(v1root):
    m = made(v1root)
    assert not m.frozen()
    m.freeze()
    assert m.frozen() and cat(f"{m.paths()['freezer']}/freezer.state") == "FROZEN"
    m.thaw()
    assert not m.frozen() and cat(f"{m.paths()['freezer']}/freezer.state") == "THAWED"


def test_v1_freeze_needs_the_freezer(tmp_path):
    m = made(make_v1(tmp_path / "nf", dirs=("memory",)))
    assert not m.frozen()
    with pytest.raises(StageError, match="freezer controller.*not mounted"):
        m.freeze()


def test_v1_freeze_times_out(v1root, monkeypatch):
    m = made(v1root)
    monkeypatch.setattr(v1, "wait_for", lambda path, line: False)
    with pytest.raises(StageError, match="timed out") as e:
        m.freeze()
    assert e.value.op == "freeze" and not m.frozen()


def test_v2_freeze_waits_for_cgroup_events(v2root):
    m = made(v2root)
    d = m.paths()[""]
    put(f"{d}/cgroup.events", "populated 1\nfrozen 1\n")
    m.freeze()
    assert m.frozen() and cat(f"{d}/cgroup.freeze") == "1"
    m.thaw()
    assert not m.frozen() and cat(f"{d}/cgroup.freeze") == "0"


def test_wait_for(tmp_path):
    put(tmp_path / "events", "populated 1\nfrozen 0\n")
    assert not base.wait_for(str(tmp_path / "events"), "frozen 1", timeout=0.01)
    assert base.wait_for(str(tmp_path / "events"), "frozen 0")
    assert base.wait_for(str(tmp_path / "absent"), "frozen 1")


def test_pids_include_sub_cgroups(v2root, v1root):
    for root in (v2root, v1root):
        m = made(root)
        d = m.paths().get("pids", m.paths().get(""))
        put(f"{d}/cgroup.procs", "30\n10\n")
        put(f"{d}/sub/cgroup.procs", "20\n")
        put(f"{d}/sub/deeper/cgroup.procs", "")
        assert m.pids() == [10, 20, 30]


@pytest.fixture
def kills(monkeypatch):
    log = []
    monkeypatch.setattr(base.os, "kill", lambda pid, sig: log.append((pid, sig)))
    return log


def test_v1_kill_all_freezes_signals_thaws(v1root, kills, writes):
    m = made(v1root)
    put(f"{m.paths()['pids']}/cgroup.procs", "7\n8\n")
    writes.clear()
    m.kill_all(signal.SIGTERM)
    assert kills == [(7, signal.SIGTERM), (8, signal.SIGTERM)]
    assert wrote(writes, "freezer.state") == ["FROZEN", "THAWED"]


def test_kill_all_keeps_a_paused_container_paused_but_lets_sigkill_work(v1root, kills):
    m = made(v1root)
    put(f"{m.paths()['pids']}/cgroup.procs", "7\n")
    m.freeze()
    m.kill_all(signal.SIGUSR1)
    assert m.frozen()
    m.kill_all(signal.SIGKILL)
    assert kills == [(7, signal.SIGUSR1), (7, signal.SIGKILL)] and not m.frozen()


@pytest.mark.parametrize("layout,key", [("v2root", ""), ("hybrid", "unified")])
def test_sigkill_uses_cgroup_kill(layout, key, request, kills):
    m = made(request.getfixturevalue(layout))
    m.kill_all(signal.SIGKILL)
    assert cat(f"{m.paths()[key]}/cgroup.kill") == "1" and kills == []
    m.freeze()
    m.kill_all(signal.SIGKILL)
    assert not m.frozen()  # v1-frozen tasks would not die


def test_v2_sigterm_goes_to_every_pid(v2root, kills):
    m = made(v2root)
    put(f"{m.paths()['']}/cgroup.procs", "5\n")
    m.kill_all(signal.SIGTERM)
    assert kills == [(5, signal.SIGTERM)] and not m.frozen()


@pytest.mark.parametrize("layout", ["v1root", "v2root"])
def test_kill_thaws_a_paused_container_after_sigkill_only(layout, request, kills, tmp_path):
    """lifecycle.kill (runc's Signal): SIGKILL to the init of a frozen cgroup thaws it after
    the signal; any other signal leaves it frozen."""
    from runtime import lifecycle, state
    from runtime.linux import procfs
    m = made(request.getfixturevalue(layout))
    if layout == "v2root":
        put(f"{m.paths()['']}/cgroup.events", "frozen 1\n")
    root = str(tmp_path / "root")
    os.makedirs(f"{root}/c")
    me = os.getpid()  # alive, with a start time: the "init"
    state.save(root, {"id": "c", "pid": me, "start_time": procfs.start_time(me), "bundle": "",
                      "rootfs": "", "created": "", "owner": "", "cgroup": m.to_state()})
    m.freeze()
    lifecycle.kill(root, "c", signal.SIGTERM)
    assert m.frozen() and kills == [(me, signal.SIGTERM)]
    lifecycle.kill(root, "c", signal.SIGKILL)
    assert not m.frozen() and kills[-1] == (me, signal.SIGKILL)


# -- stats


def test_v1_stats(v1root, monkeypatch):
    m = made(v1root)
    p = m.paths()
    monkeypatch.setattr(v1.os, "sysconf", lambda name: 100)
    put(f"{p['cpuacct']}/cpuacct.usage", "5000\n")
    put(f"{p['cpuacct']}/cpuacct.usage_percpu", "3000 2000 \n")
    put(f"{p['cpuacct']}/cpuacct.stat", "user 3\nsystem 2\n")
    put(f"{p['cpu']}/cpu.stat", "nr_periods 4\nnr_throttled 1\nthrottled_time 99\n")
    put(f"{p['memory']}/memory.stat", "cache 11\nrss 22\n")
    for name, value in (("usage_in_bytes", 100), ("max_usage_in_bytes", 150),
                        ("limit_in_bytes", 1 << 25), ("failcnt", 2), ("memsw.usage_in_bytes", 120)):
        put(f"{p['memory']}/memory.{name}", f"{value}\n")
    put(f"{p['pids']}/pids.current", "3\n")
    put(f"{p['pids']}/pids.max", "max\n")
    put(f"{p['blkio']}/blkio.throttle.io_service_bytes_recursive",
        "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n")
    put(f"{p['hugetlb']}/hugetlb.2MB.limit_in_bytes", "4194304\n")
    put(f"{p['hugetlb']}/hugetlb.2MB.usage_in_bytes", "0\n")
    put(f"{p['hugetlb']}/hugetlb.2MB.failcnt", "0\n")
    assert m.stats() == {
        "cpu": {"usage": {"total": 5000, "percpu": [3000, 2000], "kernel": 20_000_000,
                          "user": 30_000_000},
                "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 99}},
        "memory": {"raw": {"cache": 11, "rss": 22}, "cache": 11,
                   "usage": {"usage": 100, "max": 150, "limit": 1 << 25, "failcnt": 2},
                   "swap": {"usage": 120}},
        "pids": {"current": 3, "limit": 0},
        "blkio": {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 4096},
                                              {"major": 8, "minor": 0, "op": "Write", "value": 0}]},
        "hugetlb": {"2MB": {"usage": 0, "failcnt": 0}},
    }


def test_v2_stats(v2root):
    m = made(v2root)
    d = m.paths()[""]
    put(f"{d}/cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 2\n"
                         "nr_throttled 1\nthrottled_usec 3\n")
    put(f"{d}/memory.stat", "anon 5\nfile 7\n")
    put(f"{d}/memory.current", "100\n")
    put(f"{d}/memory.max", "1000\n")
    put(f"{d}/memory.peak", "300\n")
    put(f"{d}/memory.events", "low 0\nhigh 0\nmax 4\noom 1\n")
    put(f"{d}/memory.swap.current", "20\n")
    put(f"{d}/memory.swap.max", "500\n")
    put(f"{d}/pids.current", "2\n")
    put(f"{d}/pids.max", "10\n")
    put(f"{d}/io.stat", "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n")
    put(f"{d}/hugetlb.2MB.current", "0\n")
    put(f"{d}/hugetlb.2MB.max", "max\n")
    assert m.stats() == {
        "cpu": {"usage": {"total": 10_000, "kernel": 4000, "user": 6000},
                "throttling": {"periods": 2, "throttledPeriods": 1, "throttledTime": 3000}},
        "memory": {"raw": {"anon": 5, "file": 7}, "cache": 7,
                   "usage": {"usage": 100, "limit": 1000, "max": 300, "failcnt": 4},
                   "swap": {"usage": 120, "limit": 1500, "failcnt": 0}},
        "pids": {"current": 2, "limit": 10},
        "blkio": {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 512},
                                              {"major": 8, "minor": 0, "op": "Write",
                                               "value": 1024}],
                  "ioServicedRecursive": [{"major": 8, "minor": 0, "op": "Read", "value": 1},
                                          {"major": 8, "minor": 0, "op": "Write", "value": 2}]},
        "hugetlb": {"2MB": {"usage": 0, "max": base.MAX_UINT64, "failcnt": 0}},
    }


def test_stats_of_an_empty_cgroup(v2root, v1root):
    assert made(v2root).stats() == {}
    assert made(v1root).stats() == {}


def test_default_parent_is_shared_and_removed_by_the_last_one(v2root):
    first = cgroups.open_manager(None, "a", root=v2root)
    first.create()
    second = cgroups.open_manager(None, "b", root=v2root)
    second.create()
    first.destroy()                      # its maker leaves while "b" still uses it
    assert os.path.isdir(f"{v2root}/ocish/b")
    second.destroy()                     # the last one out removes it, though it did not make it
    assert not os.path.exists(f"{v2root}/ocish")


def test_create_survives_the_shared_parent_vanishing(v2root, monkeypatch):
    """Another runtime removes the empty default parent between our isdir() and mkdir()."""
    os.makedirs(f"{v2root}/ocish")
    real_mkdir, raced = os.mkdir, []

    def mkdir(path, mode=0o777):
        if path.endswith("/ocish/c") and not raced:
            raced.append(path)
            os.rmdir(f"{v2root}/ocish")
        return real_mkdir(path, mode)
    monkeypatch.setattr(base.os, "mkdir", mkdir)
    manager = cgroups.open_manager(None, "c", root=v2root)
    manager.create()
    assert raced and os.path.isdir(f"{v2root}/ocish/c")
    manager.destroy()
    assert not os.path.exists(f"{v2root}/ocish")
