"""The differences between two config.json documents as units that delta debugging takes or leaves
one by one, the config a chosen set of them makes, and that config as an RFC 6902 patch.

What one unit (a `Change`) is, by where it sits:

    objects   a member only one side has: one "add" or "remove" of its whole value; a member both
              have with different values: compared inside, recursively
    scalars   a different value (or a different JSON type): one "replace"
    arrays    by what an item means (ARRAYS below):
      whole   the array is one value: process.args (an argv), the id maps, the device cgroup
              rules and each hook list (order is their meaning: half of GOOD's argv and half of
              BAD's is no command anyone wrote): one "replace"
      keyed   items named by a member: mounts by destination, env by variable name, namespaces
              and rlimits by type, devices by path, hugepage limits by page size, net_prio by
              interface name: an item only one side has is one "add"/"remove"; an item both
              have is compared inside (/mounts/3/source); a variable whose value changed is
              one "replace"
      set     every other array (the capability sets, maskedPaths, readonlyPaths, mount
              options, seccomp rules and architectures, additionalGids): an item is its whole
              value, and each item only one side has is one "add"/"remove"
    For keyed and set arrays, a different order of the items both sides have is one more unit
    ("order"): mount order decides what covers what, so it is a change of its own.

A unit is named by its JSON pointer into BAD's config (into GOOD's for a "remove"). Items that
repeat (two mounts on one destination, an env variable twice) are told apart by occurrence.
The config a set of units makes is GOOD with those units taken from BAD: removed items go,
a reordering puts the shared items in BAD's order, an added item goes right after the item
that precedes it in BAD (first when none does). With every unit it is BAD, with none GOOD.
The patch of a config is computed from the two documents themselves, so its array indexes are
right for operations applied in order (RFC 6902 section 3).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

WHOLE, SET = "whole", "set"
# pattern (tokens from the root, "*" for any array index) -> WHOLE, or the member that keys items
ARRAYS: dict[tuple[str, ...], str] = {
    ("process", "args"): WHOLE,
    ("linux", "uidMappings"): WHOLE,
    ("linux", "gidMappings"): WHOLE,
    ("mounts", "*", "uidMappings"): WHOLE,
    ("mounts", "*", "gidMappings"): WHOLE,
    ("linux", "resources", "devices"): WHOLE,
    ("hooks", "*"): WHOLE,
    ("mounts",): "destination",
    ("process", "env"): "=",          # KEY=value strings: keyed by KEY
    ("linux", "namespaces"): "type",
    ("process", "rlimits"): "type",
    ("linux", "devices"): "path",
    ("linux", "resources", "hugepageLimits"): "pageSize",
    ("linux", "resources", "network", "priorities"): "name",
}


@dataclass(frozen=True)
class Change:
    """One difference: `op` add | remove | replace | order, at `pointer` (BAD's config; GOOD's
    for a remove), `value` BAD's value there (None for a remove), `old` GOOD's (None for an
    add). `uid` identifies it whatever else is taken (array items by key, not index)."""
    uid: tuple
    op: str
    pointer: str
    value: object
    old: object

    def to_dict(self) -> dict:
        d: dict = {"op": self.op, "path": self.pointer}
        if self.op != "remove":
            d["value"] = self.value
        return d


def changes(good: dict, bad: dict) -> list[Change]:
    """Every unit of difference between `good` and `bad`, in document order."""
    found: list[Change] = []
    merged = _Walk(lambda _uid: True, found).value(good, bad, (), "", "", ())
    if not same(merged, bad):  # the walk's own promise; a bug of ours if broken
        raise AssertionError("the differences do not rebuild the bad config")
    return found


def candidate(good: dict, bad: dict, chosen: set[tuple]) -> dict:
    """GOOD with the units whose uid is in `chosen` taken from BAD."""
    return _Walk(lambda uid: uid in chosen, None).value(good, bad, (), "", "", ())


def patch(good, new) -> list[dict]:
    """RFC 6902 operations that turn `good` into `new` (both as `candidate` makes them), at
    the granularity above; a shared-items reorder becomes one "replace" of the array."""
    ops: list[dict] = []
    _patch(good, new, (), "", ops)
    return ops


def same(a, b) -> bool:
    """Equal as JSON (true is not 1, member order does not count)."""
    return canonical(a) == canonical(b)


def canonical(v) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


def array_kind(pattern: tuple[str, ...]) -> str:
    """WHOLE, SET, or the member that keys the items of the array at `pattern`."""
    return ARRAYS.get(pattern) or ARRAYS.get(pattern[:-1] + ("*",)) or SET


def escape(token: str) -> str:
    """A member name as a JSON pointer token (RFC 6901: ~ is ~0, / is ~1)."""
    return token.replace("~", "~0").replace("/", "~1")


def _keys(items: list, kind: str) -> list[tuple]:
    """Each item's identity: (its key or its whole value, its occurrence among equal ones)."""
    seen: dict = {}
    out = []
    for item in items:
        key: tuple
        if kind == "=" and isinstance(item, str):
            key = ("k", item.split("=", 1)[0])
        elif kind != SET and isinstance(item, dict) and isinstance(item.get(kind), (str, int)):
            key = ("k", item[kind])
        else:
            key = ("v", canonical(item))
        seen[key] = seen.get(key, -1) + 1
        out.append((key, seen[key]))
    return out


class _Walk:
    """GOOD and BAD walked side by side; `take(uid)` says whether a unit comes from BAD;
    `found` (when a list) collects every unit met."""

    def __init__(self, take: Callable[[tuple], bool], found: list[Change] | None) -> None:
        self.take, self.found = take, found

    def unit(self, uid: tuple, op: str, pointer: str, value, old) -> bool:
        if self.found is not None:
            self.found.append(Change(uid, op, pointer, value, old))
        return self.take(uid)

    def value(self, g, b, pattern: tuple, gptr: str, bptr: str, uid: tuple):
        if same(g, b):
            return g
        if isinstance(g, dict) and isinstance(b, dict):
            return self.object(g, b, pattern, gptr, bptr, uid)
        if isinstance(g, list) and isinstance(b, list) and array_kind(pattern) != WHOLE:
            return self.array(g, b, pattern, gptr, bptr, uid)
        return b if self.unit(uid, "replace", bptr, b, g) else g

    def object(self, g: dict, b: dict, pattern: tuple, gptr: str, bptr: str, uid: tuple):
        out = {}
        for k, gv in g.items():
            tok = "/" + escape(k)
            if k in b:
                out[k] = self.value(gv, b[k], pattern + (k,), gptr + tok, bptr + tok, uid + (k,))
            elif not self.unit(uid + (k,), "remove", gptr + tok, None, gv):
                out[k] = gv
        for k, bv in b.items():
            if k not in g and self.unit(uid + (k,), "add", bptr + "/" + escape(k), bv, None):
                out[k] = bv
        return out

    def array(self, g: list, b: list, pattern: tuple, gptr: str, bptr: str, uid: tuple):
        kind = array_kind(pattern)
        gk, bk = _keys(g, kind), _keys(b, kind)
        gi, bi = {k: i for i, k in enumerate(gk)}, {k: j for j, k in enumerate(bk)}
        sub = pattern + ("*",)
        items: list[tuple] = []
        for i, k in enumerate(gk):
            if k in bi:
                j = bi[k]
                items.append((k, self.value(g[i], b[j], sub, f"{gptr}/{i}", f"{bptr}/{j}",
                                            uid + (k,))))
            elif not self.unit(uid + (k,), "remove", f"{gptr}/{i}", None, g[i]):
                items.append((k, g[i]))
        shared_b = [k for k in bk if k in gi]
        if [k for k in gk if k in bi] != shared_b and \
                self.unit(uid + ("order",), "order", bptr, b, g):
            slots = [n for n, (k, _) in enumerate(items) if k in bi]
            by_key = dict(items)
            for n, k in zip(slots, shared_b):
                items[n] = (k, by_key[k])
        for j, k in enumerate(bk):
            if k in gi or not self.unit(uid + (k,), "add", f"{bptr}/{j}", b[j], None):
                continue
            where = {key: n for n, (key, _) in enumerate(items)}
            before = next((p for p in reversed(bk[:j]) if p in where), None)
            items.insert(0 if before is None else where[before] + 1, (k, b[j]))
        return [v for _, v in items]


def _patch(g, c, pattern: tuple, ptr: str, ops: list[dict]) -> None:
    if same(g, c):
        return
    if isinstance(g, dict) and isinstance(c, dict):
        ops += [{"op": "remove", "path": f"{ptr}/{escape(k)}"} for k in g if k not in c]
        for k in g:
            if k in c:
                _patch(g[k], c[k], pattern + (k,), f"{ptr}/{escape(k)}", ops)
        ops += [{"op": "add", "path": f"{ptr}/{escape(k)}", "value": v}
                for k, v in c.items() if k not in g]
        return
    kind = array_kind(pattern)
    if isinstance(g, list) and isinstance(c, list) and kind != WHOLE:
        gk, ck = _keys(g, kind), _keys(c, kind)
        gi, ci = {k: i for i, k in enumerate(gk)}, set(ck)
        if [k for k in gk if k in ci] == [k for k in ck if k in gi]:
            # removals from the end first; then, left to right, each index is final once passed
            ops += [{"op": "remove", "path": f"{ptr}/{i}"}
                    for i in reversed(range(len(gk))) if gk[i] not in ci]
            for j, k in enumerate(ck):
                if k in gi:
                    _patch(g[gi[k]], c[j], pattern + ("*",), f"{ptr}/{j}", ops)
                else:
                    ops.append({"op": "add", "path": f"{ptr}/{j}", "value": c[j]})
            return
    ops.append({"op": "replace", "path": ptr, "value": c})
