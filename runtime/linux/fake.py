"""A recording stand-in for runtime.linux.syscalls, for unit tests of the stages.

    fake = RecordingSyscalls(root=tmp_path)
    ctx = Context(..., sys=fake)
    Mounts().run(ctx, "/mounts/0")
    assert fake.calls == [("mount", "proc", f"{rootfs}/proc", "proc", 0, None)]
    assert fake.named() == named_calls([...])      # same, with flags shown as MS_BIND|MS_REC

Every wrapper of runtime.linux.syscalls exists here with the same signature. A call appends one
tuple, ("name", *arguments with defaults filled in), to `self.calls` and does nothing else, with
these exceptions (each one because a stage reads the result back with the real os module):

- `mknod(path, ...)` creates an empty regular file at `path` (O_EXCL, so a second mknod of the same
  path raises FileExistsError as the kernel would): the mounts stage chmod(2)s and chown(2)s the
  node right after creating it.
- `symlink(target, path)` creates the real symlink (harmless: no privilege needed), so that a second
  run of the devices item takes the "already there" branch, and tests can look at the links.
- `setns(fd, nstype)` records the path the fd was opened on (read from /proc/self/fd/<fd>), not
  the fd number, which differs from run to run.
- `fork()` never forks: it returns `self.fork_result` (0 by default: the caller acts as the child),
  or calls it when it is callable.
- `prctl()` returns `self.prctl_result` (0).
- `fd_flags(fd)` answers with the real fcntl(F_GETFL) of the test process's fd: it only reads.

The filesystem side effects only happen under `root` (pass the test's tmp_path); a path outside it
raises AssertionError instead of touching the host. With `root=None` there are no side effects at
all. Constants (MS_*, CLONE_*, PR_*, MNT_*) are re-exported as attributes, like the real module.

`fail(name, errno, when=...)` makes the next call of `name` whose arguments satisfy `when(*args)`
raise OSError(errno) (FileExistsError etc. for the matching errnos, as the os module does). The
failing call is still recorded: it was attempted, which is what tests of error paths look at.
"""
from __future__ import annotations

import os
import resource
import stat
from collections.abc import Callable
from typing import Any

from runtime.linux import syscalls as _real

CONSTANTS = {n: v for n, v in vars(_real).items()
             if n.isupper() and not n.startswith("_") and isinstance(v, int)}
globals().update(CONSTANTS)

_PREFIXES = ("MS_", "CLONE_", "MNT_")
_RLIMITS: dict[int, str] = {}
for _n in sorted(n for n in dir(resource) if n.startswith("RLIMIT_")):
    _RLIMITS.setdefault(getattr(resource, _n), _n)  # RLIMIT_NOFILE before its alias RLIMIT_OFILE
_PRCTL = {v: n for n, v in CONSTANTS.items()
          if n.startswith("PR_") and not n.startswith("PR_CAP_AMBIENT_")}
_FILE_TYPES = [(stat.S_IFCHR, "S_IFCHR"), (stat.S_IFBLK, "S_IFBLK"), (stat.S_IFIFO, "S_IFIFO"),
               (stat.S_IFREG, "S_IFREG"), (stat.S_IFSOCK, "S_IFSOCK")]


def flag_names(flags: int, prefix: str = "MS_") -> str:
    """flags as "MS_RDONLY|MS_BIND" (lowest bit first), "0" for none; unknown bits in hex."""
    if not flags:
        return "0"
    names = []
    rest = flags
    for name, value in sorted(((n, v) for n, v in CONSTANTS.items() if n.startswith(prefix)),
                              key=lambda p: p[1]):
        if value and flags & value == value and rest & value:
            names.append(name)
            rest &= ~value
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def mode_name(mode: int) -> str:
    """A mknod(2) mode as "S_IFCHR|0o666"."""
    fmt = stat.S_IFMT(mode)
    kind = next((n for v, n in _FILE_TYPES if v == fmt), hex(fmt) if fmt else "")
    perm = oct(mode & 0o7777)
    return f"{kind}|{perm}" if kind else perm


def named_call(call: tuple) -> tuple:
    """One recorded call with its numeric arguments shown by name, for readable assertions."""
    name, args = call[0], list(call[1:])
    if name == "mount":
        args[3] = flag_names(args[3], "MS_")
    elif name == "umount2":
        args[1] = flag_names(args[1], "MNT_")
    elif name == "unshare":
        args[0] = flag_names(args[0], "CLONE_")
    elif name == "setns":
        args[1] = flag_names(args[1], "CLONE_")
    elif name == "mknod":
        args[1] = mode_name(args[1])
        args[2] = f"{os.major(args[2])}:{os.minor(args[2])}"
    elif name == "setrlimit":
        args[0] = _RLIMITS.get(args[0], args[0])
    elif name == "prctl":
        args[0] = _PRCTL.get(args[0], args[0])
    elif name == "umask":
        args[0] = oct(args[0])
    return (name, *args)


def named_calls(calls: list[tuple]) -> list[tuple]:
    return [named_call(c) for c in calls]


class RecordingSyscalls:
    """Records every syscall a stage makes through ctx.sys; see the module docstring."""

    def __init__(self, root: str | os.PathLike | None = None, fork_result: Any = 0) -> None:
        self.calls: list[tuple] = []
        self.root = os.path.realpath(root) if root is not None else None
        self.fork_result = fork_result
        self.prctl_result = 0
        self._failures: list[tuple[str, int, Callable[..., bool]]] = []

    # -- test helpers ---------------------------------------------------------------------------
    def fail(self, name: str, errno: int, when: Callable[..., bool] = lambda *args: True) -> None:
        """The next call of `name` with `when(*args)` true raises OSError(errno); once."""
        if not callable(getattr(_real, name, None)):
            raise AttributeError(f"runtime.linux.syscalls has no {name}()")
        self._failures.append((name, errno, when))

    def named(self) -> list[tuple]:
        """self.calls with flags, modes and resources by name (see named_call)."""
        return named_calls(self.calls)

    def of(self, name: str) -> list[tuple]:
        """The recorded calls of one syscall."""
        return [c for c in self.calls if c[0] == name]

    def render(self) -> str:
        """One line per call, for failure messages and debugging."""
        return "\n".join(f"{c[0]}({', '.join(repr(a) for a in c[1:])})" for c in self.named())

    def clear(self) -> None:
        self.calls.clear()

    # -- plumbing -------------------------------------------------------------------------------
    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        for i, (fname, err, when) in enumerate(self._failures):
            if fname == name and when(*args):
                del self._failures[i]
                raise OSError(err, os.strerror(err))

    def _side_effect_ok(self, path: str) -> bool:
        if self.root is None:
            return False
        full = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise AssertionError(f"fake syscall would touch {path!r}, outside the test root {self.root!r}")
        return True

    # -- the syscalls ---------------------------------------------------------------------------
    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setns(self, fd: int, nstype: int = 0) -> None:
        try:
            what: Any = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            what = fd
        self._record("setns", what, nstype)

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def join_session_keyring(self, name: str) -> None:
        self._record("join_session_keyring", name)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        return self.prctl_result

    def set_name(self, name: str) -> None:
        self._record("set_name", name)

    def personality(self, persona: int) -> int:
        self._record("personality", persona)
        return 0

    def sched_setaffinity(self, pid: int, cpus: set[int]) -> None:
        self._record("sched_setaffinity", pid, sorted(cpus))

    def ioprio_set(self, ioclass: int, data: int) -> None:
        self._record("ioprio_set", ioclass, data)

    def sched_setattr(self, policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                      runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
        self._record("sched_setattr", policy, flags, nice, priority, runtime, deadline, period)

    def lsm_list_modules(self) -> list[int]:
        self._record("lsm_list_modules")
        return []

    def chroot(self, path: str) -> None:
        self._record("chroot", path)

    def chdir(self, path: str) -> None:
        self._record("chdir", path)

    def mknod(self, path: str, mode: int, device: int) -> None:
        self._record("mknod", path, mode, device)
        if self._side_effect_ok(path):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, mode & 0o777))

    def symlink(self, target: str, path: str) -> None:
        self._record("symlink", target, path)
        if self._side_effect_ok(path):
            os.symlink(target, path)

    def setgroups(self, gids: list[int]) -> None:
        self._record("setgroups", list(gids))

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        self._record("setresgid", rgid, egid, sgid)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        self._record("setresuid", ruid, euid, suid)

    def setsid(self) -> None:
        self._record("setsid")

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._record("chown", path, uid, gid)

    def fchown_user(self, fd: int, uid: int) -> None:
        self._record("fchown_user", fd, uid)

    def fd_flags(self, fd: int) -> int:
        self._record("fd_flags", fd)
        return _real.fd_flags(fd)  # read only: the stage decides on the real answer

    def setrlimit(self, res: int, soft: int, hard: int) -> None:
        self._record("setrlimit", res, soft, hard)

    def umask(self, mask: int) -> None:
        self._record("umask", mask)

    def link_up(self, name: str) -> None:
        self._record("link_up", name)

    def write_file(self, path: str, data: str, dir_fd: int | None = None) -> None:
        self._record("write_file", path, data)

    def open_tree(self, path: str, recursive: bool) -> int:
        self._record("open_tree", path, recursive)
        return os.open("/", os.O_PATH | os.O_CLOEXEC)  # a real fd, that callers may close

    def mount_setattr(self, fd: int, attr_set: int = 0, attr_clr: int = 0, propagation: int = 0,
                      userns_fd: int = 0, recursive: bool = False) -> None:
        self._record("mount_setattr", attr_set, attr_clr, propagation, recursive)

    def move_mount(self, fd: int, target: str) -> None:
        self._record("move_mount", target)

    def procfs_handle(self) -> int:
        self._record("procfs_handle")
        return os.open("/proc", os.O_PATH | os.O_CLOEXEC)

    def close_range(self, first: int, last: int, flags: int = 0) -> None:
        self._record("close_range", first, last, flags)

    def fork(self) -> int:
        self._record("fork")
        return self.fork_result() if callable(self.fork_result) else self.fork_result


for _name, _value in CONSTANTS.items():
    setattr(RecordingSyscalls, _name, _value)
del _name, _value
