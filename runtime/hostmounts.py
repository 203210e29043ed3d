"""The mounts a container without a mount namespace leaves in the runtime's, and their removal.

runtime-spec: a namespace type absent from /linux/namespaces is inherited from the runtime, so
such a container's rootfs and mounts are made in the runtime's own mount namespace (stage
`mounts`, item "rootfs": a bind of the rootfs onto itself, everything else beneath it). Nothing
unmounts them when the container stops: runc 1.1.5 leaves them there for good. ocish records,
before the container side is started, which mount the rootfs path resolves to and in which
mount namespace; `delete` (and a failed `create`) then detaches what sits on top of it, the
rootfs bind with every mount beneath it, in one umount2(MNT_DETACH).

    record(rootfs) -> {"ns": "mnt:[4026531841]", "rootfs": "/b/rootfs", "below": 27}
    remove(record) -> None, or why the mounts were left (another mount namespace)
    sharer(root, cid, record) -> the id of another container of `root` recorded on the same
                                 rootfs in the same mount namespace, or None

Two such containers on one rootfs (one bundle twice, or two bundles with the same root.path)
would stack their binds on one path, and `delete` of the first would detach the second's
(umount2 of a path takes the mount on top), leaving its own for good: the second `create` is
refused instead (lifecycle.py). runc 1.1.5 has the same stacking and never unmounts.
"""
from __future__ import annotations

import os

from runtime.linux import procfs


def _ns() -> str:
    return os.readlink("/proc/self/ns/mnt")


def record(rootfs: str) -> dict:
    """What `remove` needs: this mount namespace, the rootfs path and the id of the mount it
    resolves to now, before the container's bind (a rootfs that is a mount point of its own,
    an overlay from containerd, say, is kept). OSError when the rootfs cannot be opened."""
    return {"ns": _ns(), "rootfs": rootfs, "below": procfs.mount_id(rootfs)}


def remove(rec: dict) -> str | None:
    """Detach the mount on top of the rootfs when it is not the one recorded beneath it: the
    container's bind, with all it holds. Done twice, the second call finds nothing to do.
    Returns None, or a warning when this is not the mount namespace they were made in;
    OSError from umount2."""
    if _ns() != rec["ns"]:
        return (f"the container's mounts under {rec['rootfs']} are in mount namespace "
                f"{rec['ns']}, not this one ({_ns()}): left in place")
    try:
        top = procfs.mount_id(rec["rootfs"])
    except FileNotFoundError:  # the bundle is gone, and so is any mount on it
        return None
    if top != rec["below"]:
        from runtime.linux import syscalls as S
        S.umount2(rec["rootfs"], S.MNT_DETACH)
    return None


def _same_dir(a: str, b: str) -> bool:
    try:
        return a == b or os.path.samestat(os.stat(a), os.stat(b))
    except OSError:
        return False


def sharer(root: str, cid: str, rec: dict) -> str | None:
    """Another container under `root` (its state dir, created or being created, not yet
    deleted) whose mounts are recorded on the same rootfs in the same mount namespace as
    `rec`; None when there is none. Called after `rec` is saved, so two creates racing each
    other see each other."""
    from runtime import state
    from runtime.errors import OcishError
    for other in state.list_ids(root):
        if other == cid:
            continue
        try:
            theirs = state.load(root, other).get("host_mounts")
        except OcishError:  # gone meanwhile, or not ours
            continue
        if theirs and theirs["ns"] == rec["ns"] and _same_dir(theirs["rootfs"], rec["rootfs"]):
            return other
    return None
