"""Stage `pivot`: make the rootfs the container's /, and create process.cwd in it.

pivot_root(2) as runc does it (`pivot_root(".", ".")` then detach the old root stacked beneath),
or, with --no-pivot, MS_MOVE plus chroot(2) for filesystems where pivot_root is impossible;
without a mount namespace of its own (the runtime's), chroot(2) alone, as runc.
A missing process.cwd is then created, 0755 and owned by the container's root, before anything
is made read-only (runc's prepareRootfs: os.MkdirAll(cwd, 0o755) right after the jail; crun's
crun_safe_ensure_directory_at before the masked and read-only paths).
"""
from __future__ import annotations

import errno
import os

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import syscalls as S
from runtime.linux.paths import mkdir_all
from runtime.stages import mountopts
from runtime.stages.mounts import has_mount_ns


class Pivot(Stage):
    name = "pivot"
    side = CONTAINER
    summary = "switch the root to the rootfs"

    def describe(self, ctx: Context) -> str:
        how = ("chroot(2) into the rootfs (no mount namespace)" if not has_mount_ns(ctx)
               else "MS_MOVE the rootfs onto / and chroot(2) (--no-pivot)" if ctx.no_pivot
               else "pivot_root(2) into the rootfs and detach the old root")
        return ("open a procfs handle first, a private instance mounted nowhere: exec.fifo and "
                "oom_score_adj are reached through it, /proc or not in the container.\n"
                f"{how}: {ctx.rootfs}.\n"
                f"create {ctx.process.get('cwd') or '/'} if missing, mode 0755 (config /process/cwd).")

    def run(self, ctx: Context, item: str = "") -> None:
        open_procfs_handle(ctx)
        if not has_mount_ns(ctx):
            # the runtime's mount namespace: pivot_root(2) or MS_MOVE onto / would swap the
            # root of everything in it; chroot(2) alone, as runc does without NEWNS
            os.chdir(ctx.rootfs)
            self._chroot(ctx)
        elif ctx.no_pivot:
            self._move_root(ctx)
        else:
            self._pivot_root(ctx)
        prop = ctx.linux.get("rootfsPropagation")
        if prop:
            self._mount(ctx, "/", (None, "/", None, mountopts.PROPAGATION[prop]),
                        "/linux/rootfsPropagation")
        cwd = ctx.process.get("cwd") or "/"
        try:
            mkdir_all(cwd)  # a file on the way: ENOTDIR, as Go's os.MkdirAll (runc)
        except OSError as e:
            raise StageError(self.name, "mkdir", cwd, e.errno or 0, "/process/cwd") from None

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
        self._chroot(ctx)

    def _chroot(self, ctx: Context) -> None:
        """chroot(2) into the current directory, the rootfs, and enter its /."""
        try:
            ctx.sys.chroot(".")
        except OSError as e:
            raise StageError(self.name, "chroot", ctx.rootfs, e.errno or 0, "/root/path") from None
        os.chdir("/")

    def _mount(self, ctx: Context, what: str, args: tuple, ptr: str) -> None:
        try:
            ctx.sys.mount(*args)
        except OSError as e:
            raise StageError(self.name, "mount", what, e.errno or 0, ptr) from None


def open_procfs_handle(ctx: Context) -> None:
    """ctx.proc_fd := a procfs of the container's pid namespace mounted nowhere (what runc 1.2+
    reaches /proc through, its pathrs procfs handle), opened while a procfs is in view (the
    kernel wants one in a user namespace): after pivot_root the container may have no /proc at
    all (crun runs such bundles; runc 1.1.5 fails them). Where none can be made (a user
    namespace without a pid namespace of its own, a rootless runtime) the container's /proc
    serves, as before."""
    if ctx.proc_fd >= 0:
        return
    try:
        ctx.proc_fd = ctx.sys.procfs_handle()
    except OSError:
        ctx.proc_fd = -1
