"""Mounts, root, maskedPaths, readonlyPaths and device nodes, from /proc/PID/mountinfo (whose
mount points are relative to the process's root) and stat(2) through /proc/PID/root.

What a mount's options mean, as runc applies them:
- the flags a config names (ro/rw, nosuid/suid, nodev/dev, noexec/exec, the atime words and
  their recursive "r" forms) must hold; flags it does not name are not judged, because a bind
  mount keeps its source's (runc remounts a bind only when the config asks for a flag) and the
  kernel locks some in a user namespace. A mount that is no bind and names neither ro nor rw is
  read-write.
- filesystem data (size=, mode=, gid=) is compared where the kernel shows it back (mode in
  octal, sizes in bytes); what it does not show (tmpfs's default mode, newinstance) is not judged.
- a bind mount must show the source's file (same device and inode), whatever its type.
- type "cgroup" is cgroup2 on a unified host, else a tmpfs holding one mount per v1 hierarchy
  (runc's mountCgroupV1): then the tmpfs and every hierarchy must carry the flags asked.
- propagation is judged when the mount names one; root.readonly and rootfsPropagation on "/".
- maskedPaths: a read-only tmpfs over a directory, /dev/null (char 1:3) over a file; readonlyPaths
  a read-only mount; a path the rootfs lacks is skipped by runc, and so is it here.
- device nodes: linux.devices and, unless /dev is bound from the host, runc's default ones
  (null, zero, full, random, urandom, tty): file type and device numbers, and fileMode, uid
  and gid when asked and the node was made (in a user namespace nodes are bind mounts of the
  host's, as runc does it).
"""
from __future__ import annotations

import os
import stat

from ocish.inspect.mounts import propagation
from ocish.verify import Item, judge, skipped
from ocish.verify.subject import Subject
from runtime.linux import procfs
from runtime.linux import syscalls as S
from runtime.stages import mountopts
from runtime.stages.mounts import DEFAULT_DEVICES, is_bind

# flag bit -> (word when set, word when clear); mountinfo shows the first, and of the
# second only rw
_WORDS = {S.MS_RDONLY: ("ro", "rw"), S.MS_NOSUID: ("nosuid", "suid"),
          S.MS_NODEV: ("nodev", "dev"), S.MS_NOEXEC: ("noexec", "exec"),
          S.MS_NODIRATIME: ("nodiratime", "diratime")}
_ATIME = {"noatime": "noatime", "rnoatime": "noatime", "relatime": "relatime",
          "rrelatime": "relatime", "strictatime": "", "rstrictatime": ""}
_BIT_OF = {w: bit for bit, words in _WORDS.items() for w in words}
_DEV_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def check(s: Subject) -> list[Item]:
    """Items for the root, each config mount, maskedPaths, readonlyPaths and the device nodes.
    Raises OSError when the process is gone."""
    entries = procfs.mountinfo(s.pid)
    at: dict[str, list[procfs.MountEntry]] = {}
    for e in entries:
        at.setdefault(e.mountpoint, []).append(e)
    out = _root(s, at.get("/", []))
    used: dict[str, int] = {}
    for i, m in enumerate(s.spec.get("mounts") or []):
        if not isinstance(m, dict) or not isinstance(m.get("destination"), str):
            continue
        dest = _clean(m["destination"])
        n = used[dest] = used.get(dest, -1) + 1  # the n-th config mount on dest: n-th entry
        here = at.get(dest, [])
        out.append(_mount(s, m, f"/mounts/{i}", dest, here[n] if n < len(here) else None,
                          entries))
    linux = s.spec.get("linux") or {}
    out += [_masked(s, p, at, f"/linux/maskedPaths/{i}")
            for i, p in enumerate(linux.get("maskedPaths") or [])]
    out += [_readonly(s, p, at, f"/linux/readonlyPaths/{i}")
            for i, p in enumerate(linux.get("readonlyPaths") or [])]
    out += _devices(s)
    return out


def _clean(path: str) -> str:
    """A container path as mountinfo spells it ("/proc" for "proc/" or "//proc")."""
    return os.path.normpath("/" + path.lstrip("/"))


def _flags(options: str) -> set[str]:
    return set(options.split(","))


def _root(s: Subject, entries: list[procfs.MountEntry]) -> list[Item]:
    root, linux = s.spec.get("root") or {}, s.spec.get("linux") or {}
    if not entries:
        return [skipped("root /", "", "", "no mount at / in its mount namespace")]
    top, out = entries[-1], []
    actual = f"{top.fstype} {top.options} {propagation(top.optional)}"
    ro = bool(root.get("readonly"))
    out.append(judge("root /", "ro" if ro else "rw", actual, "/root/readonly",
                     same=("ro" in _flags(top.options)) == ro))
    want = linux.get("rootfsPropagation")
    if isinstance(want, str) and want:
        kind = _kind(want)
        out.append(judge("root / propagation", want, propagation(top.optional),
                         "/linux/rootfsPropagation", same=_prop_kind(top.optional) == kind))
    return out


def _kind(word: str) -> str:
    """"rslave" -> "slave": what mountinfo can show of a propagation word."""
    return word[1:] if word.startswith("r") and word[1:] in mountopts.PROPAGATION else word


def _prop_kind(optional: list[str]) -> str:
    tags = [t.split(":")[0] for t in optional]
    if "master" in tags:
        return "slave"
    if "shared" in tags:
        return "shared"
    return "unbindable" if "unbindable" in tags else "private"


def _mount(s: Subject, m: dict, pointer: str, dest: str, entry: procfs.MountEntry | None,
           entries: list[procfs.MountEntry]) -> Item:
    opts = [o for o in m.get("options") or [] if isinstance(o, str)]
    typ = m.get("type") or ("bind" if is_bind(m) else "")
    asked = " ".join(x for x in (typ, ",".join(opts)) if x)
    if entry is None:
        return judge(f"mount {dest}", asked, "no mount there", pointer, same=False)
    actual = f"{entry.fstype} {entry.options}"
    data = _data(entry.super_options)
    shown = [f"{k}={data[k]}" for k in sorted(data) if any(o.startswith(k + "=") for o in opts)]
    actual += (" " + ",".join(shown) if shown else "") + " " + propagation(entry.optional)
    problems = _type(s, m, typ, dest, entry, entries) + _flag_problems(opts, is_bind(m), entry)
    if typ == "cgroup":
        for e in entries:  # runc's v1 layout: one hierarchy per mount under the tmpfs
            if e.parent_id == entry.mount_id and e.fstype == "cgroup":
                problems += [f"{e.mountpoint}: {p}" for p in _flag_problems(opts, False, e)]
    problems += _data_problems(mountopts.parse(opts).data, data, s)
    props = [o for o in opts if o in mountopts.PROPAGATION]
    if props and _prop_kind(entry.optional) != _kind(props[-1]):
        problems.append(f"propagation {props[-1]} asked, {propagation(entry.optional)} holds")
    return judge(f"mount {dest}", asked, actual, pointer, same=not problems,
                 note="; ".join(problems))


def _type(s: Subject, m: dict, typ: str, dest: str, entry: procfs.MountEntry,
          entries: list[procfs.MountEntry]) -> list[str]:
    if typ == "bind" or is_bind(m):
        src = m.get("source") or ""
        if not os.path.isabs(src):
            src = os.path.join(s.bundle, src)
        try:
            a, b = os.stat(src), os.stat(s.root(dest))
        except OSError as e:
            return [] if e.filename == src else [f"{dest}: {os.strerror(e.errno or 0).lower()}"]
        same = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        return [] if same else [f"not the file of source {src}"]
    if typ == "cgroup":
        if entry.fstype == "cgroup2" or entry.fstype == "tmpfs" and any(
                e.parent_id == entry.mount_id and e.fstype == "cgroup" for e in entries):
            return []
        return [f"neither cgroup2 nor a tmpfs of v1 hierarchies: {entry.fstype}"]
    return [] if entry.fstype == typ else [f"type {typ} asked, {entry.fstype} holds"]


def _flag_problems(opts: list[str], bind: bool, e: procfs.MountEntry) -> list[str]:
    """The asked per-mount flags (the last word for a flag wins) that mountinfo does not show."""
    want: dict[int, bool] = {}
    for o in opts:
        word = o[1:] if o.startswith("r") and o[1:] in _BIT_OF and o not in _BIT_OF else o
        if word in _BIT_OF:
            want[_BIT_OF[word]] = word == _WORDS[_BIT_OF[word]][0]
    if not bind:
        want.setdefault(S.MS_RDONLY, False)
    have, out = _flags(e.options), []
    for bit, on in want.items():
        word, off = _WORDS[bit]
        if (word in have) != on:
            out.append(f"{word if on else off} asked, {off if on else word} holds")
    atime = [_ATIME[o] for o in opts if o in _ATIME]
    if atime:
        got = "noatime" if "noatime" in have else "relatime" if "relatime" in have else ""
        if got != atime[-1]:
            out.append(f"{atime[-1] or 'strictatime'} asked, {got or 'strictatime'} holds")
    return out


def _data(super_options: str) -> dict[str, str]:
    return dict(o.split("=", 1) for o in super_options.split(",") if "=" in o)


def _number(key: str, value: str) -> int | None:
    """A data option's value as the kernel compares it: mode in octal, sizes with k/m/g."""
    try:
        if key == "mode" or key.endswith("mode"):
            return int(value, 8)
        units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
        if value[-1:].lower() in units:
            return int(value[:-1]) * units[value[-1].lower()]
        return int(value)
    except ValueError:
        return None


def _data_problems(asked: list[str], shown: dict[str, str], s: Subject) -> list[str]:
    """The asked key=value data the kernel shows otherwise. uid= and gid= are shown as the
    host sees them (tmpfs and devpts print them in the initial user namespace): the asked
    ones are mapped through the process's maps first."""
    out = []
    for opt in asked:
        key, eq, value = opt.partition("=")
        if not eq or key not in shown:
            continue  # not shown back by the kernel (a default, or no key=value option)
        a, b = _number(key, value), _number(key, shown[key])
        if key in ("uid", "gid") and a is not None:
            a = s.host_id(a, key)
        if (a, b) == (None, None) and value != shown[key] or a != b:
            out.append(f"{opt} asked, {key}={shown[key]} holds")
    return out


def _top(at: dict, path: str) -> procfs.MountEntry | None:
    here = at.get(_clean(path))
    return here[-1] if here else None


def _masked(s: Subject, path: str, at: dict, pointer: str) -> Item:
    where = s.root(path)
    if not os.path.lexists(where):
        return judge(f"masked {path}", "masked", "absent (skipped, as runc does)", pointer,
                     same=True)
    e = _top(at, path)
    if os.path.isdir(where):
        actual = f"{e.fstype} {e.options}" if e else "no mount"
        ok = e is not None and e.fstype == "tmpfs" and "ro" in _flags(e.options) \
            and not os.listdir(where)
        return judge(f"masked {path}", "empty read-only tmpfs", actual, pointer, same=ok)
    st = os.stat(where)
    dev = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" if stat.S_ISCHR(st.st_mode) else "-"
    ok = e is not None and stat.S_ISCHR(st.st_mode) and dev == "1:3"
    return judge(f"masked {path}", "/dev/null (char 1:3)",
                 f"char {dev}" if dev != "-" else "not a device", pointer, same=ok,
                 note="" if e is not None else "no mount over it")


def _readonly(s: Subject, path: str, at: dict, pointer: str) -> Item:
    if not os.path.lexists(s.root(path)):
        return judge(f"readonly {path}", "ro", "absent (skipped, as runc does)", pointer,
                     same=True)
    e = _top(at, path)
    actual = f"{e.fstype} {e.options}" if e else "no mount"
    return judge(f"readonly {path}", "ro", actual, pointer,
                 same=e is not None and "ro" in _flags(e.options))


def _devices(s: Subject) -> list[Item]:
    linux = s.spec.get("linux") or {}
    given = [(f"/linux/devices/{i}", d) for i, d in enumerate(linux.get("devices") or [])
             if isinstance(d, dict) and isinstance(d.get("path"), str)]
    paths = {d["path"] for _, d in given}
    bound = any(isinstance(m, dict) and _clean(m.get("destination") or "x") == "/dev"
                and is_bind(m) for m in s.spec.get("mounts") or [])
    if not bound:
        given += [("", {"path": p, "type": "c", "major": ma, "minor": mi})
                  for p, ma, mi in DEFAULT_DEVICES if p not in paths]
    userns = any(isinstance(n, dict) and n.get("type") == "user"
                 for n in linux.get("namespaces") or [])
    return [_device(s, ptr, d, userns) for ptr, d in given]


def _device(s: Subject, pointer: str, d: dict, userns: bool) -> Item:
    path, kind = d["path"], d.get("type", "c")
    asked = f"{kind} {d.get('major', 0)}:{d.get('minor', 0)}"
    try:
        st = os.lstat(s.root(path))
    except OSError as e:
        return judge(f"device {path}", asked, os.strerror(e.errno or 0).lower(), pointer,
                     same=False)
    fmt = stat.S_IFMT(st.st_mode)
    letter = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}.get(fmt, "?")
    actual = f"{letter} {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    problems = []
    if fmt != _DEV_KINDS.get(kind) or (kind != "p" and (os.major(st.st_rdev), os.minor(st.st_rdev))
                                       != (d.get("major", 0), d.get("minor", 0))):
        problems.append(f"{asked} asked")
    if not userns:  # made with mknod: mode and owner as asked (in a user ns: the host's node)
        for key, got, want in (("fileMode", st.st_mode & 0o7777, d.get("fileMode")),
                               ("uid", st.st_uid, d.get("uid")), ("gid", st.st_gid, d.get("gid"))):
            if want is not None:
                asked += f" {key}={oct(want) if key == 'fileMode' else want}"
                actual += f" {key}={oct(got) if key == 'fileMode' else got}"
                if got != want:
                    problems.append(f"{key} {want} asked, {got} holds")
    return judge(f"device {path}", asked, actual, pointer, same=not problems,
                 note="; ".join(problems) or ("" if pointer else "runc's default device"))
