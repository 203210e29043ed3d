"""What a seccomp filter answers: `check` (one call, its arguments given) and `explain` (the
rules, grouped by action, in config.json's terms), plus the calls a process needs to start that
the filter stops (`startup`).

The answer of a Source's filters comes from running them in ocish/seccomp/bpfrun.py, never from
reading the profile: a compiled profile is evaluated as the BPF libseccomp made of it, exactly as
the kernel would run it. The profile only names the rule that decided (`rule`).
"""
from __future__ import annotations

import errno as errnomod
import os
from dataclasses import dataclass, field

from ocish.inspect.bpf import (ACTIONS, AUDIT_ARCHES, X32_SYSCALL_BIT, Insn, disassemble,
                               field_name)
from ocish.seccomp import bpfrun
from ocish.seccomp.source import Source
from runtime.errors import OcishError
from runtime.linux import seccomp as S

NATIVE_ARCH = {"x86_64": 0xC000003E, "i686": 0x40000003, "aarch64": 0xC00000B7,
               "riscv64": 0xC00000F3, "s390x": 0x80000016, "ppc64le": 0xC0000015,
               "armv7l": 0x40000028}
RET_NAMES = {ret: f"SECCOMP_RET_{name}" for ret, name in ACTIONS.items()}
# SECCOMP_MODE_STRICT: read, write, _exit and sigreturn run, the rest is SIGKILL
STRICT_ALLOWED = ("read", "write", "exit", "rt_sigreturn")
UNUSED_NR = 1000        # no syscall has it on x86_64 (x32's numbers carry bit 30): the default


def native_arch() -> tuple[str, int]:
    """This machine's architecture: its uname name and AUDIT_ARCH_* value."""
    machine = os.uname().machine
    if machine not in NATIVE_ARCH:
        raise OcishError(f"seccomp answers: this architecture ({machine}) is not known here")
    return machine, NATIVE_ARCH[machine]


def ret_name(ret: int) -> str:
    """The kernel's name of a filter's action: SECCOMP_RET_ERRNO ..."""
    return RET_NAMES.get(ret & 0xFFFF0000, hex(ret & 0xFFFF0000))


def effect(ret: int) -> str:
    """What the calling process sees, in the kernel's words (seccomp(2))."""
    base, data = ret & 0xFFFF0000, ret & 0xFFFF
    if base == S.ACT_ALLOW:
        return "the call runs"
    if base == S.ACT_LOG:
        return "the call runs, and is logged (audit)"
    if base == S.ACT_ERRNO:
        return f"the call fails with {errnomod.errorcode.get(data, '?')} ({data}) without running"
    if base == S.ACT_TRACE:
        return ("a ptrace tracer is notified (PTRACE_EVENT_SECCOMP); without one the call fails "
                "with ENOSYS")
    if base == S.ACT_NOTIFY:
        return "the call waits for the listener of the notify fd to answer"
    if base == S.ACT_TRAP:
        return "the thread gets SIGSYS (si_code SYS_SECCOMP) instead of the call"
    if base == S.ACT_KILL_PROCESS:
        return "the whole process is killed by SIGSYS (core dump)"
    return "the thread is killed by SIGSYS"


# -- arguments ---------------------------------------------------------------------------------

def _symbols() -> dict[str, int]:
    from ocish import syscall_args as A
    from runtime.stages.attributes import DOMAINS, PERSONALITY_FLAGS
    table = dict(A.MOUNT_FLAGS + A.CLONE_FLAGS + A.OPEN_FLAGS + A.UMOUNT_FLAGS)
    table.update({n: v for v, n in A.PRCTL.items()})
    table.update({f"PER_{d}": v for d, v in DOMAINS.items()})
    table.update(PERSONALITY_FLAGS)
    table.update({"AT_FDCWD": A.AT_FDCWD, "O_RDONLY": os.O_RDONLY, "O_WRONLY": os.O_WRONLY,
                  "O_RDWR": os.O_RDWR})
    return table


def parse_arg(word: str, i: int) -> int:
    """An argument as the kernel sees it (a u64): decimal, 0x hex, 0o octal, negative (two's
    complement: -100 is AT_FDCWD), or flag names joined by | (CLONE_NEWUSER|CLONE_NEWNS,
    PER_LINUX32, MS_RDONLY, O_CREAT|O_WRONLY, PR_SET_NO_NEW_PRIVS)."""
    total, table = 0, None
    for part in word.split("|"):
        part = part.strip()
        try:
            v = int(part, 0)
        except ValueError:
            table = table or _symbols()
            if part not in table:
                raise OcishError(f"args[{i}] ({word!r}): {part!r} is neither a number "
                                 "(decimal, 0x hex) nor a flag name known here (CLONE_*, MS_*, "
                                 "O_*, PR_*, PER_*, personality flags, AT_FDCWD)") from None
            v = table[part]
        if not -2**63 <= v < 2**64:
            raise OcishError(f"args[{i}] ({word!r}) does not fit in 64 bits")
        total |= v & S.U64
    return total


def parse_args(words: list[str]) -> list[int]:
    """Up to six argument words as u64 values (parse_arg)."""
    if len(words) > 6:
        raise OcishError("a syscall has at most 6 arguments")
    return [parse_arg(w, i) for i, w in enumerate(words)]


def resolve_syscall(word: str) -> tuple[str, int]:
    """A syscall name (or number) -> (name, native number)."""
    try:
        nr = int(word, 0)
    except ValueError:
        nr = S.syscall_number(word)
        if nr == S.NR_SCMP_ERROR:
            raise OcishError(f"unknown syscall {word!r} (libseccomp {S.version()} does not "
                             "know it)") from None
        if nr < 0:
            raise OcishError(f"{word} is not a syscall on {native_arch()[0]} (libseccomp "
                             f"maps it to the pseudo number {nr})")
        return word, nr
    if not 0 <= nr < X32_SYSCALL_BIT:
        raise OcishError(f"syscall number {word} is out of range")
    return S.syscall_name(nr) or f"syscall {nr}", nr


# -- check ---------------------------------------------------------------------------------------

@dataclass
class PathLine:
    pc: int
    text: str                 # the instruction, disassembled
    note: str                 # what it saw and did: "A = 83 (nr)", "true -> 0022"


@dataclass
class FilterRun:
    index: int                # 0: the newest filter
    ret: int
    action: str               # SCMP_ACT_* as config.json spells it
    path: list[PathLine] = field(default_factory=list)
    instructions: int = 0


@dataclass
class Flag:
    """A call a process needs to start (or the runtime to reach execve) that the filter stops."""
    syscall: str
    action: str
    why: str                  # "the runtime calls it after loading the filter", ...
    always: bool = True       # False: only for some arguments


@dataclass
class Check:
    source: str
    mode: str
    syscall: str
    nr: int
    arch: str
    args: list[int]
    value: int                # SECCOMP_RET_* | data, as the kernel acts on it
    action: str               # SCMP_ACT_ERRNO(1) ...
    ret: str                  # SECCOMP_RET_ERRNO
    errno: int
    errno_name: str
    effect: str
    decided_by: int = -1      # the filter whose answer the kernel takes (-1: no filter)
    rule: str = ""            # the config.json rule, for a profile
    runs: list[FilterRun] = field(default_factory=list)
    note: str = ""
    flags: list[Flag] = field(default_factory=list)
    matches_config: bool | None = None   # the loaded filter is what config.json compiles to
    source_note: str = ""
    filters: int = 0


def annotate(prog: list[Insn], steps: list[bpfrun.Step], names: dict[int, str]) -> list[PathLine]:
    """The path as lines: the disassembly without its static notes, and what the interpreter
    saw there (the accumulator's meaning follows the path, so jumps name what they compare)."""
    listing = disassemble(prog)
    holds = ""
    out = []
    for st in steps:
        ins = prog[st.pc]
        text = listing[st.pc][6:].split(";")[0].rstrip()
        cls = ins.code & 0x07
        note = ""
        if cls == 0x00 and ins.code & 0xE0 == 0x20:
            holds = field_name(ins.k)
            note = f"A = {st.a:#x} ({holds})" if holds != "nr" else \
                f"A = {st.a} (nr: {names.get(st.a, 'syscall ' + str(st.a))})"
        elif cls == 0x04:
            note = f"A = {st.a:#x}"
        elif cls == 0x05 and st.taken:
            target = st.pc + 1 + (ins.k if st.taken == "always" else
                                  ins.jt if st.taken == "true" else ins.jf)
            what = ""
            if not ins.code & 0x08 and ins.code & 0xF0:
                if holds == "nr" and ins.k < X32_SYSCALL_BIT:
                    what = f" ({names.get(ins.k, 'syscall ' + str(ins.k))})"
                    text = text.replace(f"#{ins.k:#x} ", f"#{ins.k} ")
                elif holds == "arch":
                    what = f" ({AUDIT_ARCHES.get(ins.k, hex(ins.k))})"
            note = f"{st.taken}{what} -> {target:04d}"
        elif cls == 0x06:
            note = f"return {S.action_name(_ret_of(ins, st))}"
        out.append(PathLine(st.pc, text, note))
    return out


def _ret_of(ins: Insn, st: bpfrun.Step) -> int:
    """What a `ret` instruction returned: its constant, or the accumulator (`ret a`)."""
    return st.a if ins.code & 0x18 == 0x10 else ins.k


def check(src: Source, syscall: str, args: list[str]) -> Check:
    """What `src` answers for `syscall` called with `args` (words: numbers or flag names) on
    this machine's architecture."""
    name, nr = resolve_syscall(syscall)
    values = parse_args(args)
    arch_name, arch = native_arch()
    from ocish.syscall_args import syscall_names
    names = syscall_names()
    out = Check(src.label, src.mode, name, nr, arch_name, values, S.ACT_ALLOW, "", "", 0, "", "",
                matches_config=src.matches_config, source_note=src.note,
                filters=len(src.filters))
    if src.mode == "strict":
        out.value = S.ACT_ALLOW if name in STRICT_ALLOWED else S.ACT_KILL_THREAD
        out.note = ("seccomp strict mode (SECCOMP_MODE_STRICT): only read, write, _exit and "
                    "sigreturn run; any other call is SIGKILL")
    elif not src.filters:
        out.note = ("no seccomp filter: the kernel runs every call" if src.mode != "none" else
                    "config.json has no /linux/seccomp: no filter, every call runs")
    else:
        data = bpfrun.seccomp_data(nr, arch, values)
        results = []
        for i, prog in enumerate(src.filters):
            try:
                r = bpfrun.run(prog, data)
            except bpfrun.BPFError as e:
                raise OcishError(f"filter {i}: {e}") from None
            results.append(r)
            out.runs.append(FilterRun(i, r.ret, S.action_name(r.ret),
                                      annotate(prog, r.steps, names), len(prog)))
        out.decided_by = bpfrun.combine(results)
        out.value = results[out.decided_by].ret
        if len(results) > 1:
            out.note = (f"{len(results)} filters: each runs, and the kernel takes the action of "
                        "highest precedence (KILL_PROCESS, KILL_THREAD, TRAP, ERRNO, USER_NOTIF, "
                        "TRACE, LOG, ALLOW), the newest filter's on a tie")
    out.action = S.action_name(out.value)
    out.ret = ret_name(out.value)
    if out.value & 0xFFFF0000 == S.ACT_ERRNO:
        out.errno = out.value & 0xFFFF
        out.errno_name = errnomod.errorcode.get(out.errno, "")
    out.effect = effect(out.value)
    if src.mode == "strict" and out.value != S.ACT_ALLOW:
        out.effect = "the process is killed by SIGKILL (strict mode has no SIGSYS)"
    if src.config is not None and src.mode in ("profile", "filter"):
        out.rule = deciding_rule(src.config, name, values, out.value)
    out.flags = [f for f in startup(src) if f.syscall == name]
    return out


def _holds(cond: tuple, args: list[int]) -> bool:
    """One compiled condition (arg index, operator number, datum_a, datum_b: the mask and the
    value for SCMP_CMP_MASKED_EQ, as struct scmp_arg_cmp) on the call's arguments."""
    index, op, a, b = cond
    arg = args[index]
    return {S.OPERATORS["SCMP_CMP_NE"]: arg != a, S.OPERATORS["SCMP_CMP_LT"]: arg < a,
            S.OPERATORS["SCMP_CMP_LE"]: arg <= a, S.OPERATORS["SCMP_CMP_EQ"]: arg == a,
            S.OPERATORS["SCMP_CMP_GE"]: arg >= a, S.OPERATORS["SCMP_CMP_GT"]: arg > a,
            S.CMP_MASKED_EQ: arg & a == b}[op]


def deciding_rule(sc: dict, name: str, args: list[int], value: int) -> str:
    """The config.json pointer of the rule whose action the filter returned for this call (the
    first rule naming the call whose conditions hold), or /linux/seccomp/defaultAction; "" when
    none of them has that action (the filter is not this profile). Read from the profile as
    the runtime compiles it (runtime/spec_seccomp.py): an argument compared twice in one entry
    makes one rule per condition (runc), and rules with the default action are dropped."""
    from runtime.errors import SpecError
    from runtime.spec_seccomp import compile_profile
    vals = (list(args) + [0] * 6)[:6]
    try:
        prof = compile_profile(sc)
    except SpecError:
        return ""
    for rule in prof.rules:
        if rule.name == name and rule.action == value and \
                all(_holds(c, vals) for c in rule.conditions):
            return rule.pointer
    return f"{prof.pointer}/defaultAction" if prof.default_action == value else ""


# -- startup: what a process needs before and right after execve ------------------------------

def startup(src: Source) -> list[Flag]:
    """The calls the runtime makes after loading the filter (for a profile: by noNewPrivileges,
    as ocish/diagnose/seccomp_check lists them), execve, and the dynamic loader's first calls,
    that the filter stops. Evaluated on the BPF for every argument: `always` is False when only
    some arguments are stopped."""
    from ocish.diagnose.seccomp_check import AFTER_LOAD, AFTER_LOAD_NNP, LOADER, blocks
    if not src.filters:
        return []
    calls: list[tuple[str, str]] = [("execve", "the program cannot be started (nor any "
                                               "`exec` into the container)")]
    if src.mode == "profile":
        why = "the runtime calls it after loading the filter, before execve(2)"
        calls += [(n, why) for n in (AFTER_LOAD_NNP if src.no_new_privs else AFTER_LOAD)]
    calls += [(n, "the dynamic loader (or a static program's start) calls it first")
              for n in LOADER]
    seen, out = set(), []
    _, arch = native_arch()
    for name, why in calls:
        if name in seen:
            continue
        seen.add(name)
        nr = S.syscall_number(name)
        if nr < 0:
            continue
        rets = outcomes(src.filters, nr, arch)
        stopped = [r for r in rets if blocks(r)]
        if stopped:
            out.append(Flag(name, S.action_name(stopped[0]), why, len(stopped) == len(rets)))
    return out


def outcomes(filters: list[list[Insn]], nr: int, arch: int) -> list[int]:
    """Every value the filters can return for syscall `nr` over all arguments (combined by
    precedence across filters); with a program the symbolic run cannot follow, the value for
    arguments 0."""
    per_filter = []
    for prog in filters:
        try:
            per_filter.append(sorted({p.ret for p in bpfrun.paths(prog, nr, arch)}))
        except bpfrun.Unknown:
            per_filter.append([bpfrun.run(prog, bpfrun.seccomp_data(nr, arch)).ret])
    rets = per_filter[0]
    for more in per_filter[1:]:
        rets = sorted({min(a, b, key=bpfrun.precedence) for a in rets for b in more})
    return rets
