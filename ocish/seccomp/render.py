"""Plain-text rendering of seccomp answers (`seccomp check`, `seccomp explain`): the same text
on a terminal and in scripts; --json prints the data instead (ocish.render.to_json)."""
from __future__ import annotations

import textwrap

from ocish.seccomp.answers import Check, Flag
from ocish.seccomp.explain import Explain


def _source(label: str, mode: str, filters: int, matches: bool | None, note: str) -> list[str]:
    what = {"filter": f"{filters} filter{'s' if filters != 1 else ''} loaded",
            "profile": "config.json's profile, compiled with libseccomp as the runtime does",
            "strict": "seccomp strict mode", "disabled": "no seccomp filter",
            "none": "no /linux/seccomp"}.get(mode, mode)
    if matches is True:
        what += " (exactly what its config.json compiles to)"
    elif matches is False:
        what += " (NOT what its config.json compiles to)"
    out = [f"source:  {label}: {what}"]
    if note:
        out.append(f"note:    {note}")
    return out


def flags(fl: list[Flag]) -> list[str]:
    """One `!` line per call a process needs that the filter stops."""
    return [f"  ! {f.syscall}: {f.action}{'' if f.always else ' (for some arguments)'}: {f.why}"
            for f in fl]


def check(c: Check) -> str:
    """`seccomp check`: the call, where the answer comes from, the action, errno, effect,
    the deciding rule, then each filter's path, one evaluated instruction a line."""
    args = ", ".join(hex(a) if a >= 4096 else str(a) for a in c.args) or "-"
    lines = [f"{c.syscall} (nr {c.nr} on {c.arch}), args: {args}"]
    lines += _source(c.source, c.mode, c.filters, c.matches_config, c.source_note)
    lines.append(f"action:  {c.action}  (kernel: {c.ret}"
                 + (f" | {c.errno}" if c.ret == "SECCOMP_RET_ERRNO" else "")
                 + (f", filter {c.decided_by} decides" if len(c.runs) > 1 else "") + ")")
    if c.ret == "SECCOMP_RET_ERRNO":
        lines.append(f"errno:   {c.errno} {c.errno_name}")
    lines.append(f"effect:  {c.effect}")
    if c.rule:
        lines.append(f"rule:    {c.rule}")
    if c.note:
        lines += textwrap.wrap(c.note, 96, initial_indent="note:    ", subsequent_indent="         ")
    for r in c.runs:
        lines.append(f"path through filter {r.index}{' (newest)' if r.index == 0 and len(c.runs) > 1 else ''}"
                     f" ({len(r.path)} of {r.instructions} instructions): {r.action}")
        w = max(len(p.text) for p in r.path)
        lines += [f"  {p.pc:04d}  {p.text:<{w}}  ; {p.note}" for p in r.path]
    if c.flags:
        lines.append("flagged: a process makes this call to start")
        lines += flags(c.flags)
    return "\n".join(lines)


def explain(items: list[Explain]) -> str:
    """`seccomp explain`: per filter, the default action, then each action with its rules
    (names, conditions, the config pointer), other ABIs, what is unresolved and flagged."""
    lines: list[str] = []
    for e in items:
        if lines:
            lines.append("")
        lines += _source(e.source, e.mode, e.filters, e.matches_config, e.note)
        lines.append(f"rules:   {e.how}")
        lines.append(f"default: {e.default} (what no rule below decides)")
        for g in e.groups:
            lines.append(f"{g.action}  ({g.ret}): {g.effect}")
            for r in g.rules:
                head = " ".join(r.names)
                tail = (f"  [{r.pointer}]" if r.pointer else "") + (f"  ({r.note})" if r.note else "")
                cond = (" if " + " and ".join(r.conditions)) if r.conditions else ""
                text = head + cond + tail
                lines += textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="    ",
                                       break_on_hyphens=False)
        if e.skipped:
            lines.append("skipped (unknown to libseccomp): " + ", ".join(e.skipped))
        if e.arches:
            lines.append("other calls:")
            lines += [f"  {a}" for a in e.arches]
        if e.unresolved:
            lines.append("cannot reconstruct (the symbolic run cannot follow the BPF):")
            lines += [f"  {u}" for u in e.unresolved]
        if e.flags:
            lines.append("flagged: calls a process makes to start, which this filter stops")
            lines += flags(e.flags)
    return "\n".join(lines)


def render(data) -> str:
    """A Check, or the list of Explain of `explain`, as text."""
    return check(data) if isinstance(data, Check) else explain(data)
