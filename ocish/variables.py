"""`$name`, `${name}` and `${name:-default}` in the shell's lines, as sh expands them (the
default's own references too: `${bundle:-$tmp/b}`).

The session's variables (`$bundle`, `$id`, `$rootfs`, `$root`, `$pid`, `$tmp`, `$scriptdir`)
come first, then the environment (`$HOME`). Single quotes keep a `$` literal, and so does a
backslash (`\\$`); a `$` not followed by a name stays as it is (`^x$` in a pattern). An unknown
name is an error, as with sh's `set -u`: a script with a typo fails loudly instead of
expanding to nothing.
"""
from __future__ import annotations

import shlex
from typing import Callable, Iterator

from runtime.errors import OcishError

Lookup = Callable[[str], str]


def name_at(text: str, i: int) -> tuple[str, str | None, int] | None:
    """(name, default or None, end) of a reference starting at text[i] == "$", else None."""
    if i + 1 < len(text) and text[i + 1] == "{":
        end = _closing_brace(text, i + 2)
        if end < 0:
            raise OcishError(f"a ${{ without its }} in {text!r}")
        body = text[i + 2:end]
        name, sep, default = body.partition(":-")
        if not _is_name(name):
            raise OcishError(f"bad variable reference ${{{body}}}")
        return name, default if sep else None, end + 1
    j = i + 1
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    name = text[i + 1:j]
    return (name, None, j) if _is_name(name) else None


def _closing_brace(text: str, j: int) -> int:
    """The index of the `}` that closes a `${` whose body starts at j (nested `${...}` in a
    default skipped, a backslash escapes), -1 when there is none."""
    depth = 1
    while j < len(text):
        if text.startswith("${", j):
            depth, j = depth + 1, j + 2
            continue
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def _is_name(name: str) -> bool:
    return bool(name) and (name[0].isalpha() or name[0] == "_") and all(
        c.isalnum() or c == "_" for c in name)


def value_of(name: str, default: str | None, lookup: Lookup) -> str:
    """$name's value; when it is not set, the default with its own references expanded (sh:
    `${x:-$y}` is y's value); else the lookup's error."""
    try:
        return lookup(name)
    except OcishError:
        if default is not None:
            return expand_refs(default, lookup)
        raise


def expand_refs(text: str, lookup: Lookup) -> str:
    """`text` with its references replaced by their values (`\\$` is a `$`); no quoting."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif c == "$" and (ref := name_at(text, i)) is not None:
            name, default, i = ref
            out.append(value_of(name, default, lookup))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_line(line: str, lookup: Lookup) -> str:
    """The line with its references replaced, quoted so that shlex.split gives each value as
    one word (or inside the word it is part of)."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote == "'":
            out.append(c)
            if c == "'":
                quote = ""
            i += 1
        elif c == "\\" and i + 1 < len(line):
            if quote == '"' and line[i + 1] == "$":
                out.append("$")  # shlex keeps a backslash before $ inside double quotes
            else:
                out.append(line[i:i + 2])
            i += 2
        elif c == "#" and not quote and (i == 0 or line[i - 1].isspace()):
            out.append(line[i:])  # a comment: nothing in it is expanded
            break
        elif c == "$" and (ref := name_at(line, i)) is not None:
            name, default, i = ref
            value = value_of(name, default, lookup)
            if quote == '"':
                out.append(value.replace("\\", "\\\\").replace('"', '\\"'))
            else:
                out.append(shlex.quote(value) if value else "''")
        else:
            if c in "'\"":
                quote = "" if quote == c else (quote or c)
            out.append(c)
            i += 1
    return "".join(out)


def split_words(line: str) -> list[str]:
    """The words of a line as sh splits them: quotes, backslashes, and a `#` that starts a
    comment only at the start of a word outside quotes (`echo a#b` is one word `a#b`, on
    either side of an expectation's `->`); ValueError for an unbalanced quote."""
    return shlex.split(strip_comment(line))


def unquoted(text: str) -> Iterator[int]:
    """The indices of `text`'s characters outside quotes and not escaped by a backslash, as sh
    reads them ('...' takes nothing special, "..." takes \\ escapes)."""
    quote = ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        else:
            yield i
        i += 1


def strip_comment(text: str) -> str:
    """The text before an unquoted `#` that starts a word (sh's comments)."""
    for i in unquoted(text):
        if text[i] == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text
