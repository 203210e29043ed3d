"""Stages `process` and `user`: the process attributes of config.json, applied inside the container.

`process`: hostname, domainname, sysctl, rlimits and a fresh session keyring, while
the process is still root with every capability. `user` (after `paths`, which still needs to
mount): stdio ownership, cwd, groups, gid, uid, umask, in the order runc's init applies them,
and HOME when process.env has none (runc's setupUser, from the container's /etc/passwd).
"""
from __future__ import annotations

import errno
import os
import resource
import stat

from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux.syscalls import PR_SET_DUMPABLE
from runtime.stages.unshare import has_new

RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}
STDIO = (0, 1, 2)  # the fds the process user is handed, as in runc's fixStdioPermissions
PASSWD = "/etc/passwd"
_PASSWD_MAX = 16 << 20  # a passwd file larger than this is not read (the default HOME applies)


def env_value(env: list[str], name: str) -> str:
    """The value execve(2) would pass for `name` ("" when absent): the last entry wins, as in
    the dict Exec builds and in runc's populateProcessEnvironment (os.Setenv in order)."""
    value = ""
    for entry in env:
        key, eq, rest = entry.partition("=")
        if eq and key == name:
            value = rest
    return value


def passwd_home(uid: int, path: str = PASSWD) -> str:
    """The home directory of the first entry of `path` (an /etc/passwd) whose uid is `uid`, "/"
    when there is none or it is empty; the default, as runc's setupUser falls back to
    ExecUser{Home: "/"}, when the file is missing, unreadable or not a regular file (a FIFO in
    the rootfs would block the setup). Lines are name:password:uid:gid:gecos:home:shell."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return "/"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "/"
        data = bytearray()
        while len(data) < _PASSWD_MAX and (chunk := os.read(fd, 1 << 16)):
            data += chunk
    except OSError:
        return "/"
    finally:
        os.close(fd)
    want = str(uid).encode()
    for line in data.splitlines():
        fields = line.strip().split(b":")
        if len(fields) >= 6 and fields[2] == want:
            return fields[5].decode(errors="surrogateescape") or "/"
    return "/"


class Process(Stage):
    name = "process"
    side = CONTAINER
    summary = "set hostname, domainname, sysctls, rlimits and session keyring"

    def __init__(self, container_wide: bool = True) -> None:
        # False for `exec`: hostname, domainname and sysctls belong to the container, set once
        self.container_wide = container_wide

    def describe(self, ctx: Context) -> str:
        p = ctx.process
        spec, linux = (ctx.spec, ctx.linux) if self.container_wide else ({}, {})
        lines = [self.summary + "."]
        for key in ("hostname", "domainname"):
            if spec.get(key):
                lines.append(f"set{key}(2) {spec[key]!r} (config /{key}).")
        for k, v in (linux.get("sysctl") or {}).items():
            lines.append(f"sysctl {k} = {v} (config /linux/sysctl).")
        for r in p.get("rlimits") or []:
            lines.append(f"setrlimit {r['type']} soft={r['soft']} hard={r['hard']} (config /process/rlimits).")
        if not ctx.no_new_keyring:
            lines.append(f"join a new session keyring named {ctx.id!r}.")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        p = ctx.process
        spec, linux = (ctx.spec, ctx.linux) if self.container_wide else ({}, {})
        if spec.get("hostname"):
            self._do(ctx.sys.sethostname, (spec["hostname"],), "sethostname", spec["hostname"], "/hostname")
        if spec.get("domainname"):
            self._do(ctx.sys.setdomainname, (spec["domainname"],), "setdomainname",
                     spec["domainname"], "/domainname")
        for key, value in (linux.get("sysctl") or {}).items():
            path = "/proc/sys/" + key.replace(".", "/")
            ptr = "/linux/sysctl/" + key.replace("~", "~0").replace("/", "~1")
            self._do(ctx.sys.write_file, (path, value), "write", path, ptr)
        for i, r in enumerate(p.get("rlimits") or []):
            self._do(ctx.sys.setrlimit, (RLIMITS[r["type"]], r["soft"], r["hard"]), "setrlimit",
                     r["type"], f"/process/rlimits/{i}")
        if not ctx.no_new_keyring:
            try:
                ctx.sys.join_session_keyring(ctx.id)
            except OSError as e:
                # like runc: keyrings may be unavailable (ENOSYS) or refused (EACCES in a user ns)
                if e.errno not in (38, 13, 1):
                    raise StageError(self.name, "keyctl", "session keyring", e.errno or 0) from None

    def _do(self, fn, args: tuple, op: str, target: str, ptr: str) -> None:
        try:
            fn(*args)
        except OSError as e:
            raise StageError(self.name, op, target, e.errno or 0, ptr) from None


def stdio_to_chown(st: os.stat_result, flags: int, uid: int,
                   pty: tuple[int, int] | None) -> bool:
    """Whether a stdio fd (fstat `st`, open flags `flags`) goes to the process user `uid`, so
    that it can reopen /dev/stdout or write its tty by path.

    runc's fixStdioPermissions, narrowed to what the container owns or was handed: never when
    `uid` owns it already; pipes, sockets, and regular files open for writing (a log handed to
    the container; a file read as stdin keeps its owner); of character devices only the pty the
    `terminal` stage allocated, `pty` being its (st_dev, st_ino). Never a device the caller
    passed in: its terminal, /dev/null and /dev/zero are shared with the host (runc skips only
    /dev/null).
    """
    if st.st_uid == uid:
        return False
    mode = st.st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return True
    if stat.S_ISREG(mode):
        return flags & os.O_ACCMODE != os.O_RDONLY
    return stat.S_ISCHR(mode) and (st.st_dev, st.st_ino) == pty


class User(Process):
    name = "user"
    summary = "enter the cwd as root, switch to the container user (groups, gid, uid), set umask"

    def describe(self, ctx: Context) -> str:
        p, user = ctx.process, ctx.process.get("user") or {}
        return (f"{self.summary}.\n"
                f"fchown stdio to uid {user.get('uid', 0)} where it is a pipe, socket, file "
                f"written to or the container's own pty (never the caller's devices).\n"
                f"setgroups {user.get('additionalGids') or []}, setresgid {user.get('gid', 0)}, "
                f"setresuid {user.get('uid', 0)} (config /process/user).\n"
                f"umask {oct(user.get('umask', 0o022))} (config /process/user/umask), "
                f"chdir {p.get('cwd', '/')} (config /process/cwd) as root before the switch, "
                f"as the user after it if root may not (runc)."
                + ("" if env_value(p.get("env") or [], "HOME") else
                   f"\nHOME: none in config /process/env, so the home of uid "
                   f"{user.get('uid', 0)} in the container's {PASSWD}, else \"/\" (as runc)."))

    def run(self, ctx: Context, item: str = "") -> None:
        user = ctx.process.get("user") or {}
        uid, gid = user.get("uid", 0), user.get("gid", 0)
        groups = user.get("additionalGids") or []
        if not env_value(ctx.process.get("env") or [], "HOME"):
            # runc's setupUser: read as root, before the switch; Exec's handoff puts it in env
            ctx.notes["home"] = passwd_home(uid)
        self._hand_stdio(ctx, uid)
        cwd = ctx.process.get("cwd") or "/"
        # runc's finalizeNamespace: chdir as root first, so a cwd only root can enter works;
        # on EACCES/EPERM (root squashed on NFS, say) once more as the user, after the switch
        retry = self._chdir_as_root(ctx, cwd)
        if not has_new(ctx, "user") or groups:
            self._do(ctx.sys.setgroups, (groups,), "setgroups", str(groups), "/process/user/additionalGids")
        self._do(ctx.sys.setresgid, (gid, gid, gid), "setresgid", str(gid), "/process/user/gid")
        self._do(ctx.sys.setresuid, (uid, uid, uid), "setresuid", str(uid), "/process/user/uid")
        if ctx.fifo_fd >= 0 and uid != 0 and ctx.proc_fd < 0:
            # A uid change clears "dumpable", which makes the container's /proc/self/fd
            # root-only, and without a procfs handle (stage pivot) init reaches exec.fifo
            # through it; execve(2) recomputes the flag. A process `exec` adds meanwhile can
            # open /proc/1/exe, but that is the sealed copy of the interpreter
            # (runtime/linux/exeseal.py), not the host's file. With the handle, init stays
            # non-dumpable, as runc's does, and an exec'd process (no fifo) always.
            ctx.sys.prctl(PR_SET_DUMPABLE, 1)
        ctx.sys.umask(user.get("umask", 0o022))
        if retry:
            self._do(ctx.sys.chdir, (cwd,), "chdir", cwd, "/process/cwd")

    def _chdir_as_root(self, ctx: Context, cwd: str) -> bool:
        """chdir(2) before the user switch: False when done, True to retry after it (EACCES,
        EPERM: Go's os.IsPermission in runc); StageError for any other errno."""
        try:
            ctx.sys.chdir(cwd)
            return False
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                return True
            raise StageError(self.name, "chdir", cwd, e.errno or 0, "/process/cwd") from None

    def _hand_stdio(self, ctx: Context, uid: int) -> None:
        """fchown(2) stdio to the user before the switch, while CAP_CHOWN is ours (runc's
        fixStdioPermissions): only the owner; EINVAL, EPERM (an owner or uid this user
        namespace does not map) and EROFS leave it as it is, as in runc."""
        pty = ctx.notes.get("pty_inode")
        for fd in STDIO:
            try:
                if not stdio_to_chown(os.fstat(fd), ctx.sys.fd_flags(fd), uid, pty):
                    continue
                ctx.sys.fchown_user(fd, uid)
            except OSError as e:
                if e.errno not in (errno.EBADF, errno.EINVAL, errno.EPERM, errno.EROFS):
                    raise StageError(self.name, "fchown", f"fd {fd}", e.errno or 0,
                                     "/process/user/uid") from None
