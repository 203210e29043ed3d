"""Zeller's delta debugging, ddmin (A. Zeller, R. Hildebrandt, "Simplifying and Isolating
Failure-Inducing Input", IEEE TSE 28(2), 2002, section 3): the smallest set of changes, applied
to a passing input, that still makes it fail.

    n = 2
    while |c| >= 2:
        split c into n parts
        a part fails               -> c = that part, n = 2            ("reduce to subset")
        else a complement fails    -> c = the complement, n = n - 1   ("reduce to complement")
        else n < |c|               -> n = min(2n, |c|)                ("increase granularity")
        else                       -> done
    
The result is 1-minimal: taking away any one change makes the failure go. A test answers
PASS, FAIL or UNRESOLVED (it fails some other way); only FAIL reduces, as in the paper.
Complements are tried only when n > 2 (with two parts, each is the other's complement).
"""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

PASS, FAIL, UNRESOLVED = "pass", "fail", "unresolved"
T = TypeVar("T")


def split(items: Sequence[T], n: int) -> list[list[T]]:
    """`items` in `n` contiguous parts whose sizes differ by at most one (the larger first)."""
    size, extra = divmod(len(items), n)
    parts, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(list(items[start:end]))
        start = end
    return parts


def ddmin(changes: Sequence[T], test: Callable[[list[T]], str]) -> list[T]:
    """The 1-minimal failing subset of `changes` (which fails as a whole: the caller has seen
    it fail). `test(subset)` returns PASS, FAIL or UNRESOLVED; subsets keep `changes`' order.
    The caller caches: the same subset may be asked for twice."""
    c = list(changes)
    n = 2
    while len(c) >= 2:
        parts = split(c, n)
        failing = next((p for p in parts if test(p) == FAIL), None)
        if failing is not None:
            c, n = failing, 2
            continue
        if n > 2:
            complements = ([x for x in c if x not in p] for p in parts)
            failing = next((k for k in complements if test(k) == FAIL), None)
            if failing is not None:
                c, n = failing, max(n - 1, 2)
                continue
        if n >= len(c):
            break
        n = min(2 * n, len(c))
    return c
