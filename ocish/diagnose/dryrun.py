"""Step 3 of diagnose: the real pipeline, in a throwaway container, watched for its first moments.

A debugger session without a person (DESIGN.md): `ocish.debugger.Debugger` loads the bundle under
a temporary --root with a unique id and runs the runtime's own engine until the first failure or
the end of setup, exactly as `ocish debug` followed by `continue` would; then `start`, and a short
window in which the process may die. Nothing here sets a container up by itself.

    diagnose                         Debugger / runtime engine             container process
    ────────                         ─────────────────────────             ─────────────────
    stdout, stderr -> temp files ──► load: Setup + spawn (inherits them) ─► C1, blocked
    [strace -f -p C1, re-run only]
    setup deadline (SIGALRM)         cont(): every stage, stop at the first StageError
    start, pidfd poll (window)       lifecycle.start                        execve, runs or dies
    cgroup counters (oom_kill, pids.events), wait status, last lines of stdout/stderr
    teardown: Debugger.teardown (process, cgroup, state dir), strays we forked, the temp --root

The dry run never joins a cgroup it did not make: when config.json's cgroupsPath already exists
(a running container, a pod) the throwaway container gets a sibling of it instead, or tearing it
down would kill what lives there. Ctrl-C, SIGTERM and SIGHUP arrive as `Interrupted` and unwind
through the same teardown, with the signals held off until it is done.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

from ocish.debugger import Debugger
from ocish.diagnose.model import Outcome
from runtime.errors import OcishError, StageError
from runtime.linux.procfs import children  # ours: the container's orphans come back to us

TAIL_LINES = 12
TAIL_BYTES = 64 * 1024
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP during a diagnosis."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SetupTimeout(Exception):
    """Setup did not finish within the deadline (a hook without a timeout that hangs ...)."""


def run(bundle: str, window: float, setup_timeout: float, trace: bool = False,
        root_dir: str | None = None) -> Outcome:
    """Set the bundle up and start it in a throwaway container; watch it for `window` seconds.
    With `trace`, strace follows the container process from its first fork (the last system
    calls go to Outcome.trace). The container's --root is a new temporary directory, in
    `root_dir` when given (else the system's temp dir). Removes everything it made before
    returning, whatever happens; raises Interrupted (after the teardown) when a stop signal
    came."""
    out = Outcome(window=window)
    root = tempfile.mkdtemp(prefix="ocish-diagnose-", dir=root_dir)
    cid = f"diagnose-{uuid.uuid4().hex[:10]}"
    stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    dbg: Debugger | None = None
    tracer: Strace | None = None
    before = children()
    try:
        dbg = Debugger(root)
        try:
            with _stdio(stdout.fileno(), stderr.fileno()):
                dbg.load(bundle, cid)
        except OcishError as e:  # what `create` would say before any stage runs
            out.phase, out.reason, out.error_text = "setup", str(e), f"create failed: {e}"
            return out
        out.notes += _private_cgroup(dbg)
        if trace:
            tracer = Strace.attach(dbg.setup.ctx.pid)
        _setup(dbg, out, setup_timeout)
        if dbg.st is not None:
            _start_and_watch(dbg, out, window)
        out.counters = read_counters(_cgroup_paths(dbg))
    finally:
        with held_signals():
            if tracer is not None:
                out.trace, out.last_syscall = tracer.finish()
            _teardown(dbg, root, before)
            out.stdout, out.stderr = tail(stdout), tail(stderr)
            stdout.close()
            stderr.close()
    return out


def _setup(dbg: Debugger, out: Outcome, deadline: float) -> None:
    t0 = time.monotonic()
    last = None
    try:
        with _alarm(deadline):
            steps = dbg.advance("continue").steps
            last = steps[-1] if steps else None
    except SetupTimeout:
        stage, item = dbg.setup.engine.next_step or (None, "")
        out.phase, out.stage, out.item = "setup", stage.name if stage else "", item
        out.reason = f"setup did not finish within {deadline:g}s"
        return
    finally:
        out.setup_seconds = time.monotonic() - t0
    if last is not None and last.error is not None:
        err: StageError = last.error
        out.phase, out.stage, out.item = "setup", err.stage, last.item
        out.error, out.error_text = err.to_dict(), f"create failed: {err}"
        if err.op == "sync" or last.death is not None:  # the container side died: how?
            _death(dbg, dbg.setup.ctx.pid, out, 1.0)


def _start_and_watch(dbg: Debugger, out: Outcome, window: float) -> None:
    pid = dbg.st["pid"]
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pidfd = -1
    t0 = time.monotonic()
    try:
        try:
            dbg.start()
        except OcishError as e:
            out.phase, out.start_error = "start", str(e)
            _death(dbg, pid, out, 1.0)
            return
        out.phase = "running"
        if pidfd < 0 or select.select([pidfd], [], [], window)[0]:
            out.phase = "exited"
            _death(dbg, pid, out, 1.0)
        out.seconds = time.monotonic() - t0
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _death(dbg: Debugger, pid: int, out: Outcome, timeout: float) -> None:
    """How `pid` (the container process: the debugger reaps it, as its parent or subreaper)
    ended; nothing when it did not end within `timeout` s."""
    status = dbg.wait_status(pid, timeout)
    if status is None:
        return
    if os.WIFSIGNALED(status):
        out.signal = signal.Signals(os.WTERMSIG(status)).name
    else:
        out.exit_status = os.waitstatus_to_exitcode(status)


def _private_cgroup(dbg: Debugger) -> list[str]:
    """Point the throwaway container at a cgroup of its own when config.json's one exists."""
    from runtime import cgroups
    ctx = dbg.setup.ctx
    path = ctx.linux.get("cgroupsPath")
    if not isinstance(path, str) or not path:
        return []
    try:
        taken = any(os.path.isdir(d) for d in cgroups.open_manager(path, ctx.id).paths().values())
    except StageError:
        return []  # stage cgroup reports it
    if not taken:
        return []
    ctx.spec["linux"]["cgroupsPath"] = new = f"{path.rstrip('/')}-{ctx.id}"
    return [f"cgroupsPath {path} exists already (a running container?): the dry run used {new}"]


def _cgroup_paths(dbg: Debugger | None) -> dict:
    if dbg is None or dbg.setup is None or dbg.setup.ctx.cgroup is None:
        return {}
    return dbg.setup.ctx.cgroup.paths()


def read_counters(paths: dict) -> dict:
    """What the kernel counted in the container's cgroup: memory limit, peak and OOM kills; pids
    limit and refused forks. v1 (memory.oom_control, memory.max_usage_in_bytes, pids.events) and
    v2 (memory.events, memory.peak, pids.events)."""
    out: dict = {}
    mem, pids = paths.get("memory"), paths.get("pids")
    v2 = paths.get("")
    if mem:
        out["memory_limit"] = _int(f"{mem}/memory.limit_in_bytes")
        out["memory_peak"] = _int(f"{mem}/memory.max_usage_in_bytes")
        out["memory_failcnt"] = _int(f"{mem}/memory.failcnt")
        out["oom_kill"] = _keyed(f"{mem}/memory.oom_control").get("oom_kill")
    elif v2:
        out["memory_limit"] = _int(f"{v2}/memory.max")
        out["memory_peak"] = _int(f"{v2}/memory.peak")
        out["oom_kill"] = _keyed(f"{v2}/memory.events").get("oom_kill")
    pdir = pids or v2
    if pdir:
        out["pids_limit"] = _int(f"{pdir}/pids.max")
        out["pids_max_events"] = _keyed(f"{pdir}/pids.events").get("max")
        out["pids_peak"] = _int(f"{pdir}/pids.peak")
    return {k: v for k, v in out.items() if v is not None}


def _int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _keyed(path: str) -> dict[str, int]:
    try:
        with open(path) as f:
            pairs = [line.split() for line in f]
    except OSError:
        return {}
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].isdigit()}


def _teardown(dbg: Debugger | None, root: str, before: set[int]) -> None:
    """Remove the container (process, cgroups, state dir), every process we started since
    `before` (a hook killed by the setup deadline, its orphans), and the temporary --root."""
    if dbg is not None:
        try:
            dbg.teardown()
        except OcishError:
            pass
    kill_strays(before)
    shutil.rmtree(root, ignore_errors=True)


def kill_strays(before: set[int]) -> None:
    """SIGKILL and reap our children that were not there `before`, and the orphans that come
    back to us (we are a subreaper) as they die, until none is left."""
    for _ in range(100):
        strays = children() - before
        if not strays:
            return
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def tail(f) -> list[str]:
    """The last lines the container wrote to one of its temp files."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - TAIL_BYTES))
    lines = f.read().decode("utf-8", "replace").splitlines()
    # a terminal's escape sequences and other controls would act on ours when printed
    return ["".join(c if c.isprintable() or c == "\t" else "?" for c in line).rstrip()
            for line in lines[-TAIL_LINES:]]


@contextmanager
def _stdio(out_fd: int, err_fd: int) -> Iterator[None]:
    """Our stdout and stderr are the temp files while the container side is started."""
    import sys
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def fire(_num, _frame):
        raise SetupTimeout()
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def held_signals() -> Iterator[None]:
    """Stop signals wait (pending) until the block is done: a teardown is never cut short."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def install_stop_handlers() -> None:
    """Turn Ctrl-C, SIGTERM and SIGHUP into Interrupted in this process only; a process forked
    from us (the container side before it execs, a tracer) just exits."""
    owner = os.getpid()

    def stop(signum: int, _frame) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise Interrupted(signum)
    for s in STOP_SIGNALS:
        signal.signal(s, stop)


class Strace:
    """strace -f attached to the container side, for the last system calls before a death."""

    def __init__(self, proc: subprocess.Popen, path: str) -> None:
        self.proc, self.path = proc, path

    @classmethod
    def attach(cls, pid: int, timeout: float = 3.0) -> "Strace | None":
        exe = shutil.which("strace")
        if exe is None:
            return None
        fd, path = tempfile.mkstemp(prefix="ocish-diagnose-strace-")
        os.close(fd)
        proc = subprocess.Popen([exe, "-f", "-qq", "-o", path, "-p", str(pid)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _tracer_pid(pid) == proc.pid:
                return cls(proc, path)
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        os.unlink(path)
        return None

    def finish(self) -> tuple[list[str], str]:
        """Detach, and return (the last lines of the trace, the last system call made)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # strace detaches from its tracees and exits
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            with open(self.path, "rb") as f:
                lines = tail(f)
        finally:
            os.unlink(self.path)
        return lines, last_syscall(lines)


def last_syscall(lines: list[str]) -> str:
    """The system call that ended the process, as strace shows it: when seccomp killed it (the
    end reads "+++ killed by SIGSYS"), its last call, whose "result" strace shows as the call's
    own number; killed by another signal, its last call; exited, its last call that failed
    ("execve(...) = -1 ENOENT ..."), else its last call, leaving out a C library's start-up
    calls (rseq ...) when there are others. Lines are strace -f's ("PID
    call(args) = result"); the process is the one whose end ("+++") comes last."""
    def split(line: str) -> tuple[str, str]:
        pid, _, body = line.partition(" ")
        return (pid, body.strip()) if pid.isdigit() else ("", line.strip())
    ends = [(pid, body) for pid, body in map(split, lines) if body.startswith("+++")]
    who = ends[-1][0] if ends else ""
    mine = [body for pid, body in map(split, lines) if not who or pid == who]
    calls = [b for b in mine if b and not b.startswith(("+++", "---", "<..."))]
    if ends and "killed by SIGSYS" in ends[-1][1] and calls:
        return _short(calls[-1].rsplit(" = ", 1)[0] + " (killed by seccomp)")
    if ends and "killed by" in ends[-1][1] and calls:  # the call it was in, or had just made
        return _short(calls[-1])
    meaningful = [b for b in calls if not _startup_noise(b)]
    failed = [b for b in meaningful if " = -1 " in b]
    return _short((failed or meaningful or calls or [""])[-1])


# What a C library's start-up tries and may see fail without harm (glibc registers rseq and a
# robust futex list, the loader looks for /etc/ld.so.preload): never the cause of a death
STARTUP_CALLS = ("rseq", "set_robust_list", "set_tid_address", "arch_prctl")


def _startup_noise(call: str) -> bool:
    return syscall_name(call) in STARTUP_CALLS or "/etc/ld.so.preload" in call


def syscall_name(line: str) -> str:
    """"openat(AT_FDCWD, ...) = 3" -> "openat"."""
    return line.split("(", 1)[0].strip() if "(" in line else ""


def _short(text: str) -> str:
    text = re.sub(r" {2,}= ", " = ", text)  # strace pads the result into a column
    return text if len(text) <= 160 else text[:157] + "..."


def _tracer_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
