"""A verify Report as a table (item, asked, actual, verdict): plain columns for scripts and
pipes, a rich table on a terminal; mismatches also say why on a line of their own."""
from __future__ import annotations

from ocish.verify import MISMATCH, OK, Report

_STYLE = {OK: "green", MISMATCH: "bold red"}
_CELL = 48  # plain cells longer than this are cut with "..." (--json has every value)


def title(r: Report) -> str:
    who = f"container {r.id} ({r.runtime}), " if r.runtime != "pid" else ""
    return f"{who}pid {r.pid}, {r.status}: against {r.config}"


def summary(r: Report) -> str:
    c = r.counts()
    return f"{c[OK]} ok, {c['skip']} skipped, {r.mismatch_text(len(r.items))}"


def _cut(text: str) -> str:
    return text if len(text) <= _CELL else text[:_CELL - 3] + "..."


def report(r: Report, fancy: bool):
    """The table and its summary line: a string, or a rich renderable when `fancy`."""
    if not fancy:
        from ocish.render import columns
        rows = [["item", "asked", "actual", "verdict"]] + [
            [i.item, _cut(i.asked), _cut(i.actual), i.verdict + (f" ({i.note})" if i.note and
                                                                  i.verdict != OK else "")]
            for i in r.items]
        return "\n".join([title(r)] + columns(rows, "") + [summary(r)])
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
    t = Table("item", "asked", "actual", "verdict", title=title(r), title_justify="left",
              box=None, pad_edge=False)
    for i in r.items:
        verdict = Text(i.verdict, style=_STYLE.get(i.verdict, "dim"))
        if i.note and i.verdict != OK:
            verdict.append(f" {i.note}", style="dim")
        t.add_row(i.item, i.asked, i.actual, verdict)
    return Group(t, Text(summary(r), style="bold red" if r.mismatches else "bold green"))
