"""verify's logic without a container: the cgroup comparison on a fake cgroup v2 tree (the
driver's own writes, recorded), the capability sets execve(2) derives, the environment runc
builds, mount flags and data as mountinfo shows them."""
from __future__ import annotations

import pytest

from ocish.verify import MISMATCH, OK, SKIP, checks_cgroup, checks_mounts, checks_process
from ocish.verify.subject import Subject
from runtime.cgroups import base
from runtime.cgroups.v2 import shares_to_weight
from runtime.linux import capabilities as C
from runtime.linux.procfs import MountEntry

MIB = 1 << 20


def _v2_tree(tmp_path, files: dict[str, str]):
    """A cgroup2 mount (cgroup.controllers at its root) with one container cgroup holding
    `files` as the kernel would show them."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    d = tmp_path / "ctr"
    d.mkdir()
    for name, value in files.items():
        (d / name).write_text(value + "\n")
    return d


def _subject(spec: dict, paths: dict) -> Subject:
    return Subject(1, spec, "config.json", "/b", "c", cgroup_paths=paths)


RESOURCES = {"memory": {"limit": 64 * MIB + 1000, "swap": 128 * MIB},
             "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0,1"},
             "pids": {"limit": 42}}


def _held() -> dict[str, str]:
    """What a v2 kernel shows after the driver wrote RESOURCES (4 KiB pages)."""
    return {"memory.max": str(64 * MIB), "memory.swap.max": str(64 * MIB - 4096),
            "cpu.weight": str(shares_to_weight(512)), "cpu.max": "50000 100000",
            "cpuset.cpus": "0-1", "pids.max": "42"}


def test_v2_limits_as_the_driver_writes_them_all_match(tmp_path):
    d = _v2_tree(tmp_path, _held())
    items = checks_cgroup.check(_subject({"linux": {"resources": RESOURCES}}, {"": str(d)}),
                                root=str(tmp_path))
    got = {i.item: i for i in items}
    assert set(got) == {f"cgroup {n}" for n in _held()}
    assert all(i.verdict == OK for i in items), [(i.item, i.asked, i.actual) for i in items]
    # the driver's conversions are the asked side: shares 512 as weight 20, memory+swap as
    # swap alone, the limit rounded down to pages by the kernel
    assert got["cgroup cpu.weight"].asked == "20" == str(shares_to_weight(512))
    assert got["cgroup memory.swap.max"].asked == str(128 * MIB - (64 * MIB + 1000))
    assert (got["cgroup memory.max"].asked, got["cgroup memory.max"].actual) == (
        str(64 * MIB + 1000), str(64 * MIB))
    assert got["cgroup pids.max"].pointer == "/linux/resources/pids/limit"
    assert base.write.__module__ == "runtime.cgroups.base"  # the recording is undone


def test_v2_limit_changed_under_the_container_is_a_mismatch(tmp_path):
    d = _v2_tree(tmp_path, dict(_held(), **{"pids.max": "max", "cpu.weight": "100"}))
    items = checks_cgroup.check(_subject({"linux": {"resources": RESOURCES}}, {"": str(d)}),
                                root=str(tmp_path))
    bad = {i.item: i for i in items if i.verdict == MISMATCH}
    assert set(bad) == {"cgroup pids.max", "cgroup cpu.weight"}
    assert (bad["cgroup pids.max"].asked, bad["cgroup pids.max"].actual) == ("42", "max")
    assert bad["cgroup cpu.weight"].pointer == "/linux/resources/cpu/shares"


def test_v2_resources_the_driver_refuses_are_skipped_with_its_reason(tmp_path):
    d = _v2_tree(tmp_path, {})
    items = checks_cgroup.check(_subject({"linux": {"resources": {
        "memory": {"swappiness": 10}}}}, {"": str(d)}), root=str(tmp_path))
    assert [(i.verdict, i.pointer) for i in items] == [(SKIP, "/linux/resources/memory/swappiness")]
    assert "not supported on cgroup v2" in items[0].note


@pytest.mark.parametrize("name,written,held,same", [
    ("memory.limit_in_bytes", "-1", "9223372036854771712", True),
    ("memory.limit_in_bytes", "1000", "0", True),          # rounded down to a page
    ("memory.limit_in_bytes", "8192", "4096", False),
    ("pids.max", "max", "max", True),
    ("pids.max", "42", "43", False),
    ("cpuset.cpus", "0,1,2", "0-2", True),
    ("cpu.max", "max", "max 100000", True),
    ("memory.oom_control", "1", "oom_kill_disable 1\nunder_oom 0", True),
])
def test_cgroup_values_as_the_kernel_reads_them_back(name, written, held, same):
    assert checks_cgroup.same_value(name, written, held) is same


def _masks(names_by_set):
    return {k: C.to_mask(v) for k, v in names_by_set.items()}


def test_caps_after_execve_follow_capabilities7():
    asked = {"bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_SYS_RESOURCE"],
             "permitted": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
             "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]}
    runtime_bounding = C.ALL & ~C.to_mask(["CAP_SYS_RESOURCE"])  # this host's bounding set
    before = checks_process.expected_caps(asked, runtime_bounding, 0, after_exec=False)
    # not in the runtime's bounding set: gone; ambient only where permitted and inheritable
    assert before == _masks({"bounding": ["CAP_KILL", "CAP_CHOWN"],
                             "permitted": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
                             "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]})
    root = checks_process.expected_caps(asked, runtime_bounding, 0, after_exec=True)
    assert root["permitted"] == root["effective"] == C.to_mask(["CAP_KILL", "CAP_CHOWN"])
    user = checks_process.expected_caps(asked, runtime_bounding, 1000, after_exec=True)
    assert user["permitted"] == user["effective"] == user["ambient"] == C.to_mask(["CAP_KILL"])
    assert checks_process.expected_caps({}, C.ALL, 0, after_exec=True) == _masks(
        {s: [] for s in C.SETS})  # no /process/capabilities: every set empty (runc)


def test_env_adds_home_and_the_last_entry_wins():
    assert checks_process.expected_env(["A=1", "A=2", "B"], "/root") == {"A": "2", "HOME": "/root"}
    assert checks_process.expected_env(["HOME=/h"], "/root") == {"HOME": "/h"}


def _entry(options: str, super_options: str = "rw", fstype: str = "tmpfs") -> MountEntry:
    return MountEntry(30, 20, "/", "/x", options, [], fstype, "tmpfs", super_options)


@pytest.mark.parametrize("opts,bind,options,problems", [
    (["nosuid", "ro"], False, "ro,nosuid,relatime", []),
    ([], False, "ro,relatime", ["rw asked, ro holds"]),        # no bind, no ro: read-write
    ([], True, "ro,nodev,relatime", []),                        # a bind keeps its source's flags
    (["rro", "rnosuid"], True, "rw,nosuid,relatime", ["ro asked, rw holds"]),
    (["noexec", "exec"], False, "rw,noexec", ["exec asked, noexec holds"]),  # the last one wins
    (["strictatime"], False, "rw,relatime", ["strictatime asked, relatime holds"]),
])
def test_mount_flags_asked_against_mountinfo(opts, bind, options, problems):
    assert checks_mounts._flag_problems(opts, bind, _entry(options)) == problems


def test_mount_data_compared_where_the_kernel_shows_it():
    class Mapped:
        @staticmethod
        def host_id(ident, kind):
            return ident + 100000
    shown = checks_mounts._data("rw,size=65536k,mode=1770,gid=100005")
    assert checks_mounts._data_problems(["size=64m", "mode=01770", "gid=5", "newinstance",
                                         "nr_inodes=9"], shown, Mapped) == []
    assert checks_mounts._data_problems(["size=32m"], shown, Mapped) == [
        "size=32m asked, size=65536k holds"]
