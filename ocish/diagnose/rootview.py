"""The container's filesystem as its process will see it, read from the host before anything runs.

A path inside the container is resolved the way the kernel will resolve it after pivot_root:
symlinks are followed with "/" meaning the rootfs (an absolute link target never leaves it), and
a path under a config.json mount is looked up in that mount: a bind mount's source on the host,
or nothing for a filesystem the runtime creates (a tmpfs, proc ...), whose content cannot be known
beforehand and which hides whatever the rootfs has there.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from runtime.stages import mountopts

MAXSYMLINKS = 40  # the kernel's limit on symlinks followed in one lookup (ELOOP after)


@dataclass
class Location:
    """Where a container path leads: `host` is the file on the host (None under a mount whose
    content is made at run time), `mount` the index in /mounts that covers it (or None), `path`
    the container path after symlinks, `links` the symlinks followed as (path, target),
    `missing` the first component that does not exist ("" when all do), `error` an errno when
    the lookup itself fails (ELOOP, ENOTDIR)."""
    path: str
    host: str | None
    mount: int | None = None
    links: list[tuple[str, str]] = field(default_factory=list)
    missing: str = ""
    error: int = 0
    dirs: list[tuple[str, str]] = field(default_factory=list)  # (container, host) dirs searched

    @property
    def exists(self) -> bool:
        return self.host is not None and not self.missing and not self.error


class RootView:
    def __init__(self, rootfs: str, bundle: str, mounts: list) -> None:
        self.rootfs = rootfs.rstrip("/") or "/"
        self.bundle = bundle
        self.mounts: list[tuple[int, str, dict]] = []
        for i, m in enumerate(mounts if isinstance(mounts, list) else []):
            dest = m.get("destination") if isinstance(m, dict) else None
            if isinstance(dest, str) and dest.startswith("/"):
                self.mounts.append((i, os.path.normpath(dest), m))

    def mounts_by_index(self, index: int | None) -> dict:
        """The config.json mount at /mounts/<index> ({} for None)."""
        return next((m for i, _, m in self.mounts if i == index), {})

    def _covering(self, path: str) -> tuple[int, str, dict] | None:
        """The mount a container path lies in: the deepest destination, the last one listed when
        two are stacked on the same place (it is mounted on top)."""
        best = None
        for entry in self.mounts:
            dest = entry[1]
            if path == dest or path.startswith(dest.rstrip("/") + "/"):
                if best is None or len(dest) >= len(best[1]):
                    best = entry
        return best

    def host_path(self, path: str) -> tuple[str | None, int | None]:
        """(the host file behind an already resolved container path, the covering mount)."""
        entry = self._covering(path)
        if entry is None:
            return self.rootfs + (path if path != "/" else ""), None
        index, dest, m = entry
        if not is_bind(m):
            return None, index
        source = m.get("source") or ""
        if not os.path.isabs(source):
            source = os.path.join(self.bundle, source)
        rest = path[len(dest):] if dest != "/" else path
        return source.rstrip("/") + rest if rest else source, index

    def resolve(self, path: str, follow_last: bool = True, cwd: str = "/") -> Location:
        """Resolve a container path (relative ones from `cwd`) as the kernel's lookup would."""
        todo = [p for p in (path if path.startswith("/") else f"{cwd}/{path}").split("/") if p]
        cur, links, dirs = "/", [], [("/", self.host_path("/")[0] or self.rootfs)]
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue
            if part == "..":
                cur = os.path.dirname(cur)
                continue
            cand = os.path.join(cur, part)
            host, mount = self.host_path(cand)
            rest = "/".join(todo)
            whole = os.path.join(cand, rest) if rest else cand
            if host is None:  # under a tmpfs, proc ...: unknown before it is mounted
                return Location(whole, None, mount, links, dirs=dirs)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                return Location(whole, host, mount, links, dirs=dirs, missing=cand)
            except NotADirectoryError:
                return Location(cand, host, mount, links, dirs=dirs, error=errno.ENOTDIR)
            if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                if len(links) >= MAXSYMLINKS:
                    return Location(cand, host, mount, links, dirs=dirs, error=errno.ELOOP)
                target = os.readlink(host)
                links.append((cand, target))
                if target.startswith("/"):
                    cur = "/"
                todo[:0] = [p for p in target.split("/") if p]
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                return Location(cand, host, mount, links, dirs=dirs, error=errno.ENOTDIR)
            if todo:
                dirs.append((cand, host))
            cur = cand
        host, mount = self.host_path(cur)
        return Location(cur, host, mount, links, dirs=dirs)


def is_bind(m: dict) -> bool:
    """A bind mount, by type or by option (runc's rule, as stage mounts applies it)."""
    opts = m.get("options") if isinstance(m.get("options"), list) else []
    return m.get("type") == "bind" or mountopts.parse(
        [o for o in opts if isinstance(o, str)]).is_bind
