"""Pipelines for tests that drive the engine on the real kernel with stages of their own.

The container side imports this module by reference (engine.build), so it has no side effects:
no pytest, no tests.conftest (which enters a mount namespace when imported).
"""
from __future__ import annotations

from runtime.engine import CONTAINER, Context, Stage
from runtime.stages.cgroup import Cgroup, Limits


class Hog(Stage):
    name = "hog"
    side = CONTAINER
    summary = "allocate and touch memory in the container process"

    def __init__(self, mib: int) -> None:
        self.mib = mib

    def run(self, ctx: Context, item: str = "") -> None:
        ctx.notes["hog"] = b"x" * (self.mib << 20)


def cgroup_then_hog(mib: int) -> list[Stage]:
    """The real `cgroup` and `limits` stages, then a container side that needs `mib` MiB."""
    cgroup = Cgroup()
    return [cgroup, Limits(cgroup), Hog(mib)]
