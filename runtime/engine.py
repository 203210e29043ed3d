"""The one engine that runs container setup stages, for the runtime and the debugger alike.

A `Stage` is a first-class object: a `name` the user types (`break mounts`), the `side` it runs on
(the host process, or the container process reached over the sync channel), `items(ctx)` when it is
made of finer steps (one per mount), `run(ctx, item)` and `describe(ctx)`.

`Engine` walks the stages one item at a time. The runtime calls `run()` with the plain `Observer`;
the debugger calls `step()` itself and stops where the user asked (model: bdb beside pdb). Nothing
about setup is written outside a stage, so whatever the runtime does, the debugger can step.
"""
from __future__ import annotations

import os
import time

from runtime import crashpoint, sync
from runtime.errors import StageError
from runtime.linux import procfs, sig, syscalls

HOST = "host"
CONTAINER = "container"


class Context:
    """Everything a stage needs; forked into the container side, so no sockets to re-open there."""

    def __init__(self, id: str, bundle: str, spec: dict, rootfs: str, state_dir: str,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 console_socket: str | None = None, sys: object = syscalls, fifo_fd: int = -1) -> None:
        self.id, self.bundle, self.spec, self.rootfs = id, bundle, spec, rootfs
        self.state_dir = state_dir
        self.no_pivot, self.no_new_keyring = no_pivot, no_new_keyring
        self.preserve_fds, self.console_socket = preserve_fds, console_socket
        self.sys = sys                # runtime.linux.syscalls, or runtime.linux.fake in unit tests
        self.fifo_fd = fifo_fd        # O_PATH fd of exec.fifo, opened before the mount ns changes
        self.cgroup = None            # a runtime.cgroups manager, set by the cgroup stage
        self.pid = 0                  # host pid of the container process (C1, then init)
        self.notes: dict = {}         # what stages learned, shown by the debugger
        self.chan = None              # container side only: the sync channel to the host
        self.console_sock = None      # connected --console-socket, opened before pivot_root
        self.journal = None           # lifecycle.Setup's: journal("cgroup" | "pid") records
        #                               it in state.json before it needs undoing after a crash

    @property
    def process(self) -> dict:
        return self.spec.get("process") or {}

    @property
    def linux(self) -> dict:
        return self.spec.get("linux") or {}


class Stage:
    """Base class: subclasses set `name`, `side`, `summary` and implement `run`/`describe`."""
    name = ""
    side = CONTAINER
    summary = ""

    def items(self, ctx: Context) -> list[str]:
        """Finer steps a breakpoint can name (e.g. mount destinations); [] for a single step."""
        return []

    def run(self, ctx: Context, item: str = "") -> None:
        raise NotImplementedError

    def describe(self, ctx: Context) -> str:
        """What this stage will do with this config, in plain words."""
        return self.summary

    def handoff(self, ctx: Context) -> None:
        """Container side, after the host was told the stage succeeded; only exec overrides it."""


class Observer:
    """Told about every step; the runtime's observer does nothing, the debugger's records."""

    def before(self, engine: "Engine", stage: Stage, item: str) -> None:
        pass

    def after(self, engine: "Engine", stage: Stage, item: str) -> None:
        pass

    def failed(self, engine: "Engine", stage: Stage, item: str, err: StageError) -> None:
        pass


class Engine:
    def __init__(self, ctx: Context, stages: list[Stage], observer: Observer | None = None) -> None:
        self.ctx = ctx
        self.stages = stages
        self.observer = observer or Observer()
        self.steps: list[tuple[Stage, str]] = [
            (s, item) for s in stages for item in (s.items(ctx) or [""])]
        self.pos = 0
        self.chan: sync.Channel | None = None
        self.failed: StageError | None = None

    @property
    def done(self) -> bool:
        return self.pos >= len(self.steps)

    @property
    def next_step(self) -> tuple[Stage, str] | None:
        return None if self.done else self.steps[self.pos]

    def spawn(self, stdin_fd: int | None = None, own_group: bool = False) -> int:
        """Fork the container side (C1), blocked until the first Run; returns its pid.

        The debugger gives it a stdin of its own and its own process group, so the shell's
        terminal and Ctrl-C never reach the container.
        """
        host, child = sync.pair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, reported over the channel
            try:
                host.close()
                if stdin_fd is not None:
                    os.dup2(stdin_fd, 0)
                if own_group:
                    os.setpgid(0, 0)
                    sig.signal(sig.SIGINT, sig.SIG_IGN)
                serve(self.ctx, child, self.stages)
            except BaseException as exc:  # a bug of ours outside any stage: say so, then exit
                os.write(2, f"ocish: container side: {type(exc).__name__}: {exc}\n".encode())
            finally:
                os._exit(1)
        child.close()
        if own_group:
            try:  # both sides set it: whichever runs first wins the race with the next fork
                os.setpgid(pid, pid)
            except OSError:
                pass
        self.chan = host
        self.ctx.pid = pid
        return pid

    def step(self) -> tuple[Stage, str]:
        """Run the next step; raises StageError (and stays on that step) when it fails."""
        if self.failed:
            raise self.failed
        stage, item = self.steps[self.pos]
        if self.chan is None:
            self.spawn()
        crashpoint.reached("before:" + stage.name)  # a test hook (runtime/crashpoint.py)
        self.observer.before(self, stage, item)
        try:
            if stage.side == HOST:
                stage.run(self.ctx, item)
            else:
                self._remote(stage, item)
        except StageError as err:
            self.failed = err
            self.observer.failed(self, stage, item, err)
            raise
        self.pos += 1
        crashpoint.reached("after:" + stage.name)
        self.observer.after(self, stage, item)
        return stage, item

    def run(self) -> None:
        while not self.done:
            self.step()

    def _remote(self, stage: Stage, item: str) -> None:
        assert self.chan is not None
        self.chan.send(sync.Run(stage.name, item))
        while True:
            msg = self.chan.recv()
            if isinstance(msg, sync.Pid):  # C1 forked init and is exiting: reap it, follow init
                first = self.ctx.pid
                self.ctx.pid = msg.pid
                if self.ctx.journal is not None:
                    self.ctx.journal("pid")
                try:
                    os.waitpid(first, 0)
                except ChildProcessError:  # a subreaper's reap loop got there first
                    pass
            elif isinstance(msg, sync.Ok):
                return
            elif isinstance(msg, sync.Err):
                raise StageError.from_dict(msg.error)
            else:
                raise StageError(stage.name, "sync", "", 0, "",
                                 "container process exited during setup")

    def close(self) -> None:
        """Stop talking to the container side (it exits on EOF unless already handed off)."""
        if self.chan is not None:
            self.chan.close()
            self.chan = None

    def kill(self) -> None:
        """Tear down a half-set-up container process; used on failure and by the debugger."""
        pid = self.ctx.pid
        self.close()
        if pid > 0:
            try:
                os.kill(pid, sig.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)


def _reap(pid: int) -> None:
    """Reap pid if it is our child (C1, or init when we are its subreaper); otherwise wait until
    it is dead, so the caller can remove its cgroups."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        for _ in range(1000):
            if procfs.proc_state(pid) in ("", "Z", "X"):
                return
            time.sleep(0.001)


def serve(ctx: Context, chan: sync.Channel, stages: list[Stage]) -> None:
    """Container side: run each requested stage item and answer; exits when the host goes away
    (EOF, or an answer to a runtime that was killed: then there is nobody to tell)."""
    try:
        _serve(ctx, chan, stages)
    except (BrokenPipeError, ConnectionResetError):
        return


def _serve(ctx: Context, chan: sync.Channel, stages: list[Stage]) -> None:
    by_name = {s.name: s for s in stages}
    ctx.chan = chan
    while True:
        msg = chan.recv()
        if not isinstance(msg, sync.Run):
            return
        stage = by_name[msg.stage]
        try:
            stage.run(ctx, msg.item)
        except StageError as err:
            chan.send(sync.Err(stage.name, err.to_dict()))
            continue
        except OSError as exc:
            chan.send(sync.Err(stage.name, StageError(stage.name, "run", msg.item,
                                                      exc.errno or 0).to_dict()))
            continue
        except Exception as exc:  # a bug of ours: report it through the same channel
            detail = f"internal error: {type(exc).__name__}: {exc}"
            chan.send(sync.Err(stage.name, StageError(stage.name, "run", msg.item, 0, "",
                                                      detail).to_dict()))
            continue
        chan.send(sync.Ok(stage.name))
        if type(stage).handoff is not Stage.handoff:
            chan.close()
            stage.handoff(ctx)  # never returns
            os._exit(1)
