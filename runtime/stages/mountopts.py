"""Mount options of config.json, split into mount(2) flags, propagation changes and fs data."""
from __future__ import annotations

from runtime.linux import syscalls as S

# option -> (flags to set, flags to clear)
_FLAGS = {
    "ro": (S.MS_RDONLY, 0), "rw": (0, S.MS_RDONLY),
    "nosuid": (S.MS_NOSUID, 0), "suid": (0, S.MS_NOSUID),
    "nodev": (S.MS_NODEV, 0), "dev": (0, S.MS_NODEV),
    "noexec": (S.MS_NOEXEC, 0), "exec": (0, S.MS_NOEXEC),
    "sync": (S.MS_SYNCHRONOUS, 0), "async": (0, S.MS_SYNCHRONOUS),
    "dirsync": (S.MS_DIRSYNC, 0), "remount": (S.MS_REMOUNT, 0),
    "mand": (S.MS_MANDLOCK, 0), "nomand": (0, S.MS_MANDLOCK),
    "noatime": (S.MS_NOATIME, 0), "atime": (0, S.MS_NOATIME),
    "nodiratime": (S.MS_NODIRATIME, 0), "diratime": (0, S.MS_NODIRATIME),
    "relatime": (S.MS_RELATIME, 0), "norelatime": (0, S.MS_RELATIME),
    "strictatime": (S.MS_STRICTATIME, 0), "nostrictatime": (0, S.MS_STRICTATIME),
    "nosymfollow": (S.MS_NOSYMFOLLOW, 0), "symfollow": (0, S.MS_NOSYMFOLLOW),
    "bind": (S.MS_BIND, 0), "rbind": (S.MS_BIND | S.MS_REC, 0),
    "silent": (S.MS_SILENT, 0), "loud": (0, S.MS_SILENT),
    "defaults": (0, 0),
}
PROPAGATION = {
    "private": S.MS_PRIVATE, "rprivate": S.MS_PRIVATE | S.MS_REC,
    "shared": S.MS_SHARED, "rshared": S.MS_SHARED | S.MS_REC,
    "slave": S.MS_SLAVE, "rslave": S.MS_SLAVE | S.MS_REC,
    "unbindable": S.MS_UNBINDABLE, "runbindable": S.MS_UNBINDABLE | S.MS_REC,
}
# Flags a bind mount only gets through a second, remounting mount(2) call.
REMOUNT_FLAGS = (S.MS_RDONLY | S.MS_NOSUID | S.MS_NODEV | S.MS_NOEXEC | S.MS_NOATIME
                 | S.MS_NODIRATIME | S.MS_RELATIME | S.MS_STRICTATIME | S.MS_NOSYMFOLLOW)
_IGNORED = {"tmpcopyup"}  # runc extensions we accept and do not act on
IDMAP = ("idmap", "ridmap")  # runtime-spec 1.2: an id-mapped mount, ridmap recursively


class MountOptions:
    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.idmap = ""  # "idmap", "ridmap" or ""

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & S.MS_BIND)


def parse(options: list[str]) -> MountOptions:
    out = MountOptions()
    for opt in options:
        if opt in _FLAGS:
            set_, clear = _FLAGS[opt]
            out.flags = (out.flags | set_) & ~clear
        elif opt in PROPAGATION:
            out.propagation.append(PROPAGATION[opt])
        elif opt in IDMAP:
            out.idmap = opt
        elif opt not in _IGNORED:
            out.data.append(opt)
    return out
