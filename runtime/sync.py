"""The host <-> container sync protocol: typed messages, one JSON object per line, over a socketpair.

    host side (runtime or debugger)                  container side
    ───────────────────────────────                  ──────────────
    posix_spawn a sealed memfd copy of ───────────►  C1: `ocish init -S -P -c ... FD`, a fresh
      the interpreter (linux/exeseal.py), with           Python with stdio, --preserve-fds, the
      only the fds C1 needs                              channel, exec.fifo and console socket
    Init{context, factory, args, path} ───────────►  C1: rebuilds the Context, imports and builds
    [host stage: cgroup] puts C1 in the cgroups          the pipeline by reference, then
    (both run at once: C1's start-up overlaps it)
                        ◄──────────────────────────  Ready{}; C1 blocks in recv()
    Run{stage: unshare} ──────────────────────────►  C1: setns(joined), unshare(new), fork C2
                        ◄──────────────────────────  C1: Pid{pid: C2}; C1 exits
                        ◄──────────────────────────  C2: Ok{stage: unshare}  (after C1 is gone)
    [host stage: idmap] writes /proc/C2/{uid,gid}_map
    Run{stage: mounts, item: "/proc"} ────────────►  C2: runs that one item of the stage
      (+ SCM_RIGHTS fds the host opened for it:           (Stage.host_fds: bind sources
       detached mounts, see Stage.host_fds)                 resolved with the host's rights)
                        ◄──────────────────────────  Ok{stage: mounts}  |  Err{error: StageError}
    ... one Run per stage item (pivot, process, ...) ...
      (the runtime, which never stops between steps, sends a run of container-side items
       as one Batch{steps} and reads one answer per item: one round trip, not one each)
    Run{stage: exec} ─────────────────────────────►  C2: resolves args[0], closes fds
                        ◄──────────────────────────  Ok{stage: exec}; C2 blocks opening exec.fifo
    host writes state.json and returns (create done)
    start: open exec.fifo for reading ───────────►  C2: writes one byte, execve(args)

C1 is never a fork of the host's Python: its /proc/self/exe (and that of C2, and of every process
`exec` adds) is the sealed copy, so nothing in the container can reach the host's interpreter
file through /proc (CVE-2019-5736, see runtime/linux/exeseal.py). The runtime never waits for
Ready (it reads it before the first Ok); the debugger does, so that what it inspects and traces
is C1 running container_main.

Between messages the container side is blocked in recv(), so its kernel state is stable: that is
what lets the debugger inspect /proc/<pid> honestly between stages. EOF on the socket means the
host went away: the container side exits instead of running on half set up.
"""
from __future__ import annotations

import _socket
import os
import sys

from runtime import jsonfast


class Message:
    """A typed message; `fields` are what goes on the wire besides its `type`."""
    type = ""
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.fields}
        d["type"] = self.type
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.fields)})"


class Init(Message):
    """host -> container, first: what C1 needs to serve. `context` is
    engine.Context.to_wire(); `factory` ("package.module:function") and its JSON-able `args`
    build the stage list, as on the host; `path` is the host's sys.path."""
    type, fields = "init", ("context", "factory", "args", "path")

    def __init__(self, context: dict, factory: str, args: list, path: list[str]) -> None:
        self.context, self.factory, self.args, self.path = context, factory, args, path


class Ready(Message):
    """container -> host: C1 runs from its sealed copy and has built the stages."""
    type, fields = "ready", ()


class Run(Message):
    """host -> container: run one item ("" for the whole stage) of a container-side stage."""
    type, fields = "run", ("stage", "item")

    def __init__(self, stage: str, item: str = "") -> None:
        self.stage, self.item = stage, item


class Batch(Message):
    """host -> container: run these steps in order, as one Run each would, and stop at the
    first that fails; `steps` are [stage, item, fds]: `fds` is how many of the message's fds
    (in order) are that step's. The runtime sends one when nobody stops between steps (one
    round trip for a run of container-side steps instead of one each); the debugger never."""
    type, fields = "batch", ("steps",)

    def __init__(self, steps: list[list]) -> None:
        self.steps = steps


class Ok(Message):
    """container -> host: the requested stage item finished."""
    type, fields = "ok", ("stage", "data")

    def __init__(self, stage: str, data: dict | None = None) -> None:
        self.stage, self.data = stage, data or {}


class Err(Message):
    """container -> host: the stage item failed; `error` is a StageError.to_dict()."""
    type, fields = "err", ("stage", "error")

    def __init__(self, stage: str, error: dict) -> None:
        self.stage, self.error = stage, error


class Pid(Message):
    """container -> host: the host pid of the container's init (C2), sent by C1 before it exits."""
    type, fields = "pid", ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


_TYPES = {m.type: m for m in (Init, Ready, Run, Batch, Ok, Err, Pid)}


MAX_FDS = 16  # fds one message may carry
_FD_SIZE = 4   # an int in SCM_RIGHTS


class Channel:
    """One end of the socketpair, reading and writing whole JSON lines; a message may carry fds
    (SCM_RIGHTS), which the receiver collects with take_fds()."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buf = b""
        self._fds: list[int] = []

    def send(self, msg: Message, fds: list[int] | tuple[int, ...] = ()) -> None:
        """Send `msg`; `fds` (at most 16) go with its first byte and stay open here."""
        data = jsonfast.dumps(msg.to_dict()).encode() + b"\n"
        if fds:
            raw = b"".join(fd.to_bytes(_FD_SIZE, sys.byteorder) for fd in fds)
            sent = self.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, raw)])
            data = data[sent:]
        if data:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except OSError:
                # sendto(2) refused (a seccomp filter loaded before setup ends): the same bytes
                # through write(2), which any profile that lets a process run must allow
                view = memoryview(data)
                while view:
                    view = view[os.write(self.sock.fileno(), view):]

    def take_fds(self) -> list[int]:
        """The fds received so far (close-on-exec), now the caller's to close."""
        fds, self._fds = self._fds, []
        return fds

    def recv(self, fds: bool = False) -> Message | None:
        """The next message, or None on EOF (the peer is gone). With `fds`, read with
        recvmsg(2) and keep the fds that come along (take_fds); without, recv(2) (recvfrom),
        the one call a seccomp profile loaded before the last messages must allow."""
        while b"\n" not in self._buf:
            try:
                if fds:
                    chunk, anc, _flags, _addr = self.sock.recvmsg(
                        65536, _socket.CMSG_SPACE(MAX_FDS * _FD_SIZE), _socket.MSG_CMSG_CLOEXEC)
                else:
                    chunk, anc = self.sock.recv(65536), []
            except ConnectionResetError:  # the peer exited with our last message unread
                return None
            for level, kind, raw in anc:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    self._fds += [int.from_bytes(raw[i:i + _FD_SIZE], sys.byteorder)
                                  for i in range(0, len(raw) - _FD_SIZE + 1, _FD_SIZE)]
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
    # _socket, not socket: the latter's enums cost milliseconds at every start
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return Channel(a), Channel(b)
