"""Linux capabilities: the name table, masks, capget(2)/capset(2), bounding and ambient sets.

Container-side code calls these after pivot_root, so libc is loaded and every module imported
here at import time (as in `runtime.linux.syscalls`, whose prctl(2) wrapper and PR_* constants
this module reuses). Everything raises OSError(errno) like the os module; the name lookups
raise KeyError. Config mistakes (an unknown name at /process/capabilities/...) are
runtime/spec.py's to report (cap_masks).

How a container's sets are applied (runc's order, see runtime.stages.security):

    drop the bounding set (needs CAP_SETPCAP)      drop_bounding(mask)
    PR_SET_KEEPCAPS 1                              set_keepcaps(True)
    setresuid(uid)  (stage `process`)              permitted survives a switch away from uid 0
    PR_SET_KEEPCAPS 0                              set_keepcaps(False)
    capset(effective, permitted, inheritable)      capset(eff, prm, inh)
    ambient: clear all, raise each                 ambient_clear(); ambient_raise(cap)
"""
from __future__ import annotations

import ctypes
import os

from runtime.linux.syscalls import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL,
                                    PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP, PR_CAPBSET_READ,
                                    PR_GET_NO_NEW_PRIVS, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS,
                                    prctl)

_libc = ctypes.CDLL(None, use_errno=True)

# <linux/capability.h>, in bit order: NAMES[n] is capability number n.
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: n for n, name in enumerate(NAMES)}
CAP_SETPCAP = NUMBERS["CAP_SETPCAP"]
CAP_SYS_ADMIN = NUMBERS["CAP_SYS_ADMIN"]

SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def _read_last_cap() -> int:
    """The kernel's highest capability number; read once, at import (before pivot_root)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


LAST_CAP = _read_last_cap()
ALL = (1 << (LAST_CAP + 1)) - 1  # every capability this kernel knows


# ---------------------------------------------------------------------------------------------
# names and masks (pure)

def number(name: str) -> int:
    """CAP_KILL -> 5; KeyError for unknown names."""
    return NUMBERS[name]


def name(n: int) -> str:
    """5 -> CAP_KILL; numbers beyond the table (a newer kernel) read "cap_41"."""
    return NAMES[n] if 0 <= n < len(NAMES) else f"cap_{n}"


def names(mask: int) -> list[str]:
    """The names of the bits set in mask, lowest first."""
    out, n = [], 0
    while mask >> n:
        if mask >> n & 1:
            out.append(name(n))
        n += 1
    return out


def to_mask(cap_names) -> int:
    """A list of CAP_ names -> bit mask; KeyError for an unknown name (runtime/spec.py names
    config mistakes). Names that exist but that this kernel lacks (above cap_last_cap) are left
    out, as runc does."""
    mask = 0
    for c in cap_names:
        n = NUMBERS[c]
        if n <= LAST_CAP:
            mask |= 1 << n
    return mask


def unsupported(caps: dict) -> list[str]:
    """Known capability names in `caps` that this kernel does not have (runc warns and skips)."""
    out = []
    for s in SETS:
        for c in caps.get(s) or ():
            if NUMBERS.get(c, -1) > LAST_CAP and c not in out:
                out.append(c)
    return out


def from_hex(text: str) -> int:
    """A CapEff-style hex string from /proc/<pid>/status -> mask."""
    return int(text, 16)


def to_hex(mask: int) -> str:
    """mask -> the 16-digit form /proc/<pid>/status uses."""
    return f"{mask:016x}"


# ---------------------------------------------------------------------------------------------
# capget(2) / capset(2), version 3: two 32-bit words per set

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_Data2 = _Data * 2
_capget = _libc.capget
_capget.argtypes = (ctypes.POINTER(_Header), ctypes.POINTER(_Data))
_capget.restype = ctypes.c_int
_capset = _libc.capset
_capset.argtypes = (ctypes.POINTER(_Header), ctypes.POINTER(_Data))
_capset.restype = ctypes.c_int


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return ret


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) masks of pid (0: this thread)."""
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, pid)
    data = _Data2()
    _check(_capget(ctypes.byref(hdr), data), "capget")
    return tuple(getattr(data[0], k) | getattr(data[1], k) << 32
                 for k in ("effective", "permitted", "inheritable"))  # type: ignore[return-value]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    lo, hi = 0xFFFFFFFF, 32
    data = _Data2(_Data(effective & lo, permitted & lo, inheritable & lo),
                  _Data(effective >> hi & lo, permitted >> hi & lo, inheritable >> hi & lo))
    _check(_capset(ctypes.byref(hdr), data), "capset")


# ---------------------------------------------------------------------------------------------
# bounding, ambient, keepcaps, no_new_privs (prctl)

def bounding() -> int:
    """This thread's bounding set as a mask."""
    mask = 0
    for n in range(LAST_CAP + 1):
        if prctl(PR_CAPBSET_READ, n) == 1:
            mask |= 1 << n
    return mask


def drop_bounding(keep: int) -> int:
    """Drop every capability not in `keep` from the bounding set; returns the mask dropped.

    Capabilities not in the set already are skipped (dropping them is a no-op for the kernel)."""
    dropped = 0
    for n in range(LAST_CAP + 1):
        if keep >> n & 1 or prctl(PR_CAPBSET_READ, n) != 1:
            continue
        try:
            prctl(PR_CAPBSET_DROP, n)
        except OSError as e:
            raise OSError(e.errno, e.strerror, name(n)) from None
        dropped |= 1 << n
    return dropped


def ambient_clear() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def ambient_raise(n: int) -> None:
    """EPERM when n is not both permitted and inheritable (the kernel's rule)."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)


def set_keepcaps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def no_new_privs() -> bool:
    return prctl(PR_GET_NO_NEW_PRIVS) == 1


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """{"CapInh": mask, "CapPrm": ..., "CapEff": ..., "CapBnd": ..., "CapAmb": ...,
    "NoNewPrivs": 0|1, "Seccomp": mode} from /proc/<pid>/status (for the debugger and tests)."""
    want = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in want:
                value = value.strip()
                out[key] = int(value, 16) if key.startswith("Cap") else int(value)
    return out
