"""Resolving paths inside a rootfs, so that a symlink in the rootfs cannot point a mount outside it."""
from __future__ import annotations

import errno
import os
import stat

_MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """root + unsafe, with every symlink resolved as if `root` were "/" (filepath-securejoin's rule).

    `..` and absolute link targets stop at root; components that do not exist yet are kept as they
    are, so the caller can create them.
    """
    resolved = ""  # the path below root, "" meaning root itself
    todo = [p for p in unsafe.split("/") if p]
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            resolved = resolved.rpartition("/")[0]
            continue
        candidate = f"{resolved}/{part}"
        try:
            st = os.lstat(root + candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved = candidate
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved = candidate
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), unsafe)
        target = os.readlink(root + candidate)
        if target.startswith("/"):
            resolved = ""
        todo[:0] = [p for p in target.split("/") if p]
    base = root.rstrip("/")
    return base + resolved if resolved else (base or "/")


def mkdir_all(path: str, mode: int = 0o755) -> None:
    """os.makedirs(exist_ok=True) with Go's os.MkdirAll errno (runc's): a non-directory where
    the directory should be is ENOTDIR (NotADirectoryError), not makedirs' EEXIST."""
    try:
        os.makedirs(path, mode, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from None


def make_target(path: str, like_file: bool, mode: int = 0o755) -> None:
    """Create a mount point: a directory, or an empty file when mounting a file over it.
    OSError; NotADirectoryError where a file stands in the way of a directory (mkdir_all)."""
    if like_file:
        mkdir_all(os.path.dirname(path), mode)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        mkdir_all(path, mode)
