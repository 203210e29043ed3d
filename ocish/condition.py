"""Breakpoint conditions: `break mounts if type == bind`, `tbreak exec:caps if item == ...`.

A condition is expect's clause language (ocish/expect.py: PATH OP VALUE, joined by ',' for
"and"; == != < <= > >= contains has matches in, `not` before the last four), parsed by the same
parser and checked by the same comparisons: never eval(). Its paths name the fields of the
step the breakpoint is about to stop before:

    stage        the stage's name (mounts)
    item         the step's item (/mounts/2, rootfs, devices, ioPriority ...; "" for a stage
                 of one step)
    FIELD        when the item is a config.json pointer to an object, that object's fields:
                 type, source, destination, options for a mount; path, args for a hook ...

A breakpoint with a condition and no item is checked before every step of its stage (gdb
checks a conditional breakpoint each time it is reached); it stops where the condition holds.
"""
from __future__ import annotations

from typing import Any

from ocish import expect
from ocish.expect import Clause
from runtime.errors import OcishError

# words that stay bare when the shell's split words are joined back into a condition
_BARE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.:@+-[]")


def join(words: list[str]) -> str:
    """The condition as text again, from the words the command line was split into: each
    word bare when it can be (an operator, a path, a simple value, a trailing ','), else in
    double quotes, so that a value with spaces stays one value."""
    out = []
    for w in words:
        core, comma = (w[:-1], ",") if w.endswith(",") and len(w) > 1 else (w, "")
        if core in expect.OPS or core in ("not", ",") or (core and set(core) <= _BARE):
            out.append(core + comma)
        else:
            out.append('"' + core.replace("\\", "\\\\").replace('"', '\\"') + '"' + comma)
    return " ".join(out)


def parse(text: str) -> list[Clause]:
    """The clauses of a condition; raises ExpectSyntaxError that says where."""
    return expect.parse_clauses(text, command="break ... if")


def fields(stage: str, spec: dict, item: str) -> dict[str, Any]:
    """What a condition can name about the step (stage, item): see the module's doc."""
    view: dict[str, Any] = {}
    if item.startswith("/"):
        from ocish.diagnose.model import resolve_pointer
        found, value = resolve_pointer(spec, item)
        if found and isinstance(value, dict):
            view.update(value)
    view.update(stage=stage, item=item)
    return view


def _no_variables(name: str) -> str:
    raise OcishError(f"${name}: variables expand when `break` is typed, not in its condition")


def holds(clauses: list[Clause], view: dict[str, Any]) -> bool:
    """Whether every clause holds for `view`; a field the step does not have makes the
    condition false there (a mount's `type` before the rootfs item)."""
    return all(expect.check_clause(c, view, "item", c.path.keys, None, _no_variables).ok
               for c in clauses)


def names(clauses: list[Clause]) -> list[str]:
    """The first key of every clause's path: the fields the condition reads."""
    return [c.path.keys[0] for c in clauses]
