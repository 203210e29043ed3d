"""The broken bundles diagnose must explain, built at test time from the busybox rootfs.

Each Case is a config.json mutation plus a rootfs edit, and what the diagnosis must say: the code
and stage of its first error, the config.json pointer it blames (a prefix is enough where the
index is the runtime's), a word of its cause, and the fix (a JSON-patch path it edits, or a
command it runs). `build(case, dir, template)` makes the bundle; nothing here is committed as files.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MIB = 1024 * 1024


@dataclass
class Case:
    name: str
    code: str                       # the first error's code
    stage: str
    pointer: str                    # prefix of the pointer it blames
    cause: str                      # a word its cause contains
    fix: str                        # "patch:<path prefix>", "command:<substring>" or "text:<words>"
    mutate: Callable[[dict, "Env"], None] | None = None
    rootfs: Callable[[Path], None] | None = None
    open_dir: bool = False          # built under a world-searchable dir (mapped ids reach it)
    args: list[str] = field(default_factory=lambda: ["true"])


@dataclass
class Env:
    """Where a case may put host files (hook programs, mount sources)."""
    host: Path
    bundle: Path


# -- small mutation helpers --------------------------------------------------------------------

def _args(*a: str):
    def m(s, env):
        s["process"]["args"] = list(a)
    return m


def _proc(key: str, value):
    def m(s, env):
        s["process"][key] = value
    return m


def _linux(key: str, value):
    def m(s, env):
        s["linux"][key] = value
    return m


def _res(key: str, value):
    def m(s, env):
        s["linux"]["resources"][key] = value
    return m


def _mount(**m):
    def mut(s, env):
        entry = {k: (v.format(host=env.host) if isinstance(v, str) else v) for k, v in m.items()}
        s["mounts"].append(entry)
    return mut


def _both(*fns):
    def m(s, env):
        for f in fns:
            f(s, env)
    return m


def _write(rel: str, data: bytes | str, mode: int = 0o755):
    def edit(root: Path):
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        p.chmod(mode)
    return edit


def _edits(*fns):
    def edit(root: Path):
        for f in fns:
            f(root)
    return edit


def _hook(kind: str, script: str, timeout: int | None = None):
    def m(s, env):
        path = env.host / f"{kind}-hook"
        path.write_text(script)
        path.chmod(0o755)
        entry = {"path": str(path), "args": [path.name]}
        if timeout:
            entry["timeout"] = timeout
        s.setdefault("hooks", {}).setdefault(kind, []).append(entry)
    return m


def aarch64_elf() -> bytes:
    """A minimal ELF64 header for aarch64 (e_machine 183): what execve(2) reads to say ENOEXEC."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + struct.pack("<HHIQQQIHHHHHH", 2, 183, 1, 0x400000, 0, 0, 0, 64, 56, 0, 64, 0, 0)


def _dynamic_true(loader: bool):
    """The host's dynamically linked `true`; with the loader but not libc, or with neither."""
    def edit(root: Path):
        shutil.copy("/usr/bin/true", root / "dtrue")
        if loader:
            interp = "/lib64/ld-linux-x86-64.so.2"
            (root / "lib64").mkdir(exist_ok=True)
            shutil.copy(os.path.realpath(interp), root / "lib64" / os.path.basename(interp))
    return edit


def _userns(hostid: int = 100000, first: int = 0):
    def m(s, env):
        s["linux"]["namespaces"].append({"type": "user"})
        s["linux"]["uidMappings"] = [{"containerID": first, "hostID": hostid, "size": 65536}]
        s["linux"]["gidMappings"] = [{"containerID": first, "hostID": hostid, "size": 65536}]
    return m


def _seccomp(default: str, nnp: bool = True, **rules):
    def m(s, env):
        s["process"]["noNewPrivileges"] = nnp
        s["linux"]["seccomp"] = {"defaultAction": default, "syscalls": [
            {"names": names, "action": action} for action, names in rules.items()]}
    return m


def _podman_shape(nofile: int, nproc: int):
    """A config shaped like the one podman 4 writes (cgroupfs manager): an absolute root.path
    outside the bundle, a createRuntime hook, annotations, a cgroupsPath of its own, and its
    ulimits (podman's defaults are nofile 1048576 and nproc 4194304)."""
    def m(s, env):
        rootfs = env.host / "overlay" / "merged"
        rootfs.parent.mkdir(parents=True)
        (env.bundle / "rootfs").rename(rootfs)
        s["root"] = {"path": str(rootfs)}
        marker = env.host / "hook-ran"
        hook = env.host / "netns-hook"
        hook.write_text(f"#!/bin/sh\ncat > {marker}\n")
        hook.chmod(0o755)
        s["hooks"] = {"createRuntime": [{"path": str(hook), "args": ["netns-hook", "create"],
                                         "env": ["PATH=/usr/bin:/bin"], "timeout": 10}]}
        s["annotations"] = {"io.container.manager": "libpod",
                            "io.kubernetes.cri-o.Created": "2024-05-01T10:00:00.000000000Z",
                            "org.opencontainers.image.stopSignal": "15",
                            "io.podman.annotations.autoremove": "TRUE"}
        s["linux"]["cgroupsPath"] = f"/libpod_parent/libpod-{uuid.uuid4().hex[:12]}"
        s["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile},
                                   {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc}]
        s["process"]["oomScoreAdj"] = 0
        s["process"]["env"].append("container=podman")
        s["hostname"] = "5a1f0c0ffee0"
    return m


CASES: list[Case] = [
    # -- the entrypoint, every way it can fail to exec
    Case("entrypoint missing", "entrypoint-missing", "exec", "/process/args/0", "not in the rootfs",
         "patch:/process/args/0", _args("/bin/slep", "1")),
    Case("entrypoint not in PATH", "entrypoint-not-in-path", "exec", "/process/args/0", "PATH",
         "patch:/process/args/0", _args("server"),
         _write("/opt/app/bin/server", "#!/bin/sh\necho serving\n")),
    Case("entrypoint is a directory", "entrypoint-directory", "exec", "/process/args/0",
         "directory", "text:program", _args("/tmp")),
    Case("entrypoint not executable", "entrypoint-not-executable", "exec", "/process/args/0",
         "execute", "command:chmod +x", _args("/app.sh"), _write("/app.sh", "#!/bin/sh\n", 0o644)),
    Case("entrypoint for another architecture", "entrypoint-architecture", "exec",
         "/process/args/0", "aarch64", "text:x86_64", _args("/arm-app"),
         _write("/arm-app", aarch64_elf())),
    Case("dynamic binary without its loader", "entrypoint-loader", "exec", "/process/args/0",
         "ld-linux", "command:cp -L --parents /lib64/ld-linux-x86-64.so.2", _args("/dtrue"),
         _dynamic_true(loader=False)),
    Case("dynamic binary without its libraries", "entrypoint-library", "exec",
         "/process/args/0", "libc.so.6", "command:libc.so.6", _args("/dtrue"),
         _dynamic_true(loader=True)),
    Case("script whose interpreter is missing", "entrypoint-interpreter", "exec",
         "/process/args/0", "python3", "text:install", _args("/app.py"),
         _write("/app.py", "#!/usr/bin/python3\nprint('hi')\n")),
    Case("script with DOS line endings", "entrypoint-crlf", "exec", "/process/args/0",
         "carriage return", "command:sed -i", _args("/run.sh"),
         _write("/run.sh", "#!/bin/sh\r\necho hi\r\n")),
    Case("script without #! line", "entrypoint-format", "exec", "/process/args/0", "ENOEXEC",
         "patch:/process/args", _args("/run.sh"), _write("/run.sh", "echo hi\n")),
    Case("entrypoint not executable by the user", "entrypoint-permission", "exec",
         "/process/args/0", "uid 1000", "command:chmod a+x",
         _both(_args("true"), _proc("user", {"uid": 1000, "gid": 1000})),
         lambda root: (root / "bin" / "busybox").chmod(0o700)),
    # -- the cwd
    Case("cwd is a file", "cwd-not-directory", "pivot", "/process/cwd", "ENOTDIR",
         "patch:/process/cwd", _proc("cwd", "/etc/passwd")),
    # -- mounts, every failure class
    Case("mount source missing", "mount-source-missing", "mounts", "/mounts/7", "does not exist",
         "command:mkdir -p", _mount(destination="/data", type="bind",
                                    source="{host}/no-such-dir", options=["rbind"])),
    Case("mount of a file onto a directory", "mount-file-on-directory", "mounts", "/mounts/7",
         "ENOTDIR", "patch:/mounts/7/destination",
         _both(lambda s, env: (env.host / "app.conf").write_text("x=1\n"),
               _mount(destination="/etc", type="bind", source="{host}/app.conf",
                      options=["bind"]))),
    Case("mount of a directory onto a file", "mount-directory-on-file", "mounts", "/mounts/7",
         "directory", "patch:/mounts/7/destination",
         _both(lambda s, env: (env.host / "confdir").mkdir(),
               _mount(destination="/etc/passwd", type="bind", source="{host}/confdir",
                      options=["bind"]))),
    Case("mount of an unknown filesystem type", "mount-unknown-type", "mounts", "/mounts/7",
         "ENODEV", "patch:/mounts/7/type",
         _mount(destination="/scratch", type="tmpfss", source="tmpfs")),
    # nothing the kernel has is like it: no type to suggest (squashfs would need a device)
    Case("mount of a filesystem type nothing is like", "mount-unknown-type", "mounts",
         "/mounts/7", "ENODEV", "patch:/mounts/7",
         _mount(destination="/scratch", type="nosuchfs", source="tmpfs")),
    Case("mount with a bad option", "mount-bad-option", "mounts", "/mounts/7/options/1",
         "size=lots", "patch:/mounts/7/options/1",
         _mount(destination="/scratch", type="tmpfs", source="tmpfs",
                options=["nosuid", "size=lots", "mode=755"])),
    Case("mount with a relative destination", "path-relative", "validate",
         "/mounts/7/destination", "absolute", "patch:/mounts/7/destination",
         _mount(destination="scratch", type="tmpfs", source="tmpfs")),
    Case("proc mounted through a symlink", "mount-destination-symlink", "mounts",
         "/mounts/0", "symlink", "command:rm ",
         rootfs=lambda root: ((root / "proc").rmdir(), (root / "proc").symlink_to("/tmp"))),
    Case("mount destination through a symlink loop", "mount-destination-loop", "mounts",
         "/mounts/7", "loop", "command:rm ",
         _mount(destination="/srv/data", type="tmpfs", source="tmpfs"),
         lambda root: ((root / "srv").symlink_to("/srv2"), (root / "srv2").symlink_to("/srv"))),
    # -- resource limits that kill or block the container's init
    Case("memory limit too small: OOM kill", "oom-kill", "", "/linux/resources/memory/limit",
         "OOM", "patch:/linux/resources/memory/limit",
         _both(_res("memory", {"limit": 8 * MIB, "swap": 8 * MIB}),
               _args("awk", 'BEGIN { s = sprintf("%20000000s", ""); print length(s) }'))),
    # below 4 MiB the runtime's own setup would be OOM-killed: runtime/spec.py refuses it
    Case("memory limit too small for setup: refused", "memory-limit-too-low", "validate",
         "/linux/resources/memory/limit", "setup", "patch:/linux/resources/memory/limit",
         _res("memory", {"limit": 256 * 1024, "swap": 256 * 1024})),
    Case("pids limit too small for the program", "pids-limit", "start",
         "/linux/resources/pids/limit", "refused", "patch:/linux/resources/pids/limit",
         _both(_res("pids", {"limit": 3}),
               _args("sh", "-c", "sleep 1 & sleep 1 & sleep 1 & wait; echo done"))),
    # -- user namespaces
    Case("user namespace root cannot reach the rootfs", "userns-rootfs-access", "mounts",
         "/root/path", "100000", "command:chmod o+x", _userns()),
    Case("user namespace root cannot enter the rootfs", "userns-rootfs-access", "mounts",
         "/root/path", "each mount's destination", "command:chmod o+x", _userns(),
         rootfs=lambda root: root.chmod(0o700), open_dir=True),
    Case("user namespace without a mapping for 0", "userns-root-unmapped", "mounts",
         "/linux/uidMappings", "EINVAL", "patch:/linux/uidMappings",
         _both(_userns(first=1000), _proc("user", {"uid": 1000, "gid": 1000})), open_dir=True),
    # -- seccomp profiles that stop the process before or at exec
    Case("seccomp forbids execve", "seccomp-execve", "exec", "/linux/seccomp", "execve",
         "patch:/linux/seccomp/syscalls/0",
         _seccomp("SCMP_ACT_ALLOW", SCMP_ACT_ERRNO=["execve", "execveat"])),
    Case("seccomp kills the runtime before exec", "seccomp-before-exec", "exec",
         "/linux/seccomp", "openat", "patch:/linux/seccomp/syscalls",
         _seccomp("SCMP_ACT_KILL", SCMP_ACT_ALLOW=["read", "write", "exit_group"])),
    Case("seccomp kills setup (no noNewPrivileges)", "seccomp-before-exec", "bounding",
         "/linux/seccomp", "prctl", "patch:/linux/seccomp/syscalls",
         _seccomp("SCMP_ACT_KILL", nnp=False, SCMP_ACT_ALLOW=["read", "write", "exit_group"])),
    Case("seccomp refuses the runtime's open", "seccomp-before-exec", "exec", "/linux/seccomp",
         "openat", "patch:/linux/seccomp/syscalls",
         _seccomp("SCMP_ACT_ERRNO", SCMP_ACT_ALLOW=["read", "write", "exit_group"])),
    # -- security modules, capabilities, rlimits
    Case("AppArmor profile on a host without AppArmor", "lsm-not-enabled", "lsm",
         "/process/apparmorProfile", "AppArmor", "patch:/process/apparmorProfile",
         _proc("apparmorProfile", "docker-default")),
    Case("SELinux label on a host without SELinux", "lsm-not-enabled", "lsm",
         "/process/selinuxLabel", "SELinux", "patch:/process/selinuxLabel",
         _proc("selinuxLabel", "system_u:system_r:container_t:s0:c1,c2")),
    Case("unknown capability", "capability-unknown", "validate",
         "/process/capabilities/bounding/3", "unknown capability",
         "patch:/process/capabilities/bounding/3",
         lambda s, env: s["process"]["capabilities"]["bounding"].append("CAP_NET_BIND_SERVIC")),
    Case("capability the host cannot grant", "capability-not-held", "caps",
         "/process/capabilities/permitted", "CAP_SYS_RESOURCE", "patch:/process/capabilities",
         lambda s, env: [s["process"]["capabilities"][k].append("CAP_SYS_RESOURCE")
                         for k in ("bounding", "effective", "permitted")]),
    Case("rlimit above the host's hard limit", "rlimit-above-host", "process",
         "/process/rlimits/0", "CAP_SYS_RESOURCE", "patch:/process/rlimits/0/hard",
         _proc("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 65536, "hard": 65536}])),
    # create refuses it; the dry run's container side (the debugger's) starts, holding one
    # descriptor fewer: the finding must stay an error all the same
    Case("nofile too low for the runtime's last open", "rlimit-nofile-too-low", "exec",
         "/process/rlimits/0", "EMFILE", "patch:/process/rlimits/0/soft",
         _proc("rlimits", [{"type": "RLIMIT_NOFILE", "soft": 5, "hard": 1024}])),
    # -- hooks
    Case("prestart hook missing", "hook-missing", "hooks", "/hooks/prestart/0", "ENOENT",
         "patch:/hooks/prestart/0",
         lambda s, env: s.__setitem__(
             "hooks", {"prestart": [{"path": "/usr/libexec/oci/hooks.d/net"}]})),
    Case("createRuntime hook failing", "hook-failed", "hooks", "/hooks/createRuntime/0",
         "exit status 3", "patch:/hooks/createRuntime/0",
         _hook("createRuntime", "#!/bin/sh\necho 'cannot reach the CNI plugin' >&2\nexit 3\n")),
    Case("prestart hook timing out", "hook-timeout", "hooks", "/hooks/prestart/0", "timeout",
         "patch:/hooks/prestart/0/timeout",
         # a hook that needs 3 s and is given 1: the fix (more time) can be applied and works
         _hook("prestart", "#!/bin/sh\nexec sleep 3\n", timeout=1)),
    # -- namespaces and sysctls
    Case("namespace path missing", "namespace-path-missing", "validate",
         "/linux/namespaces/1/path", "does not exist", "patch:/linux/namespaces/1/path",
         lambda s, env: s["linux"]["namespaces"].__setitem__(
             1, {"type": "network", "path": "/run/netns/gone"})),
    Case("namespace path of the wrong type", "namespace-path-type", "unshare",
         "/linux/namespaces/1", "EINVAL", "patch:/linux/namespaces/1/path",
         lambda s, env: s["linux"]["namespaces"].__setitem__(  # the test's own ipc namespace
             1, {"type": "network", "path": f"/proc/{os.getpid()}/ns/ipc"})),
    Case("sysctl that is not namespaced", "sysctl-not-namespaced", "validate",
         "/linux/sysctl/kernel.pid_max", "not namespaced", "patch:/linux/sysctl/kernel.pid_max",
         _linux("sysctl", {"kernel.pid_max": "4096"})),
    Case("sysctl this kernel does not have", "sysctl-unknown", "process",
         "/linux/sysctl/net.ipv4.ip_forwarding", "ENOENT", "patch:/linux/sysctl",
         _linux("sysctl", {"net.ipv4.ip_forwarding": "1"})),
    # -- the config itself, and a bundle shaped like podman's
    Case("config.json that is not JSON", "config-json", "validate", "", "json",
         "text:json.tool",
         lambda s, env: s.__setitem__("__broken__", True)),
    Case("podman-shaped bundle with podman's default ulimits", "rlimit-above-host", "process",
         "/process/rlimits/0", "CAP_SYS_RESOURCE", "patch:/process/rlimits/0/hard",
         _podman_shape(1048576, 4194304), open_dir=True),
]

HEALTHY = [
    Case("healthy: runs to completion", "", "", "", "", "", _args("true")),
    Case("healthy: keeps running", "", "", "", "", "", _args("sleep", "30")),
    # a missing cwd is made by stage pivot, as runc and crun make it: an info, no failure
    Case("healthy: a missing cwd is created", "", "", "", "", "",
         _both(_proc("cwd", "/srv/app"), _args("sleep", "30"))),
    # stage limits writes the limits once the init exists (runc's order): the init alone fits
    Case("healthy: a pids limit of 1", "", "", "", "", "",
         _both(_res("pids", {"limit": 1}), _args("sleep", "30"))),
    Case("healthy, with forks refused by the pids limit", "pids-limit-child", "start",
         "/linux/resources/pids/limit", "refused", "text:pids",
         _both(_res("pids", {"limit": 3}),
               # the inner shell dies of the refused fork; init goes on
               _args("sh", "-c", "sh -c 'sleep 5 & sleep 5 & wait'; exec sleep 30"))),
    Case("healthy: podman-shaped bundle", "", "", "", "", "",
         _both(_podman_shape(20000, 32768), _args("sh", "-c", "echo up; sleep 30")), open_dir=True),
]


def build(case: Case, base: Path, template: Path) -> Path:
    """The case's bundle under `base`: the template's rootfs and config.json, edited."""
    bundle = base / "bundle"
    host = base / "host"
    bundle.mkdir(parents=True)
    host.mkdir()
    subprocess.run(["cp", "-a", str(template / "rootfs"), str(bundle / "rootfs")], check=True)
    spec = json.loads((template / "config.json").read_text())
    spec["process"]["args"] = list(case.args)
    spec["process"]["terminal"] = False
    if case.rootfs:
        case.rootfs(bundle / "rootfs")
    if case.mutate:
        case.mutate(spec, Env(host, bundle))
    text = json.dumps(spec, indent=1)
    if spec.pop("__broken__", False):
        text = json.dumps(spec, indent=1)[:-2] + ",\n}"
    (bundle / "config.json").write_text(text)
    return bundle
