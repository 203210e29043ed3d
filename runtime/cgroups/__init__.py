"""cgroup drivers behind one Manager interface (base.Manager): v1 (also hybrid) and v2.

open_manager() detects the layout under the mount root, as runc's fs drivers do:

- pure v2: the root itself is a cgroup2 mount (it has cgroup.controllers); one directory;
- v1: one directory per mounted controller (root/memory, root/cpu,cpuacct, ..., and
  root/systemd for name=systemd); on a hybrid host root/unified is a cgroup2 mount without
  controllers, which the manager also makes and joins (paths key "unified").

cgroupsPath as runc's fs driver reads it: "/a/b" is below each hierarchy's root, "a/b" is below
the cgroup the calling process is in (from /proc/self/cgroup), none means "/ocish/<id>". The
systemd form "slice:prefix:name" needs a systemd driver, which ocish does not have.
"""
from __future__ import annotations

import os

from runtime.errors import StageError

# The drivers are imported on first use (open_manager, from_state, or these names): `state`
# and `list` only ask `frozen` of a running container, and a millisecond of imports would be
# most of what they cost beyond the interpreter's start.
__all__ = ["Manager", "V1Manager", "V2Manager", "open_manager", "from_state", "frozen"]
STAGE = "cgroup"  # base.STAGE

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"
# the v1 hierarchies runc's fs manager joins; any other mount under the root is left alone
_V1_CONTROLLERS = {"cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids",
                   "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "name=systemd"}
_POINTER = "/linux/cgroupsPath"


def __getattr__(name: str):
    """Manager, V1Manager and V2Manager, imported when first named (PEP 562)."""
    if name == "Manager":
        from runtime.cgroups.base import Manager
        return Manager
    if name in ("V1Manager", "V2Manager"):
        return _driver(int(name[1]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _driver(version: int) -> type:
    if version == 1:
        from runtime.cgroups.v1 import V1Manager
        return V1Manager
    from runtime.cgroups.v2 import V2Manager
    return V2Manager


def open_manager(cgroups_path: str | None, container_id: str, root: str = CGROUP_ROOT,
                 proc_self_cgroup: str = PROC_SELF_CGROUP) -> "Manager":
    """The manager of a container's cgroup; nothing is made until create()."""
    inner, absolute = _inner_path(cgroups_path, container_id)
    root = root.rstrip("/") or "/"
    own = _OwnCgroups(proc_self_cgroup)
    if os.path.exists(f"{root}/cgroup.controllers"):
        paths = {"": _join(root, "" if absolute else own.path(""), inner)}
        manager = _driver(2)(paths, root)
    else:
        paths = {ctrl: _join(mount, "" if absolute else own.path(ctrl), inner)
                 for ctrl, mount in _v1_mounts(root).items()}
        if not paths:
            raise StageError(STAGE, "open", root, 0, detail="no cgroup hierarchy is mounted here")
        if os.path.exists(f"{root}/unified/cgroup.controllers"):
            paths["unified"] = _join(f"{root}/unified", "" if absolute else own.path(""), inner)
        manager = _driver(1)(paths, root)
    if not cgroups_path:
        # The default parent "ocish" is the runtime's own, shared by its containers: whoever
        # leaves it empty removes it (destroy() leaves a busy parent alone), not only its maker.
        # The default leaf "ocish/<id>" is the container's by its name: removed by its delete
        # even when a container of that id before it left it there (create refuses it busy).
        leaves = list(dict.fromkeys(paths.values()))
        manager.adopt([os.path.dirname(d) for d in leaves] + leaves)
    return manager


def from_state(d: dict) -> "Manager":
    """Rebuild a manager from Manager.to_state(), for the commands after create."""
    if d.get("version") not in (1, 2):
        raise StageError(STAGE, "load", "", 0,
                         detail=f"unknown cgroup driver version {d.get('version')!r}")
    return _driver(d["version"])(d["paths"], d.get("root", CGROUP_ROOT), d.get("created", []))


def frozen(d: dict) -> bool:
    """from_state(d).frozen(), read without importing the drivers: v1, the freezer's
    freezer.state is FROZEN (no freezer: never); v2, cgroup.freeze holds 1. False when the
    file cannot be read."""
    version, paths = d.get("version"), d.get("paths") or {}
    if version == 1:
        if "freezer" not in paths:
            return False
        path, frozen_value = f"{paths['freezer']}/freezer.state", "FROZEN"
    elif version == 2:
        path, frozen_value = f"{paths.get('', '')}/cgroup.freeze", "1"
    else:
        return from_state(d).frozen()  # raises, saying why
    try:
        with open(path) as f:
            return f.read().strip() == frozen_value
    except OSError:
        return False


def _inner_path(cgroups_path: str | None, container_id: str) -> tuple[str, bool]:
    """(the cleaned path without leading "/", whether it is absolute)."""
    if not cgroups_path:
        return f"ocish/{container_id}", True
    if "/" not in cgroups_path and cgroups_path.count(":") == 2:
        raise StageError(STAGE, "open", cgroups_path, 0, _POINTER,
                         'a "slice:prefix:name" cgroupsPath needs the systemd cgroup driver, '
                         'which ocish does not have: use a path like "/ocish/<id>"')
    # as runc's CleanPath: ".." cannot climb above the hierarchy root (or the own cgroup)
    inner = os.path.normpath("/" + cgroups_path.lstrip("/")).lstrip("/")
    if not inner:
        raise StageError(STAGE, "open", cgroups_path, 0, _POINTER,
                         "names no cgroup below the hierarchy root")
    return inner, cgroups_path.startswith("/")


def _join(mount: str, own: str, inner: str) -> str:
    return "/".join(p for p in (mount, own.strip("/"), inner) if p)


def _v1_mounts(root: str) -> dict[str, str]:
    """{controller: hierarchy dir}; co-mounted controllers (cpu,cpuacct) share the directory, and
    the alias symlinks next to it (cpu -> cpu,cpuacct) are not needed."""
    mounts = {}
    try:
        entries = list(os.scandir(root))
    except OSError as e:
        raise StageError(STAGE, "open", root, e.errno or 0) from None
    for entry in entries:
        if entry.is_symlink() or not os.path.exists(f"{entry.path}/cgroup.procs"):
            continue
        names = ["name=systemd"] if entry.name == "systemd" else entry.name.split(",")
        for name in names:
            if name in _V1_CONTROLLERS:
                mounts[name] = entry.path
    return mounts


class _OwnCgroups:
    """The caller's cgroups from /proc/self/cgroup, read only when a relative path needs them."""

    def __init__(self, path: str) -> None:
        self._file = path
        self._map: dict[str, str] | None = None

    def path(self, ctrl: str) -> str:
        """The cgroup of `ctrl` ("" for v2) as seen from its hierarchy root."""
        if self._map is None:
            self._map = self._read()
        if ctrl not in self._map:
            raise StageError(STAGE, "read", self._file, 0, _POINTER,
                             f'no "{ctrl or "0::"}" line for a relative cgroupsPath')
        return self._map[ctrl]

    def _read(self) -> dict[str, str]:
        try:
            with open(self._file) as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise StageError(STAGE, "read", self._file, e.errno or 0, _POINTER) from None
        out = {}
        for line in lines:
            if line.count(":") < 2:
                continue
            _, controllers, path = line.split(":", 2)  # "4:memory:/a", "1:name=systemd:/", "0::/"
            for ctrl in controllers.split(",") if controllers else [""]:
                out[ctrl] = path
        return out
