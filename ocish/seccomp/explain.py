"""`seccomp explain`: a filter's rules grouped by action, in config.json's terms.

For a profile (a bundle's config.json, or a loaded filter that is byte for byte what the
container's config.json compiles to) the rules are the profile's own entries. For any other
loaded filter they are reconstructed from the BPF: every syscall number of this architecture is
run through the filter with its arguments unknown (bpfrun.paths), the paths' comparisons of
32-bit halves are folded into conditions on 64-bit arguments (==, !=, <, <=, >, >=, a masked
==), and paths to the same action are merged. What cannot be folded is shown as the halves'
comparisons and said so; a syscall the symbolic run cannot follow is listed as unresolved.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ocish.inspect.bpf import X32_SYSCALL_BIT, Insn
from ocish.seccomp import bpfrun
from ocish.seccomp.answers import UNUSED_NR, Flag, effect, native_arch, ret_name, startup
from ocish.seccomp.source import Source
from runtime.linux import seccomp as S

OPS = {"SCMP_CMP_NE": "!=", "SCMP_CMP_LT": "<", "SCMP_CMP_LE": "<=", "SCMP_CMP_EQ": "==",
       "SCMP_CMP_GE": ">=", "SCMP_CMP_GT": ">"}
NRS = range(0, 512)       # every native syscall number (x32's carry bit 30)


@dataclass
class RuleLine:
    names: list[str]
    conditions: list[str] = field(default_factory=list)   # ANDed: "args[0] == 8"
    pointer: str = ""         # the profile's entry: /linux/seccomp/syscalls/3
    note: str = ""


@dataclass
class ActionGroup:
    action: str               # SCMP_ACT_ERRNO(1), as config.json's action and errnoRet say
    ret: str                  # SECCOMP_RET_ERRNO
    effect: str
    rules: list[RuleLine] = field(default_factory=list)


@dataclass
class Explain:
    source: str
    mode: str
    how: str                  # where the rules come from
    default: str = ""         # the default action (what no rule names gets)
    groups: list[ActionGroup] = field(default_factory=list)
    arches: list[str] = field(default_factory=list)   # what other architectures get
    unresolved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # names libseccomp does not know
    flags: list[Flag] = field(default_factory=list)
    filter: int = 0           # which loaded filter (0: the newest)
    note: str = ""            # why these filters answer (the filter not loaded yet ...)
    filters: int = 0          # how many filters the source has
    matches_config: bool | None = None


def explain(src: Source) -> list[Explain]:
    """One Explain per filter (a profile has one; a process may have loaded several)."""
    outs = _explain(src)
    for e in outs:
        e.note, e.filters, e.matches_config = src.note, len(src.filters), src.matches_config
    return outs


def _explain(src: Source) -> list[Explain]:
    if src.mode == "strict":
        return [Explain(src.label, src.mode, "seccomp strict mode (SECCOMP_MODE_STRICT): no "
                        "filter", "SCMP_ACT_KILL", [ActionGroup("SCMP_ACT_ALLOW",
                        "SECCOMP_RET_ALLOW", effect(S.ACT_ALLOW),
                        [RuleLine(["read", "write", "exit", "rt_sigreturn"])])])]
    if not src.filters:
        return [Explain(src.label, src.mode, "no filter: every call runs" if src.mode != "none"
                        else "config.json has no /linux/seccomp: no filter, every call runs",
                        "SCMP_ACT_ALLOW")]
    flags = startup(src)
    if src.config is not None and (src.mode == "profile" or src.matches_config):
        how = ("config.json /linux/seccomp, compiled with libseccomp " + S.version()
               if src.mode == "profile" else "the loaded filter is exactly what the container's "
               "config.json /linux/seccomp compiles to (libseccomp " + S.version() + "): its "
               "rules")
        out = from_profile(src.config, src.label, src.mode, how)
        out.skipped, out.flags = list(src.skipped), flags
        out.arches = arch_answers(src.filters[0])
        return [out]
    outs = []
    for i, prog in enumerate(src.filters):
        how = (f"reconstructed from the loaded BPF of filter {i}"
               f"{' (the newest)' if i == 0 and len(src.filters) > 1 else ''}, "
               f"{len(prog)} instructions")
        if src.matches_config is False:
            how += "; it is NOT what the container's config.json compiles to"
        out = reconstruct(prog, src.label, src.mode, how)
        out.filter = i
        out.flags = flags
        outs.append(out)
    return outs


# -- a profile ----------------------------------------------------------------------------------

def condition_text(a: dict) -> str:
    """One /linux/seccomp/syscalls/N/args entry as a condition."""
    i, op, v = a.get("index"), a.get("op"), a.get("value")
    if op == "SCMP_CMP_MASKED_EQ":
        return f"args[{i}] & {number(v)} == {number(a.get('valueTwo', 0))}"
    return f"args[{i}] {OPS.get(op, op)} {number(v)}"


def _compiled_text(cond: tuple) -> str:
    """A compiled condition (index, operator number, datum_a, datum_b) as condition_text says
    its config.json entry."""
    index, op, a, b = cond
    name = next(n for n, v in S.OPERATORS.items() if v == op)
    return condition_text({"index": index, "op": name, "value": a, "valueTwo": b})


def number(v) -> str:
    """A value as the rules show it: decimal when small, else hex."""
    return str(v) if not isinstance(v, int) or v < 4096 else hex(v)


def from_profile(sc: dict, label: str, mode: str, how: str) -> Explain:
    """The entries of /linux/seccomp `sc` (validated already) grouped by action, strongest
    first, each with its pointer; entries with no effect (the default action, names
    libseccomp does not know) say so."""
    from runtime.spec_seccomp import compile_profile
    default = S.action_value(sc["defaultAction"], sc.get("defaultErrnoRet"))
    out = Explain(label, mode, how, S.action_name(default))
    # each entry's condition groups as the runtime compiles them: an argument compared twice
    # is one rule per condition, any of which matches (runc), not all of them at once
    compiled: dict[str, list[tuple]] = {}
    for rule in compile_profile(sc).rules:
        if rule.conditions not in compiled.setdefault(rule.pointer, []):
            compiled[rule.pointer].append(rule.conditions)
    groups: dict[int, ActionGroup] = {}
    for i, call in enumerate(sc.get("syscalls") or []):
        action = S.action_value(call["action"], call.get("errnoRet"))
        names = list(call["names"])
        unknown = [n for n in names if S.syscall_number(n) == S.NR_SCMP_ERROR]
        notes = []
        if action == default:
            notes.append("the default action already: no effect (dropped, as runc does)")
        if unknown:
            notes.append("unknown to libseccomp, skipped: " + ", ".join(unknown))
        g = groups.setdefault(action, ActionGroup(S.action_name(action), ret_name(action),
                                                  effect(action)))
        ptr = f"/linux/seccomp/syscalls/{i}"
        args = call.get("args") or []
        for conds in compiled.get(ptr) or [None]:  # None: no rule compiled (the default's)
            g.rules.append(RuleLine(names, [condition_text(a) for a in args] if conds is None
                                    else [_compiled_text(c) for c in conds], ptr,
                                    "; ".join(notes)))
    out.groups = [groups[a] for a in sorted(groups, key=lambda a: (bpfrun.precedence(a), a))]
    return out


# -- a loaded filter ---------------------------------------------------------------------------

def arch_answers(prog: list[Insn]) -> list[str]:
    """What calls of other ABIs get: x32 numbers on x86_64, and the i386 ABI (a 32-bit program
    on a 64-bit kernel), besides the native one."""
    machine, arch = native_arch()
    out = []
    probes = [(f"{machine}, a number no syscall has ({UNUSED_NR})", UNUSED_NR, arch)]
    if machine == "x86_64":
        probes += [("x32 ABI, its read (nr 0x40000000)", X32_SYSCALL_BIT, arch),
                   ("i386 ABI, its restart_syscall (AUDIT_ARCH_I386, nr 0)", 0, 0x40000003)]
    for what, nr, a in probes:
        ret = bpfrun.run(prog, bpfrun.seccomp_data(nr, a)).ret
        out.append(f"{what}: {S.action_name(ret)}")
    return out


Cond = tuple            # ("iv", intervals) | ("mask", mask, value) | ("raw", texts)


def _arg_conds(atoms: tuple[bpfrun.Atom, ...]) -> dict[str, Cond]:
    """A path's atoms as conditions per argument ("0".."5", or "ip")."""
    by: dict[str, dict[str, list]] = {}
    for at in atoms:
        if at.offset >= 16:
            i, high = divmod(at.offset - 16, 8)
            key, half = str(i), "hi" if high else "lo"
        else:
            key, half = "ip", "hi" if at.offset == 12 else "lo"
        by.setdefault(key, {"lo": [], "hi": []})[half].append(at)
    return {k: _fold(v["lo"], v["hi"]) for k, v in by.items()}


def _fold(lo: list[bpfrun.Atom], hi: list[bpfrun.Atom]) -> Cond:
    lo_s, hi_s = bpfrun.word_set(lo), bpfrun.word_set(hi)
    if lo_s is not None and hi_s is not None:
        if lo_s == [(0, bpfrun.U32)]:
            return ("iv", [(a << 32, (b << 32) | bpfrun.U32) for a, b in hi_s])
        if len(hi_s) == 1 and hi_s[0][0] == hi_s[0][1]:
            h = hi_s[0][0] << 32
            return ("iv", [(h + a, h + b) for a, b in lo_s])
    both = lo + hi
    if both and all(a.op == "eq" and a.truth and a.mask != bpfrun.U32 for a in both) and \
            len(lo) <= 1 and len(hi) <= 1:
        m = (hi[0].mask << 32 if hi else 0) | (lo[0].mask if lo else 0)
        v = (hi[0].k << 32 if hi else 0) | (lo[0].k if lo else 0)
        return ("mask", m, v)
    return ("raw", tuple(a.text() for a in hi + lo))


def _describe(key: str, c: Cond) -> str:
    word = "instruction_pointer" if key == "ip" else f"args[{key}]"
    if c[0] == "mask":
        return f"{word} & {number(c[1])} == {number(c[2])}"
    if c[0] == "raw":
        return " and ".join(c[1]) + " (32-bit halves: not foldable into one condition)"
    iv = c[1]
    if len(iv) == 1:
        a, b = iv[0]
        if a == b:
            return f"{word} == {number(a)}"
        if b == S.U64:
            return f"{word} >= {number(a)}"
        if a == 0:
            return f"{word} <= {number(b)}"
        return f"{word} >= {number(a)} and {word} <= {number(b)}"
    if all(a == b for a, b in iv):
        return f"{word} in " + ", ".join(number(a) for a, _ in iv) + " (one rule per value)"
    if len(iv) == 2 and iv[0][0] == 0 and iv[1][1] == S.U64 and iv[1][0] == iv[0][1] + 2:
        return f"{word} != {number(iv[0][1] + 1)}"
    return f"{word} in " + " or ".join(f"[{number(a)}, {number(b)}]" for a, b in iv)


def _merge(paths: list[dict[str, Cond]]) -> list[dict[str, Cond]]:
    """Union the paths to one action: one that constrains less absorbs one that constrains
    more; two that differ on one argument's intervals become one."""
    ps = [{k: v for k, v in p.items() if v != ("iv", [(0, S.U64)])} for p in paths]
    changed = True
    while changed:
        changed = False
        for i in range(len(ps)):
            for j in range(len(ps)):
                if i == j:
                    continue
                p, q = ps[i], ps[j]
                if all(k in q and q[k] == v for k, v in p.items()):  # p is wider: q goes
                    del ps[j]
                    changed = True
                    break
                diff = [k for k in p if p.get(k) != q.get(k)]
                if p.keys() == q.keys() and len(diff) == 1 and p[diff[0]][0] == "iv" and \
                        q[diff[0]][0] == "iv":
                    k = diff[0]
                    merged = dict(p)
                    merged[k] = ("iv", bpfrun.union(p[k][1], q[k][1]))
                    if merged[k] == ("iv", [(0, S.U64)]):
                        del merged[k]
                    ps[i] = merged
                    del ps[j]
                    changed = True
                    break
            if changed:
                break
    return ps


def reconstruct(prog: list[Insn], label: str, mode: str, how: str) -> Explain:
    """Rules rebuilt from a BPF program alone: each native syscall number run with its
    arguments unknown; calls whose answer is the default are left out."""
    _, arch = native_arch()
    default = bpfrun.run(prog, bpfrun.seccomp_data(UNUSED_NR, arch)).ret
    out = Explain(label, mode, how, S.action_name(default), arches=arch_answers(prog))
    plain: dict[int, list[str]] = {}
    cond: dict[int, list[RuleLine]] = {}
    for nr in NRS:
        name = S.syscall_name(nr)
        try:
            found = bpfrun.paths(prog, nr, arch)
        except (bpfrun.Unknown, bpfrun.BPFError) as e:
            out.unresolved.append(f"{name or nr}: {e}")
            continue
        by_ret: dict[int, list[dict]] = {}
        for p in found:
            by_ret.setdefault(p.ret, []).append(_arg_conds(p.atoms))
        if len(by_ret) == 1:
            (ret,) = by_ret
            if ret != default:
                plain.setdefault(ret, []).append(name or f"syscall {nr}")
            continue
        for ret, ps in by_ret.items():
            if ret == default:
                continue
            for p in _merge(ps):
                cond.setdefault(ret, []).append(RuleLine(
                    [name or f"syscall {nr}"], [_describe(k, c) for k, c in sorted(p.items())]))
    for ret in sorted(set(plain) | set(cond), key=lambda r: (bpfrun.precedence(r), r)):
        g = ActionGroup(S.action_name(ret), ret_name(ret), effect(ret))
        if ret in plain:
            g.rules.append(RuleLine(plain[ret]))
        g.rules += cond.get(ret, [])
        out.groups.append(g)
    return out
