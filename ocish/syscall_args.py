"""Decoding of the arguments of the syscalls that change a container's kernel state.

The tracer reads registers as raw numbers; this module turns them into what strace would print:
strings read from the tracee's memory, flag words split into names (MS_*, CLONE_*, O_*, PR_*,
MOUNT_ATTR_*, SECCOMP_*), capability numbers and capset's masks as CAP_* names, a setns fd as
the namespace it refers to, and `AT_FDCWD`. Only the calls in SIGNATURES are decoded (every
call the setup stages make); anything else gets hex arguments.
"""
from __future__ import annotations

import errno
import functools
import os
import resource
import signal
import stat
from typing import Callable

from runtime.linux import capabilities
from runtime.linux import syscalls as S


class Memory:
    """Reads a stopped tracee's memory through /proc/<pid>/mem (no PEEKDATA word loops)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)

    def read(self, addr: int, size: int) -> bytes:
        try:
            return os.pread(self.fd, size, addr)
        except OSError:
            return b""

    def cstring(self, addr: int, limit: int = 4096) -> bytes:
        out = b""
        while len(out) < limit:
            chunk = self.read(addr + len(out), min(256, 4096 - (addr + len(out)) % 4096))
            if not chunk:
                break
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
        return out[:limit]

    def words(self, addr: int, count: int, size: int = 8) -> list[int]:
        raw = self.read(addr, count * size)
        return [int.from_bytes(raw[i:i + size], "little") for i in range(0, len(raw) - size + 1, size)]

    def close(self) -> None:
        os.close(self.fd)


def _names(table: dict[str, int], prefix: str = "") -> list[tuple[str, int]]:
    return [(k, v) for k, v in table.items() if k.startswith(prefix) and v]


MOUNT_FLAGS = _names(vars(S), "MS_")
CLONE_NEW = _names(vars(S), "CLONE_NEW")
CLONE_FLAGS = CLONE_NEW + [
    ("CLONE_VM", 0x100), ("CLONE_FS", 0x200), ("CLONE_FILES", 0x400), ("CLONE_SIGHAND", 0x800),
    ("CLONE_PIDFD", 0x1000), ("CLONE_VFORK", 0x4000), ("CLONE_PARENT", 0x8000),
    ("CLONE_THREAD", 0x10000), ("CLONE_SYSVSEM", 0x40000), ("CLONE_SETTLS", 0x80000),
    ("CLONE_PARENT_SETTID", 0x100000), ("CLONE_CHILD_CLEARTID", 0x200000),
    ("CLONE_CHILD_SETTID", 0x1000000)]
UMOUNT_FLAGS = [("MNT_FORCE", 1), ("MNT_DETACH", 2), ("MNT_EXPIRE", 4), ("UMOUNT_NOFOLLOW", 8)]
OPEN_FLAGS = [(n, getattr(os, n)) for n in (
    "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_DSYNC", "O_DIRECTORY",
    "O_NOFOLLOW", "O_CLOEXEC", "O_PATH", "O_TMPFILE") if getattr(os, n, 0)]
PRCTL = {v: k for k, v in vars(S).items()
         if k.startswith("PR_") and not k.startswith("PR_CAP_AMBIENT_")}
PRCTL.update({22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP", 15: "PR_SET_NAME", 16: "PR_GET_NAME",
              3: "PR_GET_DUMPABLE", 7: "PR_GET_KEEPCAPS", 27: "PR_GET_SECUREBITS",
              28: "PR_SET_SECUREBITS", 37: "PR_GET_CHILD_SUBREAPER", 2: "PR_GET_PDEATHSIG"})
CAP_AMBIENT_OPS = {1: "PR_CAP_AMBIENT_IS_SET", 2: "PR_CAP_AMBIENT_RAISE",
                   3: "PR_CAP_AMBIENT_LOWER", 4: "PR_CAP_AMBIENT_CLEAR_ALL"}
SECUREBITS = [("SECBIT_NOROOT", 1), ("SECBIT_NOROOT_LOCKED", 2), ("SECBIT_NO_SETUID_FIXUP", 4),
              ("SECBIT_NO_SETUID_FIXUP_LOCKED", 8), ("SECBIT_KEEP_CAPS", 16),
              ("SECBIT_KEEP_CAPS_LOCKED", 32), ("SECBIT_NO_CAP_AMBIENT_RAISE", 64),
              ("SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED", 128)]
SECCOMP_MODES = {0: "SECCOMP_MODE_DISABLED", 1: "SECCOMP_MODE_STRICT", 2: "SECCOMP_MODE_FILTER"}
SECCOMP_FILTER_FLAGS = [("SECCOMP_FILTER_FLAG_TSYNC", 1), ("SECCOMP_FILTER_FLAG_LOG", 2),
                        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
                        ("SECCOMP_FILTER_FLAG_NEW_LISTENER", 8),
                        ("SECCOMP_FILTER_FLAG_TSYNC_ESRCH", 16),
                        ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32)]
SECCOMP_RET = {0x80000000: "SECCOMP_RET_KILL_PROCESS", 0: "SECCOMP_RET_KILL_THREAD",
               0x30000: "SECCOMP_RET_TRAP", 0x50000: "SECCOMP_RET_ERRNO",
               0x7FC00000: "SECCOMP_RET_USER_NOTIF", 0x7FF00000: "SECCOMP_RET_TRACE",
               0x7FFC0000: "SECCOMP_RET_LOG", 0x7FFF0000: "SECCOMP_RET_ALLOW"}
# <linux/mount.h>: mount_setattr(2)'s struct mount_attr and AT_* flags
MOUNT_ATTR = [("MOUNT_ATTR_RDONLY", 0x1), ("MOUNT_ATTR_NOSUID", 0x2), ("MOUNT_ATTR_NODEV", 0x4),
              ("MOUNT_ATTR_NOEXEC", 0x8), ("MOUNT_ATTR_NOATIME", 0x10),
              ("MOUNT_ATTR_STRICTATIME", 0x20), ("MOUNT_ATTR_NODIRATIME", 0x80),
              ("MOUNT_ATTR_IDMAP", 0x100000), ("MOUNT_ATTR_NOSYMFOLLOW", 0x200000)]
AT_FLAGS = [("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_NO_AUTOMOUNT", 0x800), ("AT_EMPTY_PATH", 0x1000),
            ("AT_RECURSIVE", 0x8000)]
PROPAGATION = {S.MS_PRIVATE: "MS_PRIVATE", S.MS_SLAVE: "MS_SLAVE", S.MS_SHARED: "MS_SHARED",
               S.MS_UNBINDABLE: "MS_UNBINDABLE"}
LINUX_CAPABILITY_VERSIONS = {0x19980330: "_LINUX_CAPABILITY_VERSION_1",
                             0x20071026: "_LINUX_CAPABILITY_VERSION_2",
                             0x20080522: "_LINUX_CAPABILITY_VERSION_3"}
# reverse order: where two names share a number (RLIMIT_OFILE), the usual one (RLIMIT_NOFILE) wins
RLIMITS = {v: k for k, v in sorted(vars(resource).items(), reverse=True) if k.startswith("RLIMIT_")}
SECCOMP_OPS = {0: "SECCOMP_SET_MODE_STRICT", 1: "SECCOMP_SET_MODE_FILTER",
               2: "SECCOMP_GET_ACTION_AVAIL", 3: "SECCOMP_GET_NOTIF_SIZES"}
KEYCTL_OPS = {0: "KEYCTL_GET_KEYRING_ID", 1: "KEYCTL_JOIN_SESSION_KEYRING"}
AT_FDCWD = -100


def flags(value: int, table: list[tuple[str, int]], low_bits: str = "") -> str:
    """"A|B|0x40" for the named bits of `value` (plus leftover bits in hex)."""
    parts, rest = [], value
    if low_bits == "access":
        parts.append(("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[value & 3])
        rest &= ~3
    for name, bit in table:
        if rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _quote(raw: bytes) -> str:
    text = raw.decode("utf-8", "backslashreplace")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _mode(v: int) -> str:
    kinds = {stat.S_IFCHR: "S_IFCHR", stat.S_IFBLK: "S_IFBLK", stat.S_IFIFO: "S_IFIFO",
             stat.S_IFREG: "S_IFREG", stat.S_IFSOCK: "S_IFSOCK", stat.S_IFDIR: "S_IFDIR"}
    kind = kinds.get(stat.S_IFMT(v))
    return f"{kind}|{v & 0o7777:04o}" if kind else f"{v:04o}"


# Each decoder gets (memory, all six raw args, index) -> text. A call whose arguments depend on
# each other (prctl) has one Shape for all of them instead.
Decoder = Callable[[Memory, list[int], int], str]
Shape = Callable[[Memory, list[int]], list[str]]


def _str(m: Memory, a: list[int], i: int) -> str:
    return "NULL" if a[i] == 0 else _quote(m.cstring(a[i]))


def _buf(m: Memory, a: list[int], i: int) -> str:  # a string whose length is the next argument
    return _quote(m.read(a[i], min(a[i + 1], 256)))


def _dirfd(m: Memory, a: list[int], i: int) -> str:
    v = _signed(a[i]) & 0xFFFFFFFF
    v = v - (1 << 32) if v >= 1 << 31 else v
    return "AT_FDCWD" if v == AT_FDCWD else str(v)


def _argv(m: Memory, a: list[int], i: int) -> str:
    items = []
    for ptr in m.words(a[i], 32):
        if ptr == 0:
            break
        items.append(_quote(m.cstring(ptr, 256)))
    return "[" + ", ".join(items) + "]"


def _gids(m: Memory, a: list[int], i: int) -> str:
    return "[" + ", ".join(str(g) for g in m.words(a[i], min(a[0], 64), 4)) + "]"


def _rlim(m: Memory, a: list[int], i: int) -> str:
    if a[i] == 0:
        return "NULL"
    cur, max_ = (m.words(a[i], 2) + [0, 0])[:2]
    show = lambda v: "RLIM_INFINITY" if v == 2**64 - 1 else str(v)  # noqa: E731
    return f"{{rlim_cur={show(cur)}, rlim_max={show(max_)}}}"


def _cap(m: Memory, a: list[int], i: int) -> str:
    return capabilities.name(a[i])


def _signame(m: Memory, a: list[int], i: int) -> str:
    try:
        return signal.Signals(a[i]).name
    except ValueError:
        return str(a[i])


def _nsfd(m: Memory, a: list[int], i: int) -> str:
    """A setns(2) fd as strace -y shows it: 5<net:[4026532008]>, read at entry."""
    fd = _signed(a[i])
    try:
        return f"{fd}<{os.readlink(f'/proc/{m.pid}/fd/{fd}')}>"
    except OSError:
        return str(fd)


def _clone_flags(m: Memory, a: list[int], i: int) -> str:
    """clone(2)'s flags: the low byte is the signal sent to the parent at exit."""
    exit_signal = a[i] & 0xFF
    text = flags(a[i] & ~0xFF, CLONE_FLAGS)
    if exit_signal:
        sig = _signame(m, [exit_signal], 0)
        text = sig if text == "0" else f"{text}|{sig}"
    return text


def _clone_args(m: Memory, a: list[int], i: int) -> str:
    """clone3(2)'s struct clone_args: {flags, exit_signal}."""
    words = m.words(a[i], 5)
    if len(words) < 5:
        return hex(a[i])
    return (f"{{flags={flags(words[0], CLONE_FLAGS)}, "
            f"exit_signal={_signame(m, [words[4]], 0) if words[4] else 0}}}")


def _capset_header(m: Memory, a: list[int], i: int) -> str:
    raw = m.read(a[i], 8)
    if len(raw) < 8:
        return hex(a[i])
    version, pid = int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:], "little", signed=True)
    return f"{{version={LINUX_CAPABILITY_VERSIONS.get(version, hex(version))}, pid={pid}}}"


def _capset_data(m: Memory, a: list[int], i: int) -> str:
    """Two struct __user_cap_data_struct (effective, permitted, inheritable: the low then
    the high 32 bits) as three sets of CAP_* names."""
    raw = m.read(a[i], 24)
    if len(raw) < 24:
        return hex(a[i])
    w = [int.from_bytes(raw[k:k + 4], "little") for k in range(0, 24, 4)]
    sets = {"effective": w[0] | w[3] << 32, "permitted": w[1] | w[4] << 32,
            "inheritable": w[2] | w[5] << 32}
    return "{" + ", ".join(f"{k}={'|'.join(capabilities.names(v)) or '0'}"
                           for k, v in sets.items()) + "}"


def _mount_attr(m: Memory, a: list[int], i: int) -> str:
    """struct mount_attr {u64 attr_set, attr_clr, propagation, userns_fd}."""
    words = m.words(a[i], 4)
    if len(words) < 4:
        return hex(a[i])
    prop = PROPAGATION.get(words[2], str(words[2]))
    return (f"{{attr_set={flags(words[0], MOUNT_ATTR)}, attr_clr={flags(words[1], MOUNT_ATTR)}, "
            f"propagation={prop}, userns_fd={_signed(words[3])}}}")


def _sock_fprog(m: Memory, addr: int) -> str:
    """struct sock_fprog {unsigned short len; struct sock_filter *filter}."""
    words = m.words(addr, 2)
    if len(words) < 2:
        return hex(addr)
    return f"{{len={words[0] & 0xFFFF}, filter={hex(words[1])}}}"


def _seccomp_args(m: Memory, a: list[int], i: int) -> str:
    """seccomp(2)'s third argument, by operation: the filter, or the action asked about."""
    if a[i] == 0:
        return "NULL"
    if a[0] == 1:  # SECCOMP_SET_MODE_FILTER
        return _sock_fprog(m, a[i])
    if a[0] == 2:  # SECCOMP_GET_ACTION_AVAIL
        action = (m.words(a[i], 1, 4) or [0])[0]
        return "[" + SECCOMP_RET.get(action, hex(action)) + "]"
    return hex(a[i])


def _prctl(m: Memory, a: list[int]) -> list[str]:
    """prctl(2)'s arguments as its option reads them (strace's shape): only those it uses."""
    op = PRCTL.get(a[0], str(a[0]))
    if op in ("PR_CAPBSET_DROP", "PR_CAPBSET_READ"):
        return [op, _cap(m, a, 1)]
    if op == "PR_CAP_AMBIENT":
        sub = CAP_AMBIENT_OPS.get(a[1], str(a[1]))
        return [op, sub] if sub == "PR_CAP_AMBIENT_CLEAR_ALL" else [op, sub, _cap(m, a, 2)]
    if op in ("PR_SET_KEEPCAPS", "PR_SET_NO_NEW_PRIVS", "PR_SET_DUMPABLE",
              "PR_SET_CHILD_SUBREAPER"):
        return [op, str(a[1])]
    if op == "PR_SET_PDEATHSIG":
        return [op, _signame(m, a, 1)]
    if op == "PR_SET_NAME":
        return [op, _str(m, a, 1)]
    if op == "PR_SET_SECUREBITS":
        return [op, flags(a[1], SECUREBITS)]
    if op == "PR_SET_SECCOMP":
        mode = SECCOMP_MODES.get(a[1], str(a[1]))
        return [op, mode] + ([_sock_fprog(m, a[2])] if a[1] == 2 else [])
    if op.startswith("PR_GET_"):
        return [op]
    rest = list(a[1:5])
    while rest and rest[-1] == 0:
        rest.pop()
    return [op] + [hex(v) for v in rest]


def _table(names: dict[int, str]) -> Decoder:
    return lambda m, a, i: names.get(a[i], str(a[i]))


def _bits(table: list[tuple[str, int]], low_bits: str = "") -> Decoder:
    return lambda m, a, i: flags(a[i], table, low_bits)


_int: Decoder = lambda m, a, i: str(_signed(a[i]))  # noqa: E731
_oct: Decoder = lambda m, a, i: f"{a[i]:04o}"  # noqa: E731
_hex: Decoder = lambda m, a, i: hex(a[i])  # noqa: E731
_mode_d: Decoder = lambda m, a, i: _mode(a[i])  # noqa: E731
_dev: Decoder = lambda m, a, i: f"makedev({os.major(a[i])}, {os.minor(a[i])})"  # noqa: E731

FSCONFIG_CMDS = {0: "FSCONFIG_SET_FLAG", 1: "FSCONFIG_SET_STRING", 2: "FSCONFIG_SET_BINARY",
                 3: "FSCONFIG_SET_PATH", 4: "FSCONFIG_SET_PATH_EMPTY", 5: "FSCONFIG_SET_FD",
                 6: "FSCONFIG_CMD_CREATE", 7: "FSCONFIG_CMD_RECONFIGURE",
                 8: "FSCONFIG_CMD_CREATE_EXCL"}


def _fsconfig(m: Memory, a: list[int]) -> list[str]:
    """fsconfig(fd, cmd, key, value, aux): key and value are strings for SET_STRING (value a
    pointer otherwise, NULL for the commands)."""
    cmd = FSCONFIG_CMDS.get(a[1], str(a[1]))
    value = _str(m, a, 3) if a[1] == 1 else hex(a[3]) if a[3] else "NULL"
    return [str(_signed(a[0])), cmd, _str(m, a, 2), value, str(_signed(a[4]))]


SIGNATURES: dict[str, list[Decoder] | Shape] = {
    "mount": [_str, _str, _str, _bits(MOUNT_FLAGS), _str],
    "umount2": [_str, _bits(UMOUNT_FLAGS)],
    "pivot_root": [_str, _str],
    "unshare": [_bits(CLONE_FLAGS)],
    "setns": [_nsfd, _bits(CLONE_NEW)],
    "clone": [_clone_flags],
    "clone3": [_clone_args],
    "fork": [],
    "vfork": [],
    "sethostname": [_buf, _int],
    "setdomainname": [_buf, _int],
    "capset": [_capset_header, _capset_data],
    "prctl": _prctl,
    "seccomp": [_table(SECCOMP_OPS), _bits(SECCOMP_FILTER_FLAGS), _seccomp_args],
    "mount_setattr": [_dirfd, _str, _bits(AT_FLAGS), _mount_attr, _int],
    "setsid": [],
    "close": [_int],
    "setuid": [_int], "setgid": [_int],
    "setresuid": [_int, _int, _int], "setresgid": [_int, _int, _int],
    "setgroups": [_int, _gids],
    "setrlimit": [_table(RLIMITS), _rlim],
    "prlimit64": [_int, _table(RLIMITS), _rlim, _hex],
    "mknod": [_str, _mode_d, _dev],
    "mknodat": [_dirfd, _str, _mode_d, _dev],
    "symlink": [_str, _str],
    "symlinkat": [_str, _dirfd, _str],
    "chdir": [_str], "fchdir": [_int], "chroot": [_str],
    "umask": [_oct],
    "keyctl": [_table(KEYCTL_OPS), _str],
    "execve": [_str, _argv, _hex],
    "execveat": [_dirfd, _str, _argv, _hex, _hex],
    "mkdir": [_str, _oct], "mkdirat": [_dirfd, _str, _oct],
    # the new mount API (fsopen, fsconfig, fsmount, move_mount, open_tree): a mount made so
    "fsopen": [_str, _hex],
    "fsconfig": _fsconfig,
    "fsmount": [_int, _hex, _bits(MOUNT_ATTR)],
    "move_mount": [_dirfd, _str, _dirfd, _str, _hex],
    "open_tree": [_dirfd, _str, _hex],
    "openat": [_dirfd, _str, _bits(OPEN_FLAGS, "access"), _oct],
    "open": [_str, _bits(OPEN_FLAGS, "access"), _oct],
}
# Calls that only read state: a prlimit64 without a new limit, a prctl that asks.
_READ_ONLY_PRCTL = {o for o, n in PRCTL.items() if n.startswith("PR_GET_") or n == "PR_CAPBSET_READ"}


@functools.cache
def syscall_names() -> dict[int, str]:
    """Native syscall number -> name: libseccomp's (the kernel's names, the newest calls too),
    else python-ptrace's table (it stops at 440 and says `timerfd` for timerfd_create). One
    table for `trace`, `inspect seccomp` and `seccomp check|explain`."""
    from ptrace.syscall import SYSCALL_NAMES
    from runtime.linux import seccomp
    return {**SYSCALL_NAMES, **{n: name for n in range(512) if (name := seccomp.syscall_name(n))}}


def interesting(name: str, args: list[int], mem: Memory) -> bool:
    """Whether a call changes the container's kernel state (the rest is interpreter noise, and
    reads: `trace all` shows those). An open counts when it may write (a /proc or /sys knob,
    exec.fifo) or create."""
    if name in ("openat", "open"):
        i = 1 if name == "openat" else 0
        mode = args[i + 1]
        return not mode & os.O_DIRECTORY and bool(mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
    if name == "prlimit64":
        return args[2] != 0
    if name == "prctl":
        return args[0] not in _READ_ONLY_PRCTL
    if name in ("mkdir", "mkdirat"):  # mount destinations made as `mkdir -p` makes them,
        return False                  # most refused with EEXIST: noise here, `trace all` shows
    return name in SIGNATURES


def decode(name: str, args: list[int], mem: Memory) -> list[str]:
    """The call's arguments as text; calls not in SIGNATURES get their first three in hex."""
    decoders = SIGNATURES.get(name)
    if decoders is None:
        return [hex(a) for a in args[:3]]
    if callable(decoders):
        return decoders(mem, args)
    return [d(mem, args, i) for i, d in enumerate(decoders)]


def result_text(rval: int, is_error: bool, call: str = "") -> tuple[str, str]:
    """(shown result, errno name or "")."""
    if is_error:
        err = -rval
        name = errno.errorcode.get(err, str(err))
        return f"-1 {name} ({os.strerror(err).lower()})", name
    return (f"{rval:04o}" if call == "umask" else str(rval)), ""
