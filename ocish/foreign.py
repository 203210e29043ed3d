"""Containers another runtime made (runc, crun, podman, containerd, Docker), found for `attach`.

What was asked comes from the container's config.json (the bundle named by runc's state.json
label "bundle=...", crun's status "bundle", podman's OCIConfigPath); what is comes from the
kernel (/proc/PID: namespaces, cgroups, caps ...). Nothing here writes to the container or to
its runtime's state: the debugger holds a `Foreign` read-only, and only `ocish attach
--allow-changes` lets `change()` run the owning runtime's own command (`runc kill`, `podman
pause` ...), so its state stays its own (ocish never writes another runtime's state.json).

Where each runtime keeps its state (the id is a directory under the state root):

    runc        ROOT/ID/state.json   ROOT: /run/runc (root), runc --root; podman's runc uses it too
    crun        ROOT/ID/status       ROOT: /run/crun; config.json beside it (crun's copy)
    containerd  /run/containerd/runc/NAMESPACE/ID/state.json   (its runc shim's --root)
    Docker      /run/docker/runtime-runc/moby/ID/state.json
    podman      `podman inspect NAME`: State.Pid, Id, OCIRuntime, OCIConfigPath
    Docker      `docker inspect NAME`: State.Pid, Id (then its runc state above)

A bare host pid is a container too: its config is unknown, the kernel still answers.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from runtime import state
from runtime.errors import OcishError
from runtime.linux import procfs

RUNTIMES = ("runc", "crun", "ocish")
DEFAULT_ROOTS = {"runc": "/run/runc", "crun": "/run/crun"}
# the state roots searched, in order, when neither --runtime nor --root says where to look
SEARCHED = (("runc", "/run/runc"), ("crun", "/run/crun"),
            ("docker", "/run/docker/runtime-runc/moby"), ("containerd", "/run/containerd/runc/*"))
# what `--allow-changes` lets through, as the owning runtime's commands (runc's names)
CHANGES = ("start", "kill", "pause", "resume", "delete")


class NotFound(OcishError):
    pass


@dataclass
class Foreign:
    """A container of another runtime, as the debugger holds it."""
    id: str
    runtime: str                 # runc, crun, podman, docker, containerd; "" for a bare pid
    pid: int                     # its init's host pid
    start_time: int | None       # /proc/PID/stat starttime: a reused pid is not it
    root: str = ""               # the runtime's state root (runc --root), "" when none
    bundle: str = ""
    rootfs: str = ""
    config: dict = field(default_factory=dict)  # config.json, {} when unknown
    config_path: str = ""
    created: str = ""
    name: str = ""               # podman's or Docker's name for it
    state_dir: str = ""          # the runtime's directory for it (exec.fifo while created)
    owner: str = ""
    allow_changes: bool = False  # `attach --allow-changes`: change() may run

    @property
    def label(self) -> str:
        """"runc container web", "podman container web", "process 4242"."""
        if not self.runtime:
            return f"process {self.pid}"
        return f"{self.runtime} container {self.name or self.id}"

    def alive(self) -> bool:
        return state.running(self.pid, self.start_time)

    def status(self) -> str:
        """created, running, paused or stopped, read from the kernel as runc does: the init
        alive with its start time, its freezer, exec.fifo still there (runc and crun)."""
        if not self.alive():
            return "stopped"
        try:
            if self.manager().frozen():
                return "paused"
        except OSError:
            pass
        if self.state_dir and os.path.exists(os.path.join(self.state_dir, "exec.fifo")):
            return "created"
        return "running"

    def cgroup_paths(self) -> dict[str, str]:
        """The init's cgroup directories, from the kernel (/proc/PID/cgroup), keyed like our
        cgroup managers' paths ({} once it is gone)."""
        from ocish.inspect.cgroup import Membership, dirs_of
        try:
            with open(f"/proc/{self.pid}/cgroup") as f:
                lines = [ln.split(":", 2) for ln in f.read().splitlines() if ln.count(":") >= 2]
        except OSError:
            return {}
        return dirs_of([Membership(*p) for p in lines])

    def manager(self):
        """A cgroup manager over its directories (pids, frozen); never creates or removes."""
        from runtime import cgroups
        paths = self.cgroup_paths()
        version = 2 if list(paths) == [""] else 1
        return cgroups.from_state({"version": version, "paths": paths})

    def oci_state(self) -> dict:
        """The runtime-spec state, as `runc state` prints it (pid 0 once stopped)."""
        status = self.status()
        out = {"ociVersion": self.config.get("ociVersion", "1.0.2"), "id": self.id,
               "pid": self.pid if status != "stopped" else 0, "status": status,
               "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created,
               "owner": self.owner, "runtime": self.runtime or "none", "root": self.root}
        if self.name:
            out["name"] = self.name
        return out

    def exec_state(self) -> dict:
        """What the exec pipeline (runtime.execprocess) needs of a container's state.json,
        with the cgroups the kernel says the init is in."""
        paths = self.cgroup_paths()
        cg = {"version": 2 if list(paths) == [""] else 1, "paths": paths} if paths else None
        return {"id": self.id, "pid": self.pid, "start_time": self.start_time,
                "bundle": self.bundle, "rootfs": self.rootfs or f"/proc/{self.pid}/root",
                "cgroup": cg}

    def exec_spec(self) -> dict:
        """The config an exec runs with: config.json, or, when it is unknown, a process read
        from the kernel (the init's user, capabilities, no_new_privs, environment), so an
        exec'd process has what the init has."""
        if self.config.get("process"):
            return self.config
        return {"ociVersion": "1.0.2", "process": kernel_process(self.pid),
                "root": {"path": f"/proc/{self.pid}/root"}, "linux": {}}

    def change(self, action: str, *args: str) -> None:
        """Run the owning runtime's own `action` (CHANGES) on it; refused (one line) unless
        the session was opened with --allow-changes."""
        if not self.runtime:  # a bare host pid (it may be the host's init): never ours to change
            raise OcishError(f"{action} refused: process {self.pid} belongs to no container "
                             f"runtime, and ocish changes nothing it does not own")
        if not self.allow_changes:
            raise OcishError(f"{action} refused: {self.label} is attached read-only (`ocish "
                             f"attach --allow-changes` lets {action} change it, through "
                             f"{self.runtime})")
        argv = self._command(action, *args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            why = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
            raise OcishError(f"{action}: {' '.join(argv)}: {why}")

    def _command(self, action: str, *args: str) -> list[str]:
        """The owning runtime's command line for `action`: kill takes the signal, delete
        with an argument is forced."""
        force = ["--force"] if action == "delete" and args else []
        if self.runtime in ("podman", "docker"):
            verb = {"resume": "unpause", "delete": "rm"}.get(action, action)
            extra = ["--signal", args[0]] if action == "kill" else force
            return [self.runtime, verb, *extra, self.name or self.id]
        binary = "runc" if self.runtime in ("docker", "containerd") else self.runtime
        return [binary, "--root", self.root, action, *force, self.id,
                *(args if action == "kill" else ())]


def kernel_process(pid: int) -> dict:
    """An OCI process object for what `pid` is now: its uid and gid, its five capability sets,
    no_new_privs, environment and working directory (as far as /proc shows them)."""
    from runtime.linux import capabilities
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    caps = {name: capabilities.names(int(fields[key], 16))
            for key, name in (("CapBnd", "bounding"), ("CapEff", "effective"),
                              ("CapInh", "inheritable"), ("CapPrm", "permitted"),
                              ("CapAmb", "ambient"))}
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = [e.decode(errors="replace") for e in f.read().split(b"\0") if b"=" in e]
    return {"args": ["sh"], "cwd": "/", "env": env,
            "user": {"uid": int(fields["Uid"].split()[1]), "gid": int(fields["Gid"].split()[1])},
            "capabilities": caps, "noNewPrivileges": fields.get("NoNewPrivs") == "1"}


# -- finding one --------------------------------------------------------------------------------

def find(ref: str, runtime: str | None = None, root: str | None = None) -> Foreign:
    """The container `ref` names: an id in a runtime's state root (--root, else --runtime's
    default root, else every root of SEARCHED), a podman or Docker name, or a host pid (all
    digits). Raises NotFound with where it looked."""
    if ref.isascii() and ref.isdigit():
        return by_pid(int(ref), runtime, root)
    state.validate_id(ref)
    looked = []
    for rt, r in _roots(runtime, root):
        found = in_root(ref, rt, r)
        if found is not None:
            return found
        looked.append(f"{r} ({rt})" if rt else r)
    if root is None and runtime is None:
        for engine in ("podman", "docker"):
            if _engine_runs(engine):
                found = by_engine_name(engine, ref)
                if found is not None:
                    return found
                looked.append(f"`{engine} inspect`")
    raise NotFound(f"no container {ref} in {', '.join(looked)}")


def _engine_runs(engine: str) -> bool:
    """Whether `ENGINE inspect` can answer: podman is installed (it needs no daemon), Docker
    is installed and its daemon's socket is there."""
    return shutil.which(engine) is not None and (
        engine != "docker" or "DOCKER_HOST" in os.environ or os.path.exists("/run/docker.sock"))


def _roots(runtime: str | None, root: str | None) -> list[tuple[str, str]]:
    if root is not None:
        return [(runtime or "", root)]
    if runtime is not None:
        return [(runtime, DEFAULT_ROOTS[runtime])]
    out = []
    for rt, pattern in SEARCHED:
        out += [(rt, r) for r in (sorted(glob.glob(pattern)) if "*" in pattern else [pattern])]
    return out


def in_root(cid: str, runtime: str, root: str) -> Foreign | None:
    """Container `cid` under state root `root`, by the file its runtime writes there (runc's
    state.json, crun's status); None when there is no such directory. `runtime` "" detects it."""
    d = os.path.join(root, cid)
    if os.path.isfile(os.path.join(d, "state.json")) and runtime != "crun":
        return _runc(d, cid, runtime or "runc", root)
    if os.path.isfile(os.path.join(d, "status")) and runtime in ("", "crun"):
        return _crun(d, cid, root)
    return None


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise OcishError(f"read {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict):
        raise OcishError(f"read {path}: not a JSON object")
    return data


def _runc(d: str, cid: str, runtime: str, root: str) -> Foreign:
    """runc's libcontainer state.json: init_process_pid, init_process_start, created, and in
    its `config` (libcontainer's, not OCI's) the label bundle=PATH and the rootfs."""
    st = _read_json(os.path.join(d, "state.json"))
    if "ocish" in st:
        raise NotFound(f"{d} is an ocish container: `ocish --root {root} attach {cid}`")
    if "init_process_pid" not in st:
        raise OcishError(f"{d}/state.json: not a runc state.json (no init_process_pid)")
    cfg = st.get("config") or {}
    labels = dict(lb.split("=", 1) for lb in cfg.get("labels") or [] if "=" in lb)
    bundle = labels.get("bundle", "")
    f = Foreign(cid, runtime, int(st["init_process_pid"]), st.get("init_process_start"), root,
                bundle, cfg.get("rootfs", ""), created=st.get("created", ""), state_dir=d)
    _config(f, os.path.join(bundle, "config.json") if bundle else "")
    return f


def _crun(d: str, cid: str, root: str) -> Foreign:
    """crun's status file (pid, process-start-time, bundle, rootfs, created, owner) and its
    copy of config.json beside it."""
    st = _read_json(os.path.join(d, "status"))
    bundle = st.get("bundle", "")
    rootfs = st.get("rootfs", "")
    f = Foreign(cid, "crun", int(st.get("pid", 0)), st.get("process-start-time"), root, bundle,
                os.path.join(bundle, rootfs) if rootfs else "", created=st.get("created", ""),
                state_dir=d, owner=st.get("owner", ""))
    _config(f, os.path.join(d, "config.json"))
    if not f.config and bundle:
        _config(f, os.path.join(bundle, "config.json"))
    return f


def _config(f: Foreign, path: str) -> None:
    """config.json at `path`, when it is there and readable (a deleted bundle leaves {})."""
    if not path or not os.path.isfile(path):
        return
    try:
        f.config, f.config_path = _read_json(path), path
    except OcishError:
        return
    if not f.rootfs:
        rootfs = (f.config.get("root") or {}).get("path", "")
        f.rootfs = os.path.join(os.path.dirname(path), rootfs) if rootfs else ""


def by_engine_name(engine: str, ref: str) -> Foreign | None:
    """A podman or Docker container by name or id, from `ENGINE inspect` (None when the
    engine is not installed, not running, or knows no such container)."""
    if not _engine_runs(engine):
        return None
    try:
        p = subprocess.run([engine, "inspect", "--type", "container", ref],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    try:
        info = json.loads(p.stdout)[0]
    except (ValueError, IndexError, KeyError):
        return None
    pid, cid = int(info.get("State", {}).get("Pid") or 0), info.get("Id", "")
    name = info.get("Name", "").lstrip("/")
    if pid <= 0:
        raise OcishError(f"{engine} container {name or ref} is not running "
                         f"({info.get('State', {}).get('Status', 'no process')})")
    runtime_state = None
    for rt, r in _roots(None, None):  # its OCI runtime's state, when it is one we read
        runtime_state = in_root(cid, rt, r) if cid else None
        if runtime_state is not None:
            break
    f = runtime_state or Foreign(cid, engine, pid, None)
    f.runtime, f.name = engine, name
    f.root = runtime_state.root if runtime_state else ""
    if f.start_time is None or f.pid != pid:
        f.pid, f.start_time = pid, procfs.start_time(pid)
    cfg_path = info.get("OCIConfigPath", "")
    if cfg_path:
        _config(f, cfg_path)
        f.bundle = f.bundle or os.path.dirname(cfg_path)
    if not f.config:  # Docker says nowhere: its shim runs in the bundle
        _parent_bundle(f)
    f.created = f.created or info.get("Created", "")
    return f


def _parent_bundle(f: Foreign) -> None:
    """The bundle of a container whose state we cannot read: the working directory of its
    init's parent (containerd's runc shim, conmon run there), taken only when its config.json's
    root is the init's root (the same inode as /proc/PID/root)."""
    try:
        with open(f"/proc/{f.pid}/stat") as st:
            ppid = int(st.read().rsplit(")", 1)[1].split()[1])
        cwd = os.readlink(f"/proc/{ppid}/cwd")
        probe = Foreign(f.id, f.runtime, f.pid, f.start_time)
        _config(probe, os.path.join(cwd, "config.json"))
        theirs, root = os.stat(probe.rootfs), os.stat(f"/proc/{f.pid}/root")
    except (OSError, ValueError, IndexError):
        return
    if probe.config and (theirs.st_dev, theirs.st_ino) == (root.st_dev, root.st_ino):
        f.config, f.config_path, f.bundle, f.rootfs = (probe.config, probe.config_path, cwd,
                                                        probe.rootfs)


def by_pid(pid: int, runtime: str | None = None, root: str | None = None) -> Foreign:
    """Host pid `pid`: the container whose init it is, in the state roots searched (its
    config known then), else the process alone."""
    try:
        start = procfs.start_time(pid)
    except OSError:
        raise NotFound(f"no process {pid}") from None
    for rt, r in _roots(runtime, root):
        try:
            names = sorted(os.listdir(r))
        except OSError:
            continue
        for cid in names:
            try:
                f = in_root(cid, rt, r)
            except OcishError:
                continue
            if f is not None and f.pid == pid and f.start_time == start:
                return f
    f = Foreign(f"pid-{pid}", "", pid, start)
    _parent_bundle(f)
    f.rootfs = f.rootfs or f"/proc/{pid}/root"
    return f
