"""Typed access to config.json's /linux/resources, each value with its JSON pointer.

Both drivers read every value through a Section, so a value of the wrong type is reported the same
way whichever driver runs: at its exact pointer, naming the file it was meant for, before anything
is written for it.
"""
from __future__ import annotations

from runtime.errors import StageError

STAGE = "cgroup"
POINTER = "/linux/resources"


def escape(key: str) -> str:
    """One reference token of a JSON pointer (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def show(value: object) -> str:
    """A config value as the user wrote it in JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "an object"
    return str(value)


def invalid(pointer: str, target: str, detail: str) -> StageError:
    return StageError(STAGE, "write", target, 0, pointer, detail)


class Section:
    """One JSON object of the resources tree; missing and null members read as None."""

    def __init__(self, data: object, pointer: str, target: str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise invalid(pointer, target, f"must be an object, got {show(data)}")
        self.data: dict = data
        self.pointer = pointer

    def ptr(self, key: str) -> str:
        return f"{self.pointer}/{escape(key)}"

    def asks(self, *keys: str) -> bool:
        """Whether any of `keys` (all members when none are named) sets something.

        Zero, false and empty values are runc's "unset", so they need no controller."""
        return any(self.data.get(k) not in (None, 0, "", [], {}) for k in keys or self.data)

    def sub(self, key: str, target: str = "") -> Section:
        return Section(self.data.get(key), self.ptr(key), target)

    def items(self, key: str, target: str = "") -> list[Section]:
        """The objects of an array member, each with its own pointer."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(self.ptr(key), target, f"must be an array, got {show(value)}")
        return [Section(v, f"{self.ptr(key)}/{i}", target) for i, v in enumerate(value)]

    def entries(self, key: str, target: str = "") -> list[tuple[str, object, str]]:
        """(name, value, pointer) for each member of an object member (unified, rdma)."""
        sec = self.sub(key, target)
        return [(k, v, sec.ptr(k)) for k, v in sec.data.items()]

    def _get(self, key: str, target: str, required: bool) -> object:
        value = self.data.get(key)
        if value is None and required:
            raise invalid(self.ptr(key), target, "is required")
        return value

    def integer(self, key: str, target: str, lo: int | None = None, hi: int | None = None,
                required: bool = False) -> int | None:
        value = self._get(key, target, required)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(self.ptr(key), target, f"must be an integer, got {show(value)}")
        if lo is not None and value < lo:
            raise invalid(self.ptr(key), target, f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            raise invalid(self.ptr(key), target, f"must be at most {hi}, got {value}")
        return value

    def string(self, key: str, target: str, required: bool = False) -> str | None:
        value = self._get(key, target, required)
        if value is not None and not isinstance(value, str):
            raise invalid(self.ptr(key), target, f"must be a string, got {show(value)}")
        return value

    def flag(self, key: str, target: str, required: bool = False) -> bool | None:
        value = self._get(key, target, required)
        if value is not None and not isinstance(value, bool):
            raise invalid(self.ptr(key), target, f"must be true or false, got {show(value)}")
        return value


def device_numbers(rule: Section, target: str) -> tuple[str, int, int, str]:
    """(type, major, minor, access) of a device rule; -1 stands for the "*" wildcard."""
    kind = rule.string("type", target) or "a"
    if kind not in ("a", "b", "c"):
        raise invalid(rule.ptr("type"), target, f'must be "a", "b" or "c", got {show(kind)}')
    major = rule.integer("major", target, lo=-1)
    minor = rule.integer("minor", target, lo=-1)
    access = rule.string("access", target) or "rwm"
    if not set(access) <= set("rwm"):
        raise invalid(rule.ptr("access"), target, f'must be letters of "rwm", got {show(access)}')
    return kind, -1 if major is None else major, -1 if minor is None else minor, access


def device_rule(rule: Section, target: str) -> str:
    """The v1 devices.allow/devices.deny line, "type major:minor access" (runc's CgroupString)."""
    kind, major, minor, access = device_numbers(rule, target)
    return f"{kind} {'*' if major < 0 else major}:{'*' if minor < 0 else minor} {access}"


def major_minor(dev: Section, target: str) -> str:
    """The "major:minor" of a blockIO device entry."""
    major = dev.integer("major", target, lo=0, required=True)
    minor = dev.integer("minor", target, lo=0, required=True)
    return f"{major}:{minor}"


def page_size(limit: Section, target: str) -> str:
    """A hugepageLimits pageSize ("2MB"), which becomes part of a file name."""
    size = limit.string("pageSize", target, required=True) or ""
    if not size or "/" in size or size.startswith("."):
        raise invalid(limit.ptr("pageSize"), target, f"is not a page size: {show(size)}")
    return size
