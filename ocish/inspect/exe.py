"""exe: the program the process runs as the kernel loaded it: /proc/<pid>/exe, its ELF header
(entry point, PT_INTERP), where it and its interpreter were mapped (/proc/<pid>/maps, and the
auxiliary vector's AT_ENTRY and AT_BASE), and every file mapped. At `catch exec` this is the
process before its first instruction: only the program and its loader are mapped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ocish import elf
from ocish.inspect import Target, auxv


@dataclass
class Mapping:
    path: str       # the file (as the host sees it), or [stack], [vdso] ...
    start: int      # lowest address mapped from it
    end: int        # highest address, exclusive
    perms: str      # the union of its mappings' permissions, as maps writes them (r-xp ...)
    regions: int    # how many maps lines


@dataclass
class Exe:
    pid: int
    path: str                       # readlink /proc/PID/exe (inside the container's root)
    elf: str                        # "ELF 64-bit x86_64, statically linked" (ocish.elf)
    e_entry: int                    # the ELF header's entry point
    entry: int                      # AT_ENTRY: where the kernel starts the program
    load_base: int                  # where the program's first mapping starts
    interpreter: str                # PT_INTERP ("" for a static program)
    interpreter_base: int           # AT_BASE: where the kernel mapped the interpreter (0: none)
    mapped: list[Mapping] = field(default_factory=list)
    error: str = ""                 # why the ELF header could not be read


def read(t: Target) -> Exe:
    """Raises OSError when the process is gone."""
    path = os.readlink(f"/proc/{t.pid}/exe")
    vector = auxv.read(t)
    mapped = _maps(t.pid)
    try:
        info = elf.read(f"/proc/{t.pid}/exe")
        described, e_entry, interp, err = info.describe(), info.entry, info.interpreter or "", ""
    except (OSError, ValueError) as e:
        described, e_entry, interp, err = "?", 0, "", str(e)
    base = min((m.start for m in mapped if m.path == path), default=0)  # maps names it alike
    return Exe(t.pid, path, described, e_entry, auxv.value(vector, "AT_ENTRY") or 0, base,
               interp, auxv.value(vector, "AT_BASE") or 0, mapped, err)


def _maps(pid: int) -> list[Mapping]:
    """/proc/PID/maps grouped by what is mapped, in address order; anonymous regions left out."""
    by_path: dict[str, Mapping] = {}
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            path = parts[5].rstrip("\n")
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            m = by_path.get(path)
            if m is None:
                by_path[path] = Mapping(path, lo, hi, parts[1], 1)
                continue
            m.start, m.end, m.regions = min(m.start, lo), max(m.end, hi), m.regions + 1
            m.perms = "".join(c if c != "-" else p for c, p in zip(m.perms, parts[1]))
    return sorted(by_path.values(), key=lambda m: m.start)
