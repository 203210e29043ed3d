"""Bind sources the host opens for stage `mounts`: detached copies, id-mapped when asked.

Host side, before the container side runs a "/mounts/N" item (Stage.host_fds), in a forked
helper that entered the container's mount namespace (setns(2)) with the host's credentials:

    open_tree(source, OPEN_TREE_CLONE [| AT_RECURSIVE for rbind])   the host root's rights,
                                                 resolved in the container's mount namespace
    mount_setattr(propagation)                    slave (private, shared) as a bind made in the
                                                  container's namespace would be: rootfsPropagation
    mount_setattr(MOUNT_ATTR_IDMAP, userns fd)    "idmap"/"ridmap" or uidMappings/gidMappings
    ── fd back to the runtime, then over the sync socket (SCM_RIGHTS) ──►
                                                  container side: move_mount(fd, destination)

Why the container's mount namespace and not the runtime's: its mounts are copies the kernel
locked when the user namespace's mount namespace was made (MNT_LOCK_READONLY and the like,
MNT_LOCKED submounts), and a clone keeps those locks, so the container's root can neither
remount a host read-only mount read-write nor unmount a submount of an rbind to see what it
hides. A clone made in the runtime's namespace has no locks. That is what runc 1.1.5 does (its
nsexec opens the mount sources after joining the container's mount namespace, as host root)
and runc 1.2 too (open_tree in the container's mount namespace); crun's
maybe_get_idmapped_mount does the id-mapping part the same way.

The id mapping of a mount is the user namespace whose uid_map says "source id -> id seen
through the mount", in the same "containerID hostID size" form as the container's: the
container's own namespace when the mount gives no mappings (or the same ones), else a new one
made with them (runtime/linux/nsfs.new_userns). A file owned by uid 0 on disk then shows as the
container's root in a container whose root is host uid 100000.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable

from runtime import sync
from runtime.engine import Context
from runtime.errors import StageError
from runtime.linux import syscalls as S
from runtime.stages import mountopts
from runtime.stages.mounts import in_userns

# rootfsPropagation -> the propagation of the copy (what a bind in the container's namespace,
# made rslave/rprivate/rshared by stage mounts' rootfs item, would have had)
_PROPAGATION = {"private": S.MS_PRIVATE, "rprivate": S.MS_PRIVATE,
                "unbindable": S.MS_PRIVATE, "runbindable": S.MS_PRIVATE,
                "shared": 0, "rshared": 0}


def open_source(ctx: Context, stage: str, ptr: str, m: dict, source: str) -> int:
    """The fd of a detached copy of `source` for mount `m` (config `ptr`), ready to attach;
    StageError naming the call and the config item when the kernel refuses."""
    opts = mountopts.parse(m.get("options") or [])
    idmapped = bool(opts.idmap) or "uidMappings" in m or "gidMappings" in m
    userns = _userns(ctx, stage, ptr, m) if idmapped else -1
    try:
        return in_container_mount_ns(
            ctx, stage, ptr, lambda: _clone(ctx, stage, ptr, source, opts, userns))
    finally:
        if userns >= 0:
            os.close(userns)


def in_container_mount_ns(ctx: Context, stage: str, ptr: str, make: Callable[[], int]) -> int:
    """make() run in a forked child that entered the mount namespace of the container's
    process (ctx.pid), unless it is ours; the fd it returns, handed back over a socketpair
    (SCM_RIGHTS). A fork, not setns(2) here: a process whose threads share its fs_struct (the
    debugger's) may not change mount namespace, and ours must stay as it is. StageError from
    make() as it raised it, or naming the setns or the helper's death."""
    path = f"/proc/{ctx.pid}/ns/mnt"
    try:
        mnt = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise StageError(stage, "open", path, e.errno or 0, ptr) from None
    ours, theirs = sync.pair()
    try:
        same = os.path.samestat(os.fstat(mnt), os.stat("/proc/self/ns/mnt"))
        pid = os.fork()
        if pid == 0:
            ours.close()
            _helper(ctx, stage, ptr, mnt if not same else -1, theirs, make)  # never returns
    except OSError as e:
        ours.close()
        raise StageError(stage, "fork", "a helper in the container's mount namespace",
                         e.errno or 0, ptr) from None
    finally:
        theirs.close()
        os.close(mnt)
    try:
        msg = ours.recv(fds=True)
        fds = ours.take_fds()
    finally:
        ours.close()
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # a subreaper's reap loop (the debugger's) got there first
            pass
    if isinstance(msg, sync.Ok) and len(fds) == 1:
        return fds[0]
    for fd in fds:
        os.close(fd)
    if isinstance(msg, sync.Err):
        raise StageError.from_dict(msg.error)
    raise StageError(stage, "open", "the bind source", 0, ptr,
                     "the helper in the container's mount namespace died")


def _helper(ctx: Context, stage: str, ptr: str, mnt: int, chan: sync.Channel,
            make: Callable[[], int]) -> None:
    code = 0
    try:
        if mnt >= 0:
            try:
                ctx.sys.setns(mnt, S.CLONE_NEWNS)
            except OSError as e:
                raise StageError(stage, "setns", f"/proc/{ctx.pid}/ns/mnt", e.errno or 0,
                                 ptr) from None
        chan.send(sync.Ok(stage), [make()])
    except StageError as err:
        chan.send(sync.Err(stage, err.to_dict()))
    except BaseException:  # the parent reports the helper's death
        code = 1
    finally:
        os._exit(code)


def _clone(ctx: Context, stage: str, ptr: str, source: str, opts: mountopts.MountOptions,
           userns: int) -> int:
    recursive = bool(opts.flags & S.MS_REC)
    try:
        fd = ctx.sys.open_tree(source, recursive)
    except OSError as e:
        # the kernel's has_locked_children: in a user namespace's mount namespace the mounts
        # beneath the source are locked to it (runc 1.1.5 fails alike: "invalid argument")
        why = ("in a user namespace a source with mounts beneath it can only be bound with "
               'them: use "rbind"' if e.errno == errno.EINVAL and not recursive and in_userns(ctx)
               else "")
        raise StageError(stage, "open_tree", f'"{source}"', e.errno or 0, f"{ptr}/source",
                         why) from None
    try:
        prop = _PROPAGATION.get(ctx.linux.get("rootfsPropagation") or "", S.MS_SLAVE)
        if prop:
            _setattr(ctx, stage, ptr, source, fd, propagation=prop, recursive=True)
        if userns >= 0:
            _setattr(ctx, stage, ptr, source, fd, attr_set=S.MOUNT_ATTR_IDMAP,
                     userns_fd=userns, recursive=opts.idmap == "ridmap")
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
