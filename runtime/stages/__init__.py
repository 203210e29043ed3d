"""The setup pipeline: the ordered stages every container goes through, runtime and debugger alike.

The stage modules are imported by pipeline(), not with this package: `exec` builds its own
pipeline from a few of them, and spec.py needs only mountopts; importing every stage module for
those would cost each of them milliseconds."""
from __future__ import annotations

import os


def pipeline() -> list:
    """create's stages, in order: a list of runtime.engine.Stage."""
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
    cgroup = Cgroup() if os.geteuid() == 0 else _rootless_cgroup()
    return [cgroup, Unshare(), Idmap(), Network(), Lsm(), Mounts(), Limits(cgroup), Hooks(),
            ContainerHooks(), Seccomp(), Pivot(), Terminal(), Process(), Paths(), Attributes(),
            Bounding(), User(), Caps(), Exec()]


def _rootless_cgroup():
    """An unprivileged runtime uses a cgroup only where it is delegated (runtime/rootless.py)."""
    from runtime.rootless import RootlessCgroup
    return RootlessCgroup()
