"""Stages `cgroup-join` and `join`: bring a new process into a running container (`ocish exec`).

`cgroup-join` (host side) runs first, while C1 is still blocked before any setns(2): it writes C1's
pid into the container's cgroups (and, with `exec --cgroup`, into a sub-cgroup of them), so that
everything C1 forks is born inside, as with `create`'s stage `cgroup`. The process's
execCPUAffinity (runtime-spec 1.2, exec'd processes only) is applied around that write as runc
1.2 does: `initial` before it (the process's affinity while it joins: a v1 cpuset then resets
it to the cgroup's CPUs), `final` after it; C2 inherits C1's affinity through fork(2).

`join` (container side, in C1) enters every namespace of the container's init that differs from
its own, read from /proc/<init>/ns/*: all of them are opened first, while the host's /proc is still
in view, and the init's start time is checked again after that, so a recycled pid cannot send us
into someone else's namespaces. setns(2) order is the one of stage `unshare`: user first (the
others are then entered with its privileges), mount last. Joining a pid (or time) namespace only
applies to children, so C1 forks C2 and exits, exactly like `unshare`'s fork of init; the host
follows C2 through sync.Pid and C2 runs the remaining stages (process, bounding, user, caps, exec).
"""
from __future__ import annotations

import errno
import os

from runtime.engine import CONTAINER, HOST, Context, Stage
from runtime.errors import StageError
from runtime.linux import procfs
from runtime.linux import syscalls as S
from runtime.stages.unshare import Unshare, describe_oom, oom_score_adj

# /proc/<pid>/ns/<name> -> the setns(2) flag, in the order they are entered
JOIN_ORDER = (("user", S.CLONE_NEWUSER), ("ipc", S.CLONE_NEWIPC), ("uts", S.CLONE_NEWUTS),
              ("net", S.CLONE_NEWNET), ("pid", S.CLONE_NEWPID), ("cgroup", S.CLONE_NEWCGROUP),
              ("time", S.CLONE_NEWTIME), ("mnt", S.CLONE_NEWNS))


def cpu_set(text: str) -> set[int]:
    """A CPU list as the kernel writes it ("0-2,4", already validated by runtime/spec.py) as
    the set of its CPU numbers."""
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def differing_namespaces(pid: int, self_ref: str = "self") -> list[str]:
    """The namespace names of JOIN_ORDER in which `pid` and `self_ref` differ (unknown kinds,
    like time on an old kernel, are skipped)."""
    out = []
    for kind, _ in JOIN_ORDER:
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{kind}")
            ours = os.stat(f"/proc/{self_ref}/ns/{kind}")
        except FileNotFoundError:
            continue
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            out.append(kind)
    return out


class CgroupJoin(Stage):
    name = "cgroup-join"
    side = HOST
    summary = "put the new process in the container's cgroups"

    def __init__(self, manager_state: dict | None, sub: list[tuple[str, str]] = ()) -> None:
        self.manager_state = manager_state
        # exec --cgroup: ("", path) for every hierarchy, (controller, path) for one
        self.sub = list(sub)

    def describe(self, ctx: Context) -> str:
        if not self.manager_state:
            return f"{self.summary}: the container has no cgroup recorded, nothing to join."
        paths = self.manager_state.get("paths") or {}
        lines = [f"{self.summary}: write the process's pid to cgroup.procs in:"]
        lines += [f"  {d}" for d in self._targets(paths)]
        return "\n".join(lines)

    def _targets(self, paths: dict[str, str]) -> list[str]:
        targets: dict[str, str] = {}  # co-mounted controllers (cpu,cpuacct) share a directory
        for ctrl, d in paths.items():
            for want, sub in self.sub:
                if want in ("", ctrl):
                    targets[d] = f"{d}/{sub.strip('/')}"
                    break
            else:
                targets.setdefault(d, d)
        return list(targets.values())

    def run(self, ctx: Context, item: str = "") -> None:
        affinity = ctx.spec["process"].get("execCPUAffinity") or {}
        self._affinity(ctx, affinity, "initial")
        self._join(ctx)
        self._affinity(ctx, affinity, "final")

    def _affinity(self, ctx: Context, affinity: dict, which: str) -> None:
        """sched_setaffinity(2) of C1 to execCPUAffinity's `which` list, when it has one."""
        text = affinity.get(which)
        if not text:
            return
        try:
            ctx.sys.sched_setaffinity(ctx.pid, cpu_set(text))
        except OSError as e:
            raise StageError(self.name, "sched_setaffinity", text, e.errno or 0,
                             f"/process/execCPUAffinity/{which}") from None

    def _join(self, ctx: Context) -> None:
        if not self.manager_state:
            return
        # here, not at the top: a host stage, and the container side never needs the drivers
        from runtime import cgroups
        from runtime.cgroups.base import write as cgroup_write
        ctx.cgroup = cgroups.from_state(self.manager_state)
        known = set(ctx.cgroup.paths())
        for want, sub in self.sub:
            if want and want not in known:
                raise StageError(self.name, "join", f"{want}:{sub}", errno.ENOENT, "",
                                 f"the container has no {want!r} cgroup")
        for d in self._targets(ctx.cgroup.paths()):
            if not os.path.isdir(d):
                raise StageError(self.name, "join", d, errno.ENOENT, "",
                                 "no such cgroup (exec --cgroup needs an existing sub-cgroup)")
            try:
                cgroup_write(f"{d}/cgroup.procs", str(ctx.pid))
            except StageError as e:
                raise StageError(self.name, "join", f"{d}/cgroup.procs", e.errno) from None


class Join(Stage):
    name = "join"
    side = CONTAINER
    summary = "enter the namespaces of the container's init, then fork the process to run"

    def __init__(self, init_pid: int, start_time: int | None) -> None:
        self.init_pid, self.start_time = init_pid, start_time

    def describe(self, ctx: Context) -> str:
        kinds = differing_namespaces(self.init_pid)
        return "\n".join([f"{self.summary}."] + describe_oom(ctx)) + (
                f"\nsetns(2) into the namespaces of pid {self.init_pid} that differ from ours, "
                f"user first and mount last: {', '.join(kinds) or 'none'}"
                + ("" if "mnt" in kinds else "; then chroot(2) into its root when not ours")
                + ".\n"
                "fork(2): a joined pid namespace applies to children only; this process exits, "
                "the child starts a session of its own (setsid(2)).")

    def run(self, ctx: Context, item: str = "") -> None:
        oom_score_adj(ctx, self.name)
        opened: list[tuple[str, int, int]] = []
        kinds = differing_namespaces(self.init_pid)
        root = -1 if "mnt" in kinds else self._open_root()
        try:
            for kind in kinds:
                path = f"/proc/{self.init_pid}/ns/{kind}"
                try:
                    opened.append((kind, dict(JOIN_ORDER)[kind],
                                   os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as e:
                    raise StageError(self.name, "open", path, e.errno or 0) from None
            self._check_init()
            for kind, flag, fd in opened:
                try:
                    ctx.sys.setns(fd, flag)
                except OSError as e:
                    raise StageError(self.name, "setns", f"/proc/{self.init_pid}/ns/{kind}",
                                     e.errno or 0) from None
            if root >= 0:
                self._chroot(ctx, root)
        finally:
            for _, _, fd in opened:
                os.close(fd)
            if root >= 0:
                os.close(root)
        ctx.notes["joined"] = [kind for kind, _, _ in opened]
        # until execve(2), no process of the container may ptrace us or open /proc/<pid>/exe
        ctx.sys.prctl(S.PR_SET_DUMPABLE, 0)
        Unshare()._fork_init(ctx, self.name)

    def _open_root(self) -> int:
        """The init's root when it is not ours while its mount namespace is (a container
        without a mount namespace, chroot'ed by stage `pivot`), else -1. setns(2) into a
        mount namespace sets the root, a shared one does not: runc 1.1.5's exec then runs in
        the host's root; here it is chroot'ed like the init."""
        path = f"/proc/{self.init_pid}/root"
        try:
            theirs, ours = os.stat(path), os.stat("/")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                return -1
            return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise StageError(self.name, "open", path, e.errno or 0) from None

    def _chroot(self, ctx: Context, root: int) -> None:
        try:
            os.fchdir(root)
            ctx.sys.chroot(".")
        except OSError as e:
            raise StageError(self.name, "chroot", f"/proc/{self.init_pid}/root",
                             e.errno or 0) from None
        os.chdir("/")

    def _check_init(self) -> None:
        try:
            alive = procfs.start_time(self.init_pid) == self.start_time
        except OSError:
            alive = False
        if not alive:
            raise StageError(self.name, "open", f"/proc/{self.init_pid}/ns", errno.ESRCH, "",
                             "the container's init exited")
