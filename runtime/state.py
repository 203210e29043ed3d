"""The runtime's state directory: one folder per container under --root, holding state.json and exec.fifo.

state.json is ours (runc keeps its own too); `oci_state` derives the runtime-spec state that
`ocish state` prints. Status is never stored: it is read from the kernel each time (is the pid
alive with the same start time, is the cgroup frozen, is exec.fifo still waiting).

Crash safety. `create` writes state.json right after making the folder, before anything that
needs undoing exists, with a "creating" record (the creating process's pid and start time), and
rewrites it as it learns what a crash would leave: the cgroup directories it is about to make,
the container's pid (runc stores its state before the point of no return for the same reason:
libcontainer/process_linux.go, "the runc-init[2:stage] process will be leaky"). So after a
SIGKILL at any point the folder says what to undo, and:

- status "creating" while the creating process lives, "stopped" once it is dead (the create can
  never finish; `delete` removes what it left: processes, cgroups, the folder);
- a folder without state.json that holds nothing, or only the temporary file of begin's first
  write (`.state.json.tmp`: a create killed between its mkdir and that rename), with the mode
  create gives it (0711 at most) and our owner, is a stopped container with nothing recorded,
  and `delete` removes it, as runc's delete removes "the container's directory [that] could
  exist but libcontainer does not see"; a delete killed after its last unlink leaves the same;
- a state.json that cannot be used (not JSON, wrong types: not written by us, since every
  write is a rename of a complete file), or a lost one beside the other files we make, is
  `Unreadable`: reported on one line, and `delete -f` recovers what it can (lifecycle.delete).

Anything else under --root is not ours (`NotOurs`): a folder with names we never make, or a
state.json of another runtime (runc's has "init_process_pid" and "config"). `list` skips it
(as runc's list skips folders without its state.json) and no command touches it; `delete`
removes only the names in OUR_NAMES, and the folder only when that empties it.

Every write is a complete file renamed over state.json, and `remove_dir` unlinks state.json last,
so the record outlives everything it describes.
"""
from __future__ import annotations

from runtime import crashpoint, jsonfast
import os
import time

from runtime.errors import OcishError
from runtime.linux import procfs

STATE_FILE = "state.json"
TMP_FILE = f".{STATE_FILE}.tmp"
FIFO = "exec.fifo"
CONFIG_COPY = "config.json"  # the config the container was created with (Setup.finish)
# Every name create, restore and delete make in a state dir: restore's criu bind point and pid.
OUR_NAMES = frozenset((STATE_FILE, TMP_FILE, FIFO, CONFIG_COPY, "criu-root", "restore.pid"))
# The state.json format: written into every state.json, so that a record is known for ours.
FORMAT = 1
# The keys we ever write (a state.json without FORMAT, from before it, has only these).
_OUR_KEYS = frozenset(("ocish", "id", "pid", "start_time", "bundle", "rootfs", "created", "owner",
                       "annotations", "cgroup", "creating", "hooks", "resources", "host_mounts"))
# What create writes is bounded by what it accepts: annotations and hooks come from a config of
# at most 16 MiB (spec.MAX_CONFIG) and update's resources from a document of at most 16 MiB
# (jsonfast.MAX_OBJECT); written ASCII-only, a string grows at most 3 times (a 4-byte UTF-8
# character becomes a 12-byte surrogate pair escape), the rest is paths and numbers. `save`
# refuses to write more, so every state.json we write is one that `load` reads.
MAX_STATE = 3 * (16 << 20) + 3 * jsonfast.MAX_OBJECT + (1 << 20)
_MAX_DIR_MODE = 0o711  # create's mkdir; a umask only takes bits away

# runc's validateID: letters, digits and "_", "+", "-", "." anywhere, the first character
# included; never "." or "..". runc 1.1.5 used the regexp `^[\w+-\.]+$`, whose `+-\.` is a range
# that lets "," through too; runc 1.2 (b44da4c05, "validateID: stop using regexp") lists the
# characters instead, and we follow the fix.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
_ID_MAX = 255  # the id names the state directory: NAME_MAX


class NotExist(OcishError):
    def __init__(self) -> None:
        super().__init__("container does not exist")


class Unreadable(OcishError):
    """Our state.json cannot be used (or was lost): say which container, and how to remove it."""

    def __init__(self, cid: str, why: str) -> None:
        super().__init__(f"container {cid}: {STATE_FILE}: {why} (`delete -f {cid}` removes it)")
        self.cid = cid


class NotOurs(OcishError):
    """A folder under --root that ocish did not make: never read further, never removed."""

    def __init__(self, cid: str, d: str, why: str) -> None:
        super().__init__(f"container {cid}: {d} is not an ocish container ({why}): "
                         "left as it is")
        self.cid = cid


def validate_id(container_id: str) -> None:
    """Refuse ids that are empty, longer than NAME_MAX, "." or "..", or hold a character other
    than letters, digits, "_", "+", "-" and "." (runc's validateID, as fixed in 1.2): the id
    names a directory under the state root, so no id reaches outside it. Every command checks
    it. Raises OcishError (never SpecError: the id comes from the command line)."""
    if type(container_id) is not str:
        raise OcishError(f"invalid container id: must be a string, got {container_id!r}")
    if not container_id:
        raise OcishError('invalid container id "": must not be empty')
    why = ""
    if len(container_id) > _ID_MAX:
        why = f"must be at most {_ID_MAX} characters, got {len(container_id)}"
    elif container_id in (".", ".."):
        why = '"." and ".." are not allowed'
    else:
        for ch in container_id:
            if ch not in _ID_CHARS:
                why = (f'character {jsonfast.quote(ch)} is not allowed; use letters, digits and '
                       f'"_", "+", "-", "."')
                break
    if why:
        shown = container_id if len(container_id) <= 80 else container_id[:77] + "..."
        raise OcishError(f"invalid container id {jsonfast.quote(shown)}: {why}")


def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch as runc writes "created": 2024-01-02T03:04:05.123456789Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def rfc3339_now() -> str:
    return rfc3339(time.time_ns())


def container_dir(root: str, cid: str) -> str:
    validate_id(cid)
    return os.path.join(root, cid)


def load(root: str, cid: str) -> dict:
    """The container's state.json. Raises NotExist (no folder), NotOurs (a folder or a
    state.json we did not make), Unreadable (our state.json unusable or lost); a folder left by
    a create killed before its first state.json reads as a stopped container with nothing
    recorded (see the module docstring)."""
    d = container_dir(root, cid)
    try:
        fd = os.open(os.path.join(d, STATE_FILE), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return _without_state(d, cid)
    except OSError as e:
        raise Unreadable(cid, os.strerror(e.errno or 0).lower()) from None
    try:
        data = _read_state(fd)
    except OSError as e:  # a directory, say
        raise _unusable(d, cid, os.strerror(e.errno or 0).lower()) from None
    finally:
        os.close(fd)
    if data is None:
        raise _unusable(d, cid, f"larger than {MAX_STATE} bytes")
    try:
        st = jsonfast.loads(data.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError and json's errors are ValueErrors
        raise _unusable(d, cid, "not valid json") from None
    if type(st) is dict and "ocish" not in st and not st.keys() <= _OUR_KEYS:
        runc = "init_process_pid" in st or "config" in st
        raise NotOurs(cid, d, f"its {STATE_FILE} was written by "
                      + ("runc" if runc else "another runtime"))
    if not _well_formed(st, cid):
        raise _unusable(d, cid, "not a state.json written by ocish")
    return st


def _read_state(fd: int) -> bytes | None:
    """A regular file's bytes, None when it is larger than MAX_STATE (not read then)."""
    size = os.fstat(fd).st_size
    if size > MAX_STATE:
        return None
    chunks, total = [], 0
    while total <= MAX_STATE and (chunk := os.read(fd, max(size + 1 - total, 1 << 16))):
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks) if total <= MAX_STATE else None


def _names(d: str) -> list[str]:
    try:
        return os.listdir(d)
    except OSError:
        return []


def _unusable(d: str, cid: str, why: str) -> OcishError:
    """Unreadable when the folder holds only names we make, else NotOurs."""
    alien = sorted(set(_names(d)) - OUR_NAMES)
    if alien:
        return NotOurs(cid, d, f"its {STATE_FILE} is {why}, and it holds {_few(alien)}")
    return Unreadable(cid, why)


def _few(names: list[str]) -> str:
    shown = ", ".join(jsonfast.quote(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _without_state(d: str, cid: str) -> dict:
    """A folder without state.json: what a create killed early left (nothing recorded), ours
    with its state.json lost (Unreadable), or not ours."""
    try:
        st = os.lstat(d)
    except (FileNotFoundError, NotADirectoryError):
        raise NotExist() from None
    if (st.st_mode & 0o170000) != 0o040000:
        raise NotExist() from None
    names = set(_names(d))
    if names - OUR_NAMES:
        raise NotOurs(cid, d, f"no {STATE_FILE}, and it holds {_few(sorted(names - OUR_NAMES))}")
    if st.st_mode & 0o7777 & ~_MAX_DIR_MODE or st.st_uid != os.geteuid():
        raise NotOurs(cid, d, f"no {STATE_FILE}, and not made by ocish (mode "
                      f"{st.st_mode & 0o7777:04o}, owner {st.st_uid})")
    if names - {TMP_FILE}:  # begin's first rename made state.json before any of these
        raise Unreadable(cid, "missing")
    return {"id": cid, "pid": 0, "start_time": None, "bundle": "", "rootfs": "",
            "created": rfc3339(st.st_mtime_ns), "owner": "", "cgroup": None,
            "creating": {"pid": 0, "start_time": None}}


_FIELDS = (("id", str), ("pid", int), ("bundle", str), ("rootfs", str), ("created", str))


def _well_formed(st, cid: str) -> bool:
    """The fields every command indexes have the types we wrote (nothing else is trusted)."""
    if type(st) is not dict or st.get("id") != cid:
        return False
    if any(type(st.get(k)) is not t for k, t in _FIELDS):
        return False
    for key in ("cgroup", "creating", "hooks", "resources", "annotations"):
        if key in st and st[key] is not None and type(st[key]) is not dict:
            return False
    cg = st.get("cgroup")
    if cg and (type(cg.get("paths")) is not dict or type(cg.get("created", [])) is not list):
        return False
    creating = st.get("creating")
    return creating is None or type(creating.get("pid")) is int


def begin(root: str, cid: str, bundle: str, rootfs: str, annotations: dict) -> dict:
    """The first state.json of a container being made (by create or restore), written right
    after its folder and before anything that would need undoing: this process is its maker."""
    me = os.getpid()
    st = {"id": cid, "pid": 0, "start_time": None, "bundle": bundle, "rootfs": rootfs,
          "created": rfc3339_now(), "owner": "", "annotations": annotations, "cgroup": None,
          "creating": {"pid": me, "start_time": procfs.start_time(me)}}
    save(root, st)
    crashpoint.reached("create:recorded")
    return st


def save(root: str, st: dict) -> None:
    """Replace state.json by a complete new one (write, then rename: never a partial file).
    OcishError when it would be larger than `load` reads (MAX_STATE), which the caps on what
    goes in keep from happening."""
    d = container_dir(root, st["id"])
    data = jsonfast.dumps({"ocish": FORMAT, **st}).encode()
    if len(data) > MAX_STATE:
        raise OcishError(f"container {st['id']}: {STATE_FILE} would be {len(data)} bytes, "
                         f"more than {MAX_STATE}")
    tmp = os.path.join(d, TMP_FILE)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(d, STATE_FILE))


def remove_dir(d: str) -> None:
    """Remove a container's state dir: the names in OUR_NAMES (no shutil on the hot path),
    state.json last, so that a kill half-way leaves the record of what is still there; then the
    folder. OcishError when something we did not make keeps it (it is left there)."""
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in sorted(OUR_NAMES.intersection(names), key=lambda n: n == STATE_FILE):
        if name == STATE_FILE:
            crashpoint.reached("delete:files")
        try:
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # restore's criu-root, left by a killed restore
            os.rmdir(os.path.join(d, name))
    crashpoint.reached("delete:state")
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError as e:
        left = sorted(set(_names(d)) - OUR_NAMES)
        raise OcishError(f"remove {d}: {os.strerror(e.errno or 0).lower()}"
                         + (f" (it holds {_few(left)}, which ocish did not make)" if left else "")
                         ) from None


def list_ids(root: str) -> list[str]:
    """The folders under root whose names are valid ids (the state writer's temporary files
    and anything else that is not an id are not containers); `load` tells which are ours."""
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            try:
                validate_id(e.name)
            except OcishError:
                continue
            out.append(e.name)
    return sorted(out)


def running(pid: int, start_time) -> bool:
    """Whether `pid` is a live process (not a zombie) started at `start_time` (not a reused pid)."""
    if pid <= 0 or procfs.proc_state(pid) in ("", "Z", "X"):
        return False
    try:
        return procfs.start_time(pid) == start_time
    except OSError:
        return False


def alive(st: dict) -> bool:
    return running(st.get("pid") or 0, st.get("start_time"))


def creating(st: dict) -> bool:
    """Whether a `create` is still setting the container up (its process lives)."""
    c = st.get("creating")
    return c is not None and running(c.get("pid") or 0, c.get("start_time"))


def status(root: str, st: dict) -> str:
    """creating, created, running, paused or stopped; a create that died is stopped for good."""
    if "creating" in st:
        return "creating" if creating(st) else "stopped"
    if not alive(st):
        return "stopped"
    if st.get("cgroup"):
        from runtime import cgroups  # only when alive: `state` of a stopped container skips it
        if cgroups.frozen(st["cgroup"]):
            return "paused"
    if os.path.exists(os.path.join(container_dir(root, st["id"]), FIFO)):
        return "created"
    return "running"


def oci_state(root: str, st: dict, oci_version: str) -> dict:
    stat = status(root, st)
    # a create in progress may have recorded only its first child, gone since (see journal)
    pid = st["pid"] if stat != "stopped" and (stat != "creating" or alive(st)) else 0
    out = {"ociVersion": oci_version, "id": st["id"], "pid": pid,
           "status": stat, "bundle": st["bundle"], "rootfs": st["rootfs"], "created": st["created"],
           "owner": st.get("owner", "")}
    if st.get("annotations"):
        out["annotations"] = st["annotations"]
    return out
