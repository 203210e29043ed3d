"""The one engine that runs container setup stages, for the runtime and the debugger alike.

A `Stage` is a first-class object: a `name` the user types (`break mounts`), the `side` it runs on
(the host process, or the container process reached over the sync channel), `items(ctx)` when it is
made of finer steps (one per mount), `run(ctx, item)` and `describe(ctx)`.

`Engine` walks the stages one item at a time. The runtime calls `run()` with the plain `Observer`;
the debugger calls `step()` itself and stops where the user asked (model: bdb beside pdb). Nothing
about setup is written outside a stage, so whatever the runtime does, the debugger can step.

The container side is never a fork of the host's Python: `spawn` starts C1 from a sealed memfd
copy of the interpreter (runtime/linux/exeseal.py, CVE-2019-5736) as `ocish init`, a fresh
`python -S` running `container_main`. That is why an engine is made from a pipeline *reference*,
"package.module:function" and JSON-able args, not from stage objects: the container side
rebuilds the same stages from it (sync.Init), for create, exec, the debugger and the tests alike.
"""
from __future__ import annotations

import os
import sys
import time

from runtime import crashpoint, sync
from runtime.errors import StageError
from runtime.linux import cgroupwarm, exeseal, procfs, sig

HOST = "host"
CONTAINER = "container"


class Context:
    """Everything a stage needs; the container side rebuilds it from to_wire() (sync.Init)."""

    def __init__(self, id: str, bundle: str, spec: dict, rootfs: str, state_dir: str,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 console_socket: str | None = None, sys: object = None, fifo_fd: int = -1) -> None:
        if sys is None:  # imported here, not with this module: ctypes costs milliseconds that
            from runtime.linux import syscalls as sys  # `create` spends once C1 is started
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
        self.fds: list[int] = []      # container side: the fds the host sent with this item
        self.proc_fd = -1             # container side: a procfs handle (syscalls.procfs_handle)
        #                               for what needs /proc after pivot_root, whether or not
        #                               the container mounts one; -1: the container's /proc
        self.journal = None           # lifecycle.Setup's: journal("cgroup" | "pid") records
        #                               it in state.json before it needs undoing after a crash

    def to_wire(self) -> dict:
        """What the container side rebuilds this context from (sync.Init): the fields set
        before it starts. exec.fifo and the console socket go with Init as SCM_RIGHTS
        (sent_fds, in that order): C1 may be started before they exist (launch)."""
        sent = 0
        wire = {"id": self.id, "bundle": self.bundle, "spec": self.spec, "rootfs": self.rootfs,
                "state_dir": self.state_dir, "no_pivot": self.no_pivot,
                "no_new_keyring": self.no_new_keyring, "preserve_fds": self.preserve_fds,
                "console_socket": self.console_socket, "sys": self.sys.__name__}
        for name, fd in (("fifo_fd", self.fifo_fd), ("console_fd", self._console_fd())):
            wire[name] = sent if fd >= 0 else -1
            sent += fd >= 0
        return wire

    def _console_fd(self) -> int:
        return self.console_sock.fileno() if self.console_sock is not None else -1

    def sent_fds(self) -> list[int]:
        """The fds Init carries (to_wire gives their positions): exec.fifo, the console socket."""
        return [fd for fd in (self.fifo_fd, self._console_fd()) if fd >= 0]

    @classmethod
    def from_wire(cls, d: dict, fds: list[int] = ()) -> "Context":
        """Container side: the Context to_wire() described, with `fds` the ones Init carried
        (received close-on-exec)."""
        __import__(d["sys"])
        fifo_fd = fds[d["fifo_fd"]] if d["fifo_fd"] >= 0 else -1
        ctx = cls(d["id"], d["bundle"], d["spec"], d["rootfs"], d["state_dir"], d["no_pivot"],
                  d["no_new_keyring"], d["preserve_fds"], d["console_socket"],
                  sys.modules[d["sys"]], fifo_fd)
        if d["console_fd"] >= 0:
            import _socket
            ctx.console_sock = _socket.socket(fileno=fds[d["console_fd"]])
        return ctx

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
    # A sync.Batch ends after this stage: the container side then receives the next steps with
    # a call of its own, as it does when stepped (bounding: the seccomp filter it may load
    # applies to that call too, and `create` must fail or pass as the debugger's steps do)
    ends_batch = False

    def items(self, ctx: Context) -> list[str]:
        """Finer steps a breakpoint can name (e.g. mount destinations); [] for a single step."""
        return []

    def run(self, ctx: Context, item: str = "") -> None:
        raise NotImplementedError

    def describe(self, ctx: Context) -> str:
        """What this stage will do with this config, in plain words."""
        return self.summary

    def host_fds(self, ctx: Context, item: str) -> list[int]:
        """Host side, before a container-side item runs: fds the host opens for it (what only
        the host may reach, or must prepare: bind sources, id-mapped mounts), sent with its
        Run and found in ctx.fds on the container side while the item runs; [] for most."""
        return []

    def handoff(self, ctx: Context) -> None:
        """Container side, after the host was told the stage succeeded; only exec overrides it."""

    def preload(self, ctx: Context) -> list[str]:
        """Container side, before any namespace changes: the modules run() will need for this
        config beyond its own module's imports (container_main imports them: after
        pivot_root the host's files are out of reach). Stage modules import what only some
        configs use (seccomp, terminal, hooks) inside the functions that use it, so that
        neither the host nor a container side whose config has none pays for it."""
        return []

    def exit_hint(self, ctx: Context) -> str:
        """Host side: why the container side may die without a word once this stage has run
        ("" for most; bounding: the seccomp filter it loads applies to the runtime too)."""
        return ""


class Observer:
    """Told about every step; the runtime's observer does nothing, the debugger's records.
    `one_by_one`: whether the setup must go one step at a time, as the debugger's may stop
    between any two; an observer that never does (the runtime's, --debug's step log) lets
    Engine.run send runs of container-side steps as one Batch. Without the attribute: True."""
    one_by_one = False

    def before(self, engine: "Engine", stage: Stage, item: str) -> None:
        pass

    def after(self, engine: "Engine", stage: Stage, item: str) -> None:
        pass

    def failed(self, engine: "Engine", stage: Stage, item: str, err: StageError) -> None:
        pass


def build(factory: str, args: list) -> list[Stage]:
    """The stages `factory` ("package.module:function", importable from sys.path) returns for
    `args`; the same call on both sides of the sync channel."""
    module, _, name = factory.partition(":")
    __import__(module)
    return getattr(sys.modules[module], name)(*args)


class Launched:
    """A container side (C1) started before its Context exists (`launch`): `create` starts it
    first, so that the interpreter's start-up overlaps reading the config, the state dir and
    the cgroups. `kill()` when the create fails before an Engine adopts it."""

    def __init__(self, pid: int, chan: sync.Channel) -> None:
        self.pid, self.chan = pid, chan

    def kill(self) -> None:
        self.chan.close()
        try:
            os.kill(self.pid, sig.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(self.pid)


def inherited_fds(preserve_fds: int) -> set[int]:
    """The fds the container side inherits at its spawn besides its channel: stdio and the
    --preserve-fds ones; it gets no other (Context.sent_fds come with Init)."""
    return set(range(3 + preserve_fds))


def launch(preserve_fds: int = 0, stdin_fd: int | None = None,
           own_group: bool = False) -> Launched:
    """Start C1, a fresh interpreter from a sealed copy of ours (`ocish init`, see
    container_main and runtime/linux/exeseal.py), with stdio, `preserve_fds` fds from 3 on and
    its end of the sync channel; it waits for sync.Init. `stdin_fd` and `own_group`: see
    Engine.spawn. StageError (stage "exeseal") when it cannot be started.

    The cgroup stages' first write to cgroup.procs waits for an RCU grace period: it starts
    now (runtime/linux/cgroupwarm.py), and elapses while C1 starts."""
    cgroupwarm.start_grace_period()
    host, child = sync.pair()
    keep = inherited_fds(preserve_fds) | {child.fileno()}
    old = sig.signal(sig.SIGINT, sig.SIG_IGN) if own_group else None  # C1 inherits SIG_IGN
    try:
        pid = exeseal.spawn(INIT_ARGV + [str(child.fileno())], _init_env(), keep, stdin_fd,
                            own_group)
    except OSError as e:  # exeseal's own words (vm.memfd_noexec) replace strerror's
        host.close()
        own = e.strerror if e.errno and e.strerror != os.strerror(e.errno) else ""
        raise StageError("exeseal", "spawn a sealed copy of", "/proc/self/exe",
                         e.errno or 0, "", own) from None
    finally:
        child.close()
        if old is not None:
            sig.signal(sig.SIGINT, old)
    return Launched(pid, host)


class Engine:
    """Runs the pipeline `factory(*args)` (see `build`) on `ctx`, one step at a time;
    `launched`: a C1 already started for it (`launch`), else spawn starts one."""

    def __init__(self, ctx: Context, factory: str, args: list | tuple = (),
                 observer: Observer | None = None, launched: Launched | None = None) -> None:
        self.ctx = ctx
        self.factory, self.args = factory, list(args)
        self.observer = observer or Observer()
        self._stages: list[Stage] | None = None
        self._steps: list[tuple[Stage, str]] | None = None
        self.pos = 0
        self.chan: sync.Channel | None = None
        self.failed: StageError | None = None
        self.launched = launched

    @property
    def stages(self) -> list[Stage]:
        """Built on first use: the runtime starts the container side first (lifecycle.run_setup),
        so that importing the stages here overlaps its start-up."""
        if self._stages is None:
            self._stages = build(self.factory, self.args)
        return self._stages

    @property
    def steps(self) -> list[tuple[Stage, str]]:
        """(stage, item) in order, an item per finer step of a stage ("" for a whole stage)."""
        if self._steps is None:
            self._steps = [(s, item) for s in self.stages for item in (s.items(self.ctx) or [""])]
        return self._steps

    @property
    def done(self) -> bool:
        return self.pos >= len(self.steps)

    @property
    def next_step(self) -> tuple[Stage, str] | None:
        return None if self.done else self.steps[self.pos]

    def spawn(self, stdin_fd: int | None = None, own_group: bool = False,
              wait_ready: bool = False) -> int:
        """Start the container side (C1), unless `launched` already did, and send it
        sync.Init with exec.fifo and the console socket; returns its pid.

        C1 starts while we go on with the host stages (the cgroup stage's first write to
        cgroup.procs waits for an RCU grace period). The debugger gives it a stdin of its
        own and its own process group, so the shell's terminal and Ctrl-C never reach the
        container, and waits (`wait_ready`) until C1 runs container_main, so that it
        inspects and traces that process. StageError (stage "exeseal") when C1 cannot be
        started, or exits before it is ready.
        """
        c1 = self.launched or launch(self.ctx.preserve_fds, stdin_fd, own_group)
        self.launched = None
        self.chan = c1.chan
        self.ctx.pid = c1.pid
        self._send(sync.Init(self.ctx.to_wire(), self.factory, self.args, _init_path()),
                   self.ctx.sent_fds())
        if wait_ready:
            self._receive("exeseal", until_ready=True)
        return c1.pid

    def step(self) -> tuple[Stage, str]:
        """Run the next step; raises StageError (and stays on that step) when it fails."""
        if self.failed:
            raise self.failed
        stage, item = self.steps[self.pos]
        if self.chan is None:
            self.spawn()
        crashpoint.reached("before:" + stage.name)  # a test hook (runtime/crashpoint.py)
        self.observer.before(self, stage, item)
        if stage.side == HOST:
            self._complete(stage, item, lambda: stage.run(self.ctx, item))
        else:
            self._complete(stage, item, lambda: self._remote(stage, item))
        return stage, item

    def _complete(self, stage: Stage, item: str, work) -> None:
        """Do `work`, the step at self.pos; a StageError leaves the engine failed on that step
        (the observer is told, the error raised), else the engine moves past it."""
        try:
            work()
        except StageError as err:
            self._fail(stage, item, err)
        self.pos += 1
        crashpoint.reached("after:" + stage.name)
        self.observer.after(self, stage, item)

    def _fail(self, stage: Stage, item: str, err: StageError) -> None:
        self.failed = err
        self.observer.failed(self, stage, item, err)
        raise err

    def run(self) -> None:
        """Run every remaining step. When the observer never stops between steps (the
        runtime's) a run of container-side steps goes as one sync.Batch, one round trip
        instead of one per step; the debugger's gets one Run per step."""
        batching = not getattr(self.observer, "one_by_one", True)
        while not self.done:
            if batching and self.steps[self.pos][0].side == CONTAINER and not self.failed:
                self._batch()
            else:
                self.step()

    def _batch(self) -> None:
        """Send the container-side steps from self.pos on (up to the next host stage, or as
        many as sync.MAX_FDS of host fds allow) as one Batch, then take their answers one
        by one, as step() would: pos, crash points and the observer move per step, and the
        first Err raises (the container side runs nothing after it)."""
        if self.chan is None:
            self.spawn()
        batch: list[list] = []
        fds: list[int] = []
        try:
            for stage, item in self.steps[self.pos:]:
                if stage.side != CONTAINER:
                    break
                try:
                    more = stage.host_fds(self.ctx, item)
                except StageError:
                    if not batch:
                        raise  # this step fails, as in step()
                    break  # the batch so far runs first; this step comes again, first
                if batch and len(fds) + len(more) > sync.MAX_FDS:
                    for fd in more:
                        os.close(fd)  # opened again as the next batch's first
                    break
                crashpoint.reached("before:" + stage.name)
                self.observer.before(self, stage, item)
                batch.append([stage.name, item, len(more)])
                fds += more
                if stage.ends_batch:
                    break
            self._send(sync.Batch(batch), fds)
        except StageError as err:  # a step's host_fds: that step fails
            self._fail(*self.steps[self.pos], err)
        finally:
            for fd in fds:
                os.close(fd)
        for _ in batch:
            stage, item = self.steps[self.pos]
            self._complete(stage, item, lambda: self._receive(stage.name))

    def reoffer(self) -> None:
        """Forget the failure of the current step, which becomes the next step again: the
        debugger's `break on error` (the container side answered Err and still serves)."""
        self.failed = None

    def _send(self, msg: sync.Message, fds: list[int] | tuple[int, ...] = ()) -> None:
        assert self.chan is not None
        try:
            self.chan.send(msg, fds)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the container side is gone: the next recv() says why (its Err, or EOF)

    def _remote(self, stage: Stage, item: str) -> None:
        fds = stage.host_fds(self.ctx, item)
        try:
            self._send(sync.Run(stage.name, item), fds)
        finally:
            for fd in fds:
                os.close(fd)
        self._receive(stage.name)

    def _receive(self, stage: str, until_ready: bool = False) -> None:
        """Read the container side's answers to `stage` until Ok (Ready with `until_ready`);
        raise StageError for Err or EOF. Pid: C1 forked init and is exiting, so reap C1 and
        follow init."""
        assert self.chan is not None
        while True:
            msg = self.chan.recv()
            if isinstance(msg, sync.Ready):
                if until_ready:
                    return
            elif isinstance(msg, sync.Pid):
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
                raise self._died(stage)

    def _died(self, stage: str) -> StageError:
        """EOF from the container side: it died. Say how, from its wait status, read without
        reaping it (waitid WNOWAIT: the debugger, or abort, reaps it), when it is our child (C1,
        or init once C1 is gone: create, run and exec are subreapers); and, for SIGKILL, whether
        its memory cgroup recorded an OOM kill. runc says only "read init-p: connection reset"."""
        why = "container process exited during setup"
        pointer = ""
        status = _peek_status(self.ctx.pid)
        if status is not None and status.si_code == os.CLD_EXITED:
            why += f": exit status {status.si_status}"
        elif status is not None:
            why += f": killed by {sig.name(status.si_status)}"
            try:
                ooms = self.ctx.cgroup.oom_kills() if self.ctx.cgroup is not None else 0
            except StageError:
                ooms = 0
            if ooms and status.si_status == sig.SIGKILL:
                limit = ((self.ctx.linux.get("resources") or {}).get("memory") or {}).get("limit")
                why += (f" (an OOM kill: the memory cgroup counts {ooms}"
                        + (f", limit {limit} bytes)" if limit else ")"))
                pointer = "/linux/resources/memory/limit" if limit else ""
        # what a stage already run knows of such a death (a seccomp filter that killed it ...)
        hints = [h for s in self.stages[:self.pos + 1] if (h := s.exit_hint(self.ctx))]
        return StageError(stage, "sync", "", 0, pointer, "; ".join([why] + hints))

    def close(self) -> None:
        """Stop talking to the container side (it exits on EOF unless already handed off)."""
        if self.chan is not None:
            self.chan.close()
            self.chan = None

    def kill(self) -> None:
        """Tear down a half-set-up container process; used on failure and by the debugger."""
        if self.launched is not None:  # started, never given its Init
            self.launched.kill()
            self.launched = None
        pid = self.ctx.pid
        self.close()
        if pid > 0:
            try:
                os.kill(pid, sig.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)


def _peek_status(pid: int, timeout: float = 2.0):
    """How child `pid` ended (os.waitid's result), left for its reaper; None when it is not our
    child or has not ended within `timeout` s (its socket closes as it exits, a little before
    it is a zombie)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        import select  # a C module, imported only on this failure path
        select.select([pidfd], [], [], timeout)
        return os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except OSError:  # ChildProcessError: not ours
        return None
    finally:
        os.close(pidfd)


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


# -- the container side's start: spawned from a sealed copy, then container_main -----------------

# Where `import runtime` resolves here: the spawned interpreter finds this package first.
_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The argv of C1 (argv[0] is what ps shows, as runc shows `runc init`; -S: no site hooks; -P:
# nothing from the working directory before sys.path is set from Init), the channel's fd last.
INIT_ARGV = ["ocish init", "-S", "-P", "-c", "import runtime.engine as e; e.container_main()"]


def _init_env() -> dict[str, str]:
    """C1's environment: where the interpreter's standard library is (its /proc/self/exe is a
    memfd, nothing to search from), this package, and the host's locale and UTF-8 mode, so that
    paths encode alike on both sides. The user process gets process.env at its execve."""
    home = sys.base_prefix
    if sys.base_exec_prefix != home:
        home += ":" + sys.base_exec_prefix
    env = {"PYTHONHOME": home, "PYTHONPATH": _HOME, "PYTHONUTF8": str(sys.flags.utf8_mode)}
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _init_path() -> list[str]:
    """The host's sys.path as absolute paths, this package's home first: the container side
    imports the pipeline factory (and test modules) from exactly where the host did."""
    path = [_HOME]
    for p in sys.path:
        p = os.path.abspath(p)
        if p not in path:
            path.append(p)
    return path


def container_main() -> None:
    """The container side (C1), spawned by Engine.spawn: read sync.Init from the channel whose
    fd is sys.argv[1], rebuild the Context and the stages, answer Ready, then serve. Never
    returns."""
    try:
        import _socket
        from runtime.linux import syscalls
        syscalls.set_name(INIT_ARGV[0])  # comm: the exec went through /proc/self/fd/N, so "N"
        fd = int(sys.argv[1])
        os.set_inheritable(fd, False)
        chan = sync.Channel(_socket.socket(fileno=fd))
        init = chan.recv(fds=True)
        if isinstance(init, sync.Init):
            sys.path[:] = init.path
            ctx = Context.from_wire(init.context, chan.take_fds())
            stages = build(init.factory, init.args)  # every import before any namespace changes
            for name in {m for s in stages for m in s.preload(ctx)}:
                __import__(name)
            chan.send(sync.Ready())
            serve(ctx, chan, stages)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the runtime died before we answered: nobody to tell
    except BaseException as exc:  # a bug of ours outside any stage: say so, then exit
        os.write(2, f"ocish: container side: {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(1)


def serve(ctx: Context, chan: sync.Channel, stages: list[Stage]) -> None:
    """Container side: run each requested stage item and answer; exits when the host goes away
    (EOF, or an answer to a runtime that was killed: then there is nobody to tell), or when no
    answer can be sent (a seccomp filter refusing even write(2): the host then says why)."""
    try:
        _serve(ctx, chan, stages)
    except OSError:
        return


# A filter loaded before setup ends (stage bounding, without noNewPrivileges) applies to the
# runtime's own calls: what it refuses is named as its doing, not left as a bare errno.
SECCOMP_CAUSE = "the seccomp filter refuses a call the runtime makes after loading it"


def seccomp_module():
    """runtime.linux.seccomp once stage seccomp has imported it (a config with /linux/seccomp,
    Seccomp.preload), else None: then no filter is prepared or loaded in this process."""
    return sys.modules.get("runtime.linux.seccomp")


def blame_filter(err: StageError) -> StageError:
    """`err` with the seccomp filter named as its cause, when one is loaded in this process
    and answers calls with err's errno (runtime.linux.seccomp.refuses)."""
    sc = seccomp_module()
    if not err.errno or sc is None or not sc.refuses(err.errno) or SECCOMP_CAUSE in err.detail:
        return err
    return StageError(err.stage, err.op, err.target, err.errno, "/linux/seccomp",
                      f"{os.strerror(err.errno).lower()}: {SECCOMP_CAUSE}")


def _serve(ctx: Context, chan: sync.Channel, stages: list[Stage]) -> None:
    by_name = {s.name: s for s in stages}
    ctx.chan = chan
    # fds come only with the items of stages that override Stage.host_fds (mounts): read with
    # recvmsg(2) until those are past, then with recv(2), so that what a seccomp profile loaded
    # in stage bounding must allow for the rest of setup stays recvfrom
    order = {s.name: i for i, s in enumerate(stages)}
    last = max((i for i, s in enumerate(stages) if type(s).host_fds is not Stage.host_fds),
               default=-1)
    pos = 0
    while True:
        try:
            msg = chan.recv(fds=pos <= last)
        except OSError as exc:  # the channel itself is refused (Channel.send may still write)
            name = stages[pos].name
            call = "recvmsg" if pos <= last else "recvfrom"
            err = blame_filter(StageError(name, f"sync {call}", "", exc.errno or 0))
            chan.send(sync.Err(name, err.to_dict()))
            return
        fds = chan.take_fds()
        if isinstance(msg, sync.Run):
            steps = [(msg.stage, msg.item, len(fds))]
        elif isinstance(msg, sync.Batch):
            steps = msg.steps
        else:
            return
        for name, item, count in steps:
            stage = by_name[name]
            pos = order[name]
            ctx.fds, fds = fds[:count], fds[count:]
            if not _answer(stage, ctx, chan, item):
                break
        for fd in fds:  # those of the steps after a failed one
            os.close(fd)


def _answer(stage: Stage, ctx: Context, chan: sync.Channel, item: str) -> bool:
    """Run one item and answer Ok or Err; False when it failed. After Ok, a stage with a
    handoff (exec) takes over this process and never returns."""
    try:
        _run_item(stage, ctx, item)
    except StageError as err:
        chan.send(sync.Err(stage.name, blame_filter(err).to_dict()))
        return False
    except OSError as exc:
        chan.send(sync.Err(stage.name, blame_filter(StageError(stage.name, "run", item,
                                                         exc.errno or 0)).to_dict()))
        return False
    except Exception as exc:  # a bug of ours: report it through the same channel
        detail = f"internal error: {type(exc).__name__}: {exc}"
        chan.send(sync.Err(stage.name, StageError(stage.name, "run", item, 0, "",
                                                  detail).to_dict()))
        return False
    chan.send(sync.Ok(stage.name))
    if type(stage).handoff is not Stage.handoff:
        chan.close()
        stage.handoff(ctx)  # never returns
        os._exit(1)
    return True


def _run_item(stage: Stage, ctx: Context, item: str) -> None:
    """stage.run on the container side; the fds the host sent for the item are closed after."""
    try:
        stage.run(ctx, item)
    finally:
        for fd in ctx.fds:
            os.close(fd)
        ctx.fds = []
