"""Render a bisection: text (rich colours on a terminal, plain otherwise) or JSON. The diagnosis
part is diagnose's own rendering of its findings (ocish/diagnose/report.py)."""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field

from ocish.bisect.delta import Change
from ocish.diagnose import report as diagnose_render
from ocish.diagnose.model import ERROR, Report, verdict

Line = tuple[str, str]


@dataclass
class Result:
    """What bisect found: every difference, BAD's failure, the 1-minimal set of changes (as
    found, pointers into BAD) and its patch (RFC 6902 on GOOD), the diagnosis of GOOD with that
    patch, and the cost: `tries` containers run (GOOD, BAD and the candidates; the diagnosis
    not counted), `cached` answers from the cache, seconds in all."""
    good: str
    bad: str
    differences: list[Change]
    failure: str
    minimal: list[Change]
    patch: list[dict]
    diagnosis: Report
    tries: int = 0
    cached: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        """The minimal change failed again when diagnosed (not a flaky failure)."""
        return not self.diagnosis.healthy

    def to_dict(self) -> dict:
        d = self.diagnosis
        return {"good": self.good, "bad": self.bad,
                "differences": [c.to_dict() for c in self.differences],
                "failure": self.failure,
                "minimal": [c.to_dict() for c in self.minimal],
                "patch": self.patch,
                "diagnosis": {"verdict": verdict(d), "dry_run": d.outcome.summary(),
                              "findings": [f.to_dict(d.spec) for f in d.findings]},
                "reproduced": self.reproduced, "tries": self.tries, "cached": self.cached,
                "seconds": round(self.seconds, 3), "notes": self.notes}


def to_json(result: Result) -> str:
    return json.dumps(result.to_dict(), indent=2)


def lines(r: Result) -> list[Line]:
    n, m = len(r.differences), len(r.minimal)
    out: list[Line] = [(f"ocish bisect {r.good} {r.bad}", "bold"),
                       (_row("differences", f"{n} (JSON pointers into bad's config)"), ""),
                       (_row("bad", r.failure), ""),
                       (_row("tries", f"{r.tries} containers (good, bad, candidates), "
                                      f"{r.cached} answers from the cache; {r.seconds:.1f}s in "
                                      "all"), ""),
                       (_row("minimal", f"{m} of {n} change{'s' if n != 1 else ''}: "
                             + ("this one alone makes good fail as bad does" if m == 1 else
                                "together they make good fail as bad does; without any one of "
                                "them it does not")), "bold")]
    out += [(_row("", f"{c.op} {c.pointer} (in {'good' if c.op == 'remove' else 'bad'}'s "
                      "config)"), "") for c in r.minimal]
    out += [(_row("note", note), "dim") for note in r.notes]
    out += [("", ""), ("the change, as a JSON patch (RFC 6902) on good's config.json:", "bold"),
            ("[", "")]
    out += [("  " + json.dumps(op) + ("," if i < len(r.patch) - 1 else ""), "green")
            for i, op in enumerate(r.patch)]
    out += [("]", ""), ("", ""),
            ("the diagnosis of good with this patch (`ocish diagnose`):", "bold"),
            (_row("dry run", r.diagnosis.outcome.summary()), ""),
            (_row("verdict", verdict(r.diagnosis)), "bold red" if r.reproduced else "yellow")]
    for i, f in enumerate((f for f in r.diagnosis.findings if f.severity == ERROR), 1):
        out += diagnose_render.finding_lines(i, f, r.diagnosis.spec)
    return out


def render_text(r: Result, styled: bool) -> str | None:
    """Plain text (returned), or printed through rich when `styled`, returning None."""
    return diagnose_render.render_lines(lines(r), styled)


def _row(label: str, text: str) -> str:
    return textwrap.fill(text, diagnose_render.WIDTH, initial_indent=f"  {label:<12}",
                         subsequent_indent=" " * 14, break_long_words=False,
                         break_on_hyphens=False)
