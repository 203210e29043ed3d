"""json.loads/json.dumps on CPython's C accelerator `_json`, without importing `json`.

`import json` pulls in `re` (several ms at every runtime start here); the runtime parses and
writes small documents on its hot path, so it talks to `_json` directly and imports `json` only
to explain a document that does not parse.
"""
from __future__ import annotations

import _json


class NotJson(ValueError):
    """NaN, Infinity and -Infinity: Python's json accepts them, JSON does not."""


class _ScanContext:
    """What `_json.make_scanner` reads off a JSONDecoder; NaN and Infinity are not JSON."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str):
        raise NotJson(name)


_scan = _json.make_scanner(_ScanContext())
_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, False)
_WS = " \t\n\r"


def loads(text: str):
    n, i = len(text), 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        value, end = _scan(text, i)
    except (StopIteration, ValueError, RecursionError, SystemError):
        # SystemError: _json reports a syntax error by raising json.decoder.JSONDecodeError,
        # which it takes from sys.modules; with `json` not imported it "returned NULL without
        # setting an exception" (CPython 3.11, Modules/_json.c raise_errmsg)
        end = -1
    else:
        while end < n and text[end] in _WS:
            end += 1
    if end != n:  # let json word the error (line, column, what was expected)
        import json
        return json.loads(text, parse_constant=_ScanContext.parse_constant)
    return value


def quote(s: str) -> str:
    """A JSON string literal, non-ASCII kept as is (for messages)."""
    return _json.encode_basestring(s)


def dumps(obj, indent: int | None = None) -> str:
    if indent is None:
        return "".join(_encode(obj, 0))
    return _pretty(obj, indent, 0)


def _pretty(obj, indent: int, level: int) -> str:
    if isinstance(obj, dict) and obj:
        pad = "\n" + " " * indent * (level + 1)
        body = ",".join(f"{pad}{dumps(str(k))}: {_pretty(v, indent, level + 1)}" for k, v in obj.items())
        return "{" + body + "\n" + " " * indent * level + "}"
    if isinstance(obj, (list, tuple)) and obj:
        pad = "\n" + " " * indent * (level + 1)
        body = ",".join(f"{pad}{_pretty(v, indent, level + 1)}" for v in obj)
        return "[" + body + "\n" + " " * indent * level + "]"
    return dumps(obj)


MAX_OBJECT = 16 << 20  # --process and -r documents: as config.json's cap (runtime/spec.py)


def read_object(source: str, what: str) -> dict:
    """A JSON object from the file `source` ("-": stdin), as runc's --process and -r read them,
    at most MAX_OBJECT bytes. Errors are OSError (unreadable) or ValueError, worded for one
    line."""
    import os
    fd, name = (0, "stdin") if source == "-" else (os.open(source, os.O_RDONLY | os.O_CLOEXEC),
                                                   source)
    try:
        data = b""
        while len(data) <= MAX_OBJECT and (chunk := os.read(fd, MAX_OBJECT + 1 - len(data))):
            data += chunk
    finally:
        if fd:
            os.close(fd)
    if len(data) > MAX_OBJECT:
        raise ValueError(f"{name}: larger than {MAX_OBJECT} bytes")
    try:
        value = loads(data.decode())
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: not valid utf-8 at byte {e.start}") from None
    except RecursionError:
        raise ValueError(f"{name}: invalid json: nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"{name}: invalid json: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name}: {what} must be a JSON object")
    return value
