"""auxv: the ELF auxiliary vector the kernel passed to the program at its execve
(/proc/<pid>/auxv, getauxval(3)), with AT_* names and the strings it points to.

Pairs of native unsigned longs, AT_NULL last (include/uapi/linux/auxvec.h and the
architecture's asm/auxvec.h). AT_EXECFN, AT_PLATFORM and AT_BASE_PLATFORM point to strings
in the process's memory, read through /proc/<pid>/mem; best read at `catch exec`, before the
program could change them.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ocish.inspect import Target

AT_NAMES = {
    1: "AT_IGNORE", 2: "AT_EXECFD", 3: "AT_PHDR", 4: "AT_PHENT", 5: "AT_PHNUM", 6: "AT_PAGESZ",
    7: "AT_BASE", 8: "AT_FLAGS", 9: "AT_ENTRY", 10: "AT_NOTELF", 11: "AT_UID", 12: "AT_EUID",
    13: "AT_GID", 14: "AT_EGID", 15: "AT_PLATFORM", 16: "AT_HWCAP", 17: "AT_CLKTCK",
    23: "AT_SECURE", 24: "AT_BASE_PLATFORM", 25: "AT_RANDOM", 26: "AT_HWCAP2",
    27: "AT_RSEQ_FEATURE_SIZE", 28: "AT_RSEQ_ALIGN", 29: "AT_HWCAP3", 30: "AT_HWCAP4",
    31: "AT_EXECFN", 32: "AT_SYSINFO", 33: "AT_SYSINFO_EHDR", 51: "AT_MINSIGSTKSZ",
}
STRINGS = ("AT_EXECFN", "AT_PLATFORM", "AT_BASE_PLATFORM")
# shown in decimal; the others (addresses, bit masks) in hex
DECIMAL = ("AT_PHENT", "AT_PHNUM", "AT_PAGESZ", "AT_UID", "AT_EUID", "AT_GID", "AT_EGID",
           "AT_CLKTCK", "AT_SECURE", "AT_EXECFD", "AT_RSEQ_FEATURE_SIZE", "AT_RSEQ_ALIGN",
           "AT_MINSIGSTKSZ", "AT_NOTELF")


@dataclass
class AuxEntry:
    name: str       # AT_ENTRY, or AT_<number> for a type this table does not know
    value: int
    text: str       # as shown: decimal, 0x hex, or the string it points to


def read(t: Target) -> list[AuxEntry]:
    """The auxiliary vector of `t.pid`; raises OSError when the process is gone."""
    with open(f"/proc/{t.pid}/auxv", "rb") as f:
        raw = f.read()
    size = struct.calcsize("L")
    out = []
    for off in range(0, len(raw) - 2 * size + 1, 2 * size):
        key, value = struct.unpack_from("LL", raw, off)
        if key == 0:  # AT_NULL
            break
        name = AT_NAMES.get(key, f"AT_{key}")
        if name in STRINGS:
            text = _string(t.pid, value)
        elif name in DECIMAL:
            text = str(value)
        else:
            text = hex(value)
        out.append(AuxEntry(name, value, text))
    return out


def _string(pid: int, address: int, limit: int = 4096) -> str:
    """The NUL-terminated string at `address` in pid's memory; "?" when it cannot be read."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return "?"
    try:
        raw = os.pread(fd, limit, address)
    except OSError:
        return "?"
    finally:
        os.close(fd)
    return raw.split(b"\0", 1)[0].decode(errors="backslashreplace")


def value(entries: list[AuxEntry], name: str) -> int | None:
    """The value of AT_ name `name`, None when the vector has no such entry."""
    return next((e.value for e in entries if e.name == name), None)
