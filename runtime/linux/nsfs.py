"""The namespace a file stands for: ioctl(NS_GET_NSTYPE) on nsfs (Linux 4.11+).

A /proc/<pid>/ns/<kind> file, or a bind mount of one (/run/netns/<name>), is an nsfs inode; the
ioctl answers its kind as a CLONE_NEW* flag, the one setns(2) compares with its nstype argument
(EINVAL on a mismatch). Any other file answers ENOTTY.
"""
from __future__ import annotations

import errno
import fcntl
import os

NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), <linux/nsfs.h>


def ns_type(path: str) -> int | None:
    """The CLONE_NEW* flag of the namespace `path` is, 0 when it is no namespace file; raises
    OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as e:
        if e.errno in (errno.ENOTTY, errno.EINVAL):
            return 0
        raise
    finally:
        os.close(fd)
