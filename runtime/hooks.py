"""OCI hooks (runtime-spec 1.2, config.md "POSIX-platform Hooks"): run one hook, or every hook of a kind.

Where each kind runs, and who calls it:

    kind             called from                                   namespaces  path resolved  status
    ───────────────  ────────────────────────────────────────────  ──────────  ─────────────  ────────
    prestart         stage `hooks` (host side), item "prestart"    runtime     runtime        creating
    createRuntime    stage `hooks` (host side), item               runtime     runtime        creating
                     "createRuntime"; both after `mounts`, before
                     `pivot`
    createContainer  stage `container-hooks` (container side),     container   runtime        creating
                     right after `hooks`, still before pivot_root
    startContainer   Exec.handoff (container side): after `start`  container   container      created
                     opened exec.fifo, before execve(2)
    poststart        lifecycle.start, once the user process runs   runtime     runtime        running
    poststop         lifecycle.delete, after the container is gone runtime     runtime        stopped

The first four are create/start steps: the first failure aborts (create fails and leaves nothing
behind; start fails and the container process exits). poststart and poststop failures are only
warnings (`on_warning`), and the remaining hooks still run, as the spec asks.

Each hook is posix_spawn(2)ed (no `subprocess` on the hot path) with exactly its `args` (args[0]
is argv[0]; the path alone when absent) and `env`, the state JSON on stdin, stdout and stderr
captured, signal dispositions reset, and killed with SIGKILL once `timeout` seconds have passed.
Its working directory: the bundle for the runtime's kinds (runc chdirs into the bundle before it
creates, so prestart and createRuntime run there; crun's do_hooks passes the bundle for every
kind, poststart and poststop included), the rootfs for createContainer (runc's prepareRootfs
chdirs there just before), the process's cwd for startContainer (runc runs them after
finalizeNamespace's chdir).
We wait for the hook's own exit (a pidfd), not for EOF on its output, so a daemon it leaves behind
holding stdout cannot hang the runtime.

A hook is never left running by a runtime that stops waiting for it: each one leads a process
group of its own (its children with it; a terminal's Ctrl-C reaches the runtime, which decides),
and the group is SIGKILLed and the hook reaped when its timeout passes or when anything
interrupts the wait: KeyboardInterrupt, the debugger's SystemExit on SIGTERM, a replay's stop.
While a hook runs, SIGTERM and SIGHUP at their default action (`ocish create` from a shell) are
caught for as long as it takes to do that, then the runtime dies of the signal as it would have.
(runc 1.1 runs hooks in its own process group and leaves them behind when killed.) SIGKILL
cannot be caught: a runtime killed so leaves its hook as runc does. `RUNNING` holds the process
groups of the hooks running now, for a debugger that interrupts them (Ctrl-C).

Container side, this module runs after pivot_root too (startContainer): everything it uses is
imported here, at module import time.
"""
from __future__ import annotations

import os
import select
import time

import _signal

from runtime import jsonfast
from runtime.defaults import OCI_VERSION
from runtime.errors import OcishError, StageError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
_OUTPUT_MAX = 64 * 1024           # per stream: enough for an error line, bounded for a chatty hook
# signals a hook starts with at their default action (Python ignores SIGPIPE and SIGXFSZ)
_DEFAULT_SIGNALS = tuple(n for n in range(1, 32) if n not in (_signal.SIGKILL, _signal.SIGSTOP))
_POLL_MAX_MS = 2**31 - 1  # a timeout of I64_MAX seconds (valid, as for runc) waits in these steps
# signals that end a runtime at their default action: caught while a hook runs, to kill it first
_FATAL = (_signal.SIGTERM, _signal.SIGHUP)
RUNNING: set[int] = set()         # process groups (= pids) of the hooks running in this process


class _Abandoned(Exception):
    """The runtime went away while a container-side hook ran (run's watch_fd)."""


class _Stopped(BaseException):
    """A fatal signal arrived while a hook ran (see _FATAL)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame) -> None:
    raise _Stopped(signum)


class HookError(OcishError):
    """A hook that could not run, failed, or timed out; `str()` is one line naming it."""

    def __init__(self, kind: str, index: int, path: str, detail: str, errno: int = 0) -> None:
        self.kind, self.index, self.path = kind, index, path
        self.detail, self.errno = detail, errno
        self.pointer = f"/hooks/{kind}/{index}"
        super().__init__(f"{kind} hook {path} (config {self.pointer}): "
                         f"{detail or os.strerror(errno).lower()}")

    def stage_error(self, stage: str) -> StageError:
        return StageError(stage, f"{self.kind} hook", self.path, self.errno, self.pointer, self.detail)


def on_warning(message: str) -> None:
    """How poststart/poststop failures are reported; the CLI may replace it to log them too."""
    try:
        os.write(2, f"ocish: warning: {message}\n".encode())
    except OSError:
        pass


def hooks_of(spec_or_hooks: dict, kind: str, from_spec: bool = True) -> list[dict]:
    """The hooks of one kind: from a whole config (`spec["hooks"][kind]`) or a hooks object."""
    hooks = spec_or_hooks.get("hooks") if from_spec else spec_or_hooks
    return (hooks or {}).get(kind) or []


def state(cid: str, status: str, pid: int, bundle: str, annotations: dict | None) -> str:
    """The container's state as the spec defines it, which every hook reads on stdin; no pid when
    it is 0 (poststop: the process is gone and its number may already be someone else's)."""
    st = {"ociVersion": OCI_VERSION, "id": cid, "status": status, "pid": pid, "bundle": bundle}
    if pid <= 0:
        del st["pid"]
    if annotations:
        st["annotations"] = annotations
    return jsonfast.dumps(st)


def describe(hook: dict) -> str:
    """One line for `explain`: the command and its limits."""
    args = hook.get("args") or [hook["path"]]
    text = hook["path"] + "".join(f" {a}" for a in args[1:])
    if args[0] != hook["path"]:
        text += f" (argv[0] {args[0]!r})"
    if hook.get("env"):
        text += f", {len(hook['env'])} env vars"
    if hook.get("timeout"):
        text += f", timeout {hook['timeout']}s"
    return text


def run_all(kind: str, hooks: list[dict], state_json: str, warn_only: bool = False,
            close_fds: tuple = (), watch_fd: int = -1, cwd: str | None = None
            ) -> list[HookError]:
    """Run the hooks of `kind` in order, in directory `cwd` (ours when None). Failures raise the
    first HookError, or with `warn_only` (poststart, poststop) go to `on_warning` and are
    returned while the rest still run. `watch_fd`: see run()."""
    errors = []
    for i, hook in enumerate(hooks):
        try:
            run(hook, kind, i, state_json, close_fds, watch_fd, cwd)
        except HookError as err:
            if not warn_only:
                raise
            on_warning(str(err))
            errors.append(err)
    return errors


def run(hook: dict, kind: str, index: int, state_json: str, close_fds: tuple = (),
        watch_fd: int = -1, cwd: str | None = None) -> None:
    """Run one hook to completion in directory `cwd` (ours when None); raise HookError unless it
    exits with status 0 in time (a `cwd` it cannot enter fails it, as crun's do_hooks does).
    `watch_fd` (the container side's sync channel, on which nothing arrives during a step):
    when it becomes readable or hangs up, the runtime is gone or gave up, and the hook is
    killed (a createContainer hook must not outlive a runtime killed during create)."""
    path = hook["path"]
    argv = hook.get("args") or [path]
    env = {}
    for entry in hook.get("env") or []:
        key, _, value = entry.partition("=")
        if key:
            env[key] = value
    timeout = hook.get("timeout")
    fds: list[int] = []
    # A hook that does not read its stdin must give us EPIPE, not SIGPIPE: exec's handoff has
    # already put every signal back to its default when startContainer hooks run.
    old_pipe = _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    caught = {n: _signal.signal(n, _stop) for n in _FATAL
              if _signal.getsignal(n) == _signal.SIG_DFL}
    try:
        in_r, in_w = os.pipe()
        fds += (in_r, in_w)
        out_r, out_w = os.pipe()
        fds += (out_r, out_w)
        err_r, err_w = os.pipe()
        fds += (err_r, err_w)
        actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                   (os.POSIX_SPAWN_DUP2, err_w, 2)]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in close_fds]
        pid = _spawn(kind, index, path, argv, env, actions, cwd)
        for fd in (in_r, out_w, err_w):
            os.close(fd)
            fds.remove(fd)
        fds.clear()  # _wait closes the rest
        status, out, err, timed_out = _wait(pid, in_w, out_r, err_r, state_json.encode(),
                                            timeout, watch_fd)
    except _Abandoned:
        raise HookError(kind, index, path, "the runtime stopped waiting for it: killed") from None
    except _Stopped as e:  # the hook is gone (_wait): now die of the signal, as we would have
        for n, handler in caught.items():
            _signal.signal(n, handler)
        caught = {}
        os.kill(os.getpid(), e.signum)
        raise
    finally:
        for fd in fds:
            os.close(fd)
        _signal.signal(_signal.SIGPIPE, old_pipe)
        for n, handler in caught.items():
            _signal.signal(n, handler)
    if timed_out:
        raise HookError(kind, index, path, f"timeout: still running after {timeout}s, killed")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return
    why = (f"exit status {os.WEXITSTATUS(status)}" if os.WIFEXITED(status)
           else f"killed by signal {os.WTERMSIG(status)}")
    line = _first_line(err) or _first_line(out)
    raise HookError(kind, index, path, f"{why}: {line}" if line else why)


def _kill(pid: int) -> None:
    """SIGKILL the hook's process group (the hook and what it started), or the hook alone when
    it made a group of its own."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, _signal.SIGKILL)
            return
        except ProcessLookupError:
            pass


def _spawn(kind: str, index: int, path: str, argv: list[str], env: dict, actions: list,
           cwd: str | None) -> int:
    """posix_spawn(2) the hook in `cwd`: os.posix_spawn has no chdir action (glibc's
    posix_spawn_file_actions_addchdir_np is not exposed), so this single-threaded process
    enters `cwd` for the spawn and returns to where it was (relative --pid-file paths are
    resolved later)."""
    here = -1
    try:
        if cwd is not None:
            here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.chdir(cwd)
            except OSError as e:
                raise HookError(kind, index, path, f"chdir {cwd}: "
                                f"{os.strerror(e.errno or 0).lower()}", e.errno or 0) from None
        try:
            return os.posix_spawn(path, argv, env, file_actions=actions,
                                  setpgroup=0, setsigdef=_DEFAULT_SIGNALS,
                                  setsigmask=())
        except OSError as e:
            raise HookError(kind, index, path, "" if e.errno else str(e), e.errno or 0) from None
    finally:
        if here >= 0:
            os.fchdir(here)
            os.close(here)


def _wait(pid: int, in_w: int, out_r: int, err_r: int, data: bytes,
          timeout: int | None, watch_fd: int = -1) -> tuple[int, bytes, bytes, bool]:
    """Feed stdin, collect stdout/stderr until the hook exits or its time is up; reap it.
    Returns (wait status, stdout, stderr, timed out). Closes the three fds. On its timeout, or
    when anything interrupts the wait (a signal's exception), the hook's process group is
    killed and the hook reaped before this returns or raises."""
    RUNNING.add(pid)
    try:
        return _collect(pid, in_w, out_r, err_r, data, timeout, watch_fd)
    except BaseException:
        _kill(pid)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise
    finally:
        RUNNING.discard(pid)


def _collect(pid: int, in_w: int, out_r: int, err_r: int, data: bytes,
             timeout: int | None, watch_fd: int) -> tuple[int, bytes, bytes, bool]:
    pidfd = os.pidfd_open(pid)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    open_fds = [in_w, out_r, err_r]
    poller = select.poll()
    os.set_blocking(in_w, False)
    poller.register(in_w, select.POLLOUT)
    for fd in (out_r, err_r):
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    if watch_fd >= 0:
        poller.register(watch_fd, select.POLLIN | select.POLLHUP)
    deadline = time.monotonic() + timeout if timeout else None
    timed_out = exited = False

    def done_with(fd: int) -> None:
        poller.unregister(fd)
        os.close(fd)
        open_fds.remove(fd)

    try:
        while not exited:
            wait_ms = -1
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                wait_ms = min(int(left * 1000) + 1, _POLL_MAX_MS)  # poll(2) takes an int
            for fd, _ in poller.poll(wait_ms):
                if fd == pidfd:
                    exited = True
                elif fd == watch_fd:
                    raise _Abandoned()
                elif fd == in_w:
                    try:
                        data = data[os.write(in_w, data):]
                    except BlockingIOError:
                        continue
                    except OSError:  # EPIPE: the hook does not read its stdin
                        data = b""
                    if not data:
                        done_with(in_w)
                elif fd in open_fds:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        if len(bufs[fd]) < _OUTPUT_MAX:
                            bufs[fd] += chunk
                    else:
                        done_with(fd)
        if timed_out:
            _kill(pid)
        for fd in (out_r, err_r):  # what it wrote before exiting; never wait for a straggler
            if fd in open_fds:
                os.set_blocking(fd, False)
                try:
                    while len(bufs[fd]) < _OUTPUT_MAX:
                        chunk = os.read(fd, 65536)
                        if not chunk:
                            break
                        bufs[fd] += chunk
                except BlockingIOError:
                    pass
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
        for fd in open_fds:
            os.close(fd)
    return status, bytes(bufs[out_r]), bytes(bufs[err_r]), timed_out


def _first_line(raw: bytes) -> str:
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line[:200]
    return ""


def start_container(ctx, fifo_w: int) -> None:
    """Exec's handoff, once `start` has opened exec.fifo and before the success byte "0": run the
    startContainer hooks in the container (path resolved after pivot_root, as the container's
    user). A failure is written to the fifo as "1" + the one-line error, which `start` reports,
    and the container process exits: it never reaches execve(2)."""
    todo = hooks_of(ctx.spec, "startContainer")
    if not todo:
        return
    st = state(ctx.id, "created", ctx.pid, ctx.bundle, ctx.spec.get("annotations"))
    try:
        # --preserve-fds are the user process's, not the hook's
        run_all("startContainer", todo, st, close_fds=tuple(range(3, 3 + ctx.preserve_fds)))
    except HookError as err:
        os.write(fifo_w, START_FAILED + str(err).encode()[:PIPE_BUF - 96])  # one atomic write
        os._exit(1)


PIPE_BUF = 4096
START_OK = b"0"
START_FAILED = b"1"
