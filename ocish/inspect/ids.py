"""User and group ids: the user namespace's maps, setgroups, and the process's ids in it."""
from __future__ import annotations

from dataclasses import dataclass

from ocish.inspect import Target
from ocish.inspect.status import ints, read_status


@dataclass
class IdRange:
    inside: int
    outside: int
    count: int


@dataclass
class Ids:
    uid_map: list[IdRange]
    gid_map: list[IdRange]
    setgroups: str
    uids: list[int]      # real, effective, saved, filesystem (as seen from the host)
    gids: list[int]
    groups: list[int]


def _map(path: str) -> list[IdRange]:
    with open(path) as f:
        return [IdRange(*ints(line)) for line in f.read().splitlines() if line.strip()]


def read(t: Target) -> Ids:
    st = read_status(t.pid)
    with open(f"/proc/{t.pid}/setgroups") as f:
        setgroups = f.read().strip()
    return Ids(_map(f"/proc/{t.pid}/uid_map"), _map(f"/proc/{t.pid}/gid_map"), setgroups,
               ints(st["Uid"]), ints(st["Gid"]), ints(st.get("Groups", "")))
