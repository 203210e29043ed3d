"""Namespaces, id maps, hostname and domainname.

A namespace listed in /linux/namespaces without a path must be new: its inode differs from the
host's (this process's, as `inspect ns` compares); with a path, it must be the namespace that
path names (same inode); an absent type is inherited (runtime-spec), so the host's. A new user
namespace must hold exactly the uidMappings and gidMappings asked for. The hostname and the
domainname are those of the container's uts namespace, read by a child process that joins it
(/proc/sys/kernel/hostname answers for the reader's namespace, not the file's).
"""
from __future__ import annotations

import os

from ocish.inspect.ids import _map
from ocish.inspect.ns import inode
from ocish.verify import Item, judge, skipped
from ocish.verify.subject import Subject
from runtime.spec import NAMESPACES

PROC_NAME = {"network": "net", "mount": "mnt"}  # config.json type -> /proc/PID/ns file


def check(s: Subject) -> list[Item]:
    """Items for each namespace type, the id maps of a new user namespace, hostname and
    domainname. Raises OSError when the process is gone."""
    linux = s.spec.get("linux") or {}
    listed = {n.get("type"): (i, n.get("path")) for i, n in enumerate(linux.get("namespaces") or [])
              if isinstance(n, dict)}
    out = [_namespace(s.pid, kind, listed.get(kind)) for kind in NAMESPACES]
    out = [i for i in out if i is not None]
    user = listed.get("user")
    if user is not None and not user[1]:
        for key, file in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
            asked = sorted((m.get("containerID"), m.get("hostID"), m.get("size"))
                           for m in linux.get(key) or [])
            actual = sorted((r.inside, r.outside, r.count) for r in _map(f"/proc/{s.pid}/{file}"))
            out.append(judge(file, [" ".join(map(str, m)) for m in asked],
                             [" ".join(map(str, m)) for m in actual], f"/linux/{key}"))
    out += _uts(s, "uts" in listed)
    return out


def _namespace(pid: int, kind: str, listed: tuple[int, str | None] | None) -> Item | None:
    name = PROC_NAME.get(kind, kind)
    try:
        host = inode(f"/proc/self/ns/{name}")
    except FileNotFoundError:
        return None  # this kernel has no such namespace (time before 5.6)
    actual = inode(f"/proc/{pid}/ns/{name}")
    shown = f"{name}:[{actual}]" + (" (the host's)" if actual == host else "")
    if listed is None:
        return judge(f"namespace {kind}", "inherited (the host's)", shown, "/linux/namespaces",
                     same=actual == host, note="" if actual == host else "not listed, yet new")
    index, path = listed
    pointer = f"/linux/namespaces/{index}"
    if not path:
        return judge(f"namespace {kind}", "new", shown, pointer, same=actual != host,
                     note="" if actual != host else "the host's namespace, not a new one")
    try:
        want = os.stat(path).st_ino
    except OSError as e:
        return skipped(f"namespace {kind}", f"join {path}", shown,
                       f"{path}: {os.strerror(e.errno or 0).lower()}", pointer + "/path")
    return judge(f"namespace {kind}", f"join {path} ({name}:[{want}])", shown, pointer + "/path",
                 same=actual == want, note="" if actual == want else "not the namespace of path")


def _uts(s: Subject, own_uts: bool) -> list[Item]:
    out = []
    asked = {k: s.spec[k] for k in ("hostname", "domainname") if isinstance(s.spec.get(k), str)}
    if not asked:
        return out
    names = uts_names(s.pid)
    for key, value in asked.items():
        note = "" if own_uts else "no uts namespace of its own: the host's name"
        out.append(judge(key, value, names[key], f"/{key}", note=note))
    return out


def uts_names(pid: int) -> dict[str, str]:
    """{"hostname", "domainname"} of the uts namespace of `pid`, as uname(2) gives them there.
    Raises OSError when the namespace cannot be joined."""
    from ocish.diagnose.preflight import _in_namespaces
    from runtime.linux import syscalls as S

    def enter() -> None:
        fd = os.open(f"/proc/{pid}/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
        S.setns(fd, S.CLONE_NEWUTS)

    def look() -> list[str]:
        u = os.uname()
        with open("/proc/sys/kernel/domainname") as f:  # uname's domainname is glibc's NIS one
            return [u.nodename, f.read().strip()]

    host, domain = (_in_namespaces(enter, look, f"join the uts namespace of {pid}") + ["", ""])[:2]
    return {"hostname": host, "domainname": domain}
