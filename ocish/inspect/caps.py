"""Capabilities: the five sets of /proc/<pid>/status, decoded to CAP_ names."""
from __future__ import annotations

from dataclasses import dataclass

from ocish.inspect import Target
from ocish.inspect.status import read_status
from runtime.linux import capabilities

SETS = (("CapInh", "inheritable"), ("CapPrm", "permitted"), ("CapEff", "effective"),
        ("CapBnd", "bounding"), ("CapAmb", "ambient"))


@dataclass
class CapSet:
    name: str
    mask: str          # as the kernel prints it, 16 hex digits
    caps: list[str]


@dataclass
class Caps:
    sets: list[CapSet]


def read(t: Target) -> Caps:
    st = read_status(t.pid)
    return Caps([CapSet(name, st[key], capabilities.names(int(st[key], 16))) for key, name in SETS])
