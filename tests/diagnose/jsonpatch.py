"""RFC 6902 JSON patch, the operations the fixes of lint and diagnose use (add, remove,
replace, move), applied as a tool that takes a fix would apply them: in order, each to the
document the previous one left."""
from __future__ import annotations

import copy


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    assert pointer.startswith("/"), pointer
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc, pointer: str):
    *path, last = _tokens(pointer)
    node = doc
    for t in path:
        node = node[int(t)] if isinstance(node, list) else node[t]
    return node, last


def _get(doc, pointer: str):
    node, last = _parent(doc, pointer)
    return node[int(last)] if isinstance(node, list) else node[last]


def _remove(doc, pointer: str):
    node, last = _parent(doc, pointer)
    return node.pop(int(last)) if isinstance(node, list) else node.pop(last)


def _add(doc, pointer: str, value) -> None:
    node, last = _parent(doc, pointer)
    if isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), value)
    else:
        node[last] = value


def apply(doc, ops: list[dict]):
    """A new document: `doc` with `ops` applied; KeyError/IndexError when one does not apply."""
    doc = copy.deepcopy(doc)
    for op in ops:
        verb, path = op["op"], op["path"]
        if verb == "add":
            _add(doc, path, copy.deepcopy(op["value"]))
        elif verb == "remove":
            _remove(doc, path)
        elif verb == "replace":
            _get(doc, path)  # must exist
            node, last = _parent(doc, path)
            node[int(last) if isinstance(node, list) else last] = copy.deepcopy(op["value"])
        elif verb == "move":
            _add(doc, path, _remove(doc, op["from"]))
        else:
            raise AssertionError(f"a fix with a {verb!r} operation: {op}")
    return doc
