"""Start the RCU grace period of a cgroup attach early, while other work goes on.

Every write to a `cgroup.procs` file takes the kernel's cgroup_threadgroup_rwsem for writing
(kernel/cgroup/cgroup.c, cgroup_attach_lock). That per-cpu rwsem first leaves its fast path
with rcu_sync_enter(), which waits for an RCU grace period: 5 to 20 ms on this machine, a
sleep, not CPU. The rwsem then stays on its slow path until a grace period after its last
writer (rcu_sync_exit), so a second write meanwhile, or one made while the first still
waits, pays nothing more. runc pays that wait inside its cgroup Apply; `create` starts it
at its first instant instead, from a thread, so that it elapses while the runtime reads the
config and the container side's interpreter starts, and the cgroup stage's own writes then
find the rwsem already on its slow path.

The write that starts it moves this process into the cgroup it already is in: the kernel
finds nothing to migrate (the task's css_set is already the destination's:
cgroup_migrate_prepare_dst skips it), so no controller's attach callback runs and nothing
changes; it is a cgroup of the caller's, written with the caller's pid, and is never created,
removed or given other processes.
"""
from __future__ import annotations

import _thread
import os

CGROUP_ROOT = "/sys/fs/cgroup"


def start_grace_period(root: str = CGROUP_ROOT, proc_self_cgroup: str = "/proc/self/cgroup") -> None:
    """Begin the rwsem's grace period now, in a thread of its own, and return at once.
    Errors are ignored (only time is at stake): a rootless runtime that may not write its own
    cgroup.procs, a host without cgroups, a cgroup2 one it may not be moved into."""
    _thread.start_new_thread(_migrate_in_place, (root, proc_self_cgroup))


def own_procs_files(root: str, proc_self_cgroup: str) -> list[str]:
    """The cgroup.procs files of the cgroups this process is in, the cgroup2 one (no
    controller to call) first; [] when /proc/self/cgroup cannot be read."""
    try:
        with open(proc_self_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    v2 = root if os.path.exists(f"{root}/cgroup.controllers") else f"{root}/unified"
    files = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        mount = v2 if not controllers else f"{root}/{controllers.removeprefix('name=')}"
        files.append(f"{mount}{path.rstrip('/')}/cgroup.procs")
    files.sort(key=lambda f: not f.startswith(v2 + "/"))
    return files


def _migrate_in_place(root: str, proc_self_cgroup: str) -> None:
    pid = str(os.getpid()).encode()
    for path in own_procs_files(root, proc_self_cgroup):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.write(fd, pid)
            return
        except OSError:
            continue
        finally:
            os.close(fd)
