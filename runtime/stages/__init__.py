"""The setup pipeline: the ordered stages every container goes through, runtime and debugger alike."""
from __future__ import annotations

from runtime.engine import Stage
from runtime.stages.cgroup import Cgroup
from runtime.stages.exec import Exec
from runtime.stages.hooks import ContainerHooks, Hooks
from runtime.stages.idmap import Idmap
from runtime.stages.mounts import Mounts
from runtime.stages.paths import Paths
from runtime.stages.pivot import Pivot
from runtime.stages.process import Process, User
from runtime.stages.security import Bounding, Caps, Seccomp
from runtime.stages.terminal import Terminal
from runtime.stages.unshare import Unshare


def pipeline() -> list[Stage]:
    return [Cgroup(), Unshare(), Idmap(), Mounts(), Hooks(), ContainerHooks(), Seccomp(), Pivot(),
            Terminal(), Process(), Paths(), Bounding(), User(), Caps(), Exec()]

