"""Read what execve(2) and the dynamic loader read from an ELF file, without running anything.

`read(path)` parses the ELF header (class, byte order, type, machine), the program headers
(PT_INTERP: the loader the kernel maps; PT_LOAD: to turn addresses into file offsets) and the
dynamic section (DT_NEEDED libraries, DT_RPATH and DT_RUNPATH search paths), the way
`readelf -h -l -d` shows them. `bundle init` uses it to tell a static busybox from a dynamic one;
`diagnose` to explain why a program cannot run inside a rootfs (another architecture, a loader
or a library that is not there).
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 1, 5, 15, 29
ET_EXEC, ET_DYN = 2, 3

# e_machine values (<elf.h>) of the architectures containers are built for
MACHINES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
            62: "x86_64", 183: "aarch64", 243: "riscv64", 258: "loongarch64"}
# os.uname().machine -> e_machine
UNAME_MACHINES = {"x86_64": 62, "amd64": 62, "i386": 3, "i686": 3, "aarch64": 183, "arm64": 183,
                  "armv7l": 40, "armv6l": 40, "ppc64le": 21, "ppc64": 21, "s390x": 22,
                  "riscv64": 243, "loongarch64": 258, "mips": 8, "mips64": 8}
# the Debian multiarch triplet of each (class, machine): where its libraries live
TRIPLETS = {(64, 62): "x86_64-linux-gnu", (32, 3): "i386-linux-gnu",
            (64, 183): "aarch64-linux-gnu", (32, 40): "arm-linux-gnueabihf",
            (64, 21): "powerpc64le-linux-gnu", (64, 22): "s390x-linux-gnu",
            (64, 243): "riscv64-linux-gnu"}
_MAX_DYNAMIC = 4096   # entries read from the dynamic section at most


@dataclass
class Elf:
    bits: int                       # 32 or 64 (EI_CLASS)
    little: bool                    # EI_DATA: little-endian
    type: int                       # e_type: ET_EXEC, ET_DYN ...
    machine: int                    # e_machine
    interpreter: str | None = None  # PT_INTERP: None for a static executable
    needed: list[str] = field(default_factory=list)   # DT_NEEDED, in order
    rpath: list[str] = field(default_factory=list)    # DT_RPATH entries
    runpath: list[str] = field(default_factory=list)  # DT_RUNPATH entries
    entry: int = 0                  # e_entry: where execution starts (plus the load base, for PIE)

    @property
    def machine_name(self) -> str:
        return MACHINES.get(self.machine, f"machine {self.machine}")

    def describe(self) -> str:
        """"ELF 64-bit x86_64, dynamic (/lib64/ld-linux-x86-64.so.2)", like file(1), shorter."""
        if self.interpreter:
            how = f"dynamically linked, loader {self.interpreter}"
        elif self.type == ET_DYN:
            how = "shared object without a loader (a library, or static-pie)"
        else:
            how = "statically linked"
        return f"ELF {self.bits}-bit {self.machine_name}, {how}"


def host_machine() -> int:
    """The e_machine of this kernel's native programs (0 when unknown)."""
    return UNAME_MACHINES.get(os.uname().machine, 0)


def is_elf(head: bytes) -> bool:
    return head[:4] == MAGIC


def read(path: str) -> Elf:
    """Parse the ELF file at `path`. Raises OSError when it cannot be read, ValueError when it is
    not a well-formed ELF file (with the reason: "not an ELF file", "truncated ELF header" ...)."""
    with open(path, "rb") as f:
        return _parse(f)


def _parse(f) -> Elf:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != MAGIC:
        raise ValueError("not an ELF file")
    klass, data = ident[4], ident[5]
    if klass not in (1, 2) or data not in (1, 2):
        raise ValueError("unknown ELF class or byte order")
    end = "<" if data == 1 else ">"
    if klass == 2:  # ELF64: e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize ...
        hdr = f.read(48)
        if len(hdr) < 48:
            raise ValueError("truncated ELF header")
        e_type, machine = struct.unpack_from(end + "HH", hdr, 0)
        entry, phoff = struct.unpack_from(end + "QQ", hdr, 8)
        phentsize, phnum = struct.unpack_from(end + "HH", hdr, 38)
        ph_fmt, min_entsize = end + "IIQQQQQQ", 56   # type flags offset vaddr paddr filesz ...
        dyn_fmt = end + "qQ"
    else:           # ELF32
        hdr = f.read(36)
        if len(hdr) < 36:
            raise ValueError("truncated ELF header")
        e_type, machine = struct.unpack_from(end + "HH", hdr, 0)
        entry, phoff = struct.unpack_from(end + "II", hdr, 8)
        phentsize, phnum = struct.unpack_from(end + "HH", hdr, 26)
        ph_fmt, min_entsize = end + "IIIIIIII", 32   # type offset vaddr paddr filesz ...
        dyn_fmt = end + "iI"
    elf = Elf(64 if klass == 2 else 32, data == 1, e_type, machine, entry=entry)
    if phnum == 0:
        return elf
    if phentsize < min_entsize or phnum == 0xFFFF:   # PN_XNUM is never used by executables
        raise ValueError("bad ELF program header table")
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        raise ValueError("truncated ELF program header table")
    loads, dynamic = [], None
    for i in range(phnum):
        ph = struct.unpack_from(ph_fmt, table, i * phentsize)
        if klass == 2:
            p_type, p_offset, p_vaddr, p_filesz = ph[0], ph[2], ph[3], ph[5]
        else:
            p_type, p_offset, p_vaddr, p_filesz = ph[0], ph[1], ph[2], ph[4]
        if p_type == PT_INTERP:
            f.seek(p_offset)
            raw = f.read(p_filesz)
            elf.interpreter = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is not None:
        _dynamic(f, elf, dynamic, dyn_fmt, loads)
    return elf


def _dynamic(f, elf: Elf, where: tuple[int, int], fmt: str, loads: list) -> None:
    """Fill needed/rpath/runpath from the dynamic section; its strings live in DT_STRTAB, an
    address that a PT_LOAD segment maps to a file offset."""
    size = struct.calcsize(fmt)
    f.seek(where[0])
    raw = f.read(min(where[1], size * _MAX_DYNAMIC))
    tags: list[tuple[int, int]] = []
    for off in range(0, len(raw) - size + 1, size):
        tag, val = struct.unpack_from(fmt, raw, off)
        if tag == DT_NULL:
            break
        tags.append((tag, val))
    strtab = next((v for t, v in tags if t == DT_STRTAB), None)
    if strtab is None:
        return
    base = next((off + strtab - va for va, off, sz in loads if va <= strtab < va + sz), None)
    if base is None:
        raise ValueError("DT_STRTAB is outside every PT_LOAD segment")

    def string(offset: int) -> str:
        f.seek(base + offset)
        return f.read(4096).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    for tag, val in tags:
        if tag == DT_NEEDED:
            elf.needed.append(string(val))
        elif tag == DT_RPATH:
            elf.rpath += [p for p in string(val).split(":") if p]
        elif tag == DT_RUNPATH:
            elf.runpath += [p for p in string(val).split(":") if p]
