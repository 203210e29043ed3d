"""Rootless containers: what changes when the runtime itself runs as an unprivileged user.

As `runc` does for a non-root caller (with a config from `ocish spec --rootless`):

- state lives under $XDG_RUNTIME_DIR/ocish instead of /run/ocish (runtime.cli.default_root);
- the user namespace's maps are written by the host side without privilege where the kernel allows
  it, a single line mapping the caller's own id (for gid_map only after "deny" is written to
  /proc/PID/setgroups); anything wider goes through the setuid helpers newuidmap/newgidmap
  (package uidmap), which check the ranges /etc/subuid and /etc/subgid grant the caller;
- cgroups only where they are delegated to the caller (the directory is writable): otherwise the
  cgroup stage makes none and fails only if the config asks for limits, which then cannot be set;
  device rules are never written (runc ignores them too: they need CAP_SYS_ADMIN on the host);
- the rest is the ordinary pipeline in a user namespace: device nodes are bind-mounted from the
  host, sysfs is an rbind of the host's, and there is no network namespace unless the config asks.
"""
from __future__ import annotations

import os

from runtime import cgroups
from runtime.engine import Context
from runtime.errors import StageError
from runtime.stages.cgroup import Cgroup

HELPER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HELPERS = {"uid": "newuidmap", "gid": "newgidmap"}
_SUBID_FILES = {"uid": "/etc/subuid", "gid": "/etc/subgid"}


def is_rootless() -> bool:
    return os.geteuid() != 0


def map_args(mappings: list[dict]) -> list[str]:
    """newuidmap's arguments after the pid: "containerID hostID size" triples."""
    return [str(m[k]) for m in mappings for k in ("containerID", "hostID", "size")]


def own_id_only(mappings: list[dict], own: int) -> bool:
    """One mapping of size 1 onto the caller's own id: the kernel lets us write that directly."""
    return len(mappings) == 1 and mappings[0]["hostID"] == own and mappings[0]["size"] == 1


def find_helper(name: str, path: str | None = None) -> str | None:
    for d in (path or os.environ.get("PATH") or HELPER_PATH).split(":") + HELPER_PATH.split(":"):
        exe = os.path.join(d or ".", name)
        if os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe
    return None


def write_maps(ctx: Context, stage: str) -> None:
    """Stage idmap's job for an unprivileged host side: see the module's docstring."""
    for kind, own in (("uid", os.geteuid()), ("gid", os.getegid())):
        key = f"{kind}Mappings"
        mappings = ctx.linux.get(key) or []
        target = f"/proc/{ctx.pid}/{kind}_map"
        if own_id_only(mappings, own):
            if kind == "gid":
                _write(ctx, stage, f"/proc/{ctx.pid}/setgroups", "deny", f"/linux/{key}")
            from runtime.stages.idmap import map_text
            _write(ctx, stage, target, map_text(mappings), f"/linux/{key}")
        else:
            _helper(ctx, stage, kind, mappings, own)


def _write(ctx: Context, stage: str, target: str, data: str, ptr: str) -> None:
    try:
        ctx.sys.write_file(target, data)
    except OSError as e:
        raise StageError(stage, "write", target, e.errno or 0, ptr) from None


def _helper(ctx: Context, stage: str, kind: str, mappings: list[dict], own: int) -> None:
    name, ptr = _HELPERS[kind], f"/linux/{kind}Mappings"
    exe = find_helper(name)
    if exe is None:
        raise StageError(stage, name, str(ctx.pid), 0, ptr,
                         f"mapping more than your own {kind} {own} needs {name} "
                         f"(package uidmap), which is not installed")
    import subprocess  # only here: rootless with several ids
    argv = [exe, str(ctx.pid)] + map_args(mappings)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StageError(stage, name, str(ctx.pid), getattr(e, "errno", 0) or 0, ptr,
                         "" if getattr(e, "errno", 0) else str(e)) from None
    if p.returncode != 0:
        lines = [ln for ln in p.stdout.decode(errors="replace").splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else f"exit status {p.returncode}"
        raise StageError(stage, name, " ".join(argv[1:]), 0, ptr,
                         f"{why} (the ranges must be granted to your user in "
                         f"{_SUBID_FILES[kind]})")


# -- cgroups ---------------------------------------------------------------------------------------

def _writable(path: str) -> bool:
    """Could we make (or use) cgroup `path`: its nearest existing ancestor is writable by us."""
    d = path
    while not os.path.exists(d):
        parent = os.path.dirname(d)
        if parent == d:
            return False
        d = parent
    return os.access(d, os.W_OK)


def _limits(ctx: Context) -> dict:
    """The resource limits of the config that need a cgroup (device rules are never applied)."""
    res = ctx.linux.get("resources") or {}
    return {k: v for k, v in res.items() if k != "devices" and v not in (None, {}, [])}


# /linux/resources key -> the v1 hierarchy that holds its files
_CONTROLLERS = {"memory": "memory", "cpu": "cpu", "pids": "pids", "blockIO": "blkio",
                "hugepageLimits": "hugetlb", "network": "net_cls", "rdma": "rdma"}


class RootlessCgroup(Cgroup):
    """Stage `cgroup` when the runtime is not root: only a delegated cgroup is used."""

    def describe(self, ctx: Context) -> str:
        limits = _limits(ctx)
        return (f"{self.summary}, if the cgroup is delegated to uid {os.geteuid()} (writable): "
                f"the runtime is not root.\n"
                f"otherwise no cgroup is made (as runc rootless), which fails only if config "
                f"/linux/resources sets limits" + (f" (it sets: {', '.join(sorted(limits))})."
                                                   if limits else " (it sets none).") +
                "\ndevice rules are never written: they need privileges on the host.")

    def run(self, ctx: Context, item: str = "") -> None:
        manager = cgroups.open_manager(ctx.linux.get("cgroupsPath"), ctx.id)
        by_ctrl = manager.paths()
        paths = list(dict.fromkeys(by_ctrl.values()))
        blocked = [p for p in paths if not _writable(p)]
        limits = _limits(ctx)
        if blocked:
            if limits:
                key = sorted(limits)[0]
                where = by_ctrl.get(_CONTROLLERS.get(key, ""), by_ctrl.get(""))
                raise StageError(self.name, "mkdir", where if where in blocked else blocked[0], 13,
                                 f"/linux/resources/{key}",
                                 f"cannot set {key} limits: the cgroup is not delegated to "
                                 f"uid {os.geteuid()} (not writable), so the rootless container "
                                 f"gets none")
            ctx.notes["cgroup"] = f"none: {blocked[0]} is not writable (not delegated)"
            return
        self.join(ctx, manager)

    def resources(self, ctx: Context) -> dict:
        return _limits(ctx)
