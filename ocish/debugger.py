"""The debugger: drives the runtime's own engine one step at a time, as its Observer (pdb over bdb).

A `Debugger` holds one container: first a `runtime.lifecycle.Setup` whose engine it steps,
then, after `Setup.finish()` (exactly what `create` does), a created container handled with the
same lifecycle functions as the CLI; or a container found under --root (`attach`); or a
container of another runtime (runc, crun, podman, containerd, Docker, or a bare pid:
ocish/foreign.py), held read-only: inspected, diffed over time, traced and exec'd into, never changed unless the
session was opened with --allow-changes (then through that runtime's own commands). It never
prints: it returns data (Run, Stop, StepReport, rows, dicts) that the shell renders and
scripts compare.

The death of the container process is news: the debugger reaps it (it is the process's parent
or subreaper), keeps its wait status, and says once how it died (`news()`, a step's `death`,
`start`'s result), with the cgroup's evidence (OOM kills, forks refused); the cgroup and exit
topics still answer afterwards.

The container side is started at load time (a fresh interpreter spawned from a sealed copy of
ours, runtime/linux/exeseal.py), so it can be inspected before the first stage. It gets a pipe
as stdin (the shell owns the terminal; the pipe is never written, so an interactive `sh` waits
instead of exiting) and its own process group (Ctrl-C at the shell must not reach it). The
shell is a child subreaper: the container's init is reparented to it when C1 exits, and it
reaps what it kills.
"""
from __future__ import annotations

import difflib
import os
import shutil
import signal
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ocish import diff as diffmod
from ocish.catch import Held, Released, release
from ocish.exec_step import PREFIX, ExecLoaded
from ocish import inspect
from ocish.inspect import Target
from ocish.foreign import Foreign
from ocish.inspect.exit import ExitInfo, describe_status
from ocish.trace import TraceResult, Tracer
from runtime import lifecycle, state
from runtime.engine import CONTAINER, Engine, Observer, Stage
from runtime.errors import ConfigNotJson, OcishError, SpecError, StageError
from runtime.linux import procfs
from runtime.linux import syscalls as S


@dataclass
class Breakpoint:
    number: int
    stage: str
    items: list[str]         # stop before these items; [] for the stage's first step
    label: str               # as the user typed it
    hits: int = 0            # crossings, ignored ones included (gdb's "already hit N times")
    enabled: bool = True
    temporary: bool = False  # tbreak: deleted when it stops a run
    ignore: int = 0          # crossings still to ignore (gdb's `ignore N COUNT`)
    condition: str = ""      # `break STAGE if COND`: stops only where COND holds (condition.py)
    on_error: bool = False   # `break on error`: before any step that fails


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
    death: ExitInfo | None = None        # the container process died during this step
    cause: str = ""                      # a failure's evidence in the cgroup (forks refused...)
    cause_pointer: str = ""              # ... and the config.json field behind it
    interrupted: str = ""                # Ctrl-C killed the hook this step ran: what happened
    reoffered: bool = False              # `break on error`: it failed, and is the next step again
    exec_pid: int = 0                    # `exec --step`: this step started the exec's process
    held: str = ""                       # ... and `catch exec` holds it after its execve


@dataclass
class Stop:
    """Where a run of steps stopped and why: `reason` is step (the count ran out), stage
    (`next`/`until` reached its target), breakpoint, failed, died, created or interrupted."""
    reason: str
    next: str = ""                       # the next step ("mounts /mounts/0"), "" after setup
    text: str = ""                       # what it will do
    breakpoint: int = 0                  # the breakpoint that stopped the run
    temporary: bool = False              # ... a tbreak, now deleted
    failing: str = ""                    # `break on error`: the call the next step fails with


@dataclass
class Run:
    """What step, next, until and continue did: every step's report, then the stop."""
    steps: list[StepReport]
    stop: Stop


@dataclass
class Started:
    """What `start` did: the container's process runs, or died at once (its execve failed,
    or it ended within the moment start watches it)."""
    id: str
    pid: int
    running: bool
    exit: ExitInfo | None = None
    catch: TraceResult | None = None
    held: str = ""                       # `catch exec`: "stopped after execve of /bin/sh"


@dataclass
class News:
    """Something that happened between or during commands: kind "died" (the container process;
    `exit` says how) or "exited" (a detached exec'd process)."""
    kind: str
    pid: int
    text: str
    exit: ExitInfo | None = None


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


@dataclass
class Exec:
    """An exec'd process: its host pid, its exit status (128+N when killed by signal N; None
    while it runs detached) and, when captured, its output."""
    pid: int
    status: int | None
    stdout: str | None = None
    stderr: str | None = None
    waiting: bool = False                # --ignore-paused: `pid` is the exec waiting for resume


@dataclass
class LiveTrace:
    """What `trace --for SECONDS` saw of a running process: its calls, for how long it was
    traced (less when Ctrl-C ended it), and its state once detached (never stopped: S, R, D)."""
    pid: int
    seconds: float
    result: TraceResult
    interrupted: bool
    state_after: str


@dataclass
class Explanation:
    stage: str
    side: str
    text: str                            # describe(): what it will do with this config


# seconds `kill KILL` waits for the init to die: dying takes milliseconds (more for a process
# with much memory to free), so this is only an upper bound
KILL_WAIT = 5.0


class Debugger(Observer):
    one_by_one = True  # it may stop between any two steps (engine.Observer)

    def __init__(self, root: str) -> None:
        self.root = root
        self.cid = ""
        self.bundle = ""
        self.temp_dir = ""                # a bundle made for this session, removed at quit
        self.setup: lifecycle.Setup | None = None
        self.st: dict | None = None       # state.json once created (or attached)
        self.started = False
        self.attached = False             # a container found under --root, not set up by us
        self.foreign: Foreign | None = None  # ... or one of another runtime (read-only)
        self.load_error = ""              # why the bundle's config was refused at load
        self.refused = ""                 # the bundle whose config the last load refused
        self.interrupted_at = ""          # a hook step that Ctrl-C cut short: what happened
        self._killed_hooks = False        # ... during the step that runs now
        self.breakpoints: list[Breakpoint] = []
        self._next_bp = 1
        self.trace_mode = ""              # "", "state" (calls that change state) or "all"
        self.watching = False
        self.catching = False             # `catch exec`: hold the process after its execve
        self.catch_exec = 0               # ... and trace that many of its calls on `continue`
        self.held: Held | None = None     # the process held there now
        self.exec_setup = None            # `exec --step`: the ExecSetup being stepped
        self._conditions: dict[int, list] = {}  # breakpoint number -> its parsed condition
        self._reoffered_at = -1           # `break on error` stopped before this step
        self._error_breakpoint: Breakpoint | None = None  # ... the breakpoint that did
        self.stops: list[diffmod.Snapshot] = []
        self._last: diffmod.Snapshot | None = None
        self._report: StepReport | None = None
        self._tracer: Tracer | None = None
        self._stdin_w = -1
        self.exec_pids: dict[int, str] = {}  # exec'd processes not reaped yet -> container id
        # `exec -d --ignore-paused` runs waiting for `resume`: their pid -> (container, pid file)
        self._waiting_execs: dict[int, tuple[str, str]] = {}
        self._later: list[News] = []         # news found while reaping
        self._status: dict[int, int] = {}    # wait status of the container process, once reaped
        self.death: ExitInfo | None = None   # how the container process died, once told
        self._sent: set[int] = set()         # signals `kill` sent to the init
        # signals a foreground exec leaves to us instead of forwarding them to its process
        # (replay adds SIGINT: Ctrl-C stops a replay, not just the command it runs)
        self.exec_keeps: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)
        S.prctl(S.PR_SET_CHILD_SUBREAPER, 1)
        self.step_log = None  # runtime.cli.StepLog with the global --debug: each step's time

    # -- what is loaded ----------------------------------------------------------------------
    @property
    def engine(self) -> Engine | None:
        return self.setup.engine if self.setup else None

    @property
    def in_setup(self) -> bool:
        return self.setup is not None and self.st is None

    @property
    def stepped(self):
        """What step, next, until and continue drive: an exec being stepped, else the
        container's setup (None when neither)."""
        return self.exec_setup if self.exec_setup is not None else (
            self.setup if self.in_setup else None)

    @property
    def prefix(self) -> str:
        """How breakpoints name the stepped pipeline's stages: "exec:" for an exec's."""
        return PREFIX if self.exec_setup is not None else ""

    @property
    def tracing(self) -> bool:
        return bool(self.trace_mode)

    def status(self) -> str:
        """none, setting up, failed, died (during setup), or the runtime's status once
        created."""
        if self.foreign is not None:
            return self.foreign.status()
        if self.setup is None and self.st is None:
            return "none"
        if self.in_setup:
            if self.death is not None or self.is_dead(self.setup.ctx.pid):
                return "died"
            if self.interrupted_at:
                return "interrupted"
            return "failed" if self.setup.engine.failed else "setting up"
        try:
            return state.status(self.root, state.load(self.root, self.cid))
        except state.NotExist:
            return "deleted"

    def position(self) -> str:
        """Where setup stands: the next step, or what comes after setup."""
        if self.exec_setup is not None:
            step = self.exec_setup.engine.next_step
            return "-" if step is None else f"{PREFIX}{step[0].name} {step[1]}".strip()
        if not self.in_setup:
            return "setup done" if self.st else "-"
        step = self.setup.engine.next_step
        return "-" if step is None else f"{step[0].name} {step[1]}".strip()

    def container_pid(self) -> int:
        """The host pid of the container process (C1, then its init), 0 when there is none."""
        if self.foreign is not None:
            return self.foreign.pid
        if self.in_setup:
            return max(self.setup.ctx.pid, 0)
        return self.st["pid"] if self.st else 0

    def target(self) -> Target | None:
        """The container process to inspect, dead or alive (Target.status is set once it is
        reaped), or None when there is none."""
        # the exec's process, between its stages, or held by `catch exec` after them
        execd = (self.exec_setup.ctx.pid if self.exec_setup is not None else
                 self.held.pid if self.held is not None and self.st is not None else 0)
        in_created = execd and self.st is not None and execd != self.st["pid"]
        pid = execd if in_created else self.container_pid()
        if pid <= 0:
            return None
        if self.foreign is not None:  # its cgroups as the kernel has them
            f = self.foreign
            return Target(pid, f.rootfs, f.cgroup_paths() if f.alive() else {}, None,
                          (f.config.get("linux") or {}).get("resources"))
        if self.in_setup:
            ctx = self.setup.ctx
            rootfs, paths = ctx.rootfs, ctx.cgroup.paths() if ctx.cgroup else {}
            resources = ctx.linux.get("resources")
        else:
            cg = self.st.get("cgroup") or {}
            rootfs, paths = self.st.get("rootfs", ""), dict(cg.get("paths") or {})
            resources = self._created_spec().get("linux", {}).get("resources")
        return Target(pid, rootfs, paths, self._status.get(pid), resources)

    def config(self) -> dict:
        """The container's config.json: as its setup read it, or as it was created with ({}
        when nothing is loaded)."""
        if self.foreign is not None:
            return self.foreign.config
        if self.setup is not None:
            return self.setup.ctx.spec
        return self._created_spec() if self.st is not None else {}

    def _created_spec(self) -> dict:
        """config.json as the container was created with it (kept in its state dir)."""
        from runtime import jsonfast
        try:
            with open(os.path.join(state.container_dir(self.root, self.cid), "config.json")) as f:
                return jsonfast.loads(f.read())
        except (OSError, ValueError):
            return {}

    def is_dead(self, pid: int) -> bool:
        """Whether pid, a container process of this session, has died (reaped by us, or gone
        or a zombie in /proc); for a created container, a reused pid counts as dead."""
        if pid <= 0:
            return False
        if pid in self._status:
            return True
        if self.foreign is not None and pid == self.foreign.pid:
            return not self.foreign.alive()
        if self.st is not None and pid == self.st["pid"]:
            return not state.alive(self.st)
        return procfs.proc_state(pid) in ("", "Z", "X")

    def wait_status(self, pid: int, timeout: float) -> int | None:
        """The wait status of the container process `pid` once it died (up to `timeout` s for
        it to die and be reaped by us, its parent or subreaper); None while it lives, or when
        another process reaped it."""
        deadline = time.monotonic() + timeout
        self.await_death(pid, timeout)
        # a traced process (strace -f's, diagnose's re-run) is a zombie in /proc before its
        # tracer has seen its end; only then can its parent wait for it (ptrace(2))
        while pid not in self._status and procfs.proc_state(pid) == "Z" \
                and time.monotonic() < deadline:
            time.sleep(0.002)
            self._reap()
        return self._status.get(pid)

    def exit_info(self, when: str = "") -> ExitInfo | None:
        """How the container process ended (inspect's exit topic), None when there is none."""
        t = self.target()
        if t is None:
            return None
        info = inspect.read("exit", t)
        info.when = when
        return info

    def _evidence(self) -> tuple[str, str]:
        """What the container's cgroup counters say about a failure (exit.evidence)."""
        t = self.target()
        if t is None or not t.cgroup_paths:
            return "", ""
        from ocish.inspect import cgroup as cgroupmod
        from ocish.inspect.exit import evidence
        try:
            return evidence(cgroupmod.read(t), killed=False)
        except OSError:
            return "", ""

    def readable(self, topic: str) -> Target:
        """The target for `inspect TOPIC`; once the process is dead, only the topics that still
        answer (cgroup, exit) get it, the others an error that says how it died."""
        t = self.target()
        if t is None:
            raise OcishError("no container process to inspect" +
                             ("" if self.cid else ": load a bundle first"))
        if topic not in inspect.AFTER_DEATH and self.is_dead(t.pid):
            self._reap()
            info = self.death or self.exit_info()
            raise OcishError(f"the container process {t.pid} is dead ({info.how}): only "
                             f"`inspect {'` and `inspect '.join(inspect.AFTER_DEATH)}` still answer; "
                             f"{self.diagnose_hint()}")
        return t

    def nothing_loaded(self) -> OcishError:
        if self.foreign is not None:
            return OcishError(f"{self.foreign.label} was not set up by this session: its "
                              "stages are not known here (attach inspects it as it runs)")
        if self.load_error:
            return OcishError(f"nothing loaded: {self.load_error} (bundle {self.bundle}): fix "
                              "config.json, then `restart`")
        return OcishError("nothing loaded: load a bundle first")

    def diagnose_hint(self) -> str:
        return f"`ocish diagnose {self.bundle or 'BUNDLE'}` looks for the cause"

    # -- load, attach, restart, teardown --------------------------------------------------------
    @property
    def holds(self) -> bool:
        """Whether a container is held (being set up, created or attached): what a load, an
        attach or a restart replaces."""
        return self.setup is not None or self.st is not None or self.foreign is not None

    def check_load(self, bundle: str, cid: str, frees_id: bool) -> None:
        """What `load` (or `restart`) would refuse, found without touching the held container:
        a bad id, an id another container has (`frees_id`: the held one, which the load
        replaces), no bundle, a config.json the runtime refuses (SpecError, ConfigNotJson)."""
        from runtime import spec as specmod
        state.validate_id(cid)
        if not frees_id and os.path.lexists(state.container_dir(self.root, cid)):
            root = "" if self.root == _default_root() else f"--root {self.root} "
            raise OcishError(f"container with id exists: {cid} (`ocish {root}state {cid}` "
                             f"shows it, `ocish {root}delete -f {cid}` removes it, `--id` "
                             "picks another)")
        specmod.load(bundle)

    def load(self, bundle: str, cid: str | None = None, temp_dir: str = "",
             replacing: Callable[[], None] | None = None) -> None:
        """Build the Setup (state dir, exec.fifo, engine) and start the container side. The new
        bundle is checked first (check_load): when it is refused, the held container stays as
        it is (the error says so; `refused` names the bundle). With nothing held, a refused
        config.json (not JSON, or a SpecError) stays remembered: fix it, `restart`. Once the
        check passed and before the held container goes, `replacing()` runs: it may raise to
        keep it (the shell asks first)."""
        cid = cid or f"debug-{uuid.uuid4().hex[:6]}"
        bundle = os.path.abspath(bundle)
        self.refused = ""
        try:
            self.check_load(bundle, cid, frees_id=cid == self.cid and not self.attached)
        except OcishError as e:
            refused = isinstance(e, (SpecError, ConfigNotJson))
            self.refused = bundle if refused else ""
            if self.holds:
                raise _refusal(e, self.kept_text()) from None
            if not refused:
                raise
            self.teardown()
            self.bundle, self.cid, self.temp_dir, self.load_error = bundle, cid, temp_dir, str(e)
            raise _refusal(e, "fix config.json, then `restart` reads it again") from None
        if replacing is not None and self.holds:
            replacing()
        self.teardown()
        self.bundle, self.cid, self.temp_dir = bundle, cid, temp_dir
        try:
            self.setup = lifecycle.Setup(self.root, cid, bundle, observer=self)
        except BaseException:
            self.bundle = self.cid = self.temp_dir = ""
            raise
        self._spawn()
        self.stops = []
        self._last = self._snapshot("at load, before " + self.position())
        self.stops.append(self._last)

    def kept_text(self) -> str:
        """The held container, said to be kept (after a load, attach or restart that failed)."""
        pid = self.container_pid()
        return (f"container {self.cid} is kept ({self.status()}"
                + (f", pid {pid})" if pid > 0 else ")"))

    def attach(self, cid: str, replacing: Callable[[], None] | None = None,
               runtime: str | None = None, root: str | None = None,
               allow_changes: bool = False) -> dict:
        """Take over container `cid` under --root (created, running, paused or stopped), as the
        lifecycle commands see it: start, exec, inspect, kill, delete. Or, when it is none of
        ours (or `runtime` names another), hold another runtime's container read-only
        (ocish/foreign.py: `cid` an id in `root`, a podman/Docker name, a host pid);
        `allow_changes` lets start, kill, pause, resume and delete through its own runtime.
        Returns its state. A container that cannot be attached leaves the held one as it is;
        `replacing()` runs before the held one goes, as for load."""
        if cid == self.cid and self.holds:
            raise OcishError(f"container {cid} is this session's already")
        try:
            st, found = self.find_container(cid, runtime, root)
        except OcishError as e:
            raise OcishError(f"attach {cid}: {e}" + (f": {self.kept_text()}" if self.holds
                                                      else "")) from None
        if replacing is not None and self.holds:
            replacing()
        self.teardown()
        self.stops = []
        if found is not None:
            found.allow_changes = allow_changes
            self.foreign, self.cid, self.bundle, self.attached = found, found.id, found.bundle, True
            self.started = found.status() != "created"
            self._last = self._snapshot(f"at attach to {found.label}")
            self.stops.append(self._last)
            return found.oci_state()
        self.st, self.cid, self.bundle, self.attached = st, cid, st["bundle"], True
        self.started = state.status(self.root, st) != "created"
        self._last = self._snapshot(f"at attach to {cid}")
        self.stops.append(self._last)
        return lifecycle.oci_state(self.root, cid)

    def find_container(self, ref: str, runtime: str | None,
              root: str | None) -> tuple[dict | None, Foreign | None]:
        """(our state.json, None) for a container of ours under --root, else (None, the
        other runtime's container): ours first unless --runtime or another --root says
        otherwise; a runc or crun state dir under our own --root is read as theirs."""
        from ocish import foreign
        if runtime not in (None, *foreign.RUNTIMES):
            raise OcishError(f"unknown runtime {runtime!r}: one of {', '.join(foreign.RUNTIMES)}")
        if runtime == "ocish" and root not in (None, self.root):
            raise OcishError(f"--runtime ocish looks under the session's --root {self.root}, "
                             f"not {root}")
        if runtime == "ocish" or runtime is None and root in (None, self.root):
            try:
                return state.load(self.root, ref), None
            except state.NotOurs:
                if runtime == "ocish":
                    raise
                found = foreign.in_root(ref, "", self.root)
                if found is not None:
                    return None, found
            except state.NotExist:
                if runtime == "ocish":
                    raise
            except OcishError:  # not a valid id: a podman name with "/", say
                if runtime == "ocish" or not ref.isascii() or not ref.isdigit():
                    raise
        theirs = None if root == self.root else root
        try:
            return None, foreign.find(ref, runtime, theirs)
        except foreign.NotFound as e:
            if runtime is None and theirs is None:  # ours were looked at first
                raise foreign.NotFound(str(e).replace(" in ", f" in {self.root} (ocish), ", 1))
            raise

    def _spawn(self) -> None:
        assert self.setup is not None
        # the container's stdin: a pipe the shell holds and never writes, so `sh` waits
        r, self._stdin_w = os.pipe()
        try:
            # wait_ready: what `load` inspects, and then traces, is C1 running container_main
            self.setup.engine.spawn(stdin_fd=r, own_group=True, wait_ready=True)
        finally:
            os.close(r)

    def restart(self, replacing: Callable[[], None] | None = None) -> None:
        """Tear the container down and set it up again from the same bundle (config.json read
        again), breakpoints kept. A config.json the runtime now refuses leaves the held
        container as it is (`refused` names the bundle); `replacing()` runs before the held
        one goes, as for load."""
        if not self.bundle or self.foreign is not None:
            raise self.nothing_loaded()
        bundle, cid, temp = self.bundle, self.cid, self.temp_dir
        self.refused = ""
        if self.holds:
            try:
                self.check_load(bundle, cid, frees_id=True)
            except (SpecError, ConfigNotJson) as e:
                self.refused = bundle
                raise _refusal(e, f"{self.kept_text()}; fix config.json, then `restart` "
                                  "again") from None
            if replacing is not None:
                replacing()
        if self.attached:  # teardown leaves an attached container: restart replaces it
            self._end_execs(cid)
            lifecycle.delete(self.root, cid, force=True)
        self.temp_dir = ""  # keep the session's bundle across the restart
        self.load(bundle, cid, temp)

    def teardown(self, keep: bool = False) -> list[str]:
        """Remove the container and all it holds (process, cgroups, state dir); with `keep`, a
        created or started container stays, as an attached one always does (gdb detaches).
        Returns notices for the user."""
        notes, kept = [], False
        if self.held is not None:  # never leave it stopped: detach, it runs on (or dies below)
            self.release()
        self.exec_abort()
        try:
            if self.foreign is not None:  # never touched: detached, as gdb does
                kept = True
                notes.append(f"detached from {self.foreign.label} ({self.status()}, pid "
                             f"{self.foreign.pid}): left as it is")
            elif self.in_setup:
                self.setup.abort()
            elif self.st is not None and self.status() != "deleted":
                kept = keep or self.attached  # gdb detaches from a process it attached to
                if kept:
                    notes.append(self._kept_note())
                else:
                    self._end_execs(self.cid)
                    lifecycle.delete(self.root, self.cid, force=True)
        finally:
            if self._stdin_w >= 0:
                os.close(self._stdin_w)
                self._stdin_w = -1
            self._reap()
            if self.temp_dir and not kept:
                shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.setup, self.st, self.started, self.attached = None, None, False, False
            self.foreign = None
            self.bundle = self.cid = self.temp_dir = self.load_error = self.interrupted_at = ""
            self._status, self.death, self._sent = {}, None, set()
            self._reoffered_at = -1
        return notes

    def _kept_note(self) -> str:
        status = self.status()
        root = f"--root {self.root} " if self.root != _default_root() else ""
        back = (f"`ocish {root}start {self.cid}` runs its process, " if status == "created" else "")
        return (f"container {self.cid} kept ({status}, pid {self.st['pid']}): {back}"
                f"`ocish {root}attach {self.cid}` opens this shell on it again, "
                f"`ocish {root}delete -f {self.cid}` removes it")

    def _reap(self) -> list[tuple[int, int]]:
        """Collect exited children (the container's init comes back to us, its subreaper);
        keeps the container process's wait status. Returns (pid, status) of exec'd ones."""
        execs = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.container_pid():
                self._status[pid] = status
            elif self.exec_pids.pop(pid, None) is not None:
                execs.append((pid, status))
            elif pid in self._waiting_execs:
                self._exec_resumed(pid, status)
        return execs

    def _exec_resumed(self, pid: int, status: int) -> None:
        """The background `exec --ignore-paused -d` ended: its process runs (the container was
        resumed), or it failed (its error is on our stderr)."""
        cid, pid_file = self._waiting_execs.pop(pid)
        try:
            with open(pid_file) as f:
                started = int(f.read())
            os.unlink(pid_file)
        except (OSError, ValueError):
            self._later.append(News("exited", pid, f"exec --ignore-paused in {cid} failed: "
                                    f"{describe_status(status)}"))
            return
        self.exec_pids[started] = cid
        self._later.append(News("exec", started, f"exec process {started} running in {cid} "
                                "(the container was resumed)"))

    def news(self) -> list[News]:
        """What happened since the last call: exec'd processes that exited, and the death of
        the container process (told once)."""
        out = [News("exited", pid, f"exec process {pid} exited: {describe_status(status)}")
               for pid, status in self._reap()]
        out, self._later = self._later + out, []
        if self.held is not None and self.is_dead(self.held.pid):  # killed while held
            self.release()
        pid = self.container_pid()
        if self.death is None and pid > 0 and self.is_dead(pid):
            when = "during setup" if self.in_setup else (
                "after start" if self.started else "before start")
            info = self._tell_death(when)
            out.append(News("died", pid, self.death_text(info), info))
        return out

    def _tell_death(self, when: str) -> ExitInfo:
        # dead per /proc may still be a zombie nobody reaped: reap it, or its wait status
        # (the exit code, the signal) would be missing from what is told
        self.await_death(self.container_pid(), 0.5)
        self.death = self.exit_info(when)
        return self.death

    def death_text(self, info: ExitInfo) -> str:
        """One line: the process died, when, how, why (when the cgroup says), what next. An
        exit 0 after start, or the signal the user sent with `kill`, is no mystery."""
        sent = signal.Signals.__members__.get(info.signal) in self._sent  # by `kill`, started or not
        expected = not info.cause and (sent or (self.started and info.exit_code == 0))
        verb = "died" if not expected else "exited" if info.exit_code == 0 else "ended"
        text = f"the container process {info.pid} {verb} {info.when}: {info.how}".replace("  ", " ")
        if expected and info.signal:
            text += " (sent by `kill`)"
        if info.cause:
            text += f" -- {info.cause}" + (f" (config {info.pointer})" if info.pointer else "")
        if not expected:
            text += f"; {self.diagnose_hint()}"
            if self.in_setup:
                text += ", `restart` sets it up again"
        return text

    def await_death(self, pid: int, timeout: float) -> bool:
        """Wait up to `timeout` s for pid to be dead (and reaped when it is ours)."""
        deadline = time.monotonic() + timeout
        while True:
            self._reap()
            if self.is_dead(pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    def _end_execs(self, cid: str) -> None:
        """Kill and reap the exec'd processes of container `cid` that are still our children:
        the container's init cannot finish dying while one of its pid namespace is left
        unreaped by a parent outside it (this shell, their subreaper). A SIGKILLed process of
        a frozen (paused) v1 cgroup dies only once thawed: as runc's Signal does, the cgroup is
        thawed after the SIGKILLs, else the waitpid would wait for ever."""
        waiting = [p for p, (c, _) in self._waiting_execs.items() if c == cid]
        pids = [p for p, c in self.exec_pids.items() if c == cid] + waiting
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if pids and cid == self.cid and self.st is not None and self.st.get("cgroup"):
            from runtime import cgroups
            manager = cgroups.from_state(self.st["cgroup"])
            if manager.frozen():
                manager.thaw()
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self.exec_pids.pop(pid, None)
            if pid in self._waiting_execs:
                _, pid_file = self._waiting_execs.pop(pid)
                if os.path.exists(pid_file):
                    os.unlink(pid_file)

    # -- stepping ----------------------------------------------------------------------------
    def _require_setup(self):
        """What the next steps run: an exec being stepped, else the container's setup; an
        error that says why there is nothing to step."""
        if self.exec_setup is not None:
            return self.exec_setup
        if self.setup is None:
            raise self.nothing_loaded()
        if self.st is not None:
            raise OcishError("setup is complete: the container is created (start runs it)")
        if self.death is not None:
            raise OcishError(f"the container process {self.death.pid} died during setup "
                             f"({self.death.how}): `restart` or `quit`")
        if self.interrupted_at:
            raise OcishError(f"interrupted at {self.interrupted_at}")
        if self.setup.engine.failed:
            raise OcishError(f"{self.setup.engine.failed}: `restart` or `quit`")
        return self.setup

    def advance(self, mode: str = "step", count: int = 1, stage: str = "", item: str = "",
                on_step: Callable[[StepReport], None] | None = None,
                interrupted: Callable[[], bool] = lambda: False) -> Run:
        """Run steps through the engine. mode: "step" (`count` steps), "next" (the rest of the
        current stage), "until" (up to the first step of `stage`, or its `item`), "continue"
        (to the end). Every mode also stops at an enabled breakpoint (gdb's ignore counts and
        temporary breakpoints honoured), a failure, the container process's death, the end
        of setup, or when `interrupted()` says so after a step."""
        setup = self._require_setup()
        current = setup.engine.next_step[0].name
        if mode == "until":
            stage = stage[len(PREFIX):] if self.prefix and stage.startswith(PREFIX) else stage
            self._check_until(stage, item)
        steps: list[StepReport] = []
        reason, bp = "", None
        try:
            while True:
                report = self._step()
                steps.append(report)
                if on_step is not None:
                    on_step(report)
                if report.interrupted:
                    reason = "interrupted"
                elif report.death is not None:
                    reason = "died"
                elif report.reoffered:
                    reason, bp = "breakpoint", self._error_breakpoint
                elif report.error is not None:
                    reason = "failed"
                elif report.created is not None:
                    reason = "created"
                elif report.exec_pid:
                    reason = "exec"
                else:
                    bp = self._hit_breakpoint()
                    nxt = setup.engine.next_step
                    if bp is not None:
                        reason = "breakpoint"
                    elif mode == "step" and len(steps) >= count:
                        reason = "step"
                    elif mode == "next" and nxt[0].name != current:
                        reason = "stage"
                    elif mode == "until" and nxt[0].name == stage and (
                            nxt[1] == item if item else self._first_of_stage(setup.engine.pos)):
                        reason = "stage"
                    elif interrupted():
                        reason = "interrupted"
                if reason:
                    break
        finally:
            self._mark_stop()
        stop = self.where(reason, bp)
        if reason == "breakpoint" and steps and steps[-1].reoffered:
            stop.failing = str(steps[-1].error)
        return Run(steps, stop)

    def _check_until(self, stage: str, item: str) -> None:
        engine = self.stepped.engine
        names = [s.name for s in engine.stages]
        if stage not in names:
            raise _no_stage(stage, names)
        ahead = [(s.name, i) for s, i in engine.steps[engine.pos + 1:]]
        if item:
            if (stage, item) not in ahead:
                raise OcishError(f"{stage} {item} is not ahead: `restart` to run it again"
                                 if (stage, item) in [(s.name, i) for s, i in engine.steps]
                                 else f"stage {stage} has no item {item!r}")
        elif stage not in [n for n, _ in ahead] or engine.next_step[0].name == stage:
            raise OcishError(f"stage {stage} is not ahead (the next step is {self.position()}): "
                             "`restart` to run it again")

    def _first_of_stage(self, pos: int) -> bool:
        steps = self.stepped.engine.steps
        return pos == 0 or steps[pos - 1][0] is not steps[pos][0]

    def where(self, reason: str = "", bp: Breakpoint | None = None) -> Stop:
        """The stop: why (see Stop), and the next step with what it will do."""
        stop = Stop(reason, breakpoint=bp.number if bp else 0, temporary=bool(bp and bp.temporary))
        stepped = self.stepped
        if stepped is None or stepped.engine.failed or (self.death is not None
                                                        and self.exec_setup is None):
            return stop
        step = stepped.engine.next_step
        if step is None:
            return stop
        stage, item = step
        stop.next = f"{self.prefix}{stage.name} {item}".strip()
        rows = {r.name: r for r in self.pipeline()}
        row = rows[self.prefix + stage.name]
        stop.text = next((i.text for i in row.items if i.item == item), "") or row.summary
        return stop

    def _hit_breakpoint(self) -> Breakpoint | None:
        """The breakpoint that stops the run before the next step: every enabled one there
        counts a hit; one with an ignore count lets this crossing pass; a temporary one is
        deleted when it stops the run."""
        stepped = self.stepped
        if stepped is None or stepped.engine.done:
            return None
        pos = stepped.engine.pos
        # gdb: a false condition is no hit, and uses no ignore count
        return self._count_hits([bp for bp in self._breakpoints_at(pos)
                                 if not bp.condition or self._condition_holds(bp, pos)])

    def _count_hits(self, reached: list[Breakpoint]) -> Breakpoint | None:
        """Each breakpoint `reached` counts a hit; one with an ignore count lets this crossing
        pass; of those that stop, the first is the stop's, and every temporary one goes (gdb)."""
        stopping = []
        for bp in reached:
            bp.hits += 1
            if bp.ignore > 0:
                bp.ignore -= 1
            else:
                stopping.append(bp)
        for bp in stopping:
            if bp.temporary:
                self.breakpoints.remove(bp)
        return stopping[0] if stopping else None

    def interrupt(self) -> None:
        """Ctrl-C during a step (the shell's handler): a step that runs hooks would wait for
        them to end, so they are killed now (their process groups: the runtime's own hooks,
        and the container side's children, which are its createContainer hooks); the step
        then stops as interrupted, not failed. Other steps finish (a step half done would
        desynchronise the engine and the container side)."""
        from runtime import hooks
        from runtime.stages.hooks import ContainerHooks, Hooks
        report = self._report
        if report is None or report.stage not in (Hooks.name, ContainerHooks.name):
            return
        groups = set(hooks.RUNNING) if report.side != CONTAINER else set(
            procfs.children(self.container_pid()))
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self._killed_hooks = True

    def _step(self) -> StepReport:
        setup = self._require_setup()
        stage, item = setup.engine.next_step
        self._report = report = StepReport(self.prefix + stage.name, item, stage.side)
        self._killed_hooks = False
        catcher = self._exec_catcher(setup, stage)
        try:
            try:
                setup.engine.step()
            except OSError as e:  # the channel broke: its other end died (before this step)
                if not self.await_death(setup.ctx.pid, 2.0):
                    raise
                raise StageError(stage.name, "sync", "", e.errno or 0, "",
                                 "the container process is gone") from None
        except StageError as err:
            report.error = err
            # a process that died answers nothing: the engine saw its end of the channel close
            pid = setup.ctx.pid
            if self._reoffer(setup, err):
                report.reoffered = True
            elif setup is self.exec_setup:  # an exec that failed: it is gone, as `ocish exec`'s
                self.exec_abort()
            elif self._killed_hooks and not self.is_dead(pid):  # Ctrl-C, not the config
                report.error = None
                report.interrupted = self.interrupted_at = (
                    f"stage {stage.name} {item}".strip() + f": Ctrl-C killed its hook "
                    f"{err.target} (config {err.pointer}) before it finished; `restart` sets "
                    "the container up again, `quit` cleans up")
            elif self.await_death(pid, 2.0 if err.op == "sync" else 0.0):
                report.death = self._tell_death(f"during setup, in stage {stage.name}")
            else:  # alive: the cgroup may still say why (a fork refused at the pids limit)
                report.cause, report.cause_pointer = self._evidence()
        finally:
            self._stop_trace()  # also when the step broke outside the observer's hooks
            self._report = None
        snap = self._snapshot(f"after {stage.name} {item}".strip())
        if self.watching and self._last is not None:
            report.changes = diffmod.diff(self._last, snap)
        self._last = snap
        if report.error is None:
            self._reoffered_at = -1
        if setup.engine.done and not report.error and not report.interrupted:
            if setup is self.exec_setup:  # its process runs: ours to reap, detached
                before = _exe_and_args(setup.ctx.pid)
                report.exec_pid = setup.finish()
                if catcher is not None and catcher.held(5.0) is not None:
                    self.held = Held(report.exec_pid, _exe_and_args(report.exec_pid)[0], catcher)
                    report.held = self.held.text
                self._await_execve(report.exec_pid, before, 1.0)
                self.exec_pids[report.exec_pid] = self.cid
                self.exec_setup = None
            else:
                self.st = report.created = setup.finish()
        if catcher is not None and (self.held is None or self.held.tracer is not catcher):
            catcher.stop()  # the exec failed, or its process died before its execve
        return report

    def _reoffer(self, stepped, err: StageError) -> bool:
        """`break on error`: a step failed while its process lives (the container side
        answered Err and serves on): the failure is forgotten (Engine.reoffer) and the run
        stops before that step again, the failing call shown. Not twice in a row at one
        step: `continue` from that stop runs it again, and a second failure stands."""
        pos = stepped.engine.pos
        # "sync": the channel closed, its process is dying (engine._died), nothing to offer
        if pos == self._reoffered_at or err.op == "sync" or self.is_dead(stepped.ctx.pid):
            return False
        self._error_breakpoint = self._count_hits([bp for bp in self.breakpoints
                                                   if bp.enabled and bp.on_error])
        if self._error_breakpoint is None:
            return False
        stepped.engine.reoffer()
        self._reoffered_at = pos
        return True

    def _exec_catcher(self, stepped, stage: Stage) -> Tracer | None:
        """`catch exec` while an exec is stepped: a tracer seizes its process before its exec
        stage, to hold it after its execve as `start` holds the init (not with `trace on`,
        whose tracer has it then)."""
        if not (self.catching and stepped is self.exec_setup and stage.name == "exec"
                and not self.tracing):
            return None
        tracer = Tracer(stepped.ctx.pid, "exec", self.catch_exec, hold=True)
        return None if tracer.start() else tracer

    def _await_execve(self, pid: int, before: tuple[str, bytes], timeout: float) -> None:
        """Wait up to `timeout` s until pid's execve is done (a new program and command line)
        or it died: the exec stage answers Ok just before its execve. A dying process has
        lost its exe link before it is a zombie: wait for the zombie then."""
        deadline = time.monotonic() + timeout
        while not self.is_dead(pid) and _exe_and_args(pid) in (before, ("", b"")):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.002)

    def _snapshot(self, label: str) -> diffmod.Snapshot:
        t = self.target()
        return diffmod.take(None if t is None or self.is_dead(t.pid) else t, label)

    def _mark_stop(self) -> None:
        if self._last is not None and (not self.stops or self.stops[-1] is not self._last):
            self.stops.append(self._last)
            del self.stops[:-2]

    def last_diff(self) -> tuple[list[str], str]:
        """(diff lines between the last two stops, or [] with a reason). A container this
        session did not set up has no steps: each `diff` is a stop, so it says what changed
        in its kernel state since the last one (the attach, the last diff)."""
        if self.foreign is not None:
            self._last = self._snapshot(f"at {time.strftime('%H:%M:%S')}")
            self._mark_stop()
        if len(self.stops) < 2:
            return [], "only one stop so far: step first"
        lines = diffmod.diff(self.stops[-2], self.stops[-1])
        before, after = self.stops[-2].label, self.stops[-1].label
        return lines, "" if lines else f"no change between {before!r} and {after!r}"

    def trace_live(self, seconds: float, pid: int = 0, mode: str = "all") -> LiveTrace:
        """ptrace a running process (default: the container's init) and its new children for
        `seconds`, or until Ctrl-C, then detach: the Tracer seizes it (PTRACE_SEIZE, no
        SIGSTOP the process could see) and its helper detaches at each tracee's next stop,
        also when this shell dies (the helper sees its control pipe close) or the helper does
        (the kernel detaches a dead tracer's tracees). So it is never left stopped."""
        pid = pid or self.container_pid()
        if pid <= 0:
            raise OcishError("trace --for: no container process: attach or load first")
        if procfs.proc_state(pid) in ("", "Z", "X"):
            raise OcishError(f"trace --for: process {pid} is not running")
        tracer = Tracer(pid, mode)
        try:
            err = tracer.start()
        except BaseException:  # Ctrl-C while it seizes: detach before anything else
            if tracer.helper:
                tracer.stop()
            raise
        if err:
            raise OcishError(f"trace --for: {err}")
        began, interrupted = time.monotonic(), False
        try:
            while time.monotonic() - began < seconds and procfs.proc_state(pid) not in (
                    "", "Z", "X"):
                time.sleep(min(0.05, max(0.0, seconds - (time.monotonic() - began))))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            result = tracer.stop()
        elapsed = time.monotonic() - began  # the asked time, unless it ended sooner
        took = seconds if not interrupted and elapsed >= seconds else round(elapsed, 2)
        return LiveTrace(pid, took, result, interrupted, procfs.proc_state(pid))

    # -- the Observer hooks: the engine calls these around each step ---------------------------
    def before(self, engine: Engine, stage: Stage, item: str) -> None:
        if self.step_log is not None:
            self.step_log.before(engine, stage, item)
        if not self.tracing or self._report is None:
            return
        if stage.side != CONTAINER:
            self._report.trace_note = "host-side stage: run by the shell itself, nothing traced"
            return
        tracer = Tracer(engine.ctx.pid, self.trace_mode)
        err = tracer.start()
        if err:
            self._report.trace_note = f"not traced: {err}"
        else:
            self._tracer = tracer

    def after(self, engine: Engine, stage: Stage, item: str) -> None:
        self._stop_trace()
        if self.step_log is not None:
            self.step_log.after(engine, stage, item)

    def failed(self, engine: Engine, stage: Stage, item: str, err: StageError) -> None:
        self._stop_trace()
        if self.step_log is not None:
            self.step_log.failed(engine, stage, item, err)

    def _stop_trace(self) -> None:
        if self._tracer is not None:
            result = self._tracer.stop()
            self._tracer = None
            if self._report is not None:
                self._report.trace = result

    # -- breakpoints -------------------------------------------------------------------------
    def add_breakpoint(self, args: list[str], temporary: bool = False,
                       condition: str = "") -> Breakpoint:
        """`STAGE`, `STAGE ITEM`, `mount DEST` (the mounts item whose destination is DEST),
        `exec:STAGE [ITEM]` (a stage of `exec`'s pipeline) or `on error` (before any step
        that fails); `condition`: stop only where it holds (ocish/condition.py)."""
        clauses = []
        if condition:
            from ocish import condition as condmod
            clauses = condmod.parse(condition)
        if args == ["on", "error"]:
            if condition:
                raise OcishError("break on error takes no condition")
            name, items = "", []
        elif args[0].startswith(PREFIX):
            name, items = self._exec_breakpoint(args)
        else:
            name, items = self._setup_breakpoint(args)
        if clauses:
            self._check_fields(name, items, clauses)
        bp = Breakpoint(self._next_bp, name, items, " ".join(args), temporary=temporary,
                        condition=condition, on_error=args == ["on", "error"])
        self._next_bp += 1
        self.breakpoints.append(bp)
        if clauses:
            self._conditions[bp.number] = clauses
        return bp

    def _setup_breakpoint(self, args: list[str]) -> tuple[str, list[str]]:
        if self.setup is None:
            raise self.nothing_loaded() if not self.st else OcishError(
                             "setup is over: breakpoints apply to the setup stages (`restart`), "
                             "and to exec's as exec:STAGE")
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
            return "mounts", items
        name, items = args[0], args[1:2]
        if name not in stages:
            raise _no_stage(name, stages)
        if items and items[0] not in stages[name].items(ctx):
            raise OcishError(f"stage {name} has no item {items[0]!r}: "
                             f"{', '.join(stages[name].items(ctx)) or 'it has no items'}")
        return name, items

    def _exec_breakpoint(self, args: list[str]) -> tuple[str, list[str]]:
        """exec:STAGE [ITEM]: any stage of the exec pipeline; an item only when an exec is
        being stepped (the items depend on its process)."""
        from ocish.exec_step import stage_names
        name, items = args[0][len(PREFIX):], args[1:2]
        if name not in stage_names():
            raise _no_stage(args[0], [PREFIX + n for n in stage_names()])
        if items:
            if self.exec_setup is None:
                raise OcishError(f"the items of {args[0]} are known once `exec --step` has "
                                 "loaded an exec: break on the stage, or with a condition")
            stage = next(s for s in self.exec_setup.engine.stages if s.name == name)
            if items[0] not in stage.items(self.exec_setup.ctx):
                raise OcishError(f"stage {args[0]} has no item {items[0]!r}: "
                                 f"{', '.join(stage.items(self.exec_setup.ctx)) or 'it has no items'}")
        return PREFIX + name, items

    def _check_fields(self, name: str, items: list[str], clauses: list) -> None:
        """A condition that names a field no step of the stage has can never hold: refused
        (when the config is known), saying which fields there are."""
        from ocish import condition as condmod
        stepped = self.exec_setup if name.startswith(PREFIX) else self.setup
        if stepped is None:
            return
        bare = name[len(PREFIX):] if name.startswith(PREFIX) else name
        stage = next(s for s in stepped.engine.stages if s.name == bare)
        known: set[str] = set()
        for item in items or stage.items(stepped.ctx) or [""]:
            known |= set(condmod.fields(bare, stepped.ctx.spec, item))
        missing = [f for f in condmod.names(clauses) if f not in known]
        if missing:
            raise OcishError(f"break {name} if ...: no step of {name} has a field "
                             f"{missing[0]!r} (fields: {', '.join(sorted(known))})")

    def breakpoint(self, number: int) -> Breakpoint:
        for b in self.breakpoints:
            if b.number == number:
                return b
        raise OcishError(f"no breakpoint number {number}")

    def delete_breakpoint(self, number: int) -> Breakpoint:
        bp = self.breakpoint(number)
        self.breakpoints.remove(bp)
        self._conditions.pop(number, None)
        return bp

    # -- exec --step ---------------------------------------------------------------------------
    def exec_breakpoints(self) -> bool:
        """Whether an enabled breakpoint is set on the exec pipeline (`exec` then steps)."""
        return any(b.enabled and b.stage.startswith(PREFIX) for b in self.breakpoints)

    def exec_load(self, args: list[str], *, user: str | None = None, cwd: str | None = None,
                  env: list[str] = ()) -> ExecLoaded:
        """`exec --step CMD`: the exec's container side up, stopped before its first stage;
        step, next, until, continue then run its stages (ocish/exec_step.py)."""
        from ocish import exec_step
        if self.exec_setup is not None:
            raise OcishError("an exec is being stepped already: `continue` it first")
        self._exec_here()
        self.exec_setup = exec_step.load(self.root, self.cid, args, self, user=user, cwd=cwd,
                                         env=env)
        self._reoffered_at = -1
        self._last = self._snapshot(f"exec {' '.join(args)}, before its first stage")
        self._mark_stop()
        stop = self.where()
        return ExecLoaded(self.cid, list(args), self.exec_setup.ctx.pid, stop.next, stop.text)

    def exec_abort(self) -> None:
        """Kill the exec being stepped (its C1 or C2) and forget it."""
        if self.exec_setup is not None:
            setup, self.exec_setup = self.exec_setup, None
            setup.abort()

    def _breakpoints_at(self, pos: int, stepped=None) -> list[Breakpoint]:
        """The enabled breakpoints set on step `pos` of the stepped pipeline (`stepped`:
        another one, for `stages`); one with a condition and no item is on every step of
        its stage."""
        stepped = stepped or self.stepped
        prefix = PREFIX if stepped is self.exec_setup else ""
        steps = stepped.engine.steps
        stage, item = steps[pos]
        first_of_stage = pos == 0 or steps[pos - 1][0] is not stage
        return [b for b in self.breakpoints if b.enabled and b.stage == prefix + stage.name
                and (item in b.items if b.items else bool(b.condition) or first_of_stage)]

    def _condition_holds(self, bp: Breakpoint, pos: int) -> bool:
        from ocish import condition
        stepped = self.stepped
        stage, item = stepped.engine.steps[pos]
        return condition.holds(self._conditions[bp.number],
                               condition.fields(stage.name, stepped.ctx.spec, item))

    def breakpoint_ahead(self) -> Breakpoint | None:
        """The enabled breakpoint set on the next step, if any (its condition holding)."""
        stepped = self.stepped
        if stepped is None or stepped.engine.done:
            return None
        hits = [b for b in self._breakpoints_at(stepped.engine.pos)
                if not b.condition or self._condition_holds(b, stepped.engine.pos)]
        return hits[0] if hits else None

    # -- the pipeline as rows for `stages` -----------------------------------------------------
    def pipeline(self) -> list[StageRow]:
        if self.exec_setup is not None:
            stepped = self.exec_setup
        elif self.setup is None:
            raise self.nothing_loaded() if not self.st else OcishError(
                             f"container {self.cid} was not set up by this session: its "
                             "stages are not known here (`restart` sets it up again)")
        else:
            stepped = self.setup
        engine, ctx = stepped.engine, stepped.ctx
        prefix = PREFIX if stepped is self.exec_setup else ""
        pos = len(engine.steps) if stepped is self.setup and self.st is not None else engine.pos
        rows: dict[str, StageRow] = {}
        for i, (stage, item) in enumerate(engine.steps):
            status = ("done" if i < pos else "failed" if i == pos and engine.failed
                      else "next" if i == pos else "pending")
            bps = [b.number for b in self._breakpoints_at(i, stepped)]
            row = rows.get(stage.name)
            if row is None:
                summary = (stage.describe(ctx).splitlines() or [stage.summary])[0]
                if summary.endswith(":"):  # a list follows on the lines `explain` shows
                    summary = f"{summary[:-1]} (`explain {prefix + stage.name}` lists them)."
                row = rows[stage.name] = StageRow(prefix + stage.name, stage.side, status,
                                                  summary, bps)
            elif status != "pending" and row.status == "done":
                row.status = status
            if item:
                row.items.append(ItemRow(item, _item_text(stage, ctx, item), status, bps))
        return list(rows.values())

    def explain(self, name: str | None) -> Explanation:
        if self.exec_setup is None and self.setup is None:
            self.pipeline()  # raises the reason
        stepped = self.exec_setup or self.setup
        stages = {s.name: s for s in stepped.engine.stages}
        if name is not None and self.exec_setup is not None and name.startswith(PREFIX):
            name = name[len(PREFIX):]
        if name is None:
            step = stepped.engine.next_step
            if step is None:
                raise OcishError("setup is complete: name a stage")
            name = step[0].name
        if name not in stages:
            raise _no_stage(name, stages)
        stage = stages[name]
        return Explanation(self.prefix + stage.name, stage.side, stage.describe(stepped.ctx))

    # -- lifecycle, through runtime.lifecycle as the CLI does ----------------------------------
    def _created(self) -> dict:
        """state.json of the created container; else an error whose advice works from here:
        `continue` while setup can go on; after a failure, a death or an interruption, what
        can (restart, diagnose)."""
        if self.st is None:
            if self.setup is None:
                raise self.nothing_loaded()
            status = self.status()
            if status in ("failed", "died", "interrupted"):
                why = {"failed": f"its setup failed ({self.setup.engine.failed})",
                       "died": "its process died during setup" + (
                           f" ({self.death.how})" if self.death else ""),
                       "interrupted": f"its setup was interrupted at {self.interrupted_at}"
                       .split("; `restart`")[0]}[status]
                raise OcishError(f"the container was never created: {why}; `restart` sets it "
                                 f"up again, {self.diagnose_hint()}")
            raise OcishError("the container is not created yet: `continue` to finish its setup")
        return self.st

    def start(self, watch: float = 1.0) -> Started:
        """lifecycle.start, then watch the process up to `watch` s until its execve is done;
        with `catch exec`, the init is traced across its execve and held at its exec event
        (`held`) until `continue`. Another runtime's container: its own runtime starts it."""
        if self.foreign is not None:
            self.foreign.change("start")
            self.started = True
            return Started(self.cid, self.foreign.pid, self.foreign.alive())
        st = self._created()
        pid = st["pid"]
        before = _exe_and_args(pid)
        tracer = None
        if self.catching and state.alive(st):
            tracer = Tracer(pid, "exec", self.catch_exec, hold=True)
            err = tracer.start()
            if err:
                raise OcishError(f"catch exec: {err}")
        result = None
        try:
            lifecycle.start(self.root, self.cid)
            self.started = True
            if tracer is not None:
                result = tracer.held(5.0)
                if result is not None:
                    self.held = Held(pid, _exe_and_args(pid)[0], tracer)
        finally:
            if tracer is not None and self.held is None:  # it died, or start failed: detach
                done = tracer.stop()
                result = TraceResult(((result or TraceResult()).records + done.records),
                                     done.error)
        self._reap()
        self._await_execve(pid, before, watch)
        self._last = self._snapshot("after start")
        self._mark_stop()
        done = Started(self.cid, pid, not self.is_dead(pid), catch=result,
                       held=self.held.text if self.held else "")
        if not done.running:
            done.exit = self._tell_death("at once, right after start")
        return done

    def release(self) -> Released:
        """`continue` at a `catch exec` stop: the process runs on, untraced (after its first
        `catch exec N` calls)."""
        if self.held is None:
            raise OcishError("no process is held by `catch exec`")
        held, self.held = self.held, None
        return release(held, self.catch_exec, lambda pid: not self.is_dead(pid))

    def oci_state(self, cid: str | None = None) -> dict:
        if cid is None and self.foreign is not None:
            return self.foreign.oci_state()
        if cid is None:
            self._created()
        return lifecycle.oci_state(self.root, cid or self.cid)

    def ps(self, cid: str | None = None) -> list[int]:
        from runtime import cgroups
        if cid is None and self.foreign is not None:
            return self.foreign.manager().pids() if self.foreign.alive() else []
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
        if self.foreign is not None:
            return self.foreign.change("pause")
        if self.status() != "running":
            raise OcishError(f"container is not running: {self.status()}")
        self._manager().freeze()

    def resume(self) -> None:
        if self.foreign is not None:
            return self.foreign.change("resume")
        if self.status() != "paused":
            raise OcishError(f"container is not paused: {self.status()}")
        self._manager().thaw()

    def kill(self, sig: int, all_: bool = False) -> None:
        """lifecycle.kill; after SIGKILL, wait up to KILL_WAIT s for the init to be dead (a
        zombie, or reaped): SIGKILL always ends it, but not at once, and a `delete` typed next must find
        it stopped (gdb's `kill` too returns once the inferior is gone; `runc kill` does not
        wait, and `runc delete` right after can still see it running)."""
        if self.foreign is not None:
            if all_:
                raise OcishError(f"kill --all: {self.foreign.label}: signal its processes "
                                 "one by one (`kill` signals its init)")
            self.foreign.change("kill", str(sig))
            self._sent.add(sig)
            return
        self._created()
        lifecycle.kill(self.root, self.cid, sig, all_)
        self._sent.add(sig)
        if sig == signal.SIGKILL:  # dead (a zombie is): reaped, and news, at the next command
            pid, deadline = self.container_pid(), time.monotonic() + KILL_WAIT
            while not self.is_dead(pid) and time.monotonic() < deadline:
                time.sleep(0.002)

    def delete(self, force: bool = False) -> None:
        """lifecycle.delete; the death it causes is the user's doing, not news (no diagnose
        hint): it is kept, told by `inspect exit`."""
        if self.foreign is not None:
            return self.foreign.change("delete", *(["force"] if force else []))
        self._created()
        if force or self.status() not in ("running", "paused"):
            self._end_execs(self.cid)
        pid = self.container_pid()
        lifecycle.delete(self.root, self.cid, force)
        if self.death is None and self.await_death(pid, 1.0):
            try:
                self.death = self.exit_info("when `delete` removed the container")
            except OSError:
                pass

    # -- exec, through runtime.execprocess as `ocish exec` ---------------------------------------
    def exec(self, args: list[str], cid: str | None = None, *, detach: bool = False,
             user: str | None = None, cwd: str | None = None, env: list[str] = (),
             stdin_fd: int | None = None, capture: bool = False,
             ignore_paused: bool = False) -> Exec:
        """Run one more process in the loaded container (created or running), or in container
        `cid` under the root. Its stdout and stderr are ours, or with `capture` (foreground
        only) files whose text the result holds; stdin is `stdin_fd` (default: ours). A
        detached process is put in its own process group (Ctrl-C at the shell must not reach
        it), and comes back to us, its subreaper: news() reports it, teardown kills it."""
        from runtime import execprocess
        if cid is None and self.foreign is not None:
            return self._exec_foreign(args, detach, user, cwd, env, stdin_fd, capture)
        if cid is None:
            self._exec_here()
            cid = self.cid
        if ignore_paused and lifecycle.oci_state(self.root, cid)["status"] == "paused":
            if not detach:
                raise OcishError("exec --ignore-paused in a paused container runs detached: its "
                                 "process waits, frozen, until `resume` (add -d)")
            return self._exec_when_resumed(cid, args, user, cwd, env)
        started: list[int] = []

        def on_start(pid: int) -> None:
            started.append(pid)
            self.exec_pids[pid] = cid
        with _captured(capture and not detach) as outputs:
            status = execprocess.run(self.root, cid, args, detach=detach, user=user, cwd=cwd,
                                     ignore_paused=ignore_paused,
                                     env=list(env), stdin_fd=stdin_fd, own_group=detach,
                                     on_start=on_start,
                                     keep_signals=self.exec_keeps)
        if detach:
            return Exec(started[0], None)
        self.exec_pids.pop(started[0], None)  # lifecycle.wait_foreground reaped it
        return Exec(started[0], status, *outputs)


    def _exec_here(self) -> None:
        """An exec in the loaded container needs it created; else an error that says why."""
        if self.setup is None and self.st is None:
            raise OcishError("exec: nothing loaded: load a bundle first (or exec --id ID)")
        if self.st is None and self.status() in ("failed", "died", "interrupted"):
            try:
                self._created()
            except OcishError as e:
                raise OcishError(f"exec: {e}") from None
        if self.st is None:
            raise OcishError("exec: the container is not set up yet: `continue` to finish "
                             "its setup, then exec")

    def _exec_foreign(self, args: list[str], detach: bool, user: str | None, cwd: str | None,
                      env: list[str], stdin_fd: int | None, capture: bool) -> Exec:
        """exec into another runtime's container through the runtime's own exec pipeline
        (runtime/execprocess.py: cgroup-join into the cgroups the kernel shows for its init,
        then `join`'s setns(2) from /proc/<init>/ns/*, the config's process attributes,
        capabilities and seccomp), as `runc exec` runs config.json's process with the command
        line over it. Without a config.json, the process is the init's as the kernel has it
        (foreign.kernel_process). Nothing of the container's runtime state is written."""
        from runtime import execprocess
        f = self.foreign
        status = f.status()
        if status in ("stopped", "paused", "created"):
            raise execprocess.ExecFailed(f"cannot exec in a {status} container ({f.label})")
        spec = f.exec_spec()
        process = execprocess.merge_cli(spec.get("process") or {}, args, cwd=cwd, env=list(env),
                                        user=user)
        execprocess.validate_process(process, "process")
        started: list[int] = []

        def on_start(pid: int) -> None:
            started.append(pid)
            self.exec_pids[pid] = f.id
        with _captured(capture and not detach) as outputs:
            try:
                setup = execprocess.ExecSetup(f.root or "/", f.id, process, st=f.exec_state(),
                                              spec=spec)
                status_code = execprocess.exec_process(
                    setup, detach=detach, stdin_fd=stdin_fd, own_group=detach,
                    on_start=on_start, keep_signals=self.exec_keeps)
            except execprocess.ExecFailed:
                raise
            except OcishError as e:
                raise execprocess.ExecFailed(str(e)) from None
        if detach:
            return Exec(started[0], None)
        self.exec_pids.pop(started[0], None)
        return Exec(started[0], status_code, *outputs)

    def _exec_when_resumed(self, cid: str, args: list[str], user: str | None, cwd: str | None,
                           env: list[str]) -> Exec:
        """`exec -d --ignore-paused` in a paused container. runc's `exec --ignore-paused` sets
        its process up in the frozen cgroup and so waits until the container is resumed; the
        shell must not wait with it (`resume` could not be typed), so the runtime's own `ocish
        exec --ignore-paused -d` runs in the background, in a session of its own. Returns its
        pid; news() says when the process it starts runs (it comes back to us, its
        subreaper, to be reaped and killed at teardown like any detached exec)."""
        import sys
        import tempfile
        fd, pid_file = tempfile.mkstemp(prefix="ocish-exec-", suffix=".pid")
        os.close(fd)
        os.unlink(pid_file)
        argv = [sys.executable, "-m", "ocish", "--root", self.root, "exec", "--ignore-paused",
                "-d", "--pid-file", pid_file] + (["-u", user] if user else []) + (
                ["--cwd", cwd] if cwd else []) + [w for e in env for w in ("-e", e)] + [
                cid, *args]
        home = os.path.dirname(os.path.dirname(os.path.abspath(inspect.__file__)))
        env_vars = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [home] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid = os.posix_spawn(sys.executable, argv, env_vars, setsid=True,
                                 file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0)])
        finally:
            os.close(devnull)
        self._waiting_execs[pid] = (cid, pid_file)
        return Exec(pid, None, waiting=True)


@contextmanager
def _captured(on: bool) -> Iterator[list[str | None]]:
    """With `on`, fds 1 and 2 point to temporary files while the body runs (a process forked
    then writes there); yields [stdout, stderr], filled afterwards. What was written before a
    failure goes on to our stderr."""
    outputs: list[str | None] = [None, None]
    if not on:
        yield outputs
        return
    import sys
    import tempfile
    sys.stdout.flush()
    sys.stderr.flush()
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    saved = [os.dup(1), os.dup(2)]
    ok = False
    try:
        for fd, f in ((1, files[0]), (2, files[1])):
            os.dup2(f.fileno(), fd)
        yield outputs
        ok = True
    finally:
        for fd, old in ((1, saved[0]), (2, saved[1])):
            os.dup2(old, fd)
            os.close(old)
        for i, f in enumerate(files):
            f.seek(0)
            outputs[i] = f.read().decode(errors="replace")
            f.close()
        if not ok and outputs[1]:
            sys.stderr.write(outputs[1])


def _exe_and_args(pid: int) -> tuple[str, bytes]:
    """What tells an execve apart: the program and the command line ("" once gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.readlink(f"/proc/{pid}/exe"), f.read()
    except OSError:
        return "", b""


def _default_root() -> str:
    from runtime.cli import default_root
    return default_root()


def _item_text(stage: Stage, ctx, item: str) -> str:
    """The line of describe() about this item ("/mounts/1: mount(2) ..."), else the item."""
    for line in stage.describe(ctx).splitlines():
        if line.startswith(item + ":"):
            return line[len(item) + 1:].strip()
    return ""


def _no_stage(name: str, stages) -> OcishError:
    """A stage name that is none of `stages`: the error names the closest (gdb's "did you
    mean", as for commands) and lists them all."""
    names = list(stages)
    close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    listed = f"stages are {', '.join(names)}"
    return OcishError(f"no stage {name!r}: " + (
        f"did you mean {' or '.join(close)}? ({listed})" if close else listed))


def _refusal(e: OcishError, advice: str) -> OcishError:
    """A load or restart refused by its config.json: the error's text and `advice`, still a
    SpecError with its pointer when it was one (a script's `expect load B -> fails, pointer ==
    /linux/uidMappings` reads it)."""
    if isinstance(e, SpecError):
        return SpecError(e.pointer, f"{e.message}: {advice}")
    return OcishError(f"{e}: {advice}")
