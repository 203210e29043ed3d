"""runtime/hostmounts.py: what a container without a mount namespace left in ours is detached
only when it sits on top of what was there before, and only in that mount namespace."""
from __future__ import annotations

import pytest

from runtime import hostmounts
from runtime.linux import procfs
from runtime.linux import syscalls as S


@pytest.fixture
def world(monkeypatch):
    """A fake mount table: path -> the stack of mount ids on it (the last is on top)."""
    stacks = {"/b/rootfs": [27]}
    calls = []
    monkeypatch.setattr(hostmounts, "_ns", lambda: "mnt:[1]")
    monkeypatch.setattr(procfs, "mount_id", lambda path: stacks[path][-1])

    def umount2(path, flags):
        calls.append((path, flags))
        stacks[path].pop()
    monkeypatch.setattr(S, "umount2", umount2)
    return stacks, calls


def test_record_then_remove_the_bind_on_top(world):
    stacks, calls = world
    rec = hostmounts.record("/b/rootfs")
    assert rec == {"ns": "mnt:[1]", "rootfs": "/b/rootfs", "below": 27}
    stacks["/b/rootfs"].append(90)  # the container's rootfs bind
    assert hostmounts.remove(rec) is None
    assert calls == [("/b/rootfs", S.MNT_DETACH)] and stacks["/b/rootfs"] == [27]
    assert hostmounts.remove(rec) is None and len(calls) == 1  # twice: nothing more


def test_remove_in_another_mount_namespace_warns(world, monkeypatch):
    stacks, calls = world
    rec = hostmounts.record("/b/rootfs")
    stacks["/b/rootfs"].append(90)
    monkeypatch.setattr(hostmounts, "_ns", lambda: "mnt:[2]")
    why = hostmounts.remove(rec)
    assert calls == [] and why == ("the container's mounts under /b/rootfs are in mount "
                                   "namespace mnt:[1], not this one (mnt:[2]): left in place")


def test_remove_when_the_rootfs_is_gone(world, monkeypatch):
    rec = hostmounts.record("/b/rootfs")

    def gone(path):
        raise FileNotFoundError(2, "no such file", path)
    monkeypatch.setattr(procfs, "mount_id", gone)
    assert hostmounts.remove(rec) is None and world[1] == []


def test_mount_id_is_the_one_mountinfo_gives():
    by_point = {e.mountpoint: e.mount_id for e in procfs.mountinfo()}
    assert procfs.mount_id("/") == by_point["/"]
