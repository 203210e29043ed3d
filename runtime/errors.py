"""Errors that reach the user as one line.

Every failure the user can cause (bad config, missing container, a syscall the kernel refuses) is an
`OcishError`; the CLI prints its message on one line and exits non-zero, never a traceback.
Messages are lower-case without a trailing period and read as a path through the stages, e.g.

    create failed: stage mounts: mount "proc" on "/proc" (config /mounts/1): operation not permitted
"""
from __future__ import annotations

import os


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` on one line: control characters (C0, DEL, C1, the Unicode line and paragraph
    separators) and lone surrogates escaped as in a JSON or Python literal. Every message is
    passed through it before it is shown, since messages quote values from the config and
    the command line."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000
                       else f"\\U{n:08x}")
    return "".join(out)


class OcishError(Exception):
    """A failure explained in one line; `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __str__(self) -> str:
        return self.args[0] if self.args else self.__class__.__name__


class SpecError(OcishError):
    """config.json is malformed: `pointer` is the JSON pointer of the offending item."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"config {pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


class ConfigNotJson(OcishError):
    """config.json is there but is not JSON (or not UTF-8): its text, not the bundle, is wrong."""


class _Strict:
    """A `with` guard that lets every exception through: the default where a check may be run
    under a collecting guard instead (runtime.spec's lint mode)."""
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> bool:
        return False


STRICT = _Strict()


class StageError(OcishError):
    """A setup stage failed at one operation (usually a syscall) on one target."""

    def __init__(self, stage: str, op: str, target: str = "", errno: int = 0,
                 pointer: str = "", detail: str = "") -> None:
        self.stage, self.op, self.target, self.errno = stage, op, target, errno
        self.pointer, self.detail = pointer, detail
        super().__init__(self._render())

    def _render(self) -> str:
        what = f"{self.op} {self.target}".strip()
        if self.pointer:
            what += f" (config {self.pointer})"
        why = self.detail or (os.strerror(self.errno).lower() if self.errno else "failed")
        return printable(f"stage {self.stage}: {what}: {why}")

    def to_dict(self) -> dict:
        return {"stage": self.stage, "op": self.op, "target": self.target, "errno": self.errno,
                "pointer": self.pointer, "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict) -> "StageError":
        return cls(d["stage"], d["op"], d.get("target", ""), d.get("errno", 0),
                   d.get("pointer", ""), d.get("detail", ""))


def oserror(stage: str, op: str, target: str, exc: OSError, pointer: str = "") -> StageError:
    """Wrap an OSError raised by a syscall wrapper into a StageError."""
    return StageError(stage, op, target, exc.errno or 0, pointer,
                      "" if exc.errno else str(exc))
