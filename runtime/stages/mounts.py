"""Stage `mounts`: prepare the rootfs, mount each config.json mount inside it, create /dev.

Items (what `break mount /proc` can stop at): "rootfs", one "/mounts/N" per mount, "devices".
Every destination is resolved with secure_join, so a symlink in the rootfs cannot redirect a mount
outside it.

Every mount is made read-write here; a read-only one is remounted read-only by stage `paths`
(READONLY_LATER), once everything beneath it exists: submounts, device nodes, /dev/console, the
hooks' changes. That is crun's deferred remount (libcrun/linux.c finalize_mounts) and runc's for
tmpfs and /dev (rootfs_linux.go mountPropagate/finalizeRootfs, since runc commit fc98958
"Remount /dev as ro after it is populated"); without it a read-only /dev cannot get its devpts,
shm and mqueue mount points nor its device nodes.
"""
from __future__ import annotations

import errno
import os
import stat

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import procfs
from runtime.linux import syscalls as S
from runtime.linux.paths import make_target, secure_join
from runtime.stages import mountopts
from runtime.stages.unshare import has_new, ipc_after_userns_root, unshare_ipc

DEFAULT_DEVICES = [  # path, major, minor
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
]
DEV_LINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
             ("pts/ptmx", "/dev/ptmx")]
_DEV_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
_NO_SYMLINK_TYPES = {"proc", "sysfs"}
# ctx.notes key: [container path, mount flags, config pointer, what] of each mount that stage
# `paths` remounts read-only
READONLY_LATER = "readonly_later"


def in_userns(ctx: Context) -> bool:
    """The container is in a user namespace of its own, new or joined: mknod(2) is refused
    there (runc binds devices when RunningInUserNS or the config has NEWUSER)."""
    return any(ns.get("type") == "user" for ns in ctx.linux.get("namespaces") or [])


def has_mount_ns(ctx: Context) -> bool:
    """A mount namespace of its own, new or joined; without one the container's mounts are
    made in the runtime's (runtime-spec: an absent namespace type is inherited)."""
    return any(ns.get("type") == "mount" for ns in ctx.linux.get("namespaces") or [])


def mount_list(ctx: Context) -> list[dict]:
    return ctx.spec.get("mounts") or []


def dev_is_bound(ctx: Context) -> bool:
    """/dev bind-mounted from the host: then the host's nodes are used as they are."""
    return any(m.get("destination") == "/dev" and is_bind(m) for m in mount_list(ctx))


def describe_mount(m: dict) -> str:
    opts = ",".join(m.get("options") or [])
    return f"{m.get('type') or 'bind'} {m.get('source', '')} on {m['destination']}" + (
        f" ({opts})" if opts else "")


def is_bind(m: dict) -> bool:
    return m.get("type") == "bind" or mountopts.parse(m.get("options") or []).is_bind


def is_idmapped(m: dict) -> bool:
    """runtime-spec 1.2: "idmap"/"ridmap", or uidMappings/gidMappings on the mount (runc's
    specconv takes those alone as "idmap" too: never ignored)."""
    return bool(mountopts.parse(m.get("options") or []).idmap) or "uidMappings" in m \
        or "gidMappings" in m


def host_opens_source(ctx: Context, m: dict) -> bool:
    """The host, not the container side, opens this bind's source: always for an id-mapped
    mount, and for every bind when the container side is in a user namespace (its root cannot
    reach what only the host's root can: runc 1.1.5's mount source fds, opened by nsexec as
    host root in the container's mount namespace; runc 1.2's open_tree(2) mount sources). A
    rootless runtime has no more rights than the container side: it binds there."""
    return is_bind(m) and (is_idmapped(m) or (in_userns(ctx) and os.geteuid() == 0))


def bind_source(ctx: Context, m: dict) -> str:
    source = m.get("source") or ""
    return source if os.path.isabs(source) else os.path.join(ctx.bundle, source)


class Mounts(Stage):
    name = "mounts"
    side = CONTAINER
    summary = "mount the rootfs and every config.json mount inside it, create device nodes"

    def host_fds(self, ctx: Context, item: str) -> list[int]:
        """Host side, before "/mounts/N": for a bind the host opens (host_opens_source), a
        detached copy of the source made in the container's mount namespace with the host's
        rights (runtime/stages/mountsource.py: open_tree(2), OPEN_TREE_CLONE), propagation set
        as a bind there would have it and, for an id-mapped mount, the id mapping applied; the
        container side attaches it with move_mount(2)."""
        if not item.startswith("/mounts/"):
            return []
        i = int(item.rsplit("/", 1)[1])
        m = mount_list(ctx)[i]
        if not host_opens_source(ctx, m):
            return []
        from runtime.stages import mountsource  # only configs with such binds need it
        return [mountsource.open_source(ctx, self.name, f"/mounts/{i}", m, bind_source(ctx, m))]

    def items(self, ctx: Context) -> list[str]:
        return ["rootfs"] + [f"/mounts/{i}" for i in range(len(mount_list(ctx)))] + ["devices"]

    def preload(self, ctx: Context) -> list[str]:
        # refused_data's, on a failed mount: in a user namespace the container side may no
        # longer read the host's Python files by then
        return ["runtime.linux.fscontext"] if has_new(ctx, "user") else []

    def describe(self, ctx: Context) -> str:
        prop = ctx.linux.get("rootfsPropagation") or "rslave"
        lines = [self.summary + ".",
                 f"rootfs: make / {prop} (config /linux/rootfsPropagation), bind {ctx.rootfs} onto itself."
                 if has_mount_ns(ctx) else
                 f"rootfs: no mount namespace: in the runtime's, bind {ctx.rootfs} onto itself and "
                 f"make that bind {prop} (config /linux/rootfsPropagation); `delete` unmounts it "
                 f"and all beneath it."]
        for i, m in enumerate(mount_list(ctx)):
            if host_opens_source(ctx, m):
                how = "id-mapped " if is_idmapped(m) else ""
                lines.append(f"/mounts/{i}: move_mount(2) {describe_mount(m)}: a {how}copy of "
                             f"the source the host opened (open_tree(2))")
            else:
                lines.append(f"/mounts/{i}: mount(2) {describe_mount(m)}")
        config = [d["path"] for d in ctx.linux.get("devices") or []]
        devs = [d[0] for d in DEFAULT_DEVICES if d[0] not in config] if not dev_is_bound(ctx) else []
        devs += config
        how = ("bind-mount from the host, nosuid,noexec (user namespace)" if in_userns(ctx)
               else "mknod(2)")
        lines.append(f"devices: {how} " + (", ".join(devs) or "none") + " (config /linux/devices).")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        if item == "rootfs":
            self._rootfs(ctx)
        elif item == "devices":
            self._devices(ctx)
        else:
            index = int(item.rsplit("/", 1)[1])
            self._mount(ctx, index, mount_list(ctx)[index])

    # -- rootfs ---------------------------------------------------------------------------------
    def _rootfs(self, ctx: Context) -> None:
        if in_userns(ctx):
            # Become the namespace's root (mapped now), new or joined (runc's nsexec does after
            # its joins too): files and dirs created from here on are owned by a mapped id,
            # which the kernel insists on (EOVERFLOW otherwise).
            try:
                ctx.sys.setresgid(0, 0, 0)
                ctx.sys.setresuid(0, 0, 0)
            except OSError as e:
                raise StageError(self.name, "setresuid", "0", e.errno or 0, "/linux/uidMappings",
                                 "uid/gid 0 must be mapped in the user namespace") from None
            if ipc_after_userns_root(ctx):
                unshare_ipc(ctx, self.name)
        prop = ctx.linux.get("rootfsPropagation")
        flags = mountopts.PROPAGATION[prop] if prop else S.MS_SLAVE | S.MS_REC
        if not has_mount_ns(ctx):
            self._rootfs_in_runtime_ns(ctx, flags)
            return
        self._call(ctx, "mount", "/", (None, "/", None, flags), "/linux/rootfsPropagation")
        # pivot_root(2) refuses a new root whose parent mount is shared.
        parent = procfs.mount_containing(ctx.rootfs, procfs.mountinfo())
        if any(t.startswith("shared:") for t in parent.optional):
            self._call(ctx, "mount", parent.mountpoint,
                       (None, parent.mountpoint, None, S.MS_PRIVATE), "/linux/rootfsPropagation")
        self._call(ctx, "mount", ctx.rootfs,
                   (ctx.rootfs, ctx.rootfs, "bind", S.MS_BIND | S.MS_REC), "/root/path")

    def _rootfs_in_runtime_ns(self, ctx: Context, flags: int) -> None:
        """No mount namespace: the runtime's is inherited (runtime-spec: an absent namespace
        type), and everything is mounted beneath one bind of the rootfs onto itself, made
        rslave (or rootfsPropagation) so nothing mounted under it propagates out, and undone
        as a whole by `delete` (runtime/hostmounts.py). runc's prepareRoot makes the host's own
        "/" rslave first and its mounts outlive `delete`: here "/" is never touched."""
        self._call(ctx, "mount", ctx.rootfs,
                   (ctx.rootfs, ctx.rootfs, "bind", S.MS_BIND | S.MS_REC), "/root/path")
        self._call(ctx, "mount", ctx.rootfs, (None, ctx.rootfs, None, flags),
                   "/linux/rootfsPropagation")

    # -- one mount ------------------------------------------------------------------------------
    def _mount(self, ctx: Context, i: int, m: dict) -> None:
        ptr = f"/mounts/{i}"
        dest_rel = m["destination"]
        try:
            dest = secure_join(ctx.rootfs, dest_rel)
        except OSError as e:  # ELOOP: a symlink loop in the rootfs
            raise StageError(self.name, "resolve", dest_rel, e.errno or 0, f"{ptr}/destination") from None
        kind = m.get("type") or ""
        source = m.get("source") or kind or "none"
        opts = mountopts.parse(m.get("options") or [])
        what = f'"{source}" on "{dest_rel}"'
        if kind in _NO_SYMLINK_TYPES and dest != ctx.rootfs.rstrip("/") + os.path.normpath(dest_rel):
            raise StageError(self.name, "mount", what, 0, f"{ptr}/destination",
                             f"destination is a symlink in the rootfs (resolves to "
                             f"{dest[len(ctx.rootfs.rstrip('/')):]}); {kind} must be mounted on a real directory")
        if opts.is_bind or kind == "bind":
            self._bind(ctx, ptr, what, m, dest, opts)
        elif kind == "cgroup":
            if any(e.fstype == "cgroup2" and e.mountpoint == "/sys/fs/cgroup" for e in procfs.mountinfo()):
                self._cgroup_v2(ctx, ptr, what, dest, opts)
            else:
                self._cgroup_v1(ctx, ptr, what, dest, opts)
        else:
            data = tmpfs_data(dest, opts.data) if kind == "tmpfs" else opts.data
            self._mkdir(ctx, ptr, dest, like_file=False)
            covered = _open_dir(dest) if opts.copyup and kind == "tmpfs" else -1
            try:
                self._fs_mount(ctx, ptr, what, source, dest, kind, opts.flags, data, m)
                if covered >= 0:
                    self._copy_up(ptr, what, covered, dest)
            finally:
                if covered >= 0:
                    os.close(covered)
        for p in opts.propagation:
            self._call(ctx, "mount", what, (None, dest, None, p), f"{ptr}/options")
        if opts.rec_index >= 0:
            self._rec_attrs(ctx, ptr, what, dest, opts)

    def _rec_attrs(self, ctx: Context, ptr: str, what: str, dest: str,
                   opts: mountopts.MountOptions) -> None:
        """The recursive options ("rro", "rnosuid" ...): mount_setattr(2) with AT_RECURSIVE on
        the mount and all beneath it, after the mount and its remount, as runc's setRecAttr
        (rootfs_linux.go) and crun's do_mount_setattr do. An "rro" applies at once, as in
        runc: a mount made later beneath it needs an existing mount point."""
        fd = os.open(dest, os.O_PATH | os.O_CLOEXEC)
        try:
            ctx.sys.mount_setattr(fd, attr_set=opts.rec_set, attr_clr=opts.rec_clr,
                                  recursive=True)
        except OSError as e:
            raise StageError(self.name, "mount_setattr", what, e.errno or 0,
                             f"{ptr}/options/{opts.rec_index}") from None
        finally:
            os.close(fd)

    def _copy_up(self, ptr: str, what: str, covered: int, dest: str) -> None:
        """"tmpcopyup": what the new tmpfs covers, copied into it (runc's mountToRootfs copies
        the directory into a tmpfs mounted aside, then moves that onto it; crun copies too).
        Here the covered directory is read through an fd opened before the mount."""
        try:
            copy_tree(covered, dest)
        except OSError as e:
            raise StageError(self.name, "copy up", f"{what}: {e.filename or ''}".rstrip(": "),
                             e.errno or 0, f"{ptr}/options") from None

    def _fs_mount(self, ctx: Context, ptr: str, what: str, source: str, dest: str, kind: str,
                  flags: int, data: list[str], m: dict) -> None:
        args = (source, dest, kind, flags & ~S.MS_RDONLY, ",".join(data) or None)
        try:
            ctx.sys.mount(*args)
        except OSError as e:
            if kind == "sysfs" and e.errno == 1 and not has_new(ctx, "network"):
                # sysfs needs a network namespace owned by our user namespace: bind the host's
                self._call(ctx, "mount", what, ("/sys", dest, None, S.MS_BIND | S.MS_REC), ptr)
                self._bind_flags(ctx, ptr, what, dest, flags)
                return
            raise StageError(self.name, "mount", what, e.errno or 0,
                             *refused_data(kind, m, ptr, e.errno or 0)) from None
        self._readonly_later(ctx, ptr, what, dest, flags)

    def _bind(self, ctx: Context, ptr: str, what: str, m: dict, dest: str,
              opts: mountopts.MountOptions) -> None:
        if ctx.fds:  # the host opened the source (host_fds): attach its copy
            self._mkdir(ctx, ptr, dest, like_file=not stat.S_ISDIR(os.fstat(ctx.fds[0]).st_mode))
            try:
                ctx.sys.move_mount(ctx.fds[0], dest)
            except OSError as e:
                raise StageError(self.name, "move_mount", what, e.errno or 0, ptr) from None
            self._bind_flags(ctx, ptr, what, dest, opts.flags)
            return
        source = bind_source(ctx, m)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as e:
            raise StageError(self.name, "stat", f'"{source}"', e.errno or 0, f"{ptr}/source") from None
        self._mkdir(ctx, ptr, dest, like_file=not is_dir)
        flags = (opts.flags & (S.MS_BIND | S.MS_REC)) | S.MS_BIND  # type "bind" alone is a bind too
        self._call(ctx, "mount", what, (source, dest, "bind", flags), ptr)
        self._bind_flags(ctx, ptr, what, dest, opts.flags)

    def _bind_flags(self, ctx: Context, ptr: str, what: str, dest: str, flags: int) -> None:
        """A bind takes its flags only from a second, remounting call: the others now, "ro"
        from stage `paths`."""
        if flags & mountopts.REMOUNT_FLAGS & ~S.MS_RDONLY:
            bind_remount(ctx, self.name, ptr, what, dest, flags & ~S.MS_RDONLY)
        self._readonly_later(ctx, ptr, what, dest, flags)

    def _readonly_later(self, ctx: Context, ptr: str, what: str, dest: str, flags: int) -> None:
        if flags & S.MS_RDONLY:
            path = dest[len(ctx.rootfs.rstrip("/")):] or "/"
            ctx.notes.setdefault(READONLY_LATER, []).append([path, flags, ptr, what])

    def _cgroup_v2(self, ctx: Context, ptr: str, what: str, dest: str,
                   opts: mountopts.MountOptions) -> None:
        """Type "cgroup" on a unified host: cgroup2 itself (cgroup ns), or a bind of our own cgroup."""
        self._mkdir(ctx, ptr, dest, like_file=False)
        if has_new(ctx, "cgroup"):
            self._call(ctx, "mount", what, ("cgroup2", dest, "cgroup2", opts.flags & ~S.MS_RDONLY,
                                            None), ptr)
            self._readonly_later(ctx, ptr, what, dest, opts.flags)
            return
        own = dict(procfs.self_cgroups()).get("", "/")
        self._call(ctx, "mount", what, ("/sys/fs/cgroup" + own.rstrip("/"), dest, None,
                                        S.MS_BIND | S.MS_REC), ptr)
        self._bind_flags(ctx, ptr, what, dest, opts.flags)

    def _cgroup_v1(self, ctx: Context, ptr: str, what: str, dest: str,
                   opts: mountopts.MountOptions) -> None:
        """Type "cgroup": a tmpfs holding one mount per host hierarchy, as runc does on v1 hosts."""
        self._mkdir(ctx, ptr, dest, like_file=False)
        base = opts.flags & ~S.MS_RDONLY
        self._call(ctx, "mount", what, ("tmpfs", dest, "tmpfs", base, "mode=755"), ptr)
        own = dict(procfs.self_cgroups())
        cgroupns = has_new(ctx, "cgroup")
        for e in procfs.mountinfo():
            if e.fstype not in ("cgroup", "cgroup2") or not e.mountpoint.startswith("/sys/fs/cgroup/"):
                continue
            name = e.mountpoint.rsplit("/", 1)[1]
            sub = ",".join(o for o in e.super_options.split(",") if o not in ("rw", "ro"))
            target = f"{dest}/{name}"
            self._mkdir(ctx, ptr, target, like_file=False)
            if cgroupns:
                self._call(ctx, "mount", what, (e.fstype, target, e.fstype, base, sub or None), ptr)
            else:
                key = "" if e.fstype == "cgroup2" else next(  # "xattr,name=systemd" -> "name=systemd"
                    (k for k in own if k and set(k.split(",")) <= set(sub.split(","))), sub)
                host = e.mountpoint + own.get(key, "/")
                self._call(ctx, "mount", what, (host, target, None, S.MS_BIND | S.MS_REC), ptr)
            if opts.flags & S.MS_RDONLY:  # nothing is mounted beneath a hierarchy: now
                bind_remount(ctx, self.name, ptr, what, target, opts.flags)
        self._readonly_later(ctx, ptr, what, dest, opts.flags)

    # -- devices --------------------------------------------------------------------------------
    def _devices(self, ctx: Context) -> None:
        bind = in_userns(ctx)
        nodes: list[tuple[str, dict]] = []
        config = ctx.linux.get("devices") or []
        if not dev_is_bound(ctx):
            # a config entry at a default device's path wins: its numbers, mode and owner (runc's
            # specconv adds a default device only when the config has none at that path)
            given = {os.path.normpath(d["path"]) for d in config}
            nodes += [("", {"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666})
                      for p, ma, mi in DEFAULT_DEVICES if p not in given]
        nodes += [(f"/linux/devices/{i}", d) for i, d in enumerate(config)]
        for ptr, dev in nodes:
            self._device(ctx, ptr, dev, bind)
        if dev_is_bound(ctx):
            return
        for target, link in DEV_LINKS:
            # the link's directory is resolved, not the link itself: a link already there is kept
            path = secure_join(ctx.rootfs, os.path.dirname(link)) + "/" + os.path.basename(link)
            if link == "/dev/ptmx" and os.path.lexists(path):
                os.unlink(path)  # our own tmpfs /dev: the pts instance's ptmx replaces any node
            try:
                ctx.sys.symlink(target, path)
            except FileExistsError:
                pass
            except OSError as e:
                raise StageError(self.name, "symlink", link, e.errno or 0, "") from None

    def _device(self, ctx: Context, ptr: str, dev: dict, bind: bool) -> None:
        path = secure_join(ctx.rootfs, dev["path"])
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        if bind:
            self._bind_device(ctx, ptr, dev, path)
            return
        mode = _DEV_TYPES[dev["type"]] | (dev.get("fileMode", 0o666) & 0o7777)
        try:
            ctx.sys.mknod(path, mode, os.makedev(dev.get("major", 0), dev.get("minor", 0)))
        except FileExistsError:
            return
        except PermissionError:  # runc's createDeviceNode: bind the host's node instead
            self._bind_device(ctx, ptr, dev, path)
            return
        except OSError as e:
            raise StageError(self.name, "mknod", dev["path"], e.errno or 0, ptr) from None
        os.chmod(path, mode & 0o7777)  # mknod's mode went through the umask
        S.chown(path, dev.get("uid", 0), dev.get("gid", 0))

    def _bind_device(self, ctx: Context, ptr: str, dev: dict, path: str) -> None:
        """The host's node, bind-mounted nosuid,noexec (crun's create_missing_devs; runc binds
        it without them): what mknod(2) would have made, as far as a bind can."""
        make_target(path, like_file=True)
        self._call(ctx, "mount", dev["path"], (dev["path"], path, "bind", S.MS_BIND), ptr)
        bind_remount(ctx, self.name, ptr, dev["path"], path, S.MS_NOSUID | S.MS_NOEXEC)

    # -- helpers --------------------------------------------------------------------------------
    def _mkdir(self, ctx: Context, ptr: str, path: str, like_file: bool) -> None:
        try:
            make_target(path, like_file)
        except OSError as e:
            raise StageError(self.name, "mkdir", path[len(ctx.rootfs.rstrip("/")):] or "/",
                             e.errno or 0, f"{ptr}/destination") from None

    def _call(self, ctx: Context, op: str, what: str, args: tuple, ptr: str) -> None:
        try:
            ctx.sys.mount(*args)
        except OSError as e:
            raise StageError(self.name, op, what, e.errno or 0, ptr) from None


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def copy_tree(src_fd: int, dest: str) -> None:
    """Copy the tree of directory `src_fd` into directory `dest`: directories, regular files,
    symlinks, device nodes and FIFOs with their mode and owner (runc's fileutils.CopyDirectory;
    sockets are skipped as there). OSError naming the file that failed."""
    for top, dirs, files, dfd in os.fwalk(".", dir_fd=src_fd, follow_symlinks=False):
        out = os.path.normpath(os.path.join(dest, top))
        for name in dirs + files:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            target = os.path.join(out, name)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target, 0o700)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(name, dir_fd=dfd), target)
            elif stat.S_ISREG(st.st_mode):
                _copy_file(name, dfd, target)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                os.mknod(target, st.st_mode, st.st_rdev)
            else:
                continue
            os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(target, stat.S_IMODE(st.st_mode))


def _copy_file(name: str, dfd: int, target: str) -> None:
    src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    try:
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while os.sendfile(out, src, None, 1 << 20):
                pass
        finally:
            os.close(out)
    finally:
        os.close(src)


def refused_data(kind: str, m: dict, ptr: str, err: int) -> tuple[str, str]:
    """(config pointer, why) for a failed mount(2) of filesystem `kind`: on EINVAL, the data
    option the filesystem's own parser refuses (fsconfig(2), runtime/linux/fscontext.py), named
    as /mounts/N/options/K with the kernel's words ("tmpfs: Bad value for 'mode'"); else the
    mount itself. runc and crun only print "invalid argument"."""
    if err != errno.EINVAL or not kind:
        return ptr, ""
    opts = m.get("options") or []
    parsed = mountopts.parse(opts)
    try:
        from runtime.linux import fscontext
        bad = fscontext.refused_option(kind, parsed.data)
    except OSError:
        return ptr, ""
    if bad is None:
        return ptr, ""
    i, _, message = bad
    message = ": ".join(w[:1].lower() + w[1:] for w in message.split(": "))  # our lower case
    why = "invalid argument" + (f" ({message})" if message else "")
    return f"{ptr}/options/{parsed.data_index[i]}", why


def tmpfs_data(dest: str, data: list[str]) -> list[str]:
    """A tmpfs without "mode=" takes the mode of the directory it covers, when there is one
    (runc's createOpenMountpoint since commit 9fa8b9de "Fix tmpfs mode opts when dir already
    exists", crun's append_tmpfs_mode_if_missing); a new directory gets tmpfs's 1777."""
    if any(d.startswith("mode=") for d in data):
        return data
    try:
        mode = os.stat(dest).st_mode
    except OSError:
        return data
    return [f"mode={mode & 0o7777:04o}"] + data


def bind_remount(ctx: Context, stage: str, ptr: str, what: str, dest: str, flags: int) -> None:
    """mount(MS_BIND|MS_REMOUNT) `dest` with the per-mount flags of `flags` (ro, nosuid, nodev,
    noexec, atime ...). In a user namespace the kernel locks the flags an inherited mount has
    (EPERM when a remount would clear them): they are kept and the call retried. StageError
    "remount" at `ptr`/options."""
    flags = (flags & mountopts.REMOUNT_FLAGS) | S.MS_BIND | S.MS_REMOUNT
    try:
        ctx.sys.mount(None, dest, None, flags, None)
        return
    except OSError as e:
        if e.errno != 1:
            raise StageError(stage, "remount", what, e.errno or 0, f"{ptr}/options") from None
    locked = os.statvfs(dest).f_flag & (S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC | S.MS_RDONLY)
    try:
        ctx.sys.mount(None, dest, None, flags | locked, None)
    except OSError as e:
        raise StageError(stage, "remount", what, e.errno or 0, f"{ptr}/options") from None
