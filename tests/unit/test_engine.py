"""The stage engine: steps, observers, failures, and the container side over a real fork.

Host-only tests give the engine a dummy channel so it never forks. The container-side tests do
start it (engine.spawn): a fresh interpreter, spawned from a sealed copy of ours, rebuilds the
stages from the engine's pipeline reference, here `stages` of this module, so they are described
by JSON-able specs. They talk over the real socketpair; their stages only append lines to a file
in tmp_path. Every forked process is waited for, with a deadline, so none outlives its test.
"""
from __future__ import annotations

import os
import time

import pytest

from runtime import jsonfast, sync
from runtime.defaults import default_spec
from runtime.engine import CONTAINER, HOST, Context, Engine, Observer, Stage, inherited_fds
from runtime.errors import StageError
from runtime.linux import exeseal
from runtime.linux import syscalls as S
from runtime.stages.unshare import Unshare

FACTORY = "tests.unit.test_engine:stages"

# what a Recording stage raises, by name (exceptions are not JSON)
FAILURES = {
    "mount-error": lambda: StageError("m", "mount", '"proc" on "/proc"', 1, "/mounts/0"),
    "host-error": lambda: StageError("a", "mount", "/y", 1, "/mounts/1"),
    "eacces": lambda: PermissionError(13, "denied"),
    "eperm": lambda: OSError(1, "eperm"),
    "bug": lambda: ValueError("boom"),
    "host-bug": lambda: RuntimeError("bug"),
}


class Log:
    def __init__(self, path):
        self.path = str(path)

    def add(self, *words) -> None:
        with open(self.path, "a") as f:
            f.write(" ".join(str(w) for w in words) + "\n")

    def lines(self) -> list[list[str]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as f:
            return [ln.split() for ln in f.read().splitlines()]


class Recording(Stage):
    """Appends "name item pid" to the log; raises `fail` (an exception instance) on item `fail_on`."""

    def __init__(self, name, side, log, items=(), fail_on=None, fail=None):
        self.name, self.side, self.log = name, side, log
        self._items, self.fail_on = list(items), fail_on
        self.fail = FAILURES[fail]() if fail else None

    def items(self, ctx):
        return list(self._items)

    def run(self, ctx, item=""):
        self.log.add(self.name, item or "-", os.getpid())
        if self.fail_on is not None and item == self.fail_on:
            raise self.fail


class Slow(Stage):
    side = CONTAINER
    name = "slow"

    def run(self, ctx, item=""):
        time.sleep(0.2)


class Dies(Stage):
    side = CONTAINER
    name = "dies"

    def run(self, ctx, item=""):
        os._exit(3)


class HandsOff(Stage):
    side = CONTAINER
    name = "exec"

    def __init__(self, log):
        self.log = log

    def run(self, ctx, item=""):
        self.log.add("run", os.getpid())

    def handoff(self, ctx):
        self.log.add("handoff", os.getpid())
        os._exit(7)


class Probe(Stage):
    """Logs what the container side runs from and holds: its /proc/self/exe, the seals of that
    file, and the targets of its open fds (besides stdio and the channel)."""
    side = CONTAINER
    name = "probe"

    def __init__(self, log):
        self.log = log

    def run(self, ctx, item=""):
        fd = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
        try:
            seals = exeseal.get_seals(fd)
        finally:
            os.close(fd)
        self.log.add("exe", os.readlink("/proc/self/exe").replace(" ", "_"), seals)
        for name in os.listdir("/proc/self/fd"):
            n = int(name)
            if n > 2 and n != ctx.chan.fileno():
                try:
                    self.log.add("fd", n, os.readlink(f"/proc/self/fd/{n}"))
                except FileNotFoundError:  # the listing's own fd
                    pass


def stages(log: str, *specs: dict) -> list[Stage]:
    """The pipeline factory of these tests: one stage per spec, {"kind": "recording", "name",
    "side", "items", "fail_on", "fail": a FAILURES key}, or {"kind": "dies" | "slow" |
    "handoff" | "probe" | "unshare"}."""
    out: list[Stage] = []
    for spec in specs:
        kind = spec.get("kind", "recording")
        if kind == "recording":
            out.append(Recording(spec["name"], spec["side"], Log(log), spec.get("items", ()),
                                 spec.get("fail_on"), spec.get("fail")))
        elif kind == "dies":
            out.append(Dies())
        elif kind == "slow":
            out.append(Slow())
        elif kind == "handoff":
            out.append(HandsOff(Log(log)))
        elif kind == "probe":
            out.append(Probe(Log(log)))
        else:
            out.append(Unshare())
    return out


def rec(name, side, **kw) -> dict:
    return dict(kind="recording", name=name, side=side, **kw)


class Events(Observer):
    def __init__(self):
        self.events = []

    def before(self, engine, stage, item):
        self.events.append(("before", stage.name, item, engine.pos))

    def after(self, engine, stage, item):
        self.events.append(("after", stage.name, item, engine.pos))

    def failed(self, engine, stage, item, err):
        self.events.append(("failed", stage.name, item, str(err)))


class NoChild:
    """Stands in for the sync channel so host-only tests never fork."""

    def send(self, msg):
        raise AssertionError(f"a host-only test talked to the container side: {msg!r}")

    def recv(self):
        raise AssertionError("a host-only test talked to the container side")

    def close(self):
        pass


@pytest.fixture
def log(tmp_path):
    return Log(tmp_path / "log")


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return Context("t1", str(tmp_path), default_spec(), str(tmp_path / "rootfs"), str(tmp_path / "state"))


def wait_exit(pid: int, timeout: float = 5.0) -> int:
    """waitpid with a deadline; returns the exit status, kills and fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            assert os.WIFEXITED(status), f"pid {pid} died of signal {os.WTERMSIG(status)}"
            return os.WEXITSTATUS(status)
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"pid {pid} did not exit within {timeout}s")


@pytest.fixture
def engines(log):
    """make(ctx, *specs, observer=None) -> Engine on `stages(log, *specs)`; closes each one and
    reaps its container side."""
    made: list[Engine] = []

    def make(ctx, *specs, observer=None) -> Engine:
        e = Engine(ctx, FACTORY, [log.path, *specs], observer)
        made.append(e)
        return e

    yield make
    for e in made:
        pid = e.ctx.pid if e.chan is not None and not isinstance(e.chan, NoChild) else 0
        e.close()
        if pid > 0:
            try:
                wait_exit(pid)
            except ChildProcessError:
                pass


# --- in-process (host side only) ---------------------------------------------------------------

def test_context_crosses_the_wire(ctx):
    """What the container side rebuilds (sync.Init): every field set before it starts."""
    ctx.no_pivot, ctx.preserve_fds, ctx.console_socket = True, 2, "/run/x.sock"
    wire = ctx.to_wire()
    back = Context.from_wire(jsonfast.loads(jsonfast.dumps(wire)))
    for name in ("id", "bundle", "spec", "rootfs", "state_dir", "no_pivot", "no_new_keyring",
                 "preserve_fds", "console_socket", "fifo_fd", "sys"):
        assert getattr(back, name) == getattr(ctx, name), name
    assert back.console_sock is None and back.pid == 0 and back.notes == {}
    assert inherited_fds(ctx.preserve_fds) == {0, 1, 2, 3, 4}



def test_steps_expand_items(ctx, engines):
    engine = engines(ctx, rec("a", HOST, items=["x", "y"]), rec("b", CONTAINER))
    a, b = engine.stages
    assert (a.name, b.name) == ("a", "b")
    assert engine.steps == [(a, "x"), (a, "y"), (b, "")]
    assert engine.next_step == (a, "x") and not engine.done


def test_host_stages_run_in_process_with_observer(ctx, log, engines):
    obs = Events()
    engine = engines(ctx, rec("a", HOST, items=["x", "y"]), rec("b", HOST), observer=obs)
    engine.chan = NoChild()
    engine.run()
    assert engine.done and engine.next_step is None
    me = str(os.getpid())
    assert log.lines() == [["a", "x", me], ["a", "y", me], ["b", "-", me]]
    assert obs.events == [("before", "a", "x", 0), ("after", "a", "x", 1),
                          ("before", "a", "y", 1), ("after", "a", "y", 2),
                          ("before", "b", "", 2), ("after", "b", "", 3)]


def test_failing_step_stays_put_and_reraises(ctx, log, engines):
    obs = Events()
    engine = engines(ctx, rec("a", HOST, items=["x", "y", "z"], fail_on="y", fail="host-error"),
                     observer=obs)
    stage = engine.stages[0]
    err = stage.fail
    engine.chan = NoChild()
    assert engine.step() == (stage, "x")
    with pytest.raises(StageError) as first:
        engine.step()
    assert first.value is err and engine.failed is err and engine.pos == 1
    with pytest.raises(StageError) as second:
        engine.step()
    assert second.value is err and engine.pos == 1
    assert [line[1] for line in log.lines()] == ["x", "y"]  # "y" did not run again
    assert obs.events == [("before", "a", "x", 0), ("after", "a", "x", 1), ("before", "a", "y", 1),
                          ("failed", "a", "y", "stage a: mount /y (config /mounts/1): "
                                               "operation not permitted")]


def test_non_stage_errors_propagate_without_marking_failure(ctx, engines):
    engine = engines(ctx, rec("a", HOST, fail_on="", fail="host-bug"))
    engine.chan = NoChild()
    with pytest.raises(RuntimeError):
        engine.step()
    assert engine.pos == 0 and engine.failed is None


# --- the container side, a real process from a sealed copy -------------------------------------

def test_container_stages_run_in_the_child(ctx, log, engines):
    obs = Events()
    engine = engines(ctx, rec("cg", HOST), rec("m", CONTAINER, items=["/a", "/b"]), rec("h", HOST),
                     rec("p", CONTAINER), observer=obs)
    engine.step()  # first step spawns the container side, even for a host stage
    child = ctx.pid
    assert child > 0 and child != os.getpid() and engine.chan is not None
    engine.run()
    me = str(os.getpid())
    assert log.lines() == [["cg", "-", me], ["m", "/a", str(child)], ["m", "/b", str(child)],
                           ["h", "-", me], ["p", "-", str(child)]]
    # run(): the observer never stops, so /a and /b go as one Batch (both told before either
    # answers); a host stage ends a batch
    assert [e[0] for e in obs.events] == ["before", "after", "before", "before", "after", "after",
                                          "before", "after", "before", "after"]
    engine.close()
    assert wait_exit(child) == 1  # the container side exits on EOF of the channel


class OneByOne(Events):
    one_by_one = True  # as the debugger's: it may stop between any two steps


def test_an_observer_that_may_stop_gets_one_step_at_a_time(ctx, log, engines):
    obs = OneByOne()
    engine = engines(ctx, rec("m", CONTAINER, items=["/a", "/b", "/c"]), observer=obs)
    engine.run()
    assert [e[0] for e in obs.events] == ["before", "after"] * 3
    assert [line[1] for line in log.lines()] == ["/a", "/b", "/c"]


def test_a_batch_stops_at_its_first_failure(ctx, log, engines):
    obs = Events()
    engine = engines(ctx, rec("m", CONTAINER, items=["/a", "/b", "/c"], fail_on="/b",
                              fail="mount-error"), rec("p", CONTAINER), observer=obs)
    with pytest.raises(StageError) as err:
        engine.run()
    assert engine.failed is err.value and engine.pos == 1 and err.value.stage == "m"
    assert [line[1] for line in log.lines()] == ["/a", "/b"]  # nothing after the failure ran
    assert [e[:3] for e in obs.events if e[0] != "before"] == [("after", "m", "/a"),
                                                               ("failed", "m", "/b")]
    with pytest.raises(StageError):
        engine.run()  # stays failed, as step() does
    assert [line[1] for line in log.lines()] == ["/a", "/b"]


def test_container_side_runs_from_a_sealed_copy(tmp_path, ctx, log, engines):
    """C1 is a fresh interpreter whose /proc/self/exe is a sealed memfd, not the host's
    file; it holds the fds the Context names (here the O_PATH fd of exec.fifo) and none of the
    host's others, even inheritable ones."""
    fifo = tmp_path / "exec.fifo"
    os.mkfifo(fifo)
    ctx.fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_r, True)
    try:
        engine = engines(ctx, {"kind": "probe"})
        engine.spawn(wait_ready=True)
        with open(f"/proc/{ctx.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"ocish init"
        engine.step()
        leaked = os.readlink(f"/proc/self/fd/{leak_r}")
    finally:
        for fd in (ctx.fifo_fd, leak_r, leak_w):
            os.close(fd)
    lines = log.lines()
    assert lines[0][:2] == ["exe", "/memfd:ocish_(deleted)"]
    assert int(lines[0][2]) & exeseal.SEALS == exeseal.SEALS
    fds = {line[2] for line in lines[1:]}
    assert fds == {str(fifo)}, f"expected only exec.fifo besides stdio and the channel: {fds}"
    assert leaked not in fds


def test_container_side_errors_come_back_as_stage_errors(ctx, log, engines):
    cases = [
        ("mount-error",
         'stage m: mount "proc" on "/proc" (config /mounts/0): operation not permitted'),
        ("eacces", "stage m: run /x: permission denied"),
        ("bug", "stage m: run /x: internal error: ValueError: boom"),
    ]
    for fail, message in cases:
        engine = engines(ctx, rec("m", CONTAINER, items=["/x"], fail_on="/x", fail=fail))
        with pytest.raises(StageError) as info:
            engine.step()
        assert str(info.value) == message
        assert engine.pos == 0 and engine.failed is info.value
        if fail == "mount-error":
            assert info.value.to_dict() == FAILURES[fail]().to_dict()
        engine.close()
        assert wait_exit(ctx.pid) == 1


def test_container_side_serves_again_after_an_error(ctx, log, engines):
    """The child keeps serving after an Err: the debugger may retry after fixing the config."""
    engine = engines(ctx, rec("m", CONTAINER, items=["/x", "/y"], fail_on="/x", fail="eperm"))
    with pytest.raises(StageError):
        engine.step()
    engine.failed = None
    engine.pos = 1
    engine.step()
    assert [ln[1] for ln in log.lines()] == ["/x", "/y"]


def test_container_side_dying_mid_stage(ctx, engines):
    engine = engines(ctx, {"kind": "dies"})
    with pytest.raises(StageError) as info:
        engine.step()
    # how it died, read without reaping it: its reaper still gets the status
    assert str(info.value) == "stage dies: sync: container process exited during setup: exit status 3"
    pid = ctx.pid
    engine.close()
    assert wait_exit(pid) == 3


def test_container_side_is_silent_when_the_runtime_dies(ctx, engines, capfd):
    """A runtime killed while the container side runs a stage: its answer meets a closed
    socket (EPIPE or ECONNRESET), and it exits without printing on the caller's stderr."""
    engine = engines(ctx, {"kind": "slow"})
    pid = engine.spawn()
    engine.chan.send(sync.Run("slow"))
    engine.close()  # what the kernel does to the sockets of a SIGKILLed runtime
    assert wait_exit(pid) == 1
    assert capfd.readouterr().err == ""


def test_handoff_runs_after_ok(ctx, log, engines):
    engine = engines(ctx, {"kind": "handoff"})
    engine.step()
    pid = ctx.pid
    assert engine.done
    assert wait_exit(pid) == 7
    assert [ln[0] for ln in log.lines()] == ["run", "handoff"]


def test_unshare_fork_hands_the_channel_to_init(tmp_path, log, engines):
    """The real unshare stage with no namespaces: C1 forks C2, sends Pid, exits; the engine reaps
    C1 and follows C2, which serves the following stages."""
    S.prctl(S.PR_SET_CHILD_SUBREAPER, 1)  # so that C2, orphaned by C1, is ours to reap
    spec = default_spec()
    spec["linux"]["namespaces"] = []
    (tmp_path / "rootfs").mkdir()
    ctx = Context("t1", str(tmp_path), spec, str(tmp_path / "rootfs"), str(tmp_path / "state"))
    engine = engines(ctx, {"kind": "unshare"}, rec("after", CONTAINER))
    journal = []  # lifecycle.Setup's crash record: told the init's pid as soon as it is known
    ctx.journal = lambda what: journal.append((what, ctx.pid))
    c1 = engine.spawn()
    engine.step()
    c2 = ctx.pid
    assert journal == [("pid", c2)]
    assert c2 not in (c1, os.getpid())
    with pytest.raises(ChildProcessError):  # C1 is gone and was reaped by the engine
        os.waitpid(c1, os.WNOHANG)
    engine.step()
    assert log.lines() == [["after", "-", str(c2)]]
    engine.close()
    assert wait_exit(c2) == 1


def test_kill_tears_down_the_container_side(ctx, log):
    engine = Engine(ctx, FACTORY, [log.path, rec("m", CONTAINER), rec("n", CONTAINER)])
    engine.step()
    pid = ctx.pid
    engine.kill()
    assert engine.chan is None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
