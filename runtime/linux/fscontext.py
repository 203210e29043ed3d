"""fsopen(2) and fsconfig(2): a filesystem's own parser judges mount options, nothing mounted.

A filesystem context (Linux 5.2+) takes a mount's options one at a time and answers each as
mount(2) would answer for the whole data string (mount(2) hands its data to the same
parse_param), with the kernel's own words ("tmpfs: Bad value for 'size'") readable from the
context's fd. No superblock is made (no FSCONFIG_CMD_CREATE), so nothing is mounted and no device
is touched; a filesystem still on the legacy interface takes every option here and judges them
only at mount(2). Opening a context needs CAP_SYS_ADMIN, as mount(2) does.
"""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fsopen.argtypes = (ctypes.c_char_p, ctypes.c_uint)
_libc.fsconfig.argtypes = (ctypes.c_int, ctypes.c_uint, ctypes.c_char_p, ctypes.c_char_p,
                           ctypes.c_int)

FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1


def refused_option(fstype: str, options: list[str]) -> tuple[int, int, str] | None:
    """(index in `options`, errno, the kernel's message or "") of the first mount data option
    ("size=64m", "ro" ...) that filesystem `fstype` refuses; None when it takes them all.
    Raises OSError when no context opens: ENODEV for a type the kernel does not have, EPERM
    without CAP_SYS_ADMIN."""
    fd = _libc.fsopen(fstype.encode(), FSOPEN_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), fstype)
    try:
        for i, opt in enumerate(options):
            key, eq, value = opt.partition("=")
            kind = FSCONFIG_SET_STRING if eq else FSCONFIG_SET_FLAG
            if _libc.fsconfig(fd, kind, key.encode(), value.encode() if eq else None, 0) < 0:
                return i, ctypes.get_errno(), _message(fd)
        return None
    finally:
        os.close(fd)


def _message(fd: int) -> str:
    """The context's last error line ("e tmpfs: Bad value for 'size'"), without its prefix."""
    lines = []
    while True:
        try:
            line = os.read(fd, 4096).decode(errors="replace").strip()
        except OSError:  # ENODATA: no more messages
            break
        if not line:
            break
        lines.append(line)
    errors = [ln[2:] for ln in lines if ln.startswith("e ")]
    return (errors or [ln[2:] for ln in lines] or [""])[-1]
