"""`ocish features`: what this runtime really implements, in runc's `features` JSON layout.

Every list is read from the code that does the work, never written out by hand, so it cannot
claim more than ocish does: namespaces from stage `unshare`'s table, mount options from
`stages.mountopts` (the flags and propagation types mount(2) is given, the recursive
attributes mount_setattr(2) is given, tmpcopyup, idmap and ridmap), capabilities from `linux.capabilities` up to the kernel's last one,
seccomp actions, operators, architectures and flags from `linux.seccomp` and what the libseccomp
loaded here resolves, and hooks only when the create pipeline has a hooks stage. AppArmor and SELinux say whether
ocish can apply a profile or label (runtime/linux/lsm.py), as the runtime-spec defines "enabled":
support in the runtime, whether or not this host runs the module.
"""
from __future__ import annotations

from runtime.defaults import OCI_VERSION

OCI_VERSION_MIN = "1.0.0"


def _hooks() -> list[str]:
    from runtime.stages import pipeline
    if not any(s.name == "hooks" for s in pipeline()):
        return []
    from runtime import hooks
    return list(hooks.KINDS)


def _lsm(setter: str) -> bool:
    try:
        from runtime.linux import lsm
    except ImportError:
        return False
    return callable(getattr(lsm, setter, None))


def _mount_options() -> list[str]:
    from runtime.stages import mountopts
    return mountopts.known()


def _capabilities() -> list[str]:
    from runtime.linux import capabilities as C
    return [C.name(n) for n in range(min(C.LAST_CAP + 1, len(C.NAMES)))]


def _seccomp() -> dict:
    from runtime.linux import seccomp as S
    if not S.available():
        return {"enabled": False}
    archs = [a for a, lib in S.ARCHES.items()
             if S._lib.seccomp_arch_resolve_name(lib.encode()) != 0]
    version = tuple(int(x) for x in S.version().split(".")[:2] if x.isdigit())
    flags = [f for f, attr in S.FLAGS.items() if attr != S.ATTR_CTL_WAITKILL or version >= (2, 6)]
    return {"enabled": True, "actions": sorted(S.ACTIONS), "operators": sorted(S.OPERATORS),
            "archs": sorted(archs), "knownFlags": sorted(S.FLAGS), "supportedFlags": sorted(flags)}


def features() -> dict:
    from runtime.linux import seccomp as S
    from runtime.stages.unshare import FLAGS as NAMESPACES
    annotations = {}
    if S.available():
        annotations["io.github.seccomp.libseccomp.version"] = S.version()
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION,
        "hooks": _hooks(),
        "mountOptions": _mount_options(),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": _capabilities(),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": _lsm("set_apparmor_exec")},
            "selinux": {"enabled": _lsm("set_selinux_exec")},
            # runc 1.2's "mountExtensions": id-mapped mounts (mount_setattr(MOUNT_ATTR_IDMAP),
            # runtime/stages/mountsource.py); containerd reads it before it asks for one
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": annotations,
    }
