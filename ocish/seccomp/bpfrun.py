"""A classic-BPF interpreter for seccomp filters, concrete and symbolic.

`run(prog, data)` evaluates one filter over one `struct seccomp_data` the way the kernel's
`__bpf_prog_run` does for the instructions seccomp accepts (kernel/seccomp.c
seccomp_check_filter: 32-bit absolute loads of seccomp_data, immediates, scratch memory M[0..15],
ALU, forward jumps, ret) and records the path: every instruction evaluated, the accumulator it
saw and the branch it took. `combine()` applies the kernel's rule for several filters
(seccomp_run_filters: every filter runs, the action of highest precedence wins, the newest
filter's data on a tie).

`paths(prog, nr, arch)` runs a filter with the syscall number and architecture known and the
arguments unknown: every branch on an argument forks, and each path ends at a `ret` with the
conditions that lead there, as comparisons of 32-bit halves (`Atom`). `explain` folds them back
into config.json-style conditions on 64-bit arguments.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ocish.inspect.bpf import Insn, field_name

DATA_LEN = 64            # sizeof(struct seccomp_data)
MAX_PATHS = 4096         # symbolic paths per syscall before giving up
U32 = 0xFFFFFFFF


class BPFError(Exception):
    """A program the kernel would not run (it checks programs at load; we may be handed any)."""


def seccomp_data(nr: int, arch: int, args: list[int] | tuple = (), ip: int = 0) -> bytes:
    """struct seccomp_data in native byte order: int nr, __u32 arch, __u64 instruction_pointer,
    __u64 args[6] (missing args are 0)."""
    a = (list(args) + [0] * 6)[:6]
    return struct.pack("=iIQ6Q", nr if nr < 2**31 else nr - 2**32, arch, ip, *a)


@dataclass
class Step:
    pc: int
    a: int                  # the accumulator after the instruction (before, for a jump)
    taken: str = ""         # a jump: "true", "false" or "always"


@dataclass
class Result:
    ret: int                # SECCOMP_RET_* | data
    steps: list[Step] = field(default_factory=list)


def _alu(op: int, a: int, b: int) -> int:
    if op == 0x00:
        return (a + b) & U32
    if op == 0x10:
        return (a - b) & U32
    if op == 0x20:
        return (a * b) & U32
    if op in (0x30, 0x90):
        if b == 0:
            raise ZeroDivisionError
        return a // b if op == 0x30 else a % b
    if op == 0x40:
        return a | b
    if op == 0x50:
        return a & b
    if op == 0x60:
        return (a << b) & U32 if b < 32 else 0
    if op == 0x70:
        return a >> b if b < 32 else 0
    if op == 0x80:
        return (-a) & U32
    if op == 0xA0:
        return a ^ b
    raise BPFError(f"unknown ALU operation {op:#x}")


def _jump(op: int, a: int, b: int) -> bool:
    if op == 0x10:
        return a == b
    if op == 0x20:
        return a > b
    if op == 0x30:
        return a >= b
    if op == 0x40:
        return bool(a & b)
    raise BPFError(f"unknown jump {op:#x}")


def _load(data: bytes, k: int) -> int:
    if k % 4 or k + 4 > len(data):
        raise BPFError(f"load of seccomp_data offset {k}: not an aligned 32-bit field")
    return struct.unpack_from("=I", data, k)[0]


def run(prog: list[Insn], data: bytes) -> Result:
    """Evaluate `prog` over `data` (seccomp_data()); the return value and the path taken.
    A division by zero returns 0 (SECCOMP_RET_KILL_THREAD), as classic BPF does; raises
    BPFError for what seccomp would have refused to load."""
    a = x = 0
    mem = [0] * 16
    pc = 0
    out = Result(0)
    while pc < len(prog):
        ins = prog[pc]
        code, k = ins.code, ins.k
        cls = code & 0x07
        step = Step(pc, a)
        out.steps.append(step)
        nxt = pc + 1
        if cls in (0x00, 0x01):  # ld, ldx
            mode = code & 0xE0
            if mode == 0x00:
                v = k
            elif mode == 0x20 and cls == 0:
                v = _load(data, k)
            elif mode == 0x80:
                v = len(data)
            elif mode == 0x60:
                v = mem[k & 15]
            else:
                raise BPFError(f"{pc:04d}: load mode {mode:#x} is not allowed in seccomp")
            if cls == 0:
                a = v
            else:
                x = v
        elif cls == 0x02:
            mem[k & 15] = a
        elif cls == 0x03:
            mem[k & 15] = x
        elif cls == 0x04:
            try:
                a = _alu(code & 0xF0, a, x if code & 0x08 else k)
            except ZeroDivisionError:
                out.ret = 0
                return out
        elif cls == 0x05:
            op = code & 0xF0
            if op == 0x00:
                nxt, step.taken = pc + 1 + k, "always"
            else:
                t = _jump(op, a, x if code & 0x08 else k)
                nxt = pc + 1 + (ins.jt if t else ins.jf)
                step.taken = "true" if t else "false"
        elif cls == 0x06:
            rsrc = code & 0x18
            out.ret = a if rsrc == 0x10 else x if rsrc == 0x08 else k
            return out
        else:  # misc: tax / txa
            if code & 0xF8 == 0:
                x = a
            else:
                a = x
        step.a = a
        pc = nxt
    raise BPFError("the program ends without a ret")


def precedence(ret: int) -> int:
    """Lower is stronger: the kernel compares the action bits as a signed 32-bit value
    (ACTION_ONLY in kernel/seccomp.c), so KILL_PROCESS beats KILL_THREAD beats TRAP ... ALLOW."""
    v = ret & 0xFFFF0000
    return v - 2**32 if v & 0x80000000 else v


def combine(results: list[Result]) -> int:
    """Which of the results (newest filter first) the kernel acts on: its index."""
    best = 0
    for i, r in enumerate(results):
        if precedence(r.ret) < precedence(results[best].ret):
            best = i
    return best


# -- symbolic: arguments unknown ------------------------------------------------------------------

@dataclass(frozen=True)
class Atom:
    """One comparison on a path: (seccomp_data word at `offset` & `mask`) `op` `k` is `truth`;
    op is "eq", "gt", "ge" or "set" (jset: the masked word is non-zero)."""
    offset: int
    mask: int
    op: str
    k: int
    truth: bool

    def text(self) -> str:
        sym = {"eq": ("==", "!="), "gt": (">", "<="), "ge": (">=", "<"),
               "set": ("& {k} != 0", "& {k} == 0")}[self.op][0 if self.truth else 1]
        word = field_name(self.offset) or f"[{self.offset}]"
        if self.mask != U32:
            word = f"({word} & {self.mask:#x})"
        if self.op == "set":
            return f"{word} {sym.format(k=hex(self.k))}"
        return f"{word} {sym} {self.k:#x}"


@dataclass
class Path:
    ret: int
    atoms: tuple[Atom, ...]


class Unknown(Exception):
    """The program computes on an argument in a way the symbolic run does not follow."""


_OPS = {0x10: "eq", 0x20: "gt", 0x30: "ge", 0x40: "set"}


def paths(prog: list[Insn], nr: int, arch: int, limit: int = MAX_PATHS) -> list[Path]:
    """Every path through `prog` for syscall `nr` of `arch`, the arguments (and instruction
    pointer) unknown. Raises Unknown when the program does arithmetic on an unknown word other
    than masking it (`and #k`), compares it with X, or has more than `limit` paths."""
    known = seccomp_data(nr, arch)
    out: list[Path] = []
    # accumulator: ("k", value) or ("w", offset, mask): an unknown word, masked
    todo: list[tuple[int, tuple, int, tuple]] = [(0, ("k", 0), 0, ())]
    while todo:
        pc, a, x, atoms = todo.pop()
        while True:
            if pc >= len(prog):
                raise BPFError("the program ends without a ret")
            ins = prog[pc]
            code, k, cls = ins.code, ins.k, ins.code & 0x07
            if cls == 0x00 and code & 0xE0 == 0x20:
                a = ("k", _load(known, k)) if k < 8 else ("w", k, U32)
            elif cls == 0x00 and code & 0xE0 == 0x00:
                a = ("k", k)
            elif cls == 0x00 and code & 0xE0 == 0x80:
                a = ("k", DATA_LEN)
            elif cls == 0x01 and code & 0xE0 == 0x00:
                x = k
            elif cls == 0x04:
                b = k
                if code & 0x08:
                    b = x
                if a[0] == "k":
                    a = ("k", _alu(code & 0xF0, a[1], b))
                elif code & 0xF0 == 0x50:
                    a = ("w", a[1], a[2] & b) if a[2] & b else ("k", 0)
                else:
                    raise Unknown(f"{pc:04d}: arithmetic on {field_name(a[1])}")
            elif cls == 0x05:
                op = code & 0xF0
                if op == 0x00:
                    pc += 1 + k
                    continue
                if code & 0x08:
                    raise Unknown(f"{pc:04d}: comparison with X")
                if a[0] == "k":
                    pc += 1 + (ins.jt if _jump(op, a[1], k) else ins.jf)
                    continue
                name = _OPS[op]
                no = atoms + (Atom(a[1], a[2], name, k, False),)
                if feasible(no):
                    todo.append((pc + 1 + ins.jf, a, x, no))
                atoms += (Atom(a[1], a[2], name, k, True),)
                if not feasible(atoms):
                    break
                pc += 1 + ins.jt
                continue
            elif cls == 0x06:
                if code & 0x18:
                    if a[0] != "k" or code & 0x18 == 0x08:
                        raise Unknown(f"{pc:04d}: returns a computed value")
                    k = a[1]
                out.append(Path(k, atoms))
                if len(out) > limit:
                    raise Unknown(f"more than {limit} paths")
                break
            else:
                raise Unknown(f"{pc:04d}: {'scratch memory' if cls in (2, 3) else 'X'} "
                              "is not followed")
            pc += 1
    return out


# -- sets of 32-bit words -----------------------------------------------------------------------

Intervals = list[tuple[int, int]]   # sorted, disjoint, inclusive


def intersect(a: Intervals, b: Intervals) -> Intervals:
    """The words in both interval sets."""
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo <= hi:
                out.append((lo, hi))
    return sorted(out)


def union(a: Intervals, b: Intervals) -> Intervals:
    """The words in either interval set, adjacent intervals joined."""
    out: Intervals = []
    for lo, hi in sorted(a + b):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def atom_set(at: Atom, top: int = U32) -> Intervals:
    """The words an unmasked eq/gt/ge atom admits."""
    k = at.k
    yes = {"eq": [(k, k)], "gt": [(k + 1, top)] if k < top else [],
           "ge": [(k, top)]}[at.op]
    if at.truth:
        return yes
    return {"eq": [(0, k - 1)] * (k > 0) + [(k + 1, top)] * (k < top),
            "gt": [(0, k)], "ge": [(0, k - 1)] if k > 0 else []}[at.op]


def word_set(atoms: list[Atom] | tuple[Atom, ...]) -> Intervals | None:
    """The words that satisfy every atom, all on one word; None when one is masked or a jset
    (not an interval)."""
    s: Intervals = [(0, U32)]
    for at in atoms:
        if at.mask != U32 or at.op == "set":
            return None
        s = intersect(s, atom_set(at))
    return s


def feasible(atoms: tuple[Atom, ...]) -> bool:
    """False when the atoms on some word contradict each other (interval test on unmasked
    comparisons; bits a masked == fixes, compared between masks)."""
    words: dict[int, list[Atom]] = {}
    for at in atoms:
        words.setdefault(at.offset, []).append(at)
    for ats in words.values():
        plain = [a for a in ats if a.mask == U32 and a.op != "set"]
        if plain and not word_set(plain):
            return False
        need, bits = 0, 0
        for a in ats:
            if a.op == "eq" and a.truth:
                if (a.k & a.mask & bits) != (need & a.mask & bits) or a.k & ~a.mask:
                    return False
                need, bits = need | (a.k & a.mask), bits | a.mask
    return True
