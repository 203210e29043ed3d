"""The setup pipeline: the ordered stages every container goes through, runtime and debugger alike."""
from __future__ import annotations

import os

from runtime.engine import Stage
from runtime.stages.attributes import Attributes, Lsm
from runtime.stages.cgroup import Cgroup, Limits
from runtime.stages.exec import Exec
from runtime.stages.hooks import ContainerHooks, Hooks
from runtime.stages.idmap import Idmap
from runtime.stages.mounts import Mounts
from runtime.stages.network import Network
from runtime.stages.paths import Paths
from runtime.stages.pivot import Pivot
from runtime.stages.process import Process, User
from runtime.stages.security import Bounding, Caps, Seccomp
from runtime.stages.terminal import Terminal
from runtime.stages.unshare import Unshare


def pipeline() -> list[Stage]:
    cgroup = _cgroup()
    return [cgroup, Unshare(), Idmap(), Network(), Lsm(), Mounts(), Limits(cgroup), Hooks(),
            ContainerHooks(), Seccomp(), Pivot(), Terminal(), Process(), Paths(), Attributes(),
            Bounding(), User(), Caps(), Exec()]


def _cgroup() -> Cgroup:
    """An unprivileged runtime uses a cgroup only where it is delegated (runtime/rootless.py)."""
    if os.geteuid() != 0:
        from runtime.rootless import RootlessCgroup
        return RootlessCgroup()
    return Cgroup()

