"""A classic-BPF disassembler for seccomp filters: one mnemonic line per instruction.

The listing follows the kernel's bpf_dbg style (`ld [0]`, `jeq #59 jt 3 jf 4`, `ret #0x7fff0000`)
and annotates what the seccomp_data offsets mean (nr, arch, args), the syscall a `jeq` compares
against when the accumulator holds the syscall number, and the action a `ret` returns.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass

AUDIT_ARCHES = {0xC000003E: "AUDIT_ARCH_X86_64", 0x40000003: "AUDIT_ARCH_I386",
                0xC00000B7: "AUDIT_ARCH_AARCH64", 0x40000028: "AUDIT_ARCH_ARM",
                0xC00000F3: "AUDIT_ARCH_RISCV64", 0x80000016: "AUDIT_ARCH_S390X",
                0xC0000015: "AUDIT_ARCH_PPC64LE"}
ACTIONS = {0x80000000: "KILL_PROCESS", 0x00000000: "KILL_THREAD", 0x00030000: "TRAP",
           0x00050000: "ERRNO", 0x7FC00000: "USER_NOTIF", 0x7FF00000: "TRACE",
           0x7FFC0000: "LOG", 0x7FFF0000: "ALLOW"}
X32_SYSCALL_BIT = 0x40000000
_NR_NOTES = {X32_SYSCALL_BIT: "x32 syscall bit", 0xFFFFFFFF: "nr -1 (no syscall)"}
_ALU = {0x00: "add", 0x10: "sub", 0x20: "mul", 0x30: "div", 0x40: "or", 0x50: "and",
        0x60: "lsh", 0x70: "rsh", 0x80: "neg", 0x90: "mod", 0xA0: "xor"}
_JMP = {0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset"}
_SIZE = {0x00: "", 0x08: "h", 0x10: "b"}


@dataclass
class Insn:
    code: int
    jt: int
    jf: int
    k: int


def field_name(offset: int) -> str:
    """What a load at this offset of struct seccomp_data reads."""
    if offset == 0:
        return "nr"
    if offset == 4:
        return "arch"
    if offset in (8, 12):
        return "instruction_pointer" + ("" if offset == 8 else " (high)")
    if 16 <= offset < 64:
        i, high = divmod(offset - 16, 8)
        return f"args[{i}]" + (" (high)" if high else "")
    return ""


def action(k: int) -> str:
    act = ACTIONS.get(k & 0xFFFF0000, "")
    data = k & 0xFFFF
    if act == "ERRNO":
        return f"ERRNO({data}) {errno.errorcode.get(data, '')}".rstrip()
    if act in ("TRACE", "TRAP") and data:
        return f"{act}({data})"
    return act or hex(k)


def disassemble(prog: list[Insn], syscall_names: dict[int, str] | None = None) -> list[str]:
    names = syscall_names or {}
    out = []
    holds = ""  # what the accumulator was last loaded with, for annotations
    for pc, ins in enumerate(prog):
        code, k = ins.code, ins.k
        cls = code & 0x07
        note = ""
        if cls == 0x00:  # ld
            mode = code & 0xE0
            op = "ld" + _SIZE.get(code & 0x18, "")
            if mode == 0x20:
                text, holds = f"{op} [{k}]", field_name(k)
                note = holds
            elif mode == 0x00:
                text, holds = f"{op} #{k:#x}", ""
            elif mode == 0x80:
                text, holds = f"{op} len", "len"
            elif mode == 0x60:
                text, holds = f"{op} M[{k}]", ""
            else:
                text, holds = f"{op} [x + {k}]", ""
        elif cls == 0x01:  # ldx
            mode = code & 0xE0
            text = f"ldx #{k:#x}" if mode == 0 else f"ldx M[{k}]" if mode == 0x60 else "ldx len"
        elif cls == 0x02:
            text = f"st M[{k}]"
        elif cls == 0x03:
            text = f"stx M[{k}]"
        elif cls == 0x04:  # alu
            op = _ALU.get(code & 0xF0, f"alu{code:#x}")
            text = "neg" if op == "neg" else f"{op} " + ("x" if code & 0x08 else f"#{k:#x}")
            holds = "" if op != "and" else holds
        elif cls == 0x05:  # jmp
            op = code & 0xF0
            if op == 0x00:
                text = f"ja {pc + 1 + k:04d}"
            else:
                small_nr = holds == "nr" and k < X32_SYSCALL_BIT
                src = "x" if code & 0x08 else (f"#{k}" if small_nr else f"#{k:#x}")
                text = f"{_JMP.get(op, 'j?')} {src} jt {pc + 1 + ins.jt:04d} jf {pc + 1 + ins.jf:04d}"
                if not code & 0x08:
                    if holds == "nr":
                        note = names.get(k) or _NR_NOTES.get(k, f"syscall {k}")
                    elif holds == "arch":
                        note = AUDIT_ARCHES.get(k, "")
        elif cls == 0x06:  # ret
            rsrc = code & 0x18
            if rsrc == 0x10:
                text = "ret a"
            elif rsrc == 0x08:
                text = "ret x"
            else:
                text, note = f"ret #{k:#x}", action(k)
        else:
            text = "tax" if code & 0xF8 == 0 else "txa"
        out.append(f"{pc:04d}  {text:<34}" + (f"; {note}" if note else "").rstrip())
    return [line.rstrip() for line in out]
