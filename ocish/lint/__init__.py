"""`ocish lint [BUNDLE | CONFIG.json] [--format text|json] [--strict]`: every problem of a
config, each with its severity, JSON pointer, cause and fix, without running anything.

An error is a problem `ocish create` refuses the bundle for; a warning one it lets through (the
container would fail later, or the runtime ignores the setting); info is for notes. Exit status:
0 without errors (warnings allowed, unless --strict), 1 with findings that fail, 2 when lint
cannot run (no such bundle or file, config.json unreadable, bad arguments). The checks are in
checks.py; rendering here.
"""
from __future__ import annotations

import argparse
import json
import sys

from ocish.diagnose.model import ERROR, INFO, WARNING, Finding

_STYLE = {ERROR: "bold red", WARNING: "yellow", INFO: "cyan"}


class _ArgParser(argparse.ArgumentParser):
    def __init__(self, *args, argv: list[str], **kw) -> None:
        super().__init__(*args, **kw)
        self.argv = argv

    def error(self, message: str):
        raise SystemExit(_usage_error(self.prog, message, self.argv))


def _usage_error(prog: str, message: str, argv: list[str]) -> int:
    """One line on stderr, exit status 2; with --format json a document on stdout too, as for
    every other failure (and as diagnose does)."""
    from ocish.diagnose import wants_json
    sys.stderr.write(f"{prog}: {message}\n")
    if wants_json(argv):
        sys.stdout.write(json.dumps({"error": message, "exit_status": 2}) + "\n")
    return 2


def main(argv: list[str]) -> int:
    from ocish.lint.checks import LintError, lint
    p = _ArgParser(argv=argv, prog="ocish lint", description="Check a bundle's config.json "
                   "against the runtime's own rules, the runtime-spec 1.2 schema, this host and "
                   "the rootfs; nothing is run.")
    p.add_argument("target", nargs="?", default=".", metavar="BUNDLE | CONFIG.json",
                   help="a bundle directory or a config.json (default: .)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--strict", action="store_true", help="warnings fail too (exit status 1)")
    # `ocish --root R lint ...` (the runtime's global flag): lint reads no container state
    p.add_argument("--root", help=argparse.SUPPRESS)
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        report = lint(a.target)
    except LintError as e:
        sys.stderr.write(f"ocish: lint: {e}\n")
        if a.format == "json":  # as diagnose: a tool reading stdout gets a document too
            sys.stdout.write(json.dumps({"error": str(e), "exit_status": 2}) + "\n")
        return 2
    if a.format == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        styled = sys.stdout.isatty()
        _print(text_lines(report), styled)
    return 1 if report.fails(a.strict) else 0


def summary(report) -> str:
    n = {s: report.count(s) for s in (ERROR, WARNING, INFO)}
    words = [f"{n[ERROR]} error{'s' if n[ERROR] != 1 else ''}",
             f"{n[WARNING]} warning{'s' if n[WARNING] != 1 else ''}"]
    if n[INFO]:
        words.append(f"{n[INFO]} info")
    verdict = "create refuses it" if n[ERROR] else "create takes it"
    return f"{report.config}: {', '.join(words)} ({verdict})"


def text_lines(report) -> list[tuple[str, str]]:
    """(text, rich style) lines: a summary, then each finding."""
    out = [(summary(report), "bold")]
    for f in report.findings:
        out += finding_lines(f, report.spec)
    return out


def finding_lines(f: Finding, spec, indent: str = "") -> list[tuple[str, str]]:
    """One finding: severity and pointer (with the value there), what is wrong, why, the fix."""
    from ocish.diagnose.report import _json, _patch_text
    head = f"{indent}{f.severity:<8}{f.pointer or '/'}"
    found, value = f.value_in(spec)
    if found and f.pointer:
        head += f" = {_json(value)}"
    pad = indent + " " * 8
    out = [(head, _STYLE.get(f.severity, "")), (pad + f.title, "")]
    if f.cause and f.cause != f.title:
        out.append((pad + f.cause, "dim"))
    out += [(pad + e, "dim") for e in f.evidence]
    if f.stage and f.stage != "validate":
        where = f"stage {f.stage}" + (f", {f.op}" if f.op else "") + (
            f": {f.errno_name}" if f.errno else "")
        out.append((pad + ("create fails at " if f.severity == ERROR else "fails later, at ")
                    + where, "dim"))
    if f.fix is not None:
        out.append((pad + "fix: " + f.fix.text, "green"))
        out += [(pad + "     config.json: " + _patch_text(op), "green") for op in f.fix.patch]
        if f.fix.command:
            out.append((pad + "     run: " + f.fix.command, "green"))
    return out


def _print(lines: list[tuple[str, str]], styled: bool) -> None:
    if not styled:
        sys.stdout.write("".join(text + "\n" for text, _ in lines))
        return
    from rich.console import Console
    from rich.text import Text
    console = Console(highlight=False, soft_wrap=True)
    for text, style in lines:
        console.print(Text(text, style=style))

