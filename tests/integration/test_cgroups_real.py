"""runtime.cgroups on the real kernel, as root: v1 (hybrid) controllers and the cgroup2 tree.

Every cgroup is named "ocish-test-<random>" and removed by the fixtures even when a test fails;
processes started here are killed and reaped first. The host's own cgroups are never written:
the v2 tests run below a parent cgroup the fixture makes, so enabling controllers on the way
down touches only that parent.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

from runtime import cgroups
from runtime.errors import StageError

ROOT = "/sys/fs/cgroup"
UNIFIED = f"{ROOT}/unified"
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")
needs_v1 = pytest.mark.skipif(not os.path.exists(f"{ROOT}/memory/cgroup.procs"),
                              reason="needs cgroup v1 controllers (memory, pids, freezer)")
needs_unified = pytest.mark.skipif(not os.path.exists(f"{UNIFIED}/cgroup.controllers"),
                                   reason="needs the hybrid cgroup2 tree at /sys/fs/cgroup/unified")


def unique() -> str:
    return f"ocish-test-{uuid.uuid4().hex[:12]}"


class Procs:
    """Children started by a test, reaped at teardown whatever happened."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def spin(self) -> subprocess.Popen:
        p = subprocess.Popen(["sh", "-c", "while :; do :; done"])   # burns cpu: shows freezing
        self.procs.append(p)
        return p

    def reap(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


def cleanup(m: cgroups.Manager, procs: Procs) -> None:
    """Thaw and empty the cgroup, destroy it, and rmdir anything destroy left of ours."""
    try:
        if m.frozen():
            m.thaw()
        procs.reap()
        m.destroy()
    finally:
        for d in sorted(m.to_state()["created"], key=len, reverse=True):
            if os.path.isdir(d):
                os.rmdir(d)


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.reap()


@pytest.fixture
def v1(procs):
    m = cgroups.open_manager(f"/{unique()}/ctr", "itest", root=ROOT)
    yield m
    cleanup(m, procs)


@pytest.fixture
def v2(procs):
    """A v2 manager whose root is a cgroup made here below /sys/fs/cgroup/unified."""
    parent = f"{UNIFIED}/{unique()}"
    os.mkdir(parent)
    try:
        m = cgroups.open_manager("/ctr", "itest", root=parent)
        yield m
        cleanup(m, procs)
    finally:
        os.rmdir(parent)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cpu_ticks(pid: int) -> int:
    fields = read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def runs(pid: int) -> bool:
    before = cpu_ticks(pid)
    time.sleep(0.3)
    return cpu_ticks(pid) > before


def assert_gone(m: cgroups.Manager) -> None:
    assert not [d for d in list(m.paths().values()) + m.to_state()["created"] if os.path.exists(d)]


@needs_v1
@needs_unified
def test_v1_lifecycle(v1, procs):
    assert v1.version == 1 and "unified" in v1.paths()
    v1.create()
    paths = v1.paths()
    assert all(os.path.isdir(d) for d in paths.values())
    assert read(f"{paths['cpuset']}/cpuset.cpus") == read(f"{ROOT}/cpuset/cpuset.cpus")

    v1.apply({"memory": {"limit": 32 << 20}, "pids": {"limit": 16},
              "devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]})
    assert read(f"{paths['memory']}/memory.limit_in_bytes") == str(32 << 20)
    assert read(f"{paths['pids']}/pids.max") == "16"
    assert read(f"{paths['devices']}/devices.list") == "c 1:3 rw"

    p = procs.spin()
    v1.add(p.pid)
    assert v1.pids() == [p.pid]
    own = dict(line.split(":", 2)[1:] for line in read(f"/proc/{p.pid}/cgroup").splitlines())
    assert own["memory"] == own["pids"] == own[""] == paths["pids"][len(f"{ROOT}/pids"):]

    stats = v1.stats()
    assert stats["memory"]["usage"]["limit"] == 32 << 20
    assert stats["pids"] == {"current": 1, "limit": 16}

    v1.freeze()
    assert v1.frozen() and read(f"{paths['freezer']}/freezer.state") == "FROZEN"
    assert not runs(p.pid)
    v1.thaw()
    assert not v1.frozen() and runs(p.pid)

    v1.kill_all(signal.SIGTERM)   # v1 freezer: freeze, signal each pid, thaw
    assert p.wait(timeout=10) == -signal.SIGTERM
    assert read(f"{paths['freezer']}/freezer.state") == "THAWED"

    v1.destroy()
    assert_gone(v1)


@needs_v1
@needs_unified
def test_v1_sigkill_through_the_hybrid_cgroup_kill(v1, procs):
    v1.create()
    p = procs.spin()
    v1.add(p.pid)
    v1.freeze()
    v1.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert v1.pids() == []
    v1.thaw()
    v1.destroy()
    assert_gone(v1)


@needs_v1
def test_v1_busy_cgroup_is_reported_then_removed(v1, procs, monkeypatch):
    v1.create()
    p = procs.spin()
    v1.add(p.pid)
    with pytest.raises(StageError, match="still has processes") as e:
        v1.destroy()
    assert e.value.op == "rmdir" and e.value.errno == 16      # EBUSY
    v1.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    v1.destroy()
    assert_gone(v1)


@needs_v1
def test_v1_state_round_trip_on_the_real_tree(v1):
    v1.create()
    again = cgroups.from_state(v1.to_state())
    assert again.paths() == v1.paths()
    again.destroy()
    assert_gone(again)


@needs_unified
def test_unified_tree_is_detected_as_v2():
    m = cgroups.open_manager("/x", "itest", root=UNIFIED)
    assert m.version == 2 and m.paths() == {"": f"{UNIFIED}/x"}


@needs_unified
def test_v2_lifecycle(v2, procs):
    assert v2.version == 2
    v2.create()
    d = v2.paths()[""]
    assert os.path.isdir(d)
    v2.apply({"pids": {}, "devices": [{"allow": False, "access": "rwm"}],
              "unified": {"cgroup.max.descendants": "5"}})
    assert read(f"{d}/cgroup.max.descendants") == "5"

    p = procs.spin()
    v2.add(p.pid)
    assert v2.pids() == [p.pid]
    assert read(f"/proc/{p.pid}/cgroup").endswith("0::" + d[len(UNIFIED):])

    v2.freeze()
    assert v2.frozen() and "frozen 1" in read(f"{d}/cgroup.events").splitlines()
    # a cgroup2-frozen task shows as sleeping ("S"), not stopped: check that it gets no cpu
    assert not runs(p.pid)
    v2.thaw()
    assert not v2.frozen() and "frozen 0" in read(f"{d}/cgroup.events").splitlines()
    assert runs(p.pid)

    assert v2.stats()["cpu"]["usage"]["total"] > 0
    v2.kill_all(signal.SIGKILL)   # cgroup.kill
    assert p.wait(timeout=10) == -signal.SIGKILL

    v2.destroy()
    assert_gone(v2)


@needs_unified
def test_v2_controller_missing_is_a_clear_error(v2):
    v2.create()
    if os.path.exists(f"{v2.paths()['']}/memory.max"):
        pytest.skip("the memory controller is enabled here")
    with pytest.raises(StageError) as e:
        v2.apply({"memory": {"limit": 32 << 20}})
    err = e.value
    assert (err.errno, err.pointer, err.target) == (
        2, "/linux/resources/memory/limit", f"{v2.paths()['']}/memory.max")
    assert "controller is not enabled here" in str(err)


@needs_unified
def test_sigkill_to_a_frozen_v2_container_thaws_it(v2, procs, tmp_path):
    """`kill ID KILL` of a container whose cgroup is a frozen cgroup2 (runc's Signal thaws
    after SIGKILL on v2 too): the process dies and the cgroup is thawed, not left frozen."""
    from runtime import lifecycle, state
    from runtime.linux import procfs
    v2.create()
    p = procs.spin()
    v2.add(p.pid)
    v2.freeze()
    assert not runs(p.pid)
    root = str(tmp_path / "root")
    os.makedirs(f"{root}/c2")
    state.save(root, {"id": "c2", "pid": p.pid, "start_time": procfs.start_time(p.pid),
                      "bundle": "", "rootfs": "", "created": state.rfc3339_now(), "owner": "",
                      "cgroup": v2.to_state()})
    assert state.status(root, state.load(root, "c2")) == "paused"
    lifecycle.kill(root, "c2", signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert read(f"{v2.paths()['']}/cgroup.freeze") == "0" and not v2.frozen()
    assert state.status(root, state.load(root, "c2")) == "stopped"
