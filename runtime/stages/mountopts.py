"""Mount options of config.json, split into mount(2) flags, propagation changes, recursive
mount attributes (mount_setattr(2)), runc's extensions and filesystem data."""
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
    "acl": (S.MS_POSIXACL, 0), "noacl": (0, S.MS_POSIXACL),
    "iversion": (S.MS_I_VERSION, 0), "noiversion": (0, S.MS_I_VERSION),
    "lazytime": (S.MS_LAZYTIME, 0), "nolazytime": (0, S.MS_LAZYTIME),
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
# The recursive family (runtime-spec 1.1; runc 1.1's recAttrFlags, crun's "r" options): option
# -> (MOUNT_ATTR_* to set, to clear), applied by mount_setattr(AT_RECURSIVE) to the mount and
# everything beneath it. The atime mode is a 2-bit field the kernel only replaces as a whole
# (clearing part of MOUNT_ATTR__ATIME is EINVAL), so setting a mode clears the field first and
# the "not that mode" words clear it back to the default, relatime (what runc 1.2 and youki
# do; runc 1.1.5 passes ratime/rnostrictatime as a partial clear and fails with EINVAL).
_ATIME = S.MOUNT_ATTR__ATIME
REC_ATTRS = {
    "rro": (S.MOUNT_ATTR_RDONLY, 0), "rrw": (0, S.MOUNT_ATTR_RDONLY),
    "rnosuid": (S.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, S.MOUNT_ATTR_NOSUID),
    "rnodev": (S.MOUNT_ATTR_NODEV, 0), "rdev": (0, S.MOUNT_ATTR_NODEV),
    "rnoexec": (S.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, S.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (S.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, S.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (S.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, S.MOUNT_ATTR_NOSYMFOLLOW),
    "rnoatime": (S.MOUNT_ATTR_NOATIME, _ATIME), "rstrictatime": (S.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rrelatime": (S.MOUNT_ATTR_RELATIME, _ATIME), "ratime": (0, _ATIME),
    "rnorelatime": (0, _ATIME), "rnostrictatime": (0, _ATIME),
}
# A recursive attribute's effect on the top mount, as mount(2) flags: a later remount of the top
# mount (the deferred "ro" of stage paths) repeats it instead of undoing it.
_ATTR_FLAGS = {S.MOUNT_ATTR_RDONLY: S.MS_RDONLY, S.MOUNT_ATTR_NOSUID: S.MS_NOSUID,
               S.MOUNT_ATTR_NODEV: S.MS_NODEV, S.MOUNT_ATTR_NOEXEC: S.MS_NOEXEC,
               S.MOUNT_ATTR_NODIRATIME: S.MS_NODIRATIME,
               S.MOUNT_ATTR_NOSYMFOLLOW: S.MS_NOSYMFOLLOW, S.MOUNT_ATTR_NOATIME: S.MS_NOATIME,
               S.MOUNT_ATTR_STRICTATIME: S.MS_STRICTATIME,
               _ATIME: S.MS_NOATIME | S.MS_STRICTATIME | S.MS_RELATIME}
TMPCOPYUP = "tmpcopyup"  # runc's and crun's extension: a new tmpfs gets what it covers
IDMAP = ("idmap", "ridmap")  # runtime-spec 1.2: an id-mapped mount, ridmap recursively


class MountOptions:
    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []
        self.idmap = ""  # "idmap", "ridmap" or ""
        self.rec_set = 0  # MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE)
        self.rec_clr = 0
        self.rec_index = -1  # where the first recursive option is in the options, or -1
        self.copyup = False  # "tmpcopyup"
        self.data_index: list[int] = []  # where each of `data` is in the options

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & S.MS_BIND)


def _ms(attrs: int) -> int:
    return sum(ms for attr, ms in _ATTR_FLAGS.items() if attrs & attr == attr and attr)


def parse(options: list[str]) -> MountOptions:
    """Split config.json options. Flags and recursive attributes are taken in order, a later
    one overriding an earlier; anything not known here is filesystem data (tmpfs's "size=",
    "mode=" ...), for the filesystem to judge (a bind has none: spec.py refuses it there)."""
    out = MountOptions()
    for i, opt in enumerate(options):
        if opt in _FLAGS:
            set_, clear = _FLAGS[opt]
            out.flags = (out.flags | set_) & ~clear
        elif opt in PROPAGATION:
            out.propagation.append(PROPAGATION[opt])
        elif opt in REC_ATTRS:
            set_, clear = REC_ATTRS[opt]
            out.rec_set = (out.rec_set & ~set_ & ~clear) | set_
            out.rec_clr = (out.rec_clr & ~set_) | clear
            out.flags = (out.flags & ~_ms(clear)) | _ms(set_)
            out.rec_index = i if out.rec_index < 0 else out.rec_index
        elif opt in IDMAP:
            out.idmap = opt
        elif opt == TMPCOPYUP:
            out.copyup = True
        else:
            out.data.append(opt)
            out.data_index.append(i)
    return out


def known() -> list[str]:
    """Every option ocish acts on (`ocish features` mountOptions)."""
    return sorted(set(_FLAGS) | set(PROPAGATION) | set(REC_ATTRS) | set(IDMAP) | {TMPCOPYUP})
