"""The one door to the kernel calls Python's os module lacks (3.11 has no unshare/setns/mount).

Everything goes through libc via ctypes, loaded at import time: container-side stages run after
pivot_root, when the host's libraries are no longer reachable, so nothing may be dlopen'ed late.
Each wrapper raises OSError(errno) like the os module does. Stages reach these through
`ctx.sys`, so unit tests can swap in `runtime.linux.fake.RecordingSyscalls`.
"""
from __future__ import annotations

import ctypes
import errno
import os
import resource

from runtime.linux import netlink

_libc = ctypes.CDLL(None, use_errno=True)

# <linux/sched.h>
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <linux/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_POSIXACL = 0x10000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2
# the new mount API (Linux 5.2; mount_setattr 5.12): detached mounts made and changed by fd
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70  # the atime mode field: RELATIME (0), NOATIME or STRICTATIME
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
MOUNT_ATTR_IDMAP = 0x100000
# <linux/close_range.h>
CLOSE_RANGE_CLOEXEC = 0x4

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# <linux/personality.h>
PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
PER_QUERY = 0xFFFFFFFF

# runc's libcontainer/user maxID ("for 32-bit systems compatibility"). Above it lies
# (uid_t)-1 = 4294967295, which setresuid(2), setresgid(2) and chown(2) read as "leave unchanged":
# an id that reached them by accident would leave the process root, or a file root's.
ID_MAX = 2**31 - 1

# <fcntl.h>
F_GETFL = 3

# <linux/ioprio.h>
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13

_SYSCALL_NR = {  # only the calls glibc (2.36) has no wrapper for
    "x86_64": {"pivot_root": 155, "keyctl": 250, "ioprio_set": 251, "sched_setattr": 314,
               "lsm_list_modules": 461},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "ioprio_set": 30, "sched_setattr": 274,
                "lsm_list_modules": 461},
}[os.uname().machine]


# Linux 5.1 gave every architecture the same numbers for the calls added from 424 on.
_NEW_NR = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
           "close_range": 436, "mount_setattr": 442}


class _MountAttr(ctypes.Structure):
    """struct mount_attr (MOUNT_ATTR_SIZE_VER0, 32 bytes): what mount_setattr(2) reads."""
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _SchedAttr(ctypes.Structure):
    """struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes): what sched_setattr(2) reads."""
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64), ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32), ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64), ("sched_period", ctypes.c_uint64)]


def _check(ret: int, what: str = "") -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what or None)
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), target)


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(_SYSCALL_NR["pivot_root"]), _b(new_root), _b(put_old)), new_root)


def join_session_keyring(name: str) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring, not the host's."""
    _check(_libc.syscall(ctypes.c_long(_SYSCALL_NR["keyctl"]), ctypes.c_int(1), _b(name)))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))))


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)))


def set_name(name: str) -> None:
    """prctl(PR_SET_NAME): the calling thread's comm (what `ps -o comm` shows), 15 bytes kept."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_NAME), ctypes.c_char_p(name.encode()[:15]),
                       ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)))


def personality(persona: int) -> int:
    """personality(2): set the execution domain (PER_LINUX32...) and flags; returns the old one.
    PER_QUERY only reads it."""
    return _check(_libc.personality(ctypes.c_ulong(persona)))


def sched_setaffinity(pid: int, cpus: set[int]) -> None:
    """sched_setaffinity(2) of process `pid` to the CPU numbers `cpus` (os's own wrapper: the C
    library's, no ctypes needed). OSError EINVAL when none of them is online and allowed."""
    os.sched_setaffinity(pid, cpus)


def ioprio_set(ioclass: int, data: int) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(class, data)) for the calling process."""
    _check(_libc.syscall(ctypes.c_long(_SYSCALL_NR["ioprio_set"]), ctypes.c_int(IOPRIO_WHO_PROCESS),
                         ctypes.c_int(0), ctypes.c_int(ioclass << IOPRIO_CLASS_SHIFT | data)))


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0, runtime: int = 0,
                  deadline: int = 0, period: int = 0) -> None:
    """sched_setattr(2) of the calling thread (the whole process: we are single-threaded)."""
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline,
                      period)
    _check(_libc.syscall(ctypes.c_long(_SYSCALL_NR["sched_setattr"]), ctypes.c_int(0),
                         ctypes.byref(attr), ctypes.c_uint(0)))


def lsm_list_modules() -> list[int]:
    """The LSM_ID_* of the active security modules, in the kernel's order (Linux 6.8 and later;
    ENOSYS before)."""
    ids = (ctypes.c_uint64 * 32)()
    size = ctypes.c_uint32(ctypes.sizeof(ids))
    n = _check(_libc.syscall(ctypes.c_long(_SYSCALL_NR["lsm_list_modules"]), ids,
                             ctypes.byref(size), ctypes.c_uint32(0)))
    return list(ids[:n])


def chroot(path: str) -> None:
    os.chroot(path)


def chdir(path: str) -> None:
    os.chdir(path)


def mknod(path: str, mode: int, device: int) -> None:
    os.mknod(path, mode, device)


def symlink(target: str, path: str) -> None:
    os.symlink(target, path)


def _ids(*ids: int) -> None:
    """EINVAL for an id outside 0..ID_MAX, before it reaches the kernel as -1."""
    for i in ids:
        if type(i) is not int or not 0 <= i <= ID_MAX:
            raise OSError(errno.EINVAL, f"id {i} out of range 0-{ID_MAX}")


def setgroups(gids: list[int]) -> None:
    _ids(*gids)
    os.setgroups(gids)


def setresgid(rgid: int, egid: int, sgid: int) -> None:
    _ids(rgid, egid, sgid)
    os.setresgid(rgid, egid, sgid)


def setresuid(ruid: int, euid: int, suid: int) -> None:
    _ids(ruid, euid, suid)
    os.setresuid(ruid, euid, suid)


def setsid() -> None:
    """setsid(2): a new session and process group, led by the caller, with no controlling tty."""
    os.setsid()


def chown(path: str, uid: int, gid: int) -> None:
    """chown(2) that never means "unchanged": both ids must be in 0..ID_MAX."""
    _ids(uid, gid)
    os.chown(path, uid, gid)


def fchown_user(fd: int, uid: int) -> None:
    """fchown(fd, uid, -1): only the owner changes, the group stays (runc's
    fixStdioPermissions); the one place a -1 is passed, on purpose."""
    _ids(uid)
    os.fchown(fd, uid, -1)


def fd_flags(fd: int) -> int:
    """fcntl(fd, F_GETFL): the fd's open flags (os.O_ACCMODE bits, O_APPEND ...). No `fcntl`
    module: it is not importable once the container's root replaced the host's."""
    return _check(_libc.fcntl(ctypes.c_int(fd), ctypes.c_int(F_GETFL)))


def _rlim(value: int) -> int:
    """rlim_t is a u64 (2**64-1 is RLIM_INFINITY), Python's resource module takes a C long
    long: the same 64 bits, read as signed (-1 is RLIM_INFINITY there)."""
    return value - 2**64 if value >= 2**63 else value


def setrlimit(res: int, soft: int, hard: int) -> None:
    """setrlimit(2) with limits as u64 values, 0 to 2**64-1 (RLIM_INFINITY), as runc takes them."""
    try:
        resource.setrlimit(res, (_rlim(soft), _rlim(hard)))
    except ValueError as e:  # Python's word for EPERM ("not allowed to raise maximum limit")
        raise OSError(errno.EPERM, str(e)) from None


def umask(mask: int) -> None:
    os.umask(mask)


def link_up(name: str) -> None:
    """Set network link `name` of our network namespace up: rtnetlink RTM_NEWLINK with IFF_UP
    (runtime/linux/netlink.py). OSError: ENODEV, EPERM."""
    netlink.link_up(name)


def write_file(path: str, data: str, dir_fd: int | None = None) -> None:
    """Write a procfs/sysfs knob in one write(2), as the kernel expects; a relative `path` is
    looked up from `dir_fd` (a procfs handle, see procfs_handle)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def fork() -> int:
    return os.fork()


def _new(name: str, *args) -> int:
    return _check(_libc.syscall(ctypes.c_long(_NEW_NR[name]), *args), name)


def open_tree(path: str, recursive: bool) -> int:
    """open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path` (its whole
    subtree when `recursive`, as "rbind"), resolved by the caller with the caller's
    credentials; returns its fd (close-on-exec), to attach elsewhere with move_mount."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    return _new("open_tree", ctypes.c_int(AT_FDCWD), _b(path), ctypes.c_uint(flags))


def mount_setattr(fd: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0,
                  userns_fd: int = 0, recursive: bool = False) -> None:
    """mount_setattr(2) of the mount `fd` refers to (AT_EMPTY_PATH): MOUNT_ATTR_* flags set and
    cleared, a propagation type (MS_PRIVATE, MS_SLAVE ...; 0 keeps it), and with
    MOUNT_ATTR_IDMAP the user namespace whose mapping idmaps a detached mount."""
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _new("mount_setattr", ctypes.c_int(fd), b"", ctypes.c_uint(flags), ctypes.byref(attr),
         ctypes.c_size_t(ctypes.sizeof(attr)))


def move_mount(fd: int, target: str) -> None:
    """move_mount(2) the (detached) mount `fd` onto `target`, in the caller's mount namespace."""
    _new("move_mount", ctypes.c_int(fd), b"", ctypes.c_int(AT_FDCWD), _b(target),
         ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))


def procfs_handle() -> int:
    """A procfs of our own, mounted nowhere (fsopen, fsmount): the fd of its root, close-on-
    exec, nosuid,nodev,noexec, with only the process directories, self and thread-self
    ("subset=pid", Linux 5.8) of the caller's pid namespace; what runc's pathrs procfs handle
    is. Needs CAP_SYS_ADMIN over that pid namespace and, in a user namespace, a procfs in
    view in the mount namespace (EPERM otherwise)."""
    fs = _new("fsopen", b"proc", ctypes.c_uint(FSOPEN_CLOEXEC))
    try:
        _new("fsconfig", ctypes.c_int(fs), ctypes.c_uint(FSCONFIG_SET_STRING), b"subset", b"pid",
             ctypes.c_int(0))
        _new("fsconfig", ctypes.c_int(fs), ctypes.c_uint(FSCONFIG_CMD_CREATE), None, None,
             ctypes.c_int(0))
        return _new("fsmount", ctypes.c_int(fs), ctypes.c_uint(FSMOUNT_CLOEXEC),
                    ctypes.c_uint(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC))
    finally:
        os.close(fs)


def close_range(first: int, last: int, flags: int = 0) -> None:
    """close_range(2) of fds first..last (2**32-1: all above), or with CLOSE_RANGE_CLOEXEC only
    mark them close-on-exec (Linux 5.11); no /proc/self/fd to list."""
    _new("close_range", ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags))
