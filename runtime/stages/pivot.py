"""Stage `pivot`: make the rootfs the container's /, then mask, write-protect and seal paths.

pivot_root(2) as runc does it (`pivot_root(".", ".")` then detach the old root stacked beneath),
or, with --no-pivot, MS_MOVE plus chroot(2) for filesystems where pivot_root is impossible.
"""
from __future__ import annotations

import errno
import os

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import syscalls as S
from runtime.stages import mountopts

_LOCKED = S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC


class Pivot(Stage):
    name = "pivot"
    side = CONTAINER
    summary = "switch the root to the rootfs, then apply maskedPaths, readonlyPaths and root.readonly"

    def describe(self, ctx: Context) -> str:
        how = ("MS_MOVE the rootfs onto / and chroot(2) (--no-pivot)" if ctx.no_pivot
               else "pivot_root(2) into the rootfs and detach the old root")
        lines = [f"{how}: {ctx.rootfs}."]
        masked = ctx.linux.get("maskedPaths") or []
        ro = ctx.linux.get("readonlyPaths") or []
        if masked:
            lines.append("mask (tmpfs or /dev/null over): " + ", ".join(masked)
                         + " (config /linux/maskedPaths).")
        if ro:
            lines.append("bind read-only: " + ", ".join(ro) + " (config /linux/readonlyPaths).")
        if (ctx.spec.get("root") or {}).get("readonly"):
            lines.append("remount / read-only (config /root/readonly).")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        if ctx.no_pivot:
            self._move_root(ctx)
        else:
            self._pivot_root(ctx)
        prop = ctx.linux.get("rootfsPropagation")
        if prop:
            self._mount(ctx, "/", (None, "/", None, mountopts.PROPAGATION[prop]),
                        "/linux/rootfsPropagation")
        for i, path in enumerate(ctx.linux.get("readonlyPaths") or []):
            self._readonly(ctx, path, f"/linux/readonlyPaths/{i}")
        for i, path in enumerate(ctx.linux.get("maskedPaths") or []):
            self._mask(ctx, path, f"/linux/maskedPaths/{i}")
        if (ctx.spec.get("root") or {}).get("readonly"):
            flags = S.MS_BIND | S.MS_REMOUNT | S.MS_RDONLY | (os.statvfs("/").f_flag & _LOCKED)
            self._mount(ctx, "/", (None, "/", None, flags), "/root/readonly")

    def _pivot_root(self, ctx: Context) -> None:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.chdir(ctx.rootfs)
            try:
                ctx.sys.pivot_root(".", ".")
            except OSError as e:
                raise StageError(self.name, "pivot_root", ctx.rootfs, e.errno or 0, "/root/path",
                                 "" if e.errno != errno.EINVAL else
                                 "invalid argument (the rootfs may be on a filesystem where "
                                 "pivot_root is impossible, e.g. ramfs: try --no-pivot)") from None
            os.fchdir(old)
            # the old root is now stacked under "."; keep its unmount from reaching the host
            self._mount(ctx, "old root", (None, ".", None, S.MS_SLAVE | S.MS_REC), "")
            try:
                ctx.sys.umount2(".", S.MNT_DETACH)
            except OSError as e:
                raise StageError(self.name, "umount2", "old root", e.errno or 0) from None
            os.chdir("/")
        finally:
            os.close(old)

    def _move_root(self, ctx: Context) -> None:
        os.chdir(ctx.rootfs)
        self._mount(ctx, ctx.rootfs, (ctx.rootfs, "/", None, S.MS_MOVE), "/root/path")
        try:
            ctx.sys.chroot(".")
        except OSError as e:
            raise StageError(self.name, "chroot", ctx.rootfs, e.errno or 0, "/root/path") from None
        os.chdir("/")

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
