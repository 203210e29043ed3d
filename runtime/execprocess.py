"""`ocish exec`: one more process in a running container, set up by the same engine as `create`.

An exec is just another pipeline of stages run by `runtime.engine.Engine`:

    host (ocish exec)                          container side
    ─────────────────                          ──────────────
    check status, build the process spec,
    checkTerminal, connect --console-socket
    spawn C1 (a sealed copy, see engine) ─►    C1: blocked in recv()
    [cgroup-join] C1 into the container's cgroups
    Run{lsm, seccomp} ────────────────────►    C1: check AppArmor/SELinux, compile the container's
                                                   seccomp profile (host /sys and paths in view)
    Run{join} ────────────────────────────►    C1: setns(user ... mount) from /proc/<init>/ns,
              ◄───────────────────────────         fork C2, Pid{C2}, exit
    Run{terminal} ────────────────────────►    C2: a pty of the container's devpts, master sent
    Run{process, attributes, bounding,         C2: oom score, rlimits, keyring; ioprio, scheduler,
        user, caps} ──────────────────────►        LSM label; capabilities, ids, umask, cwd
    Run{exec} ────────────────────────────►    C2: resolve args[0], seal fds; Ok; execve(2)
                                                   (no exec.fifo: the process runs at once)
    foreground: wait for C2 (we are its subreaper), forward signals (with -t and no socket,
    copy our terminal to and from its pty), exit with its status
    --detach: write --pid-file, exit 0 (C2 goes to our caller's subreaper)

The process spec is runc's: the OCI process object of `--process FILE` as it is (what containerd
and conmon pass), or the container's config.json process with the command line's args and flags
merged over it (`-e` appends, `--cap` adds to the bounding, effective, permitted and ambient sets).
Errors say "exec failed: ..." and exit 255, as runc's do.
"""
from __future__ import annotations

import os

from runtime import jsonfast, lifecycle, state
from runtime.errors import OcishError, SpecError, StageError

CONFIG_COPY = state.CONFIG_COPY  # in the state dir: the config the container was created with


class ExecFailed(OcishError):
    """runc exits 255 when exec fails before the process runs."""
    exit_code = 255

    def __init__(self, message: str) -> None:
        super().__init__(f"exec failed: {message}")


# ---------------------------------------------------------------------------------------------
# the process spec

def container_spec(state_dir: str, bundle: str) -> dict:
    """The container's config: the copy `create` kept in the state dir, else the bundle's."""
    paths = [os.path.join(state_dir, CONFIG_COPY), os.path.join(bundle, "config.json")]
    last: OSError | None = None
    for path in paths:
        try:
            with open(path) as f:
                return jsonfast.loads(f.read())
        except FileNotFoundError as e:
            last = e
        except (OSError, ValueError) as e:
            raise ExecFailed(f"read {path}: {e}") from None
    raise ExecFailed(f"the container's config is gone: {last.filename}: no such file or directory")


def load_process_file(path: str) -> dict:
    try:
        return jsonfast.read_object(path, "the process")
    except OSError as e:
        raise ExecFailed(f"open {path}: {os.strerror(e.errno or 0).lower()}") from None
    except ValueError as e:
        raise ExecFailed(str(e)) from None


def parse_user(text: str) -> tuple[int, int | None]:
    """runc's -u: "UID" or "UID:GID", numbers only."""
    parts = text.split(":")
    if len(parts) > 2:
        raise ExecFailed(f"invalid user: {jsonfast.quote(text)}")
    ids = []
    for what, value in zip(("uid", "gid"), parts):
        if not (value.isascii() and value.isdigit()):  # runc: strconv.Atoi's "invalid syntax"
            raise ExecFailed(f"invalid user {jsonfast.quote(text)}: {what} "
                             f"{jsonfast.quote(value)} is not a number (-u takes UID or UID:GID)")
        ids.append(int(value))
    return ids[0], ids[1] if len(ids) > 1 else None


def merge_cli(base: dict, args: list[str], *, cwd: str | None = None, env: list[str] = (),
              user: str | None = None, additional_gids: list[int] = (), caps: list[str] = (),
              no_new_privs: bool = False, tty: bool = False, apparmor: str | None = None,
              process_label: str | None = None) -> dict:
    """The container's process with the command line over it, as runc's exec builds it."""
    p = jsonfast.loads(jsonfast.dumps(base or {}))  # a deep copy
    p["args"] = list(args)
    if cwd:
        p["cwd"] = cwd
    if apparmor:
        p["apparmorProfile"] = apparmor
    if process_label:
        p["selinuxLabel"] = process_label
    if caps:
        sets = p.get("capabilities")
        sets = p["capabilities"] = sets if isinstance(sets, dict) else {}
        for name in ("bounding", "effective", "permitted", "ambient"):
            sets[name] = list(sets.get(name) or []) + list(caps)
    for entry in env:  # named as the user wrote it, not as an index of the merged env
        if entry.find("=") <= 0:
            raise ExecFailed(f"--env {jsonfast.quote(entry)}: must be \"KEY=value\" with a "
                             "non-empty KEY")
    p["env"] = list(p.get("env") or []) + list(env)
    p["terminal"] = bool(tty)
    if no_new_privs:
        p["noNewPrivileges"] = True
    if user:
        uid, gid = parse_user(user)
        u = p["user"] = dict(p.get("user") or {})
        u["uid"] = uid
        if gid is not None:
            u["gid"] = gid
    if additional_gids:
        u = p["user"] = dict(p.get("user") or {})
        for g in additional_gids:
            if g < 0:
                raise ExecFailed("additional-gids must be a positive number")
        u["additionalGids"] = list(u.get("additionalGids") or []) + list(additional_gids)
    return p


def validate_process(p: dict, origin: str) -> None:
    """runc's validateProcessSpec, then our config checks of /process (types, ranges)."""
    if not p.get("args"):  # runc's "args must not be empty", with where
        raise ExecFailed(f"{origin} /args: must not be empty"
                         + ("" if origin != "process" else ": give the command to run"))
    from runtime import spec as specmod
    try:
        specmod._process({"process": p})
    except SpecError as e:
        where = e.pointer[len("/process"):] or "/"
        raise ExecFailed(f"{origin} {where}: {e.message}") from None


def parse_cgroup_flags(values: list[str]) -> list[tuple[str, str]]:
    """runc's exec --cgroup "[<controller>:]<path>" values."""
    out = []
    for v in values:
        ctrl, _, path = v.rpartition(":")
        parts = [c for c in path.split("/") if c]
        if not parts or ".." in parts:
            raise ExecFailed(f"invalid --cgroup {jsonfast.quote(v)}: a sub-cgroup path without ..")
        for c in ctrl.split(",") if ctrl else [""]:
            out.append((c, "/".join(parts)))
    return out


# ---------------------------------------------------------------------------------------------
# the engine

def pipeline(st: dict, sub: list[list[str]] = ()) -> list:
    """create's stages where they apply to one process, after the two that join the container.
    lsm and seccomp run in C1 before `join`, while the host's /sys and paths are in view."""
    from runtime.stages.attributes import Attributes, Lsm
    from runtime.stages.exec import Exec
    from runtime.stages.join import CgroupJoin, Join
    from runtime.stages.process import Process, User
    from runtime.stages.security import Bounding, Caps, Seccomp
    from runtime.stages.terminal import Terminal
    return [CgroupJoin(st.get("cgroup"), sub), Lsm(), Seccomp(),
            Join(st["pid"], st.get("start_time")), Terminal(console=False),
            Process(container_wide=False), Attributes(container_wide=False), Bounding(), User(),
            Caps(), Exec(wait_start=False)]


class ExecSetup:
    """One exec between its first step and the process running; the debugger can step
    `engine` itself, as it does with lifecycle.Setup."""

    def __init__(self, root: str, cid: str, process: dict, observer=None, preserve_fds: int = 0,
                 console_socket: str | None = None, cgroup: list[tuple[str, str]] = (),
                 ignore_paused: bool = False, spec: dict | None = None, st: dict | None = None,
                 launched=None) -> None:
        """`launched`: the container side, already started (engine.launch) by `exec`."""
        from runtime.engine import Context, Engine
        st = st or load_running(root, cid, ignore_paused)
        if spec is None:
            spec = container_spec(state.container_dir(root, cid), st["bundle"])
        spec = dict(spec)
        spec["process"] = process
        self.st = st
        self.ctx = Context(cid, st["bundle"], spec, st["rootfs"], state.container_dir(root, cid),
                           preserve_fds=preserve_fds, console_socket=console_socket)
        # by reference: the container side, a fresh interpreter, builds the same stages
        self.engine = Engine(self.ctx, "runtime.execprocess:pipeline",
                             (st, [list(c) for c in cgroup]), observer, launched)

    def finish(self) -> int:
        """The process runs: stop talking to it, return its host pid."""
        self.engine.close()
        return self.ctx.pid

    def abort(self) -> None:
        self.engine.kill()


def load_running(root: str, cid: str, ignore_paused: bool = False) -> dict:
    try:
        st = state.load(root, cid)
    except state.NotExist as e:
        raise ExecFailed(str(e)) from None
    status = state.status(root, st)
    if status == "stopped":
        raise ExecFailed("cannot exec in a stopped container")
    if status == "creating":
        raise ExecFailed("cannot exec in a container that is still being created")
    if status == "paused" and not ignore_paused:
        raise ExecFailed("cannot exec in a paused container (use --ignore-paused to override)")
    return st


def start(setup: ExecSetup, detach: bool = True, stdin_fd: int | None = None,
          own_group: bool = False, source=None):
    """Run the pipeline; the process runs once this returns (its host pid, and the
    runtime.terminal.Attach that holds its pty master when we lend it our own terminal).
    stdin_fd and own_group go to Engine.spawn (the debugger's choices); by default the process
    inherits our stdin and process group. `source(pointer)` names where a /process field of
    a failed stage came from (exec_source), in place of "config POINTER"."""
    try:
        attach = lifecycle.run_setup(setup, detach, stdin_fd, own_group)
    except StageError as exc:
        text = str(exc)
        if source is not None and exc.pointer:
            text = text.replace(f"(config {exc.pointer})", f"({source(exc.pointer)})", 1)
        raise ExecFailed(text) from None
    return setup.finish(), attach


def exec_source(process_file: str | None, flags: dict):
    """pointer -> where an exec's process field came from, for its errors: the --process
    file, the exec's own command line (its args, -u, --cwd), else the container's config.json
    (whose process the command line goes over)."""
    given = {"user": bool(flags.get("user")), "cwd": bool(flags.get("cwd"))}

    def source(pointer: str) -> str:
        if not pointer.startswith("/process/"):
            return f"config {pointer}"
        rest = pointer[len("/process"):]
        if process_file:
            return f"{process_file} {rest}"
        parts = rest.split("/")
        if parts[1] == "args":
            return ("the exec's command" if parts[2:] in ([], ["0"])
                    else f"the exec's argument {parts[2]}")
        if given.get(parts[1]):
            return f"exec {'-u' if parts[1] == 'user' else '--cwd'}"
        return f"config {pointer}"
    return source


def exec_process(setup: "ExecSetup", detach: bool = False,
                 pid_file: str | None = None, stdin_fd: int | None = None, own_group: bool = False,
                 on_start=None, keep_signals: tuple[int, ...] = (), source=None) -> int:
    """Everything `ocish exec` does once the process spec is built into `setup`. on_start(pid)
    is called once the process runs (the debugger tracks the pids it will have to reap);
    `source`: see start()."""
    # run_setup makes us a subreaper: C2 comes back to us when C1 exits
    pid, attach = start(setup, detach, stdin_fd, own_group, source)
    if on_start is not None:
        on_start(pid)
    if pid_file:
        try:
            lifecycle.write_pid_file(pid_file, pid)
        except OcishError:  # as runc's exec: the process it cannot account for is killed
            try:
                os.kill(pid, 9)  # SIGKILL
            except ProcessLookupError:
                pass
            raise
    if detach:
        return 0
    return lifecycle.wait_foreground(pid, attach, keep_signals)


def build_process(root: str, cid: str, st: dict, args: list[str], process_file: str | None = None,
                  **flags) -> dict:
    """The process `ocish exec` runs: the OCI process of --process FILE as it is, else the
    container's config.json process with args and the flags (merge_cli's) over it; validated."""
    if process_file:
        process, origin = load_process_file(process_file), process_file
    else:
        spec = container_spec(state.container_dir(root, cid), st["bundle"])
        process, origin = merge_cli(spec.get("process") or {}, args, **flags), "process"
    validate_process(process, origin)
    return process


def run(root: str, cid: str, args: list[str], *, process_file: str | None = None,
        ignore_paused: bool = False, detach: bool = False, pid_file: str | None = None,
        preserve_fds: int = 0, console_socket: str | None = None, cgroup: list[str] = (),
        stdin_fd: int | None = None, own_group: bool = False, on_start=None,
        keep_signals: tuple[int, ...] = (), **flags) -> int:
    """`ocish exec` (the CLI's and the debugger's): check the container, build the process,
    run it; in the foreground, its exit status. Every failure before the process runs is
    ExecFailed ("exec failed: ...", status 255), as runc's are."""
    launched = None
    try:
        if stdin_fd is None and not own_group:
            # the command line's exec: C1 starts first, and its interpreter's start-up overlaps
            # reading the state and the config (as `create` does; the debugger's exec spawns
            # its own after, with its stdin and process group)
            from runtime import engine
            launched = engine.launch(preserve_fds)
        st = load_running(root, cid, ignore_paused)
        process = build_process(root, cid, st, args, process_file, **flags)
        setup = ExecSetup(root, cid, process, preserve_fds=preserve_fds,
                          console_socket=console_socket, cgroup=parse_cgroup_flags(cgroup),
                          st=st, launched=launched)
        launched = None  # the setup's engine has it
        return exec_process(setup, detach=detach, pid_file=pid_file, stdin_fd=stdin_fd,
                            own_group=own_group, on_start=on_start, keep_signals=keep_signals,
                            source=exec_source(process_file, flags))
    except ExecFailed:
        raise
    except OcishError as e:  # a StageError too: C1 could not be started
        raise ExecFailed(str(e)) from None
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise ExecFailed(where + (os.strerror(e.errno).lower() if e.errno else str(e))) from None
    finally:
        if launched is not None:
            launched.kill()
