"""runc-compatible command line: `ocish [global flags] COMMAND [flags] ARGS`.

Errors are one line on stderr (`ocish: <message>`) and exit 1, as runc's are one logrus line; with
`--log FILE --log-format json` they are also written there as {"level","msg","time"} lines, which
is what conmon and containerd-shim read back.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from runtime import jsonfast
from runtime.errors import OcishError

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 1 (argparse's default is usage + exit 2)
        raise OcishError(f"{self.prog}: {message}")


def parse_signal(text: str) -> int:
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise OcishError(f"unknown signal {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ocish", description="a runc-compatible OCI runtime and container debugger")
    p.add_argument("--root", default=None, help=f"state directory (default {DEFAULT_ROOT})")
    p.add_argument("--log", default=None, help="append log lines to this file")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true")
    p.add_argument("--rootless", default="auto")
    p.add_argument("--criu", default="criu")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_)

    def creating(c: argparse.ArgumentParser) -> None:
        c.add_argument("-b", "--bundle", default=".")
        c.add_argument("--pid-file")
        c.add_argument("--console-socket")
        c.add_argument("--no-pivot", action="store_true")
        c.add_argument("--no-new-keyring", action="store_true")
        c.add_argument("--preserve-fds", type=int, default=0)
        c.add_argument("id")

    c = cmd("spec", "write a default config.json")
    c.add_argument("-b", "--bundle", default=".")
    c.add_argument("--rootless", action="store_true")
    creating(cmd("create", "create a container, stopped before running its process"))
    c = cmd("run", "create and start a container")
    creating(c)
    c.add_argument("-d", "--detach", action="store_true")
    c.add_argument("--keep", action="store_true")
    cmd("start", "run the process of a created container").add_argument("id")
    cmd("state", "print a container's state as JSON").add_argument("id")
    c = cmd("list", "list containers")
    c.add_argument("-f", "--format", choices=["table", "json"], default="table")
    c.add_argument("-q", "--quiet", action="store_true")
    c = cmd("kill", "send a signal to a container's init (or all its processes)")
    c.add_argument("-a", "--all", action="store_true")
    c.add_argument("id")
    c.add_argument("signal", nargs="?", default="SIGTERM")
    c = cmd("delete", "delete a stopped container and what it holds")
    c.add_argument("-f", "--force", action="store_true")
    c.add_argument("id")
    return p


def _table(states: list[dict]) -> str:
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]] for s in states]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def dispatch(a: argparse.Namespace) -> int:
    from runtime import lifecycle  # after parsing: `--help` and errors stay cheap
    root = a.root or DEFAULT_ROOT
    if a.command == "spec":
        from runtime.defaults import default_spec
        path = os.path.join(a.bundle, "config.json")
        if os.path.exists(path):
            raise OcishError(f"file {path} exists: remove it first")
        with open(path, "w") as f:
            f.write(jsonfast.dumps(default_spec(a.rootless), indent=2))
        return 0
    if a.command in ("create", "run"):
        opts = dict(no_pivot=a.no_pivot, no_new_keyring=a.no_new_keyring, preserve_fds=a.preserve_fds,
                    console_socket=a.console_socket, pid_file=a.pid_file)
        if a.command == "create":
            lifecycle.create(root, a.id, a.bundle, **opts)
            return 0
        return lifecycle.run(root, a.id, a.bundle, detach=a.detach, keep=a.keep, **opts)
    if a.command == "start":
        lifecycle.start(root, a.id)
    elif a.command == "state":
        print(jsonfast.dumps(lifecycle.oci_state(root, a.id), indent=2))
    elif a.command == "list":
        states = lifecycle.list_states(root)
        if a.quiet:
            print("\n".join(s["id"] for s in states)) if states else None
        elif a.format == "json":
            print(jsonfast.dumps(states or None))
        else:
            print(_table(states))
    elif a.command == "kill":
        lifecycle.kill(root, a.id, parse_signal(a.signal), a.all)
    elif a.command == "delete":
        lifecycle.delete(root, a.id, a.force)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    log = Log(None, "text", False)
    try:
        a = build_parser().parse_args(argv)
        log = Log(a.log, a.log_format, a.debug)
        if a.systemd_cgroup:
            raise OcishError("--systemd-cgroup: the systemd cgroup driver is not available "
                             "(PID 1 is not systemd); use the cgroupfs driver")
        if not a.command:
            build_parser().print_help()
            return 0
        return dispatch(a)
    except OcishError as e:
        log.error(str(e))
        return e.exit_code
    except OSError as e:
        log.error(f"{e.filename + ': ' if e.filename else ''}{os.strerror(e.errno or 0).lower()}"
                  if e.errno else str(e))
        return 1
    except KeyboardInterrupt:
        return 130
