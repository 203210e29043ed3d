"""The cgroup manager interface, and the cgroupfs primitives both drivers share.

A Manager owns one container's cgroup, in one hierarchy (v2) or several (v1, hybrid). It remembers
which directories it made, parents included, because destroy() removes only those: a cgroup the
user pointed at, or a parent that other containers share, is not ours to remove. Every failure is
a StageError of stage "cgroup" naming the file, and for resource writes the config.json pointer.
"""
from __future__ import annotations

import errno
import os
import time
from abc import ABC, abstractmethod

from runtime.cgroups.resources import Section
from runtime.errors import StageError
from runtime.linux.sig import SIGKILL

STAGE = "cgroup"
MAX_UINT64 = 2**64 - 1
# Like runc's cgroups.TestMode: unit tests drive the managers on a plain directory tree, where a
# write must create the file that cgroupfs would have provided, and rmdir must clear those files.
TEST_MODE = False

_RMDIR_TRIES = 5          # 10+20+40+80 ms for just-killed processes to leave the cgroup
_FREEZE_TIMEOUT = 5.0     # seconds for the kernel to report every task frozen


def write(path: str, value: str, pointer: str = "") -> None:
    """Write a cgroup file in one write(2): the kernel parses each write as one value."""
    flags = os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | (os.O_CREAT if TEST_MODE else 0)
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise StageError(STAGE, "write", path, e.errno or 0, pointer,
                         _why(e.errno, value)) from None


def _why(err: int | None, value: str) -> str:
    if err == errno.ENOENT:
        return "no such file: the controller is not enabled here or the kernel lacks this setting"
    if err == errno.EINVAL:
        return f'invalid argument: the kernel refused "{value}"'
    return ""


def write_rdma(path: str, device: str, limits: Section) -> None:
    """One rdma.max line, "<device> hca_handle=N hca_object=M" (the same on v1 and v2)."""
    parts = [device]
    for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
        value = limits.integer(key, path, lo=0)
        if value is not None:
            parts.append(f"{name}={value}")
    if len(parts) > 1:
        write(path, " ".join(parts), limits.pointer)


def read(path: str) -> str | None:
    """A cgroup file's content, stripped; None when the file does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().decode().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StageError(STAGE, "read", path, e.errno or 0) from None


def read_int(path: str) -> int | None:
    """A single-number file; "max" (no limit) reads as the largest uint64, as runc reports it."""
    text = read(path)
    if not text:
        return None
    return MAX_UINT64 if text == "max" else int(text.split()[0])


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file ("key value" lines: memory.stat, cpu.stat, cgroup.events)."""
    out = {}
    for line in (read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_ints(d: str, files: dict[str, str]) -> dict[str, int]:
    """{key: number} for each of `files` ({key: file name}) that exists in `d`."""
    out = {}
    for key, name in files.items():
        value = read_int(f"{d}/{name}")
        if value is not None:
            out[key] = value
    return out


def wait_for(path: str, line: str, timeout: float = _FREEZE_TIMEOUT) -> bool:
    """Wait until `line` is a line of the file (a missing file has nothing to wait for),
    sleeping 1 ms at first and at most 50 ms between reads."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while (text := read(path)) is not None and line not in text.splitlines():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def _procs_under(d: str) -> list[int]:
    """The pids in cgroup `d` and all its sub-cgroups."""
    pids = [int(p) for p in (read(f"{d}/cgroup.procs") or "").split()]
    for sub in _subdirs(d):
        pids += _procs_under(sub)
    return pids


def _subdirs(d: str) -> list[str]:
    try:
        with os.scandir(d) as it:
            return [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _missing(leaf: str) -> list[str]:
    """The directories from `leaf` up that do not exist yet, outermost first."""
    missing = []
    while not os.path.isdir(leaf):
        missing.append(leaf)
        leaf = os.path.dirname(leaf)
    return missing[::-1]


def _remove(d: str, own: bool) -> None:
    """rmdir a cgroup the manager made.

    The container's own cgroup first loses the sub-cgroups its processes made (as runc's
    RemovePath does) and is retried while just-killed processes leave it; a parent that is still
    busy is shared with another container, and left to it."""
    if own:
        for sub in _subdirs(d):
            _remove(sub, True)
    delay = 0.01
    for attempt in range(_RMDIR_TRIES):
        try:
            if TEST_MODE:
                with os.scandir(d) as it:
                    for f in it:
                        if not f.is_dir(follow_symlinks=False):
                            os.unlink(f.path)
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise StageError(STAGE, "rmdir", d, e.errno or 0) from None
            if not own:
                return
            if attempt == _RMDIR_TRIES - 1:
                raise StageError(STAGE, "rmdir", d, e.errno,
                                 detail="the cgroup still has processes") from None
        time.sleep(delay)
        delay *= 2


class Manager(ABC):
    """One container's cgroup. `paths` maps a controller (v1), "unified" (the hybrid v2 dir) or ""
    (pure v2) to the cgroup directory; `root` is where the hierarchies are mounted."""

    version = 0

    def __init__(self, paths: dict[str, str], root: str, created: list[str] | None = None) -> None:
        self._paths = dict(paths)
        self.root = root
        self._created = list(created or [])

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def to_state(self) -> dict:
        return {"version": self.version, "root": self.root, "paths": dict(self._paths),
                "created": list(self._created)}

    def _dirs(self) -> list[str]:
        """Each directory once: co-mounted controllers (cpu,cpuacct) share one."""
        return list(dict.fromkeys(self._paths.values()))

    def adopt(self, dirs: list[str]) -> None:
        """Count `dirs` (parents of our cgroups) as made by us, so destroy() tries them too."""
        self._created[:0] = [d for d in dirs if d not in self._created]

    def planned_state(self) -> dict:
        """to_state() as create() will leave it: every directory still missing counted as made
        by us. `create` records it before create() runs, so that `delete` after a crash
        half-way through knows what to remove (a directory it never made is skipped)."""
        st = self.to_state()
        for leaf in self._dirs():
            st["created"] += [d for d in _missing(leaf) if d not in st["created"]]
        return st

    def refuse_busy(self) -> None:
        """Refuse to join a cgroup that still holds processes (a container's whose record was
        lost, another container's): runc 1.2's check before it creates the container
        (libcontainer/create_linux.go; runc 1.1.5 only warned), on one hierarchy as there."""
        found = self.pids()
        if found:
            raise StageError(STAGE, "join", self._pids_dir(), 0, "/linux/cgroupsPath",
                             f"container's cgroup is not empty: {len(found)} process(es) found")

    def create(self) -> None:
        """mkdir every cgroup directory and its missing parents.

        On failure, destroy() removes what was made so far."""
        for leaf in self._dirs():
            for attempt in range(3):
                try:
                    for d in _missing(leaf):
                        self._mkdir(d)
                    break
                except StageError as e:
                    # a shared parent (the default /ocish) removed meanwhile by the last
                    # container leaving it: make it again
                    if e.errno != errno.ENOENT or attempt == 2:
                        raise

    def _mkdir(self, d: str) -> None:
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            # made meanwhile by someone else: theirs to remove; but its maker may not have
            # filled in a v1 cpuset yet, and a child copied from it empty refuses tasks
            # (ENOSPC): prepared here too, as runc's cpuset ensureParent does each level
            self._init_dir(d)
            return
        except OSError as e:
            raise StageError(STAGE, "mkdir", d, e.errno or 0, "/linux/cgroupsPath") from None
        if d not in self._created:
            self._created.append(d)
        self._init_dir(d)

    def _init_dir(self, d: str) -> None:
        """Prepare a directory just made; v1 cpuset needs its cpus and mems filled in."""

    @abstractmethod
    def apply(self, resources: dict) -> None:
        """Write config.json's /linux/resources object into the cgroup."""

    def add(self, pid: int) -> None:
        """Move a process into the cgroup, in every hierarchy."""
        for d in self._dirs():
            write(f"{d}/cgroup.procs", str(pid))

    @abstractmethod
    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in the cgroup (the oom_kill
        count of v1 memory.oom_control, v2 memory.events); 0 without a memory controller."""

    @abstractmethod
    def freeze(self) -> None:
        """Freeze every process, returning once the kernel reports them frozen."""

    @abstractmethod
    def thaw(self) -> None:
        """Let the processes run again."""

    @abstractmethod
    def frozen(self) -> bool:
        """Whether the cgroup is frozen (paused)."""

    @abstractmethod
    def _can_freeze(self) -> bool:
        """Whether there is a freezer to stop forks during kill_all."""

    @abstractmethod
    def _pids_dir(self) -> str:
        """The directory whose cgroup.procs (with sub-cgroups) lists every process."""

    def pids(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups."""
        return sorted(set(_procs_under(self._pids_dir())))

    @abstractmethod
    def stats(self) -> dict:
        """Usage figures shaped like the "data" of runc's `events --stats`, as far as the
        files exist."""

    def kill_all(self, sig: int) -> None:
        """Signal every process, frozen meanwhile so that none forks away (runc's
        signalAllProcesses); SIGKILL goes through cgroup.kill where there is one."""
        v2 = self._paths.get("") or self._paths.get("unified")
        if sig == SIGKILL and v2 and self._cgroup_kill(v2):
            if self.frozen():
                self.thaw()  # a task frozen by the v1 freezer dies only once thawed
            return
        was_frozen = self.frozen()
        froze = self._can_freeze() and not was_frozen and self._try_freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            # a paused container stays paused, except that SIGKILLed processes must run to die
            if froze or (was_frozen and sig == SIGKILL):
                self.thaw()

    def _try_freeze(self) -> bool:
        try:
            self.freeze()
        except StageError:
            return False  # signal anyway, racing forks, as runc does when freezing fails
        return True

    @staticmethod
    def _cgroup_kill(d: str) -> bool:
        try:
            write(f"{d}/cgroup.kill", "1")
        except StageError as e:
            if e.errno == errno.ENOENT:
                return False  # kernel before 5.14
            raise
        return True

    def destroy(self) -> None:
        """rmdir the directories this manager made, deepest first."""
        own = set(self._paths.values())
        failure = None
        for d in reversed(self._created):
            try:
                _remove(d, d in own)
            except StageError as e:
                failure = failure or e
        self._created = [d for d in self._created if os.path.isdir(d)]
        if failure:
            raise failure
