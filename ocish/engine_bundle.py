"""A podman or containerd container as a bundle: `ocish diagnose|debug --podman NAME|ID` and
`--containerd ID [--namespace N]`.

A container that failed to start is the one people want to debug, and the engines keep its OCI
config but not its rootfs: podman unmounts the container's overlay after a failed `run` (its
config.json stays in the userdata dir), containerd keeps the spec in its metadata and the rootfs
as an unmounted snapshot. `borrow()` puts the two back together without touching either engine's
files:

    podman                                        containerd
    ──────                                        ──────────
    podman container inspect NAME                 ctr -n N containers info ID
      -> Id, Name, OCIConfigPath                    -> Spec, Snapshotter, SnapshotKey
    podman mount ID -> the overlay's path         ctr -n N snapshots --snapshotter S mounts DIR KEY
                                                    -> `mount -t T SRC DIR -o OPTS` lines, run
                                                       by mount(8) on DIR (temp)
    temp bundle: config.json, a copy of the container's, with root.path at the mounted rootfs
    (and a cgroupsPath of its own when the container's cgroup exists: a live container's cgroup
    must never be joined, nor removed by our teardown)
    afterwards, also on an error or a stop signal: podman unmount / umount, temp files removed

The engine's tools run in a session of their own (the terminal's Ctrl-C reaches ocish only), and
a mount with the stop signals held until its undoing is registered: a Ctrl-C lands before
`podman mount` or after it, and is then undone, never in the middle.
The engines' own clients are used, not their files: their storage layout is theirs to change.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ocish.diagnose.dryrun import held_signals
from ocish.image.tools import failure
from runtime.errors import OcishError

TOOL_TIMEOUT = 60.0  # seconds for one podman / ctr / mount call
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"  # ctr's default --address


class EngineError(OcishError):
    """The engine's container cannot be borrowed: no such container, the engine's client is
    missing, the daemon is not running, a mount failed. One line, said as the engine said it."""


@dataclass
class Borrowed:
    """A container of another engine, set up as a bundle for as long as borrow() lasts."""
    engine: str          # podman | containerd
    ref: str             # what the user named it by (name or id)
    id: str              # the engine's full id
    name: str            # podman's name, containerd's id
    config: str          # where its OCI config came from (a path, or the ctr command)
    rootfs: str          # where its rootfs is mounted now
    bundle: str          # the temp bundle directory (config.json)
    namespace: str = ""  # containerd's
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """The container as a diagnosis reports it (plain data, JSON-ready)."""
        d = {"engine": self.engine, "name": self.name, "id": self.id, "config": self.config,
             "rootfs": self.rootfs}
        if self.namespace:
            d["namespace"] = self.namespace
        return d

    def title(self) -> str:
        """One line: `podman container web (3f2a9c1b7d0e)`, `containerd container x (ns k8s)`."""
        if self.engine == "podman":
            return f"podman container {self.name} ({self.id[:12]})"
        return f"containerd container {self.name} (namespace {self.namespace})"


def engine_args(p: argparse.ArgumentParser) -> None:
    """--podman NAME|ID, --containerd ID, --namespace N: a container of another engine, in
    place of a bundle (ocish.engine_bundle); `ocish debug` takes them too."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--podman", metavar="NAME|ID", help="a podman container (one that failed "
                   "to start, say): its config.json, its rootfs mounted by `podman mount`")
    g.add_argument("--containerd", metavar="ID", help="a containerd container: its stored "
                   "spec, its snapshot mounted; CONTAINERD_ADDRESS names the socket")
    p.add_argument("--namespace", metavar="N", help="containerd's namespace (default: "
                   "$CONTAINERD_NAMESPACE or \"default\")")


def engine_of(a: argparse.Namespace, bundle_given: bool) -> tuple[str, str]:
    """(engine, container) from engine_args' flags, ("", "") for none; raises EngineError
    when they are given with a bundle, or --namespace without --containerd."""
    for flag in ("podman", "containerd", "namespace"):
        if getattr(a, flag) == "":
            raise EngineError(f"--{flag}: an empty name")
    engine = "podman" if a.podman else "containerd" if a.containerd else ""
    if a.namespace is not None and engine != "containerd":
        raise EngineError("--namespace goes with --containerd")
    if engine and bundle_given:
        raise EngineError(f"a bundle or --{engine}, not both")
    return engine, a.podman or a.containerd or ""


@contextmanager
def borrow(engine: str, ref: str, namespace: str | None = None) -> Iterator[Borrowed]:
    """Mount container `ref` of `engine` ("podman" or "containerd", with its `namespace`) and
    yield it as a temp bundle; unmount and remove everything on the way out, whatever ends
    the block. Raises EngineError (nothing left behind) when it cannot."""
    undo: list[Callable[[], None]] = []
    failed = True
    try:
        if engine == "podman":
            b = _podman(ref, undo)
        else:
            b = _containerd(ref, namespace or os.environ.get("CONTAINERD_NAMESPACE") or "default",
                            undo)
        yield b
        failed = False
    finally:
        with held_signals():
            errors = []
            for step in reversed(undo):
                try:
                    step()
                except (OSError, OcishError) as e:  # every step is tried; the first is said
                    errors.append(str(e))
        if errors and not failed:  # else the error that ended the block is the one to say
            raise EngineError(f"cleaning up {engine} container {ref}: {errors[0]}")


# --- podman -------------------------------------------------------------------------------------

def _podman(ref: str, undo: list[Callable[[], None]]) -> Borrowed:
    info = _podman_inspect(ref)
    cid, name = info.get("Id", ""), info.get("Name", ref)
    config = info.get("OCIConfigPath") or ""
    if not cid or not os.path.isfile(config):
        raise EngineError(f"podman container {ref}: no OCI config"
                          + (f" at {config}" if config else " yet (podman writes it when the "
                             "container is first started or `podman init`ed)"))
    spec = _read_spec(config, f"podman container {ref}")
    # podman counts mounts: our `mount` and `unmount` are one pair, whoever else holds one.
    # By name: podman 4.3's `unmount FULL-ID` of a running container exits 0 and leaves its
    # count as it was (its name, or a short id, do take it down)
    key = name or cid
    rootfs = _mount(["podman", "mount", key], f"podman mount {ref}", undo,
                    lambda: _tool(["podman", "unmount", key], f"podman unmount {ref}")).strip()
    if not os.path.isdir(rootfs):
        raise EngineError(f"podman mount {ref}: printed {rootfs!r}, not a directory")
    bundle = tempfile.mkdtemp(prefix="ocish-podman-")
    undo.append(lambda: _remove(bundle))
    b = Borrowed("podman", ref, cid, name, config, rootfs, bundle)
    _write_bundle(b, spec, rootfs)
    return b


def _podman_inspect(ref: str) -> dict:
    try:
        out = _tool(["podman", "container", "inspect", ref], f"podman container {ref}")
    except EngineError as e:
        if "no such container" in str(e):  # podman: "inspecting object: no such container X"
            raise EngineError(f"podman container {ref}: no such container") from None
        raise
    try:
        doc = json.loads(out)
    except ValueError:
        raise EngineError(f"podman container inspect {ref}: output is not JSON") from None
    if not isinstance(doc, list) or len(doc) != 1 or not isinstance(doc[0], dict):
        raise EngineError(f"podman container {ref}: inspect gave no single container")
    return doc[0]


# --- containerd ---------------------------------------------------------------------------------

def _containerd(ref: str, namespace: str, undo: list[Callable[[], None]]) -> Borrowed:
    address = os.environ.get("CONTAINERD_ADDRESS") or CONTAINERD_SOCKET
    if shutil.which("ctr") and not os.path.exists(address):  # ctr would wait for it 10 s
        raise EngineError(f"containerd is not running: no socket at {address} "
                          "(CONTAINERD_ADDRESS names another)")
    ctr = ["ctr", "--namespace", namespace]
    what = f"containerd container {ref} (namespace {namespace})"
    try:
        out = _tool(ctr + ["containers", "info", ref], what)
    except EngineError as e:
        if str(e).endswith(": not found"):  # ctr: container "X" in namespace "N": not found
            raise EngineError(f"{what}: no such container") from None
        raise
    try:
        info = json.loads(out)
    except ValueError:
        raise EngineError(f"ctr containers info {ref}: output is not JSON") from None
    spec = info.get("Spec") if isinstance(info, dict) else None
    if not isinstance(spec, dict):
        raise EngineError(f"{what}: no OCI spec in its record")
    key, snapshotter = info.get("SnapshotKey"), info.get("Snapshotter")
    if not key or not snapshotter:
        raise EngineError(f"{what}: no snapshot (created with its own rootfs path?)")
    top = tempfile.mkdtemp(prefix="ocish-containerd-")
    undo.append(lambda: _remove(top))
    rootfs = os.path.join(top, "rootfs")
    os.mkdir(rootfs)
    undo.append(lambda: os.rmdir(rootfs))  # after the unmount below; never a recursive removal
    lines = _tool(ctr + ["snapshots", "--snapshotter", snapshotter, "mounts", rootfs, key],
                  f"{what}: snapshot {key}")
    for argv in _mount_commands(lines, rootfs, what):
        _mount(argv, f"{what}: {' '.join(argv[:3])}", undo, lambda: _umount(rootfs))
    if not os.path.ismount(rootfs):
        raise EngineError(f"{what}: snapshot {key} has no mounts")
    bundle = os.path.join(top, "bundle")
    os.mkdir(bundle)
    undo.append(lambda: _remove(bundle))
    b = Borrowed("containerd", ref, ref, ref, f"ctr --namespace {namespace} containers info "
                 f"{ref} (Spec)", rootfs, bundle, namespace=namespace)
    _write_bundle(b, spec, rootfs)
    return b


def _mount_commands(text: str, target: str, what: str) -> list[list[str]]:
    """`ctr snapshots mounts` prints one `mount -t TYPE SOURCE TARGET -o OPTIONS` line per
    mount (containerd's cmd/ctr/commands/snapshots): as argv for mount(8), checked to mount on
    `target` and nothing else."""
    cmds = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if len(words) != 7 or words[:2] != ["mount", "-t"] or words[5] != "-o" \
                or words[4] != target:
            raise EngineError(f"{what}: unexpected snapshot mount {line!r}")
        fstype, source, _, _, options = words[2:]
        cmds.append(["mount", "-t", fstype, "-o", options, source, target])
    return cmds


def _umount(target: str) -> None:
    """Unmount what we mounted on `target`; lazily when it is busy (a shell left inside)."""
    from runtime.linux import syscalls as S
    try:
        S.umount2(target, 0)
    except OSError:
        S.umount2(target, S.MNT_DETACH)


def _remove(directory: str) -> None:
    """Remove a temp directory of ours: its config.json, then itself (rmdir: a rootfs still
    mounted inside makes this fail instead of deleting the container's files)."""
    config = os.path.join(directory, "config.json")
    if os.path.lexists(config):
        os.unlink(config)
    os.rmdir(directory)


# --- the temp bundle ----------------------------------------------------------------------------

def _read_spec(path: str, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            spec = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise EngineError(f"{what}: {path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(spec, dict):
        raise EngineError(f"{what}: {path}: not a JSON object")
    return spec


def _write_bundle(b: Borrowed, spec: dict, rootfs: str) -> None:
    """config.json of the temp bundle: the container's, with root.path at the mount; a cgroup
    of its own when the container's exists (the throwaway container must not join a live one,
    and its teardown would remove it)."""
    spec = json.loads(json.dumps(spec))  # a copy: the engine's config stays as it was
    root = spec.get("root") if isinstance(spec.get("root"), dict) else {}
    spec["root"] = {**root, "path": rootfs}
    linux = spec.get("linux")
    path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    if isinstance(path, str) and path and _cgroup_exists(path, b.name):
        linux["cgroupsPath"] = new = f"{path.rstrip('/')}-ocish-{os.getpid()}"
        b.notes.append(f"cgroupsPath {path} exists (the container runs?): using {new}")
    with open(os.path.join(b.bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)


def _cgroup_exists(path: str, cid: str) -> bool:
    from runtime import cgroups
    try:  # a systemd-style "slice:prefix:name" path is taken as the runtime takes it
        return any(os.path.isdir(d) for d in cgroups.open_manager(path, cid).paths().values())
    except OcishError:
        return False


# --- the engines' tools -------------------------------------------------------------------------

def _tool(argv: list[str], what: str) -> str:
    """Run an engine's client, return its stdout; EngineError with its last error line when it
    fails. It runs in a session of its own, out of reach of the terminal's Ctrl-C (ours is
    what ends things, through our cleanup)."""
    if shutil.which(argv[0]) is None:
        pkg = {"ctr": "containerd"}.get(argv[0], argv[0])
        raise EngineError(f"{argv[0]} is not installed (apt-get install {pkg})")
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=TOOL_TIMEOUT, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise EngineError(f"{what}: {' '.join(argv[:3])} did not answer in "
                          f"{TOOL_TIMEOUT:g} s") from None
    if p.returncode != 0:
        raise EngineError(f"{what}: {failure(p.stderr, p.returncode, argv[0])}")
    return p.stdout


def _mount(argv: list[str], what: str, undo: list[Callable[[], None]],
           unmount: Callable[[], None]) -> str:
    """_tool for a call that mounts: with the stop signals held until `unmount` is in `undo`,
    so a Ctrl-C lands either before the mount or after its undoing is registered."""
    with held_signals():
        out = _tool(argv, what)
        undo.append(unmount)
    return out


