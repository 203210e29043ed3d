"""Expectations: `expect` lines of scripts (and of the shell), parsed and checked.

    expect FACT OP VALUE [, FACT OP VALUE]...         facts of the container now
    expect COMMAND [ARGS] -> CLAUSE [, CLAUSE]...      run COMMAND, check what it returned

    FACT     a source and a path: ns.pid, caps.effective, mounts[/proc].fstype, state.status,
             status, ps.count (ocish/facts.py; `inspect TOPIC --paths` lists them)
    CLAUSE   PATH OP VALUE (the path relative to the command's data: status, stdout, stage,
             errno ...), or `fails`: the command must fail (then the paths are the failure's)
    OP       == != < <= > >= contains has matches in, and `not` before the last four
    VALUE    42, 64MiB, true, false, null, host (the host's value at the same path), a bare
             word, a "quoted" or 'quoted' string, a [list, of, values]; $variables expand
             (inside single quotes they do not; in a `matches` pattern they match literally)

Equality is loose where a hand-written script needs it to be: a number equals the same number
written as a string ("1000" from `id -u` == 1000); `unlimited` and `max` compare as infinity.
A failed clause says what was expected and what there was: `expected != host (4026531836),
actual 4026531836`. Model: pytest's assert rewriting (both sides shown), bats' `run` + checks
of `$status` and `$output`, Robot Framework's `Should Be Equal` keywords.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ocish import facts
from ocish.variables import Lookup, name_at, strip_comment, unquoted, value_of
from runtime.errors import OcishError

OPS = ("==", "!=", "<=", ">=", "<", ">", "contains", "has", "matches", "in")
NEGATABLE = ("contains", "has", "matches", "in")
_SIZES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT])(?:i?B)?$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)$")
_INFINITE = ("unlimited", "max", "infinity")


class ExpectSyntaxError(OcishError):
    """An expectation that cannot be read: says where in it."""


class _Host:
    def __repr__(self) -> str:
        return "host"


HOST = _Host()


def bare_meaning(text: str) -> Any:
    """What a bare (unquoted) word means: a number (sizes in binary units: 64MiB), true,
    false, null, `host`, `{}` (an empty object, as `--paths` prints one), else the word
    itself."""
    if text == "{}":
        return {}
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    m = _SIZE.match(text)
    if m:
        n = float(m.group(1)) * _SIZES[m.group(2)]
        return int(n) if n == int(n) else n
    return {"true": True, "false": False, "null": None, "host": HOST}.get(text, text)


# -- parsing -------------------------------------------------------------------------------------

@dataclass
class Word:
    """A value as written: literal text and variable references, quoted or bare."""
    parts: list[tuple[str, str, str | None]]   # ("lit", text, None) | ("var", name, default)
    quoted: bool

    def text(self, lookup: Lookup, pattern: bool = False) -> str:
        out = []
        for kind, text, default in self.parts:
            if kind == "lit":
                out.append(text)
            else:
                value = value_of(text, default, lookup)
                out.append(re.escape(value) if pattern else value)
        return "".join(out)

    def value(self, lookup: Lookup) -> Any:
        text = self.text(lookup)
        if self.quoted:
            return text
        meaning = bare_meaning(text)
        if meaning is HOST and any(k == "var" for k, _, _ in self.parts):
            return text  # `host` as a keyword is written, never expanded
        return meaning


@dataclass
class Clause:
    text: str
    path: facts.Path | None          # None for `fails`
    op: str = ""
    negated: bool = False
    value: Word | list[Word] | None = None

    @property
    def fails(self) -> bool:
        return self.path is None


@dataclass
class Expectation:
    text: str                        # as written after `expect`
    command: str                     # "" in the fact form
    clauses: list[Clause]

    @property
    def fails(self) -> bool:
        return any(c.fails for c in self.clauses)


class _Scanner:
    def __init__(self, text: str, command: str = "expect") -> None:
        self.text, self.i, self.command = text, 0, command

    def error(self, what: str) -> ExpectSyntaxError:
        return ExpectSyntaxError(f"{self.command}: {what} (at column {self.i + 1} of "
                                 f"{self.text!r})")

    def ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def end(self) -> bool:
        self.ws()
        return self.i >= len(self.text)

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def bare(self) -> str:
        """A run of characters up to whitespace or a comma; brackets may hold anything."""
        start = self.i
        while self.i < len(self.text):
            c = self.text[self.i]
            if c.isspace() or c == ",":
                break
            if c == "[":
                end = self.text.find("]", self.i)
                if end < 0:
                    raise self.error("a [ without its ]")
                self.i = end
            self.i += 1
        return self.text[start:self.i]

    def word(self, stops: str = ",") -> Word:
        """A value: quoted parts and bare parts glued together, as sh reads a word."""
        parts: list[tuple[str, str, str | None]] = []
        quoted = False
        lit: list[str] = []

        def flush() -> None:
            if lit:
                parts.append(("lit", "".join(lit), None))
                lit.clear()
        t = self.text
        while self.i < len(t) and not t[self.i].isspace() and t[self.i] not in stops:
            c = t[self.i]
            if c == "'":
                end = t.find("'", self.i + 1)
                if end < 0:
                    raise self.error("a ' without its closing '")
                lit.append(t[self.i + 1:end])
                quoted, self.i = True, end + 1
            elif c == '"':
                quoted = True
                self.i += 1
                while True:
                    if self.i >= len(t):
                        raise self.error('a " without its closing "')
                    c = t[self.i]
                    if c == '"':
                        self.i += 1
                        break
                    if c == "\\" and self.i + 1 < len(t):
                        nxt = t[self.i + 1]
                        lit.append({"n": "\n", "t": "\t"}.get(nxt, nxt if nxt in '"\\$' else c + nxt))
                        self.i += 2
                    elif c == "$" and (ref := name_at(t, self.i)) is not None:
                        flush()
                        parts.append(("var", ref[0], ref[1]))
                        self.i = ref[2]
                    else:
                        lit.append(c)
                        self.i += 1
            elif c == "\\" and self.i + 1 < len(t):
                lit.append(t[self.i + 1])
                self.i += 2
            elif c == "$" and (ref := name_at(t, self.i)) is not None:
                flush()
                parts.append(("var", ref[0], ref[1]))
                self.i = ref[2]
            else:
                lit.append(c)
                self.i += 1
        flush()
        if not parts and not quoted:
            raise self.error("a value is missing")
        return Word(parts, quoted)

    def value(self, op: str) -> Word | list[Word]:
        self.ws()
        if self.peek() != "[" or op == "matches":
            return self.word()
        self.i += 1
        items: list[Word] = []
        while True:
            self.ws()
            if self.peek() == "]":
                self.i += 1
                return items
            items.append(self.word(",]"))
            self.ws()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                raise self.error("a list's items are separated by commas and end with ]")


def _check_pattern(word: Word, s: _Scanner) -> None:
    """A `matches` pattern that is no regular expression is a syntax error (found when the
    script is read, FILE:LINE), not a failure when it is checked. Variables match literally,
    so any value stands in for them here."""
    text = "".join(t if kind == "lit" else "x" for kind, t, _ in word.parts)
    try:
        re.compile(text)
    except re.error as e:
        raise s.error(f"the pattern {text!r} is not a regular expression: {e}") from None


def split_arrow(text: str) -> tuple[str, str] | None:
    """(command, clauses) around the first unquoted ` -> `, None when there is none."""
    for i in unquoted(text):
        if (text.startswith("->", i) and (i == 0 or text[i - 1].isspace())
                and (i + 2 == len(text) or text[i + 2].isspace())):
            return text[:i].strip(), text[i + 2:].strip()
    return None


def parse(text: str) -> Expectation:
    """An expectation (the text after `expect`, a `#` comment allowed); raises
    ExpectSyntaxError."""
    text = strip_comment(text).strip()
    if not text:
        raise ExpectSyntaxError("expect: nothing to check: `expect FACT OP VALUE` or "
                                "`expect COMMAND -> CLAUSES` (`help expect`)")
    split = split_arrow(text)
    command, rest = split if split else ("", text)
    if split and not command:
        raise ExpectSyntaxError(f"expect: no command before -> in {text!r}")
    if not command and rest.startswith("-"):
        raise ExpectSyntaxError(f"expect takes no options ({rest.split()[0]!r}): what it "
                                "returns is a check, not data; write `expect FACT OP VALUE` or "
                                "`expect COMMAND -> CLAUSES` (`help expect`)")
    clauses = parse_clauses(rest, sources=not command, allow_fails=bool(command),
                            after_arrow=bool(split))
    return Expectation(text, command, clauses)


def parse_clauses(rest: str, sources: bool = False, allow_fails: bool = False,
                  after_arrow: bool = False, command: str = "expect") -> list[Clause]:
    """`PATH OP VALUE [, PATH OP VALUE]...` (and `fails` with `allow_fails`); with `sources`,
    each path starts with one of facts.SOURCES. Also the condition of `break ... if COND`
    (`command` names it in errors). Raises ExpectSyntaxError."""
    s = _Scanner(rest, command)
    clauses: list[Clause] = []
    while True:
        if s.end():
            raise s.error("a check is missing" + (" after ->" if after_arrow and not clauses
                                                  else " after ','"))
        start = s.i
        path_text = s.bare()
        if path_text == "fails" and allow_fails:
            clauses.append(Clause("fails", None))
        else:
            try:
                path = facts.parse_path(path_text)
            except facts.PathError as e:
                raise s.error(str(e)) from None
            if sources and path.keys[0] not in facts.SOURCES:
                raise s.error(f"unknown source {path.keys[0]!r}: a fact starts with one of "
                              f"{', '.join(facts.SOURCES)} (or run a command: "
                              f"`expect COMMAND -> CLAUSES`)")
            s.ws()
            op_start = s.i
            op = s.bare()
            negated = op == "not"
            if negated:
                s.ws()
                op = s.bare()
            if op not in OPS or (negated and op not in NEGATABLE):
                s.i = op_start
                hint = " (== compares)" if op == "=" else ""
                raise s.error(f"after {path_text}, an operator: {' '.join(OPS)}, or `not` "
                              f"before {'/'.join(NEGATABLE)}; not {op!r}{hint}")
            value_start = s.i
            value = s.value(op)
            if op == "matches":
                value_end, s.i = s.i, value_start  # an error points at the pattern
                _check_pattern(value, s)
                s.i = value_end
            clauses.append(Clause(rest[start:s.i].strip(), path, op, negated, value))
        if s.end():
            break
        if s.peek() != ",":
            raise s.error("a ',' between checks, or the end of the line; quote a value that "
                          "has spaces")
        s.i += 1
    return clauses


# -- checking ------------------------------------------------------------------------------------

@dataclass
class ClauseResult:
    clause: str
    ok: bool
    expected: str
    actual: str


@dataclass
class Checked:
    """An expectation checked: ok, or the failed clauses with the expected and actual values;
    `message` is the first failure in one line."""
    expectation: str
    ok: bool
    results: list[ClauseResult] = field(default_factory=list)
    message: str = ""
    command_error: str = ""          # the command's own error, when it failed


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        text = v.strip()
        if text.lower() in _INFINITE:
            return math.inf
        try:
            return float(text)
        except ValueError:
            return None
    return None


def equal(actual: Any, expected: Any) -> bool:
    """Loose equality: numbers match numbers written as strings; lists item by item."""
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(equal(a, e) for a, e in zip(actual, expected)))
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and actual.keys() == expected.keys()
                and all(equal(actual[k], v) for k, v in expected.items()))
    if expected is None or isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, (int, float)):
        n = _num(actual)
        return n is not None and n == expected
    if isinstance(actual, str):
        return actual == expected
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        n = _num(expected)
        return n is not None and n == actual
    return False


def _text(v: Any) -> str:
    return v if isinstance(v, str) else facts.format_value(v)


def compare(actual: Any, op: str, expected: Any) -> tuple[bool, str]:
    """Whether `actual OP expected` holds, and why not when it cannot even be compared."""
    if op == "==":
        return equal(actual, expected), ""
    if op == "!=":
        return not equal(actual, expected), ""
    if op in ("<", "<=", ">", ">="):
        a, e = _num(actual), _num(expected)
        if e is None:
            return False, f"{facts.format_value(expected)} is not a number"
        if a is None:
            return False, "not a number"
        return {"<": a < e, "<=": a <= e, ">": a > e, ">=": a >= e}[op], ""
    if op == "contains":
        if isinstance(actual, list):
            return any(equal(a, expected) for a in actual), ""
        if isinstance(actual, dict):
            return _text(expected) in actual, ""
        if isinstance(actual, str):
            return _text(expected) in actual, ""
        return False, "not a list, object or string"
    if op == "has":
        if isinstance(actual, dict):
            return _text(expected) in actual, ""
        if isinstance(actual, list):
            return any(equal(a, expected) for a in actual), ""
        return False, "not an object or list"
    if op == "matches":
        try:
            rx = re.compile(_text(expected))
        except re.error as e:
            return False, f"the pattern is not a regular expression: {e}"
        items = actual if isinstance(actual, list) else [actual]
        return any(rx.search(_text(a)) for a in items), ""
    if op == "in":
        if isinstance(expected, list):
            return any(equal(actual, e) for e in expected), ""
        return isinstance(actual, str) and actual in _text(expected), ""
    raise AssertionError(op)


def _show(v: Any, limit: int = 300) -> str:
    text = facts.format_value(v)
    return text if len(text) <= limit else text[:limit] + " ..."


Source = Callable[[str], Any]


def check_clause(c: Clause, view: Any, start: str, keys: tuple[str, ...], host: Source | None,
                 lookup: Lookup) -> ClauseResult:
    """One clause against `view` (the path's `keys` from `start`); `host()` gives the host's
    view for `host` values. Raises OcishError for a $variable that is not set."""
    op = ("not " if c.negated else "") + c.op
    # an unknown $variable raises: the script is wrong, not the container
    if isinstance(c.value, list):
        expected: Any = [w.value(lookup) for w in c.value]
        shown = _show(expected)
    else:
        if c.op == "matches":
            expected = c.value.text(lookup, pattern=True)
        else:
            expected = c.value.value(lookup)
        shown = "host" if expected is HOST else _show(expected)
    try:
        actual = facts.lookup(view, keys, start)
    except facts.PathError as e:
        return ClauseResult(c.text, False, f"{op} {shown}", f"(no such fact: {e})")
    if expected is HOST:
        if host is None:
            return ClauseResult(c.text, False, f"{op} host",
                                f"(no host value: only inspect topics have one)")
        try:
            expected = facts.lookup(host(), keys, "host")
        except facts.PathError as e:
            return ClauseResult(c.text, False, f"{op} host", f"(the host has none: {e})")
        except OSError as e:
            return ClauseResult(c.text, False, f"{op} host", f"(cannot read the host's: {e})")
        shown = f"host ({_show(expected)})"
    ok, why = compare(actual, c.op, expected)
    if c.negated and not why:
        ok = not ok
    return ClauseResult(c.text, ok, f"{op} {shown}", _show(actual) + (f" ({why})" if why else ""))


def message(checked: Checked) -> str:
    """One line: every failed clause, expected and actual."""
    bad = [r for r in checked.results if not r.ok]
    return "; ".join(f"{r.clause}: expected {r.expected}, actual {r.actual}" for r in bad)


def evaluate(exp: Expectation, source: Source, run: Callable[[str], Any],
             lookup: Lookup) -> Checked:
    """Check `exp`: the fact form reads each source once with `source(name)`; the command form
    runs its command with `run(line)` (an Outcome) and checks its data, or its failure."""
    done = Checked(exp.text, True)
    hosts: dict[str, Any] = {}

    def host_of(topic: str) -> Source:
        def get() -> Any:
            if topic not in hosts:
                hosts[topic] = facts.host_view(topic)
            return hosts[topic]
        return get
    if exp.command:
        out = run(exp.command)
        name = out.command or exp.command.split()[0]
        if not out.ok:
            done.command_error = out.error
        if out.ok and exp.fails:
            done.results.append(ClauseResult("fails", False, "the command fails",
                                             "it succeeded"))
        elif not out.ok and not exp.fails:
            done.results.append(ClauseResult(exp.command, False, "the command succeeds",
                                             f"it failed: {out.error}"))
        else:
            view = (facts.failure_view(out.error, out.exception, out.data) if not out.ok
                    else facts.command_view(out.command, out.args, out.data))
            host = None
            if out.ok and out.command == "inspect" and out.args.pos:
                from ocish.commands import pick
                topic = pick(out.args.pos[0], facts.TOPICS + ("all",), "topic")
                host = host_of(topic) if topic != "all" else None
            for c in exp.clauses:
                if not c.fails:
                    done.results.append(check_clause(c, view, name, c.path.keys, host, lookup))
    else:
        views: dict[str, Any] = {}
        for c in exp.clauses:
            src = c.path.keys[0]
            if src not in views:
                try:
                    views[src] = source(src)
                except (OcishError, OSError) as e:
                    views[src] = e
            if isinstance(views[src], Exception):
                done.results.append(ClauseResult(c.text, False, f"{c.op} ...",
                                                 f"(cannot read {src}: {views[src]})"))
                continue
            host = host_of(src) if src in facts.TOPICS else None
            done.results.append(check_clause(c, views[src], src, c.path.keys[1:], host, lookup))
    done.ok = all(r.ok for r in done.results)
    done.message = message(done)
    return done
