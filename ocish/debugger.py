"""The debugger: drives the runtime's own engine one step at a time, as its Observer (pdb over bdb).

A `Debugger` holds one container: first a `runtime.lifecycle.Setup` whose engine it steps,
then, after `Setup.finish()` (exactly what `create` does), a created container handled with the
same lifecycle functions as the CLI. It never prints: it returns data (StepReport, rows, dicts)
that the shell renders.

The container side is started at load time (a fresh interpreter spawned from a sealed copy of
ours, runtime/linux/exeseal.py), so it can be inspected before the first stage. It gets a pipe
as stdin (the shell owns the terminal; the pipe is never written, so an interactive `sh` waits
instead of exiting) and its own process group (Ctrl-C at the shell must not reach it). The
shell is a child subreaper: the container's init is reparented to it when C1 exits, and it
reaps what it kills.
"""
from __future__ import annotations

import os
import shutil
import signal
import uuid
from dataclasses import dataclass, field
from typing import Generator

from ocish import diff as diffmod
from ocish.inspect import Target
from ocish.trace import TraceResult, Tracer
from runtime import lifecycle, state
from runtime.engine import CONTAINER, Engine, Observer, Stage
from runtime.errors import OcishError, StageError
from runtime.linux import syscalls as S


@dataclass
class Breakpoint:
    number: int
    stage: str
    items: list[str]         # stop before these items; [] for the stage's first step
    label: str               # as the user typed it
    hits: int = 0


@dataclass
class StepReport:
    stage: str
    item: str
    side: str
    error: StageError | None = None
    trace: TraceResult | None = None
    trace_note: str = ""                 # why this step was not traced
    changes: list[str] | None = None     # `watch on`: the diff this step made
    created: dict | None = None          # state.json, when this step completed the setup


@dataclass
class ItemRow:
    item: str
    text: str
    status: str                          # done, next, failed, pending
    breakpoints: list[int]


@dataclass
class StageRow:
    name: str
    side: str
    status: str
    summary: str                         # the first line of describe()
    breakpoints: list[int]
    items: list[ItemRow] = field(default_factory=list)


def exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class Debugger(Observer):
    def __init__(self, root: str) -> None:
        self.root = root
        self.cid = ""
        self.bundle = ""
        self.temp_dir = ""                # a bundle made for this session, removed at quit
        self.setup: lifecycle.Setup | None = None
        self.st: dict | None = None       # state.json once created
        self.started = False
        self.breakpoints: list[Breakpoint] = []
        self._next_bp = 1
        self.tracing = False
        self.watching = False
        self.catch_exec = 0               # >0: trace that many calls after the user's execve
        self.stops: list[diffmod.Snapshot] = []
        self._last: diffmod.Snapshot | None = None
        self._report: StepReport | None = None
        self._tracer: Tracer | None = None
        self._stdin_w = -1
        self.exec_pids: dict[int, str] = {}  # exec'd processes not reaped yet -> container id
        S.prctl(S.PR_SET_CHILD_SUBREAPER, 1)

    # -- what is loaded ----------------------------------------------------------------------
    @property
    def engine(self) -> Engine | None:
        return self.setup.engine if self.setup else None

    @property
    def in_setup(self) -> bool:
        return self.setup is not None and self.st is None

    def status(self) -> str:
        """none, setting up, failed, or the runtime's status once created."""
        if self.setup is None and self.st is None:
            return "none"
        if self.in_setup:
            return "failed" if self.setup.engine.failed else "setting up"
        try:
            return state.status(self.root, state.load(self.root, self.cid))
        except state.NotExist:
            return "deleted"

    def position(self) -> str:
        """Where setup stands: the next step, or what comes after setup."""
        if not self.in_setup:
            return "setup done" if self.st else "-"
        step = self.setup.engine.next_step
        return "-" if step is None else f"{step[0].name} {step[1]}".strip()

    def target(self) -> Target | None:
        """The container process to inspect, or None when there is none (any more)."""
        if self.in_setup:
            ctx = self.setup.ctx
            if ctx.pid <= 0:
                return None
            return Target(ctx.pid, ctx.rootfs, ctx.cgroup.paths() if ctx.cgroup else {})
        if self.st is None or not state.alive(self.st):
            return None
        cg = self.st.get("cgroup") or {}
        return Target(self.st["pid"], self.st.get("rootfs", ""), dict(cg.get("paths") or {}))

    # -- load, restart, teardown -------------------------------------------------------------
    def load(self, bundle: str, cid: str | None = None, temp_dir: str = "") -> None:
        """Build the Setup (state dir, exec.fifo, engine) and start the container side."""
        self.teardown()
        cid = cid or f"debug-{uuid.uuid4().hex[:6]}"
        self.setup = lifecycle.Setup(self.root, cid, bundle, observer=self)
        self.bundle, self.cid, self.temp_dir = self.setup.ctx.bundle, cid, temp_dir
        self._spawn()
        self.stops = []
        self._last = self._snapshot("at load, before " + self.position())
        self.stops.append(self._last)

    def _spawn(self) -> None:
        assert self.setup is not None
        # the container's stdin: a pipe the shell holds and never writes, so `sh` waits
        r, self._stdin_w = os.pipe()
        try:
            # wait_ready: what `load` inspects, and then traces, is C1 running container_main
            self.setup.engine.spawn(stdin_fd=r, own_group=True, wait_ready=True)
        finally:
            os.close(r)

    def restart(self) -> None:
        """Tear the container down and set it up again from the same bundle, breakpoints kept."""
        if not self.bundle:
            raise OcishError("nothing loaded: load a bundle first")
        bundle, cid, temp = self.bundle, self.cid, self.temp_dir
        self.temp_dir = ""  # keep the session's bundle across the restart
        self.load(bundle, cid, temp)

    def teardown(self, keep: bool = False) -> list[str]:
        """Remove the container and all it holds (process, cgroups, state dir); with `keep`, a
        started container stays. Returns notices for the user."""
        notes, kept = [], False
        try:
            if self.in_setup:
                self.setup.abort()
            elif self.st is not None and self.status() != "deleted":
                kept = keep and self.started
                if kept:
                    notes.append(f"container {self.cid} kept running (pid {self.st['pid']}); "
                                 f"`ocish --root {self.root} delete -f {self.cid}` removes it")
                else:
                    self._end_execs(self.cid)
                    lifecycle.delete(self.root, self.cid, force=True)
        finally:
            if self._stdin_w >= 0:
                os.close(self._stdin_w)
                self._stdin_w = -1
            self.reap()
            if self.temp_dir and not kept:
                shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.setup, self.st, self.started = None, None, False
            self.bundle = self.cid = self.temp_dir = ""
        return notes

    def reap(self) -> list[str]:
        """Collect exited children (the container's init comes back to us); say if it was the
        container."""
        notes = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self.st is not None and pid == self.st["pid"]:
                notes.append(f"container process {pid} exited: {exit_text(status)}")
            elif self.exec_pids.pop(pid, None) is not None:
                notes.append(f"exec process {pid} exited: {exit_text(status)}")
        return notes

    def _end_execs(self, cid: str) -> None:
        """Kill and reap the exec'd processes of container `cid` that are still our children:
        the container's init cannot finish dying while one of its pid namespace is left
        unreaped by a parent outside it (this shell, their subreaper)."""
        for pid in [p for p, c in self.exec_pids.items() if c == cid]:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.exec_pids.pop(pid, None)

    # -- stepping ----------------------------------------------------------------------------
    def _require_setup(self) -> lifecycle.Setup:
        if self.setup is None:
            raise OcishError("nothing loaded: load a bundle first")
        if self.st is not None:
            raise OcishError("setup is complete: the container is created (start runs it)")
        if self.setup.engine.failed:
            raise OcishError(f"{self.setup.engine.failed}: `restart` or `quit`")
        return self.setup

    def step(self, count: int = 1) -> Generator[StepReport, None, None]:
        """Run `count` steps; fewer when one fails, setup completes or a breakpoint comes."""
        try:
            for n in range(count):
                report = self._step()
                yield report
                if report.error or report.created:
                    break
                if n < count - 1 and self._hit_breakpoint():
                    break
        finally:
            self._mark_stop()

    def cont(self) -> Generator[StepReport, None, None]:
        """Run steps until a breakpoint, a failure or the end of setup."""
        try:
            while True:
                report = self._step()
                yield report
                if report.error or report.created or self._hit_breakpoint():
                    break
        finally:
            self._mark_stop()

    def _hit_breakpoint(self) -> bool:
        bp = self.breakpoint_ahead()
        if bp is not None:
            bp.hits += 1
        return bp is not None

    def _step(self) -> StepReport:
        setup = self._require_setup()
        stage, item = setup.engine.next_step
        self._report = report = StepReport(stage.name, item, stage.side)
        try:
            setup.engine.step()
        except StageError as err:
            report.error = err
        finally:
            self._stop_trace()  # also when the step broke outside the observer's hooks
            self._report = None
        snap = self._snapshot(f"after {stage.name} {item}".strip())
        if self.watching and self._last is not None:
            report.changes = diffmod.diff(self._last, snap)
        self._last = snap
        if setup.engine.done and not report.error:
            self.st = report.created = setup.finish()
        return report

    def _snapshot(self, label: str) -> diffmod.Snapshot:
        return diffmod.take(self.target(), label)

    def _mark_stop(self) -> None:
        if self._last is not None and (not self.stops or self.stops[-1] is not self._last):
            self.stops.append(self._last)
            del self.stops[:-2]

    def last_diff(self) -> tuple[list[str], str]:
        """(diff lines between the last two stops, or [] with a reason)."""
        if len(self.stops) < 2:
            return [], "only one stop so far: step first"
        lines = diffmod.diff(self.stops[-2], self.stops[-1])
        before, after = self.stops[-2].label, self.stops[-1].label
        return lines, "" if lines else f"no change between {before!r} and {after!r}"

    # -- the Observer hooks: the engine calls these around each step ---------------------------
    def before(self, engine: Engine, stage: Stage, item: str) -> None:
        if not self.tracing or self._report is None:
            return
        if stage.side != CONTAINER:
            self._report.trace_note = "host-side stage: run by the shell itself, nothing traced"
            return
        tracer = Tracer(engine.ctx.pid)
        err = tracer.start()
        if err:
            self._report.trace_note = f"not traced: {err}"
        else:
            self._tracer = tracer

    def after(self, engine: Engine, stage: Stage, item: str) -> None:
        self._stop_trace()

    def failed(self, engine: Engine, stage: Stage, item: str, err: StageError) -> None:
        self._stop_trace()

    def _stop_trace(self) -> None:
        if self._tracer is not None:
            result = self._tracer.stop()
            self._tracer = None
            if self._report is not None:
                self._report.trace = result

    # -- breakpoints -------------------------------------------------------------------------
    def add_breakpoint(self, args: list[str]) -> Breakpoint:
        """`STAGE`, `STAGE ITEM` or `mount DEST` (the mounts item whose destination is DEST)."""
        if self.setup is None:
            raise OcishError("nothing loaded: load a bundle first")
        ctx, stages = self.setup.ctx, {s.name: s for s in self.setup.engine.stages}
        if args[0] == "mount" and "mount" not in stages:
            if len(args) != 2:
                raise OcishError("usage: break mount DESTINATION")
            dest = os.path.normpath(args[1])
            mounts = ctx.spec.get("mounts") or []
            items = [f"/mounts/{i}" for i, m in enumerate(mounts)
                     if os.path.normpath(m.get("destination", "")) == dest]
            if not items:
                raise OcishError(f"no mount with destination {dest} in config.json /mounts")
            name = "mounts"
        else:
            name, items = args[0], args[1:2]
            if name not in stages:
                raise OcishError(f"no stage {name!r}: stages are {', '.join(stages)}")
            if items and items[0] not in stages[name].items(ctx):
                raise OcishError(f"stage {name} has no item {items[0]!r}: "
                                 f"{', '.join(stages[name].items(ctx)) or 'it has no items'}")
        bp = Breakpoint(self._next_bp, name, items, " ".join(args))
        self._next_bp += 1
        self.breakpoints.append(bp)
        return bp

    def delete_breakpoint(self, number: int) -> None:
        before = len(self.breakpoints)
        self.breakpoints = [b for b in self.breakpoints if b.number != number]
        if len(self.breakpoints) == before:
            raise OcishError(f"no breakpoint number {number}")

    def _breakpoints_at(self, pos: int) -> list[Breakpoint]:
        steps = self.setup.engine.steps
        stage, item = steps[pos]
        first_of_stage = pos == 0 or steps[pos - 1][0] is not stage
        return [b for b in self.breakpoints if b.stage == stage.name
                and (item in b.items if b.items else first_of_stage)]

    def breakpoint_ahead(self) -> Breakpoint | None:
        """The breakpoint set on the next step, if any."""
        if not self.in_setup or self.setup.engine.done:
            return None
        hits = self._breakpoints_at(self.setup.engine.pos)
        return hits[0] if hits else None

    # -- the pipeline as rows for `stages` -----------------------------------------------------
    def pipeline(self) -> list[StageRow]:
        if self.setup is None:
            raise OcishError("nothing loaded: load a bundle first")
        engine, ctx = self.setup.engine, self.setup.ctx
        pos = len(engine.steps) if self.st is not None else engine.pos
        rows: dict[str, StageRow] = {}
        for i, (stage, item) in enumerate(engine.steps):
            status = ("done" if i < pos else "failed" if i == pos and engine.failed
                      else "next" if i == pos else "pending")
            bps = [b.number for b in self._breakpoints_at(i)]
            row = rows.get(stage.name)
            if row is None:
                summary = (stage.describe(ctx).splitlines() or [stage.summary])[0]
                row = rows[stage.name] = StageRow(stage.name, stage.side, status, summary, bps)
            elif status != "pending" and row.status == "done":
                row.status = status
            if item:
                row.items.append(ItemRow(item, _item_text(stage, ctx, item), status, bps))
        return list(rows.values())

    def explain(self, name: str | None) -> str:
        if self.setup is None:
            raise OcishError("nothing loaded: load a bundle first")
        stages = {s.name: s for s in self.setup.engine.stages}
        if name is None:
            step = self.setup.engine.next_step
            if step is None:
                raise OcishError("setup is complete: name a stage")
            name = step[0].name
        if name not in stages:
            raise OcishError(f"no stage {name!r}: stages are {', '.join(stages)}")
        stage = stages[name]
        return f"{stage.name} ({stage.side} side)\n{stage.describe(self.setup.ctx)}"

    # -- lifecycle, through runtime.lifecycle as the CLI does ----------------------------------
    def _created(self) -> dict:
        if self.st is None:
            raise OcishError("the container is not created yet: `continue` to finish its setup")
        return self.st

    def start(self) -> TraceResult | None:
        """lifecycle.start; with `catch exec`, the init is traced across its execve."""
        st = self._created()
        tracer = None
        if self.catch_exec and state.alive(st):
            tracer = Tracer(st["pid"], "exec", self.catch_exec)
            err = tracer.start()
            if err:
                raise OcishError(f"catch exec: {err}")
        try:
            lifecycle.start(self.root, self.cid)
            self.started = True
        finally:
            result = None
            if tracer is not None:
                tracer.wait(5.0)
                result = tracer.stop()
        self._last = self._snapshot("after start")
        self._mark_stop()
        return result

    def oci_state(self, cid: str | None = None) -> dict:
        if cid is None:
            self._created()
        return lifecycle.oci_state(self.root, cid or self.cid)

    def ps(self, cid: str | None = None) -> list[int]:
        from runtime import cgroups
        if cid is None and self.in_setup:
            manager = self.setup.ctx.cgroup
            if manager is None:
                raise OcishError("no cgroup yet: the cgroup stage makes it")
            return manager.pids()
        st = state.load(self.root, cid) if cid else self._created()
        if not st.get("cgroup"):
            return [st["pid"]] if state.alive(st) else []
        return cgroups.from_state(st["cgroup"]).pids()

    def _manager(self):
        from runtime import cgroups
        st = self._created()
        if not st.get("cgroup"):
            raise OcishError("the container has no cgroup")
        return cgroups.from_state(st["cgroup"])

    def pause(self) -> None:
        if self.status() != "running":
            raise OcishError(f"container is not running: {self.status()}")
        self._manager().freeze()

    def resume(self) -> None:
        if self.status() != "paused":
            raise OcishError(f"container is not paused: {self.status()}")
        self._manager().thaw()

    def kill(self, sig: int, all_: bool = False) -> None:
        self._created()
        lifecycle.kill(self.root, self.cid, sig, all_)

    def delete(self, force: bool = False) -> None:
        self._created()
        if force or self.status() not in ("running", "paused"):
            self._end_execs(self.cid)
        lifecycle.delete(self.root, self.cid, force)
        self.reap()

    # -- exec, through runtime.execprocess as `ocish exec` ---------------------------------------
    def exec(self, args: list[str], cid: str | None = None, *, detach: bool = False,
             user: str | None = None, cwd: str | None = None, env: list[str] = (),
             stdin_fd: int | None = None) -> tuple[int, int | None]:
        """Run one more process in the loaded container (created or running), or in container
        `cid` under the root: (its host pid, its exit status; None with `detach`). Its stdout
        and stderr are ours; stdin is `stdin_fd` (default: ours). A detached process is put
        in its own process group (Ctrl-C at the shell must not reach it), and comes back to
        us, its subreaper: reap() reports it, teardown kills it."""
        from runtime import execprocess
        if cid is None:
            if self.setup is None and self.st is None:
                raise OcishError("exec: nothing loaded: load a bundle first (or exec --id ID)")
            if self.st is None:
                raise OcishError("exec: the container is not set up yet: `continue` to finish "
                                 "its setup, then exec")
            cid = self.cid
        started: list[int] = []

        def on_start(pid: int) -> None:
            started.append(pid)
            self.exec_pids[pid] = cid
        status = execprocess.run(self.root, cid, args, detach=detach, user=user, cwd=cwd,
                                 env=list(env), stdin_fd=stdin_fd, own_group=detach,
                                 on_start=on_start, keep_signals=(signal.SIGTERM, signal.SIGHUP))
        if detach:
            return started[0], None
        self.exec_pids.pop(started[0], None)  # lifecycle.wait_foreground reaped it
        return started[0], status


def _item_text(stage: Stage, ctx, item: str) -> str:
    """The line of describe() about this item ("/mounts/1: mount(2) ..."), else the item."""
    for line in stage.describe(ctx).splitlines():
        if line.startswith(item + ":"):
            return line[len(item) + 1:].strip()
    return ""
