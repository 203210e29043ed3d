"""runc-compatible command line: `ocish [global flags] COMMAND [flags] ARGS`.

Errors are one line on stderr (`ocish: <message>`) and exit 1, as runc's are one logrus line; with
`--log FILE --log-format json` they are also written there as {"level","msg","time"} lines, which
is what conmon and containerd-shim read back.
"""
from __future__ import annotations

import os
import sys
import time

from runtime import jsonfast
from runtime.cliparse import Command, HelpRequested, Opt, Parsed, parse, uint, usage
from runtime.errors import OcishError, printable
from runtime.linux import sig

DEFAULT_ROOT = "/run/ocish"


def default_root() -> str:
    """runc's rule: a caller that is not root keeps its state under $XDG_RUNTIME_DIR/ocish."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "ocish") if xdg and os.geteuid() != 0 else DEFAULT_ROOT


class Log:
    """runc's --log/--log-format: JSON or logrus-style text lines, appended to a file.

    The file is opened at start, as runc's configLogrus does, so an unusable --log (a missing
    directory, a directory, no permission, a FIFO nobody reads) fails every command at once
    with one line instead of when there is something to log. Messages go out through
    errors.printable: one line each, whatever the config or the command line put in them."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path, self.fmt, self.debug_on = path, fmt, debug
        self.fd = -1
        if path:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
                                  | os.O_NONBLOCK, 0o644)
            except OSError as e:
                raise OcishError(f"--log {jsonfast.quote(path)}: "
                                 f"{os.strerror(e.errno or 0).lower()}") from None

    def write(self, level: str, msg: str) -> None:
        if self.fd < 0:
            return
        from runtime.state import rfc3339_now
        now = rfc3339_now()
        if self.fmt == "json":
            line = jsonfast.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg={jsonfast.dumps(msg)}'
        try:
            os.write(self.fd, (line + "\n").encode())
        except OSError:  # a full disk: the message still reaches stderr
            pass

    def error(self, msg: str) -> None:
        msg = printable(msg)
        self.write("error", msg)
        sys.stderr.write(f"ocish: {msg}\n")

    def warning(self, msg: str) -> None:
        msg = printable(msg)
        self.write("warning", msg)
        sys.stderr.write(f"ocish: warning: {msg}\n")

    def debug(self, msg: str) -> None:
        if self.debug_on:
            msg = printable(msg)
            if self.path:
                self.write("debug", msg)
            else:
                sys.stderr.write(f"ocish: debug: {msg}\n")


class StepLog:
    """--debug: the engine's observer on the plain path, one line per setup step with its time:
    from the step's start, or in a batch (engine.Engine.run) from the answer before it."""
    one_by_one = False  # a batch of container-side steps stays one

    def __init__(self, log: Log) -> None:
        self.log, self.last = log, 0.0

    def before(self, engine, stage, item: str) -> None:
        self.last = time.perf_counter()

    def after(self, engine, stage, item: str) -> None:
        now = time.perf_counter()
        ms, self.last = (now - self.last) * 1000, now
        self.log.debug(f"stage {stage.name} {item}".rstrip() + f" ({stage.side}): {ms:.2f} ms")

    def failed(self, engine, stage, item: str, err) -> None:
        self.log.debug(f"stage {stage.name} {item}".rstrip() + f" failed: {err}")


def parse_signal(text: str) -> int:
    try:
        return sig.number(text)
    except KeyError:
        raise OcishError(f"unknown signal {text!r}") from None


GLOBAL = [
    Opt("root", str, help=f"state directory (default {DEFAULT_ROOT}; "
                          f"$XDG_RUNTIME_DIR/ocish when not root)"),
    Opt("log", str, help="append log lines to this file"),
    Opt("log-format", str, default="text", choices=("text", "json"), help="text or json"),
    Opt("debug", help="log debug lines too"),
    Opt("systemd-cgroup", help="(refused: no systemd on this host)"),
    Opt("rootless", str, default="auto", help="accepted for compatibility"),
    Opt("criu", str, default="criu", help="path to criu"),
    Opt("version", short="v", help="print the version (as `version`)"),
]
_CREATE = [
    Opt("bundle", str, "b", ".", "bundle directory (config.json and rootfs)"),
    Opt("pid-file", str, help="write the container's host pid here"),
    Opt("console-socket", str, help="AF_UNIX socket that receives the pty master"),
    Opt("no-pivot", help="chroot instead of pivot_root (rootfs on ramfs)"),
    Opt("no-new-keyring", help="keep the caller's session keyring"),
    Opt("preserve-fds", uint, default=0, help="pass fds 3..3+N-1 to the container"),
]
COMMANDS = [
    Command("spec", "write a default config.json", [
        Opt("bundle", str, "b", ".", "where to write config.json"),
        Opt("rootless", help="a spec for an unprivileged user")]),
    Command("create", "create a container, stopped before running its process", _CREATE, ("id",)),
    Command("run", "create and start a container", _CREATE + [
        Opt("detach", short="d", help="do not wait for the container"),
        Opt("keep", help="keep the stopped container (no delete)")], ("id",)),
    Command("start", "run the process of a created container", [], ("id",)),
    Command("state", "print a container's state as JSON", [], ("id",)),
    Command("list", "list containers", [
        Opt("format", str, "f", "table", "table or json", ("table", "json")),
        Opt("quiet", short="q", help="ids only")]),
    Command("kill", "send a signal to a container's init (or all its processes)", [
        Opt("all", short="a", help="signal every process of the container")], ("id",), ("signal",)),
    Command("delete", "delete a stopped container and what it holds", [
        Opt("force", short="f", help="kill it first if it still runs")], ("id",)),
    Command("exec", "run one more process in a running container", [
        Opt("console-socket", str, help="AF_UNIX socket that receives the pty master"),
        Opt("cwd", str, help="working directory in the container"),
        Opt("env", str, "e", help="set an environment variable KEY=value (repeatable)", multi=True),
        Opt("tty", short="t", help="allocate a pseudo-TTY"),
        Opt("user", str, "u", help="UID[:GID] to run as"),
        Opt("additional-gids", int, "g", help="an additional gid (repeatable)", multi=True),
        Opt("process", str, "p", help="process.json: the OCI process object to run"),
        Opt("detach", short="d", help="do not wait for the process"),
        Opt("pid-file", str, help="write the process's host pid here"),
        Opt("process-label", str, help="SELinux label for the process"),
        Opt("apparmor", str, help="AppArmor profile for the process"),
        Opt("no-new-privs", help="set no_new_privs for the process"),
        Opt("cap", str, "c", help="add a capability (repeatable)", multi=True),
        Opt("preserve-fds", uint, default=0, help="pass fds 3..3+N-1 to the process"),
        Opt("cgroup", str, help="join a sub-cgroup: [CONTROLLER:]PATH (repeatable)", multi=True),
        Opt("ignore-paused", help="allow exec in a paused container"),
    ], ("id",), rest="command"),
    Command("ps", "list the processes of a container", [
        Opt("format", str, "f", "table", "table or json", ("table", "json"))],
        ("id",), rest="ps_args"),
    Command("pause", "freeze every process of a container", [], ("id",)),
    Command("resume", "thaw a paused container", [], ("id",)),
    Command("update", "change a container's resource limits", [
        Opt("resources", str, "r", help="LinuxResources JSON file, or - for stdin"),
        Opt("memory", str, help="memory limit in bytes (k, m, g suffixes; -1: unlimited)"),
        Opt("memory-reservation", str, help="memory soft limit in bytes"),
        Opt("memory-swap", str, help="memory plus swap limit in bytes (-1: unlimited)"),
        Opt("kernel-memory", str, help="(ignored, as by runc)"),
        Opt("kernel-memory-tcp", str, help="(ignored, as by runc)"),
        Opt("cpu-share", str, help="cpu shares (relative weight)", aliases=("cpu-shares",)),
        Opt("cpu-quota", str, help="CFS quota in usecs per period (-1: none)"),
        Opt("cpu-period", str, help="CFS period in usecs"),
        Opt("cpu-rt-runtime", str, help="realtime runtime in usecs per period"),
        Opt("cpu-rt-period", str, help="realtime period in usecs"),
        Opt("cpuset-cpus", str, help="cpus to use, e.g. 0-2,4"),
        Opt("cpuset-mems", str, help="memory nodes to use"),
        Opt("pids-limit", str, help="maximum number of pids (-1: unlimited)"),
        Opt("blkio-weight", str, help="block IO weight, 10 to 1000"),
        Opt("l3-cache-schema", str, help="(refused: no Intel RDT)"),
        Opt("mem-bw-schema", str, help="(refused: no Intel RDT)"),
    ], ("id",)),
    Command("events", "print resource usage (and OOM) events as JSON lines", [
        Opt("stats", help="print the stats once and exit"),
        Opt("interval", str, default="5s", help="time between stats (default 5s)"),
    ], ("id",)),
    Command("features", "print what this runtime supports, as JSON"),
    Command("version", "print the version of ocish, the OCI spec, python and libseccomp"),
    Command("checkpoint", "checkpoint a running container with criu", [
        Opt("image-path", str, help="directory for the criu images (default ./checkpoint)"),
        Opt("work-path", str, help="directory for criu's log and work files (default: image path)"),
        Opt("parent-path", str, help="images of a previous pre-dump"),
        Opt("leave-running", help="leave the container running after the checkpoint"),
        Opt("tcp-established", help="allow open tcp connections"),
        Opt("ext-unix-sk", help="allow external unix sockets"),
        Opt("shell-job", help="allow shell jobs"),
        Opt("file-locks", help="handle file locks"),
        Opt("pre-dump", help="dump memory only, leave the container running"),
        Opt("manage-cgroups-mode", str, help="cgroups mode: soft (default), full, strict, ignore"),
    ], ("id",)),
    Command("restore", "restore a container from a criu checkpoint", [
        Opt("image-path", str, help="directory of the criu images (default ./checkpoint)"),
        Opt("work-path", str, help="directory for criu's log and work files (default: image path)"),
        Opt("bundle", str, "b", ".", "bundle directory (config.json and rootfs)"),
        Opt("detach", short="d", help="do not wait for the restored container"),
        Opt("pid-file", str, help="write the restored init's host pid here"),
        Opt("tcp-established", help="allow open tcp connections"),
        Opt("ext-unix-sk", help="allow external unix sockets"),
        Opt("shell-job", help="allow shell jobs"),
        Opt("file-locks", help="handle file locks"),
        Opt("manage-cgroups-mode", str, help="cgroups mode: soft (default), full, strict, ignore"),
    ], ("id",)),
]
_UPDATE_FLAGS = ("memory", "memory-reservation", "memory-swap", "kernel-memory", "kernel-memory-tcp",
                 "cpu-share", "cpu-quota", "cpu-period", "cpu-rt-runtime", "cpu-rt-period",
                 "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight", "l3-cache-schema",
                 "mem-bw-schema")


def _table(states: list[dict]) -> str:
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def dispatch(g: Parsed, command: str, a: Parsed, log: Log) -> int:
    from runtime import lifecycle  # after parsing: `--help` and errors stay cheap
    root = g.root or default_root()
    if command == "spec":
        from runtime.defaults import default_spec
        path = os.path.join(a.bundle, "config.json")
        if os.path.exists(path):
            raise OcishError(f"file {path} exists: remove it first")
        with open(path, "w") as f:
            f.write(jsonfast.dumps(default_spec(a.rootless), indent=2))
        return 0
    if command in ("create", "run"):
        opts = dict(no_pivot=a.no_pivot, no_new_keyring=a.no_new_keyring, preserve_fds=a.preserve_fds,
                    console_socket=a.console_socket, pid_file=a.pid_file,
                    observer=StepLog(log) if log.debug_on else None)
        if command == "create":
            lifecycle.create(root, a.id, a.bundle, **opts)
            return 0
        return lifecycle.run(root, a.id, a.bundle, detach=a.detach, keep=a.keep, **opts)
    if command == "start":
        lifecycle.start(root, a.id)
    elif command == "state":
        print(jsonfast.dumps(lifecycle.oci_state(root, a.id), indent=2))
    elif command == "list":
        states = lifecycle.list_states(root, warn=log.warning)
        if a.quiet:
            print("\n".join(s["id"] for s in states)) if states else None
        elif a.format == "json":
            print(jsonfast.dumps(states or None))
        else:
            print(_table(states))
    elif command == "kill":
        lifecycle.kill(root, a.id, parse_signal(a.signal or "SIGTERM"), a.all)
    elif command == "delete":
        lifecycle.delete(root, a.id, a.force)
    elif command == "exec":
        return _exec(root, a)
    elif command == "ps":
        from runtime import commands
        print(commands.ps_json(root, a.id) if a.format == "json"
              else commands.ps_table(root, a.id, a.ps_args))
    elif command in ("pause", "resume"):
        from runtime import commands
        getattr(commands, command)(root, a.id)
    elif command == "update":
        from runtime import commands
        resources = commands.read_resources(a.resources) if a.resources else None
        flags = {f: getattr(a, f.replace("-", "_")) for f in _UPDATE_FLAGS}
        commands.update(root, a.id, resources, flags,
                        warn=lambda m: sys.stderr.write(f"ocish: warning: {m}\n"))
    elif command == "events":
        from runtime import events
        events.events(root, a.id, a.stats, events.parse_duration(a.interval))
    elif command == "features":
        from runtime.features import features
        print(jsonfast.dumps(features(), indent=4))
    elif command in ("checkpoint", "restore"):
        from runtime import checkpoint
        opts = dict(vars(a))
        if command == "checkpoint":
            checkpoint.checkpoint(root, a.id, opts, criu=g.criu)
        else:
            return checkpoint.restore(root, a.id, a.bundle, opts, criu=g.criu)
    return 0


def check_preserve_fds(n: int) -> None:
    """fds 3 to 3+N-1 must all be open, and checked before this process opens any fd of its
    own (--log): one of ours would fill a gap and reach the container. runc 1.1.5 does not
    check: its process fails with "bad file descriptor" where nothing fills a gap, and where
    runc's own fds do (its /sys/fs/cgroup handle) the container gets them. N is at most the
    open-file limit, checked first: runc loops over N, whatever its size."""
    import resource
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if limit != resource.RLIM_INFINITY and n > limit - 3:
        raise OcishError(f"--preserve-fds {n}: more fds than the open-file limit {limit} allows")
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError:
            why = ("fd 3 is passed to the process: it must be open" if n == 1 else
                   f"fds 3 to {2 + n} are passed to the process, each must be open: a gap in "
                   f"the numbers is not allowed")
            raise OcishError(f"--preserve-fds {n}: fd {fd} is not open ({why})") from None


def _exec(root: str, a: Parsed) -> int:
    """runc's exec: every failure before the process runs is "exec failed: ..." and status 255."""
    from runtime import execprocess
    return execprocess.run(
        root, a.id, a.command, process_file=a.process, ignore_paused=a.ignore_paused,
        detach=a.detach, pid_file=a.pid_file, preserve_fds=a.preserve_fds,
        console_socket=a.console_socket, cgroup=a.cgroup, cwd=a.cwd, env=a.env, user=a.user,
        additional_gids=a.additional_gids, caps=a.cap, no_new_privs=a.no_new_privs, tty=a.tty,
        apparmor=a.apparmor, process_label=a.process_label)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = Log(None, "text", False)
    try:
        g, cmd, a = parse("ocish", GLOBAL, COMMANDS, argv)
        if g.version or (cmd is not None and cmd.name == "version"):
            # runc's five lines (urfave/cli prints them before its Before hook: no --log)
            from runtime.version import text
            print(text())
            return 0
        bad_fds = None
        if getattr(a, "preserve_fds", 0):  # before --log takes an fd that could fill a gap
            try:
                check_preserve_fds(a.preserve_fds)
            except OcishError as e:
                bad_fds = e
        log = Log(g.log, g.log_format, g.debug)
        if bad_fds is not None and cmd.name == "exec":  # as every exec failure: status 255
            from runtime.execprocess import ExecFailed
            raise ExecFailed(str(bad_fds))
        if bad_fds is not None:
            raise bad_fds
        if cmd is not None and cmd.name in ("run", "start", "delete"):
            from runtime import hooks  # poststart/poststop failures warn into --log too
            hooks.on_warning = log.warning
        if g.systemd_cgroup:
            raise OcishError("--systemd-cgroup: the systemd cgroup driver is not available "
                             "(PID 1 is not systemd); use the cgroupfs driver")
        if cmd is None:
            print(usage("ocish", GLOBAL, COMMANDS))
            return 0
        return dispatch(g, cmd.name, a, log)
    except HelpRequested as h:
        print(h.text)
        return 0
    except OcishError as e:
        log.error(str(e))
        return e.exit_code
    except OSError as e:
        log.error(f"{e.filename + ': ' if e.filename else ''}{os.strerror(e.errno or 0).lower()}"
                  if e.errno else str(e))
        return 1
    except KeyboardInterrupt:
        return 130
