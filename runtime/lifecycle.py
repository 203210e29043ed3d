"""Container lifecycle: create, start, run, state, list, kill, delete — the code behind the CLI.

`Setup` is one container being created: its state dir, exec.fifo, context and engine. `create`
runs the engine straight through; the debugger builds the same `Setup` and steps the engine
itself, then calls `finish()` exactly as `create` does.
"""
from __future__ import annotations

import os
import time

from runtime import crashpoint, jsonfast, state
from runtime.defaults import OCI_VERSION
from runtime.errors import OcishError, SpecError, StageError
from runtime.linux import procfs, sig


class Setup:
    """A container between `create`'s first step and its state.json being written."""

    def __init__(self, root: str, cid: str, bundle: str, observer=None,
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 console_socket: str | None = None, pid_file: str | None = None,
                 launched=None) -> None:
        """`launched`: the container side, already started (engine.launch) by `create`; its
        engine owns it once made (the caller kills it when this raises)."""
        # Imported here: state, kill, delete and list never need the engine or the stages.
        from runtime import spec as specmod
        from runtime.engine import Context, Engine
        state.validate_id(cid)
        bundle = os.path.abspath(bundle)
        spec, rootfs = specmod.load(bundle)
        self.root, self.pid_file = root, pid_file
        os.makedirs(root, 0o700, exist_ok=True)
        self.dir = state.container_dir(root, cid)
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise OcishError(f"container with id exists: {cid}") from None
        crashpoint.reached("create:dir")
        try:
            # recorded before anything that needs undoing exists (state.py: crash safety)
            self.st = state.begin(root, cid, bundle, rootfs, spec.get("annotations") or {})
            fifo = os.path.join(self.dir, state.FIFO)
            os.mkfifo(fifo)
            os.chmod(fifo, 0o622)  # writable by the container's user, whatever our umask
            # O_PATH: reachable later as /proc/self/fd/N, after pivot_root hides the state dir
            fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        except (OSError, OcishError):
            state.remove_dir(self.dir)
            raise
        self.ctx = Context(cid, bundle, spec, rootfs, self.dir, no_pivot=no_pivot,
                           no_new_keyring=no_new_keyring, preserve_fds=preserve_fds,
                           console_socket=console_socket, fifo_fd=fifo_fd)
        if not any(n.get("type") == "mount" for n in self.ctx.linux.get("namespaces") or []):
            self._record_host_mounts()
        self.ctx.journal = self.journal
        self.engine = Engine(self.ctx, "runtime.stages:pipeline", (), observer, launched)

    def _record_host_mounts(self) -> None:
        """No mount namespace: the container's mounts will be made in ours; record what
        `delete` must unmount (runtime/hostmounts.py) before the container side starts."""
        from runtime import hostmounts
        try:
            self.st["host_mounts"] = hostmounts.record(self.ctx.rootfs)
            state.save(self.root, self.st)
            other = hostmounts.sharer(self.root, self.st["id"], self.st["host_mounts"])
            if other is not None:
                raise SpecError("/root/path", f"{self.ctx.rootfs} is the rootfs of container "
                                              f"{other}, which has no mount namespace either: "
                                              f"both would mount on it here (give one a mount "
                                              f"namespace or a rootfs of its own)")
        except (OSError, SpecError):
            os.close(self.ctx.fifo_fd)
            state.remove_dir(self.dir)
            raise

    def journal(self, what: str) -> None:
        """Record what a `delete` after a crash must undo, one small rewrite of state.json:
        "cgroup", the cgroups the cgroup stage is about to make (and its process, C1); "pid",
        the container's init, once known, when there is no cgroup to find it by (rootless;
        a cgroup holds every process of the container, and killing them needs no pid)."""
        ctx, st = self.ctx, self.st
        if what == "pid" and st["cgroup"]:
            return
        st["pid"] = ctx.pid
        try:
            st["start_time"] = procfs.start_time(ctx.pid) if ctx.pid > 0 else None
        except OSError:  # already gone: nothing to kill later
            st["start_time"] = None
        st["cgroup"] = ctx.cgroup.planned_state() if ctx.cgroup else None
        state.save(self.root, st)

    def finish(self) -> dict:
        """After the last stage: record the container, so `start`, `state` and `list` find it.
        A failure here (the pid file's directory is missing, say) undoes everything, as runc
        destroys the container when it cannot write the pid file."""
        try:
            return self._finish()
        except BaseException:
            self.abort()
            raise

    def _finish(self) -> dict:
        ctx, st = self.ctx, self.st
        del st["creating"]
        st.update(pid=ctx.pid, start_time=procfs.start_time(ctx.pid), created=state.rfc3339_now(),
                  cgroup=ctx.cgroup.to_state() if ctx.cgroup else None)
        later = {k: v for k, v in (ctx.spec.get("hooks") or {}).items() if k in LATER_HOOKS and v}
        if later:  # run by `start` and `delete`
            st["hooks"] = later
        # `exec` takes seccomp, namespaces and process defaults from the config the container
        # was created with, as runc keeps it in its state.json (the bundle may change or go)
        # (0600: its env may hold secrets, and the state dir is traversable by all)
        fd = os.open(os.path.join(self.dir, state.CONFIG_COPY),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            f.write(jsonfast.dumps(ctx.spec))
        if self.pid_file:
            write_pid_file(self.pid_file, ctx.pid)
        crashpoint.reached("create:config")
        state.save(self.root, st)
        crashpoint.reached("create:saved")
        self.engine.close()
        os.close(ctx.fifo_fd)
        return st

    def abort(self) -> None:
        """Undo everything: the container process, its cgroups, the state dir."""
        if self.ctx.pid > 0:
            _unthrottle([self.ctx.pid] + (self.ctx.cgroup.pids() if self.ctx.cgroup else []))
        self.engine.kill()
        try:
            _remove_host_mounts(self.st)
            if self.ctx.cgroup is not None:
                self.ctx.cgroup.destroy()
        finally:
            try:
                os.close(self.ctx.fifo_fd)
            except OSError:
                pass
            state.remove_dir(self.dir)


def write_pid_file(path: str, pid: int) -> None:
    """Write `pid` to `path` through a temporary file beside it (runc's createPidFile);
    OcishError naming --pid-file when that fails, with the temporary file removed."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OcishError(f"--pid-file {jsonfast.quote(path)}: "
                         f"{os.strerror(e.errno or 0).lower()}") from None


def create(root: str, cid: str, bundle: str, **opts) -> dict:
    return _create(root, cid, bundle, True, opts)[0]


def _create(root: str, cid: str, bundle: str, detach: bool, opts: dict):
    """create; returns (state, a runtime.terminal.Attach when `run` keeps the pty master).
    The container side is started first (engine.launch): its interpreter's start-up then
    overlaps reading the config, making the state dir and the cgroups (issue 11)."""
    from runtime import engine
    state.validate_id(cid)  # nothing started for an id that cannot be one
    try:
        launched = engine.launch(opts.get("preserve_fds", 0))
        try:
            setup = Setup(root, cid, bundle, launched=launched, **opts)
        except BaseException:  # nothing else holds it yet
            launched.kill()
            raise
        attach = run_setup(setup, detach)
    except StageError as exc:
        raise OcishError(f"create failed: {exc}") from None
    return setup.finish(), attach


def run_setup(setup, detach: bool, stdin_fd: int | None = None, own_group: bool = False):
    """Run a Setup's (or an ExecSetup's) pipeline straight through, after the terminal checks
    and the console socket; on any failure undo everything. Returns the terminal Attach that
    holds the pty master when the caller lends its own terminal, else None. stdin_fd and
    own_group go to Engine.spawn (the debugger's choices)."""
    from runtime.linux import syscalls as S
    # The container process stays ours to wait on: what C1 forks (init, exec's process) comes
    # back to us when C1 exits, so a death during setup is told by its wait status (the
    # engine's _died) and `run` reaps its init; once we exit, it goes on to our own subreaper
    # (conmon, containerd-shim), where runc's init goes (nsexec's CLONE_PARENT makes it runc's
    # child).
    S.prctl(S.PR_SET_CHILD_SUBREAPER, 1)
    ctx, attach = setup.ctx, None
    try:
        if ctx.process.get("terminal") or ctx.console_socket:
            from runtime import terminal  # runc's checkTerminal, and the console socket
            attach = terminal.prepare(ctx, detach)
        # after prepare: C1 inherits the console socket; before the first step: C1 starts
        # while this process imports the stages and runs the host's first ones
        setup.engine.spawn(stdin_fd=stdin_fd, own_group=own_group)
        setup.engine.run()
    except BaseException:
        setup.abort()
        if attach is not None:
            attach.close()
        raise
    finally:
        if ctx.console_sock is not None:  # the container side has its own copy
            ctx.console_sock.close()
    return attach


def start(root: str, cid: str) -> None:
    st = state.load(root, cid)
    status = state.status(root, st)
    if status == "stopped":
        raise OcishError("cannot start a container that has stopped")
    if status == "creating":
        raise OcishError("cannot start a container that is still being created")
    if status != "created":
        raise OcishError("cannot start an already running container")
    fifo = os.path.join(state.container_dir(root, cid), state.FIFO)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    import select  # a shared library to load: only `start` and `run` need it
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(100):  # the container writes one byte, then execs
            if not state.alive(st):
                raise OcishError("cannot start a container that has stopped")
        if os.read(fd, 1) == b"1":  # a startContainer hook failed: the process exits
            why = os.read(fd, 4096).decode(errors="replace")
            _signal(st["pid"], sig.SIGKILL)
            _wait_stopped(st)
            raise OcishError(f"start failed: {why}")
        os.unlink(fifo)
        poller.poll(1000)  # POLLHUP: execve closed the fifo; the user process runs
    finally:
        os.close(fd)
    if st.get("hooks", {}).get("poststart"):
        _later_hooks(st, "poststart", "running")


def run(root: str, cid: str, bundle: str, detach: bool = False, keep: bool = False, **opts) -> int:
    """create + start; in the foreground, wait for the container and return its exit status."""
    if detach:
        create(root, cid, bundle, **opts)
        start(root, cid)
        return 0
    st, tty = _create(root, cid, bundle, False, opts)  # a subreaper: init is ours to reap
    try:
        return wait_foreground(st["pid"], tty, begin=lambda: start(root, cid))
    finally:
        if not keep:
            delete(root, cid, force=True)


def wait_foreground(pid: int, attach=None, keep: tuple[int, ...] = (), begin=None) -> int:
    """Forward signals to the process until it exits and, with a terminal, copy it to and from
    ours; returns its exit status, 128+N when signal N killed it. `begin` runs once the
    forwarding is in place (run's `start`). Signals in `keep` stay ours (the debugger's SIGTERM
    and SIGHUP tear it down)."""
    relay = lambda num, _frame: _signal(pid, num)  # noqa: E731
    old = {n: sig.signal(n, relay) for n in sig.FORWARDED if n not in keep}
    try:
        if attach is not None:  # the pty follows our size; the kernel tells the process
            attach.receive()  # sent by stage `terminal`: there already, sized before `begin`
            sig.signal(sig.SIGWINCH, lambda _num, _frame: attach.resize())
        if begin is not None:
            begin()
        if attach is not None:
            attach.pump(pid)
        _, status = os.waitpid(pid, 0)
    finally:
        for n, handler in old.items():
            sig.signal(n, handler)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _signal(pid: int, num: int) -> None:
    try:
        os.kill(pid, num)
    except ProcessLookupError:
        pass


def oci_state(root: str, cid: str) -> dict:
    return state.oci_state(root, state.load(root, cid), OCI_VERSION)


def list_states(root: str, warn=None) -> list[dict]:
    """The OCI state of every container under root. One whose state.json is unreadable is
    listed as stopped, and `warn(message)` says why: the others are listed all the same."""
    out = []
    for cid in state.list_ids(root):
        try:
            out.append(oci_state(root, cid))
        except (state.NotExist, state.NotOurs):  # deleted while we listed; not ours (as runc)
            pass
        except state.Unreadable as e:
            if warn is not None:
                warn(str(e))
            out.append({"ociVersion": OCI_VERSION, "id": cid, "pid": 0, "status": "stopped",
                        "bundle": "", "rootfs": "", "created": "", "owner": ""})
    return out


def kill(root: str, cid: str, signum: int, all_: bool = False) -> None:
    """Send `signum` to the container's init, or with `all_` to every process of its cgroup.

    A SIGKILLed process in a frozen cgroup (v1 freezer) dies only once thawed: as runc's
    Signal does, a paused container is thawed after SIGKILL, so it is stopped at once and
    `delete` works (v2 frozen tasks do die, but the cgroup would stay frozen; runc thaws
    both). Other signals leave a paused container paused (Manager.kill_all)."""
    st = state.load(root, cid)
    if not state.alive(st):
        if all_:
            return
        raise OcishError("container not running")
    manager = None
    if st.get("cgroup") and (all_ or signum == sig.SIGKILL):
        from runtime import cgroups
        manager = cgroups.from_state(st["cgroup"])
    if all_ and manager is not None:
        manager.kill_all(signum)
        return
    os.kill(st["pid"], signum)
    if manager is not None and manager.frozen():
        manager.thaw()


def delete(root: str, cid: str, force: bool = False) -> None:
    """Remove a container: its processes, its cgroups, then its state dir, state.json last.

    Each step can be done twice, so a delete killed half-way is finished by the next one; a
    create that died half-way (status stopped, a "creating" record) is removed the same way,
    whatever it got to make; a live create is killed first (only with force)."""
    try:
        st = state.load(root, cid)
    except state.NotExist:
        if force:
            return
        raise
    except state.Unreadable:
        if not force:
            raise
        st = _recovered(root, cid)
    status = "unknown" if st.get("recovered") else state.status(root, st)
    if status in ("running", "paused", "creating") and not force:
        raise OcishError(f"cannot delete container {cid} that is not stopped: {status}")
    if status == "creating":  # its own undo would race ours: stop it where it is
        maker = st["creating"]
        _signal(maker["pid"], sig.SIGKILL)
        _wait_stopped({"id": cid, **maker})
        try:
            st = state.load(root, cid)  # what it recorded until it died
        except state.NotExist:  # it had undone everything itself
            return
    manager = None
    if st.get("cgroup"):
        from runtime import cgroups
        manager = cgroups.from_state(st["cgroup"])
    if status != "stopped" or "creating" in st:
        # a created or running container, or what an interrupted create left: an init blocked
        # on exec.fifo, processes in the cgroups (the pid may be C1, gone, or the init)
        if manager is not None:
            manager.kill_all(sig.SIGKILL)
        if state.alive(st):
            _signal(st["pid"], sig.SIGKILL)
        _unthrottle(([st["pid"]] if st["pid"] > 0 else []) + (manager.pids() if manager else []))
        _wait_stopped(st)
        if manager is not None:
            _wait_left(manager)
    crashpoint.reached("delete:killed")
    _remove_host_mounts(st)
    if manager is not None:
        manager.destroy()
    crashpoint.reached("delete:cgroup")
    state.remove_dir(state.container_dir(root, cid))
    if st.get("hooks", {}).get("poststop"):
        _later_hooks(st, "poststop", "stopped")


def _recovered(root: str, cid: str) -> dict:
    """What `delete -f` can know of a container whose state.json is unusable or lost: its
    cgroups, from the cgroupsPath of the config copy in its state dir, or the default path for
    the id. Whatever is in them is killed and they are removed, as runc's destroy does with its
    cgroup manager; no pid is trusted. (Host mounts of a container without a mount namespace
    are recorded only in state.json: they stay, and are named by `findmnt`.)"""
    d = state.container_dir(root, cid)
    path = None
    try:
        with open(os.path.join(d, state.CONFIG_COPY), "rb") as f:
            linux = jsonfast.loads(f.read(32 << 20).decode()).get("linux") or {}
        path = linux.get("cgroupsPath") if type(linux.get("cgroupsPath")) is str else None
    except (OSError, ValueError, RecursionError, AttributeError):
        pass  # no copy yet (killed before create's end) or unusable: the default path
    from runtime import cgroups
    from runtime.errors import StageError
    try:
        manager = cgroups.open_manager(path, cid)
    except StageError:
        manager = cgroups.open_manager(None, cid)
    cg = manager.to_state()
    cg["created"] += [p for p in dict.fromkeys(cg["paths"].values())
                      if os.path.isdir(p) and p not in cg["created"]]
    return {"id": cid, "pid": 0, "start_time": None, "bundle": "", "rootfs": "", "created": "",
            "cgroup": cg, "recovered": True}


LATER_HOOKS = ("poststart", "poststop")


def _remove_host_mounts(st: dict) -> None:
    """Unmount what a container without a mount namespace mounted in ours (better than runc,
    which leaves it); in another mount namespace, a warning where poststop's go."""
    if "host_mounts" not in st:
        return
    from runtime import hostmounts
    try:
        why = hostmounts.remove(st["host_mounts"])
    except OSError as e:
        raise OcishError(f"unmount {st['host_mounts']['rootfs']}: "
                         f"{os.strerror(e.errno or 0).lower()}") from None
    if why:
        from runtime import hooks
        hooks.on_warning(why)


def _later_hooks(st: dict, kind: str, status: str) -> None:
    """poststart (end of `start`) and poststop (end of `delete`): failures only warn."""
    from runtime import hooks
    pid = st["pid"] if status == "running" else 0
    hooks.run_all(kind, st["hooks"][kind], hooks.state(st["id"], status, pid, st["bundle"],
                                                      st.get("annotations")), warn_only=True,
                  cwd=st["bundle"])  # crun's do_hooks: the bundle, as for create's hooks


def _unthrottle(pids: list[int]) -> None:
    """Give killed processes back the normal scheduler: one with a realtime or deadline policy
    from its config (1 us of runtime per 4 s period, say) would take minutes to run its way
    out of exit(2), and delete would fail with "did not stop" (as runc's does)."""
    for pid in pids:
        try:
            if os.sched_getscheduler(pid) not in (os.SCHED_OTHER, os.SCHED_BATCH, os.SCHED_IDLE):
                os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:  # gone already
            pass


def _wait_left(manager, timeout: float = 2.0) -> None:
    """Give killed processes time to leave the cgroup (a zombie has left it already), so that
    destroy() finds it empty; what is still there after `timeout` makes destroy() fail."""
    deadline = time.monotonic() + timeout
    while manager.pids() and time.monotonic() < deadline:
        time.sleep(0.005)


def _wait_stopped(st: dict, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while state.alive(st):
        try:  # reap it if it is ours (we may be its subreaper)
            os.waitpid(st["pid"], os.WNOHANG)
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            raise OcishError(f"container {st['id']} did not stop after SIGKILL")
        time.sleep(0.005)
