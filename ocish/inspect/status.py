"""/proc/<pid>/status as a dict (shared by the caps, ids, seccomp and proc readers)."""
from __future__ import annotations


def read_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in f.read().splitlines())}


def ints(value: str) -> list[int]:
    return [int(x) for x in value.split()]
