"""Capabilities: the five sets of /proc/<pid>/status, decoded to CAP_ names."""
from __future__ import annotations

from dataclasses import dataclass

from ocish.inspect import Target
from ocish.inspect.status import read_status

# <linux/capability.h>, in bit order
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
SETS = (("CapInh", "inheritable"), ("CapPrm", "permitted"), ("CapEff", "effective"),
        ("CapBnd", "bounding"), ("CapAmb", "ambient"))


@dataclass
class CapSet:
    name: str
    mask: str          # as the kernel prints it, 16 hex digits
    caps: list[str]


@dataclass
class Caps:
    sets: list[CapSet]


def decode(mask: int) -> list[str]:
    return [CAP_NAMES[b] if b < len(CAP_NAMES) else f"cap_{b}"
            for b in range(64) if mask >> b & 1]


def read(t: Target) -> Caps:
    st = read_status(t.pid)
    return Caps([CapSet(name, st[key], decode(int(st[key], 16))) for key, name in SETS])
