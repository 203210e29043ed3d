"""The namespace a file stands for: ioctl(NS_GET_NSTYPE) on nsfs (Linux 4.11+).

A /proc/<pid>/ns/<kind> file, or a bind mount of one (/run/netns/<name>), is an nsfs inode; the
ioctl answers its kind as a CLONE_NEW* flag, the one setns(2) compares with its nstype argument
(EINVAL on a mismatch). Any other file answers ENOTTY.
"""
from __future__ import annotations

import errno
import fcntl
import os

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), <linux/nsfs.h>


def ns_type(path: str) -> int | None:
    """The CLONE_NEW* flag of the namespace `path` is, 0 when it is no namespace file; raises
    OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL):
            return 0
        raise
    finally:
        os.close(fd)


def new_userns(uid_map: str, gid_map: str) -> int:
    """An O_RDONLY fd of a new user namespace with these uid_map and gid_map texts ("0 100000
    65536\\n" lines), for mount_setattr(MOUNT_ATTR_IDMAP): a forked child unshares it and waits
    while we (root in the parent namespace) write its maps and open /proc/<child>/ns/user; the
    namespace outlives the child through the fd (runc's userns.Handles, crun's
    maybe_create_userns_for_idmapped_mount). OSError from unshare (in the child: EPERM, say,
    as errno of its exit status), the map writes or the open."""
    from runtime.linux import syscalls as S
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: nothing but the unshare, then wait to be told to go
        code = 0
        try:
            os.close(ready_r)
            os.close(done_w)
            S.unshare(S.CLONE_NEWUSER)
        except OSError as e:
            code = e.errno or 1
        finally:
            os.write(ready_w, bytes([code]))
            os.read(done_r, 1)
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        code = os.read(ready_r, 1)
        if code != b"\0":
            err = code[0] if code else errno.ECHILD
            raise OSError(err, os.strerror(err), "unshare(CLONE_NEWUSER)")
        for name, text in (("uid_map", uid_map), ("gid_map", gid_map)):
            S.write_file(f"/proc/{pid}/{name}", text)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # a subreaper's reap loop (the debugger's) got there first
            pass
