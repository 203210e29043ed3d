"""Load and validate a bundle's config.json before the runtime trusts it.

Everything the runtime later reads from the spec is checked here, by hand, once: the stages index
required fields directly and do not re-check types. This module is on the hot path of every `create`, so
it imports nothing beyond `os`, `runtime.errors` and `runtime.jsonfast` at import time (no `re`,
`json`, `pathlib` or `jsonschema`): `json` itself is imported only to explain a parse error.

Rules
-----
- Unknown fields are ignored (runtime-spec: "MUST ignore unknown properties"); known fields must
  have the right type. `null` is never accepted for a known field: Go clients (podman, containerd,
  runc spec) omit empty fields rather than writing null.
- Optional fields may be absent; a stage reading one uses `.get()` with the runtime-spec default
  (absent `process.user` or `uid`/`gid` mean 0, as in runc).
- The first problem found raises `SpecError(pointer, message)`, `pointer` being the RFC 6901 JSON
  pointer of the offending item (or of the missing one). Problems are looked for in this order:
  /ociVersion, /root, /linux/namespaces (other checks depend on them), /process, /hostname,
  /domainname, /mounts, /hooks, /annotations, the rest of /linux, the cross-checks between them,
  and last the rootfs on disk. Only namespace paths (existence; the netns of net.* sysctls) and
  the rootfs touch the filesystem.

Two modes, one set of checks
----------------------------
`create` (`load`, `validate`) stops at the first problem. `ocish lint` (`collect`) runs the very
same checks and records every problem instead: each check that does not depend on another sits
in a `with _each:` block (or is one `_opt`/`_req` field), which in lint's mode records the
SpecError and carries on after the block, and in create's mode lets it through untouched. A
failed `_opt`/`_req` then reads as None (absent) to what follows. The first finding of `collect`
is always the error `validate` raises: both walk the config in the same order.

Compatibility with runc: the namespace rules follow runc's `libcontainer/configs/validate`
(hostname needs a uts namespace, sysctls must be namespaced, user namespace mappings, time
offsets, masked paths need a mount namespace); as in runc, a "private" namespace is one listed in
/linux/namespaces, new or joined by path. Where runc is looser we are stricter on purpose,
because the runtime acts on the result: relative mount destinations and ".." components in
container paths are rejected. A config without a mount namespace is valid (the spec: an absent
namespace type is inherited): its rootfs and mounts are made in the runtime's mount namespace.
"""
import os

from runtime import jsonfast
from runtime.errors import STRICT, ConfigNotJson, OcishError, SpecError

U32 = 2**32 - 1
U64 = 2**64 - 1
I64_MIN, I64_MAX = -2**63, 2**63 - 1
# runc's libcontainer/user maxID ("uids and gids must be in range 0-2147483647"): above it lies
# (uid_t)-1 = 4294967295, "leave unchanged" to setresuid(2) and chown(2), which would keep root
ID_MAX = 2**31 - 1
ERR_ID_RANGE = f"uids and gids must be in range 0-{ID_MAX}"
MAP_MAX = U32 - 1  # the largest id an id map may name: (uid_t)-1 is "no id"
# the kernel's map_write(): at most 340 lines (UID_GID_MAP_MAX_EXTENTS), all in one write(2)
# shorter than a page, else EINVAL
MAP_LINES_MAX = 340
# cpu.shares: the kernel clamps to [2, 262144] (MIN_SHARES, MAX_SHARES) without an error; runc
# reads it back and fails ("the maximum allowed cpu-shares is 262144"), so a config asks within
CPU_SHARES_MIN, CPU_SHARES_MAX = 2, 262144
# cpu.cfs_period_us and cpu.cfs_quota_us (cgroup v2: cpu.max), in microseconds: the kernel's
# tg_set_cfs_bandwidth() refuses with EINVAL a period outside [1 ms, 1 s]
# (min/max_cfs_quota_period), a quota below 1 ms or above max_cfs_runtime (2^44 - 1 us). runc
# 1.1.5 and crun 1.8 write the value and report that EINVAL with no pointer; checking the same
# bounds here refuses the config before a cgroup is made, with its pointer (lint agrees)
CFS_PERIOD_MIN, CFS_PERIOD_MAX = 1000, 1000000
CFS_QUOTA_MIN, CFS_QUOTA_MAX = 1000, 2**44 - 1

NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
RLIMITS = frozenset(f"RLIMIT_{n}" for n in (
    "AS", "CORE", "CPU", "DATA", "FSIZE", "LOCKS", "MEMLOCK", "MSGQUEUE", "NICE", "NOFILE",
    "NPROC", "RSS", "RTPRIO", "RTTIME", "SIGPENDING", "STACK"))
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
PROPAGATIONS = ("shared", "slave", "private", "unbindable",
                "rshared", "rslave", "rprivate", "runbindable")
SCHED_FLAGS = ("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
               "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
               "SCHED_FLAG_UTIL_CLAMP_MAX")
HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
IOPRIO_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
SCHED_POLICIES = ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO",
                  "SCHED_IDLE", "SCHED_DEADLINE")
PERSONALITY_DOMAINS = ("LINUX", "LINUX32")
TIME_CLOCKS = ("boottime", "monotonic")
HOST_NAME_MAX = 64
# The runtime's container side (Python) is charged ~1.1 MiB to the container's memory cgroup
# during setup and is OOM-killed below ~1.5 MiB ("container process exited during setup"); runc
# 1.1.5 fails too below ~2.3 MiB ("unable to set memory limit ... current usage"). A floor with
# room to spare makes that a config error; Docker and podman refuse limits below 6 MB anyway.
MIN_MEMORY = 4 * 1024 * 1024
# config.json is read whole: 16 MiB is far beyond any real one (args and env together are
# bounded by execve(2) at a quarter of the stack limit, 2 MiB by default; a full seccomp
# profile is ~50 KiB). runc has no cap.
MAX_CONFIG = 16 << 20
DEV_MAJOR_MAX, DEV_MINOR_MAX = 2**12 - 1, 2**20 - 1  # <linux/kdev_t.h>: MINORBITS 20

# Sysctls that live in the ipc namespace (runc's list, as prefixes) and the other namespaced ones.
_IPC_SYSCTL_PREFIXES = ("kernel.msg", "kernel.sem", "kernel.shm", "fs.mqueue.")

# ---------------------------------------------------------------------------------------------
# create's mode and lint's mode

_found: list | None = None  # None: create's mode (raise at the first); a list: lint's (record)
# what a check raises when it reads a value that an earlier check already reported as invalid
_FOLLOW_ON = (TypeError, KeyError, AttributeError, IndexError)


class _Each:
    """`with _each:` around one independent check. In create's mode a SpecError goes through
    (the first problem wins); in lint's mode it is recorded and the code after the block runs.
    A follow-on TypeError (KeyError, ...) of a check that read a value already reported is
    dropped in lint's mode, but only then: with nothing recorded it is a bug and propagates."""
    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, tb) -> bool:
        if kind is None or _found is None:
            return False
        if issubclass(kind, SpecError):
            _found.append(err)
            return True
        return bool(_found) and issubclass(kind, _FOLLOW_ON)


_each = _Each()


def collect(spec, bundle: str) -> list[SpecError]:
    """Every problem `validate` finds in `spec`, in the order it meets them: `validate` raises
    the first of these and only that one. One per pointer: a second problem at the same item
    (a name that is no "CAP_*" is also no capability) is the first one again. Relative paths
    are relative to `bundle`."""
    global _found
    _found = found = []
    try:
        with _each:
            _validate(spec, os.path.abspath(bundle))
    finally:
        _found = None
    seen: set = set()
    return [e for e in found if not (e.pointer in seen or seen.add(e.pointer))]


# ---------------------------------------------------------------------------------------------
# loading

def load(bundle: str) -> tuple[dict, str]:
    """Read and validate `<bundle>/config.json`; return the spec and the absolute, symlink-free
    rootfs path. Raises OcishError (file problems) or SpecError (content problems)."""
    bundle = os.path.abspath(bundle)
    spec = read(bundle)
    return spec, _validate(spec, bundle)


def read(bundle: str, name: str = "config.json"):
    """The JSON value in `<bundle>/config.json` (or another file of the bundle: `name`), not
    validated. Raises OcishError when there is no bundle directory, the file cannot be read, or
    it is not JSON in UTF-8."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        why = "not a directory" if os.path.exists(bundle) else "no such file or directory"
        raise OcishError(f"bundle {_q(bundle)}: {why}")
    try:
        data = _read_config(os.path.join(bundle, name))
    except OSError as e:
        why = os.strerror(e.errno).lower() if e.errno else e.strerror
        raise OcishError(f"bundle {_q(bundle)}: {name}: {why}") from None
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):
            text = text[1:]
        spec = jsonfast.loads(text)
    except UnicodeDecodeError as e:
        why = f"not valid utf-8 at byte {e.start}"
    except jsonfast.NotJson as e:
        why = f"invalid json: {e.args[0]} is not a json value"
    except RecursionError:
        why = "invalid json: nested too deeply"
    except ValueError as e:  # json.JSONDecodeError
        msg = getattr(e, "msg", str(e))
        why = (f"invalid json at line {getattr(e, 'lineno', 0)} column {getattr(e, 'colno', 0)}: "
               f"{msg[:1].lower()}{msg[1:]}")
    else:
        return spec
    raise ConfigNotJson(f"bundle {_q(bundle)}: {name}: {why}")


def _read_config(path: str) -> bytes:
    """config.json's bytes: a regular file of at most MAX_CONFIG bytes, else OSError with a
    word of our own. O_NONBLOCK so that a FIFO never blocks us; runc reads whatever it is
    given (a FIFO waits for a writer, /dev/zero fills memory)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:
            kind = {0o040000: "a directory", 0o010000: "a fifo", 0o020000: "a character device",
                    0o060000: "a block device", 0o140000: "a socket"}.get(st.st_mode & 0o170000,
                                                                          "not a file")
            raise OSError(0, f"not a regular file ({kind})")
        if st.st_size > MAX_CONFIG:
            raise OSError(0, f"larger than {MAX_CONFIG} bytes ({st.st_size})")
        data = os.read(fd, MAX_CONFIG + 1)
        while len(data) <= MAX_CONFIG and (more := os.read(fd, MAX_CONFIG + 1 - len(data))):
            data += more
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG:  # grew while we read it
        raise OSError(0, f"larger than {MAX_CONFIG} bytes")
    return data


def validate(spec: dict, bundle: str) -> None:
    """Raise SpecError at the first problem in `spec`; relative paths are relative to `bundle`."""
    _validate(spec, os.path.abspath(bundle))


# ---------------------------------------------------------------------------------------------
# small checkers: each returns the value or raises SpecError(pointer, ...)

def esc(key: str) -> str:
    """A key as one RFC 6901 reference token."""
    return key.replace("~", "~0").replace("/", "~1")


def _q(s: str) -> str:
    if len(s) > 80:
        s = s[:77] + "..."
    return jsonfast.quote(s)


def _got(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    t = type(v)
    if t is str:
        return _q(v)
    if t is int or t is float:
        return repr(v)
    if t is list:
        return "an array"
    if t is dict:
        return "an object"
    return t.__name__


def _bad(p: str, what: str, v) -> None:
    raise SpecError(p, f"must be {what}, got {_got(v)}")


def _missing(p: str, what: str) -> None:
    raise SpecError(p, f"missing, expected {what}")


def _obj(v, p: str) -> dict:
    if type(v) is not dict:
        _bad(p, "an object", v)
    return v


def _list(v, p: str, what: str = "an array") -> list:
    if type(v) is not list:
        _bad(p, what, v)
    return v


def _str(v, p: str, what: str = "a string") -> str:
    if type(v) is not str:
        _bad(p, what, v)
    if "\0" in v:
        raise SpecError(p, "must not contain a nul byte")
    if not v.isascii():
        try:
            v.encode()
        except UnicodeEncodeError:
            raise SpecError(p, f"must be valid unicode, got {ascii(v)[:80]}") from None
    return v


def _nonempty(v, p: str, what: str = "a non-empty string") -> str:
    if not _str(v, p, what):
        _bad(p, what, v)
    return v


def _bool(v, p: str) -> bool:
    if type(v) is not bool:
        _bad(p, "true or false", v)
    return v


def _int(v, p: str, lo: int, hi: int, what: str = "") -> int:
    if type(v) is not int or not lo <= v <= hi:
        if not what:
            if lo == I64_MIN and hi == I64_MAX:
                what = "an integer"
            elif hi in (U64, I64_MAX):
                what = f"an integer >= {lo}" if lo else "a non-negative integer"
            else:
                what = f"an integer from {lo} to {hi}"
        _bad(p, what, v)
    return v


def _id(v, p: str) -> int:
    """A uid or gid: what ends in setresuid(2), setgroups(2), chown(2) or an id map."""
    if type(v) is not int:
        _bad(p, f"an integer from 0 to {ID_MAX}", v)
    if not 0 <= v <= ID_MAX:
        raise SpecError(p, f"{ERR_ID_RANGE}, got {v}")
    return v


def _items(v, p: str, check, *args, what: str = "an array") -> list:
    """The array `v`, each item checked apart: `check(item, pointer, *args)`."""
    for i, item in enumerate(_list(v, p, what)):
        with _each:
            check(item, f"{p}/{i}", *args)
    return v


def _strlist(v, p: str) -> list:
    return _items(v, p, _str, what="an array of strings")


def _args(v, p: str) -> list:
    """/process/args: at least the program (runtime-spec: "at least one entry is REQUIRED")."""
    if not _strlist(v, p):
        _bad(p, "a non-empty array of strings", v)
    _nonempty(v[0], p + "/0", "a program name or path")
    return v


def _path(v, p: str, dotdot: bool = True) -> str:
    """An absolute path; `dotdot=False` also rejects ".." components (paths inside the rootfs)."""
    if type(v) is not str or not v.startswith("/"):
        _bad(p, "an absolute path", v)
    _str(v, p)
    if not dotdot and ".." in v.split("/"):
        raise SpecError(p, f'must not contain ".." components, got {_q(v)}')
    return v


def _cpulist(v, p: str) -> str:
    """A cpuset list such as "0-2,4"; empty means unset."""
    s = _str(v, p)
    if s:
        for part in s.split(","):
            lo, dash, hi = part.partition("-")
            ok = lo.isascii() and lo.isdigit()
            if ok and dash:
                ok = hi.isascii() and hi.isdigit() and int(lo) <= int(hi)
            if not ok:
                _bad(p, 'a cpu list like "0-2,4"', s)
    return s


def _weight(v, p: str) -> int:
    """A blkio weight: 10 to 1000, or 0 for "not set" (what Docker sends, and runc accepts)."""
    if v == 0 and type(v) is int:
        return v
    return _int(v, p, 10, 1000, "an integer from 10 to 1000 (or 0: not set)")


def _opt(d: dict, key: str, p: str, check, *args):
    """`check(value, pointer, *args)` when `key` is present; None when it is absent (or, in
    lint's mode, has a problem: then recorded)."""
    if key in d:
        if _found is None:
            return check(d[key], f"{p}/{key}", *args)
        return _checked(check, d[key], f"{p}/{key}", args)
    return None


def _req(d: dict, key: str, p: str, what: str, check, *args):
    """`check(value, pointer, *args)`; a missing `key` is a problem. In lint's mode None when
    the value is missing or has a problem (recorded)."""
    if _found is None:
        if key not in d:
            _missing(f"{p}/{key}", what)
        return check(d[key], f"{p}/{key}", *args)
    if key not in d:
        with _each:
            _missing(f"{p}/{key}", what)
        return None
    return _checked(check, d[key], f"{p}/{key}", args)


def _checked(check, v, p: str, args: tuple):
    """Lint's mode: `check(v, p, *args)`, or None when it recorded a problem (a value with a
    problem reads as absent to the checks that use it)."""
    mark = len(_found)
    with _each:
        v = check(v, p, *args)
    return v if len(_found) == mark else None


def _mappings(v, p: str) -> list:
    """[{containerID, hostID, size}]: size > 0, no overlap, every id of both ranges a valid
    uid_t: at most 4294967294, since (uid_t)-1 = 4294967295 is the kernel's "no id" (its
    uid_map parser refuses it). The whole range `0 0 4294967295` of the initial namespace is
    therefore one short, as the kernel itself has it. The process user's ids are bounded
    tighter (ID_MAX) where they are taken."""
    seen: list = []
    for i, m in enumerate(_list(v, p)):
        with _each:
            mp = f"{p}/{i}"
            _obj(m, mp)
            c = _req(m, "containerID", mp, f"an integer from 0 to {MAP_MAX}", _int, 0, MAP_MAX)
            h = _req(m, "hostID", mp, f"an integer from 0 to {MAP_MAX}", _int, 0, MAP_MAX)
            n = _req(m, "size", mp, f"an integer from 1 to {MAP_MAX + 1}", _int, 1, MAP_MAX + 1)
            for key, first in (("containerID", c), ("hostID", h)):
                if first + n - 1 > MAP_MAX:
                    raise SpecError(mp + "/size", f"{key} range {first}-{first + n - 1} goes "
                                                  f"past {MAP_MAX}, the largest id (4294967295 "
                                                  f"is -1)")
            for j, (c2, h2, n2) in enumerate(seen):
                for key, a, b in (("containerID", c, c2), ("hostID", h, h2)):
                    if a < b + n2 and b < a + n:
                        raise SpecError(f"{mp}/{key}", f"range {a}-{a + n - 1} overlaps "
                                                       f"{p}/{j} ({b}-{b + n2 - 1})")
            seen.append((c, h, n))
    _map_size(v, p)
    return v


def _map_size(maps: list, p: str) -> None:
    """What the kernel's map_write() takes: at most 340 lines, written at once in less than a
    page, as stage idmap writes them ("ID HOSTID SIZE\n" each)."""
    if len(maps) > MAP_LINES_MAX:
        raise SpecError(p, f"has {len(maps)} mappings: the kernel takes at most "
                           f"{MAP_LINES_MAX} in one id map (more fail with EINVAL): merge "
                           "adjacent ranges")
    if all(type(m) is dict for m in maps):
        size = sum(len(f"{m.get('containerID')} {m.get('hostID')} {m.get('size')}\n")
                   for m in maps)
        page = os.sysconf("SC_PAGE_SIZE")
        if size >= page:
            raise SpecError(p, f"the id map is {size} bytes as text: the kernel takes it in "
                               f"one write of less than a page ({page} bytes; more fail with "
                               "EINVAL): merge adjacent ranges")


def _mapped(ident: int, maps: list) -> bool:
    return any(m["containerID"] <= ident < m["containerID"] + m["size"] for m in maps)


def _sched_params(sch: dict, sp: str) -> None:
    """What sched_setattr(2) refuses with EINVAL on any host (the kernel's
    sched_setattr checks and __checkparam_dl), and runc's rules, for /process/scheduler whose
    members have the right types."""
    policy = sch.get("policy")
    prio = sch.get("priority", 0)
    dl = {k: sch.get(k, 0) for k in ("runtime", "deadline", "period")}
    if type(prio) is not int or any(type(v) is not int for v in dl.values()):
        return  # reported
    if policy == "SCHED_ISO":
        raise SpecError(sp + "/policy", "policy SCHED_ISO is reserved: Linux does not "
                                        "implement it (sched_setattr(2) fails with EINVAL)")
    if policy in ("SCHED_FIFO", "SCHED_RR"):
        if not 1 <= prio <= 99:
            raise SpecError(sp + "/priority", f"policy {policy} needs a priority from 1 to 99, "
                                              f"got {prio}")
    elif prio:
        raise SpecError(sp + "/priority", "a priority can only be given for SCHED_FIFO or "
                                          "SCHED_RR")
    if policy != "SCHED_DEADLINE":
        if any(dl.values()):
            raise SpecError(sp, "runtime, deadline and period can only be given for "
                                "SCHED_DEADLINE")
        return
    runtime, deadline = dl["runtime"], dl["deadline"]
    period = dl["period"] or deadline
    if not deadline:
        raise SpecError(sp + "/deadline", "policy SCHED_DEADLINE needs a deadline "
                                            "(nanoseconds)")
    if runtime < 1024:
        raise SpecError(sp + "/runtime", f"policy SCHED_DEADLINE needs a runtime of at least "
                                         f"1024 nanoseconds, got {runtime}")
    if max(deadline, period) >= 2**63:
        raise SpecError(sp + "/period", "deadline and period must be below 2^63 nanoseconds")
    if not runtime <= deadline <= period:
        raise SpecError(sp, f"policy SCHED_DEADLINE needs runtime <= deadline <= period, "
                            f"got {runtime}, {deadline}, {period}")


def _add_ns(t: str) -> str:
    return f'add {{"type": "{t}"}} to /linux/namespaces'


# ---------------------------------------------------------------------------------------------
# the sections of config.json

def _validate(spec, bundle: str) -> str:
    """Check everything; return the real rootfs path ("" in lint's mode when it is not valid)."""
    if type(spec) is not dict:
        _bad("", "a json object", spec)

    with _each:
        if "ociVersion" not in spec:
            _missing("/ociVersion", 'a version string like "1.2.0"')
        ver = _str(spec["ociVersion"], "/ociVersion", 'a version string like "1.2.0"')
        major, dot, _ = ver.partition(".")
        if major != "1" or not dot:
            raise SpecError("/ociVersion", f'unsupported version {_q(ver)}: expected 1.x.y, '
                                           f'such as "1.2.0"')

    root = _req(spec, "root", "", 'an object like {"path": "rootfs"}', _obj)
    if root is not None:
        _req(root, "path", "/root", "the rootfs path", _nonempty, "a non-empty path")
        _opt(root, "readonly", "/root", _bool)

    linux = _opt(spec, "linux", "", _obj)
    # None (lint's mode) when the namespaces cannot be told: the checks that need them skip
    ns = _namespaces(linux or {}) if linux is not None or "linux" not in spec else None
    linux = linux or {}
    if ns is not None and "user" in ns and ns["user"][1] is None and "mount" not in ns:
        with _each:
            # runc fails it later: "error preparing rootfs: mount /, flags: 0x84000: operation
            # not permitted"
            raise SpecError(f"/linux/namespaces/{ns['user'][0]}",
                            "a new user namespace needs a mount namespace of its own: the "
                            "runtime's is owned by the host's user namespace, where the "
                            f"container's root may not mount its rootfs: {_add_ns('mount')}")

    with _each:
        _process(spec)

    for key in ("hostname", "domainname"):
        if key in spec:
            with _each:
                name = _str(spec[key], "/" + key)
                if len(name.encode()) > HOST_NAME_MAX:
                    raise SpecError("/" + key, f"must be at most {HOST_NAME_MAX} bytes, got "
                                               f"{len(name.encode())}")
                if name and "uts" not in ns:
                    raise SpecError("/" + key, f"unable to set {key} without a private uts "
                                               f"namespace: {_add_ns('uts')}")

    with _each:
        _mounts(spec, ns)
    with _each:
        _hooks(spec)
    if "annotations" in spec:
        with _each:
            for k, v in _obj(spec["annotations"], "/annotations").items():
                with _each:
                    _str(v, "/annotations/" + esc(k))

    maps = {k: _opt(linux, k, "/linux", _mappings) for k in ("uidMappings", "gidMappings")}
    with _each:
        _linux(linux, ns, maps)
    with _each:
        _cross(spec, maps, ns)
    # the name tables are runtime/linux's; the create path imports them anyway
    from runtime.spec_seccomp import validate_seccomp
    with _each:
        _validate_caps(spec, _each)
    with _each:
        validate_seccomp(spec, _each)
    with _each:
        return _rootfs(root["path"], bundle)
    return ""  # lint's mode: the rootfs problem is recorded


def cap_masks(caps: dict, pointer: str = "/process/capabilities", each=STRICT) -> dict[str, int]:
    """{"bounding": [...], ...} -> {"bounding": mask, ...}, an absent set an empty mask. An
    unknown name raises SpecError at pointer/SET/INDEX, each inside the guard `each` (lint's
    mode records it and goes on); names this kernel lacks are left out, as runc does."""
    from runtime.linux import capabilities as C
    masks = {}
    for s in C.SETS:
        mask = 0
        for i, c in enumerate(caps.get(s) or ()):
            if type(c) is str and c in C.NUMBERS:
                mask |= C.to_mask((c,))
            else:
                with each:
                    raise SpecError(f"{pointer}/{s}/{i}", f"unknown capability {_got(c)}")
        masks[s] = mask
    return masks


def _validate_caps(spec: dict, each=STRICT) -> None:
    """Unknown capability names (sets that are not arrays are reported elsewhere)."""
    proc = spec.get("process")
    if type(proc) is dict and type(proc.get("capabilities")) is dict:
        cap_masks({s: v for s, v in proc["capabilities"].items() if type(v) is list}, each=each)


def _enum(v, p: str, choices, what: str = "") -> str:
    """One of `choices` (strings)."""
    what = what or "one of " + ", ".join(choices)
    if _str(v, p, what) not in choices:
        _bad(p, what, v)
    return v


def _namespaces(linux: dict) -> dict | None:
    """Validate /linux/namespaces; return {type: (index, path or None)}, or None in lint's mode
    when the list or the type of an entry is invalid."""
    ns: dict | None = {}
    if "namespaces" not in linux:
        return ns
    with _each:
        for i, n in enumerate(_list(linux["namespaces"], "/linux/namespaces")):
            with _each:
                p = f"/linux/namespaces/{i}"
                _obj(n, p)
                what = "one of " + ", ".join(NAMESPACES)
                t = _req(n, "type", p, what, _enum, NAMESPACES, what)
                if t is None:
                    ns = None  # lint's mode: recorded, and no telling what was meant
                    continue
                if ns is None:
                    continue
                if t in ns:
                    raise SpecError(p + "/type", f'duplicate namespace "{t}", already at '
                                                 f'/linux/namespaces/{ns[t][0]}')
                path = _opt(n, "path", p, _path)
                ns[t] = (i, path)
                if path is not None:
                    try:
                        os.stat(path)
                    except OSError as e:
                        why = "does not exist" if isinstance(e, FileNotFoundError) else \
                            os.strerror(e.errno or 0).lower()
                        raise SpecError(p + "/path", f"{t} namespace file {_q(path)} {why}" if
                                        why == "does not exist" else
                                        f"{t} namespace file {_q(path)}: {why}") from None
        return ns
    return None


def _process(spec: dict) -> None:
    proc = _req(spec, "process", "", "an object with args, cwd and user", _obj)
    if proc is None:
        return  # lint's mode: recorded
    p = "/process"
    _req(proc, "args", p, "a non-empty array of strings", _args)
    _req(proc, "cwd", p, "an absolute path", _path)
    if "env" in proc:
        with _each:
            for i, e in enumerate(_strlist(proc["env"], p + "/env")):
                with _each:
                    if e.find("=") <= 0:
                        _bad(f"{p}/env/{i}", '"KEY=value" with a non-empty KEY', e)
    _opt(proc, "terminal", p, _bool)
    if "consoleSize" in proc:
        with _each:
            cs = _obj(proc["consoleSize"], p + "/consoleSize")
            for k in ("height", "width"):  # both required, as in the runtime-spec schema
                _req(cs, k, p + "/consoleSize", "an integer from 0 to 65535", _int, 0, 65535)

    if "user" in proc:
        with _each:
            _user(_obj(proc["user"], p + "/user"), p + "/user")

    if "rlimits" in proc:
        with _each:
            _rlimits(_list(proc["rlimits"], p + "/rlimits"), p + "/rlimits")

    _opt(proc, "oomScoreAdj", p, _int, -1000, 1000)
    _opt(proc, "noNewPrivileges", p, _bool)
    _opt(proc, "apparmorProfile", p, _str)
    _opt(proc, "selinuxLabel", p, _str)
    _opt(proc, "commandLine", p, _str)  # Windows' (runtime-spec schema): typed, not used

    if "capabilities" in proc:
        with _each:
            cp = p + "/capabilities"
            caps = _obj(proc["capabilities"], cp)
            for s in CAP_SETS:
                if s in caps:
                    with _each:
                        _items(caps[s], f"{cp}/{s}", _cap_name,
                               what="an array of capability names")

    if "ioPriority" in proc:
        with _each:
            ip = p + "/ioPriority"
            io = _obj(proc["ioPriority"], ip)
            what = "one of " + ", ".join(IOPRIO_CLASSES)
            _req(io, "class", ip, what, _enum, IOPRIO_CLASSES, what)
            _opt(io, "priority", ip, _int, 0, 7)

    if "scheduler" in proc:
        with _each:
            sp = p + "/scheduler"
            sch = _obj(proc["scheduler"], sp)
            what = "one of " + ", ".join(SCHED_POLICIES)
            _req(sch, "policy", sp, what, _enum, SCHED_POLICIES, what)
            _opt(sch, "nice", sp, _int, -20, 19)
            _opt(sch, "priority", sp, _int, -2**31, 2**31 - 1)
            _opt(sch, "flags", sp, _items, _enum, SCHED_FLAGS)
            for k in ("runtime", "deadline", "period"):
                _opt(sch, k, sp, _int, 0, U64)
            _sched_params(sch, sp)

    if "execCPUAffinity" in proc:
        with _each:
            ap = p + "/execCPUAffinity"
            aff = _obj(proc["execCPUAffinity"], ap)
            _opt(aff, "initial", ap, _cpulist)
            _opt(aff, "final", ap, _cpulist)


def _cap_name(c, p: str) -> str:
    if type(c) is not str or not c.startswith("CAP_"):
        _bad(p, 'a capability name like "CAP_KILL"', c)
    return _str(c, p)


def _user(user: dict, up: str) -> None:
    _opt(user, "uid", up, _id)
    _opt(user, "gid", up, _id)
    _opt(user, "umask", up, _int, 0, 0o777, "an integer from 0 to 511 (0o777)")
    _opt(user, "additionalGids", up, _items, _id)
    _opt(user, "username", up, _str)


def _rlimits(rlimits: list, rp: str) -> None:
    seen: dict = {}
    for i, r in enumerate(rlimits):
        with _each:
            ip = f"{rp}/{i}"
            _obj(r, ip)
            what = 'an RLIMIT_* name such as "RLIMIT_NOFILE"'
            t = _req(r, "type", ip, what, _enum, RLIMITS, what)
            if t in seen:
                raise SpecError(ip + "/type", f'duplicate rlimit "{t}", already at '
                                              f'{rp}/{seen[t]}')
            if t is not None:
                seen[t] = i
            soft = _req(r, "soft", ip, "a non-negative integer", _int, 0, U64)
            hard = _req(r, "hard", ip, "a non-negative integer", _int, 0, U64)
            if soft > hard:
                raise SpecError(ip + "/soft", f"must not exceed hard limit {hard}, got {soft}")


def _mounts(spec: dict, ns: dict) -> None:
    if "mounts" not in spec:
        return
    mounts = _list(spec["mounts"], "/mounts")
    for i, m in enumerate(mounts):
        with _each:
            _mount(m, f"/mounts/{i}", ns)


def _mount(m, p: str, ns: dict | None = None) -> None:
    _obj(m, p)
    _req(m, "destination", p, "an absolute path", _path, False)
    typ = _opt(m, "type", p, _str)
    src = _opt(m, "source", p, _str)
    opts = _opt(m, "options", p, _strlist) or ()
    bind = typ == "bind" or "bind" in opts or "rbind" in opts
    if bind and not src:
        with _each:
            if src is None:
                _missing(p + "/source", "the path to bind-mount")
            _bad(p + "/source", "the path to bind-mount", src)
    _mount_options(opts, p, typ, bind)
    has = [k for k in ("uidMappings", "gidMappings") if k in m]
    for k in has:
        with _each:
            _mappings(m[k], f"{p}/{k}")
    for k in has:  # runc 1.2 refuses an empty one (Go reads [] as absent) in the same words
        if m[k] == []:
            raise SpecError(f"{p}/{k}", "empty: id-mapped mounts must have both uid and gid "
                                        "mappings specified (leave both out for \"idmap\" to "
                                        "take the container's user namespace mapping)")
    if len(has) == 1:
        other = "gidMappings" if has[0] == "uidMappings" else "uidMappings"
        raise SpecError(f"{p}/{other}", "missing: id-mapped mounts must have both uid and gid "
                                        "mappings specified (runc 1.2)")
    if has and not bind:
        raise SpecError(f"{p}/{has[0]}", 'id-mapped mounts must be bind mounts (type "bind" '
                                         'or option "bind"/"rbind")')
    # "idmap"/"ridmap" (runtime-spec 1.2): bind mounts only, as runc's checkIDMapMounts; without
    # mappings of its own the mount takes the container's user namespace, which must exist
    for k, opt in enumerate(opts):
        if opt in ("idmap", "ridmap"):
            if not bind:
                raise SpecError(f"{p}/options/{k}", f'{opt}: id-mapped mounts must be bind mounts '
                                                    f'(type "bind" or option "bind"/"rbind")')
            if not has and ns is not None and "user" not in ns:
                raise SpecError(f"{p}/options/{k}", f"{opt} without uidMappings and gidMappings "
                                                    f"takes the container's user namespace "
                                                    f"mapping, but there is none: {_add_ns('user')}")


def _mount_options(opts, p: str, typ: str | None, bind: bool) -> None:
    """A bind takes no filesystem data, so an option ocish does not know there would be
    dropped unseen: refused, as runc 1.2 refuses it (podman stopped sending its own "copy" and
    "nocopy" for that); "tmpcopyup" only means something on a tmpfs (runc and crun ignore it
    elsewhere). Other filesystems judge their own data when mounted."""
    from runtime.stages import mountopts
    parsed = mountopts.parse(list(opts))
    if bind and parsed.data:
        k = parsed.data_index[0]
        raise SpecError(f"{p}/options/{k}", f"unknown option {_q(parsed.data[0])}: a bind "
                                            f"mount takes no filesystem options (those ocish "
                                            f"knows: ocish features, mountOptions)")
    if parsed.copyup and (typ != "tmpfs" or bind):
        k = list(opts).index(mountopts.TMPCOPYUP)
        raise SpecError(f"{p}/options/{k}", 'tmpcopyup: only a mount of type "tmpfs" has '
                                            "one, it copies what the tmpfs covers into it")


def _hooks(spec: dict) -> None:
    if "hooks" not in spec:
        return
    hooks = _obj(spec["hooks"], "/hooks")
    for kind in HOOKS:
        _opt(hooks, kind, "/hooks", _items, _hook)


def _hook(h, p: str) -> None:
    _obj(h, p)
    _req(h, "path", p, "the absolute path of the hook program", _path)
    if _opt(h, "args", p, _strlist) and not h["args"][0]:
        # execve(2) takes it, but Python's posix_spawn refuses an empty argv[0]
        with _each:
            _bad(p + "/args/0", "a non-empty program name (argv[0])", h["args"][0])
    _opt(h, "env", p, _strlist)
    _opt(h, "timeout", p, _int, 1, I64_MAX, "a positive number of seconds")


def _linux(linux: dict, ns: dict, maps: dict) -> None:
    # user namespace and its mappings (runc's rules); a map is None when absent or (lint's
    # mode) invalid, then reported already
    for k in ("uidMappings", "gidMappings"):
        with _each:
            if "user" not in ns:
                if maps[k]:
                    raise SpecError("/linux/" + k, "user namespace mappings given, but there is "
                                                   f"no user namespace: {_add_ns('user')}")
            elif ns["user"][1] is None and not maps[k] and (maps[k] is not None
                                                           or k not in linux):
                raise SpecError("/linux/" + k, f"the new user namespace (/linux/namespaces/"
                                               f"{ns['user'][0]}) needs {k[:3]} mappings, "
                                               f"got none")

    if "sysctl" in linux:
        with _each:
            for key, value in _obj(linux["sysctl"], "/linux/sysctl").items():
                with _each:
                    p = "/linux/sysctl/" + esc(key)
                    _str(value, p)
                    _sysctl(key, p, ns)

    if "resources" in linux:
        with _each:
            _resources(_obj(linux["resources"], "/linux/resources"))

    _opt(linux, "devices", "/linux", _items, _device)

    if "cgroupsPath" in linux:
        with _each:
            cg = _str(linux["cgroupsPath"], "/linux/cgroupsPath")
            if ".." in cg.split("/"):
                raise SpecError("/linux/cgroupsPath", f'must not contain ".." components, '
                                                      f'got {_q(cg)}')

    _opt(linux, "rootfsPropagation", "/linux", _enum, PROPAGATIONS)

    for key in ("maskedPaths", "readonlyPaths"):
        if key in linux:
            with _each:
                paths = _list(linux[key], "/linux/" + key, "an array of absolute paths")
                for i, path in enumerate(paths):
                    with _each:
                        _path(path, f"/linux/{key}/{i}", False)
                if paths and "mount" not in ns:
                    raise SpecError("/linux/" + key, "unable to restrict paths without a "
                                                     f"private mount namespace: "
                                                     f"{_add_ns('mount')}")

    if "timeOffsets" in linux:
        with _each:
            _time_offsets(_obj(linux["timeOffsets"], "/linux/timeOffsets"), ns)

    _opt(linux, "mountLabel", "/linux", _str)
    _opt(linux, "seccomp", "/linux", _obj)
    if "intelRdt" in linux:
        with _each:
            rp = "/linux/intelRdt"
            rdt = _obj(linux["intelRdt"], rp)
            for k in ("closID", "l3CacheSchema"):
                _opt(rdt, k, rp, _str)
            _opt(rdt, "memBwSchema", rp, _mem_bw_schema)
            for k in ("enableCMT", "enableMBM"):
                _opt(rdt, k, rp, _bool)
    _opt(linux, "memoryPolicy", "/linux", _obj)
    if "netDevices" in linux:
        with _each:
            for name, dev in _obj(linux["netDevices"], "/linux/netDevices").items():
                with _each:
                    dp = "/linux/netDevices/" + esc(name)
                    _opt(_obj(dev, dp), "name", dp, _str)
    if "personality" in linux:
        with _each:
            pp = "/linux/personality"
            pers = _obj(linux["personality"], pp)
            what = "one of " + ", ".join(PERSONALITY_DOMAINS)
            _req(pers, "domain", pp, what, _enum, PERSONALITY_DOMAINS, what)
            _opt(pers, "flags", pp, _strlist)


def _device(d, p: str) -> None:
    _obj(d, p)
    path = _req(d, "path", p, "an absolute path under the rootfs", _path, False)
    if path is not None and not path.strip("/"):
        with _each:
            _bad(p + "/path", "the path of a device node, not the rootfs itself", path)
    what = 'one of "c", "b", "u", "p"'
    t = _req(d, "type", p, what, _enum, ("c", "b", "u", "p"), what)
    # the kernel's dev_t: 12 bits of major, 20 of minor (MINORBITS); runc casts to uint32 and
    # mknod(2) then makes another device, or fails: say so here instead
    for k, hi in (("major", DEV_MAJOR_MAX), ("minor", DEV_MINOR_MAX)):
        what = f"an integer from 0 to {hi} (a Linux device {k} number)"
        if t == "p":
            _opt(d, k, p, _int, 0, hi, what)
        elif t is not None:
            _req(d, k, p, f"the device {k} number", _int, 0, hi, what)
    # the permission bits with set-id and sticky (containerd's DeviceFromPath: mode &^ S_IFMT)
    _opt(d, "fileMode", p, _int, 0, 0o7777, "an integer from 0 to 4095 (0o7777)")
    _opt(d, "uid", p, _id)
    _opt(d, "gid", p, _id)


def _time_offsets(offsets: dict, ns: dict) -> None:
    tp = "/linux/timeOffsets"
    for clock, off in offsets.items():
        with _each:
            cp = f"{tp}/{esc(clock)}"
            if clock not in TIME_CLOCKS:
                raise SpecError(cp, f"unknown clock {_q(clock)}, expected boottime or monotonic")
            _obj(off, cp)
            _opt(off, "secs", cp, _int, I64_MIN, I64_MAX)
            _opt(off, "nanosecs", cp, _int, 0, 999_999_999)
    if "time" not in ns:
        raise SpecError(tp, f"time offsets need a time namespace: {_add_ns('time')}")
    if ns["time"][1] is not None:
        raise SpecError(tp, "time offsets apply only to a new time namespace, but "
                            f"/linux/namespaces/{ns['time'][0]} joins an existing one")


def _mem_bw_schema(v, p: str) -> str:
    """Intel RDT's memory bandwidth schemata line: "MB:" and one line (the schema's pattern)."""
    if not _str(v, p).startswith("MB:") or "\n" in v:
        _bad(p, 'a schemata line like "MB:0=70;1=70"', v)
    return v


def _sysctl(key: str, p: str, ns: dict) -> None:
    """runc's rule: a sysctl must belong to a namespace the container has of its own."""
    if not key:
        raise SpecError(p, "sysctl name must not be empty")
    _str(key, p)
    name = key.replace("/", ".")
    if name.startswith(_IPC_SYSCTL_PREFIXES):
        if "ipc" not in ns:
            raise SpecError(p, f"sysctl {_q(key)} needs a private ipc namespace: {_add_ns('ipc')}")
        return
    if name.startswith("net."):
        if "network" not in ns:
            raise SpecError(p, f"sysctl {_q(key)} needs a private network namespace: "
                               f"{_add_ns('network')}")
        i, path = ns["network"]
        if path is not None and _same_file(path, "/proc/self/ns/net"):
            raise SpecError(p, f"sysctl {_q(key)} is not allowed in the host network namespace "
                               f"(joined by /linux/namespaces/{i}/path)")
        return
    if name == "kernel.hostname":
        raise SpecError(p, f"sysctl {_q(key)} conflicts with /hostname: set the hostname there")
    if name == "kernel.domainname":
        if "uts" not in ns:
            raise SpecError(p, f"sysctl {_q(key)} needs a private uts namespace: {_add_ns('uts')}")
        return
    raise SpecError(p, f"sysctl {_q(key)} is not namespaced and would change the host: only ipc "
                       f"(kernel.msg*, kernel.sem*, kernel.shm*, fs.mqueue.*), net.* and "
                       f"kernel.domainname sysctls are allowed")


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _resources(res: dict, update: bool = False) -> None:
    """/linux/resources; `update`: the resources of `ocish update` (runtime/commands.py), a
    running container's, where the floor for the runtime's own setup does not apply."""
    rp = "/linux/resources"

    if "memory" in res:
        with _each:
            _memory(_obj(res["memory"], rp + "/memory"), rp + "/memory", update)

    if "cpu" in res:
        with _each:
            cp = rp + "/cpu"
            cpu = _obj(res["cpu"], cp)
            _opt(cpu, "shares", cp, _shares)
            for k in ("realtimePeriod", "burst"):
                _opt(cpu, k, cp, _int, 0, U64)
            for k in ("realtimeRuntime", "idle"):
                _opt(cpu, k, cp, _int, I64_MIN, I64_MAX)
            _opt(cpu, "period", cp, _cfs_period)
            _opt(cpu, "quota", cp, _cfs_quota)
            _opt(cpu, "cpus", cp, _cpulist)
            _opt(cpu, "mems", cp, _cpulist)

    if "pids" in res:
        with _each:
            pp = rp + "/pids"
            # required, as in the runtime-spec schema: {} would say nothing
            _req(_obj(res["pids"], pp), "limit", pp, "an integer (0 or -1: no limit)", _int,
                 I64_MIN, I64_MAX)

    if "blockIO" in res:
        with _each:
            _block_io(_obj(res["blockIO"], rp + "/blockIO"), rp + "/blockIO")

    _opt(res, "devices", rp, _items, _cgroup_device)
    _opt(res, "hugepageLimits", rp, _items, _hugepage_limit)

    if "network" in res:
        with _each:
            np_ = rp + "/network"
            net = _obj(res["network"], np_)
            _opt(net, "classID", np_, _int, 0, U32)
            _opt(net, "priorities", np_, _items, _priority)

    if "rdma" in res:
        with _each:
            for dev, lim in _obj(res["rdma"], rp + "/rdma").items():
                with _each:
                    dp = f"{rp}/rdma/{esc(dev)}"
                    _obj(lim, dp)
                    _opt(lim, "hcaHandles", dp, _int, 0, U32)
                    _opt(lim, "hcaObjects", dp, _int, 0, U32)

    if "unified" in res:
        with _each:
            for key, value in _obj(res["unified"], rp + "/unified").items():
                with _each:
                    up = f"{rp}/unified/{esc(key)}"
                    dot = key.find(".")
                    if dot <= 0 or dot == len(key) - 1 or "/" in key or "\0" in key:
                        raise SpecError(up, f'must be a cgroup file name like "memory.high", '
                                            f'got {_q(key)}')
                    _str(value, up)


def _shares(v, p: str) -> int:
    """cpu shares: within the kernel's range, or 0 (not set, as in runc)."""
    _int(v, p, 0, U64)
    if v and not CPU_SHARES_MIN <= v <= CPU_SHARES_MAX:
        raise SpecError(p, f"cpu shares must be from {CPU_SHARES_MIN} to {CPU_SHARES_MAX} (the "
                           f"kernel's range, as runc checks; 0: not set), got {v}")
    return v


def _cfs_period(v, p: str) -> int:
    """cpu.cfs_period_us: 0 (not set, as in runc) or within the kernel's bounds."""
    _int(v, p, 0, U64)
    if v and not CFS_PERIOD_MIN <= v <= CFS_PERIOD_MAX:
        raise SpecError(p, f"cpu period must be from {CFS_PERIOD_MIN} to {CFS_PERIOD_MAX} "
                           f"microseconds (the kernel's bounds; 0: not set), got {v}")
    return v


def _cfs_quota(v, p: str) -> int:
    """cpu.cfs_quota_us: 0 (not set), negative (no limit: the kernel reads any negative value
    as "max"), or from the kernel's 1 ms up to its largest runtime."""
    _int(v, p, I64_MIN, I64_MAX)
    if 0 < v < CFS_QUOTA_MIN or v > CFS_QUOTA_MAX:
        raise SpecError(p, f"cpu quota must be from {CFS_QUOTA_MIN} to {CFS_QUOTA_MAX} "
                           f"microseconds, or -1 for no limit (the kernel's bounds; 0: not set), "
                           f"got {v}")
    return v


def _hugepage_limit(h, hp: str) -> None:
    _obj(h, hp)
    _req(h, "pageSize", hp, _PAGE_SIZE, _page_size)
    _req(h, "limit", hp, "a number of bytes", _int, 0, U64)


def _priority(pr, pp: str) -> None:
    _obj(pr, pp)
    _req(pr, "name", pp, "an interface name", _nonempty)
    _req(pr, "priority", pp, "an integer from 0 to 4294967295", _int, 0, U32)


def _memory(mem: dict, mp: str, update: bool = False) -> None:
    what = "a number of bytes, or -1 for unlimited"
    for k in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
        _opt(mem, k, mp, _int, -1, I64_MAX, what)
    _opt(mem, "swappiness", mp, _int, 0, 100)
    for k in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        _opt(mem, k, mp, _bool)
    limit, swap = mem.get("limit", 0), mem.get("swap", 0)
    if 0 < limit < MIN_MEMORY and not update:
        raise SpecError(mp + "/limit", f"must be at least {MIN_MEMORY} (4 MiB), got {limit}: "
                                       f"the runtime's own setup runs in the container's cgroup "
                                       f"and is killed below that")
    if limit > 0 and swap > 0 and swap < limit:
        raise SpecError(mp + "/swap", f"memory+swap limit must be at least the memory limit "
                                      f"{limit} (or -1 for unlimited), got {swap}")


def _block_io(bio: dict, bp: str) -> None:
    _opt(bio, "weight", bp, _weight)
    _opt(bio, "leafWeight", bp, _weight)
    _opt(bio, "weightDevice", bp, _items, _block_device, "weight")
    for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
              "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        _opt(bio, k, bp, _items, _block_device, "rate")


def _block_device(d, dp: str, kind: str) -> None:
    """A blkio weight (weight, leafWeight) or throttle (rate) rule for one device."""
    _obj(d, dp)
    _req(d, "major", dp, "the device major number", _int, 0, I64_MAX)
    _req(d, "minor", dp, "the device minor number", _int, 0, I64_MAX)
    if kind == "rate":
        _req(d, "rate", dp, "a non-negative integer", _int, 0, U64)
    else:
        _opt(d, "weight", dp, _weight)
        _opt(d, "leafWeight", dp, _weight)


def _cgroup_device(d, dp: str) -> None:
    _obj(d, dp)
    _req(d, "allow", dp, "true or false", _bool)
    _opt(d, "type", dp, _enum, ("a", "b", "c"), 'one of "a", "b", "c"')
    for k in ("major", "minor"):
        _opt(d, k, dp, _int, -1, I64_MAX, f"a device {k} number, or -1 for any")
    if "access" in d:
        with _each:
            acc = _str(d["access"], dp + "/access")
            if any(ch not in "rwm" for ch in acc) or len(set(acc)) != len(acc):
                _bad(dp + "/access", 'a combination of "r", "w" and "m"', acc)


_PAGE_SIZE = 'a page size like "2MB" or "1GB"'


def _page_size(v, p: str) -> str:
    """The runtime-spec schema's ^[1-9][0-9]*[KMG]B$: the name hugetlb's cgroup files use."""
    size = _str(v, p, _PAGE_SIZE)
    num = size[:-2]
    if not (num.isascii() and num.isdigit() and num[0] != "0" and size[-2:] in ("KB", "MB", "GB")):
        _bad(p, _PAGE_SIZE, size)
    return size


def _cross(spec: dict, maps: dict, ns: dict) -> None:
    """Checks across sections: process ids must be mapped in a new user namespace."""
    if "user" not in ns or ns["user"][1] is not None:
        return
    user = spec["process"].get("user", {})
    for key, maps_key, what in (("uid", "uidMappings", "uid"), ("gid", "gidMappings", "gid")):
        with _each:
            ident = user.get(key, 0)
            if maps[maps_key] and not _mapped(ident, maps[maps_key]):  # [] is reported
                raise SpecError(f"/process/user/{key}", f"{what} {ident} is not mapped by "
                                                        f"/linux/{maps_key}")
    for i, g in enumerate(user.get("additionalGids", ())):
        with _each:
            if maps["gidMappings"] and not _mapped(g, maps["gidMappings"]):
                raise SpecError(f"/process/user/additionalGids/{i}", f"gid {g} is not mapped by "
                                                                     f"/linux/gidMappings")


def _rootfs(path: str, bundle: str) -> str:
    full = os.path.normpath(os.path.join(bundle, path))
    try:
        st = os.stat(full)
    except OSError as e:
        why = "does not exist" if isinstance(e, FileNotFoundError) else \
            os.strerror(e.errno).lower() if e.errno else str(e)
        raise SpecError("/root/path", f"rootfs {_q(full)}: {why}") from None
    if (st.st_mode & 0o170000) != 0o040000:
        raise SpecError("/root/path", f"rootfs {_q(full)} is not a directory")
    return os.path.realpath(full)
