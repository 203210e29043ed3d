"""Stage `unshare`: join the namespaces given by path, create the new ones, fork the container's init.

Runs in C1, the first forked child. Joined namespaces come first (the user namespace before the
others, so they are entered with its privileges), then one unshare(2) for all new ones. A new pid
namespace applies to children only, so C1 forks init (C2), reports its pid and exits: init is then
an orphan, collected by the nearest subreaper (conmon, containerd-shim, or `ocish run`), never by
the runtime's `create`.
"""
from __future__ import annotations

import errno
import os

from runtime import sync
from runtime.engine import CONTAINER, Context, Stage
from runtime.errors import StageError
from runtime.linux import syscalls as S

FLAGS = {
    "user": S.CLONE_NEWUSER, "mount": S.CLONE_NEWNS, "pid": S.CLONE_NEWPID,
    "network": S.CLONE_NEWNET, "ipc": S.CLONE_NEWIPC, "uts": S.CLONE_NEWUTS,
    "cgroup": S.CLONE_NEWCGROUP, "time": S.CLONE_NEWTIME,
}
# setns(2) order: user first, mount last (after it, other namespace paths may no longer resolve).
_JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"]


def namespaces(ctx: Context) -> list[tuple[int, dict]]:
    return list(enumerate(ctx.linux.get("namespaces") or []))


def has_new(ctx: Context, kind: str) -> bool:
    return any(ns["type"] == kind and not ns.get("path") for _, ns in namespaces(ctx))


def ipc_after_userns_root(ctx: Context) -> bool:
    """A new IPC namespace beside a new user namespace is made by stage mounts once the
    process is the user namespace's root (ids mapped), not in the one unshare(2): the IPC
    namespace's mqueue filesystem takes its owner from the creator's fsuid, which before the
    maps is an unmapped id (/dev/mqueue would show 65534). runc's nsexec unshares the user
    namespace first, becomes its root, then the rest."""
    return has_new(ctx, "user") and has_new(ctx, "ipc")


def unshare_ipc(ctx: Context, stage: str) -> None:
    """The deferred unshare(CLONE_NEWIPC) (ipc_after_userns_root); StageError on failure."""
    i = next(i for i, ns in namespaces(ctx) if ns["type"] == "ipc")
    try:
        ctx.sys.unshare(S.CLONE_NEWIPC)
    except OSError as e:
        raise StageError(stage, "unshare", "ipc", e.errno or 0, f"/linux/namespaces/{i}") from None


def oom_score_adj(ctx: Context, stage: str) -> None:
    """Write process.oomScoreAdj to /proc/self/oom_score_adj before any namespace changes, as
    runc's nsexec does: the host's /proc is in view (the container may mount none) and we are
    still the host's root, who may write it (after a uid change makes us non-dumpable, the file
    is root's); fork(2) passes the value on to init or the exec'd process."""
    if "oomScoreAdj" not in ctx.process:
        return
    try:
        ctx.sys.write_file("/proc/self/oom_score_adj", str(ctx.process["oomScoreAdj"]))
    except OSError as e:
        raise StageError(stage, "write", "/proc/self/oom_score_adj", e.errno or 0,
                         "/process/oomScoreAdj") from None


def describe_oom(ctx: Context) -> list[str]:
    if "oomScoreAdj" not in ctx.process:
        return []
    return [f"oom_score_adj = {ctx.process['oomScoreAdj']} first, inherited by the process it "
            "forks (config /process/oomScoreAdj)."]


class Unshare(Stage):
    name = "unshare"
    side = CONTAINER
    summary = "join or create the container's namespaces and fork its init process"

    def describe(self, ctx: Context) -> str:
        new = [ns["type"] for _, ns in namespaces(ctx) if not ns.get("path")]
        joined = [f"{ns['type']} ({ns['path']})" for _, ns in namespaces(ctx) if ns.get("path")]
        lines = [self.summary + "."] + describe_oom(ctx)
        if joined:
            lines.append("setns(2) into: " + ", ".join(joined) + " (config /linux/namespaces).")
        later = ipc_after_userns_root(ctx)
        now = [k for k in new if not (later and k == "ipc")]
        lines.append("unshare(2) new: " + (", ".join(now) or "none") + " (config /linux/namespaces)"
                     + ("; ipc later, by stage mounts as the user namespace's root (runc's order)."
                        if later else "."))
        if "time" in new and ctx.linux.get("timeOffsets"):
            lines.append("write the clock offsets to /proc/self/timens_offsets (config /linux/timeOffsets).")
        lines.append("fork(2) the init process (pid 1 of a new pid namespace) and let this one exit; "
                     "init starts a session of its own (setsid(2)).")
        return "\n".join(lines)

    def run(self, ctx: Context, item: str = "") -> None:
        oom_score_adj(ctx, self.name)
        joins = sorted(((i, ns) for i, ns in namespaces(ctx) if ns.get("path")),
                       key=lambda p: _JOIN_ORDER.index(p[1]["type"]))
        for i, ns in joins:
            try:
                fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                try:
                    ctx.sys.setns(fd, FLAGS[ns["type"]])
                finally:
                    os.close(fd)
            except OSError as e:
                raise StageError(self.name, "setns", ns["path"], e.errno or 0,
                                 f"/linux/namespaces/{i}") from None
        new = [(i, ns["type"]) for i, ns in namespaces(ctx) if not ns.get("path")]
        flags = 0
        for _, kind in new:
            flags |= FLAGS[kind]
        if ipc_after_userns_root(ctx):
            flags &= ~S.CLONE_NEWIPC
            new = [(i, k) for i, k in new if k != "ipc"]
        if flags:
            try:
                ctx.sys.unshare(flags)
            except OSError as e:
                kinds = ",".join(k for _, k in new)
                raise StageError(self.name, "unshare", kinds, e.errno or 0, "/linux/namespaces") from None
        if has_new(ctx, "time"):
            self._time_offsets(ctx)
        self._fork_init(ctx)

    def _time_offsets(self, ctx: Context) -> None:
        offsets = ctx.linux.get("timeOffsets") or {}
        clocks = {"monotonic": "monotonic", "boottime": "boottime"}
        lines = [f"{clocks[k]} {v.get('secs', 0)} {v.get('nanosecs', 0)}"
                 for k, v in offsets.items() if k in clocks]
        for line in lines:
            try:
                ctx.sys.write_file("/proc/self/timens_offsets", line)
            except OSError as e:
                raise StageError(self.name, "write", "/proc/self/timens_offsets", e.errno or 0,
                                 "/linux/timeOffsets") from None

    def _fork_init(self, ctx: Context, stage: str = "") -> None:
        """Fork the container's process (C2) and exit in C1; `stage`: whose fork it is (stage
        join's for an exec). StageError when fork(2) fails: EAGAIN in the container's cgroup is
        its pids limit (the kernel's pids controller), named as such."""
        # C2 waits for C1 to exit (EOF on the pipe) so that Pid always reaches the host before Ok.
        r, w = os.pipe()
        try:
            pid = ctx.sys.fork()
        except OSError as e:
            os.close(r)
            os.close(w)
            limit = ((ctx.linux.get("resources") or {}).get("pids") or {}).get("limit")
            if e.errno == errno.EAGAIN and isinstance(limit, int) and limit > 0:
                raise StageError(stage or self.name, "fork", "", e.errno,
                                 "/linux/resources/pids/limit",
                                 f"the container's pids limit {limit} is reached: fork(2) "
                                 "fails with EAGAIN") from None
            raise StageError(stage or self.name, "fork", "", e.errno or 0) from None
        if pid:
            os.close(r)
            ctx.chan.send(sync.Pid(pid))
            os._exit(0)
        os.close(w)
        os.read(r, 1)
        os.close(r)
        # Every container process (init, and each `exec`, which forks here too) leads a session
        # of its own, as runc's nsexec stage-2 does: in the caller's process group, `kill 0`
        # from inside would signal the host processes of that group. A fresh child is never a
        # group leader, so setsid(2) cannot fail with EPERM.
        try:
            ctx.sys.setsid()
        except OSError as e:
            raise StageError(self.name, "setsid", "", e.errno or 0) from None
