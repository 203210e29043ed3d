"""The container to verify, found by id under a runtime's state root, or by host pid.

- ocish: `<root>/<id>/state.json` (runtime/state.py) and the config.json copy create keeps
  beside it: the config the container was created with.
- runc: `<root>/<id>/state.json` (libcontainer's State: init_process_pid, init_process_start,
  and `config`, libcontainer's configs.Config converted from the spec). The OCI config itself is
  the bundle's config.json, named by the label "bundle=<dir>" that runc's specconv puts in
  config.labels. runc says "created" while exec.fifo exists in the state dir (libcontainer's
  container_linux.go currentStatus), as we do.
- a host pid: any process, with the config given by --bundle (podman, containerd, a runtime we
  do not know the state files of).

--bundle always wins for the asked side (verify against a changed config); bind mount sources
that are relative are relative to the bundle.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from runtime import spec as specmod
from runtime import state
from runtime.errors import OcishError
from runtime.linux import procfs

RUNTIMES = ("ocish", "runc")
DEFAULT_ROOTS = {"ocish": "/run/ocish", "runc": "/run/runc"}


@dataclass
class Subject:
    pid: int
    spec: dict
    config_path: str
    bundle: str
    id: str = ""
    runtime: str = "pid"
    status: str = "running"
    start_time: int | None = None
    cgroup_paths: dict[str, str] = field(default_factory=dict)  # {} : from /proc/PID/cgroup

    @property
    def started(self) -> bool:
        """The user's process runs (its execve is done): env and the capability sets after
        execve(2) apply; a created container's init still waits to exec."""
        return self.status != "created"

    def root(self, path: str = "/") -> str:
        """`path` of the container, reached from the host through /proc/PID/root."""
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def host_id(self, ident: int, kind: str) -> int | None:
        """Container uid or gid (`kind`) `ident` as the host sees it, through the process's
        uid_map or gid_map; None when the map has no such id."""
        with open(f"/proc/{self.pid}/{kind}_map") as f:
            for line in f:
                inside, outside, count = map(int, line.split())
                if inside <= ident < inside + count:
                    return outside + ident - inside
        return None

    def alive(self) -> bool:
        """Whether the process still runs (the same one: its start time when known)."""
        if self.start_time is None:
            return procfs.proc_state(self.pid) not in ("", "Z", "X")
        return state.running(self.pid, self.start_time)


def find(ident: str, runtime: str = "ocish", root: str = "", bundle: str = "") -> Subject:
    """The container `ident` under `root` (the runtime's default root when empty), or, when no
    container has that id and it is a number, the host process of that pid (which needs
    `bundle`). Raises OcishError with one line saying what is missing."""
    if runtime not in RUNTIMES:
        raise OcishError(f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)} (or a host "
                         "pid with --bundle)")
    root = os.path.abspath(root or DEFAULT_ROOTS[runtime])
    if not os.path.exists(os.path.join(root, ident, "state.json")) and ident.isdigit():
        return by_pid(int(ident), bundle)
    state.validate_id(ident)  # a path of its own ("../x") is no container id
    subject = (_ocish if runtime == "ocish" else _runc)(root, ident)
    if bundle:
        subject.spec, subject.config_path = config(bundle)
        subject.bundle = os.path.abspath(bundle)
    elif not subject.config_path:
        raise OcishError(f"container {ident}: {runtime}'s state names no bundle: give the config "
                         "to compare with: --bundle DIR")
    if not subject.alive():
        raise OcishError(f"container {ident}: its process {subject.pid} is gone (status "
                         f"stopped): nothing to verify")
    return subject


def by_pid(pid: int, bundle: str) -> Subject:
    """A host process verified against `bundle`'s config.json."""
    if not bundle:
        raise OcishError(f"pid {pid}: give the config to compare with: --bundle DIR")
    if procfs.proc_state(pid) in ("", "Z", "X"):
        raise OcishError(f"pid {pid}: no such process")
    spec, path = config(bundle)
    return Subject(pid, spec, path, os.path.abspath(bundle), str(pid), "pid", "running",
                   procfs.start_time(pid))


def config(bundle: str) -> tuple[dict, str]:
    """The bundle's config.json, parsed (not validated: a config another runtime accepted is
    compared as it is); OcishError when there is none or it is not JSON."""
    spec = specmod.read(bundle)
    if not isinstance(spec, dict):
        raise OcishError(f"bundle {bundle}: config.json is not a JSON object")
    return spec, os.path.join(os.path.abspath(bundle), "config.json")


def _ocish(root: str, cid: str) -> Subject:
    try:
        st = state.load(root, cid)
    except state.NotExist:
        raise OcishError(f"container {cid} does not exist under {root}") from None
    status = state.status(root, st)
    path = os.path.join(state.container_dir(root, cid), state.CONFIG_COPY)
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        if status == "creating":
            raise OcishError(f"container {cid} is still being created: nothing to verify yet")
        raise OcishError(f"container {cid}: {path}: no config kept (give --bundle)") from None
    return Subject(st["pid"], spec, path, st.get("bundle", ""), cid, "ocish", status,
                   st.get("start_time"), dict((st.get("cgroup") or {}).get("paths") or {}))


def _runc(root: str, cid: str) -> Subject:
    d = os.path.join(root, cid)
    try:
        with open(os.path.join(d, "state.json")) as f:
            st = json.load(f)
        pid, lc = st["init_process_pid"], st["config"]
    except FileNotFoundError:
        raise OcishError(f"container {cid} does not exist under {root}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OcishError(f"container {cid}: {d}/state.json: not runc's state ({e})") from None
    labels = dict(x.split("=", 1) for x in lc.get("labels") or [] if "=" in x)
    bundle = labels.get("bundle", "")
    spec, path = ({}, "")
    if bundle:
        spec, path = config(bundle)
    status = "created" if os.path.exists(os.path.join(d, "exec.fifo")) else "running"
    return Subject(pid, spec, path, bundle, cid, "runc", status, st.get("init_process_start"),
                   {})
