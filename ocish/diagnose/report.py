"""Render a diagnosis: text for people (rich colours on a terminal, plain otherwise) or JSON.

The text is a list of (text, style) lines, so that the same layout prints plain through a pipe
and styled through rich; styles are rich's names.
"""
from __future__ import annotations

import json
import textwrap

from ocish.diagnose.model import (ERROR, INFO, WARNING, Finding, Report, count_severity,
                                  lint_summary, verdict)

Line = tuple[str, str]
_SEVERITY_STYLE = {ERROR: "bold red", WARNING: "yellow", INFO: "cyan"}
LABEL = 10       # width of the "evidence " column
WIDTH = 100


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


def lines(report: Report) -> list[Line]:
    out: list[Line] = [(f"ocish diagnose {report.bundle}", "bold")]
    if report.container:  # --podman / --containerd: where config and rootfs came from
        out.append((_row("config", report.container["config"]), "dim"))
        out.append((_row("rootfs", f"{report.container['rootfs']} (mounted for this, "
                                   "unmounted after)"), "dim"))
    pre = [f for f in report.findings if f.source == "preflight"]
    out.append((_row("lint", lint_summary(report)), "" if report.lint_ok else "red"))
    out.append((_row("preflight", f"{_n(count_severity(pre, ERROR), 'error')}, "
                                  f"{_n(count_severity(pre, WARNING), 'warning')}, "
                                  f"{_n(len(report.checked), 'check')} fine"), ""))
    out.append((_row("dry run", report.outcome.summary()), ""))
    for note in report.outcome.notes:
        out.append((_row("", note), "dim"))
    out.append((_row("verdict", verdict(report)), "bold green" if report.healthy else "bold red"))
    for n, f in enumerate(report.findings, 1):
        out.append(("", ""))
        out += finding_lines(n, f, report.spec)
    if report.checked:
        out.append(("", ""))
        out.append(("fine:", "bold"))
        out += [(_wrap("  ok  ", c, 6), "dim") for c in report.checked]
    if report.against is not None:
        out.append(("", ""))
        out += against_lines(report)
    return out


def finding_lines(n: int, f: Finding, spec) -> list[Line]:
    tag = f.severity + (", confirmed by the dry run" if f.confirmed else "") + \
        (f", from {f.source}" if not f.confirmed else "")
    out: list[Line] = [(f"{n}. {f.title}  [{tag}]", _SEVERITY_STYLE.get(f.severity, ""))]
    where = [f.stage] if f.stage else []
    if f.op:
        where.append(f"operation {f.op}")
    if f.errno:
        where.append(f"errno {f.errno_name} ({f.errno_text})")
    if where:
        out.append((_field("stage", "; ".join(where)), ""))
    if f.pointer:
        found, value = f.value_in(spec)
        shown = f"{f.pointer} = {_json(value)}" if found else f.pointer
        out.append((_field("config", shown), ""))
    if f.cause:
        out.append((_field("cause", f.cause), ""))
    for i, e in enumerate(f.evidence):
        out.append((_field("evidence" if i == 0 else "", e), "dim"))
    if f.fix is not None:
        out.append((_field("fix", f.fix.text), "green"))
        for op in f.fix.patch:
            out.append((_field("", "config.json: " + _patch_text(op)), "green"))
        if f.fix.command:
            out.append((_field("", "run: " + f.fix.command), "green"))
    return out


def against_lines(report: Report) -> list[Line]:
    """The dry run and runc's run side by side."""
    a = report.against or {}
    o = report.outcome
    ours = o.error_text or o.start_error or ""
    rows = [("outcome", o.summary(), a.get("outcome", "")),
            ("exit", o.signal or ("" if o.exit_status is None else str(o.exit_status)),
             "" if a.get("exit_status") is None else str(a["exit_status"])),
            ("error", ours, a.get("error", "")),
            ("stdout", " | ".join(o.stdout[-2:]), " | ".join(a.get("stdout", [])[-2:])),
            ("stderr", " | ".join(o.stderr[-2:]), " | ".join(a.get("stderr", [])[-2:]))]
    col = (WIDTH - LABEL - 4) // 2
    out: list[Line] = [(f"against {a.get('runtime')} ({a.get('version') or 'version unknown'}),"
                        " the same bundle in its own --root:", "bold"),
                       (f"  {'':<{LABEL}}{'ocish':<{col}}  {a.get('runtime', '')}", "bold")]
    for label, left, right in rows:
        if not left and not right:
            continue
        lw = textwrap.wrap(left, col) or [""]
        rw = textwrap.wrap(right, col) or [""]
        for i in range(max(len(lw), len(rw))):
            out.append((f"  {label if i == 0 else '':<{LABEL}}"
                        f"{lw[i] if i < len(lw) else '':<{col}}  "
                        f"{rw[i] if i < len(rw) else ''}".rstrip(), ""))
    return out


def render_text(report: Report, styled: bool) -> str | None:
    """Plain text (returned), or printed through rich when `styled`, returning None."""
    return render_lines(lines(report), styled)


def render_lines(ls: list[Line], styled: bool) -> str | None:
    """(text, style) lines as plain text (returned), or printed through rich when `styled`,
    returning None."""
    if not styled:
        return "\n".join(text for text, _ in ls) + "\n"
    from rich.console import Console
    from rich.text import Text
    console = Console(highlight=False, soft_wrap=True)
    for text, style in ls:
        console.print(Text(text, style=style or ""))
    return None



def _patch_text(op: dict) -> str:
    verb = op.get("op")
    if verb == "remove":
        return f"remove {op['path']}"
    if verb == "move":
        return f"move {op['from']} to {op['path']}"
    return f"{verb} {op['path']} {'=' if verb == 'replace' else '<-'} {_json(op.get('value'))}"


def _json(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 160 else text[:157] + "..."


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _row(label: str, text: str) -> str:
    return _wrap(f"  {label:<{LABEL}}", text, LABEL + 2)


def _field(label: str, text: str) -> str:
    return _wrap(f"   {label:<{LABEL}}", text, LABEL + 3)


def _wrap(head: str, text: str, indent: int) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=head, subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)
