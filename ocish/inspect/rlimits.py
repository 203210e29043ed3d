"""Resource limits: the table of /proc/<pid>/limits."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ocish.inspect import Target

_ROW = re.compile(r"^(.+?)\s{2,}(\S+)\s+(\S+)\s*(\S*)\s*$")


@dataclass
class Rlimit:
    name: str
    soft: str
    hard: str
    units: str


def read(t: Target) -> list[Rlimit]:
    with open(f"/proc/{t.pid}/limits") as f:
        lines = f.read().splitlines()[1:]
    return [Rlimit(*m.groups()) for m in map(_ROW.match, lines) if m]
