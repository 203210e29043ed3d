"""Reading a script (`*.ocish`): its lines, each checked before anything runs.

A script is the shell's own commands, one a line, `#` comments and blank lines, plus `expect`
lines (ocish/expect.py). Every line is checked up front, as a compiler would: an unknown command,
a flag the command does not take, an unbalanced quote or an expectation that cannot be read is
a syntax error with FILE:LINE, and nothing of the script runs. What needs the container (a
breakpoint's stage, a path under a fact) can only be checked when the line runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.errors import OcishError

# what a replayed script may not do: it owns its container and removes everything at the end
REFUSED = {"attach": "replay sets up its own containers: `load BUNDLE`, not attach",
           "record": "record writes an interactive session; a script is already one"}


class ScriptSyntaxError(OcishError):
    """FILE:LINE: what is wrong (`text`: the line as written)."""

    def __init__(self, file: str, line: int, message: str, text: str = "") -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message, self.text = file, line, message, text


@dataclass
class Line:
    number: int
    text: str
    command: str          # the command's name; "expect" for an expectation


@dataclass
class Script:
    file: str             # as given on the command line
    path: str             # absolute
    lines: list[Line]

    @property
    def expectations(self) -> int:
        return sum(1 for ln in self.lines if ln.command == "expect")


def _check_command(text: str) -> str:
    """The name of the command `text` runs; raises OcishError when it cannot run as written."""
    from ocish.commands import bang, parse_args, resolve
    from ocish.variables import split_words
    words = split_words(bang(text))  # ValueError: an unbalanced quote
    cmd = resolve(words[0])
    if cmd.name in REFUSED:
        raise OcishError(f"{cmd.name}: {REFUSED[cmd.name]}")
    if cmd.raw:
        return cmd.name
    args = (cmd.parse or parse_args)(cmd, words[1:])
    if cmd.name == "quit" and args.opts.get("keep"):
        raise OcishError("quit --keep: a replay removes everything it made; `quit` ends the "
                         "script early")
    return cmd.name


def parse(file: str) -> Script:
    """Read and check `file`; raises ScriptSyntaxError (FILE:LINE) or OcishError (unreadable)."""
    from ocish import expect
    try:
        with open(file, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise OcishError(f"{file}: {os.strerror(e.errno or 0).lower()}") from None
    except UnicodeDecodeError:
        raise OcishError(f"{file}: not a text file (UTF-8)") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        first, rest = (stripped.split(None, 1) + [""])[:2]
        try:
            from ocish.commands import resolve
            if resolve(first).name == "expect":
                exp = expect.parse(rest)
                if exp.command:
                    _check_command(exp.command)
                name = "expect"
            else:
                name = _check_command(stripped)
        except ValueError as e:
            raise ScriptSyntaxError(file, number, f"cannot parse the line: {str(e).lower()}",
                                    stripped) from None
        except OcishError as e:
            raise ScriptSyntaxError(file, number, str(e), stripped) from None
        lines.append(Line(number, stripped, name))
    return Script(file, os.path.abspath(file), lines)
