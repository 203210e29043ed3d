"""The host <-> container sync protocol: typed messages, one JSON object per line, over a socketpair.

    host side (runtime or debugger)                  container side
    ───────────────────────────────                  ──────────────
    fork ─────────────────────────────────────────►  C1: blocks in recv()
    [host stage: cgroup] puts C1 in the cgroups
    Run{stage: unshare} ──────────────────────────►  C1: setns(joined), unshare(new), fork C2
                        ◄──────────────────────────  C1: Pid{pid: C2}; C1 exits
                        ◄──────────────────────────  C2: Ok{stage: unshare}  (after C1 is gone)
    [host stage: idmap] writes /proc/C2/{uid,gid}_map
    Run{stage: mounts, item: "/proc"} ────────────►  C2: runs that one item of the stage
                        ◄──────────────────────────  Ok{stage: mounts}  |  Err{error: StageError}
    ... one Run per stage item (pivot, process, ...) ...
    Run{stage: exec} ─────────────────────────────►  C2: resolves args[0], closes fds
                        ◄──────────────────────────  Ok{stage: exec}; C2 blocks opening exec.fifo
    host writes state.json and returns (create done)
    start: open exec.fifo for reading ───────────►  C2: writes one byte, execve(args)

Between messages the container side is blocked in recv(), so its kernel state is stable: that is
what lets the debugger inspect /proc/<pid> honestly between stages. EOF on the socket means the
host went away: the container side exits instead of running on half set up.
"""
from __future__ import annotations

from runtime import jsonfast
import socket
from dataclasses import asdict, dataclass, field


@dataclass
class Run:
    """host -> container: run one item ("" for the whole stage) of a container-side stage."""
    stage: str
    item: str = ""
    type: str = "run"


@dataclass
class Ok:
    """container -> host: the requested stage item finished."""
    stage: str
    data: dict = field(default_factory=dict)
    type: str = "ok"


@dataclass
class Err:
    """container -> host: the stage item failed; `error` is a StageError.to_dict()."""
    stage: str
    error: dict
    type: str = "err"


@dataclass
class Pid:
    """container -> host: the host pid of the container's init (C2), sent by C1 before it exits."""
    pid: int
    type: str = "pid"


_TYPES = {"run": Run, "ok": Ok, "err": Err, "pid": Pid}
Message = Run | Ok | Err | Pid


class Channel:
    """One end of the socketpair, reading and writing whole JSON lines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def send(self, msg: Message) -> None:
        self.sock.sendall(jsonfast.dumps(asdict(msg)).encode() + b"\n")

    def recv(self) -> Message | None:
        """The next message, or None on EOF (the peer is gone)."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        raw = jsonfast.loads(line.decode())
        return _TYPES[raw.pop("type")](**raw)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def pair() -> tuple[Channel, Channel]:
    """(host end, container end); both close-on-exec so the user process never inherits them."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Channel(a), Channel(b)
