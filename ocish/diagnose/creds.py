"""The container process's credentials as the host's files see them, for permission checks made
before anything runs (the kernel's generic_permission(), simplified to mode bits: no ACLs).

In a new user namespace an id inside is a mapped id outside (/linux/uidMappings), and a
capability held inside applies to a file only when the file's owner and group are mapped
(capable_wrt_inode_uidgid), so the namespace's root has no power over the host's root-owned
files.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

R, W, X = 4, 2, 1


@dataclass
class Creds:
    uid: int | None                    # on the host; None when the id is not mapped
    gids: set[int] = field(default_factory=set)
    caps: set[str] = field(default_factory=set)
    uid_map: list | None = None        # [(inside, outside, count)] of a new user namespace
    gid_map: list | None = None
    label: str = ""                    # "uid 1000 (host uid 101000)", for evidence

    def _capable(self, st: os.stat_result, cap: str) -> bool:
        if cap not in self.caps:
            return False
        if self.uid_map is None:
            return True
        return _inside(st.st_uid, self.uid_map) is not None and \
            _inside(st.st_gid, self.gid_map or []) is not None

    def may(self, st: os.stat_result, want: int) -> bool:
        """May the process read (R), write (W) or execute/search (X) the file with `st`?"""
        is_dir = stat.S_ISDIR(st.st_mode)
        if self._capable(st, "CAP_DAC_OVERRIDE"):
            # execute needs one x bit on a regular file, even for a privileged process
            return not (want & X) or is_dir or bool(st.st_mode & 0o111)
        if self._capable(st, "CAP_DAC_READ_SEARCH") and (want == R or (is_dir and not want & W)):
            return True
        return bool(self.bits(st) & want)

    def bits(self, st: os.stat_result) -> int:
        """The rwx bits of the class (owner, group, other) that applies to us."""
        if st.st_uid == self.uid:
            return (st.st_mode >> 6) & 7
        if st.st_gid in self.gids:
            return (st.st_mode >> 3) & 7
        return st.st_mode & 7


def to_host(ident: int, maps: list | None) -> int | None:
    """An id inside a user namespace -> the host's; unchanged without one; None if unmapped."""
    if maps is None:
        return ident
    for inside, outside, count in maps:
        if inside <= ident < inside + count:
            return outside + ident - inside
    return None


def _inside(host_id: int, maps: list) -> int | None:
    for inside, outside, count in maps:
        if outside <= host_id < outside + count:
            return inside + host_id - outside
    return None


def maps_of(spec: dict) -> tuple[list | None, list | None]:
    """(uid map, gid map) of a new user namespace, None without one."""
    linux = spec.get("linux") if isinstance(spec.get("linux"), dict) else {}
    nss = linux.get("namespaces") if isinstance(linux.get("namespaces"), list) else []
    if not any(isinstance(n, dict) and n.get("type") == "user" and not n.get("path") for n in nss):
        return None, None

    def rows(key: str) -> list:
        out = []
        for m in linux.get(key) or []:
            try:
                out.append((int(m["containerID"]), int(m["hostID"]), int(m["size"])))
            except (KeyError, TypeError, ValueError):
                continue
        return out
    return rows("uidMappings"), rows("gidMappings")


def process_creds(spec: dict) -> Creds:
    """The credentials the user process execs with: /process/user after the uid switch, and
    the effective capabilities of /process/capabilities."""
    proc = spec.get("process") if isinstance(spec.get("process"), dict) else {}
    user = proc.get("user") if isinstance(proc.get("user"), dict) else {}
    uid, gid = _int(user.get("uid", 0)), _int(user.get("gid", 0))
    extra = [_int(g) for g in user.get("additionalGids") or [] if isinstance(g, int)]
    uid_map, gid_map = maps_of(spec)
    caps = proc.get("capabilities") if isinstance(proc.get("capabilities"), dict) else {}
    eff = {c for c in caps.get("effective") or [] if isinstance(c, str)}
    host_uid = to_host(uid, uid_map)
    gids = {g for g in (to_host(x, gid_map) for x in [gid] + extra) if g is not None}
    label = f"uid {uid}"
    if uid_map is not None:
        label += f" (host uid {host_uid})" if host_uid is not None else " (not mapped)"
    return Creds(host_uid, gids, eff, uid_map, gid_map, label)


def namespace_root(spec: dict) -> Creds | None:
    """The credentials the runtime's container side has while it sets up the mounts inside a new
    user namespace (its root, every capability there); None without a new user namespace."""
    uid_map, gid_map = maps_of(spec)
    if uid_map is None:
        return None
    uid, gid = to_host(0, uid_map), to_host(0, gid_map)
    return Creds(uid, {gid} if gid is not None else set(),
                 {"CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"}, uid_map, gid_map,
                 f"the user namespace's root (host uid {uid})")


def _int(v) -> int:
    return v if isinstance(v, int) else 0
