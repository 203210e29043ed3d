"""The runtime's state directory: one folder per container under --root, holding state.json and exec.fifo.

state.json is ours (runc keeps its own too); `oci_state` derives the runtime-spec state that
`ocish state` prints. Status is never stored: it is read from the kernel each time (is the pid
alive with the same start time, is the cgroup frozen, is exec.fifo still waiting).
"""
from __future__ import annotations

from runtime import jsonfast
import os
import time

from runtime.errors import OcishError
from runtime.linux import procfs

STATE_FILE = "state.json"
FIFO = "exec.fifo"


class NotExist(OcishError):
    def __init__(self) -> None:
        super().__init__("container does not exist")


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def container_dir(root: str, cid: str) -> str:
    return os.path.join(root, cid)


def load(root: str, cid: str) -> dict:
    try:
        with open(os.path.join(container_dir(root, cid), STATE_FILE)) as f:
            return jsonfast.loads(f.read())
    except (FileNotFoundError, NotADirectoryError):
        raise NotExist() from None


def save(root: str, st: dict) -> None:
    d = container_dir(root, st["id"])
    tmp = os.path.join(d, f".{STATE_FILE}.tmp")
    with open(tmp, "w") as f:
        f.write(jsonfast.dumps(st))
    os.rename(tmp, os.path.join(d, STATE_FILE))


def remove_dir(d: str) -> None:
    """Remove a container's state dir: a flat folder of our own files (no shutil on the hot path)."""
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE))]


def alive(st: dict) -> bool:
    pid = st.get("pid") or 0
    if pid <= 0 or procfs.proc_state(pid) in ("", "Z", "X"):
        return False
    try:
        return procfs.start_time(pid) == st.get("start_time")
    except OSError:
        return False


def status(root: str, st: dict) -> str:
    if not alive(st):
        return "stopped"
    if st.get("cgroup"):
        from runtime import cgroups  # only when alive: `state` of a stopped container skips it
        if cgroups.from_state(st["cgroup"]).frozen():
            return "paused"
    if os.path.exists(os.path.join(container_dir(root, st["id"]), FIFO)):
        return "created"
    return "running"


def oci_state(root: str, st: dict, oci_version: str) -> dict:
    stat = status(root, st)
    out = {"ociVersion": oci_version, "id": st["id"], "pid": st["pid"] if stat != "stopped" else 0,
           "status": stat, "bundle": st["bundle"], "rootfs": st["rootfs"], "created": st["created"],
           "owner": st.get("owner", "")}
    if st.get("annotations"):
        out["annotations"] = st["annotations"]
    return out
