"""Stage `paths`: after sysctls are written, hide and write-protect what the container must not touch.

First the config's read-only mounts, which stage `mounts` made read-write so that what lies
beneath them could be created (runc's finalizeRootfs, crun's finalize_mounts), are remounted
read-only. Then maskedPaths get an empty read-only tmpfs (directories) or /dev/null (files) on
top; readonlyPaths are bind-mounted read-only onto themselves; root.readonly remounts / read-only.
Paths that do not exist in the container are skipped, as runc does.
"""
from __future__ import annotations

import os

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import syscalls as S
from runtime.stages.mounts import READONLY_LATER, bind_remount, mount_list

# Flags the kernel locks on mounts inherited into a user namespace: a remount must repeat them.
_LOCKED = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC


class Paths(Stage):
    name = "paths"
    side = CONTAINER
    summary = "apply maskedPaths, readonlyPaths and root.readonly"

    def describe(self, ctx: Context) -> str:
        masked = ctx.linux.get("maskedPaths") or []
        ro = ctx.linux.get("readonlyPaths") or []
        lines = [self.summary + "."]
        later = [f"{m['destination']} (config /mounts/{i})" for i, m in enumerate(mount_list(ctx))
                 if "ro" in (m.get("options") or [])]
        if later:
            lines.append("remount read-only the mounts stage mounts made read-write: "
                         + ", ".join(later) + ".")
        lines.append("mask (empty tmpfs or /dev/null over): " + (", ".join(masked) or "nothing")
                     + " (config /linux/maskedPaths).")
        lines.append("bind read-only: " + (", ".join(ro) or "nothing") + " (config /linux/readonlyPaths).")
        if (ctx.spec.get("root") or {}).get("readonly"):
            lines.append("remount / read-only (config /root/readonly).")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        for path, flags, ptr, what in ctx.notes.pop(READONLY_LATER, []):
            bind_remount(ctx, self.name, ptr, what, path, flags)
        for i, path in enumerate(ctx.linux.get("readonlyPaths") or []):
            self._readonly(ctx, path, f"/linux/readonlyPaths/{i}")
        for i, path in enumerate(ctx.linux.get("maskedPaths") or []):
            self._mask(ctx, path, f"/linux/maskedPaths/{i}")
        if (ctx.spec.get("root") or {}).get("readonly"):
            flags = S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | (os.statvfs("/").f_flag & _LOCKED)
            self._mount(ctx, "/", (None, "/", None, flags), "/root/readonly")

    def _readonly(self, ctx: Context, path: str, ptr: str) -> None:
        if not os.path.lexists(path):
            return
        self._mount(ctx, path, (path, path, None, S.MS_BIND | S.MS_REC), ptr)
        flags = S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | S.MS_REC | (os.statvfs(path).f_flag & _LOCKED)
        self._mount(ctx, path, (None, path, None, flags), ptr)

    def _mask(self, ctx: Context, path: str, ptr: str) -> None:
        if not os.path.lexists(path):
            return
        if os.path.isdir(path):
            self._mount(ctx, path, ("tmpfs", path, "tmpfs", S.MS_RDONLY, None), ptr)
        else:
            self._mount(ctx, path, ("/dev/null", path, None, S.MS_BIND), ptr)

    def _mount(self, ctx: Context, what: str, args: tuple, ptr: str) -> None:
        try:
            ctx.sys.mount(*args)
        except OSError as e:
            raise StageError(self.name, "mount", what, e.errno or 0, ptr) from None
