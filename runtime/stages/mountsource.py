"""Bind sources the host opens for stage `mounts`: detached copies, id-mapped when asked.

Host side, before the container side runs a "/mounts/N" item (Stage.host_fds):

    open_tree(source, OPEN_TREE_CLONE [| AT_RECURSIVE for rbind])   as the host's root, in the
                                                                     runtime's mount namespace
    mount_setattr(propagation)                    slave (private, shared) as a bind made in the
                                                  container's namespace would be: rootfsPropagation
    mount_setattr(MOUNT_ATTR_IDMAP, userns fd)    "idmap"/"ridmap" or uidMappings/gidMappings
    ── fd over the sync socket (SCM_RIGHTS) ──►   container side: move_mount(fd, destination)

That is how runc 1.2 and crun do both: runc's mountFd (libcontainer/mount_linux.go, asked for
by the container's init with procMountPlease) and crun's maybe_get_idmapped_mount. The id mapping
of a mount is the user namespace whose uid_map says "source id -> id seen through the mount",
in the same "containerID hostID size" form as the container's: the container's own namespace
when the mount gives no mappings (or the same ones), else a new one made with them
(runtime/linux/nsfs.new_userns). A file owned by uid 0 on disk then shows as the container's
root in a container whose root is host uid 100000.
"""
from __future__ import annotations

import errno
import os

from runtime.engine import Context
from runtime.errors import StageError
from runtime.linux import syscalls as S
from runtime.stages import mountopts

# rootfsPropagation -> the propagation of the copy (what a bind in the container's namespace,
# made rslave/rprivate/rshared by stage mounts' rootfs item, would have had)
_PROPAGATION = {"private": S.MS_PRIVATE, "rprivate": S.MS_PRIVATE,
                "unbindable": S.MS_PRIVATE, "runbindable": S.MS_PRIVATE,
                "shared": 0, "rshared": 0}


def open_source(ctx: Context, stage: str, ptr: str, m: dict, source: str) -> int:
    """The fd of a detached copy of `source` for mount `m` (config `ptr`), ready to attach;
    StageError naming the call and the config item when the kernel refuses."""
    opts = mountopts.parse(m.get("options") or [])
    try:
        fd = ctx.sys.open_tree(source, bool(opts.flags & S.MS_REC))
    except OSError as e:
        raise StageError(stage, "open_tree", f'"{source}"', e.errno or 0, f"{ptr}/source") from None
    try:
        prop = _PROPAGATION.get(ctx.linux.get("rootfsPropagation") or "", S.MS_SLAVE)
        if prop:
            _setattr(ctx, stage, ptr, source, fd, propagation=prop, recursive=True)
        if opts.idmap or "uidMappings" in m or "gidMappings" in m:
            userns = _userns(ctx, stage, ptr, m)
            try:
                _setattr(ctx, stage, ptr, source, fd, attr_set=S.MOUNT_ATTR_IDMAP,
                         userns_fd=userns, recursive=opts.idmap == "ridmap")
            finally:
                os.close(userns)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _setattr(ctx: Context, stage: str, ptr: str, source: str, fd: int, **attr) -> None:
    try:
        ctx.sys.mount_setattr(fd, **attr)
    except OSError as e:
        idmap = attr.get("attr_set", 0) & S.MOUNT_ATTR_IDMAP
        why = ("the filesystem of the source may not support id-mapped mounts"
               if idmap and e.errno == errno.EINVAL else "")
        raise StageError(stage, "mount_setattr " + ("MOUNT_ATTR_IDMAP" if idmap else "propagation"),
                         f'"{source}"', e.errno or 0, ptr + ("/options" if idmap else ""),
                         why) from None


def _maps(mappings: list[dict]) -> str:
    return "".join(f"{x['containerID']} {x['hostID']} {x['size']}\n" for x in mappings)


def _userns(ctx: Context, stage: str, ptr: str, m: dict) -> int:
    """The user namespace whose mapping id-maps the mount: the container's when the mount has
    no mappings of its own or the same ones (crun's has_same_mappings), else a new one."""
    own = [ctx.linux.get("uidMappings") or [], ctx.linux.get("gidMappings") or []]
    wanted = [m.get("uidMappings"), m.get("gidMappings")]
    if wanted == [None, None] or wanted == own:
        path = f"/proc/{ctx.pid}/ns/user"
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise StageError(stage, "open", path, e.errno or 0, ptr) from None
    from runtime.linux import nsfs
    try:
        return nsfs.new_userns(_maps(wanted[0] or []), _maps(wanted[1] or []))
    except OSError as e:
        raise StageError(stage, "create the user namespace of", "the id mapping", e.errno or 0,
                         f"{ptr}/uidMappings") from None
