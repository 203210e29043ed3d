"""Progress while bisect tries candidates, on stderr (stdout carries the result): a rich bar on
a terminal, one plain line per try otherwise, nothing with --quiet.

The bar counts the differences ruled out so far: ddmin's current set is always the smallest
failing candidate seen, so what is left is the size of that one. rich refreshes only when told
(auto_refresh off): no refresh thread is alive when the dry run forks the container side, and
nothing of ours is written while the dry run has fds 1 and 2 pointed at the container's
output files.
"""
from __future__ import annotations

import os
import sys
from typing import TextIO

from ocish.bisect.ddmin import FAIL, PASS
from ocish.bisect.trial import Tried

RICH, PLAIN, OFF = "rich", "plain", "off"
WORDS = {PASS: "starts", FAIL: "fails as bad does", "unresolved": "fails another way"}


def mode_for(stream: TextIO, quiet: bool) -> str:
    """RICH on a terminal (not TERM=dumb), PLAIN through a pipe or file, OFF when quiet."""
    if quiet:
        return OFF
    return RICH if stream.isatty() and os.environ.get("TERM") != "dumb" else PLAIN


class Progress:
    """Reports each try; `total` is the number of differences."""

    def __init__(self, total: int, mode: str, stream: TextIO = sys.stderr) -> None:
        self.total, self.mode, self.stream = total, mode, stream
        self.left = total
        self.bar = self.task = None
        if mode == RICH:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress as Bar, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)
            self.bar = Bar(SpinnerColumn(), TextColumn("bisect"), BarColumn(),
                           TextColumn("{task.completed}/{task.total} ruled out"),
                           TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                           console=Console(file=stream), auto_refresh=False, transient=True,
                           redirect_stdout=False, redirect_stderr=False)
            self.task = self.bar.add_task("bisect", total=total, status="trying good")
            self.bar.start()
            self.bar.refresh()

    def tried(self, t: Tried, label: str) -> None:
        """One answer: `label` names the candidate ("good", "bad", "3 of 10 changes")."""
        if t.verdict == FAIL:
            self.left = min(self.left, t.size)
        how = WORDS.get(t.verdict) or t.outcome.summary()
        which = "cached" if t.cached else f"try {t.number}"
        if self.mode == PLAIN:
            text = f"bisect: {which}: {label}: {how}"
            if t.verdict and t.verdict != PASS:
                text += f" ({_short(t.outcome.summary())})"
            self.stream.write(text + "\n")
            self.stream.flush()
        elif self.bar is not None:
            self.bar.update(self.task, completed=self.total - self.left,
                            status=f"{which}: {label}: {how}")
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
