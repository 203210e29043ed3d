"""Pairs of measurements and what is printed of them: medians, spreads and ratios."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        return cls(statistics.median(values), min(values), max(values))

    def as_dict(self) -> dict:
        return {"median": self.median, "min": self.low, "max": self.high}


@dataclass
class Result:
    """One workload: `other` and `ocish` in `unit` (ms or MiB), paired round by round; `ratio`
    is ocish/other per pair. `target` is the issue's bound on the ratio (or, for the debugger's
    figures, on ocish's own value), `goal` its direction ("ratio" or "value")."""
    name: str
    unit: str
    ocish: Spread
    other: Spread | None = None
    ratio: Spread | None = None
    target: float | None = None
    goal: str = "ratio"
    rounds: int = 0
    notes: list[str] = field(default_factory=list)
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (other, ocish) each round

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio.median if self.goal == "ratio" and self.ratio else self.ocish.median
        return value <= self.target

    def as_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "rounds": self.rounds,
                "ocish": self.ocish.as_dict(),
                "other": self.other.as_dict() if self.other else None,
                "ratio": self.ratio.as_dict() if self.ratio else None,
                "target": self.target, "goal": self.goal, "met": self.met, "notes": self.notes,
                "pairs": self.pairs}


def paired(name: str, unit: str, other: list[float], mine: list[float],
           target: float | None) -> Result:
    """A Result from values measured pair by pair (same length, same order)."""
    ratios = [m / o for m, o in zip(mine, other) if o > 0]
    return Result(name, unit, Spread.of(mine), Spread.of(other),
                  Spread.of(ratios) if ratios else None, target, "ratio", len(mine),
                  pairs=list(zip(other, mine)))


def _num(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}" if abs(x) < 100 else f"{x:.0f}"


def table(results: list[Result], other: str) -> str:
    """A Markdown table (the README's speed section takes it as it is)."""
    head = (f"| workload | {other} | ocish | ratio (min–max) | target |\n"
            "|---|---|---|---|---|")
    rows = []
    for r in results:
        theirs = f"{_num(r.other.median)} {r.unit}" if r.other else "–"
        ratio = (f"**{r.ratio.median:.2f}** ({r.ratio.low:.2f}–{r.ratio.high:.2f})"
                 if r.ratio else "–")
        if r.target is None:
            target = ""
        else:
            bound = f"≤ {r.target:g}" + ("" if r.goal == "ratio" else f" {r.unit}")
            target = f"{bound}: {'met' if r.met else 'not met'}"
        rows.append(f"| {r.name} | {theirs} | {_num(r.ocish.median)} {r.unit} | {ratio} | "
                    f"{target} |")
    return "\n".join([head, *rows])
