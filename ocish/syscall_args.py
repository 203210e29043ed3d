"""Decoding of the arguments of the syscalls that change a container's kernel state.

The tracer reads registers as raw numbers; this module turns them into what strace would print:
strings read from the tracee's memory, flag words split into names (MS_*, CLONE_*, O_*, PR_*),
and `AT_FDCWD`. Only the calls in SIGNATURES are decoded; anything else gets hex arguments.
"""
from __future__ import annotations

import errno
import os
import resource
import stat
from typing import Callable

from runtime.linux import syscalls as S


class Memory:
    """Reads a stopped tracee's memory through /proc/<pid>/mem (no PEEKDATA word loops)."""

    def __init__(self, pid: int) -> None:
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
CLONE_FLAGS = _names(vars(S), "CLONE_NEW") + [
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
PRCTL.update({22: "PR_SET_SECCOMP", 21: "PR_GET_SECCOMP", 15: "PR_SET_NAME", 16: "PR_GET_NAME"})
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


# Each decoder gets (memory, all six raw args, index) -> text.
Decoder = Callable[[Memory, list[int], int], str]


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


def _table(names: dict[int, str]) -> Decoder:
    return lambda m, a, i: names.get(a[i], str(a[i]))


def _bits(table: list[tuple[str, int]], low_bits: str = "") -> Decoder:
    return lambda m, a, i: flags(a[i], table, low_bits)


_int: Decoder = lambda m, a, i: str(_signed(a[i]))  # noqa: E731
_oct: Decoder = lambda m, a, i: f"{a[i]:04o}"  # noqa: E731
_hex: Decoder = lambda m, a, i: hex(a[i])  # noqa: E731
_mode_d: Decoder = lambda m, a, i: _mode(a[i])  # noqa: E731
_dev: Decoder = lambda m, a, i: f"makedev({os.major(a[i])}, {os.minor(a[i])})"  # noqa: E731

SIGNATURES: dict[str, list[Decoder]] = {
    "mount": [_str, _str, _str, _bits(MOUNT_FLAGS), _str],
    "umount2": [_str, _bits(UMOUNT_FLAGS)],
    "pivot_root": [_str, _str],
    "unshare": [_bits(CLONE_FLAGS)],
    "setns": [_int, _bits(CLONE_FLAGS)],
    "clone": [_bits(CLONE_FLAGS)],
    "clone3": [_hex],
    "fork": [],
    "vfork": [],
    "sethostname": [_buf, _int],
    "setdomainname": [_buf, _int],
    "capset": [_hex, _hex],
    "prctl": [_table(PRCTL), _hex, _hex, _hex, _hex],
    "seccomp": [_table(SECCOMP_OPS), _hex, _hex],
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
    "openat": [_dirfd, _str, _bits(OPEN_FLAGS, "access"), _oct],
    "open": [_str, _bits(OPEN_FLAGS, "access"), _oct],
}
# Calls that only read state: a prlimit64 without a new limit, a prctl that asks.
_READ_ONLY_PRCTL = {o for o, n in PRCTL.items() if n.startswith("PR_GET_") or n == "PR_CAPBSET_READ"}


def interesting(name: str, args: list[int], mem: Memory) -> bool:
    """Whether a call changes the container's kernel state (the rest is interpreter noise)."""
    if name in ("openat", "open"):
        i = 1 if name == "openat" else 0
        mode = args[i + 1]
        if mode & os.O_DIRECTORY:
            return False
        path = mem.cstring(args[i], 64)
        return path.startswith((b"/proc/", b"/sys/")) or bool(mode & (os.O_WRONLY | os.O_RDWR))
    if name == "prlimit64":
        return args[2] != 0
    if name == "prctl":
        return args[0] not in _READ_ONLY_PRCTL
    return name in SIGNATURES


def decode(name: str, args: list[int], mem: Memory) -> list[str]:
    decoders = SIGNATURES.get(name)
    if decoders is None:
        return [hex(a) for a in args[:3]]
    return [d(mem, args, i) for i, d in enumerate(decoders)]


def result_text(rval: int, is_error: bool, call: str = "") -> tuple[str, str]:
    """(shown result, errno name or "")."""
    if is_error:
        err = -rval
        name = errno.errorcode.get(err, str(err))
        return f"-1 {name} ({os.strerror(err).lower()})", name
    return (f"{rval:04o}" if call == "umask" else str(rval)), ""
