"""The environment the process was started with (/proc/<pid>/environ)."""
from __future__ import annotations

from ocish.inspect import Target


def read(t: Target) -> list[str]:
    with open(f"/proc/{t.pid}/environ", "rb") as f:
        return [e.decode(errors="backslashreplace") for e in f.read().split(b"\0") if e]
