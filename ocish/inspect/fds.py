"""Open file descriptors, flagging those that lead back to the host.

An fd leads back to the host when the container could reach the host through it:
- a file whose mount is not in the container's mount table (opened before the mount namespace
  changed: a leaked fd of the runtime, the exec.fifo, a host tty);
- a pipe or socket that a process outside the container also holds;
- a socket created in another network namespace than the container's.
While the process still shares the host's mount namespace nothing is flagged: it is not yet
separated from the host at all.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass

from ocish.inspect import Target
from ocish.inspect.ns import inode
from ocish.syscall_args import OPEN_FLAGS, flags
from runtime.linux import procfs

_SIOCGSKNS = 0x894C       # ioctl: the network namespace of a socket
_SYS_PIDFD_GETFD = 438    # the same number on every architecture
_libc = ctypes.CDLL(None, use_errno=True)
_SHOWN_FLAGS = OPEN_FLAGS + [("O_LARGEFILE", 0o100000)]


@dataclass
class Fd:
    fd: int
    target: str
    flags: str
    host: bool           # leads back to the host
    why: str


@dataclass
class Fds:
    pid: int
    separated: bool      # the process has its own mount namespace
    fds: list[Fd]


def _fdinfo(pid: int, fd: str) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            return {k: v.strip() for k, _, v in (ln.partition(":") for ln in f.read().splitlines())}
    except OSError:
        return {}


def _holders(mnt_ns: int, skip: int) -> dict[str, list[str]]:
    """{pipe/socket target: ["pid (comm)", ...]} over the processes outside mount namespace
    `mnt_ns`."""
    out: dict[str, list[str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == skip:
            continue
        try:
            if inode(f"/proc/{name}/ns/mnt") == mnt_ns:
                continue
            targets = {_readlink(f"/proc/{name}/fd/{fd}") for fd in os.listdir(f"/proc/{name}/fd")}
            with open(f"/proc/{name}/comm") as f:
                who = f"{name} ({f.read().strip()})"
        except OSError:  # the process exited meanwhile
            continue
        for target in targets:
            if target.startswith(("pipe:", "socket:")):
                out.setdefault(target, []).append(who)
    return out


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile (e.g. the fd of our own listing)
        return ""


def _socket_netns(pid: int, fd: int) -> int | None:
    """The inode of the network namespace a socket was created in (pidfd_getfd + SIOCGSKNS)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        dup = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            return None
        try:
            nsfd = fcntl.ioctl(dup, _SIOCGSKNS)
            try:
                return os.fstat(nsfd).st_ino
            finally:
                os.close(nsfd)
        except OSError:
            return None
        finally:
            os.close(dup)
    finally:
        os.close(pidfd)


def read(t: Target) -> Fds:
    pid = t.pid
    mnt_ns = inode(f"/proc/{pid}/ns/mnt")
    separated = mnt_ns != inode("/proc/self/ns/mnt")
    net_ns = inode(f"/proc/{pid}/ns/net")
    visible = {e.mount_id for e in procfs.mountinfo(pid)}
    holders: dict[str, list[str]] | None = None  # scanned once, when a pipe or socket needs it
    out = []
    for name in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        info = _fdinfo(pid, name)
        shown = flags(int(info.get("flags", "0"), 8), _SHOWN_FLAGS, "access")
        why = ""
        if separated:
            if target.startswith("/") and info.get("mnt_id", "").isdigit() \
                    and int(info["mnt_id"]) not in visible:
                why = (f"a host file: its mount ({info['mnt_id']}) is not in the container's "
                       "mount table")
            elif target.startswith(("pipe:", "socket:")):
                if holders is None:
                    holders = _holders(mnt_ns, pid)
                if target in holders:
                    who = sorted(holders[target], key=lambda w: int(w.split()[0]))
                    why = "also held outside the container by " + ", ".join(who)
                elif target.startswith("socket:"):
                    sock_ns = _socket_netns(pid, int(name))
                    if sock_ns is not None and sock_ns != net_ns:
                        why = f"a socket of another network namespace (net:[{sock_ns}])"
        out.append(Fd(int(name), target, shown, bool(why), why))
    return Fds(pid, separated, out)
