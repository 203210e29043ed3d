"""runc-compatible command line: `ocish [global flags] COMMAND [flags] ARGS`.

Errors are one line on stderr (`ocish: <message>`) and exit 1, as runc's are one logrus line; with
`--log FILE --log-format json` they are also written there as {"level","msg","time"} lines, which
is what conmon and containerd-shim read back.
"""
from __future__ import annotations

import os
import sys

from runtime import jsonfast
from runtime.cliparse import Command, HelpRequested, Opt, Parsed, parse, usage
from runtime.errors import OcishError
from runtime.linux import sig

DEFAULT_ROOT = "/run/ocish"


class Log:
    """runc's --log/--log-format: JSON or logrus-style text lines, appended to a file."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path, self.fmt, self.debug_on = path, fmt, debug

    def write(self, level: str, msg: str) -> None:
        if not self.path:
            return
        from runtime.state import rfc3339_now
        now = rfc3339_now()
        if self.fmt == "json":
            line = jsonfast.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg={jsonfast.dumps(msg)}'
        with open(self.path, "a") as f:
            f.write(line + "\n")

    def error(self, msg: str) -> None:
        self.write("error", msg)
        sys.stderr.write(f"ocish: {msg}\n")

    def debug(self, msg: str) -> None:
        if self.debug_on:
            self.write("debug", msg)


def parse_signal(text: str) -> int:
    try:
        return sig.number(text)
    except KeyError:
        raise OcishError(f"unknown signal {text!r}") from None


GLOBAL = [
    Opt("root", str, help=f"state directory (default {DEFAULT_ROOT})"),
    Opt("log", str, help="append log lines to this file"),
    Opt("log-format", str, default="text", choices=("text", "json"), help="text or json"),
    Opt("debug", help="log debug lines too"),
    Opt("systemd-cgroup", help="(refused: no systemd on this host)"),
    Opt("rootless", str, default="auto", help="accepted for compatibility"),
    Opt("criu", str, default="criu", help="path to criu"),
]
_CREATE = [
    Opt("bundle", str, "b", ".", "bundle directory (config.json and rootfs)"),
    Opt("pid-file", str, help="write the container's host pid here"),
    Opt("console-socket", str, help="AF_UNIX socket that receives the pty master"),
    Opt("no-pivot", help="chroot instead of pivot_root (rootfs on ramfs)"),
    Opt("no-new-keyring", help="keep the caller's session keyring"),
    Opt("preserve-fds", int, default=0, help="pass fds 3..3+N-1 to the container"),
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
]


def _table(states: list[dict]) -> str:
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def dispatch(g: Parsed, command: str, a: Parsed) -> int:
    from runtime import lifecycle  # after parsing: `--help` and errors stay cheap
    root = g.root or DEFAULT_ROOT
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
                    console_socket=a.console_socket, pid_file=a.pid_file)
        if command == "create":
            lifecycle.create(root, a.id, a.bundle, **opts)
            return 0
        return lifecycle.run(root, a.id, a.bundle, detach=a.detach, keep=a.keep, **opts)
    if command == "start":
        lifecycle.start(root, a.id)
    elif command == "state":
        print(jsonfast.dumps(lifecycle.oci_state(root, a.id), indent=2))
    elif command == "list":
        states = lifecycle.list_states(root)
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
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = Log(None, "text", False)
    try:
        g, cmd, a = parse("ocish", GLOBAL, COMMANDS, argv)
        log = Log(g.log, g.log_format, g.debug)
        if g.systemd_cgroup:
            raise OcishError("--systemd-cgroup: the systemd cgroup driver is not available "
                             "(PID 1 is not systemd); use the cgroupfs driver")
        if cmd is None:
            print(usage("ocish", GLOBAL, COMMANDS))
            return 0
        return dispatch(g, cmd.name, a)
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
